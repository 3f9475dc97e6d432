//! The scheduler stepped with a test clock: reminders at the right minute across time zones,
//! quiet hours and downtime; follow-up rules and escalation; digests on working days only; stuck
//! deals and overdue summaries. Every message is checked where the user sees it (the console).

use std::sync::Arc;

use chatcrm::clock::Clock;
use chatcrm::crm::{self, Actor, Ctx, Grade, TaskOrigin, Via};
use chatcrm::outbox::{DispatchConfig, Dispatcher, Routes, Senders};
use chatcrm::schedule::{Plan, ScheduleSettings, Scheduler};
use chatcrm::store::Db;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;

use crate::both_backends;
use crate::helpers::{World, t0};

/// A scheduler and a console-only dispatcher sharing one fixed clock.
struct Rig {
    w: World,
    clock: Clock,
    sched: Scheduler,
    outbox: Dispatcher,
}

fn settings_with(f: impl FnOnce(&mut ScheduleSettings)) -> ScheduleSettings {
    // Only what a test turns on runs.
    let mut s = ScheduleSettings::default().without_jobs();
    f(&mut s);
    s
}

impl Rig {
    async fn new(db: Db, s: ScheduleSettings) -> Self {
        Self::at(db, s, t0()).await
    }

    async fn at(db: Db, s: ScheduleSettings, start: DateTime<Utc>) -> Self {
        let w = World::new(db.clone()).await;
        let clock = Clock::fixed(start);
        let plan = Plan::try_from(&s).expect("plan");
        let sched = Scheduler::new(db.clone(), clock.clone(), Arc::new(plan), Arc::new(Routes::default()), "test-1");
        let outbox = Dispatcher::new(db, clock.clone(), "test-1", Senders::default(), DispatchConfig::default());
        Self { w, clock, sched, outbox }
    }

    /// Moves the clock, ticks, delivers; the report of the tick.
    async fn step_to(&self, at: DateTime<Utc>) -> chatcrm::schedule::TickReport {
        self.clock.set(at);
        let r = self.sched.tick().await.expect("tick");
        self.outbox.drain().await.expect("drain");
        r
    }

    /// What `handle` has seen in the console so far.
    async fn pushes(&self, handle: &str) -> Vec<String> {
        let org = if handle == "r4" || handle == "admin2" { "Org Two" } else { "Org One" };
        chatcrm::platform::console::pushes(&self.w.db, org, handle, 0)
            .await
            .expect("pushes")
            .into_iter()
            .map(|p| p.text)
            .collect()
    }

    async fn task(&self, owner: &crm::User, title: &str, due: DateTime<Utc>, origin: TaskOrigin) -> crm::Task {
        let mut tx = self.w.tx().await;
        let ctx = Ctx::new(Actor::of(owner), Via::Chat, self.clock.now());
        let new = crm::tasks::NewTask {
            title: title.into(),
            due_at: due,
            owner_id: None,
            customer_id: None,
            deal_id: None,
            origin,
        };
        let t = crm::tasks::create_task(&mut tx, &ctx, new).await.expect("task");
        tx.commit().await.expect("commit");
        t
    }
}

fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("time").with_timezone(&Utc)
}

fn local(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("time").with_timezone(&Utc)
}

async fn exec(db: &Db, sql: &'static str, id: i64, at: DateTime<Utc>) {
    match db {
        Db::Sqlite(p) => sqlx::query(sql).bind(id).bind(at).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql).bind(id).bind(at).execute(p).await.map(|_| ()),
    }
    .expect("exec");
}

both_backends!(
    reminders_fire_at_their_minute_once,
    quiet_hours_hold_rule_reminders_but_not_a_chosen_time,
    time_zones_decide_what_quiet_means,
    downtime_fires_everything_overdue_once_marked_late,
    snooze_and_complete_cancel_the_pending_reminder,
    follow_up_rule_makes_one_task_and_escalates_the_second_miss,
    digests_run_on_working_days_and_make_up_days_only,
    stuck_deals_and_overdue_tasks_are_nudged_once,
    weekly_digest_carries_the_funnel_picture,
);

async fn reminders_fire_at_their_minute_once(db: Db) {
    let rig = Rig::new(db, settings_with(|_| {})).await;
    let t = rig.task(&rig.w.r1, "给海尔打电话", t0() + Duration::minutes(30), TaskOrigin::Manual).await;
    assert_eq!(rig.step_to(t0() + Duration::minutes(29) + Duration::seconds(59)).await.reminders_fired, 0);
    assert!(rig.pushes("r1").await.is_empty());
    assert_eq!(rig.step_to(t0() + Duration::minutes(30)).await.reminders_fired, 1);
    let pushes = rig.pushes("r1").await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let p = &pushes[0];
    assert!(p.contains(&format!("⏰ 提醒 #{}：给海尔打电话", t.id)), "{p}");
    assert!(p.contains("11月24日 周二 10:30"), "{p}");
    assert!(p.contains(&format!("完成 #{}", t.id)) && p.contains(&format!("推迟 #{} 2天", t.id)), "{p}");
    assert!(!p.contains("晚到"), "on time is not late: {p}");
    // Never twice, and only to its owner.
    assert_eq!(rig.step_to(t0() + Duration::hours(2)).await.reminders_fired, 0);
    assert_eq!(rig.pushes("r1").await.len(), 1);
    assert!(rig.pushes("r2").await.is_empty());
}

async fn quiet_hours_hold_rule_reminders_but_not_a_chosen_time(db: Db) {
    let rig = Rig::new(db, settings_with(|_| {})).await;
    let evening = shanghai(2026, 11, 24, 22, 30);
    let chosen = rig.task(&rig.w.r1, "晚上给客户回电话", evening, TaskOrigin::Manual).await;
    let rule = rig.task(&rig.w.r2, "跟进 海尔", evening, TaskOrigin::Rule).await;
    let r = rig.step_to(evening).await;
    assert_eq!((r.reminders_fired, r.reminders_deferred), (1, 1));
    assert!(rig.pushes("r1").await.iter().any(|p| p.contains(&format!("#{}", chosen.id))), "a time the user chose");
    assert!(rig.pushes("r2").await.is_empty(), "a rule's reminder waits for the morning");
    // Nothing at 3 a.m. either.
    assert_eq!(rig.step_to(shanghai(2026, 11, 25, 3, 0)).await.reminders_fired, 0);
    assert_eq!(rig.step_to(shanghai(2026, 11, 25, 7, 59)).await.reminders_fired, 0);
    assert_eq!(rig.step_to(shanghai(2026, 11, 25, 8, 0)).await.reminders_fired, 1);
    let pushes = rig.pushes("r2").await;
    assert!(pushes.len() == 1 && pushes[0].contains(&format!("#{}", rule.id)), "{pushes:?}");
}

async fn time_zones_decide_what_quiet_means(db: Db) {
    let rig = Rig::new(db.clone(), settings_with(|_| {})).await;
    // An org in New York: 10:00 in Shanghai is 21:00 the evening before there.
    let mut tx = rig.w.tx().await;
    let ny = crm::orgs::create_org(&mut tx, "NY Org", "America/New_York", Via::Cli, t0()).await.expect("org");
    let sys = Ctx::new(Actor::system(ny.id), Via::Cli, t0());
    let new = crm::users::NewUser { handle: "nyrep", name: "NY Rep", role: crm::Role::Rep, team_id: None };
    let rep = crm::users::create_user(&mut tx, &sys, new).await.expect("user");
    tx.commit().await.expect("commit");
    let at = t0() + Duration::hours(1); // 11:00 Shanghai, 22:00 New York
    rig.task(&rig.w.r1, "跟进 上海客户", at, TaskOrigin::Rule).await;
    rig.task(&rep, "follow up Acme", at, TaskOrigin::Rule).await;
    let r = rig.step_to(at).await;
    assert_eq!((r.reminders_fired, r.reminders_deferred), (1, 1));
    let ny_tz = chrono_tz::America::New_York;
    // 08:00 in New York, which is 21:00 in Shanghai.
    let morning = local(ny_tz, 2026, 11, 24, 8, 0);
    assert_eq!(rig.step_to(morning - Duration::minutes(1)).await.reminders_fired, 0);
    assert_eq!(rig.step_to(morning).await.reminders_fired, 1);
    let pushes = chatcrm::platform::console::pushes(&db, "NY Org", "nyrep", 0).await.expect("pushes");
    assert_eq!(pushes.len(), 1);
    // In the user's language and zone: Nov 23 22:00 New York.
    assert!(pushes[0].text.contains("Reminder #") && pushes[0].text.contains("Nov 23"), "{}", pushes[0].text);
}

async fn downtime_fires_everything_overdue_once_marked_late(db: Db) {
    let rig = Rig::new(db, settings_with(|_| {})).await;
    let a = rig.task(&rig.w.r1, "回访 海尔", t0() + Duration::hours(1), TaskOrigin::Manual).await;
    let b = rig.task(&rig.w.r1, "给美的发报价", t0() + Duration::hours(2), TaskOrigin::Manual).await;
    let evening = rig.task(&rig.w.r2, "晚上复盘", shanghai(2026, 11, 24, 20, 0), TaskOrigin::Manual).await;
    // The server was down from before 11:00 until 23:00.
    let r = rig.step_to(shanghai(2026, 11, 24, 23, 0)).await;
    assert_eq!((r.reminders_fired, r.reminders_deferred), (0, 3), "late and inside quiet hours: all wait");
    assert_eq!(rig.step_to(shanghai(2026, 11, 25, 8, 0)).await.reminders_fired, 3);
    let r1 = rig.pushes("r1").await;
    assert_eq!(r1.len(), 2, "{r1:?}");
    for t in [&a, &b] {
        assert_eq!(r1.iter().filter(|p| p.contains(&format!("#{}：", t.id))).count(), 1, "{r1:?}");
    }
    assert!(rig.pushes("r2").await.iter().any(|p| p.contains(&format!("#{}", evening.id))));
    // Downtime outside quiet hours: fired at once, marked late.
    let c = rig.task(&rig.w.r1, "下午拜访 格力", shanghai(2026, 11, 25, 14, 0), TaskOrigin::Manual).await;
    assert_eq!(rig.step_to(shanghai(2026, 11, 25, 16, 30)).await.reminders_fired, 1);
    let r1 = rig.pushes("r1").await;
    let late = r1.iter().find(|p| p.contains(&format!("#{}", c.id))).expect("late reminder");
    assert!(late.contains("晚到的提醒") && late.contains("11月25日 周三 14:00"), "{late}");
    assert_eq!(rig.step_to(shanghai(2026, 11, 25, 17, 0)).await.reminders_fired, 0);
}

async fn snooze_and_complete_cancel_the_pending_reminder(db: Db) {
    let rig = Rig::new(db, settings_with(|_| {})).await;
    let due = t0() + Duration::hours(1);
    let done = rig.task(&rig.w.r1, "发合同", due, TaskOrigin::Manual).await;
    let later = rig.task(&rig.w.r1, "约见面", due, TaskOrigin::Manual).await;
    let mut tx = rig.w.tx().await;
    let ctx = rig.w.ctx(&rig.w.r1);
    crm::tasks::complete_task(&mut tx, &ctx, done.id).await.expect("complete");
    crm::tasks::snooze_task(&mut tx, &ctx, later.id, due + Duration::hours(3)).await.expect("snooze");
    tx.commit().await.expect("commit");
    assert_eq!(rig.step_to(due).await.reminders_fired, 0);
    assert!(rig.pushes("r1").await.is_empty());
    assert_eq!(rig.step_to(due + Duration::hours(3)).await.reminders_fired, 1);
    let pushes = rig.pushes("r1").await;
    assert!(pushes.len() == 1 && pushes[0].contains(&format!("#{}", later.id)), "{pushes:?}");
    // Snoozed again after it fired: it reminds again at the new time, once.
    let mut tx = rig.w.tx().await;
    let ctx = Ctx::new(Actor::of(&rig.w.r1), Via::Chat, due + Duration::hours(3));
    crm::tasks::snooze_task(&mut tx, &ctx, later.id, due + Duration::hours(5)).await.expect("snooze");
    tx.commit().await.expect("commit");
    assert_eq!(rig.step_to(due + Duration::hours(5)).await.reminders_fired, 1);
    assert_eq!(rig.step_to(due + Duration::hours(6)).await.reminders_fired, 0);
    assert_eq!(rig.pushes("r1").await.len(), 2);
}

async fn follow_up_rule_makes_one_task_and_escalates_the_second_miss(db: Db) {
    let rig = Rig::new(db.clone(), settings_with(|s| s.follow_up = "0 * * * *".into())).await;
    let w = &rig.w;
    let quiet_a = w.customer(&w.r1, "海尔").await;
    let quiet_b = w.customer(&w.r1, "美的").await;
    let fresh_a = w.customer(&w.r2, "格力").await;
    let mut tx = w.tx().await;
    for (c, g) in [(&quiet_a, Grade::A), (&quiet_b, Grade::B), (&fresh_a, Grade::A)] {
        let patch = crm::customers::CustomerPatch { grade: Some(g), ..Default::default() };
        crm::customers::update_customer(&mut tx, &w.ctx(&w.admin), c.id, patch).await.expect("grade");
    }
    tx.commit().await.expect("commit");
    let set_contact = "UPDATE customers SET last_contacted_at = $2 WHERE id = $1";
    exec(&db, set_contact, quiet_a.id, t0() - Duration::days(4)).await; // A: limit 3 days
    exec(&db, set_contact, quiet_b.id, t0() - Duration::days(5)).await; // B: limit 7 days
    exec(&db, set_contact, fresh_a.id, t0() - Duration::days(1)).await;

    let r = rig.step_to(t0() + Duration::hours(1)).await;
    assert_eq!(r.jobs_run, 2, "one run per org");
    let pushes = rig.pushes("r1").await;
    assert_eq!(pushes.len(), 1, "one reminder, for 海尔 only: {pushes:?}");
    assert!(pushes[0].contains("跟进 海尔（A 级客户，4 天未联系）"), "{}", pushes[0]);
    assert!(rig.pushes("r2").await.is_empty());
    // Hourly, but never a second task while the first is open.
    for h in 2..30 {
        rig.step_to(t0() + Duration::hours(h)).await;
    }
    assert_eq!(rig.pushes("r1").await.len(), 1);
    assert!(rig.pushes("ma").await.is_empty(), "no escalation before a second miss");
    // A full limit later still nobody called: the manager hears of it, once.
    rig.step_to(t0() + Duration::days(3) + Duration::hours(2)).await;
    let ma = rig.pushes("ma").await;
    assert_eq!(ma.len(), 1, "{ma:?}");
    assert!(ma[0].contains("跟进逾期") && ma[0].contains("r1") && ma[0].contains("海尔"), "{}", ma[0]);
    rig.step_to(t0() + Duration::days(3) + Duration::hours(3)).await;
    assert_eq!(rig.pushes("ma").await.len(), 1);
    assert!(rig.pushes("mb").await.is_empty(), "only the owner's manager");
    // The call is made: the rule's task is done, and the customer is left alone for 3 days.
    let mut tx = w.tx().await;
    let ctx = Ctx::new(Actor::of(&w.r1), Via::Chat, t0() + Duration::days(3) + Duration::hours(4));
    let new = crm::activities::NewActivity {
        customer_id: quiet_a.id,
        kind: crm::ActivityKind::Call,
        content: "聊了续约".into(),
        occurred_at: None,
        next_step: None,
        location: None,
        follow_up: None,
    };
    crm::activities::log_activity(&mut tx, &ctx, new).await.expect("log");
    tx.commit().await.expect("commit");
    let mut tx = w.tx().await;
    let today = crm::tasks::today(&mut tx, &ctx, chrono_tz::Asia::Shanghai).await.expect("today");
    tx.commit().await.expect("commit");
    let open_rule: Vec<_> =
        today.overdue.iter().chain(&today.due_today).filter(|t| t.origin == TaskOrigin::Rule).collect();
    assert!(open_rule.iter().all(|t| t.customer_id != Some(quiet_a.id)), "{today:?}");
    // 美的 (B, 7 days) came due on Nov 26 10:00 local: one task, at the next run.
    let pushes = rig.pushes("r1").await;
    assert_eq!(pushes.iter().filter(|p| p.contains("跟进 美的（B 级客户")).count(), 1, "{pushes:?}");
    let before = pushes.len();
    rig.step_to(t0() + Duration::days(5)).await;
    assert_eq!(rig.pushes("r1").await.len(), before, "海尔 was called two days ago");
}

async fn digests_run_on_working_days_and_make_up_days_only(db: Db) {
    let s = settings_with(|s| {
        s.daily_digest = "0 9 * * *".into();
        s.orgs = vec![chatcrm::schedule::settings::OrgSchedule {
            org: "Org One".into(),
            quiet_hours: None,
            weekend: None,
            // Thursday off, Saturday worked (调休).
            holidays: vec![chrono::NaiveDate::from_ymd_opt(2026, 11, 26).expect("date")],
            workdays: vec![chrono::NaiveDate::from_ymd_opt(2026, 11, 28).expect("date")],
        }];
    });
    let rig = Rig::new(db, s).await;
    // A visit on Tuesday shows in Wednesday's digest.
    let c = rig.w.customer(&rig.w.r1, "海尔").await;
    let mut tx = rig.w.tx().await;
    let new = crm::activities::NewActivity {
        customer_id: c.id,
        kind: crm::ActivityKind::Visit,
        content: "聊了二期".into(),
        occurred_at: None,
        next_step: None,
        location: None,
        follow_up: None,
    };
    crm::activities::log_activity(&mut tx, &rig.w.ctx(&rig.w.r1), new).await.expect("visit");
    tx.commit().await.expect("commit");
    let mut runs = Vec::new();
    for day in 25..=30 {
        let before = rig.pushes("ma").await.len();
        rig.step_to(shanghai(2026, 11, day, 9, 0)).await;
        rig.step_to(shanghai(2026, 11, day, 12, 0)).await;
        let after = rig.pushes("ma").await;
        runs.push((day, after.len() - before));
        if day == 25 {
            let d = after.last().expect("digest");
            assert!(d.contains("日报") && d.contains("11-24") && d.contains("r1"), "yesterday's digest: {d}");
        }
    }
    assert_eq!(runs, vec![(25, 1), (26, 0), (27, 1), (28, 1), (29, 0), (30, 1)]);
    let own = rig.pushes("r1").await;
    assert_eq!(own.len(), 4, "reps get their own digest on the same days");
    assert!(own[0].contains("我的日报") && own[0].contains("拜访 1") && !own[0].contains("- r2"), "{}", own[0]);
    assert_eq!(rig.pushes("admin").await.len(), 4, "admins see the org's");
    // Down for three days: the missed digests run once, not three times.
    let before = rig.pushes("ma").await.len();
    rig.step_to(shanghai(2026, 12, 3, 10, 0)).await;
    assert_eq!(rig.pushes("ma").await.len(), before + 1);
    rig.step_to(shanghai(2026, 12, 3, 11, 0)).await;
    assert_eq!(rig.pushes("ma").await.len(), before + 1);
}

async fn stuck_deals_and_overdue_tasks_are_nudged_once(db: Db) {
    let s = settings_with(|s| {
        s.stuck_deals = "30 9 * * *".into();
        s.overdue_tasks = "0 9 * * *".into();
    });
    let rig = Rig::new(db, s).await;
    let c = rig.w.customer(&rig.w.r1, "海尔").await;
    let mut tx = rig.w.tx().await;
    let new = crm::deals::NewDeal {
        customer_id: c.id,
        title: "二期".into(),
        amount_fen: 50_000_000,
        stage: None,
        expected_close: None,
        owner_id: None,
    };
    let deal = crm::deals::create_deal(&mut tx, &rig.w.ctx(&rig.w.r1), new).await.expect("deal");
    tx.commit().await.expect("commit");
    rig.task(&rig.w.r2, "给美的发报价", t0() + Duration::hours(1), TaskOrigin::Manual).await;
    // Wednesday 09:00: r2's task is overdue.
    rig.step_to(shanghai(2026, 11, 25, 9, 0)).await;
    let r2 = rig.pushes("r2").await;
    let summary = r2.iter().find(|p| p.contains("逾期任务")).expect("overdue summary");
    assert!(summary.contains("给美的发报价"), "{summary}");
    // 14 days in the first stage is the budget: day 15 nudges, once.
    for day in 1..=16 {
        rig.step_to(t0() + Duration::days(day) + Duration::minutes(30) - Duration::hours(1)).await;
    }
    let nudges: Vec<String> = rig.pushes("r1").await.into_iter().filter(|p| p.contains("🐢")).collect();
    assert_eq!(nudges.len(), 1, "{nudges:?}");
    assert!(nudges[0].contains(&format!("商机 #{}", deal.id)) && nudges[0].contains("15 天"), "{}", nudges[0]);
}

async fn weekly_digest_carries_the_funnel_picture(db: Db) {
    let s = settings_with(|s| s.weekly_digest = "0 9 * * Mon".into());
    let rig = Rig::new(db.clone(), s).await;
    let c = rig.w.customer(&rig.w.r1, "海尔").await;
    let mut tx = rig.w.tx().await;
    let new = crm::deals::NewDeal {
        customer_id: c.id,
        title: "二期".into(),
        amount_fen: 100_000_000,
        stage: Some("proposal".into()),
        expected_close: None,
        owner_id: None,
    };
    crm::deals::create_deal(&mut tx, &rig.w.ctx(&rig.w.r1), new).await.expect("deal");
    tx.commit().await.expect("commit");
    let monday = shanghai(2026, 11, 30, 9, 0);
    rig.step_to(monday).await;
    rig.step_to(monday + Duration::minutes(5)).await;
    let pushes = chatcrm::platform::console::pushes(&db, "Org One", "ma", 0).await.expect("pushes");
    assert!(pushes.iter().any(|p| p.text.contains("团队周报")), "{pushes:?}");
    let images: Vec<_> = pushes.iter().filter(|p| p.has_image).collect();
    assert_eq!(images.len(), 1, "one funnel picture, once: {pushes:?}");
    let mut tx = db.begin_read().await.expect("tx");
    let png = chatcrm::store::inbox::push_image(&mut tx, rig.w.ma.id, images[0].id).await.expect("image").expect("png");
    drop(tx);
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().expect("a PNG");
    let info = reader.info();
    assert!(info.width >= 400 && info.height >= 200, "{}x{}", info.width, info.height);
    // Reps get their own weekly digest, without the team picture.
    let own = chatcrm::platform::console::pushes(&db, "Org One", "r1", 0).await.expect("pushes");
    assert!(own.iter().any(|p| p.text.contains("我的周报")) && !own.iter().any(|p| p.has_image), "{own:?}");
}
