//! Operating a node: its status (once, or followed with progress bars), the storage
//! forecast, backups and restores, the link's rate schedule and object storage.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use youke_federation::rate::RateSchedule;
use youke_node::{NodeCtx, status, units};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Follow the running node: refresh every second with progress bars for transfers.
    #[arg(long, conflicts_with = "json")]
    pub watch: bool,
}

pub fn status(data: &Path, args: StatusArgs) -> Result<()> {
    let StatusArgs { json, watch } = args;
    let ctx = NodeCtx::open_dir(data)?;
    if watch {
        return watch_status(&ctx);
    }
    let s = current_status(&ctx)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", status::render(&s));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// What if: recording classrooms feeding this node (B of the formula).
    #[arg(long)]
    pub classrooms: Option<f64>,
    /// What if: school days in the semester (G).
    #[arg(long)]
    pub days: Option<f64>,
    /// What if: streams recorded per lesson (D).
    #[arg(long)]
    pub streams: Option<f64>,
}

pub fn forecast(data: &Path, args: ForecastArgs) -> Result<()> {
    let ForecastArgs { json, classrooms, days, streams } = args;
    let ctx = NodeCtx::open_dir(data)?;
    let mut cfg = ctx.config.forecast.clone();
    for (v, slot, what) in [(classrooms, &mut cfg.classrooms, "--classrooms"), (days, &mut cfg.days, "--days"), (streams, &mut cfg.streams_per_lesson, "--streams")] {
        if let Some(v) = v {
            anyhow::ensure!(v.is_finite() && v > 0.0, "{what} must be a positive number, not {v}");
            *slot = v;
        }
    }
    let s = youke_node::forecast::storage(&ctx, &cfg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", youke_node::forecast::render(&s));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    pub dest: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn backup(data: &Path, args: BackupArgs) -> Result<()> {
    let BackupArgs { dest, json } = args;
    let ctx = NodeCtx::open_dir(data)?;
    let mut bar = BytesBar::new("backing up");
    let report = youke_node::backup::backup(&ctx, &dest, &mut bar)?;
    bar.0.finish_and_clear();
    print_copy_report(&report, json, &format!("backed up {:?} into {}", ctx.writer.node_name, dest.display()))
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    pub src: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn restore(data: &Path, args: RestoreArgs) -> Result<()> {
    let RestoreArgs { src, json } = args;
    let mut bar = BytesBar::new("restoring");
    let report = youke_node::backup::restore(&src, data, &mut bar)?;
    bar.0.finish_and_clear();
    print_copy_report(&report, json, &format!("restored {} into {}; start it with: youke --data {} serve", src.display(), data.display(), data.display()))
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Show the schedule in force and the rate right now.
    Show,
    /// Set the media rate schedule, e.g. "08:00-17:30 2Mbit/s, otherwise unlimited", "off" or
    /// "unlimited". Applies within a second if the node runs, and is kept across restarts.
    Rate {
        #[arg(required_unless_present = "reset")]
        schedule: Option<String>,
        /// Go back to the schedule in youke.toml.
        #[arg(long, conflicts_with = "schedule")]
        reset: bool,
    },
}

pub fn link(data: &Path, cmd: LinkCommand) -> Result<()> {
    let ctx = NodeCtx::open_dir(data)?;
    let shown = match cmd {
        LinkCommand::Show => youke_node::link_settings::show(&ctx)?,
        LinkCommand::Rate { reset: true, .. } => youke_node::link_settings::set(&ctx, None)?,
        LinkCommand::Rate { schedule, .. } => {
            let text = schedule.unwrap_or_default();
            let parsed: RateSchedule = text.parse().map_err(anyhow::Error::msg)?;
            youke_node::link_settings::set(&ctx, Some(&parsed))?
        }
    };
    println!("media rate schedule: {} (from {}; now {}; times in UTC{})", shown.upload_schedule, shown.source, shown.current_rate, shown.utc_offset);
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Write, read back and delete a small object in the bucket of [object_store].
    Check,
    /// Move the blobs on this machine's disk into the bucket of [object_store], one at a time
    /// (resumable; may run while the node serves with the same settings).
    Migrate {
        #[arg(long)]
        json: bool,
    },
}

pub fn storage(data: &Path, cmd: StorageCommand) -> Result<()> {
    match cmd {
        StorageCommand::Check => {
        let ctx = NodeCtx::open_dir(data)?;
        let at = youke_node::object_storage::check(&ctx)?;
        println!("object storage ok: {at} (wrote, read back and deleted a test object)");
        Ok(())
        }
        StorageCommand::Migrate { json } => {
        let ctx = NodeCtx::open_dir(data)?;
        let mut bar = BytesBar::new("moving to object storage");
        let r = youke_node::object_storage::migrate(&ctx, &mut bar)?;
        bar.0.finish_and_clear();
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!("moved {} blobs ({}) into {}", r.blobs_moved, youke_node::units::human_bytes(r.bytes_moved), r.remote);
        }
        Ok(())
        }
    }
}

/// A bytes progress bar for `youke backup` and `youke restore` (hidden when not a terminal).
struct BytesBar(ProgressBar);

impl BytesBar {
    fn new(what: &str) -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_string());
        BytesBar(bar)
    }
}

impl youke_node::backup::Progress for BytesBar {
    fn total(&mut self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&mut self, bytes: u64) {
        self.0.inc(bytes);
    }
}

fn print_copy_report(r: &youke_node::backup::Report, json: bool, done: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{done}");
        println!("  database    {}", units::human_bytes(r.database_bytes));
        println!("  blobs       {} ({} copied)", r.blobs, r.blobs_copied);
        println!("  files       {} ({} copied)", r.files, r.files_copied);
        println!("  copied      {}", units::human_bytes(r.bytes_copied));
    }
    Ok(())
}

/// The node's status: from the running node (with its live transfers) when it serves, else
/// read from the database.
fn current_status(ctx: &NodeCtx) -> Result<status::Status> {
    if youke_node::context::is_serving(&ctx.data_dir) {
        match fetch_status(ctx) {
            Ok(s) => return Ok(s),
            Err(e) => tracing::warn!(error = %e, "cannot ask the running node; showing what the database says"),
        }
    }
    Ok(status::collect(ctx, youke_node::context::is_serving(&ctx.data_dir))?)
}

fn fetch_status(ctx: &NodeCtx) -> Result<status::Status> {
    let mut addr = ctx.config.http;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(5))).build().into();
    let mut resp = agent.get(&format!("http://{addr}/api/v1/status")).call().with_context(|| format!("cannot reach the node's API at {addr}"))?;
    resp.body_mut().read_json().context("the node's API answered something unexpected")
}

/// `youke status --watch`: the status text above one progress bar per running transfer,
/// refreshed every second until Ctrl-C.
fn watch_status(ctx: &NodeCtx) -> Result<()> {
    use indicatif::MultiProgress;
    use std::collections::HashMap;
    if !youke_node::context::is_serving(&ctx.data_dir) {
        bail!("this node is not running; start it with `youke serve` (--watch follows a running node)");
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // Not a terminal (a log, a pipe): plain text, one snapshot a second.
        loop {
            match fetch_status(ctx) {
                Ok(s) => println!("{}", status::render(&s)),
                Err(e) => println!("{e:#}"),
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    let multi = MultiProgress::new();
    let header = multi.add(ProgressBar::new_spinner());
    header.set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    let style = ProgressStyle::with_template("{prefix:>24} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bars: HashMap<u64, ProgressBar> = HashMap::new();
    loop {
        match fetch_status(ctx) {
            Ok(s) => {
                let mut plain = s.clone();
                plain.transfers.clear();
                let mut text = status::render(&plain);
                if text.ends_with('\n') {
                    text.pop();
                }
                header.set_message(text);
                let live: Vec<u64> = s.transfers.iter().map(|t| t.id).collect();
                bars.retain(|id, bar| {
                    let keep = live.contains(id);
                    if !keep {
                        bar.finish_and_clear();
                        multi.remove(bar);
                    }
                    keep
                });
                for t in &s.transfers {
                    let bar = bars.entry(t.id).or_insert_with(|| {
                        let b = multi.add(ProgressBar::new(t.size));
                        b.set_style(style.clone());
                        let what = match t.direction {
                            youke_federation::transfers::Direction::Upload => "↑",
                            youke_federation::transfers::Direction::Receive => "↓",
                            youke_federation::transfers::Direction::Fetch => "⇣",
                            youke_federation::transfers::Direction::Serve => "⇡",
                        };
                        b.set_prefix(format!("{what} {} {}", &t.hash[..8.min(t.hash.len())], t.peer));
                        b
                    });
                    bar.set_length(t.size);
                    bar.set_position(t.done);
                }
            }
            Err(e) => header.set_message(format!("{e:#}")),
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
