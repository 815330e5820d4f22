//! `youke bench transcode`: the HLS ladder of a 1080p clip made by Youke's one-pass transcoder
//! against the ffmpeg CLI making the same ladder with the same settings (x264 preset and
//! options, rung sizes and bit rates, 4 s segments with keyframes forced at the same instants,
//! AAC 128 kbit/s, MPEG-TS segments), side by side. Each variant runs in a process of its own
//! (`youke bench transcode-variant`) so that its time, CPU and peak memory are its own; rounds
//! alternate the variants. Youke also writes the poster, the sprite and its map, which the CLI
//! command does not: the comparison is conservative.

use crate::harness::bench::media::median;
use crate::harness::bench::peak_rss;
use crate::context::NodeError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use youke_media::hls::{AUDIO_KBPS, HlsOptions, ladder_for};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Youke,
    FfmpegCli,
}

const VARIANTS: [Variant; 2] = [Variant::Youke, Variant::FfmpegCli];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantResult {
    pub variant: Variant,
    pub clip_secs: f64,
    pub secs: f64,
    pub cpu_secs: f64,
    pub peak_rss_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct TranscodeBenchOptions {
    pub dir: std::path::PathBuf,
    pub seconds: u32,
    pub rounds: usize,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid(format!("benchmark: {e}"))
}

fn cpu(who: nix::sys::resource::UsageWho) -> Result<(f64, u64), NodeError> {
    let u = nix::sys::resource::getrusage(who).map_err(err)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok((secs(u.user_time()) + secs(u.system_time()), u.max_rss() as u64 * 1024))
}

/// A 1080p25 recording like a recording host's: H.264 High at 8 Mbit/s, stereo AAC.
pub fn make_clip(path: &Path, seconds: u32) -> Result<(), NodeError> {
    if path.is_file() {
        return Ok(());
    }
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=s=1920x1080:r=25:d={seconds},noise=alls=12:allf=t"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=f=440:r=48000:d={seconds}"))
        .args(["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-b:v", "8M", "-maxrate", "8M", "-bufsize", "16M"])
        .args(["-c:a", "aac", "-b:a", "192k", "-ac", "2"])
        .arg(path)
        .output()
        .map_err(|e| err(format!("cannot run ffmpeg (installed by scripts/setup.sh): {e}")))?;
    if !out.status.success() {
        return Err(err(format!("ffmpeg could not make the clip: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

/// The ffmpeg CLI arguments that make the same ladder as [`youke_media::hls::transcode`].
pub fn ffmpeg_args(src: &Path, out: &Path, width: u32, height: u32, opts: &HlsOptions) -> Vec<String> {
    let rungs = ladder_for(width, height);
    let seg = opts.segment_secs;
    let mut a: Vec<String> = vec!["-v".into(), "error".into(), "-y".into(), "-i".into(), src.to_string_lossy().into_owned()];
    let splits: String = (0..rungs.len()).map(|i| format!("[s{i}]")).collect();
    let mut graph = format!("[0:v]split={}{splits}", rungs.len());
    for (i, r) in rungs.iter().enumerate() {
        graph.push_str(&format!(";[s{i}]scale={}:{}:flags=bicubic,format=yuv420p[o{i}]", r.width, r.height));
    }
    a.extend(["-filter_complex".into(), graph]);
    for i in 0..rungs.len() {
        a.extend(["-map".into(), format!("[o{i}]"), "-map".into(), "0:a:0".into()]);
    }
    a.extend(["-c:v", "libx264", "-preset", &opts.preset, "-profile:v", "high"].map(String::from));
    a.extend(["-force_key_frames".into(), format!("expr:gte(t,n_forced*{seg})")]);
    let fps = 25;
    let gop = seg * fps;
    a.extend(["-x264-params".into(), format!("scenecut=0:open-gop=0:keyint={gop}:min-keyint={gop}:forced-idr=1")]);
    for (i, r) in rungs.iter().enumerate() {
        a.extend([
            format!("-b:v:{i}"),
            format!("{}k", r.video_kbps),
            format!("-maxrate:v:{i}"),
            format!("{}k", r.video_kbps * 1070 / 1000),
            format!("-bufsize:v:{i}"),
            format!("{}k", r.video_kbps * 3 / 2),
            format!("-level:v:{i}"),
            format!("{}.{}", r.level / 10, r.level % 10),
        ]);
    }
    a.extend(["-c:a".into(), "aac".into(), "-b:a".into(), format!("{AUDIO_KBPS}k"), "-ar".into(), "48000".into(), "-ac".into(), "2".into()]);
    let map: Vec<String> = (0..rungs.len()).map(|i| format!("v:{i},a:{i},name:{}", rungs[i].name)).collect();
    a.extend(["-f", "hls", "-hls_time"].map(String::from));
    a.push(seg.to_string());
    a.extend(["-hls_playlist_type", "vod", "-hls_list_size", "0", "-hls_flags", "independent_segments", "-master_pl_name", "master.m3u8"].map(String::from));
    a.extend(["-hls_segment_filename".into(), out.join("%v").join("seg_%05d.ts").to_string_lossy().into_owned()]);
    a.extend(["-var_stream_map".into(), map.join(" ")]);
    a.push(out.join("%v").join("index.m3u8").to_string_lossy().into_owned());
    a
}

/// One variant, in this process (Youke) or a child (the CLI); the numbers are this process's.
pub fn run_variant(variant: Variant, clip: &Path, dir: &Path) -> Result<VariantResult, NodeError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(err)?;
    let probe = youke_media::probe(clip)?;
    let v = probe.video.as_ref().ok_or_else(|| err("the clip has no video"))?;
    let opts = HlsOptions::default();
    let out = dir.join("ladder");
    let started = Instant::now();
    let (cpu_secs, peak) = match variant {
        Variant::Youke => {
            youke_media::hls::transcode(clip, &out, &opts, |_| {}, &std::sync::atomic::AtomicBool::new(false))?;
            let (c, _) = cpu(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
            (c, peak_rss())
        }
        Variant::FfmpegCli => {
            std::fs::create_dir_all(&out).map_err(err)?;
            let status = std::process::Command::new("ffmpeg").args(ffmpeg_args(clip, &out, v.width, v.height, &opts)).status().map_err(err)?;
            if !status.success() {
                return Err(err(format!("the ffmpeg CLI failed ({status})")));
            }
            cpu(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?
        }
    };
    let secs = started.elapsed().as_secs_f64();
    // Both ladders must play: a benchmark of broken output would be worthless.
    let check = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(out.join("master.m3u8"))
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .map_err(err)?;
    if !check.status.success() {
        return Err(err(format!("the {variant:?} ladder does not play: {}", String::from_utf8_lossy(&check.stderr))));
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(VariantResult { variant, clip_secs: probe.duration_secs, secs, cpu_secs, peak_rss_bytes: peak })
}

/// Runs the rounds, each variant in a process of its own.
pub fn transcode(opts: &TranscodeBenchOptions) -> Result<Vec<VariantResult>, NodeError> {
    std::fs::create_dir_all(&opts.dir).map_err(err)?;
    let clip = opts.dir.join(format!("clip-{}s.mp4", opts.seconds));
    eprintln!("making a {} s 1080p clip…", opts.seconds);
    make_clip(&clip, opts.seconds)?;
    let exe = std::env::current_exe().map_err(err)?;
    let mut results = Vec::new();
    for round in 0..opts.rounds {
        for variant in VARIANTS {
            let name = serde_json::to_value(variant).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            eprintln!("round {}/{}: {name}…", round + 1, opts.rounds);
            let out = std::process::Command::new(&exe)
                .args(["bench", "transcode-variant", "--variant", &name, "--clip"])
                .arg(&clip)
                .arg("--dir")
                .arg(opts.dir.join("run"))
                .env("RUST_LOG", "warn")
                .output()
                .map_err(err)?;
            if !out.status.success() {
                return Err(err(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr))));
            }
            let r: VariantResult = serde_json::from_slice(&out.stdout).map_err(err)?;
            eprintln!("  {:.1} s ({:.2}x realtime)", r.secs, r.clip_secs / r.secs);
            results.push(r);
        }
    }
    Ok(results)
}

/// The results as a Markdown table, with the ratio the goal is about.
pub fn markdown(results: &[VariantResult]) -> String {
    let of = |v: Variant| results.iter().filter(|r| r.variant == v).collect::<Vec<_>>();
    let time = |v: Variant| median(of(v).iter().map(|r| r.secs).collect());
    let mut o = String::from("| variant | median time (min–max) | realtime factor | CPU s (median) | peak RSS |\n|---|---|---|---|---|\n");
    for (v, name) in VARIANTS.into_iter().zip(["youke (one pass, poster + sprite too)", "ffmpeg CLI, same ladder"]) {
        let rs = of(v);
        let lo = rs.iter().map(|r| r.secs).fold(f64::INFINITY, f64::min);
        let hi = rs.iter().map(|r| r.secs).fold(0.0, f64::max);
        let clip = rs.first().map(|r| r.clip_secs).unwrap_or(0.0);
        o.push_str(&format!(
            "| {name} | {:.1} s ({lo:.1}–{hi:.1}) | {:.2}x | {:.1} | {:.0} MiB |\n",
            time(v),
            clip / time(v).max(1e-9),
            median(rs.iter().map(|r| r.cpu_secs).collect()),
            rs.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0) as f64 / 1048576.0
        ));
    }
    o.push_str(&format!(
        "\nyouke / ffmpeg CLI time = {:.2}x (goal ≤ 1.1x); {} rounds of a {:.0} s 1080p25 clip.\n",
        time(Variant::Youke) / time(Variant::FfmpegCli).max(1e-9),
        of(Variant::Youke).len(),
        results.first().map(|r| r.clip_secs).unwrap_or(0.0)
    ));
    o
}
