//! Convergence through bad links: a province, a city and a school, each parent link behind a
//! fault-injecting proxy (loss, delay, jitter, seeded flapping). While the links flap, all three
//! tiers edit the same lessons at once. When the links settle, every node holds identical heads
//! and identical rows for every lesson, and no edit is lost: every comment, every view, every
//! user's latest rating.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;
use youke_node::config::{Config, TrustMode};
use youke_node::documents::{self, DocError, Kind};
use youke_node::lessons::{self, LessonEdit, NewLesson};
use youke_node::{Node, RunningNode};
use youke_tests::faultproxy::{FaultConfig, FaultProxy, Rng};

async fn start(dir: &Path, tier: Tier, parent: Option<SocketAddr>, cancel: &CancellationToken) -> RunningNode {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config { role: tier, name: tier.to_string(), http: local, quic: local, parent: parent.map(|p| p.to_string()), trust: TrustMode::DevPinned,
        // Lessons shared to the province are approved there on arrival: convergence is the point here.
        review: youke_node::config::ReviewConfig { auto_approve: true }, ..Config::default() };
    Node::spawn(&dir.join(tier.as_str()), config, cancel.child_token()).await.expect("node starts")
}

fn lossy() -> FaultConfig {
    FaultConfig { drop_rate: 0.03, delay: Duration::from_millis(10), jitter: Duration::from_millis(15), ..FaultConfig::default() }
}

fn heads(n: &RunningNode) -> Vec<(String, String)> {
    n.ctx.store.read(|c| documents::heads_of(c, Kind::Lesson)).unwrap()
}

fn rows(n: &RunningNode) -> Vec<lessons::Lesson> {
    n.ctx.store.read(|c| lessons::list(c, 0, 100)).unwrap().0
}

async fn converge(seed: u64, long_outage: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let province = start(dir.path(), Tier::Province, None, &cancel).await;
    let to_province = FaultProxy::start(province.quic_addr, lossy(), seed).await.unwrap();
    let city = start(dir.path(), Tier::City, Some(to_province.addr()), &cancel).await;
    let to_city = FaultProxy::start(city.quic_addr, lossy(), seed + 1000).await.unwrap();
    let school = start(dir.path(), Tier::School, Some(to_city.addr()), &cancel).await;

    let ids: Vec<String> = (0..5)
        .map(|i| {
            let ctx = &school.ctx;
            let id = uuid::Uuid::new_v4().to_string();
            let new = NewLesson { title: format!("第{i}课"), subject: "数学".into(), ..NewLesson::default() };
            ctx.store
                .write(|tx| {
                    let mut doc = lessons::new_document(&ctx.writer, &id, &new)?;
                    lessons::save(tx, &ctx.writer, &mut doc)?;
                    lessons::set_share_level(tx, &ctx.writer, &id, Tier::Province)?;
                    Ok::<_, DocError>(())
                })
                .unwrap();
            ctx.changed();
            id
        })
        .collect();
    wait("the lessons at the province", Duration::from_secs(30), || rows(&province).len() == 5).await;

    // Flap both links (seeded up and down periods) while all three tiers edit.
    let mut rng = Rng::new(seed);
    let nodes = [&school, &city, &province];
    let (mut comments, mut views) = (0u64, 0i64);
    let mut latest_rating: std::collections::BTreeMap<(usize, String), i64> = Default::default();
    let started = Instant::now();
    let mut next_flip = [Instant::now(); 2];
    let mut down = [false; 2];
    if long_outage {
        // Past QUIC's idle timeout: the school's link drops and must reconnect and resume.
        to_city.set_blackhole(true);
    }
    let outage_until = started + Duration::from_secs(if long_outage { 12 } else { 0 });
    let mut step = 0;
    while started.elapsed() < Duration::from_secs(if long_outage { 14 } else { 5 }) {
        for (k, proxy) in [&to_province, &to_city].into_iter().enumerate() {
            if k == 1 && Instant::now() < outage_until {
                continue;
            }
            if Instant::now() >= next_flip[k] {
                down[k] = !down[k];
                proxy.set_blackhole(down[k]);
                let (lo, hi) = if down[k] { (200, 2500) } else { (300, 1500) };
                next_flip[k] = Instant::now() + Duration::from_millis(rng.range(lo, hi));
            }
        }
        let who = rng.range(0, 3) as usize;
        let lesson = ids.get(rng.range(0, 5) as usize).unwrap().clone();
        let edit = match rng.range(0, 5) {
            0 => {
                comments += 1;
                LessonEdit::Comment { author: format!("user{who}"), text: format!("评论{step}") }
            }
            1 => {
                views += 1;
                LessonEdit::Views(1)
            }
            2 => {
                let score = rng.range(1, 6) as i64;
                latest_rating.insert((who, lesson.clone()), score);
                LessonEdit::Rate { user: format!("tier{who}"), score }
            }
            3 => LessonEdit::Review { expert: format!("专家{who}"), score: rng.range(60, 100) as i64, comment: String::new() },
            _ => {
                views += 1;
                LessonEdit::Views(1)
            }
        };
        let node = nodes[who];
        node.ctx.store.write(|tx| lessons::edit(tx, &node.ctx.writer, &lesson, &edit)).unwrap().expect("lesson present everywhere");
        node.ctx.changed();
        step += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    // Settle: links clean and up.
    to_province.set(FaultConfig::default());
    to_city.set(FaultConfig::default());
    wait("all three tiers to converge", Duration::from_secs(60), || {
        let h = heads(&province);
        h.len() == 5 && heads(&city) == h && heads(&school) == h
    })
    .await;
    let at_p = rows(&province);
    assert_eq!(rows(&city), at_p, "city rows differ (seed {seed})");
    assert_eq!(rows(&school), at_p, "school rows differ (seed {seed})");
    // Nothing lost: every comment and view counted once; one rating per user and lesson.
    assert_eq!(at_p.iter().map(|l| l.comment_count).sum::<u64>(), comments, "seed {seed}");
    assert_eq!(at_p.iter().map(|l| l.views).sum::<i64>(), views, "seed {seed}");
    assert_eq!(at_p.iter().map(|l| l.rating_count).sum::<u64>(), latest_rating.len() as u64, "seed {seed}");
    assert!(step > 50, "the test made {step} edits");
    assert!(to_city.stats().dropped > 0 && to_province.stats().dropped > 0, "the proxies dropped packets");

    cancel.cancel();
    for n in [school, city, province] {
        n.wait().await;
    }
}

async fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converge_seed_1() {
    converge(1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converge_seed_2() {
    converge(2, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converge_seed_3_with_a_long_outage() {
    converge(3, true).await;
}
