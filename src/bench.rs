//! `chatcrm bench bot`: the bot core under concurrent load on a real database: messages/s and
//! latency percentiles per concurrency level. Every message is a distinct, durable write (a visit
//! logged on one of the sender's own customers) committed before its reply.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bot::{Bot, IncomingMessage};
use crate::clock::Clock;
use crate::crm::{self, Actor, Ctx, Via};
use crate::store::Db;

#[derive(Debug, Serialize)]
pub struct BotBenchRow {
    pub concurrency: usize,
    pub messages: u64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: Latency,
}

/// Throughput and latency of a run, from its per-message samples (µs).
#[derive(Debug, Serialize)]
pub struct Latency {
    pub seconds: f64,
    pub messages_per_second: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(mut samples: Vec<u64>, seconds: f64) -> Self {
        samples.sort_unstable();
        let pct = |p: f64| samples.get(((samples.len().saturating_sub(1)) as f64 * p) as usize).copied().unwrap_or(0);
        Self {
            seconds,
            messages_per_second: samples.len() as f64 / seconds.max(1e-9),
            p50_us: pct(0.5),
            p90_us: pct(0.9),
            p99_us: pct(0.99),
            max_us: samples.last().copied().unwrap_or(0),
        }
    }
}

/// Seeds the demo org on an empty database, links the demo reps to `platform`/`corp` under their
/// handles, and returns the org's corp key and (sender, customer name) pairs to write about.
pub async fn prepare(db: &Db, platform: &str, corp: Option<&str>) -> anyhow::Result<(String, Vec<(String, String)>)> {
    let mut tx = db.begin().await?;
    let org = match crm::orgs::org_by_name(&mut tx, "演示公司").await {
        Ok(org) => org,
        Err(_) => {
            crate::demo::seed(&mut tx, "演示公司", "Asia/Shanghai", Clock::system().now()).await?;
            crm::orgs::org_by_name(&mut tx, "演示公司").await?
        }
    };
    let corp = corp.map_or_else(|| org.id.to_string(), str::to_string);
    let sys = Ctx::new(Actor::system(org.id), Via::Cli, Clock::system().now());
    let mut senders = Vec::new();
    for handle in ["lilei", "zhangwei", "wangfang"] {
        let user = crm::users::find_user(&mut tx, org.id, handle).await?;
        if crm::users::resolve_identity(&mut tx, platform, &corp, handle).await?.is_none() {
            crm::users::link_identity(&mut tx, &sys, user.id, platform, &corp, handle).await?;
        }
        let ctx = Ctx::new(Actor::of(&user), Via::Cli, Clock::system().now());
        for c in crm::customers::list_customers(&mut tx, &ctx, true).await?.into_iter().take(3) {
            senders.push((handle.to_string(), c.name));
        }
    }
    tx.commit().await?;
    Ok((corp, senders))
}

pub async fn bot(db: Db, levels: &[usize], duration: Duration) -> anyhow::Result<Vec<BotBenchRow>> {
    let (corp, senders) = prepare(&db, "bench", None).await?;
    anyhow::ensure!(!senders.is_empty(), "the demo reps own no customers to write about");
    let senders = Arc::new(senders);
    let bot = Bot::new(db, Clock::system());
    let seq = Arc::new(AtomicU64::new(0));
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut rows = Vec::new();
    for &concurrency in levels {
        let deadline = Instant::now() + duration;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (bot, senders, seq, corp, run_id) =
                (bot.clone(), senders.clone(), seq.clone(), corp.clone(), run_id.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let (who, customer) = &senders[(n as usize) % senders.len()];
                    let msg = IncomingMessage {
                        platform: "bench".into(),
                        corp_id: corp.clone(),
                        sender: who.clone(),
                        message_id: format!("{run_id}-{n}"),
                        text: format!("拜访 {customer} 第{n}次沟通，聊了交付周期"),
                        received_at: chrono::Utc::now(),
                    };
                    let t = Instant::now();
                    match bot.handle(&msg).await {
                        Ok(_) => lat.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await?;
            lat.extend(l);
            errors += e;
        }
        let messages = lat.len() as u64;
        rows.push(BotBenchRow {
            concurrency,
            messages,
            errors,
            latency: Latency::of(lat, start.elapsed().as_secs_f64()),
        });
    }
    Ok(rows)
}

/// For the benchmarks (`bench reminders`, `bench leads-api`).
/// Creates the PostgreSQL database named in `url` when missing (dropping it first with `recreate`).
pub async fn ensure_pg_database(url: &str, recreate: bool) -> anyhow::Result<()> {
    let opts = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)?;
    let name = anyhow::Context::context(opts.get_database(), "the PostgreSQL URL names no database")?.to_string();
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name `{name}`: use letters, digits and _"
    );
    let admin = anyhow::Context::context(
        sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_with(opts.database("postgres")).await,
        "cannot reach the server's `postgres` database to create the bench database",
    )?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&admin)
        .await?;
    if exists && recreate {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))).execute(&admin).await?;
    }
    if !exists || recreate {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")))
            .execute(&admin)
            .await?;
    }
    admin.close().await;
    Ok(())
}
