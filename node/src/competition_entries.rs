//! Which lessons are entered in which competitions (评选): the `competition_entries` table,
//! whose SQL is here and nowhere else. The rows are materialized from each lesson document
//! (its school enters it; [`crate::lessons`] writes them in the transaction that saves the
//! lesson), and read by [`crate::competitions`] and the upload queue (entries go up first).

use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// One entry: (competition id, submitted at, submitted by).
pub type EntryRow = (String, i64, String);

/// Replaces a lesson's entries with those its document lists now.
pub fn replace(tx: &Transaction<'_>, lesson: &str, entries: &[EntryRow]) -> Result<(), StoreError> {
    tx.execute("DELETE FROM competition_entries WHERE lesson_id = ?1", [lesson])?;
    for (competition, at, by) in entries {
        tx.execute(
            "INSERT INTO competition_entries (competition_id, lesson_id, submitted_at, submitted_by) VALUES (?1, ?2, ?3, ?4)",
            params![competition, lesson, at, by],
        )?;
    }
    Ok(())
}

/// Whether a lesson is entered in any competition.
pub fn is_entered(conn: &Connection, lesson: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM competition_entries WHERE lesson_id = ?1)")?;
    Ok(stmt.query_row([lesson], |r| r.get(0))?)
}

/// A lesson's entry in one competition: (submitted at, submitted by).
pub fn entry(conn: &Connection, competition: &str, lesson: &str) -> Result<Option<(i64, String)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT submitted_at, submitted_by FROM competition_entries WHERE competition_id = ?1 AND lesson_id = ?2")?;
    Ok(stmt.query_row(params![competition, lesson], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
}

/// A competition's entries, in the order submitted: (lesson id, submitted at, submitted by).
pub fn of_competition(conn: &Connection, competition: &str) -> Result<Vec<(String, i64, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT lesson_id, submitted_at, submitted_by FROM competition_entries WHERE competition_id = ?1 ORDER BY submitted_at, lesson_id",
    )?;
    let rows = stmt.query_map([competition], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The competitions a lesson is entered in, in the order submitted.
pub fn of_lesson(conn: &Connection, lesson: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT competition_id FROM competition_entries WHERE lesson_id = ?1 ORDER BY submitted_at")?;
    let rows = stmt.query_map([lesson], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
