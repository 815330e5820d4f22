//! The portal under concurrent, slow and crafted requests, against the real binary on loopback
//! (docs/SECURITY.md lists each threat with its test here): sign-in limits however attempts
//! interleave, a burst of sign-ins within bounded memory while pages are served, slow request
//! heads cut off and connections per address bounded, uploads refused when the disk cannot take
//! them, a bounded quarantine with plain names, methods a route lacks, pages past the end, error
//! messages without server paths, garbage on the federation port counted.
//!
//! Clients connect from chosen loopback addresses (127.0.0.0/8 is all loopback on Linux), so a
//! test can be many clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
// The sign-in benchmark's clients: connections from chosen loopback addresses.
use youke_node::harness::bench::signin::{Answer, at_once, connect_from, exchange, open_files, proc_status_bytes, sign_in_request};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn count(answers: &[Answer], status: u16) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

fn statuses(answers: &[Answer]) -> std::collections::BTreeMap<u16, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in answers {
        *m.entry(a.status).or_insert(0) += 1;
    }
    m
}

#[test]
fn sign_in_limits_hold_however_the_attempts_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "限流学校", no_transcode);
    let _server = Server::start(&data, http);
    rt().block_on(async {
        // Forty attempts for one account from one address at the same moment: five are checked.
        let a = Ipv4Addr::new(127, 0, 0, 5);
        let answers = at_once(http, (0..40).map(|_| (a, sign_in_request(ADMIN.0, "wrong password"))).collect()).await;
        assert_eq!((count(&answers, 401), count(&answers, 429)), (5, 35), "{:?}", statuses(&answers));
        assert!(answers.iter().filter(|a| a.status == 429).all(|a| a.header("retry-after").is_some()));

        // Thirty-nine names at once from another address, and the right password just after:
        // twenty are checked, and the right one is refused with them.
        let b = Ipv4Addr::new(127, 0, 0, 6);
        let wrong = tokio::spawn(at_once(http, (0..39).map(|i| (b, sign_in_request(&format!("guess{i}"), "wrong password"))).collect()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let right = exchange(connect_from(b, http).await.unwrap(), &sign_in_request(ADMIN.0, ADMIN.1)).await;
        let wrong = wrong.await.unwrap();
        assert_eq!((count(&wrong, 401), count(&wrong, 429)), (20, 19), "{:?}", statuses(&wrong));
        assert_eq!(right.status, 429, "the right password sent as the fortieth must not sign in: {}", right.body);

        // Other addresses are not held back.
        let c = Ipv4Addr::new(127, 0, 0, 7);
        let ok = exchange(connect_from(c, http).await.unwrap(), &sign_in_request(ADMIN.0, ADMIN.1)).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
    });
}

fn proc_status(pid: u32, key: &str) -> u64 {
    proc_status_bytes(pid, key).unwrap_or_else(|| panic!("{key} of process {pid}"))
}

/// A school with one lesson (a real recording), serving; returns the lesson's page path.
fn school_with_a_lesson(root: &Path, name: &str, edit: impl FnOnce(String) -> String) -> (Server, String) {
    let (data, http) = standalone_school(root, name, edit);
    let rec = root.join("勾股定理.mp4");
    make_recording(&rec, 2, 600);
    youke_ok(&data, &["import", rec.to_str().unwrap(), "--title", "勾股定理", "--teacher", "王芳", "--grade", "八年级", "--subject", "数学"]);
    let server = Server::start(&data, http);
    let lessons = server.get_json("/api/v1/lessons").unwrap();
    let id = lessons["items"][0]["id"].as_str().unwrap().to_string();
    wait_for("the lesson in the search index", Duration::from_secs(20), || {
        (server.get_json("/api/v1/search?q=%E5%8B%BE%E8%82%A1")?["total"].as_u64() == Some(1)).then_some(())
    });
    (server, format!("/lessons/{id}"))
}

const MB: u64 = 1 << 20;

#[test]
fn a_burst_of_500_sign_ins_stays_within_its_memory_and_pages_are_served_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lesson_page) = school_with_a_lesson(dir.path(), "人多学校", no_transcode);
    let pid = server.child.as_ref().unwrap().id();
    std::thread::sleep(Duration::from_secs(1));
    let (idle_rss, idle_files) = (proc_status(pid, "VmRSS:"), open_files(pid));
    // The peak is measured from here (clear_refs 5 resets VmHWM to the current RSS).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let http = server.http_port;
    let (answers, pages) = rt().block_on(async {
        // 500 clients, each from its own address so that the throttle lets each of them try.
        let requests = (0..500u32).map(|i| (Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8), sign_in_request(ADMIN.0, "wrong password"))).collect();
        let burst = tokio::spawn(at_once(http, requests));
        // Meanwhile a viewer opens the lesson's page, five times.
        let mut pages = Vec::new();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let started = Instant::now();
            let req = format!("GET {lesson_page} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let a = exchange(connect_from(Ipv4Addr::new(127, 0, 0, 9), http).await.unwrap(), req.as_bytes()).await;
            pages.push((a.status, started.elapsed(), a.body.contains("勾股定理")));
        }
        (burst.await.unwrap(), pages)
    });
    let peak = proc_status(pid, "VmHWM:");
    eprintln!("open files right after the burst: {} (idle {idle_files})", open_files(pid));
    let by_status = statuses(&answers);
    eprintln!("statuses {by_status:?}; idle RSS {} MiB, peak {} MiB; pages {pages:?}", idle_rss / MB, peak / MB);
    assert!(by_status.keys().all(|s| [401, 503].contains(s)), "only 401 (checked) and 503 (busy, try again): {by_status:?}");
    assert!(count(&answers, 401) >= 2, "some were checked: {by_status:?}");
    assert!(answers.iter().filter(|a| a.status == 503).all(|a| a.header("retry-after").is_some()));
    assert!(peak.saturating_sub(idle_rss) < 300 * MB, "peak RSS {} MiB over the idle {} MiB", peak / MB, idle_rss / MB);
    for (status, took, shows_it) in &pages {
        assert!(*status == 200 && *shows_it && *took < Duration::from_secs(10), "the lesson page during the burst: {pages:?}");
    }
    // Handles and memory come back.
    // The database pool may keep up to its bound of connections (three files each).
    let files = wait_for("the node's open files to come back", Duration::from_secs(20), || (open_files(pid) <= idle_files + 3 * 16).then_some(open_files(pid)));
    let rss = proc_status(pid, "VmRSS:");
    assert!(rss < idle_rss + 100 * MB, "RSS after the burst {} MiB, idle {} MiB", rss / MB, idle_rss / MB);
    eprintln!("after: {files} open files (idle {idle_files}), RSS {} MiB", rss / MB);
    assert!(!server.log_text().contains("database is locked"), "{}", server.log_text());
}

/// What happened to a connection that dribbles its request head.
#[derive(Debug)]
enum Fate {
    /// Answered 503 at once: too many connections from its address.
    Refused(Duration),
    /// Closed (or answered 408) after this long.
    Closed(Duration),
    /// Still open when the test gave up.
    Open,
}

/// Sends `head` one byte every `every` until the node closes the connection.
async fn dribble(from: Ipv4Addr, port: u16, head: &'static [u8], every: Duration) -> Fate {
    let started = Instant::now();
    let Ok(mut s) = connect_from(from, port).await else { return Fate::Closed(Duration::ZERO) };
    let mut buf = [0u8; 512];
    for b in head.iter().cycle() {
        if s.write_all(&[*b]).await.is_err() {
            return Fate::Closed(started.elapsed());
        }
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(n)) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 503") => return Fate::Refused(started.elapsed()),
            Ok(_) => return Fate::Closed(started.elapsed()),
        }
        if started.elapsed() > Duration::from_secs(40) {
            return Fate::Open;
        }
    }
    Fate::Open
}

#[test]
fn slow_request_heads_are_cut_off_and_connections_per_address_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "慢速学校", |t| {
        assert!(t.contains("connections_per_address = 128"), "{t}");
        no_transcode(t).replace("connections_per_address = 128", "connections_per_address = 50")
    });
    let _server = Server::start(&data, http);
    rt().block_on(async {
        // 200 connections from one address, each sending a ladder file request one byte every
        // 8 s (the zero-copy path, anonymous viewing being on).
        let flood = Ipv4Addr::new(127, 0, 0, 3);
        let head: &'static [u8] = b"GET /media/hls/0000000000000000000000000000000000000000000000000000000000000000/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n";
        let tasks: Vec<_> = (0..200).map(|_| tokio::spawn(dribble(flood, http, head, Duration::from_secs(8)))).collect();
        // Others are served meanwhile, and hyper's path cuts off a slow second request too.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let other = Ipv4Addr::new(127, 0, 0, 4);
        let health = exchange(connect_from(other, http).await.unwrap(), b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
        assert_eq!((health.status, health.body.as_str()), (200, "ok"));
        let mut kept = connect_from(other, http).await.unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let mut first = [0u8; 1024];
        let n = kept.read(&mut first).await.unwrap();
        assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
        let second_started = Instant::now();
        let mut second = Fate::Open;
        for b in b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n".iter().cycle() {
            if kept.write_all(&[*b]).await.is_err() {
                second = Fate::Closed(second_started.elapsed());
                break;
            }
            match tokio::time::timeout(Duration::from_secs(2), kept.read(&mut first)).await {
                Err(_) => {}
                Ok(_) => {
                    second = Fate::Closed(second_started.elapsed());
                    break;
                }
            }
            if second_started.elapsed() > Duration::from_secs(40) {
                break;
            }
        }
        assert!(matches!(second, Fate::Closed(t) if t < Duration::from_secs(14)), "a slow second request head on hyper's path: {second:?}");

        let mut fates = Vec::new();
        for t in tasks {
            fates.push(t.await.unwrap());
        }
        let refused: Vec<_> = fates.iter().filter_map(|f| if let Fate::Refused(t) = f { Some(*t) } else { None }).collect();
        let closed: Vec<_> = fates.iter().filter_map(|f| if let Fate::Closed(t) = f { Some(*t) } else { None }).collect();
        assert_eq!((refused.len(), closed.len()), (150, 50), "{fates:?}");
        assert!(refused.iter().all(|t| *t < Duration::from_secs(3)), "refused at once: {refused:?}");
        // The whole head within 10 s, not each byte.
        assert!(closed.iter().all(|t| *t >= Duration::from_secs(9) && *t < Duration::from_secs(14)), "cut off after the head's 10 s: {closed:?}");
    });
}

#[test]
fn uploads_that_do_not_fit_are_refused_and_the_quarantine_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // The whole node on a 96 MiB disk of its own. The mount namespace is per thread: made before
    // any other thread starts.
    let root = dir.path().join("disk");
    std::fs::create_dir_all(&root).unwrap();
    mount_tmpfs(&root, "96m", false);
    let (data, http) = standalone_school(&root, "小硬盘学校", |t| {
        assert!(t.contains("quarantine_files = 500"), "{t}");
        no_transcode(t).replace("quarantine_files = 500", "quarantine_files = 3")
    });
    let server = Server::start(&data, http);
    let (cookie, csrf) = server.session.clone().unwrap();
    let auth = format!("Cookie: youke_session={cookie}\r\nX-CSRF-Token: {csrf}\r\n");
    rt().block_on(async {
        let send = |req: String| async move { exchange(connect_from(Ipv4Addr::LOCALHOST, http).await.unwrap(), req.as_bytes()).await };
        // A plain upload that declares more than the disk holds is refused before its body.
        let a = send(format!("PUT /api/v1/uploads?name=big.mp4 HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n", 1u64 << 30)).await;
        assert_eq!(a.status, 507, "{}", a.body);
        assert!(a.body.contains("1.0 GiB") && a.body.contains("MiB") && a.body.contains("5 %"), "names both figures: {}", a.body);
        // Larger than the node takes at all: 413.
        let a = send(format!("PUT /api/v1/uploads?name=huge.mp4 HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: 100000000000\r\nConnection: close\r\n\r\n")).await;
        assert_eq!(a.status, 413, "{}", a.body);

        // Ten resumable uploads of 16 MiB each: those that fit are accepted, then no more.
        let meta = "filename 5pWw5a2mLm1wNA=="; // base64("数学.mp4")
        let create = || send(format!("POST /api/v1/uploads/resumable HTTP/1.1\r\nHost: t\r\n{auth}Tus-Resumable: 1.0.0\r\nUpload-Length: {}\r\nUpload-Metadata: {meta}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 16 * MB));
        let mut created = Vec::new();
        let mut refusal = None;
        for _ in 0..10 {
            let a = create().await;
            match a.status {
                201 => created.push(a.header("location").unwrap().to_string()),
                507 => refusal = Some(a.body),
                other => panic!("{other}: {}", a.body),
            }
        }
        let refusal = refusal.expect("some of the ten do not fit");
        assert!((3..=5).contains(&created.len()), "{} of 10 accepted on a 96 MiB disk", created.len());
        assert!(refusal.contains("16.0 MiB") && refusal.contains("unfinished uploads"), "{refusal}");
        // Abandoning one makes room for another.
        let a = send(format!("DELETE {} HTTP/1.1\r\nHost: t\r\n{auth}Tus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n", created[0])).await;
        assert_eq!(a.status, 204, "{}", a.body);
        assert_eq!(create().await.status, 201);

        // Files that are not recordings go to the quarantine, which keeps the newest three; a
        // name with bidirectional controls is stored plain; the reason names no server path.
        let junk: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for name in ["坏1.mp4", "坏2.mp4", "坏3.mp4", "坏4.mp4", "%E2%80%AE4pm.exe.mp4"] {
            let head = format!("PUT /api/v1/uploads?name={name} HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n", junk.len());
            let mut req = head.into_bytes();
            req.extend_from_slice(&junk);
            let a = exchange(connect_from(Ipv4Addr::LOCALHOST, http).await.unwrap(), &req).await;
            assert_eq!(a.status, 422, "{}", a.body);
            assert!(a.body.contains("not a playable recording"), "{}", a.body);
            for server_path in [data.to_str().unwrap(), ".uploading", "/tmp/"] {
                assert!(!a.body.contains(server_path), "the message shows a server path ({server_path}): {}", a.body);
            }
        }
    });
    let q = server.get_json("/api/v1/quarantine").unwrap();
    let names: Vec<&str> = q.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["_4pm.exe.mp4", "坏4.mp4", "坏3.mp4"], "{q}");
    let kept: Vec<String> = std::fs::read_dir(data.join("import").join("quarantine")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
}

#[test]
fn edges_answer_as_http_says_and_garbage_on_the_federation_port_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lesson_page) = school_with_a_lesson(dir.path(), "边界学校", no_transcode);
    let http = server.http_port;
    rt().block_on(async {
        let send = |req: String| async move { exchange(connect_from(Ipv4Addr::LOCALHOST, http).await.unwrap(), req.as_bytes()).await };
        // A method the route does not have: 405 with Allow, and no ERROR in the log.
        for (method, path, allow) in [("PUT", lesson_page.as_str(), "GET, HEAD"), ("DELETE", "/api/v1/lessons", "GET, HEAD"), ("POST", "/healthz", "GET, HEAD"), ("PUT", "/api/v1/session", "POST, GET, DELETE, HEAD")] {
            let a = send(format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")).await;
            assert_eq!((a.status, a.header("allow")), (405, Some(allow)), "{method} {path}: {}", a.body);
        }
        // Pages past the end are empty, however large their number.
        for page in ["2", "18446744073709551615", "9223372036854775808"] {
            let a = send(format!("GET /api/v1/lessons?per_page=1&page={page} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).await;
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("page {page}: {e}: {a:?}"));
            assert_eq!((v["items"].as_array().map(Vec::len), v["total"].as_u64()), (Some(0), Some(1)), "page {page}: {v}");
            let a = send(format!("GET /api/v1/search?q=%E5%8B%BE%E8%82%A1&page={page} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).await;
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("page {page}: {e}: {a:?}"));
            assert_eq!((v["items"].as_array().map(Vec::len), v["total"].as_u64()), (Some(0), Some(1)), "search page {page}: {v}");
            let a = send(format!("GET /search?q=%E5%8B%BE%E8%82%A1&page={page} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).await;
            assert_eq!(a.status, 200, "{a:?}");
            assert!(!a.body.contains(&format!("href=\"{lesson_page}\"")), "search page {page} shows the first page's hit");
        }
    });

    // Garbage on the federation port: counted, logged a bounded number of times.
    let quic: u16 = std::fs::read_to_string(data_config(&server)).unwrap().lines().find_map(|l| l.strip_prefix("quic = \"127.0.0.1:")).and_then(|p| p.trim_end_matches('"').parse().ok()).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..300u32 {
        // Random bytes of random sizes (BLAKE3's output stream of the counter).
        let mut d = vec![0u8; 20 + (i as usize * 37) % 1300];
        blake3::Hasher::new().update(&i.to_le_bytes()).finalize_xof().fill(&mut d);
        udp.send_to(&d, ("127.0.0.1", quic)).unwrap();
        // Paced, so that the kernel's receive buffer drops none of them.
        std::thread::sleep(Duration::from_millis(1));
    }
    let counted = wait_for("the garbage to be counted", Duration::from_secs(10), || {
        let text = String::from_utf8(server.get_bytes("/metrics")?).ok()?;
        let n: u64 = text.lines().find_map(|l| l.strip_prefix("youke_quic_garbage_datagrams_total "))?.parse::<f64>().ok()? as u64;
        (n >= 300).then_some(n)
    });
    assert_eq!(counted, 300);
    let log = server.log_text();
    let lines = log.lines().filter(|l| l.contains("not QUIC of this federation")).count();
    assert!((1..=2).contains(&lines), "{lines} log lines for 300 datagrams");
    assert!(!log.contains("ERROR"), "no ERROR line for clients' mistakes:\n{log}");
}

fn data_config(server: &Server) -> std::path::PathBuf {
    server.data.join("youke.toml")
}
