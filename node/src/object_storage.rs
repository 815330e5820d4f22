//! Where this node's media blobs live: `youke storage check` tries the object storage settings,
//! `youke storage migrate` moves the blobs on local disk into the bucket (docs/SCALING.md).

use crate::context::{NodeCtx, NodeError};
use crate::store::StoreError;
use serde::Serialize;
use std::collections::HashSet;
use youke_federation::BlobHash;

#[derive(Debug, Serialize)]
pub struct MigrateReport {
    pub remote: String,
    pub blobs_moved: usize,
    pub bytes_moved: u64,
}

fn remote(blobs: &youke_federation::BlobStore) -> Result<&youke_federation::blobs::remote::Remote, NodeError> {
    blobs.remote().ok_or_else(|| NodeError::Invalid("no object storage is configured: add [object_store] to youke.toml (docs/SCALING.md)".into()))
}

/// Writes, reads back and deletes a small object in the bucket. Returns where it is.
pub fn check(ctx: &NodeCtx) -> Result<String, NodeError> {
    let r = remote(&ctx.blobs)?;
    r.check_write(&ctx.writer.node_id)?;
    Ok(r.describe().to_string())
}

/// Moves every blob this node holds on local disk (its own and replicated media, not the
/// pull-through cache) into the bucket. Resumable; may run while the node serves, once the
/// running node has the same [object_store] settings (it reads each blob from wherever it is).
pub fn migrate(ctx: &NodeCtx, progress: &mut dyn crate::backup::Progress) -> Result<MigrateReport, NodeError> {
    let describe = remote(&ctx.blobs)?.describe().to_string();
    let held: HashSet<BlobHash> = ctx.store.read(|c| -> Result<HashSet<BlobHash>, StoreError> {
        Ok(crate::blob_index::all(c)?.into_iter().filter_map(|(h, _)| h.parse().ok()).collect())
    })?;
    let mut last = 0;
    let (blobs_moved, bytes_moved) = ctx.blobs.migrate_to_remote(
        |h| !held.contains(h),
        |done, total| {
            if done == 0 {
                progress.total(total);
            }
            progress.advance(done - last);
            last = done;
        },
    )?;
    tracing::info!(blobs = blobs_moved, bytes = bytes_moved, remote = %describe, "blobs moved to object storage");
    Ok(MigrateReport { remote: describe, blobs_moved, bytes_moved })
}
