//! Youke federation: how appliances at the school, city and province tiers find, trust and
//! replicate to each other.
//!
//! This crate knows nothing about lessons. Documents are opaque byte strings with an id, a kind
//! and a share tier; blobs are opaque files named by their BLAKE3 hash. The node crate plugs its
//! SQLite store in through [`sync::ChildStore`] and [`sync::ParentStore`].
//!
//! Layers, bottom up (a module uses only those above it in this list):
//! - [`hash`], [`tier`], [`backoff`], [`rate`]: a blob's name; the three tiers and the scope
//!   rule; reconnect timing; rate schedules and the limiter. Pure.
//! - [`manifest`], [`protocol`], [`counters`]: verified chunks; the wire messages, framing and
//!   limits; what crossed the links. Pure.
//! - [`pki`], [`identity`], [`datagrams`]: the federation's certificates and tokens; a node's TLS
//!   identity; what arrives on the UDP port, and signed connection ids.
//! - [`blobs`] (with [`blobs::remote`], S3 object storage), [`transfers`]: the content-addressed
//!   blob store; transfers in progress.
//! - [`sync`]: the sync engine, both sides, as state machines without I/O, and the store
//!   interfaces it drives.
//! - [`transport`], [`pull_through`]: the QUIC endpoint, framed requests and [`transport::LinkError`];
//!   fetching ranges from the parent for viewing (pull-through; documents are pulled by [`sync`]).
//! - [`link`]: the tokio/quinn drivers: uplink, acceptor, enrollment, blob streams, ranges.

pub mod backoff;
pub mod blobs;
pub mod counters;
pub mod datagrams;
pub mod hash;
pub mod identity;
pub mod link;
pub mod manifest;
pub mod pki;
pub mod protocol;
pub mod pull_through;
pub mod rate;
pub mod sync;
pub mod tier;
pub mod transfers;
pub mod transport;

pub use blobs::BlobStore;
pub use hash::BlobHash;
pub use identity::{Fingerprint, NodeIdentity};
pub use tier::Tier;
