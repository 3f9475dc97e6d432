//! `chatcrm loadgen`: mixed chat traffic against a running server. Distinct, correctly signed (and
//! where the platform encrypts, encrypted) callbacks for every configured WeCom, DingTalk and
//! Feishu app, from many users: visits, calls, deal updates, new leads, reminders and queries.
//! Runs as fast as possible or at a fixed total rate for a fixed time and reports throughput and
//! latency per platform; or writes the requests to a file (JSON lines, or a wrk script) for other
//! tools to replay.
//!
//! The senders are linked in the server's database first (seeding the demo org under each app's
//! org when it is missing), so the load generator runs with the server's config.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::bench::Latency;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crm::{self, Actor, Ctx, Role, Via};
use crate::platform::{dingtalk, feishu, wecom};
use crate::store::Db;

/// A chat platform the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Wecom,
    Dingtalk,
    Feishu,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Wecom, Platform::Dingtalk, Platform::Feishu];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Wecom => wecom::PLATFORM,
            Platform::Dingtalk => dingtalk::PLATFORM,
            Platform::Feishu => feishu::PLATFORM,
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("`{s}` is not a chat platform: use wecom, dingtalk or feishu"))
    }
}

/// One configured app to send as.
enum Channel {
    Wecom { path: String, sim: wecom::simulate::Simulator },
    Dingtalk { path: String, sim: dingtalk::simulate::Simulator },
    Feishu { path: String, sim: feishu::simulate::Simulator },
}

impl Channel {
    fn platform(&self) -> Platform {
        match self {
            Channel::Wecom { .. } => Platform::Wecom,
            Channel::Dingtalk { .. } => Platform::Dingtalk,
            Channel::Feishu { .. } => Platform::Feishu,
        }
    }
}

/// A user on one channel, with records of their own to write about.
struct Persona {
    channel: usize,
    user: String,
    customers: Vec<String>,
    deals: Vec<i64>,
}

/// A ready-to-send callback.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub platform: Platform,
    pub method: &'static str,
    /// Path and query, e.g. `/callback/wecom/sales?msg_signature=…`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The traffic: who sends, through which app, and the n-th message of a run.
pub struct Traffic {
    channels: Vec<Channel>,
    personas: Vec<Persona>,
    /// Makes message ids and lead names of this run distinct from earlier runs'.
    run: String,
    /// The time written requests are stamped with (servers check freshness); live runs stamp
    /// each request as it is sent.
    now: DateTime<Utc>,
    /// The next message number: runs on the same traffic continue, never repeat.
    next: AtomicU64,
    mix: Mix,
}

/// What `chatcrm loadgen` sends as and how many extra reps it makes.
pub struct Plan<'a> {
    /// Only these platforms (every configured app of each); empty = all configured.
    pub platforms: &'a [Platform],
    /// Reps made (once) per org besides the demo's, each with customers of their own.
    pub extra_users: usize,
    pub mix: Mix,
}

/// What the messages say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// A working day's mix: visits, calls, deal updates, new leads, reminders, the day's plan,
    /// customer cards, customer lists and the pipeline.
    Full,
    /// Visits, calls, the day's plan and customer cards (the WeCom callback benchmark's mix,
    /// kept so its figures compare across versions).
    Visits,
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Mix::Full),
            "visits" => Ok(Mix::Visits),
            other => Err(format!("`{other}` is not a mix: use full or visits")),
        }
    }
}

impl Traffic {
    /// Builds simulators for the configured apps and links the senders in `db`.
    pub async fn prepare(settings: &Settings, db: &Db, plan: Plan<'_>) -> Result<Self, LoadgenError> {
        let wanted = |p: Platform| plan.platforms.is_empty() || plan.platforms.contains(&p);
        // (channel, org name, corp key)
        let mut channels = Vec::new();
        let mut owners: Vec<(String, String)> = Vec::new();
        if wanted(Platform::Wecom) {
            for a in &settings.wecom.apps {
                let sim = wecom::simulate::Simulator::new(
                    a.token.expose_secret(),
                    a.encoding_aes_key.expose_secret(),
                    &a.corp_id,
                    a.agent_id,
                )
                .map_err(|e| LoadgenError::App(format!("wecom app `{}`: {e}", a.name)))?;
                channels.push(Channel::Wecom { path: format!("/callback/wecom/{}", a.name), sim });
                owners.push((a.org.clone(), a.corp_id.clone()));
            }
        }
        if wanted(Platform::Dingtalk) {
            for a in &settings.dingtalk.apps {
                let sim = dingtalk::simulate::Simulator::new(a)
                    .map_err(|e| LoadgenError::App(format!("dingtalk app `{}`: {e}", a.name)))?;
                channels.push(Channel::Dingtalk { path: format!("/callback/dingtalk/{}", a.name), sim });
                owners.push((a.org.clone(), a.corp_id.clone()));
            }
        }
        if wanted(Platform::Feishu) {
            for a in &settings.feishu.apps {
                let key = a.encrypt_key.as_ref().map(|k| k.expose_secret().to_string());
                let sim = feishu::simulate::Simulator::new(
                    a.verification_token.expose_secret(),
                    key.as_deref(),
                    &a.app_id,
                    &a.corp_id,
                );
                channels.push(Channel::Feishu { path: format!("/callback/feishu/{}", a.name), sim });
                owners.push((a.org.clone(), a.corp_id.clone()));
            }
        }
        if channels.is_empty() {
            return Err(LoadgenError::NoApps);
        }
        let mut personas = Vec::new();
        for (i, (channel, (org, corp))) in channels.iter().zip(&owners).enumerate() {
            for (user, customers, deals) in senders(db, org, channel.platform(), corp, plan.extra_users).await? {
                personas.push(Persona { channel: i, user, customers, deals });
            }
        }
        Ok(Self {
            channels,
            personas,
            run: format!("{:08x}", rand::random::<u32>()),
            now: Utc::now(),
            next: AtomicU64::new(0),
            mix: plan.mix,
        })
    }

    pub fn senders(&self) -> usize {
        self.personas.len()
    }

    /// The n-th request of the run, stamped with the time the traffic was prepared.
    pub fn nth(&self, n: u64) -> Request {
        self.nth_at(n, self.now)
    }

    /// The n-th request of the run, stamped `now`: senders take turns; each sends a realistic mix.
    pub fn nth_at(&self, n: u64, now: DateTime<Utc>) -> Request {
        let p = &self.personas[(n % self.personas.len() as u64) as usize];
        // Every sender's own sequence, so each one goes through the whole mix.
        let k = n / self.personas.len() as u64;
        let customer = &p.customers[(k as usize) % p.customers.len()];
        // The visits mix: 拜访, 电话, 今天, 客户 in turn.
        let k = match self.mix {
            Mix::Full => k,
            Mix::Visits => [0, 2, 5, 6][(k % 4) as usize],
        };
        let text = match k % 10 {
            0 | 1 => format!("拜访 {customer} 第{n}次沟通，聊了交付周期"),
            2 => format!("电话 {customer} 确认第{n}版报价"),
            3 => match p.deals.get((k as usize) % p.deals.len().max(1)) {
                Some(deal) => format!("商机 #{deal} 金额 {}万", 10 + n % 90),
                None => format!("拜访 {customer} 第{n}次沟通"),
            },
            4 => format!("线索 压测{}{n}机械 王经理 139{:08} 来源 展会", self.run, n % 100_000_000),
            5 => "今天".to_string(),
            6 => format!("客户 {customer}"),
            7 => format!("提醒 明天下午3点 给{customer}打电话"),
            8 => "我的客户".to_string(),
            _ => "漏斗".to_string(),
        };
        let id = format!("lg{}{n}", self.run);
        let channel = &self.channels[p.channel];
        let json = ("content-type".to_string(), "application/json".to_string());
        match channel {
            Channel::Wecom { path, sim } => {
                let cb = sim.text(&p.user, &text, &id, now.timestamp());
                Request {
                    platform: Platform::Wecom,
                    method: "POST",
                    path: format!("{path}?{}", cb.query),
                    headers: vec![("content-type".into(), "text/xml".into())],
                    body: cb.body,
                }
            }
            Channel::Dingtalk { path, sim } => {
                let cb = sim.text(&p.user, &text, &id, None, now.timestamp_millis(), None);
                Request {
                    platform: Platform::Dingtalk,
                    method: "POST",
                    path: path.clone(),
                    headers: vec![json, ("timestamp".into(), cb.timestamp), ("sign".into(), cb.sign)],
                    body: cb.body,
                }
            }
            Channel::Feishu { path, sim } => {
                let cb = sim.text(&p.user, &text, &format!("om_{id}"), now.timestamp());
                let mut headers = vec![json];
                headers.extend(cb.headers);
                Request { platform: Platform::Feishu, method: "POST", path: path.clone(), headers, body: cb.body }
            }
        }
    }

    /// Writes `count` requests as JSON lines (`{"platform","method","path","headers","body"}`).
    pub fn write_jsonl(&self, out: &mut impl Write, count: u64) -> std::io::Result<()> {
        for n in 0..count {
            serde_json::to_writer(&mut *out, &self.nth(n))?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Writes `count` requests as a wrk script: `wrk -s FILE http://HOST:PORT` sends them in turn
    /// (again from the first when they run out; repeats are deduplicated by the server's inbox).
    pub fn write_wrk(&self, out: &mut impl Write, count: u64) -> std::io::Result<()> {
        writeln!(out, "-- {count} chatcrm callbacks made by `chatcrm loadgen --write`.")?;
        writeln!(out, "local requests = {{}}")?;
        for n in 0..count {
            let r = self.nth(n);
            let headers: Vec<String> =
                // Spaces inside the key's brackets: `[[[` would open a long string.
                r.headers.iter().map(|(k, v)| format!("[ {} ] = {}", lua_string(k), lua_string(v))).collect();
            writeln!(
                out,
                "requests[{}] = wrk.format({}, {}, {{{}}}, {})",
                n + 1,
                lua_string(r.method),
                lua_string(&r.path),
                headers.join(", "),
                lua_string(&r.body)
            )?;
        }
        writeln!(out, "local i = 0")?;
        writeln!(out, "request = function()\n  i = i % #requests + 1\n  return requests[i]\nend")?;
        out.flush()
    }
}

/// A Lua string literal of any text: a long bracket whose level does not occur in it.
fn lua_string(s: &str) -> String {
    let mut level = 0;
    // The closing bracket must first occur where it is put: `s` ending in `]` would otherwise
    // close early together with the first `]` of `]]`.
    while format!("{s}]{}]", "=".repeat(level)).find(&format!("]{}]", "=".repeat(level))) != Some(s.len()) {
        level += 1;
    }
    let eq = "=".repeat(level);
    // A long bracket drops a newline right after the opening: add one so a leading one survives.
    format!("[{eq}[\n{s}]{eq}]")
}

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error(
        "no chat app configured for the chosen platforms: add [[wecom.apps]], [[dingtalk.apps]] or [[feishu.apps]]"
    )]
    NoApps,
    #[error("{0}")]
    App(String),
    #[error("the org `{0}` has no reps with customers to write about")]
    NoSenders(String),
    #[error(
        "the org `{org}` has users of its own (e.g. `{handle}`): loadgen adds test users, chat identities, customers and messages to the org it writes to; point it at a scratch database (CHATCRM_DATABASE_URL=sqlite://loadtest.db) whose org is empty or the demo"
    )]
    RealOrg { org: String, handle: String },
    #[error(transparent)]
    Crm(#[from] crm::CrmError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("cannot send: {0}")]
    Http(String),
}

/// The users `demo::seed` makes (src/demo.rs).
const DEMO_HANDLES: [&str; 5] = ["admin", "hanmeimei", "lilei", "zhangwei", "wangfang"];

/// The org's senders on one platform: the demo's reps and managers (the demo is seeded when the
/// org is missing) and `extra` reps made for load tests, each linked under their handle and
/// with the customers and open deals they own.
async fn senders(
    db: &Db,
    org_name: &str,
    platform: Platform,
    corp: &str,
    extra: usize,
) -> Result<Vec<(String, Vec<String>, Vec<i64>)>, LoadgenError> {
    let now = Clock::system().now();
    let mut tx = db.begin().await?;
    let org = match crm::orgs::org_by_name(&mut tx, org_name).await {
        Ok(org) => {
            // The demo's users and loadgen's own are fair game; anyone else means real data.
            let users = crm::users::list_users(&mut tx, org.id).await?;
            if let Some(u) =
                users.iter().find(|u| !DEMO_HANDLES.contains(&u.handle.as_str()) && !u.handle.starts_with("loadgen"))
            {
                return Err(LoadgenError::RealOrg { org: org_name.to_string(), handle: u.handle.clone() });
            }
            org
        }
        Err(crm::CrmError::NotFound(_)) => {
            crate::demo::seed(&mut tx, org_name, "Asia/Shanghai", now).await?;
            crm::orgs::org_by_name(&mut tx, org_name).await?
        }
        Err(e) => return Err(e.into()),
    };
    let sys = Ctx::new(Actor::system(org.id), Via::Cli, now);
    for i in 1..=extra {
        let handle = format!("loadgen{i}");
        if crm::users::find_user(&mut tx, org.id, &handle).await.is_ok() {
            continue;
        }
        let user = crm::users::create_user(
            &mut tx,
            &sys,
            crm::users::NewUser { handle: &handle, name: &format!("压测{i}号"), role: Role::Rep, team_id: None },
        )
        .await?;
        let ctx = Ctx::new(Actor::of(&user), Via::Cli, now);
        for suffix in ["甲", "乙"] {
            let new = crm::customers::NewCustomer {
                name: format!("压测客户{i}{suffix}"),
                industry: None,
                region: None,
                source: None,
                grade: None,
                owner_id: None,
                tags: Vec::new(),
            };
            crm::customers::create_customer(&mut tx, &ctx, new).await?;
        }
    }
    let mut out = Vec::new();
    for user in crm::users::list_users(&mut tx, org.id).await? {
        if !matches!(user.role, Role::Rep | Role::Manager) || !user.active {
            continue;
        }
        let ctx = Ctx::new(Actor::of(&user), Via::Cli, now);
        let customers: Vec<String> =
            crm::customers::list_customers(&mut tx, &ctx, true).await?.into_iter().take(3).map(|c| c.name).collect();
        if customers.is_empty() {
            continue;
        }
        let deals = crm::deals::open_deals(&mut tx, &ctx)
            .await?
            .into_iter()
            .filter(|d| d.owner_id == user.id)
            .take(3)
            .map(|d| d.id)
            .collect();
        if crm::users::resolve_identity(&mut tx, platform.as_str(), corp, &user.handle).await?.is_none() {
            crm::users::link_identity(&mut tx, &sys, user.id, platform.as_str(), corp, &user.handle).await?;
        }
        out.push((user.handle, customers, deals));
    }
    tx.commit().await?;
    if out.is_empty() {
        return Err(LoadgenError::NoSenders(org_name.to_string()));
    }
    Ok(out)
}

/// How to run: against `base_url` (e.g. `http://127.0.0.1:8080`).
pub struct RunOptions {
    pub base_url: String,
    pub concurrency: usize,
    pub duration: Duration,
    /// Messages per second in total; `None` = as fast as possible.
    pub rate: Option<u64>,
}

/// Figures of one platform (or all).
#[derive(Debug, Serialize)]
pub struct Figures {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: Latency,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub concurrency: usize,
    pub rate: Option<u64>,
    pub senders: usize,
    #[serde(flatten)]
    pub total: Figures,
    pub by_platform: BTreeMap<Platform, Figures>,
    /// Status codes (or `connect`/`timeout`) of the failed requests.
    pub error_kinds: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Samples {
    latency: BTreeMap<Platform, Vec<u64>>,
    errors: BTreeMap<Platform, u64>,
    kinds: BTreeMap<String, u64>,
}

/// Sends the traffic for the given time and measures it. At a fixed rate, latency counts from
/// when a request was due, not when it went out, so a stalled server shows in the figures
/// instead of silently slowing the generator down.
pub async fn run(traffic: Arc<Traffic>, opts: RunOptions) -> Result<Report, LoadgenError> {
    crate::install_tls_provider();
    let concurrency = opts.concurrency.max(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| LoadgenError::Http(e.to_string()))?;
    let base = opts.base_url.trim_end_matches('/').to_string();
    let start = Instant::now();
    let deadline = start + opts.duration;
    let interval = opts.rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r.max(1) as f64));
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let (client, traffic, base) = (client.clone(), traffic.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            // Spread the tasks over one interval so a fixed rate is smooth, not in bursts.
            let mut due = interval.map(|i| start + i.mul_f64(task as f64 / concurrency as f64));
            loop {
                let began = match (&mut due, interval) {
                    (Some(d), Some(i)) => {
                        tokio::time::sleep_until((*d).into()).await;
                        let began = *d;
                        *d += i;
                        began
                    }
                    _ => Instant::now(),
                };
                if began >= deadline {
                    break;
                }
                // Stamped now: a run may last longer than the platforms' freshness windows.
                let r = traffic.nth_at(traffic.next.fetch_add(1, Ordering::Relaxed), Utc::now());
                let mut req = client.post(format!("{base}{}", r.path)).body(r.body);
                for (k, v) in &r.headers {
                    req = req.header(k, v);
                }
                let failure = match req.send().await {
                    Ok(res) if res.status().is_success() => match res.bytes().await {
                        Ok(_) => None,
                        Err(_) => Some("body".to_string()),
                    },
                    Ok(res) => Some(res.status().as_u16().to_string()),
                    Err(e) if e.is_timeout() => Some("timeout".to_string()),
                    Err(e) if e.is_connect() => Some("connect".to_string()),
                    Err(_) => Some("other".to_string()),
                };
                match failure {
                    None => s.latency.entry(r.platform).or_default().push(began.elapsed().as_micros() as u64),
                    Some(kind) => {
                        *s.errors.entry(r.platform).or_default() += 1;
                        *s.kinds.entry(kind).or_default() += 1;
                    }
                }
            }
            s
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        let s = t.await.map_err(|e| LoadgenError::Http(e.to_string()))?;
        for (p, l) in s.latency {
            all.latency.entry(p).or_default().extend(l);
        }
        for (p, e) in s.errors {
            *all.errors.entry(p).or_default() += e;
        }
        for (k, e) in s.kinds {
            *all.kinds.entry(k).or_default() += e;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let figures = |lat: Vec<u64>, errors: u64| {
        let ok = lat.len() as u64;
        Figures { sent: ok + errors, ok, errors, latency: Latency::of(lat, seconds) }
    };
    let mut by_platform = BTreeMap::new();
    let mut every = Vec::new();
    let platforms: std::collections::BTreeSet<Platform> =
        all.latency.keys().chain(all.errors.keys()).copied().collect();
    for p in platforms {
        let lat = all.latency.remove(&p).unwrap_or_default();
        every.extend_from_slice(&lat);
        by_platform.insert(p, figures(lat, all.errors.get(&p).copied().unwrap_or(0)));
    }
    let errors = all.errors.values().sum();
    Ok(Report {
        concurrency,
        rate: opts.rate,
        senders: traffic.senders(),
        total: figures(every, errors),
        by_platform,
        error_kinds: all.kinds,
    })
}

impl Report {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let line = |name: &str, f: &Figures| {
            format!(
                "{name:<9} {:>8} sent {:>8} ok {:>6} errors {:>9.0} msg/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
                f.sent,
                f.ok,
                f.errors,
                f.latency.messages_per_second,
                f.latency.p50_us as f64 / 1000.0,
                f.latency.p90_us as f64 / 1000.0,
                f.latency.p99_us as f64 / 1000.0,
                f.latency.max_us as f64 / 1000.0,
            )
        };
        let mut out = format!(
            "{} s, concurrency {}, {}, {} senders\n",
            self.total.latency.seconds.round(),
            self.concurrency,
            self.rate.map_or("as fast as possible".to_string(), |r| format!("{r} msg/s asked")),
            self.senders
        );
        for (p, f) in &self.by_platform {
            out += &line(p.as_str(), f);
            out.push('\n');
        }
        out += &line("total", &self.total);
        if !self.error_kinds.is_empty() {
            let kinds: Vec<String> = self.error_kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            out += &format!("\nerrors by kind: {}", kinds.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_strings_survive_brackets_and_leading_newlines() {
        assert_eq!(lua_string("a"), "[[\na]]");
        assert_eq!(lua_string("x]]y"), "[=[\nx]]y]=]");
        assert_eq!(lua_string("]]]=]"), "[==[\n]]]=]]==]");
        assert_eq!(lua_string("\nb"), "[[\n\nb]]");
        assert_eq!(lua_string("a]"), "[=[\na]]=]");
        assert_eq!(lua_string("a]="), "[[\na]=]]");
        assert_eq!(lua_string("]]a]"), "[=[\n]]a]]=]");
    }

    #[test]
    fn platforms_parse_by_name() {
        assert_eq!("WeCom".parse::<Platform>(), Ok(Platform::Wecom));
        assert_eq!("feishu".parse::<Platform>(), Ok(Platform::Feishu));
        assert!("slack".parse::<Platform>().unwrap_err().contains("wecom, dingtalk or feishu"));
    }
}
