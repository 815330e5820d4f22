//! Youke media: everything that touches audio/video bytes, through FFmpeg's libraries
//! (ffmpeg-next).
//!
//! - [`probe`]: reads a recording's container and streams (codec, resolution, frame rate, bit
//!   rates, duration, audio format) and refuses files that are not media.
//! - [`analyze`]: measurements on the decoded signal (audio SNR estimate).
//! - [`hls`]: transcoding to an HLS ladder with aligned keyframes, poster and thumbnail sprite.
//! - [`pack`]: a ladder as one file (a rendition pack) that travels between tiers as one blob.
//! - [`srt`]: SRT subtitles: parsing, timing checks, WebVTT.
//! - [`standard`]: the course video standard, rule by rule (a compliance report).
//! - [`synth`]: synthesizes sample lessons (test pattern and tone, H.264 + AAC in MP4) for the
//!   demo and for tests.

pub mod analyze;
pub mod hls;
pub mod pack;
pub mod probe;
mod raw;
pub mod srt;
pub mod standard;
pub mod synth;

pub use probe::{AudioInfo, Probe, Scan, VideoInfo, probe};
pub use synth::{SynthSpec, synthesize};

use std::path::PathBuf;
use std::sync::Once;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{path} is not a playable recording: {reason}")]
    NotMedia { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("FFmpeg failed while {action}: {source}")]
    Ffmpeg { action: &'static str, source: ffmpeg_next::Error },
    #[error("this FFmpeg build lacks the {0} encoder; install Debian's ffmpeg libraries (libavcodec59 with libx264)")]
    MissingEncoder(&'static str),
    #[error("cancelled")]
    Cancelled,
    #[error("a rendition pack is damaged: {0}")]
    BadPack(String),
}

impl MediaError {
    fn ff(action: &'static str) -> impl FnOnce(ffmpeg_next::Error) -> MediaError {
        move |source| MediaError::Ffmpeg { action, source }
    }
}

/// Initializes FFmpeg once per process and keeps its own logging quiet.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = ffmpeg_next::init() {
            tracing::error!(error = %e, "FFmpeg initialization failed");
        }
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}
