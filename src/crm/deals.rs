//! Deals (商机): creation, updates, stage moves with history, won/lost.

use chrono::NaiveDate;
use serde::Serialize;

use super::{
    Ctx, Deal, DealStatus, LostReason, Result, Stage, StageMove, audit, clean_text, forbidden, invalid, not_found,
};
use crate::store::deals::{DealUpdate, NewDealRow};
use crate::store::{self, Tx};
use crate::webhooks::{self, EventType};

#[derive(Debug, Clone)]
pub struct NewDeal {
    pub customer_id: i64,
    pub title: String,
    pub amount_fen: i64,
    /// An open stage key or name; defaults to the first stage.
    pub stage: Option<String>,
    pub expected_close: Option<NaiveDate>,
    /// Defaults to the customer's owner, else the acting user.
    pub owner_id: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct DealPatch {
    pub title: Option<String>,
    pub amount_fen: Option<i64>,
    /// An open stage; to win or lose a deal use [`close_deal`].
    pub stage: Option<String>,
    pub expected_close: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DealDetail {
    pub deal: Deal,
    pub history: Vec<StageMove>,
}

/// 1000 亿元 in 分: beyond any small team's deal, so almost certainly a typo.
const MAX_AMOUNT_FEN: i64 = 10_000_000_000_000;

fn check_amount(fen: i64) -> Result<i64> {
    if !(0..=MAX_AMOUNT_FEN).contains(&fen) {
        return Err(invalid("金额不合理：应在 0 到 1000 亿元之间", "the amount must be between 0 and 100 billion"));
    }
    Ok(fen)
}

async fn open_stage(tx: &mut Tx, ctx: &Ctx, what: &str) -> Result<Stage> {
    let stage = super::orgs::find_stage(tx, ctx.org_id(), what).await?;
    if stage.outcome != DealStatus::Open {
        return Err(invalid(
            format!("「{}」是结果阶段：请用 赢单/输单", stage.name_zh),
            format!("`{}` is an outcome: use won / lost instead", stage.name_en),
        ));
    }
    Ok(stage)
}

pub async fn create_deal(tx: &mut Tx, ctx: &Ctx, new: NewDeal) -> Result<Deal> {
    let customer = super::customers::get_customer(tx, ctx, new.customer_id).await?;
    let title = clean_text("商机名称", "deal title", &new.title, 100)?;
    let amount = check_amount(new.amount_fen)?;
    let stage = match new.stage.as_deref() {
        Some(s) => open_stage(tx, ctx, s).await?,
        None => super::orgs::stages(tx, ctx.org_id())
            .await?
            .into_iter()
            .find(|s| s.outcome == DealStatus::Open)
            .ok_or_else(|| invalid("组织没有配置销售阶段", "the org has no open stages configured"))?,
    };
    let Some(owner_id) = new.owner_id.or(customer.owner_id).or(ctx.actor.user_id) else {
        return Err(invalid("商机需要一个负责人", "a deal needs an owner"));
    };
    let owner = super::users::user_by_id(tx, ctx.org_id(), owner_id).await?;
    if !ctx.actor.can_access(Some(owner.id), owner.team_id) {
        return Err(forbidden("你不能替团队以外的人建商机", "you cannot create deals for people outside your team"));
    }
    let id = store::deals::insert(
        tx,
        &NewDealRow {
            org_id: ctx.org_id(),
            customer_id: customer.id,
            owner_id,
            title: &title,
            amount_fen: amount,
            currency: "CNY",
            stage: &stage.key,
            probability: stage.probability,
            expected_close: new.expected_close,
            now: ctx.now,
        },
    )
    .await?;
    store::deals::insert_move(tx, ctx.org_id(), id, None, &stage.key, ctx.now, ctx.actor.user_id).await?;
    let deal = load(tx, ctx, id).await?;
    audit(tx, ctx, "create", "deal", id, None::<&()>, Some(&deal)).await?;
    Ok(deal)
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Deal> {
    store::deals::by_id(tx, ctx.org_id(), id)
        .await?
        .ok_or_else(|| not_found(format!("商机 #{id} 不存在"), format!("deal #{id} does not exist")))
}

pub async fn get_deal(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Deal> {
    let deal = load(tx, ctx, id).await?;
    if !ctx.actor.can_access(Some(deal.owner_id), deal.owner_team_id) {
        return Err(forbidden("这个商机不归你负责", "this deal is not yours"));
    }
    Ok(deal)
}

pub async fn deal_detail(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<DealDetail> {
    let deal = get_deal(tx, ctx, id).await?;
    let history = store::deals::history(tx, id).await?;
    Ok(DealDetail { deal, history })
}

/// All of a deal's mutable fields, for writing it back whole.
pub(crate) fn as_update(d: &Deal, now: chrono::DateTime<chrono::Utc>) -> DealUpdate<'_> {
    DealUpdate {
        title: &d.title,
        amount_fen: d.amount_fen,
        stage: &d.stage,
        probability: d.probability,
        expected_close: d.expected_close,
        status: d.status,
        lost_reason: d.lost_reason,
        closed_at: d.closed_at,
        owner_id: d.owner_id,
        now,
    }
}

pub async fn update_deal(tx: &mut Tx, ctx: &Ctx, id: i64, patch: DealPatch) -> Result<Deal> {
    let before = get_deal(tx, ctx, id).await?;
    if before.status != DealStatus::Open {
        return Err(invalid(
            format!("商机 #{id} 已经结束（{}），不能再修改", before.status),
            format!("deal #{id} is closed ({}) and cannot be changed", before.status),
        ));
    }
    let mut next = before.clone();
    if let Some(t) = &patch.title {
        next.title = clean_text("商机名称", "deal title", t, 100)?;
    }
    if let Some(a) = patch.amount_fen {
        next.amount_fen = check_amount(a)?;
    }
    if let Some(d) = patch.expected_close {
        next.expected_close = Some(d);
    }
    if let Some(s) = &patch.stage {
        let stage = open_stage(tx, ctx, s).await?;
        next.stage = stage.key;
        next.probability = stage.probability;
    }
    store::deals::update(tx, ctx.org_id(), id, &as_update(&next, ctx.now)).await?;
    if next.stage != before.stage {
        store::deals::insert_move(tx, ctx.org_id(), id, Some(&before.stage), &next.stage, ctx.now, ctx.actor.user_id)
            .await?;
    }
    let after = load(tx, ctx, id).await?;
    audit(tx, ctx, "update", "deal", id, Some(&before), Some(&after)).await?;
    if after.stage != before.stage {
        stage_changed(tx, ctx, &before, &after).await?;
    }
    Ok(after)
}

/// Wins or loses a deal. A loss needs a reason from the standard list.
pub async fn close_deal(
    tx: &mut Tx,
    ctx: &Ctx,
    id: i64,
    won: bool,
    final_amount_fen: Option<i64>,
    lost_reason: Option<LostReason>,
) -> Result<Deal> {
    let before = get_deal(tx, ctx, id).await?;
    if before.status != DealStatus::Open {
        return Err(invalid(
            format!("商机 #{id} 已经结束（{}）", before.status),
            format!("deal #{id} is already closed ({})", before.status),
        ));
    }
    if !won && lost_reason.is_none() {
        return Err(invalid(
            "请说明输单原因：价格、竞争对手、没预算、功能不足、时机、失联、找不到决策人、不匹配、其他",
            "say why it was lost: price, competitor, no_budget, missing_features, timing, unresponsive, no_decision_maker, poor_fit, other",
        ));
    }
    let outcome = if won { DealStatus::Won } else { DealStatus::Lost };
    let stage = super::orgs::stages(tx, ctx.org_id())
        .await?
        .into_iter()
        .find(|s| s.outcome == outcome)
        .ok_or_else(|| invalid("组织没有配置赢单/输单阶段", "the org has no won/lost stage configured"))?;
    let mut next = before.clone();
    if let Some(a) = final_amount_fen {
        next.amount_fen = check_amount(a)?;
    }
    next.stage = stage.key.clone();
    next.probability = stage.probability;
    next.status = outcome;
    next.lost_reason = if won { None } else { lost_reason };
    next.closed_at = Some(ctx.now);
    store::deals::update(tx, ctx.org_id(), id, &as_update(&next, ctx.now)).await?;
    store::deals::insert_move(tx, ctx.org_id(), id, Some(&before.stage), &stage.key, ctx.now, ctx.actor.user_id)
        .await?;
    let after = load(tx, ctx, id).await?;
    audit(tx, ctx, if won { "won" } else { "lost" }, "deal", id, Some(&before), Some(&after)).await?;
    stage_changed(tx, ctx, &before, &after).await?;
    let event = if won { EventType::DealWon } else { EventType::DealLost };
    let key = format!("{id}:{}", ctx.now.timestamp_millis());
    webhooks::emit(tx, ctx.org_id(), event, &key, || webhooks::record(&after, &[]), ctx.now).await?;
    Ok(after)
}

/// `deal.stage_changed` (also when a deal is won or lost: its stage changes too).
async fn stage_changed(tx: &mut Tx, ctx: &Ctx, before: &Deal, after: &Deal) -> Result<()> {
    // The stage is in the key: a deal moved and then won in one moment has two changes.
    let key = format!("{}:{}:{}", after.id, after.stage, ctx.now.timestamp_millis());
    webhooks::emit(
        tx,
        ctx.org_id(),
        EventType::DealStageChanged,
        &key,
        || webhooks::record(after, &[("previous_stage", serde_json::json!(before.stage))]),
        ctx.now,
    )
    .await?;
    Ok(())
}

pub async fn open_deals(tx: &mut Tx, ctx: &Ctx) -> Result<Vec<Deal>> {
    Ok(store::deals::open_visible(tx, &ctx.actor).await?)
}
