//! Conversations through the bot core: which-one questions, help, errors, both languages.

use super::helpers::*;
use crate::both_backends;
use chatcrm::bot::Bot;
use chatcrm::clock::Clock;
use chatcrm::crm;
use chatcrm::store::Db;
use chrono::Duration;

async fn activity_on(w: &World, activity_customer: &str) -> i64 {
    let mut tx = w.tx().await;
    let all = crm::customers::list_customers(&mut tx, &w.ctx(&w.admin), false).await.expect("list");
    let c = all.iter().find(|c| c.name == activity_customer).expect("customer exists");
    chatcrm::store::activities::for_customer(&mut tx, c.id, 100).await.expect("activities").len() as i64
}

async fn which_one_then_a_number(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r1, "海尔智家股份有限公司").await;
    w.customer(&w.r1, "青岛海尔模具有限公司").await;
    let bot = w.bot();
    let ask = bot.handle(&w.msg(&w.r1, "1", "拜访 海尔 聊了报价，对方嫌贵")).await.expect("ask");
    assert!(ask.text.contains("回复编号"), "{}", ask.text);
    assert_eq!(w.count("activities").await, 0, "nothing logged before the answer");
    // The reply lists "1) name" lines; pick the second one and check it is the one logged.
    let second = ask.text.lines().find_map(|l| l.strip_prefix("2) ")).expect("two options").to_string();
    let out_of_range = bot.handle(&w.msg(&w.r1, "2", "3")).await.expect("3");
    assert!(out_of_range.text.contains("1 到 2"), "{}", out_of_range.text);
    let done = bot.handle(&w.msg(&w.r1, "3", "2")).await.expect("select");
    assert!(done.text.contains(&second) && done.text.contains("已记录拜访"), "{}", done.text);
    assert_eq!(activity_on(&w, &second).await, 1);
    // The question is answered; a second number has nothing to answer.
    let again = bot.handle(&w.msg(&w.r1, "4", "1")).await.expect("again");
    assert!(again.text.contains("没有需要你选择"), "{}", again.text);
    assert_eq!(w.count("activities").await, 1);
}

async fn a_fuzzy_guess_is_confirmed_first_and_questions_expire(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r1, "海尔智家").await;
    let clock = Clock::fixed(t0());
    let bot = Bot::new(w.db.clone(), clock.clone());
    let ask = bot.handle(&w.msg(&w.r1, "1", "visit 海而智家 demo went well")).await.expect("ask");
    assert!(ask.text.contains("Did you mean") && ask.text.contains("海尔智家"), "{}", ask.text);
    clock.advance(Duration::minutes(11));
    let late = bot.handle(&w.msg(&w.r1, "2", "1")).await.expect("late");
    assert!(late.text.contains("That question expired"), "{}", late.text);
    assert_eq!(w.count("activities").await, 0);
    bot.handle(&w.msg(&w.r1, "3", "visit 海而智家 demo went well")).await.expect("ask again");
    let ok = bot.handle(&w.msg(&w.r1, "4", "1")).await.expect("confirm");
    assert!(ok.text.contains("Logged visit"), "{}", ok.text);
    assert_eq!(w.count("activities").await, 1);
}

async fn replies_follow_the_users_language(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r1, "Acme Trading").await;
    let bot = w.bot();
    let cases = [
        ("帮助", "chatcrm 命令"),
        ("help", "chatcrm commands"),
        ("帮助 拜访", "拜访 <客户> <内容>"),
        ("help visit", "visit <customer> <what happened>"),
        ("help dance", "There is no command"),
        ("hepl", "Did you mean `help`"),
        ("拜访 Acme", "格式：拜访 <客户> <内容>"),
        ("visit", "Usage: visit <customer> <what happened>"),
        ("customer acme", "**#"),
        ("客户 不存在的公司", "新客户 不存在的公司"),
        ("customer nobody", "new customer nobody"),
        ("today", "Nothing due today"),
        ("今天", "今天没有待办"),
        ("1", "没有需要你选择"),
        ("new customer Globex", "Created customer"),
        ("新客户 Globex", "已存在"),
    ];
    for (i, (text, expect)) in cases.iter().enumerate() {
        let r = bot.handle(&w.msg(&w.r1, &format!("l{i}"), text)).await.expect("reply");
        assert!(r.text.contains(expect), "`{text}` → {}", r.text);
    }
    let mut tx = w.tx().await;
    let mine = crm::customers::list_customers(&mut tx, &w.ctx(&w.r1), true).await.expect("mine");
    assert!(mine.iter().any(|c| c.name == "Globex"), "created through chat, owned by the sender");
}

async fn reps_only_reach_their_own_customers_through_chat(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r2, "美的集团").await;
    let bot = w.bot();
    let r = bot.handle(&w.msg(&w.r1, "1", "拜访 美的 顺路看看")).await.expect("reply");
    assert!(r.text.contains("没找到客户"), "r2's customer is invisible to r1: {}", r.text);
    let r = bot.handle(&w.msg(&w.ma, "2", "客户 美的")).await.expect("manager");
    assert!(r.text.contains("美的集团"), "{}", r.text);
    assert_eq!(w.count("activities").await, 0);
}

both_backends!(
    which_one_then_a_number,
    a_fuzzy_guess_is_confirmed_first_and_questions_expire,
    replies_follow_the_users_language,
    reps_only_reach_their_own_customers_through_chat,
);
