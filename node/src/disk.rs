//! Room on disk for what is about to arrive: an upload says how large it is before its first
//! byte, and is refused then if it does not fit in the free space less a reserve
//! (`limits.disk_reserve_percent` of the disk) and less what uploads already under way still
//! expect. Without this, ten uploads each declaring 8 GiB were all accepted against 70 GB free,
//! and the disk would fill under the database.

use crate::units::human_bytes;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The free and total bytes of the filesystem holding `path`.
pub fn space(path: &Path) -> std::io::Result<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let block = s.fragment_size();
    Ok((s.blocks_available().saturating_mul(block), s.blocks().saturating_mul(block)))
}

/// Why something does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the file is {} but this node has room for {} (free space {} less the {reserve_percent} % reserve{}); free some space or send a smaller file",
    human_bytes(*declared),
    human_bytes(*room),
    human_bytes(*free),
    if *promised > 0 { format!(" and {} that unfinished uploads will still bring", human_bytes(*promised)) } else { String::new() }
)]
pub struct NoRoom {
    pub declared: u64,
    pub room: u64,
    pub free: u64,
    pub reserve_percent: u8,
    pub promised: u64,
}

/// Whether `declared` more bytes fit: free space, less `reserve_percent` of `total`, less the
/// bytes already `promised` to uploads under way.
pub fn fits(declared: u64, (free, total): (u64, u64), reserve_percent: u8, promised: u64) -> Result<(), NoRoom> {
    let reserve = u64::try_from(u128::from(total) * u128::from(reserve_percent) / 100).unwrap_or(u64::MAX);
    let room = free.saturating_sub(reserve).saturating_sub(promised);
    if declared <= room { Ok(()) } else { Err(NoRoom { declared, room, free, reserve_percent, promised }) }
}

/// Bytes that uploads under way in this process still expect: what each declared, less what
/// has arrived (it is on the disk by then, and counted by its free space).
#[derive(Debug, Default)]
pub struct Promised(Mutex<u64>);

/// One upload's share of [`Promised`], given back as its bytes arrive and when it ends.
#[derive(Debug)]
pub struct Promise {
    promised: Arc<Promised>,
    left: u64,
}

impl Promised {
    pub fn total(&self) -> u64 {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn promise(self: &Arc<Self>, bytes: u64) -> Promise {
        let mut total = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_add(bytes);
        Promise { promised: Arc::clone(self), left: bytes }
    }
}

impl Promise {
    /// `n` more bytes arrived.
    pub fn arrived(&mut self, n: u64) {
        let n = n.min(self.left);
        self.left -= n;
        let mut total = self.promised.0.lock().unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_sub(n);
    }
}

impl Drop for Promise {
    fn drop(&mut self) {
        let mut total = self.promised.0.lock().unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_sub(self.left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_promised_and_the_reserve_are_kept_free() {
        const GB: u64 = 1 << 30;
        let disk = (70 * GB, 1000 * GB);
        // 5 % of a 1000 GiB disk is 50 GiB: 20 GiB of room.
        assert!(fits(20 * GB, disk, 5, 0).is_ok());
        let e = fits(100 * GB, disk, 5, 0).expect_err("100 GB does not fit");
        assert_eq!((e.room, e.declared), (20 * GB, 100 * GB));
        let text = e.to_string();
        assert!(text.contains("100.0 GiB") && text.contains("20.0 GiB") && text.contains("70.0 GiB"), "{text}");
        // Ten uploads of 8 GiB against 70 GiB free and no reserve: eight fit, then no more.
        let mut promised = 0;
        let accepted = (0..10).filter(|_| fits(8 * GB, disk, 0, promised).map(|()| promised += 8 * GB).is_ok()).count();
        assert_eq!(accepted, 8);
        assert!(fits(8 * GB, disk, 0, promised).expect_err("full").to_string().contains("64.0 GiB that unfinished uploads"));
        assert!(fits(u64::MAX, (u64::MAX, u64::MAX), 100, 0).is_err(), "no overflow");
    }

    #[test]
    fn promises_shrink_as_bytes_arrive_and_end_with_their_upload() {
        let p = Arc::new(Promised::default());
        let mut a = p.promise(100);
        let b = p.promise(50);
        assert_eq!(p.total(), 150);
        a.arrived(30);
        a.arrived(1000);
        assert_eq!(p.total(), 50, "a has nothing left to bring");
        drop(b);
        drop(a);
        assert_eq!(p.total(), 0);
    }

    #[test]
    fn the_space_of_a_real_filesystem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (free, total) = space(dir.path()).expect("statvfs");
        assert!(total > 0 && free <= total);
    }
}
