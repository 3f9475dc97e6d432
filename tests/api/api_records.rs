//! `/api/v1` customers, deals, activities, tasks, users and teams on both backends: permissions
//! per token (org, rep, manager, another org), filters, cursor paging that stays stable while
//! records are added, and bad input answered with 4xx and nothing written.

use super::helpers::*;
use super::http::{Resp, Server, settings};
use crate::both_backends;

use chatcrm::crm::{self, Via};
use chatcrm::http::api_v1::{Scope, auth};
use chatcrm::store::Db;
use serde_json::{Value, json};

both_backends!(
    records_follow_the_chat_permissions,
    paging_is_stable_and_bad_input_is_4xx,
    writes_follow_the_chat_rules
);

async fn token_for(db: &Db, org_id: i64, user: Option<i64>) -> String {
    let mut tx = db.begin().await.expect("begin");
    let (_, t) =
        auth::create_token_for(&mut tx, org_id, user, "test", Scope::Full, Via::Cli, t0()).await.expect("token");
    tx.commit().await.expect("commit");
    t
}

async fn get(s: &Server, token: &str, path: &str) -> Resp {
    s.send(s.client.get(s.url(path)).bearer_auth(token)).await
}

async fn post(s: &Server, token: &str, path: &str, body: &Value) -> Resp {
    s.send(s.client.post(s.url(path)).bearer_auth(token).json(body)).await
}

fn ids(v: &Value, key: &str) -> Vec<i64> {
    v[key].as_array().unwrap_or_else(|| panic!("{key} in {v}")).iter().filter_map(|r| r["id"].as_i64()).collect()
}

struct Fixture {
    w: World,
    mine: Vec<i64>,
    r2s: i64,
    r3s: i64,
    deal: i64,
    task: i64,
}

async fn fixture(db: Db) -> Fixture {
    let w = World::new(db).await;
    let mut mine = Vec::new();
    for name in ["海尔智家", "青岛啤酒", "海信视像"] {
        mine.push(w.customer(&w.r1, name).await.id);
    }
    let r2s = w.customer(&w.r2, "美的集团").await.id;
    let r3s = w.customer(&w.r3, "格力电器").await.id;
    w.customer(&w.r4, "别的组织的客户").await;
    let mut tx = w.tx().await;
    let ctx = w.ctx(&w.r1);
    let patch = crm::customers::CustomerPatch { grade: Some(crm::Grade::A), ..Default::default() };
    crm::customers::update_customer(&mut tx, &ctx, mine[0], patch).await.expect("grade");
    let new = crm::deals::NewDeal {
        customer_id: mine[0],
        title: "二期".into(),
        amount_fen: 100_000_000,
        stage: Some("proposal".into()),
        expected_close: None,
        owner_id: None,
    };
    let deal = crm::deals::create_deal(&mut tx, &ctx, new).await.expect("deal").id;
    let patch = crm::deals::DealPatch { stage: Some("negotiation".into()), ..Default::default() };
    crm::deals::update_deal(&mut tx, &ctx, deal, patch).await.expect("move");
    let new = crm::tasks::NewTask {
        title: "给海尔打电话".into(),
        due_at: t0() - chrono::Duration::hours(1),
        owner_id: None,
        customer_id: Some(mine[0]),
        deal_id: None,
        origin: crm::TaskOrigin::Manual,
    };
    let task = crm::tasks::create_task(&mut tx, &ctx, new).await.expect("task").id;
    tx.commit().await.expect("commit");
    Fixture { w, mine, r2s, r3s, deal, task }
}

async fn records_follow_the_chat_permissions(db: Db) {
    let f = fixture(db.clone()).await;
    let w = &f.w;
    let s = Server::start(settings(), db.clone()).await;
    let org = token_for(&db, w.org.id, None).await;
    let rep = token_for(&db, w.org.id, Some(w.r1.id)).await;
    let manager = token_for(&db, w.org.id, Some(w.ma.id)).await;
    let other = token_for(&db, w.org2.id, None).await;

    let all = get(&s, &org, "/api/v1/customers").await;
    assert_eq!(all.status, 200, "{}", all.body);
    let mut expect = vec![f.r3s, f.r2s, f.mine[2], f.mine[1], f.mine[0]];
    assert_eq!(ids(&all.json(), "customers"), expect, "the org's, newest first");
    let r = get(&s, &rep, "/api/v1/customers").await.json();
    assert_eq!(ids(&r, "customers"), vec![f.mine[2], f.mine[1], f.mine[0]], "a rep sees their own");
    let r = get(&s, &manager, "/api/v1/customers").await.json();
    expect.retain(|id| *id != f.r3s);
    assert_eq!(ids(&r, "customers"), expect, "a manager sees team A's");
    let r = get(&s, &other, "/api/v1/customers").await.json();
    assert_eq!(ids(&r, "customers").len(), 1, "another org's token sees its org only");

    let one = get(&s, &rep, &format!("/api/v1/customers/{}", f.mine[0])).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["name"], "海尔智家");
    assert!(one.json()["contacts"].is_array() && one.json()["tags"].is_array(), "{}", one.body);
    get(&s, &rep, &format!("/api/v1/customers/{}", f.r2s)).await.assert_error(403, "forbidden");
    get(&s, &other, &format!("/api/v1/customers/{}", f.r2s)).await.assert_error(404, "not_found");

    let r = get(&s, &org, "/api/v1/customers?grade=a").await.json();
    assert_eq!(ids(&r, "customers"), vec![f.mine[0]]);
    let r = get(&s, &org, "/api/v1/customers?name=%E6%B5%B7").await.json(); // 海
    assert_eq!(ids(&r, "customers"), vec![f.mine[2], f.mine[0]]);
    let r = get(&s, &org, "/api/v1/customers?owner=r2").await.json();
    assert_eq!(ids(&r, "customers"), vec![f.r2s]);
    let r = get(&s, &org, "/api/v1/customers?name=%25").await.json();
    assert!(ids(&r, "customers").is_empty(), "% is taken literally: {r}");

    let d = get(&s, &rep, &format!("/api/v1/deals/{}", f.deal)).await;
    assert_eq!(d.status, 200, "{}", d.body);
    let dv = d.json();
    let stages: Vec<&str> =
        dv["history"].as_array().expect("history").iter().filter_map(|m| m["to_stage"].as_str()).collect();
    assert_eq!(stages, vec!["proposal", "negotiation"]);
    let r = get(&s, &org, "/api/v1/deals?status=open&stage=negotiation").await.json();
    assert_eq!(ids(&r, "deals"), vec![f.deal]);
    let r = get(&s, &token_for(&db, w.org.id, Some(w.r2.id)).await, "/api/v1/deals").await.json();
    assert!(ids(&r, "deals").is_empty(), "r2 has no deals: {r}");

    // Activities: a user logs them; an org token cannot (nobody did it).
    let body = json!({"customer_id": f.mine[1], "kind": "visit", "content": "聊了报价"});
    let made = post(&s, &rep, "/api/v1/activities", &body).await;
    assert_eq!(made.status, 201, "{}", made.body);
    post(&s, &org, "/api/v1/activities", &body).await.assert_error(400, "invalid");
    let theirs = json!({"customer_id": f.r2s, "kind": "call", "content": "x"});
    post(&s, &rep, "/api/v1/activities", &theirs).await.assert_error(403, "forbidden");
    let r = get(&s, &manager, "/api/v1/activities?kind=visit").await.json();
    assert_eq!(ids(&r, "activities"), vec![made.json()["id"].as_i64().expect("id")]);
    let r = get(&s, &token_for(&db, w.org.id, Some(w.mb.id)).await, "/api/v1/activities").await.json();
    assert!(ids(&r, "activities").is_empty(), "team B's manager: {r}");

    // Tasks: overdue ones, then completed once.
    let path = format!("/api/v1/tasks?status=open&due_before={}", t0().to_rfc3339().replace('+', "%2B"));
    assert_eq!(ids(&get(&s, &rep, &path).await.json(), "tasks"), vec![f.task]);
    let done = post(&s, &rep, &format!("/api/v1/tasks/{}/complete", f.task), &json!({})).await;
    assert_eq!((done.status, done.json()["status"].as_str()), (200, Some("done")), "{}", done.body);
    post(&s, &rep, &format!("/api/v1/tasks/{}/complete", f.task), &json!({})).await.assert_error(400, "invalid");
    assert!(ids(&get(&s, &rep, &path).await.json(), "tasks").is_empty());

    let users = get(&s, &rep, "/api/v1/users").await.json();
    assert_eq!(users["users"].as_array().map(Vec::len), Some(6), "{users}");
    let teams = get(&s, &rep, "/api/v1/teams").await.json();
    assert_eq!(teams["teams"].as_array().map(Vec::len), Some(2), "{teams}");
    // A rep's token lists the rep's own leads only.
    let leads = get(&s, &rep, "/api/v1/leads").await;
    assert_eq!(leads.status, 200, "{}", leads.body);
    s.stop().await;
}

async fn paging_is_stable_and_bad_input_is_4xx(db: Db) {
    let f = fixture(db.clone()).await;
    let w = &f.w;
    let s = Server::start(settings(), db.clone()).await;
    let org = token_for(&db, w.org.id, None).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/customers?limit=2&cursor={c}"),
            None => "/api/v1/customers?limit=2".to_string(),
        };
        let page = get(&s, &org, &path).await.json();
        seen.extend(ids(&page, "customers"));
        pages += 1;
        // A customer added while paging lands before the first page, never in a later one.
        w.customer(&w.r1, &format!("新客户{pages}")).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec![f.r3s, f.r2s, f.mine[2], f.mine[1], f.mine[0]], "no record twice, none skipped");
    let oldest = get(&s, &org, "/api/v1/customers?order=oldest&limit=1").await.json();
    assert_eq!(ids(&oldest, "customers"), vec![f.mine[0]]);

    for (path, code) in [
        ("/api/v1/customers?limit=0", "bad_limit"),
        ("/api/v1/customers?limit=501", "bad_limit"),
        ("/api/v1/customers?cursor=abc", "bad_cursor"),
        ("/api/v1/customers?order=sideways", "bad_order"),
        ("/api/v1/customers?grade=Z", "bad_grade"),
        ("/api/v1/customers?owner=nobody", "unknown_user"),
        ("/api/v1/deals?status=maybe", "bad_status"),
        ("/api/v1/activities?kind=dance", "bad_kind"),
        ("/api/v1/activities?since=yesterday", "bad_query"),
        ("/api/v1/tasks?status=later", "bad_status"),
        ("/api/v1/customers/abc", "bad_id"),
    ] {
        get(&s, &org, path).await.assert_error(400, code);
    }
    let before = w.count("activities").await;
    let rep = token_for(&db, w.org.id, Some(w.r1.id)).await;
    for body in [
        json!({"customer_id": f.mine[0], "kind": "visit"}),
        json!({"customer_id": f.mine[0], "kind": "dance", "content": "x"}),
        json!({"customer_id": f.mine[0], "kind": "visit", "content": "x", "extra": 1}),
        json!([1, 2]),
    ] {
        let r = post(&s, &rep, "/api/v1/activities", &body).await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
    }
    let r = s.send(s.client.post(s.url("/api/v1/activities")).bearer_auth(&rep).body("{not json")).await;
    assert!(r.status == 400 || r.status == 415, "{}", r.body);
    assert_eq!(w.count("activities").await, before, "nothing written");
    s.send(s.client.get(s.url("/api/v1/customers"))).await.assert_error(401, "unauthorized");
    s.stop().await;
}

async fn patch(s: &Server, token: &str, path: &str, body: &Value) -> Resp {
    s.send(s.client.patch(s.url(path)).bearer_auth(token).json(body)).await
}

async fn writes_follow_the_chat_rules(db: Db) {
    let f = fixture(db.clone()).await;
    let w = &f.w;
    let s = Server::start(settings(), db.clone()).await;
    let rep = token_for(&db, w.org.id, Some(w.r1.id)).await;
    let manager = token_for(&db, w.org.id, Some(w.ma.id)).await;

    let c =
        post(&s, &rep, "/api/v1/customers", &json!({"name": "潍柴动力股份有限公司", "grade": "b", "tags": ["重点"]}))
            .await;
    assert_eq!(c.status, 201, "{}", c.body);
    let cid = c.json()["id"].as_i64().expect("id");
    assert_eq!((c.json()["grade"].as_str(), c.json()["owner_id"].as_i64()), (Some("B"), Some(w.r1.id)));
    post(&s, &rep, "/api/v1/customers", &json!({"name": "潍柴动力"})).await.assert_error(409, "conflict");
    let r = post(&s, &rep, "/api/v1/customers", &json!({"name": "别人的", "owner": "r2"})).await;
    assert_eq!(r.status, 403, "a rep cannot give a customer away: {}", r.body);
    let r = post(&s, &manager, "/api/v1/customers", &json!({"name": "经理建的", "owner": "r2"})).await;
    assert_eq!((r.status, r.json()["owner_id"].as_i64()), (201, Some(w.r2.id)), "{}", r.body);

    let r = patch(
        &s,
        &rep,
        &format!("/api/v1/customers/{cid}"),
        &json!({"grade": "A", "add_tags": ["华东"], "remove_tags": ["重点"]}),
    )
    .await;
    assert_eq!((r.status, r.json()["grade"].as_str()), (200, Some("A")), "{}", r.body);
    let tags = get(&s, &rep, &format!("/api/v1/customers/{cid}")).await.json()["tags"].clone();
    assert_eq!(tags, json!(["华东"]));
    patch(&s, &rep, &format!("/api/v1/customers/{}", f.r2s), &json!({"grade": "A"}))
        .await
        .assert_error(403, "forbidden");
    let c = post(
        &s,
        &rep,
        &format!("/api/v1/customers/{cid}/contacts"),
        &json!({"name": "王经理", "phone": "13800000000"}),
    )
    .await;
    assert_eq!(c.status, 201, "{}", c.body);
    let contacts = get(&s, &rep, &format!("/api/v1/customers/{cid}")).await.json()["contacts"].clone();
    assert_eq!(contacts[0]["name"], "王经理", "{contacts}");
    post(&s, &rep, &format!("/api/v1/customers/{}/contacts", f.r2s), &json!({"name": "x"}))
        .await
        .assert_error(403, "forbidden");
    let r = post(&s, &rep, &format!("/api/v1/customers/{cid}/contacts"), &json!({"phone": "1"})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    let d = post(
        &s,
        &rep,
        "/api/v1/deals",
        &json!({"customer_id": cid, "title": "发动机线", "amount_fen": 50_000_000, "stage": "proposal"}),
    )
    .await;
    assert_eq!(d.status, 201, "{}", d.body);
    let did = d.json()["id"].as_i64().expect("id");
    let r =
        patch(&s, &rep, &format!("/api/v1/deals/{did}"), &json!({"stage": "negotiation", "amount_fen": 60_000_000}))
            .await;
    assert_eq!(
        (r.json()["stage"].as_str(), r.json()["amount_fen"].as_i64()),
        (Some("negotiation"), Some(60_000_000)),
        "{}",
        r.body
    );
    let r = patch(&s, &rep, &format!("/api/v1/deals/{did}"), &json!({"status": "lost", "lost_reason": "price"})).await;
    assert_eq!(
        (r.json()["status"].as_str(), r.json()["lost_reason"].as_str()),
        (Some("lost"), Some("price")),
        "{}",
        r.body
    );
    patch(&s, &rep, &format!("/api/v1/deals/{did}"), &json!({"stage": "proposal"})).await.assert_error(400, "invalid");
    patch(&s, &rep, &format!("/api/v1/deals/{did}"), &json!({"status": "maybe"})).await.assert_error(400, "bad_status");
    let history = get(&s, &rep, &format!("/api/v1/deals/{did}")).await.json()["history"].clone();
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history}");

    let due = (t0() + chrono::Duration::days(1)).to_rfc3339();
    let t = post(&s, &rep, "/api/v1/tasks", &json!({"title": "回访潍柴", "due_at": due, "customer_id": cid})).await;
    assert_eq!((t.status, t.json()["owner_id"].as_i64()), (201, Some(w.r1.id)), "{}", t.body);
    let r = post(&s, &manager, "/api/v1/tasks", &json!({"title": "给 r3 的", "due_at": due, "owner": "r3"})).await;
    assert_eq!(r.status, 403, "team A's manager cannot task team B: {}", r.body);
    let r = post(&s, &rep, "/api/v1/tasks", &json!({"title": "x", "due_at": "tomorrow"})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    s.stop().await;
}
