//! Changing a lesson: its descriptive fields, share level, subtitles, what the media job
//! measured, ratings, comments, reviews and views, each a new automerge change saved through
//! [`super::save`]; and reading the discussion back from the document.

use super::*;
use crate::documents::{self, DocError, Writer, child, int, text};
use crate::store::now_ms;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use rusqlite::{Connection, OptionalExtension, Transaction};
use serde::Serialize;
use youke_federation::Tier;

/// Largest subtitle file attached to a lesson (it travels in the lesson's document).
pub const MAX_SUBTITLES_BYTES: usize = 1 << 20;

/// Records what the media job measured (the audio SNR, the SD version made) and, for lessons
/// made at this node (their origin writes the report), judges the lesson again.
pub fn record_analysis(tx: &Transaction<'_>, w: &Writer, id: &str, snr_db: Option<f64>, sd_version: Option<(u32, u32)>) -> Result<(), DocError> {
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(()) };
    if text(&doc, &ROOT, "origin_node").as_deref() != Some(w.node_id.as_str()) {
        return Ok(());
    }
    let analysis = match child(&doc, &ROOT, "analysis") {
        Some(a) => a,
        None => doc.put_object(ROOT, "analysis", ObjType::Map)?,
    };
    if let Some(db) = snr_db {
        doc.put(&analysis, "snr_db", db)?;
    }
    if let Some((sw, sh)) = sd_version {
        doc.put(&analysis, "sd_width", i64::from(sw))?;
        doc.put(&analysis, "sd_height", i64::from(sh))?;
    }
    recheck(&mut doc)?;
    save(tx, w, &mut doc).map(|_| ())
}

/// Attaches SRT subtitles to a lesson (replacing any): checked (UTF-8, parsable), kept in the
/// document so they travel with it, searchable by their text. `language` is the lecture's.
pub fn attach_subtitles(tx: &Transaction<'_>, w: &Writer, id: &str, srt: &[u8], language: youke_media::standard::Language) -> Result<Option<Lesson>, DocError> {
    if srt.len() > MAX_SUBTITLES_BYTES {
        return Err(DocError::Invalid(format!("the subtitle file is {} bytes, more than the {MAX_SUBTITLES_BYTES} a lesson can carry", srt.len())));
    }
    let cues = youke_media::srt::parse(srt).map_err(|e| DocError::Invalid(format!("the subtitles cannot be attached: {e}")))?;
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(None) };
    let text_srt = String::from_utf8_lossy(srt).trim_start_matches('\u{feff}').to_string();
    let subs = doc.put_object(ROOT, "subtitles", ObjType::Map)?;
    doc.put(&subs, "srt", text_srt)?;
    doc.put(&subs, "language", language_code(language))?;
    doc.put(&subs, "cues", cues.len() as i64)?;
    doc.put(&subs, "attached_at", now_ms())?;
    if text(&doc, &ROOT, "origin_node").as_deref() == Some(w.node_id.as_str()) {
        recheck(&mut doc)?;
    }
    save(tx, w, &mut doc).map(Some)
}

fn language_code(l: youke_media::standard::Language) -> &'static str {
    match l {
        youke_media::standard::Language::Chinese => "zh",
        youke_media::standard::Language::English => "en",
    }
}

/// The lecture's language: as given with the subtitles, else English for English lessons and
/// Chinese for the rest.
pub fn language_of(subject: &str, given: Option<&str>) -> youke_media::standard::Language {
    use youke_media::standard::Language;
    match given {
        Some("en") => Language::English,
        Some("zh") => Language::Chinese,
        _ if subject.contains("英语") || subject.to_lowercase().contains("english") => Language::English,
        _ => Language::Chinese,
    }
}

/// Judges the lesson against the course video standard again from everything its document
/// holds: the probe, the analysis, the subtitles.
fn recheck(doc: &mut AutoCommit) -> Result<(), DocError> {
    let Some(probe) = text(doc, &ROOT, "probe_json").and_then(|p| serde_json::from_str::<youke_media::Probe>(&p).ok()) else { return Ok(()) };
    let analysis = child(doc, &ROOT, "analysis");
    let snr_db = analysis.as_ref().and_then(|a| doc.get(a, "snr_db").ok().flatten()).and_then(|(v, _)| v.as_f64());
    let sd_version = analysis.as_ref().and_then(|a| Some((int(doc, a, "sd_width")? as u32, int(doc, a, "sd_height")? as u32)));
    let subs = child(doc, &ROOT, "subtitles");
    let srt = subs.as_ref().and_then(|s| text(doc, s, "srt"));
    let language = language_of(&text(doc, &ROOT, "subject").unwrap_or_default(), subs.as_ref().and_then(|s| text(doc, s, "language")).as_deref());
    let facts = srt.as_deref().map(|t| match youke_media::srt::parse(t.as_bytes()) {
        Ok(cues) => youke_media::srt::facts(&cues, Some(probe.duration_secs)),
        Err(e) => youke_media::standard::SubtitleFacts { utf8: true, cues: 0, ordered: false, last_end_secs: 0.0, cjk_share: 0.0, problems: vec![e.to_string()] },
    });
    let report = youke_media::standard::check(&youke_media::standard::Facts {
        probe: Some(&probe),
        snr_db,
        sd_version,
        subtitles: facts.as_ref(),
        language: Some(language),
        documents: &[],
    });
    let compact = report.to_compact();
    if text(doc, &ROOT, super::COMPLIANCE).as_deref() != Some(compact.as_str()) {
        doc.put(ROOT, super::COMPLIANCE, compact)?;
    }
    // A document from before the compact form: one report, not two.
    if doc.get(ROOT, "compliance_json")?.is_some() {
        doc.delete(ROOT, "compliance_json")?;
    }
    Ok(())
}

/// A lesson's subtitles (SRT text and language code), if attached.
pub fn subtitles_of(conn: &Connection, id: &str) -> Result<Option<(String, String)>, DocError> {
    Ok(conn.query_row("SELECT srt, language FROM subtitles WHERE lesson_id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
}

/// Changes how far a lesson is shared.
pub fn set_share_level(tx: &Transaction<'_>, w: &Writer, id: &str, level: Tier) -> Result<Option<Lesson>, DocError> {
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(None) };
    doc.put(ROOT, "share_level", level.as_str())?;
    save(tx, w, &mut doc).map(Some)
}

/// A change a user makes to a lesson's shared metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum LessonEdit {
    /// A user's rating, 1 to 5; rating again replaces the user's earlier rating.
    Rate { user: String, score: i64 },
    Comment { author: String, text: String },
    /// An expert's review score (0 to 100) and comment; reviewing again replaces it.
    Review { expert: String, score: i64, comment: String },
    /// Views counted at this node (added to the document's counter, which sums every node's).
    Views(i64),
    /// New descriptive fields, only at the lesson's own school (its origin node).
    Fields(LessonFields),
}

/// New values of a lesson's descriptive fields; a field left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonFields {
    pub title: Option<String>,
    pub teacher: Option<String>,
    pub grade: Option<String>,
    pub subject: Option<String>,
    pub textbook_chapter: Option<String>,
    pub description: Option<String>,
    pub knowledge_points: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// Let viewers download the original recording.
    pub downloadable: Option<bool>,
}

/// Longest title, name or chapter accepted; most list items.
pub const MAX_FIELD: usize = 200;
pub const MAX_LIST: usize = 50;

impl LessonFields {
    fn validate(&self) -> Result<(), DocError> {
        if self.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(DocError::Invalid("a lesson's title cannot be empty".into()));
        }
        for (name, v) in [("title", &self.title), ("teacher", &self.teacher), ("grade", &self.grade), ("subject", &self.subject), ("textbook_chapter", &self.textbook_chapter)] {
            if v.as_deref().is_some_and(|v| v.chars().count() > MAX_FIELD) {
                return Err(DocError::Invalid(format!("{name} is longer than {MAX_FIELD} characters")));
            }
        }
        if self.description.as_deref().is_some_and(|d| d.chars().count() > MAX_TEXT) {
            return Err(DocError::Invalid(format!("the description is longer than {MAX_TEXT} characters")));
        }
        for (name, list) in [("knowledge_points", &self.knowledge_points), ("tags", &self.tags)] {
            if let Some(list) = list
                && (list.len() > MAX_LIST || list.iter().any(|i| i.trim().is_empty() || i.chars().count() > MAX_FIELD))
            {
                return Err(DocError::Invalid(format!("{name} takes at most {MAX_LIST} non-empty items of at most {MAX_FIELD} characters")));
            }
        }
        Ok(())
    }
}

use crate::documents::MAX_TEXT;

impl LessonEdit {
    fn validate(&self) -> Result<(), DocError> {
        let name_ok = |n: &str| !n.trim().is_empty() && n.chars().count() <= 100;
        match self {
            LessonEdit::Rate { user, score } if name_ok(user) && (1..=5).contains(score) => Ok(()),
            LessonEdit::Rate { .. } => Err(DocError::Invalid("a rating needs a user and a score from 1 to 5".into())),
            LessonEdit::Comment { author, text } if name_ok(author) && !text.trim().is_empty() && text.chars().count() <= MAX_TEXT => Ok(()),
            LessonEdit::Comment { .. } => Err(DocError::Invalid(format!("a comment needs an author and 1 to {MAX_TEXT} characters of text"))),
            LessonEdit::Review { expert, score, comment } if name_ok(expert) && (0..=100).contains(score) && comment.chars().count() <= MAX_TEXT => Ok(()),
            LessonEdit::Review { .. } => Err(DocError::Invalid("a review needs an expert and a score from 0 to 100".into())),
            LessonEdit::Views(n) if *n > 0 => Ok(()),
            LessonEdit::Views(_) => Err(DocError::Invalid("a number of views is positive".into())),
            LessonEdit::Fields(f) => f.validate(),
        }
    }
}

/// Applies a user's change to a lesson. `None` if the lesson is not here.
pub fn edit(tx: &Transaction<'_>, w: &Writer, id: &str, change: &LessonEdit) -> Result<Option<Lesson>, DocError> {
    change.validate()?;
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(None) };
    let obj = |doc: &mut AutoCommit, key: &str, ty: ObjType| -> Result<automerge::ObjId, DocError> {
        match child(doc, &ROOT, key) {
            Some(o) => Ok(o),
            None => Ok(doc.put_object(ROOT, key, ty)?),
        }
    };
    match change {
        LessonEdit::Rate { user, score } => {
            let ratings = obj(&mut doc, "ratings", ObjType::Map)?;
            doc.put(&ratings, user.trim(), *score)?;
        }
        LessonEdit::Comment { author, text } => {
            let comments = obj(&mut doc, "comments", ObjType::List)?;
            let at = doc.length(&comments);
            let c = doc.insert_object(&comments, at, ObjType::Map)?;
            doc.put(&c, "id", uuid::Uuid::new_v4().to_string())?;
            doc.put(&c, "author", author.trim())?;
            doc.put(&c, "text", text.trim())?;
            doc.put(&c, "at", now_ms())?;
            doc.put(&c, "node", w.node_name.as_str())?;
        }
        LessonEdit::Review { expert, score, comment } => {
            let reviews = obj(&mut doc, "reviews", ObjType::Map)?;
            let r = doc.put_object(&reviews, expert.trim(), ObjType::Map)?;
            doc.put(&r, "score", *score)?;
            doc.put(&r, "comment", comment.trim())?;
            doc.put(&r, "at", now_ms())?;
            doc.put(&r, "node", w.node_name.as_str())?;
        }
        LessonEdit::Views(n) => match doc.get(ROOT, "views")? {
            Some((automerge::Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Counter(_)) => doc.increment(ROOT, "views", *n)?,
            _ => doc.put(ROOT, "views", ScalarValue::counter(*n))?,
        },
        LessonEdit::Fields(f) => {
            if text(&doc, &ROOT, "origin_node").as_deref() != Some(w.node_id.as_str()) {
                let origin = text(&doc, &ROOT, "origin_name").unwrap_or_default();
                return Err(DocError::Invalid(format!("this lesson comes from {origin}; its fields are edited there")));
            }
            for (key, v) in [("title", &f.title), ("teacher", &f.teacher), ("grade", &f.grade), ("subject", &f.subject), ("textbook_chapter", &f.textbook_chapter), ("description", &f.description)] {
                if let Some(v) = v {
                    doc.put(ROOT, key, v.trim())?;
                }
            }
            if let Some(d) = f.downloadable {
                doc.put(ROOT, "downloadable", d)?;
            }
            for (key, list) in [("knowledge_points", &f.knowledge_points), ("tags", &f.tags)] {
                if let Some(list) = list {
                    let items: Vec<String> = list.iter().map(|i| i.trim().to_string()).collect();
                    documents::put_text_list(&mut doc, &ROOT, key, &items)?;
                }
            }
        }
    }
    save(tx, w, &mut doc).map(Some)
}

/// One comment on a lesson, as read from its document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comment {
    pub id: String,
    pub author: String,
    pub text: String,
    pub at: i64,
    pub node: String,
    /// Hidden by an administrator: (by whom, at which node).
    pub hidden: Option<(String, String)>,
}

/// One expert review, as read from the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub expert: String,
    pub score: i64,
    pub comment: String,
    pub at: i64,
    pub node: String,
}

/// The comments and reviews of a lesson.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Discussion {
    pub comments: Vec<Comment>,
    pub reviews: Vec<Review>,
}

/// The comments and reviews of a lesson (from its document).
pub fn discussion(conn: &Connection, w: &Writer, id: &str) -> Result<Option<Discussion>, DocError> {
    let Some(doc) = load_document(conn, w, id)? else { return Ok(None) };
    let mut comments = Vec::new();
    if let Some(list) = child(&doc, &ROOT, "comments") {
        for i in 0..doc.length(&list) {
            if let Some((_, c)) = doc.get(&list, i)? {
                comments.push(Comment {
                    id: text(&doc, &c, "id").unwrap_or_default(),
                    author: text(&doc, &c, "author").unwrap_or_default(),
                    text: text(&doc, &c, "text").unwrap_or_default(),
                    at: int(&doc, &c, "at").unwrap_or(0),
                    node: text(&doc, &c, "node").unwrap_or_default(),
                    hidden: child(&doc, &c, "hidden").map(|h| (text(&doc, &h, "by").unwrap_or_default(), text(&doc, &h, "node").unwrap_or_default())),
                });
            }
        }
    }
    let mut reviews = Vec::new();
    if let Some(map) = child(&doc, &ROOT, "reviews") {
        for expert in doc.keys(&map) {
            if let Some(r) = child(&doc, &map, &expert) {
                reviews.push(Review {
                    score: int(&doc, &r, "score").unwrap_or(0),
                    comment: text(&doc, &r, "comment").unwrap_or_default(),
                    at: int(&doc, &r, "at").unwrap_or(0),
                    node: text(&doc, &r, "node").unwrap_or_default(),
                    expert,
                });
            }
        }
    }
    Ok(Some(Discussion { comments, reviews }))
}
