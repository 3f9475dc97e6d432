//! A local stand-in for Feishu's open API, for tests and demos (`chatcrm feishu mock`).
//!
//! - `POST /open-apis/auth/v3/tenant_access_token/internal` checks [`APP_ID`]/[`APP_SECRET`]
//!   (wrong → 10014) and hands out a token with `expire`; like Feishu it returns the same token
//!   while more than 30 minutes of it remain.
//! - `POST /open-apis/im/v1/messages?receive_id_type=…` and `POST /open-apis/im/v1/messages/{id}/reply`
//!   check the bearer token (missing → 99991661, unknown, expired or revoked → 99991663), the
//!   `content` (a JSON *string*, else 230001), the receiver ([`MockFeishu::mark_invalid`] → 230001),
//!   allow 5 messages per second per receiver (beyond: HTTP 429 with 99991400), and drop a request
//!   whose `uuid` was accepted before (answered with the first message id, not recorded again).
//! - `POST /open-apis/im/v1/images` takes a multipart `image_type=message` + `image` upload.
//! - `POST /open-apis/bot/v2/hook/{hook}` checks the `sign` of hooks registered with a secret
//!   (19021 when wrong or over an hour old) and allows 5 per second per hook (11232).
//!
//! [`MockFeishu::script`] queues faults for the next requests (all but the token endpoint):
//! [`Fault::Code`] answers that code (HTTP 429 for rate limits, 400 otherwise), [`Fault::Http`]
//! that status with an HTML body, [`Fault::Delay`] waits and then handles the request normally
//! (message sends run detached, so after a client timeout the message *is* recorded, as on the
//! real service, and the resend is dropped by its `uuid`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::Credentials;
use super::crypto;

pub const APP_ID: &str = "cli_mock_a1b2c3d4";
pub const APP_SECRET: &str = "mock-feishu-secret-Q7w8E9";
pub const PER_RECEIVER_PER_SECOND: usize = 5;
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(7200);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Code(i64),
    Http(u16),
    Delay(Duration),
}

/// One message the mock accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `open_id:ou_…`, `chat_id:oc_…`, `reply:om_…` or `hook:<hook>`.
    pub to: String,
    pub msg_type: String,
    /// The content object (parsed from the string `im/v1/messages` carries; the webhook's
    /// `content` or `card` object).
    pub content: Value,
    pub uuid: Option<String>,
    pub message_id: String,
}

impl Received {
    /// `content.text` of a text message.
    pub fn text(&self) -> Option<&str> {
        self.content.get("text")?.as_str()
    }

    /// The markdown of a card with one `lark_md` block, or a card's description.
    pub fn markdown(&self) -> Option<&str> {
        self.content.pointer("/elements/0/text/content")?.as_str()
    }

    /// What a user reads: the text, or the card's markdown.
    pub fn words(&self) -> String {
        self.text().or_else(|| self.markdown()).unwrap_or_default().to_string()
    }
}

struct State_ {
    token_ttl: Duration,
    tokens: HashMap<String, (Instant, bool)>,
    current: Option<String>,
    token_fetches: usize,
    attempts: usize,
    issued: u64,
    faults: VecDeque<Fault>,
    received: Vec<Received>,
    uuids: HashMap<String, String>,
    duplicates_dropped: usize,
    windows: HashMap<String, VecDeque<Instant>>,
    rate_limited: usize,
    invalid: HashSet<String>,
    hooks: HashMap<String, Option<String>>,
    uploads: HashMap<String, Vec<u8>>,
}

type Shared = Arc<Mutex<State_>>;

fn lock(s: &Shared) -> MutexGuard<'_, State_> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct MockFeishu {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockFeishu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockFeishu").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MockFeishu {
    /// Start on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// If no local port can be bound (a test cannot go on without it); use [`MockFeishu::bind`].
    pub async fn start() -> Self {
        match Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await {
            Ok(m) => m,
            Err(e) => panic!("mock Feishu cannot bind 127.0.0.1:0: {e}"),
        }
    }

    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(State_ {
            token_ttl: DEFAULT_TOKEN_TTL,
            tokens: HashMap::new(),
            current: None,
            token_fetches: 0,
            attempts: 0,
            issued: 0,
            faults: VecDeque::new(),
            received: Vec::new(),
            uuids: HashMap::new(),
            duplicates_dropped: 0,
            windows: HashMap::new(),
            rate_limited: 0,
            invalid: HashSet::new(),
            hooks: HashMap::new(),
            uploads: HashMap::new(),
        }));
        let app = Router::new()
            .route("/open-apis/auth/v3/tenant_access_token/internal", post(token))
            .route("/open-apis/im/v1/messages", post(send))
            .route("/open-apis/im/v1/messages/{message_id}/reply", post(reply))
            .route("/open-apis/im/v1/images", post(upload))
            .route("/open-apis/bot/v2/hook/{hook}", post(hook))
            .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
            .with_state(state.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "mock Feishu stopped with an error");
            }
        });
        Ok(Self { addr, state, shutdown: Some(shutdown), server: Some(server) })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn credentials() -> Credentials {
        Credentials { app_id: APP_ID.into(), app_secret: APP_SECRET.into() }
    }

    /// Every accepted message, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// The bytes of an uploaded image by its key.
    pub fn image(&self, image_key: &str) -> Option<Vec<u8>> {
        lock(&self.state).uploads.get(image_key).cloned()
    }

    pub fn uploads(&self) -> usize {
        lock(&self.state).uploads.len()
    }

    pub fn token_fetches(&self) -> usize {
        lock(&self.state).token_fetches
    }

    /// Requests to every endpoint but the token one, whatever their answer.
    pub fn attempts(&self) -> usize {
        lock(&self.state).attempts
    }

    pub fn duplicates_dropped(&self) -> usize {
        lock(&self.state).duplicates_dropped
    }

    /// Requests refused for the 5-per-second limit.
    pub fn rate_limited(&self) -> usize {
        lock(&self.state).rate_limited
    }

    pub fn script(&self, faults: Vec<Fault>) {
        lock(&self.state).faults = faults.into();
    }

    pub fn set_token_ttl(&self, ttl: Duration) {
        lock(&self.state).token_ttl = ttl;
    }

    /// Revokes every token issued so far (answered 99991663); the next fetch gets a new one.
    pub fn expire_tokens(&self) {
        let mut s = lock(&self.state);
        for t in s.tokens.values_mut() {
            t.1 = true;
        }
        s.current = None;
    }

    /// Receivers (`open_id`, `chat_id`, reply message ids) answered 230001.
    pub fn mark_invalid(&self, id: &str) {
        lock(&self.state).invalid.insert(id.to_string());
    }

    /// A custom bot `hook`, checking signatures when `secret` is given.
    pub fn add_hook(&self, hook: &str, secret: Option<&str>) {
        lock(&self.state).hooks.insert(hook.to_string(), secret.map(str::to_string));
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

impl Drop for MockFeishu {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn answer(status: StatusCode, code: i64, msg: &str, data: Value) -> Response {
    (status, axum::Json(json!({ "code": code, "msg": msg, "data": data }))).into_response()
}

fn error(code: i64, msg: &str) -> Response {
    let status = if code == 99991400 { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::BAD_REQUEST };
    answer(status, code, msg, json!({}))
}

async fn token(State(state): State<Shared>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = lock(&state);
    s.token_fetches += 1;
    if v.get("app_id").and_then(Value::as_str) != Some(APP_ID) {
        return error(10003, "invalid app_id");
    }
    if v.get("app_secret").and_then(Value::as_str) != Some(APP_SECRET) {
        return error(10014, "app secret invalid");
    }
    let now = Instant::now();
    let ttl = s.token_ttl;
    let reuse = s.current.clone().and_then(|t| {
        let (exp, revoked) = *s.tokens.get(&t)?;
        (!revoked && exp.saturating_duration_since(now) > Duration::from_secs(1800)).then_some((t, exp))
    });
    let (value, expires) = match reuse {
        Some(r) => r,
        None => {
            s.issued += 1;
            let t = format!("t-mock-{}-{}", s.issued, rand::random::<u32>());
            s.tokens.insert(t.clone(), (now + ttl, false));
            s.current = Some(t.clone());
            (t, now + ttl)
        }
    };
    let expire = expires.saturating_duration_since(now).as_secs().max(1);
    (StatusCode::OK, axum::Json(json!({ "code": 0, "msg": "ok", "tenant_access_token": value, "expire": expire })))
        .into_response()
}

/// Faults first, then the token. `None` = go on.
async fn gate(state: &Shared, headers: &HeaderMap, needs_token: bool) -> Option<Response> {
    let fault = {
        let mut s = lock(state);
        s.attempts += 1;
        s.faults.pop_front()
    };
    match fault {
        Some(Fault::Code(code)) => return Some(error(code, "scripted fault")),
        Some(Fault::Http(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Some((status, [(header::CONTENT_TYPE, "text/html")], "<html>gateway</html>").into_response());
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if !needs_token {
        return None;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(bearer) = bearer else { return Some(error(99991661, "missing access token")) };
    let s = lock(state);
    match s.tokens.get(&bearer) {
        Some((exp, false)) if Instant::now() < *exp => None,
        _ => Some(error(99991663, "tenant access token invalid")),
    }
}

/// The 5-per-second window of `key`; true when over it.
fn over_limit(s: &mut State_, key: &str) -> bool {
    let now = Instant::now();
    let w = s.windows.entry(key.to_string()).or_default();
    while w.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
        w.pop_front();
    }
    if w.len() >= PER_RECEIVER_PER_SECOND {
        s.rate_limited += 1;
        return true;
    }
    w.push_back(now);
    false
}

fn accept(state: &Shared, to: String, receiver: &str, body: &Value) -> Response {
    let msg_type = body.get("msg_type").and_then(Value::as_str).unwrap_or_default().to_string();
    if !matches!(msg_type.as_str(), "text" | "post" | "image" | "interactive" | "file" | "share_chat") {
        return error(230001, "invalid msg_type");
    }
    // `content` is a JSON string in im/v1/messages (pitfall 14).
    let Some(content) = body.get("content").and_then(Value::as_str).and_then(|c| serde_json::from_str::<Value>(c).ok())
    else {
        return error(230001, "content must be a JSON string");
    };
    let mut s = lock(state);
    if s.invalid.contains(receiver) {
        return error(230001, "invalid receive_id");
    }
    if msg_type == "image" {
        let key = content.get("image_key").and_then(Value::as_str).unwrap_or_default();
        if !s.uploads.contains_key(key) {
            return error(234001, "invalid image_key");
        }
    }
    let uuid = body.get("uuid").and_then(Value::as_str).filter(|u| !u.is_empty()).map(str::to_string);
    if let Some(u) = &uuid
        && let Some(id) = s.uuids.get(u).cloned()
    {
        s.duplicates_dropped += 1;
        return answer(StatusCode::OK, 0, "success", json!({ "message_id": id }));
    }
    if over_limit(&mut s, &to) {
        return error(99991400, "request trigger frequency limit");
    }
    s.issued += 1;
    let message_id = format!("om_mock_{}", s.issued);
    if let Some(u) = &uuid {
        s.uuids.insert(u.clone(), message_id.clone());
    }
    s.received.push(Received { to, msg_type, content, uuid, message_id: message_id.clone() });
    answer(StatusCode::OK, 0, "success", json!({ "message_id": message_id }))
}

/// Handled in a task of its own: a client that gives up (a timeout) does not cancel it, so the
/// message is recorded all the same, as on the real service.
async fn detached(work: impl std::future::Future<Output = Response> + Send + 'static) -> Response {
    match tokio::spawn(work).await {
        Ok(r) => r,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn send(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    detached(send_inner(state, q, headers, body)).await
}

async fn send_inner(state: Shared, q: HashMap<String, String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = gate(&state, &headers, true).await {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return error(230001, "body is not JSON") };
    let id_type = q.get("receive_id_type").map(String::as_str).unwrap_or_default();
    if !matches!(id_type, "open_id" | "user_id" | "union_id" | "email" | "chat_id") {
        return error(99992402, "receive_id_type is invalid");
    }
    let receiver = body.get("receive_id").and_then(Value::as_str).unwrap_or_default().to_string();
    if receiver.is_empty() {
        return error(99992402, "receive_id is required");
    }
    accept(&state, format!("{id_type}:{receiver}"), &receiver, &body)
}

async fn reply(
    State(state): State<Shared>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    detached(reply_inner(state, message_id, headers, body)).await
}

async fn reply_inner(state: Shared, message_id: String, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = gate(&state, &headers, true).await {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return error(230001, "body is not JSON") };
    accept(&state, format!("reply:{message_id}"), &message_id, &body)
}

async fn upload(State(state): State<Shared>, headers: HeaderMap, mut form: Multipart) -> Response {
    if let Some(r) = gate(&state, &headers, true).await {
        return r;
    }
    let (mut kind, mut bytes) = (None, None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name() {
            Some("image_type") => kind = field.text().await.ok(),
            Some("image") => bytes = field.bytes().await.ok(),
            _ => {}
        }
    }
    if kind.as_deref() != Some("message") {
        return error(234002, "image_type must be message");
    }
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else { return error(234006, "image is empty") };
    let mut s = lock(&state);
    s.issued += 1;
    let key = format!("img_mock_{}", s.issued);
    s.uploads.insert(key.clone(), bytes.to_vec());
    answer(StatusCode::OK, 0, "success", json!({ "image_key": key }))
}

async fn hook(State(state): State<Shared>, Path(hook): Path<String>, body: Bytes) -> Response {
    let empty = HeaderMap::new();
    if let Some(r) = gate(&state, &empty, false).await {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return error(9499, "bad request") };
    let mut s = lock(&state);
    let Some(secret) = s.hooks.get(&hook).cloned() else {
        return error(19001, "param invalid: incoming webhook access token invalid");
    };
    if let Some(secret) = secret {
        let ts = body.get("timestamp").and_then(Value::as_str).and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
        let sign = body.get("sign").and_then(Value::as_str).unwrap_or_default();
        let fresh = chrono::Utc::now().timestamp().abs_diff(ts) <= 3600;
        if !fresh || !crypto::same(sign, &crypto::bot_sign(ts, &secret)) {
            return error(19021, "sign match fail or timestamp is not within one hour from current time");
        }
    }
    let to = format!("hook:{hook}");
    if over_limit(&mut s, &to) {
        return error(11232, "frequency limited");
    }
    let msg_type = body.get("msg_type").and_then(Value::as_str).unwrap_or_default().to_string();
    // Webhooks take `content` (or `card`) as an object, not a string.
    let content = if msg_type == "interactive" { body.get("card") } else { body.get("content") };
    let Some(content) = content.filter(|c| c.is_object()).cloned() else {
        return error(9499, "content must be an object");
    };
    s.issued += 1;
    let message_id = format!("om_hook_{}", s.issued);
    s.received.push(Received { to, msg_type, content, uuid: None, message_id });
    answer(StatusCode::OK, 0, "success", json!({}))
}
