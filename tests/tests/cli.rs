//! The command-line contract operators and scripts rely on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn every_command_has_help() {
    let data = tempfile::tempdir().expect("tempdir");
    for cmd in ["init", "serve", "import", "share", "status", "demo"] {
        let out = youke(data.path(), &[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help failed");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{cmd} --help prints no usage");
    }
}

#[test]
fn a_file_that_is_not_media_is_refused_and_nothing_is_stored() {
    let data = tempfile::tempdir().expect("tempdir");
    youke_ok(data.path(), &["init", "--role", "school", "--name", "测试学校"]);
    let bogus = data.path().join("课件.mp4");
    std::fs::write(&bogus, "这是一份讲义，不是视频".repeat(100)).expect("write");
    let out = youke(data.path(), &["import", bogus.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a playable recording"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let status: serde_json::Value = serde_json::from_str(&youke_ok(data.path(), &["status", "--json"])).expect("json");
    assert_eq!(status["lessons"], 0);
    assert_eq!(status["blobs"], 0);
    let blobs = data.path().join("media").join("blobs");
    let stored = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "nothing may be left in {}", blobs.display());
}

#[test]
fn init_refuses_to_overwrite_and_share_refuses_unknown_lessons() {
    let data = tempfile::tempdir().expect("tempdir");
    youke_ok(data.path(), &["init", "--role", "city", "--name", "保定市", "--parent", "127.0.0.1:4433"]);
    let again = youke(data.path(), &["init", "--role", "city", "--name", "保定市"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let share = youke(data.path(), &["share", "00000000-0000-0000-0000-000000000000", "--to", "province"]);
    assert!(!share.status.success());
    assert!(String::from_utf8_lossy(&share.stderr).contains("no lesson"));
    let bad_role = youke(data.path(), &["init", "--role", "county", "--name", "x", "--force"]);
    assert!(!bad_role.status.success());
    let status = youke_ok(data.path(), &["status"]);
    assert!(status.contains("保定市 (city)"), "{status}");
    assert!(status.contains("not running"), "{status}");
}

#[test]
fn the_sync_benchmark_runs_at_small_scale_and_reports_every_measure() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("bench");
    let out = youke_ok(data.path(), &["bench", "sync", "--dir", dir.to_str().unwrap(), "--catalog", "300", "--changes", "30", "--join", "100"]);
    for row in ["(a) catch-up of 30 offline changes", "(a) document bytes sent / raw change bytes", "(b) new city joining, 100 documents", "(c) peak resident memory"] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    assert!(!dir.exists(), "the benchmark removes its data");
}
