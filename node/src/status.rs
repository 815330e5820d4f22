//! `youke status`: what a node is, how its parent link is doing, and what it holds and owes.

use crate::units::human_bytes;
use crate::context::{NodeCtx, NodeError};
use crate::store::now_ms;
use crate::documents::{self, Scope};
use crate::sync_state;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use youke_federation::transfers::TransferInfo;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub node_id: String,
    pub name: String,
    pub role: String,
    pub serving: bool,
    pub parent: Option<ParentLink>,
    pub children: Vec<ChildLink>,
    pub lessons: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Where new media blobs go: "local disk" or the bucket of [object_store].
    #[serde(default)]
    pub blob_store: String,
    /// Media blobs queued for the parent and not yet confirmed.
    pub pending_uploads: u64,
    pub pending_upload_bytes: u64,
    /// Documents the parent does not hold at their current version.
    pub pending_docs: u64,
    /// This node's newest change sequence number.
    pub doc_seq: u64,
    /// The first media uploads in queue order (competition entries first, then by share time).
    pub upload_queue: Vec<QueuedUpload>,
    /// Blob transfers running now (only known to the serving process).
    pub transfers: Vec<TransferInfo>,
    /// The media rate schedule of the link to the parent.
    pub link: crate::link_settings::LinkSettings,
    /// How links are secured: the node's place in the federation, or why it has none.
    #[serde(default)]
    pub trust: String,
    /// Node ids revoked in the part of the tree this node knows.
    #[serde(default)]
    pub revoked: u64,
    /// Media jobs (HLS ladders) per state.
    #[serde(default)]
    pub media_jobs: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedUpload {
    pub hash: String,
    pub lesson_id: Option<String>,
    pub title: Option<String>,
    pub size: u64,
    pub priority: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Milliseconds until the next attempt (0 when due).
    pub next_attempt_in_ms: i64,
}

/// How many queued uploads the status lists.
const QUEUE_SHOWN: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParentLink {
    pub addr: String,
    pub state: String,
    pub name: Option<String>,
    pub error: Option<String>,
    /// Milliseconds since the state was recorded.
    pub age_ms: Option<i64>,
    /// Milliseconds since documents last moved in either direction.
    pub last_sync_ms_ago: Option<i64>,
    /// Documents in the parent's scope it does not hold at their current version.
    pub pending_docs_up: u64,
    /// The parent's change sequence number up to which this node holds its scope down.
    pub down_seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildLink {
    pub node_id: String,
    pub name: String,
    pub tier: String,
    pub addr: String,
    pub connected: bool,
    pub last_seen_ms_ago: i64,
    pub last_sync_ms_ago: Option<i64>,
    /// Documents in the child's scope it does not hold at their current version.
    pub pending_docs_down: u64,
}

pub fn collect(ctx: &NodeCtx, serving: bool) -> Result<Status, NodeError> {
    ctx.store.read(|c| -> Result<Status, NodeError> {
        let now = now_ms();
        let parent = match &ctx.config.parent {
            None => None,
            Some(addr) => Some(parent_link(c, ctx.writer.tier, addr, serving, now)?),
        };
        let children = sync_state::children(c)?
            .into_iter()
            .map(|p| -> Result<ChildLink, NodeError> {
                let pending_docs_down = documents::pending(c, &p.node_id, Scope::Down { child: &p.node_id }, p.down_seq)?;
                Ok(ChildLink {
                    last_seen_ms_ago: now - p.last_seen,
                    last_sync_ms_ago: p.last_sync.map(|t| now - t),
                    node_id: p.node_id,
                    name: p.name,
                    tier: p.tier,
                    addr: p.addr,
                    connected: p.connected,
                    pending_docs_down,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let upload_queue = sync_state::upload_queue(c, now, QUEUE_SHOWN)?
            .into_iter()
            .map(|u| -> Result<QueuedUpload, NodeError> {
                let title = match &u.lesson_id {
                    Some(id) => crate::lessons::get(c, id)?.map(|l| l.title),
                    None => None,
                };
                Ok(QueuedUpload {
                    hash: u.hash,
                    lesson_id: u.lesson_id,
                    title,
                    size: u.size,
                    priority: u.priority,
                    attempts: u.attempts,
                    last_error: u.last_error,
                    next_attempt_in_ms: u.next_attempt_in_ms,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (blobs, blob_bytes) = crate::blob_index::totals(c)?;
        let (pending_uploads, pending_upload_bytes) = sync_state::pending_uploads(c)?;
        Ok(Status {
            upload_queue,
            transfers: ctx.transfers.snapshot(),
            link: crate::link_settings::show(ctx)?,
            trust: trust_summary(ctx),
            revoked: ctx.store.read(crate::trust::revoked_ids).map(|v| v.len() as u64).unwrap_or(0),
            media_jobs: ctx.store.read(crate::media_jobs::counts).map(|v| v.into_iter().collect()).unwrap_or_default(),
            doc_seq: crate::store::newest_seq(c)?,
            node_id: ctx.writer.node_id.clone(),
            name: ctx.writer.node_name.clone(),
            role: ctx.writer.tier.to_string(),
            serving,
            pending_docs: parent.as_ref().map_or(0, |p| p.pending_docs_up),
            parent,
            children,
            lessons: crate::lessons::count(c)?,
            blobs,
            blob_bytes,
            blob_store: ctx.blobs.remote().map_or_else(|| "local disk".to_string(), |r| r.describe().to_string()),
            pending_uploads,
            pending_upload_bytes,
        })
    })
}

/// The link to the configured parent: as the uplink last reported it (if it was about this
/// address), the cursors and what is still to go up.
fn parent_link(c: &rusqlite::Connection, tier: youke_federation::Tier, addr: &str, serving: bool, now: i64) -> Result<ParentLink, NodeError> {
    let not_running = || "not running".to_string();
    let mut link = match sync_state::link_state(c)? {
        Some(row) if row.parent_addr == addr => ParentLink {
            addr: row.parent_addr,
            state: if serving { row.state } else { not_running() },
            name: row.parent_name,
            error: row.error,
            age_ms: Some(now - row.updated_at),
            last_sync_ms_ago: None,
            pending_docs_up: 0,
            down_seq: 0,
        },
        _ => ParentLink {
            addr: addr.to_string(),
            state: if serving { "connecting".into() } else { not_running() },
            name: None,
            error: None,
            age_ms: None,
            last_sync_ms_ago: None,
            pending_docs_up: 0,
            down_seq: 0,
        },
    };
    let peer = sync_state::parent(c)?;
    let (peer_id, acked) = peer.as_ref().map_or(("", 0), |p| (p.node_id.as_str(), p.acked_seq));
    if let Some(tier) = tier.parent() {
        link.pending_docs_up = documents::pending(c, peer_id, Scope::Up { parent: tier, peer: peer_id }, acked)?;
    }
    if let Some(p) = &peer {
        link.down_seq = p.down_seq;
        link.last_sync_ms_ago = p.last_sync.map(|t| now - t);
    }
    Ok(link)
}

/// Prometheus text exposition of a node's status and link counters.
pub fn metrics(s: &Status, counters: &youke_federation::counters::LinkCounters) -> String {
    use youke_federation::counters::LinkCounters as C;
    fn label(v: &str) -> String {
        v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    }
    let mut o = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    gauge("youke_node_info", "This node's role and name.", "gauge", vec![(format!("{{role=\"{}\",name=\"{}\",node_id=\"{}\"}}", label(&s.role), label(&s.name), label(&s.node_id)), 1.0)]);
    gauge("youke_lessons", "Lessons this node holds.", "gauge", one(s.lessons as f64));
    gauge("youke_blobs", "Media blobs this node holds.", "gauge", one(s.blobs as f64));
    gauge("youke_blob_bytes", "Bytes of media this node holds.", "gauge", one(s.blob_bytes as f64));
    gauge("youke_doc_seq", "This node's newest document change sequence number.", "counter", one(s.doc_seq as f64));
    gauge("youke_uploads_pending", "Media blobs queued for the parent.", "gauge", one(s.pending_uploads as f64));
    gauge("youke_upload_bytes_pending", "Bytes of media queued for the parent.", "gauge", one(s.pending_upload_bytes as f64));
    if let Some(p) = &s.parent {
        gauge("youke_parent_link_up", "1 when the link to the parent is up.", "gauge", one(if p.state == "up" { 1.0 } else { 0.0 }));
        gauge("youke_docs_pending_up", "Documents the parent does not hold at their current version.", "gauge", one(p.pending_docs_up as f64));
        if let Some(a) = p.last_sync_ms_ago {
            gauge("youke_parent_sync_age_seconds", "Seconds since documents last moved on the parent link.", "gauge", one(a as f64 / 1000.0));
        }
    }
    let child_labels = |c: &ChildLink| format!("{{child=\"{}\",node_id=\"{}\"}}", label(&c.name), label(&c.node_id));
    gauge("youke_child_link_up", "1 when the child's link is up.", "gauge", s.children.iter().map(|c| (child_labels(c), if c.connected { 1.0 } else { 0.0 })).collect());
    gauge("youke_child_docs_pending_down", "Documents in the child's scope it does not hold at their current version.", "gauge", s.children.iter().map(|c| (child_labels(c), c.pending_docs_down as f64)).collect());
    gauge(
        "youke_child_sync_age_seconds",
        "Seconds since the child last synced.",
        "gauge",
        s.children.iter().filter_map(|c| c.last_sync_ms_ago.map(|a| (child_labels(c), a as f64 / 1000.0))).collect(),
    );
    let dir = |sent: u64, received: u64| vec![("{direction=\"sent\"}".to_string(), sent as f64), ("{direction=\"received\"}".to_string(), received as f64)];
    gauge("youke_link_docs_total", "Document versions moved over links.", "counter", dir(C::get(&counters.docs_sent), C::get(&counters.docs_received)));
    gauge("youke_link_doc_bytes_total", "Bytes of document changes moved over links.", "counter", dir(C::get(&counters.doc_bytes_sent), C::get(&counters.doc_bytes_received)));
    gauge("youke_link_blob_bytes_total", "Bytes of media moved over links.", "counter", dir(C::get(&counters.blob_bytes_sent), C::get(&counters.blob_bytes_received)));
    gauge("youke_link_blobs_total", "Media blobs moved over links, verified.", "counter", dir(C::get(&counters.blobs_sent), C::get(&counters.blobs_received)));
    gauge(
        "youke_link_sessions_total",
        "Links that completed their hello: to the parent (up) and from children (down).",
        "counter",
        vec![("{direction=\"up\"}".to_string(), C::get(&counters.links_up) as f64), ("{direction=\"down\"}".to_string(), C::get(&counters.links_from_children) as f64)],
    );
    gauge("youke_peers_refused_total", "Peers refused: certificate, hello, revoked, version, too many handshakes.", "counter", one(C::get(&counters.peers_refused) as f64));
    gauge("youke_peers_garbage_total", "Peers disconnected for sending garbage.", "counter", one(C::get(&counters.peers_garbage) as f64));
    gauge("youke_quic_garbage_datagrams_total", "Datagrams on the federation port that are not QUIC of this federation (scans, floods, stray traffic).", "counter", one(C::get(&counters.garbage_datagrams) as f64));
    gauge(
        "youke_enrollments_total",
        "Enrollments of child nodes.",
        "counter",
        vec![
            ("{result=\"enrolled\"}".to_string(), C::get(&counters.enrollments) as f64),
            ("{result=\"refused\"}".to_string(), C::get(&counters.enrollments_refused) as f64),
        ],
    );
    gauge(
        "youke_media_jobs",
        "Media jobs (HLS ladders) per state.",
        "gauge",
        ["queued", "running", "done", "failed", "cancelled"].iter().map(|st| (format!("{{state=\"{st}\"}}"), s.media_jobs.get(*st).copied().unwrap_or(0) as f64)).collect(),
    );
    gauge("youke_revoked_nodes", "Nodes revoked in the part of the tree this node knows.", "gauge", one(s.revoked as f64));
    let t_labels = |t: &TransferInfo| {
        let dir = serde_json::to_value(t.direction).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        format!("{{hash=\"{}\",direction=\"{dir}\",peer=\"{}\"}}", label(&t.hash), label(&t.peer))
    };
    gauge("youke_transfers_active", "Blob transfers running now.", "gauge", one(s.transfers.len() as f64));
    gauge("youke_transfer_done_bytes", "Bytes of the blob held so far, per running transfer.", "gauge", s.transfers.iter().map(|t| (t_labels(t), t.done as f64)).collect());
    gauge("youke_transfer_size_bytes", "Size of the blob, per running transfer.", "gauge", s.transfers.iter().map(|t| (t_labels(t), t.size as f64)).collect());
    gauge("youke_transfer_rate_bytes_per_second", "Rate of the running transfer over this attempt.", "gauge", s.transfers.iter().map(|t| (t_labels(t), t.rate)).collect());
    gauge(
        "youke_transfer_eta_seconds",
        "Seconds to completion at the current rate.",
        "gauge",
        s.transfers.iter().filter_map(|t| t.eta_secs.map(|e| (t_labels(t), e))).collect(),
    );
    o
}

/// One line on how this node's links are secured.
fn trust_summary(ctx: &NodeCtx) -> String {
    if ctx.config.trust == crate::config::TrustMode::DevPinned {
        return "development (self-signed certificates pinned on first contact; not for production)".into();
    }
    match youke_federation::pki::Enrollment::load(&ctx.data_dir) {
        Ok(Some(e)) => format!("federation, {} (root CA {})", e.place, &hex::encode(e.root_hash())[..16]),
        Ok(None) => "not enrolled (youke enroll --parent HOST:PORT --token TOKEN)".into(),
        Err(e) => format!("enrollment unreadable: {e}"),
    }
}

pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "node      {} ({}), id {}", s.name, s.role, s.node_id);
    if !s.trust.is_empty() {
        let _ = writeln!(o, "trust     {}", s.trust);
    }
    if !s.media_jobs.is_empty() {
        let jobs: Vec<String> = s.media_jobs.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = writeln!(o, "transcode {} (youke media jobs)", jobs.join(", "));
    }
    let _ = writeln!(o, "serving   {}", if s.serving { "yes" } else { "no (run `youke serve`)" });
    match &s.parent {
        None => {
            let _ = writeln!(o, "parent    none");
        }
        Some(p) => {
            let name = p.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let age = p.age_ms.map(|a| format!(", as of {:.0}s ago", a as f64 / 1000.0)).unwrap_or_default();
            let err = p.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            let _ = writeln!(o, "parent    {}{} {}{}{}", p.addr, name, p.state, err, age);
            let sync = p.last_sync_ms_ago.map(|a| format!("{:.0}s ago", a as f64 / 1000.0)).unwrap_or_else(|| "never".into());
            let _ = writeln!(o, "          last sync {sync}, {} document(s) waiting to go up", p.pending_docs_up);
        }
    }
    for c in &s.children {
        let sync = c.last_sync_ms_ago.map(|a| format!("{:.0}s ago", a as f64 / 1000.0)).unwrap_or_else(|| "never".into());
        let _ = writeln!(
            o,
            "child     {} ({}) at {}: {}, last sync {sync}, {} document(s) waiting to go down",
            c.name,
            c.tier,
            c.addr,
            if c.connected { "connected" } else { "offline" },
            c.pending_docs_down
        );
    }
    let _ = writeln!(o, "lessons   {}", s.lessons);
    let _ = writeln!(o, "media     {} blobs, {} (on {})", s.blobs, human_bytes(s.blob_bytes), s.blob_store);
    let _ = writeln!(
        o,
        "pending   {} blob(s) ({}) and {} document(s) to replicate to the parent",
        s.pending_uploads,
        human_bytes(s.pending_upload_bytes),
        s.pending_docs
    );
    if s.parent.is_some() {
        let _ = writeln!(o, "rate      {} (now {}, from {}, times in UTC{})", s.link.upload_schedule, s.link.current_rate, s.link.source, s.link.utc_offset);
    }
    for u in &s.upload_queue {
        let title = u.title.as_deref().unwrap_or("(unknown lesson)");
        let first = if u.priority > 0 { " [competition]" } else { "" };
        let retry = match (&u.last_error, u.attempts) {
            (Some(e), n) if n > 0 => format!(", failed {n}x, retry in {:.0}s: {e}", u.next_attempt_in_ms as f64 / 1000.0),
            _ => String::new(),
        };
        let _ = writeln!(o, "queued    {title} ({}){first}{retry}", human_bytes(u.size));
    }
    for t in &s.transfers {
        let _ = writeln!(o, "transfer  {}", transfer_line(t));
    }
    o
}

/// One line about a running transfer: what, how far, how fast, how long to go.
pub fn transfer_line(t: &TransferInfo) -> String {
    let pct = if t.size > 0 { t.done as f64 * 100.0 / t.size as f64 } else { 100.0 };
    let eta = t.eta_secs.map(|e| format!(", {:.0}s left", e)).unwrap_or_default();
    let verb = match t.direction {
        youke_federation::transfers::Direction::Upload => "to",
        youke_federation::transfers::Direction::Receive => "from",
        youke_federation::transfers::Direction::Fetch => "fetching from",
        youke_federation::transfers::Direction::Serve => "serving",
    };
    format!(
        "{} {verb} {}: {} of {} ({pct:.0}%) at {}/s{eta}",
        &t.hash[..12.min(t.hash.len())],
        t.peer,
        human_bytes(t.done),
        human_bytes(t.size),
        human_bytes(t.rate as u64)
    )
}

/// A time in milliseconds since the epoch as `YYYY-MM-DD HH:MM` UTC.
pub fn format_time(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!("{:04}-{:02}-{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()),
        Err(_) => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
}

