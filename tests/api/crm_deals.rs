//! Deals: stages, probabilities, history, won/lost rules.

use super::helpers::*;
use crate::both_backends;
use chatcrm::crm::deals::{DealPatch, NewDeal};
use chatcrm::crm::{self, DealStatus, LostReason};
use chatcrm::store::Db;
use chrono::{Duration, NaiveDate};

fn deal(customer_id: i64, title: &str, yuan: i64) -> NewDeal {
    NewDeal {
        customer_id,
        title: title.into(),
        amount_fen: yuan * 100,
        stage: None,
        expected_close: NaiveDate::from_ymd_opt(2026, 12, 31),
        owner_id: None,
    }
}

async fn create_starts_at_the_first_stage_with_history(db: Db) {
    let w = World::new(db).await;
    let c = w.customer(&w.r1, "海尔智家").await;
    let mut tx = w.tx().await;
    let d = crm::deals::create_deal(&mut tx, &w.ctx(&w.r1), deal(c.id, "二期", 120_000)).await.expect("deal");
    assert_eq!((d.stage.as_str(), d.probability, d.status), ("initial_contact", 10, DealStatus::Open));
    assert_eq!((d.amount_fen, d.currency.as_str(), d.owner_id), (12_000_000, "CNY", w.r1.id));
    assert_eq!(d.expected_close, NaiveDate::from_ymd_opt(2026, 12, 31));
    let mut at_stage = deal(c.id, "三期", 50_000);
    at_stage.stage = Some("方案报价".into());
    let d2 = crm::deals::create_deal(&mut tx, &w.ctx(&w.r1), at_stage).await.expect("at stage");
    assert_eq!((d2.stage.as_str(), d2.probability), ("proposal", 50));
    let detail = crm::deals::deal_detail(&mut tx, &w.ctx(&w.r1), d.id).await.expect("detail");
    assert_eq!(detail.history.len(), 1);
    assert_eq!(
        (detail.history[0].from_stage.as_deref(), detail.history[0].to_stage.as_str()),
        (None, "initial_contact")
    );

    let mut bad = deal(c.id, "坏", -1);
    bad.amount_fen = -1;
    assert!(is_invalid(&crm::deals::create_deal(&mut tx, &w.ctx(&w.r1), bad).await));
    let mut won = deal(c.id, "直接赢", 1);
    won.stage = Some("won".into());
    assert!(is_invalid(&crm::deals::create_deal(&mut tx, &w.ctx(&w.r1), won).await), "outcomes need close_deal");
    assert!(is_forbidden(&crm::deals::create_deal(&mut tx, &w.ctx(&w.r2), deal(c.id, "x", 1)).await));
}

async fn stage_moves_are_recorded(db: Db) {
    let w = World::new(db).await;
    let c = w.customer(&w.r1, "美的").await;
    let mut tx = w.tx().await;
    let d = crm::deals::create_deal(&mut tx, &w.ctx(&w.r1), deal(c.id, "仓储", 86_000)).await.expect("deal");
    let mut ctx = w.ctx(&w.r1);
    for (stage, p) in [("needs_analysis", 25), ("negotiation", 70), ("proposal", 50)] {
        ctx.now += Duration::days(3);
        let patch = DealPatch { stage: Some(stage.into()), ..Default::default() };
        let u = crm::deals::update_deal(&mut tx, &ctx, d.id, patch).await.expect("move");
        assert_eq!((u.stage.as_str(), u.probability), (stage, p));
    }
    // A patch without a stage does not add history.
    let u = crm::deals::update_deal(
        &mut tx,
        &ctx,
        d.id,
        DealPatch { amount_fen: Some(9_000_000), title: Some("华南仓储".into()), ..Default::default() },
    )
    .await
    .expect("amount");
    assert_eq!((u.amount_fen, u.title.as_str(), u.stage.as_str()), (9_000_000, "华南仓储", "proposal"));
    let h = chatcrm::store::deals::history(&mut tx, d.id).await.expect("history");
    let moves: Vec<(Option<&str>, &str)> = h.iter().map(|m| (m.from_stage.as_deref(), m.to_stage.as_str())).collect();
    assert_eq!(
        moves,
        vec![
            (None, "initial_contact"),
            (Some("initial_contact"), "needs_analysis"),
            (Some("needs_analysis"), "negotiation"),
            (Some("negotiation"), "proposal"),
        ]
    );
    assert_eq!(h[3].moved_at, t0() + Duration::days(9));
    assert_eq!(h[3].moved_by, Some(w.r1.id));
}

async fn won_and_lost(db: Db) {
    let w = World::new(db).await;
    let c = w.customer(&w.r1, "潍柴").await;
    let mut tx = w.tx().await;
    let a = crm::deals::create_deal(&mut tx, &w.ctx(&w.r1), deal(c.id, "A", 100)).await.expect("a");
    let b = crm::deals::create_deal(&mut tx, &w.ctx(&w.r1), deal(c.id, "B", 200)).await.expect("b");
    let won = crm::deals::close_deal(&mut tx, &w.ctx(&w.r1), a.id, true, Some(15_000), None).await.expect("won");
    assert_eq!(
        (won.status, won.stage.as_str(), won.probability, won.amount_fen),
        (DealStatus::Won, "won", 100, 15_000)
    );
    assert_eq!(won.closed_at, Some(t0()));
    // A loss without a reason is refused and changes nothing.
    let r = crm::deals::close_deal(&mut tx, &w.ctx(&w.r1), b.id, false, None, None).await;
    assert!(is_invalid(&r));
    let msg = r.err().map(|e| e.user_message(crm::Lang::Zh)).unwrap_or_default();
    assert!(msg.contains("价格"), "lists the reasons: {msg}");
    let lost = crm::deals::close_deal(&mut tx, &w.ctx(&w.r1), b.id, false, None, Some(LostReason::Competitor))
        .await
        .expect("lost");
    assert_eq!((lost.status, lost.lost_reason, lost.probability), (DealStatus::Lost, Some(LostReason::Competitor), 0));
    // Closed deals stay closed.
    let again = crm::deals::close_deal(&mut tx, &w.ctx(&w.r1), a.id, false, None, Some(LostReason::Price)).await;
    assert!(is_invalid(&again));
    let patch = DealPatch { amount_fen: Some(1), ..Default::default() };
    assert!(is_invalid(&crm::deals::update_deal(&mut tx, &w.ctx(&w.r1), b.id, patch).await));
    let h = chatcrm::store::deals::history(&mut tx, a.id).await.expect("history");
    assert_eq!(h.last().map(|m| m.to_stage.as_str()), Some("won"));
    tx.commit().await.expect("commit");
    let mut tx = w.tx().await;
    let open = crm::deals::open_deals(&mut tx, &w.ctx(&w.r1)).await.expect("open");
    assert!(open.is_empty(), "both deals are closed: {open:?}");
}

both_backends!(create_starts_at_the_first_stage_with_history, stage_moves_are_recorded, won_and_lost);
