//! `/callback/feishu/{app}`: Feishu event callbacks (the `url_verification` handshake, messages,
//! card button presses). `/callback/feishu/{app}/card` takes the same callbacks, for consoles that
//! configure a separate card request URL. Rejections store nothing.
//!
//! Exactly once: Feishu has no passive reply, so every answer is pushed. The handler gives up the
//! passive path before the bot starts ([`Delivery::push_only`]), so the bot queues its whole reply
//! as outbox rows inside the transaction that records the inbox row (dedupe keys
//! `reply:feishu:<message id>:<n>`). A redelivered event finds its inbox row and queues nothing, so
//! a duplicate cannot make a second reply; the outbox sends each row with an idempotency `uuid`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::callback::{self, Redelivery};
use super::{ApiError, AppState};
use crate::bot::{Delivery, Special};
use crate::crm;
use crate::outbox::Target;
use crate::platform::feishu::{self, Action, App, CallbackError, Opened, SignedHeaders};

pub fn router() -> Router<AppState> {
    Router::new().route("/callback/feishu/{app}", post(receive)).route("/callback/feishu/{app}/card", post(receive))
}

fn app_of(state: &AppState, name: &str) -> Result<Arc<App>, ApiError> {
    state.feishu.get(name).ok_or_else(|| ApiError::NotFound(format!("no feishu app `{name}` is configured")))
}

fn reject(e: CallbackError) -> ApiError {
    tracing::warn!(error = %e, "feishu callback rejected");
    match e {
        CallbackError::BadSignature => ApiError::Unauthorized("signature does not match".into()),
        CallbackError::Stale(ts) => ApiError::Unauthorized(format!("timestamp {ts} is too old or in the future")),
        CallbackError::BadToken => ApiError::Unauthorized("verification token does not match".into()),
        CallbackError::Malformed(m) => ApiError::BadRequest("malformed", m),
    }
}

fn signed_headers(h: &HeaderMap) -> SignedHeaders {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    SignedHeaders {
        timestamp: get("x-lark-request-timestamp"),
        nonce: get("x-lark-request-nonce"),
        signature: get("x-lark-signature"),
    }
}

fn ok_body() -> Response {
    axum::Json(json!({ "msg": "success" })).into_response()
}

async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app = app_of(&state, &name)?;
    let now = state.clock.now();
    let opened = feishu::open(&app, &signed_headers(&headers), &body, now, state.feishu.timestamp_window_secs)
        .map_err(reject)?;
    let (event_id, event_type, tenant_key, event) = match opened {
        Opened::Challenge(challenge) => return Ok(axum::Json(json!({ "challenge": challenge })).into_response()),
        Opened::Other => return Ok(ok_body()),
        Opened::Event { event_id, event_type, tenant_key, event } => (event_id, event_type, tenant_key, event),
    };
    if !tenant_key.is_empty() && tenant_key != app.cfg.corp_id {
        tracing::warn!(app = %app.cfg.name, %tenant_key, "event tenant_key differs from the app's corp_id; identities are linked under corp_id");
    }
    let (msg, reply_to, special) = match feishu::action(&app, &event_id, &event_type, &event, now) {
        Action::Ignore => return Ok(ok_body()),
        Action::Text { msg, reply_to } => (msg, reply_to, None),
        Action::Fixed { msg, reply_to, text } => (msg, reply_to, Some(Special::Reply(text))),
        Action::Location { msg, reply_to, label } => {
            let window = chrono::Duration::minutes(state.feishu.location_window_minutes);
            (msg, reply_to, Some(Special::Location { label, window }))
        }
    };
    if state.feishu.self_register {
        callback::self_register(&state, feishu::PLATFORM, &app.cfg.org, &app.cfg.corp_id, &msg.sender)
            .await
            .map_err(|e| ApiError::from_crm(e, crm::Lang::Zh))?;
    }
    let target = Target { platform: feishu::PLATFORM.into(), app: app.cfg.name.clone(), recipient: reply_to };
    let delivery = Delivery::new(target, feishu::client::TEXT_MAX_BYTES);
    // No passive reply on Feishu: the whole reply goes through the outbox (see the module docs).
    delivery.push_only();
    // Feishu retries after 3 s: a late event the bot has taken up is acknowledged (its reply is
    // queued when it is done); one storage has not taken is refused and delivered again.
    let deadline = state.feishu.ack_deadline;
    let reply = callback::reply_in_time(&state.bot, msg, special, deadline, Redelivery::Retried, delivery).await?;
    match reply {
        Some(reply) if event_type == "card.action.trigger" && !reply.text.is_empty() => {
            // The card shows a toast; the full answer arrives as a reply to the card.
            let toast: String = reply.text.lines().next().unwrap_or_default().chars().take(60).collect();
            Ok(axum::Json(json!({ "toast": { "type": "info", "content": toast } })).into_response())
        }
        _ => Ok(ok_body()),
    }
}
