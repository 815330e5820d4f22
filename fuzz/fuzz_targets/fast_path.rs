//! One client connection to a node serving with the zero-copy path on: the bytes it sends,
//! through the fast path and, when handed over, hyper and the router.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = youke_node::http::server::fuzz_connection(data);
});
