//! Synthesized sample lessons: moving colour bars with a bouncing square, and a tone, encoded
//! H.264 + AAC into an MP4 with its index at the front (so browsers start playing at once).
//! Used by `youke demo` and by tests that need real media made by FFmpeg.

use crate::{MediaError, init};
use ffmpeg_next as ff;
use ff::util::channel_layout::ChannelLayout;
use ff::util::format::sample::{Sample, Type as SampleType};
use ff::{Dictionary, Packet, Rational, codec, encoder, format, frame};
use std::path::Path;

/// What to synthesize.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds: f64,
    /// Target video bit rate in bit/s.
    pub video_bit_rate: u64,
    /// Frequency of the tone in Hz; vary it to make distinct lessons.
    pub tone_hz: f32,
    /// Shifts the colour bars, to make distinct lessons.
    pub variant: u32,
    /// Sensor noise on the picture, as a classroom camera has: the encoder then spends its
    /// whole bit rate (clean bars compress to a tenth of it), so segments have a real
    /// recording's size. For benchmarks that move media.
    pub grain: bool,
}

impl SynthSpec {
    /// A small, fast clip (640x360, 25 fps, 4 s).
    pub fn small() -> Self {
        SynthSpec { width: 640, height: 360, fps: 25, seconds: 4.0, video_bit_rate: 800_000, tone_hz: 440.0, variant: 0, grain: false }
    }

    /// A clip in the shape of the course video standard (1920x1080, 25 fps, 8 Mbit/s).
    pub fn hd() -> Self {
        SynthSpec { width: 1920, height: 1080, fps: 25, seconds: 10.0, video_bit_rate: 8_000_000, tone_hz: 440.0, variant: 0, grain: false }
    }
}

const SAMPLE_RATE: i32 = 48_000;

/// BT.601 limited-range colours of the bars: white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
];

/// Writes the clip to `path` (format from its extension; use `.mp4`). `progress` gets the
/// fraction done, 0.0 to 1.0.
pub fn synthesize(path: &Path, spec: &SynthSpec, mut progress: impl FnMut(f64)) -> Result<(), MediaError> {
    init();
    if spec.width < 16 || spec.height < 16 || !spec.width.is_multiple_of(2) || !spec.height.is_multiple_of(2) || spec.fps == 0 {
        return Err(MediaError::NotMedia { path: path.to_path_buf(), reason: "synthesis needs an even size of at least 16x16 and a frame rate".into() });
    }
    let mut octx = format::output(path).map_err(MediaError::ff("creating the output file"))?;
    let global = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let fps = spec.fps as i32;

    let vcodec = encoder::find(codec::Id::H264).ok_or(MediaError::MissingEncoder("H.264"))?;
    let mut venc = codec::context::Context::new_with_codec(vcodec).encoder().video().map_err(MediaError::ff("setting up H.264"))?;
    venc.set_width(spec.width);
    venc.set_height(spec.height);
    venc.set_format(format::Pixel::YUV420P);
    venc.set_time_base(Rational(1, fps));
    venc.set_frame_rate(Some(Rational(fps, 1)));
    venc.set_bit_rate(spec.video_bit_rate as usize);
    venc.set_max_bit_rate(spec.video_bit_rate as usize);
    venc.set_gop(spec.fps * 2);
    if global {
        venc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = Dictionary::new();
    opts.set("preset", "ultrafast");
    let mut venc = venc.open_with(opts).map_err(MediaError::ff("opening the H.264 encoder"))?;
    let vidx = {
        let mut st = octx.add_stream(vcodec).map_err(MediaError::ff("adding the video stream"))?;
        st.set_parameters(&venc);
        st.set_time_base(Rational(1, fps));
        st.index()
    };

    let acodec = encoder::find(codec::Id::AAC).ok_or(MediaError::MissingEncoder("AAC"))?;
    let mut aenc = codec::context::Context::new_with_codec(acodec).encoder().audio().map_err(MediaError::ff("setting up AAC"))?;
    aenc.set_rate(SAMPLE_RATE);
    aenc.set_channel_layout(ChannelLayout::STEREO);
    #[allow(deprecated)]
    aenc.set_channels(2);
    aenc.set_format(Sample::F32(SampleType::Planar));
    aenc.set_bit_rate(160_000);
    aenc.set_time_base(Rational(1, SAMPLE_RATE));
    if global {
        aenc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut aenc = aenc.open_as(acodec).map_err(MediaError::ff("opening the AAC encoder"))?;
    let aidx = {
        let mut st = octx.add_stream(acodec).map_err(MediaError::ff("adding the audio stream"))?;
        st.set_parameters(&aenc);
        st.set_time_base(Rational(1, SAMPLE_RATE));
        st.index()
    };
    let frame_size = (aenc.frame_size() as usize).max(1024);

    let mut mux_opts = Dictionary::new();
    mux_opts.set("movflags", "+faststart");
    octx.write_header_with(mux_opts).map_err(MediaError::ff("writing the header"))?;
    let vtb = octx.stream(vidx).map(|s| s.time_base()).unwrap_or(Rational(1, fps));
    let atb = octx.stream(aidx).map(|s| s.time_base()).unwrap_or(Rational(1, SAMPLE_RATE));

    let total_frames = (spec.seconds * f64::from(spec.fps)).round().max(1.0) as i64;
    let total_samples = (spec.seconds * f64::from(SAMPLE_RATE)).round() as i64;
    let mut vframe = frame::Video::new(format::Pixel::YUV420P, spec.width, spec.height);
    let mut aframe = frame::Audio::new(Sample::F32(SampleType::Planar), frame_size, ChannelLayout::STEREO);
    aframe.set_rate(SAMPLE_RATE as u32);
    let mut next_sample: i64 = 0;

    for i in 0..total_frames {
        draw_frame(&mut vframe, spec, i);
        vframe.set_pts(Some(i));
        venc.send_frame(&vframe).map_err(MediaError::ff("encoding video"))?;
        drain(&mut venc, &mut octx, vidx, Rational(1, fps), vtb, 1)?;
        let video_time = (i + 1) * i64::from(SAMPLE_RATE) / i64::from(fps);
        while next_sample < video_time.min(total_samples) {
            tone(&mut aframe, spec.tone_hz, next_sample);
            aframe.set_pts(Some(next_sample));
            aenc.send_frame(&aframe).map_err(MediaError::ff("encoding audio"))?;
            drain(&mut aenc, &mut octx, aidx, Rational(1, SAMPLE_RATE), atb, frame_size as i64)?;
            next_sample += frame_size as i64;
        }
        progress((i + 1) as f64 / total_frames as f64);
    }
    venc.send_eof().map_err(MediaError::ff("finishing video"))?;
    drain(&mut venc, &mut octx, vidx, Rational(1, fps), vtb, 1)?;
    aenc.send_eof().map_err(MediaError::ff("finishing audio"))?;
    drain(&mut aenc, &mut octx, aidx, Rational(1, SAMPLE_RATE), atb, frame_size as i64)?;
    octx.write_trailer().map_err(MediaError::ff("writing the trailer"))?;
    Ok(())
}

fn drain(
    enc: &mut encoder::Encoder,
    octx: &mut format::context::Output,
    index: usize,
    from: Rational,
    to: Rational,
    duration: i64,
) -> Result<(), MediaError> {
    let mut packet = Packet::empty();
    while enc.receive_packet(&mut packet).is_ok() {
        packet.set_stream(index);
        if packet.duration() <= 0 {
            packet.set_duration(duration);
        }
        packet.rescale_ts(from, to);
        packet.write_interleaved(octx).map_err(MediaError::ff("writing a packet"))?;
    }
    Ok(())
}

fn draw_frame(f: &mut frame::Video, spec: &SynthSpec, i: i64) {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let shift = (i as usize * 4 + spec.variant as usize * w / 8) % w;
    let bar_of = |x: usize| BARS.get(((x + shift) % w) * 8 / w).copied().unwrap_or((16, 128, 128));
    // A bouncing square, so motion is visible.
    let side = (h / 6).max(4) & !1;
    let period = 2 * (w - side).max(1);
    let pos = (i as usize * 12) % period;
    let sx = if pos < w - side { pos } else { period - pos } & !1;
    let sy = ((h - side) / 2) & !1;

    for plane in 0..3 {
        let (pw, ph) = if plane == 0 { (w, h) } else { (w / 2, h / 2) };
        let scale = if plane == 0 { 1 } else { 2 };
        let row: Vec<u8> = (0..pw)
            .map(|x| {
                let (y, u, v) = bar_of(x * scale);
                [y, u, v].get(plane).copied().unwrap_or(128)
            })
            .collect();
        let square = if plane == 0 { 235u8 } else { 128u8 };
        let stride = f.stride(plane);
        let data = f.data_mut(plane);
        for y in 0..ph {
            let Some(line) = data.get_mut(y * stride..y * stride + pw) else { break };
            line.copy_from_slice(&row);
            let yy = y * scale;
            if yy >= sy && yy < sy + side {
                let (a, b) = (sx / scale, (sx + side) / scale);
                if let Some(seg) = line.get_mut(a..b.min(pw)) {
                    seg.fill(square);
                }
            }
            if spec.grain && plane == 0 {
                // xorshift per line, seeded by frame and line: new noise every frame.
                let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
                for p in line.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *p = p.saturating_add((x & 15) as u8).saturating_sub(8).clamp(16, 235);
                }
            }
        }
    }
}

fn tone(f: &mut frame::Audio, hz: f32, first_sample: i64) {
    let n = f.samples();
    for ch in 0..2 {
        let plane = f.plane_mut::<f32>(ch);
        for (k, s) in plane.iter_mut().take(n).enumerate() {
            let t = (first_sample + k as i64) as f32 / SAMPLE_RATE as f32;
            *s = 0.2 * (std::f32::consts::TAU * hz * t).sin();
        }
    }
}
