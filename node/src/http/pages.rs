//! Server-rendered portal pages, in Chinese (zh-CN).

use super::api::{LessonView, PageQuery, SearchParams, SearchResult, run_search};
use super::auth::Auth;
use super::{ApiError, AppState, blocking};
use axum::Extension;
use crate::lessons;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;
use youke_search::{Dim, Order};

/// Escapes text for HTML element content and attribute values.
pub use youke_search::escape_html as esc;

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}



/// The page around `body`: the header with the node, navigation, the signed-in user (or a
/// sign-in link) and the search box; the session's CSRF token in a `<meta>` for scripts.
pub(super) fn layout(state: &AppState, auth: &Auth, title: &str, query: &str, body: &str) -> Html<String> {
    let w = &state.ctx.writer;
    let account = match auth.user() {
        Some(u) => format!(
            r#"<span class="node">{}（{}）</span><button id="logout" type="button" class="link">退出</button>"#,
            esc(&u.display),
            u.role.zh()
        ),
        None => r#"<a class="node" href="/login">登录</a>"#.to_string(),
    };
    Html(format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="csrf-token" content="{csrf}"><title>{title} · 优课</title><link rel="stylesheet" href="{portal_css}"><script src="{portal_js}" defer></script></head><body>
<header><a href="/">优课 Youke</a><span class="node">{tier}节点 · {name}</span><a class="node" href="/search">浏览课程</a><a class="node" href="/upload">上传录像</a>{account}
<form action="/search" method="get" role="search"><input type="search" name="q" value="{q}" placeholder="搜索课程、教师、知识点" aria-label="搜索"><button type="submit">搜索</button></form></header>
<main>{body}</main></body></html>"#,
        csrf = esc(auth.csrf()),
        portal_js = super::assets::url("portal.js"),
        portal_css = super::assets::url("portal.css"),
        title = esc(title),
        tier = w.tier.zh(),
        name = esc(&w.node_name),
        q = esc(query),
    ))
}

fn lesson_rows(views: &[LessonView]) -> String {
    let mut rows = String::new();
    for v in views {
        let l = &v.lesson;
        let _ = write!(
            rows,
            r#"<tr><td><a href="/lessons/{id}">{title}</a></td><td>{teacher}</td><td>{subject}</td><td>{grade}</td><td>{origin}</td><td><span class="tag">{share}</span></td><td>{media}</td></tr>"#,
            id = esc(&l.id),
            title = esc(&l.title),
            teacher = esc(&l.teacher),
            subject = esc(&l.subject),
            grade = esc(&l.grade),
            origin = esc(&l.origin_name),
            share = l.share_level.zh(),
            media = if v.media_present { "可播放" } else { "传输中" },
        );
    }
    format!(
        "<table><thead><tr><th>课程</th><th>教师</th><th>学科</th><th>年级</th><th>来源</th><th>共享范围</th><th>视频</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

pub async fn home(State(state): State<AppState>, Extension(auth): Extension<Auth>, Query(q): Query<PageQuery>) -> Result<Html<String>, ApiError> {
    let (page, per_page) = q.resolve()?;
    let (views, total) = blocking(&state, move |ctx| {
        let (items, total) = ctx.store.read(|c| lessons::list(c, (page - 1) * per_page, per_page))?;
        Ok((items.into_iter().map(|l| LessonView::new(ctx, l)).collect::<Vec<_>>(), total))
    })
    .await?;
    let mut body = format!("<h1>全部课程 <span class=\"muted\">共 {total} 节</span></h1>");
    if views.is_empty() {
        body.push_str("<p class=\"muted\">还没有课程。用 <code>youke import 文件.mp4</code> 导入录播课程。</p>");
    } else {
        body.push_str(&lesson_rows(&views));
    }
    let pages = total.div_ceil(per_page).max(1);
    body.push_str("<div class=\"pager\">");
    if page > 1 {
        let _ = write!(body, "<a href=\"/?page={}&per_page={per_page}\">上一页</a>", page - 1);
    }
    let _ = write!(body, "<span class=\"muted\">第 {page} / {pages} 页</span>");
    if page < pages {
        let _ = write!(body, "<a href=\"/?page={}&per_page={per_page}\">下一页</a>", page + 1);
    }
    body.push_str("</div>");
    Ok(layout(&state, &auth, "全部课程", "", &body))
}

pub async fn search(State(state): State<AppState>, Extension(auth): Extension<Auth>, RawQuery(raw): RawQuery) -> Result<Html<String>, ApiError> {
    let params = SearchParams::parse(raw.as_deref())?;
    let result = run_search(&state, params.clone()).await?;
    let body = search_body(&params, &result);
    let title = if params.q.is_empty() { "浏览课程".to_string() } else { format!("搜索 {}", params.q) };
    Ok(layout(&state, &auth, &title, &params.q, &body))
}

fn dim_zh(dim: Dim) -> &'static str {
    match dim {
        Dim::Grade => "年级",
        Dim::Subject => "学科",
        Dim::School => "学校",
        Dim::Teacher => "教师",
        Dim::Year => "年份",
        Dim::Tier => "来源",
        Dim::Compliance => "课程视频标准",
    }
}

fn value_zh(dim: Dim, value: &str) -> String {
    let zh = match (dim, value) {
        (Dim::Tier, "school") => "学校",
        (Dim::Tier, "city") => "市级",
        (Dim::Tier, "province") => "省级",
        (Dim::Compliance, "pass") => "符合",
        (Dim::Compliance, "fail") => "不符合",
        (Dim::Compliance, "unchecked") => "未检测",
        (_, "unknown") => "未知",
        (Dim::Year, y) => return format!("{y} 年"),
        (_, v) => v,
    };
    zh.to_string()
}

fn order_zh(order: Order) -> &'static str {
    match order {
        Order::Relevance => "综合排序",
        Order::MostViewed => "人气榜",
        Order::BestRated => "好评榜",
        Order::Newest => "最新",
    }
}

/// The search page: order tabs, facets with counts (a click adds or removes a filter), hits with
/// highlighted titles, snippets and subtitle moments, pages.
fn search_body(p: &SearchParams, r: &SearchResult) -> String {
    let mut body = if p.q.is_empty() {
        format!("<h1>浏览课程 <span class=\"muted\">共 {} 节</span></h1>", r.total)
    } else {
        format!("<h1>搜索“{}” <span class=\"muted\">找到 {} 节课程</span></h1>", esc(&p.q), r.total)
    };
    body.push_str(r#"<nav class="orders" aria-label="排序">"#);
    for order in Order::ALL {
        let class = if order == p.order { r#" class="on" aria-current="true""# } else { "" };
        let _ = write!(body, r#"<a href="/search?{}"{class}>{}</a>"#, esc(&p.href(None, order, 1)), order_zh(order));
    }
    body.push_str("</nav>");
    if !p.filters.is_empty() {
        body.push_str(r#"<p class="chosen">"#);
        for (dim, v) in &p.filters {
            let _ = write!(body, r#"<a class="tag" href="/search?{}" title="取消筛选">{}：{} ✕</a> "#, esc(&p.href(Some((*dim, v)), p.order, 1)), dim_zh(*dim), esc(&value_zh(*dim, v)));
        }
        body.push_str("</p>");
    }
    body.push_str(r#"<div class="results"><aside class="facets">"#);
    for dim in Dim::ALL {
        let Some(values) = r.facets.get(dim.as_str()).filter(|v| !v.is_empty()) else { continue };
        let _ = write!(body, "<h3>{}</h3><ul>", dim_zh(dim));
        for f in values {
            let on = p.filters.iter().any(|(d, v)| *d == dim && *v == f.value);
            let _ = write!(
                body,
                r#"<li><a href="/search?{}"{}>{} <span class="muted">{}</span></a></li>"#,
                esc(&p.href(Some((dim, &f.value)), p.order, 1)),
                if on { r#" class="on""# } else { "" },
                esc(&value_zh(dim, &f.value)),
                f.count
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("</aside><section class=\"hits\">");
    if r.items.is_empty() {
        body.push_str("<p class=\"muted\">没有找到匹配的课程，换个关键词或减少筛选条件试试。</p>");
    }
    for h in &r.items {
        let l = &h.lesson.lesson;
        // The index escaped the highlighted title and snippet itself.
        let title = h.title_html.clone().unwrap_or_else(|| esc(&l.title));
        let _ = write!(
            body,
            r#"<article class="hit"><a class="title" href="/lessons/{id}">{title}</a><p class="muted">{teacher} · {origin} · {subject} {grade}{views}</p>"#,
            id = esc(&l.id),
            teacher = esc(&l.teacher),
            origin = esc(&l.origin_name),
            subject = esc(&l.subject),
            grade = esc(&l.grade),
            views = if l.views > 0 { format!(" · {} 次观看", l.views) } else { String::new() },
        );
        if let Some(snippet) = &h.snippet_html {
            let _ = write!(body, r#"<p class="snippet">{snippet}</p>"#);
        }
        if !h.moments.is_empty() {
            body.push_str(r#"<p class="moments">"#);
            for m in &h.moments {
                let _ = write!(
                    body,
                    r#"<a href="/lessons/{id}?t={t:.3}">▶ <span class="muted">{clock}</span> {text}</a> "#,
                    id = esc(&l.id),
                    t = m.start_secs,
                    clock = minute_clock((m.start_secs * 1000.0) as u64),
                    text = esc(&m.text),
                );
            }
            body.push_str("</p>");
        }
        body.push_str("</article>");
    }
    let pages = (r.total as u64).div_ceil(p.per_page).clamp(1, youke_search::MAX_DEPTH as u64 / p.per_page);
    body.push_str(r#"<div class="pager">"#);
    if p.page > 1 {
        let _ = write!(body, r#"<a href="/search?{}" rel="prev">上一页</a>"#, esc(&p.href(None, p.order, p.page - 1)));
    }
    let _ = write!(body, "<span class=\"muted\">第 {} / {pages} 页</span>", p.page);
    if p.page < pages {
        let _ = write!(body, r#"<a href="/search?{}" rel="next">下一页</a>"#, esc(&p.href(None, p.order, p.page + 1)));
    }
    body.push_str("</div></section></div>");
    body
}

pub async fn lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Response {
    let found = blocking(&state, move |ctx| {
        let Some(l) = ctx.store.read(|c| lessons::get(c, &id))? else { return Ok(None) };
        // The subtitles as a transcript whose lines seek the player; a stored SRT that no longer
        // parses only loses the transcript, not the page.
        let cues = ctx.store.read(|c| lessons::subtitles_of(c, &id))?.and_then(|(srt, _)| youke_media::srt::parse(srt.as_bytes()).ok());
        Ok(Some((LessonView::new(ctx, l), cues)))
    })
    .await;
    let (v, cues) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            let page = layout(&state, &auth, "未找到", "", "<h1>未找到这节课程</h1><p><a href=\"/\">返回课程列表</a></p>");
            return (StatusCode::NOT_FOUND, page).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let l = &v.lesson;
    let player = player_html(&v);
    let transcript = cues.map(|c| transcript_html(&c)).unwrap_or_default();
    let probe = l.probe.as_ref();
    let video = probe.and_then(|p| p.get("video"));
    let audio = probe.and_then(|p| p.get("audio"));
    let fmt_video = video
        .map(|v| {
            format!(
                "{} {}×{} {} fps, {} kbit/s",
                v.get("codec").and_then(|c| c.as_str()).unwrap_or("?"),
                v.get("width").and_then(|c| c.as_u64()).unwrap_or(0),
                v.get("height").and_then(|c| c.as_u64()).unwrap_or(0),
                v.get("frame_rate").and_then(|c| c.as_f64()).unwrap_or(0.0),
                v.get("bit_rate").and_then(|c| c.as_u64()).unwrap_or(0) / 1000
            )
        })
        .unwrap_or_else(|| "—".into());
    let fmt_audio = audio
        .map(|a| {
            format!(
                "{} {} Hz, {} 声道, {} kbit/s",
                a.get("codec").and_then(|c| c.as_str()).unwrap_or("?"),
                a.get("sample_rate").and_then(|c| c.as_u64()).unwrap_or(0),
                a.get("channels").and_then(|c| c.as_u64()).unwrap_or(0),
                a.get("bit_rate").and_then(|c| c.as_u64()).unwrap_or(0) / 1000
            )
        })
        .unwrap_or_else(|| "—".into());
    let kps: Vec<String> = l
        .knowledge_points
        .iter()
        .map(|k| format!("<a class=\"tag\" href=\"/search?q={}\">{}</a>", url_encode(k), esc(k)))
        .collect();
    let body = format!(
        r#"<h1>{title}</h1>{player}{transcript}
<dl><dt>教师</dt><dd>{teacher}</dd><dt>学科</dt><dd>{subject}</dd><dt>年级</dt><dd>{grade}</dd>
<dt>知识点</dt><dd>{kps}</dd><dt>来源学校</dt><dd>{origin}</dd><dt>共享范围</dt><dd><span class="tag">{share}</span></dd>
<dt>时长</dt><dd>{duration:.1} 秒</dd><dt>视频</dt><dd>{fmt_video}</dd><dt>音频</dt><dd>{fmt_audio}</dd>
<dt>原始文件</dt><dd>{file}</dd><dt>媒体哈希 (BLAKE3)</dt><dd><code>{hash}</code></dd></dl>
{compliance}
<p class="muted">课程编号 {id} · <a href="/api/v1/lessons/{id}">JSON</a></p>"#,
        compliance = compliance_table(l.compliance.as_ref()),
        title = esc(&l.title),
        teacher = esc(&l.teacher),
        subject = esc(&l.subject),
        grade = esc(&l.grade),
        kps = kps.join(" "),
        origin = esc(&l.origin_name),
        share = l.share_level.zh(),
        duration = l.duration_secs.unwrap_or(0.0),
        file = esc(&l.original_name),
        hash = esc(l.media.as_ref().map(|m| m.hash.as_str()).unwrap_or("—")),
        id = esc(&l.id),
    );
    layout(&state, &auth, &l.title, "", &body).into_response()
}

/// The player: HLS master first (phones and Safari play it natively and pick the rung that fits
/// the network; elsewhere player.js hands it to hls.js), the original MP4 as the fallback, the
/// subtitles as a WebVTT track, the poster from the ladder, and a quality menu.
fn player_html(v: &LessonView) -> String {
    let l = &v.lesson;
    if !v.media_present && v.hls.is_none() {
        return "<p class=\"muted\">视频正在从来源节点传输，稍后刷新即可播放。</p>".to_string();
    }
    let mp4_mime = l.media.as_ref().map(|m| m.mime.as_str()).unwrap_or("video/mp4");
    let mut attrs = String::new();
    let mut sources = String::new();
    if let Some(h) = &v.hls {
        let _ = write!(attrs, r#" data-hls="{0}" poster="{1}""#, esc(&h.master_url), esc(&h.poster_url));
        let _ = write!(sources, r#"<source src="{}" type="application/vnd.apple.mpegurl">"#, esc(&h.master_url));
    }
    if v.media_present {
        let _ = write!(attrs, r#" data-mp4="{}""#, esc(&v.media_url));
        let _ = write!(sources, r#"<source src="{}" type="{}">"#, esc(&v.media_url), esc(mp4_mime));
    }
    if let Some(s) = &l.subtitles {
        let (lang, label) = if s.language == "en" { ("en", "English") } else { ("zh", "中文字幕") };
        let _ = write!(sources, r#"<track kind="subtitles" src="/api/v1/lessons/{}/subtitles.vtt" srclang="{lang}" label="{label}" default>"#, esc(&l.id));
    }
    let quality = if v.hls.is_some() {
        r#"<p class="player-bar"><label>画质 <select id="quality" data-auto="自动" hidden></select></label></p>"#
    } else {
        ""
    };
    format!(
        r#"<video id="player" controls playsinline preload="metadata"{attrs}>{sources}</video>{quality}<script src="{hls}" defer></script><script src="{player}" defer></script>"#,
        hls = super::assets::url("hls.min.js"),
        player = super::assets::url("player.js"),
    )
}

/// The subtitles as a list of lines, each a link that seeks the player to its moment.
fn transcript_html(cues: &[youke_media::srt::Cue]) -> String {
    if cues.is_empty() {
        return String::new();
    }
    let mut lines = String::new();
    for c in cues {
        let secs = c.start_ms as f64 / 1000.0;
        let _ = write!(
            lines,
            r#"<li><a href="?t={secs:.3}" data-seek="{secs:.3}"><span class="muted">{clock}</span> {text}</a></li>"#,
            clock = minute_clock(c.start_ms),
            text = esc(&c.text.replace('\n', " ")),
        );
    }
    format!(r#"<details class="transcript"><summary>字幕文本（{} 条，点击跳转）</summary><ol>{lines}</ol></details>"#, cues.len())
}

/// `mm:ss`, or `h:mm:ss` past the hour.
fn minute_clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 { format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) } else { format!("{:02}:{:02}", s / 60, s % 60) }
}

/// The course video standard report as a table (课程视频标准检测).
fn compliance_table(report: Option<&serde_json::Value>) -> String {
    let Some(rules) = report.and_then(|r| r.get("rules")).and_then(|r| r.as_array()) else { return String::new() };
    let mut rows = String::new();
    let mut fails = 0;
    for r in rules {
        let verdict = r.get("verdict").and_then(|v| v.as_str()).unwrap_or("");
        let (zh, class) = match verdict {
            "pass" => ("符合", "ok"),
            "fail" => {
                fails += 1;
                ("不符合", "fail")
            }
            "warn" => ("提示", "warn"),
            _ => ("无法检测", "muted"),
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{zh}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            esc(r.get("id").and_then(|v| v.as_str()).unwrap_or("")),
            esc(r.get("item").and_then(|v| v.as_str()).unwrap_or("")),
            esc(r.get("measured").and_then(|v| v.as_str()).unwrap_or("")),
            esc(r.get("rule").and_then(|v| v.as_str()).unwrap_or("")),
        );
    }
    let summary = if fails == 0 { "符合课程视频标准".to_string() } else { format!("{fails} 项不符合课程视频标准") };
    format!(r#"<h2>课程视频标准检测 <span class="tag">{summary}</span></h2><table><tr><th>编号</th><th>项目</th><th>结果</th><th>实测</th><th>要求</th></tr>{rows}</table>"#)
}

/// The upload page (上传录像): the file goes to `PUT /api/v1/uploads` with a progress bar.
pub async fn upload_page(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Html<String> {
    let body = format!(
        r#"<h1>上传录像</h1>
<form id="up"><dl>
<dt><label for="file">录像文件</label></dt><dd><input id="file" type="file" accept="video/*,.mp4,.mkv,.ts,.flv,.avi" required></dd>
<dt><label for="title">课程名称</label></dt><dd><input id="title" placeholder="默认取文件名"></dd>
<dt><label for="teacher">教师</label></dt><dd><input id="teacher"></dd>
<dt><label for="grade">年级</label></dt><dd><input id="grade"></dd>
<dt><label for="subject">学科</label></dt><dd><input id="subject"></dd>
</dl><p><button type="submit">上传</button> <progress id="bar" max="1" value="0" hidden></progress> <span id="msg" role="status"></span></p></form>
<script src="{}" defer></script>"#,
        super::assets::url("upload.js")
    );
    layout(&state, &auth, "上传录像", "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_url_encoding() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_encode("勾股 a"), "%E5%8B%BE%E8%82%A1%20a");
        assert_eq!((minute_clock(9_500), minute_clock(754_000), minute_clock(3_723_000)), ("00:09".into(), "12:34".into(), "1:02:03".into()));
    }
}
