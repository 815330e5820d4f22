//! The watched import folder of a real `youke serve`: recordings copied in (slowly, as over a
//! network share) are imported once complete, with lesson fields from the admin's file-name
//! pattern or a JSON sidecar; temporary names are left alone; files that are not playable
//! (random bytes, a recording cut mid-way) are quarantined with the reason and listed, and the
//! node keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

fn lesson_titled(server: &Server, title: &str) -> Option<serde_json::Value> {
    let list = server.get_json("/api/v1/lessons?per_page=200")?;
    list["items"].as_array()?.iter().find(|l| l["title"] == title).cloned()
}

#[test]
fn the_import_folder_imports_finished_recordings_and_quarantines_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "录播学校", |text| {
        let text = no_transcode(text).replace("[import]\nwatch_dir = \"import\"", "[import]\nwatch_dir = \"import\"\nname_pattern = \"{grade}_{subject}_{teacher}_{title}\"");
        assert!(text.contains("name_pattern"), "{text}");
        text
    });
    let server = Server::start(&data, http);
    let inbox = data.join("import");
    let made = dir.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    let rec = made.join("rec.mp4");
    make_recording(&rec, 3, 800);
    let bytes = std::fs::read(&rec).unwrap();

    // Copied in slowly: nothing is imported while the file still grows.
    let slow = inbox.join("八年级_数学_王芳_勾股定理 第一课时.mp4");
    {
        let mut f = std::fs::File::create(&slow).unwrap();
        for chunk in bytes.chunks(bytes.len() / 4 + 1) {
            f.write_all(chunk).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(700));
            assert!(lesson_titled(&server, "勾股定理 第一课时").is_none(), "imported before it was complete");
        }
    }
    // A sidecar gives the fields; a temporary name is left alone.
    std::fs::write(inbox.join("教室3-0915.mp4"), &bytes).unwrap();
    std::fs::write(inbox.join("教室3-0915.json"), r#"{"title": "牛顿第一定律", "teacher": "李明", "subject": "物理"}"#).unwrap();
    std::fs::write(inbox.join("教室4.mp4.part"), &bytes).unwrap();
    // Random bytes, and a recording cut mid-way (its index is at the end, never written).
    std::fs::write(inbox.join("坏文件.mp4"), (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>()).unwrap();
    std::fs::write(inbox.join("cut.mp4"), &bytes[..bytes.len() * 2 / 5]).unwrap();

    let l = wait_for("the slowly copied recording", Duration::from_secs(30), || lesson_titled(&server, "勾股定理 第一课时"));
    assert_eq!((l["teacher"].as_str(), l["grade"].as_str(), l["subject"].as_str()), (Some("王芳"), Some("八年级"), Some("数学")));
    let l = wait_for("the recording with a sidecar", Duration::from_secs(30), || lesson_titled(&server, "牛顿第一定律"));
    assert_eq!((l["teacher"].as_str(), l["subject"].as_str()), (Some("李明"), Some("物理")));
    assert!(inbox.join("imported").join("教室3-0915.mp4").is_file() && inbox.join("imported").join("教室3-0915.json").is_file());

    let q = wait_for("both bad files in quarantine", Duration::from_secs(30), || {
        let q = server.get_json("/api/v1/quarantine")?;
        (q.as_array()?.len() == 2).then_some(q)
    });
    let reason_of = |name: &str| q.as_array().unwrap().iter().find(|e| e["name"] == name).and_then(|e| e["reason"].as_str()).unwrap_or("").to_string();
    assert!(reason_of("坏文件.mp4").contains("not a playable recording"), "{q}");
    assert!(reason_of("cut.mp4").contains("not a playable recording"), "{q}");
    assert!(inbox.join("quarantine").join("坏文件.mp4").is_file());
    let listed = youke_ok(&data, &["quarantine"]);
    assert!(listed.contains("坏文件.mp4") && listed.contains("cut.mp4"), "{listed}");

    std::thread::sleep(Duration::from_secs(4));
    assert!(inbox.join("教室4.mp4.part").is_file(), "a temporary name is never imported");
    let status: serde_json::Value = serde_json::from_str(&youke_ok(&data, &["status", "--json"])).unwrap();
    assert_eq!(status["lessons"], 2);
    assert!(ureq::get(&server.url("/healthz")).call().is_ok(), "the node keeps serving");
}

#[test]
fn portal_uploads_are_imported_and_bad_ones_quarantined_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "上传学校", no_transcode);
    let server = Server::start(&data, http);
    let rec = dir.path().join("rec.mp4");
    make_recording(&rec, 2, 600);
    let bytes = std::fs::read(&rec).unwrap();
    let url = |q: &str| format!("/api/v1/uploads?{q}");
    let page = String::from_utf8(server.get_bytes("/upload").unwrap()).unwrap();
    let script = page.split(r#"<script src=""#).filter_map(|s| s.split('"').next()).find(|s| s.starts_with("/assets/upload.js")).unwrap_or_else(|| panic!("{page}"));
    let js = String::from_utf8(server.get_bytes(script).unwrap()).unwrap();
    assert!(page.contains("上传录像") && js.contains("/api/v1/uploads/resumable") && js.contains("X-CSRF-Token"), "{js}");

    let (code, lesson) = server.put_bytes(&url("name=%E7%89%9B%E9%A1%BF.mp4&teacher=%E6%9D%8E%E6%98%8E"), &bytes).unwrap();
    assert_eq!(code, 201, "{lesson}");
    assert_eq!((lesson["title"].as_str(), lesson["teacher"].as_str()), (Some("牛顿"), Some("李明")));
    assert_eq!(lesson["media_present"], true);

    let junk: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let (code, body) = server.put_bytes(&url("name=%E5%9D%8F.mp4"), &junk).unwrap();
    assert_eq!(code, 422, "a file that is not a recording must be refused with 422: {body}");
    let q = server.get_json("/api/v1/quarantine").unwrap();
    let entry = q.as_array().unwrap().iter().find(|e| e["name"] == "坏.mp4").cloned().unwrap_or_else(|| panic!("{q}"));
    assert!(entry["reason"].as_str().unwrap().contains("not a playable recording"), "{entry}");
    assert!(std::path::Path::new(entry["path"].as_str().unwrap()).is_file(), "kept for the admin: {entry}");
    // Refused before the body is read: send none, so the answer cannot race a half-sent body.
    assert_eq!(server.put_bytes(&url("name="), &[]).unwrap().0, 400);
    let staging = data.join("import").join(".uploading");
    assert_eq!(std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0), 0, "no partial upload left behind");
}

/// Runs a Python ftplib script (the FTP client recording hosts behave like).
fn python(script: &str) -> std::process::Output {
    std::process::Command::new("python3").arg("-c").arg(script).output().expect("python3 (make setup installs it)")
}

#[test]
fn recording_hosts_publish_over_ftp_and_a_cut_upload_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let ftp_port = free_tcp_port();
    let passive = free_tcp_port();
    let (data, http) = standalone_school(dir.path(), "FTP学校", |t| {
        let t = no_transcode(t).replace("[import]\nwatch_dir = \"import\"", "[import]\nwatch_dir = \"import\"\nname_pattern = \"{grade}_{subject}_{teacher}_{title}\"");
        t.replace(
            "[ftp]\npassive_ports = [\n    50000,\n    50100,\n]\nstale_secs = 3600",
            &format!("[ftp]\nlisten = \"127.0.0.1:{ftp_port}\"\nuser = \"luboji\"\npassword = \"录播主机-2026\"\npassive_ports = [{passive}, {}]\nstale_secs = 3", passive + 30),
        )
    });
    assert!(std::fs::read_to_string(data.join("youke.toml")).unwrap().contains("listen = \"127.0.0.1:"), "ftp configured");
    let server = Server::start(&data, http);
    let rec = dir.path().join("rec.mp4");
    make_recording(&rec, 2, 600);
    let rec_path = rec.to_str().unwrap();
    let staged = data.join("import").join(".ftp").join("断线.mp4");
    let staged = staged.to_str().unwrap();

    let out = python(&format!(
        r#"
import ftplib, socket, struct, sys
f = ftplib.FTP()
f.connect("127.0.0.1", {ftp_port}, timeout=10)
try:
    f.login("luboji", "wrong")
    sys.exit("a wrong password was accepted")
except ftplib.error_perm:
    pass
f = ftplib.FTP()
f.encoding = "utf-8"
f.connect("127.0.0.1", {ftp_port}, timeout=10)
f.login("luboji", "录播主机-2026")
with open("{rec_path}", "rb") as src:
    f.storbinary("STOR 八年级_数学_王芳_FTP课.mp4", src)
data = open("{rec_path}", "rb").read()
conn = f.transfercmd("STOR 断线.mp4")
conn.sendall(data[: len(data) // 3])
# Once the node holds part of it (before that, nothing was stored and nothing is left to
# quarantine), the link drops: a reset, not a clean end of the transfer.
import os, time
staged = "{staged}"
for _ in range(200):
    if os.path.exists(staged) and os.path.getsize(staged) > 0:
        break
    time.sleep(0.05)
else:
    sys.exit("the node never stored any of the cut upload")
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
f.sock.close()
print("ok")
"#
    ));
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let l = wait_for("the FTP upload as a lesson", Duration::from_secs(30), || lesson_titled(&server, "FTP课"));
    assert_eq!((l["teacher"].as_str(), l["grade"].as_str()), (Some("王芳"), Some("八年级")));
    let q = wait_for_opt(Duration::from_secs(30), Duration::from_millis(100), || {
        let q = server.get_json("/api/v1/quarantine")?;
        q.as_array()?.iter().find(|e| e["name"] == "断线.mp4").cloned()
    })
    .unwrap_or_else(|| {
        let listing = std::process::Command::new("find").arg(data.join("import")).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        panic!("the cut upload never reached quarantine; import folder:\n{listing}\nlog:\n{}", server.log_text())
    });
    let reason = q["reason"].as_str().unwrap();
    assert!(reason.contains("never completed") || reason.contains("cut short"), "{q}");
    assert!(server.log_text().contains("FTP login refused"), "{}", server.log_text());
    assert_eq!(serde_json::from_str::<serde_json::Value>(&youke_ok(&data, &["status", "--json"])).unwrap()["lessons"], 1);
}
