//! Where verified whole blobs are kept: the local disk ([`LocalDisk`], `blobs/ab/cdef…`) or a
//! bucket of S3-compatible object storage ([`ObjectStorage`]: the objects, and a marker file
//! per blob the bucket acknowledged, so asking whether a blob is held makes no request). Both
//! implement [`Backend`], and [`conformance`] is the one set of checks each must pass: the
//! unit tests run it on the local disk and on an in-memory object store, and
//! `tests/tests/object_storage.rs` runs it against a real SeaweedFS cluster.
//!
//! Blobs still growing are not kept by a back end: a blob being received (`partial/`, see
//! [`super::Incoming`]) and a blob fetched for viewing (`cache/`) are written at offsets, chunk
//! by chunk, which object storage cannot do; they live on local disk until complete and
//! verified, and are then installed into a back end like any other blob.

use super::remote::Remote;
use super::{BlobError, rename_durably};
use crate::hash::BlobHash;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A place that keeps verified whole blobs, named by their hash.
pub trait Backend: fmt::Debug + Send + Sync {
    /// Where, for logs and messages: "local disk" or the bucket.
    fn describe(&self) -> String;
    /// The blob's size if it is held here.
    fn size(&self, hash: &BlobHash) -> Option<u64>;
    /// Takes the complete, verified, fsynced file `from` (`size` bytes) as blob `hash`. The
    /// file is consumed: renamed into place, or uploaded, recorded and deleted. Installing a
    /// blob held already keeps the one held.
    fn install(&self, from: &Path, hash: &BlobHash, size: u64) -> Result<(), BlobError>;
    /// Fills `buf` with the blob's bytes from `offset`.
    fn read_at(&self, hash: &BlobHash, buf: &mut [u8], offset: u64) -> Result<(), BlobError>;
    /// A sequential reader of the whole blob.
    fn reader(&self, hash: &BlobHash) -> Result<Box<dyn Read + Send>, BlobError>;
    /// Forgets the blob (and deletes its bytes where that is this back end's to do).
    fn remove(&self, hash: &BlobHash) -> Result<(), BlobError>;
    /// Every blob held: hash and size.
    fn list(&self) -> Result<Vec<(BlobHash, u64)>, BlobError>;
}

/// `dir/ab/cdef…` for a blob.
fn fanned(dir: &Path, hash: &BlobHash) -> PathBuf {
    let hex = hash.to_hex();
    dir.join(&hex[..2]).join(&hex[2..])
}

/// The files under a fanned-out directory, as (hash, path).
fn fanned_files(dir: &Path) -> Result<Vec<(BlobHash, PathBuf)>, BlobError> {
    let mut out = Vec::new();
    for sub in fs::read_dir(dir).map_err(BlobError::io("list", dir))?.flatten() {
        let Ok(files) = fs::read_dir(sub.path()) else { continue };
        for f in files.flatten() {
            let name = format!("{}{}", sub.file_name().to_string_lossy(), f.file_name().to_string_lossy());
            if let Ok(hash) = name.parse::<BlobHash>() {
                out.push((hash, f.path()));
            }
        }
    }
    Ok(out)
}

fn not_held(hash: &BlobHash, path: PathBuf) -> BlobError {
    BlobError::Io { action: "open", path, source: io::Error::new(io::ErrorKind::NotFound, format!("blob {hash} is not held here")) }
}

/// Blobs as files on this machine's disk.
#[derive(Debug, Clone)]
pub struct LocalDisk {
    dir: PathBuf,
}

impl LocalDisk {
    /// The blobs under `dir` (created if needed).
    pub fn open(dir: PathBuf) -> Result<LocalDisk, BlobError> {
        fs::create_dir_all(&dir).map_err(BlobError::io("create", &dir))?;
        Ok(LocalDisk { dir })
    }

    /// Where the blob's file is (whether or not it is there).
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        fanned(&self.dir, hash)
    }
}

impl Backend for LocalDisk {
    fn describe(&self) -> String {
        "local disk".into()
    }

    fn size(&self, hash: &BlobHash) -> Option<u64> {
        fs::metadata(self.path_of(hash)).ok().filter(|m| m.is_file()).map(|m| m.len())
    }

    fn install(&self, from: &Path, hash: &BlobHash, _size: u64) -> Result<(), BlobError> {
        rename_durably(from, &self.path_of(hash))
    }

    fn read_at(&self, hash: &BlobHash, buf: &mut [u8], offset: u64) -> Result<(), BlobError> {
        let p = self.path_of(hash);
        match File::open(&p) {
            Ok(f) => f.read_exact_at(buf, offset).map_err(BlobError::io("read", &p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_held(hash, p)),
            Err(e) => Err(BlobError::Io { action: "open", path: p, source: e }),
        }
    }

    fn reader(&self, hash: &BlobHash) -> Result<Box<dyn Read + Send>, BlobError> {
        let p = self.path_of(hash);
        match File::open(&p) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_held(hash, p)),
            Err(e) => Err(BlobError::Io { action: "open", path: p, source: e }),
        }
    }

    fn remove(&self, hash: &BlobHash) -> Result<(), BlobError> {
        let p = self.path_of(hash);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::Io { action: "remove", path: p, source: e }),
        }
    }

    fn list(&self) -> Result<Vec<(BlobHash, u64)>, BlobError> {
        Ok(fanned_files(&self.dir)?.into_iter().filter_map(|(h, p)| fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| (h, m.len()))).collect())
    }
}

/// Blobs in a bucket, with a marker file per blob the bucket acknowledged (`markers/ab/cdef…`,
/// holding the size).
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    remote: Remote,
    markers: PathBuf,
    /// Where markers are written before they are renamed into place.
    tmp: PathBuf,
}

impl ObjectStorage {
    /// Blobs in `remote`, their markers under `markers`, temporary files in `tmp` (both
    /// directories exist: [`super::BlobStore::open`] makes them).
    pub fn new(remote: Remote, markers: PathBuf, tmp: PathBuf) -> ObjectStorage {
        ObjectStorage { remote, markers, tmp }
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    fn marker(&self, hash: &BlobHash) -> PathBuf {
        fanned(&self.markers, hash)
    }

    fn write_marker(&self, hash: &BlobHash, size: u64) -> Result<(), BlobError> {
        use std::io::Write;
        let tmp = self.tmp.join(format!("marker-{}-{}", std::process::id(), super::unique()));
        let written = (|| {
            let mut f = File::create(&tmp).map_err(BlobError::io("create", &tmp))?;
            f.write_all(format!("{size}\n").as_bytes()).map_err(|e| BlobError::write(*hash, &tmp, e))?;
            f.sync_all().map_err(BlobError::io("fsync", &tmp))?;
            rename_durably(&tmp, &self.marker(hash))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

impl Backend for ObjectStorage {
    fn describe(&self) -> String {
        self.remote.describe().to_string()
    }

    fn size(&self, hash: &BlobHash) -> Option<u64> {
        fs::read_to_string(self.marker(hash)).ok()?.trim().parse().ok()
    }

    /// Uploads (checked by size afterwards), records the marker only once the bucket holds the
    /// blob, then deletes `from`.
    fn install(&self, from: &Path, hash: &BlobHash, size: u64) -> Result<(), BlobError> {
        self.remote.upload(from, hash, size)?;
        self.write_marker(hash, size)?;
        fs::remove_file(from).map_err(BlobError::io("remove", from))
    }

    fn read_at(&self, hash: &BlobHash, buf: &mut [u8], offset: u64) -> Result<(), BlobError> {
        if self.size(hash).is_none() {
            return Err(not_held(hash, self.marker(hash)));
        }
        if buf.is_empty() {
            return Ok(()); // No request: an empty range is not one a bucket answers.
        }
        let got = self.remote.read_blocking(hash, offset..offset + buf.len() as u64)?;
        if got.len() != buf.len() {
            return Err(BlobError::SizeMismatch { hash: *hash, expected: offset + buf.len() as u64, actual: offset + got.len() as u64 });
        }
        buf.copy_from_slice(&got);
        Ok(())
    }

    fn reader(&self, hash: &BlobHash) -> Result<Box<dyn Read + Send>, BlobError> {
        let size = self.size(hash).ok_or_else(|| not_held(hash, self.marker(hash)))?;
        Ok(Box::new(self.remote.reader(hash, size)))
    }

    /// Forgets the marker; the object stays in the bucket (other nodes may share the bucket,
    /// and a blob is content-addressed: the same bytes come back under the same name).
    fn remove(&self, hash: &BlobHash) -> Result<(), BlobError> {
        let p = self.marker(hash);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::Io { action: "remove", path: p, source: e }),
        }
    }

    fn list(&self) -> Result<Vec<(BlobHash, u64)>, BlobError> {
        Ok(fanned_files(&self.markers)?.into_iter().filter_map(|(h, p)| Some((h, fs::read_to_string(p).ok()?.trim().parse().ok()?))).collect())
    }
}

/// The checks every back end must pass, on blobs it does not hold yet (`scratch` is a
/// directory for the files it installs). Returns what failed.
pub fn conformance(b: &dyn Backend, scratch: &Path) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{}: {what}", b.describe()));
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    // Three blobs: empty, one small, one over a chunk and a half (uneven reads cross chunks).
    let bodies: Vec<Vec<u8>> = [0usize, 1000, (3 << 20) / 2 + 17]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut x = (seed as u64) ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, String> {
        let p = scratch.join(name);
        fs::write(&p, bytes).and_then(|()| File::open(&p)?.sync_all()).map_err(|e| format!("scratch file: {e}"))?;
        Ok(p)
    };
    let before: Vec<BlobHash> = b.list().map_err(|e| e.to_string())?.into_iter().map(|(h, _)| h).collect();
    let mut held = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let hash = BlobHash::from(blake3::hash(body));
        if b.size(&hash).is_some() {
            return fail("holds a blob it was never given");
        }
        if b.reader(&hash).is_ok() || b.read_at(&hash, &mut [0u8; 1], 0).is_ok() {
            return fail("reads a blob it does not hold");
        }
        let from = write(&format!("blob-{i}"), body)?;
        b.install(&from, &hash, body.len() as u64).map_err(|e| format!("{}: install: {e}", b.describe()))?;
        if from.exists() {
            return fail("left the installed file behind");
        }
        if b.size(&hash) != Some(body.len() as u64) {
            return fail("does not report the installed blob's size");
        }
        let mut all = Vec::new();
        b.reader(&hash).and_then(|mut r| r.read_to_end(&mut all).map_err(|e| BlobError::Io { action: "read", path: PathBuf::new(), source: e })).map_err(|e| e.to_string())?;
        if all != *body {
            return fail("reads back other bytes than it was given");
        }
        for (offset, len) in [(0u64, body.len().min(1)), (body.len() as u64 / 2, body.len() / 3), (body.len().saturating_sub(5) as u64, body.len().min(5))] {
            let mut buf = vec![0u8; len];
            b.read_at(&hash, &mut buf, offset).map_err(|e| format!("{}: read_at {offset}+{len}: {e}", b.describe()))?;
            if buf != body[offset as usize..offset as usize + len] {
                return fail("reads other bytes at an offset");
            }
        }
        if !body.is_empty() && b.read_at(&hash, &mut [0u8; 2], body.len() as u64 - 1).is_ok() {
            return fail("reads past the end of a blob");
        }
        // Installing it again keeps one blob with the same bytes.
        let again = write(&format!("again-{i}"), body)?;
        b.install(&again, &hash, body.len() as u64).map_err(|e| format!("{}: install again: {e}", b.describe()))?;
        if b.size(&hash) != Some(body.len() as u64) {
            return fail("lost a blob installed twice");
        }
        held.push((hash, body.len() as u64));
    }
    let listed = b.list().map_err(|e| e.to_string())?;
    for (h, n) in &held {
        if !listed.contains(&(*h, *n)) {
            return fail("does not list a blob it holds");
        }
    }
    for (h, _) in &held {
        b.remove(h).map_err(|e| e.to_string())?;
        if b.size(h).is_some() {
            return fail("still holds a removed blob");
        }
        b.remove(h).map_err(|e| format!("{}: removing twice: {e}", b.describe()))?;
    }
    let mut after: Vec<BlobHash> = b.list().map_err(|e| e.to_string())?.into_iter().map(|(h, _)| h).collect();
    let mut before = before;
    before.sort();
    after.sort();
    if after != before {
        return fail("lists other blobs after the removals than before");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_local_disk_passes_the_conformance_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = dir.path().join("scratch");
        fs::create_dir_all(&scratch).expect("scratch");
        let disk = LocalDisk::open(dir.path().join("blobs")).expect("open");
        conformance(&disk, &scratch).expect("conforms");
    }

    /// A back end that reads from the start whatever the offset: the checks must catch it.
    #[derive(Debug)]
    struct IgnoresOffsets(LocalDisk);

    impl Backend for IgnoresOffsets {
        fn describe(&self) -> String {
            "broken".into()
        }
        fn size(&self, hash: &BlobHash) -> Option<u64> {
            self.0.size(hash)
        }
        fn install(&self, from: &Path, hash: &BlobHash, size: u64) -> Result<(), BlobError> {
            self.0.install(from, hash, size)
        }
        fn read_at(&self, hash: &BlobHash, buf: &mut [u8], _offset: u64) -> Result<(), BlobError> {
            self.0.read_at(hash, buf, 0)
        }
        fn reader(&self, hash: &BlobHash) -> Result<Box<dyn Read + Send>, BlobError> {
            self.0.reader(hash)
        }
        fn remove(&self, hash: &BlobHash) -> Result<(), BlobError> {
            self.0.remove(hash)
        }
        fn list(&self) -> Result<Vec<(BlobHash, u64)>, BlobError> {
            self.0.list()
        }
    }

    #[test]
    fn the_checks_catch_a_back_end_that_reads_the_wrong_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = dir.path().join("scratch");
        fs::create_dir_all(&scratch).expect("scratch");
        let broken = IgnoresOffsets(LocalDisk::open(dir.path().join("blobs")).expect("open"));
        let err = conformance(&broken, &scratch).expect_err("caught");
        assert!(err.contains("reads other bytes at an offset"), "{err}");
    }

    #[test]
    fn object_storage_passes_the_conformance_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (scratch, markers, tmp) = (dir.path().join("scratch"), dir.path().join("remote"), dir.path().join("tmp"));
        for d in [&scratch, &markers, &tmp] {
            fs::create_dir_all(d).expect("dir");
        }
        let remote = Remote::new(Arc::new(object_store::memory::InMemory::new()), "学校/一中", "memory");
        let bucket = ObjectStorage::new(remote, markers, tmp);
        conformance(&bucket, &scratch).expect("conforms");
    }
}
