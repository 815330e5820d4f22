//! The harness of the federation's socket tests: an in-memory `LinkStore` and helpers that
//! start parents and children on 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use youke_federation::link::{ChildAcceptor, Uplink};
use youke_federation::sync::{BlobUpload, ChildStore, LinkState, ParentStore, Peer, StoreError};
use youke_federation::transport::bind_endpoint;
use youke_federation::pki::Revocations;
use youke_federation::protocol::{DocUpdate, NodeHealth, NodeInfo, PROTOCOL_VERSION};
use youke_federation::rate::{RateLimiter, RateSchedule};
use youke_federation::transfers::Transfers;
use youke_federation::{BlobHash, BlobStore, Fingerprint, NodeIdentity, Tier};

#[derive(Default)]
pub struct State {
    pub parent: Option<(String, Fingerprint)>,
    pub states: Vec<LinkState>,
    pub outgoing: Vec<DocUpdate>,
    pub acked: u64,
    pub uploads: Vec<BlobUpload>,
    pub uploaded: Vec<BlobHash>,
    pub pins: HashMap<String, Fingerprint>,
    pub applied: Vec<DocUpdate>,
    pub received: Vec<(BlobHash, u64)>,
    /// Parent side: documents for children (all in scope here).
    pub down: Vec<DocUpdate>,
    /// Child side: what came down, and the cursor.
    pub from_parent: Vec<DocUpdate>,
    pub cursor: u64,
    /// Parent side: join tokens by id, and the children enrolled with them (id, place).
    pub tokens: HashMap<String, Token>,
    pub enrolled: Vec<(String, String)>,
    /// Child side: the health it reports; parent side: the reports received, by child.
    pub health: Vec<NodeHealth>,
    pub reports: HashMap<String, Vec<NodeHealth>>,
}

pub struct Token {
    pub name: String,
    pub expired: bool,
    pub used_by: Option<String>,
}

#[derive(Default)]
pub struct Mem(pub Mutex<State>);

impl Mem {
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().expect("lock"))
    }
}

impl ChildStore for Mem {
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
    fn reconcile_digests(&self, _p: &Peer) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(youke_federation::protocol::reconcile_digests(std::iter::empty()))
    }
    fn reconcile_entries(&self, _p: &Peer, _b: &[u16]) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
    fn reconcile_apply(&self, _p: &Peer, _up: &[String], _docs: Vec<DocUpdate>) -> Result<(), StoreError> {
        Ok(())
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
    fn health_report(&self, _parent: &Peer) -> Result<Vec<NodeHealth>, StoreError> {
        Ok(self.with(|s| s.health.clone()))
    }
}

impl ParentStore for Mem {
    fn docs_for_child(&self, _c: &Peer, after: u64, _forget: &[String], limit: usize) -> Result<(Vec<DocUpdate>, u64), StoreError> {
        Ok(self.with(|s| {
            let docs: Vec<DocUpdate> = s.down.iter().filter(|d| d.seq > after).take(limit).cloned().collect();
            let upto = docs.last().map(|d| d.seq).unwrap_or(after);
            (docs, upto)
        }))
    }
    fn reconcile_digests_of_child(&self, _c: &Peer) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(youke_federation::protocol::reconcile_digests(std::iter::empty()))
    }
    fn reconcile_resolve(&self, _c: &Peer, _b: &[u16], _e: Vec<(String, String)>) -> Result<(Vec<String>, Vec<DocUpdate>), StoreError> {
        Ok((Vec::new(), Vec::new()))
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
    fn redeem_token(&self, token_id: &str, child_id: &str, place: &str) -> Result<Result<String, String>, StoreError> {
        Ok(self.with(|s| match s.tokens.get_mut(token_id) {
            None => Err("the join token is not one this node made".to_string()),
            Some(t) if t.used_by.is_some() => Err("the join token was used already".to_string()),
            Some(t) if t.expired => Err("the join token has expired".to_string()),
            Some(t) => {
                t.used_by = Some(child_id.to_string());
                s.enrolled.push((child_id.to_string(), place.to_string()));
                Ok(t.name.clone())
            }
        }))
    }
    fn child_health(&self, child: &Peer, nodes: Vec<NodeHealth>) -> Result<(), StoreError> {
        self.with(|s| s.reports.insert(child.info.node_id.clone(), nodes));
        Ok(())
    }
}

/// The last error a child's link reported, if it went down.
pub fn last_error(store: &Mem) -> Option<String> {
    store.with(|s| {
        s.states.iter().rev().find_map(|st| match st {
            LinkState::Down { error } => Some(error.clone()),
            _ => None,
        })
    })
}

pub fn info(tier: Tier, id: &str) -> NodeInfo {
    NodeInfo { protocol_version: PROTOCOL_VERSION, node_id: id.into(), name: format!("{tier}-{id}"), tier }
}

pub struct Parent {
    pub addr: SocketAddr,
    pub store: Arc<Mem>,
    pub blobs: BlobStore,
    pub cancel: CancellationToken,
    pub revocations: Arc<Revocations>,
    pub _dir: tempfile::TempDir,
}

pub fn start_parent(tier: Tier) -> Parent {
    start_parent_as(info(tier, "parent"), NodeIdentity::generate("parent").expect("identity"))
}

/// A parent with this hello and identity (pinned or enrolled).
pub fn start_parent_as(local: NodeInfo, identity: NodeIdentity) -> Parent {
    let dir = tempfile::tempdir().expect("tempdir");
    let revocations = Revocations::new();
    let endpoint = bind_endpoint("127.0.0.1:0".parse().expect("addr"), &identity, Default::default()).expect("bind");
    let addr = endpoint.local_addr().expect("addr");
    let store = Arc::new(Mem::default());
    let blobs = BlobStore::open(dir.path()).expect("blobs");
    let cancel = CancellationToken::new();
    let acceptor = ChildAcceptor {
        endpoint,
        local,
        store: store.clone(),
        blobs: blobs.clone(),
        max_blob_size: 1 << 30,
        counters: Default::default(),
        transfers: Transfers::new(),
        ranges: None,
        trust: identity.trust.clone(),
        revocations: revocations.clone(),
    };
    tokio::spawn(acceptor.run(cancel.clone()));
    Parent { addr, store, blobs, cancel, revocations, _dir: dir }
}

pub struct Child {
    pub blobs: BlobStore,
    pub cancel: CancellationToken,
    pub revocations: Arc<Revocations>,
    pub _dir: tempfile::TempDir,
}

pub fn start_child(parent: SocketAddr, local: NodeInfo, identity: &NodeIdentity, store: Arc<Mem>) -> Child {
    let revocations = Revocations::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = bind_endpoint("127.0.0.1:0".parse().expect("addr"), identity, Default::default()).expect("bind");
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
        upstream: youke_federation::pull_through::Upstream::new(),
        trust: identity.trust.clone(),
        revocations: revocations.clone(),
    };
    tokio::spawn(uplink.run(cancel.clone()));
    Child { blobs, cancel, revocations, _dir: dir }
}

pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}


/// Everything logged by the nodes of this test process, to check that refusals say why.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("youke_federation=info")
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn logged_eventually(what: &str, needles: &[&str]) {
    eventually(what, || {
        let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
        text.lines().any(|l| needles.iter().all(|n| l.contains(n)))
    })
    .await;
}

