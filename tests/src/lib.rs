//! Test support shared by the integration tests: a fault-injecting UDP link proxy.
//!
//! [`FaultProxy`] sits between a QUIC child and its parent on loopback and, per packet and from a
//! seed, drops, delays, reorders (by jitter) and rate-limits traffic, and can black-hole the link
//! for a while. Everything it does is decided by a seeded generator, so a failing seed replays
//! the same fault pattern. It only ever sends to the upstream address it was given and to the
//! clients that sent to it, both on 127.0.0.1.

pub mod faultproxy;

pub use faultproxy::{FaultConfig, FaultProxy};
