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
    let creds = MockWecom::credentials();
    let text = format!(
        r#"listen = "127.0.0.1:0"
database_url = "{url}"
seed_demo_if_empty = false
log_level = "warn"

[wecom]
api_base = "{base}"

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
