//! The node's config file parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| youke_node::config::fuzz_parse(data));
