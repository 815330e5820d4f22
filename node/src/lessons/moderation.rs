//! Review (审核) and takedown (下架): who may see a shared lesson.
//!
//! A lesson shared to a tier (全市, 全省) reaches its audience, every school below that tier,
//! once a reviewer of that tier approved it ([`audience_reached`], the one place the rule is
//! written). Decisions are changes to the lesson's document, so they travel like every other
//! change: down to the teacher's school (who sees the decision and its reason) and, once
//! approved, down to every school of the audience. A takedown at any tier hides the lesson at
//! every node that holds it (the document keeps travelling to the nodes that hold it, see
//! `documents::Scope::Down`); a hidden or deleted comment travels the same way.
//!
//! Document layout: `moderation` (map tier → {`approved`, `reason`, `by`, `node`, `at`}),
//! `takedown` (map tier → {`reason`, `by`, `node`, `at`}), and on a comment `hidden`
//! ({`by`, `node`, `at`}).

use super::*;
use crate::documents::MAX_TEXT;
use crate::store::now_ms;
use rusqlite::Connection;

/// A reviewer's decision at one tier.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Decision {
    pub tier: Tier,
    pub approved: bool,
    pub reason: String,
    pub by: String,
    /// The node where it was decided.
    pub node: String,
    pub at: i64,
}

/// A lesson taken down (下架).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Takedown {
    pub tier: Tier,
    pub reason: String,
    pub by: String,
    pub node: String,
    pub at: i64,
}

/// The rule: a lesson reaches its audience (every node below the tier it is shared to) once a
/// reviewer of that tier approved it. A school-level lesson has no audience beyond its school.
pub fn audience_reached(share: Tier, decisions: &[Decision]) -> bool {
    share != Tier::School && decisions.iter().any(|d| d.tier == share && d.approved)
}

/// The tier whose review a lesson waits for: the tier it is shared to, until decided.
pub fn awaiting_review(share: Tier, decisions: &[Decision], takedown: Option<&Takedown>) -> Option<Tier> {
    (share != Tier::School && takedown.is_none() && !decisions.iter().any(|d| d.tier == share)).then_some(share)
}

pub(super) fn read_decisions(doc: &AutoCommit) -> Vec<Decision> {
    let Some(map) = child(doc, &ROOT, "moderation") else { return Vec::new() };
    let mut out: Vec<Decision> = doc
        .keys(&map)
        .filter_map(|k| {
            let o = child(doc, &map, &k)?;
            Some(Decision {
                tier: k.parse().ok()?,
                approved: documents::boolean(doc, &o, "approved").unwrap_or(false),
                reason: text(doc, &o, "reason").unwrap_or_default(),
                by: text(doc, &o, "by").unwrap_or_default(),
                node: text(doc, &o, "node").unwrap_or_default(),
                at: int(doc, &o, "at").unwrap_or(0),
            })
        })
        .collect();
    out.sort_by_key(|d| documents::share_rank(d.tier));
    out
}

/// The first takedown of a lesson, if any tier took it down.
pub(super) fn read_takedown(doc: &AutoCommit) -> Option<Takedown> {
    let map = child(doc, &ROOT, "takedown")?;
    doc.keys(&map)
        .filter_map(|k| {
            let o = child(doc, &map, &k)?;
            Some(Takedown {
                tier: k.parse().ok()?,
                reason: text(doc, &o, "reason").unwrap_or_default(),
                by: text(doc, &o, "by").unwrap_or_default(),
                node: text(doc, &o, "node").unwrap_or_default(),
                at: int(doc, &o, "at").unwrap_or(0),
            })
        })
        .min_by_key(|t| t.at)
}

/// What a reviewer or an administrator does to a lesson.
#[derive(Debug, Clone, PartialEq)]
pub enum Moderation {
    /// Approve the lesson for the audience of this node's tier.
    Approve,
    /// Reject it for this tier's audience, with a reason the teacher reads.
    Reject { reason: String },
    /// Take it down everywhere (下架), with a reason.
    Takedown { reason: String },
    HideComment { comment: String },
    DeleteComment { comment: String },
}

impl Moderation {
    /// The action's name in the audit log.
    pub fn action(&self) -> &'static str {
        match self {
            Moderation::Approve => "lesson.approve",
            Moderation::Reject { .. } => "lesson.reject",
            Moderation::Takedown { .. } => "lesson.takedown",
            Moderation::HideComment { .. } => "comment.hide",
            Moderation::DeleteComment { .. } => "comment.delete",
        }
    }
}

fn reason_ok(reason: &str, what: &str) -> Result<(), DocError> {
    let n = reason.trim().chars().count();
    if n == 0 || n > MAX_TEXT {
        return Err(DocError::Invalid(format!("{what} needs a reason of 1 to {MAX_TEXT} characters (the teacher reads it)")));
    }
    Ok(())
}

/// Who moderates: the signed-in user (or `cli` for the command line) and where from, for the
/// document and the audit log.
#[derive(Debug, Clone)]
pub struct Moderator<'a> {
    pub user: &'a str,
    pub address: &'a str,
}

/// Applies a moderation to a lesson at this node and records it in the audit log, in the
/// caller's transaction. `None` if the lesson is not here.
pub fn moderate(tx: &Transaction<'_>, w: &Writer, id: &str, m: &Moderation, by: &Moderator<'_>) -> Result<Option<Lesson>, DocError> {
    let Some(mut doc) = load_document(tx, w, id)? else { return Ok(None) };
    let l = read_document(&doc)?;
    let obj = |doc: &mut AutoCommit, key: &str| -> Result<automerge::ObjId, DocError> {
        match child(doc, &ROOT, key) {
            Some(o) => Ok(o),
            None => Ok(doc.put_object(ROOT, key, ObjType::Map)?),
        }
    };
    let detail = match m {
        Moderation::Approve | Moderation::Reject { .. } => {
            if l.share_level != w.tier || w.tier == Tier::School {
                return Err(DocError::Invalid(format!(
                    "this lesson is shared to the {} level; it is reviewed there, not at this {} node",
                    l.share_level, w.tier
                )));
            }
            if l.takedown.is_some() {
                return Err(DocError::Invalid("this lesson was taken down; it cannot be reviewed".into()));
            }
            let (approved, reason) = match m {
                Moderation::Reject { reason } => {
                    reason_ok(reason, "a rejection")?;
                    (false, reason.trim())
                }
                _ => (true, ""),
            };
            let map = obj(&mut doc, "moderation")?;
            let d = doc.put_object(&map, w.tier.as_str(), ObjType::Map)?;
            doc.put(&d, "approved", approved)?;
            doc.put(&d, "reason", reason)?;
            doc.put(&d, "by", by.user)?;
            doc.put(&d, "node", w.node_name.as_str())?;
            doc.put(&d, "at", now_ms())?;
            reason.to_string()
        }
        Moderation::Takedown { reason } => {
            reason_ok(reason, "a takedown")?;
            let map = obj(&mut doc, "takedown")?;
            let t = doc.put_object(&map, w.tier.as_str(), ObjType::Map)?;
            doc.put(&t, "reason", reason.trim())?;
            doc.put(&t, "by", by.user)?;
            doc.put(&t, "node", w.node_name.as_str())?;
            doc.put(&t, "at", now_ms())?;
            reason.trim().to_string()
        }
        Moderation::HideComment { comment } | Moderation::DeleteComment { comment } => {
            let list = child(&doc, &ROOT, "comments").ok_or_else(|| DocError::Invalid(format!("no comment {comment} on this lesson")))?;
            let at = (0..doc.length(&list))
                .find(|i| doc.get(&list, *i).ok().flatten().and_then(|(_, c)| text(&doc, &c, "id")).as_deref() == Some(comment.as_str()))
                .ok_or_else(|| DocError::Invalid(format!("no comment {comment} on this lesson")))?;
            if matches!(m, Moderation::DeleteComment { .. }) {
                doc.delete(&list, at)?;
            } else if let Some((_, c)) = doc.get(&list, at)? {
                let h = doc.put_object(&c, "hidden", ObjType::Map)?;
                doc.put(&h, "by", by.user)?;
                doc.put(&h, "node", w.node_name.as_str())?;
                doc.put(&h, "at", now_ms())?;
            }
            comment.clone()
        }
    };
    let lesson = save(tx, w, &mut doc)?;
    crate::accounts::audit(tx, by.user, by.address, m.action(), id, &detail).map_err(|e| DocError::Invalid(e.to_string()))?;
    Ok(Some(lesson))
}

/// The lessons waiting for this tier's review, oldest first.
pub fn review_queue(conn: &Connection, tier: Tier, limit: u64) -> Result<Vec<Lesson>, DocError> {
    rows::where_clause(conn, "awaiting_review = ?1 ORDER BY created_at, id LIMIT ?2", params![tier.as_str(), limit as i64])
}

/// How many lessons wait for this tier's review.
pub fn review_queue_len(conn: &Connection, tier: Tier) -> Result<u64, DocError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM lessons WHERE awaiting_review = ?1", [tier.as_str()], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Media (hash of the recording or of its ladder's pack) of lessons taken down that this node
/// holds as a copy (it is not their origin), with no listed lesson using the same file: what a
/// takedown drops here.
pub fn taken_down_media(conn: &Connection, this_node: &str) -> Result<Vec<String>, DocError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT l.media_hash FROM lessons l
         WHERE l.takedown IS NOT NULL AND l.media_hash IS NOT NULL AND l.origin_node <> ?1
           AND NOT EXISTS (SELECT 1 FROM lessons o WHERE o.media_hash = l.media_hash AND (o.listed = 1 OR o.origin_node = ?1))
         UNION
         SELECT DISTINCT l.ladder_hash FROM lessons l
         WHERE l.takedown IS NOT NULL AND l.ladder_hash IS NOT NULL AND l.origin_node <> ?1
           AND NOT EXISTS (SELECT 1 FROM lessons o WHERE o.ladder_hash = l.ladder_hash AND (o.listed = 1 OR o.origin_node = ?1))",
    )?;
    let rows = stmt.query_map([this_node], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}
