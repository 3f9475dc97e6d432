//! Undo: reverts the actor's last change (all the changes of their last message) within a
//! window, from the before-images in the audit log.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::{AuditEntry, CrmError, Ctx, Customer, Deal, Lead, Result, Task, audit, invalid, text};
use crate::store::customers::CustomerUpdate;
use crate::store::{self, Tx};

/// Default window: changes older than this are not undone from chat.
pub const DEFAULT_WINDOW_MINUTES: i64 = 10;

/// What was reverted: (action, entity, id) per change, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Undone {
    pub changes: Vec<(String, String, i64)>,
}

/// The audited customer shape (see `customers::Snapshot`).
#[derive(Deserialize)]
struct CustomerSnapshot {
    #[serde(flatten)]
    customer: Customer,
    #[serde(default)]
    tags: Vec<String>,
}

fn before<T: for<'de> Deserialize<'de>>(row: &AuditEntry) -> Result<T> {
    row.before
        .as_ref()
        .and_then(|j| serde_json::from_value(j.0.clone()).ok())
        .ok_or_else(|| invalid("这一步没有可恢复的旧值，无法撤销", "this change has no earlier state to restore"))
}

fn after_json(row: &AuditEntry) -> Option<serde_json::Value> {
    row.after.as_ref().map(|j| j.0.clone())
}

pub async fn undo_last(tx: &mut Tx, ctx: &Ctx, window: Duration) -> Result<Undone> {
    let Some(me) = ctx.actor.user_id else {
        return Err(invalid("只有具体用户可以撤销", "only a user can undo"));
    };
    let since = ctx.now - window;
    let Some(last) = store::audit::last_undoable(tx, ctx.org_id(), me, since).await? else {
        return Err(invalid(
            format!("{} 分钟内没有可以撤销的修改", window.num_minutes()),
            format!("nothing of yours to undo from the last {} minutes", window.num_minutes()),
        ));
    };
    let mut rows = match last.source_message_id {
        Some(m) => store::audit::for_message(tx, me, m).await?,
        None => vec![last],
    };
    rows.reverse();
    let mut changes = Vec::new();
    for row in &rows {
        // Someone changed the record afterwards (a manager reassigned it, a colleague edited it):
        // writing back our before-image would silently undo their change too.
        let later =
            store::audit::later_changes(tx, row.org_id, &row.entity, row.entity_id, row.id, row.source_message_id)
                .await?;
        if later > 0 {
            return Err(CrmError::Conflict(text(
                format!("无法撤销：{} #{} 之后又被修改过", row.entity, row.entity_id),
                format!("cannot undo: {} #{} was changed again afterwards", row.entity, row.entity_id),
            )));
        }
        check_access(tx, ctx, row).await?;
        revert(tx, row).await?;
        store::audit::mark_undone(tx, row.id).await?;
        audit(tx, ctx, "undo", &row.entity, row.entity_id, after_json(row).as_ref(), row.before.as_ref().map(|j| &j.0))
            .await?;
        changes.push((row.action.clone(), row.entity.clone(), row.entity_id));
    }
    Ok(Undone { changes })
}

/// The actor must still be allowed to change the record (or, for activities and contacts, its
/// customer): a customer handed to someone else since is theirs now.
async fn check_access(tx: &mut Tx, ctx: &Ctx, row: &AuditEntry) -> Result<()> {
    let id = row.entity_id;
    match row.entity.as_str() {
        "customer" => super::customers::get_customer(tx, ctx, id).await.map(|_| ()),
        "deal" => super::deals::get_deal(tx, ctx, id).await.map(|_| ()),
        "task" => super::tasks::get_task(tx, ctx, id).await.map(|_| ()),
        "lead" => super::leads::get_lead(tx, ctx, id).await.map(|_| ()),
        "activity" => match store::undo::activity_customer(tx, id).await? {
            Some(customer) => super::customers::get_customer(tx, ctx, customer).await.map(|_| ()),
            None => Ok(()),
        },
        "contact" => match store::undo::contact_customer(tx, id).await? {
            Some(customer) => super::customers::get_customer(tx, ctx, customer).await.map(|_| ()),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

async fn revert(tx: &mut Tx, row: &AuditEntry) -> Result<()> {
    let id = row.entity_id;
    match (row.entity.as_str(), row.action.as_str()) {
        ("activity", "create") => {
            let customer = store::undo::activity_customer(tx, id).await?;
            remove(tx, "activity", id).await?;
            if let Some(c) = customer {
                store::undo::recompute_last_contacted(tx, c).await?;
            }
        }
        (entity @ ("customer" | "contact" | "task" | "deal" | "lead"), "create") => remove(tx, entity, id).await?,
        ("customer", "update") => {
            let b: CustomerSnapshot = before(row)?;
            let c = &b.customer;
            let update = CustomerUpdate {
                industry: c.industry.as_deref(),
                region: c.region.as_deref(),
                source: c.source.as_deref(),
                grade: c.grade,
                owner_id: c.owner_id,
                now: c.updated_at,
            };
            store::customers::update(tx, c.org_id, id, &update).await?;
            store::undo::clear_tags(tx, id).await?;
            for tag in &b.tags {
                store::customers::add_tag(tx, id, tag).await?;
            }
        }
        ("deal", "update" | "won" | "lost") => {
            let d: Deal = before(row)?;
            let moved = row
                .after
                .as_ref()
                .and_then(|a| a.0.get("stage"))
                .and_then(|s| s.as_str())
                .is_some_and(|s| s != d.stage);
            let update = super::deals::as_update(&d, d.updated_at);
            store::deals::update(tx, d.org_id, id, &update).await?;
            if moved {
                store::undo::delete_last_move(tx, id).await?;
            }
        }
        ("lead", "assign" | "claim" | "set_status" | "convert") => {
            let l: Lead = before(row)?;
            store::leads::set_owner_status(
                tx,
                l.org_id,
                id,
                l.owner_id,
                l.status,
                l.customer_id,
                l.updated_at,
                l.assign_reason.as_deref(),
            )
            .await?;
        }
        ("task", "complete" | "snooze") => {
            let t: Task = before(row)?;
            store::tasks::set_status(tx, t.org_id, id, t.status, t.completed_at, t.due_at).await?;
        }
        _ => {
            return Err(invalid(
                format!("「{}」这类修改不能在聊天里撤销", row.action),
                format!("a `{}` of a {} cannot be undone from chat", row.action, row.entity),
            ));
        }
    }
    Ok(())
}

async fn remove(tx: &mut Tx, entity: &str, id: i64) -> Result<()> {
    match store::undo::delete(tx, entity, id).await {
        Ok(_) => Ok(()),
        // Something created later still points at it (e.g. a visit logged on a new customer).
        Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
            Err(CrmError::Conflict(text(
                "无法撤销：之后的记录还在用它，请先撤销之后的修改",
                "cannot undo: later records still refer to it; undo those first",
            )))
        }
        Err(e) => Err(e.into()),
    }
}
