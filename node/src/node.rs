//! The composition root: opens a node's storage ([`NodeCtx`]) and runs its services
//! ([`Node::spawn`]): the HTTP portal and API, the search indexer, the federation endpoint
//! (accepting children) and the uplink to the parent. Services start in that order under one
//! cancellation token and are awaited on shutdown.

use crate::config::{Config, TrustMode};
use crate::documents::{DocError, Writer};
use crate::replication::NodeLinkStore;
use crate::store::{Store, StoreError, meta_get, meta_set};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;
use youke_federation::blobs::BlobError;
use youke_federation::link::{ChildAcceptor, Uplink};
use youke_federation::transport::{LinkError, bind_endpoint};
use youke_federation::protocol::{NodeInfo, PROTOCOL_VERSION};
use youke_federation::pull::Upstream;
use youke_federation::rate::RateLimiter;
use youke_federation::transfers::Transfers;
use youke_federation::{BlobStore, NodeIdentity};
use youke_search::{LessonIndex, SearchError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Media(#[from] youke_media::MediaError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Identity(#[from] youke_federation::identity::IdentityError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    #[error("cannot use data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("another `youke serve` is already running on {0}; stop it first")]
    AlreadyRunning(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("no lesson with id {0}")]
    NoSuchLesson(String),
}

impl From<rusqlite::Error> for NodeError {
    fn from(e: rusqlite::Error) -> Self {
        NodeError::Store(StoreError::Sql(e))
    }
}

/// A node's storage and identity, shared by its services and by one-shot CLI commands.
pub struct NodeCtx {
    pub data_dir: PathBuf,
    pub config: Config,
    pub store: Store,
    pub blobs: BlobStore,
    pub writer: Writer,
    /// Woken when local documents or the upload queue change.
    pub wake_uplink: Arc<Notify>,
    /// Woken when lesson rows change.
    pub wake_indexer: Arc<Notify>,
    /// Set once the search index has caught up with the database since the node started
    /// (`/readyz` waits for it).
    pub index_current: std::sync::atomic::AtomicBool,
    /// Woken when documents arrive from the parent (new pinned collections to prefetch).
    pub wake_prefetch: Arc<Notify>,
    /// Woken when a media job is queued.
    pub wake_media: Arc<Notify>,
    /// What crossed this node's links since it started.
    pub counters: Arc<youke_federation::counters::LinkCounters>,
    /// Paces media going to the parent by the link's rate schedule.
    pub limiter: Arc<RateLimiter>,
    /// Blob transfers running now, with their progress.
    pub transfers: Arc<Transfers>,
    /// The parent connection while the link is up, for pull-through fetches.
    pub upstream: Arc<Upstream>,
    /// The pull-through cache's in-memory state.
    pub pull: crate::pull::PullState,
    /// Revoked node ids, mirrored from the database for the links (see [`crate::trust::watch`]).
    pub revocations: Arc<youke_federation::pki::Revocations>,
}

impl std::fmt::Debug for NodeCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCtx").field("data_dir", &self.data_dir).field("writer", &self.writer).finish_non_exhaustive()
    }
}

pub const DB_FILE: &str = "youke.db";

impl NodeCtx {
    /// Opens (creating if needed) the node's data directory with this config.
    pub fn open(data_dir: &Path, config: Config) -> Result<Self, NodeError> {
        std::fs::create_dir_all(data_dir).map_err(|source| NodeError::DataDir { path: data_dir.to_path_buf(), source })?;
        let store = Store::open(&data_dir.join(DB_FILE))?;
        let node_id = store.write(|tx| -> Result<String, StoreError> {
            if let Some(id) = meta_get(tx, "node_id")? {
                return Ok(id);
            }
            let id = uuid::Uuid::new_v4().to_string();
            meta_set(tx, "node_id", &id)?;
            Ok(id)
        })?;
        let mut blobs = BlobStore::open(data_dir.join("media"))?;
        if let Some(settings) = config.object_store_settings() {
            blobs = blobs.with_remote(youke_federation::blobs::remote::Remote::s3(&settings)?);
        } else if std::fs::read_dir(data_dir.join("media/remote")).is_ok_and(|mut d| d.next().is_some()) {
            tracing::warn!("media of this node is recorded as in object storage, but youke.toml has no [object_store]: those lessons cannot be played or sent on until it is back");
        }
        let schedule = crate::link_settings::override_of(&store)?.unwrap_or_else(|| config.upload_schedule());
        let limiter = Arc::new(RateLimiter::new(schedule, config.utc_offset_secs()));
        let writer = Writer {
            node_id,
            node_name: config.name.clone(),
            tier: config.role,
            has_parent: config.parent.is_some(),
        };
        Ok(NodeCtx {
            data_dir: data_dir.to_path_buf(),
            config,
            store,
            blobs,
            writer,
            wake_uplink: Arc::new(Notify::new()),
            wake_indexer: Arc::new(Notify::new()),
            index_current: std::sync::atomic::AtomicBool::new(false),
            wake_prefetch: Arc::new(Notify::new()),
            wake_media: Arc::new(Notify::new()),
            counters: Arc::default(),
            limiter,
            transfers: Transfers::new(),
            upstream: Upstream::new(),
            pull: Default::default(),
            revocations: youke_federation::pki::Revocations::new(),
        })
    }

    /// The identity this node's links use: its enrollment in the federation, or (development
    /// trust, or a school with no parent) a self-signed certificate.
    pub fn identity(&self) -> Result<NodeIdentity, NodeError> {
        let dev = || NodeIdentity::load_or_create(&self.data_dir, &self.writer.node_id).map_err(NodeError::from);
        if self.config.trust == TrustMode::DevPinned {
            return dev();
        }
        match youke_federation::pki::Enrollment::load(&self.data_dir).map_err(|e| NodeError::Invalid(e.to_string()))? {
            Some(e) => {
                if e.place.node_id() != self.writer.node_id || e.place.tier() != self.config.role {
                    return Err(NodeError::Invalid(format!(
                        "the enrollment in {} is for the {} node {}, but this data directory is the {} node {}; enroll it again",
                        self.data_dir.display(),
                        e.place.tier(),
                        e.place.node_id(),
                        self.config.role,
                        self.writer.node_id
                    )));
                }
                Ok(NodeIdentity::from_enrollment(e))
            }
            // A school on its own (no parent) links to nobody; it may run before enrolling.
            None if self.config.role == youke_federation::Tier::School && self.config.parent.is_none() => dev(),
            None => Err(NodeError::Invalid(crate::trust::not_enrolled(self.config.role))),
        }
    }

    /// Loads the config from the data directory and opens the node.
    pub fn open_dir(data_dir: &Path) -> Result<Self, NodeError> {
        let config = Config::load(data_dir)?;
        Self::open(data_dir, config)
    }

    pub fn node_info(&self) -> NodeInfo {
        NodeInfo {
            protocol_version: PROTOCOL_VERSION,
            node_id: self.writer.node_id.clone(),
            name: self.writer.node_name.clone(),
            tier: self.writer.tier,
        }
    }

    /// Tells the running services that local data changed.
    pub fn changed(&self) {
        self.wake_uplink.notify_one();
        self.wake_indexer.notify_one();
    }
}

/// Takes the data directory's lock, held while a node runs there: commands that must not run
/// beside a node (`youke reindex`) take it too. Released when the file is dropped.
pub fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, NodeError> {
    std::fs::create_dir_all(data_dir).map_err(|source| NodeError::DataDir { path: data_dir.to_path_buf(), source })?;
    let lock_path = data_dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|source| NodeError::DataDir { path: lock_path.clone(), source })?;
    if lock.try_lock().is_err() {
        return Err(NodeError::AlreadyRunning(data_dir.to_path_buf()));
    }
    Ok(lock)
}

/// Entry point for running a node.
#[derive(Debug)]
pub struct Node;

/// A node whose services are running.
pub struct RunningNode {
    pub ctx: Arc<NodeCtx>,
    /// The search index the node keeps up to date.
    pub index: Arc<LessonIndex>,
    pub http_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
    _lock: std::fs::File,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode").field("http", &self.http_addr).field("quic", &self.quic_addr).finish_non_exhaustive()
    }
}

const LOCK_FILE: &str = "serve.lock";

/// Whether a `youke serve` holds this data directory.
pub fn is_serving(data_dir: &Path) -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open(data_dir.join(LOCK_FILE)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

impl Node {
    /// Opens the node in `data_dir` with `config` and starts its services. Listening addresses
    /// may use port 0; the bound ones are in the returned handle. Services stop when `cancel`
    /// fires; await [`RunningNode::wait`] for them to finish.
    pub async fn spawn(data_dir: &Path, config: Config, cancel: CancellationToken) -> Result<RunningNode, NodeError> {
        std::fs::create_dir_all(data_dir).map_err(|source| NodeError::DataDir { path: data_dir.to_path_buf(), source })?;
        let lock = lock_data_dir(data_dir)?;

        let ctx = Arc::new(NodeCtx::open(data_dir, config)?);
        // No child is connected until it says hello again.
        ctx.store.write(|tx| tx.execute("UPDATE peers SET connected = 0", []).map_err(StoreError::from))?;
        let cfg = &ctx.config;
        info!(role = %cfg.role, name = %cfg.name, node_id = %ctx.writer.node_id, data = %data_dir.display(), "starting node");

        let index_dir = data_dir.join(crate::indexer::INDEX_DIR);
        let (index, recreated) = LessonIndex::open_or_recreate(&index_dir)?;
        let index = Arc::new(index);
        if recreated {
            info!("search index will be rebuilt from the database");
        }

        let identity = ctx.identity()?;
        if let Some(place) = identity.trust.place() {
            info!(%place, "federation trust: links verified up to the province's root");
        } else if cfg.trust == TrustMode::DevPinned {
            tracing::warn!("development trust mode: peers are pinned on first contact, not verified; never use this in production");
        }
        let http_listener = tokio::net::TcpListener::bind(cfg.http)
            .await
            .map_err(|source| NodeError::Listen { addr: cfg.http, source })?;
        let http_addr = http_listener.local_addr().map_err(|source| NodeError::Listen { addr: cfg.http, source })?;
        let endpoint = bind_endpoint(cfg.quic, &identity, Arc::clone(&ctx.counters)).map_err(|e| match e {
            LinkError::Io(source) => NodeError::Listen { addr: cfg.quic, source },
            other => NodeError::Link(other),
        })?;
        let quic_addr = endpoint.local_addr().map_err(|source| NodeError::Listen { addr: cfg.quic, source })?;

        let mut tasks = JoinSet::new();
        let link_store = Arc::new(NodeLinkStore::new(Arc::clone(&ctx)));

        // 0. Link settings and blob housekeeping; revocations for the links.
        tasks.spawn(crate::link_settings::run(Arc::clone(&ctx), cancel.clone()));
        tasks.spawn(crate::trust::watch(Arc::clone(&ctx), Arc::clone(&ctx.revocations), cancel.clone()));
        // 0b. Media jobs (HLS ladders), one at a time in a child process.
        if cfg.media.transcode {
            tasks.spawn(crate::media_jobs::run(Arc::clone(&ctx), cancel.clone()));
        }
        // 0c. The watched import folder.
        if let Some(dir) = cfg.watch_dir(data_dir) {
            if cfg.ftp.listen.is_some() {
                tasks.spawn(crate::ftp::serve(Arc::clone(&ctx), cfg.ftp.clone(), dir.clone(), cancel.clone()));
            }
            let pattern = cfg.import.name_pattern.as_deref().and_then(|p| p.parse().ok());
            tasks.spawn(crate::ingest::watch(Arc::clone(&ctx), dir, pattern, cancel.clone()));
        }
        // 1. Search indexer, so the portal answers with current data.
        tasks.spawn(crate::indexer::run(Arc::clone(&ctx), Arc::clone(&index), cancel.clone()));
        // 2. Portal and API.
        let app = crate::http::router(crate::http::AppState::new(Arc::clone(&ctx), Arc::clone(&index)).with_shutdown(cancel.clone()));
        // Ladder files go out by sendfile while they need no account.
        let fast = cfg.portal.anonymous_viewing.then(|| crate::http::fastpath::FastPath { ctx: Arc::clone(&ctx) });
        tasks.spawn(crate::http::server::serve(http_listener, app, cancel.clone(), fast, cfg.limits.clone()));
        info!(%http_addr, "portal listening");
        // 3. Federation: children in, parent out.
        if cfg.role.child().is_some() {
            let acceptor = ChildAcceptor {
                endpoint: endpoint.clone(),
                local: ctx.node_info(),
                store: Arc::clone(&link_store) as Arc<dyn youke_federation::sync::ParentStore>,
                blobs: ctx.blobs.clone(),
                max_blob_size: cfg.limits.max_blob_bytes,
                counters: Arc::clone(&ctx.counters),
                transfers: Arc::clone(&ctx.transfers),
                ranges: cfg.parent.as_ref().map(|_| Arc::new(crate::pull::CacheSource(Arc::clone(&ctx))) as Arc<dyn youke_federation::pull::RangeSource>),
                trust: identity.trust.clone(),
                revocations: Arc::clone(&ctx.revocations),
            };
            tasks.spawn(acceptor.run(cancel.clone()));
            info!(%quic_addr, "accepting child nodes");
        }
        if let Some(parent) = cfg.parent.clone() {
            let uplink = Uplink {
                endpoint: endpoint.clone(),
                parent_addr: parent.clone(),
                local: ctx.node_info(),
                store: Arc::clone(&link_store) as Arc<dyn youke_federation::sync::ChildStore>,
                blobs: ctx.blobs.clone(),
                wake: Arc::clone(&ctx.wake_uplink),
                limiter: Arc::clone(&ctx.limiter),
                counters: Arc::clone(&ctx.counters),
                transfers: Arc::clone(&ctx.transfers),
                upstream: Arc::clone(&ctx.upstream),
                trust: identity.trust.clone(),
                revocations: Arc::clone(&ctx.revocations),
            };
            tasks.spawn(uplink.run(cancel.clone()));
            tasks.spawn(crate::pull::prefetch(Arc::clone(&ctx), cancel.clone()));
            info!(%parent, "linking to parent");
        }
        let ep = endpoint.clone();
        let ep_cancel = cancel.clone();
        tasks.spawn(async move {
            ep_cancel.cancelled().await;
            ep.close(0u32.into(), b"node stopping");
            ep.wait_idle().await;
        });
        Ok(RunningNode { ctx, index, http_addr, quic_addr, tasks, cancel, _lock: lock })
    }
}

impl RunningNode {
    /// Stops all services and waits for them.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.wait().await;
    }

    /// Waits until every service has ended (after the cancellation token fired).
    pub async fn wait(mut self) {
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a node service ended abnormally");
            }
        }
        info!(name = %self.ctx.writer.node_name, "node stopped");
    }
}
