//! Feishu: placeholder wiring; the adapter is being built (issue 8).

use serde::{Deserialize, Serialize};

use super::PushFailure;
use crate::outbox::OutMessage;

pub const PLATFORM: &str = "feishu";

/// `[feishu]` settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeishuSettings {
    pub apps: Vec<FeishuApp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuApp {
    /// The `{app}` in the callback URL.
    pub name: String,
    /// The chatcrm org this app's users belong to.
    pub org: String,
    /// The corp (tenant) the identities `users link --platform feishu --corp …` name.
    pub corp_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("feishu app `{0}`: {1}")]
    Invalid(String, String),
}

/// Every configured app.
#[derive(Clone, Default)]
pub struct Apps {}

impl Apps {
    pub fn from_settings(_s: &FeishuSettings) -> Result<Self, SetupError> {
        Ok(Self {})
    }

    /// A push client per app name, for the outbox.
    pub fn pushers(&self) -> Vec<(String, Pusher)> {
        Vec::new()
    }
}

/// Delivers outbox messages to one app's users and chats.
#[derive(Clone)]
pub struct Pusher {}

impl Pusher {
    pub async fn deliver(&self, _recipient: &str, _message: &OutMessage) -> Result<(), PushFailure> {
        Err(PushFailure::Fatal("feishu push is not built yet".into()))
    }
}
