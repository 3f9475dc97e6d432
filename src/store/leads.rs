//! Leads (线索).

use chrono::{DateTime, Utc};

use super::Tx;
use crate::crm::model::{Lead, LeadStatus};
use crate::run;

macro_rules! lead_select {
    () => {
        "SELECT l.id, l.org_id, l.company, l.company_norm, l.contact_name, l.phone, l.phone_norm,
                l.email, l.source, l.region, l.industry, l.status, l.owner_id,
                u.team_id AS owner_team_id, l.dedupe_key, l.customer_id, l.created_at, l.updated_at,
                l.tags, l.assign_reason, l.assigned_at, l.sla_stage
         FROM leads l LEFT JOIN users u ON u.id = l.owner_id "
    };
}

pub struct NewLeadRow<'a> {
    pub org_id: i64,
    pub company: &'a str,
    pub company_norm: &'a str,
    pub contact_name: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub phone_norm: Option<&'a str>,
    pub email: Option<&'a str>,
    pub source: Option<&'a str>,
    pub region: Option<&'a str>,
    pub industry: Option<&'a str>,
    pub status: LeadStatus,
    pub owner_id: Option<i64>,
    pub dedupe_key: &'a str,
    pub customer_id: Option<i64>,
    pub tags: &'a str,
    pub assign_reason: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, r: &NewLeadRow<'_>) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO leads (org_id, company, company_norm, contact_name, phone, phone_norm, email,
                            source, region, industry, status, owner_id, dedupe_key, customer_id,
                            created_at, updated_at, tags, assign_reason, assigned_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16, $17,
                 CASE WHEN $12 IS NULL THEN NULL ELSE $15 END) RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.company)
    .bind(r.company_norm)
    .bind(r.contact_name)
    .bind(r.phone)
    .bind(r.phone_norm)
    .bind(r.email)
    .bind(r.source)
    .bind(r.region)
    .bind(r.industry)
    .bind(r.status)
    .bind(r.owner_id)
    .bind(r.dedupe_key)
    .bind(r.customer_id)
    .bind(r.now)
    .bind(r.tags)
    .bind(r.assign_reason)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<Option<Lead>> {
    run!(tx, |c| sqlx::query_as(concat!(lead_select!(), "WHERE l.org_id = $1 AND l.id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

/// Open (not converted or discarded) leads with the same phone or company.
pub async fn open_duplicates(
    tx: &mut Tx,
    org_id: i64,
    phone_norm: Option<&str>,
    company_norm: &str,
) -> sqlx::Result<Vec<Lead>> {
    run!(tx, |c| sqlx::query_as(concat!(
        lead_select!(),
        "WHERE l.org_id = $1 AND l.status NOT IN ('converted', 'discarded')
           AND ((l.phone_norm IS NOT NULL AND l.phone_norm = $2) OR l.company_norm = $3)
         ORDER BY l.id"
    ))
    .bind(org_id)
    .bind(phone_norm)
    .bind(company_norm)
    .fetch_all(c)
    .await)
}

/// Sets owner and status. A new owner restarts the SLA clock; `reason` (when given) says why the
/// lead has its owner.
#[allow(clippy::too_many_arguments)]
pub async fn set_owner_status(
    tx: &mut Tx,
    org_id: i64,
    id: i64,
    owner_id: Option<i64>,
    status: LeadStatus,
    customer_id: Option<i64>,
    now: DateTime<Utc>,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "UPDATE leads SET
                assigned_at = CASE WHEN COALESCE(owner_id, -1) <> COALESCE($3, -1) THEN
                                   CASE WHEN $3 IS NULL THEN NULL ELSE $6 END
                              ELSE assigned_at END,
                sla_stage = CASE WHEN COALESCE(owner_id, -1) <> COALESCE($3, -1) THEN 0 ELSE sla_stage END,
                assign_reason = COALESCE($7, assign_reason),
                contacted_at = CASE WHEN $4 IN ('contacted', 'qualified', 'converted')
                                    THEN COALESCE(contacted_at, $6) ELSE contacted_at END,
                converted_at = CASE WHEN $4 = 'converted' THEN COALESCE(converted_at, $6) ELSE converted_at END,
                owner_id = $3, status = $4, customer_id = $5, updated_at = $6
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org_id)
    .bind(id)
    .bind(owner_id)
    .bind(status)
    .bind(customer_id)
    .bind(now)
    .bind(reason)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn set_sla_stage(tx: &mut Tx, id: i64, stage: i64) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE leads SET sla_stage = $2 WHERE id = $1")
        .bind(id)
        .bind(stage)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Assigned leads not yet contacted, oldest assignment first (the SLA clock runs on these).
pub async fn awaiting_contact(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<Lead>> {
    run!(tx, |c| sqlx::query_as(concat!(
        lead_select!(),
        "WHERE l.org_id = $1 AND l.status = 'assigned' AND l.owner_id IS NOT NULL AND l.sla_stage < 3
         ORDER BY l.assigned_at, l.id"
    ))
    .bind(org_id)
    .fetch_all(c)
    .await)
}

pub async fn in_pool(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<Lead>> {
    run!(tx, |c| sqlx::query_as(concat!(
        lead_select!(),
        "WHERE l.org_id = $1 AND l.status = 'pool' ORDER BY l.created_at, l.id"
    ))
    .bind(org_id)
    .fetch_all(c)
    .await)
}

/// A contact logged on a customer counts for the same company's assigned leads of that user: it
/// stops their SLA clock.
pub async fn mark_contacted(
    tx: &mut Tx,
    org_id: i64,
    owner_id: i64,
    company_norm: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query(
        "UPDATE leads SET status = 'contacted', contacted_at = COALESCE(contacted_at, $4), updated_at = $4
         WHERE org_id = $1 AND owner_id = $2 AND company_norm = $3 AND status = 'assigned'"
    )
    .bind(org_id)
    .bind(owner_id)
    .bind(company_norm)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}
