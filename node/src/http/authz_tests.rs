//! The authorization matrix: every route of the router (read from its source, so a new route
//! cannot be forgotten) × anonymous (with anonymous viewing on and off), viewer, expert, teacher,
//! admin. Each cell is sent through the real router and its answer compared with the policy:
//! denied means 401 for no one and 403 for a signed-in role, allowed means neither.

use super::auth::{Access, POLICY, allowed};
use super::*;
use crate::accounts::{self, Role};
use crate::config::{Config, PortalConfig};
use crate::import::import_file;
use crate::lessons::ImportMeta;
use axum::body::Body;
use axum::http::{Method, Request};
use tower::ServiceExt;
use youke_media::SynthSpec;

/// A session's (cookie token, CSRF token).
type Cookie = (String, String);

struct World {
    _dir: tempfile::TempDir,
    state: AppState,
    lesson: String,
}

fn world(anonymous_viewing: bool) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config { name: "实验小学".into(), portal: PortalConfig { anonymous_viewing, secure_cookies: false }, ..Config::default() };
    let ctx = Arc::new(NodeCtx::open(&dir.path().join("node"), config).expect("open"));
    let file = dir.path().join("课.mp4");
    youke_media::synthesize(&file, &SynthSpec { seconds: 1.0, ..SynthSpec::small() }, |_| {}).expect("synth");
    let lesson = import_file(&ctx, &file, &ImportMeta { title: Some("勾股定理".into()), ..ImportMeta::default() }, |_, _| {}).expect("import").id;
    for role in Role::ALL {
        ctx.store.write(|tx| accounts::create_user(tx, role.as_str(), role.zh(), role, "password for tests")).expect("user");
    }
    // The teacher's own lesson (teachers change only their own: tested beside the matrix).
    ctx.store.write(|tx| crate::lessons::set_owner(tx, &lesson, "teacher")).expect("owner");
    let index = Arc::new(LessonIndex::in_memory().expect("index"));
    World { _dir: dir, state: AppState::new(ctx, index), lesson }
}

fn session(w: &World, role: Role) -> (String, String) {
    let (token, s) = w.state.ctx.store.write(|tx| accounts::login(tx, role.as_str(), "password for tests")).expect("login");
    (token, s.csrf)
}

/// A concrete request for a route pattern.
fn request(w: &World, method: &str, route: &str, who: Option<&(String, String)>) -> Request<Body> {
    let path = route
        .replace("{id}", &w.lesson)
        .replace("{name}", if route.starts_with("/assets") { "portal.js" } else { "viewer" })
        .replace("{hash}", &"0".repeat(64))
        .replace("{*rest}", "master.m3u8");
    let method: Method = method.parse().expect("method");
    let mut b = Request::builder().method(method.clone()).uri(path).header(header::ACCEPT, "application/json");
    if let Some((cookie, csrf)) = who {
        b = b.header(header::COOKIE, format!("youke_session={cookie}")).header("x-csrf-token", csrf.as_str());
    }
    if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        b = b.header(header::CONTENT_TYPE, "application/json");
        return b.body(Body::from("{}")).expect("request");
    }
    b.body(Body::empty()).expect("request")
}

async fn status(w: &World, req: Request<Body>) -> StatusCode {
    router(w.state.clone()).oneshot(req).await.expect("infallible").status()
}

/// The (method, route) pairs the router declares, read from its source.
fn declared_routes() -> Vec<(String, String)> {
    let src = include_str!("mod.rs");
    let mut out = Vec::new();
    for line in src.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let route = line.trim_start_matches(".route(\"").split('"').next().unwrap_or("").to_string();
        let rest = &line[line.find("\",").unwrap_or(0)..];
        for (token, method) in [("get(", "GET"), ("post(", "POST"), ("put(", "PUT"), ("patch(", "PATCH"), ("delete(", "DELETE")] {
            // `get(` inside e.g. `.route(..., get(a).post(b))` or `axum::routing::put(x)`.
            if rest.contains(&format!(" {token}")) || rest.contains(&format!(".{token}")) || rest.contains(&format!(":{token}")) {
                out.push((method.to_string(), route.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_has_exactly_one_policy_line() {
    let declared = declared_routes();
    assert!(declared.len() > 30, "{declared:?}");
    for (m, r) in &declared {
        let n = POLICY.iter().filter(|(pm, pr, _)| pm == m && pr == r).count();
        assert_eq!(n, 1, "{m} {r} must have exactly one line in auth::POLICY");
    }
    for (m, r, _) in POLICY {
        assert!(declared.iter().any(|(dm, dr)| dm == m && dr == r), "{m} {r} is in the policy but not a route");
    }
}

#[tokio::test]
async fn the_authorization_matrix_holds_for_every_route_and_role() {
    let mut cells = 0;
    for anonymous_viewing in [true, false] {
        let w = world(anonymous_viewing);
        let sessions: Vec<(Role, (String, String))> = Role::ALL.into_iter().map(|r| (r, session(&w, r))).collect();
        for (method, route, access) in POLICY {
            // Signing out ends the session used: each role signs out with a session of its own.
            let who: Vec<(Option<Role>, Option<Cookie>)> = std::iter::once((None, None))
                .chain(sessions.iter().map(|(r, s)| (Some(*r), Some(if *route == "/api/v1/session" && *method == "DELETE" { session(&w, *r) } else { s.clone() }))))
                .collect();
            for (role, sess) in who {
                let as_session = role.map(|r| accounts::Session { user: lookup(&w, r).expect("read").expect("user"), csrf: String::new(), seen_at: 0 });
                let expected = allowed(*access, as_session.as_ref(), anonymous_viewing);
                let got = status(&w, request(&w, method, route, sess.as_ref())).await;
                let label = format!("{method} {route} as {} (anonymous viewing {anonymous_viewing}) -> {got}", role.map_or("no one", |r| r.as_str()));
                if expected {
                    assert!(got != StatusCode::UNAUTHORIZED && got != StatusCode::FORBIDDEN, "{label}: should be allowed");
                } else if role.is_none() {
                    assert_eq!(got, StatusCode::UNAUTHORIZED, "{label}: should ask to sign in");
                } else {
                    assert_eq!(got, StatusCode::FORBIDDEN, "{label}: should be refused");
                }
                cells += 1;
            }
        }
    }
    assert_eq!(cells, POLICY.len() * 5 * 2);
    // Spot checks of the matrix itself, so a wrong policy line cannot pass as "enforced".
    let rule = |m: &str, r: &str| POLICY.iter().find(|(pm, pr, _)| *pm == m && *pr == r).map(|(_, _, a)| *a);
    assert_eq!(rule("POST", "/api/v1/users"), Some(Access::Admin));
    assert_eq!(rule("PUT", "/api/v1/uploads"), Some(Access::Teacher));
    assert_eq!(rule("POST", "/api/v1/lessons/{id}/reviews"), Some(Access::Expert));
    assert_eq!(rule("GET", "/api/v1/audit"), Some(Access::Admin));
    assert_eq!(rule("GET", "/lessons/{id}"), Some(Access::View));
}

fn lookup(w: &World, r: Role) -> Result<Option<accounts::User>, accounts::AccountError> {
    w.state.ctx.store.read(|c| accounts::get_user(c, r.as_str()))
}


#[tokio::test]
async fn cookie_requests_need_the_csrf_token_and_sign_ins_are_throttled() {
    let w = world(true);
    let (cookie, _) = session(&w, Role::Admin);
    let req = Request::post(format!("/api/v1/lessons/{}/share", w.lesson))
        .header(header::COOKIE, format!("youke_session={cookie}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"to":"city"}"#))
        .expect("request");
    assert_eq!(status(&w, req).await, StatusCode::FORBIDDEN, "no X-CSRF-Token");
    let req = Request::post(format!("/api/v1/lessons/{}/share", w.lesson))
        .header(header::COOKIE, format!("youke_session={cookie}"))
        .header("x-csrf-token", "0".repeat(64))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"to":"city"}"#))
        .expect("request");
    assert_eq!(status(&w, req).await, StatusCode::FORBIDDEN, "a wrong token");

    let login = |password: &str| {
        Request::post("/api/v1/session").header(header::CONTENT_TYPE, "application/json").body(Body::from(format!(r#"{{"name":"teacher","password":"{password}"}}"#))).expect("request")
    };
    for _ in 0..5 {
        assert_eq!(status(&w, login("wrong password")).await, StatusCode::UNAUTHORIZED);
    }
    let resp = router(w.state.clone()).oneshot(login("password for tests")).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(resp.headers().get(header::RETRY_AFTER).is_some());
    // A login posted from another site's page is refused.
    let req = Request::post("/api/v1/session")
        .header(header::HOST, "school.lan")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name":"admin","password":"password for tests"}"#))
        .expect("request");
    assert_eq!(status(&w, req).await, StatusCode::FORBIDDEN);
    // The audit log has the sign-ins, failed and not.
    let log = w.state.ctx.store.read(|c| accounts::audit_log(c, 50)).expect("audit");
    assert!(log.iter().filter(|e| e.action == "sign in" && e.detail == "wrong name or password").count() >= 5, "{log:?}");
}

#[tokio::test]
async fn pages_send_people_who_are_not_signed_in_to_the_login_page() {
    let w = world(false);
    let req = Request::get("/search?q=x").header(header::ACCEPT, "text/html").body(Body::empty()).expect("request");
    let resp = router(w.state.clone()).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login?next=%2Fsearch%3Fq%3Dx");
    // Signing in through the form sets an HttpOnly, SameSite cookie and goes back.
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("name=viewer&password=password+for+tests&next=%2Fsearch%3Fq%3Dx"))
        .expect("request");
    let resp = router(w.state.clone()).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/search?q=x");
    let cookie = resp.headers()[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.starts_with("youke_session="), "{cookie}");
}
