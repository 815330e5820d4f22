//! 审核: the review queue of lessons shared to this node's tier, for reviewers (experts) and
//! administrators. Decisions go through the JSON API (portal.js), as on the lesson page.

use super::auth::Auth;
use super::pages::{day, esc, layout};
use super::{ApiError, AppState, blocking};
use crate::lessons;
use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use std::fmt::Write;

/// `GET /review`: the lessons waiting for this tier's review, oldest first.
pub async fn page(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let tier = state.ctx.writer.tier;
    let waiting = blocking(&state, move |ctx| Ok(ctx.store.read(|c| lessons::review_queue(c, tier, 500))?)).await?;
    let title = l.t("课程审核", "Review queue");
    let mut body = format!("<h1>{title}</h1>");
    if tier == youke_federation::Tier::School {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, l.t("学校节点不审核课程：共享到全市或全省的课程由市级或省级节点审核。", "Schools do not review: lessons shared city-wide or province-wide are reviewed at the city or the province."));
        return Ok(layout(&state, &auth, title, "", &body));
    }
    let _ = write!(
        body,
        r#"<p class="muted">{}</p>"#,
        match l {
            super::i18n::Lang::Zh => format!("共享到{}的课程，审核通过后本节点下属各校均可观看；不通过时请写明原因，教师会看到。", l.share(tier)),
            super::i18n::Lang::En => format!("Lessons shared {}: once approved, every school below this node can watch them. Give a reason when rejecting; the teacher reads it.", l.share(tier)),
        }
    );
    if waiting.is_empty() {
        let _ = write!(body, r#"<p id="review-empty">{}</p>"#, l.t("没有待审核的课程。", "No lessons wait for review."));
        return Ok(layout(&state, &auth, title, "", &body));
    }
    let _ = write!(
        body,
        r#"<table id="review-queue"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        l.t("课程", "Lesson"),
        l.t("来源学校", "School"),
        l.t("上传日期", "Uploaded"),
        l.t("审核", "Decision"),
    );
    for x in &waiting {
        let _ = write!(
            body,
            r#"<tr data-lesson="{id}"><td><a href="/lessons/{id}">{title}</a><br><span class="muted">{teacher} · {grade} {subject}</span></td><td>{school}</td><td>{day}</td>
<td><button type="button" data-decision="approve">{approve}</button> <input name="reason" maxlength="2000" placeholder="{reason}" aria-label="{reason}"> <button type="button" class="danger" data-decision="reject">{reject}</button> <span class="msg" role="status"></span></td></tr>"#,
            id = esc(&x.id),
            title = esc(&x.title),
            teacher = esc(&x.teacher),
            grade = esc(&x.grade),
            subject = esc(&x.subject),
            school = esc(&x.origin_name),
            day = day(x.created_at),
            approve = l.t("通过", "Approve"),
            reject = l.t("不通过", "Reject"),
            reason = l.t("不通过的原因", "Reason for rejecting"),
        );
    }
    body.push_str("</tbody></table>");
    Ok(layout(&state, &auth, title, "", &body))
}
