//! The transport under the links: QUIC endpoint and transport settings, framed messages on
//! streams (one request, one answer), what a refused handshake means, and [`LinkError`]. Both
//! sides of every link and the pull-through fetches use these.

use crate::counters::LinkCounters;
use crate::identity::{Fingerprint, IdentityError, NodeIdentity};
use crate::protocol::{self, ErrorCode, FrameError, Message};
use crate::{blobs::BlobError, pki};
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::debug;

pub use crate::sync::StoreError;

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
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

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
pub(crate) fn is_version_mismatch(e: &quinn::ConnectionError) -> bool {
    let code = quinn::TransportErrorCode::crypto(120);
    match e {
        quinn::ConnectionError::TransportError(t) => t.code == code,
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code == code,
        _ => false,
    }
}

pub(crate) fn version_error() -> LinkError {
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

pub(crate) fn connection_error(e: quinn::ConnectionError) -> LinkError {
    if is_version_mismatch(&e) {
        return version_error();
    }
    match certificate_refusal(&e) {
        Some(why) => LinkError::Pin(why),
        None => LinkError::Connection(e),
    }
}

pub(crate) async fn read_msg(recv: &mut RecvStream) -> Result<Message, LinkError> {
    read_msg_within(recv, protocol::MAX_MESSAGE_SIZE).await
}

/// Reads one message whose frame is at most `limit` bytes.
pub(crate) async fn read_msg_within(recv: &mut RecvStream, limit: usize) -> Result<Message, LinkError> {
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

pub(crate) async fn write_msg(send: &mut SendStream, msg: &Message) -> Result<(), LinkError> {
    let frame = protocol::encode(msg)?;
    send.write_all(&frame).await?;
    Ok(())
}

/// One request on a new stream, one answer.
pub(crate) async fn request(conn: &Connection, msg: &Message) -> Result<(SendStream, RecvStream, Message), LinkError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_msg(&mut send, msg).await?;
    let answer = read_msg(&mut recv).await?;
    if let Message::Error { code, message } = answer {
        return Err(LinkError::Remote { code, message });
    }
    Ok((send, recv, answer))
}

/// The certificate chain the peer presented in TLS, if any.
pub(crate) fn peer_chain(conn: &Connection) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|any| any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .map(|b| *b)
        .unwrap_or_default()
}

pub(crate) fn peer_fingerprint(conn: &Connection) -> Result<Fingerprint, LinkError> {
    let chain = peer_chain(conn);
    let first = chain.first().ok_or_else(|| LinkError::Pin("peer presented no certificate".into()))?;
    Ok(Fingerprint::of(first))
}

/// The ALPN the connection agreed on.
pub(crate) fn negotiated_alpn(conn: &Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
}

pub(crate) fn join_err(e: tokio::task::JoinError) -> LinkError {
    LinkError::Store(Box::new(e))
}
