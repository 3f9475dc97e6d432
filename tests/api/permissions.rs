//! The authorisation matrix through the public services: who may read and change which records,
//! which lists each user sees, and which actions need a manager or an admin. Another org's
//! records are never admitted to exist, and every refusal explains itself in both languages.

use std::collections::BTreeSet;
use std::fmt::Debug;

use chatcrm::crm::activities::NewActivity;
use chatcrm::crm::customers::{CustomerPatch, NewContact, NewCustomer};
use chatcrm::crm::deals::{DealPatch, NewDeal};
use chatcrm::crm::leads::NewLead;
use chatcrm::crm::matching::MatchOutcome;
use chatcrm::crm::tasks::NewTask;
use chatcrm::crm::users::NewUser;
use chatcrm::crm::{
    self, ActivityKind, Actor, CrmError, Ctx, Grade, Lang, LeadStatus, Role, TaskOrigin, TaskStatus, User, Via,
};
use chatcrm::store::{Db, Tx};
use chrono::Duration;
use serde::Serialize;

use super::helpers::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    Forbidden,
    /// Another org's record: refused without admitting that it exists.
    NotFound,
}

use Expect::{Allowed, Forbidden, NotFound};

/// Every actor, and what it may do with a record owned by `r1`.
fn matrix(w: &World) -> [(&User, Expect); 7] {
    [
        (&w.r1, Allowed),
        (&w.r2, Forbidden),
        (&w.ma, Allowed),
        (&w.mb, Forbidden),
        (&w.admin, Allowed),
        (&w.admin2, NotFound),
        (&w.r4, NotFound),
    ]
}

/// A refusal must tell the user something, in each language.
fn assert_clear(e: &CrmError, what: &str) {
    let zh = e.user_message(Lang::Zh);
    let en = e.user_message(Lang::En);
    assert!(!zh.trim().is_empty(), "{what}: empty Chinese message for {e:?}");
    assert!(!en.trim().is_empty(), "{what}: empty English message for {e:?}");
    assert_ne!(zh, en, "{what}: the Chinese and English messages are the same");
}

fn assert_outcome<T: Debug>(r: &crm::Result<T>, expect: Expect, what: &str) {
    match expect {
        Allowed => assert!(r.is_ok(), "{what}: expected success, got {r:?}"),
        Forbidden => assert!(is_forbidden(r), "{what}: expected Forbidden, got {r:?}"),
        NotFound => assert!(is_not_found(r), "{what}: expected NotFound, got {r:?}"),
    }
    if let Err(e) = r {
        assert_clear(e, what);
    }
}

fn forbidden<T: Debug>(r: &crm::Result<T>, what: &str) {
    assert_outcome(r, Forbidden, what);
}

fn not_found<T: Debug>(r: &crm::Result<T>, what: &str) {
    assert_outcome(r, NotFound, what);
}

fn snapshot<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serialize record")
}

/// Audit rows of both orgs, as this transaction sees them (its own uncommitted writes included).
async fn audit_rows(tx: &mut Tx, w: &World) -> usize {
    let mut n = 0;
    for org in [w.org.id, w.org2.id] {
        n += chatcrm::store::audit::for_org(tx, org).await.expect("read audit log").len();
    }
    n
}

/// Drives the matrix for one record owned by `r1`: `read` then `write` as every actor, each in
/// its own transaction that is dropped afterwards, so every cell starts from the same state.
/// The checks run inside the attempt's transaction, where a write made before a refusal would
/// still be visible: a refused write leaves the record (re-read as the owner) and the audit log
/// as they were; an allowed one changes the record and adds one audit row, gone with the rollback.
async fn check_matrix<T, R, W>(w: &World, kind: &str, read: R, write: W)
where
    T: Serialize + Debug,
    R: AsyncFn(&mut Tx, &Ctx) -> crm::Result<T>,
    W: AsyncFn(&mut Tx, &Ctx) -> crm::Result<T>,
{
    let owner = w.ctx(&w.r1);
    for (user, expect) in matrix(w) {
        let ctx = w.ctx(user);

        let mut tx = w.tx().await;
        let r = read(&mut tx, &ctx).await;
        assert_outcome(&r, expect, &format!("{kind}: read as {}", user.handle));
        drop(tx);

        let what = format!("{kind}: write as {}", user.handle);
        let committed = w.count("audit_log").await;
        let mut tx = w.tx().await;
        let before = snapshot(&read(&mut tx, &owner).await.expect("owner reads the record"));
        let rows_before = audit_rows(&mut tx, w).await;
        let r = write(&mut tx, &ctx).await;
        assert_outcome(&r, expect, &what);
        let after = snapshot(&read(&mut tx, &owner).await.expect("owner re-reads the record"));
        let rows_after = audit_rows(&mut tx, w).await;
        if expect == Allowed {
            assert_ne!(before, after, "{what}: the record did not change");
            assert_eq!(rows_after, rows_before + 1, "{what}: expected one audit row");
        } else {
            assert_eq!(before, after, "{what}: a refused write changed the record");
            assert_eq!(rows_after, rows_before, "{what}: a refused write left an audit row");
        }
        drop(tx);
        assert_eq!(w.count("audit_log").await, committed, "{what}: an audit row outlived its transaction");
    }
}

async fn customer_matrix(db: Db) {
    let w = World::new(db).await;
    let id = w.customer(&w.r1, "星河电子").await.id;
    check_matrix(
        &w,
        "customer",
        async |tx: &mut Tx, ctx: &Ctx| crm::customers::get_customer(tx, ctx, id).await,
        async |tx: &mut Tx, ctx: &Ctx| {
            let patch = CustomerPatch { grade: Some(Grade::A), add_tags: vec!["key".into()], ..Default::default() };
            crm::customers::update_customer(tx, ctx, id, patch).await
        },
    )
    .await;
}

async fn deal_matrix(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let deal = deal_for(&w, &w.r1, customer.id, "年度框架").await;

    let id = deal.id;
    check_matrix(
        &w,
        "deal",
        async |tx: &mut Tx, ctx: &Ctx| crm::deals::get_deal(tx, ctx, id).await,
        async |tx: &mut Tx, ctx: &Ctx| {
            let patch = DealPatch { stage: Some("proposal".into()), ..Default::default() };
            crm::deals::update_deal(tx, ctx, id, patch).await
        },
    )
    .await;
}

async fn task_matrix(db: Db) {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let new = NewTask {
        title: "回访星河电子".into(),
        due_at: t0() + Duration::days(1),
        owner_id: None,
        customer_id: None,
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    let task = crm::tasks::create_task(&mut tx, &w.ctx(&w.r1), new).await.expect("create task");
    tx.commit().await.expect("commit task");
    assert_eq!(task.owner_id, w.r1.id, "the task belongs to r1");

    let id = task.id;
    check_matrix(
        &w,
        "task",
        async |tx: &mut Tx, ctx: &Ctx| crm::tasks::get_task(tx, ctx, id).await,
        async |tx: &mut Tx, ctx: &Ctx| crm::tasks::complete_task(tx, ctx, id).await,
    )
    .await;
}

async fn lead_matrix(db: Db) {
    let w = World::new(db).await;
    let lead = own_lead(&w, &w.r1, "青山贸易").await;
    let id = lead.id;
    check_matrix(
        &w,
        "lead",
        async |tx: &mut Tx, ctx: &Ctx| crm::leads::get_lead(tx, ctx, id).await,
        async |tx: &mut Tx, ctx: &Ctx| crm::leads::set_lead_status(tx, ctx, id, LeadStatus::Contacted).await,
    )
    .await;
}

/// Everything hung on r1's customer (contacts, activities, deals, tasks) follows the customer's
/// matrix; refusals leave no row behind in their own transaction.
async fn customer_side_writes_follow_the_customer(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let id = customer.id;
    for (user, expect) in matrix(&w) {
        let ctx = w.ctx(user);
        let who = &user.handle;
        let mut tx = w.tx().await;
        let rows_before = audit_rows(&mut tx, &w).await;

        let contact = NewContact { name: "王经理", title: None, phone: None, wechat: None, email: None };
        let r = crm::customers::add_contact(&mut tx, &ctx, id, contact).await;
        assert_outcome(&r, expect, &format!("add_contact as {who}"));

        let visit = NewActivity {
            customer_id: id,
            kind: ActivityKind::Visit,
            content: "聊了报价".into(),
            occurred_at: None,
            next_step: None,
            location: None,
            follow_up: None,
        };
        assert_outcome(&crm::activities::log_activity(&mut tx, &ctx, visit).await, expect, &format!("visit as {who}"));

        let deal = NewDeal {
            customer_id: id,
            title: "年度框架".into(),
            amount_fen: 1_000_000,
            stage: None,
            expected_close: None,
            owner_id: None,
        };
        assert_outcome(&crm::deals::create_deal(&mut tx, &ctx, deal).await, expect, &format!("deal as {who}"));

        // The task is the actor's own; only the customer it names is someone else's.
        let task = NewTask {
            title: "回访".into(),
            due_at: t0() + Duration::days(1),
            owner_id: None,
            customer_id: Some(id),
            deal_id: None,
            origin: TaskOrigin::Manual,
        };
        assert_outcome(&crm::tasks::create_task(&mut tx, &ctx, task).await, expect, &format!("task as {who}"));

        let rows_after = audit_rows(&mut tx, &w).await;
        match expect {
            Allowed => assert_eq!(rows_after, rows_before + 4, "four changes as {who}, four audit rows"),
            _ => assert_eq!(rows_after, rows_before, "refusals as {who} left audit rows"),
        }
        let detail = crm::customers::customer_detail(&mut tx, &w.ctx(&w.r1), id).await.expect("owner reads");
        let added = usize::from(expect == Allowed);
        assert_eq!(detail.contacts.len(), added, "contacts after the attempts as {who}");
        assert_eq!(detail.recent_activities.len(), added, "activities after the attempts as {who}");
        assert_eq!(detail.deals.len(), added, "deals after the attempts as {who}");
        drop(tx);
    }
}

/// A lead `owner` created for themself (committed).
async fn own_lead(w: &World, owner: &User, company: &str) -> crm::Lead {
    let mut tx = w.tx().await;
    let new = NewLead { company: company.into(), ..Default::default() };
    let lead = crm::leads::create_lead(&mut tx, &w.ctx(owner), new).await.expect("create lead");
    tx.commit().await.expect("commit lead");
    assert_eq!(lead.owner_id, Some(owner.id), "the lead belongs to its creator");
    assert_eq!(lead.status, LeadStatus::Assigned);
    lead
}

/// A deal on `customer_id` owned by `owner`, created by `owner` (committed).
async fn deal_for(w: &World, owner: &User, customer_id: i64, title: &str) -> crm::Deal {
    let mut tx = w.tx().await;
    let new = NewDeal {
        customer_id,
        title: title.into(),
        amount_fen: 1_000_000,
        stage: None,
        expected_close: None,
        owner_id: None,
    };
    let deal = crm::deals::create_deal(&mut tx, &w.ctx(owner), new).await.expect("create deal");
    tx.commit().await.expect("commit deal");
    assert_eq!(deal.owner_id, owner.id, "the deal belongs to its creator");
    deal
}

fn ids(items: impl IntoIterator<Item = i64>) -> BTreeSet<i64> {
    items.into_iter().collect()
}

/// One row of the list-scoping table: what `user` sees.
struct Visible<'a> {
    user: &'a User,
    customers: &'a [i64],
    /// With `owned_only`.
    owned: &'a [i64],
    /// Open deals.
    deals: &'a [i64],
}

fn hits(found: &MatchOutcome) -> BTreeSet<i64> {
    match found {
        MatchOutcome::One(r) => BTreeSet::from([r.id]),
        MatchOutcome::Many(list) => list.iter().map(|r| r.id).collect(),
        MatchOutcome::None => BTreeSet::new(),
    }
}

async fn lists_show_exactly_the_visible_records(db: Db) {
    let w = World::new(db).await;
    // All names share 星河, so one search reaches every customer the searcher may see.
    let c1 = w.customer(&w.r1, "星河电子").await.id;
    let c2 = w.customer(&w.r2, "星河贸易").await.id;
    let c3 = w.customer(&w.r3, "星河物流").await.id;
    let cma = w.customer(&w.ma, "星河食品").await.id;
    let c4 = w.customer(&w.r4, "星河医药").await.id;
    let unowned = {
        let mut tx = w.tx().await;
        let sys = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
        let new = NewCustomer { name: "星河建材".into(), ..Default::default() };
        let c = crm::customers::create_customer(&mut tx, &sys, new).await.expect("create unowned customer");
        tx.commit().await.expect("commit");
        assert_eq!(c.owner_id, None, "a customer the system creates has no owner");
        c.id
    };

    let d1 = deal_for(&w, &w.r1, c1, "电子 一期").await.id;
    let d2 = deal_for(&w, &w.r2, c2, "贸易 一期").await.id;
    let d3 = deal_for(&w, &w.r3, c3, "物流 一期").await.id;
    let dma = deal_for(&w, &w.ma, cma, "食品 一期").await.id;
    let d4 = deal_for(&w, &w.r4, c4, "医药 一期").await.id;
    // The admin's own deal on the unowned customer: an admin has no team, so no manager sees it.
    let dadmin = deal_for(&w, &w.admin, unowned, "建材 一期").await.id;
    // A closed deal is in nobody's open list.
    let won = deal_for(&w, &w.r1, c1, "电子 二期").await.id;
    let mut tx = w.tx().await;
    crm::deals::close_deal(&mut tx, &w.ctx(&w.r1), won, true, None, None).await.expect("win deal");
    tx.commit().await.expect("commit");

    let table = [
        Visible { user: &w.r1, customers: &[c1], owned: &[c1], deals: &[d1] },
        Visible { user: &w.r2, customers: &[c2], owned: &[c2], deals: &[d2] },
        Visible { user: &w.ma, customers: &[c1, c2, cma, unowned], owned: &[cma], deals: &[d1, d2, dma] },
        Visible { user: &w.mb, customers: &[c3, unowned], owned: &[], deals: &[d3] },
        Visible {
            user: &w.admin,
            customers: &[c1, c2, c3, cma, unowned],
            owned: &[],
            deals: &[d1, d2, d3, dma, dadmin],
        },
        Visible { user: &w.admin2, customers: &[c4], owned: &[], deals: &[d4] },
    ];
    for row in table {
        let who = &row.user.handle;
        let ctx = w.ctx(row.user);
        let mut tx = w.tx().await;
        let all = crm::customers::list_customers(&mut tx, &ctx, false).await.expect("list customers");
        assert_eq!(ids(all.iter().map(|c| c.id)), ids(row.customers.iter().copied()), "customers visible to {who}");
        let mine = crm::customers::list_customers(&mut tx, &ctx, true).await.expect("list own customers");
        assert_eq!(ids(mine.iter().map(|c| c.id)), ids(row.owned.iter().copied()), "customers owned by {who}");
        let found = crm::customers::find_customer(&mut tx, &ctx, "星河").await.expect("find customer");
        assert_eq!(hits(&found), ids(row.customers.iter().copied()), "customers {who} finds by 星河");
        let open = crm::deals::open_deals(&mut tx, &ctx).await.expect("open deals");
        assert_eq!(ids(open.iter().map(|d| d.id)), ids(row.deals.iter().copied()), "open deals visible to {who}");
    }

    // An exact name the searcher may not see finds nothing (rather than a refusal that leaks it).
    for user in [&w.r2, &w.mb, &w.admin2] {
        let mut tx = w.tx().await;
        let found = crm::customers::find_customer(&mut tx, &w.ctx(user), "星河电子").await.expect("find customer");
        assert_eq!(found, MatchOutcome::None, "{} must not find r1's customer", user.handle);
    }
}

async fn only_admins_manage_users_teams_and_identities(db: Db) {
    let w = World::new(db).await;
    for user in [&w.r1, &w.ma] {
        let who = &user.handle;
        let ctx = w.ctx(user);
        let mut tx = w.tx().await;
        let users_before = crm::users::list_users(&mut tx, w.org.id).await.expect("list users").len();
        let rows_before = audit_rows(&mut tx, &w).await;

        let r = crm::users::create_team(&mut tx, &ctx, "Team C").await;
        forbidden(&r, &format!("create_team as {who}"));
        not_found(&crm::users::team_by_name(&mut tx, &ctx, "Team C").await, "the refused team");

        let new = NewUser { handle: "r5", name: "r5", role: Role::Rep, team_id: user.team_id };
        forbidden(&crm::users::create_user(&mut tx, &ctx, new).await, &format!("create_user as {who}"));
        let users_after = crm::users::list_users(&mut tx, w.org.id).await.expect("list users").len();
        assert_eq!(users_after, users_before, "a refused create_user added a user");

        let r = crm::users::link_identity(&mut tx, &ctx, w.r2.id, "wecom", "corp-1", "zhangsan").await;
        forbidden(&r, &format!("link_identity as {who}"));
        let linked = crm::users::resolve_identity(&mut tx, "wecom", "corp-1", "zhangsan").await.expect("resolve");
        assert!(linked.is_none(), "a refused link_identity linked {linked:?}");

        assert_eq!(audit_rows(&mut tx, &w).await, rows_before, "refusals as {who} left audit rows");
        drop(tx);
    }

    let ctx = w.ctx(&w.admin);
    let mut tx = w.tx().await;
    let team = crm::users::create_team(&mut tx, &ctx, "Team C").await.expect("admin creates a team");
    let new = NewUser { handle: "r5", name: "r5", role: Role::Rep, team_id: Some(team.id) };
    let r5 = crm::users::create_user(&mut tx, &ctx, new).await.expect("admin creates a user");
    crm::users::link_identity(&mut tx, &ctx, r5.id, "wecom", "corp-1", "zhangsan").await.expect("admin links");
    tx.commit().await.expect("commit");

    let mut tx = w.tx().await;
    let linked = crm::users::resolve_identity(&mut tx, "wecom", "corp-1", "zhangsan").await.expect("resolve");
    assert_eq!(linked.map(|u| u.id), Some(r5.id), "the identity resolves to the new user");
    assert_eq!(r5.team_id, Some(team.id));
}

async fn reps_cannot_reassign_customers_or_leads(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let lead = own_lead(&w, &w.r1, "青山贸易").await;
    let ctx = w.ctx(&w.r1);

    let mut tx = w.tx().await;
    let patch = CustomerPatch { owner_id: Some(w.r2.id), ..Default::default() };
    forbidden(&crm::customers::update_customer(&mut tx, &ctx, customer.id, patch).await, "rep gives away a customer");
    let after = crm::customers::get_customer(&mut tx, &ctx, customer.id).await.expect("r1 still owns it");
    assert_eq!(after.owner_id, Some(w.r1.id));
    drop(tx);

    let mut tx = w.tx().await;
    let new = NewCustomer { name: "星河贸易".into(), owner_id: Some(w.r2.id), ..Default::default() };
    forbidden(&crm::customers::create_customer(&mut tx, &ctx, new).await, "rep creates a customer for r2");
    drop(tx);

    for to in [&w.r2, &w.r1] {
        let mut tx = w.tx().await;
        let r = crm::leads::assign_lead(&mut tx, &ctx, lead.id, to.id).await;
        forbidden(&r, &format!("rep assigns a lead to {}", to.handle));
        drop(tx);
    }
    let mut tx = w.tx().await;
    let after = crm::leads::get_lead(&mut tx, &ctx, lead.id).await.expect("r1 reads the lead");
    assert_eq!(after.owner_id, Some(w.r1.id), "the lead is still r1's");
}

async fn managers_reassign_only_within_their_team(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let lead = own_lead(&w, &w.r1, "青山贸易").await;
    let ctx = w.ctx(&w.ma);

    // Outside team A: r3 (team B) and the admin (no team).
    for to in [&w.r3, &w.admin] {
        let mut tx = w.tx().await;
        let r = crm::leads::assign_lead(&mut tx, &ctx, lead.id, to.id).await;
        forbidden(&r, &format!("ma assigns a lead to {}", to.handle));
        let patch = CustomerPatch { owner_id: Some(to.id), ..Default::default() };
        let r = crm::customers::update_customer(&mut tx, &ctx, customer.id, patch).await;
        forbidden(&r, &format!("ma gives a customer to {}", to.handle));
        let new = NewCustomer { name: "星河贸易".into(), owner_id: Some(to.id), ..Default::default() };
        let r = crm::customers::create_customer(&mut tx, &ctx, new).await;
        forbidden(&r, &format!("ma creates a customer for {}", to.handle));
        drop(tx);
    }
    // mb may not reassign team A's records at all.
    let mut tx = w.tx().await;
    forbidden(&crm::leads::assign_lead(&mut tx, &w.ctx(&w.mb), lead.id, w.r3.id).await, "mb takes r1's lead");
    let patch = CustomerPatch { owner_id: Some(w.r3.id), ..Default::default() };
    let r = crm::customers::update_customer(&mut tx, &w.ctx(&w.mb), customer.id, patch).await;
    forbidden(&r, "mb takes r1's customer");
    drop(tx);

    // Within team A it works.
    let mut tx = w.tx().await;
    let assigned = crm::leads::assign_lead(&mut tx, &ctx, lead.id, w.r2.id).await.expect("ma assigns to r2");
    let patch = CustomerPatch { owner_id: Some(w.r2.id), ..Default::default() };
    let moved = crm::customers::update_customer(&mut tx, &ctx, customer.id, patch).await.expect("ma gives to r2");
    tx.commit().await.expect("commit");
    assert_eq!(assigned.owner_id, Some(w.r2.id));
    assert_eq!(assigned.status, LeadStatus::Assigned);
    assert_eq!(moved.owner_id, Some(w.r2.id));

    let mut tx = w.tx().await;
    crm::customers::get_customer(&mut tx, &w.ctx(&w.r2), customer.id).await.expect("r2 now sees the customer");
    crm::leads::get_lead(&mut tx, &w.ctx(&w.r2), lead.id).await.expect("r2 now sees the lead");
    forbidden(&crm::customers::get_customer(&mut tx, &w.ctx(&w.r1), customer.id).await, "r1 after the move");
    forbidden(&crm::leads::get_lead(&mut tx, &w.ctx(&w.r1), lead.id).await, "r1's lead after the move");
}

async fn admins_reassign_across_teams_but_not_orgs(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let lead = own_lead(&w, &w.r1, "青山贸易").await;
    let ctx = w.ctx(&w.admin);

    // Another org's user is not found, from either side.
    let mut tx = w.tx().await;
    not_found(&crm::leads::assign_lead(&mut tx, &ctx, lead.id, w.r4.id).await, "admin assigns a lead to r4");
    let patch = CustomerPatch { owner_id: Some(w.r4.id), ..Default::default() };
    not_found(&crm::customers::update_customer(&mut tx, &ctx, customer.id, patch).await, "admin gives to r4");
    let r = crm::leads::assign_lead(&mut tx, &w.ctx(&w.admin2), lead.id, w.r4.id).await;
    not_found(&r, "admin2 assigns org 1's lead");
    drop(tx);

    let mut tx = w.tx().await;
    let assigned = crm::leads::assign_lead(&mut tx, &ctx, lead.id, w.r3.id).await.expect("admin assigns to r3");
    let patch = CustomerPatch { owner_id: Some(w.r3.id), ..Default::default() };
    let moved = crm::customers::update_customer(&mut tx, &ctx, customer.id, patch).await.expect("admin gives to r3");
    tx.commit().await.expect("commit");
    assert_eq!(assigned.owner_id, Some(w.r3.id));
    assert_eq!(moved.owner_id, Some(w.r3.id));
    assert_eq!(moved.owner_team_id, w.r3.team_id);

    // The records now follow team B's rules.
    let mut tx = w.tx().await;
    crm::customers::get_customer(&mut tx, &w.ctx(&w.mb), customer.id).await.expect("mb sees r3's customer");
    crm::leads::get_lead(&mut tx, &w.ctx(&w.mb), lead.id).await.expect("mb sees r3's lead");
    forbidden(&crm::customers::get_customer(&mut tx, &w.ctx(&w.ma), customer.id).await, "ma after the move");
    forbidden(&crm::leads::get_lead(&mut tx, &w.ctx(&w.ma), lead.id).await, "ma's lead after the move");
}

async fn pool_leads_are_open_to_the_whole_org(db: Db) {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let new = NewLead { company: "青山贸易".into(), to_pool: true, ..Default::default() };
    let lead = crm::leads::create_lead(&mut tx, &w.ctx(&w.r1), new).await.expect("create pool lead");
    tx.commit().await.expect("commit");
    assert_eq!((lead.owner_id, lead.status), (None, LeadStatus::Pool), "the lead waits in the pool");

    for user in [&w.r1, &w.r2, &w.r3, &w.ma, &w.mb, &w.admin] {
        let ctx = w.ctx(user);
        let mut tx = w.tx().await;
        crm::leads::get_lead(&mut tx, &ctx, lead.id).await.expect("anyone in the org reads a pool lead");
        let pool = crm::leads::pool(&mut tx, &ctx).await.expect("pool");
        assert_eq!(ids(pool.iter().map(|l| l.id)), BTreeSet::from([lead.id]), "the pool as {}", user.handle);
    }
    for user in [&w.r4, &w.admin2] {
        let ctx = w.ctx(user);
        let mut tx = w.tx().await;
        not_found(&crm::leads::get_lead(&mut tx, &ctx, lead.id).await, &format!("{} reads", user.handle));
        not_found(&crm::leads::claim_lead(&mut tx, &ctx, lead.id).await, &format!("{} claims", user.handle));
        let pool = crm::leads::pool(&mut tx, &ctx).await.expect("pool");
        assert!(pool.is_empty(), "org 2's pool shows {pool:?}");
    }

    // Any rep may claim it: try each (and roll back), then let r3 keep it.
    for rep in [&w.r1, &w.r2, &w.r3] {
        let mut tx = w.tx().await;
        let claimed = crm::leads::claim_lead(&mut tx, &w.ctx(rep), lead.id).await.expect("a rep claims");
        assert_eq!((claimed.owner_id, claimed.status), (Some(rep.id), LeadStatus::Assigned));
        drop(tx);
    }
    let mut tx = w.tx().await;
    crm::leads::claim_lead(&mut tx, &w.ctx(&w.r3), lead.id).await.expect("r3 claims");
    tx.commit().await.expect("commit");

    // Out of the pool it follows the ownership rules again.
    let mut tx = w.tx().await;
    forbidden(&crm::leads::get_lead(&mut tx, &w.ctx(&w.r1), lead.id).await, "its creator after r3 claimed it");
    forbidden(&crm::leads::get_lead(&mut tx, &w.ctx(&w.ma), lead.id).await, "ma after r3 claimed it");
    crm::leads::get_lead(&mut tx, &w.ctx(&w.mb), lead.id).await.expect("mb sees r3's lead");
    let again = crm::leads::claim_lead(&mut tx, &w.ctx(&w.r2), lead.id).await;
    assert!(is_invalid(&again), "claiming a lead no longer in the pool: {again:?}");
    let pool = crm::leads::pool(&mut tx, &w.ctx(&w.r2)).await.expect("pool");
    assert!(pool.is_empty(), "a claimed lead stays in the pool: {pool:?}");
}

/// Tasks and deals may be given only to people the actor manages, and only within the org.
async fn records_cannot_be_created_for_other_teams(db: Db) {
    let w = World::new(db).await;
    let customer = w.customer(&w.r1, "星河电子").await;
    let task = |owner: &User| NewTask {
        title: "回访".into(),
        due_at: t0() + Duration::days(1),
        owner_id: Some(owner.id),
        customer_id: None,
        deal_id: None,
        origin: TaskOrigin::Manual,
    };
    let deal = |owner: &User| NewDeal {
        customer_id: customer.id,
        title: "年度框架".into(),
        amount_fen: 1_000_000,
        stage: None,
        expected_close: None,
        owner_id: Some(owner.id),
    };
    // (actor, owner, expected)
    let table = [
        (&w.r1, &w.r2, Forbidden),
        (&w.ma, &w.r3, Forbidden),
        (&w.ma, &w.r2, Allowed),
        (&w.admin, &w.r2, Allowed),
        (&w.admin, &w.r4, NotFound),
    ];
    for (actor, owner, expect) in table {
        let what = format!("{} for {}", actor.handle, owner.handle);
        let mut tx = w.tx().await;
        let t = crm::tasks::create_task(&mut tx, &w.ctx(actor), task(owner)).await;
        assert_outcome(&t, expect, &format!("task by {what}"));
        if let Ok(t) = &t {
            assert_eq!((t.owner_id, t.status), (owner.id, TaskStatus::Open));
        }
        let d = crm::deals::create_deal(&mut tx, &w.ctx(actor), deal(owner)).await;
        assert_outcome(&d, expect, &format!("deal by {what}"));
        drop(tx);
    }
}

crate::both_backends!(
    customer_matrix,
    deal_matrix,
    task_matrix,
    lead_matrix,
    customer_side_writes_follow_the_customer,
    lists_show_exactly_the_visible_records,
    only_admins_manage_users_teams_and_identities,
    reps_cannot_reassign_customers_or_leads,
    managers_reassign_only_within_their_team,
    admins_reassign_across_teams_but_not_orgs,
    pool_leads_are_open_to_the_whole_org,
    records_cannot_be_created_for_other_teams,
);
