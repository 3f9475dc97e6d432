//! Cron jobs: digests, follow-up rules, stuck deals and overdue summaries.
//!
//! A job runs once per scheduled time and org, claimed by inserting its `job_runs` row in the
//! transaction that does the work: a second instance blocks on that key, then skips. After
//! downtime only the latest missed occurrence runs (once).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{Job, Scheduler};
use crate::bot::format_time;
use crate::crm::{self, Actor, Ctx, Grade, Lang, Org, Role, TaskOrigin, User, Via};
use crate::outbox::{self, Kind, OutMessage, Outgoing};
use crate::report::{self, DigestKind, Scope, render::Dialect};
use crate::store::{self, Tx};

/// Runs every job due for every org. Returns (runs, messages queued).
pub(super) async fn run_due(s: &Scheduler, now: DateTime<Utc>) -> crm::Result<(usize, usize)> {
    if s.plan.jobs.is_empty() {
        return Ok((0, 0));
    }
    let orgs = s.orgs(now).await?;
    let (mut runs, mut queued) = (0, 0);
    for org in orgs.iter() {
        let tz = org.tz();
        for (job, cron) in &s.plan.jobs {
            let after = match s.last_run(*job, org.id) {
                Some(at) => at,
                None => {
                    let mut tx = s.db.begin_read().await?;
                    let last = store::schedule::last_job_run(&mut tx, job.key(), org.id).await?;
                    tx.commit().await?;
                    let at = last.unwrap_or(s.started);
                    s.set_last_run(*job, org.id, at);
                    at
                }
            };
            let Some(scheduled) = cron.latest_due(after, now, tz) else { continue };
            let mut tx = s.db.begin_claim().await?;
            if !store::schedule::claim_job_run(&mut tx, job.key(), org.id, scheduled, &s.instance, now).await? {
                tx.rollback().await?;
                s.set_last_run(*job, org.id, scheduled);
                continue;
            }
            let workday = s.org_plan(org).calendar.is_workday(scheduled.with_timezone(&tz).date_naive());
            let (outcome, n) = if job.workdays_only() && !workday {
                ("skipped: not a working day".to_string(), 0)
            } else {
                let n = run_job(s, &mut tx, *job, org, scheduled, now).await?;
                (format!("ok: {n} messages"), n)
            };
            store::schedule::finish_job_run(&mut tx, job.key(), org.id, scheduled, &outcome).await?;
            tx.commit().await?;
            s.set_last_run(*job, org.id, scheduled);
            tracing::info!(job = job.key(), org = org.id, %scheduled, outcome, "scheduled job ran");
            runs += 1;
            queued += n;
        }
    }
    Ok((runs, queued))
}

async fn run_job(
    s: &Scheduler,
    tx: &mut Tx,
    job: Job,
    org: &Org,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
) -> crm::Result<usize> {
    match job {
        Job::DailyDigest => digests(s, tx, org, scheduled, now, false).await,
        Job::WeeklyDigest => digests(s, tx, org, scheduled, now, true).await,
        Job::FollowUp => follow_up(s, tx, org, now).await,
        Job::StuckDeals => stuck_deals(s, tx, org, now).await,
        Job::OverdueTasks => overdue(s, tx, org, scheduled, now).await,
        Job::LeadSla => lead_sla(s, tx, org, now).await,
    }
}

/// A message for one user, queued once per key.
struct Note {
    user_id: i64,
    kind: Kind,
    message: OutMessage,
    key: String,
}

/// Queues a message for a user; true when it was new.
async fn send_to(s: &Scheduler, tx: &mut Tx, org: &Org, note: Note, now: DateTime<Utc>) -> crm::Result<bool> {
    let target = s.routes.target_for_user(tx, note.user_id).await?;
    let out = Outgoing {
        org_id: Some(org.id),
        user_id: Some(note.user_id),
        kind: note.kind,
        target: &target,
        message: &note.message,
        dedupe_key: &note.key,
        not_before: now,
    };
    Ok(outbox::enqueue(tx, &out, now).await?)
}

/// Local midnight of the day `at` falls on.
fn start_of_day(at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let day = at.with_timezone(&tz).date_naive();
    tz.from_local_datetime(&day.and_time(NaiveTime::MIN)).earliest().map_or(at, |d| d.with_timezone(&Utc))
}

/// Each manager gets their team's digest, each admin the org's and each rep their own:
/// yesterday (daily) or the last seven days (weekly), up to local midnight of the scheduled day.
/// A digest longer than the platform's limit goes out as several messages, in order.
async fn digests(
    s: &Scheduler,
    tx: &mut Tx,
    org: &Org,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
    week: bool,
) -> crm::Result<usize> {
    let kind = if week { DigestKind::Weekly } else { DigestKind::Daily };
    let span = report::digest_period(scheduled, org.tz(), kind);
    let names = report::Names::load(tx, org.id).await?;
    let users: Vec<User> = names.users().filter(|u| u.active).cloned().collect();
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let targets = s.routes.targets_for_users(tx, &ids).await?;
    let mut n = 0;
    for user in &users {
        let actor = Actor::of(user);
        let ctx = Ctx::new(actor.clone(), Via::System, now);
        let d = report::digest_with(tx, &ctx, Scope::of(&actor), kind, span, &s.plan.report, org, &names).await?;
        let Some(target) = targets.get(&user.id) else { continue };
        let chunks = report::render::digest(&d, Dialect::for_platform(&target.platform), Lang::Zh);
        let outs: Vec<(String, OutMessage)> = chunks
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                let key = format!(
                    "digest:{}:{}:{}:{i}",
                    if week { "weekly" } else { "daily" },
                    user.id,
                    scheduled.timestamp()
                );
                (key, OutMessage::markdown(text))
            })
            .collect();
        let mut outs = outs;
        // Weekly team and org digests carry the funnel picture too.
        if week && d.scope != report::ScopeKind::Own {
            let input = report::funnel_chart(&d.funnel, Some(&d.activity), &d.reader, Lang::Zh);
            match crate::chart::render_png(&input) {
                Ok(png) => outs.push((
                    format!("digest:weekly:{}:{}:png", user.id, scheduled.timestamp()),
                    OutMessage::image("销售漏斗图", png),
                )),
                Err(e) => tracing::warn!(error = %e, user = user.id, "weekly funnel chart not drawn"),
            }
        }
        let rows: Vec<Outgoing<'_>> = outs
            .iter()
            .map(|(key, message)| Outgoing {
                org_id: Some(org.id),
                user_id: Some(user.id),
                kind: Kind::Digest,
                target,
                message,
                dedupe_key: key,
                not_before: now,
            })
            .collect();
        n += outbox::enqueue_many(tx, &rows, now).await? as usize;
    }
    Ok(n)
}

fn grade_days(s: &Scheduler, g: Grade) -> i64 {
    match g {
        Grade::A => s.plan.follow_up_days[0],
        Grade::B => s.plan.follow_up_days[1],
        Grade::C => s.plan.follow_up_days[2],
    }
}

/// A customer not contacted within its grade's limit gets one open follow-up task (with its
/// reminder) for its owner; when that task is still open and the customer still uncontacted a
/// full limit later, the owner's manager is told, once.
async fn follow_up(s: &Scheduler, tx: &mut Tx, org: &Org, now: DateTime<Utc>) -> crm::Result<usize> {
    let tz = org.tz();
    let ctx = Ctx::new(Actor::system(org.id), Via::System, now);
    let mut n = 0;
    for grade in [Grade::A, Grade::B, Grade::C] {
        let days = grade_days(s, grade);
        let before = now - chrono::Duration::days(days);
        for c in store::schedule::quiet_without_rule_task(tx, org.id, grade.as_str(), before).await? {
            let since = c.last_contacted_at.unwrap_or(c.created_at);
            let quiet_days = (now - since).num_days();
            let title = format!("跟进 {}（{grade} 级客户，{quiet_days} 天未联系）", c.name);
            let args = crm::tasks::NewTask {
                title,
                due_at: now,
                owner_id: Some(c.owner_id),
                customer_id: Some(c.id),
                deal_id: None,
                origin: TaskOrigin::Rule,
            };
            crm::tasks::create_task(tx, &ctx, args).await?;
            n += 1;
        }
        let managers = managers_by_team(tx, org.id).await?;
        for m in store::schedule::missed_follow_ups(tx, org.id, grade.as_str(), before).await? {
            let text = format!(
                "⚠️ 跟进逾期：{} 的 {grade} 级客户「{}」自 {} 起的跟进任务 #{} 仍未完成，客户一直没有被联系。\n请督促跟进，或发「分配 …」把客户交给别人。",
                m.owner_name,
                m.customer_name,
                format_time(m.created_at, tz, Lang::Zh),
                m.task_id
            );
            let to = managers.get(&m.owner_team_id).or_else(|| managers.get(&None)).cloned().unwrap_or_default();
            for manager in to.iter().filter(|u| u.id != m.owner_id) {
                let key = format!("escalation:{}:{}", m.task_id, manager.id);
                if send_to(
                    s,
                    tx,
                    org,
                    Note { user_id: manager.id, kind: Kind::Notice, message: OutMessage::text(text.clone()), key },
                    now,
                )
                .await?
                {
                    n += 1;
                }
            }
            store::schedule::mark_escalated(tx, m.task_id, now).await?;
        }
    }
    Ok(n)
}

/// Managers of each team (`Some(team)`), and the org's admins under `None` for users without a
/// team manager.
async fn managers_by_team(tx: &mut Tx, org_id: i64) -> crm::Result<BTreeMap<Option<i64>, Vec<User>>> {
    let users = crm::users::list_users(tx, org_id).await?;
    let mut map: BTreeMap<Option<i64>, Vec<User>> = BTreeMap::new();
    let admins: Vec<User> = users.iter().filter(|u| u.active && u.role == Role::Admin).cloned().collect();
    for u in users.iter().filter(|u| u.active && u.role == Role::Manager && u.team_id.is_some()) {
        map.entry(u.team_id).or_default().push(u.clone());
    }
    // A team without a manager escalates to the admins too.
    let teams: Vec<Option<i64>> = users.iter().map(|u| u.team_id).collect();
    for t in teams {
        map.entry(t).or_insert_with(|| admins.clone());
    }
    map.insert(None, admins);
    Ok(map)
}

/// A deal longer than its stage's dwell budget in one stage: its owner is nudged, once per stay.
async fn stuck_deals(s: &Scheduler, tx: &mut Tx, org: &Org, now: DateTime<Utc>) -> crm::Result<usize> {
    let tz = org.tz();
    let stages = crm::orgs::stages(tx, org.id).await?;
    let mut n = 0;
    for d in store::schedule::open_deals_with_stage_entry(tx, org.id).await? {
        let Some(budget) = s.plan.stage_dwell_days.get(&d.stage) else { continue };
        let days = (now - d.entered_at).num_days();
        if days <= *budget {
            continue;
        }
        let stage = stages.iter().find(|st| st.key == d.stage).map_or(d.stage.clone(), |st| st.name_zh.clone());
        let text = format!(
            "🐢 商机 #{}「{}」（{}）在「{stage}」阶段已经 {days} 天了（自 {}，建议不超过 {budget} 天）。\n推进一下：发「商机 #{} 阶段 下一阶段」更新，或记录一次拜访。",
            d.id,
            d.title,
            d.customer_name,
            format_time(d.entered_at, tz, Lang::Zh),
            d.id
        );
        let key = format!("stuck:{}:{}:{}", d.id, d.stage, d.entered_at.timestamp());
        if send_to(
            s,
            tx,
            org,
            Note { user_id: d.owner_id, kind: Kind::Notice, message: OutMessage::text(text), key },
            now,
        )
        .await?
        {
            n += 1;
        }
    }
    Ok(n)
}

/// Each user with overdue open tasks gets a morning list of them.
async fn overdue(
    s: &Scheduler,
    tx: &mut Tx,
    org: &Org,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
) -> crm::Result<usize> {
    let tz = org.tz();
    let mut by_owner: BTreeMap<i64, Vec<store::schedule::OverdueTask>> = BTreeMap::new();
    let overdue = store::schedule::overdue_tasks(tx, org.id, now).await?;
    crate::webhooks::emit_overdue(tx, org, &overdue, scheduled, now).await?;
    for t in overdue {
        by_owner.entry(t.owner_id).or_default().push(t);
    }
    let mut n = 0;
    for (owner, tasks) in by_owner {
        let mut lines = vec![format!("📋 你有 {} 个逾期任务：", tasks.len())];
        for t in tasks.iter().take(20) {
            let customer = t.customer_name.as_deref().map(|c| format!("（{c}）")).unwrap_or_default();
            lines.push(format!("- #{} {}{customer} · 到期 {}", t.id, t.title, format_time(t.due_at, tz, Lang::Zh)));
        }
        if tasks.len() > 20 {
            lines.push(format!("…还有 {} 个", tasks.len() - 20));
        }
        lines.push("回复「完成 #编号」或「推迟 #编号 明天」处理。".to_string());
        let key = format!("overdue:{owner}:{}", scheduled.timestamp());
        if send_to(
            s,
            tx,
            org,
            Note { user_id: owner, kind: Kind::Notice, message: OutMessage::text(lines.join("\n")), key },
            now,
        )
        .await?
        {
            n += 1;
        }
    }
    Ok(n)
}

/// Working hours (hours on working days of the org's calendar) from `from` to `to`.
fn working_hours(s: &Scheduler, org: &Org, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let tz = org.tz();
    let cal = &s.org_plan(org).calendar;
    let mut total = 0.0;
    let mut cursor = from;
    // Day by day, at most a year.
    for _ in 0..366 {
        if cursor >= to {
            break;
        }
        let next_midnight = start_of_day(cursor, tz) + chrono::Duration::days(1);
        let next_midnight = if next_midnight <= cursor { cursor + chrono::Duration::hours(24) } else { next_midnight };
        let end = next_midnight.min(to);
        if cal.is_workday(cursor.with_timezone(&tz).date_naive()) {
            total += (end - cursor).num_seconds() as f64 / 3600.0;
        }
        cursor = end;
    }
    total
}

/// The lead SLA clock: a lead assigned and not contacted within `lead_sla_hours` working hours
/// reminds its owner; `lead_sla_escalate_hours` later the owner's manager is told; and, when
/// configured, `lead_sla_recycle_hours` after the SLA it goes back to the public pool with the
/// reason recorded. Contacting the lead (or converting, qualifying, discarding it) stops the
/// clock. Nothing is sent during quiet hours; the next run catches up.
async fn lead_sla(s: &Scheduler, tx: &mut Tx, org: &Org, now: DateTime<Utc>) -> crm::Result<usize> {
    let tz = org.tz();
    let plan = s.org_plan(org);
    if let Some(q) = plan.quiet.as_ref()
        && !q.is_off()
        && q.contains(now.with_timezone(&tz).time())
    {
        return Ok(0);
    }
    let [sla, escalate, recycle] = s.plan.lead_sla_hours;
    let managers = managers_by_team(tx, org.id).await?;
    let ctx = Ctx::new(Actor::system(org.id), Via::System, now);
    let mut n = 0;
    for lead in store::leads::awaiting_contact(tx, org.id).await? {
        let Some(owner) = lead.owner_id else { continue };
        let since = lead.assigned_at.unwrap_or(lead.updated_at);
        let hours = working_hours(s, org, since, now);
        let stage = if recycle > 0 && hours >= (sla + recycle) as f64 {
            3
        } else if hours >= (sla + escalate) as f64 {
            2
        } else if hours >= sla as f64 {
            1
        } else {
            0
        };
        if stage <= lead.sla_stage {
            continue;
        }
        let owner_name = crm::users::user_by_id(tx, org.id, owner).await?.name;
        let key = |what: &str, to: i64| format!("lead-sla:{}:{what}:{to}:{}", lead.id, since.timestamp());
        if stage >= 1 && lead.sla_stage < 1 {
            let text = format!(
                "⏳ 线索 #{} {} 分配给你已超过 {sla} 个工作小时还没有联系。\n联系后发「联系了 #{}」，或发「退回公海 #{}」交给别人。",
                lead.id, lead.company, lead.id, lead.id
            );
            let note =
                Note { user_id: owner, kind: Kind::Notice, message: OutMessage::text(text), key: key("remind", owner) };
            n += usize::from(send_to(s, tx, org, note, now).await?);
        }
        if stage >= 2 && lead.sla_stage < 2 {
            let team = crm::users::user_by_id(tx, org.id, owner).await?.team_id;
            let text = format!(
                "⚠️ 线索超时：{owner_name} 的线索 #{} {} 自 {} 分配后一直没有联系（已超时 {escalate} 个工作小时）。\n可发「分配 #{} 给 @某人」改派。",
                lead.id,
                lead.company,
                format_time(since, tz, Lang::Zh),
                lead.id
            );
            let to = managers.get(&team).or_else(|| managers.get(&None)).cloned().unwrap_or_default();
            for m in to.iter().filter(|m| m.id != owner) {
                let note = Note {
                    user_id: m.id,
                    kind: Kind::Notice,
                    message: OutMessage::text(text.clone()),
                    key: key("escalate", m.id),
                };
                n += usize::from(send_to(s, tx, org, note, now).await?);
            }
        }
        if stage >= 3 {
            let reason = format!("超过时限 {} 个工作小时未联系，退回公海（原负责人 {owner_name}）", sla + recycle);
            store::leads::set_owner_status(
                tx,
                org.id,
                lead.id,
                None,
                crm::LeadStatus::Pool,
                lead.customer_id,
                now,
                Some(&reason),
            )
            .await?;
            let after = serde_json::json!({ "lead": lead.id, "reason": reason });
            crm::audit(tx, &ctx, "recycle", "lead", lead.id, Some(&lead), Some(&after)).await?;
            let text = format!("↩️ 线索 #{} {} 超时未联系，已退回公海。", lead.id, lead.company);
            let note = Note {
                user_id: owner,
                kind: Kind::Notice,
                message: OutMessage::text(text),
                key: key("recycled", owner),
            };
            n += usize::from(send_to(s, tx, org, note, now).await?);
        }
        store::leads::set_sla_stage(tx, lead.id, stage).await?;
    }
    Ok(n)
}
