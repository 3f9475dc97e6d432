//! `chatcrm bench leads-api`: lead intake through the JSON API, end to end.
//!
//! Starts the real server in-process on a fresh temporary SQLite file (or the given database), makes
//! an org with two teams of reps, two assignment rules (one round robin, one least loaded) and an
//! intake token, then POSTs `count` distinct leads to `/api/v1/leads` from `concurrency` clients,
//! each with its own `Idempotency-Key`. Reports leads/s, latency percentiles, and how many leads
//! the rules routed versus sent to the public pool; then checks the database holds exactly the
//! leads that were answered `201`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde::Serialize;

use crate::bench::Latency;
use crate::clock::Clock;
use crate::config::{DatabaseKind, Settings, redact_url};
use crate::crm::lead_rules::{NewRule, Strategy, Target};
use crate::crm::users::NewUser;
use crate::crm::{self, Actor, Ctx, Role, Via};
use crate::http::api_v1::Scope;
use crate::http::api_v1::auth::create_token;
use crate::startup::Application;
use crate::store::{Db, DbOptions};

/// The two rules and the share of leads each should take (the rest go to the pool).
pub const RULE_EAST: &str = "青岛制造业";
pub const RULE_NORTH: &str = "官网线索";

#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: a fresh temporary SQLite file, deleted afterwards. A PostgreSQL database is created
    /// when missing; the bench works in an org of its own, so existing data is left alone.
    pub database_url: Option<String>,
    pub count: u64,
    pub concurrency: usize,
}

/// Milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Ms {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub backend: &'static str,
    pub database: String,
    pub pool_connections: u32,
    pub count: u64,
    pub concurrency: usize,
    pub seconds: f64,
    pub leads_per_second: f64,
    pub latency_ms: Ms,
    /// Answered 201.
    pub created: u64,
    /// Answered 200 (a duplicate or an existing customer): should be 0, every lead is distinct.
    pub not_created: u64,
    /// Answered anything else, or not at all.
    pub errors: u64,
    /// The first few error answers.
    pub error_samples: Vec<String>,
    pub routed_by_rule: u64,
    pub to_pool: u64,
    pub by_rule: BTreeMap<String, u64>,
    /// Leads of the bench org in the database afterwards (should equal `created`).
    pub leads_stored: i64,
    /// Assignment notices queued in the outbox (should equal `routed_by_rule`).
    pub notices_queued: i64,
}

impl Report {
    pub fn summary(&self) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "bench leads-api on {} ({}), {} connections\n\
             {} leads, concurrency {}: {:.1} s, {:.0} leads/s\n\
             latency ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}\n\
             created {}, not created {}, errors {}\n\
             routed by rule {} ({}), to the pool {}\n\
             stored leads {}, assignment notices queued {}\n",
            self.backend,
            self.database,
            self.pool_connections,
            self.count,
            self.concurrency,
            self.seconds,
            self.leads_per_second,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            self.created,
            self.not_created,
            self.errors,
            self.routed_by_rule,
            self.by_rule.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "),
            self.to_pool,
            self.leads_stored,
            self.notices_queued,
        );
        for e in &self.error_samples {
            out.push_str(&format!("  error: {e}\n"));
        }
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

/// One answered request.
struct Sample {
    micros: u64,
    status: u16,
    /// `Some(rule)` when routed by a rule, `None` for the pool (201 only).
    rule: Option<Option<String>>,
    error: Option<String>,
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    ensure!((1..=10_000_000).contains(&opts.count), "--count must be between 1 and 10000000");
    ensure!((1..=1024).contains(&opts.concurrency), "--concurrency must be between 1 and 1024");
    crate::install_tls_provider();
    let (url, _temp) = match &opts.database_url {
        Some(u) => (u.clone(), TempFile(None)),
        None => {
            let path =
                std::env::temp_dir().join(format!("chatcrm-bench-leads-api-{}.db", uuid::Uuid::new_v4().simple()));
            (format!("sqlite://{}", path.display()), TempFile(Some(path)))
        }
    };
    let kind = DatabaseKind::of(&url).map_err(anyhow::Error::msg)?;
    if kind == DatabaseKind::Postgres {
        crate::bench::ensure_pg_database(&url, false).await?;
    }
    let mut settings = Settings { listen: "127.0.0.1:0".into(), ..Settings::default() };
    settings.schedule.enabled = false;
    settings.console_enabled = false;
    let db_opts = DbOptions { url: url.clone(), ..DbOptions::from_settings(&settings) };
    let db = Db::connect(&db_opts).await.context("cannot open the database")?;
    db.migrate().await?;
    let (org_id, token) = setup(&db).await?;

    let app = Application::build(settings, db.clone(), Clock::system()).await?;
    let addr = app.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(opts.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let endpoint = format!("http://{addr}/api/v1/leads");
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(opts.concurrency);
    for _ in 0..opts.concurrency {
        let (client, endpoint, next, token) = (client.clone(), endpoint.clone(), next.clone(), token.clone());
        let count = opts.count;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                samples.push(post_one(&client, &endpoint, &token, i).await);
            }
            samples
        }));
    }
    let mut samples = Vec::with_capacity(opts.count as usize);
    for w in workers {
        samples.extend(w.await.context("a client task failed")?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;

    let mut report = Report {
        backend: match kind {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
        },
        database: redact_url(&url),
        pool_connections: db_opts.max_connections,
        count: opts.count,
        concurrency: opts.concurrency,
        seconds,
        leads_per_second: 0.0,
        latency_ms: Ms { p50: 0.0, p90: 0.0, p99: 0.0, max: 0.0 },
        created: 0,
        not_created: 0,
        errors: 0,
        error_samples: Vec::new(),
        routed_by_rule: 0,
        to_pool: 0,
        by_rule: BTreeMap::new(),
        leads_stored: 0,
        notices_queued: 0,
    };
    let mut micros = Vec::with_capacity(samples.len());
    for s in samples {
        micros.push(s.micros);
        match (s.status, s.rule) {
            (201, Some(Some(rule))) => {
                report.created += 1;
                report.routed_by_rule += 1;
                *report.by_rule.entry(rule).or_default() += 1;
            }
            (201, _) => {
                report.created += 1;
                report.to_pool += 1;
            }
            (200, _) => report.not_created += 1,
            _ => {
                report.errors += 1;
                if report.error_samples.len() < 5 {
                    report.error_samples.push(s.error.unwrap_or_else(|| format!("HTTP {}", s.status)));
                }
            }
        }
    }
    let lat = Latency::of(micros, seconds);
    let ms = |us: u64| (us as f64 / 100.0).round() / 10.0;
    report.leads_per_second = (report.created as f64 / seconds.max(1e-9) * 10.0).round() / 10.0;
    report.latency_ms = Ms { p50: ms(lat.p50_us), p90: ms(lat.p90_us), p99: ms(lat.p99_us), max: ms(lat.max_us) };
    report.leads_stored = count_for_org(&db, "SELECT COUNT(*) FROM leads WHERE org_id = $1", org_id).await?;
    report.notices_queued = count_for_org(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE org_id = $1 AND dedupe_key LIKE 'lead-assigned:%'",
        org_id,
    )
    .await?;
    db.close().await;
    Ok(report)
}

/// The lead `i`: four in ten match the first rule, three in ten the second, the rest no rule.
fn lead_body(i: u64) -> serde_json::Value {
    let (region, industry, source) = match i % 10 {
        0..=3 => ("青岛市南区", "制造业", "展会"),
        4..=6 => ("北京市海淀区", "软件", "website"),
        _ => ("上海市浦东新区", "零售", "转介绍"),
    };
    serde_json::json!({
        "company": format!("压测客户{i:07}有限公司"),
        "contact_name": format!("联系人{i}"),
        "phone": format!("139{i:08}"),
        "region": region,
        "industry": industry,
        "source": source,
        "tags": ["bench"],
    })
}

async fn post_one(client: &reqwest::Client, endpoint: &str, token: &str, i: u64) -> Sample {
    let body = lead_body(i);
    let t = Instant::now();
    let sent = client
        .post(endpoint)
        .bearer_auth(token)
        .header("Idempotency-Key", format!("bench-{i}"))
        .json(&body)
        .send()
        .await;
    let result = match sent {
        Ok(res) => {
            let status = res.status().as_u16();
            res.text().await.map(|text| (status, text))
        }
        Err(e) => Err(e),
    };
    let micros = t.elapsed().as_micros() as u64;
    match result {
        Ok((status, text)) => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let rule = (status == 201).then(|| {
                (v["routed"]["by"] == "rule").then(|| v["routed"]["rule"].as_str().unwrap_or("?").to_string())
            });
            let error = (status != 201 && status != 200).then(|| format!("HTTP {status}: {text}"));
            Sample { micros, status, rule, error }
        }
        Err(e) => Sample { micros, status: 0, rule: None, error: Some(format!("request failed: {e}")) },
    }
}

/// An org of its own with two teams of reps, two rules and an intake token.
async fn setup(db: &Db) -> anyhow::Result<(i64, String)> {
    let now = Clock::system().now();
    let mut tx = db.begin().await?;
    let name = format!("压测组织-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let org = crm::orgs::create_org(&mut tx, &name, "Asia/Shanghai", Via::Cli, now).await?;
    let ctx = Ctx::new(Actor::system(org.id), Via::Cli, now);
    let east = crm::users::create_team(&mut tx, &ctx, "华东").await?;
    let north = crm::users::create_team(&mut tx, &ctx, "华北").await?;
    for (team, prefix, n) in [(&east, "east", 6), (&north, "north", 4)] {
        for k in 1..=n {
            let handle = format!("{prefix}{k}");
            let user = NewUser { handle: &handle, name: &handle, role: Role::Rep, team_id: Some(team.id) };
            crm::users::create_user(&mut tx, &ctx, user).await?;
        }
    }
    let rule = |name: &str, target: Target, strategy: Strategy| NewRule {
        name: name.into(),
        position: None,
        region_prefix: None,
        industry: None,
        source: None,
        tag: None,
        target,
        strategy,
        capacity: None,
    };
    let east_rule = NewRule {
        region_prefix: Some("青岛".into()),
        industry: Some("制造业".into()),
        ..rule(RULE_EAST, Target::Team(east.id), Strategy::RoundRobin)
    };
    crm::lead_rules::create_rule(&mut tx, &ctx, east_rule).await?;
    let north_rule =
        NewRule { source: Some("website".into()), ..rule(RULE_NORTH, Target::Team(north.id), Strategy::LeastLoaded) };
    crm::lead_rules::create_rule(&mut tx, &ctx, north_rule).await?;
    let (_, token) = create_token(&mut tx, org.id, "bench", Scope::Intake, Via::Cli, now).await?;
    tx.commit().await?;
    Ok((org.id, token))
}

async fn count_for_org(db: &Db, sql: &'static str, org_id: i64) -> anyhow::Result<i64> {
    let mut tx = db.begin_read().await?;
    let n = crate::run!(&mut tx, |c| sqlx::query_scalar(sql).bind(org_id).fetch_one(c).await)?;
    tx.commit().await?;
    Ok(n)
}
