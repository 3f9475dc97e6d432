//! Deals (商机) and their stage history.

use chrono::{DateTime, NaiveDate, Utc};

use super::Tx;
use crate::crm::model::{Actor, Deal, DealStatus, LostReason, StageMove};
use crate::run;

macro_rules! deal_select {
    () => {
        "SELECT d.id, d.org_id, d.customer_id, c.name AS customer_name, d.owner_id,
                u.team_id AS owner_team_id, d.title, d.amount_fen, d.currency, d.stage, d.probability,
                d.expected_close, d.status, d.lost_reason, d.closed_at, d.created_at, d.updated_at
         FROM deals d JOIN customers c ON c.id = d.customer_id JOIN users u ON u.id = d.owner_id "
    };
}

pub struct NewDealRow<'a> {
    pub org_id: i64,
    pub customer_id: i64,
    pub owner_id: i64,
    pub title: &'a str,
    pub amount_fen: i64,
    pub currency: &'a str,
    pub stage: &'a str,
    pub probability: i64,
    pub expected_close: Option<NaiveDate>,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, r: &NewDealRow<'_>) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO deals (org_id, customer_id, owner_id, title, amount_fen, currency, stage,
                            probability, expected_close, status, created_at, updated_at, stage_entered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $10, $10) RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.customer_id)
    .bind(r.owner_id)
    .bind(r.title)
    .bind(r.amount_fen)
    .bind(r.currency)
    .bind(r.stage)
    .bind(r.probability)
    .bind(r.expected_close)
    .bind(r.now)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<Option<Deal>> {
    run!(tx, |c| sqlx::query_as(concat!(deal_select!(), "WHERE d.org_id = $1 AND d.id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

pub async fn for_customer(tx: &mut Tx, customer_id: i64) -> sqlx::Result<Vec<Deal>> {
    run!(tx, |c| sqlx::query_as(concat!(deal_select!(), "WHERE d.customer_id = $1 ORDER BY d.id"))
        .bind(customer_id)
        .fetch_all(c)
        .await)
}

/// Open deals the actor may see.
pub async fn open_visible(tx: &mut Tx, actor: &Actor) -> sqlx::Result<Vec<Deal>> {
    run!(tx, |c| sqlx::query_as(concat!(
        deal_select!(),
        "WHERE d.org_id = $1 AND d.status = 'open'
           AND ($2 = 'admin' OR d.owner_id = $3 OR ($2 = 'manager' AND u.team_id = $4))
         ORDER BY d.id"
    ))
    .bind(actor.org_id)
    .bind(actor.role)
    .bind(actor.user_id)
    .bind(actor.team_id)
    .fetch_all(c)
    .await)
}

/// Writes all mutable fields (the service computes them).
pub struct DealUpdate<'a> {
    pub title: &'a str,
    pub amount_fen: i64,
    pub stage: &'a str,
    pub probability: i64,
    pub expected_close: Option<NaiveDate>,
    pub status: DealStatus,
    pub lost_reason: Option<LostReason>,
    pub closed_at: Option<DateTime<Utc>>,
    pub owner_id: i64,
    pub now: DateTime<Utc>,
}

pub async fn update(tx: &mut Tx, org_id: i64, id: i64, u: &DealUpdate<'_>) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "UPDATE deals SET stage_entered_at = CASE WHEN stage = $5 THEN stage_entered_at ELSE $12 END,
                title = $3, amount_fen = $4, stage = $5, probability = $6,
                expected_close = $7, status = $8, lost_reason = $9, closed_at = $10, owner_id = $11,
                updated_at = $12
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org_id)
    .bind(id)
    .bind(u.title)
    .bind(u.amount_fen)
    .bind(u.stage)
    .bind(u.probability)
    .bind(u.expected_close)
    .bind(u.status)
    .bind(u.lost_reason)
    .bind(u.closed_at)
    .bind(u.owner_id)
    .bind(u.now)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn insert_move(
    tx: &mut Tx,
    org_id: i64,
    deal_id: i64,
    from: Option<&str>,
    to: &str,
    at: DateTime<Utc>,
    by: Option<i64>,
) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO deal_stage_history (org_id, deal_id, from_stage, to_stage, moved_at, moved_by)
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(org_id)
    .bind(deal_id)
    .bind(from)
    .bind(to)
    .bind(at)
    .bind(by)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn history(tx: &mut Tx, deal_id: i64) -> sqlx::Result<Vec<StageMove>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, deal_id, from_stage, to_stage, moved_at, moved_by FROM deal_stage_history
         WHERE deal_id = $1 ORDER BY moved_at, id"
    )
    .bind(deal_id)
    .fetch_all(c)
    .await)
}

/// API filters for deals.
#[derive(Debug, Clone, Default)]
pub struct DealFilter {
    pub owner_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub status: Option<DealStatus>,
    pub stage: Option<String>,
}

pub async fn page(tx: &mut Tx, page: &super::Page, f: &DealFilter) -> sqlx::Result<Vec<Deal>> {
    crate::api_page!(tx, Deal, concat!(deal_select!(), "WHERE d.org_id = "), "d.owner_id", "d.id", page, |qb| {
        if let Some(owner) = f.owner_id {
            qb.push(" AND d.owner_id = ").push_bind(owner);
        }
        if let Some(c) = f.customer_id {
            qb.push(" AND d.customer_id = ").push_bind(c);
        }
        if let Some(status) = f.status {
            qb.push(" AND d.status = ").push_bind(status.as_str());
        }
        if let Some(stage) = &f.stage {
            qb.push(" AND d.stage = ").push_bind(stage.clone());
        }
    })
}
