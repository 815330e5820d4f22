//! Collections (专辑) and announcements (通知) over the API: listed, created, changed and
//! deleted by the administrators of the node that publishes them.

use super::{Items, change, check_id};
use crate::catalog::{self, Announcement, Collection};
use crate::documents::{DocError, Kind};
use crate::http::auth::Auth;
use crate::http::{ApiError, AppState, blocking};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

fn is_admin(auth: &Auth) -> bool {
    auth.user().is_some_and(|u| u.role == crate::accounts::Role::Admin)
}

/// The collections here: the published ones, and for administrators the others too.
pub async fn list_collections(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Json<Items<Collection>>, ApiError> {
    let all = is_admin(&auth);
    let items = blocking(&state, move |ctx| Ok(ctx.store.read(catalog::collections)?.into_iter().filter(|c| all || c.published).collect())).await?;
    Ok(Json(Items { items }))
}

/// The announcements shown here now; administrators also see those scheduled for later or
/// meant for another tier.
pub async fn list_announcements(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Json<Items<Announcement>>, ApiError> {
    let all = is_admin(&auth);
    let items = blocking(&state, move |ctx| {
        Ok(if all { ctx.store.read(catalog::announcements)? } else { ctx.store.read(|c| catalog::announcements_for(c, ctx.writer.tier, crate::store::now_ms()))? })
    })
    .await?;
    Ok(Json(Items { items }))
}

/// A collection lists lessons this node shows, each once.
fn check_lessons(tx: &rusqlite::Transaction<'_>, c: &Collection) -> Result<(), DocError> {
    for (i, id) in c.lessons.iter().enumerate() {
        if c.lessons[..i].contains(id) {
            return Err(DocError::Invalid(format!("lesson {id} is listed twice")));
        }
        if !crate::lessons::get(tx, id)?.is_some_and(|l| l.listed) {
            return Err(DocError::Invalid(format!("there is no lesson {id} here to put in a collection")));
        }
    }
    Ok(())
}

pub async fn create_collection(State(state): State<AppState>, Json(c): Json<Collection>) -> Result<Json<Collection>, ApiError> {
    Ok(Json(change(&state, move |tx, w| {
        check_lessons(tx, &c)?;
        catalog::create_collection(tx, w, &c)
    })
    .await?))
}

/// Replaces a collection (title, description, lessons in their order, featured, pinned,
/// published) at the node that made it.
pub async fn update_collection(State(state): State<AppState>, Path(id): Path<String>, Json(c): Json<Collection>) -> Result<Json<Collection>, ApiError> {
    check_id(&id)?;
    let cid = id.clone();
    let updated = change(&state, move |tx, w| {
        check_lessons(tx, &c)?;
        catalog::update_collection(tx, w, &cid, &c)
    })
    .await?;
    updated.map(Json).ok_or_else(|| ApiError::NotFound(format!("no collection {id} here")))
}

pub async fn create_announcement(State(state): State<AppState>, Json(a): Json<Announcement>) -> Result<Json<Announcement>, ApiError> {
    Ok(Json(change(&state, move |tx, w| catalog::create_announcement(tx, w, &a)).await?))
}

pub async fn update_announcement(State(state): State<AppState>, Path(id): Path<String>, Json(a): Json<Announcement>) -> Result<Json<Announcement>, ApiError> {
    check_id(&id)?;
    let aid = id.clone();
    let updated = change(&state, move |tx, w| catalog::update_announcement(tx, w, &aid, &a)).await?;
    updated.map(Json).ok_or_else(|| ApiError::NotFound(format!("no announcement {id} here")))
}

async fn delete(state: &AppState, kind: Kind, id: String) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    let what = id.clone();
    let gone = change(state, move |tx, w| catalog::delete(tx, w, kind, &what)).await?;
    if gone { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::NotFound(format!("no {} {id} here", kind.as_str()))) }
}

pub async fn delete_collection(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete(&state, Kind::Collection, id).await
}

pub async fn delete_announcement(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete(&state, Kind::Announcement, id).await
}
