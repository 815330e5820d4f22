//! The fault-injecting UDP proxy: a link between a QUIC child and its parent on loopback that
//! drops, delays, reorders (by jitter) and rate-limits packets through a bounded queue, and can
//! black-hole the link, all from a seed so a failing run replays. Used by the integration tests
//! and by `youke bench sharing` for its shaped school link. It only ever sends to the upstream it
//! was given and to the clients that sent to it.

use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the link does to packets, in both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Fraction of packets dropped, 0.0 to 1.0.
    pub drop_rate: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra random delay, uniform in 0..jitter; packets overtake each other when it exceeds
    /// the gap between them.
    pub jitter: Duration,
    /// Link capacity in bytes per second, each direction; unlimited if `None`.
    pub bandwidth: Option<u64>,
    /// The bottleneck's queue in bytes, each direction: a packet arriving when this much is
    /// already waiting for the link is dropped (tail drop), as at a router. Unbounded if `None`;
    /// only meaningful with `bandwidth`.
    pub queue: Option<u64>,
    /// Drop everything (the link is down) while true.
    pub blackhole: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig { drop_rate: 0.0, delay: Duration::ZERO, jitter: Duration::ZERO, bandwidth: None, queue: None, blackhole: false }
    }
}

/// A deterministic generator (xorshift64*), so a seed replays the same faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo) }
    }
}

/// Counts of what the proxy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub forwarded: u64,
    pub dropped: u64,
}

struct Shared {
    config: Mutex<FaultConfig>,
    stats: Mutex<FaultStats>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// A packet waiting for its delivery time.
struct Pending {
    at: Instant,
    order: u64,
    to: SocketAddr,
    via: Arc<UdpSocket>,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.order == o.order
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.at.cmp(&self.at).then(o.order.cmp(&self.order))
    }
}

/// One direction of the link: its own generator and bandwidth clock.
struct Direction {
    rng: Rng,
    free_at: Instant,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream`.
    pub async fn start(upstream: SocketAddr, config: FaultConfig, seed: u64) -> std::io::Result<FaultProxy> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared { config: Mutex::new(config), stats: Mutex::new(FaultStats::default()) });
        let cancel = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        tokio::spawn(deliver(rx, cancel.clone()));
        tokio::spawn(run(front, upstream, Arc::clone(&shared), tx, seed, cancel.clone()));
        Ok(FaultProxy { addr, shared, cancel })
    }

    /// The address clients send to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, config: FaultConfig) {
        if let Ok(mut c) = self.shared.config.lock() {
            *c = config;
        }
    }

    pub fn set_blackhole(&self, on: bool) {
        if let Ok(mut c) = self.shared.config.lock() {
            c.blackhole = on;
        }
    }

    pub fn stats(&self) -> FaultStats {
        self.shared.stats.lock().map(|s| *s).unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Decides the fate of one packet: `None` to drop it, or when to deliver it.
fn schedule(config: &FaultConfig, dir: &mut Direction, len: usize, now: Instant) -> Option<Instant> {
    if config.blackhole || dir.rng.unit() < config.drop_rate {
        return None;
    }
    let jitter = if config.jitter.is_zero() { Duration::ZERO } else { Duration::from_nanos(dir.rng.range(0, config.jitter.as_nanos() as u64)) };
    let mut at = now + config.delay + jitter;
    if let Some(bw) = config.bandwidth.filter(|b| *b > 0) {
        let start = dir.free_at.max(now);
        let waiting = (start - now).as_secs_f64() * bw as f64;
        if config.queue.is_some_and(|q| waiting + len as f64 > q as f64) {
            return None;
        }
        let done = start + Duration::from_secs_f64(len as f64 / bw as f64);
        dir.free_at = done;
        at = at.max(done + config.delay);
    }
    Some(at)
}

async fn run(
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    tx: tokio::sync::mpsc::UnboundedSender<Pending>,
    seed: u64,
    cancel: CancellationToken,
) {
    // One upstream socket per client, so the server sees distinct peers.
    let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut up = Direction { rng: Rng::new(seed), free_at: Instant::now() };
    let down = Arc::new(Mutex::new(Direction { rng: Rng::new(seed ^ 0xD0D0), free_at: Instant::now() }));
    let mut order = 0u64;
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = front.recv_from(&mut buf) => match r { Ok(v) => v, Err(_) => continue },
        };
        let sock = match clients.get(&from) {
            Some(s) => Arc::clone(s),
            None => {
                let Ok(s) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                let s = Arc::new(s);
                clients.insert(from, Arc::clone(&s));
                tokio::spawn(relay_back(Arc::clone(&s), Arc::clone(&front), from, Arc::clone(&shared), Arc::clone(&down), tx.clone(), cancel.clone()));
                s
            }
        };
        let config = shared.config.lock().map(|c| c.clone()).unwrap_or_default();
        let data = buf.get(..n).unwrap_or_default().to_vec();
        order += 1;
        match schedule(&config, &mut up, n, Instant::now()) {
            Some(at) => {
                count(&shared, true);
                let _ = tx.send(Pending { at, order, to: upstream, via: sock, data });
            }
            None => count(&shared, false),
        }
    }
}

async fn relay_back(
    sock: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<Shared>,
    down: Arc<Mutex<Direction>>,
    tx: tokio::sync::mpsc::UnboundedSender<Pending>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    let mut order = 1u64 << 62;
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sock.recv(&mut buf) => match r { Ok(n) => n, Err(_) => continue },
        };
        let config = shared.config.lock().map(|c| c.clone()).unwrap_or_default();
        let when = down.lock().ok().and_then(|mut d| schedule(&config, &mut d, n, Instant::now()));
        order += 1;
        match when {
            Some(at) => {
                count(&shared, true);
                let _ = tx.send(Pending { at, order, to: client, via: Arc::clone(&front), data: buf.get(..n).unwrap_or_default().to_vec() });
            }
            None => count(&shared, false),
        }
    }
}

fn count(shared: &Shared, forwarded: bool) {
    if let Ok(mut s) = shared.stats.lock() {
        if forwarded {
            s.forwarded += 1;
        } else {
            s.dropped += 1;
        }
    }
}

/// Sends each packet at its time, in time order (so jitter reorders).
async fn deliver(mut rx: tokio::sync::mpsc::UnboundedReceiver<Pending>, cancel: CancellationToken) {
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    loop {
        let next = heap.peek().map(|p| p.at);
        tokio::select! {
            _ = cancel.cancelled() => return,
            msg = rx.recv() => match msg {
                Some(p) => heap.push(p),
                None => return,
            },
            _ = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                while heap.peek().is_some_and(|p| p.at <= now) {
                    if let Some(p) = heap.pop() {
                        // Sockets are connectionless: `send_to` works for both directions.
                        let _ = p.via.send_to(&p.data, p.to).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let config = FaultConfig { drop_rate: 0.3, jitter: Duration::from_millis(10), ..FaultConfig::default() };
        let now = Instant::now();
        let run = |seed| {
            let mut d = Direction { rng: Rng::new(seed), free_at: now };
            (0..200).map(|_| schedule(&config, &mut d, 1200, now)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let dropped = run(7).iter().filter(|x| x.is_none()).count();
        assert!((40..80).contains(&dropped), "about 30% of 200 dropped, got {dropped}");
    }

    #[test]
    fn bandwidth_spaces_packets_out() {
        let config = FaultConfig { bandwidth: Some(1_000_000), ..FaultConfig::default() };
        let now = Instant::now();
        let mut d = Direction { rng: Rng::new(1), free_at: now };
        let last = (0..100).filter_map(|_| schedule(&config, &mut d, 10_000, now)).last().expect("delivered");
        // 100 packets of 10 kB at 1 MB/s take one second.
        assert!((last - now).as_secs_f64() > 0.99 && (last - now).as_secs_f64() < 1.01);
    }

    #[test]
    fn a_full_queue_drops_the_tail() {
        // 1 MB/s with a 50 kB queue: of 100 packets of 10 kB arriving at once, the five that fit
        // wait and the rest are dropped; once the queue drains, packets pass again.
        let config = FaultConfig { bandwidth: Some(1_000_000), queue: Some(50_000), ..FaultConfig::default() };
        let now = Instant::now();
        let mut d = Direction { rng: Rng::new(1), free_at: now };
        let passed = (0..100).filter(|_| schedule(&config, &mut d, 10_000, now).is_some()).count();
        assert_eq!(passed, 5);
        assert!(schedule(&config, &mut d, 10_000, now + Duration::from_millis(50)).is_some());
    }

    #[tokio::test]
    async fn forwards_both_ways_and_blackholes() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let server_addr = server.local_addr().expect("addr");
        let proxy = FaultProxy::start(server_addr, FaultConfig { delay: Duration::from_millis(5), ..FaultConfig::default() }, 1).await.expect("proxy");
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        client.send_to(b"ping", proxy.addr()).await.expect("send");
        let mut buf = [0u8; 16];
        let (n, via) = tokio::time::timeout(Duration::from_secs(2), server.recv_from(&mut buf)).await.expect("in time").expect("recv");
        assert_eq!(&buf[..n], b"ping");
        server.send_to(b"pong", via).await.expect("send back");
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf)).await.expect("in time").expect("recv");
        assert_eq!((&buf[..n], from), (&b"pong"[..], proxy.addr()));
        proxy.set_blackhole(true);
        client.send_to(b"lost", proxy.addr()).await.expect("send");
        assert!(tokio::time::timeout(Duration::from_millis(200), server.recv_from(&mut buf)).await.is_err());
        assert_eq!(proxy.stats(), FaultStats { forwarded: 2, dropped: 1 });
    }
}
