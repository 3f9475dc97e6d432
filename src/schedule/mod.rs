//! The scheduler: due reminders, cron jobs (digests, follow-up rules, stuck deals, overdue
//! summaries), and the leases that let several instances share them.
//!
//! Everything the scheduler decides is written in one transaction with the outbox rows it causes:
//! a reminder is marked fired in the transaction that queues it, and a job run is claimed by
//! inserting its `(job, org, scheduled time)` row in the transaction that does its work. On
//! PostgreSQL due reminders are selected `FOR UPDATE SKIP LOCKED`, so any number of instances share
//! them and none fires twice; the job-run key does the same for jobs. Time comes from [`Clock`], so
//! tests step through a week by setting the clock and calling [`Scheduler::tick`].

pub mod calendar;
mod jobs;
mod reminders;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

pub use settings::{Job, OrgPlan, Plan, PlanError, ScheduleSettings};

use crate::clock::Clock;
use crate::crm::{self, Org};
use crate::outbox::Routes;
use crate::store::Db;

/// The org list and when it was read.
type OrgsSeen = (DateTime<Utc>, Arc<Vec<Org>>);

/// What one [`Scheduler::tick`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub reminders_fired: usize,
    /// Held back by quiet hours.
    pub reminders_deferred: usize,
    pub jobs_run: usize,
    /// Messages queued by jobs (digests, nudges, summaries, escalations).
    pub messages_queued: usize,
}

/// How long an API `Idempotency-Key` is remembered.
const IDEMPOTENCY_DAYS: i64 = 7;

/// Most reminders fired per transaction.
const REMINDER_BATCH: i64 = 500;

pub struct Scheduler {
    db: Db,
    clock: Clock,
    plan: Arc<Plan>,
    routes: Arc<Routes>,
    instance: Arc<str>,
    /// Jobs never run before start from here, rather than running everything ever scheduled.
    started: DateTime<Utc>,
    /// Latest run per (job, org), as far as this instance knows.
    last_runs: Mutex<HashMap<(Job, i64), DateTime<Utc>>>,
    /// Woken when messages were queued.
    queued: Option<Arc<Notify>>,
    /// When old outbox rows were last pruned.
    pruned: Mutex<Option<DateTime<Utc>>>,
    /// The orgs, re-read once a minute rather than on every tick.
    orgs: Mutex<Option<OrgsSeen>>,
}

impl Scheduler {
    pub fn new(db: Db, clock: Clock, plan: Arc<Plan>, routes: Arc<Routes>, instance: &str) -> Self {
        let started = clock.now();
        Self {
            db,
            clock,
            plan,
            routes,
            instance: instance.into(),
            started,
            last_runs: Mutex::new(HashMap::new()),
            queued: None,
            pruned: Mutex::new(None),
            orgs: Mutex::new(None),
        }
    }

    /// Wake this (the dispatcher) whenever messages were queued.
    pub fn notify(mut self, queued: Arc<Notify>) -> Self {
        self.queued = Some(queued);
        self
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Fires every due reminder and runs every due job, as of the clock's now.
    pub async fn tick(&self) -> crm::Result<TickReport> {
        let now = self.clock.now();
        let mut report = TickReport::default();
        // Jobs first: a follow-up task a rule creates now is reminded in this same tick.
        let (runs, queued) = jobs::run_due(self, now).await?;
        report.jobs_run = runs;
        report.messages_queued = queued;
        loop {
            let (fired, deferred) = reminders::fire_batch(self, now, REMINDER_BATCH).await?;
            report.reminders_fired += fired;
            report.reminders_deferred += deferred;
            if ((fired + deferred) as i64) < REMINDER_BATCH {
                break;
            }
            // Firing a backlog: let the dispatcher (another connection) at the write lock between
            // batches, and start sending what is queued already.
            if let Some(n) = &self.queued {
                n.notify_one();
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        self.prune(now).await?;
        if (report.reminders_fired > 0 || report.messages_queued > 0)
            && let Some(n) = &self.queued
        {
            n.notify_one();
        }
        Ok(report)
    }

    /// Ticks until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tracing::info!(instance = %self.instance, jobs = self.plan.jobs.len(), "scheduler started");
        tokio::pin!(stop);
        loop {
            match self.tick().await {
                Ok(r) if r != TickReport::default() => tracing::debug!(?r, "scheduler tick"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "scheduler tick failed; retrying"),
            }
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(self.plan.tick) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Hourly: delivered messages older than `outbox_keep_days` go, in small batches.
    async fn prune(&self, now: DateTime<Utc>) -> crm::Result<()> {
        {
            let mut last = self.pruned.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| now - at < chrono::Duration::hours(1)) {
                return Ok(());
            }
            *last = Some(now);
        }
        let mut total = 0;
        loop {
            let mut tx = self.db.begin_claim().await?;
            let n = crate::store::outbox::prune(&mut tx, now - self.plan.outbox_keep, 5000).await?;
            tx.commit().await?;
            total += n;
            if n < 5000 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(deleted = total, "old outbox messages pruned");
        }
        let mut tx = self.db.begin_claim().await?;
        let keys =
            crate::store::tokens::prune_idempotency(&mut tx, now - chrono::Duration::days(IDEMPOTENCY_DAYS)).await?;
        tx.commit().await?;
        if keys > 0 {
            tracing::info!(deleted = keys, "expired API idempotency keys pruned");
        }
        Ok(())
    }

    async fn orgs(&self, now: DateTime<Utc>) -> crm::Result<Arc<Vec<Org>>> {
        if let Some((at, orgs)) = &*self.orgs.lock().unwrap_or_else(PoisonError::into_inner)
            && (now - *at).abs() < chrono::Duration::minutes(1)
        {
            return Ok(orgs.clone());
        }
        let mut tx = self.db.begin_read().await?;
        let orgs = Arc::new(crate::store::orgs::list(&mut tx).await?);
        tx.commit().await?;
        *self.orgs.lock().unwrap_or_else(PoisonError::into_inner) = Some((now, orgs.clone()));
        Ok(orgs)
    }

    fn org_plan(&self, org: &Org) -> &OrgPlan {
        self.plan.org(&org.name)
    }

    fn last_run(&self, job: Job, org: i64) -> Option<DateTime<Utc>> {
        self.last_runs.lock().unwrap_or_else(PoisonError::into_inner).get(&(job, org)).copied()
    }

    fn set_last_run(&self, job: Job, org: i64, at: DateTime<Utc>) {
        let mut map = self.last_runs.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry((job, org)).or_insert(at);
        if *entry < at {
            *entry = at;
        }
    }
}

/// A name for this instance in leases and job runs: host name and process id.
pub fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "chatcrm".into());
    format!("{host}-{}", std::process::id())
}
