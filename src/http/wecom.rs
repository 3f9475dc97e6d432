//! `/callback/wecom/{app}`: the URL-verification handshake (GET), messages and events (POST), and
//! `/callback/wecom/{app}/robot` for group-robot callbacks. Rejections store nothing.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::callback::{self, Redelivery};
use super::{ApiError, AppState};
use crate::bot::{Delivery, Special};
use crate::crm;
use crate::outbox::Target;
use crate::platform::wecom::{self, Action, App, CallbackError, CallbackQuery, xml};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callback/wecom/{app}", get(verify).post(receive))
        .route("/callback/wecom/{app}/robot", get(verify_robot).post(receive_robot))
}

fn app_of(state: &AppState, name: &str) -> Result<Arc<App>, ApiError> {
    state.wecom.get(name).ok_or_else(|| ApiError::NotFound(format!("no wecom app `{name}` is configured")))
}

fn query(q: Result<Query<CallbackQuery>, QueryRejection>) -> Result<CallbackQuery, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))
}

fn reject(e: CallbackError) -> ApiError {
    tracing::warn!(error = %e, "wecom callback rejected");
    match e {
        CallbackError::BadSignature => ApiError::Unauthorized("signature does not match".into()),
        CallbackError::Stale(ts) => ApiError::Unauthorized(format!("timestamp {ts} is too old or in the future")),
        CallbackError::Malformed(m) => ApiError::BadRequest("malformed", m),
    }
}

async fn verify(
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<String, ApiError> {
    let app = app_of(&state, &name)?;
    let q = query(q)?;
    wecom::verify_url(&app.crypto, &q, state.clock.now(), state.wecom.timestamp_window_secs).map_err(reject)
}

async fn verify_robot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<String, ApiError> {
    let app = app_of(&state, &name)?;
    let q = query(q)?;
    wecom::verify_url(&app.robot_crypto, &q, state.clock.now(), state.wecom.timestamp_window_secs).map_err(reject)
}

fn body_text(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("malformed", "body is not UTF-8".into()))
}

fn reply_target(app: &App, to_user: &str) -> Target {
    Target { platform: wecom::PLATFORM.into(), app: app.cfg.name.clone(), recipient: to_user.to_string() }
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], body).into_response()
}

async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<CallbackQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app = app_of(&state, &name)?;
    let q = query(q)?;
    let now = state.clock.now();
    let inbound = wecom::open(&app, &q, body_text(&body)?, now, state.wecom.timestamp_window_secs).map_err(reject)?;
    let action = wecom::action(&app, &inbound, now);
    // Only someone who talks to the bot becomes a rep: not the sender of an event we ignore (a
    // link opened), nor WeCom itself (`sys` sends contact and approval changes).
    if state.wecom.self_register
        && !matches!(action, Action::Ignore)
        && !inbound.from().is_empty()
        && inbound.from() != wecom::SYSTEM_SENDER
    {
        callback::self_register(&state, wecom::PLATFORM, &app.cfg.org, &app.cfg.corp_id, inbound.from())
            .await
            .map_err(|e| ApiError::from_crm(e, crm::Lang::Zh))?;
    }
    let (msg, special) = match action {
        Action::Ignore => return Ok(StatusCode::OK.into_response()),
        Action::Text(msg) => (msg, None),
        Action::Fixed(msg, text) => (msg, Some(Special::Reply(text))),
        Action::Location(msg, label) => {
            let window = chrono::Duration::minutes(state.wecom.location_window_minutes);
            (msg, Some(Special::Location { label, window }))
        }
    };
    // A passive reply carries one text of at most 2,048 bytes: the first part goes back now, the
    // rest (split on line boundaries) through the outbox.
    let delivery = Delivery::new(reply_target(&app, inbound.from()), wecom::PASSIVE_REPLY_MAX_BYTES);
    let passive = inbound.takes_passive_reply();
    if !passive {
        // WeCom would drop a passive reply to this event: the whole answer is pushed.
        delivery.push_only();
    }
    let deadline = state.wecom.reply_deadline;
    match callback::reply_in_time(&state.bot, msg, special, deadline, Redelivery::Retried, delivery.clone()).await? {
        Some(reply) if passive && !reply.text.is_empty() => {
            let first = delivery.passive_part(&reply.text);
            Ok(xml_response(wecom::passive_reply(&app, &inbound, &first, now, &q.nonce)))
        }
        _ => Ok(StatusCode::OK.into_response()),
    }
}

async fn receive_robot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<CallbackQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app = app_of(&state, &name)?;
    let q = query(q)?;
    let now = state.clock.now();
    let text = body_text(&body)?;
    let json = text.trim_start().starts_with('{');
    let encrypt = if json {
        wecom::crypto::extract_encrypt_json(text).map_err(|e| reject(e.into()))?
    } else {
        wecom::crypto::extract_encrypt(text).map_err(|e| reject(e.into()))?.to_string()
    };
    let plain = wecom::decrypt_verified(&app.robot_crypto, &q, &encrypt, now, state.wecom.timestamp_window_secs)
        .map_err(reject)?;
    let m = xml::decode_robot(&plain, app.cfg.robot_name.as_deref())
        .map_err(|e| reject(CallbackError::Malformed(e.to_string())))?;
    // `mixed` is text with pictures: its text parts are the message.
    if !matches!(m.msg_type.as_str(), "text" | "mixed") || m.text.trim().is_empty() {
        return Ok(StatusCode::OK.into_response());
    }
    let msg = crate::bot::IncomingMessage {
        platform: wecom::PLATFORM.into(),
        corp_id: app.cfg.corp_id.clone(),
        sender: m.from_user.clone(),
        message_id: format!("robot:{}:{}", app.cfg.corp_id, m.msg_id),
        text: m.text.clone(),
        received_at: now,
    };
    // The answer goes to the sender privately through the app (it can hold what the sender may
    // see and the group's other members may not); the group gets a note.
    let delivery = Delivery::new(reply_target(&app, &m.from_user), usize::MAX);
    delivery.push_only();
    let lang = crate::command::detect_lang(&m.text);
    // Group-robot callbacks are in beta and their retries are not documented: keep late ones.
    let late = Redelivery::Unknown;
    let deadline = state.wecom.reply_deadline;
    let Some(reply) = callback::reply_in_time(&state.bot, msg, None, deadline, late, delivery).await? else {
        return Ok(StatusCode::OK.into_response());
    };
    if reply.text.is_empty() {
        return Ok(StatusCode::OK.into_response());
    }
    let note = crate::bot::render::group_note(lang, true);
    let ts = now.timestamp().to_string();
    if json {
        let plain = serde_json::json!({ "msgtype": "markdown", "markdown": { "content": note } }).to_string();
        let encrypt = app.robot_crypto.encrypt(&plain);
        let signature = app.robot_crypto.signature(&ts, &q.nonce, &encrypt);
        let body = serde_json::json!({ "encrypt": encrypt, "msgsignature": signature, "timestamp": now.timestamp(), "nonce": q.nonce });
        Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
    } else {
        let plain = xml::robot_text_reply(&note);
        Ok(xml_response(app.robot_crypto.reply_envelope(&plain, &ts, &q.nonce)))
    }
}
