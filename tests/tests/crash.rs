//! Crash safety across the tree: three real `youke` processes; while users edit the same
//! lessons at every tier over HTTP, one node is SIGKILLed at a random moment and restarted.
//! Nothing a node acknowledged is lost, and all three converge. 20 seeds, in 4 groups that run
//! in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use youke_tests::faultproxy::Rng;

struct Tree {
    nodes: Vec<Server>,
    dirs: Vec<std::path::PathBuf>,
    ports: Vec<u16>,
}

fn start_tree(root: &Path) -> Tree {
    let names = ["province", "city", "school"];
    let dirs: Vec<_> = names.iter().map(|n| root.join(n)).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_tcp_port()).collect();
    let quic: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    youke_ok(&dirs[0], &["init", "--role", "province", "--name", "省", "--http", &addr(ports[0]), "--quic", &addr(quic[0])]);
    youke_ok(&dirs[1], &["init", "--role", "city", "--name", "市", "--http", &addr(ports[1]), "--quic", &addr(quic[1]), "--parent", &addr(quic[0])]);
    youke_ok(&dirs[2], &["init", "--role", "school", "--name", "校", "--http", &addr(ports[2]), "--quic", &addr(quic[2]), "--parent", &addr(quic[1])]);
    // Lessons shared to the province are approved there as they arrive (review is not what
    // this test is about).
    edit_config(&dirs[0], auto_approve);
    let mut nodes = vec![Server::start(&dirs[0], ports[0])];
    enroll(&dirs[0], quic[0], &dirs[1], "city", "市");
    nodes.push(Server::start(&dirs[1], ports[1]));
    enroll(&dirs[1], quic[1], &dirs[2], "school", "校");
    nodes.push(Server::start(&dirs[2], ports[2]));
    Tree { nodes, dirs, ports }
}

/// Each lesson's row and its comments and reviews as read from its document. Counts alone can
/// coincide while documents differ (three nodes each holding a different new comment), so
/// convergence compares the contents too.
fn lesson_rows(node: &Server, ids: &[String]) -> Option<Vec<serde_json::Value>> {
    ids.iter()
        .map(|id| {
            let mut l = node.get_json(&format!("/api/v1/lessons/{id}"))?;
            // Where the media is held, and so where the player gets it, differs by tier; the
            // shared metadata must not.
            for local in ["media_present", "hls", "via_parent", "parent_down_since"] {
                l.as_object_mut()?.remove(local);
            }
            let mut d = node.get_json(&format!("/api/v1/lessons/{id}/discussion"))?;
            let mut texts: Vec<String> = d["comments"].as_array()?.iter().map(|c| c["text"].as_str().unwrap_or_default().to_string()).collect();
            texts.sort();
            d["comments"] = serde_json::json!(texts);
            Some(serde_json::json!({ "lesson": l, "discussion": d }))
        })
        .collect()
}

fn crash_one_seed(seed: u64, media: &Path) {
    let root = tempfile::tempdir().unwrap();
    let keep = std::env::var("YOUKE_KEEP").is_ok();
    let root_path = if keep { root.keep() } else { root.path().to_path_buf() };
    if keep {
        eprintln!("seed {seed}: data kept in {}", root_path.display());
    }
    let mut tree = start_tree(&root_path);
    let ids: Vec<String> = (0..2)
        .map(|i| {
            let id = youke_ok(&tree.dirs[2], &["import", media.to_str().unwrap(), "--title", &format!("课{i}")]).trim().to_string();
            youke_ok(&tree.dirs[2], &["share", &id, "--to", "province"]);
            id
        })
        .collect();
    wait_for("the lessons at the province", Duration::from_secs(30), || lesson_rows(&tree.nodes[0], &ids));

    let mut rng = Rng::new(seed);
    let kill_at = rng.range(5, 35);
    let victim = rng.range(0, 3) as usize;
    let restart_after = rng.range(1, 10);
    let (mut comments_acked, mut comments_tried, mut views_acked, mut views_tried) = (0u64, 0u64, 0i64, 0i64);
    let (mut ratings_acked, mut ratings_tried) = (BTreeSet::new(), BTreeSet::new());
    let mut killed_at = None;
    let mut acked_texts: Vec<(u64, usize, String)> = Vec::new();
    let mut tickets: Vec<(usize, String, String, std::time::Instant)> = Vec::new();
    for step in 0..45u64 {
        if step == kill_at {
            tree.nodes[victim].kill();
            killed_at = Some(step);
        }
        if killed_at.is_some_and(|k| step == k + restart_after) {
            tree.nodes[victim] = Server::start(&tree.dirs[victim], tree.ports[victim]);
        }
        let who = rng.range(0, 3) as usize;
        let lesson = &ids[rng.range(0, 2) as usize];
        let node = &tree.nodes[who];
        // A view is reported with a ticket from the node's lesson page once the (1 s) lesson
        // could have been watched: the ticket taken now is reported a few steps later, when one
        // taken earlier is reported (each by a new anonymous viewer, so each counts).
        if node.is_running()
            && let Some(t) = node.get_json_anonymous(&format!("/api/v1/lessons/{lesson}/view-ticket"))
        {
            tickets.push((who, lesson.clone(), t["ticket"].as_str().unwrap_or_default().to_string(), std::time::Instant::now()));
        }
        let (path, body) = match rng.range(0, 3) {
            0 => ("comments", serde_json::json!({"author": format!("u{who}"), "text": format!("评论{step}")})),
            1 => match tickets.iter().position(|(w, _, _, at)| *w == who && at.elapsed() > Duration::from_millis(1200)) {
                Some(i) => {
                    let (_, l, ticket, _) = tickets.remove(i);
                    views_tried += 1;
                    let ok = node.is_running()
                        && node.post_json_answer(&format!("/api/v1/lessons/{l}/views"), serde_json::json!({"ticket": ticket})) == Some((200, serde_json::json!({"counted": true})));
                    views_acked += i64::from(ok);
                    std::thread::sleep(Duration::from_millis(rng.range(5, 60)));
                    continue;
                }
                None => ("comments", serde_json::json!({"author": format!("u{who}"), "text": format!("评论{step}")})),
            },
            _ => ("ratings", serde_json::json!({"user": format!("u{who}"), "score": rng.range(1, 6)})),
        };
        let ok = node.is_running() && node.post_json(&format!("/api/v1/lessons/{lesson}/{path}"), body) == Some(200);
        match path {
            "comments" => {
                comments_tried += 1;
                comments_acked += u64::from(ok);
                if ok {
                    acked_texts.push((step, who, lesson.clone()));
                }
            }
            _ => {
                ratings_tried.insert((who, lesson.clone()));
                if ok {
                    ratings_acked.insert((who, lesson.clone()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(rng.range(5, 60)));
    }
    if !tree.nodes[victim].is_running() {
        tree.nodes[victim] = Server::start(&tree.dirs[victim], tree.ports[victim]);
    }

    // Converged: the same lesson metadata at all three tiers.
    // Views are added to the documents a few seconds after they were counted: converged means
    // the same rows everywhere once the acknowledged views are in (or a minute has passed).
    let views_in = |rows: &[serde_json::Value]| rows.iter().map(|l| l["lesson"]["views"].as_i64().unwrap_or(0)).sum::<i64>() >= views_acked;
    let mut last = None;
    let settled = wait_for_opt(Duration::from_secs(60), Duration::from_millis(200), || {
        let p = lesson_rows(&tree.nodes[0], &ids)?;
        let same = lesson_rows(&tree.nodes[1], &ids)? == p && lesson_rows(&tree.nodes[2], &ids)? == p;
        if !same {
            return None;
        }
        let done = views_in(&p);
        last = Some(p.clone());
        done.then_some(p)
    });
    let rows = settled.or(last).unwrap_or_else(|| panic!("no convergence after the crash (seed {seed}, killed node {victim} at step {kill_at})"));
    // Nothing acknowledged lost (an edit in flight when the node died may or may not have landed).
    let sum = |f: &str| rows.iter().map(|l| l["lesson"][f].as_i64().unwrap_or(0)).sum::<i64>();
    let comments = sum("comment_count") as u64;
    let views = sum("views");
    let ratings = sum("rating_count") as usize;
    if comments < comments_acked {
        let mut held = std::collections::BTreeSet::new();
        for id in &ids {
            if let Some(d) = tree.nodes[0].get_json(&format!("/api/v1/lessons/{id}/discussion")) {
                for c in d["comments"].as_array().into_iter().flatten() {
                    held.insert(c["text"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        let missing: Vec<_> = acked_texts.iter().filter(|(step, _, _)| !held.contains(&format!("评论{step}"))).collect();
        panic!("seed {seed}: {comments} comments, {comments_acked} acknowledged; victim {victim} killed at step {kill_at}, restarted after {restart_after}; missing (step, node, lesson): {missing:?}");
    }
    assert!((comments_acked..=comments_tried).contains(&comments), "seed {seed}: {comments} comments, {comments_acked} acknowledged");
    assert!((views_acked..=views_tried).contains(&views), "seed {seed}: {views} views, {views_acked} acknowledged");
    assert!((ratings_acked.len()..=ratings_tried.len()).contains(&ratings), "seed {seed}: {ratings} ratings, {} acknowledged", ratings_acked.len());
}

fn media() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("课堂.mp4");
    make_recording(&path, 1, 300);
    (dir, path)
}

fn seeds(range: std::ops::Range<u64>) {
    let (_dir, media) = media();
    for seed in range {
        crash_one_seed(seed, &media);
    }
}

#[test]
fn crash_seeds_00_to_04() {
    seeds(0..5);
}

#[test]
fn crash_seeds_05_to_09() {
    seeds(5..10);
}

#[test]
fn crash_seeds_10_to_14() {
    seeds(10..15);
}

#[test]
fn crash_seeds_15_to_19() {
    seeds(15..20);
}

/// Replays one seed (`YOUKE_CRASH_SEED`) several times, for debugging: `YOUKE_KEEP=1` keeps the
/// data directories.
#[test]
#[ignore]
fn crash_one_seed_from_env() {
    let seed: u64 = std::env::var("YOUKE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let (_dir, media) = media();
    for _ in 0..std::env::var("YOUKE_CRASH_REPEAT").ok().and_then(|s| s.parse().ok()).unwrap_or(1) {
        crash_one_seed(seed, &media);
    }
}
