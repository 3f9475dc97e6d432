//! `chatcrm bench reminders`: the scheduler and the outbox dispatcher delivering reminders into the
//! in-process mock WeCom, on a database holding `pending` pending reminders (issue 5).
//!
//! Setup: a fresh database (a temporary SQLite file by default), an org with `users` reps (10,000 by
//! default: the dispatcher holds each WeCom member to 30 messages a minute, so 1,000 reminders a
//! second need at least 2,000 recipients) linked to WeCom ids on the mock's corp, and `pending` open tasks with reminders: `rate × seconds` of them fall due
//! at a steady `rate` starting about 2 s after the instances are up, the rest are spread over the
//! next year and sit pending.
//!
//! - Phase A (lateness): `instances` × (own pool, [`Scheduler`], [`Dispatcher`], real clock) run their
//!   loops until every reminder of the window reached the mock. Fire lateness is the time the
//!   scheduler queued it (outbox `created_at`, the tick's "now") minus its `remind_at`; delivery
//!   lateness is outbox `sent_at` (the dispatcher's "now" after the mock answered) minus `remind_at`.
//! - Phase B (throughput): `backlog` of the far-future reminders are made due at once; the clock runs
//!   from the commit of that update until the mock has received every one of them.
//!
//! The mock's log of accepted messages is the proof of "exactly once". Memory is this process's RSS,
//! which includes the mock and the messages it keeps (not the PostgreSQL server).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bench::Latency;
use crate::clock::Clock;
use crate::config::{DatabaseKind, redact_url};
use crate::crm::{self, Role, Via};
use crate::outbox::{Dispatcher, Routes, Senders};
use crate::platform::wecom::client::WecomClient;
use crate::platform::wecom::mock::{MockWecom, Received};
use crate::schedule::{Plan, ScheduleSettings, Scheduler};
use crate::store::{Db, DbOptions};

const APP: &str = "bench";
const TITLE: &str = "Follow up on the quote";
/// Rows per INSERT statement on SQLite (2 bound values each, well under SQLite's 32,766).
const SQLITE_ROWS_PER_STATEMENT: u64 = 4_000;

#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: a fresh temporary SQLite file, deleted afterwards.
    pub database_url: Option<String>,
    /// PostgreSQL: drop and recreate the database first.
    pub recreate: bool,
    pub pending: u64,
    pub rate: u64,
    pub seconds: u64,
    pub backlog: u64,
    pub instances: usize,
    pub tick_ms: u64,
    /// Reps the reminders are spread over (WeCom takes at most 30 messages a minute per member).
    pub users: usize,
}

/// p50 / p99 / max in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Ms {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Ms {
    fn of(samples_us: Vec<u64>) -> Self {
        let l = Latency::of(samples_us, 1.0);
        let ms = |us: u64| (us as f64 / 1000.0 * 10.0).round() / 10.0;
        Self { p50: ms(l.p50_us), p99: ms(l.p99_us), max: ms(l.max_us) }
    }
}

#[derive(Debug, Serialize)]
pub struct Steady {
    pub reminders: u64,
    /// Reminders per second the window was seeded at (1e6 / whole µs between reminders).
    pub effective_rate: f64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub fire_lateness_ms: Ms,
    pub delivery_lateness_ms: Ms,
    /// From the end of the window until the last one was delivered.
    pub drain_after_window_ms: f64,
    pub sent_by_instance: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Burst {
    pub reminders: u64,
    /// The UPDATE that made them due (not counted below).
    pub make_due_seconds: f64,
    /// From its commit until no due reminder was left unfired.
    pub fired_seconds: f64,
    /// From its commit until the mock had received them all.
    pub delivered_seconds: f64,
    pub reminders_per_second: f64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub sent_by_instance: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub rss_after_seed_mib: f64,
    /// After phase A, the mock holding that phase's messages.
    pub rss_after_steady_mib: f64,
    pub rss_end_mib: f64,
    pub peak_rss_mib: f64,
    /// Messages the in-process mock keeps (their JSON bodies count in the RSS).
    pub mock_messages_held: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub backend: &'static str,
    pub database: String,
    pub instances: usize,
    pub users: usize,
    pub pending: u64,
    pub rate: u64,
    pub seconds: u64,
    pub tick_ms: u64,
    pub seed_seconds: f64,
    pub steady: Steady,
    pub burst: Burst,
    /// Accepted messages for tasks that were not made due (should be 0).
    pub unexpected: u64,
    /// Tasks marked reminded at the end (should be window + backlog).
    pub tasks_reminded: i64,
    /// Outbox messages not recorded as sent a lease after the last delivery (should be 0).
    pub outbox_pending_at_end: i64,
    /// Identical retries the mock dropped (WeCom's duplicate check).
    pub mock_duplicates_dropped: usize,
    pub memory: Memory,
}

impl Report {
    pub fn summary(&self) -> String {
        let s = &self.steady;
        let b = &self.burst;
        let m = &self.memory;
        let per =
            |map: &BTreeMap<String, u64>| map.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        line(format!(
            "reminders bench · {} ({}) · {} instance{} · {} pending over {} users · tick {} ms · seeded in {:.1} s",
            self.backend,
            self.database,
            self.instances,
            if self.instances == 1 { "" } else { "s" },
            self.pending,
            self.users,
            self.tick_ms,
            self.seed_seconds
        ));
        line(format!(
            "A  steady {} /s for {} s ({} reminders, seeded at {:.1}/s): delivered {}, missing {}, duplicates {}",
            self.rate, self.seconds, s.reminders, s.effective_rate, s.delivered, s.missing, s.duplicates
        ));
        line(format!(
            "   fire lateness      p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
            s.fire_lateness_ms.p50, s.fire_lateness_ms.p99, s.fire_lateness_ms.max
        ));
        line(format!(
            "   delivery lateness  p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
            s.delivery_lateness_ms.p50, s.delivery_lateness_ms.p99, s.delivery_lateness_ms.max
        ));
        line(format!(
            "   last delivered {:.0} ms after the window; sent by {}",
            s.drain_after_window_ms,
            per(&s.sent_by_instance)
        ));
        line(format!(
            "B  backlog {} due at once (update {:.2} s): all fired after {:.2} s, all delivered after {:.2} s = {:.0} reminders/s",
            b.reminders, b.make_due_seconds, b.fired_seconds, b.delivered_seconds, b.reminders_per_second
        ));
        line(format!(
            "   delivered {}, missing {}, duplicates {}; sent by {}",
            b.delivered,
            b.missing,
            b.duplicates,
            per(&b.sent_by_instance)
        ));
        line(format!(
            "   unexpected messages {}, tasks reminded {}, outbox still pending {}, identical retries dropped by the mock {}",
            self.unexpected, self.tasks_reminded, self.outbox_pending_at_end, self.mock_duplicates_dropped
        ));
        line(format!(
            "memory (this process, incl. the mock holding {} messages at the end): RSS after seeding {:.0} MiB, after A {:.0} MiB, at the end {:.0} MiB, peak {:.0} MiB",
            m.mock_messages_held, m.rss_after_seed_mib, m.rss_after_steady_mib, m.rss_end_mib, m.peak_rss_mib
        ));
        out
    }
}

/// Deletes the temporary SQLite file (and its WAL) when the bench made one.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    ensure!((1..=1_000_000).contains(&opts.rate), "--rate must be between 1 and 1000000");
    ensure!(opts.seconds >= 1, "--seconds must be at least 1");
    ensure!(opts.instances >= 1, "--instances must be at least 1");
    ensure!(opts.users >= 1, "--users must be at least 1");
    ensure!((10..=60_000).contains(&opts.tick_ms), "--tick-ms must be between 10 and 60000");
    let window_n = opts.rate * opts.seconds;
    ensure!(
        opts.pending >= window_n + opts.backlog,
        "--pending ({}) must be at least rate × seconds + backlog ({})",
        opts.pending,
        window_n + opts.backlog
    );
    let (url, _temp) = match &opts.database_url {
        Some(u) => (u.clone(), TempFile(None)),
        None => {
            let path =
                std::env::temp_dir().join(format!("chatcrm-bench-reminders-{}.db", uuid::Uuid::new_v4().simple()));
            (format!("sqlite://{}", path.display()), TempFile(Some(path)))
        }
    };
    let kind = DatabaseKind::of(&url).map_err(anyhow::Error::msg)?;
    match kind {
        DatabaseKind::Postgres => crate::bench::ensure_pg_database(&url, opts.recreate).await?,
        DatabaseKind::Sqlite => ensure!(!opts.recreate, "--recreate is for PostgreSQL; give SQLite a new file"),
    }
    if kind == DatabaseKind::Sqlite && opts.instances > 1 {
        eprintln!("note: SQLite supports one chatcrm instance; running {} anyway", opts.instances);
    }
    let db = Db::connect(&DbOptions::new(&url)).await.context("cannot open the database")?;
    db.migrate().await?;
    let existing: i64 = scalar(&db, "SELECT COUNT(*) FROM tasks").await?;
    ensure!(
        existing == 0,
        "the database already holds {existing} tasks: give an empty one (PostgreSQL: --recreate drops and recreates it)"
    );

    // Setup: the reps, then the far-future reminders.
    let t_people = Instant::now();
    let (org_id, owners) = people(&db, opts.users).await?;
    eprintln!("{} reps linked in {:.1} s", owners.len(), t_people.elapsed().as_secs_f64());
    let far_n = opts.pending - window_n;
    let seed_start = Instant::now();
    let now = Utc::now();
    let year_us = 365 * 86_400 * 1_000_000_i64;
    let far_step = (year_us / i64::try_from(far_n.max(1))?).max(1);
    eprintln!("seeding {far_n} far-future reminders…");
    seed(&db, org_id, &owners, now + chrono::Duration::days(30), far_step, far_n, 100_000, now, false).await?;
    // Rows per second this database takes, to seed the window well before its first reminder.
    let insert_rate = far_n as f64 / seed_start.elapsed().as_secs_f64().max(1e-3);
    if kind == DatabaseKind::Postgres {
        // What autovacuum does shortly after a bulk load; without it the planner may guess wrong mid-run.
        exec(&db, "ANALYZE tasks").await?;
    }
    let seed_seconds = seed_start.elapsed().as_secs_f64();
    let rss_after_seed = proc_status_mib("VmRSS:");

    // The instances.
    let mock = MockWecom::start().await;
    let plan = Arc::new(plan(opts.tick_ms)?);
    let routes = Arc::new(Routes::default().with_wecom_app(APP, &MockWecom::credentials().corp_id));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut workers = Vec::new();
    let mut pools = Vec::new();
    for i in 1..=opts.instances {
        let idb = Db::connect(&DbOptions::new(&url)).await?;
        let client = WecomClient::new(&mock.base_url(), MockWecom::credentials(), Duration::from_secs(10))?;
        // A running server has its token cached.
        client.access_token().await?;
        let name = format!("bench-{i}");
        let dispatcher = Dispatcher::new(
            idb.clone(),
            Clock::system(),
            &name,
            Senders::default().with_wecom(APP, client),
            plan.dispatch.clone(),
        );
        let scheduler = Scheduler::new(idb.clone(), Clock::system(), plan.clone(), routes.clone(), &name)
            .notify(dispatcher.waker());
        workers.push(tokio::spawn(scheduler.run(stopped(stop_rx.clone()))));
        workers.push(tokio::spawn(dispatcher.run(stopped(stop_rx.clone()))));
        pools.push(idb);
    }

    // Phase A: the window, committed in chunks well ahead of their time.
    let step_us = 1_000_000 / i64::try_from(opts.rate)?;
    // About 2 s after the window's rows are in (they are committed in chunks, before their time).
    let lead_ms = 2_000 + (window_n as f64 / insert_rate.max(1.0) * 1500.0) as i64;
    let start = Utc::now() + chrono::Duration::milliseconds(lead_ms);
    let window_end = start + chrono::Duration::microseconds(step_us * i64::try_from(window_n - 1)?);
    eprintln!("phase A: {window_n} reminders due from {start} at {} /s…", opts.rate);
    let base = mock.send_attempts();
    let window_ids: HashSet<i64> =
        seed(&db, org_id, &owners, start, step_us, window_n, 10_000, Utc::now(), true).await?.into_iter().collect();
    ensure!(window_ids.len() as u64 == window_n, "seeded {} window tasks, expected {window_n}", window_ids.len());
    let until_end = (window_end - Utc::now()).to_std().unwrap_or_default();
    let deadline = Instant::now() + until_end + Duration::from_secs(opts.seconds.max(60));
    let complete =
        wait_until(deadline, Duration::from_millis(20), || mock.send_attempts() >= base + window_n as usize).await;
    if !complete {
        eprintln!("phase A: not every reminder arrived in time; reporting what did");
    }
    // A batch whose outcome could not be recorded is sent again once its lease expires.
    let settle = plan.dispatch.lease + Duration::from_secs(30);
    wait_outbox_settled(&db, Instant::now() + settle).await?;
    let rss_after_steady = proc_status_mib("VmRSS:");

    // Phase B: a backlog due at once.
    let burst_base = mock.send_attempts();
    let t_update = Instant::now();
    let due = Utc::now();
    eprintln!("phase B: making {} reminders due at once…", opts.backlog);
    let backlog_ids: HashSet<i64> = make_due(&db, opts.backlog, due).await?.into_iter().collect();
    let make_due_seconds = t_update.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(600);
    let mut fired_seconds = f64::NAN;
    let mut delivered_seconds = f64::NAN;
    while Instant::now() < deadline {
        if fired_seconds.is_nan() && !any_due(&db, due).await? {
            fired_seconds = t0.elapsed().as_secs_f64();
        }
        if mock.send_attempts() >= burst_base + backlog_ids.len() {
            delivered_seconds = t0.elapsed().as_secs_f64();
            if fired_seconds.is_nan() {
                fired_seconds = delivered_seconds;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if delivered_seconds.is_nan() {
        eprintln!("phase B: not every reminder arrived within 600 s; reporting what did");
        delivered_seconds = t0.elapsed().as_secs_f64();
    }
    let outbox_pending_at_end = wait_outbox_settled(&db, Instant::now() + settle).await?;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let rss_end = proc_status_mib("VmRSS:");
    let peak = proc_status_mib("VmHWM:");

    // Results: the outbox for timings, the mock for "exactly once".
    let rows = outbox_rows(&db).await?;
    let (mut fire, mut delivery) = (Vec::new(), Vec::new());
    let mut last_sent: Option<DateTime<Utc>> = None;
    let (mut sent_a, mut sent_b) = (BTreeMap::new(), BTreeMap::new());
    for r in &rows {
        let Some((task, remind_ms)) = parse_key(&r.0) else { continue };
        let Some(remind) = DateTime::from_timestamp_millis(remind_ms) else { continue };
        let by = r.3.clone().unwrap_or_default();
        if window_ids.contains(&task) {
            fire.push(us_between(remind, r.1));
            if let Some(sent) = r.2 {
                delivery.push(us_between(remind, sent));
                last_sent = last_sent.max(Some(sent));
                *sent_a.entry(by).or_insert(0) += 1;
            }
        } else if backlog_ids.contains(&task) && r.2.is_some() {
            *sent_b.entry(by).or_insert(0) += 1;
        }
    }
    let received = mock.received();
    let mock_messages_held = received.len();
    let got = cards(&received);
    drop(received);
    let tally = |ids: &HashSet<i64>| {
        let delivered = ids.iter().filter(|id| got.get(id).is_some_and(|n| *n > 0)).count() as u64;
        let duplicates: u64 = ids.iter().filter_map(|id| got.get(id)).map(|n| n.saturating_sub(1)).sum();
        (delivered, ids.len() as u64 - delivered, duplicates)
    };
    let (delivered_a, missing_a, dup_a) = tally(&window_ids);
    let (delivered_b, missing_b, dup_b) = tally(&backlog_ids);
    let unexpected: u64 =
        got.iter().filter(|(id, _)| !window_ids.contains(id) && !backlog_ids.contains(id)).map(|(_, n)| *n).sum();
    let tasks_reminded = scalar(&db, "SELECT COUNT(*) FROM tasks WHERE reminded_at IS NOT NULL").await?;
    let report = Report {
        backend: match kind {
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "PostgreSQL",
        },
        database: if opts.database_url.is_some() { redact_url(&url) } else { "temporary file".into() },
        instances: opts.instances,
        users: opts.users,
        pending: opts.pending,
        rate: opts.rate,
        seconds: opts.seconds,
        tick_ms: opts.tick_ms,
        seed_seconds,
        steady: Steady {
            reminders: window_n,
            effective_rate: 1e6 / step_us as f64,
            delivered: delivered_a,
            missing: missing_a,
            duplicates: dup_a,
            fire_lateness_ms: Ms::of(fire),
            delivery_lateness_ms: Ms::of(delivery),
            drain_after_window_ms: last_sent
                .map_or(f64::NAN, |t| (t - window_end).num_microseconds().unwrap_or(0) as f64 / 1000.0),
            sent_by_instance: sent_a,
        },
        burst: Burst {
            reminders: backlog_ids.len() as u64,
            make_due_seconds,
            fired_seconds,
            delivered_seconds,
            reminders_per_second: backlog_ids.len() as f64 / delivered_seconds.max(1e-9),
            delivered: delivered_b,
            missing: missing_b,
            duplicates: dup_b,
            sent_by_instance: sent_b,
        },
        unexpected,
        tasks_reminded,
        outbox_pending_at_end,
        mock_duplicates_dropped: mock.duplicates_dropped(),
        memory: Memory {
            rss_after_seed_mib: rss_after_seed,
            rss_after_steady_mib: rss_after_steady,
            rss_end_mib: rss_end,
            peak_rss_mib: peak,
            mock_messages_held,
        },
    };
    mock.stop().await;
    for p in pools {
        p.close().await;
    }
    db.close().await;
    Ok(report)
}

/// The schedule of a bench instance: no cron jobs, no quiet hours, the given tick.
fn plan(tick_ms: u64) -> anyhow::Result<Plan> {
    let mut s = ScheduleSettings::default().without_jobs();
    s.quiet_hours = "off".into();
    s.tick_ms = tick_ms;
    Ok(Plan::try_from(&s)?)
}

/// The org and its reps, each linked to WeCom id `u1`, `u2`, … on the mock's corp. Written through
/// the store (no per-user uniqueness scan or audit row) so that 10,000 take a second, not minutes.
async fn people(db: &Db, users: usize) -> anyhow::Result<(i64, Vec<i64>)> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let org = crm::orgs::create_org(&mut tx, "Reminder bench", "Asia/Shanghai", Via::Cli, now).await?;
    let corp = MockWecom::credentials().corp_id;
    let mut owners = Vec::new();
    for i in 1..=users {
        let (handle, name) = (format!("rep{i}"), format!("Rep {i}"));
        let id = crate::store::users::insert(&mut tx, org.id, &handle, &name, Role::Rep, None, now).await?;
        crate::store::users::insert_identity(&mut tx, org.id, "wecom", &corp, &format!("u{i}"), id, now).await?;
        owners.push(id);
    }
    tx.commit().await?;
    Ok((org.id, owners))
}

/// Inserts `count` open tasks of the reps' org, owned in turn by `owners`, task `g` (from 0) reminded
/// (and due) at `first + g × step_us` µs, committing every `per_commit` rows. Returns their ids when
/// `ids`. PostgreSQL: one `generate_series` statement per commit; SQLite: multi-row VALUES with the
/// times computed here, so they are stored exactly as sqlx encodes `DateTime<Utc>`.
#[allow(clippy::too_many_arguments)]
async fn seed(
    db: &Db,
    org_id: i64,
    owners: &[i64],
    first: DateTime<Utc>,
    step_us: i64,
    count: u64,
    per_commit: u64,
    created: DateTime<Utc>,
    ids: bool,
) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < count {
        let n = per_commit.min(count - done);
        let mut tx = db.begin().await?;
        match &mut tx {
            crate::store::Tx::Postgres(t) => {
                let sql = format!(
                    "INSERT INTO tasks (org_id, owner_id, title, due_at, origin, status, created_at, remind_at, remind_exact)
                     SELECT $1, ($2::int8[])[1 + g % $3::int8], $4, r, 'manual', 'open', $5, r, TRUE
                     FROM (SELECT g, $6::timestamptz + ((g * $7::int8)::float8 * interval '1 microsecond') AS r
                           FROM generate_series($8::int8, $9::int8) g) s{}",
                    if ids { " RETURNING id" } else { "" }
                );
                let q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .bind(org_id)
                    .bind(owners.to_vec())
                    .bind(owners.len() as i64)
                    .bind(TITLE)
                    .bind(created)
                    .bind(first)
                    .bind(step_us)
                    .bind(i64::try_from(done)?)
                    .bind(i64::try_from(done + n - 1)?);
                out.extend(q.fetch_all(&mut **t).await?);
            }
            crate::store::Tx::Sqlite(t) => {
                let mut g = done;
                while g < done + n {
                    let rows = SQLITE_ROWS_PER_STATEMENT.min(done + n - g);
                    let mut sql = String::from(
                        "INSERT INTO tasks (org_id, owner_id, title, due_at, origin, status, created_at, remind_at, remind_exact) VALUES ",
                    );
                    for j in 0..rows {
                        let (o, r) = (4 + 2 * j, 5 + 2 * j);
                        if j > 0 {
                            sql.push(',');
                        }
                        sql.push_str(&format!("($1, ${o}, $2, ${r}, 'manual', 'open', $3, ${r}, 1)"));
                    }
                    if ids {
                        sql.push_str(" RETURNING id");
                    }
                    let mut q =
                        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(org_id).bind(TITLE).bind(created);
                    for k in g..g + rows {
                        let at = first + chrono::Duration::microseconds(step_us * i64::try_from(k)?);
                        q = q.bind(owners[(k as usize) % owners.len()]).bind(at);
                    }
                    out.extend(q.fetch_all(&mut **t).await?);
                    g += rows;
                }
            }
        }
        tx.commit().await?;
        done += n;
    }
    Ok(out)
}

/// Makes `n` far-future reminders (the earliest) due at `at`; their task ids.
async fn make_due(db: &Db, n: u64, at: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
    let mut tx = db.begin().await?;
    let ids = crate::run!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
        "UPDATE tasks SET remind_at = $1
         WHERE id IN (SELECT id FROM tasks WHERE remind_at IS NOT NULL AND remind_at > $1
                      ORDER BY remind_at LIMIT $2)
         RETURNING id"
    )
    .bind(at)
    .bind(i64::try_from(n)?)
    .fetch_all(c)
    .await)?;
    tx.commit().await?;
    Ok(ids)
}

/// Whether any reminder due by `at` has not fired yet (an index probe).
async fn any_due(db: &Db, at: DateTime<Utc>) -> anyhow::Result<bool> {
    let mut tx = db.begin_read().await?;
    let row = crate::run!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
        "SELECT id FROM tasks WHERE remind_at IS NOT NULL AND remind_at <= $1 LIMIT 1"
    )
    .bind(at)
    .fetch_optional(c)
    .await)?;
    tx.commit().await?;
    Ok(row.is_some())
}

/// Waits until no outbox message is pending (the last outcomes are recorded), or the deadline;
/// how many still are.
async fn wait_outbox_settled(db: &Db, deadline: Instant) -> anyhow::Result<i64> {
    loop {
        let pending = scalar(db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'").await?;
        if pending == 0 || Instant::now() >= deadline {
            if pending > 0 {
                eprintln!("{pending} outbox messages still pending after waiting");
            }
            return Ok(pending);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until(deadline: Instant, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    done()
}

type OutboxTiming = (String, DateTime<Utc>, Option<DateTime<Utc>>, Option<String>);

/// (dedupe key, queued at, sent at, sending instance) of every reminder in the outbox.
async fn outbox_rows(db: &Db) -> anyhow::Result<Vec<OutboxTiming>> {
    let mut tx = db.begin_read().await?;
    let rows = crate::run!(&mut tx, |c| sqlx::query_as::<_, OutboxTiming>(
        "SELECT dedupe_key, created_at, sent_at, locked_by FROM outbox WHERE kind = 'reminder'"
    )
    .fetch_all(c)
    .await)?;
    tx.commit().await?;
    Ok(rows)
}

async fn scalar(db: &Db, sql: &'static str) -> anyhow::Result<i64> {
    let mut tx = db.begin_read().await?;
    let v = crate::run!(&mut tx, |c| sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await)?;
    tx.commit().await?;
    Ok(v)
}

async fn exec(db: &Db, sql: &'static str) -> anyhow::Result<()> {
    match db {
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ())?,
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ())?,
    }
    Ok(())
}

/// `reminder:{task}:{remind_at ms}` → (task, ms).
fn parse_key(key: &str) -> Option<(i64, i64)> {
    let mut parts = key.strip_prefix("reminder:")?.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn us_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_microseconds().unwrap_or(0)).unwrap_or(0)
}

/// Task id of each reminder card the mock accepted (`remind-{task}-{ts}`), and how often.
fn cards(received: &[Received]) -> HashMap<i64, u64> {
    let mut map = HashMap::new();
    for r in received {
        let key = r.body.pointer("/template_card/task_id").and_then(|v| v.as_str()).unwrap_or_default();
        let id = key.split('-').nth(1).and_then(|s| s.parse::<i64>().ok()).unwrap_or(-1);
        *map.entry(id).or_insert(0) += 1;
    }
    map
}

/// A `/proc/self/status` figure (kB) in MiB; 0 where there is no procfs.
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
