//! `youke bench sharing`: watching a lesson held only at the province from a school two tiers
//! below, with real nodes in this process (province, city, two schools) and their portals. The
//! province transcodes each lesson once; the schools never hold it. One school's link to the
//! city is loopback, the other's goes through a shaped link (the fault proxy: a rate with a
//! bottleneck queue of one bandwidth-delay product, and a round-trip delay), as a school's line.
//!
//! (a) Time to first frame at each school for a cold lesson: the lesson page's player asks for
//!     the master playlist, the 720p playlist and the first 720p segment through the school's
//!     portal, which fetches them through the city from the province. Timed per lesson,
//!     alternating the two schools. The lessons carry sensor noise, so the ladder's segments
//!     have a real recording's size.
//! (b) Bytes fetched upstream per tier when 1 viewer, and when `viewers` viewers at once, watch
//!     a cold lesson's whole 720p rung at the school: what the province sent the city and what
//!     the city sent the school, against the rung's own size.
//! (c) A shared catalog ([`super::shared_catalog`]): the disk a new school's copy of it takes, the
//!     time to receive it, and what a downward catch-up costs.

use crate::config::{Config, MediaConfig};
use crate::context::{NodeCtx, NodeError};
use crate::lessons::{Moderation, Moderator};
use crate::harness::faultproxy::{FaultConfig, FaultProxy};
use crate::services::RunningNode;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;
use youke_federation::counters::LinkCounters;

#[derive(Debug, Clone)]
pub struct SharingBenchOptions {
    pub dir: PathBuf,
    /// Length of each test lesson (1280x720).
    pub seconds: u32,
    /// Cold lessons timed for (a).
    pub rounds: usize,
    /// Viewers at once for (b).
    pub viewers: usize,
    /// The shaped school link: rate in Mbit/s and round trip in ms.
    pub link_mbit: u64,
    pub link_rtt_ms: u64,
    /// Lessons in the shared catalog of (c); 0 leaves (c) out.
    pub catalog: u64,
    /// Lessons changed at the province while the new school is offline, in (c).
    pub changes: u64,
}

#[derive(Debug, Clone)]
pub struct SharingBenchReport {
    pub seconds: u32,
    /// (a), per cold lesson: through loopback, and through the shaped link.
    pub first_frame: Vec<Duration>,
    pub first_frame_shaped: Vec<Duration>,
    pub link_mbit: u64,
    pub link_rtt_ms: u64,
    /// Size of the first 720p segments timed, smallest and largest.
    pub first_segment: (u64, u64),
    /// (b): (viewers, bytes of the 720p rung with its playlists, province → city, city → school).
    pub upstream: Vec<(usize, u64, u64, u64)>,
    pub catalog: Option<super::shared_catalog::CatalogReport>,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid(format!("benchmark: {e}"))
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts a node in `dir/<dir_name>`; its parent link goes to `via` if given (a shaped link in
/// front of the parent), else straight to the parent. Only the province transcodes.
pub(super) async fn start(
    dir: &Path,
    dir_name: &str,
    tier: Tier,
    name: &str,
    parent: Option<&RunningNode>,
    via: Option<SocketAddr>,
    cancel: &CancellationToken,
) -> Result<RunningNode, NodeError> {
    let config = Config {
        role: tier,
        name: name.into(),
        http: local(),
        quic: local(),
        parent: via.or(parent.map(|p| p.quic_addr)).map(|a| a.to_string()),
        media: MediaConfig { transcode: tier == Tier::Province },
        ..Config::default()
    };
    crate::harness::demo::start(&dir.join(dir_name), config, parent, cancel).await
}

/// Times the player's first requests for a lesson at a school: master playlist, the 720p
/// playlist, the first 720p segment. Returns the time and the segment's size.
fn first_frame(base: &str, ladder: &str, playlist: &str) -> Result<(Duration, u64), NodeError> {
    let t = Instant::now();
    get(base, &format!("{ladder}/master.m3u8"))?;
    let list = get(base, &format!("{ladder}/{playlist}"))?;
    let first = segments(&list).into_iter().next().ok_or_else(|| err("an empty playlist"))?;
    let dir = playlist.rsplit_once('/').map_or("", |(d, _)| d);
    let segment = get(base, &format!("{ladder}/{dir}/{first}"))?;
    Ok((t.elapsed(), segment.len() as u64))
}

/// A GET through the school's portal: the body, or an error naming the path.
fn get(base: &str, path: &str) -> Result<Vec<u8>, NodeError> {
    let mut r = ureq::get(&format!("{base}{path}")).call().map_err(|e| err(format!("{path}: {e}")))?;
    r.body_mut().with_config().limit(1 << 30).read_to_vec().map_err(|e| err(format!("{path}: {e}")))
}

/// The files of a rung's media playlist, in order.
fn segments(playlist: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(playlist).lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

/// The ladder of a lesson as the school's portal serves it: (base path, the 720p playlist's path).
fn ladder_paths(school: &NodeCtx, id: &str) -> Result<Option<(String, String)>, NodeError> {
    let Some(l) = school.store.read(|c| crate::lessons::get(c, id))? else { return Ok(None) };
    let Some(x) = l.ladder.filter(|_| l.listed) else { return Ok(None) };
    let rung = x.hls.renditions.iter().find(|r| r.height == 720).or_else(|| x.hls.renditions.first()).map(|r| r.name.clone()).unwrap_or_default();
    Ok(Some((format!("/media/ladder/{}", x.hash), format!("{rung}/index.m3u8"))))
}

/// Watches a whole rung once: the master playlist, the rung's playlist, every segment. Returns
/// the bytes fetched.
fn watch(base: &str, ladder: &str, playlist: &str) -> Result<u64, NodeError> {
    let mut bytes = get(base, &format!("{ladder}/master.m3u8"))?.len() as u64;
    let list = get(base, &format!("{ladder}/{playlist}"))?;
    bytes += list.len() as u64;
    let dir = playlist.rsplit_once('/').map_or("", |(d, _)| d);
    for s in segments(&list) {
        bytes += get(base, &format!("{ladder}/{dir}/{s}"))?.len() as u64;
    }
    Ok(bytes)
}

pub async fn sharing(opts: SharingBenchOptions, cancel: CancellationToken) -> Result<SharingBenchReport, NodeError> {
    if opts.dir.exists() {
        std::fs::remove_dir_all(&opts.dir).map_err(|source| NodeError::DataDir { path: opts.dir.clone(), source })?;
    }
    std::fs::create_dir_all(&opts.dir).map_err(|source| NodeError::DataDir { path: opts.dir.clone(), source })?;
    let province = start(&opts.dir, "province", Tier::Province, "基准省", None, None, &cancel).await?;
    let city = start(&opts.dir, "city", Tier::City, "基准市", Some(&province), None, &cancel).await?;
    let school = start(&opts.dir, "school", Tier::School, "基准校", Some(&city), None, &cancel).await?;
    // The shaped school line: the rate each way, half the round trip each way, and a bottleneck
    // queue of one bandwidth-delay product (tail drop), as a router on the line has.
    let rate = opts.link_mbit.max(1) * 125_000;
    let link = FaultConfig {
        delay: Duration::from_millis(opts.link_rtt_ms / 2),
        bandwidth: Some(rate),
        queue: Some((rate * opts.link_rtt_ms / 1000).max(64 * 1024)),
        ..FaultConfig::default()
    };
    let line = FaultProxy::start(city.quic_addr, link, 21).await.map_err(err)?;
    let shaped = start(&opts.dir, "school-shaped", Tier::School, "基准校（限速）", Some(&city), Some(line.addr()), &cancel).await?;

    // Cold lessons at the province: one per school and timed round, and one per viewer count.
    let rounds = opts.rounds.max(1);
    let lessons = 2 * rounds + 2;
    let bar = super::bar(lessons as u64, "课程（省级转码）");
    let mut ids = Vec::new();
    for i in 0..lessons {
        let path = opts.dir.join(format!("lesson{i}.mp4"));
        let spec = youke_media::SynthSpec { width: 1280, height: 720, seconds: f64::from(opts.seconds), video_bit_rate: 2_500_000, variant: i as u32, tone_hz: 440.0 + 20.0 * i as f32, grain: true, ..youke_media::SynthSpec::small() };
        let p = path.clone();
        tokio::task::spawn_blocking(move || youke_media::synthesize(&p, &spec, |_| {})).await.map_err(err)??;
        let ctx = Arc::clone(&province.ctx);
        let id = tokio::task::spawn_blocking(move || -> Result<String, NodeError> {
            let meta = crate::lessons::ImportMeta { title: Some(format!("基准课{i}")), ..Default::default() };
            let l = crate::import::import_file(&ctx, &path, &meta, |_, _| {})?;
            crate::import::share(&ctx, &l.id, Tier::Province)?;
            crate::reviewing::moderate(&ctx, &l.id, &Moderation::Approve, &Moderator { user: "bench", address: "" })?;
            Ok(l.id)
        })
        .await
        .map_err(err)??;
        ids.push(id);
    }
    // Each ladder made at the province and each lesson listed at the school.
    // Noisy 720p takes the province's encoder about real time per rung, one lesson at a time.
    let deadline = Instant::now() + Duration::from_secs(600 + 10 * lessons as u64 * u64::from(opts.seconds));
    loop {
        let mut ready = 0;
        for id in &ids {
            if ladder_paths(&school.ctx, id)?.is_some() && ladder_paths(&shaped.ctx, id)?.is_some() {
                ready += 1;
            }
        }
        bar.set_position(ready);
        if ready == ids.len() as u64 {
            break;
        }
        if Instant::now() > deadline || cancel.is_cancelled() {
            return Err(err(format!("{ready} of {} lessons reached the schools with their ladders in time", ids.len())));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    let base = format!("http://{}", school.http_addr);

    // (a) Time to first frame, a cold lesson each round at each school, alternating.
    let (mut fast, mut slow, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for (k, at) in [&school, &shaped].into_iter().enumerate() {
            let (ladder, playlist) = ladder_paths(&at.ctx, &ids[2 * round + k])?.ok_or_else(|| err("no ladder"))?;
            let b = format!("http://{}", at.http_addr);
            let (took, size) = tokio::task::spawn_blocking(move || first_frame(&b, &ladder, &playlist)).await.map_err(err)??;
            if k == 0 { fast.push(took) } else { slow.push(took) }
            sizes.push(size);
        }
    }
    shaped.shutdown().await;
    drop(line);

    // (b) Bytes upstream per tier for 1 viewer and for `viewers` at once, each on a cold lesson.
    let sent = |n: &RunningNode| LinkCounters::get(&n.ctx.counters.blob_bytes_sent);
    let mut upstream = Vec::new();
    for (k, viewers) in [1, opts.viewers.max(1)].into_iter().enumerate() {
        let id = &ids[2 * rounds + k];
        let (ladder, playlist) = ladder_paths(&school.ctx, id)?.ok_or_else(|| err("no ladder"))?;
        let (p0, c0) = (sent(&province), sent(&city));
        let mut watching = Vec::new();
        for _ in 0..viewers {
            let (b, l, p) = (base.clone(), ladder.clone(), playlist.clone());
            watching.push(tokio::task::spawn_blocking(move || watch(&b, &l, &p)));
        }
        let mut rung = 0;
        for w in watching {
            rung = w.await.map_err(err)??;
        }
        upstream.push((viewers, rung, sent(&province) - p0, sent(&city) - c0));
    }

    school.shutdown().await;

    // (c) The shared catalog, with a lesson made the real way as the model of every document.
    let catalog = if opts.catalog > 0 {
        Some(super::shared_catalog::shared_catalog(&opts.dir, &province, &city, &ids[0], opts.catalog, opts.changes, &cancel).await?)
    } else {
        None
    };
    for n in [city, province] {
        n.shutdown().await;
    }
    Ok(SharingBenchReport {
        seconds: opts.seconds,
        first_frame: fast,
        first_frame_shaped: slow,
        link_mbit: opts.link_mbit,
        link_rtt_ms: opts.link_rtt_ms,
        first_segment: (sizes.iter().copied().min().unwrap_or(0), sizes.iter().copied().max().unwrap_or(0)),
        upstream,
        catalog,
    })
}

impl SharingBenchReport {
    pub fn markdown(&self) -> String {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let mut out = String::from("| measure | value |\n|---|---|\n");
        let line = format!("a {} Mbit/s link with {} ms round trip", self.link_mbit, self.link_rtt_ms);
        for (times, link) in [(&self.first_frame, "loopback"), (&self.first_frame_shaped, line.as_str())] {
            let (median, lo, hi) = super::spread(times);
            out.push_str(&format!(
                "| time to first frame at a school on {link}, lesson held only at the province, median of {} cold lessons ({:.0}–{:.0} ms) | {:.0} ms |\n",
                times.len(),
                lo * 1000.0,
                hi * 1000.0,
                median * 1000.0
            ));
        }
        out.push_str(&format!("| size of the first 720p segment, smallest–largest | {:.2}–{:.2} MiB |\n", mib(self.first_segment.0), mib(self.first_segment.1)));
        for (viewers, rung, province, city) in &self.upstream {
            out.push_str(&format!(
                "| {viewers} viewer(s) at the school watch a {}-s lesson's 720p rung ({:.2} MiB): sent province → city / city → school | {:.2} MiB / {:.2} MiB |\n",
                self.seconds,
                mib(*rung),
                mib(*province),
                mib(*city)
            ));
        }
        if let Some(c) = &self.catalog {
            out.push_str(&c.markdown());
        }
        out
    }
}
