//! Pull-through viewing: a school (or city) plays a lesson whose media is held upstream by
//! fetching the ranges it needs from its parent, verified chunk by chunk, and keeps them in a
//! cache. A blob whose every chunk arrived moves into the store. The cache has a quota
//! (`limits.cache_bytes`): a cached blob claims its whole size when first fetched, and when the
//! quota would be exceeded the least recently watched cached blobs are evicted. Blobs of pinned
//! collections are never evicted, and neither is this node's own or replicated media (it is never
//! in the cache). Pinned collections, and the ladders of the most viewed lessons while half the
//! quota is free, are prefetched while the link's rate schedule allows bulk transfers, paced by
//! it.
//!
//! The same cache answers children's range requests for blobs this node does not hold, so a
//! school watches a province lesson through its city ([`CacheSource`]).

use crate::context::NodeCtx;
pub mod state;

use crate::store::{StoreError, now_ms};
use rusqlite::params;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_federation::blobs::BlobError;
use youke_federation::transport::LinkError;
use youke_federation::manifest::{self, CHUNK, Manifest};
use youke_federation::protocol::{ErrorCode, MAX_RANGE};
use youke_federation::pull_through::{Range, RangeSource, chunks_of};
use youke_federation::transfers::Direction;
use youke_federation::BlobHash;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the media cache (limits.cache_bytes = {quota} bytes) is full of pinned collections; unpin one or raise the limit")]
    CacheFull { quota: u64 },
    #[error("the parent sent chunk {index} of blob {hash} twice with bytes that do not match its hash")]
    Corrupt { hash: BlobHash, index: u64 },
    #[error("blob {hash} was evicted from the media cache while it was being read; ask again")]
    Evicted { hash: BlobHash },
    #[error("{0}")]
    Task(String),
}

impl From<PullError> for LinkError {
    fn from(e: PullError) -> Self {
        match e {
            PullError::Link(l) => l,
            PullError::Blob(b) => LinkError::Blob(b),
            other => LinkError::Store(Box::new(other)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, PullError> + Send + 'static) -> Result<T, PullError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| PullError::Task(e.to_string()))?
}

/// Bytes `offset..offset+len` (at most [`MAX_RANGE`]) of a blob, from the store if this node
/// holds it, else from the cache, fetching what is missing from the parent.
pub async fn read(ctx: &Arc<NodeCtx>, hash: BlobHash, offset: u64, len: u64) -> Result<Range, PullError> {
    let len = len.min(MAX_RANGE);
    if let Some(blob) = ctx.blobs.blob(&hash) {
        return read_held(ctx, blob, hash, offset, len).await;
    }
    let gate = Arc::clone(lock(&ctx.pull_through.fetching).entry(hash).or_default());
    let _one_fetch_at_a_time = gate.lock().await;
    // The fetch this one waited for may have completed the blob (and moved it into the store):
    // read it there rather than fetch it all again.
    if let Some(blob) = ctx.blobs.blob(&hash) {
        return read_held(ctx, blob, hash, offset, len).await;
    }
    let manifest = manifest_of(ctx, hash).await?;
    let want = chunks_of(manifest.size, offset, len);
    let missing = verify_cached(ctx, hash, &manifest, want.clone()).await?;
    if !missing.is_empty() {
        reserve(ctx, hash, manifest.size).await?;
        fetch_chunks(ctx, hash, &manifest, &missing).await?;
    }
    touch(ctx, hash).await?;
    let complete = lock(&ctx.pull_through.blobs).get(&hash).is_some_and(|(m, have)| have.len() as u64 == manifest::chunk_count(m.size));
    let blobs = ctx.blobs.clone();
    let end = (offset + len).min(manifest.size);
    let bytes = blocking(move || Ok(blobs.cache_read(&hash, offset, end.saturating_sub(offset) as usize)?)).await?;
    // An eviction for another blob forgets this one before deleting its file, so if it is still
    // known here, what was read is what was verified (a deleted file would read as zeros).
    if !lock(&ctx.pull_through.blobs).contains_key(&hash) {
        return Err(PullError::Evicted { hash });
    }
    if complete {
        promote(ctx, hash).await?;
    }
    Ok(Range { manifest, offset, bytes: bytes.into() })
}

/// Bytes of a blob this node holds.
async fn read_held(ctx: &Arc<NodeCtx>, blob: youke_federation::blobs::Blob, hash: BlobHash, offset: u64, len: u64) -> Result<Range, PullError> {
    let blobs = ctx.blobs.clone();
    blocking(move || {
        let manifest = blobs.manifest(&hash)?;
        let end = (offset + len).min(manifest.size);
        let mut bytes = vec![0u8; end.saturating_sub(offset) as usize];
        blob.read_exact_at(&mut bytes, offset)?;
        Ok(Range { manifest, offset, bytes: bytes.into() })
    })
    .await
}

/// The blob's manifest: known, kept on disk, or fetched with its first chunk.
async fn manifest_of(ctx: &Arc<NodeCtx>, hash: BlobHash) -> Result<Manifest, PullError> {
    if let Some((m, _)) = lock(&ctx.pull_through.blobs).get(&hash) {
        return Ok(m.clone());
    }
    let blobs = ctx.blobs.clone();
    if let Some(m) = blocking(move || Ok(blobs.saved_manifest(&hash))).await?
        && m.verify(&hash).is_ok()
    {
        lock(&ctx.pull_through.blobs).entry(hash).or_insert_with(|| (m.clone(), BTreeSet::new()));
        return Ok(m);
    }
    let (size, manifest, bytes) = ctx.upstream.fetch(hash, 0, CHUNK, true).await?;
    let manifest = manifest.ok_or_else(|| LinkError::Protocol("the parent sent no manifest".into()))?;
    if manifest.size != size {
        return Err(LinkError::Protocol("the parent's manifest and size disagree".into()).into());
    }
    reserve(ctx, hash, size).await?;
    let (blobs, m) = (ctx.blobs.clone(), manifest.clone());
    let ok = m.check_chunk(&hash, 0, &bytes);
    blocking(move || {
        blobs.keep_manifest(&hash, &m)?;
        if ok {
            blobs.cache_write(&hash, 0, &bytes)?;
        }
        Ok(())
    })
    .await?;
    let mut have = BTreeSet::new();
    if ok {
        have.insert(0);
    }
    lock(&ctx.pull_through.blobs).insert(hash, (manifest.clone(), have));
    Ok(manifest)
}

/// Chunks of `want` not yet verified: those already in the cache file (from before a restart)
/// are checked and kept; the rest are returned.
async fn verify_cached(ctx: &Arc<NodeCtx>, hash: BlobHash, manifest: &Manifest, want: std::ops::Range<u64>) -> Result<Vec<u64>, PullError> {
    let unknown: Vec<u64> = {
        let map = lock(&ctx.pull_through.blobs);
        let have = map.get(&hash).map(|(_, h)| h.clone()).unwrap_or_default();
        want.filter(|i| !have.contains(i)).collect()
    };
    if unknown.is_empty() {
        return Ok(unknown);
    }
    let (blobs, m, idx) = (ctx.blobs.clone(), manifest.clone(), unknown.clone());
    let found: Vec<u64> = blocking(move || {
        let mut ok = Vec::new();
        for i in idx {
            let bytes = blobs.cache_read(&hash, i * CHUNK, manifest::chunk_len(m.size, i) as usize)?;
            if m.check_chunk(&hash, i, &bytes) {
                ok.push(i);
            }
        }
        Ok(ok)
    })
    .await?;
    let mut map = lock(&ctx.pull_through.blobs);
    if let Some((_, have)) = map.get_mut(&hash) {
        have.extend(found.iter().copied());
    }
    Ok(unknown.into_iter().filter(|i| !found.contains(i)).collect())
}

/// Fetches the missing chunks in runs of up to [`MAX_RANGE`], checks each, writes it to the cache.
/// A chunk that fails its check is fetched once more; a second failure is an error.
async fn fetch_chunks(ctx: &Arc<NodeCtx>, hash: BlobHash, manifest: &Manifest, missing: &[u64]) -> Result<(), PullError> {
    let per_run = (MAX_RANGE / CHUNK) as usize;
    let mut runs: Vec<Vec<u64>> = Vec::new();
    for &i in missing {
        match runs.last_mut() {
            Some(run) if i.checked_sub(1).is_some_and(|p| run.last() == Some(&p)) && run.len() < per_run => run.push(i),
            _ => runs.push(vec![i]),
        }
    }
    let peer = ctx.upstream.parent_name().unwrap_or_default();
    for run in runs {
        let (first, count) = (run[0], run.len() as u64);
        let offset = first * CHUNK;
        let len = (count * CHUNK).min(manifest.size - offset);
        let progress = ctx.transfers.start(hash, Direction::Fetch, &peer, offset + len, offset);
        let mut retried = false;
        let mut pending: Vec<u64> = run.clone();
        while !pending.is_empty() {
            let start = pending[0] * CHUNK;
            let last = *pending.last().unwrap_or(&pending[0]);
            let want = ((last + 1) * CHUNK).min(manifest.size) - start;
            let (_, _, bytes) = ctx.upstream.fetch(hash, start, want, false).await?;
            let mut good = Vec::new();
            let mut bad = Vec::new();
            for &i in &pending {
                let from = ((i * CHUNK) - start) as usize;
                let to = (from + manifest::chunk_len(manifest.size, i) as usize).min(bytes.len());
                let chunk = bytes.get(from..to).unwrap_or_default();
                if manifest.check_chunk(&hash, i, chunk) {
                    good.push((i, chunk.to_vec()));
                } else {
                    bad.push(i);
                }
            }
            let blobs = ctx.blobs.clone();
            let written: Vec<u64> = good.iter().map(|(i, _)| *i).collect();
            let n: u64 = good.iter().map(|(_, b)| b.len() as u64).sum();
            blocking(move || {
                for (i, b) in good {
                    blobs.cache_write(&hash, i * CHUNK, &b)?;
                }
                Ok(())
            })
            .await?;
            progress.advance(n);
            if let Some((_, have)) = lock(&ctx.pull_through.blobs).get_mut(&hash) {
                have.extend(written);
            }
            if !bad.is_empty() {
                tracing::warn!(%hash, chunks = ?bad, "parent sent chunks that fail verification; fetching them again");
                if retried {
                    return Err(PullError::Corrupt { hash, index: bad[0] });
                }
                retried = true;
            }
            pending = bad;
        }
    }
    Ok(())
}

/// Claims `size` bytes of the cache quota for a blob the first time it is fetched, evicting
/// the least recently watched unpinned cached blobs as needed.
async fn reserve(ctx: &Arc<NodeCtx>, hash: BlobHash, size: u64) -> Result<(), PullError> {
    let quota = ctx.config.limits.cache_bytes;
    let c = Arc::clone(ctx);
    let evicted: Vec<(BlobHash, bool)> = blocking(move || {
        c.store.write(|tx| -> Result<Vec<(BlobHash, bool)>, PullError> {
            let known: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM cache WHERE hash = ?1)", [hash.to_hex()], |r| r.get(0)).map_err(StoreError::from)?;
            if known {
                return Ok(Vec::new());
            }
            let mut total: i64 = tx.query_row("SELECT COALESCE(SUM(size), 0) FROM cache", [], |r| r.get(0)).map_err(StoreError::from)?;
            let mut evicted = Vec::new();
            if total as u64 + size > quota {
                // The least recently watched first; media of pinned collections never.
                let pinned: std::collections::HashSet<String> = pinned_media(tx)?.into_iter().map(|(h, _)| h).collect();
                let mut order = tx.prepare("SELECT hash, size, complete FROM cache ORDER BY last_access").map_err(StoreError::from)?;
                let rows = order
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, bool>(2)?)))
                    .map_err(StoreError::from)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::from)?;
                for (victim, vsize, complete) in rows.into_iter().filter(|(h, _, _)| !pinned.contains(h)) {
                    if total as u64 + size <= quota {
                        break;
                    }
                    // A complete cached copy was promoted into the blob store; unless the node also
                    // holds it as its own, that stored copy goes with the entry.
                    let promoted = complete && !crate::blob_index::holds(tx, &victim)?;
                    tx.execute("DELETE FROM cache WHERE hash = ?1", [&victim]).map_err(StoreError::from)?;
                    total -= vsize;
                    if let Ok(h) = victim.parse() {
                        evicted.push((h, promoted));
                    }
                }
                if total as u64 + size > quota {
                    return Err(PullError::CacheFull { quota });
                }
            }
            tx.execute(
                "INSERT INTO cache (hash, size, last_access, complete) VALUES (?1, ?2, ?3, 0)",
                params![hash.to_hex(), size as i64, now_ms()],
            )
            .map_err(StoreError::from)?;
            Ok(evicted)
        })
    })
    .await?;
    for (h, promoted) in evicted {
        tracing::info!(hash = %h, "evicted a cached lesson to stay within the cache quota");
        lock(&ctx.pull_through.blobs).remove(&h);
        let blobs = ctx.blobs.clone();
        blocking(move || {
            blobs.evict_cached(&h, promoted);
            Ok(())
        })
        .await?;
    }
    Ok(())
}

async fn touch(ctx: &Arc<NodeCtx>, hash: BlobHash) -> Result<(), PullError> {
    let c = Arc::clone(ctx);
    blocking(move || {
        c.store.write(|tx| tx.execute("UPDATE cache SET last_access = ?1 WHERE hash = ?2", params![now_ms(), hash.to_hex()]).map_err(StoreError::from))?;
        Ok(())
    })
    .await
}

async fn promote(ctx: &Arc<NodeCtx>, hash: BlobHash) -> Result<(), PullError> {
    let c = Arc::clone(ctx);
    blocking(move || {
        c.blobs.cache_promote(&hash)?;
        c.store.write(|tx| tx.execute("UPDATE cache SET complete = 1 WHERE hash = ?1", [hash.to_hex()]).map_err(StoreError::from))?;
        Ok(())
    })
    .await?;
    lock(&ctx.pull_through.blobs).remove(&hash);
    tracing::info!(%hash, "a lesson watched through the parent is now held here in full");
    Ok(())
}

/// Forgets a cached blob (its entry; the caller deletes the file once this commits). Whether
/// there was one.
pub fn forget(tx: &rusqlite::Transaction<'_>, hash: &str) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM cache WHERE hash = ?1", [hash])? > 0)
}

/// Whether a blob is in the cache.
pub fn is_cached(conn: &rusqlite::Connection, hash: &str) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM cache WHERE hash = ?1)")?.query_row([hash], |r| r.get(0))?)
}

/// Forgets what memory holds of a blob dropped from the cache.
pub fn forget_open(ctx: &NodeCtx, hash: &BlobHash) {
    lock(&ctx.pull_through.blobs).remove(hash);
}

/// Deletes cache files with no cache row (left by a crash between an eviction's commit and its
/// file deletion).
pub fn sweep_orphans(store: &crate::store::Store, blobs: &youke_federation::BlobStore) -> Result<usize, StoreError> {
    let mut removed = 0;
    for h in blobs.cache_files() {
        let known: bool = store.read(|c| Ok::<_, StoreError>(c.query_row("SELECT EXISTS (SELECT 1 FROM cache WHERE hash = ?1)", [h.to_hex()], |r| r.get(0))?))?;
        if !known {
            blobs.evict_cached(&h, false);
            removed += 1;
        }
    }
    Ok(removed)
}

/// Answers children's range requests for blobs this node does not hold.
pub struct CacheSource(pub Arc<NodeCtx>);

impl RangeSource for CacheSource {
    fn read_range(&self, hash: BlobHash, offset: u64, len: u64) -> Pin<Box<dyn Future<Output = Result<Range, LinkError>> + Send + '_>> {
        Box::pin(async move { read(&self.0, hash, offset, len).await.map_err(LinkError::from) })
    }
}

/// How often the prefetcher looks for pinned lessons to fetch.
const PREFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Prefetches the media of pinned collections while the link is up and the rate schedule is not
/// `off`, paced by the schedule.
pub async fn prefetch(ctx: Arc<NodeCtx>, cancel: CancellationToken) {
    loop {
        if ctx.upstream.parent_name().is_some() && crate::link_settings::bulk_allowed(&ctx.limiter)
            && let Err(e) = prefetch_pass(&ctx, &cancel).await
        {
            tracing::warn!(error = %e, "prefetching pinned collections paused");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ctx.wake_prefetch.notified() => {}
            _ = tokio::time::sleep(PREFETCH_INTERVAL) => {}
        }
    }
}

/// The media of pinned collections' lessons: the ladders' packs (what plays) and the recordings
/// (what is downloaded), (hash, size); never evicted.
fn pinned_media(conn: &rusqlite::Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let ids = crate::catalog::pinned_lessons(conn)?;
    let mut media = crate::lessons::media_of(conn, &ids, crate::lessons::MediaFile::Playable)?;
    for m in crate::lessons::media_of(conn, &ids, crate::lessons::MediaFile::Recording)? {
        if !media.contains(&m) {
            media.push(m);
        }
    }
    Ok(media)
}

/// Most viewed lessons whose ladders are prefetched while the cache has room.
const PREFETCH_MOST_VIEWED: usize = 20;
/// Share of the cache quota prefetching the most viewed lessons may fill (the rest is kept for
/// what viewers ask for, so prefetching never evicts what someone watched).
const PREFETCH_SHARE: f64 = 0.5;

/// What to prefetch: pinned collections' media, then the ladders of the most viewed lessons
/// while they fit in [`PREFETCH_SHARE`] of the cache quota without evicting anything.
fn prefetch_list(ctx: &NodeCtx) -> Result<Vec<(String, u64)>, StoreError> {
    ctx.store.read(|c| {
        let mut wanted = pinned_media(c)?;
        let mut room = ((ctx.config.limits.cache_bytes as f64 * PREFETCH_SHARE) as u64).saturating_sub(cache_total(c)?);
        let popular = crate::lessons::most_viewed(c, PREFETCH_MOST_VIEWED)?;
        for (hash, size) in crate::lessons::media_of(c, &popular, crate::lessons::MediaFile::Playable)? {
            let have = crate::blob_index::holds(c, &hash)? || is_cached(c, &hash)?;
            if !have && size <= room && !wanted.iter().any(|(h, _)| *h == hash) {
                room -= size;
                wanted.push((hash, size));
            }
        }
        Ok(wanted)
    })
}

/// Bytes the cache has claimed.
fn cache_total(conn: &rusqlite::Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM cache", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

async fn prefetch_pass(ctx: &Arc<NodeCtx>, cancel: &CancellationToken) -> Result<(), PullError> {
    let c = Arc::clone(ctx);
    let wanted: Vec<(BlobHash, u64)> = blocking(move || Ok(prefetch_list(&c)?.into_iter().filter_map(|(h, s)| Some((h.parse().ok()?, s))).collect())).await?;
    for (hash, size) in wanted {
        let mut offset = 0;
        while offset < size && !ctx.blobs.contains(&hash) {
            if cancel.is_cancelled() || !crate::link_settings::bulk_allowed(&ctx.limiter) {
                return Ok(());
            }
            let len = MAX_RANGE.min(size - offset);
            ctx.limiter.acquire(len).await;
            match read(ctx, hash, offset, len).await {
                Ok(_) => offset += len,
                // Not held above (not uploaded yet, or taken down): the next pass asks again;
                // the others are fetched meanwhile.
                Err(PullError::Link(LinkError::Remote { code: ErrorCode::NotFound, .. })) => {
                    tracing::debug!(%hash, "a prefetched file is not held above yet");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Partial transfers nobody resumed for this long are deleted.
pub const PARTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);
const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Housekeeping of what transfers leave behind, at start and every six hours: partial blobs
/// nobody resumed for [`PARTIAL_MAX_AGE`], cache files an interrupted eviction left.
pub async fn housekeeping(ctx: Arc<NodeCtx>, cancel: CancellationToken) {
    loop {
        let c = Arc::clone(&ctx);
        let work = tokio::task::spawn_blocking(move || {
            let n = c.blobs.gc_partials(PARTIAL_MAX_AGE);
            if n > 0 {
                tracing::info!(removed = n, "removed abandoned partial transfers");
            }
            match sweep_orphans(&c.store, &c.blobs) {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed cache files left by an interrupted eviction"),
                Err(e) => tracing::warn!(error = %e, "cannot check the media cache"),
            }
        });
        let _ = work.await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(HOUSEKEEPING_INTERVAL) => {}
        }
    }
}


