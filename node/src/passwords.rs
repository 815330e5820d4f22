//! Password hashes (argon2id) and the pool that checks them with bounded memory and CPU.
//!
//! One argon2id check takes 19 MiB and tens of milliseconds of one core. Checked all at once, a
//! burst of 200 sign-ins took the node from 123 MB to 4 GB. So sign-ins are checked by a few
//! worker threads ([`PasswordPool`]: half the cores, at most four), each owning one argon2 memory
//! area that it reuses, fed by a bounded queue. A check that finds the queue full, or that waited
//! longer than the pool's patience before a worker took it, is answered [`PoolError::Busy`]
//! without being computed (the portal answers 503 with `Retry-After`). A worker idle for
//! [`IDLE_RELEASE`] gives its memory back, so a burst leaves nothing behind.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker keeps its memory area without work.
pub const IDLE_RELEASE: Duration = Duration::from_secs(20);
/// Most argon2 memory a stored hash may ask for (the default asks for 19 MiB): a hash
/// written with more is refused rather than allowed to take the node's memory.
const MAX_MEMORY_BLOCKS: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the node is busy checking other sign-ins; try again in a few seconds")]
    Busy,
}

/// The argon2id PHC string of a password (OWASP parameters: 19 MiB, 2 passes, 1 lane).
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| e.to_string())?.to_string())
}

/// Whether `password` matches the PHC string `phc`, using (and growing if needed) `memory` as
/// argon2's work area. A malformed hash, or one asking for more than [`MAX_MEMORY_BLOCKS`],
/// matches nothing.
pub fn verify_with(memory: &mut Vec<Block>, password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let blocks = params.block_count();
    if blocks > MAX_MEMORY_BLOCKS {
        tracing::warn!(blocks, "a stored password hash asks for more argon2 memory than allowed; refused");
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let Some(area) = memory.get_mut(..blocks) else { return false };
    if Argon2::new(algorithm, version, params).hash_password_into_with_memory(password.as_bytes(), salt, &mut out, area).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|o| o == expected)
}

/// [`verify_with`] on memory of its own (commands and tests; the portal uses the pool).
pub fn verify(password: &str, phc: &str) -> bool {
    verify_with(&mut Vec::new(), password, phc)
}

/// A hash no password matches, checked for unknown names so that a sign-in takes as long
/// whether or not the name exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("unknown user, no password").unwrap_or_default())
}

struct Job {
    password: String,
    phc: String,
    queued_at: Instant,
    reply: tokio::sync::oneshot::Sender<Result<bool, PoolError>>,
}

/// Checks passwords on a few threads with bounded memory (see the module's doc).
#[derive(Debug, Clone)]
pub struct PasswordPool {
    queue: SyncSender<Job>,
    workers: usize,
}

impl PasswordPool {
    /// `workers` threads, a queue of `queue_len` checks, each waiting at most `patience` for a
    /// worker.
    pub fn new(workers: usize, queue_len: usize, patience: Duration) -> PasswordPool {
        let workers = workers.max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue_len.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new().name(format!("youke-passwords-{i}")).spawn(move || work(&rx, patience));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-checking thread");
            }
        }
        PasswordPool { queue: tx, workers }
    }

    /// Half the cores (at least one, at most four), 256 queued checks per worker (about what a
    /// worker gets through in its 5 s of patience: a check takes 15–20 ms on one core), 5 s of
    /// patience: a two-core school checks 50–60 sign-ins a second and sheds what waits longer.
    pub fn sized_to_cores() -> PasswordPool {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let workers = (cores / 2).clamp(1, 4);
        PasswordPool::new(workers, workers * 256, Duration::from_secs(5))
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether `password` matches `phc`; `Busy` when the pool cannot take the check in time.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, PoolError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        match self.queue.try_send(Job { password, phc, queued_at: Instant::now(), reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(PoolError::Busy),
        }
        answer.await.unwrap_or(Err(PoolError::Busy))
    }
}

/// A worker: takes checks until the pool is dropped; lets its memory go when idle.
fn work(queue: &Mutex<Receiver<Job>>, patience: Duration) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let next = {
            let rx = queue.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv_timeout(IDLE_RELEASE)
        };
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                memory = Vec::new();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if job.reply.is_closed() {
            continue;
        }
        if job.queued_at.elapsed() > patience {
            let _ = job.reply.send(Err(PoolError::Busy));
            continue;
        }
        let ok = verify_with(&mut memory, &job.password, &job.phc);
        let _ = job.reply.send(Ok(ok));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_with_reused_memory_and_malformed_ones_match_nothing() {
        let phc = hash("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, "correct horse", &phc));
        assert_eq!(memory.len(), 19 * 1024, "one 19 MiB area");
        assert!(!verify_with(&mut memory, "wrong horse", &phc));
        assert!(verify_with(&mut memory, "correct horse", &phc), "the area is reused");
        assert_eq!(memory.len(), 19 * 1024);
        // The crate's own verifier agrees.
        use argon2::password_hash::PasswordVerifier;
        assert!(Argon2::default().verify_password(b"correct horse", &PasswordHash::new(&phc).expect("parse")).is_ok());
        for bad in ["", "not a hash", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$", "$argon2id$v=19$m=999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"] {
            assert!(!verify(&"x".repeat(8), bad), "{bad}");
        }
        assert!(!verify("unknown user, no password!", dummy_hash()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_checks_in_turn_and_sheds_what_it_cannot_take() {
        let phc = hash("correct horse").expect("hash");
        let pool = PasswordPool::new(1, 2, Duration::from_secs(30));
        assert!(pool.verify("correct horse".into(), phc.clone()).await.expect("checked"));
        assert!(!pool.verify("wrong".into(), phc.clone()).await.expect("checked"));
        // One worker, two places in the queue: of twenty at once, most are shed at once.
        let all = futures_util::future::join_all((0..20).map(|_| pool.verify("correct horse".into(), phc.clone()))).await;
        let checked = all.iter().filter(|r| matches!(r, Ok(true))).count();
        let busy = all.iter().filter(|r| matches!(r, Err(PoolError::Busy))).count();
        assert_eq!(checked + busy, 20);
        assert!((1..=3).contains(&checked), "{checked} checked");
        // No patience: whatever waited behind a check is shed when a worker reaches it.
        let impatient = PasswordPool::new(1, 8, Duration::ZERO);
        let all = futures_util::future::join_all((0..4).map(|_| impatient.verify("correct horse".into(), phc.clone()))).await;
        assert!(all.iter().any(|r| matches!(r, Err(PoolError::Busy))), "{all:?}");
    }
}
