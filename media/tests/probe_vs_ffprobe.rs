//! The probe reads what ffprobe reads: recordings of several shapes, made by the ffmpeg CLI
//! (1080p25 H.264 High with stereo AAC in MP4; 720p interlaced H.264 with mono AAC;
//! 576i MPEG-2 with MP2 audio in MPEG-TS; video without audio), compared field by field with
//! `ffprobe -show_format -show_streams`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use youke_media::{Scan, probe};

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().expect("ffmpeg CLI (make setup installs it)");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe CLI");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn num(v: &serde_json::Value) -> Option<f64> {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64())
}

fn rate(v: &serde_json::Value) -> f64 {
    let s = v.as_str().unwrap();
    let (n, d) = s.split_once('/').unwrap();
    let (n, d): (f64, f64) = (n.parse().unwrap(), d.parse().unwrap());
    if d == 0.0 { 0.0 } else { n / d }
}

fn compare(path: &Path) {
    let ours = probe(path).expect("probe");
    let theirs = ffprobe(path);
    let format = &theirs["format"];
    let streams = theirs["streams"].as_array().unwrap();
    let what = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(ours.container, format["format_name"].as_str().unwrap(), "{what}: container");
    assert_eq!(ours.size_bytes as f64, num(&format["size"]).unwrap(), "{what}: size");
    assert!((ours.duration_secs - num(&format["duration"]).unwrap()).abs() < 0.002, "{what}: duration {} vs {}", ours.duration_secs, format["duration"]);
    assert_eq!(ours.bit_rate as f64, num(&format["bit_rate"]).unwrap_or(0.0), "{what}: overall bit rate");

    let v = ours.video.as_ref().unwrap();
    let fv = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(v.codec, fv["codec_name"].as_str().unwrap(), "{what}: video codec");
    assert_eq!(v.profile.as_deref(), fv["profile"].as_str(), "{what}: video profile");
    let level = fv["level"].as_i64().filter(|l| *l > 0).map(|l| l as i32);
    assert_eq!(v.level, level, "{what}: level");
    assert_eq!((v.width as i64, v.height as i64), (fv["width"].as_i64().unwrap(), fv["height"].as_i64().unwrap()), "{what}: resolution");
    assert!((v.frame_rate - rate(&fv["avg_frame_rate"])).abs() < 0.001, "{what}: frame rate {} vs {}", v.frame_rate, fv["avg_frame_rate"]);
    let scan = match fv["field_order"].as_str() {
        Some("progressive") => Scan::Progressive,
        Some("tt" | "bb" | "tb" | "bt") => Scan::Interlaced,
        _ => Scan::Unknown,
    };
    assert_eq!(v.scan, scan, "{what}: scan ({:?})", fv["field_order"]);
    assert_eq!(v.bit_rate as f64, num(&fv["bit_rate"]).unwrap_or(0.0), "{what}: video bit rate");
    assert_eq!(v.pixel_format.as_deref(), fv["pix_fmt"].as_str(), "{what}: pixel format");

    match streams.iter().find(|s| s["codec_type"] == "audio") {
        None => assert!(ours.audio.is_none(), "{what}: no audio"),
        Some(fa) => {
            let a = ours.audio.as_ref().unwrap();
            assert_eq!(a.codec, fa["codec_name"].as_str().unwrap(), "{what}: audio codec");
            assert_eq!(a.profile.as_deref(), fa["profile"].as_str(), "{what}: audio profile");
            assert_eq!(f64::from(a.sample_rate), num(&fa["sample_rate"]).unwrap(), "{what}: sample rate");
            assert_eq!(i64::from(a.channels), fa["channels"].as_i64().unwrap(), "{what}: channels");
            assert_eq!(a.bit_rate as f64, num(&fa["bit_rate"]).unwrap_or(0.0), "{what}: audio bit rate");
        }
    }
}

#[test]
fn the_probe_agrees_with_ffprobe_on_recordings_of_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let full_hd = d("高清 母版.mp4");
    ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25", "-f", "lavfi", "-i", "sine=f=440:r=48000",
        "-ac", "2", "-t", "2", "-c:v", "libx264", "-profile:v", "high", "-preset", "veryfast", "-b:v", "8M",
        "-c:a", "aac", "-b:a", "192k", full_hd.to_str().unwrap(),
    ]);
    let interlaced = d("interlaced.mp4");
    ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30000/1001", "-f", "lavfi", "-i", "sine=f=300:r=44100",
        "-ac", "1", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "interlaced=1:tff=1",
        "-c:a", "aac", "-b:a", "64k", interlaced.to_str().unwrap(),
    ]);
    let mpeg2 = d("dvd.ts");
    ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc2=s=720x576:r=25", "-f", "lavfi", "-i", "sine=f=500:r=48000", "-ac", "2", "-t", "2",
        "-c:v", "mpeg2video", "-flags", "+ildct+ilme", "-top", "1", "-b:v", "4M", "-c:a", "mp2", "-b:a", "192k", mpeg2.to_str().unwrap(),
    ]);
    let silent = d("无声.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=s=640x360:r=25", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", silent.to_str().unwrap()]);
    for f in [&full_hd, &interlaced, &mpeg2, &silent] {
        compare(f);
    }
    // And the values the standard is judged on came through.
    let p = probe(&full_hd).unwrap();
    let v = p.video.as_ref().unwrap();
    assert_eq!((v.profile.as_deref(), v.scan), (Some("High"), Scan::Progressive));
    assert_eq!(p.audio.as_ref().unwrap().profile.as_deref(), Some("LC"));
    assert_eq!(probe(&interlaced).unwrap().video.unwrap().scan, Scan::Interlaced);
}

#[test]
fn the_snr_estimate_reads_speech_over_room_noise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("讲课.m4a");
    // A tone (RMS 0.088, like speech at -21 dBFS) one second in two, over white noise of
    // RMS 0.00058 (-65 dBFS) across 24 kHz, of which the speech band below 8 kHz holds a third
    // (RMS 0.00033): about 48.5 dB.
    ffmpeg(&[
        "-f", "lavfi", "-i", "sine=f=300:r=48000:d=12",
        "-f", "lavfi", "-i", "anoisesrc=a=0.001:c=white:r=48000:d=12",
        "-filter_complex", "[0]volume='if(lt(mod(t,2),1),1,0)':eval=frame[s];[s][1]amix=inputs=2:normalize=0",
        "-ac", "2", "-c:a", "aac", "-b:a", "192k", path.to_str().unwrap(),
    ]);
    let db = youke_media::analyze::snr_db(&path).unwrap().expect("an estimate");
    assert!((db - 48.5).abs() < 3.0, "estimated {db:.1} dB");
    let silent = dir.path().join("silent.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", silent.to_str().unwrap()]);
    assert_eq!(youke_media::analyze::snr_db(&silent).unwrap(), None, "no audio, no estimate");
}
