//! The `youke` command line: parses arguments and hands off to the library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use youke_federation::{NodeIdentity, Tier};
use youke_node::config::{CONFIG_FILE, Config, parse_rate};
use youke_node::import::{ImportMeta, import_file, share};
use youke_node::{Node, NodeCtx, status};

#[derive(Debug, Parser)]
#[command(name = "youke", version, about = "优课 Youke: share quality lesson recordings between schools, cities and provinces")]
struct Cli {
    /// The node's data directory.
    #[arg(long, global = true, env = "YOUKE_DATA", default_value = "./youke-data")]
    data: PathBuf,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node: its config file, database and identity.
    Init {
        /// This node's tier.
        #[arg(long, value_parser = parse_tier)]
        role: Tier,
        /// The name shown in portals and to the parent, e.g. 石家庄市第一中学.
        #[arg(long)]
        name: String,
        /// The parent's federation address, HOST:PORT (not for a province).
        #[arg(long)]
        parent: Option<String>,
        /// Portal and API listen address.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Federation (QUIC/UDP) listen address.
        #[arg(long)]
        quic: Option<SocketAddr>,
        /// Rate limit for media going to the parent, e.g. 2Mbit/s.
        #[arg(long)]
        upload_rate: Option<String>,
        /// Overwrite an existing config file (the database and identity are kept).
        #[arg(long)]
        force: bool,
    },
    /// Run the node: portal, API, federation links.
    Serve {
        #[arg(long)]
        http: Option<SocketAddr>,
        #[arg(long)]
        quic: Option<SocketAddr>,
        #[arg(long)]
        parent: Option<String>,
    },
    /// Import recordings as new lessons; prints each new lesson's id.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        teacher: Option<String>,
        #[arg(long)]
        grade: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        /// A knowledge point (repeat for several).
        #[arg(long = "knowledge", short = 'k')]
        knowledge: Vec<String>,
    },
    /// Share a lesson up to the city or the province (or back to the school only).
    Share {
        lesson_id: String,
        #[arg(long, value_parser = parse_tier)]
        to: Tier,
    },
    /// Show role, parent link, lesson and media counts, pending replication.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks (results for docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Start a province, a city and a school on this machine with sample lessons.
    Demo {
        /// Where the three nodes keep their data (recreated on each run).
        #[arg(long, default_value = "./youke-demo")]
        dir: PathBuf,
        /// Province portal port; the city uses +1 and the school +2.
        #[arg(long, default_value_t = 8380)]
        base_port: u16,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
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
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    s.parse().map_err(|e: youke_federation::tier::UnknownTier| e.to_string())
}

fn init_logging(verbose: u8, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        1 => EnvFilter::new("youke=debug,youke_node=debug,youke_federation=debug,info"),
        _ => EnvFilter::new("trace"),
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    init_logging(cli.verbose, if matches!(cli.command, Command::Serve { .. }) { "info,quinn=warn,tantivy=warn" } else { "warn" });
    match cli.command {
        Command::Init { role, name, parent, http, quic, upload_rate, force } => {
            let path = cli.data.join(CONFIG_FILE);
            if path.exists() && !force {
                bail!("{} already exists; this node is initialized (use --force to rewrite its config)", path.display());
            }
            if let Some(r) = &upload_rate {
                parse_rate(r).map_err(anyhow::Error::msg)?;
            }
            if role == Tier::Province && parent.is_some() {
                bail!("a province node has no parent; drop --parent");
            }
            let mut config = Config { role, name, parent, ..Config::default() };
            config.link.upload_rate = upload_rate;
            if let Some(h) = http {
                config.http = h;
            }
            if let Some(q) = quic {
                config.quic = q;
            }
            std::fs::create_dir_all(&cli.data).with_context(|| format!("cannot create {}", cli.data.display()))?;
            config.save(&cli.data)?;
            let ctx = NodeCtx::open(&cli.data, config)?;
            let identity = NodeIdentity::load_or_create(&cli.data, &ctx.writer.node_id)?;
            println!("initialized {} node {:?}", ctx.writer.tier, ctx.writer.node_name);
            println!("  data        {}", cli.data.display());
            println!("  node id     {}", ctx.writer.node_id);
            println!("  certificate {}", identity.fingerprint());
            println!("  portal      http://{}/", ctx.config.http);
            println!("  federation  {} (udp)", ctx.config.quic);
            if let Some(p) = &ctx.config.parent {
                println!("  parent      {p}");
            }
            println!("start it with: youke --data {} serve", cli.data.display());
            Ok(())
        }
        Command::Serve { http, quic, parent } => {
            let mut config = Config::load(&cli.data)?;
            if let Some(h) = http {
                config.http = h;
            }
            if let Some(q) = quic {
                config.quic = q;
            }
            if parent.is_some() {
                config.parent = parent;
            }
            runtime()?.block_on(async move {
                let cancel = CancellationToken::new();
                let node = Node::spawn(&cli.data, config, cancel.clone()).await?;
                println!("youke {} node {:?} serving: portal http://{}/ federation {}", node.ctx.writer.tier, node.ctx.writer.node_name, node.http_addr, node.quic_addr);
                shutdown_signal().await;
                tracing::info!("shutting down");
                node.shutdown().await;
                Ok(())
            })
        }
        Command::Import { files, title, teacher, grade, subject, knowledge } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let meta = ImportMeta { title, teacher, grade, subject, knowledge_points: knowledge };
            let mut failed = 0;
            for file in &files {
                let bar = ProgressBar::new(0);
                bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}").unwrap_or_else(|_| ProgressStyle::default_bar()));
                bar.set_message(file.display().to_string());
                let result = import_file(&ctx, file, &meta, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                });
                bar.finish_and_clear();
                match result {
                    Ok(lesson) => println!("{}", lesson.id),
                    Err(e) => {
                        eprintln!("error: {}: {e}", file.display());
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} file(s) were not imported; nothing was stored for them", files.len());
            }
            Ok(())
        }
        Command::Share { lesson_id, to } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let lesson = share(&ctx, &lesson_id, to)?;
            println!("{} «{}» is now shared at {} level", lesson.id, lesson.title, lesson.share_level);
            Ok(())
        }
        Command::Status { json } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let s = status::collect(&ctx, youke_node::node::is_serving(&cli.data))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", status::render(&s));
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Sync { dir, catalog, changes, join }) => runtime()?.block_on(async move {
            let cancel = CancellationToken::new();
            let report = youke_node::bench::sync(youke_node::bench::SyncBenchOptions { dir: dir.clone(), catalog, changes, join }, cancel).await?;
            print!("{}", report.markdown());
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }),
        Command::Demo { dir, base_port } => runtime()?.block_on(async move {
            let cancel = CancellationToken::new();
            let c = cancel.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                c.cancel();
            });
            youke_node::demo::run(youke_node::demo::DemoOptions { dir, base_port }, cancel).await?;
            Ok(())
        }),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
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
