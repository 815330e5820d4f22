//! The composition root: [`Node::spawn`] opens a node's context ([`crate::context`]) and runs
//! its services: link settings and revocations, media jobs, the import folder, the search
//! indexer, the HTTP portal and API, the federation endpoint (accepting children) and the
//! uplink to the parent. Services start in that order under one cancellation token and are
//! awaited on shutdown.

use crate::config::{Config, TrustMode};
use crate::context::{NodeCtx, NodeError, lock_data_dir};
use crate::replication::NodeLinkStore;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;
use youke_federation::link::{ChildAcceptor, Uplink};
use youke_federation::transport::{LinkError, bind_endpoint};
use youke_search::LessonIndex;

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

impl Node {
    /// Opens the node in `data_dir` with `config` and starts its services. Listening addresses
    /// may use port 0; the bound ones are in the returned handle. Services stop when `cancel`
    /// fires; await [`RunningNode::wait`] for them to finish.
    pub async fn spawn(data_dir: &Path, config: Config, cancel: CancellationToken) -> Result<RunningNode, NodeError> {
        std::fs::create_dir_all(data_dir).map_err(|source| NodeError::DataDir { path: data_dir.to_path_buf(), source })?;
        let lock = lock_data_dir(data_dir)?;

        let ctx = Arc::new(NodeCtx::open(data_dir, config)?);
        // The media schedule changed at runtime (`youke link rate`) outlives restarts.
        crate::link_settings::apply_override(&ctx)?;
        // No child is connected until it says hello again.
        ctx.store.write(crate::sync_state::disconnect_all)?;
        let cfg = &ctx.config;
        info!(role = %cfg.role, name = %cfg.name, node_id = %ctx.writer.node_id, data = %data_dir.display(), "starting node");

        let index_dir = data_dir.join(crate::indexer::INDEX_DIR);
        let (index, recreated) = LessonIndex::open_or_recreate(&index_dir)?;
        let index = Arc::new(index);
        if recreated {
            info!("search index will be rebuilt from the database");
        }

        let identity = crate::trust::identity(&ctx)?;
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

        // 0. Link settings, housekeeping of transfers and the cache; revocations for the links.
        tasks.spawn(crate::link_settings::run(Arc::clone(&ctx), cancel.clone()));
        tasks.spawn(crate::pull_through::housekeeping(Arc::clone(&ctx), cancel.clone()));
        tasks.spawn(crate::viewing::run(Arc::clone(&ctx), cancel.clone()));
        tasks.spawn(crate::reviewing::run(Arc::clone(&ctx), cfg.review.auto_approve, cancel.clone()));
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
                ranges: cfg.parent.as_ref().map(|_| Arc::new(crate::pull_through::CacheSource(Arc::clone(&ctx))) as Arc<dyn youke_federation::pull_through::RangeSource>),
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
            tasks.spawn(crate::pull_through::prefetch(Arc::clone(&ctx), cancel.clone()));
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
