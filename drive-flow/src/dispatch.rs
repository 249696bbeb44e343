//! The dispatch core: SEMANTICS step 3 in one place. Plain synchronous code, no async:
//! given the state of a run and "event E finished with outcome O", it says what to start
//! next. The runner feeds it completions; tests drive it directly.

use std::sync::Arc;

use crate::error::Error;
use crate::flow::{ErasedFlow, Flow};
use crate::graph::{Graph, NodeId, Retrigger};
use crate::input::{Behavior, Entry, EventInput, Latest, Origin};

/// An event to start, with its input.
pub(crate) struct Start {
    pub(crate) node: NodeId,
    pub(crate) input: EventInput,
}

/// The dispatch state of one run.
pub(crate) struct RunState {
    graph: Arc<Graph>,
    /// Per event: its latest outcome, once it has completed in this run.
    latest: Vec<Option<Latest>>,
    /// Per event: how many times it completed in this run.
    completions: Vec<u32>,
    /// Per group: how many members have completed at least once.
    ready_members: Vec<u32>,
    /// Per group: how many members' latest outcome was already handed to the group's listener.
    delivered_members: Vec<u32>,
    /// Per member slot: whether that member's latest outcome was handed to the group's listener.
    delivered: Vec<bool>,
    next_task_id: u64,
}

impl RunState {
    pub(crate) fn new(graph: Arc<Graph>) -> Self {
        RunState {
            latest: vec![None; graph.nodes.len()],
            completions: vec![0; graph.nodes.len()],
            ready_members: vec![0; graph.groups.len()],
            delivered_members: vec![0; graph.groups.len()],
            delivered: vec![false; graph.slots.len()],
            next_task_id: 0,
            graph,
        }
    }

    pub(crate) fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// The input of the run's start event, with the graph attached and a task id.
    pub(crate) fn start_input(&mut self, mut input: EventInput) -> EventInput {
        input.graph = Some(self.graph.clone());
        input.task_id = self.task_id();
        input
    }

    fn task_id(&mut self) -> u64 {
        self.next_task_id += 1;
        self.next_task_id
    }

    /// Record that `node` finished with `flow`, and push onto `starts` what runs next,
    /// listeners in registration order.
    ///
    /// # Errors
    /// [`Error::UnknownEvent`] when a goto names an event outside the graph; nothing is
    /// started then.
    pub(crate) fn complete(
        &mut self,
        node: NodeId,
        flow: ErasedFlow,
        starts: &mut Vec<Start>,
    ) -> Result<(), Error> {
        let graph = self.graph.clone();
        let goto_targets = match &flow {
            Flow::Goto { targets, .. } => {
                let mut resolved = Vec::with_capacity(targets.len());
                for target in targets {
                    resolved.push(graph.resolve(target.0).ok_or_else(|| Error::UnknownEvent {
                        event: graph.describe(target.0),
                        detail: format!(" (goto target of `{}`)", graph.node(node).name),
                    })?);
                }
                resolved
            }
            _ => Vec::new(),
        };

        // Overwrite the state, whatever the outcome: the event has run, and none of its
        // listeners has seen this outcome yet.
        let first = self.latest[node as usize].is_none();
        let latest = match flow {
            Flow::Value(value) => Latest::Value(value),
            Flow::Goto { payload, .. } => Latest::Goto(payload),
            Flow::Abort => Latest::Abort,
        };
        self.latest[node as usize] = Some(latest.clone());
        self.completions[node as usize] += 1;
        for &(group, slot) in graph.member_of(node) {
            if first {
                self.ready_members[group as usize] += 1;
            }
            if std::mem::take(&mut self.delivered[slot as usize]) {
                self.delivered_members[group as usize] -= 1;
            }
        }

        match latest {
            Latest::Abort => {}
            Latest::Goto(payload) => {
                for target in goto_targets {
                    let input = EventInput {
                        graph: Some(graph.clone()),
                        origin: Origin::Goto,
                        behavior: Behavior::Goto,
                        entries: Arc::from(vec![Entry {
                            node,
                            latest: Latest::Value(payload.clone()),
                        }]),
                        user: None,
                        task_id: self.task_id(),
                    };
                    starts.push(Start {
                        node: target,
                        input,
                    });
                }
            }
            Latest::Value(_) => {
                for &(group_id, _) in graph.member_of(node) {
                    let group = graph.group(group_id);
                    let size = group.slots.len() as u32;
                    if self.ready_members[group_id as usize] < size {
                        continue; // some member has not run yet
                    }
                    if group.retrigger == Retrigger::All
                        && self.delivered_members[group_id as usize] > 0
                    {
                        continue; // fire again only once every member is fresh
                    }
                    let members = graph.members(group);
                    let entries: Arc<[Entry]> = members
                        .iter()
                        .filter_map(|&m| {
                            self.latest[m as usize]
                                .clone()
                                .map(|latest| Entry { node: m, latest })
                        })
                        .collect();
                    for slot in group.slots.clone() {
                        if !std::mem::replace(&mut self.delivered[slot as usize], true) {
                            self.delivered_members[group_id as usize] += 1;
                        }
                    }
                    let input = EventInput {
                        graph: Some(graph.clone()),
                        origin: Origin::Group(group_id),
                        behavior: Behavior::Dispatch,
                        entries,
                        user: None,
                        task_id: self.task_id(),
                    };
                    starts.push(Start {
                        node: group.listener,
                        input,
                    });
                }
            }
        }
        Ok(())
    }

    /// The final state: every event's latest outcome and completion count.
    pub(crate) fn into_parts(self) -> (Arc<Graph>, Vec<Option<Latest>>, Vec<u32>) {
        (self.graph, self.latest, self.completions)
    }
}
