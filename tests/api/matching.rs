//! Finding a customer from what a rep typed, among the customers they may see.

use super::helpers::*;
use crate::both_backends;
use chatcrm::crm::matching::{MatchKind, MatchOutcome};
use chatcrm::crm::{self, User};
use chatcrm::store::Db;

async fn find(w: &World, who: &User, q: &str) -> MatchOutcome {
    let mut tx = w.tx().await;
    crm::customers::find_customer(&mut tx, &w.ctx(who), q).await.expect("find")
}

fn names(m: &MatchOutcome) -> Vec<String> {
    match m {
        MatchOutcome::One(r) => vec![r.name.clone()],
        MatchOutcome::Many(v) => v.iter().map(|r| r.name.clone()).collect(),
        MatchOutcome::None => vec![],
    }
}

async fn exact_normalised_fuzzy_and_ambiguous(db: Db) {
    let w = World::new(db).await;
    for name in ["海尔智家股份有限公司", "青岛海尔模具有限公司", "美的集团", "Acme Trading Co., Ltd."]
    {
        w.customer(&w.r1, name).await;
    }
    w.customer(&w.r3, "海尔物流").await;

    let m = find(&w, &w.r1, "美的集团").await;
    assert!(matches!(&m, MatchOutcome::One(r) if r.kind == MatchKind::Exact), "{m:?}");
    let m = find(&w, &w.r1, "美的集团股份有限公司").await;
    assert!(matches!(&m, MatchOutcome::One(r) if r.kind == MatchKind::Normalized && r.name == "美的集团"), "{m:?}");
    let m = find(&w, &w.r1, "ａｃｍｅ trading").await;
    assert_eq!(names(&m), vec!["Acme Trading Co., Ltd."], "full-width and case: {m:?}");
    let m = find(&w, &w.r1, "海尔").await;
    assert!(matches!(m, MatchOutcome::Many(_)), "{m:?}");
    let mut got = names(&m);
    got.sort();
    assert_eq!(got, vec!["海尔智家股份有限公司", "青岛海尔模具有限公司"], "r3's 海尔物流 is not r1's to see");
    let m = find(&w, &w.r1, "海而智家").await;
    assert!(
        matches!(&m, MatchOutcome::Many(v) if v[0].name == "海尔智家股份有限公司" && v[0].kind == MatchKind::Fuzzy),
        "{m:?}"
    );
    assert_eq!(find(&w, &w.r1, "格力电器").await, MatchOutcome::None);
    // The manager of team B sees r3's customer; the admin sees all three Haier ones.
    assert_eq!(names(&find(&w, &w.mb, "海尔").await), vec!["海尔物流"]);
    assert_eq!(names(&find(&w, &w.admin, "海尔").await).len(), 3);
    assert_eq!(find(&w, &w.r4, "海尔").await, MatchOutcome::None, "other orgs see nothing");
}

both_backends!(exact_normalised_fuzzy_and_ambiguous);
