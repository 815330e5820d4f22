//! Making a node: `youke init` (a config, database and identity; a province's root CA),
//! `youke enroll` (certificates from the parent with a one-time join token) and `youke setup`
//! (an appliance's first boot: one or the other, asking for what is missing). The command line
//! prints what these return; the questions of `setup` are asked through [`Ask`].

use crate::config::{Config, TrustMode};
use crate::context::{NodeCtx, NodeError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use youke_federation::Tier;
use youke_federation::transport::LinkError;
use youke_federation::pki::{Enrollment, JoinToken, PkiError};
use youke_federation::rate::RateSchedule;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("enrollment at {parent} failed: {source}")]
    Enroll { parent: String, source: LinkError },
    /// What the operator asked for cannot be done as asked; the message says what to change.
    #[error("{0}")]
    Refused(String),
}

impl From<crate::config::ConfigError> for ProvisionError {
    fn from(e: crate::config::ConfigError) -> Self {
        ProvisionError::Node(e.into())
    }
}

impl From<youke_federation::identity::IdentityError> for ProvisionError {
    fn from(e: youke_federation::identity::IdentityError) -> Self {
        ProvisionError::Node(e.into())
    }
}

fn refused(msg: impl Into<String>) -> ProvisionError {
    ProvisionError::Refused(msg.into())
}

/// What `youke init` is asked to make.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub role: Tier,
    pub name: String,
    pub parent: Option<String>,
    pub http: Option<SocketAddr>,
    pub quic: Option<SocketAddr>,
    pub upload_rate: Option<String>,
    /// Rewrite an existing config (the database and identity are kept).
    pub force: bool,
    /// Development trust: self-signed certificates pinned on first contact.
    pub dev_pinned: bool,
}

/// How the node's links are trusted once made.
#[derive(Debug, Clone)]
pub enum TrustState {
    /// Enrolled in the federation (a province is, from the start).
    Enrolled { place: String, root_ca: String },
    /// Federation trust, waiting for `youke enroll`.
    NotEnrolled,
    /// Development trust: this certificate fingerprint, pinned by peers on first contact.
    DevPinned { fingerprint: String },
}

/// A node as `init` made it.
#[derive(Debug, Clone)]
pub struct Initialized {
    pub tier: Tier,
    pub name: String,
    pub node_id: String,
    pub trust: TrustState,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub parent: Option<String>,
}

/// `youke init`: a node's config, database and identity (a province's root CA).
pub fn init(data: &Path, o: &InitOptions) -> Result<Initialized, ProvisionError> {
    let path = crate::config::config_path(data);
    if path.exists() && !o.force {
        return Err(refused(format!("{} already exists; this node is initialized (use --force to rewrite its config)", path.display())));
    }
    if let Some(r) = &o.upload_rate {
        r.parse::<RateSchedule>().map_err(refused)?;
    }
    if o.role == Tier::Province && o.parent.is_some() {
        return Err(refused("a province node has no parent; drop --parent"));
    }
    let mut config = Config { role: o.role, name: o.name.clone(), parent: o.parent.clone(), ..Config::default() };
    config.link.upload_rate = o.upload_rate.clone();
    if o.dev_pinned {
        config.trust = TrustMode::DevPinned;
    }
    if let Some(h) = o.http {
        config.http = h;
    }
    if let Some(q) = o.quic {
        config.quic = q;
    }
    create_dir(data)?;
    config.save(data)?;
    let ctx = NodeCtx::open(data, config)?;
    let federation = ctx.config.trust == TrustMode::Federation;
    if federation && o.role == Tier::Province && Enrollment::load(data)?.is_none() {
        youke_federation::pki::create_federation(&ctx.writer.node_id, &ctx.writer.node_name)?.save(data)?;
    }
    let trust = match Enrollment::load(data)? {
        Some(e) if federation => TrustState::Enrolled { place: e.place.to_string(), root_ca: hex::encode(e.root_hash()) },
        _ if federation => TrustState::NotEnrolled,
        _ => TrustState::DevPinned { fingerprint: youke_federation::NodeIdentity::load_or_create(data, &ctx.writer.node_id)?.fingerprint().to_string() },
    };
    Ok(Initialized {
        tier: ctx.writer.tier,
        name: ctx.writer.node_name.clone(),
        node_id: ctx.writer.node_id.clone(),
        trust,
        http: ctx.config.http,
        quic: ctx.config.quic,
        parent: ctx.config.parent.clone(),
    })
}

fn create_dir(data: &Path) -> Result<(), ProvisionError> {
    std::fs::create_dir_all(data).map_err(|source| NodeError::DataDir { path: data.to_path_buf(), source }.into())
}

/// A node as `enroll` made it.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub tier: Tier,
    pub name: String,
    pub node_id: String,
    pub place: String,
    pub parent: String,
    pub root_ca: String,
}

/// `youke enroll`: this node's certificates from its parent, with a join token; its role and
/// name come with the token. Creates the node (its database) if the data directory is empty.
pub async fn enroll(data: &Path, parent: &str, token: &str, http: Option<SocketAddr>, quic: Option<SocketAddr>) -> Result<Enrolled, ProvisionError> {
    if let Some(e) = Enrollment::load(data)? {
        let file: PathBuf = data.join(youke_federation::pki::ENROLLMENT_FILE);
        return Err(refused(format!("this node is enrolled already as {} ({}); to enroll it again, move {} away first", e.place, e.name, file.display())));
    }
    let token = JoinToken::parse(token)?;
    let mut config = Config::load(data)?;
    if config.trust == TrustMode::DevPinned {
        return Err(refused("this node is configured for development trust (trust = \"dev-pinned\"); set trust = \"federation\" in youke.toml to enroll it"));
    }
    create_dir(data)?;
    let node_id = NodeCtx::open(data, config.clone())?.writer.node_id.clone();
    let e = youke_federation::link::enroll(parent, &token, &node_id).await.map_err(|source| ProvisionError::Enroll { parent: parent.to_string(), source })?;
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
    Ok(Enrolled { tier: e.place.tier(), name: e.name.clone(), node_id, place: e.place.to_string(), parent: parent.to_string(), root_ca: hex::encode(e.root_hash()) })
}

/// What `youke setup` may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    Role,
    ProvinceName,
    /// The parent's address; the tier of the node asking.
    Parent(Tier),
    Token,
}

impl Question {
    /// The command-line flag that answers it.
    pub fn flag(self) -> &'static str {
        match self {
            Question::Role => "--role",
            Question::ProvinceName => "--name",
            Question::Parent(_) => "--parent",
            Question::Token => "--token",
        }
    }

    /// The prompt, in Chinese and English.
    pub fn prompt(self) -> String {
        match self {
            Question::Role => "节点角色 Role (province / city / school): ".into(),
            Question::ProvinceName => "省级中心名称 Name (e.g. 河北省优课中心): ".into(),
            Question::Parent(t) => format!("上级节点地址 Parent's federation address ({}, HOST:PORT): ", if t == Tier::City { "the province" } else { "the city" }),
            Question::Token => "加入令牌 Join token (YK1…, from the parent's console or `youke token create`): ".into(),
        }
    }
}

/// Answers the questions `setup` asks (a terminal prompt; an error where nobody can answer).
pub type Ask<'a> = dyn FnMut(Question) -> Result<String, ProvisionError> + 'a;

/// What `setup` was given on the command line.
#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    pub role: Option<Tier>,
    pub name: Option<String>,
    pub parent: Option<String>,
    pub token: Option<String>,
    pub http: Option<SocketAddr>,
    pub quic: Option<SocketAddr>,
}

/// What `setup` did.
#[derive(Debug, Clone)]
pub enum SetupDone {
    Province(Initialized),
    /// Joined; `asked_for` is the role asked for when the token made the node another one,
    /// `name_ignored` when a name was given although it comes with the token.
    Joined { enrolled: Enrolled, asked_for: Option<Tier>, name_ignored: bool },
}

/// `youke setup`: the appliance's first boot. A province is created here; a city or a school
/// joins its parent with a join token.
pub async fn setup(data: &Path, o: SetupOptions, ask: &mut Ask<'_>) -> Result<SetupDone, ProvisionError> {
    if let Some(e) = Enrollment::load(data)? {
        return Err(refused(format!("this node is set up already: {} {:?}; `youke status` shows it", e.place, e.name)));
    }
    let role = match o.role {
        Some(r) => r,
        None => ask(Question::Role)?.parse::<Tier>().map_err(|e| refused(e.to_string()))?,
    };
    if role == Tier::Province {
        if o.parent.is_some() || o.token.is_some() {
            return Err(refused("a province has no parent: drop --parent and --token"));
        }
        let name = match o.name {
            Some(n) => n,
            None => ask(Question::ProvinceName)?,
        };
        let opts = InitOptions { role, name, parent: None, http: o.http, quic: o.quic, upload_rate: None, force: false, dev_pinned: false };
        return Ok(SetupDone::Province(init(data, &opts)?));
    }
    let parent = match o.parent {
        Some(p) => p,
        None => ask(Question::Parent(role))?,
    };
    let token = match o.token {
        Some(t) => t,
        None => ask(Question::Token)?,
    };
    let enrolled = enroll(data, &parent, &token, o.http, o.quic).await?;
    let asked_for = (enrolled.tier != role).then_some(role);
    Ok(SetupDone::Joined { enrolled, asked_for, name_ignored: o.name.is_some() })
}
