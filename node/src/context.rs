//! A node's context: its storage and identity as every service and one-shot command shares
//! them ([`NodeCtx`]: config, database, blob store, this node's writer identity, the wake-ups
//! and shared state of the running services), the data directory's lock, and [`NodeError`].
//! Low in the crate: it uses the store, the config, the document writer and the federation's
//! types, and nothing that uses it.

use crate::config::Config;
use crate::documents::{DocError, Writer};
use crate::store::{Store, StoreError, meta_get, meta_set};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;
use youke_federation::blobs::BlobError;
use youke_federation::protocol::{NodeInfo, PROTOCOL_VERSION};
use youke_federation::pull_through::Upstream;
use youke_federation::rate::RateLimiter;
use youke_federation::transfers::Transfers;
use youke_federation::transport::LinkError;
use youke_federation::BlobStore;
use youke_search::SearchError;

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
    pub pull_through: crate::pull_through::state::PullState,
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
        // The config's schedule; a runtime override is applied when the node starts serving.
        let limiter = Arc::new(RateLimiter::new(config.upload_schedule(), config.utc_offset_secs()));
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
            pull_through: Default::default(),
            revocations: youke_federation::pki::Revocations::new(),
        })
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

const LOCK_FILE: &str = "serve.lock";

/// Whether a `youke serve` holds this data directory.
pub fn is_serving(data_dir: &Path) -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open(data_dir.join(LOCK_FILE)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}
