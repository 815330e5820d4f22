//! `youke bench signin`: a burst of sign-ins against a real `youke serve` process, each attempt
//! from its own loopback address (127.0.0.0/8 is all loopback on Linux) so that the throttle
//! lets every one of them reach the password check. Measured per burst size and round: the
//! node's resident memory when idle, its peak during the burst (`VmHWM` after resetting it
//! through `clear_refs`), and afterwards; its open files; what the attempts were answered
//! (401 checked, 503 busy, anything else is a defect); the lesson page's latency while the
//! burst runs. Results for docs/BENCHMARKS.md.
//!
//! The client helpers ([`connect_from`], [`exchange`], [`at_once`]) are the ones the hardening
//! tests use.

use crate::harness::bench::media::median;
use crate::config::Config;
use crate::context::{NodeCtx, NodeError};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use youke_federation::Tier;

/// An HTTP/1.1 answer read to the end of its connection (status 0: none came).
#[derive(Debug, Default, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn parse(bytes: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
        Answer { status, headers, body: body.to_string() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A connection to `127.0.0.1:port` from the loopback address `from`.
pub async fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((from, 0)))?;
    s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Sends `request` and reads the answer until the node closes the connection (the requests
/// ask it to), for at most 90 s.
pub async fn exchange(mut s: TcpStream, request: &[u8]) -> Answer {
    if s.write_all(request).await.is_err() {
        return Answer::default();
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(90), s.read_to_end(&mut buf)).await;
    Answer::parse(&buf)
}

/// `POST /api/v1/session` for `name` and `password`.
pub fn sign_in_request(name: &str, password: &str) -> Vec<u8> {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    format!("POST /api/v1/session HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes()
}

/// Sends every request at the same moment: every connection is made first, then all requests
/// are written at once. The answers in order.
pub async fn at_once(port: u16, requests: Vec<(Ipv4Addr, Vec<u8>)>) -> Vec<Answer> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len().max(1)));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(from, req)| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let conn = connect_from(from, port).await;
                barrier.wait().await;
                match conn {
                    Ok(c) => exchange(c, &req).await,
                    Err(_) => Answer::default(),
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_default());
    }
    out
}

/// The `n`th distinct loopback client address of a round (127.R.x.y).
pub fn client(round: u8, n: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, round.saturating_add(10), (n / 250) as u8, (n % 250 + 1) as u8)
}

/// A value of /proc/PID/status in bytes (`VmRSS:`, `VmHWM:`).
pub fn proc_status_bytes(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct SigninBenchOptions {
    pub dir: PathBuf,
    /// Attempts per burst.
    pub bursts: Vec<u32>,
    pub rounds: usize,
    /// How long to wait after the last burst before the last RSS reading (the password workers
    /// give their memory back after [`crate::passwords::IDLE_RELEASE`] idle).
    pub settle: Duration,
}

#[derive(Debug, Clone)]
pub struct Burst {
    pub attempts: u32,
    pub statuses: BTreeMap<u16, usize>,
    pub took: Duration,
    pub idle_rss: u64,
    pub peak_rss: u64,
    /// Two seconds after the burst.
    pub after_rss: u64,
    pub idle_files: usize,
    pub after_files: usize,
    /// The lesson page's latencies while the burst ran.
    pub page_ms: Vec<f64>,
    pub page_failures: usize,
}

#[derive(Debug)]
pub struct SigninBenchReport {
    pub bursts: Vec<Burst>,
    /// After the last burst and the pool's idle release.
    pub released_rss: u64,
    pub start_rss: u64,
    pub workers: usize,
    pub opts: SigninBenchOptions,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid(format!("benchmark: {e}"))
}

const PASSWORD: &str = "bench admin password";

/// A `youke serve` child killed when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, NodeError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?.local_addr().map_err(err)?.port())
}

/// A school with an admin and one lesson, serving in a process of its own; its page's path.
fn start(dir: &Path) -> Result<(Serving, u16, String), NodeError> {
    let data = dir.join("school");
    let http = free_port()?;
    let quic = std::net::UdpSocket::bind("127.0.0.1:0").map_err(err)?.local_addr().map_err(err)?.port();
    let mut config = Config { role: Tier::School, name: "基准学校".into(), http: ([127, 0, 0, 1], http).into(), quic: ([127, 0, 0, 1], quic).into(), ..Config::default() };
    config.media.transcode = false;
    config.import.watch_dir = None;
    std::fs::create_dir_all(&data).map_err(err)?;
    config.save(&data)?;
    let lesson = {
        let ctx = NodeCtx::open(&data, config)?;
        ctx.store.write(|tx| crate::accounts::create_user(tx, "admin", "管理员", crate::accounts::Role::Admin, PASSWORD)).map_err(err)?;
        crate::harness::bench::make_lessons(&ctx, 1, Tier::School, "lesson")?.pop().ok_or_else(|| err("no lesson made"))?
    };
    let exe = std::env::current_exe().map_err(err)?;
    let log = std::fs::File::create(dir.join("serve.log")).map_err(err)?;
    let child = Command::new(exe).arg("--data").arg(&data).arg("serve").env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(log).spawn().map_err(err)?;
    let serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        if Instant::now() > deadline {
            return Err(err(format!("the node did not start; see {}", dir.join("serve.log").display())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((serving, http, format!("/lessons/{lesson}")))
}

/// Runs the benchmark (blocking).
pub fn signin(opts: &SigninBenchOptions) -> Result<SigninBenchReport, NodeError> {
    let _ = std::fs::remove_dir_all(&opts.dir);
    std::fs::create_dir_all(&opts.dir).map_err(err)?;
    // Hundreds of client sockets at once.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_err(err)?;
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    let (serving, http, page) = start(&opts.dir)?;
    let pid = serving.0.id();
    let rss = |key: &str| proc_status_bytes(pid, key).unwrap_or(0);
    let runtime = crate::store::runtime().map_err(err)?;
    std::thread::sleep(Duration::from_secs(1));
    let start_rss = rss("VmRSS:");
    let total = opts.bursts.len() * opts.rounds;
    let bar = crate::harness::bench::bar(total as u64, "sign-in bursts");
    let mut bursts = Vec::new();
    let mut round_no = 0u8;
    for round in 0..opts.rounds {
        for &attempts in &opts.bursts {
            // Each burst from addresses of its own: the throttle has seen none of them.
            round_no = round_no.wrapping_add(1);
            let (idle_rss, idle_files) = (rss("VmRSS:"), open_files(pid));
            std::fs::write(format!("/proc/{pid}/clear_refs"), "5").map_err(|e| err(format!("cannot reset the peak RSS (clear_refs): {e}")))?;
            let page_req = format!("GET {page} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
            let started = Instant::now();
            let (answers, pages) = runtime.block_on(async {
                let requests = (0..attempts).map(|i| (client(round_no, i), sign_in_request("admin", "wrong password"))).collect();
                let burst = tokio::spawn(at_once(http, requests));
                let mut pages = Vec::new();
                while !burst.is_finished() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let t = Instant::now();
                    let a = match connect_from(Ipv4Addr::new(127, 0, 0, 9), http).await {
                        Ok(c) => exchange(c, page_req.as_bytes()).await,
                        Err(_) => Answer::default(),
                    };
                    pages.push((a.status, t.elapsed()));
                }
                (burst.await.unwrap_or_default(), pages)
            });
            let took = started.elapsed();
            let peak_rss = rss("VmHWM:");
            std::thread::sleep(Duration::from_secs(2));
            let mut statuses = BTreeMap::new();
            for a in &answers {
                *statuses.entry(a.status).or_insert(0) += 1;
            }
            bursts.push(Burst {
                attempts,
                statuses,
                took,
                idle_rss,
                peak_rss,
                after_rss: rss("VmRSS:"),
                idle_files,
                after_files: open_files(pid),
                page_ms: pages.iter().filter(|(s, _)| *s == 200).map(|(_, t)| t.as_secs_f64() * 1000.0).collect(),
                page_failures: pages.iter().filter(|(s, _)| *s != 200).count(),
            });
            bar.inc(1);
        }
        let _ = round;
    }
    bar.finish_and_clear();
    // The password workers give their memory back once idle.
    std::thread::sleep(opts.settle);
    let released_rss = rss("VmRSS:");
    let workers = crate::passwords::PasswordPool::sized_to_cores().workers();
    drop(serving);
    Ok(SigninBenchReport { bursts, released_rss, start_rss, workers, opts: opts.clone() })
}

fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1u32 << 20)
}

/// The report as a Markdown table for docs/BENCHMARKS.md.
pub fn markdown(r: &SigninBenchReport) -> String {
    let mut o = format!(
        "{} rounds per burst size; {} password worker(s) on this machine; node RSS at start {:.0} MiB, {:.0} MiB {} s after the last burst.\n\n\
         | attempts at once | answers (all rounds) | peak RSS over idle, median (max) | RSS 2 s after, over idle | open files after (idle) | burst took, median | lesson page during the burst, median (max) | page failures |\n|---|---|---|---|---|---|---|---|\n",
        r.opts.rounds,
        r.workers,
        mib(r.start_rss),
        mib(r.released_rss),
        r.opts.settle.as_secs(),
    );
    for &n in &r.opts.bursts {
        let of: Vec<&Burst> = r.bursts.iter().filter(|b| b.attempts == n).collect();
        let mut statuses = BTreeMap::new();
        for b in &of {
            for (s, c) in &b.statuses {
                *statuses.entry(*s).or_insert(0) += c;
            }
        }
        let answers = statuses.iter().map(|(s, c)| format!("{c}× {s}")).collect::<Vec<_>>().join(", ");
        let over: Vec<f64> = of.iter().map(|b| mib(b.peak_rss.saturating_sub(b.idle_rss))).collect();
        let after: Vec<f64> = of.iter().map(|b| mib(b.after_rss) - mib(b.idle_rss)).collect();
        let pages: Vec<f64> = of.iter().flat_map(|b| b.page_ms.iter().copied()).collect();
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let _ = std::fmt::Write::write_fmt(
            &mut o,
            format_args!(
                "| {n} | {answers} | {:.0} MiB ({:.0}) | {:.0} MiB | {} ({}) | {:.1} s | {:.1} ms ({:.0}) | {} |\n",
                median(over.clone()),
                max(&over),
                median(after),
                of.iter().map(|b| b.after_files).max().unwrap_or(0),
                of.iter().map(|b| b.idle_files).max().unwrap_or(0),
                median(of.iter().map(|b| b.took.as_secs_f64()).collect()),
                median(pages.clone()),
                max(&pages),
                of.iter().map(|b| b.page_failures).sum::<usize>(),
            ),
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_clients_are_distinct() {
        let a = Answer::parse(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\ncontent-type: x\r\n\r\n{\"a\":1}");
        assert_eq!((a.status, a.header("retry-after"), a.body.as_str()), (503, Some("2"), "{\"a\":1}"));
        assert_eq!(Answer::parse(b"").status, 0);
        let all: std::collections::HashSet<Ipv4Addr> = (0..1000).map(|i| client(1, i)).collect();
        assert_eq!(all.len(), 1000);
        assert!(all.iter().all(|a| a.is_loopback()));
    }
}
