//! `/api/v1/rules`: the org's lead assignment rules, in order of priority.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::leads::user_ref;
use super::{ApiCaller, ErrorBody, V1Error, in_tx};
use crate::crm::lead_rules::{NewRule, Rule, Strategy, Target};
use crate::crm::{self, CrmError};
use crate::http::AppState;
use crate::store::{self, Tx};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleOut {
    pub id: i64,
    pub name: String,
    /// 1 = tried first.
    pub position: i64,
    /// Conditions; `null` holds for any lead.
    pub region_prefix: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    pub tag: Option<String>,
    /// The user the rule gives leads to (handle), or
    pub target_user: Option<String>,
    /// the team (name) whose reps share them.
    pub target_team: Option<String>,
    /// `round_robin` or `least_loaded`.
    #[schema(example = "round_robin")]
    pub strategy: String,
    /// Most open leads a rep may hold under this rule.
    pub capacity: Option<i64>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// Names of the org's users (handles) and teams, to show rule targets.
struct Names {
    users: HashMap<i64, String>,
    teams: HashMap<i64, String>,
}

impl Names {
    async fn load(tx: &mut Tx, org_id: i64) -> crm::Result<Self> {
        let users = crm::users::list_users(tx, org_id).await?.into_iter().map(|u| (u.id, u.handle)).collect();
        let teams = store::users::teams(tx, org_id).await?.into_iter().map(|t| (t.id, t.name)).collect();
        Ok(Self { users, teams })
    }

    fn rule(&self, r: Rule) -> RuleOut {
        RuleOut {
            id: r.id,
            target_user: r.target_user_id.and_then(|id| self.users.get(&id).cloned()),
            target_team: r.target_team_id.and_then(|id| self.teams.get(&id).cloned()),
            name: r.name,
            position: r.position,
            region_prefix: r.region_prefix,
            industry: r.industry,
            source: r.source,
            tag: r.tag,
            strategy: r.strategy,
            capacity: r.capacity,
            active: r.active,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    pub rules: Vec<RuleOut>,
}

/// The org's assignment rules, first tried first.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    responses(
        (status = 200, description = "The rules in order", body = RuleList),
        (status = 400, description = "A malformed id, query or body", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody)
    )
)]
pub async fn list_rules(State(state): State<AppState>, caller: ApiCaller) -> Result<Json<RuleList>, V1Error> {
    caller.require_full()?;
    let ctx = caller.ctx(state.clock.now());
    let mut tx = state.db.begin_read().await?;
    let rules = crm::lead_rules::list_rules(&mut tx, &ctx).await?;
    let names = Names::load(&mut tx, ctx.org_id()).await?;
    tx.commit().await?;
    Ok(Json(RuleList { rules: rules.into_iter().map(|r| names.rule(r)).collect() }))
}

/// A new rule. Give exactly one of `user` and `team`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    #[schema(example = "青岛制造业")]
    pub name: String,
    /// 1 = first; absent = last.
    pub position: Option<i64>,
    /// Leads whose region starts with this, e.g. `青岛`.
    pub region_prefix: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    pub tag: Option<String>,
    /// Handle of the user who gets the leads.
    pub user: Option<String>,
    /// Name of the team whose reps share the leads.
    pub team: Option<String>,
    /// `round_robin` (default) or `least_loaded`; for a team.
    pub strategy: Option<String>,
    /// Most open leads a rep may hold under this rule (at least 1).
    pub capacity: Option<i64>,
}

/// Add a rule.
#[utoipa::path(
    post,
    path = "/api/v1/rules",
    tag = "rules",
    request_body = RuleIn,
    responses(
        (status = 201, description = "The new rule", body = RuleOut),
        (status = 400, description = "Invalid rule, unknown user or team", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody),
        (status = 409, description = "A rule with that name exists", body = ErrorBody)
    )
)]
pub async fn create_rule(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<RuleIn>, JsonRejection>,
) -> Result<(StatusCode, Json<RuleOut>), V1Error> {
    caller.require_full()?;
    let Json(body) = body.map_err(crate::http::ApiError::from)?;
    let strategy = match body.strategy.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.parse::<Strategy>().map_err(|e| V1Error::bad_request("bad_strategy", e))?,
        None => Strategy::RoundRobin,
    };
    let ctx = caller.ctx(state.clock.now());
    let out = in_tx!(state.db, |tx| {
        async {
            let target = match (body.user.as_deref(), body.team.as_deref()) {
                (Some(u), None) => Target::User(user_ref(&mut tx, ctx.org_id(), u).await?.id),
                (None, Some(t)) => match crm::users::team_by_name(&mut tx, &ctx, t.trim()).await {
                    Ok(team) => Target::Team(team.id),
                    Err(CrmError::NotFound(_)) => {
                        return Err(V1Error::bad_request(
                            "unknown_team",
                            format!("no team `{}` in this org", t.trim()),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                },
                _ => return Err(V1Error::bad_request("bad_target", "give exactly one of `user` and `team`")),
            };
            let new = NewRule {
                name: body.name.clone(),
                position: body.position,
                region_prefix: body.region_prefix.clone(),
                industry: body.industry.clone(),
                source: body.source.clone(),
                tag: body.tag.clone(),
                target,
                strategy,
                capacity: body.capacity,
            };
            let rule = crm::lead_rules::create_rule(&mut tx, &ctx, new).await?;
            let names = Names::load(&mut tx, ctx.org_id()).await?;
            Ok::<_, V1Error>(names.rule(rule))
        }
        .await
    })?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Delete a rule; the rules after it move up.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = i64, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The deleted rule", body = RuleOut),
        (status = 400, description = "A malformed id, query or body", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "An intake-only token", body = ErrorBody),
        (status = 404, description = "No such rule in this token's org", body = ErrorBody)
    )
)]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<RuleOut>, V1Error> {
    caller.require_full()?;
    let id = super::leads::path_id(id)?;
    let ctx = caller.ctx(state.clock.now());
    let out = in_tx!(state.db, |tx| {
        async {
            let names = Names::load(&mut tx, ctx.org_id()).await?;
            let rule = crm::lead_rules::delete_rule(&mut tx, &ctx, id).await?;
            Ok::<_, V1Error>(names.rule(rule))
        }
        .await
    })?;
    Ok(Json(out))
}
