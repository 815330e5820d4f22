//! Probing recordings: what container, streams and formats a file holds.

use crate::{MediaError, init};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a recording is made of, as read by FFmpeg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// FFmpeg's short name(s) of the container, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    pub duration_secs: f64,
    pub size_bytes: u64,
    /// Overall bit rate in bit/s.
    pub bit_rate: u64,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    pub codec: String,
    /// Codec profile, e.g. `High` (H.264).
    #[serde(default)]
    pub profile: Option<String>,
    /// Codec level as FFmpeg gives it, e.g. 40 for H.264 level 4.0.
    #[serde(default)]
    pub level: Option<i32>,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Progressive or interlaced, from the stream's field order.
    #[serde(default)]
    pub scan: Scan,
    /// bit/s, 0 when the container does not say.
    pub bit_rate: u64,
    /// FFmpeg's name of the pixel format, e.g. `yuv420p`.
    #[serde(default)]
    pub pixel_format: Option<String>,
}

/// How the frames are scanned (rule V3 wants progressive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scan {
    Progressive,
    Interlaced,
    #[default]
    Unknown,
}

impl Scan {
    pub fn as_str(self) -> &'static str {
        match self {
            Scan::Progressive => "progressive",
            Scan::Interlaced => "interlaced",
            Scan::Unknown => "scan unknown",
        }
    }

    fn of(order: ff::FieldOrder) -> Scan {
        match order {
            ff::FieldOrder::Progressive => Scan::Progressive,
            ff::FieldOrder::Unknown => Scan::Unknown,
            _ => Scan::Interlaced,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    pub codec: String,
    /// Codec profile, e.g. `LC` (AAC).
    #[serde(default)]
    pub profile: Option<String>,
    pub sample_rate: u32,
    pub channels: u16,
    /// bit/s, 0 when the container does not say.
    pub bit_rate: u64,
}

impl Probe {
    /// The MIME type to serve the file with.
    pub fn mime(&self) -> &'static str {
        let c = self.container.as_str();
        if c.contains("mp4") || c.contains("mov") {
            "video/mp4"
        } else if c.contains("matroska") || c.contains("webm") {
            "video/x-matroska"
        } else if c.contains("mpegts") {
            "video/mp2t"
        } else if c.contains("flv") {
            "video/x-flv"
        } else if c.contains("avi") {
            "video/x-msvideo"
        } else {
            "application/octet-stream"
        }
    }
}

/// Smallest and largest picture side a lesson can have.
pub const MIN_SIDE: u32 = 16;
pub const MAX_SIDE: u32 = 8192;

/// Probes `path`. A file FFmpeg cannot open, an empty one, one without a decodable video
/// stream, or one with an absurd picture size is [`MediaError::NotMedia`], with the reason.
pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    init();
    let size_bytes = std::fs::metadata(path)
        .map_err(|source| MediaError::Io { path: path.to_path_buf(), source })?
        .len();
    let not_media = |reason: String| MediaError::NotMedia { path: path.to_path_buf(), reason };
    if size_bytes == 0 {
        return Err(not_media("the file is empty (0 bytes); was the copy interrupted?".into()));
    }
    let ictx = ff::format::input(path).map_err(|e| not_media(format!("FFmpeg cannot open it ({e}); it is damaged, cut short, or not a recording")))?;
    let mut video = None;
    let mut audio = None;
    // A video stream this FFmpeg cannot decode, named in the error if no other video decodes.
    let mut undecodable: Option<String> = None;
    for stream in ictx.streams() {
        let params = stream.parameters();
        let medium = params.medium();
        let codec = params.id().name().to_string();
        let raw = crate::raw::codec_parameters(&params);
        let ctx = match ff::codec::context::Context::from_parameters(params) {
            Ok(c) => c,
            Err(_) => continue,
        };
        match medium {
            ff::media::Type::Video if video.is_none() => {
                let Ok(dec) = ctx.decoder().video() else {
                    let name = match &raw.fourcc {
                        Some(f) if codec == "none" => format!("FourCC {f}"),
                        Some(f) => format!("{codec}, FourCC {f}"),
                        None => codec,
                    };
                    undecodable.get_or_insert(name);
                    continue;
                };
                if dec.width() == 0 || dec.height() == 0 {
                    continue;
                }
                if !(MIN_SIDE..=MAX_SIDE).contains(&dec.width()) || !(MIN_SIDE..=MAX_SIDE).contains(&dec.height()) {
                    return Err(not_media(format!(
                        "its picture is {}x{}, not a size a lesson can have ({MIN_SIDE} to {MAX_SIDE} pixels a side)",
                        dec.width(),
                        dec.height()
                    )));
                }
                let fr = stream.avg_frame_rate();
                let frame_rate = if fr.denominator() != 0 { f64::from(fr) } else { 0.0 };
                let pixel_format = match dec.format() {
                    ff::format::Pixel::None => None,
                    f => f.descriptor().map(|d| d.name().to_string()),
                };
                video = Some(VideoInfo {
                    codec,
                    profile: raw.profile,
                    level: raw.level,
                    width: dec.width(),
                    height: dec.height(),
                    frame_rate: (frame_rate * 1000.0).round() / 1000.0,
                    scan: Scan::of(raw.field_order),
                    bit_rate: dec.bit_rate() as u64,
                    pixel_format,
                });
            }
            ff::media::Type::Audio if audio.is_none() => {
                let Ok(dec) = ctx.decoder().audio() else { continue };
                audio = Some(AudioInfo {
                    codec,
                    profile: raw.profile,
                    sample_rate: dec.rate(),
                    channels: dec.channels(),
                    bit_rate: dec.bit_rate() as u64,
                });
            }
            _ => {}
        }
    }
    if video.is_none() {
        return Err(not_media(match (undecodable, audio.is_some()) {
            (Some(codec), _) => format!("its video codec ({codec}) cannot be decoded here; convert it to H.264"),
            (None, true) => "it has sound but no picture (an audio-only file)".into(),
            (None, false) => "it has no video stream".into(),
        }));
    }
    let duration = ictx.duration();
    let duration_secs = if duration > 0 { duration as f64 / f64::from(ff::ffi::AV_TIME_BASE) } else { 0.0 };
    if duration_secs <= 0.0 {
        return Err(not_media("its duration is unknown or zero (truncated or still being written?)".into()));
    }
    Ok(Probe {
        container: ictx.format().name().to_string(),
        duration_secs: (duration_secs * 1000.0).round() / 1000.0,
        size_bytes,
        bit_rate: ictx.bit_rate().max(0) as u64,
        video,
        audio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthSpec, synthesize};

    #[test]
    fn probes_a_synthesized_lesson() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("一元二次方程.mp4");
        let spec = SynthSpec { seconds: 2.0, ..SynthSpec::small() };
        synthesize(&path, &spec, |_| {}).expect("synthesize");
        let p = probe(&path).expect("probe");
        assert!(p.container.contains("mp4"), "{p:?}");
        let v = p.video.as_ref().expect("video");
        assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", spec.width, spec.height));
        assert!((v.frame_rate - 25.0).abs() < 0.01, "{v:?}");
        let a = p.audio.as_ref().expect("audio");
        assert_eq!((a.codec.as_str(), a.sample_rate, a.channels), ("aac", 48000, 2));
        assert!((p.duration_secs - 2.0).abs() < 0.2, "{p:?}");
        assert_eq!(p.mime(), "video/mp4");
    }

    #[test]
    fn random_bytes_are_not_media() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fake.mp4");
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&path, bytes).expect("write");
        assert!(matches!(probe(&path), Err(MediaError::NotMedia { .. })));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "这不是视频").expect("write");
        assert!(matches!(probe(&text), Err(MediaError::NotMedia { .. })));
        assert!(matches!(probe(&dir.path().join("missing.mp4")), Err(MediaError::Io { .. })));
    }
}
