//! Transactions run inline (statements on the caller's thread, `Tx::run_inline`), as the SQLite
//! batch writer runs them, and the customer lookup's indexed first step.

use super::helpers::*;
use crate::both_backends;
use chatcrm::crm::matching::{MatchKind, MatchOutcome};
use chatcrm::crm::{self, Actor, Ctx, Role, Via};
use chatcrm::store::{self, Db, Savepoint};

async fn names(db: &Db) -> Vec<String> {
    let mut tx = db.begin_read().await.expect("begin read");
    let rows: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT name FROM orgs ORDER BY id").fetch_all(c).await)
            .expect("names");
    tx.commit().await.expect("commit read");
    rows
}

/// Writes, savepoint rollbacks, commit and rollback behave the same inline; the connection goes
/// back to its pool usable, whichever way the transaction ended.
async fn inline_transactions_commit_roll_back_and_release_the_connection(db: Db) {
    let now = t0();
    // Commit after inline work: kept, including what a released savepoint held; not what a
    // rolled-back savepoint held.
    let sqlite = matches!(db, Db::Sqlite(_));
    let mut tx = db.begin().await.expect("begin");
    assert!(!tx.is_inline(), "not inline before run_inline");
    tx.run_inline().await.expect("inline");
    // Inline on SQLite (a no-op on PostgreSQL), and it stays inline through everything the bot's
    // writer does in a batch: a worker-bound statement would end it silently.
    let still_inline = |tx: &mut chatcrm::store::Tx, after: &str| {
        assert_eq!(tx.is_inline(), sqlite, "inline after {after}");
    };
    still_inline(&mut tx, "run_inline");
    crm::orgs::create_org(&mut tx, "Kept", "Asia/Shanghai", Via::Cli, now).await.expect("org");
    still_inline(&mut tx, "a write");
    store::savepoint(&mut tx, Savepoint::Begin).await.expect("savepoint");
    crm::orgs::create_org(&mut tx, "Rolled back", "Asia/Shanghai", Via::Cli, now).await.expect("org");
    store::savepoint(&mut tx, Savepoint::Rollback).await.expect("rollback to");
    store::savepoint(&mut tx, Savepoint::Release).await.expect("release");
    still_inline(&mut tx, "a savepoint rolled back");
    store::savepoint(&mut tx, Savepoint::Begin).await.expect("savepoint");
    crm::orgs::create_org(&mut tx, "Released", "Asia/Shanghai", Via::Cli, now).await.expect("org");
    store::savepoint(&mut tx, Savepoint::Release).await.expect("release");
    still_inline(&mut tx, "a savepoint released");
    // A failing statement inline is an error, not a hang or a panic, and the transaction goes on.
    let dup = crm::orgs::create_org(&mut tx, "Kept", "Asia/Shanghai", Via::Cli, now).await;
    assert!(dup.is_err(), "a second org of the same name must fail");
    still_inline(&mut tx, "a failed statement");
    tx.commit().await.expect("commit");
    assert_eq!(names(&db).await, ["Kept", "Released"]);

    // Explicit rollback after inline work: nothing kept.
    let mut tx = db.begin().await.expect("begin");
    tx.run_inline().await.expect("inline");
    crm::orgs::create_org(&mut tx, "Never", "Asia/Shanghai", Via::Cli, now).await.expect("org");
    tx.rollback().await.expect("rollback");
    assert_eq!(names(&db).await, ["Kept", "Released"]);

    // Dropped while inline (a panicking batch drops its transaction): rolled back, and the write
    // lock is free again for the next writer, many times over (more than the pool's size).
    for n in 0..20 {
        let mut tx = db.begin().await.expect("begin after a dropped inline transaction");
        tx.run_inline().await.expect("inline");
        crm::orgs::create_org(&mut tx, &format!("Dropped {n}"), "Asia/Shanghai", Via::Cli, now).await.expect("org");
        drop(tx);
    }
    assert_eq!(names(&db).await, ["Kept", "Released"]);
    let mut tx = db.begin().await.expect("begin");
    crm::orgs::create_org(&mut tx, "After", "Asia/Shanghai", Via::Cli, now).await.expect("org");
    tx.commit().await.expect("commit");
    assert_eq!(names(&db).await, ["Kept", "Released", "After"]);
    db.ping().await.expect("the pool still answers");
}

/// The lookup reads the customer whose normalised name is the query's first; it must answer
/// exactly as matching over every visible customer does, and never find one the actor may not
/// see.
async fn customer_lookup_by_normalised_name_matches_the_full_search(db: Db) {
    let w = World::new(db).await;
    let haier = w.customer(&w.r1, "青岛海尔有限公司").await;
    w.customer(&w.r1, "海尔智家").await;
    let hidden = w.customer(&w.r3, "美的集团").await;
    let mut tx = w.tx().await;
    let find = async |tx: &mut chatcrm::store::Tx, ctx: &Ctx, q: &str| {
        crm::customers::find_customer(tx, ctx, q).await.expect("find")
    };
    // Exact and normalised hits (regions, suffixes and width folded away).
    for q in ["青岛海尔有限公司", "海尔", "海尔有限公司", "ＨＡＩＥＲ"] {
        let out = find(&mut tx, &w.ctx(&w.r1), q).await;
        let full = {
            let visible = crm::customers::list_customers(&mut tx, &w.ctx(&w.r1), false).await.expect("list");
            let cands: Vec<_> = visible
                .into_iter()
                .map(|c| crm::matching::Candidate {
                    id: c.id,
                    name: c.name,
                    name_norm: c.name_norm,
                    name_pinyin: c.name_pinyin,
                    name_initials: c.name_initials,
                })
                .collect();
            crm::matching::match_customer(q, &cands, 5)
        };
        assert_eq!(out, full, "query {q}");
    }
    match find(&mut tx, &w.ctx(&w.r1), "海尔").await {
        MatchOutcome::One(r) => {
            assert_eq!(r.id, haier.id);
            assert!(matches!(r.kind, MatchKind::Exact | MatchKind::Normalized));
        }
        other => panic!("海尔 should be one normalised hit, got {other:?}"),
    }
    // Another team's customer with exactly that name is not found by a rep who may not see it,
    // nor by that rep's manager; the other team's manager and the admin find it.
    assert_eq!(find(&mut tx, &w.ctx(&w.r1), "美的集团").await, MatchOutcome::None);
    assert_eq!(find(&mut tx, &w.ctx(&w.ma), "美的").await, MatchOutcome::None);
    for who in [&w.mb, &w.admin] {
        match find(&mut tx, &w.ctx(who), "美的").await {
            MatchOutcome::One(r) => assert_eq!(r.id, hidden.id),
            other => panic!("{} should find 美的, got {other:?}", who.handle),
        }
    }
    // An org's other org never sees it.
    let other_org = Ctx::new(
        Actor { org_id: w.org2.id, user_id: Some(w.admin2.id), role: Role::Admin, team_id: None },
        Via::Chat,
        t0(),
    );
    assert_eq!(find(&mut tx, &other_org, "美的").await, MatchOutcome::None);
    tx.rollback().await.expect("rollback");
}

both_backends!(
    inline_transactions_commit_roll_back_and_release_the_connection,
    customer_lookup_by_normalised_name_matches_the_full_search,
);
