//! Pictures of a graph: the dependency tree of `debug_string`.

use crate::core::graph::{Graph, NodeId};

/// The tree of SEMANTICS.md: each event shows its groups, each group its members,
/// recursively; an event already on the path from the root is marked ` <loop>`.
pub(crate) fn tree(graph: &Graph, root: NodeId) -> String {
    let mut out = String::new();
    let mut path = Vec::new();
    event(graph, root, "", &mut path, &mut out);
    out
}

fn event(graph: &Graph, node: NodeId, prefix: &str, path: &mut Vec<NodeId>, out: &mut String) {
    out.push_str(&graph.node(node).name);
    if path.contains(&node) {
        out.push_str(" <loop>\n");
        return;
    }
    out.push('\n');
    path.push(node);
    let groups: Vec<_> = graph.groups_of(node).collect();
    for (index, (_, group)) in groups.iter().enumerate() {
        let last_group = index + 1 == groups.len();
        out.push_str(prefix);
        out.push_str(if last_group { "└─ <" } else { "├─ <" });
        out.push_str(&group.name);
        out.push_str(">\n");
        let group_prefix = format!("{prefix}{}", if last_group { "    " } else { "│   " });
        let members = graph.members(group);
        for (position, &member) in members.iter().enumerate() {
            let last_member = position + 1 == members.len();
            out.push_str(&group_prefix);
            out.push_str(if last_member { "└─ " } else { "├─ " });
            let member_prefix =
                format!("{group_prefix}{}", if last_member { "   " } else { "│  " });
            event(graph, member, &member_prefix, path, out);
        }
    }
    path.pop();
}
