//! DingTalk end to end: signed robot callbacks from two reps and a manager drive the real server,
//! replies arrive at the session webhook (on the mock DingTalk); duplicates change nothing and
//! are not answered twice; every rejection stores nothing; encrypted event callbacks; and the
//! push client through the real outbox against the mock's faults.

use std::time::Duration as StdDuration;

use super::helpers::*;
use super::http::{Server, settings};
use crate::both_backends;
use chatcrm::config::Settings;
use chatcrm::crm::{self, Actor, Ctx, Via};
use chatcrm::platform::dingtalk::mock::{self, Api, MockDingtalk};
use chatcrm::platform::dingtalk::simulate::{RobotCallback, Simulator};
use chatcrm::platform::dingtalk::{DingtalkApp, DingtalkSettings};
use chatcrm::store::Db;
use secrecy::SecretString;

const PATH: &str = "/callback/dingtalk/sales";
const CORP: &str = mock::CORP_ID;

fn app() -> DingtalkApp {
    let mut a = MockDingtalk::app("sales", "Org One");
    a.event_token = Some(SecretString::from("mryue"));
    a.event_aes_key = Some(SecretString::from("Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"));
    a
}

fn dingtalk_settings(mock: &MockDingtalk, self_register: bool) -> Settings {
    Settings {
        dingtalk: DingtalkSettings {
            api_base: mock.base_url(),
            apps: vec![app()],
            self_register,
            ..DingtalkSettings::default()
        },
        console_org: "Org One".into(),
        ..settings()
    }
}

/// World users linked to DingTalk staff ids: r1 = zhangsan, r2 = lisi, ma = wangwu.
async fn world(db: Db) -> World {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
    for (u, id) in [(&w.r1, "zhangsan"), (&w.r2, "lisi"), (&w.ma, "wangwu")] {
        crm::users::link_identity(&mut tx, &sys, u.id, "dingtalk", CORP, id).await.expect("link");
    }
    tx.commit().await.expect("commit");
    w
}

/// Posts a robot callback to the server as DingTalk does.
async fn post_robot(server: &Server, cb: &RobotCallback) -> super::http::Resp {
    let req = server
        .client
        .post(server.url(PATH))
        .header("timestamp", &cb.timestamp)
        .header("sign", &cb.sign)
        .header("content-type", "application/json")
        .body(cb.body.clone());
    server.send(req).await
}

struct Dingtalk {
    server: Server,
    mock: MockDingtalk,
    sim: Simulator,
    w: World,
}

impl Dingtalk {
    async fn start(db: Db, self_register: bool, outbox: bool) -> Self {
        let w = world(db.clone()).await;
        let mock = MockDingtalk::start().await;
        let mut s = dingtalk_settings(&mock, self_register);
        s.schedule.enabled = outbox;
        let server = Server::start(s, db).await;
        let sim = Simulator::new(&app()).expect("simulator");
        Self { server, mock, sim, w }
    }

    fn ms(&self) -> i64 {
        t0().timestamp_millis()
    }

    async fn post(&self, cb: &RobotCallback) -> super::http::Resp {
        post_robot(&self.server, cb).await
    }

    /// What arrived at one session webhook.
    fn session(&self, session: &str) -> Vec<mock::Received> {
        self.mock.received().into_iter().filter(|r| r.api == Api::Session && r.to == session).collect()
    }

    /// Sends a text message (in `group` when given) and returns the replies at its session webhook.
    async fn say_in(&self, user: &str, text: &str, msg_id: &str, group: Option<&str>) -> Vec<mock::Received> {
        let session = format!("s-{msg_id}");
        let cb = self.sim.text(user, text, msg_id, group, self.ms(), Some(&self.mock.session_url(&session)));
        let r = self.post(&cb).await;
        assert_eq!((r.status, r.body.as_str()), (200, ""), "{user}: {text}");
        self.session(&session)
    }

    async fn say(&self, user: &str, text: &str, msg_id: &str) -> String {
        let got = self.say_in(user, text, msg_id, None).await;
        assert_eq!(got.len(), 1, "one reply for `{text}`: {got:?}");
        got[0].content().unwrap_or_default().to_string()
    }

    /// Replies queued in the outbox for `staff_id` as work notifications (their JSON bodies).
    async fn private_replies(&self, staff_id: &str) -> Vec<String> {
        let sql = "SELECT body FROM outbox WHERE platform = 'dingtalk' AND recipient = $1 ORDER BY id";
        match &self.w.db {
            Db::Sqlite(p) => sqlx::query_scalar(sql).bind(staff_id).fetch_all(p).await.expect("outbox"),
            Db::Postgres(p) => sqlx::query_scalar(sql).bind(staff_id).fetch_all(p).await.expect("outbox"),
        }
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

    async fn stop(self) {
        self.server.stop().await;
        self.mock.stop().await;
    }
}

/// The WeCom scenario unchanged: same messages, same replies, same resulting counts; every
/// message delivered twice, the second changing nothing and answered nowhere.
async fn two_reps_and_a_manager(db: Db) {
    let t = Dingtalk::start(db, false, false).await;
    let script: &[(&str, &str, &str)] = &[
        ("zhangsan", "新客户 海尔智家", "已创建客户"),
        ("zhangsan", "拜访 海尔 聊了二期需求，下周三下午3点再跟进", "已设提醒：12月2日 周三 15:00 再跟进"),
        ("lisi", "新客户 美的集团", "已创建客户"),
        ("lisi", "新商机 美的 仓储系统 50万 报价", "已建商机"),
        ("zhangsan", "提醒 明天下午3点 给海尔打电话", "已设提醒：11月25日 周三 15:00"),
        ("wangwu", "团队漏斗", "进行中 1 单"),
        ("lisi", "拜访 海尔 顺路", "没找到客户"),
    ];
    for (i, (user, text, expect)) in script.iter().enumerate() {
        let id = format!("msg{}", 7_000_000 + i);
        // The manager asks in a group (@-mentioning the robot): the group gets a note that
        // @-mentions him and holds nothing of the answer; the answer is queued to him privately
        // (a work notification).
        if *user == "wangwu" {
            let got = t.say_in(user, text, &id, Some("销售一组")).await;
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(got[0].content().is_some_and(|c| c == "回复已私信发给你。"), "{user}: {text} → {got:?}");
            assert_eq!(got[0].msg["at"]["atUserIds"][0], "wangwu");
            let private = t.private_replies("wangwu").await;
            assert!(private.len() == 1 && private[0].contains(expect), "{user}: {text} → {private:?}");
        } else {
            let reply = t.say(user, text, &id).await;
            assert!(reply.contains(expect), "{user}: {text} → {reply}");
        }
    }
    let counts = t.counts().await;
    assert_eq!(counts, (2, 1, 1, 2, 7));
    // DingTalk delivers every message again: nothing changes, and nobody is answered twice.
    for (i, (user, text, _)) in script.iter().enumerate() {
        let id = format!("msg{}", 7_000_000 + i);
        let group = (*user == "wangwu").then_some("销售一组");
        let got = t.say_in(user, text, &id, group).await;
        assert_eq!(got.len(), 1, "a duplicate of `{text}` was answered again: {got:?}");
    }
    assert_eq!(t.counts().await, counts);
    assert_eq!(t.mock.received().len(), script.len());
    assert_eq!(t.private_replies("wangwu").await.len(), 1, "the duplicate queued nothing");
    t.stop().await;
}

/// An app without an agent id cannot message anyone privately: a group question is handled, the
/// group is told answers are not shown there, and nothing is queued or posted with the answer.
async fn a_group_answer_is_never_posted_in_the_group(db: Db) {
    let w = world(db.clone()).await;
    let mock = MockDingtalk::start().await;
    let mut s = dingtalk_settings(&mock, false);
    s.dingtalk.apps[0].agent_id = None;
    let server = Server::start(s, db).await;
    let t = Dingtalk { server, mock, sim: Simulator::new(&app()).expect("simulator"), w };
    let got = t.say_in("wangwu", "新客户 海尔智家", "ng-1", Some("销售一组")).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let note = got[0].content().unwrap_or_default();
    assert!(note.contains("群里不显示回复内容") && !note.contains("海尔"), "{note}");
    assert_eq!(t.w.count("customers").await, 1, "the message itself is handled");
    assert!(t.private_replies("wangwu").await.is_empty(), "nothing can be sent privately");
    t.stop().await;
}

async fn rejections_store_nothing(db: Db) {
    let t = Dingtalk::start(db, false, false).await;
    let inbox = t.w.count("inbox").await;
    let ms = t.ms();
    let good = t.sim.text("zhangsan", "今天", "good-1", None, ms, Some(&t.mock.session_url("g")));
    let send = |ts: Option<&str>, sign: Option<&str>, body: String, path: &str| {
        let mut req = t.server.client.post(t.server.url(path)).header("content-type", "application/json");
        if let Some(ts) = ts {
            req = req.header("timestamp", ts);
        }
        if let Some(sign) = sign {
            req = req.header("sign", sign);
        }
        t.server.send(req.body(body))
    };
    // A wrong or missing sign, or a sign made with another secret.
    let other = Simulator::new(&DingtalkApp { app_secret: SecretString::from("not the secret"), ..app() })
        .expect("sim")
        .text("zhangsan", "今天", "x", None, ms, None);
    for (ts, sign) in [
        (Some(good.timestamp.as_str()), Some("AAAA")),
        (Some(good.timestamp.as_str()), None),
        (None, Some(good.sign.as_str())),
        (Some(other.timestamp.as_str()), Some(other.sign.as_str())),
    ] {
        send(ts, sign, good.body.clone(), PATH).await.assert_error(401, "unauthorized");
    }
    // The same body under a signature for another timestamp.
    let later = (ms + 1).to_string();
    send(Some(&later), Some(&good.sign), good.body.clone(), PATH).await.assert_error(401, "unauthorized");
    // A correctly signed callback from two hours ago (and one from the future).
    for at in [ms - 2 * 3_600_000, ms + 2 * 3_600_000] {
        let stale = t.sim.text("zhangsan", "今天", "stale", None, at, None);
        t.post(&stale).await.assert_error(401, "unauthorized");
    }
    // Signed but malformed.
    for body in ["not json".to_string(), "{}".to_string(), r#"{"msgtype":"text","text":{"content":"今天"}}"#.into()] {
        let cb = t.sim.sign(&serde_json::json!(null), ms);
        send(Some(&cb.timestamp), Some(&cb.sign), body, PATH).await.assert_error(400, "malformed");
    }
    // An app that is not configured.
    send(Some(&good.timestamp), Some(&good.sign), good.body.clone(), "/callback/dingtalk/nope")
        .await
        .assert_error(404, "not_found");
    // A body over the limit.
    let big = t.sim.text("zhangsan", &"很".repeat(100_000), "big", None, ms, None);
    t.post(&big).await.assert_error(413, "payload_too_large");
    // Event callbacks: a bad signature, a missing query, a malformed body.
    let ev = t.sim.event(r#"{"EventType":"user_add_org"}"#, ms, "n1").expect("event");
    let events = |query: String, body: String| {
        let url = t.server.url(&format!("{PATH}/events?{query}"));
        t.server.send(t.server.client.post(url).header("content-type", "application/json").body(body))
    };
    events(ev.query.replace("signature=", "signature=0"), ev.body.clone()).await.assert_error(401, "unauthorized");
    events("nonce=1".into(), ev.body.clone()).await.assert_error(400, "malformed");
    events(ev.query.clone(), "{\"nope\":1}".into()).await.assert_error(400, "malformed");
    assert_eq!(t.w.count("inbox").await, inbox, "a rejected callback stored something");
    assert!(t.mock.received().is_empty(), "a rejected callback was answered");
    // The good one still works afterwards.
    assert_eq!(t.post(&good).await.status, 200);
    assert_eq!(t.w.count("inbox").await, inbox + 1);
    assert_eq!(t.session("g").len(), 1);
    t.stop().await;
}

async fn unknown_users_are_told_how_to_be_linked(db: Db) {
    let t = Dingtalk::start(db, false, false).await;
    let reply = t.say("stranger", "今天", "u1").await;
    assert!(reply.contains("chatcrm users link") && reply.contains(CORP) && reply.contains("stranger"), "{reply}");
    // A member of another corp in a shared group is never matched against our staff ids (and
    // nothing is recorded for them).
    let inbox = t.w.count("inbox").await;
    let mut body = t.sim.text_body("zhangsan", "今天", "u2", Some("合作群"), t.ms(), Some(&t.mock.session_url("u2")));
    body["senderCorpId"] = serde_json::json!("dingOTHERCORP");
    assert_eq!(t.post(&t.sim.sign(&body, t.ms())).await.status, 200);
    let got = t.session("u2");
    assert!(got[0].content().is_some_and(|c| c.contains("只为本企业")), "{got:?}");
    assert_eq!(t.w.count("inbox").await, inbox);
    // Pictures get a fixed answer; a mention with no text is ignored.
    let mut pic = t.sim.text_body("zhangsan", "x", "u3", None, t.ms(), Some(&t.mock.session_url("u3")));
    pic["msgtype"] = serde_json::json!("picture");
    pic["content"] = serde_json::json!({ "downloadCode": "abc" });
    assert_eq!(t.post(&t.sim.sign(&pic, t.ms())).await.status, 200);
    assert!(t.session("u3")[0].content().is_some_and(|c| c.contains("图片")));
    assert!(t.say_in("zhangsan", "", "u4", Some("群")).await.is_empty());
    t.stop().await;
}

async fn self_registration_when_allowed(db: Db) {
    let t = Dingtalk::start(db, true, false).await;
    let reply = t.say("newbie", "新客户 潍柴动力", "1").await;
    assert!(reply.contains("已创建客户"), "{reply}");
    let mut tx = t.w.tx().await;
    let u = crm::users::find_user(&mut tx, t.w.org.id, "newbie").await.expect("registered");
    assert_eq!(u.role, crm::Role::Rep);
    drop(tx);
    t.stop().await;
}

both_backends!(
    two_reps_and_a_manager,
    a_group_answer_is_never_posted_in_the_group,
    rejections_store_nothing,
    unknown_users_are_told_how_to_be_linked,
    self_registration_when_allowed,
);

/// The check_url handshake and any other event: answered with the encrypted `success`.
#[tokio::test]
async fn event_callbacks_are_answered_with_encrypted_success() {
    let t = TestDb::sqlite().await;
    let t = Dingtalk::start(t.db.clone(), false, false).await;
    for (i, plain) in [r#"{"EventType":"check_url"}"#, r#"{"EventType":"chat_update_title","Title":"客户群-华东区"}"#]
        .into_iter()
        .enumerate()
    {
        let ev = t.sim.event(plain, t.ms(), &format!("n{i}")).expect("event");
        // The older spelling of the query is accepted too.
        let query = if i == 1 {
            ev.query.replace("signature=", "msg_signature=").replace("timestamp=", "timeStamp=")
        } else {
            ev.query
        };
        let url = t.server.url(&format!("{PATH}/events?{query}"));
        let r = t.server.send(t.server.client.post(url).body(ev.body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(t.sim.open_event_response(&r.body).expect("opens"), "success");
        assert_eq!(r.json()["timeStamp"], t.ms().to_string());
    }
    assert_eq!(t.w.count("inbox").await, 0, "events store nothing");
    t.stop().await;
}

/// No usable session webhook (expired, failing, or not DingTalk's): the reply is pushed as a
/// work notification through the outbox, once.
#[tokio::test]
async fn without_a_session_webhook_the_reply_is_pushed() {
    let db = TestDb::sqlite().await;
    let t = Dingtalk::start(db.db.clone(), false, true).await;
    let ms = t.ms();
    // 1. Expired an hour ago.
    let mut body = t.sim.text_body("zhangsan", "新客户 海尔智家", "p1", None, ms, Some(&t.mock.session_url("p1")));
    body["sessionWebhookExpiredTime"] = serde_json::json!(ms - 3_600_000);
    assert_eq!(t.post(&t.sim.sign(&body, ms)).await.status, 200);
    // 2. Valid by its time, but DingTalk refuses it.
    t.mock.expire_session("p2");
    assert_eq!(
        t.post(&t.sim.text("zhangsan", "今天", "p2", None, ms, Some(&t.mock.session_url("p2")))).await.status,
        200
    );
    // 3. Not under api_base: never posted to.
    let elsewhere = "http://127.0.0.1:9/robot/sendBySession?session=p3";
    assert_eq!(t.post(&t.sim.text("lisi", "我的客户", "p3", None, ms, Some(elsewhere))).await.status, 200);
    let mut work = Vec::new();
    for _ in 0..100 {
        work = t.mock.received().into_iter().filter(|r| r.api == Api::Work).collect::<Vec<_>>();
        if work.len() >= 3 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let seen: Vec<(&str, bool)> = work
        .iter()
        .map(|r| {
            (
                r.to.as_str(),
                r.content().is_some_and(|c| c.contains("已创建客户") || c.contains("今天") || c.contains("客户")),
            )
        })
        .collect();
    assert_eq!(work.len(), 3, "{work:?}");
    assert!(seen.iter().all(|(_, ok)| *ok), "{seen:?}");
    assert_eq!(seen.iter().filter(|(to, _)| *to == "zhangsan").count(), 2);
    assert!(t.mock.received().iter().all(|r| r.api == Api::Work), "no session reply was accepted");
    t.stop().await;
}

/// Work notifications, custom robots, shapes and faults, through the real outbox.
mod push {
    use std::time::Duration as StdDuration;

    use chatcrm::clock::Clock;
    use chatcrm::crm::{self, Actor, Ctx, Via};
    use chatcrm::outbox::{Card, DispatchConfig, Dispatcher, Kind, OutMessage, Outgoing, Routes, Senders, Target};
    use chatcrm::platform::dingtalk::Pusher;
    use chatcrm::platform::dingtalk::mock::{self, Api, Fault, MockDingtalk};
    use chatcrm::store::Db;
    use chrono::Duration;

    use crate::both_backends;
    use crate::helpers::{World, t0};

    const APP: &str = "sales";

    fn pusher(mock: &MockDingtalk, timeout: StdDuration, robot_limit: (usize, StdDuration)) -> Pusher {
        Pusher::new(&mock.base_url(), &MockDingtalk::app(APP, "Org One"), timeout, robot_limit).expect("pusher")
    }

    async fn queue(db: &Db, org_id: i64, target: &Target, message: &OutMessage, key: &str) {
        let mut tx = db.begin().await.expect("begin");
        let out = Outgoing {
            org_id: Some(org_id),
            user_id: None,
            kind: Kind::Notice,
            target,
            message,
            dedupe_key: key,
            not_before: t0(),
        };
        assert!(chatcrm::outbox::enqueue(&mut tx, &out, t0()).await.expect("enqueue"));
        tx.commit().await.expect("commit");
    }

    async fn statuses(db: &Db) -> Vec<(String, i64)> {
        let mut tx = db.begin_read().await.expect("begin");
        let counts = chatcrm::store::outbox::counts(&mut tx).await.expect("counts");
        tx.commit().await.expect("commit");
        counts
    }

    /// Drains, stepping the clock past each backoff (and `pause` of real time for the robots'
    /// windows), until nothing is pending.
    async fn deliver(outbox: &Dispatcher, clock: &Clock, db: &Db, rounds: usize, pause: StdDuration) {
        for _ in 0..rounds {
            outbox.drain().await.expect("drain");
            if statuses(db).await.iter().all(|(status, _)| status != "pending") {
                return;
            }
            clock.set(clock.now() + Duration::minutes(11));
            tokio::time::sleep(pause).await;
        }
        panic!("still pending: {:?}", statuses(db).await);
    }

    fn once(got: &[String], expected: &[String]) {
        for e in expected {
            assert_eq!(got.iter().filter(|g| *g == e).count(), 1, "{e:?} exactly once in {got:?}");
        }
        assert_eq!(got.len(), expected.len(), "{got:?}");
    }

    fn contents(mock: &MockDingtalk, api: Api) -> Vec<String> {
        mock.received().iter().filter(|r| r.api == api).filter_map(|r| r.content().map(str::to_string)).collect()
    }

    /// A user linked to the mock corp routes to the DingTalk app with the staffId as recipient.
    async fn manager_target(w: &World) -> Target {
        let mut tx = w.tx().await;
        let ctx = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
        crm::users::link_identity(&mut tx, &ctx, w.ma.id, "dingtalk", mock::CORP_ID, "manager-a").await.expect("link");
        let target =
            Routes::default().with_dingtalk_app(APP, mock::CORP_ID).target_for_user(&mut tx, w.ma.id).await.expect("t");
        tx.commit().await.expect("commit");
        assert_eq!(
            (target.platform.as_str(), target.app.as_str(), target.recipient.as_str()),
            ("dingtalk", APP, "manager-a")
        );
        target
    }

    async fn work_notifications_arrive_once_through_token_expiry_5xx_busy_and_timeouts(db: Db) {
        let w = World::new(db.clone()).await;
        let target = manager_target(&w).await;
        let mock = MockDingtalk::start().await;
        let p = pusher(&mock, StdDuration::from_millis(400), (20, StdDuration::from_secs(60)));
        let clock = Clock::fixed(t0());
        let outbox = Dispatcher::new(
            db.clone(),
            clock.clone(),
            "one",
            Senders::default().with_dingtalk(APP, p.clone()),
            DispatchConfig::default(),
        );
        let mut expected = Vec::new();
        let mut send = async |text: String, key: &str, faults: Vec<Fault>| {
            mock.script(faults);
            queue(&db, w.org.id, &target, &OutMessage::text(text.clone()), key).await;
            deliver(&outbox, &clock, &db, 6, StdDuration::ZERO).await;
            expected.push(text);
        };
        send("第一条".into(), "k1", vec![]).await;
        // 1. The token expires: refreshed once, delivered once.
        mock.expire_tokens();
        send("令牌过期后".into(), "k2", vec![]).await;
        assert_eq!(mock.token_fetches(), 2);
        // 2. A 502, then -1 (busy), then a frequency limit: each retried by the outbox.
        send("网关错误后".into(), "k3", vec![Fault::Http(502)]).await;
        send("系统繁忙后".into(), "k4", vec![Fault::Errcode(-1), Fault::Errcode(90018)]).await;
        // 3. The request times out although DingTalk delivered it: the identical retry is dropped
        //    by DingTalk's once-a-day rule for the same content.
        send("超时后".into(), "k5", vec![Fault::Delay(StdDuration::from_millis(800))]).await;
        tokio::time::sleep(StdDuration::from_millis(900)).await;
        // 4. A long text arrives in parts, split between lines.
        let long: String = (0..300).map(|i| format!("第{i}行 客户跟进记录\n")).collect();
        mock.script(vec![]);
        queue(&db, w.org.id, &target, &OutMessage::text(long.clone()), "k6").await;
        deliver(&outbox, &clock, &db, 3, StdDuration::ZERO).await;
        let got = contents(&mock, Api::Work);
        let (short, parts) = got.split_at(expected.len());
        once(short, &expected);
        assert!(parts.len() > 1 && parts.iter().all(|p| p.len() <= 2048), "{} parts", parts.len());
        assert_eq!(parts.join("\n").trim_end(), long.trim_end());
        assert!(mock.duplicates_dropped() >= 1, "the timed-out send was retried");
        assert!(mock.received().iter().all(|r| r.to == "manager-a"));
        assert_eq!(statuses(&db).await, vec![("sent".to_string(), 6)]);
        mock.stop().await;
    }

    async fn robot_messages_arrive_once_through_the_rate_limit_and_5xx(db: Db) {
        let w = World::new(db.clone()).await;
        let mock = MockDingtalk::start().await;
        let robot =
            Target { platform: "dingtalk".into(), app: APP.into(), recipient: format!("robot:{}", mock::ROBOT_NAME) };
        let clock = Clock::fixed(t0());
        // a) Our own limit of 20 per window keeps DingTalk from ever answering 130101.
        mock.set_robot_limit(20, StdDuration::from_millis(400));
        let p = pusher(&mock, StdDuration::from_secs(2), (20, StdDuration::from_millis(400)));
        let outbox = Dispatcher::new(
            db.clone(),
            clock.clone(),
            "one",
            Senders::default().with_dingtalk(APP, p),
            DispatchConfig::default(),
        );
        let texts: Vec<String> = (0..25).map(|i| format!("群通知 {i}")).collect();
        for (i, t) in texts.iter().enumerate() {
            queue(&db, w.org.id, &robot, &OutMessage::text(t.clone()), &format!("a{i}")).await;
        }
        deliver(&outbox, &clock, &db, 6, StdDuration::from_millis(450)).await;
        once(&contents(&mock, Api::Robot), &texts);
        assert_eq!(mock.throttled(), 0);

        // b) DingTalk counts more than we do (another instance): 130101, held back, then delivered.
        let mock = MockDingtalk::start().await;
        mock.set_robot_limit(5, StdDuration::from_secs(3600));
        let p = pusher(&mock, StdDuration::from_secs(2), (20, StdDuration::from_millis(300)));
        let outbox = Dispatcher::new(
            db.clone(),
            clock.clone(),
            "two",
            Senders::default().with_dingtalk(APP, p),
            DispatchConfig::default(),
        );
        let more: Vec<String> = (0..8).map(|i| format!("限流测试 {i}")).collect();
        for (i, t) in more.iter().enumerate() {
            queue(&db, w.org.id, &robot, &OutMessage::text(t.clone()), &format!("b{i}")).await;
        }
        outbox.drain().await.expect("drain");
        assert!(mock.throttled() >= 1);
        mock.reset_robot_windows();
        mock.set_robot_limit(20, StdDuration::from_secs(60));
        // c) And a 500 on the way.
        mock.script(vec![Fault::Http(500)]);
        deliver(&outbox, &clock, &db, 6, StdDuration::from_millis(350)).await;
        once(&contents(&mock, Api::Robot), &more);
        mock.stop().await;
    }

    async fn a_digest_a_reminder_card_and_a_chart_arrive_in_dingtalk_shapes(db: Db) {
        let w = World::new(db.clone()).await;
        let user = manager_target(&w).await;
        let robot = Target { recipient: format!("robot:{}", mock::ROBOT_NAME), ..user.clone() };
        let mock = MockDingtalk::start().await;
        let clock = Clock::fixed(t0());
        let p = pusher(&mock, StdDuration::from_secs(2), (20, StdDuration::from_secs(60)));
        let outbox = Dispatcher::new(
            db.clone(),
            clock.clone(),
            "one",
            Senders::default().with_dingtalk(APP, p),
            DispatchConfig::default(),
        );
        let digest = OutMessage::markdown("### **华东一组 · 日报**\n\n拜访 **3**　电话 **5**\n\n- 李雷 拜访 2");
        let card = OutMessage {
            text: "⏰ 给海尔打电话\n回复「完成 #12」或「推迟 #12 2天」".into(),
            card: Some(Card {
                title: "⏰ 给海尔打电话".into(),
                description: "11月25日 15:00 · 海尔智家".into(),
                key: "task-12".into(),
                buttons: vec![("done-12".into(), "完成".into()), ("snooze-12".into(), "推迟一天".into())],
            }),
            markdown: false,
            image_png: None,
        };
        let png = b"\x89PNG\r\n\x1a\nnot really a chart".to_vec();
        let chart = OutMessage::image("本周销售漏斗（图片）", png.clone());
        for (target, tag) in [(&user, "u"), (&robot, "r")] {
            queue(&db, w.org.id, target, &digest, &format!("{tag}-digest")).await;
            queue(&db, w.org.id, target, &card, &format!("{tag}-card")).await;
            queue(&db, w.org.id, target, &chart, &format!("{tag}-chart")).await;
        }
        deliver(&outbox, &clock, &db, 3, StdDuration::ZERO).await;
        let got = mock.received();
        let find = |api: Api, msgtype: &str| {
            got.iter()
                .find(|r| r.api == api && r.msgtype == msgtype)
                .unwrap_or_else(|| panic!("{msgtype} on {api:?}: {got:?}"))
        };
        let md = find(Api::Work, "markdown");
        assert_eq!(md.msg["markdown"]["title"], "华东一组 · 日报");
        assert!(md.content().is_some_and(|c| c.contains("拜访 **3**")));
        assert_eq!(find(Api::Robot, "markdown").msg["markdown"]["title"], "华东一组 · 日报");
        let work_card = &find(Api::Work, "action_card").msg["action_card"];
        assert_eq!(work_card["title"], "⏰ 给海尔打电话");
        assert_eq!(work_card["btn_json_list"][0]["title"], "完成");
        assert_eq!(
            work_card["btn_json_list"][0]["action_url"],
            "dtmd://dingtalkclient/sendMessage?content=%E5%AE%8C%E6%88%90%20%2312"
        );
        assert_eq!(
            work_card["btn_json_list"][1]["action_url"],
            format!(
                "dtmd://dingtalkclient/sendMessage?content={}",
                chatcrm::platform::dingtalk::sign::urlencode("推迟 #12 1天")
            )
        );
        let robot_card = &find(Api::Robot, "actionCard").msg["actionCard"];
        assert_eq!(robot_card["btns"][1]["title"], "推迟一天");
        assert!(robot_card["text"].as_str().is_some_and(|t| t.contains("完成 #12")), "the text says what to type");
        // The chart: uploaded and sent as an image to the user; robots get the caption.
        let image = find(Api::Work, "image");
        let media_id = image.msg["image"]["media_id"].as_str().expect("media_id");
        assert_eq!(mock.image(media_id), Some(png));
        assert_eq!(find(Api::Robot, "text").content(), Some("本周销售漏斗（图片）"));
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(statuses(&db).await, vec![("sent".to_string(), 6)]);
        mock.stop().await;
    }

    both_backends!(
        work_notifications_arrive_once_through_token_expiry_5xx_busy_and_timeouts,
        robot_messages_arrive_once_through_the_rate_limit_and_5xx,
        a_digest_a_reminder_card_and_a_chart_arrive_in_dingtalk_shapes,
    );

    /// Concurrent senders share one `gettoken`; a wrong secret or robot is fatal, not retried.
    #[tokio::test]
    async fn one_token_fetch_for_many_senders_and_fatal_configuration() {
        let mock = MockDingtalk::start().await;
        let p = pusher(&mock, StdDuration::from_secs(2), (20, StdDuration::from_secs(60)));
        let sends: Vec<_> = (0..10)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(
                    async move { p.deliver(&format!("user:u{i}"), &OutMessage::text(format!("并发 {i}"))).await },
                )
            })
            .collect();
        for s in sends {
            s.await.expect("join").expect("sent");
        }
        assert_eq!(mock.token_fetches(), 1);
        let failure = p.deliver("robot:nope", &OutMessage::text("x")).await.expect_err("unknown robot");
        assert!(matches!(failure, chatcrm::platform::PushFailure::Fatal(_)), "{failure:?}");
        mock.script(vec![Fault::Errcode(310000)]);
        let failure = p.deliver("robot:team", &OutMessage::text("x")).await.expect_err("310000");
        assert!(matches!(failure, chatcrm::platform::PushFailure::Fatal(_)), "{failure:?}");
        let mut bad = MockDingtalk::app(APP, "Org One");
        bad.app_secret = secrecy::SecretString::from("wrong");
        let bad = Pusher::new(&mock.base_url(), &bad, StdDuration::from_secs(2), (20, StdDuration::from_secs(60)))
            .expect("p");
        let failure = bad.deliver("zhangsan", &OutMessage::text("x")).await.expect_err("wrong secret");
        assert!(matches!(failure, chatcrm::platform::PushFailure::Fatal(_)), "{failure:?}");
        mock.stop().await;
    }
}

/// DingTalk's robot retries are not documented, so a message storage has not taken by the reply
/// deadline (SQLite's write lock held elsewhere) is still acknowledged and kept queued, not
/// refused: once the lock is free it is handled once and its reply pushed as a work notification.
#[tokio::test]
async fn a_late_robot_message_is_kept_not_refused() {
    late_robot_message_is_stored_once(None, StdDuration::ZERO, 200).await;
}

/// The same, with the lock held past SQLite's busy timeout: the writer's transaction fails after
/// the message was acknowledged, and nobody would send it again. It runs again until storage
/// takes it: stored once, its reply pushed once.
#[tokio::test]
async fn an_acknowledged_message_outlives_a_storage_failure() {
    late_robot_message_is_stored_once(Some(300), StdDuration::from_millis(1500), 200).await;
}

/// Storage fails before the reply deadline (the lock held past the busy timeout): refusing with
/// a 503 would likely lose the message, as DingTalk is not known to send it again. It runs again
/// instead, and here succeeds before the deadline: answered in the session, stored once.
#[tokio::test]
async fn a_robot_message_storage_fails_in_time_is_kept_not_refused() {
    late_robot_message_is_stored_once(Some(200), StdDuration::from_millis(1000), 3000).await;
}

/// Shutting down while a message DingTalk was told we received is not stored yet (the database
/// locked, so the writer fails and keeps it to run again): the server does not stop before it is
/// stored, since the process would take it along and DingTalk will not send it again.
#[tokio::test]
async fn shutdown_waits_for_an_acknowledged_message() {
    let db = TestDb::sqlite().await;
    let w = world(db.db.clone()).await;
    let mock = MockDingtalk::start().await;
    let mut s = dingtalk_settings(&mock, false);
    s.dingtalk.reply_deadline_ms = 300;
    s.shutdown_timeout_secs = 60;
    let opts = chatcrm::store::DbOptions {
        busy_timeout: StdDuration::from_millis(200),
        ..chatcrm::store::DbOptions::new(db.url.clone())
    };
    let mut server = Server::start(s, Db::connect(&opts).await.expect("server pool")).await;
    let sim = Simulator::new(&app()).expect("simulator");
    let lock = super::shutdown::hold_write_lock(&db.url).await;
    let ms = t0().timestamp_millis();
    let cb = sim.text("zhangsan", "新客户 海尔智家", "drain1", None, ms, Some(&mock.session_url("drain1")));
    let r = post_robot(&server, &cb).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""), "acknowledged");

    server.signal_shutdown();
    let task = server.take_task();
    // Long enough for the writer to fail on the lock and wait to run the message again.
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert!(!task.is_finished(), "the server stopped with an acknowledged message not stored");
    assert_eq!(w.count("inbox").await, 0);
    super::shutdown::release_write_lock(lock).await;

    let res = tokio::time::timeout(StdDuration::from_secs(60), task).await.expect("server did not stop");
    assert!(res.expect("server panicked").is_ok());
    // Stored, with its reply queued, by the time the server returned.
    assert_eq!((w.count("customers").await, w.count("inbox").await, w.count("outbox").await), (1, 1, 1));
    mock.stop().await;
}

async fn late_robot_message_is_stored_once(busy_timeout_ms: Option<u64>, hold: StdDuration, deadline_ms: u64) {
    let db = TestDb::sqlite().await;
    let w = world(db.db.clone()).await;
    let mock = MockDingtalk::start().await;
    let mut s = dingtalk_settings(&mock, false);
    s.dingtalk.reply_deadline_ms = deadline_ms;
    s.schedule.enabled = true; // the outbox dispatcher sends the pushed reply
    // The server's own pool, so the busy timeout applies to its writer.
    let served = match busy_timeout_ms {
        Some(ms) => {
            let opts = chatcrm::store::DbOptions {
                busy_timeout: StdDuration::from_millis(ms),
                ..chatcrm::store::DbOptions::new(db.url.clone())
            };
            Db::connect(&opts).await.expect("server pool")
        }
        None => db.db.clone(),
    };
    let server = Server::start(s, served).await;
    let sim = Simulator::new(&app()).expect("simulator");
    let lock = super::shutdown::hold_write_lock(&db.url).await;
    let ms = t0().timestamp_millis();
    let cb = sim.text("zhangsan", "新客户 海尔智家", "late1", None, ms, Some(&mock.session_url("late1")));
    let r = post_robot(&server, &cb).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""), "acknowledged");
    tokio::time::sleep(hold).await;
    super::shutdown::release_write_lock(lock).await;
    // The reply: in the session when the run that stored it finished in time, else pushed.
    let mut work = Vec::new();
    for _ in 0..200 {
        let replies =
            mock.received().into_iter().filter(|r| r.api == Api::Work || (r.api == Api::Session && r.to == "late1"));
        work = replies.collect::<Vec<_>>();
        if !work.is_empty() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_eq!(work.len(), 1, "{work:?}");
    assert!(work[0].content().is_some_and(|c| c.contains("已创建客户")), "{work:?}");
    assert_eq!((w.count("customers").await, w.count("inbox").await), (1, 1));
    server.stop().await;
    mock.stop().await;
}
