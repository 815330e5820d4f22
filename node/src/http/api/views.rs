//! Views (人气): the ticket a player reports a view with, and the report.

use super::{check_id, visible_lesson};
use crate::http::auth::Auth;
use crate::http::{ApiError, AppState, blocking, cookies};
use crate::viewing::{ViewError, required_watch_ms};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// The cookie that keeps an anonymous browser's viewer id (so it counts once a day).
pub const VIEWER_COOKIE: &str = "youke_viewer";

/// Who is watching: the signed-in account, else the browser's viewer cookie. The second value
/// is a new anonymous id to set as the cookie, when the browser had none.
pub(crate) fn viewer_of(auth: &Auth, headers: &HeaderMap) -> (String, Option<String>) {
    if let Some(u) = auth.user() {
        return (format!("u:{}", u.name), None);
    }
    match cookies::cookie(headers, VIEWER_COOKIE).filter(|v| v.len() == 34 && v.starts_with("a:") && v[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(v) => (v, None),
        None => {
            let id = crate::viewing::new_viewer_id();
            (id.clone(), Some(id))
        }
    }
}

/// The `Set-Cookie` value that keeps a new anonymous viewer id for a year.
pub(crate) fn viewer_cookie(id: &str) -> String {
    format!("{VIEWER_COOKIE}={id}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax")
}

#[derive(Debug, Serialize)]
pub struct ViewTicket {
    pub ticket: String,
    /// How long the lesson must be watched before the view is reported, in milliseconds.
    pub after_ms: i64,
}

/// A view ticket for a lesson (lesson pages carry one; this is for other players).
pub async fn view_ticket(State(state): State<AppState>, Extension(auth): Extension<Auth>, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<ViewTicket>, ApiError> {
    check_id(&id)?;
    let (viewer, _) = viewer_of(&auth, &headers);
    let viewing = std::sync::Arc::clone(&state.viewing);
    let t = blocking(&state, move |ctx| {
        let lesson = visible_lesson(ctx, auth.user(), &id)?;
        Ok(ViewTicket { ticket: viewing.ticket(&lesson.id, &viewer, crate::store::now_ms()), after_ms: required_watch_ms(lesson.duration_secs) })
    })
    .await?;
    Ok(Json(t))
}

#[derive(Debug, Deserialize)]
pub struct ViewBody {
    pub ticket: String,
}

#[derive(Debug, Serialize)]
pub struct ViewCounted {
    /// False when this viewer was already counted for the lesson today.
    pub counted: bool,
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::TooMany => ApiError::TooManyRequests(e.to_string(), 60),
            _ => ApiError::BadRequest(e.to_string()),
        }
    }
}

/// The player reports a view with its page's ticket once the lesson was watched for a while.
pub async fn view_lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<ViewBody>) -> Result<Json<ViewCounted>, ApiError> {
    check_id(&id)?;
    let viewing = std::sync::Arc::clone(&state.viewing);
    let address = auth.address;
    let counted = blocking(&state, move |ctx| {
        let lesson = visible_lesson(ctx, auth.user(), &id)?;
        let viewer = viewing.check(&b.ticket, &lesson.id, crate::store::now_ms(), required_watch_ms(lesson.duration_secs))?;
        if let Some(addr) = address {
            viewing.admit(addr, std::time::Instant::now())?;
        }
        Ok(crate::viewing::record(ctx, &lesson.id, &viewer)?)
    })
    .await?;
    Ok(Json(ViewCounted { counted }))
}
