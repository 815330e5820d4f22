//! Resumable uploads (tus 1.0.0) against a real `youke serve`: a piece cut off mid-way keeps
//! what arrived, a SIGKILLed node resumes from the acknowledged offset, the finished file is
//! imported byte for byte, and bad requests are refused with their reasons.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const BASE: &str = "/api/v1/uploads/resumable";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// HEAD on an upload: (status, Upload-Offset).
fn head(server: &Server, location: &str) -> (u16, Option<u64>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let (cookie, _) = server.session.clone().unwrap();
    let r = agent.head(&server.url(location)).header("Cookie", &format!("youke_session={cookie}")).call().unwrap();
    (r.status().as_u16(), r.headers().get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()))
}

/// A PATCH of `bytes` at `offset`: (status, Upload-Offset, Youke-Lesson, body).
fn patch(server: &Server, location: &str, offset: u64, bytes: &[u8], content_type: &str) -> (u16, Option<u64>, Option<String>, String) {
    let mut r = server
        .request("PATCH", location)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", &offset.to_string())
        .header("Content-Type", content_type)
        .send(bytes)
        .unwrap();
    let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (off, lesson) = (h("upload-offset").and_then(|v| v.parse().ok()), h("youke-lesson"));
    (r.status().as_u16(), off, lesson, r.body_mut().read_to_string().unwrap_or_default())
}

/// Starts a PATCH announcing the whole rest of the file, sends only `send` bytes of it and
/// drops the connection, as a school link going down would.
fn patch_cut_off(server: &Server, location: &str, offset: u64, rest: &[u8], send: usize) {
    let (cookie, csrf) = server.session.clone().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    write!(
        s,
        "PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: youke_session={cookie}\r\nX-CSRF-Token: {csrf}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        rest.len()
    )
    .unwrap();
    s.write_all(&rest[..send]).unwrap();
    s.flush().unwrap();
    // Let the node read what was sent, then cut the connection.
    std::thread::sleep(Duration::from_millis(300));
    s.shutdown(std::net::Shutdown::Both).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn an_upload_cut_off_and_a_killed_node_resume_from_the_acknowledged_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "续传学校", no_transcode);
    let mut server = Server::start(&data, http);
    let rec = dir.path().join("浮力 实验.mp4");
    make_recording(&rec, 4, 4000);
    let file = std::fs::read(&rec).unwrap();
    let len = file.len() as u64;

    // Refused at creation: no length, too large, no name, a path for a name.
    let create = |server: &Server, length: &str, meta: &str| {
        let mut r = server.request("POST", BASE).header("Tus-Resumable", "1.0.0").header("Upload-Length", length).header("Upload-Metadata", meta).send_empty().unwrap();
        let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        (r.status().as_u16(), loc, r.body_mut().read_to_string().unwrap_or_default())
    };
    let name_meta = format!("filename {},title {},subject {}", b64("浮力 实验.mp4"), b64("阿基米德原理"), b64("物理"));
    assert_eq!(create(&server, "many", &name_meta).0, 400);
    assert_eq!(create(&server, &(1u64 << 50).to_string(), &name_meta).0, 413);
    assert_eq!(create(&server, &len.to_string(), &format!("title {}", b64("x"))).0, 400);
    assert_eq!(create(&server, &len.to_string(), &format!("filename {}", b64("../../youke.toml"))).0, 400);

    let (status, location, _) = create(&server, &len.to_string(), &name_meta);
    assert_eq!(status, 201);
    let location = location.unwrap();
    assert!(location.starts_with(&format!("{BASE}/")), "{location}");
    assert_eq!(head(&server, &location), (200, Some(0)));

    // Wrong type, wrong offset, past the end.
    assert_eq!(patch(&server, &location, 0, &file[..10], "application/json").0, 415);
    assert_eq!(patch(&server, &location, 5, &file[..10], "application/offset+octet-stream").0, 409);

    // A first piece arrives whole.
    let first = 100_000usize;
    let (s, off, lesson, _) = patch(&server, &location, 0, &file[..first], "application/offset+octet-stream");
    assert_eq!((s, off, lesson), (204, Some(first as u64), None));

    // The next is cut off mid-way: what arrived is kept.
    let sent = 250_000usize;
    patch_cut_off(&server, &location, first as u64, &file[first..], sent);
    let want = (first + sent) as u64;
    let got = wait_for_opt(Duration::from_secs(10), Duration::from_millis(50), || head(&server, &location).1.filter(|o| *o == want)).unwrap_or_else(|| head(&server, &location).1.unwrap());
    assert_eq!(got, want, "every byte that arrived before the cut is acknowledged");

    // The node dies (SIGKILL) and comes back: the acknowledged offset stands.
    server.kill();
    let server = Server::start(&data, http);
    assert_eq!(head(&server, &location), (200, Some(got)));
    let (s, _, _, body) = patch(&server, &location, 0, &file[..10], "application/offset+octet-stream");
    assert_eq!(s, 409, "{body}");
    assert!(body.contains(&format!("at byte {got}")), "{body}");
    // A piece past the declared length is refused from its headers; the node may answer and
    // close before the client has sent it all (the client then sees its write fail).
    let too_long = [file.as_slice(), b"extra"].concat();
    let sent = server
        .request("PATCH", &location)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", &got.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .send(&too_long[got as usize..]);
    match sent {
        Ok(mut r) => {
            let body = r.body_mut().read_to_string().unwrap_or_default();
            assert_eq!(r.status().as_u16(), 400, "a piece past the declared length is refused: {body}");
            assert!(body.contains("past the file's declared length"), "{body}");
        }
        Err(ureq::Error::Io(e)) => assert!(matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset), "{e}"),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(head(&server, &location), (200, Some(got)), "and none of it is kept");
    let (s, off, lesson, body) = patch(&server, &location, got, &file[got as usize..], "application/offset+octet-stream");
    assert_eq!((s, off), (204, Some(len)), "{body}");
    let lesson = lesson.expect("the completing piece answers the lesson");
    let l = server.get_json(&format!("/api/v1/lessons/{lesson}")).unwrap();
    assert_eq!(l["title"], "阿基米德原理");
    assert_eq!(l["subject"], "物理");
    assert_eq!(l["original_name"], "浮力 实验.mp4");
    assert_eq!(l["media"]["hash"], blake3_file(&rec), "imported byte for byte");
    // Sending the last piece again (its answer was lost) is harmless and answers the same lesson.
    let (s, _, again, _) = patch(&server, &location, len, &[], "application/offset+octet-stream");
    assert_eq!((s, again.as_deref()), (204, Some(lesson.as_str())));
    assert_eq!(server.get_json("/api/v1/lessons").unwrap()["total"], 1, "one lesson, not two");
    // Nothing is left in the staging directory.
    let staging = data.join("import/.uploading");
    let left: Vec<_> = std::fs::read_dir(&staging).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");

    // Someone else's upload is not found; an abandoned one is gone with its data.
    add_user(&data, "li", "teacher", "teacher password");
    let (cookie, _) = sign_in(http, "li", "teacher password").unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let r = agent.get(&server.url(&location)).header("Cookie", &format!("youke_session={cookie}")).call().unwrap();
    assert_eq!(r.status(), 404);
    let (s, second, _) = create(&server, "1000", &name_meta);
    assert_eq!(s, 201);
    let second = second.unwrap();
    let (cookie, csrf) = server.session.clone().unwrap();
    let r = agent.delete(&server.url(&second)).header("Cookie", &format!("youke_session={cookie}")).header("X-CSRF-Token", &csrf).call().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(head(&server, &second).0, 404);
    assert!(std::fs::read_dir(&staging).unwrap().next().is_none());
}
