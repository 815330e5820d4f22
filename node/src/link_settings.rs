//! The uplink's media rate schedule: set in the config, changeable at runtime through the API
//! (`PUT /api/v1/link`) and the CLI (`youke link rate`). A runtime change is kept in the database
//! (so it survives restarts) until it is reset to the config's value. The running node re-reads
//! it every second, so the CLI works whether or not the node is running.

use crate::context::NodeCtx;
use crate::store::{Store, StoreError, meta_get, meta_set};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_federation::rate::{Rate, RateSchedule};

const SCHEDULE_KEY: &str = "link.upload_schedule";
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The schedule in force and where it comes from, as shown by the API and CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSettings {
    pub upload_schedule: String,
    /// `config` or `runtime` (set through the API or CLI).
    pub source: String,
    /// The rate in force right now.
    pub current_rate: String,
    pub utc_offset: String,
}

/// The runtime override, if one is set.
fn override_of(store: &Store) -> Result<Option<RateSchedule>, StoreError> {
    let text = store.read(|c| meta_get(c, SCHEDULE_KEY))?;
    Ok(text.filter(|t| !t.is_empty()).and_then(|t| t.parse().ok()))
}

/// The schedule in force: the runtime override, else the config's.
pub fn effective(ctx: &NodeCtx) -> Result<(RateSchedule, &'static str), StoreError> {
    Ok(match override_of(&ctx.store)? {
        Some(s) => (s, "runtime"),
        None => (ctx.config.upload_schedule(), "config"),
    })
}

/// Applies the schedule in force (a runtime override outlives restarts) to this process's
/// limiter.
pub fn apply_override(ctx: &NodeCtx) -> Result<(), StoreError> {
    let (s, _) = effective(ctx)?;
    ctx.limiter.set_schedule(s);
    Ok(())
}

/// Sets (or with `None` resets to the config's) the schedule, and applies it at once in this
/// process.
pub fn set(ctx: &NodeCtx, schedule: Option<&RateSchedule>) -> Result<LinkSettings, StoreError> {
    let text = schedule.map(|s| s.to_string()).unwrap_or_default();
    ctx.store.write(|tx| meta_set(tx, SCHEDULE_KEY, &text))?;
    let (s, _) = effective(ctx)?;
    ctx.limiter.set_schedule(s);
    show(ctx)
}

pub fn show(ctx: &NodeCtx) -> Result<LinkSettings, StoreError> {
    let (schedule, source) = effective(ctx)?;
    let minute = (youke_federation::rate::local_second_of_day(std::time::SystemTime::now(), ctx.config.utc_offset_secs()) / 60) as u16;
    Ok(LinkSettings {
        upload_schedule: schedule.to_string(),
        source: source.to_string(),
        current_rate: schedule.rate_at(minute).to_string(),
        utc_offset: ctx.config.link.utc_offset.clone(),
    })
}

/// Whether bulk transfers may run now (the schedule is not `off`).
pub fn bulk_allowed(limiter: &youke_federation::rate::RateLimiter) -> bool {
    limiter.current() != Rate::Off
}

/// Keeps the limiter in step with the stored schedule.
pub async fn run(ctx: Arc<NodeCtx>, cancel: CancellationToken) {
    loop {
        let c = Arc::clone(&ctx);
        let work = tokio::task::spawn_blocking(move || match effective(&c) {
            Ok((s, _)) => {
                if c.limiter.schedule() != s {
                    tracing::info!(schedule = %s, "media rate schedule changed");
                    c.limiter.set_schedule(s);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the media rate schedule"),
        });
        let _ = work.await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
        }
    }
}
