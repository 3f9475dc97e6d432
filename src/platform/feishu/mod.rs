//! Feishu / Lark (飞书): event callbacks (v2 schema) verified and decoded into
//! [`IncomingMessage`]s, and the push client the outbox delivers through. Protocol facts:
//! ../shared/PLATFORMS.md §3.

pub mod client;
pub mod crypto;
pub mod mock;
pub mod simulate;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PushFailure;
use crate::bot::IncomingMessage;
use crate::config::{ser_opt_secret, ser_secret};
use crate::outbox::OutMessage;
use crypto::FeishuCipher;

pub const PLATFORM: &str = "feishu";

/// `[feishu]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeishuSettings {
    /// Base URL of the open API (`https://open.feishu.cn`; Lark: `https://open.larksuite.com`;
    /// tests point it at the mock).
    pub api_base: String,
    /// Signed callbacks whose `X-Lark-Request-Timestamp` is further than this from now are
    /// rejected (replays). Applies when the app has an encrypt key (only then Feishu signs).
    pub timestamp_window_secs: u64,
    /// Feishu wants a 200 within 3 s: answer by then even if the bot is still working (its reply
    /// is queued in the outbox either way).
    pub ack_deadline_ms: u64,
    /// Let an unknown Feishu user become a rep on their first message.
    pub self_register: bool,
    /// A location message attaches to the sender's visit logged within this many minutes.
    pub location_window_minutes: u32,
    /// Timeout of each push request.
    pub request_timeout_ms: u64,
    pub apps: Vec<FeishuApp>,
}

impl Default for FeishuSettings {
    fn default() -> Self {
        Self {
            api_base: client::DEFAULT_BASE_URL.into(),
            timestamp_window_secs: 300,
            ack_deadline_ms: 2500,
            self_register: false,
            location_window_minutes: 120,
            request_timeout_ms: 10_000,
            apps: Vec::new(),
        }
    }
}

/// One custom app (自建应用).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuApp {
    /// The `{app}` in the callback URL `/callback/feishu/{app}`.
    pub name: String,
    /// The chatcrm org this app's users belong to.
    pub org: String,
    /// The tenant key identities are linked under
    /// (`chatcrm users link <handle> --platform feishu --corp <tenant_key> --id <open_id>`).
    pub corp_id: String,
    /// App ID (`cli_…`).
    pub app_id: String,
    #[serde(serialize_with = "ser_secret")]
    pub app_secret: SecretString,
    /// Event subscription → Verification Token.
    #[serde(serialize_with = "ser_secret")]
    pub verification_token: SecretString,
    /// Event subscription → Encrypt Key. Optional, but without it callbacks are neither encrypted
    /// nor signed (only the token proves them): set it.
    #[serde(default, serialize_with = "ser_opt_secret", skip_serializing_if = "Option::is_none")]
    pub encrypt_key: Option<SecretString>,
    /// Custom group bots (自定义机器人) reachable as recipient `bot:<name>`.
    #[serde(default)]
    pub bots: Vec<FeishuBot>,
}

impl std::fmt::Debug for FeishuApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeishuApp")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("corp_id", &self.corp_id)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// A custom bot's webhook: `https://open.feishu.cn/open-apis/bot/v2/hook/{hook}`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuBot {
    pub name: String,
    /// The last path segment of the webhook URL (or the whole URL).
    #[serde(serialize_with = "ser_secret")]
    pub hook: SecretString,
    /// The signing secret, when 签名校验 is on.
    #[serde(default, serialize_with = "ser_opt_secret", skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretString>,
}

impl std::fmt::Debug for FeishuBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeishuBot").field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("feishu app `{0}`: {1}")]
    Invalid(String, String),
}

/// A configured app, ready to verify callbacks and push.
pub struct App {
    pub cfg: FeishuApp,
    pub cipher: Option<FeishuCipher>,
    pub pusher: Pusher,
}

/// Every configured app, by the `{app}` of its callback URL.
#[derive(Clone, Default)]
pub struct Apps {
    by_name: Arc<HashMap<String, Arc<App>>>,
    pub timestamp_window_secs: i64,
    pub ack_deadline: std::time::Duration,
    pub self_register: bool,
    pub location_window_minutes: i64,
}

impl Apps {
    /// Every configured app.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_name.values()
    }

    pub fn from_settings(s: &FeishuSettings) -> Result<Self, SetupError> {
        let mut by_name = HashMap::new();
        let timeout = std::time::Duration::from_millis(s.request_timeout_ms.max(1));
        for cfg in &s.apps {
            let bad = |m: &str| SetupError::Invalid(cfg.name.clone(), m.to_string());
            if cfg.name.is_empty() || !cfg.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
                return Err(bad("name must be letters, digits, '_' or '-' (it is a URL segment)"));
            }
            if by_name.contains_key(&cfg.name) {
                return Err(bad("two apps have this name"));
            }
            for (key, value) in
                [("org", cfg.org.as_str()), ("corp_id (tenant key)", &cfg.corp_id), ("app_id", &cfg.app_id)]
            {
                if value.trim().is_empty() {
                    return Err(bad(&format!("{key} is empty")));
                }
            }
            if cfg.app_secret.expose_secret().trim().is_empty() {
                return Err(bad("app_secret is empty"));
            }
            if cfg.verification_token.expose_secret().trim().is_empty() {
                return Err(bad("verification_token is empty (event subscription → Verification Token)"));
            }
            let encrypt_key = cfg.encrypt_key.as_ref().map(|k| k.expose_secret().to_string()).filter(|k| !k.is_empty());
            if encrypt_key.is_none() {
                tracing::warn!(app = %cfg.name, "feishu app has no encrypt_key: callbacks are neither encrypted nor signed");
            }
            let mut bots = HashMap::new();
            for b in &cfg.bots {
                if b.name.is_empty() || b.hook.expose_secret().trim().is_empty() {
                    return Err(bad("every bot needs a name and a hook"));
                }
                bots.insert(
                    b.name.clone(),
                    client::Bot {
                        hook: b.hook.expose_secret().trim().to_string(),
                        secret: b.secret.as_ref().map(|s| s.expose_secret().to_string()).filter(|s| !s.is_empty()),
                    },
                );
            }
            let creds = client::Credentials {
                app_id: cfg.app_id.clone(),
                app_secret: cfg.app_secret.expose_secret().to_string(),
            };
            let client = client::FeishuClient::new(&s.api_base, creds, timeout).map_err(|e| bad(&e.to_string()))?;
            let pusher = Pusher { client, bots: Arc::new(bots) };
            let cipher = encrypt_key.as_deref().map(FeishuCipher::new);
            by_name.insert(cfg.name.clone(), Arc::new(App { cfg: cfg.clone(), cipher, pusher }));
        }
        Ok(Self {
            by_name: Arc::new(by_name),
            timestamp_window_secs: i64::try_from(s.timestamp_window_secs).unwrap_or(i64::MAX),
            ack_deadline: std::time::Duration::from_millis(s.ack_deadline_ms),
            self_register: s.self_register,
            location_window_minutes: i64::from(s.location_window_minutes),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<App>> {
        self.by_name.get(name).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// A push client per app name, for the outbox.
    pub fn pushers(&self) -> Vec<(String, Pusher)> {
        self.by_name.iter().map(|(name, app)| (name.clone(), app.pusher.clone())).collect()
    }
}

/// Delivers outbox messages to one app's users, chats and custom bots. Recipients:
/// `ou_…` or `open_id:ou_…` (a user; what linked identities hold), `chat:oc_…` (a chat the bot
/// is in), `user_id:…`, `union_id:…`, `email:…`, `reply:om_…` (a reply to that message), and
/// `bot:<name>` (a configured custom bot).
#[derive(Clone)]
pub struct Pusher {
    pub client: client::FeishuClient,
    bots: Arc<HashMap<String, client::Bot>>,
}

impl Pusher {
    /// A pusher without custom bots (tests, tools).
    pub fn new(client: client::FeishuClient) -> Self {
        Self { client, bots: Arc::new(HashMap::new()) }
    }

    pub fn with_bot(mut self, name: &str, hook: &str, secret: Option<&str>) -> Self {
        let mut bots = (*self.bots).clone();
        bots.insert(name.to_string(), client::Bot { hook: hook.to_string(), secret: secret.map(str::to_string) });
        self.bots = Arc::new(bots);
        self
    }

    pub async fn deliver(&self, recipient: &str, message: &OutMessage) -> Result<(), PushFailure> {
        self.deliver_keyed(recipient, message, None).await
    }

    /// As [`Pusher::deliver`], with `key` (the outbox row's dedupe key) mixed into Feishu's `uuid`
    /// idempotency key, so that two equal messages queued under different keys both arrive.
    pub async fn deliver_keyed(
        &self,
        recipient: &str,
        message: &OutMessage,
        key: Option<&str>,
    ) -> Result<(), PushFailure> {
        let to = client::Recipient::parse(recipient).map_err(|e| PushFailure::Fatal(e.to_string()))?;
        let result = match &to {
            client::Recipient::Bot(name) => match self.bots.get(name) {
                Some(bot) => self.client.deliver_to_bot(bot, message).await,
                None => return Err(PushFailure::Fatal(format!("no feishu custom bot `{name}` is configured"))),
            },
            _ => self.client.deliver_keyed(&to, message, key).await,
        };
        result.map_err(|e| e.into_failure())
    }
}

/// The request-signing headers of a callback.
#[derive(Debug, Clone, Default)]
pub struct SignedHeaders {
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub signature: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp `{0}` is outside the accepted window")]
    Stale(String),
    #[error("verification token does not match")]
    BadToken,
    #[error("malformed callback: {0}")]
    Malformed(String),
}

/// A verified callback.
#[derive(Debug)]
pub enum Opened {
    /// The URL handshake: answer `{"challenge": …}`.
    Challenge(String),
    /// A (v2) event: its header and body.
    Event { event_id: String, event_type: String, tenant_key: String, event: Value },
    /// Verified, but nothing we handle (v1 schema events).
    Other,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// Verifies and decodes one callback body: decrypt (when the app has an encrypt key), check the
/// signature over the raw bytes and its freshness (events; Feishu's SDK answers the handshake
/// without it), then the verification token. Nothing is stored before this succeeds.
pub fn open(
    app: &App,
    headers: &SignedHeaders,
    body: &[u8],
    now: DateTime<Utc>,
    window: i64,
) -> Result<Opened, CallbackError> {
    let outer: Value =
        serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(format!("body is not JSON: {e}")))?;
    let plain: Value = match (&app.cipher, outer.get("encrypt").and_then(Value::as_str)) {
        (Some(cipher), Some(encrypt)) => {
            let signed = match (&headers.timestamp, &headers.nonce, &headers.signature) {
                (Some(ts), Some(nonce), Some(sig)) => {
                    let key = app.cfg.encrypt_key.as_ref().map(|k| k.expose_secret().to_string()).unwrap_or_default();
                    if !crypto::verify_signature(ts, nonce, &key, body, sig) {
                        return Err(CallbackError::BadSignature);
                    }
                    let t: i64 = ts.trim().parse().map_err(|_| CallbackError::Stale(ts.clone()))?;
                    if now.timestamp().abs_diff(t) > window.unsigned_abs() {
                        return Err(CallbackError::Stale(ts.clone()));
                    }
                    true
                }
                _ => false,
            };
            let text = cipher.decrypt(encrypt).map_err(|e| CallbackError::Malformed(e.to_string()))?;
            let plain: Value = serde_json::from_str(&text)
                .map_err(|e| CallbackError::Malformed(format!("decrypted event is not JSON: {e}")))?;
            // Only the handshake may come unsigned.
            if !signed && plain.get("type").and_then(Value::as_str) != Some("url_verification") {
                return Err(CallbackError::BadSignature);
            }
            plain
        }
        (Some(_), None) => return Err(CallbackError::Malformed("expected an encrypted body (`encrypt`)".into())),
        (None, Some(_)) => {
            return Err(CallbackError::Malformed("body is encrypted but no encrypt_key is configured".into()));
        }
        (None, None) => outer,
    };
    let expected = app.cfg.verification_token.expose_secret();
    if plain.get("type").and_then(Value::as_str) == Some("url_verification") {
        if !crypto::same(str_at(&plain, "/token"), expected) {
            return Err(CallbackError::BadToken);
        }
        let challenge = str_at(&plain, "/challenge");
        if challenge.is_empty() {
            return Err(CallbackError::Malformed("url_verification without a challenge".into()));
        }
        return Ok(Opened::Challenge(challenge.to_string()));
    }
    if plain.get("schema").and_then(Value::as_str) == Some("2.0") {
        if !crypto::same(str_at(&plain, "/header/token"), expected) {
            return Err(CallbackError::BadToken);
        }
        let event_id = str_at(&plain, "/header/event_id").to_string();
        let event_type = str_at(&plain, "/header/event_type").to_string();
        if event_id.is_empty() || event_type.is_empty() {
            return Err(CallbackError::Malformed("event without header.event_id or header.event_type".into()));
        }
        let tenant_key = str_at(&plain, "/header/tenant_key").to_string();
        let event = plain.get("event").cloned().unwrap_or(Value::Null);
        return Ok(Opened::Event { event_id, event_type, tenant_key, event });
    }
    // v1 schema: token at the top.
    match plain.get("token").and_then(Value::as_str) {
        Some(t) if crypto::same(t, expected) => Ok(Opened::Other),
        Some(_) => Err(CallbackError::BadToken),
        None => Err(CallbackError::Malformed("neither a v2 event nor a v1 callback".into())),
    }
}

/// What to do with a verified event.
pub enum Action {
    /// A message for the bot's command parser. `reply_to` is where the answer goes.
    Text { msg: IncomingMessage, reply_to: String },
    /// A message with a fixed answer (voice, image, welcome …), recorded all the same.
    Fixed { msg: IncomingMessage, reply_to: String, text: String },
    /// A location: attach to a recent visit.
    Location { msg: IncomingMessage, reply_to: String, label: String },
    /// Nothing to do.
    Ignore,
}

/// `@_user_1 拜访 海尔` → `拜访 海尔`: Feishu replaces each @mention with a placeholder.
pub fn strip_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("@_user_") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "@_user_".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            out.push_str("@_user_");
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

/// Text of a rich-text (`post`) message: its title and text runs, line by line.
fn post_text(content: &Value) -> String {
    // Received posts are `{"title","content":[[…]]}`, sometimes under a locale key.
    let body = if content.get("content").is_some() {
        content
    } else {
        content.as_object().and_then(|o| o.values().next()).unwrap_or(&Value::Null)
    };
    let mut lines = Vec::new();
    let title = str_at(body, "/title");
    if !title.is_empty() {
        lines.push(title.to_string());
    }
    for para in body.get("content").and_then(Value::as_array).into_iter().flatten() {
        let line: String = para
            .as_array()
            .into_iter()
            .flatten()
            .filter(|run| matches!(run.get("tag").and_then(Value::as_str), Some("text" | "a" | "md")))
            .filter_map(|run| run.get("text").and_then(Value::as_str))
            .collect();
        lines.push(line);
    }
    lines.join("\n")
}

/// The command a reminder card's button stands for: `done-12` → `完成 #12`.
pub fn card_command(key: &str) -> Option<String> {
    let (action, id) = key.split_once('-')?;
    let id: u64 = id.parse().ok()?;
    match action {
        "done" => Some(format!("完成 #{id}")),
        "snooze" => Some(format!("推迟 #{id} 1天")),
        _ => None,
    }
}

const WELCOME: &str = "👋 我是 chatcrm。发「今天」看待办，「拜访 客户 内容」记录拜访，「帮助」看全部命令。";

/// Decides what a verified event means. `tenant_key` (from the header) is informational: chat
/// identities are linked under the app's configured `corp_id`.
pub fn action(app: &App, event_id: &str, event_type: &str, event: &Value, now: DateTime<Utc>) -> Action {
    let incoming = |sender: &str, id: String, text: String| IncomingMessage {
        platform: PLATFORM.into(),
        corp_id: app.cfg.corp_id.clone(),
        sender: sender.to_string(),
        message_id: format!("{}:{id}", app.cfg.corp_id),
        text,
        received_at: now,
    };
    match event_type {
        "im.message.receive_v1" => {
            if str_at(event, "/sender/sender_type") != "user" {
                return Action::Ignore; // the bot's own or another app's messages
            }
            let sender = str_at(event, "/sender/sender_id/open_id");
            let message_id = str_at(event, "/message/message_id");
            if sender.is_empty() || message_id.is_empty() {
                return Action::Ignore;
            }
            // A retry of the event carries the same message id: the inbox dedupes on it. In a
            // group the answer goes to the sender privately: it can hold what the sender may see
            // and the group's other members may not.
            let reply_to = if str_at(event, "/message/chat_type") == "p2p" {
                format!("reply:{message_id}")
            } else {
                format!("open_id:{sender}")
            };
            let content: Value = serde_json::from_str(str_at(event, "/message/content")).unwrap_or(Value::Null);
            let msg = |text: String| incoming(sender, message_id.to_string(), text);
            match str_at(event, "/message/message_type") {
                "text" => {
                    let text = strip_mentions(str_at(&content, "/text"));
                    if text.is_empty() {
                        Action::Fixed { msg: msg("[mention]".into()), reply_to, text: WELCOME.into() }
                    } else {
                        Action::Text { msg: msg(text), reply_to }
                    }
                }
                "post" => {
                    let text = strip_mentions(&post_text(&content));
                    if text.is_empty() {
                        Action::Fixed { msg: msg("[post]".into()), reply_to, text: WELCOME.into() }
                    } else {
                        Action::Text { msg: msg(text), reply_to }
                    }
                }
                "audio" => Action::Fixed {
                    msg: msg("[voice]".into()),
                    reply_to,
                    text: "语音消息我还听不懂。请用输入法的语音输入（键盘上的🎤），说完发出的就是文字，例如：拜访 海尔 聊了报价，下周三再跟进".into(),
                },
                "location" => {
                    let name = str_at(&content, "/name").trim().to_string();
                    let coords = || {
                        let (lat, lng) = (str_at(&content, "/latitude"), str_at(&content, "/longitude"));
                        if lat.is_empty() { String::new() } else { format!("{lat},{lng}") }
                    };
                    let label = if name.is_empty() { coords() } else { name };
                    if label.is_empty() {
                        Action::Fixed { msg: msg("[location]".into()), reply_to, text: "没读出这个位置，请再发一次。".into() }
                    } else {
                        Action::Location { msg: msg(format!("[location] {label}")), reply_to, label }
                    }
                }
                "image" | "file" | "media" => Action::Fixed {
                    msg: msg("[attachment]".into()),
                    reply_to,
                    text: "收到附件。附件暂不入 CRM；请用文字记录要点，例如：备注 海尔 收到对方的需求清单".into(),
                },
                other => Action::Fixed {
                    msg: msg(format!("[{other}]")),
                    reply_to,
                    text: "这类消息我还看不懂。请发文字，例如「今天」或「帮助」。".into(),
                },
            }
        }
        // A button of a reminder card (card callbacks delivered as events).
        "card.action.trigger" => {
            let sender = str_at(event, "/operator/open_id");
            let key = event.pointer("/action/value/key").and_then(Value::as_str).unwrap_or_default();
            match (sender.is_empty(), card_command(key)) {
                (false, Some(text)) => {
                    let card = str_at(event, "/context/open_message_id");
                    let reply_to = if card.is_empty() { sender.to_string() } else { format!("reply:{card}") };
                    Action::Text { msg: incoming(sender, format!("card:{event_id}"), text), reply_to }
                }
                _ => Action::Ignore,
            }
        }
        // The user opened the chat with the bot.
        "im.chat.access_event.bot_p2p_chat_entered_v1" => {
            let sender = str_at(event, "/operator_id/open_id");
            if sender.is_empty() {
                return Action::Ignore;
            }
            Action::Fixed {
                msg: incoming(sender, format!("enter:{event_id}"), "[event] enter".into()),
                reply_to: sender.to_string(),
                text: WELCOME.into(),
            }
        }
        _ => Action::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_stripped() {
        assert_eq!(strip_mentions("@_user_1 拜访 海尔 聊了"), "拜访 海尔 聊了");
        assert_eq!(strip_mentions("@_user_1\n 新客户 海尔 "), "新客户 海尔");
        assert_eq!(strip_mentions("今天 @_user_12"), "今天");
        assert_eq!(strip_mentions("@_user_"), "@_user_");
        assert_eq!(strip_mentions("  "), "");
    }

    #[test]
    fn card_keys() {
        assert_eq!(card_command("done-12").as_deref(), Some("完成 #12"));
        assert_eq!(card_command("snooze-3").as_deref(), Some("推迟 #3 1天"));
        assert_eq!(card_command("explode-3"), None);
        assert_eq!(card_command("done-x"), None);
    }

    #[test]
    fn post_text_reads_runs() {
        let v: Value = serde_json::json!({"title":"","content":[[{"tag":"at","user_id":"x"},{"tag":"text","text":" 拜访 海尔"}],[{"tag":"text","text":"聊了"}]]});
        assert_eq!(strip_mentions(&post_text(&v)), "拜访 海尔\n聊了");
    }
}
