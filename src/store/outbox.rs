//! The outbox: outgoing messages, claimed by dispatchers with a lease.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Tx;
use crate::run;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub org_id: Option<i64>,
    pub user_id: Option<i64>,
    pub kind: String,
    pub platform: String,
    pub app: String,
    pub recipient: String,
    /// The message as JSON ([`crate::outbox::OutMessage`]).
    pub body: String,
    pub dedupe_key: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

pub struct NewOutboxRow<'a> {
    pub org_id: Option<i64>,
    pub user_id: Option<i64>,
    pub kind: &'a str,
    pub platform: &'a str,
    pub app: &'a str,
    pub recipient: &'a str,
    pub body: &'a str,
    pub dedupe_key: &'a str,
    pub not_before: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// Queues a message; false when a message with this dedupe key was queued before (nothing changes).
pub async fn insert(tx: &mut Tx, r: &NewOutboxRow<'_>) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO outbox (org_id, user_id, kind, platform, app, recipient, body, dedupe_key, status, attempts,
                             next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10)
         ON CONFLICT (dedupe_key) DO NOTHING"
    )
    .bind(r.org_id)
    .bind(r.user_id)
    .bind(r.kind)
    .bind(r.platform)
    .bind(r.app)
    .bind(r.recipient)
    .bind(r.body)
    .bind(r.dedupe_key)
    .bind(r.not_before)
    .bind(r.now)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Leases up to `limit` due messages to `instance` until `until`. Other instances skip rows locked
/// by a concurrent claim (PostgreSQL) and rows whose lease has not expired.
pub async fn claim(
    tx: &mut Tx,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    instance: &str,
    limit: i64,
) -> sqlx::Result<Vec<OutboxRow>> {
    match tx {
        Tx::Sqlite(t) => {
            sqlx::query_as(
                "UPDATE outbox SET locked_until = $2, locked_by = $3
                 WHERE id IN (SELECT id FROM outbox
                              WHERE status = 'pending' AND next_attempt_at <= $1
                                AND (locked_until IS NULL OR locked_until < $1)
                              ORDER BY next_attempt_at, id LIMIT $4)
                 RETURNING *",
            )
            .bind(now)
            .bind(until)
            .bind(instance)
            .bind(limit)
            .fetch_all(&mut **t)
            .await
        }
        Tx::Postgres(t) => {
            sqlx::query_as(
                "UPDATE outbox SET locked_until = $2, locked_by = $3
                 WHERE id IN (SELECT id FROM outbox
                              WHERE status = 'pending' AND next_attempt_at <= $1
                                AND (locked_until IS NULL OR locked_until < $1)
                              ORDER BY next_attempt_at, id LIMIT $4
                              FOR UPDATE SKIP LOCKED)
                 RETURNING *",
            )
            .bind(now)
            .bind(until)
            .bind(instance)
            .bind(limit)
            .fetch_all(&mut **t)
            .await
        }
    }
}

/// Delivered. Only the instance holding the lease records it.
pub async fn mark_sent(tx: &mut Tx, id: i64, instance: &str, now: DateTime<Utc>) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'sent', sent_at = $3, attempts = attempts + 1, locked_until = NULL,
                last_error = NULL
         WHERE id = $1 AND locked_by = $2 AND status = 'pending'"
    )
    .bind(id)
    .bind(instance)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Not delivered this time: try again at `next` (`attempted` false when no request was made, e.g.
/// a local rate limit, so the attempt does not count).
pub async fn mark_retry(
    tx: &mut Tx,
    id: i64,
    instance: &str,
    next: DateTime<Utc>,
    error: &str,
    attempted: bool,
) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET attempts = attempts + $5, next_attempt_at = $3, last_error = $4, locked_until = NULL
         WHERE id = $1 AND locked_by = $2 AND status = 'pending'"
    )
    .bind(id)
    .bind(instance)
    .bind(next)
    .bind(error)
    .bind(i64::from(attempted))
    .execute(c)
    .await
    .map(|_| ()))
}

/// Given up on: kept, with the error, for `outbox retry`.
pub async fn mark_dead(tx: &mut Tx, id: i64, instance: &str, error: &str) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $3, locked_until = NULL
         WHERE id = $1 AND locked_by = $2 AND status = 'pending'"
    )
    .bind(id)
    .bind(instance)
    .bind(error)
    .execute(c)
    .await
    .map(|_| ()))
}

/// Newest first; `status` empty for all.
pub async fn list(tx: &mut Tx, status: &str, limit: i64) -> sqlx::Result<Vec<OutboxRow>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM outbox WHERE ($1 = '' OR status = $1) ORDER BY id DESC LIMIT $2")
        .bind(status)
        .bind(limit)
        .fetch_all(c)
        .await)
}

pub async fn by_id(tx: &mut Tx, id: i64) -> sqlx::Result<Option<OutboxRow>> {
    run!(tx, |c| sqlx::query_as("SELECT * FROM outbox WHERE id = $1").bind(id).fetch_optional(c).await)
}

/// A dead or dropped message goes back to the queue with a fresh attempt count.
pub async fn requeue(tx: &mut Tx, id: i64, now: DateTime<Utc>) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, locked_until = NULL
         WHERE id = $1 AND status IN ('dead', 'dropped')"
    )
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Every dead message back to the queue; how many.
pub async fn requeue_dead(tx: &mut Tx, now: DateTime<Utc>) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, locked_until = NULL
         WHERE status = 'dead'"
    )
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}

/// A pending or dead message is not to be sent.
pub async fn drop_message(tx: &mut Tx, id: i64) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'dropped', locked_until = NULL WHERE id = $1 AND status IN ('pending', 'dead')"
    )
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// The statuses a message can have, in queue order (the table's CHECK constraint).
pub const STATUSES: [&str; 4] = ["pending", "sent", "dead", "dropped"];

/// Messages per status.
pub async fn counts(tx: &mut Tx) -> sqlx::Result<Vec<(String, i64)>> {
    run!(tx, |c| sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")
        .fetch_all(c)
        .await)
}

/// When the next pending message is due, if any (the dispatcher sleeps until then).
pub async fn next_due(tx: &mut Tx) -> sqlx::Result<Option<DateTime<Utc>>> {
    run!(tx, |c| sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
        .fetch_one(c)
        .await)
}

/// Sends since `since` to any of `recipients`: (platform, app, recipient, sent at).
pub async fn sent_to_since(
    tx: &mut Tx,
    recipients: &[&str],
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, String, String, DateTime<Utc>)>> {
    let mut list: Vec<&str> = recipients.to_vec();
    list.sort_unstable();
    list.dedup();
    match tx {
        Tx::Sqlite(t) => {
            let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
            sqlx::query_as(
                "SELECT platform, app, recipient, sent_at FROM outbox
                 WHERE status = 'sent' AND sent_at > $1 AND recipient IN (SELECT value FROM json_each($2))",
            )
            .bind(since)
            .bind(json)
            .fetch_all(&mut **t)
            .await
        }
        Tx::Postgres(t) => {
            sqlx::query_as(
                "SELECT platform, app, recipient, sent_at FROM outbox
                 WHERE status = 'sent' AND sent_at > $1 AND recipient = ANY($2)",
            )
            .bind(since)
            .bind(list)
            .fetch_all(&mut **t)
            .await
        }
    }
}

/// Deletes up to `limit` sent or dropped messages created before `before`; how many.
pub async fn prune(tx: &mut Tx, before: DateTime<Utc>, limit: i64) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN ('sent', 'dropped') AND created_at < $1
                                         ORDER BY id LIMIT $2)"
    )
    .bind(before)
    .bind(limit)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}

/// Queues several messages in one statement; keys queued before are skipped. How many were new.
pub async fn insert_many(tx: &mut Tx, rows: &[NewOutboxRow<'_>]) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    const HEAD: &str = "INSERT INTO outbox (org_id, user_id, kind, platform, app, recipient, body, dedupe_key, status,
                         attempts, next_attempt_at, created_at) ";
    const TAIL: &str = " ON CONFLICT (dedupe_key) DO NOTHING";
    macro_rules! values {
        ($qb:ident) => {
            $qb.push_values(rows, |mut b, r| {
                b.push_bind(r.org_id)
                    .push_bind(r.user_id)
                    .push_bind(r.kind)
                    .push_bind(r.platform)
                    .push_bind(r.app)
                    .push_bind(r.recipient)
                    .push_bind(r.body)
                    .push_bind(r.dedupe_key)
                    .push_bind("pending")
                    .push_bind(0_i64)
                    .push_bind(r.not_before)
                    .push_bind(r.now);
            });
            $qb.push(TAIL);
        };
    }
    match tx {
        Tx::Sqlite(t) => {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(HEAD);
            values!(qb);
            qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
        }
        Tx::Postgres(t) => {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(HEAD);
            values!(qb);
            qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
        }
    }
}

/// Several messages delivered; only those this instance still holds are marked.
pub async fn mark_sent_many(tx: &mut Tx, ids: &[i64], instance: &str, now: DateTime<Utc>) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    const SET: &str = "UPDATE outbox SET status = 'sent', attempts = attempts + 1, locked_until = NULL, last_error = NULL, sent_at = ";
    match tx {
        Tx::Sqlite(t) => {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(SET);
            qb.push_bind(now);
            qb.push(" WHERE status = 'pending' AND locked_by = ");
            qb.push_bind(instance);
            qb.push(" AND id IN (");
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            list.push_unseparated(")");
            qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
        }
        Tx::Postgres(t) => sqlx::query(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, locked_until = NULL, last_error = NULL,
                        sent_at = $1
                 WHERE status = 'pending' AND locked_by = $2 AND id = ANY($3)",
        )
        .bind(now)
        .bind(instance)
        .bind(ids)
        .execute(&mut **t)
        .await
        .map(|r| r.rows_affected()),
    }
}
