//! Child workflows in the pictures: an event declared to run a child workflow
//! ([`DriveBuilder::runs`](crate::DriveBuilder::runs), `runs = ..`) gets a box beside it
//! holding that workflow (what its start reaches through groups), and a thick arrow to the
//! child's start labelled `runs`.

use crate::core::graph::{Graph, NodeId};

/// One child workflow drawn in a box.
pub(super) struct ChildBox {
    /// The event that runs it.
    pub(super) runner: NodeId,
    /// Its start.
    pub(super) start: NodeId,
    /// The shown events inside the box, in registration order.
    pub(super) nodes: Vec<NodeId>,
}

/// The boxes of the declared child workflows whose runner and start are both `shown`. An
/// event belongs to one box at most (the first declaration that reaches it), and never to
/// the box of a workflow it runs.
pub(super) fn boxes(graph: &Graph, shown: &[bool]) -> (Vec<ChildBox>, Vec<u32>) {
    let mut boxed = vec![0u32; graph.nodes.len()];
    let mut boxes = Vec::new();
    for &(runner, start) in &graph.runs {
        if !shown[runner as usize] || !shown[start as usize] || boxed[start as usize] != 0 {
            continue;
        }
        let index = boxes.len() as u32 + 1;
        let mut inside = vec![start];
        let mut stack = vec![start];
        boxed[start as usize] = index;
        while let Some(node) = stack.pop() {
            for &(group, _) in graph.member_of(node) {
                let listener = graph.group(group).listener;
                let free = boxed[listener as usize] == 0 && listener != runner;
                if free && shown[listener as usize] {
                    boxed[listener as usize] = index;
                    inside.push(listener);
                    stack.push(listener);
                }
            }
        }
        inside.sort_unstable();
        boxes.push(ChildBox {
            runner,
            start,
            nodes: inside,
        });
    }
    (boxes, boxed)
}

/// The child starts that `node` is declared to run.
pub(super) fn starts_run_by(graph: &Graph, node: NodeId) -> impl Iterator<Item = NodeId> + '_ {
    graph
        .runs
        .iter()
        .filter(move |(runner, _)| *runner == node)
        .map(|&(_, start)| start)
}
