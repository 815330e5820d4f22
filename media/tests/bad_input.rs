//! Bad input of every kind the import path meets, each refused with a message that names the
//! problem and no panic: random bytes named .mp4, a zero-length file, a recording cut mid-way,
//! audio only, a video codec this FFmpeg cannot decode, an absurd picture size. Video without
//! sound is accepted (a screen recording can be silent) and the report says the audio rules
//! fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use youke_media::{MediaError, probe};

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().expect("ffmpeg CLI");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn refused(path: &Path, words: &str) {
    match probe(path) {
        Err(MediaError::NotMedia { reason, .. }) => assert!(reason.contains(words), "{}: {reason}", path.display()),
        other => panic!("{}: expected a refusal naming {words:?}, got {other:?}", path.display()),
    }
}

#[test]
fn every_kind_of_bad_recording_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);

    std::fs::write(d("随机.mp4"), (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect::<Vec<u8>>()).unwrap();
    refused(&d("随机.mp4"), "FFmpeg cannot open it");

    std::fs::write(d("空.mp4"), b"").unwrap();
    refused(&d("空.mp4"), "empty");

    let whole = d("whole.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=3", "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", whole.to_str().unwrap()]);
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(d("cut.mp4"), &bytes[..bytes.len() / 2]).unwrap();
    refused(&d("cut.mp4"), "cut short");

    let audio = d("只有声音.m4a");
    ffmpeg(&["-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", audio.to_str().unwrap()]);
    refused(&audio, "no picture");

    // An AVI whose video carries a FourCC no decoder knows (MPEG-4's FMP4 overwritten).
    let odd = d("odd-codec.avi");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1", "-c:v", "mpeg4", odd.to_str().unwrap()]);
    let mut avi = std::fs::read(&odd).unwrap();
    let mut patched = 0;
    for i in 0..avi.len().saturating_sub(4) {
        if &avi[i..i + 4] == b"FMP4" {
            avi[i..i + 4].copy_from_slice(b"QQQQ");
            patched += 1;
        }
    }
    assert!(patched >= 1);
    std::fs::write(&odd, avi).unwrap();
    refused(&odd, "FourCC QQQQ");

    let wide = d("absurd.nut");
    ffmpeg(&["-f", "lavfi", "-i", "color=s=9000x16:r=1:d=1", "-c:v", "rawvideo", "-pix_fmt", "gray", wide.to_str().unwrap()]);
    refused(&wide, "9000x16");

    // Silent video is a recording; the standard's audio rules say what is missing.
    let silent = d("无声.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=2", "-c:v", "libx264", "-preset", "ultrafast", silent.to_str().unwrap()]);
    let (p, report) = youke_media::standard::check_file(&silent, &Default::default()).unwrap();
    assert!(p.audio.is_none());
    assert_eq!(report.rule("A1").unwrap().measured, "no audio stream");
    assert!(!report.compliant());
}
