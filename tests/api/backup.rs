//! `chatcrm backup` / `restore`: an online SQLite backup taken while the bot writes is consistent,
//! restores to an identical database, and every refusal changes nothing.

use std::process::Command;

use chatcrm::backup::{self, BackupError};
use chatcrm::store::{Db, DbOptions};
use sqlx::Connection;

use crate::helpers::{TestDb, World};

fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatcrm"))
        .args(args)
        .env("CHATCRM_DATABASE_URL", url)
        .env("CHATCRM_LOG_LEVEL", "warn")
        .output()
        .expect("run chatcrm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_bot_writes_is_consistent_and_restores_identically() {
    let t = TestDb::sqlite().await;
    let w = World::new(t.db.clone()).await;
    w.customer(&w.r1, "海尔智家").await;
    let bot = w.bot();
    // Visits keep arriving while the backup runs (2,000 of them, so it lands mid-stream): each is one inbox row and one activity,
    // committed together, so any consistent copy has as many of one as of the other.
    let writer = {
        let (bot, msgs) = (
            bot.clone(),
            (0..2000).map(|n| w.msg(&w.r1, &format!("b{n}"), &format!("拜访 海尔智家 第{n}次"))).collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            for m in msgs {
                bot.handle(&m).await.expect("visit");
            }
        })
    };
    while w.count("inbox").await < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("backup.db");
    let report = backup::backup(&t.db, &file).await.expect("backup");
    writer.await.expect("writer");
    let (inbox, activities) = (report.rows("inbox").expect("inbox"), report.rows("activities").expect("activities"));
    assert_eq!(inbox, activities, "one activity per message in the copy");
    // The copy was taken mid-stream, or the equality above proves nothing.
    assert!((50..2000).contains(&inbox), "backup taken while the bot wrote: {inbox} of 2000 messages in the copy");
    eprintln!("backup taken with {inbox} of 2000 visits written");
    assert!(report.migrations > 0 && report.rows("users") == Some(8), "{report:?}");
    assert!(matches!(backup::backup(&t.db, &file).await, Err(BackupError::Exists(_))), "never overwrites a file");

    let target = dir.path().join("restored.db");
    let url = format!("sqlite://{}", target.display());
    let restored = backup::restore(&file, &url, false).await.expect("restore");
    assert_eq!(restored.tables, report.tables, "the same rows in every table");
    let db = Db::connect(&DbOptions::new(&url)).await.expect("open restored");
    db.migrate().await.expect("migrations already applied");
    let mut tx = db.begin_read().await.expect("read");
    let names: Vec<String> =
        chatcrm::run!(&mut tx, |c| sqlx::query_scalar("SELECT name FROM customers").fetch_all(c).await)
            .expect("customers");
    tx.commit().await.expect("commit");
    assert_eq!(names, ["海尔智家"]);
    db.close().await;
}

#[tokio::test]
async fn restore_refusals_change_nothing() {
    let t = TestDb::sqlite().await;
    let w = World::new(t.db.clone()).await;
    w.customer(&w.r1, "海尔智家").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.db");
    backup::backup(&t.db, &good).await.expect("backup");
    let target = dir.path().join("live.db");
    let url = format!("sqlite://{}", target.display());
    backup::restore(&good, &url, false).await.expect("first restore into an empty place");
    let before = std::fs::read(&target).expect("read target");

    // Not a database, a truncated one, a missing one: refused with the reason, target untouched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").expect("write junk");
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &std::fs::read(&good).expect("read")[..8192]).expect("write truncated");
    for (src, force) in
        [(junk.as_path(), true), (truncated.as_path(), true), (dir.path().join("none.db").as_path(), true)]
    {
        let err = backup::restore(src, &url, force).await.expect_err("refused");
        assert!(matches!(err, BackupError::NotADatabase { .. }), "{src:?}: {err}");
    }
    // A target with data needs --force.
    let err = backup::restore(&good, &url, false).await.expect_err("refused without force");
    assert!(matches!(err, BackupError::TargetHasData(_)), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read(&target).expect("read target"), before, "the target is unchanged");
    // PostgreSQL targets are pg_restore's job.
    let pg = backup::restore(&good, "postgres://postgres@127.0.0.1:5432/x", true).await.expect_err("not sqlite");
    assert!(matches!(pg, BackupError::NotSqlite), "{pg}");
    // A backup from a newer chatcrm (a migration this binary does not have) would restore and
    // then keep the server from starting.
    let newer = dir.path().join("newer.db");
    std::fs::copy(&good, &newer).expect("copy");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&newer);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await.expect("open copy");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
             VALUES (99990101000000, 'from the future', CURRENT_TIMESTAMP, TRUE, x'00', 0)",
        )
        .execute(&mut c)
        .await
        .expect("a future migration");
        c.close().await.expect("close");
    }
    let err = backup::restore(&newer, &url, true).await.expect_err("refused: newer");
    assert!(matches!(err, BackupError::Newer { version: 99990101000000, .. }), "{err}");
    assert_eq!(std::fs::read(&target).expect("read target"), before, "the target is unchanged");
    // A database still in use (a server not stopped, in WAL mode as the server runs it, or not)
    // is not replaced.
    for wal in [false, true] {
        let mut opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&target);
        if wal {
            opts = opts.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        }
        let mut user = sqlx::SqliteConnection::connect_with(&opts).await.expect("open target");
        let before = std::fs::read(&target).expect("read target");
        sqlx::query("BEGIN").execute(&mut user).await.expect("begin");
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(&mut user).await.expect("read");
        let err = backup::restore(&good, &url, true).await.expect_err("refused: in use");
        assert!(matches!(err, BackupError::InUse(_)), "wal {wal}: {err}");
        assert_eq!(std::fs::read(&target).expect("read target"), before, "wal {wal}: the target is unchanged");
        sqlx::query("ROLLBACK").execute(&mut user).await.expect("rollback");
        user.close().await.expect("close");
    }
    assert!(!dir.path().join("live.db.restoring").exists(), "no staging file left behind");
    backup::restore(&good, &url, true).await.expect("restore with --force");
}

#[test]
fn the_cli_backs_up_restores_and_explains_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let (code, _, err) = cli(&live, &["demo"]);
    assert_eq!(code, 0, "{err}");
    let file = dir.path().join("b.db");
    let (code, out, err) = cli(&live, &["backup", &file.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("integrity check ok") && out.contains("customers"), "{out}");
    let (code, _, err) = cli(&live, &["backup", &file.display().to_string()]);
    assert_eq!(code, 2, "an existing file is refused");
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = cli(&live, &["restore", &file.display().to_string()]);
    assert_eq!(code, 2, "a database with data needs --force");
    assert!(err.contains("--force"), "{err}");
    let other = format!("sqlite://{}", dir.path().join("other.db").display());
    let (code, out, err) = cli(&other, &["restore", &file.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(json["tables"].as_array().is_some_and(|t| !t.is_empty()), "{json}");
    // PostgreSQL: how to use pg_dump and pg_restore, without touching the database.
    let (code, _, err) = cli("postgres://postgres@127.0.0.1:1/none", &["backup", "x.dump"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pg_dump --format=custom") && err.contains("pg_restore"), "{err}");
}
