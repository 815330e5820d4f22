//! Media replication over a school uplink like the real ones: a 10 Mbit/s link with 50 ms of
//! delay each way and 1 % packet loss (the fault-injecting proxy), and a rate schedule changed
//! while a transfer runs. Nodes run in this process on real QUIC sockets and real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::rate::{Rate, RateSchedule};
use youke_federation::transfers::Direction;
use youke_federation::{BlobHash, Tier};
use youke_node::config::{Config, MediaConfig, TrustMode};
use youke_node::import::{import_file, share};
use youke_node::lessons::ImportMeta;
use youke_node::{Node, RunningNode};
use youke_tests::faultproxy::{FaultConfig, FaultProxy};

async fn start(dir: &Path, tier: Tier, parent: Option<SocketAddr>, cancel: &CancellationToken) -> RunningNode {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config { role: tier, name: tier.to_string(), http: local, quic: local, parent: parent.map(|p| p.to_string()), trust: TrustMode::DevPinned, media: MediaConfig { transcode: false }, ..Config::default() };
    Node::spawn(&dir.join(tier.as_str()), config, cancel.child_token()).await.expect("node starts")
}

/// Imports a recording at the school and shares it with the city; returns its blob hash.
async fn import_and_share(school: &RunningNode, file: PathBuf) -> (BlobHash, u64) {
    let ctx = std::sync::Arc::clone(&school.ctx);
    tokio::task::spawn_blocking(move || {
        let lesson = import_file(&ctx, &file, &ImportMeta { title: Some("测速课".into()), ..ImportMeta::default() }, |_, _| {}).expect("import");
        share(&ctx, &lesson.id, Tier::City).expect("share");
        let m = lesson.media.expect("media");
        (m.hash.parse().expect("hash"), m.size)
    })
    .await
    .unwrap()
}

async fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn upload_done(school: &RunningNode) -> Option<u64> {
    school.ctx.transfers.snapshot().into_iter().find(|t| t.direction == Direction::Upload).map(|t| t.done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_megabytes_cross_a_lossy_10_mbit_link_at_90_percent_of_its_capacity() {
    const CAP: u64 = 10_000_000 / 8;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("五十兆 测速.mp4");
    let f = file.clone();
    tokio::task::spawn_blocking(move || common::make_recording(&f, 20, 20_000)).await.unwrap();
    let cancel = CancellationToken::new();
    let city = start(dir.path(), Tier::City, None, &cancel).await;
    let link = FaultConfig { drop_rate: 0.01, delay: Duration::from_millis(50), bandwidth: Some(CAP), ..FaultConfig::default() };
    let proxy = FaultProxy::start(city.quic_addr, link, 42).await.unwrap();
    let school = start(dir.path(), Tier::School, Some(proxy.addr()), &cancel).await;
    let (hash, size) = import_and_share(&school, file).await;
    assert!(size >= 50_000_000, "the recording should be 50 MB or more, is {size}");

    // Time the transfer from its first byte to the blob being stored, verified, at the city.
    wait("the upload to start", Duration::from_secs(30), || upload_done(&school).is_some()).await;
    let started = Instant::now();
    wait("the blob at the city", Duration::from_secs(120), || city.ctx.blobs.contains(&hash)).await;
    let secs = started.elapsed().as_secs_f64();
    let rate = size as f64 / secs;
    let stats = proxy.stats();
    println!("{size} bytes in {secs:.1} s: {:.2} Mbit/s of 10 ({:.0} %); proxy dropped {} of {} packets", rate * 8e-6, rate * 100.0 / CAP as f64, stats.dropped, stats.forwarded + stats.dropped);
    assert!(stats.dropped > 100, "the link should have lost packets: {stats:?}");
    assert!(rate >= 0.9 * CAP as f64, "{:.2} Mbit/s is below 90 % of the 10 Mbit/s link", rate * 8e-6);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_schedule_changed_at_runtime_paces_a_running_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("限速.mp4");
    let f = file.clone();
    tokio::task::spawn_blocking(move || common::make_recording(&f, 8, 8_000)).await.unwrap();
    let cancel = CancellationToken::new();
    let city = start(dir.path(), Tier::City, None, &cancel).await;
    let school = start(dir.path(), Tier::School, Some(city.quic_addr), &cancel).await;
    // Start paused: nothing moves while the schedule says off.
    let ctx = std::sync::Arc::clone(&school.ctx);
    tokio::task::spawn_blocking(move || youke_node::link_settings::set(&ctx, Some(&RateSchedule::constant(Rate::Off)))).await.unwrap().unwrap();
    let (hash, size) = import_and_share(&school, file).await;
    wait("the upload to start", Duration::from_secs(30), || upload_done(&school).is_some()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(upload_done(&school).unwrap_or(0) < 256 * 1024, "an `off` schedule lets almost nothing through");

    // 2 Mbit/s: measure the pace over three seconds.
    let ctx = std::sync::Arc::clone(&school.ctx);
    let shown = tokio::task::spawn_blocking(move || youke_node::link_settings::set(&ctx, Some(&"2Mbit/s".parse().unwrap()))).await.unwrap().unwrap();
    assert_eq!((shown.upload_schedule.as_str(), shown.source.as_str()), ("2Mbit/s", "runtime"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (d0, t0) = (upload_done(&school).unwrap(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (d1, t1) = (upload_done(&school).unwrap(), Instant::now());
    let rate = (d1 - d0) as f64 / (t1 - t0).as_secs_f64();
    assert!((200_000.0..300_000.0).contains(&rate), "2 Mbit/s is 250 kB/s; measured {rate:.0} B/s");
    assert!(d1 < size);

    // Back to the config's schedule (unlimited): the rest goes at once.
    let ctx = std::sync::Arc::clone(&school.ctx);
    let shown = tokio::task::spawn_blocking(move || youke_node::link_settings::set(&ctx, None)).await.unwrap().unwrap();
    assert_eq!((shown.upload_schedule.as_str(), shown.source.as_str()), ("unlimited", "config"));
    wait("the blob at the city", Duration::from_secs(30), || city.ctx.blobs.contains(&hash)).await;
    cancel.cancel();
}

#[test]
fn a_full_disk_stops_the_transfer_with_a_clear_error_and_it_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    // The city's media directory is a small disk of its own: 6 MiB for a 16 MB recording. The
    // mount namespace is per thread, so it is made before the runtime starts its threads.
    let media = dir.path().join("city").join("media");
    std::fs::create_dir_all(&media).unwrap();
    common::mount_tmpfs(&media, "6m", false);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    rt.block_on(full_disk(dir.path(), &media));
}

async fn full_disk(dir: &Path, media: &Path) {
    let file = dir.join("满盘.mp4");
    let f = file.clone();
    tokio::task::spawn_blocking(move || common::make_recording(&f, 8, 16_000)).await.unwrap();
    let cancel = CancellationToken::new();
    let city = start(dir, Tier::City, None, &cancel).await;
    let school = start(dir, Tier::School, Some(city.quic_addr), &cancel).await;
    let (hash, size) = import_and_share(&school, file).await;
    assert!(size > 12_000_000, "{size}");

    // The transfer stops with an error that says what to do.
    let last_error = |school: &RunningNode| -> Option<String> {
        school
            .ctx
            .store
            .read(|c| Ok::<_, youke_node::store::StoreError>(c.query_row("SELECT last_error FROM uploads", [], |r| r.get::<_, Option<String>>(0))?))
            .ok()
            .flatten()
    };
    let mut seen = None;
    wait("the disk-full error", Duration::from_secs(60), || {
        let e = last_error(&school);
        if e != seen {
            println!("upload error: {e:?}");
            seen = e.clone();
        }
        e.is_some_and(|e| e.contains("disk full"))
    })
    .await;
    let error = last_error(&school).unwrap();
    assert!(error.contains("free space"), "the error should say what to do: {error}");
    let partial = media.join("partial").join(hash.to_hex());
    let held = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(held >= 1 << 20, "the chunks that fitted are kept ({held} bytes)");
    assert!(!city.ctx.blobs.contains(&hash));
    let status = youke_node::status::collect(&school.ctx, true).unwrap();
    assert!(status.upload_queue[0].last_error.as_deref().is_some_and(|e| e.contains("disk full")), "status shows it: {:?}", status.upload_queue);

    // Space returns: the transfer resumes from the kept chunks and completes.
    common::mount_tmpfs(media, "64m", true);
    wait("the blob at the city", Duration::from_secs(60), || {
        let e = last_error(&school);
        if e != seen {
            println!("upload error: {e:?}");
            seen = e.clone();
        }
        city.ctx.blobs.contains(&hash)
    })
    .await;
    let stored = std::fs::read(city.ctx.blobs.blob(&hash).unwrap().path().unwrap()).unwrap();
    assert_eq!(BlobHash::from(blake3::hash(&stored)), hash);
    cancel.cancel();
}
