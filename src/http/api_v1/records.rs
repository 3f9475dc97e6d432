//! `/api/v1/customers`, `/deals`, `/activities`, `/tasks`, `/users`, `/teams`: the CRM's records
//! with the permissions of chat. An org token acts as the org (everything); a user token
//! (`chatcrm tokens create --user HANDLE`) as that user: a rep sees their own records, a manager
//! the team's, their own and unowned ones. Lists are newest first (`order=oldest` for the other
//! way) and page by cursor: pass the `next_cursor` of a page to get the next one; records added
//! meanwhile never shift a page.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::leads::{path_id, user_ref};
use super::{ApiCaller, ErrorBody, V1Error, in_tx};
use crate::crm::activities::NewActivity;
use crate::crm::{
    self, Activity, ActivityKind, Contact, Customer, Deal, DealStatus, StageMove, Task, TaskStatus, Team, User,
};
use crate::http::AppState;
use crate::store::{self, Page};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// Paging shared by every list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct Paging {
    /// Rows per page, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `newest` (default) or `oldest` first.
    pub order: Option<String>,
}

fn blank(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Paging {
    fn page(&self, caller: &ApiCaller) -> Result<Page, V1Error> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(V1Error::bad_request("bad_limit", format!("limit must be 1 to {MAX_LIMIT}")));
        }
        let after = match blank(&self.cursor) {
            Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                V1Error::bad_request("bad_cursor", "cursor must be the next_cursor of a previous page")
            })?),
            None => None,
        };
        let oldest_first = match blank(&self.order).as_deref() {
            None | Some("newest") => false,
            Some("oldest") => true,
            Some(other) => {
                return Err(V1Error::bad_request("bad_order", format!("order `{other}`: use newest or oldest")));
            }
        };
        // One row more than asked tells whether another page follows.
        Ok(Page { actor: caller.actor.clone(), after, limit: limit + 1, oldest_first })
    }
}

/// Cuts the extra row and returns the cursor of the next page, if any.
fn finish<T>(mut rows: Vec<T>, page: &Page, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    let more = rows.len() as i64 >= page.limit;
    if more {
        rows.truncate((page.limit - 1).max(0) as usize);
    }
    let next = if more { rows.last().map(|r| id(r).to_string()) } else { None };
    (rows, next)
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, V1Error> {
    q.map(|Query(q)| q).map_err(|e| V1Error::bad_request("bad_query", e.body_text()))
}

fn parse<T: std::str::FromStr<Err = String>>(what: &'static str, v: &Option<String>) -> Result<Option<T>, V1Error> {
    match blank(v) {
        Some(s) => s.parse::<T>().map(Some).map_err(|e| V1Error::bad_request(what, e)),
        None => Ok(None),
    }
}

async fn owner_filter(tx: &mut store::Tx, org_id: i64, owner: &Option<String>) -> Result<Option<i64>, V1Error> {
    match blank(owner) {
        Some(who) => Ok(Some(user_ref(tx, org_id, &who).await?.id)),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CustomerQuery {
    /// Handle or name of the owner.
    pub owner: Option<String>,
    /// `A`, `B` or `C`.
    pub grade: Option<String>,
    pub tag: Option<String>,
    /// Part of the name.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerList {
    pub customers: Vec<Customer>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// List customers.
#[utoipa::path(
    get,
    path = "/api/v1/customers",
    tag = "customers",
    params(CustomerQuery, Paging),
    responses(
        (status = 200, description = "A page of customers", body = CustomerList),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_customers(
    State(state): State<AppState>,
    caller: ApiCaller,
    q: Result<Query<CustomerQuery>, QueryRejection>,
    p: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<CustomerList>, V1Error> {
    caller.require_full()?;
    let (q, page) = (query(q)?, query(p)?.page(&caller)?);
    let grade = match blank(&q.grade) {
        Some(g) => Some(g.to_uppercase().parse::<crm::Grade>().map_err(|e| V1Error::bad_request("bad_grade", e))?),
        None => None,
    };
    let mut tx = state.db.begin_read().await?;
    let f = store::customers::CustomerFilter {
        owner_id: owner_filter(&mut tx, caller.org_id, &q.owner).await?,
        grade: grade.map(|g| g.as_str().to_string()),
        tag: blank(&q.tag),
        name: blank(&q.name),
    };
    let rows = store::customers::page(&mut tx, &page, &f).await?;
    tx.commit().await?;
    let (customers, next_cursor) = finish(rows, &page, |c| c.id);
    Ok(Json(CustomerList { customers, next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerOut {
    #[serde(flatten)]
    pub customer: Customer,
    pub tags: Vec<String>,
    pub contacts: Vec<Contact>,
}

/// Read one customer, with its contacts and tags.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer", body = CustomerOut),
        (status = 400, description = "A malformed id, query or body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's customer, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such customer in this org", body = ErrorBody)
    )
)]
pub async fn get_customer(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<axum::extract::Path<i64>, PathRejection>,
) -> Result<Json<CustomerOut>, V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let ctx = caller.ctx(state.clock.now());
    let mut tx = state.db.begin_read().await?;
    let d = crm::customers::customer_detail(&mut tx, &ctx, id).await?;
    tx.commit().await?;
    Ok(Json(CustomerOut { customer: d.customer, tags: d.tags, contacts: d.contacts }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DealQuery {
    pub owner: Option<String>,
    pub customer_id: Option<i64>,
    /// `open`, `won` or `lost`.
    pub status: Option<String>,
    /// A stage key, e.g. `proposal`.
    pub stage: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DealList {
    pub deals: Vec<Deal>,
    pub next_cursor: Option<String>,
}

/// List deals.
#[utoipa::path(
    get,
    path = "/api/v1/deals",
    tag = "deals",
    params(DealQuery, Paging),
    responses(
        (status = 200, description = "A page of deals", body = DealList),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_deals(
    State(state): State<AppState>,
    caller: ApiCaller,
    q: Result<Query<DealQuery>, QueryRejection>,
    p: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<DealList>, V1Error> {
    caller.require_full()?;
    let (q, page) = (query(q)?, query(p)?.page(&caller)?);
    let status = parse::<DealStatus>("bad_status", &q.status)?;
    let mut tx = state.db.begin_read().await?;
    let f = store::deals::DealFilter {
        owner_id: owner_filter(&mut tx, caller.org_id, &q.owner).await?,
        customer_id: q.customer_id,
        status,
        stage: blank(&q.stage),
    };
    let rows = store::deals::page(&mut tx, &page, &f).await?;
    tx.commit().await?;
    let (deals, next_cursor) = finish(rows, &page, |d| d.id);
    Ok(Json(DealList { deals, next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DealOut {
    #[serde(flatten)]
    pub deal: Deal,
    /// Every stage change, oldest first (the first is the creation).
    pub history: Vec<StageMove>,
}

/// Read one deal with its stage history.
#[utoipa::path(
    get,
    path = "/api/v1/deals/{id}",
    tag = "deals",
    params(("id" = i64, Path, description = "Deal id")),
    responses(
        (status = 200, description = "The deal", body = DealOut),
        (status = 400, description = "A malformed id, query or body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's deal, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such deal in this org", body = ErrorBody)
    )
)]
pub async fn get_deal(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<axum::extract::Path<i64>, PathRejection>,
) -> Result<Json<DealOut>, V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let ctx = caller.ctx(state.clock.now());
    let mut tx = state.db.begin_read().await?;
    let d = crm::deals::deal_detail(&mut tx, &ctx, id).await?;
    tx.commit().await?;
    Ok(Json(DealOut { deal: d.deal, history: d.history }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ActivityQuery {
    pub customer_id: Option<i64>,
    /// Handle or name of who logged it.
    pub user: Option<String>,
    /// `visit`, `call`, `wechat`, `email`, `meeting` or `note`.
    pub kind: Option<String>,
    /// RFC 3339; from this instant on.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339; before this instant.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityList {
    pub activities: Vec<Activity>,
    pub next_cursor: Option<String>,
}

/// List activities (on the customers the caller may see).
#[utoipa::path(
    get,
    path = "/api/v1/activities",
    tag = "activities",
    params(ActivityQuery, Paging),
    responses(
        (status = 200, description = "A page of activities", body = ActivityList),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_activities(
    State(state): State<AppState>,
    caller: ApiCaller,
    q: Result<Query<ActivityQuery>, QueryRejection>,
    p: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<ActivityList>, V1Error> {
    caller.require_full()?;
    let (q, page) = (query(q)?, query(p)?.page(&caller)?);
    let kind = parse::<ActivityKind>("bad_kind", &q.kind)?;
    let mut tx = state.db.begin_read().await?;
    let f = store::activities::ActivityFilter {
        customer_id: q.customer_id,
        user_id: owner_filter(&mut tx, caller.org_id, &q.user).await?,
        kind,
        since: q.since,
        until: q.until,
    };
    let rows = store::activities::page(&mut tx, &page, &f).await?;
    tx.commit().await?;
    let (activities, next_cursor) = finish(rows, &page, |a| a.id);
    Ok(Json(ActivityList { activities, next_cursor }))
}

/// An activity to log.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityIn {
    pub customer_id: i64,
    /// `visit`, `call`, `wechat`, `email`, `meeting` or `note`.
    #[schema(example = "visit")]
    pub kind: String,
    #[schema(example = "聊了二期报价，对方嫌贵")]
    pub content: String,
    /// When it happened (RFC 3339); default now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub next_step: Option<String>,
}

/// Log an activity (as the token's user; an org token cannot, as nobody did it).
#[utoipa::path(
    post,
    path = "/api/v1/activities",
    tag = "activities",
    request_body = ActivityIn,
    responses(
        (status = 201, description = "Logged", body = Activity),
        (status = 400, description = "Malformed or invalid body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's customer, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody)
    )
)]
pub async fn create_activity(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<ActivityIn>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Activity>), V1Error> {
    caller.require_full()?;
    let Json(body) = body.map_err(|e| V1Error::bad_request("bad_body", e.body_text()))?;
    let kind = body.kind.trim().parse::<ActivityKind>().map_err(|e| V1Error::bad_request("bad_kind", e))?;
    let ctx = caller.ctx(state.clock.now());
    let new = NewActivity {
        customer_id: body.customer_id,
        kind,
        content: body.content,
        occurred_at: body.occurred_at,
        next_step: body.next_step,
        location: None,
        follow_up: None,
    };
    let logged =
        in_tx!(state.db, |tx| crm::activities::log_activity(&mut tx, &ctx, new.clone()).await.map_err(V1Error::from))?;
    Ok((axum::http::StatusCode::CREATED, Json(logged.activity)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TaskQuery {
    pub owner: Option<String>,
    /// `open`, `done` or `cancelled`.
    pub status: Option<String>,
    /// RFC 3339: due before this instant (e.g. now, for the overdue ones).
    pub due_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// List tasks.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(TaskQuery, Paging),
    responses(
        (status = 200, description = "A page of tasks", body = TaskList),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: ApiCaller,
    q: Result<Query<TaskQuery>, QueryRejection>,
    p: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<TaskList>, V1Error> {
    caller.require_full()?;
    let (q, page) = (query(q)?, query(p)?.page(&caller)?);
    let status = parse::<TaskStatus>("bad_status", &q.status)?;
    let mut tx = state.db.begin_read().await?;
    let f = store::tasks::TaskFilter {
        owner_id: owner_filter(&mut tx, caller.org_id, &q.owner).await?,
        status,
        due_before: q.due_before,
    };
    let rows = store::tasks::page(&mut tx, &page, &f).await?;
    tx.commit().await?;
    let (tasks, next_cursor) = finish(rows, &page, |t| t.id);
    Ok(Json(TaskList { tasks, next_cursor }))
}

/// Complete a task.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/complete",
    tag = "tasks",
    params(("id" = i64, Path, description = "Task id")),
    responses(
        (status = 200, description = "The completed task", body = Task),
        (status = 400, description = "Already closed", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's task, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such task in this org", body = ErrorBody)
    )
)]
pub async fn complete_task(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<axum::extract::Path<i64>, PathRejection>,
) -> Result<Json<Task>, V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let ctx = caller.ctx(state.clock.now());
    let task = in_tx!(state.db, |tx| crm::tasks::complete_task(&mut tx, &ctx, id).await.map_err(V1Error::from))?;
    Ok(Json(task))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

/// The org's users (everyone may see who is in the org, as chat's `@` mentions do).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    responses(
        (status = 200, description = "Users", body = UserList),
        (status = 400, description = "A malformed id, query or body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_users(State(state): State<AppState>, caller: ApiCaller) -> Result<Json<UserList>, V1Error> {
    caller.require_full()?;
    let mut tx = state.db.begin_read().await?;
    let users = crm::users::list_users(&mut tx, caller.org_id).await?;
    tx.commit().await?;
    Ok(Json(UserList { users }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    pub teams: Vec<Team>,
}

/// The org's teams.
#[utoipa::path(
    get,
    path = "/api/v1/teams",
    tag = "users",
    responses(
        (status = 200, description = "Teams", body = TeamList),
        (status = 400, description = "A malformed id, query or body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_teams(State(state): State<AppState>, caller: ApiCaller) -> Result<Json<TeamList>, V1Error> {
    caller.require_full()?;
    let mut tx = state.db.begin_read().await?;
    let teams = store::users::teams(&mut tx, caller.org_id).await?;
    tx.commit().await?;
    Ok(Json(TeamList { teams }))
}

/// A customer to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    #[schema(example = "海尔智家股份有限公司")]
    pub name: String,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    /// `A`, `B` or `C`.
    pub grade: Option<String>,
    /// Handle or name of the owner (managers and admins; default: the token's user).
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A change to a customer: fields given are set, tags added or removed.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatchIn {
    pub industry: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    pub grade: Option<String>,
    /// Handle or name of the new owner (managers and admins).
    pub owner: Option<String>,
    #[serde(default)]
    pub add_tags: Vec<String>,
    #[serde(default)]
    pub remove_tags: Vec<String>,
}

fn grade_of(g: &Option<String>) -> Result<Option<crm::Grade>, V1Error> {
    match blank(g) {
        Some(g) => g.to_uppercase().parse::<crm::Grade>().map(Some).map_err(|e| V1Error::bad_request("bad_grade", e)),
        None => Ok(None),
    }
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, V1Error> {
    b.map(|Json(b)| b).map_err(|e| V1Error::bad_request("bad_body", e.body_text()))
}

/// Create a customer (a duplicate name is a 409 naming the existing one).
#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    request_body = CustomerIn,
    responses(
        (status = 201, description = "Created", body = Customer),
        (status = 400, description = "Malformed or invalid body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "A rep naming another owner, or an intake-only token", body = ErrorBody),
        (status = 409, description = "A customer with that name exists", body = ErrorBody)
    )
)]
pub async fn create_customer(
    State(state): State<AppState>,
    caller: ApiCaller,
    b: Result<Json<CustomerIn>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Customer>), V1Error> {
    caller.require_full()?;
    let b = body(b)?;
    let grade = grade_of(&b.grade)?;
    let ctx = caller.ctx(state.clock.now());
    let c = in_tx!(state.db, |tx| async {
        let owner_id = owner_filter(&mut tx, caller.org_id, &b.owner).await?;
        let new = crm::customers::NewCustomer {
            name: b.name.clone(),
            industry: b.industry.clone(),
            region: b.region.clone(),
            source: b.source.clone(),
            grade,
            owner_id,
            tags: b.tags.clone(),
        };
        Ok::<_, V1Error>(crm::customers::create_customer(&mut tx, &ctx, new).await?)
    }
    .await)?;
    Ok((axum::http::StatusCode::CREATED, Json(c)))
}

/// Change a customer.
#[utoipa::path(
    patch,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    request_body = CustomerPatchIn,
    responses(
        (status = 200, description = "The customer after the change", body = Customer),
        (status = 400, description = "Malformed or invalid body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's customer, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such customer in this org", body = ErrorBody)
    )
)]
pub async fn update_customer(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<axum::extract::Path<i64>, PathRejection>,
    b: Result<Json<CustomerPatchIn>, JsonRejection>,
) -> Result<Json<Customer>, V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let b = body(b)?;
    let grade = grade_of(&b.grade)?;
    let ctx = caller.ctx(state.clock.now());
    let c = in_tx!(state.db, |tx| async {
        let owner_id = owner_filter(&mut tx, caller.org_id, &b.owner).await?;
        let patch = crm::customers::CustomerPatch {
            industry: b.industry.clone(),
            region: b.region.clone(),
            source: b.source.clone(),
            grade,
            owner_id,
            add_tags: b.add_tags.clone(),
            remove_tags: b.remove_tags.clone(),
        };
        Ok::<_, V1Error>(crm::customers::update_customer(&mut tx, &ctx, id, patch).await?)
    }
    .await)?;
    Ok(Json(c))
}

/// A deal to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealIn {
    pub customer_id: i64,
    #[schema(example = "二期产线升级")]
    pub title: String,
    /// In 分 (1 元 = 100).
    #[schema(example = 12000000)]
    pub amount_fen: i64,
    /// An open stage key or name; default the first stage.
    pub stage: Option<String>,
    pub expected_close: Option<chrono::NaiveDate>,
}

/// A change to an open deal; to win or lose it, `status`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealPatchIn {
    pub title: Option<String>,
    pub amount_fen: Option<i64>,
    /// An open stage key or name.
    pub stage: Option<String>,
    pub expected_close: Option<chrono::NaiveDate>,
    /// `won` or `lost` closes the deal.
    pub status: Option<String>,
    /// For a lost deal, e.g. `price`, `competitor`.
    pub lost_reason: Option<String>,
}

/// Create a deal on a customer the caller may see.
#[utoipa::path(
    post,
    path = "/api/v1/deals",
    tag = "deals",
    request_body = DealIn,
    responses(
        (status = 201, description = "Created", body = Deal),
        (status = 400, description = "Malformed or invalid body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's customer, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody)
    )
)]
pub async fn create_deal(
    State(state): State<AppState>,
    caller: ApiCaller,
    b: Result<Json<DealIn>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Deal>), V1Error> {
    caller.require_full()?;
    let b = body(b)?;
    let ctx = caller.ctx(state.clock.now());
    let new = crm::deals::NewDeal {
        customer_id: b.customer_id,
        title: b.title,
        amount_fen: b.amount_fen,
        stage: b.stage,
        expected_close: b.expected_close,
        owner_id: None,
    };
    let d = in_tx!(state.db, |tx| crm::deals::create_deal(&mut tx, &ctx, new.clone()).await.map_err(V1Error::from))?;
    Ok((axum::http::StatusCode::CREATED, Json(d)))
}

/// Change a deal: fields, stage, or close it.
#[utoipa::path(
    patch,
    path = "/api/v1/deals/{id}",
    tag = "deals",
    params(("id" = i64, Path, description = "Deal id")),
    request_body = DealPatchIn,
    responses(
        (status = 200, description = "The deal after the change", body = Deal),
        (status = 400, description = "Malformed or invalid body, or a closed deal", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's deal, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such deal in this org", body = ErrorBody)
    )
)]
pub async fn update_deal(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<axum::extract::Path<i64>, PathRejection>,
    b: Result<Json<DealPatchIn>, JsonRejection>,
) -> Result<Json<Deal>, V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let b = body(b)?;
    let close = match blank(&b.status).as_deref() {
        None | Some("open") => None,
        Some("won") => Some(true),
        Some("lost") => Some(false),
        Some(other) => {
            return Err(V1Error::bad_request(
                "bad_status",
                format!("status `{other}`: use won or lost to close a deal"),
            ));
        }
    };
    let reason = parse::<crm::LostReason>("bad_lost_reason", &b.lost_reason)?;
    let ctx = caller.ctx(state.clock.now());
    let patch = crm::deals::DealPatch {
        title: b.title.clone(),
        amount_fen: b.amount_fen,
        stage: b.stage.clone(),
        expected_close: b.expected_close,
    };
    let changes_fields = patch.title.is_some() || patch.stage.is_some() || patch.expected_close.is_some();
    let d = in_tx!(state.db, |tx| async {
        let mut d = crm::deals::get_deal(&mut tx, &ctx, id).await?;
        if changes_fields || (close.is_none() && patch.amount_fen.is_some()) {
            d = crm::deals::update_deal(&mut tx, &ctx, id, patch.clone()).await?;
        }
        if let Some(won) = close {
            let amount = if changes_fields { None } else { patch.amount_fen };
            d = crm::deals::close_deal(&mut tx, &ctx, id, won, amount, reason).await?;
        }
        Ok::<_, V1Error>(d)
    }
    .await)?;
    Ok(Json(d))
}

/// A task to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIn {
    #[schema(example = "给海尔打电话确认报价")]
    pub title: String,
    /// RFC 3339; the owner is reminded then.
    pub due_at: DateTime<Utc>,
    /// Handle or name (managers and admins); default the token's user.
    pub owner: Option<String>,
    pub customer_id: Option<i64>,
    pub deal_id: Option<i64>,
}

/// Create a task (with its reminder).
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body = TaskIn,
    responses(
        (status = 201, description = "Created", body = Task),
        (status = 400, description = "Malformed or invalid body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not allowed for that owner, or an intake-only token", body = ErrorBody)
    )
)]
pub async fn create_task(
    State(state): State<AppState>,
    caller: ApiCaller,
    b: Result<Json<TaskIn>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Task>), V1Error> {
    caller.require_full()?;
    let b = body(b)?;
    let ctx = caller.ctx(state.clock.now());
    let t = in_tx!(state.db, |tx| async {
        let owner_id = owner_filter(&mut tx, caller.org_id, &b.owner).await?;
        let new = crm::tasks::NewTask {
            title: b.title.clone(),
            due_at: b.due_at,
            owner_id,
            customer_id: b.customer_id,
            deal_id: b.deal_id,
            origin: crm::TaskOrigin::Manual,
        };
        Ok::<_, V1Error>(crm::tasks::create_task(&mut tx, &ctx, new).await?)
    }
    .await)?;
    Ok((axum::http::StatusCode::CREATED, Json(t)))
}

/// A contact person to add to a customer.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    #[schema(example = "王经理")]
    pub name: String,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub wechat: Option<String>,
    pub email: Option<String>,
}

/// Add a contact to a customer the caller may change.
#[utoipa::path(
    post,
    path = "/api/v1/customers/{id}/contacts",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    request_body = ContactIn,
    responses(
        (status = 201, description = "Added", body = Contact),
        (status = 400, description = "A malformed id or body", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "Not this caller's customer, or an intake-only token", body = ErrorBody),
        (status = 404, description = "No such customer in this org", body = ErrorBody)
    )
)]
pub async fn add_contact(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<axum::extract::Path<i64>, PathRejection>,
    b: Result<Json<ContactIn>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Contact>), V1Error> {
    caller.require_full()?;
    let id = path_id(id)?;
    let b = body(b)?;
    let ctx = caller.ctx(state.clock.now());
    let c = in_tx!(state.db, |tx| {
        let new = crm::customers::NewContact {
            name: &b.name,
            title: b.title.as_deref(),
            phone: b.phone.as_deref(),
            wechat: b.wechat.as_deref(),
            email: b.email.as_deref(),
        };
        crm::customers::add_contact(&mut tx, &ctx, id, new).await.map_err(V1Error::from)
    })?;
    Ok((axum::http::StatusCode::CREATED, Json(c)))
}
