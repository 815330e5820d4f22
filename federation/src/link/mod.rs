//! The tokio/quinn drivers of federation links, thin pumps around the sync engine
//! ([`crate::sync`]):
//!
//! - [`uplink`]: the child's side, one connection to its parent kept up with backoff;
//! - [`acceptor`]: the parent's side, children's connections and their requests;
//! - [`enroll`]: joining the federation with a token, both sides;
//! - [`blob_stream`]: blob bytes on a stream, sent paced and received verified;
//! - [`ranges`]: serving ranges of blobs to children watching through this node.
//!
//! The transport they share (endpoint, framing, errors) is [`crate::transport`].

pub mod acceptor;
pub mod blob_stream;
pub mod enroll;
pub mod ranges;
pub mod uplink;

pub use acceptor::ChildAcceptor;
pub use blob_stream::receive_into;
pub use enroll::enroll;
pub use uplink::Uplink;

use crate::pki::Revocations;
use crate::transport::{LinkError, StoreError, join_err};
use std::sync::Arc;

/// Resolves when `node_id` is found revoked (checked whenever the revocation list changes).
async fn until_revoked(revocations: &Revocations, node_id: &str) {
    let mut rx = revocations.subscribe();
    loop {
        if revocations.contains(node_id) {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<S: ?Sized + Send + Sync + 'static, T: Send + 'static>(
    store: &Arc<S>,
    f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, LinkError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(r) => r.map_err(LinkError::Store),
        Err(e) => Err(join_err(e)),
    }
}
