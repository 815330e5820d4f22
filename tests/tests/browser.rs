//! The portal in a real browser: Debian's Chromium, driven by playwright-core (web/e2e), against a
//! real `youke serve`. Screenshots are kept in target/e2e-artifacts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// A province (河北省), a city (石家庄市) and a school (第一中学) on free loopback ports, without
/// background transcoding.
struct Tree {
    dirs: [PathBuf; 3],
    http: [u16; 3],
    quic: [u16; 3],
}

impl Tree {
    fn init(root: &std::path::Path) -> Tree {
        let t = Tree {
            dirs: ["province", "city", "school"].map(|n| root.join(n)),
            http: [(); 3].map(|_| free_tcp_port()),
            quic: [(); 3].map(|_| free_udp_port()),
        };
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let names = ["河北省", "石家庄市", "第一中学"];
        for (i, role) in ["province", "city", "school"].into_iter().enumerate() {
            let (http, quic) = (addr(t.http[i]), addr(t.quic[i]));
            let mut args = vec!["init", "--role", role, "--name", names[i], "--http", &http, "--quic", &quic];
            let parent = if i > 0 { addr(t.quic[i - 1]) } else { String::new() };
            if i > 0 {
                args.extend(["--parent", parent.as_str()]);
            }
            youke_ok(&t.dirs[i], &args);
            let cfg = t.dirs[i].join("youke.toml");
            std::fs::write(&cfg, no_transcode(std::fs::read_to_string(&cfg).unwrap())).unwrap();
        }
        t
    }

    /// Starts the three servers, enrolling the city and the school on the way.
    fn start(&self) -> [Server; 3] {
        let province = Server::start(&self.dirs[0], self.http[0]);
        enroll(&self.dirs[0], self.quic[0], &self.dirs[1], "city", "石家庄市");
        let city = Server::start(&self.dirs[1], self.http[1]);
        enroll(&self.dirs[1], self.quic[1], &self.dirs[2], "school", "第一中学");
        let school = Server::start(&self.dirs[2], self.http[2]);
        [province, city, school]
    }
}

#[test]
fn a_lesson_plays_in_chromium_through_hlsjs_with_quality_choice_subtitles_and_seeking() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "播放学校", |t| t);
    let rec = dir.path().join("播放 测试.mp4");
    make_recording(&rec, 24, 1200);
    std::fs::write(
        rec.with_extension("srt"),
        "1\n00:00:01,000 --> 00:00:03,000\n同学们好\n\n2\n00:00:09,000 --> 00:00:11,500\n我们来看勾股定理\n",
    )
    .unwrap();
    let id = youke_ok(&data, &["import", rec.to_str().unwrap(), "--title", "播放测试", "--subject", "数学"]).trim().to_string();
    let server = Server::start(&data, http);
    wait_for("the ladder", Duration::from_secs(120), || {
        let l = server.get_json(&format!("/api/v1/lessons/{id}"))?;
        l["hls"]["master_url"].is_string().then_some(())
    });

    wait_for("the subtitles to be indexed", Duration::from_secs(30), || {
        let page = String::from_utf8(server.get_bytes("/search?q=%E5%8B%BE%E8%82%A1%E5%AE%9A%E7%90%86")?).ok()?;
        page.contains("?t=").then_some(())
    });
    let shot = artifacts().join("lesson-plays.png");
    let seen = scenario("play.mjs", serde_json::json!({ "base": server.url(""), "query": "勾股定理", "lesson": id, "screenshot": shot }));
    assert!(seen["hits"].as_array().unwrap().iter().any(|h| h == "播放测试"), "the search box finds it: {seen:#}");
    assert_eq!(seen["moment_href"], format!("/lessons/{id}?t=9.000"), "the hit links to the moment the words are spoken: {seen:#}");
    assert_eq!(seen["url"], format!("/lessons/{id}?t=9.000"), "{seen:#}");
    assert_eq!(seen["engine"], "hls.js", "{seen:#}");
    let heights: Vec<u64> = seen["levels"].as_array().unwrap().iter().map(|l| l["height"].as_u64().unwrap()).collect();
    assert_eq!(heights, [360, 480, 720], "hls.js orders the rungs by bit rate: {seen:#}");
    let menu: Vec<&str> = seen["menu"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert_eq!(menu.len(), 4, "自动 and three rungs: {seen:#}");
    assert!(menu[0] == "自动" && menu[1].starts_with("720p") && menu[3].starts_with("360p"), "highest first: {menu:?}");
    assert!(seen["started_at"].as_f64().unwrap() >= 8.9, "the player starts at the subtitle hit (9 s): {seen:#}");
    assert!(seen["playing"]["time"].as_f64().unwrap() > 3.4 && seen["playing"]["paused"] == false, "{seen:#}");
    assert_eq!(seen["switched"]["height"], 360, "{seen:#}");
    assert_eq!(seen["tracks"][0]["language"], "zh", "{seen:#}");
    assert_eq!(seen["cues"][1]["text"], "我们来看勾股定理", "{seen:#}");
    assert!((seen["cues"][1]["start"].as_f64().unwrap() - 9.0).abs() < 0.01, "{seen:#}");
    assert!((seen["seek"]["target"].as_f64().unwrap() - 1.0).abs() < 0.01, "{seen:#}");
    assert_eq!(seen["errors"].as_array().unwrap().len(), 0, "{seen:#}");
    assert!(shot.is_file());
    // At a phone's width nothing is wider than the screen.
    for page in ["home", "search", "lesson"] {
        let p = &seen["phone"][page];
        assert!(p["scroll"].as_u64().unwrap() <= p["width"].as_u64().unwrap(), "{page} overflows a phone screen: {seen:#}");
        assert!(artifacts().join(format!("lesson-plays-phone-{page}.png")).is_file());
    }

    // The built-in hls.js is served with a content tag and cached for good.
    let page = String::from_utf8(server.get_bytes(&format!("/lessons/{id}")).unwrap()).unwrap();
    let src = page.split(r#"<script src=""#).skip(1).filter_map(|s| s.split('"').next()).find(|s| s.contains("hls.min.js")).unwrap();
    assert!(src.starts_with("/assets/hls.min.js?v="), "{src}");
    let resp = ureq::get(&server.url(src)).call().unwrap();
    assert_eq!(resp.headers().get("cache-control").unwrap(), "public, max-age=31536000, immutable");
    assert!(resp.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/javascript"));
}

#[test]
fn a_teacher_signs_in_uploads_a_recording_and_finds_it_under_my_lessons() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "上传学校", no_transcode);
    let server = Server::start(&data, http);
    add_user(&data, "wangfang", "teacher", "teacher password");
    // Larger than two 8 MiB pieces; the second piece is cut off once on its way.
    let rec = dir.path().join("浮力 实验.mp4");
    make_recording(&rec, 10, 19_000);
    let size = std::fs::metadata(&rec).unwrap().len();
    assert!(size > 16 << 20, "{size}");
    let bad = dir.path().join("期末复习 录像.mp4");
    std::fs::write(&bad, "这不是视频文件。".repeat(4000)).unwrap();
    let shot = artifacts().join("teacher-uploads.png");
    let seen = scenario(
        "upload.mjs",
        serde_json::json!({ "base": server.url(""), "name": "wangfang", "password": "teacher password", "file": rec, "bad_file": bad, "title": "阿基米德原理 实验课", "screenshot": shot, "drop_piece": 2 }),
    );
    // The refusal names the file as the teacher chose it, in Chinese, with no English or path.
    let refused = seen["bad_message"].as_str().unwrap();
    assert!(refused.starts_with("未能导入：“期末复习 录像.mp4”不是可以播放的录像"), "{seen:#}");
    assert!(!refused.replace("期末复习 录像.mp4", "").chars().any(|c| c == '/' || c.is_ascii_alphabetic()), "{refused}");
    assert_eq!(seen["dropped"], 1, "{seen:#}");
    assert_eq!(seen["upload"]["retries"], 1, "one retry after the cut: {seen:#}");
    assert_eq!(seen["upload"]["pieces"], size.div_ceil(8 << 20), "every piece acknowledged once: {seen:#}");
    assert_eq!(seen["redirected_to"], "/login?next=%2Fupload", "{seen:#}");
    assert_eq!(seen["after_sign_in"], "/upload", "{seen:#}");
    assert!(seen["header"].as_str().unwrap().contains("wangfang（教师）"), "{seen:#}");
    assert!(seen["message"].as_str().unwrap().contains("上传完成"), "{seen:#}");
    assert_eq!(seen["progress"], 1.0, "{seen:#}");
    assert!(seen["listed"].as_array().unwrap().iter().any(|t| t == "阿基米德原理 实验课"), "{seen:#}");
    assert_eq!(seen["state"], "local", "a school without a parent keeps its lessons: {seen:#}");
    assert!(seen["link"].as_str().unwrap().starts_with("/lessons/"), "{seen:#}");
    assert!(shot.is_file());
    // Searchable within moments of the upload's answer (the index commits right after it).
    let found = wait_for("the upload in the index", Duration::from_secs(10), || {
        server.get_json("/api/v1/search?q=%E9%98%BF%E5%9F%BA%E7%B1%B3%E5%BE%B7").filter(|f| f["total"] == 1)
    });
    assert_eq!(found["items"][0]["teacher"], "wangfang", "the uploading teacher by default: {found}");
    assert_eq!(found["items"][0]["media"]["hash"], blake3_file(&rec), "the bytes arrived whole: {found}");
    // The upload is in the audit log under the teacher's name.
    let audit = server.get_json("/api/v1/audit").unwrap();
    assert!(audit.as_array().unwrap().iter().any(|e| e["user"] == "wangfang" && e["action"] == "POST /api/v1/uploads/resumable"), "{audit}");
}

#[test]
fn a_teacher_is_told_in_chinese_when_sign_ins_are_held_back_and_the_disk_has_no_room() {
    let dir = tempfile::tempdir().unwrap();
    // The node on a 64 MiB disk of its own (a mount namespace of this test's thread, made before
    // anything else starts); the recording outside it.
    let root = dir.path().join("disk");
    std::fs::create_dir_all(&root).unwrap();
    mount_tmpfs(&root, "64m", false);
    let (data, http) = standalone_school(&root, "小硬盘学校", no_transcode);
    let server = Server::start(&data, http);
    add_user(&data, "wangfang", "teacher", "teacher password");
    add_user(&data, "lihua", "teacher", "teacher password");
    // 80 MiB: what the page declares is all that matters, the node refuses before any byte.
    let file = dir.path().join("公开课 全程.mp4");
    std::fs::File::create(&file).unwrap().set_len(80 << 20).unwrap();
    let shot = artifacts().join("no-room.png");
    let seen = scenario(
        "refusals.mjs",
        serde_json::json!({ "base": server.url(""), "name": "wangfang", "other_name": "lihua", "password": "teacher password", "file": file, "screenshot": shot }),
    );
    let sign_in = seen["sign_in_message"].as_str().unwrap();
    assert!(sign_in.contains("登录失败次数过多"), "{seen:#}");
    let upload = seen["upload_message"].as_str().unwrap();
    assert!(upload.contains("节点磁盘空间不足") && upload.contains("80.0 MiB") && upload.contains("5% 预留"), "{seen:#}");
    assert_eq!(seen["patches"], 0, "not a byte was sent: {seen:#}");
    assert!(shot.is_file());
}

#[test]
fn a_teacher_shares_a_lesson_watches_it_reach_the_city_and_switches_language() {
    let root = tempfile::tempdir().unwrap();
    let t = Tree::init(root.path());
    let s_dir = t.dirs[2].clone();
    let rec = root.path().join("浮力.mp4");
    make_recording(&rec, 3, 800);
    let id = youke_ok(&s_dir, &["import", rec.to_str().unwrap(), "--title", "浮力", "--teacher", "wangfang", "--subject", "物理"]).trim().to_string();
    add_user(&s_dir, "wangfang", "teacher", "teacher password");
    let [_province, city, school] = t.start();

    let shot = artifacts().join("teacher-shares.png");
    let seen = scenario("share.mjs", serde_json::json!({ "base": school.url(""), "name": "wangfang", "password": "teacher password", "lesson": id, "screenshot": shot }));
    assert_eq!(seen["before"], "local", "{seen:#}");
    assert_eq!((seen["level_before"].as_str(), seen["level_after"].as_str()), (Some("本校"), Some("全市")), "{seen:#}");
    let states: Vec<&str> = seen["states"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(states.last(), Some(&"delivered"), "{seen:#}");
    assert!(seen["state_text"].as_str().unwrap().contains("已送达石家庄市"), "{seen:#}");
    assert_eq!(seen["en"]["url"], "/my", "the switch returns to the same page: {seen:#}");
    assert_eq!(seen["en"]["lang"], "en", "{seen:#}");
    assert_eq!(seen["en"]["h1"], "My lessons", "{seen:#}");
    assert!(seen["en"]["state_text"].as_str().unwrap().contains("delivered to 石家庄市"), "{seen:#}");
    assert!(seen["en"]["nav"].as_array().unwrap().iter().any(|n| n == "Teachers"), "{seen:#}");
    assert_eq!((seen["back"]["lang"].as_str(), seen["back"]["h1"].as_str()), (Some("zh-CN"), Some("我的课程")), "{seen:#}");
    // The city holds the lesson and its recording.
    let at_city = city.get_json(&format!("/api/v1/lessons/{id}")).unwrap();
    assert_eq!(at_city["media_present"], true, "{at_city}");
    assert!(artifacts().join("teacher-shares-zh.png").is_file());
}

#[test]
fn a_competition_runs_from_notice_to_award_across_a_school_and_the_province() {
    let root = tempfile::tempdir().unwrap();
    let t = Tree::init(root.path());
    let (p_dir, s_dir) = (t.dirs[0].clone(), t.dirs[2].clone());
    // One lesson meets the course video standard (1080p, 9 Mbit/s, Chinese subtitles), one does not (720p).
    let good_rec = root.path().join("勾股定理 示范课.mp4");
    make_recording_sized(&good_rec, 3, 9000, "1920x1080");
    std::fs::write(good_rec.with_extension("srt"), "1\n00:00:00,500 --> 00:00:02,000\n同学们好\n").unwrap();
    let bad_rec = root.path().join("浮力.mp4");
    make_recording(&bad_rec, 2, 800);
    let import = |rec: &std::path::Path, title: &str| {
        youke_ok(&s_dir, &["import", rec.to_str().unwrap(), "--title", title, "--teacher", "wangfang", "--subject", "数学"]).trim().to_string()
    };
    let good = import(&good_rec, "勾股定理 示范课");
    let bad = import(&bad_rec, "浮力");
    let check = String::from_utf8(youke(&s_dir, &["check", good_rec.to_str().unwrap(), "--srt", good_rec.with_extension("srt").to_str().unwrap()]).stdout).unwrap();
    assert!(check.contains(": meets the standard"), "the good recording meets the standard: {check}");

    add_user(&p_dir, "shenghuiyuan", "admin", "province admin password");
    add_user(&p_dir, "zhuanjia1", "expert", "expert one password");
    add_user(&p_dir, "zhuanjia2", "expert", "expert two password");
    add_user(&s_dir, "wangfang", "teacher", "teacher password");
    let [province, _city, school] = t.start();

    let shot = artifacts().join("competition.png");
    let seen = scenario(
        "competition.mjs",
        serde_json::json!({
            "province": province.url(""), "school": school.url(""),
            "admin": ["shenghuiyuan", "province admin password"],
            "experts": [["zhuanjia1", "expert one password"], ["zhuanjia2", "expert two password"]],
            "teacher": ["wangfang", "teacher password"],
            "good": good, "bad": bad, "closes": "2099-06-30T17:00", "screenshot": shot, "timeout_secs": 240,
        }),
    );
    let rubric: Vec<&str> = seen["rubric"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(rubric, ["教学设计", "教学实施", "教学效果", "视频质量"], "the default rubric: {seen:#}");
    assert!(seen["listed_at_school"].as_str().unwrap().contains("报送中"), "{seen:#}");
    assert!(seen["options"].as_array().unwrap().iter().any(|o| o.as_str().unwrap().contains("不符合")), "{seen:#}");
    let refused = seen["refused"].as_str().unwrap();
    assert!(refused.contains("未能报送") && refused.contains("V2") && refused.contains("1280x720"), "the failing rules are named: {seen:#}");
    assert_eq!(seen["entered"], serde_json::json!([good]), "{seen:#}");
    assert!(seen["judges_before"].as_str().unwrap().contains("zhuanjia1 未评"), "{seen:#}");
    assert_eq!(seen["expert_heading"].as_str().unwrap().split_whitespace().next(), Some("我的评审任务"), "{seen:#}");
    assert_eq!(seen["expert_entries"], serde_json::json!([good]), "{seen:#}");
    assert_eq!(seen["expert_total"], "已评：91", "{seen:#}");
    assert_eq!(seen["other_expert_entries"], 0, "an expert sees only their assignments: {seen:#}");
    assert!(seen["expert_assignments"][0].as_str().unwrap().contains("已评 91"), "{seen:#}");
    assert!(seen["judges_after"].as_str().unwrap().contains("zhuanjia1 91") && seen["judges_after"].as_str().unwrap().contains("91.0"), "{seen:#}");
    assert!(seen["results"][0].as_str().unwrap().contains("一等奖"), "{seen:#}");
    assert!(seen["badge"].as_str().unwrap().contains("一等奖"), "{seen:#}");
    assert!(seen["collections"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains("获奖课例")), "{seen:#}");
    assert!(seen["school_results"][0].as_str().unwrap().contains("勾股定理 示范课"), "{seen:#}");
    // The scores stayed at the province: the school's API shows the entry without judgements.
    let at_school = school.get_json(&format!("/api/v1/competitions/{}", seen["competition"].as_str().unwrap())).unwrap();
    assert_eq!(at_school["entries"][0]["judges"], serde_json::json!([]), "{at_school}");
    assert_eq!(at_school["entries"][0]["award"], "一等奖", "{at_school}");
    assert_eq!(at_school["stage"], "awarded", "{at_school}");
    // The winning lesson's recording reached the province (entries go up first).
    assert_eq!(province.get_json(&format!("/api/v1/lessons/{good}")).unwrap()["media_present"], true);
    assert!(artifacts().join("competition-school.png").is_file());
}

#[test]
fn the_province_console_follows_the_whole_tree_live_and_manages_tokens_links_and_users() {
    let root = tempfile::tempdir().unwrap();
    let t = Tree::init(root.path());
    let [province, _city, mut school] = t.start();
    let school_id = school.get_json("/api/v1/status").unwrap()["node_id"].as_str().unwrap().to_string();
    let mut last = serde_json::Value::Null;
    let reported = wait_for_opt(Duration::from_secs(60), Duration::from_millis(250), || {
        last = province.get_json("/api/v1/admin/live")?;
        last["tree"].as_array()?.iter().any(|n| n["node_id"] == school_id.as_str() && n["connected"] == true).then_some(())
    });
    assert!(reported.is_some(), "the school's health reaches the province through the city: {last:#}");
    let marker = root.path().join("school-seen-up");
    let shot = artifacts().join("console.png");
    let args = serde_json::json!({
        "base": province.url(""), "admin": [ADMIN.0, ADMIN.1], "school": school_id, "marker": marker, "screenshot": shot, "timeout_secs": 200,
    });
    let run = std::thread::spawn(move || scenario("console.mjs", args));
    // Once the console shows the school up, the school stops: the console must see it go down.
    wait_for("the console to show the school", Duration::from_secs(120), || marker.is_file().then_some(()));
    school.kill();
    let seen = run.join().unwrap();
    assert_eq!(seen["h1"], "管理控制台", "{seen:#}");
    let sections: Vec<&str> = seen["sections"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(sections, ["tree", "storage", "users", "tokens", "link", "quarantine", "audit"], "{seen:#}");
    assert!(seen["forecast"].as_u64().unwrap() >= 7, "{seen:#}");
    let tree: Vec<&str> = seen["tree"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(tree, ["河北省 省级", "石家庄市 市级", "第一中学 学校"], "the province sees its city's school: {seen:#}");
    assert_eq!(seen["depth"], "depth-2", "the school is drawn under the city: {seen:#}");
    assert_eq!(seen["down_text"], "离线", "{seen:#}");
    assert_eq!(seen["reloaded"], 1, "the row changed without reloading the page: {seen:#}");
    assert!(seen["token"].as_str().unwrap().starts_with("YK1"), "{seen:#}");
    assert_eq!(seen["schedule"], "08:00-17:30 off, otherwise 20Mbit/s", "{seen:#}");
    assert!(seen["users"].as_array().unwrap().iter().any(|u| u == "zhangsan"), "{seen:#}");
    assert!(seen["audit"].as_array().unwrap().iter().any(|a| a == "POST /api/v1/tokens"), "the token is in the audit log: {seen:#}");
    // The token is real: the province lists it, unused.
    let tokens = province.get_json("/api/v1/tokens").unwrap();
    assert!(tokens.as_array().unwrap().iter().any(|t| t["name"] == "保定市教育局" && t["used_by"].is_null()), "{tokens}");
    assert!(shot.is_file());
}
