//! Blobs on S3-compatible object storage: a province's SeaweedFS cluster, MinIO, or a bucket in
//! a cloud the bureau already runs.
//!
//! The [`crate::BlobStore`] stays the one way to store and read blobs; given a [`Remote`] it
//! puts each verified blob into the bucket (key `PREFIX/blobs/ab/cdef…`, one PUT or a multipart
//! upload) instead of renaming it into its local `blobs/`, and keeps a small marker in
//! `remote/ab/cdef…` (the blob's size) once the storage acknowledged it, so that asking whether
//! the node holds a blob needs no request. Transfers still grow in the local `partial/`, so an
//! interrupted one resumes as before, and the pull-through cache stays on local disk.
//!
//! The client's I/O runs on a runtime of its own (two threads, started on first use), so the
//! store's blocking methods work from any thread and its async ones from any runtime.

use super::BlobError;
use crate::hash::BlobHash;
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path as ObjectPath};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where an S3-compatible bucket is and how to sign in to it (`[object_store]` in youke.toml).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The S3 endpoint, e.g. `http://10.20.0.5:8333` (a SeaweedFS S3 gateway).
    pub endpoint: String,
    /// The bucket; it must exist (SeaweedFS makes it on first upload for an admin identity).
    pub bucket: String,
    /// Key prefix inside the bucket, so that several nodes can share one bucket.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key_id: String,
    /// The secret; may be left out here and given as YOUKE_S3_SECRET_ACCESS_KEY instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_access_key: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// What is wrong with these settings, in words for the admin, if anything.
    pub fn check(&self) -> Result<(), String> {
        let e = self.endpoint.trim();
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!("endpoint {e:?} must start with http:// or https://"));
        }
        if self.bucket.trim().is_empty() || self.bucket.contains('/') {
            return Err(format!("bucket {:?} must be a bucket name (no slashes)", self.bucket));
        }
        let prefix = self.prefix.trim_matches('/');
        if !prefix.is_empty() && ObjectPath::parse(prefix).is_err() {
            return Err(format!("prefix {:?} is not a usable key prefix (no empty parts, '.', '..' or characters such as % # [ ] {{ }} * ?)", self.prefix));
        }
        if self.access_key_id.trim().is_empty() {
            return Err("access_key_id must be set".into());
        }
        if self.secret_access_key.is_empty() {
            return Err("secret_access_key must be set (or YOUKE_S3_SECRET_ACCESS_KEY)".into());
        }
        Ok(())
    }
}

/// A bucket (and prefix) holding blobs.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    describe: Arc<str>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.describe)
    }
}

/// Parts of a multipart upload, and the size up to which a blob goes in one PUT.
const PART: usize = 16 << 20;
/// Parts in flight at once during an upload.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes asked for per request by a sequential reader.
const READ_PIECE: u64 = 8 << 20;
/// Bytes asked for per request by a stream (media served, blobs sent on).
pub const STREAM_PIECE: u64 = 2 << 20;

impl Remote {
    /// An S3 client for `settings` (no request is made until the store is used).
    pub fn s3(settings: &S3Settings) -> Result<Remote, BlobError> {
        settings.check().map_err(|message| BlobError::ObjectConfig { message })?;
        // reqwest's rustls takes the process's crypto provider: ring, as quinn uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = object_store::ClientOptions::new()
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120));
        let retry = object_store::RetryConfig { max_retries: 4, retry_timeout: Duration::from_secs(30), ..Default::default() };
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(settings.endpoint.trim_end_matches('/'))
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| BlobError::ObjectConfig { message: e.to_string() })?;
        let describe = format!("s3 {}/{}{}", settings.endpoint.trim_end_matches('/'), settings.bucket, slash(&settings.prefix));
        Ok(Remote::new(Arc::new(store), &settings.prefix, &describe))
    }

    /// Blobs in any object store (tests use object_store's in-memory one).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, describe: &str) -> Remote {
        Remote { store, prefix: prefix.trim_matches('/').to_string(), describe: describe.into() }
    }

    /// Where the blobs are, for logs and `youke status`.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    fn key(&self, hash: &BlobHash) -> ObjectPath {
        let hex = hash.to_hex();
        let rel = format!("blobs/{}/{}", &hex[..2], &hex[2..]);
        let key = if self.prefix.is_empty() { rel } else { format!("{}/{rel}", self.prefix) };
        // As written (a Chinese prefix stays Chinese in the bucket); the prefix was checked.
        ObjectPath::parse(&key).unwrap_or_else(|_| ObjectPath::from(key))
    }

    fn err(&self, action: &'static str, hash: &BlobHash) -> impl Fn(object_store::Error) -> BlobError + Clone + Send + use<> {
        let (remote, hash) = (Arc::clone(&self.describe), *hash);
        move |source| BlobError::Object { action, hash, remote: remote.to_string(), source: Box::new(source) }
    }

    /// The size of the stored object, or `None` if the bucket does not have it.
    pub fn head(&self, hash: &BlobHash) -> Result<Option<u64>, BlobError> {
        let (store, key, err) = (Arc::clone(&self.store), self.key(hash), self.err("look up", hash));
        block(async move {
            match store.head(&key).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(err(e)),
            }
        })?
    }

    /// Uploads the verified file `path` (`size` bytes) as blob `hash`, hashing what it reads
    /// again (an upload whose bytes do not match is abandoned before it completes, so the bucket
    /// never shows it), then checks that the bucket reports its size. Blocking.
    pub fn upload(&self, path: &Path, hash: &BlobHash, size: u64) -> Result<(), BlobError> {
        if self.head(hash)? == Some(size) {
            return Ok(()); // Content-addressed: already there (an upload before a crash, a restore).
        }
        let (store, key, err, path_buf, expected) = (Arc::clone(&self.store), self.key(hash), self.err("upload", hash), path.to_path_buf(), *hash);
        let check = move |hasher: blake3::Hasher| {
            let actual = BlobHash::from(hasher.finalize());
            if actual == expected { Ok(()) } else { Err(BlobError::HashMismatch { expected, actual }) }
        };
        block(async move {
            let io = |action| {
                let p = path_buf.clone();
                move |source| BlobError::Io { action, path: p, source }
            };
            let mut file = tokio::fs::File::open(&path_buf).await.map_err(io("open"))?;
            if size <= PART as u64 {
                let mut bytes = Vec::with_capacity(size as usize);
                tokio::io::AsyncReadExt::read_to_end(&mut file, &mut bytes).await.map_err(io("read"))?;
                let mut hasher = blake3::Hasher::new();
                hasher.update(&bytes);
                check(hasher)?;
                store.put(&key, PutPayload::from(bytes)).await.map_err(&err)?;
                return Ok(());
            }
            let upload = store.put_multipart(&key).await.map_err(&err)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0u8; PART];
            let mut hasher = blake3::Hasher::new();
            let sent: Result<(), BlobError> = async {
                loop {
                    let n = read_full(&mut file, &mut buf).await.map_err(io("read"))?;
                    if n == 0 {
                        return check(hasher);
                    }
                    let piece = buf.get(..n).unwrap_or_default();
                    hasher.update(piece);
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(&err)?;
                    writer.write(piece);
                }
            }
            .await;
            match sent {
                Ok(()) => writer.finish().await.map(|_| ()).map_err(err),
                Err(e) => {
                    let _ = writer.abort().await; // Leave no unfinished upload behind.
                    Err(e)
                }
            }
        })??;
        match self.head(hash)? {
            Some(s) if s == size => Ok(()),
            got => Err(BlobError::SizeMismatch { hash: *hash, expected: size, actual: got.unwrap_or(0) }),
        }
    }

    /// Bytes `range` of blob `hash`, as one request.
    pub async fn read(&self, hash: &BlobHash, range: Range<u64>) -> Result<Bytes, BlobError> {
        let (store, key, err) = (Arc::clone(&self.store), self.key(hash), self.err("read", hash));
        run(async move { store.get_range(&key, range).await.map_err(err) }).await?
    }

    /// [`Remote::read`] from a thread that may block.
    pub fn read_blocking(&self, hash: &BlobHash, range: Range<u64>) -> Result<Bytes, BlobError> {
        let (store, key, err) = (Arc::clone(&self.store), self.key(hash), self.err("read", hash));
        block(async move { store.get_range(&key, range).await.map_err(err) })?
    }

    /// Bytes `range` of blob `hash` in pieces of [`STREAM_PIECE`], each one ranged GET fetched
    /// whole before it is handed on: a reader that pauses (a player, a link's rate schedule)
    /// holds no request open, and at most two pieces are in memory per stream.
    pub fn stream(&self, hash: &BlobHash, range: Range<u64>) -> tokio::sync::mpsc::Receiver<Result<Bytes, BlobError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (store, key, err) = (Arc::clone(&self.store), self.key(hash), self.err("read", hash));
        let spawned = io_runtime().map(|rt| {
            rt.spawn(async move {
                let mut pos = range.start;
                while pos < range.end {
                    let end = (pos + STREAM_PIECE).min(range.end);
                    let piece = store.get_range(&key, pos..end).await.map_err(&err);
                    let stop = match &piece {
                        Ok(b) if b.is_empty() => true,
                        Ok(b) => {
                            pos += b.len() as u64;
                            false
                        }
                        Err(_) => true,
                    };
                    if tx.send(piece).await.is_err() || stop {
                        return; // The reader went away, or the read failed.
                    }
                }
            });
        });
        if let Err(e) = spawned {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Err(e));
            return rx;
        }
        rx
    }

    /// Checks that the bucket answers (a lookup of a key that need not exist): for /readyz.
    pub fn probe(&self) -> Result<(), BlobError> {
        self.head(&BlobHash([0; 32])).map(|_| ())
    }

    /// Writes, reads back and deletes a small object under `PREFIX/youke-check/`: that the
    /// settings sign in and may write (`youke storage check`).
    pub fn check_write(&self, name: &str) -> Result<(), BlobError> {
        let key = format!("{}youke-check/{name}", if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) });
        let key = ObjectPath::parse(&key).unwrap_or_else(|_| ObjectPath::from(key));
        let store = Arc::clone(&self.store);
        let err = self.err("check", &BlobHash([0; 32]));
        let body = format!("youke storage check {name}");
        block(async move {
            store.put(&key, PutPayload::from(body.clone().into_bytes())).await.map_err(&err)?;
            let back = store.get_range(&key, 0..body.len() as u64).await.map_err(&err)?;
            store.delete(&key).await.map_err(&err)?;
            if back.as_ref() != body.as_bytes() {
                return Err(BlobError::ObjectConfig { message: "the object read back differs from what was written".into() });
            }
            Ok(())
        })?
    }

    /// A blocking sequential reader of blob `hash` (`size` bytes), in ranged requests.
    pub fn reader(&self, hash: &BlobHash, size: u64) -> RemoteReader {
        RemoteReader { remote: self.clone(), hash: *hash, size, pos: 0, buf: Bytes::new() }
    }
}

/// Reads a blob from the bucket piece by piece (blocking).
#[derive(Debug)]
pub struct RemoteReader {
    remote: Remote,
    hash: BlobHash,
    size: u64,
    pos: u64,
    buf: Bytes,
}

impl std::io::Read for RemoteReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.size {
                return Ok(0);
            }
            let end = (self.pos + READ_PIECE).min(self.size);
            self.buf = self.remote.read_blocking(&self.hash, self.pos..end).map_err(std::io::Error::other)?;
            if self.buf.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("blob {} ends early in {}", self.hash, self.remote.describe)));
            }
            self.pos += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len());
        out.get_mut(..n).unwrap_or_default().copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

fn slash(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() { String::new() } else { format!("/{p}") }
}

async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = tokio::io::AsyncReadExt::read(file, buf.get_mut(done..).unwrap_or_default()).await?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// The runtime the object-storage client runs on, started on first use and kept for the
/// process's life (a static is never dropped, so no runtime is dropped inside another).
fn io_runtime() -> Result<&'static tokio::runtime::Runtime, BlobError> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("youke-objects")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| BlobError::ObjectConfig { message: format!("cannot start the object storage client: {e}") })
}

fn stopped() -> BlobError {
    BlobError::ObjectConfig { message: "the object storage client stopped".into() }
}

/// Runs `fut` on the client's runtime and waits for it on this thread (which may block).
fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T, BlobError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    io_runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| stopped())
}

/// Runs `fut` on the client's runtime and awaits it from any runtime.
async fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T, BlobError> {
    io_runtime()?.spawn(fut).await.map_err(|_| stopped())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn memory() -> Remote {
        Remote::new(Arc::new(object_store::memory::InMemory::new()), "/省/prov/", "memory")
    }

    #[test]
    fn uploads_in_parts_and_reads_ranges_back() {
        let r = memory();
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(PART * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("视频.mp4");
        std::fs::write(&path, &data).unwrap();
        let hash = BlobHash::from(blake3::hash(&data));
        assert_eq!(r.head(&hash).unwrap(), None);
        r.upload(&path, &hash, data.len() as u64).unwrap();
        assert_eq!(r.head(&hash).unwrap(), Some(data.len() as u64));
        assert_eq!(r.key(&hash).as_ref(), format!("省/prov/blobs/{}/{}", &hash.to_hex()[..2], &hash.to_hex()[2..]));
        let got = r.read_blocking(&hash, 100..PART as u64 + 200).unwrap();
        assert_eq!(&got[..], &data[100..PART + 200]);
        let mut all = Vec::new();
        r.reader(&hash, data.len() as u64).read_to_end(&mut all).unwrap();
        assert!(all == data);
        // Uploading again finds it there.
        r.upload(&path, &hash, data.len() as u64).unwrap();
        // A file whose bytes no longer match its hash is not uploaded (one PUT or in parts).
        for len in [1000usize, PART * 2 + 1] {
            let mut bad: Vec<u8> = (0..len).map(|i| (i % 7) as u8).collect();
            let claimed = BlobHash::from(blake3::hash(&bad));
            bad[len / 2] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(matches!(r.upload(&path, &claimed, len as u64), Err(BlobError::HashMismatch { .. })));
            assert_eq!(r.head(&claimed).unwrap(), None, "nothing visible in the bucket");
        }
    }

    #[tokio::test]
    async fn streams_a_range_and_names_a_missing_blob() {
        let r = memory();
        let dir = tempfile::tempdir().unwrap();
        let size = 2 * STREAM_PIECE as usize + 3;
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let path = dir.path().join("a");
        std::fs::write(&path, &data).unwrap();
        let hash = BlobHash::from(blake3::hash(&data));
        let r2 = r.clone();
        let p = path.clone();
        tokio::task::spawn_blocking(move || r2.upload(&p, &hash, size as u64)).await.unwrap().unwrap();
        // Across three pieces, in order.
        let mut rx = r.stream(&hash, 1..size as u64);
        let mut got = Vec::new();
        let mut pieces = 0;
        while let Some(b) = rx.recv().await {
            got.extend_from_slice(&b.unwrap());
            pieces += 1;
        }
        assert_eq!(pieces, 3);
        assert!(got == data[1..]);
        assert_eq!(r.read(&hash, 0..3).await.unwrap().as_ref(), &[0, 1, 2]);
        let missing = BlobHash([7; 32]);
        let e = r.read(&missing, 0..3).await.unwrap_err().to_string();
        assert!(e.contains("memory") && e.contains(&missing.to_hex()), "{e}");
    }

    #[test]
    fn settings_are_checked_and_the_secret_is_not_printed() {
        let mut s = S3Settings {
            endpoint: "10.0.0.5:8333".into(),
            bucket: "youke".into(),
            prefix: String::new(),
            region: default_region(),
            access_key_id: "k".into(),
            secret_access_key: "very-secret".into(),
        };
        assert!(s.check().unwrap_err().contains("http://"));
        s.endpoint = "http://10.0.0.5:8333".into();
        assert!(s.check().is_ok());
        assert!(!format!("{s:?}").contains("very-secret"));
        s.prefix = "省中心/2026".into();
        assert!(s.check().is_ok());
        s.prefix = "a/../b".into();
        assert!(s.check().unwrap_err().contains("prefix"));
        s.prefix = String::new();
        s.secret_access_key.clear();
        assert!(s.check().unwrap_err().contains("YOUKE_S3_SECRET_ACCESS_KEY"));
    }
}
