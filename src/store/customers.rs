//! Customers, their tags and contacts.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::crm::model::{Actor, Contact, Customer, Grade};
use crate::run;

macro_rules! customer_select {
    () => {
        "SELECT c.id, c.org_id, c.name, c.name_norm, c.name_pinyin, c.name_initials, c.industry,
                c.region, c.source, c.grade, c.owner_id, u.name AS owner_name,
                u.team_id AS owner_team_id, c.last_contacted_at, c.created_at, c.updated_at
         FROM customers c LEFT JOIN users u ON u.id = c.owner_id "
    };
}

/// `$1` org, `$2` role, `$3` user id, `$4` team id: the rows the actor may see (see `Actor::can_access`).
macro_rules! visible_to_actor {
    () => {
        "WHERE c.org_id = $1
           AND ($2 = 'admin' OR c.owner_id = $3
                OR ($2 = 'manager' AND (c.owner_id IS NULL OR u.team_id = $4))) "
    };
}

pub struct NewCustomerRow<'a> {
    pub org_id: i64,
    pub name: &'a str,
    pub name_norm: &'a str,
    pub name_pinyin: &'a str,
    pub name_initials: &'a str,
    pub industry: Option<&'a str>,
    pub region: Option<&'a str>,
    pub source: Option<&'a str>,
    pub grade: Option<Grade>,
    pub owner_id: Option<i64>,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, r: &NewCustomerRow<'_>) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO customers (org_id, name, name_norm, name_pinyin, name_initials, industry, region,
                                source, grade, owner_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id"
    )
    .bind(r.org_id)
    .bind(r.name)
    .bind(r.name_norm)
    .bind(r.name_pinyin)
    .bind(r.name_initials)
    .bind(r.industry)
    .bind(r.region)
    .bind(r.source)
    .bind(r.grade)
    .bind(r.owner_id)
    .bind(r.now)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<Option<Customer>> {
    run!(tx, |c| sqlx::query_as(concat!(customer_select!(), "WHERE c.org_id = $1 AND c.id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

pub async fn by_norm(tx: &mut Tx, org_id: i64, name_norm: &str) -> sqlx::Result<Option<Customer>> {
    run!(tx, |c| sqlx::query_as(concat!(customer_select!(), "WHERE c.org_id = $1 AND c.name_norm = $2"))
        .bind(org_id)
        .bind(name_norm)
        .fetch_optional(c)
        .await)
}

/// Customers the actor may see; `owned_only` narrows to the actor's own.
pub async fn list_visible(tx: &mut Tx, actor: &Actor, owned_only: bool) -> sqlx::Result<Vec<Customer>> {
    run!(tx, |c| sqlx::query_as(concat!(
        customer_select!(),
        visible_to_actor!(),
        "AND ($5 = FALSE OR c.owner_id = $3) ORDER BY c.name, c.id"
    ))
    .bind(actor.org_id)
    .bind(actor.role)
    .bind(actor.user_id)
    .bind(actor.team_id)
    .bind(owned_only)
    .fetch_all(c)
    .await)
}

/// The actor's own customers of `grade` not contacted since `before` (or never).
pub async fn quiet(
    tx: &mut Tx,
    org_id: i64,
    owner_id: i64,
    grade: Grade,
    before: DateTime<Utc>,
) -> sqlx::Result<Vec<Customer>> {
    run!(tx, |c| sqlx::query_as(concat!(
        customer_select!(),
        "WHERE c.org_id = $1 AND c.owner_id = $2 AND c.grade = $3
           AND (c.last_contacted_at IS NULL OR c.last_contacted_at < $4)
         ORDER BY c.last_contacted_at, c.id"
    ))
    .bind(org_id)
    .bind(owner_id)
    .bind(grade)
    .bind(before)
    .fetch_all(c)
    .await)
}

pub struct CustomerUpdate<'a> {
    pub industry: Option<&'a str>,
    pub region: Option<&'a str>,
    pub source: Option<&'a str>,
    pub grade: Option<Grade>,
    pub owner_id: Option<i64>,
    pub now: DateTime<Utc>,
}

/// Writes all mutable fields (the service merges the patch into the current row first).
pub async fn update(tx: &mut Tx, org_id: i64, id: i64, u: &CustomerUpdate<'_>) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "UPDATE customers SET industry = $3, region = $4, source = $5, grade = $6, owner_id = $7,
                updated_at = $8
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org_id)
    .bind(id)
    .bind(u.industry)
    .bind(u.region)
    .bind(u.source)
    .bind(u.grade)
    .bind(u.owner_id)
    .bind(u.now)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn touch_contacted(tx: &mut Tx, id: i64, at: DateTime<Utc>) -> sqlx::Result<()> {
    // Only move forward: logging an older activity must not make a customer look quieter.
    run!(tx, |c| sqlx::query(
        "UPDATE customers SET last_contacted_at = $2
         WHERE id = $1 AND (last_contacted_at IS NULL OR last_contacted_at < $2)"
    )
    .bind(id)
    .bind(at)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn tags(tx: &mut Tx, customer_id: i64) -> sqlx::Result<Vec<String>> {
    run!(tx, |c| sqlx::query_scalar("SELECT tag FROM customer_tags WHERE customer_id = $1 ORDER BY tag")
        .bind(customer_id)
        .fetch_all(c)
        .await)
}

pub async fn add_tag(tx: &mut Tx, customer_id: i64, tag: &str) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(customer_id)
        .bind(tag)
        .execute(c)
        .await
        .map(|_| ()))
}

pub async fn remove_tag(tx: &mut Tx, customer_id: i64, tag: &str) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query("DELETE FROM customer_tags WHERE customer_id = $1 AND tag = $2")
        .bind(customer_id)
        .bind(tag)
        .execute(c)
        .await
        .map(|_| ()))
}

pub struct NewContactRow<'a> {
    pub org_id: i64,
    pub customer_id: i64,
    pub name: &'a str,
    pub title: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub wechat: Option<&'a str>,
    pub email: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub async fn insert_contact(tx: &mut Tx, r: &NewContactRow<'_>) -> sqlx::Result<Contact> {
    run!(tx, |c| sqlx::query_as(
        "INSERT INTO contacts (org_id, customer_id, name, title, phone, wechat, email, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, customer_id, name, title, phone, wechat, email"
    )
    .bind(r.org_id)
    .bind(r.customer_id)
    .bind(r.name)
    .bind(r.title)
    .bind(r.phone)
    .bind(r.wechat)
    .bind(r.email)
    .bind(r.now)
    .fetch_one(c)
    .await)
}

pub async fn contacts(tx: &mut Tx, customer_id: i64) -> sqlx::Result<Vec<Contact>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT id, customer_id, name, title, phone, wechat, email FROM contacts
         WHERE customer_id = $1 ORDER BY id"
    )
    .bind(customer_id)
    .fetch_all(c)
    .await)
}

/// API filters for customers.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub owner_id: Option<i64>,
    pub grade: Option<String>,
    pub tag: Option<String>,
    /// Part of the name.
    pub name: Option<String>,
}

pub async fn page(tx: &mut Tx, page: &super::Page, f: &CustomerFilter) -> sqlx::Result<Vec<Customer>> {
    crate::api_page!(tx, Customer, concat!(customer_select!(), "WHERE c.org_id = "), "c.owner_id", "c.id", page, |qb| {
        if let Some(owner) = f.owner_id {
            qb.push(" AND c.owner_id = ").push_bind(owner);
        }
        if let Some(grade) = &f.grade {
            qb.push(" AND c.grade = ").push_bind(grade.clone());
        }
        if let Some(tag) = &f.tag {
            qb.push(" AND EXISTS (SELECT 1 FROM customer_tags t WHERE t.customer_id = c.id AND t.tag = ")
                .push_bind(tag.clone())
                .push(")");
        }
        if let Some(name) = &f.name {
            // A substring of the name, LIKE metacharacters taken literally.
            let pattern = format!("%{}%", name.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            qb.push(" AND c.name LIKE ").push_bind(pattern).push(" ESCAPE '\\'");
        }
    })
}
