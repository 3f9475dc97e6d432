//! Test fixtures: fresh databases on both backends, a small org world, and a running server.

#![allow(dead_code)]

use chatcrm::bot::{Bot, IncomingMessage};
use chatcrm::clock::Clock;
use chatcrm::crm::users::NewUser;
use chatcrm::crm::{self, Actor, Ctx, Org, Role, User, Via};
use chatcrm::store::{Db, DbOptions, Tx};
use chrono::{DateTime, TimeZone, Utc};

pub use chatcrm;
pub use chrono;

/// 2026-11-24 10:00 in Shanghai (a Tuesday): the fixed "now" of every test.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).single().unwrap_or_default()
}

/// Runs each named `async fn(Db)` once on SQLite and once on PostgreSQL (when configured).
#[macro_export]
macro_rules! both_backends {
    ($($f:ident),* $(,)?) => {
        $(
            mod $f {
                #[tokio::test]
                async fn sqlite() {
                    let t = $crate::helpers::TestDb::sqlite().await;
                    super::$f(t.db.clone()).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let Some(t) = $crate::helpers::TestDb::postgres().await else {
                        eprintln!("skipped {}::postgres: CHATCRM_TEST_PG is not set", stringify!($f));
                        return;
                    };
                    super::$f(t.db.clone()).await;
                    t.drop_database().await;
                }
            }
        )*
    };
}

pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        chatcrm::install_tls_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect(&DbOptions::new(&url)).await.expect("open sqlite");
        db.migrate().await.expect("migrate sqlite");
        Self { db, url, _dir: Some(dir), pg: None }
    }

    /// A fresh database on the CHATCRM_TEST_PG server; `None` when the variable is unset.
    pub async fn postgres() -> Option<Self> {
        chatcrm::install_tls_provider();
        let admin_url = std::env::var("CHATCRM_TEST_PG").ok().filter(|s| !s.is_empty())?;
        let name = format!("chatcrm_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to CHATCRM_TEST_PG");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = replace_db_name(&admin_url, &name);
        let db = Db::connect(&DbOptions::new(&url)).await.expect("open postgres");
        db.migrate().await.expect("migrate postgres");
        Some(Self { db, url, _dir: None, pg: Some((admin_url, name)) })
    }

    /// Closes the pool; the database itself is dropped when `self` goes (see `Drop`).
    pub async fn drop_database(self) {
        self.db.close().await;
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL test database, also when the test panicked, so failed runs leave
    /// nothing behind. Runs on its own thread: a `Drop` cannot await.
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg.take() else { return };
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Two orgs. Org 1: team A (manager `ma`, reps `r1`, `r2`), team B (manager `mb`, rep `r3`),
/// admin `admin`. Org 2: admin `admin2`, rep `r4`.
pub struct World {
    pub db: Db,
    pub org: Org,
    pub org2: Org,
    pub admin: User,
    pub ma: User,
    pub r1: User,
    pub r2: User,
    pub mb: User,
    pub r3: User,
    pub admin2: User,
    pub r4: User,
}

impl World {
    pub async fn new(db: Db) -> Self {
        let mut tx = db.begin().await.expect("begin");
        let now = t0();
        let org = crm::orgs::create_org(&mut tx, "Org One", "Asia/Shanghai", Via::Cli, now).await.expect("org");
        let org2 = crm::orgs::create_org(&mut tx, "Org Two", "Asia/Shanghai", Via::Cli, now).await.expect("org2");
        let sys = Ctx::new(Actor::system(org.id), Via::Cli, now);
        let sys2 = Ctx::new(Actor::system(org2.id), Via::Cli, now);
        let ta = crm::users::create_team(&mut tx, &sys, "Team A").await.expect("team a");
        let tb = crm::users::create_team(&mut tx, &sys, "Team B").await.expect("team b");
        let add = async |tx: &mut Tx, ctx: &Ctx, handle: &str, role: Role, team_id: Option<i64>| {
            crm::users::create_user(tx, ctx, NewUser { handle, name: handle, role, team_id }).await.expect("user")
        };
        let admin = add(&mut tx, &sys, "admin", Role::Admin, None).await;
        let ma = add(&mut tx, &sys, "ma", Role::Manager, Some(ta.id)).await;
        let r1 = add(&mut tx, &sys, "r1", Role::Rep, Some(ta.id)).await;
        let r2 = add(&mut tx, &sys, "r2", Role::Rep, Some(ta.id)).await;
        let mb = add(&mut tx, &sys, "mb", Role::Manager, Some(tb.id)).await;
        let r3 = add(&mut tx, &sys, "r3", Role::Rep, Some(tb.id)).await;
        let admin2 = add(&mut tx, &sys2, "admin2", Role::Admin, None).await;
        let r4 = add(&mut tx, &sys2, "r4", Role::Rep, None).await;
        for u in [&admin, &ma, &r1, &r2, &mb, &r3, &admin2, &r4] {
            let ctx = Ctx::new(Actor::system(u.org_id), Via::Cli, now);
            crm::users::link_identity(&mut tx, &ctx, u.id, "console", &u.org_id.to_string(), &u.handle)
                .await
                .expect("link");
        }
        tx.commit().await.expect("commit world");
        Self { db, org, org2, admin, ma, r1, r2, mb, r3, admin2, r4 }
    }

    /// A chat context for `user` at the fixed test time.
    pub fn ctx(&self, user: &User) -> Ctx {
        Ctx::new(Actor::of(user), Via::Chat, t0())
    }

    pub async fn tx(&self) -> Tx {
        self.db.begin().await.expect("begin")
    }

    pub fn bot(&self) -> Bot {
        Bot::new(self.db.clone(), Clock::fixed(t0()))
    }

    /// A console message from `user` with the given id.
    pub fn msg(&self, user: &User, id: &str, text: &str) -> IncomingMessage {
        IncomingMessage {
            platform: "console".into(),
            corp_id: user.org_id.to_string(),
            sender: user.handle.clone(),
            message_id: id.into(),
            text: text.into(),
            received_at: t0(),
        }
    }

    /// Creates a customer owned by `owner` (committed).
    pub async fn customer(&self, owner: &User, name: &str) -> crm::Customer {
        let mut tx = self.tx().await;
        let c = crm::customers::create_customer(
            &mut tx,
            &self.ctx(owner),
            crm::customers::NewCustomer { name: name.into(), ..Default::default() },
        )
        .await
        .expect("create customer");
        tx.commit().await.expect("commit");
        c
    }

    /// Number of rows in `table` (test-only helper over a fixed list of names).
    pub async fn count(&self, table: &'static str) -> i64 {
        let sql = match table {
            "customers" => "SELECT COUNT(*) FROM customers",
            "activities" => "SELECT COUNT(*) FROM activities",
            "deals" => "SELECT COUNT(*) FROM deals",
            "leads" => "SELECT COUNT(*) FROM leads",
            "tasks" => "SELECT COUNT(*) FROM tasks",
            "audit_log" => "SELECT COUNT(*) FROM audit_log",
            "inbox" => "SELECT COUNT(*) FROM inbox",
            "contacts" => "SELECT COUNT(*) FROM contacts",
            "deal_stage_history" => "SELECT COUNT(*) FROM deal_stage_history",
            "users" => "SELECT COUNT(*) FROM users",
            "outbox" => "SELECT COUNT(*) FROM outbox",
            other => panic!("count: unknown table {other}"),
        };
        match &self.db {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
        }
    }
}

/// Shorthand: is this the error kind we expect?
pub fn is_forbidden<T: std::fmt::Debug>(r: &Result<T, crm::CrmError>) -> bool {
    matches!(r, Err(crm::CrmError::Forbidden(_)))
}

pub fn is_not_found<T: std::fmt::Debug>(r: &Result<T, crm::CrmError>) -> bool {
    matches!(r, Err(crm::CrmError::NotFound(_)))
}

pub fn is_invalid<T: std::fmt::Debug>(r: &Result<T, crm::CrmError>) -> bool {
    matches!(r, Err(crm::CrmError::Invalid(_)))
}

pub fn is_conflict<T: std::fmt::Debug>(r: &Result<T, crm::CrmError>) -> bool {
    matches!(r, Err(crm::CrmError::Conflict(_)))
}

/// Delivers every due outbox message (console only: no platform senders), as of now.
pub async fn drain_outbox(db: &Db) -> chatcrm::outbox::dispatch::DispatchReport {
    let d = chatcrm::outbox::Dispatcher::new(
        db.clone(),
        Clock::system(),
        "test",
        chatcrm::outbox::Senders::default(),
        chatcrm::outbox::DispatchConfig::default(),
    );
    d.drain().await.expect("drain outbox")
}

/// Task id of each reminder card a mock WeCom accepted, and how often.
pub fn reminder_cards(received: &[chatcrm::platform::wecom::mock::Received]) -> std::collections::BTreeMap<i64, usize> {
    let mut map = std::collections::BTreeMap::new();
    for r in received {
        let key = r.body.pointer("/template_card/task_id").and_then(|v| v.as_str()).unwrap_or_default();
        let id = key.split('-').nth(1).and_then(|s| s.parse::<i64>().ok()).unwrap_or(-1);
        *map.entry(id).or_insert(0) += 1;
    }
    map
}
