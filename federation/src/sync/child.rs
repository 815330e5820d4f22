//! The child's side of a sync session, as a state machine without I/O.
//!
//! A session runs five lanes side by side, each with at most one thing outstanding:
//!
//! - documents up: ask the store for what the parent lacks, send it in batches the frame limit
//!   allows, record the parent's acknowledgement (and the documents it needs whole);
//! - documents down: read the cursor, ask the parent for what changed after it, apply;
//! - anti-entropy: soon after link-up and then every 10 minutes, compare digests of what this
//!   node shares up with the parent's, and repair the buckets that differ;
//! - health: report this node's subtree to the parent every 5 s;
//! - blobs up: offer the next blob, send it from where the parent stands, record the outcome.
//!
//! Inputs come through `handle_*` (store replies, the parent's answers, failures, wake-ups and
//! the time, always passed in); what to do next comes out of [`ChildSession::poll_output`], and
//! when to call [`ChildSession::handle_timeout`] out of [`ChildSession::poll_timeout`].

use super::{BlobUpload, ChildStore, Peer, StoreError};
use crate::manifest::CHUNK;
use crate::protocol::{self, DocUpdate, ErrorCode, Message, NodeHealth};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Documents asked from the store per batch (the batch is also cut by bytes).
pub const DOCS_PER_BATCH: usize = 256;
/// How often an idle lane looks for new work when nothing woke it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// When the first anti-entropy pass runs after link-up: once the changes made while the link
/// was down have gone both ways, so they are not mistaken for drift.
pub const RECONCILE_FIRST: Duration = Duration::from_secs(20);
/// How often anti-entropy runs on a link after the first pass.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(600);
/// How often a child reports its subtree's health to its parent (and once at link-up).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Buckets compared per anti-entropy request, so entry lists stay well below the frame limit.
pub const RECONCILE_BUCKETS_PER_REQUEST: usize = 4;
/// How soon to offer a blob again that the parent is still receiving on a dead link.
pub const BUSY_RETRY: Duration = Duration::from_millis(300);
/// The first wait before asking the store again after it failed (busy beyond its timeout,
/// locked by another process); it doubles up to [`STORE_RETRY_MAX`]. The link stays up: a
/// new link would not make the local store answer sooner.
pub const STORE_RETRY: Duration = Duration::from_millis(500);
pub const STORE_RETRY_MAX: Duration = Duration::from_secs(30);

/// The lanes of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    PushDocs,
    PullDocs,
    Reconcile,
    Health,
    Blobs,
}

impl Lane {
    pub const ALL: [Lane; 5] = [Lane::PushDocs, Lane::PullDocs, Lane::Reconcile, Lane::Health, Lane::Blobs];
}

fn lane_index(lane: Lane) -> usize {
    Lane::ALL.iter().position(|l| *l == lane).unwrap_or(0)
}

/// What the engine asks of the child's store.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    DocsToSend { limit: usize },
    DocsAcked { upto_seq: u64, need_full: Vec<(String, u64)> },
    PullCursor,
    ApplyFromParent { docs: Vec<DocUpdate>, upto_seq: u64 },
    ReconcileDigests,
    ReconcileEntries { buckets: Vec<u16> },
    ReconcileApply { send_up: Vec<String>, docs: Vec<DocUpdate> },
    HealthReport,
    NextBlobUpload,
    BlobUploadDone { upload: BlobUpload },
    BlobUploadFailed { upload: BlobUpload, reason: String },
}

/// The store's answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Done,
    Docs(Vec<DocUpdate>, u64),
    Seq(u64),
    /// Documents that could not be applied and are needed whole.
    NeedFull(Vec<String>),
    Digests(Vec<[u8; 32]>),
    Entries(Vec<(String, String)>),
    Health(Vec<NodeHealth>),
    Blob(Option<BlobUpload>),
}

/// Runs a query against the store (blocking: the driver calls it on a blocking thread).
pub fn execute(store: &dyn ChildStore, parent: &Peer, query: Query) -> Result<Reply, StoreError> {
    Ok(match query {
        Query::DocsToSend { limit } => {
            let (docs, upto) = store.docs_to_send(parent, limit)?;
            Reply::Docs(docs, upto)
        }
        Query::DocsAcked { upto_seq, need_full } => {
            store.docs_acked(parent, upto_seq, &need_full)?;
            Reply::Done
        }
        Query::PullCursor => Reply::Seq(store.pull_cursor(parent)?),
        Query::ApplyFromParent { docs, upto_seq } => Reply::NeedFull(store.apply_from_parent(parent, docs, upto_seq)?),
        Query::ReconcileDigests => Reply::Digests(store.reconcile_digests(parent)?),
        Query::ReconcileEntries { buckets } => Reply::Entries(store.reconcile_entries(parent, &buckets)?),
        Query::ReconcileApply { send_up, docs } => {
            store.reconcile_apply(parent, &send_up, docs)?;
            Reply::Done
        }
        Query::HealthReport => Reply::Health(store.health_report(parent)?),
        Query::NextBlobUpload => Reply::Blob(store.next_blob_upload(parent)?),
        Query::BlobUploadDone { upload } => {
            store.blob_upload_done(parent, &upload.hash)?;
            Reply::Done
        }
        Query::BlobUploadFailed { upload, reason } => {
            store.blob_upload_failed(parent, &upload.hash, &reason)?;
            Reply::Done
        }
    })
}

/// What the driver is to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Run this query against the store; feed the result to [`ChildSession::handle_reply`].
    Query(Lane, Query),
    /// Send this request on a new stream and feed its answer to [`ChildSession::handle_answer`]
    /// (or what went wrong to [`ChildSession::handle_failure`]).
    Request(Lane, Message),
    /// Offer this blob to the parent on a new stream (with its manifest) and keep the stream;
    /// feed the parent's answer ([`Message::BlobState`]) to `handle_answer(Lane::Blobs, …)`.
    OfferBlob(BlobUpload),
    /// Send the offered blob's bytes from `from` on the offer's stream, finish it and feed the
    /// parent's last answer to `handle_answer(Lane::Blobs, …)`.
    StreamBlob { upload: BlobUpload, from: u64 },
    /// The session cannot go on; the driver ends it (and reconnects later). The reason says why.
    Close(String),
}

/// What went wrong with a request, as the engine needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection or the stream broke, or the time ran out: the session ends.
    Transport(String),
    /// The parent answered with an error.
    Remote { code: ErrorCode, message: String },
    /// This node could not do its part (read a blob, its manifest).
    Local(String),
    /// Anything else (a time limit, a broken answer): the session ends, but for anti-entropy,
    /// which tries again later.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(m) | Failure::Local(m) | Failure::Other(m) => f.write_str(m),
            Failure::Remote { code, message } => write!(f, "the other node reports: {message} ({code:?})"),
        }
    }
}

#[derive(Debug)]
enum Push {
    Waiting { until: Instant },
    Asking,
    Sending { upto: u64, seqs: Vec<(String, u64)> },
    /// Recording an acknowledgement; `then_wait` when there was nothing to send.
    Acking { then_wait: bool },
}

#[derive(Debug)]
enum Pull {
    Waiting { until: Instant },
    Cursor,
    Asking { after_seq: u64 },
    Applying { count: usize },
}

#[derive(Debug)]
enum Reconcile {
    Waiting { until: Instant },
    Digests,
    Buckets,
    Entries { chunk: Vec<u16>, rest: Vec<u16> },
    Repair { rest: Vec<u16> },
    Applying { rest: Vec<u16> },
}

#[derive(Debug)]
enum Health {
    Waiting { until: Instant },
    Asking,
    Sending,
}

#[derive(Debug)]
enum Blobs {
    Waiting { until: Instant, wakeable: bool },
    Asking,
    Offering(BlobUpload),
    Streaming(BlobUpload),
    Recording(BlobUpload),
    Failing,
}

/// The child's side of one session with its parent.
#[derive(Debug)]
pub struct ChildSession {
    out: VecDeque<Output>,
    push: Push,
    pull: Pull,
    reconcile: Reconcile,
    repaired: usize,
    health: Health,
    blobs: Blobs,
    /// Ids to ask the parent to send whole at the next pull.
    forget: Vec<String>,
    /// Each lane's query in flight, kept to ask again if the store fails.
    asked: [Option<Query>; 5],
    /// Queries to ask again at a time, after the store failed them.
    retries: Vec<(Instant, Lane, Query)>,
    /// Store failures in a row (the retry backoff).
    store_failures: u32,
    closed: bool,
}

impl ChildSession {
    /// A session that has just come up at `now`: documents, health and blobs start at once,
    /// anti-entropy after [`RECONCILE_FIRST`].
    pub fn new(now: Instant) -> ChildSession {
        let mut s = ChildSession {
            out: VecDeque::new(),
            push: Push::Asking,
            pull: Pull::Cursor,
            reconcile: Reconcile::Waiting { until: now + RECONCILE_FIRST },
            repaired: 0,
            health: Health::Asking,
            blobs: Blobs::Asking,
            forget: Vec::new(),
            asked: Default::default(),
            retries: Vec::new(),
            store_failures: 0,
            closed: false,
        };
        s.query(Lane::PushDocs, Query::DocsToSend { limit: DOCS_PER_BATCH });
        s.query(Lane::PullDocs, Query::PullCursor);
        s.query(Lane::Health, Query::HealthReport);
        s.query(Lane::Blobs, Query::NextBlobUpload);
        s
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let deadlines = [
            match self.push {
                Push::Waiting { until } => Some(until),
                _ => None,
            },
            match self.pull {
                Pull::Waiting { until } => Some(until),
                _ => None,
            },
            match self.reconcile {
                Reconcile::Waiting { until } => Some(until),
                _ => None,
            },
            match self.health {
                Health::Waiting { until } => Some(until),
                _ => None,
            },
            match self.blobs {
                Blobs::Waiting { until, .. } => Some(until),
                _ => None,
            },
        ];
        deadlines.into_iter().flatten().chain(self.retries.iter().map(|(at, _, _)| *at)).min()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn close(&mut self, why: String) {
        if !self.closed {
            self.closed = true;
            self.out.clear();
            self.out.push_back(Output::Close(why));
        }
    }

    fn query(&mut self, lane: Lane, q: Query) {
        // Kept to ask again if the store is busy; not the queries carrying documents (a batch
        // of up to 8 MiB): those lanes start over from their cursor instead.
        let carries_docs = matches!(q, Query::ApplyFromParent { .. } | Query::ReconcileApply { .. });
        self.asked[lane_index(lane)] = (!carries_docs).then(|| q.clone());
        self.out.push_back(Output::Query(lane, q));
    }

    fn request(&mut self, lane: Lane, m: Message) {
        self.out.push_back(Output::Request(lane, m));
    }

    /// Local data changed (documents, the upload queue): waiting lanes look at once.
    pub fn handle_wake(&mut self) {
        if self.closed {
            return;
        }
        if matches!(self.push, Push::Waiting { .. }) {
            self.start_push();
        }
        if matches!(self.pull, Pull::Waiting { .. }) {
            self.start_pull();
        }
        if matches!(self.blobs, Blobs::Waiting { wakeable: true, .. }) {
            self.start_blobs();
        }
    }

    /// The time is `now`: lanes whose wait is over go on.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if matches!(self.push, Push::Waiting { until } if until <= now) {
            self.start_push();
        }
        if matches!(self.pull, Pull::Waiting { until } if until <= now) {
            self.start_pull();
        }
        if matches!(self.reconcile, Reconcile::Waiting { until } if until <= now) {
            self.reconcile = Reconcile::Digests;
            self.repaired = 0;
            self.query(Lane::Reconcile, Query::ReconcileDigests);
        }
        if matches!(self.health, Health::Waiting { until } if until <= now) {
            self.health = Health::Asking;
            self.query(Lane::Health, Query::HealthReport);
        }
        if matches!(self.blobs, Blobs::Waiting { until, .. } if until <= now) {
            self.start_blobs();
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries).into_iter().partition(|(at, _, _)| *at <= now);
        self.retries = later;
        for (_, lane, q) in due {
            self.query(lane, q);
        }
    }

    fn start_push(&mut self) {
        self.push = Push::Asking;
        self.query(Lane::PushDocs, Query::DocsToSend { limit: DOCS_PER_BATCH });
    }

    fn start_pull(&mut self) {
        self.pull = Pull::Cursor;
        self.query(Lane::PullDocs, Query::PullCursor);
    }

    fn start_blobs(&mut self) {
        self.blobs = Blobs::Asking;
        self.query(Lane::Blobs, Query::NextBlobUpload);
    }

    /// The store could not answer a lane's query because it is busy (another writer, another
    /// process, beyond its timeout): the lane asks again later (0.5 s, doubling to 30 s) and the
    /// session stays up, for a new link would not make the store answer sooner. Other store
    /// failures go to [`Self::handle_reply`] and end the session.
    pub fn handle_store_busy(&mut self, lane: Lane, now: Instant) {
        if self.closed {
            return;
        }
        let wait = STORE_RETRY.saturating_mul(1 << self.store_failures.min(6)).min(STORE_RETRY_MAX);
        self.store_failures = self.store_failures.saturating_add(1);
        warn!(?lane, wait_ms = wait.as_millis() as u64, "the local store is busy; asking it again shortly");
        match (self.asked[lane_index(lane)].take(), lane) {
            (Some(q), _) => self.retries.push((now + wait, lane, q)),
            // The documents are asked for again from the cursor, which did not move.
            (None, Lane::PullDocs) => self.pull = Pull::Waiting { until: now + wait },
            (None, Lane::Reconcile) => self.reconcile = Reconcile::Waiting { until: now + wait },
            (None, _) => self.close("local store busy with no query in flight".into()),
        }
    }

    /// The store answered a lane's query (or failed: the message says why).
    pub fn handle_reply(&mut self, lane: Lane, reply: Result<Reply, String>, now: Instant) {
        if self.closed {
            return;
        }
        let reply = match reply {
            Ok(r) => r,
            // Anti-entropy is a repair that can wait; every other lane needs its store.
            Err(e) if lane == Lane::Reconcile => {
                warn!(error = %e, "anti-entropy pass failed; will try again later");
                self.reconcile = Reconcile::Waiting { until: now + RECONCILE_INTERVAL };
                return;
            }
            Err(e) => return self.close(format!("local store: {e}")),
        };
        self.store_failures = 0;
        self.asked[lane_index(lane)] = None;
        match (lane, reply) {
            (Lane::PushDocs, Reply::Docs(docs, upto)) if matches!(self.push, Push::Asking) => {
                if docs.is_empty() {
                    // Everything up to `upto` is held by the parent already (or out of its scope).
                    self.push = Push::Acking { then_wait: true };
                    return self.query(Lane::PushDocs, Query::DocsAcked { upto_seq: upto, need_full: Vec::new() });
                }
                let n = protocol::batch_prefix(&docs);
                let cut = n < docs.len();
                let batch: Vec<DocUpdate> = docs.into_iter().take(n).collect();
                let upto = if cut { batch.last().map(|d| d.seq).unwrap_or(0) } else { upto };
                let seqs = batch.iter().map(|d| (d.id.clone(), d.seq)).collect();
                self.push = Push::Sending { upto, seqs };
                self.request(Lane::PushDocs, Message::PushDocs { docs: batch, upto_seq: upto });
            }
            (Lane::PushDocs, Reply::Done) if matches!(self.push, Push::Acking { .. }) => {
                if matches!(self.push, Push::Acking { then_wait: true }) {
                    self.push = Push::Waiting { until: now + POLL_INTERVAL };
                } else {
                    self.start_push();
                }
            }
            (Lane::PullDocs, Reply::Seq(after_seq)) if matches!(self.pull, Pull::Cursor) => {
                self.pull = Pull::Asking { after_seq };
                let forget = std::mem::take(&mut self.forget);
                self.request(Lane::PullDocs, Message::PullDocs { after_seq, forget });
            }
            (Lane::PullDocs, Reply::NeedFull(mut forget)) if matches!(self.pull, Pull::Applying { .. }) => {
                let count = if let Pull::Applying { count } = self.pull { count } else { 0 };
                forget.truncate(protocol::MAX_REPAIR_IDS);
                debug!(count, need_full = forget.len(), "documents from parent applied");
                self.forget = forget;
                self.after_pull(count, now);
            }
            (Lane::Reconcile, Reply::Digests(digests)) if matches!(self.reconcile, Reconcile::Digests) => {
                self.reconcile = Reconcile::Buckets;
                self.request(Lane::Reconcile, Message::Reconcile { digests });
            }
            (Lane::Reconcile, Reply::Entries(entries)) if matches!(self.reconcile, Reconcile::Entries { .. }) => {
                let Reconcile::Entries { chunk, rest } = std::mem::replace(&mut self.reconcile, Reconcile::Digests) else { return };
                self.reconcile = Reconcile::Repair { rest };
                self.request(Lane::Reconcile, Message::ReconcileEntries { buckets: chunk, entries });
            }
            (Lane::Reconcile, Reply::Done) if matches!(self.reconcile, Reconcile::Applying { .. }) => {
                let Reconcile::Applying { rest } = std::mem::replace(&mut self.reconcile, Reconcile::Digests) else { return };
                self.next_buckets(rest, now);
            }
            (Lane::Health, Reply::Health(mut nodes)) if matches!(self.health, Health::Asking) => {
                nodes.truncate(protocol::MAX_HEALTH_NODES);
                self.health = Health::Sending;
                self.request(Lane::Health, Message::Health { nodes });
            }
            (Lane::Blobs, Reply::Blob(next)) if matches!(self.blobs, Blobs::Asking) => match next {
                Some(upload) => {
                    self.blobs = Blobs::Offering(upload);
                    self.out.push_back(Output::OfferBlob(upload));
                }
                None => self.blobs = Blobs::Waiting { until: now + POLL_INTERVAL, wakeable: true },
            },
            (Lane::Blobs, Reply::Done) if matches!(self.blobs, Blobs::Recording(_)) => {
                if let Blobs::Recording(u) = self.blobs {
                    info!(hash = %u.hash, size = u.size, "blob replicated to parent");
                }
                self.start_blobs();
            }
            (Lane::Blobs, Reply::Done) if matches!(self.blobs, Blobs::Failing) => self.start_blobs(),
            (lane, reply) => self.close(format!("the engine got an unexpected store reply on lane {lane:?}: {reply:?}")),
        }
    }

    fn after_pull(&mut self, count: usize, now: Instant) {
        if count == 0 && self.forget.is_empty() {
            self.pull = Pull::Waiting { until: now + POLL_INTERVAL };
        } else {
            self.start_pull();
        }
    }

    /// Compares the next buckets, or ends the pass.
    fn next_buckets(&mut self, mut rest: Vec<u16>, now: Instant) {
        if rest.is_empty() {
            match self.repaired {
                0 => debug!("anti-entropy: in step with the parent"),
                n => info!(documents = n, "anti-entropy repaired drift with the parent"),
            }
            if self.repaired > 0 {
                self.handle_wake();
            }
            self.reconcile = Reconcile::Waiting { until: now + RECONCILE_INTERVAL };
            return;
        }
        let chunk: Vec<u16> = rest.drain(..rest.len().min(RECONCILE_BUCKETS_PER_REQUEST)).collect();
        self.reconcile = Reconcile::Entries { chunk: chunk.clone(), rest };
        self.query(Lane::Reconcile, Query::ReconcileEntries { buckets: chunk });
    }

    /// The parent answered a lane's request.
    pub fn handle_answer(&mut self, lane: Lane, answer: Message, now: Instant) {
        if self.closed {
            return;
        }
        if let Message::Error { code, message } = answer {
            return self.handle_failure(lane, Failure::Remote { code, message }, now);
        }
        match lane {
            Lane::PushDocs => {
                let Push::Sending { upto, seqs } = std::mem::replace(&mut self.push, Push::Asking) else {
                    return self.close("an answer came on the document lane while nothing was sent".into());
                };
                match answer {
                    Message::DocsAck { upto_seq, need_full } if upto_seq == upto && need_full.len() <= protocol::MAX_REPAIR_IDS => {
                        let again: Vec<(String, u64)> = seqs.into_iter().filter(|(id, _)| need_full.contains(id)).collect();
                        if !again.is_empty() {
                            info!(count = again.len(), "parent lacks earlier changes of some documents; sending them whole");
                        }
                        debug!(upto_seq, "documents acknowledged by parent");
                        self.push = Push::Acking { then_wait: false };
                        self.query(Lane::PushDocs, Query::DocsAcked { upto_seq, need_full: again });
                    }
                    other => self.close(format!("expected ack of {upto}, got {}", protocol::describe(&other))),
                }
            }
            Lane::PullDocs => {
                let Pull::Asking { after_seq } = self.pull else {
                    return self.close("an answer came on the pull lane while nothing was asked".into());
                };
                let Message::Docs { docs, upto_seq } = answer else {
                    return self.close(format!("expected documents, got {}", protocol::describe(&answer)));
                };
                if docs.iter().any(|d| d.seq > upto_seq) || upto_seq < after_seq {
                    return self.close("parent sent documents outside the requested range".into());
                }
                let count = docs.len();
                if upto_seq > after_seq || count > 0 {
                    self.pull = Pull::Applying { count };
                    self.query(Lane::PullDocs, Query::ApplyFromParent { docs, upto_seq });
                } else {
                    self.after_pull(0, now);
                }
            }
            Lane::Reconcile => match (std::mem::replace(&mut self.reconcile, Reconcile::Digests), answer) {
                (Reconcile::Buckets, Message::ReconcileBuckets { buckets }) => self.next_buckets(buckets, now),
                (Reconcile::Repair { rest }, Message::ReconcileRepair { send_up, docs }) => {
                    self.repaired += send_up.len() + docs.len();
                    self.reconcile = Reconcile::Applying { rest };
                    self.query(Lane::Reconcile, Query::ReconcileApply { send_up, docs });
                }
                (_, other) => {
                    warn!(got = protocol::describe(&other), "anti-entropy pass failed: unexpected answer; will try again later");
                    self.reconcile = Reconcile::Waiting { until: now + RECONCILE_INTERVAL };
                }
            },
            Lane::Health => match answer {
                Message::HealthAck if matches!(self.health, Health::Sending) => self.health = Health::Waiting { until: now + HEALTH_INTERVAL },
                other => self.close(format!("expected health-ack, got {}", protocol::describe(&other))),
            },
            Lane::Blobs => match (&self.blobs, answer) {
                (Blobs::Offering(u), Message::BlobState { complete: true, .. }) => {
                    let u = *u;
                    self.blobs = Blobs::Recording(u);
                    self.query(Lane::Blobs, Query::BlobUploadDone { upload: u });
                }
                (Blobs::Offering(u), Message::BlobState { have, complete: false }) if have <= u.size && have.is_multiple_of(CHUNK) => {
                    let u = *u;
                    if have > 0 {
                        info!(hash = %u.hash, offset = have, size = u.size, "resuming blob upload");
                    }
                    self.blobs = Blobs::Streaming(u);
                    self.out.push_back(Output::StreamBlob { upload: u, from: have });
                }
                (Blobs::Streaming(u), Message::BlobStored { hash }) if hash == u.hash => {
                    let u = *u;
                    self.blobs = Blobs::Recording(u);
                    self.query(Lane::Blobs, Query::BlobUploadDone { upload: u });
                }
                (Blobs::Offering(_), other) => self.close(format!("expected blob state, got {}", protocol::describe(&other))),
                (_, other) => self.close(format!("expected blob stored, got {}", protocol::describe(&other))),
            },
        }
    }

    /// A lane's request failed.
    pub fn handle_failure(&mut self, lane: Lane, failure: Failure, now: Instant) {
        if self.closed {
            return;
        }
        if let Failure::Transport(why) = failure {
            return self.close(why);
        }
        match lane {
            Lane::Reconcile => {
                warn!(error = %failure, "anti-entropy pass failed; will try again later");
                self.reconcile = Reconcile::Waiting { until: now + RECONCILE_INTERVAL };
            }
            Lane::Blobs => {
                let upload = match self.blobs {
                    Blobs::Offering(u) | Blobs::Streaming(u) => u,
                    _ => return self.close(format!("a blob failure while no blob was being sent: {failure}")),
                };
                match failure {
                    // The parent still holds this blob's stream from a link that just died; it
                    // frees it within moments. Not a failure: try again shortly.
                    Failure::Remote { code: ErrorCode::Busy, .. } => {
                        debug!(hash = %upload.hash, "parent busy with this blob; retrying shortly");
                        self.blobs = Blobs::Waiting { until: now + BUSY_RETRY, wakeable: false };
                    }
                    Failure::Other(why) => self.close(why),
                    other => {
                        let reason = other.to_string();
                        warn!(hash = %upload.hash, %reason, "blob upload failed; will retry");
                        self.blobs = Blobs::Failing;
                        self.query(Lane::Blobs, Query::BlobUploadFailed { upload, reason });
                    }
                }
            }
            // The parent refused a request it has always taken: the session starts over.
            _ => self.close(failure.to_string()),
        }
    }
}
