//! Reading the `lessons` rows (and the owners table): single lessons, pages, cards, owners,
//! each lesson's replication towards the parent, and the figures other modules ask for.

use super::*;
use crate::documents::{self, DocError};
use crate::store::StoreError;
use crate::sync_state;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use youke_federation::Tier;
use youke_federation::tier::goes_up;

const COLUMNS: &str = "id, title, teacher, grade, subject, knowledge_points, origin_node, origin_name, share_level,
    media_hash, media_size, media_mime, original_name, probe, duration_secs, created_at, seq,
    textbook_chapter, tags, description, rating_avg, rating_count, comment_count, review_avg, review_count, views, compliance,
    (SELECT s.language FROM subtitles s WHERE s.lesson_id = lessons.id), (SELECT s.cues FROM subtitles s WHERE s.lesson_id = lessons.id), origin_tier,
    listed, moderation, takedown, awaiting_review, downloadable, ladder, ladder_expected, arrived";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Lesson, i64)> {
    let kp: String = r.get(5)?;
    let share: String = r.get(8)?;
    let hash: Option<String> = r.get(9)?;
    let probe: Option<String> = r.get(13)?;
    let lesson = Lesson {
        id: r.get(0)?,
        title: r.get(1)?,
        teacher: r.get(2)?,
        grade: r.get(3)?,
        subject: r.get(4)?,
        knowledge_points: serde_json::from_str(&kp).unwrap_or_default(),
        origin_node: r.get(6)?,
        origin_name: r.get(7)?,
        origin_tier: r.get(29)?,
        share_level: share.parse().unwrap_or(Tier::School),
        media: match hash {
            Some(hash) => Some(MediaRef {
                hash,
                size: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
                mime: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            }),
            None => None,
        },
        original_name: r.get(12)?,
        probe: probe.map(JsonText::trusted),
        duration_secs: r.get(14)?,
        created_at: r.get(15)?,
        textbook_chapter: r.get(17)?,
        tags: serde_json::from_str(&r.get::<_, String>(18)?).unwrap_or_default(),
        description: r.get(19)?,
        rating_avg: r.get(20)?,
        rating_count: r.get::<_, i64>(21)? as u64,
        comment_count: r.get::<_, i64>(22)? as u64,
        review_avg: r.get(23)?,
        review_count: r.get::<_, i64>(24)? as u64,
        views: r.get(25)?,
        compliance: r.get::<_, Option<String>>(26)?.and_then(|s| super::compliance_of(&s)),
        subtitles: match (r.get::<_, Option<String>>(27)?, r.get::<_, Option<i64>>(28)?) {
            (Some(language), Some(cues)) => Some(SubtitleInfo { language, cues: cues as u64 }),
            _ => None,
        },
        listed: r.get(30)?,
        moderation: serde_json::from_str(&r.get::<_, String>(31)?).unwrap_or_default(),
        takedown: r.get::<_, Option<String>>(32)?.and_then(|t| serde_json::from_str(&t).ok()),
        awaiting_review: r.get::<_, Option<String>>(33)?.and_then(|t| t.parse().ok()),
        downloadable: r.get(34)?,
        ladder: r.get::<_, Option<String>>(35)?.and_then(|t| serde_json::from_str(&t).ok()),
        ladder_expected: r.get(36)?,
        arrived: serde_json::from_str(&r.get::<_, String>(37)?).unwrap_or_default(),
    };
    Ok((lesson, r.get(16)?))
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Lesson>, DocError> {
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], from_row).optional()?.map(|(l, _)| l))
}

/// Lessons matching a condition (with its ORDER BY and LIMIT), for the modules of this tree.
pub(super) fn where_clause(conn: &Connection, condition: &str, args: impl rusqlite::Params) -> Result<Vec<Lesson>, DocError> {
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE {condition}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args, from_row)?;
    Ok(rows.map(|r| r.map(|(l, _)| l)).collect::<Result<Vec<_>, _>>()?)
}

/// The listed lessons ([`Lesson::listed`]), newest first, one page.
pub fn list(conn: &Connection, offset: u64, limit: u64) -> Result<(Vec<Lesson>, u64), DocError> {
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM lessons WHERE listed = 1", [], |r| r.get(0))?;
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE listed = 1 ORDER BY created_at DESC, id LIMIT ?1 OFFSET ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    // Past i64's range is past every row (SQLite reads a negative offset as 0: the first page).
    let rows = stmt.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX)], from_row)?;
    let items = rows.map(|r| r.map(|(l, _)| l)).collect::<Result<Vec<_>, _>>()?;
    Ok((items, total as u64))
}

/// The listed lessons with these ids, in the order given (missing and unlisted ones skipped).
pub fn by_ids(conn: &Connection, ids: &[String]) -> Result<Vec<Lesson>, DocError> {
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE id = ?1 AND listed = 1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((l, _)) = stmt.query_row([id], from_row).optional()? {
            out.push(l);
        }
    }
    Ok(out)
}

/// What a list of lessons shows of each: a line with its title, names and views.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LessonCard {
    pub id: String,
    pub title: String,
    pub teacher: String,
    pub grade: String,
    pub subject: String,
    pub origin_name: String,
    pub views: i64,
}

/// The cards of the listed lessons with these ids (missing and unlisted ones left out), in the
/// order given.
pub fn cards_by_ids(conn: &Connection, ids: &[String]) -> Result<Vec<LessonCard>, DocError> {
    let mut stmt = conn.prepare_cached("SELECT id, title, teacher, grade, subject, origin_name, views FROM lessons WHERE id = ?1 AND listed = 1")?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let card = stmt
            .query_row([id], |r| {
                Ok(LessonCard { id: r.get(0)?, title: r.get(1)?, teacher: r.get(2)?, grade: r.get(3)?, subject: r.get(4)?, origin_name: r.get(5)?, views: r.get(6)? })
            })
            .optional()?;
        out.extend(card);
    }
    Ok(out)
}

/// Records which portal account brought a lesson in.
pub fn set_owner(tx: &Transaction<'_>, id: &str, user: &str) -> Result<(), DocError> {
    tx.execute("INSERT INTO lesson_owners (lesson_id, user) VALUES (?1, ?2) ON CONFLICT (lesson_id) DO UPDATE SET user = excluded.user", params![id, user])?;
    Ok(())
}

/// Whether a teacher may change a lesson here: one they brought in, or one made at this node
/// under their name (imported from the folder or by the CLI).
pub fn is_owner(conn: &Connection, id: &str, user: &str, display: &str, this_node: &str) -> Result<bool, DocError> {
    let owned: i64 = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM lesson_owners WHERE lesson_id = ?1 AND user = ?2)
             OR EXISTS (SELECT 1 FROM lessons WHERE id = ?1 AND origin_node = ?4 AND teacher = ?3 AND teacher <> ''
                        AND NOT EXISTS (SELECT 1 FROM lesson_owners WHERE lesson_id = ?1))",
        params![id, user, display, this_node],
        |r| r.get(0),
    )?;
    Ok(owned != 0)
}

/// A teacher's lessons at this node ([`is_owner`]), newest first.
pub fn owned_by(conn: &Connection, user: &str, display: &str, this_node: &str) -> Result<Vec<Lesson>, DocError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM lessons WHERE id IN (SELECT lesson_id FROM lesson_owners WHERE user = ?1)
            OR (origin_node = ?3 AND teacher = ?2 AND teacher <> '' AND id NOT IN (SELECT lesson_id FROM lesson_owners))
         ORDER BY created_at DESC, id LIMIT 500"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user, display, this_node], from_row)?;
    Ok(rows.map(|r| r.map(|(l, _)| l)).collect::<Result<Vec<_>, _>>()?)
}

/// How far a lesson has travelled up the tree from this node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replication {
    /// `local` (kept at this node: shared with the school only, or no parent), `waiting` (shared
    /// up, the link to the parent is down), `sending` (on its way), `delivered` (the parent
    /// confirmed the metadata and holds the media).
    pub state: &'static str,
    /// The parent node's name, when known.
    pub parent: Option<String>,
    /// The parent confirmed this version of the lesson's document.
    pub metadata_confirmed: bool,
    /// The recording's upload to the parent: none queued, or its progress.
    pub media: Option<MediaUpload>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaUpload {
    pub done: bool,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Each lesson's [`Replication`] towards this node's parent (`parent_tier`: its tier, `None` at
/// the top of the tree).
pub fn replication(conn: &Connection, lessons: &[Lesson], parent_tier: Option<Tier>) -> Result<Vec<Replication>, DocError> {
    let parent = sync_state::parent(conn)?.map(|p| (p.node_id, p.name));
    let link_up = sync_state::link_state(conn)?.is_some_and(|s| s.state == "up");
    let mut out = Vec::with_capacity(lessons.len());
    for l in lessons {
        let parent_id = parent.as_ref().map_or("", |(id, _)| id.as_str());
        let metadata_confirmed = !parent_id.is_empty() && documents::peer_holds_current(conn, &l.id, parent_id)?;
        let media = match &l.media {
            Some(m) => sync_state::upload_of(conn, &m.hash)?.map(|(done, attempts, last_error)| MediaUpload { done, attempts, last_error }),
            None => None,
        };
        let state = if !parent_tier.is_some_and(|p| goes_up(l.share_level, p)) {
            "local"
        } else if metadata_confirmed && media.as_ref().is_none_or(|m| m.done) {
            "delivered"
        } else if !link_up {
            "waiting"
        } else {
            "sending"
        };
        out.push(Replication { state, parent: parent.as_ref().map(|(_, n)| n.clone()), metadata_confirmed, media });
    }
    Ok(out)
}

/// The recordings of lessons, as the storage forecast measures them: (lessons with a probed
/// recording, distinct China-time days they were made on, mean bit rate in kbit/s, mean
/// duration in seconds).
pub fn recording_stats(conn: &Connection) -> Result<(u64, u64, Option<f64>, Option<f64>), StoreError> {
    let (n, days, kbit, secs): (i64, i64, Option<f64>, Option<f64>) = conn.query_row(
        "SELECT COUNT(*),
                COUNT(DISTINCT date(created_at / 1000, 'unixepoch', '+8 hours')),
                AVG((COALESCE(json_extract(probe, '$.video.bit_rate'), 0) + COALESCE(json_extract(probe, '$.audio.bit_rate'), 0)) / 1000.0),
                AVG(duration_secs)
         FROM lessons WHERE probe IS NOT NULL AND duration_secs > 0",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok((n.max(0) as u64, days.max(0) as u64, kbit, secs))
}

/// Which file of a lesson: its recording, or what plays (its ladder's pack where it has one,
/// else its recording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFile {
    Recording,
    Playable,
}

/// The files (hash, size) of the given lessons, each once.
pub fn media_of(conn: &Connection, ids: &[String], which: MediaFile) -> Result<Vec<(String, u64)>, StoreError> {
    let sql = match which {
        MediaFile::Recording => "SELECT media_hash, media_size FROM lessons WHERE id = ?1 AND media_hash IS NOT NULL",
        MediaFile::Playable => {
            "SELECT COALESCE(ladder_hash, media_hash), COALESCE(json_extract(ladder, '$.size'), media_size) FROM lessons
             WHERE id = ?1 AND media_hash IS NOT NULL"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out: Vec<(String, u64)> = Vec::new();
    for id in ids {
        if let Some((h, size)) = stmt.query_row([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))).optional()?
            && !out.iter().any(|(x, _)| *x == h)
        {
            out.push((h, size));
        }
    }
    Ok(out)
}

/// The newest change sequence number among lessons (0 with none).
pub fn newest_lesson_seq(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM lessons", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// How many lessons have this mean rating.
pub fn count_rated(conn: &Connection, rating: f64) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM lessons WHERE rating_avg = ?1", [rating], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// How many lessons this node knows.
pub fn count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM lessons", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// The most viewed listed lessons not taken down (for prefetching), most viewed first.
pub fn most_viewed(conn: &Connection, limit: usize) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM lessons WHERE listed = 1 AND views > 0 AND media_hash IS NOT NULL ORDER BY views DESC, id LIMIT ?1")?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

/// A lesson whose recording is the blob `hash` (hex), if any.
/// Lessons whose recording is this blob (a recording imported twice is two lessons, one file).
pub fn ids_with_media(conn: &Connection, hash: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM lessons WHERE media_hash = ?1 ORDER BY created_at, id")?;
    let ids = stmt.query_map([hash], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

pub fn id_with_media(conn: &Connection, hash: &str) -> Result<Option<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM lessons WHERE media_hash = ?1 LIMIT 1")?;
    Ok(stmt.query_row([hash], |r| r.get(0)).optional()?)
}

/// Lessons whose row changed after `seq`, oldest change first, with their sequence numbers.
pub fn changed_since(conn: &Connection, seq: u64, limit: u64) -> Result<Vec<(Lesson, u64)>, DocError> {
    let sql = format!("SELECT {COLUMNS} FROM lessons WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![seq as i64, limit as i64], from_row)?;
    Ok(rows.map(|r| r.map(|(l, s)| (l, s as u64))).collect::<Result<Vec<_>, _>>()?)
}

