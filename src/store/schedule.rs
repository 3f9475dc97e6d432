//! Queries of the scheduler: due reminders, job runs, and what the follow-up rules look for.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::run;

/// A task whose reminder is due, with what the reminder shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueReminder {
    pub task_id: i64,
    pub org_id: i64,
    pub org_name: String,
    pub timezone: String,
    pub owner_id: i64,
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub remind_at: DateTime<Utc>,
    pub remind_exact: bool,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    pub last_contacted_at: Option<DateTime<Utc>>,
    /// The next step written on the customer's latest activity.
    pub next_step: Option<String>,
}

macro_rules! due_select {
    () => {
        "SELECT t.id AS task_id, t.org_id, o.name AS org_name, o.timezone, t.owner_id, t.title, t.due_at,
                t.remind_at, t.remind_exact, t.customer_id, c.name AS customer_name, c.last_contacted_at,
                (SELECT a.next_step FROM activities a WHERE a.customer_id = t.customer_id
                 ORDER BY a.occurred_at DESC, a.id DESC LIMIT 1) AS next_step
         FROM tasks t JOIN orgs o ON o.id = t.org_id LEFT JOIN customers c ON c.id = t.customer_id
         WHERE t.remind_at IS NOT NULL AND t.remind_at <= $1 AND t.status = 'open'
         ORDER BY t.remind_at, t.id LIMIT $2"
    };
}

/// When the oldest reminder due at `now` and not yet fired was due (for the scheduler-lag metric).
pub async fn oldest_due_reminder(tx: &mut Tx, now: DateTime<Utc>) -> sqlx::Result<Option<DateTime<Utc>>> {
    run!(tx, |c| sqlx::query_scalar(
        "SELECT MIN(remind_at) FROM tasks WHERE remind_at IS NOT NULL AND remind_at <= $1 AND status = 'open'"
    )
    .bind(now)
    .fetch_one(c)
    .await)
}

/// Up to `limit` reminders due at `now`, oldest first. On PostgreSQL the rows stay locked until the
/// transaction ends and other instances skip them, so each fires in exactly one transaction.
pub async fn due_reminders(tx: &mut Tx, now: DateTime<Utc>, limit: i64) -> sqlx::Result<Vec<DueReminder>> {
    match tx {
        Tx::Sqlite(t) => sqlx::query_as(due_select!()).bind(now).bind(limit).fetch_all(&mut **t).await,
        Tx::Postgres(t) => {
            sqlx::query_as(concat!(due_select!(), " FOR UPDATE OF t SKIP LOCKED"))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut **t)
                .await
        }
    }
}

/// The reminder fired (its outbox row is in the same transaction).
pub async fn mark_reminded(tx: &mut Tx, task_id: i64, now: DateTime<Utc>) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE tasks SET remind_at = NULL, reminded_at = $2 WHERE id = $1")
        .bind(task_id)
        .bind(now)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Held back by quiet hours until `at`.
pub async fn defer_reminder(tx: &mut Tx, task_id: i64, at: DateTime<Utc>) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE tasks SET remind_at = $2 WHERE id = $1")
        .bind(task_id)
        .bind(at)
        .execute(c)
        .await
        .map(|_| ()))
}

/// When the next reminder is due, if any.
pub async fn next_reminder(tx: &mut Tx) -> sqlx::Result<Option<DateTime<Utc>>> {
    run!(tx, |c| sqlx::query_scalar("SELECT MIN(remind_at) FROM tasks WHERE remind_at IS NOT NULL").fetch_one(c).await)
}

/// The latest scheduled time a job ran for in an org.
pub async fn last_job_run(tx: &mut Tx, job: &str, org_id: i64) -> sqlx::Result<Option<DateTime<Utc>>> {
    run!(tx, |c| sqlx::query_scalar("SELECT MAX(scheduled_for) FROM job_runs WHERE job = $1 AND org_id = $2")
        .bind(job)
        .bind(org_id)
        .fetch_one(c)
        .await)
}

/// Claims a job run; false when some instance already has it (it then does nothing here).
pub async fn claim_job_run(
    tx: &mut Tx,
    job: &str,
    org_id: i64,
    scheduled_for: DateTime<Utc>,
    instance: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO job_runs (job, org_id, scheduled_for, started_at, instance, outcome)
         VALUES ($1, $2, $3, $4, $5, 'running') ON CONFLICT DO NOTHING"
    )
    .bind(job)
    .bind(org_id)
    .bind(scheduled_for)
    .bind(now)
    .bind(instance)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

pub async fn finish_job_run(
    tx: &mut Tx,
    job: &str,
    org_id: i64,
    scheduled_for: DateTime<Utc>,
    outcome: &str,
) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE job_runs SET outcome = $4 WHERE job = $1 AND org_id = $2 AND scheduled_for = $3")
        .bind(job)
        .bind(org_id)
        .bind(scheduled_for)
        .bind(outcome)
        .execute(c)
        .await
        .map(|_| ()))
}

/// A customer of `grade` with an owner, not contacted since `before`, and no open follow-up task
/// from the rule.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuietCustomer {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub last_contacted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub async fn quiet_without_rule_task(
    tx: &mut Tx,
    org_id: i64,
    grade: &str,
    before: DateTime<Utc>,
) -> sqlx::Result<Vec<QuietCustomer>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT c.id, c.name, c.owner_id, c.last_contacted_at, c.created_at FROM customers c
         WHERE c.org_id = $1 AND c.grade = $2 AND c.owner_id IS NOT NULL
           AND COALESCE(c.last_contacted_at, c.created_at) < $3
           AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.org_id = c.org_id AND t.customer_id = c.id
                           AND t.status = 'open' AND t.origin = 'rule')
         ORDER BY c.id"
    )
    .bind(org_id)
    .bind(grade)
    .bind(before)
    .fetch_all(c)
    .await)
}

/// An open rule follow-up task created before `before` whose customer has still not been contacted
/// since, and that has not been escalated.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MissedFollowUp {
    pub task_id: i64,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub customer_id: i64,
    pub customer_name: String,
    pub owner_id: i64,
    pub owner_name: String,
    pub owner_team_id: Option<i64>,
}

pub async fn missed_follow_ups(
    tx: &mut Tx,
    org_id: i64,
    grade: &str,
    before: DateTime<Utc>,
) -> sqlx::Result<Vec<MissedFollowUp>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT t.id AS task_id, t.title, t.created_at, c.id AS customer_id, c.name AS customer_name,
                t.owner_id, u.name AS owner_name, u.team_id AS owner_team_id
         FROM tasks t JOIN customers c ON c.id = t.customer_id JOIN users u ON u.id = t.owner_id
         WHERE t.org_id = $1 AND t.status = 'open' AND t.origin = 'rule' AND t.escalated_at IS NULL
           AND c.grade = $2 AND t.created_at < $3
           AND (c.last_contacted_at IS NULL OR c.last_contacted_at < t.created_at)
         ORDER BY t.id"
    )
    .bind(org_id)
    .bind(grade)
    .bind(before)
    .fetch_all(c)
    .await)
}

pub async fn mark_escalated(tx: &mut Tx, task_id: i64, now: DateTime<Utc>) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("UPDATE tasks SET escalated_at = $2 WHERE id = $1")
        .bind(task_id)
        .bind(now)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Open rule follow-ups of a customer: a contact closes them.
pub async fn complete_rule_tasks(tx: &mut Tx, org_id: i64, customer_id: i64, now: DateTime<Utc>) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query(
        "UPDATE tasks SET status = 'done', completed_at = $3, remind_at = NULL
         WHERE org_id = $1 AND customer_id = $2 AND status = 'open' AND origin = 'rule'"
    )
    .bind(org_id)
    .bind(customer_id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}

/// An open deal and when it entered its current stage.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DealInStage {
    pub id: i64,
    pub title: String,
    pub owner_id: i64,
    pub stage: String,
    pub customer_name: String,
    pub entered_at: DateTime<Utc>,
}

pub async fn open_deals_with_stage_entry(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<DealInStage>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT d.id, d.title, d.owner_id, d.stage, c.name AS customer_name,
                COALESCE((SELECT MAX(h.moved_at) FROM deal_stage_history h
                          WHERE h.deal_id = d.id AND h.to_stage = d.stage), d.created_at) AS entered_at
         FROM deals d JOIN customers c ON c.id = d.customer_id
         WHERE d.org_id = $1 AND d.status = 'open'
         ORDER BY d.id"
    )
    .bind(org_id)
    .fetch_all(c)
    .await)
}

/// Open tasks past due, per owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverdueTask {
    pub id: i64,
    pub owner_id: i64,
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub customer_name: Option<String>,
}

pub async fn overdue_tasks(tx: &mut Tx, org_id: i64, now: DateTime<Utc>) -> sqlx::Result<Vec<OverdueTask>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT t.id, t.owner_id, t.title, t.due_at, c.name AS customer_name
         FROM tasks t LEFT JOIN customers c ON c.id = t.customer_id
         WHERE t.org_id = $1 AND t.status = 'open' AND t.due_at < $2
         ORDER BY t.owner_id, t.due_at, t.id"
    )
    .bind(org_id)
    .bind(now)
    .fetch_all(c)
    .await)
}

/// Several reminders fired at once (their outbox rows are in the same transaction).
pub async fn mark_reminded_many(tx: &mut Tx, task_ids: &[i64], now: DateTime<Utc>) -> sqlx::Result<()> {
    if task_ids.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Sqlite(t) => {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("UPDATE tasks SET remind_at = NULL, reminded_at = ");
            qb.push_bind(now);
            qb.push(" WHERE id IN (");
            let mut list = qb.separated(", ");
            for id in task_ids {
                list.push_bind(*id);
            }
            list.push_unseparated(")");
            qb.build().execute(&mut **t).await.map(|_| ())
        }
        Tx::Postgres(t) => sqlx::query("UPDATE tasks SET remind_at = NULL, reminded_at = $1 WHERE id = ANY($2)")
            .bind(now)
            .bind(task_ids)
            .execute(&mut **t)
            .await
            .map(|_| ()),
    }
}

/// Marks reminders due before `now` as already fired, at their time (for seeded data).
pub async fn settle_past_reminders(tx: &mut Tx, org_id: i64, now: DateTime<Utc>) -> sqlx::Result<u64> {
    run!(tx, |c| sqlx::query(
        "UPDATE tasks SET reminded_at = remind_at, remind_at = NULL
         WHERE org_id = $1 AND remind_at IS NOT NULL AND remind_at < $2"
    )
    .bind(org_id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}
