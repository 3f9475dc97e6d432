//! The inbox: every message recorded once per (platform, message id); retries change nothing.

use super::helpers::*;
use crate::both_backends;
use chatcrm::store::{self, Db};

async fn a_retry_returns_the_same_reply_and_does_nothing(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r1, "海尔智家股份有限公司").await;
    let bot = w.bot();
    let msg = w.msg(&w.r1, "wx-1", "拜访 海尔 聊了二期需求");
    let first = bot.handle(&msg).await.expect("first");
    assert!(!first.duplicate);
    assert!(first.text.contains("海尔智家"), "{}", first.text);
    let audit_rows = w.count("audit_log").await;
    let second = bot.handle(&msg).await.expect("retry");
    assert!(second.duplicate);
    assert_eq!(second.text, first.text);
    assert_eq!(w.count("activities").await, 1);
    assert_eq!(w.count("inbox").await, 1);
    assert_eq!(w.count("audit_log").await, audit_rows, "a retry writes nothing");
    // The same id on another platform is another message.
    let mut other = msg.clone();
    other.platform = "wecom".into();
    let r = bot.handle(&other).await.expect("other platform");
    assert!(!r.duplicate);
    assert_eq!(w.count("inbox").await, 2);
}

async fn concurrent_deliveries_have_one_effect(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r1, "美的集团").await;
    let bot = w.bot();
    let msg = w.msg(&w.r1, "dup-1", "电话 美的 确认报价");
    let (a, b, c) = tokio::join!(bot.handle(&msg), bot.handle(&msg), bot.handle(&msg));
    let replies = [a.expect("a"), b.expect("b"), c.expect("c")];
    assert_eq!(replies.iter().filter(|r| !r.duplicate).count(), 1, "{replies:?}");
    assert!(replies.iter().all(|r| r.text == replies[0].text || r.text.is_empty()));
    assert_eq!(w.count("activities").await, 1);
    assert_eq!(w.count("inbox").await, 1);
}

async fn refused_messages_are_recorded_and_change_nothing(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r1, "青岛啤酒").await;
    let bot = w.bot();
    let (customers, audit_rows) = (w.count("customers").await, w.count("audit_log").await);
    // A duplicate customer: refused by the service.
    let r = bot.handle(&w.msg(&w.r2, "m1", "新客户 青岛啤酒股份有限公司")).await.expect("handled");
    assert!(r.text.contains("不能重复建"), "{}", r.text);
    // Gibberish: refused by the parser.
    let r2 = bot.handle(&w.msg(&w.r2, "m2", "asdf qwer")).await.expect("handled");
    assert!(r2.text.contains("help"), "{}", r2.text);
    assert_eq!(w.count("customers").await, customers);
    assert_eq!(w.count("audit_log").await, audit_rows);
    assert_eq!(w.count("inbox").await, 2);
    let mut tx = w.tx().await;
    let row = store::inbox::by_message_id(&mut tx, "console", "m1").await.expect("read").expect("row");
    assert_eq!((row.status.as_str(), row.reply.as_str()), ("rejected", r.text.as_str()));
    drop(tx);
    let again = bot.handle(&w.msg(&w.r2, "m1", "新客户 青岛啤酒股份有限公司")).await.expect("retry");
    assert!(again.duplicate && again.text == r.text);
}

async fn unlinked_senders_are_told_how_to_link(db: Db) {
    let w = World::new(db).await;
    let bot = w.bot();
    let mut msg = w.msg(&w.r1, "m1", "今天");
    msg.platform = "wecom".into();
    msg.corp_id = "ww-unknown".into();
    let r = bot.handle(&msg).await.expect("handled");
    assert!(r.text.contains("chatcrm users link") && r.text.contains("ww-unknown"), "{}", r.text);
    assert_eq!(w.count("inbox").await, 1);
}

both_backends!(
    a_retry_returns_the_same_reply_and_does_nothing,
    concurrent_deliveries_have_one_effect,
    refused_messages_are_recorded_and_change_nothing,
    unlinked_senders_are_told_how_to_link,
);
