//! `youke backup DEST` and `youke restore SRC`: a node's data copied to another disk while it
//! runs, and put back onto an empty data directory.
//!
//! A backup directory holds `youke.db` (a consistent snapshot made with SQLite's online backup
//! API: one read transaction, writers go on in the WAL), the originals under `media/` as a blob
//! store of its own (every blob hashed again on the way in), the HLS ladders, the config and the
//! node's enrollment (its certificates and key: keep backups as private as the node), and last
//! `backup.json`, the manifest: every blob with its size, every file, the database's hash.
//! Without `backup.json` a backup is unfinished. Backing up again into the same directory
//! copies only what is new (blobs are content-addressed; a file is copied again when its size
//! changed).
//!
//! A restore checks the manifest, copies and verifies every blob and file, and writes the
//! database last (temp file, integrity check, fsync, rename), so an interrupted restore leaves no
//! database and is resumed by running it again. The search index is rebuilt when the node starts.

use crate::context::NodeCtx;
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use youke_federation::BlobHash;
use youke_federation::blobs::{BlobError, BlobStore};

/// The manifest file; written last.
pub const MANIFEST_FILE: &str = "backup.json";
const FORMAT: u32 = 1;
/// Left in a data directory while a restore runs (a rerun resumes it).
const RESTORING_FILE: &str = "restore.partial";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0} is not a complete Youke backup (it has no backup.json): the backup did not finish; run `youke backup` again")]
    Incomplete(PathBuf),
    #[error("{0} holds a node already (youke.db); restore onto an empty data directory, or move it away first")]
    NotEmpty(PathBuf),
    #[error("the backup in {dir} is damaged: {what}")]
    Damaged { dir: PathBuf, what: String },
    #[error("the database in {0} stayed locked for 30 s; run the backup again")]
    Locked(PathBuf),
    #[error("{0} is inside the node's data directory; back up to another disk")]
    InsideDataDir(PathBuf),
    #[error("the node's database lists blob {0}, but its media store does not have it; run `youke status` and check the disk")]
    MissingBlob(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io { action, path: path.to_path_buf(), source }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub hash: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the data directory, with `/`.
    pub path: String,
    pub size: u64,
}

/// `backup.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub youke_version: String,
    pub node_id: String,
    pub name: String,
    pub tier: String,
    /// When the database snapshot was taken (ms since the epoch).
    pub created_at: i64,
    pub database_bytes: u64,
    /// BLAKE3 of `youke.db`, hex.
    pub database_blake3: String,
    pub blobs: Vec<BlobEntry>,
    pub files: Vec<FileEntry>,
}

/// What a backup or restore did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub blobs: u64,
    pub blobs_copied: u64,
    pub files: u64,
    pub files_copied: u64,
    /// Bytes copied (blobs and files; the database not counted).
    pub bytes_copied: u64,
    pub database_bytes: u64,
}

/// Progress of a long copy: bytes done of the total to look at.
pub trait Progress {
    fn total(&mut self, bytes: u64);
    fn advance(&mut self, bytes: u64);
}

impl Progress for () {
    fn total(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// Files outside the database and the blob store that a node needs back: its config, its
/// enrollment, and its HLS ladders (each a directory of files under `media/hls`).
fn node_files(data_dir: &Path) -> Result<Vec<FileEntry>, BackupError> {
    let mut out = Vec::new();
    for name in [crate::config::CONFIG_FILE, youke_federation::pki::ENROLLMENT_FILE] {
        let p = location(data_dir, Path::new(name));
        if let Some(m) = std::fs::metadata(&p).ok().filter(std::fs::Metadata::is_file) {
            out.push(FileEntry { path: name.to_string(), size: m.len() });
        }
    }
    let hls = data_dir.join("media").join("hls");
    let mut stack = vec![hls.clone()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("read", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io("read", &dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io("read", &path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                // Temp files of a ladder being written are not part of it.
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(rel) = path.strip_prefix(data_dir) else { continue };
                if name.starts_with('.') || name.ends_with(".tmp") {
                    continue;
                }
                let rel = rel.to_string_lossy().replace('\\', "/");
                let size = entry.metadata().map_err(io("read", &path))?.len();
                out.push(FileEntry { path: rel, size });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Where a node keeps the file of a manifest entry: in its data directory, but the config where
/// [`crate::config::config_path`] says (`/etc/youke/youke.toml` when packaged).
fn location(data_dir: &Path, rel: &Path) -> PathBuf {
    if rel == Path::new(crate::config::CONFIG_FILE) { crate::config::config_path(data_dir) } else { data_dir.join(rel) }
}

/// A relative manifest path that stays inside its directory.
fn safe_relative(rel: &str) -> Option<&Path> {
    let p = Path::new(rel);
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    ok.then_some(p)
}

/// Copies `from` to `to` through a temp file with fsync and a durable rename. Returns the bytes.
fn copy_durably(from: &Path, to: &Path, progress: &mut dyn Progress) -> Result<u64, BackupError> {
    let dir = to.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let tmp = dir.join(format!(".{}.tmp", to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    let mut src = File::open(from).map_err(io("open", from))?;
    let mut dst = File::create(&tmp).map_err(io("create", &tmp))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = std::io::Read::read(&mut src, &mut buf).map_err(io("read", from))?;
        if k == 0 {
            break;
        }
        dst.write_all(&buf[..k]).map_err(io("write", &tmp))?;
        n += k as u64;
        progress.advance(k as u64);
    }
    dst.sync_all().map_err(io("fsync", &tmp))?;
    drop(dst);
    std::fs::rename(&tmp, to).map_err(io("rename into", to))?;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(io("fsync", &dir))?;
    Ok(n)
}

/// Copies `entries` of blobs from `from` into `to`, hashing each again (a blob whose bytes do
/// not match its name is refused as `damaged`; one `from` lacks is `missing`). Blobs `to` has
/// already are skipped.
fn copy_blobs(
    from: &BlobStore,
    to: &BlobStore,
    entries: &[BlobEntry],
    report: &mut Report,
    progress: &mut dyn Progress,
    missing: &dyn Fn(&str) -> BackupError,
    damaged: &dyn Fn(String) -> BackupError,
) -> Result<(), BackupError> {
    for b in entries {
        report.blobs += 1;
        let hash: BlobHash = b.hash.parse().map_err(|_| damaged(format!("{:?} is not a blob hash", b.hash)))?;
        if to.contains(&hash) {
            progress.advance(b.size);
            continue;
        }
        let src = from.blob(&hash).ok_or_else(|| missing(&b.hash))?;
        let (got, size) = to.put_reader(src.reader(), |_| {})?;
        if got != hash {
            return Err(damaged(format!("blob {} has other content (hash {})", b.hash, got.to_hex())));
        }
        progress.advance(size);
        report.blobs_copied += 1;
        report.bytes_copied += size;
    }
    Ok(())
}

fn blake3_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut hasher = blake3::Hasher::new();
    let mut f = File::open(path).map_err(io("open", path))?;
    let n = std::io::copy(&mut f, &mut hasher).map_err(io("read", path))?;
    Ok((hasher.finalize().to_hex().to_string(), n))
}

fn integrity_ok(path: &Path) -> Result<bool, BackupError> {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let v: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    Ok(v == "ok")
}

/// Backs up the node of `ctx` (running or not) into `dest`.
pub fn backup(ctx: &NodeCtx, dest: &Path, progress: &mut dyn Progress) -> Result<Report, BackupError> {
    std::fs::create_dir_all(dest).map_err(io("create", dest))?;
    let data = ctx.data_dir.canonicalize().map_err(io("open", &ctx.data_dir))?;
    let dest_abs = dest.canonicalize().map_err(io("open", dest))?;
    if dest_abs.starts_with(&data) || data.starts_with(&dest_abs) {
        return Err(BackupError::InsideDataDir(dest.to_path_buf()));
    }
    // Until the new manifest is written this backup is unfinished, whatever was there before.
    match std::fs::remove_file(dest.join(MANIFEST_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", &dest.join(MANIFEST_FILE))(e)),
        _ => {}
    }

    // 1. The database: one consistent snapshot.
    let db_tmp = dest.join(format!("{}.tmp", crate::context::DB_FILE));
    let _ = std::fs::remove_file(&db_tmp);
    let created_at = crate::store::now_ms();
    ctx.store.read(|src| -> Result<(), BackupError> {
        let mut dst = rusqlite::Connection::open(&db_tmp)?;
        let b = rusqlite::backup::Backup::new(src, &mut dst)?;
        // All pages in one step: one read transaction, so one consistent snapshot (a step of a
        // few pages would start over whenever the running node writes between two steps).
        for _ in 0..600 {
            match b.step(-1)? {
                rusqlite::backup::StepResult::Done => return Ok(()),
                rusqlite::backup::StepResult::More => {}
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        Err(BackupError::Locked(ctx.data_dir.clone()))
    })?;
    if !integrity_ok(&db_tmp)? {
        return Err(BackupError::Damaged { dir: dest.to_path_buf(), what: "the database copy failed its integrity check".into() });
    }
    let blobs: Vec<BlobEntry> = {
        let c = rusqlite::Connection::open_with_flags(&db_tmp, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        crate::blob_index::all(&c)?.into_iter().map(|(hash, size)| BlobEntry { hash, size }).collect()
    };
    File::open(&db_tmp).and_then(|f| f.sync_all()).map_err(io("fsync", &db_tmp))?;
    let db_path = dest.join(crate::context::DB_FILE);
    std::fs::rename(&db_tmp, &db_path).map_err(io("rename into", &db_path))?;
    let (database_blake3, database_bytes) = blake3_file(&db_path)?;

    // 2. The originals, then the files.
    let files = node_files(&ctx.data_dir)?;
    progress.total(blobs.iter().map(|b| b.size).sum::<u64>() + files.iter().map(|f| f.size).sum::<u64>());
    let mut report = Report { database_bytes, ..Report::default() };
    let to = BlobStore::open(dest.join("media"))?;
    let source_damaged = |what: String| BackupError::Damaged { dir: ctx.data_dir.clone(), what };
    copy_blobs(&ctx.blobs, &to, &blobs, &mut report, progress, &|h| BackupError::MissingBlob(h.to_string()), &source_damaged)?;
    for f in &files {
        report.files += 1;
        let Some(rel) = safe_relative(&f.path) else { continue };
        let target = dest.join(rel);
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == f.size) {
            progress.advance(f.size);
            continue;
        }
        report.bytes_copied += copy_durably(&location(&ctx.data_dir, rel), &target, progress)?;
        report.files_copied += 1;
    }

    // 3. The manifest, last.
    let manifest = Manifest {
        format: FORMAT,
        youke_version: env!("CARGO_PKG_VERSION").to_string(),
        node_id: ctx.writer.node_id.clone(),
        name: ctx.writer.node_name.clone(),
        tier: ctx.writer.tier.to_string(),
        created_at,
        database_bytes,
        database_blake3,
        blobs,
        files,
    };
    let tmp = dest.join(format!("{MANIFEST_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io { action: "write", path: tmp.clone(), source: e.into() })?;
    std::fs::write(&tmp, &text).map_err(io("write", &tmp))?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("fsync", &tmp))?;
    std::fs::rename(&tmp, dest.join(MANIFEST_FILE)).map_err(io("rename into", dest))?;
    File::open(dest).and_then(|d| d.sync_all()).map_err(io("fsync", dest))?;
    Ok(report)
}

/// Reads and checks a backup's manifest.
pub fn read_manifest(src: &Path) -> Result<Manifest, BackupError> {
    let path = src.join(MANIFEST_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BackupError::Incomplete(src.to_path_buf())),
        Err(e) => return Err(io("read", &path)(e)),
    };
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| BackupError::Damaged { dir: src.to_path_buf(), what: format!("backup.json: {e}") })?;
    if m.format != FORMAT {
        return Err(BackupError::Damaged { dir: src.to_path_buf(), what: format!("backup format {} (this youke reads {FORMAT})", m.format) });
    }
    Ok(m)
}

/// Restores the backup in `src` into the empty (or half-restored) data directory `data_dir`.
pub fn restore(src: &Path, data_dir: &Path, progress: &mut dyn Progress) -> Result<Report, BackupError> {
    let manifest = read_manifest(src)?;
    let damaged = |what: String| BackupError::Damaged { dir: src.to_path_buf(), what };
    std::fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    let marker = data_dir.join(RESTORING_FILE);
    let resuming = marker.exists();
    if data_dir.join(crate::context::DB_FILE).exists() && !resuming {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    // No `youke serve` may start on the directory while it is being filled.
    let _lock = crate::context::lock_data_dir(data_dir).map_err(|e| BackupError::Io { action: "lock", path: data_dir.to_path_buf(), source: std::io::Error::other(e.to_string()) })?;
    std::fs::write(&marker, manifest.node_id.as_bytes()).map_err(io("write", &marker))?;
    // A database from a resumed restore that stopped after its rename is written again below.
    let _ = std::fs::remove_file(data_dir.join(crate::context::DB_FILE));

    let (db_hash, db_bytes) = blake3_file(&src.join(crate::context::DB_FILE))?;
    if db_hash != manifest.database_blake3 || db_bytes != manifest.database_bytes {
        return Err(damaged("youke.db does not match backup.json".into()));
    }
    progress.total(manifest.blobs.iter().map(|b| b.size).sum::<u64>() + manifest.files.iter().map(|f| f.size).sum::<u64>() + db_bytes);
    let mut report = Report { database_bytes: db_bytes, ..Report::default() };
    let from = BlobStore::open(src.join("media"))?;
    let to = BlobStore::open(data_dir.join("media"))?;
    copy_blobs(&from, &to, &manifest.blobs, &mut report, progress, &|h| damaged(format!("blob {h} is missing")), &damaged)?;
    for f in &manifest.files {
        report.files += 1;
        let rel = safe_relative(&f.path).ok_or_else(|| damaged(format!("file path {:?} leaves the data directory", f.path)))?;
        let from = src.join(rel);
        if !std::fs::metadata(&from).is_ok_and(|m| m.len() == f.size) {
            return Err(damaged(format!("{} is missing or of another size", f.path)));
        }
        report.bytes_copied += copy_durably(&from, &location(data_dir, rel), progress)?;
        report.files_copied += 1;
    }
    // The database last.
    let db_tmp = data_dir.join(format!("{}.restore", crate::context::DB_FILE));
    copy_durably(&src.join(crate::context::DB_FILE), &db_tmp, progress)?;
    if !integrity_ok(&db_tmp)? {
        return Err(damaged("youke.db failed its integrity check".into()));
    }
    let db = data_dir.join(crate::context::DB_FILE);
    std::fs::rename(&db_tmp, &db).map_err(io("rename into", &db))?;
    std::fs::remove_file(&marker).map_err(io("remove", &marker))?;
    File::open(data_dir).and_then(|d| d.sync_all()).map_err(io("fsync", data_dir))?;
    Ok(report)
}
