//! The transactional outbox: everything chatcrm sends on its own initiative.
//!
//! A reminder, a digest, a notice or a reply pushed after the platform's reply deadline is queued
//! with [`enqueue`] inside the transaction of the change that caused it, so the change and the
//! message commit together or not at all. The [`Dispatcher`](dispatch::Dispatcher) delivers queued
//! messages through the platform push clients, at least once, with retries, backoff and dead
//! letters; the dedupe key keeps a message from being queued twice.

pub mod dispatch;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::{console, dingtalk, feishu, wecom};
use crate::store::outbox::NewOutboxRow;
use crate::store::{self, Tx};

pub use dispatch::{DispatchConfig, Dispatcher, Senders};

/// Why a message is sent; shown by `chatcrm outbox list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reply,
    Reminder,
    Digest,
    Notice,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reply => "reply",
            Kind::Reminder => "reminder",
            Kind::Digest => "digest",
            Kind::Notice => "notice",
        }
    }
}

/// What is sent, independent of the platform. Platforms that have interactive cards show `card`;
/// the others (and the console) show `text`, which always says how to act by typing.
///
/// A message with `image_png` is a picture (see [`OutMessage::image`]): WeCom apps and robots get
/// the image alone and `text` is not sent there; the console stores the image with `text` as its
/// caption. To send words with a picture, queue them as their own message under another dedupe
/// key: each row is then delivered exactly once on its own, and a failed upload cannot make a
/// retry send the words twice. The outbox does not order rows; when the words must come first,
/// give the picture a later `not_before`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMessage {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<Card>,
    /// `text` is markdown in the target's dialect (digests); platforms that render markdown in
    /// pushes get it as markdown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub markdown: bool,
    /// A PNG picture (at most 2 MB), base64 in the queued JSON.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_bytes")]
    pub image_png: Option<Vec<u8>>,
}

/// `Option<Vec<u8>>` as an optional standard base64 string.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_str(&STANDARD.encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => STANDARD.decode(text.as_bytes()).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// An interactive card: a title, a short description and buttons `(key, label)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub title: String,
    pub description: String,
    /// Unique per card (WeCom's `task_id`).
    pub key: String,
    pub buttons: Vec<(String, String)>,
}

impl OutMessage {
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), card: None, markdown: false, image_png: None }
    }

    pub fn markdown(text: impl Into<String>) -> Self {
        Self { text: text.into(), card: None, markdown: true, image_png: None }
    }

    /// A picture; `text_fallback` is its caption where only words can be shown (the console, logs).
    /// WeCom gets the image alone: queue any words to go with it as a message of their own.
    pub fn image(text_fallback: impl Into<String>, png: Vec<u8>) -> Self {
        Self { text: text_fallback.into(), card: None, markdown: false, image_png: Some(png) }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `console` or `wecom`.
    pub platform: String,
    /// The configured app name (WeCom); empty for the console.
    pub app: String,
    /// The platform's user id (WeCom userid); the chatcrm user id for the console.
    pub recipient: String,
}

/// Which configured platform app reaches which chat identities.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// (app name, corp id) of each WeCom app.
    wecom: Vec<(String, String)>,
    /// (app name, corp id) of each DingTalk and Feishu app.
    dingtalk: Vec<(String, String)>,
    feishu: Vec<(String, String)>,
}

impl Routes {
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        Self {
            wecom: s.wecom.apps.iter().map(|a| (a.name.clone(), a.corp_id.clone())).collect(),
            dingtalk: s.dingtalk.apps.iter().map(|a| (a.name.clone(), a.corp_id.clone())).collect(),
            feishu: s.feishu.apps.iter().map(|a| (a.name.clone(), a.corp_id.clone())).collect(),
        }
    }

    pub fn with_wecom_app(mut self, name: &str, corp_id: &str) -> Self {
        self.wecom.push((name.to_string(), corp_id.to_string()));
        self
    }

    pub fn with_dingtalk_app(mut self, name: &str, corp_id: &str) -> Self {
        self.dingtalk.push((name.to_string(), corp_id.to_string()));
        self
    }

    pub fn with_feishu_app(mut self, name: &str, corp_id: &str) -> Self {
        self.feishu.push((name.to_string(), corp_id.to_string()));
        self
    }

    /// Where to reach a user: their WeCom identity when an app for its corp is configured,
    /// otherwise the console.
    pub async fn target_for_user(&self, tx: &mut Tx, user_id: i64) -> sqlx::Result<Target> {
        let identities = store::users::identities_of(tx, user_id).await?;
        Ok(self.pick(user_id, identities.iter().map(|(p, c, u)| (p.as_str(), c.as_str(), u.as_str()))))
    }

    /// [`Routes::target_for_user`] for several users in one query.
    pub async fn targets_for_users(
        &self,
        tx: &mut Tx,
        user_ids: &[i64],
    ) -> sqlx::Result<std::collections::HashMap<i64, Target>> {
        let mut ids = user_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let rows = store::users::identities_of_many(tx, &ids).await?;
        Ok(ids
            .iter()
            .map(|id| {
                let mine = rows.iter().filter(|r| r.0 == *id).map(|r| (r.1.as_str(), r.2.as_str(), r.3.as_str()));
                (*id, self.pick(*id, mine))
            })
            .collect())
    }

    fn pick<'a>(&self, user_id: i64, identities: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> Target {
        for (platform, corp_id, platform_user_id) in identities {
            let apps = match platform {
                wecom::PLATFORM => &self.wecom,
                dingtalk::PLATFORM => &self.dingtalk,
                feishu::PLATFORM => &self.feishu,
                _ => continue,
            };
            if let Some((app, _)) = apps.iter().find(|(_, corp)| corp == corp_id) {
                return Target { platform: platform.into(), app: app.clone(), recipient: platform_user_id.to_string() };
            }
        }
        Target { platform: console::PLATFORM.into(), app: String::new(), recipient: user_id.to_string() }
    }
}

/// A message to queue.
pub struct Outgoing<'a> {
    pub org_id: Option<i64>,
    pub user_id: Option<i64>,
    pub kind: Kind,
    pub target: &'a Target,
    pub message: &'a OutMessage,
    /// Queued once per key, ever: e.g. `reminder:42:2026-11-24T07:00:00Z`.
    pub dedupe_key: &'a str,
    /// Not sent before this.
    pub not_before: DateTime<Utc>,
}

/// Queues a message in the caller's transaction. Text over the platform's size limit becomes
/// several messages (keys suffixed `#2`, `#3`, …). Returns false when the key was queued before.
pub async fn enqueue(tx: &mut Tx, out: &Outgoing<'_>, now: DateTime<Utc>) -> sqlx::Result<bool> {
    // One row per part: a part that failed is sent again alone, never with the parts already
    // delivered (a robot webhook has no duplicate check). An image is one message whatever its
    // caption.
    let plain = out.message.card.is_none() && out.message.image_png.is_none();
    let limit = match out.target.platform.as_str() {
        wecom::PLATFORM if plain => Some(wecom::client::TEXT_MAX_BYTES),
        dispatch::WECOM_ROBOT if plain && out.message.markdown => Some(wecom::client::ROBOT_MARKDOWN_MAX_BYTES),
        dispatch::WECOM_ROBOT if plain => Some(wecom::client::TEXT_MAX_BYTES),
        _ => None,
    };
    let parts = match limit {
        Some(max) => wecom::client::split_for_limit(&out.message.text, max),
        None => vec![out.message.text.clone()],
    };
    let mut queued = false;
    for (n, part) in parts.into_iter().enumerate() {
        let message = OutMessage { text: part, ..out.message.clone() };
        let body = serde_json::to_string(&message).unwrap_or_default();
        let key = if n == 0 { out.dedupe_key.to_string() } else { format!("{}#{}", out.dedupe_key, n + 1) };
        let row = NewOutboxRow {
            org_id: out.org_id,
            user_id: out.user_id,
            kind: out.kind.as_str(),
            platform: &out.target.platform,
            app: &out.target.app,
            recipient: &out.target.recipient,
            body: &body,
            dedupe_key: &key,
            not_before: out.not_before,
            now,
        };
        queued |= store::outbox::insert(tx, &row).await?;
    }
    Ok(queued)
}

/// Queues several messages in one statement (text is not split: for messages that fit, such as
/// reminder cards). Returns how many were new.
pub async fn enqueue_many(tx: &mut Tx, outs: &[Outgoing<'_>], now: DateTime<Utc>) -> sqlx::Result<u64> {
    let bodies: Vec<String> = outs.iter().map(|o| serde_json::to_string(o.message).unwrap_or_default()).collect();
    let rows: Vec<NewOutboxRow<'_>> = outs
        .iter()
        .zip(&bodies)
        .map(|(o, body)| NewOutboxRow {
            org_id: o.org_id,
            user_id: o.user_id,
            kind: o.kind.as_str(),
            platform: &o.target.platform,
            app: &o.target.app,
            recipient: &o.target.recipient,
            body,
            dedupe_key: o.dedupe_key,
            not_before: o.not_before,
            now,
        })
        .collect();
    let mut n = 0;
    // Well under SQLite's and PostgreSQL's limits on bound values (12 per row).
    for chunk in rows.chunks(1000) {
        n += store::outbox::insert_many(tx, chunk).await?;
    }
    Ok(n)
}

/// Tells the rep a lead was given to them, and why, in the transaction that assigned it.
/// `why` is one line, e.g. "按规则『青岛制造业』分配给你" or "李雷 把线索分配给你".
pub async fn notify_lead_assigned(
    tx: &mut Tx,
    routes: &Routes,
    lead: &crate::crm::Lead,
    to_user: i64,
    why: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let phone = lead.phone.as_deref().map(|p| format!(" {p}")).unwrap_or_default();
    let contact = lead.contact_name.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
    let region = lead.region.as_deref().map(|r| format!("（{r}）")).unwrap_or_default();
    let text = format!(
        "📌 新线索 #{} {}{region}{contact}{phone}\n{why}，请尽快联系。联系后发「转化 #{}」转为客户。",
        lead.id, lead.company, lead.id
    );
    let target = routes.target_for_user(tx, to_user).await?;
    let key = format!("lead-assigned:{}:{to_user}:{}", lead.id, lead.assigned_at.unwrap_or(now).timestamp_millis());
    let out = Outgoing {
        org_id: Some(lead.org_id),
        user_id: Some(to_user),
        kind: Kind::Notice,
        target: &target,
        message: &OutMessage::text(text),
        dedupe_key: &key,
        not_before: now,
    };
    enqueue(tx, &out, now).await
}
