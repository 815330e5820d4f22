//! The few codec parameters ffmpeg-next has no safe getter for: profile, level and field order
//! of a stream, read from FFmpeg's `AVCodecParameters`. The only `unsafe` code in Youke; each
//! block reads plain integers from a pointer FFmpeg owns for as long as the borrowed
//! parameters live.
#![allow(unsafe_code)]

use ffmpeg_next as ff;
use std::ffi::CStr;

/// Profile name (e.g. `High`, `LC`), level (e.g. 40 for H.264 level 4.0) and field order of a
/// stream's codec parameters.
pub(crate) struct Raw {
    pub profile: Option<String>,
    pub level: Option<i32>,
    pub field_order: ff::FieldOrder,
}

pub(crate) fn codec_parameters(params: &ff::codec::Parameters) -> Raw {
    // SAFETY: `as_ptr` points to the stream's AVCodecParameters, valid while `params` is
    // borrowed; we read three plain fields and copy them out.
    let (id, profile, level, field_order) = unsafe {
        let p = params.as_ptr();
        ((*p).codec_id, (*p).profile, (*p).level, (*p).field_order)
    };
    let profile = if profile < 0 {
        None
    } else {
        // SAFETY: avcodec_profile_name returns NULL or a pointer to a static, NUL-terminated
        // string owned by libavcodec; we copy it before returning.
        unsafe {
            let name = ff::ffi::avcodec_profile_name(id, profile);
            (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
        }
    };
    Raw { profile, level: (level > 0).then_some(level), field_order: ff::FieldOrder::from(field_order) }
}
