//! API tokens (per org, kept as SHA-256 hashes) and the stored responses of requests sent with an
//! `Idempotency-Key` (see `http::api_v1`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Tx;
use crate::run;

/// A token as listed: never the token itself, only its first characters.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    /// `full` or `intake`.
    pub scope: String,
    /// The user the token acts as; `None`: the org (admin rights).
    pub user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

macro_rules! token_select {
    () => {
        "SELECT t.id, t.org_id, o.name AS org_name, t.name, t.prefix, t.scope, t.user_id, t.created_at, t.revoked_at
         FROM api_tokens t JOIN orgs o ON o.id = t.org_id "
    };
}

pub struct NewTokenRow<'a> {
    pub org_id: i64,
    pub name: &'a str,
    pub prefix: &'a str,
    /// Hex SHA-256 of the whole token.
    pub token_hash: &'a str,
    pub scope: &'a str,
    pub user_id: Option<i64>,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, r: &NewTokenRow<'_>) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO api_tokens (org_id, name, prefix, token_hash, scope, created_at, user_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.name)
    .bind(r.prefix)
    .bind(r.token_hash)
    .bind(r.scope)
    .bind(r.now)
    .bind(r.user_id)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, id: i64) -> sqlx::Result<Option<ApiTokenRow>> {
    run!(tx, |c| sqlx::query_as(concat!(token_select!(), "WHERE t.id = $1")).bind(id).fetch_optional(c).await)
}

/// The token with this hash, unless revoked.
pub async fn active_by_hash(tx: &mut Tx, token_hash: &str) -> sqlx::Result<Option<ApiTokenRow>> {
    run!(tx, |c| sqlx::query_as(concat!(token_select!(), "WHERE t.token_hash = $1 AND t.revoked_at IS NULL"))
        .bind(token_hash)
        .fetch_optional(c)
        .await)
}

/// Every token (of one org when given), revoked ones included, oldest first.
pub async fn list(tx: &mut Tx, org_id: Option<i64>) -> sqlx::Result<Vec<ApiTokenRow>> {
    run!(tx, |c| sqlx::query_as(concat!(token_select!(), "WHERE ($1 IS NULL OR t.org_id = $1) ORDER BY t.id"))
        .bind(org_id)
        .fetch_all(c)
        .await)
}

/// Revokes a live token; false when there is none with that id or it was already revoked.
pub async fn revoke(tx: &mut Tx, id: i64, now: DateTime<Utc>) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// What was answered to the first request with an idempotency key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredResponse {
    /// Hex SHA-256 of the first request's body.
    pub request_hash: String,
    pub status: i64,
    /// The JSON body sent.
    pub response: String,
}

pub async fn stored_response(tx: &mut Tx, org_id: i64, key: &str) -> sqlx::Result<Option<StoredResponse>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT request_hash, status, response FROM api_idempotency WHERE org_id = $1 AND key = $2"
    )
    .bind(org_id)
    .bind(key)
    .fetch_optional(c)
    .await)
}

/// Stores the answer to a request with an idempotency key, in the request's transaction. False
/// when the key is already taken (a concurrent request with the same key committed first).
pub async fn save_response(
    tx: &mut Tx,
    org_id: i64,
    key: &str,
    request_hash: &str,
    status: i64,
    response: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO api_idempotency (org_id, key, request_hash, status, response, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, key) DO NOTHING"
    )
    .bind(org_id)
    .bind(key)
    .bind(request_hash)
    .bind(status)
    .bind(response)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Forgets idempotency keys older than `before` (a client retries within minutes or hours, not weeks).
pub async fn prune_idempotency(tx: &mut Tx, before: DateTime<Utc>) -> sqlx::Result<u64> {
    crate::run!(tx, |c| sqlx::query("DELETE FROM api_idempotency WHERE created_at < $1")
        .bind(before)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
}
