//! The HLS ladder made from real recordings (made by the ffmpeg CLI): rungs at or below the
//! source, keyframes aligned across rungs at segment boundaries, segments of about 4 s, a
//! master playlist FFmpeg plays back, a poster and a sprite; an SD MP4 on request; a cancel
//! leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use youke_media::hls::{HlsOptions, transcode};

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().expect("ffmpeg CLI");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn recording(path: &Path, size: &str, seconds: u32) {
    ffmpeg(&[
        "-f", "lavfi", "-i", &format!("testsrc2=s={size}:r=25:d={seconds}"), "-f", "lavfi", "-i", &format!("sine=f=440:r=44100:d={seconds}"),
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "1", path.to_str().unwrap(),
    ]);
}

/// Keyframe times of a rung's video, by ffprobe.
fn keyframes(playlist: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(playlist)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains('K'))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

#[test]
fn a_720p_recording_becomes_a_three_rung_ladder_with_aligned_keyframes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("勾股定理 第一课时.mp4");
    recording(&src, "1280x720", 10);
    let out = dir.path().join("hls").join("lesson");
    let mut seen = Vec::new();
    let opts = HlsOptions { sd_mp4: true, sprite_interval_secs: 2.0, ..HlsOptions::default() };
    let res = transcode(&src, &out, &opts, |p| seen.push(p), &AtomicBool::new(false)).expect("transcode");
    assert_eq!(res.renditions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["720p", "480p", "360p"]);
    assert!((res.duration_secs - 10.0).abs() < 0.2, "{res:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.last() == Some(&1.0), "progress rises to 1");
    assert!(!youke_media::hls::partial_dir(&out).exists());

    // Every rung's keyframes fall at the same instants, every 4 s.
    let first = keyframes(&out.join("720p/index.m3u8"));
    assert!(first.len() >= 3, "{first:?}");
    for r in ["480p", "360p"] {
        let k = keyframes(&out.join(r).join("index.m3u8"));
        assert_eq!(k.len(), first.len(), "{r}: {k:?} vs {first:?}");
        for (a, b) in k.iter().zip(&first) {
            assert!((a - b).abs() < 0.05, "{r}: keyframes at {k:?} vs {first:?}");
        }
    }
    for w in first.windows(2) {
        assert!((w[1] - w[0] - 4.0).abs() < 0.05, "keyframes every 4 s: {first:?}");
    }
    // Segments of about 4 s in a VOD playlist.
    let pl = std::fs::read_to_string(out.join("720p/index.m3u8")).unwrap();
    assert!(pl.contains("#EXT-X-PLAYLIST-TYPE:VOD") && pl.contains("#EXT-X-ENDLIST"), "{pl}");
    let durations: Vec<f64> = pl.lines().filter_map(|l| l.strip_prefix("#EXTINF:")).filter_map(|l| l.trim_end_matches(',').parse().ok()).collect();
    assert_eq!(durations.len(), 3, "{pl}");
    assert!(durations[..2].iter().all(|d| (d - 4.0).abs() < 0.1), "{durations:?}");
    // The master names every rung, and the whole ladder plays.
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(master.contains("RESOLUTION=1280x720") && master.contains("RESOLUTION=640x360") && master.contains("mp4a.40.2"), "{master}");
    ffmpeg(&["-i", out.join("master.m3u8").to_str().unwrap(), "-map", "0", "-f", "null", "-"]);
    // Poster, sprite and its map; the SD MP4 plays.
    assert!(std::fs::read(out.join("poster.jpg")).unwrap().starts_with(&[0xff, 0xd8]));
    assert!(std::fs::read(out.join("sprite.jpg")).unwrap().starts_with(&[0xff, 0xd8]));
    let vtt = std::fs::read_to_string(out.join("sprite.vtt")).unwrap();
    assert_eq!(vtt.matches("sprite.jpg#xywh=").count(), 5, "{vtt}");
    assert!(res.sd_mp4.is_some());
    ffmpeg(&["-i", out.join("sd.mp4").to_str().unwrap(), "-f", "null", "-"]);
    let sd = youke_media::probe(&out.join("sd.mp4")).unwrap();
    assert_eq!((sd.video.as_ref().unwrap().width, sd.video.as_ref().unwrap().height), (1280, 720));
    assert_eq!(sd.audio.as_ref().unwrap().sample_rate, 48_000);
}

#[test]
fn a_cancel_leaves_nothing_and_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.mp4");
    recording(&src, "640x360", 3);
    let out = dir.path().join("out");
    let cancel = AtomicBool::new(true);
    let e = transcode(&src, &out, &HlsOptions::default(), |_| {}, &cancel).unwrap_err();
    assert!(matches!(e, youke_media::MediaError::Cancelled), "{e}");
    assert!(!out.exists() && !youke_media::hls::partial_dir(&out).exists());
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    let e = transcode(&junk, &out, &HlsOptions::default(), |_| {}, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(e, youke_media::MediaError::NotMedia { .. }), "{e}");
    assert!(!out.exists());
}
