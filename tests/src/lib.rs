//! Test support shared by the integration tests.
//!
//! The fault-injecting UDP link proxy lives with the benchmarks that also use it
//! (`youke_node::harness::faultproxy`); it is re-exported here under its old path.

pub use youke_node::harness::faultproxy;
pub use youke_node::harness::faultproxy::{FaultConfig, FaultProxy};
