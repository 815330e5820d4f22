//! The parent's side of links: accepts children's connections (bounded in all and per
//! address while unauthenticated), checks each child's hello and certificate, keeps one live
//! link per child, and serves its requests through the sync engine's parent side
//! ([`crate::sync::parent`]), blob offers ([`super::blob_stream`]) and range fetches
//! ([`super::ranges`]). Enrollment requests go to [`super::enroll`].

use super::blob_stream::{error_code, receive_into};
use super::{blocking, until_revoked};
use crate::blobs::BlobStore;
use crate::counters::LinkCounters;
use crate::hash::BlobHash;
use crate::identity::{Fingerprint, Trust};
use crate::manifest::Manifest;
use crate::pki::{self, Revocations};
use crate::protocol::{self, ErrorCode, Message, NodeInfo};
use crate::pull_through::RangeSource;
use crate::sync::parent::{self, Step};
use crate::sync::{ParentStore, Peer};
use crate::transfers::{Direction, Transfers};
use crate::transport::{LinkError, MESSAGE_TIMEOUT, certificate_refusal, is_version_mismatch, join_err, negotiated_alpn, peer_chain, read_msg, read_msg_within, version_error, write_msg};
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Concurrent connections the parent serves; more wait.
const MAX_CONNECTIONS: usize = 512;
/// Connections from one IP address that have not completed their hello (or are enrolling);
/// more are refused. Linked children do not count (many schools may share a NAT address; they
/// are bounded by [`MAX_CONNECTIONS`] and one live link per node id), so a host without a
/// certificate cannot hold more than this many handshakes open.
const MAX_PENDING_PER_IP: usize = 16;

/// One connection's place in the per-address count; released on drop.
struct IpSlot {
    counts: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl IpSlot {
    fn take(counts: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut map = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_PENDING_PER_IP {
            return None;
        }
        *n += 1;
        Some(IpSlot { counts: Arc::clone(counts), ip })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The current connection of each child, by node id.
type LiveChildren = Arc<std::sync::Mutex<std::collections::HashMap<String, Connection>>>;

fn lock_live(live: &LiveChildren) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Connection>> {
    live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The parent's side: accepts children's links and serves their requests.
pub struct ChildAcceptor {
    pub endpoint: Endpoint,
    pub local: NodeInfo,
    pub store: Arc<dyn ParentStore>,
    pub blobs: BlobStore,
    /// Largest blob accepted from a child.
    pub max_blob_size: u64,
    pub counters: Arc<LinkCounters>,
    pub transfers: Arc<Transfers>,
    /// Where ranges of blobs this node does not hold come from (its pull-through cache).
    pub ranges: Option<Arc<dyn RangeSource>>,
    /// How children are verified (the endpoint's TLS configuration follows the same mode).
    pub trust: Trust,
    /// Revoked nodes: refused at the handshake and at enrollment; a live link whose child
    /// becomes revoked is closed.
    pub revocations: Arc<Revocations>,
}

impl ChildAcceptor {
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let live: LiveChildren = Arc::default();
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> = Arc::default();
        let mut conns = JoinSet::new();
        loop {
            let incoming = tokio::select! {
                _ = cancel.cancelled() => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                i = this.endpoint.accept() => match i { Some(i) => i, None => break },
            };
            let ip = incoming.remote_address().ip();
            let Some(ip_slot) = IpSlot::take(&per_ip, ip) else {
                warn!(remote = %incoming.remote_address(), "too many unfinished handshakes from one address; refusing one");
                LinkCounters::add(&this.counters.peers_refused, 1);
                incoming.refuse();
                continue;
            };
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                warn!(remote = %incoming.remote_address(), "too many links; refusing one");
                LinkCounters::add(&this.counters.peers_refused, 1);
                incoming.refuse();
                continue;
            };
            let this = Arc::clone(&this);
            let cancel = cancel.child_token();
            let live = Arc::clone(&live);
            conns.spawn(async move {
                let remote = incoming.remote_address();
                let result = tokio::select! {
                    _ = cancel.cancelled() => Ok(()),
                    r = this.serve_connection(incoming, live, ip_slot) => r,
                };
                match result {
                    Ok(()) => {}
                    Err(LinkError::Frame(e)) => {
                        LinkCounters::add(&this.counters.peers_garbage, 1);
                        warn!(%remote, error = %e, "peer sent garbage; disconnected it");
                    }
                    Err(e) => info!(%remote, error = %e, "child link ended"),
                }
                drop(permit);
            });
        }
        conns.shutdown().await;
    }

    async fn serve_connection(self: &Arc<Self>, incoming: quinn::Incoming, live: LiveChildren, pending: IpSlot) -> Result<(), LinkError> {
        let remote = incoming.remote_address();
        let conn = match tokio::time::timeout(MESSAGE_TIMEOUT, incoming).await {
            Err(_) => return Err(LinkError::Timeout("the TLS handshake")),
            Ok(Err(e)) if is_version_mismatch(&e) => {
                warn!(%remote, "refused a node that speaks another protocol version; upgrade the older node");
                LinkCounters::add(&self.counters.peers_refused, 1);
                return Err(version_error());
            }
            Ok(Err(e)) if certificate_refusal(&e).is_some() => {
                let reason = certificate_refusal(&e).unwrap_or_default();
                warn!(%remote, %reason, "refused a node");
                LinkCounters::add(&self.counters.peers_refused, 1);
                return Err(LinkError::Pin(reason));
            }
            Ok(r) => r?,
        };
        if negotiated_alpn(&conn).as_deref() == Some(protocol::ENROLL_ALPN) {
            return self.serve_enrollment(&conn).await;
        }
        let child = self.handshake(&conn).await?;
        drop(pending);
        info!(child = %child.info.name, node_id = %child.info.node_id, addr = %child.addr, "child link up");
        // A child that reconnects (it restarted, or its address changed) replaces its old link at
        // once, rather than when that link's idle timeout finally notices: streams of the old link
        // end, and the blobs they were receiving are free to resume on the new one.
        let previous = lock_live(&live).insert(child.info.node_id.clone(), conn.clone());
        if let Some(old) = previous {
            info!(child = %child.info.name, "closing the child's previous link");
            old.close(2u32.into(), b"replaced by a newer link");
        }
        let c = child.clone();
        blocking(&self.store, move |s| s.child_link_state(&c, true)).await?;
        LinkCounters::add(&self.counters.links_from_children, 1);
        let result = tokio::select! {
            r = self.serve_streams(&conn, &child) => r,
            _ = until_revoked(&self.revocations, &child.info.node_id) => {
                warn!(child = %child.info.name, node_id = %child.info.node_id, "the child was revoked; closing its link");
                conn.close(3u32.into(), b"revoked");
                Err(LinkError::Revoked(format!("child {} ({})", child.info.name, child.info.node_id)))
            }
        };
        let was_current = {
            let mut map = lock_live(&live);
            let current = map.get(&child.info.node_id).is_some_and(|c| c.stable_id() == conn.stable_id());
            if current {
                map.remove(&child.info.node_id);
            }
            current
        };
        let c = child.clone();
        if was_current && let Err(e) = blocking(&self.store, move |s| s.child_link_state(&c, false)).await {
            warn!(error = %e, "cannot record that a child link went down");
        }
        result
    }

    async fn serve_streams(self: &Arc<Self>, conn: &Connection, child: &Peer) -> Result<(), LinkError> {
        let mut streams = JoinSet::new();
        loop {
            let (send, recv) = tokio::select! {
                s = conn.accept_bi() => s?,
                Some(_) = streams.join_next(), if !streams.is_empty() => continue,
            };
            let this = Arc::clone(self);
            let child = child.clone();
            let conn = conn.clone();
            streams.spawn(async move {
                match this.serve_stream(&child, send, recv).await {
                    Ok(()) => {}
                    // Garbage (undecodable, oversized, out of limits): the peer is broken or
                    // hostile; drop its link rather than read more from it.
                    Err(LinkError::Frame(e)) => {
                        warn!(child = %child.info.name, node_id = %child.info.node_id, remote = %child.addr, error = %e, "child sent garbage; disconnecting it");
                        LinkCounters::add(&this.counters.peers_garbage, 1);
                        conn.close(4u32.into(), b"protocol violation");
                    }
                    Err(e) => warn!(child = %child.info.name, error = %e, "request from child failed"),
                }
            });
        }
    }

    async fn handshake(&self, conn: &Connection) -> Result<Peer, LinkError> {
        let chain = peer_chain(conn);
        let cert = chain.first().map(|c| c.to_vec());
        let fingerprint = cert.as_deref().map(Fingerprint::of).unwrap_or(Fingerprint([0; 32]));
        let (mut send, mut recv) = tokio::time::timeout(MESSAGE_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| LinkError::Timeout("the hello"))??;
        let hello = match read_msg_within(&mut recv, protocol::MAX_UNAUTHENTICATED_MESSAGE).await? {
            Message::Hello(h) => h,
            other => {
                conn.close(1u32.into(), b"expected a hello");
                return Err(LinkError::Protocol(format!("expected hello, got {}", protocol::describe(&other))));
            }
        };
        let child = Peer { info: hello, fingerprint, addr: conn.remote_address() };
        let mut verdict = protocol::check_hello(&self.local, &child.info);
        if verdict.is_ok() {
            match &self.trust {
                Trust::Federation(e) => {
                    verdict = pki::check_child(&e.place, &child.info.node_id, child.info.tier, cert.as_deref()).map(|_| ());
                    if verdict.is_ok() && self.revocations.contains(&child.info.node_id) {
                        verdict = Err("this node was revoked by its parent's admin".into());
                    }
                }
                Trust::DevPinned => {
                    let id = child.info.node_id.clone();
                    if cert.is_none() {
                        verdict = Err("it presented no certificate".into());
                    } else if let Some(pin) = blocking(&self.store, move |s| s.child_pin(&id)).await?
                        && pin != fingerprint
                    {
                        verdict = Err(format!(
                            "node {} shows a different certificate than when it first linked; refusing it",
                            child.info.node_id
                        ));
                    }
                }
            }
        }
        if let Err(reason) = verdict {
            warn!(node_id = %child.info.node_id, remote = %child.addr, %reason, "refused a child");
            LinkCounters::add(&self.counters.peers_refused, 1);
            write_msg(&mut send, &Message::Refused { reason: reason.clone() }).await?;
            send.finish()?;
            let _ = send.stopped().await;
            conn.close(1u32.into(), b"refused");
            return Err(LinkError::Refused(reason));
        }
        let c = child.clone();
        blocking(&self.store, move |s| s.remember_child(&c)).await?;
        write_msg(&mut send, &Message::Welcome(self.local.clone())).await?;
        send.finish()?;
        Ok(child)
    }

    /// One request from a child: the sync engine's parent side decides what it needs
    /// ([`parent::on_request`]); store queries run on the blocking pool.
    async fn serve_stream(&self, child: &Peer, mut send: SendStream, mut recv: RecvStream) -> Result<(), LinkError> {
        let request = read_msg(&mut recv).await?;
        if let Message::PushDocs { docs, .. } = &request {
            self.counters.docs(false, docs);
        }
        let answer = match parent::on_request(request) {
            Step::Query(query) => {
                let (store, c) = (Arc::clone(&self.store), child.clone());
                tokio::task::spawn_blocking(move || parent::execute(store.as_ref(), &c, query)).await.map_err(join_err)?
            }
            Step::Answer(answer) => answer,
            Step::ReceiveBlob { hash, manifest } => return self.receive_blob(child, send, recv, hash, manifest).await,
            Step::ServeRange { hash, offset, len, manifest } => return self.serve_range(child, send, hash, offset, len, manifest).await,
        };
        if let Message::Docs { docs, .. } | Message::ReconcileRepair { docs, .. } = &answer {
            self.counters.docs(true, docs);
        }
        write_msg(&mut send, &answer).await?;
        send.finish()?;
        Ok(())
    }

    /// Receives a blob a child offers: answers how much is held, then takes the rest, checking
    /// every chunk before it is written (on a blocking thread, while the next bytes arrive).
    async fn receive_blob(&self, child: &Peer, mut send: SendStream, mut recv: RecvStream, hash: BlobHash, manifest: Manifest) -> Result<(), LinkError> {
        let size = manifest.size;
        let answer = match self.receive_blob_inner(child, &mut send, &mut recv, hash, manifest).await {
            Ok(()) => Message::BlobStored { hash },
            Err(e) => {
                warn!(child = %child.info.name, %hash, error = %e, "blob receive failed");
                let _ = recv.stop(0u32.into());
                Message::Error { code: error_code(&e), message: e.to_string() }
            }
        };
        if matches!(answer, Message::BlobStored { .. }) {
            let c = child.clone();
            if let Err(e) = blocking(&self.store, move |s| s.blob_received(&c, &hash, size)).await {
                warn!(%hash, error = %e, "cannot record a received blob");
                write_msg(&mut send, &Message::Error { code: ErrorCode::Internal, message: "the parent could not record the blob".into() }).await?;
                send.finish()?;
                return Ok(());
            }
            LinkCounters::add(&self.counters.blobs_received, 1);
        }
        write_msg(&mut send, &answer).await?;
        send.finish()?;
        Ok(())
    }

    async fn receive_blob_inner(&self, child: &Peer, send: &mut SendStream, recv: &mut RecvStream, hash: BlobHash, manifest: Manifest) -> Result<(), LinkError> {
        let size = manifest.size;
        if size > self.max_blob_size {
            return Err(LinkError::Protocol(format!("blob of {size} bytes exceeds this node's limit of {}", self.max_blob_size)));
        }
        if self.blobs.contains(&hash) {
            write_msg(send, &Message::BlobState { have: size, complete: true }).await?;
            return Ok(());
        }
        let blobs = self.blobs.clone();
        let incoming = tokio::task::spawn_blocking(move || blobs.begin_incoming(hash, manifest)).await.map_err(join_err)??;
        let have = incoming.have();
        if have > 0 {
            info!(child = %child.info.name, %hash, offset = have, size, "resuming blob receive");
        }
        write_msg(send, &Message::BlobState { have, complete: false }).await?;
        let progress = self.transfers.start(hash, Direction::Receive, &child.info.name, size, have);
        receive_into(incoming, recv, &progress, &self.counters).await.map(|_| ())
    }


}

