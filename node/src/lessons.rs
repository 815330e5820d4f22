//! Lessons: each lesson is one automerge document (the source of truth, synced between tiers)
//! and one row in the `lessons` table (its materialized view, for queries), written together
//! in one transaction.
//!
//! Document layout, schema version 1 (root map):
//! `schema_version` (int), `kind` = "lesson", `id`, `title`, `teacher`, `grade`, `subject`,
//! `knowledge_points` (list of text), `origin_node`, `origin_name`, `share_level`
//! (school | city | province), `created_at` (ms), `original_name` (file name as imported),
//! `media` → `original` → {`hash`, `size`, `mime`}, `probe_json` (the probe as JSON text,
//! written once by the origin).

use crate::store::{StoreError, next_seq, now_ms};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use youke_federation::Tier;
use youke_federation::tier::goes_up;

pub const KIND_LESSON: &str = "lesson";
pub const LESSON_SCHEMA: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LessonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("lesson document is damaged or not a lesson: {0}")]
    BadDocument(String),
    #[error("lesson document uses schema {0}, newer than this youke understands; upgrade youke")]
    NewerSchema(i64),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

impl From<rusqlite::Error> for LessonError {
    fn from(e: rusqlite::Error) -> Self {
        LessonError::Store(StoreError::Sql(e))
    }
}

/// The original recording of a lesson.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaRef {
    pub hash: String,
    pub size: u64,
    pub mime: String,
}

/// A lesson as the portal, the API and the search index see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lesson {
    pub id: String,
    pub title: String,
    pub teacher: String,
    pub grade: String,
    pub subject: String,
    pub knowledge_points: Vec<String>,
    pub origin_node: String,
    pub origin_name: String,
    pub share_level: Tier,
    pub original_name: String,
    pub media: Option<MediaRef>,
    pub probe: Option<serde_json::Value>,
    pub duration_secs: Option<f64>,
    pub created_at: i64,
}

/// What an import knows about a new lesson.
#[derive(Debug, Clone)]
pub struct NewLesson {
    pub title: String,
    pub teacher: String,
    pub grade: String,
    pub subject: String,
    pub knowledge_points: Vec<String>,
    pub original_name: String,
    pub media: MediaRef,
    pub probe_json: String,
}

/// Who is writing: this node's identity and place, needed to stamp and route documents.
#[derive(Debug, Clone)]
pub struct Writer {
    pub node_id: String,
    pub node_name: String,
    pub tier: Tier,
    /// Whether this node has a parent link configured (then shared media is queued for it).
    pub has_parent: bool,
}

impl Writer {
    fn actor(&self) -> ActorId {
        match uuid::Uuid::parse_str(&self.node_id) {
            Ok(u) => ActorId::from(u.as_bytes().as_slice()),
            Err(_) => ActorId::from(self.node_id.as_bytes()),
        }
    }
}

/// Builds the document of a new lesson originating at this node.
pub fn new_document(w: &Writer, id: &str, l: &NewLesson) -> Result<AutoCommit, LessonError> {
    let mut doc = AutoCommit::new().with_actor(w.actor());
    doc.put(ROOT, "schema_version", LESSON_SCHEMA)?;
    doc.put(ROOT, "kind", KIND_LESSON)?;
    doc.put(ROOT, "id", id)?;
    doc.put(ROOT, "title", l.title.as_str())?;
    doc.put(ROOT, "teacher", l.teacher.as_str())?;
    doc.put(ROOT, "grade", l.grade.as_str())?;
    doc.put(ROOT, "subject", l.subject.as_str())?;
    let kp = doc.put_object(ROOT, "knowledge_points", ObjType::List)?;
    for (i, k) in l.knowledge_points.iter().enumerate() {
        doc.insert(&kp, i, k.as_str())?;
    }
    doc.put(ROOT, "origin_node", w.node_id.as_str())?;
    doc.put(ROOT, "origin_name", w.node_name.as_str())?;
    doc.put(ROOT, "share_level", w.tier.as_str())?;
    doc.put(ROOT, "created_at", now_ms())?;
    doc.put(ROOT, "original_name", l.original_name.as_str())?;
    let media = doc.put_object(ROOT, "media", ObjType::Map)?;
    let original = doc.put_object(&media, "original", ObjType::Map)?;
    doc.put(&original, "hash", l.media.hash.as_str())?;
    doc.put(&original, "size", l.media.size)?;
    doc.put(&original, "mime", l.media.mime.as_str())?;
    doc.put(ROOT, "probe_json", l.probe_json.as_str())?;
    Ok(doc)
}

fn text(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    doc.get(obj, key).ok().flatten().and_then(|(v, _)| v.as_str().map(str::to_string))
}

fn int(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    doc.get(obj, key).ok().flatten().and_then(|(v, _)| v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)))
}

fn child(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ObjId> {
    doc.get(obj, key).ok().flatten().and_then(|(v, id)| v.is_object().then_some(id))
}

/// Reads a lesson document into its materialized form, checking kind and schema.
pub fn read_document(doc: &AutoCommit) -> Result<Lesson, LessonError> {
    let bad = |what: &str| LessonError::BadDocument(format!("missing or invalid {what}"));
    match text(doc, &ROOT, "kind") {
        Some(k) if k == KIND_LESSON => {}
        _ => return Err(bad("kind")),
    }
    let schema = int(doc, &ROOT, "schema_version").ok_or_else(|| bad("schema_version"))?;
    if schema > LESSON_SCHEMA {
        return Err(LessonError::NewerSchema(schema));
    }
    let id = text(doc, &ROOT, "id").ok_or_else(|| bad("id"))?;
    let share_level = text(doc, &ROOT, "share_level")
        .and_then(|s| s.parse::<Tier>().ok())
        .ok_or_else(|| bad("share_level"))?;
    let knowledge_points = match child(doc, &ROOT, "knowledge_points") {
        Some(list) => (0..doc.length(&list))
            .filter_map(|i| doc.get(&list, i).ok().flatten().and_then(|(v, _)| v.as_str().map(str::to_string)))
            .collect(),
        None => Vec::new(),
    };
    let media = child(doc, &ROOT, "media").and_then(|m| child(doc, &m, "original")).and_then(|o| {
        Some(MediaRef {
            hash: text(doc, &o, "hash")?,
            size: int(doc, &o, "size")? as u64,
            mime: text(doc, &o, "mime").unwrap_or_else(|| "application/octet-stream".into()),
        })
    });
    let probe: Option<serde_json::Value> = text(doc, &ROOT, "probe_json").and_then(|s| serde_json::from_str(&s).ok());
    let duration_secs = probe.as_ref().and_then(|p| p.get("duration_secs")).and_then(|d| d.as_f64());
    Ok(Lesson {
        id,
        title: text(doc, &ROOT, "title").unwrap_or_default(),
        teacher: text(doc, &ROOT, "teacher").unwrap_or_default(),
        grade: text(doc, &ROOT, "grade").unwrap_or_default(),
        subject: text(doc, &ROOT, "subject").unwrap_or_default(),
        knowledge_points,
        origin_node: text(doc, &ROOT, "origin_node").ok_or_else(|| bad("origin_node"))?,
        origin_name: text(doc, &ROOT, "origin_name").unwrap_or_default(),
        share_level,
        original_name: text(doc, &ROOT, "original_name").unwrap_or_default(),
        media,
        probe,
        duration_secs,
        created_at: int(doc, &ROOT, "created_at").unwrap_or(0),
    })
}

fn share_rank(t: Tier) -> i64 {
    match t {
        Tier::School => 0,
        Tier::City => 1,
        Tier::Province => 2,
    }
}

/// Stores the document and its materialized row, taking a new change sequence number, and
/// queues the lesson's media for the parent when its share level reaches the parent's tier.
pub fn save(tx: &Transaction<'_>, w: &Writer, doc: &mut AutoCommit) -> Result<Lesson, LessonError> {
    let lesson = read_document(doc)?;
    let seq = next_seq(tx)? as i64;
    let bytes = doc.save();
    let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    let now = now_ms();
    tx.execute(
        "INSERT INTO docs (id, kind, schema_version, bytes, heads, seq, origin_node, share_rank, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, schema_version = excluded.schema_version,
           bytes = excluded.bytes, heads = excluded.heads, seq = excluded.seq,
           origin_node = excluded.origin_node, share_rank = excluded.share_rank, updated_at = excluded.updated_at",
        params![lesson.id, KIND_LESSON, LESSON_SCHEMA, bytes, heads.join(","), seq, lesson.origin_node, share_rank(lesson.share_level), now],
    )?;
    let probe = lesson.probe.as_ref().map(|p| p.to_string());
    let kp = serde_json::Value::from(lesson.knowledge_points.clone()).to_string();
    let (mh, ms, mm) = match &lesson.media {
        Some(m) => (Some(m.hash.as_str()), Some(m.size as i64), Some(m.mime.as_str())),
        None => (None, None, None),
    };
    tx.execute(
        "INSERT INTO lessons (id, title, teacher, grade, subject, knowledge_points, origin_node, origin_name,
            share_level, media_hash, media_size, media_mime, original_name, probe, duration_secs, created_at, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, teacher = excluded.teacher, grade = excluded.grade,
           subject = excluded.subject, knowledge_points = excluded.knowledge_points, origin_node = excluded.origin_node,
           origin_name = excluded.origin_name, share_level = excluded.share_level, media_hash = excluded.media_hash,
           media_size = excluded.media_size, media_mime = excluded.media_mime, original_name = excluded.original_name,
           probe = excluded.probe, duration_secs = excluded.duration_secs, created_at = excluded.created_at, seq = excluded.seq",
        params![
            lesson.id, lesson.title, lesson.teacher, lesson.grade, lesson.subject, kp, lesson.origin_node,
            lesson.origin_name, lesson.share_level.as_str(), mh, ms, mm, lesson.original_name, probe,
            lesson.duration_secs, lesson.created_at, seq
        ],
    )?;
    if let (Some(parent), Some(m)) = (w.tier.parent().filter(|_| w.has_parent), &lesson.media)
        && goes_up(lesson.share_level, parent) {
            tx.execute(
                "INSERT INTO uploads (hash, size, enqueued_at) VALUES (?1, ?2, ?3) ON CONFLICT (hash) DO NOTHING",
                params![m.hash, m.size as i64, now],
            )?;
        }
    Ok(lesson)
}

/// Loads a lesson's document, if this node has it.
pub fn load_document(conn: &Connection, w: &Writer, id: &str) -> Result<Option<AutoCommit>, LessonError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row("SELECT bytes FROM docs WHERE id = ?1 AND kind = ?2", params![id, KIND_LESSON], |r| r.get(0))
        .optional()?;
    match bytes {
        Some(b) => Ok(Some(AutoCommit::load(&b)?.with_actor(w.actor()))),
        None => Ok(None),
    }
}

/// Merges a document received from another node into the local one (or stores it if new).
pub fn merge_remote(tx: &Transaction<'_>, w: &Writer, bytes: &[u8]) -> Result<Lesson, LessonError> {
    let mut incoming = AutoCommit::load(bytes).map_err(|e| LessonError::BadDocument(e.to_string()))?;
    let id = read_document(&incoming)?.id;
    let mut doc = match load_document(tx, w, &id)? {
        Some(mut existing) => {
            existing.merge(&mut incoming)?;
            existing
        }
        None => incoming.with_actor(w.actor()),
    };
    save(tx, w, &mut doc)
}

/// Changes how far a lesson is shared.
pub fn set_share_level(tx: &Transaction<'_>, w: &Writer, id: &str, level: Tier) -> Result<Option<Lesson>, LessonError> {
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(None) };
    doc.put(ROOT, "share_level", level.as_str())?;
    save(tx, w, &mut doc).map(Some)
}

const COLUMNS: &str = "id, title, teacher, grade, subject, knowledge_points, origin_node, origin_name, share_level,
    media_hash, media_size, media_mime, original_name, probe, duration_secs, created_at, seq";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Lesson, i64)> {
    let kp: String = r.get(5)?;
    let share: String = r.get(8)?;
    let hash: Option<String> = r.get(9)?;
    let probe: Option<String> = r.get(13)?;
    let lesson = Lesson {
        id: r.get(0)?,
        title: r.get(1)?,
        teacher: r.get(2)?,
        grade: r.get(3)?,
        subject: r.get(4)?,
        knowledge_points: serde_json::from_str(&kp).unwrap_or_default(),
        origin_node: r.get(6)?,
        origin_name: r.get(7)?,
        share_level: share.parse().unwrap_or(Tier::School),
        media: match hash {
            Some(hash) => Some(MediaRef {
                hash,
                size: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
                mime: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            }),
            None => None,
        },
        original_name: r.get(12)?,
        probe: probe.and_then(|p| serde_json::from_str(&p).ok()),
        duration_secs: r.get(14)?,
        created_at: r.get(15)?,
    };
    Ok((lesson, r.get(16)?))
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Lesson>, LessonError> {
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?.map(|(l, _)| l))
}

/// Newest first, one page.
pub fn list(conn: &Connection, offset: u64, limit: u64) -> Result<(Vec<Lesson>, u64), LessonError> {
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM lessons", [], |r| r.get(0))?;
    let sql = format!("SELECT {COLUMNS} FROM lessons ORDER BY created_at DESC, id LIMIT ?1 OFFSET ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![limit as i64, offset as i64], from_row)?;
    let items = rows.map(|r| r.map(|(l, _)| l)).collect::<Result<Vec<_>, _>>()?;
    Ok((items, total as u64))
}

/// The lessons with these ids, in the order given (missing ones skipped).
pub fn by_ids(conn: &Connection, ids: &[String]) -> Result<Vec<Lesson>, LessonError> {
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((l, _)) = stmt.query_row([id], from_row).optional()? {
            out.push(l);
        }
    }
    Ok(out)
}

/// Lessons whose row changed after `seq`, oldest change first, with their sequence numbers.
pub fn changed_since(conn: &Connection, seq: u64, limit: u64) -> Result<Vec<(Lesson, u64)>, LessonError> {
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![seq as i64, limit as i64], from_row)?;
    Ok(rows.map(|r| r.map(|(l, s)| (l, s as u64))).collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn writer(tier: Tier, has_parent: bool) -> Writer {
        Writer { node_id: uuid::Uuid::new_v4().to_string(), node_name: "实验中学".into(), tier, has_parent }
    }

    fn new_lesson() -> NewLesson {
        NewLesson {
            title: "勾股定理".into(),
            teacher: "王芳".into(),
            grade: "八年级".into(),
            subject: "数学".into(),
            knowledge_points: vec!["直角三角形".into(), "勾股数".into()],
            original_name: "勾股定理.mp4".into(),
            media: MediaRef { hash: "ab".repeat(32), size: 1234, mime: "video/mp4".into() },
            probe_json: r#"{"duration_secs": 12.5}"#.into(),
        }
    }

    #[test]
    fn document_and_row_are_written_together_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let w = writer(Tier::School, true);
        let id = uuid::Uuid::new_v4().to_string();
        let lesson = store
            .write(|tx| {
                let mut doc = new_document(&w, &id, &new_lesson())?;
                save(tx, &w, &mut doc)
            })
            .expect("save");
        assert_eq!(lesson.knowledge_points, vec!["直角三角形", "勾股数"]);
        assert_eq!(lesson.duration_secs, Some(12.5));
        let row = store.read(|c| get(c, &id)).expect("get").expect("row");
        assert_eq!(row, lesson);
        let queued: i64 = store.read(|c| Ok::<_, LessonError>(c.query_row("SELECT COUNT(*) FROM uploads", [], |r| r.get(0))?)).expect("count");
        assert_eq!(queued, 0, "a school-level lesson does not go up");
        let shared = store.write(|tx| set_share_level(tx, &w, &id, Tier::Province)).expect("share").expect("exists");
        assert_eq!(shared.share_level, Tier::Province);
        let queued: i64 = store.read(|c| Ok::<_, LessonError>(c.query_row("SELECT COUNT(*) FROM uploads", [], |r| r.get(0))?)).expect("count");
        assert_eq!(queued, 1);
        let changed = store.read(|c| changed_since(c, 1, 10)).expect("changed");
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1, 2);
    }

    #[test]
    fn concurrent_edits_at_two_tiers_merge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let school = Store::open(&dir.path().join("school")).expect("open");
        let city = Store::open(&dir.path().join("city")).expect("open");
        let ws = writer(Tier::School, true);
        let wc = writer(Tier::City, true);
        let id = uuid::Uuid::new_v4().to_string();
        let bytes = school
            .write(|tx| {
                let mut doc = new_document(&ws, &id, &new_lesson())?;
                save(tx, &ws, &mut doc)?;
                Ok::<_, LessonError>(doc.save())
            })
            .expect("create");
        city.write(|tx| merge_remote(tx, &wc, &bytes)).expect("first sync");
        // The school retitles while the city is offline; then the city merges again.
        let bytes2 = school
            .write(|tx| {
                let mut doc = load_document(tx, &ws, &id)?.expect("doc");
                doc.put(ROOT, "title", "勾股定理（第二课时）")?;
                save(tx, &ws, &mut doc)?;
                Ok::<_, LessonError>(doc.save())
            })
            .expect("edit");
        let merged = city.write(|tx| merge_remote(tx, &wc, &bytes2)).expect("second sync");
        assert_eq!(merged.title, "勾股定理（第二课时）");
        assert_eq!(merged.origin_node, ws.node_id);
    }

    #[test]
    fn foreign_documents_are_rejected() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "kind", "announcement").expect("put");
        assert!(matches!(read_document(&doc), Err(LessonError::BadDocument(_))));
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let w = writer(Tier::City, true);
        assert!(store.write(|tx| merge_remote(tx, &w, b"not automerge")).is_err());
    }
}
