//! Leads (线索): intake with duplicate detection, assignment, claiming from the public pool.

use serde::Serialize;

use super::matching;
use super::{
    CrmError, Ctx, Lead, LeadStatus, Result, Role, audit, clean_opt, clean_text, forbidden, invalid, not_found, text,
};
use crate::store::leads::NewLeadRow;
use crate::store::{self, Tx};
use crate::webhooks::{self, EventType};

#[derive(Debug, Default, Clone)]
pub struct NewLead {
    pub company: String,
    pub contact_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    /// Put the lead in the public pool instead of giving it to the creator.
    pub to_pool: bool,
    /// Conditions for the assignment rules.
    pub tags: Vec<String>,
}

/// What an intake did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Intake {
    /// A new lead; `routed` says who got it and why when rules assigned it.
    Created { lead: Lead, routed: Option<super::lead_rules::Routed> },
    /// An open lead with the same phone or company exists: the submission is recorded on it and
    /// no second lead is made.
    Duplicate { lead: Lead, owner_name: Option<String> },
    /// The company is already a customer.
    Customer { customer: super::Customer },
}

/// Phone numbers as people write them → digits only, without the +86 / 0086 country code.
/// `None` when nothing phone-like is left.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw
        .chars()
        .filter_map(|c| {
            // Full-width digits arrive from Chinese input methods.
            let c = if ('０'..='９').contains(&c) {
                char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c)
            } else {
                c
            };
            c.is_ascii_digit().then_some(c)
        })
        .collect();
    let local = if let Some(rest) = digits.strip_prefix("0086") {
        rest.to_string()
    } else if digits.len() == 13 && digits.starts_with("86") {
        digits[2..].to_string()
    } else {
        digits
    };
    (local.len() >= 5).then_some(local)
}

/// The stored dedupe key: the phone when there is one, else the normalised company name.
pub fn dedupe_key(phone_norm: Option<&str>, company_norm: &str) -> String {
    match phone_norm {
        Some(p) => format!("phone:{p}"),
        None => format!("company:{company_norm}"),
    }
}

/// A lead from chat: a rep's own lead is theirs; a manager's or admin's goes by the rules. A
/// duplicate or an existing customer is refused with who has it (where the user may know).
pub async fn create_lead(tx: &mut Tx, ctx: &Ctx, new: NewLead) -> Result<Lead> {
    match intake(tx, ctx, new).await? {
        Intake::Created { lead, .. } => Ok(lead),
        Intake::Duplicate { lead, owner_name } => Err(duplicate_refusal(ctx, &lead, owner_name)),
        Intake::Customer { customer } => Err(super::customers::already_exists(ctx, &customer)),
    }
}

/// The refusal of a lead that duplicates `lead`: which lead and whose it is only when the user may
/// see that lead (it is in the pool, or theirs, or their team's); otherwise a neutral answer, as
/// anyone could look up other teams' phone numbers and companies by entering them as leads.
pub fn duplicate_refusal(ctx: &Ctx, lead: &Lead, owner_name: Option<String>) -> CrmError {
    let visible = lead.status == LeadStatus::Pool || ctx.actor.can_access(lead.owner_id, lead.owner_team_id);
    if !visible {
        return CrmError::Conflict(text(
            "这条线索已经有人在跟进了，不能重复登记。需要接手请找经理。",
            "this lead is already being worked by someone; ask your manager if you should take it over",
        ));
    }
    let owner = owner_name.unwrap_or_else(|| "公海".into());
    CrmError::Conflict(text(
        format!("线索已存在：#{} {}（负责人：{owner}），没有重复登记。", lead.id, lead.company),
        format!("this lead already exists: #{} {} (owner: {owner}); not recorded twice", lead.id, lead.company),
    ))
}

/// Takes in a lead from any channel (chat, API, CSV): dedupes it against open leads (phone or
/// company) and customers, then gives it an owner — the rep who entered it, the pool when asked,
/// or else the assignment rules.
pub async fn intake(tx: &mut Tx, ctx: &Ctx, new: NewLead) -> Result<Intake> {
    let company = clean_text("公司名称", "company", &matching::clean_display_name(&new.company), 100)?;
    let company_norm = matching::normalize_name(&company);
    if company_norm.is_empty() {
        return Err(invalid("公司名称不能为空", "the company name is empty"));
    }
    let phone = clean_opt("电话", "phone", new.phone.as_deref(), 30)?;
    let phone_norm = phone.as_deref().and_then(normalize_phone);
    if phone.is_some() && phone_norm.is_none() {
        return Err(invalid("电话号码看不懂，例如 13800000000", "that phone number does not parse, e.g. 13800000000"));
    }
    let contact_name = clean_opt("联系人", "contact", new.contact_name.as_deref(), 50)?;
    let email = clean_opt("邮箱", "email", new.email.as_deref(), 100)?;
    let source = clean_opt("来源", "source", new.source.as_deref(), 50)?;
    let region = clean_opt("地区", "region", new.region.as_deref(), 50)?;
    let industry = clean_opt("行业", "industry", new.industry.as_deref(), 50)?;
    let mut tags: Vec<String> = Vec::new();
    for t in &new.tags {
        let t = clean_text("标签", "tag", t, 30)?.replace(',', " ");
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    // Two submissions of one company must not both pass the duplicate check, and the round-robin
    // cursor must not be read twice: whatever the channel, one intake of an org at a time.
    store::orgs::lock_for_intake(tx, ctx.org_id()).await?;
    let dupes = store::leads::open_duplicates(tx, ctx.org_id(), phone_norm.as_deref(), &company_norm).await?;
    if let Some(d) = dupes.into_iter().next() {
        let owner_name = match d.owner_id {
            Some(o) => Some(super::users::user_by_id(tx, ctx.org_id(), o).await?.name),
            None => None,
        };
        // Linked, not lost: the submission is kept on the existing lead's history (from the API
        // and CSV; a refused chat lead rolls it back with the rest of the message).
        let submitted = serde_json::json!({
            "company": company, "contact_name": contact_name, "phone": phone, "email": email,
            "source": source, "region": region, "industry": industry, "tags": tags,
        });
        audit(tx, ctx, "duplicate_submission", "lead", d.id, None::<&()>, Some(&submitted)).await?;
        return Ok(Intake::Duplicate { lead: d, owner_name });
    }
    if let Some(c) = store::customers::by_norm(tx, ctx.org_id(), &company_norm).await? {
        return Ok(Intake::Customer { customer: c });
    }
    let facts = super::lead_rules::LeadFacts {
        region: region.as_deref(),
        industry: industry.as_deref(),
        source: source.as_deref(),
        tags: &tags,
    };
    let (owner_id, status, routed) = match (new.to_pool, ctx.actor.user_id, ctx.actor.role) {
        (true, _, _) => (None, LeadStatus::Pool, None),
        (false, Some(me), Role::Rep) => (Some(me), LeadStatus::Assigned, None),
        _ => {
            let routed = super::lead_rules::route(tx, ctx, &facts).await?;
            let status = if routed.user_id.is_some() { LeadStatus::Assigned } else { LeadStatus::Pool };
            (routed.user_id, status, Some(routed))
        }
    };
    let reason = match (&routed, owner_id) {
        (Some(r), _) => Some(r.reason.clone()),
        (None, Some(_)) => Some("自己登记".to_string()),
        (None, None) => Some("登记到公海".to_string()),
    };
    let key = dedupe_key(phone_norm.as_deref(), &company_norm);
    let tags_text = tags.join(",");
    let id = store::leads::insert(
        tx,
        &NewLeadRow {
            org_id: ctx.org_id(),
            company: &company,
            company_norm: &company_norm,
            contact_name: contact_name.as_deref(),
            phone: phone.as_deref(),
            phone_norm: phone_norm.as_deref(),
            email: email.as_deref(),
            source: source.as_deref(),
            region: region.as_deref(),
            industry: industry.as_deref(),
            status,
            owner_id,
            dedupe_key: &key,
            customer_id: None,
            tags: &tags_text,
            assign_reason: reason.as_deref(),
            now: ctx.now,
        },
    )
    .await?;
    let lead = load(tx, ctx, id).await?;
    audit(tx, ctx, "create", "lead", id, None::<&()>, Some(&lead)).await?;
    if lead.owner_id.is_some() {
        lead_assigned(tx, ctx, &lead).await?;
    }
    Ok(Intake::Created { lead, routed })
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Lead> {
    store::leads::by_id(tx, ctx.org_id(), id)
        .await?
        .ok_or_else(|| not_found(format!("线索 #{id} 不存在"), format!("lead #{id} does not exist")))
}

/// Reads a lead: owners and their managers; anyone may see leads waiting in the public pool.
pub async fn get_lead(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Lead> {
    let lead = load(tx, ctx, id).await?;
    let in_pool = lead.status == LeadStatus::Pool;
    if !in_pool && !ctx.actor.can_access(lead.owner_id, lead.owner_team_id) {
        return Err(forbidden("这条线索不归你负责", "this lead is not yours"));
    }
    Ok(lead)
}

#[derive(Serialize)]
struct Assignment<'a> {
    lead: &'a Lead,
    reason: &'a str,
}

/// A manager or admin gives a lead to a user (a manager only within their team).
pub async fn assign_lead(tx: &mut Tx, ctx: &Ctx, id: i64, to_user: i64) -> Result<Lead> {
    super::require_manager(ctx, "只有经理或管理员可以分配线索", "only managers and admins can assign leads")?;
    let before = get_lead(tx, ctx, id).await?;
    check_open(&before)?;
    let user = super::users::user_by_id(tx, ctx.org_id(), to_user).await?;
    if ctx.actor.role == Role::Manager && (user.team_id.is_none() || user.team_id != ctx.actor.team_id) {
        return Err(forbidden("只能分配给你团队里的人", "you can only assign to people in your team"));
    }
    if !user.active {
        return Err(invalid(format!("{} 已停用", user.name), format!("{} is inactive", user.name)));
    }
    let reason = format!("{} 手动分配", ctx.actor.user_id.map_or("系统".to_string(), |u| format!("#{u}")));
    store::leads::set_owner_status(
        tx,
        ctx.org_id(),
        id,
        Some(user.id),
        LeadStatus::Assigned,
        before.customer_id,
        ctx.now,
        Some(&reason),
    )
    .await?;
    let after = load(tx, ctx, id).await?;
    audit(tx, ctx, "assign", "lead", id, Some(&before), Some(&Assignment { lead: &after, reason: "manual" })).await?;
    lead_assigned(tx, ctx, &after).await?;
    Ok(after)
}

/// `lead.assigned`, once per lead, owner and moment of assignment.
async fn lead_assigned(tx: &mut Tx, ctx: &Ctx, lead: &Lead) -> Result<()> {
    let owner = lead.owner_id.unwrap_or_default();
    let key = format!("{}:{owner}:{}", lead.id, lead.assigned_at.unwrap_or(ctx.now).timestamp_millis());
    webhooks::emit(tx, ctx.org_id(), EventType::LeadAssigned, &key, || webhooks::record(lead, &[]), ctx.now).await?;
    Ok(())
}

/// A rep takes a lead from the public pool.
pub async fn claim_lead(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Lead> {
    let Some(me) = ctx.actor.user_id else {
        return Err(invalid("只有具体用户可以认领线索", "only a user can claim a lead"));
    };
    let before = load(tx, ctx, id).await?;
    if before.status != LeadStatus::Pool {
        return Err(invalid(
            format!("线索 #{id} 不在公海里，不能认领"),
            format!("lead #{id} is not in the public pool"),
        ));
    }
    store::leads::set_owner_status(
        tx,
        ctx.org_id(),
        id,
        Some(me),
        LeadStatus::Assigned,
        before.customer_id,
        ctx.now,
        Some("从公海认领"),
    )
    .await?;
    let after = load(tx, ctx, id).await?;
    audit(tx, ctx, "claim", "lead", id, Some(&before), Some(&after)).await?;
    lead_assigned(tx, ctx, &after).await?;
    Ok(after)
}

/// Moves a lead along: contacted, qualified, discarded, or back to the pool.
pub async fn set_lead_status(tx: &mut Tx, ctx: &Ctx, id: i64, status: LeadStatus) -> Result<Lead> {
    set_lead_status_because(tx, ctx, id, status, None).await
}

/// [`set_lead_status`] with why (a discard or a release), kept in the lead's history; a release's
/// reason also becomes the lead's assignment reason.
pub async fn set_lead_status_because(
    tx: &mut Tx,
    ctx: &Ctx,
    id: i64,
    status: LeadStatus,
    why: Option<&str>,
) -> Result<Lead> {
    let why = clean_opt("原因", "reason", why, 200)?;
    let before = get_lead(tx, ctx, id).await?;
    check_open(&before)?;
    if before.status == LeadStatus::Pool {
        return Err(invalid(format!("请先认领线索 #{id}"), format!("claim lead #{id} first")));
    }
    let owner = match status {
        LeadStatus::Pool => None,
        LeadStatus::Contacted | LeadStatus::Qualified | LeadStatus::Discarded => before.owner_id,
        _ => {
            return Err(invalid(
                "只能改为：已联系、已确认、放弃 或 退回公海",
                "status can only become contacted, qualified, discarded or pool",
            ));
        }
    };
    let released = why.as_deref().map_or_else(|| "退回公海".to_string(), |w| format!("退回公海：{w}"));
    let reason = (status == LeadStatus::Pool).then_some(released.as_str());
    store::leads::set_owner_status(tx, ctx.org_id(), id, owner, status, before.customer_id, ctx.now, reason).await?;
    let after = load(tx, ctx, id).await?;
    let recorded = serde_json::json!({ "lead": &after, "reason": why });
    audit(tx, ctx, "set_status", "lead", id, Some(&before), Some(&recorded)).await?;
    Ok(after)
}

fn check_open(lead: &Lead) -> Result<()> {
    if matches!(lead.status, LeadStatus::Converted | LeadStatus::Discarded) {
        return Err(invalid(
            format!("线索 #{} 已经关闭（{}）", lead.id, lead.status),
            format!("lead #{} is closed ({})", lead.id, lead.status),
        ));
    }
    Ok(())
}

/// What a conversion made.
#[derive(Debug, Clone, Serialize)]
pub struct Converted {
    pub lead: Lead,
    pub customer: super::Customer,
    /// True when the customer existed and the lead was linked to it.
    pub linked: bool,
    /// The initial-contact deal opened for it.
    pub deal: super::Deal,
}

/// Turns a lead into a customer (with its contact person and phone) owned by the lead's owner,
/// or links it to the customer of that name when there is one the user may see, and opens an
/// initial-contact deal. The lead keeps its history and points at the customer.
pub async fn convert_lead(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Converted> {
    let before = get_lead(tx, ctx, id).await?;
    check_open(&before)?;
    if before.status == LeadStatus::Pool {
        return Err(invalid(format!("请先认领线索 #{id}"), format!("claim lead #{id} first")));
    }
    let existing = store::customers::by_norm(tx, ctx.org_id(), &before.company_norm).await?;
    let (customer, linked) = match existing {
        Some(c) => (super::customers::get_customer(tx, ctx, c.id).await?, true),
        None => {
            let c = super::customers::create_customer(
                tx,
                ctx,
                super::customers::NewCustomer {
                    name: before.company.clone(),
                    industry: before.industry.clone(),
                    region: before.region.clone(),
                    source: before.source.clone(),
                    grade: None,
                    owner_id: before.owner_id,
                    tags: Vec::new(),
                },
            )
            .await?;
            (c, false)
        }
    };
    if !linked && (before.contact_name.is_some() || before.phone.is_some() || before.email.is_some()) {
        let name = before.contact_name.clone().unwrap_or_else(|| "联系人".into());
        super::customers::add_contact(
            tx,
            ctx,
            customer.id,
            super::customers::NewContact {
                name: &name,
                title: None,
                phone: before.phone.as_deref(),
                wechat: None,
                email: before.email.as_deref(),
            },
        )
        .await?;
    }
    let deal = super::deals::create_deal(
        tx,
        ctx,
        super::deals::NewDeal {
            customer_id: customer.id,
            title: format!("{}（线索 #{id}）", before.company),
            amount_fen: 0,
            stage: None,
            expected_close: None,
            owner_id: before.owner_id,
        },
    )
    .await?;
    store::leads::set_owner_status(
        tx,
        ctx.org_id(),
        id,
        before.owner_id,
        LeadStatus::Converted,
        Some(customer.id),
        ctx.now,
        None,
    )
    .await?;
    let lead = load(tx, ctx, id).await?;
    audit(tx, ctx, "convert", "lead", id, Some(&before), Some(&lead)).await?;
    Ok(Converted { lead, customer, linked, deal })
}

pub async fn pool(tx: &mut Tx, ctx: &Ctx) -> Result<Vec<Lead>> {
    Ok(store::leads::in_pool(tx, ctx.org_id()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise() {
        assert_eq!(normalize_phone("+86 138-0000-0000").as_deref(), Some("13800000000"));
        assert_eq!(normalize_phone("0086 13800000000").as_deref(), Some("13800000000"));
        assert_eq!(normalize_phone("１３８００００００００").as_deref(), Some("13800000000"));
        assert_eq!(normalize_phone("0532-8888 1234").as_deref(), Some("053288881234"));
        assert_eq!(normalize_phone("abc"), None);
        assert_eq!(normalize_phone(""), None);
    }
}
