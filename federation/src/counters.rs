//! Counters of what crossed this node's links and its federation port, for `/metrics`: plain
//! atomics, shared by the uplink, the acceptor and the datagram watch.

use crate::protocol::DocUpdate;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what crossed this node's links, for metrics. Shared by the uplink and the
/// acceptor; monotonic since the process started.
#[derive(Debug, Default)]
pub struct LinkCounters {
    pub docs_sent: AtomicU64,
    pub docs_received: AtomicU64,
    pub doc_bytes_sent: AtomicU64,
    pub doc_bytes_received: AtomicU64,
    pub blob_bytes_sent: AtomicU64,
    pub blob_bytes_received: AtomicU64,
    pub blobs_sent: AtomicU64,
    pub blobs_received: AtomicU64,
    /// Parent side: peers refused (certificate, hello, revoked, version, too many handshakes).
    pub peers_refused: AtomicU64,
    /// Parent side: peers disconnected for sending garbage.
    pub peers_garbage: AtomicU64,
    /// Parent side: enrollments refused, and children enrolled.
    pub enrollments_refused: AtomicU64,
    pub enrollments: AtomicU64,
    /// Links that completed their hello: to the parent, and from children. A count growing
    /// while nothing was cut is a link that keeps dropping.
    pub links_up: AtomicU64,
    pub links_from_children: AtomicU64,
    /// Datagrams on the federation port that are not QUIC of this federation.
    pub garbage_datagrams: AtomicU64,
}

impl LinkCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn docs(&self, sent: bool, docs: &[DocUpdate]) {
        let bytes: u64 = docs.iter().map(|d| d.bytes.len() as u64).sum();
        if sent {
            Self::add(&self.docs_sent, docs.len() as u64);
            Self::add(&self.doc_bytes_sent, bytes);
        } else {
            Self::add(&self.docs_received, docs.len() as u64);
            Self::add(&self.doc_bytes_received, bytes);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
