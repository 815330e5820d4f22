//! Where the portal sends a browser next (after signing in, after switching the language):
//! only paths on this portal, judged as a browser reads them.

use super::ApiError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// Where to go after signing in or switching the language: a path on this portal only, judged
/// as a browser reads it. Browsers drop tabs (and line breaks) from a URL and read `\` as `/`,
/// so `/\t/evil.example` and `/\evil.example` mean `//evil.example`, another site: those go to
/// `/`. A line break or another control character cannot be in a `Location` at all and is
/// refused (400). What is kept is percent-encoded outside visible ASCII.
pub fn local_path(next: Option<&str>) -> Result<String, ApiError> {
    let Some(raw) = next else { return Ok("/".into()) };
    if raw.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ApiError::BadRequest("next must be a path on this portal, without line breaks or control characters".into()));
    }
    let as_read: String = raw.trim_matches([' ', '\t']).chars().filter(|c| *c != '\t').map(|c| if c == '\\' { '/' } else { c }).collect();
    if !as_read.starts_with('/') || as_read.starts_with("//") {
        return Ok("/".into());
    }
    let mut out = String::with_capacity(as_read.len());
    for b in as_read.bytes() {
        if (0x21..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// The redirect to a path [`local_path`] gave.
pub fn redirect_to(path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => Redirect::to("/").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_portal() {
        let next = |n: &str| local_path(Some(n)).expect("no control characters");
        assert_eq!(next("/upload?x=1"), "/upload?x=1");
        assert_eq!(local_path(None).expect("none"), "/");
        for elsewhere in ["//evil.example/", "https://evil.example/", "/\\evil", "\\\\evil", "/\t/evil.example", "\t//evil.example", " //evil.example", "/\t\\evil", "evil.example", ""] {
            assert_eq!(next(elsewhere), "/", "{elsewhere:?}");
        }
        // Chinese and spaces are kept, encoded; a tab inside a path is dropped as browsers do.
        assert_eq!(next("/search?q=数学 课"), "/search?q=%E6%95%B0%E5%AD%A6%20%E8%AF%BE");
        assert_eq!(next("/sea\trch"), "/search");
        for refused in ["/\n/evil.example", "/ok\r\nSet-Cookie: x=1", "/\u{0}", "/\u{7f}", "/\u{85}"] {
            assert!(matches!(local_path(Some(refused)), Err(ApiError::BadRequest(_))), "{refused:?}");
        }
        assert_eq!(redirect_to(&next("/search?q=数学")).headers()[header::LOCATION], "/search?q=%E6%95%B0%E5%AD%A6");
    }
}
