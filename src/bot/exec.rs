//! Running one parsed command for one user, and answering the bot's own questions.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Core, Outcome, Turn, render};
use crate::command::{self, Command, Outcome as DealOutcome, Period, RuleAction, Scope, refs};
use crate::crm::activities::NewActivity;
use crate::crm::customers::{CustomerPatch, NewContact, NewCustomer};
use crate::crm::deals::{DealPatch, NewDeal};
use crate::crm::lead_rules::{NewRule, Rule, Strategy, Target};
use crate::crm::leads::NewLead;
use crate::crm::matching::{MatchOutcome, Ranked};
use crate::crm::tasks::NewTask;
use crate::crm::{self, LostReason, TaskOrigin};
use crate::report::{DigestKind, render::Dialect};
use crate::store::{self, Tx};

/// The question the bot is waiting on, stored per user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Pending {
    /// Several customers matched: re-run `text` (parsed at `now`) with the chosen one.
    Customer { text: String, now: DateTime<Utc>, candidates: Vec<(i64, String)> },
    /// A loss without a reason.
    LostReason { deal: i64, amount: Option<i64> },
    /// A location shared before the visit was logged: the next visit takes it.
    CheckIn { label: String },
}

/// Reasons in the order the question lists them, so "1"…"9" can answer it.
const REASONS: [LostReason; 9] = [
    LostReason::Price,
    LostReason::Competitor,
    LostReason::NoBudget,
    LostReason::MissingFeatures,
    LostReason::Timing,
    LostReason::Unresponsive,
    LostReason::NoDecisionMaker,
    LostReason::PoorFit,
    LostReason::Other,
];

async fn set_pending(tx: &mut Tx, turn: &Turn<'_>, p: &Pending) -> crm::Result<()> {
    let value = serde_json::to_value(p).unwrap_or_default();
    let expires = turn.ctx.now + Duration::minutes(super::PENDING_TTL_MINUTES);
    store::inbox::set_pending(tx, turn.ctx.org_id(), turn.user.id, &value, expires).await?;
    Ok(())
}

/// Remembers a location shared before the visit it belongs to; a visit or meeting logged before
/// `expires` takes it.
pub(super) async fn start_check_in(
    tx: &mut Tx,
    ctx: &crm::Ctx,
    user_id: i64,
    label: &str,
    expires: DateTime<Utc>,
) -> crm::Result<()> {
    let value = serde_json::to_value(Pending::CheckIn { label: label.to_string() }).unwrap_or_default();
    store::inbox::set_pending(tx, ctx.org_id(), user_id, &value, expires).await?;
    Ok(())
}

/// The location of a pending check-in, consumed.
async fn take_check_in(tx: &mut Tx, turn: &Turn<'_>) -> crm::Result<Option<String>> {
    let Some((raw, true)) = &turn.pending else {
        return Ok(None);
    };
    match serde_json::from_value::<Pending>(raw.clone()) {
        Ok(Pending::CheckIn { label }) => {
            store::inbox::clear_pending(tx, turn.user.id).await?;
            Ok(Some(label))
        }
        _ => Ok(None),
    }
}

/// If the bot asked this user something, tries to read `text` as the answer. `None` means the
/// message is not an answer and is handled as a command (the question is then dropped).
pub(super) async fn answer_pending(
    bot: &Core,
    tx: &mut Tx,
    turn: &Turn<'_>,
    choice: Option<usize>,
) -> crm::Result<Option<Outcome>> {
    let Some((raw, valid)) = turn.pending.clone() else {
        return Ok(None);
    };
    if !valid {
        store::inbox::clear_pending(tx, turn.user.id).await?;
        // A number answering a question that has expired: say so rather than "no question".
        return Ok(choice.map(|_| Outcome::Rejected(render::question_expired(turn.lang))));
    }
    let pending: Option<Pending> = serde_json::from_value(raw).ok();
    match pending {
        // Not a question: it waits for the next visit (see `take_check_in`).
        Some(Pending::CheckIn { .. }) => Ok(None),
        Some(Pending::Customer { text: original, now, candidates }) => {
            let Some(choice) = choice else {
                store::inbox::clear_pending(tx, turn.user.id).await?;
                return Ok(None);
            };
            let Some((id, _)) = choice.checked_sub(1).and_then(|i| candidates.get(i)) else {
                return Ok(Some(Outcome::Rejected(render::bad_selection(turn.lang, candidates.len()))));
            };
            store::inbox::clear_pending(tx, turn.user.id).await?;
            let asked_at = now.with_timezone(&turn.tz);
            match command::parse(&original, asked_at) {
                Ok(p) => run(bot, tx, turn, p.command, Some(*id)).await.map(Some),
                Err(_) => Ok(Some(Outcome::Rejected(render::nothing_to_select(turn.lang)))),
            }
        }
        Some(Pending::LostReason { deal, amount }) => {
            let reason =
                refs::lost_reason(turn.text).or_else(|| choice.and_then(|c| REASONS.get(c.wrapping_sub(1)).copied()));
            store::inbox::clear_pending(tx, turn.user.id).await?;
            match reason {
                Some(r) => {
                    let d = crm::deals::close_deal(tx, &turn.ctx, deal, false, amount, Some(r)).await?;
                    Ok(Some(Outcome::Done(render::deal_closed(turn.lang, &d))))
                }
                None => Ok(None),
            }
        }
        None => {
            store::inbox::clear_pending(tx, turn.user.id).await?;
            Ok(None)
        }
    }
}

enum Resolved {
    Customer(i64),
    Asked(Outcome),
}

/// The customer a command names: the chosen one when answering "which one?", the single match,
/// or a question (several matches) or a refusal (none).
async fn resolve(tx: &mut Tx, turn: &Turn<'_>, query: &str, chosen: Option<i64>) -> crm::Result<Resolved> {
    if let Some(id) = chosen {
        return Ok(Resolved::Customer(id));
    }
    match crm::customers::find_customer(tx, &turn.ctx, query).await? {
        MatchOutcome::One(Ranked { id, .. }) => Ok(Resolved::Customer(id)),
        MatchOutcome::Many(list) => {
            let p = Pending::Customer {
                text: turn.text.to_string(),
                now: turn.ctx.now,
                candidates: list.iter().map(|r| (r.id, r.name.clone())).collect(),
            };
            set_pending(tx, turn, &p).await?;
            Ok(Resolved::Asked(Outcome::Done(render::which_one(turn.lang, query, &list))))
        }
        MatchOutcome::None => Ok(Resolved::Asked(Outcome::Rejected(render::no_customer(turn.lang, query)))),
    }
}

macro_rules! customer_or_return {
    ($tx:expr, $turn:expr, $query:expr, $chosen:expr) => {
        match resolve($tx, $turn, $query, $chosen).await? {
            Resolved::Customer(id) => id,
            Resolved::Asked(out) => return Ok(out),
        }
    };
}

fn utc(t: &DateTime<chrono::FixedOffset>) -> DateTime<Utc> {
    t.with_timezone(&Utc)
}

pub(super) async fn run(
    bot: &Core,
    tx: &mut Tx,
    turn: &Turn<'_>,
    command: Command,
    chosen: Option<i64>,
) -> crm::Result<Outcome> {
    let (ctx, lang, tz) = (&turn.ctx, turn.lang, turn.tz);
    let done = |s: String| Ok(Outcome::Done(s));
    match command {
        Command::LogActivity { kind, customer, content, occurred_at, follow_up } => {
            let customer_id = customer_or_return!(tx, turn, &customer, chosen);
            let location = match kind {
                crm::ActivityKind::Visit | crm::ActivityKind::Meeting => take_check_in(tx, turn).await?,
                _ => None,
            };
            let new = NewActivity {
                customer_id,
                kind,
                content,
                occurred_at: occurred_at.as_ref().map(utc),
                next_step: follow_up.as_ref().map(|f| f.title.clone()),
                location,
                follow_up: follow_up.as_ref().map(|f| (utc(&f.at), f.title.clone())),
            };
            let logged = crm::activities::log_activity(tx, ctx, new).await?;
            done(render::activity_logged(lang, &logged, tz))
        }
        Command::ShowCustomer { customer } => {
            let id = customer_or_return!(tx, turn, &customer, chosen);
            let detail = crm::customers::customer_detail(tx, ctx, id).await?;
            done(render::customer_detail(lang, &detail, tz))
        }
        Command::UpdateCustomer { customer, grade, industry, region, source, tags_add, tags_remove, to } => {
            let id = customer_or_return!(tx, turn, &customer, chosen);
            let owner_id = match to {
                Some(who) => Some(crm::users::find_user(tx, ctx.org_id(), &who).await?.id),
                None => None,
            };
            let patch = CustomerPatch {
                industry,
                region,
                source,
                grade,
                owner_id,
                add_tags: tags_add,
                remove_tags: tags_remove,
            };
            let c = crm::customers::update_customer(tx, ctx, id, patch).await?;
            let tags = store::customers::tags(tx, id).await?;
            done(render::customer_updated(lang, &c, &tags))
        }
        Command::CreateCustomer { name, industry, region, grade, source, tags_add, contact, phone } => {
            let new = NewCustomer { name, industry, region, source, grade, owner_id: None, tags: tags_add };
            let c = crm::customers::create_customer(tx, ctx, new).await?;
            if contact.is_some() || phone.is_some() {
                let person = contact.unwrap_or_else(|| render::pick(lang, "联系人".into(), "Contact".into()));
                let new = NewContact { name: &person, title: None, phone: phone.as_deref(), wechat: None, email: None };
                crm::customers::add_contact(tx, ctx, c.id, new).await?;
            }
            done(render::customer_created(lang, &c))
        }
        Command::MyCustomers { grade } => {
            let mut list = crm::customers::list_customers(tx, ctx, true).await?;
            list.retain(|c| grade.is_none() || c.grade == grade);
            list.sort_by(|a, b| b.last_contacted_at.cmp(&a.last_contacted_at).then(a.name.cmp(&b.name)));
            done(render::customer_list(lang, &list, tz, ctx.now))
        }
        Command::CreateDeal { customer, title, amount, stage, expected_close } => {
            let customer_id = customer_or_return!(tx, turn, &customer, chosen);
            let c = crm::customers::get_customer(tx, ctx, customer_id).await?;
            let title =
                title.unwrap_or_else(|| render::pick(lang, format!("{} 商机", c.name), format!("{} deal", c.name)));
            let new = NewDeal {
                customer_id,
                title,
                amount_fen: amount.unwrap_or(0),
                stage: stage.map(str::to_string),
                expected_close,
                owner_id: None,
            };
            let d = crm::deals::create_deal(tx, ctx, new).await?;
            let stages = crm::orgs::stages(tx, ctx.org_id()).await?;
            done(render::deal_saved(lang, &d, &stages, true))
        }
        Command::UpdateDeal { deal, stage, amount, expected_close } => {
            let patch = DealPatch { title: None, amount_fen: amount, stage: stage.map(str::to_string), expected_close };
            let d = crm::deals::update_deal(tx, ctx, deal, patch).await?;
            let stages = crm::orgs::stages(tx, ctx.org_id()).await?;
            done(render::deal_saved(lang, &d, &stages, false))
        }
        Command::CloseDeal { deal, outcome, amount, reason } => match (outcome, reason) {
            (DealOutcome::Lost, None) => {
                // Check it exists and is theirs before asking.
                let d = crm::deals::get_deal(tx, ctx, deal).await?;
                set_pending(tx, turn, &Pending::LostReason { deal, amount }).await?;
                done(render::ask_lost_reason(lang, &d, &REASONS))
            }
            (outcome, reason) => {
                let d = crm::deals::close_deal(tx, ctx, deal, outcome == DealOutcome::Won, amount, reason).await?;
                done(render::deal_closed(lang, &d))
            }
        },
        Command::CreateLead { company, contact, phone, source, region, industry } => {
            let new = NewLead {
                company,
                contact_name: contact,
                phone,
                email: None,
                source,
                region,
                industry,
                to_pool: false,
                tags: Vec::new(),
            };
            // A rep's own lead is theirs; a manager's goes by the assignment rules.
            if ctx.actor.role == crm::Role::Rep {
                let l = crm::leads::create_lead(tx, ctx, new).await?;
                return done(render::lead_created(lang, &l));
            }
            match crm::leads::intake(tx, ctx, new).await? {
                crm::leads::Intake::Created { lead, routed } => {
                    let why = routed.as_ref().map_or_else(String::new, |r| r.reason.clone());
                    if let Some(owner) = lead.owner_id.filter(|o| Some(*o) != ctx.actor.user_id) {
                        let line = routed.as_ref().and_then(|r| r.rule.as_ref()).map_or_else(
                            || format!("{} 分配给你", turn.user.name),
                            |rule| format!("按规则『{rule}』分配给你"),
                        );
                        crate::outbox::notify_lead_assigned(tx, &bot.routes, &lead, owner, &line, ctx.now).await?;
                    }
                    done(render::lead_routed(lang, &lead, &why))
                }
                crm::leads::Intake::Duplicate { lead, owner_name } => {
                    Err(crm::leads::duplicate_refusal(ctx, &lead, owner_name))
                }
                crm::leads::Intake::Customer { customer } => Err(crm::customers::already_exists(ctx, &customer)),
            }
        }
        Command::AssignLead { lead, to } => {
            let user = crm::users::find_user(tx, ctx.org_id(), &to).await?;
            let l = crm::leads::assign_lead(tx, ctx, lead, user.id).await?;
            if Some(user.id) != ctx.actor.user_id {
                let line = format!("{} 把线索分配给你", turn.user.name);
                crate::outbox::notify_lead_assigned(tx, &bot.routes, &l, user.id, &line, ctx.now).await?;
            }
            done(render::lead_assigned(lang, &l, &user.name))
        }
        Command::ClaimLead { lead } => {
            let l = crm::leads::claim_lead(tx, ctx, lead).await?;
            done(render::lead_claimed(lang, &l))
        }
        Command::ConvertLead { lead } => {
            let c = crm::leads::convert_lead(tx, ctx, lead).await?;
            done(render::lead_converted(lang, &c))
        }
        Command::Pool => {
            let mut leads = crm::leads::pool(tx, ctx).await?;
            leads.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            done(render::pool(lang, &leads, ctx.now))
        }
        Command::LeadStatus { lead, status, reason } => {
            let l = crm::leads::set_lead_status_because(tx, ctx, lead, status, reason.as_deref()).await?;
            done(render::lead_status_set(lang, &l, reason.as_deref()))
        }
        Command::Rules { action } => rules(tx, turn, action).await,
        Command::SetTarget { user, amount, month } => {
            let who = match &user {
                Some(name) => crm::users::find_user(tx, ctx.org_id(), name).await?,
                None => match ctx.actor.user_id {
                    Some(me) => crm::users::user_by_id(tx, ctx.org_id(), me).await?,
                    None => {
                        return Ok(Outcome::Rejected(render::pick(
                            lang,
                            "请写给谁设目标，例如 目标 @李雷 50万".into(),
                            "whose target? e.g. target @lilei 500k".into(),
                        )));
                    }
                },
            };
            let Some(month) = resolve_month(&month, ctx.now.with_timezone(&tz).date_naive()) else {
                return Ok(Outcome::Rejected(render::pick(
                    lang,
                    format!("看不懂月份「{month}」，例如 12月 或 2026-12"),
                    format!("could not read the month `{month}`; e.g. december or 2026-12"),
                )));
            };
            crate::report::set_target(tx, ctx, &who, &month, amount).await?;
            done(match amount {
                Some(fen) => render::pick(
                    lang,
                    format!(
                        "🎯 已设 {} {month} 的目标：{}。日报和「漏斗」里的预测会对照它。",
                        who.name,
                        render::yuan(fen)
                    ),
                    format!(
                        "🎯 {}'s target for {month}: {}. Digests and `pipeline` compare the forecast against it.",
                        who.name,
                        render::yuan(fen)
                    ),
                ),
                None => render::pick(
                    lang,
                    format!("已清除 {} {month} 的目标。", who.name),
                    format!("Cleared {}'s target for {month}.", who.name),
                ),
            })
        }
        Command::Leave { user, on_leave } => {
            let u = crm::users::find_user(tx, ctx.org_id(), &user).await?;
            let u = crm::users::set_on_leave(tx, ctx, u.id, on_leave).await?;
            done(render::leave_set(lang, &u, on_leave))
        }
        Command::CreateReminder { at, title } => {
            let at = utc(&at);
            if at <= ctx.now {
                return Ok(Outcome::Rejected(render::time_in_past(lang, at, tz)));
            }
            let new = NewTask {
                title,
                due_at: at,
                owner_id: None,
                customer_id: None,
                deal_id: None,
                origin: TaskOrigin::Manual,
            };
            let t = crm::tasks::create_task(tx, ctx, new).await?;
            done(render::reminder_set(lang, &t, tz))
        }
        Command::Today => {
            let today = crm::tasks::today(tx, ctx, tz).await?;
            done(render::today(lang, &today, tz, ctx.now))
        }
        Command::CompleteTask { task } => {
            let t = crm::tasks::complete_task(tx, ctx, task).await?;
            done(render::task_done(lang, &t))
        }
        Command::SnoozeTask { task, until } => {
            let t = crm::tasks::snooze_task(tx, ctx, task, utc(&until)).await?;
            done(render::task_snoozed(lang, &t, tz))
        }
        Command::Pipeline { scope } => {
            let scope = match (scope, ctx.actor.user_id) {
                (Some(Scope::Me), Some(me)) => crate::report::Scope::own(me),
                _ => crate::report::Scope::of(&ctx.actor),
            };
            let v = crate::report::pipeline_view(tx, ctx, scope, &bot.report).await?;
            let mut text = crate::report::render::pipeline_view(&v, Dialect::Plain, lang).join("\n\n");
            if queue_funnel_chart(tx, ctx, bot, &v, lang).await? {
                text.push_str(&render::pick(
                    lang,
                    "\n\n📊 漏斗图随后发到这里。".into(),
                    "\n\n📊 The funnel chart follows.".into(),
                ));
            }
            done(text)
        }
        Command::Digest { period } => {
            let kind = if period == Period::Week { DigestKind::Weekly } else { DigestKind::Daily };
            let span = crate::report::period_so_far(ctx.now, tz, kind);
            let scope = crate::report::Scope::of(&ctx.actor);
            let d = crate::report::digest_for(tx, ctx, scope, kind, span, &bot.report).await?;
            done(crate::report::render::digest(&d, Dialect::Plain, lang).join("\n\n"))
        }
        Command::Undo => {
            let u = crm::undo::undo_last(tx, ctx, bot.undo_window).await?;
            done(render::undone(lang, &u))
        }
        Command::Help { topic } => done(render::help(lang, topic.as_deref())),
        Command::Select { .. } => Ok(Outcome::Rejected(render::nothing_to_select(lang))),
        Command::Unknown { text, suggestion } => {
            Ok(Outcome::Rejected(render::unknown(lang, &text, suggestion.as_deref())))
        }
    }
}

/// Assignment rules from chat. Managers and admins only (the domain checks too, and which team
/// a manager may touch); a rep is told so before anything is looked up.
async fn rules(tx: &mut Tx, turn: &Turn<'_>, action: RuleAction) -> crm::Result<Outcome> {
    let (ctx, lang) = (&turn.ctx, turn.lang);
    crm::require_manager(
        ctx,
        "只有经理或管理员可以管理分配规则",
        "only managers and admins can manage assignment rules",
    )?;
    let done = |s: String| Ok(Outcome::Done(s));
    match action {
        RuleAction::List => {
            let rules = crm::lead_rules::list_rules(tx, ctx).await?;
            let users = crm::users::list_users(tx, ctx.org_id()).await?;
            let teams = store::users::teams(tx, ctx.org_id()).await?;
            let lines: Vec<(Rule, String)> = rules
                .into_iter()
                .map(|r| {
                    let target = match (r.target_user_id, r.target_team_id) {
                        (Some(u), _) => users.iter().find(|x| x.id == u).map_or(format!("#{u}"), |x| x.name.clone()),
                        (None, Some(t)) => teams.iter().find(|x| x.id == t).map_or(format!("#{t}"), |x| x.name.clone()),
                        (None, None) => "—".to_string(),
                    };
                    (r, target)
                })
                .collect();
            done(render::rules(lang, &lines))
        }
        RuleAction::Create { name, region, industry, source, tag, to, team, strategy, capacity, position } => {
            let (target, target_name) = match (team, to) {
                (Some(team), _) => {
                    let t = crm::users::team_by_name(tx, ctx, &team).await?;
                    (Target::Team(t.id), t.name)
                }
                // A person, or failing that a team of that name ("给 华东组").
                (None, Some(who)) => match crm::users::find_user(tx, ctx.org_id(), &who).await {
                    Ok(u) => (Target::User(u.id), u.name),
                    Err(e @ crm::CrmError::NotFound(_)) => match crm::users::team_by_name(tx, ctx, &who).await {
                        Ok(t) => (Target::Team(t.id), t.name),
                        Err(_) => return Err(e),
                    },
                    Err(e) => return Err(e),
                },
                (None, None) => return Ok(Outcome::Rejected(render::usage(lang, "rules", None))),
            };
            let new = NewRule {
                name,
                position,
                region_prefix: region,
                industry,
                source,
                tag,
                target,
                strategy: strategy.unwrap_or(Strategy::RoundRobin),
                capacity,
            };
            let rule = crm::lead_rules::create_rule(tx, ctx, new).await?;
            done(render::rule_created(lang, &rule, &target_name))
        }
        RuleAction::Delete { rule } => {
            let r = resolve_rule(tx, ctx, &rule).await?;
            let r = crm::lead_rules::delete_rule(tx, ctx, r.id).await?;
            done(render::rule_deleted(lang, &r))
        }
        RuleAction::Disable { rule } => {
            let r = resolve_rule(tx, ctx, &rule).await?;
            let r = crm::lead_rules::set_rule_active(tx, ctx, r.id, false).await?;
            done(render::rule_toggled(lang, &r))
        }
        RuleAction::Enable { rule } => {
            let r = resolve_rule(tx, ctx, &rule).await?;
            let r = crm::lead_rules::set_rule_active(tx, ctx, r.id, true).await?;
            done(render::rule_toggled(lang, &r))
        }
    }
}

/// A rule by its place in the list ("3"), `#id` or name.
async fn resolve_rule(tx: &mut Tx, ctx: &crm::Ctx, what: &str) -> crm::Result<Rule> {
    if let Some(n) = what.parse::<usize>().ok().filter(|_| what.bytes().all(|b| b.is_ascii_digit())) {
        let rules = crm::lead_rules::list_rules(tx, ctx).await?;
        return n.checked_sub(1).and_then(|i| rules.into_iter().nth(i)).ok_or_else(|| {
            crm::not_found(
                format!("没有第 {n} 条规则（发「规则」看列表）"),
                format!("there is no rule number {n} (send \"rules\" for the list)"),
            )
        });
    }
    crm::lead_rules::find_rule(tx, ctx, what).await
}

/// A target's month (`this`, `next`, `12`, `2026-12`) as `YYYY-MM`, from `today`. A bare month
/// number means its next occurrence: in December, `1` is January of the next year.
fn resolve_month(m: &str, today: chrono::NaiveDate) -> Option<String> {
    use chrono::Datelike;
    let this = today.with_day(1)?;
    let date = match m {
        "this" => this,
        "next" => this.checked_add_months(chrono::Months::new(1))?,
        _ => match m.split_once('-') {
            Some((y, mo)) => chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, mo.parse().ok()?, 1)?,
            None => {
                let mo: u32 = m.parse().ok()?;
                let d = chrono::NaiveDate::from_ymd_opt(today.year(), mo, 1)?;
                if d < this { chrono::NaiveDate::from_ymd_opt(today.year() + 1, mo, 1)? } else { d }
            }
        },
    };
    Some(date.format("%Y-%m").to_string())
}

/// Queues the funnel picture for the asker (with the message's own dedupe key, so a retried
/// message queues it once). False when there is nothing to draw or no message to key it by.
async fn queue_funnel_chart(
    tx: &mut Tx,
    ctx: &crm::Ctx,
    bot: &Core,
    v: &crate::report::PipelineView,
    lang: crm::Lang,
) -> crm::Result<bool> {
    let (Some(user_id), Some(message_id)) = (ctx.actor.user_id, ctx.source_message_id) else { return Ok(false) };
    if v.funnel.deals == 0 {
        return Ok(false);
    }
    let whose = match (v.scope, lang) {
        (crate::report::ScopeKind::Own, crm::Lang::Zh) => "我的".to_string(),
        (crate::report::ScopeKind::Team, crm::Lang::Zh) => "团队".to_string(),
        (crate::report::ScopeKind::Org, crm::Lang::Zh) => "全公司".to_string(),
        (crate::report::ScopeKind::Own, crm::Lang::En) => "My".to_string(),
        (crate::report::ScopeKind::Team, crm::Lang::En) => "Team".to_string(),
        (crate::report::ScopeKind::Org, crm::Lang::En) => "Company".to_string(),
    };
    let input = crate::report::funnel_chart(&v.funnel, None, &whose, lang);
    let png = match crate::chart::render_png(&input) {
        Ok(png) => png,
        Err(e) => {
            tracing::warn!(error = %e, "funnel chart not drawn");
            return Ok(false);
        }
    };
    let target = bot.routes.target_for_user(tx, user_id).await?;
    let key = format!("funnel:{message_id}");
    let caption = render::pick(lang, "漏斗图".into(), "Funnel chart".into());
    let message = crate::outbox::OutMessage::image(caption, png);
    let out = crate::outbox::Outgoing {
        org_id: Some(ctx.org_id()),
        user_id: Some(user_id),
        kind: crate::outbox::Kind::Reply,
        target: &target,
        message: &message,
        dedupe_key: &key,
        not_before: ctx.now,
    };
    crate::outbox::enqueue(tx, &out, ctx.now).await?;
    Ok(true)
}
