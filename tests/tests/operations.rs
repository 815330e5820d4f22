//! What the people who run nodes rely on (issue 9): systemd's readiness and watchdog
//! notifications, `/readyz`, JSON logs, `youke forecast`, backup and restore.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Messages that arrived on a notification socket within `timeout`, until `until` is among them.
fn notifications_until(socket: &UnixDatagram, until: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)))).expect("timeout");
        match socket.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m.lines().any(|l| l == until);
                got.push(m);
                if done {
                    return got;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {until:?} within {timeout:?}; got {got:?}");
}

#[test]
fn serve_tells_systemd_it_is_ready_pings_the_watchdog_and_logs_json() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, http) = standalone_school(root.path(), "运维测试学校", no_transcode);
    let sock_path = root.path().join("notify.sock");
    let socket = UnixDatagram::bind(&sock_path).expect("bind the notification socket");
    let log = root.path().join("serve.log");
    let mut child = Command::new(youke_bin())
        .arg("--data")
        .arg(&data)
        .args(["--log-format", "json", "serve"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "600000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn youke serve");

    let first = notifications_until(&socket, "READY=1", Duration::from_secs(30));
    assert!(first.last().is_some_and(|m| m.contains(&format!("STATUS=serving: portal http://127.0.0.1:{http}/"))), "{first:?}");
    // The watchdog at half of 600 ms: a few pings in two seconds.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(2) {
        notifications_until(&socket, "WATCHDOG=1", Duration::from_secs(5));
        pings += 1;
    }
    assert!(pings >= 3, "{pings} watchdog pings in {:?}", start.elapsed());

    // Ready once the index caught up; the answer says what was checked.
    let ready = wait_for("/readyz to answer 200", Duration::from_secs(30), || {
        let r = ureq::get(&format!("http://127.0.0.1:{http}/readyz")).call().ok()?;
        r.into_body().read_json::<serde_json::Value>().ok()
    });
    assert_eq!(ready, serde_json::json!({"ready": true, "database": true, "search_index": true, "stopping": false}));
    assert_eq!(ureq::get(&format!("http://127.0.0.1:{http}/healthz")).call().expect("healthz").into_body().read_to_string().expect("body"), "ok");

    // SIGTERM, as systemctl stop sends: STOPPING=1, then a clean exit.
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success());
    notifications_until(&socket, "STOPPING=1", Duration::from_secs(10));
    let status = wait_for("youke serve to exit", Duration::from_secs(30), || child.try_wait().ok().flatten());
    assert!(status.success(), "{status:?}");

    // Every log line is one JSON object with a level and a message.
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().any(|v| v["fields"]["message"] == "portal listening" && v["level"] == "INFO"), "{text}");
    assert!(lines.iter().any(|v| v["fields"]["message"] == "node stopped"), "{text}");
}

#[test]
fn forecast_reports_from_the_nodes_own_recordings_with_what_ifs() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, _) = standalone_school(root.path(), "预测学校", no_transcode);
    // No recordings yet: the configured assumptions, the seed's example (61.8 TiB a semester).
    let json: serde_json::Value = serde_json::from_str(&youke_ok(&data, &["forecast", "--json"])).expect("json");
    assert_eq!(json["forecast"]["recordings_per_day"], serde_json::json!({"value": 480.0, "source": "configured"}));
    let tib = json["forecast"]["semester_bytes"].as_f64().expect("bytes") / (1u64 << 40) as f64;
    assert!((tib - 61.8).abs() < 0.1, "{tib}");
    assert!(json["disk_free_bytes"].as_u64().is_some());
    // Three real recordings of 2 s at 800 kbit/s: the node's own figures take over.
    for i in 0..3 {
        let file = root.path().join(format!("第{i}课.mp4"));
        make_recording(&file, 2, 800);
        youke_ok(&data, &["import", file.to_str().expect("utf-8"), "--title", &format!("第{i}课")]);
    }
    let json: serde_json::Value = serde_json::from_str(&youke_ok(&data, &["forecast", "--json", "--days", "90", "--classrooms", "40"])).expect("json");
    let f = &json["forecast"];
    assert_eq!(f["recordings_per_day"]["source"], "measured", "{f}");
    // Measured 3 a day, doubled by 40 classrooms against the configured 20.
    assert_eq!(f["recordings_per_day"]["value"], 6.0, "{f}");
    assert_eq!(f["kbit_per_recording"]["source"], "measured");
    assert!(f["minutes_per_recording"]["value"].as_f64().is_some_and(|m| (m - 2.0 / 60.0).abs() < 0.01), "{f}");
    assert_eq!(f["days"], 90.0);
    let text = youke_ok(&data, &["forecast"]);
    assert!(text.contains("Next semester (100 school days)") && text.contains("measured from 3 recordings"), "{text}");
    let bad = youke(&data, &["forecast", "--days", "0"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--days must be a positive number"), "{bad:?}");
}

#[test]
fn a_backup_of_a_running_node_restores_onto_an_empty_node_with_every_lesson_blob_and_document() {
    let root = tempfile::tempdir().expect("tempdir");
    // Transcoding on: the ladders are part of what comes back.
    let (data, http) = standalone_school(root.path(), "备份学校", |t| t);
    let server = Server::start(&data, http);
    let mut originals = Vec::new();
    for (i, title) in ["勾股定理", "浮力与阿基米德原理"].iter().enumerate() {
        let file = root.path().join(format!("录像{i}.mp4"));
        make_recording(&file, 2, 400);
        let id = youke_ok(&data, &["import", file.to_str().expect("utf-8"), "--title", title]).trim().to_string();
        assert_eq!(server.post_json(&format!("/api/v1/lessons/{id}/comments"), serde_json::json!({"text": format!("{title}讲得清楚")})), Some(200));
        originals.push((id, title.to_string(), blake3_file(&file)));
    }
    let ladders = wait_for("both ladders", Duration::from_secs(180), || {
        originals.iter().map(|(id, ..)| server.get_json(&format!("/api/v1/lessons/{id}"))?["hls"]["master_url"].as_str().map(str::to_string)).collect::<Option<Vec<_>>>()
    });
    // And their rendition packs (what travels to the tiers above) stored.
    wait_for("both packs", Duration::from_secs(60), || {
        originals.iter().all(|(id, ..)| server.get_json(&format!("/api/v1/lessons/{id}")).is_some_and(|l| l["ladder"]["hash"].is_string())).then_some(())
    });

    // While it runs.
    let dest = root.path().join("备份盘");
    let out = youke_ok(&data, &["backup", dest.to_str().expect("utf-8"), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!((report["blobs"].as_u64(), report["blobs_copied"].as_u64()), (Some(4), Some(4)), "the recordings and their packs: {report}");
    assert!(report["files_copied"].as_u64().is_some_and(|n| n > 10), "config, enrollment and ladder files: {report}");
    // Again: nothing new to copy.
    let again: serde_json::Value = serde_json::from_str(&youke_ok(&data, &["backup", dest.to_str().expect("utf-8"), "--json"])).expect("json");
    assert_eq!((again["blobs_copied"].as_u64(), again["files_copied"].as_u64()), (Some(0), Some(0)), "{again}");
    // Into the node's own data directory: refused.
    let inside = youke(&data, &["backup", data.join("b").to_str().expect("utf-8")]);
    assert!(!inside.status.success() && String::from_utf8_lossy(&inside.stderr).contains("inside the node's data directory"), "{inside:?}");
    let discussion = |s: &Server, id: &str| s.get_json(&format!("/api/v1/lessons/{id}/discussion")).map(|d| d["comments"].clone());
    let before: Vec<_> = originals.iter().map(|(id, ..)| discussion(&server, id)).collect();
    drop(server);

    // Onto an empty node (the old one is gone; the restored one uses its config and ports).
    let fresh = root.path().join("新节点");
    let out = youke_ok(&fresh, &["restore", dest.to_str().expect("utf-8")]);
    assert!(out.contains("restored"), "{out}");
    let twice = youke(&fresh, &["restore", dest.to_str().expect("utf-8")]);
    assert!(!twice.status.success() && String::from_utf8_lossy(&twice.stderr).contains("holds a node already"), "{twice:?}");
    let restored = Server::start(&fresh, http);
    for ((id, title, hash), (ladder, comments)) in originals.iter().zip(ladders.iter().zip(&before)) {
        let l = restored.get_json(&format!("/api/v1/lessons/{id}")).expect("the lesson");
        assert_eq!(l["title"], title.as_str());
        assert_eq!(l["media_present"], true);
        let media = restored.get_bytes(&format!("/api/v1/lessons/{id}/media")).expect("the original");
        assert_eq!(&blake3::hash(&media).to_hex().to_string(), hash, "the original, byte for byte");
        assert!(restored.get_bytes(ladder).is_some_and(|m| m.starts_with(b"#EXTM3U")), "the ladder plays");
        assert_eq!(&discussion(&restored, id), comments, "the lesson's document");
        // The search index was rebuilt from the restored database.
        let q: String = title.bytes().map(|b| format!("%{b:02X}")).collect();
        wait_for("the lesson in search", Duration::from_secs(30), || {
            let r = restored.get_json(&format!("/api/v1/search?q={q}"))?;
            r["items"].as_array()?.iter().any(|h| h["id"] == id.as_str()).then_some(())
        });
    }
    drop(restored);

    // A backup whose blob was changed on its disk is refused, naming the blob.
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dest.join("backup.json")).expect("manifest")).expect("json");
    let hash = manifest["blobs"][0]["hash"].as_str().expect("hash").to_string();
    let blob = dest.join("media/blobs").join(&hash[..2]).join(&hash[2..]);
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes[100] ^= 0xff;
    std::fs::write(&blob, bytes).expect("write");
    let bad = youke(&root.path().join("另一个"), &["restore", dest.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("damaged") && err.contains(&hash), "{err}");
    // An unfinished backup (no manifest) is refused.
    std::fs::remove_file(dest.join("backup.json")).expect("remove");
    let bad = youke(&root.path().join("第三个"), &["restore", dest.to_str().expect("utf-8")]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("did not finish"), "{bad:?}");
}

#[test]
fn setup_makes_a_province_by_flags_and_joins_a_city_by_answers_in_a_terminal() {
    use std::io::Write;
    let root = tempfile::tempdir().expect("tempdir");
    let (prov, city) = (root.path().join("省"), root.path().join("市"));
    let (http, quic) = (free_tcp_port(), free_udp_port());
    let out = youke_ok(&prov, &["setup", "--role", "province", "--name", "河北省优课中心", "--http", &format!("127.0.0.1:{http}"), "--quic", &format!("127.0.0.1:{quic}")]);
    assert!(out.contains("initialized province node \"河北省优课中心\""), "{out}");
    let again = youke(&prov, &["setup", "--role", "province", "--name", "又一个"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("set up already"), "{again:?}");
    let _province = Server::start(&prov, http);
    let token = youke_ok(&prov, &["token", "create", "--role", "city", "--name", "石家庄市教育局"]).lines().last().expect("token").trim().to_string();

    // Not in a terminal: a missing flag is named.
    let parent = format!("127.0.0.1:{quic}");
    let out = youke(&city, &["setup", "--role", "city", "--parent", &parent]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--token is missing"), "{out:?}");

    // In a terminal (script(1) gives it one), the role, the parent and the token are asked for.
    let (city_http, city_quic) = (free_tcp_port(), free_udp_port());
    let cmd = format!("'{}' --data '{}' setup --http 127.0.0.1:{city_http} --quic 127.0.0.1:{city_quic}", youke_bin().display(), city.display());
    let mut child = Command::new("script").args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("script(1)");
    let mut stdin = child.stdin.take().expect("stdin");
    for answer in ["city", &parent, &token] {
        writeln!(stdin, "{answer}").expect("answer");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(stdin);
    let output = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("Role (province / city / school)") && text.contains("Join token"), "the prompts: {text}");
    assert!(text.contains("enrolled city node \"石家庄市教育局\""), "{text}");
    let status: serde_json::Value = serde_json::from_str(&youke_ok(&city, &["status", "--json"])).expect("json");
    assert_eq!(status["role"], "city", "{status}");
}
