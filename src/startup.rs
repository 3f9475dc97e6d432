//! Building and running the server. `Application::build` binds the listener itself so tests can
//! ask for port 0 and read the port back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::bot::Bot;
use crate::clock::Clock;
use crate::config::{DatabaseKind, Settings};
use crate::http::{self, AppState};
use crate::outbox::{Dispatcher, Routes, Senders};
use crate::schedule::Scheduler;
use crate::store::{Db, DbOptions};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database {url}: {source}")]
    Database { url: String, source: sqlx::Error },
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Wecom(#[from] crate::platform::wecom::SetupError),
    #[error("{0}")]
    Dingtalk(#[from] crate::platform::dingtalk::SetupError),
    #[error("{0}")]
    Feishu(#[from] crate::platform::feishu::SetupError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("seeding the demo org failed: {0}")]
    Demo(#[from] crate::crm::CrmError),
}

/// Opens the database named by the settings and applies pending migrations.
pub async fn open_db(settings: &Settings) -> Result<Db, StartupError> {
    let db = Db::connect(&DbOptions::from_settings(settings))
        .await
        .map_err(|source| StartupError::Database { url: settings.database_url_redacted(), source })?;
    db.migrate().await?;
    Ok(db)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The scheduler and the outbox dispatcher, when `[schedule] enabled`.
    background: Option<(Scheduler, Dispatcher)>,
}

impl Application {
    /// Binds `listen` (port 0 picks a free one) and prepares the router over an open database.
    pub async fn build(settings: Settings, db: Db, clock: Clock) -> Result<Self, StartupError> {
        let addr = settings.listen.clone();
        let listener = TcpListener::bind(&addr).await.map_err(|source| StartupError::Bind { addr, source })?;
        let routes = Routes::from_settings(&settings);
        let bot = Bot::with_settings(
            db.clone(),
            clock.clone(),
            settings.undo_window(),
            routes.clone(),
            crate::report::ReportOptions::from(&settings.schedule),
        )
        .with_sender_limit(settings.sender_limit());
        let wecom = crate::platform::wecom::Apps::from_settings(&settings.wecom)?;
        let dingtalk = crate::platform::dingtalk::Apps::from_settings(&settings.dingtalk)?;
        let feishu = crate::platform::feishu::Apps::from_settings(&settings.feishu)?;
        let metrics = crate::metrics::Metrics::new();
        let background = if settings.schedule.enabled {
            let plan = settings.schedule_plan()?;
            let instance = if settings.schedule.instance_id.is_empty() {
                crate::schedule::default_instance_id()
            } else {
                settings.schedule.instance_id.clone()
            };
            let dispatcher = Dispatcher::new(
                db.clone(),
                clock.clone(),
                &instance,
                Senders::from_wecom(&wecom, &settings.wecom.api_base, std::time::Duration::from_secs(10))
                    .with_pushers(&dingtalk, &feishu),
                plan.dispatch.clone(),
            )
            .with_counters(metrics.deliveries.clone());
            let scheduler = Scheduler::new(db.clone(), clock.clone(), Arc::new(plan), Arc::new(routes), &instance)
                .notify(dispatcher.waker());
            match db.kind() {
                DatabaseKind::Sqlite => tracing::info!(
                    instance,
                    "scheduler and outbox on SQLite: run this as the only instance (use PostgreSQL for several)"
                ),
                DatabaseKind::Postgres => {
                    tracing::info!(instance, "scheduler and outbox on PostgreSQL: instances share work by leases")
                }
            }
            Some((scheduler, dispatcher))
        } else {
            tracing::info!(
                "scheduler disabled ([schedule] enabled = false): no reminders or digests from this instance"
            );
            None
        };
        let state = AppState { db, bot, clock, settings: Arc::new(settings), wecom, dingtalk, feishu, metrics };
        Ok(Self { listener, state, background })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish and
    /// the bot store the messages platforms were already told were received, waiting at most
    /// `shutdown_timeout_secs` in all.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartupError> {
        let grace = self.state.settings.shutdown_timeout();
        let bot = self.state.bot.clone();
        let app = http::router(self.state);
        let began = Arc::new(std::sync::OnceLock::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut workers = Vec::new();
        if let Some((scheduler, dispatcher)) = self.background {
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            workers.push(tokio::spawn(scheduler.run(stopped(stop_rx.clone()))));
            workers.push(tokio::spawn(dispatcher.run(stopped(stop_rx.clone()))));
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = {
            let began = began.clone();
            async move {
                shutdown.await;
                let _ = began.set(tokio::time::Instant::now());
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop_tx.send(true);
                let _ = tx.send(());
            }
        };
        let result = Self::serve(self.listener, app, signal, rx, grace).await;
        // Acknowledged messages still queued (a slow or failing database) would be lost with the
        // process: the platform will not send them again.
        // One grace period for all of it.
        let left = || grace.saturating_sub(began.get().map_or(std::time::Duration::ZERO, |t| t.elapsed()));
        let unfinished = bot.drain(left()).await;
        if unfinished > 0 {
            tracing::error!(
                unfinished,
                ?grace,
                "stopping with messages not yet stored: those acknowledged to their platform are lost, the others it sends again"
            );
        }
        // The scheduler and dispatcher finish the batch they are in.
        for w in workers {
            let _ = tokio::time::timeout(left(), w).await;
        }
        result
    }

    async fn serve(
        listener: TcpListener,
        app: axum::Router,
        signal: impl Future<Output = ()> + Send + 'static,
        rx: tokio::sync::oneshot::Receiver<()>,
        grace: std::time::Duration,
    ) -> Result<(), StartupError> {
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        let server = server.into_future();
        tokio::pin!(server);
        tokio::select! {
            res = &mut server => return res.map_err(StartupError::Serve),
            _ = rx => {}
        }
        match tokio::time::timeout(grace, server).await {
            Ok(res) => res.map_err(StartupError::Serve),
            Err(_) => {
                tracing::warn!(?grace, "in-flight requests did not finish in time; stopping anyway");
                Ok(())
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
