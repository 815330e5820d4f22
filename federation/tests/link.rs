//! Federation links over real QUIC sockets on 127.0.0.1: documents and blobs reach the parent,
//! and peers in the wrong tier or with a changed certificate are refused. Storage is a small
//! in-memory `LinkStore`, since this crate knows nothing of the node's SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use youke_federation::identity::Trust;
use youke_federation::link::Uplink;
use youke_federation::sync::{BlobUpload, LinkState};
use youke_federation::transport::bind_endpoint;
use youke_federation::pki::Revocations;
use youke_federation::manifest::{CHUNK, ManifestBuilder};
use youke_federation::protocol::{self, DocUpdate, ErrorCode, Message, NodeHealth, NodeInfo};
use youke_federation::rate::{RateLimiter, RateSchedule};
use youke_federation::transfers::Transfers;
use youke_federation::{BlobHash, BlobStore, NodeIdentity, Tier};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_and_blobs_reach_the_parent() {
    let parent = start_parent(Tier::City);
    let store = Arc::new(Mem::default());
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    store.with(|s| {
        s.outgoing = (1..=3).map(|seq| DocUpdate { id: format!("doc{seq}"), kind: "lesson".into(), seq, version: String::new(), full: true, bytes: vec![seq as u8; 100] }).collect();
    });
    let child = start_child(parent.addr, info(Tier::School, "school-1"), &NodeIdentity::generate("s").expect("id"), store.clone());
    let (hash, size) = child.blobs.put_reader(&data[..], |_| {}).expect("put");
    store.with(|s| s.uploads.push(BlobUpload { hash, size }));

    eventually("documents applied and acknowledged", || store.with(|s| s.acked == 3) && parent.store.with(|s| s.applied.len() == 3)).await;
    eventually("blob stored at the parent", || store.with(|s| s.uploaded.contains(&hash))).await;
    assert_eq!(parent.store.with(|s| s.received.clone()), vec![(hash, size)]);
    let stored = std::fs::read(parent.blobs.blob(&hash).expect("stored").path().expect("local")).expect("read");
    assert_eq!(stored, data);
    assert!(matches!(store.with(|s| s.states.last().cloned()), Some(LinkState::Up { .. })));
    assert!(store.with(|s| s.parent.clone()).is_some(), "the child pins its parent");

    // A later document goes up alone: nothing acknowledged is sent again.
    store.with(|s| s.outgoing.push(DocUpdate { id: "doc4".into(), kind: "lesson".into(), seq: 4, version: String::new(), full: true, bytes: vec![4] }));
    eventually("the new document", || parent.store.with(|s| s.applied.len() == 4)).await;
    assert_eq!(parent.store.with(|s| s.applied.iter().filter(|d| d.id == "doc1").count()), 1);
    child.cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_reports_its_subtrees_health_at_link_up_and_again_later() {
    let parent = start_parent(Tier::City);
    let store = Arc::new(Mem::default());
    let node = |id: &str, parent_id: &str, pending_uploads: u64| NodeHealth {
        node_id: id.into(),
        name: format!("学校{id}"),
        tier: Tier::School,
        parent_id: parent_id.into(),
        connected: true,
        age_ms: 0,
        last_sync_ms_ago: Some(10),
        pending_docs: 0,
        pending_uploads,
        pending_upload_bytes: pending_uploads << 20,
        lessons: 3,
    };
    store.with(|s| s.health = vec![node("school-1", "parent", 2)]);
    let child = start_child(parent.addr, info(Tier::School, "school-1"), &NodeIdentity::generate("s").expect("id"), store.clone());
    eventually("the first report", || parent.store.with(|s| s.reports.get("school-1").is_some_and(|r| r.len() == 1 && r[0].pending_uploads == 2))).await;
    // The queue drains: the next report says so (each replaces the one before).
    store.with(|s| s.health = vec![node("school-1", "parent", 0)]);
    let deadline = Instant::now() + youke_federation::sync::child::HEALTH_INTERVAL * 3;
    while parent.store.with(|s| s.reports["school-1"][0].pending_uploads != 0) {
        assert!(Instant::now() < deadline, "no second report");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parents_documents_come_down_in_order_and_once() {
    let parent = start_parent(Tier::Province);
    let doc = |seq: u64| DocUpdate { id: format!("collection{seq}"), kind: "collection".into(), seq, version: String::new(), full: true, bytes: vec![seq as u8; 10] };
    parent.store.with(|s| s.down = (1..=300).map(doc).collect());
    let store = Arc::new(Mem::default());
    let child = start_child(parent.addr, info(Tier::City, "city-7"), &NodeIdentity::generate("c").expect("id"), store.clone());
    eventually("300 documents from the parent", || store.with(|s| s.cursor == 300)).await;
    parent.store.with(|s| s.down.push(doc(301)));
    eventually("one more", || store.with(|s| s.cursor == 301)).await;
    let got: Vec<u64> = store.with(|s| s.from_parent.iter().map(|d| d.seq).collect());
    assert_eq!(got, (1..=301).collect::<Vec<_>>(), "in order, each once (batches of at most 256)");
    child.cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_the_wrong_tier_is_refused() {
    let parent = start_parent(Tier::City);
    let store = Arc::new(Mem::default());
    store.with(|s| s.outgoing.push(DocUpdate { id: "d".into(), kind: "lesson".into(), seq: 1, version: String::new(), full: true, bytes: vec![1] }));
    let child = start_child(parent.addr, info(Tier::City, "other-city"), &NodeIdentity::generate("c").expect("id"), store.clone());
    eventually("the refusal", || {
        store.with(|s| s.states.iter().any(|st| matches!(st, LinkState::Down { error } if error.contains("cannot be a child"))))
    })
    .await;
    assert!(parent.store.with(|s| s.applied.is_empty() && s.pins.is_empty()), "nothing written for a refused node");
    child.cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_with_a_changed_certificate_is_refused() {
    let parent = start_parent(Tier::Province);
    // The province pinned city-1 with another certificate earlier.
    let earlier = NodeIdentity::generate("city-1").expect("id").fingerprint();
    parent.store.with(|s| s.pins.insert("city-1".into(), earlier));
    let store = Arc::new(Mem::default());
    store.with(|s| s.outgoing.push(DocUpdate { id: "d".into(), kind: "lesson".into(), seq: 1, version: String::new(), full: true, bytes: vec![1] }));
    let impostor = start_child(parent.addr, info(Tier::City, "city-1"), &NodeIdentity::generate("x").expect("id"), store.clone());
    eventually("the refusal", || {
        store.with(|s| s.states.iter().any(|st| matches!(st, LinkState::Down { error } if error.contains("different certificate"))))
    })
    .await;
    assert!(parent.store.with(|s| s.applied.is_empty()));
    impostor.cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_with_a_changed_certificate_is_refused() {
    let parent = start_parent(Tier::City);
    let store = Arc::new(Mem::default());
    // The school remembers its parent "parent" with another certificate.
    let earlier = NodeIdentity::generate("parent").expect("id").fingerprint();
    store.with(|s| {
        s.parent = Some(("parent".into(), earlier));
        s.outgoing.push(DocUpdate { id: "d".into(), kind: "lesson".into(), seq: 1, version: String::new(), full: true, bytes: vec![1] });
    });
    let child = start_child(parent.addr, info(Tier::School, "school-9"), &NodeIdentity::generate("s").expect("id"), store.clone());
    eventually("the refusal", || {
        store.with(|s| s.states.iter().any(|st| matches!(st, LinkState::Down { error } if error.contains("different certificate"))))
    })
    .await;
    assert!(parent.store.with(|s| s.applied.is_empty()), "no document goes to an unverified parent");
    child.cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_speaking_another_protocol_version_is_refused_with_a_clear_error() {
    let parent = start_parent(Tier::City);
    // A child built with another version's ALPN, as a newer or older youke would be.
    let identity = NodeIdentity::generate("future").expect("id");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let tls = identity.quic_client_config(b"youke/999").expect("tls");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(tls)));
    let store = Arc::new(Mem::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let cancel = CancellationToken::new();
    let uplink = Uplink {
        endpoint,
        parent_addr: parent.addr.to_string(),
        local: info(Tier::School, "future-school"),
        store: store.clone(),
        blobs: BlobStore::open(dir.path()).expect("blobs"),
        wake: Arc::new(Notify::new()),
        limiter: Arc::new(RateLimiter::new(RateSchedule::default(), 0)),
        counters: Default::default(),
        transfers: Transfers::new(),
        upstream: youke_federation::pull_through::Upstream::new(),
        trust: Trust::DevPinned,
        revocations: Revocations::new(),
    };
    tokio::spawn(uplink.run(cancel.clone()));
    eventually("the refusal", || {
        store.with(|s| s.states.iter().any(|st| matches!(st, LinkState::Down { .. })))
    })
    .await;
    let error = store.with(|s| match s.states.iter().find(|st| matches!(st, LinkState::Down { .. })) {
        Some(LinkState::Down { error }) => error.clone(),
        _ => String::new(),
    });
    assert!(error.contains("protocol version"), "unclear error: {error}");
    assert!(parent.store.with(|s| s.pins.is_empty() && s.applied.is_empty()), "nothing written for a foreign version");
    cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_with_another_protocol_version_is_refused_by_name() {
    let parent = start_parent(Tier::City);
    let store = Arc::new(Mem::default());
    let mut old = info(Tier::School, "old-school");
    old.protocol_version = 0;
    let child = start_child(parent.addr, old, &NodeIdentity::generate("o").expect("id"), store.clone());
    eventually("the refusal", || {
        store.with(|s| s.states.iter().any(|st| matches!(st, LinkState::Down { error } if error.contains("protocol version 0 is not supported"))))
    })
    .await;
    assert!(parent.store.with(|s| s.pins.is_empty() && s.applied.is_empty()));
    child.cancel.cancel();
    parent.cancel.cancel();
}

/// A hand-driven child: connects and says hello, then lets the test write raw protocol.
async fn raw_child(parent: SocketAddr, local: NodeInfo, identity: &NodeIdentity) -> quinn::Connection {
    let endpoint = bind_endpoint("127.0.0.1:0".parse().expect("addr"), identity, Default::default()).expect("bind");
    let conn = endpoint.connect(parent, "youke-node").expect("connect").await.expect("handshake");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(&protocol::encode(&Message::Hello(local)).expect("encode")).await.expect("hello");
    assert!(matches!(read(&mut recv).await, Message::Welcome(_)));
    conn
}

async fn read(recv: &mut quinn::RecvStream) -> Message {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.expect("prefix");
    let mut body = vec![0u8; protocol::frame_len(prefix).expect("len")];
    recv.read_exact(&mut body).await.expect("body");
    protocol::decode_body(&body).expect("decode")
}

/// Offers a blob and returns the stream and how much the parent holds.
async fn offer(conn: &quinn::Connection, hash: BlobHash, data: &[u8]) -> (quinn::SendStream, quinn::RecvStream, u64) {
    let mut b = ManifestBuilder::new();
    b.update(data);
    let (_, manifest) = b.finish();
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let msg = Message::BlobOffer { hash, size: data.len() as u64, manifest: manifest.cvs };
    send.write_all(&protocol::encode(&msg).expect("encode")).await.expect("offer");
    match read(&mut recv).await {
        Message::BlobState { have, complete: false } => (send, recv, have),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn test_data(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(b"link test").finalize_xof().fill(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_is_refused_and_sent_again_while_good_chunks_are_kept() {
    let parent = start_parent(Tier::City);
    let data = test_data(4 * CHUNK as usize + 777);
    let hash = BlobHash::from(blake3::hash(&data));
    let conn = raw_child(parent.addr, info(Tier::School, "evil-school"), &NodeIdentity::generate("e").expect("id")).await;

    // First attempt: chunk 2 arrives with one bit flipped.
    let (mut send, mut recv, have) = offer(&conn, hash, &data).await;
    assert_eq!(have, 0);
    let mut bad = data.clone();
    bad[2 * CHUNK as usize + 5] ^= 0x10;
    let _ = send.write_all(&bad).await; // The parent may stop reading at the bad chunk.
    let _ = send.finish();
    match read(&mut recv).await {
        Message::Error { code: ErrorCode::HashMismatch, message } => assert!(message.contains("fetched again"), "{message}"),
        other => panic!("corruption not refused: {other:?}"),
    }
    assert!(!parent.blobs.contains(&hash), "nothing corrupt becomes visible");

    // Second attempt: the parent asks only for the chunk that failed and what follows.
    let (mut send, mut recv, have) = offer(&conn, hash, &data).await;
    assert_eq!(have, 2 * CHUNK, "the two good chunks were kept");
    send.write_all(&data[have as usize..]).await.expect("rest");
    send.finish().expect("finish");
    assert!(matches!(read(&mut recv).await, Message::BlobStored { hash: h } if h == hash));
    assert_eq!(std::fs::read(parent.blobs.blob(&hash).expect("stored").path().expect("local")).expect("read"), data);
    assert_eq!(parent.store.with(|s| s.received.clone()), vec![(hash, data.len() as u64)]);
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_transfer_resumes_at_the_last_whole_chunk() {
    let parent = start_parent(Tier::City);
    let data = test_data(5 * CHUNK as usize);
    let hash = BlobHash::from(blake3::hash(&data));
    let identity = NodeIdentity::generate("c").expect("id");
    let conn = raw_child(parent.addr, info(Tier::School, "cut-school"), &identity).await;
    let (mut send, _recv, _) = offer(&conn, hash, &data).await;
    send.write_all(&data[..(2 * CHUNK + CHUNK / 2) as usize]).await.expect("part");
    eventually("two chunks verified at the parent", || parent.blobs.partial_len(&hash) == 2 * CHUNK).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The link dies mid-chunk.
    conn.close(0u32.into(), b"cut");
    drop(send);
    let conn = raw_child(parent.addr, info(Tier::School, "cut-school"), &identity).await;
    // Until the parent notices the dead stream, the blob is busy; then the offer resumes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let have = loop {
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        let mut b = ManifestBuilder::new();
        b.update(&data);
        let msg = Message::BlobOffer { hash, size: data.len() as u64, manifest: b.finish().1.cvs };
        send.write_all(&protocol::encode(&msg).expect("encode")).await.expect("offer");
        match read(&mut recv).await {
            Message::BlobState { have, complete: false } => break have,
            Message::Error { code: ErrorCode::Busy, .. } if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected answer {other:?}"),
        }
    };
    assert_eq!(have, 2 * CHUNK, "at most the half chunk in flight is sent again");
    parent.cancel.cancel();
}

