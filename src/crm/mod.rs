//! The CRM domain: every rule about who may do what, and every change with its audit row.
//!
//! Services take an open [`Tx`](crate::store::Tx) and a [`Ctx`] (who, via what, when), so a
//! caller can put a change, its audit row and the inbound message that caused it in one
//! transaction. Services never know which chat platform a message came from.

pub mod activities;
pub mod customers;
pub mod deals;
pub mod lead_rules;
pub mod leads;
pub mod matching;
pub mod model;
pub mod orgs;
pub mod tasks;
pub mod undo;
pub mod users;

use serde::Serialize;

pub use model::*;

use crate::store::{self, Tx};

/// The user's language for replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

/// A message in both languages; errors carry one so the bot can answer in the user's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub zh: String,
    pub en: String,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }
}

pub fn text(zh: impl Into<String>, en: impl Into<String>) -> Text {
    Text { zh: zh.into(), en: en.into() }
}

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("not found: {}", .0.en)]
    NotFound(Text),
    #[error("permission denied: {}", .0.en)]
    Forbidden(Text),
    #[error("invalid input: {}", .0.en)]
    Invalid(Text),
    #[error("conflict: {}", .0.en)]
    Conflict(Text),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl CrmError {
    /// What to tell the user. Database failures are not the user's fault and say so.
    pub fn user_message(&self, lang: Lang) -> String {
        match self {
            CrmError::NotFound(t) | CrmError::Forbidden(t) | CrmError::Invalid(t) | CrmError::Conflict(t) => {
                t.get(lang).to_string()
            }
            CrmError::Db(_) => match lang {
                Lang::Zh => "系统暂时无法保存，请稍后重试。".into(),
                Lang::En => "The system could not save this right now; please try again shortly.".into(),
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            CrmError::NotFound(_) => "not_found",
            CrmError::Forbidden(_) => "forbidden",
            CrmError::Invalid(_) => "invalid",
            CrmError::Conflict(_) => "conflict",
            CrmError::Db(_) => "database",
        }
    }
}

pub type Result<T, E = CrmError> = std::result::Result<T, E>;

pub(crate) fn forbidden(zh: &str, en: &str) -> CrmError {
    CrmError::Forbidden(text(zh, en))
}

pub(crate) fn invalid(zh: impl Into<String>, en: impl Into<String>) -> CrmError {
    CrmError::Invalid(text(zh, en))
}

pub(crate) fn not_found(zh: impl Into<String>, en: impl Into<String>) -> CrmError {
    CrmError::NotFound(text(zh, en))
}

/// Writes the audit row for a change, in the change's transaction.
pub(crate) async fn audit<B: Serialize, A: Serialize>(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    entity: &str,
    entity_id: i64,
    before: Option<&B>,
    after: Option<&A>,
) -> Result<()> {
    fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
    }
    store::audit::insert(
        tx,
        store::audit::NewAuditRow {
            org_id: ctx.org_id(),
            actor_id: ctx.actor.user_id,
            action,
            entity,
            entity_id,
            before: before.map(to_json),
            after: after.map(to_json),
            via: ctx.via,
            source_message_id: ctx.source_message_id,
            at: ctx.now,
        },
    )
    .await?;
    Ok(())
}

/// Checks a free-text field: trimmed, non-empty when required, at most `max` characters.
pub(crate) fn clean_text(field_zh: &str, field_en: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid(format!("{field_zh}不能为空"), format!("{field_en} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(invalid(
            format!("{field_zh}太长了（最多 {max} 个字）"),
            format!("{field_en} is too long (at most {max} characters)"),
        ));
    }
    Ok(v.to_string())
}

/// Like [`clean_text`] for optional fields: blank becomes `None`.
pub(crate) fn clean_opt(field_zh: &str, field_en: &str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => clean_text(field_zh, field_en, v, max).map(Some),
    }
}

/// Reject actors that are not managers or admins.
pub(crate) fn require_manager(ctx: &Ctx, zh: &str, en: &str) -> Result<()> {
    match ctx.actor.role {
        Role::Manager | Role::Admin => Ok(()),
        Role::Rep => Err(forbidden(zh, en)),
    }
}

pub(crate) fn require_admin(ctx: &Ctx, zh: &str, en: &str) -> Result<()> {
    match ctx.actor.role {
        Role::Admin => Ok(()),
        _ => Err(forbidden(zh, en)),
    }
}
