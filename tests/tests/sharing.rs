//! The sharing loop across four real `youke` processes on loopback: a province, a city and two
//! of its schools (A and B). A lesson shared to 全省 at A waits for the province's review, seen by
//! no other school; rejected, its teacher reads the reason; approved, school B finds it and
//! watches it through the city; a comment hidden at the province disappears at B; taken down
//! (下架) at the province, it leaves B's search and pages and the copies of its media at the city
//! and at B. A lesson shared to 全市 at B reaches A once the city approves it, and A still finds
//! it with the city killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Whether any file under `dir` is named after `hash` (the blob, its cache file or manifest;
/// stored blobs are sharded as `ab/cdef…`).
fn holds_file(dir: &Path, hash: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            return holds_file(&p, hash);
        }
        let name = e.file_name().to_string_lossy().to_string();
        let parent = p.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        name.contains(hash) || format!("{parent}{name}") == hash
    })
}

fn search_ids(node: &mut Server, q: &str) -> Option<Vec<String>> {
    let path = format!("/api/v1/search?q={}&facets=false", url_encode(q));
    let r = node.with_session(None, |n| n.get_json(&path))?;
    Some(r["items"].as_array()?.iter().filter_map(|i| i["id"].as_str().map(str::to_string)).collect())
}

fn url_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The province, the city and schools A and B on free loopback ports, started and enrolled,
/// without background transcoding; a reviewer (expert) at the province and at the city, a
/// teacher at each school.
struct Federation {
    dirs: Vec<std::path::PathBuf>,
    http: Vec<u16>,
    servers: Vec<Server>,
}

const NAMES: [&str; 4] = ["河北省", "石家庄市", "第一中学", "第二中学"];
const P_EXPERT: (&str, &str) = ("shenpi", "province reviewer password");
const C_EXPERT: (&str, &str) = ("jiaoyanyuan", "city reviewer password");
const TEACHER_A: (&str, &str) = ("wanglaoshi", "teacher a password");
const TEACHER_B: (&str, &str) = ("lilaoshi", "teacher b password");

fn federation(root: &Path) -> Federation {
    federation_transcoding(root, [false; 4])
}

/// [`federation`] with background transcoding on at the nodes marked (province, city, A, B).
fn federation_transcoding(root: &Path, transcode: [bool; 4]) -> Federation {
    let dirs: Vec<_> = ["province", "city", "school-a", "school-b"].iter().map(|n| root.join(n)).collect();
    let http: Vec<u16> = (0..4).map(|_| free_tcp_port()).collect();
    let quic: Vec<u16> = (0..4).map(|_| free_udp_port()).collect();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    youke_ok(&dirs[0], &["init", "--role", "province", "--name", NAMES[0], "--http", &addr(http[0]), "--quic", &addr(quic[0])]);
    youke_ok(&dirs[1], &["init", "--role", "city", "--name", NAMES[1], "--http", &addr(http[1]), "--quic", &addr(quic[1]), "--parent", &addr(quic[0])]);
    for i in [2, 3] {
        youke_ok(&dirs[i], &["init", "--role", "school", "--name", NAMES[i], "--http", &addr(http[i]), "--quic", &addr(quic[i]), "--parent", &addr(quic[1])]);
    }
    for (d, on) in dirs.iter().zip(transcode) {
        if !on {
            edit_config(d, no_transcode);
        }
    }
    add_user(&dirs[0], P_EXPERT.0, "expert", P_EXPERT.1);
    add_user(&dirs[1], C_EXPERT.0, "expert", C_EXPERT.1);
    add_user(&dirs[2], TEACHER_A.0, "teacher", TEACHER_A.1);
    add_user(&dirs[3], TEACHER_B.0, "teacher", TEACHER_B.1);
    let mut servers = vec![Server::start(&dirs[0], http[0])];
    enroll(&dirs[0], quic[0], &dirs[1], "city", NAMES[1]);
    servers.push(Server::start(&dirs[1], http[1]));
    enroll(&dirs[1], quic[1], &dirs[2], "school", NAMES[2]);
    enroll(&dirs[1], quic[1], &dirs[3], "school", NAMES[3]);
    servers.push(Server::start(&dirs[2], http[2]));
    servers.push(Server::start(&dirs[3], http[3]));
    Federation { dirs, http, servers }
}

/// Imports a recording at a school with a teacher's name and shares it; returns its id.
fn import_and_share(dir: &Path, rec: &Path, title: &str, teacher: &str, to: &str) -> String {
    let id = youke_ok(dir, &["import", rec.to_str().unwrap(), "--title", title, "--teacher", teacher, "--grade", "八年级", "--subject", "物理", "-k", "惯性"]).trim().to_string();
    youke_ok(dir, &["share", &id, "--to", to]);
    id
}

#[test]
fn a_shared_lesson_is_reviewed_published_watched_and_taken_down_across_the_tree() {
    let root = tempfile::tempdir().unwrap();
    let rec_a = root.path().join("牛顿第一定律 示范课.mp4");
    make_recording(&rec_a, 3, 800);
    let hash_a = blake3_file(&rec_a);
    let rec_b = root.path().join("光的折射.mp4");
    make_recording(&rec_b, 2, 600);
    let Federation { dirs, http, servers } = federation(root.path());
    let names = NAMES;
    let [mut province, mut city, mut a, mut b]: [Server; 4] = servers.try_into().ok().unwrap();
    let l1 = import_and_share(&dirs[2], &rec_a, "牛顿第一定律", TEACHER_A.0, "province");
    let l2 = import_and_share(&dirs[3], &rec_b, "光的折射", TEACHER_B.0, "city");

    // Each waits in the queue of the tier it is shared to, and no other school sees it.
    let queued = |node: &Server, id: &str| node.get_json("/api/v1/review").is_some_and(|q| q["items"].as_array().is_some_and(|i| i.iter().any(|l| l["id"] == id)));
    wait_for("the 全省 lesson in the province's review queue", WAIT, || queued(&province, &l1).then_some(()));
    wait_for("the 全市 lesson in the city's review queue", WAIT, || queued(&city, &l2).then_some(()));
    assert!(!queued(&city, &l1), "a 全省 lesson is reviewed at the province, not the city");
    assert_eq!(b.with_session(None, |n| n.get_status(&format!("/api/v1/lessons/{l1}"))), 404);
    assert_eq!(city.with_session(None, |n| n.get_status(&format!("/api/v1/lessons/{l1}"))), 404, "unreviewed, not shown to viewers at the city");
    assert!(search_ids(&mut a, "折射").unwrap().is_empty());

    let p_expert = sign_in(http[0], P_EXPERT.0, P_EXPERT.1).unwrap();
    let c_expert = sign_in(http[1], C_EXPERT.0, C_EXPERT.1).unwrap();
    let teacher_a = sign_in(http[2], TEACHER_A.0, TEACHER_A.1).unwrap();
    let teacher_b = sign_in(http[3], TEACHER_B.0, TEACHER_B.1).unwrap();

    // A reviewer decides only for their own tier.
    let wrong_tier = city.with_session(Some(c_expert.clone()), |n| n.post_json(&format!("/api/v1/lessons/{l1}/decision"), serde_json::json!({"approved": true})));
    assert_eq!(wrong_tier, Some(400));
    let no_reason = province.with_session(Some(p_expert.clone()), |n| n.post_json(&format!("/api/v1/lessons/{l1}/decision"), serde_json::json!({"approved": false})));
    assert_eq!(no_reason, Some(400), "a rejection needs a reason");

    // The city approves the 全市 lesson: school A finds it by a Chinese word.
    let ok = city.with_session(Some(c_expert.clone()), |n| n.post_json(&format!("/api/v1/lessons/{l2}/decision"), serde_json::json!({"approved": true})));
    assert_eq!(ok, Some(200));
    wait_for("school A to find B's 全市 lesson", WAIT, || search_ids(&mut a, "折射")?.contains(&l2).then_some(()));
    assert!(!queued(&city, &l2));

    // The province rejects the 全省 lesson: its teacher at A reads the reason, B sees nothing.
    let reason = "画面不清晰，请重新录制";
    let ok = province.with_session(Some(p_expert.clone()), |n| n.post_json(&format!("/api/v1/lessons/{l1}/decision"), serde_json::json!({"approved": false, "reason": reason})));
    assert_eq!(ok, Some(200));
    let review_text = |a: &mut Server| -> Option<String> {
        let mine = a.with_session(Some(teacher_a.clone()), |n| n.get_json("/api/v1/me/lessons"))?;
        mine["items"].as_array()?.iter().find(|i| i["id"] == l1.as_str())?["review_text"].as_str().map(str::to_string)
    };
    // The teacher sees how far it got: the city, then the province.
    let journey = wait_for("the lesson's journey at school A", WAIT, || {
        let mine = a.with_session(Some(teacher_a.clone()), |n| n.get_json("/api/v1/me/lessons"))?;
        let t = mine["items"].as_array()?.iter().find(|i| i["id"] == l1.as_str())?["replication_text"].as_str()?.to_string();
        t.contains(&format!("{} → {}", names[1], names[0])).then_some(t)
    });
    assert!(journey.starts_with("已送达"), "{journey}");
    let text = wait_for("the rejection at school A", WAIT, || review_text(&mut a).filter(|t| t.contains(reason)));
    assert!(text.contains("审核未通过") && text.contains(names[0]), "{text}");
    assert!(search_ids(&mut b, "牛顿").unwrap().is_empty());

    // Approved after all: school B finds it and watches it through the city.
    let ok = province.with_session(Some(p_expert.clone()), |n| n.post_json(&format!("/api/v1/lessons/{l1}/decision"), serde_json::json!({"approved": true})));
    assert_eq!(ok, Some(200));
    wait_for("school B to find A's 全省 lesson", WAIT, || search_ids(&mut b, "牛顿")?.contains(&l1).then_some(()));
    assert!(search_ids(&mut b, "niudun").unwrap().contains(&l1), "and by pinyin");
    wait_for("the approval at school A", WAIT, || review_text(&mut a).filter(|t| t.contains("审核通过")));
    let bytes = b.with_session(None, |n| n.get_bytes(&format!("/api/v1/lessons/{l1}/media"))).expect("B plays the lesson through the city");
    assert_eq!(blake3::hash(&bytes).to_hex().to_string(), hash_a);
    assert!(holds_file(&dirs[3].join("media"), &hash_a), "B keeps what it watched");
    assert!(holds_file(&dirs[1].join("media"), &hash_a), "the city holds the recording shared up through it");

    // A viewer at B watches it for a while: the view counts at B and is summed at A, the city
    // and the province.
    let t = b.get_json_anonymous(&format!("/api/v1/lessons/{l1}/view-ticket")).expect("a view ticket at B");
    std::thread::sleep(Duration::from_millis(t["after_ms"].as_u64().unwrap() + 100));
    let counted = b.post_json_answer(&format!("/api/v1/lessons/{l1}/views"), serde_json::json!({"ticket": t["ticket"]}));
    assert_eq!(counted, Some((200, serde_json::json!({"counted": true}))));
    for (name, node) in [("A", &a), ("the city", &city), ("the province", &province)] {
        wait_for(&format!("B's view counted at {name}"), WAIT, || (node.get_json(&format!("/api/v1/lessons/{l1}"))?["views"] == 1).then_some(()));
    }

    // B's teacher comments; the province hides the comment and it disappears at B.
    let comment = "讲得很清楚，学生很喜欢";
    let posted = b.with_session(Some(teacher_b.clone()), |n| n.post_json(&format!("/api/v1/lessons/{l1}/comments"), serde_json::json!({"text": comment})));
    assert_eq!(posted, Some(200));
    let comment_id = wait_for("B's comment at the province", WAIT, || {
        let d = province.get_json(&format!("/api/v1/lessons/{l1}/discussion"))?;
        d["comments"].as_array()?.iter().find(|c| c["text"] == comment)?["id"].as_str().map(str::to_string)
    });
    assert_eq!(province.post_json(&format!("/api/v1/lessons/{l1}/comments/{comment_id}/hide"), serde_json::json!({})), Some(200));
    let comments_at_b = |b: &mut Server| -> Option<usize> {
        let d = b.with_session(None, |n| n.get_json(&format!("/api/v1/lessons/{l1}/discussion")))?;
        Some(d["comments"].as_array()?.len())
    };
    wait_for("the hidden comment to disappear at B", WAIT, || (comments_at_b(&mut b)? == 0).then_some(()));

    // Downloads only where the teacher allows them; the file keeps its Chinese name.
    let download = format!("/api/v1/lessons/{l1}/media?download=1");
    assert_eq!(b.with_session(None, |n| n.get_status(&download)), 403);
    let allowed = a.with_session(Some(teacher_a.clone()), |n| n.patch_json(&format!("/api/v1/lessons/{l1}"), serde_json::json!({"downloadable": true})));
    assert_eq!(allowed.map(|(c, _)| c), Some(200));
    wait_for("the download allowed at B", WAIT, || (b.get_json(&format!("/api/v1/lessons/{l1}"))?["downloadable"] == true).then_some(()));
    let r = ureq::get(&b.url(&download)).call().expect("download");
    let disposition = r.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(disposition.starts_with("attachment") && disposition.contains("filename*=UTF-8''%E7%89%9B%E9%A1%BF"), "{disposition}");
    let page = String::from_utf8(b.with_session(None, |n| n.get_bytes(&format!("/lessons/{l1}"))).unwrap()).unwrap();
    assert!(page.contains("下载原始录像"), "the download button");
    // Viewers see the course standard's verdict; the table of rules is for the teacher and reviewers.
    assert!(page.contains("课程视频标准检测") && !page.contains("<th>实测</th>"), "a summary for viewers");
    let own = String::from_utf8(a.with_session(Some(teacher_a.clone()), |n| n.get_bytes(&format!("/lessons/{l1}"))).unwrap()).unwrap();
    assert!(own.contains("<th>实测</th>") && own.contains("没有字幕") && !own.contains("no subtitles"), "the teacher's table, in Chinese");
    assert_eq!(b.with_session(None, |n| n.get_status("/favicon.ico")), 200);

    // Taken down at the province: gone from B's search and pages, and from the copies at the
    // city and at B; the teacher's school keeps its recording and reads why.
    let down = province.post_json(&format!("/api/v1/lessons/{l1}/takedown"), serde_json::json!({"reason": "教材版本有误"}));
    assert_eq!(down, Some(200));
    wait_for("the takedown at B", WAIT, || search_ids(&mut b, "牛顿")?.is_empty().then_some(()));
    assert_eq!(b.with_session(None, |n| n.get_status(&format!("/lessons/{l1}"))), 404);
    assert_eq!(b.with_session(None, |n| n.get_status(&format!("/api/v1/lessons/{l1}/media"))), 404);
    wait_for("B's copy dropped", WAIT, || (!holds_file(&dirs[3].join("media"), &hash_a)).then_some(()));
    wait_for("the city's copy dropped", WAIT, || (!holds_file(&dirs[1].join("media"), &hash_a)).then_some(()));
    let text = wait_for("the takedown at school A", WAIT, || review_text(&mut a).filter(|t| t.contains("下架")));
    assert!(text.contains("教材版本有误"), "{text}");
    assert!(holds_file(&dirs[2].join("media"), &hash_a), "the lesson's own school keeps its recording");
    let audit = province.get_json("/api/v1/audit").unwrap();
    let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["lesson.reject", "lesson.approve", "comment.hide", "lesson.takedown"] {
        assert!(actions.contains(&action), "{action} in the audit log: {actions:?}");
    }

    // With the city killed, A still searches the shared catalog, and the province's console
    // shows the city down and its schools stale (their last report's age), never online.
    let ids: Vec<String> = [&a, &b].iter().map(|n| n.get_json("/api/v1/status").unwrap()["node_id"].as_str().unwrap().to_string()).collect();
    wait_for("the schools' health at the province", WAIT, || {
        let live = province.get_json("/api/v1/admin/live")?;
        ids.iter().all(|id| live["tree"].as_array().unwrap().iter().any(|n| n["node_id"] == id.as_str())).then_some(())
    });
    city.kill();
    assert!(search_ids(&mut a, "折射").unwrap().contains(&l2));
    let live = wait_for("the city down at the province", Duration::from_secs(90), || {
        let live = province.get_json("/api/v1/admin/live")?;
        let city_down = live["tree"].as_array()?.iter().any(|n| n["name"] == names[1] && n["connected"] == false);
        city_down.then_some(live)
    });
    let stale: Vec<&str> = live["stale"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    for id in &ids {
        assert!(stale.contains(&id.as_str()), "{id} is stale: {live:#}");
    }
    let page = String::from_utf8(province.get_bytes("/admin").unwrap()).unwrap();
    assert!(page.contains(&format!(r#"data-node="{}" data-link="stale""#, ids[0])) && page.contains("失联，状态未知"), "the console page");
    drop(b);
}

#[test]
fn reviewers_teachers_and_viewers_close_the_loop_in_chromium() {
    let root = tempfile::tempdir().unwrap();
    let rec = root.path().join("牛顿第一定律.mp4");
    make_recording(&rec, 4, 800);
    let Federation { dirs, servers, .. } = federation(root.path());
    let [province, _city, a, b]: [Server; 4] = servers.try_into().ok().unwrap();
    let lesson = import_and_share(&dirs[2], &rec, "牛顿第一定律", TEACHER_A.0, "province");
    let shot = artifacts().join("sharing.png");
    let seen = scenario(
        "sharing.mjs",
        serde_json::json!({
            "province": province.url(""), "a": a.url(""), "b": b.url(""), "lesson": lesson,
            "expert": [P_EXPERT.0, P_EXPERT.1], "admin": [ADMIN.0, ADMIN.1], "teacher": [TEACHER_A.0, TEACHER_A.1],
            "screenshot": shot, "timeout_secs": 240,
        }),
    );
    let text = |k: &str| seen[k].as_str().unwrap_or_default().to_string();
    assert!(seen["nav"].as_array().unwrap().iter().any(|n| n == "审核"), "{seen:#}");
    assert_eq!(text("queue_heading"), "课程审核", "{seen:#}");
    assert!(text("no_reason").contains("请填写不通过的原因"), "{seen:#}");
    assert!(text("teacher_rejected").contains("河北省审核未通过：画面不清晰，请重新录制"), "{seen:#}");
    assert!(text("status_before").contains("河北省审核未通过"), "{seen:#}");
    assert!(text("status_after").contains("审核通过") && text("status_after").contains("全省各校可见"), "{seen:#}");
    assert!(text("teacher_approved").contains("审核通过"), "{seen:#}");
    assert_eq!(text("b_title"), "牛顿第一定律", "{seen:#}");
    assert!(seen["b_played"].as_f64().unwrap() > 0.5, "{seen:#}");
    assert_eq!(seen["b_view"], "counted", "the player reported the view after 2 s of the 4 s lesson: {seen:#}");
    assert!(text("confirm").contains("下架"), "{seen:#}");
    assert!(text("down_status").contains("已被河北省下架：教材版本有误"), "{seen:#}");
    assert!(text("teacher_down").contains("教材版本有误"), "{seen:#}");
    assert_eq!(text("b_after"), "未找到这节课程", "{seen:#}");
    assert_eq!(seen["b_search_hits"], 0, "{seen:#}");
    assert!(artifacts().join("sharing-school-b.png").is_file());
}

#[test]
fn collections_and_notices_are_managed_at_the_province_and_followed_by_the_schools() {
    let root = tempfile::tempdir().unwrap();
    let rec = root.path().join("课例.mp4");
    make_recording(&rec, 2, 500);
    let Federation { dirs, servers, .. } = federation(root.path());
    let [province, city, _a, mut b]: [Server; 4] = servers.try_into().ok().unwrap();
    let first = import_and_share(&dirs[2], &rec, "勾股定理", TEACHER_A.0, "province");
    let second = import_and_share(&dirs[3], &rec, "浮力", TEACHER_B.0, "province");
    for id in [&first, &second] {
        wait_for("the lesson in the province's queue", WAIT, || youke_ok(&dirs[0], &["review", "list"]).contains(id.as_str()).then_some(()));
        youke_ok(&dirs[0], &["review", "approve", id]);
    }
    // A collection naming a lesson the province does not have is refused.
    let bogus = province.post_json_answer("/api/v1/collections", serde_json::json!({"title": "坏专辑", "lessons": ["00000000-0000-4000-8000-000000000000"]}));
    assert_eq!(bogus.as_ref().map(|(c, _)| *c), Some(400), "{bogus:?}");
    assert!(bogus.unwrap().1["detail"].as_str().unwrap().contains("no lesson"));

    let shot = artifacts().join("catalog.png");
    let seen = scenario(
        "catalog.mjs",
        serde_json::json!({
            "province": province.url(""), "city": city.url(""), "b": b.url(""), "lessons": [first, second],
            "admin": [ADMIN.0, ADMIN.1], "screenshot": shot, "timeout_secs": 240,
        }),
    );
    assert!(seen["in_collections"].as_str().unwrap().contains("省级精品课"), "{seen:#}");
    assert_eq!(seen["listed_before"], serde_json::json!([first, second]), "{seen:#}");
    assert_eq!(seen["listed_after"], serde_json::json!([second, first]), "{seen:#}");
    assert_eq!(seen["b_order"], serde_json::json!([second, first]), "{seen:#}");
    assert_eq!(seen["b_after_unpublish"], "没有这个专辑", "{seen:#}");
    assert!(!seen["list_after_delete"].as_array().unwrap().iter().any(|t| t == "省级精品课"), "{seen:#}");
    assert!(seen["notice_tags"].as_array().unwrap().iter().any(|t| t == "面向学校"), "{seen:#}");
    assert_eq!(seen["b_notice"], "关于报送优质课的通知 面向学校", "{seen:#}");
    assert_eq!(seen["city_notices"], 0, "a notice for schools is not shown at the city: {seen:#}");
    assert!(seen["b_notice_edited"].as_str().unwrap().contains("（更正）"), "{seen:#}");

    // A notice scheduled for later is not shown before its time.
    let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 4000;
    let made = province.post_json_answer("/api/v1/announcements", serde_json::json!({"title": "定时通知", "body": "稍后发布", "publish_at": later}));
    assert_eq!(made.map(|(c, _)| c), Some(200));
    let titles = |b: &mut Server| -> Vec<String> {
        b.with_session(None, |n| n.get_json("/api/v1/announcements")).unwrap()["items"].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_string()).collect()
    };
    wait_for("the edited notice is all B shows", WAIT, || titles(&mut b).iter().any(|t| t.contains("更正")).then_some(()));
    assert!(!titles(&mut b).contains(&"定时通知".to_string()), "not before its time");
    wait_for("the scheduled notice at its time", WAIT, || titles(&mut b).contains(&"定时通知".to_string()).then_some(()));
}

/// The city's bytes of media sent over its links (ranges to its schools, uploads to the
/// province), from its metrics.
fn blob_bytes_sent(node: &Server) -> u64 {
    let text = String::from_utf8(node.get_bytes("/metrics").unwrap()).unwrap();
    text.lines()
        .find(|l| l.starts_with("youke_link_blob_bytes_total{direction=\"sent\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[test]
fn a_ladder_made_once_at_the_school_plays_everywhere_with_one_fetch_per_tier() {
    let root = tempfile::tempdir().unwrap();
    let rec = root.path().join("勾股定理.mp4");
    make_recording(&rec, 6, 1500);
    let other = root.path().join("浮力.mp4");
    make_recording(&other, 2, 500);
    // School A and the city transcode; the ladder is made once, at A, and travels.
    let Federation { dirs, servers, .. } = federation_transcoding(root.path(), [false, true, true, false]);
    let [province, mut city, a, b]: [Server; 4] = servers.try_into().ok().unwrap();
    let lesson = import_and_share(&dirs[2], &rec, "勾股定理", TEACHER_A.0, "province");
    let uncached = import_and_share(&dirs[2], &other, "浮力", TEACHER_A.0, "province");
    let pack = wait_for("the ladder packed at A", Duration::from_secs(120), || a.get_json(&format!("/api/v1/lessons/{lesson}"))?["ladder"]["hash"].as_str().map(str::to_string));
    for id in [&lesson, &uncached] {
        wait_for("the lesson in the province's queue", WAIT, || youke_ok(&dirs[0], &["review", "list"]).contains(id.as_str()).then_some(()));
        youke_ok(&dirs[0], &["review", "approve", id]);
    }
    for (name, dir) in [("the city", &dirs[1]), ("the province", &dirs[0])] {
        wait_for(&format!("the pack at {name}"), Duration::from_secs(120), || holds_file(&dir.join("media"), &pack).then_some(()));
    }
    wait_for("the city's uploads done", Duration::from_secs(120), || (city.get_json("/api/v1/status")?["pending_uploads"] == 0).then_some(()));
    wait_for("both lessons at B", WAIT, || [&lesson, &uncached].iter().all(|id| b.get_json(&format!("/api/v1/lessons/{id}")).is_some()).then_some(()));
    // No tier above transcoded it again.
    let jobs = city.get_json("/api/v1/media/jobs").unwrap();
    assert!(!jobs.as_array().unwrap().iter().any(|j| j["lesson_id"] == lesson.as_str() && j["state"] == "done"), "the city made no ladder of its own: {jobs}");
    assert!(!holds_file(&dirs[3].join("media"), &pack), "B never held the pack");

    // Two viewers at B: the first fetches each segment through the city once; the second is
    // served from B's cache.
    let before = blob_bytes_sent(&city);
    let shot = artifacts().join("ladder.png");
    let first = scenario("ladder.mjs", serde_json::json!({"base": b.url(""), "lesson": lesson, "height": 360, "screenshot": shot}));
    let after_first = blob_bytes_sent(&city);
    let second = scenario("ladder.mjs", serde_json::json!({"base": b.url(""), "lesson": lesson, "height": 360, "screenshot": shot}));
    let after_second = blob_bytes_sent(&city);
    for seen in [&first, &second] {
        assert_eq!(seen["engine"], "hls.js", "{seen:#}");
        assert_eq!(seen["levels"], serde_json::json!([360, 480, 720]), "hls.js orders the rungs by bit rate: {seen:#}");
        assert_eq!(seen["height"], 360, "the chosen rung: {seen:#}");
        assert!(seen["menu"].as_str().unwrap().starts_with("360p"), "{seen:#}");
        assert!(seen["played"].as_f64().unwrap() > 5.0, "{seen:#}");
    }
    println!("city sent {} bytes for the first viewer at B, {} for the second", after_first - before, after_second - after_first);
    assert!(after_first > before, "the first viewer's segments came through the city");
    assert_eq!(after_second, after_first, "the second viewer's segments came from B's cache");

    // The city killed: the watched lesson still plays at B from its cache; the other says
    // clearly that it cannot, and since when.
    city.kill();
    let again = scenario("ladder.mjs", serde_json::json!({"base": b.url(""), "lesson": lesson, "height": 360, "screenshot": shot}));
    assert!(again["played"].as_f64().unwrap() > 5.0, "{again:#}");
    let page = wait_for("the link down at B", Duration::from_secs(90), || {
        let page = String::from_utf8(b.get_bytes_anonymous(&format!("/lessons/{uncached}"))?).ok()?;
        page.contains("player-offline").then_some(page)
    });
    assert!(page.contains("与上级节点的连接自") && page.contains("尚未缓存在本节点"), "the clear message");
    drop(province);
}
