//! Activities: visits, calls and the rest of a rep's touch points.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::crm::model::{Activity, ActivityKind};
use crate::run;

macro_rules! activity_select {
    () => {
        "SELECT a.id, a.org_id, a.customer_id, c.name AS customer_name, a.user_id, u.name AS user_name,
                a.kind, a.occurred_at, a.content, a.next_step, a.location, a.source_message_id
         FROM activities a JOIN customers c ON c.id = a.customer_id JOIN users u ON u.id = a.user_id "
    };
}

pub struct NewActivityRow<'a> {
    pub org_id: i64,
    pub customer_id: i64,
    pub user_id: i64,
    pub kind: ActivityKind,
    pub occurred_at: DateTime<Utc>,
    pub content: &'a str,
    pub next_step: Option<&'a str>,
    pub location: Option<&'a str>,
    pub source_message_id: Option<i64>,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, r: &NewActivityRow<'_>) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO activities (org_id, customer_id, user_id, kind, occurred_at, content, next_step,
                                 location, source_message_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.customer_id)
    .bind(r.user_id)
    .bind(r.kind)
    .bind(r.occurred_at)
    .bind(r.content)
    .bind(r.next_step)
    .bind(r.location)
    .bind(r.source_message_id)
    .bind(r.now)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<Option<Activity>> {
    run!(tx, |c| sqlx::query_as(concat!(activity_select!(), "WHERE a.org_id = $1 AND a.id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

/// A customer's activities, newest first; the limit follows.
macro_rules! customer_activities {
    () => {
        concat!(activity_select!(), "WHERE a.customer_id = $1 ORDER BY a.occurred_at DESC, a.id DESC LIMIT ")
    };
}

pub async fn for_customer(tx: &mut Tx, customer_id: i64, limit: i64) -> sqlx::Result<Vec<Activity>> {
    run!(tx, |c| sqlx::query_as(concat!(customer_activities!(), "$2")).bind(customer_id).bind(limit).fetch_all(c).await)
}

/// The customer's five latest activities, for the customer card every lookup shows. The limit is
/// written into the SQL: SQLite recompiles a statement whose `LIMIT` is a bound parameter every
/// time that parameter is bound again.
pub async fn latest_for_customer(tx: &mut Tx, customer_id: i64) -> sqlx::Result<Vec<Activity>> {
    run!(tx, |c| sqlx::query_as(concat!(customer_activities!(), "5")).bind(customer_id).fetch_all(c).await)
}

/// The user's latest visit or meeting that happened at or after `since`.
pub async fn latest_visit(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    since: DateTime<Utc>,
) -> sqlx::Result<Option<Activity>> {
    run!(tx, |c| sqlx::query_as(concat!(
        activity_select!(),
        "WHERE a.org_id = $1 AND a.user_id = $2 AND a.kind IN ('visit', 'meeting') AND a.created_at >= $3
         ORDER BY a.created_at DESC, a.id DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(user_id)
    .bind(since)
    .fetch_optional(c)
    .await)
}

pub async fn set_location(tx: &mut Tx, id: i64, location: &str) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE activities SET location = $2 WHERE id = $1")
        .bind(id)
        .bind(location)
        .execute(c)
        .await
        .map(|_| ()))
}

/// API filters for activities.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub customer_id: Option<i64>,
    pub user_id: Option<i64>,
    pub kind: Option<ActivityKind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Activities on the customers the actor may see.
pub async fn page(tx: &mut Tx, page: &super::Page, f: &ActivityFilter) -> sqlx::Result<Vec<Activity>> {
    crate::api_page!(tx, Activity, concat!(activity_select!(), "WHERE a.org_id = "), "c.owner_id", "a.id", page, |qb| {
        if let Some(c) = f.customer_id {
            qb.push(" AND a.customer_id = ").push_bind(c);
        }
        if let Some(u) = f.user_id {
            qb.push(" AND a.user_id = ").push_bind(u);
        }
        if let Some(kind) = f.kind {
            qb.push(" AND a.kind = ").push_bind(kind.as_str());
        }
        if let Some(since) = f.since {
            qb.push(" AND a.occurred_at >= ").push_bind(since);
        }
        if let Some(until) = f.until {
            qb.push(" AND a.occurred_at < ").push_bind(until);
        }
    })
}
