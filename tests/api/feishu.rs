//! Feishu end to end: encrypted, signed event callbacks from two reps and a manager drive the real
//! server; replies arrive on the mock Feishu through the outbox, once, although every event is
//! delivered twice; every rejection stores nothing; push faults through the real dispatcher
//! deliver every message once.

use std::time::Duration as StdDuration;

use super::helpers::*;
use super::http::{Resp, Server, settings};
use crate::both_backends;
use chatcrm::config::Settings;
use chatcrm::crm::{self, Actor, Ctx, Via};
use chatcrm::platform::feishu::mock::{Fault, MockFeishu, Received};
use chatcrm::platform::feishu::simulate::{Callback, Simulator};
use chatcrm::platform::feishu::{FeishuApp, FeishuSettings};
use chatcrm::store::Db;
use secrecy::SecretString;

const TOKEN: &str = "vt-test-verification-token";
const KEY: &str = "chatcrm-test-encrypt-key";
const TENANT: &str = "tk-test-tenant";
const PATH: &str = "/callback/feishu/sales";

fn app(name: &str, encrypt_key: Option<&str>) -> FeishuApp {
    FeishuApp {
        name: name.into(),
        org: "Org One".into(),
        corp_id: TENANT.into(),
        app_id: MockFeishu::credentials().app_id,
        app_secret: SecretString::from(MockFeishu::credentials().app_secret),
        verification_token: SecretString::from(TOKEN),
        encrypt_key: encrypt_key.map(SecretString::from),
        bots: Vec::new(),
    }
}

fn feishu_settings(api_base: &str, self_register: bool) -> Settings {
    let mut s = Settings {
        feishu: FeishuSettings {
            api_base: api_base.into(),
            self_register,
            apps: vec![app("sales", Some(KEY)), app("plain", None)],
            ..FeishuSettings::default()
        },
        console_org: "Org One".into(),
        ..settings()
    };
    // The outbox dispatcher pushes the replies to the mock.
    s.schedule.enabled = true;
    s
}

/// World users linked to Feishu open_ids: r1 = ou_zhangsan, r2 = ou_lisi, ma = ou_wangwu.
async fn world(db: Db) -> World {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    for (u, id) in [(&w.r1, "ou_zhangsan"), (&w.r2, "ou_lisi"), (&w.ma, "ou_wangwu")] {
        crm::users::link_identity(&mut tx, &sys, u.id, "feishu", TENANT, id).await.expect("link");
    }
    tx.commit().await.expect("commit");
    w
}

struct Feishu {
    server: Server,
    mock: MockFeishu,
    sim: Simulator,
    w: World,
}

impl Feishu {
    async fn start(db: Db, self_register: bool) -> Self {
        let w = world(db.clone()).await;
        let mock = MockFeishu::start().await;
        let server = Server::start(feishu_settings(&mock.base_url(), self_register), db).await;
        let sim = Simulator::new(TOKEN, Some(KEY), &MockFeishu::credentials().app_id, TENANT);
        Self { server, mock, sim, w }
    }

    async fn post_to(&self, path: &str, cb: &Callback) -> Resp {
        let mut req = self.server.client.post(self.server.url(path)).body(cb.body.clone());
        for (k, v) in &cb.headers {
            req = req.header(k, v);
        }
        self.server.send(req).await
    }

    async fn post(&self, cb: &Callback) -> Resp {
        self.post_to(PATH, cb).await
    }

    /// What the mock received for `to`, once something did (replies are pushed after the ack).
    async fn replies_to(&self, to: &str) -> Vec<Received> {
        for _ in 0..100 {
            let got: Vec<Received> = self.mock.received().into_iter().filter(|r| r.to == to).collect();
            if !got.is_empty() {
                return got;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        Vec::new()
    }

    /// Sends a text message twice (Feishu redelivers) and returns the reply that arrived.
    async fn say(&self, user: &str, text: &str, message_id: &str) -> String {
        let cb = self.sim.text(user, text, message_id, t0().timestamp());
        for _ in 0..2 {
            let r = self.post(&cb).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let got = self.replies_to(&format!("reply:{message_id}")).await;
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        got[0].words()
    }

    async fn counts(&self) -> (i64, i64, i64, i64, i64) {
        (
            self.w.count("customers").await,
            self.w.count("activities").await,
            self.w.count("deals").await,
            self.w.count("tasks").await,
            self.w.count("inbox").await,
        )
    }
}

async fn two_reps_and_a_manager(db: Db) {
    let t = Feishu::start(db, false).await;
    let script: &[(&str, &str, &str)] = &[
        ("ou_zhangsan", "新客户 海尔智家", "已创建客户"),
        ("ou_zhangsan", "拜访 海尔 聊了二期需求，下周三下午3点再跟进", "已设提醒：12月2日 周三 15:00 再跟进"),
        ("ou_lisi", "新客户 美的集团", "已创建客户"),
        ("ou_lisi", "新商机 美的 仓储系统 50万 报价", "已建商机"),
        ("ou_zhangsan", "提醒 明天下午3点 给海尔打电话", "已设提醒：11月25日 周三 15:00"),
        ("ou_wangwu", "团队漏斗", "进行中 1 单"),
        ("ou_lisi", "拜访 海尔 顺路", "没找到客户"),
    ];
    let mut replies = Vec::new();
    for (i, (user, text, expect)) in script.iter().enumerate() {
        let reply = t.say(user, text, &format!("om_{}", 7_000_000 + i)).await;
        assert!(reply.contains(expect), "{user}: {text} → {reply}");
        replies.push(reply);
    }
    let counts = t.counts().await;
    assert_eq!(counts, (2, 1, 1, 2, 7));
    // Feishu redelivers all of them later (15 s, 5 min, …): nothing changes, nobody hears twice.
    for (i, (user, text, _)) in script.iter().enumerate() {
        let r = t.post(&t.sim.text(user, text, &format!("om_{}", 7_000_000 + i), t0().timestamp())).await;
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(StdDuration::from_millis(1200)).await;
    assert_eq!(t.counts().await, counts);
    let received = t.mock.received();
    assert_eq!(received.len(), script.len(), "one reply per message: {received:?}");
    for (i, r) in received.iter().enumerate() {
        assert_eq!(r.msg_type, "text");
        assert_eq!(r.words(), replies[i]);
    }
    assert_eq!(t.mock.duplicates_dropped(), 0, "no reply was even attempted twice");
    t.server.stop().await;
}

async fn rejections_store_nothing(db: Db) {
    let t = Feishu::start(db, false).await;
    let inbox = t.w.count("inbox").await;
    let ts = t0().timestamp();
    let good = t.sim.text("ou_zhangsan", "今天", "om_good", ts);
    let header = |cb: &Callback, name: &str, value: &str| {
        let mut cb = cb.clone();
        for (k, v) in &mut cb.headers {
            if k == name {
                *v = value.to_string();
            }
        }
        cb
    };
    let signed = |body: &str| {
        let sig = chatcrm::platform::feishu::crypto::signature(&ts.to_string(), "n1", KEY, body.as_bytes());
        Callback {
            headers: vec![
                ("X-Lark-Request-Timestamp".into(), ts.to_string()),
                ("X-Lark-Request-Nonce".into(), "n1".into()),
                ("X-Lark-Signature".into(), sig),
            ],
            body: body.to_string(),
        }
    };
    let wrong_token =
        Simulator::new("not-the-token", Some(KEY), "cli_x", TENANT).text("ou_zhangsan", "今天", "om_w", ts);
    let wrong_key = Simulator::new(TOKEN, Some("another key"), "cli_x", TENANT).text("ou_zhangsan", "今天", "om_k", ts);
    let cases: Vec<(Callback, u16, &str)> = vec![
        // A tampered signature.
        (header(&good, "X-Lark-Signature", &"0".repeat(64)), 401, "unauthorized"),
        // The body changed after signing (one byte of whitespace).
        (Callback { headers: good.headers.clone(), body: format!("{} ", good.body) }, 401, "unauthorized"),
        // No signature headers on an event.
        (Callback { headers: Vec::new(), body: good.body.clone() }, 401, "unauthorized"),
        // A replay from an hour ago, correctly signed.
        (t.sim.text("ou_zhangsan", "今天", "om_old", ts - 3600), 401, "unauthorized"),
        // The wrong verification token inside a correctly encrypted, signed event.
        (wrong_token, 401, "unauthorized"),
        // Signed by the wrong key.
        (wrong_key, 401, "unauthorized"),
        // Malformed JSON, correctly signed.
        (signed("{not json"), 400, "malformed"),
        // Correctly signed, but not decryptable.
        (signed(r#"{"encrypt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#), 400, "malformed"),
        (signed(r#"{"encrypt":"@@not base64@@"}"#), 400, "malformed"),
        // A plain body where the app expects encryption.
        (signed(r#"{"schema":"2.0","header":{"event_id":"e","event_type":"x","token":"vt"}}"#), 400, "malformed"),
    ];
    for (i, (cb, status, code)) in cases.iter().enumerate() {
        let r = t.post(cb).await;
        assert_eq!(r.status, *status, "case {i}: {}", r.body);
        r.assert_error(*status, code);
    }
    // An app that is not configured.
    t.post_to("/callback/feishu/nope", &good).await.assert_error(404, "not_found");
    // A body over the limit.
    let big = t.sim.text("ou_zhangsan", &"很".repeat(100_000), "om_big", ts);
    t.post(&big).await.assert_error(413, "payload_too_large");
    // The plain app: the token is all there is, and it is checked.
    let plain_wrong = Simulator::new("nope", None, "cli_x", TENANT).text("ou_zhangsan", "今天", "om_p", ts);
    t.post_to("/callback/feishu/plain", &plain_wrong).await.assert_error(401, "unauthorized");
    let plain_encrypted = t.sim.text("ou_zhangsan", "今天", "om_p2", ts);
    t.post_to("/callback/feishu/plain", &plain_encrypted).await.assert_error(400, "malformed");
    assert_eq!(t.w.count("inbox").await, inbox, "a rejected callback stored something");
    // The good one still works afterwards, on both apps.
    assert_eq!(t.post(&good).await.status, 200);
    let plain_good = Simulator::new(TOKEN, None, "cli_x", TENANT).text("ou_zhangsan", "今天", "om_plain", ts);
    assert_eq!(t.post_to("/callback/feishu/plain", &plain_good).await.status, 200);
    assert_eq!(t.w.count("inbox").await, inbox + 2);
    t.server.stop().await;
}

async fn handshake_messages_cards_and_unknown_users(db: Db) {
    let t = Feishu::start(db, false).await;
    let ts = t0().timestamp();
    // The URL handshake, encrypted (sales) and plain (plain).
    let r = t.post(&t.sim.url_verification("chal-1", ts)).await;
    assert_eq!((r.status, r.json()["challenge"].as_str()), (200, Some("chal-1")));
    let plain = Simulator::new(TOKEN, None, "cli_x", TENANT);
    let r = t.post_to("/callback/feishu/plain", &plain.url_verification("chal-2", ts)).await;
    assert_eq!((r.status, r.json()["challenge"].as_str()), (200, Some("chal-2")));
    let r =
        t.post_to("/callback/feishu/plain", &Simulator::new("x", None, "c", TENANT).url_verification("c3", ts)).await;
    r.assert_error(401, "unauthorized");
    // A group message with an @-mention placeholder: answered to the sender privately (the
    // answer can hold what the group's other members may not see), nothing in the group.
    t.post(&t.sim.group_text("ou_zhangsan", "新客户 青岛啤酒", "om_g1", ts)).await;
    let got = t.replies_to("open_id:ou_zhangsan").await;
    assert!(got[0].words().contains("已创建客户"), "{got:?}");
    assert!(t.mock.received().iter().all(|r| r.to != "reply:om_g1"), "nothing is posted in the group");
    // Voice: how to dictate instead.
    let voice =
        t.sim.message("ou_zhangsan", "audio", serde_json::json!({"file_key":"f1","duration":3000}), "om_v1", ts);
    t.post(&voice).await;
    assert!(t.replies_to("reply:om_v1").await[0].words().contains("语音输入"));
    // A location after a visit attaches to it.
    t.say("ou_zhangsan", "拜访 青岛啤酒 参观灌装线", "om_v2").await;
    let loc = serde_json::json!({"name":"青岛市市北区登州路56号","latitude":"36.07","longitude":"120.38"});
    t.post(&t.sim.message("ou_zhangsan", "location", loc, "om_l1", ts)).await;
    assert!(t.replies_to("reply:om_l1").await[0].words().contains("已把位置"));
    // Other types get a polite answer.
    t.post(&t.sim.message("ou_zhangsan", "sticker", serde_json::json!({"file_key":"s"}), "om_s1", ts)).await;
    assert!(t.replies_to("reply:om_s1").await[0].words().contains("看不懂"));
    // Reminder card buttons run their commands as the presser; a redelivered press changes nothing.
    t.say("ou_zhangsan", "提醒 明天下午3点 给海尔打电话", "om_r1").await;
    let press = t.sim.card_action("ou_zhangsan", "done-1", "om_card_1", "ev_press_1", ts + 5);
    let r = t.post(&press).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["toast"]["content"].as_str().is_some_and(|c| c.contains("#1")), "{}", r.body);
    assert_eq!(t.post(&press).await.status, 200);
    let got = t.replies_to("reply:om_card_1").await;
    assert!(got[0].words().contains("已完成任务 #1"), "{got:?}");
    let mut tx = t.w.tx().await;
    let task = crm::tasks::get_task(&mut tx, &t.w.ctx(&t.w.r1), 1).await.expect("task");
    drop(tx);
    assert_eq!(task.status, crm::TaskStatus::Done);
    let r = t.post(&t.sim.card_action("ou_zhangsan", "explode-1", "om_card_1", "ev_press_2", ts + 6)).await;
    assert_eq!(r.status, 200);
    // An unknown Feishu user is told how an admin links them.
    let reply = t.say("ou_stranger", "今天", "om_u1").await;
    assert!(reply.contains("chatcrm users link") && reply.contains(TENANT) && reply.contains("ou_stranger"), "{reply}");
    tokio::time::sleep(StdDuration::from_millis(700)).await;
    let to_card = t.mock.received().into_iter().filter(|r| r.to == "reply:om_card_1").count();
    assert_eq!(to_card, 1, "the redelivered press was not answered again");
    t.server.stop().await;
}

async fn self_registration_when_allowed(db: Db) {
    let t = Feishu::start(db, true).await;
    let reply = t.say("ou_newbie", "新客户 潍柴动力", "om_1").await;
    assert!(reply.contains("已创建客户"), "{reply}");
    let mut tx = t.w.tx().await;
    let u = crm::users::find_user(&mut tx, t.w.org.id, "ou_newbie").await.expect("registered");
    assert_eq!(u.role, crm::Role::Rep);
    drop(tx);
    t.server.stop().await;
}

both_backends!(
    two_reps_and_a_manager,
    rejections_store_nothing,
    handshake_messages_cards_and_unknown_users,
    self_registration_when_allowed,
    push_faults_deliver_every_message_once
);

/// V-G11 through the real endpoint, with the server's clock at the vector's time: the encrypted
/// handshake with its signature headers.
#[tokio::test]
async fn official_vector_handshake() {
    let t = TestDb::sqlite().await;
    let mut s = feishu_settings("http://127.0.0.1:9", false);
    s.schedule.enabled = false;
    s.feishu.apps[0].encrypt_key = Some(SecretString::from("test key"));
    s.feishu.apps[0].verification_token = SecretString::from("xxxxxx");
    let clock = chatcrm::clock::Clock::fixed(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"));
    let app = chatcrm::startup::Application::build(s, t.db.clone(), clock).await.expect("build");
    let addr = app.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let body = r#"{"encrypt":"AAECAwQFBgcICQoLDA0ODw9mLTIAZS9jAmGTQ1wAhHpnBHVL2wRjH9rPunQdQC1vLjsckayA10kZ8cPwtb62F8rC7JprUPR/4S2aZihfR+p8npX7UzWPithZmfKIPZgE"}"#;
    let client = super::http::client();
    let post = |sig: &'static str| {
        client
            .post(format!("http://{addr}{PATH}"))
            .header("X-Lark-Request-Timestamp", "1700000000")
            .header("X-Lark-Request-Nonce", "abc123")
            .header("X-Lark-Signature", sig)
            .body(body)
            .send()
    };
    let r = post("d0173e438bdf976bb4ccf8db9648923287ac94b7e9cc1e8d1f01b736edcfa14b").await.expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("body"), r#"{"challenge":"ajls384kdjx98XX"}"#);
    let r = post("e0173e438bdf976bb4ccf8db9648923287ac94b7e9cc1e8d1f01b736edcfa14b").await.expect("request");
    assert_eq!(r.status().as_u16(), 401);
    let _ = tx.send(());
    let _ = task.await;
}

mod push {
    use super::*;
    use chatcrm::clock::Clock;
    use chatcrm::outbox::{Dispatcher, Kind, OutMessage, Outgoing, Target};
    use chrono::Duration;

    pub(super) async fn queue(db: &Db, org_id: i64, target: &Target, message: &OutMessage, key: &str) {
        let mut tx = db.begin().await.expect("begin");
        let out = Outgoing {
            org_id: Some(org_id),
            user_id: None,
            kind: Kind::Digest,
            target,
            message,
            dedupe_key: key,
            not_before: t0(),
        };
        assert!(chatcrm::outbox::enqueue(&mut tx, &out, t0()).await.expect("enqueue"));
        tx.commit().await.expect("commit");
    }

    pub(super) async fn statuses(db: &Db) -> Vec<(String, i64)> {
        let mut tx = db.begin_read().await.expect("begin");
        let counts = chatcrm::store::outbox::counts(&mut tx).await.expect("counts");
        tx.commit().await.expect("commit");
        counts
    }

    /// Drains, stepping the clock past each backoff, until nothing is pending.
    pub(super) async fn deliver(outbox: &Dispatcher, clock: &Clock, db: &Db, rounds: usize) {
        for _ in 0..rounds {
            outbox.drain().await.expect("drain");
            if statuses(db).await.iter().all(|(status, _)| status != "pending") {
                return;
            }
            clock.set(clock.now() + Duration::minutes(2));
        }
        panic!("still pending: {:?}", statuses(db).await);
    }
}

async fn push_faults_deliver_every_message_once(db: Db) {
    use chatcrm::clock::Clock;
    use chatcrm::outbox::{Card, DispatchConfig, Dispatcher, OutMessage, Routes, Senders, Target};
    use chatcrm::platform::feishu::Pusher;
    use chatcrm::platform::feishu::client::FeishuClient;
    use push::{deliver, queue, statuses};

    let w = World::new(db.clone()).await;
    {
        let mut tx = w.tx().await;
        let ctx = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
        crm::users::link_identity(&mut tx, &ctx, w.ma.id, "feishu", TENANT, "ou_manager").await.expect("link");
        tx.commit().await.expect("commit");
    }
    let routes = Routes::default().with_feishu_app("sales", TENANT);
    let target = {
        let mut tx = w.tx().await;
        let target = routes.target_for_user(&mut tx, w.ma.id).await.expect("target");
        tx.commit().await.expect("commit");
        target
    };
    assert_eq!(
        (target.platform.as_str(), target.app.as_str(), target.recipient.as_str()),
        ("feishu", "sales", "ou_manager")
    );
    let mock = MockFeishu::start().await;
    mock.add_hook("hook-team", Some("bot-secret"));
    let client =
        FeishuClient::new(&mock.base_url(), MockFeishu::credentials(), StdDuration::from_millis(400)).expect("client");
    let pusher = Pusher::new(client.clone()).with_bot("team", "hook-team", Some("bot-secret"));
    let clock = Clock::fixed(t0());
    let outbox = Dispatcher::new(
        db.clone(),
        clock.clone(),
        "one",
        Senders::default().with_feishu("sales", pusher),
        DispatchConfig::default(),
    );
    let org = w.org.id;
    let to = |recipient: &str| Target { platform: "feishu".into(), app: "sales".into(), recipient: recipient.into() };

    // A digest in Feishu's markdown dialect arrives as a card with a lark_md block.
    let digest = "**团队日报** 11月24日\n拜访 3 · 电话 5\n<font color='red'>逾期 2</font>";
    queue(&db, org, &target, &OutMessage::markdown(digest), "digest:1").await;
    deliver(&outbox, &clock, &db, 3).await;
    // The token is revoked before the next send: refreshed once, sent once.
    client.tenant_access_token().await.expect("token");
    let fetches = mock.token_fetches();
    mock.expire_tokens();
    queue(&db, org, &target, &OutMessage::text("t1 token expiry"), "t1").await;
    deliver(&outbox, &clock, &db, 3).await;
    assert_eq!(mock.token_fetches(), fetches + 1);
    // A rate limit, a 5xx and a timeout: each retried by the outbox, delivered once.
    mock.script(vec![Fault::Code(99991400)]);
    queue(&db, org, &target, &OutMessage::text("t2 rate limited"), "t2").await;
    deliver(&outbox, &clock, &db, 5).await;
    mock.script(vec![Fault::Http(502)]);
    queue(&db, org, &target, &OutMessage::text("t3 bad gateway"), "t3").await;
    deliver(&outbox, &clock, &db, 5).await;
    mock.script(vec![Fault::Delay(StdDuration::from_millis(800))]);
    queue(&db, org, &target, &OutMessage::text("t4 timeout"), "t4").await;
    deliver(&outbox, &clock, &db, 5).await;
    tokio::time::sleep(StdDuration::from_millis(900)).await;
    assert!(mock.duplicates_dropped() >= 1, "the resend after the timeout carried the same uuid");
    // A reminder card with buttons.
    let card = Card {
        title: "⏰ 给海尔打电话".into(),
        description: "客户：海尔智家\n上次联系：11月20日".into(),
        key: "task-5-1".into(),
        buttons: vec![("done-5".into(), "完成".into()), ("snooze-5".into(), "推迟1天".into())],
    };
    let reminder =
        OutMessage { text: "⏰ 给海尔打电话 完成 #5".into(), card: Some(card), ..OutMessage::default() };
    queue(&db, org, &target, &reminder, "reminder:5").await;
    // A picture, whose upload first fails.
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\nnot really a chart".to_vec();
    mock.script(vec![Fault::Http(500)]);
    queue(&db, org, &target, &OutMessage::image("漏斗", png.clone()), "image:1").await;
    deliver(&outbox, &clock, &db, 5).await;
    // A burst of 12 to one user: paced to 5 a second, all arrive.
    for i in 0..12 {
        queue(&db, org, &target, &OutMessage::text(format!("burst {i}")), &format!("burst:{i}")).await;
    }
    deliver(&outbox, &clock, &db, 10).await;
    // A custom bot, signed; an invalid recipient is a dead letter, not a retry loop.
    queue(&db, org, &to("bot:team"), &OutMessage::text("群通知"), "bot:1").await;
    mock.mark_invalid("ou_gone");
    queue(&db, org, &to("ou_gone"), &OutMessage::text("lost"), "gone:1").await;
    queue(&db, org, &to("chat:oc_sales"), &OutMessage::text("to the chat"), "chat:1").await;
    deliver(&outbox, &clock, &db, 5).await;

    let received = mock.received();
    let words: Vec<String> = received.iter().map(Received::words).collect();
    for expected in ["t1 token expiry", "t2 rate limited", "t3 bad gateway", "t4 timeout", "群通知", "to the chat"] {
        assert_eq!(words.iter().filter(|w| w.as_str() == expected).count(), 1, "{expected}: {words:?}");
    }
    for i in 0..12 {
        let w = format!("burst {i}");
        assert_eq!(words.iter().filter(|x| **x == w).count(), 1, "{w}");
    }
    let digest_msg = received.iter().find(|r| r.words() == digest).expect("digest");
    assert_eq!((digest_msg.msg_type.as_str(), digest_msg.to.as_str()), ("interactive", "open_id:ou_manager"));
    assert_eq!(digest_msg.content["elements"][0]["text"]["tag"], "lark_md");
    let cards: Vec<&Received> = received.iter().filter(|r| r.content.get("header").is_some()).collect();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].content["header"]["title"]["content"], "⏰ 给海尔打电话");
    assert_eq!(cards[0].content["elements"][1]["actions"][0]["value"]["key"], "done-5");
    assert_eq!(cards[0].content["elements"][1]["actions"][1]["value"]["key"], "snooze-5");
    let images: Vec<&Received> = received.iter().filter(|r| r.msg_type == "image").collect();
    assert_eq!(images.len(), 1);
    let key = images[0].content["image_key"].as_str().expect("image_key");
    assert_eq!(mock.image(key), Some(png));
    let hook = received.iter().find(|r| r.to == "hook:hook-team").expect("bot message");
    assert_eq!(hook.text(), Some("群通知"));
    assert!(received.iter().all(|r| r.to != "open_id:ou_gone"));
    assert_eq!(received.len(), 1 + 4 + 1 + 1 + 12 + 2, "nothing twice: {words:?}");
    let mut st = statuses(&db).await;
    st.sort();
    assert_eq!(st, vec![("dead".to_string(), 1), ("sent".to_string(), 21)]);
    mock.stop().await;
}
