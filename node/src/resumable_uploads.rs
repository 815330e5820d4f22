//! Resumable uploads (the portal's side of the tus protocol): a row per upload with the bytes
//! acknowledged so far, the data in a `.part` file in the import folder's `.uploading` staging
//! directory. A piece is acknowledged only after its bytes are fsynced and the new offset is
//! committed, so a crash or a dropped connection loses at most the unacknowledged tail: the
//! file is cut back to the committed offset before more is appended.

use crate::store::{StoreError, now_ms};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How long an unfinished upload is kept after its last piece.
pub const KEEP_UNFINISHED_MS: i64 = 7 * 24 * 3600 * 1000;

/// What the teacher said about the recording when the upload began.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadMeta {
    pub title: Option<String>,
    pub teacher: Option<String>,
    pub grade: Option<String>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upload {
    pub id: String,
    pub user: String,
    /// The file's own name.
    pub name: String,
    pub meta: UploadMeta,
    pub length: u64,
    pub offset: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The lesson made from it, once complete and imported.
    pub lesson_id: Option<String>,
    /// Why the import refused it (the file is in quarantine).
    pub error: Option<String>,
}

/// The `.part` file of an upload.
pub fn part_path(staging: &Path, id: &str) -> PathBuf {
    staging.join(format!("{id}.part"))
}

pub fn create(tx: &Transaction<'_>, user: &str, name: &str, meta: &UploadMeta, length: u64) -> Result<Upload, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let meta_json = serde_json::to_string(meta).unwrap_or_else(|_| "{}".into());
    tx.execute(
        "INSERT INTO resumable_uploads (id, user, name, meta, length, offset, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)",
        params![id, user, name, meta_json, length as i64, now],
    )?;
    Ok(Upload { id, user: user.into(), name: name.into(), meta: meta.clone(), length, offset: 0, created_at: now, updated_at: now, lesson_id: None, error: None })
}

/// Bytes the unfinished uploads still expect (declared length less what arrived).
pub fn outstanding_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COALESCE(SUM(MAX(length - offset, 0)), 0) FROM resumable_uploads WHERE lesson_id IS NULL AND error IS NULL", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Upload>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, user, name, meta, length, offset, created_at, updated_at, lesson_id, error FROM resumable_uploads WHERE id = ?1",
            [id],
            |r| {
                Ok(Upload {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    name: r.get(2)?,
                    meta: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                    length: r.get::<_, i64>(4)?.max(0) as u64,
                    offset: r.get::<_, i64>(5)?.max(0) as u64,
                    created_at: r.get(6)?,
                    updated_at: r.get(7)?,
                    lesson_id: r.get(8)?,
                    error: r.get(9)?,
                })
            },
        )
        .optional()?)
}

/// Records bytes received and fsynced: the new offset, if the upload was still at `from`.
pub fn advance(tx: &Transaction<'_>, id: &str, from: u64, to: u64) -> Result<bool, StoreError> {
    let n = tx.execute(
        "UPDATE resumable_uploads SET offset = ?3, updated_at = ?4 WHERE id = ?1 AND offset = ?2 AND lesson_id IS NULL AND error IS NULL",
        params![id, from as i64, to as i64, now_ms()],
    )?;
    Ok(n == 1)
}

/// Records how a complete upload ended: the lesson made from it, or why it was refused.
pub fn finish(tx: &Transaction<'_>, id: &str, outcome: Result<&str, &str>) -> Result<(), StoreError> {
    let (lesson, error) = match outcome {
        Ok(l) => (Some(l), None),
        Err(e) => (None, Some(e)),
    };
    tx.execute("UPDATE resumable_uploads SET lesson_id = ?2, error = ?3, updated_at = ?4 WHERE id = ?1", params![id, lesson, error, now_ms()])?;
    Ok(())
}

pub fn delete(tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM resumable_uploads WHERE id = ?1", [id])?;
    Ok(())
}

/// Forgets uploads untouched for [`KEEP_UNFINISHED_MS`] (finished ones too); returns their ids
/// so their `.part` files can be removed.
pub fn expire(tx: &Transaction<'_>, now: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx.prepare("DELETE FROM resumable_uploads WHERE updated_at < ?1 RETURNING id")?;
    let ids = stmt.query_map([now - KEEP_UNFINISHED_MS], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn offsets_only_move_forward_from_where_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let meta = UploadMeta { title: Some("浮力".into()), ..UploadMeta::default() };
        let u = store.write(|tx| create(tx, "wangfang", "浮力 实验.mp4", &meta, 1000)).expect("create");
        assert!(store.write(|tx| advance(tx, &u.id, 0, 400)).expect("advance"));
        assert!(!store.write(|tx| advance(tx, &u.id, 0, 500)).expect("advance"), "a stale offset is refused");
        assert!(store.write(|tx| advance(tx, &u.id, 400, 1000)).expect("advance"));
        store.write(|tx| finish(tx, &u.id, Ok("lesson-1"))).expect("finish");
        let got = store.read(|c| get(c, &u.id)).expect("get").expect("there");
        assert_eq!((got.offset, got.lesson_id.as_deref(), got.meta), (1000, Some("lesson-1"), meta));
        assert!(!store.write(|tx| advance(tx, &u.id, 1000, 1001)).expect("advance"), "a finished upload takes no more");
        assert_eq!(store.write(|tx| expire(tx, now_ms())).expect("expire"), Vec::<String>::new());
        assert_eq!(store.write(|tx| expire(tx, now_ms() + KEEP_UNFINISHED_MS + 1)).expect("expire"), vec![u.id.clone()]);
        assert!(store.read(|c| get(c, &u.id)).expect("get").is_none());
    }
}
