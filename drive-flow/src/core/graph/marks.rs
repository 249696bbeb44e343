//! Per-run index buffers, sized by the graph, kept by the graph between runs.
//!
//! A run needs O(1) access from an event, a group or a member slot to its state, but should
//! cost what it touches, not the size of the graph: a 10-event run in a drive of 100 000
//! events must not allocate and zero 100 000 entries. So the run's state is dense (one entry
//! per event or group it touched, in the order it touched them, see
//! [`RunState`](crate::core::dispatch::RunState)), and these buffers map a node or group id to its
//! entry (`0`: untouched). They are taken from the graph's pool when a run starts and given
//! back, reset entry by entry (only the entries the run set), when it ends.

use std::sync::Mutex;

use crate::core::lock::lock;

/// How many sets of buffers a graph keeps for later runs; more concurrent runs allocate
/// their own and drop them at the end.
const POOL_LIMIT: usize = 16;

/// Graphs up to this many nodes and slots have their buffers checked when given back, in
/// debug builds.
const CHECK_UP_TO: usize = 1 << 16;

/// One run's index buffers. All zero (`false`) when in the pool.
#[derive(Default)]
pub(crate) struct Marks {
    /// Per node: 1 + its position in the run's events, or 0.
    pub(crate) node: Vec<u32>,
    /// Per group: 1 + its position in the run's groups, or 0.
    pub(crate) group: Vec<u32>,
    /// Per member slot: whether that member's latest outcome was handed to its listener.
    pub(crate) delivered: Vec<bool>,
}

/// The graph's spare [`Marks`].
#[derive(Default)]
pub(crate) struct MarksPool {
    spare: Mutex<Vec<Marks>>,
}

impl MarksPool {
    /// Buffers for a run over a graph of this shape, all zero: reused if one is spare.
    pub(crate) fn take(&self, nodes: usize, groups: usize, slots: usize) -> Marks {
        let spare = lock(&self.spare).pop();
        spare.unwrap_or_else(|| Marks {
            // Zeroed allocations: the allocator hands out fresh pages as they are.
            node: vec![0; nodes],
            group: vec![0; groups],
            delivered: vec![false; slots],
        })
    }

    /// Keep `marks` for a later run. The caller has reset every entry it set.
    pub(crate) fn give_back(&self, marks: Marks) {
        // A full check costs the size of the graph: debug builds make it for graphs of the
        // size of tests, not for large ones where it would dominate every run.
        if cfg!(debug_assertions) && marks.node.len() + marks.delivered.len() <= CHECK_UP_TO {
            assert!(
                marks.node.iter().all(|&m| m == 0),
                "a run left an event marked"
            );
            assert!(
                marks.group.iter().all(|&m| m == 0),
                "a run left a group marked"
            );
            assert!(
                marks.delivered.iter().all(|&d| !d),
                "a run left a slot marked"
            );
        }
        let mut spare = lock(&self.spare);
        if spare.len() < POOL_LIMIT {
            spare.push(marks);
        }
    }
}
