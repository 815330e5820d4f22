//! Sync scopes across a real tree of nodes, in one process on loopback QUIC: a province, two
//! cities, three schools. Upward, only what is shared reaches each tier; downward, published
//! documents reach everyone and updates reach only the subtree a document came from; edits made
//! concurrently at different tiers converge to identical documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;
use youke_node::catalog::{self, Announcement, Collection, Competition};
use youke_node::config::{Config, TrustMode};
use youke_node::documents::{self, DocError, Kind};
use youke_node::lessons::{self, LessonEdit, NewLesson};
use youke_node::{Node, RunningNode};

async fn start(dir: &Path, tier: Tier, name: &str, parent: Option<SocketAddr>, cancel: &CancellationToken) -> RunningNode {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config { role: tier, name: name.into(), http: local, quic: local, parent: parent.map(|p| p.to_string()), trust: TrustMode::DevPinned, ..Config::default() };
    Node::spawn(&dir.join(name), config, cancel.child_token()).await.expect("node starts")
}

fn create_lesson(node: &RunningNode, title: &str, share: Tier) -> String {
    let ctx = &node.ctx;
    let id = uuid::Uuid::new_v4().to_string();
    let new = NewLesson { title: title.into(), teacher: "教师".into(), subject: "数学".into(), ..NewLesson::default() };
    ctx.store
        .write(|tx| {
            let mut doc = lessons::new_document(&ctx.writer, &id, &new)?;
            lessons::save(tx, &ctx.writer, &mut doc)?;
            if share > Tier::School {
                lessons::set_share_level(tx, &ctx.writer, &id, share)?;
            }
            Ok::<_, DocError>(())
        })
        .unwrap();
    ctx.changed();
    id
}

fn edit(node: &RunningNode, id: &str, change: LessonEdit) {
    let ctx = &node.ctx;
    ctx.store.write(|tx| lessons::edit(tx, &ctx.writer, id, &change)).unwrap().expect("lesson present");
    ctx.changed();
}

/// The titles of the lessons a node holds (listed to its viewers or not: scopes decide what is
/// held, review what is shown).
fn titles(node: &RunningNode) -> BTreeSet<String> {
    node.ctx.store.read(|c| lessons::changed_since(c, 0, 1000)).unwrap().into_iter().map(|(l, _)| l.title).collect()
}

fn lesson(node: &RunningNode, id: &str) -> Option<lessons::Lesson> {
    node.ctx.store.read(|c| lessons::get(c, id)).unwrap()
}

fn heads(node: &RunningNode, kind: Kind) -> Vec<(String, String)> {
    node.ctx.store.read(|c| documents::heads_of(c, kind)).unwrap()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_up_and_down_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let p = start(dir.path(), Tier::Province, "province", None, &cancel).await;
    let a = start(dir.path(), Tier::City, "city-a", Some(p.quic_addr), &cancel).await;
    let b = start(dir.path(), Tier::City, "city-b", Some(p.quic_addr), &cancel).await;
    let a1 = start(dir.path(), Tier::School, "school-a1", Some(a.quic_addr), &cancel).await;
    let a2 = start(dir.path(), Tier::School, "school-a2", Some(a.quic_addr), &cancel).await;
    let b1 = start(dir.path(), Tier::School, "school-b1", Some(b.quic_addr), &cancel).await;

    create_lesson(&a1, "A1 校内", Tier::School);
    let a1_city = create_lesson(&a1, "A1 市级", Tier::City);
    let a1_prov = create_lesson(&a1, "A1 省级", Tier::Province);
    create_lesson(&a2, "A2 市级", Tier::City);
    create_lesson(&b1, "B1 市级", Tier::City);
    let b1_prov = create_lesson(&b1, "B1 省级", Tier::Province);

    // Upward: each tier holds exactly what its subtree shared at or above its tier.
    let want_a = set(&["A1 市级", "A1 省级", "A2 市级"]);
    let want_b = set(&["B1 市级", "B1 省级"]);
    let want_p = set(&["A1 省级", "B1 省级"]);
    eventually("upward sync", || titles(&a) == want_a && titles(&b) == want_b && titles(&p) == want_p).await;

    // Downward: the province publishes a collection, an announcement and a competition, reviews
    // A1's lesson and awards B1's; city A comments on A1's city lesson. Meanwhile school A1 rates
    // the same lesson the province reviews.
    p.ctx.store.write(|tx| catalog::create_collection(tx, &p.ctx.writer, &Collection {
        id: String::new(), title: "省级精品课".into(), description: String::new(), lessons: vec![a1_prov.clone()],
        featured: true, pinned: true, published: true, origin_name: String::new(),
    })).unwrap();
    p.ctx.store.write(|tx| catalog::create_announcement(tx, &p.ctx.writer, &Announcement {
        id: String::new(), title: "评选通知".into(), body: "请各校报送".into(), audience: "all".into(), publish_at: 0, origin_name: String::new(),
    })).unwrap();
    let comp = p.ctx.store.write(|tx| catalog::create_competition(tx, &p.ctx.writer, &Competition {
        title: "优质课评选".into(), requires_standard: true, ..Default::default()
    })).unwrap();
    p.ctx.store.write(|tx| catalog::put_results(tx, &p.ctx.writer, &comp.id, &[(b1_prov.clone(), "一等奖".into())], "")).unwrap();
    p.ctx.changed();
    edit(&p, &a1_prov, LessonEdit::Review { expert: "省专家".into(), score: 95, comment: "示范课".into() });
    edit(&a1, &a1_prov, LessonEdit::Rate { user: "本校教师".into(), score: 5 });
    edit(&a, &a1_city, LessonEdit::Comment { author: "市教研员".into(), text: "板书清晰".into() });

    eventually("published documents everywhere", || {
        [&a, &b, &a1, &a2, &b1].iter().all(|n| {
            let c = n.ctx.store.read(catalog::collections).unwrap();
            let an = n.ctx.store.read(catalog::announcements).unwrap();
            let co = n.ctx.store.read(catalog::competitions).unwrap();
            c.len() == 1 && an.len() == 1 && co.len() == 1 && co[0].awards.get(&b1_prov).map(String::as_str) == Some("一等奖")
        })
    })
    .await;
    eventually("review and rating meet at province, city A and school A1", || {
        [&p, &a, &a1].iter().all(|n| lesson(n, &a1_prov).is_some_and(|l| l.review_count == 1 && l.rating_count == 1))
    })
    .await;
    eventually("the city's comment reaches school A1", || lesson(&a1, &a1_city).is_some_and(|l| l.comment_count == 1)).await;

    // Converged: identical heads and identical rows wherever a document is held.
    let lesson_heads = |n: &RunningNode| heads(n, Kind::Lesson).into_iter().find(|(id, _)| id == &a1_prov).map(|(_, h)| h);
    assert_eq!(lesson_heads(&p), lesson_heads(&a));
    assert_eq!(lesson_heads(&a), lesson_heads(&a1));
    assert_eq!(lesson(&p, &a1_prov), lesson(&a1, &a1_prov));
    for kind in [Kind::Collection, Kind::Announcement, Kind::Competition] {
        let at_p = heads(&p, kind);
        for n in [&a, &b, &a1, &a2, &b1] {
            assert_eq!(heads(n, kind), at_p, "{kind:?} heads differ at {}", n.ctx.writer.node_name);
        }
    }

    // Nothing leaked: schools hold their own lessons and those the province published in its
    // collection (A1 省级, so every school can watch it through its city); nothing else of
    // another school or city.
    assert_eq!(titles(&a2), set(&["A2 市级", "A1 省级"]), "school A2 must not receive A1's other lessons");
    assert_eq!(titles(&b1), set(&["B1 市级", "B1 省级", "A1 省级"]));
    assert_eq!(titles(&a1), set(&["A1 校内", "A1 市级", "A1 省级"]));
    assert_eq!(titles(&a), want_a);
    let mut want_b_now = want_b.clone();
    want_b_now.insert("A1 省级".to_string());
    assert_eq!(titles(&b), want_b_now, "city B must not receive city A's unpublished lessons");
    assert_eq!(titles(&p), want_p);

    eventually("the published lesson, reviewed and rated, everywhere", || {
        [&b, &a2, &b1].iter().all(|n| lesson(n, &a1_prov).is_some_and(|l| l.review_count == 1 && l.rating_count == 1))
    })
    .await;

    // Operator view: the province sees both cities connected with nothing left to send down,
    // a school sees its parent link up with nothing left to send up, and metrics say the same.
    let get = |addr: SocketAddr, path: &'static str| {
        tokio::task::spawn_blocking(move || ureq::get(format!("http://{addr}{path}")).call().expect("GET").body_mut().read_to_string().expect("body"))
    };
    let fed: serde_json::Value = serde_json::from_str(&get(p.http_addr, "/api/v1/federation").await.unwrap()).unwrap();
    let children = fed["children"].as_array().expect("children");
    assert_eq!(children.len(), 2, "{fed}");
    assert!(children.iter().all(|c| c["connected"] == true && c["pending_docs_down"] == 0), "{fed}");
    assert!(fed["docs_received"].as_u64().unwrap() >= 2, "{fed}");
    let fed: serde_json::Value = serde_json::from_str(&get(a1.http_addr, "/api/v1/federation").await.unwrap()).unwrap();
    assert_eq!(fed["parent"]["state"], "up", "{fed}");
    assert_eq!(fed["parent"]["pending_docs_up"], 0, "{fed}");
    let metrics = get(a.http_addr, "/metrics").await.unwrap();
    assert!(metrics.contains("youke_parent_link_up 1"), "{metrics}");
    assert!(metrics.contains("youke_child_link_up{child=\"school-a1\""), "{metrics}");
    assert!(metrics.contains("# TYPE youke_link_doc_bytes_total counter"), "{metrics}");

    // Lowering a share level is an update too: it reaches the city and the province.
    a1.ctx.store.write(|tx| lessons::set_share_level(tx, &a1.ctx.writer, &a1_prov, Tier::School)).unwrap();
    a1.ctx.changed();
    eventually("the unshare at the city and the province", || {
        [&a, &p].iter().all(|n| lesson(n, &a1_prov).is_some_and(|l| l.share_level == Tier::School))
    })
    .await;

    cancel.cancel();
    for n in [b1, a2, a1, b, a, p] {
        n.wait().await;
    }
}
