//! Review (审核), takedown (下架) and comment moderation over the API.

use super::{Items, LessonView, check_id};
use crate::accounts::Role;
use crate::http::auth::Auth;
use crate::http::{ApiError, AppState, blocking};
use crate::lessons::{self, Lesson, Moderation, Moderator};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

/// Whether `user` sees a lesson here: listed lessons everyone; the others (waiting for review,
/// rejected, taken down) reviewers, administrators and the lesson's own teacher.
pub(crate) fn may_see(ctx: &crate::NodeCtx, user: Option<&crate::accounts::User>, lesson: &Lesson) -> Result<bool, ApiError> {
    Ok(lesson.listed
        || user.is_some_and(|u| matches!(u.role, Role::Admin | Role::Expert))
        || super::may_change(ctx, user, &lesson.id)?)
}

/// The lessons waiting for this tier's review.
pub async fn review_queue(State(state): State<AppState>) -> Result<Json<Items<LessonView>>, ApiError> {
    let items = blocking(&state, |ctx| {
        let waiting = ctx.store.read(|c| lessons::review_queue(c, ctx.writer.tier, 500))?;
        Ok(waiting.into_iter().map(|l| LessonView::new(ctx, l)).collect())
    })
    .await?;
    Ok(Json(Items { items }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub approved: bool,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

async fn apply(state: &AppState, auth: &Auth, id: String, m: Moderation) -> Result<Json<LessonView>, ApiError> {
    check_id(&id)?;
    let user = auth.user().map(|u| u.name.clone()).ok_or_else(|| ApiError::Unauthorized("sign in first".into()))?;
    let address = auth.address_text();
    let view = blocking(state, move |ctx| {
        let lesson = crate::reviewing::moderate(ctx, &id, &m, &Moderator { user: &user, address: &address })?;
        Ok(LessonView::new(ctx, lesson))
    })
    .await?;
    Ok(Json(view))
}

/// Approves or rejects a lesson shared to this node's tier.
pub async fn decide(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<DecisionBody>) -> Result<Json<LessonView>, ApiError> {
    let m = if b.approved { Moderation::Approve } else { Moderation::Reject { reason: b.reason } };
    apply(&state, &auth, id, m).await
}

/// Takes a lesson down everywhere below this node.
pub async fn takedown(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<ReasonBody>) -> Result<Json<LessonView>, ApiError> {
    apply(&state, &auth, id, Moderation::Takedown { reason: b.reason }).await
}

/// Hides a comment (it stays in the document, shown to no one but administrators).
pub async fn hide_comment(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path((id, comment)): Path<(String, String)>) -> Result<Json<LessonView>, ApiError> {
    apply(&state, &auth, id, Moderation::HideComment { comment }).await
}

/// Deletes a comment.
pub async fn delete_comment(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path((id, comment)): Path<(String, String)>) -> Result<Json<LessonView>, ApiError> {
    apply(&state, &auth, id, Moderation::DeleteComment { comment }).await
}
