//! SRT subtitle files as teachers and recording hosts produce them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| youke_media::srt::fuzz_srt(data));
