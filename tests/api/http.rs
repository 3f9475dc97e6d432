//! The HTTP edge over a real socket: console endpoints, JSON errors, body limit, health checks and
//! request ids. Also a few requests through `router(state).oneshot(..)` where a socket cannot
//! produce the request (a body without Content-Length).

use super::helpers::*;
use crate::both_backends;

use std::net::SocketAddr;
use std::sync::Arc;

use chatcrm::clock::Clock;
use chatcrm::config::Settings;
use chatcrm::crm;
use chatcrm::startup::{Application, StartupError};
use chatcrm::store::Db;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The console org the demo seed creates.
pub const ORG: &str = "演示公司";
pub const HAIER: &str = "海尔智家股份有限公司";

/// Server settings for tests: any free port, the demo org as the console org.
/// Test server settings. The scheduler is off unless a test turns it on: it would push the demo
/// org's overdue reminders into consoles that tests expect empty.
pub fn settings() -> Settings {
    let mut s = Settings { listen: "127.0.0.1:0".into(), console_org: ORG.into(), ..Settings::default() };
    s.schedule.enabled = false;
    s
}

/// Seeds the demo org at the fixed test time (committed).
pub async fn seed_demo(db: &Db) {
    let mut tx = db.begin().await.expect("begin");
    chatcrm::demo::seed(&mut tx, ORG, "Asia/Shanghai", t0()).await.expect("seed demo");
    tx.commit().await.expect("commit demo");
}

/// Rows in `table` (a fixed list of names).
pub async fn count(db: &Db, table: &'static str) -> i64 {
    let sql = match table {
        "activities" => "SELECT COUNT(*) FROM activities",
        "inbox" => "SELECT COUNT(*) FROM inbox",
        "console_pushes" => "SELECT COUNT(*) FROM console_pushes",
        other => panic!("count: unknown table {other}"),
    };
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
    }
}

/// `last_contacted_at` of the customer named `name`.
pub async fn last_contacted(db: &Db, name: &str) -> Option<DateTime<Utc>> {
    let sql = "SELECT last_contacted_at FROM customers WHERE name = $1";
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(name).fetch_one(p).await.expect("customer"),
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(name).fetch_one(p).await.expect("customer"),
    }
}

/// A server on a free port, stopped through a oneshot.
pub struct Server {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StartupError>>>,
}

/// A response read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the uniform JSON error shape with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "content-type {ct}: {}", self.body);
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "error without a message: {v}");
    }
}

pub fn client() -> reqwest::Client {
    chatcrm::install_tls_provider();
    // No proxy: the tests talk to 127.0.0.1 whatever the environment says.
    reqwest::Client::builder().no_proxy().build().expect("client")
}

impl Server {
    pub async fn start(settings: Settings, db: Db) -> Self {
        Self::start_with_clock(settings, db, Clock::fixed(t0())).await
    }

    /// Like [`Server::start`], on a clock the test moves.
    pub async fn start_with_clock(settings: Settings, db: Db, clock: Clock) -> Self {
        let app = Application::build(settings, db, clock).await.expect("build app");
        let addr = app.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self { addr, client: client(), shutdown: Some(tx), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends the request and checks the one header every response must carry.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.expect("body");
        let id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(!id.is_empty(), "response {status} without x-request-id: {body}");
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<String>) -> Resp {
        let req = self.client.post(self.url(path)).header("content-type", "application/json").body(body.into());
        self.send(req).await
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// The server task, to await after [`Server::signal_shutdown`].
    pub fn take_task(&mut self) -> JoinHandle<Result<(), StartupError>> {
        self.task.take().expect("server task already taken")
    }

    /// Shuts down and asserts the server stopped cleanly.
    pub async fn stop(mut self) {
        self.signal_shutdown();
        let task = self.take_task();
        let res = tokio::time::timeout(std::time::Duration::from_secs(60), task).await;
        let res = res.expect("server did not stop").expect("server task panicked");
        assert!(res.is_ok(), "server returned {res:?}");
    }
}

async fn demo_server(db: &Db) -> Server {
    seed_demo(db).await;
    Server::start(settings(), db.clone()).await
}

async fn message(server: &Server, user: &str, text: &str) -> Resp {
    server.post("/console/messages", &json!({ "user": user, "text": text })).await
}

// ---------------------------------------------------------------------------------------------

async fn console_message_logs_an_activity(db: Db) {
    let server = demo_server(&db).await;
    let activities = count(&db, "activities").await;
    let before = last_contacted(&db, HAIER).await;
    assert!(before.is_some_and(|b| b < t0()), "demo contact time {before:?}");

    let r = message(&server, "lilei", "拜访 海尔 聊了二期需求").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"));
    let v = r.json();
    let reply = v["reply"].as_str().unwrap_or_default();
    assert!(reply.contains("海尔智家") && reply.contains("拜访"), "{reply}");
    assert_eq!(v["duplicate"], false, "{v}");
    let id = v["message_id"].as_str().unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "server-made message id {id:?}");

    assert_eq!(count(&db, "activities").await, activities + 1);
    assert_eq!(last_contacted(&db, HAIER).await, Some(t0()));
    server.stop().await;
}

async fn resent_message_id_is_handled_once(db: Db) {
    let server = demo_server(&db).await;
    let activities = count(&db, "activities").await;
    let inbox = count(&db, "inbox").await;
    let body = json!({ "user": "lilei", "text": "拜访 海尔 聊了二期需求", "message_id": "client-1" });

    let first = server.post("/console/messages", &body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["message_id"], "client-1");

    let second = server.post("/console/messages", &body).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let second = second.json();
    assert_eq!(second["duplicate"], true, "{second}");
    assert_eq!(second["reply"], first["reply"]);
    assert_eq!(second["message_id"], "client-1");

    assert_eq!(count(&db, "activities").await, activities + 1);
    assert_eq!(count(&db, "inbox").await, inbox + 1);

    // An empty or over-long client id is refused before anything is stored.
    let r = server.post("/console/messages", &json!({ "user": "lilei", "text": "今天", "message_id": "" })).await;
    r.assert_error(400, "bad_message_id");
    let long = "x".repeat(129);
    let r = server.post("/console/messages", &json!({ "user": "lilei", "text": "今天", "message_id": long })).await;
    r.assert_error(400, "bad_message_id");
    assert_eq!(count(&db, "inbox").await, inbox + 1);
    server.stop().await;
}

async fn bad_requests_get_json_errors(db: Db) {
    let server = demo_server(&db).await;
    let inbox = count(&db, "inbox").await;
    let activities = count(&db, "activities").await;

    // Malformed JSON.
    server.post_raw("/console/messages", r#"{"user": "lilei", "text": "#).await.assert_error(400, "bad_json");
    // Missing field (axum says 422; the console maps every body rejection to our 400).
    server.post("/console/messages", &json!({ "user": "lilei" })).await.assert_error(400, "bad_json");
    // Unknown field: the body is `deny_unknown_fields`.
    let r = server.post("/console/messages", &json!({ "user": "lilei", "text": "今天", "txt": "x" })).await;
    r.assert_error(400, "bad_json");
    // Wrong type.
    server.post("/console/messages", &json!({ "user": "lilei", "text": 5 })).await.assert_error(400, "bad_json");
    // Not declared as JSON.
    let req = server.client.post(server.url("/console/messages")).body(r#"{"user":"lilei","text":"今天"}"#);
    let r = server.send(req).await;
    r.assert_error(400, "bad_json");
    // Unknown user.
    let r = message(&server, "nobody", "今天").await;
    r.assert_error(404, "not_found");
    assert!(r.json()["message"].as_str().unwrap_or_default().contains("nobody"), "{}", r.body);
    // Empty and blank text.
    message(&server, "lilei", "").await.assert_error(400, "empty_text");
    message(&server, "lilei", " \n\t ").await.assert_error(400, "empty_text");
    // Text over the command limit.
    let long = "拜".repeat(chatcrm::command::MAX_TEXT_CHARS + 1);
    message(&server, "lilei", &long).await.assert_error(400, "text_too_long");
    // Unknown routes.
    server.get("/nope").await.assert_error(404, "not_found");
    server.post("/console/nope", &json!({})).await.assert_error(404, "not_found");

    assert_eq!(count(&db, "inbox").await, inbox, "a refused request stored a message");
    assert_eq!(count(&db, "activities").await, activities);
    server.stop().await;
}

async fn oversized_body_is_refused_and_not_stored(db: Db) {
    seed_demo(&db).await;
    let server = Server::start(Settings { body_limit_bytes: 1024, ..settings() }, db.clone()).await;
    let inbox = count(&db, "inbox").await;
    let activities = count(&db, "activities").await;

    // Just under the limit is fine.
    let ok = message(&server, "lilei", "拜访 海尔 聊了二期需求").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(count(&db, "inbox").await, inbox + 1);

    let text = format!("拜访 海尔 {}", "很".repeat(400)); // ~1.2 KB of UTF-8, under the text limit.
    let r = message(&server, "lilei", &text).await;
    assert_eq!(r.status, 413, "{}", r.body);
    r.assert_error(413, "payload_too_large");
    assert_eq!(count(&db, "inbox").await, inbox + 1, "an oversized message was stored");
    assert_eq!(count(&db, "activities").await, activities + 1);
    server.stop().await;
}

async fn health_and_readiness(db: Db) {
    let server = Server::start(settings(), db.clone()).await;
    let r = server.get("/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let r = server.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);

    db.close().await;
    server.get("/readyz").await.assert_error(503, "unavailable");
    // Liveness does not depend on the database.
    let r = server.get("/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    server.stop().await;
}

async fn every_response_carries_a_request_id(db: Db) {
    let server = demo_server(&db).await;
    // `Server::send` checks the header on every response; here: fresh ids are unique UUIDs, and a
    // client's id comes back unchanged, on success and on error alike.
    let a = server.get("/healthz").await;
    let b = server.get("/healthz").await;
    let (a, b) = (a.header("x-request-id").unwrap_or_default(), b.header("x-request-id").unwrap_or_default());
    assert!(uuid::Uuid::parse_str(a).is_ok(), "{a}");
    assert_ne!(a, b);

    for (path, status) in [("/healthz", 200), ("/nope", 404), ("/console/pushes?user=lilei&after=abc", 400)] {
        let req = server.client.get(server.url(path)).header("x-request-id", "req-42");
        let r = server.send(req).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(r.header("x-request-id"), Some("req-42"), "{path}");
    }
    let req = server
        .client
        .post(server.url("/console/messages"))
        .header("x-request-id", "req-43")
        .json(&json!({ "user": "lilei", "text": "今天" }));
    let r = server.send(req).await;
    assert_eq!((r.status, r.header("x-request-id")), (200, Some("req-43")), "{}", r.body);
    server.stop().await;
}

async fn console_page_users_and_pushes(db: Db) {
    let server = demo_server(&db).await;

    let page = server.get("/console").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap_or_default().starts_with("text/html"), "{:?}", page.headers);
    assert!(page.body.contains("chatcrm"));

    let r = server.get("/console/users").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let users = v["users"].as_array().cloned().unwrap_or_default();
    let mut handles: Vec<&str> = users.iter().filter_map(|u| u["handle"].as_str()).collect();
    handles.sort_unstable();
    assert_eq!(handles, ["admin", "hanmeimei", "lilei", "wangfang", "zhangwei"]);
    let lilei = users.iter().find(|u| u["handle"] == "lilei").cloned().unwrap_or_default();
    assert_eq!(lilei, json!({ "handle": "lilei", "name": "李雷", "role": "rep", "team": "华东一组", "org": ORG }));

    // Nothing pushed yet.
    let r = server.get("/console/pushes?user=lilei&after=0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({ "pushes": [] }));

    let mut tx = db.begin().await.expect("begin");
    let org = crm::orgs::org_by_name(&mut tx, ORG).await.expect("org");
    let lilei = crm::users::find_user(&mut tx, org.id, "lilei").await.expect("lilei");
    let zhang = crm::users::find_user(&mut tx, org.id, "zhangwei").await.expect("zhangwei");
    let id = chatcrm::platform::console::push(&mut tx, &lilei, "⏰ 回访海尔", t0()).await.expect("push");
    chatcrm::platform::console::push(&mut tx, &zhang, "not for lilei", t0()).await.expect("push");
    tx.commit().await.expect("commit");

    let r = server.get("/console/pushes?user=lilei&after=0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pushes = r.json()["pushes"].as_array().cloned().unwrap_or_default();
    assert_eq!(pushes.len(), 1, "{}", r.body);
    assert_eq!(pushes[0]["id"], id);
    assert_eq!(pushes[0]["text"], "⏰ 回访海尔");
    // `after` defaults to 0.
    let r = server.get("/console/pushes?user=lilei").await;
    assert_eq!(r.json()["pushes"].as_array().map(Vec::len), Some(1), "{}", r.body);

    let r = server.get(&format!("/console/pushes?user=lilei&after={id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({ "pushes": [] }));

    server.get("/console/pushes?user=lilei&after=abc").await.assert_error(400, "bad_query");
    server.get("/console/pushes?after=0").await.assert_error(400, "bad_query");
    server.get("/console/pushes?user=nobody").await.assert_error(404, "not_found");
    server.stop().await;
}

async fn english_message_gets_an_english_reply(db: Db) {
    let server = demo_server(&db).await;
    let activities = count(&db, "activities").await;
    let r = message(&server, "lilei", "visit haier discussed phase two").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reply = r.json()["reply"].as_str().unwrap_or_default().to_string();
    assert!(reply.starts_with("Logged visit with 海尔智家"), "{reply}");
    assert!(!reply.contains("已记录"), "{reply}");
    assert_eq!(count(&db, "activities").await, activities + 1);

    let r = message(&server, "lilei", "help").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["reply"].as_str().unwrap_or_default().contains("chatcrm commands"), "{}", r.body);
    server.stop().await;
}

async fn console_can_be_disabled(db: Db) {
    seed_demo(&db).await;
    let server = Server::start(Settings { console_enabled: false, ..settings() }, db.clone()).await;
    let inbox = count(&db, "inbox").await;
    server.get("/console").await.assert_error(404, "not_found");
    server.get("/console/users").await.assert_error(404, "not_found");
    message(&server, "lilei", "今天").await.assert_error(404, "not_found");
    assert_eq!(count(&db, "inbox").await, inbox);
    // The health checks stay.
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(server.get("/readyz").await.status, 200);
    server.stop().await;
}

both_backends!(
    console_message_logs_an_activity,
    resent_message_id_is_handled_once,
    bad_requests_get_json_errors,
    oversized_body_is_refused_and_not_stored,
    health_and_readiness,
    every_response_carries_a_request_id,
    console_page_users_and_pushes,
    english_message_gets_an_english_reply,
    console_can_be_disabled,
);

// --- Through the router without a socket ----------------------------------------------------

mod oneshot_router {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn state(db: Db, settings: Settings) -> chatcrm::http::AppState {
        let clock = Clock::fixed(t0());
        let bot = chatcrm::bot::Bot::new(db.clone(), clock.clone());
        chatcrm::http::AppState {
            db,
            bot,
            clock,
            settings: Arc::new(settings),
            wecom: Default::default(),
            dingtalk: Default::default(),
            feishu: Default::default(),
            metrics: Default::default(),
        }
    }

    async fn body_json(res: axum::response::Response) -> Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("body");
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    }

    /// A body without Content-Length (as a chunked upload arrives) is cut off at the limit while
    /// being read, and the console maps that to its JSON 413.
    #[tokio::test]
    async fn streamed_oversized_body_is_a_json_413() {
        let t = TestDb::sqlite().await;
        seed_demo(&t.db).await;
        let inbox = count(&t.db, "inbox").await;
        let app = chatcrm::http::router(state(t.db.clone(), Settings { body_limit_bytes: 1024, ..settings() }));
        let body = json!({ "user": "lilei", "text": format!("拜访 海尔 {}", "很".repeat(400)) }).to_string();
        let req = Request::post("/console/messages")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        assert!(req.headers().get("content-length").is_none());
        let res = app.oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(res.headers().get("x-request-id").is_some());
        let v = body_json(res).await;
        assert_eq!(v["code"], "payload_too_large", "{v}");
        assert_eq!(count(&t.db, "inbox").await, inbox);
    }

    #[tokio::test]
    async fn router_answers_health_and_unknown_routes() {
        let t = TestDb::sqlite().await;
        let app = chatcrm::http::router(state(t.db.clone(), settings()));
        let res = app.clone().oneshot(Request::get("/healthz").body(Body::empty()).expect("req")).await.expect("ok");
        assert_eq!(res.status(), StatusCode::OK);
        let req = Request::get("/missing").header("x-request-id", "abc").body(Body::empty()).expect("req");
        let res = app.oneshot(req).await.expect("ok");
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc"));
        assert_eq!(body_json(res).await["code"], "not_found");
    }

    /// The console was asked for an org that does not exist: a 404 JSON, not a panic.
    #[tokio::test]
    async fn missing_console_org_is_not_found() {
        let t = TestDb::sqlite().await;
        let app = chatcrm::http::router(state(t.db.clone(), settings()));
        let res = app.oneshot(Request::get("/console/users").body(Body::empty()).expect("req")).await.expect("ok");
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_json(res).await["code"], "not_found");
    }
}

// --- Errors produced by the middleware and the router itself ---------------------------------

async fn wrong_method_is_405_with_allow(db: Db) {
    let server = demo_server(&db).await;
    let r = server.get("/console/messages").await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("POST"));
    r.assert_error(405, "method_not_allowed");
    server.stop().await;
}

both_backends!(wrong_method_is_405_with_allow);

/// A request that runs past `request_timeout_secs` gets 408. The message was queued, so it is
/// still handled once the database frees up; the client's retry with the same message id then
/// gets the stored reply, and the visit exists exactly once. SQLite only: the request is held by
/// taking SQLite's write lock on another connection (see shutdown.rs).
#[tokio::test]
async fn timed_out_request_is_408_and_its_retry_is_handled_once() {
    let t = TestDb::sqlite().await;
    seed_demo(&t.db).await;
    let server = Server::start(Settings { request_timeout_secs: 1, ..settings() }, t.db.clone()).await;
    let inbox = count(&t.db, "inbox").await;
    let activities = count(&t.db, "activities").await;
    let body = json!({ "user": "lilei", "text": "拜访 海尔 聊了二期需求", "message_id": "slow-1" });

    let lock = super::shutdown::hold_write_lock(&t.url).await;
    let r = server.post("/console/messages", &body).await;
    assert_eq!(r.status, 408, "{}", r.body);
    r.assert_error(408, "timeout");
    super::shutdown::release_write_lock(lock).await;

    let r = server.post("/console/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["reply"].as_str().is_some_and(|s| s.contains("海尔智家")), "{}", r.body);
    assert_eq!(count(&t.db, "inbox").await, inbox + 1);
    assert_eq!(count(&t.db, "activities").await, activities + 1);
    server.stop().await;
}

/// The console has no login, so it is not served on a non-loopback address unless allowed.
#[tokio::test]
async fn console_is_not_served_on_a_public_address_unless_allowed() {
    let t = TestDb::sqlite().await;
    seed_demo(&t.db).await;
    let public = Settings { listen: "0.0.0.0:0".into(), ..settings() };
    let server = Server::start(public.clone(), t.db.clone()).await;
    let port = server.addr.port();
    let get = |path: &str| server.client.get(format!("http://127.0.0.1:{port}{path}"));
    server.send(get("/console/users")).await.assert_error(404, "not_found");
    assert_eq!(server.send(get("/healthz")).await.status, 200);
    server.stop().await;

    let allowed = Settings { console_allow_remote: true, ..public };
    let server = Server::start(allowed, t.db.clone()).await;
    let port = server.addr.port();
    let r = server.send(server.client.get(format!("http://127.0.0.1:{port}/console/users"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}
