//! What cities and provinces publish down the tree: collections (专辑: ordered lessons,
//! featured and pinned flags), announcements (通知) and competitions (评选: fields only; the
//! workflow comes with the portal). Each is an automerge document with the common header
//! (see [`crate::documents`]) and a row in its table.
//!
//! Layouts, schema version 1: collection {`title`, `description`, `lessons` (list of lesson
//! ids), `featured`, `pinned`, `published`}; announcement {`title`, `body`, `audience`
//! (all | school | city), `publish_at` (ms)}; competition {`title`, `description`, `opens_at`,
//! `closes_at` (ms), `requires_standard` (bool: entries must pass the course video standard),
//! `rubric` (list of {`name`, `max`}: what experts score), `awards` (map lesson id → award
//! name), `awarded_at` (ms, 0 until the results are published), `archive_collection` (the
//! collection of the winners)}; documents written before the workflow may hold an unused
//! `entries` list. Entries themselves are written by the schools into their lessons'
//! documents (see [`crate::competitions`]). Announcements and competitions are always
//! published; a collection is published when `published` is true.

use crate::store::StoreError;
use crate::documents::{self, DocError, Kind, Routing, Writer, boolean, child, int, text, text_list};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use youke_federation::Tier;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    #[serde(default)]
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub lessons: Vec<String>,
    #[serde(default)]
    pub featured: bool,
    #[serde(default)]
    pub pinned: bool,
    #[serde(default = "yes")]
    pub published: bool,
    #[serde(default)]
    pub origin_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    #[serde(default)]
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// all, school or city.
    #[serde(default = "all")]
    pub audience: String,
    #[serde(default)]
    pub publish_at: i64,
    #[serde(default)]
    pub origin_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Competition {
    #[serde(default)]
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// When submissions open (ms; 0: at once).
    #[serde(default)]
    pub opens_at: i64,
    /// The deadline for submissions (ms; 0: none).
    #[serde(default)]
    pub closes_at: i64,
    #[serde(default)]
    pub requires_standard: bool,
    /// What the experts score; empty when created means [`default_rubric`].
    #[serde(default)]
    pub rubric: Vec<Criterion>,
    /// Lesson id → award name, once the results are published.
    #[serde(default)]
    pub awards: std::collections::BTreeMap<String, String>,
    /// When the results were published (ms; 0: not yet).
    #[serde(default)]
    pub awarded_at: i64,
    /// The published collection of the winning lessons.
    #[serde(default)]
    pub archive_collection: String,
    #[serde(default)]
    pub origin_node: String,
    #[serde(default)]
    pub origin_name: String,
    /// The tier of the node that runs it: entries are shared at least this far.
    #[serde(default)]
    pub origin_tier: String,
}

/// One line of a competition's scoring rubric (评分标准).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub name: String,
    /// The most points an expert can give for it.
    pub max: i64,
}

/// The rubric a competition gets when its admin names none: 100 points in four parts.
pub fn default_rubric() -> Vec<Criterion> {
    [("教学设计", 30), ("教学实施", 40), ("教学效果", 20), ("视频质量", 10)].into_iter().map(|(n, m)| Criterion { name: n.into(), max: m }).collect()
}

/// Most rubric lines; longest name; most points per line.
pub const MAX_CRITERIA: usize = 20;
pub const MAX_POINTS: i64 = 100;

fn yes() -> bool {
    true
}

fn all() -> String {
    "all".into()
}

fn check_title(t: &str) -> Result<(), DocError> {
    if t.trim().is_empty() || t.chars().count() > 200 {
        return Err(DocError::Invalid("a title of 1 to 200 characters is required".into()));
    }
    Ok(())
}

/// Creates a document of `kind` at this node: header, then `fill` writes its fields, then it
/// is committed with its row.
fn create(tx: &Transaction<'_>, w: &Writer, kind: Kind, fill: impl FnOnce(&mut AutoCommit) -> Result<(), DocError>) -> Result<AutoCommit, DocError> {
    let id = uuid::Uuid::new_v4().to_string();
    let mut doc = w.new_doc();
    documents::put_header(&mut doc, kind, &id, w)?;
    fill(&mut doc)?;
    documents::commit(tx, w, schema(kind), &mut doc)?;
    Ok(doc)
}

/// Creates a collection at this node.
pub fn create_collection(tx: &Transaction<'_>, w: &Writer, c: &Collection) -> Result<Collection, DocError> {
    check_title(&c.title)?;
    let doc = create(tx, w, Kind::Collection, |doc| {
        doc.put(ROOT, "title", c.title.trim())?;
        doc.put(ROOT, "description", c.description.as_str())?;
        documents::put_text_list(doc, &ROOT, "lessons", &c.lessons)?;
        doc.put(ROOT, "featured", c.featured)?;
        doc.put(ROOT, "pinned", c.pinned)?;
        doc.put(ROOT, "published", c.published)?;
        Ok(())
    })?;
    read_collection(&doc)
}

/// Creates an announcement at this node (published down the tree).
pub fn create_announcement(tx: &Transaction<'_>, w: &Writer, a: &Announcement) -> Result<Announcement, DocError> {
    check_announcement(a)?;
    let doc = create(tx, w, Kind::Announcement, |doc| {
        doc.put(ROOT, "title", a.title.trim())?;
        doc.put(ROOT, "body", a.body.as_str())?;
        doc.put(ROOT, "audience", a.audience.as_str())?;
        doc.put(ROOT, "publish_at", if a.publish_at > 0 { a.publish_at } else { crate::store::now_ms() })?;
        Ok(())
    })?;
    read_announcement(&doc)
}

/// Loads a collection or announcement this node made, for a change: another node's is
/// changed where it was made, a deleted one not at all. `None` if this node does not have it.
fn load_own(tx: &Transaction<'_>, w: &Writer, kind: Kind, id: &str) -> Result<Option<AutoCommit>, DocError> {
    let Some(doc) = documents::load(tx, w, kind, id)? else { return Ok(None) };
    if boolean(&doc, &ROOT, "deleted") == Some(true) {
        return Ok(None);
    }
    let (origin_node, origin_name) = origin(&doc)?;
    if origin_node != w.node_id {
        return Err(DocError::Invalid(format!("this was published by {origin_name}; it is changed there")));
    }
    Ok(Some(doc))
}

/// Replaces a collection's fields (title, description, lessons in order, flags) at the node
/// that made it. `None` if there is no such collection here.
pub fn update_collection(tx: &Transaction<'_>, w: &Writer, id: &str, c: &Collection) -> Result<Option<Collection>, DocError> {
    check_title(&c.title)?;
    let Some(mut doc) = load_own(tx, w, Kind::Collection, id)? else { return Ok(None) };
    doc.put(ROOT, "title", c.title.trim())?;
    doc.put(ROOT, "description", c.description.as_str())?;
    documents::put_text_list(&mut doc, &ROOT, "lessons", &c.lessons)?;
    doc.put(ROOT, "featured", c.featured)?;
    doc.put(ROOT, "pinned", c.pinned)?;
    doc.put(ROOT, "published", c.published)?;
    documents::commit(tx, w, &COLLECTIONS, &mut doc)?;
    read_collection(&doc).map(Some)
}

/// Replaces an announcement's fields at the node that made it.
pub fn update_announcement(tx: &Transaction<'_>, w: &Writer, id: &str, a: &Announcement) -> Result<Option<Announcement>, DocError> {
    check_announcement(a)?;
    let Some(mut doc) = load_own(tx, w, Kind::Announcement, id)? else { return Ok(None) };
    doc.put(ROOT, "title", a.title.trim())?;
    doc.put(ROOT, "body", a.body.as_str())?;
    doc.put(ROOT, "audience", a.audience.as_str())?;
    doc.put(ROOT, "publish_at", if a.publish_at > 0 { a.publish_at } else { crate::store::now_ms() })?;
    documents::commit(tx, w, &ANNOUNCEMENTS, &mut doc)?;
    read_announcement(&doc).map(Some)
}

/// Deletes a collection or an announcement at the node that made it: the document keeps a
/// tombstone, which reaches every node holding it, and each drops its row. Whether it was here.
pub fn delete(tx: &Transaction<'_>, w: &Writer, kind: Kind, id: &str) -> Result<bool, DocError> {
    if !matches!(kind, Kind::Collection | Kind::Announcement) {
        return Err(DocError::Invalid(format!("a {} is not deleted this way", kind.as_str())));
    }
    let Some(mut doc) = load_own(tx, w, kind, id)? else { return Ok(false) };
    doc.put(ROOT, "deleted", true)?;
    documents::commit(tx, w, schema(kind), &mut doc)?;
    Ok(true)
}

fn check_announcement(a: &Announcement) -> Result<(), DocError> {
    check_title(&a.title)?;
    if !AUDIENCES.contains(&a.audience.as_str()) {
        return Err(DocError::Invalid("audience is all, school or city".into()));
    }
    if a.body.chars().count() > documents::MAX_TEXT {
        return Err(DocError::Invalid(format!("a notice is at most {} characters", documents::MAX_TEXT)));
    }
    Ok(())
}

/// Who an announcement is for: every node, the schools, or the cities.
pub const AUDIENCES: [&str; 3] = ["all", "school", "city"];

/// Whether an announcement is shown at a node of tier `here` at time `now`: published
/// (`publish_at` reached) and meant for this tier (the province, which publishes them, sees
/// every one).
pub fn announcement_shown(a: &Announcement, here: Tier, now: i64) -> bool {
    a.publish_at <= now && (a.audience == "all" || here == Tier::Province || a.audience == here.as_str())
}

/// Creates a competition at this node (published down the tree). Only a city or the province
/// runs competitions; an empty rubric gets [`default_rubric`].
pub fn create_competition(tx: &Transaction<'_>, w: &Writer, c: &Competition) -> Result<Competition, DocError> {
    check_title(&c.title)?;
    if w.tier == Tier::School {
        return Err(DocError::Invalid("competitions are published by a city or the province, not by a school".into()));
    }
    if c.closes_at != 0 && c.closes_at < c.opens_at {
        return Err(DocError::Invalid("a competition cannot close before it opens".into()));
    }
    if c.description.chars().count() > documents::MAX_TEXT {
        return Err(DocError::Invalid(format!("the rules text is longer than {} characters", documents::MAX_TEXT)));
    }
    let rubric = if c.rubric.is_empty() { default_rubric() } else { c.rubric.clone() };
    if rubric.len() > MAX_CRITERIA {
        return Err(DocError::Invalid(format!("a rubric has at most {MAX_CRITERIA} lines")));
    }
    for (i, k) in rubric.iter().enumerate() {
        if k.name.trim().is_empty() || k.name.chars().count() > 50 || !(1..=MAX_POINTS).contains(&k.max) {
            return Err(DocError::Invalid(format!("rubric line {}: a name of 1 to 50 characters and 1 to {MAX_POINTS} points", i + 1)));
        }
        if rubric[..i].iter().any(|o| o.name.trim() == k.name.trim()) {
            return Err(DocError::Invalid(format!("rubric line {}: {} is named twice", i + 1, k.name.trim())));
        }
    }
    if !c.awards.is_empty() || c.awarded_at != 0 {
        return Err(DocError::Invalid("awards are given when the results are published, not when the competition is".into()));
    }
    let doc = create(tx, w, Kind::Competition, |doc| {
        doc.put(ROOT, "title", c.title.trim())?;
        doc.put(ROOT, "description", c.description.as_str())?;
        doc.put(ROOT, "opens_at", c.opens_at)?;
        doc.put(ROOT, "closes_at", c.closes_at)?;
        doc.put(ROOT, "requires_standard", c.requires_standard)?;
        let list = doc.put_object(ROOT, "rubric", automerge::ObjType::List)?;
        for (i, k) in rubric.iter().enumerate() {
            let line = doc.insert_object(&list, i, automerge::ObjType::Map)?;
            doc.put(&line, "name", k.name.trim())?;
            doc.put(&line, "max", k.max)?;
        }
        doc.put_object(ROOT, "awards", automerge::ObjType::Map)?;
        doc.put(ROOT, "awarded_at", 0_i64)?;
        doc.put(ROOT, "archive_collection", "")?;
        Ok(())
    })?;
    read_competition(&doc)
}

/// Writes a competition's results into its document: the awards, when, and the collection the
/// winners are archived in. Checking them is [`crate::competitions::publish_results`]'s work.
pub fn put_results(tx: &Transaction<'_>, w: &Writer, competition: &str, awards: &[(String, String)], collection: &str) -> Result<Option<Competition>, DocError> {
    let Some(mut doc) = documents::load(tx, w, Kind::Competition, competition)? else { return Ok(None) };
    let map = match child(&doc, &ROOT, "awards") {
        Some(a) => a,
        None => doc.put_object(ROOT, "awards", automerge::ObjType::Map)?,
    };
    for (lesson, award) in awards {
        doc.put(&map, lesson.as_str(), award.trim())?;
    }
    doc.put(ROOT, "awarded_at", crate::store::now_ms())?;
    doc.put(ROOT, "archive_collection", collection)?;
    documents::commit(tx, w, &COMPETITIONS, &mut doc)?;
    read_competition(&doc).map(Some)
}

fn read_collection(doc: &AutoCommit) -> Result<Collection, DocError> {
    Ok(Collection {
        id: text(doc, &ROOT, "id").ok_or_else(|| DocError::BadDocument("collection without id".into()))?,
        title: text(doc, &ROOT, "title").unwrap_or_default(),
        description: text(doc, &ROOT, "description").unwrap_or_default(),
        lessons: text_list(doc, &ROOT, "lessons"),
        featured: boolean(doc, &ROOT, "featured").unwrap_or(false),
        pinned: boolean(doc, &ROOT, "pinned").unwrap_or(false),
        published: boolean(doc, &ROOT, "published").unwrap_or(false),
        origin_name: text(doc, &ROOT, "origin_name").unwrap_or_default(),
    })
}

fn read_announcement(doc: &AutoCommit) -> Result<Announcement, DocError> {
    Ok(Announcement {
        id: text(doc, &ROOT, "id").ok_or_else(|| DocError::BadDocument("announcement without id".into()))?,
        title: text(doc, &ROOT, "title").unwrap_or_default(),
        body: text(doc, &ROOT, "body").unwrap_or_default(),
        audience: text(doc, &ROOT, "audience").unwrap_or_else(all),
        publish_at: int(doc, &ROOT, "publish_at").unwrap_or(0),
        origin_name: text(doc, &ROOT, "origin_name").unwrap_or_default(),
    })
}

fn read_competition(doc: &AutoCommit) -> Result<Competition, DocError> {
    let awards = match child(doc, &ROOT, "awards") {
        Some(a) => doc.keys(&a).filter_map(|k| text(doc, &a, &k).map(|v| (k, v))).collect(),
        None => Default::default(),
    };
    let rubric = match child(doc, &ROOT, "rubric") {
        Some(list) => (0..doc.length(&list))
            .filter_map(|i| {
                let line = match doc.get(&list, i).ok().flatten() {
                    Some((automerge::Value::Object(_), id)) => id,
                    _ => return None,
                };
                Some(Criterion { name: text(doc, &line, "name")?, max: int(doc, &line, "max")? })
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Competition {
        id: text(doc, &ROOT, "id").ok_or_else(|| DocError::BadDocument("competition without id".into()))?,
        title: text(doc, &ROOT, "title").unwrap_or_default(),
        description: text(doc, &ROOT, "description").unwrap_or_default(),
        opens_at: int(doc, &ROOT, "opens_at").unwrap_or(0),
        closes_at: int(doc, &ROOT, "closes_at").unwrap_or(0),
        requires_standard: boolean(doc, &ROOT, "requires_standard").unwrap_or(false),
        rubric,
        awards,
        awarded_at: int(doc, &ROOT, "awarded_at").unwrap_or(0),
        archive_collection: text(doc, &ROOT, "archive_collection").unwrap_or_default(),
        origin_node: text(doc, &ROOT, "origin_node").unwrap_or_default(),
        origin_name: text(doc, &ROOT, "origin_name").unwrap_or_default(),
        origin_tier: text(doc, &ROOT, "origin_tier").unwrap_or_default(),
    })
}

fn origin(doc: &AutoCommit) -> Result<(String, String), DocError> {
    Ok((
        text(doc, &ROOT, "origin_node").ok_or_else(|| DocError::BadDocument("missing origin_node".into()))?,
        text(doc, &ROOT, "origin_name").unwrap_or_default(),
    ))
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Collections, announcements and competitions, for the document store.
#[derive(Debug)]
pub struct CatalogSchema(Kind);

pub static COLLECTIONS: CatalogSchema = CatalogSchema(Kind::Collection);
pub static ANNOUNCEMENTS: CatalogSchema = CatalogSchema(Kind::Announcement);
pub static COMPETITIONS: CatalogSchema = CatalogSchema(Kind::Competition);

impl documents::Schema for CatalogSchema {
    fn kind(&self) -> Kind {
        self.0
    }
    fn materialize(&self, tx: &Transaction<'_>, _: &Writer, doc: &AutoCommit, _: u64) -> Result<Routing, DocError> {
        materialize(tx, self.0, doc)
    }
}

fn schema(kind: Kind) -> &'static CatalogSchema {
    match kind {
        Kind::Announcement => &ANNOUNCEMENTS,
        Kind::Competition => &COMPETITIONS,
        _ => &COLLECTIONS,
    }
}

/// Writes the row of a collection, announcement or competition (called by
/// [`documents::commit`]). These never travel up: their share rank is their origin's tier... of
/// school, so only the scope down applies.
pub fn materialize(tx: &Transaction<'_>, kind: Kind, doc: &AutoCommit) -> Result<Routing, DocError> {
    let (origin_node, origin_name) = origin(doc)?;
    if boolean(doc, &ROOT, "deleted") == Some(true) {
        // A tombstone: the row goes; the document still travels to every node that holds it.
        let id = text(doc, &ROOT, "id").unwrap_or_default();
        match kind {
            Kind::Collection => {
                tx.execute("INSERT OR IGNORE INTO relist (lesson_id) SELECT lesson_id FROM collection_lessons WHERE collection_id = ?1", [&id])?;
                tx.execute("DELETE FROM collection_lessons WHERE collection_id = ?1", [&id])?;
                tx.execute("DELETE FROM collections WHERE id = ?1", [&id])?;
            }
            Kind::Announcement => {
                tx.execute("DELETE FROM announcements WHERE id = ?1", [&id])?;
            }
            _ => {}
        }
        return Ok(Routing { origin_node, share: Tier::School, published: false });
    }
    let published = match kind {
        Kind::Collection => {
            let c = read_collection(doc)?;
            // What it was: when its lessons or its publication change, whether each lesson is
            // listed is worked out again (the `relist` queue).
            let was: Option<(bool, String)> = tx
                .query_row("SELECT published, lessons FROM collections WHERE id = ?1", [&c.id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let before: Vec<String> = was.as_ref().map(|(_, l)| serde_json::from_str(l).unwrap_or_default()).unwrap_or_default();
            if was.as_ref().is_none_or(|(p, _)| *p != c.published) || before != c.lessons {
                let mut queue = tx.prepare_cached("INSERT OR IGNORE INTO relist (lesson_id) VALUES (?1)")?;
                for lesson in before.iter().chain(&c.lessons) {
                    queue.execute([lesson])?;
                }
            }
            tx.execute(
                "INSERT INTO collections (id, title, description, lessons, featured, pinned, published, origin_node, origin_name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, description = excluded.description, lessons = excluded.lessons,
                   featured = excluded.featured, pinned = excluded.pinned, published = excluded.published",
                params![c.id, c.title, c.description, json(&c.lessons), c.featured, c.pinned, c.published, origin_node, origin_name, int(doc, &ROOT, "created_at").unwrap_or(0)],
            )?;
            tx.execute("DELETE FROM collection_lessons WHERE collection_id = ?1", [&c.id])?;
            let mut add = tx.prepare_cached("INSERT OR IGNORE INTO collection_lessons (collection_id, lesson_id) VALUES (?1, ?2)")?;
            for lesson in &c.lessons {
                add.execute(params![c.id, lesson])?;
            }
            if c.published {
                // Its lessons go down the tree too: each gets a new sequence number so that
                // children whose cursors are past it still receive it.
                documents::publish_lessons(tx, &c.lessons)?;
            }
            c.published
        }
        Kind::Announcement => {
            let a = read_announcement(doc)?;
            tx.execute(
                "INSERT INTO announcements (id, title, body, audience, publish_at, origin_node, origin_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body, audience = excluded.audience, publish_at = excluded.publish_at",
                params![a.id, a.title, a.body, a.audience, a.publish_at, origin_node, origin_name],
            )?;
            true
        }
        Kind::Competition => {
            let c = read_competition(doc)?;
            tx.execute(
                "INSERT INTO competitions (id, title, description, opens_at, closes_at, requires_standard, entries, awards, origin_node, origin_name,
                    rubric, awarded_at, archive_collection, origin_tier)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '[]', ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, description = excluded.description, opens_at = excluded.opens_at,
                   closes_at = excluded.closes_at, requires_standard = excluded.requires_standard, awards = excluded.awards,
                   rubric = excluded.rubric, awarded_at = excluded.awarded_at, archive_collection = excluded.archive_collection,
                   origin_tier = excluded.origin_tier",
                params![
                    c.id, c.title, c.description, c.opens_at, c.closes_at, c.requires_standard, json(&c.awards), origin_node, origin_name,
                    json(&c.rubric), c.awarded_at, c.archive_collection, c.origin_tier
                ],
            )?;
            true
        }
        Kind::Lesson | Kind::Revocations => return Err(DocError::BadDocument(format!("a {} is not a catalog document", kind.as_str()))),
    };
    Ok(Routing { origin_node, share: Tier::School, published })
}

fn list_json<T: for<'de> Deserialize<'de>>(conn: &Connection, sql: &str, build: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>, DocError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], build)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The published collections a lesson is in: (id, title).
pub fn collections_of(conn: &Connection, lesson: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.title FROM collection_lessons cl JOIN collections c ON c.id = cl.collection_id WHERE cl.lesson_id = ?1 AND c.published = 1 ORDER BY c.created_at",
    )?;
    let rows = stmt.query_map([lesson], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Takes up to `limit` lessons from the `relist` queue (whose collections changed).
pub fn take_relist(tx: &Transaction<'_>, limit: usize) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = {
        let mut stmt = tx.prepare_cached("SELECT lesson_id FROM relist LIMIT ?1")?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let mut del = tx.prepare_cached("DELETE FROM relist WHERE lesson_id = ?1")?;
    for id in &ids {
        del.execute([id])?;
    }
    Ok(ids)
}

/// The lessons of pinned collections (their media is prefetched and never evicted).
pub fn pinned_lessons(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT cl.lesson_id FROM collection_lessons cl JOIN collections c ON c.id = cl.collection_id WHERE c.pinned = 1")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// How many collections this node holds.
pub fn collection_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM collections", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Whether a lesson is in a collection published down the tree.
pub fn in_published_collection(conn: &Connection, lesson: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM collection_lessons cl JOIN collections c ON c.id = cl.collection_id WHERE cl.lesson_id = ?1 AND c.published = 1)",
    )?;
    Ok(stmt.query_row([lesson], |r| r.get(0))?)
}

pub fn collections(conn: &Connection) -> Result<Vec<Collection>, DocError> {
    list_json(conn, "SELECT id, title, description, lessons, featured, pinned, published, origin_name FROM collections ORDER BY pinned DESC, created_at DESC", |r| {
        Ok(Collection {
            id: r.get(0)?,
            title: r.get(1)?,
            description: r.get(2)?,
            lessons: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
            featured: r.get(4)?,
            pinned: r.get(5)?,
            published: r.get(6)?,
            origin_name: r.get(7)?,
        })
    })
}

pub fn announcements(conn: &Connection) -> Result<Vec<Announcement>, DocError> {
    list_json(conn, "SELECT id, title, body, audience, publish_at, origin_name FROM announcements ORDER BY publish_at DESC", |r| {
        Ok(Announcement { id: r.get(0)?, title: r.get(1)?, body: r.get(2)?, audience: r.get(3)?, publish_at: r.get(4)?, origin_name: r.get(5)? })
    })
}

/// The announcements shown at a node of tier `here` now ([`announcement_shown`]), newest first.
pub fn announcements_for(conn: &Connection, here: Tier, now: i64) -> Result<Vec<Announcement>, DocError> {
    Ok(announcements(conn)?.into_iter().filter(|a| announcement_shown(a, here, now)).collect())
}

const COMPETITION_COLUMNS: &str =
    "id, title, description, opens_at, closes_at, requires_standard, rubric, awards, awarded_at, archive_collection, origin_node, origin_name, origin_tier";

fn competition_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Competition> {
    Ok(Competition {
        id: r.get(0)?,
        title: r.get(1)?,
        description: r.get(2)?,
        opens_at: r.get(3)?,
        closes_at: r.get(4)?,
        requires_standard: r.get(5)?,
        rubric: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
        awards: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        awarded_at: r.get(8)?,
        archive_collection: r.get(9)?,
        origin_node: r.get(10)?,
        origin_name: r.get(11)?,
        origin_tier: r.get(12)?,
    })
}

/// Every competition here, the newest first.
pub fn competitions(conn: &Connection) -> Result<Vec<Competition>, DocError> {
    list_json(conn, &format!("SELECT {COMPETITION_COLUMNS} FROM competitions ORDER BY opens_at DESC, rowid DESC"), competition_row)
}

/// One competition, if this node has it.
pub fn competition(conn: &Connection, id: &str) -> Result<Option<Competition>, DocError> {
    use rusqlite::OptionalExtension;
    Ok(conn.query_row(&format!("SELECT {COMPETITION_COLUMNS} FROM competitions WHERE id = ?1"), [id], competition_row).optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn catalog_documents_round_trip_and_merge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let province = Store::open(&dir.path().join("p")).expect("open");
        let city = Store::open(&dir.path().join("c")).expect("open");
        let wp = Writer { node_id: uuid::Uuid::new_v4().to_string(), node_name: "省中心".into(), tier: Tier::Province, has_parent: false };
        let wc = Writer { node_id: uuid::Uuid::new_v4().to_string(), node_name: "市局".into(), tier: Tier::City, has_parent: true };
        let col = province
            .write(|tx| create_collection(tx, &wp, &Collection { title: "省级精品课".into(), lessons: vec!["l1".into()], featured: true, ..serde_json::from_str(r#"{"title":"x"}"#).expect("defaults") }))
            .expect("collection");
        assert!(col.published, "collections are published by default");
        let comp = province
            .write(|tx| create_competition(tx, &wp, &Competition { title: "优质课评选".into(), requires_standard: true, ..serde_json::from_str(r#"{"title":"x"}"#).expect("defaults") }))
            .expect("competition");
        assert_eq!(comp.rubric, default_rubric(), "no rubric named: the default one");
        province.write(|tx| put_results(tx, &wp, &comp.id, &[("l1".into(), "一等奖".into())], &col.id)).expect("award").expect("exists");
        province.write(|tx| create_announcement(tx, &wp, &serde_json::from_str(r#"{"title":"暑期培训通知","body":"七月开始"}"#).expect("json"))).expect("announcement");
        // Ship every document to the city as bytes and compare rows.
        let docs: Vec<youke_federation::protocol::DocUpdate> = province
            .read(|c| {
                let mut s = c.prepare("SELECT id, kind, seq, bytes, heads FROM docs ORDER BY seq")?;
                let rows = s.query_map([], |r| {
                    Ok(youke_federation::protocol::DocUpdate { id: r.get(0)?, kind: r.get(1)?, seq: r.get::<_, i64>(2)? as u64, bytes: r.get(3)?, version: r.get(4)?, full: true })
                })?;
                Ok::<_, DocError>(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .expect("docs");
        assert_eq!(docs.len(), 3);
        for d in &docs {
            city.write(|tx| documents::merge_remote(tx, &wc, &crate::kinds::ALL, d, documents::Source::Parent(&wp.node_id))).expect("merge");
        }
        assert_eq!(city.read(collections).expect("list"), province.read(collections).expect("list"));
        assert_eq!(city.read(announcements).expect("list"), province.read(announcements).expect("list"));
        let comps = city.read(competitions).expect("list");
        assert_eq!(comps[0].awards.get("l1").map(String::as_str), Some("一等奖"));
        assert!(comps[0].requires_standard && comps[0].awarded_at > 0);
        assert_eq!((comps[0].archive_collection.as_str(), comps[0].origin_tier.as_str()), (col.id.as_str(), "province"));
        assert_eq!(comps[0].rubric.iter().map(|k| k.max).sum::<i64>(), 100);
        // A school does not run competitions; rubrics are checked.
        let ws = Writer { tier: Tier::School, ..wc.clone() };
        assert!(city.write(|tx| create_competition(tx, &ws, &Competition { title: "校内评选".into(), ..Default::default() })).is_err());
        let bad = Competition { title: "评选".into(), rubric: vec![Criterion { name: "设计".into(), max: 0 }], ..Default::default() };
        assert!(city.write(|tx| create_competition(tx, &wc, &bad)).is_err());
        assert!(province.write(|tx| create_collection(tx, &wp, &Collection { title: " ".into(), ..col.clone() })).is_err());
    }
}
