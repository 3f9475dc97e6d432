//! Storage on SQLite or PostgreSQL through one code path.
//!
//! [`Db`] is an enum over the two pools and [`Tx`] over their transactions. Queries are written
//! once, as `&'static str` with `$N` placeholders (SQLite binds them by number), and run through
//! the [`run!`](crate::run) macro, which compiles the body once per backend. Only where the
//! dialects really differ does a query get two arms.

pub mod activities;
pub mod audit;
pub mod customers;
pub mod deals;
pub mod inbox;
pub mod lead_rules;
pub mod leads;
pub mod orgs;
pub mod outbox;
pub mod report;
pub mod schedule;
pub mod tasks;
pub mod tokens;
pub mod undo;
pub mod users;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::config::{DatabaseKind, Settings};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on whichever backend is live. Dropping it without [`Tx::commit`] rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the transaction's connection, once per backend.
#[macro_export]
macro_rules! run {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Connection options shared by the CLI, the server and the tests.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub url: String,
    pub max_connections: u32,
    pub sqlite_synchronous: SqliteSynchronous,
    pub busy_timeout: Duration,
}

impl DbOptions {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            url: s.database_url.expose_secret().to_string(),
            max_connections: s.database_max_connections,
            sqlite_synchronous: if s.sqlite_synchronous == "extra" {
                SqliteSynchronous::Extra
            } else {
                SqliteSynchronous::Full
            },
            busy_timeout: Duration::from_millis(s.sqlite_busy_timeout_ms),
        }
    }

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            sqlite_synchronous: SqliteSynchronous::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl Db {
    pub async fn connect(opts: &DbOptions) -> Result<Self, sqlx::Error> {
        let kind = DatabaseKind::of(&opts.url).map_err(|m| sqlx::Error::Configuration(m.into()))?;
        Ok(match kind {
            DatabaseKind::Sqlite => {
                let co = SqliteConnectOptions::from_str(&opts.url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a commit is on disk before we acknowledge the message that caused it.
                    .synchronous(opts.sqlite_synchronous)
                    .busy_timeout(opts.busy_timeout)
                    // A batch of messages dirties more pages than SQLite's default 2 MiB cache
                    // holds: it would spill them to the WAL mid-transaction and read pages back
                    // with a system call each. 16 MiB per connection, taken only as it fills.
                    .pragma("cache_size", "-16384")
                    // Each chat message runs in a savepoint of its batch; its sub-journal (the
                    // pages to restore on rollback) stays in memory instead of a temporary file
                    // created, written and deleted per message. Commits are unaffected.
                    .pragma("temp_store", "memory")
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(co)
                    .await?;
                Db::Sqlite(pool)
            }
            DatabaseKind::Postgres => {
                let co = PgConnectOptions::from_str(&opts.url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(co)
                    .await?;
                Db::Postgres(pool)
            }
        })
    }

    pub fn kind(&self) -> DatabaseKind {
        match self {
            Db::Sqlite(_) => DatabaseKind::Sqlite,
            Db::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`) so two
    /// writers queue on the busy timeout instead of failing when a read lock is upgraded.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            // Repeatable read: two writers changing the same row conflict (40001) instead of the
            // later one silently overwriting what the earlier one read and decided on; the bot
            // runs a conflicting message again on a fresh snapshot.
            Db::Postgres(p) => Tx::Postgres(p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ").await?),
        })
    }

    /// A write transaction for claiming queued work (`FOR UPDATE SKIP LOCKED`) shared by several
    /// instances. On PostgreSQL it runs at read committed: under repeatable read a row another
    /// instance has just claimed and released would fail the claim with a serialization error
    /// instead of being skipped. On SQLite it is [`Db::begin`].
    pub async fn begin_claim(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?),
        })
    }

    /// A transaction for reads only; it never blocks writers on SQLite.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Whether this binary has SQLite migration `version` (a restored backup must not carry one
    /// it does not know: the server would refuse to start on it).
    pub fn knows_sqlite_migration(version: i64) -> bool {
        SQLITE_MIGRATIONS.iter().any(|m| m.version == version)
    }

    /// Migrations this binary carries.
    pub fn migrations_known(&self) -> usize {
        match self {
            Db::Sqlite(_) => SQLITE_MIGRATIONS.iter().count(),
            Db::Postgres(_) => POSTGRES_MIGRATIONS.iter().count(),
        }
    }

    /// Migrations applied to this database (0 on a database never migrated).
    pub async fn migrations_applied(&self) -> Result<usize, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let n: Result<i64, sqlx::Error> = match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        };
        match n {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
            // No migrations table yet: nothing applied.
            Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The database server's clock (PostgreSQL); `None` for SQLite, which is this host's.
    pub async fn server_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
        match self {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(p) => sqlx::query_scalar("SELECT now()").fetch_one(p).await.map(Some),
        }
    }

    /// Round trip to the database, for `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }

    /// On SQLite, runs the transaction's statements on the calling thread until it commits or
    /// rolls back, instead of handing each one to the connection's worker thread and back (see
    /// `vendor/sqlx-sqlite/src/connection/inline.rs`). For a thread that runs many short
    /// statements while holding the write lock; a no-op on PostgreSQL.
    pub async fn run_inline(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.begin_inline().await,
            Tx::Postgres(_) => Ok(()),
        }
    }

    /// Whether statements run inline now ([`Tx::run_inline`]); always false on PostgreSQL.
    pub fn is_inline(&mut self) -> bool {
        match self {
            Tx::Sqlite(t) => t.is_inline(),
            Tx::Postgres(_) => false,
        }
    }
}

/// The savepoint each chat message runs in, inside a batch transaction.
pub enum Savepoint {
    Begin,
    Rollback,
    Release,
}

pub async fn savepoint(tx: &mut Tx, action: Savepoint) -> Result<(), sqlx::Error> {
    let sql = match action {
        Savepoint::Begin => "SAVEPOINT bot_message",
        Savepoint::Rollback => "ROLLBACK TO SAVEPOINT bot_message",
        Savepoint::Release => "RELEASE SAVEPOINT bot_message",
    };
    crate::run!(tx, |c| sqlx::query(sql).execute(c).await.map(|_| ()))
}

/// One page of an API listing, newest first (or oldest first), after an id cursor.
#[derive(Debug, Clone)]
pub struct Page {
    /// Whose records: the same rule as `Actor::can_access`.
    pub actor: crate::crm::Actor,
    /// Only ids after this one in the listing's order.
    pub after: Option<i64>,
    /// Rows to return (callers ask for one more to know whether another page follows).
    pub limit: i64,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// Runs an API listing: `$select` ends in `WHERE <alias>.org_id = ` (the org is bound next), then
/// the actor's scope on `$owner` (reps their own, managers their team's, their own and unowned
/// ones, admins all), the filters `$filters` pushes (each starting with ` AND `, values bound),
/// the cursor on `$id`, the order and the limit. Every value is a bound parameter.
#[macro_export]
macro_rules! api_page {
    ($tx:expr, $row:ty, $select:expr, $owner:literal, $id:literal, $page:expr, |$qb:ident| $filters:block) => {{
        macro_rules! build {
            ($db:ty) => {{
                let page: &$crate::store::Page = $page;
                let mut $qb = sqlx::QueryBuilder::<$db>::new($select);
                $qb.push_bind(page.actor.org_id);
                match (page.actor.role, page.actor.user_id) {
                    ($crate::crm::Role::Admin, _) | (_, None) => {}
                    ($crate::crm::Role::Manager, Some(me)) => {
                        $qb.push(concat!(" AND (", $owner, " IS NULL OR ", $owner, " = "))
                            .push_bind(me)
                            .push(concat!(" OR ", $owner, " IN (SELECT id FROM users WHERE team_id = "))
                            .push_bind(page.actor.team_id)
                            .push("))");
                    }
                    ($crate::crm::Role::Rep, Some(me)) => {
                        $qb.push(concat!(" AND ", $owner, " = ")).push_bind(me);
                    }
                }
                $filters
                if let Some(after) = page.after {
                    $qb.push(if page.oldest_first { concat!(" AND ", $id, " > ") } else { concat!(" AND ", $id, " < ") })
                        .push_bind(after);
                }
                $qb.push(if page.oldest_first { concat!(" ORDER BY ", $id, " ASC") } else { concat!(" ORDER BY ", $id, " DESC") });
                $qb.push(" LIMIT ").push_bind(page.limit);
                $qb
            }};
        }
        let rows: sqlx::Result<Vec<$row>> = match $tx {
            $crate::store::Tx::Sqlite(t) => build!(sqlx::Sqlite).build_query_as().fetch_all(&mut **t).await,
            $crate::store::Tx::Postgres(t) => build!(sqlx::Postgres).build_query_as().fetch_all(&mut **t).await,
        };
        rows
    }};
}

/// A write transaction that runs after the earlier ones of the given orgs' intakes: on PostgreSQL,
/// read committed with each org's intake lock ([`orgs::lock_for_intake`], which does not block
/// inserts referencing the org) taken first, in id order so two such transactions never wait on
/// each other crosswise; every statement then sees what the intakes before it committed (the
/// round-robin cursor, open-lead counts, duplicates). Used by the JSON API's intakes and by chat
/// leads that lost a conflict. [`Db::begin`] on SQLite, which has one writer anyway.
pub async fn begin_org_serialized(db: &Db, orgs: impl IntoIterator<Item = i64>) -> Result<Tx, sqlx::Error> {
    let Db::Postgres(pool) = db else { return db.begin().await };
    let mut tx = Tx::Postgres(pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?);
    let mut orgs: Vec<i64> = orgs.into_iter().collect();
    orgs.sort_unstable();
    orgs.dedup();
    for org in orgs {
        orgs::lock_for_intake(&mut tx, org).await?;
    }
    Ok(tx)
}

/// A pause before running a conflicted transaction again: random, growing with the attempt, so
/// writers that met once do not meet again at once.
pub async fn backoff(attempt: u32) {
    let max_ms = 2u64 << attempt.min(6);
    tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(1..=max_ms))).await;
}
