//! Issue 10, "Security review, as tests": the authorisation matrix at the doors. Every chat
//! command (each `bot-commands/*.toml`, some in several shapes) is sent through the real bot by
//! each of eight users, and every `/api/v1` endpoint is called over a real socket by eleven
//! callers. Each cell of a table says what the design admits. An allowed call must have its
//! effect; a refused one must say so and change nothing (row counts and a snapshot of the records
//! involved, before and after); and no reply, response body, digest or group message may carry a
//! record its reader may not see, whatever the cell.
//!
//! `permissions.rs` holds the same rules one layer down, on the services; this file checks that
//! the bot, the JSON API, the digests and the group chats keep to them.
//!
//! The rules, from PRODUCT.md and `Actor::can_access`: a rep sees and changes their own records, a
//! manager the team's (their own and unowned ones too), an admin the org's; another org's records
//! do not exist (chat: "not found"; API: 404). Managing rules, leave, targets and assignment needs a
//! manager (within the team) or an admin. Pool leads are open to the whole org.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chatcrm::bot::Bot;
use chatcrm::clock::Clock;
use chatcrm::config::Settings;
use chatcrm::crm::customers::{CustomerDetail, CustomerPatch, NewContact, NewCustomer};
use chatcrm::crm::deals::{DealDetail, NewDeal};
use chatcrm::crm::lead_rules::{NewRule, Rule, Strategy, Target};
use chatcrm::crm::leads::NewLead;
use chatcrm::crm::tasks::NewTask;
use chatcrm::crm::{
    self, ActivityKind, Actor, Ctx, DealStatus, Grade, Lead, LeadStatus, LostReason, Task, TaskOrigin, TaskStatus,
    User, Via,
};
use chatcrm::http::api_v1::{Scope, auth};
use chatcrm::store::Db;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use super::helpers::*;
use super::http::{Resp, Server, settings};
use crate::both_backends;

both_backends!(
    chat_writes_follow_the_matrix,
    chat_reads_and_digests_show_only_what_the_reader_may_see,
    api_calls_follow_the_matrix,
    api_lists_hold_only_visible_records,
    group_replies_show_only_what_the_asker_may_see,
);

// ---------------------------------------------------------------------------------------------
// Who may see what: every reply, body, digest and group message is checked against this.

/// Readers of r1's records (the API's org token acts as the org's admin).
const R1_READERS: &[&str] = &["r1", "ma", "admin", "org"];
/// Readers of r3's records.
const R3_READERS: &[&str] = &["r3", "mb", "admin", "org"];
/// Everyone in org 1: pool leads.
const ORG1: &[&str] = &["r1", "r2", "ma", "mb", "r3", "admin", "org"];
/// Org 1's managers and admins: the assignment rules.
const ORG1_MANAGERS: &[&str] = &["ma", "mb", "admin", "org"];
/// Org 2.
const ORG2: &[&str] = &["r4", "admin2", "org2"];

/// A string only some readers may ever be shown.
struct Secret {
    text: String,
    seen_by: &'static [&'static str],
}

fn secret(text: impl Into<String>, seen_by: &'static [&'static str]) -> Secret {
    Secret { text: text.into(), seen_by }
}

/// Nothing in `got` that `reader` may not see, unless the reader typed it themself (`sent`).
fn assert_no_leak(secrets: &[Secret], reader: &str, sent: &str, got: &str, what: &str) {
    for s in secrets {
        if s.seen_by.contains(&reader) || sent.contains(&s.text) {
            continue;
        }
        assert!(!got.contains(&s.text), "{what}: {reader} was shown `{}`:\n{got}", s.text);
    }
}

// The marks r1's records carry in every scene (the names add the scene's tag).
const CUSTOMER: &str = "雪鸮";
const CONTACT: &str = "秦秘书";
const PHONE: &str = "13912345678";
const NOTE: &str = "暗号PLUM";
const DEAL: &str = "绝密项目";
/// ¥98,765.43, the amount of r1's deal.
const AMOUNT: i64 = 9_876_543;
const AMOUNT_SHOWN: &str = "¥98,765.43";
const TASK: &str = "回访暗桩";
const LEAD: &str = "蓝鲸";
const LEAD_CONTACT: &str = "钱总";
/// Org-wide: pool leads and rules.
const POOL: &str = "鹦鹉";
const RULE: &str = "白鹭";

/// A unique tag of Chinese characters (digits in names would read as amounts or ids); any two
/// differ in at least two of their four characters. Names sharing a stem are still alike to the
/// fuzzy customer match, hence [`give_back`].
fn tag(n: usize) -> String {
    const CH: [char; 20] = [
        '甲', '乙', '丙', '丁', '戊', '庚', '辛', '壬', '癸', '鹤', '松', '竹', '梅', '兰', '菊', '杉', '桐', '榕',
        '柏', '枫',
    ];
    assert!(n < 400, "tags run out at 400");
    [n % 20, n / 20, n * 7 % 20, (n * 11 + n / 20) % 20].iter().map(|i| CH[*i]).collect()
}

/// The chat columns: r1 owns every record a row touches; r2 is in r1's team, ma manages it; mb and
/// r3 are team B; r4 and admin2 are another org.
const USERS: [&str; 8] = ["r1", "r2", "ma", "mb", "r3", "admin", "r4", "admin2"];

fn users(w: &World) -> [&User; 8] {
    [&w.r1, &w.r2, &w.ma, &w.mb, &w.r3, &w.admin, &w.r4, &w.admin2]
}

fn cells<const N: usize>(row: &str, spec: &str) -> [char; N] {
    let v: Vec<char> = spec.split_whitespace().filter_map(|c| c.chars().next()).collect();
    v.try_into().unwrap_or_else(|v: Vec<char>| panic!("{row}: {N} cells expected, `{spec}` has {}", v.len()))
}

// ---------------------------------------------------------------------------------------------
// A scene: a fresh set of r1's records for one cell, and snapshots of them.

/// One of r1's customers (with a contact), an open deal on it, an overdue task, an assigned lead;
/// a pool lead; a rule routing to team A. Made by the system, but for the lead, which r1 entered.
struct Scene {
    customer: i64,
    name: String,
    deal: i64,
    task: i64,
    lead: i64,
    lead_phone: String,
    pool: i64,
    rule: i64,
    rule_name: String,
}

const MONTH: &str = "2026-11";

/// `reset`: undo what an allowed chat cell before may have set (leave, targets), which the API
/// cannot.
async fn scene(w: &World, n: usize, reset: bool) -> Scene {
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    let t = tag(n);
    let mut tx = w.tx().await;
    if reset {
        for u in [&w.r2, &w.r3] {
            crm::users::set_on_leave(&mut tx, &sys, u.id, false).await.expect("back from leave");
        }
        for u in [&w.r1, &w.r3] {
            chatcrm::report::set_target(&mut tx, &sys, u, MONTH, None).await.expect("clear target");
        }
    }
    let name = format!("{CUSTOMER}{t}");
    let new = NewCustomer { name: name.clone(), owner_id: Some(w.r1.id), ..Default::default() };
    let customer = crm::customers::create_customer(&mut tx, &sys, new).await.expect("customer").id;
    let contact = NewContact { name: CONTACT, title: None, phone: Some(PHONE), wechat: None, email: None };
    crm::customers::add_contact(&mut tx, &sys, customer, contact).await.expect("contact");
    let new = NewDeal {
        customer_id: customer,
        title: format!("{DEAL}{t}"),
        amount_fen: AMOUNT,
        stage: None,
        expected_close: None,
        owner_id: None,
    };
    let deal = crm::deals::create_deal(&mut tx, &sys, new).await.expect("deal").id;
    let new = NewTask {
        title: format!("{TASK}{t}"),
        due_at: t0() - Duration::hours(2),
        owner_id: Some(w.r1.id),
        customer_id: Some(customer),
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    let task = crm::tasks::create_task(&mut tx, &sys, new).await.expect("task").id;
    let lead_phone = format!("137{n:08}");
    let new = NewLead {
        company: format!("{LEAD}{t}"),
        contact_name: Some(LEAD_CONTACT.into()),
        phone: Some(lead_phone.clone()),
        ..Default::default()
    };
    let lead = crm::leads::create_lead(&mut tx, &w.ctx(&w.r1), new).await.expect("lead");
    assert_eq!(lead.owner_id, Some(w.r1.id));
    let new = NewLead { company: format!("{POOL}{t}"), to_pool: true, ..Default::default() };
    let pool = crm::leads::create_lead(&mut tx, &sys, new).await.expect("pool lead").id;
    let rule_name = format!("{RULE}{t}");
    let rule = crm::lead_rules::create_rule(&mut tx, &sys, rule_to(&rule_name, Target::Team(team_a(w))))
        .await
        .expect("rule")
        .id;
    tx.commit().await.expect("commit scene");
    Scene { customer, name, deal, task, lead: lead.id, lead_phone, pool, rule, rule_name }
}

fn team_a(w: &World) -> i64 {
    w.r1.team_id.expect("r1 is in team A")
}

fn rule_to(name: &str, target: Target) -> NewRule {
    NewRule {
        name: name.into(),
        position: None,
        region_prefix: Some("青岛".into()),
        industry: None,
        source: None,
        tag: None,
        target,
        strategy: Strategy::RoundRobin,
        capacity: None,
    }
}

/// What of a scene a reader other than r1's may never be shown (stems: they hold in every scene).
fn scene_secrets(s: &Scene) -> Vec<Secret> {
    vec![
        secret(&s.name, R1_READERS),
        secret(CUSTOMER, R1_READERS),
        secret(CONTACT, R1_READERS),
        secret(PHONE, R1_READERS),
        secret(DEAL, R1_READERS),
        secret(TASK, R1_READERS),
        secret(LEAD, R1_READERS),
        secret(LEAD_CONTACT, R1_READERS),
        secret(&s.lead_phone, R1_READERS),
        secret(POOL, ORG1),
        secret(RULE, ORG1_MANAGERS),
    ]
}

/// Fills a command or request template: `$cust` (name) and `$cid` (id) of the scene's customer,
/// `$deal`, `$task`, `$lead`, `$leadphone`, `$pool`, `$rule` (name) and `$rid`; `$new` is a fresh
/// tag and `$phone` a fresh phone number (from `fresh`, asked only when needed); `$due` tomorrow.
fn fill(t: &str, s: &Scene, fresh: impl FnOnce() -> usize) -> String {
    let fresh = if t.contains("$new") || t.contains("$phone") { fresh() } else { 0 };
    t.replace("$leadphone", &s.lead_phone)
        .replace("$lead", &s.lead.to_string())
        .replace("$cust", &s.name)
        .replace("$cid", &s.customer.to_string())
        .replace("$deal", &s.deal.to_string())
        .replace("$task", &s.task.to_string())
        .replace("$pool", &s.pool.to_string())
        .replace("$rule", &s.rule_name)
        .replace("$rid", &s.rule.to_string())
        .replace("$new", &tag(fresh))
        .replace("$phone", &format!("136{fresh:08}"))
        .replace("$due", &(t0() + Duration::days(1)).to_rfc3339())
}

/// The tables a refused call must leave alone (and an allowed one changes).
const COUNTED: [&str; 12] = [
    "customers",
    "contacts",
    "customer_tags",
    "activities",
    "deals",
    "deal_stage_history",
    "leads",
    "tasks",
    "lead_rules",
    "sales_targets",
    "audit_log",
    "outbox",
];

const COUNTS_SQL: &str = "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM contacts),
    (SELECT COUNT(*) FROM customer_tags), (SELECT COUNT(*) FROM activities), (SELECT COUNT(*) FROM deals),
    (SELECT COUNT(*) FROM deal_stage_history), (SELECT COUNT(*) FROM leads), (SELECT COUNT(*) FROM tasks),
    (SELECT COUNT(*) FROM lead_rules), (SELECT COUNT(*) FROM sales_targets), (SELECT COUNT(*) FROM audit_log),
    (SELECT COUNT(*) FROM outbox)";

type Counts = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);

async fn counts(db: &Db) -> Vec<i64> {
    let mut tx = db.begin_read().await.expect("read");
    let c: Counts =
        chatcrm::run!(&mut tx, |c| sqlx::query_as(COUNTS_SQL).fetch_one(c).await).expect("count the tables");
    tx.commit().await.expect("commit");
    vec![c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7, c.8, c.9, c.10, c.11]
}

/// The scene's records as the org's system reads them, the users on leave, the targets and the
/// row counts.
#[derive(Serialize)]
struct Snap {
    counts: Vec<i64>,
    customer: CustomerDetail,
    deal: DealDetail,
    task: Task,
    lead: Lead,
    pool: Lead,
    rule: Option<Rule>,
    on_leave: Vec<i64>,
    targets: Vec<(i64, String, i64)>,
}

impl Snap {
    fn count(&self, table: &str) -> i64 {
        let i = COUNTED.iter().position(|t| *t == table).unwrap_or_else(|| panic!("{table} is not counted"));
        self.counts[i]
    }

    fn json(&self) -> Value {
        serde_json::to_value(self).expect("snapshot")
    }
}

async fn snap(w: &World, s: &Scene) -> Snap {
    let counts = counts(&w.db).await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    let mut tx = w.db.begin_read().await.expect("read");
    let customer = crm::customers::customer_detail(&mut tx, &sys, s.customer).await.expect("customer");
    let deal = crm::deals::deal_detail(&mut tx, &sys, s.deal).await.expect("deal");
    let task = crm::tasks::get_task(&mut tx, &sys, s.task).await.expect("task");
    let lead = crm::leads::get_lead(&mut tx, &sys, s.lead).await.expect("lead");
    let pool = crm::leads::get_lead(&mut tx, &sys, s.pool).await.expect("pool lead");
    let rule = crm::lead_rules::get_rule(&mut tx, &sys, s.rule).await.ok();
    let on_leave: Vec<i64> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT id FROM users WHERE on_leave ORDER BY id")
            .fetch_all(c)
            .await)
        .expect("on leave");
    let targets: Vec<(i64, String, i64)> = chatcrm::run!(&mut tx, |c| sqlx::query_as(
        "SELECT user_id, month, amount_fen FROM sales_targets ORDER BY user_id, month"
    )
    .fetch_all(c)
    .await)
    .expect("targets");
    tx.commit().await.expect("commit");
    Snap { counts, customer, deal, task, lead, pool, rule, on_leave, targets }
}

/// What an allowed call must have done: `before` and `after` its call, by `actor` (a user, or
/// `None` for an org token).
struct Fx<'a> {
    w: &'a World,
    before: &'a Snap,
    after: &'a Snap,
    actor: Option<&'a User>,
}

type Effect = fn(&Fx) -> bool;

impl Fx<'_> {
    fn grew(&self, table: &str) -> bool {
        self.after.count(table) == self.before.count(table) + 1
    }
}

fn activity_logged(fx: &Fx) -> bool {
    fx.grew("activities")
}
fn graded_a(fx: &Fx) -> bool {
    fx.after.customer.customer.grade == Some(Grade::A) && fx.after.customer.tags.contains(&"重点".to_string())
}
fn customer_to_r2(fx: &Fx) -> bool {
    fx.after.customer.customer.owner_id == Some(fx.w.r2.id)
}
fn customer_to_r3(fx: &Fx) -> bool {
    fx.after.customer.customer.owner_id == Some(fx.w.r3.id)
}
fn customer_created(fx: &Fx) -> bool {
    fx.grew("customers")
}
fn contact_added(fx: &Fx) -> bool {
    fx.grew("contacts")
}
fn deal_created(fx: &Fx) -> bool {
    fx.grew("deals")
}
fn deal_moved(fx: &Fx) -> bool {
    let d = &fx.after.deal.deal;
    d.stage == "proposal" && d.amount_fen == 12_000_000 && fx.grew("deal_stage_history")
}
fn deal_won(fx: &Fx) -> bool {
    fx.after.deal.deal.status == DealStatus::Won
}
fn deal_lost(fx: &Fx) -> bool {
    let d = &fx.after.deal.deal;
    d.status == DealStatus::Lost && d.lost_reason == Some(LostReason::Price)
}
fn lead_created(fx: &Fx) -> bool {
    fx.grew("leads")
}
/// A new lead, or (same org) the submission kept on the existing lead's history.
fn lead_created_or_linked(fx: &Fx) -> bool {
    fx.grew("leads") || (fx.after.count("leads") == fx.before.count("leads") && fx.grew("audit_log"))
}
fn task_created(fx: &Fx) -> bool {
    fx.grew("tasks")
}
fn task_done(fx: &Fx) -> bool {
    fx.after.task.status == TaskStatus::Done
}
fn task_snoozed(fx: &Fx) -> bool {
    fx.after.task.status == TaskStatus::Open && fx.after.task.due_at > fx.before.task.due_at
}
fn lead_to_r2(fx: &Fx) -> bool {
    fx.after.lead.owner_id == Some(fx.w.r2.id) && fx.after.lead.status == LeadStatus::Assigned
}
fn lead_to_r3(fx: &Fx) -> bool {
    fx.after.lead.owner_id == Some(fx.w.r3.id)
}
fn pool_claimed(fx: &Fx) -> bool {
    fx.after.pool.owner_id == fx.actor.map(|u| u.id) && fx.after.pool.status == LeadStatus::Assigned
}
fn lead_converted(fx: &Fx) -> bool {
    fx.after.lead.status == LeadStatus::Converted && fx.grew("customers")
}
fn lead_contacted(fx: &Fx) -> bool {
    fx.after.lead.status == LeadStatus::Contacted
}
fn lead_released(fx: &Fx) -> bool {
    fx.after.lead.status == LeadStatus::Pool && fx.after.lead.owner_id.is_none()
}
fn rule_created(fx: &Fx) -> bool {
    fx.grew("lead_rules")
}
fn rule_disabled(fx: &Fx) -> bool {
    fx.after.rule.as_ref().is_some_and(|r| !r.active)
}
fn rule_deleted(fx: &Fx) -> bool {
    fx.after.rule.is_none() && fx.after.count("lead_rules") == fx.before.count("lead_rules") - 1
}
fn target_r1(fx: &Fx) -> bool {
    fx.after.targets.contains(&(fx.w.r1.id, MONTH.to_string(), 50_000_000))
}
fn target_r3(fx: &Fx) -> bool {
    fx.after.targets.contains(&(fx.w.r3.id, MONTH.to_string(), 50_000_000))
}
fn r2_on_leave(fx: &Fx) -> bool {
    fx.after.on_leave == vec![fx.w.r2.id]
}
fn r3_on_leave(fx: &Fx) -> bool {
    fx.after.on_leave == vec![fx.w.r3.id]
}

// ---------------------------------------------------------------------------------------------
// Chat.

/// The bot, and message ids.
struct Chat<'a> {
    w: &'a World,
    bot: Bot,
    next: AtomicUsize,
}

impl<'a> Chat<'a> {
    fn new(w: &'a World) -> Self {
        Self { w, bot: w.bot(), next: AtomicUsize::new(0) }
    }

    /// Sends `text` as `who`: the reply and how the message was recorded (`done` or `rejected`).
    async fn say(&self, who: &User, text: &str) -> (String, String) {
        let id = format!("authz-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let reply = self.bot.handle(&self.w.msg(who, &id, text)).await.expect("the bot answers");
        let mut tx = self.w.db.begin_read().await.expect("read");
        let row = chatcrm::store::inbox::by_message_id(&mut tx, "console", &id)
            .await
            .expect("inbox")
            .expect("every message is recorded");
        tx.commit().await.expect("commit");
        assert_eq!(row.reply, reply.text, "the stored reply is the one given");
        (reply.text, row.status)
    }

    /// Drops any question the bot is waiting on `who` to answer, so cells do not interact.
    async fn forget_question(&self, who: &User) {
        let mut tx = self.w.tx().await;
        chatcrm::store::inbox::clear_pending(&mut tx, who.id).await.expect("clear pending");
        tx.commit().await.expect("commit");
    }
}

/// A chat command that changes something, and who may send it.
struct ChatWrite {
    /// The `bot-commands/*.toml` the text parses to.
    command: &'static str,
    cmd: &'static str,
    /// One cell per user of [`USERS`]: `Y` allowed (done, and the effect happened); `-` refused
    /// (a clear answer that names nothing the user may not see, nothing changed).
    cells: &'static str,
    effect: Effect,
}

fn cw(command: &'static str, cmd: &'static str, cells: &'static str, effect: Effect) -> ChatWrite {
    ChatWrite { command, cmd, cells, effect }
}

/// Every command that writes, in the shapes that matter for permissions (`$…`: see [`fill`]).
#[rustfmt::skip]
fn chat_writes() -> Vec<ChatWrite> {
    vec![
        //  bot-commands/    text                                r1 r2 ma mb r3 ad r4 a2
        cw("log_activity",    "拜访 $cust 聊了报价",              "Y  -  Y  -  -  Y  -  -", activity_logged),
        cw("update_customer", "客户 $cust 等级 A +重点",          "Y  -  Y  -  -  Y  -  -", graded_a),
        cw("update_customer", "客户 $cust 转给 @r2",              "-  -  Y  -  -  Y  -  -", customer_to_r2),
        cw("update_customer", "客户 $cust 转给 @r3",              "-  -  -  -  -  Y  -  -", customer_to_r3),
        cw("create_customer", "新客户 鸿雁$new",                  "Y  Y  Y  Y  Y  Y  Y  Y", customer_created),
        cw("create_deal",     "新商机 $cust 二期 5万",            "Y  -  Y  -  -  Y  -  -", deal_created),
        cw("update_deal",     "商机 #$deal 报价 金额 12万",       "Y  -  Y  -  -  Y  -  -", deal_moved),
        cw("close_deal",      "赢单 #$deal",                      "Y  -  Y  -  -  Y  -  -", deal_won),
        cw("close_deal",      "输单 #$deal 原因 价格",            "Y  -  Y  -  -  Y  -  -", deal_lost),
        cw("create_lead",     "线索 鲲鹏$new 韩经理 $phone",      "Y  Y  Y  Y  Y  Y  Y  Y", lead_created),
        cw("create_lead",     "线索 鲲鹏$new $leadphone",         "-  -  -  -  -  -  Y  Y", lead_created), // r1's phone
        cw("create_reminder", "提醒 明天下午3点 给客户打电话",    "Y  Y  Y  Y  Y  Y  Y  Y", task_created),
        cw("complete_task",   "完成 #$task",                      "Y  -  Y  -  -  Y  -  -", task_done),
        cw("snooze_task",     "推迟 #$task 到 明天下午3点",       "Y  -  Y  -  -  Y  -  -", task_snoozed),
        cw("assign_lead",     "分配 #$lead 给 @r2",               "-  -  Y  -  -  Y  -  -", lead_to_r2),
        cw("assign_lead",     "分配 #$lead 给 @r3",               "-  -  -  -  -  Y  -  -", lead_to_r3),
        cw("claim_lead",      "认领 #$pool",                      "Y  Y  Y  Y  Y  Y  -  -", pool_claimed),
        cw("claim_lead",      "认领 #$lead",                      "-  -  -  -  -  -  -  -", pool_claimed), // not pooled
        cw("convert_lead",    "转化 #$lead",                      "Y  -  Y  -  -  Y  -  -", lead_converted),
        cw("lead_status",     "联系了 #$lead",                    "Y  -  Y  -  -  Y  -  -", lead_contacted),
        cw("lead_status",     "退回公海 #$lead",                  "Y  -  Y  -  -  Y  -  -", lead_released),
        cw("rules",           "新规则 鹭鸶$new 地区 青岛 给 @r2", "-  -  Y  -  -  Y  -  -", rule_created),
        cw("rules",           "新规则 鹭鸶$new 地区 青岛 给 @r3", "-  -  -  Y  -  Y  -  -", rule_created),
        cw("rules",           "停用规则 $rule",                   "-  -  Y  -  -  Y  -  -", rule_disabled),
        cw("rules",           "删除规则 $rule",                   "-  -  Y  -  -  Y  -  -", rule_deleted),
        cw("set_target",      "目标 @r1 50万",                    "-  -  Y  -  -  Y  -  -", target_r1),
        cw("set_target",      "目标 @r3 50万",                    "-  -  -  Y  -  Y  -  -", target_r3),
        cw("leave",           "休假 @r2",                         "-  -  Y  -  -  Y  -  -", r2_on_leave),
        cw("leave",           "休假 @r3",                         "-  -  -  Y  -  Y  -  -", r3_on_leave),
        // Last: org 2 gets customers of r1's names (names are per org), which later lookups there
        // would offer as "did you mean".
        cw("create_customer", "新客户 $cust",                     "-  -  -  -  -  -  Y  Y", customer_created), // taken
    ]
}

/// Every writing command × every user, each cell on a scene no allowed cell has touched.
async fn chat_writes_follow_the_matrix(db: Db) {
    let w = World::new(db).await;
    let chat = Chat::new(&w);
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        n
    };
    let mut s = scene(&w, fresh(), true).await;
    let mut before = snap(&w, &s).await;
    let mut cells_run = 0;
    for row in chat_writes() {
        for (user, cell) in users(&w).into_iter().zip(cells::<8>(row.cmd, row.cells)) {
            let text = fill(row.cmd, &s, &mut fresh);
            let what = format!("`{text}` ({}) as {}", row.cmd, user.handle);
            chat.forget_question(user).await;
            let (reply, status) = chat.say(user, &text).await;
            let after = snap(&w, &s).await;
            assert!(!reply.trim().is_empty(), "{what}: an empty reply");
            cells_run += 1;
            match cell {
                'Y' => {
                    assert_eq!(status, "done", "{what}: expected it done, got: {reply}");
                    let fx = Fx { w: &w, before: &before, after: &after, actor: Some(user) };
                    assert!((row.effect)(&fx), "{what}: done but without its effect: {reply}");
                }
                '-' => {
                    assert_eq!(status, "rejected", "{what}: expected a refusal, got: {reply}");
                    assert_eq!(before.json(), after.json(), "{what}: a refused command changed something: {reply}");
                }
                other => panic!("{what}: unknown cell {other}"),
            }
            assert_no_leak(&scene_secrets(&s), &user.handle, &text, &reply, &what);
            if cell == 'Y' {
                give_back(&w, &s).await;
                s = scene(&w, fresh(), true).await;
                before = snap(&w, &s).await;
            } else {
                before = after;
            }
        }
    }
    assert_eq!(cells_run, chat_writes().len() * USERS.len());
}

/// Hands a scene's customer given to r2 or r3 back to r1: the fuzzy match would otherwise offer its
/// name ("did you mean …?") when they look up another scene's customer of a similar name.
async fn give_back(w: &World, s: &Scene) {
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    let mut tx = w.tx().await;
    let c = crm::customers::get_customer(&mut tx, &sys, s.customer).await.expect("customer");
    if c.owner_id != Some(w.r1.id) {
        let patch = CustomerPatch { owner_id: Some(w.r1.id), ..Default::default() };
        crm::customers::update_customer(&mut tx, &sys, s.customer, patch).await.expect("give back");
    }
    tx.commit().await.expect("commit");
}

/// The records every read is about, made an hour before "now" (so nobody's undo reaches them).
struct Fixture {
    w: World,
    deal: i64,
    secrets: Vec<Secret>,
}

/// r1: 雪鸮电子 (grade A, a contact, a visit an hour ago, a deal in proposal, an overdue task) and
/// 雪鸮物流 (grade A, never contacted), a lead; r3: 格力电器 with a deal; a pool lead; a rule for
/// team A; org 2: a customer of r4 and a rule. The deals are half a year old: out of the funnel's
/// window, so `pipeline` draws no chart (a picture, slow to draw in a debug build and nothing to
/// read here), and stuck in their stage, so digests list them.
async fn fixture(db: Db) -> Fixture {
    let w = World::new(db).await;
    let at = t0() - Duration::hours(1);
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, at);
    let sys2 = Ctx::new(Actor::system(w.org2.id), Via::Cli, at);
    let long_ago = Ctx::new(Actor::system(w.org.id), Via::Cli, t0() - Duration::days(180));
    let mut tx = w.tx().await;
    let customer = async |tx: &mut chatcrm::store::Tx, ctx: &Ctx, name: &str, owner: &User, grade: Option<Grade>| {
        let new = NewCustomer { name: name.into(), owner_id: Some(owner.id), grade, ..Default::default() };
        crm::customers::create_customer(tx, ctx, new).await.expect("customer").id
    };
    let deal = async |tx: &mut chatcrm::store::Tx, customer_id: i64, title: &str, amount_fen: i64, stage: &str| {
        let new = NewDeal {
            customer_id,
            title: title.into(),
            amount_fen,
            stage: Some(stage.into()),
            expected_close: None,
            owner_id: None,
        };
        crm::deals::create_deal(tx, &long_ago, new).await.expect("deal").id
    };
    let c1 = customer(&mut tx, &sys, "雪鸮电子", &w.r1, Some(Grade::A)).await;
    customer(&mut tx, &sys, "雪鸮物流", &w.r1, Some(Grade::A)).await;
    let contact = NewContact { name: CONTACT, title: None, phone: Some(PHONE), wechat: None, email: None };
    crm::customers::add_contact(&mut tx, &sys, c1, contact).await.expect("contact");
    let visit = crm::activities::NewActivity {
        customer_id: c1,
        kind: ActivityKind::Visit,
        content: format!("{NOTE} 谈了底价"),
        occurred_at: None,
        next_step: None,
        location: None,
        follow_up: None,
    };
    let r1_ctx = Ctx::new(Actor::of(&w.r1), Via::Cli, at);
    crm::activities::log_activity(&mut tx, &r1_ctx, visit).await.expect("visit");
    let d1 = deal(&mut tx, c1, DEAL, AMOUNT, "proposal").await;
    let new = NewTask {
        title: TASK.into(),
        due_at: t0() - Duration::hours(2),
        owner_id: Some(w.r1.id),
        customer_id: Some(c1),
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    crm::tasks::create_task(&mut tx, &sys, new).await.expect("task");
    let new = NewLead {
        company: format!("{LEAD}贸易"),
        contact_name: Some(LEAD_CONTACT.into()),
        phone: Some("13700001111".into()),
        ..Default::default()
    };
    crm::leads::create_lead(&mut tx, &r1_ctx, new).await.expect("lead");
    let c3 = customer(&mut tx, &sys, "格力电器", &w.r3, None).await;
    deal(&mut tx, c3, "格力二期", 1_234_567, "initial_contact").await;
    let new = NewLead { company: format!("{POOL}公海"), to_pool: true, ..Default::default() };
    crm::leads::create_lead(&mut tx, &sys, new).await.expect("pool lead");
    crm::lead_rules::create_rule(&mut tx, &sys, rule_to(&format!("{RULE}规则"), Target::Team(team_a(&w))))
        .await
        .expect("rule");
    customer(&mut tx, &sys2, "别家客户", &w.r4, None).await;
    crm::lead_rules::create_rule(&mut tx, &sys2, rule_to("苍鹰规则", Target::User(w.r4.id))).await.expect("rule 2");
    tx.commit().await.expect("commit fixture");
    let secrets = vec![
        secret(CUSTOMER, R1_READERS),
        secret(CONTACT, R1_READERS),
        secret(PHONE, R1_READERS),
        secret(NOTE, R1_READERS),
        secret(DEAL, R1_READERS),
        secret(AMOUNT_SHOWN, R1_READERS),
        secret(TASK, R1_READERS),
        secret(LEAD, R1_READERS),
        secret(LEAD_CONTACT, R1_READERS),
        secret("13700001111", R1_READERS),
        secret("格力", R3_READERS),
        secret("¥12,345.67", R3_READERS),
        secret("鹦鹉公海", ORG1),
        secret("白鹭规则", ORG1_MANAGERS),
        secret("别家客户", ORG2),
        secret("苍鹰规则", ORG2),
    ];
    Fixture { w, deal: d1, secrets }
}

/// A chat command that reads.
struct ChatRead {
    /// The `bot-commands/*.toml` the text parses to.
    command: &'static str,
    cmd: &'static str,
    /// `Y` answered and shows every string of `shows`; `y` answered, nothing of r1's (the reader's
    /// own, or nothing); `-` refused.
    cells: &'static str,
    shows: &'static [&'static str],
}

fn cr(command: &'static str, cmd: &'static str, cells: &'static str, shows: &'static [&'static str]) -> ChatRead {
    ChatRead { command, cmd, cells, shows }
}

#[rustfmt::skip]
fn chat_reads() -> Vec<ChatRead> {
    vec![
        //  bot-commands/    text              r1 r2 ma mb r3 ad r4 a2   shown where `Y`
        cr("show_customer", "客户 雪鸮电子",  "Y  -  Y  -  -  Y  -  -", &[CONTACT, PHONE, NOTE, DEAL]),
        cr("my_customers",  "我的客户",       "Y  y  y  y  y  y  y  y", &["雪鸮电子", "雪鸮物流"]),
        cr("today",         "今天",           "Y  y  y  y  y  y  y  y", &[TASK, "雪鸮物流"]),
        cr("pool",          "公海",           "Y  Y  Y  Y  Y  Y  y  y", &["鹦鹉公海"]),
        cr("rules",         "规则",           "-  -  Y  Y  -  Y  -  y", &["白鹭规则"]),
        cr("digest",        "日报",           "Y  y  Y  y  y  Y  y  y", &[TASK, AMOUNT_SHOWN]),
        cr("digest",        "周报",           "Y  y  Y  y  y  Y  y  y", &[TASK, AMOUNT_SHOWN]),
        cr("pipeline",      "漏斗",           "Y  y  Y  y  y  Y  y  y", &[AMOUNT_SHOWN]),
        cr("pipeline",      "团队漏斗",       "Y  y  Y  y  y  Y  y  y", &[AMOUNT_SHOWN]),
        cr("pipeline",      "我的漏斗",       "Y  y  y  y  y  y  y  y", &[AMOUNT_SHOWN]),
        cr("close_deal",    "输单 #$deal",    "Y  -  Y  -  -  Y  -  -", &[DEAL]), // asks why; nothing changes yet
        cr("help",          "帮助",           "y  y  y  y  y  y  y  y", &[]),
        cr("unknown",       "今天天气不错",   "-  -  -  -  -  -  -  -", &[]),
    ]
}

/// The commands only a conversation can test, and what starts them: `select` answers the bot's
/// question (r1's, by anyone), `undo` takes back the sender's last change (r1's, by anyone). Both
/// are driven in [`chat_reads_and_digests_show_only_what_the_reader_may_see`].
const CONVERSATIONS: [(&str, &str); 2] = [("select", "1"), ("undo", "撤销")];

/// Every `bot-commands/*.toml` has rows in the matrix, and every row's text parses to the command
/// the row claims (so a parser change cannot quietly turn a row into another command).
#[test]
fn every_chat_command_is_in_the_matrix() {
    let now = t0().with_timezone(&chrono_tz::Asia::Shanghai);
    let example = Scene {
        customer: 1,
        name: format!("{CUSTOMER}{}", tag(1)),
        deal: 12,
        task: 5,
        lead: 34,
        lead_phone: "13700000001".into(),
        pool: 35,
        rule: 3,
        rule_name: format!("{RULE}{}", tag(1)),
    };
    let writes = chat_writes().into_iter().map(|r| (r.command, r.cmd));
    let reads = chat_reads().into_iter().map(|r| (r.command, r.cmd));
    let mut covered = BTreeSet::new();
    for (command, text) in writes.chain(reads).chain(CONVERSATIONS) {
        let text = fill(text, &example, || 2);
        let parsed = chatcrm::command::parse(&text, now).unwrap_or_else(|e| panic!("`{text}` does not parse: {e:?}"));
        assert_eq!(parsed.command.name(), command, "`{text}` is not the command its row names");
        covered.insert(command.to_string());
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bot-commands");
    let commands: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("bot-commands/")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".toml").map(String::from))
        .collect();
    assert_eq!(commands.len(), 27, "bot-commands/ holds {commands:?}");
    let missing: Vec<&String> = commands.difference(&covered).collect();
    assert!(missing.is_empty(), "chat commands with no row in the authorisation matrix: {missing:?}");
}

/// Every reading command × every user on one fixed fixture; then `select` (answering another's
/// question) and `undo` (undoing another's change), which need a conversation; then the digests
/// the scheduler pushes.
async fn chat_reads_and_digests_show_only_what_the_reader_may_see(db: Db) {
    let f = fixture(db).await;
    let w = &f.w;
    let chat = Chat::new(w);
    for row in chat_reads() {
        let text = row.cmd.replace("$deal", &f.deal.to_string());
        for (user, cell) in users(w).into_iter().zip(cells::<8>(row.cmd, row.cells)) {
            let what = format!("`{text}` as {}", user.handle);
            let before = counts(&w.db).await;
            let (reply, status) = chat.say(user, &text).await;
            chat.forget_question(user).await;
            let after = counts(&w.db).await;
            assert!(!reply.trim().is_empty(), "{what}: an empty reply");
            // A read writes nothing (the outbox, counted last, may get a pipeline's chart).
            let n = COUNTED.len() - 1;
            assert_eq!(before[..n], after[..n], "{what}: a read changed something: {reply}");
            match cell {
                'Y' | 'y' => assert_eq!(status, "done", "{what}: expected an answer, got: {reply}"),
                '-' => {
                    assert_eq!(status, "rejected", "{what}: expected a refusal, got: {reply}");
                    assert_eq!(before, after, "{what}: a refusal changed something");
                }
                other => panic!("{what}: unknown cell {other}"),
            }
            if cell == 'Y' {
                for s in row.shows {
                    assert!(reply.contains(s), "{what}: should show `{s}`:\n{reply}");
                }
            }
            if cell == 'y' {
                for s in row.shows {
                    assert!(!reply.contains(s), "{what}: shows `{s}`, which is not theirs:\n{reply}");
                }
            }
            assert_no_leak(&f.secrets, &user.handle, &text, &reply, &what);
        }
    }

    // select: r1 is asked "which one?"; nobody else can answer it (they have no question), and
    // r1's answer shows r1's customer.
    for user in users(w) {
        let (asked, status) = chat.say(&w.r1, "客户 雪鸮").await;
        assert_eq!(status, "done", "{asked}");
        assert!(asked.contains("雪鸮电子") && asked.contains("雪鸮物流"), "a question with both: {asked}");
        let what = format!("`1` as {} while r1 is asked which customer", user.handle);
        let before = counts(&w.db).await;
        let (reply, status) = chat.say(user, CONVERSATIONS[0].1).await;
        assert_eq!(counts(&w.db).await, before, "{what}: changed something");
        assert_no_leak(&f.secrets, &user.handle, "1", &reply, &what);
        if user.id == w.r1.id {
            assert_eq!(status, "done", "{what}: {reply}");
            assert!(reply.contains("负责人 r1"), "{what}: r1's customer card: {reply}");
        } else {
            assert_eq!(status, "rejected", "{what}: {reply}");
            chat.forget_question(&w.r1).await;
        }
    }

    // undo: each user undoes only their own last change.
    let activities = w.count("activities").await;
    let (reply, status) = chat.say(&w.r1, &format!("拜访 雪鸮电子 又去了一次 {NOTE}")).await;
    assert_eq!(status, "done", "{reply}");
    assert_eq!(w.count("activities").await, activities + 1);
    for user in [&w.r2, &w.ma, &w.mb, &w.r3, &w.admin, &w.r4, &w.admin2] {
        let audit = w.count("audit_log").await;
        let (reply, status) = chat.say(user, CONVERSATIONS[1].1).await;
        let what = format!("undo as {} after r1's visit", user.handle);
        assert_eq!(status, "rejected", "{what}: {reply}");
        assert_eq!(w.count("activities").await, activities + 1, "{what}: r1's visit is gone");
        assert_eq!(w.count("audit_log").await, audit, "{what}: wrote an audit row");
        assert_no_leak(&f.secrets, &user.handle, "撤销", &reply, &what);
    }
    // ma changes r1's customer; r1's undo takes back r1's visit and not ma's change.
    let (reply, status) = chat.say(&w.ma, "客户 雪鸮电子 等级 B").await;
    assert_eq!(status, "done", "{reply}");
    let grade = async || {
        let mut tx = w.db.begin_read().await.expect("read");
        let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
        let found = crm::customers::find_customer(&mut tx, &sys, "雪鸮电子").await.expect("find");
        let crm::matching::MatchOutcome::One(c) = found else { panic!("雪鸮电子: {found:?}") };
        crm::customers::get_customer(&mut tx, &sys, c.id).await.expect("customer").grade
    };
    let (reply, status) = chat.say(&w.r1, "撤销").await;
    assert_eq!(status, "done", "r1 undoes the visit: {reply}");
    assert_eq!(w.count("activities").await, activities);
    assert_eq!(grade().await, Some(Grade::B), "r1's undo left ma's change alone");
    let (reply, status) = chat.say(&w.r1, "撤销").await;
    assert_eq!(status, "rejected", "r1 has nothing left to undo (ma's change is not r1's): {reply}");
    let (reply, status) = chat.say(&w.mb, "撤销").await;
    assert_eq!(status, "rejected", "mb cannot undo ma's change: {reply}");
    assert_eq!(grade().await, Some(Grade::B));
    let (reply, status) = chat.say(&w.ma, "撤销").await;
    assert_eq!(status, "done", "ma undoes ma's own change: {reply}");
    assert_eq!(grade().await, Some(Grade::A));

    scheduled_digests_stay_in_scope(&f).await;
}

// ---------------------------------------------------------------------------------------------
// The JSON API.

/// The API columns: user tokens act with the user's role; `org` and `org2` are org tokens (admin
/// rights in their org); `intake` may only submit leads; `anon` sends no token.
const CALLERS: [&str; 11] = ["r1", "r2", "ma", "mb", "r3", "admin", "org", "r4", "org2", "intake", "anon"];

struct Caller<'a> {
    name: &'static str,
    token: Option<String>,
    user: Option<&'a User>,
}

async fn token(db: &Db, org_id: i64, user: Option<i64>, scope: Scope) -> String {
    let mut tx = db.begin().await.expect("begin");
    let (_, t) = auth::create_token_for(&mut tx, org_id, user, "authz", scope, Via::Cli, t0()).await.expect("token");
    tx.commit().await.expect("commit");
    t
}

async fn callers(w: &World) -> Vec<Caller<'_>> {
    let mut out = Vec::new();
    for name in CALLERS {
        let (token, user) = match name {
            "org" => (Some(token(&w.db, w.org.id, None, Scope::Full).await), None),
            "org2" => (Some(token(&w.db, w.org2.id, None, Scope::Full).await), None),
            "intake" => (Some(token(&w.db, w.org.id, None, Scope::Intake).await), None),
            "anon" => (None, None),
            handle => {
                let u = users(w).into_iter().find(|u| u.handle == handle).expect("a world user");
                (Some(token(&w.db, u.org_id, Some(u.id), Scope::Full).await), Some(u))
            }
        };
        out.push(Caller { name, token, user });
    }
    out
}

async fn call(s: &Server, method: &str, path: &str, body: Option<&Value>, token: Option<&str>) -> Resp {
    let url = s.url(path);
    let mut req = match method {
        "GET" => s.client.get(url),
        "POST" => s.client.post(url),
        "PATCH" => s.client.patch(url),
        "DELETE" => s.client.delete(url),
        other => panic!("method {other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    s.send(req).await
}

/// One endpoint called one way.
struct ApiCall {
    method: &'static str,
    path: &'static str,
    /// JSON, `$…` filled as in [`fill`]; "" for none.
    body: &'static str,
    /// The status for each caller of [`CALLERS`].
    expect: &'static str,
    /// What a 2xx write does; `None` for reads (which change nothing).
    effect: Option<Effect>,
}

fn api(
    method: &'static str,
    path: &'static str,
    body: &'static str,
    expect: &'static str,
    effect: Option<Effect>,
) -> ApiCall {
    ApiCall { method, path, body, expect, effect }
}

/// Every endpoint of `api_v1::router()` (but the OpenAPI document, which needs no token). Lists
/// come first, while the only records are the first scene's; what they hold is checked in
/// `api_lists_hold_only_visible_records`.
#[rustfmt::skip]
fn api_calls() -> Vec<ApiCall> {
    const LIST: &str = "200 200 200 200 200 200 200 200 200 403 401";
    // r1's record: r1, its manager, admins; 403 in the org, 404 outside it.
    const R1S: &str  = "200 403 200 403 403 200 200 404 404 403 401";
    const R1S_NEW: &str = "201 403 201 403 403 201 201 404 404 403 401";
    vec![
        //  method  path                           body                                                   r1  r2  ma  mb  r3  ad  org r4  o2  int anon
        api("GET",    "/api/v1/leads",              "",                                                  LIST, None),
        api("GET",    "/api/v1/customers",          "",                                                  LIST, None),
        api("GET",    "/api/v1/deals",              "",                                                  LIST, None),
        api("GET",    "/api/v1/activities",         "",                                                  LIST, None),
        api("GET",    "/api/v1/tasks",              "",                                                  LIST, None),
        api("GET",    "/api/v1/users",              "",                                                  LIST, None),
        api("GET",    "/api/v1/teams",              "",                                                  LIST, None),
        api("GET",    "/api/v1/rules",              "",                                                  "403 403 200 200 403 200 200 403 200 403 401", None),
        api("GET",    "/api/v1/leads/$lead",        "",                                                  R1S, None),
        api("GET",    "/api/v1/customers/$cid",     "",                                                  R1S, None),
        api("GET",    "/api/v1/deals/$deal",        "",                                                  R1S, None),
        api("POST",   "/api/v1/leads",              r#"{"company": "鲲鹏$new", "phone": "$phone"}"#,     "201 201 201 201 201 201 201 201 201 201 401", Some(lead_created)),
        api("POST",   "/api/v1/leads",              r#"{"company": "鲲鹏$new", "phone": "$leadphone"}"#, "200 200 200 200 200 200 200 201 201 200 401", Some(lead_created_or_linked)),
        api("POST",   "/api/v1/leads/$lead/assign", r#"{"user": "r2"}"#,                                 "403 403 200 403 403 200 200 404 404 403 401", Some(lead_to_r2)),
        api("POST",   "/api/v1/rules",              r#"{"name": "鹭鸶$new", "user": "r2", "region_prefix": "青岛"}"#,
                                                                                                         "403 403 201 403 403 201 201 400 400 403 401", Some(rule_created)),
        api("DELETE", "/api/v1/rules/$rid",         "",                                                  "403 403 200 403 403 200 200 404 404 403 401", Some(rule_deleted)),
        api("POST",   "/api/v1/customers",          r#"{"name": "鸿雁$new"}"#,                           "201 201 201 201 201 201 201 201 201 403 401", Some(customer_created)),
        api("POST",   "/api/v1/customers",          r#"{"name": "鸿雁$new", "owner": "r2"}"#,            "403 201 201 403 403 201 201 400 400 403 401", Some(customer_created)),
        api("PATCH",  "/api/v1/customers/$cid",     r#"{"grade": "A", "add_tags": ["重点"]}"#,           R1S, Some(graded_a)),
        api("PATCH",  "/api/v1/customers/$cid",     r#"{"owner": "r2"}"#,                                "403 403 200 403 403 200 200 400 400 403 401", Some(customer_to_r2)),
        api("POST",   "/api/v1/customers/$cid/contacts", r#"{"name": "张工", "phone": "13811112222"}"#,  R1S_NEW, Some(contact_added)),
        api("POST",   "/api/v1/deals",              r#"{"customer_id": $cid, "title": "API 商机", "amount_fen": 100}"#,
                                                                                                         R1S_NEW, Some(deal_created)),
        api("PATCH",  "/api/v1/deals/$deal",        r#"{"stage": "proposal", "amount_fen": 12000000}"#,  R1S, Some(deal_moved)),
        api("PATCH",  "/api/v1/deals/$deal",        r#"{"status": "won"}"#,                              R1S, Some(deal_won)),
        api("POST",   "/api/v1/activities",         r#"{"customer_id": $cid, "kind": "visit", "content": "API 拜访"}"#,
                                                                                                         "201 403 201 403 403 201 400 404 400 403 401", Some(activity_logged)),
        api("POST",   "/api/v1/tasks",              r#"{"title": "API 任务", "due_at": "$due", "owner": "r1"}"#,
                                                                                                         "201 403 201 403 403 201 201 400 400 403 401", Some(task_created)),
        api("POST",   "/api/v1/tasks",              r#"{"title": "API 任务", "due_at": "$due", "customer_id": $cid}"#,
                                                                                                         "201 403 201 403 403 201 400 404 400 403 401", Some(task_created)),
        api("POST",   "/api/v1/tasks/$task/complete", "",                                                R1S, Some(task_done)),
    ]
}

/// Every endpoint × every caller. A write cell that succeeds gets a fresh scene for the next one.
async fn api_calls_follow_the_matrix(db: Db) {
    let w = World::new(db.clone()).await;
    let server = Server::start(settings(), db).await;
    let callers = callers(&w).await;
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        n
    };
    let mut s = scene(&w, fresh(), false).await;
    let mut before = snap(&w, &s).await;
    for row in api_calls() {
        let statuses: Vec<u16> = row.expect.split_whitespace().map(|c| c.parse().expect("a status")).collect();
        assert_eq!(statuses.len(), CALLERS.len(), "{} {}: one status per caller", row.method, row.path);
        for (caller, want) in callers.iter().zip(statuses) {
            let path = fill(row.path, &s, || 0);
            let body_text = fill(row.body, &s, &mut fresh);
            let body: Option<Value> =
                (!body_text.is_empty()).then(|| serde_json::from_str(&body_text).expect("a JSON body"));
            let what = format!("{} {path} {body_text} as {}", row.method, caller.name);
            if row.effect.is_none() {
                // A read: the row counts before and after are enough.
                let before = counts(&w.db).await;
                let r = call(&server, row.method, &path, body.as_ref(), caller.token.as_deref()).await;
                assert_eq!(r.status, want, "{what}: {}", r.body);
                if r.status >= 400 {
                    assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {}", r.body);
                }
                assert_eq!(counts(&w.db).await, before, "{what}: a read changed something");
                assert_no_leak(&scene_secrets(&s), caller.name, &path, &r.body, &what);
                continue;
            }
            let r = call(&server, row.method, &path, body.as_ref(), caller.token.as_deref()).await;
            assert_eq!(r.status, want, "{what}: {}", r.body);
            if r.status >= 400 {
                let v = r.json();
                assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: no message: {v}");
            }
            let after = snap(&w, &s).await;
            let sent = format!("{path} {body_text}");
            assert_no_leak(&scene_secrets(&s), caller.name, &sent, &r.body, &what);
            if r.status == 200 && r.json()["outcome"] == "duplicate" {
                // Which lead it duplicates only to who may see r1's lead (the intake token acts
                // for the org, like the org token).
                let may = R1_READERS.contains(&caller.name) || caller.name == "intake";
                let shown = r.json()["lead_id"].as_i64();
                assert_eq!(shown, may.then_some(s.lead), "{what}: the duplicate's id: {}", r.body);
            }
            match (row.effect, r.status < 300) {
                (Some(effect), true) => {
                    let fx = Fx { w: &w, before: &before, after: &after, actor: caller.user };
                    assert!(effect(&fx), "{what}: {} without its effect: {}", r.status, r.body);
                    s = scene(&w, fresh(), false).await;
                    before = snap(&w, &s).await;
                }
                _ => {
                    assert_eq!(before.json(), after.json(), "{what}: {} changed something: {}", r.status, r.body);
                    before = after;
                }
            }
        }
    }
    server.stop().await;
}

fn ids(v: &Value, key: &str) -> BTreeSet<i64> {
    v[key].as_array().unwrap_or_else(|| panic!("{key} in {v}")).iter().filter_map(|r| r["id"].as_i64()).collect()
}

fn set(items: &[i64]) -> BTreeSet<i64> {
    items.iter().copied().collect()
}

/// What each caller's lists hold, record by record.
async fn api_lists_hold_only_visible_records(db: Db) {
    let w = World::new(db.clone()).await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    let mut tx = w.tx().await;
    // (customer, deal, task, activity, lead) of one user, made as that user.
    let mut own = std::collections::BTreeMap::new();
    for u in [&w.r1, &w.r2, &w.r3, &w.ma, &w.r4] {
        let ctx = w.ctx(u);
        let new = NewCustomer { name: format!("{}的客户", u.handle), ..Default::default() };
        let c = crm::customers::create_customer(&mut tx, &ctx, new).await.expect("customer").id;
        let new = NewDeal {
            customer_id: c,
            title: "单".into(),
            amount_fen: 1,
            stage: None,
            expected_close: None,
            owner_id: None,
        };
        let d = crm::deals::create_deal(&mut tx, &ctx, new).await.expect("deal").id;
        let new = NewTask {
            title: "任务".into(),
            due_at: t0(),
            owner_id: None,
            customer_id: None,
            deal_id: None,
            origin: TaskOrigin::Manual,
        };
        let t = crm::tasks::create_task(&mut tx, &ctx, new).await.expect("task").id;
        let visit = crm::activities::NewActivity {
            customer_id: c,
            kind: ActivityKind::Call,
            content: "电话".into(),
            occurred_at: None,
            next_step: None,
            location: None,
            follow_up: None,
        };
        let a = crm::activities::log_activity(&mut tx, &ctx, visit).await.expect("activity").activity.id;
        // A manager's lead goes by the rules (none: the pool), a rep's is their own.
        let new = NewLead { company: format!("{}的线索", u.handle), ..Default::default() };
        let l = crm::leads::create_lead(&mut tx, &ctx, new).await.expect("lead");
        own.insert(u.handle.as_str(), (c, d, t, a, l.id));
    }
    let unowned =
        crm::customers::create_customer(&mut tx, &sys, NewCustomer { name: "无主客户".into(), ..Default::default() })
            .await
            .expect("unowned customer")
            .id;
    let new = NewLead { company: "公海线索".into(), to_pool: true, ..Default::default() };
    let pooled = crm::leads::create_lead(&mut tx, &sys, new).await.expect("pool lead").id;
    tx.commit().await.expect("commit");
    let of = |h: &str| own[h];
    let (r1, r2, r3, ma, r4) = (of("r1"), of("r2"), of("r3"), of("ma"), of("r4"));
    // ma's lead went to the pool (no rules): it is unowned, like `pooled`.
    let pool = [ma.4, pooled];

    #[derive(Clone)]
    struct Sees {
        customers: Vec<i64>,
        deals: Vec<i64>,
        tasks: Vec<i64>,
        activities: Vec<i64>,
        leads: Vec<i64>,
    }
    let one = |r: (i64, i64, i64, i64, i64)| Sees {
        customers: vec![r.0],
        deals: vec![r.1],
        tasks: vec![r.2],
        activities: vec![r.3],
        leads: vec![r.4],
    };
    let everyone = Sees {
        customers: vec![r1.0, r2.0, r3.0, ma.0, unowned],
        deals: vec![r1.1, r2.1, r3.1, ma.1],
        tasks: vec![r1.2, r2.2, r3.2, ma.2],
        activities: vec![r1.3, r2.3, r3.3, ma.3],
        leads: vec![r1.4, r2.4, r3.4, pool[0], pool[1]],
    };
    let org2 = one(r4);
    let table: Vec<(&str, Sees)> = vec![
        ("r1", one(r1)),
        ("r2", one(r2)),
        (
            "ma",
            Sees {
                customers: vec![r1.0, r2.0, ma.0, unowned],
                deals: vec![r1.1, r2.1, ma.1],
                tasks: vec![r1.2, r2.2, ma.2],
                activities: vec![r1.3, r2.3, ma.3],
                leads: vec![r1.4, r2.4, pool[0], pool[1]],
            },
        ),
        (
            "mb",
            Sees {
                customers: vec![r3.0, unowned],
                deals: vec![r3.1],
                tasks: vec![r3.2],
                activities: vec![r3.3],
                leads: vec![r3.4, pool[0], pool[1]],
            },
        ),
        ("r3", one(r3)),
        ("admin", everyone.clone()),
        ("org", everyone),
        ("r4", one(r4)),
        ("org2", org2),
    ];
    let server = Server::start(settings(), db).await;
    let callers = callers(&w).await;
    let caller = |name: &str| callers.iter().find(|c| c.name == name).expect("caller");
    for (name, sees) in &table {
        let name = *name;
        let token = caller(name).token.as_deref();
        for (path, key, want) in [
            ("/api/v1/customers", "customers", &sees.customers),
            ("/api/v1/deals", "deals", &sees.deals),
            ("/api/v1/tasks", "tasks", &sees.tasks),
            ("/api/v1/activities", "activities", &sees.activities),
            ("/api/v1/leads", "leads", &sees.leads),
        ] {
            let r = call(&server, "GET", path, None, token).await;
            assert_eq!(r.status, 200, "{path} as {name}: {}", r.body);
            let v = r.json();
            assert_eq!(ids(&v, key), set(want), "{path} as {name}: {v}");
            if key == "leads" {
                assert_eq!(v["total"].as_i64(), Some(want.len() as i64), "{path} total as {name}: {v}");
            }
        }
        // Filters narrow the caller's own view, never widen it.
        for path in ["/api/v1/customers?owner=r1", "/api/v1/deals?owner=r1", "/api/v1/leads?owner=r1"] {
            let r = call(&server, "GET", path, None, token).await;
            if matches!(name, "r4" | "org2") {
                r.assert_error(400, "unknown_user");
                continue;
            }
            assert_eq!(r.status, 200, "{path} as {name}: {}", r.body);
            let key = path.trim_start_matches("/api/v1/").split('?').next().unwrap_or_default();
            let got = ids(&r.json(), key);
            let seen: BTreeSet<i64> = match key {
                "customers" => set(&sees.customers),
                "deals" => set(&sees.deals),
                _ => set(&sees.leads),
            };
            assert!(got.is_subset(&seen), "{path} as {name} widened the view: {got:?}");
        }
        // Users and teams: the caller's org only.
        let r = call(&server, "GET", "/api/v1/users", None, token).await.json();
        let handles: BTreeSet<String> = r["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["handle"].as_str().map(String::from))
            .collect();
        let teams = call(&server, "GET", "/api/v1/teams", None, token).await.json();
        let team_names: BTreeSet<String> = teams["teams"]
            .as_array()
            .expect("teams")
            .iter()
            .filter_map(|t| t["name"].as_str().map(String::from))
            .collect();
        if matches!(name, "r4" | "org2") {
            assert_eq!(handles, ["admin2", "r4"].map(String::from).into(), "users as {name}");
            assert!(team_names.is_empty(), "teams as {name}: {team_names:?}");
        } else {
            assert_eq!(handles, ["admin", "ma", "mb", "r1", "r2", "r3"].map(String::from).into(), "users as {name}");
            assert_eq!(team_names, ["Team A", "Team B"].map(String::from).into(), "teams as {name}");
        }
    }
    // Another org's record answers like one that does not exist: no way to probe ids across orgs.
    for id in [r1.0, r1.1, 999_999] {
        for path in [format!("/api/v1/customers/{id}"), format!("/api/v1/deals/{id}")] {
            for name in ["org2", "r4"] {
                let r = call(&server, "GET", &path, None, caller(name).token.as_deref()).await;
                r.assert_error(404, "not_found");
            }
        }
    }
    for name in ["intake", "anon"] {
        for path in ["/api/v1/customers", "/api/v1/deals", "/api/v1/tasks", "/api/v1/activities", "/api/v1/leads"] {
            let r = call(&server, "GET", path, None, caller(name).token.as_deref()).await;
            let want = if name == "anon" { 401 } else { 403 };
            assert_eq!(r.status, want, "{path} as {name}: {}", r.body);
            assert!(!r.body.contains("的客户") && !r.body.contains("的线索"), "{path} as {name}: {}", r.body);
        }
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Group chats and digests.

/// Who asks in the groups, and what each must (or must not) be shown.
fn group_questions() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("客户 雪鸮电子", &[CONTACT, PHONE, NOTE, DEAL]),
        ("漏斗", &[AMOUNT_SHOWN]),
        ("日报", &[TASK]),
        ("今天", &[TASK]),
        ("我的客户", &["雪鸮电子"]),
    ]
}

/// DingTalk and Feishu group messages and a WeCom group robot: a question asked in a group is
/// answered in the group, so the answer must hold only what the asker may see. r1 (whose records
/// they are) is the control: the same questions show r1's records to r1.
async fn group_replies_show_only_what_the_asker_may_see(db: Db) {
    use chatcrm::config::{WecomApp, WecomSettings};
    use chatcrm::platform::dingtalk::DingtalkSettings;
    use chatcrm::platform::dingtalk::mock::{self as dmock, MockDingtalk};
    use chatcrm::platform::feishu::mock::MockFeishu;
    use chatcrm::platform::feishu::{FeishuApp, FeishuSettings};
    use chatcrm::platform::wecom::mock::MockWecom;
    use secrecy::SecretString;

    let f = fixture(db.clone()).await;
    let w = &f.w;
    let askers = [&w.r1, &w.r2, &w.ma, &w.mb, &w.r3];
    // Chat identities: the handle itself on each platform.
    let wecom_creds = MockWecom::credentials();
    let wecom_corp = wecom_creds.corp_id.as_str();
    const FEISHU_TENANT: &str = "tk-authz";
    let mut tx = w.tx().await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    for u in askers {
        for (platform, corp) in [("dingtalk", dmock::CORP_ID), ("wecom", wecom_corp), ("feishu", FEISHU_TENANT)] {
            crm::users::link_identity(&mut tx, &sys, u.id, platform, corp, &format!("id-{}", u.handle))
                .await
                .expect("link");
        }
    }
    tx.commit().await.expect("commit");

    let dingtalk = MockDingtalk::start().await;
    let wecom = MockWecom::start().await;
    let feishu = MockFeishu::start().await;
    let (token, key) = ("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C");
    let wecom_app = WecomApp {
        name: "sales".into(),
        org: "Org One".into(),
        corp_id: wecom_corp.into(),
        agent_id: wecom_creds.agent_id,
        secret: SecretString::from(wecom_creds.secret.clone()),
        token: SecretString::from(token),
        encoding_aes_key: SecretString::from(key),
        robot_name: Some("chatcrm".into()),
        robot_token: None,
        robot_encoding_aes_key: None,
        menu: Default::default(),
    };
    let feishu_app = FeishuApp {
        name: "sales".into(),
        org: "Org One".into(),
        corp_id: FEISHU_TENANT.into(),
        app_id: MockFeishu::credentials().app_id,
        app_secret: SecretString::from(MockFeishu::credentials().app_secret),
        verification_token: SecretString::from("vt-authz"),
        encrypt_key: None,
        bots: Vec::new(),
    };
    let mut cfg = Settings {
        dingtalk: DingtalkSettings {
            api_base: dingtalk.base_url(),
            apps: vec![MockDingtalk::app("sales", "Org One")],
            ..DingtalkSettings::default()
        },
        wecom: WecomSettings { api_base: wecom.base_url(), apps: vec![wecom_app], ..WecomSettings::default() },
        feishu: FeishuSettings { api_base: feishu.base_url(), apps: vec![feishu_app], ..FeishuSettings::default() },
        console_org: "Org One".into(),
        ..settings()
    };
    // In a group the answer goes to the asker privately, through the outbox; poll it often.
    cfg.schedule.enabled = true;
    cfg.schedule.tick_ms = 20;
    let server = Server::start(cfg, db).await;
    let ding = chatcrm::platform::dingtalk::simulate::Simulator::new(&MockDingtalk::app("sales", "Org One"))
        .expect("dingtalk simulator");
    let robot = chatcrm::platform::wecom::simulate::Simulator::new(token, key, "", wecom_creds.agent_id)
        .expect("robot simulator");
    let fei = chatcrm::platform::feishu::simulate::Simulator::new(
        "vt-authz",
        None,
        &MockFeishu::credentials().app_id,
        FEISHU_TENANT,
    );
    // The private answers to `to` so far on one platform.
    let private = |platform: &str, to: &str| -> Vec<String> {
        match platform {
            "DingTalk" => dingtalk
                .received()
                .into_iter()
                .filter(|r| r.api == dmock::Api::Work && r.to == to)
                .filter_map(|r| r.content().map(String::from))
                .collect(),
            "WeCom" => wecom
                .received()
                .into_iter()
                .filter(|r| r.touser.as_deref() == Some(to))
                .filter_map(|r| r.content().map(String::from))
                .collect(),
            _ => feishu.received().into_iter().filter(|r| r.to == format!("open_id:{to}")).map(|r| r.words()).collect(),
        }
    };
    let mut n = 0;
    // What the group saw: (platform, question, asker, text); it must name nobody's records.
    let mut in_group: Vec<(&str, &str, &User, String)> = Vec::new();
    // (platform, question, shows, asker, the private answer): only what the asker may see.
    let mut answered: Vec<(&str, &str, &[&str], &User, String)> = Vec::new();
    for (text, shows) in group_questions() {
        for u in askers {
            n += 1;
            let sender = format!("id-{}", u.handle);
            let before: Vec<usize> = ["DingTalk", "WeCom", "Feishu"].map(|p| private(p, &sender).len()).into();

            // DingTalk: an @-mention in a group; the group's session webhook gets a note, the
            // asker a work notification.
            let session = format!("g-{n}");
            let cb = ding.text(
                &sender,
                text,
                &format!("dg-{n}"),
                Some("销售群"),
                t0().timestamp_millis(),
                Some(&dingtalk.session_url(&session)),
            );
            let req = server
                .client
                .post(server.url("/callback/dingtalk/sales"))
                .header("timestamp", &cb.timestamp)
                .header("sign", &cb.sign)
                .header("content-type", "application/json")
                .body(cb.body.clone());
            assert_eq!(server.send(req).await.status, 200);
            let got: Vec<String> = dingtalk
                .received()
                .into_iter()
                .filter(|r| r.api == dmock::Api::Session && r.to == session)
                .filter_map(|r| r.content().map(String::from))
                .collect();
            assert!(!got.is_empty(), "DingTalk group: no note for `{text}` from {}", u.handle);
            in_group.push(("DingTalk group", text, u, got.join("\n")));

            // WeCom: the group robot's callback; the group gets a note passively, the asker the
            // answer through the app.
            let plain = format!(
                "<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k]]></WebhookUrl>\
                 <ChatId><![CDATA[wrk-group]]></ChatId><ChatType>group</ChatType><From><UserId><![CDATA[{sender}]]>\
                 </UserId><Name><![CDATA[{sender}]]></Name></From><MsgType><![CDATA[text]]></MsgType><Text><Content>\
                 <![CDATA[@chatcrm {text}]]></Content></Text><MsgId><![CDATA[wg-{n}]]></MsgId></xml>"
            );
            let cb = robot.envelope(&plain, t0().timestamp(), &format!("n{n}"));
            let url = server.url(&format!("/callback/wecom/sales/robot?{}", cb.query));
            let r = server.send(server.client.post(url).body(cb.body.clone())).await;
            assert_eq!(r.status, 200, "WeCom robot: {}", r.body);
            let reply =
                robot.open_reply(&r.body).unwrap_or_else(|e| panic!("robot reply does not open ({e}): {}", r.body));
            in_group.push(("WeCom group robot", text, u, reply));

            // Feishu: a group message, answered to the asker privately; nothing in the group.
            let message_id = format!("om_g{n}");
            let cb = fei.group_text(&sender, text, &message_id, t0().timestamp());
            let mut req = server.client.post(server.url("/callback/feishu/sales")).body(cb.body.clone());
            for (k, v) in &cb.headers {
                req = req.header(k, v);
            }
            assert_eq!(server.send(req).await.status, 200);
            assert!(
                feishu.received().iter().all(|r| r.to != format!("reply:{message_id}")),
                "Feishu: nothing is posted in the group"
            );
            // The private answer on each platform (waited for, so each is matched to its
            // question; a long one arrives in parts, queued together).
            for (i, platform) in ["DingTalk", "WeCom", "Feishu"].into_iter().enumerate() {
                let mut got = private(platform, &sender);
                for _ in 0..400 {
                    if got.len() > before[i] {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    got = private(platform, &sender);
                }
                assert!(got.len() > before[i], "{platform}: no private answer to `{text}` from {}", u.handle);
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
                    let again = private(platform, &sender);
                    if again.len() == got.len() {
                        break;
                    }
                    got = again;
                }
                answered.push((platform, text, shows, u, got[before[i]..].join("\n")));
            }
        }
    }
    assert_eq!(in_group.len(), 2 * group_questions().len() * askers.len());
    for (platform, text, u, seen) in in_group {
        // Nobody in particular reads a group: it may show no one's records, not even the asker's.
        assert_no_leak(&f.secrets, "the group", text, &seen, &format!("{platform}: `{text}` from {}", u.handle));
        assert!(seen.contains("回复已私信发给你"), "{platform}: the note points to the private answer: {seen}");
    }
    assert_eq!(answered.len(), 3 * group_questions().len() * askers.len());
    for (platform, text, shows, u, reply) in answered {
        let reply = &reply;
        let what = format!("{platform} group, answered privately: `{text}` from {}", u.handle);
        assert_no_leak(&f.secrets, &u.handle, text, reply, &what);
        if u.id == w.r1.id {
            for s in shows {
                assert!(reply.contains(s), "{what}: r1 should be shown `{s}`:\n{reply}");
            }
        }
    }
    server.stop().await;
    dingtalk.stop().await;
    wecom.stop().await;
}

/// The scheduled daily digest of every user: r1's own, the managers' of their team, the admins'
/// of their org; nobody's holds what they may not see.
async fn scheduled_digests_stay_in_scope(f: &Fixture) {
    use chatcrm::outbox::{DispatchConfig, Dispatcher, Routes, Senders};
    use chatcrm::schedule::{Plan, ScheduleSettings, Scheduler};

    let w = &f.w;
    let db = w.db.clone();
    let clock = Clock::fixed(t0());
    let mut s = ScheduleSettings::default().without_jobs();
    s.daily_digest = "0 9 * * *".into();
    let plan = Plan::try_from(&s).expect("plan");
    let sched = Scheduler::new(db.clone(), clock.clone(), Arc::new(plan), Arc::new(Routes::default()), "authz");
    let outbox = Dispatcher::new(db.clone(), clock.clone(), "authz", Senders::default(), DispatchConfig::default());
    // Wednesday 09:00 in Shanghai: Tuesday's digest (the fixture's day).
    let next_morning: DateTime<Utc> = t0() + Duration::hours(23);
    clock.set(next_morning);
    sched.tick().await.expect("tick");
    outbox.drain().await.expect("drain");
    // What each reader must be shown (the control), beyond what no one else may.
    let must: [(&User, &[&str]); 8] = [
        (&w.r1, &[TASK, AMOUNT_SHOWN]),
        (&w.r2, &[]),
        (&w.ma, &[TASK, AMOUNT_SHOWN, "r1"]),
        (&w.mb, &["¥12,345.67"]),
        (&w.r3, &["¥12,345.67"]),
        (&w.admin, &[TASK, AMOUNT_SHOWN, "¥12,345.67"]),
        (&w.r4, &[]),
        (&w.admin2, &[]),
    ];
    for (u, shows) in must {
        let org = if u.org_id == w.org.id { "Org One" } else { "Org Two" };
        let pushes = chatcrm::platform::console::pushes(&w.db, org, &u.handle, 0).await.expect("pushes");
        let text: String = pushes.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
        let what = format!("{}'s scheduled digest", u.handle);
        if !shows.is_empty() {
            assert!(text.contains("日报"), "{what}: no digest was pushed:\n{text}");
        }
        for s in shows {
            assert!(text.contains(s), "{what}: should show `{s}`:\n{text}");
        }
        assert_no_leak(&f.secrets, &u.handle, "", &text, &what);
    }
}

// ---------------------------------------------------------------------------------------------

/// A manager who types another team's lead's phone number is refused without being told whose
/// lead it is or its company (reps were already; `bot/exec.rs` used to name both for managers).
async fn a_duplicate_lead_reply_names_no_other_teams_lead(db: Db) {
    let w = World::new(db).await;
    let s = scene(&w, 1, false).await;
    let chat = Chat::new(&w);
    let text = format!("线索 鲲鹏乙 {}", s.lead_phone);
    let (reply, status) = chat.say(&w.mb, &text).await;
    assert_eq!(status, "rejected", "{reply}");
    assert_no_leak(&scene_secrets(&s), "mb", &text, &reply, "a duplicate lead typed by mb");
}

both_backends!(a_duplicate_lead_reply_names_no_other_teams_lead);
