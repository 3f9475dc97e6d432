//! The demo org is realistic and the newcomer's first steps work on it.

use super::helpers::*;
use crate::both_backends;
use chatcrm::crm::{self, Actor, Ctx, DealStatus, Via};
use chatcrm::store::Db;
use std::collections::BTreeSet;

async fn demo_seeds_a_working_org(db: Db) {
    let mut tx = db.begin().await.expect("begin");
    let s = chatcrm::demo::seed(&mut tx, "演示公司", "Asia/Shanghai", t0()).await.expect("seed");
    tx.commit().await.expect("commit");
    assert_eq!((s.customers, s.deals, s.activities, s.leads, s.tasks), (30, 20, 60, 10, 9));
    assert_eq!(s.users.len(), 5);

    let mut tx = db.begin().await.expect("begin");
    let org = crm::orgs::org_by_name(&mut tx, "演示公司").await.expect("org");
    let admin = Ctx::new(Actor::system(org.id), Via::Cli, t0());
    let lilei = crm::users::find_user(&mut tx, org.id, "lilei").await.expect("lilei");
    // Deals cover every stage, with history.
    let mut stages = BTreeSet::new();
    for id in 1..=20 {
        let d = crm::deals::deal_detail(&mut tx, &admin, id).await.expect("deal");
        stages.insert(d.deal.stage.clone());
        assert!(!d.history.is_empty());
        if d.deal.status == DealStatus::Lost {
            assert!(d.deal.lost_reason.is_some());
        }
    }
    assert_eq!(stages.len(), 7, "{stages:?}");
    // A second seed of the same org is refused.
    assert!(is_conflict(&chatcrm::demo::seed(&mut tx, "演示公司", "Asia/Shanghai", t0()).await));
    drop(tx);

    // The newcomer's first commands, as the rep 李雷.
    let bot = chatcrm::bot::Bot::new(db.clone(), chatcrm::clock::Clock::fixed(t0()));
    let corp = org.id.to_string();
    let msg = |id: &str, text: &str| chatcrm::bot::IncomingMessage {
        platform: "console".into(),
        corp_id: corp.clone(),
        sender: "lilei".into(),
        message_id: id.into(),
        text: text.into(),
        received_at: t0(),
    };
    let mut tx = db.begin().await.expect("begin");
    let sys = Ctx::new(Actor::system(org.id), Via::Cli, t0());
    crm::users::link_identity(&mut tx, &sys, lilei.id, "console", &corp, "lilei").await.expect("link");
    tx.commit().await.expect("commit");
    let r = bot.handle(&msg("1", "拜访 海尔 聊了二期需求")).await.expect("visit");
    assert!(r.text.contains("已记录拜访：海尔智家股份有限公司"), "{}", r.text);

    let r = bot.handle(&msg("2", "今天")).await.expect("today");
    let mut tx = db.begin().await.expect("begin");
    let lilei_ctx = Ctx::new(Actor::of(&lilei), Via::Chat, t0());
    let today = crm::tasks::today(&mut tx, &lilei_ctx, chrono_tz::Asia::Shanghai).await.expect("today");
    let mine: BTreeSet<i64> = today.overdue.iter().chain(&today.due_today).map(|t| t.id).collect();
    assert!(!mine.is_empty());
    let listed: BTreeSet<i64> = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("- #"))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(listed, mine, "{}", r.text);
    for id in &listed {
        let t = crm::tasks::get_task(&mut tx, &admin, *id).await.expect("task");
        assert_eq!(t.owner_id, lilei.id, "only lilei's tasks");
    }
}

both_backends!(demo_seeds_a_working_org);
