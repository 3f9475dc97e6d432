//! The bot core: an [`IncomingMessage`] from any platform becomes a [`Reply`].
//!
//! Each message is handled in one database transaction: the inbox row (unique per platform and
//! message id), the change it causes and its audit rows commit together, so a platform retry of
//! a message already handled changes nothing and gets the same reply back.

mod render;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::clock::Clock;
use crate::command::{self, Command, ParseError};
use crate::crm::activities::NewActivity;
use crate::crm::matching::{MatchOutcome, Ranked};
use crate::crm::{self, Actor, CrmError, Ctx, Lang, User, Via};
use crate::store::inbox::NewInboxRow;
use crate::store::{self, Db, Tx};

/// How long a "which one?" question waits for its answer.
const PENDING_TTL_MINUTES: i64 = 10;

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
}

/// The question the bot is waiting on, stored per user.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    action: PendingAction,
    candidates: Vec<(i64, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum PendingAction {
    LogActivity { kind: crm::ActivityKind, content: String },
    ShowCustomer,
}

/// What handling a message produced: the reply text, and whether it changed nothing because the
/// input was refused (then the change is rolled back and the message recorded as rejected).
enum Outcome {
    Done(String),
    Rejected(String),
}

impl Bot {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock }
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
        let lang = command::detect_lang(&msg.text);
        let mut tx = self.db.begin().await?;
        let user = crm::users::resolve_identity(&mut tx, &msg.platform, &msg.corp_id, &msg.sender)
            .await
            .map_err(into_storage)?;
        if let Some(u) = &user {
            let span = tracing::Span::current();
            span.record("org", u.org_id);
            span.record("user", u.id);
        }
        let inbox_row = |user: Option<&User>| NewInboxRow {
            org_id: user.map(|u| u.org_id),
            platform: &msg.platform,
            message_id: &msg.message_id,
            sender: &msg.sender,
            user_id: user.map(|u| u.id),
            text: &msg.text,
            received_at: now,
        };
        let Some(inbox_id) = store::inbox::insert(&mut tx, &inbox_row(user.as_ref())).await? else {
            return self.duplicate(tx, msg).await;
        };
        let Some(user) = user else {
            let text = render::not_linked(lang, msg);
            store::inbox::finish(&mut tx, inbox_id, "rejected", &text).await?;
            tx.commit().await?;
            tracing::info!("message from an unlinked chat identity");
            return Ok(Reply { text, duplicate: false });
        };
        let ctx = Ctx { actor: Actor::of(&user), via: Via::Chat, source_message_id: Some(inbox_id), now };
        let lang = self.language(&mut tx, &user, &msg.text, inbox_id).await?;
        match self.dispatch(&mut tx, &ctx, &user, lang, &msg.text).await {
            Ok(Outcome::Done(text)) => {
                store::inbox::finish(&mut tx, inbox_id, "done", &text).await?;
                tx.commit().await?;
                Ok(Reply { text, duplicate: false })
            }
            Ok(Outcome::Rejected(text)) => self.reject(tx, msg, Some(&user), now, text).await,
            Err(CrmError::Db(e)) => {
                tracing::error!(error = %e, "database error while handling a message");
                Err(BotError::Storage(e))
            }
            Err(e) => {
                tracing::info!(error = %e, "command refused");
                let text = e.user_message(lang);
                self.reject(tx, msg, Some(&user), now, text).await
            }
        }
    }

    /// Rolls back whatever the command did, then records the message as rejected with its reply.
    async fn reject(
        &self,
        tx: Tx,
        msg: &IncomingMessage,
        user: Option<&User>,
        now: DateTime<Utc>,
        text: String,
    ) -> Result<Reply, BotError> {
        tx.rollback().await?;
        let mut tx = self.db.begin().await?;
        let row = NewInboxRow {
            org_id: user.map(|u| u.org_id),
            platform: &msg.platform,
            message_id: &msg.message_id,
            sender: &msg.sender,
            user_id: user.map(|u| u.id),
            text: &msg.text,
            received_at: now,
        };
        let Some(id) = store::inbox::insert(&mut tx, &row).await? else {
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
    async fn language(&self, tx: &mut Tx, user: &User, text: &str, inbox_id: i64) -> Result<Lang, BotError> {
        if let Some(lang) = lang_of(text) {
            return Ok(lang);
        }
        let previous = store::inbox::last_texts(tx, user.id, inbox_id, 5).await?;
        Ok(previous.iter().find_map(|t| lang_of(t)).unwrap_or_default())
    }

    async fn dispatch(&self, tx: &mut Tx, ctx: &Ctx, user: &User, lang: Lang, text: &str) -> crm::Result<Outcome> {
        let parsed = match command::parse(text) {
            Ok(p) => p,
            Err(ParseError::Usage { command, .. }) => return Ok(Outcome::Rejected(render::usage(lang, command))),
            Err(ParseError::Empty) => return Ok(Outcome::Rejected(render::help(lang, None))),
        };
        match parsed.command {
            Command::Help { topic } => Ok(Outcome::Done(render::help(lang, topic.as_deref()))),
            Command::Unknown { text, suggestion } => {
                Ok(Outcome::Rejected(render::unknown(lang, &text, suggestion.as_deref())))
            }
            Command::Today => {
                let org = crm::orgs::org_by_id(tx, ctx.org_id()).await?;
                let today = crm::tasks::today(tx, ctx, org.tz()).await?;
                Ok(Outcome::Done(render::today(lang, &today, org.tz(), ctx.now)))
            }
            Command::CreateCustomer { name } => {
                let new = crm::customers::NewCustomer { name, ..Default::default() };
                let c = crm::customers::create_customer(tx, ctx, new).await?;
                Ok(Outcome::Done(render::customer_created(lang, &c)))
            }
            Command::ShowCustomer { customer } => {
                let found = crm::customers::find_customer(tx, ctx, &customer).await?;
                self.with_customer(tx, ctx, user, lang, &customer, found, PendingAction::ShowCustomer).await
            }
            Command::LogActivity { customer, kind, content } => {
                let found = crm::customers::find_customer(tx, ctx, &customer).await?;
                let action = PendingAction::LogActivity { kind, content };
                self.with_customer(tx, ctx, user, lang, &customer, found, action).await
            }
            Command::Select { index } => {
                let Some(pending) = store::inbox::pending(tx, user.id, ctx.now).await? else {
                    return Ok(Outcome::Rejected(render::nothing_to_select(lang)));
                };
                let Ok(pending) = serde_json::from_value::<Pending>(pending) else {
                    store::inbox::clear_pending(tx, user.id).await?;
                    return Ok(Outcome::Rejected(render::nothing_to_select(lang)));
                };
                let Some((id, _)) = index.checked_sub(1).and_then(|i| pending.candidates.get(i)) else {
                    return Ok(Outcome::Rejected(render::bad_selection(lang, pending.candidates.len())));
                };
                store::inbox::clear_pending(tx, user.id).await?;
                self.act_on_customer(tx, ctx, lang, *id, pending.action).await.map(Outcome::Done)
            }
        }
    }

    /// Acts when the customer is clear; otherwise asks "which one?" and remembers the action.
    #[allow(clippy::too_many_arguments)]
    async fn with_customer(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        user: &User,
        lang: Lang,
        query: &str,
        found: MatchOutcome,
        action: PendingAction,
    ) -> crm::Result<Outcome> {
        match found {
            MatchOutcome::One(Ranked { id, .. }) => {
                store::inbox::clear_pending(tx, user.id).await?;
                self.act_on_customer(tx, ctx, lang, id, action).await.map(Outcome::Done)
            }
            MatchOutcome::Many(list) => {
                let pending = Pending { action, candidates: list.iter().map(|r| (r.id, r.name.clone())).collect() };
                let value = serde_json::to_value(&pending).unwrap_or_default();
                let expires = ctx.now + Duration::minutes(PENDING_TTL_MINUTES);
                store::inbox::set_pending(tx, ctx.org_id(), user.id, &value, expires).await?;
                Ok(Outcome::Done(render::which_one(lang, query, &list)))
            }
            MatchOutcome::None => Ok(Outcome::Rejected(render::no_customer(lang, query))),
        }
    }

    async fn act_on_customer(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        lang: Lang,
        customer_id: i64,
        action: PendingAction,
    ) -> crm::Result<String> {
        match action {
            PendingAction::ShowCustomer => {
                let detail = crm::customers::customer_detail(tx, ctx, customer_id).await?;
                let org = crm::orgs::org_by_id(tx, ctx.org_id()).await?;
                Ok(render::customer_detail(lang, &detail, org.tz()))
            }
            PendingAction::LogActivity { kind, content } => {
                let new = NewActivity {
                    customer_id,
                    kind,
                    content,
                    occurred_at: None,
                    next_step: None,
                    location: None,
                    follow_up: None,
                };
                let logged = crm::activities::log_activity(tx, ctx, new).await?;
                Ok(render::activity_logged(lang, &logged))
            }
        }
    }
}

/// The language a message is written in; `None` when it has no letters (a number, an emoji).
fn lang_of(text: &str) -> Option<Lang> {
    if !text.chars().any(char::is_alphabetic) {
        return None;
    }
    Some(match command::parse(text) {
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
