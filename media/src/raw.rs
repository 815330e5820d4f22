//! The few codec parameter fields ffmpeg-next has no safe accessor for: profile, level and
//! field order of a stream (read), and an output stream's codec tag (cleared when remuxing).
//! The only `unsafe` code in Youke; each block touches plain integers behind a pointer FFmpeg
//! owns for as long as the borrowed value lives.
#![allow(unsafe_code)]

use ffmpeg_next as ff;
use std::ffi::CStr;

/// Profile name (e.g. `High`, `LC`), level (e.g. 40 for H.264 level 4.0) and field order of a
/// stream's codec parameters.
pub(crate) struct Raw {
    pub profile: Option<String>,
    pub level: Option<i32>,
    pub field_order: ff::FieldOrder,
    /// The container's FourCC for the codec, when it is printable (`avc1`, `XVID`, …).
    pub fourcc: Option<String>,
}

pub(crate) fn codec_parameters(params: &ff::codec::Parameters) -> Raw {
    // SAFETY: `as_ptr` points to the stream's AVCodecParameters, valid while `params` is
    // borrowed; we read three plain fields and copy them out.
    let (id, profile, level, field_order, tag) = unsafe {
        let p = params.as_ptr();
        ((*p).codec_id, (*p).profile, (*p).level, (*p).field_order, (*p).codec_tag)
    };
    let bytes = tag.to_le_bytes();
    let fourcc = (tag != 0 && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ')).then(|| String::from_utf8_lossy(&bytes).into_owned());
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
    Raw { profile, level: (level > 0).then_some(level), field_order: ff::FieldOrder::from(field_order), fourcc }
}

/// Clears an output stream's codec tag, as `ffmpeg -c copy` does when remuxing: a tag copied
/// from MPEG-TS (0x1b for H.264) is not valid in MP4, and the muxer then picks its own.
pub(crate) fn clear_codec_tag(stream: &mut ff::format::stream::StreamMut<'_>) {
    // SAFETY: the stream and its codecpar are owned by the output context, which `stream`
    // borrows mutably; we write one plain integer field.
    unsafe {
        let st = stream.as_mut_ptr();
        if !(*st).codecpar.is_null() {
            (*(*st).codecpar).codec_tag = 0;
        }
    }
}
