//! Prometheus metrics at `/metrics` (text exposition format 0.0.4).
//!
//! Counters live in atomics owned by the server (HTTP), the bot (messages) and the dispatcher
//! (deliveries); depths and lags are read from the database at scrape time, so they are right
//! across instances and restarts.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::Db;

/// Request latency buckets, seconds (Prometheus' `le`).
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Which part of the API a request was for; a fixed set so labels stay bounded whatever the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Wecom,
    Dingtalk,
    Feishu,
    Api,
    Console,
    Health,
    Other,
}

impl Route {
    const ALL: [Route; 7] =
        [Route::Wecom, Route::Dingtalk, Route::Feishu, Route::Api, Route::Console, Route::Health, Route::Other];

    pub fn of(path: &str) -> Self {
        // Every request passes here: compare in place, no allocation.
        let starts = |p: &str| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if starts("/callback/wecom") {
            Route::Wecom
        } else if starts("/callback/dingtalk") {
            Route::Dingtalk
        } else if starts("/callback/feishu") {
            Route::Feishu
        } else if starts("/api") {
            Route::Api
        } else if starts("/console") {
            Route::Console
        } else if matches!(path, "/healthz" | "/readyz" | "/metrics") {
            Route::Health
        } else {
            Route::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Wecom => "wecom",
            Route::Dingtalk => "dingtalk",
            Route::Feishu => "feishu",
            Route::Api => "api",
            Route::Console => "console",
            Route::Health => "health",
            Route::Other => "other",
        }
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
struct RouteStats {
    /// By status class: 1xx..5xx.
    status: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// What the bot did with chat messages.
#[derive(Debug, Default)]
pub struct MessageCounters {
    /// Handled for the first time (done or refused with a reply).
    pub handled: AtomicU64,
    /// Deliveries of a message already handled (platform retries): the inbox deduplicated them.
    pub duplicates: AtomicU64,
    /// Not stored because storage failed; the platform retries.
    pub failed: AtomicU64,
    /// Left to the platform's retry because no writer took them before the reply deadline.
    pub retry_asked: AtomicU64,
    /// Acknowledged without being acted on: the sender was over the rate limit (and was told so
    /// with the first message over it).
    pub rate_limited: AtomicU64,
}

/// What the outbox dispatcher did.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub sent: AtomicU64,
    /// Failed attempts that will be tried again.
    pub retried: AtomicU64,
    /// Messages dead-lettered.
    pub dead: AtomicU64,
}

/// The server's counters; one per process, shared by the HTTP layer, the bot and the dispatcher.
#[derive(Default)]
pub struct Metrics {
    routes: [RouteStats; Route::ALL.len()],
    pub deliveries: Arc<DeliveryCounters>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// One HTTP request answered with `status` after `took`.
    pub fn observe(&self, route: Route, status: u16, took: Duration) {
        let r = &self.routes[route as usize];
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        r.status[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|le| secs <= *le) {
            r.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        r.count.fetch_add(1, Ordering::Relaxed);
        r.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The exposition text: counters from memory, depths and lags from the database.
    pub async fn render(&self, messages: &MessageCounters, db: &Db, now: DateTime<Utc>) -> String {
        let mut out = String::with_capacity(4096);
        let w = &mut out;
        header(w, "chatcrm_http_requests_total", "counter", "HTTP requests answered, by route and status class.");
        for (route, r) in Route::ALL.iter().zip(&self.routes) {
            for (class, n) in STATUS_CLASSES.iter().zip(&r.status) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ =
                        writeln!(w, "chatcrm_http_requests_total{{route=\"{}\",code=\"{class}\"}} {n}", route.label());
                }
            }
        }
        header(w, "chatcrm_http_request_duration_seconds", "histogram", "HTTP request latency, by route.");
        for (route, r) in Route::ALL.iter().zip(&self.routes) {
            let count = r.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let label = route.label();
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(&r.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    w,
                    "chatcrm_http_request_duration_seconds_bucket{{route=\"{label}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ =
                writeln!(w, "chatcrm_http_request_duration_seconds_bucket{{route=\"{label}\",le=\"+Inf\"}} {count}");
            let sum = r.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(w, "chatcrm_http_request_duration_seconds_sum{{route=\"{label}\"}} {sum}");
            let _ = writeln!(w, "chatcrm_http_request_duration_seconds_count{{route=\"{label}\"}} {count}");
        }
        header(
            w,
            "chatcrm_messages_total",
            "counter",
            "Chat messages by outcome; duplicate = deduplicated by the inbox.",
        );
        for (outcome, n) in [
            ("handled", &messages.handled),
            ("duplicate", &messages.duplicates),
            ("failed", &messages.failed),
            ("retry_asked", &messages.retry_asked),
            ("rate_limited", &messages.rate_limited),
        ] {
            let _ = writeln!(w, "chatcrm_messages_total{{outcome=\"{outcome}\"}} {}", n.load(Ordering::Relaxed));
        }
        header(w, "chatcrm_outbox_deliveries_total", "counter", "Outbox delivery results by this process.");
        let d = &self.deliveries;
        for (result, n) in [("sent", &d.sent), ("retry", &d.retried), ("dead", &d.dead)] {
            let _ = writeln!(w, "chatcrm_outbox_deliveries_total{{result=\"{result}\"}} {}", n.load(Ordering::Relaxed));
        }
        match depth(db, now).await {
            Ok(depth) => {
                header(w, "chatcrm_outbox_messages", "gauge", "Outbox messages by status (all instances).");
                // Every status, 0 when none: a series that appears only once it is non-zero
                // makes `rate()` and absence alerts miss its first change.
                let known = crate::store::outbox::STATUSES;
                let count = |status: &str| depth.by_status.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                for status in known {
                    let _ = writeln!(w, "chatcrm_outbox_messages{{status=\"{status}\"}} {}", count(status));
                }
                for (status, n) in depth.by_status.iter().filter(|(s, _)| !known.contains(&s.as_str())) {
                    let _ = writeln!(w, "chatcrm_outbox_messages{{status=\"{status}\"}} {n}");
                }
                header(
                    w,
                    "chatcrm_outbox_oldest_due_seconds",
                    "gauge",
                    "Age of the oldest pending message due to be sent.",
                );
                let _ = writeln!(w, "chatcrm_outbox_oldest_due_seconds {}", lag(depth.oldest_due, now));
                header(
                    w,
                    "chatcrm_scheduler_lag_seconds",
                    "gauge",
                    "Age of the oldest reminder due and not yet fired.",
                );
                let _ = writeln!(w, "chatcrm_scheduler_lag_seconds {}", lag(depth.oldest_reminder, now));
                header(w, "chatcrm_database_up", "gauge", "1 when the database answered this scrape.");
                let _ = writeln!(w, "chatcrm_database_up 1");
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: the database did not answer");
                header(w, "chatcrm_database_up", "gauge", "1 when the database answered this scrape.");
                let _ = writeln!(w, "chatcrm_database_up 0");
            }
        }
        out
    }
}

/// Read at scrape time, so they hold across instances and restarts.
struct Depth {
    by_status: Vec<(String, i64)>,
    oldest_due: Option<DateTime<Utc>>,
    oldest_reminder: Option<DateTime<Utc>>,
}

async fn depth(db: &Db, now: DateTime<Utc>) -> Result<Depth, sqlx::Error> {
    let mut tx = db.begin_read().await?;
    let by_status = crate::store::outbox::counts(&mut tx).await?;
    let oldest_due = crate::store::outbox::next_due(&mut tx).await?.filter(|t| *t <= now);
    let oldest_reminder = crate::store::schedule::oldest_due_reminder(&mut tx, now).await?;
    tx.commit().await?;
    Ok(Depth { by_status, oldest_due, oldest_reminder })
}

fn header(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn lag(oldest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> f64 {
    oldest.map_or(0.0, |t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_a_bounded_set() {
        assert_eq!(Route::of("/callback/wecom/sales"), Route::Wecom);
        assert_eq!(Route::of("/callback/wecomx"), Route::Other);
        assert_eq!(Route::of("/api/v1/customers/12"), Route::Api);
        assert_eq!(Route::of("/console"), Route::Console);
        assert_eq!(Route::of("/metrics"), Route::Health);
        assert_eq!(Route::of("/../../etc/passwd"), Route::Other);
    }

    #[test]
    fn route_indexes_follow_the_list_render_walks() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe(Route::Wecom, 200, Duration::from_micros(800));
        m.observe(Route::Wecom, 200, Duration::from_millis(30));
        m.observe(Route::Wecom, 503, Duration::from_secs(9));
        let r = &m.routes[0];
        assert_eq!(r.status[1].load(Ordering::Relaxed), 2);
        assert_eq!(r.status[4].load(Ordering::Relaxed), 1);
        assert_eq!(r.buckets[0].load(Ordering::Relaxed), 1, "≤ 1 ms");
        assert_eq!(r.buckets[5].load(Ordering::Relaxed), 1, "≤ 50 ms");
        assert_eq!(r.count.load(Ordering::Relaxed), 3, "the 9 s one only in +Inf");
    }
}
