//! Lead assignment rules.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Tx;
use crate::run;

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct LeadRule {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub position: i64,
    pub region_prefix: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    pub tag: Option<String>,
    pub target_user_id: Option<i64>,
    pub target_team_id: Option<i64>,
    /// `round_robin` or `least_loaded` (a user target has one candidate either way).
    pub strategy: String,
    pub capacity: Option<i64>,
    pub rr_cursor: i64,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

pub struct NewRuleRow<'a> {
    pub org_id: i64,
    pub name: &'a str,
    pub position: Option<i64>,
    pub region_prefix: Option<&'a str>,
    pub industry: Option<&'a str>,
    pub source: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub target_user_id: Option<i64>,
    pub target_team_id: Option<i64>,
    pub strategy: &'a str,
    pub capacity: Option<i64>,
    pub now: DateTime<Utc>,
}

/// Inserts at `position` (shifting the rules from there down) or at the end.
pub async fn insert(tx: &mut Tx, r: &NewRuleRow<'_>) -> sqlx::Result<i64> {
    let end: i64 =
        run!(tx, |c| sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) + 1 FROM lead_rules WHERE org_id = $1")
            .bind(r.org_id)
            .fetch_one(c)
            .await)?;
    let position = r.position.filter(|p| *p >= 1 && *p < end).unwrap_or(end);
    run!(tx, |c| sqlx::query("UPDATE lead_rules SET position = position + 1 WHERE org_id = $1 AND position >= $2")
        .bind(r.org_id)
        .bind(position)
        .execute(c)
        .await
        .map(|_| ()))?;
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO lead_rules (org_id, name, position, region_prefix, industry, source, tag, target_user_id,
                                 target_team_id, strategy, capacity, rr_cursor, active, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, TRUE, $12) RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.name)
    .bind(position)
    .bind(r.region_prefix)
    .bind(r.industry)
    .bind(r.source)
    .bind(r.tag)
    .bind(r.target_user_id)
    .bind(r.target_team_id)
    .bind(r.strategy)
    .bind(r.capacity)
    .bind(r.now)
    .fetch_one(c)
    .await)
}

/// In order of priority.
pub async fn list(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<LeadRule>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM lead_rules WHERE org_id = $1 ORDER BY position, id")
        .bind(org_id)
        .fetch_all(c)
        .await)
}

pub async fn by_id(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<Option<LeadRule>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM lead_rules WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

pub async fn by_name(tx: &mut Tx, org_id: i64, name: &str) -> sqlx::Result<Option<LeadRule>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM lead_rules WHERE org_id = $1 AND name = $2")
        .bind(org_id)
        .bind(name)
        .fetch_optional(c)
        .await)
}

/// Removes a rule and closes the gap in the order.
pub async fn delete(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<bool> {
    let pos: Option<i64> =
        run!(tx, |c| sqlx::query_scalar("DELETE FROM lead_rules WHERE org_id = $1 AND id = $2 RETURNING position")
            .bind(org_id)
            .bind(id)
            .fetch_optional(c)
            .await)?;
    let Some(pos) = pos else { return Ok(false) };
    run!(tx, |c| sqlx::query("UPDATE lead_rules SET position = position - 1 WHERE org_id = $1 AND position > $2")
        .bind(org_id)
        .bind(pos)
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(true)
}

pub async fn set_active(tx: &mut Tx, org_id: i64, id: i64, active: bool) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query("UPDATE lead_rules SET active = $3 WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .bind(active)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1))
}

pub async fn set_cursor(tx: &mut Tx, id: i64, user_id: i64) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE lead_rules SET rr_cursor = $2 WHERE id = $1")
        .bind(id)
        .bind(user_id)
        .execute(c)
        .await
        .map(|_| ()))
}

/// A user who could take a lead, with how many open leads they hold.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: i64,
    pub name: String,
    pub open_leads: i64,
}

macro_rules! candidate_select {
    () => {
        "SELECT u.id, u.name,
                (SELECT COUNT(*) FROM leads l WHERE l.org_id = u.org_id AND l.owner_id = u.id
                 AND l.status IN ('assigned', 'contacted', 'qualified')) AS open_leads
         FROM users u WHERE u.org_id = $1 AND u.active AND NOT u.on_leave "
    };
}

/// The team's reps who are active and not on leave, by id.
pub async fn team_candidates(tx: &mut Tx, org_id: i64, team_id: i64) -> sqlx::Result<Vec<Candidate>> {
    run!(tx, |c| sqlx::query_as(concat!(candidate_select!(), "AND u.team_id = $2 AND u.role = 'rep' ORDER BY u.id"))
        .bind(org_id)
        .bind(team_id)
        .fetch_all(c)
        .await)
}

/// The user, if active and not on leave.
pub async fn user_candidate(tx: &mut Tx, org_id: i64, user_id: i64) -> sqlx::Result<Option<Candidate>> {
    run!(tx, |c| sqlx::query_as(concat!(candidate_select!(), "AND u.id = $2"))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(c)
        .await)
}
