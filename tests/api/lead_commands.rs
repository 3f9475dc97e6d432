//! The lead desk in chat, end to end through the bot: assignment rules (create, list, disable,
//! enable, delete), routing of leads a manager enters, leave, the public pool, lead status.

use super::helpers::*;
use crate::both_backends;
use chatcrm::bot::Bot;
use chatcrm::clock::Clock;
use chatcrm::crm::{self, LeadStatus, User};
use chatcrm::store::{self, Db};
use chrono::Duration;

struct Chat {
    w: World,
    bot: Bot,
    n: std::cell::Cell<u32>,
}

impl Chat {
    async fn new(db: Db) -> Self {
        let w = World::new(db).await;
        let bot = Bot::new(w.db.clone(), Clock::fixed(t0()));
        Self { w, bot, n: std::cell::Cell::new(0) }
    }

    async fn say(&self, who: &User, text: &str) -> String {
        self.n.set(self.n.get() + 1);
        let msg = self.w.msg(who, &format!("m{}", self.n.get()), text);
        self.bot.handle(&msg).await.expect("handled").text
    }

    async fn lead(&self, id: i64) -> crm::Lead {
        let mut tx = self.w.tx().await;
        crm::leads::get_lead(&mut tx, &self.w.ctx(&self.w.admin), id).await.expect("lead")
    }

    async fn rules(&self) -> Vec<crm::lead_rules::Rule> {
        let mut tx = self.w.tx().await;
        crm::lead_rules::list_rules(&mut tx, &self.w.ctx(&self.w.admin)).await.expect("rules")
    }

    /// A lead put straight into the public pool, entered `ago` before the test's "now".
    async fn pooled(&self, company: &str, region: &str, ago: Duration) -> crm::Lead {
        let mut tx = self.w.tx().await;
        let mut ctx = self.w.ctx(&self.w.admin);
        ctx.now = t0() - ago;
        let new = crm::leads::NewLead {
            company: company.into(),
            region: Some(region.into()),
            industry: Some("制造业".into()),
            source: Some("展会".into()),
            to_pool: true,
            ..Default::default()
        };
        let lead = crm::leads::create_lead(&mut tx, &ctx, new).await.expect("pool lead");
        tx.commit().await.expect("commit");
        lead
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

/// A manager writes a team rule in chat; the leads they enter go round robin to the team's reps,
/// each with the rule named in the reply and a notice to the rep; a rep on leave is skipped.
async fn team_rule_routes_round_robin_and_skips_leave(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.ma, "新规则 A组制造业 行业 制造业 给 团队 Team A 轮流 上限 20").await;
    assert!(r.contains("已建规则") && r.contains("「A组制造业」"), "{r}");
    assert!(r.contains("行业 制造业 → 团队 Team A（轮流） · 每人上限 20"), "{r}");

    let r = c.say(&c.w.ma, "线索 青岛某某机械 行业 制造业").await;
    let first = id_after(&r, "已登记线索");
    assert!(r.contains("按规则『A组制造业』") && r.contains("分配给 r1"), "{r}");
    assert_eq!(c.lead(first).await.owner_id, Some(c.w.r1.id));
    // The notice to the rep is queued with the lead and says which rule gave it.
    assert_eq!(drain_outbox(&c.w.db).await.sent, 1);
    let pushes = chatcrm::platform::console::pushes(&c.w.db, "Org One", "r1", 0).await.expect("pushes");
    assert!(
        pushes.iter().any(|p| p.text.contains(&format!("#{first}")) && p.text.contains("按规则『A组制造业』")),
        "{pushes:?}"
    );

    let r = c.say(&c.w.ma, "线索 烟台某某重工 行业 制造业").await;
    let second = id_after(&r, "已登记线索");
    assert!(r.contains("分配给 r2"), "round robin moves on to the next rep: {r}");
    assert_eq!(c.lead(second).await.owner_id, Some(c.w.r2.id));

    // Leave: only the manager of r1's team (or an admin) may set it.
    let r = c.say(&c.w.r2, "休假 @r1").await;
    assert!(r.contains("只有经理或管理员"), "{r}");
    let r = c.say(&c.w.mb, "休假 @r1").await;
    assert!(r.contains("只能设置你团队里的人"), "{r}");
    let r = c.say(&c.w.ma, "@r1 休假").await;
    assert!(r.contains("已设置 r1 休假"), "{r}");
    let r = c.say(&c.w.ma, "线索 潍坊某某化工 行业 制造业").await;
    let third = id_after(&r, "已登记线索");
    assert!(r.contains("分配给 r2"), "r1 is on leave: {r}");
    assert_eq!(c.lead(third).await.owner_id, Some(c.w.r2.id));
    let r = c.say(&c.w.ma, "back @r1").await;
    assert!(r.contains("r1 is back"), "{r}");
    let r = c.say(&c.w.ma, "线索 淄博某某陶瓷 行业 制造业").await;
    let fourth = id_after(&r, "已登记线索");
    assert_eq!(c.lead(fourth).await.owner_id, Some(c.w.r1.id), "{r}");
    assert_eq!(drain_outbox(&c.w.db).await.sent, 3, "one notice per routed lead");

    // A lead no rule matches goes to the pool.
    let r = c.say(&c.w.ma, "线索 日照某某港务 行业 物流").await;
    let pooled = id_after(&r, "已登记线索");
    assert!(r.contains("进入公海"), "{r}");
    assert_eq!(c.lead(pooled).await.status, LeadStatus::Pool);
}

/// A rule to one person, written in English by an admin.
async fn user_rule_in_english(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.admin, "new rule Qingdao manufacturing region Qingdao industry manufacturing to @r3").await;
    assert!(r.contains("Created rule") && r.contains("region Qingdao, industry manufacturing → r3"), "{r}");
    let r = c.say(&c.w.admin, "new lead Acme region Qingdao industry manufacturing").await;
    let id = id_after(&r, "recorded");
    assert!(r.contains("Qingdao manufacturing") && r.contains("r3"), "the rule is named: {r}");
    assert_eq!(c.lead(id).await.owner_id, Some(c.w.r3.id));
    assert_eq!(drain_outbox(&c.w.db).await.sent, 1);
    // Same name twice is refused; a team that does not exist is named in the refusal.
    let r = c.say(&c.w.admin, "new rule Qingdao manufacturing region Qingdao to @r1").await;
    assert!(r.contains("already exists"), "{r}");
    let r = c.say(&c.w.admin, "new rule East region Shanghai to team Nowhere round robin cap 20").await;
    assert!(r.contains("Nowhere"), "{r}");
    let r = c.say(&c.w.admin, "新规则 上海 地区 上海 给 @nobody").await;
    assert!(r.contains("没有找到用户「nobody」"), "{r}");
    assert_eq!(c.rules().await.len(), 1);
}

/// The pool lists claimable leads newest first; a rep claims one, contacts it (stopping its SLA
/// clock), qualifies it, releases it; another discards one.
async fn pool_claim_and_status(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.r1, "公海").await;
    assert!(r.contains("公海里现在没有"), "{r}");
    let old = c.pooled("烟台海洋装备", "烟台", Duration::days(2)).await;
    let new = c.pooled("青岛某某机械", "青岛", Duration::hours(3)).await;

    let r = c.say(&c.w.r1, "公海").await;
    let (at_new, at_old) = (r.find(&format!("#{} ", new.id)), r.find(&format!("#{} ", old.id)));
    assert!(at_new.is_some() && at_old.is_some() && at_new < at_old, "newest first: {r}");
    assert!(r.contains(&format!("#{} 青岛某某机械 · 青岛 · 制造业 · 展会 · 3 小时前", new.id)), "{r}");
    assert!(r.contains("2 天前") && r.contains(&format!("认领 #{}", new.id)), "{r}");
    let r = c.say(&c.w.r2, "lead pool").await;
    assert!(r.contains("**Lead pool** (2, newest first)") && r.contains("3h ago"), "{r}");

    let r = c.say(&c.w.r1, &format!("认领 #{}", old.id)).await;
    assert!(r.contains("已认领"), "{r}");
    let r = c.say(&c.w.r1, "公海").await;
    assert!(r.contains(&format!("#{}", new.id)) && !r.contains(&format!("#{} ", old.id)), "{r}");

    let r = c.say(&c.w.r1, &format!("联系了 #{}", old.id)).await;
    assert!(r.contains(&format!("已记录联系，线索 #{} 烟台海洋装备 的跟进时限已停止", old.id)), "{r}");
    assert_eq!(c.lead(old.id).await.status, LeadStatus::Contacted);
    let r = c.say(&c.w.r1, &format!("qualified #{}", old.id)).await;
    assert!(r.contains("is qualified"), "{r}");
    assert_eq!(c.lead(old.id).await.status, LeadStatus::Qualified);
    // Someone else's lead is out of reach.
    let r = c.say(&c.w.r3, &format!("联系了 #{}", old.id)).await;
    assert!(r.contains("不归你负责"), "{r}");
    let r = c.say(&c.w.r1, &format!("退回公海 #{} 不在我的区域", old.id)).await;
    assert!(r.contains("已退回公海（原因：不在我的区域）"), "{r}");
    let l = c.lead(old.id).await;
    assert_eq!((l.status, l.owner_id), (LeadStatus::Pool, None));

    let r = c.say(&c.w.r2, &format!("claim #{}", new.id)).await;
    assert!(r.contains("You claimed"), "{r}");
    let r = c.say(&c.w.r2, &format!("放弃 #{} 原因 空号", new.id)).await;
    assert!(r.contains("已放弃线索") && r.contains("空号"), "{r}");
    assert_eq!(c.lead(new.id).await.status, LeadStatus::Discarded);
    let r = c.say(&c.w.r2, &format!("联系了 #{}", new.id)).await;
    assert!(r.contains("已经关闭"), "a discarded lead stays closed: {r}");
    let mut tx = c.w.tx().await;
    let audit = store::audit::for_entity(&mut tx, c.w.org.id, "lead", old.id).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, vec!["create", "claim", "set_status", "set_status", "set_status"]);
}

/// Rules listed in order; disabled, enabled, deleted by name, place in the list or #id.
async fn rules_list_disable_enable_delete(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.ma, "规则").await;
    assert!(r.contains("还没有分配规则"), "{r}");
    c.say(&c.w.ma, "新规则 A组制造业 行业 制造业 给 团队 Team A").await;
    let r = c.say(&c.w.ma, "新规则 青岛 地区 青岛 给 @r2 第1位").await;
    assert!(r.contains("（第 1 条）"), "{r}");
    let team_rule = c.rules().await.iter().find(|r| r.name == "A组制造业").map(|r| r.id).expect("rule");
    let r = c.say(&c.w.ma, "分配规则").await;
    let (a, b) = (r.find("1. 青岛（#"), r.find("2. A组制造业（#"));
    assert!(a.is_some() && b.is_some(), "in order, with positions: {r}");
    assert!(r.contains("地区 青岛 → r2") && r.contains("行业 制造业 → 团队 Team A（轮流）"), "{r}");

    // Another team's manager may not touch team A's rule.
    let r = c.say(&c.w.mb, "停用规则 A组制造业").await;
    assert!(r.contains("自己团队"), "{r}");
    let r = c.say(&c.w.ma, "停用规则 青岛").await;
    assert!(r.contains("已停用规则"), "{r}");
    let r = c.say(&c.w.ma, "rules").await;
    assert!(r.contains("1. 青岛 (#") && r.contains("region 青岛 → r2") && r.contains("⏸ disabled"), "{r}");
    let r = c.say(&c.w.ma, "线索 青岛某某机械 地区 青岛 行业 制造业").await;
    assert!(r.contains("按规则『A组制造业』") && r.contains("r1"), "the disabled rule is skipped: {r}");

    let r = c.say(&c.w.ma, "启用规则 1").await;
    assert!(r.contains("已启用规则") && r.contains("青岛"), "by place in the list: {r}");
    let r = c.say(&c.w.ma, "线索 青岛某某重工 地区 青岛 行业 制造业").await;
    assert!(r.contains("按规则『青岛』") && r.contains("r2"), "{r}");

    let r = c.say(&c.w.ma, "delete rule 1").await;
    assert!(r.contains("Deleted rule") && r.contains("青岛"), "{r}");
    let r = c.say(&c.w.ma, "删除规则 9").await;
    assert!(r.contains("没有第 9 条规则"), "{r}");
    let r = c.say(&c.w.ma, &format!("删除规则 #{team_rule}")).await;
    assert!(r.contains("已删除规则") && r.contains("A组制造业"), "{r}");
    assert!(c.rules().await.is_empty());
    let mut tx = c.w.tx().await;
    let audit = store::audit::for_entity(&mut tx, c.w.org.id, "lead_rule", team_rule).await.expect("audit");
    assert_eq!(audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), vec!["create", "delete"]);
}

/// A rep cannot see or change rules: the reply says who can, and nothing is written.
async fn reps_cannot_manage_rules(db: Db) {
    let c = Chat::new(db).await;
    c.say(&c.w.ma, "新规则 A组制造业 行业 制造业 给 团队 Team A").await;
    let audit = c.w.count("audit_log").await;
    for text in ["新规则 我的 地区 青岛 给 @r1", "规则", "删除规则 A组制造业", "停用规则 1"] {
        let r = c.say(&c.w.r1, text).await;
        assert!(r.contains("只有经理或管理员可以管理分配规则"), "{text}: {r}");
    }
    let r = c.say(&c.w.r1, "new rule Mine region Qingdao to @r1").await;
    assert!(r.contains("only managers and admins"), "{r}");
    let r = c.say(&c.w.r1, "休假 @r2").await;
    assert!(r.contains("只有经理或管理员"), "{r}");
    let rules = c.rules().await;
    assert_eq!((rules.len(), rules[0].active), (1, true));
    assert_eq!(c.w.count("audit_log").await, audit, "nothing was written");
}

/// Malformed messages get the reason and a correct example, in the sender's language.
async fn malformed_messages_get_usage(db: Db) {
    let c = Chat::new(db).await;
    let r = c.say(&c.w.ma, "新规则 青岛").await;
    assert!(r.contains("分给谁") && r.contains("例如：新规则 青岛制造业 地区 青岛"), "{r}");
    let r = c.say(&c.w.ma, "new rule East to team").await;
    assert!(r.contains("`team` needs a value") && r.contains("e.g. new rule Qingdao manufacturing"), "{r}");
    let r = c.say(&c.w.r1, "联系了").await;
    assert!(r.contains("请写线索编号") && r.contains("例如：联系了 #34"), "{r}");
    let r = c.say(&c.w.r1, "contacted #3 they want a demo").await;
    assert!(r.contains("needs only its number") && r.contains("e.g. contacted #34"), "{r}");
    let r = c.say(&c.w.ma, "休假").await;
    assert!(r.contains("谁休假") && r.contains("例如：休假 @李雷"), "{r}");
    let r = c.say(&c.w.r1, "公海 海尔").await;
    assert!(r.contains("例如：公海"), "{r}");
    assert!(c.rules().await.is_empty());
}

both_backends!(
    team_rule_routes_round_robin_and_skips_leave,
    user_rule_in_english,
    pool_claim_and_status,
    rules_list_disable_enable_delete,
    reps_cannot_manage_rules,
    malformed_messages_get_usage,
);
