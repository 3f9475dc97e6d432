//! WeCom callbacks end to end: signed and encrypted callbacks from two reps and a manager drive
//! the real server; passive replies decrypt to the expected text; duplicates change nothing;
//! every rejection stores nothing.

use super::helpers::*;
use super::http::{Server, settings};
use crate::both_backends;
use chatcrm::config::{Settings, WecomApp, WecomSettings};
use chatcrm::crm::{self, Actor, Ctx, Via};
use chatcrm::platform::wecom::simulate::Simulator;
use chatcrm::store::Db;
use secrecy::SecretString;

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "ww-test-corp";
const AGENT: i64 = 1_000_002;
const PATH: &str = "/callback/wecom/sales";

fn app() -> WecomApp {
    WecomApp {
        name: "sales".into(),
        org: "Org One".into(),
        corp_id: CORP.into(),
        agent_id: AGENT,
        secret: SecretString::from("app-secret"),
        token: SecretString::from(TOKEN),
        encoding_aes_key: SecretString::from(KEY),
        robot_name: Some("chatcrm".into()),
        robot_token: None,
        robot_encoding_aes_key: None,
        menu: [("today".to_string(), "今天".to_string())].into_iter().collect(),
    }
}

fn wecom_settings(self_register: bool) -> Settings {
    Settings {
        wecom: WecomSettings { apps: vec![app()], self_register, ..WecomSettings::default() },
        console_org: "Org One".into(),
        ..settings()
    }
}

/// World users linked to WeCom ids: r1 = zhangsan, r2 = lisi, ma = wangwu.
async fn world(db: Db) -> World {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    for (u, id) in [(&w.r1, "zhangsan"), (&w.r2, "lisi"), (&w.ma, "wangwu")] {
        crm::users::link_identity(&mut tx, &sys, u.id, "wecom", CORP, id).await.expect("link");
    }
    tx.commit().await.expect("commit");
    w
}

struct Wecom {
    server: Server,
    sim: Simulator,
    w: World,
}

impl Wecom {
    async fn start(db: Db, self_register: bool) -> Self {
        let w = world(db.clone()).await;
        let server = Server::start(wecom_settings(self_register), db).await;
        let sim = Simulator::new(TOKEN, KEY, CORP, AGENT).expect("simulator");
        Self { server, sim, w }
    }

    async fn post(&self, cb: &chatcrm::platform::wecom::simulate::Callback) -> super::http::Resp {
        let url = self.server.url(&format!("{PATH}?{}", cb.query));
        self.server.send(self.server.client.post(url).body(cb.body.clone())).await
    }

    /// Sends a text message and returns the decrypted passive reply.
    async fn say(&self, user: &str, text: &str, msg_id: &str) -> String {
        let cb = self.sim.text(user, text, msg_id, t0().timestamp());
        let r = self.post(&cb).await;
        assert_eq!(r.status, 200, "{}", r.body);
        self.sim.open_reply(&r.body).unwrap_or_else(|e| panic!("reply does not open ({e}): {}", r.body))
    }
}

async fn two_reps_and_a_manager(db: Db) {
    let t = Wecom::start(db, false).await;
    let script: &[(&str, &str, &str)] = &[
        ("zhangsan", "新客户 海尔智家", "已创建客户"),
        ("zhangsan", "拜访 海尔 聊了二期需求，下周三下午3点再跟进", "已设提醒：12月2日 周三 15:00 再跟进"),
        ("lisi", "新客户 美的集团", "已创建客户"),
        ("lisi", "新商机 美的 仓储系统 50万 报价", "已建商机"),
        ("zhangsan", "提醒 明天下午3点 给海尔打电话", "已设提醒：11月25日 周三 15:00"),
        ("wangwu", "团队漏斗", "进行中 1 单"),
        ("lisi", "拜访 海尔 顺路", "没找到客户"),
    ];
    let mut replies = Vec::new();
    for (i, (user, text, expect)) in script.iter().enumerate() {
        let reply = t.say(user, text, &format!("{}", 7_000_000 + i)).await;
        assert!(reply.contains(expect), "{user}: {text} → {reply}");
        replies.push(reply);
    }
    let counts = (
        t.w.count("customers").await,
        t.w.count("activities").await,
        t.w.count("deals").await,
        t.w.count("tasks").await,
        t.w.count("inbox").await,
    );
    assert_eq!(counts, (2, 1, 1, 2, 7));
    // WeCom retries every message: the same answers, nothing changes.
    for (i, (user, text, _)) in script.iter().enumerate() {
        let reply = t.say(user, text, &format!("{}", 7_000_000 + i)).await;
        assert_eq!(reply, replies[i], "retry of `{text}`");
    }
    let again = (
        t.w.count("customers").await,
        t.w.count("activities").await,
        t.w.count("deals").await,
        t.w.count("tasks").await,
        t.w.count("inbox").await,
    );
    assert_eq!(again, counts);
    t.server.stop().await;
}

async fn rejections_store_nothing(db: Db) {
    let t = Wecom::start(db, false).await;
    let inbox = t.w.count("inbox").await;
    let good = t.sim.text("zhangsan", "今天", "1", t0().timestamp());
    let cases: Vec<(String, String, u16, &str)> = vec![
        // A tampered signature.
        (good.query.replace("msg_signature=", "msg_signature=0"), good.body.clone(), 401, "unauthorized"),
        // Ciphertext from a different key.
        (good.query.clone(), good.body.replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA"), 401, "unauthorized"),
        // Malformed bodies.
        (good.query.clone(), "not xml at all".into(), 400, "malformed"),
        (good.query.clone(), "<xml><ToUserName>x</ToUserName></xml>".into(), 400, "malformed"),
        // Missing query parameters.
        ("timestamp=1&nonce=2".into(), good.body.clone(), 400, "bad_query"),
    ];
    for (query, body, status, code) in cases {
        let url = t.server.url(&format!("{PATH}?{query}"));
        let r = t.server.send(t.server.client.post(url).body(body)).await;
        r.assert_error(status, code);
    }
    // A replayed callback from an hour ago, correctly signed.
    let stale = t.sim.text("zhangsan", "今天", "2", t0().timestamp() - 3600);
    t.post(&stale).await.assert_error(401, "unauthorized");
    // An app that is not configured.
    let url = t.server.url(&format!("/callback/wecom/nope?{}", good.query));
    t.server.send(t.server.client.post(url).body(good.body.clone())).await.assert_error(404, "not_found");
    // A body over the limit.
    let big = t.sim.text("zhangsan", &"很".repeat(100_000), "3", t0().timestamp());
    t.post(&big).await.assert_error(413, "payload_too_large");
    assert_eq!(t.w.count("inbox").await, inbox, "a rejected callback stored something");
    // The good one still works afterwards.
    assert_eq!(t.post(&good).await.status, 200);
    assert_eq!(t.w.count("inbox").await, inbox + 1);
    t.server.stop().await;
}

async fn events_voice_location_and_unknown_users(db: Db) {
    let t = Wecom::start(db, false).await;
    let open = |r: super::http::Resp| t.sim.open_reply(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    let r = t.post(&t.sim.event("zhangsan", "enter_agent", None, t0().timestamp())).await;
    assert!(open(r).contains("我是 chatcrm"));
    let r = t.post(&t.sim.event("zhangsan", "click", Some("today"), t0().timestamp() + 1)).await;
    assert!(open(r).contains("今天"), "the menu key runs its bound command");
    // Events WeCom takes no passive reply for get an empty 200.
    let r = t.post(&t.sim.event("zhangsan", "view", Some("https://x"), t0().timestamp() + 2)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    // Voice without transcript: how to dictate instead.
    let plain = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>555</MsgId><AgentID>{AGENT}</AgentID></xml>",
        t0().timestamp()
    );
    let r = t.post(&t.sim.envelope(&plain, t0().timestamp(), "v1")).await;
    assert!(open(r).contains("语音输入"));
    // A location after a visit attaches to it.
    t.say("zhangsan", "新客户 青岛啤酒", "10").await;
    t.say("zhangsan", "拜访 青岛啤酒 参观灌装线", "11").await;
    let r = t.post(&t.sim.location("zhangsan", 36.07, 120.38, "青岛市市北区登州路56号", "12", t0().timestamp())).await;
    assert!(open(r).contains("已把位置"), "location attached");
    let mut tx = t.w.tx().await;
    let customers = crm::customers::list_customers(&mut tx, &t.w.ctx(&t.w.r1), true).await.expect("list");
    let acts = chatcrm::store::activities::for_customer(&mut tx, customers[0].id, 5).await.expect("acts");
    assert_eq!(acts[0].location.as_deref(), Some("青岛市市北区登州路56号"));
    drop(tx);
    // A location before the visit is a check-in; the next visit takes it.
    let r = t.post(&t.sim.location("zhangsan", 36.1, 120.4, "青岛市崂山区海尔路1号", "13", t0().timestamp())).await;
    assert!(open(r).contains("已把位置"), "zhangsan's visit is recent: it takes the second location too");
    let r = t.post(&t.sim.location("lisi", 36.1, 120.4, "青岛市崂山区海尔路1号", "14", t0().timestamp())).await;
    assert!(open(r).contains("已签到"), "lisi has no visit yet: a check-in");
    t.say("lisi", "新客户 海尔智家", "15").await;
    t.say("lisi", "今天", "16").await;
    let reply = t.say("lisi", "拜访 海尔 到访二期现场", "17").await;
    assert!(reply.contains("📍 青岛市崂山区海尔路1号"), "the check-in location goes on the visit: {reply}");
    let reply = t.say("lisi", "拜访 海尔 又去了一次", "18").await;
    assert!(!reply.contains("📍"), "a check-in is used once: {reply}");
    // An unknown WeCom user is told how an admin links them.
    let reply = t.say("stranger", "今天", "20").await;
    assert!(reply.contains("chatcrm users link") && reply.contains(CORP) && reply.contains("stranger"), "{reply}");
    t.server.stop().await;
}

async fn self_registration_when_allowed(db: Db) {
    let t = Wecom::start(db, true).await;
    let reply = t.say("newbie", "新客户 潍柴动力", "1").await;
    assert!(reply.contains("已创建客户"), "{reply}");
    let mut tx = t.w.tx().await;
    let u = crm::users::find_user(&mut tx, t.w.org.id, "newbie").await.expect("registered");
    assert_eq!(u.role, crm::Role::Rep);
    drop(tx);
    // A WeCom id whose handle is taken (R1 vs the existing r1) still gets an account.
    let reply = t.say("R1", "今天", "2").await;
    assert!(reply.contains("今天"), "{reply}");
    let mut tx = t.w.tx().await;
    let u = crm::users::find_user(&mut tx, t.w.org.id, "r1-2").await.expect("registered with a suffix");
    assert_eq!(u.name, "R1");
    t.server.stop().await;
}

both_backends!(
    two_reps_and_a_manager,
    rejections_store_nothing,
    events_voice_location_and_unknown_users,
    self_registration_when_allowed,
    reminder_card_buttons_complete_and_snooze
);

/// The 完成 / 推迟 buttons of a reminder card arrive as `template_card_event` callbacks and run
/// the commands they stand for, as the rep who pressed them. WeCom shows no passive reply to that
/// event (PLATFORMS.md 1.8): the callback gets an empty 200 and the answer is pushed.
async fn reminder_card_buttons_complete_and_snooze(db: Db) {
    let w = world(db.clone()).await;
    let mock = chatcrm::platform::wecom::mock::MockWecom::start().await;
    let (mut s, sim) = against_mock(&w, &mock).await;
    s.schedule = s.schedule.without_jobs();
    let creds = chatcrm::platform::wecom::mock::MockWecom::credentials();
    let mut tx = w.tx().await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    crm::users::link_identity(&mut tx, &sys, w.r2.id, "wecom", &creds.corp_id, "lisi").await.expect("link");
    tx.commit().await.expect("commit");
    let t = Wecom { server: Server::start(s, db).await, sim, w };
    t.say("zhangsan", "提醒 明天下午3点 给海尔打电话", "1").await;
    t.say("zhangsan", "提醒 明天上午10点 发报价", "2").await;
    let mut tx = t.w.tx().await;
    let ctx = t.w.ctx(&t.w.r1);
    let today = crm::tasks::today(&mut tx, &ctx, chrono_tz::Asia::Shanghai).await.expect("today");
    drop(tx);
    assert!(today.due_today.is_empty());
    let ts = t0().timestamp();
    // Presses a button: an empty 200, then the answer arrives as an app message to `user`.
    let press = |user: &'static str, key: &'static str, at: i64| {
        let t = &t;
        let mock = &mock;
        async move {
            let before = mock.received().len();
            let r = t.post(&t.sim.event(user, "template_card_event", Some(key), at)).await;
            assert_eq!((r.status, r.body.as_str()), (200, ""), "{key}: no passive reply to a card event");
            for _ in 0..200 {
                let got: Vec<_> = mock.received().into_iter().skip(before).collect();
                if let Some(m) = got.first() {
                    assert_eq!(m.touser.as_deref(), Some(user));
                    return m.content().unwrap_or_default().to_string();
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("{key}: nothing pushed to {user}");
        }
    };
    assert!(press("zhangsan", "done-1", ts + 5).await.contains("已完成任务 #1"));
    // Pressed within the same second as the first: a different event, not a retry of it.
    assert!(press("zhangsan", "snooze-2", ts + 5).await.contains("已推迟任务 #2"));
    let mut tx = t.w.tx().await;
    let done = crm::tasks::get_task(&mut tx, &ctx, 1).await.expect("task 1");
    let moved = crm::tasks::get_task(&mut tx, &ctx, 2).await.expect("task 2");
    drop(tx);
    assert_eq!(done.status, crm::TaskStatus::Done);
    assert_eq!(moved.due_at, t0() + chrono::Duration::days(1), "pushed one day from when the button was pressed");
    // Someone else's button, or a made-up key, changes nothing.
    assert!(press("lisi", "done-2", ts + 7).await.contains("不是你的任务"));
    let before = mock.received().len();
    let r = t.post(&t.sim.event("zhangsan", "template_card_event", Some("explode-2"), ts + 8)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(mock.received().len(), before, "nothing is answered to an unknown button");
    t.server.stop().await;
    mock.stop().await;
}

/// The official URL-verification vector (PLATFORMS.md V-W1) through the real endpoint, with the
/// server's clock at the vector's time.
#[tokio::test]
async fn official_echostr_handshake() {
    let t = TestDb::sqlite().await;
    let mut s = wecom_settings(false);
    s.wecom.apps[0].corp_id = "wx5823bf96d3bd56c7".into();
    let app = chatcrm::startup::Application::build(
        s,
        t.db.clone(),
        chatcrm::clock::Clock::fixed(chrono::DateTime::from_timestamp(1409659589, 0).expect("time")),
    )
    .await
    .expect("build");
    let addr = app.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D";
    let url = format!(
        "http://{addr}{PATH}?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr={echostr}"
    );
    let r = reqwest::get(&url).await.expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("body"), "1616140317555161061");
    let bad = url.replace("5c45ff5e", "5c45ff5f");
    assert_eq!(reqwest::get(&bad).await.expect("request").status().as_u16(), 401);
    let _ = tx.send(());
    let _ = task.await;
}

/// The group robot's URL check uses the robot's crypto (receive id empty) and, like the app's,
/// refuses a stale timestamp; a bad signature gets 401 too.
#[tokio::test]
async fn robot_url_check_verifies_signature_and_time() {
    let t = TestDb::sqlite().await;
    let server = Server::start(wecom_settings(false), t.db.clone()).await;
    let robot = Simulator::new(TOKEN, KEY, "", AGENT).expect("robot simulator");
    let path = format!("{PATH}/robot");
    let get = |query: Vec<(&'static str, String)>| {
        let req = server.client.get(server.url(&path)).query(&query);
        server.send(req)
    };
    let r = get(robot.url_check("robot-echo-1", t0().timestamp(), "n1")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "robot-echo-1"));
    let r = get(robot.url_check("robot-echo-2", t0().timestamp() - 3600, "n2")).await;
    assert_eq!(r.status, 401, "an hour-old URL check: {}", r.body);
    let mut forged = robot.url_check("robot-echo-3", t0().timestamp(), "n3");
    forged[0].1 = "0".repeat(40);
    assert_eq!(get(forged).await.status, 401);
    // The app's own crypto (receive id = corp id) is not the robot's.
    let app = Simulator::new(TOKEN, KEY, CORP, AGENT).expect("app simulator");
    assert_eq!(get(app.url_check("robot-echo-4", t0().timestamp(), "n4")).await.status, 400);
    server.stop().await;
}

/// A group robot has callback settings of its own: with `robot_token` and
/// `robot_encoding_aes_key` set, its callbacks are checked with those, not the app's.
#[tokio::test]
async fn a_robot_with_its_own_callback_credentials() {
    const ROBOT_TOKEN: &str = "RobotTok1";
    const ROBOT_KEY: &str = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7";
    let t = TestDb::sqlite().await;
    let mut s = wecom_settings(false);
    s.wecom.apps[0].robot_token = Some(SecretString::from(ROBOT_TOKEN));
    s.wecom.apps[0].robot_encoding_aes_key = Some(SecretString::from(ROBOT_KEY));
    s.validate().expect("valid settings");
    let server = Server::start(s, t.db.clone()).await;
    let path = format!("{PATH}/robot");
    let check = |sim: Simulator, echo: &'static str| {
        let req = server.client.get(server.url(&path)).query(&sim.url_check(echo, t0().timestamp(), "n1"));
        server.send(req)
    };
    let robot = Simulator::new(ROBOT_TOKEN, ROBOT_KEY, "", AGENT).expect("robot simulator");
    let r = check(robot, "own-1").await;
    assert_eq!((r.status, r.body.as_str()), (200, "own-1"));
    let with_the_apps = Simulator::new(TOKEN, KEY, "", AGENT).expect("simulator");
    assert_eq!(check(with_the_apps, "own-2").await.status, 401);
    // The app's own callbacks still use the app's.
    let app = Simulator::new(TOKEN, KEY, CORP, AGENT).expect("app simulator");
    let r =
        server.send(server.client.get(server.url(PATH)).query(&app.url_check("app-1", t0().timestamp(), "n2"))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "app-1"));
    server.stop().await;

    // A robot key that is not a 43-character EncodingAESKey is refused at start-up.
    let mut bad = wecom_settings(false);
    bad.wecom.apps[0].robot_encoding_aes_key = Some(SecretString::from("short"));
    let err = bad.validate().expect_err("a bad robot key").to_string();
    assert!(err.contains("robot_encoding_aes_key"), "{err}");
}

/// A group message mixing text and a picture (`MsgType` mixed) is handled by its text, like a
/// text message: the asker gets the answer through the app, the group a note.
async fn robot_mixed_message_is_handled_by_its_text(db: Db) {
    let w = world(db.clone()).await;
    let mock = chatcrm::platform::wecom::mock::MockWecom::start().await;
    let (mut s, _) = against_mock(&w, &mock).await;
    s.schedule = s.schedule.without_jobs();
    let creds = chatcrm::platform::wecom::mock::MockWecom::credentials();
    let server = Server::start(s, db).await;
    let robot = Simulator::new(TOKEN, KEY, "", creds.agent_id).expect("robot simulator");
    let plain = "<xml><ChatId><![CDATA[wrk-group]]></ChatId><ChatType>group</ChatType><From><UserId><![CDATA[zhangsan]]></UserId></From>\
                 <MsgType><![CDATA[mixed]]></MsgType><MixedMessage><MsgItem><MsgType><![CDATA[text]]></MsgType><Text><Content>\
                 <![CDATA[@chatcrm 新客户 海尔智家]]></Content></Text></MsgItem><MsgItem><MsgType><![CDATA[image]]></MsgType><Image>\
                 <ImageUrl><![CDATA[http://p.qpic.cn/pic_wework/1/0]]></ImageUrl></Image></MsgItem></MixedMessage>\
                 <MsgId><![CDATA[mixed-1]]></MsgId></xml>";
    let cb = robot.envelope(plain, t0().timestamp(), "nm1");
    let r = server.send(server.client.post(server.url(&format!("{PATH}/robot?{}", cb.query))).body(cb.body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let note = robot.open_reply(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    assert!(!note.contains("海尔"), "the group's note carries no data: {note}");
    assert_eq!(w.count("customers").await, 1, "the customer was created");
    let pushed = pushes(&mock).await;
    assert!(
        pushed
            .iter()
            .any(|p| p.touser.as_deref() == Some("zhangsan") && p.content().is_some_and(|c| c.contains("海尔智家"))),
        "{pushed:?}"
    );
    server.stop().await;
    mock.stop().await;
}

both_backends!(robot_mixed_message_is_handled_by_its_text);

/// With self-registration on, only someone who talks to the bot becomes a rep: not WeCom itself
/// (`sys` sends contact changes), nor someone who only opened a menu link.
async fn self_registration_ignores_system_and_ignored_events(db: Db) {
    let t = Wecom::start(db, true).await;
    let users = t.w.count("users").await;
    let ts = t0().timestamp();
    for cb in [
        t.sim.event("sys", "change_contact", None, ts),
        t.sim.event("newbie", "view", Some("https://example.com/crm"), ts + 1),
    ] {
        let r = t.post(&cb).await;
        assert_eq!((r.status, r.body.as_str()), (200, ""));
    }
    assert_eq!(t.w.count("users").await, users, "no rep made for an event the bot ignores");
    assert_eq!(t.w.count("inbox").await, 0);
    // Talking to the bot does register (the setting is on).
    let reply = t.say("newbie", "今天", "9901").await;
    assert!(!reply.is_empty());
    assert_eq!(t.w.count("users").await, users + 1);
    t.server.stop().await;
}

both_backends!(self_registration_ignores_system_and_ignored_events);

/// Settings whose WeCom app talks to `mock`, with r1 linked to the mock corp as `zhangsan`.
async fn against_mock(w: &World, mock: &chatcrm::platform::wecom::mock::MockWecom) -> (Settings, Simulator) {
    let creds = chatcrm::platform::wecom::mock::MockWecom::credentials();
    let mut s = wecom_settings(false);
    s.wecom.api_base = mock.base_url();
    s.wecom.apps[0].corp_id = creds.corp_id.clone();
    s.wecom.apps[0].agent_id = creds.agent_id;
    s.wecom.apps[0].secret = SecretString::from(creds.secret.clone());
    // The outbox dispatcher delivers pushed replies to the mock.
    s.schedule.enabled = true;
    let mut tx = w.tx().await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    crm::users::link_identity(&mut tx, &sys, w.r1.id, "wecom", &creds.corp_id, "zhangsan").await.expect("link");
    tx.commit().await.expect("commit");
    (s, Simulator::new(TOKEN, KEY, &creds.corp_id, creds.agent_id).expect("sim"))
}

/// What the mock WeCom has received, once something arrived (pushes happen after the reply).
async fn pushes(mock: &chatcrm::platform::wecom::mock::MockWecom) -> Vec<chatcrm::platform::wecom::mock::Received> {
    for _ in 0..100 {
        let received = mock.received();
        if !received.is_empty() {
            return received;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Vec::new()
}

/// When storage does not take the message before the passive-reply deadline (here SQLite's write
/// lock is held by another connection), WeCom is told to retry (503) and nothing is stored or
/// pushed: acknowledging it could lose it if storage never came back. WeCom's retry, once the
/// lock is free, is handled like a first delivery and answered passively.
#[tokio::test]
async fn a_message_storage_cannot_take_in_time_is_retried_not_acknowledged() {
    use chatcrm::platform::wecom::mock::MockWecom;
    let t = TestDb::sqlite().await;
    let w = world(t.db.clone()).await;
    let mock = MockWecom::start().await;
    let (mut s, sim) = against_mock(&w, &mock).await;
    s.wecom.reply_deadline_ms = 200;
    let server = Server::start(s, t.db.clone()).await;

    let lock = super::shutdown::hold_write_lock(&t.url).await;
    let cb = sim.text("zhangsan", "今天", "900", t0().timestamp());
    let url = server.url(&format!("{PATH}?{}", cb.query));
    let r = server.send(server.client.post(url.clone()).body(cb.body.clone())).await;
    assert_eq!(r.status, 503, "retryable: {}", r.body);
    super::shutdown::release_write_lock(lock).await;
    // The abandoned delivery is dropped by the writer, not handled late.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.count("inbox").await, 0, "nothing stored for the refused delivery");
    let again = server.send(server.client.post(url).body(cb.body)).await;
    assert_eq!(again.status, 200);
    let reply = sim.open_reply(&again.body).expect("passive reply on the retry");
    assert!(reply.contains("今天"), "{reply}");
    assert_eq!(w.count("inbox").await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(mock.received().is_empty(), "nothing pushed: {:?}", mock.received());
    server.stop().await;
}

/// When the bot has taken the message up but is slower than the deadline (on PostgreSQL: another
/// transaction holds the customer's row), WeCom gets an empty 200 at once and the reply arrives
/// through `message/send` once the bot is done.
#[tokio::test]
async fn a_slow_reply_is_acknowledged_then_pushed() {
    use chatcrm::platform::wecom::mock::MockWecom;
    let Some(t) = TestDb::postgres().await else {
        eprintln!("skipped: CHATCRM_TEST_PG is not set (SQLite has no row locks to hold the bot up with)");
        return;
    };
    let db = t.db.clone();
    let Db::Postgres(pool) = &db else { unreachable!("a PostgreSQL test database") };
    let w = world(db.clone()).await;
    let customer = w.customer(&w.r1, "海尔智家").await;
    let mock = MockWecom::start().await;
    let (mut s, sim) = against_mock(&w, &mock).await;
    s.wecom.reply_deadline_ms = 300;
    let server = Server::start(s, db.clone()).await;

    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT id FROM customers WHERE id = $1 FOR UPDATE")
        .bind(customer.id)
        .execute(&mut *holder)
        .await
        .expect("lock the customer row");
    let cb = sim.text("zhangsan", "拜访 海尔智家 聊了交付", "901", t0().timestamp());
    let url = server.url(&format!("{PATH}?{}", cb.query));
    let r = server.send(server.client.post(url).body(cb.body)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""), "acknowledged without a passive reply");
    assert!(mock.received().is_empty());
    holder.rollback().await.expect("release the row");
    let pushed = pushes(&mock).await;
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0].touser.as_deref(), Some("zhangsan"));
    assert!(pushed[0].content().is_some_and(|c| c.contains("海尔智家")), "{pushed:?}");
    assert_eq!(w.count("activities").await, 1);
    server.stop().await;
    t.drop_database().await;
}

/// A reply longer than WeCom's 2,048-byte text limit: the first part comes back passively, the
/// rest through `message/send`, split on line boundaries, nothing lost.
#[tokio::test]
async fn a_long_reply_is_split_across_passive_reply_and_push() {
    use chatcrm::platform::wecom::mock::MockWecom;
    let t = TestDb::sqlite().await;
    let w = world(t.db.clone()).await;
    let mock = MockWecom::start().await;
    let (s, sim) = against_mock(&w, &mock).await;
    let names: Vec<String> = (0..12).map(|i| format!("第{i:02}号{}", "很长的客户名称".repeat(12))).collect();
    for n in &names {
        w.customer(&w.r1, n).await;
    }
    let server = Server::start(s, t.db.clone()).await;
    let cb = sim.text("zhangsan", "我的客户", "1", t0().timestamp());
    let r = server.send(server.client.post(server.url(&format!("{PATH}?{}", cb.query))).body(cb.body)).await;
    let first = sim.open_reply(&r.body).expect("passive reply");
    assert!(first.len() <= 2048, "{} bytes", first.len());
    let pushed = pushes(&mock).await;
    let rest: Vec<String> = pushed.iter().filter_map(|p| p.content().map(str::to_string)).collect();
    assert!(!rest.is_empty() && rest.iter().all(|p| p.len() <= 2048), "{rest:?}");
    let all = std::iter::once(first).chain(rest).collect::<Vec<_>>().join("\n");
    for n in &names {
        assert!(all.contains(n.as_str()), "{n} missing from the reply");
    }
    server.stop().await;
}

/// `/metrics` counts callbacks by route and status with their latency, messages handled and
/// deduplicated, and reads the outbox and scheduler state from the database.
async fn metrics_count_callbacks_messages_and_queues(db: Db) {
    let t = Wecom::start(db, false).await;
    t.say("zhangsan", "新客户 海尔智家", "8100").await;
    t.say("zhangsan", "新客户 海尔智家", "8100").await; // WeCom's retry: deduplicated
    t.say("lisi", "今天", "8101").await;
    let mut forged = t.sim.text("zhangsan", "今天", "8102", t0().timestamp());
    forged.query = forged.query.replace("msg_signature=", "msg_signature=0");
    assert_eq!(t.post(&forged).await.status, 401);
    let r = t.server.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    let value = |series: &str| -> f64 {
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{}", r.body))
    };
    assert_eq!(value(r#"chatcrm_http_requests_total{route="wecom",code="2xx"}"#), 3.0);
    assert_eq!(value(r#"chatcrm_http_requests_total{route="wecom",code="4xx"}"#), 1.0);
    assert_eq!(value(r#"chatcrm_http_request_duration_seconds_count{route="wecom"}"#), 4.0);
    assert_eq!(value(r#"chatcrm_http_request_duration_seconds_bucket{route="wecom",le="+Inf"}"#), 4.0);
    assert!(value(r#"chatcrm_http_request_duration_seconds_sum{route="wecom"}"#) > 0.0);
    assert_eq!(value(r#"chatcrm_messages_total{outcome="handled"}"#), 2.0);
    assert_eq!(value(r#"chatcrm_messages_total{outcome="duplicate"}"#), 1.0);
    assert_eq!(value(r#"chatcrm_messages_total{outcome="failed"}"#), 0.0);
    assert_eq!(value("chatcrm_database_up"), 1.0);
    assert_eq!(value("chatcrm_scheduler_lag_seconds"), 0.0, "no reminder is overdue");
    // A reminder due ten minutes before the server's clock and not fired: the lag shows it.
    let mut tx = t.w.tx().await;
    let ctx = t.w.ctx(&t.w.r1);
    chatcrm::crm::tasks::create_task(
        &mut tx,
        &chatcrm::crm::Ctx { now: t0() - chrono::Duration::minutes(20), ..ctx },
        chatcrm::crm::tasks::NewTask {
            title: "回访".into(),
            due_at: t0() - chrono::Duration::minutes(10),
            owner_id: None,
            customer_id: None,
            deal_id: None,
            origin: chatcrm::crm::TaskOrigin::Manual,
        },
    )
    .await
    .expect("task");
    tx.commit().await.expect("commit");
    let r = t.server.get("/metrics").await;
    let lag: f64 = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("chatcrm_scheduler_lag_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("lag");
    assert!(lag >= 590.0, "lag {lag} in\n{}", r.body);
}

both_backends!(metrics_count_callbacks_messages_and_queues);

/// `/metrics` counts the outbox's delivery results and shows its depth by status: through the
/// real dispatcher against the mock WeCom, one message fails once (-1, retried later) and one
/// goes to a user WeCom does not know (81013, dead-lettered); once the clock passes the retry,
/// the first is sent.
async fn metrics_count_outbox_deliveries_and_depth(db: Db) {
    use chatcrm::outbox::{Kind, OutMessage, Outgoing, Target};
    let w = world(db.clone()).await;
    let mock = chatcrm::platform::wecom::mock::MockWecom::start().await;
    let (mut s, _) = against_mock(&w, &mock).await;
    // Only the outbox: no scheduled job may queue anything when the clock moves.
    s.schedule = s.schedule.without_jobs();
    let clock = chatcrm::clock::Clock::fixed(t0());
    let server = Server::start_with_clock(s, db.clone(), clock.clone()).await;
    let scrape = || async {
        let r = server.get("/metrics").await;
        assert_eq!(r.status, 200);
        r.body
    };
    let value = |body: &str, series: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    };
    let figures = |body: &str| {
        [
            r#"chatcrm_outbox_deliveries_total{result="sent"}"#,
            r#"chatcrm_outbox_deliveries_total{result="retry"}"#,
            r#"chatcrm_outbox_deliveries_total{result="dead"}"#,
            r#"chatcrm_outbox_messages{status="pending"}"#,
            r#"chatcrm_outbox_messages{status="sent"}"#,
            r#"chatcrm_outbox_messages{status="dead"}"#,
        ]
        .map(|series| value(body, series))
    };
    // Every series is there, at 0, before anything was queued.
    let body = scrape().await;
    assert_eq!(figures(&body), [0.0; 6]);
    assert_eq!(value(&body, r#"chatcrm_outbox_messages{status="dropped"}"#), 0.0);

    mock.script(vec![chatcrm::platform::wecom::mock::Fault::Errcode(-1)]);
    mock.mark_invalid_user("ghost");
    let queue = |key: &'static str, recipient: &'static str| {
        let (db, org) = (db.clone(), w.org.id);
        async move {
            let target = Target { platform: "wecom".into(), app: "sales".into(), recipient: recipient.into() };
            let message = OutMessage::text(format!("提醒 {key}"));
            let out = Outgoing {
                org_id: Some(org),
                user_id: None,
                kind: Kind::Notice,
                target: &target,
                message: &message,
                dedupe_key: key,
                not_before: t0(),
            };
            let mut tx = db.begin().await.expect("begin");
            assert!(chatcrm::outbox::enqueue(&mut tx, &out, t0()).await.expect("enqueue"));
            tx.commit().await.expect("commit");
        }
    };
    // Polls `/metrics` until `done` holds of the figures (the dispatcher polls every 500 ms).
    let until = |done: fn(&[f64; 6]) -> bool| {
        let scrape = &scrape;
        async move {
            let mut body = String::new();
            for _ in 0..200 {
                body = scrape().await;
                if done(&figures(&body)) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            body
        }
    };
    // One at a time, so the scripted failure meets the first.
    queue("m1", "zhangsan").await;
    let body = until(|f| f[1] == 1.0).await;
    assert_eq!(figures(&body), [0.0, 1.0, 0.0, 1.0, 0.0, 0.0], "{body}");
    queue("m2", "ghost").await;
    let body = until(|f| f[2] == 1.0).await;
    assert_eq!(figures(&body), [0.0, 1.0, 1.0, 1.0, 0.0, 1.0], "{body}");
    assert_eq!(value(&body, "chatcrm_outbox_oldest_due_seconds"), 0.0, "the retry is not due yet");

    // Past the retry's time: it is due, and sent.
    clock.advance(chrono::Duration::hours(1));
    let body = until(|f| f[0] == 1.0).await;
    assert_eq!(figures(&body), [1.0, 1.0, 1.0, 0.0, 1.0, 1.0], "{body}");
    let sent: Vec<_> = mock.received().into_iter().filter_map(|r| r.touser).collect();
    assert_eq!(sent, ["zhangsan"]);
    server.stop().await;
    mock.stop().await;
}

both_backends!(metrics_count_outbox_deliveries_and_depth);

/// Per-sender rate limit through real callbacks: past the burst the sender is told once, further
/// messages are acknowledged without being acted on (nothing stored), a redelivery of a message
/// handled earlier still gets its stored answer, other senders are served, and the bucket refills.
async fn a_sender_over_the_rate_limit_is_told_once_then_ignored(db: Db) {
    let w = world(db.clone()).await;
    let clock = chatcrm::clock::Clock::fixed(t0());
    let settings = Settings { sender_rate_per_minute: 60, sender_rate_burst: 3, ..wecom_settings(false) };
    let server = Server::start_with_clock(settings, db, clock.clone()).await;
    let sim = Simulator::new(TOKEN, KEY, CORP, AGENT).expect("simulator");
    let t = Wecom { server, sim, w };
    assert!(t.say("zhangsan", "新客户 海尔智家", "9100").await.contains("已创建客户"));
    let first_visit = t.say("zhangsan", "拜访 海尔 聊了一期", "9101").await;
    assert!(first_visit.contains("已记录拜访"), "{first_visit}");
    assert!(t.say("zhangsan", "拜访 海尔 聊了二期", "9102").await.contains("已记录拜访"));
    let (activities, inbox) = (t.w.count("activities").await, t.w.count("inbox").await);
    assert_eq!(activities, 2);

    let notice = t.say("zhangsan", "拜访 海尔 聊了三期", "9103").await;
    assert!(notice.contains("每分钟最多 60 条"), "{notice}");
    assert_eq!(t.w.count("activities").await, activities, "the message over the limit is not acted on");
    assert_eq!(t.w.count("inbox").await, inbox + 1, "the notice is recorded as that message's answer");

    // Further messages: an empty acknowledgement (no WeCom retry), nothing written.
    let cb = t.sim.text("zhangsan", "拜访 海尔 聊了四期", "9104", t0().timestamp());
    let r = t.post(&cb).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""), "dropped messages are acknowledged silently");
    assert_eq!((t.w.count("activities").await, t.w.count("inbox").await), (activities, inbox + 1));
    // A redelivery of a message handled before the limit still gets its answer, changing nothing.
    assert_eq!(t.say("zhangsan", "拜访 海尔 聊了一期", "9101").await, first_visit);
    assert_eq!(t.w.count("activities").await, activities);
    // Another sender has a bucket of its own.
    let other = t.say("lisi", "今天", "9105").await;
    assert!(!other.is_empty() && !other.contains("每分钟"), "{other}");

    // 60 a minute refills one message a second.
    clock.advance(chrono::Duration::seconds(1));
    assert!(t.say("zhangsan", "拜访 海尔 聊了五期", "9106").await.contains("已记录拜访"));
    assert_eq!(t.w.count("activities").await, activities + 1);
    let m = t.server.get("/metrics").await;
    assert!(m.body.contains("chatcrm_messages_total{outcome=\"rate_limited\"} 2\n"), "{}", m.body);
    t.server.stop().await;
}

both_backends!(a_sender_over_the_rate_limit_is_told_once_then_ignored);
