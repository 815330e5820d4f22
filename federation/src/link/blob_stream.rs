//! Blob bytes on a stream: sending a range of a blob (from its file, or streamed from the
//! bucket) paced by the link's rate schedule, and receiving an offered blob chunk by chunk,
//! each checked against the manifest before it is kept.

use crate::blobs::{Blob, BlobError, Incoming};
use crate::counters::LinkCounters;
use crate::manifest::CHUNK;
use crate::protocol::ErrorCode;
use crate::rate::{Rate, RateLimiter};
use crate::transfers::Transfer;
use crate::transport::{LinkError, join_err};
use quinn::{RecvStream, SendStream};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How long a blob stream may stay silent before it is given up.
const BLOB_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read and written per step when streaming a blob.
const BLOB_PIECE: usize = 1 << 20;
/// Smaller steps when the link is rate limited, so pacing stays smooth.
const RATED_PIECE: usize = 64 * 1024;

/// Sends `len` bytes of a blob from `offset`: from its file, or streamed from the bucket.
pub(super) async fn send_blob_range(
    send: &mut SendStream,
    blob: &Blob,
    offset: u64,
    len: u64,
    limiter: Option<&RateLimiter>,
    progress: &Transfer,
    counters: &LinkCounters,
) -> Result<(), LinkError> {
    if let Some(path) = blob.path() {
        return send_file_range(send, path, offset, len, limiter, progress, counters).await;
    }
    let Some(remote) = blob.remote() else { return Err(LinkError::Protocol(format!("blob {} has no place", blob.hash()))) };
    let mut pieces = remote.stream(&blob.hash(), offset..offset + len);
    let mut sent = 0u64;
    while let Some(piece) = pieces.recv().await {
        let piece = piece?;
        if let Some(l) = limiter {
            for part in piece.chunks(RATED_PIECE) {
                l.acquire(part.len() as u64).await;
                send.write_all(part).await?;
            }
        } else {
            send.write_all(&piece).await?;
        }
        LinkCounters::add(&counters.blob_bytes_sent, piece.len() as u64);
        progress.advance(piece.len() as u64);
        sent += piece.len() as u64;
    }
    if sent != len {
        return Err(LinkError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("blob {} in {} gave {sent} of {len} bytes", blob.hash(), remote.describe()),
        )));
    }
    Ok(())
}

/// Streams `len` bytes of the file at `path` from `offset`, paced by `limiter` if given.
async fn send_file_range(
    send: &mut SendStream,
    path: &std::path::Path,
    offset: u64,
    len: u64,
    limiter: Option<&RateLimiter>,
    progress: &Transfer,
    counters: &LinkCounters,
) -> Result<(), LinkError> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let piece = if limiter.is_some_and(|l| l.current() != Rate::Unlimited) { RATED_PIECE } else { BLOB_PIECE };
    let mut buf = vec![0u8; BLOB_PIECE];
    let mut remaining = len;
    while remaining > 0 {
        let want = (remaining as usize).min(piece);
        let slice = buf.get_mut(..want).unwrap_or_default();
        let n = file.read(slice).await?;
        if n == 0 {
            return Err(LinkError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than its recorded size", path.display()),
            )));
        }
        if let Some(l) = limiter {
            l.acquire(n as u64).await;
        }
        send.write_all(buf.get(..n).unwrap_or_default()).await?;
        LinkCounters::add(&counters.blob_bytes_sent, n as u64);
        progress.advance(n as u64);
        remaining -= n as u64;
    }
    Ok(())
}

/// Stable error code for a failed blob transfer.
pub(super) fn error_code(e: &LinkError) -> ErrorCode {
    match e {
        LinkError::Blob(BlobError::HashMismatch { .. } | BlobError::SizeMismatch { .. } | BlobError::ChunkMismatch { .. } | BlobError::Manifest { .. }) => {
            ErrorCode::HashMismatch
        }
        LinkError::Blob(BlobError::DiskFull { .. }) => ErrorCode::StorageFull,
        LinkError::Blob(BlobError::Busy { .. }) => ErrorCode::Busy,
        LinkError::Protocol(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    }
}

/// Reads raw blob bytes from `recv` to its end into `incoming`. Bytes are gathered into whole
/// chunks; each chunk is checked and written (on the blocking pool) before the next is read, so
/// what this node has taken off the stream but not yet kept is always less than one chunk (QUIC's
/// flow-control window keeps the sender busy meanwhile). Completes the blob if all of it came;
/// otherwise keeps the verified prefix and fails.
pub async fn receive_into(incoming: Incoming, recv: &mut RecvStream, progress: &Transfer, counters: &LinkCounters) -> Result<(), LinkError> {
    let mut incoming = Some(incoming);
    // Bytes of the chunk being gathered; read straight into it (several QUIC frames per read).
    let mut buf: Vec<u8> = vec![0u8; CHUNK as usize];
    let mut filled = 0usize;
    let mut network: Result<(), LinkError> = Ok(());
    loop {
        let inc = incoming.as_ref().ok_or_else(|| LinkError::Protocol("receiver lost".into()))?;
        let chunk_start = inc.have();
        // The whole current chunk (shorter at the blob's end); past the end, room to notice excess.
        let want = (inc.size().saturating_sub(chunk_start).min(CHUNK) as usize).max(1);
        let read = tokio::time::timeout(BLOB_IDLE_TIMEOUT, recv.read(buf.get_mut(filled..want).unwrap_or_default())).await;
        let n = match read {
            Err(_) => {
                network = Err(LinkError::Timeout("blob bytes"));
                break;
            }
            Ok(Err(e)) => {
                network = Err(e.into());
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(n))) => n,
        };
        LinkCounters::add(&counters.blob_bytes_received, n as u64);
        filled += n;
        if filled == want || chunk_start + filled as u64 >= inc.size() {
            let mut inc = incoming.take().ok_or_else(|| LinkError::Protocol("receiver lost".into()))?;
            let data = std::mem::take(&mut buf);
            let len = filled;
            let (inc, data, result) = tokio::task::spawn_blocking(move || {
                let r = inc.write(data.get(..len).unwrap_or_default());
                (inc, data, r)
            })
            .await
            .map_err(join_err)?;
            result?;
            progress.advance(len as u64);
            buf = data;
            filled = 0;
            incoming = Some(inc);
        }
    }
    let mut inc = incoming.take().ok_or_else(|| LinkError::Protocol("receiver lost".into()))?;
    let written = tokio::task::spawn_blocking(move || {
        if inc.is_complete() {
            return inc.finish();
        }
        let (hash, have, size) = (inc.hash(), inc.have(), inc.size());
        inc.sync()?;
        Err(BlobError::Incomplete { hash, have, size })
    })
    .await
    .map_err(join_err)?;
    match (network, written) {
        (_, Ok(())) => Ok(()),
        (Err(e), Err(BlobError::Incomplete { .. })) => Err(e),
        (_, Err(e)) => Err(e.into()),
    }
}
