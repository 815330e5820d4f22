//! The command-line contract operators and scripts rely on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn every_command_has_help() {
    let data = tempfile::tempdir().expect("tempdir");
    for cmd in ["init", "enroll", "token", "revoke", "children", "serve", "import", "check", "subtitles", "media", "quarantine", "share", "review", "takedown", "status", "link", "demo", "user", "reindex", "forecast", "backup", "restore", "setup"] {
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

#[test]
fn the_sharing_benchmark_runs_at_small_scale_and_fetches_one_copy_per_tier() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("bench");
    let out = youke_ok(data.path(), &["bench", "sharing", "--dir", dir.to_str().unwrap(), "--seconds", "4", "--rounds", "1", "--viewers", "8", "--catalog", "300", "--changes", "20"]);
    for row in [
        "time to first frame at a school on loopback",
        "time to first frame at a school on a 20 Mbit/s link with 50 ms round trip",
        "| 1 viewer(s) at the school",
        "| 8 viewer(s) at the school",
        "| shared catalog of 300 lessons",
        "| a new school: holding every lesson / searching them all",
    ] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    // A downward catch-up sends the changes, not the documents.
    let line = out.lines().find(|l| l.contains("downward catch-up of 20 changes")).expect("the catch-up row");
    let figures: Vec<f64> = line.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|t| t.parse().ok()).collect();
    let (sent, raw) = (figures[figures.len() - 2], figures[figures.len() - 1]);
    assert!(raw > 0.0 && sent <= 4.0 * raw + 4096.0, "the catch-up costs what changed: {line}");
    // However many watch, each tier fetched the rung about once (chunks of 1 MiB round it up).
    let line = out.lines().find(|l| l.starts_with("| 8 viewer(s)")).unwrap();
    let figures: Vec<f64> = line.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|t| t.parse().ok()).collect();
    let (rung, province, city) = (figures[figures.len() - 3], figures[figures.len() - 2], figures[figures.len() - 1]);
    assert!(city <= rung + 2.0 && province <= rung + 2.0, "one copy per tier for 8 viewers: {line}");
    assert!(!dir.exists(), "the benchmark removes its data");
}

#[test]
fn the_media_benchmark_runs_at_small_scale_and_compares_every_variant() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("bench");
    let out = youke_ok(data.path(), &["bench", "media", "--dir", dir.to_str().unwrap(), "--size-mib", "8", "--rounds", "1"]);
    for row in ["| youke school → city |", "| bare quinn stream |", "| rsync → rsync daemon |", "| rsync --fsync → rsync daemon |", "youke / bare quinn =", "8388608 bytes"] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    assert!(!dir.exists(), "the benchmark removes its data");
}

#[test]
fn the_transcode_benchmark_runs_at_small_scale_against_the_ffmpeg_cli() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("bench");
    let out = youke_ok(data.path(), &["bench", "transcode", "--dir", dir.to_str().unwrap(), "--seconds", "2", "--rounds", "1"]);
    for row in ["| youke (one pass, poster + sprite too) |", "| ffmpeg CLI, same ladder |", "youke / ffmpeg CLI time =", "2 s 1080p25 clip"] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    assert!(!dir.exists(), "the benchmark removes its data");
}

#[test]
fn the_portal_benchmark_runs_at_small_scale_against_nginx() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("bench");
    let out = youke_ok(data.path(), &[
        "bench", "portal", "--dir", dir.to_str().unwrap(), "--seconds", "1", "--rounds", "1", "--connections", "20", "--segments", "4", "--lessons", "50",
    ]);
    for row in ["| 20 |", "| lesson page |", "| search page |", "nginx version", "wrk "] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    // Every wrk run answered without errors (the last column counts them).
    for line in out.lines().filter(|l| l.starts_with("| 20 |") || l.starts_with("| lesson page") || l.starts_with("| search page")) {
        assert!(line.trim_end().ends_with("| 0 |"), "errors in: {line}");
    }
    assert!(!dir.exists(), "the benchmark removes its data");
}

#[test]
fn the_sign_in_benchmark_runs_at_small_scale() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("bench");
    let out = youke_ok(data.path(), &["bench", "signin", "--dir", dir.to_str().unwrap(), "--bursts", "12", "--rounds", "1", "--settle-seconds", "0"]);
    let row = out.lines().find(|l| l.starts_with("| 12 |")).unwrap_or_else(|| panic!("no row for 12 attempts in:\n{out}"));
    // Twelve at once fit in the queue: each is checked (401), none fails; no page failed.
    assert!(row.contains("| 12× 401 |") && row.trim_end().ends_with("| 0 |"), "{row}");
    assert!(!dir.exists(), "the benchmark removes its data");
}

#[test]
fn the_media_rate_schedule_is_shown_changed_kept_and_reset_from_the_cli_and_api() {
    let data = tempfile::tempdir().expect("tempdir");
    let http = free_tcp_port();
    youke_ok(data.path(), &[
        "init", "--role", "school", "--name", "限速学校", "--parent", "127.0.0.1:9", "--http", &format!("127.0.0.1:{http}"),
        "--quic", &format!("127.0.0.1:{}", free_udp_port()), "--upload-rate", "08:00-17:30 2Mbit/s, otherwise unlimited", "--dev-pinned",
    ]);
    let shown = youke_ok(data.path(), &["link", "show"]);
    assert!(shown.contains("08:00-17:30 2Mbit/s, otherwise unlimited (from config"), "{shown}");
    // Bad schedules are refused with a message saying how to write one; nothing changes.
    let out = youke(data.path(), &["link", "rate", "8点到9点 很快"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("write it like"), "{}", String::from_utf8_lossy(&out.stderr));
    // Set from the CLI while the node is not running; the running node picks it up.
    youke_ok(data.path(), &["link", "rate", "22:00-06:00 unlimited, otherwise 1Mbit/s"]);
    let server = Server::start(data.path(), http);
    let link = server.get_json("/api/v1/link").expect("link");
    assert_eq!(link["upload_schedule"], "22:00-06:00 unlimited, otherwise 1Mbit/s");
    assert_eq!(link["source"], "runtime");
    // Set through the API; the CLI sees it; --watch needs nothing more than a running node.
    let (code, body) = server.put_json("/api/v1/link", serde_json::json!({"upload_schedule": "off"})).expect("put");
    assert_eq!(code, 200, "{body}");
    assert!(youke_ok(data.path(), &["link", "show"]).contains("media rate schedule: off (from runtime"));
    let (code, body) = server.put_json("/api/v1/link", serde_json::json!({"upload_schedule": "fast"})).expect("put");
    assert_eq!(code, 400, "{body}");
    let status: serde_json::Value = serde_json::from_str(&youke_ok(data.path(), &["status", "--json"])).expect("json");
    assert_eq!(status["link"]["upload_schedule"], "off");
    assert!(status["transfers"].is_array() && status["upload_queue"].is_array(), "{status}");
    drop(server);
    youke_ok(data.path(), &["link", "rate", "--reset"]);
    assert!(youke_ok(data.path(), &["link", "show"]).contains("(from config"));
    let out = youke(data.path(), &["status", "--watch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_reports_every_rule_of_the_standard_as_a_table_and_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 720p recording: fails V2 (resolution) and V4 (bit rate), passes the audio rules.
    let file = dir.path().join("八年级 数学.mp4");
    make_recording(&file, 2, 1500);
    let srt = dir.path().join("八年级 数学.srt");
    std::fs::write(&srt, "1\n00:00:00,200 --> 00:00:01,500\n同学们好\n\n2\n00:00:01,000 --> 00:00:09,000\n今天学习勾股定理\n").expect("write");
    let table = youke_ok(dir.path(), &["check", file.to_str().unwrap(), "--srt", srt.to_str().unwrap(), "--language", "zh"]);
    for id in ["V1", "V2", "V3", "V4", "V5", "A1", "A2", "A3", "A4", "A5", "D1", "D2", "D3", "S1", "S2", "S3", "S4", "S5", "P1"] {
        assert!(table.lines().any(|l| l.starts_with(id)), "rule {id} missing:\n{table}");
    }
    let line = |id: &str| table.lines().find(|l| l.starts_with(id)).unwrap_or_default().to_string();
    assert!(line("V2").contains("fail") && line("V2").contains("1280x720"), "{table}");
    assert!(line("A1").contains("pass"), "{table}");
    assert!(line("S4").contains("fail") && line("S4").contains("after the video"), "{table}");
    assert!(table.contains("does not meet the standard"), "{table}");

    let json: serde_json::Value = serde_json::from_str(&youke_ok(dir.path(), &["check", file.to_str().unwrap(), "--json", "--fast"])).expect("json");
    assert_eq!(json["compliant"], false);
    assert_eq!(json["probe"]["video"]["width"], 1280);
    let rules = json["report"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 19);
    let a5 = rules.iter().find(|r| r["id"] == "A5").expect("A5");
    assert_eq!(a5["verdict"], "not-checkable", "--fast skips the SNR estimate");
    let s1 = rules.iter().find(|r| r["id"] == "S1").expect("S1");
    assert_eq!(s1["verdict"], "fail", "no subtitles given");

    // Not media, and a subtitle file that is not UTF-8: named precisely, no panic.
    let bogus = dir.path().join("课件.mp4");
    std::fs::write(&bogus, "这是一份讲义".repeat(50)).expect("write");
    let out = youke(dir.path(), &["check", bogus.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a playable recording"));
    let gbk = dir.path().join("gbk.srt");
    std::fs::write(&gbk, [0x31, 0x0a, 0xc4, 0xe3, 0xba, 0xc3]).expect("write");
    let table = youke_ok(dir.path(), &["check", file.to_str().unwrap(), "--srt", gbk.to_str().unwrap(), "--fast"]);
    assert!(table.lines().any(|l| l.starts_with("S3") && l.contains("fail")), "{table}");
}

#[test]
fn portal_accounts_are_managed_from_the_cli_and_sign_in() {
    let data = tempfile::tempdir().expect("tempdir");
    let http = free_tcp_port();
    youke_ok(data.path(), &["init", "--role", "school", "--name", "账号学校", "--http", &format!("127.0.0.1:{http}"), "--quic", &format!("127.0.0.1:{}", free_udp_port())]);
    add_user(data.path(), "wangfang", "teacher", "teacher password");
    let out = youke(data.path(), &["user", "add", "x", "--role", "janitor"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("role must be"), "{out:?}");
    let list = youke_ok(data.path(), &["user", "list"]);
    assert!(list.contains("wangfang") && list.contains("teacher"), "{list}");
    let server = Server::start(data.path(), http);
    // A teacher may upload but not manage accounts; the admin may.
    let (cookie, csrf) = sign_in(http, "wangfang", "teacher password").expect("teacher signs in");
    let teacher = Server { child: None, data: data.path().to_path_buf(), log: server.log.clone(), http_port: http, session: Some((cookie, csrf)) };
    assert_eq!(teacher.get_status("/api/v1/users"), 403);
    assert_eq!(teacher.get_status("/upload"), 200);
    assert_eq!(server.get_status("/api/v1/users"), 200);
    assert!(sign_in(http, "wangfang", "wrong password").unwrap_err().contains("401"));
    youke_ok(data.path(), &["user", "set", "wangfang", "--disable"]);
    assert_eq!(teacher.get_status("/upload"), 401, "a disabled account's session ends");
    assert!(sign_in(http, "wangfang", "teacher password").is_err());
    youke_ok(data.path(), &["user", "set", "wangfang", "--enable", "--role", "admin"]);
    let (cookie, csrf) = sign_in(http, "wangfang", "teacher password").expect("signs in again");
    let admin = Server { child: None, data: data.path().to_path_buf(), log: server.log.clone(), http_port: http, session: Some((cookie, csrf)) };
    assert_eq!(admin.get_status("/api/v1/users"), 200);
    let audit = server.get_json("/api/v1/audit").expect("audit");
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "sign in" && e["user"] == "wangfang"), "{audit}");
}
