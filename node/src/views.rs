//! The views counted at this node (the `views` table; its SQL is here and nowhere else): one
//! row per viewer, lesson and day, so a viewer counts once a day however often they watch. Rows
//! are added when a player reports a lesson really watched ([`crate::viewing`]) and added to the
//! lesson's document counter in batches, in the transaction that marks them counted: the
//! counter sums every node's views across the tree, and a crash between the two loses nothing
//! and counts nothing twice.

use crate::store::StoreError;
use rusqlite::{Connection, Transaction, params};

/// Records a view; false if this viewer was already counted for the lesson that day.
pub fn record(tx: &Transaction<'_>, lesson: &str, viewer: &str, day: &str, at: i64) -> Result<bool, StoreError> {
    let n = tx.execute(
        "INSERT INTO views (lesson_id, viewer, day, at, counted) VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT DO NOTHING",
        params![lesson, viewer, day, at],
    )?;
    Ok(n > 0)
}

/// Lessons with views not yet added to their documents, and how many each: at most `limit`.
pub fn uncounted(conn: &Connection, limit: usize) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT lesson_id, COUNT(*) FROM views WHERE counted = 0 GROUP BY lesson_id LIMIT ?1")?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// How many of a lesson's views are not yet added to its document.
pub fn uncounted_of(conn: &Connection, lesson: &str) -> Result<i64, StoreError> {
    Ok(conn.prepare_cached("SELECT COUNT(*) FROM views WHERE lesson_id = ?1 AND counted = 0")?.query_row([lesson], |r| r.get(0))?)
}

/// Marks a lesson's views counted (in the transaction that added them to its document).
pub fn mark_counted(tx: &Transaction<'_>, lesson: &str) -> Result<(), StoreError> {
    tx.execute("UPDATE views SET counted = 1 WHERE lesson_id = ?1 AND counted = 0", [lesson])?;
    Ok(())
}

/// Forgets counted views older than `before_day` (YYYY-MM-DD): only today's matter for
/// counting each viewer once.
pub fn prune(tx: &Transaction<'_>, before_day: &str) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM views WHERE counted = 1 AND day < ?1", [before_day])?)
}
