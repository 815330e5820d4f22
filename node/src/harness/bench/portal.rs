//! `youke bench portal`: the portal under load, measured with wrk on 127.0.0.1.
//!
//! (a) HLS segments (2 MiB files) served by a school node against nginx (sendfile on) serving
//! the very same files, side by side in one run: rounds alternate between the two servers and
//! the order flips every round, for each connection count; medians of requests/s are compared.
//! (b) The lesson page and the search page at 200 connections: requests/s and latency
//! percentiles (wrk's `--latency`).
//!
//! The node runs in this process; nginx and wrk are the Debian packages (`make bench-portal`
//! installs them). Nothing leaves the loopback interface and every run is bounded in time.

use crate::harness::bench::media::median;
use crate::config::Config;
use crate::context::NodeError;
use crate::services::Node;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;

#[derive(Debug, Clone)]
pub struct PortalBenchOptions {
    pub dir: PathBuf,
    /// Seconds of each wrk run.
    pub seconds: u32,
    /// Rounds per server and connection count.
    pub rounds: usize,
    pub connections: Vec<u32>,
    /// Segment files to rotate over, and their size.
    pub segments: usize,
    pub segment_bytes: u64,
    /// Lessons in the node's catalog (for the pages).
    pub lessons: u64,
}

/// One wrk run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub target: String,
    pub connections: u32,
    pub requests_per_sec: f64,
    pub megabytes_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors and non-2xx answers wrk counted.
    pub errors: u64,
    /// CPU time (user + system) this process (the node) spent per request: steadier than the
    /// latencies on a shared machine.
    pub cpu_us_per_request: f64,
}

/// CPU seconds (user + system) used by this process so far.
fn cpu_seconds() -> f64 {
    let Ok(u) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) else { return 0.0 };
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(u.user_time()) + secs(u.system_time())
}

#[derive(Debug)]
pub struct PortalBenchReport {
    pub runs: Vec<Run>,
    pub nginx: String,
    pub wrk: String,
    pub opts: PortalBenchOptions,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid(format!("benchmark: {e}"))
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    /// SIGTERM first (nginx's master then stops its workers; SIGKILL would orphan them, still
    /// listening), SIGKILL if it has not gone within two seconds.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            for _ in 0..40 {
                if matches!(self.0.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool_version(cmd: &str, arg: &str) -> Result<String, NodeError> {
    let out = Command::new(cmd)
        .arg(arg)
        .output()
        .map_err(|e| err(format!("cannot run {cmd} ({e}); install it first: make bench-portal installs wrk and nginx-light")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let first = text.lines().next().unwrap_or("");
    Ok(first.split(" Copyright").next().unwrap_or(first).trim().to_string())
}

/// Parses a wrk duration such as `812.00us`, `1.23ms` or `2.01s` into milliseconds.
pub fn wrk_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Reads what wrk printed: requests/s, transfer/s, the 50th and 99th latency percentiles and
/// the errors it counted.
pub fn parse_wrk(out: &str) -> Option<(f64, f64, f64, f64, u64)> {
    let mut rps = None;
    let mut mbs = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0u64;
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("Transfer/sec:") {
            let v = v.trim();
            let (n, scale) = if let Some(n) = v.strip_suffix("GB") {
                (n, 1024.0)
            } else if let Some(n) = v.strip_suffix("MB") {
                (n, 1.0)
            } else if let Some(n) = v.strip_suffix("KB") {
                (n, 1.0 / 1024.0)
            } else {
                (v.strip_suffix('B').unwrap_or(v), 1.0 / (1024.0 * 1024.0))
            };
            mbs = n.trim().parse::<f64>().ok().map(|x| x * scale);
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = wrk_ms(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = wrk_ms(v);
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            errors += v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        }
    }
    Some((rps?, mbs.unwrap_or(0.0), p50?, p99?, errors))
}

fn wrk(url: &str, script: Option<&Path>, connections: u32, seconds: u32) -> Result<(f64, f64, f64, f64, u64), NodeError> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "--timeout", "10s"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().map_err(|e| err(format!("wrk: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(err(format!("wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr))));
    }
    parse_wrk(&text).ok_or_else(|| err(format!("cannot read wrk's output: {text}")))
}

fn fill(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn start_nginx(dir: &Path, hls_base: &Path, port: u16) -> Result<Killed, NodeError> {
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("tmp")).map_err(err)?;
    let user = if nix::unistd::geteuid().is_root() { "user root;\n" } else { "" };
    let conf = format!(
        "{user}worker_processes 2;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n  keepalive_requests 1000000;\n  keepalive_timeout 65;\n\
         client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n  fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n\
         types {{ video/mp2t ts; application/vnd.apple.mpegurl m3u8; }}\n  server {{\n    listen 127.0.0.1:{port};\n    location /media/hls/ {{ alias {base}/; }}\n  }}\n}}\n",
        p = prefix.display(),
        base = hls_base.display(),
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf).map_err(err)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("nginx: {e}")))?;
    let guard = Killed(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(guard);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(err(format!("nginx did not start; see {}", prefix.join("error.log").display())))
}

/// A wrk script requesting `paths` in turn (each wrk thread from its own place in the list).
fn rotation(dir: &Path, name: &str, paths: &[String]) -> Result<PathBuf, NodeError> {
    let list: Vec<String> = paths.iter().map(|p| format!("\"{}\"", p.replace(['\\', '"'], ""))).collect();
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!("local paths = {{ {} }}\nlocal i = math.random(#paths)\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n", list.join(", ")),
    )
    .map_err(err)?;
    Ok(script)
}

fn free_port() -> Result<u16, NodeError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    Ok(l.local_addr().map_err(err)?.port())
}

/// Runs the benchmark (blocking; the node runs on its own runtime in this process).
pub fn portal(opts: &PortalBenchOptions) -> Result<PortalBenchReport, NodeError> {
    let nginx = tool_version("nginx", "-v")?;
    let wrk_v = tool_version("wrk", "-v")?;
    // 1,000 connections each way need more descriptors than the usual 1,024.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_err(err)?;
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);

    let _ = std::fs::remove_dir_all(&opts.dir);
    std::fs::create_dir_all(&opts.dir).map_err(err)?;
    let runtime = crate::store::runtime().map_err(err)?;
    let cancel = CancellationToken::new();
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config { role: Tier::School, name: "基准学校".into(), http: local, quic: local, ..Config::default() };
    config.media.transcode = false;
    config.import.watch_dir = None;
    // wrk's connections all come from 127.0.0.1: they stand for a school's many viewers.
    config.limits.connections_per_address = usize::MAX;
    let node = runtime.block_on(Node::spawn(&opts.dir.join("school"), config, cancel.clone()))?;
    let ctx = std::sync::Arc::clone(&node.ctx);

    // The segments: files of a ladder as the media job leaves them.
    let hash = blake3::hash(b"youke bench portal").to_hex().to_string();
    let rung = crate::media_jobs::hls_dir(&ctx.data_dir, &hash).join("720p");
    std::fs::create_dir_all(&rung).map_err(err)?;
    let mut paths = Vec::new();
    for i in 0..opts.segments {
        let name = format!("seg_{i:05}.ts");
        std::fs::write(rung.join(&name), fill(opts.segment_bytes, i as u64 + 1)).map_err(err)?;
        paths.push(format!("/media/hls/{hash}/720p/{name}"));
    }
    let script = rotation(&opts.dir, "segments.lua", &paths)?;

    // The catalog for the pages, indexed before they are measured.
    let ids = crate::harness::bench::make_lessons(&ctx, opts.lessons, Tier::School, "lessons for the pages")?;
    let index = std::sync::Arc::clone(&node.index);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while index.len() < opts.lessons {
        if std::time::Instant::now() > deadline {
            return Err(err("the search index did not catch up within 5 minutes"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let connections: &[u32] = if opts.segments == 0 { &[] } else { &opts.connections };
    let nginx_port = free_port()?;
    let _nginx = start_nginx(&opts.dir, &crate::media_jobs::hls_dir(&ctx.data_dir, &hash).parent().map(Path::to_path_buf).unwrap_or_default(), nginx_port)?;
    let youke_url = format!("http://{}", node.http_addr);
    let nginx_url = format!("http://127.0.0.1:{nginx_port}");

    let mut runs = Vec::new();
    let total = (connections.len() * opts.rounds * 2 + 2 * opts.rounds) as u64;
    let bar = crate::harness::bench::bar(total, "wrk runs");
    // Warm both: the node's segment cache and the page cache nginx sends from.
    for url in [&youke_url, &nginx_url].into_iter().filter(|_| !connections.is_empty()) {
        wrk(url, Some(&script), 50, 2)?;
    }
    for &c in connections {
        for round in 0..opts.rounds {
            let order: [(&str, &String); 2] = if round % 2 == 0 { [("youke", &youke_url), ("nginx", &nginx_url)] } else { [("nginx", &nginx_url), ("youke", &youke_url)] };
            for (name, url) in order {
                let cpu = cpu_seconds();
                let (rps, mbs, p50, p99, errors) = wrk(url, Some(&script), c, opts.seconds)?;
                // nginx's CPU is its own processes'; this process's is only the idle node's.
                let cpu_us_per_request = if name == "youke" { per_request(cpu_seconds() - cpu, rps, opts.seconds) } else { 0.0 };
                runs.push(Run { target: format!("segments/{name}"), connections: c, requests_per_sec: rps, megabytes_per_sec: mbs, p50_ms: p50, p99_ms: p99, errors, cpu_us_per_request });
                bar.inc(1);
            }
        }
    }
    // The pages rotate too: 100 lessons, and a search for each subject in each grade (72).
    let lesson_paths: Vec<String> = ids.iter().take(100).map(|id| format!("/lessons/{id}")).collect();
    let subjects = ["数学", "语文", "英语", "物理", "化学", "生物", "历史", "地理"];
    let search_paths: Vec<String> = subjects
        .iter()
        .flat_map(|s| (1..=9).map(move |g| format!("/search?{}", serde_urlencoded::to_string([("q", s.to_string()), ("grade", format!("{g}年级"))]).unwrap_or_default())))
        .collect();
    let pages = [("lesson page", rotation(&opts.dir, "lessons.lua", &lesson_paths)?), ("search page", rotation(&opts.dir, "search.lua", &search_paths)?)];
    for (name, script) in &pages {
        wrk(&youke_url, Some(script), 200, 2)?;
        for _ in 0..opts.rounds {
            let cpu = cpu_seconds();
            let (rps, mbs, p50, p99, errors) = wrk(&youke_url, Some(script), 200, opts.seconds)?;
            let cpu_us_per_request = per_request(cpu_seconds() - cpu, rps, opts.seconds);
            runs.push(Run { target: (*name).to_string(), connections: 200, requests_per_sec: rps, megabytes_per_sec: mbs, p50_ms: p50, p99_ms: p99, errors, cpu_us_per_request });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    cancel.cancel();
    runtime.block_on(node.wait());
    Ok(PortalBenchReport { runs, nginx, wrk: wrk_v, opts: opts.clone() })
}

/// Microseconds of CPU per request from a run's CPU seconds and wrk's rate.
fn per_request(cpu: f64, rps: f64, seconds: u32) -> f64 {
    let requests = rps * f64::from(seconds);
    if requests > 0.0 { cpu * 1e6 / requests } else { 0.0 }
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("{:.0} ({:.0}–{:.0})", median(v.to_vec()), min, max)
}

/// The report as Markdown tables for docs/BENCHMARKS.md.
pub fn markdown(r: &PortalBenchReport) -> String {
    let of = |target: &str, c: u32| r.runs.iter().filter(|x| x.target == target && x.connections == c).collect::<Vec<_>>();
    let mut o = format!(
        "{} segment files of {} MiB rotated over, {} s per wrk run (`wrk -t2 --latency`), {} rounds per server alternating; {}, {}.\n\n",
        r.opts.segments,
        r.opts.segment_bytes >> 20,
        r.opts.seconds,
        r.opts.rounds,
        r.nginx,
        r.wrk
    );
    // With no segments (`--segments 0`) only the pages were measured.
    let segment_connections: &[u32] = if r.opts.segments == 0 { &[] } else { &r.opts.connections };
    if !segment_connections.is_empty() {
        o.push_str("| connections | youke requests/s, median (min–max) | nginx requests/s, median (min–max) | youke / nginx | youke MiB/s | youke p99 | nginx p99 | errors |\n|---|---|---|---|---|---|---|---|\n");
    }
    for &c in segment_connections {
        let (y, n) = (of("segments/youke", c), of("segments/nginx", c));
        let rps = |v: &[&Run]| v.iter().map(|x| x.requests_per_sec).collect::<Vec<_>>();
        let ratio = median(rps(&y)) / median(rps(&n)).max(f64::MIN_POSITIVE);
        let _ = std::fmt::Write::write_fmt(
            &mut o,
            format_args!(
                "| {c} | {} | {} | {ratio:.2}x | {:.0} | {:.1} ms | {:.1} ms | {} |\n",
                spread(&rps(&y)),
                spread(&rps(&n)),
                median(y.iter().map(|x| x.megabytes_per_sec).collect()),
                median(y.iter().map(|x| x.p99_ms).collect()),
                median(n.iter().map(|x| x.p99_ms).collect()),
                y.iter().chain(n.iter()).map(|x| x.errors).sum::<u64>(),
            ),
        );
    }
    o.push_str("\n| page, 200 connections | requests/s, median (min–max) | p50 | p99, median (min–max) | node CPU per request | errors |\n|---|---|---|---|---|---|\n");
    for name in ["lesson page", "search page"] {
        let v = of(name, 200);
        let p99: Vec<f64> = v.iter().map(|x| x.p99_ms).collect();
        let min = p99.iter().copied().fold(f64::INFINITY, f64::min);
        let max = p99.iter().copied().fold(0.0, f64::max);
        let _ = std::fmt::Write::write_fmt(
            &mut o,
            format_args!(
                "| {name} | {} | {:.1} ms | {:.1} ms ({min:.1}–{max:.1}) | {:.0} µs | {} |\n",
                spread(&v.iter().map(|x| x.requests_per_sec).collect::<Vec<_>>()),
                median(v.iter().map(|x| x.p50_ms).collect()),
                median(p99.clone()),
                median(v.iter().map(|x| x.cpu_us_per_request).collect()),
                v.iter().map(|x| x.errors).sum::<u64>(),
            ),
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "Running 5s test @ http://127.0.0.1:1/\n  2 threads and 200 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency    25.10ms   10.00ms 200.00ms   80.00%\n  Latency Distribution\n     50%   22.55ms\n     75%   30.00ms\n     90%   40.00ms\n     99%  812.00us\n  7000 requests in 5.00s, 13.67GB read\n  Socket errors: connect 0, read 3, write 0, timeout 2\n  Non-2xx or 3xx responses: 4\nRequests/sec:   1400.12\nTransfer/sec:      2.73GB\n";
        let (rps, mbs, p50, p99, errors) = parse_wrk(out).expect("parsed");
        assert!((rps - 1400.12).abs() < 1e-9);
        assert!((mbs - 2.73 * 1024.0).abs() < 1e-6);
        assert!((p50 - 22.55).abs() < 1e-9 && (p99 - 0.812).abs() < 1e-9);
        assert_eq!(errors, 9);
        assert!(wrk_ms("2.01s").is_some_and(|v| (v - 2010.0).abs() < 1e-9));
        assert_eq!(parse_wrk("nothing"), None);
    }
}
