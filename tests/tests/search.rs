//! Search in a real `youke serve`: the API with filters, facets, orders and pages; the portal's
//! search page; a local edit searchable within a second; `youke reindex`; a damaged or missing
//! index rebuilt at start without anyone's help.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};

fn search(server: &Server, query: &str) -> serde_json::Value {
    server.get_json(&format!("/api/v1/search?{query}")).unwrap_or_else(|| panic!("search {query} failed"))
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

fn status_of(server: &Server, path: &str) -> u16 {
    server.get_status(path)
}

#[test]
fn search_api_page_freshness_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "西湖区实验中学", no_transcode);
    let rec = dir.path().join("课.mp4");
    make_recording(&rec, 1, 300);
    let import = |title: &str, teacher: &str, grade: &str, subject: &str, kp: &str| {
        youke_ok(&data, &["import", rec.to_str().unwrap(), "--title", title, "--teacher", teacher, "--grade", grade, "--subject", subject, "-k", kp])
            .trim()
            .to_string()
    };
    let newton = import("牛顿第一定律", "李明", "初二", "物理", "惯性");
    let archimedes = import("阿基米德原理", "王芳", "初二", "物理", "浮力");
    let pythagoras = import("勾股定理", "王芳", "初二", "数学", "直角三角形");
    let quadratic = import("一元二次方程的解法", "张伟", "初三", "数学", "配方法");
    let mut server = Server::start(&data, http);
    wait_for("the index", Duration::from_secs(10), || (search(&server, "")["total"] == 4).then_some(()));

    // Text, pinyin, filters, facets, orders, pages.
    assert_eq!(ids(&search(&server, "q=%E6%83%AF%E6%80%A7")), [newton.as_str()], "惯性");
    assert_eq!(ids(&search(&server, "q=niudun")), [newton.as_str()]);
    assert_eq!(ids(&search(&server, "q=ggdl")), [pythagoras.as_str()]);
    let r = search(&server, "subject=%E7%89%A9%E7%90%86&teacher=%E7%8E%8B%E8%8A%B3");
    assert_eq!(ids(&r), [archimedes.as_str()], "物理 by 王芳: {r}");
    let r = search(&server, "grade=%E5%88%9D%E4%BA%8C");
    assert_eq!(r["total"], 3);
    let subjects = r["facets"]["subject"].as_array().unwrap();
    assert_eq!((subjects[0]["value"].as_str(), subjects[0]["count"].as_u64()), (Some("物理"), Some(2)), "{r}");
    assert_eq!(r["facets"]["school"][0]["value"], "西湖区实验中学");
    assert_eq!(r["facets"]["tier"][0]["value"], "school");
    assert_eq!(r["facets"]["compliance"][0]["count"], 3);
    let page2 = search(&server, "order=newest&per_page=3&page=2&facets=false");
    assert_eq!(page2["total"], 4);
    assert_eq!(ids(&page2), [newton.as_str()], "oldest last");
    assert!(page2["facets"].as_object().unwrap().is_empty());
    let hit = &search(&server, "q=%E6%B5%AE%E5%8A%9B")["items"][0];
    assert_eq!(hit["id"], archimedes.as_str());
    for bad in ["order=best", "page=0", "per_page=500", "colour=red"] {
        assert_eq!(status_of(&server, &format!("/api/v1/search?{bad}")), 400, "{bad}");
    }
    // Past the last hit (even past the depth the index pages to): an empty page, not an error.
    let far = search(&server, "page=999999");
    assert_eq!((far["total"].as_u64(), far["items"].as_array().map(Vec::len)), (Some(4), Some(0)), "{far}");

    // Views and ratings order 人气榜 and 好评榜, which list only lessons watched or rated. A view
    // is reported with the ticket of the page it was watched on, once the lesson could have been
    // watched for a while (half of this 1 s recording); a viewer counts once a day; a POST loop
    // without a ticket counts nothing.
    let views_path = format!("/api/v1/lessons/{quadratic}/views");
    let ticket_path = format!("/api/v1/lessons/{quadratic}/view-ticket");
    let signed_in = server.get_json(&ticket_path).unwrap();
    let anonymous = server.with_session(None, |s| s.get_json(&ticket_path)).unwrap();
    assert_eq!(signed_in["after_ms"], 1000, "{signed_in}");
    let post = |s: &Server, ticket: &serde_json::Value| -> (u16, serde_json::Value) {
        let mut r = s.request("POST", &views_path).send_json(serde_json::json!({"ticket": ticket["ticket"]})).unwrap();
        (r.status().as_u16(), r.body_mut().read_json().unwrap_or_default())
    };
    let (code, body) = post(&server, &signed_in);
    assert_eq!(code, 400, "too early: {body}");
    assert!(body["detail"].as_str().unwrap().contains("watched for 1 s"), "{body}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(post(&server, &signed_in), (200, serde_json::json!({"counted": true})));
    assert_eq!(post(&server, &signed_in), (200, serde_json::json!({"counted": false})), "once a day");
    assert_eq!(server.with_session(None, |s| post(s, &anonymous)), (200, serde_json::json!({"counted": true})));
    let forged = serde_json::json!({"ticket": signed_in["ticket"].as_str().unwrap().replace("u:admin", "u:someone")});
    assert_eq!(post(&server, &forged).0, 400);
    let loop_codes: Vec<u16> = (0..200).map(|_| server.post_json(&views_path, serde_json::json!({"ticket": "1.a:00.00"})).unwrap()).collect();
    assert!(loop_codes.iter().all(|c| *c == 400), "{loop_codes:?}");
    assert_eq!(server.post_json(&format!("/api/v1/lessons/{pythagoras}/ratings"), serde_json::json!({"user": "学生甲", "score": 5})), Some(200));
    wait_for("views in the index", Duration::from_secs(10), || (ids(&search(&server, "order=views")) == [quadratic.clone()]).then_some(()));
    wait_for("ratings in the index", Duration::from_secs(5), || (ids(&search(&server, "order=rating")) == [pythagoras.clone()]).then_some(()));
    assert_eq!(server.get_json(&format!("/api/v1/lessons/{quadratic}")).unwrap()["views"], 2, "two viewers, counted once each");

    // The portal's search page: facets as links, highlighted titles, order tabs.
    let page = String::from_utf8(server.get_bytes("/search?q=%E5%8B%BE%E8%82%A1&grade=%E5%88%9D%E4%BA%8C").unwrap()).unwrap();
    assert!(page.contains("<b>勾股</b>"), "{page}");
    assert!(page.contains("人气榜") && page.contains("好评榜"), "{page}");
    assert!(page.contains("年级：初二 ✕"), "the chosen filter can be removed: {page}");
    assert!(page.contains(r#"href="/search?q=%E5%8B%BE%E8%82%A1&amp;grade=%E5%88%9D%E4%BA%8C&amp;order=views""#), "{page}");
    assert_eq!(status_of(&server, "/search?order=nope"), 400);

    // A local edit is searchable within a second.
    let started = Instant::now();
    let (code, body) = server.patch_json(&format!("/api/v1/lessons/{newton}"), serde_json::json!({"title": "牛顿第一定律与惯性实验", "tags": ["优质课"]})).unwrap();
    assert_eq!(code, 200, "{body}");
    let acked = started.elapsed();
    let found = wait_for_opt(Duration::from_secs(10), Duration::from_millis(10), || {
        ids(&search(&server, "q=%E6%83%AF%E6%80%A7%E5%AE%9E%E9%AA%8C&facets=false")).contains(&newton).then(Instant::now)
    })
    .expect("the edited title to be found");
    let lag = found.duration_since(started) - acked;
    println!("search freshness after a local edit: {lag:?}");
    assert!(lag < Duration::from_secs(1), "searchable {lag:?} after the edit was acknowledged");
    let (code, body) = server.patch_json(&format!("/api/v1/lessons/{newton}"), serde_json::json!({"title": "  "})).unwrap();
    assert_eq!(code, 400, "{body}");
    let (code, _) = server.patch_json(&format!("/api/v1/lessons/{newton}"), serde_json::json!({"colour": "red"})).unwrap();
    assert!(code == 400 || code == 422, "unknown fields are refused: {code}");

    // `youke reindex` refuses to run beside the node, rebuilds when it is stopped.
    let out = youke(&data, &["reindex"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already running"), "{out:?}");
    server.kill();
    let out = youke_ok(&data, &["reindex"]);
    assert!(out.contains("search index rebuilt: 4 lessons"), "{out}");

    // A damaged index is found at start and rebuilt from the database without anyone's help.
    let index_dir = data.join("search-index");
    for e in std::fs::read_dir(&index_dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "store" || x == "term") {
            std::fs::write(e.path(), b"damaged").unwrap();
        }
    }
    let server = Server::start(&data, http);
    wait_for("the rebuilt index", Duration::from_secs(10), || (ids(&search(&server, "q=%E6%83%AF%E6%80%A7%E5%AE%9E%E9%AA%8C")) == [newton.as_str()]).then_some(()));
    assert!(server.log_text().contains("search index unusable; rebuilding it"), "{}", server.log_text());
    drop(server);
    // And a missing one.
    std::fs::remove_dir_all(&index_dir).unwrap();
    let server = Server::start(&data, http);
    wait_for("the recreated index", Duration::from_secs(10), || (search(&server, "")["total"] == 4).then_some(()));
}
