//! A busy database does not take the links down (issue 20, item 6). Database calls wait on
//! locks for up to the busy timeout; on the async workers they would starve the QUIC driver's
//! keep-alives until the link's idle timeout (10 s) closed it. Here another process holds the
//! city's database for 25 s while the province sends it work and the portal is asked for
//! pages: the city's link to the province must stay the same link throughout (no new session
//! on either side), and the work must land once the database is free.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A sample's value in a node's `/metrics`, e.g. `youke_link_sessions_total{direction="up"}`.
fn metric(node: &Server, sample: &str) -> Option<f64> {
    let text = String::from_utf8(node.get_bytes("/metrics")?).ok()?;
    text.lines().find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

#[test]
fn a_link_stays_the_same_link_while_its_database_is_held_busy() {
    let root = tempfile::tempdir().unwrap();
    let (province_dir, city_dir) = (root.path().join("province"), root.path().join("city"));
    let (p_http, c_http) = (free_tcp_port(), free_tcp_port());
    let (p_quic, c_quic) = (free_udp_port(), free_udp_port());
    let addr = |p: u16| format!("127.0.0.1:{p}");
    youke_ok(&province_dir, &["init", "--role", "province", "--name", "省中心", "--http", &addr(p_http), "--quic", &addr(p_quic)]);
    youke_ok(&city_dir, &["init", "--role", "city", "--name", "市局", "--http", &addr(c_http), "--quic", &addr(c_quic), "--parent", &addr(p_quic)]);
    let province = Server::start(&province_dir, p_http);
    enroll(&province_dir, p_quic, &city_dir, "city", "市局");
    let city = Server::start(&city_dir, c_http);

    let up = r#"youke_link_sessions_total{direction="up"}"#;
    let down = r#"youke_link_sessions_total{direction="down"}"#;
    wait_for("the city's link", Duration::from_secs(30), || {
        let s = city.get_json("/api/v1/status")?;
        (s["parent"]["state"] == "up" && metric(&province, down)? >= 1.0).then_some(())
    });
    // Let the first sync settle, then take the counts.
    std::thread::sleep(Duration::from_secs(2));
    let (up_before, down_before) = (metric(&city, up).unwrap(), metric(&province, down).unwrap());

    // Another process takes the city's database for writing and keeps it.
    let db = rusqlite::Connection::open(city_dir.join("youke.db")).unwrap();
    db.busy_timeout(Duration::from_secs(30)).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held = Instant::now();

    // Meanwhile the province publishes a collection (the link brings it down to the city, which
    // cannot store it yet), and people ask the city's portal for pages.
    let code = province.post_json("/api/v1/collections", serde_json::json!({ "title": "忙时专辑", "lessons": [] }));
    assert!(matches!(code, Some(200 | 201)), "collection at the province: {code:?}");
    let pages: Vec<_> = (0..8)
        .map(|_| {
            let url = city.url("/");
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(40))).build().into();
                agent.get(&url).call().map(|r| r.status().as_u16()).unwrap_or(0)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(25).saturating_sub(held.elapsed()));
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    for p in pages {
        let status = p.join().unwrap();
        assert!(status == 200 || status == 503, "a page asked while the database was held answered {status}");
    }

    // The work lands, over the same link.
    let landed = wait_for_opt(Duration::from_secs(30), Duration::from_millis(200), || {
        let list = city.get_json("/api/v1/collections")?;
        list["items"].as_array()?.iter().any(|c| c["title"] == "忙时专辑").then_some(())
    });
    assert!(
        landed.is_some(),
        "the collection did not reach the city once its database was free\nat the city: {:?}\nat the province: {:?}\ncity:\n{}",
        city.get_json("/api/v1/collections"),
        province.get_json("/api/v1/collections"),
        city.log_text()
    );
    let s = city.get_json("/api/v1/status").unwrap();
    assert_eq!(s["parent"]["state"], "up", "{s}");
    assert_eq!(metric(&city, up), Some(up_before), "the city's link to the province was set up again: it dropped while the database was busy\n{}", city.log_text());
    assert_eq!(metric(&province, down), Some(down_before), "the province saw the city link again: the link dropped\n{}", province.log_text());
}
