//! Verified chunks: how a blob's bytes are checked one chunk at a time against its BLAKE3 hash.
//!
//! BLAKE3 is a Merkle tree over 1 KiB chunks. A run of [`CHUNK`] bytes (1 MiB, a power-of-two
//! number of BLAKE3 chunks) starting at a multiple of [`CHUNK`] is always a whole subtree of that
//! tree, so its chaining value (CV) can be computed on its own. A blob's *manifest* is the list of
//! these CVs; merging them pairwise the way BLAKE3 does gives back the blob's ordinary BLAKE3
//! hash. A receiver that knows only the hash can therefore check a manifest sent by an untrusted
//! peer ([`Manifest::verify`]), and then check each 1 MiB chunk as it arrives
//! ([`Manifest::check_chunk`]), keeping every verified chunk across a cut. This is BLAKE3
//! verified streaming (as in bao) with 1 MiB chunk groups and the tree kept by the receiver.
//! Pure: no IO.

use crate::hash::BlobHash;
use blake3::hazmat::{self, ChainingValue, HasherExt, Mode};

/// Bytes per verified chunk; at most this much is sent again after a cut.
pub const CHUNK: u64 = 1 << 20;

/// The chaining values of a blob's 1 MiB chunks. A blob of at most one chunk has none: it is
/// checked against its hash directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub size: u64,
    pub cvs: Vec<ChainingValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest lists {got} chunks but a blob of {size} bytes has {want}")]
    Count { size: u64, got: usize, want: usize },
    #[error("manifest does not add up to the blob's hash")]
    Root,
    #[error("stored manifest is damaged ({0} bytes)")]
    Damaged(usize),
}

/// How many chaining values a blob of `size` bytes has in its manifest.
pub fn cv_count(size: u64) -> usize {
    if size <= CHUNK { 0 } else { size.div_ceil(CHUNK) as usize }
}

/// Number of chunks a blob of `size` bytes is sent in (at least one, even when empty).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK).max(1)
}

/// Length of chunk `index` of a blob of `size` bytes.
pub fn chunk_len(size: u64, index: u64) -> u64 {
    size.saturating_sub(index * CHUNK).min(CHUNK)
}

/// The chaining value of the chunk starting at `offset` (a multiple of [`CHUNK`]) of a blob of
/// more than one chunk.
pub fn chunk_cv(offset: u64, bytes: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(bytes);
    h.finalize_non_root()
}

/// Merges the CVs of a subtree of `len` bytes into one CV (non-root) or the root hash.
fn merge(cvs: &[ChainingValue], len: u64, root: bool) -> Result<MergeOut, ManifestError> {
    if cvs.len() == 1 {
        return match cvs.first() {
            Some(cv) if !root => Ok(MergeOut::Cv(*cv)),
            // A single chunk as the root is hashed directly, never through a manifest.
            _ => Err(ManifestError::Root),
        };
    }
    let left_len = hazmat::left_subtree_len(len);
    let split = (left_len / CHUNK) as usize;
    let (l, r) = (cvs.get(..split).unwrap_or_default(), cvs.get(split..).unwrap_or_default());
    if l.is_empty() || r.is_empty() {
        return Err(ManifestError::Root);
    }
    let MergeOut::Cv(left) = merge(l, left_len, false)? else { return Err(ManifestError::Root) };
    let MergeOut::Cv(right) = merge(r, len - left_len, false)? else { return Err(ManifestError::Root) };
    Ok(if root {
        MergeOut::Root(BlobHash::from(hazmat::merge_subtrees_root(&left, &right, Mode::Hash)))
    } else {
        MergeOut::Cv(hazmat::merge_subtrees_non_root(&left, &right, Mode::Hash))
    })
}

enum MergeOut {
    Cv(ChainingValue),
    Root(BlobHash),
}

impl Manifest {
    /// The BLAKE3 hash these chaining values add up to.
    pub fn root(&self) -> Result<BlobHash, ManifestError> {
        let want = cv_count(self.size);
        if self.cvs.len() != want || want == 0 {
            return Err(ManifestError::Count { size: self.size, got: self.cvs.len(), want });
        }
        match merge(&self.cvs, self.size, true)? {
            MergeOut::Root(h) => Ok(h),
            MergeOut::Cv(_) => Err(ManifestError::Root),
        }
    }

    /// Checks a manifest received from a peer against the hash the receiver trusts.
    pub fn verify(&self, hash: &BlobHash) -> Result<(), ManifestError> {
        let want = cv_count(self.size);
        if self.cvs.len() != want {
            return Err(ManifestError::Count { size: self.size, got: self.cvs.len(), want });
        }
        if self.size == 0 {
            // No chunk will arrive to be checked: the hash must be that of nothing.
            return if BlobHash::from(blake3::hash(b"")) == *hash { Ok(()) } else { Err(ManifestError::Root) };
        }
        if want == 0 {
            return Ok(()); // One chunk: checked against the hash itself.
        }
        if self.root()? == *hash { Ok(()) } else { Err(ManifestError::Root) }
    }

    /// Whether `bytes` are chunk `index` of the blob `hash` this (verified) manifest describes.
    pub fn check_chunk(&self, hash: &BlobHash, index: u64, bytes: &[u8]) -> bool {
        if bytes.len() as u64 != chunk_len(self.size, index) {
            return false;
        }
        if self.cvs.is_empty() {
            return index == 0 && BlobHash::from(blake3::hash(bytes)) == *hash;
        }
        self.cvs.get(index as usize).is_some_and(|cv| *cv == chunk_cv(index * CHUNK, bytes))
    }

    /// Serialized form: the size (8 bytes, little-endian) then the CVs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.cvs.len());
        out.extend_from_slice(&self.size.to_le_bytes());
        for cv in &self.cvs {
            out.extend_from_slice(cv);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let damaged = || ManifestError::Damaged(bytes.len());
        let (size, rest) = bytes.split_first_chunk::<8>().ok_or_else(damaged)?;
        let size = u64::from_le_bytes(*size);
        if rest.len() % 32 != 0 || rest.len() / 32 != cv_count(size) {
            return Err(damaged());
        }
        let cvs = rest.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).collect();
        Ok(Manifest { size, cvs })
    }
}

/// Builds a manifest and the root hash while bytes stream through, one pass.
#[derive(Debug, Default)]
pub struct ManifestBuilder {
    size: u64,
    cvs: Vec<ChainingValue>,
    /// The chunk being filled and its (lazily started) hasher.
    current: Option<blake3::Hasher>,
    in_chunk: u64,
    /// A plain hasher over the first chunk, for blobs that turn out to be one chunk long.
    first: blake3::Hasher,
}

impl ManifestBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = (CHUNK - self.in_chunk) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            if self.size < CHUNK {
                self.first.update(now);
            }
            let offset = self.size - self.in_chunk;
            let h = self.current.get_or_insert_with(|| {
                let mut h = blake3::Hasher::new();
                h.set_input_offset(offset);
                h
            });
            h.update(now);
            self.size += now.len() as u64;
            self.in_chunk += now.len() as u64;
            if self.in_chunk == CHUNK {
                if let Some(h) = self.current.take() {
                    self.cvs.push(h.finalize_non_root());
                }
                self.in_chunk = 0;
            }
            bytes = rest;
        }
    }

    /// The root hash and the manifest of everything fed in.
    pub fn finish(mut self) -> (BlobHash, Manifest) {
        if self.size <= CHUNK {
            return (BlobHash::from(self.first.finalize()), Manifest { size: self.size, cvs: Vec::new() });
        }
        if let Some(h) = self.current.take() {
            self.cvs.push(h.finalize_non_root());
        }
        let manifest = Manifest { size: self.size, cvs: self.cvs };
        // More than one chunk: the CVs merge into the root by construction.
        let root = manifest.root().unwrap_or(BlobHash([0; 32]));
        (root, manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new().update(b"test data").finalize_xof().fill(&mut out);
        out
    }

    fn build(bytes: &[u8], step: usize) -> (BlobHash, Manifest) {
        let mut b = ManifestBuilder::new();
        for piece in bytes.chunks(step.max(1)) {
            b.update(piece);
        }
        if bytes.is_empty() {
            b.update(&[]);
        }
        b.finish()
    }

    #[test]
    fn root_equals_plain_blake3_at_every_boundary() {
        let c = CHUNK as usize;
        for len in [0, 1, 1024, c - 1, c, c + 1, 2 * c, 2 * c + 7, 3 * c, 5 * c - 3, 8 * c, 9 * c + 1] {
            let bytes = data(len);
            for step in [4096, 333_333, c] {
                let (hash, manifest) = build(&bytes, step);
                assert_eq!(hash, BlobHash::from(blake3::hash(&bytes)), "len {len} step {step}");
                assert_eq!(manifest.cvs.len(), cv_count(len as u64));
                manifest.verify(&hash).expect("own manifest verifies");
                for i in 0..chunk_count(len as u64) {
                    let start = (i * CHUNK) as usize;
                    let end = (start + c).min(len);
                    assert!(manifest.check_chunk(&hash, i, &bytes[start..end]), "chunk {i} of {len}");
                }
            }
        }
    }

    #[test]
    fn tampered_chunks_and_manifests_are_rejected() {
        let bytes = data(3 * CHUNK as usize + 100);
        let (hash, manifest) = build(&bytes, 1 << 16);
        let mut bad = bytes[..CHUNK as usize].to_vec();
        bad[77] ^= 1;
        assert!(!manifest.check_chunk(&hash, 0, &bad));
        // A chunk is bound to its position: chunk 0 is not chunk 1.
        assert!(!manifest.check_chunk(&hash, 1, &bytes[..CHUNK as usize]));
        // Wrong length is refused before hashing.
        assert!(!manifest.check_chunk(&hash, 3, &bytes[..50]));
        let mut forged = manifest.clone();
        forged.cvs[2][0] ^= 1;
        assert_eq!(forged.verify(&hash), Err(ManifestError::Root));
        let mut short = manifest.clone();
        short.cvs.pop();
        assert!(matches!(short.verify(&hash), Err(ManifestError::Count { .. })));
        let other = BlobHash::from(blake3::hash(b"another blob"));
        assert_eq!(manifest.verify(&other), Err(ManifestError::Root));
        // An empty blob cannot stand in for another hash.
        let empty = Manifest { size: 0, cvs: Vec::new() };
        assert_eq!(empty.verify(&other), Err(ManifestError::Root));
        assert_eq!(empty.verify(&BlobHash::from(blake3::hash(b""))), Ok(()));
        // A one-chunk blob is checked against the hash itself.
        let small = data(500);
        let (h, m) = build(&small, 100);
        assert!(m.check_chunk(&h, 0, &small));
        assert!(!m.check_chunk(&other, 0, &small));
    }

    #[test]
    fn manifest_bytes_round_trip_and_damage_is_detected() {
        let bytes = data(2 * CHUNK as usize + 1);
        let (_, m) = build(&bytes, CHUNK as usize);
        let enc = m.to_bytes();
        assert_eq!(Manifest::from_bytes(&enc), Ok(m));
        assert!(Manifest::from_bytes(&enc[..enc.len() - 1]).is_err());
        assert!(Manifest::from_bytes(&enc[..4]).is_err());
    }
}
