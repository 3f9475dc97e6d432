//! DingTalk (钉钉): robot callbacks (HTTP mode) into [`IncomingMessage`]s, encrypted event
//! subscription callbacks, replies through the session webhook, and the push client (work
//! notifications to users, custom group robots). Protocol facts: ../shared/PLATFORMS.md §2.

pub mod client;
pub mod mock;
pub mod sign;
pub mod simulate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::PushFailure;
use super::wecom::crypto::{CryptoError, WecomCrypto};
use crate::bot::IncomingMessage;
use crate::config::{ser_opt_secret, ser_secret};
use crate::outbox::OutMessage;

pub const PLATFORM: &str = "dingtalk";

/// `[dingtalk]` settings, and one `[[dingtalk.apps]]` per internal app (企业内部应用).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DingtalkSettings {
    /// The old-style API host (`gettoken`, work notifications, media, robot webhooks). Tests
    /// point it at [`mock::MockDingtalk`]. Session webhooks must start with it.
    pub api_base: String,
    /// Robot and event callbacks whose millisecond timestamp is further than this from now are
    /// rejected (DingTalk documents one hour for robot callbacks).
    pub timestamp_window_secs: u64,
    /// Reply through the session webhook when the bot is done within this; else the reply is
    /// queued in the outbox and pushed as a work notification.
    pub reply_deadline_ms: u64,
    /// Timeout of each request to DingTalk.
    pub push_timeout_ms: u64,
    /// Let an unknown DingTalk member become a rep on their first message.
    pub self_register: bool,
    /// Messages one custom group robot is sent per minute (DingTalk allows 20).
    pub robot_max_per_minute: u32,
    /// Accept session webhooks on 127.0.0.1/localhost too (for `chatcrm dingtalk simulate`
    /// against a server whose `api_base` is the real DingTalk). Leave off in production.
    pub allow_local_session_webhooks: bool,
    pub apps: Vec<DingtalkApp>,
}

impl Default for DingtalkSettings {
    fn default() -> Self {
        Self {
            api_base: client::DEFAULT_BASE_URL.into(),
            timestamp_window_secs: 3600,
            reply_deadline_ms: 4000,
            push_timeout_ms: 10_000,
            self_register: false,
            robot_max_per_minute: 20,
            allow_local_session_webhooks: false,
            apps: Vec::new(),
        }
    }
}

/// One DingTalk internal app with its robot.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkApp {
    /// The `{app}` in the callback URLs `/callback/dingtalk/{app}` and `…/{app}/events`.
    pub name: String,
    /// The chatcrm org this app's users belong to.
    pub org: String,
    /// The DingTalk corp id (`ding…`) identities are linked under
    /// (`chatcrm users link … --platform dingtalk --corp <corp_id> --id <staffId>`).
    pub corp_id: String,
    /// AppKey (Client ID): for `gettoken`, and the owner key of event callbacks.
    pub app_key: String,
    /// AppSecret (Client Secret): for `gettoken` and the robot callbacks' `sign`.
    #[serde(serialize_with = "ser_secret")]
    pub app_secret: SecretString,
    /// AgentId: needed for work notifications (pushes to users).
    #[serde(default)]
    pub agent_id: Option<i64>,
    /// Event subscription Token (optional: only for `/callback/dingtalk/{app}/events`).
    #[serde(default, serialize_with = "ser_opt_secret")]
    pub event_token: Option<SecretString>,
    /// Event subscription aes_key (43 characters).
    #[serde(default, serialize_with = "ser_opt_secret")]
    pub event_aes_key: Option<SecretString>,
    /// Custom group robots (自定义机器人) pushes can go to as `robot:<name>`.
    #[serde(default)]
    pub robots: Vec<DingtalkRobot>,
}

impl std::fmt::Debug for DingtalkApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingtalkApp")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("corp_id", &self.corp_id)
            .field("app_key", &self.app_key)
            .field("agent_id", &self.agent_id)
            .field("robots", &self.robots)
            .finish_non_exhaustive()
    }
}

/// A custom group robot: its webhook's `access_token` and its signing secret (`SEC…`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkRobot {
    pub name: String,
    #[serde(serialize_with = "ser_secret")]
    pub access_token: SecretString,
    #[serde(serialize_with = "ser_secret")]
    pub secret: SecretString,
}

impl std::fmt::Debug for DingtalkRobot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingtalkRobot").field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("dingtalk app `{0}`: {1}")]
    Invalid(String, String),
    #[error("dingtalk app `{0}`: event crypto: {1}")]
    Crypto(String, CryptoError),
}

/// A configured app, ready to verify callbacks and push.
pub struct App {
    pub cfg: DingtalkApp,
    /// Event-subscription crypto (owner key = AppKey), when a token and aes_key are configured.
    pub events: Option<WecomCrypto>,
    pub pusher: Pusher,
}

/// Every configured app, by the `{app}` of its callback URLs.
#[derive(Clone, Default)]
pub struct Apps {
    by_name: Arc<HashMap<String, Arc<App>>>,
    pub timestamp_window_ms: i64,
    pub reply_deadline: Duration,
    pub self_register: bool,
    pub allow_local_session_webhooks: bool,
    pub api_base: String,
}

impl Apps {
    /// Every configured app.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_name.values()
    }

    /// Validates every app's keys; start-up fails on the first bad one.
    pub fn from_settings(s: &DingtalkSettings) -> Result<Apps, SetupError> {
        let mut by_name = HashMap::new();
        let timeout = Duration::from_millis(s.push_timeout_ms.max(1));
        let robot_limit = (usize::try_from(s.robot_max_per_minute).unwrap_or(20).max(1), Duration::from_secs(60));
        for cfg in &s.apps {
            let bad = |what: &str| SetupError::Invalid(cfg.name.clone(), what.to_string());
            if cfg.name.trim().is_empty() {
                return Err(bad("name is empty"));
            }
            if by_name.contains_key(&cfg.name) {
                return Err(bad("configured twice"));
            }
            for (what, value) in [
                ("org", cfg.org.as_str()),
                ("corp_id", cfg.corp_id.as_str()),
                ("app_key", cfg.app_key.as_str()),
                ("app_secret", cfg.app_secret.expose_secret()),
            ] {
                if value.trim().is_empty() {
                    return Err(bad(&format!("{what} is empty")));
                }
            }
            let events = match (&cfg.event_token, &cfg.event_aes_key) {
                (Some(token), Some(key)) => Some(
                    WecomCrypto::new(token.expose_secret(), key.expose_secret(), &cfg.app_key)
                        .map_err(|e| SetupError::Crypto(cfg.name.clone(), e))?,
                ),
                (None, None) => None,
                _ => return Err(bad("event_token and event_aes_key go together: set both or neither")),
            };
            let mut robots = std::collections::HashSet::new();
            for r in &cfg.robots {
                if r.name.trim().is_empty() || !robots.insert(r.name.as_str()) {
                    return Err(bad(&format!("robot name `{}` is empty or used twice", r.name)));
                }
                if r.access_token.expose_secret().trim().is_empty() || r.secret.expose_secret().trim().is_empty() {
                    return Err(bad(&format!("robot `{}` needs access_token and secret", r.name)));
                }
            }
            let pusher = Pusher::new(&s.api_base, cfg, timeout, robot_limit)?;
            by_name.insert(cfg.name.clone(), Arc::new(App { cfg: cfg.clone(), events, pusher }));
        }
        Ok(Apps {
            by_name: Arc::new(by_name),
            timestamp_window_ms: i64::try_from(s.timestamp_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            reply_deadline: Duration::from_millis(s.reply_deadline_ms),
            self_register: s.self_register,
            allow_local_session_webhooks: s.allow_local_session_webhooks,
            api_base: s.api_base.trim_end_matches('/').to_string(),
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

    /// Whether the server may POST a reply to this session webhook: under `api_base` (DingTalk's
    /// own `https://oapi.dingtalk.com/robot/sendBySession?...`), or on loopback when allowed.
    /// The URL comes from a signed callback, but a leaked secret must not turn the server into a
    /// proxy for arbitrary URLs.
    pub fn session_webhook_allowed(&self, url: &str) -> bool {
        let Ok(parsed) = reqwest::Url::parse(url) else { return false };
        if !matches!(parsed.scheme(), "http" | "https") {
            return false;
        }
        if url.starts_with(&format!("{}/", self.api_base)) {
            return true;
        }
        self.allow_local_session_webhooks
            && matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"))
    }
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
            CryptoError::BadSignature | CryptoError::ReceiveIdMismatch { .. } => CallbackError::BadSignature,
            other => CallbackError::Malformed(other.to_string()),
        }
    }
}

/// Millisecond timestamps within `window_ms` of now.
pub fn check_timestamp(ts: &str, now: DateTime<Utc>, window_ms: i64) -> Result<(), CallbackError> {
    let ms: i64 = ts.trim().parse().map_err(|_| CallbackError::Stale(ts.to_string()))?;
    if now.timestamp_millis().abs_diff(ms) > window_ms.unsigned_abs() {
        return Err(CallbackError::Stale(ts.to_string()));
    }
    Ok(())
}

/// Robot callback headers: the signature first (an unsigned request learns nothing about our
/// clock), then freshness.
pub fn verify_robot(
    app: &App,
    timestamp: Option<&str>,
    sign: Option<&str>,
    now: DateTime<Utc>,
    window_ms: i64,
) -> Result<(), CallbackError> {
    let (Some(ts), Some(given)) = (timestamp, sign) else {
        return Err(CallbackError::BadSignature);
    };
    if !sign::verify(ts, app.cfg.app_secret.expose_secret(), given) {
        return Err(CallbackError::BadSignature);
    }
    check_timestamp(ts, now, window_ms)
}

/// The robot callback body, as much of it as chatcrm uses (PLATFORMS.md 2.2).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RobotMessage {
    pub msgtype: String,
    pub text: Option<TextContent>,
    /// `picture`, `richText`, `audio`, `file`: the type-specific part.
    pub content: Option<serde_json::Value>,
    pub msg_id: String,
    pub create_at: Option<i64>,
    /// "1" one-to-one, "2" group.
    pub conversation_type: String,
    pub conversation_id: String,
    pub conversation_title: Option<String>,
    pub sender_id: String,
    pub sender_staff_id: Option<String>,
    pub sender_nick: Option<String>,
    pub sender_corp_id: Option<String>,
    pub chatbot_corp_id: Option<String>,
    pub robot_code: Option<String>,
    pub session_webhook: Option<String>,
    pub session_webhook_expired_time: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TextContent {
    pub content: String,
}

impl RobotMessage {
    pub fn parse(body: &[u8]) -> Result<Self, CallbackError> {
        let m: RobotMessage = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        if m.msg_id.trim().is_empty() {
            return Err(CallbackError::Malformed("msgId is missing".into()));
        }
        if m.sender_staff_id.as_deref().unwrap_or("").is_empty() && m.sender_id.is_empty() {
            return Err(CallbackError::Malformed("no sender".into()));
        }
        Ok(m)
    }

    pub fn is_group(&self) -> bool {
        self.conversation_type == "2"
    }

    /// The sender's org userid (staffId); the encrypted senderId when DingTalk gave none (such
    /// a sender is unknown and is told so).
    pub fn sender(&self) -> &str {
        self.sender_staff_id.as_deref().filter(|s| !s.is_empty()).unwrap_or(&self.sender_id)
    }

    /// The session webhook while it is still valid `margin` from now.
    pub fn live_session_webhook(&self, now: DateTime<Utc>, margin: Duration) -> Option<&str> {
        let url = self.session_webhook.as_deref().filter(|u| !u.is_empty())?;
        let margin = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
        match self.session_webhook_expired_time {
            Some(exp) if exp > now.timestamp_millis().saturating_add(margin) => Some(url),
            _ => None,
        }
    }
}

/// What to do with a robot callback.
pub enum Action {
    Text(IncomingMessage),
    /// Recorded with a fixed answer (pictures, files).
    Fixed(IncomingMessage, String),
    /// A sender from another corp: answered with this, not handled, not recorded.
    Foreign(String),
    Ignore,
}

/// In a group the mention is removed but a leading space stays (`" 你好"`); some clients keep
/// `@机器人` itself. Trim both.
pub fn clean_text(text: &str) -> String {
    let t = text.trim();
    let t = match t.strip_prefix('@') {
        Some(rest) => rest.split_once(char::is_whitespace).map_or("", |(_, after)| after),
        None => t,
    };
    t.trim().to_string()
}

pub fn action(app: &App, m: &RobotMessage, now: DateTime<Utc>) -> Action {
    let incoming = |text: String| IncomingMessage {
        platform: PLATFORM.into(),
        corp_id: app.cfg.corp_id.clone(),
        sender: m.sender().to_string(),
        // Retries carry the same msgId; it is unique within the corp.
        message_id: format!("{}:{}", app.cfg.corp_id, m.msg_id),
        text,
        received_at: now,
    };
    // A member of another org in a shared group: staff ids are only unique within a corp, so
    // never resolve them against ours.
    if let Some(corp) = m.sender_corp_id.as_deref().filter(|c| !c.is_empty())
        && corp != app.cfg.corp_id
    {
        tracing::info!(sender_corp = corp, "message from another corp's member; not handled");
        return Action::Foreign("chatcrm 只为本企业的成员服务。".into());
    }
    match m.msgtype.as_str() {
        "text" => {
            let text = clean_text(m.text.as_ref().map_or("", |t| t.content.as_str()));
            if text.is_empty() { Action::Ignore } else { Action::Text(incoming(text)) }
        }
        "richText" => {
            // Text items joined; pictures inside are dropped.
            let text: String = m
                .content
                .as_ref()
                .and_then(|c| c.get("richText"))
                .and_then(|r| r.as_array())
                .map(|items| items.iter().filter_map(|i| i.get("text").and_then(|t| t.as_str())).collect())
                .unwrap_or_default();
            let text = clean_text(&text);
            if text.is_empty() {
                Action::Fixed(incoming("[richText]".into()), ATTACHMENT_REPLY.into())
            } else {
                Action::Text(incoming(text))
            }
        }
        // Assumed: voice messages carry DingTalk's transcript as `content.recognition` (seen in the
        // stream SDK's payloads, not in PLATFORMS.md).
        "audio" => match m.content.as_ref().and_then(|c| c.get("recognition")).and_then(|r| r.as_str()) {
            Some(text) if !text.trim().is_empty() => Action::Text(incoming(clean_text(text))),
            _ => {
                Action::Fixed(incoming("[audio]".into()), "没听清这条语音。请用文字发，例如：拜访 海尔 聊了报价".into())
            }
        },
        other => Action::Fixed(incoming(format!("[{other}]")), ATTACHMENT_REPLY.into()),
    }
}

const ATTACHMENT_REPLY: &str = "收到。图片和文件暂不入 CRM；请用文字记录要点，例如：备注 海尔 收到对方的需求清单";

/// The query of an event callback; DingTalk has used both spellings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventQuery {
    pub signature: Option<String>,
    pub msg_signature: Option<String>,
    pub timestamp: Option<String>,
    #[serde(rename = "timeStamp")]
    pub time_stamp: Option<String>,
    pub nonce: Option<String>,
}

impl EventQuery {
    fn parts(&self) -> Result<(&str, &str, &str), CallbackError> {
        let sig = self.signature.as_deref().or(self.msg_signature.as_deref());
        let ts = self.timestamp.as_deref().or(self.time_stamp.as_deref());
        match (sig, ts, self.nonce.as_deref()) {
            (Some(s), Some(t), Some(n)) => Ok((s, t, n)),
            _ => Err(CallbackError::Malformed("signature, timestamp and nonce are required".into())),
        }
    }
}

/// Verifies and decrypts an event callback body `{"encrypt": …}` to its JSON plaintext.
pub fn open_event(
    crypto: &WecomCrypto,
    q: &EventQuery,
    body: &[u8],
    now: DateTime<Utc>,
    window_ms: i64,
) -> Result<serde_json::Value, CallbackError> {
    let (sig, ts, nonce) = q.parts()?;
    #[derive(Deserialize)]
    struct Envelope {
        encrypt: String,
    }
    let env: Envelope = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    crypto.verify(sig, ts, nonce, &env.encrypt)?;
    check_timestamp(ts, now, window_ms)?;
    let plain = crypto.decrypt(&env.encrypt)?;
    serde_json::from_str(&plain).map_err(|e| CallbackError::Malformed(format!("event is not JSON: {e}")))
}

/// The encrypted `success` answer (PLATFORMS.md 2.3, vector V-G9).
pub fn success_response(crypto: &WecomCrypto, timestamp_ms: &str, nonce: &str) -> serde_json::Value {
    success_response_with_random(crypto, timestamp_ms, nonce, rand::random())
}

pub fn success_response_with_random(
    crypto: &WecomCrypto,
    timestamp_ms: &str,
    nonce: &str,
    random: [u8; 16],
) -> serde_json::Value {
    let encrypt = crypto.encrypt_with_random("success", random);
    let signature = crypto.signature(timestamp_ms, nonce, &encrypt);
    serde_json::json!({ "msg_signature": signature, "timeStamp": timestamp_ms, "nonce": nonce, "encrypt": encrypt })
}

/// Delivers outbox messages for one app: work notifications to users, posts to custom group
/// robots, and replies through session webhooks. Cheap to clone; clones share the token cache
/// and the robots' rate-limit windows.
#[derive(Clone)]
pub struct Pusher {
    client: client::DingtalkClient,
}

impl Pusher {
    /// `robot_limit` = (messages, per window) for each custom group robot.
    pub fn new(
        api_base: &str,
        app: &DingtalkApp,
        timeout: Duration,
        robot_limit: (usize, Duration),
    ) -> Result<Pusher, SetupError> {
        let client = client::DingtalkClient::new(api_base, app, timeout, robot_limit)
            .map_err(|e| SetupError::Invalid(app.name.clone(), e))?;
        Ok(Pusher { client })
    }

    /// Recipients: `user:<staffId>` or a bare staffId (a work notification through the app),
    /// `robot:<name>` (a configured custom group robot).
    pub async fn deliver(&self, recipient: &str, message: &OutMessage) -> Result<(), PushFailure> {
        self.client.deliver(recipient, message).await
    }

    /// Replies in the conversation a robot callback came from (`sessionWebhook`, no token).
    /// In a group, `at_staff_id` is @-mentioned.
    pub async fn reply_in_session(&self, url: &str, text: &str, at_staff_id: Option<&str>) -> Result<(), PushFailure> {
        self.client.reply_in_session(url, text, at_staff_id).await
    }

    /// The app's access token (cached; one fetch in flight).
    pub async fn access_token(&self) -> Result<String, PushFailure> {
        self.client.access_token().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto(token: &str, key: &str, owner: &str) -> WecomCrypto {
        WecomCrypto::new(token, key, owner).expect("crypto")
    }

    fn hex(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// V-D1: the official check_url sample.
    #[test]
    fn v_d1_check_url() {
        let c = crypto("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b");
        let enc = "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3";
        c.verify("03044561471240d4a14bb09372dfcfd4fd0e40cb", "1608001896814", "WL4PK6yA", enc).expect("signature");
        assert_eq!(c.decrypt(enc).expect("decrypt"), r#"{"EventType":"check_url"}"#);
        // Re-encrypted with the recovered random prefix: byte for byte (pad 31).
        assert_eq!(c.encrypt_with_random(r#"{"EventType":"check_url"}"#, hex("6c375933456358324355357738617633")), enc);
        // Through the endpoint's path, with the clock at the vector's time.
        let q = EventQuery {
            signature: Some("03044561471240d4a14bb09372dfcfd4fd0e40cb".into()),
            timestamp: Some("1608001896814".into()),
            nonce: Some("WL4PK6yA".into()),
            ..Default::default()
        };
        let now = DateTime::from_timestamp_millis(1608001896814).expect("time");
        let body = serde_json::json!({ "encrypt": enc }).to_string();
        let v = open_event(&c, &q, body.as_bytes(), now, 60_000).expect("open");
        assert_eq!(v["EventType"], "check_url");
        // The old spelling of the query works the same; a day later it is stale.
        let old = EventQuery {
            msg_signature: q.signature.clone(),
            time_stamp: q.timestamp.clone(),
            nonce: q.nonce.clone(),
            ..Default::default()
        };
        assert!(open_event(&c, &old, body.as_bytes(), now, 60_000).is_ok());
        let later = now + chrono::Duration::days(1);
        assert!(matches!(open_event(&c, &q, body.as_bytes(), later, 60_000), Err(CallbackError::Stale(_))));
        // The wrong owner key is refused like a bad signature (900010).
        let other = crypto("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "dingOTHER");
        assert!(matches!(open_event(&other, &q, body.as_bytes(), now, 60_000), Err(CallbackError::BadSignature)));
    }

    /// V-D2: ISV suite creation check, default suiteKey as the owner key.
    #[test]
    fn v_d2_suite_check() {
        let c = crypto("123456", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", "suite4xxxxxxxxxxxxxxx");
        let enc = "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==";
        c.verify("5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0", "1445827045067", "nEXhMP4r", enc).expect("signature");
        assert_eq!(
            c.decrypt(enc).expect("decrypt"),
            r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#
        );
        assert_eq!(
            c.encrypt_with_random(
                r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#,
                hex("685533624566475a5a65777a68473561")
            ),
            enc
        );
    }

    /// V-D3: msg_len bytes contain 0x0c; a "search for the pad byte" unpadder would cut here.
    #[test]
    fn v_d3_decrypt_regression() {
        let c = crypto("any", "ZC5MWOE8inNkJRbUw3ay9OXl27bnd0SLqXTwfAIqgir", "ding02323e3f1d13ae10");
        let enc = "JVjyp8Sgojp6I1oLHA96uc8i/sXsvpmvyVjkxh6jwbP20m2IeoJCkAt/60k80IrqhiPi2ZEobPL+VZa14lj0mw==";
        assert_eq!(c.decrypt(enc).expect("decrypt"), "heollo world");
    }

    /// V-G9: the encrypted `success` answer, exactly.
    #[test]
    fn v_g9_success_response() {
        let c = crypto("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b");
        let v = success_response_with_random(&c, "1608001896999", "nonce123", *b"abcdefghijklmnop");
        let expected = r#"{"msg_signature":"4ab6bd181b9e06358b694d4c3a45ba7d488682cd","timeStamp":"1608001896999","nonce":"nonce123","encrypt":"QjFVo6WtpzPr7RoyTeB2RiaR3xB2mMl8rk8y7ok0+3p4lanNu72WYgTGf2dCORsQrs6Yz+FV+5t9cYo8A/nGsg=="}"#;
        assert_eq!(v, serde_json::from_str::<serde_json::Value>(expected).expect("json"));
        // And a random one opens back to `success`.
        let v = success_response(&c, "1", "n");
        let enc = v["encrypt"].as_str().expect("encrypt");
        c.verify(v["msg_signature"].as_str().expect("sig"), "1", "n", enc).expect("signed");
        assert_eq!(c.decrypt(enc).expect("decrypt"), "success");
    }

    /// V-G10: a Chinese payload (bytes, not characters, in msg_len).
    #[test]
    fn v_g10_chinese_event() {
        let c = crypto("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b");
        let plain = r#"{"EventType":"chat_update_title","ChatId":"chat1234","Title":"客户群-华东区","TimeStamp":"1608001896999","CorpId":"ding6ccabc44d2c8d38b"}"#;
        let enc = c.encrypt_with_random(plain, *b"ABCDEFGHIJKLMNOP");
        assert_eq!(
            enc,
            "zHp6i1IyFAmLFVD5wDPjCX+3xzhn8wJetvemrrcEg5QBI2swH+Hf8wzz/5E9Sb9RxGnAgI5HmOn1ON+9GBcbQfJc4tbgbT8PqtH1uyKPG7p9PqsnBmmvLgEpqm2HSUsGi2lYuyRHoRD4V4mugzmt638HzF3iF94yNv8ODbdGCPI1E/qxorylQDSPPt4kSSiiguA8XZjE9xXU37ScJc1m8ktgkdkGsHifzch02MqowLjWbRB1lUFPLrK69CNmE5O+"
        );
        assert_eq!(c.signature("1608001897000", "nonce456", &enc), "4b88431201f6e98c9aa7bbb5dd295ebfd60b30b7");
        assert_eq!(c.decrypt(&enc).expect("decrypt"), plain);
    }

    #[test]
    fn mentions_are_trimmed() {
        assert_eq!(clean_text(" 拜访 海尔 聊了报价"), "拜访 海尔 聊了报价");
        assert_eq!(clean_text("@chatcrm 今天"), "今天");
        assert_eq!(clean_text("@chatcrm"), "");
        assert_eq!(clean_text("今天 "), "今天");
    }

    fn app_cfg() -> DingtalkApp {
        DingtalkApp {
            name: "sales".into(),
            org: "Org".into(),
            corp_id: "dingcorp".into(),
            app_key: "dingkey".into(),
            app_secret: SecretString::from("secret"),
            agent_id: Some(1),
            event_token: None,
            event_aes_key: None,
            robots: Vec::new(),
        }
    }

    #[test]
    fn start_up_validates_keys() {
        let ok = |app: DingtalkApp| Apps::from_settings(&DingtalkSettings { apps: vec![app], ..Default::default() });
        assert!(ok(app_cfg()).is_ok());
        // A real-world key whose last symbol has non-zero trailing bits is accepted.
        let mut a = app_cfg();
        a.event_token = Some(SecretString::from("tok"));
        a.event_aes_key = Some(SecretString::from("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"));
        assert!(ok(a.clone()).is_ok());
        a.event_aes_key = Some(SecretString::from("short"));
        assert!(matches!(ok(a.clone()), Err(SetupError::Crypto(..))));
        a.event_aes_key = None;
        assert!(ok(a).is_err(), "a token without a key");
        let mut a = app_cfg();
        a.app_secret = SecretString::from(" ");
        assert!(ok(a).is_err());
        let mut a = app_cfg();
        a.robots.push(DingtalkRobot {
            name: "g".into(),
            access_token: SecretString::from(""),
            secret: SecretString::from("SEC1"),
        });
        assert!(ok(a).is_err());
    }

    #[test]
    fn session_webhooks_must_be_dingtalks() {
        let apps = Apps::from_settings(&DingtalkSettings::default()).expect("apps");
        assert!(apps.session_webhook_allowed("https://oapi.dingtalk.com/robot/sendBySession?session=x"));
        assert!(!apps.session_webhook_allowed("https://oapi.dingtalk.com.evil.example/robot"));
        assert!(!apps.session_webhook_allowed("http://127.0.0.1:9/robot/sendBySession?session=x"));
        let local = Apps { allow_local_session_webhooks: true, ..apps };
        assert!(local.session_webhook_allowed("http://127.0.0.1:9/robot/sendBySession?session=x"));
        assert!(!local.session_webhook_allowed("http://10.0.0.1/x"));
    }
}
