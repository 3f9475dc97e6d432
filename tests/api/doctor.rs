//! `chatcrm doctor`: each check passes on a good set-up and fails, with a fix, on a broken one.

use super::helpers::*;
use super::http::settings;

use chatcrm::config::WecomApp;
use chatcrm::doctor::{self, Check, Status};
use chatcrm::platform::wecom::mock::{self, MockWecom};
use chatcrm::store::{Db, DbOptions};
use secrecy::SecretString;

fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name.starts_with(name)).unwrap_or_else(|| panic!("no `{name}` check in {checks:?}"))
}

fn wecom_app(secret: &str) -> WecomApp {
    WecomApp {
        name: "sales".into(),
        org: "Org One".into(),
        corp_id: mock::CORP_ID.into(),
        agent_id: mock::AGENT_ID,
        secret: SecretString::from(secret.to_string()),
        token: SecretString::from("QDG6eK".to_string()),
        encoding_aes_key: SecretString::from("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C".to_string()),
        robot_name: None,
        robot_token: None,
        robot_encoding_aes_key: None,
        menu: Default::default(),
    }
}

#[tokio::test]
async fn a_good_setup_passes_and_a_broken_one_says_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let mut s = settings();
    s.database_url = SecretString::from(url.clone());

    // Never migrated: the schema check fails and names the command.
    let checks = doctor::run(&s, t0()).await;
    assert_eq!(find(&checks, "database").status, Status::Ok, "{checks:?}");
    let schema = find(&checks, "schema");
    assert_eq!(schema.status, Status::Fail, "{checks:?}");
    assert!(schema.fix.as_deref().unwrap_or_default().contains("chatcrm migrate"), "{schema:?}");

    let db = Db::connect(&DbOptions::new(url)).await.expect("open");
    db.migrate().await.expect("migrate");
    db.close().await;
    let checks = doctor::run(&s, t0()).await;
    assert!(checks.iter().all(|c| c.status == Status::Ok), "{}", doctor::render(&checks));
    assert!(doctor::render(&checks).ends_with("all good\n"));

    // A WeCom app: right credentials pass; a wrong secret fails with where to find the right one.
    let wecom = MockWecom::start().await;
    s.wecom.api_base = wecom.base_url();
    s.wecom.apps = vec![wecom_app(mock::CORP_SECRET)];
    let checks = doctor::run(&s, chrono::Utc::now()).await;
    assert_eq!(find(&checks, "wecom app `sales`").status, Status::Ok, "{checks:?}");
    s.wecom.apps = vec![wecom_app("not-the-secret")];
    let checks = doctor::run(&s, chrono::Utc::now()).await;
    let app = find(&checks, "wecom app `sales`");
    assert_eq!(app.status, Status::Fail, "{checks:?}");
    assert!(app.fix.as_deref().unwrap_or_default().contains("Secret"), "{app:?}");
    // The secret never appears in the report.
    assert!(!doctor::render(&checks).contains("not-the-secret"));

    // An unreachable database fails with what to check.
    s.database_url = SecretString::from("postgres://nobody@127.0.0.1:1/none".to_string());
    let checks = doctor::run(&s, t0()).await;
    let db = find(&checks, "database");
    assert_eq!(db.status, Status::Fail, "{checks:?}");
    assert!(db.fix.as_deref().unwrap_or_default().contains("database_url"), "{db:?}");
}
