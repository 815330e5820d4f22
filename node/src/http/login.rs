//! The sign-in page and its form (`GET|POST /login`), in the portal's languages; the checks
//! themselves (throttle, password, session) are [`super::auth`]'s.

use super::auth::{Auth, same_origin, session_cookie, sign_in};
use super::redirect::{local_path, redirect_to};
use super::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
pub struct NextQuery {
    pub next: Option<String>,
}

fn login_html(state: &AppState, auth: &Auth, next: &str, error: Option<&str>) -> Html<String> {
    let l = auth.lang;
    let err = error.map(|e| format!(r#"<p class="fail" role="alert">{}</p>"#, super::pages::esc(e))).unwrap_or_default();
    let body = format!(
        r#"<h1>{sign_in}</h1>{err}<form method="post" action="/login"><dl>
<dt><label for="name">{user}</label></dt><dd><input id="name" name="name" autocomplete="username" required autofocus></dd>
<dt><label for="password">{password}</label></dt><dd><input id="password" name="password" type="password" autocomplete="current-password" required></dd>
</dl><input type="hidden" name="next" value="{next}"><p><button type="submit">{sign_in}</button></p></form>"#,
        sign_in = l.t("登录", "Sign in"),
        user = l.t("用户名", "User name"),
        password = l.t("密码", "Password"),
        next = super::pages::esc(next)
    );
    // The page itself is shown as no one: a stale session's name would only confuse.
    let anonymous = Auth { lang: l, ..Auth::default() };
    super::pages::layout(state, &anonymous, l.t("登录", "Sign in"), "", &body)
}

pub async fn login_page(State(state): State<AppState>, Extension(auth): Extension<Auth>, axum::extract::Query(q): axum::extract::Query<NextQuery>) -> Html<String> {
    login_html(&state, &auth, &local_path(q.next.as_deref()).unwrap_or_else(|_| "/".into()), None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /login` (the form): signs in and goes on to `next`.
pub async fn login_form(State(state): State<AppState>, Extension(auth): Extension<Auth>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let next = match local_path(f.next.as_deref()) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if !same_origin(&headers) {
        let msg = auth.lang.t("请从本门户的登录页登录", "Sign in from this portal's own sign-in page");
        return (StatusCode::FORBIDDEN, login_html(&state, &auth, &next, Some(msg))).into_response();
    }
    match sign_in(&state, &auth, f.name, f.password).await {
        Ok((token, _)) => {
            let mut r = redirect_to(&next);
            r.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &token));
            r
        }
        Err(ApiError::TooManyRequests(msg, _)) => {
            let text = format!("{}（{msg}）", auth.lang.t("登录失败次数过多，请稍后再试", "Too many failed sign-ins; try again later"));
            (StatusCode::TOO_MANY_REQUESTS, login_html(&state, &auth, &next, Some(&text))).into_response()
        }
        Err(ApiError::Unauthorized(_)) => {
            let msg = auth.lang.t("用户名或密码错误", "Wrong user name or password");
            (StatusCode::UNAUTHORIZED, login_html(&state, &auth, &next, Some(msg))).into_response()
        }
        Err(ApiError::Busy(_, secs)) => {
            let msg = auth.lang.t("正在登录的人太多，请几秒钟后再试", "Too many people are signing in at once; try again in a few seconds");
            ([(header::RETRY_AFTER, HeaderValue::from(secs))], (StatusCode::SERVICE_UNAVAILABLE, login_html(&state, &auth, &next, Some(msg)))).into_response()
        }
        Err(e) => e.into_response(),
    }
}
