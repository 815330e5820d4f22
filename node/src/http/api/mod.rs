//! JSON API handlers (`/api/v1`).

mod collections;
mod ladders;
mod media;
mod ops;
mod review;
mod search;
mod upload;
mod views;

pub use collections::*;
pub use ladders::*;
pub use media::*;
pub use ops::*;
pub use review::*;
pub use search::*;
pub use upload::*;
pub use views::*;

use super::{ApiError, AppState, blocking};
use super::auth::Auth;
use crate::accounts;
use axum::Extension;
use axum::http::StatusCode;
use crate::lessons::{self, Lesson};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use youke_federation::{BlobHash, Tier};

/// A lesson as the API returns it: the lesson plus where its media can be fetched here.
#[derive(Debug, Serialize)]
pub struct LessonView {
    #[serde(flatten)]
    pub lesson: Lesson,
    /// Whether this node holds the media (it may still be on its way from the origin).
    pub media_present: bool,
    pub media_url: String,
    /// The HLS ladder made here, once its media job is done.
    pub hls: Option<HlsView>,
    /// Not held here, the media streams through the parent (`media_url` fetches the ranges a
    /// player asks for, and keeps them).
    pub via_parent: bool,
    /// The parent link is down since this time (ms): media not held here cannot play until it
    /// is back.
    pub parent_down_since: Option<i64>,
}

/// Where a lesson's HLS ladder is served.
#[derive(Debug, Serialize)]
pub struct HlsView {
    pub master_url: String,
    pub poster_url: String,
    pub sprite_vtt_url: String,
    pub sd_url: Option<String>,
    pub renditions: Vec<youke_media::hls::Rendition>,
}

impl LessonView {
    pub fn new(ctx: &crate::NodeCtx, lesson: Lesson) -> Self {
        Self::build(ctx, lesson, |hex| ctx.store.read(|c| crate::media_jobs::hls_of(c, hex)).ok().flatten())
    }

    /// [`LessonView::new`] on an open connection (many lessons in one read).
    pub fn with_conn(ctx: &crate::NodeCtx, conn: &rusqlite::Connection, lesson: Lesson) -> Self {
        Self::build(ctx, lesson, |hex| crate::media_jobs::hls_of(conn, hex).ok().flatten())
    }

    fn build(ctx: &crate::NodeCtx, lesson: Lesson, ladder: impl FnOnce(&str) -> Option<youke_media::hls::HlsOutput>) -> Self {
        let hash = lesson.media.as_ref().and_then(|m| m.hash.parse::<BlobHash>().ok());
        let media_present = hash.is_some_and(|h| ctx.blobs.contains(&h));
        let media_url = format!("/api/v1/lessons/{}/media", lesson.id);
        let view = |base: String, out: &youke_media::hls::HlsOutput| HlsView {
            master_url: format!("{base}/{}", out.master),
            poster_url: format!("{base}/{}", out.poster),
            sprite_vtt_url: format!("{base}/{}", out.sprite_vtt),
            sd_url: out.sd_mp4.as_ref().map(|_| format!("{base}/{}", youke_media::hls::SD_MP4)),
            renditions: out.renditions.clone(),
        };
        // The ladder made here (served from its directory), else the lesson's rendition pack,
        // held here or fetched through the parents segment by segment.
        let local = hash.and_then(|h| ladder(&h.to_hex())).map(|out| view(format!("/media/hls/{}", hash.map(|h| h.to_hex()).unwrap_or_default()), &out));
        let pack = lesson.ladder.as_ref().and_then(|x| Some((x.hash.parse::<BlobHash>().ok()?, x)));
        let pack_here = pack.as_ref().is_some_and(|(h, _)| ctx.blobs.contains(h) || ctx.store.read(|c| crate::pull_through::is_cached(c, &h.to_hex())).unwrap_or(false));
        let hls = local.or_else(|| pack.as_ref().filter(|_| pack_here || ctx.config.parent.is_some()).map(|(h, x)| view(format!("/media/ladder/{}", h.to_hex()), &x.hls)));
        let via_parent = !media_present && lesson.media.is_some() && ctx.config.parent.is_some();
        // Nothing of it here and the parent out of reach: the page says so, and since when.
        let parent_down_since = if via_parent && !pack_here {
            ctx.store.read(crate::sync_state::link_state).ok().flatten().filter(|s| s.state != "up").map(|s| s.updated_at)
        } else {
            None
        };
        LessonView { lesson, media_present, media_url, hls, via_parent, parent_down_since }
    }
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

pub const MAX_PER_PAGE: u64 = 200;

impl PageQuery {
    pub fn resolve(&self) -> Result<(u64, u64), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 || per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(ApiError::BadRequest(format!("page starts at 1 and per_page is 1 to {MAX_PER_PAGE}")));
        }
        Ok((page, per_page))
    }
}

#[derive(Debug, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

pub async fn list_lessons(State(state): State<AppState>, Query(q): Query<PageQuery>) -> Result<Json<Paged<LessonView>>, ApiError> {
    let (page, per_page) = q.resolve()?;
    let out = blocking(&state, move |ctx| {
        let (items, total) = ctx.store.read(|c| lessons::list(c, (page - 1).saturating_mul(per_page), per_page))?;
        let items = items.into_iter().map(|l| LessonView::new(ctx, l)).collect();
        Ok(Paged { items, page, per_page, total })
    })
    .await?;
    Ok(Json(out))
}

/// Ids of lessons and catalog documents are UUIDs; anything else is not found.
pub(super) fn check_id(id: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id).map(|_| ()).map_err(|_| ApiError::NotFound(format!("{id:?} is not an id")))
}

/// A lesson the asker may see here ([`may_see`]); any other is not found.
pub(crate) fn visible_lesson(ctx: &crate::NodeCtx, user: Option<&accounts::User>, id: &str) -> Result<Lesson, ApiError> {
    let not_found = || ApiError::NotFound(format!("no lesson with id {id}"));
    let lesson = ctx.store.read(|c| lessons::get(c, id))?.ok_or_else(not_found)?;
    if may_see(ctx, user, &lesson)? { Ok(lesson) } else { Err(not_found()) }
}

pub async fn get_lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Json<LessonView>, ApiError> {
    check_id(&id)?;
    let view = blocking(&state, move |ctx| {
        let lesson = visible_lesson(ctx, auth.user(), &id)?;
        Ok(LessonView::new(ctx, lesson))
    })
    .await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
pub struct ShareBody {
    pub to: String,
}

pub async fn share_lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(body): Json<ShareBody>) -> Result<Json<LessonView>, ApiError> {
    check_id(&id)?;
    require_owner(&state, &auth, &id).await?;
    let level: Tier = body.to.parse().map_err(|e: youke_federation::tier::UnknownTier| ApiError::BadRequest(e.to_string()))?;
    let view = blocking(&state, move |ctx| {
        let lesson = crate::import::share(ctx, &id, level)?;
        Ok(LessonView::new(ctx, lesson))
    })
    .await?;
    Ok(Json(view))
}

/// The rating, comment or review is the signed-in user's (a `user`, `author` or `expert` sent
/// by older clients is ignored).
#[derive(Debug, Deserialize)]
pub struct RatingBody {
    pub score: i64,
}

#[derive(Debug, Deserialize)]
pub struct CommentBody {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct ReviewBody {
    pub score: i64,
    #[serde(default)]
    pub comment: String,
}

/// Runs a local change in one transaction and tells the node's services about it.
pub(super) async fn change<T: Send + 'static, E: From<crate::store::StoreError> + Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Transaction<'_>, &crate::documents::Writer) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    blocking(state, move |ctx| {
        let out = ctx.store.write(|tx| f(tx, &ctx.writer))?;
        ctx.changed();
        Ok(out)
    })
    .await
}

async fn edit_lesson(state: &AppState, id: String, edit: lessons::LessonEdit) -> Result<Json<LessonView>, ApiError> {
    check_id(&id)?;
    let lid = id.clone();
    let lesson = change(state, move |tx, w| lessons::edit(tx, w, &lid, &edit))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no lesson with id {id}")))?;
    Ok(Json(blocking(state, move |ctx| Ok(LessonView::new(ctx, lesson))).await?))
}

/// Changes a lesson's descriptive fields (title, teacher, grade, subject, textbook_chapter,
/// description, knowledge_points, tags) at its own school.
pub async fn patch_lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<lessons::LessonFields>) -> Result<Json<LessonView>, ApiError> {
    check_id(&id)?;
    require_owner(&state, &auth, &id).await?;
    edit_lesson(&state, id, lessons::LessonEdit::Fields(b)).await
}

/// Whether `user` may change a lesson here: admins any, teachers their own
/// ([`lessons::is_owner`]), no one else. The API, the lesson page and the edit page all ask this.
pub(super) fn may_change(ctx: &crate::NodeCtx, user: Option<&accounts::User>, id: &str) -> Result<bool, ApiError> {
    Ok(match user {
        Some(u) if u.role == accounts::Role::Admin => true,
        Some(u) if u.role == accounts::Role::Teacher => ctx.store.read(|c| lessons::is_owner(c, id, &u.name, &u.display, &ctx.writer.node_id))?,
        _ => false,
    })
}

pub(super) const NOT_YOURS: &str = "only the lesson's own teacher or an administrator may change it";

pub(super) async fn require_owner(state: &AppState, auth: &Auth, id: &str) -> Result<(), ApiError> {
    let Some(user) = auth.user().cloned() else { return Err(ApiError::Unauthorized("sign in first".into())) };
    let id = id.to_string();
    let may = blocking(state, move |ctx| may_change(ctx, Some(&user), &id)).await?;
    if may { Ok(()) } else { Err(ApiError::Forbidden(NOT_YOURS.into())) }
}

/// A teacher's lesson with how far it has travelled up the tree.
#[derive(Debug, Serialize)]
pub struct MyLesson {
    #[serde(flatten)]
    pub lesson: LessonView,
    pub replication: lessons::Replication,
    /// The replication state in the asker's language, as "my lessons" shows it.
    pub replication_text: String,
    /// The review state (审核: waiting, approved, rejected and why, taken down) in the asker's
    /// language.
    pub review_text: String,
}

/// The signed-in teacher's lessons at this node (an admin's: the ones they brought in), newest
/// first, each with its replication state.
pub async fn load_my_lessons(state: &AppState, auth: &Auth) -> Result<Vec<MyLesson>, ApiError> {
    let Some(user) = auth.user().cloned() else { return Err(ApiError::Unauthorized("sign in first".into())) };
    let lang = auth.lang;
    blocking(state, move |ctx| {
        let mine = ctx.store.read(|c| lessons::owned_by(c, &user.name, &user.display, &ctx.writer.node_id))?;
        let parent_tier = if ctx.writer.has_parent { ctx.writer.tier.parent() } else { None };
        let states = ctx.store.read(|c| lessons::replication(c, &mine, parent_tier))?;
        Ok(mine
            .into_iter()
            .zip(states)
            .map(|(l, replication)| {
                // How far it got: the link to the parent, then each tier that holds it.
                let arrivals = lang.arrivals(&l);
                let replication_text = match (arrivals.is_empty(), replication.state) {
                    (true, _) => lang.replication(&replication),
                    (false, "delivered") => arrivals,
                    (false, _) => format!("{}；{arrivals}", lang.replication(&replication)),
                };
                let review_text = lang.review_status(&l);
                MyLesson { lesson: LessonView::new(ctx, l), replication, replication_text, review_text }
            })
            .collect())
    })
    .await
}

pub async fn my_lessons(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Json<Items<MyLesson>>, ApiError> {
    Ok(Json(Items { items: load_my_lessons(&state, &auth).await? }))
}

/// The key of a user's rating or review in a lesson's document: the account at this node
/// (names are unique per node, not across the federation).
fn signed_key(state: &AppState, auth: &Auth) -> Result<String, ApiError> {
    let user = auth.user().ok_or_else(|| ApiError::Unauthorized("sign in first".into()))?;
    Ok(format!("{}@{}", user.name, state.ctx.writer.node_name))
}

pub async fn rate_lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<RatingBody>) -> Result<Json<LessonView>, ApiError> {
    let user = signed_key(&state, &auth)?;
    edit_lesson(&state, id, lessons::LessonEdit::Rate { user, score: b.score }).await
}

pub async fn comment_lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<CommentBody>) -> Result<Json<LessonView>, ApiError> {
    let author = auth.user().map(|u| u.display.clone()).ok_or_else(|| ApiError::Unauthorized("sign in first".into()))?;
    edit_lesson(&state, id, lessons::LessonEdit::Comment { author, text: b.text }).await
}

pub async fn review_lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<ReviewBody>) -> Result<Json<LessonView>, ApiError> {
    let expert = signed_key(&state, &auth)?;
    edit_lesson(&state, id, lessons::LessonEdit::Review { expert, score: b.score, comment: b.comment }).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub name: String,
    #[serde(default)]
    pub display: String,
    pub role: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChangeBody {
    pub role: Option<String>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
}

pub async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<accounts::User>>, ApiError> {
    Ok(Json(blocking(&state, |ctx| Ok(ctx.store.read(accounts::list_users)?)).await?))
}

pub async fn create_user(State(state): State<AppState>, Json(b): Json<NewUserBody>) -> Result<(StatusCode, Json<accounts::User>), ApiError> {
    let role: accounts::Role = b.role.parse()?;
    let user = blocking(&state, move |ctx| Ok(ctx.store.write(|tx| accounts::create_user(tx, &b.name, &b.display, role, &b.password))?)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

pub async fn update_user(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(name): Path<String>, Json(b): Json<UserChangeBody>) -> Result<Json<accounts::User>, ApiError> {
    let role = b.role.as_deref().map(str::parse::<accounts::Role>).transpose()?;
    if name == auth.name() && (b.disabled == Some(true) || role.is_some_and(|r| r != accounts::Role::Admin)) {
        return Err(ApiError::BadRequest("an admin cannot disable or demote their own account; ask another admin".into()));
    }
    let user = blocking(&state, move |ctx| Ok(ctx.store.write(|tx| accounts::update_user(tx, &name, role, b.password.as_deref(), b.disabled))?)).await?;
    Ok(Json(user))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub limit: Option<u64>,
}

pub async fn audit_log(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> Result<Json<Vec<accounts::AuditEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(200).clamp(1, 5000);
    Ok(Json(blocking(&state, move |ctx| Ok(ctx.store.read(|c| accounts::audit_log(c, limit))?)).await?))
}


pub async fn lesson_discussion(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Json<lessons::Discussion>, ApiError> {
    check_id(&id)?;
    let d = blocking(&state, move |ctx| {
        visible_lesson(ctx, auth.user(), &id)?;
        let mut d = ctx.store
            .read(|c| lessons::discussion(c, &ctx.writer, &id))?
            .ok_or_else(|| ApiError::NotFound(format!("no lesson with id {id}")))?;
        // Hidden comments only administrators see.
        if auth.user().is_none_or(|u| u.role != accounts::Role::Admin) {
            d.comments.retain(|c| c.hidden.is_none());
        }
        Ok(d)
    })
    .await?;
    Ok(Json(d))
}

#[derive(Debug, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

