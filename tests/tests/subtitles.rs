//! Subtitles as a school uses them: an SRT left beside the recording is attached at import,
//! judged by rules S1..S4, served to the player as WebVTT, and its words find the lesson with
//! the moment they are spoken; bad subtitle files are refused with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn subtitles_are_attached_checked_served_and_searchable() {
    let dir = tempfile::tempdir().unwrap();
    // This test is about subtitles: no transcoding beside it.
    let (data, http) = standalone_school(dir.path(), "字幕学校", no_transcode);

    let rec = dir.path().join("第三章 复习.mp4");
    make_recording(&rec, 8, 1000);
    std::fs::write(
        rec.with_extension("srt"),
        "\u{feff}1\r\n00:00:00,500 --> 00:00:02,000\r\n同学们好\r\n\r\n2\r\n00:00:05,500 --> 00:00:07,000\r\n今天我们来证明勾股定理\r\n\r\n3\r\n00:00:07,100 --> 00:00:07,900\r\n下课\r\n",
    )
    .unwrap();
    let id = youke_ok(&data, &["import", rec.to_str().unwrap(), "--subject", "数学"]).trim().to_string();
    let server = Server::start(&data, http);

    let lesson = server.get_json(&format!("/api/v1/lessons/{id}")).unwrap();
    assert_eq!(lesson["subtitles"]["cues"], 3, "{lesson}");
    assert_eq!(lesson["subtitles"]["language"], "zh");
    let rules = lesson["compliance"]["rules"].as_array().unwrap();
    let verdict = |rid: &str| rules.iter().find(|r| r["id"] == rid).map(|r| r["verdict"].as_str().unwrap_or("").to_string()).unwrap();
    for rid in ["S1", "S2", "S3", "S4"] {
        assert_eq!(verdict(rid), "pass", "{rid}: {}", lesson["compliance"]);
    }

    let page = String::from_utf8(server.get_bytes(&format!("/lessons/{id}")).unwrap()).unwrap();
    assert!(page.contains(&format!(r#"<track kind="subtitles" src="/api/v1/lessons/{id}/subtitles.vtt" srclang="zh""#)), "{page}");
    assert!(page.contains("课程视频标准检测"), "the page shows the compliance report");
    let vtt = String::from_utf8(server.get_bytes(&format!("/api/v1/lessons/{id}/subtitles.vtt")).unwrap()).unwrap();
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("00:00:05.500 --> 00:00:07.000\n今天我们来证明勾股定理"), "{vtt}");

    // A word only spoken, not in the title: the lesson and the moment.
    let found = wait_for("the spoken word in search", std::time::Duration::from_secs(10), || {
        let r = server.get_json("/api/v1/search?q=%E8%AF%81%E6%98%8E")?; // 证明
        r["items"].as_array()?.iter().find(|i| i["id"] == id.as_str()).cloned()
    });
    assert_eq!(found["moments"][0]["start_secs"], 5.5, "{found}");
    assert_eq!(found["moments"][0]["text"], "今天我们来证明勾股定理");

    // Bad files: refused with the reason, the lesson keeps its subtitles.
    let (code, body) = server.put_bytes(&format!("/api/v1/lessons/{id}/subtitles"), &[0x31u8, 0x0a, 0xc4, 0xe3, 0xba, 0xc3]).unwrap();
    assert_eq!(code, 400, "a GBK file must be refused with 400: {body}");
    let broken = dir.path().join("broken.srt");
    std::fs::write(&broken, "1\n00:00:01 --> 00:00:02\nhi\n").unwrap();
    let out = youke(&data, &["subtitles", &id, broken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.get_json(&format!("/api/v1/lessons/{id}")).unwrap()["subtitles"]["cues"], 3);

    // Replaced through the API, in English.
    let en = "1\n00:00:01,000 --> 00:00:03,000\nGood morning, class\n";
    let (code, body) = server.put_bytes(&format!("/api/v1/lessons/{id}/subtitles?language=en"), en.as_bytes()).unwrap();
    assert_eq!(code, 200, "{body}");
    let lesson = server.get_json(&format!("/api/v1/lessons/{id}")).unwrap();
    assert_eq!((lesson["subtitles"]["cues"].as_u64(), lesson["subtitles"]["language"].as_str()), (Some(1), Some("en")));
}
