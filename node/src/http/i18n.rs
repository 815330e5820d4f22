//! The portal's two languages: Chinese (zh-CN, the default) and English.
//!
//! The choice is a cookie (`youke_lang`) set by `GET /lang?to=en&next=/path`; no cookie means
//! Chinese, whatever the browser's Accept-Language says (school PCs often run English Windows).
//! Every string a page shows is written as a pair at the place it is used, `lang.t("中文",
//! "English")`, so a page cannot be half-translated without its English test seeing Chinese.
//! Scripts read `<html lang>` and carry their own pairs.

use crate::accounts::Role;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use youke_federation::Tier;

pub const COOKIE: &str = "youke_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// The language a request asks for by its cookie; Chinese without one.
    pub fn of(headers: &HeaderMap) -> Lang {
        let chosen = super::cookies::cookie(headers, COOKIE);
        if chosen.as_deref() == Some("en") { Lang::En } else { Lang::Zh }
    }

    /// The string in this language.
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// `<html lang>`.
    pub fn tag(self) -> &'static str {
        self.t("zh-CN", "en")
    }

    /// The other language: its code and its name in itself, for the switch.
    pub fn other(self) -> (&'static str, &'static str) {
        match self {
            Lang::Zh => ("en", "English"),
            Lang::En => ("zh", "中文"),
        }
    }

    pub fn role(self, r: Role) -> &'static str {
        match self {
            Lang::Zh => r.zh(),
            Lang::En => match r {
                Role::Viewer => "viewer",
                Role::Expert => "expert",
                Role::Teacher => "teacher",
                Role::Admin => "administrator",
            },
        }
    }

    /// A tier as a node's kind (学校 / 市级 / 省级).
    pub fn tier(self, t: Tier) -> &'static str {
        match self {
            Lang::Zh => t.zh(),
            Lang::En => match t {
                Tier::School => "school",
                Tier::City => "city",
                Tier::Province => "province",
            },
        }
    }

    /// How far a lesson is shared.
    pub fn share(self, t: Tier) -> &'static str {
        match t {
            Tier::School => self.t("本校", "this school"),
            Tier::City => self.t("全市", "city-wide"),
            Tier::Province => self.t("全省", "province-wide"),
        }
    }

    /// A lesson's replication state in words.
    pub fn replication(self, r: &crate::lessons::Replication) -> String {
            let l = self;
        let parent = r.parent.as_deref().unwrap_or_else(|| l.t("上级节点", "the parent node"));
        let media = match &r.media {
            Some(m) if !m.done && m.attempts > 0 => match l {
                Lang::Zh => format!("（视频已重试 {} 次{}）", m.attempts, m.last_error.as_deref().map(|e| format!("：{e}")).unwrap_or_default()),
                Lang::En => format!(" (video tried {} times{})", m.attempts, m.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()),
            },
            _ => String::new(),
        };
        match (l, r.state) {
            (Lang::Zh, "local") => "仅在本节点".to_string(),
            (Lang::En, "local") => "kept at this node".to_string(),
            (Lang::Zh, "waiting") => format!("等待与{parent}的连接{media}"),
            (Lang::En, "waiting") => format!("waiting for the link to {parent}{media}"),
            (Lang::Zh, "delivered") => format!("已送达{parent}"),
            (Lang::En, "delivered") => format!("delivered to {parent}"),
            (Lang::Zh, _) => format!("正在送往{parent}{media}"),
            (Lang::En, _) => format!("on its way to {parent}{media}"),
        }
    }

    /// A grade or subject of the standard lists ([`crate::lessons::GRADES`], [`crate::lessons::SUBJECTS`])
    /// as shown in this language (the stored value stays Chinese).
    pub fn term(self, value: &str) -> String {
        if self == Lang::Zh {
            return value.to_string();
        }
        let english = [
            ("一年级", "Grade 1"), ("二年级", "Grade 2"), ("三年级", "Grade 3"), ("四年级", "Grade 4"), ("五年级", "Grade 5"),
            ("六年级", "Grade 6"), ("七年级", "Grade 7"), ("八年级", "Grade 8"), ("九年级", "Grade 9"),
            ("高一", "Senior 1"), ("高二", "Senior 2"), ("高三", "Senior 3"),
            ("语文", "Chinese"), ("数学", "Mathematics"), ("英语", "English"), ("道德与法治", "Morality and Law"),
            ("思想政治", "Ideology and Politics"), ("历史", "History"), ("地理", "Geography"), ("物理", "Physics"),
            ("化学", "Chemistry"), ("生物学", "Biology"), ("科学", "Science"), ("信息科技", "Information Technology (compulsory)"),
            ("信息技术", "Information Technology"), ("通用技术", "General Technology"), ("体育与健康", "Physical Education and Health"),
            ("艺术", "Arts"), ("音乐", "Music"), ("美术", "Fine Arts"), ("劳动", "Labour"), ("综合实践活动", "Integrated Practice"), ("日语", "Japanese"),
        ];
        english.iter().find(|(zh, _)| *zh == value).map_or_else(|| value.to_string(), |(_, en)| (*en).to_string())
    }

    /// A course-standard measurement (the report is written in English by `youke_media`) in
    /// this language: the fixed phrases and the patterns the report uses; numbers and codec
    /// names stay as they are.
    pub fn measured(self, text: &str) -> String {
        if self == Lang::En {
            return text.to_string();
        }
        let fixed = [
            ("no video stream", "没有视频流"),
            ("no audio stream", "没有音频流"),
            ("the file does not say", "文件未标明"),
            ("no file", "没有文件"),
            ("not measured (or no pauses to hear the noise in)", "未测出（录像中没有可测噪声的停顿）"),
            ("needs an intro marker", "需标注片头"),
            ("needs an outro marker", "需标注片尾"),
            ("no subtitles", "没有字幕"),
            ("no SRT file attached", "未附 SRT 字幕文件"),
            ("SRT attached", "已附 SRT 字幕文件"),
            ("not UTF-8", "不是 UTF-8 编码"),
            ("cues out of order", "字幕条目顺序错乱"),
            ("needs a reviewer", "需人工审阅"),
            ("no documents attached", "未附课件文档"),
        ];
        if let Some((_, zh)) = fixed.iter().find(|(en, _)| *en == text) {
            return (*zh).to_string();
        }
        let patterns: [(&str, &str, &str, &str); 11] = [
            ("", " channel(s)", "", " 声道"),
            ("", " cue(s), Chinese", "", " 条字幕，中文"),
            ("", " cue(s), English or other", "", " 条字幕，英文或其他语言"),
            ("", " PDF document(s)", "", " 个 PDF 文档"),
            ("last cue ends at ", " s", "最后一条字幕结束于 ", " 秒"),
            ("a cue ends at ", " s, after the video", "有字幕结束于 ", " 秒，晚于视频结尾"),
            ("≈", " (from the file's overall rate)", "≈", "（由文件总码率估算）"),
            ("≈", " dB (estimated)", "≈", " dB（估算）"),
            ("", ", no SD version yet", "", "，尚无标清版本"),
            ("", " fps, progressive", "", " 帧/秒，逐行扫描"),
            ("", " fps, interlaced", "", " 帧/秒，隔行扫描"),
        ];
        for (pre, post, zh_pre, zh_post) in patterns {
            if let Some(mid) = text.strip_prefix(pre).and_then(|t| t.strip_suffix(post)) {
                return format!("{zh_pre}{mid}{zh_post}");
            }
        }
        if let Some(files) = text.strip_prefix("not PDF: ") {
            return format!("不是 PDF：{files}");
        }
        if let Some((size, sd)) = text.split_once(", with an SD version ") {
            return format!("{size}，另有标清版本 {sd}");
        }
        if let Some((size, sd)) = text.split_once(", SD version only ") {
            return format!("{size}，标清版本仅 {sd}");
        }
        text.to_string()
    }

    /// The tiers that hold a lesson's recording, in words (送达石家庄市 → 河北省); empty before
    /// the first.
    pub fn arrivals(self, x: &crate::lessons::Lesson) -> String {
        if x.arrived.is_empty() {
            return String::new();
        }
        let names: Vec<&str> = x.arrived.iter().map(|a| a.node.as_str()).collect();
        match self {
            Lang::Zh => format!("已送达{}", names.join(" → ")),
            Lang::En => format!("delivered to {}", names.join(" → ")),
        }
    }

    /// A shared lesson's review state in words: taken down, rejected or approved (by which node,
    /// why), or waiting for which tier's review; empty for a lesson kept at its school.
    pub fn review_status(self, x: &crate::lessons::Lesson) -> String {
        let l = self;
        if let Some(t) = &x.takedown {
            return match l {
                Lang::Zh => format!("已被{}下架：{}", t.node, t.reason),
                Lang::En => format!("taken down by {}: {}", t.node, t.reason),
            };
        }
        if x.share_level == Tier::School {
            return String::new();
        }
        match x.moderation.iter().find(|d| d.tier == x.share_level) {
            Some(d) if d.approved => match l {
                Lang::Zh => format!("{}已审核通过，{}各校可见", d.node, l.share(x.share_level)),
                Lang::En => format!("approved by {}: visible to every school {}", d.node, l.share(x.share_level)),
            },
            Some(d) => match l {
                Lang::Zh => format!("{}审核未通过：{}", d.node, d.reason),
                Lang::En => format!("not approved by {}: {}", d.node, d.reason),
            },
            None => match l {
                Lang::Zh => format!("等待{}级审核", l.tier(x.share_level).trim_end_matches('级')),
                Lang::En => format!("waiting for review at the {} level", l.tier(x.share_level)),
            },
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SwitchQuery {
    pub to: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// The page a same-site link was followed from (`Referer`, sent for same-origin requests), as
/// a path on this portal.
fn came_from(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let rest = referer.split_once("://")?.1.strip_prefix(host)?;
    rest.starts_with('/').then(|| rest.to_string())
}

/// `GET /lang?to=en|zh[&next=/path]`: remembers the choice for a year and goes back to `next`,
/// or to the page the link was on.
pub async fn switch(headers: HeaderMap, Query(q): Query<SwitchQuery>) -> Response {
    let value = match q.to.as_str() {
        "en" => "en",
        _ => "zh",
    };
    let next = q.next.or_else(|| came_from(&headers));
    let mut r = match super::redirect::local_path(next.as_deref()) {
        Ok(path) => super::redirect::redirect_to(&path),
        Err(e) => return e.into_response(),
    };
    let cookie = format!("{COOKIE}={value}; Path=/; SameSite=Lax; Max-Age=31536000");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_unless_the_cookie_says_english() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h), Lang::Zh);
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en-US,en;q=0.9"));
        assert_eq!(Lang::of(&h), Lang::Zh, "the browser's language does not switch the portal");
        h.insert(header::COOKIE, HeaderValue::from_static("youke_session=abc; youke_lang=en"));
        assert_eq!(Lang::of(&h), Lang::En);
        h.insert(header::COOKIE, HeaderValue::from_static("youke_lang=fr"));
        assert_eq!(Lang::of(&h), Lang::Zh);
        assert_eq!((Lang::Zh.other(), Lang::En.other()), (("en", "English"), ("zh", "中文")));
    }

    #[test]
    fn the_switch_returns_to_a_page_of_this_portal_only() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("school.lan:8080"));
        assert_eq!(came_from(&h), None);
        h.insert(header::REFERER, HeaderValue::from_static("http://school.lan:8080/search?q=%E5%8B%BE"));
        assert_eq!(came_from(&h).as_deref(), Some("/search?q=%E5%8B%BE"));
        h.insert(header::REFERER, HeaderValue::from_static("http://school.lan:8080.evil.example/x"));
        assert_eq!(came_from(&h), None);
        h.insert(header::REFERER, HeaderValue::from_static("http://evil.example/"));
        assert_eq!(came_from(&h), None);
    }
}
