//! The document store shared by every kind of CRDT document: lessons, collections (专辑),
//! announcements and competitions (评选).
//!
//! Each document is one automerge document saved whole in `docs`, with what routing needs:
//! its kind, origin node, share rank (how far up it may go), whether it is published to the
//! whole tree (how far down it goes), which peer the latest version came from (so it is not
//! echoed back), and the local change sequence number. `doc_routes` remembers which child a
//! document came from, so that updates made here (reviews, awards, comments) go back down to
//! that child's subtree. Each kind's module materializes its own query rows in the same
//! transaction ([`commit`]).

use crate::store::{StoreError, newest_seq, next_seq, now_ms};
use automerge::{AutoCommit, ObjId, ROOT, ReadDoc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use youke_federation::Tier;

/// Longest free text (a comment, a review, a description, a competition's rules) accepted in
/// a document.
pub const MAX_TEXT: usize = 2000;

/// Schema version written into every document this binary creates.
pub const DOC_SCHEMA: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("document is damaged or not of the expected kind: {0}")]
    BadDocument(String),
    #[error("document uses schema {0}, newer than this youke understands; upgrade youke")]
    NewerSchema(i64),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("{0}")]
    Invalid(String),
}

impl From<rusqlite::Error> for DocError {
    fn from(e: rusqlite::Error) -> Self {
        DocError::Store(StoreError::Sql(e))
    }
}

/// The kinds of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lesson,
    Collection,
    Announcement,
    Competition,
    /// The nodes a node revoked (see [`crate::trust`]).
    Revocations,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lesson => "lesson",
            Kind::Collection => "collection",
            Kind::Announcement => "announcement",
            Kind::Competition => "competition",
            Kind::Revocations => "revocations",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Lesson, Kind::Collection, Kind::Announcement, Kind::Competition, Kind::Revocations].into_iter().find(|k| k.as_str() == s)
    }
}

/// What decides where a document travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub origin_node: String,
    /// How far up the document may go.
    pub share: Tier,
    /// Published to the whole tree below the node that holds it.
    pub published: bool,
}

/// Where a version being saved came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Local,
    Child(&'a str),
    Parent(&'a str),
}

/// What merging a received version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    Changed,
    /// The version added nothing this node did not have.
    Unchanged,
    /// The changes build on earlier ones this node lacks: the sender must send the whole document.
    NeedFull,
}

/// A tier's rank as stored in `docs.share_rank`: its place in [`Tier::ALL`], so that comparing
/// ranks in SQL is the scope rule ([`youke_federation::tier::goes_up`]) itself (a test checks
/// every pair).
pub fn share_rank(t: Tier) -> i64 {
    Tier::ALL.iter().position(|x| *x == t).map_or(0, |i| i as i64)
}

/// Where documents travel over a link: the scope rule, and the one place its SQL is made.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Up to a parent of tier `parent` (`peer`): what is shared at or above its tier, and every
    /// later version of what the parent holds (so lowering a share level reaches it too).
    Up { parent: Tier, peer: &'a str },
    /// Down to a child: what is published to the whole tree below, what came from the child's
    /// subtree, and every later version of what the child was sent (so a takedown, a rejection
    /// or a hidden comment reaches every node that holds the document).
    Down { child: &'a str },
}

impl Scope<'_> {
    /// The condition on `docs d`, with its parameter as `?{n}`.
    fn condition(&self, n: usize) -> (String, rusqlite::types::Value) {
        match *self {
            Scope::Up { parent, peer } => (
                format!("(d.share_rank >= ?{n} OR EXISTS (SELECT 1 FROM peer_heads k WHERE k.peer_id = '{}' AND k.doc_id = d.id AND k.heads IS NOT NULL))", peer.replace('\'', "''")),
                share_rank(parent).into(),
            ),
            Scope::Down { child } => (
                format!(
                    "(d.published = 1 OR EXISTS (SELECT 1 FROM doc_routes r WHERE r.doc_id = d.id AND r.child_id = ?{n})
                      OR EXISTS (SELECT 1 FROM peer_heads k WHERE k.peer_id = ?{n} AND k.doc_id = d.id AND k.sent IS NOT NULL))"
                ),
                child.to_string().into(),
            ),
        }
    }
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
    pub fn actor(&self) -> automerge::ActorId {
        match uuid::Uuid::parse_str(&self.node_id) {
            Ok(u) => automerge::ActorId::from(u.as_bytes().as_slice()),
            Err(_) => automerge::ActorId::from(self.node_id.as_bytes()),
        }
    }

    /// A new, empty document written by this node.
    pub fn new_doc(&self) -> AutoCommit {
        AutoCommit::new().with_actor(self.actor())
    }
}

/// A kind of document as the store sees it (as a table schema in Garage's table layer): the
/// rows a version writes (its materialized view) and where the document travels. Each kind's
/// module implements it; the store calls kinds only through it, and never names them.
pub trait Schema: Sync {
    fn kind(&self) -> Kind;
    /// Writes the kind's rows for this version of `doc`, in the caller's transaction, and says
    /// where the document travels.
    fn materialize(&self, tx: &Transaction<'_>, w: &Writer, doc: &AutoCommit, seq: u64) -> Result<Routing, DocError>;
}

/// Saves a document version: takes a sequence number, lets the kind's schema write its rows,
/// and stores the document with its routing. Returns the sequence number.
pub fn commit(tx: &Transaction<'_>, w: &Writer, schema: &dyn Schema, doc: &mut AutoCommit) -> Result<u64, DocError> {
    let kind = schema.kind();
    check_header(doc, kind)?;
    let id = text(doc, &ROOT, "id").ok_or_else(|| DocError::BadDocument("missing id".into()))?;
    let seq = next_seq(tx)?;
    let routing = schema.materialize(tx, w, doc, seq)?;
    let bytes = doc.save();
    tx.execute(
        "INSERT INTO docs (id, kind, schema_version, bytes, heads, seq, origin_node, share_rank, published, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, schema_version = excluded.schema_version,
           bytes = excluded.bytes, heads = excluded.heads, seq = excluded.seq, origin_node = excluded.origin_node,
           share_rank = excluded.share_rank, published = excluded.published, updated_at = excluded.updated_at",
        params![
            id, kind.as_str(), DOC_SCHEMA, bytes, heads_text(doc), seq as i64, routing.origin_node,
            share_rank(routing.share), routing.published, now_ms()
        ],
    )?;
    Ok(seq)
}

/// A document's heads as stored and sent: sorted hex hashes joined by commas.
pub fn heads_text(doc: &mut AutoCommit) -> String {
    let mut h: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    h.sort();
    h.join(",")
}

fn parse_heads(text: &str) -> Option<Vec<automerge::ChangeHash>> {
    text.split(',').filter(|s| !s.is_empty()).map(|h| h.parse().ok()).collect()
}

/// The whole document as an update (for tests and for peers that know nothing of it).
pub fn full_update(kind: Kind, doc: &mut AutoCommit, seq: u64) -> youke_federation::protocol::DocUpdate {
    youke_federation::protocol::DocUpdate {
        id: text(doc, &ROOT, "id").unwrap_or_default(),
        kind: kind.as_str().to_string(),
        seq,
        version: heads_text(doc),
        full: true,
        bytes: doc.save(),
    }
}

/// Records that `peer` holds the version `heads` of a document (it sent it to us).
pub fn set_peer_heads(tx: &Transaction<'_>, peer: &str, doc_id: &str, heads: &str) -> Result<(), DocError> {
    tx.execute(
        "INSERT INTO peer_heads (peer_id, doc_id, heads, sent) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (peer_id, doc_id) DO UPDATE SET heads = excluded.heads, sent = excluded.sent",
        params![peer, doc_id, heads],
    )?;
    Ok(())
}

/// Records that the version `heads` was sent to `peer` (not yet confirmed).
fn mark_sent(tx: &Transaction<'_>, peer: &str, doc_id: &str, heads: &str) -> Result<(), DocError> {
    tx.execute(
        "INSERT INTO peer_heads (peer_id, doc_id, heads, sent) VALUES (?1, ?2, NULL, ?3)
         ON CONFLICT (peer_id, doc_id) DO UPDATE SET sent = excluded.sent",
        params![peer, doc_id, heads],
    )?;
    Ok(())
}

/// The peer confirmed it holds every document version this node sent it with a sequence
/// number in `after_seq..=upto_seq` (an acknowledgement going up, a pull cursor coming down).
pub fn confirm_sent(tx: &Transaction<'_>, peer: &str, after_seq: u64, upto_seq: u64) -> Result<(), DocError> {
    if upto_seq <= after_seq {
        return Ok(());
    }
    tx.execute(
        "UPDATE peer_heads SET heads = sent
         WHERE peer_id = ?1
           AND doc_id IN (SELECT id FROM docs WHERE seq > ?2 AND seq <= ?3)
           AND sent IS NOT NULL AND heads IS NOT sent
           AND sent = (SELECT heads FROM docs WHERE id = peer_heads.doc_id)",
        params![peer, after_seq as i64, upto_seq as i64],
    )?;
    Ok(())
}

/// A stored document version and what a peer is known to hold of it.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    pub id: String,
    pub kind: String,
    pub seq: u64,
    /// The whole saved document.
    pub saved: Vec<u8>,
    pub heads: String,
    /// The heads the peer is known to hold, if any.
    pub peer_heads: Option<String>,
}

impl StoredDoc {
    /// Reads columns id, kind, seq, bytes, heads, peer heads.
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(StoredDoc { id: r.get(0)?, kind: r.get(1)?, seq: r.get::<_, i64>(2)? as u64, saved: r.get(3)?, heads: r.get(4)?, peer_heads: r.get(5)? })
    }
}

/// Builds what to send a peer of a stored document: nothing if the peer confirmed this
/// version, the changes after the heads it confirmed, or the whole document if there are none.
/// Records the version as sent; it counts as the peer's only once confirmed, so a batch lost
/// with a crashed receiver is sent again.
pub fn outgoing(tx: &Transaction<'_>, peer: &str, stored: StoredDoc) -> Result<Option<youke_federation::protocol::DocUpdate>, DocError> {
    use youke_federation::protocol::DocUpdate;
    let StoredDoc { id, kind, seq, saved, heads, peer_heads } = stored;
    if peer_heads.as_deref() == Some(heads.as_str()) {
        return Ok(None);
    }
    let incremental = match peer_heads.as_deref().and_then(parse_heads) {
        Some(known) if !known.is_empty() => {
            let mut doc = AutoCommit::load(&saved)?;
            if known.iter().all(|h| doc.get_change_by_hash(h).is_some()) { Some(doc.save_after(&known)) } else { None }
        }
        _ => None,
    };
    mark_sent(tx, peer, &id, &heads)?;
    let (full, bytes) = match incremental {
        Some(changes) => (false, changes),
        None => (true, saved),
    };
    Ok(Some(DocUpdate { id, kind, seq, version: heads, full, bytes }))
}

/// Loads a document of the given kind, if this node has it.
pub fn load(conn: &Connection, w: &Writer, kind: Kind, id: &str) -> Result<Option<AutoCommit>, DocError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row("SELECT bytes FROM docs WHERE id = ?1 AND kind = ?2", params![id, kind.as_str()], |r| r.get(0))
        .optional()?;
    match bytes {
        Some(b) => Ok(Some(AutoCommit::load(&b)?.with_actor(w.actor()))),
        None => Ok(None),
    }
}

/// Merges a document version received from a peer into the local copy (or stores it if new):
/// a whole document is merged, changes are applied to the local copy. A version that adds
/// nothing changes nothing (no new sequence number, so nothing travels on). Records that the
/// peer holds `update.version`, and for a child, that the document came from it.
pub fn merge_remote(
    tx: &Transaction<'_>,
    w: &Writer,
    schemas: &[&dyn Schema],
    update: &youke_federation::protocol::DocUpdate,
    source: Source<'_>,
) -> Result<MergeOutcome, DocError> {
    let schema = schemas.iter().copied().find(|s| s.kind().as_str() == update.kind).ok_or_else(|| DocError::BadDocument(format!("unknown document kind {:?}", update.kind)))?;
    let kind = schema.kind();
    let existing_kind: Option<String> = tx.query_row("SELECT kind FROM docs WHERE id = ?1", [&update.id], |r| r.get(0)).optional()?;
    if existing_kind.as_deref().is_some_and(|k| k != kind.as_str()) {
        return Err(DocError::BadDocument(format!("document {} is a {} here, not a {}", update.id, existing_kind.unwrap_or_default(), kind.as_str())));
    }
    let existing = load(tx, w, kind, &update.id)?;
    let before = existing.as_ref().map(|d| {
        let mut d = d.clone();
        heads_text(&mut d)
    });
    let mut doc = if update.full {
        let mut incoming = AutoCommit::load(&update.bytes).map_err(|e| DocError::BadDocument(e.to_string()))?;
        check_header(&incoming, kind)?;
        if text(&incoming, &ROOT, "id").as_deref() != Some(update.id.as_str()) {
            return Err(DocError::BadDocument(format!("document sent as {} names another id", update.id)));
        }
        match existing {
            Some(mut d) => {
                d.merge(&mut incoming)?;
                d
            }
            None => incoming.with_actor(w.actor()),
        }
    } else {
        let Some(mut d) = existing else { return Ok(MergeOutcome::NeedFull) };
        d.load_incremental(&update.bytes).map_err(|e| DocError::BadDocument(e.to_string()))?;
        if !d.get_missing_deps(&[]).is_empty() {
            return Ok(MergeOutcome::NeedFull);
        }
        check_header(&d, kind)?;
        d
    };
    let (peer, route_child) = match source {
        Source::Child(c) => (Some(c), Some(c)),
        Source::Parent(p) => (Some(p), None),
        Source::Local => (None, None),
    };
    if let Some(child) = route_child {
        // Before the commit, so that materializing knows the document comes from this subtree.
        tx.execute("INSERT INTO doc_routes (doc_id, child_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![update.id, child])?;
    }
    let outcome = if before.as_deref() == Some(heads_text(&mut doc).as_str()) {
        MergeOutcome::Unchanged
    } else {
        commit(tx, w, schema, &mut doc)?;
        MergeOutcome::Changed
    };
    if let Some(peer) = peer {
        set_peer_heads(tx, peer, &update.id, &update.version)?;
    }
    Ok(outcome)
}

/// Writes the fields every document starts with.
pub fn put_header(doc: &mut AutoCommit, kind: Kind, id: &str, w: &Writer) -> Result<(), DocError> {
    use automerge::transaction::Transactable;
    doc.put(ROOT, "schema_version", DOC_SCHEMA)?;
    doc.put(ROOT, "kind", kind.as_str())?;
    doc.put(ROOT, "id", id)?;
    doc.put(ROOT, "origin_node", w.node_id.as_str())?;
    doc.put(ROOT, "origin_name", w.node_name.as_str())?;
    doc.put(ROOT, "origin_tier", w.tier.as_str())?;
    doc.put(ROOT, "created_at", now_ms())?;
    Ok(())
}

fn check_header(doc: &AutoCommit, kind: Kind) -> Result<(), DocError> {
    match text(doc, &ROOT, "kind") {
        Some(k) if k == kind.as_str() => {}
        Some(k) => return Err(DocError::BadDocument(format!("expected a {} document, got {k:?}", kind.as_str()))),
        None => return Err(DocError::BadDocument("missing kind".into())),
    }
    let schema = int(doc, &ROOT, "schema_version").ok_or_else(|| DocError::BadDocument("missing schema_version".into()))?;
    if schema > DOC_SCHEMA {
        return Err(DocError::NewerSchema(schema));
    }
    Ok(())
}

pub fn text(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    doc.get(obj, key).ok().flatten().and_then(|(v, _)| v.as_str().map(str::to_string))
}

pub fn int(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    doc.get(obj, key).ok().flatten().and_then(|(v, _)| v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)))
}

pub fn boolean(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<bool> {
    doc.get(obj, key).ok().flatten().and_then(|(v, _)| match v {
        automerge::Value::Scalar(s) => match s.as_ref() {
            automerge::ScalarValue::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    })
}

pub fn child(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ObjId> {
    doc.get(obj, key).ok().flatten().and_then(|(v, id)| v.is_object().then_some(id))
}

/// A list of text values under `key` (empty if absent).
pub fn text_list(doc: &AutoCommit, obj: &ObjId, key: &str) -> Vec<String> {
    match child(doc, obj, key) {
        Some(list) => (0..doc.length(&list))
            .filter_map(|i| doc.get(&list, i).ok().flatten().and_then(|(v, _)| v.as_str().map(str::to_string)))
            .collect(),
        None => Vec::new(),
    }
}

/// Writes a new list of text values under `key`.
pub fn put_text_list(doc: &mut AutoCommit, obj: &ObjId, key: &str, items: &[String]) -> Result<(), DocError> {
    use automerge::transaction::Transactable;
    let list = doc.put_object(obj, key, automerge::ObjType::List)?;
    for (i, item) in items.iter().enumerate() {
        doc.insert(&list, i, item.as_str())?;
    }
    Ok(())
}

/// Every document id of one kind with its heads, for comparing nodes.
pub fn heads_of(conn: &Connection, kind: Kind) -> Result<Vec<(String, String)>, DocError> {
    let mut stmt = conn.prepare("SELECT id, heads FROM docs WHERE kind = ?1 ORDER BY id")?;
    let rows = stmt.query_map([kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
/// Scans the documents in `scope` changed after `after` (up to the newest committed change),
/// and builds what `peer` lacks of each ([`outgoing`]). Documents in `first` are sent before the
/// scan, whole. Returns the updates and the sequence number the scan covered.
pub fn outgoing_batch(tx: &Transaction<'_>, peer: &str, scope: Scope<'_>, after: u64, limit: usize, first: &[String]) -> Result<(Vec<youke_federation::protocol::DocUpdate>, u64), StoreError> {
    let newest = newest_seq(tx)?;
    let (condition, arg) = scope.condition(2);
    let mut updates = Vec::new();
    let push = |updates: &mut Vec<_>, stored: StoredDoc| -> Result<(), StoreError> {
        match outgoing(tx, peer, stored) {
            Ok(Some(u)) => updates.push(u),
            Ok(None) => {}
            Err(DocError::Store(e)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "a stored document cannot be prepared for sending; skipping it"),
        }
        Ok(())
    };
    for id in first {
        let sql = format!("SELECT d.id, d.kind, d.seq, d.bytes, d.heads, NULL FROM docs d WHERE d.id = ?1 AND {condition}");
        if let Some(r) = tx.query_row(&sql, params![id, arg], StoredDoc::from_row).optional()? {
            push(&mut updates, r)?;
        }
    }
    let (condition, arg) = scope.condition(5);
    let sql = format!(
        "SELECT d.id, d.kind, d.seq, d.bytes, d.heads, ph.heads FROM docs d
         LEFT JOIN peer_heads ph ON ph.peer_id = ?3 AND ph.doc_id = d.id
         WHERE d.seq > ?1 AND d.seq <= ?2 AND {condition}
         ORDER BY d.seq LIMIT ?4"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![to_i64(after), to_i64(newest), peer, to_i64(limit as u64), arg], StoredDoc::from_row)?.collect::<Result<Vec<_>, _>>()?;
    let scanned = rows.len();
    let last = rows.last().map(|r| r.seq);
    for r in rows {
        if !first.contains(&r.id) {
            push(&mut updates, r)?;
        }
    }
    let upto = if scanned < limit { newest.max(after) } else { last.unwrap_or(after) };
    Ok((updates, upto))
}

/// Publishes lessons down the tree (those not published yet): each gets a new sequence number
/// so that children whose cursors are past it still receive it.
pub fn publish_lessons(tx: &Transaction<'_>, ids: &[String]) -> Result<(), StoreError> {
    for id in ids {
        let unpublished: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM docs WHERE id = ?1 AND kind = 'lesson' AND published = 0)", [id], |r| r.get(0))?;
        if unpublished {
            let seq = next_seq(tx)?;
            tx.execute("UPDATE docs SET published = 1, seq = ?1 WHERE id = ?2", params![i64::try_from(seq).unwrap_or(i64::MAX), id])?;
        }
    }
    Ok(())
}

/// Documents in `scope` that `peer` does not hold at their current version, changed after
/// `after` (what is still to go over a link).
pub fn pending(conn: &Connection, peer: &str, scope: Scope<'_>, after: u64) -> Result<u64, StoreError> {
    let (condition, arg) = scope.condition(3);
    let sql = format!(
        "SELECT COUNT(*) FROM docs d WHERE d.seq > ?1 AND {condition}
           AND NOT EXISTS (SELECT 1 FROM peer_heads ph WHERE ph.peer_id = ?2 AND ph.doc_id = d.id AND ph.heads = d.heads)"
    );
    let n: i64 = conn.query_row(&sql, params![i64::try_from(after).unwrap_or(i64::MAX), peer, arg], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Forgets what `peer` was believed to hold of a document: it gets the whole document next.
pub fn forget_peer_version(tx: &Transaction<'_>, peer: &str, doc_id: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM peer_heads WHERE peer_id = ?1 AND doc_id = ?2", params![peer, doc_id])?;
    Ok(())
}

/// Whether `peer` confirmed holding the current version of a document.
pub fn peer_holds_current(conn: &Connection, doc_id: &str, peer: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM docs d JOIN peer_heads p ON p.doc_id = d.id AND p.peer_id = ?2 WHERE d.id = ?1 AND p.heads = d.heads)")?;
    Ok(stmt.query_row(params![doc_id, peer], |r| r.get(0))?)
}

/// Whether a document came from a child (it is part of this node's subtree below).
pub fn came_from_child(conn: &Connection, doc_id: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM doc_routes WHERE doc_id = ?1)", [doc_id], |r| r.get(0))?)
}

/// A stored document as it would be sent whole.
pub fn stored(conn: &Connection, doc_id: &str) -> Result<Option<StoredDoc>, StoreError> {
    Ok(conn.query_row("SELECT id, kind, seq, bytes, heads, NULL FROM docs WHERE id = ?1", [doc_id], StoredDoc::from_row).optional()?)
}

/// (id, heads) of the lessons of this node's subtree (made here, or come from a child) shared up
/// to a parent of tier `parent`: anti-entropy's view, the same set the parent keeps as
/// [`routed_from`] this node. The shared catalog that came down from above is not in it.
pub fn shared_up(conn: &Connection, parent: Tier, this_node: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, heads FROM docs d WHERE d.share_rank >= ?1 AND d.kind = 'lesson'
           AND (d.origin_node = ?2 OR EXISTS (SELECT 1 FROM doc_routes r WHERE r.doc_id = d.id))",
    )?;
    let rows = stmt.query_map(params![share_rank(parent), this_node], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// (id, heads) of the lessons that came from `child` and are shared up to this node's tier.
pub fn routed_from(conn: &Connection, child: &str, here: Tier) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.heads FROM docs d JOIN doc_routes r ON r.doc_id = d.id
         WHERE r.child_id = ?1 AND d.share_rank >= ?2 AND d.kind = 'lesson'",
    )?;
    let rows = stmt.query_map(params![child, share_rank(here)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparing_share_ranks_is_the_scope_rule() {
        for share in Tier::ALL {
            for parent in Tier::ALL {
                assert_eq!(share_rank(share) >= share_rank(parent), youke_federation::tier::goes_up(share, parent), "{share:?} to {parent:?}");
            }
        }
    }
}
