//! The local console chat: a page at /console (HTML, CSS and JS compiled into the binary, no build
//! step) and its JSON endpoints. It drives the same bot core as the chat platforms, with the user
//! picked by handle.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::command::{detect_lang, spec};
use crate::crm::Lang;
use crate::platform::console;

const PAGE: &str = include_str!("../../assets/console.html");
const SCRIPT: &str = include_str!("../../assets/console.js");
const STYLE: &str = include_str!("../../assets/console.css");

/// The page loads only its own script and style (no inline code), so text that slipped past the
/// escaping could still not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/examples", get(examples))
        .route("/console/users", get(users))
        .route("/console/messages", axum::routing::post(post_message))
        .route("/console/pushes", get(pushes))
        .route("/console/pushes/{id}/image", get(push_image))
}

async fn page() -> Response {
    let mut res = Html(PAGE).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// Assets are revalidated on each load (`no-cache`): after an upgrade the page and its script
/// must not come from different versions.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Deserialize)]
struct ExamplesQuery {
    #[serde(default)]
    lang: Option<String>,
}

#[derive(Serialize)]
struct ExampleOut {
    command: &'static str,
    summary: &'static str,
    usage: &'static str,
    text: &'static str,
}

/// Commands not worth offering to try: a bare number answers a question, `unknown` is the fallback.
const NOT_EXAMPLES: &[&str] = &["select", "unknown"];

/// The "try these" list: per command of `bot-commands/`, its summary, usage and first example in
/// the asked language (`zh` by default).
async fn examples(
    query: Result<Query<ExamplesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))?;
    let lang = match q.lang.as_deref() {
        None | Some("zh") => Lang::Zh,
        Some("en") => Lang::En,
        Some(_) => return Err(ApiError::BadRequest("bad_query", "lang must be zh or en".into())),
    };
    let out: Vec<ExampleOut> = spec::specs()
        .iter()
        .filter(|s| !NOT_EXAMPLES.contains(&s.name.as_str()))
        .filter_map(|s| {
            let example = s.examples.iter().find(|e| detect_lang(&e.text) == lang)?;
            Some(ExampleOut {
                command: s.name.as_str(),
                summary: s.summary.get(lang),
                usage: s.usage.get(lang),
                text: example.text.trim(),
            })
        })
        .collect();
    let lang = match lang {
        Lang::Zh => "zh",
        Lang::En => "en",
    };
    Ok(Json(serde_json::json!({ "lang": lang, "examples": out })))
}

#[derive(Serialize)]
struct UserOut {
    handle: String,
    name: String,
    role: String,
    team: Option<String>,
    org: String,
}

async fn users(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let (org, users) = console::users(&state.db, &state.settings.console_org).await.map_err(console_error)?;
    let out: Vec<UserOut> = users
        .into_iter()
        .filter(|u| u.active)
        .map(|u| UserOut {
            handle: u.handle,
            name: u.name,
            role: u.role.to_string(),
            team: u.team_name,
            org: org.name.clone(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "users": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    user: String,
    text: String,
    /// Optional client id; a resend with the same id is handled once.
    message_id: Option<String>,
}

#[derive(Serialize)]
struct MessageOut {
    reply: String,
    message_id: String,
    duplicate: bool,
}

async fn post_message(
    State(state): State<AppState>,
    body: Result<Json<MessageIn>, JsonRejection>,
) -> Result<Json<MessageOut>, ApiError> {
    let Json(body) = body?;
    if body.text.trim().is_empty() {
        return Err(ApiError::BadRequest("empty_text", "text must not be empty".into()));
    }
    if body.text.chars().count() > crate::command::MAX_TEXT_CHARS {
        return Err(ApiError::BadRequest(
            "text_too_long",
            format!("text is longer than {} characters", crate::command::MAX_TEXT_CHARS),
        ));
    }
    let message_id = body.message_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if message_id.is_empty() || message_id.len() > 128 {
        return Err(ApiError::BadRequest("bad_message_id", "message_id must be 1 to 128 characters".into()));
    }
    let msg = console::incoming(
        &state.db,
        &state.settings.console_org,
        &body.user,
        &body.text,
        &message_id,
        state.clock.now(),
    )
    .await
    .map_err(console_error)?;
    let reply = state.bot.handle(&msg).await.map_err(|e| {
        tracing::error!(error = %e, "message not handled");
        ApiError::Unavailable(match detect_lang(&body.text) {
            Lang::Zh => "系统暂时无法处理，请稍后重发。".into(),
            Lang::En => "Could not handle the message right now; please resend shortly.".into(),
        })
    })?;
    Ok(Json(MessageOut { reply: reply.text, message_id, duplicate: reply.duplicate }))
}

#[derive(Deserialize)]
struct PushQuery {
    user: String,
    #[serde(default)]
    after: i64,
}

async fn pushes(
    State(state): State<AppState>,
    query: Result<Query<PushQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))?;
    let pushes =
        console::pushes(&state.db, &state.settings.console_org, &q.user, q.after).await.map_err(console_error)?;
    Ok(Json(serde_json::json!({ "pushes": pushes })))
}

#[derive(Deserialize)]
struct ImageQuery {
    user: String,
}

/// The PNG of a push that has one (`has_image` in `/console/pushes`), for the same `user`.
async fn push_image(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    query: Result<Query<ImageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))?;
    let mut tx = state.db.begin_read().await?;
    let org = crate::crm::orgs::org_by_name(&mut tx, &state.settings.console_org).await.map_err(console_error)?;
    let user = crate::crm::users::find_user(&mut tx, org.id, &q.user).await.map_err(console_error)?;
    let image = crate::store::inbox::push_image(&mut tx, user.id, id).await?;
    tx.commit().await?;
    let image = image.ok_or_else(|| ApiError::NotFound(format!("push {id} has no image")))?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=86400")], image)
        .into_response())
}

fn console_error(e: crate::crm::CrmError) -> ApiError {
    ApiError::from_crm(e, Lang::En)
}
