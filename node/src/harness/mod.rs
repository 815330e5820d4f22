//! What runs nodes for people rather than being one: the demo (a three-tier federation on one
//! machine with sample lessons, `youke demo`) and the benchmarks behind docs/BENCHMARKS.md
//! (`youke bench`). The appliance's own modules never import from here.

pub mod bench;
pub mod demo;
pub mod faultproxy;
