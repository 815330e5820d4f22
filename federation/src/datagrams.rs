//! What arrives on the federation's UDP port: QUIC datagrams told apart from garbage, which is
//! counted (`LinkCounters::garbage_datagrams`) and logged at a bounded rate. quinn drops what
//! it cannot parse without a word; an operator whose port is being scanned or flooded should
//! see it.
//!
//! [`classify`] is pure: the QUIC invariants (RFC 8999) and version 1's header rules (RFC 9000
//! §17), and for a short-header packet its connection id, which this node signs
//! ([`CidKey`]: 4 random bytes and 4 bytes of a keyed BLAKE3 of them, under a key derived from
//! the node's private key so it survives restarts). [`WatchedSocket`] is the thin wrapper
//! around quinn's socket that looks at each datagram received and passes all of them on.

use crate::counters::LinkCounters;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// QUIC version 1.
const VERSION_1: u32 = 1;
const LONG_HEADER: u8 = 0x80;
const FIXED_BIT: u8 = 0x40;
/// Connection ids this node issues: 4 random bytes, then 4 of their signature.
pub const CID_LEN: usize = 8;
const NONCE_LEN: usize = 4;
/// A client's Initial datagram is padded to at least this (RFC 9000 §14.1).
const MIN_INITIAL: usize = 1200;
/// The smallest short-header packet: flags, the connection id, 4 bytes of packet number
/// sample room and a 16-byte authentication tag (header protection samples 16 bytes).
const MIN_SHORT: usize = 1 + CID_LEN + 4 + 16;
/// At most one log line about garbage per this.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The key that signs this node's connection ids.
#[derive(Clone)]
pub struct CidKey([u8; 32]);

impl fmt::Debug for CidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CidKey(…)")
    }
}

impl CidKey {
    pub fn new(key: [u8; 32]) -> CidKey {
        CidKey(key)
    }

    fn signature(&self, nonce: &[u8]) -> [u8; CID_LEN - NONCE_LEN] {
        let h = blake3::keyed_hash(&self.0, nonce);
        let mut sig = [0u8; CID_LEN - NONCE_LEN];
        sig.copy_from_slice(&h.as_bytes()[..CID_LEN - NONCE_LEN]);
        sig
    }

    /// A new connection id: random bytes and their signature.
    pub fn generate(&self, random: [u8; NONCE_LEN]) -> [u8; CID_LEN] {
        let mut id = [0u8; CID_LEN];
        id[..NONCE_LEN].copy_from_slice(&random);
        id[NONCE_LEN..].copy_from_slice(&self.signature(&random));
        id
    }

    /// Whether this node issued `id` (with this key).
    pub fn issued(&self, id: &[u8]) -> bool {
        id.len() == CID_LEN && id[NONCE_LEN..] == self.signature(&id[..NONCE_LEN])
    }
}

/// quinn's connection id generator with signed ids: packets for a connection of this node's
/// previous life are still recognized (and answered with a stateless reset), random bytes are
/// not.
pub struct SignedCids {
    key: CidKey,
    random: ring::rand::SystemRandom,
}

impl SignedCids {
    pub fn new(key: CidKey) -> SignedCids {
        SignedCids { key, random: ring::rand::SystemRandom::new() }
    }
}

impl quinn::ConnectionIdGenerator for SignedCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut nonce = [0u8; NONCE_LEN];
        if ring::rand::SecureRandom::fill(&self.random, &mut nonce).is_err() {
            // The OS random source failing leaves nothing better than the clock.
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            nonce.copy_from_slice(&blake3::hash(&t.to_le_bytes()).as_bytes()[..NONCE_LEN]);
        }
        quinn::ConnectionId::new(&self.key.generate(nonce))
    }

    fn validate(&self, cid: &quinn::ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        if self.key.issued(cid) { Ok(()) } else { Err(quinn_proto::InvalidCid) }
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Quic,
    /// Not QUIC this node speaks: why.
    Garbage(&'static str),
}

/// Looks at one datagram received on the federation port.
pub fn classify(d: &[u8], key: &CidKey) -> Verdict {
    let Some(&first) = d.first() else { return Verdict::Garbage("empty") };
    if first & LONG_HEADER == 0 {
        if first & FIXED_BIT == 0 {
            return Verdict::Garbage("fixed bit clear");
        }
        if d.len() < MIN_SHORT {
            return Verdict::Garbage("too short");
        }
        return if key.issued(&d[1..=CID_LEN]) { Verdict::Quic } else { Verdict::Garbage("unknown connection id") };
    }
    // Long header: flags, version, destination id, source id (RFC 8999 §5.1).
    let Some(version) = d.get(1..5).map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]])) else { return Verdict::Garbage("too short") };
    let Some(&dcid_len) = d.get(5) else { return Verdict::Garbage("too short") };
    let scid_at = 6 + usize::from(dcid_len);
    let Some(&scid_len) = d.get(scid_at) else { return Verdict::Garbage("too short") };
    if d.len() < scid_at + 1 + usize::from(scid_len) {
        return Verdict::Garbage("too short");
    }
    match version {
        // Version negotiation (a server's answer to a client of this node).
        0 => Verdict::Quic,
        VERSION_1 => {
            if dcid_len > 20 || scid_len > 20 {
                return Verdict::Garbage("connection id too long");
            }
            if first & FIXED_BIT == 0 {
                return Verdict::Garbage("fixed bit clear");
            }
            let initial = (first & 0x30) == 0;
            if initial && d.len() < MIN_INITIAL {
                return Verdict::Garbage("initial packet too short");
            }
            Verdict::Quic
        }
        _ => Verdict::Garbage("unknown QUIC version"),
    }
}

/// Counts garbage and logs it at most once per [`LOG_EVERY`].
#[derive(Debug)]
struct Watch {
    key: CidKey,
    counters: Arc<LinkCounters>,
    /// When the last line was logged, and how many came since.
    log: Mutex<(Option<Instant>, u64)>,
}

impl Watch {
    fn look(&self, datagram: &[u8], from: SocketAddr) {
        let Verdict::Garbage(why) = classify(datagram, &self.key) else { return };
        self.counters.garbage_datagrams.fetch_add(1, Ordering::Relaxed);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.1 += 1;
        let now = Instant::now();
        if log.0.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            tracing::warn!(%from, reason = why, datagrams = log.1, "datagrams that are not QUIC of this federation arrived on the federation port (counted in youke_quic_garbage_datagrams_total)");
            *log = (Some(now), 0);
        }
    }
}

/// quinn's UDP socket with every datagram received looked at by [`classify`]; all of them are
/// passed on (quinn drops what it cannot use).
#[derive(Debug)]
pub struct WatchedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    watch: Watch,
}

impl WatchedSocket {
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, key: CidKey, counters: Arc<LinkCounters>) -> WatchedSocket {
        WatchedSocket { inner, watch: Watch { key, counters, log: Mutex::new((None, 0)) } }
    }
}

impl AsyncUdpSocket for WatchedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Arc::clone(&self.inner).create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled {
            for (buf, m) in bufs.iter().zip(meta.iter()).take(*n) {
                let Some(received) = buf.get(..m.len) else { continue };
                // With GRO, one buffer holds several datagrams `stride` apart.
                for datagram in received.chunks(m.stride.max(1)) {
                    self.watch.look(datagram, m.addr);
                }
            }
        }
        polled
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CidKey {
        CidKey::new(*blake3::hash(b"test key").as_bytes())
    }

    fn short(cid: &[u8], len: usize) -> Vec<u8> {
        let mut d = vec![0x40 | 0x01];
        d.extend_from_slice(cid);
        d.resize(len, 0xab);
        d
    }

    fn long(first: u8, version: u32, dcid: &[u8], scid: &[u8], len: usize) -> Vec<u8> {
        let mut d = vec![first];
        d.extend_from_slice(&version.to_be_bytes());
        d.push(dcid.len() as u8);
        d.extend_from_slice(dcid);
        d.push(scid.len() as u8);
        d.extend_from_slice(scid);
        d.resize(len.max(d.len()), 0);
        d
    }

    #[test]
    fn signed_ids_are_recognized_and_random_bytes_are_not() {
        let k = key();
        let id = k.generate([1, 2, 3, 4]);
        assert!(k.issued(&id));
        assert!(!CidKey::new([7; 32]).issued(&id), "another node's key");
        let mut forged = id;
        forged[7] ^= 1;
        assert!(!k.issued(&forged));
        assert_eq!(classify(&short(&id, 60), &k), Verdict::Quic);
        assert_eq!(classify(&short(&forged, 60), &k), Verdict::Garbage("unknown connection id"));
        assert_eq!(classify(&short(&id, 20), &k), Verdict::Garbage("too short"));
        // Of 10,000 random datagrams, none passes for QUIC of this node.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut passed = 0;
        for _ in 0..10_000 {
            let d: Vec<u8> = (0..200)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            if classify(&d, &k) == Verdict::Quic {
                passed += 1;
            }
        }
        assert_eq!(passed, 0);
    }

    #[test]
    fn long_headers_follow_the_invariants_and_version_1() {
        let k = key();
        let initial = long(0xc0, 1, &[9; 8], &[5; 8], 1200);
        assert_eq!(classify(&initial, &k), Verdict::Quic);
        assert_eq!(classify(&long(0xc0, 1, &[9; 8], &[5; 8], 300), &k), Verdict::Garbage("initial packet too short"));
        assert_eq!(classify(&long(0xe0, 1, &[9; 8], &[5; 8], 60), &k), Verdict::Quic, "a handshake packet");
        assert_eq!(classify(&long(0x80, 1, &[9; 8], &[5; 8], 1200), &k), Verdict::Garbage("fixed bit clear"));
        assert_eq!(classify(&long(0xc0, 1, &[9; 21], &[5; 8], 1200), &k), Verdict::Garbage("connection id too long"));
        assert_eq!(classify(&long(0xc0, 0x1a2a_3a4a, &[9; 8], &[5; 8], 1200), &k), Verdict::Garbage("unknown QUIC version"));
        assert_eq!(classify(&long(0x80, 0, &[9; 8], &[5; 8], 40), &k), Verdict::Quic, "version negotiation");
        assert_eq!(classify(&[0xc0, 0, 0, 0, 1, 200, 1], &k), Verdict::Garbage("too short"));
        assert_eq!(classify(&[], &k), Verdict::Garbage("empty"));
        assert_eq!(classify(&[0x01; 100], &k), Verdict::Garbage("fixed bit clear"));
    }

    #[test]
    fn garbage_is_counted_and_logged_at_a_bounded_rate() {
        let counters = Arc::new(LinkCounters::default());
        let w = Watch { key: key(), counters: Arc::clone(&counters), log: Mutex::new((None, 0)) };
        let from: SocketAddr = "192.0.2.7:9999".parse().expect("addr");
        for _ in 0..1000 {
            w.look(b"\x01garbage", from);
        }
        w.look(&short(&key().generate([0; 4]), 64), from);
        assert_eq!(counters.garbage_datagrams.load(Ordering::Relaxed), 1000);
        let log = w.log.lock().expect("lock");
        assert!(log.0.is_some() && log.1 == 999, "one line logged, the rest counted for the next: {:?}", log.1);
    }
}
