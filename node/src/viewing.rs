//! Counting views (人气): the player reports a view once a lesson has really been watched for a
//! while, and the node counts it at most once per viewer, lesson and day, with a limit per
//! address; counted views go into the lesson's document in batches, so 人气榜 at every tier
//! reflects the whole tree's audience.
//!
//! A report carries the view ticket its lesson page was served with: the lesson, the viewer and
//! the time the page was served, signed with a key kept in the node's database. A report is
//! accepted only for the viewer and lesson it was issued to, and only once the lesson could
//! have been watched for [`required_watch_ms`] since; so a loop of POSTs counts nothing, and a
//! viewer who keeps reloading counts once a day.

use crate::context::{NodeCtx, NodeError};
use crate::store::{StoreError, Store, now_ms};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a lesson must have been watchable before its view counts: half of it, at most 30 s.
pub fn required_watch_ms(duration_secs: Option<f64>) -> i64 {
    let half = duration_secs.filter(|d| d.is_finite() && *d > 0.0).map_or(30_000.0, |d| d * 500.0);
    half.clamp(1000.0, 30_000.0) as i64
}

/// A ticket stays good this long (a page left open overnight reports nothing).
const TICKET_LIFE_MS: i64 = 12 * 3600 * 1000;
/// Views one address may report per window (a school's NAT carries many viewers).
pub const PER_ADDRESS: usize = 240;
const WINDOW: Duration = Duration::from_secs(10 * 60);
const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ViewError {
    #[error("this view ticket is not valid for this lesson and viewer; reload the page")]
    BadTicket,
    #[error("this view ticket is too old; reload the page")]
    Expired,
    #[error("a view counts once the lesson has been watched for {0} s")]
    TooEarly(i64),
    #[error("too many views from this address; try again in a few minutes")]
    TooMany,
}

/// Issues and checks view tickets, and limits views per address.
#[derive(Debug)]
pub struct Viewing {
    key: [u8; 32],
    recent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const KEY_META: &str = "view_ticket_key";

impl Viewing {
    /// Loads the signing key from the database, making one the first time.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let key = store.write(|tx| {
            if let Some(k) = crate::store::meta_get(tx, KEY_META)?.and_then(|h| hex::decode(h).ok()).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                return Ok::<_, StoreError>(k);
            }
            let k = new_key();
            crate::store::meta_set(tx, KEY_META, &hex::encode(k))?;
            Ok(k)
        })?;
        Ok(Viewing { key, recent: Mutex::new(HashMap::new()) })
    }

    /// [`Viewing::load`], or a key for this process only when the database cannot give one
    /// (tickets then end with the process: a viewer reloads the page).
    pub fn load_or_ephemeral(store: &Store) -> Self {
        Self::load(store).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot keep the view ticket key in the database; tickets last until the node restarts");
            Viewing { key: new_key(), recent: Mutex::new(HashMap::new()) }
        })
    }

    fn sign(&self, lesson: &str, viewer: &str, issued: i64) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for part in [lesson, viewer, &issued.to_string()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().to_hex()[..32].to_string()
    }

    /// The ticket a lesson page carries for this viewer: `ISSUED.VIEWER.MAC`.
    pub fn ticket(&self, lesson: &str, viewer: &str, now: i64) -> String {
        format!("{now}.{viewer}.{}", self.sign(lesson, viewer, now))
    }

    /// Checks a ticket for `lesson` at `now`; the viewer it was issued to.
    pub fn check(&self, ticket: &str, lesson: &str, now: i64, required_ms: i64) -> Result<String, ViewError> {
        let (issued, rest) = ticket.split_once('.').ok_or(ViewError::BadTicket)?;
        let (viewer, mac) = rest.rsplit_once('.').ok_or(ViewError::BadTicket)?;
        let issued: i64 = issued.parse().map_err(|_| ViewError::BadTicket)?;
        if viewer.is_empty() || viewer.len() > 200 {
            return Err(ViewError::BadTicket);
        }
        let expected = self.sign(lesson, viewer, issued);
        if mac.len() != expected.len() || !mac.bytes().zip(expected.bytes()).fold(true, |ok, (a, b)| ok & (a == b)) {
            return Err(ViewError::BadTicket);
        }
        let age = now.saturating_sub(issued);
        if age > TICKET_LIFE_MS {
            return Err(ViewError::Expired);
        }
        // A little slack for clocks: the player waits the same time before it reports.
        if age + 500 < required_ms {
            return Err(ViewError::TooEarly(required_ms / 1000));
        }
        Ok(viewer.to_string())
    }

    /// Counts a view report from `addr` against its limit.
    pub fn admit(&self, addr: IpAddr, now: Instant) -> Result<(), ViewError> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if !recent.contains_key(&addr) && recent.len() >= MAX_ADDRESSES {
            recent.retain(|_, q| q.back().is_some_and(|t| now.saturating_duration_since(*t) < WINDOW));
            if recent.len() >= MAX_ADDRESSES {
                return Err(ViewError::TooMany);
            }
        }
        let q = recent.entry(addr).or_default();
        while q.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= PER_ADDRESS {
            return Err(ViewError::TooMany);
        }
        q.push_back(now);
        Ok(())
    }
}

fn new_key() -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(uuid::Uuid::new_v4().as_bytes());
    h.update(uuid::Uuid::new_v4().as_bytes());
    *h.finalize().as_bytes()
}

/// An anonymous viewer's id (kept in a cookie, so a browser counts once a day).
pub fn new_viewer_id() -> String {
    format!("a:{}", uuid::Uuid::new_v4().simple())
}

/// The day (China time, YYYY-MM-DD) a view at `ms` counts for.
pub fn day_of(ms: i64) -> String {
    let mut t = crate::store::china_time(ms);
    t.truncate(t.find(' ').unwrap_or(t.len()));
    t
}

/// Records a reported view (already checked): true if it counts (the viewer's first today).
pub fn record(ctx: &NodeCtx, lesson: &str, viewer: &str) -> Result<bool, NodeError> {
    let now = now_ms();
    Ok(ctx.store.write(|tx| crate::views::record(tx, lesson, viewer, &day_of(now), now))?)
}

/// Adds counted views to their lessons' documents; returns how many views.
pub fn flush(ctx: &NodeCtx) -> Result<i64, NodeError> {
    let pending = ctx.store.read(|c| crate::views::uncounted(c, 500))?;
    let mut total = 0;
    for (lesson, _) in pending {
        total += flush_lesson(ctx, &lesson)?;
    }
    if total > 0 {
        ctx.changed();
    }
    Ok(total)
}

/// Adds a lesson's counted views to its document. They are counted in the transaction that
/// adds and marks them, so a view recorded meanwhile is added too, never marked unadded.
fn flush_lesson(ctx: &NodeCtx, lesson: &str) -> Result<i64, NodeError> {
    ctx.store.write(|tx| {
        let n = crate::views::uncounted_of(tx, lesson)?;
        if n > 0 {
            // A lesson gone from this node (never here, or deleted) has nothing to add to.
            crate::lessons::edit(tx, &ctx.writer, lesson, &crate::lessons::LessonEdit::Views(n))?;
            crate::views::mark_counted(tx, lesson)?;
        }
        Ok::<_, NodeError>(n)
    })
}

const FLUSH_EVERY: Duration = Duration::from_secs(3);

/// Adds counted views to documents every few seconds, and forgets the days gone by.
pub async fn run(ctx: Arc<NodeCtx>, cancel: CancellationToken) {
    let mut last_prune = None::<Instant>;
    loop {
        let c = Arc::clone(&ctx);
        let prune = last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600));
        let done = tokio::task::spawn_blocking(move || {
            if let Err(e) = flush(&c) {
                tracing::warn!(error = %e, "cannot add counted views to their lessons; will retry");
            }
            if prune {
                let yesterday = day_of(now_ms() - 24 * 3600 * 1000);
                if let Err(e) = c.store.write(|tx| crate::views::prune(tx, &yesterday)) {
                    tracing::warn!(error = %e, "cannot prune old views");
                }
            }
        })
        .await;
        if done.is_ok() && prune {
            last_prune = Some(Instant::now());
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_count_only_for_their_lesson_viewer_and_after_the_lesson_was_watched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("store");
        let v = Viewing::load(&store).expect("load");
        let t = v.ticket("l1", "u:王.芳", 1_000_000);
        assert_eq!(v.check(&t, "l1", 1_030_000, 30_000), Ok("u:王.芳".to_string()));
        assert_eq!(v.check(&t, "l1", 1_010_000, 30_000), Err(ViewError::TooEarly(30)));
        assert_eq!(v.check(&t, "l2", 1_030_000, 30_000), Err(ViewError::BadTicket));
        assert_eq!(v.check(&t.replace("u:王.芳", "u:李明"), "l1", 1_030_000, 30_000), Err(ViewError::BadTicket), "another viewer");
        assert_eq!(v.check(&t.replacen("1000000", "999999", 1), "l1", 1_030_000, 30_000), Err(ViewError::BadTicket), "another time");
        assert_eq!(v.check("1000000.00", "l1", 1_030_000, 30_000), Err(ViewError::BadTicket));
        assert_eq!(v.check(&t, "l1", 1_000_000 + TICKET_LIFE_MS + 1, 30_000), Err(ViewError::Expired));
        // The key survives a restart: tickets stay good.
        let again = Viewing::load(&store).expect("reload");
        assert_eq!(again.check(&t, "l1", 1_030_000, 30_000), Ok("u:王.芳".to_string()));
        assert_eq!((required_watch_ms(Some(8.0)), required_watch_ms(Some(3600.0)), required_watch_ms(None)), (4000, 30_000, 30_000));
    }

    #[test]
    fn a_view_recorded_while_views_are_added_is_added_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = NodeCtx::open(&dir.path().join("node"), crate::config::Config::default()).expect("open");
        let id = uuid::Uuid::new_v4().to_string();
        let w = ctx.writer.clone();
        ctx.store
            .write(|tx| crate::lessons::save(tx, &w, &mut crate::lessons::new_document(&w, &id, &crate::lessons::NewLesson::default())?))
            .expect("lesson");
        record(&ctx, &id, "甲").expect("view");
        // The flush reads one pending view; a second is recorded before it writes.
        assert_eq!(ctx.store.read(|c| crate::views::uncounted(c, 10)).expect("read"), vec![(id.clone(), 1)]);
        record(&ctx, &id, "乙").expect("view");
        assert_eq!(flush_lesson(&ctx, &id).expect("flush"), 2);
        assert_eq!(flush(&ctx).expect("flush"), 0, "nothing left uncounted");
        assert_eq!(ctx.store.read(|c| crate::lessons::get(c, &id)).expect("get").expect("lesson").views, 2);
    }

    #[test]
    fn an_address_reports_a_bounded_number_of_views() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("store");
        let v = Viewing::load(&store).expect("load");
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let now = Instant::now();
        for _ in 0..PER_ADDRESS {
            assert_eq!(v.admit(a, now), Ok(()));
        }
        assert_eq!(v.admit(a, now), Err(ViewError::TooMany));
        assert_eq!(v.admit(b, now), Ok(()), "another address is not limited");
        assert_eq!(v.admit(a, now + WINDOW), Ok(()), "the window passes");
    }
}
