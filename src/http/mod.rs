//! The HTTP edge: router, middleware, health checks. Handlers translate HTTP to plain calls.

pub mod api_v1;
mod callback;
mod console;
mod dingtalk;
mod error;
mod feishu;
mod outbox;
mod wecom;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::ServiceBuilderExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::MakeRequestUuid;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::bot::Bot;
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Db;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub bot: Bot,
    pub clock: Clock,
    pub settings: Arc<Settings>,
    pub wecom: crate::platform::wecom::Apps,
    pub dingtalk: crate::platform::dingtalk::Apps,
    pub feishu: crate::platform::feishu::Apps,
    /// Request, message and delivery counters for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_secs);
    let body_limit = state.settings.body_limit_bytes;
    let mut app =
        Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics));
    // The outbox admin API has no login either: served with the console or not at all.
    if state.settings.console_served() {
        app = app.merge(console::router()).merge(outbox::router());
    } else if state.settings.console_enabled {
        tracing::warn!(
            listen = %state.settings.listen,
            "console and outbox API not served: they have no login and `listen` is not a loopback address (set console_allow_remote = true to serve them anyway)"
        );
    }
    app = app.merge(wecom::router()).merge(dingtalk::router()).merge(feishu::router());
    // The JSON API has its own login (per-org bearer tokens): served wherever the server listens.
    app = app.merge(api_v1::router());
    // Outermost first: request id, trace (its span carries the id), panic guard, timeout, body limit.
    let middleware = ServiceBuilder::new()
        .set_x_request_id(MakeRequestUuid)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), observe))
        .propagate_x_request_id()
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(RequestBodyLimitLayer::new(body_limit));
    app.fallback(error::not_found).layer(middleware).with_state(state)
}

/// Counts every request by route and status, and its latency (timeouts and panics included).
async fn observe(
    State(m): State<Arc<crate::metrics::Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = crate::metrics::Route::of(req.uri().path());
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    m.observe(route, res.status().as_u16(), start.elapsed());
    res
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(state.bot.messages(), &state.db, state.clock.now()).await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::Unavailable("database unreachable".into()).into_response()
        }
    }
}
