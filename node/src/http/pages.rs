//! Server-rendered portal pages, in Chinese (zh-CN) or English ([`Lang`]).

use super::api::{LessonView, SearchParams, SearchResult, run_search, search_cards};
use super::auth::Auth;
use super::i18n::Lang;
use super::{ApiError, AppState, blocking};
use crate::accounts::Role;
use crate::{catalog, lessons};
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;
use youke_search::{Dim, Order};

/// Escapes text for HTML element content and attribute values.
pub use super::html::escape as esc;
use super::html::{Escaped, push_escaped};

pub(super) fn url_encode(s: &str) -> String {
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



/// The page around `body`: the header with the node, navigation, the language switch, the
/// signed-in user (or a sign-in link) and the search box; the session's CSRF token in a
/// `<meta>` for scripts.
pub(super) fn layout(state: &AppState, auth: &Auth, title: &str, query: &str, body: &str) -> Html<String> {
    let w = &state.ctx.writer;
    let l = auth.lang;
    let role = auth.user().map(|u| u.role);
    let account = match auth.user() {
        Some(u) => format!(
            r#"<span class="node">{}{}{}{}</span><button id="logout" type="button" class="link">{}</button>"#,
            esc(&u.display),
            l.t("（", " ("),
            l.role(u.role),
            l.t("）", ")"),
            l.t("退出", "Sign out")
        ),
        None => format!(r#"<a class="node" href="/login">{}</a>"#, l.t("登录", "Sign in")),
    };
    let mut nav = String::new();
    let mut link = |href: &str, text: &str| {
        let _ = write!(nav, r#"<a href="{href}">{text}</a>"#);
    };
    link("/search", l.t("浏览课程", "Browse"));
    link("/teachers", l.t("名师课堂", "Teachers"));
    link("/schools", l.t("名校网络课堂", "Schools"));
    link("/collections", l.t("专辑", "Collections"));
    link("/announcements", l.t("通知公告", "Notices"));
    link("/competitions", l.t("评选", "Competitions"));
    if matches!(role, Some(Role::Teacher | Role::Admin)) {
        link("/my", l.t("我的课程", "My lessons"));
        link("/upload", l.t("上传录像", "Upload"));
    }
    if matches!(role, Some(Role::Expert | Role::Admin)) && w.tier != youke_federation::Tier::School {
        link("/review", l.t("审核", "Review"));
    }
    if role == Some(Role::Admin) {
        link("/admin", l.t("管理", "Admin"));
    }
    let (other, other_name) = l.other();
    Html(format!(
        r#"<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="csrf-token" content="{csrf}"><title>{title} · {brand}</title><link rel="icon" type="image/svg+xml" href="{favicon}"><link rel="stylesheet" href="{portal_css}"><script src="{portal_js}" defer></script></head><body>
<header><a class="brand" href="/">{brand}</a><span class="node">{tier} · {name}</span><nav class="top">{nav}</nav>
<a class="node lang" id="lang" href="/lang?to={other}" hreflang="{other}">{other_name}</a>{account}
<form action="/search" method="get" role="search"><input type="search" name="q" value="{q}" placeholder="{placeholder}" aria-label="{search}"><button type="submit">{search}</button></form></header>
<main>{body}</main></body></html>"#,
        lang = l.tag(),
        brand = l.t("优课 Youke", "Youke"),
        csrf = esc(auth.csrf()),
        portal_js = super::assets::url("portal.js"),
        portal_css = super::assets::url("portal.css"),
        favicon = super::assets::url("favicon.svg"),
        title = esc(title),
        tier = match l {
            Lang::Zh => format!("{}节点", l.tier(w.tier)),
            Lang::En => format!("{} node", l.tier(w.tier)),
        },
        name = esc(&w.node_name),
        placeholder = l.t("搜索课程、教师、知识点", "Search lessons, teachers, topics"),
        search = l.t("搜索", "Search"),
        q = esc(query),
    ))
}

/// A date (China time) for lists: `2026-11-23`.
pub(super) fn day(ms: i64) -> String {
    let mut t = crate::store::china_time(ms);
    t.truncate(t.find(' ').unwrap_or(t.len()));
    t
}

/// A lesson's rating as stars and count, or nothing before the first rating.
pub(super) fn rating_text(l: Lang, lesson: &lessons::Lesson) -> String {
    match lesson.rating_avg {
        Some(avg) if lesson.rating_count > 0 => format!("★ {avg:.1} ({} {})", lesson.rating_count, l.t("人评分", "ratings")),
        _ => String::new(),
    }
}

pub(super) fn views_text(l: Lang, views: i64) -> String {
    if views > 0 { format!("{views} {}", l.t("次观看", "views")) } else { String::new() }
}

/// Lessons as a grid of cards: poster, title, teacher and school, views and rating.
pub(super) fn cards(l: Lang, views: &[LessonView]) -> String {
    let mut out = String::from(r#"<div class="cards">"#);
    for v in views {
        let x = &v.lesson;
        let poster = match &v.hls {
            Some(h) => format!(r#"<img src="{}" alt="" loading="lazy">"#, esc(&h.poster_url)),
            None => format!(r#"<span class="noposter">{}</span>"#, esc(&x.subject)),
        };
        let stats: Vec<String> = [views_text(l, x.views), rating_text(l, x)].into_iter().filter(|s| !s.is_empty()).collect();
        let _ = write!(
            out,
            r#"<article class="card"><a class="poster" href="/lessons/{id}" tabindex="-1">{poster}</a><a class="title" href="/lessons/{id}">{title}</a><p class="muted"><a href="/teachers/{teacher_url}">{teacher}</a> · <a href="/schools/{school_url}">{school}</a></p><p class="muted">{grade} {subject} {stats}</p></article>"#,
            id = esc(&x.id),
            title = esc(&x.title),
            teacher_url = url_encode(&x.teacher),
            teacher = esc(&x.teacher),
            school_url = url_encode(&x.origin_name),
            school = esc(&x.origin_name),
            grade = esc(&x.grade),
            subject = esc(&x.subject),
            stats = esc(&stats.join(" · ")),
        );
    }
    out.push_str("</div>");
    out
}

/// A ranked list (人气榜, 好评榜): position, title, the figure it is ranked by.
fn ranking(l: Lang, title: &str, views: &[LessonView], figure: impl Fn(&lessons::Lesson) -> String, more: &str) -> String {
    let mut out = format!(r#"<section class="rank"><h2>{title} <a class="more" href="{more}">{}</a></h2><ol>"#, l.t("更多", "more"));
    for v in views {
        let x = &v.lesson;
        let _ = write!(out, r#"<li><a href="/lessons/{}">{}</a> <span class="muted">{}</span></li>"#, esc(&x.id), esc(&x.title), esc(&figure(x)));
    }
    if views.is_empty() {
        let _ = write!(out, r#"<li class="muted">{}</li>"#, l.t("暂无", "none yet"));
    }
    out.push_str("</ol></section>");
    out
}

pub(super) fn listing(order: Order, per_page: u64, filters: Vec<(Dim, String)>, facets: bool) -> SearchParams {
    SearchParams { q: String::new(), filters, order, page: 1, per_page, facets, ranked: false }
}

/// Facet values as links to the filtered browse page (按年级, 按学科).
pub(super) fn chips<L>(l: Lang, dim: Dim, r: &SearchResult<L>) -> String {
    let mut out = String::new();
    for f in r.facets.get(dim.as_str()).into_iter().flatten() {
        let href = serde_urlencoded::to_string([(dim.as_str(), f.value.as_str())]).unwrap_or_default();
        let _ = write!(out, r#"<a class="chip" href="/search?{}">{} <span class="muted">{}</span></a>"#, esc(&href), esc(&value_name(l, dim, &f.value)), f.count);
    }
    out
}

/// Home (首页): notices, featured collections, 人气榜 and 好评榜, the newest lessons, browsing by
/// grade and subject.
pub async fn home(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let (popular, best, newest) = tokio::try_join!(
        run_search(&state, SearchParams { ranked: true, ..listing(Order::MostViewed, 10, Vec::new(), false) }),
        run_search(&state, SearchParams { ranked: true, ..listing(Order::BestRated, 10, Vec::new(), false) }),
        run_search(&state, listing(Order::Newest, 8, Vec::new(), true)),
    )?;
    let (notices, featured, contests) = blocking(&state, |ctx| {
        let notices: Vec<catalog::Announcement> = ctx.store.read(|c| catalog::announcements_for(c, ctx.writer.tier, crate::store::now_ms()))?.into_iter().take(3).collect();
        let now = crate::store::now_ms();
        let contests: Vec<catalog::Competition> = ctx
            .store
            .read(catalog::competitions)?
            .into_iter()
            .filter(|c| crate::competitions::stage(c, now) == crate::competitions::Stage::Open)
            .take(3)
            .collect();
        let mut featured = Vec::new();
        for c in ctx.store.read(catalog::collections)?.into_iter().filter(|c| c.published && c.featured).take(4) {
            let first: Vec<String> = c.lessons.iter().take(8).cloned().collect();
            let lessons = ctx.store.read(|conn| lessons::by_ids(conn, &first))?;
            featured.push((c, lessons.into_iter().map(|x| LessonView::new(ctx, x)).collect::<Vec<_>>()));
        }
        Ok((notices, featured, contests))
    })
    .await?;
    let mut body = String::new();
    if !contests.is_empty() {
        let _ = write!(body, r#"<section class="notices contests"><h2>{}</h2><ul>"#, l.t("评选通知", "Competitions taking entries"));
        for c in &contests {
            let deadline = if c.closes_at > 0 { format!("{}{}", l.t(" · 截止 ", " · closes "), crate::store::china_time(c.closes_at)) } else { String::new() };
            let _ = write!(body, r#"<li><a href="/competitions/{}">{}</a> <span class="muted">{}{}</span></li>"#, esc(&c.id), esc(&c.title), esc(&c.origin_name), esc(&deadline));
        }
        body.push_str("</ul></section>");
    }
    if !notices.is_empty() {
        let _ = write!(body, r#"<section class="notices"><h2>{}</h2><ul>"#, l.t("通知公告", "Notices"));
        for n in &notices {
            let _ = write!(body, r#"<li><a href="/announcements#n-{}">{}</a> <span class="muted">{} · {}</span></li>"#, esc(&n.id), esc(&n.title), esc(&n.origin_name), day(n.publish_at));
        }
        body.push_str("</ul></section>");
    }
    if newest.total == 0 {
        let _ = write!(
            body,
            r#"<h1>{}</h1><p class="muted">{}</p>"#,
            l.t("还没有课程", "No lessons yet"),
            l.t("教师可以在“上传录像”上传，管理员可以用 youke import 文件.mp4 导入录播课程。", "Teachers can upload recordings; administrators can import them with youke import FILE.mp4.")
        );
        return Ok(layout(&state, &auth, l.t("首页", "Home"), "", &body));
    }
    for (c, lessons) in &featured {
        let _ = write!(
            body,
            r#"<section class="featured"><h2><a href="/collections/{}">{}</a> <span class="muted">{}</span></h2><p class="muted">{}</p>{}</section>"#,
            esc(&c.id),
            esc(&c.title),
            esc(&c.origin_name),
            esc(&c.description),
            cards(l, lessons)
        );
    }
    body.push_str(r#"<div class="ranks">"#);
    body.push_str(&ranking(l, l.t("人气榜", "Most viewed"), &hit_views(popular), |x| views_text(l, x.views), "/search?order=views"));
    body.push_str(&ranking(l, l.t("好评榜", "Best rated"), &hit_views(best), |x| rating_text(l, x), "/search?order=rating"));
    body.push_str("</div>");
    let _ = write!(
        body,
        r#"<section class="browse"><h2>{}</h2><p>{}</p><h2>{}</h2><p>{}</p></section>"#,
        l.t("按年级浏览", "By grade"),
        chips(l, Dim::Grade, &newest),
        l.t("按学科浏览", "By subject"),
        chips(l, Dim::Subject, &newest)
    );
    let _ = write!(
        body,
        r#"<section><h2>{} <a class="more" href="/search?order=newest">{}</a></h2>{}</section>"#,
        l.t("最新课程", "Newest lessons"),
        l.t("全部课程", "all lessons"),
        cards(l, &hit_views(newest))
    );
    Ok(layout(&state, &auth, l.t("首页", "Home"), "", &body))
}

pub(super) fn hit_views(r: SearchResult) -> Vec<LessonView> {
    r.items.into_iter().map(|h| h.lesson).collect()
}

pub async fn search(State(state): State<AppState>, Extension(auth): Extension<Auth>, RawQuery(raw): RawQuery) -> Result<Html<String>, ApiError> {
    let params = SearchParams::parse(raw.as_deref())?;
    let result = search_cards(&state, params.clone()).await?;
    let l = auth.lang;
    let body = search_body(l, &params, &result);
    let title = if params.q.is_empty() { l.t("浏览课程", "Browse lessons").to_string() } else { format!("{} {}", l.t("搜索", "Search"), params.q) };
    Ok(layout(&state, &auth, &title, &params.q, &body))
}

pub(super) fn dim_name(l: Lang, dim: Dim) -> &'static str {
    match dim {
        Dim::Grade => l.t("年级", "Grade"),
        Dim::Subject => l.t("学科", "Subject"),
        Dim::School => l.t("学校", "School"),
        Dim::Teacher => l.t("教师", "Teacher"),
        Dim::Year => l.t("年份", "Year"),
        Dim::Tier => l.t("来源", "From"),
        Dim::Compliance => l.t("课程视频标准", "Video standard"),
    }
}

pub(super) fn value_name(l: Lang, dim: Dim, value: &str) -> String {
    let name = match (dim, value) {
        (Dim::Tier, "school") => l.t("学校", "school"),
        (Dim::Tier, "city") => l.t("市级", "city"),
        (Dim::Tier, "province") => l.t("省级", "province"),
        (Dim::Compliance, "pass") => l.t("符合", "meets it"),
        (Dim::Compliance, "fail") => l.t("不符合", "fails it"),
        (Dim::Compliance, "unchecked") => l.t("未检测", "not checked"),
        (_, "unknown") => l.t("未知", "unknown"),
        (Dim::Year, y) => return format!("{y}{}", l.t(" 年", "")),
        (_, v) => v,
    };
    name.to_string()
}

fn order_name(l: Lang, order: Order) -> &'static str {
    match order {
        Order::Relevance => l.t("综合排序", "Relevance"),
        Order::MostViewed => l.t("人气榜", "Most viewed"),
        Order::BestRated => l.t("好评榜", "Best rated"),
        Order::Newest => l.t("最新", "Newest"),
    }
}

/// The search page: order tabs, facets with counts (a click adds or removes a filter), hits with
/// highlighted titles, snippets and subtitle moments, pages.
fn search_body(l: Lang, p: &SearchParams, r: &SearchResult<crate::lessons::LessonCard>) -> String {
    // A page of hits is some 10 KiB: room for it from the start.
    let mut body = String::with_capacity(16 << 10);
    let _ = match p.q.is_empty() {
        true => write!(body, "<h1>{} <span class=\"muted\">{}</span></h1>", l.t("浏览课程", "Browse lessons"), count_text(l, r.total)),
        false => write!(body, "<h1>{}“{}” <span class=\"muted\">{}</span></h1>", l.t("搜索", "Search "), Escaped(&p.q), count_text(l, r.total)),
    };
    let _ = write!(body, r#"<nav class="orders" aria-label="{}">"#, l.t("排序", "Order"));
    for order in Order::ALL {
        let class = if order == p.order { r#" class="on" aria-current="true""# } else { "" };
        let _ = write!(body, r#"<a href="/search?{}"{class}>{}</a>"#, esc(&p.href(None, order, 1)), order_name(l, order));
    }
    body.push_str("</nav>");
    if !p.filters.is_empty() {
        body.push_str(r#"<p class="chosen">"#);
        for (dim, v) in &p.filters {
            let _ = write!(
                body,
                r#"<a class="tag" href="/search?{}" title="{}">{}{}{} ✕</a> "#,
                esc(&p.href(Some((*dim, v)), p.order, 1)),
                l.t("取消筛选", "Remove this filter"),
                dim_name(l, *dim),
                l.t("：", ": "),
                esc(&value_name(l, *dim, v))
            );
        }
        body.push_str("</p>");
    }
    body.push_str(r#"<div class="results"><aside class="facets">"#);
    for dim in Dim::ALL {
        let Some(values) = r.facets.get(dim.as_str()).filter(|v| !v.is_empty()) else { continue };
        let _ = write!(body, "<h3>{}</h3><ul>", dim_name(l, dim));
        for f in values {
            let on = p.filters.iter().any(|(d, v)| *d == dim && *v == f.value);
            let _ = write!(
                body,
                r#"<li><a href="/search?{}"{}>{} <span class="muted">{}</span></a></li>"#,
                Escaped(&p.href(Some((dim, &f.value)), p.order, 1)),
                if on { r#" class="on""# } else { "" },
                Escaped(&value_name(l, dim, &f.value)),
                f.count
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("</aside><section class=\"hits\">");
    if r.items.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", l.t("没有找到匹配的课程，换个关键词或减少筛选条件试试。", "No lessons match; try other words or fewer filters."));
    }
    for h in &r.items {
        let x = &h.lesson;
        // The index escaped the highlighted title and snippet itself.
        let _ = write!(body, r#"<article class="hit"><a class="title" href="/lessons/{}">"#, Escaped(&x.id));
        match &h.title_html {
            Some(html) => body.push_str(html),
            None => push_escaped(&mut body, &x.title),
        }
        let _ = write!(
            body,
            r#"</a><p class="muted">{teacher} · {origin} · {subject} {grade}"#,
            teacher = Escaped(&x.teacher),
            origin = Escaped(&x.origin_name),
            subject = Escaped(&x.subject),
            grade = Escaped(&x.grade),
        );
        let views = views_text(l, x.views);
        if !views.is_empty() {
            let _ = write!(body, " · {views}");
        }
        body.push_str("</p>");
        if let Some(snippet) = &h.snippet_html {
            let _ = write!(body, r#"<p class="snippet">{snippet}</p>"#);
        }
        if !h.moments.is_empty() {
            body.push_str(r#"<p class="moments">"#);
            for m in &h.moments {
                let _ = write!(
                    body,
                    r#"<a href="/lessons/{id}?t={t:.3}">▶ <span class="muted">{clock}</span> {text}</a> "#,
                    id = Escaped(&x.id),
                    t = m.start_secs,
                    clock = minute_clock((m.start_secs * 1000.0) as u64),
                    text = Escaped(&m.text),
                );
            }
            body.push_str("</p>");
        }
        body.push_str("</article>");
    }
    let pages = (r.total as u64).div_ceil(p.per_page).clamp(1, youke_search::MAX_DEPTH as u64 / p.per_page);
    body.push_str(&pager(l, p.page, pages, |page| format!("/search?{}", p.href(None, p.order, page))));
    body.push_str("</section></div>");
    body
}

pub(super) fn count_text(l: Lang, n: usize) -> String {
    match l {
        Lang::Zh => format!("共 {n} 节"),
        Lang::En => format!("{n} lesson{}", if n == 1 { "" } else { "s" }),
    }
}

/// Previous / page n of m / next.
pub(super) fn pager(l: Lang, page: u64, pages: u64, href: impl Fn(u64) -> String) -> String {
    let mut out = String::from(r#"<div class="pager">"#);
    if page > 1 {
        let _ = write!(out, r#"<a href="{}" rel="prev">{}</a>"#, esc(&href(page - 1)), l.t("上一页", "Previous"));
    }
    let _ = match l {
        Lang::Zh => write!(out, "<span class=\"muted\">第 {page} / {pages} 页</span>"),
        Lang::En => write!(out, "<span class=\"muted\">page {page} of {pages}</span>"),
    };
    if page < pages {
        let _ = write!(out, r#"<a href="{}" rel="next">{}</a>"#, esc(&href(page + 1)), l.t("下一页", "Next"));
    }
    out.push_str("</div>");
    out
}

pub(super) fn not_found(state: &AppState, auth: &Auth, what: &str) -> Response {
    let l = auth.lang;
    let body = format!(r#"<h1>{what}</h1><p><a href="/">{}</a></p>"#, l.t("返回首页", "Back to the home page"));
    (StatusCode::NOT_FOUND, layout(state, auth, l.t("未找到", "Not found"), "", &body)).into_response()
}

pub async fn lesson(State(state): State<AppState>, Extension(auth): Extension<Auth>, headers: axum::http::HeaderMap, Path(id): Path<String>) -> Response {
    let l = auth.lang;
    let viewer = auth.user().cloned();
    let (watcher, new_watcher) = super::api::viewer_of(&auth, &headers);
    let found = blocking(&state, move |ctx| {
        let Some(x) = ctx.store.read(|c| lessons::get(c, &id))? else { return Ok(None) };
        if !super::api::may_see(ctx, viewer.as_ref(), &x)? {
            return Ok(None);
        }
        // The subtitles as a transcript whose lines seek the player; a stored SRT that no longer
        // parses only loses the transcript, not the page.
        let cues = ctx.store.read(|c| lessons::subtitles_of(c, &id))?.and_then(|(srt, _)| youke_media::srt::parse(srt.as_bytes()).ok());
        let talk = ctx.store.read(|c| lessons::discussion(c, &ctx.writer, &id))?;
        let may_edit = super::api::may_change(ctx, viewer.as_ref(), &id)?;
        let contests = ctx.store.read(|c| crate::competitions::of_lesson(c, &id))?;
        let in_collections = ctx.store.read(|c| catalog::collections_of(c, &id))?;
        // An administrator adds lessons to the collections this node publishes.
        let own_collections: Vec<(String, String)> = if viewer.as_ref().is_some_and(|u| u.role == Role::Admin) {
            ctx.store.read(catalog::collections)?.into_iter().filter(|c| c.origin_name == ctx.writer.node_name && !c.lessons.contains(&id)).map(|c| (c.id, c.title)).collect()
        } else {
            Vec::new()
        };
        Ok(Some((LessonView::new(ctx, x), cues, talk, may_edit, contests, (in_collections, own_collections))))
    })
    .await;
    let (v, cues, mut talk, may_edit, contests, (in_collections, own_collections)) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(&state, &auth, l.t("未找到这节课程", "There is no such lesson")),
        Err(e) => return e.into_response(),
    };
    let x = &v.lesson;
    let role = auth.user().map(|u| u.role);
    if role != Some(Role::Admin) && let Some(t) = talk.as_mut() {
        t.comments.retain(|c| c.hidden.is_none());
    }
    let moderation = moderation_html(l, x, state.ctx.writer.tier, role);
    // The ticket the player reports a view with, once the lesson was watched for a while.
    let ticket = (state.viewing.ticket(&x.id, &watcher, crate::store::now_ms()), crate::viewing::required_watch_ms(x.duration_secs));
    let player = player_html(l, &v, &ticket);
    let transcript = cues.map(|c| transcript_html(l, &c)).unwrap_or_default();
    let probe = x.probe.as_ref().and_then(|p| p.parse());
    let probe = probe.as_ref();
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
                "{} {} Hz, {} {}, {} kbit/s",
                a.get("codec").and_then(|c| c.as_str()).unwrap_or("?"),
                a.get("sample_rate").and_then(|c| c.as_u64()).unwrap_or(0),
                a.get("channels").and_then(|c| c.as_u64()).unwrap_or(0),
                l.t("声道", "channels"),
                a.get("bit_rate").and_then(|c| c.as_u64()).unwrap_or(0) / 1000
            )
        })
        .unwrap_or_else(|| "—".into());
    let kps: Vec<String> = x
        .knowledge_points
        .iter()
        .map(|k| format!("<a class=\"tag\" href=\"/search?q={}\">{}</a>", url_encode(k), esc(k)))
        .collect();
    // The original as a file to keep, where its teacher allows it (the teacher always may).
    let download = if (x.downloadable || may_edit) && x.media.is_some() {
        format!(
            r#"<p class="actions"><a class="button" id="download" href="/api/v1/lessons/{}/media?download=1" download>{}</a></p>"#,
            esc(&x.id),
            l.t("下载原始录像", "Download the recording")
        )
    } else {
        String::new()
    };
    let mut collections_html = String::new();
    if !in_collections.is_empty() {
        let links: Vec<String> = in_collections.iter().map(|(cid, t)| format!(r#"<a class="tag" href="/collections/{}">{}</a>"#, esc(cid), esc(t))).collect();
        let _ = write!(collections_html, r#"<p class="in-collections">{} {}</p>"#, l.t("收录于专辑：", "In collections:"), links.join(" "));
    }
    if !own_collections.is_empty() {
        let options: String = own_collections.iter().map(|(cid, t)| format!(r#"<option value="{}">{}</option>"#, esc(cid), esc(t))).collect();
        let _ = write!(
            collections_html,
            r#"<form id="add-to-collection" class="inline" data-lesson="{}"><select name="collection" aria-label="{label}">{options}</select> <button type="submit">{label}</button> <span class="msg" role="status"></span></form>"#,
            esc(&x.id),
            label = l.t("加入专辑", "Add to collection"),
        );
    }
    let actions = if may_edit {
        format!(r#"<p class="actions"><a class="button" href="/lessons/{id}/edit">{}</a> <a class="button" href="/my">{}</a></p>"#, l.t("编辑信息", "Edit details"), l.t("共享与同步状态", "Sharing and sync"), id = esc(&x.id))
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>{title}</h1>{contests}{moderation}{player}{transcript}{download}{actions}{collections_html}
<p class="stats">{rating} {views}</p>
{description}
<dl><dt>{l_teacher}</dt><dd><a href="/teachers/{teacher_url}">{teacher}</a></dd><dt>{l_subject}</dt><dd>{subject}</dd><dt>{l_grade}</dt><dd>{grade}</dd>
<dt>{l_chapter}</dt><dd>{chapter}</dd><dt>{l_kps}</dt><dd>{kps}</dd><dt>{l_school}</dt><dd><a href="/schools/{school_url}">{origin}</a></dd><dt>{l_share}</dt><dd><span class="tag">{share}</span></dd>
<dt>{l_duration}</dt><dd>{duration:.1} {l_secs}</dd><dt>{l_video}</dt><dd>{fmt_video}</dd><dt>{l_audio}</dt><dd>{fmt_audio}</dd>
<dt>{l_file}</dt><dd>{file}</dd><dt>{l_hash}</dt><dd><code>{hash}</code></dd></dl>
{compliance}{discussion}
<p class="muted">{l_id} {id} · <a href="/api/v1/lessons/{id}">JSON</a></p>"#,
        // The whole table for the lesson's teacher and its reviewers, the verdict for viewers.
        compliance = compliance_table(l, x.compliance.as_ref().and_then(|c| c.parse()).as_ref(), may_edit || matches!(role, Some(Role::Admin | Role::Expert))),
        contests = lesson_badges(l, &contests),
        discussion = discussion_html(l, x, talk.as_ref(), auth.user().is_some(), role == Some(Role::Admin)),
        title = esc(&x.title),
        rating = esc(&rating_text(l, x)),
        views = esc(&views_text(l, x.views)),
        description = if x.description.is_empty() { String::new() } else { format!(r#"<p class="description">{}</p>"#, esc(&x.description)) },
        teacher_url = url_encode(&x.teacher),
        teacher = esc(&x.teacher),
        subject = esc(&x.subject),
        grade = esc(&x.grade),
        chapter = esc(&x.textbook_chapter),
        kps = kps.join(" "),
        school_url = url_encode(&x.origin_name),
        origin = esc(&x.origin_name),
        share = l.share(x.share_level),
        duration = x.duration_secs.unwrap_or(0.0),
        file = esc(&x.original_name),
        hash = esc(x.media.as_ref().map(|m| m.hash.as_str()).unwrap_or("—")),
        id = esc(&x.id),
        l_teacher = l.t("教师", "Teacher"),
        l_subject = l.t("学科", "Subject"),
        l_grade = l.t("年级", "Grade"),
        l_chapter = l.t("教材章节", "Textbook chapter"),
        l_kps = l.t("知识点", "Topics"),
        l_school = l.t("来源学校", "School"),
        l_share = l.t("共享范围", "Shared with"),
        l_duration = l.t("时长", "Duration"),
        l_secs = l.t("秒", "s"),
        l_video = l.t("视频", "Video"),
        l_audio = l.t("音频", "Audio"),
        l_file = l.t("原始文件", "Original file"),
        l_hash = l.t("媒体哈希 (BLAKE3)", "Media hash (BLAKE3)"),
        l_id = l.t("课程编号", "Lesson id"),
    );
    let page = layout(&state, &auth, &x.title, "", &body);
    match new_watcher {
        Some(id) => ([(axum::http::header::SET_COOKIE, super::api::viewer_cookie(&id))], page).into_response(),
        None => page.into_response(),
    }
}

/// Ratings, comments and expert reviews, with the forms to add one (portal.js sends them).
fn discussion_html(l: Lang, x: &lessons::Lesson, talk: Option<&lessons::Discussion>, signed_in: bool, admin: bool) -> String {
    let mut out = format!(r#"<section class="discussion" id="discussion" data-lesson="{}"><h2>{}</h2>"#, esc(&x.id), l.t("评分与评论", "Ratings and comments"));
    if signed_in {
        let mut options = String::new();
        for n in (1..=5).rev() {
            let _ = write!(options, r#"<option value="{n}">{}</option>"#, "★".repeat(n));
        }
        let _ = write!(
            out,
            r#"<form id="rate" class="inline"><label>{} <select name="score">{options}</select></label> <button type="submit">{}</button></form>
<form id="comment"><textarea name="text" rows="3" maxlength="2000" required aria-label="{}" placeholder="{}"></textarea><p><button type="submit">{}</button> <span class="msg" role="status"></span></p></form>"#,
            l.t("我的评分", "My rating"),
            l.t("评分", "Rate"),
            l.t("评论", "Comment"),
            l.t("写下你的评论", "Write a comment"),
            l.t("发表评论", "Post comment"),
        );
    } else {
        let _ = write!(out, r#"<p class="muted"><a href="/login?next=/lessons/{}">{}</a></p>"#, esc(&x.id), l.t("登录后可评分和评论", "Sign in to rate and comment"));
    }
    let Some(talk) = talk else { return out + "</section>" };
    if !talk.reviews.is_empty() {
        let _ = write!(out, "<h3>{}</h3><ul class=\"comments\">", l.t("专家评审", "Expert reviews"));
        for r in &talk.reviews {
            let _ = write!(out, r#"<li><b>{}</b> <span class="tag">{}</span> <span class="muted">{}</span><p>{}</p></li>"#, esc(&r.expert), r.score, day(r.at), esc(&r.comment));
        }
        out.push_str("</ul>");
    }
    out.push_str(r#"<ul class="comments">"#);
    for c in talk.comments.iter().rev() {
        // Administrators moderate: hide (kept, shown to administrators only) or delete.
        let tools = if admin {
            let hidden = match &c.hidden {
                Some((_, node)) => format!(r#" <span class="tag">{}</span>"#, esc(&format!("{}{node}", l.t("已隐藏 · ", "hidden at ")))),
                None => format!(r#" <button type="button" class="link hide-comment" data-comment="{}">{}</button>"#, esc(&c.id), l.t("隐藏", "Hide")),
            };
            format!(r#"{hidden} <button type="button" class="link delete-comment" data-comment="{}">{}</button>"#, esc(&c.id), l.t("删除", "Delete"))
        } else {
            String::new()
        };
        let _ = write!(out, r#"<li><b>{}</b> <span class="muted">{} · {}</span>{tools}<p>{}</p></li>"#, esc(&c.author), esc(&c.node), day(c.at), esc(&c.text));
    }
    if talk.comments.is_empty() {
        let _ = write!(out, r#"<li class="muted">{}</li>"#, l.t("还没有评论", "No comments yet"));
    }
    out.push_str("</ul></section>");
    out
}

/// The lesson's review state, and the reviewer's and administrator's tools: approve or reject a
/// lesson shared to this node's tier, take a lesson down (portal.js sends them).
fn moderation_html(l: Lang, x: &lessons::Lesson, here: youke_federation::Tier, role: Option<Role>) -> String {
    let status = l.review_status(x);
    let reviewer = matches!(role, Some(Role::Admin | Role::Expert));
    let mut tools = String::new();
    if reviewer && x.takedown.is_none() && x.share_level == here && here != youke_federation::Tier::School {
        let _ = write!(
            tools,
            r#"<form id="decide" class="inline"><button type="submit" name="approve" value="1">{approve}</button> <input name="reason" maxlength="2000" placeholder="{reason}" aria-label="{reason}"> <button type="submit" name="reject" value="1" class="danger">{reject}</button></form>"#,
            approve = l.t("审核通过", "Approve"),
            reject = l.t("不通过", "Reject"),
            reason = l.t("不通过的原因（教师可见）", "Reason for rejecting (the teacher reads it)"),
        );
    }
    if role == Some(Role::Admin) && x.takedown.is_none() {
        let _ = write!(
            tools,
            r#"<form id="takedown" class="inline"><input name="reason" maxlength="2000" required placeholder="{reason}" aria-label="{reason}"> <button type="submit" class="danger">{label}</button></form>"#,
            label = l.t("下架", "Take down"),
            reason = l.t("下架原因", "Reason for the takedown"),
        );
    }
    if status.is_empty() && tools.is_empty() {
        return String::new();
    }
    let state = if x.takedown.is_some() { "down" } else if x.listed { "listed" } else { "waiting" };
    format!(
        r#"<section class="moderation" id="moderation" data-lesson="{id}" data-state="{state}"><p class="review-status">{status}</p>{tools}<p class="msg" role="status"></p></section>"#,
        id = esc(&x.id),
        status = esc(&status),
    )
}

/// The player: HLS master first (phones and Safari play it natively and pick the rung that fits
/// the network; elsewhere player.js hands it to hls.js), the original MP4 as the fallback, the
/// subtitles as a WebVTT track, the poster from the ladder, and a quality menu.
fn player_html(l: Lang, v: &LessonView, (ticket, after_ms): &(String, i64)) -> String {
    let x = &v.lesson;
    if let Some(since) = v.parent_down_since {
        let when = crate::store::china_time(since);
        return format!(
            r#"<p class="notice" id="player-offline">{}</p>"#,
            esc(&match l {
                Lang::Zh => format!("与上级节点的连接自 {when} 起中断，这节课的视频尚未缓存在本节点，连接恢复后即可观看。"),
                Lang::En => format!("The link to the parent node has been down since {when}, and this lesson's video is not cached here yet; it plays once the link is back."),
            })
        );
    }
    let playable = v.media_present || v.via_parent;
    if !playable && v.hls.is_none() {
        return format!(
            "<p class=\"muted\">{}</p>",
            if x.media.is_some() {
                l.t("视频正在从来源节点传输，稍后刷新即可播放。", "The video is on its way from the school it comes from; reload the page later.")
            } else {
                l.t("这节课还没有视频。", "This lesson has no video yet.")
            }
        );
    }
    let mp4_mime = x.media.as_ref().map(|m| m.mime.as_str()).unwrap_or("video/mp4");
    let mut attrs = format!(r#" data-lesson="{}""#, esc(&x.id));
    let _ = write!(attrs, r#" data-view-ticket="{}" data-view-after="{after_ms}""#, esc(ticket));
    let mut sources = String::new();
    if let Some(h) = &v.hls {
        let _ = write!(attrs, r#" data-hls="{0}" poster="{1}""#, esc(&h.master_url), esc(&h.poster_url));
        let _ = write!(sources, r#"<source src="{}" type="application/vnd.apple.mpegurl">"#, esc(&h.master_url));
    }
    if playable {
        let _ = write!(attrs, r#" data-mp4="{}""#, esc(&v.media_url));
        let _ = write!(sources, r#"<source src="{}" type="{}">"#, esc(&v.media_url), esc(mp4_mime));
    }
    if let Some(s) = &x.subtitles {
        let (lang, label) = if s.language == "en" { ("en", "English") } else { ("zh", l.t("中文字幕", "Chinese")) };
        let _ = write!(sources, r#"<track kind="subtitles" src="/api/v1/lessons/{}/subtitles.vtt" srclang="{lang}" label="{label}" default>"#, esc(&x.id));
    }
    let quality = if v.hls.is_some() {
        format!(r#"<p class="player-bar"><label>{} <select id="quality" data-auto="{}" hidden></select></label></p>"#, l.t("画质", "Quality"), l.t("自动", "Auto"))
    } else {
        String::new()
    };
    format!(
        r#"<video id="player" controls playsinline preload="metadata"{attrs}>{sources}</video>{quality}<script src="{hls}" defer></script><script src="{player}" defer></script>"#,
        hls = super::assets::url("hls.min.js"),
        player = super::assets::url("player.js"),
    )
}

/// The subtitles as a list of lines, each a link that seeks the player to its moment.
fn transcript_html(l: Lang, cues: &[youke_media::srt::Cue]) -> String {
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
    let summary = match l {
        Lang::Zh => format!("字幕文本（{} 条，点击跳转）", cues.len()),
        Lang::En => format!("Transcript ({} lines; click one to jump there)", cues.len()),
    };
    format!(r#"<details class="transcript"><summary>{summary}</summary><ol>{lines}</ol></details>"#)
}

/// `mm:ss`, or `h:mm:ss` past the hour.
fn minute_clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 { format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) } else { format!("{:02}:{:02}", s / 60, s % 60) }
}

/// The Chinese names of the course video standard's items and requirements (the report
/// itself is written in English by the media crate).
fn rule_zh(id: &str) -> Option<(&'static str, &'static str)> {
    Some(match id {
        "V1" => ("视频编码", "H.264"),
        "V2" => ("分辨率", "不低于 1920×1080"),
        "V3" => ("帧率", "25 或 29.97 帧/秒，逐行扫描"),
        "V4" => ("视频码率", "不低于 8 Mbit/s"),
        "V5" => ("文件大小", "不超过 1 GB，或另有不低于 1280×720 的标清版本"),
        "A1" => ("音频编码", "AAC"),
        "A2" => ("音频采样率", "不低于 48 kHz"),
        "A3" => ("音频码率", "不低于 128 kbit/s"),
        "A4" => ("声道", "双声道（立体声）"),
        "A5" => ("音频信噪比", "高于 50 dB（建议）"),
        "D1" => ("时长", "不超过 20 分钟"),
        "D2" => ("片头", "不超过 20 秒（建议）"),
        "D3" => ("片尾", "不超过 10 秒（建议）"),
        "S1" => ("字幕", "使用授课语言"),
        "S2" => ("字幕文件", "单独的 SRT 文件"),
        "S3" => ("字幕编码", "UTF-8"),
        "S4" => ("字幕时间", "按顺序且不超出视频"),
        "S5" => ("字幕文字", "错别字不超过 1%（建议）"),
        "P1" => ("文档", "课件和文档为 PDF"),
        _ => return None,
    })
}

/// The course video standard report as a table (课程视频标准检测).
fn compliance_table(l: Lang, report: Option<&serde_json::Value>, full: bool) -> String {
    let Some(rules) = report.and_then(|r| r.get("rules")).and_then(|r| r.as_array()) else { return String::new() };
    let mut rows = String::new();
    let mut fails = 0;
    for r in rules {
        let verdict = r.get("verdict").and_then(|v| v.as_str()).unwrap_or("");
        let (name, class) = match verdict {
            "pass" => (l.t("符合", "pass"), "ok"),
            "fail" => {
                fails += 1;
                (l.t("不符合", "fail"), "fail")
            }
            "warn" => (l.t("提示", "advice"), "warn"),
            _ => (l.t("无法检测", "not checkable"), "muted"),
        };
        let id = r.get("id").and_then(|v| v.as_str()).unwrap_or("");
        let field = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let (item, rule) = match (l, rule_zh(id)) {
            (Lang::Zh, Some((item, rule))) => (item.to_string(), rule.to_string()),
            _ => (field("item"), field("rule")),
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{name}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            esc(id),
            esc(&item),
            esc(&l.measured(&field("measured"))),
            esc(&rule),
        );
    }
    let summary = match (l, fails) {
        (Lang::Zh, 0) => "符合课程视频标准".to_string(),
        (Lang::Zh, n) => format!("{n} 项不符合课程视频标准"),
        (Lang::En, 0) => "meets the course video standard".to_string(),
        (Lang::En, n) => format!("fails {n} rule{} of the course video standard", if n == 1 { "" } else { "s" }),
    };
    if !full {
        return format!(r#"<h2>{} <span class="tag">{summary}</span></h2>"#, l.t("课程视频标准检测", "Course video standard"));
    }
    format!(
        r#"<h2>{} <span class="tag">{summary}</span></h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>{rows}</table>"#,
        l.t("课程视频标准检测", "Course video standard"),
        l.t("编号", "Rule"),
        l.t("项目", "Item"),
        l.t("结果", "Verdict"),
        l.t("实测", "Measured"),
        l.t("要求", "Required"),
    )
}

/// The upload page (上传录像): the file goes up in pieces with a progress bar and resumes after
/// a dropped connection (upload.js).
pub async fn upload_page(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Html<String> {
    let l = auth.lang;
    let body = format!(
        r#"<h1>{h}</h1>
<form id="up"><dl>
<dt><label for="file">{file}</label></dt><dd><input id="file" type="file" accept="video/*,.mp4,.mkv,.ts,.flv,.avi" required></dd>
<dt><label for="title">{title}</label></dt><dd><input id="title" placeholder="{title_hint}"></dd>
<dt><label for="teacher">{teacher}</label></dt><dd><input id="teacher"></dd>
{grade}{subject}
</dl><p><button type="submit">{go}</button> <progress id="bar" max="1" value="0" hidden></progress> <span id="msg" role="status"></span></p></form>
<script src="{js}" defer></script>"#,
        h = l.t("上传录像", "Upload a recording"),
        file = l.t("录像文件", "Recording"),
        title = l.t("课程名称", "Title"),
        title_hint = l.t("默认取文件名", "the file's name if left empty"),
        teacher = l.t("教师", "Teacher"),
        grade = choice(l, "grade", l.t("年级", "Grade"), &lessons::GRADES, ""),
        subject = choice(l, "subject", l.t("学科", "Subject"), &lessons::SUBJECTS, ""),
        go = l.t("上传", "Upload"),
        js = super::assets::url("upload.js")
    );
    layout(&state, &auth, l.t("上传录像", "Upload"), "", &body)
}

/// A form field chosen from a standard list (年级, 学科), as a `<dt>`/`<dd>` pair; a value not
/// on the list (an older lesson's) stays offered.
pub(super) fn choice(l: Lang, id: &str, label: &str, options: &[&str], current: &str) -> String {
    let mut out = format!(r#"<dt><label for="{id}">{label}</label></dt><dd><select id="{id}" name="{id}"><option value="">{}</option>"#, l.t("请选择", "choose"));
    let listed = options.contains(&current);
    for o in options.iter().copied().chain((!listed && !current.is_empty()).then_some(current)) {
        let _ = write!(out, r#"<option value="{}"{}>{}</option>"#, esc(o), if o == current { " selected" } else { "" }, esc(&l.term(o)));
    }
    out.push_str("</select></dd>");
    out
}

/// The competitions a lesson is entered in, with its awards, for the lesson page.
fn lesson_badges(l: Lang, entered: &[(crate::catalog::Competition, Option<String>)]) -> String {
    if entered.is_empty() {
        return String::new();
    }
    let mut out = String::from(r#"<p class="contests">"#);
    for (c, award) in entered {
        let _ = match award {
            Some(a) => write!(out, r#"<a class="tag award" href="/competitions/{}">{} · {}</a> "#, esc(&c.id), esc(&c.title), esc(a)),
            None => write!(out, r#"<a class="tag" href="/competitions/{}">{}{}</a> "#, esc(&c.id), l.t("参评：", "Entered: "), esc(&c.title)),
        };
    }
    out.push_str("</p>");
    out
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
