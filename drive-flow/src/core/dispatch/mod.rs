//! The dispatch core: SEMANTICS step 3 in one place. Plain synchronous code, no async:
//! given the state of a run and "event E finished with outcome O", it says what to start
//! next. The runners feed it completions; tests drive it directly.
//!
//! The rule is written per group ([`fires`]): "the member in this slot completed; does the
//! group fire?". A group of one member needs no state at all (it fires on every value of its
//! member); a larger group is updated, and read when it fires, under whatever guards that
//! one group in the state ([`DispatchState::member_completed`]): the in-process run's
//! [`RunState`] locks the group alone, so that completions of a run share no lock unless
//! they meet at a join; the durable runner works over the rows it loaded.

mod run_state;

use std::sync::Arc;

pub(crate) use run_state::RunState;

use crate::core::error::Error;
use crate::core::flow::{AnyValue, ErasedFlow, Flow};
use crate::core::graph::{Graph, GroupId, GroupInfo, NodeId, Retrigger};
use crate::core::input::{BareInput, Entries, Entry, Latest, Origin};

/// An event to start, with its input.
pub(crate) struct Start {
    pub(crate) node: NodeId,
    pub(crate) input: BareInput,
    /// The task id of the call whose completion triggered it (the group member that made the
    /// group fire, or the event that returned the goto); `0` for the run's start. Set by the
    /// runner, which knows the call, when its live stream reports it ([`complete`] leaves
    /// it `0`).
    pub(crate) cause: u64,
}

/// Where [`complete`] puts the starts it makes: a list (the durable runner's, a spawning
/// run's scratch), or a runner's own queue, which takes each start in its place (an inline
/// run's task queue: a start made on the side and then moved there would be copied once
/// more, and a wide fan-out's starts would be held twice at its peak).
pub(crate) trait Starts {
    /// Push the start `make` makes, at the back.
    fn push_with(&mut self, make: impl FnOnce() -> Start);
}

/// The listeners of a wide fan-out's root ([`Graph::fans_out`]) that one of its values
/// fires, all at once, queued as one ([`complete_fan_out`]): each is alone in its group,
/// so each fires on the value, in registration order, with the task ids taken for them at
/// the completion. An inline run's task makes their starts one by one as it starts them
/// ([`next_start`]): a capped fan-out of a million holds one of these (48 bytes) where it
/// held a million starts of 72 with their keys, and the graph's groups are read once, when
/// each starts.
///
/// [`next_start`]: Self::next_start
pub(crate) struct Listeners {
    /// The event that completed.
    node: NodeId,
    /// Its value, handed to the listeners that read their results.
    latest: Latest,
    /// The first of its `member_of` not started yet, and the end.
    next: u32,
    end: u32,
    /// The task id of the next to start (the others' follow it).
    task_id: u64,
}

impl Listeners {
    /// How many are left to start.
    pub(crate) fn len(&self) -> usize {
        (self.end - self.next) as usize
    }

    /// The first `count` of those left (all, if fewer are), as listeners of their own, with
    /// their task ids and the value; these keep the rest (a spawning run's parts: see
    /// `Shared::spawn_listeners`).
    pub(crate) fn split_front(&mut self, count: usize) -> Listeners {
        let count = u32::try_from(count).map_or(self.end - self.next, |count| {
            count.min(self.end - self.next)
        });
        let front = Listeners {
            node: self.node,
            latest: self.latest.clone(),
            next: self.next,
            end: self.next + count,
            task_id: self.task_id,
        };
        self.next += count;
        self.task_id += u64::from(count);
        front
    }

    /// The event and the task id of each start left, in order, without making them (what
    /// the run admits, at the completion).
    pub(crate) fn admitted<'g>(
        &self,
        graph: &'g Graph,
    ) -> impl Iterator<Item = (NodeId, u64)> + 'g {
        let of = &graph.member_of(self.node)[self.next as usize..self.end as usize];
        (self.task_id..)
            .zip(of)
            .map(|(task_id, &(group, _))| (graph.group(group).listener, task_id))
    }

    /// The start of the next one, if one is left: as [`complete`] would have made it (the
    /// value in its results if its listener reads them, as the in-process state's
    /// `hands_results` says).
    pub(crate) fn next_start(&mut self, graph: &Graph) -> Option<Start> {
        if self.next == self.end {
            return None;
        }
        let (group_id, _) = graph.member_of(self.node)[self.next as usize];
        let group = graph.group(group_id);
        let task_id = self.task_id;
        self.next += 1;
        self.task_id += 1;
        let entries = if group.results_read {
            Entries::One(Entry {
                node: self.node,
                latest: self.latest.clone(),
            })
        } else {
            Entries::Empty
        };
        Some(Start {
            node: group.listener,
            input: BareInput {
                origin: Origin::Group(group_id),
                entries,
                task_id,
            },
            cause: 0,
        })
    }
}

impl Starts for Vec<Start> {
    /// Made in its place: `push` would make it on the stack first and copy it at once, and
    /// the copy's wide loads wait for the narrow stores that made it (a store forwarding
    /// stall, tens of cycles on every start).
    #[inline]
    fn push_with(&mut self, make: impl FnOnce() -> Start) {
        self.extend(std::iter::once_with(make));
    }
}

/// What a run knows of one event it triggered or completed: a [`Results`](crate::Results)
/// entry, and the durable runner's loaded row.
/// Kept small (48 bytes): a run keeps one per event it touched.
pub(crate) struct EventRun {
    pub(crate) node: NodeId,
    /// How many times it completed.
    pub(crate) completions: u32,
    /// How many times it was triggered (the durable runner's budgets).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) triggered: u32,
    /// How many attempts it made (runs and retries), recorded by the runner.
    pub(crate) attempts: u32,
    /// Its total time in flight in nanoseconds, recorded by the runner for a timed run.
    pub(crate) nanos: u64,
    /// Its latest outcome, once it has completed in this run.
    pub(crate) latest: Option<Latest>,
}

impl EventRun {
    /// The entry of an event the run has not touched yet.
    #[cfg(feature = "postgres")]
    pub(crate) fn new(node: NodeId) -> Self {
        EventRun {
            node,
            completions: 0,
            triggered: 0,
            attempts: 0,
            nanos: 0,
            latest: None,
        }
    }
}

/// What the durable runner knows of one group one of whose members completed (a row).
#[cfg(feature = "postgres")]
#[derive(Default)]
pub(crate) struct GroupRun {
    /// How many members have completed at least once.
    pub(crate) ready: u32,
    /// How many members' latest outcome was already handed to the group's listener.
    pub(crate) delivered: u32,
    /// Whether the group ever fired (so some of its slots may be marked delivered).
    pub(crate) fired: bool,
}

/// One member's completion, as its group sees it.
#[derive(Clone, Copy)]
pub(crate) struct Member {
    /// It is the member's first completion in the run.
    pub(crate) first: bool,
    /// Its previous outcome had been handed to the group's listener.
    pub(crate) was_delivered: bool,
    /// It completed with a value (not a goto, not an abort).
    pub(crate) value: bool,
}

/// SEMANTICS step 3 for one group of more than one member, whose member just completed:
/// update the group's counts of members `ready` (completed at least once) and `delivered`
/// (their latest outcome handed to the listener), and say whether the group fires now. If
/// it does, every member's latest outcome counts as delivered from now on (the caller marks
/// each slot, and hands the listener every member's latest outcome, in group order).
pub(crate) fn fires(
    group: &GroupInfo,
    ready: &mut u32,
    delivered: &mut u32,
    member: Member,
) -> bool {
    if member.first {
        *ready += 1;
    }
    if member.was_delivered {
        *delivered -= 1;
    }
    let size = group.slots.len() as u32;
    if !member.value || *ready < size {
        return false; // not a value, or some member has not run yet
    }
    if group.retrigger == Retrigger::All && *delivered > 0 {
        return false; // fire again only once every member is fresh
    }
    *delivered = size;
    true
}

/// [`fires`] over a join's state packed as two sets of its members (bit `i` for its `i`-th
/// member, up to 32): those that `completed` at least once, and those whose latest outcome
/// was `delivered`; the member `bit` just completed, with a value or not. The new sets, and
/// whether the group fires now. The same rule (`fires_packed_agrees_with_fires` checks
/// every state of joins of up to four members): `ready` is the size of `completed`,
/// `delivered` that of `delivered`, and a member's first completion and delivered mark its
/// bits, without counting a set.
#[inline]
pub(crate) fn fires_packed(
    group: &GroupInfo,
    completed: u32,
    delivered: u32,
    bit: u32,
    value: bool,
) -> (u32, u32, bool) {
    // A packed join has at most 24 members (`cells::PACKED_MEMBERS`): no shift overflows.
    let members = group.slots.end.wrapping_sub(group.slots.start);
    debug_assert!(members as usize <= crate::core::graph::cells::PACKED_MEMBERS);
    let all = (1u32 << members) - 1;
    let completed = completed | bit;
    let delivered = delivered & !bit;
    if !value || completed != all {
        return (completed, delivered, false); // not a value, or some member has not run yet
    }
    if group.retrigger == Retrigger::All && delivered != 0 {
        return (completed, delivered, false); // fire again only once every member is fresh
    }
    (completed, all, true)
}

/// What the dispatch core reads and writes of a run. The in-process runner keeps all of it
/// in memory, shared by the threads that complete events ([`RunState`]); a durable runner
/// loads the rows of the event and of the groups it is a member of, lets [`complete`]
/// update them, and writes back what changed. One rule ([`fires`]), whatever holds the
/// state.
pub(crate) trait DispatchState {
    /// Whether this state keeps the join of `group` (a group of more than one member) in
    /// one word, without a lock (the in-process runner's packed joins: see
    /// `cells::packs`): its members' completions then go to
    /// [`packed_member_completed`](Self::packed_member_completed), the others' to
    /// [`member_completed`](Self::member_completed). (Two methods, so that the test is
    /// made in [`complete`], inlined, and the update returns a `bool` rather than an
    /// `Option<Entries>` through memory: the packed update's own cost is about that of a
    /// call.)
    #[inline(always)]
    fn keeps_packed(&self, group: &GroupInfo) -> bool {
        let _ = group;
        false
    }
    /// The member in `slot` of `group`, a join this state [keeps packed](Self::keeps_packed),
    /// completed with `outcome`: whether the join fires (its listener then gets an input
    /// without results).
    fn packed_member_completed(
        &mut self,
        graph: &Graph,
        group: (GroupId, &GroupInfo),
        slot: u32,
        outcome: &Latest,
    ) -> bool {
        let _ = (graph, group, slot, outcome);
        false
    }
    /// The member in `slot` of `group` (a group of more than one member), event `node`,
    /// completed with `outcome` (not recorded yet: [`record`](Self::record) comes after):
    /// apply [`fires`] to the group, under whatever guards it, and if it fires, give its
    /// listener's results: every member's latest outcome, in group order.
    fn member_completed(
        &mut self,
        graph: &Graph,
        group: GroupId,
        slot: u32,
        node: NodeId,
        outcome: &Latest,
    ) -> Option<Entries>;
    /// Record `latest` as the latest outcome of `node`, and count its completion.
    fn record(&mut self, node: NodeId, latest: Latest);
    /// A fresh task id for an event the completion starts.
    fn task_id(&mut self) -> u64;
    /// `count` fresh task ids in a row (`count` > 0), for the listeners of a fan-out
    /// queued as one: the first.
    fn task_ids(&mut self, count: u64) -> u64 {
        let first = self.task_id();
        for _ in 1..count {
            self.task_id();
        }
        first
    }
    /// Whether the inputs of `group`'s listener carry their results: an in-process run
    /// leaves them out for a body that does not read them (no `EventInput` parameter:
    /// nothing else reads them), and its joins' results are then not collected; a durable
    /// run stores every input whole.
    fn hands_results(&self, group: &GroupInfo) -> bool {
        let _ = group;
        true
    }
    /// Count a goto jump from `source` to `target`, for the pictures of the run (a state
    /// that draws none ignores it).
    fn goto_jumped(&mut self, source: NodeId, target: NodeId) {
        let _ = (source, target);
    }
}

/// SEMANTICS step 3: record in `state` that `node` finished with `flow`, and push onto
/// `starts` what runs next, listeners in registration order. `goto_targets` is scratch
/// space, reused from one goto to the next so that a goto allocates nothing here. `flow`
/// is lent: its value or its goto's payload is taken out (`()` is left in its place), and
/// the caller drops the rest.
///
/// # Errors
/// [`Error::UnknownEvent`] when a goto names an event outside the graph; nothing is
/// started or recorded then.
pub(crate) fn complete<S: DispatchState>(
    graph: &Arc<Graph>,
    state: &mut S,
    goto_targets: &mut Vec<NodeId>,
    node: NodeId,
    flow: &mut ErasedFlow,
    starts: &mut impl Starts,
) -> Result<(), Error> {
    goto_targets.clear();
    // Overwrite the state, whatever the outcome: the event has run, and none of its
    // listeners has seen this outcome yet. (One match: the flow's tag is read once. The
    // flow is lent and its value taken where it is: moved whole, it was copied at every
    // call on the way, each copy a load of what was just stored, which stalled.)
    let latest = match flow {
        Flow::Value(value) => Latest::value_of(std::mem::replace(value, AnyValue::UNIT)),
        Flow::Goto { targets, payload } => {
            for target in targets.iter() {
                goto_targets.push(graph.resolve(target.0).ok_or_else(|| Error::UnknownEvent {
                    event: graph.describe(target.0),
                    detail: format!(" (goto target of `{}`)", graph.node(node).name),
                })?);
            }
            Latest::goto_of(std::mem::replace(payload, AnyValue::UNIT))
        }
        Flow::Abort => Latest::ABORT,
    };
    // The results of an input from one member: its value.
    let one = |latest: Latest| Entries::One(Entry { node, latest });
    for &(group_id, slot) in graph.member_of(node) {
        let group = graph.group(group_id);
        let origin = Origin::Group(group_id);
        if group.slots.len() == 1 {
            // One member: it fires on every value, and needs no state.
            if latest.is_value() {
                let task_id = state.task_id();
                let results = state.hands_results(group);
                let entries = || {
                    if results {
                        one(latest.clone())
                    } else {
                        Entries::Empty
                    }
                };
                push_start(starts, group.listener, origin, task_id, entries);
            }
        } else if state.keeps_packed(group) {
            if state.packed_member_completed(graph, (group_id, group), slot, &latest) {
                let task_id = state.task_id();
                push_start(starts, group.listener, origin, task_id, || Entries::Empty);
            }
        } else if let Some(entries) = state.member_completed(graph, group_id, slot, node, &latest) {
            let task_id = state.task_id();
            push_start(starts, group.listener, origin, task_id, || entries);
        }
    }
    if let Some(payload) = latest.payload_as_value() {
        for &target in goto_targets.iter() {
            state.goto_jumped(node, target);
            let task_id = state.task_id();
            push_start(starts, target, Origin::Goto, task_id, || {
                one(payload.clone())
            });
        }
    }
    // The latest outcome moves into the state last: only a goto's payload and the values
    // handed to listeners were shared.
    state.record(node, latest);
    Ok(())
}

/// [`complete`] for a wide fan-out's root ([`Graph::fans_out`]) that produced `value`:
/// every listener fires, each alone in its group, and nothing else is dispatched (a value
/// has no goto targets). Its listeners are returned as one, for a run that starts them one
/// by one ([`Listeners::next_start`]), their task ids taken; its outcome is recorded.
pub(crate) fn complete_fan_out<S: DispatchState>(
    graph: &Graph,
    state: &mut S,
    node: NodeId,
    value: AnyValue,
) -> Listeners {
    debug_assert!(
        graph.fans_out[node as usize],
        "event {node} is no wide fan-out"
    );
    let latest = Latest::value_of(value);
    let count = graph.member_of(node).len() as u32;
    let task_id = state.task_ids(u64::from(count));
    let listeners = Listeners {
        node,
        latest: latest.clone(),
        next: 0,
        end: count,
        task_id,
    };
    state.record(node, latest);
    listeners
}

/// Push onto `starts` the start of `node`, with an input of `origin`, the task id
/// `task_id` and the results `entries` makes, made in its place (see [`Starts`]).
#[inline]
fn push_start(
    starts: &mut impl Starts,
    node: NodeId,
    origin: Origin,
    task_id: u64,
    entries: impl FnOnce() -> Entries,
) {
    starts.push_with(|| Start {
        node,
        // Without the graph: a runner attaches it for a body that takes its input.
        input: BareInput {
            origin,
            entries: entries(),
            task_id,
        },
        cause: 0,
    });
}

#[cfg(test)]
mod tests {
    //! The dispatch core driven by hand: completions go in, and every test asserts exactly
    //! which listeners start, through which group, with which behavior and which results.

    use std::sync::Arc;

    use super::{RunState, Start};
    use crate::core::error::Error;
    use crate::core::event::{EventRef, Handle};
    use crate::core::flow::{erase, Flow};
    use crate::core::graph::cells::{TaskCells, Writers};
    use crate::core::graph::Retrigger;
    use crate::core::input::{Behavior, EventInput, OutcomeKind};
    use crate::drive::builder::{DriveBuilder, Group};

    /// One result of a started event's input: member name, outcome kind, `i32` value.
    type Got = (String, OutcomeKind, Option<i32>);

    /// One start, as its event would see it.
    #[derive(Debug, PartialEq)]
    struct Started {
        event: String,
        group: String,
        behavior: Behavior,
        results: Vec<Got>,
    }

    fn dispatch(event: &str, group: &str, results: &[Got]) -> Started {
        Started {
            event: event.to_string(),
            group: group.to_string(),
            behavior: Behavior::Dispatch,
            results: results.to_vec(),
        }
    }

    fn goto(event: &str, from: &str, payload: i32) -> Started {
        Started {
            event: event.to_string(),
            group: String::from("$goto"),
            behavior: Behavior::Goto,
            results: vec![value(from, payload)],
        }
    }

    fn value(event: &str, value: i32) -> Got {
        (event.to_string(), OutcomeKind::Value, Some(value))
    }

    fn was_goto(event: &str) -> Got {
        (event.to_string(), OutcomeKind::Goto, None)
    }

    fn was_abort(event: &str) -> Got {
        (event.to_string(), OutcomeKind::Abort, None)
    }

    /// An event producing `i32`; its body is never called here. It takes its input: its
    /// starts carry their results.
    fn event(builder: &mut DriveBuilder, name: &str) -> Handle<i32> {
        builder.event(name, |_: EventInput| async { Flow::from(0) })
    }

    /// A run state over a built graph, fed completions by hand.
    struct Run {
        state: RunState,
        task_ids: Vec<u64>,
        /// The outcomes and joins' states, if kept by the run's task (as an inline run
        /// keeps them).
        kept: Option<TaskCells>,
    }

    impl Run {
        fn new(builder: DriveBuilder) -> Self {
            let graph = builder.into_graph().unwrap();
            Run {
                state: RunState::new(Arc::new(graph), Writers::Many),
                task_ids: Vec::new(),
                kept: None,
            }
        }

        /// A run with one writer, whose outcomes its task keeps.
        fn keeping(builder: DriveBuilder) -> Self {
            let graph = builder.into_graph().unwrap();
            Run {
                state: RunState::new(Arc::new(graph), Writers::One),
                task_ids: Vec::new(),
                kept: Some(TaskCells::default()),
            }
        }

        /// Per event, in definition order: its completions, triggers, attempts and latest
        /// value, as `Results` would see them.
        fn recorded(mut self) -> Vec<(u32, u32, u32, Option<i32>)> {
            let (graph, events, _) = self.state.take_parts(self.kept.as_mut());
            let mut recorded = vec![(0, 0, 0, None); graph.nodes.len()];
            for event in events {
                let value = event
                    .latest
                    .as_ref()
                    .and_then(|latest| latest.value_as::<i32>().copied());
                recorded[event.node as usize] =
                    (event.completions, event.triggered, event.attempts, value);
            }
            recorded
        }

        fn complete(&mut self, event: Handle<i32>, flow: Flow<i32>) -> Result<Vec<Started>, Error> {
            // A runner triggers every event before it completes it.
            self.state.trigger(event.node);
            let mut starts = Vec::new();
            let result = self.state.complete(
                event.node,
                &mut erase(flow),
                &mut starts,
                &mut Vec::new(),
                self.kept.as_mut(),
            );
            let started = self.describe(starts);
            result.map(|()| started)
        }

        fn value(&mut self, event: Handle<i32>, value: i32) -> Vec<Started> {
            self.complete(event, Flow::Value(value)).unwrap()
        }

        fn goto(
            &mut self,
            event: Handle<i32>,
            targets: &[Handle<i32>],
            payload: i32,
        ) -> Vec<Started> {
            let targets: Vec<EventRef> = targets.iter().map(|&t| t.into()).collect();
            self.complete(event, Flow::goto(targets, payload)).unwrap()
        }

        fn abort(&mut self, event: Handle<i32>) -> Vec<Started> {
            self.complete(event, Flow::Abort).unwrap()
        }

        fn describe(&mut self, starts: Vec<Start>) -> Vec<Started> {
            starts
                .into_iter()
                .map(|start| {
                    // The core leaves the graph out; a runner attaches it for a body that
                    // reads its input, as here.
                    let input = start.input.with(Some(self.state.graph().clone()), 0);
                    self.task_ids.push(input.task_id());
                    Started {
                        event: self.state.graph().node(start.node).name.to_string(),
                        group: input.group_name().to_string(),
                        behavior: input.behavior(),
                        results: input
                            .results()
                            .iter()
                            .map(|r| (r.event().to_string(), r.kind(), r.value::<i32>().copied()))
                            .collect(),
                    }
                })
                .collect()
        }

        /// Completions per event, in definition order.
        fn counts(self) -> Vec<u32> {
            self.recorded().into_iter().map(|event| event.0).collect()
        }
    }

    #[test]
    fn fires_packed_agrees_with_fires() {
        use super::{fires, fires_packed, Member};
        use crate::core::graph::{GroupInfo, Retrigger};
        // Every state of joins of two to four members (the members that completed, and of
        // those the members whose outcome was delivered), every member, with a value or
        // not, both rules: the same answer, and the same counts.
        for size in 2..=4_u32 {
            for retrigger in [Retrigger::All, Retrigger::Any] {
                let group = GroupInfo::new(0, Arc::from("join"), retrigger, 0..size, false);
                for completed in 0..1_u32 << size {
                    let delivered_sets = (0..1_u32 << size).filter(|d| d & !completed == 0);
                    for delivered in delivered_sets {
                        for member in 0..size {
                            for value in [false, true] {
                                let bit = 1 << member;
                                let (mut ready, mut counted) =
                                    (completed.count_ones(), delivered.count_ones());
                                let rule = Member {
                                    first: completed & bit == 0,
                                    was_delivered: delivered & bit != 0,
                                    value,
                                };
                                let fired = fires(&group, &mut ready, &mut counted, rule);
                                let (now_completed, now_delivered, packed_fired) =
                                    fires_packed(&group, completed, delivered, bit, value);
                                let case = format!(
                                    "{size} members, {retrigger:?}, completed {completed:b}, \
                                     delivered {delivered:b}, member {member}, value {value}"
                                );
                                assert_eq!(packed_fired, fired, "{case}");
                                assert_eq!(now_completed.count_ones(), ready, "{case}");
                                assert_eq!(now_delivered.count_ones(), counted, "{case}");
                                assert_eq!(now_completed & bit, bit, "{case}");
                                assert_eq!(now_delivered & !now_completed, 0, "{case}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn outcomes_kept_by_the_run_task_are_those_the_cells_would_record() {
        // A chain into a join, a loop by goto, and a value overwritten: fed the same
        // completions, a run whose task keeps the outcomes (an inline run) starts the same
        // events and reports the same counts and latest values as one that records them
        // in the events' cells.
        let scenario = |keep: bool| {
            let mut b = DriveBuilder::new();
            let a = event(&mut b, "a");
            let x = event(&mut b, "x");
            let c = event(&mut b, "c");
            b.listen(x, Group::new([a]));
            b.listen(c, Group::new([a, x]));
            let mut run = if keep { Run::keeping(b) } else { Run::new(b) };
            let started = vec![
                run.value(a, 1),
                run.value(x, 2),
                run.goto(c, &[a], 3),
                run.value(a, 4),
                run.abort(x),
            ];
            // Kept by the task, the outcomes and the join's state are not in the cells.
            let in_cell = crate::core::lock::lock(run.state.outcome(a.node)).completions;
            assert_eq!(in_cell, if keep { 0 } else { 2 });
            let groups = &run.state.graph().groups;
            let join = groups.iter().position(|g| g.listener == c.node).unwrap() as u32;
            assert_eq!(run.state.join_ready(join), Some(if keep { 0 } else { 2 }));
            (started, run.recorded())
        };
        let (started, recorded) = scenario(true);
        assert_eq!(
            (&started, &recorded),
            (&scenario(false).0, &scenario(false).1)
        );
        assert_eq!(
            recorded,
            [(2, 2, 2, Some(4)), (2, 2, 2, None), (1, 1, 1, None)],
            "per event: completions, triggers, attempts, latest value"
        );
    }

    #[test]
    fn goto_jumps_are_counted_per_pair_in_first_jump_order_locking_the_trace_once_per_pair() {
        // `a` jumps to `x` three times, then to `c` twice, then to `x` again; `x` jumps to
        // `a` once. After a pair's first jump its jumps are counted in the source's cell
        // (the first target it jumped to) or, for a second target, in the trace: the run's
        // pictures see the same counts, in the order the pairs first jumped.
        for keep in [false, true] {
            let mut b = DriveBuilder::new();
            let a = event(&mut b, "a");
            let x = event(&mut b, "x");
            let c = event(&mut b, "c");
            let mut run = if keep { Run::keeping(b) } else { Run::new(b) };
            let before = run
                .state
                .trace_locked
                .load(std::sync::atomic::Ordering::Relaxed);
            for targets in [[x], [x], [x], [c], [c], [x]] {
                run.goto(a, &targets, 1);
            }
            run.goto(x, &[a], 2);
            let locked = run
                .state
                .trace_locked
                .load(std::sync::atomic::Ordering::Relaxed);
            // Once for (a, x) and (x, a), and at each jump to `c`, a second target of `a`.
            assert_eq!(locked - before, 4, "keep: {keep}");
            let (_, _, trace) = run.state.take_parts(run.kept.as_mut());
            assert_eq!(
                trace.gotos(),
                &[
                    (a.node, x.node, 4),
                    (a.node, c.node, 2),
                    (x.node, a.node, 1)
                ],
                "keep: {keep}"
            );
        }
    }

    #[test]
    fn a_run_keeps_48_bytes_per_event_it_touched() {
        assert!(std::mem::size_of::<super::EventRun>() <= 48);
    }

    #[test]
    fn a_join_waits_for_every_member_and_lists_them_in_group_order() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let y = event(&mut b, "y");
        let c = event(&mut b, "c");
        b.listen(c, Group::new([y, a, x]));
        let mut run = Run::new(b);

        assert_eq!(run.value(a, 1), []);
        assert_eq!(run.value(x, 2), []);
        assert_eq!(
            run.value(a, 3),
            [],
            "a member that runs twice does not complete the join"
        );
        assert_eq!(
            run.value(y, 4),
            [dispatch(
                "c",
                "0",
                &[value("y", 4), value("a", 3), value("x", 2)]
            )]
        );
        assert_eq!(run.counts(), [2, 1, 1, 0]);
    }

    #[test]
    fn all_mode_fires_again_only_after_every_member_is_fresh() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        b.listen(c, Group::new([a, x]).retrigger(Retrigger::All));
        let mut run = Run::new(b);

        assert_eq!(run.value(a, 1), []);
        assert_eq!(
            run.value(x, 2),
            [dispatch("c", "0", &[value("a", 1), value("x", 2)])]
        );
        assert_eq!(run.value(a, 3), []);
        assert_eq!(run.value(a, 5), [], "a is fresh, but x is not");
        assert_eq!(
            run.value(x, 6),
            [dispatch("c", "0", &[value("a", 5), value("x", 6)])]
        );
        assert_eq!(run.value(x, 7), []);
        assert_eq!(run.value(x, 8), []);
        assert_eq!(
            run.value(a, 9),
            [dispatch("c", "0", &[value("a", 9), value("x", 8)])]
        );
    }

    #[test]
    fn a_listener_that_does_not_read_its_input_gets_no_results_and_its_joins_fire_as_before() {
        for keeping in [false, true] {
            let mut b = DriveBuilder::new();
            let a = event(&mut b, "a");
            let x = event(&mut b, "x");
            // Bodies without an `EventInput` parameter: a one-member listener and an `all`
            // join; `c` reads its input.
            let one = b.event("one", || async { Flow::from(0) });
            let join = b.event("join", || async { Flow::from(0) });
            let c = event(&mut b, "c");
            b.listen(one, Group::new([a]));
            b.listen(join, Group::new([a, x]).retrigger(Retrigger::All));
            b.listen(c, Group::new([a, x]).retrigger(Retrigger::All));
            let mut run = if keeping {
                Run::keeping(b)
            } else {
                Run::new(b)
            };

            assert_eq!(run.value(a, 1), [dispatch("one", "0", &[])]);
            assert_eq!(
                run.value(x, 2),
                [
                    dispatch("join", "0", &[]),
                    dispatch("c", "0", &[value("a", 1), value("x", 2)]),
                ]
            );
            // The join without results still marks its members delivered: it fires again
            // only once both are fresh, as `c` does.
            assert_eq!(run.value(a, 3), [dispatch("one", "0", &[])]);
            assert_eq!(
                run.value(x, 4),
                [
                    dispatch("join", "0", &[]),
                    dispatch("c", "0", &[value("a", 3), value("x", 4)]),
                ]
            );
            assert_eq!(run.value(x, 5), []);
        }
    }

    #[test]
    fn any_mode_fires_on_each_fresh_member_once_all_have_run() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        b.listen(c, Group::new([a, x]).retrigger(Retrigger::Any));
        let mut run = Run::new(b);

        assert_eq!(run.value(a, 1), []);
        assert_eq!(run.value(a, 2), [], "x has not run yet");
        assert_eq!(
            run.value(x, 3),
            [dispatch("c", "0", &[value("a", 2), value("x", 3)])]
        );
        assert_eq!(
            run.value(a, 4),
            [dispatch("c", "0", &[value("a", 4), value("x", 3)])]
        );
        assert_eq!(
            run.value(a, 5),
            [dispatch("c", "0", &[value("a", 5), value("x", 3)])]
        );
        assert_eq!(
            run.value(x, 6),
            [dispatch("c", "0", &[value("a", 5), value("x", 6)])]
        );
    }

    #[test]
    fn goto_sends_the_payload_to_each_target_and_dispatches_nothing_else() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let y = event(&mut b, "y");
        let d = event(&mut b, "d");
        b.listen(d, Group::new([a]).retrigger(Retrigger::Any));
        b.listen(x, Group::new([a]));
        let mut run = Run::new(b);

        assert_eq!(
            run.goto(a, &[y, x, a], 10),
            [goto("y", "a", 10), goto("x", "a", 10), goto("a", "a", 10)]
        );
        assert_eq!(
            run.value(a, 11),
            [
                dispatch("x", "0", &[value("a", 11)]),
                dispatch("d", "0", &[value("a", 11)])
            ],
            "the goto left no (listener, group) delivered"
        );
        assert_eq!(
            run.goto(a, &[], 12),
            [],
            "a goto to no target starts nothing"
        );
    }

    #[test]
    fn goto_overwrites_the_state_counts_as_run_and_lets_an_all_join_fire_again() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        let t = event(&mut b, "t");
        b.listen(c, Group::new([a, x]));
        let mut run = Run::new(b);

        // A goto as the first completion counts for the join.
        assert_eq!(run.goto(a, &[t], 1), [goto("t", "a", 1)]);
        assert_eq!(
            run.value(x, 2),
            [dispatch("c", "0", &[was_goto("a"), value("x", 2)])]
        );
        // Both members delivered: a value of a alone does not fire c ...
        assert_eq!(run.value(a, 3), []);
        assert_eq!(
            run.value(x, 4),
            [dispatch("c", "0", &[value("a", 3), value("x", 4)])]
        );
        // ... but a goto of a is a fresh completion too: x's next value fires c.
        assert_eq!(run.goto(a, &[t], 5), [goto("t", "a", 5)]);
        assert_eq!(
            run.value(x, 6),
            [dispatch("c", "0", &[was_goto("a"), value("x", 6)])]
        );
        assert_eq!(run.counts(), [3, 3, 0, 0]);
    }

    #[test]
    fn abort_dispatches_nothing_but_overwrites_the_state() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        let d = event(&mut b, "d");
        b.listen(c, Group::new([a, x]));
        b.listen(d, Group::new([a]));
        let mut run = Run::new(b);

        assert_eq!(run.abort(a), []);
        assert_eq!(
            run.value(x, 2),
            [dispatch("c", "0", &[was_abort("a"), value("x", 2)])]
        );
        assert_eq!(run.value(a, 3), [dispatch("d", "0", &[value("a", 3)])]);
        assert_eq!(
            run.value(x, 4),
            [dispatch("c", "0", &[value("a", 3), value("x", 4)])]
        );
        assert_eq!(run.abort(a), [], "not even d, which listens to a alone");
        assert_eq!(
            run.value(x, 5),
            [dispatch("c", "0", &[was_abort("a"), value("x", 5)])]
        );
    }

    #[test]
    fn one_completion_queues_a_listener_once_per_matching_group_in_registration_order() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        let d = event(&mut b, "d");
        // Listen calls in another order than the events were defined: the order of the
        // starts follows the definition order, then each listener's group order.
        b.listen(d, Group::new([a]));
        b.listen(c, Group::new([a]));
        b.listen(c, Group::new([x, a]).name("both").retrigger(Retrigger::Any));
        b.listen(c, Group::new([a]).name("dropped")); // same members as "0": dropped
        b.listen(c, Group::new([x]));
        let mut run = Run::new(b);

        assert_eq!(run.value(x, 1), [dispatch("c", "2", &[value("x", 1)])]);
        assert_eq!(
            run.value(a, 2),
            [
                dispatch("c", "0", &[value("a", 2)]),
                dispatch("c", "both", &[value("x", 1), value("a", 2)]),
                dispatch("d", "0", &[value("a", 2)]),
            ]
        );
        assert_eq!(
            run.value(x, 3),
            [
                dispatch("c", "both", &[value("x", 3), value("a", 2)]),
                dispatch("c", "2", &[value("x", 3)]),
            ]
        );
    }

    #[test]
    fn a_self_loop_fires_on_every_value_until_an_abort() {
        let mut b = DriveBuilder::new();
        let start = event(&mut b, "start");
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        b.listen(a, Group::new([start]));
        b.listen(a, Group::new([a]));
        b.listen(x, Group::new([start]));
        b.listen(c, Group::new([a, x]));
        let mut run = Run::new(b);

        assert_eq!(
            run.value(start, 0),
            [
                dispatch("a", "0", &[value("start", 0)]),
                dispatch("x", "0", &[value("start", 0)])
            ]
        );
        assert_eq!(run.value(a, 1), [dispatch("a", "1", &[value("a", 1)])]);
        assert_eq!(
            run.value(x, 2),
            [dispatch("c", "0", &[value("a", 1), value("x", 2)])]
        );
        assert_eq!(
            run.value(a, 3),
            [dispatch("a", "1", &[value("a", 3)])],
            "x is not fresh: no c"
        );
        assert_eq!(run.abort(a), []);
        assert_eq!(run.counts(), [1, 3, 1, 0]);
    }

    #[test]
    fn a_member_repeated_inside_a_group_counts_once() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        let d = event(&mut b, "d");
        b.listen(c, Group::new([a, x, a]));
        b.listen(d, Group::new([a, a]));
        let mut run = Run::new(b);

        assert_eq!(run.value(a, 1), [dispatch("d", "0", &[value("a", 1)])]);
        assert_eq!(
            run.value(x, 2),
            [dispatch("c", "0", &[value("a", 1), value("x", 2)])]
        );
        assert_eq!(run.value(a, 3), [dispatch("d", "0", &[value("a", 3)])]);
        assert_eq!(
            run.value(x, 4),
            [dispatch("c", "0", &[value("a", 3), value("x", 4)])]
        );
    }

    #[test]
    fn a_goto_to_an_unknown_event_is_an_error_and_starts_nothing() {
        let mut other = DriveBuilder::new();
        let foreign = event(&mut other, "foreign");
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let x = event(&mut b, "x");
        let c = event(&mut b, "c");
        b.listen(c, Group::new([a, x]));
        let mut run = Run::new(b);

        let targets: Vec<EventRef> = vec![x.into(), foreign.into()];
        match run.complete(a, Flow::goto(targets, 1)) {
            Err(Error::UnknownEvent { event, detail }) => {
                assert_eq!(event, "a handle of another builder (node #0)");
                assert_eq!(detail, " (goto target of `a`)");
            }
            other => panic!("expected UnknownEvent, got {other:?}"),
        }
        assert!(run.task_ids.is_empty(), "nothing was started");
        // The failed completion left no state: a has not run, so x alone does not fire c.
        assert_eq!(run.value(x, 2), []);
        assert_eq!(run.counts(), [0, 1, 0]);
    }

    #[test]
    fn every_start_gets_a_fresh_task_id() {
        let mut b = DriveBuilder::new();
        let a = event(&mut b, "a");
        let c = event(&mut b, "c");
        let d = event(&mut b, "d");
        b.listen(c, Group::new([a]));
        b.listen(d, Group::new([a]));
        let mut run = Run::new(b);
        let start = run
            .state
            .start_input(crate::core::input::EventInput::start())
            .task_id;

        run.value(a, 1);
        run.goto(a, &[c, d, c], 2);
        let mut ids = run.task_ids.clone();
        ids.push(start);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 6, "{:?}", run.task_ids);
    }
}
