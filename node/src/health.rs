//! The node tree with each node's link health, sync lag and replication queue: what the admin
//! console shows and what a node reports to its parent (so a province sees its schools).
//!
//! A node knows itself and its children first-hand (its own status, its children's links); of
//! the nodes further down it knows what its children reported, aged by the time since.

use crate::context::{NodeCtx, NodeError};
use crate::store::Store;
use crate::store::now_ms;
use rusqlite::{Transaction, params};
use youke_federation::protocol::{MAX_HEALTH_NODES, NodeHealth};

/// This node first, then its children, then the nodes below them (as reported), at most
/// [`MAX_HEALTH_NODES`].
pub fn tree(ctx: &NodeCtx) -> Result<Vec<NodeHealth>, NodeError> {
    tree_from(&ctx.store, ctx.writer.tier, &crate::status::collect(ctx, true)?)
}

/// [`tree`] from a status already collected.
pub fn tree_from(store: &Store, tier: youke_federation::Tier, status: &crate::status::Status) -> Result<Vec<NodeHealth>, NodeError> {
    let now = now_ms();
    let parent_id: Option<String> = store.read(crate::sync_state::parent)?.map(|p| p.node_id);
    let reports: Vec<(String, String, i64)> = store.read(|c| {
        let mut st = c.prepare("SELECT child_id, nodes, received_at FROM subtree_health")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(NodeError::from)
    })?;
    let ms = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    let mut out = vec![NodeHealth {
        node_id: status.node_id.clone(),
        name: status.name.clone(),
        tier,
        parent_id: parent_id.unwrap_or_default(),
        connected: status.parent.as_ref().is_some_and(|p| p.state == "up"),
        age_ms: 0,
        last_sync_ms_ago: ms(status.parent.as_ref().and_then(|p| p.last_sync_ms_ago)),
        pending_docs: status.pending_docs,
        pending_uploads: status.pending_uploads,
        pending_upload_bytes: status.pending_upload_bytes,
        lessons: status.lessons,
    }];
    let mut below = Vec::new();
    for child in &status.children {
        let report: Vec<NodeHealth> = reports
            .iter()
            .find(|(id, _, _)| *id == child.node_id)
            .map(|(_, nodes, at)| {
                let since = (now - at).max(0) as u64;
                let mut nodes: Vec<NodeHealth> = serde_json::from_str(nodes).unwrap_or_default();
                // Reported ages were as of the report: older by the time since.
                for n in &mut nodes {
                    n.age_ms = n.age_ms.saturating_add(since);
                    n.last_sync_ms_ago = n.last_sync_ms_ago.map(|v| v.saturating_add(since));
                }
                nodes
            })
            .unwrap_or_default();
        let own = report.iter().find(|n| n.node_id == child.node_id);
        out.push(NodeHealth {
            node_id: child.node_id.clone(),
            name: child.name.clone(),
            tier: child.tier.parse().unwrap_or(youke_federation::Tier::School),
            parent_id: status.node_id.clone(),
            // The link as this node sees it, now; the queue as the child last reported it.
            connected: child.connected,
            age_ms: own.map_or(0, |n| n.age_ms),
            last_sync_ms_ago: ms(child.last_sync_ms_ago),
            pending_docs: own.map_or(0, |n| n.pending_docs),
            pending_uploads: own.map_or(0, |n| n.pending_uploads),
            pending_upload_bytes: own.map_or(0, |n| n.pending_upload_bytes),
            lessons: own.map_or(0, |n| n.lessons),
        });
        below.extend(report.into_iter().filter(|n| n.node_id != child.node_id && n.node_id != status.node_id));
    }
    out.extend(below);
    out.truncate(MAX_HEALTH_NODES);
    Ok(out)
}

/// The nodes whose state is not known here: those below a link that is down. What they last
/// reported is shown with its age, never as online.
pub fn stale(tree: &[NodeHealth]) -> std::collections::HashSet<String> {
    let Some(root) = tree.first() else { return Default::default() };
    let by_id: std::collections::HashMap<&str, &NodeHealth> = tree.iter().map(|n| (n.node_id.as_str(), n)).collect();
    let mut out = std::collections::HashSet::new();
    for n in tree.iter().skip(1) {
        // Up the reported parents to this node: any link down on the way makes it stale.
        let mut at = by_id.get(n.parent_id.as_str()).copied();
        let mut hops = 0;
        while let Some(p) = at {
            if p.node_id == root.node_id || hops > tree.len() {
                break;
            }
            if !p.connected {
                out.insert(n.node_id.clone());
                break;
            }
            at = by_id.get(p.parent_id.as_str()).copied();
            hops += 1;
        }
    }
    out
}

/// Keeps a child's latest report (only nodes claiming to be below it are kept).
pub fn store_report(tx: &Transaction<'_>, child_id: &str, nodes: &[NodeHealth]) -> Result<(), rusqlite::Error> {
    let kept: Vec<&NodeHealth> = nodes.iter().filter(|n| !n.node_id.is_empty()).take(MAX_HEALTH_NODES).collect();
    tx.execute(
        "INSERT INTO subtree_health (child_id, nodes, received_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (child_id) DO UPDATE SET nodes = excluded.nodes, received_at = excluded.received_at",
        params![child_id, serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into()), now_ms()],
    )?;
    Ok(())
}

/// A node of a tree, for tests.
#[cfg(test)]
pub(crate) fn test_node(id: &str, parent: &str, tier: youke_federation::Tier, connected: bool) -> NodeHealth {
    NodeHealth {
        node_id: id.into(),
        name: id.into(),
        tier,
        parent_id: parent.into(),
        connected,
        age_ms: 0,
        last_sync_ms_ago: None,
        pending_docs: 0,
        pending_uploads: 0,
        pending_upload_bytes: 0,
        lessons: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use youke_federation::Tier;

    fn node(id: &str, parent: &str, tier: Tier, connected: bool) -> NodeHealth {
        test_node(id, parent, tier, connected)
    }

    #[test]
    fn what_lies_below_a_link_that_is_down_is_stale() {
        // The province sees city c1 down and c2 up; c1's schools last reported being online.
        let tree = vec![
            node("p", "", Tier::Province, false),
            node("c1", "p", Tier::City, false),
            node("c2", "p", Tier::City, true),
            node("s1", "c1", Tier::School, true),
            node("s2", "c1", Tier::School, true),
            node("s3", "c2", Tier::School, true),
            node("s4", "c2", Tier::School, false),
        ];
        let mut stale: Vec<String> = stale(&tree).into_iter().collect();
        stale.sort();
        assert_eq!(stale, ["s1", "s2"]);
    }
}
