//! The `youke` command line: the arguments, then one handler module per area. Handlers parse
//! and print; the work is in the library.

mod bench;
mod lessons;
mod node;
mod ops;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use youke_federation::Tier;

#[derive(Debug, Parser)]
#[command(name = "youke", version, about = "优课 Youke: share quality lesson recordings between schools, cities and provinces")]
pub struct Cli {
    /// The node's data directory.
    #[arg(long, global = true, env = "YOUKE_DATA", default_value = "./youke-data")]
    pub data: PathBuf,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format: text for people, json (one object a line) for journald or a log collector.
    #[arg(long, global = true, env = "YOUKE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node: its config file, database and identity.
    Init(node::InitArgs),
    /// Join a federation: get this node's certificates from its parent with a one-time join
    /// token (made there by `youke token create`). Creates the node if its data directory is
    /// empty; role and name come with the token.
    Enroll(node::EnrollArgs),
    /// First-boot setup of an appliance: a province is created here, a city or school joins its
    /// parent with a join token. Asks in a terminal for whatever the flags leave out.
    Setup(node::SetupArgs),
    /// One-time join tokens for child nodes.
    #[command(subcommand)]
    Token(node::TokenCommand),
    /// Portal accounts: add, list, change role, password or disabled flag. Passwords are read
    /// from standard input (one line), never from the command line.
    #[command(subcommand)]
    User(node::UserCommand),
    /// Revoke a child node (by node id or name): its links are closed and refused everywhere
    /// in the tree below this node.
    Revoke(node::RevokeArgs),
    /// List the child nodes enrolled here, and the revocations in force.
    Children(node::ChildrenArgs),
    /// Run the node: portal, API, federation links.
    Serve(node::ServeArgs),
    /// Import recordings as new lessons; prints each new lesson's id.
    Import(lessons::ImportArgs),
    /// Attach SRT subtitles to a lesson (replacing any).
    Subtitles(lessons::SubtitlesArgs),
    /// Check a recording against the course video standard (rules V1..P1): a table, or JSON.
    Check(lessons::CheckArgs),
    /// Rebuild the search index from the database, with progress. The node must be stopped
    /// (a running node keeps its index current by itself, and rebuilds a damaged one at start).
    Reindex,
    /// Files the import folder could not import, with the reason.
    Quarantine(lessons::QuarantineArgs),
    /// Background media jobs (HLS ladders): list, cancel, retry.
    #[command(subcommand)]
    Media(lessons::MediaCommand),
    /// One media job, in a process of its own (run by the node at lowered priority).
    #[command(hide = true)]
    MediaJob(lessons::MediaJobArgs),
    /// Share a lesson up to the city or the province (or back to the school only).
    Share(lessons::ShareArgs),
    /// The review queue (审核) of lessons shared to this node's tier: list, approve, reject.
    #[command(subcommand)]
    Review(lessons::ReviewCommand),
    /// Take a lesson down (下架) everywhere below this node, with a reason; its copies of the
    /// media are dropped at every node but the lesson's own school.
    Takedown(lessons::TakedownArgs),
    /// Show role, parent link, lesson and media counts, pending replication and transfers.
    Status(ops::StatusArgs),
    /// Storage needed for the next semester by the course standard's formula, from this node's
    /// own recordings where it has enough of them and the [forecast] assumptions otherwise.
    Forecast(ops::ForecastArgs),
    /// Back up this node (while it runs) into DEST: a snapshot of its database, its originals,
    /// ladders, config and enrollment, and a manifest written last. Again into the same DEST
    /// copies only what is new. Keep backups as private as the node: they hold its key.
    Backup(ops::BackupArgs),
    /// Restore a backup made by `youke backup` into the (empty) data directory given by --data.
    /// An interrupted restore is resumed by running it again.
    Restore(ops::RestoreArgs),
    /// The link to the parent: show or change its media rate schedule.
    #[command(subcommand)]
    Link(ops::LinkCommand),
    /// Where media blobs live: check the object storage settings, move local blobs there.
    #[command(subcommand)]
    Storage(ops::StorageCommand),
    /// Benchmarks (results for docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Start a province, a city and a school on this machine with sample lessons.
    Demo(bench::DemoArgs),
}

/// Runs a command line.
pub fn run(cli: Cli) -> Result<()> {
    init_logging(cli.verbose, cli.log_format == "json", if matches!(cli.command, Command::Serve(_)) { "info,quinn=warn,tantivy=warn" } else { "warn" });
    match cli.command {
        Command::Init(a) => node::init(&cli.data, a),
        Command::Enroll(a) => node::enroll(&cli.data, a),
        Command::Setup(a) => node::setup(&cli.data, a),
        Command::Token(cmd) => node::token(&cli.data, cmd),
        Command::User(cmd) => node::user(&cli.data, cmd),
        Command::Revoke(a) => node::revoke(&cli.data, a),
        Command::Children(a) => node::children(&cli.data, a),
        Command::Serve(a) => node::serve(&cli.data, a),
        Command::Import(a) => lessons::import(&cli.data, a),
        Command::Subtitles(a) => lessons::subtitles(&cli.data, a),
        Command::Check(a) => lessons::check(a),
        Command::Reindex => lessons::reindex(&cli.data),
        Command::Quarantine(a) => lessons::quarantine(&cli.data, a),
        Command::Media(cmd) => lessons::media(&cli.data, cmd),
        Command::MediaJob(a) => lessons::media_job(a),
        Command::Share(a) => lessons::share(&cli.data, a),
        Command::Review(cmd) => lessons::review(&cli.data, cmd),
        Command::Takedown(a) => lessons::takedown(&cli.data, a),
        Command::Status(a) => ops::status(&cli.data, a),
        Command::Forecast(a) => ops::forecast(&cli.data, a),
        Command::Backup(a) => ops::backup(&cli.data, a),
        Command::Restore(a) => ops::restore(&cli.data, a),
        Command::Link(cmd) => ops::link(&cli.data, cmd),
        Command::Storage(cmd) => ops::storage(&cli.data, cmd),
        Command::Bench(cmd) => bench::bench(cmd),
        Command::Demo(a) => bench::demo(a),
    }
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    s.parse().map_err(|e: youke_federation::tier::UnknownTier| e.to_string())
}

fn init_logging(verbose: u8, json: bool, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        1 => EnvFilter::new("youke=debug,youke_node=debug,youke_federation=debug,info"),
        _ => EnvFilter::new("trace"),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        fmt.json().with_current_span(false).init();
    } else {
        fmt.with_target(false).with_ansi(ansi).init();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    youke_node::store::runtime().context("cannot start the async runtime")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
