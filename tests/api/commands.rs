//! Every chat command end to end through the bot core: parse, permissions, effect, audit, reply.

use super::helpers::*;
use crate::both_backends;
use chatcrm::bot::Bot;
use chatcrm::clock::Clock;
use chatcrm::crm::{self, DealStatus, Grade, LeadStatus, LostReason, TaskStatus, User};
use chatcrm::store::{self, Db};
use chrono::{Duration, TimeZone, Utc};

struct Chat {
    w: World,
    bot: Bot,
    clock: Clock,
    n: std::cell::Cell<u32>,
}

impl Chat {
    async fn new(db: Db) -> Self {
        let w = World::new(db).await;
        let clock = Clock::fixed(t0());
        let bot = Bot::new(w.db.clone(), clock.clone());
        Self { w, bot, clock, n: std::cell::Cell::new(0) }
    }

    async fn say(&self, who: &User, text: &str) -> String {
        self.n.set(self.n.get() + 1);
        let mut msg = self.w.msg(who, &format!("m{}", self.n.get()), text);
        msg.received_at = self.clock.now();
        self.bot.handle(&msg).await.expect("handled").text
    }

    fn ctx(&self, who: &User) -> crm::Ctx {
        let mut c = self.w.ctx(who);
        c.now = self.clock.now();
        c
    }
}

/// The number after `#` in the first line containing `marker`.
fn id_after(reply: &str, marker: &str) -> i64 {
    let line = reply.lines().find(|l| l.contains(marker)).unwrap_or(reply);
    line.split('#')
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no #id after `{marker}` in: {reply}"))
}

async fn deal_lifecycle(db: Db) {
    let c = Chat::new(db).await;
    c.w.customer(&c.w.r1, "海尔智家股份有限公司").await;
    let r = c.say(&c.w.r1, "新商机 海尔 二期产线 120万 方案报价").await;
    assert!(r.contains("已建商机"), "{r}");
    let id = id_after(&r, "已建商机");
    let mut tx = c.w.tx().await;
    let d = crm::deals::get_deal(&mut tx, &c.ctx(&c.w.r1), id).await.expect("deal");
    assert_eq!(
        (d.amount_fen, d.stage.as_str(), d.probability, d.title.as_str()),
        (120_000_000, "proposal", 50, "二期产线")
    );
    drop(tx);

    let r = c.say(&c.w.r1, &format!("商机 #{id} 谈判 金额 150万")).await;
    assert!(r.contains("商务谈判") && r.contains("1,500,000"), "{r}");
    let r = c.say(&c.w.r2, &format!("商机 #{id} 签合同")).await;
    assert!(r.contains("不归你"), "r2 may not touch r1's deal: {r}");

    let r = c.say(&c.w.r1, &format!("输单 #{id}")).await;
    assert!(r.contains("为什么输了") && r.contains("1) 价格"), "{r}");
    let r = c.say(&c.w.r1, "竞争对手").await;
    assert!(r.contains("输单") && r.contains("竞争对手"), "{r}");
    let mut tx = c.w.tx().await;
    let d = crm::deals::deal_detail(&mut tx, &c.ctx(&c.w.r1), id).await.expect("deal");
    assert_eq!((d.deal.status, d.deal.lost_reason), (DealStatus::Lost, Some(LostReason::Competitor)));
    let moves: Vec<&str> = d.history.iter().map(|m| m.to_stage.as_str()).collect();
    assert_eq!(moves, vec!["proposal", "negotiation", "lost"]);
    let audit = store::audit::for_entity(&mut tx, c.w.org.id, "deal", id).await.expect("audit");
    assert_eq!(audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), vec!["create", "update", "lost"]);
}

async fn won_with_final_amount_and_reason_by_number(db: Db) {
    let c = Chat::new(db).await;
    c.w.customer(&c.w.r1, "美的集团").await;
    let a = id_after(&c.say(&c.w.r1, "new deal 美的 warehouse 50k").await, "Created deal");
    let b = id_after(&c.say(&c.w.r1, "新商机 美的 三期 8万").await, "已建商机");
    let r = c.say(&c.w.r1, &format!("won #{a} final ¥35,000")).await;
    assert!(r.contains("Won") && r.contains("¥35,000"), "{r}");
    let r = c.say(&c.w.r1, &format!("输单 #{b}")).await;
    assert!(r.contains("为什么"), "{r}");
    let r = c.say(&c.w.r1, "3").await;
    assert!(r.contains("没预算"), "{r}");
    let mut tx = c.w.tx().await;
    let d = crm::deals::get_deal(&mut tx, &c.ctx(&c.w.r1), b).await.expect("deal");
    assert_eq!(d.lost_reason, Some(LostReason::NoBudget));
    let d = crm::deals::get_deal(&mut tx, &c.ctx(&c.w.r1), a).await.expect("deal");
    assert_eq!((d.status, d.amount_fen), (DealStatus::Won, 3_500_000));
}

async fn reminders_and_tasks(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.r1, "提醒 明天下午3点 给海尔打电话").await;
    assert!(r.contains("已设提醒：11月25日 周三 15:00 给海尔打电话"), "{r}");
    let id = id_after(&r, "任务");
    let mut tx = c.w.tx().await;
    let t = crm::tasks::get_task(&mut tx, &c.ctx(&c.w.r1), id).await.expect("task");
    assert_eq!(t.due_at, Utc.with_ymd_and_hms(2026, 11, 25, 7, 0, 0).single().expect("time"));
    drop(tx);
    let r = c.say(&c.w.r1, "提醒 今天早上8点 开晨会").await;
    assert!(r.contains("已经过去"), "a reminder in the past is refused and explained: {r}");
    let r = c.say(&c.w.r1, "remind me next wed 10am send the quote").await;
    assert!(r.contains("Reminder set: Wed Dec 2 10:00"), "{r}");

    let r = c.say(&c.w.r1, &format!("推迟 #{id} 到 后天上午10点")).await;
    assert!(r.contains("11月26日 周四 10:00"), "{r}");
    let r = c.say(&c.w.r2, &format!("完成 #{id}")).await;
    assert!(r.contains("不是你的任务"), "{r}");
    let r = c.say(&c.w.r1, &format!("完成 #{id}")).await;
    assert!(r.contains("已完成任务"), "{r}");
    let mut tx = c.w.tx().await;
    let t = crm::tasks::get_task(&mut tx, &c.ctx(&c.w.r1), id).await.expect("task");
    assert_eq!(t.status, TaskStatus::Done);
    assert_eq!(t.due_at, Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).single().expect("time"));
}

async fn visit_with_follow_up(db: Db) {
    let c = Chat::new(db).await;
    let cust = c.w.customer(&c.w.r1, "海尔智家").await;
    let r = c.say(&c.w.r1, "拜访 海尔 聊了报价，对方嫌贵，下周三下午3点再跟进").await;
    assert!(r.contains("已记录拜访") && r.contains("已设提醒：12月2日 周三 15:00 再跟进"), "{r}");
    let mut tx = c.w.tx().await;
    let today = crm::tasks::today(&mut tx, &c.ctx(&c.w.r1), chrono_tz::Asia::Shanghai).await.expect("today");
    assert!(today.due_today.is_empty() && today.overdue.is_empty());
    let acts = store::activities::for_customer(&mut tx, cust.id, 10).await.expect("acts");
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].content, "聊了报价，对方嫌贵");
    let cust = crm::customers::get_customer(&mut tx, &c.ctx(&c.w.r1), cust.id).await.expect("customer");
    assert_eq!(cust.last_contacted_at, Some(t0()));
}

async fn customers_through_chat(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.r1, "新客户 青岛双星轮胎 行业 制造业 A级 联系人 王经理 电话 139-0000-1111").await;
    assert!(r.contains("已创建客户"), "{r}");
    let r = c.say(&c.w.r1, "客户 双星 等级 B 标签 +重点 +华东").await;
    assert!(r.contains("等级 B") && r.contains("华东 重点"), "{r}");
    let r = c.say(&c.w.r1, "客户 双星 标签 -华东").await;
    assert!(r.contains("标签 重点") && !r.contains("华东"), "{r}");
    let r = c.say(&c.w.r1, "客户 双星 转给 @r2").await;
    assert!(r.contains("只有经理或管理员"), "{r}");
    let r = c.say(&c.w.ma, "客户 双星 转给 @r2").await;
    assert!(r.contains("负责人 r2"), "{r}");
    let r = c.say(&c.w.r2, "客户 双星").await;
    assert!(r.contains("王经理") && r.contains("13900001111"), "{r}");
    let r = c.say(&c.w.r2, "我的客户").await;
    assert!(r.contains("青岛双星轮胎") && r.contains("[B]"), "{r}");
    assert!(!c.say(&c.w.r1, "我的客户").await.contains("双星"));
    let mut tx = c.w.tx().await;
    let list = crm::customers::list_customers(&mut tx, &c.ctx(&c.w.r2), true).await.expect("list");
    assert_eq!(list.first().map(|c| c.grade), Some(Some(Grade::B)));
}

async fn leads_through_chat(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.r1, "线索 青岛某某机械 王经理 13800000000 来源 展会").await;
    let id = id_after(&r, "已登记线索");
    let r = c.say(&c.w.r2, "线索 另一家公司 +86 138-0000-0000").await;
    assert!(r.contains("已经有人在跟进") && !r.contains("r1"), "a rep learns it is taken, not whose: {r}");
    let r = c.say(&c.w.ma, "线索 另一家公司 138 0000 0000").await;
    assert!(r.contains("已存在") && r.contains("r1"), "the owner's manager is told whose: {r}");
    let r = c.say(&c.w.r1, &format!("分配 #{id} 给 @r2")).await;
    assert!(r.contains("只有经理或管理员"), "{r}");
    let r = c.say(&c.w.ma, &format!("分配 #{id} 给 @r2")).await;
    assert!(r.contains("已分配给 r2"), "{r}");
    // The notice is queued with the assignment and delivered by the outbox.
    assert_eq!(crate::helpers::drain_outbox(&c.w.db).await.sent, 1);
    let pushes = chatcrm::platform::console::pushes(&c.w.db, "Org One", "r2", 0).await.expect("pushes");
    assert!(pushes.iter().any(|p| p.text.contains(&format!("#{id}")) && p.text.contains("ma")), "{pushes:?}");
    let r = c.say(&c.w.r2, &format!("转化 #{id}")).await;
    assert!(r.contains("已转为客户"), "{r}");
    let mut tx = c.w.tx().await;
    let lead = crm::leads::get_lead(&mut tx, &c.ctx(&c.w.r2), id).await.expect("lead");
    assert_eq!(lead.status, LeadStatus::Converted);
    let customer = crm::customers::customer_detail(&mut tx, &c.ctx(&c.w.r2), lead.customer_id.expect("customer"))
        .await
        .expect("detail");
    assert_eq!(customer.customer.owner_id, Some(c.w.r2.id));
    assert_eq!(customer.contacts.first().and_then(|ct| ct.phone.as_deref()), Some("13800000000"));
    // The public pool.
    let mut new = crm::leads::NewLead { company: "烟台海洋装备".into(), ..Default::default() };
    new.to_pool = true;
    let pooled = crm::leads::create_lead(&mut tx, &c.ctx(&c.w.admin), new).await.expect("pool lead");
    tx.commit().await.expect("commit");
    let r = c.say(&c.w.r3, &format!("认领 #{}", pooled.id)).await;
    assert!(r.contains("已认领"), "{r}");
    let r = c.say(&c.w.r1, &format!("claim #{}", pooled.id)).await;
    assert!(r.contains("not in the public pool"), "{r}");
}

async fn pipeline_and_digest(db: Db) {
    let c = Chat::new(db).await;
    c.w.customer(&c.w.r1, "海尔智家").await;
    c.w.customer(&c.w.r3, "美的集团").await;
    c.say(&c.w.r1, "新商机 海尔 产线 100万 报价").await;
    c.say(&c.w.r3, "新商机 美的 仓储 10万").await;
    c.say(&c.w.r1, "拜访 海尔 聊了方案").await;
    c.say(&c.w.r1, "电话 海尔 确认时间").await;
    let r = c.say(&c.w.r1, "漏斗").await;
    assert!(
        r.contains("我的漏斗") && r.contains("- 方案报价 50%：1 单 · ¥1,000,000") && r.contains("加权 ¥500,000"),
        "{r}"
    );
    let r = c.say(&c.w.ma, "团队漏斗").await;
    assert!(r.contains("团队漏斗") && r.contains("进行中 1 单"), "team A sees only its own deal: {r}");
    let r = c.say(&c.w.admin, "pipeline").await;
    assert!(r.contains("Company pipeline") && r.contains("Open 2 deals"), "{r}");
    let r = c.say(&c.w.ma, "日报").await;
    assert!(r.contains("拜访 1 · 电话 1") && r.contains("- r1：拜访 1 · 电话 1"), "{r}");
    assert!(!r.contains("r3"), "team B is not in team A's digest: {r}");
    let r = c.say(&c.w.r3, "weekly digest").await;
    assert!(r.contains("My weekly digest") && r.contains("Visits 0"), "{r}");
}

async fn undo_reverts_the_last_change(db: Db) {
    let c = Chat::new(db).await;
    let cust = c.w.customer(&c.w.r1, "海尔智家").await;
    c.say(&c.w.r1, "客户 海尔 等级 A 标签 +重点").await;
    c.clock.advance(Duration::minutes(1));
    let r = c.say(&c.w.r1, "拜访 海尔 聊了报价，下周三下午再跟进").await;
    assert!(r.contains("已设提醒"), "{r}");
    let (acts, tasks) = (c.w.count("activities").await, c.w.count("tasks").await);
    assert_eq!((acts, tasks), (1, 1));

    let r = c.say(&c.w.r1, "撤销").await;
    assert!(r.contains("已撤销"), "{r}");
    assert_eq!((c.w.count("activities").await, c.w.count("tasks").await), (0, 0), "the visit and its follow-up go");
    let mut tx = c.w.tx().await;
    let now = crm::customers::get_customer(&mut tx, &c.ctx(&c.w.r1), cust.id).await.expect("customer");
    assert_eq!(now.last_contacted_at, None, "last contact is recomputed");
    drop(tx);

    // The next undo goes one step further back: the grade and tag change.
    let r = c.say(&c.w.r1, "undo").await;
    assert!(r.contains("Undone"), "{r}");
    let mut tx = c.w.tx().await;
    let d = crm::customers::customer_detail(&mut tx, &c.ctx(&c.w.r1), cust.id).await.expect("detail");
    assert_eq!((d.customer.grade, d.tags.len()), (None, 0));
    drop(tx);
    // Another user's undo never touches r1's changes; the creation is outside chat (no message)
    // but still r1's, so it is the next thing undone; after the window, nothing is.
    let r = c.say(&c.w.r2, "撤销").await;
    assert!(r.contains("没有可以撤销"), "{r}");
    c.clock.advance(Duration::minutes(11));
    let r = c.say(&c.w.r1, "撤销").await;
    assert!(r.contains("没有可以撤销"), "{r}");
    assert_eq!(c.w.count("customers").await, 1);
}

async fn undo_of_a_stage_move_and_of_a_customer_still_in_use(db: Db) {
    let c = Chat::new(db).await;
    c.say(&c.w.r1, "新客户 青岛啤酒").await;
    let id = id_after(&c.say(&c.w.r1, "新商机 青岛啤酒 灌装线 80万").await, "已建商机");
    c.say(&c.w.r1, &format!("商机 #{id} 谈判")).await;
    let r = c.say(&c.w.r1, "撤销").await;
    assert!(r.contains("已撤销"), "{r}");
    let mut tx = c.w.tx().await;
    let d = crm::deals::deal_detail(&mut tx, &c.ctx(&c.w.r1), id).await.expect("deal");
    assert_eq!((d.deal.stage.as_str(), d.deal.probability, d.history.len()), ("initial_contact", 10, 1));
    drop(tx);
    // Undoing the deal works; undoing the customer then works too (nothing refers to it).
    assert!(c.say(&c.w.r1, "撤销").await.contains("已撤销"));
    assert_eq!(c.w.count("deals").await, 0);
    // A customer with a later activity from another message cannot be removed before it.
    c.say(&c.w.r1, "拜访 青岛啤酒 参观").await;
    let acts = c.w.count("activities").await;
    assert!(c.say(&c.w.r1, "撤销").await.contains("已撤销"), "the visit goes first");
    assert_eq!(c.w.count("activities").await, acts - 1);
    assert!(c.say(&c.w.r1, "撤销").await.contains("已撤销"), "then the customer");
    assert_eq!(c.w.count("customers").await, 0);
}

async fn errors_show_a_correct_example(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.r1, "拜方 海尔 聊了").await;
    assert!(r.contains("拜访"), "typo suggests the command: {r}");
    let r = c.say(&c.w.r1, "商机 #12").await;
    assert!(r.contains("没有看到要改什么") && r.contains("例如"), "{r}");
    let r = c.say(&c.w.r1, "snooze #3").await;
    assert!(r.contains("until when") && r.contains("e.g."), "{r}");
    let r = c.say(&c.w.r1, "赢单 #999").await;
    assert!(r.contains("不存在"), "{r}");
    let r = c.say(&c.w.r4, "赢单 #1").await;
    assert!(r.contains("不存在"), "another org's deal is not found: {r}");
}

async fn undo_refuses_when_someone_changed_the_record_since(db: Db) {
    let c = Chat::new(db).await;
    c.w.customer(&c.w.r1, "海尔智家").await;
    c.say(&c.w.r1, "客户 海尔 等级 A").await;
    let r = c.say(&c.w.ma, "客户 海尔 转给 @r2").await;
    assert!(r.contains("负责人 r2"), "{r}");
    let r = c.say(&c.w.r1, "撤销").await;
    assert!(r.contains("之后又被修改过"), "r1's undo must not take the customer back from r2: {r}");
    let mut tx = c.w.tx().await;
    let list = crm::customers::list_customers(&mut tx, &c.ctx(&c.w.r2), true).await.expect("list");
    assert_eq!(list.len(), 1, "still r2's");
    assert_eq!(list[0].grade, Some(Grade::A), "and r1's grade change stays");
}

/// Two reps claim the same pool lead at the same moment: exactly one gets it, every round.
async fn concurrent_claims_have_one_winner(db: Db) {
    let c = Chat::new(db).await;
    for round in 0..15 {
        let mut tx = c.w.tx().await;
        let new = crm::leads::NewLead { company: format!("公海公司{round}"), to_pool: true, ..Default::default() };
        let lead = crm::leads::create_lead(&mut tx, &c.ctx(&c.w.admin), new).await.expect("pool lead");
        tx.commit().await.expect("commit");
        let text = format!("认领 #{}", lead.id);
        let (a, b) = tokio::join!(c.say(&c.w.r1, &text), c.say(&c.w.r3, &text));
        let winners = [&a, &b].iter().filter(|r| r.contains("已认领")).count();
        assert_eq!(winners, 1, "round {round}: {a} / {b}");
        let mut tx = c.w.tx().await;
        let rows = store::audit::for_entity(&mut tx, c.w.org.id, "lead", lead.id).await.expect("audit");
        assert_eq!(rows.iter().filter(|r| r.action == "claim").count(), 1);
    }
}

/// After a customer is handed to r2, r1 can neither undo their visit on it nor see r2's deals.
async fn handed_over_customers_are_out_of_reach(db: Db) {
    let c = Chat::new(db).await;
    c.w.customer(&c.w.r1, "海尔智家").await;
    c.say(&c.w.r1, "拜访 海尔 聊了报价，明天下午3点再跟进").await;
    c.say(&c.w.ma, "客户 海尔 转给 @r2").await;
    let r = c.say(&c.w.r1, "撤销").await;
    assert!(r.contains("不归你负责"), "{r}");
    assert_eq!((c.w.count("activities").await, c.w.count("tasks").await), (1, 1));
    // A deal of r2's on a customer r1 owns again is not shown to r1.
    c.say(&c.w.r2, "新商机 海尔 空调改造 88万").await;
    c.say(&c.w.ma, "客户 海尔 转给 @r1").await;
    let r = c.say(&c.w.r1, "客户 海尔").await;
    assert!(r.contains("海尔智家") && !r.contains("空调改造"), "{r}");
    let r = c.say(&c.w.ma, "客户 海尔").await;
    assert!(r.contains("空调改造"), "the manager sees both: {r}");
}

both_backends!(
    handed_over_customers_are_out_of_reach,
    concurrent_claims_have_one_winner,
    undo_refuses_when_someone_changed_the_record_since,
    deal_lifecycle,
    won_with_final_amount_and_reason_by_number,
    reminders_and_tasks,
    visit_with_follow_up,
    customers_through_chat,
    leads_through_chat,
    pipeline_and_digest,
    undo_reverts_the_last_change,
    undo_of_a_stage_move_and_of_a_customer_still_in_use,
    errors_show_a_correct_example,
);
