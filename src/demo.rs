//! A realistic demo org, so a newcomer can try every command at once: a manager and three reps in
//! one team, an admin, ~30 customers, ~20 deals across every stage with history, ~60 activities
//! over the last 30 days, ~10 leads, and open and overdue tasks. Deterministic for a given "now".

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::crm::activities::NewActivity;
use crate::crm::customers::{NewContact, NewCustomer};
use crate::crm::deals::{DealPatch, NewDeal};
use crate::crm::leads::NewLead;
use crate::crm::tasks::NewTask;
use crate::crm::users::NewUser;
use crate::crm::{self, ActivityKind, Actor, Ctx, Grade, LostReason, Role, TaskOrigin, User, Via};
use crate::store::Tx;

/// What was created, for the CLI to print.
#[derive(Debug, Default, Serialize)]
pub struct DemoSummary {
    pub org: String,
    pub users: Vec<(String, String, String)>,
    pub customers: usize,
    pub deals: usize,
    pub activities: usize,
    pub leads: usize,
    pub tasks: usize,
}

/// A tiny deterministic generator (xorshift64*), so the demo is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// (name, industry, region, grade, owner index into reps)
const CUSTOMERS: &[(&str, &str, &str, Grade, usize)] = &[
    ("海尔智家股份有限公司", "家电", "青岛市崂山区", Grade::A, 0),
    ("青岛海尔模具有限公司", "制造业", "青岛市黄岛区", Grade::B, 1),
    ("美的集团股份有限公司", "家电", "佛山市顺德区", Grade::A, 1),
    ("青岛啤酒股份有限公司", "食品饮料", "青岛市市北区", Grade::A, 2),
    ("海信视像科技股份有限公司", "家电", "青岛市市南区", Grade::B, 0),
    ("潍柴动力股份有限公司", "制造业", "潍坊市奎文区", Grade::A, 2),
    ("浪潮电子信息产业股份有限公司", "IT", "济南市高新区", Grade::B, 1),
    ("歌尔股份有限公司", "电子", "潍坊市高新区", Grade::B, 0),
    ("青岛港国际股份有限公司", "物流", "青岛市黄岛区", Grade::C, 2),
    ("烟台万华化学集团", "化工", "烟台市福山区", Grade::A, 1),
    ("山东鲁花集团有限公司", "食品饮料", "烟台市莱阳市", Grade::B, 2),
    ("杭州海康威视数字技术股份有限公司", "安防", "杭州市滨江区", Grade::A, 0),
    ("苏州博众精工科技股份有限公司", "制造业", "苏州市吴江区", Grade::C, 1),
    ("宁波舟山港股份有限公司", "物流", "宁波市北仑区", Grade::C, 2),
    ("上海振华重工（集团）股份有限公司", "制造业", "上海市浦东新区", Grade::B, 0),
    ("南京熊猫电子股份有限公司", "电子", "南京市栖霞区", Grade::C, 1),
    ("合肥京东方光电科技有限公司", "电子", "合肥市新站区", Grade::B, 2),
    ("无锡先导智能装备股份有限公司", "制造业", "无锡市新吴区", Grade::B, 0),
    ("济南二机床集团有限公司", "制造业", "济南市槐荫区", Grade::C, 1),
    ("临沂金锣肉制品集团", "食品饮料", "临沂市兰山区", Grade::C, 2),
    ("日照钢铁控股集团", "钢铁", "日照市岚山区", Grade::B, 0),
    ("威海光威复合材料股份有限公司", "新材料", "威海市高区", Grade::C, 1),
    ("淄博齐鲁石化贸易有限公司", "化工", "淄博市临淄区", Grade::C, 2),
    ("东营胜利油田物资公司", "能源", "东营市东营区", Grade::B, 0),
    ("德州皇明太阳能集团", "新能源", "德州市德城区", Grade::C, 1),
    ("青岛即发集团", "纺织", "青岛市即墨区", Grade::B, 2),
    ("济宁如意科技集团", "纺织", "济宁市任城区", Grade::C, 0),
    ("泰安泰山钢铁集团", "钢铁", "泰安市岱岳区", Grade::C, 1),
    ("青岛双星轮胎工业有限公司", "制造业", "青岛市黄岛区", Grade::A, 2),
    ("聊城中通客车股份有限公司", "汽车", "聊城市东昌府区", Grade::B, 0),
];

const CONTENTS: &[&str] = &[
    "聊了二期需求，对方关注交付周期",
    "送了样品，技术部反馈不错",
    "报价后对方觉得偏贵，需要再沟通",
    "见了采购经理，约下周看方案",
    "电话确认了付款节点",
    "参观了工厂，了解产线改造计划",
    "对方老板出差，改约下周",
    "发了新版方案和案例",
    "讨论了售后服务条款",
    "对方在比较两家供应商",
];

const DEALS: &[(usize, &str, i64, &str)] = &[
    // (customer index, title, amount in 元, final stage; won/lost close the deal)
    (0, "二期产线升级", 1_200_000, "proposal"),
    (2, "华南仓储系统", 860_000, "negotiation"),
    (3, "智能灌装线", 2_300_000, "contract"),
    (4, "显示模组检测", 450_000, "needs_analysis"),
    (5, "发动机装配线改造", 3_800_000, "won"),
    (6, "服务器机房运维", 320_000, "initial_contact"),
    (7, "声学测试设备", 560_000, "lost"),
    (9, "化工园区安防", 1_500_000, "negotiation"),
    (10, "油脂车间自动化", 780_000, "proposal"),
    (11, "视频平台集成", 2_000_000, "won"),
    (12, "精工夹具采购", 150_000, "needs_analysis"),
    (14, "港机远程监控", 2_600_000, "proposal"),
    (16, "洁净室改造", 1_100_000, "initial_contact"),
    (17, "锂电设备配套", 940_000, "contract"),
    (20, "能耗管理系统", 680_000, "lost"),
    (23, "物资管理平台", 420_000, "needs_analysis"),
    (25, "纺织 MES", 360_000, "initial_contact"),
    (28, "轮胎仓储机器人", 1_750_000, "negotiation"),
    (29, "客车总装检测", 890_000, "won"),
    (1, "模具车间 MES", 520_000, "proposal"),
];

const OPEN_STAGES: &[&str] = &["initial_contact", "needs_analysis", "proposal", "negotiation", "contract"];

fn ctx(user: &User, now: DateTime<Utc>) -> Ctx {
    Ctx::new(Actor::of(user), Via::Cli, now)
}

/// Seeds the demo org named `org_name`, with "now" from `now`. Fails if the org exists.
pub async fn seed(tx: &mut Tx, org_name: &str, timezone: &str, now: DateTime<Utc>) -> crm::Result<DemoSummary> {
    let mut rng = Rng(0x5EED_CAFE_F00D_BEEF);
    let start = now - Duration::days(30);
    let org = crm::orgs::create_org(tx, org_name, timezone, Via::Cli, start).await?;
    let sys = Ctx::new(Actor::system(org.id), Via::Cli, start);
    let team = crm::users::create_team(tx, &sys, "华东一组").await?;
    let mut summary = DemoSummary { org: org.name.clone(), ..Default::default() };
    let mk = async |tx: &mut Tx, handle: &str, name: &str, role: Role, team_id: Option<i64>| {
        crm::users::create_user(tx, &sys, NewUser { handle, name, role, team_id }).await
    };
    let admin = mk(tx, "admin", "管理员", Role::Admin, None).await?;
    let manager = mk(tx, "hanmeimei", "韩梅梅", Role::Manager, Some(team.id)).await?;
    let reps = [
        mk(tx, "lilei", "李雷", Role::Rep, Some(team.id)).await?,
        mk(tx, "zhangwei", "张伟", Role::Rep, Some(team.id)).await?,
        mk(tx, "wangfang", "王芳", Role::Rep, Some(team.id)).await?,
    ];
    for u in [&admin, &manager].into_iter().chain(reps.iter()) {
        summary.users.push((u.handle.clone(), u.name.clone(), u.role.to_string()));
    }

    let mut customers = Vec::new();
    for (i, (name, industry, region, grade, owner)) in CUSTOMERS.iter().enumerate() {
        let rep = &reps[*owner];
        let created = start + Duration::hours(i as i64);
        let c = crm::customers::create_customer(
            tx,
            &ctx(rep, created),
            NewCustomer {
                name: (*name).into(),
                industry: Some((*industry).into()),
                region: Some((*region).into()),
                source: Some(["展会", "转介绍", "官网", "陌拜"][i % 4].into()),
                grade: Some(*grade),
                owner_id: None,
                tags: if i % 3 == 0 { vec!["重点".into()] } else { vec![] },
            },
        )
        .await?;
        let surname = ["王", "刘", "陈", "杨", "赵"][i % 5];
        crm::customers::add_contact(
            tx,
            &ctx(rep, created),
            c.id,
            NewContact {
                name: &format!("{surname}经理"),
                title: Some(["采购经理", "技术总监", "总经理"][i % 3]),
                phone: Some(&format!("1380000{:04}", 1000 + i)),
                wechat: None,
                email: None,
            },
        )
        .await?;
        customers.push((c, rep.clone()));
    }
    summary.customers = customers.len();

    // Activities over the last 30 days; A-grade customers of index 0 stay recent, a few go quiet.
    for n in 0..60u64 {
        let (c, rep) = &customers[(n as usize * 7) % customers.len()];
        let days_ago = if c.grade == Some(Grade::A) && n % 4 == 0 { 5 + rng.below(20) } else { rng.below(28) + 1 };
        let at = now - Duration::days(days_ago as i64) - Duration::minutes(rng.below(480) as i64);
        let kind =
            [ActivityKind::Visit, ActivityKind::Call, ActivityKind::Wechat, ActivityKind::Meeting][n as usize % 4];
        crm::activities::log_activity(
            tx,
            &ctx(rep, at),
            NewActivity {
                customer_id: c.id,
                kind,
                content: CONTENTS[rng.below(CONTENTS.len() as u64) as usize].into(),
                occurred_at: Some(at),
                next_step: None,
                location: None,
                follow_up: None,
            },
        )
        .await?;
        summary.activities += 1;
    }

    for (i, (ci, title, yuan, last)) in DEALS.iter().enumerate() {
        let (c, rep) = &customers[*ci];
        let mut t = start + Duration::days(1 + (i as i64 % 5));
        let deal = crm::deals::create_deal(
            tx,
            &ctx(rep, t),
            NewDeal {
                customer_id: c.id,
                title: (*title).into(),
                amount_fen: yuan * 100,
                stage: None,
                expected_close: Some((now + Duration::days(10 + 5 * i as i64)).date_naive()),
                owner_id: None,
            },
        )
        .await?;
        let target = match *last {
            "won" | "lost" => OPEN_STAGES.len(),
            s => OPEN_STAGES.iter().position(|x| *x == s).map_or(0, |p| p + 1),
        };
        for stage in OPEN_STAGES.iter().take(target).skip(1) {
            t += Duration::days(1 + rng.below(4) as i64);
            let patch = DealPatch { stage: Some((*stage).into()), ..Default::default() };
            crm::deals::update_deal(tx, &ctx(rep, t), deal.id, patch).await?;
        }
        match *last {
            "won" => {
                crm::deals::close_deal(tx, &ctx(rep, t + Duration::days(1)), deal.id, true, None, None).await?;
            }
            "lost" => {
                let reason = Some(if i % 2 == 0 { LostReason::Price } else { LostReason::Competitor });
                crm::deals::close_deal(tx, &ctx(rep, t + Duration::days(1)), deal.id, false, None, reason).await?;
            }
            _ => {}
        }
        summary.deals += 1;
    }

    let leads: &[(&str, &str, &str, &str, bool)] = &[
        ("青岛某某机械有限公司", "王经理", "13800000001", "展会", false),
        ("烟台海洋装备公司", "刘总", "13800000002", "官网", true),
        ("潍坊农机配件厂", "陈工", "13800000003", "转介绍", false),
        ("济南智慧园区运营公司", "杨主任", "13800000004", "官网", true),
        ("日照港口物流公司", "赵经理", "13800000005", "展会", false),
        ("淄博陶瓷新材料公司", "孙总", "13800000006", "陌拜", true),
        ("临沂商城物流园", "周经理", "13800000007", "官网", false),
        ("威海渔具制造公司", "吴经理", "13800000008", "展会", true),
        ("东营石化设备公司", "郑工", "13800000009", "转介绍", false),
        ("泰安文旅集团", "钱主任", "13800000010", "官网", true),
    ];
    for (i, (company, contact, phone, source, pool)) in leads.iter().enumerate() {
        let rep = &reps[i % reps.len()];
        let at = now - Duration::days(i as i64 % 6) - Duration::hours(3);
        crm::leads::create_lead(
            tx,
            &ctx(rep, at),
            NewLead {
                company: (*company).into(),
                contact_name: Some((*contact).into()),
                phone: Some((*phone).into()),
                source: Some((*source).into()),
                region: Some("山东省".into()),
                to_pool: *pool,
                ..Default::default()
            },
        )
        .await?;
        summary.leads += 1;
    }

    // Per rep: one overdue follow-up, one due later today, one tomorrow.
    for (r, rep) in reps.iter().enumerate() {
        let (c, _) =
            customers.iter().find(|(_, owner)| owner.id == rep.id).cloned().unwrap_or_else(|| customers[0].clone());
        for (title, due) in [
            (format!("回访{}，确认方案反馈", short(&c.name)), now - Duration::days(2 + r as i64)),
            (format!("给{}发报价单", short(&c.name)), now + Duration::minutes(30 + 10 * r as i64)),
            ("整理本周拜访记录".to_string(), now + Duration::days(1)),
        ] {
            crm::tasks::create_task(
                tx,
                &ctx(rep, now - Duration::days(3)),
                NewTask {
                    title,
                    due_at: due,
                    owner_id: None,
                    customer_id: Some(c.id),
                    deal_id: None,
                    origin: TaskOrigin::Manual,
                },
            )
            .await?;
            summary.tasks += 1;
        }
    }
    // The demo's overdue tasks were "reminded" when they fell due; only the future ones remind,
    // so a newcomer's first start is not a burst of late reminders.
    crate::store::schedule::settle_past_reminders(tx, org.id, now).await?;
    Ok(summary)
}

/// A short form of a company name for task titles.
fn short(name: &str) -> String {
    let norm = crm::matching::normalize_name(name);
    if norm.is_empty() { name.to_string() } else { norm }
}
