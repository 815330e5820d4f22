//! Who sees what at this node: applying a reviewer's or an administrator's decision (the
//! command line and the portal both come here), approving on arrival where
//! `[review] auto_approve` is set, listing again the lessons of collections that changed
//! (published, unpublished, deleted, lessons added or removed), and dropping this node's copies
//! of the media of lessons taken down (a takedown hides a lesson everywhere below and leaves no
//! cached copy behind; the lesson's own school keeps its file).
//!
//! The decisions themselves, and the rule who sees what, are in [`crate::lessons`]'s
//! moderation module.

use crate::context::{NodeCtx, NodeError};
use crate::lessons::{self, Lesson, Moderation, Moderator};
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_federation::BlobHash;

/// Who approves when `[review] auto_approve` is set, in the document and the audit log.
pub const AUTO_REVIEWER: &str = "自动审核";

/// Applies a decision to a lesson here, records it in the audit log, and tells the node's
/// services (the decision travels with the next sync).
pub fn moderate(ctx: &NodeCtx, id: &str, m: &Moderation, by: &Moderator<'_>) -> Result<Lesson, NodeError> {
    let lesson = ctx
        .store
        .write(|tx| lessons::moderate(tx, &ctx.writer, id, m, by).map_err(NodeError::from))?
        .ok_or_else(|| NodeError::NoSuchLesson(id.to_string()))?;
    ctx.changed();
    Ok(lesson)
}

/// Approves every lesson waiting for this tier's review (`[review] auto_approve`); returns how
/// many.
pub fn approve_waiting(ctx: &NodeCtx) -> Result<usize, NodeError> {
    let waiting = ctx.store.read(|c| lessons::review_queue(c, ctx.writer.tier, 500))?;
    let by = Moderator { user: AUTO_REVIEWER, address: "" };
    for l in &waiting {
        moderate(ctx, &l.id, &Moderation::Approve, &by)?;
    }
    Ok(waiting.len())
}

/// Deletes this node's copies (cached or replicated) of media whose lessons were all taken
/// down; returns how many files went.
pub fn drop_taken_down_media(ctx: &NodeCtx) -> Result<usize, NodeError> {
    // Only those still held here (a cheap read; most passes find nothing).
    let hashes = ctx.store.read(|c| {
        let mut held = Vec::new();
        for hex in lessons::taken_down_media(c, &ctx.writer.node_id)? {
            if crate::pull_through::is_cached(c, &hex)? || crate::blob_index::holds(c, &hex)? {
                held.push(hex);
            }
        }
        Ok::<_, NodeError>(held)
    })?;
    let mut dropped = 0;
    for hex in hashes {
        let Ok(hash) = hex.parse::<BlobHash>() else { continue };
        let ladder = crate::media_jobs::hls_dir(&ctx.data_dir, &hex);
        let (cached, replicated) = ctx.store.write(|tx| {
            let cached = crate::pull_through::forget(tx, &hex)?;
            let replicated = crate::blob_index::holds(tx, &hex)?;
            crate::blob_index::remove(tx, &hex)?;
            crate::sync_state::drop_pending_upload(tx, &hex)?;
            Ok::<_, StoreError>((cached, replicated))
        })?;
        if !(cached || replicated) {
            continue;
        }
        crate::pull_through::forget_open(ctx, &hash);
        ctx.blobs.evict_cached(&hash, true);
        if ladder.exists() {
            let _ = std::fs::remove_dir_all(&ladder);
        }
        tracing::info!(%hash, "dropped this node's copy of media taken down");
        dropped += 1;
    }
    Ok(dropped)
}

/// Works out again whether the lessons of changed collections are listed here; returns how
/// many lessons.
pub fn relist_changed(ctx: &NodeCtx) -> Result<usize, NodeError> {
    let mut total = 0;
    loop {
        let n = ctx.store.write(|tx| {
            let ids = crate::catalog::take_relist(tx, 200)?;
            for id in &ids {
                lessons::relist(tx, &ctx.writer, id)?;
            }
            Ok::<_, NodeError>(ids.len())
        })?;
        total += n;
        if n < 200 {
            break;
        }
    }
    if total > 0 {
        ctx.changed();
    }
    Ok(total)
}

const INTERVAL: Duration = Duration::from_secs(2);

/// Approves on arrival (when configured) and drops taken-down media, every couple of seconds.
pub async fn run(ctx: Arc<NodeCtx>, auto_approve: bool, cancel: CancellationToken) {
    loop {
        let c = Arc::clone(&ctx);
        let work = tokio::task::spawn_blocking(move || {
            if auto_approve {
                match approve_waiting(&c) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "approved lessons on arrival ([review] auto_approve)"),
                    Err(e) => tracing::warn!(error = %e, "cannot approve waiting lessons; will retry"),
                }
            }
            if let Err(e) = relist_changed(&c) {
                tracing::warn!(error = %e, "cannot update the lessons of changed collections; will retry");
            }
            if let Err(e) = drop_taken_down_media(&c) {
                tracing::warn!(error = %e, "cannot drop the media of lessons taken down; will retry");
            }
        });
        let _ = work.await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
