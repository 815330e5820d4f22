//! `youke bench` and `youke demo`: the benchmarks behind docs/BENCHMARKS.md and a three-tier
//! federation on this machine ([`youke_node::harness`]).

use super::{runtime, shutdown_signal};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Media replication: one large lesson school → city against a bare quinn stream and rsync
    /// to an rsync daemon, side by side. Prints a Markdown table.
    Media {
        #[arg(long, default_value = "./youke-bench-media")]
        dir: PathBuf,
        /// Size of the test lesson in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Rounds of each variant (alternating).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// One variant of `bench media`, in a process of its own (used by `bench media`).
    #[command(hide = true)]
    MediaVariant {
        #[arg(long)]
        variant: youke_node::harness::bench::media::Variant,
        #[arg(long)]
        source: PathBuf,
        #[arg(long)]
        dir: PathBuf,
    },
    /// The search index at province scale: build rate, query latency (1 to 3 Chinese words with
    /// a facet filter), index size and peak memory. Prints a Markdown table.
    Search {
        #[arg(long, default_value = "./youke-bench-search")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        lessons: usize,
        /// Queries timed per kind.
        #[arg(long, default_value_t = 2000)]
        queries: usize,
    },
    /// The HLS ladder of a 1080p clip: youke's transcoder against the ffmpeg CLI making the
    /// same ladder, side by side. Prints a Markdown table.
    Transcode {
        #[arg(long, default_value = "./youke-bench-transcode")]
        dir: PathBuf,
        /// Length of the clip in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Rounds of each variant (alternating).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// One variant of `bench transcode`, in a process of its own.
    #[command(hide = true)]
    TranscodeVariant {
        #[arg(long)]
        variant: youke_node::harness::bench::transcode::Variant,
        #[arg(long)]
        clip: PathBuf,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Metadata federation at province scale: catch-up after offline changes, a new city
    /// joining, peak memory. Prints a Markdown table.
    Sync {
        /// Where the benchmark nodes keep their data (recreated).
        #[arg(long, default_value = "./youke-bench")]
        dir: PathBuf,
        /// Lesson documents the province holds.
        #[arg(long, default_value_t = 1_000_000)]
        catalog: u64,
        /// Changes the city makes while offline.
        #[arg(long, default_value_t = 1_000)]
        changes: u64,
        /// Documents published to a new city joining.
        #[arg(long, default_value_t = 100_000)]
        join: u64,
    },
    /// The portal under load with wrk: HLS segments against nginx serving the same files, side
    /// by side, and the lesson and search pages at 200 connections. Prints Markdown tables.
    /// Needs wrk and nginx (`make bench-portal` installs them).
    Portal {
        #[arg(long, default_value = "./youke-bench-portal")]
        dir: PathBuf,
        /// Seconds of each wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Rounds per server and connection count (alternating).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Connection counts for the segments, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "200,1000")]
        connections: Vec<u32>,
        /// Segment files of 2 MiB to rotate over (0: measure the pages only).
        #[arg(long, default_value_t = 32)]
        segments: usize,
        /// Lessons in the catalog behind the pages.
        #[arg(long, default_value_t = 10_000)]
        lessons: u64,
    },
    /// Watching a lesson held only at the province from a school two tiers below: time to first
    /// frame, and bytes fetched upstream per tier for 1 viewer and for many at once. Prints a
    /// Markdown table.
    Sharing {
        #[arg(long, default_value = "./youke-bench-sharing")]
        dir: PathBuf,
        /// Length of each test lesson in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Cold lessons timed for the first frame.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Viewers at once at the school.
        #[arg(long, default_value_t = 50)]
        viewers: usize,
        /// The shaped school link's rate, in Mbit/s.
        #[arg(long, default_value_t = 20)]
        link_mbit: u64,
        /// The shaped school link's round trip, in ms.
        #[arg(long, default_value_t = 50)]
        link_rtt_ms: u64,
        /// Lessons in the shared catalog a new school receives (0: leave that part out).
        #[arg(long, default_value_t = 200_000)]
        catalog: u64,
        /// Lessons changed at the province while that school is offline.
        #[arg(long, default_value_t = 1000)]
        changes: u64,
        /// Keep the nodes' data directories afterwards, for inspection.
        #[arg(long)]
        keep: bool,
    },
    /// Bursts of sign-ins, each attempt from its own loopback address, against a `youke serve`
    /// process: its memory (idle, peak, after), open files, answers, and the lesson page's
    /// latency meanwhile. Prints a Markdown table. Linux, as root or the owner of the process.
    Signin {
        #[arg(long, default_value = "./youke-bench-signin")]
        dir: PathBuf,
        /// Attempts per burst, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,200,500")]
        bursts: Vec<u32>,
        /// Rounds of each burst size.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds to wait after the last burst before the last memory reading (the password
        /// workers give their memory back after 20 s idle).
        #[arg(long, default_value_t = 25)]
        settle_seconds: u64,
    },
}

pub fn bench(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Media { dir, size_mib, rounds } => {
        let results = youke_node::harness::bench::media::media(&youke_node::harness::bench::media::MediaBenchOptions { dir: dir.clone(), size_mib, rounds })?;
        print!("{}", youke_node::harness::bench::media::markdown(&results));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
        }
        BenchCommand::MediaVariant { variant, source, dir } => {
        let r = youke_node::harness::bench::media::run_variant(variant, &source, &dir)?;
        println!("{}", serde_json::to_string(&r)?);
        Ok(())
        }
        BenchCommand::Search { dir, lessons, queries } => {
        let report = youke_node::harness::bench::search::search(&youke_node::harness::bench::search::SearchBenchOptions { dir: dir.clone(), lessons, queries, seed: 2026 })?;
        print!("{}", report.markdown());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
        }
        BenchCommand::Transcode { dir, seconds, rounds } => {
        let results = youke_node::harness::bench::transcode::transcode(&youke_node::harness::bench::transcode::TranscodeBenchOptions { dir: dir.clone(), seconds, rounds })?;
        print!("{}", youke_node::harness::bench::transcode::markdown(&results));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
        }
        BenchCommand::TranscodeVariant { variant, clip, dir } => {
        let r = youke_node::harness::bench::transcode::run_variant(variant, &clip, &dir)?;
        println!("{}", serde_json::to_string(&r)?);
        Ok(())
        }
        BenchCommand::Portal { dir, seconds, rounds, connections, segments, lessons } => {
        let opts = youke_node::harness::bench::portal::PortalBenchOptions { dir: dir.clone(), seconds, rounds, connections, segments, segment_bytes: 2 << 20, lessons };
        let report = youke_node::harness::bench::portal::portal(&opts)?;
        print!("{}", youke_node::harness::bench::portal::markdown(&report));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
        }
        BenchCommand::Signin { dir, bursts, rounds, settle_seconds } => {
        let opts = youke_node::harness::bench::signin::SigninBenchOptions { dir: dir.clone(), bursts, rounds, settle: std::time::Duration::from_secs(settle_seconds) };
        let report = youke_node::harness::bench::signin::signin(&opts)?;
        print!("{}", youke_node::harness::bench::signin::markdown(&report));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
        }
        BenchCommand::Sharing { dir, seconds, rounds, viewers, link_mbit, link_rtt_ms, catalog, changes, keep } => runtime()?.block_on(async move {
            let opts = youke_node::harness::bench::sharing::SharingBenchOptions { dir: dir.clone(), seconds, rounds, viewers, link_mbit, link_rtt_ms, catalog, changes };
            let report = youke_node::harness::bench::sharing::sharing(opts, CancellationToken::new()).await?;
            print!("{}", report.markdown());
            if !keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(())
        }),
        BenchCommand::Sync { dir, catalog, changes, join } => runtime()?.block_on(async move {
            let cancel = CancellationToken::new();
            let report = youke_node::harness::bench::sync(youke_node::harness::bench::SyncBenchOptions { dir: dir.clone(), catalog, changes, join }, cancel).await?;
            print!("{}", report.markdown());
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }),
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the three nodes keep their data (recreated on each run).
    #[arg(long, default_value = "./youke-demo")]
    pub dir: PathBuf,
    /// Province portal port; the city uses +1 and the school +2.
    #[arg(long, default_value_t = 8380)]
    pub base_port: u16,
}

pub fn demo(args: DemoArgs) -> Result<()> {
    let DemoArgs { dir, base_port } = args;
    runtime()?.block_on(async move {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            c.cancel();
        });
        youke_node::harness::demo::run(youke_node::harness::demo::DemoOptions { dir, base_port }, cancel).await?;
        Ok(())
    })
}


