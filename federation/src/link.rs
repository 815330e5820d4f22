//! The tokio/quinn driver of federation links.
//!
//! A child keeps one QUIC connection to its parent ([`Uplink::run`]), reconnecting with backoff
//! whenever it drops. The first stream carries the hello; after it, the child pushes document
//! batches and blobs on streams of their own, one request and one answer each. The parent side
//! ([`ChildAcceptor::run`]) checks each child's hello and pinned certificate, then serves its
//! streams. What to send, what was acknowledged and how received documents are applied is the
//! node's business, reached through [`LinkStore`]; the rules themselves live in
//! [`crate::protocol`] and [`crate::tier`].

use crate::blobs::{Blob, BlobError, BlobHash, BlobStore, Incoming};
use crate::manifest::{CHUNK, Manifest};
use crate::rate::{Rate, RateLimiter};
use crate::transfers::{Direction, Transfer, Transfers};
use crate::identity::{Fingerprint, IdentityError, NodeIdentity, Trust};
use crate::pki::{self, JoinToken, Place, Revocations};
use crate::tier::Tier;
use crate::protocol::{self, DocUpdate, ErrorCode, FrameError, Message, NodeHealth, NodeInfo};
use crate::pull::{MAX_RANGE, Range, RangeSource, Upstream};
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Errors of the node's store, as seen by the link layer.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// A peer at the other end of a link, after its hello and certificate checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub info: NodeInfo,
    pub fingerprint: Fingerprint,
    pub addr: SocketAddr,
}

/// A blob the child should send up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobUpload {
    pub hash: BlobHash,
    pub size: u64,
}

/// Counters of what crossed this node's links, for metrics. Shared by the uplink and the
/// acceptor; monotonic since the process started.
#[derive(Debug, Default)]
pub struct LinkCounters {
    pub docs_sent: AtomicU64,
    pub docs_received: AtomicU64,
    pub doc_bytes_sent: AtomicU64,
    pub doc_bytes_received: AtomicU64,
    pub blob_bytes_sent: AtomicU64,
    pub blob_bytes_received: AtomicU64,
    pub blobs_sent: AtomicU64,
    pub blobs_received: AtomicU64,
    /// Parent side: peers refused (certificate, hello, revoked, version, too many handshakes).
    pub peers_refused: AtomicU64,
    /// Parent side: peers disconnected for sending garbage.
    pub peers_garbage: AtomicU64,
    /// Parent side: enrollments refused, and children enrolled.
    pub enrollments_refused: AtomicU64,
    pub enrollments: AtomicU64,
    /// Datagrams on the federation port that are not QUIC of this federation.
    pub garbage_datagrams: AtomicU64,
}

impl LinkCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn docs(&self, sent: bool, docs: &[DocUpdate]) {
        let bytes: u64 = docs.iter().map(|d| d.bytes.len() as u64).sum();
        if sent {
            Self::add(&self.docs_sent, docs.len() as u64);
            Self::add(&self.doc_bytes_sent, bytes);
        } else {
            Self::add(&self.docs_received, docs.len() as u64);
            Self::add(&self.doc_bytes_received, bytes);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// State of a child's link to its parent, reported to the store for `youke status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Up { parent: NodeInfo },
    Down { error: String },
}

/// What the link layer needs from the node's storage. Calls are blocking; the driver runs them
/// on tokio's blocking pool.
pub trait LinkStore: Send + Sync + 'static {
    /// Child side: the parent remembered from earlier links (node id and pinned fingerprint).
    fn known_parent(&self) -> Result<Option<(String, Fingerprint)>, StoreError>;
    /// Child side: pins the parent after its first successful hello.
    fn remember_parent(&self, parent: &Peer) -> Result<(), StoreError>;
    /// Child side: the link's state changed.
    fn set_link_state(&self, parent_addr: &str, state: &LinkState) -> Result<(), StoreError>;
    /// Child side: the next document versions for the parent, in sequence order, after the last
    /// acknowledged one and within the parent's scope, at most `limit`; and the sequence number
    /// the acknowledgement may move to once they are stored (past documents the parent holds).
    fn docs_to_send(&self, parent: &Peer, limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError>;
    /// Child side: the parent stored everything up to `upto_seq` except `need_full` (ids and
    /// sequence numbers of documents to send again, whole).
    fn docs_acked(&self, parent: &Peer, upto_seq: u64, need_full: &[(String, u64)]) -> Result<(), StoreError>;
    /// Child side: the parent's sequence number up to which this node holds its scope down.
    fn pull_cursor(&self, parent: &Peer) -> Result<u64, StoreError>;
    /// Child side: stores documents from the parent and moves the cursor to `upto_seq`, all or
    /// nothing. Returns the ids of documents whose changes could not be applied (the cursor then
    /// stays before them, and the parent is asked to send them whole).
    fn apply_from_parent(&self, parent: &Peer, docs: Vec<DocUpdate>, upto_seq: u64) -> Result<Vec<String>, StoreError>;
    /// Child side, anti-entropy: digests of (id, heads) over the documents this node shares up
    /// (see [`protocol::reconcile_digests`]).
    fn reconcile_digests(&self, parent: &Peer) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Child side: the (id, heads) entries of these buckets.
    fn reconcile_entries(&self, parent: &Peer, buckets: &[u16]) -> Result<Vec<(String, String)>, StoreError>;
    /// Child side: stores the parent's whole documents, and arranges for `send_up` to be sent
    /// up whole.
    fn reconcile_apply(&self, parent: &Peer, send_up: &[String], docs: Vec<DocUpdate>) -> Result<(), StoreError>;
    /// Child side: the next blob to replicate up, if any is due.
    fn next_blob_upload(&self, parent: &Peer) -> Result<Option<BlobUpload>, StoreError>;
    /// Child side: the parent holds the blob, verified.
    fn blob_upload_done(&self, parent: &Peer, hash: &BlobHash) -> Result<(), StoreError>;
    /// Child side: sending the blob failed; retry later with backoff.
    fn blob_upload_failed(&self, parent: &Peer, hash: &BlobHash, reason: &str) -> Result<(), StoreError>;
    /// Parent side: the fingerprint pinned for a child node id, if it linked before.
    fn child_pin(&self, node_id: &str) -> Result<Option<Fingerprint>, StoreError>;
    /// Parent side: records a child that completed its hello (pins it the first time).
    fn remember_child(&self, child: &Peer) -> Result<(), StoreError>;
    /// Parent side: a child's link came up or went down.
    fn child_link_state(&self, child: &Peer, connected: bool) -> Result<(), StoreError>;
    /// Parent side: the documents in a child's scope down changed after `after_seq`, in sequence
    /// order, at most `limit`; and the sequence number the child may move its cursor to when it
    /// has them all (past documents outside its scope).
    /// `forget` names documents the child could not apply: send them whole.
    fn docs_for_child(&self, child: &Peer, after_seq: u64, forget: &[String], limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError>;
    /// Parent side, anti-entropy: digests over the documents that came from this child.
    fn reconcile_digests_of_child(&self, child: &Peer) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Parent side: compares the child's entries of these buckets with its own; returns the
    /// ids the child must send whole and this node's whole documents the child lacks or holds
    /// at other heads.
    fn reconcile_resolve(&self, child: &Peer, buckets: &[u16], entries: Vec<(String, String)>) -> Result<(Vec<String>, Vec<DocUpdate>), StoreError>;
    /// Parent side: stores a batch of documents from a child, all or nothing. Returns the ids
    /// of documents whose changes could not be applied and are needed whole.
    fn apply_docs(&self, child: &Peer, docs: Vec<DocUpdate>) -> Result<Vec<String>, StoreError>;
    /// Parent side: a blob from a child arrived and verified.
    fn blob_received(&self, child: &Peer, hash: &BlobHash, size: u64) -> Result<(), StoreError>;
    /// Parent side, enrollment: uses up the join token whose id is `token_id` for node
    /// `child_id` at `place` (a certificate name), all or nothing. Returns the name the token
    /// was made for, or why it cannot be used (unknown, expired, used already).
    fn redeem_token(&self, token_id: &str, child_id: &str, place: &str) -> Result<Result<String, String>, StoreError>;
    /// Child side: this node's health and its subtree's, to report to the parent.
    fn health_report(&self, parent: &Peer) -> Result<Vec<NodeHealth>, StoreError>;
    /// Parent side: a child's latest health report (replaces the one before).
    fn child_health(&self, child: &Peer, nodes: Vec<NodeHealth>) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot resolve parent address {0:?}")]
    Resolve(String),
    #[error("cannot connect to the parent: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("link lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("sending failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream closed early: {0}")]
    Closed(#[from] quinn::ClosedStream),
    #[error("receiving failed: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("receiving failed: {0}")]
    ReadChunk(#[from] quinn::ReadError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the parent refused this node: {0}")]
    Refused(String),
    #[error(
        "the peer speaks another protocol version (this node speaks {ours}); upgrade the older of the two nodes"
    )]
    Version { ours: String },
    #[error("peer broke the protocol: {0}")]
    Protocol(String),
    #[error("peer identity check failed: {0}")]
    Pin(String),
    #[error("the link to the parent is down; media held only upstream can be fetched when it is back")]
    NoParent,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("local store: {0}")]
    Store(StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("the other node reports: {message} ({code:?})")]
    Remote { code: ErrorCode, message: String },
    #[error("reading a local blob: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("{0} was revoked; its links are closed")]
    Revoked(String),
}

/// How long to wait for one message from a peer.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a blob stream may stay silent before it is given up.
const BLOB_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the child looks for new work when nothing woke it.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Concurrent connections the parent serves; more wait.
const MAX_CONNECTIONS: usize = 512;
/// Connections from one IP address that have not completed their hello (or are enrolling);
/// more are refused. Linked children do not count (many schools may share a NAT address; they
/// are bounded by [`MAX_CONNECTIONS`] and one live link per node id), so a host without a
/// certificate cannot hold more than this many handshakes open.
const MAX_PENDING_PER_IP: usize = 16;
/// Documents asked from the store per batch (the batch is also cut by bytes).
const DOCS_PER_BATCH: usize = 256;
/// When the first anti-entropy pass runs after link-up: once the changes made while the link
/// was down have gone both ways, so they are not mistaken for drift.
const RECONCILE_FIRST: Duration = Duration::from_secs(20);
/// How often anti-entropy runs on a link after the first pass.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(600);
/// How often a child reports its subtree's health to its parent (and once at link-up).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Buckets compared per anti-entropy request, so entry lists stay well below the frame limit.
const RECONCILE_BUCKETS_PER_REQUEST: usize = 4;
/// How soon to offer a blob again that the parent is still receiving on a dead link.
const BUSY_RETRY: Duration = Duration::from_millis(300);
/// Bytes read and written per step when streaming a blob.
const BLOB_PIECE: usize = 1 << 20;
/// Smaller steps when the link is rate limited, so pacing stays smooth.
const RATED_PIECE: usize = 64 * 1024;

/// The QUIC transport settings shared by both ends of a link.
pub fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    if let Ok(idle) = quinn::IdleTimeout::try_from(Duration::from_secs(10)) {
        t.max_idle_timeout(Some(idle));
    }
    t.max_concurrent_bidi_streams(8u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.stream_receive_window((8u32 << 20).into());
    t.receive_window((16u32 << 20).into());
    t.send_window(16 << 20);
    // School uplinks lose packets for reasons other than congestion (Wi-Fi, shared DSL): BBR
    // paces by measured bandwidth and RTT instead of halving on every loss as CUBIC does, which
    // keeps a lossy 10 Mbit/s link full (tests/tests/media_link.rs).
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    Arc::new(t)
}

/// UDP socket buffer size asked for; the kernel caps it at net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 8 << 20;

/// A UDP socket bound to `addr` with large buffers: at gigabit rates the default 208 KiB
/// receive buffer overflows between two reads and QUIC sees losses that are not congestion.
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    for (set, what) in [(Socket::set_recv_buffer_size as fn(&Socket, usize) -> std::io::Result<()>, "receive"), (Socket::set_send_buffer_size, "send")] {
        if let Err(e) = set(&socket, SOCKET_BUFFER) {
            debug!(error = %e, "cannot enlarge the UDP {what} buffer");
        }
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds this node's QUIC endpoint: it accepts children (if its tier has any) and dials its
/// parent. Every datagram received is looked at ([`crate::datagrams`]): garbage is counted in
/// `counters` and logged at a bounded rate.
pub fn bind_endpoint(addr: SocketAddr, identity: &NodeIdentity, counters: Arc<LinkCounters>) -> Result<Endpoint, LinkError> {
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(identity.quic_server_config(protocol::ALPN, protocol::ENROLL_ALPN)?));
    server.transport_config(transport());
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    let socket = runtime.wrap_udp_socket(udp_socket(addr)?)?;
    let key = identity.cid_key();
    let socket = Arc::new(crate::datagrams::WatchedSocket::new(socket, key.clone(), counters));
    let mut config = quinn::EndpointConfig::new(Arc::new(identity.stateless_reset_key()));
    // Connection ids signed with a key that survives restarts: packets for the previous life
    // of the node are answered with a stateless reset, random bytes are told apart.
    config.cid_generator(move || Box::new(crate::datagrams::SignedCids::new(key.clone())));
    // Peers must not clear the fixed bit toward this node, so a clear one marks garbage.
    config.grease_quic_bit(false);
    let mut endpoint = Endpoint::new_with_abstract_socket(config, Some(server), socket, runtime)?;
    let mut client = quinn::ClientConfig::new(Arc::new(identity.quic_client_config(protocol::ALPN)?));
    client.transport_config(transport());
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

/// TLS alert 120, no_application_protocol: the peer offered no ALPN this node speaks, which is
/// how a node of another protocol version shows up.
fn is_version_mismatch(e: &quinn::ConnectionError) -> bool {
    let code = quinn::TransportErrorCode::crypto(120);
    match e {
        quinn::ConnectionError::TransportError(t) => t.code == code,
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code == code,
        _ => false,
    }
}

fn version_error() -> LinkError {
    LinkError::Version { ours: String::from_utf8_lossy(protocol::ALPN).into_owned() }
}

/// What a failed TLS handshake means for an operator, when a certificate was refused (by this
/// node or by the peer).
pub fn certificate_refusal(e: &quinn::ConnectionError) -> Option<String> {
    let text = e.to_string();
    if !text.contains("certificate") {
        return None;
    }
    let why = if text.contains("UnknownIssuer") {
        "it is not issued in this federation (self-signed, or from an unknown CA)"
    } else if text.contains("BadSignature") {
        "it is not signed by this federation's CA (a certificate of another federation?)"
    } else if text.contains("NameConstraintViolation") {
        "it was signed by a CA for another part of the tree"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        "it names another node or place than the one expected here"
    } else if text.contains("Expired") || text.contains("NotValidYet") {
        "it is expired or not yet valid (check both nodes' clocks)"
    } else if text.contains("Revoked") {
        "it is revoked"
    } else {
        "it does not check"
    };
    Some(format!("certificate refused: {why} [{text}]"))
}

fn connection_error(e: quinn::ConnectionError) -> LinkError {
    if is_version_mismatch(&e) {
        return version_error();
    }
    match certificate_refusal(&e) {
        Some(why) => LinkError::Pin(why),
        None => LinkError::Connection(e),
    }
}

async fn read_msg(recv: &mut RecvStream) -> Result<Message, LinkError> {
    read_msg_within(recv, protocol::MAX_MESSAGE_SIZE).await
}

/// Reads one message whose frame is at most `limit` bytes.
async fn read_msg_within(recv: &mut RecvStream, limit: usize) -> Result<Message, LinkError> {
    let fut = async {
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await?;
        let len = protocol::frame_len(prefix)?;
        if len > limit {
            return Err(FrameError::TooLarge { len, limit }.into());
        }
        let mut body = vec![0u8; len];
        recv.read_exact(&mut body).await?;
        Ok::<_, LinkError>(protocol::decode_body(&body)?)
    };
    tokio::time::timeout(MESSAGE_TIMEOUT, fut).await.map_err(|_| LinkError::Timeout("a message"))?
}

async fn write_msg(send: &mut SendStream, msg: &Message) -> Result<(), LinkError> {
    let frame = protocol::encode(msg)?;
    send.write_all(&frame).await?;
    Ok(())
}

/// One request on a new stream, one answer.
async fn request(conn: &Connection, msg: &Message) -> Result<(SendStream, RecvStream, Message), LinkError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_msg(&mut send, msg).await?;
    let answer = read_msg(&mut recv).await?;
    if let Message::Error { code, message } = answer {
        return Err(LinkError::Remote { code, message });
    }
    Ok((send, recv, answer))
}

/// The certificate chain the peer presented in TLS, if any.
fn peer_chain(conn: &Connection) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|any| any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .map(|b| *b)
        .unwrap_or_default()
}

fn peer_fingerprint(conn: &Connection) -> Result<Fingerprint, LinkError> {
    let chain = peer_chain(conn);
    let first = chain.first().ok_or_else(|| LinkError::Pin("peer presented no certificate".into()))?;
    Ok(Fingerprint::of(first))
}

/// The ALPN the connection agreed on.
fn negotiated_alpn(conn: &Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
}

/// Resolves when `node_id` is found revoked (checked whenever the revocation list changes).
async fn until_revoked(revocations: &Revocations, node_id: &str) {
    let mut rx = revocations.subscribe();
    loop {
        if revocations.contains(node_id) {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn LinkStore>,
    f: impl FnOnce(&dyn LinkStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, LinkError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(r) => r.map_err(LinkError::Store),
        Err(e) => Err(LinkError::Store(Box::new(e))),
    }
}

/// The child's side of the link to its parent.
pub struct Uplink {
    pub endpoint: Endpoint,
    /// `HOST:PORT` of the parent's QUIC endpoint.
    pub parent_addr: String,
    pub local: NodeInfo,
    pub store: Arc<dyn LinkStore>,
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
        let mut backoff = crate::schedule::Backoff::for_link(crate::schedule::seed_of(&this.local.node_id));
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
        self.report(LinkState::Up { parent: parent.info.clone() }).await;
        let _guard = cancel.clone().drop_guard();
        let mut tasks = JoinSet::new();
        tasks.spawn(Arc::clone(&self).push_docs(conn.clone(), parent.clone(), cancel.clone()));
        tasks.spawn(Arc::clone(&self).push_blobs(conn.clone(), parent.clone(), cancel.clone()));
        tasks.spawn(Arc::clone(&self).pull_docs(conn.clone(), parent.clone(), cancel.clone()));
        tasks.spawn(Arc::clone(&self).reconcile_loop(conn.clone(), parent.clone(), cancel.clone()));
        tasks.spawn(Arc::clone(&self).report_health(conn.clone(), parent.clone(), cancel.clone()));
        let result = tokio::select! {
            e = conn.closed() => Err(LinkError::Connection(e)),
            Some(r) = tasks.join_next() => r.unwrap_or_else(|e| Err(LinkError::Protocol(e.to_string()))),
            _ = until_revoked(&self.revocations, &parent.info.node_id) => {
                warn!(parent = %parent.info.name, "the parent was revoked; closing its link");
                conn.close(3u32.into(), b"revoked");
                Err(LinkError::Revoked(format!("the parent {} ({})", parent.info.name, parent.info.node_id)))
            }
        };
        cancel.cancel();
        tasks.shutdown().await;
        conn.close(0u32.into(), b"session ended");
        result
    }

    async fn idle(&self, cancel: &CancellationToken) -> bool {
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = self.wake.notified() => true,
            _ = tokio::time::sleep(POLL_INTERVAL) => true,
        }
    }

    async fn push_docs(self: Arc<Self>, conn: Connection, parent: Peer, cancel: CancellationToken) -> Result<(), LinkError> {
        loop {
            let p = parent.clone();
            let (docs, upto) = blocking(&self.store, move |s| s.docs_to_send(&p, DOCS_PER_BATCH)).await?;
            if docs.is_empty() {
                let p = parent.clone();
                // Everything up to `upto` is held by the parent already (or out of its scope).
                blocking(&self.store, move |s| s.docs_acked(&p, upto, &[])).await?;
                if !self.idle(&cancel).await {
                    return Ok(());
                }
                continue;
            }
            let n = protocol::batch_prefix(&docs);
            let cut = n < docs.len();
            let batch: Vec<DocUpdate> = docs.into_iter().take(n).collect();
            let upto = if cut { batch.last().map(|d| d.seq).unwrap_or(0) } else { upto };
            let seqs: Vec<(String, u64)> = batch.iter().map(|d| (d.id.clone(), d.seq)).collect();
            let count = batch.len();
            self.counters.docs(true, &batch);
            let (_s, _r, answer) = request(&conn, &Message::PushDocs { docs: batch, upto_seq: upto }).await?;
            match answer {
                Message::DocsAck { upto_seq, need_full } if upto_seq == upto && need_full.len() <= protocol::MAX_REPAIR_IDS => {
                    let again: Vec<(String, u64)> = seqs.into_iter().filter(|(id, _)| need_full.contains(id)).collect();
                    if !again.is_empty() {
                        info!(count = again.len(), "parent lacks earlier changes of some documents; sending them whole");
                    }
                    let p = parent.clone();
                    blocking(&self.store, move |s| s.docs_acked(&p, upto_seq, &again)).await?;
                    debug!(count, upto_seq, "documents acknowledged by parent");
                }
                other => return Err(LinkError::Protocol(format!("expected ack of {upto}, got {}", protocol::describe(&other)))),
            }
        }
    }

    /// Reports this node's subtree's health to the parent at link-up and then every
    /// [`HEALTH_INTERVAL`], for the admin consoles up the tree.
    async fn report_health(self: Arc<Self>, conn: Connection, parent: Peer, cancel: CancellationToken) -> Result<(), LinkError> {
        loop {
            let p = parent.clone();
            let mut nodes = blocking(&self.store, move |s| s.health_report(&p)).await?;
            nodes.truncate(protocol::MAX_HEALTH_NODES);
            match request(&conn, &Message::Health { nodes }).await?.2 {
                Message::HealthAck => {}
                other => return Err(LinkError::Protocol(format!("expected health-ack, got {}", protocol::describe(&other)))),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            }
        }
    }

    /// Anti-entropy: soon after link-up and then periodically, compare digests of what this
    /// node shares up with the parent's view and repair the buckets that differ.
    async fn reconcile_loop(self: Arc<Self>, conn: Connection, parent: Peer, cancel: CancellationToken) -> Result<(), LinkError> {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(RECONCILE_FIRST) => {}
        }
        loop {
            match self.reconcile(&conn, &parent).await {
                Ok(0) => debug!("anti-entropy: in step with the parent"),
                Ok(n) => info!(documents = n, "anti-entropy repaired drift with the parent"),
                Err(e @ (LinkError::Connection(_) | LinkError::Write(_) | LinkError::Read(_) | LinkError::ReadChunk(_) | LinkError::Closed(_))) => return Err(e),
                Err(e) => warn!(error = %e, "anti-entropy pass failed; will try again later"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
            }
        }
    }

    /// One anti-entropy pass; returns how many documents were repaired either way.
    async fn reconcile(&self, conn: &Connection, parent: &Peer) -> Result<usize, LinkError> {
        let p = parent.clone();
        let digests = blocking(&self.store, move |s| s.reconcile_digests(&p)).await?;
        let (_s, _r, answer) = request(conn, &Message::Reconcile { digests }).await?;
        let Message::ReconcileBuckets { buckets } = answer else {
            return Err(LinkError::Protocol(format!("expected reconcile buckets, got {}", protocol::describe(&answer))));
        };
        let mut repaired = 0;
        for chunk in buckets.chunks(RECONCILE_BUCKETS_PER_REQUEST) {
            let (p, b) = (parent.clone(), chunk.to_vec());
            let entries = blocking(&self.store, move |s| s.reconcile_entries(&p, &b)).await?;
            let (_s, _r, answer) = request(conn, &Message::ReconcileEntries { buckets: chunk.to_vec(), entries }).await?;
            let Message::ReconcileRepair { send_up, docs } = answer else {
                return Err(LinkError::Protocol(format!("expected a repair, got {}", protocol::describe(&answer))));
            };
            repaired += send_up.len() + docs.len();
            self.counters.docs(false, &docs);
            let p = parent.clone();
            blocking(&self.store, move |s| s.reconcile_apply(&p, &send_up, docs)).await?;
        }
        if repaired > 0 {
            self.wake.notify_one();
        }
        Ok(repaired)
    }

    async fn pull_docs(self: Arc<Self>, conn: Connection, parent: Peer, cancel: CancellationToken) -> Result<(), LinkError> {
        let mut forget: Vec<String> = Vec::new();
        loop {
            let p = parent.clone();
            let after_seq = blocking(&self.store, move |s| s.pull_cursor(&p)).await?;
            let (_s, _r, answer) = request(&conn, &Message::PullDocs { after_seq, forget: std::mem::take(&mut forget) }).await?;
            let Message::Docs { docs, upto_seq } = answer else {
                return Err(LinkError::Protocol(format!("expected documents, got {}", protocol::describe(&answer))));
            };
            if docs.iter().any(|d| d.seq > upto_seq) || upto_seq < after_seq {
                return Err(LinkError::Protocol("parent sent documents outside the requested range".into()));
            }
            let count = docs.len();
            self.counters.docs(false, &docs);
            if upto_seq > after_seq || count > 0 {
                let p = parent.clone();
                forget = blocking(&self.store, move |s| s.apply_from_parent(&p, docs, upto_seq)).await?;
                forget.truncate(protocol::MAX_REPAIR_IDS);
                debug!(count, upto_seq, need_full = forget.len(), "documents from parent applied");
            }
            if count == 0 && forget.is_empty() && !self.idle(&cancel).await {
                return Ok(());
            }
        }
    }

    async fn push_blobs(self: Arc<Self>, conn: Connection, parent: Peer, cancel: CancellationToken) -> Result<(), LinkError> {
        loop {
            let p = parent.clone();
            let Some(job) = blocking(&self.store, move |s| s.next_blob_upload(&p)).await? else {
                if !self.idle(&cancel).await {
                    return Ok(());
                }
                continue;
            };
            match self.send_blob(&conn, &parent, job).await {
                Ok(()) => {
                    let p = parent.clone();
                    blocking(&self.store, move |s| s.blob_upload_done(&p, &job.hash)).await?;
                    info!(hash = %job.hash, size = job.size, "blob replicated to parent");
                }
                Err(LinkError::Remote { code: ErrorCode::Busy, .. }) => {
                    // The parent still holds this blob's stream from a link that just died; it
                    // frees it within moments. Not a failure: try again shortly.
                    debug!(hash = %job.hash, "parent busy with this blob; retrying shortly");
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(BUSY_RETRY) => {}
                    }
                }
                Err(e @ (LinkError::Remote { .. } | LinkError::Io(_) | LinkError::Blob(_))) => {
                    let reason = e.to_string();
                    warn!(hash = %job.hash, %reason, "blob upload failed; will retry");
                    let p = parent.clone();
                    blocking(&self.store, move |s| s.blob_upload_failed(&p, &job.hash, &reason)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn send_blob(&self, conn: &Connection, parent: &Peer, job: BlobUpload) -> Result<(), LinkError> {
        let blob = self.blobs.blob(&job.hash).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("blob {} is not in the local store", job.hash))
        })?;
        let blobs = self.blobs.clone();
        let manifest = tokio::task::spawn_blocking(move || blobs.manifest(&job.hash)).await.map_err(join_err)??;
        if manifest.size != job.size {
            return Err(LinkError::Blob(BlobError::SizeMismatch { hash: job.hash, expected: job.size, actual: manifest.size }));
        }
        let offer = Message::BlobOffer { hash: job.hash, size: job.size, manifest: manifest.cvs };
        let (mut send, mut recv, answer) = request(conn, &offer).await?;
        let have = match answer {
            Message::BlobState { complete: true, .. } => return Ok(()),
            Message::BlobState { have, complete: false } if have <= job.size && have.is_multiple_of(CHUNK) => have,
            other => return Err(LinkError::Protocol(format!("expected blob state, got {}", protocol::describe(&other)))),
        };
        if have > 0 {
            info!(hash = %job.hash, offset = have, size = job.size, "resuming blob upload");
        }
        let progress = self.transfers.start(job.hash, Direction::Upload, &parent.info.name, job.size, have);
        let sent = send_blob_range(&mut send, &blob, have, job.size - have, Some(&self.limiter), &progress, &self.counters).await;
        if let Err(e) = sent {
            // The parent may have refused the bytes (a bad chunk, a full disk): its answer says why.
            return Err(match tokio::time::timeout(Duration::from_secs(2), read_msg(&mut recv)).await {
                Ok(Ok(Message::Error { code, message })) => LinkError::Remote { code, message },
                _ => e,
            });
        }
        send.finish()?;
        match read_msg(&mut recv).await? {
            Message::BlobStored { hash } if hash == job.hash => {
                LinkCounters::add(&self.counters.blobs_sent, 1);
                Ok(())
            }
            Message::Error { code, message } => Err(LinkError::Remote { code, message }),
            other => Err(LinkError::Protocol(format!("expected blob stored, got {}", protocol::describe(&other)))),
        }
    }
}

/// Sends `len` bytes of a blob from `offset`: from its file, or streamed from the bucket.
async fn send_blob_range(
    send: &mut SendStream,
    blob: &Blob,
    offset: u64,
    len: u64,
    limiter: Option<&RateLimiter>,
    progress: &Transfer,
    counters: &LinkCounters,
) -> Result<(), LinkError> {
    if let Some(path) = blob.path() {
        return send_file_range(send, path, offset, len, limiter, progress, counters).await;
    }
    let Some(remote) = blob.remote() else { return Err(LinkError::Protocol(format!("blob {} has no place", blob.hash()))) };
    let mut pieces = remote.stream(&blob.hash(), offset..offset + len);
    let mut sent = 0u64;
    while let Some(piece) = pieces.recv().await {
        let piece = piece?;
        if let Some(l) = limiter {
            for part in piece.chunks(RATED_PIECE) {
                l.acquire(part.len() as u64).await;
                send.write_all(part).await?;
            }
        } else {
            send.write_all(&piece).await?;
        }
        LinkCounters::add(&counters.blob_bytes_sent, piece.len() as u64);
        progress.advance(piece.len() as u64);
        sent += piece.len() as u64;
    }
    if sent != len {
        return Err(LinkError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("blob {} in {} gave {sent} of {len} bytes", blob.hash(), remote.describe()),
        )));
    }
    Ok(())
}

/// Streams `len` bytes of the file at `path` from `offset`, paced by `limiter` if given.
async fn send_file_range(
    send: &mut SendStream,
    path: &std::path::Path,
    offset: u64,
    len: u64,
    limiter: Option<&RateLimiter>,
    progress: &Transfer,
    counters: &LinkCounters,
) -> Result<(), LinkError> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let piece = if limiter.is_some_and(|l| l.current() != Rate::Unlimited) { RATED_PIECE } else { BLOB_PIECE };
    let mut buf = vec![0u8; BLOB_PIECE];
    let mut remaining = len;
    while remaining > 0 {
        let want = (remaining as usize).min(piece);
        let slice = buf.get_mut(..want).unwrap_or_default();
        let n = file.read(slice).await?;
        if n == 0 {
            return Err(LinkError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than its recorded size", path.display()),
            )));
        }
        if let Some(l) = limiter {
            l.acquire(n as u64).await;
        }
        send.write_all(buf.get(..n).unwrap_or_default()).await?;
        LinkCounters::add(&counters.blob_bytes_sent, n as u64);
        progress.advance(n as u64);
        remaining -= n as u64;
    }
    Ok(())
}

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
    pub store: Arc<dyn LinkStore>,
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

    /// An enrolling node: one request, one answer, then the connection closes. Every refusal
    /// is logged with its reason and nothing is written.
    async fn serve_enrollment(&self, conn: &Connection) -> Result<(), LinkError> {
        let remote = conn.remote_address();
        let (mut send, mut recv) = tokio::time::timeout(MESSAGE_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| LinkError::Timeout("the enrollment request"))??;
        let verdict = match read_msg_within(&mut recv, protocol::MAX_UNAUTHENTICATED_MESSAGE).await {
            Ok(Message::Enroll { token, node_id, public_key, proof, ca_public_key, ca_proof }) => {
                self.enroll_child(token, node_id, public_key, proof, ca_public_key, ca_proof).await
            }
            Ok(other) => Err(format!("expected an enrollment request, got {}", protocol::describe(&other))),
            Err(e) => Err(format!("unreadable enrollment request: {e}")),
        };
        let answer = match verdict {
            Ok(m) => m,
            Err(reason) => {
                warn!(%remote, %reason, "refused an enrollment");
                LinkCounters::add(&self.counters.enrollments_refused, 1);
                Message::Refused { reason }
            }
        };
        write_msg(&mut send, &answer).await?;
        send.finish()?;
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        conn.close(0u32.into(), b"enrollment done");
        Ok(())
    }

    async fn enroll_child(
        &self,
        token: Vec<u8>,
        node_id: String,
        public_key: Vec<u8>,
        proof: Vec<u8>,
        ca_public_key: Vec<u8>,
        ca_proof: Vec<u8>,
    ) -> Result<Message, String> {
        let Trust::Federation(e) = &self.trust else {
            return Err("this node runs in development trust mode and does not enroll nodes".into());
        };
        let authority = e.authority().map_err(|e| e.to_string())?.ok_or("this node has no CA to sign certificates with")?;
        pki::check_node_id(&node_id).map_err(|e| e.to_string())?;
        if token.len() != 16 {
            return Err("the join token is malformed".into());
        }
        let transcript = protocol::enroll_transcript(&token, &node_id);
        pki::verify_proof(&public_key, &transcript, &proof).map_err(|e| format!("node key: {e}"))?;
        let place = e.place.child(&node_id).map_err(|e| e.to_string())?;
        let city = place.tier() == Tier::City;
        if city {
            pki::verify_proof(&ca_public_key, &transcript, &ca_proof).map_err(|e| format!("CA key: {e}"))?;
        }
        if self.revocations.contains(&node_id) {
            return Err(format!("node id {node_id} was revoked; a reinstalled node gets a new id"));
        }
        let token_id = pki::secret_id(&token);
        let (id, name) = (node_id.clone(), place.dns_name());
        let name = blocking(&self.store, move |s| s.redeem_token(&token_id, &id, &name))
            .await
            .map_err(|e| format!("the parent could not record the enrollment: {e}"))??;
        let node_cert = authority.issue_node(&place, &name, &public_key).map_err(|e| e.to_string())?;
        let ca_cert = if city { Some(authority.issue_city_ca(&place, &ca_public_key).map_err(|e| e.to_string())?) } else { None };
        // A school's certificate is signed by its city's CA, which the school must present.
        let intermediates = if e.place.tier() == Tier::City { vec![authority.cert_der().to_vec()] } else { vec![] };
        info!(node_id = %node_id, %place, %name, "enrolled a child node");
        LinkCounters::add(&self.counters.enrollments, 1);
        Ok(Message::Enrolled { place: place.dns_name(), name, node_cert, intermediates, ca_cert })
    }

    async fn serve_stream(&self, child: &Peer, mut send: SendStream, mut recv: RecvStream) -> Result<(), LinkError> {
        let answer = match read_msg(&mut recv).await? {
            Message::PushDocs { docs, upto_seq } => {
                self.counters.docs(false, &docs);
                let c = child.clone();
                match blocking(&self.store, move |s| s.apply_docs(&c, docs)).await {
                    Ok(need_full) => Message::DocsAck { upto_seq, need_full },
                    Err(e) => {
                        warn!(child = %child.info.name, error = %e, "cannot apply documents from child");
                        Message::Error { code: ErrorCode::Internal, message: "the parent could not store the documents".into() }
                    }
                }
            }
            Message::PullDocs { after_seq, mut forget } => {
                let c = child.clone();
                forget.truncate(protocol::MAX_REPAIR_IDS);
                match blocking(&self.store, move |s| s.docs_for_child(&c, after_seq, &forget, DOCS_PER_BATCH)).await {
                    Ok((mut docs, mut upto_seq)) => {
                        let n = protocol::batch_prefix(&docs);
                        if n < docs.len() {
                            docs.truncate(n);
                            upto_seq = docs.last().map(|d| d.seq).unwrap_or(after_seq);
                        }
                        self.counters.docs(true, &docs);
                        Message::Docs { docs, upto_seq }
                    }
                    Err(e) => {
                        warn!(child = %child.info.name, error = %e, "cannot read documents for child");
                        Message::Error { code: ErrorCode::Internal, message: "the parent could not read its documents".into() }
                    }
                }
            }
            Message::Reconcile { digests } => {
                let c = child.clone();
                match blocking(&self.store, move |s| s.reconcile_digests_of_child(&c)).await {
                    Ok(ours) => Message::ReconcileBuckets { buckets: protocol::differing_buckets(&ours, &digests) },
                    Err(e) => {
                        warn!(child = %child.info.name, error = %e, "anti-entropy: cannot read documents");
                        Message::Error { code: ErrorCode::Internal, message: "the parent could not read its documents".into() }
                    }
                }
            }
            Message::ReconcileEntries { buckets, entries } => {
                let c = child.clone();
                match blocking(&self.store, move |s| s.reconcile_resolve(&c, &buckets, entries)).await {
                    Ok((send_up, mut docs)) => {
                        docs.truncate(protocol::batch_prefix(&docs));
                        self.counters.docs(true, &docs);
                        Message::ReconcileRepair { send_up, docs }
                    }
                    Err(e) => {
                        warn!(child = %child.info.name, error = %e, "anti-entropy: cannot compare documents");
                        Message::Error { code: ErrorCode::Internal, message: "the parent could not compare documents".into() }
                    }
                }
            }
            Message::Health { nodes } => {
                let c = child.clone();
                match blocking(&self.store, move |s| s.child_health(&c, nodes)).await {
                    Ok(()) => Message::HealthAck,
                    Err(e) => {
                        warn!(child = %child.info.name, error = %e, "cannot store the child's health report");
                        Message::Error { code: ErrorCode::Internal, message: "the parent could not store the health report".into() }
                    }
                }
            }
            Message::BlobOffer { hash, size, manifest } => {
                return self.receive_blob(child, send, recv, hash, Manifest { size, cvs: manifest }).await;
            }
            Message::BlobFetch { hash, offset, len, manifest } => {
                return self.serve_range(child, send, hash, offset, len, manifest).await;
            }
            other => Message::Error { code: ErrorCode::BadRequest, message: format!("unexpected request {}", protocol::describe(&other)) },
        };
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

    /// Serves a range of a blob to a child that fetches it: from the store, or through this
    /// node's own pull-through cache when it does not hold the blob.
    async fn serve_range(&self, child: &Peer, mut send: SendStream, hash: BlobHash, offset: u64, len: u64, want_manifest: bool) -> Result<(), LinkError> {
        let len = len.min(MAX_RANGE);
        if !offset.is_multiple_of(CHUNK) {
            let msg = Message::Error { code: ErrorCode::BadRequest, message: format!("range start {offset} is not a chunk boundary") };
            write_msg(&mut send, &msg).await?;
            send.finish()?;
            return Ok(());
        }
        let local = self.blobs.blob(&hash);
        let range = match (&local, &self.ranges) {
            (Some(_), _) => {
                let blobs = self.blobs.clone();
                let manifest = tokio::task::spawn_blocking(move || blobs.manifest(&hash)).await.map_err(join_err)?;
                manifest.map(|m| Range { manifest: m, offset, bytes: bytes::Bytes::new() }).map_err(LinkError::from)
            }
            (None, Some(source)) => source.read_range(hash, offset, len).await,
            (None, None) => Err(LinkError::Remote { code: ErrorCode::NotFound, message: format!("this node does not hold blob {hash}") }),
        };
        let range = range.and_then(|r| {
            if offset <= r.manifest.size { Ok(r) } else { Err(LinkError::Protocol(format!("range start {offset} is past the blob's end"))) }
        });
        let range = match range {
            Ok(r) => r,
            Err(e) => {
                let code = match &e {
                    LinkError::Remote { code, .. } => *code,
                    LinkError::NoParent => ErrorCode::NotFound,
                    other => error_code(other),
                };
                write_msg(&mut send, &Message::Error { code, message: e.to_string() }).await?;
                send.finish()?;
                return Ok(());
            }
        };
        let size = range.manifest.size;
        let len = len.min(size.saturating_sub(offset));
        let cvs = if want_manifest { range.manifest.cvs } else { Vec::new() };
        write_msg(&mut send, &Message::BlobRange { size, manifest: cvs, offset, len }).await?;
        let progress = self.transfers.start(hash, Direction::Serve, &child.info.name, offset + len, offset);
        match local {
            Some(blob) => send_blob_range(&mut send, &blob, offset, len, None, &progress, &self.counters).await?,
            None => {
                let bytes = range.bytes.slice(..(len as usize).min(range.bytes.len()));
                send.write_all(&bytes).await?;
                LinkCounters::add(&self.counters.blob_bytes_sent, bytes.len() as u64);
                progress.advance(bytes.len() as u64);
            }
        }
        send.finish()?;
        Ok(())
    }
}

/// Stable error code for a failed blob transfer.
fn error_code(e: &LinkError) -> ErrorCode {
    match e {
        LinkError::Blob(BlobError::HashMismatch { .. } | BlobError::SizeMismatch { .. } | BlobError::ChunkMismatch { .. } | BlobError::Manifest { .. }) => {
            ErrorCode::HashMismatch
        }
        LinkError::Blob(BlobError::DiskFull { .. }) => ErrorCode::StorageFull,
        LinkError::Blob(BlobError::Busy { .. }) => ErrorCode::Busy,
        LinkError::Protocol(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    }
}

/// Reads raw blob bytes from `recv` to its end into `incoming`. Bytes are gathered into whole
/// chunks; each chunk is checked and written (on the blocking pool) before the next is read, so
/// what this node has taken off the stream but not yet kept is always less than one chunk (QUIC's
/// flow-control window keeps the sender busy meanwhile). Completes the blob if all of it came;
/// otherwise keeps the verified prefix and fails.
pub async fn receive_into(incoming: Incoming, recv: &mut RecvStream, progress: &Transfer, counters: &LinkCounters) -> Result<(), LinkError> {
    let mut incoming = Some(incoming);
    // Bytes of the chunk being gathered; read straight into it (several QUIC frames per read).
    let mut buf: Vec<u8> = vec![0u8; CHUNK as usize];
    let mut filled = 0usize;
    let mut network: Result<(), LinkError> = Ok(());
    loop {
        let inc = incoming.as_ref().ok_or_else(|| LinkError::Protocol("receiver lost".into()))?;
        let chunk_start = inc.have();
        // The whole current chunk (shorter at the blob's end); past the end, room to notice excess.
        let want = (inc.size().saturating_sub(chunk_start).min(CHUNK) as usize).max(1);
        let read = tokio::time::timeout(BLOB_IDLE_TIMEOUT, recv.read(buf.get_mut(filled..want).unwrap_or_default())).await;
        let n = match read {
            Err(_) => {
                network = Err(LinkError::Timeout("blob bytes"));
                break;
            }
            Ok(Err(e)) => {
                network = Err(e.into());
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(n))) => n,
        };
        LinkCounters::add(&counters.blob_bytes_received, n as u64);
        filled += n;
        if filled == want || chunk_start + filled as u64 >= inc.size() {
            let mut inc = incoming.take().ok_or_else(|| LinkError::Protocol("receiver lost".into()))?;
            let data = std::mem::take(&mut buf);
            let len = filled;
            let (inc, data, result) = tokio::task::spawn_blocking(move || {
                let r = inc.write(data.get(..len).unwrap_or_default());
                (inc, data, r)
            })
            .await
            .map_err(join_err)?;
            result?;
            progress.advance(len as u64);
            buf = data;
            filled = 0;
            incoming = Some(inc);
        }
    }
    let mut inc = incoming.take().ok_or_else(|| LinkError::Protocol("receiver lost".into()))?;
    let written = tokio::task::spawn_blocking(move || {
        if inc.is_complete() {
            return inc.finish();
        }
        let (hash, have, size) = (inc.hash(), inc.have(), inc.size());
        inc.sync()?;
        Err(BlobError::Incomplete { hash, have, size })
    })
    .await
    .map_err(join_err)?;
    match (network, written) {
        (_, Ok(())) => Ok(()),
        (Err(e), Err(BlobError::Incomplete { .. })) => Err(e),
        (_, Err(e)) => Err(e.into()),
    }
}

fn join_err(e: tokio::task::JoinError) -> LinkError {
    LinkError::Store(Box::new(e))
}


/// Enrolls this node under the parent at `parent_addr` with a join token: makes its key pairs,
/// checks that the parent belongs to the token's federation, and returns the certificates it
/// issued, checked up to the root. Nothing is written; the caller saves the enrollment.
pub async fn enroll(parent_addr: &str, token: &JoinToken, node_id: &str) -> Result<pki::Enrollment, LinkError> {
    pki::check_node_id(node_id)?;
    let addr = tokio::net::lookup_host(parent_addr)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| LinkError::Resolve(parent_addr.to_string()))?;
    let bind: SocketAddr = if addr.is_ipv6() { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() } else { (std::net::Ipv4Addr::UNSPECIFIED, 0).into() };
    let mut endpoint = Endpoint::client(bind)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crate::identity::enroll_client_config(token.root_hash, protocol::ENROLL_ALPN)?));
    client.transport_config(transport());
    endpoint.set_default_client_config(client);
    let result = enroll_on(&endpoint, addr, parent_addr, token, node_id).await;
    endpoint.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    result
}

async fn enroll_on(endpoint: &Endpoint, addr: SocketAddr, parent_addr: &str, token: &JoinToken, node_id: &str) -> Result<pki::Enrollment, LinkError> {
    let conn = tokio::time::timeout(MESSAGE_TIMEOUT, endpoint.connect(addr, "youke-enroll")?)
        .await
        .map_err(|_| LinkError::Timeout("the parent to answer"))?
        .map_err(connection_error)?;
    let chain = peer_chain(&conn);
    let (Some(parent_cert), Some(root)) = (chain.first(), chain.last()) else {
        return Err(LinkError::Pin("the parent presented no certificate".into()));
    };
    let node_key = pki::new_key()?;
    let ca_key = pki::new_key()?;
    let transcript = protocol::enroll_transcript(&token.secret, node_id);
    let ask = Message::Enroll {
        token: token.secret.to_vec(),
        node_id: node_id.to_string(),
        public_key: node_key.public_key_raw().to_vec(),
        proof: pki::prove(&node_key, &transcript)?,
        ca_public_key: ca_key.public_key_raw().to_vec(),
        ca_proof: pki::prove(&ca_key, &transcript)?,
    };
    let (_s, _r, answer) = request(&conn, &ask).await?;
    conn.close(0u32.into(), b"enrolled");
    let (place, name, node_cert, intermediates, ca_cert) = match answer {
        Message::Enrolled { place, name, node_cert, intermediates, ca_cert } => (place, name, node_cert, intermediates, ca_cert),
        Message::Refused { reason } => return Err(LinkError::Refused(reason)),
        other => return Err(LinkError::Protocol(format!("expected an enrollment answer, got {}", protocol::describe(&other)))),
    };
    let place = Place::parse(&place)?;
    if place.node_id() != node_id || intermediates.len() > 2 || name.len() > protocol::MAX_TEXT {
        return Err(LinkError::Protocol(format!("the parent issued a certificate for {place} instead of this node ({node_id})")));
    }
    let parent_place = place.parent().ok_or_else(|| LinkError::Protocol("the parent issued a province certificate".into()))?;
    pki::check_peer_place(parent_cert, &parent_place)
        .map_err(|_| LinkError::Pin(format!("the node at {parent_addr} is not {parent_place}, the parent named in the answer")))?;
    let ca = ca_cert.map(|c| (c, &ca_key));
    Ok(pki::accept_enrollment(place, name, root.to_vec(), node_cert, &node_key, intermediates, ca)?)
}
