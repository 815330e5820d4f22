//! The node's side of federation links: implements the federation crate's [`ChildStore`] and
//! [`ParentStore`] over the node's tables, so the sync engine can ask what to send, record
//! acknowledgements, pin peers and apply what arrives. It writes no SQL of its own: the link
//! state lives in [`crate::sync_state`], documents and their scope in [`crate::documents`].

use crate::context::NodeCtx;
use crate::documents::{self, Scope, Source};
use crate::store::now_ms;
use crate::sync_state::{self, Cursor, Relation};
use std::sync::Arc;
use youke_federation::protocol::{DocUpdate, reconcile_bucket, reconcile_digests};
use youke_federation::sync::{BlobUpload, ChildStore, LinkState, ParentStore, Peer, StoreError};
use youke_federation::{BlobHash, Fingerprint};

pub struct NodeLinkStore {
    ctx: Arc<NodeCtx>,
}

impl NodeLinkStore {
    pub fn new(ctx: Arc<NodeCtx>) -> Self {
        NodeLinkStore { ctx }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refusal(String);

impl ChildStore for NodeLinkStore {
    fn is_busy(&self, e: &StoreError) -> bool {
        use crate::context::NodeError;
        use crate::documents::DocError;
        use crate::store::StoreError as Db;
        if let Some(db) = e.downcast_ref::<Db>() {
            return db.is_busy();
        }
        match (e.downcast_ref::<DocError>(), e.downcast_ref::<NodeError>()) {
            (Some(DocError::Store(db)), _) | (_, Some(NodeError::Store(db))) => db.is_busy(),
            _ => false,
        }
    }

    fn known_parent(&self) -> Result<Option<(String, Fingerprint)>, StoreError> {
        let row = self.ctx.store.read(sync_state::parent)?;
        Ok(row.and_then(|p| Fingerprint::from_hex(&p.fingerprint).map(|f| (p.node_id, f))))
    }

    fn remember_parent(&self, parent: &Peer) -> Result<(), StoreError> {
        Ok(self.ctx.store.write(|tx| sync_state::remember(tx, parent, Relation::Parent))?)
    }

    fn set_link_state(&self, parent_addr: &str, state: &LinkState) -> Result<(), StoreError> {
        Ok(self.ctx.store.write(|tx| sync_state::set_link_state(tx, parent_addr, state))?)
    }

    fn docs_to_send(&self, parent: &Peer, limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError> {
        let pid = parent.info.node_id.as_str();
        let scope = Scope::Up { parent: parent.info.tier, peer: pid };
        self.ctx.store.write(|tx| -> Result<_, StoreError> {
            let acked = sync_state::cursor(tx, pid, Cursor::Acked)?;
            Ok(documents::outgoing_batch(tx, pid, scope, acked, limit, &[])?)
        })
    }

    fn docs_acked(&self, parent: &Peer, upto_seq: u64, need_full: &[(String, u64)]) -> Result<(), StoreError> {
        let pid = parent.info.node_id.as_str();
        self.ctx.store.write(|tx| -> Result<(), StoreError> {
            let mut upto = upto_seq;
            for (id, seq) in need_full {
                documents::forget_peer_version(tx, pid, id)?;
                upto = upto.min(seq.saturating_sub(1));
            }
            let before = sync_state::cursor(tx, pid, Cursor::Acked)?;
            documents::confirm_sent(tx, pid, before, upto)?;
            sync_state::advance(tx, pid, Cursor::Acked, upto)?;
            Ok(())
        })
    }

    fn pull_cursor(&self, parent: &Peer) -> Result<u64, StoreError> {
        Ok(self.ctx.store.read(|c| sync_state::cursor(c, &parent.info.node_id, Cursor::Down))?)
    }

    fn apply_from_parent(&self, parent: &Peer, docs: Vec<DocUpdate>, upto_seq: u64) -> Result<Vec<String>, StoreError> {
        let pid = parent.info.node_id.as_str();
        let (changed, need_full) = self.ctx.store.write(|tx| -> Result<_, StoreError> {
            let (changed, need_full) = merge_batch(tx, &self.ctx.writer, &docs, Source::Parent(pid))?;
            let cursor = need_full.iter().fold(upto_seq, |c, (_, seq)| c.min(seq.saturating_sub(1)));
            sync_state::advance(tx, pid, Cursor::Down, cursor)?;
            Ok((changed, need_full))
        })?;
        if changed > 0 {
            tracing::debug!(parent = %parent.info.name, changed, upto_seq, "documents from parent applied");
            self.ctx.changed();
            self.ctx.wake_prefetch.notify_one();
        }
        Ok(need_full.into_iter().map(|(id, _)| id).collect())
    }

    fn reconcile_digests(&self, parent: &Peer) -> Result<Vec<[u8; 32]>, StoreError> {
        let entries = self.ctx.store.read(|c| documents::shared_up(c, parent.info.tier, &self.ctx.writer.node_id))?;
        Ok(reconcile_digests(entries.iter().map(|(i, h)| (i.as_str(), h.as_str()))))
    }

    fn reconcile_entries(&self, parent: &Peer, buckets: &[u16]) -> Result<Vec<(String, String)>, StoreError> {
        let entries = self.ctx.store.read(|c| documents::shared_up(c, parent.info.tier, &self.ctx.writer.node_id))?;
        Ok(entries.into_iter().filter(|(id, _)| buckets.contains(&reconcile_bucket(id))).collect())
    }

    fn reconcile_apply(&self, parent: &Peer, send_up: &[String], docs: Vec<DocUpdate>) -> Result<(), StoreError> {
        let pid = parent.info.node_id.as_str();
        let changed = self.ctx.store.write(|tx| -> Result<usize, StoreError> {
            let (changed, _) = merge_batch(tx, &self.ctx.writer, &docs, Source::Parent(pid))?;
            for id in send_up {
                // Forget what the parent was believed to hold, and move the acknowledgement back
                // before the document so the next push sends it whole.
                documents::forget_peer_version(tx, pid, id)?;
                if let Some(stored) = documents::stored(tx, id)? {
                    sync_state::rewind_acked(tx, pid, stored.seq)?;
                }
            }
            Ok(changed)
        })?;
        if changed > 0 || !send_up.is_empty() {
            tracing::info!(parent = %parent.info.name, from_parent = changed, to_parent = send_up.len(), "anti-entropy repair");
            self.ctx.changed();
        }
        Ok(())
    }

    fn next_blob_upload(&self, _parent: &Peer) -> Result<Option<BlobUpload>, StoreError> {
        // The first due blob the node holds (one removed since it was queued waits).
        Ok(self.ctx.store.read(|c| -> Result<_, crate::store::StoreError> {
            let now = now_ms();
            let mut skip = 0;
            loop {
                let due = sync_state::uploads_due(c, now, skip, 64)?;
                if due.is_empty() {
                    return Ok(None);
                }
                skip += due.len();
                for (h, size) in due {
                    if crate::blob_index::holds(c, &h)?
                        && let Ok(hash) = h.parse::<BlobHash>()
                    {
                        return Ok(Some(BlobUpload { hash, size }));
                    }
                }
            }
        })?)
    }

    fn blob_upload_done(&self, _parent: &Peer, hash: &BlobHash) -> Result<(), StoreError> {
        Ok(self.ctx.store.write(|tx| sync_state::upload_done(tx, &hash.to_hex()))?)
    }

    fn blob_upload_failed(&self, _parent: &Peer, hash: &BlobHash, reason: &str) -> Result<(), StoreError> {
        Ok(self.ctx.store.write(|tx| sync_state::upload_failed(tx, &hash.to_hex(), reason))?)
    }

    fn health_report(&self, _parent: &Peer) -> Result<Vec<youke_federation::protocol::NodeHealth>, StoreError> {
        Ok(crate::health::tree(&self.ctx)?)
    }
}

impl ParentStore for NodeLinkStore {
    fn docs_for_child(&self, child: &Peer, after_seq: u64, forget: &[String], limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError> {
        let cid = child.info.node_id.as_str();
        self.ctx.store.write(|tx| -> Result<_, StoreError> {
            for id in forget {
                documents::forget_peer_version(tx, cid, id)?;
            }
            // The child holds our scope for it up to its cursor: what we sent it up to there is
            // confirmed; record the cursor for status and lag.
            let before = sync_state::cursor(tx, cid, Cursor::Down)?;
            documents::confirm_sent(tx, cid, before, after_seq)?;
            sync_state::advance(tx, cid, Cursor::Down, after_seq)?;
            Ok(documents::outgoing_batch(tx, cid, Scope::Down { child: cid }, after_seq, limit, forget)?)
        })
    }

    fn reconcile_digests_of_child(&self, child: &Peer) -> Result<Vec<[u8; 32]>, StoreError> {
        let entries = self.routed_from(child)?;
        Ok(reconcile_digests(entries.iter().map(|(i, h)| (i.as_str(), h.as_str()))))
    }

    fn reconcile_resolve(&self, child: &Peer, buckets: &[u16], entries: Vec<(String, String)>) -> Result<(Vec<String>, Vec<DocUpdate>), StoreError> {
        let ours: std::collections::HashMap<String, String> =
            self.routed_from(child)?.into_iter().filter(|(id, _)| buckets.contains(&reconcile_bucket(id))).collect();
        let theirs: std::collections::HashMap<String, String> = entries.into_iter().collect();
        let mut send_up = Vec::new();
        let mut down = Vec::new();
        for (id, heads) in &theirs {
            match ours.get(id) {
                None => send_up.push(id.clone()),
                Some(h) if h != heads => {
                    send_up.push(id.clone());
                    down.push(id.clone());
                }
                Some(_) => {}
            }
        }
        down.extend(ours.keys().filter(|id| !theirs.contains_key(*id)).cloned());
        let cid = child.info.node_id.as_str();
        let docs = self.ctx.store.write(|tx| -> Result<Vec<DocUpdate>, StoreError> {
            let mut docs = Vec::new();
            for id in send_up.iter().chain(down.iter()) {
                documents::forget_peer_version(tx, cid, id)?;
            }
            for id in &down {
                if let Some(stored) = documents::stored(tx, id)?
                    && let Some(update) = documents::outgoing(tx, cid, stored)?
                {
                    docs.push(update);
                }
            }
            Ok(docs)
        })?;
        if !send_up.is_empty() || !docs.is_empty() {
            tracing::info!(child = %child.info.name, from_child = send_up.len(), to_child = docs.len(), "anti-entropy found drift");
        }
        Ok((send_up, docs))
    }

    fn child_pin(&self, node_id: &str) -> Result<Option<Fingerprint>, StoreError> {
        let fp = self.ctx.store.read(|c| sync_state::child_pin(c, node_id))?;
        Ok(fp.and_then(|f| Fingerprint::from_hex(&f)))
    }

    fn remember_child(&self, child: &Peer) -> Result<(), StoreError> {
        Ok(self.ctx.store.write(|tx| sync_state::remember(tx, child, Relation::Child))?)
    }

    fn child_link_state(&self, child: &Peer, connected: bool) -> Result<(), StoreError> {
        Ok(self.ctx.store.write(|tx| sync_state::set_connected(tx, &child.info.node_id, connected))?)
    }

    fn apply_docs(&self, child: &Peer, docs: Vec<DocUpdate>) -> Result<Vec<String>, StoreError> {
        // Children send up only what they share: lessons.
        if let Some(d) = docs.iter().find(|d| d.kind != documents::Kind::Lesson.as_str()) {
            return Err(Box::new(Refusal(format!("a child may not send {:?} documents up", d.kind))));
        }
        let cid = child.info.node_id.as_str();
        let (changed, need_full) = self.ctx.store.write(|tx| -> Result<_, StoreError> {
            let out = merge_batch(tx, &self.ctx.writer, &docs, Source::Child(cid))?;
            sync_state::synced(tx, cid)?;
            Ok(out)
        })?;
        tracing::debug!(child = %child.info.name, count = docs.len(), changed, need_full = need_full.len(), "documents from child applied");
        if changed > 0 {
            self.ctx.changed();
        }
        Ok(need_full.into_iter().map(|(id, _)| id).collect())
    }

    fn blob_received(&self, child: &Peer, hash: &BlobHash, size: u64) -> Result<(), StoreError> {
        self.ctx.store.write(|tx| -> Result<(), StoreError> {
            crate::blob_index::add(tx, hash, size)?;
            // The recording of a lesson whose ladder was not made below (its school does not
            // transcode): this is the first tier with the CPU, so it makes the ladder. A ladder's
            // pack, or a recording whose ladder is on its way, is not transcoded again.
            let hex = hash.to_hex();
            if let Some(lesson) = crate::lessons::id_with_media(tx, &hex)? {
                if crate::lessons::get(tx, &lesson)?.is_some_and(|l| l.ladder.is_none() && !l.ladder_expected) {
                    crate::media_jobs::enqueue(tx, &hex, Some(&lesson))?;
                }
                // Its teacher sees that it got this far (送达).
                crate::lessons::mark_arrived(tx, &self.ctx.writer, &lesson)?;
            }
            Ok(())
        })?;
        tracing::info!(child = %child.info.name, %hash, size, "blob received from child");
        self.ctx.changed();
        self.ctx.wake_media.notify_one();
        Ok(())
    }

    fn redeem_token(&self, token_id: &str, child_id: &str, place: &str) -> Result<Result<String, String>, StoreError> {
        Ok(self.ctx.store.write(|tx| crate::trust::redeem(tx, token_id, child_id, place, now_ms()))?)
    }

    fn child_health(&self, child: &Peer, nodes: Vec<youke_federation::protocol::NodeHealth>) -> Result<(), StoreError> {
        Ok(self.ctx.store.write(|tx| crate::health::store_report(tx, &child.info.node_id, &nodes).map_err(crate::store::StoreError::from))?)
    }
}

impl NodeLinkStore {
    /// (id, heads) of the documents that came from `child` and are shared at this node's tier.
    fn routed_from(&self, child: &Peer) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.ctx.store.read(|c| documents::routed_from(c, &child.info.node_id, self.ctx.writer.tier))?)
    }
}

/// Merges a batch from a peer; returns how many documents changed and which need sending whole.
fn merge_batch(tx: &rusqlite::Transaction<'_>, w: &documents::Writer, docs: &[DocUpdate], source: Source<'_>) -> Result<(usize, Vec<(String, u64)>), StoreError> {
    let mut changed = 0;
    let mut need_full = Vec::new();
    for d in docs {
        match documents::merge_remote(tx, w, &crate::kinds::ALL, d, source)? {
            documents::MergeOutcome::Changed => changed += 1,
            documents::MergeOutcome::Unchanged => {}
            documents::MergeOutcome::NeedFull => need_full.push((d.id.clone(), d.seq)),
        }
    }
    Ok((changed, need_full))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lessons::{self, LessonEdit, NewLesson};
    use crate::store::StoreError as DbError;
    use rusqlite::params;
    use youke_federation::Tier;
    use youke_federation::protocol::{NodeInfo, PROTOCOL_VERSION};

    fn node(dir: &std::path::Path, tier: Tier, parent: bool) -> (NodeLinkStore, Peer) {
        let config = Config { role: tier, name: tier.to_string(), parent: parent.then(|| "127.0.0.1:9".to_string()), ..Config::default() };
        let ctx = Arc::new(NodeCtx::open(&dir.join(tier.as_str()), config).expect("open"));
        let peer = Peer {
            info: NodeInfo { protocol_version: PROTOCOL_VERSION, node_id: ctx.writer.node_id.clone(), name: ctx.writer.node_name.clone(), tier },
            fingerprint: Fingerprint([7; 32]),
            addr: "127.0.0.1:9".parse().expect("addr"),
        };
        (NodeLinkStore::new(ctx), peer)
    }

    /// A school linked to a city (each pinned as the other's peer).
    fn linked_pair(dir: &std::path::Path) -> (NodeLinkStore, Peer, NodeLinkStore, Peer) {
        let (school, school_peer) = node(dir, Tier::School, true);
        let (city, city_peer) = node(dir, Tier::City, true);
        city.remember_child(&school_peer).expect("child");
        school.remember_parent(&city_peer).expect("parent");
        (school, school_peer, city, city_peer)
    }

    /// Creates a lesson at `at`, shared at `share`; returns its id.
    fn shared_lesson(at: &NodeLinkStore, new: &NewLesson, share: Tier) -> String {
        let w = at.ctx.writer.clone();
        let id = uuid::Uuid::new_v4().to_string();
        at.ctx
            .store
            .write(|tx| {
                let mut doc = lessons::new_document(&w, &id, new)?;
                lessons::save(tx, &w, &mut doc)?;
                lessons::set_share_level(tx, &w, &id, share)
            })
            .expect("lesson");
        id
    }

    /// One round of the child's upward sync, as the link driver runs it.
    fn push(child: &NodeLinkStore, parent_peer: &Peer, parent: &NodeLinkStore, child_peer: &Peer) -> Vec<DocUpdate> {
        let (docs, upto) = child.docs_to_send(parent_peer, 256).expect("to send");
        let need_full = if docs.is_empty() { Vec::new() } else { parent.apply_docs(child_peer, docs.clone()).expect("apply") };
        let again: Vec<(String, u64)> = docs.iter().filter(|d| need_full.contains(&d.id)).map(|d| (d.id.clone(), d.seq)).collect();
        child.docs_acked(parent_peer, upto, &again).expect("ack");
        docs
    }

    /// One round of the child's downward pull.
    fn pull(child: &NodeLinkStore, parent_peer: &Peer, parent: &NodeLinkStore, child_peer: &Peer) -> Vec<DocUpdate> {
        let after = child.pull_cursor(parent_peer).expect("cursor");
        let (docs, upto) = parent.docs_for_child(child_peer, after, &[], 256).expect("for child");
        child.apply_from_parent(parent_peer, docs.clone(), upto).expect("apply");
        docs
    }

    #[test]
    fn sync_sends_changes_not_documents_and_never_echoes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (school, school_peer, city, city_peer) = linked_pair(dir.path());
        let w = school.ctx.writer.clone();
        // Varied CJK text, which does not compress away.
        let description: String = (0..60_000u32).filter_map(|i| char::from_u32(0x4E00 + (i.wrapping_mul(2_654_435_761) >> 20) % 0x5000)).collect();
        let id = shared_lesson(&school, &NewLesson { title: "长文档".into(), description, ..NewLesson::default() }, Tier::City);

        let first = push(&school, &city_peer, &city, &school_peer);
        assert_eq!(first.len(), 1);
        assert!(first[0].full && first[0].bytes.len() > 20_000, "first contact sends the whole document: full={} {} bytes", first[0].full, first[0].bytes.len());
        assert!(push(&school, &city_peer, &city, &school_peer).is_empty(), "nothing twice");
        assert!(pull(&school, &city_peer, &city, &school_peer).is_empty(), "the city does not echo the school's version");

        // A rating at the school crosses as a few hundred bytes, not the document.
        school.ctx.store.write(|tx| lessons::edit(tx, &w, &id, &LessonEdit::Rate { user: "王老师".into(), score: 5 })).expect("rate");
        let change = push(&school, &city_peer, &city, &school_peer);
        assert_eq!(change.len(), 1);
        assert!(!change[0].full && change[0].bytes.len() < 1000, "incremental: {} bytes", change[0].bytes.len());
        let at_city = city.ctx.store.read(|c| lessons::get(c, &id)).expect("get").expect("lesson");
        assert_eq!(at_city.rating_count, 1);

        // A review at the city comes down as a change, and does not bounce back up.
        let wc = city.ctx.writer.clone();
        city.ctx.store.write(|tx| lessons::edit(tx, &wc, &id, &LessonEdit::Review { expert: "教研员".into(), score: 90, comment: String::new() })).expect("review");
        let down = pull(&school, &city_peer, &city, &school_peer);
        assert_eq!(down.len(), 1);
        assert!(!down[0].full && down[0].bytes.len() < 1000);
        assert!(push(&school, &city_peer, &city, &school_peer).is_empty(), "no echo upward");
        let heads = |n: &NodeLinkStore| n.ctx.store.read(|c| crate::documents::heads_of(c, crate::documents::Kind::Lesson)).expect("heads");
        assert_eq!(heads(&school), heads(&city));

        // The city loses its copy (restored from an old backup): changes no longer apply, the
        // city asks for the whole document, and the next round sends it.
        city.ctx.store.write(|tx| tx.execute("DELETE FROM docs WHERE id = ?1", [&id]).map_err(DbError::from)).expect("lose");
        school.ctx.store.write(|tx| lessons::edit(tx, &w, &id, &LessonEdit::Views(1))).expect("view");
        let refused = push(&school, &city_peer, &city, &school_peer);
        assert!(!refused[0].full);
        let repaired = push(&school, &city_peer, &city, &school_peer);
        assert_eq!(repaired.len(), 1);
        assert!(repaired[0].full, "sent whole after need_full");
        let at_city = city.ctx.store.read(|c| lessons::get(c, &id)).expect("get").expect("lesson");
        assert_eq!((at_city.views, at_city.rating_count, at_city.review_count), (1, 1, 1));
    }

    #[test]
    fn a_batch_lost_with_its_receiver_is_sent_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (school, school_peer, city, city_peer) = linked_pair(dir.path());
        let id = shared_lesson(&school, &NewLesson { title: "课".into(), ..NewLesson::default() }, Tier::City);
        // Up: the school sends, the city dies before storing or acknowledging.
        let (lost, _) = school.docs_to_send(&city_peer, 256).expect("send");
        assert_eq!(lost.len(), 1);
        let again = push(&school, &city_peer, &city, &school_peer);
        assert_eq!(again.len(), 1, "resent after the lost batch");
        assert!(city.ctx.store.read(|c| lessons::get(c, &id)).expect("get").is_some());

        // Down: the city publishes a collection; the school dies before storing the answer.
        let wc = city.ctx.writer.clone();
        city.ctx.store.write(|tx| crate::catalog::create_collection(tx, &wc, &crate::catalog::Collection {
            id: String::new(), title: "专辑".into(), description: String::new(), lessons: vec![], featured: false,
            pinned: false, published: true, origin_name: String::new(),
        })).expect("collection");
        let cursor = school.pull_cursor(&city_peer).expect("cursor");
        let (lost, _) = city.docs_for_child(&school_peer, cursor, &[], 256).expect("for child");
        assert!(lost.iter().any(|d| d.kind == "collection"));
        let again = pull(&school, &city_peer, &city, &school_peer);
        assert!(again.iter().any(|d| d.kind == "collection"), "resent after the lost answer");
        assert_eq!(school.ctx.store.read(crate::catalog::collections).expect("list").len(), 1);
        // And once stored and confirmed, nothing is sent twice.
        assert!(pull(&school, &city_peer, &city, &school_peer).is_empty());
        assert!(push(&school, &city_peer, &city, &school_peer).is_empty());
    }

    /// One anti-entropy pass, as the link driver runs it.
    fn reconcile(child: &NodeLinkStore, parent_peer: &Peer, parent: &NodeLinkStore, child_peer: &Peer) -> usize {
        let digests = child.reconcile_digests(parent_peer).expect("digests");
        let theirs = parent.reconcile_digests_of_child(child_peer).expect("digests");
        let buckets = youke_federation::protocol::differing_buckets(&theirs, &digests);
        let entries = child.reconcile_entries(parent_peer, &buckets).expect("entries");
        let (send_up, docs) = parent.reconcile_resolve(child_peer, &buckets, entries).expect("resolve");
        let n = send_up.len() + docs.len();
        child.reconcile_apply(parent_peer, &send_up, docs).expect("apply");
        n
    }

    #[test]
    fn anti_entropy_repairs_drift_that_no_new_change_would() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (school, school_peer, city, city_peer) = linked_pair(dir.path());
        let w = school.ctx.writer.clone();
        let ids: Vec<String> = (0..40).map(|i| shared_lesson(&school, &NewLesson { title: format!("课{i}"), ..NewLesson::default() }, Tier::City)).collect();
        push(&school, &city_peer, &city, &school_peer);
        assert_eq!(reconcile(&school, &city_peer, &city, &school_peer), 0, "in step: nothing to repair");

        // Drift: the school restores an old copy of one lesson from before the city's review
        // of it, and the city loses another lesson (an old backup). Neither side changes these
        // documents again, so normal sync alone never repairs them.
        let old: (Vec<u8>, String, i64) = school
            .ctx
            .store
            .read(|c| Ok::<_, DbError>(c.query_row("SELECT bytes, heads, seq FROM docs WHERE id = ?1", [&ids[7]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?))
            .expect("old copy");
        let wc = city.ctx.writer.clone();
        city.ctx.store.write(|tx| lessons::edit(tx, &wc, &ids[7], &LessonEdit::Review { expert: "教研员".into(), score: 80, comment: String::new() })).expect("review");
        pull(&school, &city_peer, &city, &school_peer);
        school
            .ctx
            .store
            .write(|tx| tx.execute("UPDATE docs SET bytes = ?1, heads = ?2, seq = ?3 WHERE id = ?4", params![old.0, old.1, old.2, ids[7]]).map_err(DbError::from))
            .expect("restore");
        city.ctx.store.write(|tx| tx.execute("DELETE FROM docs WHERE id = ?1", [&ids[3]]).map_err(DbError::from)).expect("lose");
        assert!(push(&school, &city_peer, &city, &school_peer).is_empty(), "normal sync sees nothing to do");
        assert!(pull(&school, &city_peer, &city, &school_peer).is_empty());

        let repaired = reconcile(&school, &city_peer, &city, &school_peer);
        assert!(repaired >= 2, "repaired {repaired}");
        push(&school, &city_peer, &city, &school_peer);
        pull(&school, &city_peer, &city, &school_peer);
        assert_eq!(reconcile(&school, &city_peer, &city, &school_peer), 0, "a second pass finds nothing");
        let at = |n: &NodeLinkStore, id: &str| n.ctx.store.read(|c| lessons::get(c, id)).expect("get");
        assert!(at(&city, &ids[3]).is_some(), "the lost lesson is back at the city");
        let school_copy = school.ctx.store.read(|c| lessons::load_document(c, &w, &ids[7])).expect("load").expect("doc");
        assert_eq!(lessons::read_document(&school_copy).expect("read").review_count, 1, "the school has the review again");
        let heads = |n: &NodeLinkStore| n.ctx.store.read(|c| crate::documents::heads_of(c, crate::documents::Kind::Lesson)).expect("heads");
        assert_eq!(heads(&school), heads(&city));
    }

    #[test]
    fn anti_entropy_leaves_out_the_shared_catalog_that_came_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (school, school_peer, city, city_peer) = linked_pair(dir.path());
        let wc = city.ctx.writer.clone();
        for i in 0..30 {
            let id = shared_lesson(&city, &NewLesson { title: format!("市级课{i}"), ..NewLesson::default() }, Tier::City);
            let by = lessons::Moderator { user: "审核员", address: "" };
            city.ctx.store.write(|tx| lessons::moderate(tx, &wc, &id, &lessons::Moderation::Approve, &by)).expect("approve");
        }
        let down = pull(&school, &city_peer, &city, &school_peer);
        assert!(down.iter().filter(|d| d.kind == "lesson").count() >= 30, "the city's catalog came down");
        // The school's view for anti-entropy is its own subtree's lessons, as the city's is:
        // what came down is never sent back up whole.
        assert_eq!(reconcile(&school, &city_peer, &city, &school_peer), 0);
        shared_lesson(&school, &NewLesson { title: "本校课".into(), ..NewLesson::default() }, Tier::City);
        push(&school, &city_peer, &city, &school_peer);
        assert_eq!(reconcile(&school, &city_peer, &city, &school_peer), 0);
    }

    #[test]
    fn revocations_go_down_only_within_the_issuers_subtree_and_never_up() {
        use youke_federation::pki::Place;
        let dir = tempfile::tempdir().expect("tempdir");
        let (school, school_peer, city, city_peer) = linked_pair(dir.path());
        let city_place = Place::province("p1").and_then(|p| p.child(&city.ctx.writer.node_id)).expect("place");
        let school_place = city_place.child(&school.ctx.writer.node_id).expect("place");
        let other_school = Place::province("p1").and_then(|p| p.child("c9")).and_then(|c| c.child("s9")).expect("place");
        let w = city.ctx.writer.clone();
        city.ctx
            .store
            .write(|tx| {
                crate::trust::add_revocation(tx, &w, &city_place, "s-lost", &city_place.child("s-lost").expect("p").dns_name(), "失窃", "设备丢失")?;
                // Outside the city's subtree: kept in the document, ignored by every node.
                crate::trust::add_revocation(tx, &w, &city_place, "s9", &other_school.dns_name(), "别人的学校", "越权")?;
                // An entry whose key does not match its place is ignored too.
                crate::trust::add_revocation(tx, &w, &city_place, "s-other", &school_place.dns_name(), "错位", "")
            })
            .expect("revoke");
        let revoked = |n: &NodeLinkStore| {
            let mut ids = n.ctx.store.read(crate::trust::revoked_ids).expect("ids");
            ids.sort();
            ids
        };
        assert_eq!(revoked(&city), vec!["s-lost".to_string()]);
        // It goes down to the school, which applies the same rule.
        let came = pull(&school, &city_peer, &city, &school_peer);
        assert!(came.iter().any(|d| d.kind == "revocations"), "the revocation document goes down");
        assert_eq!(revoked(&school), vec!["s-lost".to_string()]);
        // It never goes up, and a child may not send one up.
        assert!(push(&school, &city_peer, &city, &school_peer).iter().all(|d| d.kind == "lesson"));
        let forged = crate::documents::full_update(
            crate::documents::Kind::Revocations,
            &mut city.ctx.store.read(|c| crate::documents::load(c, &w, crate::documents::Kind::Revocations, &format!("revocations-{}", w.node_id))).expect("load").expect("doc"),
            1,
        );
        let err = city.apply_docs(&school_peer, vec![forged]).expect_err("refused");
        assert!(err.to_string().contains("may not send"), "{err}");
    }
}
