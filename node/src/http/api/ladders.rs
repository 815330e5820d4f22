//! Ladders travelling as rendition packs ([`youke_media::pack`]): a player's request for a
//! playlist or a segment is the byte range of that file in the pack, read from the pack held
//! here or through the parent's cache ([`crate::pull_through`]), so every tier on the way keeps
//! what it passed and one fetch per tier serves every viewer below it.

use crate::http::segments::{IMMUTABLE, MAX_CACHED_FILE, ladder_file};
use crate::http::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use youke_federation::BlobHash;
use youke_federation::protocol::MAX_RANGE;
use youke_media::pack::{self, Index};

/// The indexes of the packs read so far (a pack never changes under its hash).
#[derive(Debug, Default)]
pub struct PackIndexes(Mutex<HashMap<BlobHash, Arc<Index>>>);

/// Indexes kept at most (each a few hundred KiB at most).
const MAX_INDEXES: usize = 256;

impl PackIndexes {
    fn get(&self, hash: &BlobHash) -> Option<Arc<Index>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(hash).cloned()
    }

    fn put(&self, hash: BlobHash, index: Arc<Index>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_INDEXES {
            m.clear();
        }
        m.insert(hash, index);
    }
}

/// Bytes `offset..offset+len` of a blob, held here or fetched through the parent; and the
/// blob's size.
async fn read(state: &AppState, hash: BlobHash, offset: u64, len: u64) -> Result<(Bytes, u64), ApiError> {
    let mut out = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0).min(64 << 20));
    let (mut at, end, mut size) = (offset, offset.saturating_add(len), 0);
    while at < end {
        let r = crate::pull_through::read(&state.ctx, hash, at, (end - at).min(MAX_RANGE)).await?;
        size = r.manifest.size;
        if r.bytes.is_empty() {
            break;
        }
        at = r.bytes_end();
        out.extend_from_slice(&r.bytes);
    }
    Ok((out.freeze(), size))
}

async fn index_of(state: &AppState, hash: BlobHash) -> Result<Arc<Index>, ApiError> {
    if let Some(i) = state.packs.get(&hash) {
        return Ok(i);
    }
    let bad = |e: youke_media::MediaError| ApiError::Internal(e.to_string());
    let (head, _) = read(state, hash, 0, pack::HEAD).await?;
    let len = pack::index_len(&head).map_err(bad)?;
    let (bytes, size) = read(state, hash, pack::HEAD, len).await?;
    let index = Arc::new(pack::parse_index(&bytes, size).map_err(bad)?);
    state.packs.put(hash, Arc::clone(&index));
    Ok(index)
}

/// `GET /media/ladder/{pack}/{file}`: a file of a ladder, from its rendition pack (with
/// ranges, for the SD version).
pub async fn ladder_pack_file(State(state): State<AppState>, Path((hash, rest)): Path<(String, String)>, headers: HeaderMap) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("no such media file".into());
    let (hash, mime) = ladder_file(&hash, &rest).ok_or_else(not_found)?;
    let index = index_of(&state, hash).await?;
    let entry = index.file(&rest).ok_or_else(not_found)?.clone();
    let key = std::path::PathBuf::from(format!("ladder/{}/{rest}", hash.to_hex()));
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(|v| super::media::parse_range(v, entry.len));
    let (start, end) = range.unwrap_or((0, entry.len));
    let end = end.min(start.saturating_add(MAX_CACHED_FILE));
    let body = match (range, state.segments.get(&key)) {
        (None, Some(b)) => b,
        (Some(_), Some(b)) => b.slice(usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0).min(b.len())),
        (_, None) => {
            let (b, _) = read(&state, hash, entry.offset + start, end - start).await?;
            if range.is_none() && entry.len <= MAX_CACHED_FILE {
                state.segments.insert(key, b.clone());
            }
            b
        }
    };
    let mut resp = if range.is_some() || end - start < entry.len {
        let mut r = (StatusCode::PARTIAL_CONTENT, body.clone()).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{}", (start + body.len() as u64).saturating_sub(1), entry.len)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        r
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(resp)
}
