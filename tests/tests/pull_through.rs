//! Downward viewing: a school plays province lessons through its city (pull-through), with HTTP
//! ranges, caching what it fetched; a cache quota with LRU eviction that never evicts pinned or
//! own media; pinned collections prefetched. Three nodes in this process on real QUIC sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::{BlobHash, Tier};
use youke_node::catalog::{self, Collection};
use youke_node::config::{Config, MediaConfig, TrustMode};
use youke_node::import::import_file;
use youke_node::lessons::ImportMeta;
use youke_node::store::StoreError;
use youke_node::{Node, RunningNode};

async fn start(dir: &Path, tier: Tier, parent: Option<SocketAddr>, cache_bytes: u64, cancel: &CancellationToken) -> RunningNode {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = Config { role: tier, name: tier.to_string(), http: local, quic: local, parent: parent.map(|p| p.to_string()), trust: TrustMode::DevPinned, media: MediaConfig { transcode: false }, ..Config::default() };
    config.limits.cache_bytes = cache_bytes;
    Node::spawn(&dir.join(tier.as_str()), config, cancel.child_token()).await.expect("node starts")
}

async fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Imports a recording at `node`; returns the lesson id, blob hash and the file's bytes.
async fn import(node: &RunningNode, file: PathBuf, title: &str) -> (String, BlobHash, Vec<u8>) {
    let ctx = Arc::clone(&node.ctx);
    let title = title.to_string();
    tokio::task::spawn_blocking(move || {
        let l = import_file(&ctx, &file, &ImportMeta { title: Some(title), ..ImportMeta::default() }, |_, _| {}).unwrap();
        (l.id.clone(), l.media.unwrap().hash.parse().unwrap(), std::fs::read(&file).unwrap())
    })
    .await
    .unwrap()
}

async fn collection(node: &RunningNode, title: &str, lessons: Vec<String>, pinned: bool) {
    let ctx = Arc::clone(&node.ctx);
    let c = Collection { title: title.into(), lessons, pinned, published: true, ..serde_json::from_str(r#"{"title":"x"}"#).unwrap() };
    tokio::task::spawn_blocking(move || {
        ctx.store.write(|tx| catalog::create_collection(tx, &ctx.writer, &c)).unwrap();
        ctx.changed();
    })
    .await
    .unwrap();
}

fn has_lesson(node: &RunningNode, id: &str) -> bool {
    node.ctx.store.read(|c| youke_node::lessons::get(c, id)).ok().flatten().is_some()
}

fn cache_rows(node: &RunningNode) -> Vec<(String, i64, bool)> {
    node.ctx
        .store
        .read(|c| {
            let mut st = c.prepare("SELECT hash, size, complete FROM cache ORDER BY hash")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>(rows)
        })
        .unwrap()
}

async fn get(url: String, range: Option<&'static str>) -> (u16, Option<String>, Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let mut req = ureq::get(&url);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        match req.call() {
            Ok(mut resp) => {
                let cr = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).map(str::to_string);
                (resp.status().as_u16(), cr, resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap())
            }
            Err(ureq::Error::StatusCode(code)) => (code, None, Vec::new()),
            Err(e) => panic!("{e}"),
        }
    })
    .await
    .unwrap()
}

fn recording(dir: &Path, name: &str, seconds: u32, kbit: u32) -> PathBuf {
    let p = dir.join(name);
    common::make_recording(&p, seconds, kbit);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_school_watches_a_province_lesson_through_its_city_with_ranges_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = recording(dir.path(), "省级 示范课.mp4", 6, 6_000);
    let cancel = CancellationToken::new();
    let province = start(dir.path(), Tier::Province, None, 1 << 30, &cancel).await;
    let city = start(dir.path(), Tier::City, Some(province.quic_addr), 1 << 30, &cancel).await;
    let school = start(dir.path(), Tier::School, Some(city.quic_addr), 1 << 30, &cancel).await;
    let (id, hash, bytes) = import(&province, file, "省级示范课").await;
    collection(&province, "省级精品课", vec![id.clone()], false).await;
    wait("the lesson listed at the school", Duration::from_secs(30), || has_lesson(&school, &id)).await;
    assert!(!school.ctx.blobs.contains(&hash) && !city.ctx.blobs.contains(&hash), "nothing is copied down unasked");
    for n in [&school, &city] {
        let s = youke_node::status::collect(&n.ctx, true).unwrap();
        assert_eq!(s.pending_uploads, 0, "a lesson from above is not sent back up: {:?}", s.upload_queue);
    }

    let url = format!("http://{}/api/v1/lessons/{id}/media", school.http_addr);
    // A player's range request: 206 with exactly those bytes, fetched through the city.
    let (status, cr, body) = get(url.clone(), Some("bytes=1000-2999999")).await;
    assert_eq!(status, 206);
    assert_eq!(cr.as_deref(), Some(format!("bytes 1000-2999999/{}", bytes.len()).as_str()));
    assert_eq!(body, &bytes[1000..3_000_000]);
    // The tail, as players ask for the index at the end of an MP4.
    let (status, _, body) = get(url.clone(), Some("bytes=-5000")).await;
    assert_eq!((status, body.as_slice()), (206, &bytes[bytes.len() - 5000..]));
    assert!(!school.ctx.blobs.contains(&hash), "partly watched: still only in the cache");

    // The whole file without a range: streamed, and afterwards held in full at school and city.
    let (status, _, body) = get(url.clone(), None).await;
    assert_eq!(status, 200);
    assert_eq!(blake3::hash(&body), blake3::hash(&bytes));
    wait("the school to hold the lesson", Duration::from_secs(10), || school.ctx.blobs.contains(&hash)).await;
    assert!(city.ctx.blobs.contains(&hash), "the city cached what it passed through");
    assert_eq!(blake3::hash(&std::fs::read(school.ctx.blobs.blob(&hash).unwrap().path().unwrap()).unwrap()), blake3::hash(&bytes));
    assert_eq!(cache_rows(&school), vec![(hash.to_hex(), bytes.len() as i64, true)]);

    // Unsatisfiable ranges are refused.
    let (status, _, _) = get(url, Some("bytes=999999999-")).await;
    assert_eq!(status, 416);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cache_keeps_its_quota_evicts_the_least_recent_and_never_pinned_or_own_media() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["甲", "乙", "丙", "本校"].iter().map(|n| recording(dir.path(), &format!("{n}.mp4"), 3, 6_000)).collect();
    let size = std::fs::metadata(&files[0]).unwrap().len();
    let quota = size * 5 / 2; // Room for two cached lessons, not three.
    let cancel = CancellationToken::new();
    let city = start(dir.path(), Tier::City, None, 1 << 30, &cancel).await;
    let school = start(dir.path(), Tier::School, Some(city.quic_addr), quota, &cancel).await;
    let mut lessons = Vec::new();
    for (i, f) in files[..3].iter().enumerate() {
        lessons.push(import(&city, f.clone(), &format!("课{i}")).await);
    }
    let own = import(&school, files[3].clone(), "本校课").await;
    // 甲 is in a pinned collection: prefetched, and never evicted.
    collection(&city, "置顶", vec![lessons[0].0.clone()], true).await;
    collection(&city, "精品", vec![lessons[1].0.clone(), lessons[2].0.clone()], false).await;
    wait("the pinned lesson prefetched", Duration::from_secs(30), || school.ctx.blobs.contains(&lessons[0].1)).await;

    // Watch 乙, then 丙: the quota makes room by evicting 乙 (least recent, unpinned).
    for (id, hash, bytes) in &lessons[1..] {
        let (status, _, body) = get(format!("http://{}/api/v1/lessons/{id}/media", school.http_addr), None).await;
        assert_eq!(status, 200);
        assert_eq!(blake3::hash(&body), blake3::hash(bytes));
        wait("the watched lesson held", Duration::from_secs(10), || school.ctx.blobs.contains(hash)).await;
    }
    assert!(school.ctx.blobs.contains(&lessons[0].1), "pinned media is never evicted");
    assert!(!school.ctx.blobs.contains(&lessons[1].1), "the least recently watched lesson was evicted");
    assert!(school.ctx.blobs.contains(&lessons[2].1));
    assert!(school.ctx.blobs.contains(&own.1), "the school's own media is not part of the cache");
    let rows = cache_rows(&school);
    let used: i64 = rows.iter().map(|r| r.1).sum();
    assert!(used as u64 <= quota, "cache uses {used} of {quota} bytes: {rows:?}");
    assert!(!rows.iter().any(|r| r.0 == own.1.to_hex()));

    // Watching 乙 again brings it back, evicting 丙 now; 甲 stays.
    let (id, hash, _) = &lessons[1];
    let (status, _, _) = get(format!("http://{}/api/v1/lessons/{id}/media", school.http_addr), None).await;
    assert_eq!(status, 200);
    wait("乙 held again", Duration::from_secs(10), || school.ctx.blobs.contains(hash)).await;
    assert!(!school.ctx.blobs.contains(&lessons[2].1) && school.ctx.blobs.contains(&lessons[0].1));
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pinned_file_missing_above_does_not_stop_the_others_being_prefetched() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["缺失", "在库"].iter().map(|n| recording(dir.path(), &format!("{n}.mp4"), 2, 2_000)).collect();
    let cancel = CancellationToken::new();
    let city = start(dir.path(), Tier::City, None, 1 << 30, &cancel).await;
    let missing = import(&city, files[0].clone(), "缺失的课").await;
    let present = import(&city, files[1].clone(), "在库的课").await;
    // The city lost the first file (a disk replaced, say): it answers "not held" for it.
    std::fs::remove_file(city.ctx.blobs.path_of(&missing.1)).unwrap();
    collection(&city, "置顶", vec![missing.0.clone(), present.0.clone()], true).await;
    let school = start(dir.path(), Tier::School, Some(city.quic_addr), 1 << 30, &cancel).await;
    wait("the lesson held above prefetched", Duration::from_secs(30), || school.ctx.blobs.contains(&present.1)).await;
    assert!(!school.ctx.blobs.contains(&missing.1));
    cancel.cancel();
}
