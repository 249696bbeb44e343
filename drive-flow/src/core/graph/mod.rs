//! The graph of a drive, built once and indexed: for every event, the groups it is a member
//! of, so that finishing an event costs its fan-out and not the size of the registry.

pub(crate) mod cells;
pub(crate) mod diagram;
pub(crate) mod render;
pub(crate) mod view;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use crate::core::error::BuildError;
use crate::core::event::{EventKey, StaticEvent};
use crate::core::graph::cells::CellsPool;
use crate::core::options::EventOptions;

/// Index of an event in its graph.
pub(crate) type NodeId = u32;
/// Index of a (listener, group) pair in its graph.
pub(crate) type GroupId = u32;

/// The group name of a goto input.
pub(crate) const GOTO_GROUP: &str = "$goto";
/// The group name of a run's start input.
pub(crate) const USER_INPUT_GROUP: &str = "user_input";

/// How often a listener fires again once every member of its group has run.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn a() {}
/// #[event]
/// async fn b() {}
///
/// // Runs again each time `a` or `b` produces a new value (once both have run).
/// #[listen(a, b, retrigger = any)]
/// async fn on_any() {}
///
/// // Runs again only once both `a` and `b` have produced new values (the default).
/// #[listen(a, b, retrigger = all)]
/// async fn on_all() {}
/// # let _ = Retrigger::default();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Retrigger {
    /// Fire again only after every member has produced a fresh outcome (the default).
    #[default]
    All,
    /// Fire again on every fresh outcome of any member.
    Any,
}

impl Retrigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Retrigger::All => "all",
            Retrigger::Any => "any",
        }
    }
}

/// One event of a built graph. Its body lives beside the graph, in the runner's table of
/// bodies indexed by [`NodeId`]: the graph is ids, groups and options only.
pub(crate) struct Node {
    /// Its id; for an event of the macros whose id another event of the graph shares, the id
    /// followed by `@file:line:column`.
    pub(crate) name: Arc<str>,
    /// For an event of the macros, its metadata (id and definition site).
    pub(crate) meta: Option<&'static StaticEvent>,
    /// `None` for an event without timeout or retries (most events): a node stays small.
    pub(crate) options: Option<Box<EventOptions>>,
    /// Its metric handles, made the first time it ends (see [`crate::core::telemetry`]).
    pub(crate) metrics: crate::core::telemetry::MetricsSlot,
}

/// One group of one listener.
pub(crate) struct GroupInfo {
    pub(crate) listener: NodeId,
    pub(crate) name: Arc<str>,
    pub(crate) retrigger: Retrigger,
    /// Positions of the members in [`Graph::slots`].
    pub(crate) slots: Range<u32>,
    /// Whether the listener's body reads the results of its input (it takes an
    /// `EventInput`): an in-process run hands a body that does not an input without them
    /// (see `DispatchState::hands_results`).
    pub(crate) results_read: bool,
    /// Whether its join keeps its state in one word ([`cells::packs`]): read on every
    /// completion of a member, so decided once, here.
    pub(crate) packed: bool,
}

impl GroupInfo {
    /// The group of `listener` whose members are at `slots` in [`Graph::slots`].
    pub(crate) fn new(
        listener: NodeId,
        name: Arc<str>,
        retrigger: Retrigger,
        slots: Range<u32>,
        results_read: bool,
    ) -> Self {
        let packed = cells::packs(results_read, slots.len());
        GroupInfo {
            listener,
            name,
            retrigger,
            slots,
            results_read,
            packed,
        }
    }
}

/// How many listeners, each alone in its group, make an event's completion a fan-out
/// queued as one (see [`Graph::fans_out`]): fewer are queued one by one, as cheaply.
pub(crate) const FAN_OUT_MIN: usize = 16;

/// A built, validated, indexed graph. Immutable and shared by every run.
pub(crate) struct Graph {
    pub(crate) tag: u32,
    pub(crate) nodes: Vec<Node>,
    /// Groups, ordered by listener (in registration order), then by the listener's group order.
    pub(crate) groups: Vec<GroupInfo>,
    /// The members of every group, flattened.
    pub(crate) slots: Vec<NodeId>,
    /// `groups[listens[n]..listens[n + 1]]` are the groups event `n` listens to.
    pub(crate) listens: Vec<u32>,
    /// `member_of[member_of_start[n]..member_of_start[n + 1]]` are (group, slot) pairs where
    /// event `n` is a member, in registration order of the listeners.
    pub(crate) member_of_start: Vec<u32>,
    pub(crate) member_of: Vec<(GroupId, u32)>,
    /// Per event: whether it is a member of at least [`FAN_OUT_MIN`] groups, and alone in
    /// each (a wide fan-out's root): all its listeners fire on each of its values, and an
    /// inline run's task queues them as one (see `dispatch::Listeners`).
    pub(crate) fans_out: Vec<bool>,
    pub(crate) static_index: HashMap<usize, NodeId>,
    /// Whether any event takes a parameter that is checked before a run (a context, an inbox).
    pub(crate) needs_anything: bool,
    /// Run state cells kept for later runs (see [`crate::core::graph::cells`]).
    pub(crate) cells: CellsPool,
    /// (event, start of a child workflow it runs), as declared: drawn in the pictures.
    pub(crate) runs: Vec<(NodeId, NodeId)>,
}

impl Graph {
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    pub(crate) fn group(&self, id: GroupId) -> &GroupInfo {
        &self.groups[id as usize]
    }

    pub(crate) fn members(&self, group: &GroupInfo) -> &[NodeId] {
        &self.slots[group.slots.start as usize..group.slots.end as usize]
    }

    /// The groups event `id` listens to, in order (nearest `#[listen]` first).
    pub(crate) fn groups_of(&self, id: NodeId) -> impl Iterator<Item = (GroupId, &GroupInfo)> {
        let range = self.listens[id as usize]..self.listens[id as usize + 1];
        range.map(move |g| (g, &self.groups[g as usize]))
    }

    /// The (group, slot) pairs where event `id` is a member.
    pub(crate) fn member_of(&self, id: NodeId) -> &[(GroupId, u32)] {
        let start = self.member_of_start[id as usize] as usize;
        let end = self.member_of_start[id as usize + 1] as usize;
        &self.member_of[start..end]
    }

    /// Find an event of this graph.
    #[inline]
    pub(crate) fn resolve(&self, key: EventKey) -> Option<NodeId> {
        resolve_key(self.tag, self.nodes.len(), &self.static_index, key)
    }

    /// Check that no two events of the graph share an id (see
    /// [`Drive::check_unique_ids`](crate::Drive::check_unique_ids)).
    pub(crate) fn check_unique_ids(&self) -> Result<(), BuildError> {
        let mut seen: HashMap<&str, &StaticEvent> = HashMap::new();
        for meta in self.nodes.iter().filter_map(|node| node.meta) {
            if let Some(first) = seen.insert(meta.id, meta) {
                return Err(BuildError::AmbiguousEvent {
                    id: meta.id.to_string(),
                    first: first.site(),
                    second: meta.site(),
                });
            }
        }
        Ok(())
    }

    /// Describe a key for an error message, even when it is not in this graph.
    pub(crate) fn describe(&self, key: EventKey) -> String {
        match self.resolve(key) {
            Some(node) => format!("`{}`", self.node(node).name),
            None => describe_key(key),
        }
    }
}

#[inline]
pub(crate) fn resolve_key(
    tag: u32,
    len: usize,
    static_index: &HashMap<usize, NodeId>,
    key: EventKey,
) -> Option<NodeId> {
    match key {
        EventKey::Static(meta) => static_index.get(&(meta as *const _ as usize)).copied(),
        EventKey::Node { graph, node } => (graph == tag && (node as usize) < len).then_some(node),
    }
}

pub(crate) fn describe_key(key: EventKey) -> String {
    match key {
        EventKey::Static(meta) => format!("`{}`", meta.id),
        EventKey::Node { node, .. } => format!("a handle of another builder (node #{node})"),
    }
}
