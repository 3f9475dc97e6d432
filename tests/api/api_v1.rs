//! The JSON API (/api/v1) over a real socket on both backends: idempotent intake, token auth
//! (nothing written on any rejection, other orgs' records invisible), leads, rules, the OpenAPI
//! document; and `chatcrm tokens create|list|revoke` on SQLite.

use super::helpers::*;
use super::http::{Resp, Server, settings};
use crate::both_backends;

use std::process::Command;

use chatcrm::crm::lead_rules::{NewRule, Strategy, Target};
use chatcrm::crm::{self, Actor, Ctx, Via};
use chatcrm::http::api_v1::Scope;
use chatcrm::http::api_v1::auth;
use chatcrm::store::{Db, DbOptions};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_chatcrm");

/// A token of `org_id`, made as the CLI makes them.
async fn token(db: &Db, org_id: i64, scope: Scope) -> String {
    let mut tx = db.begin().await.expect("begin");
    let (_, t) = auth::create_token(&mut tx, org_id, "test", scope, Via::Cli, t0()).await.expect("token");
    tx.commit().await.expect("commit");
    t
}

/// Rows in `table` (a fixed list of names).
async fn rows(db: &Db, table: &'static str) -> i64 {
    let sql = match table {
        "leads" => "SELECT COUNT(*) FROM leads",
        "audit_log" => "SELECT COUNT(*) FROM audit_log",
        "outbox" => "SELECT COUNT(*) FROM outbox",
        "api_idempotency" => "SELECT COUNT(*) FROM api_idempotency",
        "lead_rules" => "SELECT COUNT(*) FROM lead_rules",
        other => panic!("rows: unknown table {other}"),
    };
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
    }
}

/// Every table a request could write to, counted.
async fn snapshot(db: &Db) -> [i64; 5] {
    [
        rows(db, "leads").await,
        rows(db, "audit_log").await,
        rows(db, "outbox").await,
        rows(db, "api_idempotency").await,
        rows(db, "lead_rules").await,
    ]
}

/// Bodies of the lead-assignment notices queued, oldest first, with their recipient (user id).
async fn notices(db: &Db) -> Vec<(Option<i64>, String)> {
    let sql = "SELECT user_id, body FROM outbox WHERE dedupe_key LIKE 'lead-assigned:%' ORDER BY id";
    match db {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.expect("notices"),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.expect("notices"),
    }
}

async fn call(s: &Server, token: Option<&str>, method: reqwest::Method, path: &str, body: Option<&Value>) -> Resp {
    let mut req = s.client.request(method, s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    s.send(req).await
}

async fn get(s: &Server, token: &str, path: &str) -> Resp {
    call(s, Some(token), reqwest::Method::GET, path, None).await
}

async fn post(s: &Server, token: &str, path: &str, body: &Value) -> Resp {
    call(s, Some(token), reqwest::Method::POST, path, Some(body)).await
}

async fn intake(s: &Server, token: &str, key: Option<&str>, body: &Value) -> Resp {
    let mut req = s.client.post(s.url("/api/v1/leads")).bearer_auth(token).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    s.send(req).await
}

/// A round-robin rule giving leads from 青岛 to Team A (reps r1, r2).
async fn qingdao_rule(w: &World) {
    let mut tx = w.tx().await;
    let ctx = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    let team = crm::users::team_by_name(&mut tx, &ctx, "Team A").await.expect("team");
    let rule = NewRule {
        name: "青岛".into(),
        position: None,
        region_prefix: Some("青岛".into()),
        industry: None,
        source: None,
        tag: None,
        target: Target::Team(team.id),
        strategy: Strategy::RoundRobin,
        capacity: None,
    };
    crm::lead_rules::create_rule(&mut tx, &ctx, rule).await.expect("rule");
    tx.commit().await.expect("commit");
}

fn form(company: &str, phone: &str) -> Value {
    json!({ "company": company, "contact_name": "王经理", "phone": phone, "region": "青岛市南区",
            "source": "website", "tags": ["官网"] })
}

// ---------------------------------------------------------------------------------------------

async fn intake_is_idempotent(db: Db) {
    let w = World::new(db.clone()).await;
    qingdao_rule(&w).await;
    let t = token(&db, w.org.id, Scope::Intake).await;
    let s = Server::start(settings(), db.clone()).await;
    let before = snapshot(&db).await;

    let first = intake(&s, &t, Some("form-1"), &form("青岛海科机械有限公司", "13800000001")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let v = first.json();
    assert_eq!(v["outcome"], "created", "{v}");
    assert_eq!(v["routed"]["by"], "rule", "{v}");
    assert_eq!(v["routed"]["rule"], "青岛", "{v}");
    assert_eq!(v["lead"]["status"], "assigned", "{v}");
    assert_eq!(v["lead"]["owner"]["handle"], "r1", "{v}");
    assert_eq!(v["lead"]["tags"], json!(["官网"]), "{v}");
    assert_eq!(v["lead_id"], v["lead"]["id"]);
    let after_first = snapshot(&db).await;
    assert_eq!(after_first[0], before[0] + 1, "one lead");
    assert_eq!(after_first[3], before[3] + 1, "one stored response");
    // The rep is told, in the intake's transaction, which rule gave it to them.
    let n = notices(&db).await;
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].0, Some(w.r1.id));
    assert!(n[0].1.contains("按规则『青岛』分配给你") && n[0].1.contains("青岛海科机械"), "{}", n[0].1);

    // The same key and body (spacing and key order aside): the first response, nothing written.
    let raw = r#"{"tags":["官网"], "source":"website","region":"青岛市南区","phone":"13800000001",
                 "contact_name":"王经理","company":"青岛海科机械有限公司"}"#;
    let req = s
        .client
        .post(s.url("/api/v1/leads"))
        .bearer_auth(&t)
        .header("Idempotency-Key", "form-1")
        .header("content-type", "application/json")
        .body(raw);
    let again = s.send(req).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(snapshot(&db).await, after_first, "a replay writes nothing");

    // The same key with another body: 422, nothing written.
    let other = intake(&s, &t, Some("form-1"), &form("青岛另一家有限公司", "13800000002")).await;
    other.assert_error(422, "idempotency_key_reused");
    assert!(other.json()["message"].as_str().unwrap_or_default().contains("form-1"), "{}", other.body);
    assert_eq!(snapshot(&db).await, after_first);

    // A bad key is refused before anything happens.
    let bad = intake(&s, &t, Some(""), &form("青岛第三家有限公司", "13800000003")).await;
    bad.assert_error(400, "bad_idempotency_key");
    assert_eq!(snapshot(&db).await, after_first);

    // Without a key the dedupe still holds: the same company is a duplicate (200), no new lead.
    let dup = intake(&s, &t, None, &form("青岛海科机械有限公司", "13900000009")).await;
    assert_eq!(dup.status, 200, "{}", dup.body);
    assert_eq!(dup.json()["outcome"], "duplicate");
    assert_eq!(dup.json()["lead_id"], v["lead_id"]);
    assert!(dup.json()["lead"].is_null(), "an existing lead is not shown: {}", dup.body);
    assert_eq!(rows(&db, "leads").await, after_first[0]);

    // Eight clients sending the same new key at once: one lead, eight identical answers.
    let body = form("青岛并发测试有限公司", "13800000004");
    let sends = (0..8).map(|_| intake(&s, &t, Some("form-2"), &body));
    let answers = futures_join(sends).await;
    for a in &answers {
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.body, answers[0].body);
    }
    assert_eq!(answers.iter().filter(|a| a.header("idempotent-replayed").is_none()).count(), 1);
    assert_eq!(rows(&db, "leads").await, after_first[0] + 1);
    assert_eq!(notices(&db).await.len(), 2);
    s.stop().await;
}

/// Runs the futures concurrently (on this task) and returns their outputs in order.
async fn futures_join<F: std::future::Future<Output = Resp>>(futs: impl Iterator<Item = F>) -> Vec<Resp> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<Resp>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => out[i] = Some(r),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|r| r.expect("every future finished")).collect()
}

async fn rejected_requests_write_nothing(db: Db) {
    let w = World::new(db.clone()).await;
    qingdao_rule(&w).await;
    let full = token(&db, w.org.id, Scope::Full).await;
    let intake_only = token(&db, w.org.id, Scope::Intake).await;
    let other_org = token(&db, w.org2.id, Scope::Full).await;
    let revoked = token(&db, w.org.id, Scope::Full).await;
    {
        let mut tx = db.begin().await.expect("begin");
        let rows = chatcrm::store::tokens::list(&mut tx, Some(w.org.id)).await.expect("list");
        let id = rows.last().expect("token").id;
        assert!(auth::revoke_token(&mut tx, id, Via::Cli, t0()).await.expect("revoke").is_some());
        tx.commit().await.expect("commit");
    }
    let s = Server::start(settings(), db.clone()).await;
    let lead = intake(&s, &full, None, &form("青岛海科机械有限公司", "13800000001")).await;
    assert_eq!(lead.status, 201, "{}", lead.body);
    let lead_id = lead.json()["lead_id"].as_i64().expect("lead id");
    let rules = get(&s, &full, "/api/v1/rules").await;
    let rule_id = rules.json()["rules"][0]["id"].as_i64().expect("rule id");
    let before = snapshot(&db).await;

    let body = form("青岛新公司有限公司", "13800000002");
    let with_key = |token: Option<&str>| {
        let mut req = s.client.post(s.url("/api/v1/leads")).header("Idempotency-Key", "k-1").json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    };
    // Missing, malformed, unknown and revoked tokens: 401 with a Bearer challenge.
    let unknown = format!("ccrm_{}", "ab".repeat(24));
    for (what, req) in [
        ("missing", with_key(None)),
        ("not bearer", with_key(None).header("authorization", format!("Basic {full}"))),
        ("malformed", with_key(None).header("authorization", "Bearer not-a-token")),
        ("truncated", with_key(None).header("authorization", format!("Bearer {}", &full[..20]))),
        ("unknown", with_key(Some(&unknown))),
        ("revoked", with_key(Some(&revoked))),
    ] {
        let r = s.send(req).await;
        r.assert_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
    }
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/v1/leads/{lead_id}")),
        (reqwest::Method::GET, "/api/v1/leads".to_string()),
        (reqwest::Method::POST, format!("/api/v1/leads/{lead_id}/assign")),
        (reqwest::Method::GET, "/api/v1/rules".to_string()),
        (reqwest::Method::DELETE, format!("/api/v1/rules/{rule_id}")),
    ] {
        let r = call(&s, None, method.clone(), &path, Some(&json!({ "user": "r2" }))).await;
        r.assert_error(401, "unauthorized");
        let r = call(&s, Some(&revoked), method, &path, Some(&json!({ "user": "r2" }))).await;
        r.assert_error(401, "unauthorized");
    }
    // An intake-only token may only submit leads.
    get(&s, &intake_only, &format!("/api/v1/leads/{lead_id}")).await.assert_error(403, "forbidden");
    get(&s, &intake_only, "/api/v1/leads").await.assert_error(403, "forbidden");
    post(&s, &intake_only, &format!("/api/v1/leads/{lead_id}/assign"), &json!({ "user": "r2" }))
        .await
        .assert_error(403, "forbidden");
    post(&s, &intake_only, "/api/v1/rules", &json!({ "name": "x", "team": "Team A" }))
        .await
        .assert_error(403, "forbidden");
    call(&s, Some(&intake_only), reqwest::Method::DELETE, &format!("/api/v1/rules/{rule_id}"), None)
        .await
        .assert_error(403, "forbidden");
    // Another org's token: org one's records do not exist for it.
    get(&s, &other_org, &format!("/api/v1/leads/{lead_id}")).await.assert_error(404, "not_found");
    post(&s, &other_org, &format!("/api/v1/leads/{lead_id}/assign"), &json!({ "user": "r4" }))
        .await
        .assert_error(404, "not_found");
    call(&s, Some(&other_org), reqwest::Method::DELETE, &format!("/api/v1/rules/{rule_id}"), None)
        .await
        .assert_error(404, "not_found");
    let list = get(&s, &other_org, "/api/v1/leads").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["total"], 0, "{}", list.body);
    assert_eq!(get(&s, &other_org, "/api/v1/rules").await.json()["rules"], json!([]));
    // Invalid requests with a good token write nothing either.
    intake(&s, &full, Some("k-2"), &json!({ "company": " " })).await.assert_error(400, "invalid");
    intake(&s, &full, Some("k-3"), &json!({ "company": "x", "phone": "abc" })).await.assert_error(400, "invalid");
    intake(&s, &full, Some("k-4"), &json!({ "company": "x", "fax": "1" })).await.assert_error(400, "bad_json");
    let raw = s
        .client
        .post(s.url("/api/v1/leads"))
        .bearer_auth(&full)
        .header("content-type", "application/json")
        .header("Idempotency-Key", "k-5")
        .body("{not json");
    s.send(raw).await.assert_error(400, "bad_json");
    post(&s, &full, &format!("/api/v1/leads/{lead_id}/assign"), &json!({ "user": "nobody" }))
        .await
        .assert_error(400, "unknown_user");

    assert_eq!(snapshot(&db).await, before, "a rejected request wrote something");
    s.stop().await;
}

async fn leads_create_get_list_assign(db: Db) {
    let w = World::new(db.clone()).await;
    qingdao_rule(&w).await;
    let t = token(&db, w.org.id, Scope::Full).await;
    let s = Server::start(settings(), db.clone()).await;
    let mut ids = Vec::new();
    for (company, phone, region, source, to_pool) in [
        ("青岛一号有限公司", "13800000001", "青岛市南区", "website", false),
        ("青岛二号有限公司", "13800000002", "青岛崂山区", "展会", false),
        ("上海三号有限公司", "13800000003", "上海浦东", "website", false),
        ("青岛四号有限公司", "13800000004", "青岛黄岛区", "website", true),
    ] {
        let r = post(
            &s,
            &t,
            "/api/v1/leads",
            &json!({ "company": company, "phone": phone, "region": region, "source": source, "to_pool": to_pool }),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.json()["lead_id"].as_i64().expect("id"));
    }
    // Round robin over Team A; no rule for Shanghai; the fourth asked for the pool.
    let got = get(&s, &t, &format!("/api/v1/leads/{}", ids[1])).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let g = got.json();
    assert_eq!(g["company"], "青岛二号有限公司");
    assert_eq!(g["owner"]["handle"], "r2", "{g}");
    assert_eq!(g["status"], "assigned");
    assert!(g["assign_reason"].as_str().unwrap_or_default().contains("青岛"), "{g}");
    assert_eq!(get(&s, &t, &format!("/api/v1/leads/{}", ids[2])).await.json()["status"], "pool");
    get(&s, &t, "/api/v1/leads/999999").await.assert_error(404, "not_found");
    get(&s, &t, "/api/v1/leads/abc").await.assert_error(400, "bad_id");

    let list = |q: &'static str| {
        let s = &s;
        let t = &t;
        async move {
            let r = get(s, t, &format!("/api/v1/leads{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            let v = r.json();
            let ids: Vec<i64> = v["leads"].as_array().expect("leads").iter().filter_map(|l| l["id"].as_i64()).collect();
            (v["total"].as_i64().unwrap_or(-1), ids)
        }
    };
    assert_eq!(list("").await, (4, ids.clone()));
    assert_eq!(list("?status=pool").await, (2, vec![ids[2], ids[3]]));
    assert_eq!(list("?owner=r1").await, (1, vec![ids[0]]));
    assert_eq!(list("?owner=@r2&status=assigned").await, (1, vec![ids[1]]));
    assert_eq!(list("?source=website").await, (3, vec![ids[0], ids[2], ids[3]]));
    assert_eq!(list("?region=%E9%9D%92%E5%B2%9B").await, (3, vec![ids[0], ids[1], ids[3]]));
    assert_eq!(list("?region=%E9%9D%92%E5%B2%9B&source=website").await, (2, vec![ids[0], ids[3]]));
    assert_eq!(list("?limit=2").await, (4, vec![ids[0], ids[1]]));
    assert_eq!(list("?limit=2&offset=3").await, (4, vec![ids[3]]));
    get(&s, &t, "/api/v1/leads?status=open").await.assert_error(400, "bad_status");
    get(&s, &t, "/api/v1/leads?owner=nobody").await.assert_error(400, "unknown_user");
    get(&s, &t, "/api/v1/leads?limit=0").await.assert_error(400, "bad_limit");
    get(&s, &t, "/api/v1/leads?limit=501").await.assert_error(400, "bad_limit");
    get(&s, &t, "/api/v1/leads?offset=-1").await.assert_error(400, "bad_offset");
    get(&s, &t, "/api/v1/leads?limit=x").await.assert_error(400, "bad_query");

    // Assign a pool lead to r3 (another team: the API acts as the org's admin); r3 is told.
    let notices_before = notices(&db).await.len();
    let audit_before = rows(&db, "audit_log").await;
    let r = post(&s, &t, &format!("/api/v1/leads/{}/assign", ids[3]), &json!({ "user": "r3" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r.json();
    assert_eq!(a["owner"]["handle"], "r3", "{a}");
    assert_eq!(a["status"], "assigned");
    assert!(a["assigned_at"].is_string(), "{a}");
    let n = notices(&db).await;
    assert_eq!(n.len(), notices_before + 1);
    let last = n.last().expect("notice");
    assert_eq!(last.0, Some(w.r3.id));
    assert!(last.1.contains("通过 API（test）分配给你"), "{}", last.1);
    assert_eq!(rows(&db, "audit_log").await, audit_before + 1);
    assert_eq!(list("?owner=r3").await, (1, vec![ids[3]]));
    post(&s, &t, "/api/v1/leads/999999/assign", &json!({ "user": "r3" })).await.assert_error(404, "not_found");
    post(&s, &t, &format!("/api/v1/leads/{}/assign", ids[0]), &json!({ "who": "r3" }))
        .await
        .assert_error(400, "bad_json");
    // A user of another org is unknown here.
    post(&s, &t, &format!("/api/v1/leads/{}/assign", ids[0]), &json!({ "user": "r4" }))
        .await
        .assert_error(400, "unknown_user");
    s.stop().await;
}

async fn rules_through_the_api(db: Db) {
    let w = World::new(db.clone()).await;
    let t = token(&db, w.org.id, Scope::Full).await;
    let s = Server::start(settings(), db.clone()).await;
    assert_eq!(get(&s, &t, "/api/v1/rules").await.json(), json!({ "rules": [] }));

    let r = post(
        &s,
        &t,
        "/api/v1/rules",
        &json!({ "name": "官网", "source": "website", "team": "Team B", "strategy": "least_loaded", "capacity": 5 }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let web = r.json();
    assert_eq!(web["target_team"], "Team B", "{web}");
    assert_eq!(web["target_user"], Value::Null);
    assert_eq!(web["strategy"], "least_loaded");
    assert_eq!(web["capacity"], 5);
    assert_eq!(web["position"], 1);
    let r =
        post(&s, &t, "/api/v1/rules", &json!({ "name": "青岛", "region_prefix": "青岛", "user": "r1", "position": 1 }))
            .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let qd = r.json();
    assert_eq!(qd["target_user"], "r1", "{qd}");
    assert_eq!(qd["strategy"], "round_robin");
    let listed = get(&s, &t, "/api/v1/rules").await.json();
    let names: Vec<&str> =
        listed["rules"].as_array().expect("rules").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["青岛", "官网"], "{listed}");

    let before = rows(&db, "lead_rules").await;
    for (body, status, code) in [
        (json!({ "name": "青岛", "team": "Team A" }), 409, "conflict"),
        (json!({ "name": "x", "team": "Team A", "user": "r1" }), 400, "bad_target"),
        (json!({ "name": "x" }), 400, "bad_target"),
        (json!({ "name": "x", "team": "Team Z" }), 400, "unknown_team"),
        (json!({ "name": "x", "user": "nobody" }), 400, "unknown_user"),
        (json!({ "name": "x", "team": "Team A", "strategy": "random" }), 400, "bad_strategy"),
        (json!({ "name": "x", "team": "Team A", "capacity": 0 }), 400, "invalid"),
        (json!({ "name": "x", "team": "Team A", "colour": "red" }), 400, "bad_json"),
    ] {
        post(&s, &t, "/api/v1/rules", &body).await.assert_error(status, code);
    }
    assert_eq!(rows(&db, "lead_rules").await, before);

    // The rules route API intake: 青岛 first, then the website rule (least loaded in Team B: r3).
    let a = post(&s, &t, "/api/v1/leads", &json!({ "company": "甲", "region": "青岛", "source": "website" })).await;
    assert_eq!(a.json()["routed"]["rule"], "青岛", "{}", a.body);
    assert_eq!(a.json()["lead"]["owner"]["handle"], "r1");
    let b = post(&s, &t, "/api/v1/leads", &json!({ "company": "乙", "region": "北京", "source": "website" })).await;
    assert_eq!(b.json()["routed"]["rule"], "官网", "{}", b.body);
    assert_eq!(b.json()["lead"]["owner"]["handle"], "r3");
    let c = post(&s, &t, "/api/v1/leads", &json!({ "company": "丙", "region": "北京" })).await;
    assert_eq!(c.json()["routed"]["by"], "pool", "{}", c.body);
    assert_eq!(c.json()["routed"]["rule"], Value::Null);
    assert_eq!(c.json()["lead"]["owner"], Value::Null);

    let id = qd["id"].as_i64().expect("id");
    let d = call(&s, Some(&t), reqwest::Method::DELETE, &format!("/api/v1/rules/{id}"), None).await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.json()["name"], "青岛");
    let listed = get(&s, &t, "/api/v1/rules").await.json();
    assert_eq!(listed["rules"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["rules"][0]["position"], 1, "{listed}");
    call(&s, Some(&t), reqwest::Method::DELETE, &format!("/api/v1/rules/{id}"), None)
        .await
        .assert_error(404, "not_found");
    s.stop().await;
}

/// Many intakes at once through one round-robin rule: every one is taken (none fails on a
/// conflict), and the rule's two reps get exactly half each.
async fn concurrent_intakes_share_round_robin(db: Db) {
    let w = World::new(db.clone()).await;
    qingdao_rule(&w).await;
    let t = token(&db, w.org.id, Scope::Intake).await;
    let s = Server::start(settings(), db.clone()).await;
    let bodies: Vec<Value> =
        (0..40).map(|i| form(&format!("青岛并发{i:02}有限公司"), &format!("1380000{i:04}"))).collect();
    let keys: Vec<String> = (0..40).map(|i| format!("rr-{i}")).collect();
    let answers = futures_join(bodies.iter().zip(&keys).map(|(b, k)| intake(&s, &t, Some(k), b))).await;
    let mut owners = std::collections::BTreeMap::<String, usize>::new();
    for a in &answers {
        assert_eq!(a.status, 201, "{}", a.body);
        let owner = a.json()["lead"]["owner"]["handle"].as_str().unwrap_or("-").to_string();
        *owners.entry(owner).or_default() += 1;
    }
    assert_eq!(owners, [("r1".to_string(), 20), ("r2".to_string(), 20)].into_iter().collect(), "{owners:?}");
    assert_eq!(rows(&db, "leads").await, 40);
    assert_eq!(notices(&db).await.len(), 40);
    s.stop().await;
}

both_backends!(
    intake_is_idempotent,
    rejected_requests_write_nothing,
    leads_create_get_list_assign,
    rules_through_the_api,
    concurrent_intakes_share_round_robin,
);

/// The OpenAPI document: public, valid JSON, every path and the bearer scheme.
#[tokio::test]
async fn openapi_document_lists_the_paths() {
    let t = TestDb::sqlite().await;
    let s = Server::start(settings(), t.db.clone()).await;
    let r = s.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"));
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3."), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/leads", &["get", "post"][..]),
        ("/api/v1/leads/{id}", &["get"]),
        ("/api/v1/leads/{id}/assign", &["post"]),
        ("/api/v1/rules", &["get", "post"]),
        ("/api/v1/rules/{id}", &["delete"]),
        ("/api/v1/customers", &["get", "post"]),
        ("/api/v1/customers/{id}", &["get", "patch"]),
        ("/api/v1/customers/{id}/contacts", &["post"]),
        ("/api/v1/deals", &["get"]),
        ("/api/v1/deals/{id}", &["get"]),
        ("/api/v1/activities", &["get", "post"]),
        ("/api/v1/tasks", &["get"]),
        ("/api/v1/tasks/{id}/complete", &["post"]),
        ("/api/v1/users", &["get"]),
        ("/api/v1/teams", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
    ] {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path}");
        }
    }
    let post = &paths["/api/v1/leads"]["post"];
    let params = post["parameters"].as_array().expect("parameters");
    assert!(params.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"), "{post}");
    for status in ["200", "201", "401", "422"] {
        assert!(post["responses"].get(status).is_some(), "POST /api/v1/leads {status}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer", "{}", doc["components"]);
    for schema in [
        "LeadIn",
        "LeadOut",
        "IntakeOut",
        "RuleIn",
        "RuleOut",
        "ErrorBody",
        "CustomerList",
        "CustomerOut",
        "DealOut",
        "ActivityIn",
        "Activity",
        "TaskList",
        "UserList",
    ] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema}");
    }
    // Unknown paths under /api/v1 keep the JSON error shape.
    s.get("/api/v1/nothing").await.assert_error(404, "not_found");
    s.stop().await;
}

/// `chatcrm tokens create|list|revoke`: the token is printed once, only its hash is stored, and a
/// revoked token no longer authenticates.
#[tokio::test]
async fn tokens_cli_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path()).args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHATCRM_") {
                cmd.env_remove(&key);
            }
        }
        let out = cmd.env("CHATCRM_DATABASE_URL", &url).env("CHATCRM_LOG_LEVEL", "error").output().expect("run");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, _, err) = run(&["users", "add", "boss", "老板", "--role", "admin", "--org", "Acme"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["tokens", "create", "--org", "Acme", "--name", "website form", "--scope", "intake"]);
    assert!(ok, "{err}");
    assert!(err.contains("not shown again"), "{err}");
    let token = out.lines().find(|l| l.starts_with("ccrm_")).expect("token line").trim().to_string();
    assert_eq!(token.len(), 53, "{out}");
    let (ok, _, err) = run(&["tokens", "create", "--org", "Nope", "--name", "x"]);
    assert!(!ok && err.contains("Nope"), "{err}");

    let db = Db::connect(&DbOptions::new(&url)).await.expect("open");
    let (hash, prefix): (String, String) = sqlx::query_as("SELECT token_hash, prefix FROM api_tokens")
        .fetch_one(match &db {
            Db::Sqlite(p) => p,
            Db::Postgres(_) => unreachable!("sqlite"),
        })
        .await
        .expect("row");
    assert_eq!(hash, auth::hash_token(&token));
    assert!(token.starts_with(&prefix) && prefix.len() < 20, "{prefix}");
    let caller = auth::authenticate(&db, &token).await.expect("auth").expect("valid token");
    assert_eq!(caller.scope, Scope::Intake);

    let (ok, out, err) = run(&["tokens", "list", "--org", "Acme"]);
    assert!(ok, "{err}");
    assert!(out.contains(&prefix) && out.contains("website form") && out.contains("active"), "{out}");
    assert!(!out.contains(&token), "the list shows the token: {out}");

    let id = caller.token_id.to_string();
    let (ok, out, err) = run(&["tokens", "revoke", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    assert!(auth::authenticate(&db, &token).await.expect("auth").is_none(), "revoked token still works");
    let (ok, _, err) = run(&["tokens", "revoke", &id]);
    assert!(!ok && err.contains("no active API token"), "{err}");
    let (ok, out, _) = run(&["tokens", "list"]);
    assert!(ok && out.contains("revoked"), "{out}");
    db.close().await;
}
