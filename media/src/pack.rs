//! A ladder as one file (a rendition pack), so that it travels between tiers as one
//! content-addressed blob: checked chunk by chunk, resumed, cached by range like any recording.
//! A player's request for `720p/seg_00007.ts` is the byte range of that file in the pack.
//!
//! Layout: [`MAGIC`] (8 bytes), the index length as a little-endian u64, the index (JSON: each
//! file's path, offset from the start of the pack, and length; and the ladder's description),
//! then the files' bytes one after another.

use crate::MediaError;
use crate::hls::HlsOutput;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"YKLADR01";
/// Bytes before the index: the magic and the index length.
pub const HEAD: u64 = 16;
/// Longest index accepted (a 45-minute lesson's four rungs of 4 s segments need about 200 KiB).
pub const MAX_INDEX: u64 = 8 << 20;

/// One file of the ladder in the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub offset: u64,
    pub len: u64,
}

/// What a pack holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub ladder: HlsOutput,
    pub files: Vec<Entry>,
}

impl Index {
    /// The file at `path`, if the pack has it.
    pub fn file(&self, path: &str) -> Option<&Entry> {
        self.files.iter().find(|e| e.path == path)
    }
}

/// The index length written in a pack's first [`HEAD`] bytes.
pub fn index_len(head: &[u8]) -> Result<u64, MediaError> {
    if head.len() < HEAD as usize || &head[..8] != MAGIC {
        return Err(MediaError::BadPack("it does not start as a rendition pack".into()));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&head[8..16]);
    let len = u64::from_le_bytes(n);
    if len == 0 || len > MAX_INDEX {
        return Err(MediaError::BadPack(format!("an index of {len} bytes")));
    }
    Ok(len)
}

/// Reads the index from its bytes (those after the head), checking every file lies after it.
pub fn parse_index(bytes: &[u8], pack_size: u64) -> Result<Index, MediaError> {
    let index: Index = serde_json::from_slice(bytes).map_err(|e| MediaError::BadPack(format!("its index is not readable: {e}")))?;
    let start = HEAD + bytes.len() as u64;
    for e in &index.files {
        if e.offset < start || e.offset.checked_add(e.len).is_none_or(|end| end > pack_size) {
            return Err(MediaError::BadPack(format!("{} lies outside the pack", e.path)));
        }
    }
    Ok(index)
}

/// Writes the ladder in `dir` (as [`crate::hls::transcode`] left it, described by `ladder`) into
/// one pack at `out`, fsynced. Every file of the directory goes in, sorted by path.
pub fn write(dir: &Path, ladder: &HlsOutput, out: &Path) -> Result<(), MediaError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| MediaError::Io { path, source }
    };
    let mut files: Vec<(String, u64)> = Vec::new();
    for entry in walk(dir).map_err(io(dir))? {
        let rel = entry.strip_prefix(dir).map_err(|_| MediaError::BadPack("a ladder file outside its directory".into()))?;
        let name = rel.to_string_lossy().replace('\\', "/");
        let len = std::fs::metadata(&entry).map_err(io(&entry))?.len();
        files.push((name, len));
    }
    files.sort();
    // The index's length depends on the offsets, which depend on its length: settle it.
    let mut index_len = 0u64;
    let index = loop {
        let mut offset = HEAD + index_len;
        let entries: Vec<Entry> = files
            .iter()
            .map(|(path, len)| {
                let e = Entry { path: path.clone(), offset, len: *len };
                offset += len;
                e
            })
            .collect();
        let json = serde_json::to_vec(&Index { ladder: ladder.clone(), files: entries }).map_err(|e| MediaError::BadPack(e.to_string()))?;
        if json.len() as u64 == index_len {
            break json;
        }
        index_len = json.len() as u64;
    };
    let mut f = std::fs::File::create(out).map_err(io(out))?;
    f.write_all(MAGIC).map_err(io(out))?;
    f.write_all(&(index.len() as u64).to_le_bytes()).map_err(io(out))?;
    f.write_all(&index).map_err(io(out))?;
    for (path, _) in &files {
        let mut src = std::fs::File::open(dir.join(path)).map_err(io(&dir.join(path)))?;
        std::io::copy(&mut src, &mut f).map_err(io(out))?;
    }
    f.sync_all().map_err(io(out))?;
    Ok(())
}

fn walk(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Reads a whole pack's index from a reader positioned at its start (for tests and tools).
pub fn read_index(r: &mut impl Read, pack_size: u64) -> Result<Index, MediaError> {
    let mut head = [0u8; HEAD as usize];
    r.read_exact(&mut head).map_err(|e| MediaError::BadPack(format!("cannot read its head: {e}")))?;
    let len = index_len(&head)?;
    let mut bytes = vec![0u8; len as usize];
    r.read_exact(&mut bytes).map_err(|e| MediaError::BadPack(format!("cannot read its index: {e}")))?;
    parse_index(&bytes, pack_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ladder_packs_into_one_file_whose_index_finds_every_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ladder_dir = dir.path().join("ladder");
        std::fs::create_dir_all(ladder_dir.join("720p")).expect("mkdir");
        std::fs::write(ladder_dir.join("master.m3u8"), b"#EXTM3U\n720p/index.m3u8\n").expect("write");
        std::fs::write(ladder_dir.join("720p/index.m3u8"), b"#EXTM3U\nseg_00000.ts\n").expect("write");
        std::fs::write(ladder_dir.join("720p/seg_00000.ts"), vec![7u8; 5000]).expect("write");
        let ladder = HlsOutput { master: "master.m3u8".into(), renditions: Vec::new(), duration_secs: 4.0, poster: "poster.jpg".into(), sprite: "sprite.jpg".into(), sprite_vtt: "sprite.vtt".into(), sd_mp4: None };
        let out = dir.path().join("pack");
        write(&ladder_dir, &ladder, &out).expect("pack");
        let bytes = std::fs::read(&out).expect("read");
        let index = read_index(&mut &bytes[..], bytes.len() as u64).expect("index");
        assert_eq!(index.ladder, ladder);
        let seg = index.file("720p/seg_00000.ts").expect("segment");
        assert_eq!(&bytes[seg.offset as usize..(seg.offset + seg.len) as usize], &vec![7u8; 5000][..]);
        let master = index.file("master.m3u8").expect("master");
        assert_eq!(&bytes[master.offset as usize..(master.offset + master.len) as usize], b"#EXTM3U\n720p/index.m3u8\n");
        // Damage is refused, not trusted.
        assert!(index_len(b"NOTAPACK\0\0\0\0\0\0\0\0").is_err());
        assert!(parse_index(&bytes[HEAD as usize..(HEAD + index_len(&bytes).expect("len")) as usize], 100).is_err(), "files past the end");
    }
}
