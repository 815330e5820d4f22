//! Teachers' pages: 我的课程 (my lessons with how far each has travelled up the tree, and the
//! buttons to share them) and the form to edit a lesson's details. The changes themselves go
//! through the JSON API (portal.js), so the page and the API cannot disagree on the rules.

use super::api::{MyLesson, load_my_lessons};
use super::auth::Auth;
use super::i18n::Lang;
use super::pages::{esc, layout, not_found};
use super::{ApiError, AppState, blocking};
use crate::lessons;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;
use youke_federation::Tier;

/// The share levels a node can choose for its lessons: its own tier and the ones above.
fn levels(node: Tier) -> Vec<Tier> {
    Tier::ALL.into_iter().filter(|t| *t >= node).collect()
}

fn my_rows(l: Lang, node: Tier, mine: &[MyLesson]) -> String {
    let mut rows = String::new();
    for m in mine {
        let x = &m.lesson.lesson;
        let mut buttons = String::new();
        for t in levels(node) {
            let on = t == x.share_level;
            let _ = write!(
                buttons,
                r#"<button type="button" class="share{}" data-lesson="{}" data-to="{}"{}>{}</button> "#,
                if on { " on" } else { "" },
                esc(&x.id),
                t.as_str(),
                if on { r#" aria-pressed="true" disabled"# } else { "" },
                l.share(t)
            );
        }
        let _ = write!(
            rows,
            r#"<tr data-lesson="{id}"><td><a href="/lessons/{id}">{title}</a><br><span class="muted">{grade} {subject}</span></td><td class="level">{share}</td><td class="replication" data-state="{state}"><span class="state-{state}">{text}</span></td><td class="review">{review}</td><td>{buttons}<a href="/lessons/{id}/edit">{edit}</a></td></tr>"#,
            id = esc(&x.id),
            title = esc(&x.title),
            grade = esc(&x.grade),
            subject = esc(&x.subject),
            share = l.share(x.share_level),
            state = m.replication.state,
            text = esc(&m.replication_text),
            review = esc(&m.review_text),
            edit = l.t("编辑", "Edit"),
        );
    }
    rows
}

/// `GET /my`: the signed-in teacher's lessons here; the state cells refresh themselves.
pub async fn my_lessons(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let mine = load_my_lessons(&state, &auth).await?;
    let node = state.ctx.writer.tier;
    let mut body = format!(r#"<h1>{}</h1>"#, l.t("我的课程", "My lessons"));
    if mine.is_empty() {
        let _ = write!(body, r#"<p class="muted">{} <a href="/upload">{}</a></p>"#, l.t("还没有你的课程。", "You have no lessons here yet."), l.t("上传录像", "Upload a recording"));
    } else {
        let _ = write!(
            body,
            r#"<p class="muted">{}</p><table id="mine"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table><p class="msg" role="status"></p>"#,
            l.t("共享到全市或全省后，课程会在与上级节点连通时自动送达，断线后续传。", "A lesson shared with the city or province travels up whenever the link to the parent node is up, and resumes after a break."),
            l.t("课程", "Lesson"),
            l.t("共享范围", "Shared with"),
            l.t("同步状态", "Replication"),
            l.t("审核", "Review"),
            l.t("操作", "Actions"),
            my_rows(l, node, &mine)
        );
    }
    Ok(layout(&state, &auth, l.t("我的课程", "My lessons"), "", &body))
}

/// `GET /lessons/{id}/edit`: the lesson's details as a form (sent with PATCH by portal.js).
pub async fn edit_page(State(state): State<AppState>, Extension(auth): Extension<Auth>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let l = auth.lang;
    let user = auth.user().cloned();
    let found = blocking(&state, move |ctx| {
        let Some(x) = ctx.store.read(|c| lessons::get(c, &id))? else { return Ok(None) };
        let may = super::api::may_change(ctx, user.as_ref(), &x.id)?;
        Ok(Some((x, may)))
    })
    .await?;
    let Some((x, may)) = found else { return Ok(not_found(&state, &auth, l.t("未找到这节课程", "There is no such lesson"))) };
    if !may {
        return Err(ApiError::Forbidden(super::api::NOT_YOURS.into()));
    }
    let field = |id: &str, label: &str, value: &str| {
        format!(r#"<dt><label for="{id}">{label}</label></dt><dd><input id="{id}" name="{id}" value="{}" maxlength="200"></dd>"#, esc(value))
    };
    let body = format!(
        r#"<h1>{h}</h1><form id="edit" data-lesson="{id}"><dl>{title}{teacher}{grade}{subject}{chapter}
<dt><label for="knowledge_points">{kps}</label></dt><dd><input id="knowledge_points" name="knowledge_points" value="{kps_v}"> <span class="muted">{sep}</span></dd>
<dt><label for="tags">{tags}</label></dt><dd><input id="tags" name="tags" value="{tags_v}"></dd>
<dt><label for="description">{desc}</label></dt><dd><textarea id="description" name="description" rows="5" maxlength="2000">{desc_v}</textarea></dd>
<dt>{dl}</dt><dd><label><input type="checkbox" id="downloadable" name="downloadable"{dl_checked}> {dl_label}</label></dd>
</dl><p><button type="submit">{save}</button> <a href="/lessons/{id}">{back}</a> <span class="msg" role="status"></span></p></form>"#,
        h = l.t("编辑课程信息", "Edit lesson details"),
        id = esc(&x.id),
        title = field("title", l.t("课程名称", "Title"), &x.title),
        teacher = field("teacher", l.t("教师", "Teacher"), &x.teacher),
        grade = super::pages::choice(l, "grade", l.t("年级", "Grade"), &lessons::GRADES, &x.grade),
        subject = super::pages::choice(l, "subject", l.t("学科", "Subject"), &lessons::SUBJECTS, &x.subject),
        chapter = field("textbook_chapter", l.t("教材章节", "Textbook chapter"), &x.textbook_chapter),
        kps = l.t("知识点", "Topics"),
        kps_v = esc(&x.knowledge_points.join("、")),
        sep = l.t("用顿号或逗号分隔", "separated by commas"),
        tags = l.t("标签", "Tags"),
        tags_v = esc(&x.tags.join("、")),
        desc = l.t("简介", "Description"),
        desc_v = esc(&x.description),
        dl = l.t("下载", "Download"),
        dl_label = l.t("允许观看者下载原始录像", "Let viewers download the original recording"),
        dl_checked = if x.downloadable { " checked" } else { "" },
        save = l.t("保存", "Save"),
        back = l.t("返回课程", "Back to the lesson"),
    );
    Ok(layout(&state, &auth, l.t("编辑课程信息", "Edit lesson details"), "", &body).into_response())
}
