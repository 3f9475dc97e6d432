//! Customers: creation with duplicate detection, reads and updates under the ownership rules,
//! contacts, and finding a customer from what a rep typed.

use serde::Serialize;

use super::matching::{self, Candidate, MatchKind, MatchOutcome};
use super::{
    Activity, Contact, CrmError, Ctx, Customer, Deal, Grade, Result, Role, audit, clean_opt, clean_text, forbidden,
    not_found, text,
};
use crate::store::customers::{CustomerUpdate, NewContactRow, NewCustomerRow};
use crate::store::{self, Tx};
use crate::webhooks::{self, EventType};

#[derive(Debug, Default, Clone)]
pub struct NewCustomer {
    pub name: String,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    pub grade: Option<Grade>,
    /// Defaults to the acting user; only managers and admins may name someone else.
    pub owner_id: Option<i64>,
    pub tags: Vec<String>,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct CustomerPatch {
    pub industry: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    pub grade: Option<Grade>,
    pub owner_id: Option<i64>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerDetail {
    pub customer: Customer,
    pub tags: Vec<String>,
    pub contacts: Vec<Contact>,
    pub recent_activities: Vec<Activity>,
    pub deals: Vec<Deal>,
    /// The org's stages, to name the deals' stages.
    pub stages: Vec<super::Stage>,
}

/// The audited shape of a customer: its fields and tags.
#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(flatten)]
    customer: &'a Customer,
    tags: &'a [String],
}

fn denied() -> CrmError {
    forbidden("这个客户不归你负责，无权查看或修改", "this customer is not yours to view or change")
}

/// "Already exists", naming the record and its owner only to someone who may see it: a rep must
/// not learn another team's customers by trying names.
pub(crate) fn already_exists(ctx: &Ctx, existing: &Customer) -> CrmError {
    if ctx.actor.can_access(existing.owner_id, existing.owner_team_id) {
        let owner = existing.owner_name.clone().unwrap_or_else(|| "无".into());
        CrmError::Conflict(text(
            format!("客户「{}」已存在（#{}，负责人：{owner}）", existing.name, existing.id),
            format!("customer `{}` already exists (#{}, owner: {owner})", existing.name, existing.id),
        ))
    } else {
        CrmError::Conflict(text(
            "这个客户已经有人负责了，不能重复建。需要接手请找经理。",
            "this customer already exists and has an owner; ask your manager if you should take it over",
        ))
    }
}

fn check_tag(tag: &str) -> Result<String> {
    let t = clean_text("标签", "tag", tag.trim_start_matches('#'), 30)?;
    Ok(t)
}

/// Checks that `owner_id` may be given records by this actor: self always; others only for
/// managers (within their team) and admins.
async fn check_owner(tx: &mut Tx, ctx: &Ctx, owner_id: i64) -> Result<()> {
    if Some(owner_id) == ctx.actor.user_id {
        return Ok(());
    }
    let owner = super::users::user_by_id(tx, ctx.org_id(), owner_id).await?;
    let allowed = match ctx.actor.role {
        Role::Admin => true,
        Role::Manager => owner.team_id.is_some() && owner.team_id == ctx.actor.team_id,
        Role::Rep => false,
    };
    if !allowed {
        return Err(forbidden(
            "你不能把客户分给团队以外的人或替别人创建",
            "you cannot give records to someone outside your team",
        ));
    }
    if !owner.active {
        return Err(super::invalid(
            format!("{} 已停用，不能负责客户", owner.name),
            format!("{} is inactive and cannot own records", owner.name),
        ));
    }
    Ok(())
}

pub async fn create_customer(tx: &mut Tx, ctx: &Ctx, new: NewCustomer) -> Result<Customer> {
    let name = matching::clean_display_name(&new.name);
    let name = clean_text("客户名称", "customer name", &name, 100)?;
    let norm = matching::normalize_name(&name);
    if norm.is_empty() {
        return Err(super::invalid(
            format!("客户名称「{name}」里没有可用的字"),
            format!("customer name `{name}` has no usable characters"),
        ));
    }
    if let Some(existing) = store::customers::by_norm(tx, ctx.org_id(), &norm).await? {
        return Err(already_exists(ctx, &existing));
    }
    let owner_id = new.owner_id.or(ctx.actor.user_id);
    if let Some(owner) = owner_id {
        check_owner(tx, ctx, owner).await?;
    }
    let (pinyin, initials) = matching::pinyin_keys(&norm);
    let industry = clean_opt("行业", "industry", new.industry.as_deref(), 50)?;
    let region = clean_opt("地区", "region", new.region.as_deref(), 50)?;
    let source = clean_opt("来源", "source", new.source.as_deref(), 50)?;
    let id = store::customers::insert(
        tx,
        &NewCustomerRow {
            org_id: ctx.org_id(),
            name: &name,
            name_norm: &norm,
            name_pinyin: &pinyin,
            name_initials: &initials,
            industry: industry.as_deref(),
            region: region.as_deref(),
            source: source.as_deref(),
            grade: new.grade,
            owner_id,
            now: ctx.now,
        },
    )
    .await?;
    let mut tags = Vec::new();
    for tag in &new.tags {
        let tag = check_tag(tag)?;
        store::customers::add_tag(tx, id, &tag).await?;
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    let customer = load(tx, ctx.org_id(), id).await?;
    let snapshot = Snapshot { customer: &customer, tags: &tags };
    audit(tx, ctx, "create", "customer", id, None::<&()>, Some(&snapshot)).await?;
    webhooks::emit(
        tx,
        ctx.org_id(),
        EventType::CustomerCreated,
        &id.to_string(),
        || webhooks::record(&snapshot, &[]),
        ctx.now,
    )
    .await?;
    Ok(customer)
}

async fn load(tx: &mut Tx, org_id: i64, id: i64) -> Result<Customer> {
    store::customers::by_id(tx, org_id, id)
        .await?
        .ok_or_else(|| not_found(format!("客户 #{id} 不存在"), format!("customer #{id} does not exist")))
}

/// Reads a customer the actor may see; another org's customer is simply not found.
pub async fn get_customer(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<Customer> {
    let c = load(tx, ctx.org_id(), id).await?;
    if !ctx.actor.can_access(c.owner_id, c.owner_team_id) {
        return Err(denied());
    }
    Ok(c)
}

pub async fn customer_detail(tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<CustomerDetail> {
    let customer = get_customer(tx, ctx, id).await?;
    Ok(CustomerDetail {
        tags: store::customers::tags(tx, id).await?,
        contacts: store::customers::contacts(tx, id).await?,
        recent_activities: store::activities::latest_for_customer(tx, id).await?,
        // Deals of the customer owned by someone the viewer may not see stay hidden.
        deals: store::deals::for_customer(tx, id)
            .await?
            .into_iter()
            .filter(|d| ctx.actor.can_access(Some(d.owner_id), d.owner_team_id))
            .collect(),
        stages: store::orgs::stages(tx, ctx.org_id()).await?,
        customer,
    })
}

pub async fn update_customer(tx: &mut Tx, ctx: &Ctx, id: i64, patch: CustomerPatch) -> Result<Customer> {
    let before = get_customer(tx, ctx, id).await?;
    let before_tags = store::customers::tags(tx, id).await?;
    if let Some(owner) = patch.owner_id.filter(|o| Some(*o) != before.owner_id) {
        if ctx.actor.role == Role::Rep {
            return Err(forbidden(
                "只有经理或管理员可以更换客户负责人",
                "only managers and admins can change a customer's owner",
            ));
        }
        check_owner(tx, ctx, owner).await?;
    }
    let industry = clean_opt("行业", "industry", patch.industry.as_deref(), 50)?.or(before.industry.clone());
    let region = clean_opt("地区", "region", patch.region.as_deref(), 50)?.or(before.region.clone());
    let source = clean_opt("来源", "source", patch.source.as_deref(), 50)?.or(before.source.clone());
    // Validate every tag before writing anything, so a refusal leaves the row untouched.
    let add_tags = patch.add_tags.iter().map(|t| check_tag(t)).collect::<Result<Vec<_>>>()?;
    let remove_tags = patch.remove_tags.iter().map(|t| check_tag(t)).collect::<Result<Vec<_>>>()?;
    store::customers::update(
        tx,
        ctx.org_id(),
        id,
        &CustomerUpdate {
            industry: industry.as_deref(),
            region: region.as_deref(),
            source: source.as_deref(),
            grade: patch.grade.or(before.grade),
            owner_id: patch.owner_id.or(before.owner_id),
            now: ctx.now,
        },
    )
    .await?;
    for tag in &add_tags {
        store::customers::add_tag(tx, id, tag).await?;
    }
    for tag in &remove_tags {
        store::customers::remove_tag(tx, id, tag).await?;
    }
    let after = load(tx, ctx.org_id(), id).await?;
    let after_tags = store::customers::tags(tx, id).await?;
    audit(
        tx,
        ctx,
        "update",
        "customer",
        id,
        Some(&Snapshot { customer: &before, tags: &before_tags }),
        Some(&Snapshot { customer: &after, tags: &after_tags }),
    )
    .await?;
    Ok(after)
}

pub struct NewContact<'a> {
    pub name: &'a str,
    pub title: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub wechat: Option<&'a str>,
    pub email: Option<&'a str>,
}

pub async fn add_contact(tx: &mut Tx, ctx: &Ctx, customer_id: i64, new: NewContact<'_>) -> Result<Contact> {
    get_customer(tx, ctx, customer_id).await?;
    let name = clean_text("联系人姓名", "contact name", new.name, 50)?;
    let title = clean_opt("职务", "title", new.title, 50)?;
    let phone = clean_opt("电话", "phone", new.phone, 30)?;
    let wechat = clean_opt("微信", "WeChat", new.wechat, 50)?;
    let email = clean_opt("邮箱", "email", new.email, 100)?;
    if let Some(e) = &email
        && !e.contains('@')
    {
        return Err(super::invalid(format!("邮箱「{e}」格式不对"), format!("`{e}` is not an e-mail address")));
    }
    let contact = store::customers::insert_contact(
        tx,
        &NewContactRow {
            org_id: ctx.org_id(),
            customer_id,
            name: &name,
            title: title.as_deref(),
            phone: phone.as_deref(),
            wechat: wechat.as_deref(),
            email: email.as_deref(),
            now: ctx.now,
        },
    )
    .await?;
    audit(tx, ctx, "create", "contact", contact.id, None::<&()>, Some(&contact)).await?;
    Ok(contact)
}

/// Customers the actor may see (`owned_only`: just their own).
pub async fn list_customers(tx: &mut Tx, ctx: &Ctx, owned_only: bool) -> Result<Vec<Customer>> {
    Ok(store::customers::list_visible(tx, &ctx.actor, owned_only).await?)
}

/// Finds a customer among those the actor may see: exact, normalised, contained, pinyin, fuzzy.
pub async fn find_customer(tx: &mut Tx, ctx: &Ctx, query: &str) -> Result<MatchOutcome> {
    // Normalised names are unique per org, so the visible customer whose normalised name is the
    // query's is the only possible exact or normalised hit, and those tiers win over the looser
    // ones: one indexed read answers most messages, instead of loading every visible customer
    // (which only the contains, pinyin and fuzzy tiers need).
    let norm = matching::normalize_name(query);
    if !norm.is_empty()
        && let Some(c) = store::customers::by_norm(tx, ctx.org_id(), &norm).await?
        && ctx.actor.can_access(c.owner_id, c.owner_team_id)
    {
        let out = matching::match_customer(query, &[candidate(c)], 5);
        if matches!(&out, MatchOutcome::One(r) if matches!(r.kind, MatchKind::Exact | MatchKind::Normalized)) {
            return Ok(out);
        }
    }
    let visible = list_customers(tx, ctx, false).await?;
    let candidates: Vec<Candidate> = visible.into_iter().map(candidate).collect();
    Ok(matching::match_customer(query, &candidates, 5))
}

fn candidate(c: Customer) -> Candidate {
    Candidate {
        id: c.id,
        name: c.name,
        name_norm: c.name_norm,
        name_pinyin: c.name_pinyin,
        name_initials: c.name_initials,
    }
}
