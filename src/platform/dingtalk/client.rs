//! DingTalk outbound push (PLATFORMS.md 2.4), old-style API on `oapi.dingtalk.com`:
//!
//! - **Work notifications** to users (`POST /topapi/message/corpconversation/asyncsend_v2`) with
//!   the app's access token from `GET /gettoken?appkey=&appsecret=`. One cached token per app,
//!   refreshed 5 minutes before `expires_in` runs out and dropped and fetched again when DingTalk
//!   rejects it; the cache lock is held across `gettoken`, so one fetch is in flight and every
//!   other sender waits for its result (pitfall 9).
//! - **Custom group robots** (`POST /robot/send?access_token=&timestamp=&sign=`), signed per
//!   request, at most 20 messages a minute per robot counted here (a sliding window); DingTalk
//!   answers 130101 beyond that and throttles the robot for 10 minutes.
//! - **Session webhooks** of robot callbacks (no token), for the bot's replies.
//!
//! Failures come back as [`PushFailure`]: `Retry` (rate limits, -1 busy, 5xx, timeouts, a token
//! rejected again right after a refresh) or `Fatal` (bad recipient, configuration, payload).
//! Each is logged once with its code and what happens next. Secrets, tokens and signed URLs are
//! never logged: transport errors are stripped of their URL.
//!
//! Size limits are not in PLATFORMS.md; we assume 2,048 bytes for text (conservative) and 5,000
//! for markdown (the digest renderer's DingTalk limit), and split on line boundaries.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{DingtalkApp, sign};
use crate::outbox::OutMessage;
use crate::platform::PushFailure;
use crate::platform::wecom::client::split_for_limit;

pub const DEFAULT_BASE_URL: &str = "https://oapi.dingtalk.com";
/// Assumed limit of `text.content` (see the module docs).
pub const TEXT_MAX_BYTES: usize = 2048;
/// `markdown.text`, as the digest renderer's DingTalk dialect assumes.
pub const MARKDOWN_MAX_BYTES: usize = 5000;
/// Largest picture uploaded for a work notification.
pub const IMAGE_MAX_BYTES: usize = 1024 * 1024;

const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;
/// After `gettoken` failed for good (wrong secret) nobody asks again for this long.
const FATAL_TOKEN_COOLDOWN: Duration = Duration::from_secs(60);
/// DingTalk throttles a robot for 10 minutes after 130101 (PLATFORMS.md 2.4, third-party report).
const ROBOT_THROTTLE: Duration = Duration::from_secs(600);
/// Assumed back-off after an API frequency limit (90002/90005/90006/90018).
const FREQUENCY_BACKOFF: Duration = Duration::from_secs(60);
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const MEDIA_CACHE_MAX: usize = 64;

/// A failed exchange: DingTalk's errcode (or the HTTP status, or 0 for transport errors).
#[derive(Debug, Clone)]
enum Fail {
    Retry { code: i64, message: String, after: Option<Duration> },
    Fatal { code: i64, message: String },
}

impl Fail {
    fn code(&self) -> i64 {
        match self {
            Fail::Retry { code, .. } | Fail::Fatal { code, .. } => *code,
        }
    }

    fn is_token_error(&self) -> bool {
        // 40014 invalid token, 42001 expired; HTTP 401 from a gateway in front of the API.
        matches!(self.code(), 40014 | 42001 | 401)
    }

    fn into_failure(self) -> PushFailure {
        match self {
            Fail::Retry { code, message, after } => {
                PushFailure::Retry { error: format!("DingTalk {code}: {message}"), after }
            }
            Fail::Fatal { code, message } => PushFailure::Fatal(format!("DingTalk {code}: {message}")),
        }
    }
}

/// The class of a DingTalk errcode. Unknown codes are fatal: they are overwhelmingly parameter
/// and permission errors, and retrying them forever would hide the problem.
fn api_error(code: i64, errmsg: &str) -> Fail {
    let message = if errmsg.is_empty() { "(no errmsg)".to_string() } else { errmsg.to_string() };
    match code {
        -1 => Fail::Retry { code, message, after: None },
        40014 | 42001 => Fail::Retry { code, message, after: None },
        90002 | 90005 | 90006 | 90018 => Fail::Retry { code, message, after: Some(FREQUENCY_BACKOFF) },
        130101 => Fail::Retry { code, message, after: Some(ROBOT_THROTTLE) },
        _ => Fail::Fatal { code, message },
    }
}

/// What happens next, for the log line.
fn next_step(code: i64, fatal: bool) -> &'static str {
    match (code, fatal) {
        (310000, _) => {
            "not retrying: robot keyword, signature or IP allowlist rejected the message; fix the robot's security settings"
        }
        (300001, _) => "not retrying: the robot's access_token does not exist (robot removed?)",
        (40089 | 40001, _) => "not retrying: fix app_key/app_secret",
        (130101, _) => "robot throttled by DingTalk; retrying after 10 minutes",
        (_, true) => "not retrying",
        (_, false) => "will retry with backoff",
    }
}

fn log_failure(app: &str, api: &str, dest: &str, fail: &Fail) {
    match fail {
        Fail::Retry { code, message, .. } => {
            tracing::warn!(app, api, dest, code, next = next_step(*code, false), error = %message, "DingTalk push failed")
        }
        Fail::Fatal { code, message } => {
            tracing::error!(app, api, dest, code, next = next_step(*code, true), error = %message, "DingTalk push failed")
        }
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

fn transport_error(err: reqwest::Error, timeout: Duration) -> Fail {
    // URLs carry tokens and signatures.
    let err = err.without_url();
    if err.is_builder() {
        return Fail::Fatal { code: 0, message: format!("invalid request: {}", error_chain(&err)) };
    }
    let message = if err.is_timeout() {
        format!("request timed out after {}ms (DingTalk may still have processed it)", timeout.as_millis())
    } else {
        format!("request failed: {}", error_chain(&err))
    };
    Fail::Retry { code: 0, message, after: None }
}

/// Sends the request; returns the JSON object DingTalk answered after checking `errcode`.
async fn exchange(request: reqwest::RequestBuilder, timeout: Duration) -> Result<Value, Fail> {
    let mut response = request.send().await.map_err(|e| transport_error(e, timeout))?;
    let status = response.status();
    if !status.is_success() {
        let code = i64::from(status.as_u16());
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = format!("HTTP {status}");
        return Err(if status.is_server_error() || matches!(code, 401 | 408 | 429) {
            Fail::Retry { code, message, after }
        } else {
            Fail::Fatal { code, message }
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(e, timeout))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Fail::Retry { code: 0, message: "response too large".into(), after: None });
        }
        body.extend_from_slice(&chunk);
    }
    // Not JSON usually means a proxy or gateway page: transient.
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        let preview: String = String::from_utf8_lossy(&body).chars().take(80).collect();
        Fail::Retry { code: 0, message: format!("unreadable response ({e}): {preview:?}"), after: None }
    })?;
    let code = value.get("errcode").and_then(Value::as_i64).ok_or_else(|| Fail::Retry {
        code: 0,
        message: "response has no errcode".into(),
        after: None,
    })?;
    if code != 0 {
        let errmsg = value.get("errmsg").and_then(Value::as_str).unwrap_or_default();
        return Err(api_error(code, errmsg));
    }
    Ok(value)
}

/// Where a push goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A work notification to this staffId (`user:<id>` or a bare id).
    User(String),
    /// A configured custom group robot (`robot:<name>`).
    Robot(String),
}

impl Recipient {
    pub fn parse(s: &str) -> Result<Self, PushFailure> {
        let s = s.trim();
        let r = if let Some(name) = s.strip_prefix("robot:") {
            Recipient::Robot(name.to_string())
        } else {
            Recipient::User(s.strip_prefix("user:").unwrap_or(s).to_string())
        };
        match &r {
            Recipient::User(id) | Recipient::Robot(id) if id.trim().is_empty() => {
                Err(PushFailure::Fatal(format!("empty DingTalk recipient `{s}`")))
            }
            _ => Ok(r),
        }
    }
}

/// The command a reminder card's button stands for (`done-12` → `完成 #12`).
pub fn button_command(key: &str, label: &str) -> String {
    let parsed = key.split_once('-').and_then(|(a, id)| id.parse::<u64>().ok().map(|id| (a, id)));
    match parsed {
        Some(("done", id)) => format!("完成 #{id}"),
        Some(("snooze", id)) => format!("推迟 #{id} 1天"),
        _ => label.to_string(),
    }
}

/// A button that, tapped, sends `command` as a chat message from the user. `dtmd://` links are
/// DingTalk's client scheme; this use of `sendMessage` is assumed (not in PLATFORMS.md), which is
/// why the card's text still says what to type.
pub fn button_url(command: &str) -> String {
    format!("dtmd://dingtalkclient/sendMessage?content={}", sign::urlencode(command))
}

/// A markdown message's title: its first line without markup (DingTalk shows it in the
/// conversation list).
pub fn markdown_title(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let plain: String = line.replace("**", "").trim_start_matches(['#', '>', '-', '*', ' ']).trim().to_string();
    let title: String = plain.chars().take(30).collect();
    if title.is_empty() { "chatcrm".to_string() } else { title }
}

/// Which API shape a body is for: robots (webhook and session) and work notifications differ
/// in the action card's field names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Robot,
    Work,
}

/// The `msg` objects for `m`, several when the text is split. Images are handled by the caller.
pub(crate) fn bodies(m: &OutMessage, shape: Shape) -> Vec<Value> {
    if let Some(card) = &m.card {
        let buttons: Vec<(String, String)> =
            card.buttons.iter().map(|(key, label)| (label.clone(), button_url(&button_command(key, label)))).collect();
        let text = if m.text.trim().is_empty() { card.description.clone() } else { m.text.clone() };
        // DingTalk markdown folds single line breaks into one paragraph: a blank line between lines.
        let text = text.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n\n");
        // A card is one message: keep its text within the markdown limit.
        let text = split_for_limit(&text, MARKDOWN_MAX_BYTES).into_iter().next().unwrap_or_default();
        return vec![match shape {
            Shape::Robot => json!({
                "msgtype": "actionCard",
                "actionCard": {
                    "title": card.title,
                    "text": text,
                    "btnOrientation": "1",
                    "btns": buttons.iter().map(|(t, u)| json!({ "title": t, "actionURL": u })).collect::<Vec<_>>(),
                }
            }),
            Shape::Work => json!({
                "msgtype": "action_card",
                "action_card": {
                    "title": card.title,
                    "markdown": text,
                    "btn_orientation": "1",
                    "btn_json_list": buttons.iter().map(|(t, u)| json!({ "title": t, "action_url": u })).collect::<Vec<_>>(),
                }
            }),
        }];
    }
    if m.markdown {
        let title = markdown_title(&m.text);
        let parts = split_for_limit(&m.text, MARKDOWN_MAX_BYTES);
        let n = parts.len();
        return parts
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                let title = if i == 0 { title.clone() } else { format!("{title}（{}/{n}）", i + 1) };
                json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } })
            })
            .collect();
    }
    split_for_limit(&m.text, TEXT_MAX_BYTES)
        .into_iter()
        .map(|content| json!({ "msgtype": "text", "text": { "content": content } }))
        .collect()
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct TokenState {
    cached: Option<CachedToken>,
    /// A fatal `gettoken` failure and when: not asked again during the cooldown.
    fatal: Option<(Instant, Fail)>,
}

struct Robot {
    access_token: SecretString,
    secret: SecretString,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    app: String,
    app_key: String,
    app_secret: SecretString,
    agent_id: Option<i64>,
    timeout: Duration,
    token: Mutex<TokenState>,
    robots: HashMap<String, Robot>,
    robot_limit: (usize, Duration),
    robot_sent: StdMutex<HashMap<String, VecDeque<Instant>>>,
    /// Uploaded pictures by SHA-256: a resend reuses the media_id, so the body is identical and
    /// DingTalk's once-per-day rule for identical content drops a duplicate.
    media: StdMutex<HashMap<[u8; 32], String>>,
}

/// See the module docs. Cheap to clone; clones share the token cache and robot windows.
#[derive(Clone)]
pub struct DingtalkClient {
    inner: Arc<Inner>,
}

impl DingtalkClient {
    pub fn new(
        base: &str,
        app: &DingtalkApp,
        timeout: Duration,
        robot_limit: (usize, Duration),
    ) -> Result<Self, String> {
        let base = base.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| format!("invalid api_base {base:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("api_base {base:?} is not http(s)"));
        }
        if timeout.is_zero() || robot_limit.0 == 0 || robot_limit.1.is_zero() {
            return Err("timeouts and the robot rate limit must be positive".into());
        }
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("chatcrm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e.without_url())))?;
        let robots = app
            .robots
            .iter()
            .map(|r| (r.name.clone(), Robot { access_token: r.access_token.clone(), secret: r.secret.clone() }))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                app: app.name.clone(),
                app_key: app.app_key.clone(),
                app_secret: app.app_secret.clone(),
                agent_id: app.agent_id,
                timeout,
                token: Mutex::new(TokenState::default()),
                robots,
                robot_limit,
                robot_sent: StdMutex::new(HashMap::new()),
                media: StdMutex::new(HashMap::new()),
            }),
        })
    }

    pub async fn access_token(&self) -> Result<String, PushFailure> {
        self.token(None).await.map_err(|f| {
            log_failure(&self.inner.app, "gettoken", "-", &f);
            f.into_failure()
        })
    }

    /// A usable token; `rejected` was just refused by DingTalk and is not returned again.
    async fn token(&self, rejected: Option<&str>) -> Result<String, Fail> {
        // Held across the fetch: single flight. Waiters then find the fresh token.
        let mut state = self.inner.token.lock().await;
        let now = Instant::now();
        if let Some(c) = &state.cached
            && now < c.refresh_at
            && rejected != Some(c.value.as_str())
        {
            return Ok(c.value.clone());
        }
        if let Some((at, fail)) = &state.fatal
            && now < *at + FATAL_TOKEN_COOLDOWN
        {
            return Err(fail.clone());
        }
        match self.fetch_token().await {
            Ok((value, lifetime)) => {
                let expires_at = now + lifetime;
                let refresh_at = expires_at - TOKEN_REFRESH_MARGIN.min(lifetime / 2);
                state.cached = Some(CachedToken { value: value.clone(), refresh_at, expires_at });
                state.fatal = None;
                tracing::debug!(app = %self.inner.app, lifetime_s = lifetime.as_secs(), "fetched a DingTalk access token");
                Ok(value)
            }
            Err(fail) => {
                if matches!(fail, Fail::Fatal { .. }) {
                    state.fatal = Some((now, fail.clone()));
                }
                // An early refresh failed, but the current token is still valid: keep using it.
                if let Some(c) = &state.cached
                    && now < c.expires_at
                    && rejected.is_none()
                {
                    return Ok(c.value.clone());
                }
                if rejected.is_some() {
                    state.cached = None;
                }
                Err(fail)
            }
        }
    }

    async fn fetch_token(&self) -> Result<(String, Duration), Fail> {
        let url = format!("{}/gettoken", self.inner.base);
        let req = self
            .inner
            .http
            .get(url)
            .query(&[("appkey", self.inner.app_key.as_str()), ("appsecret", self.inner.app_secret.expose_secret())]);
        let body = exchange(req, self.inner.timeout).await?;
        let token = body.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
            Fail::Retry { code: 0, message: "gettoken answered without access_token".into(), after: None }
        })?;
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, |s| Duration::from_secs(s.min(MAX_TOKEN_LIFETIME_SECS)));
        Ok((token.to_string(), lifetime))
    }

    /// Runs `call` with the token; on a token error fetches a new one and retries once. A second
    /// token error drops the token and is a `Retry` (the next attempt starts fresh).
    async fn with_token<T, F>(&self, call: impl Fn(String) -> F) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, Fail>>,
    {
        let token = self.token(None).await?;
        match call(token.clone()).await {
            Err(f) if f.is_token_error() => {
                tracing::info!(app = %self.inner.app, code = f.code(), "DingTalk rejected the access token; fetching a new one, retrying once");
                let fresh = self.token(Some(&token)).await?;
                match call(fresh.clone()).await {
                    Err(f) if f.is_token_error() => {
                        let mut state = self.inner.token.lock().await;
                        if state.cached.as_ref().is_some_and(|c| c.value == fresh) {
                            state.cached = None;
                        }
                        Err(Fail::Retry {
                            code: f.code(),
                            message: "DingTalk rejected a freshly fetched access token".into(),
                            after: None,
                        })
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    pub async fn deliver(&self, recipient: &str, message: &OutMessage) -> Result<(), PushFailure> {
        let to = Recipient::parse(recipient)?;
        let (api, dest, result) = match &to {
            Recipient::User(id) => ("asyncsend_v2", id.as_str(), self.notify_user(id, message).await),
            Recipient::Robot(name) => ("robot/send", recipient, self.post_robot(name, message).await),
        };
        match result {
            Ok(parts) => {
                tracing::debug!(app = %self.inner.app, api, dest, parts, "DingTalk message sent");
                Ok(())
            }
            Err(fail) => {
                log_failure(&self.inner.app, api, dest, &fail);
                Err(fail.into_failure())
            }
        }
    }

    async fn notify_user(&self, staff_id: &str, message: &OutMessage) -> Result<usize, Fail> {
        let Some(agent_id) = self.inner.agent_id else {
            return Err(Fail::Fatal {
                code: 0,
                message: "agent_id is not configured: work notifications need it".into(),
            });
        };
        let msgs = match &message.image_png {
            Some(png) => vec![json!({ "msgtype": "image", "image": { "media_id": self.media_id(png).await? } })],
            None => bodies(message, Shape::Work),
        };
        if msgs.is_empty() {
            return Err(Fail::Fatal { code: 0, message: "empty message".into() });
        }
        // A later part failing resends the earlier ones on retry; DingTalk delivers identical
        // content to a user once a day, so they are not seen twice.
        for msg in &msgs {
            let body = json!({ "agent_id": agent_id, "userid_list": staff_id, "msg": msg });
            self.with_token(|token| {
                let req = self
                    .inner
                    .http
                    .post(format!("{}/topapi/message/corpconversation/asyncsend_v2", self.inner.base))
                    .query(&[("access_token", token.as_str())])
                    .json(&body);
                async move { exchange(req, self.inner.timeout).await }
            })
            .await?;
        }
        Ok(msgs.len())
    }

    /// Uploads a picture (`POST /media/upload?type=image`, multipart `media`), or reuses the id
    /// of the same bytes.
    async fn media_id(&self, png: &[u8]) -> Result<String, Fail> {
        use sha2::{Digest as _, Sha256};
        if png.is_empty() || png.len() > IMAGE_MAX_BYTES {
            return Err(Fail::Fatal {
                code: 0,
                message: format!("image of {} bytes (1..={IMAGE_MAX_BYTES})", png.len()),
            });
        }
        let key: [u8; 32] = Sha256::digest(png).into();
        if let Some(id) = self.inner.media.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(id.clone());
        }
        let answer = self
            .with_token(|token| {
                let part = reqwest::multipart::Part::bytes(png.to_vec()).file_name("chart.png").mime_str("image/png");
                let req = part.map(|part| {
                    self.inner
                        .http
                        .post(format!("{}/media/upload", self.inner.base))
                        .query(&[("access_token", token.as_str()), ("type", "image")])
                        .multipart(reqwest::multipart::Form::new().part("media", part))
                });
                async move {
                    let req = req.map_err(|e| Fail::Fatal { code: 0, message: format!("bad image part: {e}") })?;
                    exchange(req, self.inner.timeout).await
                }
            })
            .await?;
        let id = answer
            .get("media_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Fail::Retry {
                code: 0,
                message: "media/upload answered without media_id".into(),
                after: None,
            })?
            .to_string();
        let mut media = self.inner.media.lock().unwrap_or_else(PoisonError::into_inner);
        if media.len() >= MEDIA_CACHE_MAX {
            media.clear();
        }
        media.insert(key, id.clone());
        Ok(id)
    }

    async fn post_robot(&self, name: &str, message: &OutMessage) -> Result<usize, Fail> {
        let Some(robot) = self.inner.robots.get(name) else {
            return Err(Fail::Fatal { code: 0, message: format!("no robot `{name}` is configured for this app") });
        };
        let message = if message.image_png.is_some() {
            // Custom robots take no uploaded pictures: the caption goes as text instead.
            tracing::info!(app = %self.inner.app, robot = name, "DingTalk robots take no pictures; sending the caption only");
            OutMessage::text(message.text.clone())
        } else {
            message.clone()
        };
        let msgs = bodies(&message, Shape::Robot);
        if msgs.is_empty() {
            return Err(Fail::Fatal { code: 0, message: "empty message".into() });
        }
        self.reserve(name, msgs.len())?;
        for body in &msgs {
            let url = sign::webhook_url(
                &self.inner.base,
                robot.access_token.expose_secret(),
                robot.secret.expose_secret(),
                chrono::Utc::now().timestamp_millis(),
            );
            if let Err(f) = exchange(self.inner.http.post(url).json(body), self.inner.timeout).await {
                if f.code() == 130101 {
                    // DingTalk counted more than we did (another instance, a restart).
                    self.fill_window(name);
                }
                return Err(f);
            }
        }
        Ok(msgs.len())
    }

    /// Takes `count` slots in the robot's window, or says when enough free up.
    fn reserve(&self, robot: &str, count: usize) -> Result<(), Fail> {
        let (max, window) = self.inner.robot_limit;
        if count > max {
            return Err(Fail::Fatal { code: 0, message: format!("{count} parts exceed the robot's {max} per window") });
        }
        let now = Instant::now();
        let mut sent = self.inner.robot_sent.lock().unwrap_or_else(PoisonError::into_inner);
        let times = sent.entry(robot.to_string()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
            times.pop_front();
        }
        if times.len() + count > max {
            let must_expire = times.len() + count - max;
            let after = times.get(must_expire - 1).map_or(window, |t| (*t + window).saturating_duration_since(now));
            return Err(Fail::Retry {
                code: 0,
                message: format!(
                    "robot `{robot}` reached {max} messages per {}s (held back locally)",
                    window.as_secs()
                ),
                after: Some(after.max(Duration::from_millis(1))),
            });
        }
        times.extend(std::iter::repeat_n(now, count));
        Ok(())
    }

    fn fill_window(&self, robot: &str) {
        let now = Instant::now();
        let mut sent = self.inner.robot_sent.lock().unwrap_or_else(PoisonError::into_inner);
        let times = sent.entry(robot.to_string()).or_default();
        times.clear();
        times.extend(std::iter::repeat_n(now, self.inner.robot_limit.0));
    }

    pub async fn reply_in_session(&self, url: &str, text: &str, at_staff_id: Option<&str>) -> Result<(), PushFailure> {
        let mut msgs = bodies(&OutMessage::text(crate::platform::markdown::plain_text(text)), Shape::Robot);
        if let (Some(staff), Some(first)) = (at_staff_id, msgs.first_mut())
            && let Some(obj) = first.as_object_mut()
        {
            obj.insert("at".into(), json!({ "atUserIds": [staff] }));
        }
        for body in &msgs {
            if let Err(f) = exchange(self.inner.http.post(url).json(body), self.inner.timeout).await {
                log_failure(&self.inner.app, "sessionWebhook", "session", &f);
                return Err(f.into_failure());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Card;

    #[test]
    fn recipients() {
        assert_eq!(Recipient::parse("manager1").ok(), Some(Recipient::User("manager1".into())));
        assert_eq!(Recipient::parse("user:m1").ok(), Some(Recipient::User("m1".into())));
        assert_eq!(Recipient::parse("robot:team-a").ok(), Some(Recipient::Robot("team-a".into())));
        assert!(Recipient::parse("robot:").is_err());
        assert!(Recipient::parse(" ").is_err());
    }

    #[test]
    fn shapes() {
        let md = OutMessage::markdown("### **华东一组** 日报\n\n拜访 3");
        let b = bodies(&md, Shape::Work);
        assert_eq!(b[0]["markdown"]["title"], "华东一组 日报");
        let card = OutMessage {
            text: "⏰ 给海尔打电话\n回复「完成 #12」或「推迟 #12 2天」".into(),
            card: Some(Card {
                title: "⏰ 给海尔打电话".into(),
                description: "11月25日 15:00".into(),
                key: "task-12".into(),
                buttons: vec![("done-12".into(), "完成".into()), ("snooze-12".into(), "推迟一天".into())],
            }),
            markdown: false,
            image_png: None,
        };
        let w = bodies(&card, Shape::Work);
        assert_eq!(w[0]["msgtype"], "action_card");
        assert_eq!(
            w[0]["action_card"]["btn_json_list"][0]["action_url"],
            "dtmd://dingtalkclient/sendMessage?content=%E5%AE%8C%E6%88%90%20%2312"
        );
        let r = bodies(&card, Shape::Robot);
        assert_eq!(r[0]["actionCard"]["btns"][1]["title"], "推迟一天");
        let long = OutMessage::text("一行字\n".repeat(1000));
        let parts = bodies(&long, Shape::Robot);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p["text"]["content"].as_str().is_some_and(|c| c.len() <= TEXT_MAX_BYTES)));
    }

    #[test]
    fn error_classes() {
        assert!(matches!(api_error(130101, ""), Fail::Retry { after: Some(_), .. }));
        assert!(matches!(api_error(-1, ""), Fail::Retry { after: None, .. }));
        assert!(matches!(api_error(310000, ""), Fail::Fatal { .. }));
        assert!(matches!(api_error(12345, ""), Fail::Fatal { .. }));
        assert!(api_error(42001, "").is_token_error());
    }
}
