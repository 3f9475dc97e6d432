//! SQL built only with bound parameters: injection strings typed into chat and sent through the
//! JSON API land verbatim as data, match nothing they should not, and leave the schema and other
//! rows alone.

use super::helpers::*;
use super::http::{Server, settings};
use crate::both_backends;

use chatcrm::crm::Via;
use chatcrm::http::api_v1::{Scope, auth};
use chatcrm::store::Db;
use serde_json::{Value, json};

const ATTACKS: [&str; 6] = [
    "x'); DROP TABLE customers;--",
    "' OR '1'='1",
    "\" OR 1=1 --",
    "1; DELETE FROM users",
    "%' UNION SELECT 1 --",
    "$1 $2 ?1 :name @p",
];

async fn tables(db: &Db) -> Vec<String> {
    let mut tx = db.begin_read().await.expect("read");
    let sql = match db {
        Db::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        Db::Postgres(_) => "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
    };
    let names: Vec<String> = chatcrm::run!(&mut tx, |c| sqlx::query_scalar(sql).fetch_all(c).await).expect("tables");
    tx.commit().await.expect("commit");
    names
}

async fn injection_strings_are_data(db: Db) {
    let w = World::new(db.clone()).await;
    let schema = tables(&db).await;
    let users = w.count("users").await;
    let bot = w.bot();
    // Through chat: as customer names, visit notes, tags and lookups.
    for (i, attack) in ATTACKS.iter().enumerate() {
        let name = format!("客户{i} {attack}");
        let created = bot.handle(&w.msg(&w.r1, &format!("c{i}"), &format!("新客户 {name}"))).await.expect("create");
        assert!(created.text.contains("已创建客户"), "{attack}: {}", created.text);
        let visit =
            bot.handle(&w.msg(&w.r1, &format!("v{i}"), &format!("拜访 客户{i} 聊了 {attack}"))).await.expect("visit");
        assert!(visit.text.contains("已记录拜访"), "{attack}: {}", visit.text);
        let lookup = bot.handle(&w.msg(&w.r2, &format!("l{i}"), &format!("客户 {attack}"))).await.expect("lookup");
        assert!(
            !lookup.text.contains(&format!("客户{i}")),
            "r2 must not reach r1's customer through {attack}: {}",
            lookup.text
        );
    }
    assert_eq!(tables(&db).await, schema, "no table dropped or added");
    assert_eq!(w.count("users").await, users, "no user deleted");
    assert_eq!(w.count("customers").await, ATTACKS.len() as i64);
    assert_eq!(w.count("activities").await, ATTACKS.len() as i64);
    let mut tx = w.tx().await;
    let contents: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT content FROM activities ORDER BY id").fetch_all(c).await)
            .expect("contents");
    tx.rollback().await.expect("rollback");
    for (attack, content) in ATTACKS.iter().zip(&contents) {
        assert!(content.contains(attack), "stored verbatim: {content:?} should hold {attack:?}");
    }

    // Through the JSON API: as a new customer's name and tag, and as every list filter.
    let s = Server::start(settings(), db.clone()).await;
    let token = {
        let mut tx = db.begin().await.expect("begin");
        let (_, t) = auth::create_token_for(&mut tx, w.org.id, Some(w.r2.id), "t", Scope::Full, Via::Cli, t0())
            .await
            .expect("token");
        tx.commit().await.expect("commit");
        t
    };
    for (i, attack) in ATTACKS.iter().enumerate() {
        // Numbered: names that differ only in punctuation are the same company to the duplicate check.
        let name = format!("API{i} {attack}");
        let body = json!({ "name": name, "tags": [attack] });
        let r = s.send(s.client.post(s.url("/api/v1/customers")).bearer_auth(&token).json(&body)).await;
        assert_eq!(r.status, 201, "{attack}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(v["name"], name.trim(), "{v}");
        for filter in ["name", "tag", "owner", "grade"] {
            let url = reqwest::Url::parse_with_params(&s.url("/api/v1/customers"), [(filter, *attack)]).expect("url");
            let r = s.send(s.client.get(url).bearer_auth(&token)).await;
            // A filter naming no user or grade is refused with a clear 4xx.
            assert!(matches!(r.status, 200 | 400 | 422), "{filter}={attack}: {} {}", r.status, r.body);
            if r.status == 200 {
                let v: Value = serde_json::from_str(&r.body).expect("json");
                let found = v["customers"].as_array().expect("list");
                // r2 sees only their own customers: never r1's, whatever the filter says.
                assert!(
                    found.iter().all(|c| c["name"].as_str().is_some_and(|n| n.starts_with("API"))),
                    "{filter}={attack} leaked: {v}"
                );
            }
        }
    }
    assert_eq!(tables(&db).await, schema, "no table dropped or added");
    assert_eq!(w.count("users").await, users, "no user deleted");
    assert_eq!(w.count("customers").await, 2 * ATTACKS.len() as i64);
    s.stop().await;
}

both_backends!(injection_strings_are_data);

/// Every text field of every write endpoint of the JSON API, and every list filter, with each
/// injection string: stored verbatim and read back the same, filters answered with data or a
/// clear 4xx, never a 5xx, and the schema and other orgs' rows untouched. Also the chat
/// commands that write deals, leads and reminders.
async fn every_api_text_field_and_filter_takes_injection_as_data(db: Db) {
    let w = World::new(db.clone()).await;
    let schema = tables(&db).await;
    let other_org = w.customer(&w.r4, "别的组织的客户").await;
    let s = Server::start(settings(), db.clone()).await;
    let token = {
        let mut tx = db.begin().await.expect("begin");
        let (_, t) = auth::create_token_for(&mut tx, w.org.id, Some(w.r1.id), "t", Scope::Full, Via::Cli, t0())
            .await
            .expect("t");
        tx.commit().await.expect("commit");
        t
    };
    let send = async |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = s.client.request(method, s.url(path)).bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = s.send(req).await;
        assert!(r.status < 500, "{path}: {} {}", r.status, r.body);
        r
    };
    let created = |r: &super::http::Resp, what: &str| -> Value {
        assert!(matches!(r.status, 200 | 201), "{what}: {} {}", r.status, r.body);
        serde_json::from_str(&r.body).expect("json")
    };
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let get = reqwest::Method::GET;
    for (i, attack) in ATTACKS.iter().enumerate() {
        let a = json!(attack);
        let name = format!("API{i} {attack}");
        let body = json!({ "name": name, "industry": a, "region": a, "source": a, "tags": [attack] });
        let c = created(&send(post.clone(), "/api/v1/customers", Some(body)).await, "customer");
        let cid = c["id"].as_i64().expect("id");
        for field in ["industry", "region", "source"] {
            assert_eq!(c[field], a, "customer {field}: {c}");
        }
        let body = json!({ "industry": format!("{attack}!"), "add_tags": [format!("t{attack}")] });
        let c = created(&send(patch.clone(), &format!("/api/v1/customers/{cid}"), Some(body)).await, "patch");
        assert_eq!(c["industry"], json!(format!("{attack}!")), "{c}");
        let body = json!({ "name": format!("联系人{i}{attack}"), "title": a, "wechat": a });
        let ct =
            created(&send(post.clone(), &format!("/api/v1/customers/{cid}/contacts"), Some(body)).await, "contact");
        assert_eq!((&ct["title"], &ct["wechat"]), (&a, &a), "{ct}");
        let body = json!({ "customer_id": cid, "title": a, "amount_fen": 100_000 });
        let d = created(&send(post.clone(), "/api/v1/deals", Some(body)).await, "deal");
        assert_eq!(d["title"], a, "{d}");
        let did = d["id"].as_i64().expect("deal id");
        let body = json!({ "title": format!("{attack}?") });
        let d = created(&send(patch.clone(), &format!("/api/v1/deals/{did}"), Some(body)).await, "patch deal");
        assert_eq!(d["title"], json!(format!("{attack}?")), "{d}");
        let body = json!({ "customer_id": cid, "kind": "visit", "content": a, "next_step": a });
        let act = created(&send(post.clone(), "/api/v1/activities", Some(body)).await, "activity");
        assert_eq!(act["content"], a, "{act}");
        let body = json!({ "title": a, "due_at": "2026-12-01T08:00:00Z", "customer_id": cid });
        let t = created(&send(post.clone(), "/api/v1/tasks", Some(body)).await, "task");
        assert_eq!(t["title"], a, "{t}");
        let body = json!({ "company": format!("线索{i}{attack}"), "contact_name": a, "source": a,
                           "region": a, "industry": a, "tags": [attack] });
        let l = created(&send(post.clone(), "/api/v1/leads", Some(body)).await, "lead");
        let l = &l["lead"];
        assert_eq!(l["contact_name"], a, "{l}");
        assert_eq!(l["source"], a, "{l}");
        // Every list filter: data or a clear 4xx, and never a record of another org.
        for path in [
            "/api/v1/customers?name=",
            "/api/v1/customers?owner=",
            "/api/v1/customers?tag=",
            "/api/v1/customers?grade=",
            "/api/v1/deals?owner=",
            "/api/v1/deals?status=",
            "/api/v1/deals?stage=",
            "/api/v1/activities?user=",
            "/api/v1/activities?kind=",
            "/api/v1/tasks?owner=",
            "/api/v1/tasks?status=",
            "/api/v1/leads?status=",
            "/api/v1/customers?order=",
            "/api/v1/customers?cursor=",
        ] {
            let url = format!("{path}{}", urlencode(attack));
            let r = send(get.clone(), &url, None).await;
            assert!(matches!(r.status, 200 | 400 | 422), "{url}: {} {}", r.status, r.body);
            assert!(!r.body.contains("别的组织的客户"), "{url} leaked another org: {}", r.body);
        }
    }
    // Through chat: a deal title, a lead's company and contact, a reminder's title.
    let bot = w.bot();
    for (i, attack) in ATTACKS.iter().enumerate() {
        let reply = bot.handle(&w.msg(&w.r1, &format!("d{i}"), &format!("新商机 API{i} {attack} 10万"))).await;
        assert!(reply.expect("deal").text.contains("已建商机"), "deal {attack}");
        let reply = bot.handle(&w.msg(&w.r1, &format!("l{i}"), &format!("线索 聊天线索{i}{attack} 王经理{i}"))).await;
        assert!(reply.expect("lead").text.contains("线索"), "lead {attack}");
        let reply = bot.handle(&w.msg(&w.r1, &format!("t{i}"), &format!("提醒 明天下午3点 {attack}"))).await;
        assert!(reply.expect("task").text.contains("已设提醒"), "reminder {attack}");
    }
    assert_eq!(tables(&db).await, schema, "no table dropped or added");
    let mut tx = w.tx().await;
    let titles: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT title FROM tasks ORDER BY id").fetch_all(c).await)
            .expect("titles");
    let still: Option<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
            .bind(other_org.id)
            .fetch_optional(c)
            .await)
        .expect("other org");
    tx.rollback().await.expect("rollback");
    for attack in ATTACKS {
        assert!(titles.iter().any(|t| t.contains(attack)), "a task titled {attack:?} in {titles:?}");
    }
    assert_eq!(still.as_deref(), Some("别的组织的客户"), "another org's row untouched");
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

both_backends!(every_api_text_field_and_filter_takes_injection_as_data);
