//! The admin console (管理控制台) of every tier, `/admin`: the node tree with each node's link
//! health, sync lag and replication queue, updated live over server-sent events
//! (`/api/v1/admin/events`); the storage used and the semester forecast; users and roles; join
//! tokens; the link's rate schedule; the quarantine; the audit log. The page is rendered whole by
//! the server (readable without script); its script (portal.js) sends the forms to the JSON API
//! and redraws the live parts from each event.

use super::auth::Auth;
use super::i18n::Lang;
use super::pages::{esc, layout};
use super::{ApiError, AppState, blocking};
use crate::accounts::{self, Role};
use crate::status;
use crate::units::human_bytes;
use crate::store::{china_time, now_ms};
use axum::extract::State;
use axum::response::Html;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::time::Duration;
use youke_federation::Tier;
use youke_federation::protocol::NodeHealth;

/// How often the console's live parts are sent.
pub const EVENT_INTERVAL: Duration = Duration::from_secs(2);
/// An event stream ends after this (the browser reconnects on its own), so no request is
/// endless.
const EVENT_STREAM_LIMIT: Duration = Duration::from_secs(600);

/// The live part of the console: the tree and this node's queues.
#[derive(Debug, Serialize)]
pub struct Live {
    /// This node first, then its children, then the nodes below them.
    pub tree: Vec<NodeHealth>,
    /// Nodes below a link that is down: shown as stale with the age of their last report.
    pub stale: Vec<String>,
    pub parent: Option<status::ParentLink>,
    pub upload_queue: Vec<status::QueuedUpload>,
    pub transfers: Vec<youke_federation::transfers::TransferInfo>,
    pub pending_uploads: u64,
    pub pending_upload_bytes: u64,
    pub pending_docs: u64,
    pub at: i64,
}

fn live(ctx: &crate::NodeCtx) -> Result<Live, ApiError> {
    let s = status::collect(ctx, true)?;
    let tree = crate::health::tree_from(&ctx.store, ctx.writer.tier, &s)?;
    Ok(Live {
        stale: crate::health::stale(&tree).into_iter().collect(),
        tree,
        parent: s.parent,
        upload_queue: s.upload_queue,
        transfers: s.transfers,
        pending_uploads: s.pending_uploads,
        pending_upload_bytes: s.pending_upload_bytes,
        pending_docs: s.pending_docs,
        at: now_ms(),
    })
}

/// `GET /api/v1/admin/live`: the live part once.
pub async fn live_json(State(state): State<AppState>) -> Result<Json<Live>, ApiError> {
    Ok(Json(blocking(&state, live).await?))
}

/// `GET /api/v1/admin/events`: the live part every [`EVENT_INTERVAL`] as `console` events, until
/// the node shuts down or [`EVENT_STREAM_LIMIT`] passes.
pub async fn events(State(state): State<AppState>) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let started = tokio::time::Instant::now();
    let stream = futures_util::stream::unfold((state, true), move |(state, first)| async move {
        if !first {
            tokio::select! {
                _ = state.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(EVENT_INTERVAL) => {}
            }
        }
        if state.shutdown.is_cancelled() || started.elapsed() > EVENT_STREAM_LIMIT {
            return None;
        }
        let event = match blocking(&state, live).await {
            Ok(l) => Event::default().event("console").json_data(&l).unwrap_or_else(|_| Event::default().comment("unencodable")),
            Err(e) => {
                tracing::warn!(error = ?e, "admin console event failed");
                Event::default().comment("status unavailable")
            }
        };
        Some((Ok(event), (state, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn storage(ctx: &crate::NodeCtx) -> Result<crate::forecast::Storage, ApiError> {
    Ok(crate::forecast::storage(ctx, &ctx.config.forecast)?)
}

/// `GET /api/v1/admin/storage`.
pub async fn storage_json(State(state): State<AppState>) -> Result<Json<crate::forecast::Storage>, ApiError> {
    Ok(Json(blocking(&state, storage).await?))
}

/// `GET /api/v1/tokens`: the join tokens made here (never their secrets).
pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<Vec<crate::trust::TokenInfo>>, ApiError> {
    Ok(Json(blocking(&state, |ctx| Ok(ctx.store.read(crate::trust::list_tokens)?)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub role: String,
    pub name: String,
    /// How long it may be used, e.g. `24h`, `7d` (24 hours when left out).
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NewToken {
    /// The token itself, shown this once: give it to the child's operator for `youke enroll`.
    pub token: String,
    #[serde(flatten)]
    pub info: crate::trust::TokenInfo,
}

/// `POST /api/v1/tokens`: a one-time join token for a child node.
pub async fn create_token(State(state): State<AppState>, Json(b): Json<TokenBody>) -> Result<Json<NewToken>, ApiError> {
    let role: Tier = b.role.parse().map_err(|e: youke_federation::tier::UnknownTier| ApiError::BadRequest(e.to_string()))?;
    let lifetime = youke_federation::pki::parse_lifetime(b.expires.as_deref().unwrap_or("24h")).map_err(ApiError::BadRequest)?;
    let (token, info) = blocking(&state, move |ctx| Ok(crate::trust::create_token(ctx, role, &b.name, lifetime)?)).await?;
    Ok(Json(NewToken { token, info }))
}

/// The tree as rows in depth-first order, each with its depth (this node at depth 0).
pub fn tree_rows(tree: &[NodeHealth]) -> Vec<(usize, &NodeHealth)> {
    let mut out = Vec::with_capacity(tree.len());
    let Some(root) = tree.first() else { return out };
    let mut stack = vec![(0usize, root)];
    let mut seen = std::collections::HashSet::new();
    while let Some((depth, n)) = stack.pop() {
        if !seen.insert(n.node_id.as_str()) {
            continue;
        }
        out.push((depth, n));
        let mut kids: Vec<&NodeHealth> = tree.iter().filter(|c| c.parent_id == n.node_id && !seen.contains(c.node_id.as_str())).collect();
        kids.sort_by(|a, b| b.name.cmp(&a.name));
        stack.extend(kids.into_iter().map(|c| (depth + 1, c)));
    }
    out
}

fn ago(l: Lang, ms: Option<u64>) -> String {
    match ms {
        None => l.t("从未", "never").to_string(),
        Some(ms) if ms < 60_000 => format!("{}{}", ms / 1000, l.t(" 秒前", " s ago")),
        Some(ms) if ms < 3_600_000 => format!("{}{}", ms / 60_000, l.t(" 分钟前", " min ago")),
        Some(ms) => format!("{}{}", ms / 3_600_000, l.t(" 小时前", " h ago")),
    }
}

fn tree_html(l: Lang, tree: &[NodeHealth], stale: &[String]) -> String {
    let mut rows = String::new();
    for (depth, n) in tree_rows(tree) {
        let link = if depth == 0 && n.parent_id.is_empty() {
            ("top", l.t("顶层节点", "top of the tree"))
        } else if stale.contains(&n.node_id) {
            ("stale", l.t("失联，状态未知", "unknown: out of reach"))
        } else if n.connected {
            ("up", l.t("在线", "up"))
        } else {
            ("down", l.t("离线", "down"))
        };
        let _ = write!(
            rows,
            r#"<tr data-node="{id}" data-link="{code}"><td class="depth-{depth}">{name} <span class="muted">{tier}</span></td><td class="link-{code}">{state}</td><td>{sync}</td><td class="docs">{docs}</td><td class="queue">{uploads} · {bytes}</td><td>{lessons}</td><td class="muted">{age}</td></tr>"#,
            id = esc(&n.node_id),
            code = link.0,
            depth = depth.min(4),
            name = esc(&n.name),
            tier = l.tier(n.tier),
            state = link.1,
            sync = if depth == 0 && n.parent_id.is_empty() { "—".to_string() } else { ago(l, n.last_sync_ms_ago) },
            docs = n.pending_docs,
            uploads = n.pending_uploads,
            bytes = human_bytes(n.pending_upload_bytes),
            lessons = n.lessons,
            age = if n.age_ms < 1000 { l.t("实时", "live").to_string() } else { ago(l, Some(n.age_ms)) },
        );
    }
    rows
}

fn queue_html(l: Lang, live: &Live) -> String {
    let mut out = String::new();
    if live.upload_queue.is_empty() {
        let _ = write!(out, r#"<tr><td colspan="4" class="muted">{}</td></tr>"#, l.t("队列为空", "the queue is empty"));
    }
    for u in &live.upload_queue {
        let _ = write!(
            out,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            if u.priority > 0 { l.t("【参评】", "[competition] ") } else { "" },
            esc(u.title.as_deref().unwrap_or(&u.hash)),
            human_bytes(u.size),
            u.attempts,
            esc(u.last_error.as_deref().unwrap_or("")),
        );
    }
    out
}

/// A table with an id, its column heads and its rows.
fn table(id: &str, heads: &[&str], rows: &str) -> String {
    let mut out = format!(r#"<table id="{id}"><thead><tr>"#);
    for h in heads {
        let _ = write!(out, "<th>{h}</th>");
    }
    let _ = write!(out, "</tr></thead><tbody>{rows}</tbody></table>");
    out
}

fn section(out: &mut String, id: &str, title: &str, body: &str) {
    let _ = write!(out, r#"<section class="console" id="{id}"><h2>{title}</h2>{body}</section>"#);
}

/// The console's heading and its sections' links.
fn heading(l: Lang, tier: Tier) -> String {
    format!(
        r##"<h1>{}</h1><nav class="orders" aria-label="{}"><a href="#tree">{}</a><a href="#storage">{}</a><a href="#users">{}</a>{}<a href="#link">{}</a><a href="#quarantine">{}</a><a href="#audit">{}</a></nav>"##,
        l.t("管理控制台", "Admin console"),
        l.t("控制台各部分", "Console sections"),
        l.t("节点与同步", "Nodes and sync"),
        l.t("存储", "Storage"),
        l.t("用户", "Users"),
        if tier != Tier::School { format!(r##"<a href="#tokens">{}</a>"##, l.t("加入令牌", "Join tokens")) } else { String::new() },
        l.t("链路计划", "Link schedule"),
        l.t("隔离区", "Quarantine"),
        l.t("审计日志", "Audit log"),
    )
}

/// The node tree and the replication queue, refreshed live.
fn tree_section(body: &mut String, l: Lang, live: &Live) {
    // The node tree and the replication queue, live.
    let parent = match &live.parent {
        Some(p) => format!(
            r#"<p id="parent-link" data-state="{state}">{l_parent}{name} <code>{addr}</code> · <span class="link-{state}">{state_text}</span> · {l_sync}{sync} · {l_docs}{docs}{err}</p>"#,
            state = esc(&p.state),
            l_parent = l.t("上级节点：", "Parent: "),
            name = esc(p.name.as_deref().unwrap_or("")),
            addr = esc(&p.addr),
            state_text = if p.state == "up" { l.t("在线", "up") } else { l.t("离线", "down") },
            l_sync = l.t("上次同步 ", "last sync "),
            sync = ago(l, p.last_sync_ms_ago.map(|v| v.max(0) as u64)),
            l_docs = l.t("待上传文档 ", "documents waiting "),
            docs = p.pending_docs_up,
            err = p.error.as_ref().map(|e| format!(r#" · <span class="fail">{}</span>"#, esc(e))).unwrap_or_default(),
        ),
        None => format!(r#"<p id="parent-link" data-state="none" class="muted">{}</p>"#, l.t("本节点没有上级节点。", "This node has no parent.")),
    };
    section(
        body,
        "tree",
        l.t("节点与同步", "Nodes and sync"),
        &format!(
            r#"{parent}<table id="node-tree"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>
<h3>{}</h3><table id="upload-queue"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table><p id="transfers" class="muted"></p><p class="muted" id="live-at" data-at="{}">{}</p>"#,
            l.t("节点", "Node"),
            l.t("链路", "Link"),
            l.t("上次同步", "Last sync"),
            l.t("待同步文档", "Documents waiting"),
            l.t("待上传视频", "Media queued"),
            l.t("课程", "Lessons"),
            l.t("数据时效", "Figures from"),
            tree_html(l, &live.tree, &live.stale),
            l.t("上传队列（参评课程优先）", "Upload queue (competition entries first)"),
            l.t("课程", "Lesson"),
            l.t("大小", "Size"),
            l.t("尝试次数", "Attempts"),
            l.t("上次错误", "Last error"),
            queue_html(l, live),
            live.at,
            l.t("每 2 秒自动刷新", "refreshed every 2 s"),
        ),
    );
}

/// Storage and the forecast for the next semester.
fn storage_section(body: &mut String, l: Lang, storage: &crate::forecast::Storage, cfg: &crate::config::ForecastConfig) {
    // Storage and the forecast.
    let f = &storage.forecast;
    let src = |s: &str| if s == "measured" { l.t("实测", "measured") } else { l.t("配置", "configured") };
    let cfg = &cfg;
    section(
        body,
        "storage",
        l.t("存储与容量预测", "Storage and forecast"),
        &format!(
            r#"<dl><dt>{l_used}</dt><dd id="blob-bytes">{used}</dd><dt>{l_disk}</dt><dd>{disk}</dd></dl>
<h3>{l_fc}</h3><p class="muted">M = D × B × C × E × F × 60 × G / 8, S = M × 1.25 / 0.8</p>
<table id="forecast"><tr><th>{l_in}</th><th>{l_val}</th><th>{l_src}</th></tr>
<tr><td>{l_rec}</td><td>{rec:.1}</td><td>{rec_src}</td></tr>
<tr><td>C {l_kbit}</td><td>{kbit:.0} kbit/s</td><td>{kbit_src}</td></tr>
<tr><td>F {l_min}</td><td>{min:.1}</td><td>{min_src}</td></tr>
<tr><td>G {l_days}</td><td>{days:.0}</td><td>{cfg_src}</td></tr>
<tr><th>M {l_m}</th><th id="forecast-m">{m}</th><td></td></tr><tr><th>S {l_s}</th><th id="forecast-s">{s}</th><td></td></tr></table>
<p class="muted">{l_hist}</p>"#,
            l_used = l.t("媒体已用", "Media stored"),
            used = human_bytes(storage.blob_bytes),
            l_disk = l.t("磁盘", "Disk"),
            disk = match (storage.disk_free_bytes, storage.disk_total_bytes) {
                (Some(free), Some(total)) => format!("{} {} / {}", human_bytes(free), l.t("可用，共", "free of"), human_bytes(total)),
                _ => "—".into(),
            },
            l_fc = l.t("下学期存储预测", "Next semester's storage"),
            l_in = l.t("输入", "Input"),
            l_val = l.t("数值", "Value"),
            l_src = l.t("来源", "From"),
            l_rec = match f.recordings_per_day.source {
                "measured" => l.t("每个上课日的录像数（实测，代替 D×B×E）", "Recordings a school day (measured, for D×B×E)"),
                _ => l.t("D×B×E 每个上课日的录像数", "D×B×E recordings a school day"),
            },
            rec = f.recordings_per_day.value,
            rec_src = if f.recordings_per_day.source == "measured" {
                src("measured").to_string()
            } else {
                format!("{} ({} × {} × {})", src("configured"), cfg.streams_per_lesson, cfg.classrooms, cfg.lessons_per_day)
            },
            l_kbit = l.t("每路码率", "bit rate a stream"),
            kbit = f.kbit_per_recording.value,
            kbit_src = src(f.kbit_per_recording.source),
            l_min = l.t("每节分钟数", "minutes a lesson"),
            min = f.minutes_per_recording.value,
            min_src = src(f.minutes_per_recording.source),
            l_days = l.t("学期上课天数", "school days a semester"),
            days = f.days,
            cfg_src = src("configured"),
            l_m = l.t("一学期录像", "recorded in a semester"),
            m = human_bytes(f.semester_bytes),
            l_s = l.t("建议配置（含转码 +25%、RAID −20%）", "to provision (transcoded +25 %, RAID −20 %)"),
            s = human_bytes(f.provision_bytes),
            l_hist = match l {
                Lang::Zh => format!("依据本节点 {} 个录像、{} 个上课日；假设值在 youke.toml 的 [forecast] 中修改。", f.history_recordings, f.history_days),
                Lang::En => format!("From this node's {} recordings over {} days; the assumptions are in youke.toml's [forecast].", f.history_recordings, f.history_days),
            },
        ),
    );
}

/// Users and their roles, and the form that adds one.
fn users_section(body: &mut String, l: Lang, users: &[accounts::User]) {
    // Users and roles.
    let mut rows = String::new();
    for u in users {
        let mut options = String::new();
        for r in [Role::Viewer, Role::Teacher, Role::Expert, Role::Admin] {
            let _ = write!(options, r#"<option value="{}"{}>{}</option>"#, r.as_str(), if r == u.role { " selected" } else { "" }, l.role(r));
        }
        let _ = write!(
            rows,
            r#"<tr data-user="{name}"><td>{name}</td><td>{display}</td><td><select class="user-role" data-user="{name}">{options}</select></td><td><label><input type="checkbox" class="user-disabled" data-user="{name}"{dis}> {l_dis}</label></td></tr>"#,
            name = esc(&u.name),
            display = esc(&u.display),
            dis = if u.disabled { " checked" } else { "" },
            l_dis = l.t("停用", "disabled"),
        );
    }
    let mut role_options = String::new();
    for r in [Role::Viewer, Role::Teacher, Role::Expert, Role::Admin] {
        let _ = write!(role_options, r#"<option value="{}"{}>{}</option>"#, r.as_str(), if r == Role::Teacher { " selected" } else { "" }, l.role(r));
    }
    section(
        body,
        "users",
        l.t("用户与角色", "Users and roles"),
        &format!(
            r#"<table id="users-table"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{rows}</tbody></table>
<form id="new-user"><input name="name" placeholder="{}" required maxlength="64"> <input name="display" placeholder="{}" maxlength="100"> <select name="role">{role_options}</select> <input name="password" type="password" placeholder="{}" minlength="8" required> <button type="submit">{}</button> <span class="msg" role="status"></span></form>"#,
            l.t("账号", "Account"),
            l.t("姓名", "Name"),
            l.t("角色", "Role"),
            l.t("状态", "State"),
            l.t("账号（字母数字）", "account (letters, digits)"),
            l.t("显示姓名", "display name"),
            l.t("初始密码（至少 8 位）", "first password (8+ characters)"),
            l.t("添加用户", "Add user"),
        ),
    );
}

/// Join tokens (cities and the province enroll children).
fn tokens_section(body: &mut String, l: Lang, tier: Tier, tokens: &[crate::trust::TokenInfo]) {
    // Join tokens (cities and the province enroll children).
    if tier != Tier::School {
        let mut rows = String::new();
        let now = now_ms();
        for t in tokens {
            let state = match (&t.used_by, t.expires_at < now) {
                (Some(by), _) => format!("{}{}", l.t("已使用：", "used by "), esc(by)),
                (None, true) => l.t("已过期", "expired").to_string(),
                (None, false) => format!("{}{}", l.t("有效至 ", "valid until "), china_time(t.expires_at)),
            };
            let _ = write!(rows, "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{state}</td></tr>", esc(&t.id), esc(&t.role), esc(&t.name));
        }
        let child = tier.child().unwrap_or(Tier::School);
        section(
            body,
            "tokens",
            l.t("加入令牌", "Join tokens"),
            &format!(
                r#"<p class="muted">{}</p><table id="tokens-table"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{rows}</tbody></table>
<form id="new-token" data-role="{}"><input name="name" placeholder="{}" required maxlength="200"> <select name="expires"><option value="24h">24 {}</option><option value="7d">7 {}</option></select> <button type="submit">{}</button> <span class="msg" role="status"></span></form><pre id="token-out" hidden></pre>"#,
                l.t("下级节点管理员用一次性令牌执行 youke enroll --parent 地址 --token 令牌 加入本节点。", "A child node's operator joins with a one-time token: youke enroll --parent ADDRESS --token TOKEN."),
                l.t("编号", "Id"),
                l.t("角色", "Role"),
                l.t("节点名称", "Node name"),
                l.t("状态", "State"),
                child.as_str(),
                match child {
                    Tier::City => l.t("市级节点名称，如 石家庄市教育局", "city node's name"),
                    _ => l.t("学校名称，如 石家庄市第一中学", "school's name"),
                },
                l.t("小时", "hours"),
                l.t("天", "days"),
                l.t("生成令牌", "Make a token"),
            ),
        );
    }
}

/// The link's media rate schedule and the form that changes it.
fn link_section(body: &mut String, l: Lang, link: &crate::link_settings::LinkSettings) {
    // The link's rate schedule.
    section(
        body,
        "link",
        l.t("链路计划与限速", "Link schedule and rate limits"),
        &format!(
            r#"<p>{} <code id="schedule-now">{}</code> <span class="muted">{}</span></p>
<form id="link-form"><input name="schedule" size="50" value="{}" placeholder="08:00-17:30 2Mbit/s, otherwise unlimited"> <button type="submit">{}</button> <button type="button" id="link-reset">{}</button> <span class="msg" role="status"></span></form>"#,
            l.t("视频上传计划：", "Media upload schedule:"),
            esc(&link.upload_schedule),
            {
                let from = if link.source == "runtime" { l.t("控制台/命令行设置", "set at runtime") } else { l.t("配置文件", "the config file") };
                match l {
                    Lang::Zh => format!("（来源：{from}；当前速率：{}）", esc(&link.current_rate)),
                    Lang::En => format!("(from {from}; rate now: {})", esc(&link.current_rate)),
                }
            },
            esc(&link.upload_schedule),
            l.t("保存", "Save"),
            l.t("恢复配置文件的计划", "Back to the config file's"),
        ),
    );
}

/// The quarantine and the audit log.
fn logs_section(body: &mut String, l: Lang, quarantine: &[crate::ingest::Quarantined], audit: &[accounts::AuditEntry]) {
    // Quarantine and audit log.
    let mut q = String::new();
    for item in quarantine {
        let _ = write!(q, "<tr><td>{}</td><td>{}</td><td class=\"muted\">{}</td><td>{}</td></tr>", esc(&item.name), esc(&item.reason), esc(&item.path), china_time(item.at));
    }
    if quarantine.is_empty() {
        let _ = write!(q, r#"<tr><td colspan="4" class="muted">{}</td></tr>"#, l.t("没有被隔离的文件", "nothing is quarantined"));
    }
    section(
        body,
        "quarantine",
        l.t("隔离区", "Quarantine"),
        &table("quarantine-table", &[l.t("文件", "File"), l.t("原因", "Reason"), l.t("存放位置", "Kept at"), l.t("时间", "When")], &q),
    );
    let mut a = String::new();
    for e in audit {
        let _ = write!(
            a,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"muted\">{}</td></tr>",
            china_time(e.at),
            esc(&e.user),
            esc(&e.action),
            esc(&e.target),
            esc(&e.address)
        );
    }
    section(
        body,
        "audit",
        l.t("审计日志（最近 100 条）", "Audit log (latest 100)"),
        &table("audit-table", &[l.t("时间", "When"), l.t("用户", "User"), l.t("操作", "Action"), l.t("对象", "Target"), l.t("地址", "Address")], &a),
    );
}

/// `GET /admin`: the console.
pub async fn page(State(state): State<AppState>, Extension(auth): Extension<Auth>) -> Result<Html<String>, ApiError> {
    let l = auth.lang;
    let (live, storage, users, tokens, link, quarantine, audit) = blocking(&state, |ctx| {
        Ok((
            live(ctx)?,
            storage(ctx)?,
            ctx.store.read(accounts::list_users)?,
            ctx.store.read(crate::trust::list_tokens)?,
            crate::link_settings::show(ctx)?,
            ctx.store.read(crate::ingest::quarantined)?,
            ctx.store.read(|c| accounts::audit_log(c, 100))?,
        ))
    })
    .await?;
    let tier = state.ctx.writer.tier;
    let mut body = heading(l, tier);
    tree_section(&mut body, l, &live);
    storage_section(&mut body, l, &storage, &state.ctx.config.forecast);
    users_section(&mut body, l, &users);
    tokens_section(&mut body, l, tier, &tokens);
    link_section(&mut body, l, &link);
    logs_section(&mut body, l, &quarantine, &audit);
    body.insert_str(0, r#"<div id="console">"#);
    body.push_str("</div>");
    Ok(layout(&state, &auth, l.t("管理控制台", "Admin console"), "", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: &str) -> NodeHealth {
        crate::health::test_node(id, parent, Tier::School, true)
    }

    #[test]
    fn the_tree_is_drawn_depth_first_from_this_node_and_survives_loops() {
        let tree = vec![node("p", ""), node("c2", "p"), node("c1", "p"), node("s1", "c1"), node("s2", "c2"), node("x", "y"), node("loop", "loop")];
        let rows: Vec<(usize, &str)> = tree_rows(&tree).into_iter().map(|(d, n)| (d, n.node_id.as_str())).collect();
        assert_eq!(rows, [(0, "p"), (1, "c1"), (2, "s1"), (1, "c2"), (2, "s2")], "nodes not under this one are left out");
    }
}
