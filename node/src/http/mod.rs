//! The portal (server-rendered HTML, zh-CN) and the JSON API under `/api/v1`.
//!
//! [`router`] builds the whole app from its state, so tests call it without sockets. Errors are
//! mapped to HTTP in one place ([`ApiError`]): client errors are answered as they are, internal
//! ones are logged and answered with a generic message, all as `application/problem+json`.

mod api;
mod pages;

use crate::node::{NodeCtx, NodeError};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use youke_search::LessonIndex;

#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<NodeCtx>,
    pub index: Arc<LessonIndex>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/search", get(pages::search))
        .route("/lessons/{id}", get(pages::lesson))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/lessons", get(api::list_lessons))
        .route("/api/v1/lessons/{id}", get(api::get_lesson))
        .route("/api/v1/lessons/{id}/media", get(api::lesson_media))
        .route("/api/v1/lessons/{id}/share", post(api::share_lesson))
        .route("/api/v1/search", get(api::search))
        .route("/api/v1/status", get(api::status))
        .fallback(|| async { ApiError::NotFound("no such page or API endpoint".into()) })
        .with_state(state)
}

/// Errors of the HTTP layer, each with a status and a stable code.
#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    BadRequest(String),
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not_found", d),
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad_request", d),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "the node hit an internal error; see its log"),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::NoSuchLesson(id) => ApiError::NotFound(format!("no lesson with id {id}")),
            NodeError::Invalid(m) => ApiError::BadRequest(m),
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<crate::lessons::LessonError> for ApiError {
    fn from(e: crate::lessons::LessonError) -> Self {
        ApiError::from(NodeError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.parts();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "code": code,
            "detail": detail,
        });
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        resp
    }
}

/// Runs blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&NodeCtx) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let ctx = Arc::clone(&state.ctx);
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}
