//! `chatcrm loadgen` against a real server with a WeCom, a DingTalk and a Feishu app: every request
//! it makes is valid (acknowledged, understood, stored once), the fixed rate holds, and the
//! requests it writes out replay.

use super::http::{ORG, Server, settings};
use crate::both_backends;
use chatcrm::clock::Clock;
use chatcrm::config::{Settings, WecomApp, WecomSettings};
use chatcrm::loadgen::{Mix, Plan, Platform, RunOptions, Traffic, run};
use chatcrm::platform::dingtalk::DingtalkSettings;
use chatcrm::platform::dingtalk::mock::MockDingtalk;
use chatcrm::platform::feishu::{FeishuApp, FeishuSettings};
use chatcrm::store::Db;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

fn three_platforms() -> Settings {
    let wecom = WecomApp {
        name: "sales".into(),
        org: ORG.into(),
        corp_id: "ww-loadgen".into(),
        agent_id: 1_000_002,
        secret: SecretString::from("app-secret"),
        token: SecretString::from("QDG6eK"),
        encoding_aes_key: SecretString::from("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"),
        robot_name: None,
        robot_token: None,
        robot_encoding_aes_key: None,
        menu: Default::default(),
    };
    let feishu = FeishuApp {
        name: "sales".into(),
        org: ORG.into(),
        corp_id: "tenant-loadgen".into(),
        app_id: "cli_loadgen".into(),
        app_secret: SecretString::from("secret"),
        verification_token: SecretString::from("vtoken"),
        encrypt_key: Some(SecretString::from("test key")),
        bots: Vec::new(),
    };
    Settings {
        wecom: WecomSettings { apps: vec![wecom], ..WecomSettings::default() },
        dingtalk: DingtalkSettings { apps: vec![MockDingtalk::app("sales", ORG)], ..DingtalkSettings::default() },
        feishu: FeishuSettings { apps: vec![feishu], ..FeishuSettings::default() },
        // Many messages per sender in a second or two.
        sender_rate_per_minute: 0,
        ..settings()
    }
}

/// (platform, reply) of every inbox row.
async fn inbox(db: &Db) -> Vec<(String, String)> {
    let sql = "SELECT platform, reply FROM inbox ORDER BY id";
    match db {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.expect("inbox"),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.expect("inbox"),
    }
}

async fn leads(db: &Db) -> i64 {
    let sql = "SELECT COUNT(*) FROM leads WHERE company LIKE '压测%'";
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("leads"),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("leads"),
    }
}

async fn mixed_traffic_is_acknowledged_understood_and_stored_once(db: Db) {
    let settings = three_platforms();
    // Real time: the generator stamps callbacks with now and the server checks freshness.
    let server = Server::start_with_clock(settings.clone(), db.clone(), Clock::system()).await;
    let traffic = Traffic::prepare(&settings, &db, Plan { platforms: &[], extra_users: 3, mix: Mix::Full })
        .await
        .expect("prepare");
    // The demo's three reps (its manager owns no customers) plus three made for the load, on each
    // of three apps.
    assert_eq!(traffic.senders(), 3 * (3 + 3), "senders");
    let traffic = Arc::new(traffic);
    let base_url = format!("http://{}", server.addr);
    let opts = RunOptions { base_url: base_url.clone(), concurrency: 8, duration: Duration::from_secs(2), rate: None };
    let report = run(traffic.clone(), opts).await.expect("run");
    // A callback storage did not take before the platform's deadline is refused with 503 (the
    // platform retries it) and stored nowhere; under a loaded CI machine a few may be. Anything
    // else is a bug.
    assert!(report.error_kinds.keys().all(|k| k == "503"), "{}", report.summary());
    assert!(report.total.errors * 20 <= report.total.sent, "{}", report.summary());
    for p in Platform::ALL {
        let f = report.by_platform.get(&p).unwrap_or_else(|| panic!("no {p:?} traffic: {}", report.summary()));
        assert!(f.ok >= 10, "{p:?}: {}", report.summary());
    }
    let rows = inbox(&db).await;
    assert_eq!(rows.len() as u64, report.total.ok, "every acknowledged callback is stored exactly once");
    for p in Platform::ALL {
        let stored = rows.iter().filter(|(platform, _)| platform == p.as_str()).count() as u64;
        assert_eq!(stored, report.by_platform[&p].ok, "{p:?}");
    }
    let misunderstood: Vec<&String> =
        rows.iter().map(|(_, reply)| reply).filter(|r| r.contains("没看懂") || r.contains("还没有绑定")).collect();
    assert!(misunderstood.is_empty(), "every generated message is a valid command: {misunderstood:?}");
    assert!(leads(&db).await > 0, "the mix creates leads");

    // At a fixed rate the generator sends about that many, not as many as it can.
    let before = rows.len() as u64;
    let opts =
        RunOptions { base_url: base_url.clone(), concurrency: 4, duration: Duration::from_secs(2), rate: Some(50) };
    let paced = run(traffic.clone(), opts).await.expect("paced run");
    assert!(paced.error_kinds.keys().all(|k| k == "503"), "{}", paced.summary());
    assert!((90..=110).contains(&paced.total.sent), "50/s for 2 s: {}", paced.summary());
    assert_eq!(inbox(&db).await.len() as u64, before + paced.total.ok);

    // Written requests replay as they are: headers, path and body. A new Traffic is a new run
    // (fresh message ids); the users made before are reused, not made again.
    let written =
        Traffic::prepare(&settings, &db, Plan { platforms: &[], extra_users: 3, mix: Mix::Full }).await.expect("again");
    assert_eq!(written.senders(), traffic.senders());
    let mut file = Vec::new();
    written.write_jsonl(&mut file, 12).expect("write");
    let text = String::from_utf8(file).expect("utf-8");
    let before = inbox(&db).await.len();
    let client = reqwest::Client::new();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("a JSON object per line");
        let mut req = client.post(format!("{base_url}{}", r["path"].as_str().expect("path")));
        for h in r["headers"].as_array().expect("headers") {
            req = req.header(h[0].as_str().expect("name"), h[1].as_str().expect("value"));
        }
        let res = req.body(r["body"].as_str().expect("body").to_string()).send().await.expect("send");
        assert_eq!(res.status(), 200, "{line}");
    }
    assert_eq!(inbox(&db).await.len(), before + 12);
    let mut script = Vec::new();
    written.write_wrk(&mut script, 3).expect("wrk");
    let script = String::from_utf8(script).expect("utf-8");
    assert_eq!(script.matches("wrk.format(").count(), 3, "{script}");
    assert!(script.contains("request = function()"), "{script}");
    // A table key is `[ expr ]`: `[[[` would be read as a long string opening.
    assert!(!script.contains("[[[") && script.contains("{[ [[\ncontent-type]] ] = "), "{script}");
    server.stop().await;
}

both_backends!(mixed_traffic_is_acknowledged_understood_and_stored_once);

/// Only the chosen platforms are used.
async fn a_platform_can_be_chosen(db: Db) {
    let settings = three_platforms();
    let traffic =
        Traffic::prepare(&settings, &db, Plan { platforms: &[Platform::Dingtalk], extra_users: 0, mix: Mix::Full })
            .await
            .expect("prep");
    assert_eq!(traffic.senders(), 3);
    assert!((0..8).all(|n| traffic.nth(n).platform == Platform::Dingtalk));
    let none = Settings { dingtalk: DingtalkSettings::default(), ..three_platforms() };
    let err =
        Traffic::prepare(&none, &db, Plan { platforms: &[Platform::Dingtalk], extra_users: 0, mix: Mix::Full }).await;
    assert!(err.err().is_some_and(|e| e.to_string().contains("no chat app configured")));
}

both_backends!(a_platform_can_be_chosen);

/// An org with users of its own is refused: loadgen writes test data and must not touch a real org.
async fn an_org_with_real_users_is_refused(db: Db) {
    let w = super::helpers::World::new(db.clone()).await;
    let mut settings = three_platforms();
    settings.dingtalk.apps[0].org = w.org.name.clone();
    let before = w.count("users").await;
    let err =
        Traffic::prepare(&settings, &db, Plan { platforms: &[Platform::Dingtalk], extra_users: 3, mix: Mix::Full })
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(err.contains("has users of its own") && err.contains("scratch database"), "{err}");
    assert_eq!(w.count("users").await, before, "nothing written");
}

both_backends!(an_org_with_real_users_is_refused);
