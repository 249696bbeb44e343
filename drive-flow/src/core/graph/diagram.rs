//! Pictures of a graph for people: Mermaid flowcharts and Graphviz DOT, drawn from what the
//! graph knows (events and the groups they listen to). Goto targets are chosen at run time,
//! so they are not in the graph and not in the pictures.
//!
//! Both formats draw the same [`Scene`]:
//! - an event is a box labelled with its id, less the module path that every event shown
//!   shares; an event that listens to nothing (a start or goto target) has rounded corners;
//! - a group of one event is an arrow from the member to the listener, labelled with the
//!   group's name (its retrigger mode makes no difference with one member);
//! - a group of several events is a join: a hexagon labelled with the group's name and
//!   retrigger mode, a line from each member to it and an arrow from it to the listener;
//! - an arrow that closes a loop (found by a depth-first walk from the start events) is dotted;
//! - in the part reachable from one event, a member that the walk does not reach (a join
//!   would wait for it) has a dashed border.
//!
//! Everything is written in registration order, so the same graph gives the same text.

use std::fmt::Write;

use crate::core::graph::{Graph, GroupId, NodeId};

/// What a picture shows.
struct Scene {
    /// Events shown, in registration order.
    nodes: Vec<NodeId>,
    /// Groups shown, in graph order (by listener, then the listener's group order).
    groups: Vec<GroupId>,
    /// Per event of the graph: its label (empty when not shown).
    labels: Vec<String>,
    /// Per event of the graph: shown but not reached from the start of the picture.
    outside: Vec<bool>,
    /// Per group of the graph, per member position: whether that arrow closes a loop.
    closes_loop: Vec<Vec<bool>>,
}

impl Scene {
    /// Every event and group of the graph.
    fn whole(graph: &Graph) -> Self {
        let shown = vec![true; graph.nodes.len()];
        let reached = shown.clone();
        let groups = (0..graph.groups.len() as GroupId).collect();
        Scene::new(graph, shown, reached, groups, None)
    }

    /// What a run started at `start` can reach through groups: every listener of a group
    /// that has a reached member, with every member of such a group (those not reached are
    /// marked as outside).
    fn from(graph: &Graph, start: NodeId) -> Self {
        let mut reached = vec![false; graph.nodes.len()];
        reached[start as usize] = true;
        let mut stack = vec![start];
        let mut group_shown = vec![false; graph.groups.len()];
        while let Some(node) = stack.pop() {
            for &(group, _) in graph.member_of(node) {
                group_shown[group as usize] = true;
                let listener = graph.group(group).listener;
                if !std::mem::replace(&mut reached[listener as usize], true) {
                    stack.push(listener);
                }
            }
        }
        let mut shown = reached.clone();
        let mut groups = Vec::new();
        for (group, _) in group_shown.iter().enumerate().filter(|(_, shown)| **shown) {
            groups.push(group as GroupId);
            for &member in graph.members(graph.group(group as GroupId)) {
                shown[member as usize] = true;
            }
        }
        Scene::new(graph, shown, reached, groups, Some(start))
    }

    fn new(
        graph: &Graph,
        shown: Vec<bool>,
        reached: Vec<bool>,
        groups: Vec<GroupId>,
        start: Option<NodeId>,
    ) -> Self {
        let nodes: Vec<NodeId> = (0..graph.nodes.len() as NodeId)
            .filter(|&n| shown[n as usize])
            .collect();
        let labels = labels(graph, &nodes);
        let outside = shown
            .iter()
            .zip(&reached)
            .map(|(&shown, &reached)| shown && !reached)
            .collect();
        let closes_loop = loops(graph, &nodes, &groups, start);
        Scene {
            nodes,
            groups,
            labels,
            outside,
            closes_loop,
        }
    }
}

/// Whether an event listens to nothing (it runs as a start or a goto target only).
fn is_entry(graph: &Graph, node: NodeId) -> bool {
    graph.groups_of(node).next().is_none()
}

/// Event ids less the leading module path segments that every shown event shares.
fn labels(graph: &Graph, nodes: &[NodeId]) -> Vec<String> {
    let modules = |node: NodeId| -> Vec<&str> {
        let name: &str = &graph.node(node).name;
        let mut segments: Vec<&str> = name.split("::").collect();
        segments.pop();
        segments
    };
    let mut common: Option<Vec<&str>> = None;
    for &node in nodes {
        let segments = modules(node);
        common = Some(match common {
            None => segments,
            Some(prefix) => prefix
                .into_iter()
                .zip(segments)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    let skip: usize = common
        .unwrap_or_default()
        .iter()
        .map(|segment| segment.len() + 2)
        .sum();
    let mut labels = vec![String::new(); graph.nodes.len()];
    for &node in nodes {
        let name: &str = &graph.node(node).name;
        labels[node as usize] = name.get(skip..).unwrap_or(name).to_string();
    }
    labels
}

/// Mark every member → listener arrow that closes a loop: a depth-first walk over the shown
/// groups, from `start` (if any), then from the events that listen to nothing, then from
/// every other event, all in registration order. An arrow to an event still on the walk's
/// path closes a loop.
fn loops(
    graph: &Graph,
    nodes: &[NodeId],
    groups: &[GroupId],
    start: Option<NodeId>,
) -> Vec<Vec<bool>> {
    let mut closes_loop: Vec<Vec<bool>> = graph
        .groups
        .iter()
        .map(|group| vec![false; group.slots.len()])
        .collect();
    let mut group_shown = vec![false; graph.groups.len()];
    for &group in groups {
        group_shown[group as usize] = true;
    }
    // 0: not visited, 1: on the path, 2: done.
    let mut state = vec![0u8; graph.nodes.len()];
    let entries = nodes.iter().copied().filter(|&n| is_entry(graph, n));
    let roots = start
        .into_iter()
        .chain(entries)
        .chain(nodes.iter().copied());
    for root in roots {
        if state[root as usize] != 0 {
            continue;
        }
        state[root as usize] = 1;
        // (event, position in its member_of list)
        let mut path: Vec<(NodeId, usize)> = vec![(root, 0)];
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            let Some(&(group, slot)) = graph.member_of(node).get(*next) else {
                state[node as usize] = 2;
                path.pop();
                continue;
            };
            *next += 1;
            if !group_shown[group as usize] {
                continue;
            }
            let info = graph.group(group);
            let listener = info.listener;
            match state[listener as usize] {
                0 => {
                    state[listener as usize] = 1;
                    path.push((listener, 0));
                }
                1 => closes_loop[group as usize][(slot - info.slots.start) as usize] = true,
                _ => {}
            }
        }
    }
    closes_loop
}

/// The Mermaid flowchart of a scene.
fn mermaid(graph: &Graph, scene: &Scene) -> String {
    let mut out = String::from("flowchart TD\n");
    for &node in &scene.nodes {
        let label = mermaid_text(&scene.labels[node as usize]);
        if is_entry(graph, node) {
            let _ = writeln!(out, "    e{node}([\"{label}\"])");
        } else {
            let _ = writeln!(out, "    e{node}[\"{label}\"]");
        }
    }
    for &group in &scene.groups {
        let info = graph.group(group);
        let members = graph.members(info);
        let name = mermaid_text(&info.name);
        let listener = info.listener;
        let loops = &scene.closes_loop[group as usize];
        if let [member] = members {
            let arrow = if loops[0] { "-.->" } else { "-->" };
            let _ = writeln!(out, "    e{member} {arrow}|\"{name}\"| e{listener}");
        } else {
            let mode = info.retrigger.as_str();
            let _ = writeln!(out, "    g{group}{{{{\"{name} · {mode}\"}}}}");
            for (position, member) in members.iter().enumerate() {
                let line = if loops[position] { "-.-" } else { "---" };
                let _ = writeln!(out, "    e{member} {line} g{group}");
            }
            let _ = writeln!(out, "    g{group} --> e{listener}");
        }
    }
    let outside: Vec<String> = scene
        .nodes
        .iter()
        .filter(|&&n| scene.outside[n as usize])
        .map(|n| format!("e{n}"))
        .collect();
    if !outside.is_empty() {
        out.push_str("    classDef outside stroke-dasharray: 5 5\n");
        let _ = writeln!(out, "    class {} outside", outside.join(","));
    }
    out
}

/// The Graphviz DOT digraph of a scene.
fn dot(graph: &Graph, scene: &Scene) -> String {
    let mut out = String::from("digraph drive_flow {\n    node [shape=box];\n");
    for &node in &scene.nodes {
        let label = dot_text(&scene.labels[node as usize]);
        let style = match (is_entry(graph, node), scene.outside[node as usize]) {
            (false, false) => "",
            (true, false) => ", style=rounded",
            (false, true) => ", style=dashed",
            (true, true) => ", style=\"rounded,dashed\"",
        };
        let _ = writeln!(out, "    e{node} [label=\"{label}\"{style}];");
    }
    for &group in &scene.groups {
        let info = graph.group(group);
        let members = graph.members(info);
        let name = dot_text(&info.name);
        let listener = info.listener;
        let loops = &scene.closes_loop[group as usize];
        if let [member] = members {
            let style = if loops[0] { ", style=dotted" } else { "" };
            let _ = writeln!(
                out,
                "    e{member} -> e{listener} [label=\"{name}\"{style}];"
            );
        } else {
            let mode = info.retrigger.as_str();
            let _ = writeln!(
                out,
                "    g{group} [label=\"{name} · {mode}\", shape=hexagon];"
            );
            for (position, member) in members.iter().enumerate() {
                let style = if loops[position] {
                    ", style=dotted"
                } else {
                    ""
                };
                let _ = writeln!(out, "    e{member} -> g{group} [arrowhead=none{style}];");
            }
            let _ = writeln!(out, "    g{group} -> e{listener};");
        }
    }
    out.push_str("}\n");
    out
}

/// Text inside a quoted Mermaid label: characters Mermaid would read as markup become
/// entity codes.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#38;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            '|' => out.push_str("#124;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a quoted DOT string.
fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The whole graph as a Mermaid flowchart.
pub(crate) fn mermaid_whole(graph: &Graph) -> String {
    mermaid(graph, &Scene::whole(graph))
}

/// The part of the graph a run started at `start` reaches, as a Mermaid flowchart.
pub(crate) fn mermaid_from(graph: &Graph, start: NodeId) -> String {
    mermaid(graph, &Scene::from(graph, start))
}

/// The whole graph as a DOT digraph.
pub(crate) fn dot_whole(graph: &Graph) -> String {
    dot(graph, &Scene::whole(graph))
}

/// The part of the graph a run started at `start` reaches, as a DOT digraph.
pub(crate) fn dot_from(graph: &Graph, start: NodeId) -> String {
    dot(graph, &Scene::from(graph, start))
}

/// The picture of an event that is not in the graph: an empty one that says so.
pub(crate) fn mermaid_unknown(what: &str) -> String {
    format!(
        "flowchart TD\n    %% {} is not an event of this drive\n",
        one_line(what)
    )
}

/// The picture of an event that is not in the graph: an empty one that says so.
pub(crate) fn dot_unknown(what: &str) -> String {
    format!(
        "digraph drive_flow {{\n    // {} is not an event of this drive\n}}\n",
        one_line(what)
    )
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
