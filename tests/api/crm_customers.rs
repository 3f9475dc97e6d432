//! Customers, contacts and activities: creation rules, updates, validation.

use super::helpers::*;
use crate::both_backends;
use chatcrm::crm::activities::NewActivity;
use chatcrm::crm::customers::{CustomerPatch, NewContact, NewCustomer};
use chatcrm::crm::{self, ActivityKind, Grade, TaskStatus};
use chatcrm::store::Db;
use chrono::Duration;

async fn create_and_read_back(db: Db) {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let new = NewCustomer {
        name: "  青岛海尔智家股份有限公司 ".into(),
        industry: Some("家电".into()),
        region: Some("青岛市崂山区".into()),
        source: Some("展会".into()),
        grade: Some(Grade::A),
        owner_id: None,
        tags: vec!["重点".into(), "#二期".into(), "重点".into()],
    };
    let c = crm::customers::create_customer(&mut tx, &w.ctx(&w.r1), new).await.expect("create");
    tx.commit().await.expect("commit");
    assert_eq!(c.name, "青岛海尔智家股份有限公司");
    assert_eq!(c.name_norm, "海尔智家");
    assert_eq!(c.owner_id, Some(w.r1.id), "owner defaults to the creator");
    assert_eq!(c.owner_team_id, w.r1.team_id);
    assert_eq!(c.grade, Some(Grade::A));
    assert_eq!(c.created_at, t0());
    let mut tx = w.tx().await;
    let d = crm::customers::customer_detail(&mut tx, &w.ctx(&w.r1), c.id).await.expect("detail");
    assert_eq!(d.tags, vec!["二期".to_string(), "重点".to_string()]);
    assert_eq!(d.customer.industry.as_deref(), Some("家电"));
    assert!(d.contacts.is_empty() && d.deals.is_empty() && d.recent_activities.is_empty());
}

async fn duplicates_and_bad_names_are_refused(db: Db) {
    let w = World::new(db).await;
    w.customer(&w.r1, "海尔智家股份有限公司").await;
    let before = w.count("customers").await;
    for (who, name) in [(&w.r2, "海尔智家"), (&w.r3, "青岛　海尔智家有限公司"), (&w.r1, "海尔智家集团")]
    {
        let mut tx = w.tx().await;
        let r = crm::customers::create_customer(
            &mut tx,
            &w.ctx(who),
            NewCustomer { name: name.into(), ..Default::default() },
        )
        .await;
        assert!(is_conflict(&r), "{name}: {r:?}");
        let msg = r.err().map(|e| e.user_message(crm::Lang::Zh)).unwrap_or_default();
        if who.id == w.r1.id {
            assert!(msg.contains("r1") && msg.contains("已存在"), "the owner is told which one: {msg}");
        } else {
            assert!(!msg.contains("r1") && msg.contains("已经有人负责"), "others learn it is taken, not whose: {msg}");
        }
    }
    for bad in ["", "   ", "！！！", &"长".repeat(101)] {
        let mut tx = w.tx().await;
        let r = crm::customers::create_customer(
            &mut tx,
            &w.ctx(&w.r1),
            NewCustomer { name: bad.into(), ..Default::default() },
        )
        .await;
        assert!(is_invalid(&r), "`{bad}`: {r:?}");
    }
    // The same name in another org is a different customer.
    w.customer(&w.r4, "海尔智家").await;
    assert_eq!(w.count("customers").await, before + 1);
}

async fn owners_are_checked(db: Db) {
    let w = World::new(db).await;
    let mk = |owner: i64| NewCustomer { name: format!("客户{owner}"), owner_id: Some(owner), ..Default::default() };
    // A rep cannot create for someone else; a manager can within the team only; admin anywhere.
    let mut tx = w.tx().await;
    assert!(is_forbidden(&crm::customers::create_customer(&mut tx, &w.ctx(&w.r1), mk(w.r2.id)).await));
    drop(tx);
    let mut tx = w.tx().await;
    assert!(is_forbidden(&crm::customers::create_customer(&mut tx, &w.ctx(&w.ma), mk(w.r3.id)).await));
    drop(tx);
    let mut tx = w.tx().await;
    let c = crm::customers::create_customer(&mut tx, &w.ctx(&w.ma), mk(w.r2.id)).await.expect("manager, own team");
    assert_eq!(c.owner_id, Some(w.r2.id));
    let c3 = crm::customers::create_customer(&mut tx, &w.ctx(&w.admin), mk(w.r3.id)).await.expect("admin");
    assert_eq!(c3.owner_id, Some(w.r3.id));
    // Another org's user is not found at all.
    let r = crm::customers::create_customer(&mut tx, &w.ctx(&w.admin), mk(w.r4.id)).await;
    assert!(is_not_found(&r), "{r:?}");
}

async fn updates_merge_and_owner_changes_need_a_manager(db: Db) {
    let w = World::new(db).await;
    let c = w.customer(&w.r1, "美的集团").await;
    let mut tx = w.tx().await;
    let patch = CustomerPatch {
        grade: Some(Grade::B),
        industry: Some("家电".into()),
        add_tags: vec!["华南".into(), "重点".into()],
        ..Default::default()
    };
    let u = crm::customers::update_customer(&mut tx, &w.ctx(&w.r1), c.id, patch).await.expect("update");
    assert_eq!(u.grade, Some(Grade::B));
    assert_eq!(u.industry.as_deref(), Some("家电"));
    let patch =
        CustomerPatch { region: Some("佛山".into()), remove_tags: vec!["重点".into()], ..Default::default() };
    let u = crm::customers::update_customer(&mut tx, &w.ctx(&w.r1), c.id, patch).await.expect("update 2");
    assert_eq!(u.industry.as_deref(), Some("家电"), "fields not in the patch stay");
    assert_eq!(u.region.as_deref(), Some("佛山"));
    assert_eq!(chatcrm::store::customers::tags(&mut tx, c.id).await.expect("tags"), vec!["华南".to_string()]);
    tx.commit().await.expect("commit");

    let mut tx = w.tx().await;
    let r = crm::customers::update_customer(
        &mut tx,
        &w.ctx(&w.r1),
        c.id,
        CustomerPatch { owner_id: Some(w.r2.id), ..Default::default() },
    )
    .await;
    assert!(is_forbidden(&r), "a rep cannot hand a customer over: {r:?}");
    drop(tx);
    let mut tx = w.tx().await;
    let u = crm::customers::update_customer(
        &mut tx,
        &w.ctx(&w.ma),
        c.id,
        CustomerPatch { owner_id: Some(w.r2.id), ..Default::default() },
    )
    .await
    .expect("manager reassigns within the team");
    assert_eq!(u.owner_id, Some(w.r2.id));
    tx.commit().await.expect("commit");
    let mut tx = w.tx().await;
    assert!(is_forbidden(&crm::customers::get_customer(&mut tx, &w.ctx(&w.r1), c.id).await), "r1 lost access");
    assert!(crm::customers::get_customer(&mut tx, &w.ctx(&w.r2), c.id).await.is_ok());
}

async fn contacts_are_validated(db: Db) {
    let w = World::new(db).await;
    let c = w.customer(&w.r1, "青岛啤酒").await;
    let mut tx = w.tx().await;
    let ct = crm::customers::add_contact(
        &mut tx,
        &w.ctx(&w.r1),
        c.id,
        NewContact {
            name: "王经理",
            title: Some("采购"),
            phone: Some("138 0000 0000"),
            wechat: None,
            email: Some("w@x.cn"),
        },
    )
    .await
    .expect("contact");
    assert_eq!(ct.customer_id, c.id);
    let bad = NewContact { name: "李", title: None, phone: None, wechat: None, email: Some("not-an-email") };
    assert!(is_invalid(&crm::customers::add_contact(&mut tx, &w.ctx(&w.r1), c.id, bad).await));
    let nameless = NewContact { name: " ", title: None, phone: None, wechat: None, email: None };
    assert!(is_invalid(&crm::customers::add_contact(&mut tx, &w.ctx(&w.r1), c.id, nameless).await));
    let other = NewContact { name: "张", title: None, phone: None, wechat: None, email: None };
    assert!(is_forbidden(&crm::customers::add_contact(&mut tx, &w.ctx(&w.r2), c.id, other).await));
    tx.commit().await.expect("commit");
    assert_eq!(w.count("contacts").await, 1);
}

fn visit(customer_id: i64, content: &str) -> NewActivity {
    NewActivity {
        customer_id,
        kind: ActivityKind::Visit,
        content: content.into(),
        occurred_at: None,
        next_step: None,
        location: None,
        follow_up: None,
    }
}

async fn activities_update_last_contact_and_create_follow_ups(db: Db) {
    let w = World::new(db).await;
    let c = w.customer(&w.r1, "潍柴动力").await;
    let mut tx = w.tx().await;
    let mut new = visit(c.id, "聊了二期需求");
    new.next_step = Some("发方案".into());
    new.follow_up = Some((t0() + Duration::days(2), "发方案给潍柴".into()));
    let logged = crm::activities::log_activity(&mut tx, &w.ctx(&w.r1), new).await.expect("log");
    assert_eq!(logged.activity.customer_id, c.id);
    assert_eq!(logged.activity.user_id, w.r1.id);
    assert_eq!(logged.activity.occurred_at, t0());
    let task = logged.follow_up.expect("follow-up task");
    assert_eq!((task.owner_id, task.customer_id, task.status), (w.r1.id, Some(c.id), TaskStatus::Open));
    assert_eq!(task.due_at, t0() + Duration::days(2));

    // An older activity does not make the customer look quieter.
    let mut old = visit(c.id, "补记上周电话");
    old.occurred_at = Some(t0() - Duration::days(7));
    crm::activities::log_activity(&mut tx, &w.ctx(&w.r1), old).await.expect("old");
    let after = crm::customers::get_customer(&mut tx, &w.ctx(&w.r1), c.id).await.expect("read");
    assert_eq!(after.last_contacted_at, Some(t0()));

    let mut future = visit(c.id, "明天的事");
    future.occurred_at = Some(t0() + Duration::days(1));
    assert!(is_invalid(&crm::activities::log_activity(&mut tx, &w.ctx(&w.r1), future).await));
    assert!(is_invalid(&crm::activities::log_activity(&mut tx, &w.ctx(&w.r1), visit(c.id, "  ")).await));
    assert!(is_forbidden(&crm::activities::log_activity(&mut tx, &w.ctx(&w.r3), visit(c.id, "x")).await));
    tx.commit().await.expect("commit");
    assert_eq!(w.count("activities").await, 2);
}

async fn orgs_get_the_default_stages(db: Db) {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let stages = crm::orgs::stages(&mut tx, w.org.id).await.expect("stages");
    let got: Vec<(&str, &str, i64)> =
        stages.iter().map(|s| (s.key.as_str(), s.name_zh.as_str(), s.probability)).collect();
    assert_eq!(
        got,
        vec![
            ("initial_contact", "初步接触", 10),
            ("needs_analysis", "需求分析", 25),
            ("proposal", "方案报价", 50),
            ("negotiation", "商务谈判", 70),
            ("contract", "合同签订", 90),
            ("won", "赢单", 100),
            ("lost", "输单", 0),
        ]
    );
    assert_eq!(crm::orgs::find_stage(&mut tx, w.org.id, "方案报价").await.expect("zh").key, "proposal");
    assert_eq!(crm::orgs::find_stage(&mut tx, w.org.id, "Negotiation").await.expect("en").key, "negotiation");
    assert!(is_invalid(&crm::orgs::find_stage(&mut tx, w.org.id, "谈恋爱").await));
    let r = crm::orgs::create_org(&mut tx, "Org Three", "Mars/Base", crm::Via::Cli, t0()).await;
    assert!(is_invalid(&r));
    let r = crm::orgs::create_org(&mut tx, "Org One", "Asia/Shanghai", crm::Via::Cli, t0()).await;
    assert!(is_conflict(&r));
}

async fn users_and_identities(db: Db) {
    let w = World::new(db).await;
    let sys = chatcrm::crm::Ctx::new(chatcrm::crm::Actor::system(w.org.id), crm::Via::Cli, t0());
    let mut tx = w.tx().await;
    let dup = crm::users::NewUser { handle: "R1", name: "另一个", role: crm::Role::Rep, team_id: None };
    assert!(is_conflict(&crm::users::create_user(&mut tx, &sys, dup).await), "handles are case-insensitive");
    let bad = crm::users::NewUser { handle: "李 雷", name: "李雷", role: crm::Role::Rep, team_id: None };
    assert!(is_invalid(&crm::users::create_user(&mut tx, &sys, bad).await));
    crm::users::link_identity(&mut tx, &sys, w.r1.id, "WeCom", "ww123", "lilei").await.expect("link");
    let found = crm::users::resolve_identity(&mut tx, "wecom", "ww123", "lilei").await.expect("resolve");
    assert_eq!(found.map(|u| u.id), Some(w.r1.id));
    let again = crm::users::link_identity(&mut tx, &sys, w.r2.id, "wecom", "ww123", "lilei").await;
    assert!(is_conflict(&again), "one identity maps to one user");
    assert!(crm::users::resolve_identity(&mut tx, "wecom", "ww999", "lilei").await.expect("resolve").is_none());
    assert_eq!(crm::users::find_user(&mut tx, w.org.id, "@r2").await.expect("find").id, w.r2.id);
    assert!(is_not_found(&crm::users::find_user(&mut tx, w.org.id, "r4").await), "r4 is in org 2");
}

both_backends!(
    create_and_read_back,
    duplicates_and_bad_names_are_refused,
    owners_are_checked,
    updates_merge_and_owner_changes_need_a_manager,
    contacts_are_validated,
    activities_update_last_contact_and_create_follow_ups,
    orgs_get_the_default_stages,
    users_and_identities,
);
