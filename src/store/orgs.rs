//! Orgs and their deal stages.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::crm::model::{Org, Stage};
use crate::run;

pub async fn insert(tx: &mut Tx, name: &str, timezone: &str, now: DateTime<Utc>) -> sqlx::Result<Org> {
    run!(tx, |c| sqlx::query_as(
        "INSERT INTO orgs (name, timezone, created_at) VALUES ($1, $2, $3)
         RETURNING id, name, timezone, created_at"
    )
    .bind(name)
    .bind(timezone)
    .bind(now)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, id: i64) -> sqlx::Result<Option<Org>> {
    run!(tx, |c| sqlx::query_as("SELECT id, name, timezone, created_at FROM orgs WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await)
}

pub async fn by_name(tx: &mut Tx, name: &str) -> sqlx::Result<Option<Org>> {
    run!(tx, |c| sqlx::query_as("SELECT id, name, timezone, created_at FROM orgs WHERE name = $1")
        .bind(name)
        .fetch_optional(c)
        .await)
}

pub async fn list(tx: &mut Tx) -> sqlx::Result<Vec<Org>> {
    run!(tx, |c| sqlx::query_as("SELECT id, name, timezone, created_at FROM orgs ORDER BY id").fetch_all(c).await)
}

pub async fn insert_stage(tx: &mut Tx, org_id: i64, s: &Stage) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO stages (org_id, key, name_zh, name_en, probability, position, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(org_id)
    .bind(&s.key)
    .bind(&s.name_zh)
    .bind(&s.name_en)
    .bind(s.probability)
    .bind(s.position)
    .bind(s.outcome)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn stages(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<Stage>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT key, name_zh, name_en, probability, position, outcome FROM stages
         WHERE org_id = $1 ORDER BY position"
    )
    .bind(org_id)
    .fetch_all(c)
    .await)
}

/// Serialises lead intake within an org, on PostgreSQL across instances: a no-op update of the
/// org row (a `FOR NO KEY UPDATE` lock, so inserts referencing the org are not blocked). At read
/// committed a second intake waits and then sees what the first committed; at repeatable read it
/// fails with 40001 and its caller runs it again on a fresh snapshot. SQLite has one writer anyway.
pub async fn lock_for_intake(tx: &mut Tx, org_id: i64) -> sqlx::Result<()> {
    match tx {
        Tx::Sqlite(_) => Ok(()),
        Tx::Postgres(t) => sqlx::query("UPDATE orgs SET timezone = timezone WHERE id = $1")
            .bind(org_id)
            .execute(&mut **t)
            .await
            .map(|_| ()),
    }
}
