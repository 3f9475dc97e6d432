//! The outbox against the mock WeCom: platform faults, dead letters, and several instances
//! sharing thousands of due reminders. The mock's received log is the proof of "once".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chatcrm::clock::Clock;
use chatcrm::crm::{self, Actor, Ctx, Via};
use chatcrm::outbox::{DispatchConfig, Dispatcher, Routes, Senders};
use chatcrm::platform::wecom::client::WecomClient;
use chatcrm::platform::wecom::mock::{Fault, MockWecom, Received};
use chatcrm::schedule::{Plan, ScheduleSettings, Scheduler};
use chatcrm::store::{Db, DbOptions};
use chrono::{DateTime, Duration, Utc};

use crate::both_backends;
use crate::helpers::{TestDb, World, t0};

const APP: &str = "sales";

fn plan() -> Arc<Plan> {
    let s = ScheduleSettings::default().without_jobs();
    Arc::new(Plan::try_from(&s).expect("plan"))
}

fn client(mock: &MockWecom, timeout: StdDuration) -> WecomClient {
    WecomClient::new(&mock.base_url(), MockWecom::credentials(), timeout).expect("client")
}

fn routes() -> Arc<Routes> {
    Arc::new(Routes::default().with_wecom_app(APP, &MockWecom::credentials().corp_id))
}

/// Links users to WeCom ids `u1`, `u2`, … on the mock's corp.
async fn link(w: &World, users: &[&crm::User]) {
    let mut tx = w.tx().await;
    for (i, u) in users.iter().enumerate() {
        let ctx = Ctx::new(Actor::system(u.org_id), Via::Cli, t0());
        let corp = MockWecom::credentials().corp_id;
        crm::users::link_identity(&mut tx, &ctx, u.id, "wecom", &corp, &format!("u{}", i + 1)).await.expect("link");
    }
    tx.commit().await.expect("commit");
}

fn cards(received: &[Received]) -> BTreeMap<i64, usize> {
    crate::helpers::reminder_cards(received)
}

async fn pending(db: &Db) -> i64 {
    let sql = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'";
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    }
    .expect("count")
}

async fn statuses(db: &Db) -> Vec<(String, i64)> {
    let mut tx = db.begin_read().await.expect("begin");
    let c = chatcrm::store::outbox::counts(&mut tx).await.expect("counts");
    tx.commit().await.expect("commit");
    c
}

async fn tasks(w: &World, owner: &crm::User, n: usize, due: DateTime<Utc>) -> Vec<i64> {
    let mut tx = w.tx().await;
    let ctx = Ctx::new(Actor::of(owner), Via::Chat, t0());
    let mut ids = Vec::new();
    for i in 0..n {
        let new = crm::tasks::NewTask {
            title: format!("回访客户 {i}"),
            due_at: due,
            owner_id: None,
            customer_id: None,
            deal_id: None,
            origin: crm::TaskOrigin::Manual,
        };
        ids.push(crm::tasks::create_task(&mut tx, &ctx, new).await.expect("task").id);
    }
    tx.commit().await.expect("commit");
    ids
}

/// A dispatcher ("one") that sends WeCom app messages to the mock.
fn wecom_outbox(db: &Db, clock: &Clock, mock: &MockWecom, timeout: StdDuration, cfg: DispatchConfig) -> Dispatcher {
    Dispatcher::new(db.clone(), clock.clone(), "one", Senders::default().with_wecom(APP, client(mock, timeout)), cfg)
}

/// `n` tasks of `owner` due now, fired as reminders into the outbox.
async fn due_reminders(db: &Db, w: &World, clock: &Clock, owner: &crm::User, n: usize) -> Vec<i64> {
    let ids = tasks(w, owner, n, t0()).await;
    let sched = Scheduler::new(db.clone(), clock.clone(), plan(), routes(), "one");
    assert_eq!(sched.tick().await.expect("tick").reminders_fired, n);
    ids
}

both_backends!(
    platform_faults_end_with_every_reminder_delivered_once,
    fatal_errors_dead_letter_and_retry_revives,
    per_recipient_limits_spread_a_burst_instead_of_losing_it,
    a_crashed_instances_lease_expires_and_another_sends,
    a_slow_batch_stays_inside_its_claim,
    a_message_wecom_accepts_but_does_not_deliver_is_not_marked_sent,
    delivered_messages_are_pruned_after_the_keep_days_dead_ones_kept,
);

async fn delivered_messages_are_pruned_after_the_keep_days_dead_ones_kept(db: Db) {
    let w = World::new(db.clone()).await;
    link(&w, &[&w.r1]).await;
    let mock = MockWecom::start().await;
    let clock = Clock::fixed(t0());
    tasks(&w, &w.r1, 2, t0()).await;
    let sched = Scheduler::new(db.clone(), clock.clone(), plan(), routes(), "one");
    sched.tick().await.expect("tick");
    let outbox = Dispatcher::new(
        db.clone(),
        clock.clone(),
        "one",
        Senders::default().with_wecom(APP, client(&mock, StdDuration::from_secs(2))),
        DispatchConfig::default(),
    );
    mock.script(vec![Fault::Errcode(60020)]);
    outbox.drain().await.expect("drain");
    assert_eq!(statuses(&db).await, vec![("dead".to_string(), 1), ("sent".to_string(), 1)]);
    // 29 days later nothing goes; after 30 (the default) the sent one does, the dead one stays.
    clock.set(t0() + Duration::days(29));
    sched.tick().await.expect("tick");
    assert_eq!(statuses(&db).await.len(), 2);
    clock.set(t0() + Duration::days(30) + Duration::hours(2));
    sched.tick().await.expect("tick");
    assert_eq!(statuses(&db).await, vec![("dead".to_string(), 1)]);
}

/// WeCom silently drops app messages beyond 30 a minute per member, and a robot takes 20 a minute:
/// a burst is spread over the following minutes, without using up attempts, and nothing is lost.
async fn per_recipient_limits_spread_a_burst_instead_of_losing_it(db: Db) {
    use chatcrm::outbox::{Kind, OutMessage, Outgoing, Target};
    let w = World::new(db.clone()).await;
    link(&w, &[&w.r1, &w.r2]).await;
    let mock = MockWecom::start().await;
    let clock = Clock::fixed(t0());
    let burst = tasks(&w, &w.r1, 40, t0()).await;
    let other = tasks(&w, &w.r2, 3, t0()).await;
    let mut tx = w.tx().await;
    let robot = Target { platform: "wecom_robot".into(), app: String::new(), recipient: "team-a".into() };
    for i in 0..25 {
        let m = OutMessage::text(format!("群通知 {i}"));
        let key = format!("robot-test:{i}");
        let out = Outgoing {
            org_id: Some(w.org.id),
            user_id: None,
            kind: Kind::Notice,
            target: &robot,
            message: &m,
            dedupe_key: &key,
            not_before: t0(),
        };
        chatcrm::outbox::enqueue(&mut tx, &out, t0()).await.expect("enqueue");
    }
    tx.commit().await.expect("commit");
    let sched = Scheduler::new(db.clone(), clock.clone(), plan(), routes(), "one");
    assert_eq!(sched.tick().await.expect("tick").reminders_fired, 43);
    // The robot client's own window is real time; give it a large one so the outbox's limit shows.
    let robot_client = chatcrm::platform::wecom::client::RobotClient::with_rate_limit(
        StdDuration::from_secs(2),
        1000,
        StdDuration::from_secs(60),
    )
    .expect("robot client");
    let senders = Senders::default()
        .with_wecom(APP, client(&mock, StdDuration::from_secs(2)))
        .with_robot(robot_client, &mock.base_url());
    let outbox = Dispatcher::new(db.clone(), clock.clone(), "one", senders, DispatchConfig::default());
    let first = outbox.drain().await.expect("drain");
    assert_eq!(first.sent, 30 + 3 + 20, "{first:?}");
    let to = |who: &str| mock.received().iter().filter(|r| r.touser.as_deref() == Some(who)).count();
    assert_eq!((to("u1"), to("u2")), (30, 3));
    assert_eq!(mock.received().iter().filter(|r| r.robot_key.as_deref() == Some("team-a")).count(), 20);
    let mut tx = db.begin_read().await.expect("begin");
    let pending = chatcrm::store::outbox::list(&mut tx, "pending", 100).await.expect("list");
    tx.commit().await.expect("commit");
    assert_eq!(pending.len(), 10 + 5);
    assert!(pending.iter().all(|m| m.attempts == 0 && m.next_attempt_at > t0()), "held back, not failed: {pending:?}");
    // The robot's webhook key is a credential: not in the stored error.
    assert!(pending.iter().all(|m| !m.last_error.as_deref().unwrap_or_default().contains("team-a")), "{pending:?}");
    assert!(pending.iter().any(|m| m.last_error.as_deref().is_some_and(|e| e.contains("robot-"))), "{pending:?}");
    // Not a second early.
    clock.set(t0() + Duration::seconds(59));
    assert_eq!(outbox.drain().await.expect("drain").sent, 0);
    clock.set(t0() + Duration::seconds(61));
    mock.reset_robot_windows(); // the minute passes on the mock's side too
    assert_eq!(outbox.drain().await.expect("drain").sent, 15);
    let got = cards(&mock.received());
    assert!(burst.iter().chain(&other).all(|id| got.get(id) == Some(&1)), "{got:?}");
    assert_eq!(mock.received().iter().filter(|r| r.robot_key.is_some()).count(), 25);
}

/// An instance that claimed messages and died: once its lease runs out, another sends them.
async fn a_crashed_instances_lease_expires_and_another_sends(db: Db) {
    let w = World::new(db.clone()).await;
    link(&w, &[&w.r1]).await;
    let mock = MockWecom::start().await;
    let clock = Clock::fixed(t0());
    let ids = tasks(&w, &w.r1, 5, t0()).await;
    let sched = Scheduler::new(db.clone(), clock.clone(), plan(), routes(), "a");
    assert_eq!(sched.tick().await.expect("tick").reminders_fired, 5);
    // Instance "a" claims everything with a 60-second lease, then is gone.
    let mut tx = db.begin_claim().await.expect("begin");
    let claimed =
        chatcrm::store::outbox::claim(&mut tx, t0(), t0() + Duration::seconds(60), "a", 100).await.expect("claim");
    tx.commit().await.expect("commit");
    assert_eq!(claimed.len(), 5);
    let b = Dispatcher::new(
        db.clone(),
        clock.clone(),
        "b",
        Senders::default().with_wecom(APP, client(&mock, StdDuration::from_secs(2))),
        DispatchConfig::default(),
    );
    clock.set(t0() + Duration::seconds(59));
    assert_eq!(b.drain().await.expect("drain").claimed, 0, "a live lease is respected");
    clock.set(t0() + Duration::seconds(61));
    assert_eq!(b.drain().await.expect("drain").sent, 5);
    let got = cards(&mock.received());
    assert!(ids.iter().all(|id| got.get(id) == Some(&1)), "{got:?}");
}

/// A batch slower than its claim: once the lease has run out another instance may claim the same
/// rows, so this one must not still be sending them. With a 4 s lease and one send at a time, each
/// send taking 1.2 s, the third has not started when half the lease is gone: it is left unsent
/// (pending, no attempt used) for the next claim, and delivered once by it. A send still running
/// near the lease's end is cut off and counted as an attempt.
async fn a_slow_batch_stays_inside_its_claim(db: Db) {
    let w = World::new(db.clone()).await;
    link(&w, &[&w.r1]).await;
    let mock = MockWecom::start().await;
    let clock = Clock::fixed(t0());
    let ids = due_reminders(&db, &w, &clock, &w.r1, 3).await;
    let cfg = DispatchConfig { lease: StdDuration::from_secs(4), concurrency: 1, ..DispatchConfig::default() };
    let outbox = wecom_outbox(&db, &clock, &mock, StdDuration::from_secs(10), cfg);
    let slow = Fault::Delay(StdDuration::from_millis(1200));
    mock.script(vec![slow.clone(), slow.clone(), slow]);
    let first = outbox.run_once().await.expect("run");
    assert_eq!((first.claimed, first.sent, first.retried, first.dead), (3, 2, 1, 0), "{first:?}");
    assert_eq!(mock.send_attempts(), 2, "the third send was not started");
    let mut tx = db.begin_read().await.expect("begin");
    let left = chatcrm::store::outbox::list(&mut tx, "pending", 10).await.expect("list");
    tx.commit().await.expect("commit");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].attempts, 0, "not started is not an attempt: {left:?}");
    assert!(left[0].next_attempt_at <= clock.now(), "due again at once: {left:?}");
    let second = outbox.run_once().await.expect("run");
    assert_eq!((second.claimed, second.sent), (1, 1), "{second:?}");
    let got = cards(&mock.received());
    assert!(ids.iter().all(|id| got.get(id) == Some(&1)), "{got:?}");
    assert_eq!((mock.send_attempts(), mock.duplicates_dropped()), (3, 0));

    // A send that outlives the lease is cut off before it ends, and counted as an attempt.
    due_reminders(&db, &w, &clock, &w.r1, 1).await;
    mock.script(vec![Fault::Delay(StdDuration::from_secs(6))]);
    let cut = outbox.run_once().await.expect("run");
    assert_eq!((cut.claimed, cut.sent, cut.retried), (1, 0, 1), "{cut:?}");
    let mut tx = db.begin_read().await.expect("begin");
    let left = chatcrm::store::outbox::list(&mut tx, "pending", 10).await.expect("list");
    tx.commit().await.expect("commit");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].attempts, 1, "{left:?}");
    assert!(left[0].last_error.as_deref().is_some_and(|e| e.contains("cut off")), "{left:?}");
}

/// WeCom answers errcode 0 to a message for a member without a licence (接口许可) for the app,
/// listing them in `unlicenseduser`, and delivers it to nobody: that is a dead letter with the
/// reason, not a sent message.
async fn a_message_wecom_accepts_but_does_not_deliver_is_not_marked_sent(db: Db) {
    let w = World::new(db.clone()).await;
    link(&w, &[&w.r1, &w.r2]).await;
    let mock = MockWecom::start().await;
    mock.mark_unlicensed_user("u2");
    let clock = Clock::fixed(t0());
    due_reminders(&db, &w, &clock, &w.r1, 1).await;
    due_reminders(&db, &w, &clock, &w.r2, 1).await;
    let outbox = wecom_outbox(&db, &clock, &mock, StdDuration::from_secs(2), DispatchConfig::default());
    let r = outbox.drain().await.expect("drain");
    assert_eq!((r.sent, r.dead), (1, 1), "{r:?}");
    let to: Vec<_> = mock.received().into_iter().filter_map(|m| m.touser).collect();
    assert_eq!(to, ["u1"]);
    let mut tx = db.begin_read().await.expect("begin");
    let dead = chatcrm::store::outbox::list(&mut tx, "dead", 10).await.expect("list");
    tx.commit().await.expect("commit");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].recipient, "u2");
    assert!(dead[0].last_error.as_deref().is_some_and(|e| e.contains("接口许可")), "{dead:?}");
}

async fn platform_faults_end_with_every_reminder_delivered_once(db: Db) {
    let w = World::new(db.clone()).await;
    link(&w, &[&w.r1, &w.r2]).await;
    let mock = MockWecom::start().await;
    let clock = Clock::fixed(t0());
    let due = t0() + Duration::minutes(5);
    let mut ids = tasks(&w, &w.r1, 15, due).await;
    ids.extend(tasks(&w, &w.r2, 15, due).await);
    let sched = Scheduler::new(db.clone(), clock.clone(), plan(), routes(), "one");
    let cfg = DispatchConfig { concurrency: 4, batch: 8, ..DispatchConfig::default() };
    let timeout = StdDuration::from_millis(400);
    let outbox = Dispatcher::new(
        db.clone(),
        clock.clone(),
        "one",
        Senders::default().with_wecom(APP, client(&mock, timeout)),
        cfg,
    );
    clock.set(due);
    assert_eq!(sched.tick().await.expect("tick").reminders_fired, 30);
    // Token expiry mid-stream, the frequency limit, gateway errors, busy, and a timeout whose
    // request the mock still completes.
    mock.script(vec![
        Fault::Errcode(45009),
        Fault::Http(502),
        Fault::Delay(StdDuration::from_millis(900)),
        Fault::Errcode(-1),
        Fault::Http(503),
        Fault::Errcode(42001),
        Fault::Http(200),
    ]);
    let first = outbox.run_once().await.expect("dispatch");
    assert_eq!(first.claimed, 8);
    assert!(first.retried >= 5, "{first:?}");
    mock.expire_tokens();
    for round in 0..40 {
        outbox.drain().await.expect("drain");
        if pending(&db).await == 0 {
            break;
        }
        // Past every backoff (45009 waits a minute).
        clock.set(clock.now() + Duration::minutes(2));
        assert!(round < 39, "still pending: {:?}", statuses(&db).await);
    }
    // Let the timed-out request finish on the mock before counting.
    tokio::time::sleep(StdDuration::from_millis(1000)).await;
    let got = cards(&mock.received());
    assert_eq!(got.len(), 30, "{got:?}");
    assert!(ids.iter().all(|id| got.get(id) == Some(&1)), "every reminder exactly once: {got:?}");
    assert_eq!(statuses(&db).await, vec![("sent".to_string(), 30)]);
    assert!(mock.token_fetches() >= 2, "the expired token was replaced");
}

async fn fatal_errors_dead_letter_and_retry_revives(db: Db) {
    let w = World::new(db.clone()).await;
    link(&w, &[&w.r1]).await;
    let mock = MockWecom::start().await;
    let clock = Clock::fixed(t0());
    let ids = tasks(&w, &w.r1, 3, t0()).await;
    let sched = Scheduler::new(db.clone(), clock.clone(), plan(), routes(), "one");
    let cfg = DispatchConfig { max_attempts: 3, concurrency: 1, ..DispatchConfig::default() };
    let outbox = Dispatcher::new(
        db.clone(),
        clock.clone(),
        "one",
        Senders::default().with_wecom(APP, client(&mock, StdDuration::from_secs(2))),
        cfg,
    );
    assert_eq!(sched.tick().await.expect("tick").reminders_fired, 3);
    // First message: IP not allowed (fatal). Second: a 5xx now and twice more (dead after 3 attempts).
    mock.script(vec![Fault::Errcode(60020), Fault::Http(500)]);
    let r = outbox.run_once().await.expect("dispatch");
    assert_eq!((r.sent, r.retried, r.dead), (1, 1, 1), "{r:?}");
    mock.script(vec![Fault::Http(500), Fault::Http(500)]);
    for _ in 0..3 {
        clock.set(clock.now() + Duration::hours(2));
        outbox.drain().await.expect("drain");
    }
    let counts = statuses(&db).await;
    assert_eq!(counts, vec![("dead".to_string(), 2), ("sent".to_string(), 1)], "{counts:?}");
    let mut tx = db.begin_read().await.expect("begin");
    let dead = chatcrm::store::outbox::list(&mut tx, "dead", 10).await.expect("list");
    tx.commit().await.expect("commit");
    assert!(
        dead.iter().any(|m| m.attempts == 1 && m.last_error.as_deref().is_some_and(|e| e.contains("60020"))),
        "{dead:?}"
    );
    assert!(
        dead.iter().any(|m| m.attempts == 3 && m.last_error.as_deref().is_some_and(|e| e.contains("500"))),
        "{dead:?}"
    );
    // The operator fixes the trusted IP and retries the dead letters: delivered, once each.
    let mut tx = db.begin().await.expect("begin");
    assert_eq!(chatcrm::store::outbox::requeue_dead(&mut tx, clock.now()).await.expect("requeue"), 2);
    tx.commit().await.expect("commit");
    outbox.drain().await.expect("drain");
    let got = cards(&mock.received());
    assert!(ids.iter().all(|id| got.get(id) == Some(&1)), "{got:?}");
    assert_eq!(statuses(&db).await, vec![("sent".to_string(), 3)]);
}

/// Several instances (each its own pool, scheduler and dispatcher) share 10,000 due reminders on
/// one PostgreSQL database: each reaches the platform exactly once.
async fn instances_share_due_reminders(instances: usize) {
    let Some(t) = TestDb::postgres().await else {
        eprintln!("skipped: CHATCRM_TEST_PG is not set");
        return;
    };
    const N: i64 = 10_000;
    let w = World::new(t.db.clone()).await;
    let Db::Postgres(pool) = &t.db else { unreachable!("postgres") };
    // 500 reps with WeCom ids (20 reminders each stays under WeCom's 30 a minute per member).
    let corp = MockWecom::credentials().corp_id;
    for sql in [
        "INSERT INTO users (org_id, handle, name, role, created_at)
         SELECT $1, 'rep' || g, 'Rep ' || g, 'rep', $2 FROM generate_series(1, 500) g",
        "INSERT INTO chat_identities (org_id, platform, corp_id, platform_user_id, user_id, created_at)
         SELECT $1, 'wecom', $3, handle, id, $2 FROM users WHERE org_id = $1 AND handle LIKE 'rep%'",
        "INSERT INTO tasks (org_id, owner_id, title, due_at, origin, status, created_at, remind_at, remind_exact)
         SELECT $1, u.id, 'follow-up ' || g, $2, 'manual', 'open', $2, $2, TRUE
         FROM generate_series(1, 20) g CROSS JOIN users u WHERE u.org_id = $1 AND u.handle LIKE 'rep%'",
    ] {
        sqlx::query(sql).bind(w.org.id).bind(t0()).bind(&corp).execute(pool).await.expect("seed");
    }
    let mock = MockWecom::start().await;
    let mut handles = Vec::new();
    for i in 0..instances {
        let db = Db::connect(&DbOptions::new(&t.url)).await.expect("connect");
        let clock = Clock::fixed(t0() + Duration::minutes(1));
        let name = format!("instance-{i}");
        let sched = Scheduler::new(db.clone(), clock.clone(), plan(), routes(), &name);
        let senders = Senders::default().with_wecom(APP, client(&mock, StdDuration::from_secs(5)));
        let outbox = Dispatcher::new(db.clone(), clock, &name, senders, DispatchConfig::default());
        handles.push(tokio::spawn(async move {
            let (mut fired, mut sent) = (0, 0);
            loop {
                fired += sched.tick().await.expect("tick").reminders_fired;
                let r = outbox.run_once().await.expect("dispatch");
                sent += r.sent;
                if r.claimed == 0 && pending(&db).await == 0 {
                    let mut tx = db.begin_read().await.expect("begin");
                    let left = chatcrm::store::schedule::due_reminders(&mut tx, t0() + Duration::minutes(1), 1).await;
                    tx.commit().await.expect("commit");
                    if left.expect("due").is_empty() {
                        return (fired, sent);
                    }
                }
            }
        }));
    }
    let mut per_instance = Vec::new();
    for h in handles {
        per_instance.push(tokio::time::timeout(StdDuration::from_secs(240), h).await.expect("in time").expect("join"));
    }
    let fired: usize = per_instance.iter().map(|(f, _)| f).sum();
    let sent: usize = per_instance.iter().map(|(_, s)| s).sum();
    assert_eq!((fired, sent), (N as usize, N as usize), "{per_instance:?}");
    assert!(per_instance.iter().filter(|(f, _)| *f > 0).count() > 1, "the work was shared: {per_instance:?}");
    let got = cards(&mock.received());
    assert_eq!(got.len(), N as usize);
    assert!(got.values().all(|n| *n == 1), "each exactly once");
    assert_eq!(mock.duplicates_dropped(), 0, "nothing was even sent twice");
    t.drop_database().await;
}

#[tokio::test]
async fn two_instances_share_10000_due_reminders() {
    instances_share_due_reminders(2).await;
}

#[tokio::test]
async fn three_instances_share_10000_due_reminders() {
    instances_share_due_reminders(3).await;
}
