//! A local stand-in for WeCom's API (`qyapi.weixin.qq.com`), for tests and demos.
//!
//! It serves the four endpoints the push clients use, with WeCom's JSON shapes and errcodes:
//!
//! - `GET /cgi-bin/gettoken?corpid=&corpsecret=` checks the credentials ([`CORP_ID`], [`CORP_SECRET`]; wrong
//!   corpid → 40013, wrong secret → 40001) and hands out a token with `expires_in`. Like WeCom it returns the
//!   same token again while that one is valid (with the remaining lifetime). Every call is counted.
//! - `POST /cgi-bin/message/send?access_token=` checks the token (missing → 41001, unknown → 40014, expired or
//!   revoked → 42001), the agentid (40056), the msgtype (40008) and the content (44004, 41016, …), reports
//!   recipients marked invalid in `invaliduser` (all of them invalid → 81013) and those without a licence
//!   in `unlicenseduser` (errcode 0 even when nobody is left), and records each accepted message with its
//!   msgid. An `image` message must name an uploaded `media_id` (missing → 41006, unknown
//!   → 40007).
//! - `POST /cgi-bin/media/upload?access_token=&type=image` takes a multipart form whose `media` field holds
//!   the image: token checks as above, `type` other than image → 40004, no `media` field → 41005, empty →
//!   44001, over 2 MB → 40009, neither PNG nor JPEG → 40005. Accepted uploads are kept
//!   ([`MockWecom::uploads`]) and answered with a `media_id`.
//! - `POST /cgi-bin/webhook/send?key=` (group robot) allows 20 messages a minute per key and answers 45009
//!   beyond that (the errcode WeCom is believed to use, PLATFORMS.md 8); a disabled key gets 93000. An
//!   `image` message needs base64 that decodes (else 40035, a guess: WeCom's code for this is not
//!   documented) to at most 2 MB (else 40009) and whose MD5 is `image.md5` (else 301019 "media md5 not
//!   match", the code WeCom has been seen to answer).
//!
//! Faults are scripted with [`MockWecom::script`]: each of the next requests to `message/send`,
//! `media/upload` or `webhook/send` (not `gettoken`) takes the next fault, in order, before any other
//! check (sending an image is two requests: the upload, then the send):
//! [`Fault::Errcode`] answers HTTP 200 with that errcode, [`Fault::Http`] answers that status with an HTML
//! body (so `Http(200)` is a 200 whose body is not JSON), and [`Fault::Delay`] waits, then handles the
//! request normally.
//!
//! What counts as delivered: a message is recorded when the mock accepts it, which is when it answers errcode
//! 0. A delayed request is handled to the end even if the client has given up waiting, so after a client
//! timeout the message *is* recorded, and a retry is recorded a second time. That is what real WeCom may do
//! too: a request that timed out may well have been delivered. The client therefore sends
//! `enable_duplicate_check: 1`, with which WeCom drops the identical retry, and the mock imitates that: a
//! body equal (recipients, msgtype and content) to one accepted within `duplicate_check_interval` seconds
//! is answered errcode 0 but not recorded again; [`MockWecom::duplicates_dropped`] counts those. What the
//! mock records is therefore what users would see.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::AppCredentials;

/// The corp id the mock accepts.
pub const CORP_ID: &str = "ww5f3c1a0d2e4b6c8a";
/// The app secret the mock accepts.
pub const CORP_SECRET: &str = "mock-app-secret-7Yk2pQ9vX4";
/// The app's agentid; any other is answered with 40056.
pub const AGENT_ID: i64 = 1_000_002;
/// Messages the mock robot accepts per key per minute.
pub const ROBOT_LIMIT_PER_MINUTE: usize = 20;
const ROBOT_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(7200);
/// WeCom's limit for robot images; the mock applies it to uploads too.
pub const IMAGE_MAX_BYTES: usize = 2 * 1024 * 1024;

/// A scripted answer for one upcoming `message/send` or `webhook/send` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 200 with `{"errcode": N, "errmsg": …}`, e.g. 45009, -1, 60020, 81013.
    Errcode(i64),
    /// This HTTP status with a non-JSON (HTML) body. `Http(200)` is a success status with an unreadable body.
    Http(u16),
    /// Wait this long, then handle the request normally (and record it if accepted, even if the client has
    /// stopped waiting).
    Delay(Duration),
}

/// One message the mock accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `touser` of an app message; `None` for robot messages.
    pub touser: Option<String>,
    /// The webhook key of a robot message; `None` for app messages.
    pub robot_key: Option<String>,
    pub msgtype: String,
    /// The whole JSON body as sent.
    pub body: Value,
    /// The msgid the mock answered (app messages only).
    pub msgid: Option<String>,
}

impl Received {
    /// `body[msgtype].content`, for text and markdown messages.
    pub fn content(&self) -> Option<&str> {
        self.body.get(&self.msgtype)?.get("content")?.as_str()
    }

    /// `image.media_id` of an app image message.
    pub fn media_id(&self) -> Option<&str> {
        self.body.pointer("/image/media_id")?.as_str()
    }
}

/// One image the mock accepted on `media/upload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub media_id: String,
    /// The `type` query parameter (always `image` when accepted).
    pub kind: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

struct IssuedToken {
    expires_at: Instant,
    revoked: bool,
}

struct MockState {
    token_ttl: Duration,
    tokens: HashMap<String, IssuedToken>,
    current_token: Option<String>,
    token_fetches: usize,
    send_attempts: usize,
    robot_attempts: usize,
    upload_attempts: usize,
    uploads: Vec<Upload>,
    /// media_ids WeCom has forgotten ([`MockWecom::forget_media`]): answered 40007 although uploaded.
    forgotten_media: HashSet<String>,
    issued: u64,
    next_msgid: u64,
    faults: VecDeque<Fault>,
    received: Vec<Received>,
    /// Bodies accepted with `enable_duplicate_check`, and when, for dropping identical ones.
    recent_bodies: HashMap<String, Instant>,
    duplicates_dropped: usize,
    robot_windows: HashMap<String, VecDeque<Instant>>,
    invalid_users: HashSet<String>,
    unlicensed_users: HashSet<String>,
    disabled_robots: HashSet<String>,
    randomness: RandomState,
}

type Shared = Arc<Mutex<MockState>>;

fn lock(shared: &Shared) -> MutexGuard<'_, MockState> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running mock WeCom server. Stop it with [`MockWecom::stop`]; dropping it also shuts it down.
pub struct MockWecom {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockWecom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockWecom").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MockWecom {
    /// Start on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// If no local port can be bound; a test cannot go on without its server. Use [`MockWecom::bind`] to
    /// handle that error.
    pub async fn start() -> Self {
        match Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await {
            Ok(mock) => mock,
            Err(err) => panic!("mock WeCom cannot bind 127.0.0.1:0: {err}"),
        }
    }

    /// Start on `addr` (port 0 for any free port), e.g. for a demo that prints the address.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(MockState {
            token_ttl: DEFAULT_TOKEN_TTL,
            tokens: HashMap::new(),
            current_token: None,
            token_fetches: 0,
            send_attempts: 0,
            robot_attempts: 0,
            upload_attempts: 0,
            uploads: Vec::new(),
            forgotten_media: HashSet::new(),
            issued: 0,
            next_msgid: 0,
            faults: VecDeque::new(),
            received: Vec::new(),
            recent_bodies: HashMap::new(),
            duplicates_dropped: 0,
            robot_windows: HashMap::new(),
            invalid_users: HashSet::new(),
            unlicensed_users: HashSet::new(),
            disabled_robots: HashSet::new(),
            randomness: RandomState::new(),
        }));
        let app = Router::new()
            .route("/cgi-bin/gettoken", get(gettoken))
            .route("/cgi-bin/message/send", post(message_send))
            .route("/cgi-bin/media/upload", post(media_upload))
            .route("/cgi-bin/webhook/send", post(webhook_send))
            // Over axum's 2 MB default, so that an oversized image is answered with WeCom's errcode.
            .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
            .with_state(state.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::warn!(error = %err, "mock WeCom server stopped with an error");
            }
        });
        Ok(MockWecom { addr, state, shutdown: Some(shutdown), server: Some(server) })
    }

    /// `http://127.0.0.1:PORT`, to pass to `WecomClient::new`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The robot webhook URL for `key` on this mock.
    pub fn robot_webhook_url(&self, key: &str) -> String {
        format!("{}/cgi-bin/webhook/send?key={key}", self.base_url())
    }

    /// Credentials the mock accepts.
    pub fn credentials() -> AppCredentials {
        AppCredentials { corp_id: CORP_ID.to_owned(), agent_id: AGENT_ID, secret: CORP_SECRET.to_owned() }
    }

    /// Every accepted message, app and robot, in the order accepted.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// `gettoken` calls so far, successful or not.
    /// Forgets the robots' per-minute windows, as if a minute had passed (for tests that step a test clock).
    pub fn reset_robot_windows(&self) {
        lock(&self.state).robot_windows.clear();
    }

    /// Identical app messages dropped by the duplicate check (see the module docs).
    pub fn duplicates_dropped(&self) -> usize {
        lock(&self.state).duplicates_dropped
    }

    pub fn token_fetches(&self) -> usize {
        lock(&self.state).token_fetches
    }

    /// `message/send` requests so far, whatever their answer.
    pub fn send_attempts(&self) -> usize {
        lock(&self.state).send_attempts
    }

    /// `webhook/send` requests so far, whatever their answer.
    pub fn robot_attempts(&self) -> usize {
        lock(&self.state).robot_attempts
    }

    /// `media/upload` requests so far, whatever their answer.
    pub fn upload_attempts(&self) -> usize {
        lock(&self.state).upload_attempts
    }

    /// Every accepted upload, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        lock(&self.state).uploads.clone()
    }

    /// The picture a received image message carries: the uploaded bytes its `media_id` names (app
    /// messages) or its decoded base64 (robot messages). `None` for other messages.
    pub fn image_of(&self, received: &Received) -> Option<Vec<u8>> {
        if received.msgtype != "image" {
            return None;
        }
        if let Some(media_id) = received.media_id() {
            return lock(&self.state).uploads.iter().find(|u| u.media_id == media_id).map(|u| u.bytes.clone());
        }
        let base64 = received.body.pointer("/image/base64")?.as_str()?;
        decode_base64(base64)
    }

    /// Forget every media_id uploaded so far, as WeCom does after 3 days: messages naming them get 40007.
    pub fn forget_media(&self) {
        let mut state = lock(&self.state);
        let ids: Vec<String> = state.uploads.iter().map(|u| u.media_id.clone()).collect();
        state.forgotten_media.extend(ids);
    }

    /// Replace the fault script: the next `faults.len()` send requests get these answers, in order.
    pub fn script(&self, faults: Vec<Fault>) {
        lock(&self.state).faults = faults.into();
    }

    /// Scripted faults not yet used.
    pub fn pending_faults(&self) -> usize {
        lock(&self.state).faults.len()
    }

    /// Lifetime of tokens issued from now on (`expires_in` is rounded up to whole seconds, at least 1).
    pub fn set_token_ttl(&self, ttl: Duration) {
        lock(&self.state).token_ttl = ttl;
    }

    /// Invalidate every token issued so far, as WeCom sometimes does before `expires_in`: they are answered
    /// with 42001, and the next `gettoken` issues a new token.
    pub fn expire_tokens(&self) {
        let mut state = lock(&self.state);
        for token in state.tokens.values_mut() {
            token.revoked = true;
        }
        state.current_token = None;
    }

    /// Treat `userid` as unknown: listed in `invaliduser`, or 81013 when no recipient is left.
    pub fn mark_invalid_user(&self, userid: &str) {
        lock(&self.state).invalid_users.insert(userid.to_owned());
    }

    /// Treat `userid` as a member without a licence (接口许可) for the app: listed in
    /// `unlicenseduser` and not delivered to, with errcode 0 all the same.
    pub fn mark_unlicensed_user(&self, userid: &str) {
        lock(&self.state).unlicensed_users.insert(userid.to_owned());
    }

    /// Answer 93000 for this robot key, as for a robot removed from its chat.
    pub fn disable_robot(&self, key: &str) {
        lock(&self.state).disabled_robots.insert(key.to_owned());
    }

    /// Shut down gracefully (in-flight requests finish), giving up after 5 seconds.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err()
        {
            server.abort();
        }
    }
}

impl Drop for MockWecom {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn wecom_error(code: i64, errmsg: &str) -> Response {
    axum::Json(json!({ "errcode": code, "errmsg": errmsg })).into_response()
}

fn http_fault(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let page = format!("<html><body><h1>{status}</h1><p>mock WeCom fault</p></body></html>");
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn gettoken(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut state = lock(&shared);
    state.token_fetches += 1;
    let corp_id = query.get("corpid").map(String::as_str).unwrap_or_default();
    let secret = query.get("corpsecret").map(String::as_str).unwrap_or_default();
    if corp_id.is_empty() {
        return wecom_error(41002, "corpid missing");
    }
    if secret.is_empty() {
        return wecom_error(41004, "corpsecret missing");
    }
    if corp_id != CORP_ID {
        return wecom_error(40013, "invalid corpid");
    }
    if secret != CORP_SECRET {
        return wecom_error(40001, "invalid credential");
    }
    let now = Instant::now();
    // While the current token is valid WeCom answers with it again, with the time it has left.
    if let Some(current) = state.current_token.clone()
        && let Some(issued) = state.tokens.get(&current)
        && !issued.revoked
        && now < issued.expires_at
    {
        let left = issued.expires_at.duration_since(now);
        return axum::Json(json!({
            "errcode": 0, "errmsg": "ok", "access_token": current, "expires_in": whole_seconds(left),
        }))
        .into_response();
    }
    state.issued += 1;
    let ttl = state.token_ttl;
    let noise = state.randomness.hash_one(state.issued);
    let token = format!("MOCK{:04}_{noise:016x}{}", state.issued, "x".repeat(64));
    let expires_at = now.checked_add(ttl).unwrap_or(now + Duration::from_secs(365 * 86400));
    state.tokens.insert(token.clone(), IssuedToken { expires_at, revoked: false });
    state.current_token = Some(token.clone());
    axum::Json(json!({ "errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": whole_seconds(ttl) }))
        .into_response()
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

async fn message_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let fault = {
        let mut state = lock(&shared);
        state.send_attempts += 1;
        state.faults.pop_front()
    };
    with_fault(fault, shared, Incoming { query, content_type: String::new(), body }, accept_message).await
}

async fn media_upload(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: header::HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut state = lock(&shared);
        state.upload_attempts += 1;
        state.faults.pop_front()
    };
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    with_fault(fault, shared, Incoming { query, content_type, body }, accept_upload).await
}

async fn webhook_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let fault = {
        let mut state = lock(&shared);
        state.robot_attempts += 1;
        state.faults.pop_front()
    };
    with_fault(fault, shared, Incoming { query, content_type: String::new(), body }, accept_robot_message).await
}

/// What a handler needs of a request.
struct Incoming {
    query: HashMap<String, String>,
    content_type: String,
    body: Bytes,
}

type Handler = fn(&Shared, &Incoming) -> Response;

async fn with_fault(fault: Option<Fault>, shared: Shared, request: Incoming, handle: Handler) -> Response {
    match fault {
        None => handle(&shared, &request),
        Some(Fault::Errcode(code)) => wecom_error(code, &format!("mock fault {code}")),
        Some(Fault::Http(status)) => http_fault(status),
        Some(Fault::Delay(delay)) => {
            // Handled in its own task, so the request is processed (and recorded) even if the client gives
            // up and the connection, with this handler, is dropped.
            let task = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                handle(&shared, &request)
            });
            task.await.unwrap_or_else(|_| http_fault(500))
        }
    }
}

/// The access token checks every app API makes: missing → 41001, unknown → 40014, expired → 42001.
fn check_token(state: &MockState, query: &HashMap<String, String>, now: Instant) -> Option<Response> {
    let Some(token) = query.get("access_token").filter(|token| !token.is_empty()) else {
        return Some(wecom_error(41001, "access_token missing"));
    };
    match state.tokens.get(token) {
        None => Some(wecom_error(40014, "invalid access_token")),
        Some(issued) if issued.revoked || now >= issued.expires_at => Some(wecom_error(42001, "access_token expired")),
        Some(_) => None,
    }
}

fn accept_upload(shared: &Shared, request: &Incoming) -> Response {
    let now = Instant::now();
    let mut state = lock(shared);
    if let Some(response) = check_token(&state, &request.query, now) {
        return response;
    }
    let kind = request.query.get("type").cloned().unwrap_or_default();
    if kind != "image" {
        // The mock keeps images only; WeCom also takes voice, video and file.
        return wecom_error(40004, "invalid media type");
    }
    let Some(part) = multipart_field(&request.content_type, &request.body, "media") else {
        return wecom_error(41005, "media data missing");
    };
    if part.data.is_empty() {
        return wecom_error(44001, "empty media data");
    }
    if part.data.len() > IMAGE_MAX_BYTES {
        return wecom_error(40009, "invalid image size");
    }
    if !(part.data.starts_with(b"\x89PNG\r\n\x1a\n") || part.data.starts_with(&[0xff, 0xd8, 0xff])) {
        return wecom_error(40005, "invalid file type");
    }
    let media_id = format!("mock-media-{:06}-{:016x}", state.uploads.len() + 1, state.randomness.hash_one(part.data));
    state.uploads.push(Upload {
        media_id: media_id.clone(),
        kind,
        filename: part.filename,
        content_type: part.content_type,
        bytes: part.data.to_vec(),
    });
    let created_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    axum::Json(json!({
        "errcode": 0, "errmsg": "ok", "type": "image", "media_id": media_id, "created_at": created_at.to_string(),
    }))
    .into_response()
}

/// One field of a multipart/form-data body.
struct Part<'a> {
    filename: Option<String>,
    content_type: Option<String>,
    data: &'a [u8],
}

/// The field called `name` of a `multipart/form-data` body, or `None` when the body is not one or lacks it.
/// Enough of RFC 7578 for the clients under test: CRLF line ends, a boundary from the content type.
fn multipart_field<'a>(content_type: &str, body: &'a [u8], name: &str) -> Option<Part<'a>> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"').to_owned())
    })?;
    let delimiter = format!("--{boundary}");
    let mut rest = body;
    loop {
        let at = find(rest, delimiter.as_bytes())?;
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            return None; // the closing delimiter
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let data_start = head_end + 4;
        let data_len = find(&rest[data_start..], format!("\r\n{delimiter}").as_bytes())?;
        let data = &rest[data_start..data_start + data_len];
        let mut field = None;
        let mut filename = None;
        let mut part_type = None;
        for line in head.split("\r\n") {
            let Some((header_name, value)) = line.split_once(':') else { continue };
            if header_name.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').skip(1) {
                    let Some((key, value)) = param.split_once('=') else { continue };
                    let value = value.trim().trim_matches('"').to_owned();
                    match key.trim() {
                        "name" => field = Some(value),
                        "filename" => filename = Some(value),
                        _ => {}
                    }
                }
            } else if header_name.trim().eq_ignore_ascii_case("content-type") {
                part_type = Some(value.trim().to_owned());
            }
        }
        if field.as_deref() == Some(name) {
            return Some(Part { filename, content_type: part_type, data });
        }
        rest = &rest[data_start + data_len..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn accept_message(shared: &Shared, request: &Incoming) -> Response {
    let (query, raw) = (&request.query, &request.body[..]);
    let now = Instant::now();
    let mut state = lock(shared);
    if let Some(response) = check_token(&state, query, now) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(raw) else {
        return wecom_error(47001, "data format error");
    };
    if !body.is_object() {
        return wecom_error(47001, "data format error");
    }
    match body.get("agentid").and_then(Value::as_i64) {
        None => return wecom_error(41011, "missing agentid"),
        Some(agent_id) if agent_id != AGENT_ID => return wecom_error(40056, "invalid agentid"),
        Some(_) => {}
    }
    let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or_default().to_owned();
    const APP_TYPES: &[&str] = &[
        "text",
        "markdown",
        "textcard",
        "template_card",
        "image",
        "voice",
        "video",
        "file",
        "news",
        "mpnews",
        "miniprogram_notice",
    ];
    if !APP_TYPES.contains(&msgtype.as_str()) {
        return wecom_error(40008, "invalid message type");
    }
    if let Some(response) = check_app_content(&msgtype, body.get(&msgtype)) {
        return response;
    }
    if msgtype == "image" {
        let media_id = body.pointer("/image/media_id").and_then(Value::as_str).unwrap_or_default();
        if media_id.is_empty() {
            return wecom_error(41006, "media_id missing");
        }
        if state.forgotten_media.contains(media_id) || !state.uploads.iter().any(|u| u.media_id == media_id) {
            return wecom_error(40007, "invalid media_id");
        }
    }

    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (touser, toparty, totag) = (field("touser"), field("toparty"), field("totag"));
    if touser.is_empty() && toparty.is_empty() && totag.is_empty() {
        return wecom_error(40035, "invalid parameter: touser, toparty and totag are all empty");
    }
    let users: Vec<&str> = touser.split('|').filter(|user| !user.is_empty()).collect();
    let (invalid, valid): (Vec<&str>, Vec<&str>) =
        users.into_iter().partition(|user| state.invalid_users.contains(*user));
    if valid.is_empty() && toparty.is_empty() && totag.is_empty() {
        return wecom_error(81013, "user & party & tag all invalid");
    }
    let (unlicensed, valid): (Vec<&str>, Vec<&str>) =
        valid.into_iter().partition(|user| state.unlicensed_users.contains(*user));
    if valid.is_empty() && toparty.is_empty() && totag.is_empty() {
        // Accepted, delivered to nobody.
        let answer = json!({ "errcode": 0, "errmsg": "ok", "invaliduser": invalid.join("|"),
            "unlicenseduser": unlicensed.join("|"), "msgid": "" });
        return axum::Json(answer).into_response();
    }

    if body.get("enable_duplicate_check").and_then(Value::as_i64) == Some(1) {
        let interval = body.get("duplicate_check_interval").and_then(Value::as_u64).unwrap_or(1800).min(4 * 3600);
        let key = format!(
            "{touser}\u{1}{toparty}\u{1}{totag}\u{1}{msgtype}\u{1}{}",
            body.get(&msgtype).unwrap_or(&Value::Null)
        );
        let seen =
            state.recent_bodies.get(&key).is_some_and(|at| now.duration_since(*at) < Duration::from_secs(interval));
        if seen {
            // WeCom answers success and does not deliver the copy.
            state.duplicates_dropped += 1;
            return axum::Json(json!({ "errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "" })).into_response();
        }
        state.recent_bodies.insert(key, now);
    }
    state.next_msgid += 1;
    let msgid = format!("mock-msgid-{:06}", state.next_msgid);
    let mut answer = json!({
        "errcode": 0,
        "errmsg": "ok",
        "invaliduser": invalid.join("|"),
        "invalidparty": "",
        "invalidtag": "",
        "unlicenseduser": unlicensed.join("|"),
        "msgid": msgid,
    });
    let interactive = body.pointer("/template_card/card_type").and_then(Value::as_str).is_some_and(|card_type| {
        matches!(card_type, "button_interaction" | "vote_interaction" | "multiple_interaction")
    });
    if interactive && let Some(object) = answer.as_object_mut() {
        object.insert("response_code".to_owned(), json!(format!("mock-response-code-{msgid}")));
    }
    state.received.push(Received { touser: Some(touser), robot_key: None, msgtype, body, msgid: Some(msgid) });
    axum::Json(answer).into_response()
}

/// The msgtype-specific checks WeCom makes that matter for our messages.
fn check_app_content(msgtype: &str, content: Option<&Value>) -> Option<Response> {
    let text = |name: &str| content.and_then(|content| content.get(name)).and_then(Value::as_str).unwrap_or_default();
    match msgtype {
        "text" | "markdown" if text("content").is_empty() => Some(wecom_error(44004, "empty content")),
        "textcard" if text("title").is_empty() => Some(wecom_error(41016, "missing title")),
        "textcard" if text("description").is_empty() => Some(wecom_error(41033, "missing description")),
        "textcard" if text("url").is_empty() => Some(wecom_error(41010, "missing url")),
        "template_card" => {
            let card_type = text("card_type");
            if card_type.is_empty() {
                return Some(wecom_error(40058, "invalid parameter: card_type"));
            }
            let title = content.and_then(|content| content.pointer("/main_title/title")).and_then(Value::as_str);
            if title.is_none_or(str::is_empty) {
                return Some(wecom_error(41016, "missing title"));
            }
            if card_type == "button_interaction" {
                if text("task_id").is_empty() {
                    return Some(wecom_error(42014, "invalid task_id"));
                }
                let buttons = content.and_then(|content| content.get("button_list")).and_then(Value::as_array);
                if buttons.is_none_or(|buttons| buttons.is_empty() || buttons.len() > 6) {
                    return Some(wecom_error(40058, "invalid parameter: button_list"));
                }
            }
            None
        }
        _ => None,
    }
}

fn accept_robot_message(shared: &Shared, request: &Incoming) -> Response {
    let (query, raw) = (&request.query, &request.body[..]);
    let now = Instant::now();
    let mut state = lock(shared);
    let Some(key) = query.get("key").filter(|key| !key.is_empty()).cloned() else {
        return wecom_error(93000, "invalid webhook url");
    };
    if state.disabled_robots.contains(&key) {
        return wecom_error(93000, "invalid webhook url");
    }
    // Every request to a valid robot counts towards its limit, accepted or not.
    let window = state.robot_windows.entry(key.clone()).or_default();
    while window.front().is_some_and(|sent| now.duration_since(*sent) >= ROBOT_WINDOW) {
        window.pop_front();
    }
    if window.len() >= ROBOT_LIMIT_PER_MINUTE {
        return wecom_error(45009, "api freq out of limit");
    }
    window.push_back(now);

    let Ok(body) = serde_json::from_slice::<Value>(raw) else {
        return wecom_error(47001, "data format error");
    };
    let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or_default().to_owned();
    let max = match msgtype.as_str() {
        "text" => Some(2048),
        "markdown" | "markdown_v2" => Some(4096),
        "image" | "news" | "file" | "voice" | "template_card" => None,
        _ => return wecom_error(40008, "invalid message type"),
    };
    if let Some(max) = max {
        let content = body.pointer(&format!("/{msgtype}/content")).and_then(Value::as_str).unwrap_or_default();
        if content.is_empty() {
            return wecom_error(44004, "empty content");
        }
        if content.len() > max {
            return wecom_error(45002, &format!("content exceed max length {max}"));
        }
    }
    if msgtype == "image" {
        let text = |name: &str| body.pointer(&format!("/image/{name}")).and_then(Value::as_str).unwrap_or_default();
        let Some(bytes) = decode_base64(text("base64")).filter(|bytes| !bytes.is_empty()) else {
            return wecom_error(40035, "invalid parameter: image.base64");
        };
        if bytes.len() > IMAGE_MAX_BYTES {
            return wecom_error(40009, "invalid image size");
        }
        if !text("md5").eq_ignore_ascii_case(&super::client::md5_hex(&bytes)) {
            return wecom_error(301019, "media md5 not match");
        }
    }
    state.received.push(Received { touser: None, robot_key: Some(key), msgtype, body, msgid: None });
    wecom_error(0, "ok")
}
