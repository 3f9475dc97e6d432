//! The audit log: one row per change, written in the change's own transaction.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::Tx;
use crate::crm::model::{AuditEntry, Via};
use crate::run;

pub struct NewAuditRow<'a> {
    pub org_id: i64,
    pub actor_id: Option<i64>,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: i64,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub via: Via,
    pub source_message_id: Option<i64>,
    pub at: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, r: NewAuditRow<'_>) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO audit_log (org_id, actor_id, action, entity, entity_id, before, after, via,
                                source_message_id, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )
    .bind(r.org_id)
    .bind(r.actor_id)
    .bind(r.action)
    .bind(r.entity)
    .bind(r.entity_id)
    .bind(r.before.clone().map(Json))
    .bind(r.after.clone().map(Json))
    .bind(r.via)
    .bind(r.source_message_id)
    .bind(r.at)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn for_entity(tx: &mut Tx, org_id: i64, entity: &str, entity_id: i64) -> sqlx::Result<Vec<AuditEntry>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, org_id, actor_id, action, entity, entity_id, before, after, via, source_message_id, at
         FROM audit_log WHERE org_id = $1 AND entity = $2 AND entity_id = $3 ORDER BY id"
    )
    .bind(org_id)
    .bind(entity)
    .bind(entity_id)
    .fetch_all(c)
    .await)
}

pub async fn for_org(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<AuditEntry>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, org_id, actor_id, action, entity, entity_id, before, after, via, source_message_id, at
         FROM audit_log WHERE org_id = $1 ORDER BY id"
    )
    .bind(org_id)
    .fetch_all(c)
    .await)
}

/// The actor's latest change since `since` that has not been undone (undo rows excluded).
pub async fn last_undoable(
    tx: &mut Tx,
    org_id: i64,
    actor_id: i64,
    since: DateTime<Utc>,
) -> sqlx::Result<Option<AuditEntry>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, org_id, actor_id, action, entity, entity_id, before, after, via, source_message_id, at
         FROM audit_log
         WHERE org_id = $1 AND actor_id = $2 AND at >= $3 AND undone = FALSE AND action <> 'undo'
         ORDER BY id DESC LIMIT 1"
    )
    .bind(org_id)
    .bind(actor_id)
    .bind(since)
    .fetch_optional(c)
    .await)
}

/// Every not-yet-undone change of one inbound message by one actor, oldest first.
pub async fn for_message(tx: &mut Tx, actor_id: i64, message_id: i64) -> sqlx::Result<Vec<AuditEntry>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, org_id, actor_id, action, entity, entity_id, before, after, via, source_message_id, at
         FROM audit_log
         WHERE actor_id = $1 AND source_message_id = $2 AND undone = FALSE AND action <> 'undo'
         ORDER BY id"
    )
    .bind(actor_id)
    .bind(message_id)
    .fetch_all(c)
    .await)
}

pub async fn mark_undone(tx: &mut Tx, id: i64) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE audit_log SET undone = TRUE WHERE id = $1").bind(id).execute(c).await.map(|_| ()))
}

/// Changes to the same record after audit row `after_id` that are still in effect, other than
/// those of the message being undone (`own_message`).
pub async fn later_changes(
    tx: &mut Tx,
    org_id: i64,
    entity: &str,
    entity_id: i64,
    after_id: i64,
    own_message: Option<i64>,
) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log
         WHERE org_id = $1 AND entity = $2 AND entity_id = $3 AND id > $4
           AND undone = FALSE AND action <> 'undo'
           AND (source_message_id IS NULL OR $5 IS NULL OR source_message_id <> $5)"
    )
    .bind(org_id)
    .bind(entity)
    .bind(entity_id)
    .bind(after_id)
    .bind(own_message)
    .fetch_one(c)
    .await)
}
