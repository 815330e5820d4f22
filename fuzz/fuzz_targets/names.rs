//! Certificate names, join tokens and lifetimes, as operators and peers hand them in.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| youke_federation::pki::fuzz_names(data));
