//! The portal's request head parser (the zero-copy path's): any bytes a client sends.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| youke_node::http::fastpath::fuzz_head(data));
