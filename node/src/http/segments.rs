//! HLS ladder files (segments, playlists, posters) served from memory.
//!
//! A ladder never changes once its media job renamed it into place (its directory is named by
//! the recording's hash), so its files can be kept in memory after the first read and sent
//! from there: no file open, no chunked reads on the blocking pool, one buffer handed to the
//! socket as it is (the bytes are shared, never copied per request). A school's classes watch
//! the same few lessons at once, so a small cache serves most segment requests. Files larger
//! than [`MAX_CACHED_FILE`] (SD versions) and requests with a `Range` go to the file instead.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file and MIME type of a ladder path as the player asks for it (`<hash>/720p/seg_00001.ts`,
/// `<hash>/master.m3u8`): only plain names below the ladder's directory, only the kinds a
/// ladder has.
pub fn resolve(ctx: &crate::NodeCtx, hash: &str, rest: &str) -> Option<(PathBuf, &'static str)> {
    let (hash, mime) = ladder_file(hash, rest)?;
    Some((crate::media_jobs::hls_dir(&ctx.data_dir, &hash.to_hex()).join(rest), mime))
}

/// The rule of [`resolve`] without the node: the blob whose ladder is asked for and the file's
/// MIME type, if `rest` is one or two plain names (ASCII letters, digits, `.`, `_`, `-`, not
/// starting with a dot) ending in a ladder file's extension.
pub fn ladder_file(hash: &str, rest: &str) -> Option<(youke_federation::BlobHash, &'static str)> {
    let hash: youke_federation::BlobHash = hash.parse().ok()?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.is_empty() || p.starts_with('.') || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))) {
        return None;
    }
    let mime = match rest.rsplit('.').next() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("jpg") => "image/jpeg",
        Some("vtt") => "text/vtt; charset=utf-8",
        Some("mp4") => "video/mp4",
        _ => return None,
    };
    Some((hash, mime))
}

/// Largest file kept in memory (a 4 s segment at 1080p is 2–5 MiB).
pub const MAX_CACHED_FILE: u64 = 16 << 20;

/// What ladder files are cached with; they never change under their hash.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<PathBuf, (Bytes, u64)>,
    bytes: u64,
    tick: u64,
}

/// Recently served ladder files, least recently used evicted first, at most `capacity` bytes.
#[derive(Debug)]
pub struct SegmentCache {
    inner: Mutex<Inner>,
    capacity: u64,
}

impl SegmentCache {
    pub fn new(capacity: u64) -> SegmentCache {
        SegmentCache { inner: Mutex::new(Inner::default()), capacity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, path: &Path) -> Option<Bytes> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let (data, last) = g.files.get_mut(path)?;
        *last = tick;
        Some(data.clone())
    }

    pub fn insert(&self, path: PathBuf, data: Bytes) {
        let size = data.len() as u64;
        if size > self.capacity || size > MAX_CACHED_FILE {
            return;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, _)) = g.files.insert(path, (data, tick)) {
            g.bytes -= old.len() as u64;
        }
        g.bytes += size;
        while g.bytes > self.capacity {
            let Some(oldest) = g.files.iter().min_by_key(|(_, (_, t))| *t).map(|(p, _)| p.clone()) else { break };
            if let Some((d, _)) = g.files.remove(&oldest) {
                g.bytes -= d.len() as u64;
            }
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The file at `path` as an answer with `mime`, from memory when it is there or small
    /// enough to keep; `None` when it must be served from the file (too large), or is missing.
    pub async fn answer(&self, path: &Path, mime: &'static str) -> Option<Response<Body>> {
        let data = match self.get(path) {
            Some(d) => d,
            None => {
                let meta = tokio::fs::metadata(path).await.ok()?;
                if !meta.is_file() || meta.len() > MAX_CACHED_FILE {
                    return None;
                }
                let d = Bytes::from(tokio::fs::read(path).await.ok()?);
                self.insert(path.to_path_buf(), d.clone());
                d
            }
        };
        let mut resp = Response::new(Body::from(data));
        *resp.status_mut() = StatusCode::OK;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        Some(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_files_go_first_and_large_files_are_not_kept() {
        let c = SegmentCache::new(10);
        let f = |n: usize| Bytes::from(vec![0u8; n]);
        c.insert("a".into(), f(4));
        c.insert("b".into(), f(4));
        assert!(c.get(Path::new("a")).is_some(), "a is now the most recent");
        c.insert("c".into(), f(4));
        assert!(c.get(Path::new("b")).is_none(), "b was the least recently used");
        assert!(c.get(Path::new("a")).is_some() && c.get(Path::new("c")).is_some());
        assert_eq!(c.bytes(), 8);
        c.insert("big".into(), f(11));
        assert!(c.get(Path::new("big")).is_none());
        c.insert("a".into(), f(2));
        assert_eq!(c.bytes(), 6, "replacing a file counts its new size only");
    }

    #[tokio::test]
    async fn answers_come_from_memory_after_the_first_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg_00001.ts");
        std::fs::write(&path, b"0123456789").expect("write");
        let c = SegmentCache::new(1 << 20);
        let r = c.answer(&path, "video/mp2t").await.expect("answer");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "video/mp2t");
        assert_eq!(r.headers()[header::CACHE_CONTROL], IMMUTABLE);
        std::fs::remove_file(&path).expect("remove");
        let again = c.answer(&path, "video/mp2t").await.expect("from memory");
        let body = axum::body::to_bytes(again.into_body(), 100).await.expect("body");
        assert_eq!(&body[..], b"0123456789");
        assert!(c.answer(&dir.path().join("missing.ts"), "video/mp2t").await.is_none());
    }
}
