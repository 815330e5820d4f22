//! Background media jobs: every recording this node holds is transcoded to an HLS ladder (with
//! its poster, thumbnail sprite, SD version when over 1 GB, and the audio SNR estimate).
//!
//! Jobs are rows of `media_jobs`, one per source blob. One runs at a time, in a child process
//! (`youke media-job`) at lowered priority (`nice -n 10`): the portal stays responsive on a
//! 2-core box, and a hostile file that crashes FFmpeg takes down only the child. The child
//! prints its progress; the parent records it, kills the child on cancel, and on success
//! records the output and, for lessons made here, updates the compliance report (SNR, SD
//! version). A job that was running when the node stopped is queued again at start; the
//! transcode starts over (its partial output is discarded).

use crate::lessons;
use crate::context::{NodeCtx, NodeError};
use crate::store::{StoreError, now_ms};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;
use youke_media::hls::HlsOutput;

/// What `youke media-job` prints last on success.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    pub hls: HlsOutput,
    pub snr_db: Option<f64>,
}

/// The worker: one job, in a process of its own (`youke media-job`, started by [`run`] at
/// lowered priority). It writes `progress P` lines (P from 0 to 1) while it transcodes, then
/// `done {JobResult as JSON}`: the lines [`run`] reads.
pub fn worker(input: &Path, out: &Path, sd_mp4: bool, lines: &mut dyn std::io::Write) -> Result<(), NodeError> {
    let opts = youke_media::hls::HlsOptions { sd_mp4, ..Default::default() };
    // Nobody reading the lines (the node was killed) stops the job, as it stopped the job
    // before: an orphan must not go on writing into the ladder a new job is making.
    let orphaned = std::sync::atomic::AtomicBool::new(false);
    let mut last = -1.0f64;
    let mut failed = None;
    let transcoded = youke_media::hls::transcode(
        input,
        out,
        &opts,
        |p| {
            if p - last >= 0.01 || p >= 1.0 {
                last = p;
                if let Err(e) = writeln!(lines, "progress {p:.3}").and_then(|()| lines.flush()) {
                    orphaned.store(true, std::sync::atomic::Ordering::Relaxed);
                    failed.get_or_insert(e);
                }
            }
        },
        &orphaned,
    );
    if let Some(e) = failed {
        return Err(NodeError::Invalid(format!("the media job cannot report its progress: {e}")));
    }
    let hls = transcoded?;
    let snr_db = youke_media::analyze::snr_db(input).unwrap_or(None);
    let result = serde_json::to_string(&JobResult { hls, snr_db }).map_err(|e| NodeError::Invalid(e.to_string()))?;
    writeln!(lines, "done {result}").and_then(|()| lines.flush()).map_err(|e| NodeError::Invalid(format!("the media job cannot report its result: {e}")))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobInfo {
    pub id: i64,
    pub hash: String,
    pub lesson_id: Option<String>,
    /// queued, running, done, failed or cancelled.
    pub state: String,
    pub progress: f64,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Packs the ladder made here for a lesson into one blob (a rendition pack) and records it in
/// the lesson's document: the ladder travels with the lesson, so no tier transcodes it again.
/// The pack is written beside the ladder, stored (hashed, fsynced, renamed) and then recorded,
/// so a crash leaves at most a temporary file, removed at the next pack.
/// Every lesson of that recording without a ladder gets this one (a recording imported twice is
/// transcoded and packed once).
fn pack_ladder(ctx: &NodeCtx, source_hash: &str, hls: &HlsOutput) -> Result<(), NodeError> {
    let dir = hls_dir(&ctx.data_dir, source_hash);
    let tmp = dir.with_extension("pack.tmp");
    let _ = std::fs::remove_file(&tmp);
    youke_media::pack::write(&dir, hls, &tmp)?;
    let stored = ctx.blobs.put_file(&tmp, |_| {});
    let _ = std::fs::remove_file(&tmp);
    let (hash, size) = stored?;
    let ladder = lessons::Ladder { hash: hash.to_hex(), size, hls: hls.clone() };
    let ids = ctx.store.write(|tx| -> Result<Vec<String>, NodeError> {
        crate::blob_index::add(tx, &hash, size)?;
        let mut ids = Vec::new();
        for id in lessons::ids_with_media(tx, source_hash)? {
            if lessons::get(tx, &id)?.is_some_and(|l| l.ladder.is_none()) {
                lessons::set_ladder(tx, &ctx.writer, &id, &ladder)?;
                ids.push(id);
            }
        }
        Ok(ids)
    })?;
    tracing::info!(lessons = ?ids, pack = %hash, size, "ladder packed to travel with the lesson");
    Ok(())
}

/// Whether a lesson's ladder is made elsewhere in the tree, or was (then it is not transcoded
/// here).
fn ladder_made_elsewhere(conn: &Connection, this_node: &str, lesson: Option<&str>) -> Result<bool, StoreError> {
    let Some(id) = lesson else { return Ok(false) };
    match lessons::get(conn, id) {
        Ok(l) => Ok(l.is_some_and(|l| l.ladder.is_some() || (l.ladder_expected && l.origin_node != this_node))),
        Err(crate::documents::DocError::Store(e)) => Err(e),
        // A row that does not read: transcode, as before ladders travelled.
        Err(_) => Ok(false),
    }
}

/// Where the ladder of a blob lives.
pub fn hls_dir(data_dir: &Path, hash: &str) -> PathBuf {
    data_dir.join("media").join("hls").join(hash)
}

/// Queues the transcode of a blob (once per blob).
pub fn enqueue(tx: &Transaction<'_>, hash: &str, lesson_id: Option<&str>) -> Result<(), StoreError> {
    let now = now_ms();
    tx.execute(
        "INSERT INTO media_jobs (hash, lesson_id, state, created_at, updated_at) VALUES (?1, ?2, 'queued', ?3, ?3)
         ON CONFLICT (hash) DO NOTHING",
        params![hash, lesson_id, now],
    )?;
    Ok(())
}

const COLUMNS: &str = "id, hash, lesson_id, state, progress, error, attempts, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobInfo> {
    Ok(JobInfo {
        id: r.get(0)?,
        hash: r.get(1)?,
        lesson_id: r.get(2)?,
        state: r.get(3)?,
        progress: r.get(4)?,
        error: r.get(5)?,
        attempts: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<JobInfo>, StoreError> {
    let mut st = conn.prepare(&format!("SELECT {COLUMNS} FROM media_jobs ORDER BY id DESC LIMIT 500"))?;
    let rows = st.query_map([], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<JobInfo>, StoreError> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM media_jobs WHERE id = ?1"), [id], row).optional()?)
}

/// Jobs per state, for status and metrics.
pub fn counts(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut st = conn.prepare("SELECT state, COUNT(*) FROM media_jobs GROUP BY state ORDER BY state")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The finished ladder of a blob, if any.
pub fn hls_of(conn: &Connection, hash: &str) -> Result<Option<HlsOutput>, StoreError> {
    let out: Option<String> = conn.prepare_cached("SELECT output FROM media_jobs WHERE hash = ?1 AND state = 'done'")?.query_row([hash], |r| r.get(0)).optional()?.flatten();
    Ok(out.and_then(|o| serde_json::from_str::<JobResult>(&o).ok()).map(|r| r.hls))
}

/// Cancels a queued or running job (a running child is killed within a second).
pub fn cancel(ctx: &NodeCtx, id: i64) -> Result<JobInfo, NodeError> {
    set_state(&ctx.store, id, &["queued", "running"], "cancelled", "only a queued or running job can be cancelled")
}

/// Queues a failed or cancelled job again.
pub fn retry(ctx: &NodeCtx, id: i64) -> Result<JobInfo, NodeError> {
    set_state(&ctx.store, id, &["failed", "cancelled"], "queued", "only a failed or cancelled job can be retried")
}

fn set_state(store: &crate::store::Store, id: i64, from: &[&str], to: &str, refusal: &str) -> Result<JobInfo, NodeError> {
    store.write(|tx| {
        let job = get(tx, id)?.ok_or_else(|| NodeError::Invalid(format!("no media job {id}")))?;
        if !from.contains(&job.state.as_str()) {
            return Err(NodeError::Invalid(format!("{refusal}; job {id} is {}", job.state)));
        }
        tx.execute("UPDATE media_jobs SET state = ?1, error = NULL, progress = 0, updated_at = ?2 WHERE id = ?3", params![to, now_ms(), id])?;
        Ok(get(tx, id)?.unwrap_or(job))
    })
}

/// The binary to run jobs with: `$YOUKE_BIN`, this executable if it is `youke`, or `youke`
/// beside the directory of this executable (tests run from `target/<profile>/deps/`).
fn worker_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("YOUKE_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    if exe.file_stem().is_some_and(|s| s == "youke") {
        return Some(exe);
    }
    let sibling = exe.parent()?.parent()?.join("youke");
    sibling.is_file().then_some(sibling)
}

/// Runs queued jobs one at a time until `cancel` fires.
pub async fn run(ctx: Arc<NodeCtx>, cancel: CancellationToken) {
    let c = Arc::clone(&ctx);
    let requeued = tokio::task::spawn_blocking(move || {
        c.store.write(|tx| tx.execute("UPDATE media_jobs SET state = 'queued', progress = 0 WHERE state = 'running'", []).map_err(StoreError::from))
    })
    .await;
    if let Ok(Ok(n)) = requeued
        && n > 0
    {
        tracing::info!(jobs = n, "media jobs interrupted by the last stop are queued again");
    }
    loop {
        let next = {
            let c = Arc::clone(&ctx);
            tokio::task::spawn_blocking(move || {
                c.store.write(|tx| -> Result<Option<JobInfo>, StoreError> {
                    loop {
                        let job = tx.query_row(&format!("SELECT {COLUMNS} FROM media_jobs WHERE state = 'queued' ORDER BY error IS NOT NULL, id LIMIT 1"), [], row).optional()?;
                        let Some(j) = job else { return Ok(None) };
                        // The ladder came with the lesson from the tier that made it.
                        if ladder_made_elsewhere(tx, &c.writer.node_id, j.lesson_id.as_deref())? {
                            tx.execute(
                                "UPDATE media_jobs SET state = 'cancelled', error = 'the ladder came with the lesson', updated_at = ?1 WHERE id = ?2",
                                params![now_ms(), j.id],
                            )?;
                            continue;
                        }
                        tx.execute("UPDATE media_jobs SET state = 'running', attempts = attempts + 1, progress = 0, updated_at = ?1 WHERE id = ?2", params![now_ms(), j.id])?;
                        return Ok(Some(j));
                    }
                })
            })
            .await
        };
        match next {
            Ok(Ok(Some(job))) => {
                let id = job.id;
                let outcome = run_job(&ctx, &job, &cancel).await;
                if cancel.is_cancelled() {
                    // The node is stopping: the job is queued again at the next start.
                    return;
                }
                let later = matches!(outcome, Outcome::Later(_));
                let c = Arc::clone(&ctx);
                match tokio::task::spawn_blocking(move || finish(&c, &job, outcome)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(job = id, error = %e, "cannot record the media job's result"),
                    Err(e) => tracing::warn!(job = id, error = %e, "cannot record the media job's result"),
                }
                if later {
                    // Its recording is out of reach for now (object storage down): wait before
                    // trying the queue again.
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                    }
                }
                continue;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read media jobs"),
            Err(e) => tracing::warn!(error = %e, "cannot read media jobs"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ctx.wake_media.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

enum Outcome {
    Done(JobResult),
    Failed(String),
    /// Could not start for a passing reason (the recording's object storage did not answer):
    /// queued again.
    Later(String),
    Cancelled,
}

/// How long the queue waits after a job had to be put back.
const RETRY_AFTER: Duration = Duration::from_secs(30);

async fn run_job(ctx: &Arc<NodeCtx>, job: &JobInfo, stop: &CancellationToken) -> Outcome {
    let Ok(hash) = job.hash.parse::<youke_federation::BlobHash>() else { return Outcome::Failed("bad blob hash".into()) };
    let Some(exe) = worker_exe() else { return Outcome::Failed("cannot find the youke binary to run media jobs with (set YOUKE_BIN)".into()) };
    // The transcoder reads a file: the stored one, or a verified copy from object storage
    // (deleted when the job ends).
    let blobs = ctx.blobs.clone();
    let copy = match tokio::task::spawn_blocking(move || blobs.local_copy(&hash)).await {
        Ok(Ok(Some(c))) => c,
        Ok(Ok(None)) => return Outcome::Failed("the recording is not on this node (yet)".into()),
        Ok(Err(e @ (youke_federation::blobs::BlobError::Object { .. } | youke_federation::blobs::BlobError::ObjectConfig { .. }))) => return Outcome::Later(e.to_string()),
        Ok(Err(e)) => return Outcome::Failed(e.to_string()),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let input = copy.path().to_path_buf();
    let size = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    let out = hls_dir(&ctx.data_dir, &job.hash);
    let mut cmd = if std::path::Path::new("/usr/bin/nice").is_file() {
        let mut c = tokio::process::Command::new("/usr/bin/nice");
        c.arg("-n").arg("10").arg(&exe);
        c
    } else {
        tokio::process::Command::new(&exe)
    };
    cmd.arg("media-job").arg("--input").arg(&input).arg("--out").arg(&out);
    if size > youke_media::standard::GB {
        cmd.arg("--sd-mp4");
    }
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    tracing::info!(job = job.id, hash = %job.hash, "media job started");
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot start {}: {e}", exe.display())),
    };
    let Some(stdout) = child.stdout.take() else { return Outcome::Failed("no output from the media job".into()) };
    let stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(e) = stderr {
            let mut lines = tokio::io::BufReader::new(e).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if text.len() < 4096 {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
        }
        text
    });
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut result: Option<JobResult> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut progress = 0.0f64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = child.kill().await;
                return Outcome::Cancelled;
            }
            line = lines.next_line() => match line {
                Ok(Some(l)) => {
                    if let Some(p) = l.strip_prefix("progress ").and_then(|p| p.trim().parse::<f64>().ok()) {
                        progress = p;
                    } else if let Some(json) = l.strip_prefix("done ") {
                        result = serde_json::from_str(json).ok();
                    }
                }
                _ => break,
            },
            _ = tick.tick() => {
                let (c, id) = (Arc::clone(ctx), job.id);
                let state = tokio::task::spawn_blocking(move || {
                    c.store.write(|tx| -> Result<Option<String>, StoreError> {
                        tx.execute("UPDATE media_jobs SET progress = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'running'", params![progress, now_ms(), id])?;
                        Ok(tx.query_row("SELECT state FROM media_jobs WHERE id = ?1", [id], |r| r.get(0)).optional()?)
                    })
                }).await;
                if matches!(state, Ok(Ok(Some(ref s))) if s == "cancelled") {
                    let _ = child.kill().await;
                    let _ = child.wait().await;
                    let _ = std::fs::remove_dir_all(youke_media::hls::partial_dir(&out));
                    return Outcome::Cancelled;
                }
            }
        }
    }
    let status = child.wait().await;
    let stderr = err_task.await.unwrap_or_default();
    match (status, result) {
        (Ok(s), Some(r)) if s.success() => Outcome::Done(r),
        (Ok(s), _) => {
            let why = stderr.lines().rev().find(|l| l.starts_with("error:")).map(|l| l.trim_start_matches("error:").trim().to_string());
            Outcome::Failed(why.unwrap_or_else(|| format!("the media job ended with {s}")))
        }
        (Err(e), _) => Outcome::Failed(e.to_string()),
    }
}

fn finish(ctx: &NodeCtx, job: &JobInfo, outcome: Outcome) -> Result<(), NodeError> {
    let now = now_ms();
    match outcome {
        Outcome::Cancelled => {
            tracing::info!(job = job.id, "media job cancelled");
            Ok(())
        }
        Outcome::Later(why) => {
            tracing::warn!(job = job.id, hash = %job.hash, error = %why, "media job put back: its recording is out of reach for now");
            ctx.store.write(|tx| {
                tx.execute("UPDATE media_jobs SET state = 'queued', error = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'running'", params![why, now, job.id])?;
                Ok(())
            })
        }
        Outcome::Failed(why) => {
            tracing::warn!(job = job.id, hash = %job.hash, error = %why, "media job failed");
            ctx.store.write(|tx| {
                tx.execute("UPDATE media_jobs SET state = 'failed', error = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'running'", params![why, now, job.id])?;
                Ok(())
            })
        }
        Outcome::Done(result) => {
            let json = serde_json::to_string(&result).map_err(|e| NodeError::Invalid(e.to_string()))?;
            ctx.store.write(|tx| -> Result<(), NodeError> {
                tx.execute(
                    "UPDATE media_jobs SET state = 'done', progress = 1, output = ?1, error = NULL, updated_at = ?2 WHERE id = ?3",
                    params![json, now, job.id],
                )?;
                // The lessons of this recording get their compliance report completed (SNR, SD
                // version).
                for id in lessons::ids_with_media(tx, &job.hash)? {
                    lessons::record_analysis(tx, &ctx.writer, &id, result.snr_db, result.hls.sd_mp4.as_ref().map(|r| (r.width, r.height)))?;
                }
                Ok(())
            })?;
            tracing::info!(job = job.id, hash = %job.hash, rungs = result.hls.renditions.len(), "media job done");
            if job.lesson_id.is_some() {
                pack_ladder(ctx, &job.hash, &result.hls)?;
            }
            ctx.changed();
            Ok(())
        }
    }
}
