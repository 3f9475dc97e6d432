//! `/api/v1/leads`: intake (idempotent with `Idempotency-Key`), get, list with filters, assign.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{ApiCaller, Begin, ErrorBody, V1Error, in_tx};
use crate::crm::leads::{Intake, NewLead};
use crate::crm::{self, CrmError, Lead, LeadStatus};
use crate::http::AppState;
use crate::outbox::Routes;
use crate::run;
use crate::store::{self, Tx};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set (to `true`) on a response replayed for a repeated `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_KEY_LEN: usize = 255;
const MAX_TAGS: usize = 20;
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// A lead to take in.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadIn {
    /// The company (required); a lead with the same company or phone as an open lead is a
    /// duplicate, and one whose company is already a customer is not taken in.
    #[schema(example = "青岛海科机械有限公司")]
    pub company: String,
    pub contact_name: Option<String>,
    #[schema(example = "13800000000")]
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Where the lead came from, e.g. `website`; a rule condition.
    pub source: Option<String>,
    /// e.g. `青岛市南区`; rules match it by prefix.
    pub region: Option<String>,
    pub industry: Option<String>,
    /// Up to 20 tags, rule conditions.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Put the lead in the public pool instead of routing it by the rules.
    #[serde(default)]
    pub to_pool: bool,
}

/// A lead's owner.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerOut {
    pub id: i64,
    pub handle: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadOut {
    pub id: i64,
    pub company: String,
    pub contact_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    /// `new`, `assigned`, `contacted`, `qualified`, `converted`, `discarded` or `pool`.
    #[schema(example = "assigned")]
    pub status: String,
    /// `null` while in the public pool.
    pub owner: Option<OwnerOut>,
    pub tags: Vec<String>,
    /// Why it has its owner: the rule that matched, a manual assignment, the pool.
    pub assign_reason: Option<String>,
    pub assigned_at: Option<DateTime<Utc>>,
    /// The customer it was converted to.
    pub customer_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl LeadOut {
    fn new(lead: Lead, owner: Option<OwnerOut>) -> Self {
        Self {
            id: lead.id,
            company: lead.company,
            contact_name: lead.contact_name,
            phone: lead.phone,
            email: lead.email,
            source: lead.source,
            region: lead.region,
            industry: lead.industry,
            status: lead.status.as_str().to_string(),
            owner,
            tags: lead.tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect(),
            assign_reason: lead.assign_reason,
            assigned_at: lead.assigned_at,
            customer_id: lead.customer_id,
            created_at: lead.created_at,
            updated_at: lead.updated_at,
        }
    }

    /// With the owner looked up.
    async fn load(tx: &mut Tx, lead: Lead) -> crm::Result<Self> {
        let owner = match lead.owner_id {
            Some(id) => {
                let u = crm::users::user_by_id(tx, lead.org_id, id).await?;
                Some(OwnerOut { id: u.id, handle: u.handle, name: u.name })
            }
            None => None,
        };
        Ok(Self::new(lead, owner))
    }
}

/// How the assignment rules placed a new lead.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutedOut {
    /// `rule` (a rule gave it to a rep) or `pool` (no rule took it, or `to_pool` was asked).
    #[schema(example = "rule")]
    pub by: String,
    /// The rule's name when `by` is `rule`.
    pub rule: Option<String>,
    /// One line on why, e.g. `按规则『青岛』（地区 青岛，轮流）分配给 李雷`.
    pub reason: String,
}

/// What an intake did. `created` (201) has `lead` and `routed`; `duplicate` (200) names the open
/// lead with the same company or phone (the submission is recorded on its history); `customer`
/// (200) names the existing customer with that company. The existing record's id is given only
/// to a caller who may see that record (`null` otherwise); nothing else about it is returned.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntakeOut {
    /// `created`, `duplicate` or `customer`.
    #[schema(example = "created")]
    pub outcome: String,
    /// The new lead (`created`) or the existing one (`duplicate`).
    pub lead_id: Option<i64>,
    /// The existing customer (`customer`).
    pub customer_id: Option<i64>,
    pub lead: Option<LeadOut>,
    pub routed: Option<RoutedOut>,
}

fn bad_json(e: serde_json::Error) -> V1Error {
    V1Error::bad_request("bad_json", format!("request body is not valid JSON for this endpoint: {e}"))
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters, or absent.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, V1Error> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else { return Ok(None) };
    let key = v.to_str().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(V1Error::bad_request(
            "bad_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// Hex SHA-256 of the body as parsed JSON (so spacing and key order do not matter).
fn body_hash(body: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

/// The status and JSON body of an intake, and whether it replays an earlier one.
pub struct Answer {
    status: u16,
    body: String,
    replayed: bool,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut res = (status, [(header::CONTENT_TYPE, "application/json")], self.body).into_response();
        if self.replayed {
            res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        res
    }
}

/// Take in a lead.
///
/// Dedupes against open leads (same phone or company) and customers, then routes it by the
/// org's assignment rules (or to the public pool) and tells the rep it was given to. With an
/// `Idempotency-Key`, a repeat of the same request returns the first response (header
/// `Idempotent-Replayed: true`) and does nothing; the same key with a different body is refused
/// (422).
#[utoipa::path(
    post,
    path = "/api/v1/leads",
    tag = "leads",
    request_body = LeadIn,
    params(
        ("Idempotency-Key" = Option<String>, Header,
         description = "Makes retries safe: the same key and body give one lead and the same response")
    ),
    responses(
        (status = 201, description = "A new lead", body = IntakeOut),
        (status = 200, description = "A duplicate of an open lead, or an existing customer", body = IntakeOut),
        (status = 400, description = "Invalid body or header", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with a different body", body = ErrorBody),
        (status = 503, description = "Database unavailable or too busy; nothing was stored", body = ErrorBody)
    )
)]
pub async fn create_lead(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Answer, V1Error> {
    let key = idempotency_key(&headers)?;
    let Json(raw) = body.map_err(crate::http::ApiError::from)?;
    let input: LeadIn = serde_json::from_value(raw.clone()).map_err(bad_json)?;
    if input.tags.len() > MAX_TAGS {
        return Err(V1Error::bad_request("invalid", format!("at most {MAX_TAGS} tags")));
    }
    let hash = body_hash(&raw);
    let now = state.clock.now();
    let ctx = caller.ctx(now);
    let routes = Routes::from_settings(&state.settings);
    in_tx!(state.db, Begin::OrgSerialized(caller.org_id), |tx| {
        intake_once(&mut tx, &ctx, &routes, key.as_deref(), &hash, &input).await
    })
}

async fn intake_once(
    tx: &mut Tx,
    ctx: &crm::Ctx,
    routes: &Routes,
    key: Option<&str>,
    hash: &str,
    input: &LeadIn,
) -> Result<Answer, V1Error> {
    if let Some(key) = key
        && let Some(stored) = store::tokens::stored_response(tx, ctx.org_id(), key).await?
    {
        if stored.request_hash != hash {
            return Err(V1Error::Unprocessable(
                "idempotency_key_reused",
                format!(
                    "Idempotency-Key `{key}` was already used with a different request body; \
                     send a new key for a new lead, or the same body to get the first response"
                ),
            ));
        }
        return Ok(Answer { status: stored.status as u16, body: stored.response, replayed: true });
    }
    let new = NewLead {
        company: input.company.clone(),
        contact_name: input.contact_name.clone(),
        phone: input.phone.clone(),
        email: input.email.clone(),
        source: input.source.clone(),
        region: input.region.clone(),
        industry: input.industry.clone(),
        to_pool: input.to_pool,
        tags: input.tags.clone(),
    };
    let (status, out) = match crm::leads::intake(tx, ctx, new).await? {
        Intake::Created { lead, routed } => {
            if let Some(r) = &routed
                && let (Some(user_id), Some(rule)) = (r.user_id, r.rule.as_deref())
            {
                let why = format!("按规则『{rule}』分配给你");
                crate::outbox::notify_lead_assigned(tx, routes, &lead, user_id, &why, ctx.now).await?;
            }
            let routed = match routed {
                Some(r) => RoutedOut {
                    by: if r.user_id.is_some() { "rule" } else { "pool" }.into(),
                    rule: r.rule.filter(|_| r.user_id.is_some()),
                    reason: r.reason,
                },
                None => {
                    RoutedOut { by: "pool".into(), rule: None, reason: lead.assign_reason.clone().unwrap_or_default() }
                }
            };
            let id = lead.id;
            let lead = LeadOut::load(tx, lead).await?;
            let out = IntakeOut {
                outcome: "created".into(),
                lead_id: Some(id),
                customer_id: None,
                lead: Some(lead),
                routed: Some(routed),
            };
            (201u16, out)
        }
        Intake::Duplicate { lead, .. } => (
            200,
            IntakeOut {
                outcome: "duplicate".into(),
                // Which lead only to a caller who may see it, as in chat (`duplicate_refusal`).
                lead_id: (lead.status == crm::LeadStatus::Pool
                    || ctx.actor.can_access(lead.owner_id, lead.owner_team_id))
                .then_some(lead.id),
                customer_id: None,
                lead: None,
                routed: None,
            },
        ),
        Intake::Customer { customer } => (
            200,
            IntakeOut {
                outcome: "customer".into(),
                lead_id: None,
                customer_id: ctx.actor.can_access(customer.owner_id, customer.owner_team_id).then_some(customer.id),
                lead: None,
                routed: None,
            },
        ),
    };
    let body =
        serde_json::to_string(&out).map_err(|e| V1Error::Api(crate::http::ApiError::Unavailable(e.to_string())))?;
    if let Some(key) = key
        && !store::tokens::save_response(tx, ctx.org_id(), key, hash, i64::from(status), &body, ctx.now).await?
    {
        return Err(V1Error::KeyRace);
    }
    Ok(Answer { status, body, replayed: false })
}

/// Filters of `GET /api/v1/leads`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `new`, `assigned`, `contacted`, `qualified`, `converted`, `discarded` or `pool`.
    pub status: Option<String>,
    /// The owner's handle.
    pub owner: Option<String>,
    /// Exact source.
    pub source: Option<String>,
    /// Region prefix: `青岛` matches `青岛市南区`.
    pub region: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// Leads to skip (default 0).
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadList {
    /// Oldest first.
    pub leads: Vec<LeadOut>,
    /// Leads matching the filters, in all.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// List the leads the caller may see, oldest first, with optional filters: an org token all of
/// the org's, a rep's token the rep's own, a manager's token the team's, the manager's own and
/// unowned ones (the public pool); never a lead `GET /api/v1/leads/{id}` would refuse.
#[utoipa::path(
    get,
    path = "/api/v1/leads",
    tag = "leads",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of leads", body = LeadList),
        (status = 400, description = "A bad filter (unknown status or owner, limit out of range)", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_leads(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<LeadList>, V1Error> {
    caller.require_full()?;
    let Query(q) = query.map_err(|e| V1Error::bad_request("bad_query", e.body_text()))?;
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<LeadStatus>().map_err(|e| V1Error::bad_request("bad_status", e))?),
        None => None,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(V1Error::bad_request("bad_limit", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(V1Error::bad_request("bad_offset", "offset must be 0 or more"));
    }
    let blank = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let mut tx = state.db.begin_read().await?;
    let owner_id = match blank(q.owner) {
        Some(who) => Some(user_ref(&mut tx, caller.org_id, &who).await?.id),
        None => None,
    };
    // A rep's token lists the rep's own leads, as chat does; a manager's token the leads
    // `Actor::can_access` admits (the team's, the manager's own and unowned ones), never another
    // team's.
    let (owner_id, manager) = match (caller.actor.role, caller.actor.user_id) {
        (crm::Role::Rep, Some(me)) => (Some(me), None),
        (crm::Role::Manager, Some(me)) => (owner_id, Some(me)),
        _ => (owner_id, None),
    };
    let filter = LeadFilter {
        org_id: caller.org_id,
        status,
        owner_id,
        source: blank(q.source),
        region: blank(q.region),
        manager,
        manager_team: caller.actor.team_id,
    };
    let total = count_leads(&mut tx, &filter).await?;
    let rows = list_lead_rows(&mut tx, &filter, limit, offset).await?;
    tx.commit().await?;
    let leads = rows
        .into_iter()
        .map(|r| {
            let owner = match (r.lead.owner_id, r.owner_handle, r.owner_name) {
                (Some(id), Some(handle), Some(name)) => Some(OwnerOut { id, handle, name }),
                _ => None,
            };
            LeadOut::new(r.lead, owner)
        })
        .collect();
    Ok(Json(LeadList { leads, total, limit, offset }))
}

/// A user named in a request (filter or body): unknown is the caller's mistake (400), not a
/// missing resource.
pub(super) async fn user_ref(tx: &mut Tx, org_id: i64, who: &str) -> Result<crm::User, V1Error> {
    match crm::users::find_user(tx, org_id, who).await {
        Ok(u) => Ok(u),
        Err(CrmError::NotFound(_)) => {
            Err(V1Error::bad_request("unknown_user", format!("no user `{}` in this org", who.trim_start_matches('@'))))
        }
        Err(e) => Err(e.into()),
    }
}

/// An id from the path; a non-number is the caller's mistake (400).
pub(super) fn path_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, V1Error> {
    id.map(|Path(id)| id).map_err(|e| V1Error::bad_request("bad_id", e.body_text()))
}

/// Read one lead.
#[utoipa::path(
    get,
    path = "/api/v1/leads/{id}",
    tag = "leads",
    params(("id" = i64, Path, description = "Lead id")),
    responses(
        (status = 200, description = "The lead", body = LeadOut),
        (status = 400, description = "A malformed id, query or body", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody),
        (status = 404, description = "No such lead in this token's org", body = ErrorBody)
    )
)]
pub async fn get_lead(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<LeadOut>, V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let ctx = caller.ctx(state.clock.now());
    let mut tx = state.db.begin_read().await?;
    let lead = crm::leads::get_lead(&mut tx, &ctx, id).await?;
    let out = LeadOut::load(&mut tx, lead).await?;
    tx.commit().await?;
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignIn {
    /// The handle (or unique display name) of the user to give the lead to.
    #[schema(example = "lilei")]
    pub user: String,
}

/// Give a lead to a user; they are notified.
#[utoipa::path(
    post,
    path = "/api/v1/leads/{id}/assign",
    tag = "leads",
    params(("id" = i64, Path, description = "Lead id")),
    request_body = AssignIn,
    responses(
        (status = 200, description = "The lead, assigned", body = LeadOut),
        (status = 400, description = "Unknown or inactive user, or a closed lead", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody),
        (status = 404, description = "No such lead in this token's org", body = ErrorBody)
    )
)]
pub async fn assign_lead(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<AssignIn>, JsonRejection>,
) -> Result<Json<LeadOut>, V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let Json(body) = body.map_err(crate::http::ApiError::from)?;
    let ctx = caller.ctx(state.clock.now());
    let routes = Routes::from_settings(&state.settings);
    let why = format!("通过 API（{}）分配给你", caller.token_name);
    let out = in_tx!(state.db, |tx| {
        async {
            crm::leads::get_lead(&mut tx, &ctx, id).await?;
            let user = user_ref(&mut tx, ctx.org_id(), &body.user).await?;
            let lead = crm::leads::assign_lead(&mut tx, &ctx, id, user.id).await?;
            crate::outbox::notify_lead_assigned(&mut tx, &routes, &lead, user.id, &why, ctx.now).await?;
            Ok::<_, V1Error>(LeadOut::load(&mut tx, lead).await?)
        }
        .await
    })?;
    Ok(Json(out))
}

// The listing query. It belongs with the other lead queries in `store::leads`; it lives here until
// that module grows a filtered list.

struct LeadFilter {
    org_id: i64,
    status: Option<LeadStatus>,
    owner_id: Option<i64>,
    source: Option<String>,
    region: Option<String>,
    /// A manager's token: only unowned leads, the manager's own and those of `manager_team`.
    manager: Option<i64>,
    manager_team: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LeadRow {
    #[sqlx(flatten)]
    lead: Lead,
    owner_handle: Option<String>,
    owner_name: Option<String>,
}

macro_rules! filtered {
    ($head:literal, $tail:literal) => {
        concat!(
            $head,
            " FROM leads l LEFT JOIN users u ON u.id = l.owner_id
             WHERE l.org_id = $1
               AND ($2 IS NULL OR l.status = $2)
               AND ($3 IS NULL OR l.owner_id = $3)
               AND ($4 IS NULL OR l.source = $4)
               AND ($5 IS NULL OR substr(l.region, 1, length($5)) = $5)
               AND ($6 IS NULL OR l.owner_id IS NULL OR l.owner_id = $6 OR u.team_id = $7) ",
            $tail
        )
    };
}

async fn count_leads(tx: &mut Tx, f: &LeadFilter) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(filtered!("SELECT COUNT(*)", ""))
        .bind(f.org_id)
        .bind(f.status)
        .bind(f.owner_id)
        .bind(f.source.as_deref())
        .bind(f.region.as_deref())
        .bind(f.manager)
        .bind(f.manager_team)
        .fetch_one(c)
        .await)
}

async fn list_lead_rows(tx: &mut Tx, f: &LeadFilter, limit: i64, offset: i64) -> sqlx::Result<Vec<LeadRow>> {
    run!(tx, |c| sqlx::query_as(filtered!(
        "SELECT l.id, l.org_id, l.company, l.company_norm, l.contact_name, l.phone, l.phone_norm,
                l.email, l.source, l.region, l.industry, l.status, l.owner_id,
                u.team_id AS owner_team_id, l.dedupe_key, l.customer_id, l.created_at, l.updated_at,
                l.tags, l.assign_reason, l.assigned_at, l.sla_stage,
                u.handle AS owner_handle, u.name AS owner_name",
        "ORDER BY l.id LIMIT $8 OFFSET $9"
    ))
    .bind(f.org_id)
    .bind(f.status)
    .bind(f.owner_id)
    .bind(f.source.as_deref())
    .bind(f.region.as_deref())
    .bind(f.manager)
    .bind(f.manager_team)
    .bind(limit)
    .bind(offset)
    .fetch_all(c)
    .await)
}
