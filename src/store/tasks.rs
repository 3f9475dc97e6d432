//! Tasks and follow-ups.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::crm::model::{Task, TaskOrigin, TaskStatus};
use crate::run;

macro_rules! task_select {
    () => {
        "SELECT t.id, t.org_id, t.owner_id, u.team_id AS owner_team_id, t.title, t.due_at,
                t.customer_id, c.name AS customer_name, t.deal_id, t.origin, t.status, t.completed_at,
                t.created_at
         FROM tasks t JOIN users u ON u.id = t.owner_id LEFT JOIN customers c ON c.id = t.customer_id "
    };
}

pub struct NewTaskRow<'a> {
    pub org_id: i64,
    pub owner_id: i64,
    pub title: &'a str,
    pub due_at: DateTime<Utc>,
    pub customer_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub origin: TaskOrigin,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, r: &NewTaskRow<'_>) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO tasks (org_id, owner_id, title, due_at, customer_id, deal_id, origin, status, created_at,
                            remind_at, remind_exact)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $4, $9) RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.owner_id)
    .bind(r.title)
    .bind(r.due_at)
    .bind(r.customer_id)
    .bind(r.deal_id)
    .bind(r.origin)
    .bind(r.now)
    // A time the user chose is kept even inside quiet hours; a rule's is not.
    .bind(matches!(r.origin, TaskOrigin::Manual | TaskOrigin::Activity))
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<Option<Task>> {
    run!(tx, |c| sqlx::query_as(concat!(task_select!(), "WHERE t.org_id = $1 AND t.id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

/// A user's open tasks due before `until`, oldest first (overdue ones included).
pub async fn open_due_before(tx: &mut Tx, org_id: i64, owner_id: i64, until: DateTime<Utc>) -> sqlx::Result<Vec<Task>> {
    run!(tx, |c| sqlx::query_as(concat!(
        task_select!(),
        "WHERE t.org_id = $1 AND t.owner_id = $2 AND t.status = 'open' AND t.due_at < $3
         ORDER BY t.due_at, t.id"
    ))
    .bind(org_id)
    .bind(owner_id)
    .bind(until)
    .fetch_all(c)
    .await)
}

/// Sets a task's status and due time, keeping its reminder in step: a closed task has none; an
/// open task whose due time moved is reminded at the new time; an open task never reminded (e.g. a
/// completion that was undone) is armed again.
pub async fn set_status(
    tx: &mut Tx,
    org_id: i64,
    id: i64,
    status: TaskStatus,
    completed_at: Option<DateTime<Utc>>,
    due_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "UPDATE tasks SET status = $3, completed_at = $4,
                remind_at = CASE WHEN $3 <> 'open' THEN NULL
                                 WHEN due_at <> $5 THEN $5
                                 WHEN remind_at IS NULL AND reminded_at IS NULL THEN $5
                                 ELSE remind_at END,
                remind_exact = CASE WHEN $3 = 'open' AND due_at <> $5 THEN $6 ELSE remind_exact END,
                reminded_at = CASE WHEN $3 = 'open' AND due_at <> $5 THEN NULL ELSE reminded_at END,
                due_at = $5
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org_id)
    .bind(id)
    .bind(status)
    .bind(completed_at)
    .bind(due_at)
    // Moving a task is the user choosing its time.
    .bind(true)
    .execute(c)
    .await
    .map(|_| ()))
}

/// API filters for tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub owner_id: Option<i64>,
    pub status: Option<TaskStatus>,
    pub due_before: Option<DateTime<Utc>>,
}

pub async fn page(tx: &mut Tx, page: &super::Page, f: &TaskFilter) -> sqlx::Result<Vec<Task>> {
    crate::api_page!(tx, Task, concat!(task_select!(), "WHERE t.org_id = "), "t.owner_id", "t.id", page, |qb| {
        if let Some(owner) = f.owner_id {
            qb.push(" AND t.owner_id = ").push_bind(owner);
        }
        if let Some(status) = f.status {
            qb.push(" AND t.status = ").push_bind(status.as_str());
        }
        if let Some(before) = f.due_before {
            qb.push(" AND t.due_at < ").push_bind(before);
        }
    })
}
