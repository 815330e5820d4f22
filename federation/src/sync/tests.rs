//! Both engines driven against each other in memory, with virtual time and no sockets: a child
//! store and a parent store that model what the node's database does (change sequences,
//! acknowledged cursors, versions applied only on top of the version they were made after,
//! documents needed whole), and a network between them that loses, repeats and reorders.

use super::child::{self, ChildSession, Failure, Lane, Output};
use super::parent::{self, Step};
use super::{BlobUpload, ChildStore, LinkState, ParentStore, Peer, StoreError};
use crate::hash::BlobHash;
use crate::identity::Fingerprint;
use crate::protocol::{self, DocUpdate, ErrorCode, Message, NodeHealth, NodeInfo};
use crate::tier::Tier;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A document version in the model: changes are sent as `from->to`, applied only on `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Doc {
    version: u64,
    seq: u64,
}

fn update(id: &str, from: Option<u64>, doc: &Doc) -> DocUpdate {
    let full = from.is_none();
    let bytes = match from {
        Some(f) => format!("{f}->{}", doc.version),
        None => format!("full {}", doc.version),
    };
    DocUpdate { id: id.into(), kind: "lesson".into(), seq: doc.seq, version: doc.version.to_string(), full, bytes: bytes.into_bytes() }
}

/// Applies an update to `docs`: a whole document always, changes only on the version they
/// were made after (or when already as new). Returns whether it applied.
fn apply(docs: &mut BTreeMap<String, Doc>, d: &DocUpdate, seq: &mut u64) -> bool {
    let text = String::from_utf8_lossy(&d.bytes).into_owned();
    let to = d.version.parse::<u64>().unwrap_or(0);
    let have = docs.get(&d.id).map(|x| x.version);
    let ok = if d.full {
        true
    } else {
        let from = text.split("->").next().and_then(|f| f.parse::<u64>().ok());
        have == from || have.is_some_and(|h| h >= to)
    };
    if ok && have.is_none_or(|h| h < to) {
        *seq += 1;
        docs.insert(d.id.clone(), Doc { version: to, seq: *seq });
    }
    ok
}

fn entries<'a>(docs: impl Iterator<Item = (&'a String, &'a Doc)>) -> Vec<(String, String)> {
    docs.map(|(id, d)| (id.clone(), d.version.to_string())).collect()
}

#[derive(Debug, Default)]
struct ChildState {
    /// Documents of this node's own (shared up) and those that came down.
    own: BTreeMap<String, Doc>,
    down: BTreeMap<String, Doc>,
    seq: u64,
    acked: u64,
    /// The version the parent confirmed holding, per own document.
    confirmed: BTreeMap<String, u64>,
    /// Sent and not yet acknowledged: id → version.
    in_flight: BTreeMap<String, u64>,
    resend_whole: BTreeSet<String>,
    cursor: u64,
    blobs: VecDeque<BlobUpload>,
    blobs_done: BTreeSet<BlobHash>,
    blob_failures: usize,
    link: Vec<String>,
}

#[derive(Debug, Default)]
struct MemChild(Mutex<ChildState>);

impl MemChild {
    fn edit(&self, id: &str) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.seq += 1;
        let seq = s.seq;
        let version = s.own.get(id).map_or(1, |d| d.version + 1);
        s.own.insert(id.into(), Doc { version, seq });
    }

    fn state<T>(&self, f: impl FnOnce(&mut ChildState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

type R<T> = Result<T, StoreError>;

impl ChildStore for MemChild {
    fn known_parent(&self) -> R<Option<(String, Fingerprint)>> {
        Ok(None)
    }
    fn remember_parent(&self, _: &Peer) -> R<()> {
        Ok(())
    }
    fn set_link_state(&self, _: &str, state: &LinkState) -> R<()> {
        self.state(|s| s.link.push(format!("{state:?}")));
        Ok(())
    }
    fn docs_to_send(&self, _: &Peer, limit: usize) -> R<(Vec<DocUpdate>, u64)> {
        self.state(|s| {
            let mut due: Vec<(&String, &Doc)> = s.own.iter().filter(|(id, d)| d.seq > s.acked || s.resend_whole.contains(*id)).collect();
            due.sort_by_key(|(_, d)| d.seq);
            due.truncate(limit);
            let upto = if due.len() < limit { s.seq } else { due.last().map_or(s.acked, |(_, d)| d.seq) };
            let docs: Vec<DocUpdate> = due
                .iter()
                .map(|(id, d)| {
                    let from = if s.resend_whole.contains(*id) { None } else { s.confirmed.get(*id).copied() };
                    update(id, from, d)
                })
                .collect();
            let sent: Vec<(String, u64)> = due.iter().map(|(id, d)| ((*id).clone(), d.version)).collect();
            s.in_flight.extend(sent);
            Ok((docs, upto.max(s.acked)))
        })
    }
    fn docs_acked(&self, _: &Peer, upto_seq: u64, need_full: &[(String, u64)]) -> R<()> {
        self.state(|s| {
            let flight = std::mem::take(&mut s.in_flight);
            for (id, version) in flight {
                if need_full.iter().any(|(n, _)| *n == id) {
                    s.resend_whole.insert(id);
                } else {
                    s.resend_whole.remove(&id);
                    let v = s.confirmed.entry(id).or_insert(0);
                    *v = (*v).max(version);
                }
            }
            s.acked = s.acked.max(upto_seq);
        });
        Ok(())
    }
    fn pull_cursor(&self, _: &Peer) -> R<u64> {
        Ok(self.state(|s| s.cursor))
    }
    fn apply_from_parent(&self, _: &Peer, docs: Vec<DocUpdate>, upto_seq: u64) -> R<Vec<String>> {
        self.state(|s| {
            let mut need = Vec::new();
            let mut seq = s.seq;
            for d in &docs {
                if !apply(&mut s.down, d, &mut seq) {
                    need.push(d.id.clone());
                }
            }
            s.seq = seq;
            // The cursor stays before the first document that could not be applied.
            let stop = docs.iter().filter(|d| need.contains(&d.id)).map(|d| d.seq).min();
            s.cursor = s.cursor.max(stop.map_or(upto_seq, |x| x.saturating_sub(1)));
            Ok(need)
        })
    }
    fn reconcile_digests(&self, _: &Peer) -> R<Vec<[u8; 32]>> {
        Ok(self.state(|s| {
            let e = entries(s.own.iter());
            protocol::reconcile_digests(e.iter().map(|(a, b)| (a.as_str(), b.as_str())))
        }))
    }
    fn reconcile_entries(&self, _: &Peer, buckets: &[u16]) -> R<Vec<(String, String)>> {
        Ok(self.state(|s| entries(s.own.iter()).into_iter().filter(|(id, _)| buckets.contains(&protocol::reconcile_bucket(id))).collect()))
    }
    fn reconcile_apply(&self, _: &Peer, send_up: &[String], docs: Vec<DocUpdate>) -> R<()> {
        self.state(|s| {
            s.resend_whole.extend(send_up.iter().cloned());
            let mut seq = s.seq;
            for d in &docs {
                apply(&mut s.own, d, &mut seq);
            }
            s.seq = seq;
        });
        Ok(())
    }
    fn next_blob_upload(&self, _: &Peer) -> R<Option<BlobUpload>> {
        Ok(self.state(|s| s.blobs.front().copied()))
    }
    fn blob_upload_done(&self, _: &Peer, hash: &BlobHash) -> R<()> {
        self.state(|s| {
            s.blobs.retain(|b| b.hash != *hash);
            s.blobs_done.insert(*hash);
        });
        Ok(())
    }
    fn blob_upload_failed(&self, _: &Peer, hash: &BlobHash, _: &str) -> R<()> {
        // Retried later: to the back of the queue.
        self.state(|s| {
            s.blob_failures += 1;
            if let Some(i) = s.blobs.iter().position(|b| b.hash == *hash)
                && let Some(b) = s.blobs.remove(i)
            {
                s.blobs.push_back(b);
            }
        });
        Ok(())
    }
    fn health_report(&self, _: &Peer) -> R<Vec<NodeHealth>> {
        Ok(Vec::new())
    }
}

#[derive(Debug, Default)]
struct ParentState {
    /// Documents that came from the child, and the parent's own (sent down).
    from_child: BTreeMap<String, Doc>,
    own: BTreeMap<String, Doc>,
    seq: u64,
    blobs: BTreeMap<BlobHash, (u64, bool)>,
    pushes: usize,
    health_reports: usize,
}

#[derive(Debug, Default)]
struct MemParent(Mutex<ParentState>);

impl MemParent {
    fn state<T>(&self, f: impl FnOnce(&mut ParentState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn publish(&self, id: &str) {
        self.state(|s| {
            s.seq += 1;
            let seq = s.seq;
            let version = s.own.get(id).map_or(1, |d| d.version + 1);
            s.own.insert(id.into(), Doc { version, seq });
        });
    }
}

impl ParentStore for MemParent {
    fn child_pin(&self, _: &str) -> R<Option<Fingerprint>> {
        Ok(None)
    }
    fn remember_child(&self, _: &Peer) -> R<()> {
        Ok(())
    }
    fn child_link_state(&self, _: &Peer, _: bool) -> R<()> {
        Ok(())
    }
    fn docs_for_child(&self, _: &Peer, after_seq: u64, forget: &[String], limit: usize) -> R<(Vec<DocUpdate>, u64)> {
        Ok(self.state(|s| {
            let mut due: Vec<DocUpdate> = s.own.iter().filter(|(id, d)| d.seq > after_seq || forget.contains(*id)).map(|(id, d)| update(id, None, d)).collect();
            due.sort_by_key(|d| d.seq);
            due.truncate(limit);
            let upto = if due.len() < limit { s.seq } else { due.last().map_or(after_seq, |d| d.seq) };
            (due, upto.max(after_seq))
        }))
    }
    fn reconcile_digests_of_child(&self, _: &Peer) -> R<Vec<[u8; 32]>> {
        Ok(self.state(|s| {
            let e = entries(s.from_child.iter());
            protocol::reconcile_digests(e.iter().map(|(a, b)| (a.as_str(), b.as_str())))
        }))
    }
    fn reconcile_resolve(&self, _: &Peer, buckets: &[u16], theirs: Vec<(String, String)>) -> R<(Vec<String>, Vec<DocUpdate>)> {
        Ok(self.state(|s| {
            let mine: BTreeMap<String, u64> = s.from_child.iter().filter(|(id, _)| buckets.contains(&protocol::reconcile_bucket(id))).map(|(id, d)| (id.clone(), d.version)).collect();
            let theirs: BTreeMap<String, u64> = theirs.into_iter().map(|(id, v)| (id, v.parse().unwrap_or(0))).collect();
            let send_up = theirs.iter().filter(|(id, v)| mine.get(*id).is_none_or(|m| m < v)).map(|(id, _)| id.clone()).collect();
            let docs = mine.iter().filter(|(id, v)| theirs.get(*id).is_none_or(|t| t < v)).map(|(id, v)| update(id, None, &Doc { version: *v, seq: 0 })).collect();
            (send_up, docs)
        }))
    }
    fn apply_docs(&self, _: &Peer, docs: Vec<DocUpdate>) -> R<Vec<String>> {
        Ok(self.state(|s| {
            s.pushes += 1;
            let mut seq = s.seq;
            let need = docs.iter().filter(|d| !apply(&mut s.from_child, d, &mut seq)).map(|d| d.id.clone()).collect();
            s.seq = seq;
            need
        }))
    }
    fn blob_received(&self, _: &Peer, hash: &BlobHash, size: u64) -> R<()> {
        self.state(|s| s.blobs.insert(*hash, (size, true)));
        Ok(())
    }
    fn redeem_token(&self, _: &str, _: &str, _: &str) -> R<Result<String, String>> {
        Ok(Err("not in this test".into()))
    }
    fn child_health(&self, _: &Peer, _: Vec<NodeHealth>) -> R<()> {
        self.state(|s| s.health_reports += 1);
        Ok(())
    }
}

fn peer(tier: Tier) -> Peer {
    Peer {
        info: NodeInfo { protocol_version: protocol::PROTOCOL_VERSION, node_id: format!("{tier}-node"), name: format!("{tier}"), tier },
        fingerprint: Fingerprint([7; 32]),
        addr: "127.0.0.1:4433".parse().unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 4433))),
    }
}

/// A seeded generator for the faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.next() % 1000 < per_thousand
    }
}

/// What happens to the messages between the two.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    /// Per thousand requests: the answer is lost (the stream breaks), after the parent acted.
    lose_answer: u64,
    /// Per thousand requests: the parent receives the request twice.
    repeat_request: u64,
    /// Per thousand blob offers: the parent is still busy with the blob.
    busy: u64,
    /// Completed operations are handed back in a random order, not the order they were made.
    reorder: bool,
}

/// One operation's result, waiting to be handed to the engine.
enum Event {
    Reply(Lane, Result<child::Reply, String>),
    Answer(Lane, Message),
    Failed(Lane, Failure),
}

struct World {
    child: MemChild,
    parent: MemParent,
    now: Instant,
    sessions: usize,
    rng: Rng,
}

impl World {
    fn new(seed: u64) -> World {
        World { child: MemChild::default(), parent: MemParent::default(), now: Instant::now(), sessions: 0, rng: Rng(seed | 1) }
    }

    /// Carries out one output of the child's engine.
    fn perform(&mut self, out: Output, faults: Faults, pending: &mut VecDeque<Event>) -> Option<String> {
        let (to_parent, from_child) = (peer(Tier::City), peer(Tier::School));
        match out {
            Output::Close(why) => return Some(why),
            Output::Query(lane, q) => pending.push_back(Event::Reply(lane, child::execute(&self.child, &to_parent, q).map_err(|e| e.to_string()))),
            Output::Request(lane, m) => {
                let mut answer = None;
                for _ in 0..if self.rng.chance(faults.repeat_request) { 2 } else { 1 } {
                    answer = Some(match parent::on_request(m.clone()) {
                        Step::Query(q) => parent::execute(&self.parent, &from_child, q),
                        Step::Answer(a) => a,
                        other => panic!("a blob step for {m:?}: {other:?}"),
                    });
                }
                let answer = answer.unwrap_or(Message::HealthAck);
                if self.rng.chance(faults.lose_answer) {
                    pending.push_back(Event::Failed(lane, Failure::Transport("the stream broke".into())));
                } else if let Message::Error { code, message } = answer {
                    pending.push_back(Event::Failed(lane, Failure::Remote { code, message }));
                } else {
                    pending.push_back(Event::Answer(lane, answer));
                }
            }
            Output::OfferBlob(u) => {
                if self.rng.chance(faults.busy) {
                    pending.push_back(Event::Failed(Lane::Blobs, Failure::Remote { code: ErrorCode::Busy, message: "busy".into() }));
                } else {
                    let (have, complete) = self.parent.state(|s| s.blobs.get(&u.hash).copied().unwrap_or((0, false)));
                    pending.push_back(Event::Answer(Lane::Blobs, Message::BlobState { have, complete }));
                }
            }
            Output::StreamBlob { upload, from } => {
                assert!(from <= upload.size);
                if self.rng.chance(faults.lose_answer) {
                    // Cut off half way: the parent keeps what arrived (whole chunks only).
                    pending.push_back(Event::Failed(Lane::Blobs, Failure::Transport("cut off".into())));
                } else {
                    let _ = self.parent.blob_received(&from_child, &upload.hash, upload.size);
                    pending.push_back(Event::Answer(Lane::Blobs, Message::BlobStored { hash: upload.hash }));
                }
            }
        }
        None
    }

    /// Runs sessions (a new one after each that ends) for `budget` of virtual time.
    fn run(&mut self, budget: Duration, faults: Faults) {
        let end = self.now + budget;
        while self.now < end {
            self.sessions += 1;
            let mut s = ChildSession::new(self.now);
            let mut pending: VecDeque<Event> = VecDeque::new();
            let closed = loop {
                let mut closed = None;
                while let Some(out) = s.poll_output() {
                    if let Some(why) = self.perform(out, faults, &mut pending) {
                        closed = Some(why);
                    }
                }
                if closed.is_some() {
                    break closed;
                }
                if pending.is_empty() {
                    // Nothing in flight: time passes to the next deadline.
                    let Some(t) = s.poll_timeout() else { break None };
                    if t >= end {
                        self.now = end;
                        break None;
                    }
                    self.now = self.now.max(t);
                    s.handle_timeout(self.now);
                    continue;
                }
                let i = if faults.reorder { (self.rng.next() % pending.len() as u64) as usize } else { 0 };
                let Some(ev) = pending.remove(i) else { continue };
                self.now += Duration::from_millis(1);
                match ev {
                    Event::Reply(lane, r) => s.handle_reply(lane, r, self.now),
                    Event::Answer(lane, m) => s.handle_answer(lane, m, self.now),
                    Event::Failed(lane, f) => s.handle_failure(lane, f, self.now),
                }
            };
            if closed.is_some() {
                assert!(s.is_closed());
                // The driver waits before it reconnects.
                self.now += Duration::from_secs(1);
            }
        }
    }

    /// The child's documents as the parent holds them, and the parent's as the child does.
    fn converged(&self) -> bool {
        let up = self.child.state(|c| c.own.iter().map(|(id, d)| (id.clone(), d.version)).collect::<BTreeMap<_, _>>());
        let at_parent = self.parent.state(|p| p.from_child.iter().map(|(id, d)| (id.clone(), d.version)).collect::<BTreeMap<_, _>>());
        let down = self.parent.state(|p| p.own.iter().map(|(id, d)| (id.clone(), d.version)).collect::<BTreeMap<_, _>>());
        let at_child = self.child.state(|c| c.down.iter().map(|(id, d)| (id.clone(), d.version)).collect::<BTreeMap<_, _>>());
        up == at_parent && down == at_child && self.child.state(|c| c.blobs.is_empty())
    }
}

fn blob(n: u8, size: u64) -> BlobUpload {
    BlobUpload { hash: BlobHash([n; 32]), size }
}

#[test]
fn documents_go_up_and_down_and_blobs_up_in_one_session() {
    let mut w = World::new(1);
    for i in 0..600 {
        w.child.edit(&format!("lesson-{i:04}"));
    }
    for i in 0..40 {
        w.parent.publish(&format!("collection-{i}"));
    }
    w.child.state(|c| c.blobs.extend([blob(1, 3 << 20), blob(2, 10)]));
    w.run(Duration::from_secs(10), Faults::default());
    assert!(w.converged());
    assert_eq!(w.sessions, 1, "no session ended");
    // 600 documents in batches of at most 256: three pushes.
    assert_eq!(w.parent.state(|p| p.pushes), 3);
    assert!(w.parent.state(|p| p.health_reports) >= 2, "health at link-up and every 5 s");
    assert!(w.child.state(|c| c.acked == c.seq), "acknowledged up to the last change (the 40 that came down took sequence numbers too)");
    // Later edits go up as changes, not whole documents, and are acknowledged.
    w.child.edit("lesson-0007");
    w.run(Duration::from_secs(2), Faults::default());
    assert!(w.converged());
    assert_eq!(w.child.state(|c| c.confirmed.get("lesson-0007").copied()), Some(2));
}

#[test]
fn lost_repeated_and_reordered_messages_still_converge() {
    for seed in 1..=20u64 {
        let mut w = World::new(seed);
        let faults = Faults { lose_answer: 80, repeat_request: 100, busy: 150, reorder: true };
        for round in 0..5 {
            for i in 0..50 {
                w.child.edit(&format!("lesson-{}", (i * 7 + round * 13) % 90));
            }
            for i in 0..5 {
                w.parent.publish(&format!("notice-{}", (i + round) % 8));
            }
            w.child.state(|c| c.blobs.push_back(blob(round as u8 + 1, (round as u64 + 1) << 20)));
            w.run(Duration::from_secs(30), faults);
        }
        // The faults stop; within a minute everything is in step.
        w.run(Duration::from_secs(60), Faults::default());
        assert!(w.converged(), "seed {seed}: not converged after {} sessions", w.sessions);
        assert!(w.sessions > 1, "seed {seed}: the faults should have ended some sessions");
        assert_eq!(w.child.state(|c| c.blobs_done.len()), 5, "seed {seed}");
    }
}

#[test]
fn a_change_the_parent_cannot_apply_is_sent_again_whole() {
    let mut w = World::new(3);
    w.child.edit("lesson-a");
    w.run(Duration::from_secs(2), Faults::default());
    // The parent loses its copy (restored from an old backup): the next change, made after
    // version 1, cannot apply; the parent asks for the whole document and gets it.
    w.parent.state(|p| p.from_child.clear());
    w.child.edit("lesson-a");
    w.run(Duration::from_secs(2), Faults::default());
    assert!(w.converged());
    assert_eq!(w.parent.state(|p| p.from_child.get("lesson-a").map(|d| d.version)), Some(2));
}

#[test]
fn anti_entropy_repairs_drift_no_new_change_would() {
    let mut w = World::new(4);
    for i in 0..30 {
        w.child.edit(&format!("lesson-{i}"));
    }
    w.run(Duration::from_secs(5), Faults::default());
    assert!(w.converged());
    // Drift: the parent loses documents while both believe they are in step.
    w.parent.state(|p| {
        p.from_child.remove("lesson-3");
        p.from_child.remove("lesson-17");
    });
    assert!(!w.converged());
    // Nothing changes; the first anti-entropy pass (20 s after link-up) repairs it.
    w.run(Duration::from_secs(30), Faults::default());
    assert!(w.converged());
}

#[test]
fn a_busy_parent_and_a_failed_blob_are_retried_and_a_broken_answer_ends_the_session() {
    let now = Instant::now();
    let mut s = ChildSession::new(now);
    let outs: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    assert_eq!(outs.len(), 4, "documents up and down, health and blobs start at once: {outs:?}");
    let u = blob(9, 5);
    s.handle_reply(Lane::Blobs, Ok(child::Reply::Blob(Some(u))), now);
    assert_eq!(s.poll_output(), Some(Output::OfferBlob(u)));
    s.handle_failure(Lane::Blobs, Failure::Remote { code: ErrorCode::Busy, message: "busy".into() }, now);
    assert_eq!(s.poll_output(), None, "busy: wait, do not record a failure");
    s.handle_wake();
    assert_eq!(s.poll_output(), None, "a busy wait is not cut short by local changes");
    s.handle_timeout(now + child::BUSY_RETRY);
    assert_eq!(s.poll_output(), Some(Output::Query(Lane::Blobs, child::Query::NextBlobUpload)));
    s.handle_reply(Lane::Blobs, Ok(child::Reply::Blob(Some(u))), now);
    let _ = s.poll_output();
    s.handle_failure(Lane::Blobs, Failure::Local("the blob is gone".into()), now);
    assert!(matches!(s.poll_output(), Some(Output::Query(Lane::Blobs, child::Query::BlobUploadFailed { .. }))));
    // A parent answering a push with the wrong acknowledgement breaks the protocol.
    s.handle_reply(Lane::PushDocs, Ok(child::Reply::Docs(vec![update("x", None, &Doc { version: 1, seq: 1 })], 1)), now);
    assert!(matches!(s.poll_output(), Some(Output::Request(Lane::PushDocs, Message::PushDocs { .. }))));
    s.handle_answer(Lane::PushDocs, Message::DocsAck { upto_seq: 99, need_full: vec![] }, now);
    assert!(matches!(s.poll_output(), Some(Output::Close(why)) if why.contains("expected ack of 1")));
    assert!(s.is_closed() && s.poll_timeout().is_none());
    // Anti-entropy failures only postpone the next pass.
    let mut s = ChildSession::new(now);
    while s.poll_output().is_some() {}
    s.handle_timeout(now + child::RECONCILE_FIRST);
    assert_eq!(s.poll_output(), Some(Output::Query(Lane::Reconcile, child::Query::ReconcileDigests)));
    s.handle_reply(Lane::Reconcile, Err("disk on fire".into()), now);
    assert!(!s.is_closed());
    assert!(s.poll_timeout().is_some_and(|t| t >= now + child::HEALTH_INTERVAL.min(child::RECONCILE_INTERVAL)));
}

#[test]
fn a_failing_store_is_asked_again_later_and_the_session_stays_up() {
    let now = Instant::now();
    let mut s = ChildSession::new(now);
    let mut first = Vec::new();
    while let Some(o) = s.poll_output() {
        first.push(o);
    }
    assert!(first.contains(&Output::Query(Lane::PullDocs, child::Query::PullCursor)));
    // The database is locked by another process beyond its busy timeout, three times in a row.
    let mut at = now;
    let mut waits = Vec::new();
    for _ in 0..3 {
        s.handle_store_busy(Lane::PullDocs, at);
        assert!(!s.is_closed(), "a busy store does not end the session");
        assert_eq!(s.poll_output(), None, "nothing is asked until the wait is over");
        let due = s.poll_timeout().expect("a retry is due");
        waits.push(due - at);
        s.handle_timeout(due);
        assert_eq!(s.poll_output(), Some(Output::Query(Lane::PullDocs, child::Query::PullCursor)), "the same query, again");
        at = due;
    }
    assert!(waits[0] >= child::STORE_RETRY && waits[1] > waits[0] && waits[2] > waits[1], "backing off: {waits:?}");
    // Once it answers, the lane goes on, and the backoff starts over.
    s.handle_reply(Lane::PullDocs, Ok(child::Reply::Seq(0)), at);
    assert!(matches!(s.poll_output(), Some(Output::Request(Lane::PullDocs, Message::PullDocs { after_seq: 0, .. }))));
    s.handle_store_busy(Lane::Health, at);
    assert_eq!(s.poll_timeout().map(|t| t - at), Some(child::STORE_RETRY));
    // A busy store refusing a batch of documents from the parent: the pull starts over from
    // its cursor (the documents are not kept in the engine to be replayed).
    let mut p = ChildSession::new(at);
    while p.poll_output().is_some() {}
    p.handle_reply(Lane::PullDocs, Ok(child::Reply::Seq(0)), at);
    let _ = p.poll_output();
    p.handle_answer(Lane::PullDocs, Message::Docs { docs: vec![update("c", None, &Doc { version: 1, seq: 1 })], upto_seq: 1 }, at);
    assert!(matches!(p.poll_output(), Some(Output::Query(Lane::PullDocs, child::Query::ApplyFromParent { .. }))));
    p.handle_store_busy(Lane::PullDocs, at);
    assert!(!p.is_closed());
    let due = p.poll_timeout().expect("a retry is due");
    p.handle_timeout(due);
    assert_eq!(p.poll_output(), Some(Output::Query(Lane::PullDocs, child::Query::PullCursor)), "from the cursor again");
    // Any other store failure still ends the session, as it always did.
    s.handle_reply(Lane::PushDocs, Err("disk on fire".into()), at);
    assert!(s.is_closed());
}

#[test]
fn the_parent_answers_each_request_from_its_store() {
    let store = MemParent::default();
    store.publish("notice-1");
    let child = peer(Tier::School);
    let ask = |m: Message| match parent::on_request(m) {
        Step::Query(q) => parent::execute(&store, &child, q),
        Step::Answer(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(ask(Message::PullDocs { after_seq: 0, forget: vec![] }), Message::Docs { docs: vec![update("notice-1", None, &Doc { version: 1, seq: 1 })], upto_seq: 1 });
    assert!(matches!(ask(Message::PushDocs { docs: vec![update("l", Some(3), &Doc { version: 4, seq: 9 })], upto_seq: 9 }), Message::DocsAck { upto_seq: 9, need_full } if need_full == ["l"]));
    assert_eq!(ask(Message::Health { nodes: vec![] }), Message::HealthAck);
    assert!(matches!(ask(Message::Welcome(child.info.clone())), Message::Error { code: ErrorCode::BadRequest, .. }));
    assert!(matches!(parent::on_request(Message::BlobFetch { hash: BlobHash([1; 32]), offset: 0, len: 5, manifest: true }), Step::ServeRange { len: 5, manifest: true, .. }));
}
