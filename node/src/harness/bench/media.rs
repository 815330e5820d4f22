//! `youke bench media`: replicating one large lesson school → city on loopback, measured side by
//! side in one run against (a) a bare quinn stream with the same TLS, transport config and UDP
//! socket set-up writing the same bytes to a file (the transport's ceiling here) and (b) rsync to
//! an rsync daemon on loopback. Each variant runs in a process of its own (`youke bench
//! media-variant`), so its CPU time and peak memory are its own; rounds alternate the variants so
//! that machine noise hits all of them alike. Prints a Markdown table.

use crate::harness::bench::peak_rss;
use crate::config::Config;
use crate::context::NodeError;
use crate::services::Node;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::transport::{bind_endpoint, transport, udp_socket};
use youke_federation::{NodeIdentity, Tier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Youke,
    Quinn,
    Rsync,
    /// rsync with `--fsync`: the file is on disk when rsync says it is done, as with youke.
    RsyncFsync,
}

/// Every variant, in the order each round runs them.
const VARIANTS: [Variant; 4] = [Variant::Youke, Variant::Quinn, Variant::Rsync, Variant::RsyncFsync];

/// What one variant measured in its own process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantResult {
    pub variant: Variant,
    pub bytes: u64,
    pub secs: f64,
    /// User + system CPU seconds of the transfer (sender and receiver together).
    pub cpu_secs: f64,
    /// Peak resident memory of the largest process involved.
    pub peak_rss_bytes: u64,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid(format!("benchmark: {e}"))
}

fn cpu_now(who: nix::sys::resource::UsageWho) -> Result<f64, NodeError> {
    let u = nix::sys::resource::getrusage(who).map_err(err)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(secs(u.user_time()) + secs(u.system_time()))
}

/// Writes `bytes` of incompressible test data to `path` (unless it is there already).
pub fn make_source(path: &Path, bytes: u64) -> Result<(), NodeError> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes) {
        return Ok(());
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    let mut xof = blake3::Hasher::new().update(b"youke media benchmark").finalize_xof();
    let mut buf = vec![0u8; 8 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        let piece = buf.get_mut(..n).unwrap_or_default();
        xof.fill(piece);
        f.write_all(piece).map_err(err)?;
        left -= n as u64;
    }
    f.flush().map_err(err)?;
    Ok(())
}

/// Runs one variant in this process and returns what it measured.
pub fn run_variant(variant: Variant, source: &Path, dir: &Path) -> Result<VariantResult, NodeError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(err)?;
    let bytes = std::fs::metadata(source).map_err(err)?.len();
    let rt = crate::store::runtime().map_err(err)?;
    let (secs, cpu_secs, peak) = match variant {
        Variant::Youke => rt.block_on(youke(source, dir))?,
        Variant::Quinn => rt.block_on(bare_quinn(source, dir))?,
        Variant::Rsync => rsync(source, dir, false)?,
        Variant::RsyncFsync => rsync(source, dir, true)?,
    };
    drop(rt);
    let _ = std::fs::remove_dir_all(dir);
    Ok(VariantResult { variant, bytes, secs, cpu_secs, peak_rss_bytes: peak })
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<(), NodeError> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            return Err(err(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// The real thing: a school node replicates the blob to its city node (chunk manifest, verified
/// receive, fsyncs, rename), timed from the upload being queued to the blob stored at the city.
async fn youke(source: &Path, dir: &Path) -> Result<(f64, f64, u64), NodeError> {
    let cancel = CancellationToken::new();
    let cfg = |tier: Tier, parent: Option<SocketAddr>| Config {
        role: tier,
        name: format!("bench-{tier}"),
        http: local(),
        quic: local(),
        parent: parent.map(|p| p.to_string()),
        // A city at the top of its own tree has no federation root; the link's TLS and data
        // path are the same in either trust mode, only certificate checking differs.
        trust: crate::config::TrustMode::DevPinned,
        // Measure replication alone, not a transcode of the blob after it arrives.
        media: crate::config::MediaConfig { transcode: false },
        ..Config::default()
    };
    let city = Node::spawn(&dir.join("city"), cfg(Tier::City, None), cancel.child_token()).await?;
    let school = Node::spawn(&dir.join("school"), cfg(Tier::School, Some(city.quic_addr)), cancel.child_token()).await?;
    let ctx = Arc::clone(&school.ctx);
    let src = source.to_path_buf();
    // The lesson is in the school's store already (imported earlier): a hard link to the source,
    // so that, as for the other variants, the only new page cache is the receiver's copy.
    let (hash, size) = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
        let (hash, size) = youke_federation::blobs::hash_file(&src)?;
        let dest = ctx.blobs.path_of(&hash);
        std::fs::create_dir_all(dest.parent().unwrap_or(&dest)).map_err(err)?;
        if std::fs::hard_link(&src, &dest).is_err() {
            // Another file system than the benchmark directory's: copy it in instead.
            ctx.blobs.put_file(&src, |_| {})?;
        }
        ctx.blobs.manifest(&hash)?;
        Ok((hash, size))
    })
    .await
    .map_err(err)??;
    until("the school's link", Duration::from_secs(30), || school.ctx.upstream.parent_name().is_some()).await?;
    let (cpu0, started) = (cpu_now(nix::sys::resource::UsageWho::RUSAGE_SELF)?, Instant::now());
    school.ctx.store.write(|tx| {
        crate::blob_index::add(tx, &hash, size)?;
        crate::sync_state::enqueue_upload(tx, &hash.to_hex(), size, None, false)?;
        Ok::<_, NodeError>(())
    })?;
    school.ctx.wake_uplink.notify_one();
    until("the blob at the city", Duration::from_secs(600), || city.ctx.blobs.contains(&hash)).await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_now(nix::sys::resource::UsageWho::RUSAGE_SELF)? - cpu0;
    cancel.cancel();
    school.wait().await;
    city.wait().await;
    Ok((secs, cpu, peak_rss()))
}

/// The ceiling: one quinn stream with the links' TLS, transport config and sockets, writing the
/// bytes to a file (one fsync at the end) without any checking.
async fn bare_quinn(source: &Path, dir: &Path) -> Result<(f64, f64, u64), NodeError> {
    const ALPN: &[u8] = b"youke-bench";
    let server_id = NodeIdentity::generate("bench-server").map_err(err)?;
    let client_id = NodeIdentity::generate("bench-client").map_err(err)?;
    let mut server_cfg = quinn::ServerConfig::with_crypto(Arc::new(server_id.quic_server_config(ALPN, ALPN).map_err(err)?));
    server_cfg.transport_config(transport());
    let runtime = quinn::default_runtime().ok_or_else(|| err("no runtime"))?;
    let server = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server_cfg), udp_socket(local()).map_err(err)?, Arc::clone(&runtime)).map_err(err)?;
    let server_addr = server.local_addr().map_err(err)?;
    let mut client = bind_endpoint(local(), &client_id, Arc::default()).map_err(err)?;
    let mut client_cfg = quinn::ClientConfig::new(Arc::new(client_id.quic_client_config(ALPN).map_err(err)?));
    client_cfg.transport_config(transport());
    client.set_default_client_config(client_cfg);
    let out = dir.join("received.bin");
    let receiver = tokio::spawn(async move {
        let conn = server.accept().await.ok_or_else(|| err("no connection"))?.await.map_err(err)?;
        let (mut send, mut recv) = conn.accept_bi().await.map_err(err)?;
        let mut file = tokio::fs::File::create(&out).await.map_err(err)?;
        while let Some(chunk) = recv.read_chunk(1 << 20, true).await.map_err(err)? {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk.bytes).await.map_err(err)?;
        }
        file.sync_all().await.map_err(err)?;
        send.write_all(b"k").await.map_err(err)?;
        send.finish().map_err(err)?;
        let _ = send.stopped().await;
        Ok::<_, NodeError>(())
    });
    let conn = client.connect(server_addr, "bench").map_err(err)?.await.map_err(err)?;
    let (cpu0, started) = (cpu_now(nix::sys::resource::UsageWho::RUSAGE_SELF)?, Instant::now());
    let (mut send, mut recv) = conn.open_bi().await.map_err(err)?;
    let mut file = tokio::fs::File::open(source).await.map_err(err)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await.map_err(err)?;
        if n == 0 {
            break;
        }
        send.write_all(buf.get(..n).unwrap_or_default()).await.map_err(err)?;
    }
    send.finish().map_err(err)?;
    let mut ack = [0u8; 1];
    recv.read_exact(&mut ack).await.map_err(err)?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_now(nix::sys::resource::UsageWho::RUSAGE_SELF)? - cpu0;
    receiver.await.map_err(err)??;
    conn.close(0u32.into(), b"done");
    Ok((secs, cpu, peak_rss()))
}

/// rsync to an rsync daemon on loopback (a new file: whole-file transfer, rsync's checksums),
/// with `--fsync` if `fsync`.
fn rsync(source: &Path, dir: &Path, fsync: bool) -> Result<(f64, f64, u64), NodeError> {
    use std::process::{Command, Stdio};
    let dest = dir.join("dest");
    std::fs::create_dir_all(&dest).map_err(err)?;
    let port = std::net::TcpListener::bind(local()).and_then(|l| l.local_addr()).map_err(err)?.port();
    let conf = dir.join("rsyncd.conf");
    std::fs::write(&conf, format!("use chroot = no\nuid = 0\ngid = 0\npid file = {}\n[bench]\npath = {}\nread only = no\n", dir.join("rsyncd.pid").display(), dest.display()))
        .map_err(err)?;
    let cpu0 = cpu_now(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let mut daemon = Command::new("rsync")
        .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", conf.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err(format!("cannot run rsync (apt-get install rsync): {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            return Err(err("the rsync daemon did not start"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let status = Command::new("rsync").args(fsync.then_some("--fsync")).arg(source).arg(format!("rsync://127.0.0.1:{port}/bench/")).status().map_err(err)?;
    let secs = started.elapsed().as_secs_f64();
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    if !status.success() {
        return Err(err(format!("rsync failed: {status}")));
    }
    let cpu = cpu_now(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)? - cpu0;
    let max_rss = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).map_err(err)?.max_rss() as u64 * 1024;
    Ok((secs, cpu, max_rss))
}

#[derive(Debug, Clone)]
pub struct MediaBenchOptions {
    pub dir: PathBuf,
    pub size_mib: u64,
    pub rounds: usize,
}

/// Runs every variant `rounds` times (alternating) in subprocesses and returns the results.
pub fn media(opts: &MediaBenchOptions) -> Result<Vec<VariantResult>, NodeError> {
    std::fs::create_dir_all(&opts.dir).map_err(err)?;
    let source = opts.dir.join("lesson.bin");
    eprintln!("writing a {} MiB test file…", opts.size_mib);
    make_source(&source, opts.size_mib << 20)?;
    let exe = std::env::current_exe().map_err(err)?;
    let mut results = Vec::new();
    for round in 0..opts.rounds {
        for variant in VARIANTS {
            let name = serde_json::to_value(variant).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            eprintln!("round {}/{}: {name}…", round + 1, opts.rounds);
            let out = std::process::Command::new(&exe)
                .args(["bench", "media-variant", "--variant", &name, "--source"])
                .arg(&source)
                .arg("--dir")
                .arg(opts.dir.join("run"))
                .env("RUST_LOG", "warn")
                .output()
                .map_err(err)?;
            if !out.status.success() {
                return Err(err(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr))));
            }
            let r: VariantResult = serde_json::from_slice(&out.stdout).map_err(err)?;
            eprintln!("  {:.2} s, {:.0} MB/s", r.secs, r.bytes as f64 / r.secs / 1e6);
            results.push(r);
        }
    }
    Ok(results)
}

/// The middle value (the upper one of an even count); 0 for none.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The results as a Markdown table: medians per variant and the ratios the goals are about.
pub fn markdown(results: &[VariantResult]) -> String {
    let of = |v: Variant| results.iter().filter(|r| r.variant == v).collect::<Vec<_>>();
    let rate = |v: Variant| median(of(v).iter().map(|r| r.bytes as f64 / r.secs / 1e6).collect());
    let mut o = String::from("| variant | median MB/s (min–max) | median time | CPU s (median) | peak RSS |\n|---|---|---|---|---|\n");
    for (v, name) in VARIANTS.into_iter().zip(["youke school → city", "bare quinn stream", "rsync → rsync daemon", "rsync --fsync → rsync daemon"]) {
        let rs = of(v);
        let rates: Vec<f64> = rs.iter().map(|r| r.bytes as f64 / r.secs / 1e6).collect();
        let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().copied().fold(0.0, f64::max);
        o.push_str(&format!(
            "| {name} | {:.0} ({lo:.0}–{hi:.0}) | {:.2} s | {:.2} | {:.0} MiB |\n",
            rate(v),
            median(rs.iter().map(|r| r.secs).collect()),
            median(rs.iter().map(|r| r.cpu_secs).collect()),
            rs.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0) as f64 / 1048576.0
        ));
    }
    o.push_str(&format!(
        "\nyouke / bare quinn = {:.2}x (goal ≥ 0.8x); youke / rsync = {:.2}x (goal ≥ 2x); youke / rsync --fsync = {:.2}x; {} rounds, {} bytes.\n",
        rate(Variant::Youke) / rate(Variant::Quinn),
        rate(Variant::Youke) / rate(Variant::Rsync),
        rate(Variant::Youke) / rate(Variant::RsyncFsync),
        of(Variant::Youke).len(),
        results.first().map(|r| r.bytes).unwrap_or(0)
    ));
    o
}
