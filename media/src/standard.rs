//! The course video standard (`COURSE-STANDARD.md`), rule by rule: each rule's verdict (pass,
//! fail, warn, not checkable) with the value measured. Pure: it judges facts gathered by
//! [`crate::probe`], the subtitle parser and the caller (SD version, documents); it reads no
//! files.

use crate::probe::Probe;
use serde::{Deserialize, Serialize};

/// One gigabyte as the standard means it for file sizes (GiB: what file managers in schools
/// show as "1 GB").
pub const GB: u64 = 1 << 30;
/// Longest video (rule D1).
pub const MAX_DURATION_SECS: f64 = 20.0 * 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Advisory rules that are not met, and rules met only approximately.
    Warn,
    /// The file alone cannot tell (intro length, speech alignment, …).
    NotCheckable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Warn => "warn",
            Verdict::NotCheckable => "not-checkable",
        }
    }

    /// The Chinese word shown in the portal.
    pub fn zh(self) -> &'static str {
        match self {
            Verdict::Pass => "符合",
            Verdict::Fail => "不符合",
            Verdict::Warn => "提示",
            Verdict::NotCheckable => "无法检测",
        }
    }
}

/// The verdict of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    /// The rule's id in COURSE-STANDARD.md, e.g. `V2`.
    pub id: String,
    pub item: String,
    /// What the rule asks for.
    pub rule: String,
    pub verdict: Verdict,
    /// What was measured, e.g. `1280x720`.
    pub measured: String,
}

/// A compliance report: every rule of the standard, in the standard's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rules: Vec<RuleResult>,
}

impl Report {
    /// No rule fails (warnings and unknowns do not count against a lesson).
    pub fn compliant(&self) -> bool {
        self.rules.iter().all(|r| r.verdict != Verdict::Fail)
    }

    pub fn rule(&self, id: &str) -> Option<&RuleResult> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The report in a line per rule, `id verdict measured`, without the rules' wording (it is
    /// in [`RULES`]): what a lesson's document carries to every node, a fifth of the JSON.
    pub fn to_compact(&self) -> String {
        let mut out = String::with_capacity(self.rules.len() * 24);
        for r in &self.rules {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&r.id);
            out.push(' ');
            out.push_str(r.verdict.as_str());
            out.push(' ');
            out.extend(r.measured.chars().map(|c| if c == '\n' { ' ' } else { c }));
        }
        out
    }

    /// Reads [`Report::to_compact`]'s form; `None` if it is not that. A rule id this version
    /// does not know (from a newer standard) keeps its id as its item.
    pub fn from_compact(text: &str) -> Option<Report> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ' ');
            let (id, verdict, measured) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
            let verdict = [Verdict::Pass, Verdict::Fail, Verdict::Warn, Verdict::NotCheckable].into_iter().find(|v| v.as_str() == verdict)?;
            let (item, rule) = RULES.iter().find(|r| r.0 == id).map_or((id, ""), |r| (r.1, r.2));
            rules.push(RuleResult { id: id.into(), item: item.into(), rule: rule.into(), verdict, measured: measured.into() });
        }
        (!rules.is_empty()).then_some(Report { rules })
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.rules.iter().filter(|r| r.verdict == v).count()
    }

    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let w_item = self.rules.iter().map(|r| r.item.chars().count()).max().unwrap_or(4).max(4);
        let w_meas = self.rules.iter().map(|r| r.measured.chars().count()).max().unwrap_or(8).clamp(8, 48);
        let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
        out.push_str(&format!("{}  {}  {}  {}  {}\n", pad("rule", 4), pad("item", w_item), pad("verdict", 13), pad("measured", w_meas), "required"));
        for r in &self.rules {
            out.push_str(&format!(
                "{}  {}  {}  {}  {}\n",
                pad(&r.id, 4),
                pad(&r.item, w_item),
                pad(r.verdict.as_str(), 13),
                pad(&r.measured, w_meas),
                r.rule
            ));
        }
        out.push_str(&format!(
            "{} pass, {} fail, {} warn, {} not checkable: {}\n",
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.count(Verdict::Warn),
            self.count(Verdict::NotCheckable),
            if self.compliant() { "meets the standard" } else { "does not meet the standard" }
        ));
        out
    }
}

pub use crate::srt::SubtitleFacts;

/// The language a lecture is given in (rule S1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Chinese,
    English,
}

/// Everything the standard is judged on.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub probe: Option<&'a Probe>,
    /// Estimated audio signal-to-noise ratio in dB (rule A5), if measured.
    pub snr_db: Option<f64>,
    /// Resolution of the SD version the lesson has, if any (rule V5).
    pub sd_version: Option<(u32, u32)>,
    /// Subtitles attached to the lesson, if any.
    pub subtitles: Option<&'a SubtitleFacts>,
    /// The language of the lecture, when known.
    pub language: Option<Language>,
    /// File names of the documents attached to the lesson (rule P1).
    pub documents: &'a [String],
}

fn r(id: &str, item: &str, rule: &str, verdict: Verdict, measured: impl Into<String>) -> RuleResult {
    RuleResult { id: id.into(), item: item.into(), rule: rule.into(), verdict, measured: measured.into() }
}

fn mbit(bps: u64) -> String {
    format!("{:.2} Mbit/s", bps as f64 / 1e6)
}

fn size_text(bytes: u64) -> String {
    if bytes >= GB { format!("{:.2} GB", bytes as f64 / GB as f64) } else { format!("{:.1} MB", bytes as f64 / (1 << 20) as f64) }
}

/// Every rule of the standard, in its order: (id, item, what it asks). The one place their
/// wording lives: reports name rules by id and [`Report::from_compact`] fills in the rest.
pub const RULES: [(&str, &str, &str); 19] = [
    ("V1", "video codec", "H.264"),
    ("V2", "resolution", "at least 1920x1080"),
    ("V3", "frame rate", "25 or 29.97 fps, progressive"),
    ("V4", "video bit rate", "at least 8 Mbit/s"),
    ("V5", "file size", "at most 1 GB, or an SD version of at least 1280x720"),
    ("A1", "audio codec", "AAC"),
    ("A2", "audio sample rate", "at least 48 kHz"),
    ("A3", "audio bit rate", "at least 128 kbit/s"),
    ("A4", "audio channels", "two (stereo)"),
    ("A5", "audio SNR", "above 50 dB (advisory)"),
    ("D1", "duration", "at most 20 minutes"),
    ("D2", "intro", "at most 20 s (advisory)"),
    ("D3", "outro", "at most 10 s (advisory)"),
    ("S1", "subtitles", "in the lecture's language"),
    ("S2", "subtitle file", "a separate SRT file"),
    ("S3", "subtitle encoding", "UTF-8"),
    ("S4", "subtitle timing", "cues in order, inside the video"),
    ("S5", "subtitle text", "at most 1% wrong characters (advisory)"),
    ("P1", "documents", "slides and documents as PDF"),
];
const V1: (&str, &str, &str) = RULES[0];
const V2: (&str, &str, &str) = RULES[1];
const V3: (&str, &str, &str) = RULES[2];
const V4: (&str, &str, &str) = RULES[3];
const V5: (&str, &str, &str) = RULES[4];
const A5: (&str, &str, &str) = RULES[9];
const D1: (&str, &str, &str) = RULES[10];
const D2: (&str, &str, &str) = RULES[11];
const D3: (&str, &str, &str) = RULES[12];
const S1: (&str, &str, &str) = RULES[13];
const S2: (&str, &str, &str) = RULES[14];
const S3: (&str, &str, &str) = RULES[15];
const S4: (&str, &str, &str) = RULES[16];
const S5: (&str, &str, &str) = RULES[17];
const P1: (&str, &str, &str) = RULES[18];

/// Judges the facts against every rule of the standard.
pub fn check(f: &Facts<'_>) -> Report {
    let mut rules = Vec::with_capacity(20);
    video_rules(f, &mut rules);
    audio_rules(f, &mut rules);
    duration_rules(f, &mut rules);
    subtitle_rules(f, &mut rules);
    document_rules(f, &mut rules);
    Report { rules }
}

/// A rule that cannot be checked, and why.
fn unknown(id: &str, item: &str, rule: &str, why: &str) -> RuleResult {
    r(id, item, rule, Verdict::NotCheckable, why)
}

/// V1..V5: the video stream and the file.
fn video_rules(f: &Facts<'_>, rules: &mut Vec<RuleResult>) {
    use Verdict::*;
    let video = f.probe.and_then(|p| p.video.as_ref());
    let audio = f.probe.and_then(|p| p.audio.as_ref());
    // V1 codec
    rules.push(match video {
        Some(v) => {
            let ok = v.codec == "h264";
            let profile = v.profile.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            r(V1.0, V1.1, V1.2, if ok { Pass } else { Fail }, format!("{}{profile}", v.codec))
        }
        None => unknown(V1.0, V1.1, V1.2, "no video stream"),
    });
    // V2 resolution
    rules.push(match video {
        Some(v) => r(V2.0, V2.1, V2.2, if v.width >= 1920 && v.height >= 1080 { Pass } else { Fail }, format!("{}x{}", v.width, v.height)),
        None => unknown(V2.0, V2.1, V2.2, "no video stream"),
    });
    // V3 frame rate and scan
    rules.push(match video {
        Some(v) => {
            let rate_ok = (v.frame_rate - 25.0).abs() < 0.01 || (v.frame_rate - 29.97).abs() < 0.01;
            let measured = format!("{:.3} fps, {}", v.frame_rate, v.scan.as_str());
            let verdict = match (rate_ok, v.scan) {
                (false, _) | (_, crate::probe::Scan::Interlaced) => Fail,
                (true, crate::probe::Scan::Progressive) => Pass,
                (true, crate::probe::Scan::Unknown) => Warn,
            };
            r(V3.0, V3.1, V3.2, verdict, measured)
        }
        None => unknown(V3.0, V3.1, V3.2, "no video stream"),
    });
    // V4 video bit rate
    rules.push(match (video, f.probe) {
        (Some(v), _) if v.bit_rate > 0 => r(V4.0, V4.1, V4.2, if v.bit_rate >= 8_000_000 { Pass } else { Fail }, mbit(v.bit_rate)),
        (Some(_), Some(p)) if p.bit_rate > 0 => {
            // The stream does not say: estimate from the file's rate minus the audio's.
            let est = p.bit_rate.saturating_sub(audio.map_or(0, |a| a.bit_rate));
            r(V4.0, V4.1, V4.2, if est >= 8_000_000 { Pass } else { Fail }, format!("≈{} (from the file's overall rate)", mbit(est)))
        }
        _ => unknown(V4.0, V4.1, V4.2, "the file does not say"),
    });
    // V5 file size
    rules.push(match f.probe {
        Some(p) if p.size_bytes <= GB => r(V5.0, V5.1, V5.2, Pass, size_text(p.size_bytes)),
        Some(p) => match f.sd_version {
            Some((w, h)) if w >= 1280 && h >= 720 => r(V5.0, V5.1, V5.2, Pass, format!("{}, with an SD version {w}x{h}", size_text(p.size_bytes))),
            Some((w, h)) => r(V5.0, V5.1, V5.2, Fail, format!("{}, SD version only {w}x{h}", size_text(p.size_bytes))),
            None => r(V5.0, V5.1, V5.2, Fail, format!("{}, no SD version yet", size_text(p.size_bytes))),
        },
        None => unknown(V5.0, V5.1, V5.2, "no file"),
    });
}

/// A1..A5: the audio stream.
fn audio_rules(f: &Facts<'_>, rules: &mut Vec<RuleResult>) {
    use Verdict::*;
    let audio = f.probe.and_then(|p| p.audio.as_ref());
    // A1..A4 audio
    let audio_rules = [RULES[5], RULES[6], RULES[7], RULES[8]];
    match audio {
        None => {
            for (id, item, rule) in audio_rules {
                rules.push(r(id, item, rule, Fail, "no audio stream"));
            }
        }
        Some(a) => {
            let [a1, a2, a3, a4] = audio_rules;
            let profile = a.profile.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            rules.push(r(a1.0, a1.1, a1.2, if a.codec == "aac" { Pass } else { Fail }, format!("{}{profile}", a.codec)));
            rules.push(r(a2.0, a2.1, a2.2, if a.sample_rate >= 48_000 { Pass } else { Fail }, format!("{:.1} kHz", f64::from(a.sample_rate) / 1000.0)));
            rules.push(if a.bit_rate == 0 {
                r(a3.0, a3.1, a3.2, NotCheckable, "the file does not say")
            } else {
                r(a3.0, a3.1, a3.2, if a.bit_rate >= 128_000 { Pass } else { Fail }, format!("{} kbit/s", a.bit_rate / 1000))
            });
            rules.push(r(a4.0, a4.1, a4.2, if a.channels == 2 { Pass } else { Fail }, format!("{} channel(s)", a.channels)));
        }
    }
    // A5 SNR (advisory)
    rules.push(match (audio, f.snr_db) {
        (None, _) => unknown(A5.0, A5.1, A5.2, "no audio stream"),
        (Some(_), None) => unknown(A5.0, A5.1, A5.2, "not measured (or no pauses to hear the noise in)"),
        (Some(_), Some(db)) => r(A5.0, A5.1, A5.2, if db > 50.0 { Pass } else { Warn }, format!("≈{db:.0} dB (estimated)")),
    });
}

/// D1..D3: the lesson's length.
fn duration_rules(f: &Facts<'_>, rules: &mut Vec<RuleResult>) {
    use Verdict::*;
    // D1..D3 duration
    rules.push(match f.probe {
        Some(p) => {
            let secs = p.duration_secs;
            r(D1.0, D1.1, D1.2, if secs <= MAX_DURATION_SECS { Pass } else { Fail }, format!("{}:{:02}", (secs / 60.0) as u64, (secs % 60.0) as u64))
        }
        None => unknown(D1.0, D1.1, D1.2, "no file"),
    });
    rules.push(unknown(D2.0, D2.1, D2.2, "needs an intro marker"));
    rules.push(unknown(D3.0, D3.1, D3.2, "needs an outro marker"));
}

/// S1..S5: the subtitles.
fn subtitle_rules(f: &Facts<'_>, rules: &mut Vec<RuleResult>) {
    use Verdict::*;
    // S1..S5 subtitles
    match f.subtitles {
        None => {
            rules.push(r(S1.0, S1.1, S1.2, Fail, "no subtitles"));
            rules.push(r(S2.0, S2.1, S2.2, Fail, "no SRT file attached"));
            rules.push(unknown(S3.0, S3.1, S3.2, "no subtitles"));
            rules.push(unknown(S4.0, S4.1, S4.2, "no subtitles"));
            rules.push(unknown(S5.0, S5.1, S5.2, "no subtitles"));
        }
        Some(s) => {
            let lang = if s.cjk_share >= 0.3 { "Chinese" } else { "English or other" };
            rules.push(match f.language {
                Some(Language::Chinese) => r(S1.0, S1.1, S1.2, if s.cjk_share >= 0.3 { Pass } else { Fail }, format!("{} cue(s), {lang}", s.cues)),
                Some(Language::English) => r(S1.0, S1.1, S1.2, if s.cjk_share < 0.3 { Pass } else { Fail }, format!("{} cue(s), {lang}", s.cues)),
                None => r(S1.0, S1.1, S1.2, if s.cues > 0 { Pass } else { Fail }, format!("{} cue(s), {lang}", s.cues)),
            });
            rules.push(r(S2.0, S2.1, S2.2, Pass, "SRT attached"));
            rules.push(r(S3.0, S3.1, S3.2, if s.utf8 { Pass } else { Fail }, if s.utf8 { "UTF-8" } else { "not UTF-8" }));
            let inside = f.probe.is_none_or(|p| s.last_end_secs <= p.duration_secs + 0.5);
            let timing = if s.ordered && inside {
                r(S4.0, S4.1, S4.2, Pass, format!("last cue ends at {:.1} s", s.last_end_secs))
            } else {
                let why = s.problems.first().cloned().unwrap_or_else(|| {
                    if inside { "cues out of order".into() } else { format!("a cue ends at {:.1} s, after the video", s.last_end_secs) }
                });
                r(S4.0, S4.1, S4.2, Fail, why)
            };
            rules.push(timing);
            rules.push(unknown(S5.0, S5.1, S5.2, "needs a reviewer"));
        }
    }
}

/// P1: the documents beside the video.
fn document_rules(f: &Facts<'_>, rules: &mut Vec<RuleResult>) {
    use Verdict::*;
    // P1 documents
    rules.push(if f.documents.is_empty() {
        unknown(P1.0, P1.1, P1.2, "no documents attached")
    } else {
        let not_pdf: Vec<&String> = f.documents.iter().filter(|d| !d.to_lowercase().ends_with(".pdf")).collect();
        if not_pdf.is_empty() {
            r(P1.0, P1.1, P1.2, Pass, format!("{} PDF document(s)", f.documents.len()))
        } else {
            r(P1.0, P1.1, P1.2, Fail, format!("not PDF: {}", not_pdf.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
        }
    });
}


/// What to check a file with, besides the file itself.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The SRT file's bytes, if the lesson has subtitles.
    pub srt: Option<Vec<u8>>,
    pub language: Option<Language>,
    /// Decode the audio to estimate its SNR (rule A5; a few seconds for a long lecture).
    pub measure_snr: bool,
    pub sd_version: Option<(u32, u32)>,
    pub documents: Vec<String>,
}

/// Probes `path` (and measures what `opts` asks for) and judges it against the standard. A
/// file that is not media is an error; everything else is in the report.
pub fn check_file(path: &std::path::Path, opts: &CheckOptions) -> Result<(crate::Probe, Report), crate::MediaError> {
    let probe = crate::probe(path)?;
    let snr_db = if opts.measure_snr { crate::analyze::snr_db(path)? } else { None };
    let subtitles = opts.srt.as_deref().map(|bytes| match crate::srt::parse(bytes) {
        Ok(cues) => crate::srt::facts(&cues, Some(probe.duration_secs)),
        Err(e) => SubtitleFacts {
            utf8: !matches!(e, crate::srt::SrtError::NotUtf8 { .. }),
            cues: 0,
            ordered: false,
            last_end_secs: 0.0,
            cjk_share: 0.0,
            problems: vec![e.to_string()],
        },
    });
    let report = check(&Facts {
        probe: Some(&probe),
        snr_db,
        sd_version: opts.sd_version,
        subtitles: subtitles.as_ref(),
        language: opts.language,
        documents: &opts.documents,
    });
    Ok((probe, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{AudioInfo, Scan, VideoInfo};

    fn probe(w: u32, h: u32, fps: f64, vbr: u64, size: u64) -> Probe {
        Probe {
            container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            duration_secs: 600.0,
            size_bytes: size,
            bit_rate: vbr + 192_000,
            video: Some(VideoInfo { codec: "h264".into(), profile: Some("High".into()), level: Some(40), width: w, height: h, frame_rate: fps, scan: Scan::Progressive, bit_rate: vbr, pixel_format: Some("yuv420p".into()) }),
            audio: Some(AudioInfo { codec: "aac".into(), profile: Some("LC".into()), sample_rate: 48_000, channels: 2, bit_rate: 192_000 }),
        }
    }

    fn subs() -> SubtitleFacts {
        SubtitleFacts { utf8: true, cues: 120, ordered: true, last_end_secs: 590.0, cjk_share: 0.9, problems: vec![] }
    }

    #[test]
    fn a_conforming_master_passes_every_checkable_rule() {
        let p = probe(1920, 1080, 25.0, 10_000_000, 700 << 20);
        let s = subs();
        let docs = vec!["课件.pdf".to_string()];
        let rep = check(&Facts { probe: Some(&p), snr_db: Some(62.0), subtitles: Some(&s), language: Some(Language::Chinese), documents: &docs, ..Facts::default() });
        let ids: Vec<&str> = rep.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["V1", "V2", "V3", "V4", "V5", "A1", "A2", "A3", "A4", "A5", "D1", "D2", "D3", "S1", "S2", "S3", "S4", "S5", "P1"]);
        assert!(rep.compliant(), "{}", rep.table());
        assert_eq!(rep.count(Verdict::Fail), 0);
        assert_eq!(rep.rule("V2").unwrap().measured, "1920x1080");
        assert_eq!(rep.rule("D2").unwrap().verdict, Verdict::NotCheckable);
        assert!(rep.table().contains("meets the standard"));
    }

    #[test]
    fn each_rule_fails_with_the_value_it_measured() {
        let mut p = probe(1280, 720, 30.0, 2_000_000, 3 * GB);
        if let Some(v) = p.video.as_mut() {
            v.codec = "hevc".into();
            v.scan = Scan::Interlaced;
        }
        p.audio = Some(AudioInfo { codec: "mp3".into(), profile: None, sample_rate: 44_100, channels: 1, bit_rate: 64_000 });
        p.duration_secs = 45.0 * 60.0;
        let bad_subs = SubtitleFacts { utf8: false, cues: 3, ordered: false, last_end_secs: 9_999.0, cjk_share: 0.0, problems: vec!["cue 2 starts before cue 1".into()] };
        let docs = vec!["课件.pptx".to_string()];
        let rep = check(&Facts { probe: Some(&p), snr_db: Some(31.0), subtitles: Some(&bad_subs), language: Some(Language::Chinese), documents: &docs, ..Facts::default() });
        for id in ["V1", "V2", "V3", "V4", "V5", "A1", "A2", "A3", "A4", "D1", "S1", "S3", "S4", "P1"] {
            assert_eq!(rep.rule(id).unwrap().verdict, Verdict::Fail, "{id}: {}", rep.table());
        }
        assert_eq!(rep.rule("A5").unwrap().verdict, Verdict::Warn, "advisory rules only warn");
        assert_eq!(rep.rule("V3").unwrap().measured, "30.000 fps, interlaced");
        assert_eq!(rep.rule("V4").unwrap().measured, "2.00 Mbit/s");
        assert!(rep.rule("V5").unwrap().measured.contains("3.00 GB"));
        assert_eq!(rep.rule("S4").unwrap().measured, "cue 2 starts before cue 1");
        assert!(rep.rule("P1").unwrap().measured.contains("课件.pptx"));
        assert!(!rep.compliant());
    }

    #[test]
    fn big_masters_pass_with_an_sd_version_and_missing_streams_are_named() {
        let p = probe(1920, 1080, 29.97, 12_000_000, 2 * GB);
        let rep = check(&Facts { probe: Some(&p), sd_version: Some((1280, 720)), ..Facts::default() });
        assert_eq!(rep.rule("V5").unwrap().verdict, Verdict::Pass);
        assert_eq!(rep.rule("S1").unwrap().verdict, Verdict::Fail, "subtitles are required");
        assert_eq!(rep.rule("A5").unwrap().verdict, Verdict::NotCheckable);
        let mut silent = probe(1920, 1080, 25.0, 0, 100 << 20);
        silent.audio = None;
        silent.bit_rate = 9_000_000;
        let rep = check(&Facts { probe: Some(&silent), ..Facts::default() });
        assert_eq!(rep.rule("A1").unwrap().measured, "no audio stream");
        assert_eq!(rep.rule("V4").unwrap().verdict, Verdict::Pass, "estimated from the overall rate");
        assert!(rep.rule("V4").unwrap().measured.starts_with('≈'));
    }

    #[test]
    fn the_compact_form_reads_back_as_the_same_report_at_a_fifth_of_the_json() {
        let p = probe(1280, 720, 25.0, 2_000_000, 3 * GB);
        let rep = check(&Facts { probe: Some(&p), sd_version: Some((1280, 720)), documents: &["教案.docx".to_string()], ..Facts::default() });
        assert_eq!(rep.rules.len(), RULES.len());
        let compact = rep.to_compact();
        assert_eq!(Report::from_compact(&compact), Some(rep.clone()));
        let json = serde_json::to_string(&rep).unwrap();
        assert!(compact.len() * 4 < json.len(), "{} against {}", compact.len(), json.len());
        // A rule of a newer standard keeps its id; anything else is not this form.
        let newer = Report::from_compact("X9 warn something new").unwrap();
        assert_eq!((newer.rules[0].item.as_str(), newer.rules[0].verdict), ("X9", Verdict::Warn));
        assert_eq!(Report::from_compact("{\"rules\":[]}"), None);
        assert_eq!(Report::from_compact(""), None);
    }
}
