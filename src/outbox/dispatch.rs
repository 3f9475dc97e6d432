//! Delivers queued messages: claim a batch with a lease, send concurrently, record the outcomes.
//!
//! At least once: a message is marked sent only after the platform accepted it, so a crash between
//! the two sends it again once the lease expires. A live instance never sends a row past its
//! claim: sends start only in the lease's first half and are cut off before it ends
//! ([`spawn_send`]). WeCom app messages carry
//! `enable_duplicate_check`, with which WeCom drops that second copy; console messages are
//! delivered inside the transaction that marks them sent, so they arrive exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};

use super::OutMessage;
use crate::clock::Clock;
use crate::platform::wecom::client::{ErrorClass, Message, PushError, RobotClient, RobotMessage, WecomClient};
use crate::platform::{PushFailure, console, dingtalk, feishu, wecom};
use crate::store::outbox::OutboxRow;
use crate::store::{self, Db, Tx};
use crate::webhooks;

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Most messages claimed at once.
    pub batch: i64,
    /// How long a claim holds; an instance that dies mid-send loses its claim after this.
    pub lease: Duration,
    /// A message still failing after this many attempts is dead-lettered.
    pub max_attempts: i64,
    /// First retry delay; doubled per attempt, with jitter, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How often an idle dispatcher looks for due messages.
    pub poll: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            lease: Duration::from_secs(60),
            max_attempts: 8,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            concurrency: 32,
            poll: Duration::from_millis(500),
        }
    }
}

/// Outbox `platform` of WeCom group-robot messages; the recipient is the webhook key.
pub const WECOM_ROBOT: &str = "wecom_robot";

/// Webhook timeout when the senders were built without a webhook client.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The push clients, by platform app name.
#[derive(Clone, Default)]
pub struct Senders {
    wecom: HashMap<String, WecomClient>,
    /// The robot client and the API base its webhook URLs start with.
    robot: Option<(RobotClient, String)>,
    dingtalk: HashMap<String, dingtalk::Pusher>,
    feishu: HashMap<String, feishu::Pusher>,
    webhook: Option<webhooks::Sender>,
}

impl Senders {
    pub fn from_wecom(apps: &wecom::Apps, api_base: &str, timeout: Duration) -> Self {
        let robot = RobotClient::new(timeout).ok().map(|c| (c, api_base.trim_end_matches('/').to_string()));
        Self {
            wecom: apps.iter().map(|app| (app.cfg.name.clone(), app.client.clone())).collect(),
            robot,
            webhook: webhooks::Sender::new(timeout).ok(),
            ..Default::default()
        }
    }

    /// The client for outbound webhooks (by default one with a 10-second timeout).
    pub fn with_webhooks(mut self, sender: webhooks::Sender) -> Self {
        self.webhook = Some(sender);
        self
    }

    /// Adds the DingTalk and Feishu apps' push clients.
    pub fn with_pushers(mut self, dingtalk: &dingtalk::Apps, feishu: &feishu::Apps) -> Self {
        self.dingtalk.extend(dingtalk.pushers());
        self.feishu.extend(feishu.pushers());
        self
    }

    pub fn with_dingtalk(mut self, app: &str, pusher: dingtalk::Pusher) -> Self {
        self.dingtalk.insert(app.to_string(), pusher);
        self
    }

    pub fn with_feishu(mut self, app: &str, pusher: feishu::Pusher) -> Self {
        self.feishu.insert(app.to_string(), pusher);
        self
    }

    pub fn with_wecom(mut self, app: &str, client: WecomClient) -> Self {
        self.wecom.insert(app.to_string(), client);
        self
    }

    pub fn with_robot(mut self, client: RobotClient, api_base: &str) -> Self {
        self.robot = Some((client, api_base.trim_end_matches('/').to_string()));
        self
    }
}

/// How many messages one recipient may get per window: WeCom silently drops app messages beyond
/// 30 a minute or 1,000 an hour per member (PLATFORMS.md 1), and a robot takes 20 a minute.
fn limits(platform: &str) -> &'static [(i64, usize)] {
    match platform {
        wecom::PLATFORM => &[(60, 30), (3600, 1000)],
        WECOM_ROBOT => &[(60, 20)],
        // Feishu takes 5 messages a second to one user (PLATFORMS.md 3.4); counted across instances.
        feishu::PLATFORM => &[(1, 5)],
        _ => &[],
    }
}

/// Why a send task failed: the WeCom client's own errors, or another platform's, or the claim.
enum Failed {
    Wecom(PushError),
    Other(PushFailure),
    /// Not started: half the claim's lease had passed while it waited for a send slot.
    Unsent,
    /// Cut off as the claim's lease ran out; it may have been delivered.
    CutOff,
}

/// When the sends of one claimed batch may start and must end (see [`spawn_send`]).
#[derive(Clone, Copy)]
struct LeaseWindow {
    start_by: tokio::time::Instant,
    end_by: tokio::time::Instant,
}

impl LeaseWindow {
    fn from_claim(claimed_at: tokio::time::Instant, lease: Duration) -> Self {
        // `Instant + Duration` panics on overflow; the setting has no upper bound.
        let lease = lease.min(Duration::from_secs(365 * 24 * 3600));
        Self { start_by: claimed_at + lease / 2, end_by: claimed_at + lease.mul_f64(0.9) }
    }
}

/// Runs one send of a claimed batch inside the claim: once the lease has run out another instance
/// may claim the row and send it too. A send still waiting for a slot when half the lease has
/// passed is not started (the row waits for the next claim, without using up an attempt), and one
/// still running near the lease's end is cut off and retried later.
fn spawn_send<F>(limit: Arc<Semaphore>, window: LeaseWindow, send: F) -> tokio::task::JoinHandle<Result<(), Failed>>
where
    F: std::future::Future<Output = Result<(), Failed>> + Send + 'static,
{
    tokio::spawn(async move {
        let _permit = limit.acquire_owned().await;
        if tokio::time::Instant::now() >= window.start_by {
            return Err(Failed::Unsent);
        }
        tokio::time::timeout_at(window.end_by, send).await.unwrap_or(Err(Failed::CutOff))
    })
}

/// A DingTalk or Feishu push client.
enum Pushers {
    Dingtalk(dingtalk::Pusher),
    Feishu(feishu::Pusher),
}

/// How one attempt ended.
#[derive(Debug)]
enum Outcome {
    Sent,
    /// Delivered by the record transaction itself (console).
    Local(OutMessage),
    Retry {
        error: String,
        after: Option<Duration>,
        attempted: bool,
    },
    Fatal(String),
}

/// What one [`Dispatcher::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
}

#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    clock: Clock,
    instance: Arc<str>,
    senders: Senders,
    cfg: DispatchConfig,
    wake: Arc<Notify>,
    counters: Arc<crate::metrics::DeliveryCounters>,
}

impl Dispatcher {
    pub fn new(db: Db, clock: Clock, instance: &str, senders: Senders, cfg: DispatchConfig) -> Self {
        Self {
            db,
            clock,
            instance: instance.into(),
            senders,
            cfg,
            wake: Arc::new(Notify::new()),
            counters: Default::default(),
        }
    }

    /// Counts deliveries into `counters` (the server's, for `/metrics`).
    pub fn with_counters(mut self, counters: Arc<crate::metrics::DeliveryCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// Wakes the running dispatcher (after something was queued).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Claims one batch of due messages, sends them and records the outcomes.
    pub async fn run_once(&self) -> Result<DispatchReport, sqlx::Error> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.cfg.lease).unwrap_or(chrono::Duration::seconds(60));
        // Real time, not the (possibly fixed) clock: it bounds how long this instance sends.
        let window = LeaseWindow::from_claim(tokio::time::Instant::now(), self.cfg.lease);
        let rows = {
            let mut tx = self.db.begin_claim().await?;
            let rows = store::outbox::claim(&mut tx, now, now + lease, &self.instance, self.cfg.batch).await?;
            tx.commit().await?;
            rows
        };
        let mut report = DispatchReport { claimed: rows.len(), ..Default::default() };
        if rows.is_empty() {
            return Ok(report);
        }
        let held = self.over_limit(&rows, now).await?;
        let outcomes = self.send_all(&rows, held, window).await;
        let now = self.clock.now();
        let mut tx = self.db.begin_claim().await?;
        // Platform sends that succeeded are marked in one statement; the rest one by one.
        let mut sent = Vec::new();
        for (row, outcome) in rows.iter().zip(outcomes) {
            if matches!(outcome, Outcome::Sent) {
                sent.push(row.id);
                continue;
            }
            match self.record(&mut tx, row, outcome, now).await? {
                Recorded::Sent => report.sent += 1,
                Recorded::Retry => report.retried += 1,
                Recorded::Dead => report.dead += 1,
            }
        }
        store::outbox::mark_sent_many(&mut tx, &sent, &self.instance, now).await?;
        report.sent += sent.len();
        tx.commit().await?;
        let c = &self.counters;
        for (counter, n) in [(&c.sent, report.sent), (&c.retried, report.retried), (&c.dead, report.dead)] {
            counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(report)
    }

    /// Runs batches until nothing is due (for tests and the CLI).
    pub async fn drain(&self) -> Result<DispatchReport, sqlx::Error> {
        let mut total = DispatchReport::default();
        loop {
            let r = self.run_once().await?;
            total.claimed += r.claimed;
            total.sent += r.sent;
            total.retried += r.retried;
            total.dead += r.dead;
            if r.claimed == 0 {
                return Ok(total);
            }
        }
    }

    /// Dispatches until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tracing::info!(instance = %self.instance, "outbox dispatcher started");
        tokio::pin!(stop);
        loop {
            let busy = match self.run_once().await {
                Ok(r) => {
                    if r.claimed > 0 {
                        tracing::debug!(?r, "outbox batch");
                    }
                    r.claimed as i64 >= self.cfg.batch
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox dispatch failed; retrying shortly");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = &mut stop => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.cfg.poll) => {}
            }
        }
        tracing::info!("outbox dispatcher stopped");
    }

    /// For each row, when its recipient has had its fill of messages: the moment a slot frees up.
    /// Counted from what the outbox has sent (by any instance) plus this batch, so a burst of
    /// reminders to one rep is spread out instead of silently dropped by the platform.
    async fn over_limit(&self, rows: &[OutboxRow], now: DateTime<Utc>) -> Result<Vec<Option<Duration>>, sqlx::Error> {
        let limited: Vec<&str> =
            rows.iter().filter(|r| !limits(&r.platform).is_empty()).map(|r| r.recipient.as_str()).collect();
        if limited.is_empty() {
            return Ok(vec![None; rows.len()]);
        }
        let longest = rows.iter().flat_map(|r| limits(&r.platform)).map(|(w, _)| *w).max().unwrap_or(60);
        let since = now - chrono::Duration::seconds(longest);
        let mut sent: HashMap<(String, String, String), Vec<DateTime<Utc>>> = HashMap::new();
        {
            let mut tx = self.db.begin_read().await?;
            for (platform, app, recipient, at) in store::outbox::sent_to_since(&mut tx, &limited, since).await? {
                sent.entry((platform, app, recipient)).or_default().push(at);
            }
            tx.commit().await?;
        }
        let mut held = Vec::with_capacity(rows.len());
        for row in rows {
            let key = (row.platform.clone(), row.app.clone(), row.recipient.clone());
            let times = sent.entry(key).or_default();
            let mut wait: Option<chrono::Duration> = None;
            for (window, max) in limits(&row.platform) {
                let start = now - chrono::Duration::seconds(*window);
                let mut in_window: Vec<DateTime<Utc>> = times.iter().copied().filter(|t| *t > start).collect();
                if in_window.len() >= *max {
                    in_window.sort();
                    // Free once the oldest message that keeps it full leaves the window.
                    let oldest = in_window[in_window.len() - max];
                    let free = oldest + chrono::Duration::seconds(*window) - now;
                    wait = Some(wait.map_or(free, |w| w.max(free)));
                }
            }
            match wait {
                Some(w) => held.push(Some(w.to_std().unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1)))),
                None => {
                    times.push(now);
                    held.push(None);
                }
            }
        }
        Ok(held)
    }

    async fn send_all(&self, rows: &[OutboxRow], held: Vec<Option<Duration>>, window: LeaseWindow) -> Vec<Outcome> {
        let limit = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let mut handles = Vec::with_capacity(rows.len());
        for (row, held) in rows.iter().zip(held) {
            if let Some(after) = held {
                // A robot's recipient is its webhook key, a credential: it stays out of the error,
                // which is logged and stored.
                let who = match row.platform.as_str() {
                    WECOM_ROBOT => crate::platform::wecom::client::robot_label(&row.recipient),
                    _ => row.recipient.clone(),
                };
                let error = format!("rate limit of {} `{who}` reached; held back", row.platform);
                handles.push(Err(Outcome::Retry { error, after: Some(after), attempted: false }));
                continue;
            }
            // A webhook body is the event JSON, not an OutMessage.
            if row.platform == webhooks::PLATFORM {
                let sender = self.senders.webhook.clone().or_else(|| webhooks::Sender::new(WEBHOOK_TIMEOUT).ok());
                let Some(sender) = sender else {
                    // Counted, so a client that cannot be built ends in a visible dead letter.
                    let error = "cannot build the webhook HTTP client".to_string();
                    handles.push(Err(Outcome::Retry { error, after: None, attempted: true }));
                    continue;
                };
                let (db, row, now, limit) = (self.db.clone(), row.clone(), self.clock.now(), limit.clone());
                handles.push(Ok(spawn_send(limit, window, async move {
                    webhooks::deliver(&db, &sender, &row, now).await.map(|_| ()).map_err(Failed::Other)
                })));
                continue;
            }
            let message: OutMessage = match serde_json::from_str(&row.body) {
                Ok(m) => m,
                Err(e) => {
                    handles.push(Err(Outcome::Fatal(format!("unreadable message body: {e}"))));
                    continue;
                }
            };
            match row.platform.as_str() {
                console::PLATFORM => handles.push(Err(Outcome::Local(message))),
                wecom::PLATFORM => {
                    let Some(client) = self.senders.wecom.get(&row.app).cloned() else {
                        handles.push(Err(Outcome::Fatal(format!("no WeCom app `{}` is configured", row.app))));
                        continue;
                    };
                    let (to, limit) = (row.recipient.clone(), limit.clone());
                    handles.push(Ok(spawn_send(limit, window, async move {
                        let ok = client.send(&to, &wecom_message(&message)).await.map_err(Failed::Wecom)?;
                        // One recipient: listed as invalid or unlicensed, it did not get the message,
                        // although WeCom answered errcode 0.
                        if ok.is_partial() {
                            let why = if ok.unlicensed_users.is_empty() {
                                "is not a member WeCom knows"
                            } else {
                                "has no licence (接口许可) for this app"
                            };
                            return Err(Failed::Other(PushFailure::Fatal(format!(
                                "WeCom accepted the message but did not deliver it: `{to}` {why}"
                            ))));
                        }
                        Ok(())
                    })));
                }
                WECOM_ROBOT => {
                    let Some((client, base)) = self.senders.robot.clone() else {
                        handles.push(Err(Outcome::Fatal("no WeCom robot client is configured".into())));
                        continue;
                    };
                    let (key, limit) = (row.recipient.clone(), limit.clone());
                    let msg = robot_message(&message);
                    handles.push(Ok(spawn_send(limit, window, async move {
                        let url = format!("{base}/cgi-bin/webhook/send?key={key}");
                        client.send(&url, &msg).await.map(|_| ()).map_err(Failed::Wecom)
                    })));
                }
                dingtalk::PLATFORM | feishu::PLATFORM => {
                    let pusher = if row.platform == dingtalk::PLATFORM {
                        self.senders.dingtalk.get(&row.app).cloned().map(Pushers::Dingtalk)
                    } else {
                        self.senders.feishu.get(&row.app).cloned().map(Pushers::Feishu)
                    };
                    let Some(pusher) = pusher else {
                        handles
                            .push(Err(Outcome::Fatal(format!("no {} app `{}` is configured", row.platform, row.app))));
                        continue;
                    };
                    let (to, limit, key) = (row.recipient.clone(), limit.clone(), row.dedupe_key.clone());
                    handles.push(Ok(spawn_send(limit, window, async move {
                        let sent = match pusher {
                            Pushers::Dingtalk(p) => p.deliver(&to, &message).await,
                            // The row's key makes Feishu's `uuid`: a resend is dropped, two
                            // different messages with equal text are not.
                            Pushers::Feishu(p) => p.deliver_keyed(&to, &message, Some(&key)).await,
                        };
                        sent.map(|_| ()).map_err(Failed::Other)
                    })));
                }
                other => handles.push(Err(Outcome::Fatal(format!("unknown platform `{other}`")))),
            }
        }
        let mut outcomes = Vec::with_capacity(rows.len());
        for h in handles {
            outcomes.push(match h {
                Err(outcome) => outcome,
                Ok(join) => match join.await {
                    Ok(Ok(())) => Outcome::Sent,
                    Ok(Err(Failed::Wecom(e))) => push_outcome(&e),
                    Ok(Err(Failed::Unsent)) => Outcome::Retry {
                        error: "not started before half its claim had passed; the next claim sends it".into(),
                        after: Some(Duration::ZERO),
                        attempted: false,
                    },
                    Ok(Err(Failed::CutOff)) => Outcome::Retry {
                        error: "cut off as its claim ran out (it may have been delivered)".into(),
                        after: None,
                        attempted: true,
                    },
                    Ok(Err(Failed::Other(PushFailure::Retry { error, after }))) => {
                        Outcome::Retry { error, after, attempted: true }
                    }
                    Ok(Err(Failed::Other(PushFailure::Fatal(e)))) => Outcome::Fatal(e),
                    Err(e) => Outcome::Retry { error: format!("send task failed: {e}"), after: None, attempted: true },
                },
            });
        }
        outcomes
    }

    async fn record(
        &self,
        tx: &mut Tx,
        row: &OutboxRow,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Recorded, sqlx::Error> {
        let id = row.id;
        let outcome = match outcome {
            Outcome::Local(message) => match (row.org_id, row.recipient.parse::<i64>()) {
                (Some(org_id), Ok(user_id)) => {
                    // Only when this instance still holds the lease: the push and the mark commit together.
                    if store::outbox::mark_sent(tx, id, &self.instance, now).await? {
                        let image = message.image_png.as_deref();
                        store::inbox::insert_push_with_image(tx, org_id, user_id, &message.text, image, now).await?;
                    }
                    return Ok(Recorded::Sent);
                }
                _ => Outcome::Fatal(format!("console message without org or user (recipient `{}`)", row.recipient)),
            },
            other => other,
        };
        match outcome {
            Outcome::Sent | Outcome::Local(_) => {
                store::outbox::mark_sent(tx, id, &self.instance, now).await?;
                Ok(Recorded::Sent)
            }
            Outcome::Retry { error, after, attempted } => {
                let attempts = row.attempts + i64::from(attempted);
                if attempts >= self.cfg.max_attempts {
                    tracing::error!(
                        outbox = id,
                        attempts,
                        error,
                        "outbox message dead-lettered after its last attempt"
                    );
                    store::outbox::mark_dead(tx, id, &self.instance, &error).await?;
                    return Ok(Recorded::Dead);
                }
                let delay = after.unwrap_or_else(|| self.backoff(attempts));
                let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
                tracing::warn!(outbox = id, attempts, error, retry_at = %next, "outbox message not delivered; will retry");
                store::outbox::mark_retry(tx, id, &self.instance, next, &error, attempted).await?;
                Ok(Recorded::Retry)
            }
            Outcome::Fatal(error) => {
                tracing::error!(outbox = id, error, "outbox message cannot be delivered; dead-lettered");
                store::outbox::mark_dead(tx, id, &self.instance, &error).await?;
                Ok(Recorded::Dead)
            }
        }
    }

    /// `base · 2^(attempts-1)`, capped, times a random factor in [0.5, 1] so that many messages that
    /// failed together do not all come back at the same instant.
    fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        let raw = self.cfg.backoff_base.saturating_mul(2u32.saturating_pow(exp)).min(self.cfg.backoff_max);
        let factor: f64 = rand::rng().random_range(0.5..=1.0);
        raw.mul_f64(factor)
    }
}

enum Recorded {
    Sent,
    Retry,
    Dead,
}

fn push_outcome(e: &PushError) -> Outcome {
    match e.class() {
        ErrorClass::Retry => Outcome::Retry {
            error: e.to_string(),
            after: e.retry_after(),
            // A local rate limit made no request; it does not use up an attempt.
            attempted: !matches!(e, PushError::RateLimited { .. }),
        },
        ErrorClass::Fatal => Outcome::Fatal(e.to_string()),
    }
}

fn robot_message(m: &OutMessage) -> RobotMessage {
    match &m.image_png {
        Some(png) => RobotMessage::Image { png: png.clone() },
        // Written in the robot's markdown dialect (a digest to a group): sent as markdown, or
        // its `<font>` and `###` would show as they are.
        None if m.markdown => RobotMessage::Markdown(m.text.clone()),
        None => RobotMessage::text(m.text.clone()),
    }
}

pub(crate) fn wecom_message(m: &OutMessage) -> Message {
    if let Some(png) = &m.image_png {
        return Message::Image { png: png.clone() };
    }
    match &m.card {
        Some(card) => Message::ButtonCard {
            title: card.title.clone(),
            description: card.description.clone(),
            task_key: card.key.clone(),
            buttons: card.buttons.clone(),
        },
        None if m.markdown => Message::Markdown(m.text.clone()),
        None => Message::Text(m.text.clone()),
    }
}
