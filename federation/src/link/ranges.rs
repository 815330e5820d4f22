//! Range serving: a child fetching bytes of a blob (pull-through viewing) is answered from
//! this node's store, or through its own pull-through cache ([`crate::pull_through::RangeSource`]) when
//! it does not hold the blob.

use super::acceptor::ChildAcceptor;
use super::blob_stream::{error_code, send_blob_range};
use crate::hash::BlobHash;
use crate::manifest::CHUNK;
use crate::protocol::{ErrorCode, Message};
use crate::protocol::MAX_RANGE;
use crate::pull_through::Range;
use crate::counters::LinkCounters;
use crate::sync::Peer;
use crate::transfers::Direction;
use crate::transport::{LinkError, join_err, write_msg};
use quinn::SendStream;

impl ChildAcceptor {
    /// Serves a range of a blob to a child that fetches it: from the store, or through this
    /// node's own pull-through cache when it does not hold the blob.
    pub(super) async fn serve_range(&self, child: &Peer, mut send: SendStream, hash: BlobHash, offset: u64, len: u64, want_manifest: bool) -> Result<(), LinkError> {
        let len = len.min(MAX_RANGE);
        if !offset.is_multiple_of(CHUNK) {
            let msg = Message::Error { code: ErrorCode::BadRequest, message: format!("range start {offset} is not a chunk boundary") };
            write_msg(&mut send, &msg).await?;
            send.finish()?;
            return Ok(());
        }
        let local = self.blobs.blob(&hash);
        let range = match (&local, &self.ranges) {
            (Some(_), _) => {
                let blobs = self.blobs.clone();
                let manifest = tokio::task::spawn_blocking(move || blobs.manifest(&hash)).await.map_err(join_err)?;
                manifest.map(|m| Range { manifest: m, offset, bytes: bytes::Bytes::new() }).map_err(LinkError::from)
            }
            (None, Some(source)) => source.read_range(hash, offset, len).await,
            (None, None) => Err(LinkError::Remote { code: ErrorCode::NotFound, message: format!("this node does not hold blob {hash}") }),
        };
        let range = range.and_then(|r| {
            if offset <= r.manifest.size { Ok(r) } else { Err(LinkError::Protocol(format!("range start {offset} is past the blob's end"))) }
        });
        let range = match range {
            Ok(r) => r,
            Err(e) => {
                let code = match &e {
                    LinkError::Remote { code, .. } => *code,
                    LinkError::NoParent => ErrorCode::NotFound,
                    other => error_code(other),
                };
                write_msg(&mut send, &Message::Error { code, message: e.to_string() }).await?;
                send.finish()?;
                return Ok(());
            }
        };
        let size = range.manifest.size;
        let len = len.min(size.saturating_sub(offset));
        let cvs = if want_manifest { range.manifest.cvs } else { Vec::new() };
        write_msg(&mut send, &Message::BlobRange { size, manifest: cvs, offset, len }).await?;
        let progress = self.transfers.start(hash, Direction::Serve, &child.info.name, offset + len, offset);
        match local {
            Some(blob) => send_blob_range(&mut send, &blob, offset, len, None, &progress, &self.counters).await?,
            None => {
                let bytes = range.bytes.slice(..(len as usize).min(range.bytes.len()));
                send.write_all(&bytes).await?;
                LinkCounters::add(&self.counters.blob_bytes_sent, bytes.len() as u64);
                progress.advance(bytes.len() as u64);
            }
        }
        send.finish()?;
        Ok(())
    }
}
