//! A real `kill -9` of `chatcrm serve` while reminders are due and the outbox is full: after a
//! restart every reminder reaches the (mock) platform exactly once.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chatcrm::crm::{self, Actor, Ctx, Via};
use chatcrm::platform::wecom::mock::{Fault, MockWecom, Received};
use chatcrm::store::Db;
use chrono::{Duration, Utc};

use crate::helpers::{TestDb, World};

const TASKS: usize = 1500;

fn config(dir: &std::path::Path, url: &str, mock: &MockWecom) -> std::path::PathBuf {
    config_listening(dir, url, mock, 0)
}

fn config_listening(dir: &std::path::Path, url: &str, mock: &MockWecom, port: u16) -> std::path::PathBuf {
    let creds = MockWecom::credentials();
    let text = format!(
        r#"listen = "127.0.0.1:{port}"
database_url = "{url}"
seed_demo_if_empty = false
log_level = "warn"
# Thousands of messages from a few senders: the per-sender limit would drop most of them.
sender_rate_per_minute = 0

[wecom]
api_base = "{base}"
reply_deadline_ms = 2000

[[wecom.apps]]
name = "sales"
org = "Org One"
corp_id = "{corp}"
agent_id = {agent}
secret = "{secret}"
token = "QDG6eK"
encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"

[schedule]
quiet_hours = "off"
tick_ms = 50
outbox_lease_secs = 5
outbox_batch = 64
daily_digest = "off"
weekly_digest = "off"
follow_up = "off"
stuck_deals = "off"
overdue_tasks = "off"
lead_sla = "off"
"#,
        base = mock.base_url(),
        corp = creds.corp_id,
        agent = creds.agent_id,
        secret = creds.secret,
    );
    let path = dir.join("chatcrm.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A `chatcrm serve` child, killed when dropped so a failing test leaves no server behind.
struct Served(Child);

impl Served {
    fn kill_9(&mut self) {
        self.0.kill().expect("kill -9"); // SIGKILL: no shutdown, no flush, no goodbye
        self.0.wait().expect("reap");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path, log: &std::path::Path) -> Served {
    let log = std::fs::File::create(log).expect("log file");
    Served(
        Command::new(env!("CARGO_BIN_EXE_chatcrm"))
            .args(["--config", &config.display().to_string(), "serve"])
            .env_remove("CHATCRM_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chatcrm serve"),
    )
}

fn cards(received: &[Received]) -> BTreeMap<i64, usize> {
    crate::helpers::reminder_cards(received)
}

/// 100 reps with WeCom ids and 15 due reminders each (WeCom takes 30 a minute per member).
async fn seed(db: &Db) -> Vec<i64> {
    let w = World::new(db.clone()).await;
    let mut tx = w.tx().await;
    let corp = MockWecom::credentials().corp_id;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, Utc::now());
    let mut reps = Vec::new();
    for i in 0..100 {
        let handle = format!("rep{i}");
        let new = crm::users::NewUser { handle: &handle, name: &handle, role: crm::Role::Rep, team_id: None };
        let u = crm::users::create_user(&mut tx, &sys, new).await.expect("user");
        crm::users::link_identity(&mut tx, &sys, u.id, "wecom", &corp, &format!("wx{i}")).await.expect("link");
        reps.push(u);
    }
    // Due a minute ago: they fire at once, late.
    let due = Utc::now() - Duration::minutes(1);
    let mut ids = Vec::new();
    for i in 0..TASKS {
        let owner = &reps[i % reps.len()];
        let ctx = Ctx::new(Actor::of(owner), Via::Chat, due - Duration::minutes(1));
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

async fn wait_for(what: &str, limit: StdDuration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

async fn killed_mid_delivery_then_restarted(t: &TestDb) {
    let ids = seed(&t.db).await;
    let mock = MockWecom::start().await;
    // A platform that answers in 20 ms: the kill lands while sends are in flight.
    mock.script(vec![Fault::Delay(StdDuration::from_millis(20)); TASKS * 2]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &t.url, &mock);

    let mut first = serve(&cfg, &dir.path().join("first.log"));
    wait_for("the first deliveries", StdDuration::from_secs(60), || mock.received().len() >= 200).await;
    first.kill_9();
    let at_kill = mock.received().len();
    assert!(at_kill < TASKS, "killed before the end ({at_kill} delivered)");

    let mut second = serve(&cfg, &dir.path().join("second.log"));
    let all = || cards(&mock.received()).len() >= TASKS;
    wait_for("every reminder after the restart", StdDuration::from_secs(120), all).await;
    // Past the 5-second lease of anything the killed process had claimed: nothing more arrives.
    tokio::time::sleep(StdDuration::from_secs(7)).await;
    second.kill_9();

    let got = cards(&mock.received());
    assert_eq!(got.len(), TASKS, "log: {:?}", std::fs::read_to_string(dir.path().join("second.log")));
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!(ids.iter().all(|id| got.contains_key(id)));
    eprintln!(
        "killed after {at_kill} of {TASKS}; after restart all {TASKS} delivered once; {} resends dropped by the duplicate check",
        mock.duplicates_dropped()
    );
}

#[tokio::test]
async fn kill_9_with_reminders_due_then_restart_delivers_each_once_sqlite() {
    let t = TestDb::sqlite().await;
    killed_mid_delivery_then_restarted(&t).await;
}

#[tokio::test]
async fn kill_9_with_reminders_due_then_restart_delivers_each_once_postgres() {
    let Some(t) = TestDb::postgres().await else {
        eprintln!("skipped: CHATCRM_TEST_PG is not set");
        return;
    };
    killed_mid_delivery_then_restarted(&t).await;
    t.drop_database().await;
}

/// Callbacks under load while the server is killed with SIGKILL at random moments and restarted,
/// `kills` times: every callback answered 200 was stored exactly once with its one activity,
/// callbacks that failed are taken once when the platform retries them, a redelivery of an
/// answered one changes nothing and gets the same reply, and the database is intact.
async fn callbacks_survive_kill_9(t: &TestDb, kills: usize) {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use chatcrm::platform::wecom::simulate::Simulator;

    let w = World::new(t.db.clone()).await;
    let corp = MockWecom::credentials().corp_id;
    let reps = [&w.r1, &w.r2, &w.r3];
    {
        let mut tx = w.tx().await;
        for r in reps {
            let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, Utc::now());
            crm::users::link_identity(&mut tx, &sys, r.id, "wecom", &corp, &format!("wx-{}", r.handle))
                .await
                .expect("link");
        }
        tx.commit().await.expect("commit");
    }
    for r in reps {
        w.customer(r, &format!("{}的客户", r.handle)).await;
    }
    let mock = MockWecom::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_listening(dir.path(), &t.url, &mock, port);
    let url = format!("http://127.0.0.1:{port}/callback/wecom/sales");
    let sim = Arc::new(
        Simulator::new(
            "QDG6eK",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            &corp,
            MockWecom::credentials().agent_id,
        )
        .expect("simulator"),
    );
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(10)).build().expect("client");
    // The n-th message: a visit by one of the reps, unique by message id and by its marker.
    let handles: Vec<String> = reps.iter().map(|r| r.handle.clone()).collect();
    let message = move |n: u64| {
        let h = &handles[(n % 3) as usize];
        (format!("wx-{h}"), format!("拜访 {h}的客户 沟通记录 m{n}x"), format!("crash{n}"))
    };
    let send = {
        let (client, sim, url) = (client.clone(), sim.clone(), url.clone());
        move |n: u64| {
            let (client, sim, url) = (client.clone(), sim.clone(), url.clone());
            let (user, text, id) = message(n);
            async move {
                let cb = sim.text(&user, &text, &id, Utc::now().timestamp());
                let res = client.post(format!("{url}?{}", cb.query)).body(cb.body).send().await.ok()?;
                if !res.status().is_success() {
                    return None;
                }
                let body = res.text().await.ok()?;
                Some(if body.is_empty() { String::new() } else { sim.open_reply(&body).expect("reply decrypts") })
            }
        }
    };

    let acked: Arc<Mutex<HashMap<u64, String>>> = Default::default();
    let failed: Arc<Mutex<BTreeSet<u64>>> = Default::default();
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (acked, failed, next, stop, send) =
            (acked.clone(), failed.clone(), next.clone(), stop.clone(), send.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match send(n).await {
                    Some(reply) => {
                        acked.lock().expect("acked").insert(n, reply);
                    }
                    None => {
                        failed.lock().expect("failed").insert(n);
                        tokio::time::sleep(StdDuration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    let acked_now = || acked.lock().expect("acked").len();
    let mut server = serve(&cfg, &dir.path().join("serve-0.log"));
    for k in 0..kills {
        // Let it take some load, then kill it at a random moment.
        let floor = acked_now() + 50;
        wait_for("callbacks answered", StdDuration::from_secs(60), || acked_now() >= floor).await;
        tokio::time::sleep(StdDuration::from_millis(rand::random_range(0..300))).await;
        server.kill_9();
        tokio::time::sleep(StdDuration::from_millis(100)).await;
        server = serve(&cfg, &dir.path().join(format!("serve-{}.log", k + 1)));
    }
    let floor = acked_now() + 50;
    wait_for("callbacks after the last restart", StdDuration::from_secs(60), || acked_now() >= floor).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }

    // The platform retries what failed, once more each, and redelivers some answered ones.
    let failed: Vec<u64> = failed.lock().expect("failed").iter().copied().collect();
    for &n in &failed {
        let reply = send(n).await.unwrap_or_else(|| panic!("retry of {n} after the restart failed"));
        acked.lock().expect("acked").insert(n, reply);
    }
    let acked = acked.lock().expect("acked").clone();
    for (&n, first) in acked.iter().take(200) {
        let again = send(n).await.unwrap_or_else(|| panic!("redelivery of {n} failed"));
        if !first.is_empty() {
            assert_eq!(&again, first, "a redelivery of {n} gets the stored reply");
        }
    }
    server.kill_9();

    // Every answered callback: one inbox row and one activity; nothing else.
    let mut tx = t.db.begin_read().await.expect("read");
    let texts: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT text FROM inbox WHERE platform = 'wecom'")
            .fetch_all(c)
            .await)
        .expect("inbox");
    let contents: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT content FROM activities").fetch_all(c).await)
            .expect("activities");
    let orphans: i64 = chatcrm::run!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM activities a WHERE a.source_message_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM inbox i WHERE i.id = a.source_message_id)
            OR NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.entity = 'activity' AND l.entity_id = a.id)"
    )
    .fetch_one(c)
    .await)
    .expect("orphans");
    tx.commit().await.expect("commit read");
    let marker =
        |s: &str| s.split_whitespace().find_map(|w| w.strip_prefix('m')?.strip_suffix('x')?.parse::<u64>().ok());
    let count = |list: &[String]| {
        let mut m: HashMap<u64, usize> = HashMap::new();
        for s in list {
            if let Some(n) = marker(s) {
                *m.entry(n).or_default() += 1;
            }
        }
        m
    };
    let (inbox, activities) = (count(&texts), count(&contents));
    for n in acked.keys() {
        assert_eq!(inbox.get(n), Some(&1), "message {n} answered 200: exactly one inbox row");
        assert_eq!(activities.get(n), Some(&1), "message {n} answered 200: exactly one activity");
    }
    assert!(inbox.values().all(|&c| c == 1), "no message stored twice");
    assert!(activities.values().all(|&c| c == 1), "no visit logged twice");
    for (n, _) in activities.iter() {
        assert_eq!(inbox.get(n), Some(&1), "activity m{n}x has its inbox row");
    }
    assert_eq!(orphans, 0, "every activity has its inbox row and its audit row");
    match &t.db {
        Db::Sqlite(p) => {
            let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(p).await.expect("integrity");
            assert_eq!(check, "ok");
            let fk: Vec<(String, i64)> =
                sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check").fetch_all(p).await.expect("fk");
            assert!(fk.is_empty(), "foreign keys: {fk:?}");
        }
        Db::Postgres(p) => {
            // PostgreSQL enforces constraints itself; check that indexes agree with the tables.
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT message_id FROM inbox GROUP BY platform, message_id HAVING COUNT(*) > 1) d")
                .fetch_one(p)
                .await
                .expect("dupes");
            assert_eq!(n, 0);
        }
    }
    eprintln!(
        "{kills} kills survived: {} callbacks answered 200, {} failed and retried after a restart, {} stored, 200 redelivered without effect",
        acked.len(),
        failed.len(),
        inbox.len()
    );
}

/// Kills per run: `default` in CI; `SOAK_KILLS=200` for a soak run (see docs/RELIABILITY.md).
fn kills(default: usize) -> usize {
    std::env::var("SOAK_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_under_repeated_kill_9_are_kept_exactly_once_sqlite() {
    let t = TestDb::sqlite().await;
    callbacks_survive_kill_9(&t, kills(8)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_under_repeated_kill_9_are_kept_exactly_once_postgres() {
    let Some(t) = TestDb::postgres().await else {
        eprintln!("skipped: CHATCRM_TEST_PG is not set");
        return;
    };
    callbacks_survive_kill_9(&t, kills(5)).await;
    t.drop_database().await;
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // the server is "down": the connection closes at once
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().expect("conns").push(task.abort_handle());
            }
        });
        Self { port, up, conns }
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().expect("conns").drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// PostgreSQL becomes unreachable while callbacks arrive: they get a retryable error, nothing is
/// half-written, and once the database is back the server serves again by itself; the platform's
/// retries of the refused callbacks are each taken once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_callbacks_are_refused_then_served_again() {
    use chatcrm::platform::wecom::simulate::Simulator;
    let Some(t) = TestDb::postgres().await else {
        eprintln!("skipped: CHATCRM_TEST_PG is not set");
        return;
    };
    let w = World::new(t.db.clone()).await;
    let corp = MockWecom::credentials().corp_id;
    {
        let mut tx = w.tx().await;
        let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, Utc::now());
        crm::users::link_identity(&mut tx, &sys, w.r1.id, "wecom", &corp, "wx-r1").await.expect("link");
        tx.commit().await.expect("commit");
    }
    w.customer(&w.r1, "海尔智家").await;
    // postgres://user@host:port/db → the same through the proxy.
    let (scheme_user, rest) = t.url.split_once('@').expect("url with user@");
    let (authority, path) = rest.split_once('/').expect("url with a database");
    let upstream = if authority.contains(':') { authority.to_string() } else { format!("{authority}:5432") };
    let proxy = Proxy::start(upstream).await;
    let url = format!("{scheme_user}@127.0.0.1:{}/{path}", proxy.port);
    let mock = MockWecom::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_listening(dir.path(), &url, &mock, port);
    let sim = Simulator::new(
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        &corp,
        MockWecom::credentials().agent_id,
    )
    .expect("simulator");
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(15)).build().expect("client");
    let send = async |n: u32| -> u16 {
        let cb =
            sim.text("wx-r1", &format!("拜访 海尔智家 沟通记录 m{n}x"), &format!("outage{n}"), Utc::now().timestamp());
        let endpoint = format!("http://127.0.0.1:{port}/callback/wecom/sales?{}", cb.query);
        match client.post(endpoint).body(cb.body).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    };
    let _server = serve(&cfg, &dir.path().join("serve.log"));
    let start = Instant::now();
    while send(0).await != 200 {
        assert!(start.elapsed() < StdDuration::from_secs(30), "server never came up");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    for n in 1..10 {
        assert_eq!(send(n).await, 200, "message {n} before the outage");
    }

    proxy.down();
    // Ten callbacks at once, each waiting out the reply deadline.
    let mut pending = Vec::new();
    for n in 10..20u32 {
        let cb =
            sim.text("wx-r1", &format!("拜访 海尔智家 沟通记录 m{n}x"), &format!("outage{n}"), Utc::now().timestamp());
        let req = client.post(format!("http://127.0.0.1:{port}/callback/wecom/sales?{}", cb.query)).body(cb.body);
        pending.push((n, tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) })));
    }
    let mut refused = Vec::new();
    for (n, task) in pending {
        refused.push((n, task.await.expect("request task")));
    }
    for (n, status) in &refused {
        assert!(*status == 503 || *status == 0, "message {n} during the outage must not be acknowledged: {status}");
    }
    assert!(refused.iter().any(|(_, s)| *s == 503), "the server answers a retryable error: {refused:?}");

    proxy.restore();
    let back = Instant::now();
    // The platform keeps retrying; the server recovers by itself.
    for n in 10..20 {
        loop {
            let status = send(n).await;
            if status == 200 {
                break;
            }
            assert!(back.elapsed() < StdDuration::from_secs(60), "not served again after the outage ({status})");
            tokio::time::sleep(StdDuration::from_millis(200)).await;
        }
    }
    eprintln!("served again {} ms after the database came back", back.elapsed().as_millis());
    for n in 20..25 {
        assert_eq!(send(n).await, 200, "message {n} after the outage");
    }
    for n in 0..25 {
        assert_eq!(send(n).await, 200, "redelivery of {n}");
    }

    let mut tx = t.db.begin_read().await.expect("read");
    let texts: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT text FROM inbox").fetch_all(c).await).expect("inbox");
    let contents: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT content FROM activities").fetch_all(c).await)
            .expect("activities");
    tx.commit().await.expect("commit");
    for n in 0..25 {
        let marker = format!("m{n}x");
        assert_eq!(texts.iter().filter(|t| t.contains(&marker)).count(), 1, "inbox rows of message {n}");
        assert_eq!(contents.iter().filter(|t| t.contains(&marker)).count(), 1, "activities of message {n}");
    }
    assert_eq!(texts.len(), 25, "nothing else stored");
    drop(_server);
    t.drop_database().await;
}

/// Secrets stay out of the logs: a real `serve` at `log_level = "debug"` takes WeCom, DingTalk and
/// Feishu callbacks, pushes a reminder through WeCom and a reply through Feishu (fetching their
/// access tokens), and answers the JSON API
/// with a bearer token; no app secret, callback token, AES key, robot token or secret, access
/// token or API token appears anywhere in what it logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_debug_logs() {
    use chatcrm::http::api_v1::{Scope, auth};
    use chatcrm::platform::dingtalk::mock::{self as dmock, MockDingtalk};
    use chatcrm::platform::wecom::simulate::Simulator;

    const WECOM_TOKEN: &str = "QDG6eK";
    const WECOM_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const FEISHU_TENANT: &str = "tenant-logs";
    const FEISHU_VTOKEN: &str = "feishu-verification-v7Tq";
    const FEISHU_KEY: &str = "feishu-encrypt-key-Zp4R";
    let t = TestDb::sqlite().await;
    let w = World::new(t.db.clone()).await;
    let corp = MockWecom::credentials().corp_id;
    let api_token = {
        let mut tx = w.tx().await;
        let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, Utc::now());
        crm::users::link_identity(&mut tx, &sys, w.r1.id, "wecom", &corp, "wx-r1").await.expect("link wecom");
        crm::users::link_identity(&mut tx, &sys, w.r2.id, "dingtalk", dmock::CORP_ID, "zhangsan").await.expect("link");
        crm::users::link_identity(&mut tx, &sys, w.r3.id, "feishu", FEISHU_TENANT, "ou_r3").await.expect("link feishu");
        let due = Utc::now() - Duration::minutes(1);
        let ctx = Ctx::new(Actor::of(&w.r1), Via::Chat, due - Duration::minutes(1));
        let task = crm::tasks::NewTask {
            title: "回访海尔".into(),
            due_at: due,
            owner_id: None,
            customer_id: None,
            deal_id: None,
            origin: crm::TaskOrigin::Manual,
        };
        crm::tasks::create_task(&mut tx, &ctx, task).await.expect("task");
        let (_, token) = auth::create_token_for(&mut tx, w.org.id, None, "logs", Scope::Full, Via::Cli, Utc::now())
            .await
            .expect("api token");
        tx.commit().await.expect("commit");
        token
    };
    let wecom = MockWecom::start().await;
    let ding = MockDingtalk::start().await;
    let feishu = chatcrm::platform::feishu::mock::MockFeishu::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_listening(dir.path(), &t.url, &wecom, port);
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text = text.replace(r#"log_level = "warn""#, r#"log_level = "debug""#);
    text.push_str(&format!(
        r#"
[dingtalk]
api_base = "{base}"

[[dingtalk.apps]]
name = "sales"
org = "Org One"
corp_id = "{corp}"
app_key = "{key}"
app_secret = "{secret}"
agent_id = {agent}
robots = [{{ name = "{robot}", access_token = "{robot_token}", secret = "{robot_secret}" }}]

[feishu]
api_base = "{feishu_base}"

[[feishu.apps]]
name = "sales"
org = "Org One"
corp_id = "{FEISHU_TENANT}"
app_id = "{app_id}"
app_secret = "{app_secret}"
verification_token = "{FEISHU_VTOKEN}"
encrypt_key = "{FEISHU_KEY}"
"#,
        base = ding.base_url(),
        corp = dmock::CORP_ID,
        key = dmock::APP_KEY,
        secret = dmock::APP_SECRET,
        agent = dmock::AGENT_ID,
        robot = dmock::ROBOT_NAME,
        robot_token = dmock::ROBOT_TOKEN,
        robot_secret = dmock::ROBOT_SECRET,
        feishu_base = feishu.base_url(),
        app_id = chatcrm::platform::feishu::mock::APP_ID,
        app_secret = chatcrm::platform::feishu::mock::APP_SECRET,
    ));
    std::fs::write(&cfg, text).expect("write config");
    let log = dir.path().join("serve.log");
    let mut server = serve(&cfg, &log);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < StdDuration::from_secs(30),
            "server never came up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    // WeCom callback, DingTalk robot callback, the JSON API, and the reminder push.
    let sim = Simulator::new(WECOM_TOKEN, WECOM_KEY, &corp, MockWecom::credentials().agent_id).expect("simulator");
    let cb = sim.text("wx-r1", "今天", "logs1", Utc::now().timestamp());
    let r = client.post(format!("{base}/callback/wecom/sales?{}", cb.query)).body(cb.body).send().await.expect("wecom");
    assert_eq!(r.status(), 200);
    let dsim = chatcrm::platform::dingtalk::simulate::Simulator::new(&MockDingtalk::app("sales", "Org One"))
        .expect("dingtalk simulator");
    let dcb =
        dsim.text("zhangsan", "今天", "logs2", None, Utc::now().timestamp_millis(), Some(&ding.session_url("s1")));
    let r = client
        .post(format!("{base}/callback/dingtalk/sales"))
        .header("timestamp", &dcb.timestamp)
        .header("sign", &dcb.sign)
        .header("content-type", "application/json")
        .body(dcb.body)
        .send()
        .await
        .expect("dingtalk");
    assert_eq!(r.status(), 200);
    let fsim = chatcrm::platform::feishu::simulate::Simulator::new(
        FEISHU_VTOKEN,
        Some(FEISHU_KEY),
        chatcrm::platform::feishu::mock::APP_ID,
        FEISHU_TENANT,
    );
    let fcb = fsim.text("ou_r3", "今天", "om_logs3", Utc::now().timestamp());
    let mut req = client.post(format!("{base}/callback/feishu/sales")).body(fcb.body);
    for (k, v) in &fcb.headers {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.expect("feishu").status(), 200);
    let r = client.get(format!("{base}/api/v1/customers")).bearer_auth(&api_token).send().await.expect("api");
    assert_eq!(r.status(), 200);
    wait_for("the reminder pushed through WeCom", StdDuration::from_secs(30), || !wecom.received().is_empty()).await;
    wait_for("the Feishu reply pushed", StdDuration::from_secs(30), || !feishu.received().is_empty()).await;
    server.kill_9();

    let logged = std::fs::read_to_string(&log).expect("read log");
    assert!(logged.contains("DEBUG") && logged.lines().count() > 20, "debug logging was on:\n{logged}");
    let secrets = [
        ("WeCom app secret", MockWecom::credentials().secret),
        ("WeCom callback token", WECOM_TOKEN.to_string()),
        ("WeCom EncodingAESKey", WECOM_KEY.to_string()),
        ("DingTalk app secret", dmock::APP_SECRET.to_string()),
        ("DingTalk robot token", dmock::ROBOT_TOKEN.to_string()),
        ("DingTalk robot secret", dmock::ROBOT_SECRET.to_string()),
        ("API token", api_token.clone()),
        ("WeCom access token", "MOCK0001_".to_string()),
        ("Feishu app secret", chatcrm::platform::feishu::mock::APP_SECRET.to_string()),
        ("Feishu verification token", FEISHU_VTOKEN.to_string()),
        ("Feishu encrypt key", FEISHU_KEY.to_string()),
        ("Feishu tenant access token", "t-mock-".to_string()),
    ];
    for (what, secret) in &secrets {
        if let Some(line) = logged.lines().find(|l| l.contains(secret.as_str())) {
            panic!("{what} logged: {line}");
        }
    }
    for line in logged.lines() {
        if let Some(i) = line.find("access_token=") {
            let value: String = line[i + "access_token=".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(value.is_empty(), "an access token in a logged URL: {line}");
        }
    }
    eprintln!("{} log lines at debug level scanned for {} secrets: none found", logged.lines().count(), secrets.len());
    if std::env::var_os("SHOW_SERVE_LOG").is_some() {
        eprintln!("{logged}");
    }
}
