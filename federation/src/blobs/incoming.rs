//! A blob being received from a peer: [`Incoming`] buffers bytes to whole chunks, checks each
//! against the manifest before writing it to the partial file, fsyncs in the background every
//! so often, and renames the complete file into the store; the partial file only ever holds a
//! verified prefix, so a cut transfer resumes at the last whole chunk.

use super::*;

/// Reads a partial file chunk by chunk and returns the length of its verified prefix.
pub(super) fn verified_prefix(file: &File, path: &Path, hash: &BlobHash, manifest: &Manifest, on_disk: u64) -> Result<u64, BlobError> {
    let mut buf = vec![0u8; CHUNK as usize];
    let mut have = 0u64;
    let mut index = 0u64;
    while have < on_disk.min(manifest.size) {
        let len = manifest::chunk_len(manifest.size, index);
        if have + len > on_disk {
            break;
        }
        let chunk = buf.get_mut(..len as usize).unwrap_or_default();
        file.read_exact_at(chunk, have).map_err(BlobError::io("read", path))?;
        if !manifest.check_chunk(hash, index, chunk) {
            break;
        }
        have += len;
        index += 1;
    }
    Ok(have)
}

pub(super) struct ReceivingGuard {
    pub(super) shared: Arc<Shared>,
    pub(super) hash: BlobHash,
}

impl fmt::Debug for ReceivingGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceivingGuard({:?})", self.hash)
    }
}

impl Drop for ReceivingGuard {
    fn drop(&mut self) {
        lock(&self.shared.receiving).remove(&self.hash);
    }
}

/// A blob being received: bytes are buffered to whole chunks, each chunk is checked against the
/// manifest before it is written, and the file only ever holds a verified prefix. A chunk that
/// fails its check is dropped and the stream refused; everything before it is kept.
#[derive(Debug)]
pub struct Incoming {
    pub(super) store: BlobStore,
    pub(super) hash: BlobHash,
    pub(super) manifest: Manifest,
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) verified: u64,
    pub(super) unsynced: u64,
    pub(super) sync_every: u64,
    /// The periodic fsync running beside further writes (at most one at a time).
    pub(super) syncing: Option<std::thread::JoinHandle<io::Result<()>>>,
    pub(super) buf: Vec<u8>,
    pub(super) _guard: ReceivingGuard,
}

impl Incoming {
    /// Verified bytes held; the sender continues from here.
    pub fn have(&self) -> u64 {
        self.verified
    }

    pub fn size(&self) -> u64 {
        self.manifest.size
    }

    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    pub fn is_complete(&self) -> bool {
        self.verified == self.manifest.size
    }

    /// Takes the next bytes of the blob (they follow [`Incoming::have`] plus what is buffered).
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), BlobError> {
        while !bytes.is_empty() {
            let index = self.verified / CHUNK;
            let want = manifest::chunk_len(self.manifest.size, index) as usize;
            if want == 0 {
                return Err(BlobError::SizeMismatch { hash: self.hash, expected: self.manifest.size, actual: self.manifest.size + bytes.len() as u64 });
            }
            if self.buf.is_empty() && bytes.len() >= want {
                // A whole chunk in the caller's buffer: check and write it from there.
                let (chunk, rest) = bytes.split_at(want);
                self.commit_chunk(index, chunk)?;
                bytes = rest;
                continue;
            }
            if self.buf.capacity() < want {
                self.buf.reserve_exact(want - self.buf.len());
            }
            let take = (want - self.buf.len()).min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            self.buf.extend_from_slice(now);
            bytes = rest;
            if self.buf.len() == want {
                let chunk = std::mem::take(&mut self.buf);
                let r = self.commit_chunk(index, &chunk);
                self.buf = chunk;
                self.buf.clear();
                r?;
            }
        }
        Ok(())
    }

    fn commit_chunk(&mut self, index: u64, chunk: &[u8]) -> Result<(), BlobError> {
        let offset = self.verified;
        if !self.manifest.check_chunk(&self.hash, index, chunk) {
            return Err(BlobError::ChunkMismatch { hash: self.hash, offset });
        }
        self.file.write_all_at(chunk, offset).map_err(|e| BlobError::write(self.hash, &self.path, e))?;
        self.verified += chunk.len() as u64;
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= self.sync_every {
            self.sync_in_background()?;
        }
        lock(&self.store.shared.verified).insert(self.hash, self.verified);
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn set_sync_every(&mut self, bytes: u64) {
        self.sync_every = bytes;
    }

    /// Waits for the background fsync, if one runs, and reports how it went.
    fn join_sync(&mut self) -> Result<(), BlobError> {
        let Some(running) = self.syncing.take() else { return Ok(()) };
        let result = running.join().unwrap_or_else(|_| Err(io::Error::other("the fsync thread panicked")));
        result.map_err(|e| BlobError::write(self.hash, &self.path, e))
    }

    /// Starts making what was written so far durable while more is written: an fsync takes tens
    /// of milliseconds, longer than the stream's receive window lasts at full speed. It only
    /// bounds what a power cut loses (a restart re-verifies the partial file either way); a
    /// failure shows at the next sync point.
    fn sync_in_background(&mut self) -> Result<(), BlobError> {
        self.join_sync()?;
        let file = self.file.try_clone().map_err(|e| BlobError::write(self.hash, &self.path, e))?;
        self.syncing = Some(std::thread::spawn(move || file.sync_data()));
        self.unsynced = 0;
        Ok(())
    }

    /// Makes what was verified so far durable.
    pub fn sync(&mut self) -> Result<(), BlobError> {
        self.join_sync()?;
        self.file.sync_data().map_err(|e| BlobError::write(self.hash, &self.path, e))?;
        self.unsynced = 0;
        Ok(())
    }

    /// Completes the blob: every chunk verified, fsynced, manifest kept, put into the store.
    pub fn finish(mut self) -> Result<(), BlobError> {
        if !self.buf.is_empty() || self.verified != self.manifest.size {
            return Err(BlobError::SizeMismatch {
                hash: self.hash,
                expected: self.manifest.size,
                actual: self.verified + self.buf.len() as u64,
            });
        }
        self.sync()?;
        self.store.save_manifest(&self.hash, &self.manifest)?;
        self.store.install(&self.path, &self.hash)?;
        lock(&self.store.shared.verified).remove(&self.hash);
        Ok(())
    }
}

