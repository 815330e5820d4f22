//! Ingest paths that end in the import pipeline: a watched import folder (recording hosts copy
//! finished recordings into it), lesson fields from a JSON sidecar or from the file name by a
//! pattern the admin configures, and the quarantine for files that cannot be imported.
//!
//! A file in the watched folder is imported once it is complete: its size and modification
//! time have not changed for [`STABLE_FOR`], and its name is not a temporary one (`.part`,
//! `.tmp`, `~`, hidden). Imported files move to `imported/`, refused ones to `quarantine/` with
//! the reason recorded in the database (`youke quarantine`, `GET /api/v1/quarantine`); the node
//! keeps serving either way.

use crate::import::{import_file, sibling_srt};
use crate::lessons::ImportMeta;
pub use crate::name_pattern::NamePattern;
use crate::context::{NodeCtx, NodeError};
use crate::store::{StoreError, now_ms};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// How long a file must stay unchanged before it is taken as complete.
pub const STABLE_FOR: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_secs(1);
/// Largest sidecar read.
const MAX_SIDECAR: u64 = 64 * 1024;
const MEDIA_EXTENSIONS: [&str; 10] = ["mp4", "mov", "mkv", "ts", "m2ts", "flv", "avi", "mpg", "mpeg", "m4v"];

/// Lesson fields in a sidecar `<recording>.json`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sidecar {
    pub title: Option<String>,
    pub teacher: Option<String>,
    pub grade: Option<String>,
    pub subject: Option<String>,
    pub knowledge_points: Vec<String>,
}

/// Parses a sidecar's JSON.
pub fn parse_sidecar(bytes: &[u8]) -> Result<ImportMeta, String> {
    let s: Sidecar = serde_json::from_slice(bytes).map_err(|e| format!("the sidecar is not valid: {e}"))?;
    let too_long = [&s.title, &s.teacher, &s.grade, &s.subject].iter().any(|f| f.as_ref().is_some_and(|v| v.len() > 1024))
        || s.knowledge_points.len() > 64
        || s.knowledge_points.iter().any(|k| k.len() > 256);
    if too_long {
        return Err("the sidecar has a field that is too long".into());
    }
    Ok(ImportMeta { title: s.title, teacher: s.teacher, grade: s.grade, subject: s.subject, knowledge_points: s.knowledge_points, original_name: None })
}

/// The fuzz target of the sidecar and file-name parsers (`fuzz/fuzz_targets/ingest.rs`).
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    let _ = parse_sidecar(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let (pattern, name) = text.split_once('\n').unwrap_or((text, text));
        if let Ok(p) = pattern.parse::<NamePattern>() {
            let _ = p.parse(name);
        }
    }
}

/// The lesson fields for a recording: its sidecar if there is one, else the file-name
/// pattern, else nothing (the title then comes from the file name).
pub fn meta_for(path: &Path, pattern: Option<&NamePattern>) -> Result<ImportMeta, String> {
    let sidecar = path.with_extension("json");
    if let Ok(m) = std::fs::metadata(&sidecar) {
        if m.len() > MAX_SIDECAR {
            return Err(format!("the sidecar {} is larger than {MAX_SIDECAR} bytes", sidecar.display()));
        }
        let bytes = std::fs::read(&sidecar).map_err(|e| format!("cannot read the sidecar {}: {e}", sidecar.display()))?;
        return parse_sidecar(&bytes);
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(pattern.and_then(|p| p.parse(&stem)).unwrap_or_default())
}

/// A file that could not be imported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Quarantined {
    pub id: i64,
    pub name: String,
    /// Where it is kept now.
    pub path: String,
    pub reason: String,
    pub at: i64,
}

pub fn quarantined(conn: &Connection) -> Result<Vec<Quarantined>, StoreError> {
    let mut st = conn.prepare("SELECT id, name, path, reason, at FROM quarantine ORDER BY id DESC LIMIT 500")?;
    let rows = st.query_map([], |r| Ok(Quarantined { id: r.get(0)?, name: r.get(1)?, path: r.get(2)?, reason: r.get(3)?, at: r.get(4)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A file name as it may be stored and shown: control characters and the bidirectional
/// formatting characters (U+202E before `4pm.exe` shows it as `exe.mp4`) become `_`.
pub fn plain_name(name: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    name.chars().map(|c| if c.is_control() || bidi(c) { '_' } else { c }).collect()
}

/// Moves a refused file (and its sidecar and subtitles) to `quarantine/` and records why.
/// The quarantine keeps at most `limits.quarantine_files` files and `limits.quarantine_bytes`
/// bytes: the oldest beyond are deleted (the newest is always kept).
pub fn quarantine(ctx: &NodeCtx, root: &Path, path: &Path, reason: &str) -> Result<PathBuf, NodeError> {
    let dest = move_aside(root, "quarantine", path)?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    let limits = &ctx.config.limits;
    let dropped = ctx.store.write(|tx| {
        tx.execute(
            "INSERT INTO quarantine (name, path, reason, at, size) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, dest.to_string_lossy(), reason, now_ms(), i64::try_from(size).unwrap_or(i64::MAX)],
        )?;
        over_the_cap(tx, limits.quarantine_files, limits.quarantine_bytes)
    })?;
    tracing::warn!(file = %name, %reason, quarantine = %dest.display(), "recording quarantined");
    // Deleted once their rows are gone: a crash in between leaves a file, not a dangling row.
    for old in dropped {
        let old = PathBuf::from(old);
        for p in [old.clone(), old.with_extension("json"), old.with_extension("srt")] {
            let _ = std::fs::remove_file(p);
        }
        tracing::info!(file = %old.display(), "the quarantine is full: its oldest file was deleted");
    }
    Ok(dest)
}

/// Removes the rows of the oldest quarantined files beyond the caps (never the newest);
/// returns their paths.
fn over_the_cap(tx: &rusqlite::Transaction<'_>, max_files: u64, max_bytes: u64) -> Result<Vec<String>, StoreError> {
    let mut st = tx.prepare("SELECT id, path, size FROM quarantine ORDER BY id DESC")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?.collect::<Result<Vec<_>, _>>()?;
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut dropped = Vec::new();
    for (i, (id, path, size)) in rows.into_iter().enumerate() {
        files += 1;
        bytes = bytes.saturating_add(u64::try_from(size).unwrap_or(0));
        if i > 0 && (files > max_files || bytes > max_bytes) {
            tx.execute("DELETE FROM quarantine WHERE id = ?1", [id])?;
            dropped.push(path);
        }
    }
    Ok(dropped)
}

/// Moves `path` (and its `.json` and `.srt` companions) into `root/<dir>/`, keeping the name
/// unless taken.
fn move_aside(root: &Path, dir: &str, path: &Path) -> Result<PathBuf, NodeError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| NodeError::DataDir { path: p, source }
    };
    let target_dir = root.join(dir);
    std::fs::create_dir_all(&target_dir).map_err(io(&target_dir))?;
    let name = plain_name(&path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let mut dest = target_dir.join(&name);
    let mut n = 1;
    while dest.exists() {
        let mut alt = std::ffi::OsString::from(format!("{n}-"));
        alt.push(&name);
        dest = target_dir.join(alt);
        n += 1;
    }
    std::fs::rename(path, &dest).map_err(io(path))?;
    for ext in ["json", "srt"] {
        let companion = path.with_extension(ext);
        if companion.is_file() {
            let _ = std::fs::rename(&companion, dest.with_extension(ext));
        }
    }
    Ok(dest)
}

fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    if name.starts_with('.') || name.starts_with('~') || name.ends_with('~') {
        return false;
    }
    let lower = name.to_lowercase();
    if [".part", ".tmp", ".crdownload", ".partial", ".uploading"].iter().any(|t| lower.ends_with(t)) {
        return false;
    }
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| MEDIA_EXTENSIONS.contains(&e.to_lowercase().as_str()))
}

/// What the watcher last saw of a file.
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

/// Watches `dir` (and its subfolders except `imported/` and `quarantine/`) until `cancel`
/// fires, importing each recording once it is complete.
pub async fn watch(ctx: Arc<NodeCtx>, dir: PathBuf, pattern: Option<NamePattern>, cancel: CancellationToken) {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "cannot create the import folder; not watching it");
        return;
    }
    tracing::info!(dir = %dir.display(), "watching the import folder");
    let mut seen: HashMap<PathBuf, Seen> = HashMap::new();
    loop {
        let mut present = Vec::new();
        collect(&dir, &dir, &mut present);
        seen.retain(|p, _| present.contains(p));
        let mut ready = Vec::new();
        for path in present {
            let Ok(m) = std::fs::metadata(&path) else { continue };
            let (len, modified) = (m.len(), m.modified().ok());
            let entry = seen.entry(path.clone()).or_insert(Seen { len, modified, since: Instant::now() });
            if entry.len != len || entry.modified != modified {
                *entry = Seen { len, modified, since: Instant::now() };
            } else if entry.since.elapsed() >= STABLE_FOR {
                ready.push(path);
            }
        }
        for path in ready {
            seen.remove(&path);
            let (c, d, p) = (Arc::clone(&ctx), dir.clone(), pattern.clone());
            let result = tokio::task::spawn_blocking(move || ingest_one(&c, &d, &path, p.as_ref())).await;
            if let Ok(Err(e)) | Err(e) = result.map_err(|e| NodeError::Invalid(e.to_string())) {
                tracing::error!(error = %e, "the import folder could not be processed");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            let skip = dir == root && path.file_name().is_some_and(|n| n == "imported" || n == "quarantine");
            if !skip && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                collect(root, &path, out);
            }
        } else if is_candidate(&path) {
            out.push(path);
        }
    }
}

/// Imports one complete file from the folder: to `imported/` when it worked, to
/// `quarantine/` with the reason when it did not.
pub fn ingest_one(ctx: &NodeCtx, root: &Path, path: &Path, pattern: Option<&NamePattern>) -> Result<(), NodeError> {
    let meta = match meta_for(path, pattern) {
        Ok(m) => m,
        Err(reason) => {
            quarantine(ctx, root, path, &reason)?;
            return Ok(());
        }
    };
    match import_file(ctx, path, &meta, |_, _| {}) {
        Ok(lesson) => {
            if let Some(srt) = sibling_srt(path) {
                let attached = std::fs::read(&srt).map_err(|e| NodeError::Invalid(e.to_string())).and_then(|b| crate::import::attach_subtitles(ctx, &lesson.id, &b, None));
                if let Err(e) = attached {
                    tracing::warn!(file = %srt.display(), error = %e, "subtitles not attached");
                }
            }
            let dest = move_aside(root, "imported", path)?;
            tracing::info!(id = %lesson.id, title = %lesson.title, file = %dest.display(), "recording imported from the folder");
            Ok(())
        }
        Err(e) => {
            quarantine(ctx, root, path, &e.to_string())?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_seed_corpus_replays() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ingest");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("the seed corpus is committed") {
            fuzz_parse(&std::fs::read(e.expect("entry").path()).expect("read"));
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn name_patterns_fill_lesson_fields() {
        let p: NamePattern = "{grade}_{subject}_{teacher}_{title}".parse().unwrap();
        let m = p.parse("八年级_数学_王芳_勾股定理 第一课时").unwrap();
        assert_eq!(m.grade.as_deref(), Some("八年级"));
        assert_eq!(m.subject.as_deref(), Some("数学"));
        assert_eq!(m.teacher.as_deref(), Some("王芳"));
        assert_eq!(m.title.as_deref(), Some("勾股定理 第一课时"), "the last field takes the rest");
        assert!(p.parse("八年级_数学").is_none(), "too few parts");
        let p: NamePattern = "[{_}] {title} - {knowledge}".parse().unwrap();
        let m = p.parse("[教室3] 牛顿第一定律 - 惯性、力").unwrap();
        assert_eq!(m.knowledge_points, ["惯性", "力"]);
        for bad in ["{title}{teacher}", "{titel}_x", "plain", "{title", ""] {
            assert!(bad.parse::<NamePattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sidecars_are_strict_json() {
        let m = parse_sidecar("{\"title\":\"勾股定理\",\"teacher\":\"王芳\",\"knowledge_points\":[\"直角三角形\"]}".as_bytes()).unwrap();
        assert_eq!((m.title.as_deref(), m.knowledge_points.len()), (Some("勾股定理"), 1));
        assert!(parse_sidecar(b"{\"titel\":\"x\"}").unwrap_err().contains("titel"));
        assert!(parse_sidecar(b"not json").is_err());
        assert!(parse_sidecar(format!("{{\"title\":\"{}\"}}", "x".repeat(2000)).as_bytes()).is_err());
    }

    #[test]
    fn temporary_and_foreign_files_are_not_candidates() {
        for ok in ["a.mp4", "课.MP4", "x.ts", "录播 1.mkv"] {
            assert!(is_candidate(Path::new(ok)), "{ok}");
        }
        for no in [".a.mp4", "a.mp4.part", "a.mp4.tmp", "~a.mp4", "a.mp4~", "notes.txt", "a.srt", "a.json", "a"] {
            assert!(!is_candidate(Path::new(no)), "{no}");
        }
    }
}
