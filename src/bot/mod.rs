//! The bot core: an [`IncomingMessage`] from any platform becomes a [`Reply`].
//!
//! Each message is handled in one database transaction: the inbox row (unique per platform and
//! message id), the change it causes and its audit rows commit together, so a platform retry of
//! a message already handled changes nothing and gets the same reply back.

mod exec;
mod render;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::clock::Clock;
use crate::command::{self, ParseError};
use crate::crm::{self, Actor, CrmError, Ctx, Lang, User, Via};
use crate::store::inbox::NewInboxRow;
use crate::store::{self, Db, Tx};

pub use render::{format_time, yuan};

/// How long a question ("which one?", "why was it lost?") waits for its answer.
pub const PENDING_TTL_MINUTES: i64 = 10;

/// A chat message as every platform adapter delivers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncomingMessage {
    /// `console`, `wecom`, `dingtalk`, `feishu`.
    pub platform: String,
    /// The platform tenant (WeCom corp id, DingTalk corp id, Feishu tenant key, console org).
    pub corp_id: String,
    /// The sender's user id on the platform.
    pub sender: String,
    /// The platform's id of this message; retries carry the same one.
    pub message_id: String,
    pub text: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub text: String,
    /// True when this message id was handled before and the stored reply is returned.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// Nothing was stored; the platform should retry.
    #[error("storage unavailable: {0}")]
    Storage(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Bot {
    db: Db,
    clock: Clock,
    undo_window: chrono::Duration,
}

/// What handling a message produced: the reply text, and whether it changed nothing because the
/// input was refused (then the change is rolled back and the message recorded as rejected).
enum Outcome {
    Done(String),
    Rejected(String),
}

/// Everything the command handlers need about the message being handled.
struct Turn<'a> {
    ctx: Ctx,
    user: &'a User,
    lang: Lang,
    tz: Tz,
    /// The message text, kept for questions that re-run it once answered.
    text: &'a str,
}

impl Bot {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock, undo_window: chrono::Duration::minutes(crm::undo::DEFAULT_WINDOW_MINUTES) }
    }

    /// Changes how far back `undo` reaches.
    pub fn with_undo_window(mut self, window: chrono::Duration) -> Self {
        self.undo_window = window;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub async fn handle(&self, msg: &IncomingMessage) -> Result<Reply, BotError> {
        let span = tracing::info_span!(
            "message",
            platform = %msg.platform,
            org = tracing::field::Empty,
            user = tracing::field::Empty,
            message_id = %msg.message_id,
        );
        self.handle_inner(msg).instrument(span).await
    }

    async fn handle_inner(&self, msg: &IncomingMessage) -> Result<Reply, BotError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let user = crm::users::resolve_identity(&mut tx, &msg.platform, &msg.corp_id, &msg.sender)
            .await
            .map_err(into_storage)?;
        if let Some(u) = &user {
            let span = tracing::Span::current();
            span.record("org", u.org_id);
            span.record("user", u.id);
        }
        let row = inbox_row(msg, user.as_ref(), now);
        let Some(inbox_id) = store::inbox::insert(&mut tx, &row).await? else {
            return self.duplicate(tx, msg).await;
        };
        let Some(user) = user else {
            let text = render::not_linked(command::detect_lang(&msg.text), msg);
            store::inbox::finish(&mut tx, inbox_id, "rejected", &text).await?;
            tx.commit().await?;
            tracing::info!("message from an unlinked chat identity");
            return Ok(Reply { text, duplicate: false });
        };
        let tz = crm::orgs::org_by_id(&mut tx, user.org_id).await.map_err(into_storage)?.tz();
        let local_now = now.with_timezone(&tz);
        let lang = self.language(&mut tx, &user, &msg.text, inbox_id, local_now).await?;
        let ctx = Ctx { actor: Actor::of(&user), via: Via::Chat, source_message_id: Some(inbox_id), now };
        let turn = Turn { ctx, user: &user, lang, tz, text: &msg.text };
        match self.dispatch(&mut tx, &turn, &msg.text).await {
            Ok(Outcome::Done(text)) => {
                store::inbox::finish(&mut tx, inbox_id, "done", &text).await?;
                tx.commit().await?;
                Ok(Reply { text, duplicate: false })
            }
            Ok(Outcome::Rejected(text)) => self.reject(tx, msg, &user, now, text).await,
            Err(CrmError::Db(e)) => {
                tracing::error!(error = %e, "database error while handling a message");
                Err(BotError::Storage(e))
            }
            Err(e) => {
                tracing::info!(error = %e, "command refused");
                let text = e.user_message(lang);
                self.reject(tx, msg, &user, now, text).await
            }
        }
    }

    /// Rolls back whatever the command did, then records the message as rejected with its reply.
    async fn reject(
        &self,
        tx: Tx,
        msg: &IncomingMessage,
        user: &User,
        now: DateTime<Utc>,
        text: String,
    ) -> Result<Reply, BotError> {
        tx.rollback().await?;
        let mut tx = self.db.begin().await?;
        let Some(id) = store::inbox::insert(&mut tx, &inbox_row(msg, Some(user), now)).await? else {
            // A concurrent delivery of the same message got there first.
            return self.duplicate(tx, msg).await;
        };
        store::inbox::finish(&mut tx, id, "rejected", &text).await?;
        tx.commit().await?;
        Ok(Reply { text, duplicate: false })
    }

    async fn duplicate(&self, mut tx: Tx, msg: &IncomingMessage) -> Result<Reply, BotError> {
        let row = store::inbox::by_message_id(&mut tx, &msg.platform, &msg.message_id).await?;
        tx.commit().await?;
        tracing::info!("duplicate message ignored");
        Ok(Reply { text: row.map(|r| r.reply).unwrap_or_default(), duplicate: true })
    }

    /// The reply language: the message's own, or for a bare number or emoji, that of the user's
    /// previous message (a "2" answering a Chinese question gets a Chinese reply).
    async fn language(
        &self,
        tx: &mut Tx,
        user: &User,
        text: &str,
        inbox_id: i64,
        now: DateTime<Tz>,
    ) -> Result<Lang, BotError> {
        if let Some(lang) = lang_of(text, now) {
            return Ok(lang);
        }
        let previous = store::inbox::last_texts(tx, user.id, inbox_id, 5).await?;
        Ok(previous.iter().find_map(|t| lang_of(t, now)).unwrap_or_default())
    }

    async fn dispatch(&self, tx: &mut Tx, turn: &Turn<'_>, text: &str) -> crm::Result<Outcome> {
        let local_now = turn.ctx.now.with_timezone(&turn.tz);
        if let Some(out) = exec::answer_pending(self, tx, turn, text).await? {
            return Ok(out);
        }
        match command::parse(text, local_now) {
            Ok(p) => exec::run(self, tx, turn, p.command, None).await,
            Err(ParseError::Usage { command, detail, .. }) => {
                Ok(Outcome::Rejected(render::usage(turn.lang, command, detail.as_ref())))
            }
            Err(ParseError::Empty) => Ok(Outcome::Rejected(render::help(turn.lang, None))),
        }
    }
}

fn inbox_row<'a>(msg: &'a IncomingMessage, user: Option<&User>, now: DateTime<Utc>) -> NewInboxRow<'a> {
    NewInboxRow {
        org_id: user.map(|u| u.org_id),
        platform: &msg.platform,
        message_id: &msg.message_id,
        sender: &msg.sender,
        user_id: user.map(|u| u.id),
        text: &msg.text,
        received_at: now,
    }
}

/// The language a message is written in; `None` when it has no letters (a number, an emoji).
fn lang_of(text: &str, now: DateTime<Tz>) -> Option<Lang> {
    if !text.chars().any(char::is_alphabetic) {
        return None;
    }
    Some(match command::parse(text, now) {
        Ok(p) => p.lang,
        Err(ParseError::Usage { lang, .. }) => lang,
        Err(ParseError::Empty) => command::detect_lang(text),
    })
}

fn into_storage(e: CrmError) -> sqlx::Error {
    match e {
        CrmError::Db(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
