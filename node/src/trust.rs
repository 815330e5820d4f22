//! Federation trust at the node: one-time join tokens, the children enrolled here, and
//! revocations.
//!
//! A parent admin creates a join token for a named child ([`create_token`]); the child redeems
//! it once at enrollment ([`redeem`], called by the link layer in the same transaction that
//! records the child). Revocations are a CRDT document per revoking node
//! (`revocations-<node id>`), published down the tree like announcements; every node
//! materializes the entries into the `revocations` table, keeping only those for places below
//! the issuer's own, and the running node mirrors the revoked ids into
//! [`youke_federation::pki::Revocations`], which its links check.

use crate::documents::{self, DocError, Kind, Routing, Writer, text};
use crate::config::{Config, TrustMode};
use crate::context::{NodeCtx, NodeError};
use youke_federation::NodeIdentity;
use crate::store::{StoreError, now_ms};
use automerge::{AutoCommit, ROOT, ReadDoc, transaction::Transactable};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_federation::Tier;
use std::path::Path;
use youke_federation::pki::{Enrollment, JoinToken, Place, Revocations};
use youke_federation::protocol::MAX_TEXT;

/// A join token as the parent lists it (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// First characters of the token's id, to tell tokens apart.
    pub id: String,
    pub role: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
}

/// The enrollment of this node, required for anything that issues or checks certificates.
pub fn enrollment(ctx: &NodeCtx) -> Result<Enrollment, NodeError> {
    Enrollment::load(&ctx.data_dir)
        .map_err(|e| NodeError::Invalid(e.to_string()))?
        .ok_or_else(|| NodeError::Invalid(not_enrolled(ctx.config.role)))
}

/// What to tell an operator whose node has no certificates yet.
pub fn not_enrolled(role: Tier) -> String {
    match role {
        Tier::Province => "this province node has no federation root yet; run `youke init --role province` on a fresh data directory".into(),
        _ => format!(
            "this {role} node is not enrolled in a federation: get a join token from its parent's admin \
             (`youke token create --role {role} --name NAME` there) and run `youke enroll --parent HOST:PORT --token TOKEN`"
        ),
    }
}

/// Creates a one-time join token for a child of `role` named `name`; returns the token text to
/// give to the child's admin.
pub fn create_token(ctx: &NodeCtx, role: Tier, name: &str, lifetime: Duration) -> Result<(String, TokenInfo), NodeError> {
    let e = enrollment(ctx)?;
    if e.place.tier().child() != Some(role) {
        return Err(NodeError::Invalid(match e.place.tier().child() {
            Some(c) => format!("this {} node enrolls {c} nodes only, not a {role}", e.place.tier()),
            None => "a school node has no children; join tokens are made by its city".into(),
        }));
    }
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_TEXT {
        return Err(NodeError::Invalid("--name must be the child's name, 1 to 1024 bytes".into()));
    }
    let token = JoinToken::generate(e.root_hash());
    let now = now_ms();
    let info = TokenInfo {
        id: token.id()[..12].to_string(),
        role: role.to_string(),
        name: name.to_string(),
        created_at: now,
        expires_at: now + lifetime.as_millis() as i64,
        used_at: None,
        used_by: None,
    };
    ctx.store.write(|tx| {
        tx.execute(
            "INSERT INTO join_tokens (id, role, name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token.id(), info.role, info.name, info.created_at, info.expires_at],
        )
        .map_err(StoreError::from)
    })?;
    Ok((token.encode(), info))
}

pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut st = conn.prepare("SELECT id, role, name, created_at, expires_at, used_at, used_by FROM join_tokens ORDER BY created_at DESC")?;
    let rows = st.query_map([], |r| {
        let id: String = r.get(0)?;
        Ok(TokenInfo {
            id: id.chars().take(12).collect(),
            role: r.get(1)?,
            name: r.get(2)?,
            created_at: r.get(3)?,
            expires_at: r.get(4)?,
            used_at: r.get(5)?,
            used_by: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Uses up a join token for a child, recording the child, in one transaction. Returns the name
/// the token was made for, or why it cannot be used.
pub fn redeem(tx: &Transaction<'_>, token_id: &str, child_id: &str, place: &str, now: i64) -> Result<Result<String, String>, StoreError> {
    let row: Option<(String, i64, Option<i64>, Option<String>)> = tx
        .query_row("SELECT name, expires_at, used_at, used_by FROM join_tokens WHERE id = ?1", [token_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((name, expires_at, used_at, used_by)) = row else {
        return Ok(Err("the join token is not one this node made (mistyped, or made by another node)".into()));
    };
    if used_at.is_some() {
        return Ok(Err(format!(
            "the join token was used already (by node {}); ask for a new one",
            used_by.unwrap_or_default()
        )));
    }
    if expires_at < now {
        return Ok(Err("the join token has expired; ask for a new one".into()));
    }
    tx.execute("UPDATE join_tokens SET used_at = ?1, used_by = ?2 WHERE id = ?3", params![now, child_id, token_id])?;
    tx.execute(
        "INSERT INTO enrolled (node_id, place, name, enrolled_at, token_id) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (node_id) DO UPDATE SET place = excluded.place, name = excluded.name, enrolled_at = excluded.enrolled_at, token_id = excluded.token_id",
        params![child_id, place, name, now, token_id],
    )?;
    Ok(Ok(name))
}

/// A child enrolled here.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolledChild {
    pub node_id: String,
    pub place: String,
    pub name: String,
    pub enrolled_at: i64,
    pub revoked: bool,
}

pub fn enrolled_children(conn: &Connection) -> Result<Vec<EnrolledChild>, StoreError> {
    let mut st = conn.prepare(
        "SELECT e.node_id, e.place, e.name, e.enrolled_at, EXISTS (SELECT 1 FROM revocations r WHERE r.node_id = e.node_id)
         FROM enrolled e ORDER BY e.enrolled_at",
    )?;
    let rows = st.query_map([], |r| Ok(EnrolledChild { node_id: r.get(0)?, place: r.get(1)?, name: r.get(2)?, enrolled_at: r.get(3)?, revoked: r.get(4)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A revocation in force at this node.
#[derive(Debug, Clone, Serialize)]
pub struct Revocation {
    pub node_id: String,
    pub place: String,
    pub name: String,
    pub reason: String,
    pub revoked_at: i64,
    /// Node id of the node that revoked it.
    pub issuer: String,
}

pub fn revocations(conn: &Connection) -> Result<Vec<Revocation>, StoreError> {
    let mut st = conn.prepare("SELECT node_id, place, name, reason, revoked_at, issuer FROM revocations ORDER BY revoked_at")?;
    let rows = st.query_map([], |r| {
        Ok(Revocation { node_id: r.get(0)?, place: r.get(1)?, name: r.get(2)?, reason: r.get(3)?, revoked_at: r.get(4)?, issuer: r.get(5)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn revocation_doc_id(node_id: &str) -> String {
    format!("revocations-{node_id}")
}

/// Revokes a child of this node (by node id or name): adds it to this node's revocation
/// document, which goes down the whole tree. Its links close within a second here.
pub fn revoke(ctx: &NodeCtx, node: &str, reason: &str) -> Result<Revocation, NodeError> {
    let e = enrollment(ctx)?;
    let reason = reason.trim();
    if reason.len() > MAX_TEXT {
        return Err(NodeError::Invalid("the reason is longer than 1024 bytes".into()));
    }
    let w = &ctx.writer;
    let r = ctx.store.write(|tx| -> Result<Revocation, NodeError> {
        let children: Vec<(String, String, String)> = {
            let mut st = tx.prepare("SELECT node_id, place, name FROM enrolled WHERE node_id = ?1 OR name = ?1")?;
            st.query_map([node], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?
        };
        let (node_id, place, name) = match children.len() {
            0 => return Err(NodeError::Invalid(format!("no child {node:?} was enrolled at this node (see `youke token list` and `youke children`)"))),
            1 => children.into_iter().next().ok_or_else(|| NodeError::Invalid(node.into()))?,
            _ => return Err(NodeError::Invalid(format!("several children are named {node:?}; revoke one by its node id"))),
        };
        Ok(add_revocation(tx, w, &e.place, &node_id, &place, &name, reason)?)
    })?;
    ctx.changed();
    Ok(r)
}

/// Adds an entry to this node's revocation document (creating it), in the caller's transaction.
pub fn add_revocation(
    tx: &Transaction<'_>,
    w: &crate::documents::Writer,
    issuer_place: &Place,
    node_id: &str,
    place: &str,
    name: &str,
    reason: &str,
) -> Result<Revocation, DocError> {
    let id = revocation_doc_id(&w.node_id);
    let mut doc = match documents::load(tx, w, Kind::Revocations, &id)? {
        Some(d) => d,
        None => {
            let mut d = w.new_doc();
            documents::put_header(&mut d, Kind::Revocations, &id, w)?;
            d.put(ROOT, "issuer_place", issuer_place.dns_name())?;
            d.put_object(ROOT, "entries", automerge::ObjType::Map)?;
            d
        }
    };
    let now = now_ms();
    put_entry(&mut doc, node_id, &[("place", place), ("name", name), ("reason", reason)], now)?;
    documents::commit(tx, w, &REVOCATIONS, &mut doc)?;
    Ok(Revocation { node_id: node_id.into(), place: place.into(), name: name.into(), reason: reason.into(), revoked_at: now, issuer: w.node_id.clone() })
}

fn put_entry(doc: &mut AutoCommit, node_id: &str, fields: &[(&str, &str)], now: i64) -> Result<(), DocError> {
    let entries = documents::child(doc, &ROOT, "entries").ok_or_else(|| DocError::BadDocument("revocations without entries".into()))?;
    let entry = doc.put_object(&entries, node_id, automerge::ObjType::Map)?;
    for (k, v) in fields {
        doc.put(&entry, *k, *v)?;
    }
    doc.put(&entry, "revoked_at", now)?;
    Ok(())
}

/// Revocation documents, for the document store.
#[derive(Debug)]
pub struct RevocationSchema;

pub static REVOCATIONS: RevocationSchema = RevocationSchema;

impl documents::Schema for RevocationSchema {
    fn kind(&self) -> Kind {
        Kind::Revocations
    }
    fn materialize(&self, tx: &Transaction<'_>, _: &Writer, doc: &AutoCommit, _: u64) -> Result<Routing, DocError> {
        materialize(tx, doc)
    }
}

/// Writes the rows of a revocation document (called by [`documents::commit`]): entries for
/// places below the issuer's own; others are ignored (a node can revoke only its subtree).
pub fn materialize(tx: &Transaction<'_>, doc: &AutoCommit) -> Result<Routing, DocError> {
    let issuer = text(doc, &ROOT, "origin_node").ok_or_else(|| DocError::BadDocument("missing origin_node".into()))?;
    let issuer_place = text(doc, &ROOT, "issuer_place").and_then(|p| Place::parse(&p).ok());
    let Some(issuer_place) = issuer_place.filter(|p| p.node_id() == issuer) else {
        return Err(DocError::BadDocument("a revocation document must name its issuer's place".into()));
    };
    tx.execute("DELETE FROM revocations WHERE issuer = ?1", [&issuer])?;
    if let Some(entries) = documents::child(doc, &ROOT, "entries") {
        for key in doc.keys(&entries) {
            let Some(entry) = documents::child(doc, &entries, &key) else { continue };
            let place = text(doc, &entry, "place").unwrap_or_default();
            let within = Place::parse(&place).ok().is_some_and(|p| p.node_id() == key && p != issuer_place && issuer_place.contains(&p));
            if !within {
                tracing::warn!(issuer = %issuer_place, node = %key, %place, "ignoring a revocation outside its issuer's subtree");
                continue;
            }
            tx.execute(
                "INSERT INTO revocations (node_id, issuer, place, name, reason, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key,
                    issuer,
                    place,
                    text(doc, &entry, "name").unwrap_or_default(),
                    text(doc, &entry, "reason").unwrap_or_default(),
                    documents::int(doc, &entry, "revoked_at").unwrap_or(0)
                ],
            )?;
        }
    }
    // Revocations never go up; they go down the whole tree below the node holding them.
    Ok(Routing { origin_node: issuer, share: Tier::School, published: true })
}

/// The node ids revoked anywhere this node knows of.
pub fn revoked_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut st = conn.prepare("SELECT DISTINCT node_id FROM revocations")?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Keeps the links' revocation list in step with the database (changed by documents from the
/// parent, or by `youke revoke` in another process), checking every second.
pub async fn watch(ctx: Arc<NodeCtx>, revocations: Arc<Revocations>, cancel: CancellationToken) {
    loop {
        let c = Arc::clone(&ctx);
        match tokio::task::spawn_blocking(move || c.store.read(revoked_ids)).await {
            Ok(Ok(ids)) => revocations.replace(ids),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read revocations"),
            Err(e) => tracing::warn!(error = %e, "cannot read revocations"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The identity this node's links use: its enrollment in the federation, or (development
/// trust, or a school with no parent) a self-signed certificate.
pub fn identity(ctx: &NodeCtx) -> Result<NodeIdentity, NodeError> {
    let dev = || NodeIdentity::load_or_create(&ctx.data_dir, &ctx.writer.node_id).map_err(NodeError::from);
    if ctx.config.trust == TrustMode::DevPinned {
        return dev();
    }
    match youke_federation::pki::Enrollment::load(&ctx.data_dir).map_err(|e| NodeError::Invalid(e.to_string()))? {
        Some(e) => {
            if e.place.node_id() != ctx.writer.node_id || e.place.tier() != ctx.config.role {
                return Err(NodeError::Invalid(format!(
                    "the enrollment in {} is for the {} node {}, but this data directory is the {} node {}; enroll it again",
                    ctx.data_dir.display(),
                    e.place.tier(),
                    e.place.node_id(),
                    ctx.config.role,
                    ctx.writer.node_id
                )));
            }
            Ok(NodeIdentity::from_enrollment(e))
        }
        // A school on its own (no parent) links to nobody; it may run before enrolling.
        None if ctx.config.role == youke_federation::Tier::School && ctx.config.parent.is_none() => dev(),
        None => Err(NodeError::Invalid(not_enrolled(ctx.config.role))),
    }
}

/// Makes `dir` a member of the federation before its first start, as `youke init --role
/// province` does for a province, and `youke token create` at the parent plus `youke enroll`
/// at the child do for the others: enrollment runs over the network against the running
/// `parent`. For the demo, benchmarks and tests on one machine. Does nothing for a node that is
/// enrolled already or uses development trust.
pub async fn join_locally(dir: &Path, config: &Config, parent: Option<(&NodeCtx, std::net::SocketAddr)>) -> Result<(), NodeError> {
    let pki = |e: youke_federation::pki::PkiError| NodeError::Invalid(e.to_string());
    if config.trust == TrustMode::DevPinned || Enrollment::load(dir).map_err(pki)?.is_some() {
        return Ok(());
    }
    let node_id = NodeCtx::open(dir, config.clone())?.writer.node_id.clone();
    let e = match parent {
        None => youke_federation::pki::create_federation(&node_id, &config.name).map_err(pki)?,
        Some((parent_ctx, parent_quic)) => {
            let (token, _) = create_token(parent_ctx, config.role, &config.name, Duration::from_secs(600))?;
            let token = JoinToken::parse(&token).map_err(pki)?;
            let mut addr = parent_quic;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            youke_federation::link::enroll(&addr.to_string(), &token, &node_id).await?
        }
    };
    e.save(dir).map_err(pki)
}
