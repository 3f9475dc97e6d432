//! Webhook subscriptions and the delivery log.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Tx;
use crate::run;

/// Outbox `platform` of webhook deliveries; the recipient is the subscription id.
pub const PLATFORM: &str = "webhook";

#[derive(Clone, Serialize, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: i64,
    pub org_id: i64,
    pub url: String,
    /// Signs deliveries; never logged or printed after `webhooks add`.
    #[serde(skip)]
    pub secret: String,
    /// Comma-separated event types, or `*`.
    pub events: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for SubscriptionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("events", &self.events)
            .field("active", &self.active)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl SubscriptionRow {
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.split(',').map(str::trim).any(|e| e == "*" || e == event_type)
    }
}

pub async fn insert(
    tx: &mut Tx,
    org_id: i64,
    url: &str,
    secret: &str,
    events: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO webhook_subscriptions (org_id, url, secret, events, active, created_at)
         VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id"
    )
    .bind(org_id)
    .bind(url)
    .bind(secret)
    .bind(events)
    .bind(now)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, id: i64) -> sqlx::Result<Option<SubscriptionRow>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM webhook_subscriptions WHERE id = $1").bind(id).fetch_optional(c).await)
}

/// Of one org or all, oldest first.
pub async fn list(tx: &mut Tx, org_id: Option<i64>) -> sqlx::Result<Vec<SubscriptionRow>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM webhook_subscriptions WHERE ($1 IS NULL OR org_id = $1) ORDER BY id")
        .bind(org_id)
        .fetch_all(c)
        .await)
}

/// The org's active subscriptions (filtered by event type in Rust: the list is short).
pub async fn active_for_org(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<SubscriptionRow>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM webhook_subscriptions WHERE org_id = $1 AND active = TRUE ORDER BY id")
        .bind(org_id)
        .fetch_all(c)
        .await)
}

/// Deletes a subscription (and its log); its queued deliveries are dropped. False when unknown.
pub async fn delete(tx: &mut Tx, id: i64) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'dropped', locked_until = NULL
         WHERE platform = 'webhook' AND recipient = $1 AND status IN ('pending', 'dead')"
    )
    .bind(id.to_string())
    .execute(c)
    .await
    .map(|_| ()))?;
    run!(tx, |c| sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1))
}

pub struct NewDelivery<'a> {
    pub subscription_id: i64,
    pub outbox_id: Option<i64>,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub status_code: Option<i32>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
    pub at: DateTime<Utc>,
}

pub async fn log_delivery(tx: &mut Tx, d: &NewDelivery<'_>) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO webhook_deliveries (subscription_id, outbox_id, event_id, event_type, status_code, error,
                                         duration_ms, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(d.subscription_id)
    .bind(d.outbox_id)
    .bind(d.event_id)
    .bind(d.event_type)
    .bind(d.status_code)
    .bind(d.error)
    .bind(d.duration_ms)
    .bind(d.at)
    .execute(c)
    .await
    .map(|_| ()))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub subscription_id: i64,
    pub outbox_id: Option<i64>,
    pub event_id: String,
    pub event_type: String,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at: DateTime<Utc>,
}

/// Attempts, newest first.
pub async fn log(tx: &mut Tx, subscription_id: Option<i64>, limit: i64) -> sqlx::Result<Vec<DeliveryRow>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT * FROM webhook_deliveries WHERE ($1 IS NULL OR subscription_id = $1) ORDER BY id DESC LIMIT $2"
    )
    .bind(subscription_id)
    .bind(limit)
    .fetch_all(c)
    .await)
}

/// Deletes log rows without an outbox row (test pings) older than `before`; rows of queued
/// deliveries go with their outbox row (`ON DELETE CASCADE`).
pub async fn prune_log(tx: &mut Tx, before: DateTime<Utc>) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query("DELETE FROM webhook_deliveries WHERE outbox_id IS NULL AND at < $1")
        .bind(before)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
}

/// Puts sent or dead deliveries of one event back in the queue (of one subscription, or all
/// that got it). How many.
pub async fn requeue_event(
    tx: &mut Tx,
    event_id: &str,
    subscription_id: Option<i64>,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, locked_until = NULL, sent_at = NULL
         WHERE platform = 'webhook' AND status IN ('sent', 'dead')
           AND dedupe_key = 'webhook:' || recipient || ':' || $2
           AND ($3 IS NULL OR recipient = $3)"
    )
    .bind(now)
    .bind(event_id)
    .bind(subscription_id.map(|s| s.to_string()))
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}

/// Every dead delivery (of one subscription, or all) back in the queue. How many.
pub async fn requeue_dead(tx: &mut Tx, subscription_id: Option<i64>, now: DateTime<Utc>) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, locked_until = NULL
         WHERE platform = 'webhook' AND status = 'dead' AND ($2 IS NULL OR recipient = $2)"
    )
    .bind(now)
    .bind(subscription_id.map(|s| s.to_string()))
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}
