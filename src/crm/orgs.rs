//! Orgs and their deal stages.

use chrono::{DateTime, Utc};

use super::{Actor, CrmError, Ctx, DealStatus, Org, Result, Stage, Via, audit, invalid, not_found, text};
use crate::store::{self, Tx};

/// The default pipeline: key, 中文, English, probability, outcome.
pub const DEFAULT_STAGES: &[(&str, &str, &str, i64, DealStatus)] = &[
    ("initial_contact", "初步接触", "Initial contact", 10, DealStatus::Open),
    ("needs_analysis", "需求分析", "Needs analysis", 25, DealStatus::Open),
    ("proposal", "方案报价", "Proposal", 50, DealStatus::Open),
    ("negotiation", "商务谈判", "Negotiation", 70, DealStatus::Open),
    ("contract", "合同签订", "Contract", 90, DealStatus::Open),
    ("won", "赢单", "Won", 100, DealStatus::Won),
    ("lost", "输单", "Lost", 0, DealStatus::Lost),
];

/// Creates an org with the default stages. Orgs are created by operators (CLI), never from chat.
pub async fn create_org(tx: &mut Tx, name: &str, timezone: &str, via: Via, now: DateTime<Utc>) -> Result<Org> {
    let name = super::clean_text("组织名称", "org name", name, 100)?;
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(invalid(
            format!("时区「{timezone}」无效，例如 Asia/Shanghai"),
            format!("`{timezone}` is not a time zone such as Asia/Shanghai"),
        ));
    }
    if store::orgs::by_name(tx, &name).await?.is_some() {
        return Err(CrmError::Conflict(text(format!("组织「{name}」已存在"), format!("org `{name}` already exists"))));
    }
    let org = store::orgs::insert(tx, &name, timezone, now).await?;
    for (i, (key, zh, en, p, outcome)) in DEFAULT_STAGES.iter().enumerate() {
        let stage = Stage {
            key: (*key).into(),
            name_zh: (*zh).into(),
            name_en: (*en).into(),
            probability: *p,
            position: i as i64,
            outcome: *outcome,
        };
        store::orgs::insert_stage(tx, org.id, &stage).await?;
    }
    let ctx = Ctx::new(Actor::system(org.id), via, now);
    audit(tx, &ctx, "create", "org", org.id, None::<&()>, Some(&org)).await?;
    Ok(org)
}

pub async fn org_by_name(tx: &mut Tx, name: &str) -> Result<Org> {
    store::orgs::by_name(tx, name)
        .await?
        .ok_or_else(|| not_found(format!("没有名为「{name}」的组织"), format!("no org named `{name}`")))
}

pub async fn org_by_id(tx: &mut Tx, id: i64) -> Result<Org> {
    store::orgs::by_id(tx, id)
        .await?
        .ok_or_else(|| not_found(format!("组织 {id} 不存在"), format!("org {id} does not exist")))
}

pub async fn stages(tx: &mut Tx, org_id: i64) -> Result<Vec<Stage>> {
    Ok(store::orgs::stages(tx, org_id).await?)
}

/// Finds a stage by key, Chinese or English name (case-insensitive).
pub async fn find_stage(tx: &mut Tx, org_id: i64, what: &str) -> Result<Stage> {
    let want = what.trim().to_lowercase();
    let all = stages(tx, org_id).await?;
    let names = all.iter().map(|s| s.name_zh.as_str()).collect::<Vec<_>>().join("、");
    all.iter()
        .find(|s| s.key == want || s.name_zh == what.trim() || s.name_en.to_lowercase() == want)
        .cloned()
        .ok_or_else(|| {
            invalid(format!("没有「{what}」这个阶段；可用：{names}"), format!("no stage `{what}`; stages are: {names}"))
        })
}
