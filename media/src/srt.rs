//! SRT subtitles: parsing, the checks of rules S3 and S4, and WebVTT for the player.
//!
//! Parsing is strict where a wrong guess would mislead viewers (a timing line that does not
//! parse is an error naming its line) and lenient where recording software differs (a UTF-8
//! byte order mark, CRLF line ends, a missing cue number, `.` instead of `,` before the
//! milliseconds, extra blank lines).

use serde::{Deserialize, Serialize};

/// What a lesson's subtitles are like, as the course standard's rules S1..S4 judge them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtitleFacts {
    /// The file is valid UTF-8 (rule S3).
    pub utf8: bool,
    pub cues: usize,
    /// Cues start in order and each ends after it starts (rule S4).
    pub ordered: bool,
    /// The last cue's end, in seconds.
    pub last_end_secs: f64,
    /// Share of cue characters that are CJK ideographs, 0 to 1 (rule S1).
    pub cjk_share: f64,
    /// What went wrong, for the report.
    pub problems: Vec<String>,
}

/// Largest subtitle file accepted (a 20-minute lecture has well under 1 MB).
pub const MAX_SRT_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SrtError {
    #[error("the subtitle file is not UTF-8 (first bad byte at offset {offset}); save it as UTF-8 (rule S3)")]
    NotUtf8 { offset: usize },
    #[error("the subtitle file is larger than {MAX_SRT_BYTES} bytes")]
    TooLarge,
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("the subtitle file has no cues")]
    Empty,
}

/// One subtitle: from `start` to `end` (milliseconds), its text (lines joined by `\n`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cue {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// Parses an SRT file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Vec<Cue>, SrtError> {
    if bytes.len() > MAX_SRT_BYTES {
        return Err(SrtError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| SrtError::NotUtf8 { offset: e.valid_up_to() })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut cues = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        // An optional cue number, then the timing line.
        let mut timing_at = i;
        if !lines[i].contains("-->") {
            if lines[i].trim().parse::<u64>().is_err() {
                return Err(SrtError::Malformed { line: i + 1, reason: format!("expected a cue number or a timing line, found {:?}", short(lines[i])) });
            }
            timing_at = i + 1;
        }
        let Some(timing) = lines.get(timing_at) else {
            return Err(SrtError::Malformed { line: timing_at + 1, reason: "the file ends after a cue number".into() });
        };
        let (start_ms, end_ms) = parse_timing(timing).map_err(|reason| SrtError::Malformed { line: timing_at + 1, reason })?;
        let mut j = timing_at + 1;
        let mut text_lines = Vec::new();
        while j < lines.len() && !lines[j].trim().is_empty() {
            text_lines.push(lines[j].trim());
            j += 1;
        }
        cues.push(Cue { start_ms, end_ms, text: text_lines.join("\n") });
        i = j;
    }
    if cues.is_empty() {
        return Err(SrtError::Empty);
    }
    Ok(cues)
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_timing(line: &str) -> Result<(u64, u64), String> {
    let (a, b) = line.split_once("-->").ok_or_else(|| format!("expected `start --> end`, found {:?}", short(line)))?;
    // Position settings may follow the end time ("00:00:02,000 X1:..."): keep the first word.
    let b = b.split_whitespace().next().unwrap_or("");
    Ok((parse_time(a.trim())?, parse_time(b)?))
}

/// `HH:MM:SS,mmm` (or `.mmm`; `MM:SS,mmm` too) in milliseconds.
fn parse_time(t: &str) -> Result<u64, String> {
    let bad = || format!("{:?} is not a time like 00:01:02,500", short(t));
    let (hms, ms) = t.rsplit_once([',', '.']).ok_or_else(bad)?;
    if ms.is_empty() || ms.len() > 3 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ms: u64 = format!("{ms:0<3}").parse().map_err(|_| bad())?;
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    let nums: Vec<u64> = parts.iter().map(|p| p.parse().unwrap_or(0)).collect();
    let (h, m, s) = if nums.len() == 3 { (nums[0], nums[1], nums[2]) } else { (0, nums[0], nums[1]) };
    if m >= 60 || s >= 60 {
        return Err(bad());
    }
    Ok(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// Rule S4 and the facts the standard is judged on; `duration_secs` is the video's, if known.
pub fn facts(cues: &[Cue], duration_secs: Option<f64>) -> SubtitleFacts {
    let mut problems = Vec::new();
    let mut ordered = true;
    for (i, c) in cues.iter().enumerate() {
        if c.end_ms <= c.start_ms {
            ordered = false;
            problems.push(format!("cue {} ends before it starts ({})", i + 1, clock(c.start_ms)));
        }
        if i > 0 && c.start_ms < cues[i - 1].start_ms {
            ordered = false;
            problems.push(format!("cue {} starts before cue {} ({} < {})", i + 1, i, clock(c.start_ms), clock(cues[i - 1].start_ms)));
        }
    }
    let last_end_ms = cues.iter().map(|c| c.end_ms).max().unwrap_or(0);
    if let Some(d) = duration_secs
        && last_end_ms as f64 / 1000.0 > d + 0.5
    {
        problems.push(format!("a cue ends at {}, after the video ({})", clock(last_end_ms), clock((d * 1000.0) as u64)));
    }
    let (mut cjk, mut letters) = (0usize, 0usize);
    for ch in cues.iter().flat_map(|c| c.text.chars()) {
        if is_cjk(ch) {
            cjk += 1;
            letters += 1;
        } else if ch.is_alphabetic() {
            letters += 1;
        }
    }
    SubtitleFacts {
        utf8: true,
        cues: cues.len(),
        ordered,
        last_end_secs: last_end_ms as f64 / 1000.0,
        cjk_share: if letters == 0 { 0.0 } else { cjk as f64 / letters as f64 },
        problems,
    }
}

fn is_cjk(c: char) -> bool {
    matches!(u32::from(c), 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF)
}

/// `HH:MM:SS.mmm`.
pub fn clock(ms: u64) -> String {
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// The cues as WebVTT, for the HTML5 player.
pub fn to_webvtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        // "-->" inside a cue's text would end its timing line early in WebVTT.
        let text = c.text.replace("-->", "→");
        out.push_str(&format!("{} --> {}\n{}\n\n", clock(c.start_ms), clock(c.end_ms), text));
    }
    out
}

/// The fuzz target of the SRT parser (`fuzz/fuzz_targets/srt.rs`, and the seed corpus replayed
/// by the tests): never panics; what parses converts to WebVTT whose cues parse back the same.
#[doc(hidden)]
#[allow(clippy::expect_used)] // a fuzz target reports a broken property by panicking
pub fn fuzz_srt(data: &[u8]) {
    if let Ok(cues) = parse(data) {
        let f = facts(&cues, Some(60.0));
        assert!(f.cues == cues.len() && (0.0..=1.0).contains(&f.cjk_share));
        let vtt = to_webvtt(&cues);
        assert!(vtt.starts_with("WEBVTT"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\u{feff}1\r\n00:00:01,000 --> 00:00:04,500\r\n同学们好，今天我们学习勾股定理。\r\n\r\n2\r\n00:00:05,000 --> 00:00:08,250\r\n直角三角形的两条直角边\r\n的平方和等于斜边的平方。\r\n\r\n\r\n00:01:00.5 --> 00:01:02,000 X1:10\r\n下课\r\n";

    #[test]
    fn the_fuzz_seed_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/srt");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("the seed corpus is committed") {
            fuzz_srt(&std::fs::read(e.expect("entry").path()).expect("read"));
            n += 1;
        }
        assert!(n >= 4);
    }

    #[test]
    fn parses_what_recording_software_writes() {
        let cues = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(cues.len(), 3);
        assert_eq!((cues[0].start_ms, cues[0].end_ms), (1000, 4500));
        assert_eq!(cues[1].text, "直角三角形的两条直角边\n的平方和等于斜边的平方。");
        assert_eq!((cues[2].start_ms, cues[2].end_ms), (60_500, 62_000), "no number, '.' and a position");
        let f = facts(&cues, Some(70.0));
        assert!(f.ordered && f.problems.is_empty(), "{f:?}");
        assert!(f.cjk_share > 0.99);
        let vtt = to_webvtt(&cues);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:01.000 --> 00:00:04.500\n同学们好"), "{vtt}");
    }

    #[test]
    fn bad_files_are_named_precisely() {
        let gbk = [0x31, 0x0a, 0x30, 0x30, 0xc4, 0xe3, 0xba, 0xc3, 0xff];
        assert!(matches!(parse(&gbk), Err(SrtError::NotUtf8 { offset: 4 })));
        let e = parse(b"1\n00:00:01,000 -> 00:00:02,000\nhi\n").unwrap_err();
        assert!(matches!(e, SrtError::Malformed { line: 2, .. }), "{e}");
        let e = parse(b"1\n00:00:01,000 --> 00:61:02,000\nhi\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(matches!(parse(b"hello\n"), Err(SrtError::Malformed { line: 1, .. })));
        assert!(matches!(parse(b"7\n"), Err(SrtError::Malformed { line: 2, .. })));
        assert_eq!(parse(b"\n\n \n"), Err(SrtError::Empty));
        assert_eq!(parse(&vec![b'a'; MAX_SRT_BYTES + 1]), Err(SrtError::TooLarge));
    }

    #[test]
    fn timing_problems_are_reported_for_rule_s4() {
        let cues = parse(b"1\n00:00:05,000 --> 00:00:04,000\na\n\n2\n00:00:01,000 --> 00:00:02,000\nb\n\n3\n00:10:00,000 --> 00:10:01,000\nc\n").unwrap();
        let f = facts(&cues, Some(60.0));
        assert!(!f.ordered);
        assert_eq!(f.problems.len(), 3, "{:?}", f.problems);
        assert!(f.problems[0].contains("ends before it starts"));
        assert!(f.problems[1].contains("starts before cue 1"));
        assert!(f.problems[2].contains("after the video"));
        assert_eq!(f.cjk_share, 0.0);
    }
}
