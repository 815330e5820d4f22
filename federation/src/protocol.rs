//! The federation wire protocol: messages, framing and limits. Pure: no sockets, no clocks.
//!
//! Every message is one frame: a 4-byte big-endian length followed by that many bytes of
//! postcard-encoded [`Message`]. A stream carries one request and its answer. The protocol version
//! is part of the ALPN (`youke/2`) and repeated in the hello, so an old peer is refused by name.
//! Blob bytes travel raw after a [`Message::BlobState`] (upload) or [`Message::BlobRange`]
//! (fetch) frame, up to the stream's end, and are checked chunk by chunk against the blob's
//! manifest (see [`crate::manifest`]).

use crate::hash::BlobHash;
use crate::tier::Tier;
use serde::{Deserialize, Serialize};

/// Version of this protocol; peers with another version are refused in the hello.
pub const PROTOCOL_VERSION: u32 = 4;
/// ALPN for QUIC: carries the version so TLS itself refuses foreign protocols.
pub const ALPN: &[u8] = b"youke/4";
/// ALPN of enrollment connections: a node without a certificate yet, holding a join token.
pub const ENROLL_ALPN: &[u8] = b"youke-enroll/4";
/// Largest frame accepted from a peer. Document batches are cut to stay below it.
pub const MAX_MESSAGE_SIZE: usize = 8 * 1024 * 1024;
/// Budget for the documents of one batch, leaving room for framing.
pub const DOC_BATCH_BYTES: usize = MAX_MESSAGE_SIZE - 64 * 1024;
/// Longest free-text field (names, reasons) accepted in a message.
pub const MAX_TEXT: usize = 1024;

/// Who a node is, as told in the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub protocol_version: u32,
    pub node_id: String,
    pub name: String,
    pub tier: Tier,
}

/// One document at one version, opaque to this crate.
/// One node's health as reported up the tree, for the admin consoles above it: the reporting
/// child itself and every node of its subtree it knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    pub node_id: String,
    pub name: String,
    pub tier: Tier,
    /// The node it links to ("" for the top of the tree).
    pub parent_id: String,
    /// Its link to its parent is up.
    pub connected: bool,
    /// How old these figures were when the report was sent, in milliseconds.
    pub age_ms: u64,
    /// Milliseconds since documents last moved on its link to its parent.
    pub last_sync_ms_ago: Option<u64>,
    /// Documents its parent does not hold at their current version yet (sync lag).
    pub pending_docs: u64,
    /// Media waiting to go up to its parent (replication queue).
    pub pending_uploads: u64,
    pub pending_upload_bytes: u64,
    pub lessons: u64,
}

/// Most nodes one health report carries.
/// Longest node id: one DNS label.
pub const MAX_NODE_ID: usize = 63;
/// Largest range of a blob asked for or served in one request.
pub const MAX_RANGE: u64 = 8 * crate::manifest::CHUNK;
pub const MAX_HEALTH_NODES: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocUpdate {
    pub id: String,
    pub kind: String,
    /// The sender's local change sequence number for this version.
    pub seq: u64,
    /// The sender's name for this version (for automerge documents, its heads).
    pub version: String,
    /// `bytes` is the whole document; otherwise only the changes the receiver is believed to
    /// lack, which it applies to its own copy or answers with `need_full`.
    pub full: bool,
    pub bytes: Vec<u8>,
}

impl DocUpdate {
    /// Approximate encoded size, used to cut batches.
    pub fn wire_size(&self) -> usize {
        self.id.len() + self.kind.len() + self.version.len() + self.bytes.len() + 32
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message of a link, child to parent, on the first stream.
    Hello(NodeInfo),
    /// The parent's answer to an acceptable hello.
    Welcome(NodeInfo),
    /// The parent's answer to a hello it refuses, with the reason for the operator.
    Refused { reason: String },
    /// A batch of document versions, child to parent, covering the child's changes up to
    /// `upto_seq` (documents in between that the parent holds already are left out).
    PushDocs { docs: Vec<DocUpdate>, upto_seq: u64 },
    /// The parent stored every document of the batch up to this sequence number, except those
    /// in `need_full`: it could not apply their changes (it lacks earlier ones) and needs them whole.
    DocsAck { upto_seq: u64, need_full: Vec<String> },
    /// Child to parent: send me the documents in my scope changed after your sequence number
    /// `after_seq` (the cursor the child keeps for its parent). `forget` names documents whose
    /// changes the child could not apply: the parent sends them whole.
    PullDocs { after_seq: u64, forget: Vec<String> },
    /// Parent to child: the documents in the child's scope changed after the cursor, in order;
    /// the child's cursor moves to `upto_seq` once they are stored.
    Docs { docs: Vec<DocUpdate>, upto_seq: u64 },
    /// Anti-entropy, child to parent: digests of (document id, heads) over the documents the
    /// child shares up, in [`RECONCILE_BUCKETS`] buckets by the first byte of BLAKE3(id).
    Reconcile { digests: Vec<[u8; 32]> },
    /// The buckets whose digests differ from the parent's view of this child's documents.
    ReconcileBuckets { buckets: Vec<u16> },
    /// Child to parent: the (id, heads) entries of those buckets.
    ReconcileEntries { buckets: Vec<u16>, entries: Vec<(String, String)> },
    /// Parent to child: send these documents up whole; here are these whole.
    ReconcileRepair { send_up: Vec<String>, docs: Vec<DocUpdate> },
    /// Child to parent: I have this blob for you; here are its size and manifest (the chaining
    /// values of its 1 MiB chunks, empty for a blob of one chunk).
    BlobOffer { hash: BlobHash, size: u64, manifest: Vec<[u8; 32]> },
    /// How much of the blob the parent holds, verified; `complete` when it has all of it. When
    /// not complete, the child sends the raw bytes `have..size` on the same stream and finishes it.
    BlobState { have: u64, complete: bool },
    /// The blob arrived and every chunk checked.
    BlobStored { hash: BlobHash },
    /// Child to parent: send bytes `offset..offset+len` of this blob (pull-through viewing and
    /// prefetch); `offset` is a multiple of the chunk size. With `manifest`, include it.
    BlobFetch { hash: BlobHash, offset: u64, len: u64, manifest: bool },
    /// Parent to child: the blob's size, its manifest if asked for, and the range that follows
    /// raw up to the end of the stream.
    BlobRange { size: u64, manifest: Vec<[u8; 32]>, offset: u64, len: u64 },
    /// A request failed; the stream ends after this.
    Error { code: ErrorCode, message: String },
    /// Enrollment, new node to parent: the join token's secret, the node id it chose, its new
    /// public keys (raw P-256) and proofs that it holds them (see [`crate::pki::prove`]). The
    /// CA key is used only when the node becomes a city.
    Enroll { token: Vec<u8>, node_id: String, public_key: Vec<u8>, proof: Vec<u8>, ca_public_key: Vec<u8>, ca_proof: Vec<u8> },
    /// The parent's answer: the node's place and name, its certificate, the certificates
    /// between it and the root, and (for a city) its CA certificate.
    Enrolled { place: String, name: String, node_cert: Vec<u8>, intermediates: Vec<Vec<u8>>, ca_cert: Option<Vec<u8>> },
    // New kinds go last, so the ones before keep their numbers on the wire.
    /// Child to parent, periodically: the health of the child and of its subtree.
    Health { nodes: Vec<NodeHealth> },
    /// The parent stored the health report.
    HealthAck,
}

/// The name of a message's kind, for logs and errors (never its payload, which a peer controls).
pub fn describe(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "hello",
        Message::Welcome(_) => "welcome",
        Message::Refused { .. } => "refused",
        Message::PushDocs { .. } => "push-docs",
        Message::DocsAck { .. } => "docs-ack",
        Message::PullDocs { .. } => "pull-docs",
        Message::Docs { .. } => "docs",
        Message::Reconcile { .. } => "reconcile",
        Message::ReconcileBuckets { .. } => "reconcile-buckets",
        Message::ReconcileEntries { .. } => "reconcile-entries",
        Message::ReconcileRepair { .. } => "reconcile-repair",
        Message::BlobOffer { .. } => "blob-offer",
        Message::BlobState { .. } => "blob-state",
        Message::BlobStored { .. } => "blob-stored",
        Message::BlobFetch { .. } => "blob-fetch",
        Message::BlobRange { .. } => "blob-range",
        Message::Error { .. } => "error",
        Message::Enroll { .. } => "enroll",
        Message::Enrolled { .. } => "enrolled",
        Message::Health { .. } => "health",
        Message::HealthAck => "health-ack",
    }
}

/// What an enrolling node signs with each of its new keys: the token secret and its node id.
pub fn enroll_transcript(token: &[u8], node_id: &str) -> Vec<u8> {
    let mut t = Vec::with_capacity(token.len() + node_id.len() + 1);
    t.extend_from_slice(token);
    t.push(0);
    t.extend_from_slice(node_id.as_bytes());
    t
}

/// Stable codes for failures reported to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    BadRequest,
    HashMismatch,
    StorageFull,
    /// Another stream is moving this blob already; try again later.
    Busy,
    NotFound,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {len} bytes, more than the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("peer sent a frame that does not decode: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("message does not fit in a frame: {0}")]
    Encode(postcard::Error),
    #[error("peer sent {0}")]
    Limit(String),
}

/// Encodes a message as one frame (length prefix + body).
pub fn encode(msg: &Message) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_stdvec(msg).map_err(FrameError::Encode)?;
    if body.len() > MAX_MESSAGE_SIZE {
        return Err(FrameError::TooLarge { len: body.len(), limit: MAX_MESSAGE_SIZE });
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads a frame's length prefix and checks it against the limit.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_MESSAGE_SIZE {
        return Err(FrameError::TooLarge { len, limit: MAX_MESSAGE_SIZE });
    }
    Ok(len)
}

/// Decodes a frame body (without its length prefix) and checks every field against its limit
/// ([`check_limits`]).
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    let msg: Message = postcard::from_bytes(body)?;
    check_limits(&msg).map_err(FrameError::Limit)?;
    Ok(msg)
}

/// Largest frame before a link is authenticated (hello, enrollment): nothing legitimate there
/// comes near it, and a node without a certificate must not make a parent read 8 MiB.
pub const MAX_UNAUTHENTICATED_MESSAGE: usize = 64 * 1024;
/// Documents in one batch, and entries in one anti-entropy list.
pub const MAX_DOCS: usize = 4096;
pub const MAX_RECONCILE_ENTRIES: usize = 100_000;
/// A document's id, kind and version (automerge heads, comma-joined).
const MAX_DOC_ID: usize = 256;
const MAX_DOC_KIND: usize = 32;
const MAX_DOC_VERSION: usize = 64 * 1024;
/// Certificates, keys and signatures of an enrollment.
const MAX_CERT: usize = 16 * 1024;
const MAX_KEY: usize = 133;
const MAX_SIGNATURE: usize = 144;

/// The limits of every field of every message: a peer that exceeds one is sending garbage.
pub fn check_limits(m: &Message) -> Result<(), String> {
    fn text(what: &str, s: &str, max: usize) -> Result<(), String> {
        if s.len() > max { Err(format!("a {what} of {} bytes (limit {max})", s.len())) } else { Ok(()) }
    }
    fn count(what: &str, n: usize, max: usize) -> Result<(), String> {
        if n > max { Err(format!("{n} {what} (limit {max})")) } else { Ok(()) }
    }
    fn node(n: &NodeInfo) -> Result<(), String> {
        text("node id", &n.node_id, MAX_TEXT)?;
        text("node name", &n.name, MAX_TEXT)
    }
    fn docs(d: &[DocUpdate]) -> Result<(), String> {
        count("documents", d.len(), MAX_DOCS)?;
        for u in d {
            text("document id", &u.id, MAX_DOC_ID)?;
            text("document kind", &u.kind, MAX_DOC_KIND)?;
            text("document version", &u.version, MAX_DOC_VERSION)?;
        }
        Ok(())
    }
    fn ids(what: &str, ids: &[String]) -> Result<(), String> {
        count(what, ids.len(), MAX_REPAIR_IDS)?;
        ids.iter().try_for_each(|i| text("document id", i, MAX_DOC_ID))
    }
    fn buckets(b: &[u16]) -> Result<(), String> {
        count("buckets", b.len(), RECONCILE_BUCKETS)?;
        match b.iter().find(|&&x| usize::from(x) >= RECONCILE_BUCKETS) {
            Some(x) => Err(format!("bucket {x} (there are {RECONCILE_BUCKETS})")),
            None => Ok(()),
        }
    }
    fn manifest(size: u64, m: &[[u8; 32]]) -> Result<(), String> {
        let chunks = size.div_ceil(crate::manifest::CHUNK);
        if m.len() as u64 > chunks { Err(format!("a manifest of {} chunks for {size} bytes", m.len())) } else { Ok(()) }
    }
    match m {
        Message::Hello(n) | Message::Welcome(n) => node(n),
        Message::Refused { reason } => text("reason", reason, 4 * MAX_TEXT),
        Message::PushDocs { docs: d, .. } | Message::Docs { docs: d, .. } => docs(d),
        Message::DocsAck { need_full, .. } => ids("ids to send whole", need_full),
        Message::PullDocs { forget, .. } => ids("ids to forget", forget),
        Message::Reconcile { digests } => {
            if digests.len() == RECONCILE_BUCKETS { Ok(()) } else { Err(format!("{} digests instead of {RECONCILE_BUCKETS}", digests.len())) }
        }
        Message::ReconcileBuckets { buckets: b } => buckets(b),
        Message::ReconcileEntries { buckets: b, entries } => {
            buckets(b)?;
            count("anti-entropy entries", entries.len(), MAX_RECONCILE_ENTRIES)?;
            entries.iter().try_for_each(|(id, heads)| {
                text("document id", id, MAX_DOC_ID)?;
                text("document version", heads, MAX_DOC_VERSION)
            })
        }
        Message::ReconcileRepair { send_up, docs: d } => {
            ids("ids to send up", send_up)?;
            docs(d)
        }
        Message::BlobOffer { size, manifest: m, .. } | Message::BlobRange { size, manifest: m, .. } => manifest(*size, m),
        Message::BlobState { .. } | Message::BlobStored { .. } => Ok(()),
        Message::BlobFetch { len, .. } => {
            if *len > MAX_RANGE { Err(format!("a range of {len} bytes (limit {})", MAX_RANGE)) } else { Ok(()) }
        }
        Message::Error { message, .. } => text("error message", message, 4 * MAX_TEXT),
        Message::Health { nodes } => {
            count("nodes in a health report", nodes.len(), MAX_HEALTH_NODES)?;
            nodes.iter().try_for_each(|n| {
                text("node id", &n.node_id, MAX_NODE_ID)?;
                text("node id", &n.parent_id, MAX_NODE_ID)?;
                text("node name", &n.name, MAX_TEXT)
            })
        }
        Message::HealthAck => Ok(()),
        Message::Enroll { token, node_id, public_key, proof, ca_public_key, ca_proof } => {
            count("token bytes", token.len(), 16)?;
            text("node id", node_id, MAX_NODE_ID)?;
            count("public key bytes", public_key.len().max(ca_public_key.len()), MAX_KEY)?;
            count("signature bytes", proof.len().max(ca_proof.len()), MAX_SIGNATURE)
        }
        Message::Enrolled { place, name, node_cert, intermediates, ca_cert } => {
            text("place", place, 4 * 64 + 16)?;
            text("name", name, MAX_TEXT)?;
            count("intermediate certificates", intermediates.len(), 2)?;
            let biggest = intermediates.iter().map(Vec::len).chain([node_cert.len(), ca_cert.as_ref().map_or(0, Vec::len)]).max().unwrap_or(0);
            count("certificate bytes", biggest, MAX_CERT)
        }
    }
}

/// Decodes one frame from the front of `buf`: `Ok(None)` if more bytes are needed, otherwise the
/// message and the number of bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, FrameError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let mut p = [0u8; 4];
    p.copy_from_slice(prefix);
    let len = frame_len(p)?;
    let Some(body) = buf.get(4..4 + len) else { return Ok(None) };
    Ok(Some((decode_body(body)?, 4 + len)))
}

/// The fuzz target of the decoder (`fuzz/fuzz_targets/federation_message.rs`, and the seed
/// corpus replayed by the tests): any bytes either fail to decode with an error, or decode to a
/// message within its limits that encodes back to a frame decoding to the same message.
#[doc(hidden)]
#[allow(clippy::expect_used)] // a fuzz target reports a broken property by panicking
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(Some((msg, used))) = decode(data) {
        assert!(used <= data.len());
        assert!(check_limits(&msg).is_ok());
        let again = encode(&msg).expect("a decoded message encodes");
        let (back, n) = decode(&again).expect("re-decodes").expect("complete");
        assert_eq!(n, again.len());
        assert_eq!(back, msg);
    }
    if let Some(Ok(Message::Hello(h))) = data.get(4..).map(decode_body) {
        let parent = NodeInfo { protocol_version: PROTOCOL_VERSION, node_id: "p".into(), name: "p".into(), tier: Tier::City };
        let _ = check_hello(&parent, &h);
    }
}

/// Why a parent refuses a child's hello. Pure check, shared by the driver and tests.
pub fn check_hello(parent: &NodeInfo, child: &NodeInfo) -> Result<(), String> {
    if child.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not supported (this node speaks {}); upgrade the older node",
            child.protocol_version, PROTOCOL_VERSION
        ));
    }
    if child.node_id.is_empty() || child.node_id.len() > MAX_TEXT || child.name.len() > MAX_TEXT {
        return Err("node id or name missing or too long".into());
    }
    if parent.tier.child() != Some(child.tier) {
        return Err(format!(
            "a {} node cannot be a child of this {} node",
            child.tier, parent.tier
        ));
    }
    if child.node_id == parent.node_id {
        return Err("a node cannot link to itself".into());
    }
    Ok(())
}

/// Number of buckets anti-entropy digests are computed over.
pub const RECONCILE_BUCKETS: usize = 256;

/// The bucket of a document id for anti-entropy.
pub fn reconcile_bucket(id: &str) -> u16 {
    u16::from(blake3::hash(id.as_bytes()).as_bytes()[0])
}

/// Digests of (id, heads) entries per bucket, independent of their order.
pub fn reconcile_digests<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<[u8; 32]> {
    let mut per_bucket: Vec<Vec<(&str, &str)>> = vec![Vec::new(); RECONCILE_BUCKETS];
    for (id, heads) in entries {
        if let Some(b) = per_bucket.get_mut(usize::from(reconcile_bucket(id))) {
            b.push((id, heads));
        }
    }
    per_bucket
        .into_iter()
        .map(|mut b| {
            b.sort_unstable();
            let mut h = blake3::Hasher::new();
            for (id, heads) in b {
                h.update(id.as_bytes());
                h.update(&[0]);
                h.update(heads.as_bytes());
                h.update(b"\n");
            }
            *h.finalize().as_bytes()
        })
        .collect()
}

/// The buckets in which two digest lists differ (all of them if the lists are malformed).
pub fn differing_buckets(ours: &[[u8; 32]], theirs: &[[u8; 32]]) -> Vec<u16> {
    if ours.len() != RECONCILE_BUCKETS || theirs.len() != RECONCILE_BUCKETS {
        return (0..RECONCILE_BUCKETS as u16).collect();
    }
    ours.iter().zip(theirs).enumerate().filter(|(_, (a, b))| a != b).map(|(i, _)| i as u16).collect()
}

/// Limit on the ids in `need_full` and `forget` lists.
pub const MAX_REPAIR_IDS: usize = 4096;

/// Cuts `docs` (in sequence order) into the longest prefix that fits one batch. Always takes at
/// least one document so that progress is made; a single document over the limit is the caller's
/// problem to report.
pub fn batch_prefix(docs: &[DocUpdate]) -> usize {
    let mut used = 0usize;
    for (i, d) in docs.iter().enumerate() {
        used += d.wire_size();
        if used > DOC_BATCH_BYTES && i > 0 {
            return i;
        }
    }
    docs.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(tier: Tier, id: &str) -> NodeInfo {
        NodeInfo { protocol_version: PROTOCOL_VERSION, node_id: id.into(), name: "某校".into(), tier }
    }

    #[test]
    fn every_message_kind_has_limits_the_decoder_enforces() {
        let doc = |id: &str| DocUpdate { id: id.into(), kind: "lesson".into(), seq: 1, version: "v".into(), full: true, bytes: vec![] };
        let hash = BlobHash([0; 32]);
        let too_big = [
            Message::Hello(NodeInfo { name: "长".repeat(400), ..info(Tier::School, "s") }),
            Message::Refused { reason: "x".repeat(5000) },
            Message::PushDocs { docs: vec![doc("a"); MAX_DOCS + 1], upto_seq: 1 },
            Message::Docs { docs: vec![doc(&"i".repeat(300))], upto_seq: 1 },
            Message::DocsAck { upto_seq: 1, need_full: vec![String::new(); MAX_REPAIR_IDS + 1] },
            Message::PullDocs { after_seq: 0, forget: vec!["x".repeat(300)] },
            Message::Reconcile { digests: vec![[0; 32]; 3] },
            Message::ReconcileBuckets { buckets: vec![300] },
            Message::ReconcileEntries { buckets: vec![1], entries: vec![(String::new(), "v".repeat(70_000))] },
            Message::ReconcileRepair { send_up: vec![], docs: vec![DocUpdate { kind: "k".repeat(40), ..doc("a") }] },
            Message::BlobOffer { hash, size: 10, manifest: vec![[0; 32]; 2] },
            Message::BlobRange { size: 0, manifest: vec![[0; 32]], offset: 0, len: 0 },
            Message::BlobFetch { hash, offset: 0, len: MAX_RANGE + 1, manifest: false },
            Message::Error { code: ErrorCode::Internal, message: "x".repeat(5000) },
            Message::Enroll { token: vec![0; 17], node_id: "a".into(), public_key: vec![], proof: vec![], ca_public_key: vec![], ca_proof: vec![] },
            Message::Enroll { token: vec![0; 16], node_id: "a".into(), public_key: vec![0; 200], proof: vec![], ca_public_key: vec![], ca_proof: vec![] },
            Message::Enrolled { place: String::new(), name: String::new(), node_cert: vec![], intermediates: vec![vec![]; 3], ca_cert: None },
            Message::Enrolled { place: String::new(), name: String::new(), node_cert: vec![0; 20_000], intermediates: vec![], ca_cert: None },
        ];
        for m in &too_big {
            let frame = encode(m).expect("encodes");
            let err = decode(&frame).expect_err(describe(m));
            assert!(matches!(err, FrameError::Limit(_)), "{}: {err}", describe(m));
        }
        let fine = [
            Message::Hello(info(Tier::School, "s")),
            Message::PushDocs { docs: vec![doc("a"); 10], upto_seq: 1 },
            Message::Reconcile { digests: vec![[0; 32]; RECONCILE_BUCKETS] },
            Message::ReconcileBuckets { buckets: vec![0, 255] },
            Message::BlobOffer { hash, size: 3 * crate::manifest::CHUNK, manifest: vec![[0; 32]; 3] },
            Message::BlobFetch { hash, offset: 0, len: MAX_RANGE, manifest: true },
            Message::Enroll { token: vec![0; 16], node_id: "a".into(), public_key: vec![4; 65], proof: vec![0; 72], ca_public_key: vec![4; 65], ca_proof: vec![0; 72] },
        ];
        for m in &fine {
            let frame = encode(m).expect("encodes");
            assert_eq!(decode(&frame).unwrap_or_else(|e| panic!("{}: {e}", describe(m))).map(|(d, _)| d).as_ref(), Some(m));
        }
    }

    #[test]
    fn frames_round_trip_and_stream_decode_waits_for_more() {
        let msg = Message::PushDocs {
            upto_seq: 7,
            docs: vec![DocUpdate { id: "a".into(), kind: "lesson".into(), seq: 7, version: "v".into(), full: true, bytes: vec![1, 2, 3] }],
        };
        let frame = encode(&msg).expect("encode");
        assert!(matches!(decode(&frame[..frame.len() - 1]), Ok(None)));
        let (back, used) = decode(&frame).expect("decode").expect("complete");
        assert_eq!(back, msg);
        assert_eq!(used, frame.len());
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors_not_panics() {
        let big = ((MAX_MESSAGE_SIZE + 1) as u32).to_be_bytes();
        assert!(matches!(decode(&big), Err(FrameError::TooLarge { .. })));
        let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(decode(&garbage), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn hello_checks_tier_and_version() {
        let city = info(Tier::City, "c1");
        assert!(check_hello(&city, &info(Tier::School, "s1")).is_ok());
        assert!(check_hello(&city, &info(Tier::City, "c2")).is_err());
        assert!(check_hello(&city, &info(Tier::Province, "p")).is_err());
        let mut old = info(Tier::School, "s1");
        old.protocol_version = 0;
        assert!(check_hello(&city, &old).unwrap_err().contains("protocol version"));
        let province = info(Tier::Province, "p");
        assert!(check_hello(&province, &info(Tier::City, "c1")).is_ok());
        assert!(check_hello(&province, &info(Tier::School, "s1")).is_err());
    }

    #[test]
    fn reconcile_digests_find_exactly_the_differing_buckets() {
        let ids: Vec<String> = (0..1000).map(|i| format!("doc-{i}")).collect();
        let ours: Vec<(&str, &str)> = ids.iter().map(|i| (i.as_str(), "h1")).collect();
        let mut theirs = ours.clone();
        theirs.reverse();
        assert!(differing_buckets(&reconcile_digests(ours.clone()), &reconcile_digests(theirs.clone())).is_empty(), "order does not matter");
        theirs[10].1 = "h2";
        theirs.pop();
        let diff = differing_buckets(&reconcile_digests(ours), &reconcile_digests(theirs));
        let mut want = vec![reconcile_bucket("doc-989"), reconcile_bucket("doc-0")];
        want.sort_unstable();
        want.dedup();
        assert_eq!(diff, want);
        assert_eq!(differing_buckets(&[], &[[0; 32]; 3]).len(), RECONCILE_BUCKETS);
    }

    #[test]
    fn batches_are_cut_below_the_limit() {
        let doc = |seq| DocUpdate { id: format!("d{seq}"), kind: "lesson".into(), seq, version: String::new(), full: true, bytes: vec![0; 3 * 1024 * 1024] };
        let docs: Vec<_> = (1..=5).map(doc).collect();
        let n = batch_prefix(&docs);
        assert_eq!(n, 2);
        let frame = encode(&Message::PushDocs { docs: docs[..n].to_vec(), upto_seq: 2 }).expect("fits");
        assert!(frame.len() <= MAX_MESSAGE_SIZE + 4);
        assert_eq!(batch_prefix(&docs[..0]), 0);
    }
}
