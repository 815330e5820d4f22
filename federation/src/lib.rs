//! Youke federation: how appliances at the school, city and province tiers find, trust and
//! replicate to each other.
//!
//! This crate knows nothing about lessons. Documents are opaque byte strings with an id, a kind
//! and a share tier; blobs are opaque files named by their BLAKE3 hash. The node crate plugs its
//! SQLite store in through [`link::LinkStore`].
//!
//! Layout:
//! - [`tier`]: the three tiers and the scope rule saying what goes up a link.
//! - [`protocol`]: the wire messages, their framing and limits (pure, no I/O).
//! - [`identity`]: a node's key pair and certificate, and pinned-certificate TLS configs.
//! - [`blobs`]: the content-addressed blob store on disk, including resumable partial files.
//! - [`schedule`]: link timing (reconnect backoff with jitter), sans-IO.
//! - [`datagrams`]: what arrives on the UDP port, QUIC told from garbage (counted), and the
//!   signed connection ids that make the difference.
//! - [`link`]: the tokio/quinn driver: the parent's accept loop and the child's uplink.

pub mod blobs;
pub mod datagrams;
pub mod identity;
pub mod link;
pub mod manifest;
pub mod objects;
pub mod pki;
pub mod protocol;
pub mod pull;
pub mod rate;
pub mod schedule;
pub mod tier;
pub mod transfers;

pub use blobs::{BlobHash, BlobStore};
pub use identity::{Fingerprint, NodeIdentity};
pub use tier::Tier;
