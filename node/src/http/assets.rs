//! Static assets built into the binary: hls.js (from npm, pinned by web/package-lock.json and
//! copied in by build.rs) and the portal's own scripts. Pages link them as
//! `/assets/NAME?v=HASH`, so a browser caches each version for good and a new build is fetched
//! at once.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "hls.min.js", mime: "text/javascript; charset=utf-8", body: include_bytes!(concat!(env!("OUT_DIR"), "/hls.min.js")) },
    Asset { name: "player.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("player.js") },
    Asset { name: "portal.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("portal.js") },
    Asset { name: "portal.css", mime: "text/css; charset=utf-8", body: include_bytes!("portal.css") },
    Asset { name: "upload.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("upload.js") },
    Asset { name: "favicon.svg", mime: "image/svg+xml", body: include_bytes!("favicon.svg") },
];

/// `/favicon.ico`, which browsers ask for by themselves: the portal's icon.
pub async fn favicon(headers: HeaderMap) -> Response {
    serve(Path("favicon.svg".to_string()), headers).await
}

fn find(name: &str) -> Option<(&'static Asset, &'static str)> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| ASSETS.iter().map(|a| blake3::hash(a.body).to_hex()[..16].to_string()).collect());
    ASSETS.iter().zip(tags).find(|(a, _)| a.name == name).map(|(a, t)| (a, t.as_str()))
}

/// The URL of a built-in asset, with its content tag. Panics only for a name that is not in
/// [`ASSETS`], which is a programming error caught by the tests.
pub fn url(name: &str) -> String {
    let (a, tag) = find(name).unwrap_or_else(|| panic!("no built-in asset named {name}"));
    format!("/assets/{}?v={tag}", a.name)
}

pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some((asset, tag)) = find(&name) else {
        return super::ApiError::NotFound("no such asset".into()).into_response();
    };
    let etag = format!("\"{tag}\"");
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    let etag_header = (header::ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return (StatusCode::NOT_MODIFIED, [cache, etag_header]).into_response();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)), cache, etag_header], asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_url_and_hlsjs_is_the_real_library() {
        for a in ASSETS {
            assert!(url(a.name).starts_with(&format!("/assets/{}?v=", a.name)));
        }
        let (hls, _) = find("hls.min.js").expect("hls.js");
        assert!(hls.body.len() > 100_000, "hls.js is built in, not a placeholder");
        assert!(std::str::from_utf8(hls.body).is_ok_and(|js| js.contains("MANIFEST_PARSED")), "hls.js, the library");
        assert!(find("../Cargo.toml").is_none());
    }
}
