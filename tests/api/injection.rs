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
