//! Resumable uploads over the tus 1.0.0 core protocol with its creation and termination
//! extensions (<https://tus.io/protocols/resumable-upload>), for recordings of several GB sent
//! over school networks that drop:
//!
//! - `POST /api/v1/uploads/resumable` with `Upload-Length` and `Upload-Metadata` (`filename`,
//!   and optionally `title`, `teacher`, `grade`, `subject`, each base64) → 201 and `Location`;
//! - `HEAD` (or `GET`, which also answers JSON) on that location → `Upload-Offset`;
//! - `PATCH` with `Upload-Offset` and `Content-Type: application/offset+octet-stream` → 204 and
//!   the new `Upload-Offset`; the piece that completes the file imports it and answers its lesson
//!   id in `Youke-Lesson` (or 422 with the reason it was quarantined);
//! - `DELETE` abandons it.
//!
//! Bytes that arrived before a connection broke are kept: what was received is fsynced and
//! acknowledged, and the client goes on from the offset `HEAD` reports. See [`crate::uploads`].

use super::api::{UPLOAD_IDLE, check_upload_name, import_meta, import_upload, upload_dirs};
use super::auth::Auth;
use super::{ApiError, AppState, blocking};
use crate::resumable_uploads::{self as uploads, Upload, UploadMeta};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

pub const TUS_VERSION: &str = "1.0.0";
pub const BASE: &str = "/api/v1/uploads/resumable";

/// Uploads a request is appending to now: a second PATCH to the same upload meanwhile is refused
/// (409) rather than interleaved.
#[derive(Debug, Default)]
pub struct Busy(Mutex<HashSet<String>>);

struct Claim(Arc<Busy>, String);

impl Busy {
    fn claim(self: &Arc<Self>, id: &str) -> Option<Claim> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.to_string()).then(|| Claim(Arc::clone(self), id.to_string()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

fn tus_headers(resp: &mut Response, u: &Upload) {
    let h = resp.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    h.insert("upload-offset", HeaderValue::from(u.offset));
    h.insert("upload-length", HeaderValue::from(u.length));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(l) = u.lesson_id.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert("youke-lesson", l);
    }
}

fn number(headers: &HeaderMap, name: &str) -> Result<u64, ApiError> {
    let v = headers.get(name).ok_or_else(|| ApiError::BadRequest(format!("the {name} header is required")))?;
    v.to_str().ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| ApiError::BadRequest(format!("{name} must be a whole number of bytes")))
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs.
fn parse_metadata(raw: &str) -> Result<(String, UploadMeta), ApiError> {
    let mut name = None;
    let mut meta = UploadMeta::default();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| ApiError::BadRequest(format!("Upload-Metadata: the value of {key:?} is not base64")))?;
        let text = String::from_utf8(bytes).map_err(|_| ApiError::BadRequest(format!("Upload-Metadata: the value of {key:?} is not UTF-8 text")))?;
        if text.chars().count() > crate::lessons::MAX_FIELD {
            return Err(ApiError::BadRequest(format!("Upload-Metadata: {key} is longer than {} characters", crate::lessons::MAX_FIELD)));
        }
        let text = Some(text.trim().to_string()).filter(|t| !t.is_empty());
        match key {
            "filename" | "name" => name = text,
            "title" => meta.title = text,
            "teacher" => meta.teacher = text,
            "grade" => meta.grade = text,
            "subject" => meta.subject = text,
            _ => {} // Other clients' keys (filetype, …) are allowed and ignored.
        }
    }
    let name = name.ok_or_else(|| ApiError::BadRequest("Upload-Metadata must name the file (filename)".into()))?;
    check_upload_name(&name)?;
    Ok((name, meta))
}

/// `POST`: starts an upload.
pub async fn create(State(state): State<AppState>, Extension(auth): Extension<Auth>, headers: HeaderMap) -> Result<Response, ApiError> {
    let length = number(&headers, "upload-length")?;
    let limit = state.ctx.config.limits.max_blob_bytes;
    if length > limit {
        return Err(ApiError::PayloadTooLarge(format!("the file is larger than this node accepts ({limit} bytes, limits.max_blob_bytes)")));
    }
    if length == 0 {
        return Err(ApiError::BadRequest("the file is empty".into()));
    }
    let raw = headers.get("upload-metadata").and_then(|v| v.to_str().ok()).unwrap_or("");
    let (name, meta) = parse_metadata(raw)?;
    let name = crate::ingest::plain_name(&name);
    let (_, staging) = upload_dirs(&state.ctx).await?;
    let user = auth.name().to_string();
    let expired_in = staging.clone();
    blocking(&state, move |ctx| {
        // Uploads left for a week are forgotten, with their data.
        for id in ctx.store.write(|tx| uploads::expire(tx, crate::store::now_ms()))? {
            let _ = std::fs::remove_file(uploads::part_path(&expired_in, &id));
        }
        Ok(())
    })
    .await?;
    let u = super::api::with_room(&state, staging.clone(), length, move |ctx| {
        let u = ctx.store.write(|tx| uploads::create(tx, &user, &name, &meta, length))?;
        // The empty file exists from the start, so HEAD after a crash finds it.
        std::fs::File::create(uploads::part_path(&staging, &u.id)).and_then(|f| f.sync_all()).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(u)
    })
    .await?;
    let mut resp = (StatusCode::CREATED, Json(&u)).into_response();
    tus_headers(&mut resp, &u);
    if let Ok(loc) = HeaderValue::from_str(&format!("{BASE}/{}", u.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

/// The caller's upload with this id (someone else's is not found).
async fn load(state: &AppState, auth: &Auth, id: &str) -> Result<Upload, ApiError> {
    let not_found = || ApiError::NotFound(format!("no upload {id} of yours here (unfinished uploads are kept for a week)"));
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let key = id.to_string();
    let u = blocking(state, move |ctx| Ok(ctx.store.read(|c| uploads::get(c, &key))?)).await?;
    match u {
        Some(u) if u.user == auth.name() => Ok(u),
        _ => Err(not_found()),
    }
}

/// `GET` / `HEAD`: how far it got.
pub async fn status(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let u = load(&state, &auth, &id).await?;
    let mut resp = Json(&u).into_response();
    tus_headers(&mut resp, &u);
    Ok(resp)
}

/// `DELETE`: abandons it and removes its data.
pub async fn cancel(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let u = load(&state, &auth, &id).await?;
    let (_, staging) = upload_dirs(&state.ctx).await?;
    blocking(&state, move |ctx| Ok(ctx.store.write(|tx| uploads::delete(tx, &u.id))?)).await?;
    let _ = tokio::fs::remove_file(uploads::part_path(&staging, &id)).await;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    Ok(resp)
}

/// `PATCH`: appends a piece at `Upload-Offset`.
pub async fn append(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/offset+octet-stream") {
        return Err(ApiError::UnsupportedMediaType("send the piece as Content-Type: application/offset+octet-stream".into()));
    }
    let offset = number(&headers, "upload-offset")?;
    let u = load(&state, &auth, &id).await?;
    if let Some(n) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && offset.saturating_add(n) > u.length
    {
        return Err(ApiError::BadRequest(format!("the piece goes past the file's declared length ({} bytes)", u.length)));
    }
    let Some(claim) = state.busy_uploads.claim(&id) else {
        return Err(ApiError::Conflict("another request is sending this upload now; wait for it or ask HEAD for the offset".into()));
    };
    // The piece is received by a task of its own: when the client's connection breaks, the server
    // drops this handler, and the bytes that did arrive must still be acknowledged.
    tokio::spawn(receive(state, auth, u.id, offset, body, claim)).await.map_err(|e| ApiError::Internal(e.to_string()))?
}

async fn receive(state: AppState, auth: Auth, id: String, offset: u64, body: axum::body::Body, _claim: Claim) -> Result<Response, ApiError> {
    // Read again under the claim: the offset a finished request committed.
    let u = load(&state, &auth, &id).await?;
    if u.lesson_id.is_some() || u.error.is_some() {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        tus_headers(&mut resp, &u);
        return if let Some(e) = u.error { Err(ApiError::Unprocessable(e)) } else { Ok(resp) };
    }
    if offset != u.offset {
        return Err(ApiError::Conflict(format!("the upload is at byte {}, not {offset}; continue from there", u.offset)));
    }
    let (root, staging) = upload_dirs(&state.ctx).await?;
    let part = uploads::part_path(&staging, &u.id);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot open the upload's data: {e}")))?;
    let on_disk = file.metadata().await.map_err(|e| ApiError::Internal(e.to_string()))?.len();
    if on_disk < u.offset {
        // The data was removed behind the node's back: nothing to resume.
        let key = u.id.clone();
        blocking(&state, move |ctx| Ok(ctx.store.write(|tx| uploads::delete(tx, &key))?)).await?;
        return Err(ApiError::Gone("this upload's data is no longer on the node; start the upload again".into()));
    }
    // Bytes past the acknowledged offset (written before a crash or a broken request) go.
    file.set_len(u.offset).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    file.seek(std::io::SeekFrom::Start(u.offset)).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut stream = body.into_data_stream();
    let mut at = u.offset;
    let mut broke: Option<ApiError> = None;
    loop {
        let next = match tokio::time::timeout(UPLOAD_IDLE, stream.next()).await {
            Ok(n) => n,
            Err(_) => {
                broke = Some(ApiError::RequestTimeout(format!("nothing arrived for {} s; send the rest from the offset HEAD reports", UPLOAD_IDLE.as_secs())));
                break;
            }
        };
        let chunk = match next {
            None => break,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                broke = Some(ApiError::BadRequest(format!("the piece was cut off ({e}); send the rest from the offset HEAD reports")));
                break;
            }
        };
        if at + chunk.len() as u64 > u.length {
            // Not this file, or not this place in it: none of the piece is kept.
            at = u.offset;
            broke = Some(ApiError::BadRequest(format!("the piece goes past the file's declared length ({} bytes)", u.length)));
            break;
        }
        if let Err(e) = file.write_all(&chunk).await {
            broke = Some(ApiError::InsufficientStorage(format!("cannot store the upload: {e}")));
            break;
        }
        at += chunk.len() as u64;
    }
    // What arrived is kept: on disk first, then acknowledged.
    if at > u.offset {
        file.sync_all().await.map_err(|e| ApiError::Internal(e.to_string()))?;
        let (key, from) = (u.id.clone(), u.offset);
        blocking(&state, move |ctx| Ok(ctx.store.write(|tx| uploads::advance(tx, &key, from, at))?)).await?;
    }
    drop(file);
    if let Some(e) = broke {
        return Err(e);
    }
    let mut done = Upload { offset: at, ..u };
    if at == done.length {
        // Complete: imported as a lesson, or quarantined with the reason.
        let meta = import_meta(&auth, &done.name, done.meta.clone());
        let outcome = import_upload(&state, done.user.clone(), part, root, done.name.clone(), meta).await?;
        let key = done.id.clone();
        let recorded = outcome.as_ref().map(|v| v.lesson.id.clone()).map_err(Clone::clone);
        blocking(&state, move |ctx| Ok(ctx.store.write(|tx| uploads::finish(tx, &key, recorded.as_deref().map_err(String::as_str)))?)).await?;
        match outcome {
            Ok(v) => done.lesson_id = Some(v.lesson.id),
            Err(reason) => return Err(ApiError::Unprocessable(reason)),
        }
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    tus_headers(&mut resp, &done);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn metadata_is_decoded_and_checked() {
        let raw = format!("filename {},title {},filetype {},grade ", b64("浮力 实验.mp4"), b64("阿基米德原理"), b64("video/mp4"));
        let (name, meta) = parse_metadata(&raw).expect("parses");
        assert_eq!(name, "浮力 实验.mp4");
        assert_eq!((meta.title.as_deref(), meta.grade), (Some("阿基米德原理"), None));
        for bad in [String::new(), format!("filename {}", b64("../../etc/passwd")), "filename !!!".into(), format!("title {}", b64("x"))] {
            assert!(matches!(parse_metadata(&bad), Err(ApiError::BadRequest(_))), "{bad:?}");
        }
    }
}
