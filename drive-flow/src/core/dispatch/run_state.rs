//! [`RunState`]: the dispatch state of one in-process run, shared by the threads that
//! complete its events without a run-wide lock (see [`cells`](crate::core::graph::cells)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    complete, complete_fan_out, fires, fires_packed, DispatchState, EventRun, Listeners, Member,
    Starts,
};
use crate::core::error::Error;
use crate::core::flow::{AnyValue, ErasedFlow};
use crate::core::graph::cells::{
    is_packed, Cells, GroupState, MemberCount, NodeCell, Outcome, TaskCells, Writers,
};
use crate::core::graph::{Graph, GroupId, GroupInfo, NodeId};
use crate::core::input::{BareInput, Entries, Entry, EventInput, Latest};
use crate::core::lock::lock;
use crate::core::trace::RunTrace;

/// The dispatch state of one run: a cell per event and per group, taken from the graph's
/// pool, so that a run costs what it touches whatever the size of the graph. Every method
/// takes `&self`: completions on different threads update it at once, meeting only at
/// the cells they share (an event, a join).
pub(crate) struct RunState {
    graph: Arc<Graph>,
    cells: Cells,
    /// Task ids given so far: the run's start is 1, and every event a completion starts
    /// takes the next, so that this is also how many events the run triggered.
    next_task_id: AtomicU64,
    /// Who completes its events (and so triggers them): one task, or many threads.
    writers: Writers,
    /// Goto jumps and, in a timed run, every event run's times: for the run's pictures.
    /// Locked at the first jump of each (source, target) pair (the later ones are counted
    /// in the source's cell) and per event of a timed run only.
    trace: Mutex<RunTrace>,
    /// How many times the trace was locked (tests).
    #[cfg(test)]
    pub(crate) trace_locked: std::sync::atomic::AtomicUsize,
}

impl RunState {
    /// The state of a run whose events are completed and triggered by `writers`: its own
    /// task alone ([`Writers::One`]: an inline run), or any thread.
    pub(crate) fn new(graph: Arc<Graph>, writers: Writers) -> Self {
        let cells = graph.cells.take(graph.nodes.len());
        RunState {
            graph,
            cells,
            writers,
            next_task_id: AtomicU64::new(0),
            trace: Mutex::new(RunTrace::default()),
            #[cfg(test)]
            trace_locked: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many members of the join of group `group` completed, as the run's cells count
    /// them (tests).
    #[cfg(test)]
    pub(crate) fn join_ready(&self, group: GroupId) -> Option<u32> {
        let join = self.graph.cells.join(group)?;
        Some(self.cells.join_ready(join))
    }

    /// Who completes the run's events: its own task alone, or any thread.
    pub(crate) fn writers(&self) -> Writers {
        self.writers
    }

    /// The cell of `node` (its counts and latest outcome); the run triggered it before.
    pub(crate) fn event(&self, node: NodeId) -> &NodeCell {
        self.cells.node(node)
    }

    /// The latest outcome of `node` and how many times it completed, as the run's cells
    /// keep them (tests).
    #[cfg(test)]
    pub(crate) fn outcome(&self, node: NodeId) -> &Mutex<crate::core::graph::cells::Outcome> {
        self.cells.outcome(node)
    }

    /// Count a trigger of `node`, listing its cell as touched by the run the first time:
    /// how many triggers it had before. Every event is triggered before it completes.
    pub(crate) fn trigger(&self, node: NodeId) -> u32 {
        self.cells.trigger(node, self.writers)
    }

    /// How many events the run triggered so far (task ids given).
    pub(crate) fn triggered(&self) -> u64 {
        self.next_task_id.load(Ordering::Relaxed)
    }

    /// The event triggered most often so far, with that count (ties: the last registered).
    pub(crate) fn most_triggered(&self) -> Option<(NodeId, u32)> {
        let cells = &self.cells;
        cells
            .touched_nodes()
            .map(|node| (cells.node(node).triggered(), node))
            .filter(|&(triggered, _)| triggered > 0)
            .max()
            .map(|(triggered, node)| (node, triggered))
    }

    /// What the run records for its pictures.
    pub(crate) fn trace(&self) -> MutexGuard<'_, RunTrace> {
        #[cfg(test)]
        self.trace_locked.fetch_add(1, Ordering::Relaxed);
        lock(&self.trace)
    }

    /// What the task of a run with one writer keeps for it (its memory that of an earlier
    /// run over the same cells): taken once, at the start of the run.
    pub(crate) fn take_task_cells(&self) -> TaskCells {
        self.cells.take_task()
    }

    /// Give back what the run's task kept, once the run's results are taken: it goes back
    /// to the pool with the cells.
    pub(crate) fn keep_task_cells(&self, task: TaskCells) {
        self.cells.keep_task(task);
    }

    /// The input of the run's start event, with a task id (the runner attaches the graph
    /// again if its body takes it).
    pub(crate) fn start_input(&self, input: EventInput) -> BareInput {
        let mut input = input.into_bare();
        input.task_id = self.new_task_id();
        input
    }

    /// The next task id (the run's start takes 1).
    fn new_task_id(&self) -> u64 {
        self.new_task_ids(1)
    }

    /// `count` task ids in a row: the first.
    fn new_task_ids(&self, count: u64) -> u64 {
        self.writers
            .add(&self.next_task_id, count, Ordering::Relaxed)
            + 1
    }

    /// Record that `node` finished with `flow`, and push onto `starts` what runs next,
    /// listeners in registration order (see [`complete`]). `goto_targets`: scratch space.
    /// `kept`: where the run's task keeps its events' outcomes and its joins' states, if it
    /// does (a run with one writer); else they are in the run's cells, under their locks.
    pub(crate) fn complete(
        &self,
        node: NodeId,
        flow: &mut ErasedFlow,
        starts: &mut impl Starts,
        goto_targets: &mut Vec<NodeId>,
        kept: Option<&mut TaskCells>,
    ) -> Result<(), Error> {
        complete(
            &self.graph,
            &mut Shared { run: self, kept },
            goto_targets,
            node,
            flow,
            starts,
        )
    }

    /// [`complete`](Self::complete) for a wide fan-out's root that produced `value` (see
    /// [`complete_fan_out`]): its listeners, queued as one.
    pub(crate) fn complete_fan_out(
        &self,
        node: NodeId,
        value: AnyValue,
        kept: Option<&mut TaskCells>,
    ) -> Listeners {
        complete_fan_out(&self.graph, &mut Shared { run: self, kept }, node, value)
    }

    /// Whether the run touched at least half of the graph's events: its cells are then
    /// about the size of a list of what it touched (its results may hold them).
    pub(crate) fn touched_half(&self) -> bool {
        self.cells.touched_half()
    }

    /// The cell of `node` and its retries, if the run touched it (triggered it).
    pub(crate) fn touched(&self, node: NodeId) -> Option<(&NodeCell, u32)> {
        let cell = self.cells.node(node);
        (cell.triggered() > 0).then(|| (cell, cell.retries.load(Ordering::Acquire)))
    }

    /// What the run recorded, once its events are over (tests): the graph, its entries
    /// (see [`take_events`](Self::take_events)) and its trace.
    #[cfg(test)]
    pub(crate) fn take_parts(
        &self,
        kept: Option<&mut TaskCells>,
    ) -> (Arc<Graph>, Vec<EventRun>, RunTrace) {
        let trace = self.take_trace();
        let events = self.take_events(&trace, kept);
        (self.graph.clone(), events, trace)
    }

    /// An entry for every event the run touched, once its events are over, in the order of
    /// their ids, their latest outcomes moved out (from `kept` for those its task kept),
    /// their times in flight from `trace`.
    pub(crate) fn take_events(
        &self,
        trace: &RunTrace,
        mut kept: Option<&mut TaskCells>,
    ) -> Vec<EventRun> {
        self.list_events(trace, |node, cell| {
            let in_task = kept
                .as_deref_mut()
                .and_then(|kept| kept.take_outcome(cell.listed_at()));
            in_task.unwrap_or_else(|| std::mem::take(&mut *lock(self.cells.outcome(node))))
        })
    }

    /// The run's trace, once its events are over, with every goto jump counted.
    pub(crate) fn take_trace(&self) -> RunTrace {
        let mut trace = std::mem::take(&mut *self.trace());
        trace.count_more(|source, target| self.cells.node(source).gotos.jumps_to(target));
        trace
    }

    /// An entry for every event the run touched, in the order of their ids, its outcome
    /// from `outcome`, its times in flight from `trace` (a timed run's).
    pub(crate) fn list_events(
        &self,
        trace: &RunTrace,
        mut outcome: impl FnMut(NodeId, &NodeCell) -> Outcome,
    ) -> Vec<EventRun> {
        let cells = &self.cells;
        let mut events: Vec<EventRun> = cells
            .touched_nodes_by_id()
            .into_iter()
            .map(|node| {
                let cell = cells.node(node);
                let Outcome {
                    latest,
                    completions,
                } = outcome(node, cell);
                EventRun {
                    node,
                    completions,
                    triggered: cell.triggered(),
                    attempts: completions.saturating_add(cell.retries.load(Ordering::Acquire)),
                    nanos: 0,
                    latest,
                }
            })
            .collect();
        // A timed run's times in flight, from its timeline: every event run of a timed run
        // is on it (no cell keeps a sum: an untimed run, most, would carry it for nothing).
        for run in &trace.timeline {
            if let Ok(at) = events.binary_search_by_key(&run.node, |event| event.node) {
                let nanos = run.ended.saturating_duration_since(run.began).as_nanos();
                let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
                events[at].nanos = events[at].nanos.saturating_add(nanos);
            }
        }
        events
    }

    /// The graph the run runs.
    pub(crate) fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }
}

impl Drop for RunState {
    /// Give the cells back to the graph (which resets what this run touched).
    fn drop(&mut self) {
        // An empty set in its place allocates nothing.
        let cells = std::mem::replace(&mut self.cells, Cells::empty());
        // A run with one writer is an inline run, every completion of which is made in its
        // task with the cells the task keeps (`complete`'s `kept`): the cells' own outcomes
        // and joins' states were not written.
        let kept_in_task = self.writers == Writers::One;
        self.graph.cells.give_back(cells, kept_in_task);
    }
}

/// A member's completion as its join sees it: the join, and the member's place in it.
struct JoinAt<'g> {
    graph: &'g Graph,
    group: &'g GroupInfo,
    /// The join's number among the cells' joins.
    join: u32,
    /// The member's place in the group.
    index: usize,
    /// The join's listener reads its members' outcomes.
    results: bool,
}

impl JoinAt<'_> {
    /// Record the member's completion (`count`: as the join's countdown counted it, or
    /// [`MemberCount::Uncounted`]) in the join's `state` (locked, or kept by the run's
    /// task), and say whether the join fires: with its members' latest outcomes, in group
    /// order, if its listener reads them.
    #[inline(always)] // (two callers: the task's state, whose count is known, and the locked)
    fn completed(
        &self,
        cells: &Cells,
        state: &mut GroupState,
        count: MemberCount,
        outcome: &Latest,
    ) -> Option<Entries> {
        let JoinAt {
            graph,
            group,
            join,
            index,
            results,
        } = *self;
        let GroupState {
            ready,
            delivered,
            slots,
        } = state;
        // The member's first completion as this group sees them (the group's lock, or the
        // run's one task, orders the completions of its members; a counted join's count
        // says which is the first). Its outcome is kept for a listener that reads it only.
        let own = slots.get_mut(index)?;
        let first = match count {
            MemberCount::Uncounted => !std::mem::replace(&mut own.completed, true),
            // Counted without the lock: every member has completed now.
            MemberCount::Completes => {
                *ready = group.slots.len() as u32;
                false
            }
            MemberCount::Counted | MemberCount::Again => false,
        };
        let member = Member {
            first,
            was_delivered: std::mem::take(&mut own.delivered),
            value: outcome.is_value(),
        };
        if results {
            match count {
                MemberCount::Uncounted => own.latest = Some(outcome.clone()),
                // Kept as it was counted.
                MemberCount::Counted | MemberCount::Completes => {}
                MemberCount::Again => cells.keep_outcome(join, index, outcome),
            }
        }
        if !fires(group, ready, delivered, member) {
            return None;
        }
        if !results {
            for slot in slots.iter_mut() {
                slot.delivered = true;
            }
            return Some(Entries::Empty);
        }
        // Every member has completed, so each has a latest outcome (kept apart by a counted
        // join); an exact-size iterator lets the results be allocated once.
        let counted = count != MemberCount::Uncounted;
        Some(Entries::collect(
            slots
                .iter_mut()
                .zip(graph.members(group))
                .enumerate()
                .map(|(index, (slot, &node))| {
                    slot.delivered = true;
                    let latest = if counted {
                        cells.kept_outcome(join, index)
                    } else {
                        slot.latest.clone()
                    };
                    Entry {
                        node,
                        latest: latest.unwrap_or(Latest::ABORT),
                    }
                }),
        ))
    }
}

/// A member's first completion that completed its counted join's set, being recorded
/// under the join's lock: said recorded when dropped, on every way out
/// ([`Cells::counted`]).
struct Counted<'a>(&'a Cells, u32, usize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.counted(self.1, self.2);
    }
}

/// The state seen by one completion: the run's, and the cells its task keeps, if it keeps
/// them.
struct Shared<'a> {
    run: &'a RunState,
    kept: Option<&'a mut TaskCells>,
}

impl DispatchState for Shared<'_> {
    #[inline(always)]
    fn keeps_packed(&self, group: &GroupInfo) -> bool {
        is_packed(group)
    }

    fn packed_member_completed(
        &mut self,
        graph: &Graph,
        (group_id, group): (GroupId, &GroupInfo),
        slot: u32,
        outcome: &Latest,
    ) -> bool {
        // Small, and no outcome to keep: its state in one word, without a lock. (A group
        // handed here has two or more members, so it has a cell.)
        let Some(join) = graph.cells.join(group_id) else {
            return false;
        };
        let bit = 1u32 << (slot - group.slots.start);
        let value = outcome.is_value();
        self.run
            .cells
            .update_packed(join, self.run.writers, |completed, delivered| {
                fires_packed(group, completed, delivered, bit, value)
            })
            .unwrap_or(false)
    }

    fn member_completed(
        &mut self,
        graph: &Graph,
        group_id: GroupId,
        slot: u32,
        _node: NodeId,
        outcome: &Latest,
    ) -> Option<Entries> {
        let group = graph.group(group_id);
        if is_packed(group) {
            // Taken by `packed_member_completed` (not reached from `complete`).
            let fired = self.packed_member_completed(graph, (group_id, group), slot, outcome);
            // (`then`, not `then_some`: an `Entries` made before the test is dropped when
            // the join does not fire.)
            return fired.then(|| Entries::Empty);
        }
        let cells = &self.run.cells;
        // A group handed here has two or more members, so it has a cell.
        let join = graph.cells.join(group_id)?;
        let results = self.hands_results(group);
        let index = (slot - group.slots.start) as usize;
        let at = JoinAt {
            graph,
            group,
            join,
            index,
            results,
        };
        let Some(kept) = self.kept.as_deref_mut() else {
            // A wide join counts its members' first completions without its lock (keeping
            // their outcomes apart); only the last of them, and later ones, take it.
            let count = cells.count_member(join, index, group.slots.len() as u32, outcome);
            if count == MemberCount::Counted {
                return None;
            }
            // (Declared before the guard, so dropped after it: a later completion of the
            // member waits for this one to be recorded.)
            let _counted = (count == MemberCount::Completes).then(|| Counted(cells, join, index));
            let mut guard = cells.lock_group(join, self.run.writers);
            return at.completed(cells, &mut guard, count, outcome);
        };
        // Kept by the run's task: no lock.
        let state = cells.task_group(join, group.slots.len(), results, kept);
        at.completed(cells, state, MemberCount::Uncounted, outcome)
    }

    fn hands_results(&self, group: &GroupInfo) -> bool {
        group.results_read
    }

    #[inline(always)] // (once per completion: the dispatch core calls it last)
    fn record(&mut self, node: NodeId, latest: Latest) {
        let cell = self.run.event(node);
        debug_assert!(cell.triggered() > 0, "event {node} completed untriggered");
        if let Some(kept) = self.kept.as_deref_mut() {
            // Kept by the run's task: no lock.
            let outcome = kept.outcome_at(cell.listed_at());
            outcome.completions += 1;
            outcome.latest = Some(latest);
            return;
        }
        let previous = {
            let mut outcome = lock(self.run.cells.outcome(node));
            outcome.completions += 1;
            outcome.latest.replace(latest)
        };
        drop(previous); // outside the lock: it may be the last reference to a large value
    }

    fn task_id(&mut self) -> u64 {
        self.run.new_task_id()
    }

    fn task_ids(&mut self, count: u64) -> u64 {
        self.run.new_task_ids(count)
    }

    fn goto_jumped(&mut self, source: NodeId, target: NodeId) {
        // After a pair's first jump (counted in the trace, in the order pairs first jump),
        // its source's cell counts its jumps: no lock per turn of a loop.
        let gotos = &self.run.event(source).gotos;
        let spill = |jumps| self.run.trace().goto_n(source, target, jumps);
        if !gotos.count(target, self.run.writers, spill) {
            let mut trace = self.run.trace();
            trace.goto_n(source, target, 1);
            gotos.adopt(target);
        }
    }
}
