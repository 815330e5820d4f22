//! `youke bench sync`: measures metadata federation at province scale, in one process on
//! loopback QUIC, and prints a Markdown table for `docs/BENCHMARKS.md`.
//!
//! (a) A province holds `catalog` lesson documents; a city that shares `changes` of them made
//!     one change to each while offline. Measured: catch-up time from the city's restart until
//!     the province acknowledged everything, and document bytes sent against the raw size of
//!     the changes (automerge's uncompressed change encoding).
//! (b) A new city joins a province that publishes `join` collections (all in the new city's
//!     scope). Measured: time until the city holds all of them.
//! (c) Peak resident memory of the process (province and cities together).

pub mod shared_catalog;
pub mod media;
pub mod portal;
pub mod search;
pub mod sharing;
pub mod signin;
pub mod transcode;

use crate::catalog::{self, Collection};
use crate::config::Config;
use crate::documents::{self, DocError};
use crate::lessons::{self, NewLesson};
use crate::context::{NodeCtx, NodeError};
use crate::services::Node;
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;

#[derive(Debug, Clone)]
pub struct SyncBenchOptions {
    pub dir: PathBuf,
    pub catalog: u64,
    pub changes: u64,
    pub join: u64,
}

/// Rounds of (a) and of (b); the report gives the median and the range.
const ROUNDS_A: usize = 5;
const ROUNDS_B: usize = 3;

#[derive(Debug, Clone)]
pub struct SyncBenchReport {
    pub catalog: u64,
    pub changes: u64,
    /// Per round of (a).
    pub catch_up: Vec<Duration>,
    pub change_raw_bytes: Vec<u64>,
    pub wire_doc_bytes: Vec<u64>,
    pub join: u64,
    /// Per round of (b).
    pub join_time: Vec<Duration>,
    pub peak_rss_bytes: u64,
    pub build_time: Duration,
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(tier: Tier, name: &str, parent: Option<SocketAddr>) -> Config {
    Config { role: tier, name: name.into(), http: local(), quic: local(), parent: parent.map(|p| p.to_string()), ..Config::default() }
}

pub(crate) fn bar(len: u64, msg: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(ProgressStyle::with_template("{msg:28} [{bar:30}] {pos}/{len} {per_sec}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    b.set_message(msg.to_string());
    b
}

/// Commits `n` lesson documents at `ctx` in transactions of 5,000 with a progress bar: `make`
/// builds lesson `i`'s document. Returns their ids.
pub(crate) fn write_lessons(
    ctx: &NodeCtx,
    n: u64,
    label: &str,
    mut make: impl FnMut(u64) -> Result<(String, automerge::AutoCommit), NodeError>,
) -> Result<Vec<String>, NodeError> {
    let b = bar(n, label);
    let mut ids = Vec::with_capacity(n as usize);
    let mut made = 0u64;
    while made < n {
        let batch = (n - made).min(5000);
        ctx.store.write(|tx| -> Result<(), NodeError> {
            for i in made..made + batch {
                let (id, mut doc) = make(i)?;
                documents::commit(tx, &ctx.writer, &lessons::LESSONS, &mut doc)?;
                ids.push(id);
            }
            Ok(())
        })?;
        made += batch;
        b.set_position(made);
    }
    b.finish_and_clear();
    Ok(ids)
}

/// Creates `n` lessons at `ctx`, shared at `share`. Returns their ids.
pub(crate) fn make_lessons(ctx: &NodeCtx, n: u64, share: Tier, label: &str) -> Result<Vec<String>, NodeError> {
    let subjects = ["数学", "语文", "英语", "物理", "化学", "生物", "历史", "地理"];
    write_lessons(ctx, n, label, |i| {
        let id = uuid::Uuid::new_v4().to_string();
        let new = NewLesson {
            title: format!("{}第{}课", subjects[(i % 8) as usize], i),
            teacher: format!("教师{}", i % 997),
            subject: subjects[(i % 8) as usize].into(),
            grade: format!("{}年级", i % 9 + 1),
            ..NewLesson::default()
        };
        let mut doc = lessons::new_document(&ctx.writer, &id, &new)?;
        doc.put_share(share)?;
        Ok((id, doc))
    })
}

trait PutShare {
    fn put_share(&mut self, share: Tier) -> Result<(), DocError>;
}

impl PutShare for automerge::AutoCommit {
    fn put_share(&mut self, share: Tier) -> Result<(), DocError> {
        use automerge::transaction::Transactable;
        self.put(automerge::ROOT, "share_level", share.as_str())?;
        Ok(())
    }
}

fn acked_all(ctx: &NodeCtx) -> Result<bool, NodeError> {
    ctx.store.read(|c| {
        let newest = crate::store::newest_seq(c)?;
        let acked = crate::sync_state::parent(c)?.map_or(0, |p| p.acked_seq);
        Ok(acked >= newest)
    })
}

async fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<bool, NodeError>) -> Result<(), NodeError> {
    let deadline = Instant::now() + timeout;
    while !f()? {
        if Instant::now() > deadline {
            return Err(NodeError::Invalid(format!("benchmark: timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Bytes of the files under `dir`, recursively (what a data directory or an index takes).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Peak resident memory of this process (VmHWM).
pub(crate) fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `n` published collections at the province (set-up, not measured).
fn publish_collections(p: &NodeCtx, n: u64) -> Result<(), NodeError> {
    let published = bar(n, "published collections");
    let mut made = 0;
    while made < n {
        let batch = (n - made).min(5000);
        p.store.write(|tx| -> Result<(), NodeError> {
            for i in made..made + batch {
                let c = Collection {
                    id: String::new(),
                    title: format!("专辑{i}"),
                    description: String::new(),
                    lessons: Vec::new(),
                    featured: false,
                    pinned: false,
                    published: true,
                    origin_name: String::new(),
                };
                catalog::create_collection(tx, &p.writer, &c)?;
            }
            Ok(())
        })?;
        made += batch;
        published.set_position(made);
    }
    published.finish_and_clear();
    Ok(())
}

/// While the city is stopped, one change to each of its lessons (a teaching researcher's
/// rating); returns the raw bytes of those changes.
fn change_offline(c_dir: &Path, parent: std::net::SocketAddr, ids: &[String], round: usize) -> Result<u64, NodeError> {
    let mut change_raw_bytes = 0u64;
    let c = NodeCtx::open(c_dir, config(Tier::City, "市局", Some(parent)))?;
    c.store.write(|tx| -> Result<(), NodeError> {
        for id in ids {
            let Some(mut doc) = lessons::load_document(tx, &c.writer, id)? else { continue };
            let before = doc.get_heads();
            // One change: a teaching researcher's rating.
            use automerge::transaction::Transactable;
            let ratings = match documents::child(&doc, &automerge::ROOT, "ratings") {
                Some(r) => r,
                None => doc.put_object(automerge::ROOT, "ratings", automerge::ObjType::Map).map_err(DocError::from)?,
            };
            doc.put(&ratings, "市教研员", (round % 5 + 1) as i64).map_err(DocError::from)?;
            change_raw_bytes += doc.get_changes(&before).iter().map(|ch| ch.raw_bytes().len() as u64).sum::<u64>();
            documents::commit(tx, &c.writer, &lessons::LESSONS, &mut doc)?;
        }
        Ok(())
    })?;
    Ok(change_raw_bytes)
}

pub async fn sync(opts: SyncBenchOptions, cancel: CancellationToken) -> Result<SyncBenchReport, NodeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NodeError::DataDir { path, source }
    };
    if opts.dir.exists() {
        std::fs::remove_dir_all(&opts.dir).map_err(io(&opts.dir))?;
    }
    let (p_dir, c_dir, n_dir) = (opts.dir.join("province"), opts.dir.join("city"), opts.dir.join("new-city"));

    // The province's catalog, written directly (this is set-up, not measured).
    let build = Instant::now();
    {
        let p = NodeCtx::open(&p_dir, config(Tier::Province, "省中心", None))?;
        make_lessons(&p, opts.catalog, Tier::Province, "province catalog")?;
        publish_collections(&p, opts.join)?;
    }
    crate::trust::join_locally(&p_dir, &config(Tier::Province, "省中心", None), None).await?;
    let province = Node::spawn(&p_dir, config(Tier::Province, "省中心", None), cancel.child_token()).await?;
    // Measure the province in its steady state: its search index caught up with its catalog.
    let newest = province.ctx.store.read(crate::lessons::newest_lesson_seq)?;
    eprintln!("province: indexing {} lessons for search…", opts.catalog);
    wait("the province's search index", Duration::from_secs(3600), || Ok(province.index.indexed_seq() >= newest)).await?;
    let build_time = build.elapsed();

    // (a) A city shares `changes` lessons and syncs them, goes offline, changes each once.
    let ids = {
        let c = NodeCtx::open(&c_dir, config(Tier::City, "市局", Some(province.quic_addr)))?;
        make_lessons(&c, opts.changes, Tier::Province, "city lessons")?
    };
    crate::trust::join_locally(&c_dir, &config(Tier::City, "市局", Some(province.quic_addr)), Some((&province.ctx, province.quic_addr))).await?;
    let city = Node::spawn(&c_dir, config(Tier::City, "市局", Some(province.quic_addr)), cancel.child_token()).await?;
    eprintln!("city: first sync of {} lessons and {} published collections…", opts.changes, opts.join);
    wait("the city's first sync", Duration::from_secs(3600), || {
        Ok(acked_all(&city.ctx)? && city.ctx.store.read(crate::catalog::collection_count)? >= opts.join)
    })
    .await?;
    let mut city = city;
    let (mut catch_ups, mut raws, mut wires) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS_A {
        city.shutdown().await;
        let change_raw_bytes = change_offline(&c_dir, province.quic_addr, &ids, round)?;
        city = Node::spawn(&c_dir, config(Tier::City, "市局", Some(province.quic_addr)), cancel.child_token()).await?;
        let started = Instant::now();
        wait("the city's catch-up", Duration::from_secs(600), || acked_all(&city.ctx)).await?;
        catch_ups.push(started.elapsed());
        raws.push(change_raw_bytes);
        wires.push(youke_federation::counters::LinkCounters::get(&city.ctx.counters.doc_bytes_sent));
        let want = (round % 5 + 1) as f64;
        let rated = province.ctx.store.read(|c| crate::lessons::count_rated(c, want))?;
        if rated < opts.changes {
            return Err(NodeError::Invalid(format!("benchmark: the province holds {rated} of {} changes", opts.changes)));
        }
    }

    // (b) New cities join, one after another.
    let mut joins = Vec::new();
    for round in 0..ROUNDS_B {
        let dir = n_dir.join(round.to_string());
        crate::trust::join_locally(&dir, &config(Tier::City, "新市局", Some(province.quic_addr)), Some((&province.ctx, province.quic_addr))).await?;
        let new_city = Node::spawn(&dir, config(Tier::City, "新市局", Some(province.quic_addr)), cancel.child_token()).await?;
        let started = Instant::now();
        wait("the new city's full sync", Duration::from_secs(3600), || Ok(new_city.ctx.store.read(crate::catalog::collection_count)? >= opts.join)).await?;
        joins.push(started.elapsed());
        new_city.shutdown().await;
    }

    let report = SyncBenchReport {
        catalog: opts.catalog,
        changes: opts.changes,
        catch_up: catch_ups,
        change_raw_bytes: raws,
        wire_doc_bytes: wires,
        join: opts.join,
        join_time: joins,
        peak_rss_bytes: peak_rss(),
        build_time,
    };
    for n in [city, province] {
        n.shutdown().await;
    }
    Ok(report)
}

/// Median, minimum and maximum in seconds.
pub(crate) fn spread(v: &[Duration]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    let median = s.get(s.len() / 2).copied().unwrap_or(0.0);
    (median, s.first().copied().unwrap_or(0.0), s.last().copied().unwrap_or(0.0))
}

impl SyncBenchReport {
    pub fn markdown(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let (a, a_min, a_max) = spread(&self.catch_up);
        let (b, b_min, b_max) = spread(&self.join_time);
        let wire: u64 = self.wire_doc_bytes.iter().sum();
        let raw: u64 = self.change_raw_bytes.iter().sum();
        format!(
            "| measure | result | goal |\n|---|---|---|\n\
             | (a) catch-up of {changes} offline changes, province holding {catalog} lessons: median of {na} (min–max) | {a:.2} s ({a_min:.2}–{a_max:.2}) | < 2 s |\n\
             | (a) document bytes sent / raw change bytes, all rounds | {wire} / {raw} B = {ratio:.2}x | < 2x |\n\
             | (b) new city joining, {join} documents in its scope: median of {nb} (min–max) | {b:.1} s ({b_min:.1}–{b_max:.1}) | < 60 s |\n\
             | (c) peak resident memory (province and all cities in one process) | {rss:.0} MiB | < 1536 MiB |\n\
             | set-up: writing the province's catalog, starting it, indexing it for search | {build:.0} s | |\n",
            changes = self.changes,
            catalog = self.catalog,
            na = self.catch_up.len(),
            nb = self.join_time.len(),
            ratio = wire as f64 / raw.max(1) as f64,
            join = self.join,
            rss = mib(self.peak_rss_bytes),
            build = self.build_time.as_secs_f64(),
        )
    }
}
