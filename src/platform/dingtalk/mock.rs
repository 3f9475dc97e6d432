//! A local stand-in for DingTalk's old-style API (`oapi.dingtalk.com`), for tests and demos.
//!
//! - `GET /gettoken?appkey=&appsecret=`: checks [`APP_KEY`]/[`APP_SECRET`] (wrong → 40089, an
//!   assumed code) and hands out a token with `expires_in`; the same token again while valid.
//! - `POST /topapi/message/corpconversation/asyncsend_v2?access_token=`: token checks (missing or
//!   unknown → 40014, expired → 42001), `agent_id` ([`AGENT_ID`], else 40056, assumed), a
//!   `msg.msgtype` of text / markdown / action_card / image (an image's `media_id` must have been
//!   uploaded, else 40007, assumed). Like DingTalk, identical content to the same user is delivered
//!   once a day: a repeat answers success but is not recorded again ([`MockDingtalk::duplicates_dropped`]).
//! - `POST /media/upload?access_token=&type=image`, multipart field `media` → `media_id`.
//! - `POST /robot/send?access_token=&timestamp=&sign=`: the robot must exist ([`ROBOT_TOKEN`], else
//!   300001), the sign must match with [`ROBOT_SECRET`] and the timestamp be within an hour (else
//!   310000), and at most 20 messages a minute per robot (else 130101).
//! - `POST /robot/sendBySession?session=`: session webhooks; a session marked expired answers
//!   300001 (the real code is not documented).
//!
//! [`MockDingtalk::script`] queues faults taken, in order, by the next requests to any endpoint but
//! `gettoken`: an errcode, an HTTP status with an HTML body, or a delay before normal handling
//! (the message is then recorded even if the client stopped waiting, as DingTalk would).
//! [`MockDingtalk::received`] is what users would have seen.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{DingtalkApp, DingtalkRobot, sign};

pub const CORP_ID: &str = "ding5f3c1a0d2e4b6c8a";
pub const APP_KEY: &str = "dingmockappkey7Yk2pQ";
pub const APP_SECRET: &str = "mock-dingtalk-secret-9vX4";
pub const AGENT_ID: i64 = 2_000_001;
/// The configured robot's name in [`MockDingtalk::app`], its webhook token and signing secret.
pub const ROBOT_NAME: &str = "team";
pub const ROBOT_TOKEN: &str = "mock-robot-token-1";
pub const ROBOT_SECRET: &str = "SECmockrobotsecret0123456789";
pub const ROBOT_LIMIT_PER_MINUTE: usize = 20;
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(7200);
const SAME_CONTENT_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Errcode(i64),
    Http(u16),
    Delay(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// A work notification.
    Work,
    /// A custom group robot's webhook.
    Robot,
    /// A robot callback's session webhook.
    Session,
}

/// One message the mock accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub api: Api,
    /// `userid_list` (work), the robot's access token, or the session id.
    pub to: String,
    pub msgtype: String,
    /// The message object: `msg` of a work notification, the whole body otherwise.
    pub msg: Value,
}

impl Received {
    /// The visible text: `text.content`, `markdown.text`, or the action card's text.
    pub fn content(&self) -> Option<&str> {
        let m = &self.msg;
        m.pointer("/text/content")
            .or_else(|| m.pointer("/markdown/text"))
            .or_else(|| m.pointer("/actionCard/text"))
            .or_else(|| m.pointer("/action_card/markdown"))
            .and_then(Value::as_str)
    }
}

struct State_ {
    token_ttl: Duration,
    tokens: HashMap<String, Instant>,
    current: Option<String>,
    issued: u64,
    token_fetches: usize,
    attempts: HashMap<&'static str, usize>,
    faults: VecDeque<Fault>,
    received: Vec<Received>,
    recent: HashMap<String, Instant>,
    duplicates_dropped: usize,
    robot_limit: (usize, Duration),
    robot_windows: HashMap<String, VecDeque<Instant>>,
    throttled: usize,
    expired_sessions: HashSet<String>,
    media: HashMap<String, Vec<u8>>,
}

type Shared = Arc<Mutex<State_>>;

fn lock(s: &Shared) -> MutexGuard<'_, State_> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct MockDingtalk {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

fn errcode(code: i64, msg: &str) -> Response {
    axum::Json(json!({ "errcode": code, "errmsg": msg })).into_response()
}

fn ok(extra: Value) -> Response {
    let mut v = json!({ "errcode": 0, "errmsg": "ok" });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    axum::Json(v).into_response()
}

impl MockDingtalk {
    /// Starts on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// If no local port can be bound (a test cannot go on without it); see [`MockDingtalk::bind`].
    pub async fn start() -> Self {
        match Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await {
            Ok(m) => m,
            Err(e) => panic!("mock DingTalk cannot bind 127.0.0.1:0: {e}"),
        }
    }

    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(State_ {
            token_ttl: DEFAULT_TOKEN_TTL,
            tokens: HashMap::new(),
            current: None,
            issued: 0,
            token_fetches: 0,
            attempts: HashMap::new(),
            faults: VecDeque::new(),
            received: Vec::new(),
            recent: HashMap::new(),
            duplicates_dropped: 0,
            robot_limit: (ROBOT_LIMIT_PER_MINUTE, Duration::from_secs(60)),
            robot_windows: HashMap::new(),
            throttled: 0,
            expired_sessions: HashSet::new(),
            media: HashMap::new(),
        }));
        let app = Router::new()
            .route("/gettoken", get(gettoken))
            .route("/topapi/message/corpconversation/asyncsend_v2", post(asyncsend))
            .route("/media/upload", post(upload))
            .route("/robot/send", post(robot_send))
            .route("/robot/sendBySession", post(session_send))
            .with_state(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self { addr, state, shutdown: Some(tx), server: Some(server) })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A session webhook URL as a robot callback would carry it.
    pub fn session_url(&self, session: &str) -> String {
        format!("{}/robot/sendBySession?session={}", self.base_url(), sign::urlencode(session))
    }

    /// An app configured for this mock, with the robot [`ROBOT_NAME`].
    pub fn app(name: &str, org: &str) -> DingtalkApp {
        DingtalkApp {
            name: name.into(),
            org: org.into(),
            corp_id: CORP_ID.into(),
            app_key: APP_KEY.into(),
            app_secret: SecretString::from(APP_SECRET),
            agent_id: Some(AGENT_ID),
            event_token: None,
            event_aes_key: None,
            robots: vec![DingtalkRobot {
                name: ROBOT_NAME.into(),
                access_token: SecretString::from(ROBOT_TOKEN),
                secret: SecretString::from(ROBOT_SECRET),
            }],
        }
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    pub fn script(&self, faults: Vec<Fault>) {
        lock(&self.state).faults.extend(faults);
    }

    pub fn token_fetches(&self) -> usize {
        lock(&self.state).token_fetches
    }

    /// Requests that reached an endpoint: `work`, `upload`, `robot` or `session`.
    pub fn attempts(&self, api: &str) -> usize {
        lock(&self.state).attempts.get(api).copied().unwrap_or(0)
    }

    pub fn duplicates_dropped(&self) -> usize {
        lock(&self.state).duplicates_dropped
    }

    /// How often a robot was answered 130101.
    pub fn throttled(&self) -> usize {
        lock(&self.state).throttled
    }

    /// Every issued token stops working (42001), as after an early invalidation.
    pub fn expire_tokens(&self) {
        let mut s = lock(&self.state);
        let now = Instant::now();
        for exp in s.tokens.values_mut() {
            *exp = now;
        }
        s.current = None;
    }

    pub fn set_token_ttl(&self, ttl: Duration) {
        lock(&self.state).token_ttl = ttl;
    }

    /// The robots' limit (DingTalk: 20 a minute), e.g. a short window for tests.
    pub fn set_robot_limit(&self, max: usize, window: Duration) {
        lock(&self.state).robot_limit = (max, window);
    }

    pub fn reset_robot_windows(&self) {
        lock(&self.state).robot_windows.clear();
    }

    pub fn expire_session(&self, session: &str) {
        lock(&self.state).expired_sessions.insert(session.to_string());
    }

    pub fn image(&self, media_id: &str) -> Option<Vec<u8>> {
        lock(&self.state).media.get(media_id).cloned()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }
}

impl Drop for MockDingtalk {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs a handler to its end even when the client hangs up (hyper would drop it): a request
/// that timed out on the client's side is still delivered, as DingTalk may do.
async fn detached(work: impl std::future::Future<Output = Response> + Send + 'static) -> Response {
    tokio::spawn(work).await.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Counts the attempt and applies the next scripted fault, if any.
async fn fault(state: &Shared, api: &'static str) -> Option<Response> {
    let f = {
        let mut s = lock(state);
        *s.attempts.entry(api).or_default() += 1;
        s.faults.pop_front()
    };
    match f? {
        Fault::Errcode(code) => Some(errcode(code, "scripted fault")),
        Fault::Http(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some((status, [(header::CONTENT_TYPE, "text/html")], "<html>gateway error</html>").into_response())
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

/// 0 when the token is good, else the errcode.
fn check_token(s: &State_, q: &HashMap<String, String>) -> i64 {
    match q.get("access_token").and_then(|t| s.tokens.get(t)) {
        None => 40014,
        Some(exp) if Instant::now() >= *exp => 42001,
        Some(_) => 0,
    }
}

async fn gettoken(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = lock(&state);
    s.token_fetches += 1;
    if q.get("appkey").map(String::as_str) != Some(APP_KEY)
        || q.get("appsecret").map(String::as_str) != Some(APP_SECRET)
    {
        return errcode(40089, "不合法的appkey或appsecret");
    }
    let now = Instant::now();
    if let Some(t) = s.current.clone()
        && let Some(exp) = s.tokens.get(&t).copied()
        && now < exp
    {
        return ok(json!({ "access_token": t, "expires_in": exp.duration_since(now).as_secs() }));
    }
    s.issued += 1;
    let token = format!("mock-dt-token-{}", s.issued);
    let ttl = s.token_ttl;
    s.tokens.insert(token.clone(), now + ttl);
    s.current = Some(token.clone());
    ok(json!({ "access_token": token, "expires_in": ttl.as_secs() }))
}

async fn asyncsend(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>, body: Bytes) -> Response {
    detached(asyncsend_inner(state, q, body)).await
}

async fn asyncsend_inner(state: Shared, q: HashMap<String, String>, body: Bytes) -> Response {
    if let Some(r) = fault(&state, "work").await {
        return r;
    }
    let mut s = lock(&state);
    let code = check_token(&s, &q);
    if code != 0 {
        return errcode(code, "access_token invalid or expired");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return errcode(40035, "bad JSON") };
    if v.get("agent_id").and_then(Value::as_i64) != Some(AGENT_ID) {
        return errcode(40056, "invalid agent_id");
    }
    let users = v.get("userid_list").and_then(Value::as_str).unwrap_or_default().to_string();
    if users.is_empty() {
        return errcode(40035, "userid_list is empty");
    }
    let msg = v.get("msg").cloned().unwrap_or(Value::Null);
    let msgtype = msg.get("msgtype").and_then(Value::as_str).unwrap_or_default().to_string();
    if !matches!(msgtype.as_str(), "text" | "markdown" | "action_card" | "image") {
        return errcode(40035, "unsupported msgtype");
    }
    if msgtype == "image" {
        let id = msg.pointer("/image/media_id").and_then(Value::as_str).unwrap_or_default();
        if !s.media.contains_key(id) {
            return errcode(40007, "invalid media_id");
        }
    }
    s.issued += 1;
    let task_id = s.issued;
    let key = format!("{users}\n{msg}");
    let now = Instant::now();
    if s.recent.get(&key).is_some_and(|at| now.duration_since(*at) < SAME_CONTENT_WINDOW) {
        s.duplicates_dropped += 1;
    } else {
        s.recent.insert(key, now);
        s.received.push(Received { api: Api::Work, to: users, msgtype, msg });
    }
    ok(json!({ "task_id": task_id, "request_id": format!("req-{task_id}") }))
}

async fn upload(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    mut form: Multipart,
) -> Response {
    if let Some(r) = fault(&state, "upload").await {
        return r;
    }
    {
        let s = lock(&state);
        let code = check_token(&s, &q);
        if code != 0 {
            return errcode(code, "access_token invalid or expired");
        }
    }
    if q.get("type").map(String::as_str) != Some("image") {
        return errcode(40004, "invalid media type");
    }
    let mut bytes = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("media") {
            bytes = field.bytes().await.ok();
        }
    }
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else { return errcode(41005, "media data missing") };
    let mut s = lock(&state);
    s.issued += 1;
    let id = format!("@mock-media-{}", s.issued);
    s.media.insert(id.clone(), bytes.to_vec());
    ok(json!({ "media_id": id, "type": "image" }))
}

/// The robot message's type and body, or the errmsg of a 40035.
fn robot_message(body: &Bytes) -> Result<(String, Value), &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "bad JSON")?;
    let msgtype = v.get("msgtype").and_then(Value::as_str).unwrap_or_default().to_string();
    if !matches!(msgtype.as_str(), "text" | "markdown" | "actionCard" | "link" | "feedCard") {
        return Err("unsupported msgtype");
    }
    Ok((msgtype, v))
}

async fn robot_send(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>, body: Bytes) -> Response {
    detached(robot_send_inner(state, q, body)).await
}

async fn robot_send_inner(state: Shared, q: HashMap<String, String>, body: Bytes) -> Response {
    if let Some(r) = fault(&state, "robot").await {
        return r;
    }
    let token = q.get("access_token").cloned().unwrap_or_default();
    if token != ROBOT_TOKEN {
        return errcode(300001, "token is not exist");
    }
    let ts = q.get("timestamp").cloned().unwrap_or_default();
    let fresh = ts.parse::<i64>().is_ok_and(|ms| (chrono::Utc::now().timestamp_millis() - ms).abs() <= 3_600_000);
    // `sign` arrives URL-decoded once by the query extractor, as DingTalk decodes it.
    if !fresh || !q.get("sign").is_some_and(|s| sign::verify(&ts, ROBOT_SECRET, s)) {
        return errcode(310000, "sign not match");
    }
    let (msgtype, msg) = match robot_message(&body) {
        Ok(m) => m,
        Err(e) => return errcode(40035, e),
    };
    let mut s = lock(&state);
    let (max, window) = s.robot_limit;
    let now = Instant::now();
    let times = s.robot_windows.entry(token.clone()).or_default();
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
    if times.len() >= max {
        s.throttled += 1;
        return errcode(130101, "send too fast, exceed 20 times per minute");
    }
    times.push_back(now);
    s.received.push(Received { api: Api::Robot, to: token, msgtype, msg });
    ok(json!({}))
}

async fn session_send(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>, body: Bytes) -> Response {
    detached(session_send_inner(state, q, body)).await
}

async fn session_send_inner(state: Shared, q: HashMap<String, String>, body: Bytes) -> Response {
    if let Some(r) = fault(&state, "session").await {
        return r;
    }
    let session = q.get("session").cloned().unwrap_or_default();
    let (msgtype, msg) = match robot_message(&body) {
        Ok(m) => m,
        Err(e) => return errcode(40035, e),
    };
    let mut s = lock(&state);
    if session.is_empty() || s.expired_sessions.contains(&session) {
        return errcode(300001, "session expired");
    }
    s.received.push(Received { api: Api::Session, to: session, msgtype, msg });
    ok(json!({}))
}
