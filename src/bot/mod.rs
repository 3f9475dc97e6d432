//! The bot core: an [`IncomingMessage`] from any platform becomes a [`Reply`].
//!
//! Each message is handled in one database transaction: the inbox row (unique per platform and
//! message id), the change it causes and its audit rows commit together, so a platform retry of
//! a message already handled changes nothing and gets the same reply back.

mod exec;
pub mod limit;
pub(crate) mod render;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::clock::Clock;
use crate::command::{self, Command, ParseError, Parsed};
use crate::crm::{self, Actor, CrmError, Ctx, Lang, User, Via};
use crate::outbox::{self, Kind, OutMessage, Outgoing, Routes, Target};
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

#[derive(Debug, Clone, thiserror::Error)]
pub enum BotError {
    /// Nothing was stored; the platform should retry.
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// The bot is shutting down.
    #[error("the bot is not running")]
    Stopped,
    /// The caller gave up before a writer took the message, and told the platform to retry.
    #[error("the message waited too long for storage; the platform retries it")]
    Abandoned,
    /// Lost a deadlock or serialization conflict; the batch is retried, and only after several
    /// attempts is this reported (as `Storage`).
    #[error("write conflict: {0}")]
    Conflict(String),
}

impl From<sqlx::Error> for BotError {
    fn from(e: sqlx::Error) -> Self {
        // PostgreSQL: deadlock_detected and serialization_failure are worth one more try.
        let retryable =
            matches!(&e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")));
        if retryable { BotError::Conflict(e.to_string()) } else { BotError::Storage(e.to_string()) }
    }
}

/// Most messages one transaction (one durable commit) carries. Under load the queue fills while a
/// commit is in progress, so one fsync serves many messages (group commit); when idle, a batch is
/// one message and nothing waits.
const MAX_BATCH: usize = 128;

/// How a batch's transaction isolates it from other writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// [`Db::begin`]: repeatable read on PostgreSQL; a conflict is detected and the batch rerun.
    Snapshot,
    /// Lead intakes that conflicted twice: behind the org's intake lock (see [`Core::begin`]).
    OrgSerialized,
}

/// Runs of a message that lost a write conflict (PostgreSQL) before it is reported as failed.
const CONFLICT_ATTEMPTS: u32 = 8;

/// Concurrent writer tasks on PostgreSQL (each holds one pool connection while it writes).
const POSTGRES_WRITERS: usize = 6;

/// The handle platforms use. Messages go through a queue to writer tasks that handle them in
/// batches, each message inside its own savepoint, with one commit per batch.
#[derive(Clone)]
pub struct Bot {
    core: Arc<Core>,
    queue: mpsc::Sender<Job>,
    /// Per-sender rate limit, checked before a message is queued; `None` when off.
    limiter: Option<Arc<limit::Limiter>>,
}

/// What the writer tasks share.
pub(crate) struct Core {
    db: Db,
    clock: Clock,
    undo_window: chrono::Duration,
    /// Most messages per transaction.
    batch: usize,
    org_tz: std::sync::Mutex<std::collections::HashMap<i64, Tz>>,
    /// Where notices to other users (a lead assigned to them) go.
    pub(crate) routes: Arc<Routes>,
    /// Limits the reports read (quiet A customers, stage budgets).
    pub(crate) report: crate::report::ReportOptions,
    /// What became of the messages (for `/metrics`).
    messages: Arc<crate::metrics::MessageCounters>,
    /// The queue, for kept messages to run again ([`requeue`]); weak, so the writers
    /// still stop when every [`Bot`] is gone.
    requeue: mpsc::WeakSender<Job>,
    /// The SQLite writer runs on a thread of its own, so it may run its statements inline.
    inline: std::sync::atomic::AtomicBool,
    /// Messages a platform caller is still waiting on the bot for ([`Bot::drain`]).
    unfinished: Arc<Unfinished>,
}

/// Platform messages not finished yet. A platform may have been told a message was received
/// (acknowledged at its reply deadline, or kept after a storage failure) while it still waits for
/// the writer: shutting down must wait for those too, or they are lost with the process. Messages
/// whose caller waits for the answer (the console, the CLI) need no count: graceful shutdown
/// already waits for their requests.
#[derive(Default)]
struct Unfinished {
    count: std::sync::atomic::AtomicUsize,
    none_left: tokio::sync::Notify,
}

/// One message's share of [`Unfinished`] ([`Bot::unfinished`]), held by the task that waits for
/// the bot's answer. That wait ends only with the message's outcome (answered, given up after its
/// runs again, a panicking batch or a closed queue), so the count ends with it.
pub struct Counted(Arc<Unfinished>);

impl Counted {
    fn new(unfinished: &Arc<Unfinished>) -> Self {
        unfinished.count.fetch_add(1, Ordering::AcqRel);
        Self(unfinished.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// A message that is not text for the parser.
#[derive(Debug, Clone)]
pub enum Special {
    /// Record it and answer this (a voice note without transcript, an attachment, a welcome).
    Reply(String),
    /// A shared location: attach it to the sender's visit logged within the window.
    Location { label: String, window: chrono::Duration },
}

struct Job {
    msg: IncomingMessage,
    special: Option<Special>,
    delivery: Option<Arc<Delivery>>,
    span: tracing::Span,
    done: oneshot::Sender<Result<Reply, BotError>>,
    /// Runs so far that failed although nobody would send the message again ([`requeue`]).
    retries: u32,
}

/// Runs of a kept message that storage failed, about ten minutes (see [`requeue`]).
const KEPT_RETRIES: u32 = 120;

/// How a platform with a reply deadline gets the reply: passively (in the HTTP answer) if the bot
/// is done in time, otherwise pushed through the outbox. Platform and writer agree through one
/// atomic state, so a reply is never both answered and pushed, nor neither; and a message is
/// acknowledged before its reply only once a writer has taken it up inside a live transaction,
/// never while it waits for storage that may not come back (the platform is told to retry).
#[derive(Debug)]
pub struct Delivery {
    target: Target,
    /// A passive reply carries at most this many bytes: the first part goes passively, the rest
    /// is pushed.
    passive_max_bytes: usize,
    /// The platform takes no passive reply: all of it is pushed.
    push_only: std::sync::atomic::AtomicBool,
    /// Nothing may be pushed (see [`Delivery::never_push`]).
    never_push: std::sync::atomic::AtomicBool,
    /// A storage failure does not end the message (see [`Delivery::keep`]).
    keep: std::sync::atomic::AtomicBool,
    state: AtomicU8,
}

/// Queued; no writer has it yet.
const WAITING: u8 = 0;
/// A writer is handling it in an open transaction.
const STARTED: u8 = 1;
/// The writer will answer passively; its commit is under way.
const PASSIVE: u8 = 2;
/// The caller acknowledged it; the writer pushes the reply.
const PUSHED: u8 = 3;
/// The caller told the platform to retry before any writer took it: it must not be handled now.
const ABANDONED: u8 = 4;

/// What the caller does once the platform's deadline passed ([`Delivery::deadline_passed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    /// Acknowledge now: the message is being handled and its reply will be pushed.
    Acknowledge,
    /// Wait: the writer is committing a passive reply.
    Wait,
    /// Answer with a retryable error: no writer took the message (storage slow or unreachable),
    /// and none will; the platform's retry is handled like a first delivery.
    Retry,
}

impl Delivery {
    pub fn new(target: Target, passive_max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            target,
            passive_max_bytes,
            push_only: std::sync::atomic::AtomicBool::new(false),
            never_push: std::sync::atomic::AtomicBool::new(false),
            keep: std::sync::atomic::AtomicBool::new(false),
            state: AtomicU8::new(WAITING),
        })
    }

    /// For platforms with no passive reply (or none usable for this message): the whole reply is
    /// pushed through the outbox.
    pub fn push_only(&self) {
        self.push_only.store(true, Ordering::Release);
    }

    /// For platforms not known to send a message again: a storage failure does not end it with
    /// an error (a refusal may never be acted on) but runs it again ([`requeue`]); its caller
    /// gets the answer if it is still waiting, or acknowledges at the deadline.
    pub fn keep(&self) {
        self.keep.store(true, Ordering::Release);
    }

    /// Nobody would send this message again if it failed now: it was acknowledged (see
    /// [`Late::Acknowledge`]) or is kept ([`Delivery::keep`]).
    fn kept(&self) -> bool {
        self.keep.load(Ordering::Acquire) || self.state.load(Ordering::Acquire) == PUSHED
    }

    /// The reply may only go back passively (or nowhere): the target cannot be reached. A late
    /// reply, or what a passive answer cannot carry, stays in the inbox instead of becoming an
    /// outbox message that can only fail (a DingTalk group message on an app with no agent id,
    /// whose answer must not be posted in the group).
    pub fn never_push(&self) {
        self.never_push.store(true, Ordering::Release);
    }

    /// The platform's deadline passed: see [`Late`]. `platform_retries`: the platform delivers a
    /// message again when it is not acknowledged (WeCom, Feishu). Where it is not known to (a
    /// DingTalk robot), a message no writer has taken yet is acknowledged anyway and stays queued:
    /// refusing it would lose it for sure.
    pub fn deadline_passed(&self, platform_retries: bool) -> Late {
        let cas = |from, to| self.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire);
        let not_taken = if platform_retries { ABANDONED } else { PUSHED };
        match cas(WAITING, not_taken) {
            Ok(_) if !platform_retries => Late::Acknowledge,
            Ok(_) => Late::Retry,
            Err(STARTED) => match cas(STARTED, PUSHED) {
                Ok(_) | Err(PUSHED) => Late::Acknowledge,
                Err(PASSIVE) => Late::Wait,
                Err(_) => Late::Retry,
            },
            Err(PUSHED) => Late::Acknowledge,
            Err(PASSIVE) => Late::Wait,
            Err(_) => Late::Retry,
        }
    }

    /// A writer takes the message up (again, when a batch is retried); false when the caller
    /// already told the platform to retry, and the message must be left alone.
    fn start(&self) -> bool {
        match self.state.compare_exchange(WAITING, STARTED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state != ABANDONED,
        }
    }

    /// The parts of `text` a passive reply carries (the first) and the ones to push (the rest,
    /// or all of them when the caller gave up or the platform takes no passive reply).
    fn split(&self, text: &str) -> (bool, Vec<String>) {
        let passive = !self.push_only.load(Ordering::Acquire)
            && match self.state.compare_exchange(STARTED, PASSIVE, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => true,
                Err(state) => state == PASSIVE,
            };
        (passive, crate::platform::wecom::client::split_for_limit(&self.dialect(text), self.passive_max_bytes))
    }

    /// The first part of a reply, as the passive answer carries it.
    pub fn passive_part(&self, text: &str) -> String {
        crate::platform::wecom::client::split_for_limit(&self.dialect(text), self.passive_max_bytes)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The reply in the target's form: chat platforms get replies as plain text messages, where
    /// the bot's `**bold**` would show as asterisks; the console shows it as written.
    fn dialect(&self, text: &str) -> String {
        if self.target.platform == crate::platform::console::PLATFORM {
            text.to_string()
        } else {
            crate::platform::markdown::plain_text(text)
        }
    }
}

/// What handling a message produced: the reply text, and whether it changed nothing because the
/// input was refused (then the change is rolled back and the message recorded as rejected).
enum Outcome {
    Done(String),
    Rejected(String),
}

/// How one message ended inside its savepoint.
enum Step {
    /// Keep everything; record `status` and `text` on the inbox row.
    Keep { inbox_id: i64, status: &'static str, text: String },
    /// Roll back the command's changes, then record the message as rejected with `text`.
    Refuse { user: Box<User>, text: String },
    /// Already handled: the stored reply.
    Duplicate(String),
}

/// Everything the command handlers need about the message being handled.
struct Turn<'a> {
    ctx: Ctx,
    user: &'a User,
    lang: Lang,
    tz: Tz,
    /// The message text, kept for questions that re-run it once answered.
    text: &'a str,
    /// The user's open question (or check-in) when the message arrived, and whether it is
    /// still valid; read once per message.
    pending: Option<(serde_json::Value, bool)>,
}

impl Bot {
    /// Starts the writer tasks (one on SQLite, which has one writer anyway; several on PostgreSQL).
    /// Must be called inside a Tokio runtime.
    pub fn new(db: Db, clock: Clock) -> Self {
        Self::with_options(db, clock, chrono::Duration::minutes(crm::undo::DEFAULT_WINDOW_MINUTES))
    }

    /// Like [`Bot::new`], with how far back `undo` reaches.
    pub fn with_options(db: Db, clock: Clock, undo_window: chrono::Duration) -> Self {
        Self::with_routes(db, clock, undo_window, Routes::default())
    }

    /// Like [`Bot::with_options`], with the platform apps that reach users (for notices).
    pub fn with_routes(db: Db, clock: Clock, undo_window: chrono::Duration, routes: Routes) -> Self {
        Self::with_settings(db, clock, undo_window, routes, crate::report::ReportOptions::default())
    }

    /// Like [`Bot::with_routes`], with the limits reports use (from `[schedule]`).
    pub fn with_settings(
        db: Db,
        clock: Clock,
        undo_window: chrono::Duration,
        routes: Routes,
        report: crate::report::ReportOptions,
    ) -> Self {
        // SQLite has one writer at a time: one writer task batches messages so one fsync serves
        // many. PostgreSQL takes concurrent writers and already shares WAL flushes between
        // concurrent commits, while a long batch would hold row locks other writers wait on: there,
        // several writers each commit one message at a time. Writers of other instances are
        // handled by retrying a message that lost a deadlock (see `handle_one`).
        let db_kind = db.kind();
        let (writers, batch) = match db_kind {
            crate::config::DatabaseKind::Sqlite => (1, MAX_BATCH),
            crate::config::DatabaseKind::Postgres => (POSTGRES_WRITERS, 1),
        };
        let (queue, rx) = mpsc::channel::<Job>(MAX_BATCH * 8);
        let core = Arc::new(Core {
            unfinished: Default::default(),
            requeue: queue.downgrade(),
            inline: Default::default(),
            db,
            clock,
            undo_window,
            batch,
            org_tz: Default::default(),
            routes: Arc::new(routes),
            report,
            messages: Default::default(),
        });
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        if db_kind == crate::config::DatabaseKind::Sqlite {
            // The SQLite writer runs its batches on a thread of its own, with the connection
            // inline (`Tx::run_inline`): its statements block that thread, never the runtime
            // that serves HTTP, and no statement is handed to another thread and back.
            let spawned = std::thread::Builder::new().name("chatcrm-sqlite-writer".into()).spawn({
                let (core, rx) = (core.clone(), rx.clone());
                move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => {
                        core.inline.store(true, Ordering::Release);
                        rt.block_on(writer(core, rx))
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start the SQLite writer's runtime"),
                }
            });
            if let Err(e) = spawned {
                // Without its own thread the writer still works, on the caller's runtime.
                tracing::warn!(error = %e, "cannot start the SQLite writer thread; writing on the server's runtime");
                tokio::spawn(writer(core.clone(), rx.clone()));
            }
        } else {
            for _ in 0..writers {
                tokio::spawn(writer(core.clone(), rx.clone()));
            }
        }
        Self { core, queue, limiter: None }
    }

    /// Limits how fast each sender's messages are handled (see [`limit`]); off when
    /// `per_minute` is 0.
    pub fn with_sender_limit(mut self, limit: limit::SenderLimit) -> Self {
        self.limiter = limit::Limiter::new(limit).map(Arc::new);
        self
    }

    pub fn db(&self) -> &Db {
        &self.core.db
    }

    /// Counts a message as unfinished until the guard is dropped: for a caller that may
    /// acknowledge it to its platform before the bot is done (see [`Bot::drain`]).
    pub fn unfinished(&self) -> Counted {
        Counted::new(&self.core.unfinished)
    }

    /// Waits, at most `timeout`, until every counted message ([`Bot::unfinished`]) is finished:
    /// stored and answered, or given up. Shutdown calls it once the HTTP server has stopped, for the messages
    /// a platform was already told were received. Returns how many are still unfinished.
    pub async fn drain(&self, timeout: std::time::Duration) -> usize {
        let shared = &self.core.unfinished;
        let wait = async {
            loop {
                let none_left = shared.none_left.notified();
                tokio::pin!(none_left);
                // Registered before the count is read, so a last job ending in between still wakes it.
                none_left.as_mut().enable();
                if shared.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                none_left.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        shared.count.load(Ordering::Acquire)
    }

    /// What became of the messages so far (for `/metrics`).
    pub fn messages(&self) -> &crate::metrics::MessageCounters {
        &self.core.messages
    }

    /// Handles one message: returns once its effects and the inbox row are durably committed.
    pub async fn handle(&self, msg: &IncomingMessage) -> Result<Reply, BotError> {
        self.submit(msg, None, None).await
    }

    /// Handles a non-text message (recorded in the inbox and deduplicated like any other).
    pub async fn handle_special(&self, msg: &IncomingMessage, special: Special) -> Result<Reply, BotError> {
        self.submit(msg, Some(special), None).await
    }

    /// Handles a message whose platform waits for the reply only so long: what the passive reply
    /// cannot carry, or all of it once the caller stopped waiting ([`Delivery::deadline_passed`]), is
    /// queued in the outbox in the message's own transaction.
    pub async fn handle_with_delivery(
        &self,
        msg: &IncomingMessage,
        special: Option<Special>,
        delivery: Arc<Delivery>,
    ) -> Result<Reply, BotError> {
        self.submit(msg, special, Some(delivery)).await
    }

    async fn submit(
        &self,
        msg: &IncomingMessage,
        special: Option<Special>,
        delivery: Option<Arc<Delivery>>,
    ) -> Result<Reply, BotError> {
        let span = tracing::info_span!(
            "message",
            platform = %msg.platform,
            org = tracing::field::Empty,
            user = tracing::field::Empty,
            message_id = %msg.message_id,
        );
        let verdict = self
            .limiter
            .as_deref()
            .map(|l| (l, l.check(&msg.platform, &msg.corp_id, &msg.sender, self.core.clock.now())));
        let special = match verdict {
            None | Some((_, limit::Verdict::Allow)) => special,
            Some((l, limit::Verdict::Warn)) => {
                span.in_scope(
                    || tracing::warn!(sender = %msg.sender, "sender over the rate limit; answering with a notice"),
                );
                Some(Special::Reply(l.notice(crate::command::detect_lang(&msg.text))))
            }
            Some((_, limit::Verdict::Drop)) => {
                // Acknowledged (so the platform does not retry it) and not acted on: the sender
                // was told with the first message over the limit.
                span.in_scope(|| tracing::info!(sender = %msg.sender, "sender over the rate limit; message dropped"));
                self.core.messages.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Ok(self.stored_answer(msg).await);
            }
        };
        let (done, wait) = oneshot::channel();
        let job = Job { msg: msg.clone(), special, delivery, span, done, retries: 0 };
        let result = match self.queue.send(job).await {
            Ok(()) => wait.await.unwrap_or(Err(BotError::Stopped)),
            Err(_) => Err(BotError::Stopped),
        };
        if result.is_err()
            && let Some((l, _)) = verdict
        {
            // Nothing was stored and the platform is told to send it again: that delivery
            // must not count against the sender (nor a notice that was never recorded).
            l.refund(&msg.platform, &msg.corp_id, &msg.sender);
        }
        result
    }

    /// For a message not handled now: the stored reply when it is a redelivery of one handled
    /// before (the platform missed our answer), else nothing. One indexed read, no write.
    async fn stored_answer(&self, msg: &IncomingMessage) -> Reply {
        let stored = async {
            let mut tx = self.core.db.begin_read().await?;
            let reply = self.core.stored_reply(&mut tx, msg).await;
            tx.commit().await?;
            reply
        };
        match stored.await {
            Ok(Some(text)) => Reply { text, duplicate: true },
            Ok(None) => Reply { text: String::new(), duplicate: false },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the inbox for a rate-limited message");
                Reply { text: String::new(), duplicate: false }
            }
        }
    }
}

/// Storage failed a message nobody would send again ([`Delivery::kept`]: acknowledged at its
/// reply deadline, or from a platform not known to retry): it goes back in the queue after a
/// pause, for about ten minutes of storage failures. Its caller, if still waiting, gets the
/// answer of the run that succeeds; otherwise the reply is pushed. Only a process exit or a
/// longer outage loses it, and that is logged with the message id.
fn requeue(core: &Core, job: Job) {
    let Job { msg, special, delivery, span, done, retries } = job;
    if retries >= KEPT_RETRIES {
        span.in_scope(|| tracing::error!("a kept message could not be stored in ten minutes; it is lost"));
        core.messages.failed.fetch_add(1, Ordering::Relaxed);
        let _ = done.send(Err(BotError::Storage("storage failed for ten minutes".into())));
        return;
    }
    span.in_scope(|| tracing::warn!(retries, "storage failed a message nobody would send again; it will run again"));
    let queue = core.requeue.clone();
    tokio::spawn(async move {
        // 1 s, 2 s, 4 s, then every 5 s.
        tokio::time::sleep(std::time::Duration::from_secs(u64::from((1u32 << retries.min(3)).min(5)))).await;
        let job = Job { msg, special, delivery, span, done, retries: retries + 1 };
        let sent = match queue.upgrade() {
            Some(queue) => queue.send(job).await.map_err(|e| e.0.span),
            None => Err(job.span),
        };
        if let Err(span) = sent {
            span.in_scope(|| tracing::error!("the bot stopped before a kept message could run again; it is lost"));
        }
    });
}

/// A writer task: takes what is queued (up to a batch), handles each message in a savepoint of
/// one transaction, commits once, then answers every caller.
async fn writer(core: Arc<Core>, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < core.batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        // A panic while handling a batch (a bug) must not stop the writer: the batch runs in its
        // own task; if it panics, its transaction is dropped (rolled back) and its callers get an
        // error to retry, and the writer goes on with the next batch.
        let batch_len = batch.len();
        let task = {
            let core = core.clone();
            tokio::spawn(async move {
                let results = core.handle_batch(&batch).await;
                (batch, results)
            })
        };
        match task.await {
            Ok((batch, results)) => {
                let m = &core.messages;
                for (job, result) in batch.into_iter().zip(results) {
                    let counter = match &result {
                        Ok(reply) if reply.duplicate => &m.duplicates,
                        Ok(_) => &m.handled,
                        Err(BotError::Abandoned) => &m.retry_asked,
                        Err(BotError::Storage(_) | BotError::Conflict(_))
                            if job.delivery.as_ref().is_some_and(|d| d.kept()) =>
                        {
                            // Not an outcome yet: it runs again, and is counted then.
                            requeue(&core, job);
                            continue;
                        }
                        Err(_) => &m.failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // The caller may have gone (request timeout); the message is stored either way.
                    let _ = job.done.send(result);
                }
            }
            Err(e) => {
                // The batch's jobs (and their callers) are gone with the task; count them.
                tracing::error!(error = %e, "a batch of messages failed; nothing of it was stored");
                core.messages.failed.fetch_add(batch_len as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Core {
    /// Handles a batch; when a message lost a write conflict with another writer (PostgreSQL,
    /// repeatable read), the whole batch is rolled back and, after a random pause, run again in a
    /// new transaction (see [`Isolation`]).
    async fn handle_batch(&self, batch: &[Job]) -> Vec<Result<Reply, BotError>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // After two conflicts a lead intake queues behind the org's other intakes instead of
            // racing them (see `Core::begin`).
            let how = if attempt > 2 { Isolation::OrgSerialized } else { Isolation::Snapshot };
            let results = self.handle_batch_once(batch, how).await;
            let conflict = results.iter().any(|r| matches!(r, Err(BotError::Conflict(_))));
            if !conflict {
                return results;
            }
            if attempt >= CONFLICT_ATTEMPTS {
                return results
                    .into_iter()
                    .map(|r| {
                        r.map_err(|e| match e {
                            BotError::Conflict(m) => BotError::Storage(m),
                            other => other,
                        })
                    })
                    .collect();
            }
            tracing::warn!(attempt, "write conflict with another writer; running the batch again");
            // Writers that conflicted once (two intakes of one org waiting on its lock) would
            // meet again if they retried at once: a random pause, growing with the attempt.
            store::backoff(attempt).await;
        }
    }

    async fn handle_batch_once(&self, batch: &[Job], how: Isolation) -> Vec<Result<Reply, BotError>> {
        let mut tx = match self.begin(batch, how).await {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a transaction");
                let e = BotError::from(e);
                return batch.iter().map(|_| Err(e.clone())).collect();
            }
        };
        // Only on the writer's own thread: inline statements block the thread they run on.
        if self.inline.load(Ordering::Acquire)
            && let Err(e) = tx.run_inline().await
        {
            tracing::error!(error = %e, "cannot take the connection inline");
            let e = BotError::from(e);
            return batch.iter().map(|_| Err(e.clone())).collect();
        }
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            if job.delivery.as_ref().is_some_and(|d| !d.start()) {
                // Its caller told the platform to retry; the retry is handled as a first delivery.
                results.push(Err(BotError::Abandoned));
                continue;
            }
            results.push(
                self.handle_one(&mut tx, &job.msg, job.special.as_ref(), job.delivery.as_deref())
                    .instrument(job.span.clone())
                    .await,
            );
        }
        if results.iter().any(|r| matches!(r, Err(BotError::Conflict(_)))) {
            // Run again from a fresh snapshot; nothing of this attempt is kept.
            let _ = tx.rollback().await;
            return results;
        }
        match tx.commit().await {
            Ok(()) => results,
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "commit failed; nothing of this batch was stored");
                let e = BotError::from(e);
                batch.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }

    /// The batch's transaction. With [`Isolation::OrgSerialized`] on PostgreSQL, a batch of lead
    /// intakes runs as the JSON API's intakes do ([`store::begin_org_serialized`]): read
    /// committed, behind the org's intake lock taken before anything is read, so it waits for the
    /// org's other intakes and then sees what they committed. Under repeatable read an intake that
    /// waited on that lock always fails (40001) once the holder commits, however often it is run
    /// again. Any other message stays at repeatable read, which is what detects its lost updates.
    async fn begin(&self, batch: &[Job], how: Isolation) -> Result<Tx, sqlx::Error> {
        let intake = |m: &IncomingMessage| {
            // The command's kind does not depend on the time zone.
            let now = self.clock.now().with_timezone(&chrono_tz::UTC);
            matches!(command::parse(&m.text, now), Ok(Parsed { command: Command::CreateLead { .. }, .. }))
        };
        if how == Isolation::Snapshot || !matches!(self.db, Db::Postgres(_)) || !batch.iter().all(|j| intake(&j.msg)) {
            return self.db.begin().await;
        }
        let mut orgs = Vec::with_capacity(batch.len());
        for job in batch {
            let m = &job.msg;
            let mut tx = self.db.begin_read().await?;
            let user = crm::users::resolve_identity(&mut tx, &m.platform, &m.corp_id, &m.sender).await;
            tx.commit().await?;
            if let Some(user) = user.map_err(into_storage)? {
                orgs.push(user.org_id);
            }
        }
        store::begin_org_serialized(&self.db, orgs).await
    }

    /// One message inside its savepoint; on any error the savepoint is rolled back, so a failed
    /// message leaves nothing in the batch.
    async fn handle_one(
        &self,
        tx: &mut Tx,
        msg: &IncomingMessage,
        special: Option<&Special>,
        delivery: Option<&Delivery>,
    ) -> Result<Reply, BotError> {
        store::savepoint(tx, store::Savepoint::Begin).await?;
        match self.handle_once(tx, msg, special, delivery).await {
            Ok(reply) => {
                store::savepoint(tx, store::Savepoint::Release).await?;
                Ok(reply)
            }
            Err(e) => {
                tracing::error!(error = %e, "database error while handling a message");
                store::savepoint(tx, store::Savepoint::Rollback).await?;
                store::savepoint(tx, store::Savepoint::Release).await?;
                Err(e)
            }
        }
    }

    /// One message's work inside the savepoint `handle_one` opened: a refusal rolls back to it and
    /// records the message as rejected.
    async fn handle_once(
        &self,
        tx: &mut Tx,
        msg: &IncomingMessage,
        special: Option<&Special>,
        delivery: Option<&Delivery>,
    ) -> Result<Reply, BotError> {
        let now = self.clock.now();
        match self.step(tx, msg, special, now).await? {
            Step::Keep { inbox_id, status, text } => {
                store::inbox::finish(tx, inbox_id, status, &text).await?;
                self.push_reply(tx, msg, delivery, &text, now).await?;
                Ok(Reply { text, duplicate: false })
            }
            Step::Duplicate(text) => {
                tracing::info!("duplicate message ignored");
                Ok(Reply { text, duplicate: true })
            }
            Step::Refuse { user, text } => {
                store::savepoint(tx, store::Savepoint::Rollback).await?;
                match store::inbox::insert(tx, &inbox_row(msg, Some(&user), now)).await? {
                    Some(id) => {
                        store::inbox::finish(tx, id, "rejected", &text).await?;
                        self.push_reply(tx, msg, delivery, &text, now).await?;
                        Ok(Reply { text, duplicate: false })
                    }
                    None => Ok(Reply { text: self.stored_reply(tx, msg).await?.unwrap_or_default(), duplicate: true }),
                }
            }
        }
    }

    /// Queues what of the reply the platform's passive answer will not carry.
    async fn push_reply(
        &self,
        tx: &mut Tx,
        msg: &IncomingMessage,
        delivery: Option<&Delivery>,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<(), BotError> {
        let Some(d) = delivery else { return Ok(()) };
        if text.is_empty() || d.never_push.load(Ordering::Acquire) {
            return Ok(());
        }
        let (passive, parts) = d.split(text);
        for (n, part) in parts.into_iter().enumerate().skip(usize::from(passive)) {
            let key = format!("reply:{}:{}:{n}", msg.platform, msg.message_id);
            let message = OutMessage::text(part);
            let out = Outgoing {
                org_id: None,
                user_id: None,
                kind: Kind::Reply,
                target: &d.target,
                message: &message,
                dedupe_key: &key,
                not_before: now,
            };
            outbox::enqueue(tx, &out, now).await?;
        }
        Ok(())
    }

    /// The reply stored for this message, when it was handled before.
    async fn stored_reply(&self, tx: &mut Tx, msg: &IncomingMessage) -> Result<Option<String>, BotError> {
        let row = store::inbox::by_message_id(tx, &msg.platform, &msg.message_id).await?;
        Ok(row.map(|r| r.reply))
    }

    async fn step(
        &self,
        tx: &mut Tx,
        msg: &IncomingMessage,
        special: Option<&Special>,
        now: DateTime<Utc>,
    ) -> Result<Step, BotError> {
        let user =
            crm::users::resolve_identity(tx, &msg.platform, &msg.corp_id, &msg.sender).await.map_err(into_storage)?;
        if let Some(u) = &user {
            let span = tracing::Span::current();
            span.record("org", u.org_id);
            span.record("user", u.id);
        }
        let Some(inbox_id) = store::inbox::insert(tx, &inbox_row(msg, user.as_ref(), now)).await? else {
            return Ok(Step::Duplicate(self.stored_reply(tx, msg).await?.unwrap_or_default()));
        };
        let Some(user) = user else {
            tracing::info!("message from an unlinked chat identity");
            let text = render::not_linked(command::detect_lang(&msg.text), msg);
            return Ok(Step::Keep { inbox_id, status: "rejected", text });
        };
        match special {
            Some(Special::Reply(text)) => return Ok(Step::Keep { inbox_id, status: "done", text: text.clone() }),
            Some(Special::Location { label, window }) => {
                let ctx = Ctx { actor: Actor::of(&user), via: Via::Chat, source_message_id: Some(inbox_id), now };
                let attached = crm::activities::attach_location(tx, &ctx, label, *window).await;
                let text = match attached {
                    Ok(Some(a)) => format!("📍 已把位置「{label}」附到拜访 #{}（{}）", a.id, a.customer_name),
                    Ok(None) => {
                        exec::start_check_in(tx, &ctx, user.id, label, now + *window).await.map_err(into_storage)?;
                        format!(
                            "📍 已签到「{label}」。{} 分钟内记录的拜访会附上这个位置，例如：拜访 海尔 聊了二期需求",
                            window.num_minutes()
                        )
                    }
                    Err(CrmError::Db(e)) => return Err(e.into()),
                    Err(e) => e.user_message(Lang::Zh),
                };
                return Ok(Step::Keep { inbox_id, status: "done", text });
            }
            None => {}
        }
        let tz = self.org_tz(tx, user.org_id).await?;
        // Parsed once: the language, the answer to an open question and the command all come
        // from this.
        let local_now = now.with_timezone(&tz);
        let parsed = command::parse(&msg.text, local_now);
        let lang = self.language(tx, &user, &msg.text, &parsed, inbox_id, local_now).await?;
        let ctx = Ctx { actor: Actor::of(&user), via: Via::Chat, source_message_id: Some(inbox_id), now };
        let pending = store::inbox::pending(tx, user.id, now).await?;
        let turn = Turn { ctx, user: &user, lang, tz, text: &msg.text, pending };
        let outcome = self.dispatch(tx, &turn, parsed).await;
        Ok(match outcome {
            Ok(Outcome::Done(text)) => Step::Keep { inbox_id, status: "done", text },
            Ok(Outcome::Rejected(text)) => Step::Refuse { user: Box::new(user), text },
            Err(CrmError::Db(e)) => return Err(e.into()),
            Err(e) => {
                tracing::info!(error = %e, "command refused");
                Step::Refuse { text: e.user_message(lang), user: Box::new(user) }
            }
        })
    }

    /// An org's time zone, read once per process: it is set when the org is created and every
    /// message needs it.
    async fn org_tz(&self, tx: &mut Tx, org_id: i64) -> Result<Tz, BotError> {
        if let Some(tz) = self.org_tz.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&org_id) {
            return Ok(*tz);
        }
        let tz = crm::orgs::org_by_id(tx, org_id).await.map_err(into_storage)?.tz();
        self.org_tz.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(org_id, tz);
        Ok(tz)
    }

    /// The reply language: the message's own, or for a bare number or emoji, that of the user's
    /// previous message (a "2" answering a Chinese question gets a Chinese reply).
    async fn language(
        &self,
        tx: &mut Tx,
        user: &User,
        text: &str,
        parsed: &Result<Parsed, ParseError>,
        inbox_id: i64,
        now: DateTime<Tz>,
    ) -> Result<Lang, BotError> {
        if has_letters(text) {
            return Ok(parsed_lang(parsed, text));
        }
        let previous = store::inbox::last_texts(tx, user.id, inbox_id, 5).await?;
        Ok(previous
            .iter()
            .filter(|t| has_letters(t))
            .map(|t| parsed_lang(&command::parse(t, now), t))
            .next()
            .unwrap_or_default())
    }

    async fn dispatch(&self, tx: &mut Tx, turn: &Turn<'_>, parsed: Result<Parsed, ParseError>) -> crm::Result<Outcome> {
        let choice = match &parsed {
            Ok(Parsed { command: Command::Select { choice }, .. }) => Some(*choice),
            _ => None,
        };
        if let Some(out) = exec::answer_pending(self, tx, turn, choice).await? {
            return Ok(out);
        }
        match parsed {
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

/// A message with no letters (a number, an emoji) has no language of its own.
fn has_letters(text: &str) -> bool {
    text.chars().any(char::is_alphabetic)
}

/// The language of a parsed message: its command word's, else its script's.
fn parsed_lang(parsed: &Result<Parsed, ParseError>, text: &str) -> Lang {
    match parsed {
        Ok(p) => p.lang,
        Err(ParseError::Usage { lang, .. }) => *lang,
        Err(ParseError::Empty) => command::detect_lang(text),
    }
}

fn into_storage(e: CrmError) -> sqlx::Error {
    match e {
        CrmError::Db(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
