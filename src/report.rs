//! Reports on demand: the pipeline by stage and the daily/weekly digest, for a rep (their own
//! records), a manager (their team) or an admin (the org). Scoping follows the same rule as the
//! services: `Actor::can_access` on each record's owner.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::crm::{self, ActivityKind, Ctx, DealStatus, Role, User};
use crate::store::{self, Tx};

#[derive(Debug, Clone, Serialize)]
pub struct StageLine {
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    pub probability: i64,
    pub count: usize,
    pub amount_fen: i64,
    pub weighted_fen: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub team: bool,
    pub stages: Vec<StageLine>,
    pub total_count: usize,
    pub total_fen: i64,
    pub weighted_fen: i64,
}

/// Open deals per stage. `team = false` narrows a manager or admin to their own deals.
pub async fn pipeline(tx: &mut Tx, ctx: &Ctx, team: bool) -> crm::Result<Pipeline> {
    let stages = crm::orgs::stages(tx, ctx.org_id()).await?;
    let mut deals = crm::deals::open_deals(tx, ctx).await?;
    let team = team && ctx.actor.role != Role::Rep;
    if !team {
        deals.retain(|d| Some(d.owner_id) == ctx.actor.user_id);
    }
    let mut lines: Vec<StageLine> = stages
        .iter()
        .filter(|s| s.outcome == DealStatus::Open)
        .map(|s| StageLine {
            key: s.key.clone(),
            name_zh: s.name_zh.clone(),
            name_en: s.name_en.clone(),
            probability: s.probability,
            count: 0,
            amount_fen: 0,
            weighted_fen: 0,
        })
        .collect();
    for d in &deals {
        if let Some(l) = lines.iter_mut().find(|l| l.key == d.stage) {
            l.count += 1;
            l.amount_fen = l.amount_fen.saturating_add(d.amount_fen);
            l.weighted_fen = l.weighted_fen.saturating_add(d.amount_fen.saturating_mul(d.probability) / 100);
        }
    }
    Ok(Pipeline {
        team,
        total_count: lines.iter().map(|l| l.count).sum(),
        total_fen: lines.iter().map(|l| l.amount_fen).sum(),
        weighted_fen: lines.iter().map(|l| l.weighted_fen).sum(),
        stages: lines,
    })
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepLine {
    pub user_id: i64,
    pub name: String,
    pub visits: usize,
    pub calls: usize,
    pub other: usize,
    pub customers_touched: usize,
    pub new_customers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MoveLine {
    pub deal_id: i64,
    pub title: String,
    pub amount_fen: i64,
    pub owner: String,
    pub from_stage: String,
    pub to_stage: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverdueLine {
    pub task_id: i64,
    pub title: String,
    pub owner: String,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Digest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reps: Vec<RepLine>,
    pub moves: Vec<MoveLine>,
    pub won: Vec<MoveLine>,
    pub lost: Vec<MoveLine>,
    pub overdue: Vec<OverdueLine>,
}

/// The period ending now: today so far (`week = false`) or this week since Monday, in `tz`.
pub fn period(now: DateTime<Utc>, tz: Tz, week: bool) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = now.with_timezone(&tz).date_naive();
    let start = if week {
        local.checked_sub_days(Days::new(u64::from(local.weekday().num_days_from_monday()))).unwrap_or(local)
    } else {
        local
    };
    let from = tz
        .from_local_datetime(&start.and_time(NaiveTime::MIN))
        .earliest()
        .map_or(now - Duration::days(1), |d| d.with_timezone(&Utc));
    (from, now)
}

pub async fn digest(tx: &mut Tx, ctx: &Ctx, tz: Tz, week: bool) -> crm::Result<Digest> {
    let (from, to) = period(ctx.now, tz, week);
    digest_between(tx, ctx, from, to).await
}

/// The digest of `[from, to)` as the actor may see it (their team, or the org for an admin).
pub async fn digest_between(tx: &mut Tx, ctx: &Ctx, from: DateTime<Utc>, to: DateTime<Utc>) -> crm::Result<Digest> {
    let users: BTreeMap<i64, User> = crm::users::list_users(tx, ctx.org_id())
        .await?
        .into_iter()
        .filter(|u| ctx.actor.can_access(Some(u.id), u.team_id))
        .map(|u| (u.id, u))
        .collect();
    let name = |id: i64| users.get(&id).map_or_else(|| format!("#{id}"), |u| u.name.clone());
    let mut reps: BTreeMap<i64, (RepLine, std::collections::BTreeSet<i64>)> = BTreeMap::new();
    for row in store::report::activities_between(tx, ctx.org_id(), from, to).await? {
        let Some(u) = users.get(&row.user_id) else { continue };
        let (line, touched) = reps.entry(u.id).or_insert_with(|| {
            (RepLine { user_id: u.id, name: u.name.clone(), ..Default::default() }, Default::default())
        });
        match row.kind {
            ActivityKind::Visit | ActivityKind::Meeting => line.visits += 1,
            ActivityKind::Call => line.calls += 1,
            _ => line.other += 1,
        }
        touched.insert(row.customer_id);
    }
    for owner in store::report::customers_created_between(tx, ctx.org_id(), from, to).await?.into_iter().flatten() {
        let Some(u) = users.get(&owner) else { continue };
        let (line, _) = reps.entry(u.id).or_insert_with(|| {
            (RepLine { user_id: u.id, name: u.name.clone(), ..Default::default() }, Default::default())
        });
        line.new_customers += 1;
    }
    let reps = reps
        .into_values()
        .map(|(mut l, touched)| {
            l.customers_touched = touched.len();
            l
        })
        .collect();
    let (mut moves, mut won, mut lost) = (Vec::new(), Vec::new(), Vec::new());
    for m in store::report::stage_moves_between(tx, ctx.org_id(), from, to).await? {
        if !users.contains_key(&m.owner_id) {
            continue;
        }
        let line = MoveLine {
            deal_id: m.deal_id,
            title: m.title,
            amount_fen: m.amount_fen,
            owner: name(m.owner_id),
            from_stage: m.from_stage.unwrap_or_default(),
            to_stage: m.to_stage.clone(),
        };
        match m.to_stage.as_str() {
            "won" => won.push(line),
            "lost" => lost.push(line),
            _ => moves.push(line),
        }
    }
    let overdue = store::report::overdue_tasks(tx, ctx.org_id(), ctx.now)
        .await?
        .into_iter()
        .filter(|t| users.contains_key(&t.owner_id))
        .map(|t| OverdueLine { task_id: t.id, title: t.title, owner: name(t.owner_id), due_at: t.due_at })
        .collect();
    Ok(Digest { from, to, reps, moves, won, lost, overdue })
}
