//! Recordings uploaded from the portal (plain PUT; the tus protocol is in `resumable`).

use super::*;

use crate::http::{ApiError, AppState, blocking};
use crate::http::auth::Auth;
use crate::accounts;
use axum::Extension;
use crate::lessons::{self};
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// The file's name (for the title when none is given, and the quarantine list).
    pub name: String,
    pub title: Option<String>,
    pub teacher: Option<String>,
    pub grade: Option<String>,
    pub subject: Option<String>,
}

/// A recording uploaded from the portal (`PUT /api/v1/uploads?name=…`, the file as the body,
/// streamed to disk): imported like any other; a file that cannot be imported is quarantined
/// and answered with the reason (422).
/// How long an upload may go without a byte arriving.
pub const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// A file name, not a path: nothing that could leave the import folder or hide in it.
pub(in crate::http) fn check_upload_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::BadRequest("name the uploaded file (?name=…)".into()));
    }
    if name.contains(['/', '\\', '\0']) || name.starts_with('.') || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("{name:?} is not a plain file name (no /, \\, leading dot or control characters; at most 200 characters)")));
    }
    Ok(())
}

/// The import folder (where refused uploads are quarantined) and its `.uploading` staging
/// directory, created if missing.
pub(in crate::http) async fn upload_dirs(ctx: &crate::NodeCtx) -> Result<(std::path::PathBuf, std::path::PathBuf), ApiError> {
    let root = ctx.config.watch_dir(&ctx.data_dir).unwrap_or_else(|| ctx.data_dir.join("import"));
    let staging = root.join(".uploading");
    tokio::fs::create_dir_all(&staging).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((root, staging))
}

/// Runs `then` once an upload of `declared` bytes is known to fit on the disk of `staging`
/// (free space, less the reserve, less what unfinished uploads still expect: see
/// [`crate::disk`]); 507 naming both figures if it does not. One upload at a time passes here,
/// so two cannot both take the last room.
pub(in crate::http) async fn with_room<T: Send + 'static>(
    state: &AppState,
    staging: std::path::PathBuf,
    declared: u64,
    then: impl FnOnce(&crate::NodeCtx) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _turn = state.room.lock().await;
    let promised = std::sync::Arc::clone(&state.promised);
    blocking(state, move |ctx| {
        let unfinished = ctx.store.read(crate::resumable_uploads::outstanding_bytes)?;
        let space = crate::disk::space(&staging).map_err(|e| ApiError::Internal(format!("cannot read the free space of the upload folder: {e}")))?;
        crate::disk::fits(declared, space, ctx.config.limits.disk_reserve_percent, unfinished.saturating_add(promised.total()))
            .map_err(ApiError::no_room)?;
        then(ctx)
    })
    .await
}

/// What an upload says about its lesson; the title defaults to the file's name, the teacher to
/// the signed-in teacher's name.
pub(in crate::http) fn import_meta(auth: &Auth, name: &str, m: crate::resumable_uploads::UploadMeta) -> crate::lessons::ImportMeta {
    crate::lessons::ImportMeta {
        title: m.title.filter(|t| !t.trim().is_empty()).or_else(|| std::path::Path::new(name).file_stem().map(|s| s.to_string_lossy().into_owned())),
        teacher: m.teacher.filter(|t| !t.trim().is_empty()).or_else(|| auth.user().filter(|u| u.role == accounts::Role::Teacher).map(|u| u.display.clone())),
        grade: m.grade,
        subject: m.subject,
        knowledge_points: Vec::new(),
        original_name: Some(name.to_string()),
    }
}

/// Imports a complete upload (`file`, in the staging directory) as the signed-in user's lesson.
/// A file that cannot be imported is quarantined under its own name and the reason returned.
pub(in crate::http) async fn import_upload(
    state: &AppState,
    owner: String,
    file: std::path::PathBuf,
    root: std::path::PathBuf,
    name: String,
    meta: crate::lessons::ImportMeta,
) -> Result<Result<LessonView, String>, ApiError> {
    let result = blocking(state, move |ctx| match crate::import::import_file(ctx, &file, &meta, |_, _| {}) {
        Ok(lesson) => {
            ctx.store.write(|tx| lessons::set_owner(tx, &lesson.id, &owner))?;
            // The blob store holds its own copy now.
            let _ = std::fs::remove_file(&file);
            Ok(Ok(LessonView::new(ctx, lesson)))
        }
        Err(e) => {
            // The reason names the file as the teacher sent it, not where the node staged it.
            let reason = e.to_string().replace(&file.display().to_string(), &name);
            // Kept for the admin under its own name, with the reason.
            let named = file.with_file_name(&name);
            let kept = std::fs::rename(&file, &named).map(|_| named).unwrap_or(file);
            crate::ingest::quarantine(ctx, &root, &kept, &reason)?;
            Ok(Err(reason))
        }
    })
    .await?;
    state.ctx.wake_media.notify_one();
    Ok(result)
}

/// How often the room on disk is checked again for an upload that did not say its size.
const UNDECLARED_STEP: u64 = 64 << 20;

/// A recording uploaded in one request (`PUT /api/v1/uploads?name=…`, the file as the body,
/// streamed to disk), for scripts; the portal uses the resumable upload. Answers the lesson
/// (201), or the reason it could not be imported (422).
pub async fn upload(State(state): State<AppState>, Extension(auth): Extension<Auth>, Query(q): Query<UploadQuery>, headers: axum::http::HeaderMap, body: axum::body::Body) -> Result<Response, ApiError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let name = q.name.trim().to_string();
    check_upload_name(&name)?;
    let name = crate::ingest::plain_name(&name);
    let ctx = std::sync::Arc::clone(&state.ctx);
    let limit = ctx.config.limits.max_blob_bytes;
    // Refused before a byte is stored when it says it is too large for the node or its disk.
    let declared = match headers.get(axum::http::header::CONTENT_LENGTH) {
        Some(v) => Some(v.to_str().ok().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| ApiError::BadRequest("Content-Length must be a number of bytes".into()))?),
        None => None,
    };
    if declared.is_some_and(|d| d > limit) {
        return Err(ApiError::PayloadTooLarge(format!("the file is larger than this node accepts ({}, limits.max_blob_bytes)", crate::units::human_bytes(limit))));
    }
    let (root, staging) = upload_dirs(&ctx).await?;
    let promised = std::sync::Arc::clone(&state.promised);
    let mut promise = with_room(&state, staging.clone(), declared.unwrap_or(0), move |_| Ok(promised.promise(declared.unwrap_or(0)))).await?;
    let tmp = staging.join(format!("{}-{name}", uuid::Uuid::new_v4()));
    // Removes the partial file if the client goes away or anything fails before the import.
    struct Partial(Option<std::path::PathBuf>);
    impl Drop for Partial {
        fn drop(&mut self) {
            if let Some(p) = self.0.take() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let mut partial = Partial(Some(tmp.clone()));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    loop {
        // A client that stops sending mid-file is cut off rather than holding the connection.
        let next = tokio::time::timeout(UPLOAD_IDLE, stream.next())
            .await
            .map_err(|_| ApiError::RequestTimeout(format!("nothing arrived for {} s; the upload was abandoned", UPLOAD_IDLE.as_secs())))?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the upload was cut off: {e}")))?;
        let before = total;
        total += chunk.len() as u64;
        if total > limit || declared.is_some_and(|d| total > d) {
            return Err(ApiError::PayloadTooLarge(format!("the file is larger than this node accepts ({}, limits.max_blob_bytes) or than its Content-Length", crate::units::human_bytes(limit))));
        }
        promise.arrived(chunk.len() as u64);
        // Without a declared size, the room is checked again at every 64 MiB.
        if declared.is_none() && before / UNDECLARED_STEP != total / UNDECLARED_STEP {
            with_room(&state, staging.clone(), UNDECLARED_STEP, |_| Ok(())).await?;
        }
        file.write_all(&chunk).await.map_err(|e| ApiError::InsufficientStorage(format!("cannot store the upload: {e}")))?;
    }
    file.sync_all().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    drop(file);
    let meta = import_meta(&auth, &name, crate::resumable_uploads::UploadMeta { title: q.title, teacher: q.teacher, grade: q.grade, subject: q.subject });
    let result = import_upload(&state, auth.name().to_string(), tmp, root, name, meta).await?;
    partial.0 = None;
    match result {
        Ok(view) => Ok((axum::http::StatusCode::CREATED, Json(view)).into_response()),
        Err(reason) => Err(ApiError::Unprocessable(reason)),
    }
}
