//! Analytics and digests against a hand-computed fixture: a small org with a known history of
//! activities, deals (with skipped and reopened stages), leads, tasks and targets. Every figure
//! below was worked out by hand from the fixture, not read back from the code.

use super::helpers::*;
use crate::both_backends;
use chatcrm::bot::Bot;
use chatcrm::clock::Clock;
use chatcrm::crm::activities::NewActivity;
use chatcrm::crm::customers::NewCustomer;
use chatcrm::crm::deals::{DealPatch, NewDeal};
use chatcrm::crm::tasks::NewTask;
use chatcrm::crm::{self, ActivityKind, Actor, Ctx, Grade, LostReason, TaskOrigin, User, Via};
use chatcrm::report::render::{self, Dialect};
use chatcrm::report::{self, Digest, DigestKind, ReportOptions, Scope};
use chatcrm::store::{Db, Tx};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

both_backends!(
    figures_match_the_hand_computed_fixture,
    digests_stay_in_scope,
    targets_from_chat,
    demo_digest_snapshots
);

/// A time in Shanghai (UTC+8) in 2026.
fn cst(month: u32, day: u32, hour: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, month, day, hour, min, 0)
        .single()
        .unwrap_or_else(|| panic!("valid time {month}-{day} {hour}:{min}"))
        .with_timezone(&Utc)
}

fn ctx_at(u: &User, at: DateTime<Utc>) -> Ctx {
    Ctx::new(Actor::of(u), Via::Chat, at)
}

fn wan(n: i64) -> i64 {
    n * 10_000 * 100
}

struct Fixture {
    w: World,
    d1: i64,
    d2: i64,
    d3: i64,
    d4: i64,
    d5: i64,
    d6: i64,
    t1: i64,
    t2: i64,
    c5: i64,
}

async fn customer(tx: &mut Tx, owner: &User, name: &str, grade: Grade, at: DateTime<Utc>) -> i64 {
    let new = NewCustomer { name: name.into(), grade: Some(grade), ..Default::default() };
    crm::customers::create_customer(tx, &ctx_at(owner, at), new).await.expect("customer").id
}

async fn log(tx: &mut Tx, who: &User, customer_id: i64, kind: ActivityKind, at: DateTime<Utc>) {
    let new = NewActivity {
        customer_id,
        kind,
        content: format!("{kind} at {at}"),
        occurred_at: Some(at),
        next_step: None,
        location: None,
        follow_up: None,
    };
    crm::activities::log_activity(tx, &ctx_at(who, at), new).await.expect("activity");
}

async fn deal(
    tx: &mut Tx,
    owner: &User,
    customer_id: i64,
    amount: i64,
    stage: &str,
    close: (u32, u32),
    at: DateTime<Utc>,
) -> i64 {
    let new = NewDeal {
        customer_id,
        title: format!("deal of {}", owner.handle),
        amount_fen: amount,
        stage: Some(stage.into()),
        expected_close: NaiveDate::from_ymd_opt(2026, close.0, close.1),
        owner_id: None,
    };
    crm::deals::create_deal(tx, &ctx_at(owner, at), new).await.expect("deal").id
}

async fn move_to(tx: &mut Tx, owner: &User, id: i64, stage: &str, at: DateTime<Utc>) {
    let patch = DealPatch { stage: Some(stage.into()), ..Default::default() };
    crm::deals::update_deal(tx, &ctx_at(owner, at), id, patch).await.expect("move");
}

async fn task(tx: &mut Tx, owner: &User, title: &str, due: DateTime<Utc>) -> i64 {
    let new = NewTask {
        title: title.into(),
        due_at: due,
        owner_id: None,
        customer_id: None,
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    crm::tasks::create_task(tx, &ctx_at(owner, cst(11, 1, 9, 0)), new).await.expect("task").id
}

/// A lead row as intake would leave it, with its clock columns set directly.
#[allow(clippy::too_many_arguments)]
async fn lead(
    tx: &mut Tx,
    org_id: i64,
    company: &str,
    source: &str,
    owner: Option<i64>,
    status: &str,
    created: DateTime<Utc>,
    contacted: Option<DateTime<Utc>>,
    converted: Option<DateTime<Utc>>,
    sla_stage: i64,
) {
    let sql = "INSERT INTO leads (org_id, company, company_norm, source, status, owner_id, dedupe_key, created_at,
                                  updated_at, assigned_at, contacted_at, converted_at, sla_stage)
               VALUES ($1, $2, $2, $3, $4, $5, $2, $6, $6, $7, $8, $9, $10)";
    let assigned = owner.map(|_| created);
    match tx {
        Tx::Sqlite(t) => sqlx::query(sql)
            .bind(org_id)
            .bind(company)
            .bind(source)
            .bind(status)
            .bind(owner)
            .bind(created)
            .bind(assigned)
            .bind(contacted)
            .bind(converted)
            .bind(sla_stage)
            .execute(&mut **t)
            .await
            .map(|_| ()),
        Tx::Postgres(t) => sqlx::query(sql)
            .bind(org_id)
            .bind(company)
            .bind(source)
            .bind(status)
            .bind(owner)
            .bind(created)
            .bind(assigned)
            .bind(contacted)
            .bind(converted)
            .bind(sla_stage)
            .execute(&mut **t)
            .await
            .map(|_| ()),
    }
    .expect("lead");
}

/// The fixture; see the figures test for what each row contributes.
async fn fixture(db: Db) -> Fixture {
    let w = World::new(db).await;
    let (r1, r2, r3, ma) = (w.r1.clone(), w.r2.clone(), w.r3.clone(), w.ma.clone());
    let mut tx = w.tx().await;
    let old = cst(6, 1, 10, 0);
    let c1 = customer(&mut tx, &r1, "海尔智家", Grade::A, cst(10, 1, 10, 0)).await;
    let c2 = customer(&mut tx, &r2, "美的集团", Grade::B, cst(10, 1, 10, 0)).await;
    let c3 = customer(&mut tx, &r3, "格力电器", Grade::A, cst(10, 1, 10, 0)).await;
    let c4 = customer(&mut tx, &r1, "青岛啤酒", Grade::A, cst(11, 23, 10, 0)).await;
    let c5 = customer(&mut tx, &r1, "海信视像", Grade::A, old).await;

    // Yesterday (Mon 11-23): r1 visit, call, visit, wechat; r2 call, meeting; r3 visit; ma visit.
    log(&mut tx, &r1, c1, ActivityKind::Visit, cst(11, 23, 9, 0)).await;
    log(&mut tx, &r1, c1, ActivityKind::Call, cst(11, 23, 11, 0)).await;
    log(&mut tx, &r1, c4, ActivityKind::Visit, cst(11, 23, 14, 0)).await;
    log(&mut tx, &r1, c1, ActivityKind::Wechat, cst(11, 23, 15, 0)).await;
    log(&mut tx, &r2, c2, ActivityKind::Call, cst(11, 23, 10, 0)).await;
    log(&mut tx, &r2, c2, ActivityKind::Meeting, cst(11, 23, 23, 59)).await;
    log(&mut tx, &r3, c3, ActivityKind::Visit, cst(11, 23, 9, 30)).await;
    log(&mut tx, &ma, c1, ActivityKind::Visit, cst(11, 23, 16, 0)).await;
    // Outside the day: Sunday night and this morning; c5's last contact, 9 days ago.
    log(&mut tx, &r1, c1, ActivityKind::Visit, cst(11, 22, 23, 59)).await;
    log(&mut tx, &r1, c1, ActivityKind::Call, cst(11, 24, 9, 0)).await;
    log(&mut tx, &r1, c5, ActivityKind::Call, cst(11, 15, 10, 0)).await;

    // D1 (r1): IC 11-01 → NA 11-04 → P 11-10 → NA 11-12 → P 11-14 → N 11-23 10:00.
    let d1 = deal(&mut tx, &r1, c1, wan(100), "initial_contact", (11, 28), cst(11, 1, 10, 0)).await;
    move_to(&mut tx, &r1, d1, "needs_analysis", cst(11, 4, 10, 0)).await;
    move_to(&mut tx, &r1, d1, "proposal", cst(11, 10, 10, 0)).await;
    move_to(&mut tx, &r1, d1, "needs_analysis", cst(11, 12, 10, 0)).await;
    move_to(&mut tx, &r1, d1, "proposal", cst(11, 14, 10, 0)).await;
    move_to(&mut tx, &r1, d1, "negotiation", cst(11, 23, 10, 0)).await;
    // D2 (r2): IC 10-01 → P 10-11 (skips NA) → won 11-23 15:00.
    let d2 = deal(&mut tx, &r2, c2, wan(50), "initial_contact", (11, 30), cst(10, 1, 10, 0)).await;
    move_to(&mut tx, &r2, d2, "proposal", cst(10, 11, 10, 0)).await;
    crm::deals::close_deal(&mut tx, &ctx_at(&r2, cst(11, 23, 15, 0)), d2, true, None, None).await.expect("won");
    // D3 (r1): IC 11-23 14:00 → lost (price) 17:00.
    let d3 = deal(&mut tx, &r1, c4, wan(20), "initial_contact", (12, 20), cst(11, 23, 14, 0)).await;
    crm::deals::close_deal(&mut tx, &ctx_at(&r1, cst(11, 23, 17, 0)), d3, false, None, Some(LostReason::Price))
        .await
        .expect("lost");
    // D4 (r3, team B): NA 11-20 10:00 → C 11-23 09:00 (skips P and N).
    let d4 = deal(&mut tx, &r3, c3, wan(80), "needs_analysis", (12, 15), cst(11, 20, 10, 0)).await;
    move_to(&mut tx, &r3, d4, "contract", cst(11, 23, 9, 0)).await;
    // D5 (r1): IC since 06-01, nothing since: outside the funnel window, stuck.
    let d5 = deal(&mut tx, &r1, c5, wan(30), "initial_contact", (11, 30), old).await;
    // D6 (r2): P 08-01 (before the window) → N 09-01 (in it): stuck in N.
    let d6 = deal(&mut tx, &r2, c2, wan(10), "proposal", (12, 5), cst(8, 1, 10, 0)).await;
    move_to(&mut tx, &r2, d6, "negotiation", cst(9, 1, 10, 0)).await;

    // Tasks: T1 r1 overdue, T2 r2 overdue, T3 r3 overdue (team B), T4 r1 not yet due, T5 r1 done.
    let t1 = task(&mut tx, &r1, "跟进海尔报价", cst(11, 20, 9, 0)).await;
    let t2 = task(&mut tx, &r2, "催美的回款", cst(11, 23, 9, 0)).await;
    task(&mut tx, &r3, "格力合同", cst(11, 22, 9, 0)).await;
    task(&mut tx, &r1, "明天的事", cst(11, 25, 9, 0)).await;
    let t5 = task(&mut tx, &r1, "做完了", cst(11, 1, 9, 0)).await;
    crm::tasks::complete_task(&mut tx, &ctx_at(&r1, cst(11, 2, 9, 0)), t5).await.expect("done");

    // Leads: L1 r1 展会 contacted in SLA; L2 r2 官网 contacted after a reminder; L3 r1 展会 created
    // the day before, converted yesterday; L4 官网 in the pool; L5 r3 (team B) 展会.
    let org = w.org.id;
    let y = |h| cst(11, 23, h, 0);
    lead(&mut tx, org, "L1", "展会", Some(r1.id), "contacted", y(9), Some(y(12)), None, 0).await;
    lead(&mut tx, org, "L2", "官网", Some(r2.id), "contacted", y(10), Some(y(16)), None, 1).await;
    lead(
        &mut tx,
        org,
        "L3",
        "展会",
        Some(r1.id),
        "converted",
        cst(11, 22, 10, 0),
        Some(cst(11, 22, 11, 0)),
        Some(y(11)),
        0,
    )
    .await;
    lead(&mut tx, org, "L4", "官网", None, "pool", y(13), None, None, 0).await;
    lead(&mut tx, org, "L5", "展会", Some(r3.id), "assigned", y(14), None, None, 0).await;
    tx.commit().await.expect("commit fixture");
    Fixture { w, d1, d2, d3, d4, d5, d6, t1, t2, c5 }
}

/// "Now" of the report: Tuesday 11-24 10:00.
fn now() -> DateTime<Utc> {
    cst(11, 24, 10, 0)
}

async fn daily(f: &Fixture, who: &User, scope: Scope) -> Digest {
    let mut tx = f.w.db.begin_read().await.expect("tx");
    let ctx = ctx_at(who, now());
    let span = report::digest_period(now(), chrono_tz::Asia::Shanghai, DigestKind::Daily);
    assert_eq!(span, (cst(11, 23, 0, 0), cst(11, 24, 0, 0)));
    let d = report::digest_for(&mut tx, &ctx, scope, DigestKind::Daily, span, &ReportOptions::default())
        .await
        .expect("digest");
    tx.commit().await.expect("commit");
    d
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-3
}

async fn figures_match_the_hand_computed_fixture(db: Db) {
    let f = fixture(db).await;
    let w = &f.w;

    // ---- Team A, as its manager sees it.
    let d = daily(&f, &w.ma, Scope::of(&Actor::of(&w.ma))).await;
    let a = &d.activity;
    assert_eq!((a.visits, a.calls, a.other), (4, 2, 1), "r1 2+1+1, r2 meeting+call, ma visit");
    assert_eq!(a.customers_touched, 3, "海尔 (r1 and ma count once), 青岛啤酒, 美的");
    assert_eq!(a.new_customers, 1, "青岛啤酒");
    let line = |name: &str| {
        a.reps.iter().find(|r| r.name == name).cloned().unwrap_or_else(|| panic!("{name} in {:?}", a.reps))
    };
    let r1 = line("r1");
    assert_eq!((r1.visits, r1.calls, r1.other, r1.customers_touched, r1.new_customers), (2, 1, 1, 2, 1));
    let r2 = line("r2");
    assert_eq!((r2.visits, r2.calls, r2.other, r2.customers_touched, r2.new_customers), (1, 1, 0, 1, 0));
    let ma = line("ma");
    assert_eq!((ma.visits, ma.customers_touched), (1, 1));
    assert!(!a.reps.iter().any(|r| r.name == "r3" || r.name == "mb"), "team B is not in team A's lines");
    assert_eq!(a.reps[0].name, "r1", "busiest first");

    let l = &d.leads;
    assert_eq!((l.new, l.assigned, l.contacted, l.contacted_in_sla, l.converted), (2, 2, 2, 1, 1));
    let src: Vec<(&str, i64, i64)> = l.sources.iter().map(|s| (s.source.as_str(), s.new, s.converted)).collect();
    assert_eq!(src, vec![("展会", 1, 1), ("官网", 1, 0)]);

    let dl = &d.deals;
    assert_eq!(dl.moves_total, 1, "D1 proposal → negotiation; creation and closing are not moves");
    assert_eq!(
        (dl.moves[0].deal_id, dl.moves[0].from_stage.as_str(), dl.moves[0].to_stage.as_str()),
        (f.d1, "proposal", "negotiation")
    );
    assert_eq!(dl.won.iter().map(|x| (x.deal_id, x.amount_fen)).collect::<Vec<_>>(), vec![(f.d2, wan(50))]);
    assert_eq!(dl.lost.iter().map(|x| (x.deal_id, x.amount_fen)).collect::<Vec<_>>(), vec![(f.d3, wan(20))]);
    assert_eq!((dl.won_fen, dl.lost_fen), (wan(50), wan(20)));
    assert_eq!(dl.lost_reasons.len(), 1);
    assert_eq!((dl.lost_reasons[0].reason, dl.lost_reasons[0].deals), (Some(LostReason::Price), 1));

    // Open now: D1 negotiation 100万 (70%), D6 negotiation 10万 (70%), D5 initial 30万 (10%).
    let p = &d.pipeline;
    let stage = |k: &str| p.stages.iter().find(|s| s.key == k).map(|s| (s.count, s.amount_fen, s.weighted_fen));
    assert_eq!(stage("negotiation"), Some((2, wan(110), wan(77))));
    assert_eq!(stage("initial_contact"), Some((1, wan(30), wan(3))));
    assert_eq!(stage("proposal"), Some((0, 0, 0)));
    assert_eq!((p.total_count, p.total_fen, p.weighted_fen), (3, wan(140), wan(80)));

    // Funnel, 90 days back from 11-24: D1 (top negotiation), D2 (won), D3 (initial only), D6
    // (negotiation; created before the window, moved in it). D5 has no history in the window.
    let fu = &d.funnel;
    assert_eq!(fu.deals, 4);
    let reached: Vec<(&str, i64)> = fu.steps.iter().map(|s| (s.key.as_str(), s.reached)).collect();
    assert_eq!(
        reached,
        vec![
            ("initial_contact", 4),
            ("needs_analysis", 3),
            ("proposal", 3),
            ("negotiation", 3),
            ("contract", 1),
            ("won", 1)
        ]
    );
    let conv: Vec<Option<f64>> = fu.steps.iter().map(|s| s.to_next_pct).collect();
    assert!(close(conv[0].unwrap_or(-1.0), 75.0) && close(conv[1].unwrap_or(-1.0), 100.0));
    assert!(close(conv[3].unwrap_or(-1.0), 100.0 / 3.0) && close(conv[4].unwrap_or(-1.0), 100.0));
    assert_eq!(conv[5], None);
    // Dwell: initial D1 3 d, D2 10 d, D3 3 h; needs analysis D1 6 + 2 = 8 d (reopened: summed);
    // proposal D1 2 + 9 = 11 d, D2 43 d 5 h, D6 31 d. Negotiation: nobody has left it.
    let dwell = |k: &str| fu.steps.iter().find(|s| s.key == k).and_then(|s| s.dwell);
    let ic = dwell("initial_contact").expect("initial dwell");
    assert_eq!(ic.deals, 3);
    assert!(close(ic.avg_days, (3.0 + 10.0 + 0.125) / 3.0) && close(ic.median_days, 3.0), "{ic:?}");
    let na = dwell("needs_analysis").expect("needs dwell");
    assert!(na.deals == 1 && close(na.avg_days, 8.0) && close(na.median_days, 8.0), "{na:?}");
    let pr = dwell("proposal").expect("proposal dwell");
    assert!(
        pr.deals == 3 && close(pr.avg_days, (11.0 + 43.0 + 5.0 / 24.0 + 31.0) / 3.0) && close(pr.median_days, 31.0),
        "{pr:?}"
    );
    assert_eq!(dwell("negotiation"), None);

    // Forecast: November open D1 100万×70% + D5 30万×10% = 73万, won D2 50万; target r1 100万 +
    // r2 50万. December: D6 10万×70%.
    let m = &d.forecast[0];
    assert_eq!(
        (m.month.as_str(), m.won_fen, m.weighted_fen, m.open_fen, m.open_deals),
        ("2026-11", wan(50), wan(73), wan(130), 2)
    );
    assert_eq!(m.target_fen, None, "no targets yet");
    let n = &d.forecast[1];
    assert_eq!((n.month.as_str(), n.won_fen, n.weighted_fen, n.open_deals), ("2026-12", 0, wan(7), 1));

    // Risks at 11-24 10:00: overdue T1, T2 (oldest first); quiet A 海信视像 (9 days); stuck D5
    // (initial since 06-01, limit 14 d), D6 (negotiation since 09-01, limit 21 d).
    let r = &d.risks;
    assert_eq!(
        (r.overdue_tasks.total, r.overdue_tasks.items.iter().map(|t| t.id).collect::<Vec<_>>()),
        (2, vec![f.t1, f.t2])
    );
    assert_eq!((r.quiet_a.total, r.quiet_a.items.iter().map(|c| c.id).collect::<Vec<_>>()), (1, vec![f.c5]));
    assert_eq!(
        (r.stuck_deals.total, r.stuck_deals.items.iter().map(|s| s.id).collect::<Vec<_>>()),
        (2, vec![f.d5, f.d6])
    );

    // ---- The org, as its admin sees it: team B and the pool join in.
    let d = daily(&f, &w.admin, Scope::of(&Actor::of(&w.admin))).await;
    let a = &d.activity;
    assert_eq!((a.visits, a.calls, a.other, a.customers_touched, a.new_customers), (5, 2, 1, 4, 1));
    let l = &d.leads;
    assert_eq!((l.new, l.assigned, l.contacted, l.contacted_in_sla, l.converted), (4, 3, 2, 1, 1));
    let src: Vec<(&str, i64, i64)> = l.sources.iter().map(|s| (s.source.as_str(), s.new, s.converted)).collect();
    assert_eq!(src, vec![("展会", 2, 1), ("官网", 2, 0)], "most new first, then most converted");
    assert_eq!(d.deals.moves_total, 2, "D1 and D4 (needs analysis → contract)");
    assert_eq!((d.pipeline.total_count, d.pipeline.total_fen, d.pipeline.weighted_fen), (4, wan(220), wan(152)));
    let reached: Vec<i64> = d.funnel.steps.iter().map(|s| s.reached).collect();
    assert_eq!(reached, vec![5, 4, 4, 4, 2, 1], "D4 skipped from needs analysis to contract");
    let na = d.funnel.steps[1].dwell.expect("needs dwell");
    // Two deals: D1 8 d and D4 2 d 23 h; the median of two is their mean.
    let d4_na = 2.0 + 23.0 / 24.0;
    assert!(
        na.deals == 2 && close(na.avg_days, (8.0 + d4_na) / 2.0) && close(na.median_days, (8.0 + d4_na) / 2.0),
        "{na:?}"
    );
    assert_eq!((d.forecast[1].weighted_fen, d.forecast[1].open_deals), (wan(7) + wan(72), 2));
    assert_eq!(d.risks.overdue_tasks.total, 3);

    // ---- r1's own day.
    let d = daily(&f, &w.r1, Scope::of(&Actor::of(&w.r1))).await;
    let a = &d.activity;
    assert_eq!((a.visits, a.calls, a.other, a.customers_touched, a.new_customers), (2, 1, 1, 2, 1));
    assert_eq!(a.reps.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["r1"]);
    assert_eq!((d.leads.new, d.leads.converted), (1, 1));
    assert!(d.deals.won.is_empty(), "D2 is r2's");
    assert_eq!(d.deals.lost.iter().map(|x| x.deal_id).collect::<Vec<_>>(), vec![f.d3]);
    assert_eq!((d.pipeline.total_count, d.pipeline.total_fen, d.pipeline.weighted_fen), (2, wan(130), wan(73)));
    let reached: Vec<i64> = d.funnel.steps.iter().map(|s| s.reached).collect();
    assert_eq!(reached, vec![2, 1, 1, 1, 0, 0]);
    assert_eq!(d.funnel.steps[4].to_next_pct, None, "nobody reached contract");
    assert_eq!((d.forecast[0].won_fen, d.forecast[0].weighted_fen), (0, wan(73)));
    assert_eq!(d.risks.overdue_tasks.items.iter().map(|t| t.id).collect::<Vec<_>>(), vec![f.t1]);
    assert_eq!(d.risks.stuck_deals.items.iter().map(|s| s.id).collect::<Vec<_>>(), vec![f.d5]);

    // ---- Team B's manager: only D4 and r3.
    let d = daily(&f, &w.mb, Scope::of(&Actor::of(&w.mb))).await;
    assert_eq!((d.activity.visits, d.activity.calls), (1, 0));
    assert_eq!(d.deals.moves.iter().map(|m| m.deal_id).collect::<Vec<_>>(), vec![f.d4]);
    assert_eq!(d.pipeline.total_count, 1);
    assert_eq!(d.leads.new, 1, "L5");
}

/// What a reader sees never names a deal, customer or person outside their scope, on any platform.
async fn digests_stay_in_scope(db: Db) {
    let f = fixture(db).await;
    let w = &f.w;
    for (who, must_not) in [
        (&w.r1, vec!["r2", "美的", "格力", "r3", "催美的回款"]),
        (&w.r2, vec!["海尔", "青岛啤酒", "格力", "r3", "跟进海尔报价"]),
        (&w.ma, vec!["格力", "r3", "mb", "格力合同"]),
        (&w.mb, vec!["海尔", "美的", "r1", "r2", "跟进海尔报价"]),
    ] {
        let d = daily(&f, who, Scope::of(&Actor::of(who))).await;
        for dialect in [Dialect::WeCom, Dialect::WeComRobot, Dialect::DingTalk, Dialect::Feishu, Dialect::Plain] {
            let text = render::digest(&d, dialect, crm::Lang::Zh).join("\n");
            for word in &must_not {
                assert!(!text.contains(word), "{}'s digest ({dialect:?}) mentions {word}:\n{text}", who.handle);
            }
        }
    }
    // And the admin sees everyone.
    let d = daily(&f, &w.admin, Scope::of(&Actor::of(&w.admin))).await;
    let text = render::digest(&d, Dialect::Plain, crm::Lang::Zh).join("\n");
    for word in ["r1", "r2", "r3", "ma"] {
        assert!(text.contains(word), "admin digest lacks {word}:\n{text}");
    }
}

async fn targets_from_chat(db: Db) {
    let f = fixture(db).await;
    let w = &f.w;
    let bot = Bot::new(w.db.clone(), Clock::fixed(now()));
    let say = async |who: &User, id: &str, text: &str| {
        let mut m = w.msg(who, id, text);
        m.received_at = now();
        bot.handle(&m).await.expect("handled").text
    };
    let r = say(&w.ma, "t1", "目标 @r1 100万").await;
    assert!(r.contains("2026-11") && r.contains("¥1,000,000"), "{r}");
    let r = say(&w.ma, "t2", "target @r2 500k").await;
    assert!(r.contains("2026-11"), "{r}");
    let r = say(&w.ma, "t3", "目标 @r3 100万").await;
    assert!(r.contains("不在你的团队"), "ma may not set team B's target: {r}");
    let r = say(&w.r1, "t4", "目标 @r1 1000万").await;
    assert!(r.contains("只有经理或管理员"), "reps set no targets: {r}");
    let r = say(&w.ma, "t5", "目标 @r1 80万 12月").await;
    assert!(r.contains("2026-12"), "{r}");
    let r = say(&w.ma, "t6", "目标 @r1 50万 1月").await;
    assert!(r.contains("2027-01"), "January means next year's: {r}");

    let d = daily(&f, &w.ma, Scope::of(&Actor::of(&w.ma))).await;
    let m = &d.forecast[0];
    assert_eq!(m.target_fen, Some(wan(150)));
    // Expected 50万 won + 73万 weighted = 123万 of 150万.
    assert!(close(m.of_target_pct().unwrap_or(0.0), 123.0 * 100.0 / 150.0));
    let r1 = m.reps.iter().find(|r| r.name == "r1").expect("r1 line");
    assert_eq!((r1.won_fen, r1.weighted_fen, r1.target_fen), (0, wan(73), Some(wan(100))));
    let r2 = m.reps.iter().find(|r| r.name == "r2").expect("r2 line");
    assert_eq!((r2.won_fen, r2.target_fen), (wan(50), Some(wan(50))));
    assert_eq!(d.forecast[1].target_fen, Some(wan(80)));
    let text = render::digest(&d, Dialect::WeCom, crm::Lang::Zh).join("\n");
    assert!(text.contains("本月预测 ¥1,230,000 / 目标 ¥1,500,000（82%）"), "{text}");

    let r = say(&w.ma, "t7", "目标 @r1 清除").await;
    assert!(r.contains("已清除"), "{r}");
    let d = daily(&f, &w.ma, Scope::of(&Actor::of(&w.ma))).await;
    assert_eq!(d.forecast[0].target_fen, Some(wan(50)));

    // On demand: 日报 and 漏斗 from chat, and the pipeline for a rep is their own.
    let r = say(&w.r1, "t8", "漏斗").await;
    assert!(r.contains("我的漏斗") && r.contains("进行中 2 单 ¥1,300,000") && r.contains("漏斗图随后"), "{r}");
    // The platform delivers the message twice: the picture still comes once.
    assert_eq!(say(&w.r1, "t8", "漏斗").await, r);
    drain_outbox(&w.db).await;
    let pushes = chatcrm::platform::console::pushes(&w.db, "Org One", "r1", 0).await.expect("pushes");
    assert_eq!(pushes.iter().filter(|p| p.has_image).count(), 1, "{pushes:?}");
    let r = say(&w.ma, "t9", "pipeline").await;
    assert!(r.contains("Team pipeline") && r.contains("Open 3 deals ¥1,400,000"), "{r}");
}

/// The demo org's weekly team digest, as the manager 韩梅梅 gets it on each platform, against the
/// files in tests/snapshots/ (review a change, then rewrite them with
/// `CHATCRM_UPDATE_SNAPSHOTS=1 cargo test --test api demo_digest_snapshots`).
async fn demo_digest_snapshots(db: Db) {
    let mut tx = db.begin().await.expect("begin");
    chatcrm::demo::seed(&mut tx, "演示公司", "Asia/Shanghai", t0()).await.expect("seed");
    tx.commit().await.expect("commit");
    let mut tx = db.begin_read().await.expect("tx");
    let org = crm::orgs::org_by_name(&mut tx, "演示公司").await.expect("org");
    let manager = crm::users::find_user(&mut tx, org.id, "hanmeimei").await.expect("manager");
    let at = t0() + chrono::Duration::days(1);
    let ctx = ctx_at(&manager, at);
    let span = report::digest_period(at, chrono_tz::Asia::Shanghai, DigestKind::Weekly);
    let d = report::digest_for(
        &mut tx,
        &ctx,
        Scope::of(&Actor::of(&manager)),
        DigestKind::Weekly,
        span,
        &ReportOptions::default(),
    )
    .await
    .expect("digest");
    tx.commit().await.expect("commit");
    assert!(d.activity.visits > 0 && d.pipeline.total_count > 0 && d.funnel.deals > 0, "the demo has a history: {d:?}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    for (dialect, file) in [
        (Dialect::WeCom, "demo_digest.wecom.md"),
        (Dialect::DingTalk, "demo_digest.dingtalk.md"),
        (Dialect::Feishu, "demo_digest.feishu.md"),
    ] {
        let chunks = render::digest(&d, dialect, crm::Lang::Zh);
        for c in &chunks {
            assert!(c.len() <= dialect.limit_bytes(), "{dialect:?}: {} bytes", c.len());
        }
        match dialect {
            Dialect::WeCom => {
                assert!(chunks[0].starts_with("### 团队周报") && chunks.concat().contains("<font color="))
            }
            Dialect::DingTalk => assert!(chunks[0].starts_with("### 团队周报") && chunks[0].contains("\n\n- ")),
            _ => assert!(chunks[0].starts_with("**团队周报") && !chunks.concat().contains("###")),
        }
        let got = chunks.join("\n\n----- next message -----\n\n") + "\n";
        let path = dir.join(file);
        if std::env::var_os("CHATCRM_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(&dir).expect("snapshot dir");
            std::fs::write(&path, &got).expect("write snapshot");
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; create it with CHATCRM_UPDATE_SNAPSHOTS=1", path.display()));
        assert_eq!(got, want, "{dialect:?} digest differs from {}", path.display());
    }
}
