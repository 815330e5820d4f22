//! The zero-copy path for HLS ladder files: a connection whose requests are plain `GET`s (or
//! `HEAD`s) of `/media/hls/…` is answered here with `sendfile(2)`, the kernel moving the file's
//! pages to the socket without copying them through the process, as nginx does. The first
//! request that is anything else (a page, the API, a `Range`, a missing file, HTTP/2, anything
//! unusual) hands the connection, with the bytes read so far, to hyper and the router for the
//! rest of its life, so every rule of the portal (access policy, limits, errors) still applies
//! there. Only when anonymous viewing is on: ladder files need no account then, so nothing here
//! reads a session.
//!
//! Parsing ([`parse_head`]) is separate from I/O and tested on its own; limits are the server's:
//! at most [`super::limits::MAX_HEADER_BYTES`] of headers, each request's whole head within
//! [`super::limits::HEADER_READ_TIMEOUT`] of the moment the connection was ready for it.

use super::segments;
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What the fast path needs of the node.
#[derive(Clone)]
pub struct FastPath {
    pub ctx: Arc<crate::NodeCtx>,
}

/// A request head the fast path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub head_only: bool,
    pub hash: String,
    pub rest: String,
    /// The client asked to close the connection after this answer (or spoke HTTP/1.0).
    pub close: bool,
    /// Bytes of the request head.
    pub len: usize,
}

/// What the bytes read so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not a whole request head yet.
    Partial,
    /// A ladder file request this path answers.
    Ladder(Ladder),
    /// Anything else: hyper takes the connection.
    Other,
}

/// Reads the request head at the start of `buf`.
pub fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Other,
    };
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Head::Other,
    };
    let Some(rest) = req.path.and_then(|p| p.strip_prefix("/media/hls/")) else { return Head::Other };
    if rest.contains(['?', '#', '%']) {
        return Head::Other;
    }
    let Some((hash, rest)) = rest.split_once('/') else { return Head::Other };
    let mut close = req.version != Some(1);
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            // Ranges, bodies and upgrades are hyper's.
            "range" | "if-range" | "transfer-encoding" | "upgrade" | "expect" => return Head::Other,
            "content-length" if h.value != b"0" => return Head::Other,
            "connection" => {
                let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }
    Head::Ladder(Ladder { head_only, hash: hash.to_string(), rest: rest.to_string(), close, len })
}

/// A connection with bytes already read in front of it, for hyper.
pub struct Rewind {
    pre: Bytes,
    inner: TcpStream,
}

impl Rewind {
    pub fn new(inner: TcpStream) -> Rewind {
        Rewind { pre: Bytes::new(), inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            let chunk = self.pre.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The answer's head: the same security headers as the router's answers.
fn response_head(mime: &str, len: u64, close: bool) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {mime}\r\ncontent-length: {len}\r\ncache-control: {}\r\naccept-ranges: bytes\r\n\
         content-security-policy: {}\r\nx-frame-options: DENY\r\nreferrer-policy: same-origin\r\nx-content-type-options: nosniff\r\n{}\r\n",
        segments::IMMUTABLE,
        super::CONTENT_SECURITY_POLICY,
        if close { "connection: close\r\n" } else { "" },
    )
}

/// Sends `len` bytes of `file` with sendfile(2), waiting whenever the socket is full.
async fn send_file(stream: &TcpStream, file: &std::fs::File, len: u64) -> io::Result<()> {
    let mut offset: i64 = 0;
    let end = i64::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    while offset < end {
        stream.writable().await?;
        let chunk = usize::try_from(end - offset).unwrap_or(usize::MAX).min(1 << 30);
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(stream.as_fd(), file.as_fd(), Some(&mut offset), chunk).map_err(io::Error::from)
        }) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended early")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl FastPath {
    /// Serves the connection's ladder requests; returns it to be handed to hyper at the first
    /// other request, or `None` once it is closed.
    pub async fn serve(&self, mut stream: TcpStream, cancel: &CancellationToken) -> Option<Rewind> {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            // One request head, within the time and size limits: the whole head (and the idle
            // time before it) within the limit, as on hyper's path, not each read.
            let deadline = tokio::time::Instant::now() + super::limits::HEADER_READ_TIMEOUT;
            let head = loop {
                match parse_head(&buf) {
                    Head::Partial if buf.len() < super::limits::MAX_HEADER_BYTES => {}
                    Head::Partial | Head::Other => return Some(Rewind { pre: buf.freeze(), inner: stream }),
                    Head::Ladder(l) => break l,
                }
                let read = tokio::select! {
                    _ = cancel.cancelled() => return None,
                    r = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => r,
                };
                match read {
                    Ok(Ok(n)) if n > 0 => {}
                    // Closed, failed, or too slow: nothing more to answer.
                    _ => return None,
                }
            };
            let Some((path, mime)) = segments::resolve(&self.ctx, &head.hash, &head.rest) else {
                return Some(Rewind { pre: buf.freeze(), inner: stream });
            };
            let file = match std::fs::File::open(&path).and_then(|f| Ok((f.metadata()?, f))) {
                Ok((meta, f)) if meta.is_file() => (f, meta.len()),
                // Missing: hyper answers the 404 the router would.
                _ => return Some(Rewind { pre: buf.freeze(), inner: stream }),
            };
            buf.advance(head.len);
            let sent = async {
                // Corked (as nginx's tcp_nopush): the head leaves in the same packets as the
                // file's first bytes, not alone because of TCP_NODELAY.
                let _ = socket2::SockRef::from(&stream).set_tcp_cork(true);
                stream.write_all(response_head(mime, file.1, head.close).as_bytes()).await?;
                if !head.head_only {
                    send_file(&stream, &file.0, file.1).await?;
                }
                let _ = socket2::SockRef::from(&stream).set_tcp_cork(false);
                Ok::<_, io::Error>(())
            };
            let done = tokio::select! {
                _ = cancel.cancelled() => return None,
                r = sent => r,
            };
            if let Err(e) = done {
                tracing::debug!(error = %e, path = %path.display(), "sending a ladder file failed");
                return None;
            }
            if head.close {
                let _ = stream.shutdown().await;
                return None;
            }
        }
    }
}

/// The fuzz target of the request head parser (`fuzz/fuzz_targets/http_head.rs`; its seed
/// corpus is replayed by the tests): any bytes are a partial head, another request, or a ladder
/// file request whose path stays below its ladder.
#[doc(hidden)]
pub fn fuzz_head(data: &[u8]) {
    if let Head::Ladder(l) = parse_head(data) {
        assert!(l.len <= data.len(), "a head longer than the bytes");
        assert!(!l.rest.contains(['?', '#', '%']) && !l.hash.contains(['?', '#', '%']));
        if segments::ladder_file(&l.hash, &l.rest).is_some() {
            let parts: Vec<&str> = l.rest.split('/').collect();
            assert!(parts.len() <= 2 && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.')), "{:?} leaves its ladder", l.rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder(h: Head) -> Ladder {
        match h {
            Head::Ladder(l) => l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_ladder_requests_are_taken_and_everything_else_left_to_hyper() {
        let l = ladder(parse_head(b"GET /media/hls/abc/720p/seg_00001.ts HTTP/1.1\r\nHost: x\r\n\r\nGET /"));
        assert_eq!((l.hash.as_str(), l.rest.as_str(), l.head_only, l.close, l.len), ("abc", "720p/seg_00001.ts", false, false, 58));
        assert!(ladder(parse_head(b"HEAD /media/hls/abc/master.m3u8 HTTP/1.1\r\n\r\n")).head_only);
        assert!(ladder(parse_head(b"GET /media/hls/abc/master.m3u8 HTTP/1.0\r\n\r\n")).close, "HTTP/1.0 closes");
        assert!(!ladder(parse_head(b"GET /media/hls/abc/master.m3u8 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")).close);
        assert!(ladder(parse_head(b"GET /media/hls/abc/master.m3u8 HTTP/1.1\r\nConnection: close\r\n\r\n")).close);
        assert_eq!(parse_head(b"GET /media/hls/abc/seg.ts HTTP/1.1\r\nHost"), Head::Partial);
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"POST /media/hls/abc/seg.ts HTTP/1.1\r\n\r\n",
            b"GET /media/hls/abc/seg.ts HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n",
            b"GET /media/hls/abc/seg.ts?x=1 HTTP/1.1\r\n\r\n",
            b"GET /media/hls/abc/%2e%2e/x HTTP/1.1\r\n\r\n",
            b"GET /media/hls/abc HTTP/1.1\r\n\r\n",
            b"GET /media/hls/abc/seg.ts HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x16\x03\x01garbage",
        ] {
            assert_eq!(parse_head(other), Head::Other, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn the_fuzz_seed_corpus_replays() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let mut replayed = 0;
        for e in std::fs::read_dir(root.join("http_head")).expect("the seed corpus is committed") {
            fuzz_head(&std::fs::read(e.expect("entry").path()).expect("read"));
            replayed += 1;
        }
        for e in std::fs::read_dir(root.join("fast_path")).expect("the seed corpus is committed") {
            let path = e.expect("entry").path();
            let answer = String::from_utf8_lossy(&super::super::server::fuzz_connection(&std::fs::read(&path).expect("read"))).into_owned();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let first = answer.lines().next().unwrap_or("");
            match name.as_str() {
                "ladder-get" | "ladder-close" => assert!(first == "HTTP/1.1 200 OK" && answer.contains("content-length: 12032"), "{name}: {answer}"),
                "pipelined" => assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 3, "{name}: {answer}"),
                "traversal" | "traversal-encoded" | "missing" | "dot-name" => assert!(first.starts_with("HTTP/1.1 404"), "{name}: {first}"),
                "wrong-method" => assert!(first.starts_with("HTTP/1.1 405"), "{name}: {first}"),
                "lang-redirect" => assert!(answer.contains("location: /\r\n"), "{name}: {answer}"),
                "login-newline" => assert!(first.starts_with("HTTP/1.1 400"), "{name}: {first}"),
                _ => {}
            }
            replayed += 1;
        }
        assert!(replayed >= 40, "{replayed} seeds");
    }

    /// One answer read back: status, headers (names lower-cased), body.
    type Answer = (u16, Vec<(String, String)>, Vec<u8>);

    /// Splits a stream of HTTP/1.1 answers.
    fn answers(mut bytes: &[u8], heads_only: &[bool]) -> Vec<Answer> {
        let mut out = Vec::new();
        for head_only in heads_only {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let n = match resp.parse(bytes).expect("an answer") {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial => panic!("cut answer"),
            };
            let hs: Vec<(String, String)> = resp.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
            let len: usize = hs.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().expect("length"));
            let body_len = if *head_only { 0 } else { len };
            out.push((resp.code.expect("code"), hs, bytes[n..n + body_len].to_vec()));
            bytes = &bytes[n + body_len..];
        }
        assert!(bytes.is_empty(), "{} bytes left over", bytes.len());
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ladder_files_go_out_by_sendfile_and_other_requests_reach_the_router() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = Arc::new(crate::NodeCtx::open(&dir.path().join("node"), crate::config::Config::default()).expect("open"));
        let index = Arc::new(youke_search::LessonIndex::in_memory().expect("index"));
        let hash = blake3::hash(b"a ladder").to_hex().to_string();
        let rung = crate::media_jobs::hls_dir(&ctx.data_dir, &hash).join("720p");
        std::fs::create_dir_all(&rung).expect("dir");
        let segment: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        std::fs::write(rung.join("seg_00001.ts"), &segment).expect("write");
        std::fs::write(rung.parent().expect("ladder").join("master.m3u8"), "#EXTM3U\n").expect("write");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let (cancel2, ctx2) = (cancel.clone(), Arc::clone(&ctx));
        let app = super::super::router(super::super::AppState::new(Arc::clone(&ctx), index));
        let limits = ctx.config.limits.clone();
        tokio::spawn(super::super::server::serve(listener, app, cancel2, Some(FastPath { ctx: ctx2 }), limits));

        // Pipelined on one connection: a segment, a playlist's head, then a router route.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "GET /media/hls/{hash}/720p/seg_00001.ts HTTP/1.1\r\nHost: t\r\n\r\nHEAD /media/hls/{hash}/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut got)).await.expect("in time").expect("read");
        let a = answers(&got, &[false, true, false]);
        assert_eq!(a[0].0, 200);
        assert!(a[0].2 == segment, "the segment arrived whole");
        let h = |i: usize, k: &str| a[i].1.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!((h(0, "content-type").as_str(), h(0, "cache-control").as_str(), h(0, "x-content-type-options").as_str()), ("video/mp2t", segments::IMMUTABLE, "nosniff"));
        assert_eq!((a[1].0, h(1, "content-length").as_str(), h(1, "content-type").as_str()), (200, "8", "application/vnd.apple.mpegurl"));
        assert_eq!((a[2].0, a[2].2.as_slice()), (200, &b"ok"[..]), "the router answers after the hand-over");

        // A range, and a file that is not there, are the router's (206, and a 404 problem).
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "GET /media/hls/{hash}/720p/seg_00001.ts HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\n\r\nGET /media/hls/{hash}/720p/seg_00002.ts HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut got)).await.expect("in time").expect("read");
        let a = answers(&got, &[false, false]);
        assert_eq!((a[0].0, a[0].2.as_slice()), (206, &segment[10..20]));
        assert_eq!(a[1].0, 404);
        assert!(a[1].1.iter().any(|(k, v)| k == "content-type" && v == "application/problem+json"));
        cancel.cancel();
    }
}
