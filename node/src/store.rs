//! The node's SQLite database: connection pool, numbered migrations, and the one table it owns
//! itself, `meta` (metadata keys, the local change sequence). Every other table is read and
//! written by the one module that owns it, inside transactions opened here: `docs`,
//! `doc_routes` and `peer_heads` by [`crate::documents`]; `peers`, `link_state` and `uploads`
//! by [`crate::sync_state`]; `blobs` by [`crate::blob_index`]; each kind's query rows by its
//! module ([`crate::lessons`], [`crate::catalog`], ...). docs/ARCHITECTURE.md has the table.

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database {path} was written by a newer youke (schema {found}, this binary knows {known}); upgrade youke")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("cannot open database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
}

impl StoreError {
    /// The database is busy with other writers beyond the busy timeout (or locked): a moment
    /// later the same work succeeds, so callers answer "try again" rather than fail.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }
}

/// Migrations, applied in order; index + 1 is the schema version. Never edit one that shipped:
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: documents and their routes, lessons, collections, announcements, competitions, blobs,
    // peers, link state, upload queue.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('doc_seq', '0');

    CREATE TABLE docs (
        id             TEXT PRIMARY KEY,
        kind           TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        bytes          BLOB NOT NULL,
        heads          TEXT NOT NULL,
        seq            INTEGER NOT NULL,
        origin_node    TEXT NOT NULL,
        share_rank     INTEGER NOT NULL,
        published      INTEGER NOT NULL DEFAULT 0,
        updated_at     INTEGER NOT NULL
    );
    CREATE INDEX docs_by_seq ON docs (seq);

    -- Which child a document came from: updates to it go back down to that child.
    CREATE TABLE doc_routes (
        doc_id   TEXT NOT NULL REFERENCES docs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        child_id TEXT NOT NULL,
        PRIMARY KEY (doc_id, child_id)
    ) WITHOUT ROWID;
    CREATE INDEX doc_routes_by_child ON doc_routes (child_id);

    -- What each peer holds of each document. `heads`: confirmed (the peer sent this version,
    -- or acknowledged it); a document is skipped for a peer only when these equal its heads, and
    -- changes are computed after them. `sent`: the version last sent, confirmed when the peer's
    -- acknowledgement (up) or pull cursor (down) covers it.
    CREATE TABLE peer_heads (
        peer_id TEXT NOT NULL,
        doc_id  TEXT NOT NULL,
        heads   TEXT,
        sent    TEXT,
        PRIMARY KEY (peer_id, doc_id)
    ) WITHOUT ROWID;

    CREATE TABLE lessons (
        id               TEXT PRIMARY KEY REFERENCES docs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        title            TEXT NOT NULL,
        teacher          TEXT NOT NULL,
        grade            TEXT NOT NULL,
        subject          TEXT NOT NULL,
        textbook_chapter TEXT NOT NULL,
        knowledge_points TEXT NOT NULL,
        tags             TEXT NOT NULL,
        description      TEXT NOT NULL,
        origin_node      TEXT NOT NULL,
        origin_name      TEXT NOT NULL,
        share_level      TEXT NOT NULL,
        media_hash       TEXT,
        media_size       INTEGER,
        media_mime       TEXT,
        original_name    TEXT NOT NULL,
        probe            TEXT,
        compliance       TEXT,
        duration_secs    REAL,
        rating_avg       REAL,
        rating_count     INTEGER NOT NULL DEFAULT 0,
        comment_count    INTEGER NOT NULL DEFAULT 0,
        review_avg       REAL,
        review_count     INTEGER NOT NULL DEFAULT 0,
        views            INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        seq              INTEGER NOT NULL
    );
    CREATE INDEX lessons_by_seq ON lessons (seq);
    CREATE INDEX lessons_by_created ON lessons (created_at DESC);

    CREATE TABLE collections (
        id          TEXT PRIMARY KEY REFERENCES docs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        title       TEXT NOT NULL,
        description TEXT NOT NULL,
        lessons     TEXT NOT NULL,
        featured    INTEGER NOT NULL,
        pinned      INTEGER NOT NULL,
        published   INTEGER NOT NULL,
        origin_node TEXT NOT NULL,
        origin_name TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );

    CREATE TABLE announcements (
        id          TEXT PRIMARY KEY REFERENCES docs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        title       TEXT NOT NULL,
        body        TEXT NOT NULL,
        audience    TEXT NOT NULL,
        publish_at  INTEGER NOT NULL,
        origin_node TEXT NOT NULL,
        origin_name TEXT NOT NULL
    );

    CREATE TABLE competitions (
        id                TEXT PRIMARY KEY REFERENCES docs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        title             TEXT NOT NULL,
        description       TEXT NOT NULL,
        opens_at          INTEGER NOT NULL,
        closes_at         INTEGER NOT NULL,
        requires_standard INTEGER NOT NULL,
        entries           TEXT NOT NULL,
        awards            TEXT NOT NULL,
        origin_node       TEXT NOT NULL,
        origin_name       TEXT NOT NULL
    );

    CREATE TABLE blobs (
        hash     TEXT PRIMARY KEY,
        size     INTEGER NOT NULL,
        added_at INTEGER NOT NULL
    );

    CREATE TABLE peers (
        node_id     TEXT PRIMARY KEY,
        relation    TEXT NOT NULL CHECK (relation IN ('parent', 'child')),
        name        TEXT NOT NULL,
        tier        TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        addr        TEXT NOT NULL,
        acked_seq   INTEGER NOT NULL DEFAULT 0,
        down_seq    INTEGER NOT NULL DEFAULT 0,
        last_sync   INTEGER,
        connected   INTEGER NOT NULL DEFAULT 0,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL
    );

    CREATE TABLE link_state (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        parent_addr TEXT NOT NULL,
        state       TEXT NOT NULL,
        parent_name TEXT,
        error       TEXT,
        updated_at  INTEGER NOT NULL
    );

    CREATE TABLE uploads (
        hash            TEXT PRIMARY KEY,
        size            INTEGER NOT NULL,
        priority        INTEGER NOT NULL DEFAULT 0,
        enqueued_at     INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        done_at         INTEGER
    );
    CREATE INDEX uploads_pending ON uploads (done_at, priority DESC, enqueued_at);
    "#,
    // 2: the lesson an upload is for (shown in progress, dropped when the lesson is unshared).
    r#"
    ALTER TABLE uploads ADD COLUMN lesson_id TEXT;
    "#,
    // 3: media watched through the parent (pull-through cache), for the quota and LRU eviction.
    r#"
    CREATE TABLE cache (
        hash        TEXT PRIMARY KEY,
        size        INTEGER NOT NULL,
        last_access INTEGER NOT NULL,
        complete    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX cache_lru ON cache (last_access);
    "#,
    // 4: federation trust: one-time join tokens (only a hash of the secret), the children
    // enrolled here, and the revocations known to this node (materialized from revocation
    // documents).
    r#"
    CREATE TABLE join_tokens (
        id          TEXT PRIMARY KEY,
        role        TEXT NOT NULL,
        name        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER,
        used_by     TEXT
    );
    CREATE TABLE enrolled (
        node_id     TEXT PRIMARY KEY,
        place       TEXT NOT NULL,
        name        TEXT NOT NULL,
        enrolled_at INTEGER NOT NULL,
        token_id    TEXT NOT NULL
    );
    CREATE TABLE revocations (
        node_id     TEXT NOT NULL,
        issuer      TEXT NOT NULL,
        place       TEXT NOT NULL,
        name        TEXT NOT NULL,
        reason      TEXT NOT NULL,
        revoked_at  INTEGER NOT NULL,
        PRIMARY KEY (node_id, issuer)
    );
    "#,
    // 5: background media jobs (HLS ladder, poster, sprite, SD version, SNR), one per blob.
    r#"
    CREATE TABLE media_jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        hash        TEXT NOT NULL UNIQUE,
        lesson_id   TEXT,
        state       TEXT NOT NULL,
        progress    REAL NOT NULL DEFAULT 0,
        error       TEXT,
        attempts    INTEGER NOT NULL DEFAULT 0,
        output      TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX media_jobs_queue ON media_jobs (state, id);
    "#,
    // 6: subtitles of lessons (materialized from their documents), for the player and search.
    r#"
    CREATE TABLE subtitles (
        lesson_id   TEXT PRIMARY KEY,
        srt         TEXT NOT NULL,
        language    TEXT NOT NULL,
        cues        INTEGER NOT NULL
    );
    "#,
    // 7: files the import folder could not import, kept aside for the admin.
    r#"
    CREATE TABLE quarantine (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        name    TEXT NOT NULL,
        path    TEXT NOT NULL,
        reason  TEXT NOT NULL,
        at      INTEGER NOT NULL
    );
    "#,
    // 8: the tier of the node a lesson comes from (a search facet); filled as documents are
    // written again, empty for lessons written before.
    r#"
    ALTER TABLE lessons ADD COLUMN origin_tier TEXT NOT NULL DEFAULT '';
    "#,
    // 9: portal accounts (argon2id hashes), sessions (BLAKE3 of the cookie token), audit log.
    r#"
    CREATE TABLE users (
        name        TEXT PRIMARY KEY,
        display     TEXT NOT NULL,
        role        TEXT NOT NULL,
        password    TEXT NOT NULL,
        disabled    INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash  BLOB PRIMARY KEY,
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        seen_at     INTEGER NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user);
    CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        user    TEXT NOT NULL,
        address TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        detail  TEXT NOT NULL
    );
    "#,
    // 10: which portal account brought a lesson in (this node's accounts only: not synced).
    r#"
    CREATE TABLE lesson_owners (
        lesson_id TEXT PRIMARY KEY,
        user      TEXT NOT NULL
    );
    CREATE INDEX lesson_owners_by_user ON lesson_owners (user);
    "#,
    // 11: resumable uploads from the portal (tus): the bytes acknowledged so far; the data is
    // in `<import folder>/.uploading/<id>.part`.
    r#"
    CREATE TABLE resumable_uploads (
        id          TEXT PRIMARY KEY,
        user        TEXT NOT NULL,
        name        TEXT NOT NULL,
        meta        TEXT NOT NULL,
        length      INTEGER NOT NULL,
        offset      INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        lesson_id   TEXT,
        error       TEXT
    );
    "#,
    // 12: competitions (评选): rubric, results and the archive collection in their rows; entries
    // as the schools' lessons record them (materialized from the lesson documents); the
    // experts judging each entry and their scores (this node's accounts only: not synced).
    r#"
    ALTER TABLE competitions ADD COLUMN rubric TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE competitions ADD COLUMN awarded_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE competitions ADD COLUMN archive_collection TEXT NOT NULL DEFAULT '';
    ALTER TABLE competitions ADD COLUMN origin_tier TEXT NOT NULL DEFAULT '';
    CREATE TABLE competition_entries (
        competition_id TEXT NOT NULL,
        lesson_id      TEXT NOT NULL REFERENCES docs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        submitted_at   INTEGER NOT NULL,
        submitted_by   TEXT NOT NULL,
        PRIMARY KEY (competition_id, lesson_id)
    ) WITHOUT ROWID;
    CREATE INDEX competition_entries_by_lesson ON competition_entries (lesson_id);
    CREATE TABLE competition_judges (
        competition_id TEXT NOT NULL,
        lesson_id      TEXT NOT NULL,
        expert         TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        assigned_at    INTEGER NOT NULL,
        scores         TEXT,
        total          INTEGER,
        comment        TEXT NOT NULL DEFAULT '',
        scored_at      INTEGER,
        PRIMARY KEY (competition_id, lesson_id, expert)
    ) WITHOUT ROWID;
    CREATE INDEX competition_judges_by_expert ON competition_judges (expert);
    "#,
    // 13: the latest health report of each child (itself and its subtree), for the node tree
    // of the admin console and the report this node sends up in turn.
    r#"
    CREATE TABLE subtree_health (
        child_id    TEXT PRIMARY KEY,
        nodes       TEXT NOT NULL,
        received_at INTEGER NOT NULL
    );
    "#,
    // 14: the size of each quarantined file, so the quarantine can be kept under its cap.
    r#"
    ALTER TABLE quarantine ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
    "#,
    // 15: the lessons of each collection as rows, so "is this lesson in a published (or pinned)
    // collection" is an index lookup, not a scan of every collection's list (a province holds
    // 100,000 collections; every lesson saved asked it).
    r#"
    CREATE TABLE collection_lessons (
        collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        lesson_id     TEXT NOT NULL,
        PRIMARY KEY (collection_id, lesson_id)
    ) WITHOUT ROWID;
    CREATE INDEX collection_lessons_by_lesson ON collection_lessons (lesson_id);
    INSERT OR IGNORE INTO collection_lessons (collection_id, lesson_id)
        SELECT c.id, e.value FROM collections c, json_each(c.lessons) e WHERE e.type = 'text';
    "#,
    // 16: review (审核) and takedown (下架): whether a lesson is listed to viewers at this node,
    // the decisions and the takedown as JSON for display, and which tier's review it awaits
    // (the review queue of that tier).
    r#"
    ALTER TABLE lessons ADD COLUMN listed INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE lessons ADD COLUMN moderation TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE lessons ADD COLUMN takedown TEXT;
    ALTER TABLE lessons ADD COLUMN awaiting_review TEXT;
    CREATE INDEX lessons_awaiting_review ON lessons (awaiting_review) WHERE awaiting_review IS NOT NULL;
    CREATE INDEX lessons_taken_down ON lessons (media_hash) WHERE takedown IS NOT NULL;
    CREATE INDEX lessons_by_media ON lessons (media_hash);
    "#,
    // 17: views counted here, one per viewer, lesson and day, until added to the lesson's document.
    r#"
    CREATE TABLE views (
        lesson_id TEXT NOT NULL,
        viewer    TEXT NOT NULL,
        day       TEXT NOT NULL,
        at        INTEGER NOT NULL,
        counted   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (lesson_id, viewer, day)
    ) WITHOUT ROWID;
    CREATE INDEX views_uncounted ON views (lesson_id) WHERE counted = 0;
    "#,
    // 18: whether the lesson's teacher lets viewers download the original recording.
    r#"
    ALTER TABLE lessons ADD COLUMN downloadable INTEGER NOT NULL DEFAULT 0;
    "#,
    // 19: lessons whose collections changed (published, unpublished, deleted, lessons added or
    // removed): whether each is listed is worked out again.
    r#"
    CREATE TABLE relist (lesson_id TEXT PRIMARY KEY) WITHOUT ROWID;
    "#,
    // 20: the lesson's ladder as a rendition pack (made once, where it was transcoded, and
    // travelling as one blob): its hash for lookups, what it holds, and whether its school makes
    // it (then no tier above transcodes the recording meanwhile).
    r#"
    ALTER TABLE lessons ADD COLUMN ladder_hash TEXT;
    ALTER TABLE lessons ADD COLUMN ladder TEXT;
    ALTER TABLE lessons ADD COLUMN ladder_expected INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX lessons_by_ladder ON lessons (ladder_hash) WHERE ladder_hash IS NOT NULL;
    "#,
    // 21: the tiers above its school that hold a lesson's recording (送达), for its teacher.
    r#"
    ALTER TABLE lessons ADD COLUMN arrived TEXT NOT NULL DEFAULT '[]';
    "#,
];

/// Schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A small pool of connections to one database file.
pub struct Store {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Connections kept open: the portal's [`crate::http::DB_CONCURRENCY`] plus the services'.
const POOL_MAX: usize = 16;

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Store { path: path.to_path_buf(), pool: Mutex::new(Vec::new()) };
        let mut conn = store.connect()?;
        migrate(&mut conn, path)?;
        store.give_back(conn);
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let open_err = |source| StoreError::Open { path: self.path.clone(), source };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(open_err)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "SQLite refused WAL mode; continuing with this journal mode");
        }
        conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;").map_err(open_err)?;
        Ok(conn)
    }

    #[track_caller]
    fn take(&self) -> Result<Connection, StoreError> {
        forbid_on_async_worker();
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut p) = self.pool.lock()
            && p.len() < POOL_MAX {
                p.push(conn);
            }
    }

    /// Whether the database answers a read (the watchdog's and `/readyz`'s probe).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ()).map_err(StoreError::from))
    }

    /// Runs `f` on a pooled connection.
    #[track_caller]
    pub fn read<T, E: From<StoreError>>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E> {
        let conn = self.take()?;
        let r = f(&conn);
        self.give_back(conn);
        r
    }

    /// Runs `f` in an immediate transaction and commits if it succeeds.
    #[track_caller]
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E> {
        let mut conn = self.take()?;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
            let out = f(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            Ok(out)
        })();
        self.give_back(conn);
        result
    }
}

thread_local! {
    static ASYNC_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as one of the async runtime's workers ([`runtime`] registers it
/// as the workers' park hook, which the blocking pool's threads never run).
pub fn mark_async_worker() {
    ASYNC_WORKER.with(|w| w.set(true));
}

/// Database calls wait on locks and disk (up to the busy timeout): on an async worker they
/// stall every task sharing it, the QUIC driver's keep-alives among them, until links time out.
/// They belong on the blocking pool ([`tokio::task::spawn_blocking`]). A call on a worker is
/// logged once per calling place (a warning naming it), and, when `YOUKE_ASYNC_DB_TRACE` names
/// a file, appended to it (how the test suite lists them).
#[track_caller]
fn forbid_on_async_worker() {
    if !ASYNC_WORKER.with(|w| w.get()) {
        return;
    }
    static SEEN: Mutex<Vec<&'static std::panic::Location<'static>>> = Mutex::new(Vec::new());
    let at = std::panic::Location::caller();
    let first = SEEN.lock().map(|mut seen| {
        let new = !seen.contains(&at);
        if new {
            seen.push(at);
        }
        new
    });
    if first.unwrap_or(false) {
        tracing::warn!(at = %at, "a database call ran on an async worker thread; links may time out while the database is busy");
        if let Some(path) = std::env::var_os("YOUKE_ASYNC_DB_TRACE") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{at}");
            }
        }
    }
}

/// The async runtime of a node process: database calls on its workers are caught
/// ([`forbid_on_async_worker`]).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().on_thread_park(mark_async_worker).build()
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: current, known: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

/// Reads a metadata value.
pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

/// Writes a metadata value.
pub fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Takes the next local change sequence number. Call inside the transaction that makes the change.
pub fn next_seq(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let seq: i64 = tx.query_row(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'doc_seq' RETURNING CAST(value AS INTEGER)",
        [],
        |r| r.get(0),
    )?;
    Ok(seq as u64)
}

/// The newest local change sequence number: every change numbered up to it is committed (the
/// number and the change are written in one transaction).
pub fn newest_seq(conn: &Connection) -> Result<u64, StoreError> {
    Ok(meta_get(conn, "doc_seq")?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A moment in China time (UTC+8), as the portal and messages show it: `2026-11-23 18:00`.
pub fn china_time(ms: i64) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => {
            let t = t.to_offset(offset);
            format!("{}-{:02}-{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("youke.db");
        let store = Store::open(&path).expect("open");
        let v: i64 = store.read(|c| Ok::<_, StoreError>(c.query_row("PRAGMA user_version", [], |r| r.get(0))?)).expect("version");
        assert_eq!(v, SCHEMA_VERSION);
        drop(store);
        Store::open(&path).expect("reopen is a no-op");
        let c = Connection::open(&path).expect("raw");
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("bump");
        drop(c);
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
    }

    #[test]
    fn sequence_numbers_increase_and_roll_back_with_the_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("youke.db")).expect("open");
        let a = store.write(next_seq).expect("seq");
        let _ = store.write(|tx| -> Result<(), StoreError> {
            next_seq(tx)?;
            Err(StoreError::Sql(rusqlite::Error::InvalidQuery))
        });
        let b = store.write(next_seq).expect("seq");
        assert_eq!((a, b), (1, 2));
    }
}
