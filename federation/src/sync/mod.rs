//! The sync engine: what each side of a link says, when, and what it asks of its store, with no
//! I/O, no clock and no tokio (like quinn-proto under quinn).
//!
//! - [`child::ChildSession`] is the child's side of one session with its parent: five lanes
//!   (documents up, documents down, anti-entropy, health, blobs up), each a small state machine
//!   that is waiting, asking the store, or waiting for the parent's answer. It is fed answers,
//!   store replies, failures, wake-ups and the time, and hands out what to do next
//!   ([`child::Output`]); the driver (`crate::link::uplink`) carries that out and feeds back the
//!   results.
//! - [`parent`] answers the child's requests: a request becomes a store query, and the store's
//!   reply becomes the answer (`crate::link::acceptor` pumps it).
//! - The store interfaces, [`ChildStore`] and [`ParentStore`], are what the node implements over
//!   its database; the queries they answer are values ([`child::Query`], [`parent::Query`]) run by
//!   [`child::execute`] and [`parent::execute`], so a test can drive both engines against
//!   in-memory stores (`tests`) with lost, repeated and reordered messages.

pub mod child;
pub mod parent;
#[cfg(test)]
mod tests;

use crate::hash::BlobHash;
use crate::identity::Fingerprint;
use crate::protocol::{DocUpdate, NodeHealth, NodeInfo};
use std::net::SocketAddr;

/// Errors of the node's store, as the sync engine and the links see them.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// A peer at the other end of a link, after its hello and certificate checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub info: NodeInfo,
    pub fingerprint: Fingerprint,
    pub addr: SocketAddr,
}

/// A blob the child should send up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobUpload {
    pub hash: BlobHash,
    pub size: u64,
}

/// State of a child's link to its parent, reported to the store for `youke status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Up { parent: NodeInfo },
    Down { error: String },
}

/// What a child needs from the node's storage to sync with its parent. Calls are blocking; the
/// driver runs them on tokio's blocking pool.
pub trait ChildStore: Send + Sync + 'static {
    /// Whether an error of this store means it is busy (another writer held it beyond its
    /// timeout): the engine asks again later instead of ending the session.
    fn is_busy(&self, _e: &StoreError) -> bool {
        false
    }
    /// The parent remembered from earlier links (node id and pinned fingerprint).
    fn known_parent(&self) -> Result<Option<(String, Fingerprint)>, StoreError>;
    /// Pins the parent after its first successful hello.
    fn remember_parent(&self, parent: &Peer) -> Result<(), StoreError>;
    /// The link's state changed.
    fn set_link_state(&self, parent_addr: &str, state: &LinkState) -> Result<(), StoreError>;
    /// The next document versions for the parent, in sequence order, after the last
    /// acknowledged one and within the parent's scope, at most `limit`; and the sequence number
    /// the acknowledgement may move to once they are stored (past documents the parent holds).
    fn docs_to_send(&self, parent: &Peer, limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError>;
    /// The parent stored everything up to `upto_seq` except `need_full` (ids and sequence
    /// numbers of documents to send again, whole).
    fn docs_acked(&self, parent: &Peer, upto_seq: u64, need_full: &[(String, u64)]) -> Result<(), StoreError>;
    /// The parent's sequence number up to which this node holds its scope down.
    fn pull_cursor(&self, parent: &Peer) -> Result<u64, StoreError>;
    /// Stores documents from the parent and moves the cursor to `upto_seq`, all or nothing.
    /// Returns the ids of documents whose changes could not be applied (the cursor then stays
    /// before them, and the parent is asked to send them whole).
    fn apply_from_parent(&self, parent: &Peer, docs: Vec<DocUpdate>, upto_seq: u64) -> Result<Vec<String>, StoreError>;
    /// Anti-entropy: digests of (id, heads) over the documents this node shares up (see
    /// [`crate::protocol::reconcile_digests`]).
    fn reconcile_digests(&self, parent: &Peer) -> Result<Vec<[u8; 32]>, StoreError>;
    /// The (id, heads) entries of these buckets.
    fn reconcile_entries(&self, parent: &Peer, buckets: &[u16]) -> Result<Vec<(String, String)>, StoreError>;
    /// Stores the parent's whole documents, and arranges for `send_up` to be sent up whole.
    fn reconcile_apply(&self, parent: &Peer, send_up: &[String], docs: Vec<DocUpdate>) -> Result<(), StoreError>;
    /// The next blob to replicate up, if any is due.
    fn next_blob_upload(&self, parent: &Peer) -> Result<Option<BlobUpload>, StoreError>;
    /// The parent holds the blob, verified.
    fn blob_upload_done(&self, parent: &Peer, hash: &BlobHash) -> Result<(), StoreError>;
    /// Sending the blob failed; retry later with backoff.
    fn blob_upload_failed(&self, parent: &Peer, hash: &BlobHash, reason: &str) -> Result<(), StoreError>;
    /// This node's health and its subtree's, to report to the parent.
    fn health_report(&self, parent: &Peer) -> Result<Vec<NodeHealth>, StoreError>;
}

/// What a parent needs from the node's storage to serve its children. Calls are blocking.
pub trait ParentStore: Send + Sync + 'static {
    /// The fingerprint pinned for a child node id, if it linked before.
    fn child_pin(&self, node_id: &str) -> Result<Option<Fingerprint>, StoreError>;
    /// Records a child that completed its hello (pins it the first time).
    fn remember_child(&self, child: &Peer) -> Result<(), StoreError>;
    /// A child's link came up or went down.
    fn child_link_state(&self, child: &Peer, connected: bool) -> Result<(), StoreError>;
    /// The documents in a child's scope down changed after `after_seq`, in sequence order, at
    /// most `limit`; and the sequence number the child may move its cursor to when it has them
    /// all (past documents outside its scope). `forget` names documents the child could not
    /// apply: send them whole.
    fn docs_for_child(&self, child: &Peer, after_seq: u64, forget: &[String], limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError>;
    /// Anti-entropy: digests over the documents that came from this child.
    fn reconcile_digests_of_child(&self, child: &Peer) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Compares the child's entries of these buckets with its own; returns the ids the child
    /// must send whole and this node's whole documents the child lacks or holds at other heads.
    fn reconcile_resolve(&self, child: &Peer, buckets: &[u16], entries: Vec<(String, String)>) -> Result<(Vec<String>, Vec<DocUpdate>), StoreError>;
    /// Stores a batch of documents from a child, all or nothing. Returns the ids of documents
    /// whose changes could not be applied and are needed whole.
    fn apply_docs(&self, child: &Peer, docs: Vec<DocUpdate>) -> Result<Vec<String>, StoreError>;
    /// A blob from a child arrived and verified.
    fn blob_received(&self, child: &Peer, hash: &BlobHash, size: u64) -> Result<(), StoreError>;
    /// Enrollment: uses up the join token whose id is `token_id` for node `child_id` at `place`
    /// (a certificate name), all or nothing. Returns the name the token was made for, or why it
    /// cannot be used (unknown, expired, used already).
    fn redeem_token(&self, token_id: &str, child_id: &str, place: &str) -> Result<Result<String, String>, StoreError>;
    /// A child's latest health report (replaces the one before).
    fn child_health(&self, child: &Peer, nodes: Vec<NodeHealth>) -> Result<(), StoreError>;
}
