//! The outbox admin API: list queued, sent and dead-lettered messages, put dead or dropped ones back
//! in the queue, drop pending or dead ones. No login, like the console: served under the same
//! condition (see [`super::router`]).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::store::outbox::{self, OutboxRow, STATUSES};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/outbox", get(list))
        .route("/api/outbox/{id}/retry", post(retry))
        .route("/api/outbox/{id}/drop", post(drop_message))
}

#[derive(Deserialize)]
struct ListQuery {
    /// One of [`STATUSES`]; absent or empty for all.
    #[serde(default)]
    status: String,
    limit: Option<i64>,
}

/// `{"counts": {"dead": n, "dropped": n, "pending": n, "sent": n}, "messages": [...]}`, newest first.
async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))?;
    if !q.status.is_empty() && !STATUSES.contains(&q.status.as_str()) {
        return Err(ApiError::BadRequest(
            "bad_status",
            format!("status `{}` is not one of {}", q.status, STATUSES.join(", ")),
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit < 1 {
        return Err(ApiError::BadRequest("bad_limit", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let mut tx = state.db.begin_read().await?;
    let messages = outbox::list(&mut tx, &q.status, limit.min(MAX_LIMIT)).await?;
    let counts = outbox::counts(&mut tx).await?;
    tx.commit().await?;
    let mut by_status: serde_json::Map<String, serde_json::Value> =
        STATUSES.iter().map(|s| ((*s).to_string(), 0.into())).collect();
    for (status, n) in counts {
        by_status.insert(status, n.into());
    }
    Ok(Json(serde_json::json!({ "counts": by_status, "messages": messages })))
}

/// A dead or dropped message back to the queue, due now; 409 for any other status.
async fn retry(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<OutboxRow>, ApiError> {
    let id = message_id(id)?;
    let mut tx = state.db.begin().await?;
    if !outbox::requeue(&mut tx, id, state.clock.now()).await? {
        let row = outbox::by_id(&mut tx, id).await?;
        tx.rollback().await?;
        return Err(refused(id, row, "only dead or dropped messages can be retried"));
    }
    let row = outbox::by_id(&mut tx, id).await?;
    tx.commit().await?;
    row.map(Json).ok_or_else(|| not_found(id))
}

/// A pending or dead message is not to be sent; 409 for any other status.
async fn drop_message(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<OutboxRow>, ApiError> {
    let id = message_id(id)?;
    let mut tx = state.db.begin().await?;
    if !outbox::drop_message(&mut tx, id).await? {
        let row = outbox::by_id(&mut tx, id).await?;
        tx.rollback().await?;
        return Err(refused(id, row, "only pending or dead messages can be dropped"));
    }
    let row = outbox::by_id(&mut tx, id).await?;
    tx.commit().await?;
    row.map(Json).ok_or_else(|| not_found(id))
}

fn message_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id).map_err(|e| ApiError::BadRequest("bad_id", e.body_text()))
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no outbox message {id}"))
}

/// Why a retry or drop changed nothing: the message is missing (404) or in the wrong state (409).
fn refused(id: i64, row: Option<OutboxRow>, rule: &str) -> ApiError {
    match row {
        None => not_found(id),
        Some(row) => ApiError::Conflict(format!("message {id} is {}; {rule}", row.status)),
    }
}
