//! `chatcrm bench digest`: the daily digest of every manager and admin of a large org (issue 7).
//!
//! Setup: a fresh database (a temporary SQLite file by default; a PostgreSQL database is dropped and
//! recreated) holding one org in Asia/Shanghai with the default stages, `reps` reps in teams of 10
//! with a manager each, and an admin; then customers, activities, deals with their stage history,
//! tasks and leads spread over the last two years, written with big multi-row INSERTs (SQLite) or
//! UNNEST of arrays (PostgreSQL) rather than through the CRM services, which would take hours. The
//! data is generated in time order, as a real org writes it, so rows sit in the table roughly by
//! date. Timestamps are bound as `DateTime<Utc>`, so SQLite stores the same text the app writes.
//!
//! Measurement: what the scheduler's daily-digest job does for each recipient (see `digests()` in
//! src/schedule/jobs.rs): `report::digest_between` for yesterday, local midnight to midnight, then
//! `render::digest`, all recipients in one transaction. One warm-up pass, then `passes` timed ones.
//!
//! Memory: this process's peak RSS, during generation and (after resetting the peak) during the
//! measurement; the database server's memory is not included.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, ensure};
use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::config::{DatabaseKind, redact_url};
use crate::crm::{self, Actor, Ctx, DealStatus, Lang, Role, Via};
use crate::report::render::Dialect;
use crate::store::{Db, DbOptions, Tx};

const ORG: &str = "Digest bench";
const TZ: &str = "Asia/Shanghai";
const REPS_PER_TEAM: usize = 10;
/// SQLite's default limit on bound variables per statement.
const SQLITE_MAX_VARIABLES: usize = 32_766;
/// Rows per UNNEST statement on PostgreSQL (a few MB of arrays each).
const PG_ROWS_PER_STATEMENT: usize = 50_000;
/// Rows generated and inserted at a time (and per transaction): bounds this process's memory.
const ROWS_PER_CHUNK: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: a fresh temporary SQLite file, deleted afterwards unless `keep`.
    pub database_url: Option<String>,
    pub sizes: Sizes,
    /// Timed passes over all recipients (after one warm-up pass).
    pub passes: usize,
    /// Keep the generated database (the temporary SQLite file, or the PostgreSQL database, which
    /// is otherwise dropped at the end).
    pub keep: bool,
    /// Generate, keep and print where; measure nothing.
    pub only_generate: bool,
    /// Measure the bench org already in `database_url` (from an earlier `--keep`) without
    /// generating anything.
    pub reuse: bool,
}

/// How much data to generate.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub reps: usize,
    pub customers: usize,
    pub activities: usize,
    pub deals: usize,
    pub tasks: usize,
    pub leads: usize,
}

impl Default for Sizes {
    /// The org of issue 7.
    fn default() -> Self {
        Self { reps: 50, customers: 100_000, activities: 1_000_000, deals: 50_000, tasks: 50_000, leads: 20_000 }
    }
}

/// One table's generation.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub what: &'static str,
    pub rows: u64,
    pub seconds: f64,
}

/// What the database holds for the bench org, counted after generation.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub teams: i64,
    pub users: i64,
    pub customers: i64,
    pub activities: i64,
    pub deals: i64,
    pub deals_won: i64,
    pub deals_lost: i64,
    pub stage_history: i64,
    pub tasks: i64,
    pub tasks_open_overdue: i64,
    pub leads: i64,
    /// In the digest period (yesterday).
    pub period_activities: i64,
    pub period_new_customers: i64,
    /// Stage moves of existing deals (creation rows excluded), won and lost included.
    pub period_stage_moves: i64,
}

/// Medians over the timed passes of one recipient's digest.
#[derive(Debug, Serialize)]
pub struct Recipient {
    pub handle: String,
    pub role: String,
    pub team: Option<String>,
    pub median_ms: f64,
    pub max_ms: f64,
    /// What the digest held: activities of the reps in scope, their stage moves (won and lost
    /// included), overdue tasks, and the rendered text's size.
    pub reps: usize,
    pub activities: i64,
    pub moves: i64,
    pub overdue: i64,
    /// Messages the rendered digest is split into, and their total size.
    pub messages: usize,
    pub text_bytes: usize,
}

/// Totals of the all-recipients passes, in ms.
#[derive(Debug, Serialize)]
pub struct Passes {
    pub warmup_ms: f64,
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
    pub each_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    /// Peak RSS while generating (0 with --reuse).
    pub generation_peak_rss_mib: f64,
    /// RSS when the measurement starts: the allocator may still hold what the generator freed
    /// (run again with --reuse for a process that never generated).
    pub measurement_start_rss_mib: f64,
    /// Peak RSS during the measurement (the peak is reset after generation where Linux allows).
    pub measurement_peak_rss_mib: f64,
    /// Whether resetting the peak worked; if not, the measurement peak includes generation.
    pub peak_reset: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub backend: &'static str,
    pub database: String,
    /// Where the kept database is (`None` when it was deleted).
    pub kept: Option<String>,
    pub sizes: Sizes,
    pub generate_seconds: f64,
    pub phases: Vec<Phase>,
    pub counts: Counts,
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    pub recipients: Vec<Recipient>,
    /// `None` with --only-generate.
    pub passes: Option<Passes>,
    pub memory: Memory,
}

impl Report {
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        let s = &self.sizes;
        let c = &self.counts;
        line(format!(
            "digest bench · {} ({}) · {} reps in {} teams, {} customers, {} activities, {} deals, {} tasks, {} leads",
            self.backend, self.database, s.reps, c.teams, c.customers, c.activities, c.deals, c.tasks, c.leads
        ));
        if !self.phases.is_empty() {
            let phases = self
                .phases
                .iter()
                .map(|p| match p.rows {
                    0 => format!("{} ({:.1} s)", p.what, p.seconds),
                    n => format!("{} {n} ({:.1} s)", p.what, p.seconds),
                })
                .collect::<Vec<_>>();
            line(format!("generated in {:.1} s: {}", self.generate_seconds, phases.join(", ")));
        }
        let tz: Tz = TZ.parse().unwrap_or(chrono_tz::Asia::Shanghai);
        line(format!(
            "period {} – {} {TZ}: {} activities, {} new customers, {} stage moves; {} stage history rows, deals won {} / lost {}, {} open overdue tasks",
            self.period_from.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            self.period_to.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            c.period_activities,
            c.period_new_customers,
            c.period_stage_moves,
            c.stage_history,
            c.deals_won,
            c.deals_lost,
            c.tasks_open_overdue
        ));
        if let Some(p) = &self.passes {
            let managers = self.recipients.iter().filter(|r| r.role == "manager").count();
            line(format!(
                "{} daily digests (managers {}, admins {}) per pass; warm-up {:.1} ms, then {} passes:",
                self.recipients.len(),
                managers,
                self.recipients.len() - managers,
                p.warmup_ms,
                p.each_ms.len()
            ));
            line(format!(
                "  all recipients  min {:.1} ms  median {:.1} ms  max {:.1} ms",
                p.min_ms, p.median_ms, p.max_ms
            ));
            for r in &self.recipients {
                line(format!(
                    "  {:<10} {:<7} {:<8} median {:>7.1} ms  max {:>7.1} ms · {} reps, {} activities, {} moves, {} overdue, {} messages of {} B",
                    r.handle,
                    r.role,
                    r.team.as_deref().unwrap_or("-"),
                    r.median_ms,
                    r.max_ms,
                    r.reps,
                    r.activities,
                    r.moves,
                    r.overdue,
                    r.messages,
                    r.text_bytes
                ));
            }
        }
        let m = &self.memory;
        let mut rss = Vec::new();
        if !self.phases.is_empty() {
            rss.push(format!("generation peak {:.0} MiB", m.generation_peak_rss_mib));
        }
        if self.passes.is_some() {
            rss.push(format!(
                "measurement start {:.0} MiB, peak {:.0} MiB{}",
                m.measurement_start_rss_mib,
                m.measurement_peak_rss_mib,
                if m.peak_reset { "" } else { " (peak not reset: includes generation)" }
            ));
        }
        line(format!("RSS (this process): {}", rss.join("; ")));
        if let Some(k) = &self.kept {
            line(format!("database kept: {k}"));
        }
        out
    }
}

/// Deletes the temporary SQLite file (and its WAL) unless disarmed.
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
    let s = &opts.sizes;
    ensure!((1..=10_000).contains(&s.reps), "--reps must be between 1 and 10000");
    ensure!((1..=50_000_000).contains(&s.customers), "--customers must be between 1 and 50000000");
    ensure!(s.activities <= 500_000_000, "--activities must be at most 500000000");
    ensure!(s.deals <= 50_000_000 && s.tasks <= 50_000_000 && s.leads <= 50_000_000, "too many deals, tasks or leads");
    ensure!((1..=1_000).contains(&opts.passes), "--passes must be between 1 and 1000");
    ensure!(!opts.reuse || opts.database_url.is_some(), "--reuse needs --database-url (a database kept with --keep)");
    ensure!(!(opts.reuse && opts.only_generate), "--reuse and --only-generate exclude each other");
    let keep = opts.keep || opts.only_generate || opts.reuse;
    let (url, mut temp) = match &opts.database_url {
        Some(u) => (u.clone(), TempFile(None)),
        None => {
            let path = std::env::temp_dir().join(format!("chatcrm-bench-digest-{}.db", uuid::Uuid::new_v4().simple()));
            (format!("sqlite://{}", path.display()), TempFile(Some(path)))
        }
    };
    let kind = DatabaseKind::of(&url).map_err(anyhow::Error::msg)?;
    let database = match &opts.database_url {
        Some(u) => redact_url(u),
        None => "temporary file".into(),
    };
    let now = Utc::now();

    let mut phases = Vec::new();
    let mut generate_seconds = 0.0;
    let mut generation_peak = 0.0;
    let org_id = if opts.reuse {
        let db = Db::connect(&DbOptions::new(&url)).await.context("cannot open the database")?;
        let org_id = bench_org(&db).await?.context("the database holds no bench org: generate one with --keep")?;
        db.close().await;
        org_id
    } else {
        if kind == DatabaseKind::Postgres {
            crate::bench::ensure_pg_database(&url, true).await?;
        }
        // A pool of its own for loading, with a big page cache (SQLite); closed before measuring
        // so the measurement runs on the connection settings the app uses.
        let mut o = DbOptions::new(&url);
        o.max_connections = 1;
        o.sqlite_synchronous = sqlx::sqlite::SqliteSynchronous::Normal;
        let db = Db::connect(&o).await.context("cannot open the database")?;
        db.migrate().await?;
        ensure!(
            bench_org(&db).await?.is_none(),
            "the database already holds a bench org: give a new SQLite file, or use --reuse to measure it"
        );
        if let Db::Sqlite(p) = &db {
            sqlx::query("PRAGMA cache_size = -262144").execute(p).await?;
        }
        let t = Instant::now();
        eprintln!(
            "generating {} reps, {} customers, {} activities, {} deals, {} tasks, {} leads…",
            s.reps, s.customers, s.activities, s.deals, s.tasks, s.leads
        );
        let org_id = generate(&db, s, now, &mut phases).await?;
        generate_seconds = t.elapsed().as_secs_f64();
        db.close().await;
        generation_peak = proc_status_mib("VmHWM:");
        org_id
    };
    let kept = if keep {
        temp.0 = None;
        Some(match &opts.database_url {
            Some(u) => redact_url(u),
            None => url.clone(),
        })
    } else {
        None
    };

    let peak_reset = reset_peak_rss();
    let measurement_start = proc_status_mib("VmRSS:");
    let db = Db::connect(&DbOptions::new(&url)).await.context("cannot open the database")?;
    let tz: Tz = TZ.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let (from, to) = if opts.reuse { latest_period(&db, org_id, tz).await? } else { yesterday(now, tz) };
    let counts = counts(&db, org_id, from, to, now).await?;
    let (recipients, passes) = if opts.only_generate {
        (Vec::new(), None)
    } else {
        eprintln!("measuring: 1 warm-up pass, then {}…", opts.passes);
        let (r, p) = measure(&db, org_id, from, to, now, opts.passes).await?;
        (r, Some(p))
    };
    db.close().await;
    if kind == DatabaseKind::Postgres && !keep {
        drop_pg_database(&url).await?;
    }
    Ok(Report {
        backend: match kind {
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "PostgreSQL",
        },
        database,
        kept,
        sizes: opts.sizes.clone(),
        generate_seconds,
        phases,
        counts,
        period_from: from,
        period_to: to,
        recipients,
        passes,
        memory: Memory {
            generation_peak_rss_mib: generation_peak,
            measurement_start_rss_mib: measurement_start,
            measurement_peak_rss_mib: proc_status_mib("VmHWM:"),
            peak_reset,
        },
    })
}

/// The scheduler's daily period at `now`: yesterday, local midnight to local midnight.
fn yesterday(now: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&tz).date_naive();
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(NaiveTime::MIN)).earliest().map_or(now, |t| t.with_timezone(&Utc))
    };
    (midnight(today.checked_sub_days(Days::new(1)).unwrap_or(today)), midnight(today))
}

/// With --reuse: the day of the latest activity, so a database kept yesterday still has a full day.
async fn latest_period(db: &Db, org_id: i64, tz: Tz) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    let mut tx = db.begin_read().await?;
    let last: Option<DateTime<Utc>> = crate::run!(&mut tx, |c| sqlx::query_scalar(
        "SELECT occurred_at FROM activities WHERE org_id = $1 ORDER BY occurred_at DESC LIMIT 1"
    )
    .bind(org_id)
    .fetch_optional(c)
    .await)?;
    tx.commit().await?;
    let last = last.context("the bench org has no activities")?;
    Ok(yesterday(last + Duration::days(1), tz))
}

async fn bench_org(db: &Db) -> anyhow::Result<Option<i64>> {
    let mut tx = db.begin_read().await?;
    let id = crate::run!(&mut tx, |c| sqlx::query_scalar::<_, i64>("SELECT id FROM orgs WHERE name = $1")
        .bind(ORG)
        .fetch_optional(c)
        .await)?;
    tx.commit().await?;
    Ok(id)
}

/// Every active manager's and admin's digest, as the daily job builds them; one warm-up pass.
async fn measure(
    db: &Db,
    org_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    passes: usize,
) -> anyhow::Result<(Vec<Recipient>, Passes)> {
    let mut totals = Vec::new();
    // user id → (recipient without timings, per-pass ms)
    let mut by_user: BTreeMap<i64, (Recipient, Vec<f64>)> = BTreeMap::new();
    for pass in 0..=passes {
        let t_pass = Instant::now();
        let mut tx = db.begin_read().await?;
        for user in crm::users::list_users(&mut tx, org_id).await? {
            if !user.active || user.role == Role::Rep {
                continue;
            }
            let t = Instant::now();
            let ctx = Ctx::new(Actor::of(&user), Via::System, now);
            let d = crate::report::digest_between(&mut tx, &ctx, from, to).await?;
            // The WeCom app's dialect: the shortest message limit, so the most splitting.
            let chunks = crate::report::render::digest(&d, Dialect::WeCom, Lang::Zh);
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let entry = by_user.entry(user.id).or_insert_with(|| {
                let recipient = Recipient {
                    handle: user.handle.clone(),
                    role: user.role.to_string(),
                    team: user.team_name.clone(),
                    median_ms: 0.0,
                    max_ms: 0.0,
                    reps: d.activity.reps.len(),
                    activities: d.activity.visits + d.activity.calls + d.activity.other,
                    moves: d.deals.moves_total + d.deals.won.len() as i64 + d.deals.lost.len() as i64,
                    overdue: d.risks.overdue_tasks.total,
                    messages: chunks.len(),
                    text_bytes: chunks.iter().map(String::len).sum(),
                };
                (recipient, Vec::new())
            });
            if pass > 0 {
                entry.1.push(ms);
            }
        }
        tx.commit().await?;
        totals.push(t_pass.elapsed().as_secs_f64() * 1000.0);
    }
    let recipients = by_user
        .into_values()
        .map(|(mut r, ms)| {
            let (median, max) = median_max(&ms);
            r.median_ms = median;
            r.max_ms = max;
            r
        })
        .collect();
    let warmup_ms = totals.first().copied().unwrap_or(0.0);
    let each_ms: Vec<f64> = totals.into_iter().skip(1).map(round1).collect();
    let (median_ms, max_ms) = median_max(&each_ms);
    let min_ms = each_ms.iter().copied().fold(f64::INFINITY, f64::min);
    Ok((recipients, Passes { warmup_ms: round1(warmup_ms), min_ms: round1(min_ms), median_ms, max_ms, each_ms }))
}

fn median_max(ms: &[f64]) -> (f64, f64) {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let median = match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    (round1(median), round1(v.last().copied().unwrap_or(0.0)))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

async fn counts(
    db: &Db,
    org: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Counts> {
    let mut tx = db.begin_read().await?;
    let mut n = async |sql: &'static str, times: &[DateTime<Utc>]| -> anyhow::Result<i64> {
        let v = crate::run!(&mut tx, |c| {
            let mut q = sqlx::query_scalar::<_, i64>(sql).bind(org);
            for t in times {
                q = q.bind(*t);
            }
            q.fetch_one(c).await
        })?;
        Ok(v)
    };
    let counts = Counts {
        teams: n("SELECT COUNT(*) FROM teams WHERE org_id = $1", &[]).await?,
        users: n("SELECT COUNT(*) FROM users WHERE org_id = $1", &[]).await?,
        customers: n("SELECT COUNT(*) FROM customers WHERE org_id = $1", &[]).await?,
        activities: n("SELECT COUNT(*) FROM activities WHERE org_id = $1", &[]).await?,
        deals: n("SELECT COUNT(*) FROM deals WHERE org_id = $1", &[]).await?,
        deals_won: n("SELECT COUNT(*) FROM deals WHERE org_id = $1 AND status = 'won'", &[]).await?,
        deals_lost: n("SELECT COUNT(*) FROM deals WHERE org_id = $1 AND status = 'lost'", &[]).await?,
        stage_history: n("SELECT COUNT(*) FROM deal_stage_history WHERE org_id = $1", &[]).await?,
        tasks: n("SELECT COUNT(*) FROM tasks WHERE org_id = $1", &[]).await?,
        tasks_open_overdue: n(
            "SELECT COUNT(*) FROM tasks WHERE org_id = $1 AND status = 'open' AND due_at < $2",
            &[now],
        )
        .await?,
        leads: n("SELECT COUNT(*) FROM leads WHERE org_id = $1", &[]).await?,
        period_activities: n(
            "SELECT COUNT(*) FROM activities WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
            &[from, to],
        )
        .await?,
        period_new_customers: n(
            "SELECT COUNT(*) FROM customers WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
            &[from, to],
        )
        .await?,
        period_stage_moves: n(
            "SELECT COUNT(*) FROM deal_stage_history
             WHERE org_id = $1 AND moved_at >= $2 AND moved_at < $3 AND from_stage IS NOT NULL",
            &[from, to],
        )
        .await?,
    };
    tx.commit().await?;
    Ok(counts)
}

// ---------------------------------------------------------------------------------------------
// Generation

/// A tiny deterministic generator (SplitMix64): the same data on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An element of a non-empty constant table.
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    /// An element of a non-empty constant table of (value, weight).
    fn weighted<T: Copy>(&mut self, xs: &[(T, u32)]) -> T {
        let total: u64 = xs.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut r = self.below(total);
        for (x, w) in xs {
            if r < u64::from(*w) {
                return *x;
            }
            r -= u64::from(*w);
        }
        xs[xs.len() - 1].0
    }
}

const CITIES: &[&str] = &[
    "青岛", "济南", "烟台", "潍坊", "上海", "杭州", "宁波", "苏州", "南京", "无锡", "合肥", "广州", "深圳", "佛山",
    "东莞", "成都", "武汉", "西安", "郑州", "天津",
];
const BRAND_CHARS: &[&str] = &[
    "海", "华", "恒", "瑞", "鑫", "盛", "达", "通", "宏", "泰", "德", "信", "安", "新", "隆", "丰", "嘉", "联", "创",
    "金", "永", "康", "明", "佳", "昌", "源", "正", "天", "众", "博", "锦", "辰", "启", "拓", "卓", "远", "航", "领",
    "智", "晟",
];
const INDUSTRIES: &[&str] = &[
    "科技",
    "机械",
    "电子",
    "化工",
    "食品",
    "物流",
    "贸易",
    "建材",
    "医药",
    "纺织",
    "环保",
    "能源",
    "汽车部件",
    "包装",
    "家居",
    "精密",
    "智能装备",
    "新材料",
    "电气",
    "仪器",
];
const LEGAL_FORMS: &[&str] = &["有限公司", "股份有限公司", "集团有限公司", "有限责任公司"];
const CUSTOMER_SOURCES: &[(&str, u32)] =
    &[("展会", 20), ("转介绍", 25), ("官网", 20), ("陌拜", 15), ("百度推广", 10), ("老客户", 10)];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马",
    "罗",
];
const GIVEN_NAMES: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "华",
    "慧", "建国", "志强", "晓东", "海燕",
];
const KINDS: &[(&str, u32)] = &[("visit", 36), ("call", 30), ("wechat", 18), ("meeting", 8), ("note", 8)];
const CONTENTS: &[&str] = &[
    "聊了二期需求，对方关注交付周期",
    "送了样品，技术部反馈不错",
    "报价后对方觉得偏贵，需要再沟通",
    "见了采购经理，约下周看方案",
    "电话确认了付款节点",
    "参观了工厂，了解产线改造计划",
    "对方老板出差，改约下周",
    "发了新版方案和案例",
    "讨论了售后服务条款",
    "对方在比较两家供应商",
];
const NEXT_STEPS: &[&str] = &["下周发方案", "约技术交流", "周五前报价", "安排试用", "等对方内部评审"];
const PROJECTS: &[&str] = &[
    "产线升级",
    "仓储系统",
    "检测设备",
    "MES 系统",
    "安防集成",
    "能耗管理平台",
    "ERP 实施",
    "自动化改造",
    "数据中心运维",
    "视觉检测",
    "冷链物流方案",
    "包装线",
    "环保设备",
    "机器人工作站",
];
const PROJECT_PREFIXES: &[&str] = &["", "", "二期", "三期", "华东区", "年度", "新厂区"];
const LOST_REASONS: &[(&str, u32)] = &[
    ("price", 30),
    ("competitor", 25),
    ("no_budget", 15),
    ("timing", 10),
    ("unresponsive", 8),
    ("missing_features", 5),
    ("no_decision_maker", 3),
    ("poor_fit", 2),
    ("other", 2),
];
const TASK_VERBS: &[&str] = &["回访", "发报价单给", "约见", "寄样品给", "确认合同条款：", "催款：", "跟进"];
const TASK_ORIGINS: &[(&str, u32)] = &[("manual", 50), ("activity", 30), ("rule", 15), ("lead", 5)];
const LEAD_SOURCES: &[(&str, u32)] =
    &[("官网表单", 25), ("展会", 15), ("百度推广", 20), ("抖音", 10), ("转介绍", 10), ("电话营销", 10), ("公众号", 10)];
const LEAD_STATUSES: &[(&str, u32)] = &[
    ("new", 8),
    ("pool", 10),
    ("assigned", 17),
    ("contacted", 25),
    ("qualified", 12),
    ("converted", 10),
    ("discarded", 18),
];

fn person_name(i: usize) -> String {
    format!("{}{}", SURNAMES[i % SURNAMES.len()], GIVEN_NAMES[(i / SURNAMES.len() + i * 7) % GIVEN_NAMES.len()])
}

fn company_name(rng: &mut Rng) -> (String, &'static str, &'static str) {
    let city = rng.pick(CITIES);
    let industry = rng.pick(INDUSTRIES);
    let chars = if rng.chance(0.7) { 3 } else { 2 };
    let brand: String = (0..chars).map(|_| rng.pick(BRAND_CHARS)).collect();
    (format!("{city}{brand}{industry}{}", rng.pick(LEGAL_FORMS)), city, industry)
}

/// Local dates and times in the org's zone.
struct Cal {
    tz: Tz,
    now: DateTime<Utc>,
    today: NaiveDate,
}

impl Cal {
    fn new(now: DateTime<Utc>, tz: Tz) -> Self {
        Self { tz, now, today: now.with_timezone(&tz).date_naive() }
    }

    fn at(&self, day: NaiveDate, secs: u64) -> DateTime<Utc> {
        let t = NaiveTime::from_num_seconds_from_midnight_opt(secs.min(86_399) as u32, 0).unwrap_or(NaiveTime::MIN);
        self.tz.from_local_datetime(&day.and_time(t)).earliest().map_or(self.now, |d| d.with_timezone(&Utc))
    }

    fn day_of(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    fn days_ago(&self, n: u64) -> NaiveDate {
        self.today.checked_sub_days(Days::new(n)).unwrap_or(self.today)
    }

    fn plus_days(day: NaiveDate, n: u64) -> NaiveDate {
        day.checked_add_days(Days::new(n)).unwrap_or(day)
    }

    /// Monday to Friday, and yesterday whatever its weekday: the digest's day must look like a
    /// normal working day even when the bench runs on a Sunday or a Monday.
    fn is_work_day(&self, day: NaiveDate) -> bool {
        day == self.days_ago(1) || !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`-th work day after `day` (so later dates do not pile up on Mondays).
    fn add_work_days(&self, mut day: NaiveDate, n: u64) -> NaiveDate {
        let mut left = n;
        while left > 0 {
            day = Self::plus_days(day, 1);
            if self.is_work_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// A time in office hours (09:00–18:30) on `day`, or on a random weekday of its week when
    /// `day` is not a work day (which may be earlier: only for times nothing else must follow).
    fn work_time(&self, rng: &mut Rng, day: NaiveDate) -> DateTime<Utc> {
        let day = if self.is_work_day(day) {
            day
        } else {
            let monday = day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())));
            Self::plus_days(monday.unwrap_or(day), rng.below(5))
        };
        self.at(day, 9 * 3600 + rng.below(9 * 3600 + 1800))
    }
}

/// The customers as the later tables need them: index `i` is customer id `i + 1`.
struct Customers {
    created: Vec<DateTime<Utc>>,
    owner: Vec<i64>,
    name: Vec<String>,
}

impl Customers {
    /// A customer that existed at `t` (they are created in time order).
    fn existing_at(&self, rng: &mut Rng, t: DateTime<Utc>) -> usize {
        let k = self.created.partition_point(|c| *c <= t).max(1);
        rng.index(k)
    }
}

/// A column of a bulk insert.
enum Col {
    Int(Vec<i64>),
    OptInt(Vec<Option<i64>>),
    Text(Vec<String>),
    Str(Vec<&'static str>),
    OptText(Vec<Option<String>>),
    OptStr(Vec<Option<&'static str>>),
    Time(Vec<DateTime<Utc>>),
    OptTime(Vec<Option<DateTime<Utc>>>),
    OptDate(Vec<Option<NaiveDate>>),
}

impl Col {
    fn len(&self) -> usize {
        match self {
            Col::Int(v) => v.len(),
            Col::OptInt(v) => v.len(),
            Col::Text(v) => v.len(),
            Col::Str(v) => v.len(),
            Col::OptText(v) => v.len(),
            Col::OptStr(v) => v.len(),
            Col::Time(v) => v.len(),
            Col::OptTime(v) => v.len(),
            Col::OptDate(v) => v.len(),
        }
    }

    fn pg_array(&self) -> &'static str {
        match self {
            Col::Int(_) | Col::OptInt(_) => "int8[]",
            Col::Text(_) | Col::Str(_) | Col::OptText(_) | Col::OptStr(_) => "text[]",
            Col::Time(_) | Col::OptTime(_) => "timestamptz[]",
            Col::OptDate(_) => "date[]",
        }
    }

    fn bind_row<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
        r: usize,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        match self {
            Col::Int(v) => q.bind(v[r]),
            Col::OptInt(v) => q.bind(v[r]),
            Col::Text(v) => q.bind(v[r].as_str()),
            Col::Str(v) => q.bind(v[r]),
            Col::OptText(v) => q.bind(v[r].as_deref()),
            Col::OptStr(v) => q.bind(v[r]),
            Col::Time(v) => q.bind(v[r]),
            Col::OptTime(v) => q.bind(v[r]),
            Col::OptDate(v) => q.bind(v[r]),
        }
    }

    fn bind_slice<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        rows: std::ops::Range<usize>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        match self {
            Col::Int(v) => q.bind(&v[rows]),
            Col::OptInt(v) => q.bind(&v[rows]),
            Col::Text(v) => q.bind(&v[rows]),
            Col::Str(v) => q.bind(&v[rows]),
            Col::OptText(v) => q.bind(&v[rows]),
            Col::OptStr(v) => q.bind(&v[rows]),
            Col::Time(v) => q.bind(&v[rows]),
            Col::OptTime(v) => q.bind(&v[rows]),
            Col::OptDate(v) => q.bind(&v[rows]),
        }
    }
}

/// Inserts the rows held by `cols` (all the same length) into `table`: multi-row VALUES within
/// SQLite's variable limit, or one UNNEST per [`PG_ROWS_PER_STATEMENT`] rows on PostgreSQL.
async fn insert(tx: &mut Tx, table: &str, cols: &[(&str, Col)]) -> anyhow::Result<()> {
    let n = cols.first().map_or(0, |(_, c)| c.len());
    ensure!(cols.iter().all(|(_, c)| c.len() == n), "{table}: columns of different lengths");
    if n == 0 {
        return Ok(());
    }
    let names = cols.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
    match tx {
        Tx::Sqlite(t) => {
            let per = (SQLITE_MAX_VARIABLES / cols.len()).max(1);
            let tuple = format!("({})", vec!["?"; cols.len()].join(","));
            let sql_for =
                |rows: usize| format!("INSERT INTO {table} ({names}) VALUES {}", vec![tuple.as_str(); rows].join(","));
            let full = sql_for(per);
            let mut start = 0;
            while start < n {
                let end = (start + per).min(n);
                let sql = if end - start == per { full.clone() } else { sql_for(end - start) };
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for r in start..end {
                    for (_, c) in cols {
                        q = c.bind_row(q, r);
                    }
                }
                q.execute(&mut **t).await.with_context(|| format!("inserting into {table}"))?;
                start = end;
            }
        }
        Tx::Postgres(t) => {
            let arrays =
                cols.iter().enumerate().map(|(i, (_, c))| format!("${}::{}", i + 1, c.pg_array())).collect::<Vec<_>>();
            let sql = format!("INSERT INTO {table} ({names}) SELECT * FROM UNNEST({})", arrays.join(", "));
            let mut start = 0;
            while start < n {
                let end = (start + PG_ROWS_PER_STATEMENT).min(n);
                let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                for (_, c) in cols {
                    q = c.bind_slice(q, start..end);
                }
                q.execute(&mut **t).await.with_context(|| format!("inserting into {table}"))?;
                start = end;
            }
        }
    }
    Ok(())
}

/// Generates the bench org; returns its id. Appends each table's timing to `phases`.
async fn generate(db: &Db, sizes: &Sizes, now: DateTime<Utc>, phases: &mut Vec<Phase>) -> anyhow::Result<i64> {
    let tz: Tz = TZ.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let cal = Cal::new(now, tz);
    let mut rng = Rng(0x5EED_D16E_57B0_0C47);
    let mut phase = |what: &'static str, rows: usize, t: Instant| {
        let p = Phase { what, rows: rows as u64, seconds: round1(t.elapsed().as_secs_f64()) };
        match p.rows {
            0 => eprintln!("  {} in {:.1} s", p.what, p.seconds),
            n => eprintln!("  {} {n} in {:.1} s", p.what, p.seconds),
        }
        phases.push(p);
    };

    // The org, its stages, teams and people (a handful of rows: through the store).
    let t = Instant::now();
    let two_years_ago = now - Duration::days(730);
    let mut tx = db.begin().await?;
    let org = crm::orgs::create_org(&mut tx, ORG, TZ, Via::Cli, two_years_ago - Duration::days(30)).await?;
    let stages = crm::orgs::stages(&mut tx, org.id).await?;
    let open: Vec<(String, i64)> =
        stages.iter().filter(|s| s.outcome == DealStatus::Open).map(|s| (s.key.clone(), s.probability)).collect();
    let won = stages.iter().find(|s| s.outcome == DealStatus::Won).map(|s| (s.key.clone(), s.probability));
    let lost = stages.iter().find(|s| s.outcome == DealStatus::Lost).map(|s| (s.key.clone(), s.probability));
    let (Some(won), Some(lost), false) = (won, lost, open.is_empty()) else {
        anyhow::bail!("the org's stages lack an open, a won or a lost one");
    };
    let joined = two_years_ago - Duration::days(30);
    let add_user = async |tx: &mut Tx, handle: &str, name: &str, role: &'static str, team: Option<i64>| {
        crate::run!(tx, |c| sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (org_id, handle, name, role, team_id, active, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
        )
        .bind(org.id)
        .bind(handle)
        .bind(name)
        .bind(role)
        .bind(team)
        .bind(true)
        .bind(joined)
        .fetch_one(c)
        .await)
    };
    let mut reps = Vec::new();
    let teams = sizes.reps.div_ceil(REPS_PER_TEAM);
    let mut people = 0;
    for team in 0..teams {
        let team_id = crate::run!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
            "INSERT INTO teams (org_id, name, created_at) VALUES ($1, $2, $3) RETURNING id"
        )
        .bind(org.id)
        .bind(format!("销售{}组", team + 1))
        .bind(joined)
        .fetch_one(c)
        .await)?;
        add_user(&mut tx, &format!("manager{}", team + 1), &person_name(1000 + team), "manager", Some(team_id)).await?;
        people += 1;
        for i in team * REPS_PER_TEAM..((team + 1) * REPS_PER_TEAM).min(sizes.reps) {
            reps.push(add_user(&mut tx, &format!("rep{}", i + 1), &person_name(i), "rep", Some(team_id)).await?);
            people += 1;
        }
    }
    let admin = add_user(&mut tx, "admin", "管理员", "admin", None).await?;
    people += 1;
    // Monthly targets for every rep, the last year through next month (the forecast reads them).
    let (mut who, mut month, mut amount) = (Vec::new(), Vec::new(), Vec::new());
    let this_month = cal.today.with_day(1).unwrap_or(cal.today);
    for back in -1..12 {
        let m = if back < 0 {
            this_month.checked_add_months(chrono::Months::new(1))
        } else {
            this_month.checked_sub_months(chrono::Months::new(back as u32))
        }
        .unwrap_or(this_month);
        for rep in &reps {
            who.push(*rep);
            month.push(m.format("%Y-%m").to_string());
            amount.push((300_000 + rng.below(12) as i64 * 100_000) * 100);
        }
    }
    let k = who.len();
    let set_at = joined;
    insert(
        &mut tx,
        "sales_targets",
        &[
            ("org_id", Col::Int(vec![org.id; k])),
            ("user_id", Col::Int(who)),
            ("month", Col::Text(month)),
            ("amount_fen", Col::Int(amount)),
            ("set_by", Col::OptInt(vec![Some(admin); k])),
            ("set_at", Col::Time(vec![set_at; k])),
        ],
    )
    .await?;
    tx.commit().await?;
    phase("users", people, t);
    phase("sales targets", k, t);

    let customers = gen_customers(db, &cal, &mut rng, org.id, &reps, sizes, &mut phase).await?;
    gen_activities(db, &cal, org.id, &customers, sizes.activities, &mut phase).await?;
    let t = Instant::now();
    let (deals, moves) = gen_deals(db, &cal, &mut rng, org.id, &customers, sizes.deals, &open, &won, &lost).await?;
    phase("deals", deals, t);
    phase("stage moves", moves, t);
    let t = Instant::now();
    gen_tasks(db, &cal, &mut rng, org.id, &customers, sizes.tasks).await?;
    phase("tasks", sizes.tasks, t);
    let t = Instant::now();
    gen_leads(db, &cal, &mut rng, org.id, &reps, &customers, sizes.leads).await?;
    phase("leads", sizes.leads, t);

    // Fresh statistics, as after a load in production (SQLite's planner reads sqlite_stat1; on
    // PostgreSQL VACUUM also sets the visibility map that index-only scans rely on).
    let t = Instant::now();
    match db {
        Db::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(|_| ())?,
        Db::Postgres(p) => {
            // Explicit ids were given: move the identity sequences past them.
            for table in ["customers", "deals"] {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                );
                sqlx::query(AssertSqlSafe(sql)).execute(p).await?;
            }
            sqlx::query("VACUUM ANALYZE").execute(p).await.map(|_| ())?
        }
    }
    phase("ANALYZE", 0, t);
    Ok(org.id)
}

/// Customers in creation order over the last two years, each owned by a rep; `last_contacted_at`
/// is their latest generated activity (a first pass over the activity stream).
async fn gen_customers(
    db: &Db,
    cal: &Cal,
    rng: &mut Rng,
    org_id: i64,
    reps: &[i64],
    sizes: &Sizes,
    phase: &mut impl FnMut(&'static str, usize, Instant),
) -> anyhow::Result<Customers> {
    let t = Instant::now();
    let n = sizes.customers;
    let span = Duration::days(730).num_seconds();
    let step = (span / i64::try_from(n)?).max(1);
    let start = cal.now - Duration::days(730);
    let mut c = Customers { created: Vec::with_capacity(n), owner: Vec::with_capacity(n), name: Vec::with_capacity(n) };
    for i in 0..n {
        let at = start + Duration::seconds(i as i64 * step + rng.below(step as u64) as i64);
        c.created.push(at.min(cal.now - Duration::minutes(1)));
        c.owner.push(reps[rng.index(reps.len())]);
    }
    let last = ActivityStream::new(cal, &c, sizes.activities).last_contacts(c.created.len());
    let mut seen = HashSet::with_capacity(n);
    let mut tx = db.begin().await?;
    let mut i = 0;
    while i < n {
        let end = (i + ROWS_PER_CHUNK).min(n);
        let mut cols = CustomerCols::default();
        // `k` indexes the parallel vectors of `c` and `last`.
        #[allow(clippy::needless_range_loop)]
        for k in i..end {
            // Names are unique per org once normalised: draw again on a clash, then number it.
            let (mut name, mut city, mut industry) = company_name(rng);
            let mut norm = crm::matching::normalize_name(&name);
            let mut tries = 0;
            while seen.contains(&norm) {
                tries += 1;
                (name, city, industry) = company_name(rng);
                if tries > 20 {
                    name = format!("{city}{}{}{industry}有限公司", rng.pick(BRAND_CHARS), k + 1);
                }
                norm = crm::matching::normalize_name(&name);
            }
            seen.insert(norm.clone());
            let (pinyin, initials) = crm::matching::pinyin_keys(&norm);
            let created = c.created[k];
            let contacted = last[k].unwrap_or_else(|| {
                let quiet = (cal.now - created).num_seconds().clamp(1, 90 * 86_400);
                created + Duration::seconds(rng.below(quiet as u64) as i64)
            });
            cols.id.push(k as i64 + 1);
            cols.name.push(name.clone());
            cols.norm.push(norm);
            cols.pinyin.push(pinyin);
            cols.initials.push(initials);
            cols.industry.push(Some(industry));
            cols.region.push(Some(format!("{city}市")));
            cols.source.push(Some(rng.weighted(CUSTOMER_SOURCES)));
            cols.grade.push(Some(rng.weighted(&[("A", 20), ("B", 40), ("C", 40)])));
            cols.owner.push(c.owner[k]);
            cols.contacted.push(Some(contacted));
            cols.created.push(created);
            cols.updated.push(contacted.max(created));
            c.name.push(name);
        }
        insert(&mut tx, "customers", &cols.into_cols(org_id)).await?;
        i = end;
    }
    tx.commit().await?;
    phase("customers", n, t);
    Ok(c)
}

#[derive(Default)]
struct CustomerCols {
    id: Vec<i64>,
    name: Vec<String>,
    norm: Vec<String>,
    pinyin: Vec<String>,
    initials: Vec<String>,
    industry: Vec<Option<&'static str>>,
    region: Vec<Option<String>>,
    source: Vec<Option<&'static str>>,
    grade: Vec<Option<&'static str>>,
    owner: Vec<i64>,
    contacted: Vec<Option<DateTime<Utc>>>,
    created: Vec<DateTime<Utc>>,
    updated: Vec<DateTime<Utc>>,
}

impl CustomerCols {
    fn into_cols(self, org_id: i64) -> Vec<(&'static str, Col)> {
        let n = self.id.len();
        vec![
            ("id", Col::Int(self.id)),
            ("org_id", Col::Int(vec![org_id; n])),
            ("name", Col::Text(self.name)),
            ("name_norm", Col::Text(self.norm)),
            ("name_pinyin", Col::Text(self.pinyin)),
            ("name_initials", Col::Text(self.initials)),
            ("industry", Col::OptStr(self.industry)),
            ("region", Col::OptText(self.region)),
            ("source", Col::OptStr(self.source)),
            ("grade", Col::OptStr(self.grade)),
            ("owner_id", Col::OptInt(self.owner.into_iter().map(Some).collect())),
            ("last_contacted_at", Col::OptTime(self.contacted)),
            ("created_at", Col::Time(self.created)),
            ("updated_at", Col::Time(self.updated)),
        ]
    }
}

/// One generated activity.
struct Act {
    customer: usize,
    kind: &'static str,
    at: DateTime<Utc>,
}

/// The activities, day by day in time order: work days of the last 365 days plus yesterday
/// whatever its weekday (the digest's day must look like a normal one), each holding about the
/// same share (±15 %), at office hours; each on a customer that existed by then, by its owner.
/// Deterministic, so the customers' pass and the insert pass see the same stream.
struct ActivityStream<'a> {
    cal: &'a Cal,
    customers: &'a Customers,
    rng: Rng,
    /// (day, how many)
    days: Vec<(NaiveDate, usize)>,
}

impl<'a> ActivityStream<'a> {
    fn new(cal: &'a Cal, customers: &'a Customers, total: usize) -> Self {
        let mut rng = Rng(0xAC71_0171_E500_0001);
        let yesterday = cal.days_ago(1);
        let days: Vec<NaiveDate> = (1..=365).rev().map(|n| cal.days_ago(n)).filter(|d| cal.is_work_day(*d)).collect();
        let weights: Vec<f64> =
            days.iter().map(|d| if *d == yesterday { 1.0 } else { 0.85 + 0.3 * rng.unit() }).collect();
        let sum: f64 = weights.iter().sum();
        // Rounded cumulative shares, so the counts add up to `total` exactly.
        let mut acc = 0.0;
        let mut prev = 0usize;
        let mut out = Vec::with_capacity(days.len());
        for (i, (d, w)) in days.iter().zip(&weights).enumerate() {
            acc += w;
            let upto =
                if i + 1 == days.len() { total } else { (((total as f64) * acc / sum).round() as usize).min(total) };
            out.push((*d, upto.saturating_sub(prev)));
            prev = prev.max(upto);
        }
        Self { cal, customers, rng, days: out }
    }

    /// The activities of day `i` (of `self.days`), in time order.
    fn day(&mut self, i: usize) -> Vec<Act> {
        let (day, count) = self.days[i];
        let mut secs: Vec<u64> = (0..count).map(|_| 8 * 3600 + 1800 + self.rng.below(11 * 3600)).collect();
        secs.sort_unstable();
        secs.into_iter()
            .map(|s| {
                let at = self.cal.at(day, s);
                Act { customer: self.customers.existing_at(&mut self.rng, at), kind: self.rng.weighted(KINDS), at }
            })
            .collect()
    }

    /// Each customer's latest activity (the first pass).
    fn last_contacts(mut self, customers: usize) -> Vec<Option<DateTime<Utc>>> {
        let mut last = vec![None; customers];
        for i in 0..self.days.len() {
            for a in self.day(i) {
                // Days come in order: the latest so far is the latest.
                last[a.customer] = Some(a.at);
            }
        }
        last
    }
}

async fn gen_activities(
    db: &Db,
    cal: &Cal,
    org_id: i64,
    customers: &Customers,
    total: usize,
    phase: &mut impl FnMut(&'static str, usize, Instant),
) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut stream = ActivityStream::new(cal, customers, total);
    let mut extra = Rng(0xC0_47E7_7000_0002);
    let mut cols = ActivityCols::default();
    let mut done = 0;
    for i in 0..stream.days.len() {
        for a in stream.day(i) {
            cols.customer.push(a.customer as i64 + 1);
            cols.user.push(customers.owner[a.customer]);
            cols.kind.push(a.kind);
            cols.at.push(a.at);
            cols.content.push(extra.pick(CONTENTS));
            cols.next_step.push(extra.chance(0.3).then(|| extra.pick(NEXT_STEPS)));
            cols.created.push(a.at + Duration::seconds(extra.below(7200) as i64));
        }
        if cols.at.len() >= ROWS_PER_CHUNK || i + 1 == stream.days.len() {
            done += cols.at.len();
            let mut tx = db.begin().await?;
            insert(&mut tx, "activities", &std::mem::take(&mut cols).into_cols(org_id)).await?;
            tx.commit().await?;
            if total >= 10 * ROWS_PER_CHUNK {
                eprintln!("    {done} activities…");
            }
        }
    }
    phase("activities", done, t);
    Ok(())
}

#[derive(Default)]
struct ActivityCols {
    customer: Vec<i64>,
    user: Vec<i64>,
    kind: Vec<&'static str>,
    at: Vec<DateTime<Utc>>,
    content: Vec<&'static str>,
    next_step: Vec<Option<&'static str>>,
    created: Vec<DateTime<Utc>>,
}

impl ActivityCols {
    fn into_cols(self, org_id: i64) -> Vec<(&'static str, Col)> {
        let n = self.at.len();
        vec![
            ("org_id", Col::Int(vec![org_id; n])),
            ("customer_id", Col::Int(self.customer)),
            ("user_id", Col::Int(self.user)),
            ("kind", Col::Str(self.kind)),
            ("occurred_at", Col::Time(self.at)),
            ("content", Col::Str(self.content)),
            ("next_step", Col::OptStr(self.next_step)),
            ("created_at", Col::Time(self.created)),
        ]
    }
}

/// One stage history row before insertion.
struct Move {
    deal_id: i64,
    from: Option<usize>,
    to: usize,
    at: DateTime<Utc>,
    by: i64,
}

/// Deals created over the last two years, each with its stage history: created at the first (or
/// second) open stage, moving forward every 2–18 work days, sometimes skipping a stage, some moving
/// back once; about 20 % won, 20 % lost (with a reason), the rest open, as far as their history
/// fits before now. Returns (deals, stage history rows).
#[allow(clippy::too_many_arguments)]
async fn gen_deals(
    db: &Db,
    cal: &Cal,
    rng: &mut Rng,
    org_id: i64,
    customers: &Customers,
    n: usize,
    open: &[(String, i64)],
    won: &(String, i64),
    lost: &(String, i64),
) -> anyhow::Result<(usize, usize)> {
    if n == 0 {
        return Ok((0, 0));
    }
    // Stage indexes: 0..open.len() are the open stages, then won, then lost.
    let (won_i, lost_i) = (open.len(), open.len() + 1);
    let stage_key = |i: usize| {
        if i == won_i {
            &won.0
        } else if i == lost_i {
            &lost.0
        } else {
            &open[i].0
        }
    };
    let stage_prob = |i: usize| {
        if i == won_i {
            won.1
        } else if i == lost_i {
            lost.1
        } else {
            open[i].1
        }
    };
    let span = Duration::days(730).num_seconds();
    let step = (span / i64::try_from(n)?).max(1);
    let start = cal.now - Duration::days(730);
    let last_open = open.len() - 1;
    let mut moves: Vec<Move> = Vec::with_capacity(n * 4);
    let mut d = DealCols::default();
    for j in 0..n {
        let id = j as i64 + 1;
        let linear = start + Duration::seconds(j as i64 * step + rng.below(step as u64) as i64);
        let created = cal.work_time(rng, cal.day_of(linear)).min(cal.now - Duration::hours(1));
        let customer = customers.existing_at(rng, created);
        let owner = customers.owner[customer];
        // Where the deal is headed: won, lost, or staying open (None).
        let target = rng.weighted(&[(Some(won_i), 22), (Some(lost_i), 22), (None, 56)]);
        let last = if target == Some(won_i) { last_open } else { rng.index(open.len()) };
        let mut cur = if last > 0 && rng.chance(0.15) { 1 } else { 0 };
        let mut at = created;
        moves.push(Move { deal_id: id, from: None, to: cur, at, by: owner });
        let mut back = last >= 2 && rng.chance(0.12);
        let mut reached = true;
        let step_on = |rng: &mut Rng, at: &mut DateTime<Utc>| {
            let day = cal.add_work_days(cal.day_of(*at), 2 + rng.below(17));
            let next = cal.work_time(rng, day);
            if next >= cal.now {
                return false;
            }
            *at = next;
            true
        };
        while cur < last {
            if !step_on(rng, &mut at) {
                reached = false;
                break;
            }
            let next = if back && cur >= 2 && rng.chance(0.5) {
                back = false;
                cur - 1
            } else if cur + 2 <= last && rng.chance(0.15) {
                cur + 2
            } else {
                cur + 1
            };
            moves.push(Move { deal_id: id, from: Some(cur), to: next, at, by: owner });
            cur = next;
        }
        let mut closed = None;
        if let (true, Some(target)) = (reached, target)
            && step_on(rng, &mut at)
        {
            moves.push(Move { deal_id: id, from: Some(cur), to: target, at, by: owner });
            cur = target;
            closed = Some(at);
        }
        let amount_yuan = (10_000.0 * 200f64.powf(rng.unit()) / 1_000.0).round() as i64 * 1_000;
        let expected = match closed {
            Some(t) => cal.day_of(t),
            // Open deals expect to close from two months ago to three months ahead.
            None => {
                let d = cal.days_ago(60);
                Cal::plus_days(d, rng.below(151)).max(Cal::plus_days(cal.day_of(created), 7))
            }
        };
        d.id.push(id);
        d.customer.push(customer as i64 + 1);
        d.owner.push(owner);
        d.title.push(format!("{}{}", rng.pick(PROJECT_PREFIXES), rng.pick(PROJECTS)));
        d.amount.push(amount_yuan.clamp(10_000, 2_000_000) * 100);
        d.stage.push(stage_key(cur).clone());
        d.probability.push(stage_prob(cur));
        d.expected.push(Some(expected));
        d.status.push(match cur {
            i if i == won_i => "won",
            i if i == lost_i => "lost",
            _ => "open",
        });
        d.lost_reason.push((cur == lost_i).then(|| rng.weighted(LOST_REASONS)));
        d.closed.push(closed);
        d.created.push(created);
        d.updated.push(at);
    }
    let mut tx = db.begin().await?;
    insert(&mut tx, "deals", &d.into_cols(org_id)).await?;
    // History in time order, as the app appends it.
    moves.sort_by_key(|m| (m.at, m.deal_id));
    let total_moves = moves.len();
    for chunk in moves.chunks(ROWS_PER_CHUNK) {
        let k = chunk.len();
        insert(
            &mut tx,
            "deal_stage_history",
            &[
                ("org_id", Col::Int(vec![org_id; k])),
                ("deal_id", Col::Int(chunk.iter().map(|m| m.deal_id).collect())),
                ("from_stage", Col::OptText(chunk.iter().map(|m| m.from.map(|f| stage_key(f).clone())).collect())),
                ("to_stage", Col::Text(chunk.iter().map(|m| stage_key(m.to).clone()).collect())),
                ("moved_at", Col::Time(chunk.iter().map(|m| m.at).collect())),
                ("moved_by", Col::OptInt(chunk.iter().map(|m| Some(m.by)).collect())),
            ],
        )
        .await?;
    }
    // As the app keeps it: when each deal entered its current stage.
    let backfill = "UPDATE deals SET stage_entered_at = COALESCE(
             (SELECT MAX(h.moved_at) FROM deal_stage_history h WHERE h.deal_id = deals.id AND h.to_stage = deals.stage),
             created_at) WHERE org_id = $1";
    match &mut tx {
        Tx::Sqlite(t) => sqlx::query(backfill).bind(org_id).execute(&mut **t).await.map(|_| ())?,
        Tx::Postgres(t) => sqlx::query(backfill).bind(org_id).execute(&mut **t).await.map(|_| ())?,
    }
    tx.commit().await?;
    Ok((n, total_moves))
}

#[derive(Default)]
struct DealCols {
    id: Vec<i64>,
    customer: Vec<i64>,
    owner: Vec<i64>,
    title: Vec<String>,
    amount: Vec<i64>,
    stage: Vec<String>,
    probability: Vec<i64>,
    expected: Vec<Option<NaiveDate>>,
    status: Vec<&'static str>,
    lost_reason: Vec<Option<&'static str>>,
    closed: Vec<Option<DateTime<Utc>>>,
    created: Vec<DateTime<Utc>>,
    updated: Vec<DateTime<Utc>>,
}

impl DealCols {
    fn into_cols(self, org_id: i64) -> Vec<(&'static str, Col)> {
        let n = self.id.len();
        vec![
            ("id", Col::Int(self.id)),
            ("org_id", Col::Int(vec![org_id; n])),
            ("customer_id", Col::Int(self.customer)),
            ("owner_id", Col::Int(self.owner)),
            ("title", Col::Text(self.title)),
            ("amount_fen", Col::Int(self.amount)),
            ("currency", Col::Str(vec!["CNY"; n])),
            ("stage", Col::Text(self.stage)),
            ("probability", Col::Int(self.probability)),
            ("expected_close", Col::OptDate(self.expected)),
            ("status", Col::Str(self.status)),
            ("lost_reason", Col::OptStr(self.lost_reason)),
            ("closed_at", Col::OptTime(self.closed)),
            ("created_at", Col::Time(self.created)),
            ("updated_at", Col::Time(self.updated)),
        ]
    }
}

/// Tasks created over the last year, due 1–10 work days later: those due in the future are open
/// (with their reminder pending), most past ones done or cancelled, and about 15 % of those due
/// in the last 45 days still open: overdue.
async fn gen_tasks(
    db: &Db,
    cal: &Cal,
    rng: &mut Rng,
    org_id: i64,
    customers: &Customers,
    n: usize,
) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let span = Duration::days(365).num_seconds();
    let step = (span / i64::try_from(n)?).max(1);
    let start = cal.now - Duration::days(365);
    let mut tx = db.begin().await?;
    let mut i = 0;
    while i < n {
        let end = (i + ROWS_PER_CHUNK).min(n);
        let k = end - i;
        let (mut owner, mut title, mut due, mut customer) =
            (Vec::with_capacity(k), Vec::with_capacity(k), Vec::with_capacity(k), Vec::with_capacity(k));
        let (mut origin, mut status, mut completed, mut created, mut remind, mut reminded) = (
            Vec::with_capacity(k),
            Vec::with_capacity(k),
            Vec::with_capacity(k),
            Vec::with_capacity(k),
            Vec::with_capacity(k),
            Vec::with_capacity(k),
        );
        for j in i..end {
            let at = (start + Duration::seconds(j as i64 * step + rng.below(step as u64) as i64)).min(cal.now);
            let c = customers.existing_at(rng, at);
            let due_day = cal.add_work_days(cal.day_of(at), 1 + rng.below(10));
            let due_at = cal.work_time(rng, due_day);
            let st = if due_at >= cal.now || (due_at > cal.now - Duration::days(45) && rng.chance(0.15)) {
                "open"
            } else if rng.chance(0.92) {
                "done"
            } else {
                "cancelled"
            };
            owner.push(customers.owner[c]);
            title.push(format!("{}{}", rng.pick(TASK_VERBS), customers.name[c]));
            due.push(due_at);
            customer.push(Some(c as i64 + 1));
            origin.push(rng.weighted(TASK_ORIGINS));
            status.push(st);
            completed.push((st == "done").then(|| at + (due_at - at) / 2));
            created.push(at);
            // A reminder is pending until it fires; past ones have fired.
            let pending = st == "open" && due_at >= cal.now;
            remind.push(pending.then_some(due_at));
            reminded.push((!pending).then_some(due_at));
        }
        insert(
            &mut tx,
            "tasks",
            &[
                ("org_id", Col::Int(vec![org_id; k])),
                ("owner_id", Col::Int(owner)),
                ("title", Col::Text(title)),
                ("due_at", Col::Time(due)),
                ("customer_id", Col::OptInt(customer)),
                ("origin", Col::Str(origin)),
                ("status", Col::Str(status)),
                ("completed_at", Col::OptTime(completed)),
                ("created_at", Col::Time(created)),
                ("remind_at", Col::OptTime(remind)),
                ("reminded_at", Col::OptTime(reminded)),
            ],
        )
        .await?;
        i = end;
    }
    tx.commit().await?;
    Ok(())
}

/// Leads received over the last year from various sources, in every status: new and pool ones
/// unowned, the rest assigned to a rep; contacted and converted ones with their times.
async fn gen_leads(
    db: &Db,
    cal: &Cal,
    rng: &mut Rng,
    org_id: i64,
    reps: &[i64],
    customers: &Customers,
    n: usize,
) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let span = Duration::days(365).num_seconds();
    let step = (span / i64::try_from(n)?).max(1);
    let start = cal.now - Duration::days(365);
    let mut tx = db.begin().await?;
    let mut i = 0;
    while i < n {
        let end = (i + ROWS_PER_CHUNK).min(n);
        let mut l = LeadCols::default();
        for j in i..end {
            let created = (start + Duration::seconds(j as i64 * step + rng.below(step as u64) as i64)).min(cal.now);
            let (company, city, industry) = company_name(rng);
            let norm = crm::matching::normalize_name(&company);
            // Unique mobile numbers: one lead per phone, as the intake's dedupe keeps it.
            let phone = format!("1{}{:09}", 3 + j % 7, (j as u64 * 7_919) % 1_000_000_000);
            let phone_norm = crm::leads::normalize_phone(&phone).unwrap_or_else(|| phone.clone());
            let mut status = rng.weighted(LEAD_STATUSES);
            let owner = (!matches!(status, "new" | "pool")).then(|| reps[rng.index(reps.len())]);
            let assigned = owner.map(|_| created + Duration::seconds(rng.below(600) as i64));
            let mut contacted = None;
            let mut converted = None;
            if let (Some(a), true) = (assigned, matches!(status, "contacted" | "qualified" | "converted")) {
                let t = a + Duration::seconds(3_600 + rng.below(3 * 86_400) as i64);
                if t < cal.now {
                    contacted = Some(t);
                } else {
                    status = "assigned";
                }
            }
            if status == "converted" {
                match contacted.map(|c| c + Duration::days(3 + rng.below(28) as i64)) {
                    Some(t) if t < cal.now => converted = Some(t),
                    _ => status = if contacted.is_some() { "qualified" } else { "assigned" },
                }
            }
            let updated =
                [Some(created), assigned, contacted, converted].into_iter().flatten().max().unwrap_or(created);
            l.dedupe.push(crm::leads::dedupe_key(Some(&phone_norm), &norm));
            l.company.push(company);
            l.norm.push(norm);
            l.contact.push(Some(person_name(j * 31 + 7)));
            l.phone.push(Some(phone));
            l.phone_norm.push(Some(phone_norm));
            l.source.push(Some(rng.weighted(LEAD_SOURCES)));
            l.region.push(Some(format!("{city}市")));
            l.industry.push(Some(industry));
            l.status.push(status);
            l.owner.push(owner);
            l.customer.push(converted.map(|t| customers.existing_at(rng, t - Duration::days(1)) as i64 + 1));
            l.created.push(created);
            l.updated.push(updated);
            l.reason.push(owner.map(|_| "规则：按区域轮转"));
            l.assigned.push(assigned);
            l.contacted.push(contacted);
            l.converted.push(converted);
        }
        insert(&mut tx, "leads", &l.into_cols(org_id)).await?;
        i = end;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Default)]
struct LeadCols {
    company: Vec<String>,
    norm: Vec<String>,
    contact: Vec<Option<String>>,
    phone: Vec<Option<String>>,
    phone_norm: Vec<Option<String>>,
    source: Vec<Option<&'static str>>,
    region: Vec<Option<String>>,
    industry: Vec<Option<&'static str>>,
    status: Vec<&'static str>,
    owner: Vec<Option<i64>>,
    dedupe: Vec<String>,
    customer: Vec<Option<i64>>,
    created: Vec<DateTime<Utc>>,
    updated: Vec<DateTime<Utc>>,
    reason: Vec<Option<&'static str>>,
    assigned: Vec<Option<DateTime<Utc>>>,
    contacted: Vec<Option<DateTime<Utc>>>,
    converted: Vec<Option<DateTime<Utc>>>,
}

impl LeadCols {
    fn into_cols(self, org_id: i64) -> Vec<(&'static str, Col)> {
        let n = self.company.len();
        vec![
            ("org_id", Col::Int(vec![org_id; n])),
            ("company", Col::Text(self.company)),
            ("company_norm", Col::Text(self.norm)),
            ("contact_name", Col::OptText(self.contact)),
            ("phone", Col::OptText(self.phone)),
            ("phone_norm", Col::OptText(self.phone_norm)),
            ("source", Col::OptStr(self.source)),
            ("region", Col::OptText(self.region)),
            ("industry", Col::OptStr(self.industry)),
            ("status", Col::Str(self.status)),
            ("owner_id", Col::OptInt(self.owner)),
            ("dedupe_key", Col::Text(self.dedupe)),
            ("customer_id", Col::OptInt(self.customer)),
            ("created_at", Col::Time(self.created)),
            ("updated_at", Col::Time(self.updated)),
            ("assign_reason", Col::OptStr(self.reason)),
            ("assigned_at", Col::OptTime(self.assigned)),
            ("contacted_at", Col::OptTime(self.contacted)),
            ("converted_at", Col::OptTime(self.converted)),
        ]
    }
}

/// Drops the PostgreSQL database named in `url` (the bench made it; nothing else should use it).
async fn drop_pg_database(url: &str) -> anyhow::Result<()> {
    let opts = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)?;
    let name = opts.get_database().context("the PostgreSQL URL names no database")?.to_string();
    ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name `{name}`: use letters, digits and _"
    );
    let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_with(opts.database("postgres")).await?;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&admin).await?;
    admin.close().await;
    Ok(())
}

/// A `/proc/self/status` figure (kB) in MiB; 0 where there is no procfs.
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| round1(kib / 1024.0))
}

/// Resets the peak RSS (VmHWM) to the current RSS (Linux: `5` into clear_refs), so the
/// measurement's peak is not the generator's.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Sizes {
        Sizes { reps: 10, customers: 200, activities: 2_000, deals: 100, tasks: 200, leads: 100 }
    }

    fn check(r: &Report) {
        let c = &r.counts;
        assert_eq!((c.teams, c.users), (1, 12), "one team of 10 reps with its manager, and an admin");
        assert_eq!(c.customers, 200);
        assert_eq!(c.activities, 2_000);
        assert_eq!(c.deals, 100);
        assert_eq!(c.tasks, 200);
        assert_eq!(c.leads, 100);
        assert!(c.stage_history >= 100, "every deal has its creation row");
        assert!(c.period_activities > 0, "yesterday holds activities");
        assert_eq!(r.recipients.len(), 2, "the manager and the admin");
        for rec in &r.recipients {
            assert!(rec.activities > 0, "{} got a digest without activities", rec.handle);
            assert!(rec.text_bytes > 0);
        }
        let p = r.passes.as_ref().expect("measured");
        assert_eq!(p.each_ms.len(), 1);
    }

    fn opts(database_url: Option<String>) -> Options {
        Options { database_url, sizes: small(), passes: 1, keep: false, only_generate: false, reuse: false }
    }

    #[tokio::test]
    async fn small_org_on_sqlite() {
        let r = run(opts(None)).await.expect("bench");
        check(&r);
        assert!(r.kept.is_none());
    }

    /// On a fresh database of the CHATCRM_TEST_PG server, dropped at the end.
    #[tokio::test]
    async fn small_org_on_postgres() {
        let Some(server) = std::env::var("CHATCRM_TEST_PG").ok().filter(|s| !s.is_empty()) else {
            eprintln!("skipped: CHATCRM_TEST_PG is not set");
            return;
        };
        let name = format!("chatcrm_test_{}", uuid::Uuid::new_v4().simple());
        let (base, query) = server.split_once('?').map_or((server.as_str(), None), |(b, q)| (b, Some(q)));
        let host_end = base.find("://").map_or(0, |i| i + 3);
        let host = base[host_end..].find('/').map_or(base, |i| &base[..host_end + i]);
        let url = format!("{host}/{name}{}", query.map_or(String::new(), |q| format!("?{q}")));
        let r = run(opts(Some(url))).await.expect("bench");
        check(&r);
    }
}
