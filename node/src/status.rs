//! `youke status`: what a node is, how its parent link is doing, and what it holds and owes.

use crate::node::{NodeCtx, NodeError};
use crate::store::now_ms;
use rusqlite::OptionalExtension;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Status {
    pub node_id: String,
    pub name: String,
    pub role: String,
    pub serving: bool,
    pub parent: Option<ParentLink>,
    pub children: Vec<ChildLink>,
    pub lessons: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Media blobs queued for the parent and not yet confirmed.
    pub pending_uploads: u64,
    pub pending_upload_bytes: u64,
    /// Documents changed since the parent's last acknowledgement (upper bound).
    pub pending_docs: u64,
}

#[derive(Debug, Serialize)]
pub struct ParentLink {
    pub addr: String,
    pub state: String,
    pub name: Option<String>,
    pub error: Option<String>,
    /// Milliseconds since the state was recorded.
    pub age_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ChildLink {
    pub node_id: String,
    pub name: String,
    pub tier: String,
    pub addr: String,
    pub last_seen_ms_ago: i64,
}

pub fn collect(ctx: &NodeCtx, serving: bool) -> Result<Status, NodeError> {
    ctx.store.read(|c| -> Result<Status, NodeError> {
        let count = |sql: &str| -> Result<i64, NodeError> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
        let parent = match &ctx.config.parent {
            None => None,
            Some(addr) => {
                let row: Option<(ParentLink, i64)> = c
                    .query_row("SELECT parent_addr, state, parent_name, error, updated_at FROM link_state WHERE id = 1", [], |r| {
                        Ok((ParentLink { addr: r.get(0)?, state: r.get(1)?, name: r.get(2)?, error: r.get(3)?, age_ms: None }, r.get(4)?))
                    })
                    .optional()?;
                Some(match row {
                    Some((link, at)) if &link.addr == addr => ParentLink {
                        state: if serving { link.state } else { "not running".into() },
                        age_ms: Some(now_ms() - at),
                        ..link
                    },
                    _ => ParentLink { addr: addr.clone(), state: if serving { "connecting".into() } else { "not running".into() }, name: None, error: None, age_ms: None },
                })
            }
        };
        let mut stmt = c.prepare("SELECT node_id, name, tier, addr, last_seen FROM peers WHERE relation = 'child' ORDER BY name")?;
        let now = now_ms();
        let children = stmt
            .query_map([], |r| {
                Ok(ChildLink { node_id: r.get(0)?, name: r.get(1)?, tier: r.get(2)?, addr: r.get(3)?, last_seen_ms_ago: now - r.get::<_, i64>(4)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let acked: i64 = c
            .query_row("SELECT acked_seq FROM peers WHERE relation = 'parent'", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let pending_docs = if ctx.config.parent.is_some() {
            let rank = match ctx.writer.tier.parent() {
                Some(youke_federation::Tier::City) => 1,
                _ => 2,
            };
            c.query_row("SELECT COUNT(*) FROM docs WHERE seq > ?1 AND share_rank >= ?2", [acked, rank], |r| r.get::<_, i64>(0))?
        } else {
            0
        };
        Ok(Status {
            node_id: ctx.writer.node_id.clone(),
            name: ctx.writer.node_name.clone(),
            role: ctx.writer.tier.to_string(),
            serving,
            parent,
            children,
            lessons: count("SELECT COUNT(*) FROM lessons")? as u64,
            blobs: count("SELECT COUNT(*) FROM blobs")? as u64,
            blob_bytes: count("SELECT COALESCE(SUM(size), 0) FROM blobs")? as u64,
            pending_uploads: count("SELECT COUNT(*) FROM uploads WHERE done_at IS NULL")? as u64,
            pending_upload_bytes: count("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE done_at IS NULL")? as u64,
            pending_docs: pending_docs as u64,
        })
    })
}

/// Bytes in a human unit (binary prefixes).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("B")) }
}

pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "node      {} ({}), id {}", s.name, s.role, s.node_id);
    let _ = writeln!(o, "serving   {}", if s.serving { "yes" } else { "no (run `youke serve`)" });
    match &s.parent {
        None => {
            let _ = writeln!(o, "parent    none");
        }
        Some(p) => {
            let name = p.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let age = p.age_ms.map(|a| format!(", as of {:.0}s ago", a as f64 / 1000.0)).unwrap_or_default();
            let err = p.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            let _ = writeln!(o, "parent    {}{} {}{}{}", p.addr, name, p.state, err, age);
        }
    }
    for c in &s.children {
        let _ = writeln!(o, "child     {} ({}) at {}, last seen {:.0}s ago", c.name, c.tier, c.addr, c.last_seen_ms_ago as f64 / 1000.0);
    }
    let _ = writeln!(o, "lessons   {}", s.lessons);
    let _ = writeln!(o, "media     {} blobs, {}", s.blobs, human_bytes(s.blob_bytes));
    let _ = writeln!(
        o,
        "pending   {} blob(s) ({}) and {} document(s) to replicate to the parent",
        s.pending_uploads,
        human_bytes(s.pending_upload_bytes),
        s.pending_docs
    );
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_units() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
