//! The audit log: every change writes exactly one row, in the change's own transaction, saying
//! who did what to which record, through which channel, with the record before and after.

use chatcrm::crm::activities::NewActivity;
use chatcrm::crm::customers::{CustomerPatch, NewContact, NewCustomer};
use chatcrm::crm::deals::{DealPatch, NewDeal};
use chatcrm::crm::leads::NewLead;
use chatcrm::crm::tasks::NewTask;
use chatcrm::crm::users::NewUser;
use chatcrm::crm::{self, ActivityKind, Actor, AuditEntry, Ctx, Grade, LostReason, Role, TaskOrigin, User, Via};
use chatcrm::store::{self, Db, Tx};
use chrono::Duration;
use serde_json::{Value, json};

use super::helpers::*;

/// A context for `user` through the API, so `via` differs from the helpers' chat default.
fn api(user: &User) -> Ctx {
    Ctx::new(Actor::of(user), Via::Api, t0())
}

/// Every audit row of both orgs, oldest first, as `tx` sees them.
async fn rows_in(tx: &mut Tx, w: &World) -> Vec<AuditEntry> {
    let mut rows = Vec::new();
    for org in [w.org.id, w.org2.id] {
        rows.extend(store::audit::for_org(tx, org).await.expect("read audit log"));
    }
    rows.sort_by_key(|r| r.id);
    rows
}

/// Every committed audit row of both orgs, oldest first.
async fn rows(w: &World) -> Vec<AuditEntry> {
    let mut tx = w.db.begin_read().await.expect("begin read");
    rows_in(&mut tx, w).await
}

/// The single row committed since `mark` (an earlier `rows(..).len()`); fails on none or several.
async fn new_row(w: &World, mark: usize) -> AuditEntry {
    let all = rows(w).await;
    let added = &all[mark.min(all.len())..];
    assert_eq!(added.len(), 1, "expected exactly one new audit row, got {added:#?}");
    added[0].clone()
}

/// Who did what to which record, and how; always at the test's fixed time.
fn assert_row(row: &AuditEntry, action: &str, entity: &str, entity_id: i64, actor: &User, via: Via) {
    let what = format!("audit row {} {entity} #{entity_id}", row.action);
    assert_eq!((row.action.as_str(), row.entity.as_str(), row.entity_id), (action, entity, entity_id), "{what}");
    assert_eq!(row.org_id, actor.org_id, "{what}: org");
    assert_eq!(row.actor_id, Some(actor.id), "{what}: actor");
    assert_eq!(row.via, via, "{what}: via");
    assert_eq!(row.at, t0(), "{what}: time");
    if via != Via::Chat {
        assert_eq!(row.source_message_id, None, "{what}: no message caused it");
    }
}

fn before(row: &AuditEntry) -> &Value {
    &row.before.as_ref().unwrap_or_else(|| panic!("{} {} has no `before`", row.action, row.entity)).0
}

fn after(row: &AuditEntry) -> &Value {
    &row.after.as_ref().unwrap_or_else(|| panic!("{} {} has no `after`", row.action, row.entity)).0
}

fn assert_create(row: &AuditEntry) {
    assert!(row.before.is_none(), "a create has no `before`: {:?}", row.before);
}

async fn actions_for(w: &World, entity: &str, id: i64) -> Vec<String> {
    let mut tx = w.db.begin_read().await.expect("begin read");
    let rows = store::audit::for_entity(&mut tx, w.org.id, entity, id).await.expect("read audit log");
    rows.into_iter().map(|r| r.action).collect()
}

async fn customer_changes_are_audited(db: Db) {
    let w = World::new(db).await;
    let ctx = api(&w.r1);

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let new =
        NewCustomer {
            name: "星河电子".into(), grade: Some(Grade::B), tags: vec!["vip".into()], ..Default::default()
        };
    let customer = crm::customers::create_customer(&mut tx, &ctx, new).await.expect("create customer");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "customer", customer.id, &w.r1, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["name"], "星河电子");
    assert_eq!(after(&row)["grade"], "B");
    assert_eq!(after(&row)["owner_id"], w.r1.id);
    assert_eq!(after(&row)["tags"], json!(["vip"]));

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let patch = CustomerPatch { grade: Some(Grade::A), add_tags: vec!["key".into()], ..Default::default() };
    crm::customers::update_customer(&mut tx, &ctx, customer.id, patch).await.expect("update customer");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "update", "customer", customer.id, &w.r1, Via::Api);
    assert_eq!((&before(&row)["grade"], &after(&row)["grade"]), (&json!("B"), &json!("A")), "grade before/after");
    assert_eq!(before(&row)["tags"], json!(["vip"]));
    assert_eq!(after(&row)["tags"], json!(["key", "vip"]));
    assert_eq!(after(&row)["name"], "星河电子", "`after` is the whole record, not just the patch");

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let contact = NewContact { name: "王经理", title: Some("采购"), phone: None, wechat: None, email: None };
    let contact = crm::customers::add_contact(&mut tx, &ctx, customer.id, contact).await.expect("add contact");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "contact", contact.id, &w.r1, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["name"], "王经理");
    assert_eq!(after(&row)["customer_id"], customer.id);

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let visit = NewActivity {
        customer_id: customer.id,
        kind: ActivityKind::Visit,
        content: "聊了报价".into(),
        occurred_at: None,
        next_step: Some("周五发方案".into()),
        location: None,
        follow_up: None,
    };
    let logged = crm::activities::log_activity(&mut tx, &ctx, visit).await.expect("log activity");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "activity", logged.activity.id, &w.r1, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["kind"], "visit");
    assert_eq!(after(&row)["content"], "聊了报价");
    assert_eq!(after(&row)["customer_id"], customer.id);

    assert_eq!(actions_for(&w, "customer", customer.id).await, ["create", "update"]);
}

async fn deal_changes_are_audited(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let ctx = api(&w.r1);
    let new = |title: &str| NewDeal {
        customer_id: customer.id,
        title: title.into(),
        amount_fen: 5_000_000,
        stage: None,
        expected_close: None,
        owner_id: None,
    };

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let deal = crm::deals::create_deal(&mut tx, &ctx, new("年度框架")).await.expect("create deal");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "deal", deal.id, &w.r1, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["title"], "年度框架");
    assert_eq!(after(&row)["stage"], "initial_contact");
    assert_eq!(after(&row)["amount_fen"], 5_000_000);

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let patch = DealPatch { stage: Some("方案报价".into()), ..Default::default() };
    crm::deals::update_deal(&mut tx, &ctx, deal.id, patch).await.expect("move deal");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "update", "deal", deal.id, &w.r1, Via::Api);
    assert_eq!((&before(&row)["stage"], &after(&row)["stage"]), (&json!("initial_contact"), &json!("proposal")));
    assert_eq!((&before(&row)["probability"], &after(&row)["probability"]), (&json!(10), &json!(50)));

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    crm::deals::close_deal(&mut tx, &ctx, deal.id, false, None, Some(LostReason::Price)).await.expect("lose deal");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "lost", "deal", deal.id, &w.r1, Via::Api);
    assert_eq!((&before(&row)["status"], &after(&row)["status"]), (&json!("open"), &json!("lost")));
    assert_eq!(before(&row)["stage"], "proposal");
    assert_eq!(after(&row)["lost_reason"], "price");
    assert_eq!(before(&row)["closed_at"], Value::Null);
    assert_ne!(after(&row)["closed_at"], Value::Null, "a closed deal records when");

    let mut tx = w.tx().await;
    let second = crm::deals::create_deal(&mut tx, &ctx, new("二期")).await.expect("create deal");
    tx.commit().await.expect("commit");
    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    crm::deals::close_deal(&mut tx, &ctx, second.id, true, Some(6_000_000), None).await.expect("win deal");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "won", "deal", second.id, &w.r1, Via::Api);
    assert_eq!((&before(&row)["amount_fen"], &after(&row)["amount_fen"]), (&json!(5_000_000), &json!(6_000_000)));
    assert_eq!(after(&row)["status"], "won");

    assert_eq!(actions_for(&w, "deal", deal.id).await, ["create", "update", "lost"]);
}

async fn lead_changes_are_audited(db: Db) {
    let w = World::new(db).await;

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let new = NewLead {
        company: "青山贸易".into(),
        phone: Some("138-0000-0000".into()),
        to_pool: true,
        ..Default::default()
    };
    let lead = crm::leads::create_lead(&mut tx, &api(&w.admin), new).await.expect("create lead");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "lead", lead.id, &w.admin, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["status"], "pool");
    assert_eq!(after(&row)["owner_id"], Value::Null);
    assert_eq!(after(&row)["phone_norm"], "13800000000");

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    crm::leads::claim_lead(&mut tx, &api(&w.r1), lead.id).await.expect("claim lead");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "claim", "lead", lead.id, &w.r1, Via::Api);
    assert_eq!((&before(&row)["status"], &after(&row)["status"]), (&json!("pool"), &json!("assigned")));
    assert_eq!((&before(&row)["owner_id"], &after(&row)["owner_id"]), (&Value::Null, &json!(w.r1.id)));

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    crm::leads::assign_lead(&mut tx, &api(&w.ma), lead.id, w.r2.id).await.expect("assign lead");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "assign", "lead", lead.id, &w.ma, Via::Api);
    assert_eq!(before(&row)["owner_id"], w.r1.id);
    assert_eq!(after(&row)["lead"]["owner_id"], w.r2.id);
    assert_eq!(after(&row)["reason"], "manual");

    assert_eq!(actions_for(&w, "lead", lead.id).await, ["create", "claim", "assign"]);
}

async fn task_changes_are_audited(db: Db) {
    let w = World::new(db).await;

    // A manager gives r1 a task: the actor is the manager, the owner r1.
    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let new = NewTask {
        title: "回访星河电子".into(),
        due_at: t0() + Duration::days(1),
        owner_id: Some(w.r1.id),
        customer_id: None,
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    let task = crm::tasks::create_task(&mut tx, &api(&w.ma), new).await.expect("create task");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "task", task.id, &w.ma, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["owner_id"], w.r1.id);
    assert_eq!(after(&row)["title"], "回访星河电子");
    assert_eq!(after(&row)["status"], "open");

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    crm::tasks::complete_task(&mut tx, &api(&w.r1), task.id).await.expect("complete task");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "complete", "task", task.id, &w.r1, Via::Api);
    assert_eq!((&before(&row)["status"], &after(&row)["status"]), (&json!("open"), &json!("done")));
    assert_eq!(before(&row)["completed_at"], Value::Null);
    assert_ne!(after(&row)["completed_at"], Value::Null, "a done task records when");
}

async fn user_and_team_changes_are_audited(db: Db) {
    let w = World::new(db).await;
    let ctx = api(&w.admin);

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let team = crm::users::create_team(&mut tx, &ctx, "Team C").await.expect("create team");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "team", team.id, &w.admin, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["name"], "Team C");

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let new = NewUser { handle: "r5", name: "赵五", role: Role::Rep, team_id: Some(team.id) };
    let r5 = crm::users::create_user(&mut tx, &ctx, new).await.expect("create user");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "user", r5.id, &w.admin, Via::Api);
    assert_create(&row);
    assert_eq!(after(&row)["handle"], "r5");
    assert_eq!(after(&row)["role"], "rep");
    assert_eq!(after(&row)["team_id"], team.id);

    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    crm::users::link_identity(&mut tx, &ctx, r5.id, "WeCom", "corp-1", "zhaowu").await.expect("link identity");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_row(&row, "link_identity", "user", r5.id, &w.admin, Via::Api);
    assert_create(&row);
    let expected = json!({"platform": "wecom", "corp_id": "corp-1", "platform_user_id": "zhaowu", "user_id": r5.id});
    assert_eq!(after(&row), &expected);

    // An operator at the command line acts as no user.
    let mark = rows(&w).await.len();
    let mut tx = w.tx().await;
    let cli = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    let team_d = crm::users::create_team(&mut tx, &cli, "Team D").await.expect("create team");
    tx.commit().await.expect("commit");
    let row = new_row(&w, mark).await;
    assert_eq!((row.entity.as_str(), row.entity_id), ("team", team_d.id));
    assert_eq!((row.org_id, row.actor_id, row.via), (w.org.id, None, Via::Cli));

    assert_eq!(actions_for(&w, "user", r5.id).await, ["create", "link_identity"]);
}

async fn rolled_back_changes_leave_no_audit_row(db: Db) {
    let w = World::new(db).await;
    let kept = w.customer(&w.r1, "星河贸易").await;
    let ctx = api(&w.r1);
    let mark = rows(&w).await.len();

    let mut tx = w.tx().await;
    let new = NewCustomer { name: "星河电子".into(), ..Default::default() };
    let gone = crm::customers::create_customer(&mut tx, &ctx, new).await.expect("create customer");
    let patch = CustomerPatch { grade: Some(Grade::A), ..Default::default() };
    crm::customers::update_customer(&mut tx, &ctx, kept.id, patch).await.expect("update customer");
    // Written, but only inside this transaction...
    assert_eq!(rows_in(&mut tx, &w).await.len(), mark + 2, "both changes audited in their transaction");
    drop(tx);

    // ...which rolled back with everything in it.
    assert_eq!(rows(&w).await.len(), mark, "a rolled-back change left an audit row");
    assert!(actions_for(&w, "customer", gone.id).await.is_empty());
    assert_eq!(actions_for(&w, "customer", kept.id).await, ["create"]);
    let mut tx = w.tx().await;
    let r = crm::customers::get_customer(&mut tx, &api(&w.admin), gone.id).await;
    assert!(is_not_found(&r), "the rolled-back customer exists: {r:?}");
    let kept = crm::customers::get_customer(&mut tx, &ctx, kept.id).await.expect("read customer");
    assert_eq!(kept.grade, None, "the rolled-back update stuck");
}

async fn refused_changes_leave_no_audit_row(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let ctx = api(&w.r1);
    let mut tx = w.tx().await;
    let deal = NewDeal {
        customer_id: customer.id,
        title: "年度框架".into(),
        amount_fen: 1_000_000,
        stage: None,
        expected_close: None,
        owner_id: None,
    };
    let deal = crm::deals::create_deal(&mut tx, &ctx, deal).await.expect("create deal");
    tx.commit().await.expect("commit");
    let mark = rows(&w).await.len();

    // Each refusal in its own transaction, checked inside it: a row written before the refusal
    // would still be visible there.
    let mut tx = w.tx().await;
    let blank = NewCustomer { name: "   ".into(), ..Default::default() };
    let r = crm::customers::create_customer(&mut tx, &ctx, blank).await;
    assert!(is_invalid(&r), "blank customer name: {r:?}");
    assert_eq!(rows_in(&mut tx, &w).await.len(), mark, "a refused create_customer was audited");
    drop(tx);

    let mut tx = w.tx().await;
    let twin = NewCustomer { name: "星河电子有限公司".into(), ..Default::default() };
    let r = crm::customers::create_customer(&mut tx, &ctx, twin).await;
    assert!(is_conflict(&r), "duplicate customer: {r:?}");
    assert_eq!(rows_in(&mut tx, &w).await.len(), mark, "a refused duplicate was audited");
    drop(tx);

    // The grade is written before the over-long tag is refused; the audit row must not be.
    let mut tx = w.tx().await;
    let patch = CustomerPatch { grade: Some(Grade::A), add_tags: vec!["长".repeat(31)], ..Default::default() };
    let r = crm::customers::update_customer(&mut tx, &ctx, customer.id, patch).await;
    assert!(is_invalid(&r), "over-long tag: {r:?}");
    assert_eq!(rows_in(&mut tx, &w).await.len(), mark, "a refused update_customer was audited");
    drop(tx);

    let mut tx = w.tx().await;
    let r = crm::customers::update_customer(&mut tx, &api(&w.r2), customer.id, CustomerPatch::default()).await;
    assert!(is_forbidden(&r), "r2 updates r1's customer: {r:?}");
    assert_eq!(rows_in(&mut tx, &w).await.len(), mark, "a forbidden update was audited");
    drop(tx);

    let mut tx = w.tx().await;
    let r = crm::deals::close_deal(&mut tx, &ctx, deal.id, false, None, None).await;
    assert!(is_invalid(&r), "a loss without a reason: {r:?}");
    let patch = DealPatch { stage: Some("won".into()), ..Default::default() };
    let r = crm::deals::update_deal(&mut tx, &ctx, deal.id, patch).await;
    assert!(is_invalid(&r), "winning through update_deal: {r:?}");
    assert_eq!(rows_in(&mut tx, &w).await.len(), mark, "a refused deal change was audited");
    drop(tx);

    let mut tx = w.tx().await;
    let bad_phone = NewLead { company: "青山贸易".into(), phone: Some("abc".into()), ..Default::default() };
    let r = crm::leads::create_lead(&mut tx, &ctx, bad_phone).await;
    assert!(is_invalid(&r), "unparseable phone: {r:?}");
    assert_eq!(rows_in(&mut tx, &w).await.len(), mark, "a refused create_lead was audited");
    drop(tx);

    assert_eq!(w.count("audit_log").await, i64::try_from(mark).expect("row count"), "refusals left audit rows");
}

async fn chat_changes_name_their_message(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let bot = w.bot();

    let mark = rows(&w).await.len();
    let reply = bot.handle(&w.msg(&w.r1, "m1", "拜访 星河电子 聊了报价")).await.expect("bot handles the visit");
    assert!(!reply.duplicate);
    let mut tx = w.db.begin_read().await.expect("begin read");
    let inbox = store::inbox::by_message_id(&mut tx, "console", "m1").await.expect("read inbox").expect("inbox row");
    assert_eq!(inbox.status, "done", "the visit was accepted: {}", reply.text);
    let activities = store::activities::for_customer(&mut tx, customer.id, 10).await.expect("read activities");
    let [activity] = activities.as_slice() else { panic!("expected one activity, got {activities:#?}") };
    assert_eq!((activity.kind, activity.content.as_str()), (ActivityKind::Visit, "聊了报价"));
    assert_eq!(activity.source_message_id, Some(inbox.id));
    drop(tx);
    let row = new_row(&w, mark).await;
    assert_row(&row, "create", "activity", activity.id, &w.r1, Via::Chat);
    assert_eq!(row.source_message_id, Some(inbox.id), "the audit row names the message that caused it");
    assert_create(&row);
    assert_eq!(after(&row)["content"], "聊了报价");

    // A retry of the same message changes nothing, so it audits nothing.
    let mark = rows(&w).await.len();
    let again = bot.handle(&w.msg(&w.r1, "m1", "拜访 星河电子 聊了报价")).await.expect("bot handles the retry");
    assert!(again.duplicate, "the retry is recognised");
    // Refused messages are recorded in the inbox but audit nothing: a customer that is not found,
    // and a duplicate customer (refused by the service, after the bot began its transaction).
    for (id, text) in [("m2", "拜访 无此客户 聊了报价"), ("m3", "新客户 星河电子有限公司")] {
        let refused = bot.handle(&w.msg(&w.r1, id, text)).await.expect("bot handles a refused message");
        assert!(!refused.duplicate);
        let mut tx = w.db.begin_read().await.expect("begin read");
        let inbox = store::inbox::by_message_id(&mut tx, "console", id).await.expect("read inbox").expect("inbox row");
        assert_eq!(inbox.status, "rejected", "{text} was refused: {}", refused.text);
    }
    assert_eq!(rows(&w).await.len(), mark, "a retry or a refused message left an audit row");
    assert_eq!(w.count("customers").await, 1, "the duplicate customer was not created");
}

crate::both_backends!(
    customer_changes_are_audited,
    deal_changes_are_audited,
    lead_changes_are_audited,
    task_changes_are_audited,
    user_and_team_changes_are_audited,
    rolled_back_changes_leave_no_audit_row,
    refused_changes_leave_no_audit_row,
    chat_changes_name_their_message,
);
