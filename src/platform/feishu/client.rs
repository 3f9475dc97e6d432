//! Feishu push (PLATFORMS.md §3.4).
//!
//! [`FeishuClient`] owns one app's `tenant_access_token`: cached, refreshed 10 minutes early, and
//! dropped and fetched again when Feishu rejects it (99991661/99991663), then the call is retried
//! once. The cache lock is held across the fetch, so one refresh is in flight and every other
//! sender waits for its result (pitfall 9).
//!
//! Every `im/v1/messages` call carries a `uuid` derived from the app, the recipient and the message
//! (and the part number of a split text): a resend after a lost answer (a timeout) is the same
//! request, which Feishu drops. Sends are paced in this process to Feishu's limits (5 per second
//! per user or chat, 50 per second per app); a rate-limit answer anyway (99991400, HTTP 429) is a
//! retry after a delay. Custom-bot webhooks have no idempotency key: a timed-out webhook call may
//! arrive twice.
//!
//! Neither the app secret, the token nor a webhook hook/secret is logged: transport errors are
//! stripped of their URL.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::crypto;
use crate::outbox::{Card, OutMessage};
use crate::platform::PushFailure;
use crate::platform::wecom::client::split_for_limit;

pub const DEFAULT_BASE_URL: &str = "https://open.feishu.cn";
/// A text message's text; Feishu allows 150 KB, shorter messages read better.
pub const TEXT_MAX_BYTES: usize = 30_000;
/// Markdown in a card (a card's JSON may be 30 KB); the report renderer's Feishu limit.
pub const MARKDOWN_MAX_BYTES: usize = 20_000;
/// A custom bot's request body is at most 20 KB.
pub const BOT_TEXT_MAX_BYTES: usize = 18_000;
/// Largest image we upload (Feishu takes 10 MB; a chart is far smaller).
pub const IMAGE_MAX_BYTES: usize = 10 * 1024 * 1024;
/// Messages per second to one user or chat, and for the whole app.
pub const PER_RECEIVER_PER_SECOND: usize = 5;
pub const PER_APP_PER_SECOND: usize = 50;

/// Refresh this long before expiry (the SDK's choice), or at half the lifetime if sooner.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(600);
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(1);
/// Slack on the pacing window: Feishu counts arrivals, we count departures.
const WINDOW_SLACK: Duration = Duration::from_millis(60);

/// Token codes: drop the token, fetch another, retry once.
pub fn is_token_error(code: i64) -> bool {
    matches!(code, 99991661 | 99991663)
}

/// Codes that heal by waiting: rate limits (app, chat, custom bot).
pub fn is_rate_limit(code: i64) -> bool {
    matches!(code, 99991400 | 230020 | 11232 | 9499)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeishuError {
    /// Transient: 5xx, rate limits, timeouts, connection errors. Not before `after` when set.
    #[error("Feishu error {code} (transient): {message}")]
    Retry { code: i64, message: String, after: Option<Duration> },
    /// Retrying cannot help: recipient, permission, payload, configuration.
    #[error("Feishu error {code}: {message}")]
    Fatal { code: i64, message: String },
    /// Not a Feishu answer (a gateway page, not JSON): retried.
    #[error("unreadable Feishu response: {0}")]
    BadResponse(String),
    /// Refused locally.
    #[error("Feishu push not attempted: {0}")]
    Config(String),
}

impl FeishuError {
    pub fn into_failure(self) -> PushFailure {
        match self {
            FeishuError::Retry { after, .. } => PushFailure::Retry { error: self.to_string(), after },
            FeishuError::BadResponse(_) => PushFailure::Retry { error: self.to_string(), after: None },
            FeishuError::Fatal { .. } | FeishuError::Config(_) => PushFailure::Fatal(self.to_string()),
        }
    }

    fn code(&self) -> i64 {
        match self {
            FeishuError::Retry { code, .. } | FeishuError::Fatal { code, .. } => *code,
            _ => 0,
        }
    }
}

/// An app's credentials. `Debug` redacts the secret.
#[derive(Clone)]
pub struct Credentials {
    pub app_id: String,
    pub app_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("app_id", &self.app_id).field("app_secret", &"[redacted]").finish()
    }
}

/// A custom bot webhook.
#[derive(Clone)]
pub struct Bot {
    /// The hook token (last URL segment) or the whole webhook URL.
    pub hook: String,
    pub secret: Option<String>,
}

/// Where a message goes; see [`super::Pusher`] for the recipient strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// `receive_id_type` and `receive_id` of `im/v1/messages`.
    Id { id_type: &'static str, id: String },
    /// `im/v1/messages/{message_id}/reply`.
    Reply(String),
    /// A configured custom bot, by name.
    Bot(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid feishu recipient `{0}`: use ou_…, open_id:…, chat:oc_…, user_id:…, union_id:…, email:…, reply:om_… or bot:<name>"
)]
pub struct BadRecipient(String);

impl Recipient {
    pub fn parse(s: &str) -> Result<Self, BadRecipient> {
        let s = s.trim();
        let bad = || BadRecipient(s.to_string());
        let (kind, id) = s.split_once(':').unwrap_or(("open_id", s));
        if id.trim().is_empty() || id.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let id_type = match kind {
            "open_id" => "open_id",
            "chat" | "chat_id" => "chat_id",
            "user_id" => "user_id",
            "union_id" => "union_id",
            "email" => "email",
            "reply" => return Ok(Recipient::Reply(id.to_string())),
            "bot" => return Ok(Recipient::Bot(id.to_string())),
            _ => return Err(bad()),
        };
        Ok(Recipient::Id { id_type, id: id.to_string() })
    }

    /// The pacing key: Feishu's 5-per-second limits are per user and per chat.
    fn pace_key(&self) -> String {
        match self {
            Recipient::Id { id_type, id } => format!("{id_type}:{id}"),
            Recipient::Reply(m) => format!("reply:{m}"),
            Recipient::Bot(b) => format!("bot:{b}"),
        }
    }
}

/// One message as Feishu takes it: `msg_type` and the content object.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub msg_type: &'static str,
    pub content: Value,
}

/// An interactive card with one markdown (`lark_md`) block.
pub fn markdown_card(text: &str) -> Value {
    json!({ "config": { "wide_screen_mode": true }, "elements": [ { "tag": "div", "text": { "tag": "lark_md", "content": text } } ] })
}

/// A reminder card: title, description and buttons whose `value.key` comes back in the
/// `card.action.trigger` callback.
pub fn button_card(card: &Card) -> Value {
    let buttons: Vec<Value> = card
        .buttons
        .iter()
        .enumerate()
        .map(|(i, (key, label))| {
            json!({
                "tag": "button",
                "text": { "tag": "plain_text", "content": label },
                "type": if i == 0 { "primary" } else { "default" },
                "value": { "key": key, "card": card.key },
            })
        })
        .collect();
    let mut elements = Vec::new();
    if !card.description.trim().is_empty() {
        elements.push(json!({ "tag": "div", "text": { "tag": "lark_md", "content": card.description } }));
    }
    elements.push(json!({ "tag": "action", "actions": buttons }));
    json!({
        "config": { "wide_screen_mode": true },
        "header": { "title": { "tag": "plain_text", "content": card.title }, "template": "blue" },
        "elements": elements,
    })
}

/// The parts an [`OutMessage`] becomes (without images, which need an upload first).
pub fn parts(message: &OutMessage, text_max: usize) -> Vec<Part> {
    if let Some(card) = &message.card {
        return vec![Part { msg_type: "interactive", content: button_card(card) }];
    }
    if message.markdown {
        return split_for_limit(&message.text, MARKDOWN_MAX_BYTES.min(text_max))
            .iter()
            .map(|t| Part { msg_type: "interactive", content: markdown_card(t) })
            .collect();
    }
    split_for_limit(&message.text, text_max)
        .into_iter()
        .map(|t| Part { msg_type: "text", content: json!({ "text": t }) })
        .collect()
}

/// The idempotency key of one part: stable across resends of the same message to the same place.
pub fn idempotency_key(app_id: &str, recipient: &str, message: &OutMessage, key: Option<&str>, part: usize) -> String {
    let body = serde_json::to_string(message).unwrap_or_default();
    let seed = format!("{app_id}\n{recipient}\n{}\n{part}\n{body}", key.unwrap_or(""));
    // Feishu takes at most 50 characters.
    crypto::hex(&crypto::sha256(seed.as_bytes()))[..40].to_string()
}

fn transport_error(err: reqwest::Error, timeout: Duration) -> FeishuError {
    let err = err.without_url();
    if err.is_builder() {
        return FeishuError::Config(format!("invalid request: {err}"));
    }
    let message = if err.is_timeout() {
        format!("request timed out after {}ms (Feishu may still have processed it)", timeout.as_millis())
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        format!("request failed: {text}")
    };
    FeishuError::Retry { code: 0, message, after: None }
}

fn code_error(code: i64, msg: &str, status: u16, after: Option<Duration>) -> FeishuError {
    let message = if msg.is_empty() { format!("HTTP {status}") } else { format!("{msg} (HTTP {status})") };
    if is_rate_limit(code) || status == 429 {
        FeishuError::Retry { code, message, after: Some(after.unwrap_or(RATE_LIMIT_BACKOFF)) }
    } else if is_token_error(code) || status >= 500 {
        FeishuError::Retry { code, message, after: None }
    } else {
        FeishuError::Fatal { code, message }
    }
}

/// Sends a request; returns the JSON answer when `code` is 0 (or legacy `StatusCode` 0).
async fn exchange(request: reqwest::RequestBuilder, timeout: Duration) -> Result<Value, FeishuError> {
    let mut response = request.send().await.map_err(|e| transport_error(e, timeout))?;
    let status = response.status();
    let after = response
        .headers()
        .get("x-ogw-ratelimit-reset")
        .or_else(|| response.headers().get(reqwest::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.clamp(1, 60)));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(e, timeout))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(FeishuError::BadResponse(format!("response body over {MAX_RESPONSE_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let value: Option<Value> = serde_json::from_slice(&body).ok();
    let code = value.as_ref().and_then(|v| v.get("code").or_else(|| v.get("StatusCode"))).and_then(Value::as_i64);
    match (value, code) {
        (Some(v), Some(0)) if status.is_success() => Ok(v),
        (Some(v), Some(code)) => {
            let msg = v.get("msg").or_else(|| v.get("StatusMessage")).and_then(Value::as_str).unwrap_or_default();
            Err(code_error(if code == 0 { i64::from(status.as_u16()) } else { code }, msg, status.as_u16(), after))
        }
        _ if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 => {
            Err(code_error(i64::from(status.as_u16()), "", status.as_u16(), after))
        }
        _ if !status.is_success() => {
            Err(FeishuError::Fatal { code: i64::from(status.as_u16()), message: format!("HTTP {status}") })
        }
        _ => {
            let preview: String = String::from_utf8_lossy(&body).chars().take(80).collect();
            Err(FeishuError::BadResponse(format!("no code in the answer: {preview:?}")))
        }
    }
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
    expires_at: Instant,
}

/// One app's push client. Cheap to clone; clones share the token cache and the pacing.
#[derive(Clone)]
pub struct FeishuClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    creds: Credentials,
    timeout: Duration,
    token: Mutex<Option<CachedToken>>,
    fetches: std::sync::atomic::AtomicU64,
    windows: StdMutex<HashMap<String, VecDeque<Instant>>>,
    /// Uploaded images by the SHA-256 of their bytes: a resend reuses the key (same body).
    images: StdMutex<HashMap<[u8; 32], String>>,
}

impl fmt::Debug for FeishuClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeishuClient")
            .field("base_url", &self.inner.base_url)
            .field("app_id", &self.inner.creds.app_id)
            .finish_non_exhaustive()
    }
}

impl FeishuClient {
    pub fn new(base_url: &str, creds: Credentials, timeout: Duration) -> Result<Self, FeishuError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|e| FeishuError::Config(format!("invalid Feishu base URL {base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FeishuError::Config(format!("Feishu base URL {base_url:?} is not http(s)")));
        }
        if creds.app_id.trim().is_empty() || creds.app_secret.trim().is_empty() {
            return Err(FeishuError::Config("app_id and app_secret must be set".into()));
        }
        if timeout.is_zero() {
            return Err(FeishuError::Config("the request timeout must be more than zero".into()));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("chatcrm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FeishuError::Config(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                creds,
                timeout,
                token: Mutex::new(None),
                fetches: std::sync::atomic::AtomicU64::new(0),
                windows: StdMutex::new(HashMap::new()),
                images: StdMutex::new(HashMap::new()),
            }),
        })
    }

    pub fn app_id(&self) -> &str {
        &self.inner.creds.app_id
    }

    /// How many token fetches this client made.
    pub fn token_fetches(&self) -> u64 {
        self.inner.fetches.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The tenant access token, from the cache while fresh; concurrent callers share one fetch.
    pub async fn tenant_access_token(&self) -> Result<String, FeishuError> {
        self.token(None).await
    }

    /// With `rejected`, that token was just refused and must not be returned again.
    async fn token(&self, rejected: Option<&str>) -> Result<String, FeishuError> {
        // Held across the fetch: single flight. A waiter finds the new token when it gets the lock.
        let mut cached = self.inner.token.lock().await;
        let now = Instant::now();
        if let Some(c) = cached.as_ref()
            && now < c.refresh_at
            && rejected != Some(c.value.as_str())
        {
            return Ok(c.value.clone());
        }
        let url = format!("{}/open-apis/auth/v3/tenant_access_token/internal", self.inner.base_url);
        let body = json!({ "app_id": self.inner.creds.app_id, "app_secret": self.inner.creds.app_secret });
        let result = exchange(self.inner.http.post(url).json(&body), self.inner.timeout).await;
        self.inner.fetches.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let answer = match result {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(app_id = %self.inner.creds.app_id, error = %e, "feishu tenant_access_token fetch failed");
                // An early refresh failed: the current token, if still valid and not rejected, will do.
                if let Some(c) = cached.as_ref()
                    && now < c.expires_at
                    && rejected.is_none()
                {
                    return Ok(c.value.clone());
                }
                return Err(e);
            }
        };
        let value = answer
            .get("tenant_access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FeishuError::BadResponse("code 0 without tenant_access_token".into()))?
            .to_string();
        let lifetime = answer
            .get("expire")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, |s| Duration::from_secs(s.min(24 * 3600)));
        let now = Instant::now();
        let expires_at = now + lifetime;
        let refresh_at = expires_at - TOKEN_REFRESH_MARGIN.min(lifetime / 2);
        *cached = Some(CachedToken { value: value.clone(), refresh_at, expires_at });
        Ok(value)
    }

    /// Waits until a send to `key` keeps within `limit` per second (in this process).
    async fn pace(&self, key: &str, limit: usize) {
        loop {
            let wait = {
                let mut windows = self.inner.windows.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let w = windows.entry(key.to_string()).or_default();
                while w.front().is_some_and(|t| now.duration_since(*t) >= WINDOW + WINDOW_SLACK) {
                    w.pop_front();
                }
                if w.len() < limit {
                    w.push_back(now);
                    None
                } else {
                    w.front().map(|t| (*t + WINDOW + WINDOW_SLACK).saturating_duration_since(now))
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d.max(Duration::from_millis(5))).await,
            }
        }
    }

    /// An authorised call; on a token error the token is fetched again and the call retried once.
    async fn authorised(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Value, FeishuError> {
        let token = self.token(None).await?;
        match exchange(build(&self.inner.http, &token), self.inner.timeout).await {
            Err(e) if is_token_error(e.code()) => {
                tracing::info!(code = e.code(), "feishu rejected the tenant token; fetching a new one");
                let token = self.token(Some(&token)).await?;
                exchange(build(&self.inner.http, &token), self.inner.timeout).await
            }
            other => other,
        }
    }

    /// Sends one part to a user or chat, or as a reply. Returns Feishu's message id.
    pub async fn send_part(&self, to: &Recipient, part: &Part, uuid: &str) -> Result<String, FeishuError> {
        let content = part.content.to_string();
        let base = &self.inner.base_url;
        let answer = match to {
            Recipient::Id { id_type, id } => {
                let url = format!("{base}/open-apis/im/v1/messages");
                let body = json!({ "receive_id": id, "msg_type": part.msg_type, "content": content, "uuid": uuid });
                self.authorised(|http, token| {
                    http.post(&url).query(&[("receive_id_type", *id_type)]).bearer_auth(token).json(&body)
                })
                .await?
            }
            Recipient::Reply(message_id) => {
                let url = format!("{base}/open-apis/im/v1/messages/{message_id}/reply");
                let body = json!({ "msg_type": part.msg_type, "content": content, "uuid": uuid });
                self.authorised(|http, token| http.post(&url).bearer_auth(token).json(&body)).await?
            }
            Recipient::Bot(_) => return Err(FeishuError::Config("custom bots are sent through deliver_to_bot".into())),
        };
        Ok(answer.pointer("/data/message_id").and_then(Value::as_str).unwrap_or_default().to_string())
    }

    /// Uploads a PNG/JPEG for sending (`image_type=message`); the key is reused for the same bytes.
    pub async fn upload_image(&self, bytes: &[u8]) -> Result<String, FeishuError> {
        if bytes.is_empty() || bytes.len() > IMAGE_MAX_BYTES {
            return Err(FeishuError::Config(format!("the image is {} bytes (1..={IMAGE_MAX_BYTES})", bytes.len())));
        }
        let (file, mime) = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            ("chart.png", "image/png")
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            ("chart.jpg", "image/jpeg")
        } else {
            return Err(FeishuError::Config("the image is neither PNG nor JPEG".into()));
        };
        let digest = crypto::sha256(bytes);
        if let Some(key) = self.inner.images.lock().unwrap_or_else(PoisonError::into_inner).get(&digest) {
            return Ok(key.clone());
        }
        let url = format!("{}/open-apis/im/v1/images", self.inner.base_url);
        let answer = self
            .authorised(|http, token| {
                let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file).mime_str(mime);
                let form = reqwest::multipart::Form::new().text("image_type", "message");
                let form = match part {
                    Ok(p) => form.part("image", p),
                    Err(_) => form,
                };
                http.post(&url).bearer_auth(token).multipart(form)
            })
            .await?;
        let key = answer
            .pointer("/data/image_key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| FeishuError::BadResponse("image upload answered without image_key".into()))?
            .to_string();
        let mut images = self.inner.images.lock().unwrap_or_else(PoisonError::into_inner);
        if images.len() > 64 {
            images.clear();
        }
        images.insert(digest, key.clone());
        Ok(key)
    }

    /// Delivers an outbox message to a user, chat or message thread.
    pub async fn deliver(&self, to: &Recipient, message: &OutMessage) -> Result<(), FeishuError> {
        self.deliver_keyed(to, message, None).await
    }

    /// As [`FeishuClient::deliver`], with an extra idempotency seed (e.g. the outbox dedupe key).
    pub async fn deliver_keyed(
        &self,
        to: &Recipient,
        message: &OutMessage,
        key: Option<&str>,
    ) -> Result<(), FeishuError> {
        let parts = match &message.image_png {
            Some(png) => {
                vec![Part { msg_type: "image", content: json!({ "image_key": self.upload_image(png).await? }) }]
            }
            None => parts(message, TEXT_MAX_BYTES),
        };
        if parts.is_empty() {
            return Err(FeishuError::Config("empty message".into()));
        }
        let pace_key = to.pace_key();
        for (i, part) in parts.iter().enumerate() {
            let uuid = idempotency_key(&self.inner.creds.app_id, &pace_key, message, key, i);
            self.pace("", PER_APP_PER_SECOND).await;
            self.pace(&pace_key, PER_RECEIVER_PER_SECOND).await;
            if let Err(e) = self.send_part(to, part, &uuid).await {
                log_failure(&pace_key, &e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Delivers to a custom bot webhook (signed when the bot has a secret).
    pub async fn deliver_to_bot(&self, bot: &Bot, message: &OutMessage) -> Result<(), FeishuError> {
        let url = if bot.hook.starts_with("http://") || bot.hook.starts_with("https://") {
            bot.hook.clone()
        } else {
            format!("{}/open-apis/bot/v2/hook/{}", self.inner.base_url, bot.hook)
        };
        let bodies: Vec<Value> = match &message.image_png {
            Some(png) => {
                vec![json!({ "msg_type": "image", "content": { "image_key": self.upload_image(png).await? } })]
            }
            None => parts(message, BOT_TEXT_MAX_BYTES)
                .into_iter()
                .map(|p| {
                    if p.msg_type == "interactive" {
                        json!({ "msg_type": "interactive", "card": p.content })
                    } else {
                        json!({ "msg_type": p.msg_type, "content": p.content })
                    }
                })
                .collect(),
        };
        let pace_key = format!("hook:{}", crypto::hex(&crypto::sha256(bot.hook.as_bytes()))[..12].to_owned());
        for mut body in bodies {
            if let (Some(secret), Some(obj)) = (&bot.secret, body.as_object_mut()) {
                let ts = chrono::Utc::now().timestamp();
                obj.insert("timestamp".into(), json!(ts.to_string()));
                obj.insert("sign".into(), json!(crypto::bot_sign(ts, secret)));
            }
            self.pace(&pace_key, PER_RECEIVER_PER_SECOND).await;
            if let Err(e) = exchange(self.inner.http.post(&url).json(&body), self.inner.timeout).await {
                log_failure("custom bot", &e);
                return Err(e);
            }
        }
        Ok(())
    }
}

fn log_failure(dest: &str, e: &FeishuError) {
    match e {
        FeishuError::Retry { .. } | FeishuError::BadResponse(_) => {
            tracing::warn!(dest, error = %e, "feishu push failed; the outbox retries")
        }
        _ => tracing::error!(dest, error = %e, "feishu push failed; not retrying"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        assert_eq!(Recipient::parse("ou_1").ok(), Some(Recipient::Id { id_type: "open_id", id: "ou_1".into() }));
        assert_eq!(Recipient::parse("chat:oc_9").ok(), Some(Recipient::Id { id_type: "chat_id", id: "oc_9".into() }));
        assert_eq!(Recipient::parse("reply:om_3").ok(), Some(Recipient::Reply("om_3".into())));
        assert_eq!(Recipient::parse("bot:team").ok(), Some(Recipient::Bot("team".into())));
        assert!(Recipient::parse("fax:123").is_err());
        assert!(Recipient::parse("").is_err());
        assert!(Recipient::parse("open_id:").is_err());
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let m = OutMessage::text("hi");
        let a = idempotency_key("cli_1", "open_id:ou_1", &m, None, 0);
        assert_eq!(a, idempotency_key("cli_1", "open_id:ou_1", &m, None, 0));
        assert_eq!(a.len(), 40);
        assert_ne!(a, idempotency_key("cli_1", "open_id:ou_1", &m, None, 1));
        assert_ne!(a, idempotency_key("cli_1", "open_id:ou_2", &m, None, 0));
        assert_ne!(a, idempotency_key("cli_1", "open_id:ou_1", &m, Some("k"), 0));
    }

    #[test]
    fn error_classes() {
        assert!(matches!(code_error(99991400, "", 400, None), FeishuError::Retry { after: Some(_), .. }));
        assert!(matches!(code_error(230001, "bad id", 400, None), FeishuError::Fatal { .. }));
        assert!(matches!(code_error(500, "", 500, None), FeishuError::Retry { after: None, .. }));
    }
}
