//! Content-addressed blob store on local disk.
//!
//! A blob is named by the BLAKE3 hash of its bytes and stored at `blobs/ab/cdef…`. A blob is
//! never visible before its hash checks: new content is written to `tmp/`, fsynced, hashed
//! again, then renamed into place and the directory fsynced. Blobs received from a peer grow in
//! `partial/<hash>`, one verified 1 MiB chunk at a time (see [`crate::manifest`]), so that an
//! interrupted transfer resumes at the last whole chunk; only a complete partial file is renamed
//! into the store. Each stored blob of more than one chunk keeps its manifest in
//! `manifests/ab/cdef…` so that it can be sent on without hashing it again.
//!
//! With a [`Remote`] (S3-compatible object storage, see [`remote`]) verified blobs go
//! to the bucket instead of `blobs/`, and `remote/ab/cdef…` records each one the bucket
//! acknowledged. [`BlobStore::blob`] finds a blob in either place and reads it the same way.

use crate::hash::BlobHash;
use crate::manifest::{self, CHUNK, Manifest, ManifestBuilder, ManifestError};
pub mod backend;
mod incoming;
pub mod remote;

pub use backend::{Backend, LocalDisk, ObjectStorage};

pub use incoming::Incoming;
use incoming::{ReceivingGuard, verified_prefix};

use remote::Remote;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("blob {expected} failed verification: its bytes hash to {actual}; the copy was discarded")]
    HashMismatch { expected: BlobHash, actual: BlobHash },
    #[error("blob {hash}: expected {expected} bytes, got {actual}")]
    SizeMismatch { hash: BlobHash, expected: u64, actual: u64 },
    #[error("blob {hash}: the chunk at byte {offset} does not match the blob's hash; it was discarded and will be fetched again")]
    ChunkMismatch { hash: BlobHash, offset: u64 },
    #[error("blob {hash}: {source}")]
    Manifest { hash: BlobHash, source: ManifestError },
    #[error("blob {hash}: the transfer stopped after {have} of {size} bytes; it resumes from there")]
    Incomplete { hash: BlobHash, have: u64, size: u64 },
    #[error("blob {hash} is being received on another stream already")]
    Busy { hash: BlobHash },
    #[error("disk full while storing blob {hash} under {path}; free space and the transfer resumes where it stopped")]
    DiskFull { hash: BlobHash, path: PathBuf },
    #[error("cannot {action} blob {hash} in {remote}: {source}; check that the object storage answers and [object_store] in youke.toml")]
    Object { action: &'static str, hash: BlobHash, remote: String, source: Box<object_store::Error> },
    #[error("object storage: {message}")]
    ObjectConfig { message: String },
}

impl BlobError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BlobError + 'a {
        move |source| BlobError::Io { action, path: path.to_path_buf(), source }
    }

    fn write(hash: BlobHash, path: &Path, e: io::Error) -> BlobError {
        if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
            BlobError::DiskFull { hash, path: path.to_path_buf() }
        } else {
            BlobError::Io { action: "write", path: path.to_path_buf(), source: e }
        }
    }
}

/// The store rooted at one directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    shared: Arc<Shared>,
    /// Verified blobs on this machine's disk (`blobs/`).
    local: Arc<LocalDisk>,
    /// Where new verified blobs go instead, if set.
    remote: Option<Arc<ObjectStorage>>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Verified prefix length of partial blobs, once known; saves re-reading them.
    verified: Mutex<HashMap<BlobHash, u64>>,
    /// Blobs being received right now (one stream each).
    receiving: Mutex<HashSet<BlobHash>>,
}

const COPY_BUF: usize = 1 << 20;
/// Received bytes are fsynced at least this often.
const SYNC_EVERY: u64 = 64 << 20;

impl BlobStore {
    /// Opens (creating if needed) a store under `root`. Leftover temp files from a crash are removed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        for sub in ["blobs", "tmp", "partial", "manifests", "cache", "remote"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(BlobError::io("create", &p))?;
        }
        let local = Arc::new(LocalDisk::open(root.join("blobs"))?);
        let store = BlobStore { root, shared: Arc::default(), local, remote: None };
        // Leftovers of processes that died; not the files of a node serving beside this one (a
        // CLI command opens the same store while `youke serve` runs).
        let tmp = store.root.join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let owner = e.file_name().to_str().and_then(|n| n.split('-').nth(1)).and_then(|p| p.parse::<u32>().ok());
                let alive = owner.is_some_and(|pid| pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists());
                if !alive {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(store)
    }

    /// This store, putting new blobs into `remote` from now on (those on local disk stay
    /// readable there until [`BlobStore::migrate_to_remote`] moves them).
    pub fn with_remote(mut self, remote: Remote) -> Self {
        self.remote = Some(Arc::new(ObjectStorage::new(remote, self.root.join("remote"), self.root.join("tmp"))));
        self
    }

    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_deref().map(ObjectStorage::remote)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob lives once stored (whether or not it is there).
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        self.local.path_of(hash)
    }

    fn manifest_path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("manifests").join(&hex[..2]).join(&hex[2..])
    }

    fn partial_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("partial").join(hash.to_hex())
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        self.root.join("tmp").join(format!("{what}-{}-{}", std::process::id(), unique()))
    }

    /// The stored blob, on local disk or in the bucket, if the store holds it. Makes no request
    /// (a bucket's blobs are known by their markers).
    pub fn blob(&self, hash: &BlobHash) -> Option<Blob> {
        if let Some(size) = self.local.size(hash) {
            return Some(Blob { hash: *hash, size, at: At::File(self.local.path_of(hash)), backend: Arc::clone(&self.local) as Arc<dyn Backend> });
        }
        let o = self.remote.as_ref()?;
        let size = o.size(hash)?;
        Some(Blob { hash: *hash, size, at: At::Object(o.remote().clone()), backend: Arc::clone(o) as Arc<dyn Backend> })
    }

    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.local.size(hash).is_some() || self.remote.as_ref().is_some_and(|o| o.size(hash).is_some())
    }

    /// The blob as a file on local disk, for programs that want a path (the transcoder): the
    /// stored file itself, or a verified temporary copy from the bucket, deleted when dropped.
    pub fn local_copy(&self, hash: &BlobHash) -> Result<Option<LocalCopy>, BlobError> {
        let Some(blob) = self.blob(hash) else { return Ok(None) };
        let tmp = self.tmp_path("fetch");
        if let Some(p) = blob.path() {
            // A second name for the stored file: it stays readable while the copy lives, even if
            // `youke storage migrate` moves the blob into the bucket meanwhile.
            return match fs::hard_link(p, &tmp) {
                Ok(()) => Ok(Some(LocalCopy { path: tmp, temporary: true })),
                Err(_) => Ok(Some(LocalCopy { path: p.to_path_buf(), temporary: false })),
            };
        }
        let copy = LocalCopy { path: tmp.clone(), temporary: true };
        let mut file = File::create(&tmp).map_err(BlobError::io("create", &tmp))?;
        let mut hasher = blake3::Hasher::new();
        let mut reader = blob.reader();
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BlobError::Io { action: "fetch into", path: tmp, source: e }),
            };
            let piece = buf.get(..n).unwrap_or_default();
            hasher.update(piece);
            file.write_all(piece).map_err(|e| BlobError::write(*hash, &tmp, e))?;
        }
        let actual = BlobHash::from(hasher.finalize());
        if actual != *hash {
            return Err(BlobError::HashMismatch { expected: *hash, actual });
        }
        Ok(Some(copy))
    }

    /// Moves every blob on local disk into the bucket (except those `skip` names, such as a
    /// cache's), one at a time: uploaded, recorded, then deleted here. Safe to interrupt and run
    /// again. `progress` gets (bytes done, bytes in all). Returns the blobs and bytes moved.
    pub fn migrate_to_remote(&self, skip: impl Fn(&BlobHash) -> bool, mut progress: impl FnMut(u64, u64)) -> Result<(usize, u64), BlobError> {
        let Some(remote) = &self.remote else {
            return Err(BlobError::ObjectConfig { message: "no object storage is configured ([object_store] in youke.toml)".into() });
        };
        let local: Vec<(BlobHash, u64)> = self.local.list()?.into_iter().filter(|(h, _)| !skip(h)).collect();
        let total = local.iter().map(|(_, s)| s).sum();
        let mut done = 0;
        progress(0, total);
        for (hash, size) in &local {
            remote.install(&self.path_of(hash), hash, *size)?;
            done += size;
            progress(done, total);
        }
        Ok((local.len(), done))
    }

    /// Copies `reader` into the store. Returns the hash and size. `progress` is called with the
    /// number of bytes copied so far.
    pub fn put_reader(
        &self,
        mut reader: impl Read,
        mut progress: impl FnMut(u64),
    ) -> Result<(BlobHash, u64), BlobError> {
        let tmp = self.tmp_path("put");
        let result = (|| {
            let mut file = File::create(&tmp).map_err(BlobError::io("create", &tmp))?;
            let mut builder = ManifestBuilder::new();
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
                builder.update(chunk);
                file.write_all(chunk).map_err(BlobError::io("write", &tmp))?;
                size += n as u64;
                progress(size);
            }
            file.sync_all().map_err(BlobError::io("fsync", &tmp))?;
            drop(file);
            let (hash, manifest) = builder.finish();
            // Read back what reached the disk before it becomes visible.
            let (actual, actual_size) = hash_file(&tmp)?;
            if actual_size != size {
                return Err(BlobError::SizeMismatch { hash, expected: size, actual: actual_size });
            }
            if actual != hash {
                return Err(BlobError::HashMismatch { expected: hash, actual });
            }
            self.save_manifest(&hash, &manifest)?;
            self.install(&tmp, &hash)?;
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

    /// Stores a complete, verified, fsynced file: uploads it to the bucket and records it there
    /// (then deletes it here), or renames it into `blobs/` and fsyncs the directory.
    fn install(&self, from: &Path, hash: &BlobHash) -> Result<(), BlobError> {
        let size = fs::metadata(from).map_err(BlobError::io("stat", from))?.len();
        match &self.remote {
            Some(remote) => remote.install(from, hash, size),
            None => self.local.install(from, hash, size),
        }
    }

    fn install_local(&self, from: &Path, hash: &BlobHash) -> Result<(), BlobError> {
        let size = fs::metadata(from).map_err(BlobError::io("stat", from))?.len();
        self.local.install(from, hash, size)
    }

    /// The manifest of a stored blob, computed (and kept) if it was never saved.
    pub fn manifest(&self, hash: &BlobHash) -> Result<Manifest, BlobError> {
        let path = self.manifest_path(hash);
        if let Ok(bytes) = fs::read(&path)
            && let Ok(m) = Manifest::from_bytes(&bytes)
        {
            return Ok(m);
        }
        let blob = self.blob(hash).ok_or_else(|| BlobError::Io {
            action: "open",
            path: self.path_of(hash),
            source: io::Error::new(io::ErrorKind::NotFound, "the store does not hold this blob"),
        })?;
        let mut f = blob.reader();
        let mut builder = ManifestBuilder::new();
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => builder.update(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BlobError::Io { action: "read", path: self.path_of(hash), source: e }),
            }
        }
        let (actual, manifest) = builder.finish();
        if actual != *hash {
            return Err(BlobError::HashMismatch { expected: *hash, actual });
        }
        self.save_manifest(hash, &manifest)?;
        Ok(manifest)
    }

    fn save_manifest(&self, hash: &BlobHash, manifest: &Manifest) -> Result<(), BlobError> {
        if manifest.cvs.is_empty() {
            return Ok(()); // One chunk: the hash is the whole manifest.
        }
        self.write_small(hash, "manifest", &manifest.to_bytes(), &self.manifest_path(hash))
    }

    /// Writes a small file of blob `hash` durably: temp file, fsync, rename, directory fsync.
    fn write_small(&self, hash: &BlobHash, what: &str, bytes: &[u8], dest: &Path) -> Result<(), BlobError> {
        let tmp = self.tmp_path(what);
        let write = || -> Result<(), BlobError> {
            let mut f = File::create(&tmp).map_err(BlobError::io("create", &tmp))?;
            f.write_all(bytes).map_err(|e| BlobError::write(*hash, &tmp, e))?;
            f.sync_all().map_err(BlobError::io("fsync", &tmp))?;
            rename_durably(&tmp, dest)
        };
        let r = write();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    /// The manifest kept for a blob (stored, cached or being received), without computing one.
    pub fn saved_manifest(&self, hash: &BlobHash) -> Option<Manifest> {
        fs::read(self.manifest_path(hash)).ok().and_then(|b| Manifest::from_bytes(&b).ok())
    }

    /// Keeps a verified manifest for a blob not (yet) in the store, such as a cached one.
    pub fn keep_manifest(&self, hash: &BlobHash, manifest: &Manifest) -> Result<(), BlobError> {
        self.save_manifest(hash, manifest)
    }

    fn cache_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("cache").join(hash.to_hex())
    }

    /// Writes verified bytes of a blob fetched for viewing into its (sparse) cache file.
    pub fn cache_write(&self, hash: &BlobHash, offset: u64, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.cache_path(hash);
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(BlobError::io("open", &path))?;
        file.write_all_at(bytes, offset).map_err(|e| BlobError::write(*hash, &path, e))
    }

    /// Reads `len` bytes at `offset` of a cache file; holes and the part past its end read as
    /// zeros (callers verify what they read against the manifest).
    pub fn cache_read(&self, hash: &BlobHash, offset: u64, len: usize) -> Result<Vec<u8>, BlobError> {
        let path = self.cache_path(hash);
        let mut out = vec![0u8; len];
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(BlobError::Io { action: "open", path, source: e }),
        };
        let mut done = 0;
        while done < len {
            let n = file.read_at(out.get_mut(done..).unwrap_or_default(), offset + done as u64).map_err(BlobError::io("read", &path))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(out)
    }

    /// Moves a cache file whose every chunk verified into the store (on local disk: a cache
    /// is evicted again, never put in the bucket).
    pub fn cache_promote(&self, hash: &BlobHash) -> Result<(), BlobError> {
        let path = self.cache_path(hash);
        File::open(&path).and_then(|f| f.sync_all()).map_err(BlobError::io("fsync", &path))?;
        self.install_local(&path, hash)
    }

    /// Deletes a cached blob: its cache file, or its stored copy once promoted, and its manifest.
    /// Only for blobs held as a cache, never for this node's own or replicated media.
    pub fn evict_cached(&self, hash: &BlobHash, promoted: bool) {
        let _ = fs::remove_file(self.cache_path(hash));
        if promoted {
            let _ = self.local.remove(hash);
        }
        let _ = fs::remove_file(self.manifest_path(hash));
    }

    /// Hashes of the blobs with a cache file.
    pub fn cache_files(&self) -> Vec<BlobHash> {
        fs::read_dir(self.root.join("cache"))
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// How many bytes of a blob being received are held and verified (0 if none).
    pub fn partial_len(&self, hash: &BlobHash) -> u64 {
        lock(&self.shared.verified).get(hash).copied().unwrap_or(0)
    }

    /// Starts (or resumes) receiving blob `hash`, described by a manifest from the sender. The
    /// manifest is checked against the hash, and the partial file against the manifest: only
    /// its verified prefix is kept, so [`Incoming::have`] is where the sender continues.
    pub fn begin_incoming(&self, hash: BlobHash, manifest: Manifest) -> Result<Incoming, BlobError> {
        manifest.verify(&hash).map_err(|source| BlobError::Manifest { hash, source })?;
        if !lock(&self.shared.receiving).insert(hash) {
            return Err(BlobError::Busy { hash });
        }
        let guard = ReceivingGuard { shared: Arc::clone(&self.shared), hash };
        let path = self.partial_path(&hash);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(BlobError::io("open", &path))?;
        let on_disk = file.metadata().map_err(BlobError::io("stat", &path))?.len();
        let known = lock(&self.shared.verified).get(&hash).copied();
        let have = match known {
            Some(v) if v <= on_disk => v,
            _ => verified_prefix(&file, &path, &hash, &manifest, on_disk)?,
        };
        if on_disk != have {
            file.set_len(have).map_err(|e| BlobError::write(hash, &path, e))?;
        }
        lock(&self.shared.verified).insert(hash, have);
        Ok(Incoming {
            store: self.clone(),
            hash,
            manifest,
            file,
            path,
            verified: have,
            unsynced: 0,
            sync_every: SYNC_EVERY,
            syncing: None,
            buf: Vec::new(),
            _guard: guard,
        })
    }

    /// Deletes partial files untouched for longer than `max_age` (transfers nobody resumed).
    /// Returns how many were removed.
    pub fn gc_partials(&self, max_age: Duration) -> usize {
        let dir = self.root.join("partial");
        let Ok(entries) = fs::read_dir(&dir) else { return 0 };
        let busy = lock(&self.shared.receiving).clone();
        let mut removed = 0;
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            let hash = e.file_name().to_str().and_then(|n| n.parse::<BlobHash>().ok());
            if old && hash.is_none_or(|h| !busy.contains(&h)) && fs::remove_file(e.path()).is_ok() {
                if let Some(h) = hash {
                    lock(&self.shared.verified).remove(&h);
                }
                removed += 1;
            }
        }
        removed
    }

    /// Deletes a partial file (for example when the transfer was abandoned).
    pub fn discard_partial(&self, hash: &BlobHash) {
        let _ = fs::remove_file(self.partial_path(hash));
        lock(&self.shared.verified).remove(hash);
    }
}

/// A stored blob: where it is and how big. Cheap to clone; reading it may make requests.
#[derive(Debug, Clone)]
pub struct Blob {
    hash: BlobHash,
    size: u64,
    at: At,
    /// The back end holding it, which reads it.
    backend: Arc<dyn Backend>,
}

#[derive(Debug, Clone)]
enum At {
    File(PathBuf),
    Object(Remote),
}

impl Blob {
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file, if the blob is on local disk.
    pub fn path(&self) -> Option<&Path> {
        match &self.at {
            At::File(p) => Some(p),
            At::Object(_) => None,
        }
    }

    /// The bucket, if the blob is there.
    pub fn remote(&self) -> Option<&Remote> {
        match &self.at {
            At::File(_) => None,
            At::Object(r) => Some(r),
        }
    }

    /// Fills `buf` from byte `offset` (blocking).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), BlobError> {
        self.backend.read_at(&self.hash, buf, offset)
    }

    /// A sequential reader of the whole blob (blocking).
    pub fn reader(&self) -> Box<dyn Read + Send> {
        match self.backend.reader(&self.hash) {
            Ok(r) => r,
            Err(e) => Box::new(FailedReader(Some(io::Error::other(e.to_string())))),
        }
    }
}

/// A reader whose first read fails with the error of opening it.
struct FailedReader(Option<io::Error>);

impl Read for FailedReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self.0.take().unwrap_or_else(|| io::Error::other("read failed")))
    }
}

/// A blob as a local file (see [`BlobStore::local_copy`]).
#[derive(Debug)]
pub struct LocalCopy {
    path: PathBuf,
    temporary: bool,
}

impl LocalCopy {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// BLAKE3 hash and size of a file.
pub fn hash_file(path: &Path) -> Result<(BlobHash, u64), BlobError> {
    let mut f = File::open(path).map_err(BlobError::io("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let size = io::copy(&mut f, &mut hasher).map_err(BlobError::io("read", path))?;
    Ok((BlobHash::from(hasher.finalize()), size))
}

/// Renames `from` to `to` (creating `to`'s directory) and fsyncs that directory.
fn rename_durably(from: &Path, to: &Path) -> Result<(), BlobError> {
    let dir = to.parent().map(Path::to_path_buf).unwrap_or_default();
    fs::create_dir_all(&dir).map_err(BlobError::io("create", &dir))?;
    fs::rename(from, to).map_err(BlobError::io("rename into", to))?;
    sync_dir(&dir)
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(BlobError::io("fsync", dir))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let path = store.blob(&h1).expect("stored").path().expect("local").to_path_buf();
        assert_eq!(fs::read(path).expect("read"), b"hello lesson");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    }

    fn data(len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new().update(b"blob test").finalize_xof().fill(&mut out);
        out
    }

    /// A sender's view of `data`: its hash and manifest.
    fn describe(data: &[u8]) -> (BlobHash, Manifest) {
        let mut b = ManifestBuilder::new();
        b.update(data);
        b.finish()
    }

    #[test]
    fn received_chunks_resume_at_the_last_whole_chunk_and_only_complete_blobs_become_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let data = data(3 * CHUNK as usize + 12_345);
        let (hash, manifest) = describe(&data);
        let mut inc = store.begin_incoming(hash, manifest.clone()).expect("begin");
        assert_eq!(inc.have(), 0);
        // A second stream for the same blob is refused while the first is alive.
        assert!(matches!(store.begin_incoming(hash, manifest.clone()), Err(BlobError::Busy { .. })));
        // 1.5 chunks arrive, then the link is cut: the half chunk is not kept.
        inc.write(&data[..CHUNK as usize + CHUNK as usize / 2]).expect("write");
        assert_eq!(inc.have(), CHUNK);
        drop(inc);
        assert!(!store.contains(&hash));
        // A fresh store (as after a restart) finds the verified prefix on disk.
        let store = BlobStore::open(dir.path()).expect("reopen");
        let mut inc = store.begin_incoming(hash, manifest.clone()).expect("resume");
        assert_eq!(inc.have(), CHUNK);
        inc.write(&data[CHUNK as usize..]).expect("rest");
        assert!(inc.is_complete());
        inc.finish().expect("finish");
        let path = store.path_of(&hash);
        assert_eq!(fs::read(path).expect("read"), data);
        assert_eq!(store.manifest(&hash).expect("manifest kept"), manifest);
        assert_eq!(fs::read_dir(dir.path().join("partial")).expect("partial").count(), 0);
    }

    #[test]
    fn background_fsyncs_overlap_writes_and_a_cut_during_one_keeps_the_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let data = data(7 * CHUNK as usize + 5);
        let (hash, manifest) = describe(&data);
        let mut inc = store.begin_incoming(hash, manifest.clone()).expect("begin");
        inc.set_sync_every(CHUNK);
        for piece in data[..4 * CHUNK as usize].chunks(300_000) {
            inc.write(piece).expect("write");
        }
        assert_eq!(inc.have(), 4 * CHUNK);
        // Cut while an fsync may still run beside: nothing hangs, the prefix is kept.
        drop(inc);
        let store = BlobStore::open(dir.path()).expect("reopen");
        let mut inc = store.begin_incoming(hash, manifest).expect("resume");
        assert_eq!(inc.have(), 4 * CHUNK);
        inc.set_sync_every(CHUNK);
        inc.write(&data[4 * CHUNK as usize..]).expect("rest");
        inc.finish().expect("finish");
        let path = store.path_of(&hash);
        assert_eq!(fs::read(path).expect("read"), data);
    }

    #[test]
    fn a_corrupted_chunk_is_refused_and_the_verified_prefix_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let data = data(4 * CHUNK as usize);
        let (hash, manifest) = describe(&data);
        let mut inc = store.begin_incoming(hash, manifest.clone()).expect("begin");
        let mut bad = data.clone();
        bad[2 * CHUNK as usize + 99] ^= 0x40;
        let err = inc.write(&bad).expect_err("corrupted chunk refused");
        assert!(matches!(err, BlobError::ChunkMismatch { offset, .. } if offset == 2 * CHUNK), "{err}");
        assert_eq!(inc.have(), 2 * CHUNK);
        drop(inc);
        let mut inc = store.begin_incoming(hash, manifest).expect("again");
        assert_eq!(inc.have(), 2 * CHUNK);
        inc.write(&data[2 * CHUNK as usize..]).expect("good bytes");
        inc.finish().expect("finish");
        assert_eq!(fs::read(store.blob(&hash).expect("stored").path().expect("local")).expect("read"), data);
    }

    #[test]
    fn garbage_on_disk_after_a_crash_is_cut_off_at_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let data = data(3 * CHUNK as usize);
        let (hash, manifest) = describe(&data);
        // As after a power cut: a good first chunk, then zeros where the second should be.
        let mut junk = data[..CHUNK as usize].to_vec();
        junk.extend(std::iter::repeat_n(0u8, CHUNK as usize + 10));
        fs::write(dir.path().join("partial").join(hash.to_hex()), &junk).expect("plant");
        let inc = store.begin_incoming(hash, manifest).expect("begin");
        assert_eq!(inc.have(), CHUNK);
        assert_eq!(fs::metadata(dir.path().join("partial").join(hash.to_hex())).expect("stat").len(), CHUNK);
    }

    #[test]
    fn a_forged_manifest_is_refused_before_any_byte_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let (hash, mut manifest) = describe(&data(2 * CHUNK as usize + 1));
        manifest.cvs[1][3] ^= 1;
        assert!(matches!(store.begin_incoming(hash, manifest), Err(BlobError::Manifest { .. })));
    }

    #[test]
    fn small_blobs_are_checked_against_their_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let (hash, manifest) = describe(b"the real bytes");
        let mut inc = store.begin_incoming(hash, manifest.clone()).expect("begin");
        assert!(matches!(inc.write(b"the fake bytes"), Err(BlobError::ChunkMismatch { offset: 0, .. })));
        drop(inc);
        let mut inc = store.begin_incoming(hash, manifest).expect("begin");
        inc.write(b"the real bytes").expect("write");
        inc.finish().expect("finish");
        assert!(store.contains(&hash));
    }

    #[test]
    fn abandoned_partials_are_collected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let data = data(2 * CHUNK as usize);
        let (hash, manifest) = describe(&data);
        let mut inc = store.begin_incoming(hash, manifest).expect("begin");
        inc.write(&data[..CHUNK as usize]).expect("write");
        // Alive: never collected.
        assert_eq!(store.gc_partials(Duration::ZERO), 0);
        drop(inc);
        assert_eq!(store.gc_partials(Duration::from_secs(3600)), 0, "young partial kept");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(store.gc_partials(Duration::from_millis(10)), 1);
        assert_eq!(store.partial_len(&hash), 0);
    }

    #[test]
    fn hash_parses_from_hex_and_rejects_junk() {
        let h = BlobHash::from(blake3::hash(b"x"));
        assert_eq!(h.to_hex().parse::<BlobHash>().ok(), Some(h));
        assert!("zz".parse::<BlobHash>().is_err());
    }

    #[test]
    fn opening_removes_temp_files_of_dead_processes_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        BlobStore::open(dir.path()).expect("open");
        let live = dir.path().join("tmp").join(format!("put-{}-77", std::process::id()));
        let dead = dir.path().join("tmp").join("put-999999999-1");
        let odd = dir.path().join("tmp").join("stray");
        for p in [&live, &dead, &odd] {
            fs::write(p, b"x").expect("plant");
        }
        BlobStore::open(dir.path()).expect("reopen");
        assert!(live.exists(), "a running process's temp file is kept");
        assert!(!dead.exists() && !odd.exists());
    }

    fn bucket() -> Remote {
        Remote::new(std::sync::Arc::new(object_store::memory::InMemory::new()), "p", "memory")
    }

    #[test]
    fn with_a_bucket_blobs_go_there_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open").with_remote(bucket());
        let data = data(2 * CHUNK as usize + 77);
        let (hash, size) = store.put_reader(&data[..], |_| {}).expect("put");
        assert_eq!(size, data.len() as u64);
        assert!(!store.path_of(&hash).exists(), "not on local disk");
        assert!(store.contains(&hash));
        let blob = store.blob(&hash).expect("held");
        assert!(blob.path().is_none() && blob.remote().is_some());
        assert_eq!(blob.size(), size);
        let mut mid = vec![0u8; 1000];
        blob.read_exact_at(&mut mid, CHUNK - 10).expect("range");
        assert_eq!(mid, data[CHUNK as usize - 10..CHUNK as usize + 990]);
        // The manifest is computed from the bucket when it was not kept.
        fs::remove_file(store.manifest_path(&hash)).expect("drop manifest");
        assert_eq!(store.manifest(&hash).expect("manifest"), describe(&data).1);
        // A local copy for the transcoder is verified, and deleted when dropped.
        let copy = store.local_copy(&hash).expect("copy").expect("held");
        assert_eq!(fs::read(copy.path()).expect("read"), data);
        let p = copy.path().to_path_buf();
        drop(copy);
        assert!(!p.exists());
    }

    #[test]
    fn a_received_blob_goes_to_the_bucket_and_a_crash_before_the_upload_resumes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let remote = bucket();
        let data = data(3 * CHUNK as usize + 5);
        let (hash, manifest) = describe(&data);
        {
            // All bytes arrive, then the process dies before finishing.
            let store = BlobStore::open(dir.path()).expect("open").with_remote(remote.clone());
            let mut inc = store.begin_incoming(hash, manifest.clone()).expect("begin");
            inc.write(&data).expect("write");
            inc.sync().expect("sync");
        }
        let store = BlobStore::open(dir.path()).expect("reopen").with_remote(remote.clone());
        assert!(!store.contains(&hash));
        let inc = store.begin_incoming(hash, manifest).expect("resume");
        assert!(inc.is_complete());
        inc.finish().expect("finish");
        assert_eq!(remote.head(&hash).expect("head"), Some(data.len() as u64));
        assert_eq!(fs::read_dir(dir.path().join("partial")).expect("partial").count(), 0);
        let mut all = Vec::new();
        store.blob(&hash).expect("held").reader().read_to_end(&mut all).expect("read");
        assert!(all == data);
    }

    #[test]
    fn migrating_moves_local_blobs_into_the_bucket_except_the_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = BlobStore::open(dir.path()).expect("open");
        let (a, _) = local.put_reader(&b"lesson one"[..], |_| {}).expect("a");
        let (b, _) = local.put_reader(&b"cached lesson"[..], |_| {}).expect("b");
        let store = BlobStore::open(dir.path()).expect("reopen").with_remote(bucket());
        assert!(store.blob(&a).expect("a").path().is_some(), "still read from local disk");
        let mut seen = Vec::new();
        let (n, bytes) = store.migrate_to_remote(|h| *h == b, |d, t| seen.push((d, t))).expect("migrate");
        assert_eq!((n, bytes), (1, 10));
        assert_eq!(seen.last(), Some(&(10, 10)));
        assert!(store.blob(&a).expect("a").remote().is_some());
        assert!(store.blob(&b).expect("b").path().is_some());
        // Again: nothing left to move.
        assert_eq!(store.migrate_to_remote(|h| *h == b, |_, _| {}).expect("again"), (0, 0));
        assert!(BlobStore::open(dir.path()).expect("plain").migrate_to_remote(|_| false, |_, _| {}).is_err());
    }
}
