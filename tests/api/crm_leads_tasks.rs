//! Leads (dedupe, pool, assignment) and tasks (today, completion).

use super::helpers::*;
use crate::both_backends;
use chatcrm::crm::leads::NewLead;
use chatcrm::crm::tasks::NewTask;
use chatcrm::crm::{self, Grade, LeadStatus, TaskOrigin, TaskStatus};
use chatcrm::store::Db;
use chrono::Duration;

fn lead(company: &str, phone: Option<&str>) -> NewLead {
    NewLead {
        company: company.into(), phone: phone.map(Into::into), source: Some("展会".into()), ..Default::default()
    }
}

async fn leads_are_deduplicated(db: Db) {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let l = crm::leads::create_lead(&mut tx, &w.ctx(&w.r1), lead("青岛某某机械有限公司", Some("13800000000")))
        .await
        .expect("lead");
    assert_eq!((l.status, l.owner_id), (LeadStatus::Assigned, Some(w.r1.id)));
    assert_eq!(l.phone_norm.as_deref(), Some("13800000000"));
    assert_eq!(l.dedupe_key, "phone:13800000000");
    tx.commit().await.expect("commit");

    // Same phone written differently, or the same company with another suffix: a duplicate.
    for (company, phone) in [("别的公司", Some("+86 138-0000-0000")), ("青岛某某机械", None)] {
        let mut tx = w.tx().await;
        let r = crm::leads::create_lead(&mut tx, &w.ctx(&w.r2), lead(company, phone)).await;
        assert!(is_conflict(&r), "{company}: {r:?}");
        let msg = r.err().map(|e| e.user_message(crm::Lang::En)).unwrap_or_default();
        assert!(!msg.contains("r1") && msg.contains("already being worked"), "r2 learns it is taken, not whose: {msg}");
    }
    // r1's manager is told whose it is.
    let mut tx = w.tx().await;
    let r = crm::leads::create_lead(&mut tx, &w.ctx(&w.ma), lead("别的公司", Some("13800000000"))).await;
    let msg = r.err().map(|e| e.user_message(crm::Lang::En)).unwrap_or_default();
    assert!(msg.contains("r1") && msg.contains(&format!("#{}", l.id)), "names the owner and lead: {msg}");
    drop(tx);
    // A company that is already a customer.
    w.customer(&w.r3, "美的集团").await;
    let mut tx = w.tx().await;
    let r = crm::leads::create_lead(&mut tx, &w.ctx(&w.r1), lead("美的集团股份有限公司", None)).await;
    assert!(is_conflict(&r), "{r:?}");
    let r = crm::leads::create_lead(&mut tx, &w.ctx(&w.r1), lead("某公司", Some("abc"))).await;
    assert!(is_invalid(&r), "unparseable phone: {r:?}");
    drop(tx);
    // Other orgs do not collide.
    let mut tx = w.tx().await;
    crm::leads::create_lead(&mut tx, &w.ctx(&w.r4), lead("青岛某某机械", Some("13800000000"))).await.expect("org 2");
    tx.commit().await.expect("commit");
    assert_eq!(w.count("leads").await, 2);
}

async fn pool_claim_and_assignment(db: Db) {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let mut new = lead("烟台海洋装备", Some("13900000000"));
    new.to_pool = true;
    let l = crm::leads::create_lead(&mut tx, &w.ctx(&w.r1), new).await.expect("pool lead");
    assert_eq!((l.status, l.owner_id), (LeadStatus::Pool, None));
    let pool = crm::leads::pool(&mut tx, &w.ctx(&w.r3)).await.expect("pool");
    assert_eq!(pool.iter().map(|l| l.id).collect::<Vec<_>>(), vec![l.id]);
    assert!(crm::leads::pool(&mut tx, &w.ctx(&w.r4)).await.expect("pool 2").is_empty());
    let claimed = crm::leads::claim_lead(&mut tx, &w.ctx(&w.r3), l.id).await.expect("claim");
    assert_eq!((claimed.status, claimed.owner_id), (LeadStatus::Assigned, Some(w.r3.id)));
    assert!(is_invalid(&crm::leads::claim_lead(&mut tx, &w.ctx(&w.r2), l.id).await), "no longer in the pool");
    assert!(is_not_found(&crm::leads::claim_lead(&mut tx, &w.ctx(&w.r4), l.id).await));
    // Assignment: managers within their team, admins anywhere, reps never.
    assert!(is_forbidden(&crm::leads::assign_lead(&mut tx, &w.ctx(&w.r3), l.id, w.r1.id).await));
    assert!(is_forbidden(&crm::leads::assign_lead(&mut tx, &w.ctx(&w.mb), l.id, w.r1.id).await));
    let a = crm::leads::assign_lead(&mut tx, &w.ctx(&w.admin), l.id, w.r1.id).await.expect("admin assigns");
    assert_eq!(a.owner_id, Some(w.r1.id));
    let a = crm::leads::assign_lead(&mut tx, &w.ctx(&w.ma), l.id, w.r2.id).await.expect("manager assigns");
    assert_eq!(a.owner_id, Some(w.r2.id));
    let c = crm::leads::set_lead_status(&mut tx, &w.ctx(&w.r2), l.id, LeadStatus::Contacted).await.expect("contacted");
    assert_eq!(c.status, LeadStatus::Contacted);
    let back = crm::leads::set_lead_status(&mut tx, &w.ctx(&w.r2), l.id, LeadStatus::Pool).await.expect("to pool");
    assert_eq!((back.status, back.owner_id), (LeadStatus::Pool, None));
    let r = crm::leads::set_lead_status(&mut tx, &w.ctx(&w.r2), l.id, LeadStatus::Converted).await;
    assert!(is_invalid(&r), "conversion is not a status flip");
}

async fn today_lists_only_my_tasks(db: Db) {
    let w = World::new(db).await;
    let c1 = w.customer(&w.r1, "海尔智家").await;
    let c2 = w.customer(&w.r2, "美的").await;
    let quiet = w.customer(&w.r1, "青岛啤酒").await;
    let mut tx = w.tx().await;
    let mut mk = async |who: &chatcrm::crm::User, title: &str, due: chrono::DateTime<chrono::Utc>, cid: i64| {
        let t = NewTask {
            title: title.into(),
            due_at: due,
            owner_id: None,
            customer_id: Some(cid),
            deal_id: None,
            origin: TaskOrigin::Manual,
        };
        crm::tasks::create_task(&mut tx, &w.ctx(who), t).await.expect("task")
    };
    // t0 is 10:00 in Shanghai; the local day ends at 16:00 UTC.
    let overdue = mk(&w.r1, "回访", t0() - Duration::days(1), c1.id).await;
    let later = mk(&w.r1, "发报价", t0() + Duration::hours(5), c1.id).await;
    let tomorrow = mk(&w.r1, "明天的事", t0() + Duration::hours(15), c1.id).await;
    let others = mk(&w.r2, "别人的", t0() + Duration::hours(1), c2.id).await;
    let done = mk(&w.r1, "做完了", t0() + Duration::hours(2), c1.id).await;
    crm::tasks::complete_task(&mut tx, &w.ctx(&w.r1), done.id).await.expect("complete");
    // A quiet A-grade customer: never contacted.
    let patch = crm::customers::CustomerPatch { grade: Some(Grade::A), ..Default::default() };
    crm::customers::update_customer(&mut tx, &w.ctx(&w.r1), quiet.id, patch).await.expect("grade");
    tx.commit().await.expect("commit");

    let mut tx = w.tx().await;
    let today = crm::tasks::today(&mut tx, &w.ctx(&w.r1), chrono_tz::Asia::Shanghai).await.expect("today");
    assert_eq!(today.overdue.iter().map(|t| t.id).collect::<Vec<_>>(), vec![overdue.id]);
    assert_eq!(today.due_today.iter().map(|t| t.id).collect::<Vec<_>>(), vec![later.id]);
    assert!(today.overdue.iter().chain(&today.due_today).all(|t| t.id != tomorrow.id && t.id != others.id));
    assert_eq!(today.quiet.iter().map(|c| c.id).collect::<Vec<_>>(), vec![quiet.id], "never contacted counts as quiet");
    let r2 = crm::tasks::today(&mut tx, &w.ctx(&w.r2), chrono_tz::Asia::Shanghai).await.expect("r2");
    assert_eq!(r2.due_today.iter().map(|t| t.id).collect::<Vec<_>>(), vec![others.id]);

    assert!(is_forbidden(&crm::tasks::complete_task(&mut tx, &w.ctx(&w.r2), later.id).await));
    assert!(is_invalid(&crm::tasks::complete_task(&mut tx, &w.ctx(&w.r1), done.id).await), "already done");
    let t = crm::tasks::complete_task(&mut tx, &w.ctx(&w.ma), later.id).await.expect("manager completes");
    assert_eq!((t.status, t.completed_at), (TaskStatus::Done, Some(t0())));
    let bad = NewTask {
        title: " ".into(),
        due_at: t0(),
        owner_id: None,
        customer_id: None,
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    assert!(is_invalid(&crm::tasks::create_task(&mut tx, &w.ctx(&w.r1), bad).await));
    let foreign = NewTask {
        title: "x".into(),
        due_at: t0(),
        owner_id: Some(w.r3.id),
        customer_id: None,
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    assert!(is_forbidden(&crm::tasks::create_task(&mut tx, &w.ctx(&w.ma), foreign).await));
}

both_backends!(leads_are_deduplicated, pool_claim_and_assignment, today_lists_only_my_tasks);
