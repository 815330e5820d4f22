//! The `youke` command line: parses arguments and hands off to the library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use youke_federation::{NodeIdentity, Tier};
use youke_federation::rate::RateSchedule;
use youke_node::config::{Config, TrustMode};
use youke_federation::pki::Enrollment;
use youke_node::import::{import_file, share};
use youke_node::lessons::ImportMeta;
use youke_node::{Node, NodeCtx, status, units};

#[derive(Debug, Parser)]
#[command(name = "youke", version, about = "优课 Youke: share quality lesson recordings between schools, cities and provinces")]
struct Cli {
    /// The node's data directory.
    #[arg(long, global = true, env = "YOUKE_DATA", default_value = "./youke-data")]
    data: PathBuf,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format: text for people, json (one object a line) for journald or a log collector.
    #[arg(long, global = true, env = "YOUKE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
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
        /// Rate schedule for media going to the parent, e.g. 2Mbit/s or
        /// "08:00-17:30 2Mbit/s, otherwise unlimited".
        #[arg(long)]
        upload_rate: Option<String>,
        /// Overwrite an existing config file (the database and identity are kept).
        #[arg(long)]
        force: bool,
        /// Development only: self-signed certificates pinned on first contact instead of the
        /// federation PKI. Never use this in production.
        #[arg(long)]
        dev_pinned: bool,
    },
    /// Join a federation: get this node's certificates from its parent with a one-time join
    /// token (made there by `youke token create`). Creates the node if its data directory is
    /// empty; role and name come with the token.
    Enroll {
        /// The parent's federation address, HOST:PORT.
        #[arg(long)]
        parent: String,
        /// The join token (YK1…).
        #[arg(long, env = "YOUKE_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// Portal and API listen address.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Federation (QUIC/UDP) listen address.
        #[arg(long)]
        quic: Option<SocketAddr>,
    },
    /// First-boot setup of an appliance: a province is created here, a city or school joins its
    /// parent with a join token. Asks in a terminal for whatever the flags leave out.
    Setup {
        #[arg(long, value_parser = parse_tier)]
        role: Option<Tier>,
        /// A province's name (a city's or school's comes with its token).
        #[arg(long)]
        name: Option<String>,
        /// The parent's federation address, HOST:PORT (city or school).
        #[arg(long)]
        parent: Option<String>,
        /// The join token (YK1…), city or school.
        #[arg(long, env = "YOUKE_JOIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Portal and API listen address.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Federation (QUIC/UDP) listen address.
        #[arg(long)]
        quic: Option<SocketAddr>,
    },
    /// One-time join tokens for child nodes.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Portal accounts: add, list, change role, password or disabled flag. Passwords are read
    /// from standard input (one line), never from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// Revoke a child node (by node id or name): its links are closed and refused everywhere
    /// in the tree below this node.
    Revoke {
        node: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List the child nodes enrolled here, and the revocations in force.
    Children {
        #[arg(long)]
        json: bool,
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
        /// SRT subtitles for the recording (one file only). Without it, an SRT beside each
        /// recording with the same name is attached.
        #[arg(long)]
        srt: Option<PathBuf>,
        /// The lecture's language for the subtitles: zh or en (default: from the subject).
        #[arg(long)]
        language: Option<String>,
    },
    /// Attach SRT subtitles to a lesson (replacing any).
    Subtitles {
        lesson_id: String,
        file: PathBuf,
        /// The lecture's language: zh or en (default: from the subject).
        #[arg(long)]
        language: Option<String>,
    },
    /// Check a recording against the course video standard (rules V1..P1): a table, or JSON.
    Check {
        file: PathBuf,
        /// The lesson's SRT subtitles.
        #[arg(long)]
        srt: Option<PathBuf>,
        /// The lecture's language, for rule S1: zh or en.
        #[arg(long, value_parser = parse_language)]
        language: Option<youke_media::standard::Language>,
        /// Skip decoding the audio (no SNR estimate for rule A5).
        #[arg(long)]
        fast: bool,
        /// Print JSON (the probe and the report) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the search index from the database, with progress. The node must be stopped
    /// (a running node keeps its index current by itself, and rebuilds a damaged one at start).
    Reindex,
    /// Files the import folder could not import, with the reason.
    Quarantine {
        #[arg(long)]
        json: bool,
    },
    /// Background media jobs (HLS ladders): list, cancel, retry.
    #[command(subcommand)]
    Media(MediaCommand),
    /// One media job, in a process of its own (run by the node at lowered priority).
    #[command(hide = true)]
    MediaJob {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        sd_mp4: bool,
    },
    /// Share a lesson up to the city or the province (or back to the school only).
    Share {
        lesson_id: String,
        #[arg(long, value_parser = parse_tier)]
        to: Tier,
    },
    /// Show role, parent link, lesson and media counts, pending replication and transfers.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Follow the running node: refresh every second with progress bars for transfers.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
    },
    /// Storage needed for the next semester by the course standard's formula, from this node's
    /// own recordings where it has enough of them and the [forecast] assumptions otherwise.
    Forecast {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// What if: recording classrooms feeding this node (B of the formula).
        #[arg(long)]
        classrooms: Option<f64>,
        /// What if: school days in the semester (G).
        #[arg(long)]
        days: Option<f64>,
        /// What if: streams recorded per lesson (D).
        #[arg(long)]
        streams: Option<f64>,
    },
    /// Back up this node (while it runs) into DEST: a snapshot of its database, its originals,
    /// ladders, config and enrollment, and a manifest written last. Again into the same DEST
    /// copies only what is new. Keep backups as private as the node: they hold its key.
    Backup {
        dest: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup made by `youke backup` into the (empty) data directory given by --data.
    /// An interrupted restore is resumed by running it again.
    Restore {
        src: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The link to the parent: show or change its media rate schedule.
    #[command(subcommand)]
    Link(LinkCommand),
    /// Where media blobs live: check the object storage settings, move local blobs there.
    #[command(subcommand)]
    Storage(StorageCommand),
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
enum MediaCommand {
    /// List the media jobs, newest first.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running job.
    Cancel { id: i64 },
    /// Queue a failed or cancelled job again.
    Retry { id: i64 },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a join token for one child; print it last.
    Create {
        /// The child's tier: city (at a province) or school (at a city).
        #[arg(long, value_parser = parse_tier)]
        role: Tier,
        /// The child's name as it will appear in its certificate and portals.
        #[arg(long)]
        name: String,
        /// How long the token can be used, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
    },
    /// List the tokens made here, used and unused (never their secrets).
    List,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add an account; its password is read from standard input.
    Add {
        name: String,
        /// admin, teacher, expert or viewer.
        #[arg(long)]
        role: String,
        /// The name shown in the portal, e.g. 王芳 (default: the account name).
        #[arg(long, default_value = "")]
        display: String,
    },
    /// List the accounts.
    List,
    /// Change an account.
    Set {
        name: String,
        #[arg(long)]
        role: Option<String>,
        /// Read a new password from standard input (ends the account's sessions).
        #[arg(long)]
        password: bool,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
}

/// One line from standard input: a password (prompted on the terminal).
fn read_password() -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprint!("password (shown as you type; at least {} characters): ", youke_node::accounts::MIN_PASSWORD);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Write, read back and delete a small object in the bucket of [object_store].
    Check,
    /// Move the blobs on this machine's disk into the bucket of [object_store], one at a time
    /// (resumable; may run while the node serves with the same settings).
    Migrate {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LinkCommand {
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

#[derive(Debug, Subcommand)]
enum BenchCommand {
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
        variant: youke_node::bench_media::Variant,
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
        variant: youke_node::bench_transcode::Variant,
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

fn parse_language(s: &str) -> Result<youke_media::standard::Language, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "zh" | "zh-cn" | "chinese" | "中文" => Ok(youke_media::standard::Language::Chinese),
        "en" | "english" | "英文" => Ok(youke_media::standard::Language::English),
        _ => Err(format!("unknown language {s:?}: expected zh or en")),
    }
}

/// `youke init`: a node's config, database and identity (a province's root CA).
#[allow(clippy::too_many_arguments)]
fn init_node(
    data: &std::path::Path,
    role: Tier,
    name: String,
    parent: Option<String>,
    http: Option<SocketAddr>,
    quic: Option<SocketAddr>,
    upload_rate: Option<String>,
    force: bool,
    dev_pinned: bool,
) -> Result<()> {
    let path = youke_node::config::config_path(data);
    if path.exists() && !force {
        bail!("{} already exists; this node is initialized (use --force to rewrite its config)", path.display());
    }
    if let Some(r) = &upload_rate {
        r.parse::<RateSchedule>().map_err(anyhow::Error::msg)?;
    }
    if role == Tier::Province && parent.is_some() {
        bail!("a province node has no parent; drop --parent");
    }
    let mut config = Config { role, name, parent, ..Config::default() };
    config.link.upload_rate = upload_rate;
    if dev_pinned {
        config.trust = TrustMode::DevPinned;
    }
    if let Some(h) = http {
        config.http = h;
    }
    if let Some(q) = quic {
        config.quic = q;
    }
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    config.save(data)?;
    let ctx = NodeCtx::open(data, config)?;
    let federation = ctx.config.trust == TrustMode::Federation;
    if federation && role == Tier::Province && Enrollment::load(data)?.is_none() {
        let e = youke_federation::pki::create_federation(&ctx.writer.node_id, &ctx.writer.node_name)?;
        e.save(data)?;
    }
    println!("initialized {} node {:?}", ctx.writer.tier, ctx.writer.node_name);
    println!("  data        {}", data.display());
    println!("  node id     {}", ctx.writer.node_id);
    match Enrollment::load(data)? {
        Some(e) if federation => {
            println!("  place       {}", e.place);
            println!("  root CA     {}", hex::encode(e.root_hash()));
        }
        _ if federation => println!("  trust       not enrolled yet: youke --data {} enroll --parent HOST:PORT --token TOKEN", data.display()),
        _ => {
            let identity = NodeIdentity::load_or_create(data, &ctx.writer.node_id)?;
            println!("  certificate {} (development trust: pinned, not verified)", identity.fingerprint());
        }
    }
    println!("  portal      http://{}/", ctx.config.http);
    println!("  federation  {} (udp)", ctx.config.quic);
    if let Some(p) = &ctx.config.parent {
        println!("  parent      {p}");
    }
    println!("start it with: youke --data {} serve", data.display());
    Ok(())
}

/// `youke enroll`: this node's certificates from its parent, with a join token.
fn enroll_node(data: &std::path::Path, parent: &str, token: &str, http: Option<SocketAddr>, quic: Option<SocketAddr>) -> Result<()> {
    if let Some(e) = Enrollment::load(data)? {
        bail!("this node is enrolled already as {} ({}); to enroll it again, move {} away first", e.place, e.name, data.join(youke_federation::pki::ENROLLMENT_FILE).display());
    }
    let token = youke_federation::pki::JoinToken::parse(token)?;
    let mut config = Config::load(data)?;
    if config.trust == TrustMode::DevPinned {
        bail!("this node is configured for development trust (trust = \"dev-pinned\"); set trust = \"federation\" in youke.toml to enroll it");
    }
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let node_id = NodeCtx::open(data, config.clone())?.writer.node_id.clone();
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("enrolling at {parent}…"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let result = runtime()?.block_on(youke_federation::link::enroll(parent, &token, &node_id));
    spinner.finish_and_clear();
    let e = result.with_context(|| format!("enrollment at {parent} failed"))?;
    config.role = e.place.tier();
    config.name = e.name.clone();
    config.parent = Some(parent.to_string());
    if let Some(h) = http {
        config.http = h;
    }
    if let Some(q) = quic {
        config.quic = q;
    }
    config.save(data)?;
    e.save(data)?;
    println!("enrolled {} node {:?}", e.place.tier(), e.name);
    println!("  node id     {node_id}");
    println!("  place       {}", e.place);
    println!("  parent      {parent}");
    println!("  root CA     {}", hex::encode(e.root_hash()));
    println!("start it with: youke --data {} serve", data.display());
    Ok(())
}

/// `youke setup`: the appliance's first boot. A province is created here; a city or a school
/// joins its parent with a join token (its role and name come with the token). What the flags
/// leave out is asked for in a terminal; elsewhere a missing flag is an error naming it.
fn setup(
    data: &std::path::Path,
    role: Option<Tier>,
    name: Option<String>,
    parent: Option<String>,
    token: Option<String>,
    http: Option<SocketAddr>,
    quic: Option<SocketAddr>,
) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let interactive = std::io::stdin().is_terminal();
    let ask = |prompt: &str, flag: &str| -> Result<String> {
        if !interactive {
            bail!("{flag} is missing: give it, or run youke setup in a terminal to be asked");
        }
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!("no answer for {flag}");
        }
        let v = line.trim().to_string();
        if v.is_empty() {
            bail!("{flag} cannot be empty");
        }
        Ok(v)
    };
    if let Some(e) = Enrollment::load(data)? {
        bail!("this node is set up already: {} {:?}; `youke status` shows it", e.place, e.name);
    }
    let role = match role {
        Some(r) => r,
        None => parse_tier(&ask("节点角色 Role (province / city / school): ", "--role")?).map_err(anyhow::Error::msg)?,
    };
    if role == Tier::Province {
        if parent.is_some() || token.is_some() {
            bail!("a province has no parent: drop --parent and --token");
        }
        let name = match name {
            Some(n) => n,
            None => ask("省级中心名称 Name (e.g. 河北省优课中心): ", "--name")?,
        };
        return init_node(data, role, name, None, http, quic, None, false, false);
    }
    let parent = match parent {
        Some(p) => p,
        None => ask(&format!("上级节点地址 Parent's federation address ({}, HOST:PORT): ", if role == Tier::City { "the province" } else { "the city" }), "--parent")?,
    };
    let token = match token {
        Some(t) => t,
        None => ask("加入令牌 Join token (YK1…, from the parent's console or `youke token create`): ", "--token")?,
    };
    if name.is_some() {
        eprintln!("note: a {role}'s name comes with its join token; --name is not used");
    }
    enroll_node(data, &parent, &token, http, quic)?;
    let got = Config::load(data)?.role;
    if got != role {
        eprintln!("note: the token made this node a {got}, not a {role}");
    }
    Ok(())
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: many messages already quote their source.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    init_logging(cli.verbose, cli.log_format == "json", if matches!(cli.command, Command::Serve { .. }) { "info,quinn=warn,tantivy=warn" } else { "warn" });
    match cli.command {
        Command::Init { role, name, parent, http, quic, upload_rate, force, dev_pinned } => init_node(&cli.data, role, name, parent, http, quic, upload_rate, force, dev_pinned),
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
                // Under systemd (Type=notify): up once the listeners are bound; the watchdog
                // is pinged while the database answers.
                youke_node::systemd::tell(&format!("READY=1\nSTATUS=serving: portal http://{}/", node.http_addr));
                if let Some(interval) = youke_node::systemd::watchdog_interval() {
                    tokio::spawn(youke_node::systemd::watchdog(std::sync::Arc::clone(&node.ctx), interval, cancel.clone()));
                }
                shutdown_signal().await;
                tracing::info!("shutting down");
                youke_node::systemd::tell("STOPPING=1");
                node.shutdown().await;
                Ok(())
            })
        }
        Command::Enroll { parent, token, http, quic } => enroll_node(&cli.data, &parent, &token, http, quic),
        Command::Setup { role, name, parent, token, http, quic } => setup(&cli.data, role, name, parent, token, http, quic),
        Command::Token(TokenCommand::Create { role, name, expires }) => {
            let lifetime = youke_federation::pki::parse_lifetime(&expires).map_err(anyhow::Error::msg)?;
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let (token, info) = youke_node::trust::create_token(&ctx, role, &name, lifetime)?;
            println!("join token for {} {:?}, valid until {} (UTC), usable once:", info.role, info.name, youke_node::status::format_time(info.expires_at));
            println!("on the new node run: youke enroll --parent {} --token TOKEN", ctx.config.quic);
            println!("{token}");
            Ok(())
        }
        Command::User(UserCommand::Add { name, role, display }) => {
            let role: youke_node::accounts::Role = role.parse()?;
            let password = read_password()?;
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let u = ctx.store.write(|tx| youke_node::accounts::create_user(tx, &name, &display, role, &password))?;
            println!("added {} ({}, {})", u.name, u.display, u.role.as_str());
            Ok(())
        }
        Command::User(UserCommand::List) => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            for u in ctx.store.read(youke_node::accounts::list_users)? {
                println!("{:24} {:8} {}{}", u.name, u.role.as_str(), u.display, if u.disabled { "  (disabled)" } else { "" });
            }
            Ok(())
        }
        Command::User(UserCommand::Set { name, role, password, disable, enable }) => {
            let role = role.map(|r| r.parse::<youke_node::accounts::Role>()).transpose()?;
            let password = if password { Some(read_password()?) } else { None };
            let disabled = if disable { Some(true) } else if enable { Some(false) } else { None };
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let u = ctx.store.write(|tx| youke_node::accounts::update_user(tx, &name, role, password.as_deref(), disabled))?;
            println!("{} is now {}{}", u.name, u.role.as_str(), if u.disabled { ", disabled" } else { "" });
            Ok(())
        }
        Command::Token(TokenCommand::List) => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let tokens = ctx.store.read(youke_node::trust::list_tokens)?;
            let now = youke_node::store::now_ms();
            for t in tokens {
                let state = match (&t.used_by, t.expires_at < now) {
                    (Some(by), _) => format!("used by {by}"),
                    (None, true) => "expired".to_string(),
                    (None, false) => format!("unused, expires {}", youke_node::status::format_time(t.expires_at)),
                };
                println!("{}  {:8} {:24} {state}", t.id, t.role, t.name);
            }
            Ok(())
        }
        Command::Revoke { node, reason } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let r = youke_node::trust::revoke(&ctx, &node, &reason)?;
            println!("revoked {} {:?} ({}); its links close within a second here and as the revocation reaches the tree below", r.place, r.name, r.node_id);
            Ok(())
        }
        Command::Children { json } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let children = ctx.store.read(youke_node::trust::enrolled_children)?;
            let revoked = ctx.store.read(youke_node::trust::revocations)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "children": children, "revocations": revoked }))?);
                return Ok(());
            }
            for c in &children {
                println!("{}  {:24} {}{}", c.node_id, c.name, c.place, if c.revoked { "  REVOKED" } else { "" });
            }
            if children.is_empty() {
                println!("no child nodes enrolled here");
            }
            Ok(())
        }
        Command::Subtitles { lesson_id, file, language } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let lesson = youke_node::import::attach_subtitles(&ctx, &lesson_id, &bytes, language.as_deref())?;
            let cues = lesson.subtitles.as_ref().map(|s| s.cues).unwrap_or(0);
            println!("{} «{}»: {cues} subtitle cue(s) attached", lesson.id, lesson.title);
            Ok(())
        }
        Command::Import { files, title, teacher, grade, subject, knowledge, srt, language } => {
            if srt.is_some() && files.len() > 1 {
                bail!("--srt goes with one recording; for several, put each SRT beside its recording with the same name");
            }
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let meta = ImportMeta { title, teacher, grade, subject, knowledge_points: knowledge, original_name: None };
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
                    Ok(lesson) => {
                        println!("{}", lesson.id);
                        if let Some(subs) = srt.clone().or_else(|| youke_node::import::sibling_srt(file)) {
                            let attached = std::fs::read(&subs)
                                .map_err(anyhow::Error::from)
                                .and_then(|b| Ok(youke_node::import::attach_subtitles(&ctx, &lesson.id, &b, language.as_deref())?));
                            if let Err(e) = attached {
                                eprintln!("warning: {}: the lesson is imported but its subtitles are not: {e}", subs.display());
                            }
                        }
                    }
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
        Command::Check { file, srt, language, fast, json } => {
            let srt = match &srt {
                Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?),
                None => None,
            };
            let opts = youke_media::standard::CheckOptions { srt, language, measure_snr: !fast, ..Default::default() };
            let spinner = ProgressBar::new_spinner();
            spinner.set_message(format!("checking {}…", file.display()));
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let result = youke_media::standard::check_file(&file, &opts);
            spinner.finish_and_clear();
            let (probe, report) = result?;
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "file": file, "compliant": report.compliant(), "probe": probe, "report": report }))?);
            } else {
                println!("{}", file.display());
                print!("{}", report.table());
            }
            Ok(())
        }
        Command::Reindex => {
            let _lock = youke_node::context::lock_data_dir(&cli.data)?;
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let bar = ProgressBar::new(0);
            bar.set_style(ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} lessons ({per_sec}, {eta})").unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.set_message("indexing");
            let started = std::time::Instant::now();
            let n = youke_node::indexer::rebuild(&ctx, &cli.data, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            println!("search index rebuilt: {n} lessons in {:.1} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Quarantine { json } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let items = ctx.store.read(youke_node::ingest::quarantined)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if items.is_empty() {
                println!("nothing in quarantine");
            } else {
                for q in items {
                    println!("{}  {}  {}\n      {}", youke_node::status::format_time(q.at), q.name, q.reason, q.path);
                }
            }
            Ok(())
        }
        Command::Media(cmd) => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let show = |j: &youke_node::media_jobs::JobInfo| {
                let what = match j.state.as_str() {
                    "running" => format!("running {:.0}%", j.progress * 100.0),
                    "failed" => format!("failed: {}", j.error.as_deref().unwrap_or("")),
                    s => s.to_string(),
                };
                println!("{:>5}  {}  {:36}  {what}", j.id, &j.hash[..12.min(j.hash.len())], j.lesson_id.as_deref().unwrap_or("-"));
            };
            match cmd {
                MediaCommand::Jobs { json } => {
                    let jobs = ctx.store.read(youke_node::media_jobs::list)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&jobs)?);
                    } else if jobs.is_empty() {
                        println!("no media jobs");
                    } else {
                        jobs.iter().for_each(show);
                    }
                }
                MediaCommand::Cancel { id } => show(&youke_node::media_jobs::cancel(&ctx, id)?),
                MediaCommand::Retry { id } => show(&youke_node::media_jobs::retry(&ctx, id)?),
            }
            Ok(())
        }
        Command::MediaJob { input, out, sd_mp4 } => {
            let opts = youke_media::hls::HlsOptions { sd_mp4, ..Default::default() };
            let never = std::sync::atomic::AtomicBool::new(false);
            let mut last = -1.0f64;
            let hls = youke_media::hls::transcode(&input, &out, &opts, |p| {
                if p - last >= 0.01 || p >= 1.0 {
                    last = p;
                    println!("progress {p:.3}");
                }
            }, &never)?;
            let snr_db = youke_media::analyze::snr_db(&input).unwrap_or(None);
            println!("done {}", serde_json::to_string(&youke_node::media_jobs::JobResult { hls, snr_db })?);
            Ok(())
        }
        Command::Share { lesson_id, to } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let lesson = share(&ctx, &lesson_id, to)?;
            println!("{} «{}» is now shared at {} level", lesson.id, lesson.title, lesson.share_level);
            Ok(())
        }
        Command::Status { json, watch } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
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
        Command::Forecast { json, classrooms, days, streams } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
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
        Command::Backup { dest, json } => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let mut bar = BytesBar::new("backing up");
            let report = youke_node::backup::backup(&ctx, &dest, &mut bar)?;
            bar.0.finish_and_clear();
            print_copy_report(&report, json, &format!("backed up {:?} into {}", ctx.writer.node_name, dest.display()))
        }
        Command::Restore { src, json } => {
            let mut bar = BytesBar::new("restoring");
            let report = youke_node::backup::restore(&src, &cli.data, &mut bar)?;
            bar.0.finish_and_clear();
            print_copy_report(&report, json, &format!("restored {} into {}; start it with: youke --data {} serve", src.display(), cli.data.display(), cli.data.display()))
        }
        Command::Storage(StorageCommand::Check) => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let at = youke_node::storage::check(&ctx)?;
            println!("object storage ok: {at} (wrote, read back and deleted a test object)");
            Ok(())
        }
        Command::Storage(StorageCommand::Migrate { json }) => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
            let mut bar = BytesBar::new("moving to object storage");
            let r = youke_node::storage::migrate(&ctx, &mut bar)?;
            bar.0.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("moved {} blobs ({}) into {}", r.blobs_moved, youke_node::units::human_bytes(r.bytes_moved), r.remote);
            }
            Ok(())
        }
        Command::Link(cmd) => {
            let ctx = NodeCtx::open_dir(&cli.data)?;
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
        Command::Bench(BenchCommand::Media { dir, size_mib, rounds }) => {
            let results = youke_node::bench_media::media(&youke_node::bench_media::MediaBenchOptions { dir: dir.clone(), size_mib, rounds })?;
            print!("{}", youke_node::bench_media::markdown(&results));
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Command::Bench(BenchCommand::MediaVariant { variant, source, dir }) => {
            let r = youke_node::bench_media::run_variant(variant, &source, &dir)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Search { dir, lessons, queries }) => {
            let report = youke_node::bench_search::search(&youke_node::bench_search::SearchBenchOptions { dir: dir.clone(), lessons, queries, seed: 2026 })?;
            print!("{}", report.markdown());
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Command::Bench(BenchCommand::Transcode { dir, seconds, rounds }) => {
            let results = youke_node::bench_transcode::transcode(&youke_node::bench_transcode::TranscodeBenchOptions { dir: dir.clone(), seconds, rounds })?;
            print!("{}", youke_node::bench_transcode::markdown(&results));
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Command::Bench(BenchCommand::TranscodeVariant { variant, clip, dir }) => {
            let r = youke_node::bench_transcode::run_variant(variant, &clip, &dir)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Portal { dir, seconds, rounds, connections, segments, lessons }) => {
            let opts = youke_node::bench_portal::PortalBenchOptions { dir: dir.clone(), seconds, rounds, connections, segments, segment_bytes: 2 << 20, lessons };
            let report = youke_node::bench_portal::portal(&opts)?;
            print!("{}", youke_node::bench_portal::markdown(&report));
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Command::Bench(BenchCommand::Signin { dir, bursts, rounds, settle_seconds }) => {
            let opts = youke_node::bench_signin::SigninBenchOptions { dir: dir.clone(), bursts, rounds, settle: std::time::Duration::from_secs(settle_seconds) };
            let report = youke_node::bench_signin::signin(&opts)?;
            print!("{}", youke_node::bench_signin::markdown(&report));
            let _ = std::fs::remove_dir_all(&dir);
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
