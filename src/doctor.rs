//! `chatcrm doctor`: checks what a deployment needs and says what is wrong and how to fix it —
//! the configuration, the database (reachable, schema up to date, clock), and every chat
//! platform app's credentials against its API (or the mock a test points it at), with the clock
//! skew against each API's `Date` header (callback signatures carry timestamps with a window).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::store::{Db, DbOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Clock skew beyond which callbacks start failing their timestamp windows.
const SKEW_WARN_SECS: i64 = 30;

/// Runs every check; never fails itself (a failed check is a result).
pub async fn run(settings: &Settings, now: DateTime<Utc>) -> Vec<Check> {
    let mut out = Vec::new();
    match settings.schedule_plan() {
        Ok(_) => out.push(Check::ok("configuration", "settings and [schedule] are valid")),
        Err(e) => out.push(Check::fail("configuration", e.to_string(), "fix the key named above")),
    }
    if settings.console_enabled && settings.console_allow_remote && !settings.listen_addr().ip().is_loopback() {
        out.push(Check::warn(
            "console",
            format!("the console and outbox API (no login) are served on {}", settings.listen),
            "set console_allow_remote = false, or put the server behind something that authenticates",
        ));
    }
    database(settings, now, &mut out).await;
    platforms(settings, now, &mut out).await;
    out
}

async fn database(settings: &Settings, now: DateTime<Utc>, out: &mut Vec<Check>) {
    let url = settings.database_url_redacted();
    let mut opts = DbOptions::from_settings(settings);
    opts.max_connections = 1;
    let db = match tokio::time::timeout(Duration::from_secs(15), Db::connect(&opts)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            out.push(Check::fail(
                "database",
                format!("cannot open {url}: {e}"),
                "check database_url (CHATCRM_DATABASE_URL), that the server runs and accepts this user",
            ));
            return;
        }
        Err(_) => {
            out.push(Check::fail("database", format!("no answer from {url} in 15 s"), "check the host and firewall"));
            return;
        }
    };
    match db.ping().await {
        Ok(()) => out.push(Check::ok("database", format!("{url} answers"))),
        Err(e) => out.push(Check::fail("database", format!("{url}: {e}"), "check the server and credentials")),
    }
    let expected = db.migrations_known();
    match db.migrations_applied().await {
        Ok(applied) if applied == expected => {
            out.push(Check::ok("schema", format!("all {expected} migrations applied")));
        }
        Ok(applied) if applied < expected => out.push(Check::fail(
            "schema",
            format!("{applied} of {expected} migrations applied"),
            "run `chatcrm migrate` (serve also migrates on start)",
        )),
        Ok(applied) => out.push(Check::fail(
            "schema",
            format!("the database has {applied} migrations, this binary knows {expected}"),
            "a newer chatcrm migrated this database: run that version",
        )),
        Err(e) => {
            out.push(Check::fail("schema", format!("cannot read the migrations table: {e}"), "run `chatcrm migrate`"))
        }
    }
    if let Ok(Some(db_now)) = db.server_time().await {
        let skew = (db_now - now).num_seconds();
        if skew.abs() > SKEW_WARN_SECS {
            out.push(Check::warn(
                "clock (database)",
                format!("the database clock is {skew:+} s from this host's"),
                "run NTP (chrony/systemd-timesyncd) on both machines",
            ));
        } else {
            out.push(Check::ok("clock (database)", format!("{skew:+} s from this host")));
        }
    }
    db.close().await;
}

/// The skew of this host's clock against a server's `Date` header, in seconds.
async fn api_skew(base: &str, now: DateTime<Utc>) -> Option<i64> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
    let res = client.get(base).send().await.ok()?;
    let date = res.headers().get(reqwest::header::DATE)?.to_str().ok()?;
    let at = DateTime::parse_from_rfc2822(date).ok()?.with_timezone(&Utc);
    Some((at - now).num_seconds())
}

async fn skew_check(name: &str, base: &str, now: DateTime<Utc>, out: &mut Vec<Check>) {
    match api_skew(base, now).await {
        // The header has whole seconds and the request takes time: a second or two is noise.
        Some(s) if s.abs() > SKEW_WARN_SECS => out.push(Check::warn(
            format!("clock ({name})"),
            format!("this host's clock is {:+} s off {base}'s", -s),
            "run NTP (chrony/systemd-timesyncd): callbacks outside the timestamp window are rejected",
        )),
        Some(s) => out.push(Check::ok(format!("clock ({name})"), format!("{:+} s from {base}", -s))),
        None => {}
    }
}

async fn platforms(settings: &Settings, now: DateTime<Utc>, out: &mut Vec<Check>) {
    if settings.wecom.apps.is_empty() && settings.dingtalk.apps.is_empty() && settings.feishu.apps.is_empty() {
        out.push(Check::ok("chat platforms", "none configured: the local console only"));
        return;
    }
    match crate::platform::wecom::Apps::from_settings(&settings.wecom) {
        Err(e) => out.push(Check::fail("wecom", e.to_string(), "fix the app's keys in [[wecom.apps]]")),
        Ok(apps) => {
            for app in apps.iter() {
                let name = format!("wecom app `{}`", app.cfg.name);
                match app.client.access_token().await {
                    Ok(_) => out.push(Check::ok(name, "gettoken succeeded: corp id and secret are right")),
                    Err(e) => out.push(Check::fail(name, e.to_string(), wecom_fix(&e.to_string()))),
                }
            }
            if !settings.wecom.apps.is_empty() {
                skew_check("wecom", &settings.wecom.api_base, now, out).await;
            }
        }
    }
    match crate::platform::dingtalk::Apps::from_settings(&settings.dingtalk) {
        Err(e) => out.push(Check::fail("dingtalk", e.to_string(), "fix the app's keys in [[dingtalk.apps]]")),
        Ok(apps) => {
            for app in apps.iter() {
                let name = format!("dingtalk app `{}`", app.cfg.name);
                match app.pusher.access_token().await {
                    Ok(_) => out.push(Check::ok(name, "gettoken succeeded: app key and secret are right")),
                    Err(e) => out.push(Check::fail(
                        name,
                        e.to_string(),
                        "check app_key and app_secret (开发者后台 → 凭证与基础信息) and the server's IP allowlist",
                    )),
                }
            }
            if !settings.dingtalk.apps.is_empty() {
                skew_check("dingtalk", &settings.dingtalk.api_base, now, out).await;
            }
        }
    }
    match crate::platform::feishu::Apps::from_settings(&settings.feishu) {
        Err(e) => out.push(Check::fail("feishu", e.to_string(), "fix the app's keys in [[feishu.apps]]")),
        Ok(apps) => {
            for app in apps.iter() {
                let name = format!("feishu app `{}`", app.cfg.name);
                match app.pusher.client.tenant_access_token().await {
                    Ok(_) => out.push(Check::ok(name, "tenant_access_token succeeded: app id and secret are right")),
                    Err(e) => out.push(Check::fail(
                        name,
                        e.to_string(),
                        "check app_id and app_secret (开发者后台 → 凭证与基础信息) and that the app is published",
                    )),
                }
            }
            if !settings.feishu.apps.is_empty() {
                skew_check("feishu", &settings.feishu.api_base, now, out).await;
            }
        }
    }
}

/// What to do about a WeCom error, by its errcode.
fn wecom_fix(error: &str) -> String {
    let has = |code: &str| error.contains(code);
    if has("40013") {
        "corp_id is wrong: 我的企业 → 企业信息 → 企业ID".into()
    } else if has("40001") || has("42001") || has("40014") {
        "the app's secret is wrong or was reset: 应用管理 → the app → Secret".into()
    } else if has("60020") {
        "this server's IP is not trusted: 应用管理 → the app → 企业可信IP".into()
    } else {
        "check corp_id, agent_id and secret of the app, and that this host reaches api_base".into()
    }
}

/// The report for people: one line per check, then how to fix what failed.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{mark}  {}: {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warns = checks.iter().filter(|c| c.status == Status::Warn).count();
    out.push_str(&match (fails, warns) {
        (0, 0) => "all good\n".to_string(),
        (f, w) => format!("{f} failed, {w} warnings\n"),
    });
    out
}
