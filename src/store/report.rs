//! Raw rows for the pipeline and digest reports: one org, one period; the report code scopes and
//! sums them.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::crm::ActivityKind;
use crate::run;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    pub user_id: i64,
    pub kind: ActivityKind,
    pub customer_id: i64,
}

pub async fn activities_between(
    tx: &mut Tx,
    org_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<ActivityRow>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT user_id, kind, customer_id FROM activities
         WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at <= $3"
    )
    .bind(org_id)
    .bind(from)
    .bind(to)
    .fetch_all(c)
    .await)
}

/// Owners of customers created in the period (NULL owner → None).
pub async fn customers_created_between(
    tx: &mut Tx,
    org_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Option<i64>>> {
    run!(tx, |c| sqlx::query_scalar(
        "SELECT owner_id FROM customers WHERE org_id = $1 AND created_at >= $2 AND created_at <= $3"
    )
    .bind(org_id)
    .bind(from)
    .bind(to)
    .fetch_all(c)
    .await)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MoveRow {
    pub deal_id: i64,
    pub owner_id: i64,
    pub title: String,
    pub amount_fen: i64,
    pub from_stage: Option<String>,
    pub to_stage: String,
}

pub async fn stage_moves_between(
    tx: &mut Tx,
    org_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<MoveRow>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT h.deal_id, d.owner_id, d.title, d.amount_fen, h.from_stage, h.to_stage
         FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
         WHERE h.org_id = $1 AND h.moved_at >= $2 AND h.moved_at <= $3 AND h.from_stage IS NOT NULL
         ORDER BY h.moved_at, h.id"
    )
    .bind(org_id)
    .bind(from)
    .bind(to)
    .fetch_all(c)
    .await)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverdueRow {
    pub id: i64,
    pub owner_id: i64,
    pub title: String,
    pub due_at: DateTime<Utc>,
}

pub async fn overdue_tasks(tx: &mut Tx, org_id: i64, now: DateTime<Utc>) -> sqlx::Result<Vec<OverdueRow>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, owner_id, title, due_at FROM tasks
         WHERE org_id = $1 AND status = 'open' AND due_at < $2 ORDER BY due_at, id"
    )
    .bind(org_id)
    .bind(now)
    .fetch_all(c)
    .await)
}
