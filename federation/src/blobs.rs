//! Content-addressed blob store on local disk.
//!
//! A blob is named by the BLAKE3 hash of its bytes and stored at `blobs/ab/cdef…`. A blob is
//! never visible before its hash checks: new content is written to `tmp/`, fsynced, hashed
//! again, then renamed into place and the directory fsynced. Blobs received from a peer grow in
//! `partial/<hash>` so that an interrupted transfer resumes where it stopped; only a complete,
//! verified partial file is renamed into the store.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// BLAKE3 hash of a blob's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", &self.to_hex()[..12])
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a blob hash (64 hex digits)")]
pub struct BadHash(pub String);

impl FromStr for BlobHash {
    type Err = BadHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadHash(s.to_string()))?;
        Ok(BlobHash(out))
    }
}

impl From<blake3::Hash> for BlobHash {
    fn from(h: blake3::Hash) -> Self {
        BlobHash(*h.as_bytes())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("blob {expected} failed verification: its bytes hash to {actual}; the partial copy was discarded")]
    HashMismatch { expected: BlobHash, actual: BlobHash },
    #[error("blob {hash}: expected {expected} bytes, got {actual}")]
    SizeMismatch { hash: BlobHash, expected: u64, actual: u64 },
    #[error("blob {hash}: write at offset {offset} but {have} bytes are held")]
    OffsetMismatch { hash: BlobHash, offset: u64, have: u64 },
    #[error("disk full while storing blob {hash} under {path}; free space and the transfer resumes")]
    DiskFull { hash: BlobHash, path: PathBuf },
}

impl BlobError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BlobError + 'a {
        move |source| BlobError::Io { action, path: path.to_path_buf(), source }
    }
}

/// The store rooted at one directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

const COPY_BUF: usize = 1 << 20;

impl BlobStore {
    /// Opens (creating if needed) a store under `root`. Leftover temp files from a crash are removed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        for sub in ["blobs", "tmp", "partial"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(BlobError::io("create", &p))?;
        }
        let store = BlobStore { root };
        let tmp = store.root.join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob lives once stored (whether or not it is there).
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("blobs").join(&hex[..2]).join(&hex[2..])
    }

    fn partial_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("partial").join(hash.to_hex())
    }

    /// The stored blob's path, if the store holds it.
    pub fn get(&self, hash: &BlobHash) -> Option<PathBuf> {
        let p = self.path_of(hash);
        p.is_file().then_some(p)
    }

    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.get(hash).is_some()
    }

    /// Copies `reader` into the store. Returns the hash and size. `progress` is called with the
    /// number of bytes copied so far.
    pub fn put_reader(
        &self,
        mut reader: impl Read,
        mut progress: impl FnMut(u64),
    ) -> Result<(BlobHash, u64), BlobError> {
        let tmp = self.root.join("tmp").join(format!("put-{}-{}", std::process::id(), unique()));
        let result = (|| {
            let mut file = File::create(&tmp).map_err(BlobError::io("create", &tmp))?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; COPY_BUF];
            let mut size = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(BlobError::Io { action: "read", path: tmp.clone(), source: e }),
                };
                let chunk = buf.get(..n).unwrap_or_default();
                hasher.update(chunk);
                file.write_all(chunk).map_err(BlobError::io("write", &tmp))?;
                size += n as u64;
                progress(size);
            }
            file.sync_all().map_err(BlobError::io("fsync", &tmp))?;
            drop(file);
            let hash = BlobHash::from(hasher.finalize());
            self.verify_and_install(&tmp, hash, size)?;
            Ok((hash, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Copies a file into the store.
    pub fn put_file(&self, path: &Path, progress: impl FnMut(u64)) -> Result<(BlobHash, u64), BlobError> {
        let f = File::open(path).map_err(BlobError::io("open", path))?;
        self.put_reader(f, progress)
    }

    /// Re-reads `tmp`, checks its hash and size, and renames it into place.
    fn verify_and_install(&self, tmp: &Path, expected: BlobHash, size: u64) -> Result<(), BlobError> {
        let (actual, actual_size) = hash_file(tmp)?;
        if actual_size != size {
            return Err(BlobError::SizeMismatch { hash: expected, expected: size, actual: actual_size });
        }
        if actual != expected {
            return Err(BlobError::HashMismatch { expected, actual });
        }
        let dest = self.path_of(&expected);
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&dir).map_err(BlobError::io("create", &dir))?;
        fs::rename(tmp, &dest).map_err(BlobError::io("rename into", &dest))?;
        sync_dir(&dir)?;
        Ok(())
    }

    /// How many bytes of a blob being received are already held (0 if none).
    pub fn partial_len(&self, hash: &BlobHash) -> u64 {
        fs::metadata(self.partial_path(hash)).map(|m| m.len()).unwrap_or(0)
    }

    /// Opens the partial file of `hash` to append at `offset`, which must equal what is held.
    pub fn partial_writer(&self, hash: BlobHash, offset: u64) -> Result<PartialWriter, BlobError> {
        let path = self.partial_path(&hash);
        let have = self.partial_len(&hash);
        if have != offset {
            return Err(BlobError::OffsetMismatch { hash, offset, have });
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(BlobError::io("open", &path))?;
        Ok(PartialWriter { file, path, hash, written: offset, unsynced: 0 })
    }

    /// Verifies a complete partial file against its hash and moves it into the store. On a
    /// mismatch the partial file is deleted so the next attempt starts clean.
    pub fn finish_partial(&self, hash: BlobHash, size: u64) -> Result<PathBuf, BlobError> {
        let path = self.partial_path(&hash);
        let result = self.verify_and_install(&path, hash, size);
        if let Err(BlobError::HashMismatch { .. } | BlobError::SizeMismatch { .. }) = &result {
            let _ = fs::remove_file(&path);
        }
        result.map(|()| self.path_of(&hash))
    }

    /// Deletes a partial file (for example when the transfer was abandoned).
    pub fn discard_partial(&self, hash: &BlobHash) {
        let _ = fs::remove_file(self.partial_path(hash));
    }
}

/// Appends received bytes to a partial blob; fsyncs every few MiB so that what a restart sees is
/// what was durably written.
#[derive(Debug)]
pub struct PartialWriter {
    file: File,
    path: PathBuf,
    hash: BlobHash,
    written: u64,
    unsynced: u64,
}

const SYNC_EVERY: u64 = 8 << 20;

impl PartialWriter {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        if let Err(e) = self.file.write_all(bytes) {
            return Err(if e.kind() == io::ErrorKind::StorageFull {
                BlobError::DiskFull { hash: self.hash, path: self.path.clone() }
            } else {
                BlobError::Io { action: "write", path: self.path.clone(), source: e }
            });
        }
        self.written += bytes.len() as u64;
        self.unsynced += bytes.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), BlobError> {
        self.file.sync_data().map_err(BlobError::io("fsync", &self.path))?;
        self.unsynced = 0;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

/// BLAKE3 hash and size of a file.
pub fn hash_file(path: &Path) -> Result<(BlobHash, u64), BlobError> {
    let mut f = File::open(path).map_err(BlobError::io("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let size = io::copy(&mut f, &mut hasher).map_err(BlobError::io("read", path))?;
    Ok((BlobHash::from(hasher.finalize()), size))
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(BlobError::io("fsync", dir))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let (h1, n1) = store.put_reader(&b"hello lesson"[..], |_| {}).expect("put");
        let (h2, _) = store.put_reader(&b"hello lesson"[..], |_| {}).expect("put again");
        assert_eq!(h1, h2);
        assert_eq!(n1, 12);
        assert_eq!(h1, BlobHash::from(blake3::hash(b"hello lesson")));
        let path = store.get(&h1).expect("stored");
        assert_eq!(fs::read(path).expect("read"), b"hello lesson");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    }

    #[test]
    fn partial_resumes_and_only_verified_blobs_become_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let hash = BlobHash::from(blake3::hash(&data));
        let mut w = store.partial_writer(hash, 0).expect("writer");
        w.write(&data[..1000]).expect("write");
        drop(w);
        assert!(!store.contains(&hash));
        assert_eq!(store.partial_len(&hash), 1000);
        assert!(matches!(store.partial_writer(hash, 0), Err(BlobError::OffsetMismatch { .. })));
        let mut w = store.partial_writer(hash, 1000).expect("resume");
        w.write(&data[1000..]).expect("write rest");
        w.sync().expect("sync");
        store.finish_partial(hash, data.len() as u64).expect("finish");
        assert_eq!(fs::read(store.get(&hash).expect("stored")).expect("read"), data);
        assert_eq!(store.partial_len(&hash), 0);
    }

    #[test]
    fn corrupted_partial_is_rejected_and_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let hash = BlobHash::from(blake3::hash(b"the real bytes"));
        let mut w = store.partial_writer(hash, 0).expect("writer");
        w.write(b"the fake bytes").expect("write");
        drop(w);
        let err = store.finish_partial(hash, 14).expect_err("must fail");
        assert!(matches!(err, BlobError::HashMismatch { .. }), "{err}");
        assert!(!store.contains(&hash));
        assert_eq!(store.partial_len(&hash), 0);
    }

    #[test]
    fn hash_parses_from_hex_and_rejects_junk() {
        let h = BlobHash::from(blake3::hash(b"x"));
        assert_eq!(h.to_hex().parse::<BlobHash>().ok(), Some(h));
        assert!("zz".parse::<BlobHash>().is_err());
    }
}
