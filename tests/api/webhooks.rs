//! Outbound webhooks against a local receiver (an axum server on port 0 that records every request
//! and answers as scripted): signatures, bodies and headers per event type, retries on 5xx and
//! timeouts, dead letters and replay, and a dispatcher crash in the middle of a delivery.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chatcrm::clock::Clock;
use chatcrm::crm::{self, Actor, Ctx, LostReason, TaskOrigin, Via};
use chatcrm::outbox::{DispatchConfig, Dispatcher, Routes, Senders};
use chatcrm::platform::hmac::{hex, hmac_sha256};
use chatcrm::schedule::{Plan, ScheduleSettings, Scheduler};
use chatcrm::store::Db;
use chatcrm::webhooks::{self, Sender};
use chrono::{Duration, TimeZone, Utc};

use crate::both_backends;
use crate::helpers::{World, t0};

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Takes this long, then accepts (the client may have given up by then).
    Hang(StdDuration),
}

#[derive(Debug, Clone)]
struct Got {
    event: String,
    delivery: String,
    timestamp: String,
    signature: String,
    body: String,
    /// What the receiver answered: 2xx means it processed the event.
    answered: u16,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Answer>,
    got: Vec<Got>,
}

#[derive(Clone, Default)]
struct Receiver {
    inner: Arc<Mutex<Inner>>,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        let mut r = Receiver::default();
        let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(r.inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        r.url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    fn script(&self, answers: &[Answer]) {
        self.inner.lock().expect("lock").script.extend(answers.iter().copied());
    }

    fn got(&self) -> Vec<Got> {
        self.inner.lock().expect("lock").got.clone()
    }

    /// Event ids the receiver processed (answered 2xx), with how often: a receiver that dedupes
    /// by event id acts on each once.
    fn processed(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for g in self.got().iter().filter(|g| (200..300).contains(&g.answered)) {
            *m.entry(g.delivery.clone()).or_insert(0) += 1;
        }
        m
    }
}

async fn hook(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let answer = inner.lock().expect("lock").script.pop_front().unwrap_or(Answer::Status(200));
    let answered = match answer {
        Answer::Status(s) => s,
        Answer::Hang(_) => 200,
    };
    inner.lock().expect("lock").got.push(Got {
        event: h("x-chatcrm-event"),
        delivery: h("x-chatcrm-delivery"),
        timestamp: h("x-chatcrm-timestamp"),
        signature: h("x-chatcrm-signature"),
        body,
        answered,
    });
    if let Answer::Hang(d) = answer {
        tokio::time::sleep(d).await;
    }
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The signature a receiver computes with the secret.
fn expected_signature(secret: &str, timestamp: &str, body: &str) -> String {
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), format!("{timestamp}.{body}").as_bytes())))
}

async fn subscribe(w: &World, org_id: i64, url: &str, events: &str) -> (i64, String) {
    let mut tx = w.tx().await;
    let (sub, secret) = webhooks::add(&mut tx, org_id, url, events, None, t0()).await.expect("add webhook");
    tx.commit().await.expect("commit");
    (sub.id, secret)
}

fn dispatcher(db: &Db, clock: &Clock, instance: &str, timeout: StdDuration, cfg: DispatchConfig) -> Dispatcher {
    let senders = Senders::default().with_webhooks(Sender::new(timeout).expect("sender"));
    Dispatcher::new(db.clone(), clock.clone(), instance, senders, cfg)
}

async fn statuses(db: &Db) -> Vec<(String, i64)> {
    let mut tx = db.begin_read().await.expect("begin");
    let c = chatcrm::store::outbox::counts(&mut tx).await.expect("counts");
    tx.commit().await.expect("commit");
    c
}

/// `n` customers created by r1, one event each.
async fn customers(w: &World, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(w.customer(&w.r1, &format!("客户{i}号贸易")).await.id);
    }
    ids
}

both_backends!(
    every_event_type_is_signed_with_its_body_and_headers,
    retries_on_5xx_and_timeouts_deliver_each_event_once,
    a_receiver_answering_200_sees_each_delivery_id_once,
    client_errors_dead_letter_and_replay_revives,
    a_dispatcher_dying_mid_delivery_loses_and_doubles_nothing,
);

async fn every_event_type_is_signed_with_its_body_and_headers(db: Db) {
    let w = World::new(db.clone()).await;
    let rx = Receiver::start().await;
    let (all, secret) = subscribe(&w, w.org.id, &rx.url, "*").await;
    let (won_only, won_secret) = subscribe(&w, w.org.id, &rx.url, "deal.won").await;
    // Another org's subscriber hears nothing of org 1.
    subscribe(&w, w.org2.id, &rx.url, "*").await;

    let c = w.customer(&w.r1, "海尔").await;
    let mut tx = w.tx().await;
    let ctx = w.ctx(&w.r1);
    let logged = crm::activities::log_activity(
        &mut tx,
        &ctx,
        crm::activities::NewActivity {
            customer_id: c.id,
            kind: crm::ActivityKind::Visit,
            content: "聊了报价".into(),
            occurred_at: None,
            next_step: None,
            location: None,
            follow_up: None,
        },
    )
    .await
    .expect("activity");
    let new_deal = |title: &str| crm::deals::NewDeal {
        customer_id: c.id,
        title: title.into(),
        amount_fen: 1_000_000,
        stage: None,
        expected_close: None,
        owner_id: None,
    };
    let d1 = crm::deals::create_deal(&mut tx, &ctx, new_deal("一期")).await.expect("deal");
    let patch = crm::deals::DealPatch { stage: Some("proposal".into()), ..Default::default() };
    crm::deals::update_deal(&mut tx, &ctx, d1.id, patch).await.expect("move");
    crm::deals::close_deal(&mut tx, &ctx, d1.id, true, None, None).await.expect("won");
    let d2 = crm::deals::create_deal(&mut tx, &ctx, new_deal("二期")).await.expect("deal");
    crm::deals::close_deal(&mut tx, &ctx, d2.id, false, None, Some(LostReason::Price)).await.expect("lost");
    let lead = crm::leads::create_lead(
        &mut tx,
        &Ctx::new(Actor::of(&w.ma), Via::Chat, t0()),
        crm::leads::NewLead { company: "美的".into(), to_pool: true, ..Default::default() },
    )
    .await
    .expect("lead");
    crm::leads::assign_lead(&mut tx, &w.ctx(&w.ma), lead.id, w.r2.id).await.expect("assign");
    tx.commit().await.expect("commit");

    // task.overdue from the overdue job, once per task and day.
    let mut s = ScheduleSettings::default().without_jobs();
    s.overdue_tasks = "0 9 * * *".into();
    let clock = Clock::fixed(t0());
    let sched = Scheduler::new(
        db.clone(),
        clock.clone(),
        Arc::new(Plan::try_from(&s).expect("plan")),
        Arc::new(Routes::default()),
        "one",
    );
    let mut tx = w.tx().await;
    let task = crm::tasks::create_task(
        &mut tx,
        &ctx,
        crm::tasks::NewTask {
            title: "回访".into(),
            due_at: t0() + Duration::hours(1),
            owner_id: None,
            customer_id: Some(c.id),
            deal_id: None,
            origin: TaskOrigin::Manual,
        },
    )
    .await
    .expect("task");
    tx.commit().await.expect("commit");
    let shanghai = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h - 8, 0, 0).single().expect("time");
    for at in [shanghai(25, 9), shanghai(25, 10), shanghai(26, 9)] {
        clock.set(at);
        sched.tick().await.expect("tick");
    }

    let outbox = dispatcher(&db, &clock, "one", StdDuration::from_secs(5), DispatchConfig::default());
    outbox.drain().await.expect("drain");
    let got = rx.got();
    let types: Vec<&str> = got.iter().map(|g| g.event.as_str()).collect();
    let count = |t: &str| types.iter().filter(|x| **x == t).count();
    // The won-only subscriber adds one deal.won; won and lost are also stage changes.
    assert_eq!(count("customer.created"), 1, "{types:?}");
    assert_eq!(count("activity.logged"), 1, "{types:?}");
    assert_eq!(count("deal.stage_changed"), 3, "{types:?}");
    assert_eq!(count("deal.won"), 2, "{types:?}");
    assert_eq!(count("deal.lost"), 1, "{types:?}");
    assert_eq!(count("lead.assigned"), 1, "{types:?}");
    assert_eq!(count("task.overdue"), 2, "one per overdue day: {types:?}");
    assert_eq!(got.len(), 11, "nothing for org 2's subscriber: {types:?}");

    for g in &got {
        let ev: serde_json::Value = serde_json::from_str(&g.body).expect("JSON body");
        assert_eq!(ev["type"], g.event.as_str());
        assert_eq!(ev["id"], g.delivery.as_str());
        assert_eq!(ev["org"], w.org.id);
        assert!(ev["occurred_at"].is_string() && ev["data"].is_object(), "{ev}");
        // The receiver checks with the secret of the subscription the POST is for.
        let ok = [&secret, &won_secret].iter().any(|s| expected_signature(s, &g.timestamp, &g.body) == g.signature);
        assert!(ok, "signature must verify: {g:?}");
        assert!(expected_signature("wrong secret", &g.timestamp, &g.body) != g.signature);
        let ts: i64 = g.timestamp.parse().expect("unix seconds");
        assert_eq!(ts, clock.now().timestamp());
    }
    let body = |t: &str| -> serde_json::Value {
        let g = got.iter().find(|g| g.event == t).expect("event");
        serde_json::from_str(&g.body).expect("json")
    };
    assert_eq!(body("customer.created")["data"]["name"], "海尔");
    assert_eq!(body("customer.created")["id"], format!("customer.created:{}", c.id));
    assert_eq!(body("activity.logged")["data"]["id"], logged.activity.id);
    assert_eq!(body("activity.logged")["data"]["content"], "聊了报价");
    let moves: Vec<serde_json::Value> = got
        .iter()
        .filter(|g| g.event == "deal.stage_changed")
        .map(|g| serde_json::from_str(&g.body).expect("json"))
        .collect();
    assert!(moves.iter().any(|m| m["data"]["previous_stage"] == "initial_contact" && m["data"]["stage"] == "proposal"));
    assert_eq!(body("deal.won")["data"]["status"], "won");
    assert_eq!(body("deal.lost")["data"]["lost_reason"], "price");
    assert_eq!(body("lead.assigned")["data"]["owner_id"], w.r2.id);
    // Delivered concurrently, so in any order.
    let mut overdue: Vec<(String, serde_json::Value)> = got
        .iter()
        .filter(|g| g.event == "task.overdue")
        .map(|g| serde_json::from_str::<serde_json::Value>(&g.body).expect("json"))
        .map(|v| (v["id"].as_str().unwrap_or_default().to_string(), v))
        .collect();
    overdue.sort_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<&str> = overdue.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [format!("task.overdue:{}:2026-11-25", task.id), format!("task.overdue:{}:2026-11-26", task.id)]);
    assert_eq!(overdue[0].1["data"]["id"], task.id);
    assert_eq!(overdue[0].1["data"]["overdue_day"], "2026-11-25");
    // Each subscription got its own delivery, logged.
    let mut tx = db.begin_read().await.expect("begin");
    let log_all = chatcrm::store::webhooks::log(&mut tx, Some(all), 100).await.expect("log");
    let log_won = chatcrm::store::webhooks::log(&mut tx, Some(won_only), 100).await.expect("log");
    tx.commit().await.expect("commit");
    assert_eq!((log_all.len(), log_won.len()), (10, 1));
    assert!(log_all.iter().all(|d| d.status_code == Some(200) && d.error.is_none()), "{log_all:?}");
}

async fn retries_on_5xx_and_timeouts_deliver_each_event_once(db: Db) {
    let w = World::new(db.clone()).await;
    let rx = Receiver::start().await;
    subscribe(&w, w.org.id, &rx.url, "customer.created").await;
    let ids = customers(&w, 8).await;
    let clock = Clock::fixed(t0());
    let cfg = DispatchConfig { concurrency: 2, batch: 4, ..DispatchConfig::default() };
    let outbox = dispatcher(&db, &clock, "one", StdDuration::from_millis(300), cfg);
    rx.script(&[
        Answer::Status(500),
        Answer::Hang(StdDuration::from_millis(800)),
        Answer::Status(503),
        Answer::Status(429),
        Answer::Status(502),
        Answer::Hang(StdDuration::from_millis(800)),
    ]);
    for round in 0..30 {
        outbox.drain().await.expect("drain");
        if statuses(&db).await == vec![("sent".to_string(), 8)] {
            break;
        }
        clock.set(clock.now() + Duration::hours(2));
        assert!(round < 29, "still not delivered: {:?}", statuses(&db).await);
    }
    tokio::time::sleep(StdDuration::from_millis(900)).await;
    let processed = rx.processed();
    let want: BTreeSet<String> = ids.iter().map(|id| format!("customer.created:{id}")).collect();
    assert_eq!(processed.keys().cloned().collect::<BTreeSet<_>>(), want, "every event reached the receiver");
    // A timed-out request the receiver still completed comes again; deduped by event id it is once.
    assert!(processed.values().all(|n| *n <= 2), "{processed:?}");
    let mut tx = db.begin_read().await.expect("begin");
    let log = chatcrm::store::webhooks::log(&mut tx, None, 100).await.expect("log");
    tx.commit().await.expect("commit");
    assert!(log.iter().any(|d| d.status_code == Some(500)), "{log:?}");
    assert!(log.iter().any(|d| d.status_code.is_none() && d.error.as_deref() == Some("webhook timed out")), "{log:?}");
    assert_eq!(log.iter().filter(|d| d.status_code == Some(200)).count(), 8, "{log:?}");
}

async fn a_receiver_answering_200_sees_each_delivery_id_once(db: Db) {
    let w = World::new(db.clone()).await;
    let rx = Receiver::start().await;
    subscribe(&w, w.org.id, &rx.url, "customer.created,activity.logged").await;
    customers(&w, 12).await;
    let clock = Clock::fixed(t0());
    let cfg = DispatchConfig { concurrency: 4, batch: 5, ..DispatchConfig::default() };
    let a = dispatcher(&db, &clock, "a", StdDuration::from_secs(5), cfg.clone());
    let b = dispatcher(&db, &clock, "b", StdDuration::from_secs(5), cfg);
    // Two dispatchers at once: leases keep them apart.
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    assert_eq!(ra.expect("a").sent + rb.expect("b").sent, 12);
    let got = rx.got();
    let ids: BTreeSet<&str> = got.iter().map(|g| g.delivery.as_str()).collect();
    assert_eq!((got.len(), ids.len()), (12, 12), "no delivery id twice");
}

async fn client_errors_dead_letter_and_replay_revives(db: Db) {
    let w = World::new(db.clone()).await;
    let rx = Receiver::start().await;
    let (sub, _) = subscribe(&w, w.org.id, &rx.url, "customer.created").await;
    let ids = customers(&w, 3).await;
    let clock = Clock::fixed(t0());
    let outbox = dispatcher(&db, &clock, "one", StdDuration::from_secs(5), DispatchConfig::default());
    rx.script(&[Answer::Status(410), Answer::Status(400)]);
    let r = outbox.drain().await.expect("drain");
    assert_eq!((r.sent, r.dead), (1, 2), "{r:?}");
    assert_eq!(statuses(&db).await, vec![("dead".to_string(), 2), ("sent".to_string(), 1)]);
    let mut tx = db.begin_read().await.expect("begin");
    let dead = chatcrm::store::outbox::list(&mut tx, "dead", 10).await.expect("list");
    tx.commit().await.expect("commit");
    assert!(dead.iter().all(|m| m.attempts == 1), "4xx is not retried: {dead:?}");
    // Replay one dead event by id, then the rest with --dead.
    let first: serde_json::Value = serde_json::from_str(&dead[0].body).expect("json");
    let event_id = first["id"].as_str().expect("id").to_string();
    let mut tx = db.begin().await.expect("begin");
    let n = chatcrm::store::webhooks::requeue_event(&mut tx, &event_id, Some(sub), clock.now()).await.expect("replay");
    tx.commit().await.expect("commit");
    assert_eq!(n, 1);
    assert_eq!(outbox.drain().await.expect("drain").sent, 1);
    let mut tx = db.begin().await.expect("begin");
    assert_eq!(chatcrm::store::webhooks::requeue_dead(&mut tx, Some(sub), clock.now()).await.expect("dead"), 1);
    tx.commit().await.expect("commit");
    assert_eq!(outbox.drain().await.expect("drain").sent, 1);
    assert_eq!(statuses(&db).await, vec![("sent".to_string(), 3)]);
    let processed = rx.processed();
    assert!(ids.iter().all(|id| processed.get(&format!("customer.created:{id}")) == Some(&1)), "{processed:?}");
    // A sent event can be replayed too (the receiver asked for it again).
    let mut tx = db.begin().await.expect("begin");
    let n = chatcrm::store::webhooks::requeue_event(&mut tx, &event_id, None, clock.now()).await.expect("replay");
    tx.commit().await.expect("commit");
    assert_eq!(n, 1);
    assert_eq!(outbox.drain().await.expect("drain").sent, 1);
    assert_eq!(rx.processed().get(&event_id), Some(&2));
}

async fn a_dispatcher_dying_mid_delivery_loses_and_doubles_nothing(db: Db) {
    let w = World::new(db.clone()).await;
    let rx = Receiver::start().await;
    subscribe(&w, w.org.id, &rx.url, "*").await;
    let ids = customers(&w, 10).await;
    let clock = Clock::fixed(t0());
    let cfg = DispatchConfig { concurrency: 4, batch: 4, ..DispatchConfig::default() };
    let a = dispatcher(&db, &clock, "a", StdDuration::from_secs(5), cfg.clone());
    // The first batch goes through; during the second the receiver is slow and "a" dies.
    assert_eq!(a.run_once().await.expect("batch").sent, 4);
    rx.script(&[Answer::Hang(StdDuration::from_millis(700)); 4]);
    let dying = tokio::spawn(async move { a.run_once().await });
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    dying.abort();
    let _ = dying.await;
    // A new dispatcher on the same database: the claimed rows wait for the lease.
    let b = dispatcher(&db, &clock, "b", StdDuration::from_secs(5), cfg);
    assert_eq!(b.drain().await.expect("drain").sent, 2, "unclaimed rows go at once; leased ones wait");
    clock.set(t0() + Duration::seconds(61));
    assert_eq!(b.drain().await.expect("drain").sent, 4);
    tokio::time::sleep(StdDuration::from_millis(800)).await;
    assert_eq!(statuses(&db).await, vec![("sent".to_string(), 10)]);
    let processed = rx.processed();
    let want: BTreeSet<String> = ids.iter().map(|id| format!("customer.created:{id}")).collect();
    assert_eq!(processed.keys().cloned().collect::<BTreeSet<_>>(), want, "nothing lost");
    // The dead instance's requests reached the receiver before it died: those come twice, with the
    // same delivery id, so a receiver deduping by it acts once. Everything else came once.
    let twice: Vec<_> = processed.iter().filter(|(_, n)| **n == 2).collect();
    assert!(twice.len() <= 4 && processed.values().all(|n| *n <= 2), "{processed:?}");
    assert_eq!(rx.got().len(), 10 + twice.len());
}

/// The real binary: `webhooks add`, `list`, `test` (a signed ping to the receiver), `log`,
/// `remove`. SQLite only: the storage under it runs on both backends above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_adds_lists_tests_and_removes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let run = |args: Vec<String>| {
        let (dir, url) = (dir.path().to_path_buf(), url.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatcrm"));
                cmd.current_dir(&dir).args(&args);
                for (key, _) in std::env::vars_os() {
                    if key.to_string_lossy().starts_with("CHATCRM_") {
                        cmd.env_remove(&key);
                    }
                }
                let out = cmd.env("CHATCRM_DATABASE_URL", &url).env("NO_COLOR", "1").output().expect("run chatcrm");
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (out.status.success(), text(&out.stdout), text(&out.stderr))
            })
            .await
            .expect("join")
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let rx = Receiver::start().await;
    assert!(run(args(&["demo"])).await.0);

    let (ok, out, err) =
        run(args(&["webhooks", "add", "--org", "演示公司", "--url", &rx.url, "--events", "deal.won,customer.created"]))
            .await;
    assert!(ok, "{out}{err}");
    let id = out.split_whitespace().nth(1).expect("id").to_string();
    let secret = out.lines().find_map(|l| l.strip_prefix("secret: ")).expect("secret printed").to_string();
    assert!(secret.starts_with("whsec_"), "{out}");
    let (ok, _, err) =
        run(args(&["webhooks", "add", "--org", "演示公司", "--url", &rx.url, "--events", "deal.closed"])).await;
    assert!(!ok && err.contains("unknown event type `deal.closed`"), "{err}");

    let (ok, out, err) = run(args(&["webhooks", "list"])).await;
    assert!(ok, "{err}");
    assert!(out.contains(&rx.url) && out.contains("deal.won,customer.created"), "{out}");
    assert!(!out.contains(&secret), "list never shows the secret: {out}");

    let (ok, out, err) = run(args(&["webhooks", "test", &id])).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("HTTP 200"), "{out}");
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event, "ping");
    assert_eq!(got[0].signature, expected_signature(&secret, &got[0].timestamp, &got[0].body));
    assert!(!out.contains(&secret) && !err.contains(&secret), "the secret is not logged");

    rx.script(&[Answer::Status(404)]);
    let (ok, out, err) = run(args(&["webhooks", "test", &id])).await;
    assert!(!ok && out.contains("HTTP 404") && err.contains("did not accept"), "{out}{err}");
    let (ok, out, _) = run(args(&["webhooks", "log", "--sub", &id])).await;
    assert!(ok && out.contains("HTTP 404") && out.contains("HTTP 200"), "{out}");

    let (ok, out, _) = run(args(&["webhooks", "remove", &id])).await;
    assert!(ok && out.contains("removed"), "{out}");
    let (ok, out, _) = run(args(&["webhooks", "list"])).await;
    assert!(ok && out.contains("no webhooks"), "{out}");
}
