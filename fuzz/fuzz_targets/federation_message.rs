//! Frames as a peer may send them: the federation message decoder and its limits.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| youke_federation::protocol::fuzz_decode(data));
