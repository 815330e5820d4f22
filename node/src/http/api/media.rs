//! Media: the original recording with ranges (from disk, object storage or through the
//! parent), HLS ladder files, subtitles, and the media jobs.

use super::*;

use crate::http::{ApiError, AppState, blocking};
use crate::http::auth::Auth;
use axum::Extension;
use crate::lessons::{self};
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower::ServiceExt;
use youke_federation::BlobHash;

/// A file of an HLS ladder: playlists, segments, poster, sprite, SD version.
pub async fn hls_file(State(state): State<AppState>, Path((hash, rest)): Path<(String, String)>, req: Request) -> Result<Response, ApiError> {
    let bad = || ApiError::NotFound("no such media file".into());
    let (path, mime) = crate::http::segments::resolve(&state.ctx, &hash, &rest).ok_or_else(bad)?;
    // Whole files from memory (the usual segment request); ranges and large files from disk.
    if !req.headers().contains_key(axum::http::header::RANGE)
        && let Some(resp) = state.segments.answer(&path, mime).await
    {
        return Ok(resp.into_response());
    }
    if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        return Err(bad());
    }
    let mime: mime::Mime = mime.parse().map_err(|_| bad())?;
    let mut resp = tower_http::services::ServeFile::new_with_mime(path, &mime).oneshot(req).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    if resp.status().is_success() {
        resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static(crate::http::segments::IMMUTABLE));
    }
    Ok(resp.into_response())
}

pub async fn media_jobs(State(state): State<AppState>) -> Result<Json<Vec<crate::media_jobs::JobInfo>>, ApiError> {
    Ok(Json(blocking(&state, |ctx| Ok(ctx.store.read(crate::media_jobs::list)?)).await?))
}

pub async fn cancel_media_job(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<crate::media_jobs::JobInfo>, ApiError> {
    Ok(Json(blocking(&state, move |ctx| Ok(crate::media_jobs::cancel(ctx, id)?)).await?))
}

pub async fn retry_media_job(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<crate::media_jobs::JobInfo>, ApiError> {
    let job = blocking(&state, move |ctx| Ok(crate::media_jobs::retry(ctx, id)?)).await?;
    state.ctx.wake_media.notify_one();
    Ok(Json(job))
}

/// The lesson's original recording, with HTTP range support (seeking in the player).
/// `?download=1` asks for the original as a file to keep (with its own name), where the
/// lesson's teacher allows downloads.
#[derive(Debug, Deserialize)]
pub struct MediaQuery {
    #[serde(default)]
    pub download: Option<String>,
}

/// `Content-Disposition` for a download named `name` (RFC 6266 with an RFC 5987 UTF-8 name, so
/// Chinese file names survive, and a plain fallback).
fn attachment(name: &str) -> String {
    let encoded: String = name.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    let plain: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

pub async fn lesson_media(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Query(q): Query<MediaQuery>, req: Request) -> Result<Response, ApiError> {
    check_id(&id)?;
    let download = q.download.is_some_and(|d| !matches!(d.as_str(), "0" | "false" | "no"));
    let (path, media, hash, name) = blocking(&state, move |ctx| {
        let lesson = super::visible_lesson(ctx, auth.user(), &id)?;
        if download && !lesson.downloadable && !super::may_change(ctx, auth.user(), &lesson.id)? {
            return Err(ApiError::Forbidden("the teacher of this lesson does not allow downloading it".into()));
        }
        let name = if lesson.original_name.is_empty() { format!("{}.mp4", lesson.title) } else { lesson.original_name.clone() };
        let media = lesson.media.ok_or_else(|| ApiError::NotFound("this lesson has no media".into()))?;
        let hash: BlobHash = media.hash.parse().map_err(|_| ApiError::Internal("bad media hash".into()))?;
        Ok((ctx.blobs.blob(&hash), media, hash, name))
    })
    .await?;
    let mut resp = serve_media(&state, path, &media, hash, req).await?;
    if download
        && resp.status().is_success()
        && let Ok(v) = axum::http::HeaderValue::from_str(&attachment(&name))
    {
        resp.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn serve_media(state: &AppState, path: Option<youke_federation::blobs::Blob>, media: &lessons::MediaRef, hash: BlobHash, req: Request) -> Result<Response, ApiError> {
    let mime: mime::Mime = media.mime.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM);
    if let Some(blob) = path {
        let Some(path) = blob.path() else { return object_media(&blob, &mime, req.method().clone(), req.headers().clone()).await };
        let resp = tower_http::services::ServeFile::new_with_mime(path, &mime)
            .oneshot(req)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok(resp.into_response());
    }
    if state.ctx.config.parent.is_none() {
        return Err(ApiError::NotFound("the media of this lesson has not arrived at this node yet".into()));
    }
    pull_media(state, hash, media.size, &mime, req.headers().get(axum::http::header::RANGE)).await
}

/// Serves media held in object storage: the range asked for (or all of it) streamed from the
/// bucket as it arrives, with the blob's hash as its ETag (the bytes behind a hash never change).
/// A bucket out of reach is a 503 naming it, before any byte is sent.
async fn object_media(blob: &youke_federation::blobs::Blob, mime: &mime::Mime, method: axum::http::Method, asked: axum::http::HeaderMap) -> Result<Response, ApiError> {
    use axum::http::{Method, StatusCode, header};
    let size = blob.size();
    let etag = format!("\"{}\"", blob.hash());
    if asked.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let range = asked.get(header::RANGE).and_then(|v| v.to_str().ok());
    // A range whose If-Range names another version is answered with the whole blob.
    let if_range_ok = asked.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v.trim() == etag);
    let (status, start, end) = match range.filter(|_| if_range_ok) {
        None => (StatusCode::OK, 0, size),
        Some(r) => match parse_range(r, size) {
            Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
            None if is_single_range(r) => {
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))]).into_response());
            }
            None => (StatusCode::OK, 0, size), // Several ranges: the whole blob, as allowed.
        },
    };
    let mut headers = axum::http::HeaderMap::new();
    let hv = |s: String| axum::http::HeaderValue::from_str(&s).unwrap_or(axum::http::HeaderValue::from_static(""));
    headers.insert(header::CONTENT_TYPE, hv(mime.to_string()));
    headers.insert(header::CONTENT_LENGTH, hv((end - start).to_string()));
    headers.insert(header::ACCEPT_RANGES, axum::http::HeaderValue::from_static("bytes"));
    headers.insert(header::ETAG, hv(etag));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(header::CONTENT_RANGE, hv(format!("bytes {start}-{}/{size}", end - 1)));
    }
    if method == Method::HEAD || start == end {
        return Ok((status, headers).into_response());
    }
    let Some(remote) = blob.remote() else { return Err(ApiError::Internal("the blob is not in object storage".into())) };
    let mut pieces = remote.stream(&blob.hash(), start..end);
    let first = match pieces.recv().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            tracing::warn!(hash = %blob.hash(), error = %e, "cannot read media from object storage");
            return Err(ApiError::Unavailable(e.to_string()));
        }
        None => return Err(ApiError::Unavailable(format!("{} sent no bytes of blob {}", remote.describe(), blob.hash()))),
    };
    let stream = futures_util::stream::unfold((Some(first), pieces), |(first, mut rx)| async move {
        if let Some(b) = first {
            return Some((Ok(b), (None, rx)));
        }
        rx.recv().await.map(|item| (item.map_err(std::io::Error::other), (None, rx)))
    });
    Ok((status, headers, axum::body::Body::from_stream(stream)).into_response())
}

/// Most bytes answered to one range request for media fetched through the parent; players ask
/// again for the rest.
const PULL_RESPONSE_MAX: u64 = youke_federation::protocol::MAX_RANGE;

/// Serves media this node does not hold by fetching it through the parent (and caching it):
/// ranges as asked (up to a few MiB each), or the whole file as a stream.
async fn pull_media(state: &AppState, hash: BlobHash, size: u64, mime: &mime::Mime, range: Option<&axum::http::HeaderValue>) -> Result<Response, ApiError> {
    use axum::http::{StatusCode, header};
    let ctx = std::sync::Arc::clone(&state.ctx);
    let Some((start, end)) = range.and_then(|v| v.to_str().ok()).and_then(|v| parse_range(v, size)) else {
        if range.is_some_and(|v| v.to_str().is_ok_and(is_single_range)) {
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))]).into_response());
        }
        // The whole file, fetched piece by piece as the client reads.
        let first = crate::pull_through::read(&ctx, hash, 0, PULL_RESPONSE_MAX).await?;
        let first_end = first.bytes_end();
        let stream = futures_util::stream::unfold((Some(first.bytes), first_end, ctx), move |(ready, next, ctx)| async move {
            if let Some(b) = ready {
                return Some((Ok::<_, std::io::Error>(b), (None, next, ctx)));
            }
            if next >= size {
                return None;
            }
            match crate::pull_through::read(&ctx, hash, next, PULL_RESPONSE_MAX).await {
                Ok(r) => {
                    let end = r.bytes_end();
                    Some((Ok(r.bytes), (None, end.max(next + 1), ctx)))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, size, ctx))),
            }
        });
        let body = axum::body::Body::from_stream(stream);
        return Ok((
            [(header::CONTENT_TYPE, mime.to_string()), (header::CONTENT_LENGTH, size.to_string()), (header::ACCEPT_RANGES, "bytes".into())],
            body,
        )
            .into_response());
    };
    let end = end.min(start + PULL_RESPONSE_MAX);
    let r = crate::pull_through::read(&ctx, hash, start, end - start).await?;
    let got_end = r.bytes_end();
    Ok((
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", got_end.saturating_sub(1))),
            (header::ACCEPT_RANGES, "bytes".into()),
        ],
        r.bytes,
    )
        .into_response())
}

/// Whether a Range header asks for one byte range (which, if [`parse_range`] refuses it, is
/// unsatisfiable: 416), not several (answered with the whole body).
fn is_single_range(value: &str) -> bool {
    value.trim().starts_with("bytes=") && !value.contains(',')
}

/// A single `bytes=` range as `[start, end)` within `size`; `None` if absent, several, or
/// unsatisfiable.
pub(super) fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { size } else { b.parse::<u64>().ok()?.saturating_add(1).min(size) };
        (start, end)
    };
    (start < end && start < size).then_some((start, end))
}

/// The lesson's subtitles as WebVTT, for the player's `<track>`.
pub async fn lesson_subtitles(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    check_id(&id)?;
    let vtt = blocking(&state, move |ctx| {
        let (srt, _) = ctx.store.read(|c| lessons::subtitles_of(c, &id))?.ok_or_else(|| ApiError::NotFound("this lesson has no subtitles".into()))?;
        let cues = youke_media::srt::parse(srt.as_bytes()).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(youke_media::srt::to_webvtt(&cues))
    })
    .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/vtt; charset=utf-8")], vtt).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SubtitleQuery {
    /// The lecture's language: zh or en.
    pub language: Option<String>,
}

/// Attaches SRT subtitles (the request body) to a lesson.
pub async fn put_subtitles(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
    Query(q): Query<SubtitleQuery>,
    body: axum::body::Bytes,
) -> Result<Json<LessonView>, ApiError> {
    check_id(&id)?;
    require_owner(&state, &auth, &id).await?;
    let view = blocking(&state, move |ctx| {
        let lesson = crate::import::attach_subtitles(ctx, &id, &body, q.language.as_deref())?;
        Ok(LessonView::new(ctx, lesson))
    })
    .await?;
    Ok(Json(view))
}
