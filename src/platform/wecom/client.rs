//! WeCom (企业微信) outbound push.
//!
//! Two senders live here:
//!
//! - [`WecomClient`] sends app messages with `POST /cgi-bin/message/send`. It owns the app's access token:
//!   one cached token per secret, refreshed a little before `expires_in` runs out, and dropped and fetched
//!   again when WeCom rejects it (40014/42001/42007/40001). Only one `gettoken` call is ever in flight; every
//!   other sender waits for its result (PLATFORMS.md 1.9, pitfall 9).
//!   An image ([`Message::Image`]) is uploaded first (`media/upload`, multipart) and sent by its `media_id`;
//!   the id is kept for [`MEDIA_REUSE`] so that a retry sends the identical body and the duplicate check
//!   drops it if the first attempt did arrive.
//! - [`RobotClient`] posts to group-robot webhooks. It keeps WeCom's limit of 20 messages a minute per robot
//!   with a sliding window in this process, and splits long text on line boundaries ([`split_for_limit`]).
//!
//! Neither sender retries transient failures itself (apart from the single retry after a token refresh):
//! they return [`PushError`], whose [`class`](PushError::class) tells the caller (the outbox) whether to try
//! again later. [`classify`] is the errcode table behind that answer (PLATFORMS.md 1.10).
//!
//! Every failure is logged once, with its code, its class and what happens next. The app secret, the access
//! token and robot webhook keys are never logged: they travel in URL query strings, so every transport error
//! is stripped of its URL before it is logged or returned.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// WeCom's API host. Tests and demos point the clients at the mock server (`super::mock`) instead.
pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";
/// `text.content` and `markdown.content` of an app message, and `text.content` of a robot message.
pub const TEXT_MAX_BYTES: usize = 2048;
/// `markdown.content` of a robot message.
pub const ROBOT_MARKDOWN_MAX_BYTES: usize = 4096;
/// Messages one group robot accepts per minute.
pub const ROBOT_MAX_PER_MINUTE: usize = 20;
/// Largest image we send: WeCom's limit for robot images (app images may be 10 MB, but a chart is far
/// smaller and one limit keeps both paths alike).
pub const IMAGE_MAX_BYTES: usize = 2 * 1024 * 1024;
/// How long an uploaded image's `media_id` is reused for the same bytes. WeCom keeps temporary media for
/// 3 days; reusing the id makes a resend identical, which the duplicate check then drops.
pub const MEDIA_REUSE: Duration = Duration::from_secs(2 * 24 * 3600);
/// Uploaded images remembered at most (their ids only).
const MEDIA_CACHE_MAX: usize = 64;
/// Sent with every app message: WeCom drops an identical body sent again within this many seconds, which
/// makes a retry after a lost answer (a timeout) harmless.
pub const DUPLICATE_CHECK_INTERVAL_SECS: u64 = 1800;

/// How long to wait after 45009 (API frequency limit): blocks last about as long as the window.
const FREQUENCY_LIMIT_BACKOFF: Duration = Duration::from_secs(60);
/// Refresh the token this long before it expires (or after half its lifetime, if that is sooner).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Used when `gettoken` answers without `expires_in`; the documented lifetime.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);
/// A longer `expires_in` is not believed (and could overflow an `Instant`).
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;
/// After `gettoken` failed for good (wrong secret, untrusted IP) nobody asks again for this long: repeated
/// wrong secrets get the caller's IP blocked for an hour.
const FATAL_TOKEN_COOLDOWN: Duration = Duration::from_secs(60);
/// WeCom's answers are a few hundred bytes; anything this large is not WeCom.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the caller should do with a failed push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: try again later, with backoff (or after the given delay).
    Retry,
    /// Retrying the same request cannot help: fix the configuration or the message, or drop it.
    Fatal,
}

/// One row of the errcode table: code, class, and what it means for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrcodeInfo {
    pub code: i64,
    pub class: ErrorClass,
    pub action: &'static str,
}

const fn row(code: i64, class: ErrorClass, action: &'static str) -> ErrcodeInfo {
    ErrcodeInfo { code, class, action }
}

/// The errcodes we know, from PLATFORMS.md 1.10 and WeCom's global code list (90313). A code not listed here
/// is [`ErrorClass::Fatal`]: WeCom's codes are overwhelmingly parameter and permission errors, which do not
/// heal by themselves, and retrying them forever would only hide the problem.
pub const ERRCODES: &[ErrcodeInfo] = &[
    row(-1, ErrorClass::Retry, "system busy: retry with backoff, at most 3 times"),
    row(6000, ErrorClass::Retry, "data version conflict: retry later"),
    row(40001, ErrorClass::Fatal, "invalid secret (gettoken): fix the app secret; not retried in a loop"),
    row(40003, ErrorClass::Fatal, "invalid userid: fix the recipient"),
    row(40004, ErrorClass::Fatal, "invalid media type: only JPG/PNG images are sent"),
    row(40007, ErrorClass::Fatal, "invalid media_id (expired or unknown): upload the image again"),
    row(40008, ErrorClass::Fatal, "invalid msgtype: client bug"),
    row(40009, ErrorClass::Fatal, "invalid image size: keep images under 2 MB"),
    row(40013, ErrorClass::Fatal, "invalid corpid: fix the configuration"),
    row(40014, ErrorClass::Retry, "invalid access_token: token dropped, fetched again, call retried once"),
    row(40035, ErrorClass::Fatal, "invalid parameter: fix the payload"),
    row(40056, ErrorClass::Fatal, "invalid agentid: fix the configuration"),
    row(41001, ErrorClass::Fatal, "access_token missing: client bug (it belongs in the query string)"),
    row(41005, ErrorClass::Fatal, "media data missing: client bug (the multipart field is `media`)"),
    row(42001, ErrorClass::Retry, "access_token expired: token dropped, fetched again, call retried once"),
    row(42007, ErrorClass::Retry, "treated as an expired token: token dropped, fetched again, call retried once"),
    row(44001, ErrorClass::Fatal, "empty media file: fix the payload"),
    row(44004, ErrorClass::Fatal, "empty content: fix the payload"),
    row(45002, ErrorClass::Fatal, "content too long: split the message"),
    row(45009, ErrorClass::Retry, "API frequency limit: back off about a minute"),
    row(45033, ErrorClass::Retry, "too many concurrent calls: lower concurrency, retry later"),
    row(47001, ErrorClass::Fatal, "malformed request body: client bug"),
    row(48002, ErrorClass::Fatal, "API forbidden for this app: grant the permission"),
    row(60011, ErrorClass::Fatal, "no permission on the member, department or tag: widen the app's visibility scope"),
    row(60020, ErrorClass::Fatal, "caller IP not in the trusted IPs: add the egress IP"),
    row(81013, ErrorClass::Fatal, "every recipient invalid: message dropped"),
    row(93000, ErrorClass::Fatal, "robot webhook invalid or robot removed: disable the webhook"),
    row(301019, ErrorClass::Fatal, "robot image md5 does not match its bytes: client bug"),
];

/// The class of a WeCom errcode (see [`ERRCODES`]). Unknown codes are [`ErrorClass::Fatal`]. Errcode 0 is
/// success and is not an error; it is not in the table.
pub fn classify(errcode: i64) -> ErrorClass {
    errcode_info(errcode).map_or(ErrorClass::Fatal, |info| info.class)
}

/// The table row for a code, if the code is known.
pub fn errcode_info(errcode: i64) -> Option<&'static ErrcodeInfo> {
    ERRCODES.iter().find(|info| info.code == errcode)
}

/// Codes that mean "this access token is no good": drop it, fetch another, retry once. 40001 is documented
/// for `gettoken` (wrong secret); another API answering it means the token came from a secret that has since
/// been reset, so a fresh `gettoken` settles it either way (it then fails with a fatal 40001).
pub fn is_token_error(errcode: i64) -> bool {
    matches!(errcode, 40001 | 40014 | 42001 | 42007)
}

/// Why a push failed. [`PushError::class`] says whether to try again.
///
/// `code` is WeCom's errcode when WeCom answered with one, the HTTP status for an HTTP-level failure
/// (500, 502, 404, …; WeCom's own codes never collide with those), and 0 for a timeout or a connection error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Transient: 45009 (frequency limit), -1 (busy), 45033, HTTP 5xx/429, timeouts, connection errors.
    /// Retry with backoff, not before `after` when it is set. A timed-out request may still have been
    /// delivered; app messages carry `enable_duplicate_check` so that the retry is then dropped by WeCom.
    #[error("WeCom error {code} (transient): {message}")]
    Retry { code: i64, message: String, after: Option<Duration> },
    /// WeCom rejected the token again right after a refresh. The cached token has been dropped; retry later.
    #[error("WeCom rejected a freshly fetched access token (errcode {code})")]
    RefreshAndRetry { code: i64 },
    /// Retrying cannot help: configuration (60020, 40001, 40056, 48002), recipients (81013, 40003), payload.
    #[error("WeCom error {code}: {message}")]
    Fatal { code: i64, message: String },
    /// Refused locally, without a request: the robot has used its 20 messages of the last minute.
    #[error("robot rate limit reached; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The server answered something that is not a WeCom response (not JSON, no errcode, too large).
    #[error("unreadable WeCom response: {0}")]
    BadResponse(String),
    /// Refused locally: bad settings or a message WeCom would reject or truncate.
    #[error("WeCom push not attempted: {0}")]
    Config(String),
}

impl PushError {
    /// Whether the caller should try again later.
    ///
    /// `BadResponse` is [`ErrorClass::Retry`]: it usually comes from a proxy or a gateway page, and the
    /// duplicate check makes a resend harmless. The outbox's attempt limit bounds it if it persists.
    pub fn class(&self) -> ErrorClass {
        match self {
            PushError::Retry { .. }
            | PushError::RefreshAndRetry { .. }
            | PushError::RateLimited { .. }
            | PushError::BadResponse(_) => ErrorClass::Retry,
            PushError::Fatal { .. } | PushError::Config(_) => ErrorClass::Fatal,
        }
    }

    /// WeCom's errcode or the HTTP status, where there is one.
    pub fn code(&self) -> Option<i64> {
        match self {
            PushError::Retry { code, .. } | PushError::RefreshAndRetry { code } | PushError::Fatal { code, .. } => {
                Some(*code)
            }
            PushError::RateLimited { .. } | PushError::BadResponse(_) | PushError::Config(_) => None,
        }
    }

    /// The earliest sensible retry, where the failure says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PushError::Retry { after, .. } => *after,
            PushError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// What happens next, for the log line.
    fn next_step(&self) -> String {
        match self {
            PushError::Retry { after: Some(after), .. } => format!("caller should retry in {}s", after.as_secs()),
            PushError::Retry { .. } => "caller should retry with backoff".to_owned(),
            PushError::RefreshAndRetry { .. } => "token dropped; caller should retry later".to_owned(),
            PushError::RateLimited { retry_after } => {
                format!("not sent; robot window frees up in {}ms", retry_after.as_millis())
            }
            PushError::BadResponse(_) => "caller should retry with backoff".to_owned(),
            PushError::Fatal { code, .. } => match errcode_info(*code) {
                Some(info) => format!("not retrying: {}", info.action),
                None => "not retrying".to_owned(),
            },
            PushError::Config(_) => "not retrying: fix the settings or the message".to_owned(),
        }
    }
}

/// Turn a non-zero errcode into an error of its class.
fn api_error(code: i64, errmsg: &str) -> PushError {
    let message = if errmsg.is_empty() { "(no errmsg)".to_owned() } else { errmsg.to_owned() };
    match classify(code) {
        ErrorClass::Retry => {
            let after = (code == 45009).then_some(FREQUENCY_LIMIT_BACKOFF);
            PushError::Retry { code, message, after }
        }
        ErrorClass::Fatal => PushError::Fatal { code, message },
    }
}

/// Log one failed exchange with WeCom: code, class and what happens next; never a secret.
fn log_failure(api: &str, dest: &str, err: &PushError) {
    let code = err.code().unwrap_or(0);
    let class = err.class();
    let next = err.next_step();
    match class {
        ErrorClass::Retry => {
            tracing::warn!(api, dest, code, class = ?class, next = %next, error = %err, "WeCom push failed")
        }
        ErrorClass::Fatal => {
            tracing::error!(api, dest, code, class = ?class, next = %next, error = %err, "WeCom push failed")
        }
    }
}

/// A self-built app's credentials. Each secret has its own token; keep apps apart (PLATFORMS.md 1.9).
#[derive(Clone, PartialEq, Eq)]
pub struct AppCredentials {
    pub corp_id: String,
    pub agent_id: i64,
    /// Never logged; `Debug` prints it redacted.
    pub secret: String,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("corp_id", &self.corp_id)
            .field("agent_id", &self.agent_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// An app message. Limits (bytes, UTF-8) are checked before sending: WeCom would truncate or reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// ≤ 2048 bytes; split longer text with [`split_for_limit`] first.
    Text(String),
    /// ≤ 2048 bytes. Renders only in the WeCom client, not in WeChat.
    Markdown(String),
    /// title ≤ 128 B, description ≤ 512 B, url ≤ 2048 B, btntxt ≤ 4 characters (WeCom's default is 详情).
    TextCard { title: String, description: String, url: String, btntxt: Option<String> },
    /// A `template_card` of type `button_interaction`, e.g. a reminder with 完成/推迟 buttons.
    /// `task_key` becomes `task_id`: unique within the app, ≤ 128 bytes of `[A-Za-z0-9_@-]`; WeCom echoes it
    /// with the pressed button's key in the `template_card_event` callback. `buttons` are `(key, text)`,
    /// 1 to 6 of them, keys ≤ 128 bytes.
    ButtonCard { title: String, description: String, task_key: String, buttons: Vec<(String, String)> },
    /// A PNG (or JPEG) picture, at most [`IMAGE_MAX_BYTES`]. Sending uploads it (`media/upload`) and
    /// then sends its `media_id`.
    Image { png: Vec<u8> },
}

impl Message {
    /// The message as `message/send` carries it, without the recipient fields (for snapshot tests).
    pub fn preview(&self) -> Value {
        json!({ "msgtype": self.msgtype(), self.msgtype(): self.payload(None) })
    }

    /// WeCom's `msgtype` for this message.
    pub fn msgtype(&self) -> &'static str {
        match self {
            Message::Text(_) => "text",
            Message::Markdown(_) => "markdown",
            Message::TextCard { .. } => "textcard",
            Message::ButtonCard { .. } => "template_card",
            Message::Image { .. } => "image",
        }
    }

    fn validate(&self) -> Result<(), PushError> {
        fn limit(what: &str, value: &str, max: usize) -> Result<(), PushError> {
            if value.len() > max {
                return Err(PushError::Config(format!("{what} is {} bytes, over WeCom's {max}", value.len())));
            }
            Ok(())
        }
        fn nonempty(what: &str, value: &str) -> Result<(), PushError> {
            if value.trim().is_empty() {
                return Err(PushError::Config(format!("{what} is empty")));
            }
            Ok(())
        }
        match self {
            Message::Text(content) | Message::Markdown(content) => {
                nonempty("content", content)?;
                if content.len() > TEXT_MAX_BYTES {
                    return Err(PushError::Config(format!(
                        "content is {} bytes, over WeCom's {TEXT_MAX_BYTES}; split it with split_for_limit",
                        content.len()
                    )));
                }
            }
            Message::TextCard { title, description, url, btntxt } => {
                nonempty("textcard title", title)?;
                nonempty("textcard description", description)?;
                nonempty("textcard url", url)?;
                limit("textcard title", title, 128)?;
                limit("textcard description", description, 512)?;
                limit("textcard url", url, 2048)?;
                if let Some(btntxt) = btntxt
                    && btntxt.chars().count() > 4
                {
                    return Err(PushError::Config(format!("textcard btntxt {btntxt:?} is over 4 characters")));
                }
            }
            Message::ButtonCard { title, description: _, task_key, buttons } => {
                nonempty("card title", title)?;
                let key_ok = |key: &str| {
                    !key.is_empty()
                        && key.len() <= 128
                        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@'))
                };
                if !key_ok(task_key) {
                    return Err(PushError::Config(format!(
                        "task_key {task_key:?} must be 1..=128 bytes of letters, digits, '_', '-' or '@'"
                    )));
                }
                if buttons.is_empty() || buttons.len() > 6 {
                    return Err(PushError::Config(format!(
                        "a button card needs 1 to 6 buttons, not {}",
                        buttons.len()
                    )));
                }
                for (key, text) in buttons {
                    nonempty("button text", text)?;
                    nonempty("button key", key)?;
                    limit("button key", key, 128)?;
                }
            }
            Message::Image { png } => validate_image(png)?,
        }
        Ok(())
    }

    /// The msgtype-specific object, e.g. `{"content": …}` for text. An image's is `{"media_id": …}`, known
    /// only after the upload: `media_id` is that id.
    fn payload(&self, media_id: Option<&str>) -> Value {
        match self {
            Message::Image { .. } => json!({ "media_id": media_id.unwrap_or_default() }),
            Message::Text(content) | Message::Markdown(content) => json!({ "content": content }),
            Message::TextCard { title, description, url, btntxt } => {
                let mut card = json!({ "title": title, "description": description, "url": url });
                if let (Some(btntxt), Some(object)) = (btntxt, card.as_object_mut()) {
                    object.insert("btntxt".to_owned(), json!(btntxt));
                }
                card
            }
            Message::ButtonCard { title, description, task_key, buttons } => {
                let button_list: Vec<Value> =
                    buttons.iter().map(|(key, text)| json!({ "text": text, "key": key })).collect();
                let mut card = json!({
                    "card_type": "button_interaction",
                    "main_title": { "title": title },
                    "task_id": task_key,
                    "button_list": button_list,
                });
                if !description.is_empty()
                    && let Some(object) = card.as_object_mut()
                {
                    object.insert("sub_title_text".to_owned(), json!(description));
                }
                card
            }
        }
    }
}

/// A delivered app message. Recipients WeCom could not deliver to are listed; the call still succeeded
/// (when every recipient is invalid WeCom fails the call with 81013 instead).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendOk {
    /// WeCom's message id (used to recall the message). Empty if WeCom left it out.
    pub msgid: String,
    pub invalid_users: Vec<String>,
    pub invalid_parties: Vec<String>,
    pub invalid_tags: Vec<String>,
    /// Recipients without a licence (接口许可) for this app.
    pub unlicensed_users: Vec<String>,
    /// For interactive template cards: lets the card be updated within 72 h.
    pub response_code: Option<String>,
}

impl SendOk {
    /// Some recipients did not get the message.
    pub fn is_partial(&self) -> bool {
        !(self.invalid_users.is_empty()
            && self.invalid_parties.is_empty()
            && self.invalid_tags.is_empty()
            && self.unlicensed_users.is_empty())
    }

    fn from_body(body: &Value) -> Self {
        SendOk {
            msgid: str_field(body, "msgid").unwrap_or_default(),
            invalid_users: id_list(body.get("invaliduser")),
            invalid_parties: id_list(body.get("invalidparty")),
            invalid_tags: id_list(body.get("invalidtag")),
            unlicensed_users: id_list(body.get("unlicenseduser")),
            response_code: str_field(body, "response_code").filter(|code| !code.is_empty()),
        }
    }
}

/// A string field, also accepting a number (WeCom has sent both for ids over the years).
fn str_field(body: &Value, name: &str) -> Option<String> {
    match body.get(name)? {
        Value::String(value) => Some(value.clone()),
        Value::Number(value) => Some(value.to_string()),
        _ => None,
    }
}

/// `"a|b"`, `["a","b"]` or `[1,2]` → `["a","b"]` / `["1","2"]`; anything else → empty.
fn id_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(joined)) => joined.split('|').filter(|id| !id.is_empty()).map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(id) if !id.is_empty() => Some(id.clone()),
                Value::Number(id) => Some(id.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What WeCom accepts as an image: 1 byte to [`IMAGE_MAX_BYTES`], PNG or JPEG.
fn validate_image(bytes: &[u8]) -> Result<(), PushError> {
    if bytes.is_empty() {
        return Err(PushError::Config("the image is empty".to_owned()));
    }
    if bytes.len() > IMAGE_MAX_BYTES {
        return Err(PushError::Config(format!("the image is {} bytes, over WeCom's {IMAGE_MAX_BYTES}", bytes.len())));
    }
    image_kind(bytes).ok_or_else(|| PushError::Config("the image is neither PNG nor JPEG".to_owned()))?;
    Ok(())
}

/// (file extension, content type) from the magic bytes.
fn image_kind(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(("png", "image/png"))
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(("jpg", "image/jpeg"))
    } else {
        None
    }
}

/// Lower-case hex MD5 of the raw bytes, as the robot's `image.md5` wants it.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Build the shared reqwest client: ring-based rustls (no aws-lc), one timeout for the whole request.
fn build_http(timeout: Duration) -> Result<reqwest::Client, PushError> {
    if timeout.is_zero() {
        return Err(PushError::Config("the request timeout must be more than zero".to_owned()));
    }
    // reqwest is built with `rustls-no-provider`; it needs a process-wide provider before `build`. Another
    // part of the program may have installed one already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("chatcrm/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| PushError::Config(format!("cannot build the HTTP client: {}", error_chain(&err.without_url()))))
}

/// `err` and its sources, joined. Callers strip URLs first: they carry tokens and keys.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A transport-level failure (nothing usable came back). Always transient except for a request that could
/// not even be built.
fn transport_error(err: reqwest::Error, timeout: Duration) -> PushError {
    let err = err.without_url();
    if err.is_builder() {
        return PushError::Config(format!("invalid request: {}", error_chain(&err)));
    }
    let message = if err.is_timeout() {
        format!("request timed out after {}ms (WeCom may still have processed it)", timeout.as_millis())
    } else if err.is_connect() {
        format!("connection failed: {}", error_chain(&err))
    } else {
        format!("request failed: {}", error_chain(&err))
    };
    PushError::Retry { code: 0, message, after: None }
}

/// Send a prepared request and return the JSON object WeCom answered, errcode included (not yet checked).
async fn exchange(request: reqwest::RequestBuilder, timeout: Duration) -> Result<Value, PushError> {
    let mut response = request.send().await.map_err(|err| transport_error(err, timeout))?;
    let status = response.status();
    if !status.is_success() {
        let code = i64::from(status.as_u16());
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = format!("HTTP {status}");
        return Err(if status.is_server_error() || code == 429 || code == 408 {
            PushError::Retry { code, message, after }
        } else {
            PushError::Fatal { code, message }
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| transport_error(err, timeout))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(PushError::BadResponse(format!("response body over {MAX_RESPONSE_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let value: Value = serde_json::from_slice(&body).map_err(|err| {
        let preview: String = String::from_utf8_lossy(&body).chars().take(80).collect();
        PushError::BadResponse(format!("not JSON ({err}): {preview:?}"))
    })?;
    if !value.is_object() {
        return Err(PushError::BadResponse("JSON response is not an object".to_owned()));
    }
    Ok(value)
}

/// `errcode` (required) and `errmsg` of a WeCom answer.
fn errcode_of(body: &Value) -> Result<(i64, String), PushError> {
    let code = body
        .get("errcode")
        .and_then(Value::as_i64)
        .ok_or_else(|| PushError::BadResponse("response has no integer errcode".to_owned()))?;
    let errmsg = body.get("errmsg").and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok((code, errmsg))
}

/// Sends app messages for one self-built app. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct WecomClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    app: AppCredentials,
    timeout: Duration,
    /// Held for the whole `gettoken` exchange, so a refresh is single-flight.
    token: Mutex<TokenState>,
    /// Completed `gettoken` attempts; bumped while `token` is held.
    fetch_attempts: AtomicU64,
    /// Uploaded images by the SHA-256 of their bytes: (media_id, uploaded at). See [`MEDIA_REUSE`].
    media: StdMutex<HashMap<[u8; 32], (String, Instant)>>,
}

#[derive(Default)]
struct TokenState {
    cached: Option<CachedToken>,
    last_failure: Option<TokenFailure>,
}

struct CachedToken {
    value: String,
    /// Fetch a new one from here on (a little before expiry).
    refresh_at: Instant,
    /// Past this WeCom no longer accepts it.
    expires_at: Instant,
}

struct TokenFailure {
    /// Value of `fetch_attempts` after the failed attempt.
    attempt: u64,
    at: Instant,
    error: PushError,
}

impl fmt::Debug for WecomClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WecomClient")
            .field("base_url", &self.inner.base_url)
            .field("corp_id", &self.inner.app.corp_id)
            .field("agent_id", &self.inner.app.agent_id)
            .finish_non_exhaustive()
    }
}

impl WecomClient {
    /// A client for one app. `base_url` is normally [`DEFAULT_BASE_URL`]; tests point it at the mock.
    /// `timeout` bounds each HTTP request (connect, send and read together).
    pub fn new(base_url: &str, app: AppCredentials, timeout: Duration) -> Result<Self, PushError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|err| PushError::Config(format!("invalid WeCom base URL {base_url:?}: {err}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PushError::Config(format!("WeCom base URL {base_url:?} is not http(s)")));
        }
        if app.corp_id.trim().is_empty() || app.secret.trim().is_empty() {
            return Err(PushError::Config("corp_id and secret must be set".to_owned()));
        }
        let http = build_http(timeout)?;
        Ok(WecomClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                app,
                timeout,
                token: Mutex::new(TokenState::default()),
                fetch_attempts: AtomicU64::new(0),
                media: StdMutex::new(HashMap::new()),
            }),
        })
    }

    /// The app's access token, from the cache while it is fresh. Concurrent callers share one `gettoken`.
    pub async fn access_token(&self) -> Result<String, PushError> {
        self.token(None).await
    }

    /// Get a usable token. With `rejected`, that token was just refused by WeCom and must not be returned.
    ///
    /// Single flight: the cache lock is held across `gettoken`, so while one caller fetches, the others wait
    /// and then find the new token in the cache. A waiter whose wait covered a failed fetch gets that
    /// failure instead of fetching again, so a wrong secret is tried once, not once per waiting sender.
    async fn token(&self, rejected: Option<&str>) -> Result<String, PushError> {
        let attempts_seen = self.inner.fetch_attempts.load(Ordering::Acquire);
        let mut state = self.inner.token.lock().await;
        let now = Instant::now();
        // A fetch that finished while this caller waited for the lock was made for it too.
        let fetched_meanwhile = self.inner.fetch_attempts.load(Ordering::Acquire) > attempts_seen;
        if let Some(cached) = &state.cached
            && now < cached.refresh_at
            && (fetched_meanwhile || rejected != Some(cached.value.as_str()))
        {
            return Ok(cached.value.clone());
        }
        if let Some(failure) = &state.last_failure {
            let shared = failure.attempt > attempts_seen;
            let cooling = failure.error.class() == ErrorClass::Fatal && now < failure.at + FATAL_TOKEN_COOLDOWN;
            if shared || cooling {
                // As for the caller whose fetch failed: a still valid, not rejected token is better than none.
                if let Some(cached) = &state.cached
                    && now < cached.expires_at
                    && rejected.is_none()
                {
                    return Ok(cached.value.clone());
                }
                tracing::debug!(code = failure.error.code().unwrap_or(0), "reusing the result of a failed gettoken");
                return Err(failure.error.clone());
            }
        }
        if let Some(bad) = rejected
            && state.cached.as_ref().is_some_and(|cached| cached.value == bad)
        {
            state.cached = None;
        }

        let result = self.fetch_token().await;
        let attempt = self.inner.fetch_attempts.fetch_add(1, Ordering::AcqRel) + 1;
        let now = Instant::now();
        match result {
            Ok((value, lifetime)) => {
                let expires_at = now.checked_add(lifetime).unwrap_or(now);
                let same_as_before = state.cached.as_ref().is_some_and(|cached| cached.value == value);
                // WeCom hands out the same token again while it is valid, with the remaining lifetime. Keep
                // using it until it expires rather than asking again and again near the end of its life.
                let refresh_at =
                    if same_as_before { expires_at } else { expires_at - TOKEN_REFRESH_MARGIN.min(lifetime / 2) };
                state.cached = Some(CachedToken { value: value.clone(), refresh_at, expires_at });
                state.last_failure = None;
                tracing::debug!(lifetime_s = lifetime.as_secs(), "fetched a WeCom access token");
                Ok(value)
            }
            Err(error) => {
                log_failure("gettoken", &self.inner.app.corp_id, &error);
                state.last_failure = Some(TokenFailure { attempt, at: now, error: error.clone() });
                // An early refresh failed but the old token is still valid and was not rejected: use it.
                if let Some(cached) = &state.cached
                    && now < cached.expires_at
                    && rejected.is_none()
                {
                    tracing::warn!("using the current WeCom access token until it expires");
                    return Ok(cached.value.clone());
                }
                Err(error)
            }
        }
    }

    /// `GET /cgi-bin/gettoken` → (token, lifetime).
    async fn fetch_token(&self) -> Result<(String, Duration), PushError> {
        let url = format!("{}/cgi-bin/gettoken", self.inner.base_url);
        let request = self
            .inner
            .http
            .get(url)
            .query(&[("corpid", self.inner.app.corp_id.as_str()), ("corpsecret", self.inner.app.secret.as_str())]);
        let body = exchange(request, self.inner.timeout).await?;
        let (code, errmsg) = errcode_of(&body)?;
        if code != 0 {
            return Err(api_error(code, &errmsg));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| PushError::BadResponse("gettoken answered errcode 0 without access_token".to_owned()))?;
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .filter(|secs| *secs > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, |secs| Duration::from_secs(secs.min(MAX_TOKEN_LIFETIME_SECS)));
        Ok((token.to_owned(), lifetime))
    }

    /// Send `msg` to `to_user` (`|`-separated userids, at most 1000, or `@all`).
    ///
    /// The body carries `enable_duplicate_check: 1` with a 30-minute interval, so a retry of a request whose
    /// answer was lost (a timeout) does not reach the user twice. On a token error the token is fetched
    /// again and the call retried once. Other failures are returned for the caller to retry or drop (see
    /// [`PushError::class`]). Recipients WeCom rejected are listed in [`SendOk`] and logged.
    pub async fn send(&self, to_user: &str, msg: &Message) -> Result<SendOk, PushError> {
        let result = self.send_inner(to_user, msg).await;
        match &result {
            Ok(ok) if ok.is_partial() => tracing::warn!(
                api = "message/send",
                dest = to_user,
                msgid = %ok.msgid,
                invalid_users = ?ok.invalid_users,
                invalid_parties = ?ok.invalid_parties,
                invalid_tags = ?ok.invalid_tags,
                unlicensed_users = ?ok.unlicensed_users,
                "WeCom message delivered to some recipients only; the others are not retried"
            ),
            Ok(ok) => tracing::debug!(api = "message/send", dest = to_user, msgid = %ok.msgid, "WeCom message sent"),
            Err(_) => {}
        }
        result
    }

    async fn send_inner(&self, to_user: &str, msg: &Message) -> Result<SendOk, PushError> {
        if to_user.trim().is_empty() {
            let err = PushError::Config("no recipient".to_owned());
            log_failure("message/send", to_user, &err);
            return Err(err);
        }
        if let Err(err) = msg.validate() {
            log_failure("message/send", to_user, &err);
            return Err(err);
        }
        let Message::Image { png } = msg else {
            return self.send_body(to_user, &self.message_body(to_user, msg, None)).await;
        };
        let (media_id, reused) = self.image_media_id(png).await?;
        let result = self.send_body(to_user, &self.message_body(to_user, msg, Some(&media_id))).await;
        match result {
            // A remembered id WeCom no longer knows (media expire after 3 days, or were never kept): upload
            // again and send once more.
            Err(PushError::Fatal { code: 40007, .. }) if reused => {
                tracing::info!(
                    api = "message/send",
                    dest = to_user,
                    "WeCom forgot an uploaded image; uploading it again"
                );
                self.forget_media(png);
                let (media_id, _) = self.image_media_id(png).await?;
                self.send_body(to_user, &self.message_body(to_user, msg, Some(&media_id))).await
            }
            other => other,
        }
    }

    fn message_body(&self, to_user: &str, msg: &Message, media_id: Option<&str>) -> Value {
        let msgtype = msg.msgtype();
        json!({
            "touser": to_user,
            "msgtype": msgtype,
            "agentid": self.inner.app.agent_id,
            msgtype: msg.payload(media_id),
            "enable_duplicate_check": 1,
            "duplicate_check_interval": DUPLICATE_CHECK_INTERVAL_SECS,
        })
    }

    async fn send_body(&self, to_user: &str, body: &Value) -> Result<SendOk, PushError> {
        self.with_token("message/send", to_user, |token| async move { self.post_message(&token, body).await }).await
    }

    /// Runs `call` with the access token. On a token error the token is fetched again and `call` retried
    /// once; a second token error drops the token and is [`PushError::RefreshAndRetry`]. Failures are logged
    /// here (token failures where the token was fetched).
    /// (`call` takes the token by value: a future borrowing it would not be `Send` for every lifetime.)
    async fn with_token<T, F>(&self, api: &str, dest: &str, call: impl Fn(String) -> F) -> Result<T, PushError>
    where
        F: Future<Output = Result<T, PushError>>,
    {
        let token = self.token(None).await?;
        let first = call(token.clone()).await;
        let code = match first {
            Err(PushError::Fatal { code, .. } | PushError::Retry { code, .. }) if is_token_error(code) => code,
            other => {
                if let Err(err) = &other {
                    log_failure(api, dest, err);
                }
                return other;
            }
        };

        tracing::info!(api, code, "WeCom rejected the access token; fetching a new one, retrying once");
        let token = self.token(Some(&token)).await?;
        match call(token.clone()).await {
            Err(PushError::Fatal { code, .. } | PushError::Retry { code, .. }) if is_token_error(code) => {
                // Do not keep a token WeCom refuses: the next call starts with a fresh one.
                let mut state = self.inner.token.lock().await;
                if state.cached.as_ref().is_some_and(|cached| cached.value == token) {
                    state.cached = None;
                }
                drop(state);
                let err = PushError::RefreshAndRetry { code };
                log_failure(api, dest, &err);
                Err(err)
            }
            other => {
                if let Err(err) = &other {
                    log_failure(api, dest, err);
                }
                other
            }
        }
    }

    async fn post_message(&self, token: &str, body: &Value) -> Result<SendOk, PushError> {
        let url = format!("{}/cgi-bin/message/send", self.inner.base_url);
        let request = self.inner.http.post(url).query(&[("access_token", token)]).json(body);
        let answer = exchange(request, self.inner.timeout).await?;
        let (code, errmsg) = errcode_of(&answer)?;
        if code != 0 {
            return Err(api_error(code, &errmsg));
        }
        Ok(SendOk::from_body(&answer))
    }

    /// Uploads an image as temporary media (`POST /cgi-bin/media/upload?type=image`, multipart field
    /// `media`) and returns its `media_id`, valid for 3 days. Token errors are handled as for sends.
    pub async fn upload_image(&self, bytes: &[u8]) -> Result<String, PushError> {
        if let Err(err) = validate_image(bytes) {
            log_failure("media/upload", "image", &err);
            return Err(err);
        }
        let media_id = self
            .with_token("media/upload", "image", |token| async move { self.post_media(&token, bytes).await })
            .await?;
        tracing::debug!(api = "media/upload", bytes = bytes.len(), "WeCom image uploaded");
        Ok(media_id)
    }

    async fn post_media(&self, token: &str, bytes: &[u8]) -> Result<String, PushError> {
        let (extension, content_type) = image_kind(bytes).unwrap_or(("png", "image/png"));
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(format!("chart.{extension}"))
            .mime_str(content_type)
            .map_err(|err| {
                PushError::Config(format!("invalid image content type: {}", error_chain(&err.without_url())))
            })?;
        let form = reqwest::multipart::Form::new().part("media", part);
        let url = format!("{}/cgi-bin/media/upload", self.inner.base_url);
        let request = self.inner.http.post(url).query(&[("access_token", token), ("type", "image")]).multipart(form);
        let answer = exchange(request, self.inner.timeout).await?;
        let (code, errmsg) = errcode_of(&answer)?;
        if code != 0 {
            return Err(api_error(code, &errmsg));
        }
        str_field(&answer, "media_id")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| PushError::BadResponse("media/upload answered errcode 0 without media_id".to_owned()))
    }

    /// The `media_id` for these bytes: a remembered one younger than [`MEDIA_REUSE`] (then `true`), or a
    /// fresh upload.
    async fn image_media_id(&self, bytes: &[u8]) -> Result<(String, bool), PushError> {
        let key = media_key(bytes);
        let now = Instant::now();
        {
            let media = self.inner.media.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((id, at)) = media.get(&key)
                && now.duration_since(*at) < MEDIA_REUSE
            {
                return Ok((id.clone(), true));
            }
        }
        let id = self.upload_image(bytes).await?;
        let mut media = self.inner.media.lock().unwrap_or_else(PoisonError::into_inner);
        media.retain(|_, (_, at)| now.duration_since(*at) < MEDIA_REUSE);
        if media.len() >= MEDIA_CACHE_MAX
            && let Some(oldest) = media.iter().min_by_key(|(_, (_, at))| *at).map(|(key, _)| *key)
        {
            media.remove(&oldest);
        }
        media.insert(key, (id.clone(), now));
        Ok((id, false))
    }

    fn forget_media(&self, bytes: &[u8]) {
        self.inner.media.lock().unwrap_or_else(PoisonError::into_inner).remove(&media_key(bytes));
    }
}

fn media_key(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// A group-robot message. Text over 2048 bytes and markdown over 4096 bytes are sent as several messages,
/// split on line boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotMessage {
    /// `mentioned_list` holds userids or `"@all"`; `mentioned_mobile_list` phone numbers. Mentions go with the
    /// first part when the text is split.
    Text {
        content: String,
        mentioned_list: Vec<String>,
        mentioned_mobile_list: Vec<String>,
    },
    Markdown(String),
    /// A PNG or JPEG picture, at most [`IMAGE_MAX_BYTES`]; sent inline as base64 with the MD5 of the bytes.
    Image {
        png: Vec<u8>,
    },
}

impl RobotMessage {
    /// Plain text without mentions.
    pub fn text(content: impl Into<String>) -> Self {
        RobotMessage::Text { content: content.into(), mentioned_list: Vec::new(), mentioned_mobile_list: Vec::new() }
    }

    /// The bodies to post, one per part.
    fn bodies(&self) -> Result<Vec<Value>, PushError> {
        let (content, max) = match self {
            RobotMessage::Text { content, .. } => (content, TEXT_MAX_BYTES),
            RobotMessage::Markdown(content) => (content, ROBOT_MARKDOWN_MAX_BYTES),
            RobotMessage::Image { png } => {
                use base64::Engine as _;
                validate_image(png)?;
                let base64 = base64::engine::general_purpose::STANDARD.encode(png);
                return Ok(vec![json!({ "msgtype": "image", "image": { "base64": base64, "md5": md5_hex(png) } })]);
            }
        };
        if content.trim().is_empty() {
            return Err(PushError::Config("robot message content is empty".to_owned()));
        }
        let parts = split_for_limit(content, max);
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(index, part)| match self {
                RobotMessage::Text { mentioned_list, mentioned_mobile_list, .. } => {
                    let mut text = json!({ "content": part });
                    if index == 0
                        && let Some(object) = text.as_object_mut()
                    {
                        if !mentioned_list.is_empty() {
                            object.insert("mentioned_list".to_owned(), json!(mentioned_list));
                        }
                        if !mentioned_mobile_list.is_empty() {
                            object.insert("mentioned_mobile_list".to_owned(), json!(mentioned_mobile_list));
                        }
                    }
                    json!({ "msgtype": "text", "text": text })
                }
                // Images returned above.
                RobotMessage::Markdown(_) | RobotMessage::Image { .. } => {
                    json!({ "msgtype": "markdown", "markdown": { "content": part } })
                }
            })
            .collect())
    }
}

/// Posts to group-robot webhooks (`…/cgi-bin/webhook/send?key=KEY`). Cheap to clone; clones share the
/// rate-limit windows.
///
/// The limit is per process: with several instances sending for the same robot, give each a share of the
/// 20 (see [`RobotClient::with_rate_limit`]) or send through the outbox.
#[derive(Clone)]
pub struct RobotClient {
    inner: Arc<RobotInner>,
}

struct RobotInner {
    http: reqwest::Client,
    timeout: Duration,
    max_per_window: usize,
    window: Duration,
    /// Per robot: when each message of the current window was sent, oldest first.
    sent: StdMutex<HashMap<String, VecDeque<Instant>>>,
}

impl fmt::Debug for RobotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotClient")
            .field("max_per_window", &self.inner.max_per_window)
            .field("window", &self.inner.window)
            .finish_non_exhaustive()
    }
}

impl RobotClient {
    /// WeCom's limit: [`ROBOT_MAX_PER_MINUTE`] messages a minute per robot.
    pub fn new(timeout: Duration) -> Result<Self, PushError> {
        Self::with_rate_limit(timeout, ROBOT_MAX_PER_MINUTE, Duration::from_secs(60))
    }

    /// A different limit: a share of the 20 when several instances send for the same robots, or a higher
    /// one to watch WeCom enforce its own.
    pub fn with_rate_limit(timeout: Duration, max_per_window: usize, window: Duration) -> Result<Self, PushError> {
        if max_per_window == 0 || window.is_zero() {
            return Err(PushError::Config("the robot rate limit must allow at least one message".to_owned()));
        }
        let http = build_http(timeout)?;
        Ok(RobotClient {
            inner: Arc::new(RobotInner { http, timeout, max_per_window, window, sent: StdMutex::new(HashMap::new()) }),
        })
    }

    /// Post `msg` to the robot. A message longer than the limit goes out as several messages; all of them
    /// must fit in the robot's window, or nothing is sent and [`PushError::RateLimited`] says when to retry.
    /// If a later part fails, the earlier parts have been delivered.
    pub async fn send(&self, webhook_url: &str, msg: &RobotMessage) -> Result<(), PushError> {
        let (url, robot) = match parse_webhook(webhook_url) {
            Ok(parsed) => parsed,
            Err(err) => {
                log_failure("webhook/send", "robot", &err);
                return Err(err);
            }
        };
        let label = robot_label(&robot);
        let bodies = match msg.bodies() {
            Ok(bodies) => bodies,
            Err(err) => {
                log_failure("webhook/send", &label, &err);
                return Err(err);
            }
        };
        if let Err(err) = self.reserve(&robot, bodies.len()) {
            log_failure("webhook/send", &label, &err);
            return Err(err);
        }
        let parts = bodies.len();
        for (index, body) in bodies.iter().enumerate() {
            if let Err(err) = self.post(url.clone(), body).await {
                if matches!(err, PushError::Retry { code: 45009, .. }) {
                    // WeCom counts more than we did (another instance, a restart): hold back for a window.
                    self.fill_window(&robot);
                }
                let err = if parts > 1 { with_part(err, index + 1, parts) } else { err };
                log_failure("webhook/send", &label, &err);
                return Err(err);
            }
        }
        tracing::debug!(api = "webhook/send", dest = %label, parts, "WeCom robot message sent");
        Ok(())
    }

    /// Take `count` slots in the robot's sliding window, or say when enough of them free up.
    fn reserve(&self, robot: &str, count: usize) -> Result<(), PushError> {
        let max = self.inner.max_per_window;
        if count > max {
            return Err(PushError::Config(format!(
                "the message needs {count} robot messages, more than the {max} a robot accepts per window"
            )));
        }
        let now = Instant::now();
        let window = self.inner.window;
        let mut sent = self.inner.sent.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget robots whose window is empty, so the map does not grow with every webhook ever used.
        sent.retain(|_, times| times.back().is_some_and(|last| now.duration_since(*last) < window));
        let times = sent.entry(robot.to_owned()).or_default();
        while times.front().is_some_and(|first| now.duration_since(*first) >= window) {
            times.pop_front();
        }
        if times.len() + count > max {
            // The oldest `times.len() + count - max` sends must leave the window first.
            let must_expire = times.len() + count - max;
            let retry_after =
                times.get(must_expire - 1).map_or(window, |sent_at| (*sent_at + window).saturating_duration_since(now));
            return Err(PushError::RateLimited { retry_after });
        }
        times.extend(std::iter::repeat_n(now, count));
        Ok(())
    }

    /// Mark the robot's window as full from now on.
    fn fill_window(&self, robot: &str) {
        let now = Instant::now();
        let mut sent = self.inner.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let times = sent.entry(robot.to_owned()).or_default();
        times.clear();
        times.extend(std::iter::repeat_n(now, self.inner.max_per_window));
    }

    async fn post(&self, url: reqwest::Url, body: &Value) -> Result<(), PushError> {
        let answer = exchange(self.inner.http.post(url).json(body), self.inner.timeout).await?;
        let (code, errmsg) = errcode_of(&answer)?;
        if code != 0 {
            return Err(api_error(code, &errmsg));
        }
        Ok(())
    }
}

/// Parse a webhook URL; the robot's identity is its `key` (or the whole URL when it has none).
fn parse_webhook(webhook_url: &str) -> Result<(reqwest::Url, String), PushError> {
    // The URL itself is secret (its key lets anyone post to the chat): never echo it.
    let url = reqwest::Url::parse(webhook_url)
        .map_err(|err| PushError::Config(format!("invalid robot webhook URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PushError::Config("robot webhook URL is not http(s)".to_owned()));
    }
    let robot = url
        .query_pairs()
        .find(|(name, _)| name == "key")
        .map(|(_, key)| key.into_owned())
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| webhook_url.to_owned());
    Ok((url, robot))
}

/// A stable, non-secret name for a robot (its webhook key is a credential) in logs and errors.
pub fn robot_label(robot: &str) -> String {
    let mut hasher = DefaultHasher::new();
    robot.hash(&mut hasher);
    format!("robot-{:08x}", hasher.finish() & 0xffff_ffff)
}

fn with_part(err: PushError, part: usize, parts: usize) -> PushError {
    let note = format!(" (part {part} of {parts}; earlier parts were delivered)");
    match err {
        PushError::Retry { code, message, after } => PushError::Retry { code, message: message + &note, after },
        PushError::Fatal { code, message } => PushError::Fatal { code, message: message + &note },
        PushError::BadResponse(message) => PushError::BadResponse(message + &note),
        other => other,
    }
}

/// Split `text` into pieces of at most `max_bytes` bytes (UTF-8), breaking between lines.
///
/// Lines are kept whole and packed greedily; the line break at a split point is dropped (the message
/// boundary replaces it), and blank lines at the start of a piece are dropped. Only a line that alone is
/// longer than `max_bytes` is cut, at character boundaries. Empty text gives no pieces. A piece exceeds
/// `max_bytes` only when `max_bytes` is smaller than one character (a CJK character is 3 bytes).
pub fn split_for_limit(text: &str, max_bytes: usize) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    if text.len() <= max_bytes {
        return vec![text.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split('\n') {
        if let Some(piece) = current.as_mut() {
            if piece.len() + 1 + line.len() <= max_bytes {
                piece.push('\n');
                piece.push_str(line);
                continue;
            }
            pieces.extend(current.take());
        }
        if line.is_empty() {
            continue; // a blank line at the start of a piece
        }
        if line.len() <= max_bytes {
            current = Some(line.to_owned());
        } else {
            let mut cut = cut_at_char_boundaries(line, max_bytes);
            current = cut.pop();
            pieces.extend(cut);
        }
    }
    pieces.extend(current);
    pieces
}

/// Cut one over-long line into pieces of at most `max_bytes`, never inside a character.
fn cut_at_char_boundaries(line: &str, max_bytes: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < line.len() {
        let mut end = (start + max_bytes).min(line.len());
        while end > start && !line.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            // `max_bytes` is smaller than this character: it goes alone.
            end = start + line[start..].chars().next().map_or(1, char::len_utf8);
        }
        pieces.push(line[start..end].to_owned());
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_lines_whole() {
        let text = "一二三\n四五六\n七八九";
        assert_eq!(split_for_limit(text, 20), vec!["一二三\n四五六", "七八九"]);
        assert_eq!(split_for_limit(text, 9), vec!["一二三", "四五六", "七八九"]);
    }

    #[test]
    fn split_cuts_an_overlong_line_at_char_boundaries() {
        assert_eq!(split_for_limit("一二三四五", 7), vec!["一二", "三四", "五"]);
        assert_eq!(split_for_limit("é", 1), vec!["é"]);
    }

    #[test]
    fn split_drops_blank_lines_at_piece_starts() {
        assert_eq!(split_for_limit("abc\n\n\ndef", 3), vec!["abc", "def"]);
        assert_eq!(split_for_limit("abcd\n", 4), vec!["abcd"]);
        assert!(split_for_limit("", 10).is_empty());
    }

    #[tokio::test]
    async fn robot_window_reports_when_it_frees_up() {
        {
            let client =
                RobotClient::with_rate_limit(Duration::from_secs(1), 2, Duration::from_secs(60)).expect("client");
            assert_eq!(client.reserve("k", 1), Ok(()));
            assert_eq!(client.reserve("k", 1), Ok(()));
            match client.reserve("k", 1) {
                Err(PushError::RateLimited { retry_after }) => assert!(retry_after > Duration::from_secs(59)),
                other => panic!("expected RateLimited, got {other:?}"),
            }
            assert_eq!(client.reserve("other", 2), Ok(()));
            assert!(matches!(client.reserve("other", 3), Err(PushError::Config(_))));
        }
    }
}
