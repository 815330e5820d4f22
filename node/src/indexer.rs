//! Keeps the search index in step with the database: indexes lesson rows whose change
//! sequence is newer than the index's last commit, whether the change was local, from another
//! process (`youke import`) or synced from another tier.

use crate::lessons;
use crate::context::{NodeCtx, NodeError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_search::{LessonDoc, LessonIndex};

const BATCH: u64 = 2000;
/// The index's directory in the data directory.
pub const INDEX_DIR: &str = "search-index";
/// How often the database is checked for changes made by other processes.
const POLL: Duration = Duration::from_millis(300);

fn to_doc(store: &crate::store::Store, l: &lessons::Lesson) -> LessonDoc {
    let cues = match &l.subtitles {
        None => Vec::new(),
        Some(_) => store
            .read(|c| lessons::subtitles_of(c, &l.id))
            .ok()
            .flatten()
            .and_then(|(srt, _)| youke_media::srt::parse(srt.as_bytes()).ok())
            .map(|cues| cues.into_iter().map(|c| (c.start_ms, c.text.replace('\n', " "))).collect())
            .unwrap_or_default(),
    };
    // The course video standard, as a facet: fail when any rule fails.
    let report = l.compliance.as_ref().and_then(|c| c.parse());
    let compliance = match report.as_ref().and_then(|c| c.get("rules")).and_then(|r| r.as_array()) {
        None => "unchecked",
        Some(rules) if rules.iter().any(|r| r.get("verdict").and_then(|v| v.as_str()) == Some("fail")) => "fail",
        Some(_) => "pass",
    };
    LessonDoc {
        cues,
        id: l.id.clone(),
        title: l.title.clone(),
        teacher: l.teacher.clone(),
        school: l.origin_name.clone(),
        subject: l.subject.clone(),
        grade: l.grade.clone(),
        textbook_chapter: l.textbook_chapter.clone(),
        knowledge_points: l.knowledge_points.clone(),
        tags: l.tags.clone(),
        description: l.description.clone(),
        origin_tier: l.origin_tier.clone(),
        compliance: compliance.to_string(),
        created_at_ms: l.created_at,
        views: l.views.max(0) as u64,
        rating_avg: l.rating_avg.unwrap_or(0.0),
        rating_count: l.rating_count,
    }
}

/// Indexes one batch of changes; returns how many lessons it indexed.
pub fn index_pending(ctx: &NodeCtx, index: &LessonIndex) -> Result<usize, NodeError> {
    let mut from = index.indexed_seq();
    let db_seq: u64 = ctx.store.read(|c| {
        Ok::<_, NodeError>(crate::store::newest_seq(c)?)
    })?;
    if from > db_seq {
        tracing::warn!(index_seq = from, db_seq, "search index is ahead of the database (restored backup?); rebuilding");
        index.clear()?;
        index.commit(0)?;
        from = 0;
    }
    let changed = ctx.store.read(|c| lessons::changed_since(c, from, BATCH))?;
    let Some(last) = changed.last().map(|(_, s)| *s) else { return Ok(0) };
    // Lessons not listed here (awaiting review, taken down) are not searchable.
    let docs: Vec<LessonDoc> = changed.iter().filter(|(l, _)| l.listed).map(|(l, _)| to_doc(&ctx.store, l)).collect();
    for (l, _) in changed.iter().filter(|(l, _)| !l.listed) {
        index.delete(&l.id)?;
    }
    index.upsert(&docs)?;
    index.commit(last)?;
    Ok(changed.len())
}

/// Rebuilds the search index of the node in `data_dir` from its database, reporting
/// (lessons done, lessons in all) as it goes; returns the number indexed. The new index is built
/// beside the old one and swapped in when complete: killed midway, the old index stays (and the
/// half-built one is removed by the next rebuild). The node must not be running.
pub fn rebuild(ctx: &NodeCtx, data_dir: &std::path::Path, mut progress: impl FnMut(u64, u64)) -> Result<u64, NodeError> {
    let dir = data_dir.join(INDEX_DIR);
    let fresh = data_dir.join(format!("{INDEX_DIR}.rebuild"));
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|source| NodeError::DataDir { path: fresh.clone(), source })?;
    }
    let total: u64 = ctx.store.read(lessons::count)?;
    let index = LessonIndex::open(&fresh)?;
    let (mut from, mut done) = (0u64, 0u64);
    progress(0, total);
    loop {
        let changed = ctx.store.read(|c| lessons::changed_since(c, from, BATCH))?;
        let Some(last) = changed.last().map(|(_, s)| *s) else { break };
        index.add_new(changed.iter().filter(|(l, _)| l.listed).map(|(l, _)| to_doc(&ctx.store, l)))?;
        from = last;
        done += changed.len() as u64;
        progress(done, total.max(done));
    }
    index.commit(from)?;
    index.wait_merges()?;
    drop(index);
    // Swap: the old index goes only once the new one is complete and durable.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
    }
    std::fs::rename(&fresh, &dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
    // The rename is durable once the directory is synced (a lost rename only means another rebuild).
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(|source| NodeError::DataDir { path: data_dir.to_path_buf(), source })?;
    Ok(done)
}

pub async fn run(ctx: Arc<NodeCtx>, index: Arc<LessonIndex>, cancel: CancellationToken) {
    loop {
        let (c, i) = (Arc::clone(&ctx), Arc::clone(&index));
        let n = match tokio::task::spawn_blocking(move || index_pending(&c, &i)).await {
            Ok(Ok(0)) => {
                ctx.index_current.store(true, std::sync::atomic::Ordering::Release);
                0
            }
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
