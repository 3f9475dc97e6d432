//! Lead assignment rules: which rep a new lead goes to, and why.
//!
//! Rules are ordered. The first active rule whose conditions all hold (a condition left empty
//! holds for any lead) and whose target has someone available takes the lead: a user target, or a
//! team by round robin or least loaded, skipping users who are inactive, on leave or at the rule's
//! capacity. A rule that matches but finds nobody available is passed over (and the reason says
//! so); when no rule takes the lead it goes to the public pool.

use serde::Serialize;

use super::{Ctx, Result, Role, audit, clean_opt, clean_text, forbidden, invalid, not_found};
use crate::store::lead_rules::{Candidate, LeadRule, NewRuleRow};
use crate::store::{self, Tx};

pub use crate::store::lead_rules::LeadRule as Rule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    LeastLoaded,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLoaded => "least_loaded",
        }
    }

    fn zh(s: &str) -> &'static str {
        if s == "least_loaded" { "最少负载" } else { "轮流" }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_lowercase().as_str() {
            "round_robin" | "round-robin" | "rr" | "轮流" | "轮询" => Ok(Strategy::RoundRobin),
            "least_loaded" | "least-loaded" | "least" | "最少" | "最少负载" | "负载最少" => {
                Ok(Strategy::LeastLoaded)
            }
            other => Err(format!("`{other}` is not a strategy: use round_robin (轮流) or least_loaded (最少负载)")),
        }
    }
}

/// Who a rule gives leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    User(i64),
    Team(i64),
}

#[derive(Debug, Clone)]
pub struct NewRule {
    pub name: String,
    /// 1 = first; `None` = last.
    pub position: Option<i64>,
    pub region_prefix: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    pub tag: Option<String>,
    pub target: Target,
    pub strategy: Strategy,
    /// Most open leads a rep may hold under this rule.
    pub capacity: Option<i64>,
}

/// What a lead is routed by.
#[derive(Debug, Clone, Default)]
pub struct LeadFacts<'a> {
    pub region: Option<&'a str>,
    pub industry: Option<&'a str>,
    pub source: Option<&'a str>,
    pub tags: &'a [String],
}

/// Where routing sent a lead, and why in one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routed {
    pub user_id: Option<i64>,
    pub user_name: Option<String>,
    pub rule: Option<String>,
    pub reason: String,
}

/// Managers manage rules for their own team; admins for everyone.
fn may_manage(ctx: &Ctx, target: Target, user_team: Option<i64>) -> Result<()> {
    super::require_manager(
        ctx,
        "只有经理或管理员可以管理分配规则",
        "only managers and admins can manage assignment rules",
    )?;
    if ctx.actor.role == Role::Manager {
        let team = match target {
            Target::Team(t) => Some(t),
            Target::User(_) => user_team,
        };
        if team.is_none() || team != ctx.actor.team_id {
            return Err(forbidden("经理只能把线索分给自己团队", "a manager can only route leads to their own team"));
        }
    }
    Ok(())
}

pub async fn create_rule(tx: &mut Tx, ctx: &Ctx, new: NewRule) -> Result<LeadRule> {
    let name = clean_text("规则名称", "rule name", &new.name, 50)?;
    let user_team = match new.target {
        Target::User(id) => {
            let u = super::users::user_by_id(tx, ctx.org_id(), id).await?;
            if !u.active {
                return Err(invalid(format!("{} 已停用", u.name), format!("{} is inactive", u.name)));
            }
            u.team_id
        }
        Target::Team(id) => {
            let teams = store::users::teams(tx, ctx.org_id()).await?;
            if !teams.iter().any(|t| t.id == id) {
                return Err(not_found(format!("团队 #{id} 不存在"), format!("team #{id} does not exist")));
            }
            Some(id)
        }
    };
    may_manage(ctx, new.target, user_team)?;
    if new.capacity.is_some_and(|c| c < 1) {
        return Err(invalid("容量至少是 1", "capacity must be at least 1"));
    }
    if store::lead_rules::by_name(tx, ctx.org_id(), &name).await?.is_some() {
        return Err(super::CrmError::Conflict(super::text(
            format!("已经有叫「{name}」的规则了"),
            format!("a rule named `{name}` already exists"),
        )));
    }
    let region = clean_opt("地区", "region", new.region_prefix.as_deref(), 50)?;
    let industry = clean_opt("行业", "industry", new.industry.as_deref(), 50)?;
    let source = clean_opt("来源", "source", new.source.as_deref(), 50)?;
    let tag = clean_opt("标签", "tag", new.tag.as_deref(), 30)?;
    let (target_user_id, target_team_id) = match new.target {
        Target::User(u) => (Some(u), None),
        Target::Team(t) => (None, Some(t)),
    };
    let id = store::lead_rules::insert(
        tx,
        &NewRuleRow {
            org_id: ctx.org_id(),
            name: &name,
            position: new.position,
            region_prefix: region.as_deref(),
            industry: industry.as_deref(),
            source: source.as_deref(),
            tag: tag.as_deref(),
            target_user_id,
            target_team_id,
            strategy: new.strategy.as_str(),
            capacity: new.capacity,
            now: ctx.now,
        },
    )
    .await?;
    let rule = get_rule(tx, ctx, id).await?;
    audit(tx, ctx, "create", "lead_rule", id, None::<&()>, Some(&rule)).await?;
    Ok(rule)
}

pub async fn get_rule(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<LeadRule> {
    store::lead_rules::by_id(tx, ctx.org_id(), id)
        .await?
        .ok_or_else(|| not_found(format!("规则 #{id} 不存在"), format!("rule #{id} does not exist")))
}

/// A rule by `#id` or name.
pub async fn find_rule(tx: &mut Tx, ctx: &Ctx, what: &str) -> Result<LeadRule> {
    let what = what.trim();
    if let Ok(id) = what.trim_start_matches('#').parse::<i64>() {
        return get_rule(tx, ctx, id).await;
    }
    store::lead_rules::by_name(tx, ctx.org_id(), what)
        .await?
        .ok_or_else(|| not_found(format!("没有叫「{what}」的规则"), format!("no rule named `{what}`")))
}

pub async fn list_rules(tx: &mut Tx, ctx: &Ctx) -> Result<Vec<LeadRule>> {
    super::require_manager(
        ctx,
        "只有经理或管理员可以查看分配规则",
        "only managers and admins can see assignment rules",
    )?;
    Ok(store::lead_rules::list(tx, ctx.org_id()).await?)
}

async fn target_team(tx: &mut Tx, ctx: &Ctx, rule: &LeadRule) -> Result<Option<i64>> {
    Ok(match (rule.target_user_id, rule.target_team_id) {
        (Some(u), _) => super::users::user_by_id(tx, ctx.org_id(), u).await?.team_id,
        (_, t) => t,
    })
}

pub async fn delete_rule(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<LeadRule> {
    let rule = get_rule(tx, ctx, id).await?;
    let team = target_team(tx, ctx, &rule).await?;
    let target = rule.target_user_id.map_or(Target::Team(team.unwrap_or(0)), Target::User);
    may_manage(ctx, target, team)?;
    store::lead_rules::delete(tx, ctx.org_id(), id).await?;
    audit(tx, ctx, "delete", "lead_rule", id, Some(&rule), None::<&()>).await?;
    Ok(rule)
}

pub async fn set_rule_active(tx: &mut Tx, ctx: &Ctx, id: i64, active: bool) -> Result<LeadRule> {
    let before = get_rule(tx, ctx, id).await?;
    let team = target_team(tx, ctx, &before).await?;
    let target = before.target_user_id.map_or(Target::Team(team.unwrap_or(0)), Target::User);
    may_manage(ctx, target, team)?;
    store::lead_rules::set_active(tx, ctx.org_id(), id, active).await?;
    let after = get_rule(tx, ctx, id).await?;
    audit(tx, ctx, if active { "enable" } else { "disable" }, "lead_rule", id, Some(&before), Some(&after)).await?;
    Ok(after)
}

/// Whether every condition the rule sets holds for the lead.
pub fn matches(rule: &LeadRule, lead: &LeadFacts<'_>) -> bool {
    fn same(want: Option<&str>, have: Option<&str>) -> bool {
        match want.map(str::trim).filter(|w| !w.is_empty()) {
            None => true,
            Some(w) => have.is_some_and(|h| h.trim().eq_ignore_ascii_case(w)),
        }
    }
    let region = match rule.region_prefix.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => true,
        // "青岛市" also covers a lead written "青岛" + district, and vice versa for the 市 suffix.
        Some(p) => lead.region.is_some_and(|r| {
            let r = r.trim();
            r.starts_with(p)
                || r.starts_with(p.trim_end_matches(['市', '省'])) && !p.trim_end_matches(['市', '省']).is_empty()
        }),
    };
    let tag = match rule.tag.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => true,
        Some(t) => lead.tags.iter().any(|have| have.trim().eq_ignore_ascii_case(t)),
    };
    region && tag && same(rule.industry.as_deref(), lead.industry) && same(rule.source.as_deref(), lead.source)
}

/// One line on what the rule looks at, e.g. "地区 青岛、行业 制造业".
pub fn describe(rule: &LeadRule) -> String {
    let mut parts = Vec::new();
    for (label, v) in
        [("地区", &rule.region_prefix), ("行业", &rule.industry), ("来源", &rule.source), ("标签", &rule.tag)]
    {
        if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
            parts.push(format!("{label} {v}"));
        }
    }
    if parts.is_empty() { "所有线索".to_string() } else { parts.join("、") }
}

/// Picks the owner for a new lead by the org's rules. Round robin advances the rule's cursor in the
/// caller's transaction.
pub async fn route(tx: &mut Tx, ctx: &Ctx, lead: &LeadFacts<'_>) -> Result<Routed> {
    let rules = store::lead_rules::list(tx, ctx.org_id()).await?;
    let mut passed = Vec::new();
    for rule in rules.iter().filter(|r| r.active && matches(r, lead)) {
        let mut candidates: Vec<Candidate> = match (rule.target_user_id, rule.target_team_id) {
            (Some(u), _) => store::lead_rules::user_candidate(tx, ctx.org_id(), u).await?.into_iter().collect(),
            (None, Some(t)) => store::lead_rules::team_candidates(tx, ctx.org_id(), t).await?,
            (None, None) => Vec::new(),
        };
        if let Some(cap) = rule.capacity {
            candidates.retain(|c| c.open_leads < cap);
        }
        let pick = if rule.strategy == "least_loaded" {
            candidates.iter().min_by_key(|c| (c.open_leads, c.id)).cloned()
        } else {
            // The first after the last one served, wrapping around.
            candidates.iter().find(|c| c.id > rule.rr_cursor).or_else(|| candidates.first()).cloned()
        };
        let Some(pick) = pick else {
            passed.push(format!("规则『{}』匹配但没有可分配的人（停用、休假或已满）", rule.name));
            continue;
        };
        if rule.strategy != "least_loaded" && rule.target_team_id.is_some() {
            store::lead_rules::set_cursor(tx, rule.id, pick.id).await?;
        }
        let how =
            if rule.target_team_id.is_some() { format!("，{}", Strategy::zh(&rule.strategy)) } else { String::new() };
        let mut reason = format!("按规则『{}』（{}{how}）分配给 {}", rule.name, describe(rule), pick.name);
        if !passed.is_empty() {
            reason.push_str(&format!("；{}", passed.join("；")));
        }
        return Ok(Routed {
            user_id: Some(pick.id),
            user_name: Some(pick.name),
            rule: Some(rule.name.clone()),
            reason,
        });
    }
    let mut reason = if rules.iter().any(|r| r.active) {
        "没有匹配的分配规则，进入公海".to_string()
    } else {
        "还没有分配规则，进入公海".to_string()
    };
    if !passed.is_empty() {
        reason = format!("{}；进入公海", passed.join("；"));
    }
    Ok(Routed { user_id: None, user_name: None, rule: None, reason })
}
