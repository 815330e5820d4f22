//! One lesson travels school → city → province between three real `youke` processes on
//! loopback, and the city is SIGKILLed in the middle of receiving the media: after it restarts,
//! the transfer resumes and the file arrives byte-identical at both tiers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;

#[test]
fn lesson_travels_up_and_media_survives_a_killed_city() {
    let root = tempfile::tempdir().expect("tempdir");
    let (p_dir, c_dir, s_dir) = (root.path().join("province"), root.path().join("city"), root.path().join("school"));
    let (p_http, c_http, s_http) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let (p_quic, c_quic, s_quic) = (free_udp_port(), free_udp_port(), free_udp_port());
    let addr = |port: u16| format!("127.0.0.1:{port}");

    youke_ok(&p_dir, &["init", "--role", "province", "--name", "河北省优课中心", "--http", &addr(p_http), "--quic", &addr(p_quic)]);
    youke_ok(&c_dir, &["init", "--role", "city", "--name", "石家庄市", "--http", &addr(c_http), "--quic", &addr(c_quic), "--parent", &addr(p_quic)]);
    // The school's uplink is throttled so that the transfer takes a few seconds and can be cut.
    youke_ok(&s_dir, &[
        "init", "--role", "school", "--name", "第一中学", "--http", &addr(s_http), "--quic", &addr(s_quic),
        "--parent", &addr(c_quic), "--upload-rate", "2MB/s",
    ]);

    // Two recordings with Chinese names (and a space) made by the ffmpeg CLI.
    let media_dir = root.path().join("录播");
    std::fs::create_dir_all(&media_dir).expect("mkdir");
    let shared_file = media_dir.join("勾股定理 第一课时.mp4");
    make_recording(&shared_file, 8, 6000);
    let private_file = media_dir.join("校内教研课.mp4");
    make_recording(&private_file, 1, 500);
    let shared_hash = blake3_file(&shared_file);
    let size = std::fs::metadata(&shared_file).expect("meta").len();
    assert!(size > 4_000_000, "recording should be several MB, is {size}");

    // Import works whether or not the node runs: import the private lesson before serving.
    let private_id = youke_ok(&s_dir, &["import", private_file.to_str().unwrap(), "--title", "校内教研课"]).trim().to_string();
    assert!(uuid_like(&private_id), "{private_id:?}");

    // Every link is mutual TLS under the province's root: the city and the school enroll with
    // one-time join tokens made by their parents.
    let province = Server::start(&p_dir, p_http);
    enroll(&p_dir, p_quic, &c_dir, "city", "石家庄市");
    let mut city = Server::start(&c_dir, c_http);
    enroll(&c_dir, c_quic, &s_dir, "school", "第一中学");
    let school = Server::start(&s_dir, s_http);

    let id = youke_ok(&s_dir, &[
        "import", shared_file.to_str().unwrap(), "--title", "勾股定理", "--teacher", "王芳", "--grade", "八年级",
        "--subject", "数学", "-k", "直角三角形",
    ])
    .trim()
    .to_string();
    assert!(uuid_like(&id), "{id:?}");
    let shared = youke_ok(&s_dir, &["share", &id, "--to", "province"]);
    assert!(shared.contains("province"), "{shared}");

    // The school's own portal finds it by a Chinese word at once.
    wait_for("the school's search to find the lesson", Duration::from_secs(10), || {
        let r = school.get_json("/api/v1/search?q=%E5%8B%BE%E8%82%A1")?;
        r["items"].as_array()?.iter().any(|i| i["id"] == id.as_str()).then_some(())
    });

    // Cut the city while it holds part of the media.
    let partial = c_dir.join("media").join("partial").join(&shared_hash);
    wait_for("the city to hold part of the media", Duration::from_secs(30), || {
        let len = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        (len > 1_000_000).then_some(())
    });
    city.kill();
    let held = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(held > 0 && held < size, "the city held {held} of {size} bytes when killed");
    std::thread::sleep(Duration::from_millis(500));
    let city = Server::start(&c_dir, c_http);

    // Shared to 全省, it waits in the province's review queue, seen by no one else above the
    // school until a reviewer approves it (`youke review`).
    wait_for("the lesson in the province's review queue", Duration::from_secs(60), || {
        let list: serde_json::Value = serde_json::from_str(&youke_ok(&p_dir, &["review", "list", "--json"])).ok()?;
        list.as_array()?.iter().any(|l| l["id"] == id.as_str()).then_some(())
    });
    let hits = province.get_json("/api/v1/search?q=%E5%8B%BE%E8%82%A1").expect("search");
    assert!(!hits["items"].as_array().unwrap().iter().any(|i| i["id"] == id.as_str()), "an unreviewed lesson is not searchable: {hits}");
    let approved = youke_ok(&p_dir, &["review", "approve", &id]);
    assert!(approved.contains("approved"), "{approved}");
    assert!(youke_ok(&p_dir, &["review", "list"]).contains("no lessons wait"));

    for (tier, node) in [("city", &city), ("province", &province)] {
        let lesson = wait_for(&format!("the lesson and its media at the {tier}"), Duration::from_secs(60), || {
            let l = node.get_json(&format!("/api/v1/lessons/{id}"))?;
            (l["media_present"] == true).then_some(l)
        });
        assert_eq!(lesson["title"], "勾股定理");
        assert_eq!(lesson["teacher"], "王芳");
        assert_eq!(lesson["share_level"], "province");
        assert_eq!(lesson["origin_name"], "第一中学");
        assert_eq!(lesson["media"]["hash"], shared_hash.as_str());
        assert_eq!(lesson["probe"]["video"]["codec"], "h264");
        // The compliance report travels in the lesson's document: a 720p file fails V2.
        let rules = lesson["compliance"]["rules"].as_array().expect("compliance report");
        let v2 = rules.iter().find(|r| r["id"] == "V2").expect("V2");
        assert_eq!((v2["verdict"].as_str(), v2["measured"].as_str()), (Some("fail"), Some("1280x720")));
        let bytes = node.get_bytes(&format!("/api/v1/lessons/{id}/media")).expect("media");
        assert_eq!(blake3::hash(&bytes).to_hex().to_string(), shared_hash, "media at the {tier} differs");
        // The unshared lesson never leaves the school.
        assert!(node.get_json(&format!("/api/v1/lessons/{private_id}")).is_none(), "private lesson leaked to the {tier}");
    }

    // The restarted city resumed the partial file instead of starting over.
    let log = city.log_text();
    assert!(log.contains("resuming blob receive"), "city log shows no resumed transfer:\n{log}");
    assert!(!partial.exists(), "the partial file should be gone once the blob is stored");

    // The province's search finds the lesson, and the school has nothing left to send.
    wait_for("the province's search", Duration::from_secs(10), || {
        let r = province.get_json("/api/v1/search?q=%E7%9B%B4%E8%A7%92%E4%B8%89%E8%A7%92%E5%BD%A2")?;
        r["items"].as_array()?.iter().any(|i| i["id"] == id.as_str()).then_some(())
    });
    // The recording's ladder, packed at the school once its transcode is done, follows it up.
    let status: serde_json::Value = wait_for("the school's uploads done", Duration::from_secs(60), || {
        let status: serde_json::Value = serde_json::from_str(&youke_ok(&s_dir, &["status", "--json"])).ok()?;
        (status["pending_uploads"] == 0 && status["media_jobs"]["done"] == 2).then_some(status)
    });
    assert_eq!(status["parent"]["state"], "up", "{status}");
    assert_eq!(status["lessons"], 2);

    // An edit at the school reaches the province, where it is searchable within a second of
    // arriving (the index follows synced changes as it follows local ones).
    let (code, body) = school.patch_json(&format!("/api/v1/lessons/{id}"), serde_json::json!({"knowledge_points": ["赵爽弦图"]})).unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = province.patch_json(&format!("/api/v1/lessons/{id}"), serde_json::json!({"title": "改名"})).unwrap();
    assert_eq!(code, 400, "only the school edits its lesson's fields: {body}");
    let mut arrived = None;
    let found = wait_for_opt(Duration::from_secs(30), Duration::from_millis(20), || {
        let hit = province.get_json("/api/v1/search?q=%E8%B5%B5%E7%88%BD%E5%BC%A6%E5%9B%BE&facets=false")?["items"].as_array()?.iter().any(|i| i["id"] == id.as_str());
        let now = std::time::Instant::now();
        if arrived.is_none() && province.get_json(&format!("/api/v1/lessons/{id}"))?["knowledge_points"][0] == "赵爽弦图" {
            arrived = Some(now);
        }
        hit.then_some(now)
    })
    .expect("the edit to be searchable at the province");
    let lag = found.saturating_duration_since(arrived.unwrap_or(found));
    println!("search freshness after sync: {lag:?}");
    assert!(lag < Duration::from_secs(1), "searchable {lag:?} after the edit arrived");
    drop(school);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}
