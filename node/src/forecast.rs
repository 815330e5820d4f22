//! Storage forecast for the next semester by the formula of the central pilot platform
//! requirements (COURSE-STANDARD.md, seed 000):
//!
//! M = D × B × C × E × F × 60 × G / 8 bytes (D streams per lesson, B recording classrooms, C
//! kbit/s per stream, E lessons a classroom records a day, F minutes a lesson, G school days),
//! provisioned as S = M × 1.25 / 0.8 (transcoded copies +25 %, RAID −20 %).
//!
//! The node's own figures replace the configured ones where it has them: the bit rate and
//! length of the recordings it holds, and how many recordings it takes in on a day with
//! recordings (which stands for D × B × E). The formula itself is [`semester_bytes`], pure.

use crate::config::ForecastConfig;
use crate::context::{NodeCtx, NodeError};
use serde::Serialize;

/// One input of the formula and where its value came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Input {
    pub value: f64,
    /// `configured` or `measured`.
    pub source: &'static str,
}

/// The forecast with the figures it was made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// D × B × E: recordings a school day (measured, or the product of the configured three).
    pub recordings_per_day: Input,
    pub kbit_per_recording: Input,
    pub minutes_per_recording: Input,
    pub days: f64,
    /// Recordings the measurement is based on, and the days they came in on.
    pub history_recordings: u64,
    pub history_days: u64,
    /// M: bytes recorded in a semester.
    pub semester_bytes: u64,
    /// S: storage to provision for them.
    pub provision_bytes: u64,
    /// What the node stores now (its blob store).
    pub used_bytes: u64,
}

/// M of the formula: `recordings_per_day` (D × B × E) recordings a day of `kbit` kbit/s and
/// `minutes` minutes for `days` days, in bytes (kbit as 1024 bits, as the seed computes: its
/// example is 4 × 20 × 4096 × 6 × 45 × 60 × 100 / 8 ≈ 62 TiB).
pub fn semester_bytes(recordings_per_day: f64, kbit: f64, minutes: f64, days: f64) -> u64 {
    let bytes = recordings_per_day * kbit * 1024.0 * minutes * 60.0 * days / 8.0;
    if bytes.is_finite() && bytes > 0.0 { bytes as u64 } else { 0 }
}

/// S of the formula: M with transcoded copies (+25 %) on RAID (−20 % usable).
pub fn provision_bytes(semester: u64) -> u64 {
    (semester as f64 * 1.25 / 0.8) as u64
}

/// Recordings needed before the node's own figures replace the configured ones.
pub const MIN_HISTORY: u64 = 3;

/// The forecast from this node's recordings (those it took in itself and those its subtree
/// sent up) and its `[forecast]` configuration.
pub fn forecast(ctx: &NodeCtx) -> Result<Forecast, NodeError> {
    forecast_with(ctx, &ctx.config.forecast)
}

/// [`forecast`] with other assumptions (`youke forecast --classrooms 30`); a measured rate of
/// recordings is scaled by the classrooms and streams of `cfg` against the configured ones.
pub fn forecast_with(ctx: &NodeCtx, cfg: &ForecastConfig) -> Result<Forecast, NodeError> {
    let ((n, days, kbit, secs), used) = ctx.store.read(|c| -> Result<_, NodeError> {
        Ok((crate::lessons::recording_stats(c)?, crate::blob_index::totals(c)?.1))
    })?;
    let measured = n >= MIN_HISTORY && days > 0;
    let pick = |m: Option<f64>, configured: f64| match m.filter(|v| measured && *v > 0.0) {
        Some(v) => Input { value: v, source: "measured" },
        None => Input { value: configured, source: "configured" },
    };
    // A what-if of more classrooms or streams than configured scales the measured rate too.
    let base = &ctx.config.forecast;
    let growth = (cfg.classrooms / base.classrooms) * (cfg.streams_per_lesson / base.streams_per_lesson);
    let growth = if growth.is_finite() && growth > 0.0 { growth } else { 1.0 };
    let recordings_per_day = pick((days > 0).then(|| n as f64 / days as f64 * growth), cfg.streams_per_lesson * cfg.classrooms * cfg.lessons_per_day);
    let kbit_per_recording = pick(kbit, cfg.kbit_per_stream);
    let minutes_per_recording = pick(secs.map(|s| s / 60.0), cfg.minutes_per_lesson);
    let semester = semester_bytes(recordings_per_day.value, kbit_per_recording.value, minutes_per_recording.value, cfg.days);
    Ok(Forecast {
        recordings_per_day,
        kbit_per_recording,
        minutes_per_recording,
        days: cfg.days,
        history_recordings: n,
        history_days: days,
        semester_bytes: semester,
        provision_bytes: provision_bytes(semester),
        used_bytes: used,
    })
}

/// The storage of a node: its disk, what its blobs use, and the forecast.
#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    pub disk_total_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub blob_bytes: u64,
    pub forecast: Forecast,
}

impl Storage {
    /// Whether the disk has room for the next semester as provisioned (unknown disk: `None`).
    pub fn fits(&self) -> Option<bool> {
        self.disk_free_bytes.map(|free| free >= self.forecast.provision_bytes)
    }
}

/// The node's [`Storage`] with the forecast made from `cfg`.
pub fn storage(ctx: &NodeCtx, cfg: &ForecastConfig) -> Result<Storage, NodeError> {
    let disk = crate::disk::space(&ctx.data_dir).ok();
    let forecast = forecast_with(ctx, cfg)?;
    Ok(Storage {
        disk_total_bytes: disk.map(|(_, total)| total),
        disk_free_bytes: disk.map(|(free, _)| free),
        blob_bytes: forecast.used_bytes,
        forecast,
    })
}

/// `youke forecast` as text: the result, then each input with where it came from.
pub fn render(s: &Storage) -> String {
    use crate::units::human_bytes;
    let f = &s.forecast;
    let source = |i: &Input| if i.source == "measured" { format!("measured from {} recordings over {} days", f.history_recordings, f.history_days) } else { "configured in [forecast]".to_string() };
    let mut out = format!(
        "Next semester ({} school days):\n  recorded        {}\n  to provision    {} (transcoded copies +25 %, RAID -20 %)\n  stored now      {}\n",
        f.days,
        human_bytes(f.semester_bytes),
        human_bytes(f.provision_bytes),
        human_bytes(f.used_bytes),
    );
    if let (Some(free), Some(total)) = (s.disk_free_bytes, s.disk_total_bytes) {
        let verdict = if s.fits() == Some(true) { "enough" } else { "NOT enough: add storage before the semester (docs/SCALING.md)" };
        out.push_str(&format!("  disk free       {} of {}: {verdict}\n", human_bytes(free), human_bytes(total)));
    }
    out.push_str(&format!(
        "From:\n  recordings a school day  {:.1} ({})\n  bit rate                 {:.0} kbit/s ({})\n  minutes a recording      {:.1} ({})\n",
        f.recordings_per_day.value,
        source(&f.recordings_per_day),
        f.kbit_per_recording.value,
        source(&f.kbit_per_recording),
        f.minutes_per_recording.value,
        source(&f.minutes_per_recording),
    ));
    if f.recordings_per_day.source == "configured" {
        out.push_str(&format!(
            "  (recordings a day = streams per lesson × classrooms × lessons a day; fewer than {MIN_HISTORY} recordings here to measure)\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_needs_about_62_tib_and_100_tb_provisioned() {
        let c = ForecastConfig::default();
        let m = semester_bytes(c.streams_per_lesson * c.classrooms * c.lessons_per_day, c.kbit_per_stream, c.minutes_per_lesson, c.days);
        let tib = m as f64 / (1u64 << 40) as f64;
        assert!((tib - 61.8).abs() < 0.1, "{tib}");
        let s = provision_bytes(m) as f64 / (1u64 << 40) as f64;
        assert!((s - 96.6).abs() < 0.1, "{s}");
        assert_eq!(semester_bytes(0.0, 4096.0, 45.0, 100.0), 0);
        assert_eq!(semester_bytes(f64::NAN, 4096.0, 45.0, 100.0), 0);
    }

    #[test]
    fn the_nodes_own_recordings_replace_the_configured_figures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = NodeCtx::open(&dir.path().join("node"), crate::config::Config::default()).expect("open");
        let f = forecast(&ctx).expect("forecast");
        assert_eq!(f.recordings_per_day, Input { value: 480.0, source: "configured" }, "no history: 4 streams × 20 classrooms × 6 lessons");
        // Three 10-minute recordings at 2 Mbit/s + 128 kbit/s, all on one day.
        ctx.store
            .write(|tx| {
                for i in 0..3 {
                    let id = uuid::Uuid::new_v4().to_string();
                    let new = crate::lessons::NewLesson {
                        title: format!("第{i}课"),
                        probe_json: r#"{"duration_secs": 600.0, "video": {"bit_rate": 2000000}, "audio": {"bit_rate": 128000}}"#.into(),
                        ..Default::default()
                    };
                    crate::lessons::save(tx, &ctx.writer, &mut crate::lessons::new_document(&ctx.writer, &id, &new)?)?;
                }
                Ok::<_, crate::documents::DocError>(())
            })
            .expect("lessons");
        let f = forecast(&ctx).expect("forecast");
        assert_eq!((f.history_recordings, f.history_days), (3, 1));
        assert_eq!(f.recordings_per_day, Input { value: 3.0, source: "measured" });
        assert_eq!(f.kbit_per_recording, Input { value: 2128.0, source: "measured" });
        assert_eq!(f.minutes_per_recording, Input { value: 10.0, source: "measured" });
        assert_eq!(f.semester_bytes, semester_bytes(3.0, 2128.0, 10.0, 100.0));
        // What if the school doubles its recording classrooms and records for 90 days.
        let cfg = ForecastConfig { classrooms: 40.0, days: 90.0, ..ctx.config.forecast.clone() };
        let s = storage(&ctx, &cfg).expect("storage");
        assert_eq!(s.forecast.recordings_per_day, Input { value: 6.0, source: "measured" });
        assert_eq!(s.forecast.semester_bytes, semester_bytes(6.0, 2128.0, 10.0, 90.0));
        assert!(s.disk_free_bytes.is_some() && s.fits().is_some());
        let text = render(&s);
        assert!(text.contains("90 school days") && text.contains("measured from 3 recordings over 1 days"), "{text}");
    }
}
