//! Live progress of blob transfers, for the API, `youke status --watch` and metrics.
//!
//! Each running transfer holds a [`Transfer`] handle; dropping it (the transfer ended, however it
//! ended) removes it from the table. Counting is one atomic add per chunk.

use crate::hash::BlobHash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Which way the bytes go, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Replicating a blob up to the parent.
    Upload,
    /// Receiving a blob from a child.
    Receive,
    /// Fetching from the parent for viewing or prefetch (pull-through).
    Fetch,
    /// Serving a range to a child that fetches.
    Serve,
}

/// A snapshot of one transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferInfo {
    pub id: u64,
    pub hash: String,
    pub direction: Direction,
    pub peer: String,
    /// Bytes of the blob in all.
    pub size: u64,
    /// Bytes held before this attempt started (resumed transfers).
    pub resumed_at: u64,
    /// Bytes held now.
    pub done: u64,
    /// Bytes per second over this attempt.
    pub rate: f64,
    /// Seconds to completion at that rate, when moving.
    pub eta_secs: Option<f64>,
    pub elapsed_secs: f64,
}

#[derive(Debug)]
struct Entry {
    hash: BlobHash,
    direction: Direction,
    peer: String,
    size: u64,
    resumed_at: u64,
    done: Arc<AtomicU64>,
    started: Instant,
}

/// The table of running transfers of one node.
#[derive(Debug, Default)]
pub struct Transfers {
    next: AtomicU64,
    running: Mutex<BTreeMap<u64, Entry>>,
}

impl Transfers {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Registers a transfer of `size` bytes of which `resumed_at` are held already.
    pub fn start(self: &Arc<Self>, hash: BlobHash, direction: Direction, peer: &str, size: u64, resumed_at: u64) -> Transfer {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let done = Arc::new(AtomicU64::new(resumed_at));
        let entry = Entry {
            hash,
            direction,
            peer: peer.to_string(),
            size,
            resumed_at,
            done: Arc::clone(&done),
            started: Instant::now(),
        };
        self.lock().insert(id, entry);
        Transfer { table: Arc::clone(self), id, done }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every running transfer, oldest first.
    pub fn snapshot(&self) -> Vec<TransferInfo> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(id, e)| {
                let done = e.done.load(Ordering::Relaxed).min(e.size);
                let elapsed = now.duration_since(e.started).as_secs_f64();
                let moved = done.saturating_sub(e.resumed_at) as f64;
                let rate = if elapsed > 0.0 { moved / elapsed } else { 0.0 };
                let eta_secs = (rate > 0.0).then(|| (e.size - done) as f64 / rate);
                TransferInfo {
                    id: *id,
                    hash: e.hash.to_hex(),
                    direction: e.direction,
                    peer: e.peer.clone(),
                    size: e.size,
                    resumed_at: e.resumed_at,
                    done,
                    rate,
                    eta_secs,
                    elapsed_secs: elapsed,
                }
            })
            .collect()
    }
}

/// A running transfer; counts bytes as they are done.
#[derive(Debug)]
pub struct Transfer {
    table: Arc<Transfers>,
    id: u64,
    done: Arc<AtomicU64>,
}

impl Transfer {
    pub fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_report_progress_and_vanish_when_done() {
        let t = Transfers::new();
        let h = BlobHash::from(blake3::hash(b"x"));
        let a = t.start(h, Direction::Upload, "石家庄市", 1000, 400);
        a.advance(100);
        let snap = t.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].done, 500);
        assert_eq!(snap[0].resumed_at, 400);
        assert_eq!(snap[0].direction, Direction::Upload);
        drop(a);
        assert!(t.snapshot().is_empty());
    }
}
