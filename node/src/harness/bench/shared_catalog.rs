//! Part (c) of `youke bench sharing`: a school's copy of the province's shared catalog.
//!
//! The model of every document is a lesson made the real way in part (a): imported and probed
//! (its compliance report and probe in the document), transcoded with its ladder recorded,
//! shared to 全省 and approved there; to it are added what a lesson collects on its way and in
//! use (arrival at the city and the province, two ratings, a comment). Each catalog lesson is a
//! fork of that document with its own id, curriculum metadata (`youke_search::corpus`) and media
//! hashes, so its history, and its size, is a real lesson's.
//!
//! Measured: the time until a new school under the city holds every lesson, and until its
//! search index has them all; the disk its data directory then takes (database, search index);
//! and a downward catch-up: while the school is offline the province changes `changes` lessons
//! (one view counted in each), then the time for the school to hold them after it returns, and
//! the document bytes the city sent it against the raw size of the changes.

use super::sharing::start;
use super::write_lessons;
use crate::context::NodeError;
use crate::documents::{self, child};
use crate::lessons::{self, LESSONS, LessonEdit};
use crate::services::RunningNode;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;
use youke_federation::counters::LinkCounters;

#[derive(Debug, Clone)]
pub struct CatalogReport {
    pub lessons: u64,
    /// The model document's saved size.
    pub doc_bytes: u64,
    /// Writing the catalog at the province (set-up).
    pub write: Duration,
    /// From the end of writing until the city held and had indexed every lesson.
    pub city: Duration,
    /// A new school: until it held every lesson, and until its search index had them.
    pub receive: Duration,
    pub searchable: Duration,
    /// The new school's data directory afterwards: all, the database files, the search index.
    pub disk_total: u64,
    pub disk_db: u64,
    pub disk_index: u64,
    /// The downward catch-up.
    pub changes: u64,
    pub catch_up: Duration,
    pub sent_bytes: u64,
    pub raw_bytes: u64,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid(format!("benchmark: {e}"))
}

/// A random 64-hex-digit name, as a blob's.
fn hash_like() -> String {
    blake3::hash(uuid::Uuid::new_v4().as_bytes()).to_hex().to_string()
}

/// The model lesson: `id` as part (a) made it, with arrival stamps, two ratings and a comment.
fn model(province: &RunningNode, id: &str) -> Result<AutoCommit, NodeError> {
    let (ctx, w) = (&province.ctx, &province.ctx.writer);
    ctx.store.write(|tx| -> Result<(), NodeError> {
        lessons::edit(tx, w, id, &LessonEdit::Rate { user: "张老师".into(), score: 5 })?;
        lessons::edit(tx, w, id, &LessonEdit::Rate { user: "市教研员".into(), score: 4 })?;
        let text = "导入环节设计巧妙，学生参与度高；板书清楚，建议课堂小结再留一点时间。".into();
        lessons::edit(tx, w, id, &LessonEdit::Comment { author: "李老师".into(), text })?;
        Ok(())
    })?;
    let mut doc = ctx.store.read(|c| lessons::load_document(c, w, id))?.ok_or_else(|| err("the model lesson is gone"))?;
    let arrived = doc.put_object(ROOT, "arrived", ObjType::Map).map_err(err)?;
    for (tier, node) in [("city", "石家庄市教育局"), ("province", "河北省优课中心")] {
        let o = doc.put_object(&arrived, tier, ObjType::Map).map_err(err)?;
        doc.put(&o, "node", node).map_err(err)?;
        doc.put(&o, "at", crate::store::now_ms()).map_err(err)?;
    }
    doc.commit();
    Ok(doc)
}

/// Lesson `i` of the catalog: a fork of the model with its own identity.
fn lesson_from(model: &mut AutoCommit, i: u64) -> Result<(String, AutoCommit), NodeError> {
    let (meta, _) = youke_search::corpus::lesson(21, i as usize);
    let id = uuid::Uuid::new_v4().to_string();
    let mut doc = model.fork();
    let e = |e: automerge::AutomergeError| err(e);
    doc.put(ROOT, "id", id.as_str()).map_err(e)?;
    doc.put(ROOT, "title", meta.title.as_str()).map_err(e)?;
    doc.put(ROOT, "teacher", meta.teacher.as_str()).map_err(e)?;
    doc.put(ROOT, "subject", meta.subject.as_str()).map_err(e)?;
    doc.put(ROOT, "grade", meta.grade.as_str()).map_err(e)?;
    doc.put(ROOT, "textbook_chapter", meta.textbook_chapter.as_str()).map_err(e)?;
    doc.put(ROOT, "description", meta.description.as_str()).map_err(e)?;
    doc.put(ROOT, "origin_name", meta.school.as_str()).map_err(e)?;
    documents::put_text_list(&mut doc, &ROOT, "knowledge_points", &meta.knowledge_points)?;
    if let Some(media) = child(&doc, &ROOT, "media") {
        for part in ["original", "ladder"] {
            if let Some(o) = child(&doc, &media, part) {
                doc.put(&o, "hash", hash_like()).map_err(e)?;
            }
        }
    }
    Ok((id, doc))
}

async fn wait(what: &str, limit: Duration, cancel: &CancellationToken, mut done: impl FnMut() -> Result<bool, NodeError>) -> Result<(), NodeError> {
    let deadline = Instant::now() + limit;
    while !done()? {
        if Instant::now() > deadline || cancel.is_cancelled() {
            return Err(err(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn holds(n: &RunningNode, want: u64) -> Result<bool, NodeError> {
    Ok(n.ctx.store.read(lessons::count)? >= want)
}

fn indexed(n: &RunningNode) -> Result<bool, NodeError> {
    Ok(n.index.indexed_seq() >= n.ctx.store.read(lessons::newest_lesson_seq)?)
}

/// Every lesson of `ids` shows at least one view at `n`.
fn viewed(n: &RunningNode, ids: &[String]) -> Result<bool, NodeError> {
    n.ctx.store.read(|c| -> Result<bool, NodeError> {
        for id in ids {
            if lessons::get(c, id)?.is_none_or(|l| l.views < 1) {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

pub(super) async fn shared_catalog(
    dir: &Path,
    province: &RunningNode,
    city: &RunningNode,
    model_id: &str,
    n: u64,
    changes: u64,
    cancel: &CancellationToken,
) -> Result<CatalogReport, NodeError> {
    let mut model = model(province, model_id)?;
    let doc_bytes = model.save().len() as u64;
    let before = province.ctx.store.read(lessons::count)?;

    // The catalog, written at the (running) province in large transactions.
    let started = Instant::now();
    let ids = write_lessons(&province.ctx, n, "共享目录（省）", |i| lesson_from(&mut model, i))?;
    let write = started.elapsed();

    // The city receives and indexes it (the province indexes meanwhile).
    let started = Instant::now();
    eprintln!("city: receiving and indexing {n} lessons…");
    let want = before + n;
    wait("the city's copy of the catalog", Duration::from_secs(7200), cancel, || Ok(holds(city, want)? && indexed(city)? && indexed(province)?)).await?;
    let city_time = started.elapsed();

    // A new school joins the city.
    eprintln!("new school: receiving {n} lessons…");
    let started = Instant::now();
    let school = start(dir, "school-new", Tier::School, "新加入学校", Some(city), None, cancel).await?;
    wait("the new school's copy", Duration::from_secs(7200), cancel, || holds(&school, want)).await?;
    let receive = started.elapsed();
    wait("the new school's search index", Duration::from_secs(7200), cancel, || indexed(&school)).await?;
    let searchable = started.elapsed();
    school.shutdown().await;
    let school_dir = dir.join("school-new");
    let disk_total = super::dir_size(&school_dir);
    let disk_index = super::dir_size(&school_dir.join(crate::indexer::INDEX_DIR));
    let disk_db = ["", "-wal", "-shm"].iter().map(|s| std::fs::metadata(school_dir.join(format!("{}{s}", crate::context::DB_FILE))).map_or(0, |m| m.len())).sum();

    // Downward catch-up: the school offline, the province counts a view in `changes` lessons.
    let changed: Vec<String> = ids.iter().take(changes as usize).cloned().collect();
    let mut raw_bytes = 0u64;
    let w = &province.ctx.writer;
    province.ctx.store.write(|tx| -> Result<(), NodeError> {
        for id in &changed {
            let Some(mut doc) = lessons::load_document(tx, w, id)? else { continue };
            let heads = doc.get_heads();
            doc.increment(ROOT, "views", 1).map_err(err)?;
            raw_bytes += doc.get_changes(&heads).iter().map(|c| c.raw_bytes().len() as u64).sum::<u64>();
            documents::commit(tx, w, &LESSONS, &mut doc)?;
        }
        Ok(())
    })?;
    wait("the changes at the city", Duration::from_secs(600), cancel, || viewed(city, &changed)).await?;
    let sent_before = LinkCounters::get(&city.ctx.counters.doc_bytes_sent);
    let started = Instant::now();
    let school = start(dir, "school-new", Tier::School, "新加入学校", Some(city), None, cancel).await?;
    wait("the changes at the new school", Duration::from_secs(600), cancel, || viewed(&school, &changed)).await?;
    let catch_up = started.elapsed();
    let sent_bytes = LinkCounters::get(&city.ctx.counters.doc_bytes_sent) - sent_before;
    school.shutdown().await;

    Ok(CatalogReport {
        lessons: n,
        doc_bytes,
        write,
        city: city_time,
        receive,
        searchable,
        disk_total,
        disk_db,
        disk_index,
        changes: changed.len() as u64,
        catch_up,
        sent_bytes,
        raw_bytes,
    })
}

impl CatalogReport {
    pub fn markdown(&self) -> String {
        let mb = |b: u64| b as f64 / 1e6;
        let s = Duration::as_secs_f64;
        format!(
            "| shared catalog of {n} lessons: one lesson's document (model) | {doc} B |\n\
             | writing it at the province (set-up) / the city holding and indexing it | {w:.0} s / {c:.0} s |\n\
             | a new school: holding every lesson / searching them all | {r:.1} s / {q:.1} s |\n\
             | the new school's data directory: all (database, search index) | {t:.0} MB ({d:.0} MB, {i:.0} MB) |\n\
             | downward catch-up of {ch} changes made while the school was offline: time / bytes the city sent / raw change bytes | {cu:.2} s / {sent} B / {raw} B |\n",
            n = self.lessons,
            doc = self.doc_bytes,
            w = s(&self.write),
            c = s(&self.city),
            r = s(&self.receive),
            q = s(&self.searchable),
            t = mb(self.disk_total),
            d = mb(self.disk_db),
            i = mb(self.disk_index),
            ch = self.changes,
            cu = s(&self.catch_up),
            sent = self.sent_bytes,
            raw = self.raw_bytes,
        )
    }
}
