//! Graceful shutdown: stop accepting, finish what is in flight, give up after the grace period.
//!
//! SQLite only: the tests hold a request "in flight" by taking SQLite's write lock on a separate
//! connection (`BEGIN IMMEDIATE`), so the request's own `BEGIN IMMEDIATE` waits on the busy
//! timeout until the test lets go. PostgreSQL has no database-wide write lock to hold that way,
//! and the shutdown path (axum's graceful shutdown in `run_until`) does not depend on the backend.

use super::helpers::*;
use super::http::{HAIER, Server, count, last_contacted, seed_demo, settings};

use std::str::FromStr;
use std::time::Duration;

use chatcrm::config::Settings;
use chatcrm::store::{Db, DbOptions};
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};

/// Generous bound for "the server stopped"; a hang fails the test instead of blocking the suite.
const STOP_BOUND: Duration = Duration::from_secs(60);

/// A second connection to the test database that holds the write lock until released.
pub async fn hold_write_lock(url: &str) -> SqliteConnection {
    let mut conn = SqliteConnectOptions::from_str(url).expect("url").connect().await.expect("raw connection");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("take the write lock");
    conn
}

pub async fn release_write_lock(mut conn: SqliteConnection) {
    sqlx::query("ROLLBACK").execute(&mut conn).await.expect("release the write lock");
}

/// Posts a console message on a task of its own; the result is (status, JSON body).
fn post_in_background(
    server: &Server,
    text: &str,
) -> tokio::task::JoinHandle<Result<(u16, serde_json::Value), String>> {
    let req = server.client.post(server.url("/console/messages")).json(&json!({ "user": "lilei", "text": text }));
    tokio::spawn(async move {
        let res = req.send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = res.json().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

/// Lets the request reach the server and block on the lock: ordering, not a timing assertion.
async fn let_request_arrive() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn shutdown_finishes_the_in_flight_request() {
    let t = TestDb::sqlite().await;
    seed_demo(&t.db).await;
    let activities = count(&t.db, "activities").await;
    let mut server = Server::start(settings(), t.db.clone()).await;
    let addr = server.addr;

    let lock = hold_write_lock(&t.url).await;
    let request = post_in_background(&server, "拜访 海尔 聊了二期需求");
    let_request_arrive().await;
    assert!(!request.is_finished(), "the request should be waiting for the write lock");

    server.signal_shutdown();
    let task = server.take_task();
    let_request_arrive().await;
    // The server cannot be done: a request is still in flight.
    assert!(!task.is_finished(), "the server stopped before its in-flight request finished");
    release_write_lock(lock).await;

    let (status, body) = tokio::time::timeout(STOP_BOUND, request)
        .await
        .expect("the in-flight request never finished")
        .expect("request task panicked")
        .expect("the in-flight request was cut off");
    assert_eq!(status, 200, "{body}");
    let reply = body["reply"].as_str().unwrap_or_default();
    assert!(reply.contains("海尔智家"), "{reply}");

    let res = tokio::time::timeout(STOP_BOUND, task).await.expect("server did not stop").expect("server panicked");
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(count(&t.db, "activities").await, activities + 1);
    assert_eq!(last_contacted(&t.db, HAIER).await, Some(t0()));

    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "a connection was accepted after shutdown");
}

#[tokio::test]
async fn idle_shutdown_returns_promptly() {
    let t = TestDb::sqlite().await;
    // A grace period far beyond the bound below: returning at all shows it did not wait for it.
    let s = Settings { shutdown_timeout_secs: 3600, ..settings() };
    let server = Server::start(s, t.db.clone()).await;
    let addr = server.addr;
    tokio::time::timeout(STOP_BOUND, server.stop()).await.expect("an idle server waited for its grace period");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "a connection was accepted after shutdown");
}

/// An idle keep-alive connection left open by a client does not hold shutdown up.
#[tokio::test]
async fn idle_keep_alive_connection_does_not_delay_shutdown() {
    let t = TestDb::sqlite().await;
    let s = Settings { shutdown_timeout_secs: 3600, ..settings() };
    let server = Server::start(s, t.db.clone()).await;
    let addr = server.addr;
    let client = server.client.clone();
    let r = server.get("/healthz").await;
    assert_eq!(r.status, 200);
    tokio::time::timeout(STOP_BOUND, server.stop()).await.expect("an idle keep-alive connection held up shutdown");
    assert!(client.get(format!("http://{addr}/healthz")).send().await.is_err(), "served after shutdown");
}

/// A request stuck longer than `shutdown_timeout_secs` does not keep the server from stopping.
#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let t = TestDb::sqlite().await;
    seed_demo(&t.db).await;
    // The request waits for the lock far longer than the grace period (and is not timed out).
    let opts = DbOptions { busy_timeout: Duration::from_secs(600), ..DbOptions::new(&t.url) };
    let db = Db::connect(&opts).await.expect("open");
    let s = Settings { shutdown_timeout_secs: 1, request_timeout_secs: 600, ..settings() };
    let mut server = Server::start(s, db.clone()).await;

    let lock = hold_write_lock(&t.url).await;
    let request = post_in_background(&server, "拜访 海尔 聊了二期需求");
    let_request_arrive().await;
    server.signal_shutdown();
    let task = server.take_task();
    let res = tokio::time::timeout(STOP_BOUND, task)
        .await
        .expect("shutdown waited past its grace period")
        .expect("server panicked");
    assert!(res.is_ok(), "{res:?}");
    assert!(!request.is_finished(), "the stuck request finished although the lock is held");

    // Let the abandoned request go; its outcome after the server stopped is not specified.
    release_write_lock(lock).await;
    let _ = tokio::time::timeout(STOP_BOUND, request).await;
    db.close().await;
}
