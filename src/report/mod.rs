//! Analytics and digests for a rep (their own records), a team (a manager's, with the manager's
//! own records) or the org (an admin), over any period. The figures are summed in SQL
//! (`store::report`), scoped there by the same rule as `Actor::can_access`; this module only
//! names them, joins user and stage names, and derives percentages.
//!
//! [`render`] turns a [`Digest`] into markdown for each chat platform, split to its size limit.

pub mod render;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::crm::{self, Actor, Ctx, DealStatus, LostReason, Role, Stage, User};
use crate::store::Tx;
use crate::store::report::{self as q, ScopeIds};

/// Whose records a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// The whole org (admins).
    Org,
    /// A manager's team and the manager's own records.
    Team,
    /// One user's own records.
    Own,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub kind: ScopeKind,
    pub ids: ScopeIds,
}

impl Scope {
    /// Everything the actor may see: an admin (or the system) the org, a manager their team, a
    /// rep their own records.
    pub fn of(actor: &Actor) -> Self {
        match (actor.role, actor.user_id, actor.team_id) {
            (Role::Admin, _, _) | (_, None, _) => Self { kind: ScopeKind::Org, ids: ScopeIds::default() },
            (Role::Manager, Some(user), Some(team)) => {
                Self { kind: ScopeKind::Team, ids: ScopeIds { team_id: Some(team), user_id: Some(user) } }
            }
            (_, Some(user), _) => Self::own(user),
        }
    }

    /// One user's own records.
    pub fn own(user_id: i64) -> Self {
        Self { kind: ScopeKind::Own, ids: ScopeIds { team_id: None, user_id: Some(user_id) } }
    }

    /// Whether a record owned by `owner` (of team `team`) is in scope; mirrors the SQL.
    fn covers(&self, owner: Option<i64>, team: Option<i64>) -> bool {
        match (self.ids.team_id, self.ids.user_id) {
            (None, None) => true,
            (t, u) => owner.is_some() && (owner == u || (team.is_some() && team == t)),
        }
    }
}

/// Limits the report reads (the scheduler's settings where configured).
#[derive(Debug, Clone, Serialize)]
pub struct ReportOptions {
    /// The funnel's trailing window.
    pub funnel_days: i64,
    /// Days without contact after which an A-grade customer is at risk.
    pub quiet_days_a: i64,
    /// Days a deal may stay in a stage (by key) before it counts as stuck.
    pub stage_dwell_days: BTreeMap<String, u32>,
    /// Most items shown per list (the totals are always given).
    pub list_limit: i64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self::from(&crate::schedule::ScheduleSettings::default())
    }
}

impl From<&crate::schedule::ScheduleSettings> for ReportOptions {
    fn from(s: &crate::schedule::ScheduleSettings) -> Self {
        Self {
            funnel_days: i64::from(s.funnel_days),
            quiet_days_a: i64::from(s.follow_up_days_a),
            stage_dwell_days: s.stage_dwell_days.clone(),
            list_limit: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RepLine {
    pub user_id: i64,
    pub name: String,
    pub visits: i64,
    pub calls: i64,
    pub other: i64,
    pub customers_touched: i64,
    pub new_customers: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Activity {
    /// Every rep in scope (with zero lines too: a silent rep is news), then anyone else who logged.
    pub reps: Vec<RepLine>,
    pub visits: i64,
    pub calls: i64,
    pub other: i64,
    /// Distinct customers: two reps on one customer count it once.
    pub customers_touched: i64,
    pub new_customers: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceLine {
    /// Empty when the lead had no source.
    pub source: String,
    pub new: i64,
    pub converted: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Leads {
    pub new: i64,
    pub assigned: i64,
    pub contacted: i64,
    /// Contacted before the SLA clock reminded anyone.
    pub contacted_in_sla: i64,
    pub converted: i64,
    /// By source, most new first.
    pub sources: Vec<SourceLine>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StageLine {
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    pub probability: i64,
    pub count: i64,
    pub amount_fen: i64,
    pub weighted_fen: i64,
}

/// Open deals now, per stage.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Pipeline {
    pub stages: Vec<StageLine>,
    pub total_count: i64,
    pub total_fen: i64,
    pub weighted_fen: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MoveLine {
    pub deal_id: i64,
    pub title: String,
    pub amount_fen: i64,
    pub owner: String,
    pub from_stage: String,
    pub to_stage: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClosedLine {
    pub deal_id: i64,
    pub title: String,
    pub customer: String,
    pub amount_fen: i64,
    pub owner: String,
    pub lost_reason: Option<LostReason>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReasonLine {
    /// None: no reason given.
    pub reason: Option<LostReason>,
    pub deals: i64,
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Deals {
    /// Moves between open stages, latest first (at most the list limit).
    pub moves: Vec<MoveLine>,
    pub moves_total: i64,
    pub won: Vec<ClosedLine>,
    pub lost: Vec<ClosedLine>,
    pub won_fen: i64,
    pub lost_fen: i64,
    /// Lost deals by reason, most first.
    pub lost_reasons: Vec<ReasonLine>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Dwell {
    /// Deals that left the stage in the window.
    pub deals: i64,
    pub avg_days: f64,
    pub median_days: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FunnelStep {
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    /// Deals that reached this step (or passed it), and their amount.
    pub reached: i64,
    pub reached_fen: i64,
    /// Of those, the share that reached the next step, in percent; None for the last step or
    /// when none reached this one.
    pub to_next_pct: Option<f64>,
    pub dwell: Option<Dwell>,
}

/// Stage-to-stage conversion over a trailing window, from the stage history of the deals that
/// moved in it; the last step is won.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Funnel {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: i64,
    pub steps: Vec<FunnelStep>,
    /// Deals in the window's cohort.
    pub deals: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RepForecast {
    pub user_id: i64,
    pub name: String,
    pub won_fen: i64,
    pub weighted_fen: i64,
    pub target_fen: Option<i64>,
}

/// One calendar month (org time zone): won so far plus open deals expected to close in it,
/// weighted by probability, against the targets of the reps in scope.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MonthForecast {
    /// `YYYY-MM`.
    pub month: String,
    pub won_fen: i64,
    pub open_fen: i64,
    pub weighted_fen: i64,
    pub open_deals: i64,
    /// Sum of the targets set for the month (None: nobody has one).
    pub target_fen: Option<i64>,
    pub reps: Vec<RepForecast>,
}

impl MonthForecast {
    /// Won plus weighted open.
    pub fn expected_fen(&self) -> i64 {
        self.won_fen.saturating_add(self.weighted_fen)
    }

    /// Expected as a percentage of the target.
    pub fn of_target_pct(&self) -> Option<f64> {
        self.target_fen.filter(|t| *t > 0).map(|t| self.expected_fen() as f64 * 100.0 / t as f64)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RiskItem {
    pub id: i64,
    pub title: String,
    pub owner: String,
    pub customer: Option<String>,
    /// Due (tasks), last contact (customers), entered the stage (deals).
    pub since: DateTime<Utc>,
    /// The stage key (stuck deals).
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RiskList {
    pub total: i64,
    pub items: Vec<RiskItem>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Risks {
    pub overdue_tasks: RiskList,
    /// A-grade customers past their contact limit.
    pub quiet_a: RiskList,
    pub quiet_a_days: i64,
    pub stuck_deals: RiskList,
}

/// Daily or weekly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    Daily,
    Weekly,
}

/// Everything a digest says: the period's activity, leads and deal events, and, as of now, the
/// pipeline, the funnel, the forecast and the risk lists.
#[derive(Debug, Clone, Serialize)]
pub struct Digest {
    pub kind: DigestKind,
    pub scope: ScopeKind,
    /// Whose digest: the reader's name.
    pub reader: String,
    pub tz: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub activity: Activity,
    pub leads: Leads,
    pub deals: Deals,
    pub pipeline: Pipeline,
    pub funnel: Funnel,
    pub forecast: [MonthForecast; 2],
    pub risks: Risks,
    pub stages: Vec<Stage>,
}

/// The names the report joins: users of the org and the org's stages.
pub struct Names {
    users: BTreeMap<i64, User>,
    pub stages: Vec<Stage>,
}

impl Names {
    pub async fn load(tx: &mut Tx, org_id: i64) -> crm::Result<Self> {
        let users = crm::users::list_users(tx, org_id).await?.into_iter().map(|u| (u.id, u)).collect();
        let stages = crm::orgs::stages(tx, org_id).await?;
        Ok(Self { users, stages })
    }

    /// Every user of the org.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn user(&self, id: i64) -> String {
        self.users.get(&id).map_or_else(|| format!("#{id}"), |u| u.name.clone())
    }

    fn owner(&self, id: Option<i64>) -> String {
        id.map_or_else(|| "公海".to_string(), |id| self.user(id))
    }

    /// Active reps in scope (and the scope's own user), by name.
    fn reps_in(&self, scope: &Scope) -> Vec<&User> {
        let mut v: Vec<&User> = self
            .users
            .values()
            .filter(|u| u.active && scope.covers(Some(u.id), u.team_id))
            .filter(|u| u.role == Role::Rep || Some(u.id) == scope.ids.user_id)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        v
    }
}

/// Activity per rep and in total over `[from, to)`.
pub async fn activity(
    tx: &mut Tx,
    org_id: i64,
    scope: &Scope,
    names: &Names,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> crm::Result<Activity> {
    let rows = q::activity_by_user(tx, org_id, scope.ids, from, to).await?;
    let new = q::new_customers_by_owner(tx, org_id, scope.ids, from, to).await?;
    let touched = q::customers_touched(tx, org_id, scope.ids, from, to).await?;
    let mut lines: BTreeMap<i64, RepLine> = names
        .reps_in(scope)
        .into_iter()
        .map(|u| (u.id, RepLine { user_id: u.id, name: u.name.clone(), ..Default::default() }))
        .collect();
    fn line<'a>(lines: &'a mut BTreeMap<i64, RepLine>, names: &Names, id: i64) -> &'a mut RepLine {
        lines.entry(id).or_insert_with(|| RepLine { user_id: id, name: names.user(id), ..Default::default() })
    }
    for r in &rows {
        let l = line(&mut lines, names, r.user_id);
        l.visits = r.visits;
        l.calls = r.calls;
        l.other = r.other;
        l.customers_touched = r.customers;
    }
    let mut new_total = 0;
    for (owner, n) in &new {
        new_total += n;
        if let Some(owner) = owner {
            line(&mut lines, names, *owner).new_customers = *n;
        }
    }
    let mut reps: Vec<RepLine> = lines.into_values().collect();
    // Busiest first; ties by name so the order is stable.
    reps.sort_by(|a, b| {
        (b.visits + b.calls + b.other).cmp(&(a.visits + a.calls + a.other)).then_with(|| a.name.cmp(&b.name))
    });
    Ok(Activity {
        visits: rows.iter().map(|r| r.visits).sum(),
        calls: rows.iter().map(|r| r.calls).sum(),
        other: rows.iter().map(|r| r.other).sum(),
        customers_touched: touched,
        new_customers: new_total,
        reps,
    })
}

/// Lead counts over `[from, to)`.
pub async fn leads(
    tx: &mut Tx,
    org_id: i64,
    scope: &Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> crm::Result<Leads> {
    let mut out = Leads::default();
    let mut sources: BTreeMap<String, SourceLine> = BTreeMap::new();
    for r in q::leads(tx, org_id, scope.ids, from, to).await? {
        match r.what.as_str() {
            "new" => {
                out.new += r.n;
                sources
                    .entry(r.source.clone())
                    .or_insert_with(|| SourceLine { source: r.source, ..Default::default() })
                    .new += r.n;
            }
            "assigned" => out.assigned += r.n,
            "contacted" => out.contacted += r.n,
            "contacted_in_sla" => out.contacted_in_sla += r.n,
            "converted" => {
                out.converted += r.n;
                sources
                    .entry(r.source.clone())
                    .or_insert_with(|| SourceLine { source: r.source, ..Default::default() })
                    .converted += r.n;
            }
            _ => {}
        }
    }
    out.sources = sources.into_values().collect();
    out.sources.sort_by(|a, b| b.new.cmp(&a.new).then(b.converted.cmp(&a.converted)).then(a.source.cmp(&b.source)));
    Ok(out)
}

/// Open deals now, per open stage in the org's order.
pub async fn pipeline(tx: &mut Tx, org_id: i64, scope: &Scope, names: &Names) -> crm::Result<Pipeline> {
    let rows = q::open_by_stage(tx, org_id, scope.ids).await?;
    let stages: Vec<StageLine> = names
        .stages
        .iter()
        .filter(|s| s.outcome == DealStatus::Open)
        .map(|s| {
            let r = rows.iter().find(|r| r.stage == s.key);
            StageLine {
                key: s.key.clone(),
                name_zh: s.name_zh.clone(),
                name_en: s.name_en.clone(),
                probability: s.probability,
                count: r.map_or(0, |r| r.n),
                amount_fen: r.map_or(0, |r| r.amount_fen),
                weighted_fen: r.map_or(0, |r| r.weighted_fen),
            }
        })
        .collect();
    Ok(Pipeline {
        total_count: stages.iter().map(|l| l.count).sum(),
        total_fen: stages.iter().map(|l| l.amount_fen).sum(),
        weighted_fen: stages.iter().map(|l| l.weighted_fen).sum(),
        stages,
    })
}

/// Stage moves, wins and losses over `[from, to)`.
pub async fn deals(
    tx: &mut Tx,
    org_id: i64,
    scope: &Scope,
    names: &Names,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> crm::Result<Deals> {
    let (moves, moves_total) = q::stage_moves(tx, org_id, scope.ids, from, to, limit).await?;
    let mut out = Deals {
        moves: moves
            .into_iter()
            .map(|m| MoveLine {
                deal_id: m.deal_id,
                title: m.title,
                amount_fen: m.amount_fen,
                owner: names.user(m.owner_id),
                from_stage: m.from_stage,
                to_stage: m.to_stage,
            })
            .collect(),
        moves_total,
        ..Default::default()
    };
    let mut reasons: Vec<ReasonLine> = Vec::new();
    for d in q::closed(tx, org_id, scope.ids, from, to).await? {
        let reason = d.lost_reason.as_deref().and_then(|r| r.parse::<LostReason>().ok());
        let line = ClosedLine {
            deal_id: d.id,
            title: d.title,
            customer: d.customer_name,
            amount_fen: d.amount_fen,
            owner: names.user(d.owner_id),
            lost_reason: reason,
        };
        if d.status == DealStatus::Won {
            out.won_fen = out.won_fen.saturating_add(d.amount_fen);
            out.won.push(line);
        } else {
            out.lost_fen = out.lost_fen.saturating_add(d.amount_fen);
            match reasons.iter_mut().find(|r| r.reason == reason) {
                Some(r) => {
                    r.deals += 1;
                    r.amount_fen = r.amount_fen.saturating_add(d.amount_fen);
                }
                None => reasons.push(ReasonLine { reason, deals: 1, amount_fen: d.amount_fen }),
            }
            out.lost.push(line);
        }
    }
    out.lost_reasons = reasons;
    out.lost_reasons.sort_by(|a, b| b.deals.cmp(&a.deals).then(b.amount_fen.cmp(&a.amount_fen)));
    Ok(out)
}

/// The funnel over the `days` before `now`.
pub async fn funnel(
    tx: &mut Tx,
    org_id: i64,
    scope: &Scope,
    names: &Names,
    now: DateTime<Utc>,
    days: i64,
) -> crm::Result<Funnel> {
    let from = now - Duration::days(days.max(1));
    let reach = q::funnel_reach(tx, org_id, scope.ids, from, now).await?;
    let dwell = q::dwell(tx, org_id, scope.ids, from, now).await?;
    let reached_at_least = |pos: i64| reach.iter().filter(|r| r.0 >= pos).map(|r| r.1).sum::<i64>();
    let reached_fen = |pos: i64| reach.iter().filter(|r| r.0 >= pos).map(|r| r.2).sum::<i64>();
    let mut steps: Vec<FunnelStep> = Vec::new();
    let open = names.stages.iter().filter(|s| s.outcome == DealStatus::Open);
    let won = names.stages.iter().filter(|s| s.outcome == DealStatus::Won);
    for s in open.chain(won) {
        let pos = if s.outcome == DealStatus::Won { q::WON_REACH } else { s.position };
        steps.push(FunnelStep {
            key: s.key.clone(),
            name_zh: s.name_zh.clone(),
            name_en: s.name_en.clone(),
            reached: reached_at_least(pos),
            reached_fen: reached_fen(pos),
            to_next_pct: None,
            dwell: dwell.iter().find(|d| d.stage == s.key && s.outcome == DealStatus::Open).map(|d| Dwell {
                deals: d.deals,
                avg_days: d.avg_secs / 86_400.0,
                median_days: d.median_secs / 86_400.0,
            }),
        });
    }
    for i in 0..steps.len().saturating_sub(1) {
        let (here, next) = (steps[i].reached, steps[i + 1].reached);
        steps[i].to_next_pct = (here > 0).then(|| next as f64 * 100.0 / here as f64);
    }
    Ok(Funnel { from, to: now, days, deals: reach.iter().map(|r| r.1).sum(), steps })
}

/// Local midnight starting `day` in `tz` (the earliest instant when a DST change skips it).
pub fn local_midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    tz.from_local_datetime(&day.and_time(NaiveTime::MIN))
        .earliest()
        .or_else(|| tz.from_local_datetime(&day.and_hms_opt(1, 0, 0).unwrap_or_default()).earliest())
        .map_or_else(|| day.and_time(NaiveTime::MIN).and_utc(), |d| d.with_timezone(&Utc))
}

/// This month and the next, in the org's time zone, against targets.
pub async fn forecast(
    tx: &mut Tx,
    org_id: i64,
    scope: &Scope,
    names: &Names,
    now: DateTime<Utc>,
    tz: Tz,
) -> crm::Result<[MonthForecast; 2]> {
    let today = now.with_timezone(&tz).date_naive();
    let m0 = today.with_day(1).unwrap_or(today);
    let m1 = m0.checked_add_months(Months::new(1)).unwrap_or(m0);
    let m2 = m1.checked_add_months(Months::new(1)).unwrap_or(m1);
    let labels = [m0.format("%Y-%m").to_string(), m1.format("%Y-%m").to_string()];
    let open = q::forecast_open(tx, org_id, scope.ids, [m0, m1, m2]).await?;
    let won_this = q::won_by_owner(tx, org_id, scope.ids, local_midnight(m0, tz), local_midnight(m1, tz)).await?;
    let targets = q::targets(tx, org_id, scope.ids, &labels).await?;
    let mut out: [MonthForecast; 2] = Default::default();
    for (i, m) in out.iter_mut().enumerate() {
        m.month = labels[i].clone();
        let mut reps: BTreeMap<i64, RepForecast> = BTreeMap::new();
        let rep = |reps: &mut BTreeMap<i64, RepForecast>, id: i64| -> RepForecast {
            reps.remove(&id).unwrap_or_else(|| RepForecast { user_id: id, name: names.user(id), ..Default::default() })
        };
        for r in open.iter().filter(|r| r.bucket == i as i64) {
            m.open_fen = m.open_fen.saturating_add(r.open_fen);
            m.weighted_fen = m.weighted_fen.saturating_add(r.weighted_fen);
            m.open_deals += r.deals;
            let mut l = rep(&mut reps, r.owner_id);
            l.weighted_fen = l.weighted_fen.saturating_add(r.weighted_fen);
            reps.insert(r.owner_id, l);
        }
        if i == 0 {
            for (owner, won) in &won_this {
                m.won_fen = m.won_fen.saturating_add(*won);
                let mut l = rep(&mut reps, *owner);
                l.won_fen = l.won_fen.saturating_add(*won);
                reps.insert(*owner, l);
            }
        }
        for (user, _, amount) in targets.iter().filter(|t| t.1 == labels[i]) {
            m.target_fen = Some(m.target_fen.unwrap_or(0).saturating_add(*amount));
            let mut l = rep(&mut reps, *user);
            l.target_fen = Some(*amount);
            reps.insert(*user, l);
        }
        m.reps = reps.into_values().collect();
        m.reps.sort_by(|a, b| {
            (b.won_fen + b.weighted_fen).cmp(&(a.won_fen + a.weighted_fen)).then_with(|| a.name.cmp(&b.name))
        });
    }
    Ok(out)
}

/// Overdue tasks, quiet A-grade customers and stuck deals, as of `now`.
pub async fn risks(
    tx: &mut Tx,
    org_id: i64,
    scope: &Scope,
    names: &Names,
    now: DateTime<Utc>,
    opts: &ReportOptions,
) -> crm::Result<Risks> {
    let limit = opts.list_limit;
    let item = |r: q::RiskRow| RiskItem {
        id: r.id,
        title: r.title,
        owner: names.owner(r.owner_id),
        customer: r.customer_name,
        since: r.at,
        stage: r.stage,
    };
    let (rows, total) = q::overdue_tasks(tx, org_id, scope.ids, now, limit).await?;
    let overdue_tasks = RiskList { total, items: rows.into_iter().map(item).collect() };
    let before = now - Duration::days(opts.quiet_days_a);
    let (rows, total) = q::quiet_customers(tx, org_id, scope.ids, "A", before, limit).await?;
    let quiet_a = RiskList { total, items: rows.into_iter().map(item).collect() };
    let budgets: Vec<(String, DateTime<Utc>)> = opts
        .stage_dwell_days
        .iter()
        .map(|(stage, days)| (stage.clone(), now - Duration::days(i64::from(*days))))
        .collect();
    let (rows, total) = q::stuck_deals(tx, org_id, scope.ids, &budgets, limit).await?;
    let stuck_deals = RiskList { total, items: rows.into_iter().map(item).collect() };
    Ok(Risks { overdue_tasks, quiet_a, quiet_a_days: opts.quiet_days_a, stuck_deals })
}

/// The period a digest covers, ending at local midnight of `at`'s day: yesterday (daily) or the
/// seven days before (weekly).
pub fn digest_period(at: DateTime<Utc>, tz: Tz, kind: DigestKind) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = at.with_timezone(&tz).date_naive();
    let back = if kind == DigestKind::Weekly { 7 } else { 1 };
    let from_day = day.checked_sub_days(Days::new(back)).unwrap_or(day);
    (local_midnight(from_day, tz), local_midnight(day, tz))
}

/// The period so far: today (daily) or this week since Monday, up to and including `now` — what
/// `日报`/`周报` on demand show.
pub fn period_so_far(now: DateTime<Utc>, tz: Tz, kind: DigestKind) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = now.with_timezone(&tz).date_naive();
    let start = match kind {
        DigestKind::Weekly => {
            local.checked_sub_days(Days::new(u64::from(local.weekday().num_days_from_monday()))).unwrap_or(local)
        }
        DigestKind::Daily => local,
    };
    // The end is exclusive: a second past now keeps what was logged this very second.
    (local_midnight(start, tz), now + Duration::seconds(1))
}

/// The digest of `[from, to)` for `scope`, with pipeline, funnel, forecast and risks as of
/// `ctx.now`.
pub async fn digest_for(
    tx: &mut Tx,
    ctx: &Ctx,
    scope: Scope,
    kind: DigestKind,
    span: (DateTime<Utc>, DateTime<Utc>),
    opts: &ReportOptions,
) -> crm::Result<Digest> {
    let org = crm::orgs::org_by_id(tx, ctx.org_id()).await?;
    let names = Names::load(tx, org.id).await?;
    digest_with(tx, ctx, scope, kind, span, opts, &org, &names).await
}

/// [`digest_for`] with the org and its names already loaded (the scheduler makes every user's
/// digest of an org from one load).
#[allow(clippy::too_many_arguments)]
pub async fn digest_with(
    tx: &mut Tx,
    ctx: &Ctx,
    scope: Scope,
    kind: DigestKind,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    opts: &ReportOptions,
    org: &crm::Org,
    names: &Names,
) -> crm::Result<Digest> {
    let org_id = org.id;
    let tz = org.tz();
    let activity = activity(tx, org_id, &scope, names, from, to).await?;
    let leads = leads(tx, org_id, &scope, from, to).await?;
    let deals = deals(tx, org_id, &scope, names, from, to, opts.list_limit).await?;
    let pipeline = pipeline(tx, org_id, &scope, names).await?;
    let funnel = funnel(tx, org_id, &scope, names, ctx.now, opts.funnel_days).await?;
    let forecast = forecast(tx, org_id, &scope, names, ctx.now, tz).await?;
    let risks = risks(tx, org_id, &scope, names, ctx.now, opts).await?;
    let reader = ctx.actor.user_id.map_or_else(|| org.name.clone(), |id| names.user(id));
    Ok(Digest {
        kind,
        scope: scope.kind,
        reader,
        tz: tz.name().to_string(),
        from,
        to,
        now: ctx.now,
        activity,
        leads,
        deals,
        pipeline,
        funnel,
        forecast,
        risks,
        stages: names.stages.clone(),
    })
}

/// The digest of `[from, to)` as the actor may see it (their team, or the org for an admin),
/// with default options: what the scheduler sends a manager.
pub async fn digest_between(tx: &mut Tx, ctx: &Ctx, from: DateTime<Utc>, to: DateTime<Utc>) -> crm::Result<Digest> {
    let kind = if to - from > Duration::days(2) { DigestKind::Weekly } else { DigestKind::Daily };
    digest_for(tx, ctx, Scope::of(&ctx.actor), kind, (from, to), &ReportOptions::default()).await
}

/// What `漏斗` / `pipeline` shows: open deals per stage, the funnel and the forecast.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineView {
    pub scope: ScopeKind,
    pub pipeline: Pipeline,
    pub funnel: Funnel,
    pub forecast: [MonthForecast; 2],
}

pub async fn pipeline_view(tx: &mut Tx, ctx: &Ctx, scope: Scope, opts: &ReportOptions) -> crm::Result<PipelineView> {
    let org_id = ctx.org_id();
    let tz = crm::orgs::org_by_id(tx, org_id).await?.tz();
    let names = Names::load(tx, org_id).await?;
    Ok(PipelineView {
        scope: scope.kind,
        pipeline: pipeline(tx, org_id, &scope, &names).await?,
        funnel: funnel(tx, org_id, &scope, &names, ctx.now, opts.funnel_days).await?,
        forecast: forecast(tx, org_id, &scope, &names, ctx.now, tz).await?,
    })
}

/// Sets a user's monthly target (`None` clears it). Managers set their team's, admins anyone's.
pub async fn set_target(tx: &mut Tx, ctx: &Ctx, user: &User, month: &str, amount_fen: Option<i64>) -> crm::Result<()> {
    match ctx.actor.role {
        Role::Admin => {}
        Role::Manager if ctx.actor.can_access(Some(user.id), user.team_id) => {}
        Role::Manager => {
            return Err(crm::CrmError::Forbidden(crm::text(
                format!("{} 不在你的团队，不能给 TA 设目标", user.name),
                format!("{} is not in your team; you cannot set their target", user.name),
            )));
        }
        Role::Rep => {
            return Err(crm::CrmError::Forbidden(crm::text(
                "只有经理或管理员能设业绩目标",
                "only managers and admins set targets",
            )));
        }
    }
    q::set_target(tx, ctx.org_id(), user.id, month, amount_fen, ctx.actor.user_id, ctx.now).await?;
    Ok(())
}

/// The funnel and per-rep activity as a picture's input (`chart::render_png`), titled with
/// whose it is and the window.
pub fn funnel_chart(
    funnel: &Funnel,
    activity: Option<&Activity>,
    whose: &str,
    lang: crm::Lang,
) -> crate::chart::ChartInput {
    let (title, subtitle) = match lang {
        crm::Lang::Zh => (
            format!("{whose} 销售漏斗"),
            format!("近 {} 天 {} 单商机 · 阶段转化；下方为各人近 7 天的跟进", funnel.days, funnel.deals),
        ),
        crm::Lang::En => (
            format!("{whose} sales funnel"),
            format!(
                "last {} days, {} deals · stage conversion; below, each rep's activity in the last 7 days",
                funnel.days, funnel.deals
            ),
        ),
    };
    crate::chart::ChartInput {
        title,
        subtitle,
        funnel: funnel
            .steps
            .iter()
            .map(|s| crate::chart::FunnelStep {
                label: if lang == crm::Lang::Zh { s.name_zh.clone() } else { s.name_en.clone() },
                deals: u64::try_from(s.reached).unwrap_or(0),
                amount_fen: s.reached_fen,
                conversion_pct: s.to_next_pct,
            })
            .collect(),
        reps: activity
            .map(|a| {
                a.reps
                    .iter()
                    .map(|r| crate::chart::RepBar {
                        name: r.name.clone(),
                        visits: u64::try_from(r.visits).unwrap_or(0),
                        calls: u64::try_from(r.calls).unwrap_or(0),
                        other: u64::try_from(r.other).unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}
