//! `chatcrm wecom loadgen`: distinct, correctly signed and encrypted WeCom callbacks against a
//! running server, from many users, at a fixed rate or as fast as possible; prints throughput and
//! latency. `--write FILE` writes the requests instead, one JSON object per line, for other tools.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::simulate::Simulator;

pub struct LoadgenOptions {
    /// e.g. http://127.0.0.1:8080/callback/wecom/sales
    pub url: String,
    pub concurrency: usize,
    pub duration: Duration,
    /// Messages per second in total; `None` = as fast as possible.
    pub rate: Option<u64>,
    /// (WeCom user id, customer name) pairs the messages are about.
    pub senders: Vec<(String, String)>,
    /// Epoch seconds to stamp callbacks with (the server checks freshness).
    pub now: i64,
}

#[derive(Debug, Serialize)]
pub struct LoadgenReport {
    pub concurrency: usize,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: crate::bench::Latency,
}

/// The n-th message: a visit on one of the sender's customers, unique by message id and text.
/// With no senders it comes from a user no one linked (the server answers how to link them).
pub fn nth(sim: &Simulator, senders: &[(String, String)], n: u64, now: i64, run: &str) -> (String, String) {
    let fallback = ("loadgen".to_string(), "海尔".to_string());
    let (user, customer) = senders.get((n as usize) % senders.len().max(1)).unwrap_or(&fallback);
    let text = match n % 4 {
        0 => format!("拜访 {customer} 第{n}次沟通，聊了交付周期"),
        1 => format!("电话 {customer} 确认第{n}版报价"),
        2 => "今天".to_string(),
        _ => format!("客户 {customer}"),
    };
    let cb = sim.text(user, &text, &format!("{run}{n}"), now);
    (cb.query, cb.body)
}

pub async fn run(sim: Arc<Simulator>, opts: LoadgenOptions) -> anyhow::Result<LoadgenReport> {
    anyhow::ensure!(!opts.senders.is_empty(), "no senders: run with --setup against the server's database first");
    crate::install_tls_provider();
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?;
    let seq = Arc::new(AtomicU64::new(0));
    let run_id = format!("{}", rand::random::<u32>());
    let senders = Arc::new(opts.senders);
    let start = Instant::now();
    let deadline = start + opts.duration;
    let per_task_interval = opts.rate.map(|r| Duration::from_secs_f64(opts.concurrency as f64 / r.max(1) as f64));
    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency.max(1) {
        let (client, seq, senders, sim, url, run_id) =
            (client.clone(), seq.clone(), senders.clone(), sim.clone(), opts.url.clone(), run_id.clone());
        let now = opts.now;
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let mut next = Instant::now();
            while Instant::now() < deadline {
                if let Some(i) = per_task_interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let (query, body) = nth(&sim, &senders, n, now, &run_id);
                let t = Instant::now();
                match client.post(format!("{url}?{query}")).body(body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let ok = lat.len() as u64;
    Ok(LoadgenReport {
        concurrency: opts.concurrency,
        sent: ok + errors,
        ok,
        errors,
        latency: crate::bench::Latency::of(lat, start.elapsed().as_secs_f64()),
    })
}
