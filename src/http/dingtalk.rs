//! `/callback/dingtalk/{app}`: robot messages (HTTP mode), signed with the `timestamp` + `sign`
//! headers; replies go to the message's session webhook, or through the outbox as a work
//! notification when the webhook is gone or the bot is late. `/callback/dingtalk/{app}/events`:
//! encrypted event subscription callbacks, answered with the encrypted `success`.
//! Rejections store nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tracing::Instrument as _;

use super::callback::{self, Redelivery};
use super::{ApiError, AppState};
use crate::bot::{Delivery, Special};
use crate::crm;
use crate::outbox::{self, Kind, OutMessage, Outgoing, Target};
use crate::platform::dingtalk::{self, Action, App, CallbackError, EventQuery, RobotMessage};

/// A session webhook this close to its expiry is not used (the post itself takes time).
const SESSION_MARGIN: Duration = Duration::from_secs(10);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callback/dingtalk/{app}", post(receive))
        .route("/callback/dingtalk/{app}/events", post(events))
}

fn app_of(state: &AppState, name: &str) -> Result<Arc<App>, ApiError> {
    state.dingtalk.get(name).ok_or_else(|| ApiError::NotFound(format!("no dingtalk app `{name}` is configured")))
}

fn reject(e: CallbackError) -> ApiError {
    tracing::warn!(error = %e, "dingtalk callback rejected");
    match e {
        CallbackError::BadSignature => ApiError::Unauthorized("signature does not match".into()),
        CallbackError::Stale(ts) => ApiError::Unauthorized(format!("timestamp {ts} is too old or in the future")),
        CallbackError::Malformed(m) => ApiError::BadRequest("malformed", m),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The session webhook failed after the message was handled: push the reply instead, once.
async fn queue_instead(state: &AppState, target: &Target, message_id: &str, text: &str) {
    let now = state.clock.now();
    let key = format!("reply:{}:{message_id}:session", dingtalk::PLATFORM);
    let message = OutMessage::text(crate::platform::markdown::plain_text(text));
    let out = Outgoing {
        org_id: None,
        user_id: None,
        kind: Kind::Reply,
        target,
        message: &message,
        dedupe_key: &key,
        not_before: now,
    };
    let result = async {
        let mut tx = state.db.begin().await?;
        outbox::enqueue(&mut tx, &out, now).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => tracing::info!("session webhook failed; the reply is queued as a work notification"),
        Err(e) => tracing::error!(error = %e, "session webhook failed and the reply could not be queued; it is lost"),
    }
}

async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app = app_of(&state, &name)?;
    let now = state.clock.now();
    let window = state.dingtalk.timestamp_window_ms;
    dingtalk::verify_robot(&app, header(&headers, "timestamp"), header(&headers, "sign"), now, window)
        .map_err(reject)?;
    let m = RobotMessage::parse(&body).map_err(reject)?;
    let span =
        tracing::info_span!("dingtalk", app = %name, org = %app.cfg.org, msg_id = %m.msg_id, sender = %m.sender());
    handle(state, app, m, now).instrument(span).await
}

async fn handle(
    state: AppState,
    app: Arc<App>,
    m: RobotMessage,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Response, ApiError> {
    let same_corp = m.sender_corp_id.as_deref().is_none_or(|c| c.is_empty() || c == app.cfg.corp_id);
    if state.dingtalk.self_register
        && same_corp
        && let Some(staff) = m.sender_staff_id.as_deref().filter(|s| !s.is_empty())
    {
        callback::self_register(&state, dingtalk::PLATFORM, &app.cfg.org, &app.cfg.corp_id, staff)
            .await
            .map_err(|e| ApiError::from_crm(e, crm::Lang::Zh))?;
    }
    let (msg, special) = match dingtalk::action(&app, &m, now) {
        Action::Ignore => return Ok(StatusCode::OK.into_response()),
        Action::Text(msg) => (msg, None),
        Action::Fixed(msg, text) => (msg, Some(Special::Reply(text))),
        Action::Foreign(text) => {
            if let Some(url) =
                m.live_session_webhook(now, SESSION_MARGIN).filter(|u| state.dingtalk.session_webhook_allowed(u))
            {
                let _ = app.pusher.reply_in_session(url, &text, None).await;
            }
            return Ok(StatusCode::OK.into_response());
        }
    };
    let session = m
        .live_session_webhook(now, SESSION_MARGIN)
        .filter(|url| state.dingtalk.session_webhook_allowed(url))
        .map(str::to_string);
    if session.is_none() && m.session_webhook.is_some() {
        tracing::info!("session webhook expired or not under api_base; the reply is pushed");
    }
    // Late replies (and replies without a usable session) go to the sender as a work
    // notification; in a group too, since the robot OpenAPI for groups is not used.
    let target =
        Target { platform: dingtalk::PLATFORM.into(), app: app.cfg.name.clone(), recipient: msg.sender.clone() };
    let delivery = Delivery::new(target.clone(), usize::MAX);
    // In a group the answer goes to the sender privately (the group only gets a note): it can
    // hold what the sender may see and the group's other members may not. Without an agent id
    // the app cannot message anyone privately, and the answer is kept in the inbox only.
    let group = m.is_group();
    let private = app.cfg.agent_id.is_some();
    if group && !private {
        delivery.never_push();
    } else if session.is_none() || group {
        delivery.push_only();
    }
    let lang = crate::command::detect_lang(&msg.text);
    let message_id = msg.message_id.clone();
    // DingTalk's robot retries are not documented: a late message is kept, not refused.
    let late = Redelivery::Unknown;
    let deadline = state.dingtalk.reply_deadline;
    let Some(reply) = callback::reply_in_time(&state.bot, msg, special, deadline, late, delivery).await? else {
        return Ok(StatusCode::OK.into_response());
    };
    // A duplicate delivery was answered the first time: do not reply twice.
    if let Some(url) = session
        && !reply.text.is_empty()
        && !reply.duplicate
    {
        if group {
            let note = crate::bot::render::group_note(lang, private);
            // Only a pointer is lost if this fails: the answer itself is queued privately.
            if let Err(e) = app.pusher.reply_in_session(&url, &note, Some(m.sender())).await {
                tracing::warn!(error = %e, "the group note could not be posted");
            }
        } else if app.pusher.reply_in_session(&url, &reply.text, None).await.is_err() {
            queue_instead(&state, &target, &message_id, &reply.text).await;
        }
    }
    // Whether DingTalk shows a reply carried in this response is not known (PLATFORMS.md 8):
    // an empty 200, the reply went through the session webhook.
    Ok(StatusCode::OK.into_response())
}

async fn events(
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<EventQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app = app_of(&state, &name)?;
    let Some(crypto) = app.events.as_ref() else {
        return Err(ApiError::NotFound(format!("dingtalk app `{name}` has no event subscription configured")));
    };
    let q = q.map(|Query(q)| q).map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))?;
    let now = state.clock.now();
    let event = dingtalk::open_event(crypto, &q, &body, now, state.dingtalk.timestamp_window_ms).map_err(reject)?;
    let event_type = event.get("EventType").and_then(|v| v.as_str()).unwrap_or_default();
    // Only the handshake matters today; other events are acknowledged so DingTalk does not
    // retry them.
    tracing::info!(app = %name, org = %app.cfg.org, event_type, "dingtalk event acknowledged");
    let nonce: String = (0..8).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
    let answer = dingtalk::success_response(crypto, &now.timestamp_millis().to_string(), &nonce);
    Ok(axum::Json(answer).into_response())
}
