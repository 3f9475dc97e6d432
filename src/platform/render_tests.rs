//! The same reply, reminder and digest as each platform receives it, against the snapshots in
//! tests/snapshots/ (review a change, then rewrite them with `CHATCRM_UPDATE_SNAPSHOTS=1`).

use serde_json::{Value, json};

use crate::outbox::dispatch::wecom_message;
use crate::outbox::{Card, OutMessage};
use crate::platform::markdown::plain_text;
use crate::platform::{dingtalk, feishu};

/// A `今天` reply as the bot writes it: a bold title, lists, `#ids`.
const REPLY: &str = "**今天** 11-24\n待办 2 个：\n- #5 给海尔打电话 · 15:00\n- #6 给美的发报价单 · 17:00\n逾期 1 个：\n- #3 回访海信 · 11-22 到期\n回复「完成 #5」或「推迟 #5 明天」。";

fn reminder() -> OutMessage {
    let text = "⏰ 提醒 #5：给海尔打电话\n客户：海尔智家 · 上次联系 11月20日 周五 10:00\n时间：11月24日 周二 15:00\n回复「完成 #5」或「推迟 #5 2天」";
    OutMessage {
        text: text.into(),
        card: Some(Card {
            title: "⏰ 提醒 #5：给海尔打电话".into(),
            description: "客户：海尔智家 · 上次联系 11月20日 周五 10:00\n时间：11月24日 周二 15:00".into(),
            key: "remind-5-1795510800".into(),
            buttons: vec![("done-5".into(), "完成".into()), ("snooze-5".into(), "推迟1天".into())],
        }),
        ..Default::default()
    }
}

fn digest(dialect: crate::platform::markdown::Dialect) -> OutMessage {
    let text = match dialect {
        crate::platform::markdown::Dialect::DingTalk => {
            "### 团队日报 11-23\n\n**拜访 4 · 电话 2 · 其他 1 · 客户 3 · 新客户 1**\n\n- r1：拜访 2 · 电话 1\n\n- r2：拜访 1 · 电话 1"
        }
        crate::platform::markdown::Dialect::Feishu => {
            "**团队日报 11-23**\n**拜访 4 · 电话 2 · 其他 1 · 客户 3 · 新客户 1**\n- r1：拜访 2 · 电话 1\n- r2：拜访 1 · 电话 1"
        }
        _ => {
            "### 团队日报 11-23\n**拜访 4 · 电话 2 · 其他 1 · 客户 3 · 新客户 1**\n- r1：拜访 2 · 电话 1\n- r2：拜访 1 · 电话 1"
        }
    };
    OutMessage::markdown(text)
}

fn feishu_parts(m: &OutMessage) -> Value {
    Value::Array(
        feishu::client::parts(m, feishu::client::TEXT_MAX_BYTES)
            .into_iter()
            .map(|p| json!({ "msg_type": p.msg_type, "content": p.content }))
            .collect(),
    )
}

fn check(name: &str, got: &Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let path = dir.join(format!("{name}.json"));
    let got = serde_json::to_string_pretty(got).unwrap_or_default() + "\n";
    if std::env::var_os("CHATCRM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(&dir).expect("snapshot dir");
        std::fs::write(&path, &got).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with CHATCRM_UPDATE_SNAPSHOTS=1", path.display()));
    assert_eq!(got, want, "{name} differs from {}", path.display());
}

#[test]
fn a_reply_on_each_platform() {
    use crate::platform::markdown::Dialect;
    let plain = plain_text(REPLY);
    assert!(!plain.contains("**") && plain.contains("今天 11-24"));
    let got = json!({
        // WeCom: the passive reply is a text message.
        "wecom": wecom_message(&OutMessage::text(plain.clone())).preview(),
        // DingTalk: the session webhook gets a text message.
        "dingtalk": dingtalk::client::bodies(&OutMessage::text(plain.clone()), dingtalk::client::Shape::Robot),
        // Feishu: the reply API gets a text message.
        "feishu": feishu_parts(&OutMessage::text(plain)),
    });
    check("reply", &got);
    let got = json!({
        "wecom": wecom_message(&reminder()).preview(),
        "dingtalk": dingtalk::client::bodies(&reminder(), dingtalk::client::Shape::Work),
        "feishu": feishu_parts(&reminder()),
    });
    check("reminder", &got);
    // Every platform's reminder lets the reader act with one tap, or says what to type.
    let text = got.to_string();
    assert!(text.contains("done-5") || text.contains("完成%20%235"), "{text}");
    let got = json!({
        "wecom": wecom_message(&digest(Dialect::WeCom)).preview(),
        "dingtalk": dingtalk::client::bodies(&digest(Dialect::DingTalk), dingtalk::client::Shape::Work),
        "feishu": feishu_parts(&digest(Dialect::Feishu)),
    });
    check("digest", &got);
}
