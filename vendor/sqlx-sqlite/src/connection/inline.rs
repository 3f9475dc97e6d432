//! chatcrm patch: running statements on the caller's thread.
//!
//! Every statement normally travels to the connection's worker thread and its rows travel back,
//! two thread hand-offs per statement. A caller that owns a write transaction and runs many short
//! statements in a row (chatcrm's batch writer) can instead take the connection state out of the
//! worker for a while and step the statements itself. While inline, the worker thread waits on the
//! connection mutex (as it does for `lock_handle`); anything that needs the worker (begin, commit,
//! rollback, ping, close, prepare) first ends inline mode, so the worker is never asked to do work
//! while it cannot run.

use std::sync::Arc;

use futures_intrusive::sync::MutexGuard;
use sqlx_core::error::Error;
use sqlx_core::sql_str::SqlStr;
use sqlx_core::Either;

use crate::connection::worker::{update_cached_statements_size, WorkerSharedState};
use crate::connection::{execute, ConnectionState};
use crate::{SqliteArguments, SqliteConnection, SqliteQueryResult, SqliteRow};

pub(crate) struct InlineGuard {
    // Field order matters: the guard borrows the mutex inside `shared` and must drop first.
    guard: MutexGuard<'static, ConnectionState>,
    shared: Arc<WorkerSharedState>,
}

impl InlineGuard {
    /// Runs one query to completion (or to `limit` rows) on this thread.
    pub(crate) fn run(
        &mut self,
        sql: SqlStr,
        arguments: Option<SqliteArguments>,
        persistent: bool,
        limit: Option<usize>,
    ) -> Vec<Result<Either<SqliteQueryResult, SqliteRow>, Error>> {
        let mut out = Vec::new();
        match execute::iter(&mut self.guard, sql, arguments, persistent) {
            Ok(iter) => {
                let mut rows = 0;
                for res in iter {
                    let stop = match &res {
                        Err(_) => true,
                        Ok(Either::Right(_)) => {
                            rows += 1;
                            limit.is_some_and(|l| rows >= l)
                        }
                        Ok(Either::Left(_)) => false,
                    };
                    out.push(res);
                    if stop {
                        break;
                    }
                }
            }
            Err(e) => out.push(Err(e)),
        }
        update_cached_statements_size(&self.guard, &self.shared.cached_statements_size);
        out
    }
}

impl SqliteConnection {
    /// Takes the connection out of its worker thread: until [`end_inline`](Self::end_inline) (or
    /// the next begin, commit, rollback, ping or close, which end it themselves), statements run
    /// on the calling thread, blocking it while SQLite works.
    ///
    /// Meant for a dedicated thread that already holds the write lock (after `BEGIN IMMEDIATE`),
    /// so no statement waits on the busy handler.
    pub async fn begin_inline(&mut self) -> Result<(), Error> {
        if self.inline.is_some() {
            return Ok(());
        }
        let shared = Arc::clone(&self.worker.shared);
        let guard = self.worker.unlock_db().await?;
        // SAFETY: the guard borrows the mutex inside `WorkerSharedState`, which `shared` keeps
        // alive for at least as long as the guard: `InlineGuard` drops `guard` before `shared`.
        let guard: MutexGuard<'static, ConnectionState> = unsafe { std::mem::transmute(guard) };
        self.inline = Some(InlineGuard { guard, shared });
        Ok(())
    }

    /// Gives the connection back to its worker thread.
    pub fn end_inline(&mut self) {
        self.inline = None;
    }

    /// Whether statements currently run on the caller's thread.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }
}
