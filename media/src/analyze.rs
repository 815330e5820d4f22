//! Measurements that need the decoded signal: an estimate of the audio's signal-to-noise ratio
//! (rule A5, advisory).
//!
//! The audio is decoded, mixed to mono at 16 kHz (so the estimate is over the speech band,
//! below 8 kHz) and cut into 50 ms windows. A lecture has
//! pauses: the quiet windows (10th percentile of their loudness) give the noise floor, the loud
//! ones (95th percentile) the speech level; their ratio is the estimate. Digital silence is
//! counted at -100 dBFS, so a synthetic file reads about 100 dB rather than infinity.

use crate::{MediaError, init};
use ffmpeg_next as ff;
use std::path::Path;

const RATE: u32 = 16_000;
const WINDOW: usize = (RATE / 20) as usize;
/// -100 dBFS: the floor of the noise estimate.
const FLOOR: f64 = 1e-5;

/// Estimated SNR of the first audio stream in dB, or `None` if the file has no audio, too
/// little of it (under one second), or no pauses (see [`estimate`]).
pub fn snr_db(path: &Path) -> Result<Option<f64>, MediaError> {
    init();
    let not_media = |reason: String| MediaError::NotMedia { path: path.to_path_buf(), reason };
    let mut ictx = ff::format::input(path).map_err(|e| not_media(format!("FFmpeg cannot open it ({e})")))?;
    let Some(stream) = ictx.streams().best(ff::media::Type::Audio) else { return Ok(None) };
    let index = stream.index();
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters()).map_err(MediaError::ff("reading the audio parameters"))?;
    let mut decoder = ctx.decoder().audio().map_err(MediaError::ff("opening the audio decoder"))?;
    let mut windows: Vec<f64> = Vec::new();
    let mut acc = Accumulator::default();
    let mut resampler: Option<ff::software::resampling::Context> = None;
    let mut decoded = ff::frame::Audio::empty();
    let mut drain = |decoder: &mut ff::decoder::Audio, resampler: &mut Option<ff::software::resampling::Context>, windows: &mut Vec<f64>| -> Result<(), MediaError> {
        while decoder.receive_frame(&mut decoded).is_ok() {
            if decoded.channel_layout().is_empty() {
                decoded.set_channel_layout(ff::ChannelLayout::default(i32::from(decoded.channels())));
            }
            if resampler.is_none() {
                *resampler = Some(
                    decoded
                        .resampler(ff::format::Sample::F32(ff::format::sample::Type::Packed), ff::ChannelLayout::MONO, RATE)
                        .map_err(MediaError::ff("setting up the audio resampler"))?,
                );
            }
            let Some(r) = resampler.as_mut() else { continue };
            let mut mono = ff::frame::Audio::empty();
            r.run(&decoded, &mut mono).map_err(MediaError::ff("resampling audio"))?;
            acc.push(mono.plane::<f32>(0), windows);
        }
        Ok(())
    };
    for (s, packet) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        // A damaged packet is skipped; the estimate uses what decodes.
        if decoder.send_packet(&packet).is_ok() {
            drain(&mut decoder, &mut resampler, &mut windows)?;
        }
    }
    let _ = decoder.send_eof();
    drain(&mut decoder, &mut resampler, &mut windows)?;
    Ok(estimate(&mut windows))
}

/// Sums squares over 50 ms windows.
#[derive(Default)]
struct Accumulator {
    sum: f64,
    n: usize,
}

impl Accumulator {
    fn push(&mut self, samples: &[f32], windows: &mut Vec<f64>) {
        for &x in samples {
            self.sum += f64::from(x) * f64::from(x);
            self.n += 1;
            if self.n == WINDOW {
                windows.push((self.sum / WINDOW as f64).sqrt());
                self.sum = 0.0;
                self.n = 0;
            }
        }
    }
}

/// The SNR estimate from window loudness (RMS), in dB; `None` under one second of audio, or
/// when the loudness hardly varies (no pauses to hear the noise in: a steady tone, music).
pub fn estimate(windows: &mut [f64]) -> Option<f64> {
    if windows.len() < 20 {
        return None;
    }
    windows.sort_by(f64::total_cmp);
    let at = |q: f64| windows[((windows.len() - 1) as f64 * q).round() as usize];
    let noise = at(0.10).max(FLOOR);
    let signal = at(0.95).max(FLOOR);
    let db = 20.0 * (signal / noise).log10();
    (db >= MIN_SPREAD_DB).then(|| db.clamp(0.0, 100.0))
}

/// Below this spread between loud and quiet windows there are no pauses to measure noise in.
const MIN_SPREAD_DB: f64 = 3.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_compares_loud_and_quiet_windows() {
        // Half the windows speech at 0.1 RMS, half room noise at 0.001: 40 dB.
        let mut w: Vec<f64> = (0..200).map(|i| if i % 2 == 0 { 0.1 } else { 0.001 }).collect();
        assert!((estimate(&mut w).unwrap() - 40.0).abs() < 0.01);
        let mut silent_pauses: Vec<f64> = (0..200).map(|i| if i % 2 == 0 { 0.1 } else { 0.0 }).collect();
        assert!((estimate(&mut silent_pauses).unwrap() - 80.0).abs() < 0.01, "digital silence counts as -100 dBFS");
        assert_eq!(estimate(&mut [0.1; 5]), None, "too short to say");
        assert_eq!(estimate(&mut [0.1; 100]), None, "a steady tone has no pauses");
    }
}
