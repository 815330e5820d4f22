//! What the pull-through cache knows in memory, held by the node's context: each blob's
//! manifest and the chunks verified since the process started, and the fetches under way.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use youke_federation::BlobHash;
use youke_federation::manifest::Manifest;

/// What the cache knows in memory: each blob's manifest and its chunks verified since start.
#[derive(Debug, Default)]
pub struct PullState {
    pub(super) blobs: Mutex<HashMap<BlobHash, (Manifest, BTreeSet<u64>)>>,
    pub(super) fetching: Mutex<HashMap<BlobHash, Arc<tokio::sync::Mutex<()>>>>,
}
