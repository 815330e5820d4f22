//! The node's side of federation links: implements [`LinkStore`] over the SQLite store, so the
//! federation crate can ask what to send up, record acknowledgements, pin peers and apply what
//! children send.

use crate::documents::{self, Source, share_rank};
use crate::store::StoreError as DbError;
use crate::node::NodeCtx;
use crate::store::now_ms;
use rusqlite::{OptionalExtension, params};
use std::sync::Arc;
use youke_federation::link::{BlobUpload, LinkState, LinkStore, Peer, StoreError};
use youke_federation::protocol::DocUpdate;
use youke_federation::{BlobHash, Fingerprint};

/// Retry delay after a failed upload: 2^attempts seconds, at most 5 minutes.
pub fn upload_backoff_ms(attempts: u32) -> i64 {
    1000 * (1i64 << attempts.min(8)).min(300)
}

pub struct NodeLinkStore {
    ctx: Arc<NodeCtx>,
}

impl NodeLinkStore {
    pub fn new(ctx: Arc<NodeCtx>) -> Self {
        NodeLinkStore { ctx }
    }
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    Box::new(e)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refusal(String);

impl LinkStore for NodeLinkStore {
    fn known_parent(&self) -> Result<Option<(String, Fingerprint)>, StoreError> {
        let row: Option<(String, String)> = self
            .ctx
            .store
            .read(|c| Ok::<_, DbError>(c.query_row("SELECT node_id, fingerprint FROM peers WHERE relation = 'parent'", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?))
            .map_err(boxed)?;
        Ok(row.and_then(|(id, fp)| Fingerprint::from_hex(&fp).map(|f| (id, f))))
    }

    fn remember_parent(&self, parent: &Peer) -> Result<(), StoreError> {
        upsert_peer(&self.ctx, parent, "parent")
    }

    fn set_link_state(&self, parent_addr: &str, state: &LinkState) -> Result<(), StoreError> {
        let (name, label, error) = match state {
            LinkState::Connecting => (None, "connecting", None),
            LinkState::Up { parent } => (Some(parent.name.clone()), "up", None),
            LinkState::Down { error } => (None, "down", Some(error.clone())),
        };
        self.ctx
            .store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO link_state (id, parent_addr, state, parent_name, error, updated_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (id) DO UPDATE SET parent_addr = excluded.parent_addr, state = excluded.state,
                       parent_name = COALESCE(excluded.parent_name, link_state.parent_name), error = excluded.error,
                       updated_at = excluded.updated_at",
                    params![parent_addr, label, name, error, now_ms()],
                )
                .map_err(DbError::from)
            })
            .map_err(boxed)?;
        Ok(())
    }

    fn docs_to_send(&self, parent: &Peer, limit: usize) -> Result<Vec<DocUpdate>, StoreError> {
        self.ctx
            .store
            .read(|c| -> Result<Vec<DocUpdate>, DbError> {
                let acked: i64 = c
                    .query_row("SELECT acked_seq FROM peers WHERE node_id = ?1", [&parent.info.node_id], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                // Scope up: shared at or above the parent's tier, and not exactly the version the
                // parent sent us.
                let mut stmt = c.prepare_cached(
                    "SELECT id, kind, seq, bytes FROM docs
                     WHERE seq > ?1 AND share_rank >= ?2 AND (last_from IS NULL OR last_from != ?3)
                     ORDER BY seq LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![acked, share_rank(parent.info.tier), parent.info.node_id, limit as i64], |r| {
                    Ok(DocUpdate { id: r.get(0)?, kind: r.get(1)?, seq: r.get::<_, i64>(2)? as u64, bytes: r.get(3)? })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .map_err(boxed)
    }

    fn docs_acked(&self, parent: &Peer, upto_seq: u64) -> Result<(), StoreError> {
        self.ctx
            .store
            .write(|tx| {
                tx.execute(
                    "UPDATE peers SET acked_seq = MAX(acked_seq, ?1), last_seen = ?2 WHERE node_id = ?3",
                    params![upto_seq as i64, now_ms(), parent.info.node_id],
                )
                .map_err(DbError::from)
            })
            .map_err(boxed)?;
        Ok(())
    }

    fn pull_cursor(&self, parent: &Peer) -> Result<u64, StoreError> {
        let seq: Option<i64> = self
            .ctx
            .store
            .read(|c| Ok::<_, DbError>(c.query_row("SELECT down_seq FROM peers WHERE node_id = ?1", [&parent.info.node_id], |r| r.get(0)).optional()?))
            .map_err(boxed)?;
        Ok(seq.unwrap_or(0) as u64)
    }

    fn apply_from_parent(&self, parent: &Peer, docs: Vec<DocUpdate>, upto_seq: u64) -> Result<(), StoreError> {
        let n = docs.len();
        self.ctx.store.write(|tx| -> Result<(), StoreError> {
            for d in &docs {
                documents::merge_remote(tx, &self.ctx.writer, &d.kind, &d.bytes, Source::Parent(&parent.info.node_id)).map_err(boxed)?;
            }
            tx.execute(
                "UPDATE peers SET down_seq = MAX(down_seq, ?1), last_seen = ?2 WHERE node_id = ?3",
                params![upto_seq as i64, now_ms(), parent.info.node_id],
            )
            .map_err(boxed)?;
            Ok(())
        })?;
        if n > 0 {
            tracing::debug!(parent = %parent.info.name, count = n, upto_seq, "documents from parent applied");
            self.ctx.changed();
        }
        Ok(())
    }

    fn docs_for_child(&self, child: &Peer, after_seq: u64, limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError> {
        self.ctx
            .store
            .read(|c| -> Result<(Vec<DocUpdate>, u64), DbError> {
                // Everything with a sequence number up to this one is committed (the number and
                // the document are written in one transaction).
                let newest: i64 = c.query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'doc_seq'", [], |r| r.get(0))?;
                // Scope down: published to the whole tree, or came from this child's subtree;
                // never exactly the version the child sent us.
                let mut stmt = c.prepare_cached(
                    "SELECT d.id, d.kind, d.seq, d.bytes FROM docs d
                     WHERE d.seq > ?1 AND d.seq <= ?2
                       AND (d.published = 1 OR EXISTS (SELECT 1 FROM doc_routes r WHERE r.doc_id = d.id AND r.child_id = ?3))
                       AND (d.last_from IS NULL OR d.last_from != ?3)
                     ORDER BY d.seq LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![after_seq as i64, newest, child.info.node_id, limit as i64], |r| {
                    Ok(DocUpdate { id: r.get(0)?, kind: r.get(1)?, seq: r.get::<_, i64>(2)? as u64, bytes: r.get(3)? })
                })?;
                let docs = rows.collect::<Result<Vec<_>, _>>()?;
                let upto = if docs.len() < limit { (newest.max(0) as u64).max(after_seq) } else { docs.last().map(|d| d.seq).unwrap_or(after_seq) };
                Ok((docs, upto))
            })
            .map_err(boxed)
    }

    fn next_blob_upload(&self, _parent: &Peer) -> Result<Option<BlobUpload>, StoreError> {
        let row: Option<(String, i64)> = self
            .ctx
            .store
            .read(|c| {
                Ok::<_, DbError>(
                    c.query_row(
                        "SELECT u.hash, u.size FROM uploads u
                         WHERE u.done_at IS NULL AND u.next_attempt_at <= ?1
                           AND EXISTS (SELECT 1 FROM blobs b WHERE b.hash = u.hash)
                         ORDER BY u.priority DESC, u.enqueued_at LIMIT 1",
                        [now_ms()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?,
                )
            })
            .map_err(boxed)?;
        Ok(row.and_then(|(h, size)| h.parse::<BlobHash>().ok().map(|hash| BlobUpload { hash, size: size as u64 })))
    }

    fn blob_upload_done(&self, _parent: &Peer, hash: &BlobHash) -> Result<(), StoreError> {
        self.ctx
            .store
            .write(|tx| {
                tx.execute("UPDATE uploads SET done_at = ?1, last_error = NULL WHERE hash = ?2", params![now_ms(), hash.to_hex()])
                    .map_err(DbError::from)
            })
            .map_err(boxed)?;
        Ok(())
    }

    fn blob_upload_failed(&self, _parent: &Peer, hash: &BlobHash, reason: &str) -> Result<(), StoreError> {
        self.ctx
            .store
            .write(|tx| -> Result<usize, DbError> {
                let attempts: i64 = tx
                    .query_row("SELECT attempts FROM uploads WHERE hash = ?1", [hash.to_hex()], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                Ok(tx.execute(
                    "UPDATE uploads SET attempts = attempts + 1, next_attempt_at = ?1, last_error = ?2 WHERE hash = ?3",
                    params![now_ms() + upload_backoff_ms(attempts as u32), reason, hash.to_hex()],
                )?)
            })
            .map_err(boxed)?;
        Ok(())
    }

    fn child_pin(&self, node_id: &str) -> Result<Option<Fingerprint>, StoreError> {
        let fp: Option<String> = self
            .ctx
            .store
            .read(|c| Ok::<_, DbError>(c.query_row("SELECT fingerprint FROM peers WHERE node_id = ?1 AND relation = 'child'", [node_id], |r| r.get(0)).optional()?))
            .map_err(boxed)?;
        Ok(fp.and_then(|f| Fingerprint::from_hex(&f)))
    }

    fn remember_child(&self, child: &Peer) -> Result<(), StoreError> {
        upsert_peer(&self.ctx, child, "child")
    }

    fn apply_docs(&self, child: &Peer, docs: Vec<DocUpdate>) -> Result<(), StoreError> {
        let n = docs.len();
        self.ctx
            .store
            .write(|tx| -> Result<(), StoreError> {
                for d in &docs {
                    // Children send up only what they share: lessons.
                    if d.kind != documents::Kind::Lesson.as_str() {
                        return Err(Box::new(Refusal(format!("a child may not send {:?} documents up", d.kind))));
                    }
                    documents::merge_remote(tx, &self.ctx.writer, &d.kind, &d.bytes, Source::Child(&child.info.node_id)).map_err(boxed)?;
                }
                tx.execute("UPDATE peers SET last_seen = ?1 WHERE node_id = ?2", params![now_ms(), child.info.node_id])
                    .map_err(boxed)?;
                Ok(())
            })?;
        tracing::debug!(child = %child.info.name, count = n, "documents from child applied");
        self.ctx.changed();
        Ok(())
    }

    fn blob_received(&self, child: &Peer, hash: &BlobHash, size: u64) -> Result<(), StoreError> {
        self.ctx
            .store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO blobs (hash, size, added_at) VALUES (?1, ?2, ?3) ON CONFLICT (hash) DO NOTHING",
                    params![hash.to_hex(), size as i64, now_ms()],
                )
                .map_err(DbError::from)
            })
            .map_err(boxed)?;
        tracing::info!(child = %child.info.name, %hash, size, "blob received from child");
        self.ctx.changed();
        Ok(())
    }
}

fn upsert_peer(ctx: &NodeCtx, peer: &Peer, relation: &str) -> Result<(), StoreError> {
    let now = now_ms();
    ctx.store
        .write(|tx| {
            tx.execute(
                "INSERT INTO peers (node_id, relation, name, tier, fingerprint, addr, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (node_id) DO UPDATE SET name = excluded.name, tier = excluded.tier,
                   addr = excluded.addr, last_seen = excluded.last_seen",
                params![peer.info.node_id, relation, peer.info.name, peer.info.tier.as_str(), peer.fingerprint.to_hex(), peer.addr.to_string(), now],
            )
            .map_err(DbError::from)
        })
        .map_err(boxed)?;
    Ok(())
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
