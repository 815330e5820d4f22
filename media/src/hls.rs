//! Transcoding a recording into an HLS ladder for viewers on phones and weak school links.
//!
//! One pass over the source: it is decoded once; each rung (1080p, 720p, 480p, 360p, only
//! those at or below the source) scales and encodes H.264 of its own; the audio is encoded to
//! AAC once and the same packets go to every rung. Keyframes are forced at the same instants on
//! every rung (every `segment_secs`), so segments align and players switch rungs cleanly. Each
//! rung is written by FFmpeg's HLS muxer (MPEG-TS segments of about 4 s and a VOD playlist);
//! this module writes the master playlist, a poster, a thumbnail sprite with its WebVTT map,
//! and (for masters over 1 GB, rule V5) an SD MP4 from the 720p rung's packets.
//!
//! Everything is written to `<out>.partial/` and renamed to `<out>/` once complete and
//! flushed to disk: a crash or a cancel leaves no half ladder behind.

use crate::{MediaError, init};
use ff::util::channel_layout::ChannelLayout;
use ff::util::format::sample::{Sample, Type as SampleType};
use ff::{Dictionary, Packet, Rational, codec, encoder, format, frame};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub name: &'static str,
    pub height: u32,
    pub video_kbps: u32,
    /// H.264 level, as FFmpeg's `level` option (40 = 4.0).
    pub level: u32,
}

/// The ladder, top down.
pub const LADDER: [Rung; 4] = [
    Rung { name: "1080p", height: 1080, video_kbps: 5000, level: 40 },
    Rung { name: "720p", height: 720, video_kbps: 2800, level: 31 },
    Rung { name: "480p", height: 480, video_kbps: 1400, level: 30 },
    Rung { name: "360p", height: 360, video_kbps: 800, level: 30 },
];
pub const AUDIO_KBPS: u32 = 128;
const AUDIO_RATE: i32 = 48_000;

/// A rung sized for a source: its name, width and height (even), video bit rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub level: u32,
}

fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32 * 2).max(2)
}

/// The rungs for a source of `width`x`height`: those at or below its height; a source smaller
/// than the lowest rung gets one rendition at its own size.
pub fn ladder_for(width: u32, height: u32) -> Vec<Rendition> {
    let aspect = f64::from(width.max(1)) / f64::from(height.max(1));
    let mut out: Vec<Rendition> = LADDER
        .iter()
        .filter(|r| r.height <= height)
        .map(|r| Rendition { name: r.name.into(), width: even(f64::from(r.height) * aspect), height: r.height, video_kbps: r.video_kbps, level: r.level })
        .collect();
    if out.is_empty() {
        let low = LADDER[LADDER.len() - 1];
        out.push(Rendition { name: format!("{}p", even(f64::from(height))), width: even(f64::from(width)), height: even(f64::from(height)), video_kbps: low.video_kbps, level: low.level });
    }
    out
}

/// How to transcode.
#[derive(Debug, Clone)]
pub struct HlsOptions {
    /// Segment length, and the keyframe interval, in seconds.
    pub segment_secs: u32,
    /// x264 preset.
    pub preset: String,
    /// Encoder threads per rung (0: FFmpeg decides).
    pub threads: usize,
    /// Seconds between thumbnails in the sprite.
    pub sprite_interval_secs: f64,
    /// Write an SD MP4 (the 720p rung) beside the ladder: for masters over 1 GB (rule V5).
    pub sd_mp4: bool,
}

impl Default for HlsOptions {
    fn default() -> Self {
        HlsOptions { segment_secs: 4, preset: "veryfast".into(), threads: 0, sprite_interval_secs: 10.0, sd_mp4: false }
    }
}

/// What a finished transcode holds (paths relative to its directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HlsOutput {
    pub master: String,
    pub renditions: Vec<Rendition>,
    pub duration_secs: f64,
    pub poster: String,
    pub sprite: String,
    pub sprite_vtt: String,
    /// `sd.mp4` and its size, when written.
    pub sd_mp4: Option<Rendition>,
}

pub const MASTER: &str = "master.m3u8";
pub const POSTER: &str = "poster.jpg";
pub const SPRITE: &str = "sprite.jpg";
pub const SPRITE_VTT: &str = "sprite.vtt";
pub const SD_MP4: &str = "sd.mp4";
const TILE_W: u32 = 160;
const TILE_H: u32 = 90;
const SPRITE_COLS: u32 = 10;
const MAX_TILES: usize = 400;

struct RungOut {
    scaler: ff::software::scaling::Context,
    enc: encoder::Video,
    octx: format::context::Output,
    vidx: usize,
    aidx: Option<usize>,
    scaled: frame::Video,
}

/// Transcodes `input` into an HLS ladder in `out_dir` (which must not exist yet). `progress`
/// gets the fraction done; setting `cancel` stops at the next frame and removes the partial
/// output.
pub fn transcode(input: &Path, out_dir: &Path, opts: &HlsOptions, mut progress: impl FnMut(f64), cancel: &AtomicBool) -> Result<HlsOutput, MediaError> {
    init();
    let partial = partial_dir(out_dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MediaError::Io { path, source }
    };
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let result = run(input, &partial, opts, &mut progress, cancel);
    match result {
        Ok(out) => {
            sync_tree(&partial)?;
            if out_dir.exists() {
                std::fs::remove_dir_all(out_dir).map_err(io(out_dir))?;
            }
            std::fs::rename(&partial, out_dir).map_err(io(out_dir))?;
            if let Some(parent) = out_dir.parent() {
                let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
            }
            Ok(out)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

/// Where a transcode into `out_dir` writes until it is complete.
pub fn partial_dir(out_dir: &Path) -> PathBuf {
    let mut name = out_dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out_dir.with_file_name(name)
}

fn sync_tree(dir: &Path) -> Result<(), MediaError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MediaError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io(&path))?;
        }
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The AAC encoder fed by the source's audio; `None` when that audio cannot be decoded (the
/// ladder is made without sound).
fn open_audio(index: usize, params: codec::Parameters, acodec: codec::codec::Codec) -> Result<Option<AudioPath>, MediaError> {
    let actx = codec::context::Context::from_parameters(params).map_err(MediaError::ff("reading the audio parameters"))?;
    match actx.decoder().audio() {
        Ok(dec) => {
            let mut aenc = codec::context::Context::new_with_codec(acodec).encoder().audio().map_err(MediaError::ff("setting up AAC"))?;
            aenc.set_rate(AUDIO_RATE);
            aenc.set_channel_layout(ChannelLayout::STEREO);
            #[allow(deprecated)]
            aenc.set_channels(2);
            aenc.set_format(Sample::F32(SampleType::Planar));
            aenc.set_bit_rate(AUDIO_KBPS as usize * 1000);
            aenc.set_time_base(Rational(1, AUDIO_RATE));
            // MPEG-TS carries AAC with ADTS headers: no global header.
            let aenc = aenc.open_as(acodec).map_err(MediaError::ff("opening the AAC encoder"))?;
            Ok(Some(AudioPath { index, dec, enc: aenc, resampler: None, fifo: [Vec::new(), Vec::new()], next_pts: 0 }))
        }
        Err(_) => Ok(None),
    }
}

/// The source's video, as each rung's encoder and scaler need it.
struct VideoIn {
    time_base: Rational,
    fps: Rational,
    gop: u32,
    format: format::Pixel,
    width: u32,
    height: u32,
}

/// One rung of the ladder: its H.264 encoder, its HLS output (with the audio stream when there
/// is audio) and the scaler from the source.
fn open_rung(r: &Rendition, dir: &Path, opts: &HlsOptions, vcodec: codec::codec::Codec, acodec: codec::codec::Codec, audio: Option<&AudioPath>, input: &VideoIn) -> Result<RungOut, MediaError> {
    let (vtb, fps, gop) = (input.time_base, input.fps, input.gop);
    let rdir = dir.join(&r.name);
    std::fs::create_dir_all(&rdir).map_err(|source| MediaError::Io { path: rdir.clone(), source })?;
    let mut enc = codec::context::Context::new_with_codec(vcodec).encoder().video().map_err(MediaError::ff("setting up H.264"))?;
    enc.set_width(r.width);
    enc.set_height(r.height);
    enc.set_format(format::Pixel::YUV420P);
    enc.set_time_base(vtb);
    enc.set_frame_rate(Some(fps));
    enc.set_bit_rate(r.video_kbps as usize * 1000);
    enc.set_max_bit_rate(r.video_kbps as usize * 1070);
    enc.set_gop(gop);
    let mut eo = Dictionary::new();
    eo.set("preset", &opts.preset);
    eo.set("profile", "high");
    eo.set("level", &format!("{}.{}", r.level / 10, r.level % 10));
    eo.set("bufsize", &format!("{}k", r.video_kbps * 3 / 2));
    eo.set("x264-params", &format!("scenecut=0:open-gop=0:keyint={gop}:min-keyint={gop}:forced-idr=1"));
    if opts.threads > 0 {
        eo.set("threads", &opts.threads.to_string());
    }
    let enc = enc.open_with(eo).map_err(MediaError::ff("opening the H.264 encoder"))?;
    let playlist = rdir.join("index.m3u8");
    let mut octx = format::output_as(&playlist, "hls").map_err(MediaError::ff("creating an HLS output"))?;
    let vidx = {
        let mut st = octx.add_stream(vcodec).map_err(MediaError::ff("adding the video stream"))?;
        st.set_parameters(&enc);
        st.set_time_base(vtb);
        st.index()
    };
    let aidx = match audio {
        Some(a) => {
            let mut st = octx.add_stream(acodec).map_err(MediaError::ff("adding the audio stream"))?;
            st.set_parameters(&a.enc);
            st.set_time_base(Rational(1, AUDIO_RATE));
            Some(st.index())
        }
        None => None,
    };
    let mut mo = Dictionary::new();
    mo.set("hls_time", &opts.segment_secs.to_string());
    mo.set("hls_playlist_type", "vod");
    mo.set("hls_list_size", "0");
    mo.set("hls_flags", "independent_segments");
    mo.set("hls_segment_filename", &rdir.join("seg_%05d.ts").to_string_lossy());
    octx.write_header_with(mo).map_err(MediaError::ff("writing an HLS header"))?;
    let scaler = ff::software::scaling::Context::get(input.format, input.width, input.height, format::Pixel::YUV420P, r.width, r.height, ff::software::scaling::Flags::BICUBIC)
        .map_err(MediaError::ff("setting up the scaler"))?;
    Ok(RungOut { scaler, enc, octx, vidx, aidx, scaled: frame::Video::empty() })
}

fn run(input: &Path, dir: &Path, opts: &HlsOptions, progress: &mut dyn FnMut(f64), cancel: &AtomicBool) -> Result<HlsOutput, MediaError> {
    let not_media = |reason: String| MediaError::NotMedia { path: input.to_path_buf(), reason };
    let mut ictx = format::input(input).map_err(|e| not_media(format!("FFmpeg cannot open it ({e})")))?;
    let vstream = ictx.streams().best(ff::media::Type::Video).ok_or_else(|| not_media("it has no video stream".into()))?;
    let vindex = vstream.index();
    let vtb = vstream.time_base();
    let fr = vstream.avg_frame_rate();
    let fps = if fr.numerator() > 0 && fr.denominator() > 0 { fr } else { Rational(25, 1) };
    let duration = {
        let d = ictx.duration();
        if d > 0 { d as f64 / f64::from(ff::ffi::AV_TIME_BASE) } else { 0.0 }
    };
    let mut vctx = codec::context::Context::from_parameters(vstream.parameters()).map_err(MediaError::ff("reading the video parameters"))?;
    vctx.set_threading(codec::threading::Config { kind: codec::threading::Type::Frame, count: 0, ..Default::default() });
    let mut vdec = vctx.decoder().video().map_err(|e| not_media(format!("its video cannot be decoded ({e})")))?;
    let (src_w, src_h) = (vdec.width(), vdec.height());
    if src_w == 0 || src_h == 0 || src_w > 8192 || src_h > 8192 {
        return Err(not_media(format!("its picture size {src_w}x{src_h} is not one a lesson can have")));
    }
    let audio_in = ictx.streams().best(ff::media::Type::Audio).map(|s| (s.index(), s.parameters()));

    // Audio: one AAC encoder whose packets go to every rung.
    let acodec = encoder::find(codec::Id::AAC).ok_or(MediaError::MissingEncoder("AAC"))?;
    let mut audio = match audio_in {
        Some((index, params)) => open_audio(index, params, acodec)?,
        None => None,
    };

    let vcodec = encoder::find(codec::Id::H264).ok_or(MediaError::MissingEncoder("H.264"))?;
    let renditions = ladder_for(src_w, src_h);
    let gop = ((f64::from(opts.segment_secs) * f64::from(fps.numerator()) / f64::from(fps.denominator())).round() as u32).max(1);
    let mut rungs: Vec<RungOut> = Vec::with_capacity(renditions.len());
    for r in &renditions {
        let input = VideoIn { time_base: vtb, fps, gop, format: vdec.format(), width: src_w, height: src_h };
        rungs.push(open_rung(r, dir, opts, vcodec, acodec, audio.as_ref(), &input)?);
    }

    let mut thumbs = Thumbs::new(src_w, src_h, vdec.format(), duration, opts.sprite_interval_secs)?;
    let mut decoded = frame::Video::empty();
    let mut next_key = 0.0f64;
    let mut frames = 0u64;
    let tb = f64::from(vtb.numerator()) / f64::from(vtb.denominator().max(1));
    let frame_step = (f64::from(fps.denominator()) / f64::from(fps.numerator()) / tb).round().max(1.0) as i64;
    let mut last_pts: Option<i64> = None;

    let mut on_frame = |decoded: &mut frame::Video, rungs: &mut Vec<RungOut>, thumbs: &mut Thumbs| -> Result<(), MediaError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(MediaError::Cancelled);
        }
        // Strictly increasing timestamps, whatever the source says.
        let pts = match (decoded.timestamp(), last_pts) {
            (Some(p), Some(l)) if p > l => p,
            (Some(p), None) => p,
            (_, Some(l)) => l + frame_step,
            (None, None) => 0,
        };
        last_pts = Some(pts);
        let t = pts as f64 * tb;
        let key = t + 1e-6 >= next_key;
        if key {
            next_key = (t / f64::from(opts.segment_secs)).floor() * f64::from(opts.segment_secs) + f64::from(opts.segment_secs);
        }
        thumbs.offer(decoded, t)?;
        for rung in rungs.iter_mut() {
            rung.scaler.run(decoded, &mut rung.scaled).map_err(MediaError::ff("scaling"))?;
            rung.scaled.set_pts(Some(pts));
            rung.scaled.set_kind(if key { ff::picture::Type::I } else { ff::picture::Type::None });
            rung.enc.send_frame(&rung.scaled).map_err(MediaError::ff("encoding video"))?;
            drain_video(rung)?;
        }
        frames += 1;
        if duration > 0.0 {
            progress((t / duration).clamp(0.0, 0.999));
        }
        Ok(())
    };

    for (stream, packet) in ictx.packets() {
        if stream.index() == vindex {
            if vdec.send_packet(&packet).is_ok() {
                while vdec.receive_frame(&mut decoded).is_ok() {
                    on_frame(&mut decoded, &mut rungs, &mut thumbs)?;
                }
            }
        } else if let Some(a) = audio.as_mut().filter(|a| a.index == stream.index()) {
            a.decode(&packet, &mut rungs)?;
        }
    }
    let _ = vdec.send_eof();
    while vdec.receive_frame(&mut decoded).is_ok() {
        on_frame(&mut decoded, &mut rungs, &mut thumbs)?;
    }
    if frames == 0 {
        return Err(not_media("no video frame could be decoded".into()));
    }
    if let Some(a) = audio.as_mut() {
        a.finish(&mut rungs)?;
    }
    for rung in rungs.iter_mut() {
        rung.enc.send_eof().map_err(MediaError::ff("finishing video"))?;
        drain_video(rung)?;
        rung.octx.write_trailer().map_err(MediaError::ff("finishing a playlist"))?;
    }
    let duration = if duration > 0.0 { duration } else { last_pts.unwrap_or(0) as f64 * tb };
    thumbs.write(dir, duration)?;
    write_master(dir, &renditions, audio.is_some())?;
    let sd = if opts.sd_mp4 { write_sd_mp4(dir, &renditions)? } else { None };
    progress(1.0);
    Ok(HlsOutput {
        master: MASTER.into(),
        renditions,
        duration_secs: duration,
        poster: POSTER.into(),
        sprite: SPRITE.into(),
        sprite_vtt: SPRITE_VTT.into(),
        sd_mp4: sd,
    })
}

fn drain_video(rung: &mut RungOut) -> Result<(), MediaError> {
    let mut packet = Packet::empty();
    let from = rung.enc.time_base();
    let to = rung.octx.stream(rung.vidx).map(|s| s.time_base()).unwrap_or(from);
    while rung.enc.receive_packet(&mut packet).is_ok() {
        packet.set_stream(rung.vidx);
        packet.rescale_ts(from, to);
        packet.write_interleaved(&mut rung.octx).map_err(MediaError::ff("writing a video segment"))?;
    }
    Ok(())
}

struct AudioPath {
    index: usize,
    dec: ff::decoder::Audio,
    enc: encoder::Audio,
    resampler: Option<ff::software::resampling::Context>,
    /// Planar stereo samples waiting for a whole AAC frame.
    fifo: [Vec<f32>; 2],
    next_pts: i64,
}

impl AudioPath {
    fn decode(&mut self, packet: &Packet, rungs: &mut [RungOut]) -> Result<(), MediaError> {
        if self.dec.send_packet(packet).is_err() {
            return Ok(()); // a damaged audio packet is skipped
        }
        self.receive(rungs)
    }

    fn receive(&mut self, rungs: &mut [RungOut]) -> Result<(), MediaError> {
        let mut decoded = frame::Audio::empty();
        while self.dec.receive_frame(&mut decoded).is_ok() {
            if decoded.channel_layout().is_empty() {
                decoded.set_channel_layout(ChannelLayout::default(i32::from(decoded.channels())));
            }
            if self.resampler.is_none() {
                self.resampler = Some(
                    decoded
                        .resampler(Sample::F32(SampleType::Planar), ChannelLayout::STEREO, AUDIO_RATE as u32)
                        .map_err(MediaError::ff("setting up the audio resampler"))?,
                );
            }
            let mut out = frame::Audio::empty();
            if let Some(r) = self.resampler.as_mut() {
                r.run(&decoded, &mut out).map_err(MediaError::ff("resampling audio"))?;
            }
            let n = out.samples();
            for ch in 0..2 {
                self.fifo[ch].extend_from_slice(&out.plane::<f32>(ch)[..n]);
            }
            self.encode_ready(rungs, false)?;
        }
        Ok(())
    }

    fn encode_ready(&mut self, rungs: &mut [RungOut], flush: bool) -> Result<(), MediaError> {
        let size = (self.enc.frame_size() as usize).max(1024);
        while self.fifo[0].len() >= size || (flush && !self.fifo[0].is_empty()) {
            let n = self.fifo[0].len().min(size);
            let mut f = frame::Audio::new(Sample::F32(SampleType::Planar), n, ChannelLayout::STEREO);
            f.set_rate(AUDIO_RATE as u32);
            for ch in 0..2 {
                f.plane_mut::<f32>(ch)[..n].copy_from_slice(&self.fifo[ch][..n]);
                self.fifo[ch].drain(..n);
            }
            f.set_pts(Some(self.next_pts));
            self.next_pts += n as i64;
            self.enc.send_frame(&f).map_err(MediaError::ff("encoding audio"))?;
            self.drain(rungs)?;
        }
        Ok(())
    }

    fn drain(&mut self, rungs: &mut [RungOut]) -> Result<(), MediaError> {
        let mut packet = Packet::empty();
        while self.enc.receive_packet(&mut packet).is_ok() {
            for rung in rungs.iter_mut() {
                let Some(aidx) = rung.aidx else { continue };
                let mut p = packet.clone();
                p.set_stream(aidx);
                let to = rung.octx.stream(aidx).map(|s| s.time_base()).unwrap_or(Rational(1, AUDIO_RATE));
                p.rescale_ts(Rational(1, AUDIO_RATE), to);
                p.write_interleaved(&mut rung.octx).map_err(MediaError::ff("writing an audio segment"))?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, rungs: &mut [RungOut]) -> Result<(), MediaError> {
        let _ = self.dec.send_eof();
        self.receive(rungs)?;
        self.encode_ready(rungs, true)?;
        self.enc.send_eof().map_err(MediaError::ff("finishing audio"))?;
        self.drain(rungs)
    }
}

/// The poster (a frame a tenth of the way in, at most 30 s) and the sprite's tiles.
struct Thumbs {
    poster_at: f64,
    poster: Option<frame::Video>,
    poster_scaler: ff::software::scaling::Context,
    poster_size: (u32, u32),
    tile_scaler: ff::software::scaling::Context,
    interval: f64,
    tiles: Vec<frame::Video>,
    next_tile: f64,
}

impl Thumbs {
    fn new(w: u32, h: u32, fmt: format::Pixel, duration: f64, interval: f64) -> Result<Thumbs, MediaError> {
        let pw = 640u32.min(w - w % 2).max(2);
        let ph = even(f64::from(pw) * f64::from(h) / f64::from(w));
        let interval = interval.max(1.0).max(duration / MAX_TILES as f64);
        Ok(Thumbs {
            poster_at: (duration / 10.0).min(30.0),
            poster: None,
            poster_scaler: ff::software::scaling::Context::get(fmt, w, h, format::Pixel::YUVJ420P, pw, ph, ff::software::scaling::Flags::BICUBIC)
                .map_err(MediaError::ff("setting up the poster scaler"))?,
            poster_size: (pw, ph),
            tile_scaler: ff::software::scaling::Context::get(fmt, w, h, format::Pixel::YUVJ420P, TILE_W, TILE_H, ff::software::scaling::Flags::BILINEAR)
                .map_err(MediaError::ff("setting up the sprite scaler"))?,
            interval,
            tiles: Vec::new(),
            next_tile: 0.0,
        })
    }

    fn offer(&mut self, f: &frame::Video, t: f64) -> Result<(), MediaError> {
        if self.poster.is_none() || (t <= self.poster_at + 1e-6 && t >= self.poster_at - 0.5) {
            let mut p = frame::Video::empty();
            self.poster_scaler.run(f, &mut p).map_err(MediaError::ff("scaling the poster"))?;
            self.poster = Some(p);
        }
        if t + 1e-6 >= self.next_tile && self.tiles.len() < MAX_TILES {
            let mut tile = frame::Video::empty();
            self.tile_scaler.run(f, &mut tile).map_err(MediaError::ff("scaling a thumbnail"))?;
            self.tiles.push(tile);
            self.next_tile += self.interval;
        }
        Ok(())
    }

    fn write(&self, dir: &Path, duration: f64) -> Result<(), MediaError> {
        if let Some(p) = &self.poster {
            write_jpeg(&dir.join(POSTER), p, self.poster_size)?;
        }
        let n = self.tiles.len().max(1) as u32;
        let cols = SPRITE_COLS.min(n);
        let rows = n.div_ceil(cols);
        let (sw, sh) = (cols * TILE_W, rows * TILE_H);
        let mut sprite = frame::Video::new(format::Pixel::YUVJ420P, sw, sh);
        for plane in 0..3 {
            let fill = if plane == 0 { 0 } else { 128 };
            sprite.data_mut(plane).fill(fill);
        }
        let mut vtt = String::from("WEBVTT\n\n");
        for (i, tile) in self.tiles.iter().enumerate() {
            let (col, row) = (i as u32 % cols, i as u32 / cols);
            for plane in 0..3 {
                let div = if plane == 0 { 1 } else { 2 };
                let (tw, th) = ((TILE_W / div) as usize, (TILE_H / div) as usize);
                let (x0, y0) = ((col * TILE_W / div) as usize, (row * TILE_H / div) as usize);
                let (src_stride, dst_stride) = (tile.stride(plane), sprite.stride(plane));
                for y in 0..th {
                    let src = tile.data(plane).get(y * src_stride..y * src_stride + tw).map(<[u8]>::to_vec);
                    let start = (y0 + y) * dst_stride + x0;
                    if let (Some(src), Some(dst)) = (src, sprite.data_mut(plane).get_mut(start..start + tw)) {
                        dst.copy_from_slice(&src);
                    }
                }
            }
            let from = (i as f64 * self.interval).min(duration);
            let to = ((i + 1) as f64 * self.interval).min(duration.max(from + 0.001));
            vtt.push_str(&format!(
                "{} --> {}\n{SPRITE}#xywh={},{},{TILE_W},{TILE_H}\n\n",
                crate::srt::clock((from * 1000.0) as u64),
                crate::srt::clock((to * 1000.0) as u64),
                col * TILE_W,
                row * TILE_H
            ));
        }
        write_jpeg(&dir.join(SPRITE), &sprite, (sw, sh))?;
        std::fs::write(dir.join(SPRITE_VTT), vtt).map_err(|source| MediaError::Io { path: dir.join(SPRITE_VTT), source })
    }
}

fn write_jpeg(path: &Path, f: &frame::Video, (w, h): (u32, u32)) -> Result<(), MediaError> {
    let codec = encoder::find(codec::Id::MJPEG).ok_or(MediaError::MissingEncoder("MJPEG"))?;
    let mut enc = codec::context::Context::new_with_codec(codec).encoder().video().map_err(MediaError::ff("setting up JPEG"))?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(format::Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    let mut o = Dictionary::new();
    o.set("qscale", "3");
    let mut enc = enc.open_with(o).map_err(MediaError::ff("opening the JPEG encoder"))?;
    let mut f = f.clone();
    f.set_pts(Some(0));
    enc.send_frame(&f).map_err(MediaError::ff("encoding a JPEG"))?;
    enc.send_eof().map_err(MediaError::ff("encoding a JPEG"))?;
    let mut packet = Packet::empty();
    let mut bytes = Vec::new();
    while enc.receive_packet(&mut packet).is_ok() {
        bytes.extend_from_slice(packet.data().unwrap_or_default());
    }
    std::fs::write(path, bytes).map_err(|source| MediaError::Io { path: path.to_path_buf(), source })
}

fn write_master(dir: &Path, renditions: &[Rendition], audio: bool) -> Result<(), MediaError> {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in renditions {
        let bandwidth = (r.video_kbps + if audio { AUDIO_KBPS } else { 0 }) * 1000 * 11 / 10;
        let codecs = if audio { format!("avc1.6400{:02x},mp4a.40.2", r.level) } else { format!("avc1.6400{:02x}", r.level) };
        m.push_str(&format!("#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={}x{},CODECS=\"{codecs}\"\n{}/index.m3u8\n", r.width, r.height, r.name));
    }
    std::fs::write(dir.join(MASTER), m).map_err(|source| MediaError::Io { path: dir.join(MASTER), source })
}

/// The SD version for rule V5: the 720p rung's segments remuxed into one MP4 (no re-encode).
fn write_sd_mp4(dir: &Path, renditions: &[Rendition]) -> Result<Option<Rendition>, MediaError> {
    let Some(r) = renditions.iter().find(|r| r.height == 720) else { return Ok(None) };
    let playlist = dir.join(&r.name).join("index.m3u8");
    let mut ictx = format::input(&playlist).map_err(MediaError::ff("reading the 720p rung"))?;
    let out = dir.join(SD_MP4);
    let mut octx = format::output(&out).map_err(MediaError::ff("creating the SD MP4"))?;
    let mut map = Vec::new();
    for s in ictx.streams() {
        let mut st = octx.add_stream(encoder::find(codec::Id::None)).map_err(MediaError::ff("adding a stream to the SD MP4"))?;
        st.set_parameters(s.parameters());
        crate::raw::clear_codec_tag(&mut st);
        map.push((s.index(), st.index(), s.time_base()));
    }
    let mut o = Dictionary::new();
    o.set("movflags", "+faststart");
    octx.write_header_with(o).map_err(MediaError::ff("writing the SD MP4 header"))?;
    for (s, mut packet) in ictx.packets() {
        let Some(&(_, oi, itb)) = map.iter().find(|m| m.0 == s.index()) else { continue };
        let otb = octx.stream(oi).map(|s| s.time_base()).unwrap_or(itb);
        packet.set_stream(oi);
        packet.rescale_ts(itb, otb);
        packet.set_position(-1);
        packet.write_interleaved(&mut octx).map_err(MediaError::ff("writing the SD MP4"))?;
    }
    octx.write_trailer().map_err(MediaError::ff("finishing the SD MP4"))?;
    Ok(Some(r.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_keeps_rungs_at_or_below_the_source() {
        let names = |w, h| ladder_for(w, h).into_iter().map(|r| (r.name, r.width, r.height)).collect::<Vec<_>>();
        assert_eq!(names(1920, 1080), [("1080p".into(), 1920, 1080), ("720p".into(), 1280, 720), ("480p".into(), 854, 480), ("360p".into(), 640, 360)]);
        assert_eq!(names(1280, 720).len(), 3);
        assert_eq!(names(1440, 1080)[1], ("720p".to_string(), 960, 720), "4:3 keeps its aspect");
        assert_eq!(names(320, 240), [("240p".into(), 320, 240)], "a tiny source gets one rendition at its size");
        assert_eq!(partial_dir(Path::new("/d/hls/abc")), Path::new("/d/hls/abc.partial"));
    }
}
