//! Link rate limits with time windows, e.g. `08:00-17:30 2Mbit/s, otherwise unlimited`.
//!
//! A [`RateSchedule`] says how fast bulk media may move on a link at each minute of the day (in
//! the node's local time, China Standard Time unless configured otherwise). Windows may wrap past
//! midnight (`22:00-06:00 unlimited`); the first window that contains the time wins; `otherwise`
//! gives the rate outside all windows (unlimited when left out). A rate is `unlimited`, `off`
//! (nothing moves) or a number with a unit: `2Mbit/s`, `500kbit/s`, `1.5MB/s`, or bare bytes/s.
//!
//! [`RateLimiter`] applies a schedule to a byte stream as a token bucket. The schedule is pure
//! (times are passed in), the limiter only sleeps.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How fast a link may move bulk bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rate {
    Unlimited,
    Off,
    /// Bytes per second.
    Limit(u64),
}

impl Rate {
    pub fn bytes_per_sec(self) -> Option<u64> {
        match self {
            Rate::Limit(b) => Some(b),
            _ => None,
        }
    }
}

/// Parses a rate such as `2Mbit/s`, `500kbit/s`, `1.5MB/s` or `250000` (bytes/s) into bytes per
/// second. Zero is refused: write `off`.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().replace(' ', "");
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix("/s").or_else(|| lower.strip_suffix("ps")).unwrap_or(&lower);
    let units: [(&str, f64); 8] = [
        ("gbit", 1e9 / 8.0),
        ("mbit", 1e6 / 8.0),
        ("kbit", 1e3 / 8.0),
        ("bit", 1.0 / 8.0),
        ("gb", 1e9),
        ("mb", 1e6),
        ("kb", 1e3),
        ("b", 1.0),
    ];
    let (num, factor) = units
        .iter()
        .find_map(|(u, f)| body.strip_suffix(u).map(|n| (n, *f)))
        .unwrap_or((body, 1.0));
    let value: f64 = num.parse().map_err(|_| format!("{s:?} is not a rate; write it like 2Mbit/s, 500kbit/s, 1MB/s, unlimited or off"))?;
    let bytes = (value * factor).round();
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(format!("{s:?} is not a positive rate (write off to stop transfers)"));
    }
    Ok(bytes as u64)
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unlimited" | "none" | "不限" | "不限速" => Ok(Rate::Unlimited),
            "off" | "paused" | "停止" | "暂停" => Ok(Rate::Off),
            _ => parse_rate(s).map(Rate::Limit),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rate::Unlimited => f.write_str("unlimited"),
            Rate::Off => f.write_str("off"),
            Rate::Limit(b) if b % 125_000 == 0 => write!(f, "{}Mbit/s", b / 125_000),
            Rate::Limit(b) if b % 125 == 0 => write!(f, "{}kbit/s", b / 125),
            Rate::Limit(b) => write!(f, "{b}B/s"),
        }
    }
}

/// A daily window `start..end` in minutes after midnight; wraps when `end <= start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: u16,
    pub end: u16,
    pub rate: Rate,
}

impl Window {
    fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// Rates by time of day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSchedule {
    pub windows: Vec<Window>,
    pub otherwise: Rate,
}

impl Default for RateSchedule {
    fn default() -> Self {
        RateSchedule { windows: Vec::new(), otherwise: Rate::Unlimited }
    }
}

fn parse_clock(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time of day; write it like 08:00 or 17:30");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl FromStr for RateSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut schedule = RateSchedule::default();
        let mut otherwise = None;
        for item in s.split([',', ';', '，', '；']).map(str::trim).filter(|i| !i.is_empty()) {
            let (head, rest) = item.split_once(char::is_whitespace).unwrap_or((item, ""));
            if let Some((a, b)) = head.split_once('-').filter(|(a, _)| a.contains(':')) {
                let (start, end) = (parse_clock(a)?, parse_clock(b)?);
                if start == end {
                    return Err(format!("window {head} is empty"));
                }
                let rate = rest.parse().map_err(|e| format!("in {item:?}: {e}"))?;
                schedule.windows.push(Window { start, end: end % 1440, rate });
            } else {
                let rate_text = if matches!(head, "otherwise" | "其他时间" | "其余时间") { rest } else { item };
                if otherwise.is_some() {
                    return Err(format!("{item:?}: the rate outside the windows is given twice"));
                }
                otherwise = Some(rate_text.parse().map_err(|e| format!("in {item:?}: {e}"))?);
            }
        }
        schedule.otherwise = otherwise.unwrap_or(Rate::Unlimited);
        Ok(schedule)
    }
}

impl fmt::Display for RateSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.windows.is_empty() {
            return write!(f, "{}", self.otherwise);
        }
        for w in &self.windows {
            write!(f, "{}-{} {}, ", clock(w.start), clock(w.end), w.rate)?;
        }
        write!(f, "otherwise {}", self.otherwise)
    }
}

impl RateSchedule {
    /// A constant rate.
    pub fn constant(rate: Rate) -> Self {
        RateSchedule { windows: Vec::new(), otherwise: rate }
    }

    /// The rate at `minute` after local midnight.
    pub fn rate_at(&self, minute: u16) -> Rate {
        self.windows.iter().find(|w| w.contains(minute)).map(|w| w.rate).unwrap_or(self.otherwise)
    }

    /// Seconds from `second_of_day` until the rate may change (the next window edge).
    pub fn secs_to_next_edge(&self, second_of_day: u32) -> u32 {
        let edges = self.windows.iter().flat_map(|w| [w.start, w.end]);
        edges
            .map(|m| {
                let at = u32::from(m) * 60;
                if at > second_of_day { at - second_of_day } else { at + 86_400 - second_of_day }
            })
            .min()
            .unwrap_or(86_400)
    }
}

/// Seconds since local midnight for a UTC offset in seconds.
pub fn local_second_of_day(now: SystemTime, utc_offset_secs: i32) -> u32 {
    let unix = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    (unix + i64::from(utc_offset_secs)).rem_euclid(86_400) as u32
}

/// Parses a UTC offset such as `+08:00` or `-05:30` into seconds.
pub fn parse_utc_offset(s: &str) -> Result<i32, String> {
    let bad = || format!("{s:?} is not a UTC offset; write it like +08:00");
    let t = s.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, t.get(1..).unwrap_or_default()),
        Some(b'-') => (-1, t.get(1..).unwrap_or_default()),
        _ => return Err(bad()),
    };
    let minutes = i32::from(parse_clock(rest).map_err(|_| bad())?);
    if minutes > 14 * 60 {
        return Err(bad());
    }
    Ok(sign * minutes * 60)
}

/// A token bucket driven by a [`RateSchedule`], shared by the transfers of one link.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<LimiterState>,
    utc_offset_secs: i32,
}

#[derive(Debug)]
struct LimiterState {
    schedule: RateSchedule,
    /// Bytes that may go before waiting; negative when over budget.
    tokens: f64,
    last: Instant,
}

/// At most this much burst is allowed at once, in seconds of the rate.
const BURST_SECS: f64 = 0.25;
/// How long `acquire` sleeps at most at a time, so schedule changes take effect promptly.
const MAX_SLEEP: Duration = Duration::from_secs(1);

impl RateLimiter {
    pub fn new(schedule: RateSchedule, utc_offset_secs: i32) -> Self {
        RateLimiter {
            state: Mutex::new(LimiterState { schedule, tokens: 0.0, last: Instant::now() }),
            utc_offset_secs,
        }
    }

    pub fn schedule(&self) -> RateSchedule {
        self.lock().schedule.clone()
    }

    pub fn set_schedule(&self, schedule: RateSchedule) {
        self.lock().schedule = schedule;
    }

    /// The rate in force now.
    pub fn current(&self) -> Rate {
        let minute = (local_second_of_day(SystemTime::now(), self.utc_offset_secs) / 60) as u16;
        self.lock().schedule.rate_at(minute)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Charges `bytes` sent at `now` under `rate` and returns how long to wait before sending
    /// more (the debt), or `None` when the rate is `off` (nothing charged).
    fn charge(&self, bytes: u64, rate: Rate, now: Instant) -> Option<Duration> {
        let mut s = self.lock();
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.last = now;
        match rate {
            Rate::Unlimited => {
                s.tokens = 0.0;
                Some(Duration::ZERO)
            }
            Rate::Off => {
                s.tokens = 0.0;
                None
            }
            Rate::Limit(r) => {
                let r = r as f64;
                s.tokens = (s.tokens + elapsed * r).min(r * BURST_SECS) - bytes as f64;
                Some(if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / r) })
            }
        }
    }

    /// Waits until `bytes` may be sent under the schedule in force (and charges them).
    pub async fn acquire(&self, bytes: u64) {
        let mut owed = bytes;
        loop {
            let rate = self.current();
            match self.charge(owed, rate, Instant::now()) {
                None => tokio::time::sleep(MAX_SLEEP).await,
                Some(d) => {
                    owed = 0;
                    if d.is_zero() {
                        return;
                    }
                    tokio::time::sleep(d.min(MAX_SLEEP)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_operator_units() {
        assert_eq!(parse_rate("2Mbit/s"), Ok(250_000));
        assert_eq!(parse_rate("500 kbit/s"), Ok(62_500));
        assert_eq!(parse_rate("1MB/s"), Ok(1_000_000));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3Mbit/s").is_err());
        assert_eq!("unlimited".parse::<Rate>(), Ok(Rate::Unlimited));
        assert_eq!("OFF".parse::<Rate>(), Ok(Rate::Off));
    }

    #[test]
    fn schedules_parse_print_and_answer_by_time_of_day() {
        let s: RateSchedule = "08:00-17:30 2Mbit/s, otherwise unlimited".parse().expect("parse");
        assert_eq!(s.rate_at(7 * 60 + 59), Rate::Unlimited);
        assert_eq!(s.rate_at(8 * 60), Rate::Limit(250_000));
        assert_eq!(s.rate_at(17 * 60 + 29), Rate::Limit(250_000));
        assert_eq!(s.rate_at(17 * 60 + 30), Rate::Unlimited);
        assert_eq!(s.to_string(), "08:00-17:30 2Mbit/s, otherwise unlimited");
        assert_eq!(s.to_string().parse::<RateSchedule>(), Ok(s.clone()));
        // Wrapping windows, Chinese separators, `off`, a bare default.
        let n: RateSchedule = "22:00-06:00 unlimited；08:00-12:00 off，1Mbit/s".parse().expect("parse");
        assert_eq!(n.rate_at(23 * 60), Rate::Unlimited);
        assert_eq!(n.rate_at(5 * 60), Rate::Unlimited);
        assert_eq!(n.rate_at(9 * 60), Rate::Off);
        assert_eq!(n.rate_at(13 * 60), Rate::Limit(125_000));
        assert_eq!("3Mbit/s".parse::<RateSchedule>().map(|s| s.rate_at(0)), Ok(Rate::Limit(375_000)));
        assert_eq!("".parse::<RateSchedule>(), Ok(RateSchedule::default()));
        for bad in ["25:00-26:00 1Mbit/s", "08:00-08:00 1Mbit/s", "08:00-09:00 fast", "1Mbit/s, 2Mbit/s", "8-9 1Mbit/s"] {
            assert!(bad.parse::<RateSchedule>().is_err(), "{bad}");
        }
        assert_eq!(s.secs_to_next_edge(7 * 3600), 3600);
        assert_eq!(s.secs_to_next_edge(18 * 3600), 14 * 3600);
    }

    #[test]
    fn local_time_uses_the_configured_offset() {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 100 + 3600); // 01:00 UTC
        assert_eq!(local_second_of_day(t, 8 * 3600), 9 * 3600);
        assert_eq!(local_second_of_day(t, -2 * 3600), 23 * 3600);
        assert_eq!(parse_utc_offset("+08:00"), Ok(28_800));
        assert_eq!(parse_utc_offset("-05:30"), Ok(-19_800));
        assert!(parse_utc_offset("08:00").is_err());
        assert!(parse_utc_offset("+15:00").is_err());
    }

    #[test]
    fn the_bucket_holds_a_limit_on_average() {
        let l = RateLimiter::new(RateSchedule::default(), 0);
        let rate = Rate::Limit(1_000_000);
        let start = Instant::now();
        let mut now = start;
        let mut sent = 0u64;
        // Send 64 KiB pieces as fast as allowed for 10 virtual seconds.
        while now < start + Duration::from_secs(10) {
            let wait = l.charge(65_536, rate, now).expect("limited, not off");
            sent += 65_536;
            now += wait;
        }
        let avg = sent as f64 / now.duration_since(start).as_secs_f64();
        assert!((950_000.0..1_050_000.0).contains(&avg), "average {avg} B/s");
        assert_eq!(l.charge(1, Rate::Off, now), None);
        assert_eq!(l.charge(1 << 30, Rate::Unlimited, now), Some(Duration::ZERO));
    }
}
