//! Import: a recording file becomes a lesson. The file is probed first (not media: clear error,
//! nothing stored), copied into the blob store (verified by hash before it is visible), then
//! the lesson document and row are written in one transaction.

use crate::lessons::{self, ImportMeta, Lesson, MediaRef, NewLesson};
use crate::context::{NodeCtx, NodeError};
use std::path::Path;

/// Imports one file. `progress(done, total)` reports bytes copied.
pub fn import_file(ctx: &NodeCtx, path: &Path, meta: &ImportMeta, mut progress: impl FnMut(u64, u64)) -> Result<Lesson, NodeError> {
    let probe = youke_media::probe(path)?;
    let limit = ctx.config.limits.max_blob_bytes;
    if probe.size_bytes > limit {
        return Err(NodeError::Invalid(format!(
            "{} is {} bytes, more than the limit of {limit} bytes (limits.max_blob_bytes)",
            path.display(),
            probe.size_bytes
        )));
    }
    let total = probe.size_bytes;
    let (hash, size) = ctx.blobs.put_file(path, |done| progress(done, total))?;
    let original_name = meta.original_name.clone().unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "未命名课程".into());
    let probe_json = serde_json::to_string(&probe).map_err(|e| NodeError::Invalid(e.to_string()))?;
    // The course video standard, judged on the probe at once; the SNR estimate and subtitles
    // come later and replace the report.
    let report = youke_media::standard::check(&youke_media::standard::Facts { probe: Some(&probe), ..Default::default() });
    let clean = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or_default().to_string();
    let new = NewLesson {
        title: meta.title.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).unwrap_or(stem),
        teacher: clean(&meta.teacher),
        grade: clean(&meta.grade),
        subject: clean(&meta.subject),
        knowledge_points: meta.knowledge_points.iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect(),
        original_name,
        media: Some(MediaRef { hash: hash.to_hex(), size, mime: probe.mime().to_string() }),
        probe_json,
        compliance: report.to_compact(),
        // A school that transcodes makes the ladder; the tiers above wait for it.
        ladder_expected: ctx.config.media.transcode,
        ..NewLesson::default()
    };
    let id = uuid::Uuid::new_v4().to_string();
    let lesson = ctx.store.write(|tx| -> Result<Lesson, NodeError> {
        crate::blob_index::add(tx, &hash, size)?;
        let mut doc = lessons::new_document(&ctx.writer, &id, &new)?;
        let mut lesson = lessons::save(tx, &ctx.writer, &mut doc)?;
        crate::media_jobs::enqueue(tx, &hash.to_hex(), Some(&id))?;
        // The same recording imported before (as another lesson) and transcoded: its ladder.
        for other in lessons::ids_with_media(tx, &hash.to_hex())?.into_iter().filter(|other| *other != id) {
            if let Some(ladder) = lessons::get(tx, &other)?.and_then(|l| l.ladder) {
                lesson = lessons::set_ladder(tx, &ctx.writer, &id, &ladder)?.unwrap_or(lesson);
                break;
            }
        }
        Ok(lesson)
    })?;
    ctx.changed();
    ctx.wake_media.notify_one();
    tracing::info!(id = %lesson.id, title = %lesson.title, hash = %hash, size, "lesson imported");
    Ok(lesson)
}

/// Attaches SRT subtitles to a lesson; `language` (zh or en) is the lecture's, else guessed
/// from its subject.
pub fn attach_subtitles(ctx: &NodeCtx, id: &str, srt: &[u8], language: Option<&str>) -> Result<Lesson, NodeError> {
    if let Some(l) = language
        && l != "zh"
        && l != "en"
    {
        return Err(NodeError::Invalid(format!("unknown language {l:?}: expected zh or en")));
    }
    let lesson = ctx
        .store
        .write(|tx| {
            let subject = lessons::get(tx, id)?.map(|l| l.subject).unwrap_or_default();
            lessons::attach_subtitles(tx, &ctx.writer, id, srt, lessons::language_of(&subject, language)).map_err(NodeError::from)
        })?
        .ok_or_else(|| NodeError::NoSuchLesson(id.to_string()))?;
    ctx.changed();
    Ok(lesson)
}

/// The SRT beside a recording (same name, `.srt`), as recording software leaves it.
pub fn sibling_srt(path: &Path) -> Option<std::path::PathBuf> {
    let srt = path.with_extension("srt");
    srt.is_file().then_some(srt)
}

/// Shares a lesson up to `level` (or back down). Returns the updated lesson.
pub fn share(ctx: &NodeCtx, id: &str, level: youke_federation::Tier) -> Result<Lesson, NodeError> {
    if level < ctx.writer.tier {
        return Err(NodeError::Invalid(format!(
            "a {} node shares lessons at its own tier or above, not at {level}",
            ctx.writer.tier
        )));
    }
    let lesson = ctx
        .store
        .write(|tx| lessons::set_share_level(tx, &ctx.writer, id, level).map_err(NodeError::from))?
        .ok_or_else(|| NodeError::NoSuchLesson(id.to_string()))?;
    ctx.changed();
    Ok(lesson)
}
