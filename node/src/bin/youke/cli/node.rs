//! Making and running a node: `init`, `enroll` and `setup` (the work is in
//! [`youke_node::provision`]; here it is printed), `serve`, join tokens, portal accounts,
//! revocations and the children enrolled here.

use super::{parse_tier, runtime, shutdown_signal};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use std::net::SocketAddr;
use std::path::Path;
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;
use youke_node::config::Config;
use youke_node::provision::{self, Enrolled, Initialized, InitOptions, ProvisionError, Question, SetupDone, SetupOptions, TrustState};
use youke_node::{Node, NodeCtx};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This node's tier.
    #[arg(long, value_parser = parse_tier)]
    pub role: Tier,
    /// The name shown in portals and to the parent, e.g. 石家庄市第一中学.
    #[arg(long)]
    pub name: String,
    /// The parent's federation address, HOST:PORT (not for a province).
    #[arg(long)]
    pub parent: Option<String>,
    /// Portal and API listen address.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Federation (QUIC/UDP) listen address.
    #[arg(long)]
    pub quic: Option<SocketAddr>,
    /// Rate schedule for media going to the parent, e.g. 2Mbit/s or
    /// "08:00-17:30 2Mbit/s, otherwise unlimited".
    #[arg(long)]
    pub upload_rate: Option<String>,
    /// Overwrite an existing config file (the database and identity are kept).
    #[arg(long)]
    pub force: bool,
    /// Development only: self-signed certificates pinned on first contact instead of the
    /// federation PKI. Never use this in production.
    #[arg(long)]
    pub dev_pinned: bool,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The parent's federation address, HOST:PORT.
    #[arg(long)]
    pub parent: String,
    /// The join token (YK1…).
    #[arg(long, env = "YOUKE_JOIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Portal and API listen address.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Federation (QUIC/UDP) listen address.
    #[arg(long)]
    pub quic: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[arg(long, value_parser = parse_tier)]
    pub role: Option<Tier>,
    /// A province's name (a city's or school's comes with its token).
    #[arg(long)]
    pub name: Option<String>,
    /// The parent's federation address, HOST:PORT (city or school).
    #[arg(long)]
    pub parent: Option<String>,
    /// The join token (YK1…), city or school.
    #[arg(long, env = "YOUKE_JOIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Portal and API listen address.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Federation (QUIC/UDP) listen address.
    #[arg(long)]
    pub quic: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
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

pub fn token(data: &Path, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create { role, name, expires } => {
        let lifetime = youke_federation::pki::parse_lifetime(&expires).map_err(anyhow::Error::msg)?;
        let ctx = NodeCtx::open_dir(data)?;
        let (token, info) = youke_node::trust::create_token(&ctx, role, &name, lifetime)?;
        println!("join token for {} {:?}, valid until {} (UTC), usable once:", info.role, info.name, youke_node::status::format_time(info.expires_at));
        println!("on the new node run: youke enroll --parent {} --token TOKEN", ctx.config.quic);
        println!("{token}");
        Ok(())
        }
        TokenCommand::List => {
        let ctx = NodeCtx::open_dir(data)?;
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
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
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

pub fn user(data: &Path, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add { name, role, display } => {
        let role: youke_node::accounts::Role = role.parse()?;
        let password = read_password()?;
        let ctx = NodeCtx::open_dir(data)?;
        let u = ctx.store.write(|tx| youke_node::accounts::create_user(tx, &name, &display, role, &password))?;
        println!("added {} ({}, {})", u.name, u.display, u.role.as_str());
        Ok(())
        }
        UserCommand::List => {
        let ctx = NodeCtx::open_dir(data)?;
        for u in ctx.store.read(youke_node::accounts::list_users)? {
            println!("{:24} {:8} {}{}", u.name, u.role.as_str(), u.display, if u.disabled { "  (disabled)" } else { "" });
        }
        Ok(())
        }
        UserCommand::Set { name, role, password, disable, enable } => {
        let role = role.map(|r| r.parse::<youke_node::accounts::Role>()).transpose()?;
        let password = if password { Some(read_password()?) } else { None };
        let disabled = if disable { Some(true) } else if enable { Some(false) } else { None };
        let ctx = NodeCtx::open_dir(data)?;
        let u = ctx.store.write(|tx| youke_node::accounts::update_user(tx, &name, role, password.as_deref(), disabled))?;
        println!("{} is now {}{}", u.name, u.role.as_str(), if u.disabled { ", disabled" } else { "" });
        Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    pub node: String,
    #[arg(long, default_value = "")]
    pub reason: String,
}

pub fn revoke(data: &Path, args: RevokeArgs) -> Result<()> {
    let RevokeArgs { node, reason } = args;
    let ctx = NodeCtx::open_dir(data)?;
    let r = youke_node::trust::revoke(&ctx, &node, &reason)?;
    println!("revoked {} {:?} ({}); its links close within a second here and as the revocation reaches the tree below", r.place, r.name, r.node_id);
    Ok(())
}

#[derive(Debug, Args)]
pub struct ChildrenArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn children(data: &Path, args: ChildrenArgs) -> Result<()> {
    let ChildrenArgs { json } = args;
    let ctx = NodeCtx::open_dir(data)?;
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

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub http: Option<SocketAddr>,
    #[arg(long)]
    pub quic: Option<SocketAddr>,
    #[arg(long)]
    pub parent: Option<String>,
}

pub fn serve(data: &Path, args: ServeArgs) -> Result<()> {
    let ServeArgs { http, quic, parent } = args;
    let mut config = Config::load(data)?;
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
        let node = Node::spawn(data, config, cancel.clone()).await?;
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

pub fn init(data: &Path, a: InitArgs) -> Result<()> {
    let InitArgs { role, name, parent, http, quic, upload_rate, force, dev_pinned } = a;
    let made = provision::init(data, &InitOptions { role, name, parent, http, quic, upload_rate, force, dev_pinned })?;
    print_initialized(data, &made);
    Ok(())
}

fn print_initialized(data: &Path, n: &Initialized) {
    println!("initialized {} node {:?}", n.tier, n.name);
    println!("  data        {}", data.display());
    println!("  node id     {}", n.node_id);
    match &n.trust {
        TrustState::Enrolled { place, root_ca } => {
            println!("  place       {place}");
            println!("  root CA     {root_ca}");
        }
        TrustState::NotEnrolled => println!("  trust       not enrolled yet: youke --data {} enroll --parent HOST:PORT --token TOKEN", data.display()),
        TrustState::DevPinned { fingerprint } => println!("  certificate {fingerprint} (development trust: pinned, not verified)"),
    }
    println!("  portal      http://{}/", n.http);
    println!("  federation  {} (udp)", n.quic);
    if let Some(p) = &n.parent {
        println!("  parent      {p}");
    }
    println!("start it with: youke --data {} serve", data.display());
}

/// Runs `f` to its end with a spinner saying `what`.
fn with_spinner<T>(what: String, f: impl std::future::Future<Output = T>) -> Result<T> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(what);
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let out = runtime()?.block_on(f);
    spinner.finish_and_clear();
    Ok(out)
}

pub fn enroll(data: &Path, a: EnrollArgs) -> Result<()> {
    let EnrollArgs { parent, token, http, quic } = a;
    let e = with_spinner(format!("enrolling at {parent}…"), provision::enroll(data, &parent, &token, http, quic))??;
    print_enrolled(data, &e);
    Ok(())
}

fn print_enrolled(data: &Path, e: &Enrolled) {
    println!("enrolled {} node {:?}", e.tier, e.name);
    println!("  node id     {}", e.node_id);
    println!("  place       {}", e.place);
    println!("  parent      {}", e.parent);
    println!("  root CA     {}", e.root_ca);
    println!("start it with: youke --data {} serve", data.display());
}

/// Asks in a terminal; elsewhere a missing flag is an error naming it.
fn ask(q: Question) -> Result<String, ProvisionError> {
    use std::io::{BufRead, IsTerminal, Write};
    let refused = |m: String| ProvisionError::Refused(m);
    if !std::io::stdin().is_terminal() {
        return Err(refused(format!("{} is missing: give it, or run youke setup in a terminal to be asked", q.flag())));
    }
    eprint!("{}", q.prompt());
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => return Err(refused(format!("no answer for {}", q.flag()))),
        Ok(_) => {}
    }
    let v = line.trim().to_string();
    if v.is_empty() {
        return Err(refused(format!("{} cannot be empty", q.flag())));
    }
    Ok(v)
}

pub fn setup(data: &Path, a: SetupArgs) -> Result<()> {
    let SetupArgs { role, name, parent, token, http, quic } = a;
    // Only the exchange with the parent spins; questions come before it.
    let spin = role.is_some_and(|r| r != Tier::Province) && parent.is_some() && token.is_some();
    let opts = SetupOptions { role, name, parent, token, http, quic };
    let mut asker = ask;
    let done = if spin {
        with_spinner("joining the parent…".to_string(), provision::setup(data, opts, &mut asker))??
    } else {
        runtime()?.block_on(provision::setup(data, opts, &mut asker))?
    };
    match done {
        SetupDone::Province(n) => print_initialized(data, &n),
        SetupDone::Joined { enrolled, asked_for, name_ignored } => {
            if name_ignored {
                eprintln!("note: a {}'s name comes with its join token; --name is not used", enrolled.tier);
            }
            print_enrolled(data, &enrolled);
            if let Some(role) = asked_for {
                eprintln!("note: the token made this node a {}, not a {role}", enrolled.tier);
            }
        }
    }
    Ok(())
}
