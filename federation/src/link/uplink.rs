//! The child's side of a link: keeps one QUIC connection to the parent ([`Uplink::run`]),
//! reconnecting with backoff whenever it drops; checks the parent (hello, certificate, pin,
//! revocation); then pumps the sync engine ([`crate::sync::child`]) over the connection until
//! the session ends.

use super::{blocking, until_revoked};
use crate::blobs::{BlobError, BlobStore};
use crate::counters::LinkCounters;
use crate::identity::Trust;
use crate::pki::{Place, Revocations};
use crate::protocol::{self, Message, NodeInfo};
use crate::pull_through::Upstream;
use crate::rate::RateLimiter;
use crate::sync::child::{self, ChildSession, Failure, Lane, Output};
use crate::sync::{BlobUpload, ChildStore, LinkState, Peer};
use crate::transfers::{Direction, Transfers};
use crate::transport::{LinkError, MESSAGE_TIMEOUT, connection_error, join_err, peer_fingerprint, read_msg, request};
use super::blob_stream::send_blob_range;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The child's side of the link to its parent.
pub struct Uplink {
    pub endpoint: Endpoint,
    /// `HOST:PORT` of the parent's QUIC endpoint.
    pub parent_addr: String,
    pub local: NodeInfo,
    pub store: Arc<dyn ChildStore>,
    pub blobs: BlobStore,
    /// Notified when local documents or the upload queue change.
    pub wake: Arc<Notify>,
    /// Paces media uploads by the link's rate schedule.
    pub limiter: Arc<RateLimiter>,
    pub counters: Arc<LinkCounters>,
    pub transfers: Arc<Transfers>,
    /// Set to the parent connection while the link is up, for pull-through fetches.
    pub upstream: Arc<Upstream>,
    /// How the parent is verified (the endpoint's TLS configuration follows the same mode).
    pub trust: Trust,
    /// Revoked nodes: a revoked parent is refused, and its live link closed.
    pub revocations: Arc<Revocations>,
}

impl Uplink {
    /// Keeps the link up until `cancel` fires: connects, runs a session, and on any failure
    /// waits (1 s doubling to 15 s) and tries again.
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut backoff = crate::backoff::Backoff::for_link(crate::backoff::seed_of(&this.local.node_id));
        loop {
            this.report(LinkState::Connecting).await;
            let up_since = Arc::new(std::sync::Mutex::new(None));
            let result = tokio::select! {
                _ = cancel.cancelled() => break,
                r = Arc::clone(&this).session(cancel.child_token(), Arc::clone(&up_since)) => r,
            };
            if cancel.is_cancelled() {
                break;
            }
            let error = match result {
                Ok(()) => "link closed".to_string(),
                Err(e) => e.to_string(),
            };
            warn!(parent = %this.parent_addr, %error, "parent link down; will retry");
            this.report(LinkState::Down { error }).await;
            let since = up_since.lock().ok().and_then(|g| *g);
            let delay = backoff.next_delay(since, Instant::now());
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        this.endpoint.close(0u32.into(), b"shutting down");
    }

    async fn report(&self, state: LinkState) {
        let addr = self.parent_addr.clone();
        if let Err(e) = blocking(&self.store, move |s| s.set_link_state(&addr, &state)).await {
            warn!(error = %e, "cannot record link state");
        }
    }

    async fn connect(&self) -> Result<(Connection, Peer), LinkError> {
        let addr = tokio::net::lookup_host(&self.parent_addr)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| LinkError::Resolve(self.parent_addr.clone()))?;
        // Federation: TLS checks that the parent's certificate names the place above this node.
        let expected_parent = match &self.trust {
            Trust::DevPinned => None,
            Trust::Federation(e) => Some(e.place.parent().ok_or_else(|| LinkError::Pin("a province has no parent; remove `parent` from its config".into()))?),
        };
        let server_name = expected_parent.as_ref().map(Place::dns_name).unwrap_or_else(|| "youke-node".into());
        let conn = tokio::time::timeout(MESSAGE_TIMEOUT, self.endpoint.connect(addr, &server_name)?)
            .await
            .map_err(|_| LinkError::Timeout("the parent to answer"))?
            .map_err(connection_error)?;
        let fingerprint = peer_fingerprint(&conn)?;
        // In TLS 1.3 the parent checks this node's certificate after the handshake completed
        // here: a refusal shows as the connection closing under the hello.
        let (_s, _r, answer) = match request(&conn, &Message::Hello(self.local.clone())).await {
            Ok(a) => a,
            Err(e) => return Err(conn.close_reason().map(connection_error).unwrap_or(e)),
        };
        let info = match answer {
            Message::Welcome(info) => info,
            Message::Refused { reason } => return Err(LinkError::Refused(reason)),
            other => return Err(LinkError::Protocol(format!("expected a welcome, got {}", protocol::describe(&other)))),
        };
        if Some(info.tier) != self.local.tier.parent() {
            return Err(LinkError::Pin(format!("the node at {} is a {} node, not this node's parent tier", self.parent_addr, info.tier)));
        }
        let parent = Peer { info, fingerprint, addr };
        if let Some(expected) = &expected_parent {
            if parent.info.node_id != expected.node_id() {
                return Err(LinkError::Pin(format!("the parent says it is node {}, but its certificate names {expected}", parent.info.node_id)));
            }
            if self.revocations.contains(&parent.info.node_id) {
                conn.close(3u32.into(), b"revoked");
                return Err(LinkError::Revoked(format!("the parent {} ({})", parent.info.name, parent.info.node_id)));
            }
            let p = parent.clone();
            blocking(&self.store, move |s| s.remember_parent(&p)).await?;
            return Ok((conn, parent));
        }
        match blocking(&self.store, |s| s.known_parent()).await? {
            Some((id, fp)) if id == parent.info.node_id && fp != fingerprint => {
                return Err(LinkError::Pin(format!(
                    "parent {} shows a different certificate than before ({} instead of {}); refusing it",
                    id, fingerprint, fp
                )));
            }
            Some((id, _)) if id != parent.info.node_id => {
                return Err(LinkError::Pin(format!(
                    "the node at {} is {} but this node's parent is {}; if the parent was reinstalled, run `youke init` again",
                    self.parent_addr, parent.info.node_id, id
                )));
            }
            _ => {}
        }
        let p = parent.clone();
        blocking(&self.store, move |s| s.remember_parent(&p)).await?;
        Ok((conn, parent))
    }

    async fn session(self: Arc<Self>, cancel: CancellationToken, up_since: Arc<std::sync::Mutex<Option<Instant>>>) -> Result<(), LinkError> {
        let (conn, parent) = self.connect().await?;
        if let Ok(mut g) = up_since.lock() {
            *g = Some(Instant::now());
        }
        info!(parent = %parent.info.name, addr = %parent.addr, "parent link up");
        self.upstream.set(Some((conn.clone(), parent.info.name.clone())));
        struct ClearUpstream<'a>(&'a Upstream);
        impl Drop for ClearUpstream<'_> {
            fn drop(&mut self) {
                self.0.set(None);
            }
        }
        let _clear = ClearUpstream(&self.upstream);
        LinkCounters::add(&self.counters.links_up, 1);
        self.report(LinkState::Up { parent: parent.info.clone() }).await;
        let result = tokio::select! {
            e = conn.closed() => Err(LinkError::Connection(e)),
            r = Arc::clone(&self).pump(&conn, &parent, &cancel) => r,
            _ = until_revoked(&self.revocations, &parent.info.node_id) => {
                warn!(parent = %parent.info.name, "the parent was revoked; closing its link");
                conn.close(3u32.into(), b"revoked");
                Err(LinkError::Revoked(format!("the parent {} ({})", parent.info.name, parent.info.node_id)))
            }
        };
        conn.close(0u32.into(), b"session ended");
        result
    }

    /// Drives the sync engine ([`ChildSession`]): carries out what it asks (store queries on
    /// the blocking pool, requests on streams of their own, blob offers and streams), each lane
    /// concurrently, and feeds back the results, wake-ups and the time. Ends when the engine
    /// closes the session (with the error that made it) or `cancel` fires.
    async fn pump(self: Arc<Self>, conn: &Connection, parent: &Peer, cancel: &CancellationToken) -> Result<(), LinkError> {
        let mut engine = ChildSession::new(Instant::now());
        let mut work: JoinSet<(Lane, Done)> = JoinSet::new();
        // The blob offer's stream, kept for the bytes that follow it.
        let mut blob_stream: Option<(SendStream, RecvStream)> = None;
        let mut fatal: Option<LinkError> = None;
        loop {
            while let Some(out) = engine.poll_output() {
                match out {
                    Output::Close(why) => return Err(fatal.take().unwrap_or(LinkError::Protocol(why))),
                    Output::Query(lane, query) => {
                        let (store, parent) = (Arc::clone(&self.store), parent.clone());
                        work.spawn(async move {
                            let r = tokio::task::spawn_blocking(move || child::execute(store.as_ref(), &parent, query)).await;
                            (lane, Done::Reply(r.map_err(join_err).and_then(|r| r.map_err(LinkError::Store))))
                        });
                    }
                    Output::Request(lane, message) => {
                        if let Message::PushDocs { docs, .. } = &message {
                            self.counters.docs(true, docs);
                        }
                        let conn = conn.clone();
                        work.spawn(async move { (lane, Done::Answer(request(&conn, &message).await.map(|(_, _, answer)| answer))) });
                    }
                    Output::OfferBlob(upload) => {
                        let (this, conn) = (Arc::clone(&self), conn.clone());
                        work.spawn(async move { (Lane::Blobs, Done::Offered(this.offer_blob(&conn, upload).await)) });
                    }
                    Output::StreamBlob { upload, from } => {
                        let Some((send, recv)) = blob_stream.take() else {
                            return Err(LinkError::Protocol("the blob's stream was lost before its bytes".into()));
                        };
                        let (this, parent) = (Arc::clone(&self), parent.clone());
                        work.spawn(async move { (Lane::Blobs, Done::Answer(this.stream_blob(send, recv, &parent, upload, from).await)) });
                    }
                }
            }
            let deadline = engine.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(joined) = work.join_next() => {
                    let (lane, done) = joined.map_err(join_err)?;
                    let now = Instant::now();
                    let failed = match done {
                        Done::Reply(Ok(reply)) => {
                            engine.handle_reply(lane, Ok(reply), now);
                            None
                        }
                        Done::Reply(Err(LinkError::Store(e))) if self.store.is_busy(&e) => {
                            engine.handle_store_busy(lane, now);
                            None
                        }
                        Done::Reply(Err(e)) => {
                            engine.handle_reply(lane, Err(e.to_string()), now);
                            Some(e)
                        }
                        Done::Offered(Ok((answer, send, recv))) => {
                            blob_stream = Some((send, recv));
                            engine.handle_answer(lane, answer, now);
                            None
                        }
                        Done::Answer(Ok(answer)) => {
                            match &answer {
                                Message::Docs { docs, .. } | Message::ReconcileRepair { docs, .. } => self.counters.docs(false, docs),
                                Message::BlobStored { .. } => LinkCounters::add(&self.counters.blobs_sent, 1),
                                _ => {}
                            }
                            engine.handle_answer(lane, answer, now);
                            None
                        }
                        Done::Answer(Err(e)) | Done::Offered(Err(e)) => {
                            engine.handle_failure(lane, failure(&e), now);
                            Some(e)
                        }
                    };
                    // The error that ended the session is what the link reports.
                    if engine.is_closed() && fatal.is_none() {
                        fatal = failed;
                    }
                }
                _ = self.wake.notified() => engine.handle_wake(),
                _ = sleep_until(deadline) => engine.handle_timeout(Instant::now()),
            }
        }
    }

    /// Offers a blob on a new stream with its manifest; the parent's answer and the stream.
    async fn offer_blob(&self, conn: &Connection, job: BlobUpload) -> Result<(Message, SendStream, RecvStream), LinkError> {
        if self.blobs.blob(&job.hash).is_none() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("blob {} is not in the local store", job.hash)).into());
        }
        let blobs = self.blobs.clone();
        let manifest = tokio::task::spawn_blocking(move || blobs.manifest(&job.hash)).await.map_err(join_err)??;
        if manifest.size != job.size {
            return Err(LinkError::Blob(BlobError::SizeMismatch { hash: job.hash, expected: job.size, actual: manifest.size }));
        }
        let offer = Message::BlobOffer { hash: job.hash, size: job.size, manifest: manifest.cvs };
        let (send, recv, answer) = request(conn, &offer).await?;
        Ok((answer, send, recv))
    }

    /// Sends the offered blob's bytes from `from`, paced by the link's rate schedule, and reads
    /// the parent's last answer.
    async fn stream_blob(&self, mut send: SendStream, mut recv: RecvStream, parent: &Peer, job: BlobUpload, from: u64) -> Result<Message, LinkError> {
        let blob = self.blobs.blob(&job.hash).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("blob {} is not in the local store", job.hash)))?;
        let progress = self.transfers.start(job.hash, Direction::Upload, &parent.info.name, job.size, from);
        let sent = send_blob_range(&mut send, &blob, from, job.size - from, Some(&self.limiter), &progress, &self.counters).await;
        if let Err(e) = sent {
            // The parent may have refused the bytes (a bad chunk, a full disk): its answer says why.
            return Err(match tokio::time::timeout(Duration::from_secs(2), read_msg(&mut recv)).await {
                Ok(Ok(Message::Error { code, message })) => LinkError::Remote { code, message },
                _ => e,
            });
        }
        send.finish()?;
        match read_msg(&mut recv).await? {
            Message::Error { code, message } => Err(LinkError::Remote { code, message }),
            answer => Ok(answer),
        }
    }
}

/// What a lane's work came to.
enum Done {
    Reply(Result<child::Reply, LinkError>),
    Answer(Result<Message, LinkError>),
    Offered(Result<(Message, SendStream, RecvStream), LinkError>),
}

/// How the engine is to take a failed request: a broken connection or stream ends the session;
/// the parent's refusal and this node's own blob trouble are the blob lane's to retry.
fn failure(e: &LinkError) -> Failure {
    match e {
        LinkError::Remote { code, message } => Failure::Remote { code: *code, message: message.clone() },
        LinkError::Io(_) | LinkError::Blob(_) => Failure::Local(e.to_string()),
        LinkError::Connection(_) | LinkError::Write(_) | LinkError::Read(_) | LinkError::ReadChunk(_) | LinkError::Closed(_) => Failure::Transport(e.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
