//! What a run records for its pictures ([`Results::to_mermaid`](crate::Results::to_mermaid),
//! [`Results::to_gantt`](crate::Results::to_gantt)): the goto jumps it made, counted per
//! (source, target), and, in a [timed](crate::Invoke::timed) run only, the start and end of
//! every event run.
//!
//! Cheap by construction: a pair's first goto jump makes its entry here; the jumps after it
//! are counted in the source event's cell (`GotoCount`, no lock per turn of a loop) and
//! added in when the run ends; and an untimed run records no times at all.

use std::collections::HashMap;
use std::time::Instant;

use crate::core::graph::NodeId;

/// Past this many distinct goto pairs, they are found through a hash map rather than a scan.
const SCAN_UP_TO: usize = 16;

/// One event run of a timed run, as the runner saw it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimedRun {
    pub(crate) node: NodeId,
    pub(crate) task_id: u64,
    /// When it got its concurrency slot.
    pub(crate) began: Instant,
    /// When it ended.
    pub(crate) ended: Instant,
}

/// The run's record for its pictures. See the module docs.
#[derive(Default)]
pub(crate) struct RunTrace {
    /// The run's start event, once the runner set it.
    pub(crate) start: Option<NodeId>,
    /// Whether the run reads the clock ([`Invoke::timed`](crate::Invoke::timed)).
    pub(crate) timed: bool,
    /// (source, target, jumps), in the order the pairs first jumped.
    gotos: Vec<(NodeId, NodeId, u32)>,
    /// The pair that jumped last: a loop jumps along the same pair again and again.
    last: usize,
    /// Position of every pair in `gotos`, once there are more than [`SCAN_UP_TO`].
    index: Option<HashMap<(NodeId, NodeId), usize>>,
    /// Every event run of a timed run, in the order they ended.
    pub(crate) timeline: Vec<TimedRun>,
}

impl RunTrace {
    /// Count one goto jump from `source` to `target`.
    #[cfg(test)]
    pub(crate) fn goto(&mut self, source: NodeId, target: NodeId) {
        self.goto_n(source, target, 1);
    }

    /// Count `jumps` goto jumps from `source` to `target`.
    pub(crate) fn goto_n(&mut self, source: NodeId, target: NodeId, jumps: u32) {
        if let Some(entry) = self.gotos.get_mut(self.last) {
            if entry.0 == source && entry.1 == target {
                entry.2 = entry.2.saturating_add(jumps);
                return;
            }
        }
        let found = match &self.index {
            Some(index) => index.get(&(source, target)).copied(),
            None => self
                .gotos
                .iter()
                .position(|&(s, t, _)| s == source && t == target),
        };
        let at = match found {
            Some(at) => at,
            None => {
                self.gotos.push((source, target, 0));
                let at = self.gotos.len() - 1;
                if let Some(index) = &mut self.index {
                    index.insert((source, target), at);
                } else if self.gotos.len() > SCAN_UP_TO {
                    let index = self
                        .gotos
                        .iter()
                        .enumerate()
                        .map(|(at, &(s, t, _))| ((s, t), at))
                        .collect();
                    self.index = Some(index);
                }
                at
            }
        };
        self.last = at;
        let entry = &mut self.gotos[at];
        entry.2 = entry.2.saturating_add(jumps);
    }

    /// Add to each pair's count the jumps `more` says were counted elsewhere (in the
    /// source's cell: see `GotoCount`).
    pub(crate) fn count_more(&mut self, more: impl Fn(NodeId, NodeId) -> u32) {
        for (source, target, jumps) in &mut self.gotos {
            *jumps = jumps.saturating_add(more(*source, *target));
        }
    }

    /// Record one event run of a timed run.
    pub(crate) fn timed_run(&mut self, node: NodeId, task_id: u64, began: Instant, ended: Instant) {
        self.timeline.push(TimedRun {
            node,
            task_id,
            began,
            ended,
        });
    }

    /// The goto pairs with their counts, in the order they first jumped.
    pub(crate) fn gotos(&self) -> &[(NodeId, NodeId, u32)] {
        &self.gotos
    }
}

#[cfg(test)]
mod tests {
    use super::RunTrace;

    #[test]
    fn gotos_are_counted_per_pair_in_the_order_pairs_first_jump() {
        let mut trace = RunTrace::default();
        for (s, t) in [(1, 2), (1, 2), (2, 1), (1, 2), (1, 3), (2, 1)] {
            trace.goto(s, t);
        }
        assert_eq!(trace.gotos(), &[(1, 2, 3), (2, 1, 2), (1, 3, 1)]);
    }

    #[test]
    fn many_pairs_are_found_through_the_index() {
        let mut trace = RunTrace::default();
        for round in 0..3 {
            for t in 0..40 {
                trace.goto(7, t);
            }
            assert_eq!(trace.gotos().len(), 40, "round {round}");
        }
        assert!(trace.index.is_some());
        assert!(trace
            .gotos()
            .iter()
            .enumerate()
            .all(|(at, &(s, t, n))| s == 7 && t == at as u32 && n == 3));
    }
}
