//! WeCom (企业微信): callback verification and decoding into [`IncomingMessage`]s, passive replies,
//! and the push client. Protocol facts: ../shared/PLATFORMS.md §1.

pub mod client;
pub mod crypto;
pub mod mock;
pub mod simulate;
pub mod xml;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::bot::IncomingMessage;
use crate::config::{WecomApp, WecomSettings};
use crypto::{CryptoError, WecomCrypto};
use xml::Inbound;

pub const PLATFORM: &str = "wecom";

/// The `FromUserName` of callbacks WeCom itself sends (contact, approval and customer-service
/// changes), not a member.
pub const SYSTEM_SENDER: &str = "sys";

/// WeCom's limit for a text message's content, in UTF-8 bytes.
pub const PASSIVE_REPLY_MAX_BYTES: usize = 2048;

/// A configured app, ready to verify callbacks and push.
pub struct App {
    pub cfg: WecomApp,
    /// Receive id = the corp id (app callbacks).
    pub crypto: WecomCrypto,
    /// Receive id = "" (group-robot callbacks).
    pub robot_crypto: WecomCrypto,
    pub client: client::WecomClient,
}

/// Every configured app, by the `{app}` of its callback URL.
#[derive(Clone, Default)]
pub struct Apps {
    by_name: Arc<HashMap<String, Arc<App>>>,
    pub timestamp_window_secs: i64,
    pub reply_deadline: std::time::Duration,
    pub self_register: bool,
    pub location_window_minutes: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("wecom app `{0}`: {1}")]
    Crypto(String, CryptoError),
    #[error("wecom app `{0}`: {1}")]
    Client(String, String),
}

impl Apps {
    pub fn from_settings(s: &WecomSettings) -> Result<Self, SetupError> {
        let mut by_name = HashMap::new();
        for cfg in &s.apps {
            let token = cfg.token.expose_secret();
            let key = cfg.encoding_aes_key.expose_secret();
            let crypto =
                WecomCrypto::new(token, key, &cfg.corp_id).map_err(|e| SetupError::Crypto(cfg.name.clone(), e))?;
            let (robot_token, robot_key) = cfg.robot_credentials();
            let robot_crypto =
                WecomCrypto::new(robot_token, robot_key, "").map_err(|e| SetupError::Crypto(cfg.name.clone(), e))?;
            let creds = client::AppCredentials {
                corp_id: cfg.corp_id.clone(),
                agent_id: cfg.agent_id,
                secret: cfg.secret.expose_secret().to_string(),
            };
            let client = client::WecomClient::new(&s.api_base, creds, std::time::Duration::from_secs(10))
                .map_err(|e| SetupError::Client(cfg.name.clone(), e.to_string()))?;
            by_name.insert(cfg.name.clone(), Arc::new(App { cfg: cfg.clone(), crypto, robot_crypto, client }));
        }
        Ok(Self {
            by_name: Arc::new(by_name),
            timestamp_window_secs: i64::try_from(s.timestamp_window_secs).unwrap_or(i64::MAX),
            reply_deadline: std::time::Duration::from_millis(s.reply_deadline_ms),
            self_register: s.self_register,
            location_window_minutes: i64::from(s.location_window_minutes),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<App>> {
        self.by_name.get(name).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_name.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The query string of every callback.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CallbackQuery {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    pub echostr: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp `{0}` is outside the accepted window")]
    Stale(String),
    #[error("malformed callback: {0}")]
    Malformed(String),
}

impl From<CryptoError> for CallbackError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::BadSignature => CallbackError::BadSignature,
            other => CallbackError::Malformed(other.to_string()),
        }
    }
}

fn check_timestamp(q: &CallbackQuery, now: DateTime<Utc>, window: i64) -> Result<(), CallbackError> {
    let ts: i64 = q.timestamp.trim().parse().map_err(|_| CallbackError::Stale(q.timestamp.clone()))?;
    if now.timestamp().abs_diff(ts) > window.unsigned_abs() {
        return Err(CallbackError::Stale(q.timestamp.clone()));
    }
    Ok(())
}

/// GET handshake: verify and decrypt `echostr` (with the app's or the group robot's crypto).
/// Signature before freshness, as for messages.
pub fn verify_url(
    crypto: &WecomCrypto,
    q: &CallbackQuery,
    now: DateTime<Utc>,
    window: i64,
) -> Result<String, CallbackError> {
    let echostr = q.echostr.as_deref().ok_or_else(|| CallbackError::Malformed("echostr is missing".into()))?;
    let plain = crypto.verify_url(&q.msg_signature, &q.timestamp, &q.nonce, echostr)?;
    check_timestamp(q, now, window)?;
    Ok(plain)
}

/// Checks the signature, then freshness, then decrypts (app and group-robot callbacks alike).
pub fn decrypt_verified(
    crypto: &WecomCrypto,
    q: &CallbackQuery,
    encrypt: &str,
    now: DateTime<Utc>,
    window: i64,
) -> Result<String, CallbackError> {
    // Signature before freshness: an unsigned request learns nothing about our clock.
    crypto.verify(&q.msg_signature, &q.timestamp, &q.nonce, encrypt)?;
    check_timestamp(q, now, window)?;
    Ok(crypto.decrypt(encrypt)?)
}

/// POST: verify the envelope and decrypt it to the message XML, then decode.
pub fn open(
    app: &App,
    q: &CallbackQuery,
    body: &str,
    now: DateTime<Utc>,
    window: i64,
) -> Result<Inbound, CallbackError> {
    let plain = decrypt_verified(&app.crypto, q, crypto::extract_encrypt(body)?, now, window)?;
    xml::decode(&plain).map_err(|e| CallbackError::Malformed(e.to_string()))
}

/// What to do with a decoded callback.
pub enum Action {
    /// A message for the bot's command parser.
    Text(IncomingMessage),
    /// A message with a fixed answer (voice without transcript, image, welcome …), recorded all
    /// the same.
    Fixed(IncomingMessage, String),
    /// A location: attach to a recent visit.
    Location(IncomingMessage, String),
    /// Nothing to answer (events WeCom does not take passive replies for).
    Ignore,
}

fn incoming(app: &App, inbound: &Inbound, text: String, now: DateTime<Utc>) -> IncomingMessage {
    IncomingMessage {
        platform: PLATFORM.into(),
        corp_id: app.cfg.corp_id.clone(),
        sender: inbound.from().to_string(),
        // Retries carry the same MsgId; events have none, so sender + time + event is the key.
        message_id: format!("{}:{}", app.cfg.corp_id, inbound.dedupe_key()),
        text,
        received_at: now,
    }
}

pub fn action(app: &App, inbound: &Inbound, now: DateTime<Utc>) -> Action {
    match inbound {
        Inbound::Text { content, .. } => Action::Text(incoming(app, inbound, content.clone(), now)),
        Inbound::Voice { recognition: Some(text), .. } if !text.trim().is_empty() => {
            Action::Text(incoming(app, inbound, text.clone(), now))
        }
        Inbound::Voice { .. } => Action::Fixed(
            incoming(app, inbound, "[voice]".into(), now),
            "企业微信不给应用提供语音转文字。请用手机输入法的语音输入（键盘上的🎤），说完发出的就是文字，例如：拜访 海尔 聊了报价，下周三再跟进".into(),
        ),
        Inbound::Location { latitude, longitude, label, .. } => {
            let label = label.clone().filter(|l| !l.trim().is_empty()).unwrap_or_else(|| format!("{latitude:.5},{longitude:.5}"));
            Action::Location(incoming(app, inbound, format!("[location] {label}"), now), label)
        }
        Inbound::Image { .. } | Inbound::File { .. } => Action::Fixed(
            incoming(app, inbound, "[attachment]".into(), now),
            "收到附件。附件暂不入 CRM；请用文字记录要点，例如：备注 海尔 收到对方的需求清单".into(),
        ),
        Inbound::Event { event, event_key, .. } => match event.as_str() {
            "enter_agent" | "subscribe" => Action::Fixed(
                incoming(app, inbound, format!("[event] {event}"), now),
                "👋 我是 chatcrm。发「今天」看待办，「拜访 客户 内容」记录拜访，「帮助」看全部命令。".into(),
            ),
            "click" => match event_key.as_deref().and_then(|k| app.cfg.menu.get(k)) {
                Some(text) => Action::Text(incoming(app, inbound, text.clone(), now)),
                None => Action::Fixed(
                    incoming(app, inbound, format!("[event] click {}", event_key.clone().unwrap_or_default()), now),
                    "这个菜单还没有绑定命令。发「帮助」看全部命令。".into(),
                ),
            },
            // A button of a reminder card: "done-12" / "snooze-12" become the commands.
            "template_card_event" => match event_key.as_deref().and_then(card_command) {
                Some(text) => Action::Text(incoming(app, inbound, text, now)),
                None => Action::Ignore,
            },
            _ => Action::Ignore,
        },
        Inbound::Other { msg_type, .. } => Action::Fixed(
            incoming(app, inbound, format!("[{msg_type}]"), now),
            "这类消息我还看不懂。请发文字，例如「今天」或「帮助」。".into(),
        ),
    }
}

/// The encrypted passive reply to `inbound` carrying `text`.
pub fn passive_reply(app: &App, inbound: &Inbound, text: &str, now: DateTime<Utc>, nonce: &str) -> String {
    let plain = xml::text_reply(inbound.from(), &app.cfg.corp_id, now.timestamp(), text);
    app.crypto.reply_envelope(&plain, &now.timestamp().to_string(), nonce)
}

/// The command a reminder card's button stands for.
fn card_command(key: &str) -> Option<String> {
    let (action, id) = key.split_once('-')?;
    let id: u64 = id.parse().ok()?;
    match action {
        "done" => Some(format!("完成 #{id}")),
        "snooze" => Some(format!("推迟 #{id} 1天")),
        _ => None,
    }
}
