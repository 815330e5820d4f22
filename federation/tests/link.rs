//! Federation links over real QUIC sockets on 127.0.0.1: documents and blobs reach the parent,
//! and peers in the wrong tier or with a changed certificate are refused. Storage is a small
//! in-memory `LinkStore`, since this crate knows nothing of the node's SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use youke_federation::link::{BlobUpload, ChildAcceptor, LinkState, LinkStore, Peer, StoreError, Uplink, bind_endpoint};
use youke_federation::manifest::{CHUNK, ManifestBuilder};
use youke_federation::protocol::{self, DocUpdate, ErrorCode, Message, NodeInfo, PROTOCOL_VERSION};
use youke_federation::rate::{RateLimiter, RateSchedule};
use youke_federation::transfers::Transfers;
use youke_federation::{BlobHash, BlobStore, Fingerprint, NodeIdentity, Tier};

#[derive(Default)]
struct State {
    parent: Option<(String, Fingerprint)>,
    states: Vec<LinkState>,
    outgoing: Vec<DocUpdate>,
    acked: u64,
    uploads: Vec<BlobUpload>,
    uploaded: Vec<BlobHash>,
    pins: HashMap<String, Fingerprint>,
    applied: Vec<DocUpdate>,
    received: Vec<(BlobHash, u64)>,
    /// Parent side: documents for children (all in scope here).
    down: Vec<DocUpdate>,
    /// Child side: what came down, and the cursor.
    from_parent: Vec<DocUpdate>,
    cursor: u64,
}

#[derive(Default)]
struct Mem(Mutex<State>);

impl Mem {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().expect("lock"))
    }
}

impl LinkStore for Mem {
    fn known_parent(&self) -> Result<Option<(String, Fingerprint)>, StoreError> {
        Ok(self.with(|s| s.parent.clone()))
    }
    fn remember_parent(&self, p: &Peer) -> Result<(), StoreError> {
        self.with(|s| s.parent = Some((p.info.node_id.clone(), p.fingerprint)));
        Ok(())
    }
    fn set_link_state(&self, _addr: &str, state: &LinkState) -> Result<(), StoreError> {
        self.with(|s| s.states.push(state.clone()));
        Ok(())
    }
    fn docs_to_send(&self, _p: &Peer, limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError> {
        Ok(self.with(|s| {
            let docs: Vec<DocUpdate> = s.outgoing.iter().filter(|d| d.seq > s.acked).take(limit).cloned().collect();
            let upto = docs.last().map(|d| d.seq).unwrap_or(s.acked);
            (docs, upto)
        }))
    }
    fn docs_acked(&self, _p: &Peer, upto: u64, need_full: &[(String, u64)]) -> Result<(), StoreError> {
        let upto = need_full.iter().fold(upto, |u, (_, seq)| u.min(seq - 1));
        self.with(|s| s.acked = s.acked.max(upto));
        Ok(())
    }
    fn pull_cursor(&self, _p: &Peer) -> Result<u64, StoreError> {
        Ok(self.with(|s| s.cursor))
    }
    fn apply_from_parent(&self, _p: &Peer, docs: Vec<DocUpdate>, upto: u64) -> Result<Vec<String>, StoreError> {
        self.with(|s| {
            s.from_parent.extend(docs);
            s.cursor = upto;
        });
        Ok(Vec::new())
    }
    fn docs_for_child(&self, _c: &Peer, after: u64, _forget: &[String], limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError> {
        Ok(self.with(|s| {
            let docs: Vec<DocUpdate> = s.down.iter().filter(|d| d.seq > after).take(limit).cloned().collect();
            let upto = docs.last().map(|d| d.seq).unwrap_or(after);
            (docs, upto)
        }))
    }
    fn reconcile_digests(&self, _p: &Peer) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(youke_federation::protocol::reconcile_digests(std::iter::empty()))
    }
    fn reconcile_entries(&self, _p: &Peer, _b: &[u16]) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
    fn reconcile_apply(&self, _p: &Peer, _up: &[String], _docs: Vec<DocUpdate>) -> Result<(), StoreError> {
        Ok(())
    }
    fn reconcile_digests_of_child(&self, _c: &Peer) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(youke_federation::protocol::reconcile_digests(std::iter::empty()))
    }
    fn reconcile_resolve(&self, _c: &Peer, _b: &[u16], _e: Vec<(String, String)>) -> Result<(Vec<String>, Vec<DocUpdate>), StoreError> {
        Ok((Vec::new(), Vec::new()))
    }
    fn next_blob_upload(&self, _p: &Peer) -> Result<Option<BlobUpload>, StoreError> {
        Ok(self.with(|s| s.uploads.iter().find(|u| !s.uploaded.contains(&u.hash)).copied()))
    }
    fn blob_upload_done(&self, _p: &Peer, h: &BlobHash) -> Result<(), StoreError> {
        self.with(|s| s.uploaded.push(*h));
        Ok(())
    }
    fn blob_upload_failed(&self, _p: &Peer, _h: &BlobHash, _r: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn child_pin(&self, id: &str) -> Result<Option<Fingerprint>, StoreError> {
        Ok(self.with(|s| s.pins.get(id).copied()))
    }
    fn remember_child(&self, c: &Peer) -> Result<(), StoreError> {
        self.with(|s| {
            s.pins.entry(c.info.node_id.clone()).or_insert(c.fingerprint);
        });
        Ok(())
    }
    fn child_link_state(&self, _c: &Peer, _connected: bool) -> Result<(), StoreError> {
        Ok(())
    }
    fn apply_docs(&self, _c: &Peer, docs: Vec<DocUpdate>) -> Result<Vec<String>, StoreError> {
        self.with(|s| s.applied.extend(docs));
        Ok(Vec::new())
    }
    fn blob_received(&self, _c: &Peer, h: &BlobHash, size: u64) -> Result<(), StoreError> {
        self.with(|s| s.received.push((*h, size)));
        Ok(())
    }
}

fn info(tier: Tier, id: &str) -> NodeInfo {
    NodeInfo { protocol_version: PROTOCOL_VERSION, node_id: id.into(), name: format!("{tier}-{id}"), tier }
}

struct Parent {
    addr: SocketAddr,
    store: Arc<Mem>,
    blobs: BlobStore,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

fn start_parent(tier: Tier) -> Parent {
    let dir = tempfile::tempdir().expect("tempdir");
    let identity = NodeIdentity::generate("parent").expect("identity");
    let endpoint = bind_endpoint("127.0.0.1:0".parse().expect("addr"), &identity).expect("bind");
    let addr = endpoint.local_addr().expect("addr");
    let store = Arc::new(Mem::default());
    let blobs = BlobStore::open(dir.path()).expect("blobs");
    let cancel = CancellationToken::new();
    let acceptor = ChildAcceptor {
        endpoint,
        local: info(tier, "parent"),
        store: store.clone(),
        blobs: blobs.clone(),
        max_blob_size: 1 << 30,
        counters: Default::default(),
        transfers: Transfers::new(),
        ranges: None,
    };
    tokio::spawn(acceptor.run(cancel.clone()));
    Parent { addr, store, blobs, cancel, _dir: dir }
}

struct Child {
    blobs: BlobStore,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

fn start_child(parent: SocketAddr, local: NodeInfo, identity: &NodeIdentity, store: Arc<Mem>) -> Child {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = bind_endpoint("127.0.0.1:0".parse().expect("addr"), identity).expect("bind");
    let blobs = BlobStore::open(dir.path()).expect("blobs");
    let cancel = CancellationToken::new();
    let uplink = Uplink {
        endpoint,
        parent_addr: parent.to_string(),
        local,
        store,
        blobs: blobs.clone(),
        wake: Arc::new(Notify::new()),
        limiter: Arc::new(RateLimiter::new(RateSchedule::default(), 0)),
        counters: Default::default(),
        transfers: Transfers::new(),
        upstream: youke_federation::pull::Upstream::new(),
    };
    tokio::spawn(uplink.run(cancel.clone()));
    Child { blobs, cancel, _dir: dir }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    let stored = std::fs::read(parent.blobs.get(&hash).expect("stored")).expect("read");
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
        upstream: youke_federation::pull::Upstream::new(),
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
    let endpoint = bind_endpoint("127.0.0.1:0".parse().expect("addr"), identity).expect("bind");
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
    assert_eq!(std::fs::read(parent.blobs.get(&hash).expect("stored")).expect("read"), data);
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

