//! Who is asking and whether they may: the session cookie, CSRF, and the route policy.
//!
//! Every route of the router has one line in [`POLICY`] (a test checks that none is missing);
//! the middleware finds the matched route's line and refuses what it does not allow, failing
//! closed for a route without one. State-changing requests made with the session cookie must
//! carry the session's CSRF token in `X-CSRF-Token` (pages put it in a `<meta>` for their
//! scripts), and a login posted from another site's page is refused by its `Origin`.

use super::{ApiError, AppState, blocking};
use crate::accounts::{self, AccountError, Role, Session};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub const COOKIE: &str = "youke_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, always (sign-in, health, static assets, metrics).
    Public,
    /// Anyone when anonymous viewing is on, else any signed-in user.
    View,
    /// Any signed-in user.
    SignedIn,
    Teacher,
    Expert,
    Admin,
}

/// Every route: (method, route pattern, access).
pub const POLICY: &[(&str, &str, Access)] = &[
    ("GET", "/", Access::View),
    ("GET", "/search", Access::View),
    ("GET", "/lessons/{id}", Access::View),
    ("GET", "/upload", Access::Teacher),
    ("GET", "/lang", Access::Public),
    ("GET", "/teachers", Access::View),
    ("GET", "/teachers/{name}", Access::View),
    ("GET", "/schools", Access::View),
    ("GET", "/schools/{name}", Access::View),
    ("GET", "/collections", Access::View),
    ("GET", "/collections/{id}", Access::View),
    ("GET", "/announcements", Access::View),
    ("GET", "/admin", Access::Admin),
    ("GET", "/review", Access::Expert),
    ("GET", "/api/v1/admin/live", Access::Admin),
    ("GET", "/api/v1/admin/events", Access::Admin),
    ("GET", "/api/v1/admin/storage", Access::Admin),
    ("GET", "/api/v1/tokens", Access::Admin),
    ("POST", "/api/v1/tokens", Access::Admin),
    ("GET", "/competitions", Access::View),
    ("GET", "/competitions/{id}", Access::View),
    ("GET", "/my", Access::Teacher),
    ("GET", "/lessons/{id}/edit", Access::Teacher),
    ("GET", "/api/v1/me/lessons", Access::Teacher),
    ("GET", "/login", Access::Public),
    ("POST", "/login", Access::Public),
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/assets/{name}", Access::Public),
    ("GET", "/favicon.ico", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("POST", "/api/v1/session", Access::Public),
    ("GET", "/api/v1/session", Access::Public),
    ("DELETE", "/api/v1/session", Access::SignedIn),
    ("GET", "/api/v1/lessons", Access::View),
    ("GET", "/api/v1/lessons/{id}", Access::View),
    ("PATCH", "/api/v1/lessons/{id}", Access::Teacher),
    ("GET", "/api/v1/lessons/{id}/media", Access::View),
    ("POST", "/api/v1/lessons/{id}/share", Access::Teacher),
    ("POST", "/api/v1/lessons/{id}/ratings", Access::SignedIn),
    ("POST", "/api/v1/lessons/{id}/comments", Access::SignedIn),
    ("DELETE", "/api/v1/lessons/{id}/comments/{comment}", Access::Admin),
    ("POST", "/api/v1/lessons/{id}/comments/{comment}/hide", Access::Admin),
    ("POST", "/api/v1/lessons/{id}/decision", Access::Expert),
    ("POST", "/api/v1/lessons/{id}/takedown", Access::Admin),
    ("GET", "/api/v1/review", Access::Expert),
    ("POST", "/api/v1/lessons/{id}/reviews", Access::Expert),
    ("POST", "/api/v1/lessons/{id}/views", Access::View),
    ("GET", "/api/v1/lessons/{id}/view-ticket", Access::View),
    ("GET", "/api/v1/lessons/{id}/discussion", Access::View),
    ("PUT", "/api/v1/lessons/{id}/subtitles", Access::Teacher),
    ("GET", "/api/v1/lessons/{id}/subtitles.vtt", Access::View),
    ("GET", "/api/v1/collections", Access::View),
    ("POST", "/api/v1/collections", Access::Admin),
    ("PUT", "/api/v1/collections/{id}", Access::Admin),
    ("DELETE", "/api/v1/collections/{id}", Access::Admin),
    ("GET", "/api/v1/announcements", Access::View),
    ("POST", "/api/v1/announcements", Access::Admin),
    ("PUT", "/api/v1/announcements/{id}", Access::Admin),
    ("DELETE", "/api/v1/announcements/{id}", Access::Admin),
    ("GET", "/api/v1/competitions", Access::View),
    ("POST", "/api/v1/competitions", Access::Admin),
    ("GET", "/api/v1/competitions/{id}", Access::View),
    ("POST", "/api/v1/competitions/{id}/entries", Access::Teacher),
    ("PUT", "/api/v1/competitions/{id}/entries/{lesson}/judges", Access::Admin),
    ("PUT", "/api/v1/competitions/{id}/entries/{lesson}/score", Access::Expert),
    ("POST", "/api/v1/competitions/{id}/results", Access::Admin),
    ("GET", "/api/v1/search", Access::View),
    ("GET", "/api/v1/status", Access::View),
    ("GET", "/api/v1/federation", Access::View),
    ("GET", "/api/v1/link", Access::Admin),
    ("PUT", "/api/v1/link", Access::Admin),
    ("GET", "/api/v1/transfers", Access::View),
    ("GET", "/api/v1/media/jobs", Access::Teacher),
    ("POST", "/api/v1/media/jobs/{id}/cancel", Access::Admin),
    ("POST", "/api/v1/media/jobs/{id}/retry", Access::Admin),
    ("GET", "/api/v1/quarantine", Access::Admin),
    ("PUT", "/api/v1/uploads", Access::Teacher),
    ("POST", "/api/v1/uploads/resumable", Access::Teacher),
    ("GET", "/api/v1/uploads/resumable/{id}", Access::Teacher),
    ("PATCH", "/api/v1/uploads/resumable/{id}", Access::Teacher),
    ("DELETE", "/api/v1/uploads/resumable/{id}", Access::Teacher),
    ("GET", "/media/hls/{hash}/{*rest}", Access::View),
    ("GET", "/media/ladder/{hash}/{*rest}", Access::View),
    ("GET", "/api/v1/users", Access::Admin),
    ("POST", "/api/v1/users", Access::Admin),
    ("PATCH", "/api/v1/users/{name}", Access::Admin),
    ("GET", "/api/v1/audit", Access::Admin),
];

/// The policy line of a route (`HEAD` as `GET`).
pub fn access(method: &Method, route: &str) -> Option<Access> {
    let m = if method == Method::HEAD { "GET" } else { method.as_str() };
    POLICY.iter().find(|(pm, pr, _)| *pm == m && *pr == route).map(|(_, _, a)| *a)
}

/// The methods a route answers (`HEAD` with `GET`), for `Allow`.
pub fn methods_of(route: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = POLICY.iter().filter(|(_, r, _)| *r == route).map(|(m, _, _)| *m).collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods
}

/// Whether `session` (or no one) may use a route with this access.
pub fn allowed(access: Access, session: Option<&Session>, anonymous_viewing: bool) -> bool {
    let role = session.map(|s| s.user.role);
    let is = |r: Role| role == Some(r) || role == Some(Role::Admin);
    match access {
        Access::Public => true,
        Access::View => anonymous_viewing || role.is_some(),
        Access::SignedIn => role.is_some(),
        Access::Teacher => is(Role::Teacher),
        Access::Expert => is(Role::Expert),
        Access::Admin => role == Some(Role::Admin),
    }
}

/// What a handler knows of the caller.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub session: Option<Session>,
    pub address: Option<IpAddr>,
    /// The language the pages are shown in (its cookie, Chinese by default).
    pub lang: super::i18n::Lang,
}

impl Auth {
    pub fn user(&self) -> Option<&accounts::User> {
        self.session.as_ref().map(|s| &s.user)
    }
    /// The signed-in user's name, or "" for no one.
    pub fn name(&self) -> &str {
        self.user().map_or("", |u| u.name.as_str())
    }
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }
    pub fn address_text(&self) -> String {
        self.address.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// The session token in a request's cookies.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    super::cookies::cookie(headers, COOKIE)
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// The middleware: loads the session, checks CSRF and the policy, records state changes in the
/// audit log.
pub async fn middleware(State(state): State<AppState>, matched: Option<MatchedPath>, mut req: Request, next: Next) -> Response {
    let address = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let token = cookie_token(req.headers());
    let session = match token.clone() {
        Some(t) => {
            let ctx = std::sync::Arc::clone(&state.ctx);
            match tokio::task::spawn_blocking(move || {
                let s = ctx.store.read(|c| accounts::session(c, &t))?;
                // A write only when the mark is stale, not on every segment request.
                if s.as_ref().is_some_and(|s| crate::store::now_ms() - s.seen_at > accounts::TOUCH_EVERY_MS) {
                    ctx.store.write(|tx| accounts::touch(tx, &t))?;
                }
                Ok::<_, AccountError>(s)
            })
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return ApiError::from(e).into_response(),
                Err(e) => return ApiError::Internal(e.to_string()).into_response(),
            }
        }
        None => None,
    };
    let method = req.method().clone();
    if let Some(s) = &session
        && unsafe_method(&method)
    {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), s.csrf.as_bytes()) {
            return ApiError::Forbidden("this request lacks the page's CSRF token (X-CSRF-Token); reload the page and try again".into()).into_response();
        }
    }
    let route = matched.as_ref().map(|m| m.as_str().to_string());
    if let Some(route) = &route {
        let Some(access) = access(&method, route) else {
            let allow = methods_of(route);
            if allow.is_empty() {
                tracing::error!(%method, %route, "route missing from the access policy; refused");
                return ApiError::Forbidden("this route has no access rule".into()).into_response();
            }
            // A method the route does not have: the client's mistake, not the node's.
            return ApiError::MethodNotAllowed(allow.join(", ")).into_response();
        };
        if !allowed(access, session.as_ref(), state.ctx.config.portal.anonymous_viewing) {
            if session.is_none() {
                if method == Method::GET && wants_html(req.headers()) {
                    let next_url = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
                    let q = serde_urlencoded::to_string([("next", next_url)]).unwrap_or_default();
                    return Redirect::to(&format!("/login?{q}")).into_response();
                }
                return ApiError::Unauthorized("sign in first".into()).into_response();
            }
            return ApiError::Forbidden("your account's role may not do this".into()).into_response();
        }
    }
    let auth = Auth { session, address, lang: super::i18n::Lang::of(req.headers()) };
    req.extensions_mut().insert(auth.clone());
    let uri = req.uri().path().to_string();
    let response = next.run(req).await;
    // Every state change that succeeded, by whom (sign-ins are recorded by their handlers).
    if unsafe_method(&method) && response.status().is_success() && route.as_deref() != Some("/api/v1/session") && route.as_deref() != Some("/login") {
        let action = format!("{method} {}", route.as_deref().unwrap_or(""));
        let ctx = std::sync::Arc::clone(&state.ctx);
        let (user, addr) = (auth.name().to_string(), auth.address_text());
        let written = tokio::task::spawn_blocking(move || ctx.store.write(|tx| accounts::audit(tx, &user, &addr, &action, &uri, ""))).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!("could not write the audit log");
        }
    }
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    let secure = if state.ctx.config.portal.secure_cookies { "; Secure" } else { "" };
    let max_age = accounts::SESSION_IDLE.as_secs();
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("youke_session=; Path=/"))
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("youke_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// A login posted from another site's page (login CSRF) is refused: when the browser says where
/// the request comes from, it must be this host.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").map(|(_, h)| h) == Some(host)
}

/// Signs in: counts the attempt against the throttle first, reads the stored hash, checks the
/// password in the bounded pool (outside any transaction), then opens the session and records
/// the attempt in one short transaction.
pub(super) async fn sign_in(state: &AppState, auth: &Auth, name: String, password: String) -> Result<(String, Session), ApiError> {
    let addr = super::server::client_key(auth.address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    let attempt = state.throttle.begin(addr, &name)?;
    let n = name.clone();
    let stored = blocking(state, move |ctx| Ok(ctx.store.read(|c| accounts::password_of(c, &n))?)).await;
    let checked = match stored {
        Ok((phc, may_sign_in)) => state.passwords.verify(password, phc).await.map(|matches| matches && may_sign_in).map_err(|e| ApiError::Busy(e.to_string(), 2)),
        Err(e) => Err(e),
    };
    let ok = match checked {
        Ok(ok) => ok,
        Err(e) => {
            // Nothing was checked: the attempt does not count.
            state.throttle.take_back(attempt);
            return Err(e);
        }
    };
    let address = auth.address_text();
    let opened = blocking(state, move |ctx| {
        let outcome = if ok { "signed in" } else { "wrong name or password" };
        Ok(ctx.store.write(|tx| {
            let session = if ok { Some(accounts::open_session(tx, &name)?) } else { None };
            accounts::audit(tx, &name, &address, "sign in", &name, outcome)?;
            Ok::<_, AccountError>(session)
        })?)
    })
    .await;
    match opened {
        Ok(Some(session)) => {
            state.throttle.succeeded(attempt);
            Ok(session)
        }
        Ok(None) => Err(AccountError::BadLogin.into()),
        Err(e) => {
            if ok {
                state.throttle.take_back(attempt);
            }
            Err(e)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    pub name: String,
    pub password: String,
}

/// `POST /api/v1/session`: signs in; answers the user and the CSRF token, sets the cookie.
pub async fn api_login(State(state): State<AppState>, Extension(auth): Extension<Auth>, headers: HeaderMap, Json(b): Json<LoginBody>) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden("sign in from this portal's own page".into()));
    }
    let (token, s) = sign_in(&state, &auth, b.name, b.password).await?;
    let body = serde_json::json!({ "user": s.user, "csrf": s.csrf });
    Ok(([(header::SET_COOKIE, session_cookie(&state, &token))], Json(body)).into_response())
}

/// `GET /api/v1/session`: who is signed in (null for no one) and the CSRF token.
pub async fn api_whoami(Extension(auth): Extension<Auth>) -> Json<serde_json::Value> {
    Json(match &auth.session {
        Some(s) => serde_json::json!({ "user": s.user, "csrf": s.csrf }),
        None => serde_json::json!({ "user": null }),
    })
}

/// `DELETE /api/v1/session`: signs out.
pub async fn api_logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        let ctx = std::sync::Arc::clone(&state.ctx);
        tokio::task::spawn_blocking(move || ctx.store.write(|tx| accounts::logout(tx, &token)))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    }
    Ok(([(header::SET_COOKIE, clear_cookie())], StatusCode::NO_CONTENT).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_be_this_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("school.lan:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://school.lan:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; youke_session=abc; b=2"));
        assert_eq!(cookie_token(&h).as_deref(), Some("abc"));
    }
}
