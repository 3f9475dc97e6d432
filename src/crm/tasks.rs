//! Tasks and the rep's day.

use chrono::{DateTime, Days, Duration, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use super::{
    Ctx, Customer, Grade, Result, Task, TaskOrigin, TaskStatus, audit, clean_text, forbidden, invalid, not_found,
};
use crate::store::tasks::NewTaskRow;
use crate::store::{self, Tx};

#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: String,
    pub due_at: DateTime<Utc>,
    /// Defaults to the acting user.
    pub owner_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub origin: TaskOrigin,
}

pub async fn create_task(tx: &mut Tx, ctx: &Ctx, new: NewTask) -> Result<Task> {
    let title = clean_text("任务标题", "task title", &new.title, 200)?;
    let Some(owner_id) = new.owner_id.or(ctx.actor.user_id) else {
        return Err(invalid("任务需要一个负责人", "a task needs an owner"));
    };
    let owner = super::users::user_by_id(tx, ctx.org_id(), owner_id).await?;
    if !ctx.actor.can_access(Some(owner.id), owner.team_id) {
        return Err(forbidden("你不能给团队以外的人派任务", "you cannot give tasks to people outside your team"));
    }
    if let Some(cid) = new.customer_id {
        super::customers::get_customer(tx, ctx, cid).await?;
    }
    if let Some(did) = new.deal_id {
        super::deals::get_deal(tx, ctx, did).await?;
    }
    let id = store::tasks::insert(
        tx,
        &NewTaskRow {
            org_id: ctx.org_id(),
            owner_id,
            title: &title,
            due_at: new.due_at,
            customer_id: new.customer_id,
            deal_id: new.deal_id,
            origin: new.origin,
            now: ctx.now,
        },
    )
    .await?;
    let task = load(tx, ctx, id).await?;
    audit(tx, ctx, "create", "task", id, None::<&()>, Some(&task)).await?;
    Ok(task)
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Task> {
    store::tasks::by_id(tx, ctx.org_id(), id)
        .await?
        .ok_or_else(|| not_found(format!("任务 #{id} 不存在"), format!("task #{id} does not exist")))
}

pub async fn get_task(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Task> {
    let task = load(tx, ctx, id).await?;
    if !ctx.actor.can_access(Some(task.owner_id), task.owner_team_id) {
        return Err(forbidden("这不是你的任务", "this task is not yours"));
    }
    Ok(task)
}

pub async fn complete_task(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Task> {
    let before = get_task(tx, ctx, id).await?;
    if before.status != TaskStatus::Open {
        return Err(invalid(format!("任务 #{id} 已经结束了"), format!("task #{id} is already closed")));
    }
    store::tasks::set_status(tx, ctx.org_id(), id, TaskStatus::Done, Some(ctx.now), before.due_at).await?;
    let after = load(tx, ctx, id).await?;
    audit(tx, ctx, "complete", "task", id, Some(&before), Some(&after)).await?;
    Ok(after)
}

/// What a rep sees in the morning.
#[derive(Debug, Clone, Serialize)]
pub struct Today {
    pub overdue: Vec<Task>,
    pub due_today: Vec<Task>,
    /// A-grade customers past their contact limit.
    pub quiet: Vec<Customer>,
}

/// The actor's own open tasks due by the end of their local day (split into overdue, i.e. past
/// due now, and the rest of today), and their quiet
/// A-grade customers.
pub async fn today(tx: &mut Tx, ctx: &Ctx, tz: chrono_tz::Tz) -> Result<Today> {
    let Some(user_id) = ctx.actor.user_id else {
        return Err(invalid("只有具体用户才有「今天」", "only a user has a day"));
    };
    let local = ctx.now.with_timezone(&tz).date_naive();
    let end = local.checked_add_days(Days::new(1)).unwrap_or(local).and_time(NaiveTime::MIN);
    let to_utc = |naive: chrono::NaiveDateTime| {
        tz.from_local_datetime(&naive).earliest().map(|d| d.with_timezone(&Utc)).unwrap_or(ctx.now)
    };
    let end = to_utc(end);
    let tasks = store::tasks::open_due_before(tx, ctx.org_id(), user_id, end).await?;
    let (overdue, due_today): (Vec<_>, Vec<_>) = tasks.into_iter().partition(|t| t.due_at < ctx.now);
    let limit = ctx.now - Duration::days(Grade::A.contact_limit_days());
    let quiet = store::customers::quiet(tx, ctx.org_id(), user_id, Grade::A, limit).await?;
    Ok(Today { overdue, due_today, quiet })
}

/// Moves an open task to a new time in the future.
pub async fn snooze_task(tx: &mut Tx, ctx: &Ctx, id: i64, until: DateTime<Utc>) -> Result<Task> {
    let before = get_task(tx, ctx, id).await?;
    if before.status != TaskStatus::Open {
        return Err(invalid(format!("任务 #{id} 已经结束了"), format!("task #{id} is already closed")));
    }
    if until <= ctx.now {
        return Err(invalid(
            "新的时间已经过去了，请给一个将来的时间",
            "that time has already passed; give a time in the future",
        ));
    }
    store::tasks::set_status(tx, ctx.org_id(), id, TaskStatus::Open, None, until).await?;
    let after = load(tx, ctx, id).await?;
    audit(tx, ctx, "snooze", "task", id, Some(&before), Some(&after)).await?;
    Ok(after)
}
