//! Helpers for tests that drive the real `youke` binary: locating it, free loopback ports,
//! real media made by the ffmpeg CLI, processes that are killed when the test ends, and HTTP
//! polling with deadlines.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `youke` binary built by `cargo build` (or `$YOUKE_BIN`).
pub fn youke_bin() -> PathBuf {
    if let Ok(p) = std::env::var("YOUKE_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<this test> -> target/<profile>/youke
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("youke");
    assert!(bin.is_file(), "{} is missing: run `cargo build --bins` first (make test does)", bin.display());
    bin
}

pub fn youke(data: &Path, args: &[&str]) -> Output {
    Command::new(youke_bin()).arg("--data").arg(data).args(args).env_remove("RUST_LOG").output().expect("run youke")
}

/// Runs a youke command that must succeed; returns its stdout.
pub fn youke_ok(data: &Path, args: &[&str]) -> String {
    let out = youke(data, args);
    assert!(
        out.status.success(),
        "youke {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Enrolls a child node under a running parent as operators do: `youke token create` on the
/// parent, then `youke enroll` on the child (whose config, if `youke init` wrote one, keeps its
/// listen addresses). Returns the enroll command's output.
pub fn enroll(parent_dir: &Path, parent_quic: u16, child_dir: &Path, role: &str, name: &str) -> String {
    let out = youke_ok(parent_dir, &["token", "create", "--role", role, "--name", name]);
    let token = out.lines().last().expect("token line").trim().to_string();
    assert!(token.starts_with("YK1"), "{out}");
    youke_ok(child_dir, &["enroll", "--parent", &format!("127.0.0.1:{parent_quic}"), "--token", &token])
}

/// A school on its own (no parent) initialized in `root/school` on free loopback ports, its
/// config edited by `edit` (e.g. to turn transcoding off). Returns its data dir and HTTP port.
pub fn standalone_school(root: &Path, name: &str, edit: impl FnOnce(String) -> String) -> (PathBuf, u16) {
    let data = root.join("school");
    let http = free_tcp_port();
    youke_ok(&data, &["init", "--role", "school", "--name", name, "--http", &format!("127.0.0.1:{http}"), "--quic", &format!("127.0.0.1:{}", free_udp_port())]);
    let cfg = data.join("youke.toml");
    std::fs::write(&cfg, edit(std::fs::read_to_string(&cfg).expect("config"))).expect("write config");
    (data, http)
}

/// A config edit that turns background transcoding off.
pub fn no_transcode(text: String) -> String {
    assert!(text.contains("transcode = true"), "{text}");
    text.replace("transcode = true", "transcode = false")
}

/// Turns on `[review] auto_approve` in a node's config text: lessons shared to its tier are
/// approved as they arrive (for tests about something other than review).
pub fn auto_approve(text: String) -> String {
    assert!(text.contains("auto_approve = false"), "{text}");
    text.replace("auto_approve = false", "auto_approve = true")
}

/// Edits the config file of the node in `data`.
pub fn edit_config(data: &Path, edit: impl FnOnce(String) -> String) {
    let cfg = data.join("youke.toml");
    std::fs::write(&cfg, edit(std::fs::read_to_string(&cfg).expect("config"))).expect("write config");
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A `youke serve` process, SIGKILLed when dropped so no server outlives its test.
pub struct Server {
    pub child: Option<Child>,
    pub data: PathBuf,
    pub log: PathBuf,
    pub http_port: u16,
    /// The admin session every helper request carries: (cookie token, CSRF token).
    pub session: Option<(String, String)>,
}

/// The account tests act as; `Server::start` adds it to the node.
pub const ADMIN: (&str, &str) = ("admin", "test-admin-password");

/// Adds a portal account with `youke user add` (password on stdin); no-op if it exists.
pub fn add_user(data: &Path, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new(youke_bin())
        .arg("--data")
        .arg(data)
        .args(["user", "add", name, "--role", role])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run youke user add");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write password");
    let out = child.wait_with_output().expect("youke user add");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || err.contains("exists already"), "youke user add {name}: {err}");
}

/// Signs in through the API; returns (cookie token, CSRF token).
pub fn sign_in(http_port: u16, name: &str, password: &str) -> Result<(String, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent
        .post(&format!("http://127.0.0.1:{http_port}/api/v1/session"))
        .send_json(serde_json::json!({"name": name, "password": password}))
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("sign-in answered {}: {}", r.status(), r.body_mut().read_to_string().unwrap_or_default()));
    }
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("youke_session=").and_then(|v| v.split(';').next()).map(str::to_string))
        .ok_or("no session cookie")?;
    let v: serde_json::Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
    Ok((cookie, v["csrf"].as_str().unwrap_or_default().to_string()))
}

impl Server {
    pub fn start(data: &Path, http_port: u16) -> Server {
        // The test admin is added before the node starts, not beside its first writes.
        add_user(data, ADMIN.0, "admin", ADMIN.1);
        let log = unique_log(data);
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(youke_bin())
            .arg("--data")
            .arg(data)
            .arg("serve")
            .env("RUST_LOG", "info,youke_federation=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn youke serve");
        let mut s = Server { child: Some(child), data: data.to_path_buf(), log, http_port, session: None };
        s.wait_healthy(Duration::from_secs(30));
        s.session = Some(sign_in(http_port, ADMIN.0, ADMIN.1).unwrap_or_else(|e| panic!("signing in as the test admin: {e}")));
        s
    }

    /// Runs `f` with this server's requests made with another session (`None`: anonymous),
    /// then goes back to the admin's.
    pub fn with_session<T>(&mut self, session: Option<(String, String)>, f: impl FnOnce(&Server) -> T) -> T {
        let admin = std::mem::replace(&mut self.session, session);
        let out = f(self);
        self.session = admin;
        out
    }

    /// DELETEs as the admin; the status.
    pub fn delete(&self, path: &str) -> Option<u16> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut req = agent.delete(&self.url(path));
        if let Some((cookie, csrf)) = &self.session {
            req = req.header("Cookie", &format!("youke_session={cookie}")).header("X-CSRF-Token", csrf);
        }
        req.call().ok().map(|r| r.status().as_u16())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, path)
    }

    fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ureq::get(&self.url("/healthz")).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("youke serve in {} did not become healthy; log:\n{}", self.data.display(), self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Freezes the process (SIGSTOP), so what it wrote can be read before it is killed.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill").args(["-STOP", &c.id().to_string()]).status().map(|s| s.success()).unwrap_or(false);
            assert!(ok, "cannot SIGSTOP the server");
        }
    }

    /// SIGKILL, as a power cut or OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A request with the admin session's cookie and CSRF token; statuses are not errors.
    pub fn request(&self, method: &str, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut req = match method {
            "POST" => agent.post(&self.url(path)),
            "PUT" => agent.put(&self.url(path)),
            "PATCH" => agent.patch(&self.url(path)),
            other => panic!("request() is for methods with a body, not {other}"),
        };
        if let Some((cookie, csrf)) = &self.session {
            req = req.header("Cookie", &format!("youke_session={cookie}")).header("X-CSRF-Token", csrf);
        }
        req
    }

    fn get_request(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut req = agent.get(&self.url(path));
        if let Some((cookie, _)) = &self.session {
            req = req.header("Cookie", &format!("youke_session={cookie}"));
        }
        req
    }

    /// GETs JSON as the admin; `None` unless the answer is 200 with JSON.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let mut resp = self.get_request(path).call().ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.body_mut().read_json().ok()
    }

    /// The status of a GET as the admin.
    pub fn get_status(&self, path: &str) -> u16 {
        self.get_request(path).call().map(|r| r.status().as_u16()).unwrap_or(0)
    }

    /// POSTs JSON as the admin; `Some(status)` if the server answered.
    pub fn post_json(&self, path: &str, body: serde_json::Value) -> Option<u16> {
        self.request("POST", path).send_json(body).ok().map(|r| r.status().as_u16())
    }

    /// POSTs JSON as the admin; the status and the answer's JSON, if the server answered.
    pub fn post_json_answer(&self, path: &str, body: serde_json::Value) -> Option<(u16, serde_json::Value)> {
        let mut r = self.request("POST", path).send_json(body).ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_json().unwrap_or(serde_json::Value::Null)))
    }

    /// GETs JSON without any session (an anonymous visitor); `None` unless 200 with JSON.
    pub fn get_json_anonymous(&self, path: &str) -> Option<serde_json::Value> {
        let mut resp = ureq::get(&self.url(path)).config().http_status_as_error(false).build().call().ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.body_mut().read_json().ok()
    }

    /// GETs bytes without any session; `None` unless 2xx.
    pub fn get_bytes_anonymous(&self, path: &str) -> Option<Vec<u8>> {
        let mut resp = ureq::get(&self.url(path)).config().http_status_as_error(false).build().call().ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.body_mut().with_config().limit(1 << 30).read_to_vec().ok()
    }

    /// PATCHes JSON as the admin; the status and the answer's JSON, if the server answered.
    pub fn patch_json(&self, path: &str, body: serde_json::Value) -> Option<(u16, serde_json::Value)> {
        let mut r = self.request("PATCH", path).send_json(body).ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_json().unwrap_or(serde_json::Value::Null)))
    }

    /// PUTs JSON as the admin; the status and the answer's JSON.
    pub fn put_json(&self, path: &str, body: serde_json::Value) -> Option<(u16, serde_json::Value)> {
        let mut r = self.request("PUT", path).send_json(body).ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_json().unwrap_or(serde_json::Value::Null)))
    }

    /// PUTs bytes as the admin; the status and the answer's JSON.
    pub fn put_bytes(&self, path: &str, body: &[u8]) -> Option<(u16, serde_json::Value)> {
        let mut r = self.request("PUT", path).send(body).ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_json().unwrap_or(serde_json::Value::Null)))
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn get_bytes(&self, path: &str) -> Option<Vec<u8>> {
        let mut resp = self.get_request(path).call().ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.body_mut().with_config().limit(1 << 30).read_to_vec().ok()
    }
}

fn unique_log(data: &Path) -> PathBuf {
    for i in 0.. {
        let p = data.join(format!("serve-{i}.log"));
        if !p.exists() {
            return p;
        }
    }
    unreachable!()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 100 ms until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    match wait_for_opt(timeout, Duration::from_millis(100), f) {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Like `wait_for`, but returns `None` on timeout instead of failing; polls `every`.
pub fn wait_for_opt<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Makes a real H.264 + AAC recording with the ffmpeg CLI (an independent encoder). Noise keeps
/// the bit rate near `video_kbit` so the file has the size a test wants.
pub fn make_recording(path: &Path, seconds: u32, video_kbit: u32) {
    make_recording_sized(path, seconds, video_kbit, "1280x720");
}

/// [`make_recording`] at a picture size (`1920x1080` with 9000 kbit/s and an SRT beside it
/// meets the course video standard).
pub fn make_recording_sized(path: &Path, seconds: u32, video_kbit: u32, size: &str) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25:duration={seconds},noise=alls=30:allf=t"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={seconds}"))
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .args(["-b:v", &format!("{video_kbit}k"), "-maxrate", &format!("{video_kbit}k"), "-bufsize", &format!("{}k", video_kbit / 2)])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-shortest"])
        .arg(path)
        .status()
        .expect("run ffmpeg (installed by scripts/setup.sh)");
    assert!(status.success(), "ffmpeg failed to make {}", path.display());
}

pub fn blake3_file(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    blake3::hash(&bytes).to_hex().to_string()
}

/// Mounts a tmpfs of `size` at `path` in this test process's own mount namespace (nextest runs
/// each test in a process of its own, so nothing leaks to the machine). Needs root, as on the
/// appliance's CI and development machines.
pub fn mount_tmpfs(path: &Path, size: &str, remount: bool) {
    use nix::mount::{MsFlags, mount};
    if !remount {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("a mount namespace of the test's own (needs root)");
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).expect("make mounts private");
    }
    let flags = if remount { MsFlags::MS_REMOUNT } else { MsFlags::empty() };
    let data = format!("size={size}");
    mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some(data.as_str())).unwrap_or_else(|e| panic!("cannot mount a tmpfs at {}: {e}", path.display()));
}

/// The web directory (the end-to-end scenarios in web/e2e, their npm packages).
pub fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// target/e2e-artifacts, beside the build's profile directories.
pub fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).expect("target/<profile>/deps/<test>");
    target.join("e2e-artifacts")
}

/// Runs a scenario script of web/e2e with its arguments; returns what it printed as `result`.
pub fn scenario(script: &str, args: serde_json::Value) -> serde_json::Value {
    let out = Command::new("node")
        .arg(web_dir().join("e2e").join(script))
        .arg(args.to_string())
        .current_dir(web_dir())
        .output()
        .expect("run node (installed by scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
        panic!("{script} printed no result (status {}): {stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr))
    });
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(out.status.success() && v["ok"] == true, "{script} failed: {v:#}\n{}", String::from_utf8_lossy(&out.stderr));
    v["result"].clone()
}

