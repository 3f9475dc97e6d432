//! Outbound webhooks: an org's subscribers get a signed JSON POST for each event they chose.
//!
//! Events are queued with [`emit`] in the transaction of the change (one outbox row per matching
//! subscription, platform `webhook`, recipient the subscription id), so a change and its
//! deliveries commit together. The [`Dispatcher`](crate::outbox::Dispatcher) delivers them with
//! the outbox's leases, retries and dead letters, through [`deliver`]. Each attempt is logged in
//! `webhook_deliveries`.
//!
//! Signature: `X-Chatcrm-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
//! with the timestamp (unix seconds) in `X-Chatcrm-Timestamp`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::PushFailure;
use crate::platform::hmac::{hex, hmac_sha256};
use crate::store::outbox::{NewOutboxRow, OutboxRow};
use crate::store::webhooks::{self as store, NewDelivery, SubscriptionRow};
use crate::store::{Db, Tx};

pub use crate::store::webhooks::PLATFORM;

/// What a subscriber can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    CustomerCreated,
    ActivityLogged,
    DealStageChanged,
    DealWon,
    DealLost,
    LeadAssigned,
    TaskOverdue,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::CustomerCreated,
        EventType::ActivityLogged,
        EventType::DealStageChanged,
        EventType::DealWon,
        EventType::DealLost,
        EventType::LeadAssigned,
        EventType::TaskOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CustomerCreated => "customer.created",
            EventType::ActivityLogged => "activity.logged",
            EventType::DealStageChanged => "deal.stage_changed",
            EventType::DealWon => "deal.won",
            EventType::DealLost => "deal.lost",
            EventType::LeadAssigned => "lead.assigned",
            EventType::TaskOverdue => "task.overdue",
        }
    }
}

/// The `ping` event of `chatcrm webhooks test`.
pub const PING: &str = "ping";

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("`{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("unknown event type `{0}` (known: {known}, or *)", known = known_events())]
    UnknownEvent(String),
    #[error("give at least one event type (or *)")]
    NoEvents,
    #[error("a secret must be 16 to 200 printable characters")]
    BadSecret,
    #[error("no webhook subscription #{0}")]
    NotFound(i64),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

fn known_events() -> String {
    EventType::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
}

/// Checks a comma-separated list of event types; returns it normalised (`*` alone when present).
pub fn parse_events(list: &str) -> Result<String, WebhookError> {
    let mut out: Vec<&str> = Vec::new();
    for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if e == "*" {
            return Ok("*".into());
        }
        let known =
            EventType::ALL.iter().find(|k| k.as_str() == e).ok_or_else(|| WebhookError::UnknownEvent(e.into()))?;
        if !out.contains(&known.as_str()) {
            out.push(known.as_str());
        }
    }
    if out.is_empty() {
        return Err(WebhookError::NoEvents);
    }
    Ok(out.join(","))
}

fn check_url(url: &str) -> Result<(), WebhookError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(WebhookError::BadUrl(url.into())),
    }
}

/// A new random secret, e.g. `whsec_3f9a…` (54 characters).
pub fn generate_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", hex(&bytes))
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let data = format!("{timestamp}.{body}");
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), data.as_bytes())))
}

/// Adds a subscription; returns it and the secret (generated when none was given).
pub async fn add(
    tx: &mut Tx,
    org_id: i64,
    url: &str,
    events: &str,
    secret: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(SubscriptionRow, String), WebhookError> {
    let url = url.trim();
    check_url(url)?;
    let events = parse_events(events)?;
    let secret = match secret {
        Some(s) if (16..=200).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic()) => s.to_string(),
        Some(_) => return Err(WebhookError::BadSecret),
        None => generate_secret(),
    };
    let id = store::insert(tx, org_id, url, &secret, &events, now).await?;
    let row = store::by_id(tx, id).await?.ok_or(WebhookError::NotFound(id))?;
    Ok((row, secret))
}

/// The JSON body of every delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Stable per event (the same on a retry or replay, and for every subscriber): dedupe by it.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The org's id.
    pub org: i64,
    pub occurred_at: DateTime<Utc>,
    /// The record (customer, activity, deal, lead, task), with a few event fields added.
    pub data: serde_json::Value,
}

/// The record as JSON with `extra` fields merged in (e.g. `previous_stage`).
pub fn record<T: Serialize>(record: &T, extra: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut v = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = &mut v {
        for (k, x) in extra {
            map.insert((*k).to_string(), x.clone());
        }
    }
    v
}

/// The org's active subscriptions that want `event`.
pub async fn subscribers(tx: &mut Tx, org_id: i64, event: EventType) -> sqlx::Result<Vec<SubscriptionRow>> {
    let subs = store::active_for_org(tx, org_id).await?;
    Ok(subs.into_iter().filter(|s| s.wants(event.as_str())).collect())
}

/// Queues `event` for every active subscription of the org that wants it, in the caller's
/// transaction. `key` names the occurrence (entity id, plus a version where an entity can have
/// the event more than once); the event id is `<type>:<key>`. Returns how many were queued.
pub async fn emit(
    tx: &mut Tx,
    org_id: i64,
    event: EventType,
    key: &str,
    data: impl FnOnce() -> serde_json::Value,
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    let subs = subscribers(tx, org_id, event).await?;
    if subs.is_empty() {
        // The common case on every change: no record is serialised for nobody.
        return Ok(0);
    }
    emit_to(tx, &subs, org_id, event, key, data(), now).await
}

/// [`emit`] to subscriptions already looked up (for jobs emitting many events at once).
pub async fn emit_to(
    tx: &mut Tx,
    subs: &[SubscriptionRow],
    org_id: i64,
    event: EventType,
    key: &str,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    if subs.is_empty() {
        return Ok(0);
    }
    let id = format!("{}:{key}", event.as_str());
    let body = Event { id: id.clone(), event_type: event.as_str().into(), org: org_id, occurred_at: now, data };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let mut n = 0;
    for sub in subs {
        let recipient = sub.id.to_string();
        let dedupe_key = format!("webhook:{}:{id}", sub.id);
        let row = NewOutboxRow {
            org_id: Some(org_id),
            user_id: None,
            kind: "notice",
            platform: PLATFORM,
            app: "",
            recipient: &recipient,
            body: &body,
            dedupe_key: &dedupe_key,
            not_before: now,
            now,
        };
        n += usize::from(crate::store::outbox::insert(tx, &row).await?);
    }
    Ok(n)
}

/// `task.overdue` for each overdue task, once per task and overdue day (the org's local date).
pub async fn emit_overdue(
    tx: &mut Tx,
    org: &crate::crm::Org,
    tasks: &[crate::store::schedule::OverdueTask],
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    let subs = subscribers(tx, org.id, EventType::TaskOverdue).await?;
    if subs.is_empty() {
        return Ok(0);
    }
    let day = scheduled.with_timezone(&org.tz()).date_naive();
    let mut n = 0;
    for t in tasks {
        let Some(task) = crate::store::tasks::by_id(tx, org.id, t.id).await? else { continue };
        let data = record(&task, &[("overdue_day", serde_json::json!(day))]);
        n += emit_to(tx, &subs, org.id, EventType::TaskOverdue, &format!("{}:{day}", t.id), data, now).await?;
    }
    Ok(n)
}

/// Sends webhook POSTs.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

/// How one POST went.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<u16>,
    /// Transport error (timeout, connection), or why the status is a failure.
    pub error: Option<String>,
    pub duration: Duration,
    /// From a 429's or 503's `Retry-After` (seconds).
    pub retry_after: Option<Duration>,
}

impl Attempt {
    /// 2xx: sent. 5xx, 429, 408 and transport errors: retry. Any other status: fatal.
    pub fn outcome(&self) -> Result<(), PushFailure> {
        match self.status {
            Some(s) if (200..300).contains(&s) => Ok(()),
            Some(s) if s >= 500 || s == 429 || s == 408 => {
                Err(PushFailure::Retry { error: format!("webhook answered HTTP {s}"), after: self.retry_after })
            }
            Some(s) => Err(PushFailure::Fatal(format!("webhook answered HTTP {s}"))),
            None => Err(PushFailure::Retry {
                error: self.error.clone().unwrap_or_else(|| "webhook request failed".into()),
                after: None,
            }),
        }
    }
}

impl Sender {
    /// Redirects are not followed: a subscriber's URL is where its events go, and nowhere else.
    pub fn new(timeout: Duration) -> Result<Self, WebhookError> {
        crate::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chatcrm-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Self { client })
    }

    /// One signed POST of `body` (the event JSON, sent byte for byte as signed).
    pub async fn post(
        &self,
        url: &str,
        secret: &str,
        event_type: &str,
        event_id: &str,
        body: &str,
        timestamp: i64,
    ) -> Attempt {
        let started = Instant::now();
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Chatcrm-Event", event_type)
            .header("X-Chatcrm-Delivery", event_id)
            .header("X-Chatcrm-Timestamp", timestamp.to_string())
            .header("X-Chatcrm-Signature", signature(secret, timestamp, body))
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(3600)));
                // Drain a little of the body so the connection can be reused; its content is not needed.
                let _ = tokio::time::timeout(Duration::from_secs(1), resp.bytes()).await;
                let error = (!(200..300).contains(&status)).then(|| format!("HTTP {status}"));
                Attempt { status: Some(status), error, duration: started.elapsed(), retry_after }
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                // Without the URL: reqwest's message names it, and it may carry a token.
                Attempt {
                    status: None,
                    error: Some(format!("webhook {what}")),
                    duration: started.elapsed(),
                    retry_after: None,
                }
            }
        }
    }
}

/// The fields of a queued body that the headers need.
#[derive(Deserialize)]
struct Head {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
}

/// Delivers one outbox row (the Dispatcher's `webhook` arm) and logs the attempt.
pub async fn deliver(db: &Db, sender: &Sender, row: &OutboxRow, now: DateTime<Utc>) -> Result<(), PushFailure> {
    let Ok(sub_id) = row.recipient.parse::<i64>() else {
        return Err(PushFailure::Fatal(format!("webhook recipient `{}` is not a subscription id", row.recipient)));
    };
    let head: Head =
        serde_json::from_str(&row.body).map_err(|e| PushFailure::Fatal(format!("unreadable webhook event: {e}")))?;
    let sub = async {
        let mut tx = db.begin_read().await?;
        let sub = store::by_id(&mut tx, sub_id).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(sub)
    }
    .await
    .map_err(|e| PushFailure::Retry { error: format!("database error: {e}"), after: None })?;
    let sub = match sub {
        Some(s) if s.active => s,
        Some(_) => return Err(PushFailure::Fatal(format!("webhook subscription #{sub_id} is disabled"))),
        None => return Err(PushFailure::Fatal(format!("webhook subscription #{sub_id} was removed"))),
    };
    let attempt = sender.post(&sub.url, &sub.secret, &head.event_type, &head.id, &row.body, now.timestamp()).await;
    log_attempt(db, sub_id, Some(row.id), &head.id, &head.event_type, &attempt, now).await;
    attempt.outcome()
}

/// Writes the attempt to the delivery log; a failure to log does not fail the delivery.
async fn log_attempt(
    db: &Db,
    sub_id: i64,
    outbox_id: Option<i64>,
    event_id: &str,
    event_type: &str,
    attempt: &Attempt,
    now: DateTime<Utc>,
) {
    let entry = NewDelivery {
        subscription_id: sub_id,
        outbox_id,
        event_id,
        event_type,
        status_code: attempt.status.map(i32::from),
        error: attempt.error.as_deref(),
        duration_ms: i64::try_from(attempt.duration.as_millis()).unwrap_or(i64::MAX),
        at: now,
    };
    let logged = async {
        let mut tx = db.begin().await?;
        store::log_delivery(&mut tx, &entry).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = logged {
        tracing::warn!(subscription = sub_id, event = event_id, error = %e, "webhook delivery not logged");
    }
}

/// Sends a `ping` event to a subscription now (not through the outbox) and logs it; log rows of
/// pings older than `keep` are pruned here, as the outbox prunes the rest.
pub async fn ping(
    db: &Db,
    sender: &Sender,
    sub_id: i64,
    now: DateTime<Utc>,
    keep: chrono::Duration,
) -> Result<(Event, Attempt), WebhookError> {
    let mut tx = db.begin_read().await?;
    let sub = store::by_id(&mut tx, sub_id).await?.ok_or(WebhookError::NotFound(sub_id))?;
    tx.commit().await?;
    let event = Event {
        id: format!("{PING}:{sub_id}:{}", now.timestamp_millis()),
        event_type: PING.into(),
        org: sub.org_id,
        occurred_at: now,
        data: serde_json::json!({ "subscription": sub.id, "events": sub.events }),
    };
    let body = serde_json::to_string(&event).unwrap_or_default();
    let attempt = sender.post(&sub.url, &sub.secret, PING, &event.id, &body, now.timestamp()).await;
    log_attempt(db, sub_id, None, &event.id, PING, &attempt, now).await;
    let mut tx = db.begin().await?;
    store::prune_log(&mut tx, now - keep).await?;
    tx.commit().await?;
    Ok((event, attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_are_checked_and_normalised() {
        assert_eq!(parse_events("deal.won, deal.lost,deal.won").ok().as_deref(), Some("deal.won,deal.lost"));
        assert_eq!(parse_events("deal.won,*").ok().as_deref(), Some("*"));
        assert!(matches!(parse_events("deal.closed"), Err(WebhookError::UnknownEvent(e)) if e == "deal.closed"));
        assert!(matches!(parse_events(" , "), Err(WebhookError::NoEvents)));
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let sig = signature("whsec_test", 1_764_000_000, r#"{"id":"x"}"#);
        let expect = hex(&hmac_sha256(b"whsec_test", br#"1764000000.{"id":"x"}"#));
        assert_eq!(sig, format!("sha256={expect}"));
        // The worked example of docs/issue9/webhooks.md (checked there with Python's hmac).
        let body = r#"{"id":"customer.created:12","type":"customer.created","org":1,"occurred_at":"2026-11-24T02:00:00Z","data":{}}"#;
        assert_eq!(
            signature("whsec_test", 1_764_000_000, body),
            "sha256=3867cea8286d6aee74a9e3dc09d8a6ba2dba41d1713c44c732d9a6e55c9aab89"
        );
    }

    #[test]
    fn statuses_are_classified() {
        let at = |s: Option<u16>| Attempt { status: s, error: None, duration: Duration::ZERO, retry_after: None };
        assert!(at(Some(204)).outcome().is_ok());
        assert!(matches!(at(Some(500)).outcome(), Err(PushFailure::Retry { .. })));
        assert!(matches!(at(Some(429)).outcome(), Err(PushFailure::Retry { .. })));
        assert!(matches!(at(None).outcome(), Err(PushFailure::Retry { .. })));
        assert!(matches!(at(Some(410)).outcome(), Err(PushFailure::Fatal(_))));
        assert!(matches!(at(Some(302)).outcome(), Err(PushFailure::Fatal(_))));
    }

    #[test]
    fn secrets_are_random_and_long_enough() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 54);
    }
}
