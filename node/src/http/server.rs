//! The HTTP server around the router: hyper with limits the default `axum::serve` does not set.
//!
//! - HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy in front of the
//!   node ends; cleartext HTTP/2 would add a second parser and a preface read without a time
//!   limit.
//! - A client gets [`HEADER_READ_TIMEOUT`] for its whole request head (request line and
//!   headers, counted from when the connection is ready for it, idle keep-alive time included),
//!   on hyper's path and on the zero-copy path alike; at most 64 KiB of headers and 100 header
//!   lines (431 beyond).
//! - At most `limits.connections_per_address` connections from one address (an IPv6 client by
//!   its /64, see [`client_key`]) and `limits.max_connections` in all (and never more than the
//!   process's file limit allows); a connection beyond is answered 503 and closed at once.
//! - Each connection's address reaches the handlers as `ConnectInfo`. On shutdown, open requests
//!   get 10 s to finish.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;

pub use super::limits::{HEADER_READ_TIMEOUT, MAX_HEADER_BYTES, MAX_HEADERS};
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// File descriptors kept for everything but portal connections (database, media, QUIC, logs).
const RESERVED_FDS: u64 = 512;

/// The address a client is counted by: an IPv4 address as it is (an IPv4-mapped IPv6 address
/// as IPv4), an IPv6 address by its /64, since one host is usually given a whole /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The portal's open connections, counted per client address and in all.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<(HashMap<IpAddr, usize>, usize)>,
    per_address: usize,
    total: usize,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    connections: Arc<Connections>,
    key: IpAddr,
}

impl Connections {
    pub fn new(per_address: usize, total: usize) -> Arc<Connections> {
        Arc::new(Connections { open: Mutex::new((HashMap::new(), 0)), per_address: per_address.max(1), total: total.max(1) })
    }

    /// A place for a connection from `ip`, or `None` when its address or the node is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let key = client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (by_address, all) = &mut *open;
        let mine = by_address.entry(key).or_insert(0);
        if *mine >= self.per_address || *all >= self.total {
            if *mine == 0 {
                by_address.remove(&key);
            }
            return None;
        }
        *mine += 1;
        *all += 1;
        Some(Admitted { connections: Arc::clone(self), key })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().unwrap_or_else(|p| p.into_inner());
        let (by_address, all) = &mut *open;
        *all = all.saturating_sub(1);
        if let Some(n) = by_address.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_address.remove(&self.key);
            }
        }
    }
}

/// What a connection beyond the limits is told before it is closed.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 55\r\n\r\ntoo many connections from this address; try again later";

/// Raises the soft limit of open files to the hard one (as Go and nginx's
/// `worker_rlimit_nofile` do) and returns the connections that leave [`RESERVED_FDS`] free.
fn connections_the_file_limit_allows() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return usize::MAX };
    let soft = if hard > soft && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    usize::try_from(soft.saturating_sub(RESERVED_FDS).max(64)).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` until `cancel` fires, admitting connections by `limits`
/// (per address, in all). With `fast`, connections start on the zero-copy path for HLS ladder
/// files ([`super::fastpath`]) and move to hyper at their first other request.
pub async fn serve(listener: TcpListener, app: Router, cancel: CancellationToken, fast: Option<super::fastpath::FastPath>, limits: crate::config::Limits) {
    let total = limits.max_connections.min(connections_the_file_limit_allows());
    let connections = Connections::new(limits.connections_per_address, total);
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    // A client may shut down its sending side and still wait for the answer (half-close).
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_buf_size(MAX_HEADER_BYTES).max_headers(MAX_HEADERS).half_close(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, addr) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = connections.admit(addr.ip()) else {
            // One try to say why, without waiting on a client that does not read.
            let _ = stream.try_write(FULL);
            tracing::debug!(%addr, "connection refused: too many open from this address or in all");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(axum::Extension(ConnectInfo::<SocketAddr>(addr)).layer(app.clone()));
        let (builder, watcher, fast, cancel) = (builder.clone(), graceful.watcher(), fast.clone(), cancel.clone());
        tokio::spawn(async move {
            let _admitted = admitted;
            let io = match &fast {
                Some(f) => match f.serve(stream, &cancel).await {
                    Some(io) => io,
                    None => return,
                },
                None => super::fastpath::Rewind::new(stream),
            };
            let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned());
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::info!("HTTP connections still open at shutdown were closed"),
    }
}

/// The fuzz target of the connection path (`fuzz/fuzz_targets/fast_path.rs`): the bytes are
/// what one client sends on a connection to a node serving with the fast path on (started
/// once, in this process, with one ladder); the connection must end (the node answers or
/// closes) and nothing may panic. Returns what the node answered.
#[doc(hidden)]
pub fn fuzz_connection(data: &[u8]) -> Vec<u8> {
    static SERVER: std::sync::OnceLock<Option<(tokio::runtime::Runtime, std::net::SocketAddr)>> = std::sync::OnceLock::new();
    let Some((rt, addr)) = SERVER.get_or_init(fuzz_server).as_ref() else { return Vec::new() };
    rt.block_on(async {
        let mut answer = Vec::new();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return answer };
        let _ = s.write_all(data).await;
        let _ = s.shutdown().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut answer)).await;
        answer
    })
}

/// The hash whose ladder the fuzzed node holds.
#[doc(hidden)]
pub const FUZZ_LADDER: &str = "1b3ba0b6b5e8b4a5ea47d5b3ebbbd6e3b39bbf04a8c4a3e7a5d4b1b9d1d9b8a7";

fn fuzz_server() -> Option<(tokio::runtime::Runtime, std::net::SocketAddr)> {
    // One directory per process; those of processes that have ended are removed.
    const PREFIX: &str = "youke-fuzz-fast-path-";
    for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(PREFIX)
            && !std::path::Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = crate::config::Config::default();
    config.media.transcode = false;
    config.import.watch_dir = None;
    config.limits.connections_per_address = 1 << 20;
    let ctx = Arc::new(crate::NodeCtx::open(&dir, config).ok()?);
    let rung = crate::media_jobs::hls_dir(&ctx.data_dir, FUZZ_LADDER).join("720p");
    std::fs::create_dir_all(&rung).ok()?;
    std::fs::write(rung.join("seg_00001.ts"), vec![0x47u8; 188 * 64]).ok()?;
    std::fs::write(rung.parent()?.join("master.m3u8"), "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1500000\n720p/index.m3u8\n").ok()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().ok()?;
    let index = Arc::new(youke_search::LessonIndex::in_memory().ok()?);
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).ok()?;
    let addr = listener.local_addr().ok()?;
    let app = super::router(super::AppState::new(Arc::clone(&ctx), index));
    let limits = ctx.config.limits.clone();
    rt.spawn(serve(listener, app, CancellationToken::new(), Some(super::fastpath::FastPath { ctx }), limits));
    Some((rt, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_address_and_ipv6_by_its_64() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(client_key(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        let c = Connections::new(2, 3);
        let a1 = c.admit(ip("10.0.0.1")).expect("first");
        let _a2 = c.admit(ip("10.0.0.1")).expect("second");
        assert!(c.admit(ip("10.0.0.1")).is_none(), "a third from one address");
        let _b = c.admit(ip("2001:db8::1")).expect("another address");
        assert!(c.admit(ip("2001:db8::2")).is_none(), "the node is full");
        drop(a1);
        assert_eq!(c.open(), 2);
        c.admit(ip("10.0.0.1")).expect("a place came free");
    }

    #[test]
    fn the_refusal_is_a_whole_http_answer() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(FULL).expect("parses") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("cut"),
        };
        assert_eq!(resp.code, Some(503));
        let len = resp.headers.iter().find(|h| h.name == "content-length").map(|h| String::from_utf8_lossy(h.value).parse::<usize>().expect("number"));
        assert_eq!(len, Some(FULL.len() - n));
    }
}
