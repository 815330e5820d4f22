//! Pull-through: fetching ranges of a blob from the parent for viewing and prefetch.
//!
//! [`Upstream`] is the child's handle on its current parent connection (set by the uplink while
//! the link is up) and asks it for byte ranges ([`Message::BlobFetch`]). A parent that does not
//! hold a blob a child asks for answers from its own [`RangeSource`] (the node's cache, which
//! fetches from *its* parent in turn), so a school can watch a province lesson through its city.
//! Every range is checked against the blob's manifest by whoever stores or serves it.

use crate::hash::BlobHash;
use crate::transport::LinkError;
use crate::manifest::{self, CHUNK, Manifest};
use crate::protocol::{self, Message};
use quinn::Connection;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use crate::protocol::MAX_RANGE;
/// How long a range may take to arrive.
const RANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// A range of a blob as fetched: the blob's manifest and `bytes` starting at `offset`.
#[derive(Debug, Clone)]
pub struct Range {
    pub manifest: Manifest,
    pub offset: u64,
    pub bytes: bytes::Bytes,
}

impl Range {
    /// The offset just past the bytes held.
    pub fn bytes_end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

/// Where a parent finds ranges of blobs it does not hold (its own pull-through cache).
pub trait RangeSource: Send + Sync + 'static {
    /// Bytes `offset..offset+len` (chunk-aligned `offset`, `len` at most [`MAX_RANGE`]) of the
    /// blob, verified.
    fn read_range(&self, hash: BlobHash, offset: u64, len: u64) -> Pin<Box<dyn Future<Output = Result<Range, LinkError>> + Send + '_>>;
}

/// The child's current connection to its parent, for fetching ranges.
#[derive(Debug, Default)]
pub struct Upstream {
    current: Mutex<Option<(Connection, String)>>,
}

impl Upstream {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Connection, String)>> {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The uplink sets the connection when the link comes up and clears it when it goes down.
    pub fn set(&self, conn: Option<(Connection, String)>) {
        *self.lock() = conn;
    }

    /// The parent's name, when the link is up.
    pub fn parent_name(&self) -> Option<String> {
        self.lock().as_ref().map(|(_, n)| n.clone())
    }

    /// Fetches bytes `offset..offset+len` of `hash` from the parent (`offset` chunk-aligned), with
    /// the manifest when `want_manifest`. The bytes are not yet verified: check them against the
    /// manifest (or the hash, for a one-chunk blob).
    pub async fn fetch(&self, hash: BlobHash, offset: u64, len: u64, want_manifest: bool) -> Result<(u64, Option<Manifest>, Vec<u8>), LinkError> {
        let conn = self.lock().as_ref().map(|(c, _)| c.clone()).ok_or(LinkError::NoParent)?;
        let len = len.min(MAX_RANGE);
        let fut = async {
            let (mut send, mut recv) = conn.open_bi().await?;
            let frame = protocol::encode(&Message::BlobFetch { hash, offset, len, manifest: want_manifest })?;
            send.write_all(&frame).await?;
            send.finish()?;
            let mut prefix = [0u8; 4];
            recv.read_exact(&mut prefix).await?;
            let mut body = vec![0u8; protocol::frame_len(prefix)?];
            recv.read_exact(&mut body).await?;
            match protocol::decode_body(&body)? {
                Message::BlobRange { size, manifest: cvs, offset: got_offset, len: got_len } => {
                    if got_offset != offset || got_len > len || offset + got_len > size {
                        return Err(LinkError::Protocol(format!("parent answered range {got_offset}+{got_len} for {offset}+{len}")));
                    }
                    let manifest = if want_manifest {
                        let m = Manifest { size, cvs };
                        m.verify(&hash).map_err(|e| LinkError::Protocol(format!("parent sent a bad manifest: {e}")))?;
                        Some(m)
                    } else {
                        None
                    };
                    let mut bytes = vec![0u8; got_len as usize];
                    recv.read_exact(&mut bytes).await?;
                    Ok((size, manifest, bytes))
                }
                Message::Error { code, message } => Err(LinkError::Remote { code, message }),
                other => Err(LinkError::Protocol(format!("expected a blob range, got {other:?}"))),
            }
        };
        tokio::time::timeout(RANGE_TIMEOUT, fut).await.map_err(|_| LinkError::Timeout("a blob range"))?
    }
}

/// The chunk indices a byte range touches.
pub fn chunks_of(size: u64, offset: u64, len: u64) -> std::ops::Range<u64> {
    if len == 0 || offset >= size {
        return 0..0;
    }
    let end = (offset + len).min(size);
    (offset / CHUNK)..end.div_ceil(CHUNK).min(manifest::chunk_count(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_map_to_the_chunks_they_touch() {
        let size = 3 * CHUNK + 10;
        assert_eq!(chunks_of(size, 0, 1), 0..1);
        assert_eq!(chunks_of(size, CHUNK - 1, 2), 0..2);
        assert_eq!(chunks_of(size, 3 * CHUNK, 100), 3..4);
        assert_eq!(chunks_of(size, 0, u64::MAX / 2), 0..4);
        assert_eq!(chunks_of(size, size, 5), 0..0);
        assert_eq!(chunks_of(0, 0, 5), 0..0);
    }
}
