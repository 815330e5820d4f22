//! The competition workflow (优质课评选) in the portal and the API: the list and the page of a
//! competition, which shows each visitor their part of it (a teacher enters lessons, the
//! organizer's admin assigns experts and publishes the results, an expert scores their
//! assignments), and the JSON endpoints the page's script calls. The rules live in
//! [`crate::competitions`].

use super::auth::Auth;
use super::i18n::Lang;
use super::pages::{esc, layout, not_found};
use super::api::check_id;
use super::{ApiError, AppState, blocking};
use crate::accounts::{self, Role};
use crate::catalog::{self, Competition, Criterion};
use crate::competitions::{self as comp, CompetitionError, Entry, Stage, Viewer};
use crate::lessons;
use crate::store::{china_time, now_ms};
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use youke_federation::Tier;

impl From<CompetitionError> for ApiError {
    fn from(e: CompetitionError) -> Self {
        use CompetitionError as E;
        match e {
            e @ (E::NoSuchCompetition(_) | E::NoSuchLesson(_)) => ApiError::NotFound(e.to_string()),
            e @ (E::NotOpen(_) | E::Closed(_) | E::Decided) => ApiError::Conflict(e.to_string()),
            e @ (E::NotCompliant(_) | E::NotChecked | E::NotHere(_)) => ApiError::Unprocessable(e.to_string()),
            e @ E::NotAssigned(_) => ApiError::Forbidden(e.to_string()),
            E::Invalid(m) => ApiError::BadRequest(m),
            E::Doc(e) => ApiError::from(e),
            E::Store(e) => ApiError::from(e),
        }
    }
}

/// Who the caller is to the competitions of this node.
fn viewer_of(auth: &Auth) -> Viewer<'_> {
    match auth.user() {
        Some(u) if u.role == Role::Admin => Viewer::Admin,
        Some(u) if u.role == Role::Expert => Viewer::Expert(&u.name),
        _ => Viewer::Public,
    }
}

/// A competition with its stage and the entries the caller may see.
#[derive(Debug, Serialize)]
pub struct CompetitionView {
    #[serde(flatten)]
    pub competition: Competition,
    pub stage: Stage,
    /// Whether this node runs it (assignments, scores and results are made here).
    pub run_here: bool,
    pub entries: Vec<Entry>,
}

async fn load_view(state: &AppState, auth: &Auth, id: String) -> Result<Option<CompetitionView>, ApiError> {
    let (admin, expert) = match viewer_of(auth) {
        Viewer::Admin => (true, None),
        Viewer::Expert(n) => (false, Some(n.to_string())),
        Viewer::Public => (false, None),
    };
    blocking(state, move |ctx| {
        let Some(c) = ctx.store.read(|conn| catalog::competition(conn, &id))? else { return Ok(None) };
        let run_here = c.origin_node == ctx.writer.node_id;
        // Experts and admins elsewhere see what the public sees: judging happens at the organizer.
        let viewer = match (run_here, admin, expert.as_deref()) {
            (true, true, _) => Viewer::Admin,
            (true, false, Some(e)) => Viewer::Expert(e),
            _ => Viewer::Public,
        };
        let entries = ctx.store.read(|conn| comp::entries(conn, &id, viewer))?;
        Ok(Some(CompetitionView { stage: comp::stage(&c, now_ms()), run_here, competition: c, entries }))
    })
    .await
}

#[derive(Debug, Serialize)]
pub struct CompetitionItem {
    #[serde(flatten)]
    pub competition: Competition,
    pub stage: Stage,
}

/// `GET /api/v1/competitions`.
pub async fn list(State(state): State<AppState>) -> Result<Json<super::api::Items<CompetitionItem>>, ApiError> {
    let now = now_ms();
    let items = blocking(&state, |ctx| Ok(ctx.store.read(catalog::competitions)?)).await?;
    Ok(Json(super::api::Items { items: items.into_iter().map(|c| CompetitionItem { stage: comp::stage(&c, now), competition: c }).collect() }))
}

/// `POST /api/v1/competitions` (an admin at a city or the province).
pub async fn create(State(state): State<AppState>, Json(c): Json<Competition>) -> Result<Json<Competition>, ApiError> {
    Ok(Json(super::api::change(&state, move |tx, w| catalog::create_competition(tx, w, &c)).await?))
}

/// `GET /api/v1/competitions/{id}`: the competition and the entries the caller may see.
pub async fn get(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Json<CompetitionView>, ApiError> {
    check_id(&id)?;
    load_view(&state, &auth, id.clone()).await?.map(Json).ok_or_else(|| ApiError::NotFound(format!("no competition with id {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    pub lesson: String,
}

/// `POST /api/v1/competitions/{id}/entries`: a teacher enters one of their lessons.
pub async fn submit(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>, Json(b): Json<EntryBody>) -> Result<Json<Entry>, ApiError> {
    check_id(&id)?;
    check_id(&b.lesson)?;
    super::api::require_owner(&state, &auth, &b.lesson).await?;
    Ok(Json(super::api::change(&state, move |tx, w| comp::submit(tx, w, &id, &b.lesson, now_ms())).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgesBody {
    pub experts: Vec<String>,
}

/// `PUT /api/v1/competitions/{id}/entries/{lesson}/judges`: the organizer's admin assigns experts.
pub async fn assign(State(state): State<AppState>, Path((id, lesson)): Path<(String, String)>, Json(b): Json<JudgesBody>) -> Result<Json<Entry>, ApiError> {
    check_id(&id)?;
    check_id(&lesson)?;
    Ok(Json(super::api::change(&state, move |tx, w| comp::assign(tx, w, &id, &lesson, &b.experts)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    pub scores: BTreeMap<String, i64>,
    #[serde(default)]
    pub comment: String,
}

/// `PUT /api/v1/competitions/{id}/entries/{lesson}/score`: an assigned expert scores an entry.
pub async fn score(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path((id, lesson)): Path<(String, String)>,
    Json(b): Json<ScoreBody>,
) -> Result<Json<comp::Judgement>, ApiError> {
    check_id(&id)?;
    check_id(&lesson)?;
    let expert = auth.name().to_string();
    Ok(Json(super::api::change(&state, move |tx, w| comp::score(tx, w, &id, &lesson, &expert, &b.scores, &b.comment)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Award {
    pub lesson: String,
    pub award: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsBody {
    pub awards: Vec<Award>,
}

/// `POST /api/v1/competitions/{id}/results`: the organizer's admin publishes the awards.
pub async fn results(State(state): State<AppState>, Path(id): Path<String>, Json(b): Json<ResultsBody>) -> Result<Json<Competition>, ApiError> {
    check_id(&id)?;
    let awards: Vec<(String, String)> = b.awards.into_iter().map(|a| (a.lesson, a.award)).collect();
    Ok(Json(super::api::change(&state, move |tx, w| comp::publish_results(tx, w, &id, &awards)).await?))
}

fn stage_name(l: Lang, s: Stage) -> &'static str {
    match s {
        Stage::Upcoming => l.t("未开始", "not open yet"),
        Stage::Open => l.t("报送中", "taking entries"),
        Stage::Judging => l.t("评审中", "judging"),
        Stage::Awarded => l.t("已公布结果", "results published"),
    }
}

fn deadline_text(l: Lang, c: &Competition) -> String {
    if c.closes_at > 0 { china_time(c.closes_at) } else { l.t("不限", "none").to_string() }
}

/// `GET /competitions`: every competition; a city or province admin also gets the form to publish one.
pub async fn list_page(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let list = blocking(&state, |ctx| Ok(ctx.store.read(catalog::competitions)?)).await?;
    let now = now_ms();
    let mut body = format!("<h1>{}</h1>", l.t("优质课评选", "Lesson competitions"));
    if list.is_empty() {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, l.t("还没有评选活动。", "No competitions yet."));
    }
    body.push_str(r#"<ul class="directory wide" id="competitions">"#);
    for c in &list {
        let _ = write!(
            body,
            r#"<li><a href="/competitions/{id}">{title}</a> <span class="tag stage-{stage_code}">{stage}</span> <span class="muted">{org} · {l_deadline}{deadline}{std}</span></li>"#,
            id = esc(&c.id),
            title = esc(&c.title),
            stage_code = serde_json::to_value(comp::stage(c, now)).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            stage = stage_name(l, comp::stage(c, now)),
            org = esc(&c.origin_name),
            l_deadline = l.t("截止：", "deadline: "),
            deadline = esc(&deadline_text(l, c)),
            std = if c.requires_standard { l.t(" · 须符合课程视频标准", " · video standard required") } else { "" },
        );
    }
    body.push_str("</ul>");
    // An expert's assignments at this node, across its competitions.
    if let Some(u) = auth.user().filter(|u| u.role == Role::Expert) {
        let name = u.name.clone();
        let mine = blocking(&state, move |ctx| Ok(ctx.store.read(|c| comp::assignments(c, &name))?)).await?;
        let _ = write!(body, r#"<h2>{}</h2><ul class="directory wide" id="assignments">"#, l.t("我的评审任务", "My assignments"));
        if mine.is_empty() {
            let _ = write!(body, r#"<li class="muted">{}</li>"#, l.t("暂无分配给你的参评课程。", "No entries are assigned to you."));
        }
        for (c, e) in &mine {
            let scored = e.judges.first().and_then(|j| j.total);
            let _ = write!(
                body,
                r#"<li><a href="/competitions/{cid}">{ctitle}</a> · <a href="/lessons/{lid}">{ltitle}</a> <span class="tag">{state}</span></li>"#,
                cid = esc(&c.id),
                ctitle = esc(&c.title),
                lid = esc(&e.lesson.id),
                ltitle = esc(&e.lesson.title),
                state = match scored {
                    Some(t) => format!("{}{t}", l.t("已评 ", "scored ")),
                    None => l.t("待评", "to score").to_string(),
                },
            );
        }
        body.push_str("</ul>");
    }
    if auth.user().is_some_and(|u| u.role == Role::Admin) && state.ctx.writer.tier != Tier::School {
        let rubric: Vec<String> = catalog::default_rubric().iter().map(|k| format!("{} {}", k.name, k.max)).collect();
        let _ = write!(
            body,
            r#"<h2>{h}</h2><form id="new-competition"><dl>
<dt><label for="c-title">{title}</label></dt><dd><input id="c-title" name="title" required maxlength="200"></dd>
<dt><label for="c-description">{desc}</label></dt><dd><textarea id="c-description" name="description" rows="4" maxlength="2000"></textarea></dd>
<dt><label for="c-closes">{closes}</label></dt><dd><input id="c-closes" name="closes_at" type="datetime-local"> <span class="muted">{china}</span></dd>
<dt><label for="c-standard">{std}</label></dt><dd><input id="c-standard" name="requires_standard" type="checkbox" checked></dd>
<dt><label for="c-rubric">{rubric_l}</label></dt><dd><textarea id="c-rubric" name="rubric" rows="5">{rubric}</textarea> <span class="muted">{rubric_hint}</span></dd>
</dl><p><button type="submit">{go}</button> <span class="msg" role="status"></span></p></form>"#,
            h = l.t("发布评选", "Publish a competition"),
            title = l.t("评选名称", "Title"),
            desc = l.t("评选规则", "Rules"),
            closes = l.t("报送截止", "Entries close"),
            china = l.t("北京时间", "China time"),
            std = l.t("须符合课程视频标准", "Entries must meet the course video standard"),
            rubric_l = l.t("评分标准", "Rubric"),
            rubric = esc(&rubric.join("\n")),
            rubric_hint = l.t("每行一项：名称 分值", "one line each: name points"),
            go = l.t("发布", "Publish"),
        );
    }
    Ok(layout(&state, &auth, l.t("优质课评选", "Lesson competitions"), "", &body))
}

fn rubric_table(l: Lang, rubric: &[Criterion]) -> String {
    let mut out = format!(r#"<table class="rubric"><tr><th>{}</th><th>{}</th></tr>"#, l.t("评分项", "Criterion"), l.t("分值", "Points"));
    for k in rubric {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(&k.name), k.max);
    }
    let _ = write!(out, "<tr><th>{}</th><th>{}</th></tr></table>", l.t("合计", "Total"), rubric.iter().map(|k| k.max).sum::<i64>());
    out
}

/// The notice: title and stage, organizer, deadline, rules and rubric.
fn notice(l: Lang, v: &CompetitionView) -> String {
    let c = &v.competition;
    let description: Vec<String> = c.description.lines().map(esc).collect();
    format!(
        r#"<article class="competition" id="competition" data-competition="{id}"><h1>{title} <span class="tag stage-{stage_code}">{stage}</span></h1>
<p class="muted">{l_org}{org} · {l_deadline}{deadline}</p><p>{description}</p><p>{std}</p><h2>{l_rubric}</h2>{rubric}"#,
        id = esc(&c.id),
        title = esc(&c.title),
        stage_code = serde_json::to_value(v.stage).ok().and_then(|s| s.as_str().map(str::to_string)).unwrap_or_default(),
        stage = stage_name(l, v.stage),
        l_org = l.t("主办：", "Run by "),
        org = esc(&c.origin_name),
        l_deadline = l.t("报送截止：", "entries close: "),
        deadline = esc(&deadline_text(l, c)),
        description = description.join("<br>"),
        std = if c.requires_standard {
            l.t("参评课程须符合课程视频标准（H.264 1080p、AAC 立体声 48 kHz、中文字幕等）。", "Entries must meet the course video standard (H.264 1080p, AAC stereo 48 kHz, subtitles, …).")
        } else {
            l.t("不要求符合课程视频标准。", "The course video standard is not required.")
        },
        l_rubric = l.t("评分标准", "Rubric"),
        rubric = rubric_table(l, &c.rubric),
    )
}

/// The results, once published.
fn results_html(body: &mut String, l: Lang, v: &CompetitionView) {
    let c = &v.competition;
    if v.stage == Stage::Awarded {
        let _ = write!(body, r#"<h2>{}</h2><ol class="awards">"#, l.t("评选结果", "Results"));
        for e in v.entries.iter().filter(|e| e.award.is_some()) {
            let _ = write!(
                body,
                r#"<li data-lesson="{id}"><span class="tag award">{award}</span> <a href="/lessons/{id}">{title}</a> <span class="muted">{teacher} · {school}</span></li>"#,
                id = esc(&e.lesson.id),
                award = esc(e.award.as_deref().unwrap_or("")),
                title = esc(&e.lesson.title),
                teacher = esc(&e.lesson.teacher),
                school = esc(&e.lesson.origin_name),
            );
        }
        body.push_str("</ol>");
        if !c.archive_collection.is_empty() {
            let _ = write!(body, r#"<p><a href="/collections/{}">{}</a></p>"#, esc(&c.archive_collection), l.t("获奖课例专辑", "The winners' collection"));
        }
    }
}

/// A teacher enters lessons (`mine`: theirs at this school).
fn entry_form(body: &mut String, l: Lang, v: &CompetitionView, mine: &[lessons::Lesson]) {
    if !mine.is_empty() {
        let entered: Vec<&str> = v.entries.iter().map(|e| e.lesson.id.as_str()).collect();
        let _ = write!(body, r#"<h2>{}</h2><form id="enter"><p><select id="enter-lesson" name="lesson">"#, l.t("报送课程", "Enter a lesson"));
        for x in mine.iter().filter(|x| !entered.contains(&x.id.as_str())) {
            let note = match comp::failing_rules(x) {
                None => l.t("（未检测）", " (not checked)").to_string(),
                Some(f) if f.is_empty() => l.t("（符合标准）", " (meets the standard)").to_string(),
                Some(f) => {
                    let ids = f.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(" ");
                    match l {
                        Lang::Zh => format!("（不符合：{ids}）"),
                        Lang::En => format!(" (fails {ids})"),
                    }
                }
            };
            let _ = write!(body, r#"<option value="{}">{}{}</option>"#, esc(&x.id), esc(&x.title), esc(&note));
        }
        let _ = write!(
            body,
            r#"</select> <button type="submit">{}</button></p><p class="msg" role="status"></p></form>"#,
            l.t("报送", "Enter")
        );
    }
}

/// The entries: everyone sees what was entered; the organizer's admin assigns and awards, an
/// expert scores their own.
fn entries(body: &mut String, l: Lang, v: &CompetitionView, viewer: Viewer<'_>, experts: &[accounts::User]) {
    let c = &v.competition;
    let heading = match viewer {
        Viewer::Expert(_) => l.t("我的评审任务", "My assignments"),
        _ => l.t("参评课程", "Entries"),
    };
    let _ = write!(body, r#"<h2>{heading} <span class="muted">{}</span></h2>"#, super::pages::count_text(l, v.entries.len()));
    if v.entries.is_empty() {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, match viewer {
            Viewer::Expert(_) => l.t("还没有分配给你的参评课程。", "No entries are assigned to you yet."),
            _ => l.t("还没有参评课程。", "No entries yet."),
        });
    }
    let may_decide = v.run_here && v.stage != Stage::Awarded;
    for e in &v.entries {
        let x = &e.lesson;
        let _ = write!(
            body,
            r#"<section class="entry" data-lesson="{id}"><h3><a href="/lessons/{id}">{title}</a>{award}</h3><p class="muted">{teacher} · {school} · {l_at}{at}{late}</p>"#,
            id = esc(&x.id),
            title = esc(&x.title),
            award = e.award.as_ref().map(|a| format!(r#" <span class="tag award">{}</span>"#, esc(a))).unwrap_or_default(),
            teacher = esc(&x.teacher),
            school = esc(&e.submitted_by),
            l_at = l.t("报送于 ", "entered "),
            at = esc(&china_time(e.submitted_at)),
            late = if e.late { l.t(" · 逾期，不参评", " · late, not judged") } else { "" },
        );
        match viewer {
            Viewer::Admin if v.run_here => {
                admin_controls(body, l, e, experts, may_decide);
            }
            Viewer::Expert(_) if v.run_here => {
                expert_form(body, l, c, e, may_decide);
            }
            _ => {}
        }
        body.push_str("</section>");
    }
    if may_decide && matches!(viewer, Viewer::Admin) && !v.entries.is_empty() {
        let _ = write!(
            body,
            r#"<p><button type="button" id="publish-results">{}</button> <span class="muted">{}</span></p>"#,
            l.t("发布评选结果", "Publish the results"),
            l.t("获奖课程将归入“获奖课例”专辑，发送到全部下级节点。", "The winners go into a collection sent down to every node below."),
        );
    }
}

/// The organizer's admin: who judges an entry, the average, and (until the results are out)
/// the forms that assign experts and name the award.
fn admin_controls(body: &mut String, l: Lang, e: &Entry, experts: &[accounts::User], may_decide: bool) {
    let x = &e.lesson;
    let judged: Vec<String> = e
        .judges
        .iter()
        .map(|j| match j.total {
            Some(t) => format!("{} {t}", esc(&j.expert)),
            None => format!("{} {}", esc(&j.expert), l.t("未评", "not scored")),
        })
        .collect();
    let _ = write!(
        body,
        r#"<p class="judges">{l_judges}{judged} · {l_avg}{avg}</p>"#,
        l_judges = l.t("评审专家：", "Experts: "),
        judged = if judged.is_empty() { l.t("未分配", "none assigned").to_string() } else { judged.join("、") },
        l_avg = l.t("平均分：", "average: "),
        avg = e.average.map(|a| format!("{a:.1}")).unwrap_or_else(|| "—".into()),
    );
    if may_decide && !e.late {
        let _ = write!(body, r#"<form class="assign" data-lesson="{}"><fieldset><legend>{}</legend>"#, esc(&x.id), l.t("分配评审专家", "Assign experts"));
        for u in experts {
            let on = e.judges.iter().any(|j| j.expert == u.name);
            let _ = write!(
                body,
                r#"<label><input type="checkbox" name="expert" value="{name}"{checked}> {display}</label> "#,
                name = esc(&u.name),
                checked = if on { " checked" } else { "" },
                display = esc(&u.display),
            );
        }
        if experts.is_empty() {
            let _ = write!(body, r#"<span class="muted">{}</span>"#, l.t("本节点还没有专家账号（youke user add 名字 --role expert）。", "This node has no expert accounts yet (youke user add NAME --role expert)."));
        }
        let _ = write!(
            body,
            r#" <button type="submit">{}</button></fieldset></form><p><label>{} <input class="award-name" data-lesson="{}" maxlength="50" placeholder="{}"></label></p>"#,
            l.t("保存分配", "Save"),
            l.t("奖项", "Award"),
            esc(&x.id),
            l.t("如 一等奖，不获奖留空", "e.g. 一等奖; empty for none"),
        );
    }
}

/// An assigned expert's score form, against the rubric.
fn expert_form(body: &mut String, l: Lang, c: &Competition, e: &Entry, may_decide: bool) {
    let x = &e.lesson;
    let mine = e.judges.first();
    let _ = write!(body, r#"<form class="score" data-lesson="{}"><table class="rubric">"#, esc(&x.id));
    for k in &c.rubric {
        let given = mine.and_then(|j| j.scores.as_ref()).and_then(|s| s.get(&k.name)).map(|p| p.to_string()).unwrap_or_default();
        let _ = write!(
            body,
            r#"<tr><td><label>{name}</label></td><td><input type="number" name="{name}" data-criterion="{name}" min="0" max="{max}" value="{given}" required> / {max}</td></tr>"#,
            name = esc(&k.name),
            max = k.max,
            given = esc(&given),
        );
    }
    let _ = write!(
        body,
        r#"</table><p><label>{} <input name="comment" maxlength="2000" value="{}"></label> <button type="submit"{}>{}</button> <span class="total">{}</span></p></form>"#,
        l.t("评语", "Comment"),
        esc(mine.map(|j| j.comment.as_str()).unwrap_or("")),
        if may_decide { "" } else { " disabled" },
        l.t("提交评分", "Submit score"),
        mine.and_then(|j| j.total).map(|t| format!("{}{t}", l.t("已评：", "scored: "))).unwrap_or_default(),
    );
}

/// `GET /competitions/{id}`: the notice (rules, deadline, rubric) and the visitor's part in it.
pub async fn page(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let l = auth.lang;
    if check_id(&id).is_err() {
        return Ok(not_found(&state, &auth, l.t("没有这个评选", "There is no such competition")));
    }
    let Some(v) = load_view(&state, &auth, id.clone()).await? else {
        return Ok(not_found(&state, &auth, l.t("没有这个评选", "There is no such competition")));
    };
    let c = &v.competition;
    let user = auth.user().cloned();
    // A teacher's (or admin's) own lessons at this school, for the entry form.
    let mine = match (&user, v.stage, state.ctx.writer.tier) {
        (Some(u), Stage::Open, Tier::School) if matches!(u.role, Role::Teacher | Role::Admin) => {
            let u = u.clone();
            blocking(&state, move |ctx| {
                let list = if u.role == Role::Admin {
                    ctx.store.read(|conn| lessons::list(conn, 0, 500))?.0.into_iter().filter(|x| x.origin_node == ctx.writer.node_id).collect()
                } else {
                    ctx.store.read(|conn| lessons::owned_by(conn, &u.name, &u.display, &ctx.writer.node_id))?
                };
                Ok(list)
            })
            .await?
        }
        _ => Vec::new(),
    };
    let experts: Vec<accounts::User> = if v.run_here && matches!(viewer_of(&auth), Viewer::Admin) {
        blocking(&state, |ctx| Ok(ctx.store.read(accounts::list_users)?)).await?.into_iter().filter(|u| u.role == Role::Expert && !u.disabled).collect()
    } else {
        Vec::new()
    };
    let mut body = notice(l, &v);
    results_html(&mut body, l, &v);
    entry_form(&mut body, l, &v, &mine);
    let viewer = if v.run_here { viewer_of(&auth) } else { Viewer::Public };
    entries(&mut body, l, &v, viewer, &experts);
    body.push_str(r#"<p class="msg" role="status"></p></article>"#);
    Ok(layout(&state, &auth, &c.title, "", &body).into_response())
}

