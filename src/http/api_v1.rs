//! The JSON API under `/api/v1`: lead intake (idempotent with `Idempotency-Key`), reading, listing
//! and assigning leads, and the assignment rules; the OpenAPI document at `/api/v1/openapi.json`.
//!
//! Every endpoint but the document needs `Authorization: Bearer <token>`, a token of one org made
//! with `chatcrm tokens create`. The caller acts as that org's system (admin) actor, or, for a
//! token made with `--user`, as that user with their role's rights, through
//! [`Via::Api`](crate::crm::Via). A rejected request writes nothing. Records of other orgs do not
//! exist for a token (404). Errors have the shape of [`ApiError`]: `{"code": "...", "message": "..."}`.
//!
//! Writes run in one transaction each and are run again (up to [`MAX_ATTEMPTS`] times, after a
//! short random pause) when PostgreSQL reports a serialization failure or deadlock.
//!
//! Intakes of one org queue instead of conflicting (see [`Begin::OrgSerialized`]): under repeatable
//! read, concurrent intakes advancing the same round-robin rule's cursor abort each other, and with
//! 16 concurrent clients a third of them still failed after five tries. On SQLite every API write
//! queues on an in-process lock per database file ([`sqlite_write_gate`]).

pub mod auth;
mod leads;
mod records;
mod rules;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{ApiError, AppState};
use crate::crm::{CrmError, Lang};
use crate::store::{Db, Tx};

pub use auth::{ApiCaller, Scope};

/// Tries of one write transaction before a conflict is reported (503).
pub const MAX_ATTEMPTS: u32 = 5;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/leads", post(leads::create_lead).get(leads::list_leads))
        .route("/api/v1/leads/{id}", get(leads::get_lead))
        .route("/api/v1/leads/{id}/assign", post(leads::assign_lead))
        .route("/api/v1/rules", get(rules::list_rules).post(rules::create_rule))
        .route("/api/v1/rules/{id}", axum::routing::delete(rules::delete_rule))
        .route("/api/v1/customers", get(records::list_customers).post(records::create_customer))
        .route("/api/v1/customers/{id}", get(records::get_customer).patch(records::update_customer))
        .route("/api/v1/customers/{id}/contacts", post(records::add_contact))
        .route("/api/v1/deals", get(records::list_deals).post(records::create_deal))
        .route("/api/v1/deals/{id}", get(records::get_deal).patch(records::update_deal))
        .route("/api/v1/activities", get(records::list_activities).post(records::create_activity))
        .route("/api/v1/tasks", get(records::list_tasks).post(records::create_task))
        .route("/api/v1/tasks/{id}/complete", post(records::complete_task))
        .route("/api/v1/users", get(records::list_users))
        .route("/api/v1/teams", get(records::list_teams))
}

/// The error body of every endpoint.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable, e.g. `unauthorized`, `not_found`, `invalid`, `idempotency_key_reused`.
    pub code: String,
    /// For people, in English.
    pub message: String,
}

/// What a handler can fail with. [`ApiError`] covers most; the rest are turned into its shape.
#[derive(Debug, thiserror::Error)]
pub enum V1Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 422: the request is well-formed but cannot be honoured (an idempotency key reused with
    /// another body).
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error(transparent)]
    Crm(#[from] CrmError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A concurrent request with the same idempotency key committed first: run again to answer
    /// with its response.
    #[error("a request with the same Idempotency-Key was being handled at the same time")]
    KeyRace,
}

/// PostgreSQL's serialization failure, deadlock, and unique violation (a concurrent insert of
/// the same idempotency key): running the transaction again on a fresh snapshot resolves them.
fn retryable_db(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01" | "23505")))
}

impl V1Error {
    pub fn retryable(&self) -> bool {
        match self {
            V1Error::Db(e) | V1Error::Crm(CrmError::Db(e)) => retryable_db(e),
            V1Error::KeyRace => true,
            _ => false,
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        V1Error::Api(ApiError::BadRequest(code, message.into()))
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        match self {
            V1Error::Api(e) => e.into_response(),
            V1Error::Crm(e) => ApiError::from_crm(e, Lang::En).into_response(),
            V1Error::Db(e) => ApiError::from(e).into_response(),
            V1Error::KeyRace => {
                ApiError::Unavailable("a request with the same Idempotency-Key is in progress; retry it".into())
                    .into_response()
            }
            V1Error::Unauthorized(message) => {
                let mut res = ApiError::Unauthorized(message).into_response();
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                res
            }
            V1Error::Unprocessable(code, message) => {
                let body = ErrorBody { code: code.into(), message };
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
        }
    }
}

/// SQLite takes one writer at a time, and a writer waiting in SQLite's busy handler sleeps and
/// polls: under many concurrent requests some waited past the busy timeout and failed while others
/// got through. API writes on a SQLite database therefore queue first on an in-process FIFO lock per
/// database file, and reach SQLite one at a time. `None` on PostgreSQL.
pub(crate) fn sqlite_write_gate(db: &Db) -> Option<Arc<tokio::sync::Mutex<()>>> {
    static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let Db::Sqlite(pool) = db else { return None };
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut gates = GATES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    Some(gates.entry(file).or_default().clone())
}

/// How a write transaction starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Begin {
    /// [`Db::begin`]: repeatable read on PostgreSQL.
    Default,
    /// [`crate::store::begin_org_serialized`]: such transactions of one org run one after the
    /// other, across instances, and each statement sees what the previous one committed (also
    /// the idempotency keys), so there is no stale snapshot to conflict on.
    OrgSerialized(i64),
}

pub(crate) async fn begin(db: &Db, how: Begin) -> Result<Tx, sqlx::Error> {
    match (db, how) {
        // Before the idempotency check, not only in intake: two requests with one key queue here.
        (Db::Postgres(_), Begin::OrgSerialized(org_id)) => crate::store::begin_org_serialized(db, [org_id]).await,
        _ => db.begin().await,
    }
}

/// Runs `$body` (an expression using the open transaction `$tx`, yielding `Result<T, V1Error>`) in
/// a write transaction, committing on success and rolling back on error; runs it again on a fresh
/// transaction when the error (or the commit's) is [`V1Error::retryable`], up to [`MAX_ATTEMPTS`].
/// `$how` ([`Begin`]) says how the transaction starts; on SQLite it first waits its turn at the
/// [`sqlite_write_gate`].
macro_rules! in_tx {
    ($db:expr, |$tx:ident| $body:expr) => {
        $crate::http::api_v1::in_tx!($db, $crate::http::api_v1::Begin::Default, |$tx| $body)
    };
    ($db:expr, $how:expr, |$tx:ident| $body:expr) => {{
        let gate = $crate::http::api_v1::sqlite_write_gate(&$db);
        let mut attempt = 1u32;
        loop {
            let result: Result<_, $crate::http::api_v1::V1Error> = async {
                let _turn = match &gate {
                    Some(g) => Some(g.lock().await),
                    None => None,
                };
                let mut $tx = $crate::http::api_v1::begin(&$db, $how).await?;
                match $body {
                    Ok(v) => {
                        $tx.commit().await?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = $tx.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            match result {
                Err(e) if e.retryable() && attempt < $crate::http::api_v1::MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "api transaction conflicted; running it again");
                    $crate::store::backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) if e.retryable() => {
                    tracing::warn!(attempt, error = %e, "api transaction still conflicting; giving up");
                    break Err($crate::http::api_v1::V1Error::Api($crate::http::ApiError::Unavailable(
                        "too many concurrent changes; nothing was stored, retry the request".into(),
                    )));
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use in_tx;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("chatcrm API token (`chatcrm tokens create`)".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatcrm JSON API",
        version = "1",
        description = "Leads, assignment rules, customers, deals, activities, tasks and users of one org. \
                       An org token acts as the org; a user token (`--user`) with that user's permissions, as in chat. \
                       Lists page by `cursor` (the `next_cursor` of the previous page). Authenticate with `Authorization: Bearer <token>` \
                       (a token made by `chatcrm tokens create --org ORG --name NAME`). Errors are \
                       `{\"code\": \"...\", \"message\": \"...\"}`."
    ),
    paths(
        leads::create_lead,
        leads::list_leads,
        leads::get_lead,
        leads::assign_lead,
        rules::list_rules,
        rules::create_rule,
        rules::delete_rule,
        records::list_customers,
        records::create_customer,
        records::get_customer,
        records::update_customer,
        records::add_contact,
        records::list_deals,
        records::create_deal,
        records::get_deal,
        records::update_deal,
        records::create_task,
        records::list_activities,
        records::create_activity,
        records::list_tasks,
        records::complete_task,
        records::list_users,
        records::list_teams,
        openapi_json
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "leads", description = "Lead intake, reading and assignment"),
        (name = "rules", description = "Lead assignment rules, in order of priority"),
        (name = "customers", description = "Customers with their contacts and tags"),
        (name = "deals", description = "Deals with their stage history"),
        (name = "activities", description = "Visits, calls and other contacts"),
        (name = "tasks", description = "Follow-ups and reminders"),
        (name = "users", description = "Users and teams of the org"),
        (name = "meta", description = "This document")
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as JSON (built once).
pub fn openapi_document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()))
}

/// The OpenAPI 3 document of this API (no token needed).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_document()).into_response()
}
