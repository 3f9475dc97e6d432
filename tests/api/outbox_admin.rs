//! Outbox administration: the JSON API (`/api/outbox`, served with the console) on both backends,
//! and `chatcrm outbox list|retry|drop` on SQLite. Every call is checked against the row in the
//! database afterwards.

use super::helpers::*;
use super::http::{Server, settings};
use crate::both_backends;

use std::process::Command;

use chatcrm::clock::Clock;
use chatcrm::config::Settings;
use chatcrm::crm::User;
use chatcrm::outbox::{self, DispatchConfig, Dispatcher, Kind, OutMessage, Outgoing, Senders, Target};
use chatcrm::store::outbox::{self as store, OutboxRow};
use chatcrm::store::{Db, DbOptions};
use chrono::Duration;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_chatcrm");
const SENT_TEXT: &str = "Reminder: call Haier\nsecond line of the reminder";
const PENDING_TEXT: &str =
    "跟进 海尔智家 二期需求：明天上午十点前给出报价，确认交付时间、付款方式和验收标准，再约下周的现场演示";

/// One message of each kind of fate: delivered, dead-lettered, still queued.
struct Fixture {
    /// A console message, delivered (`sent`).
    sent: i64,
    /// A WeCom message for an app that is not configured: dead-lettered as fatal (`dead`).
    dead: i64,
    /// A console message due in an hour (`pending`).
    pending: i64,
    r2: User,
}

fn console_target(u: &User) -> Target {
    Target { platform: "console".into(), app: String::new(), recipient: u.id.to_string() }
}

async fn fixture(db: &Db) -> Fixture {
    let w = World::new(db.clone()).await;
    let nowhere = Target { platform: "wecom".into(), app: "nowhere".into(), recipient: "zhangsan".into() };
    let mut tx = db.begin().await.expect("begin");
    let queue = [
        (&w.r1, console_target(&w.r1), SENT_TEXT, "test:sent", t0()),
        (&w.r1, nowhere, "Weekly digest", "test:dead", t0()),
        (&w.r2, console_target(&w.r2), PENDING_TEXT, "test:pending", t0() + Duration::hours(1)),
    ];
    for (user, target, text, key, not_before) in &queue {
        let out = Outgoing {
            org_id: Some(user.org_id),
            user_id: Some(user.id),
            kind: Kind::Reminder,
            target,
            message: &OutMessage::text(*text),
            dedupe_key: key,
            not_before: *not_before,
        };
        assert!(outbox::enqueue(&mut tx, &out, t0()).await.expect("enqueue"), "{key} queued");
    }
    tx.commit().await.expect("commit");
    let report = dispatcher(db).drain().await.expect("drain");
    assert_eq!((report.sent, report.dead, report.retried), (1, 1, 0), "{report:?}");

    let rows = all(db).await;
    let id = |key: &str| rows.iter().find(|r| r.dedupe_key == key).map(|r| r.id).expect("fixture row");
    let f = Fixture { sent: id("test:sent"), dead: id("test:dead"), pending: id("test:pending"), r2: w.r2.clone() };
    assert_eq!(row(db, f.sent).await.status, "sent");
    let dead = row(db, f.dead).await;
    assert_eq!(dead.status, "dead");
    assert!(dead.last_error.as_deref().is_some_and(|e| e.contains("nowhere")), "{dead:?}");
    assert_eq!(row(db, f.pending).await.status, "pending");
    f
}

/// A dispatcher at the fixed test time with no platform clients (WeCom rows are fatal).
fn dispatcher(db: &Db) -> Dispatcher {
    dispatcher_at(db, Clock::fixed(t0()))
}

fn dispatcher_at(db: &Db, clock: Clock) -> Dispatcher {
    Dispatcher::new(db.clone(), clock, "test", Senders::default(), DispatchConfig::default())
}

async fn all(db: &Db) -> Vec<OutboxRow> {
    let mut tx = db.begin_read().await.expect("begin");
    let rows = store::list(&mut tx, "", 1000).await.expect("list");
    tx.commit().await.expect("commit");
    rows
}

async fn row(db: &Db, id: i64) -> OutboxRow {
    let mut tx = db.begin_read().await.expect("begin");
    let row = store::by_id(&mut tx, id).await.expect("by_id").unwrap_or_else(|| panic!("no outbox row {id}"));
    tx.commit().await.expect("commit");
    row
}

fn ids(v: &Value) -> Vec<i64> {
    v["messages"].as_array().expect("messages array").iter().map(|m| m["id"].as_i64().expect("id")).collect()
}

// --- HTTP -------------------------------------------------------------------------------------

async fn api_lists_messages_with_counts(db: Db) {
    let f = fixture(&db).await;
    let server = Server::start(settings(), db.clone()).await;

    let r = server.get("/api/outbox").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["counts"], json!({ "pending": 1, "sent": 1, "dead": 1, "dropped": 0 }), "{v}");
    assert_eq!(ids(&v), vec![f.pending, f.dead, f.sent], "newest first: {v}");
    let dead = &v["messages"][1];
    assert_eq!(dead["status"], "dead");
    assert_eq!((dead["platform"].as_str(), dead["app"].as_str()), (Some("wecom"), Some("nowhere")), "{dead}");
    assert_eq!(dead["attempts"], 1);
    assert!(dead["last_error"].as_str().is_some_and(|e| e.contains("nowhere")), "{dead}");
    let body: Value = serde_json::from_str(v["messages"][2]["body"].as_str().unwrap_or_default()).expect("body JSON");
    assert_eq!(body["text"], SENT_TEXT);

    let v = server.get("/api/outbox?status=dead").await.json();
    assert_eq!(ids(&v), vec![f.dead], "{v}");
    assert_eq!(v["counts"]["sent"], 1, "counts are over all statuses: {v}");
    let v = server.get("/api/outbox?status=dropped").await.json();
    assert_eq!(ids(&v), Vec::<i64>::new(), "{v}");
    let v = server.get("/api/outbox?status=&limit=1").await.json();
    assert_eq!(ids(&v), vec![f.pending], "{v}");
    let v = server.get("/api/outbox?limit=100000").await.json();
    assert_eq!(ids(&v).len(), 3, "a limit over the maximum is capped: {v}");

    server.get("/api/outbox?status=bogus").await.assert_error(400, "bad_status");
    server.get("/api/outbox?status=DEAD").await.assert_error(400, "bad_status");
    server.get("/api/outbox?limit=0").await.assert_error(400, "bad_limit");
    server.get("/api/outbox?limit=lots").await.assert_error(400, "bad_query");
    // Listing changes nothing.
    assert_eq!(
        [row(&db, f.sent).await.status, row(&db, f.dead).await.status, row(&db, f.pending).await.status],
        ["sent", "dead", "pending"]
    );
    server.stop().await;
}

async fn api_retries_dead_and_dropped_messages_only(db: Db) {
    let f = fixture(&db).await;
    let server = Server::start(settings(), db.clone()).await;

    // Sent and pending messages are not retried; nothing changes.
    let r = server.post(&format!("/api/outbox/{}/retry", f.sent), &json!({})).await;
    r.assert_error(409, "conflict");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("is sent")), "{}", r.body);
    assert_eq!(row(&db, f.sent).await.status, "sent");
    server.post(&format!("/api/outbox/{}/retry", f.pending), &json!({})).await.assert_error(409, "conflict");
    assert_eq!(row(&db, f.pending).await.next_attempt_at, t0() + Duration::hours(1));
    // Missing or malformed ids.
    server.post("/api/outbox/999999/retry", &json!({})).await.assert_error(404, "not_found");
    server.post("/api/outbox/abc/retry", &json!({})).await.assert_error(400, "bad_id");
    // Only POST.
    server.get(&format!("/api/outbox/{}/retry", f.dead)).await.assert_error(405, "method_not_allowed");
    assert_eq!(row(&db, f.dead).await.status, "dead");

    // The dead message goes back to the queue, due now, with a fresh attempt count.
    let r = server.post(&format!("/api/outbox/{}/retry", f.dead), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["id"].as_i64(), v["status"].as_str(), v["attempts"].as_i64()),
        (Some(f.dead), Some("pending"), Some(0))
    );
    let dead = row(&db, f.dead).await;
    assert_eq!((dead.status.as_str(), dead.attempts, dead.next_attempt_at), ("pending", 0, t0()));
    // A second retry finds it pending.
    server.post(&format!("/api/outbox/{}/retry", f.dead), &json!({})).await.assert_error(409, "conflict");
    assert_eq!(row(&db, f.dead).await.status, "pending");

    // The dispatcher takes it again (and, the app still missing, dead-letters it again).
    let report = dispatcher(&db).drain().await.expect("drain");
    assert_eq!((report.claimed, report.dead), (1, 1), "{report:?}");
    assert_eq!(row(&db, f.dead).await.status, "dead");
    server.stop().await;
}

async fn api_drops_pending_and_dead_messages_only(db: Db) {
    let f = fixture(&db).await;
    let server = Server::start(settings(), db.clone()).await;

    let r = server.post(&format!("/api/outbox/{}/drop", f.sent), &json!({})).await;
    r.assert_error(409, "conflict");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("is sent")), "{}", r.body);
    assert_eq!(row(&db, f.sent).await.status, "sent");
    server.post("/api/outbox/999999/drop", &json!({})).await.assert_error(404, "not_found");

    for id in [f.pending, f.dead] {
        let r = server.post(&format!("/api/outbox/{id}/drop"), &json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((r.json()["id"].as_i64(), r.json()["status"].as_str()), (Some(id), Some("dropped")));
        assert_eq!(row(&db, id).await.status, "dropped");
    }
    // Dropped twice: refused, still dropped.
    let r = server.post(&format!("/api/outbox/{}/drop", f.pending), &json!({})).await;
    r.assert_error(409, "conflict");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("is dropped")), "{}", r.body);
    let v = server.get("/api/outbox").await.json();
    assert_eq!(v["counts"], json!({ "pending": 0, "sent": 1, "dead": 0, "dropped": 2 }), "{v}");

    // A dropped message is not sent, even when due.
    let report = dispatcher(&db).drain().await.expect("drain");
    assert_eq!(report.claimed, 0, "{report:?}");
    assert_eq!(row(&db, f.pending).await.status, "dropped");

    // Retried, it is due now and delivered to the console.
    let r = server.post(&format!("/api/outbox/{}/retry", f.pending), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(row(&db, f.pending).await.status, "pending");
    let report = dispatcher(&db).drain().await.expect("drain");
    assert_eq!((report.claimed, report.sent), (1, 1), "{report:?}");
    assert_eq!(row(&db, f.pending).await.status, "sent");
    let mut tx = db.begin_read().await.expect("begin");
    let pushed = chatcrm::store::inbox::pushes_after(&mut tx, f.r2.id, 0, 100).await.expect("pushes");
    tx.commit().await.expect("commit");
    assert_eq!(pushed.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), [PENDING_TEXT]);
    server.stop().await;
}

both_backends!(
    api_lists_messages_with_counts,
    api_retries_dead_and_dropped_messages_only,
    api_drops_pending_and_dead_messages_only,
);

/// No login: served exactly when the console is.
#[tokio::test]
async fn api_is_not_served_where_the_console_is_not() {
    let t = TestDb::sqlite().await;
    let f = fixture(&t.db).await;
    let public = Settings { listen: "0.0.0.0:0".into(), ..settings() };
    for s in [public.clone(), Settings { console_enabled: false, ..settings() }] {
        let server = Server::start(s, t.db.clone()).await;
        let port = server.addr.port();
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        server.send(server.client.get(url("/api/outbox"))).await.assert_error(404, "not_found");
        let r = server.send(server.client.post(url(&format!("/api/outbox/{}/retry", f.dead)))).await;
        r.assert_error(404, "not_found");
        let r = server.send(server.client.post(url(&format!("/api/outbox/{}/drop", f.pending)))).await;
        r.assert_error(404, "not_found");
        server.stop().await;
    }
    assert_eq!(row(&t.db, f.dead).await.status, "dead");
    assert_eq!(row(&t.db, f.pending).await.status, "pending");

    let allowed = Settings { console_allow_remote: true, ..public };
    let server = Server::start(allowed, t.db.clone()).await;
    let port = server.addr.port();
    let r = server.send(server.client.get(format!("http://127.0.0.1:{port}/api/outbox"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.json()).len(), 3, "{}", r.body);
    server.stop().await;
}

// --- CLI (SQLite) -----------------------------------------------------------------------------

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The binary against `url`, with no other `CHATCRM_*` variable and no backtraces.
fn chatcrm(dir: &std::path::Path, url: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CHATCRM_") || matches!(k.as_ref(), "RUST_LOG" | "RUST_BACKTRACE" | "RUST_LIB_BACKTRACE") {
            cmd.env_remove(&key);
        }
    }
    let out = cmd.env("NO_COLOR", "1").env("CHATCRM_DATABASE_URL", url).output().expect("run chatcrm");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct CliDb {
    dir: tempfile::TempDir,
    url: String,
    db: Db,
}

impl CliDb {
    async fn new() -> (Self, Fixture) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let db = Db::connect(&DbOptions::new(&url)).await.expect("open sqlite");
        db.migrate().await.expect("migrate");
        let f = fixture(&db).await;
        (Self { dir, url, db }, f)
    }

    fn run(&self, args: &[&str]) -> Out {
        chatcrm(self.dir.path(), &self.url, args)
    }

    fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, Some(0), "chatcrm {args:?}: {out:?}");
        out
    }

    /// Runs, asserting exit code `code` and an error naming `needle`.
    fn fails(&self, args: &[&str], code: i32, needle: &str) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, Some(code), "chatcrm {args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "chatcrm {args:?}: stderr lacks {needle:?}: {out:?}");
        out
    }
}

#[tokio::test]
async fn cli_lists_messages() {
    let (c, f) = CliDb::new().await;

    let out = c.ok(&["outbox", "list"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "header, 3 rows, counts: {}", out.stdout);
    let line_of = |id: i64| {
        lines.iter().find(|l| l.split_whitespace().next() == Some(&id.to_string())).copied().unwrap_or_default()
    };
    let sent = line_of(f.sent);
    assert!(sent.contains("sent") && sent.contains("reminder") && sent.contains("console"), "{sent}");
    assert!(sent.contains("Reminder: call Haier"), "first line of the text: {sent}");
    assert!(!out.stdout.contains("second line"), "only the first line: {}", out.stdout);
    let dead = line_of(f.dead);
    assert!(dead.contains("dead") && dead.contains("wecom/nowhere") && dead.contains("zhangsan"), "{dead}");
    assert!(dead.contains("no WeCom app") && dead.contains("Weekly digest"), "{dead}");
    let pending = line_of(f.pending);
    assert!(pending.contains("pending") && pending.contains("2026-11-24 03:00:00"), "next attempt: {pending}");
    assert!(pending.contains("跟进 海尔智家") && pending.contains('…'), "long text cut: {pending}");
    assert!(!pending.contains(PENDING_TEXT), "long text cut: {pending}");
    assert_eq!([lines[1], lines[2], lines[3]], [pending, dead, sent], "newest first");
    assert_eq!(lines[4], "1 pending, 1 sent, 1 dead, 0 dropped");

    let out = c.ok(&["outbox", "list", "--status", "dead"]);
    let rows: Vec<&str> = out.stdout.lines().filter(|l| l.contains("reminder")).collect();
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert!(rows[0].trim_start().starts_with(&f.dead.to_string()), "{}", out.stdout);

    let out = c.ok(&["outbox", "list", "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout));
    let got: Vec<(i64, &str)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| (r["id"].as_i64().unwrap_or_default(), r["status"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(got, vec![(f.pending, "pending"), (f.dead, "dead"), (f.sent, "sent")]);
    let out = c.ok(&["outbox", "list", "--json", "--status", "sent", "--limit", "5"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["id"].as_i64(), Some(f.sent), "{v}");
    let out = c.ok(&["outbox", "list", "--json", "--limit", "1"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v[0]["id"].as_i64(), Some(f.pending), "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");

    // Usage errors: clap's exit code 2, naming the value and the choices.
    let out = c.fails(&["outbox", "list", "--status", "bogus"], 2, "bogus");
    assert!(out.stderr.contains("pending, sent, dead, dropped"), "{}", out.stderr);
    c.fails(&["outbox", "list", "--limit", "0"], 2, "at least 1");
    assert_eq!(all(&c.db).await.len(), 3);
}

#[tokio::test]
async fn cli_retries_and_drops() {
    let (c, f) = CliDb::new().await;
    let status = async |id: i64| row(&c.db, id).await.status;

    // Refusals exit 1 and change nothing.
    let msg = format!("message {} is sent; only dead or dropped messages can be retried", f.sent);
    c.fails(&["outbox", "retry", &f.sent.to_string()], 1, &msg);
    assert_eq!(status(f.sent).await, "sent");
    let msg = format!("message {} is pending; only dead or dropped messages can be retried", f.pending);
    c.fails(&["outbox", "retry", &f.pending.to_string()], 1, &msg);
    c.fails(&["outbox", "retry", "999999"], 1, "no outbox message 999999");
    let msg = format!("message {} is sent; only pending or dead messages can be dropped", f.sent);
    c.fails(&["outbox", "drop", &f.sent.to_string()], 1, &msg);
    assert_eq!(status(f.sent).await, "sent");
    c.fails(&["outbox", "drop", "999999"], 1, "no outbox message 999999");
    c.fails(&["outbox", "retry"], 2, "<ID|--dead>");
    c.fails(&["outbox", "retry", &f.dead.to_string(), "--dead"], 2, "cannot be used with");
    assert_eq!(status(f.dead).await, "dead");

    // Every dead message back in the queue, with a fresh attempt count.
    let out = c.ok(&["outbox", "retry", "--dead"]);
    assert_eq!(out.stdout.trim(), "requeued 1 dead message", "{out:?}");
    let dead = row(&c.db, f.dead).await;
    assert_eq!((dead.status.as_str(), dead.attempts), ("pending", 0));
    let out = c.ok(&["outbox", "retry", "--dead"]);
    assert_eq!(out.stdout.trim(), "requeued 0 dead messages", "{out:?}");

    // Pending → dropped; twice is refused.
    let id = f.dead.to_string();
    let out = c.ok(&["outbox", "drop", &id]);
    assert_eq!(out.stdout.trim(), format!("dropped message {id}"));
    assert_eq!(status(f.dead).await, "dropped");
    let msg = format!("message {id} is dropped; only pending or dead messages can be dropped");
    c.fails(&["outbox", "drop", &id], 1, &msg);
    assert_eq!(status(f.dead).await, "dropped");
    // `retry --dead` leaves dropped messages alone; `retry ID` takes them back.
    let out = c.ok(&["outbox", "retry", "--dead"]);
    assert_eq!(out.stdout.trim(), "requeued 0 dead messages", "{out:?}");
    assert_eq!(status(f.dead).await, "dropped");
    let out = c.ok(&["outbox", "retry", &id]);
    assert!(out.stdout.contains(&format!("requeued message {id}")), "{out:?}");
    assert_eq!(status(f.dead).await, "pending");

    // A dead message can be dropped directly. (The CLI requeues as of the real time.)
    let report = dispatcher_at(&c.db, Clock::system()).drain().await.expect("drain");
    // (The fixture's pending message, due an hour after the test time, goes out as well.)
    assert_eq!((report.dead, report.sent), (1, 1), "{report:?}");
    assert_eq!(status(f.dead).await, "dead");
    c.ok(&["outbox", "drop", &id]);
    assert_eq!(status(f.dead).await, "dropped");

    let out = c.ok(&["outbox", "list"]);
    assert!(out.stdout.ends_with("0 pending, 2 sent, 0 dead, 1 dropped\n"), "{}", out.stdout);
    assert_eq!(status(f.pending).await, "sent");
    c.db.close().await;
}
