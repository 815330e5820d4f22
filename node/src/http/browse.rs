//! Browsing pages: 名师课堂 (teachers and a teacher's lessons), 名校网络课堂 (schools and a
//! school's lessons), collections (专辑) and notices (通知公告). Teachers and schools come from the
//! search index's facets, so a page costs one query whatever the number of lessons.

use super::api::{LessonView, run_search};
use super::auth::Auth;
use super::i18n::Lang;
use super::pages::{cards, chips, count_text, day, esc, hit_views, layout, listing, not_found, url_encode, views_text};
use super::{ApiError, AppState, blocking};
use crate::{catalog, lessons};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::fmt::Write;
use youke_search::{Dim, Order};

#[derive(Debug, Deserialize, Default)]
pub struct SubjectQuery {
    #[serde(default)]
    pub subject: Option<String>,
}

/// Which people or places a directory page lists.
#[derive(Clone, Copy)]
enum Directory {
    Teachers,
    Schools,
}

impl Directory {
    fn dim(self) -> Dim {
        match self {
            Directory::Teachers => Dim::Teacher,
            Directory::Schools => Dim::School,
        }
    }
    fn path(self) -> &'static str {
        match self {
            Directory::Teachers => "/teachers",
            Directory::Schools => "/schools",
        }
    }
    fn title(self, l: Lang) -> &'static str {
        match self {
            Directory::Teachers => l.t("名师课堂", "Teachers"),
            Directory::Schools => l.t("名校网络课堂", "Schools"),
        }
    }
}

/// A directory: the teachers (or schools) with the most lessons, narrowed by subject.
async fn directory(state: &AppState, auth: &Auth, dir: Directory, q: SubjectQuery) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let subject = q.subject.filter(|s| !s.trim().is_empty());
    let filters = subject.iter().map(|s| (Dim::Subject, s.clone())).collect();
    let found = run_search(state, listing(Order::Relevance, 1, filters, true)).await?;
    let mut body = format!("<h1>{}</h1>", dir.title(l));
    // The subjects, as a filter (the counts are over all lessons, not the filtered ones).
    let unfiltered;
    let all = if subject.is_some() {
        unfiltered = run_search(state, listing(Order::Relevance, 1, Vec::new(), true)).await?;
        &unfiltered
    } else {
        &found
    };
    body.push_str(r#"<p class="subjects">"#);
    let _ = write!(body, r#"<a class="chip{}" href="{}">{}</a>"#, if subject.is_none() { " on" } else { "" }, dir.path(), l.t("全部学科", "All subjects"));
    for f in all.facets.get(Dim::Subject.as_str()).into_iter().flatten() {
        let on = subject.as_deref() == Some(f.value.as_str());
        let _ = write!(
            body,
            r#"<a class="chip{}" href="{}?subject={}">{} <span class="muted">{}</span></a>"#,
            if on { " on" } else { "" },
            dir.path(),
            url_encode(&f.value),
            esc(&f.value),
            f.count
        );
    }
    body.push_str("</p>");
    let people: &[super::api::FacetCount] = found.facets.get(dir.dim().as_str()).map_or(&[], |v| v.as_slice());
    if people.is_empty() {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, l.t("还没有课程。", "No lessons yet."));
    }
    body.push_str(r#"<ul class="directory">"#);
    for p in people.iter().filter(|p| p.value != "unknown") {
        let _ = write!(
            body,
            r#"<li><a href="{}/{}">{}</a> <span class="muted">{}</span></li>"#,
            dir.path(),
            url_encode(&p.value),
            esc(&p.value),
            count_text(l, p.count as usize)
        );
    }
    body.push_str("</ul>");
    Ok(layout(state, auth, dir.title(l), "", &body))
}

/// One teacher's (or school's) page: their lessons, best rated first, and what they teach.
async fn profile(state: &AppState, auth: &Auth, dir: Directory, name: String) -> Result<Response, ApiError> {
    let l = auth.lang;
    let found = run_search(state, listing(Order::BestRated, 60, vec![(dir.dim(), name.clone())], true)).await?;
    if found.total == 0 {
        return Ok(not_found(state, auth, l.t("这里还没有这个名字的课程", "No lessons under this name here")));
    }
    let total = found.total;
    let mut body = format!(r#"<h1>{} <span class="muted">{}</span></h1>"#, esc(&name), count_text(l, total));
    let views: i64 = found.items.iter().map(|h| h.lesson.lesson.views).sum();
    let rated: Vec<f64> = found.items.iter().filter_map(|h| h.lesson.lesson.rating_avg).collect();
    body.push_str(r#"<p class="stats">"#);
    if views > 0 {
        body.push_str(&esc(&views_text(l, views)));
    }
    if !rated.is_empty() {
        let avg = rated.iter().sum::<f64>() / rated.len() as f64;
        let _ = write!(body, " · {} ★ {avg:.1}", l.t("平均评分", "average rating"));
    }
    body.push_str("</p>");
    let (other, other_path, other_title) = match dir {
        Directory::Teachers => (Dim::School, "/schools", l.t("任教学校", "Schools")),
        Directory::Schools => (Dim::Teacher, "/teachers", l.t("本校教师", "Teachers")),
    };
    let _ = write!(body, r#"<p><span class="muted">{other_title}:</span> "#);
    for f in found.facets.get(other.as_str()).into_iter().flatten().filter(|f| f.value != "unknown") {
        let _ = write!(body, r#"<a class="chip" href="{other_path}/{}">{} <span class="muted">{}</span></a>"#, url_encode(&f.value), esc(&f.value), f.count);
    }
    let _ = write!(body, r#"</p><p><span class="muted">{}:</span> {}</p>"#, l.t("学科", "Subjects"), chips(l, Dim::Subject, &found));
    body.push_str(&cards(l, &hit_views(found)));
    if total > 60 {
        let q = serde_urlencoded::to_string([(dir.dim().as_str(), name.as_str()), ("order", "rating")]).unwrap_or_default();
        let _ = write!(body, r#"<p><a href="/search?{}">{}</a></p>"#, esc(&q), l.t("查看全部课程", "See all lessons"));
    }
    Ok(layout(state, auth, &name, "", &body).into_response())
}

pub async fn teachers(State(state): State<AppState>, Extension(auth): Extension<Auth>, Query(q): Query<SubjectQuery>) -> Result<Html<String>, ApiError> {
    directory(&state, &auth, Directory::Teachers, q).await
}

pub async fn schools(State(state): State<AppState>, Extension(auth): Extension<Auth>, Query(q): Query<SubjectQuery>) -> Result<Html<String>, ApiError> {
    directory(&state, &auth, Directory::Schools, q).await
}

pub async fn teacher(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(name): Path<String>) -> Result<Response, ApiError> {
    profile(&state, &auth, Directory::Teachers, name).await
}

pub async fn school(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(name): Path<String>) -> Result<Response, ApiError> {
    profile(&state, &auth, Directory::Schools, name).await
}

/// The published collections, featured and pinned first.
pub async fn collections(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let admin = is_admin(&auth);
    let list = blocking(&state, |ctx| Ok(ctx.store.read(catalog::collections)?)).await?;
    let mut body = format!("<h1>{}</h1>", l.t("专辑", "Collections"));
    if admin {
        body.push_str(&collection_form(l));
    }
    let mut shown = 0;
    body.push_str(r#"<ul class="directory wide">"#);
    // Administrators also see their unpublished collections.
    for c in list.iter().filter(|c| c.published || admin) {
        shown += 1;
        let _ = write!(
            body,
            r#"<li><a href="/collections/{}">{}</a>{}{} <span class="muted">{} · {}</span><p class="muted">{}</p></li>"#,
            esc(&c.id),
            esc(&c.title),
            if c.featured { format!(r#" <span class="tag">{}</span>"#, l.t("推荐", "featured")) } else { String::new() },
            if c.published { String::new() } else { format!(r#" <span class="tag">{}</span>"#, l.t("未发布", "unpublished")) },
            esc(&c.origin_name),
            count_text(l, c.lessons.len()),
            esc(&c.description)
        );
    }
    body.push_str("</ul>");
    if shown == 0 {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, l.t("还没有专辑。", "No collections yet."));
    }
    Ok(layout(&state, &auth, l.t("专辑", "Collections"), "", &body))
}

pub async fn collection(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let l = auth.lang;
    let admin = is_admin(&auth);
    let found = blocking(&state, move |ctx| {
        let Some(c) = ctx.store.read(catalog::collections)?.into_iter().find(|c| c.id == id && (c.published || admin)) else { return Ok(None) };
        let views: Vec<LessonView> = ctx.store.read(|conn| lessons::by_ids(conn, &c.lessons))?.into_iter().map(|x| LessonView::new(ctx, x)).collect();
        let own = c.origin_name == ctx.writer.node_name;
        Ok(Some((c, views, own)))
    })
    .await?;
    let Some((c, views, own)) = found else { return Ok(not_found(&state, &auth, l.t("没有这个专辑", "There is no such collection"))) };
    let missing = c.lessons.len() - views.len();
    let mut body = format!(
        r#"<h1>{} <span class="muted">{} · {}</span></h1><p>{}</p>"#,
        esc(&c.title),
        esc(&c.origin_name),
        count_text(l, c.lessons.len()),
        esc(&c.description)
    );
    if admin && own {
        body.push_str(&manage_collection(l, &c, &views));
    }
    body.push_str(&cards(l, &views));
    if missing > 0 {
        let _ = write!(
            body,
            r#"<p class="muted">{} {missing}</p>"#,
            l.t("尚未同步到本节点的课程：", "Lessons not yet synced to this node:")
        );
    }
    Ok(layout(&state, &auth, &c.title, "", &body).into_response())
}

/// Every notice, newest first, with its text.
pub async fn announcements(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let admin = is_admin(&auth);
    let (list, here) = blocking(&state, move |ctx| {
        // Administrators also see notices scheduled for later or meant for another tier.
        let list = if admin { ctx.store.read(catalog::announcements)? } else { ctx.store.read(|c| catalog::announcements_for(c, ctx.writer.tier, crate::store::now_ms()))? };
        Ok((list, ctx.writer.node_name.clone()))
    })
    .await?;
    let mut body = format!("<h1>{}</h1>", l.t("通知公告", "Notices"));
    if admin {
        body.push_str(&announcement_form(l));
    }
    if list.is_empty() {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, l.t("还没有通知。", "No notices yet."));
    }
    let now = crate::store::now_ms();
    for n in &list {
        let text: Vec<String> = n.body.lines().map(esc).collect();
        let mut tags = String::new();
        if n.publish_at > now {
            let _ = write!(tags, r#" <span class="tag">{}{}</span>"#, l.t("定时发布：", "scheduled: "), esc(&crate::store::china_time(n.publish_at)));
        }
        if n.audience != "all" {
            let _ = write!(tags, r#" <span class="tag">{}</span>"#, audience_name(l, &n.audience));
        }
        let tools = if admin && n.origin_name == here {
            format!(
                r#"<p class="actions"><button type="button" class="link edit-announcement" data-announcement="{}">{}</button> <button type="button" class="link delete-announcement" data-announcement="{}">{}</button></p>"#,
                esc(&serde_json::to_string(n).unwrap_or_default()),
                l.t("编辑", "Edit"),
                esc(&n.id),
                l.t("删除", "Delete")
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            r#"<article class="notice" id="n-{}"><h2>{}{tags}</h2><p class="muted">{} · {}</p><p>{}</p>{tools}</article>"#,
            esc(&n.id),
            esc(&n.title),
            esc(&n.origin_name),
            day(n.publish_at),
            text.join("<br>")
        );
    }
    Ok(layout(&state, &auth, l.t("通知公告", "Notices"), "", &body))
}

fn is_admin(auth: &Auth) -> bool {
    auth.user().is_some_and(|u| u.role == crate::accounts::Role::Admin)
}

fn audience_name(l: Lang, audience: &str) -> &'static str {
    match audience {
        "school" => l.t("面向学校", "for schools"),
        "city" => l.t("面向市级", "for cities"),
        _ => l.t("面向全部", "for everyone"),
    }
}

/// The form that makes a collection (portal.js sends it).
fn collection_form(l: Lang) -> String {
    format!(
        r#"<details class="manage"><summary>{new}</summary><form id="new-collection"><p><input name="title" required maxlength="200" placeholder="{title}" aria-label="{title}"></p>
<p><textarea name="description" rows="2" maxlength="2000" placeholder="{desc}" aria-label="{desc}"></textarea></p>
<p><label><input type="checkbox" name="featured"> {featured}</label> <label><input type="checkbox" name="pinned"> {pinned}</label> <label><input type="checkbox" name="published" checked> {published}</label></p>
<p><button type="submit">{create}</button> <span class="msg" role="status"></span></p><p class="muted">{hint}</p></form></details>"#,
        new = l.t("新建专辑", "New collection"),
        title = l.t("专辑名称", "Title"),
        desc = l.t("简介", "Description"),
        featured = l.t("推荐", "Featured"),
        pinned = l.t("置顶（各校预先缓存视频）", "Pinned (schools fetch its videos ahead)"),
        published = l.t("发布到下级各节点", "Published to every node below"),
        create = l.t("创建", "Create"),
        hint = l.t("创建后，在课程页面用“加入专辑”添加课程。", "Then add lessons from their pages with “Add to collection”."),
    )
}

/// A collection's administration at the node that made it: its fields, its lessons in order
/// (up, down, remove), deletion.
fn manage_collection(l: Lang, c: &catalog::Collection, views: &[LessonView]) -> String {
    let mut items = String::new();
    for v in views {
        let _ = write!(
            items,
            r#"<li data-lesson="{id}">{title} <button type="button" class="link move-up" aria-label="{up}">↑</button><button type="button" class="link move-down" aria-label="{down}">↓</button> <button type="button" class="link remove">{remove}</button></li>"#,
            id = esc(&v.lesson.id),
            title = esc(&v.lesson.title),
            up = l.t("上移", "Move up"),
            down = l.t("下移", "Move down"),
            remove = l.t("移除", "Remove"),
        );
    }
    let check = |on: bool| if on { " checked" } else { "" };
    format!(
        r#"<details class="manage" open><summary>{manage}</summary><form id="edit-collection" data-collection="{id}">
<p><input name="title" required maxlength="200" value="{title}" aria-label="{l_title}"></p><p><textarea name="description" rows="2" maxlength="2000" aria-label="{l_desc}">{desc}</textarea></p>
<p><label><input type="checkbox" name="featured"{featured}> {l_featured}</label> <label><input type="checkbox" name="pinned"{pinned}> {l_pinned}</label> <label><input type="checkbox" name="published"{published}> {l_published}</label></p>
<ol class="collection-lessons">{items}</ol>
<p><button type="submit">{save}</button> <button type="button" class="danger" id="delete-collection">{delete}</button> <span class="msg" role="status"></span></p></form></details>"#,
        manage = l.t("管理专辑", "Manage this collection"),
        id = esc(&c.id),
        title = esc(&c.title),
        desc = esc(&c.description),
        featured = check(c.featured),
        pinned = check(c.pinned),
        published = check(c.published),
        l_title = l.t("专辑名称", "Title"),
        l_desc = l.t("简介", "Description"),
        l_featured = l.t("推荐", "Featured"),
        l_pinned = l.t("置顶（各校预先缓存视频）", "Pinned (schools fetch its videos ahead)"),
        l_published = l.t("发布到下级各节点", "Published to every node below"),
        save = l.t("保存", "Save"),
        delete = l.t("删除专辑", "Delete the collection"),
    )
}

/// The form that makes or edits a notice (portal.js fills it for an edit).
fn announcement_form(l: Lang) -> String {
    format!(
        r#"<details class="manage" id="announcement-box"><summary>{new}</summary><form id="announcement-form"><p><input name="title" required maxlength="200" placeholder="{title}" aria-label="{title}"></p>
<p><textarea name="body" rows="4" maxlength="2000" placeholder="{body}" aria-label="{body}"></textarea></p>
<p><label>{audience} <select name="audience"><option value="all">{all}</option><option value="school">{school}</option><option value="city">{city}</option></select></label>
<label>{at} <input type="datetime-local" name="publish_at"></label></p>
<p><button type="submit">{save}</button> <span class="msg" role="status"></span></p></form></details>"#,
        new = l.t("发布通知", "Publish a notice"),
        title = l.t("标题", "Title"),
        body = l.t("正文", "Text"),
        audience = l.t("对象", "For"),
        all = l.t("全部", "everyone"),
        school = l.t("学校", "schools"),
        city = l.t("市级", "cities"),
        at = l.t("发布时间（留空即刻发布）", "Publish at (empty: now)"),
        save = l.t("发布", "Publish"),
    )
}
