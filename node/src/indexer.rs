//! Keeps the search index in step with the database: indexes lesson rows whose change
//! sequence is newer than the index's last commit, whether the change was local, from another
//! process (`youke import`) or synced from another tier.

use crate::lessons;
use crate::node::{NodeCtx, NodeError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_search::{LessonDoc, LessonIndex};

const BATCH: u64 = 2000;
/// How often the database is checked for changes made by other processes.
const POLL: Duration = Duration::from_millis(300);

fn to_doc(ctx: &NodeCtx, l: &lessons::Lesson) -> LessonDoc {
    let cues = match &l.subtitles {
        None => Vec::new(),
        Some(_) => ctx
            .store
            .read(|c| lessons::subtitles_of(c, &l.id))
            .ok()
            .flatten()
            .and_then(|(srt, _)| youke_media::srt::parse(srt.as_bytes()).ok())
            .map(|cues| cues.into_iter().map(|c| (c.start_ms, c.text.replace('\n', " "))).collect())
            .unwrap_or_default(),
    };
    LessonDoc {
        cues,
        id: l.id.clone(),
        title: l.title.clone(),
        teacher: l.teacher.clone(),
        subject: l.subject.clone(),
        grade: l.grade.clone(),
        knowledge_points: l.knowledge_points.clone(),
    }
}

/// Indexes one batch of changes; returns how many lessons it indexed.
pub fn index_pending(ctx: &NodeCtx, index: &LessonIndex) -> Result<usize, NodeError> {
    let mut from = index.indexed_seq();
    let db_seq: u64 = ctx.store.read(|c| {
        Ok::<_, NodeError>(crate::store::meta_get(c, "doc_seq")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    })?;
    if from > db_seq {
        tracing::warn!(index_seq = from, db_seq, "search index is ahead of the database (restored backup?); rebuilding");
        index.clear()?;
        index.commit(0)?;
        from = 0;
    }
    let changed = ctx.store.read(|c| lessons::changed_since(c, from, BATCH))?;
    let Some(last) = changed.last().map(|(_, s)| *s) else { return Ok(0) };
    let docs: Vec<LessonDoc> = changed.iter().map(|(l, _)| to_doc(ctx, l)).collect();
    index.upsert(&docs)?;
    index.commit(last)?;
    Ok(docs.len())
}

pub async fn run(ctx: Arc<NodeCtx>, index: Arc<LessonIndex>, cancel: CancellationToken) {
    loop {
        let (c, i) = (Arc::clone(&ctx), Arc::clone(&index));
        let n = match tokio::task::spawn_blocking(move || index_pending(&c, &i)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "indexing failed; will retry");
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "indexer task failed");
                0
            }
        };
        if n > 0 {
            tracing::debug!(count = n, "lessons indexed");
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ctx.wake_indexer.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
