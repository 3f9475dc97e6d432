//! Uniform JSON errors: `{"code": "...", "message": "..."}`, 4xx for client mistakes.

use std::any::Any;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::crm::{CrmError, Lang};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }

    pub fn from_crm(e: CrmError, lang: Lang) -> Self {
        let msg = e.user_message(lang);
        match e {
            CrmError::NotFound(_) => ApiError::NotFound(msg),
            CrmError::Forbidden(_) => ApiError::Forbidden(msg),
            CrmError::Invalid(_) => ApiError::BadRequest("invalid", msg),
            CrmError::Conflict(_) => ApiError::Conflict(msg),
            CrmError::Db(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::Unavailable(msg)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = self.to_string();
        (status, Json(Body { code, message: &message })).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge("request body is too large".into());
        }
        ApiError::BadRequest("bad_json", format!("request body is not valid JSON for this endpoint: {}", r.body_text()))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::Unavailable("database unavailable, retry later".into())
    }
}

/// Errors produced outside our handlers (tower-http's 413 and 408, axum's 405) come with a plain or
/// empty body; give them the same JSON shape as ours so clients parse one format.
pub async fn json_errors<B>(res: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let res = res.map(axum::body::Body::new);
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long; nothing was stored, retry it"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this endpoint does not accept that method"),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "bad request"),
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    let body = Json(Body { code, message }).into_response();
    let (body_parts, body) = body.into_parts();
    parts.headers.extend(body_parts.headers);
    Response::from_parts(parts, body)
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = detail, "handler panicked");
    let body = Body { code: "internal", message: "internal error" };
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}
