//! Deletes used only by undo: a record created by mistake is removed, not flagged, so the CRM
//! reads as if the mistake never happened (the audit log keeps the history).

use chrono::{DateTime, Utc};

use super::Tx;
use crate::run;

pub async fn delete(tx: &mut Tx, entity: &str, id: i64) -> sqlx::Result<u64> {
    // Fixed statements per entity: no table name ever comes from input.
    let sql: &'static [&'static str] = match entity {
        "customer" => &["DELETE FROM customer_tags WHERE customer_id = $1", "DELETE FROM customers WHERE id = $1"],
        "contact" => &["DELETE FROM contacts WHERE id = $1"],
        "activity" => &["DELETE FROM activities WHERE id = $1"],
        "task" => &["DELETE FROM tasks WHERE id = $1"],
        "deal" => &["DELETE FROM deal_stage_history WHERE deal_id = $1", "DELETE FROM deals WHERE id = $1"],
        "lead" => &["DELETE FROM leads WHERE id = $1"],
        _ => &[],
    };
    let mut n = 0;
    for q in sql {
        n = run!(tx, |c| sqlx::query(*q).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(n)
}

/// The customer of an activity (read before deleting it).
pub async fn activity_customer(tx: &mut Tx, id: i64) -> sqlx::Result<Option<i64>> {
    run!(tx, |c| sqlx::query_scalar("SELECT customer_id FROM activities WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await)
}

/// The customer of a contact.
pub async fn contact_customer(tx: &mut Tx, id: i64) -> sqlx::Result<Option<i64>> {
    run!(tx, |c| sqlx::query_scalar("SELECT customer_id FROM contacts WHERE id = $1").bind(id).fetch_optional(c).await)
}

/// Recomputes a customer's last contact from its remaining activities.
pub async fn recompute_last_contacted(tx: &mut Tx, customer_id: i64) -> sqlx::Result<()> {
    let latest: Option<DateTime<Utc>> = run!(tx, |c| sqlx::query_scalar(
        "SELECT occurred_at FROM activities WHERE customer_id = $1 ORDER BY occurred_at DESC LIMIT 1"
    )
    .bind(customer_id)
    .fetch_optional(c)
    .await)?;
    run!(tx, |c| sqlx::query("UPDATE customers SET last_contacted_at = $2 WHERE id = $1")
        .bind(customer_id)
        .bind(latest)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Removes a deal's most recent stage move.
pub async fn delete_last_move(tx: &mut Tx, deal_id: i64) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "DELETE FROM deal_stage_history WHERE id = (SELECT MAX(id) FROM deal_stage_history WHERE deal_id = $1)"
    )
    .bind(deal_id)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn clear_tags(tx: &mut Tx, customer_id: i64) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("DELETE FROM customer_tags WHERE customer_id = $1")
        .bind(customer_id)
        .execute(c)
        .await
        .map(|_| ()))
}
