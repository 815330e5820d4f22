//! Import sidecars (JSON) and file-name patterns with the names they parse.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| youke_node::ingest::fuzz_parse(data));
