//! The inbox of inbound chat messages (unique per platform and message id), conversation state,
//! and the console's pushed messages.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::Tx;
use crate::run;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: i64,
    pub status: String,
    pub reply: String,
}

pub struct NewInboxRow<'a> {
    pub org_id: Option<i64>,
    pub platform: &'a str,
    pub message_id: &'a str,
    pub sender: &'a str,
    pub user_id: Option<i64>,
    pub text: &'a str,
    pub received_at: DateTime<Utc>,
}

/// Inserts the message; `None` when this (platform, message id) was already recorded.
pub async fn insert(tx: &mut Tx, r: &NewInboxRow<'_>) -> sqlx::Result<Option<i64>> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO inbox (org_id, platform, message_id, sender, user_id, text, status, reply, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'done', '', $7)
         ON CONFLICT (platform, message_id) DO NOTHING RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.platform)
    .bind(r.message_id)
    .bind(r.sender)
    .bind(r.user_id)
    .bind(r.text)
    .bind(r.received_at)
    .fetch_optional(c)
    .await)
}

pub async fn finish(tx: &mut Tx, id: i64, status: &str, reply: &str) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE inbox SET status = $2, reply = $3 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(reply)
        .execute(c)
        .await
        .map(|_| ()))
}

pub async fn by_message_id(tx: &mut Tx, platform: &str, message_id: &str) -> sqlx::Result<Option<InboxRow>> {
    run!(tx, |c| sqlx::query_as("SELECT id, status, reply FROM inbox WHERE platform = $1 AND message_id = $2")
        .bind(platform)
        .bind(message_id)
        .fetch_optional(c)
        .await)
}

/// The user's latest message texts before inbox row `before_id`, newest first.
pub async fn last_texts(tx: &mut Tx, user_id: i64, before_id: i64, limit: i64) -> sqlx::Result<Vec<String>> {
    run!(tx, |c| sqlx::query_scalar("SELECT text FROM inbox WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3")
        .bind(user_id)
        .bind(before_id)
        .bind(limit)
        .fetch_all(c)
        .await)
}

/// The user's open question and whether it is still valid at `now` (expired ones are kept until
/// replaced, so the bot can say that the question expired).
pub async fn pending(tx: &mut Tx, user_id: i64, now: DateTime<Utc>) -> sqlx::Result<Option<(serde_json::Value, bool)>> {
    let row: Option<(Json<serde_json::Value>, DateTime<Utc>)> =
        run!(tx, |c| sqlx::query_as("SELECT pending, expires_at FROM conversations WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(c)
            .await)?;
    Ok(row.map(|(j, expires)| (j.0, expires > now)))
}

pub async fn set_pending(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    pending: &serde_json::Value,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO conversations (user_id, org_id, pending, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET pending = excluded.pending, expires_at = excluded.expires_at"
    )
    .bind(user_id)
    .bind(org_id)
    .bind(Json(pending))
    .bind(expires_at)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn clear_pending(tx: &mut Tx, user_id: i64) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("DELETE FROM conversations WHERE user_id = $1").bind(user_id).execute(c).await.map(|_| ()))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Push {
    pub id: i64,
    pub text: String,
    pub created_at: DateTime<Utc>,
    /// A picture goes with `text` (fetch it with [`push_image`]).
    pub has_image: bool,
}

pub async fn insert_push(tx: &mut Tx, org_id: i64, user_id: i64, text: &str, now: DateTime<Utc>) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO console_pushes (org_id, user_id, text, created_at) VALUES ($1, $2, $3, $4) RETURNING id"
    )
    .bind(org_id)
    .bind(user_id)
    .bind(text)
    .bind(now)
    .fetch_one(c)
    .await)
}

/// [`insert_push`] with an optional PNG picture (`text` is then its caption).
pub async fn insert_push_with_image(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    text: &str,
    image: Option<&[u8]>,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO console_pushes (org_id, user_id, text, image, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id"
    )
    .bind(org_id)
    .bind(user_id)
    .bind(text)
    .bind(image)
    .bind(now)
    .fetch_one(c)
    .await)
}

/// The picture of one of `user_id`'s pushes; `None` when there is no such push or it has none.
pub async fn push_image(tx: &mut Tx, user_id: i64, push_id: i64) -> sqlx::Result<Option<Vec<u8>>> {
    let image: Option<Option<Vec<u8>>> =
        run!(tx, |c| sqlx::query_scalar("SELECT image FROM console_pushes WHERE id = $1 AND user_id = $2")
            .bind(push_id)
            .bind(user_id)
            .fetch_optional(c)
            .await)?;
    Ok(image.flatten())
}

pub async fn pushes_after(tx: &mut Tx, user_id: i64, after: i64, limit: i64) -> sqlx::Result<Vec<Push>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, text, created_at, image IS NOT NULL AS has_image FROM console_pushes
         WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )
    .bind(user_id)
    .bind(after)
    .bind(limit)
    .fetch_all(c)
    .await)
}
