//! The index of media blobs this node holds (its own and replicated recordings; not the
//! pull-through cache, which [`crate::pull_through`] keeps): the `blobs` table, whose SQL is here and
//! nowhere else. The bytes themselves are in the blob store ([`youke_federation::blobs`]); a
//! row is added in the transaction that makes the blob part of the node (import, a child's
//! upload), after the bytes are safely stored.

use crate::store::{StoreError, now_ms};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use youke_federation::BlobHash;

/// Records a blob as held (a second time changes nothing).
pub fn add(tx: &Transaction<'_>, hash: &BlobHash, size: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO blobs (hash, size, added_at) VALUES (?1, ?2, ?3) ON CONFLICT (hash) DO NOTHING",
        params![hash.to_hex(), i64::try_from(size).unwrap_or(i64::MAX), now_ms()],
    )?;
    Ok(())
}

/// Forgets a blob (its bytes are deleted by the caller once this commits).
pub fn remove(tx: &Transaction<'_>, hash: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM blobs WHERE hash = ?1", [hash])?;
    Ok(())
}

/// Whether the node holds a blob (by its hex hash).
pub fn holds(conn: &Connection, hash: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM blobs WHERE hash = ?1")?;
    Ok(stmt.query_row([hash], |_| Ok(())).optional()?.is_some())
}

/// How many blobs the node holds, and their bytes.
pub fn totals(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let (n, bytes): (i64, i64) = conn.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((n.max(0) as u64, bytes.max(0) as u64))
}

/// Every blob held, (hex hash, size), in hash order.
pub fn all(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT hash, size FROM blobs ORDER BY hash")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
