//! `youke bench sharing`: watching a lesson held only at the province from a school two tiers
//! below, on loopback, with real nodes in this process (province, city, school) and their
//! portals. The province transcodes each lesson once; the school never holds it.
//!
//! (a) Time to first frame at the school for a cold lesson: the lesson page's player asks for
//!     the master playlist, the 720p playlist and the first 720p segment through the school's
//!     portal, which fetches them through the city from the province. Timed per lesson.
//! (b) Bytes fetched upstream per tier when 1 viewer, and when `viewers` viewers at once, watch
//!     a cold lesson's whole 720p rung at the school: what the province sent the city and what
//!     the city sent the school, against the rung's own size.

use crate::config::{Config, MediaConfig};
use crate::context::{NodeCtx, NodeError};
use crate::lessons::{Moderation, Moderator};
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
}

#[derive(Debug, Clone)]
pub struct SharingBenchReport {
    pub seconds: u32,
    /// (a), per cold lesson.
    pub first_frame: Vec<Duration>,
    /// (b): (viewers, bytes of the 720p rung with its playlists, province → city, city → school).
    pub upstream: Vec<(usize, u64, u64, u64)>,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid(format!("benchmark: {e}"))
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(dir: &Path, tier: Tier, name: &str, parent: Option<&RunningNode>, transcode: bool, cancel: &CancellationToken) -> Result<RunningNode, NodeError> {
    let config = Config {
        role: tier,
        name: name.into(),
        http: local(),
        quic: local(),
        parent: parent.map(|p| p.quic_addr.to_string()),
        media: MediaConfig { transcode },
        ..Config::default()
    };
    crate::harness::demo::start(&dir.join(tier.as_str()), config, parent, cancel).await
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
    let province = start(&opts.dir, Tier::Province, "基准省", None, true, &cancel).await?;
    let city = start(&opts.dir, Tier::City, "基准市", Some(&province), false, &cancel).await?;
    let school = start(&opts.dir, Tier::School, "基准校", Some(&city), false, &cancel).await?;

    // Cold lessons at the province: one per timed round and one per viewer count.
    let lessons = opts.rounds.max(1) + 2;
    let bar = super::bar(lessons as u64, "课程（省级转码）");
    let mut ids = Vec::new();
    for i in 0..lessons {
        let path = opts.dir.join(format!("lesson{i}.mp4"));
        let spec = youke_media::SynthSpec { width: 1280, height: 720, seconds: f64::from(opts.seconds), video_bit_rate: 2_500_000, variant: i as u32, ..youke_media::SynthSpec::small() };
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
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut ready = 0;
        for id in &ids {
            if ladder_paths(&school.ctx, id)?.is_some() {
                ready += 1;
            }
        }
        bar.set_position(ready);
        if ready == ids.len() as u64 {
            break;
        }
        if Instant::now() > deadline || cancel.is_cancelled() {
            return Err(err("the lessons did not reach the school with their ladders within 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    let base = format!("http://{}", school.http_addr);

    // (a) Time to first frame, a cold lesson each round.
    let mut first_frame = Vec::new();
    for id in &ids[..opts.rounds.max(1)] {
        let (ladder, playlist) = ladder_paths(&school.ctx, id)?.ok_or_else(|| err("no ladder"))?;
        let b = base.clone();
        let took = tokio::task::spawn_blocking(move || -> Result<Duration, NodeError> {
            let t = Instant::now();
            get(&b, &format!("{ladder}/master.m3u8"))?;
            let list = get(&b, &format!("{ladder}/{playlist}"))?;
            let first = segments(&list).into_iter().next().ok_or_else(|| err("an empty playlist"))?;
            let dir = playlist.rsplit_once('/').map_or("", |(d, _)| d);
            get(&b, &format!("{ladder}/{dir}/{first}"))?;
            Ok(t.elapsed())
        })
        .await
        .map_err(err)??;
        first_frame.push(took);
    }

    // (b) Bytes upstream per tier for 1 viewer and for `viewers` at once, each on a cold lesson.
    let sent = |n: &RunningNode| LinkCounters::get(&n.ctx.counters.blob_bytes_sent);
    let mut upstream = Vec::new();
    for (k, viewers) in [1, opts.viewers.max(1)].into_iter().enumerate() {
        let id = &ids[opts.rounds.max(1) + k];
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

    for n in [school, city, province] {
        n.shutdown().await;
    }
    Ok(SharingBenchReport { seconds: opts.seconds, first_frame, upstream })
}

impl SharingBenchReport {
    pub fn markdown(&self) -> String {
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let mut sorted: Vec<f64> = self.first_frame.iter().map(ms).collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let mut out = format!(
            "| measure | value |\n|---|---|\n| time to first frame at the school, lesson held only at the province (loopback), median of {} cold lessons ({}–{}) | {median:.0} ms |\n",
            sorted.len(),
            sorted.first().map_or(String::new(), |v| format!("{v:.0}")),
            sorted.last().map_or(String::new(), |v| format!("{v:.0} ms")),
        );
        for (viewers, rung, province, city) in &self.upstream {
            out.push_str(&format!(
                "| {viewers} viewer(s) at the school watch a {}-s lesson's 720p rung ({:.2} MiB): sent province → city / city → school | {:.2} MiB / {:.2} MiB |\n",
                self.seconds,
                mib(*rung),
                mib(*province),
                mib(*city)
            ));
        }
        out
    }
}
