//! JSON API handlers (`/api/v1`).

use super::{ApiError, AppState, blocking};
use super::auth::Auth;
use crate::accounts;
use crate::catalog;
use axum::Extension;
use axum::http::StatusCode;
use crate::lessons::{self, Lesson};
use axum::Json;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use youke_federation::{BlobHash, Tier};
use youke_search::{Dim, Order};

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
        let hls = hash.and_then(|h| {
            let hex = h.to_hex();
            let out = ladder(&hex)?;
            let base = format!("/media/hls/{hex}");
            Some(HlsView {
                master_url: format!("{base}/{}", out.master),
                poster_url: format!("{base}/{}", out.poster),
                sprite_vtt_url: format!("{base}/{}", out.sprite_vtt),
                sd_url: out.sd_mp4.as_ref().map(|_| format!("{base}/{}", youke_media::hls::SD_MP4)),
                renditions: out.renditions,
            })
        });
        LessonView { lesson, media_present, media_url, hls }
    }
}

/// A file of an HLS ladder: playlists, segments, poster, sprite, SD version.
pub async fn hls_file(State(state): State<AppState>, Path((hash, rest)): Path<(String, String)>, req: Request) -> Result<Response, ApiError> {
    let bad = || ApiError::NotFound("no such media file".into());
    let (path, mime) = super::segments::resolve(&state.ctx, &hash, &rest).ok_or_else(bad)?;
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
        resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static(super::segments::IMMUTABLE));
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

pub async fn get_lesson(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<LessonView>, ApiError> {
    check_id(&id)?;
    let view = blocking(&state, move |ctx| {
        let lesson = ctx.store.read(|c| lessons::get(c, &id))?.ok_or_else(|| ApiError::NotFound(format!("no lesson with id {id}")))?;
        Ok(LessonView::new(ctx, lesson))
    })
    .await?;
    Ok(Json(view))
}

/// The lesson's original recording, with HTTP range support (seeking in the player).
pub async fn lesson_media(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Result<Response, ApiError> {
    check_id(&id)?;
    let (path, media, hash) = blocking(&state, move |ctx| {
        let lesson = ctx.store.read(|c| lessons::get(c, &id))?.ok_or_else(|| ApiError::NotFound(format!("no lesson with id {id}")))?;
        let media = lesson.media.ok_or_else(|| ApiError::NotFound("this lesson has no media".into()))?;
        let hash: BlobHash = media.hash.parse().map_err(|_| ApiError::Internal("bad media hash".into()))?;
        Ok((ctx.blobs.blob(&hash), media, hash))
    })
    .await?;
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
    pull_media(&state, hash, media.size, &mime, req.headers().get(axum::http::header::RANGE)).await
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
        let first = crate::pull::read(&ctx, hash, 0, PULL_RESPONSE_MAX).await?;
        let first_end = first.bytes_end();
        let stream = futures_util::stream::unfold((Some(first.bytes), first_end, ctx), move |(ready, next, ctx)| async move {
            if let Some(b) = ready {
                return Some((Ok::<_, std::io::Error>(b), (None, next, ctx)));
            }
            if next >= size {
                return None;
            }
            match crate::pull::read(&ctx, hash, next, PULL_RESPONSE_MAX).await {
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
    let r = crate::pull::read(&ctx, hash, start, end - start).await?;
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
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
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

/// A parsed search request: `q`, a filter per facet dimension (repeatable: `grade=初二&grade=初三`),
/// `order` (relevance, views, rating, newest), `page`, `per_page`, `facets` (true by default).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    pub q: String,
    pub filters: Vec<(Dim, String)>,
    pub order: Order,
    pub page: u64,
    pub per_page: u64,
    pub facets: bool,
}

impl SearchParams {
    /// Parses the query string of `/search` or `/api/v1/search`.
    pub fn parse(raw: Option<&str>) -> Result<SearchParams, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| ApiError::BadRequest(format!("the query string is malformed: {e}")))?;
        let mut p = SearchParams { q: String::new(), filters: Vec::new(), order: Order::Relevance, page: 1, per_page: 20, facets: true };
        let number = |k: &str, v: &str| v.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("{k} must be a whole number, not {v:?}")));
        for (k, v) in pairs {
            match k.as_str() {
                "q" => p.q = v,
                "order" => {
                    p.order = Order::parse(&v).ok_or_else(|| ApiError::BadRequest(format!("order must be relevance, views, rating or newest, not {v:?}")))?
                }
                "page" => p.page = number("page", &v)?,
                "per_page" | "limit" => p.per_page = number("per_page", &v)?,
                "facets" => p.facets = !matches!(v.as_str(), "false" | "0" | "no"),
                k => match Dim::parse(k) {
                    Some(dim) if !v.trim().is_empty() => {
                        if v.chars().count() > MAX_QUERY_CHARS {
                            return Err(ApiError::BadRequest(format!("the {k} filter is longer than {MAX_QUERY_CHARS} characters")));
                        }
                        if p.filters.len() >= 32 {
                            return Err(ApiError::BadRequest("at most 32 filters".into()));
                        }
                        p.filters.push((dim, v.trim().to_string()));
                    }
                    Some(_) => {}
                    None => return Err(ApiError::BadRequest(format!("unknown search parameter {k:?}"))),
                },
            }
        }
        if p.q.chars().count() > MAX_QUERY_CHARS {
            return Err(ApiError::BadRequest(format!("the query is longer than {MAX_QUERY_CHARS} characters")));
        }
        if p.page == 0 || p.per_page == 0 || p.per_page > 100 {
            return Err(ApiError::BadRequest("page starts at 1 and per_page is 1 to 100".into()));
        }
        Ok(p)
    }

    /// How many hits come before this page (saturating: a page past every hit is empty).
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// This search's query string with one filter toggled (`None`: as it is), from page 1.
    pub fn href(&self, toggle: Option<(Dim, &str)>, order: Order, page: u64) -> String {
        let page_text = page.to_string();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(self.filters.len() + 4);
        if !self.q.is_empty() {
            pairs.push(("q", &self.q));
        }
        // The toggled filter is removed where it is, or added last.
        let mut toggled = false;
        for (d, v) in &self.filters {
            if !toggled && toggle.is_some_and(|(dim, value)| *d == dim && v == value) {
                toggled = true;
                continue;
            }
            pairs.push((d.as_str(), v));
        }
        if let Some((dim, value)) = toggle.filter(|_| !toggled) {
            pairs.push((dim.as_str(), value));
        }
        if order != Order::Relevance {
            pairs.push(("order", order.as_str()));
        }
        if page > 1 {
            pairs.push(("page", &page_text));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// A page of search hits; `L` is what each hit carries of its lesson: the whole [`LessonView`]
/// (API, cards with posters) or just its row (the search page's list).
#[derive(Debug, Serialize)]
pub struct SearchResult<L = LessonView> {
    pub query: String,
    pub order: Order,
    pub page: u64,
    pub per_page: u64,
    /// Lessons matching, in all.
    pub total: usize,
    pub items: Vec<SearchHit<L>>,
    /// Per dimension, its values and how many matching lessons have each, most first.
    pub facets: std::collections::BTreeMap<&'static str, Vec<FacetCount>>,
}

#[derive(Debug, Serialize)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct SearchHit<L = LessonView> {
    pub score: f32,
    /// The title with the matching words in `<b>` (HTML, escaped), when the title matched.
    pub title_html: Option<String>,
    /// A passage of the description with the matching words in `<b>` (HTML, escaped).
    pub snippet_html: Option<String>,
    /// Where in the lesson the query is spoken (from its subtitles): the lesson page plays
    /// from there with `?t=<seconds>`.
    pub moments: Vec<MomentView>,
    #[serde(flatten)]
    pub lesson: L,
}

#[derive(Debug, Serialize)]
pub struct MomentView {
    pub start_secs: f64,
    pub text: String,
}

pub const MAX_QUERY_CHARS: usize = 200;

/// Runs a search and loads the matching lessons, best first.
pub async fn run_search(state: &AppState, p: SearchParams) -> Result<SearchResult, ApiError> {
    search_with(state, p, |ctx, c, ids| Ok(lessons::by_ids(c, ids)?.into_iter().map(|l| (l.id.clone(), LessonView::with_conn(ctx, c, l))).collect())).await
}

/// [`run_search`] with each hit's card only (title, names, views: no ladders, no blob checks):
/// for pages that list lessons as lines.
pub async fn search_cards(state: &AppState, p: SearchParams) -> Result<SearchResult<lessons::LessonCard>, ApiError> {
    search_with(state, p, |_, c, ids| Ok(lessons::cards_by_ids(c, ids)?.into_iter().map(|l| (l.id.clone(), l)).collect())).await
}

/// The lessons of a page of hits, by id, as each kind of result carries them.
type HitRows<L> = fn(&crate::NodeCtx, &rusqlite::Connection, &[String]) -> Result<std::collections::HashMap<String, L>, ApiError>;

async fn search_with<L: Send + 'static>(state: &AppState, p: SearchParams, rows: HitRows<L>) -> Result<SearchResult<L>, ApiError> {
    let index = std::sync::Arc::clone(&state.index);
    blocking(state, move |ctx| {
        let req = youke_search::Request {
            text: p.q.clone(),
            filters: p.filters.clone(),
            order: p.order,
            offset: usize::try_from(p.offset()).unwrap_or(usize::MAX),
            limit: p.per_page as usize,
            facets: p.facets,
        };
        let failed = |e: youke_search::SearchError| match e {
            youke_search::SearchError::TooDeep => ApiError::BadRequest(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        };
        let found = match index.search(&req) {
            // Deeper than the index pages to: an empty page when it is past the last hit.
            Err(youke_search::SearchError::TooDeep) => {
                let mut counted = index.search(&youke_search::Request { offset: 0, limit: 1, ..req.clone() }).map_err(failed)?;
                if counted.total > req.offset {
                    return Err(failed(youke_search::SearchError::TooDeep));
                }
                counted.hits.clear();
                counted
            }
            other => other.map_err(failed)?,
        };
        let ids: Vec<String> = found.hits.iter().map(|h| h.id.clone()).collect();
        // One read transaction for the page's rows and their ladders.
        let items = ctx.store.read(|c| -> Result<Vec<SearchHit<L>>, ApiError> {
            let tx = c.unchecked_transaction().map_err(crate::store::StoreError::from)?;
            let mut rows = rows(ctx, &tx, &ids)?;
            // In the index's order; a lesson deleted since the last commit is left out.
            Ok(found
                .hits
                .into_iter()
                .filter_map(|h| {
                    let l = rows.remove(&h.id)?;
                    let moments = h.moments.iter().map(|m| MomentView { start_secs: m.start_ms as f64 / 1000.0, text: m.text.clone() }).collect();
                    Some(SearchHit { score: h.score, title_html: h.title_html, snippet_html: h.snippet_html, moments, lesson: l })
                })
                .collect())
        })?;
        let facets = found
            .facets
            .into_iter()
            .map(|(dim, values)| (dim.as_str(), values.into_iter().map(|(value, count)| FacetCount { value, count }).collect()))
            .collect();
        Ok(SearchResult { query: p.q, order: p.order, page: p.page, per_page: p.per_page, total: found.total, items, facets })
    })
    .await
}

pub async fn search(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<SearchResult>, ApiError> {
    let params = SearchParams::parse(raw.as_deref())?;
    Ok(Json(run_search(&state, params).await?))
}

pub async fn status(State(state): State<AppState>) -> Result<Json<crate::status::Status>, ApiError> {
    let s = blocking(&state, |ctx| crate::status::collect(ctx, true).map_err(ApiError::from)).await?;
    Ok(Json(s))
}

/// Running blob transfers with bytes done, rate and ETA.
pub async fn transfers(State(state): State<AppState>) -> Json<Vec<youke_federation::transfers::TransferInfo>> {
    Json(state.ctx.transfers.snapshot())
}

pub async fn get_link(State(state): State<AppState>) -> Result<Json<crate::link_settings::LinkSettings>, ApiError> {
    Ok(Json(blocking(&state, |ctx| Ok(crate::link_settings::show(ctx)?)).await?))
}

#[derive(Debug, Deserialize)]
pub struct LinkBody {
    /// The new media rate schedule, e.g. "08:00-17:30 2Mbit/s, otherwise unlimited"; `null` goes
    /// back to the config file's.
    pub upload_schedule: Option<String>,
}

/// Changes the media rate schedule of the link to the parent, at once and across restarts.
pub async fn put_link(State(state): State<AppState>, Json(body): Json<LinkBody>) -> Result<Json<crate::link_settings::LinkSettings>, ApiError> {
    let schedule = match body.upload_schedule.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<youke_federation::rate::RateSchedule>().map_err(ApiError::BadRequest)?),
    };
    Ok(Json(blocking(&state, move |ctx| Ok(crate::link_settings::set(ctx, schedule.as_ref())?)).await?))
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
                let replication_text = lang.replication(&replication);
                MyLesson { lesson: LessonView::new(ctx, l), replication, replication_text }
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

pub async fn view_lesson(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<LessonView>, ApiError> {
    edit_lesson(&state, id, lessons::LessonEdit::View).await
}

pub async fn lesson_discussion(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<lessons::Discussion>, ApiError> {
    check_id(&id)?;
    let d = blocking(&state, move |ctx| {
        ctx.store
            .read(|c| lessons::discussion(c, &ctx.writer, &id))?
            .ok_or_else(|| ApiError::NotFound(format!("no lesson with id {id}")))
    })
    .await?;
    Ok(Json(d))
}

#[derive(Debug, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

pub async fn list_collections(State(state): State<AppState>) -> Result<Json<Items<catalog::Collection>>, ApiError> {
    let items = blocking(&state, |ctx| Ok(ctx.store.read(catalog::collections)?)).await?;
    Ok(Json(Items { items }))
}

pub async fn list_announcements(State(state): State<AppState>) -> Result<Json<Items<catalog::Announcement>>, ApiError> {
    let items = blocking(&state, |ctx| Ok(ctx.store.read(catalog::announcements)?)).await?;
    Ok(Json(Items { items }))
}

pub async fn create_collection(State(state): State<AppState>, Json(c): Json<catalog::Collection>) -> Result<Json<catalog::Collection>, ApiError> {
    Ok(Json(change(&state, move |tx, w| catalog::create_collection(tx, w, &c)).await?))
}

pub async fn create_announcement(State(state): State<AppState>, Json(a): Json<catalog::Announcement>) -> Result<Json<catalog::Announcement>, ApiError> {
    Ok(Json(change(&state, move |tx, w| catalog::create_announcement(tx, w, &a)).await?))
}

/// The node's links: its parent, its children, and what crossed them.
#[derive(Debug, Serialize)]
pub struct Federation {
    pub node_id: String,
    pub role: String,
    pub doc_seq: u64,
    pub parent: Option<crate::status::ParentLink>,
    pub children: Vec<crate::status::ChildLink>,
    pub docs_sent: u64,
    pub docs_received: u64,
    pub doc_bytes_sent: u64,
    pub doc_bytes_received: u64,
    pub blob_bytes_sent: u64,
    pub blob_bytes_received: u64,
}

pub async fn federation(State(state): State<AppState>) -> Result<Json<Federation>, ApiError> {
    use youke_federation::counters::LinkCounters as C;
    let f = blocking(&state, |ctx| {
        let s = crate::status::collect(ctx, true)?;
        let k = &ctx.counters;
        Ok(Federation {
            node_id: s.node_id,
            role: s.role,
            doc_seq: s.doc_seq,
            parent: s.parent,
            children: s.children,
            docs_sent: C::get(&k.docs_sent),
            docs_received: C::get(&k.docs_received),
            doc_bytes_sent: C::get(&k.doc_bytes_sent),
            doc_bytes_received: C::get(&k.doc_bytes_received),
            blob_bytes_sent: C::get(&k.blob_bytes_sent),
            blob_bytes_received: C::get(&k.blob_bytes_received),
        })
    })
    .await?;
    Ok(Json(f))
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = blocking(&state, |ctx| {
        let s = crate::status::collect(ctx, true)?;
        Ok(crate::status::metrics(&s, &ctx.counters))
    })
    .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// What `/readyz` found.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// The database answered a read.
    pub database: bool,
    /// The search index has caught up with the database since the node started.
    pub search_index: bool,
    /// The node is shutting down.
    pub stopping: bool,
    /// The bucket of [object_store] answered (absent when media is on local disk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_storage: Option<bool>,
}

/// `GET /readyz`: 200 when this node can serve its portal with current data (database answers,
/// search index caught up, not stopping), else 503 with what is missing: for load balancers in
/// front of several portal frontends, and for the appliance's first boot.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let stopping = state.shutdown.is_cancelled();
    let search_index = state.ctx.index_current.load(std::sync::atomic::Ordering::Acquire);
    let probe = blocking(&state, |ctx| Ok(ctx.store.ping()?));
    let database = tokio::time::timeout(std::time::Duration::from_secs(2), probe).await.is_ok_and(|r| r.is_ok());
    let object_storage = match state.ctx.blobs.remote().cloned() {
        None => None,
        Some(remote) => {
            let probe = tokio::task::spawn_blocking(move || remote.probe());
            Some(tokio::time::timeout(std::time::Duration::from_secs(2), probe).await.is_ok_and(|r| r.is_ok_and(|r| r.is_ok())))
        }
    };
    let ready = database && search_index && !stopping && object_storage != Some(false);
    let r = Readiness { ready, database, search_index, stopping, object_storage };
    let code = if r.ready { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(r)).into_response()
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

pub async fn quarantine(State(state): State<AppState>) -> Result<Json<Vec<crate::ingest::Quarantined>>, ApiError> {
    Ok(Json(blocking(&state, |ctx| Ok(ctx.store.read(crate::ingest::quarantined)?)).await?))
}

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
pub(super) fn check_upload_name(name: &str) -> Result<(), ApiError> {
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
pub(super) async fn upload_dirs(ctx: &crate::NodeCtx) -> Result<(std::path::PathBuf, std::path::PathBuf), ApiError> {
    let root = ctx.config.watch_dir(&ctx.data_dir).unwrap_or_else(|| ctx.data_dir.join("import"));
    let staging = root.join(".uploading");
    tokio::fs::create_dir_all(&staging).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((root, staging))
}

/// Runs `then` once an upload of `declared` bytes is known to fit on the disk of `staging`
/// (free space, less the reserve, less what unfinished uploads still expect: see
/// [`crate::disk`]); 507 naming both figures if it does not. One upload at a time passes here,
/// so two cannot both take the last room.
pub(super) async fn with_room<T: Send + 'static>(
    state: &AppState,
    staging: std::path::PathBuf,
    declared: u64,
    then: impl FnOnce(&crate::NodeCtx) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _turn = state.room.lock().await;
    let promised = std::sync::Arc::clone(&state.promised);
    blocking(state, move |ctx| {
        let unfinished = ctx.store.read(crate::uploads::outstanding_bytes)?;
        let space = crate::disk::space(&staging).map_err(|e| ApiError::Internal(format!("cannot read the free space of the upload folder: {e}")))?;
        crate::disk::fits(declared, space, ctx.config.limits.disk_reserve_percent, unfinished.saturating_add(promised.total()))
            .map_err(ApiError::no_room)?;
        then(ctx)
    })
    .await
}

/// What an upload says about its lesson; the title defaults to the file's name, the teacher to
/// the signed-in teacher's name.
pub(super) fn import_meta(auth: &Auth, name: &str, m: crate::uploads::UploadMeta) -> crate::lessons::ImportMeta {
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
pub(super) async fn import_upload(
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
    let meta = import_meta(&auth, &name, crate::uploads::UploadMeta { title: q.title, teacher: q.teacher, grade: q.grade, subject: q.subject });
    let result = import_upload(&state, auth.name().to_string(), tmp, root, name, meta).await?;
    partial.0 = None;
    match result {
        Ok(view) => Ok((axum::http::StatusCode::CREATED, Json(view)).into_response()),
        Err(reason) => Err(ApiError::Unprocessable(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_links_toggle_one_filter_and_parse_back() {
        let p = SearchParams::parse(Some("q=%E5%8B%BE%E8%82%A1&grade=%E5%88%9D%E4%BA%8C&subject=%E6%95%B0%E5%AD%A6&order=views&page=3")).expect("parses");
        // As it is, from page 1.
        assert_eq!(SearchParams::parse(Some(&p.href(None, p.order, 1))).expect("parses"), SearchParams { page: 1, ..p.clone() });
        // A chosen filter is removed, another added last; Chinese values survive.
        let without = SearchParams::parse(Some(&p.href(Some((Dim::Grade, "初二")), p.order, 1))).expect("parses");
        assert_eq!(without.filters, vec![(Dim::Subject, "数学".to_string())]);
        let with = SearchParams::parse(Some(&p.href(Some((Dim::School, "一中 & 二中")), Order::Relevance, 2))).expect("parses");
        assert_eq!(with.filters.last(), Some(&(Dim::School, "一中 & 二中".to_string())));
        assert_eq!((with.order, with.page, with.q.as_str()), (Order::Relevance, 2, "勾股"));
        assert_eq!(SearchParams::parse(None).expect("parses").href(None, Order::Relevance, 1), "");
    }
}
