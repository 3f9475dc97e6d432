//! `/callback/feishu/...`: placeholder until the adapter lands (issue 8).

use axum::Router;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
