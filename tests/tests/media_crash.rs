//! 断网续传 under SIGKILL: a school replicates a recording to its city while the test kills the
//! receiver (the city) or the sender (the school) at seeded random moments, several times per
//! transfer, 20 seeds in all. Every time, the file arrives byte-identical, and each resume starts
//! exactly where the receiver's verified data ended: of what the receiver had taken in, at most
//! the one chunk (1 MiB) it was filling is sent again.
//!
//! How "sent again" is measured: the receiver writes only whole verified chunks, and checks and
//! writes each chunk before it reads the next, so at any moment it holds less than one chunk
//! beyond its partial file. Before killing the city, the test freezes it (SIGSTOP) and reads the
//! partial file's length; after the restart, the city's log says where the transfer resumed, and
//! that must be exactly that length. When the school is killed, the city keeps running and the
//! resume point must be at or past the length seen at the kill.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use youke_tests::faultproxy::Rng;

const CHUNK: u64 = 1 << 20;

/// One recording per test process (about 12 MB), with its BLAKE3 hash and size.
fn recording() -> &'static (tempfile::TempDir, PathBuf, String, u64) {
    static REC: OnceLock<(tempfile::TempDir, PathBuf, String, u64)> = OnceLock::new();
    REC.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("续传 测试课.mp4");
        make_recording(&path, 6, 16_000);
        let hash = blake3_file(&path);
        let size = std::fs::metadata(&path).unwrap().len();
        (dir, path, hash, size)
    })
}

/// Offsets at which the city's log says a receive resumed, in order.
fn resume_offsets(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("resuming blob receive"))
        .filter_map(|l| l.split("offset=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn run_seed(seed: u64) {
    let (_, file, hash, size) = recording();
    let (hash, size) = (hash.as_str(), *size);
    let root = tempfile::tempdir().unwrap();
    let (c_dir, s_dir) = (root.path().join("city"), root.path().join("school"));
    let (c_http, s_http, c_quic, s_quic) = (free_tcp_port(), free_tcp_port(), free_udp_port(), free_udp_port());
    let addr = |port: u16| format!("127.0.0.1:{port}");
    // A city at the top of its own tree: development trust (this test is about media, the
    // federation PKI is exercised by three_tiers and trust).
    youke_ok(&c_dir, &["init", "--role", "city", "--name", "石家庄市", "--http", &addr(c_http), "--quic", &addr(c_quic), "--dev-pinned"]);
    youke_ok(&s_dir, &[
        "init", "--role", "school", "--name", "第一中学", "--http", &addr(s_http), "--quic", &addr(s_quic),
        "--parent", &addr(c_quic), "--upload-rate", "4MB/s", "--dev-pinned",
    ]);
    let mut city = Server::start(&c_dir, c_http);
    let mut school = Server::start(&s_dir, s_http);
    let id = youke_ok(&s_dir, &["import", file.to_str().unwrap(), "--title", "续传"]).trim().to_string();
    youke_ok(&s_dir, &["share", &id, "--to", "city"]);

    let partial = c_dir.join("media").join("partial").join(hash);
    let stored = c_dir.join("media").join("blobs").join(&hash[..2]).join(&hash[2..]);
    let mut rng = Rng::new(seed);
    let t0 = std::time::Instant::now();
    let cuts = 2 + rng.range(0, 2);
    let mut resumes_seen = 0;
    let mut floor = 0u64;
    for cut in 0..cuts {
        // A random moment: once the city holds somewhere between one more chunk and the end.
        let lo = (floor + CHUNK).min(size);
        let target = rng.range(lo, size.saturating_sub(CHUNK).max(lo + 1));
        let reached = wait_for_opt(Duration::from_secs(60), Duration::from_millis(5), || (len(&partial) >= target || stored.exists()).then_some(()));
        assert!(reached.is_some(), "seed {seed} cut {cut}: the city never held {target} bytes; city log:\n{}", city.log_text());
        if stored.exists() {
            break; // Finished before this cut.
        }
        let kill_city = rng.unit() < 0.5;
        println!("seed {seed} cut {cut} at {:.1}s: {} with {} of {size} bytes held", t0.elapsed().as_secs_f64(), if kill_city { "killing the city" } else { "killing the school" }, len(&partial));
        let expect_at_least;
        if kill_city {
            city.freeze();
            let held = len(&partial);
            city.kill();
            // Whole chunks only (or all of the blob, frozen just before it moved into the store).
            assert!(held.is_multiple_of(CHUNK) || held == size, "seed {seed}: the partial file holds part of a chunk ({held})");
            expect_at_least = held;
            city = Server::start(&c_dir, c_http);
            resumes_seen = 0; // A new log file.
            if held > 0 {
                let log_city = &city;
                let offsets = wait_for(&format!("seed {seed}: the city to resume"), Duration::from_secs(60), || {
                    let o = resume_offsets(&log_city.log_text());
                    (!o.is_empty() || stored.exists()).then_some(o)
                });
                if let Some(first) = offsets.first() {
                    assert_eq!(*first, held, "seed {seed} cut {cut}: resumed at {first}, but the city held {held} verified bytes");
                }
                resumes_seen = offsets.len();
            }
        } else {
            let held = len(&partial);
            school.kill();
            expect_at_least = held;
            school = Server::start(&s_dir, s_http);
            if held > 0 {
                let before = resumes_seen;
                let offsets = wait_for(&format!("seed {seed}: the city to resume after the school restarted"), Duration::from_secs(60), || {
                    let o = resume_offsets(&city.log_text());
                    (o.len() > before || stored.exists()).then_some(o)
                });
                if let Some(at) = offsets.get(before) {
                    assert!(*at >= held, "seed {seed} cut {cut}: resumed at {at}, before the {held} bytes the city held");
                    assert!(at.is_multiple_of(CHUNK) || *at == size);
                }
                resumes_seen = offsets.len();
            }
        }
        floor = expect_at_least;
    }
    wait_for(&format!("seed {seed}: the blob stored at the city"), Duration::from_secs(90), || stored.exists().then_some(()));
    println!("seed {seed} done at {:.1}s", t0.elapsed().as_secs_f64());
    assert_eq!(blake3_file(&stored), hash, "seed {seed}: the city's copy differs");
    assert!(!partial.exists(), "seed {seed}: the partial file should be gone");
    drop(school);
    drop(city);
}

#[test]
fn killed_transfers_resume_seeds_0_to_4() {
    (0..5).for_each(run_seed);
}

#[test]
fn killed_transfers_resume_seeds_5_to_9() {
    (5..10).for_each(run_seed);
}

#[test]
fn killed_transfers_resume_seeds_10_to_14() {
    (10..15).for_each(run_seed);
}

#[test]
fn killed_transfers_resume_seeds_15_to_19() {
    (15..20).for_each(run_seed);
}
