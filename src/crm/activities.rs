//! Logging activities (visits, calls, ...) and the follow-up they promise.

use chrono::{DateTime, Duration, Utc};

use super::{Activity, ActivityKind, Ctx, Result, Task, TaskOrigin, audit, clean_opt, clean_text, invalid, not_found};
use crate::store::activities::NewActivityRow;
use crate::store::{self, Tx};
use crate::webhooks::{self, EventType};

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub customer_id: i64,
    pub kind: ActivityKind,
    pub content: String,
    /// When it happened; defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub next_step: Option<String>,
    pub location: Option<String>,
    /// A follow-up task for the rep: when, and its title.
    pub follow_up: Option<(DateTime<Utc>, String)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Logged {
    pub activity: Activity,
    pub follow_up: Option<Task>,
}

pub async fn log_activity(tx: &mut Tx, ctx: &Ctx, new: NewActivity) -> Result<Logged> {
    let Some(user_id) = ctx.actor.user_id else {
        return Err(invalid("活动必须记在某个用户名下", "an activity must be logged by a user"));
    };
    let customer = super::customers::get_customer(tx, ctx, new.customer_id).await?;
    let content = clean_text("内容", "content", &new.content, 2000)?;
    let next_step = clean_opt("下一步", "next step", new.next_step.as_deref(), 500)?;
    let location = clean_opt("位置", "location", new.location.as_deref(), 200)?;
    let occurred_at = new.occurred_at.unwrap_or(ctx.now);
    // A little slack for clock skew between phone and server; beyond that it is a mistake.
    if occurred_at > ctx.now + Duration::hours(1) {
        return Err(invalid(
            "活动时间在将来：记录已经发生的事，将来的事请用提醒",
            "that time is in the future: log what happened, and use a reminder for what will",
        ));
    }
    let id = store::activities::insert(
        tx,
        &NewActivityRow {
            org_id: ctx.org_id(),
            customer_id: customer.id,
            user_id,
            kind: new.kind,
            occurred_at,
            content: &content,
            next_step: next_step.as_deref(),
            location: location.as_deref(),
            source_message_id: ctx.source_message_id,
            now: ctx.now,
        },
    )
    .await?;
    store::customers::touch_contacted(tx, customer.id, occurred_at).await?;
    // Contact made: the follow-up rule's open task for this customer is done.
    store::schedule::complete_rule_tasks(tx, ctx.org_id(), customer.id, ctx.now).await?;
    // ... and stops the SLA clock of this rep's lead for the same company.
    store::leads::mark_contacted(tx, ctx.org_id(), user_id, &customer.name_norm, ctx.now).await?;
    let activity = store::activities::by_id(tx, ctx.org_id(), id)
        .await?
        .ok_or_else(|| not_found(format!("活动 #{id} 不存在"), format!("activity #{id} does not exist")))?;
    audit(tx, ctx, "create", "activity", id, None::<&()>, Some(&activity)).await?;
    webhooks::emit(
        tx,
        ctx.org_id(),
        EventType::ActivityLogged,
        &id.to_string(),
        || webhooks::record(&activity, &[]),
        ctx.now,
    )
    .await?;
    let follow_up = match new.follow_up {
        Some((due_at, title)) => Some(
            super::tasks::create_task(
                tx,
                ctx,
                super::tasks::NewTask {
                    title,
                    due_at,
                    owner_id: Some(user_id),
                    customer_id: Some(customer.id),
                    deal_id: None,
                    origin: TaskOrigin::Activity,
                },
            )
            .await?,
        ),
        None => None,
    };
    Ok(Logged { activity, follow_up })
}

/// Attaches a location to the actor's latest visit (or meeting) logged within `window`.
/// `None` when there is no such visit.
pub async fn attach_location(tx: &mut Tx, ctx: &Ctx, label: &str, window: Duration) -> Result<Option<Activity>> {
    let Some(user_id) = ctx.actor.user_id else {
        return Err(invalid("位置必须来自某个用户", "a location must come from a user"));
    };
    let label = clean_text("位置", "location", label, 200)?;
    let Some(before) = store::activities::latest_visit(tx, ctx.org_id(), user_id, ctx.now - window).await? else {
        return Ok(None);
    };
    store::activities::set_location(tx, before.id, &label).await?;
    let after = store::activities::by_id(tx, ctx.org_id(), before.id).await?.ok_or_else(|| {
        not_found(format!("活动 #{} 不存在", before.id), format!("activity #{} does not exist", before.id))
    })?;
    audit(tx, ctx, "update", "activity", after.id, Some(&before), Some(&after)).await?;
    Ok(Some(after))
}
