//! The state of this node's links, kept in the tables this module owns (their SQL is here and
//! nowhere else):
//!
//! - `peers`: the parent and each child, with the certificate pinned at first contact, the two
//!   cursors (our sequence number the parent acknowledged; the parent's sequence number up to
//!   which the child holds its scope down), when each last synced and whether it is linked now;
//! - `link_state`: the link to the parent as the uplink last reported it;
//! - `uploads`: the queue of media going up to the parent, with retries and backoff.

use crate::store::{StoreError, now_ms};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use youke_federation::sync::{LinkState, Peer};

/// Which end of a link a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Parent,
    Child,
}

impl Relation {
    fn as_str(self) -> &'static str {
        match self {
            Relation::Parent => "parent",
            Relation::Child => "child",
        }
    }
}

/// A peer's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    pub node_id: String,
    pub name: String,
    pub tier: String,
    /// The pinned certificate fingerprint, hex.
    pub fingerprint: String,
    pub addr: String,
    pub acked_seq: u64,
    pub down_seq: u64,
    pub last_sync: Option<i64>,
    pub connected: bool,
    pub last_seen: i64,
}

const PEER_COLUMNS: &str = "node_id, name, tier, fingerprint, addr, acked_seq, down_seq, last_sync, connected, last_seen";

fn peer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PeerRow> {
    Ok(PeerRow {
        node_id: r.get(0)?,
        name: r.get(1)?,
        tier: r.get(2)?,
        fingerprint: r.get(3)?,
        addr: r.get(4)?,
        acked_seq: r.get::<_, i64>(5)?.max(0) as u64,
        down_seq: r.get::<_, i64>(6)?.max(0) as u64,
        last_sync: r.get(7)?,
        connected: r.get(8)?,
        last_seen: r.get(9)?,
    })
}

/// The parent, once a link to it completed its hello.
pub fn parent(conn: &Connection) -> Result<Option<PeerRow>, StoreError> {
    Ok(conn.query_row(&format!("SELECT {PEER_COLUMNS} FROM peers WHERE relation = 'parent'"), [], peer_row).optional()?)
}

/// The children that linked here, by name.
pub fn children(conn: &Connection) -> Result<Vec<PeerRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {PEER_COLUMNS} FROM peers WHERE relation = 'child' ORDER BY name"))?;
    let rows = stmt.query_map([], peer_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The fingerprint pinned for a child node id, if it linked before.
pub fn child_pin(conn: &Connection, node_id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row("SELECT fingerprint FROM peers WHERE node_id = ?1 AND relation = 'child'", [node_id], |r| r.get(0)).optional()?)
}

/// Records a peer that completed its hello (pins its certificate the first time).
pub fn remember(tx: &Transaction<'_>, peer: &Peer, relation: Relation) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO peers (node_id, relation, name, tier, fingerprint, addr, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (node_id) DO UPDATE SET name = excluded.name, tier = excluded.tier,
           addr = excluded.addr, last_seen = excluded.last_seen",
        params![peer.info.node_id, relation.as_str(), peer.info.name, peer.info.tier.as_str(), peer.fingerprint.to_hex(), peer.addr.to_string(), now_ms()],
    )?;
    Ok(())
}

/// A child's link came up or went down.
pub fn set_connected(tx: &Transaction<'_>, node_id: &str, connected: bool) -> Result<(), StoreError> {
    tx.execute("UPDATE peers SET connected = ?1, last_seen = ?2 WHERE node_id = ?3", params![connected, now_ms(), node_id])?;
    Ok(())
}

/// At start: no child is linked until it says hello again.
pub fn disconnect_all(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("UPDATE peers SET connected = 0", [])?;
    Ok(())
}

/// The two cursors kept per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Our sequence number up to which the parent acknowledged what we sent up.
    Acked,
    /// The parent's sequence number up to which the child holds its scope down (kept on both
    /// sides of the link).
    Down,
}

pub fn cursor(conn: &Connection, peer: &str, which: Cursor) -> Result<u64, StoreError> {
    let sql = match which {
        Cursor::Acked => "SELECT acked_seq FROM peers WHERE node_id = ?1",
        Cursor::Down => "SELECT down_seq FROM peers WHERE node_id = ?1",
    };
    let seq: Option<i64> = conn.query_row(sql, [peer], |r| r.get(0)).optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// Moves a cursor forward (never back) and marks the peer synced now.
pub fn advance(tx: &Transaction<'_>, peer: &str, which: Cursor, to: u64) -> Result<(), StoreError> {
    let sql = match which {
        Cursor::Acked => "UPDATE peers SET acked_seq = MAX(acked_seq, ?1), last_sync = ?2, last_seen = ?2 WHERE node_id = ?3",
        Cursor::Down => "UPDATE peers SET down_seq = MAX(down_seq, ?1), last_sync = ?2, last_seen = ?2 WHERE node_id = ?3",
    };
    tx.execute(sql, params![i64::try_from(to).unwrap_or(i64::MAX), now_ms(), peer])?;
    Ok(())
}

/// Moves the acknowledged cursor back to before `seq` (a document the parent must get again).
pub fn rewind_acked(tx: &Transaction<'_>, peer: &str, before_seq: u64) -> Result<(), StoreError> {
    tx.execute("UPDATE peers SET acked_seq = MIN(acked_seq, ?1) WHERE node_id = ?2", params![i64::try_from(before_seq.saturating_sub(1)).unwrap_or(0), peer])?;
    Ok(())
}

/// Marks the peer synced now (documents moved without a cursor to advance).
pub fn synced(tx: &Transaction<'_>, peer: &str) -> Result<(), StoreError> {
    tx.execute("UPDATE peers SET last_sync = ?1, last_seen = ?1 WHERE node_id = ?2", params![now_ms(), peer])?;
    Ok(())
}

/// The link to the parent as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub parent_addr: String,
    pub state: String,
    pub parent_name: Option<String>,
    pub error: Option<String>,
    /// Since when the link is in this state (a reconnect attempt that fails again keeps it).
    pub updated_at: i64,
}

/// Records the link's state; a link coming up lets uploads waiting out a backoff go now.
pub fn set_link_state(tx: &Transaction<'_>, parent_addr: &str, state: &LinkState) -> Result<(), StoreError> {
    let (name, label, error) = match state {
        LinkState::Connecting => (None, "connecting", None),
        LinkState::Up { parent } => (Some(parent.name.clone()), "up", None),
        LinkState::Down { error } => (None, "down", Some(error.clone())),
    };
    tx.execute(
        "INSERT INTO link_state (id, parent_addr, state, parent_name, error, updated_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET parent_addr = excluded.parent_addr, state = excluded.state,
           parent_name = COALESCE(excluded.parent_name, link_state.parent_name), error = excluded.error,
           updated_at = CASE WHEN link_state.state = excluded.state THEN link_state.updated_at ELSE excluded.updated_at END",
        params![parent_addr, label, name, error, now_ms()],
    )?;
    if matches!(state, LinkState::Up { .. }) {
        tx.execute("UPDATE uploads SET next_attempt_at = 0 WHERE done_at IS NULL AND next_attempt_at > 0", [])?;
    }
    Ok(())
}

pub fn link_state(conn: &Connection) -> Result<Option<LinkRow>, StoreError> {
    Ok(conn
        .query_row("SELECT parent_addr, state, parent_name, error, updated_at FROM link_state WHERE id = 1", [], |r| {
            Ok(LinkRow { parent_addr: r.get(0)?, state: r.get(1)?, parent_name: r.get(2)?, error: r.get(3)?, updated_at: r.get(4)? })
        })
        .optional()?)
}

/// Retry delay after a failed upload: 2^attempts seconds, at most 5 minutes.
pub fn upload_backoff_ms(attempts: u32) -> i64 {
    1000 * (1i64 << attempts.min(8)).min(300)
}

/// Queues a blob for the parent (or raises its priority if queued already).
pub fn enqueue_upload(tx: &Transaction<'_>, hash: &str, size: u64, lesson: Option<&str>, first: bool) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO uploads (hash, size, enqueued_at, lesson_id, priority) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (hash) DO UPDATE SET priority = MAX(priority, excluded.priority)",
        params![hash, i64::try_from(size).unwrap_or(i64::MAX), now_ms(), lesson, first],
    )?;
    Ok(())
}

/// Drops a blob from the queue if it has not been sent yet.
pub fn drop_pending_upload(tx: &Transaction<'_>, hash: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM uploads WHERE hash = ?1 AND done_at IS NULL", [hash])?;
    Ok(())
}

/// The blobs due for upload now, first first, after skipping `skip`, at most `limit`: (hash, size).
pub fn uploads_due(conn: &Connection, now: i64, skip: usize, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT hash, size FROM uploads WHERE done_at IS NULL AND next_attempt_at <= ?1 ORDER BY priority DESC, enqueued_at LIMIT ?2 OFFSET ?3")?;
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![now, n(limit), n(skip)], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn upload_done(tx: &Transaction<'_>, hash: &str) -> Result<(), StoreError> {
    tx.execute("UPDATE uploads SET done_at = ?1, last_error = NULL WHERE hash = ?2", params![now_ms(), hash])?;
    Ok(())
}

/// Records a failed attempt; the next waits [`upload_backoff_ms`].
pub fn upload_failed(tx: &Transaction<'_>, hash: &str, reason: &str) -> Result<(), StoreError> {
    let attempts: i64 = tx.query_row("SELECT attempts FROM uploads WHERE hash = ?1", [hash], |r| r.get(0)).optional()?.unwrap_or(0);
    tx.execute(
        "UPDATE uploads SET attempts = attempts + 1, next_attempt_at = ?1, last_error = ?2 WHERE hash = ?3",
        params![now_ms() + upload_backoff_ms(u32::try_from(attempts).unwrap_or(u32::MAX)), reason, hash],
    )?;
    Ok(())
}

/// A blob's place in the queue: (sent, attempts, last error).
pub fn upload_of(conn: &Connection, hash: &str) -> Result<Option<(bool, u32, Option<String>)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT done_at IS NOT NULL, attempts, last_error FROM uploads WHERE hash = ?1")?;
    Ok(stmt.query_row([hash], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.try_into().unwrap_or(u32::MAX), r.get(2)?))).optional()?)
}

/// Blobs waiting to go up, and their bytes.
pub fn pending_uploads(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let (n, bytes): (i64, i64) = conn.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM uploads WHERE done_at IS NULL", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((n.max(0) as u64, bytes.max(0) as u64))
}

/// One blob waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRow {
    pub hash: String,
    pub lesson_id: Option<String>,
    pub size: u64,
    pub priority: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_in_ms: i64,
}

/// The head of the queue, first first, at most `limit`.
pub fn upload_queue(conn: &Connection, now: i64, limit: usize) -> Result<Vec<QueuedRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT hash, lesson_id, size, priority, attempts, last_error, MAX(0, next_attempt_at - ?1)
         FROM uploads WHERE done_at IS NULL ORDER BY priority DESC, enqueued_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(QueuedRow {
            hash: r.get(0)?,
            lesson_id: r.get(1)?,
            size: r.get::<_, i64>(2)?.max(0) as u64,
            priority: r.get(3)?,
            attempts: r.get(4)?,
            last_error: r.get(5)?,
            next_attempt_in_ms: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(upload_backoff_ms(0), 1000);
        assert_eq!(upload_backoff_ms(3), 8000);
        assert_eq!(upload_backoff_ms(30), 256_000);
    }
}
