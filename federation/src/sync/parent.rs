//! The parent's side of sync: each request a child sends on a stream of its own becomes a
//! [`Step`]: a store query whose result is the answer ([`execute`]), an answer at once, or a
//! blob transfer the driver carries out (receiving an offered blob, serving a range). No I/O.

use super::{ParentStore, Peer, StoreError};
use crate::hash::BlobHash;
use crate::manifest::Manifest;
use crate::protocol::{self, DocUpdate, ErrorCode, Message, NodeHealth};
use tracing::warn;

/// What the engine asks of the parent's store for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    ApplyDocs { docs: Vec<DocUpdate>, upto_seq: u64 },
    DocsForChild { after_seq: u64, forget: Vec<String> },
    /// The child's digests, to compare with this node's.
    Digests { theirs: Vec<[u8; 32]> },
    Resolve { buckets: Vec<u16>, entries: Vec<(String, String)> },
    Health { nodes: Vec<NodeHealth> },
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run the query ([`execute`], blocking) and send what it returns.
    Query(Query),
    /// Send this answer.
    Answer(Message),
    /// Receive the offered blob on this stream: answer how much is held, take the rest, answer
    /// [`Message::BlobStored`] once it verified (and the store recorded it).
    ReceiveBlob { hash: BlobHash, manifest: Manifest },
    /// Serve bytes of a blob (with its manifest if asked).
    ServeRange { hash: BlobHash, offset: u64, len: u64, manifest: bool },
}

/// The step for a child's request.
pub fn on_request(request: Message) -> Step {
    match request {
        Message::PushDocs { docs, upto_seq } => Step::Query(Query::ApplyDocs { docs, upto_seq }),
        Message::PullDocs { after_seq, mut forget } => {
            forget.truncate(protocol::MAX_REPAIR_IDS);
            Step::Query(Query::DocsForChild { after_seq, forget })
        }
        Message::Reconcile { digests } => Step::Query(Query::Digests { theirs: digests }),
        Message::ReconcileEntries { buckets, entries } => Step::Query(Query::Resolve { buckets, entries }),
        Message::Health { nodes } => Step::Query(Query::Health { nodes }),
        Message::BlobOffer { hash, size, manifest } => Step::ReceiveBlob { hash, manifest: Manifest { size, cvs: manifest } },
        Message::BlobFetch { hash, offset, len, manifest } => Step::ServeRange { hash, offset, len, manifest },
        other => Step::Answer(Message::Error { code: ErrorCode::BadRequest, message: format!("unexpected request {}", protocol::describe(&other)) }),
    }
}

/// Runs a request's query against the store and makes the answer: the store's failure is
/// logged and answered with a generic error (the child retries; the parent's paths stay here).
pub fn execute(store: &dyn ParentStore, child: &Peer, query: Query) -> Message {
    let what = match &query {
        Query::ApplyDocs { .. } => "the parent could not store the documents",
        Query::DocsForChild { .. } => "the parent could not read its documents",
        Query::Digests { .. } => "the parent could not read its documents",
        Query::Resolve { .. } => "the parent could not compare documents",
        Query::Health { .. } => "the parent could not store the health report",
    };
    match answer(store, child, query) {
        Ok(m) => m,
        Err(e) => {
            warn!(child = %child.info.name, error = %e, "{what}");
            Message::Error { code: ErrorCode::Internal, message: what.into() }
        }
    }
}

fn answer(store: &dyn ParentStore, child: &Peer, query: Query) -> Result<Message, StoreError> {
    Ok(match query {
        Query::ApplyDocs { docs, upto_seq } => Message::DocsAck { upto_seq, need_full: store.apply_docs(child, docs)? },
        Query::DocsForChild { after_seq, forget } => {
            let (mut docs, mut upto_seq) = store.docs_for_child(child, after_seq, &forget, super::child::DOCS_PER_BATCH)?;
            let n = protocol::batch_prefix(&docs);
            if n < docs.len() {
                docs.truncate(n);
                upto_seq = docs.last().map(|d| d.seq).unwrap_or(after_seq);
            }
            Message::Docs { docs, upto_seq }
        }
        Query::Digests { theirs } => Message::ReconcileBuckets { buckets: protocol::differing_buckets(&store.reconcile_digests_of_child(child)?, &theirs) },
        Query::Resolve { buckets, entries } => {
            let (send_up, mut docs) = store.reconcile_resolve(child, &buckets, entries)?;
            docs.truncate(protocol::batch_prefix(&docs));
            Message::ReconcileRepair { send_up, docs }
        }
        Query::Health { nodes } => {
            store.child_health(child, nodes)?;
            Message::HealthAck
        }
    })
}
