//! Lead intake and assignment rules: priority, round robin fairness, least loaded, leave,
//! inactive users, capacity, pool fallback, dedupe; and the SLA clock driven by a test clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use chatcrm::clock::Clock;
use chatcrm::crm::lead_rules::{NewRule, Strategy, Target};
use chatcrm::crm::leads::{Intake, NewLead};
use chatcrm::crm::{self, Actor, Ctx, LeadStatus, Role, Via};
use chatcrm::outbox::{DispatchConfig, Dispatcher, Routes, Senders};
use chatcrm::schedule::{Plan, ScheduleSettings, Scheduler};
use chatcrm::store::Db;
use chrono::{DateTime, Duration, Utc};

use crate::both_backends;
use crate::helpers::{World, t0};

fn api(w: &World) -> Ctx {
    Ctx::new(Actor::system(w.org.id), Via::Api, t0())
}

fn rule(name: &str, target: Target, strategy: Strategy) -> NewRule {
    NewRule {
        name: name.into(),
        position: None,
        region_prefix: None,
        industry: None,
        source: None,
        tag: None,
        target,
        strategy,
        capacity: None,
    }
}

async fn add_rule(w: &World, r: NewRule) {
    let mut tx = w.tx().await;
    crm::lead_rules::create_rule(&mut tx, &w.ctx(&w.admin), r).await.expect("rule");
    tx.commit().await.expect("commit");
}

async fn take(w: &World, ctx: &Ctx, new: NewLead) -> Intake {
    let mut tx = w.tx().await;
    let r = crm::leads::intake(&mut tx, ctx, new).await.expect("intake");
    tx.commit().await.expect("commit");
    r
}

fn lead(company: &str, region: &str, industry: &str, source: &str) -> NewLead {
    NewLead {
        company: company.into(),
        region: Some(region.into()).filter(|s: &String| !s.is_empty()),
        industry: Some(industry.into()).filter(|s: &String| !s.is_empty()),
        source: Some(source.into()).filter(|s: &String| !s.is_empty()),
        ..Default::default()
    }
}

fn created(i: &Intake) -> &crm::Lead {
    match i {
        Intake::Created { lead, .. } => lead,
        other => panic!("expected a new lead, got {other:?}"),
    }
}

async fn team_a(w: &World) -> i64 {
    let mut tx = w.tx().await;
    let t = crm::users::team_by_name(&mut tx, &w.ctx(&w.admin), "Team A").await.expect("team");
    tx.commit().await.expect("commit");
    t.id
}

async fn add_rep(w: &World, handle: &str, team: i64) -> crm::User {
    let mut tx = w.tx().await;
    let new = crm::users::NewUser { handle, name: handle, role: Role::Rep, team_id: Some(team) };
    let u = crm::users::create_user(&mut tx, &w.ctx(&w.admin), new).await.expect("user");
    tx.commit().await.expect("commit");
    u
}

both_backends!(
    rules_route_by_conditions_in_priority_order,
    round_robin_is_fair_over_1000_leads,
    least_loaded_skips_leave_inactive_and_full_reps_then_falls_through,
    duplicates_by_phone_and_name_variant_are_linked_not_created,
    lead_sla_reminds_escalates_and_recycles_on_working_hours,
    conversion_makes_or_links_the_customer_and_opens_an_initial_contact_deal,
);

async fn conversion_makes_or_links_the_customer_and_opens_an_initial_contact_deal(db: Db) {
    let w = World::new(db).await;
    let r1 = w.ctx(&w.r1);
    let new = NewLead {
        company: "青岛某某机械".into(),
        phone: Some("13900000000".into()),
        contact_name: Some("王经理".into()),
        ..Default::default()
    };
    let a = created(&take(&w, &r1, new).await).clone();
    let mut tx = w.tx().await;
    let c = crm::leads::convert_lead(&mut tx, &r1, a.id).await.expect("convert");
    tx.commit().await.expect("commit");
    assert!(!c.linked);
    assert_eq!((c.lead.status, c.lead.customer_id), (LeadStatus::Converted, Some(c.customer.id)));
    assert_eq!(
        (c.deal.customer_id, c.deal.stage.as_str(), c.deal.owner_id),
        (c.customer.id, "initial_contact", w.r1.id)
    );
    let mut tx = w.tx().await;
    let detail = crm::customers::customer_detail(&mut tx, &r1, c.customer.id).await.expect("detail");
    let history = chatcrm::store::audit::for_entity(&mut tx, w.org.id, "lead", a.id).await.expect("audit");
    tx.commit().await.expect("commit");
    assert!(detail.contacts.iter().any(|k| k.phone.as_deref() == Some("13900000000")), "{detail:?}");
    assert!(history.iter().any(|h| h.action == "create") && history.iter().any(|h| h.action == "convert"));
    // A lead entered while the rep already had the customer under another spelling is linked.
    let mut tx = w.tx().await;
    let id = chatcrm::store::leads::insert(
        &mut tx,
        &chatcrm::store::leads::NewLeadRow {
            org_id: w.org.id,
            company: "青岛某某机械有限公司",
            company_norm: &crm::matching::normalize_name("青岛某某机械有限公司"),
            contact_name: None,
            phone: None,
            phone_norm: None,
            email: None,
            source: None,
            region: None,
            industry: None,
            status: LeadStatus::Assigned,
            owner_id: Some(w.r1.id),
            dedupe_key: "manual-test",
            customer_id: None,
            tags: "",
            assign_reason: None,
            now: t0(),
        },
    )
    .await
    .expect("insert");
    let c2 = crm::leads::convert_lead(&mut tx, &r1, id).await.expect("convert");
    tx.commit().await.expect("commit");
    assert!(c2.linked);
    assert_eq!(c2.customer.id, c.customer.id);
    assert_ne!(c2.deal.id, c.deal.id);
}

async fn rules_route_by_conditions_in_priority_order(db: Db) {
    let w = World::new(db).await;
    let team_b = {
        let mut tx = w.tx().await;
        let t = crm::users::team_by_name(&mut tx, &w.ctx(&w.admin), "Team B").await.expect("team");
        tx.commit().await.expect("commit");
        t.id
    };
    let ta = team_a(&w).await;
    add_rule(
        &w,
        NewRule {
            region_prefix: Some("青岛".into()),
            industry: Some("制造业".into()),
            ..rule("青岛制造业", Target::User(w.r1.id), Strategy::RoundRobin)
        },
    )
    .await;
    add_rule(&w, NewRule { source: Some("展会".into()), ..rule("展会", Target::Team(team_b), Strategy::RoundRobin) })
        .await;
    add_rule(
        &w,
        NewRule { region_prefix: Some("上海".into()), ..rule("上海", Target::Team(ta), Strategy::LeastLoaded) },
    )
    .await;
    let ctx = api(&w);
    // Matches rules 1 and 2: the first wins.
    let a = take(&w, &ctx, lead("青岛某某机械", "青岛市南区", "制造业", "展会")).await;
    let (l, routed) = match &a {
        Intake::Created { lead, routed } => (lead, routed.clone().expect("routed")),
        other => panic!("{other:?}"),
    };
    assert_eq!(l.owner_id, Some(w.r1.id));
    assert_eq!(routed.rule.as_deref(), Some("青岛制造业"));
    assert!(l.assign_reason.as_deref().is_some_and(|r| r.contains("青岛制造业") && r.contains("r1")), "{l:?}");
    // Not 制造业: the second rule.
    let b = take(&w, &ctx, lead("青岛某某食品", "青岛", "食品", "展会")).await;
    assert_eq!(created(&b).owner_id, Some(w.r3.id));
    // No rule matches: the pool, and it says why.
    let c = take(&w, &ctx, lead("北京某某科技", "北京", "", "官网")).await;
    assert_eq!((created(&c).owner_id, created(&c).status), (None, LeadStatus::Pool));
    assert!(created(&c).assign_reason.as_deref().is_some_and(|r| r.contains("没有匹配")));
    // Least loaded in team A: r1 holds one lead, r2 none.
    let d = take(&w, &ctx, lead("上海某某贸易", "上海市浦东新区", "", "")).await;
    assert_eq!(created(&d).owner_id, Some(w.r2.id));
    // A rep's own lead stays theirs, whatever the rules.
    let e = take(&w, &w.ctx(&w.r3), lead("青岛另一家机械", "青岛", "制造业", "")).await;
    assert_eq!(created(&e).owner_id, Some(w.r3.id));
}

async fn round_robin_is_fair_over_1000_leads(db: Db) {
    let w = World::new(db).await;
    let ta = team_a(&w).await;
    let r5 = add_rep(&w, "r5", ta).await;
    add_rule(&w, rule("全部", Target::Team(ta), Strategy::RoundRobin)).await;
    let ctx = api(&w);
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for batch in 0..10 {
        let mut tx = w.tx().await;
        for i in 0..100 {
            let new = NewLead { company: format!("客户公司{batch}-{i}号"), ..Default::default() };
            match crm::leads::intake(&mut tx, &ctx, new).await.expect("intake") {
                Intake::Created { lead, .. } => *counts.entry(lead.owner_id.expect("owner")).or_default() += 1,
                other => panic!("{other:?}"),
            }
        }
        tx.commit().await.expect("commit");
    }
    let reps: Vec<i64> = vec![w.r1.id, w.r2.id, r5.id];
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), reps, "only the team's reps, not its manager");
    let (min, max) = (counts.values().min().copied().unwrap_or(0), counts.values().max().copied().unwrap_or(0));
    assert!(max - min <= 1, "round robin counts differ by at most 1: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 1000);
}

async fn least_loaded_skips_leave_inactive_and_full_reps_then_falls_through(db: Db) {
    let w = World::new(db.clone()).await;
    let ta = team_a(&w).await;
    let r5 = add_rep(&w, "r5", ta).await;
    add_rule(&w, NewRule { capacity: Some(2), ..rule("A组", Target::Team(ta), Strategy::LeastLoaded) }).await;
    add_rule(&w, rule("兜底", Target::User(w.ma.id), Strategy::RoundRobin)).await;
    let mut tx = w.tx().await;
    crm::users::set_on_leave(&mut tx, &w.ctx(&w.ma), w.r2.id, true).await.expect("leave");
    tx.commit().await.expect("commit");
    let sql = "UPDATE users SET active = FALSE WHERE id = $1";
    match &db {
        Db::Sqlite(p) => sqlx::query(sql).bind(r5.id).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql).bind(r5.id).execute(p).await.map(|_| ()),
    }
    .expect("deactivate");
    let ctx = api(&w);
    let mut owners = Vec::new();
    for i in 0..3 {
        let l = take(&w, &ctx, NewLead { company: format!("某某公司{i}"), ..Default::default() }).await;
        owners.push(created(&l).clone());
    }
    assert_eq!(owners[0].owner_id, Some(w.r1.id), "r2 is on leave, r5 inactive");
    assert_eq!(owners[1].owner_id, Some(w.r1.id));
    assert_eq!(owners[2].owner_id, Some(w.ma.id), "r1 is at the rule's capacity of 2: the next rule");
    let reason = owners[2].assign_reason.clone().unwrap_or_default();
    assert!(reason.contains("兜底") && reason.contains("A组") && reason.contains("没有可分配的人"), "{reason}");
    // Back from leave: least loaded picks r2.
    let mut tx = w.tx().await;
    crm::users::set_on_leave(&mut tx, &w.ctx(&w.ma), w.r2.id, false).await.expect("back");
    tx.commit().await.expect("commit");
    let l = take(&w, &ctx, NewLead { company: "某某公司3".into(), ..Default::default() }).await;
    assert_eq!(created(&l).owner_id, Some(w.r2.id));
    // With every rule passed over, the pool.
    let mut tx = w.tx().await;
    let rules = crm::lead_rules::list_rules(&mut tx, &w.ctx(&w.admin)).await.expect("rules");
    crm::lead_rules::set_rule_active(&mut tx, &w.ctx(&w.admin), rules[1].id, false).await.expect("disable");
    tx.commit().await.expect("commit");
    let l = take(&w, &ctx, NewLead { company: "某某公司4".into(), ..Default::default() }).await;
    assert_eq!(created(&l).owner_id, Some(w.r2.id), "r2 has 1, under the cap");
    let l = take(&w, &ctx, NewLead { company: "某某公司5".into(), ..Default::default() }).await;
    assert_eq!(created(&l).status, LeadStatus::Pool, "r1 and r2 full, the fallback rule disabled");
}

async fn duplicates_by_phone_and_name_variant_are_linked_not_created(db: Db) {
    let w = World::new(db).await;
    let ctx = api(&w);
    let first = take(
        &w,
        &ctx,
        NewLead { company: "海尔".into(), phone: Some("+86 138-0000-0000".into()), ..Default::default() },
    )
    .await;
    let first = created(&first).clone();
    let leads_before = w.count("leads").await;
    // The same phone, written differently, under another company name.
    let again =
        take(&w, &ctx, NewLead { company: "别的公司".into(), phone: Some("13800000000".into()), ..Default::default() })
            .await;
    match &again {
        Intake::Duplicate { lead, .. } => assert_eq!(lead.id, first.id),
        other => panic!("{other:?}"),
    }
    // A name variant of the same company.
    let variant = take(&w, &ctx, NewLead { company: "青岛海尔有限公司".into(), ..Default::default() }).await;
    assert!(matches!(&variant, Intake::Duplicate { lead, .. } if lead.id == first.id), "{variant:?}");
    assert_eq!(w.count("leads").await, leads_before, "linked, not created twice");
    let mut tx = w.tx().await;
    let history = chatcrm::store::audit::for_entity(&mut tx, w.org.id, "lead", first.id).await.expect("audit");
    tx.commit().await.expect("commit");
    assert_eq!(history.iter().filter(|a| a.action == "duplicate_submission").count(), 2, "{history:?}");
    // An existing customer.
    w.customer(&w.r1, "美的").await;
    let c = take(&w, &ctx, NewLead { company: "美的集团".into(), ..Default::default() }).await;
    assert!(matches!(c, Intake::Customer { .. }), "{c:?}");
    assert_eq!(w.count("leads").await, leads_before);
}

/// Tue 10:00 Shanghai assignment; SLA 48 working hours, manager after 24 more, pool after 48 more.
async fn lead_sla_reminds_escalates_and_recycles_on_working_hours(db: Db) {
    let w = World::new(db.clone()).await;
    let mut s = ScheduleSettings::default().without_jobs();
    s.lead_sla = "*/10 * * * *".into();
    s.lead_sla_recycle_hours = 48;
    let clock = Clock::fixed(t0());
    let plan = Arc::new(Plan::try_from(&s).expect("plan"));
    let sched = Scheduler::new(db.clone(), clock.clone(), plan, Arc::new(Routes::default()), "t");
    let outbox = Dispatcher::new(db.clone(), clock.clone(), "t", Senders::default(), DispatchConfig::default());
    let ta = team_a(&w).await;
    add_rule(
        &w,
        NewRule { region_prefix: Some("青岛".into()), ..rule("青岛", Target::User(w.r1.id), Strategy::RoundRobin) },
    )
    .await;
    let _ = ta;
    let ctx = api(&w);
    let slow = created(&take(&w, &ctx, lead("青岛慢公司", "青岛", "", "")).await).clone();
    let quick = created(&take(&w, &ctx, lead("青岛快公司", "青岛", "", "")).await).clone();
    // The rep calls the quick one (a logged call on a customer of the same name stops its clock).
    let c = w.customer(&w.r1, "青岛快公司").await;
    let mut tx = w.tx().await;
    let call = crm::activities::NewActivity {
        customer_id: c.id,
        kind: crm::ActivityKind::Call,
        content: "聊了需求".into(),
        occurred_at: None,
        next_step: None,
        location: None,
        follow_up: None,
    };
    crm::activities::log_activity(&mut tx, &w.ctx(&w.r1), call).await.expect("call");
    tx.commit().await.expect("commit");
    let step = async |at: DateTime<Utc>| {
        clock.set(at);
        sched.tick().await.expect("tick");
        outbox.drain().await.expect("drain");
    };
    let pushes = async |who: &str| -> Vec<String> {
        chatcrm::platform::console::pushes(&w.db, "Org One", who, 0)
            .await
            .expect("pushes")
            .into_iter()
            .map(|p| p.text)
            .collect()
    };
    step(t0() + Duration::hours(47) + Duration::minutes(50)).await;
    assert!(pushes("r1").await.is_empty(), "before 48 working hours");
    step(t0() + Duration::hours(48) + Duration::minutes(10)).await; // Thu 10:10
    let r1 = pushes("r1").await;
    assert_eq!(r1.len(), 1, "{r1:?}");
    assert!(r1[0].contains(&format!("#{}", slow.id)) && r1[0].contains("48 个工作小时"), "{}", r1[0]);
    assert!(!r1.iter().any(|p| p.contains(&format!("#{} ", quick.id))), "the contacted lead's clock stopped");
    assert!(pushes("ma").await.is_empty());
    step(t0() + Duration::hours(72) + Duration::minutes(10)).await; // Fri 10:10
    let ma = pushes("ma").await;
    assert!(ma.len() == 1 && ma[0].contains("线索超时") && ma[0].contains("r1"), "{ma:?}");
    // The weekend does not count: still r1's on Sunday.
    step(t0() + Duration::hours(120)).await; // Sun 10:00
    let mut tx = w.tx().await;
    let l = crm::leads::get_lead(&mut tx, &w.ctx(&w.admin), slow.id).await.expect("lead");
    tx.commit().await.expect("commit");
    assert_eq!(l.owner_id, Some(w.r1.id));
    // 96 working hours: Monday 10:00. Back to the pool, with the reason.
    step(t0() + Duration::hours(144) + Duration::minutes(10)).await; // Mon 10:10
    let mut tx = w.tx().await;
    let l = crm::leads::get_lead(&mut tx, &w.ctx(&w.admin), slow.id).await.expect("lead");
    tx.commit().await.expect("commit");
    assert_eq!((l.status, l.owner_id), (LeadStatus::Pool, None));
    assert!(l.assign_reason.as_deref().is_some_and(|r| r.contains("退回公海") && r.contains("r1")), "{l:?}");
    assert!(pushes("r1").await.iter().any(|p| p.contains("已退回公海")));
    // Once: nothing more on later runs.
    let before = (pushes("r1").await.len(), pushes("ma").await.len());
    step(t0() + Duration::hours(150)).await;
    assert_eq!((pushes("r1").await.len(), pushes("ma").await.len()), before);
}
