//! The portal (server-rendered HTML, zh-CN) and the JSON API under `/api/v1`.
//!
//! [`router`] builds the whole app from its state, so tests call it without sockets. Errors are
//! mapped to HTTP in one place ([`ApiError`]): client errors are answered as they are, internal
//! ones are logged and answered with a generic message, all as `application/problem+json`.

mod api;
mod assets;
pub mod auth;
#[cfg(test)]
mod authz_tests;
mod browse;
mod console;
mod contest;
mod cookies;
pub mod fastpath;
mod html;
mod i18n;
pub mod limits;
mod login;
mod pages;
mod redirect;
mod resumable;
mod review;
pub mod segments;
pub mod server;
mod teach;

use crate::context::{NodeCtx, NodeError};
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
    pub throttle: Arc<crate::accounts::LoginThrottle>,
    /// Checks sign-in passwords a few at a time with bounded memory.
    pub passwords: crate::passwords::PasswordPool,
    /// Taken while an upload's room on disk is checked and promised (one at a time).
    pub room: Arc<tokio::sync::Mutex<()>>,
    /// Bytes plain uploads under way still expect.
    pub promised: Arc<crate::disk::Promised>,
    /// Resumable uploads a request is appending to now.
    pub busy_uploads: Arc<resumable::Busy>,
    /// Fires when the node shuts down: long-lived answers (event streams) end.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// HLS ladder files recently served, kept in memory.
    pub segments: Arc<segments::SegmentCache>,
    /// Requests doing database work at once ([`blocking`]); the rest wait their turn without
    /// holding a thread, so a burst of page views reuses the pooled connections instead of
    /// opening new ones.
    pub db_permits: Arc<tokio::sync::Semaphore>,
    /// View tickets and the per-address limit on view reports.
    pub viewing: Arc<crate::viewing::Viewing>,
    /// The indexes of the rendition packs read so far.
    pub packs: Arc<api::PackIndexes>,
}

impl AppState {
    pub fn new(ctx: Arc<NodeCtx>, index: Arc<LessonIndex>) -> AppState {
        let segments = Arc::new(segments::SegmentCache::new(ctx.config.limits.hls_cache_bytes));
        let db_permits = Arc::new(tokio::sync::Semaphore::new(DB_CONCURRENCY));
        let passwords = crate::passwords::PasswordPool::sized_to_cores();
        let viewing = Arc::new(crate::viewing::Viewing::load_or_ephemeral(&ctx.store));
        AppState { ctx, index, throttle: Arc::default(), passwords, room: Arc::default(), promised: Arc::default(), busy_uploads: Arc::default(), shutdown: Default::default(), segments, db_permits, viewing, packs: Arc::default() }
    }

    /// Ends long-lived answers when `cancel` fires.
    pub fn with_shutdown(self, cancel: tokio_util::sync::CancellationToken) -> AppState {
        AppState { shutdown: cancel, ..self }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/search", get(pages::search))
        .route("/lessons/{id}", get(pages::lesson))
        .route("/upload", get(pages::upload_page))
        .route("/lang", get(i18n::switch))
        .route("/teachers", get(browse::teachers))
        .route("/teachers/{name}", get(browse::teacher))
        .route("/schools", get(browse::schools))
        .route("/schools/{name}", get(browse::school))
        .route("/collections", get(browse::collections))
        .route("/collections/{id}", get(browse::collection))
        .route("/announcements", get(browse::announcements))
        .route("/admin", get(console::page))
        .route("/review", get(review::page))
        .route("/api/v1/admin/live", get(console::live_json))
        .route("/api/v1/admin/events", get(console::events))
        .route("/api/v1/admin/storage", get(console::storage_json))
        .route("/api/v1/tokens", get(console::list_tokens).post(console::create_token))
        .route("/competitions", get(contest::list_page))
        .route("/competitions/{id}", get(contest::page))
        .route("/my", get(teach::my_lessons))
        .route("/lessons/{id}/edit", get(teach::edit_page))
        .route("/api/v1/me/lessons", get(api::my_lessons))
        .route("/assets/{name}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .route("/login", get(login::login_page).post(login::login_form))
        .route("/api/v1/session", get(auth::api_whoami).post(auth::api_login).delete(auth::api_logout))
        .route("/api/v1/users", get(api::list_users).post(api::create_user))
        .route("/api/v1/users/{name}", axum::routing::patch(api::update_user))
        .route("/api/v1/audit", get(api::audit_log))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(api::readyz))
        .route("/api/v1/lessons", get(api::list_lessons))
        .route("/api/v1/lessons/{id}", get(api::get_lesson).patch(api::patch_lesson))
        .route("/api/v1/lessons/{id}/media", get(api::lesson_media))
        .route("/api/v1/lessons/{id}/share", post(api::share_lesson))
        .route("/api/v1/lessons/{id}/ratings", post(api::rate_lesson))
        .route("/api/v1/lessons/{id}/comments", post(api::comment_lesson))
        .route("/api/v1/lessons/{id}/comments/{comment}", axum::routing::delete(api::delete_comment))
        .route("/api/v1/lessons/{id}/comments/{comment}/hide", post(api::hide_comment))
        .route("/api/v1/lessons/{id}/decision", post(api::decide))
        .route("/api/v1/lessons/{id}/takedown", post(api::takedown))
        .route("/api/v1/review", get(api::review_queue))
        .route("/api/v1/lessons/{id}/reviews", post(api::review_lesson))
        .route("/api/v1/lessons/{id}/views", post(api::view_lesson))
        .route("/api/v1/lessons/{id}/view-ticket", get(api::view_ticket))
        .route("/api/v1/lessons/{id}/discussion", get(api::lesson_discussion))
        .route("/api/v1/lessons/{id}/subtitles", axum::routing::put(api::put_subtitles))
        .route("/api/v1/lessons/{id}/subtitles.vtt", get(api::lesson_subtitles))
        .route("/api/v1/collections", get(api::list_collections).post(api::create_collection))
        .route("/api/v1/collections/{id}", axum::routing::put(api::update_collection).delete(api::delete_collection))
        .route("/api/v1/announcements", get(api::list_announcements).post(api::create_announcement))
        .route("/api/v1/announcements/{id}", axum::routing::put(api::update_announcement).delete(api::delete_announcement))
        .route("/api/v1/competitions", get(contest::list).post(contest::create))
        .route("/api/v1/competitions/{id}", get(contest::get))
        .route("/api/v1/competitions/{id}/entries", post(contest::submit))
        .route("/api/v1/competitions/{id}/entries/{lesson}/judges", axum::routing::put(contest::assign))
        .route("/api/v1/competitions/{id}/entries/{lesson}/score", axum::routing::put(contest::score))
        .route("/api/v1/competitions/{id}/results", post(contest::results))
        .route("/api/v1/search", get(api::search))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/federation", get(api::federation))
        .route("/api/v1/link", get(api::get_link).put(api::put_link))
        .route("/api/v1/transfers", get(api::transfers))
        .route("/api/v1/media/jobs", get(api::media_jobs))
        .route("/api/v1/quarantine", get(api::quarantine))
        .route("/api/v1/uploads", axum::routing::put(api::upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/api/v1/uploads/resumable", post(resumable::create))
        .route("/api/v1/uploads/resumable/{id}", get(resumable::status).patch(resumable::append).delete(resumable::cancel).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/api/v1/media/jobs/{id}/cancel", post(api::cancel_media_job))
        .route("/api/v1/media/jobs/{id}/retry", post(api::retry_media_job))
        .route("/media/hls/{hash}/{*rest}", get(api::hls_file))
        .route("/media/ladder/{hash}/{*rest}", get(api::ladder_pack_file))
        .route("/metrics", get(api::metrics))
        .fallback(|| async { ApiError::NotFound("no such page or API endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// What every answer carries: scripts, styles and media only from this portal (hls.js feeds
/// the video element and its worker through `blob:` URLs), no framing by other sites, no
/// referrer to them, no MIME sniffing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
    media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// Errors of the HTTP layer, each with a status and a stable code.
#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    BadRequest(String),
    /// A service this request needs is out of reach for now (the parent link is down).
    Unavailable(String),
    /// Out of disk space for this (cache quota).
    InsufficientStorage(String),
    /// An upload that does not fit on the disk: the figures, and their sentence.
    NoRoom(crate::disk::NoRoom, String),
    /// Well-formed, but not something this node can take (an upload that is not a recording).
    Unprocessable(String),
    /// Not signed in.
    Unauthorized(String),
    /// Signed in, but the role may not do this (or the CSRF token is missing).
    Forbidden(String),
    /// The client stopped sending its request body.
    RequestTimeout(String),
    /// Larger than this node accepts.
    PayloadTooLarge(String),
    /// The request's body is not of a type this endpoint takes.
    UnsupportedMediaType(String),
    /// The request does not fit the resource's current state (an upload's offset).
    Conflict(String),
    /// The resource is gone for good.
    Gone(String),
    /// Too many failed sign-ins: the message and the seconds to wait.
    TooManyRequests(String, u64),
    /// The route has no such method: the methods it has, for `Allow`.
    MethodNotAllowed(String),
    /// The node is too busy for this now (its database, its password checks): the message and
    /// the seconds after which to try again.
    Busy(String, u64),
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not_found", d),
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad_request", d),
            ApiError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", d),
            ApiError::InsufficientStorage(d) => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage", d),
            ApiError::NoRoom(_, d) => (StatusCode::INSUFFICIENT_STORAGE, "no_room", d),
            ApiError::Unprocessable(d) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", d),
            ApiError::Unauthorized(d) => (StatusCode::UNAUTHORIZED, "unauthorized", d),
            ApiError::RequestTimeout(d) => (StatusCode::REQUEST_TIMEOUT, "request_timeout", d),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d),
            ApiError::PayloadTooLarge(d) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", d),
            ApiError::UnsupportedMediaType(d) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", d),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict", d),
            ApiError::Gone(d) => (StatusCode::GONE, "gone", d),
            ApiError::TooManyRequests(d, _) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", d),
            ApiError::Busy(d, _) => (StatusCode::SERVICE_UNAVAILABLE, "busy", d),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this address does not take that method; see Allow"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "the node hit an internal error; see its log"),
        }
    }
}

impl ApiError {
    pub fn no_room(e: crate::disk::NoRoom) -> ApiError {
        let text = e.to_string();
        ApiError::NoRoom(e, text)
    }

    /// The database stayed busy beyond its timeout: try again shortly (never a 500).
    pub fn busy_database() -> ApiError {
        tracing::warn!("the database was busy beyond its timeout; answered 503");
        ApiError::Busy("the node's database is busy; try again in a moment".into(), 1)
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::NoSuchLesson(id) => ApiError::NotFound(format!("no lesson with id {id}")),
            NodeError::Invalid(m) | NodeError::Doc(crate::documents::DocError::Invalid(m)) => ApiError::BadRequest(m),
            NodeError::Store(e) | NodeError::Doc(crate::documents::DocError::Store(e)) if e.is_busy() => ApiError::busy_database(),
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<crate::pull_through::PullError> for ApiError {
    fn from(e: crate::pull_through::PullError) -> Self {
        use crate::pull_through::PullError;
        use youke_federation::transport::LinkError;
        match e {
            PullError::Link(LinkError::NoParent) => ApiError::Unavailable(
                "this lesson's media is held by the parent node and the link to it is down; try again when it is back".into(),
            ),
            PullError::Link(LinkError::Remote { message, .. }) => ApiError::Unavailable(format!("the parent node cannot serve this media: {message}")),
            // This node's own disk or database failing: logged, not shown (its messages name
            // server paths).
            PullError::Link(e @ (LinkError::Blob(_) | LinkError::Io(_) | LinkError::Store(_))) => {
                tracing::error!(error = %e, "pull-through failed on this node");
                ApiError::Internal(e.to_string())
            }
            PullError::Link(e) => ApiError::Unavailable(format!("fetching the media from the parent node failed: {e}")),
            e @ PullError::CacheFull { .. } => ApiError::InsufficientStorage(e.to_string()),
            e @ PullError::Evicted { .. } => ApiError::Unavailable(e.to_string()),
            other => {
                tracing::error!(error = %other, "pull-through failed");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(e: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError as E;
        match e {
            E::BadLogin => ApiError::Unauthorized(e.to_string()),
            E::Throttled(secs) => ApiError::TooManyRequests(e.to_string(), secs),
            E::Invalid(m) => ApiError::BadRequest(m),
            e @ E::NoSuchUser(_) => ApiError::NotFound(e.to_string()),
            e @ E::Exists(_) => ApiError::BadRequest(e.to_string()),
            E::Store(e) => ApiError::from(e),
            e @ E::Hash(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(NodeError::from(e))
    }
}

impl From<crate::documents::DocError> for ApiError {
    fn from(e: crate::documents::DocError) -> Self {
        ApiError::from(NodeError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.parts();
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "code": code,
            "detail": detail,
        });
        // The figures too (RFC 9457 extension members), for the portal to say in its language.
        if let (ApiError::NoRoom(n, _), Some(o)) = (&self, body.as_object_mut()) {
            for (k, v) in [("declared_bytes", n.declared), ("room_bytes", n.room), ("free_bytes", n.free), ("promised_bytes", n.promised), ("reserve_percent", u64::from(n.reserve_percent))] {
                o.insert(k.into(), v.into());
            }
        }
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let ApiError::TooManyRequests(_, secs) | ApiError::Busy(_, secs) = &self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        if let ApiError::MethodNotAllowed(allow) = &self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        resp
    }
}

/// Requests doing database work at once (within the store's connection pool).
pub const DB_CONCURRENCY: usize = 8;

/// Runs blocking database work off the async threads, at most [`DB_CONCURRENCY`] at once.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&NodeCtx) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let ctx = Arc::clone(&state.ctx);
    let permit = Arc::clone(&state.db_permits).acquire_owned().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let out = f(&ctx);
        drop(permit);
        out
    })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::catalog;
    use crate::import::import_file;
use crate::lessons::ImportMeta;
    use axum::body::Body;
    use axum::http::Request;
    use futures_util::StreamExt;
    use tower::ServiceExt;
    use youke_media::SynthSpec;

    struct Fixture {
        _dir: tempfile::TempDir,
        state: AppState,
        id: String,
        /// An admin's session: (cookie token, CSRF token).
        session: (String, String),
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = Arc::new(NodeCtx::open(&dir.path().join("node"), Config { name: "实验小学".into(), ..Config::default() }).expect("open"));
        let file = dir.path().join("勾股定理.mp4");
        youke_media::synthesize(&file, &SynthSpec { seconds: 1.0, ..SynthSpec::small() }, |_| {}).expect("synth");
        let meta = ImportMeta { title: Some("勾股定理".into()), teacher: Some("王芳".into()), ..ImportMeta::default() };
        let lesson = import_file(&ctx, &file, &meta, |_, _| {}).expect("import");
        let index = Arc::new(LessonIndex::in_memory().expect("index"));
        crate::indexer::index_pending(&ctx, &index).expect("index");
        ctx.store.write(|tx| crate::accounts::create_user(tx, "admin", "管理员", crate::accounts::Role::Admin, "admin password")).expect("user");
        let (token, s) = ctx.store.write(|tx| crate::accounts::login(tx, "admin", "admin password")).expect("login");
        Fixture { _dir: dir, state: AppState::new(ctx, index), id: lesson.id, session: (token, s.csrf) }
    }

    /// Sends a request as the fixture's admin (session cookie and CSRF token).
    async fn call(f: &Fixture, mut req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let h = req.headers_mut();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("youke_session={}", f.session.0)).expect("cookie"));
        h.insert("x-csrf-token", HeaderValue::from_str(&f.session.1).expect("csrf"));
        let resp = router(f.state.clone()).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("body");
        (status, headers, body.to_vec())
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn lessons_api_lists_pages_and_reports_errors_as_problems() {
        let f = fixture();
        let (s, _, body) = call(&f, get("/api/v1/lessons")).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["total"], 1);
        assert_eq!(v["items"][0]["title"], "勾股定理");
        assert_eq!(v["items"][0]["media_present"], true);

        let (s, h, body) = call(&f, get("/api/v1/lessons?per_page=0")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["code"], "bad_request");

        let (s, _, _) = call(&f, get("/api/v1/lessons/not-a-uuid")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) = call(&f, get(&format!("/api/v1/lessons/{}", uuid::Uuid::new_v4()))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) = call(&f, get("/no/such/page")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let (s, _, body) = call(&f, get(&format!("/api/v1/lessons/{}", f.id))).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["probe"]["video"]["codec"], "h264");
        assert_eq!(v["share_level"], "school");
    }

    #[tokio::test]
    async fn answers_carry_security_headers_and_uploads_must_be_plain_file_names() {
        let f = fixture();
        for uri in ["/", "/api/v1/lessons", "/no/such/page", "/assets/portal.css"] {
            let (_, h, _) = call(&f, get(uri)).await;
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY, "{uri}");
            assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
            assert_eq!((h[header::X_FRAME_OPTIONS].to_str().ok(), h[header::X_CONTENT_TYPE_OPTIONS].to_str().ok()), (Some("DENY"), Some("nosniff")), "{uri}");
            assert_eq!(h[header::REFERRER_POLICY], "same-origin");
        }
        // Pages have no inline script or style for the CSP to block.
        let (_, _, body) = call(&f, get("/upload")).await;
        let html = String::from_utf8(body).expect("utf-8");
        assert!(!html.contains("<script>") && !html.contains("<style>"), "{html}");
        for name in ["..%2F..%2Fetc%2Fpasswd", "a%5Cb.mp4", ".hidden.mp4", "x%00.mp4", "%2Fabs.mp4"] {
            let req = Request::put(format!("/api/v1/uploads?name={name}")).body(Body::empty()).expect("req");
            let (s, _, body) = call(&f, req).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{name}: {}", String::from_utf8_lossy(&body));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_that_stops_sending_is_abandoned_and_leaves_nothing() {
        let f = fixture();
        // One chunk, then silence (the clock is virtual: the 60 s pass at once).
        let stalled = futures_util::stream::once(async { Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"\0\0\0\x20ftypisom")) })
            .chain(futures_util::stream::pending());
        let req = Request::put("/api/v1/uploads?name=stalled.mp4").body(Body::from_stream(stalled)).expect("req");
        let (s, _, body) = call(&f, req).await;
        assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{}", String::from_utf8_lossy(&body));
        let staging = f.state.ctx.data_dir.join("import").join(".uploading");
        assert_eq!(std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0), 0, "the partial file is removed");
    }

    #[tokio::test]
    async fn media_is_served_with_ranges() {
        let f = fixture();
        let uri = format!("/api/v1/lessons/{}/media", f.id);
        let (s, h, body) = call(&f, Request::get(&uri).header(header::RANGE, "bytes=0-99").body(Body::empty()).expect("req")).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(body.len(), 100);
        assert_eq!(h[header::CONTENT_TYPE], "video/mp4");
        assert!(h[header::CONTENT_RANGE].to_str().expect("ascii").starts_with("bytes 0-99/"));
        let (s, _, full) = call(&f, get(&uri)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(full.get(..100), Some(&body[..]));
    }

    #[tokio::test]
    async fn search_and_share_through_the_api() {
        let f = fixture();
        let (s, _, body) = call(&f, get("/api/v1/search?q=%E5%8B%BE%E8%82%A1")).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["items"][0]["id"], f.id.as_str());
        let long = "数".repeat(300);
        let (s, _, _) = call(&f, get(&format!("/api/v1/search?q={long}"))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        let share = |to: &str| {
            Request::post(format!("/api/v1/lessons/{}/share", f.id))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(r#"{{"to":"{to}"}}"#)))
                .expect("req")
        };
        let (s, _, _) = call(&f, share("county")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, body) = call(&f, share("province")).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["share_level"], "province");
    }

    #[tokio::test]
    async fn portal_pages_render_in_chinese_and_escape_input() {
        let f = fixture();
        let (s, _, body) = call(&f, get("/")).await;
        assert_eq!(s, StatusCode::OK);
        let html = String::from_utf8(body).expect("utf-8");
        assert!(html.contains(r#"lang="zh-CN""#));
        assert!(html.contains("勾股定理"));
        assert!(html.contains(r#"name="q""#), "search box");
        let (_, _, body) = call(&f, get(&format!("/lessons/{}", f.id))).await;
        let html = String::from_utf8(body).expect("utf-8");
        assert!(html.contains("<video"), "player");
        assert!(html.contains(&format!("/api/v1/lessons/{}/media", f.id)));
        let (_, _, body) = call(&f, get("/search?q=%3Cscript%3E")).await;
        let html = String::from_utf8(body).expect("utf-8");
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        let (s, _, _) = call(&f, get(&format!("/lessons/{}", uuid::Uuid::new_v4()))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    fn post_json(uri: &str, body: &str) -> Request<Body> {
        Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).expect("request")
    }

    #[tokio::test]
    async fn ratings_comments_reviews_and_catalog_through_the_api() {
        let f = fixture();
        let base = format!("/api/v1/lessons/{}", f.id);
        for (path, body) in [
            ("ratings", r#"{"user":"李老师","score":4}"#),
            ("comments", r#"{"author":"学生","text":"很有帮助"}"#),
            ("reviews", r#"{"expert":"专家","score":90,"comment":"好"}"#),
        ] {
            let (s, _, _) = call(&f, post_json(&format!("{base}/{path}"), body)).await;
            assert_eq!(s, StatusCode::OK, "{path}");
        }
        // A view needs the ticket of a page watched for a while: a bare POST counts nothing.
        let (s, _, _) = call(&f, Request::post(format!("{base}/views")).body(Body::empty()).expect("req")).await;
        assert!(s.is_client_error(), "{s}");
        let (s, _, body) = call(&f, get(&format!("{base}/view-ticket"))).await;
        assert_eq!(s, StatusCode::OK);
        let t: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let (s, _, body) = call(&f, post_json(&format!("{base}/views"), &serde_json::json!({"ticket": t["ticket"]}).to_string())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "too early: {}", String::from_utf8_lossy(&body));
        let (s, _, body) = call(&f, get(&base)).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!((v["rating_count"].as_u64(), v["comment_count"].as_u64(), v["review_count"].as_u64(), v["views"].as_i64()), (Some(1), Some(1), Some(1), Some(0)));
        let (s, _, body) = call(&f, get(&format!("{base}/discussion"))).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["comments"][0]["text"], "很有帮助");
        let (s, h, _) = call(&f, post_json(&format!("{base}/ratings"), r#"{"user":"x","score":11}"#)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");

        let (s, _, _) = call(&f, post_json("/api/v1/collections", &format!(r#"{{"title":"精品课","lessons":["{}"]}}"#, f.id))).await;
        assert_eq!(s, StatusCode::OK);
        let (_, _, body) = call(&f, get("/api/v1/collections")).await;
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["items"][0]["title"], "精品课");
        assert_eq!(v["items"][0]["published"], true);
        let (s, _, _) = call(&f, post_json("/api/v1/announcements", r#"{"title":"","body":"x"}"#)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // A school enters competitions; it does not run them.
        let (s, _, body) = call(&f, post_json("/api/v1/competitions", r#"{"title":"优质课评选","requires_standard":true}"#)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("published by a city or the province"));
        let (s, _, _) = call(&f, post_json("/api/v1/competitions", r#"{"title":"评选","entries":["x"]}"#)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields refused");
        let (s, _, _) = call(&f, get(&format!("/api/v1/competitions/{}", uuid::Uuid::new_v4()))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    /// Sends a request as no one, with the English cookie.
    async fn call_en(f: &Fixture, uri: &str) -> (StatusCode, String) {
        // Signed in as the admin, so the pages show every part they have (forms, the console).
        let cookie = format!("youke_session={}; youke_lang=en", f.session.0);
        let req = Request::get(uri).header(header::COOKIE, cookie).body(Body::empty()).expect("request");
        let resp = router(f.state.clone()).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("body");
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn every_page_has_an_english_version_without_chinese_left_in_it() {
        let f = fixture();
        // Catalog content in English, so only the portal's own words could bring Chinese in.
        let w = &f.state.ctx.writer;
        let c = f.state.ctx.store.write(|tx| catalog::create_collection(tx, w, &catalog::Collection { title: "Best of 2026".into(), description: "Picked".into(), lessons: vec![f.id.clone()], featured: true, pinned: false, published: true, id: String::new(), origin_name: String::new() })).expect("collection");
        f.state.ctx.store.write(|tx| catalog::create_announcement(tx, w, &serde_json::from_str(r#"{"title":"Summer training","body":"From July"}"#).expect("json"))).expect("notice");
        // A competition a city runs (written here as if it had come down from there).
        let city = crate::documents::Writer { node_id: uuid::Uuid::new_v4().to_string(), node_name: "City".into(), tier: youke_federation::Tier::City, has_parent: true };
        let rubric = vec![catalog::Criterion { name: "Design".into(), max: 50 }, catalog::Criterion { name: "Delivery".into(), max: 50 }];
        let comp = f.state.ctx.store.write(|tx| catalog::create_competition(tx, &city, &catalog::Competition { title: "Lesson contest".into(), rubric, ..Default::default() })).expect("competition");
        // The fixture's own data is Chinese (node, lesson, teacher): taken out before looking.
        let data = ["实验小学", "勾股定理", "王芳", "中文", "管理员"];
        let pages = [
            "/".to_string(),
            "/search".into(),
            "/search?q=gougu&grade=unknown".into(),
            format!("/lessons/{}", f.id),
            "/teachers".into(),
            format!("/teachers/{}", pages::url_encode("王芳")),
            "/schools".into(),
            format!("/schools/{}", pages::url_encode("实验小学")),
            "/collections".into(),
            format!("/collections/{}", c.id),
            "/announcements".into(),
            "/competitions".into(),
            format!("/competitions/{}", comp.id),
            "/admin".into(),
            "/login".into(),
            format!("/lessons/{}", uuid::Uuid::new_v4()),
        ];
        for page in &pages {
            let (status, mut html) = call_en(&f, page).await;
            assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND, "{page}: {status}");
            assert!(html.contains(r#"<html lang="en">"#), "{page}");
            for d in data {
                html = html.replace(d, "");
            }
            let han: String = html.chars().filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c) || ('\u{3000}'..='\u{303f}').contains(c) || ('\u{ff00}'..='\u{ffef}').contains(c)).collect();
            assert!(han.is_empty(), "{page} has Chinese left in English: {han:?}");
        }
        // Signed-in pages, in English too.
        for page in ["/my".to_string(), format!("/lessons/{}/edit", f.id), "/upload".into()] {
            let req = Request::get(&page).header(header::COOKIE, format!("youke_session={}; youke_lang=en", f.session.0)).body(Body::empty()).expect("request");
            let resp = router(f.state.clone()).oneshot(req).await.expect("infallible");
            assert_eq!(resp.status(), StatusCode::OK, "{page}");
            let mut html = String::from_utf8(axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("body").to_vec()).expect("utf-8");
            for d in data {
                html = html.replace(d, "");
            }
            // The values of the standard lists (年级, 学科) are stored in Chinese; their labels are not.
            for v in crate::lessons::GRADES.iter().chain(crate::lessons::SUBJECTS.iter()) {
                html = html.replace(&format!(r#"value="{v}""#), "");
            }
            assert!(!html.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{page} has Chinese left in English");
        }
        // Without the cookie, Chinese.
        let (_, _, body) = call(&f, get("/teachers")).await;
        assert!(String::from_utf8(body).expect("utf-8").contains("名师课堂"));
    }

    #[tokio::test]
    async fn the_language_switch_sets_its_cookie_and_goes_back() {
        let f = fixture();
        let req = Request::get("/lang?to=en").header(header::HOST, "school.lan").header(header::REFERER, "http://school.lan/search?q=x").body(Body::empty()).expect("request");
        let resp = router(f.state.clone()).oneshot(req).await.expect("infallible");
        assert!(resp.status().is_redirection());
        assert_eq!(resp.headers()[header::LOCATION], "/search?q=x");
        assert!(resp.headers()[header::SET_COOKIE].to_str().expect("ascii").starts_with("youke_lang=en;"));
        let req = Request::get("/lang?to=zh&next=//evil.example/").body(Body::empty()).expect("request");
        let resp = router(f.state.clone()).oneshot(req).await.expect("infallible");
        assert_eq!(resp.headers()[header::LOCATION], "/");
        assert!(resp.headers()[header::SET_COOKIE].to_str().expect("ascii").starts_with("youke_lang=zh;"));
        // A tab, which browsers drop, makes `//evil.example` of `/\t/evil.example`.
        for next in ["/%09/evil.example", "%09//evil.example", "/%5Cevil.example", "/%09%5Cevil.example"] {
            let req = Request::get(format!("/lang?to=en&next={next}")).body(Body::empty()).expect("request");
            let resp = router(f.state.clone()).oneshot(req).await.expect("infallible");
            assert_eq!(resp.headers()[header::LOCATION], "/", "{next}");
        }
        let req = Request::get("/lang?to=en&next=/%0A/evil.example").body(Body::empty()).expect("request");
        let resp = router(f.state.clone()).oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_node_too_busy_to_check_a_password_says_so_and_does_not_count_it() {
        let f = fixture();
        // A pool with no patience: every check is shed.
        let state = AppState { passwords: crate::passwords::PasswordPool::new(1, 1, std::time::Duration::ZERO), ..f.state.clone() };
        for _ in 0..(crate::accounts::PER_NAME + 2) {
            let req = post_json("/api/v1/session", r#"{"name":"admin","password":"admin password"}"#);
            let resp = router(state.clone()).oneshot(req).await.expect("infallible");
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "busy, never throttled: nothing was checked");
            assert!(resp.headers().contains_key(header::RETRY_AFTER));
        }
        let req = Request::post("/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::from("name=admin&password=admin+password")).expect("request");
        let resp = router(state.clone()).oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let html = String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body").to_vec()).expect("utf-8");
        assert!(html.contains("正在登录的人太多"), "{html}");
        // With the node's own pool the same account signs in.
        let resp = router(f.state.clone()).oneshot(post_json("/api/v1/session", r#"{"name":"admin","password":"admin password"}"#)).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn sign_in_goes_on_to_this_portal_only() {
        let f = fixture();
        let form = |next: &str| {
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("name=admin&password=admin+password&next={next}")))
                .expect("request")
        };
        let resp = router(f.state.clone()).oneshot(form("%2Fsearch%3Fq%3D%E5%8B%BE")).await.expect("infallible");
        assert_eq!((resp.status(), resp.headers()[header::LOCATION].to_str().ok()), (StatusCode::SEE_OTHER, Some("/search?q=%E5%8B%BE")));
        let resp = router(f.state.clone()).oneshot(form("%2F%09%2Fevil.example")).await.expect("infallible");
        assert_eq!((resp.status(), resp.headers()[header::LOCATION].to_str().ok()), (StatusCode::SEE_OTHER, Some("/")));
        // A line break is refused before the password is checked: 400, no session.
        let resp = router(f.state.clone()).oneshot(form("%2F%0A%2Fevil.example")).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get(header::SET_COOKIE).is_none());
    }

    #[tokio::test]
    async fn home_teacher_school_and_collection_pages_show_the_lesson() {
        let f = fixture();
        let w = &f.state.ctx.writer;
        let c = f.state.ctx.store.write(|tx| catalog::create_collection(tx, w, &catalog::Collection { title: "省级精品课".into(), description: String::new(), lessons: vec![f.id.clone()], featured: true, pinned: false, published: true, id: String::new(), origin_name: String::new() })).expect("collection");
        let (s, _, body) = call(&f, get("/")).await;
        assert_eq!(s, StatusCode::OK);
        let home = String::from_utf8(body).expect("utf-8");
        for want in ["人气榜", "好评榜", "最新课程", "按年级浏览", "省级精品课", &format!("/lessons/{}", f.id)] {
            assert!(home.contains(want), "home lacks {want}");
        }
        for (page, want) in [
            ("/teachers".to_string(), "/teachers/%E7%8E%8B%E8%8A%B3"),
            (format!("/teachers/{}", pages::url_encode("王芳")), "勾股定理"),
            ("/schools".to_string(), "/schools/%E5%AE%9E%E9%AA%8C%E5%B0%8F%E5%AD%A6"),
            (format!("/schools/{}", pages::url_encode("实验小学")), "勾股定理"),
            (format!("/collections/{}", c.id), "勾股定理"),
        ] {
            let (s, _, body) = call(&f, get(&page)).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            assert!(String::from_utf8(body).expect("utf-8").contains(want), "{page} lacks {want}");
        }
        let (s, _, _) = call(&f, get("/teachers/nobody")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) = call(&f, get(&format!("/collections/{}", f.id))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn teachers_change_only_their_own_lessons_and_see_them_under_my_lessons() {
        let f = fixture();
        let ctx = &f.state.ctx;
        for (name, display) in [("wangfang", "王芳"), ("li", "李老师")] {
            ctx.store.write(|tx| crate::accounts::create_user(tx, name, display, crate::accounts::Role::Teacher, "teacher password")).expect("user");
        }
        let as_teacher = |name: &str| {
            let (token, s) = ctx.store.write(|tx| crate::accounts::login(tx, name, "teacher password")).expect("login");
            Fixture { _dir: tempfile::tempdir().expect("dir"), state: f.state.clone(), id: f.id.clone(), session: (token, s.csrf) }
        };
        let (wang, li) = (as_teacher("wangfang"), as_teacher("li"));
        let patch = |t: &str| Request::patch(format!("/api/v1/lessons/{}", f.id)).header(header::CONTENT_TYPE, "application/json").body(Body::from(format!(r#"{{"title":"{t}"}}"#))).expect("req");
        // The lesson was imported at this node under 王芳's name: hers, not 李老师's.
        let (s, _, _) = call(&li, patch("不是我的")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = call(&li, Request::post(format!("/api/v1/lessons/{}/share", f.id)).header(header::CONTENT_TYPE, "application/json").body(Body::from(r#"{"to":"city"}"#)).expect("req")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = call(&li, get(&format!("/lessons/{}/edit", f.id))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = call(&wang, patch("勾股定理（第二课时）")).await;
        assert_eq!(s, StatusCode::OK);
        let (_, _, body) = call(&wang, get("/api/v1/me/lessons")).await;
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["items"][0]["title"], "勾股定理（第二课时）");
        assert_eq!(v["items"][0]["replication"]["state"], "local", "a node without a parent keeps its lessons");
        let (_, _, body) = call(&li, get("/api/v1/me/lessons")).await;
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).expect("json")["items"], serde_json::json!([]));
        let (_, _, body) = call(&wang, get("/my")).await;
        let html = String::from_utf8(body).expect("utf-8");
        assert!(html.contains("勾股定理（第二课时）") && html.contains("data-state=\"local\""), "{html}");
        // Once 李老师 has uploaded-owned it (an admin reassigns), it is hers and no longer 王芳's.
        ctx.store.write(|tx| crate::lessons::set_owner(tx, &f.id, "li")).expect("owner");
        let (s, _, _) = call(&wang, patch("x")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = call(&li, patch("勾股定理")).await;
        assert_eq!(s, StatusCode::OK);
    }
}
