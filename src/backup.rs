//! Backups of the SQLite database while the server runs, and restores.
//!
//! A backup is `VACUUM INTO`: SQLite writes a consistent, compacted copy of the database as of
//! one read transaction, without stopping writers (WAL mode). It is then opened and checked
//! (`PRAGMA integrity_check`, the migrations it carries, row counts). A restore checks the file
//! the same way (and refuses one from a newer chatcrm), copies it next to the target and checks
//! the copy, folds the target's WAL into it (refusing a database still in use), then renames the
//! copy into place, so a refused or failed restore leaves the target as it was. PostgreSQL is backed up with its own tools (`pg_dump`); the
//! commands say how.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};

use crate::store::Db;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{} already exists: back up to a new file name", .0.display())]
    Exists(PathBuf),
    #[error("{} is not a chatcrm SQLite database: {why}", .path.display())]
    NotADatabase { path: PathBuf, why: String },
    #[error(
        "{} already holds a chatcrm database with data: stop the server, then add --force to replace it",
        .0.display()
    )]
    TargetHasData(PathBuf),
    #[error("restore needs a SQLite database_url (sqlite://FILE); PostgreSQL is restored with pg_restore")]
    NotSqlite,
    #[error(
        "{} was written by a newer chatcrm (migration {version} is unknown to this one): restore it with that version",
        .path.display()
    )]
    Newer { path: PathBuf, version: i64 },
    #[error("{} is in use: stop the server, then restore", .0.display())]
    InUse(PathBuf),
    #[error("PostgreSQL is backed up with its own tools:\n{}", postgres_instructions())]
    Postgres,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

/// What a backup or restore wrote, as checked afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub path: PathBuf,
    pub bytes: u64,
    /// Migrations the copy carries.
    pub migrations: i64,
    /// Rows per table in the copy, by table name.
    pub tables: Vec<(String, i64)>,
}

impl Report {
    pub fn rows(&self, table: &str) -> Option<i64> {
        self.tables.iter().find(|(t, _)| t == table).map(|(_, n)| *n)
    }
}

pub fn postgres_instructions() -> &'static str {
    "  back up:  pg_dump --format=custom --file=chatcrm-$(date +%F).dump \"$DATABASE_URL\"\n  \
     restore:  stop every chatcrm instance, then\n            \
     pg_restore --clean --if-exists --no-owner --dbname=\"$DATABASE_URL\" chatcrm-YYYY-MM-DD.dump\n  \
     pg_dump takes a consistent snapshot while chatcrm keeps running."
}

/// Writes a consistent copy of the live database to `dest` (which must not exist) and checks it.
pub async fn backup(db: &Db, dest: &Path) -> Result<Report, BackupError> {
    let Db::Sqlite(pool) = db else { return Err(BackupError::Postgres) };
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let target = dest.to_str().ok_or_else(|| BackupError::NotADatabase {
        path: dest.to_path_buf(),
        why: "the path is not valid UTF-8".into(),
    })?;
    sqlx::query("VACUUM INTO $1").bind(target).execute(pool).await?;
    inspect(dest).await
}

/// Replaces the SQLite database at `target_url` with the backup at `src`. Refuses a target that
/// holds data unless `force`; the server must be stopped first.
pub async fn restore(src: &Path, target_url: &str, force: bool) -> Result<Report, BackupError> {
    inspect(src).await?;
    refuse_unknown_migrations(src).await?;
    let target = sqlite_path(target_url).ok_or(BackupError::NotSqlite)?;
    if !force && has_data(&target).await? {
        return Err(BackupError::TargetHasData(target));
    }
    let staging = with_suffix(&target, ".restoring");
    remove_if_exists(&staging)?;
    {
        let mut c = open_read_only(src).await?;
        let into = staging.to_str().ok_or_else(|| BackupError::NotADatabase {
            path: staging.clone(),
            why: "the path is not valid UTF-8".into(),
        })?;
        sqlx::query("VACUUM INTO $1").bind(into).execute(&mut c).await?;
        c.close().await?;
    }
    // The copy is checked before anything of the target is touched.
    let restored = match inspect(&staging).await {
        Ok(r) => Report { path: target.clone(), ..r },
        Err(e) => {
            remove_if_exists(&staging)?;
            return Err(e);
        }
    };
    if target.exists() {
        // Whatever the old database still holds in its WAL goes into the file first, so removing
        // the WAL below loses nothing if the rename then fails; a server still using it is found.
        if let Err(e) = checkpoint(&target).await {
            remove_if_exists(&staging)?;
            return Err(e);
        }
    }
    // The old database's WAL must not be replayed onto the restored file.
    remove_if_exists(&with_suffix(&target, "-wal"))?;
    remove_if_exists(&with_suffix(&target, "-shm"))?;
    std::fs::rename(&staging, &target)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(restored)
}

/// A backup from a newer binary would restore, and then the server would refuse to start on it.
async fn refuse_unknown_migrations(path: &Path) -> Result<(), BackupError> {
    let mut c = open_read_only(path).await?;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&mut c).await?;
    c.close().await?;
    match versions.into_iter().find(|v| !Db::knows_sqlite_migration(*v)) {
        Some(version) => Err(BackupError::Newer { path: path.to_path_buf(), version }),
        None => Ok(()),
    }
}

/// Moves the WAL of the database at `path` into the file and empties it; refuses when another
/// connection (a running server) keeps that from completing, or, for a database not in WAL mode,
/// holds a lock on it.
async fn checkpoint(path: &Path) -> Result<(), BackupError> {
    let opts =
        SqliteConnectOptions::new().filename(path).create_if_missing(false).busy_timeout(std::time::Duration::ZERO);
    let mut c = SqliteConnection::connect_with(&opts).await?;
    let run = async {
        // Exclusive locking: in WAL mode another open connection keeps the exclusive lock from
        // us even when it reads nothing from the WAL.
        sqlx::query("PRAGMA locking_mode = EXCLUSIVE").execute(&mut c).await?;
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut c).await?;
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut c).await?;
        sqlx::query("ROLLBACK").execute(&mut c).await?;
        Ok::<_, sqlx::Error>(busy == 0)
    };
    let done = run.await;
    c.close().await?;
    match done {
        Ok(true) => Ok(()),
        Ok(false) => Err(BackupError::InUse(path.to_path_buf())),
        // SQLITE_BUSY, SQLITE_LOCKED: another connection has it.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("5" | "6")) => {
            Err(BackupError::InUse(path.to_path_buf()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens a database file read-only and checks that it is an intact chatcrm database.
pub async fn inspect(path: &Path) -> Result<Report, BackupError> {
    let not_db = |why: String| BackupError::NotADatabase { path: path.to_path_buf(), why };
    if !path.is_file() {
        return Err(not_db("no such file".into()));
    }
    let mut c = open_read_only(path).await.map_err(|e| not_db(e.to_string()))?;
    let check: String =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut c).await.map_err(|e| not_db(e.to_string()))?;
    if check != "ok" {
        return Err(not_db(format!("integrity check: {check}")));
    }
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut c)
        .await
        .map_err(|_| not_db("it has no chatcrm migrations".into()))?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut c)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        // Table names come from the file's own schema; quoted as identifiers.
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", name.replace('"', "\"\""));
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut c).await?;
        tables.push((name, n));
    }
    c.close().await?;
    Ok(Report { path: path.to_path_buf(), bytes: std::fs::metadata(path)?.len(), migrations, tables })
}

async fn open_read_only(path: &Path) -> Result<SqliteConnection, sqlx::Error> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .synchronous(SqliteSynchronous::Full);
    SqliteConnection::connect_with(&opts).await
}

/// True when the file exists and its orgs table has rows.
async fn has_data(path: &Path) -> Result<bool, BackupError> {
    if !path.exists() {
        return Ok(false);
    }
    let Ok(mut c) = open_read_only(path).await else { return Ok(true) };
    let orgs: Result<i64, _> = sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(&mut c).await;
    c.close().await?;
    // A file that is not a chatcrm database is not silently overwritten either.
    Ok(orgs.map_or(true, |n| n > 0))
}

/// The file of a `sqlite://` URL (query string dropped).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    if crate::config::DatabaseKind::of(url) != Ok(crate::config::DatabaseKind::Sqlite) {
        return None;
    }
    let opts = SqliteConnectOptions::from_str(url).ok()?;
    let p = opts.get_filename();
    (!p.as_os_str().is_empty() && p != Path::new(":memory:")).then(|| p.to_path_buf())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
