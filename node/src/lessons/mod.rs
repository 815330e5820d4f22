//! Lessons: each lesson is one automerge document (the source of truth, synced between tiers)
//! and one row in the `lessons` table (its materialized view, for queries), written together
//! in one transaction through [`crate::documents::commit`].
//!
//! Document layout, schema version 1 (root map): the common header (`schema_version`, `kind` =
//! "lesson", `id`, `origin_node`, `origin_name`, `created_at`), then `title`, `teacher`,
//! `grade`, `subject`, `textbook_chapter`, `description` (text), `knowledge_points` and `tags`
//! (lists of text), `share_level` (school | city | province), `original_name`, `media` →
//! `original` → {`hash`, `size`, `mime`}, `probe_json` (the probe as JSON text, written once by
//! the origin), `compliance` (the course-video-standard report in its compact form, a line per
//! rule, `youke_media::standard::Report::to_compact`, empty until the lesson is checked; documents
//! from before it carry the JSON report in `compliance_json`, still read), `ratings` (map user → score 1..5, so two users rating at once both count),
//! `comments` (list of {`id`, `author`, `text`, `at`}), `reviews` (map expert → {`score`,
//! `comment`, `at`}), `views` (an automerge counter, so views counted at every tier add up) and
//! `competitions` (map competition id → {`at`, `by`}: the competitions its school entered it in;
//! absent until the first entry).

mod edit;
mod moderation;
mod rows;

pub use edit::*;
pub use moderation::*;
pub use rows::*;

use crate::documents::{self, DocError, Kind, Routing, Writer, child, int, text, text_list};
use crate::sync_state;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use youke_federation::Tier;
use youke_federation::tier::goes_up;

/// The grades of the national curriculum (义务教育 and 高中), as the portal offers them.
pub const GRADES: [&str; 12] = ["一年级", "二年级", "三年级", "四年级", "五年级", "六年级", "七年级", "八年级", "九年级", "高一", "高二", "高三"];

/// The subjects of the national curriculum (义务教育课程方案 2022 and the 高中 plan).
pub const SUBJECTS: [&str; 21] = [
    "语文", "数学", "英语", "道德与法治", "思想政治", "历史", "地理", "物理", "化学", "生物学", "科学",
    "信息科技", "信息技术", "通用技术", "体育与健康", "艺术", "音乐", "美术", "劳动", "综合实践活动", "日语",
];

/// Lesson fields given at import; empty ones are left blank, a missing title is taken from the
/// file name.
#[derive(Debug, Clone, Default)]
pub struct ImportMeta {
    pub title: Option<String>,
    pub teacher: Option<String>,
    pub grade: Option<String>,
    pub subject: Option<String>,
    pub knowledge_points: Vec<String>,
    /// The recording's own file name, when the file at hand has another (a staged upload).
    pub original_name: Option<String>,
}

/// JSON kept as the text it was stored as, parsed only where it is read: listing twenty lessons
/// for a search page does not parse twenty probes and compliance reports. Serialized as the
/// JSON value itself.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonText(std::sync::Arc<str>);

impl JsonText {
    /// `text` if it is JSON.
    pub fn new(text: &str) -> Option<JsonText> {
        serde_json::from_str::<&serde_json::value::RawValue>(text).ok().map(|_| JsonText(text.into()))
    }

    fn trusted(text: String) -> JsonText {
        JsonText(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parse(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.0).ok()
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&serde_json::value::RawValue>(&self.0) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_none(),
        }
    }
}

/// The original recording of a lesson.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaRef {
    pub hash: String,
    pub size: u64,
    pub mime: String,
}

/// A lesson's HLS ladder as a rendition pack ([`youke_media::pack`]): made once, where the
/// lesson was transcoded, and travelling between tiers as one blob.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Ladder {
    pub hash: String,
    pub size: u64,
    pub hls: youke_media::hls::HlsOutput,
}

/// A lesson as the portal, the API and the search index see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lesson {
    pub id: String,
    pub title: String,
    pub teacher: String,
    pub grade: String,
    pub subject: String,
    pub textbook_chapter: String,
    pub knowledge_points: Vec<String>,
    pub tags: Vec<String>,
    pub description: String,
    pub origin_node: String,
    pub origin_name: String,
    /// Tier of the node the lesson comes from (school, city, province); empty in documents
    /// written before it was recorded.
    pub origin_tier: String,
    pub share_level: Tier,
    pub original_name: String,
    pub media: Option<MediaRef>,
    pub probe: Option<JsonText>,
    /// The course video standard report, once checked.
    pub compliance: Option<JsonText>,
    /// Subtitles attached (their language and number of cues); the text is at
    /// `/api/v1/lessons/{id}/subtitles.vtt`.
    pub subtitles: Option<SubtitleInfo>,
    pub duration_secs: Option<f64>,
    pub rating_avg: Option<f64>,
    pub rating_count: u64,
    pub comment_count: u64,
    pub review_avg: Option<f64>,
    pub review_count: u64,
    pub views: i64,
    pub created_at: i64,
    /// Review decisions, by tier ([`moderation`]).
    pub moderation: Vec<Decision>,
    pub takedown: Option<Takedown>,
    /// The tier whose review it waits for.
    pub awaiting_review: Option<Tier>,
    /// Shown to viewers at this node: its own lessons, and lessons that reached their audience
    /// ([`audience_reached`]) or are in a published collection, unless taken down.
    pub listed: bool,
    /// The teacher lets viewers download the original recording.
    pub downloadable: bool,
    /// The ladder, once the lesson was transcoded somewhere in the tree.
    pub ladder: Option<Ladder>,
    /// Its school makes the ladder (it transcodes): the tiers above wait for it rather than
    /// transcode the recording themselves.
    pub ladder_expected: bool,
    /// The tiers above its school that hold its recording: (tier, node name, when), lowest first.
    pub arrived: Vec<Arrival>,
}

/// A tier above the lesson's school received its recording.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Arrival {
    pub tier: Tier,
    pub node: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubtitleInfo {
    pub language: String,
    pub cues: u64,
}

/// What an import knows about a new lesson.
#[derive(Debug, Clone, Default)]
pub struct NewLesson {
    pub title: String,
    pub teacher: String,
    pub grade: String,
    pub subject: String,
    pub textbook_chapter: String,
    pub knowledge_points: Vec<String>,
    pub tags: Vec<String>,
    pub description: String,
    pub original_name: String,
    pub media: Option<MediaRef>,
    pub probe_json: String,
    /// The compliance report in its compact form ([`youke_media::standard::Report::to_compact`]),
    /// or empty.
    pub compliance: String,
    /// This node will make the ladder ([`Lesson::ladder_expected`]).
    pub ladder_expected: bool,
}

/// Builds the document of a new lesson originating at this node.
pub fn new_document(w: &Writer, id: &str, l: &NewLesson) -> Result<AutoCommit, DocError> {
    let mut doc = w.new_doc();
    documents::put_header(&mut doc, Kind::Lesson, id, w)?;
    doc.put(ROOT, "title", l.title.as_str())?;
    doc.put(ROOT, "teacher", l.teacher.as_str())?;
    doc.put(ROOT, "grade", l.grade.as_str())?;
    doc.put(ROOT, "subject", l.subject.as_str())?;
    doc.put(ROOT, "textbook_chapter", l.textbook_chapter.as_str())?;
    doc.put(ROOT, "description", l.description.as_str())?;
    documents::put_text_list(&mut doc, &ROOT, "knowledge_points", &l.knowledge_points)?;
    documents::put_text_list(&mut doc, &ROOT, "tags", &l.tags)?;
    doc.put(ROOT, "share_level", w.tier.as_str())?;
    doc.put(ROOT, "original_name", l.original_name.as_str())?;
    if let Some(m) = &l.media {
        let media = doc.put_object(ROOT, "media", ObjType::Map)?;
        let original = doc.put_object(&media, "original", ObjType::Map)?;
        doc.put(&original, "hash", m.hash.as_str())?;
        doc.put(&original, "size", m.size)?;
        doc.put(&original, "mime", m.mime.as_str())?;
        doc.put(&media, "ladder_expected", l.ladder_expected)?;
    }
    doc.put(ROOT, "probe_json", l.probe_json.as_str())?;
    doc.put(ROOT, COMPLIANCE, l.compliance.as_str())?;
    doc.put_object(ROOT, "ratings", ObjType::Map)?;
    doc.put_object(ROOT, "comments", ObjType::List)?;
    doc.put_object(ROOT, "reviews", ObjType::Map)?;
    doc.put(ROOT, "views", ScalarValue::counter(0))?;
    Ok(doc)
}

/// The document key of the compliance report (compact form); `compliance_json` before it.
pub(crate) const COMPLIANCE: &str = "compliance";

/// The compliance report as the document stores it: the compact form, or the JSON of older
/// documents. `None` if unchecked.
fn stored_compliance(doc: &AutoCommit) -> Option<String> {
    text(doc, &ROOT, COMPLIANCE).or_else(|| text(doc, &ROOT, "compliance_json")).filter(|s| !s.is_empty())
}

/// A stored compliance report (compact, or JSON from before) as the JSON the portal and the
/// API read.
fn compliance_of(stored: &str) -> Option<JsonText> {
    if stored.trim_start().starts_with('{') {
        return JsonText::new(stored);
    }
    youke_media::standard::Report::from_compact(stored).and_then(|r| serde_json::to_string(&r).ok()).map(JsonText::trusted)
}

/// Reads a lesson document into its materialized form.
pub fn read_document(doc: &AutoCommit) -> Result<Lesson, DocError> {
    let bad = |what: &str| DocError::BadDocument(format!("lesson: missing or invalid {what}"));
    let id = text(doc, &ROOT, "id").ok_or_else(|| bad("id"))?;
    let share_level = text(doc, &ROOT, "share_level").and_then(|s| s.parse::<Tier>().ok()).ok_or_else(|| bad("share_level"))?;
    let media = child(doc, &ROOT, "media").and_then(|m| child(doc, &m, "original")).and_then(|o| {
        Some(MediaRef {
            hash: text(doc, &o, "hash")?,
            size: int(doc, &o, "size")? as u64,
            mime: text(doc, &o, "mime").unwrap_or_else(|| "application/octet-stream".into()),
        })
    });
    let probe = text(doc, &ROOT, "probe_json").and_then(|s| JsonText::new(&s));
    let duration_secs = probe.as_ref().and_then(JsonText::parse).and_then(|p| p.get("duration_secs").and_then(|d| d.as_f64()));
    let compliance = stored_compliance(doc).and_then(|s| compliance_of(&s));
    let scores = |key: &str, inner: Option<&str>| -> Vec<i64> {
        let Some(map) = child(doc, &ROOT, key) else { return Vec::new() };
        doc.keys(&map)
            .filter_map(|k| match inner {
                None => int(doc, &map, &k),
                Some(field) => child(doc, &map, &k).and_then(|o| int(doc, &o, field)),
            })
            .collect()
    };
    let avg = |v: &[i64]| (!v.is_empty()).then(|| v.iter().sum::<i64>() as f64 / v.len() as f64);
    let ratings = scores("ratings", None);
    let reviews = scores("reviews", Some("score"));
    let comment_count = child(doc, &ROOT, "comments")
        .map(|list| (0..doc.length(&list)).filter(|i| doc.get(&list, *i).ok().flatten().is_some_and(|(_, c)| child(doc, &c, "hidden").is_none())).count())
        .unwrap_or(0) as u64;
    let moderation = read_decisions(doc);
    let takedown = read_takedown(doc);
    let views = doc
        .get(ROOT, "views")
        .ok()
        .flatten()
        .and_then(|(v, _)| match v {
            automerge::Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Counter(c) => Some(i64::from(c)),
                ScalarValue::Int(i) => Some(*i),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or(0);
    Ok(Lesson {
        id,
        title: text(doc, &ROOT, "title").unwrap_or_default(),
        teacher: text(doc, &ROOT, "teacher").unwrap_or_default(),
        grade: text(doc, &ROOT, "grade").unwrap_or_default(),
        subject: text(doc, &ROOT, "subject").unwrap_or_default(),
        textbook_chapter: text(doc, &ROOT, "textbook_chapter").unwrap_or_default(),
        knowledge_points: text_list(doc, &ROOT, "knowledge_points"),
        tags: text_list(doc, &ROOT, "tags"),
        description: text(doc, &ROOT, "description").unwrap_or_default(),
        origin_node: text(doc, &ROOT, "origin_node").ok_or_else(|| bad("origin_node"))?,
        origin_name: text(doc, &ROOT, "origin_name").unwrap_or_default(),
        origin_tier: text(doc, &ROOT, "origin_tier").unwrap_or_default(),
        share_level,
        original_name: text(doc, &ROOT, "original_name").unwrap_or_default(),
        media,
        probe,
        compliance,
        subtitles: child(doc, &ROOT, "subtitles").map(|sub| SubtitleInfo {
            language: text(doc, &sub, "language").unwrap_or_default(),
            cues: int(doc, &sub, "cues").unwrap_or(0) as u64,
        }),
        duration_secs,
        rating_avg: avg(&ratings),
        rating_count: ratings.len() as u64,
        comment_count,
        review_avg: avg(&reviews),
        review_count: reviews.len() as u64,
        views,
        created_at: int(doc, &ROOT, "created_at").unwrap_or(0),
        awaiting_review: awaiting_review(share_level, &moderation, takedown.as_ref()),
        listed: takedown.is_none(),
        downloadable: documents::boolean(doc, &ROOT, "downloadable").unwrap_or(false),
        ladder_expected: child(doc, &ROOT, "media").and_then(|m| documents::boolean(doc, &m, "ladder_expected")).unwrap_or(false),
        arrived: {
            let mut a: Vec<Arrival> = child(doc, &ROOT, "arrived")
                .map(|m| {
                    doc.keys(&m)
                        .filter_map(|k| {
                            let o = child(doc, &m, &k)?;
                            Some(Arrival { tier: k.parse().ok()?, node: text(doc, &o, "node").unwrap_or_default(), at: int(doc, &o, "at").unwrap_or(0) })
                        })
                        .collect()
                })
                .unwrap_or_default();
            a.sort_by_key(|x| documents::share_rank(x.tier));
            a
        },
        ladder: child(doc, &ROOT, "media").and_then(|m| child(doc, &m, "ladder")).and_then(|o| {
            Some(Ladder {
                hash: text(doc, &o, "hash")?,
                size: int(doc, &o, "size")? as u64,
                hls: serde_json::from_str(&text(doc, &o, "hls_json")?).ok()?,
            })
        }),
        moderation,
        takedown,
    })
}

/// Lesson documents, for the document store.
#[derive(Debug)]
pub struct LessonSchema;

pub static LESSONS: LessonSchema = LessonSchema;

impl documents::Schema for LessonSchema {
    fn kind(&self) -> Kind {
        Kind::Lesson
    }
    fn materialize(&self, tx: &Transaction<'_>, w: &Writer, doc: &AutoCommit, seq: u64) -> Result<Routing, DocError> {
        materialize(tx, w, doc, seq)
    }
}

/// Writes the lesson's row (called by [`documents::commit`]) and queues its media for the
/// parent when its share level reaches the parent's tier.
pub fn materialize(tx: &Transaction<'_>, w: &Writer, doc: &AutoCommit, seq: u64) -> Result<Routing, DocError> {
    let l = read_document(doc)?;
    let taken_down = l.takedown.is_some();
    let in_collection = crate::catalog::in_published_collection(tx, &l.id)?;
    let reached = audience_reached(l.share_level, &l.moderation);
    // Down the tree to every school below: approved for its audience, or in a published collection.
    let published = !taken_down && (reached || in_collection);
    let listed = !taken_down && (l.origin_node == w.node_id || reached || in_collection);
    let moderation = serde_json::to_string(&l.moderation).unwrap_or_else(|_| "[]".into());
    let takedown = l.takedown.as_ref().and_then(|t| serde_json::to_string(t).ok());
    let probe = l.probe.as_ref().map(|p| p.as_str().to_string());
    // The row keeps the report as the document does (compact): a fifth of the JSON.
    let compliance = stored_compliance(doc);
    let kp = serde_json::Value::from(l.knowledge_points.clone()).to_string();
    let tags = serde_json::Value::from(l.tags.clone()).to_string();
    let (mh, ms, mm) = match &l.media {
        Some(m) => (Some(m.hash.as_str()), Some(m.size as i64), Some(m.mime.as_str())),
        None => (None, None, None),
    };
    tx.execute(
        "INSERT INTO lessons (id, title, teacher, grade, subject, textbook_chapter, knowledge_points, tags, description,
            origin_node, origin_name, share_level, media_hash, media_size, media_mime, original_name, probe, duration_secs,
            rating_avg, rating_count, comment_count, review_avg, review_count, views, created_at, seq, compliance, origin_tier,
            listed, moderation, takedown, awaiting_review, downloadable, ladder_hash, ladder, ladder_expected, arrived)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28,
            ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37)
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, teacher = excluded.teacher, grade = excluded.grade,
           subject = excluded.subject, textbook_chapter = excluded.textbook_chapter, knowledge_points = excluded.knowledge_points,
           tags = excluded.tags, description = excluded.description, origin_node = excluded.origin_node,
           origin_name = excluded.origin_name, share_level = excluded.share_level, media_hash = excluded.media_hash,
           media_size = excluded.media_size, media_mime = excluded.media_mime, original_name = excluded.original_name,
           probe = excluded.probe, duration_secs = excluded.duration_secs, rating_avg = excluded.rating_avg,
           rating_count = excluded.rating_count, comment_count = excluded.comment_count, review_avg = excluded.review_avg,
           review_count = excluded.review_count, views = excluded.views, created_at = excluded.created_at, seq = excluded.seq,
           compliance = excluded.compliance, origin_tier = excluded.origin_tier, listed = excluded.listed,
           moderation = excluded.moderation, takedown = excluded.takedown, awaiting_review = excluded.awaiting_review,
           downloadable = excluded.downloadable, ladder_hash = excluded.ladder_hash, ladder = excluded.ladder,
           ladder_expected = excluded.ladder_expected, arrived = excluded.arrived",
        params![
            l.id, l.title, l.teacher, l.grade, l.subject, l.textbook_chapter, kp, tags, l.description, l.origin_node,
            l.origin_name, l.share_level.as_str(), mh, ms, mm, l.original_name, probe, l.duration_secs, l.rating_avg,
            l.rating_count as i64, l.comment_count as i64, l.review_avg, l.review_count as i64, l.views, l.created_at, seq as i64,
            compliance, l.origin_tier, listed, moderation, takedown, l.awaiting_review.map(|t| t.as_str()), l.downloadable,
            l.ladder.as_ref().map(|x| x.hash.as_str()), l.ladder.as_ref().and_then(|x| serde_json::to_string(x).ok()), l.ladder_expected,
            serde_json::to_string(&l.arrived).unwrap_or_else(|_| "[]".into())
        ],
    )?;
    // The subtitles' text, for the player and the search index.
    let subs = child(doc, &ROOT, "subtitles");
    match subs.as_ref().and_then(|sub| Some((text(doc, sub, "srt")?, text(doc, sub, "language").unwrap_or_default(), int(doc, sub, "cues").unwrap_or(0)))) {
        Some((srt, language, cues)) => {
            tx.execute(
                "INSERT INTO subtitles (lesson_id, srt, language, cues) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (lesson_id) DO UPDATE SET srt = excluded.srt, language = excluded.language, cues = excluded.cues",
                params![l.id, srt, language, cues],
            )?;
        }
        None => {
            tx.execute("DELETE FROM subtitles WHERE lesson_id = ?1", [&l.id])?;
        }
    }
    // The competitions its school entered it in (before the upload queue, which puts entries first).
    let mut entries = Vec::new();
    if let Some(map) = child(doc, &ROOT, "competitions") {
        for competition in doc.keys(&map) {
            let Some(e) = child(doc, &map, &competition) else { continue };
            entries.push((competition, int(doc, &e, "at").unwrap_or(0), text(doc, &e, "by").unwrap_or_default()));
        }
    }
    crate::competition_entries::replace(tx, &l.id, &entries)?;
    // Only media from this node's subtree goes up (not lessons published down from above).
    let from_subtree = l.origin_node == w.node_id || documents::came_from_child(tx, &l.id)?;
    if let (Some(parent), Some(m), true) = (w.tier.parent().filter(|_| w.has_parent), &l.media, from_subtree) {
        // A lesson taken down goes no further up.
        let share = if taken_down { Tier::School } else { l.share_level };
        queue_upload(tx, &l.id, &m.hash, m.size, "media_hash", share, parent)?;
        // Its ladder goes up with it, so no tier above transcodes it again.
        if let Some(x) = &l.ladder {
            queue_upload(tx, &l.id, &x.hash, x.size, "ladder_hash", share, parent)?;
        }
    }
    Ok(Routing { origin_node: l.origin_node, share: l.share_level, published })
}

/// Keeps the upload queue in step with a lesson's share level: its media is queued for the parent
/// when the level reaches the parent's tier (competition entries first, then by share time), and
/// dropped from the queue, if not sent yet, when the level falls below it and no other lesson
/// going up uses the same file.
fn queue_upload(tx: &Transaction<'_>, lesson: &str, hash: &str, size: u64, column: &str, share: Tier, parent: Tier) -> Result<(), DocError> {
    if goes_up(share, parent) {
        let entered = crate::competition_entries::is_entered(tx, lesson)?;
        sync_state::enqueue_upload(tx, hash, size, Some(lesson), entered)?;
    } else {
        let levels: Vec<&str> = Tier::ALL.iter().filter(|t| goes_up(**t, parent)).map(|t| t.as_str()).collect();
        // `column` is media_hash or ladder_hash, never from outside.
        let also_going_up: bool = tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM lessons l WHERE l.{column} = ?1 AND l.id <> ?2
                                AND l.share_level IN (SELECT value FROM json_each(?3)))"
            ),
            params![hash, lesson, serde_json::to_string(&levels).unwrap_or_default()],
            |r| r.get(0),
        )?;
        if !also_going_up {
            sync_state::drop_pending_upload(tx, hash)?;
        }
    }
    Ok(())
}

/// Records the ladder made here for a lesson (as a rendition pack already in the blob store):
/// it travels with the lesson's document, and its pack goes up like the recording.
pub fn set_ladder(tx: &Transaction<'_>, w: &Writer, id: &str, ladder: &Ladder) -> Result<Option<Lesson>, DocError> {
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(None) };
    let media = match child(&doc, &ROOT, "media") {
        Some(m) => m,
        None => doc.put_object(ROOT, "media", ObjType::Map)?,
    };
    let o = doc.put_object(&media, "ladder", ObjType::Map)?;
    doc.put(&o, "hash", ladder.hash.as_str())?;
    doc.put(&o, "size", ladder.size)?;
    doc.put(&o, "hls_json", serde_json::to_string(&ladder.hls).unwrap_or_default())?;
    save(tx, w, &mut doc).map(Some)
}

/// Saves a locally changed lesson document and returns the lesson (its row, as this node sees it).
pub fn save(tx: &Transaction<'_>, w: &Writer, doc: &mut AutoCommit) -> Result<Lesson, DocError> {
    documents::commit(tx, w, &LESSONS, doc)?;
    let id = text(doc, &ROOT, "id").unwrap_or_default();
    get(tx, &id)?.ok_or_else(|| DocError::BadDocument(format!("lesson {id} was saved but has no row")))
}

/// Records in the lesson's document that this tier now holds its recording, so its teacher
/// sees how far it got (送达); once per tier.
pub fn mark_arrived(tx: &Transaction<'_>, w: &Writer, id: &str) -> Result<(), DocError> {
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(()) };
    let map = match child(&doc, &ROOT, "arrived") {
        Some(m) => m,
        None => doc.put_object(ROOT, "arrived", ObjType::Map)?,
    };
    if child(&doc, &map, w.tier.as_str()).is_some() {
        return Ok(());
    }
    let o = doc.put_object(&map, w.tier.as_str(), ObjType::Map)?;
    doc.put(&o, "node", w.node_name.as_str())?;
    doc.put(&o, "at", crate::store::now_ms())?;
    documents::commit(tx, w, &LESSONS, &mut doc)?;
    Ok(())
}

/// Works out again whether a lesson is listed and published here (its collections changed): its
/// unchanged document is committed anew, so its row, the search index and the children follow.
pub fn relist(tx: &Transaction<'_>, w: &Writer, id: &str) -> Result<(), DocError> {
    if let Some(mut doc) = load_document(tx, w, id)? {
        documents::commit(tx, w, &LESSONS, &mut doc)?;
    }
    Ok(())
}

/// Loads a lesson's document, if this node has it.
pub fn load_document(conn: &Connection, w: &Writer, id: &str) -> Result<Option<AutoCommit>, DocError> {
    documents::load(conn, w, Kind::Lesson, id)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Source;
    use crate::store::{Store, now_ms};

    fn writer(tier: Tier, has_parent: bool) -> Writer {
        Writer { node_id: uuid::Uuid::new_v4().to_string(), node_name: "实验中学".into(), tier, has_parent }
    }

    fn new_lesson() -> NewLesson {
        NewLesson {
            title: "勾股定理".into(),
            teacher: "王芳".into(),
            grade: "八年级".into(),
            subject: "数学".into(),
            textbook_chapter: "第十七章 勾股定理".into(),
            knowledge_points: vec!["直角三角形".into(), "勾股数".into()],
            tags: vec!["公开课".into()],
            original_name: "勾股定理.mp4".into(),
            media: Some(MediaRef { hash: "ab".repeat(32), size: 1234, mime: "video/mp4".into() }),
            probe_json: r#"{"duration_secs": 12.5}"#.into(),
            compliance: "V1 pass h264 (High)".into(),
            ..NewLesson::default()
        }
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store.read(|c| Ok::<_, DocError>(c.query_row(sql, [], |r| r.get(0))?)).expect("count")
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
        assert_eq!(lesson.textbook_chapter, "第十七章 勾股定理");
        assert_eq!(lesson.duration_secs, Some(12.5));
        let rule = serde_json::json!({"id": "V1", "item": "video codec", "rule": "H.264", "verdict": "pass", "measured": "h264 (High)"});
        assert_eq!(lesson.compliance.as_ref().and_then(|c| c.parse()), Some(serde_json::json!({"rules": [rule]})), "read back whole from the compact form");
        let row = store.read(|c| get(c, &id)).expect("get").expect("row");
        assert_eq!(row, lesson);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM uploads"), 0, "a school-level lesson does not go up");
        let shared = store.write(|tx| set_share_level(tx, &w, &id, Tier::Province)).expect("share").expect("exists");
        assert_eq!(shared.share_level, Tier::Province);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM uploads"), 1);
        let changed = store.read(|c| changed_since(c, 1, 10)).expect("changed");
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1, 2);
    }

    #[test]
    fn the_upload_queue_follows_share_levels_with_competition_entries_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let w = writer(Tier::School, true);
        let lesson_with = |hash: &str| NewLesson { media: Some(MediaRef { hash: hash.repeat(32), size: 10, mime: "video/mp4".into() }), ..new_lesson() };
        let mut ids = Vec::new();
        for h in ["a1", "b2", "c3"] {
            let id = uuid::Uuid::new_v4().to_string();
            store.write(|tx| save(tx, &w, &mut new_document(&w, &id, &lesson_with(h))?)).expect("save");
            store.write(|tx| set_share_level(tx, &w, &id, Tier::City)).expect("share");
            ids.push(id);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let order = |store: &Store| -> Vec<String> {
            store
                .read(|c| {
                    let mut st = c.prepare("SELECT lesson_id FROM uploads WHERE done_at IS NULL ORDER BY priority DESC, enqueued_at")?;
                    let rows = st.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
                    Ok::<_, DocError>(rows)
                })
                .expect("order")
        };
        assert_eq!(order(&store), ids, "by share time");
        // The third lesson enters a competition the city runs: it goes first.
        let city = Store::open(&dir.path().join("city")).expect("open");
        let wc = writer(Tier::City, true);
        let comp = crate::catalog::Competition { title: "优质课评选".into(), ..Default::default() };
        let comp = city.write(|tx| crate::catalog::create_competition(tx, &wc, &comp)).expect("competition");
        let doc = city
            .read(|c| c.query_row("SELECT id, kind, seq, bytes, heads FROM docs", [], |r| {
                Ok(youke_federation::protocol::DocUpdate { id: r.get(0)?, kind: r.get(1)?, seq: r.get::<_, i64>(2)? as u64, bytes: r.get(3)?, version: r.get(4)?, full: true })
            }).map_err(DocError::from))
            .expect("document");
        store.write(|tx| documents::merge_remote(tx, &w, &crate::kinds::ALL, &doc, Source::Parent(&wc.node_id))).expect("merge");
        store.write(|tx| crate::competitions::submit(tx, &w, &comp.id, &ids[2], now_ms())).expect("enter");
        assert_eq!(order(&store), vec![ids[2].clone(), ids[0].clone(), ids[1].clone()]);
        // Unsharing the first removes its pending upload; sharing again queues it anew.
        store.write(|tx| set_share_level(tx, &w, &ids[0], Tier::School)).expect("unshare");
        assert_eq!(order(&store), vec![ids[2].clone(), ids[1].clone()]);
        store.write(|tx| set_share_level(tx, &w, &ids[0], Tier::Province)).expect("reshare");
        assert_eq!(order(&store), vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
        // A file used by another lesson that still goes up stays queued.
        let twin = uuid::Uuid::new_v4().to_string();
        store.write(|tx| save(tx, &w, &mut new_document(&w, &twin, &lesson_with("b2"))?)).expect("twin");
        store.write(|tx| set_share_level(tx, &w, &twin, Tier::City)).expect("share twin");
        store.write(|tx| set_share_level(tx, &w, &ids[1], Tier::School)).expect("unshare one");
        assert_eq!(count(&store, &format!("SELECT COUNT(*) FROM uploads WHERE hash = '{}'", "b2".repeat(32))), 1);
    }

    #[test]
    fn ratings_comments_reviews_and_views_are_kept_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let w = writer(Tier::School, false);
        let id = uuid::Uuid::new_v4().to_string();
        store.write(|tx| save(tx, &w, &mut new_document(&w, &id, &new_lesson())?)).expect("save");
        let edits = [
            LessonEdit::Rate { user: "李老师".into(), score: 4 },
            LessonEdit::Rate { user: "张老师".into(), score: 5 },
            LessonEdit::Rate { user: "李老师".into(), score: 2 },
            LessonEdit::Comment { author: "学生甲".into(), text: "讲得很清楚".into() },
            LessonEdit::Review { expert: "省专家".into(), score: 92, comment: "示范性强".into() },
            LessonEdit::Views(1),
            LessonEdit::Views(1),
        ];
        for e in &edits {
            store.write(|tx| edit(tx, &w, &id, e)).expect("edit").expect("lesson");
        }
        let l = store.read(|c| get(c, &id)).expect("get").expect("row");
        assert_eq!((l.rating_count, l.rating_avg), (2, Some(3.5)));
        assert_eq!((l.comment_count, l.review_count, l.review_avg, l.views), (1, 1, Some(92.0), 2));
        let d = store.read(|c| discussion(c, &w, &id)).expect("read").expect("doc");
        assert_eq!(d.comments[0].text, "讲得很清楚");
        assert_eq!(d.reviews[0].expert, "省专家");
        for bad in [
            LessonEdit::Rate { user: "x".into(), score: 9 },
            LessonEdit::Comment { author: "".into(), text: "hi".into() },
            LessonEdit::Review { expert: "e".into(), score: 101, comment: "".into() },
        ] {
            assert!(matches!(store.write(|tx| edit(tx, &w, &id, &bad)), Err(DocError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn concurrent_edits_at_two_tiers_merge_without_loss() {
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
                Ok::<_, DocError>(documents::full_update(Kind::Lesson, &mut doc, 1))
            })
            .expect("create");
        city.write(|tx| documents::merge_remote(tx, &wc, &crate::kinds::ALL, &bytes, Source::Child(&ws.node_id))).expect("first sync");
        // While offline: the school retitles and counts a view, the city reviews and counts a view.
        school.write(|tx| edit(tx, &ws, &id, &LessonEdit::Views(1))).expect("view");
        let school_bytes = school
            .write(|tx| {
                let mut doc = load_document(tx, &ws, &id)?.expect("doc");
                doc.put(ROOT, "title", "勾股定理（第二课时）")?;
                save(tx, &ws, &mut doc)?;
                Ok::<_, DocError>(documents::full_update(Kind::Lesson, &mut doc, 3))
            })
            .expect("edit");
        city.write(|tx| edit(tx, &wc, &id, &LessonEdit::Review { expert: "市教研员".into(), score: 88, comment: "好".into() })).expect("review");
        city.write(|tx| edit(tx, &wc, &id, &LessonEdit::Views(1))).expect("view");
        let city_bytes = city.read(|c| Ok::<_, DocError>(documents::full_update(Kind::Lesson, &mut load_document(c, &wc, &id)?.expect("doc"), 9))).expect("bytes");
        // Both directions merge to the same lesson.
        let at_city = city.write(|tx| {
            documents::merge_remote(tx, &wc, &crate::kinds::ALL, &school_bytes, Source::Child(&ws.node_id))?;
            Ok::<_, DocError>(get(tx, &id)?.expect("row"))
        }).expect("merge at city");
        let at_school = school.write(|tx| {
            documents::merge_remote(tx, &ws, &crate::kinds::ALL, &city_bytes, Source::Parent(&wc.node_id))?;
            Ok::<_, DocError>(get(tx, &id)?.expect("row"))
        }).expect("merge at school");
        // Only whether it is listed differs: the school's own lesson is listed there; at the city
        // it waits (shared with the school only, it has no audience there).
        assert!(at_school.listed && !at_city.listed);
        assert_eq!(Lesson { listed: true, ..at_city.clone() }, at_school);
        assert_eq!(at_city.title, "勾股定理（第二课时）");
        assert_eq!((at_city.views, at_city.review_count), (2, 1));
        let heads = |s: &Store| s.read(|c| documents::heads_of(c, Kind::Lesson)).expect("heads");
        assert_eq!(heads(&school), heads(&city));
    }

    #[test]
    fn foreign_or_mislabelled_documents_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let w = writer(Tier::City, true);
        let garbage = youke_federation::protocol::DocUpdate { id: "x".into(), kind: "lesson".into(), seq: 1, version: String::new(), full: true, bytes: b"not automerge".to_vec() };
        assert!(store.write(|tx| documents::merge_remote(tx, &w, &crate::kinds::ALL, &garbage, Source::Child("s"))).is_err());
        let mut other = w.new_doc();
        documents::put_header(&mut other, Kind::Announcement, "a1", &w).expect("header");
        let mut update = documents::full_update(Kind::Announcement, &mut other, 1);
        update.kind = "lesson".into();
        let err = store.write(|tx| documents::merge_remote(tx, &w, &crate::kinds::ALL, &update, Source::Child("s"))).expect_err("mislabelled");
        assert!(matches!(err, DocError::BadDocument(_)), "{err}");
        update.kind = "virus".into();
        assert!(store.write(|tx| documents::merge_remote(tx, &w, &crate::kinds::ALL, &update, Source::Child("s"))).is_err());
        // Changes that build on a version this node never had are refused, not half-applied.
        let mut lesson = new_document(&w, "l9", &new_lesson()).expect("doc");
        let mut partial = documents::full_update(Kind::Lesson, &mut lesson, 1);
        partial.full = false;
        let outcome = store.write(|tx| documents::merge_remote(tx, &w, &crate::kinds::ALL, &partial, Source::Child("s"))).expect("no error");
        assert_eq!(outcome, documents::MergeOutcome::NeedFull);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM docs"), 0);
    }
}
