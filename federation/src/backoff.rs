//! Link timing, sans-IO: the driver passes the current time in and sleeps for what comes out,
//! so the policy is tested with virtual time and no tokio.
//!
//! [`Backoff`] decides how long a child waits before dialling its parent again: 1 s doubling to
//! 15 s while attempts fail, back to the start once a link has stayed up for 30 s, each delay
//! spread by up to ±20 % with a per-node seed so that a thousand schools whose city restarted do
//! not all call back in the same instant.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    stable_after: Duration,
    current: Duration,
    rng: u64,
}

impl Backoff {
    /// The link policy, with jitter seeded by `seed` (for example a hash of the node id).
    pub fn for_link(seed: u64) -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(15), Duration::from_secs(30), seed)
    }

    pub fn new(initial: Duration, max: Duration, stable_after: Duration, seed: u64) -> Self {
        Backoff { initial, max, stable_after, current: initial, rng: seed | 1 }
    }

    /// A link attempt ended at `now`; it had been up since `up_since` (`None` if it never came
    /// up). Returns how long to wait before the next attempt.
    pub fn next_delay(&mut self, up_since: Option<Instant>, now: Instant) -> Duration {
        if up_since.is_some_and(|t| now.saturating_duration_since(t) >= self.stable_after) {
            self.current = self.initial;
        }
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        // ±20 %, from a xorshift generator.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.8 + 0.4 * unit)
    }
}

/// A per-node seed for jitter.
pub fn seed_of(node_id: &str) -> u64 {
    let h = blake3::hash(node_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, base_ms: u64) -> bool {
        let ms = d.as_millis() as u64;
        ms >= base_ms * 8 / 10 && ms <= base_ms * 12 / 10
    }

    #[test]
    fn failed_attempts_back_off_to_a_cap_and_a_stable_link_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::for_link(seed_of("school-1"));
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let d = b.next_delay(None, now);
            delays.push(d);
            now += d;
        }
        for (d, base) in delays.iter().zip([1000, 2000, 4000, 8000, 15000, 15000, 15000]) {
            assert!(within(*d, base), "{d:?} is not within 20% of {base} ms");
        }
        // A link that stayed up 10 s and dropped keeps backing off; one that stayed up 30 s resets.
        let d = b.next_delay(Some(now), now + Duration::from_secs(10));
        assert!(within(d, 15000));
        let up = now + Duration::from_secs(20);
        let d = b.next_delay(Some(up), up + Duration::from_secs(31));
        assert!(within(d, 1000), "{d:?}");
    }

    #[test]
    fn jitter_spreads_nodes_apart_deterministically() {
        let now = Instant::now();
        let first = |id: &str| Backoff::for_link(seed_of(id)).next_delay(None, now);
        assert_eq!(first("school-1"), first("school-1"));
        let distinct: std::collections::BTreeSet<Duration> = (0..50).map(|i| first(&format!("school-{i}"))).collect();
        assert!(distinct.len() > 40, "only {} distinct first delays among 50 nodes", distinct.len());
    }
}
