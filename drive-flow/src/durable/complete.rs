//! The completion of one event, in one transaction: the fenced release of its task, the
//! state of only the groups the event is a member of (its fan-out, never the whole run)
//! run through the dispatch core, the changed rows written back, the triggered events
//! inserted, the history appended, the counters kept, the run ended when nothing is left,
//! and one notification.
//!
//! Two ways, one dispatch: optimistically (read without a lock, then one statement that
//! writes only if what was read still holds: two round trips, the run's row locked for one
//! statement and the commit), else under the run's lock from the first statement (four
//! round trips: every case, the run's end and its budgets and cap included).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use super::error::{DurableError, RunId};
use super::leaves::LeafWrite;
use super::queue::{Claimed, RunRow};
use super::store::PgStore;
use super::stored::StoredError;
use super::task_input;
use super::worker::WorkerShared;
use crate::core::dispatch::{self, DispatchState, EventRun, GroupRun, Member, Start};
use crate::core::flow::{AnyValue, ErasedFlow, Flow};
use crate::core::graph::{Graph, GroupId, NodeId};
use crate::core::input::{Entries, Entry, Latest};
use crate::Error;

/// The part of a run's dispatch state that one completion touches, loaded from its rows:
/// the events and groups of the groups the finished event is a member of (and the
/// listeners and goto targets it may start). The dispatch core runs over it as over an
/// in-process run's state.
struct PartialState {
    events: HashMap<NodeId, EventRun>,
    groups: HashMap<GroupId, GroupRun>,
    delivered: HashMap<u32, bool>,
    next_task_id: u64,
    /// The events whose rows were asked for (an event without a row has not run yet).
    asked: HashSet<NodeId>,
    /// Events whose latest outcome the dispatch read without their rows asked for (the
    /// members of a large join that fires): loaded, and the dispatch run again.
    missed: RefCell<Vec<NodeId>>,
}

impl PartialState {
    fn event_mut(&mut self, node: NodeId) -> &mut EventRun {
        self.events
            .entry(node)
            .or_insert_with(|| EventRun::new(node))
    }

    fn latest(&self, node: NodeId) -> Option<&Latest> {
        if !self.asked.contains(&node) {
            self.missed.borrow_mut().push(node);
        }
        self.events.get(&node)?.latest.as_ref()
    }

    fn group_mut(&mut self, group: GroupId) -> &mut GroupRun {
        self.groups.entry(group).or_default()
    }

    fn delivered_mut(&mut self, slot: u32) -> &mut bool {
        self.delivered.entry(slot).or_insert(false)
    }
}

impl DispatchState for PartialState {
    fn member_completed(
        &mut self,
        graph: &Graph,
        group_id: GroupId,
        slot: u32,
        node: NodeId,
        outcome: &Latest,
    ) -> Option<Entries> {
        let group = graph.group(group_id);
        // The event's outcome is recorded after its groups: `None` means it never completed.
        let first = self
            .events
            .get(&node)
            .map_or(true, |event| event.latest.is_none());
        let member = Member {
            first,
            was_delivered: std::mem::take(self.delivered_mut(slot)),
            value: outcome.is_value(),
        };
        let state = self.group_mut(group_id);
        if !dispatch::fires(group, &mut state.ready, &mut state.delivered, member) {
            return None;
        }
        state.fired = true;
        let entries = Entries::collect(graph.members(group).iter().map(|&m| Entry {
            node: m,
            latest: if m == node {
                outcome.clone()
            } else {
                self.latest(m).cloned().unwrap_or(Latest::ABORT)
            },
        }));
        for slot in group.slots.clone() {
            *self.delivered_mut(slot) = true;
        }
        Some(entries)
    }

    fn record(&mut self, node: NodeId, latest: Latest) {
        let event = self.event_mut(node);
        event.latest = Some(latest);
        event.completions += 1;
    }

    fn task_id(&mut self) -> u64 {
        self.next_task_id += 1;
        self.next_task_id
    }
}

/// Values inside a completion stay JSON: the dispatch core only moves them.
fn json_value(value: Value) -> AnyValue {
    AnyValue::from(Arc::new(value) as Arc<dyn std::any::Any + Send + Sync>)
}

fn latest_of(kind: Option<&str>, value: Option<Value>) -> Option<Latest> {
    match kind? {
        "value" => Some(Latest::value_of(json_value(value.unwrap_or(Value::Null)))),
        "goto" => Some(Latest::goto_of(json_value(value.unwrap_or(Value::Null)))),
        _ => Some(Latest::ABORT),
    }
}

/// The flow again, for one more pass of the dispatch (its values are shared).
fn copy_flow(flow: &Flow<AnyValue>) -> Flow<AnyValue> {
    match flow {
        Flow::Value(value) => Flow::Value(value.clone()),
        Flow::Goto { targets, payload } => Flow::Goto {
            targets: targets.clone(),
            payload: payload.clone(),
        },
        Flow::Abort => Flow::Abort,
    }
}

/// One event's row of the run's state.
struct EventRow {
    node: NodeId,
    kind: Option<String>,
    value: Option<Value>,
    completions: i32,
    triggered: i32,
}

/// One group's row of the run's state.
struct GroupRow {
    group: GroupId,
    ready: i32,
    delivered: Vec<bool>,
    fired: bool,
}

/// A group whose members' rows are loaded with the first query (a larger join that fires
/// loads them when the dispatch asks: one more query, once per firing).
const SMALL_GROUP: usize = 16;

impl PartialState {
    fn new(
        graph: &Graph,
        events: &[EventRow],
        groups: &[GroupRow],
        asked: HashSet<NodeId>,
        next_task_id: u64,
    ) -> Self {
        let mut state = PartialState {
            events: HashMap::with_capacity(events.len() + 1),
            groups: HashMap::with_capacity(groups.len()),
            delivered: HashMap::new(),
            next_task_id,
            asked,
            missed: RefCell::new(Vec::new()),
        };
        for row in events {
            let entry = state.event_mut(row.node);
            entry.latest = latest_of(row.kind.as_deref(), row.value.clone());
            entry.completions = row.completions.max(0) as u32;
            entry.triggered = row.triggered.max(0) as u32;
        }
        for row in groups {
            let mut count = 0;
            for (slot, &was) in graph.group(row.group).slots.clone().zip(&row.delivered) {
                state.delivered.insert(slot, was);
                count += u32::from(was);
            }
            let entry = state.group_mut(row.group);
            entry.ready = row.ready.max(0) as u32;
            entry.delivered = count;
            entry.fired = row.fired;
        }
        state
    }
}

/// The outcome with its value encoded by the event's codec.
fn encode_flow(
    shared: &WorkerShared,
    node: NodeId,
    flow: &ErasedFlow,
) -> Result<(Flow<AnyValue>, &'static str, Option<Value>), String> {
    let codec = &shared.drive.index.codecs[node as usize];
    Ok(match flow {
        Flow::Value(value) => {
            let json = codec.encode(&**value)?;
            (Flow::Value(json_value(json.clone())), "value", Some(json))
        }
        Flow::Goto { targets, payload } => {
            let json = codec.encode(&**payload)?;
            (
                Flow::Goto {
                    targets: targets.clone(),
                    payload: json_value(json.clone()),
                },
                "goto",
                Some(json),
            )
        }
        Flow::Abort => (Flow::Abort, "abort", None),
    })
}

/// [`complete_handing_off`] without a hand-off: `Ok(false)` when the claim was stale.
#[cfg(test)]
pub(crate) async fn complete(
    shared: &WorkerShared,
    task: &Claimed,
    node: NodeId,
    flow: &ErasedFlow,
    traceparent: Option<&str>,
) -> Result<bool, DurableError> {
    Ok(
        complete_handing_off(shared, task, node, flow, traceparent, false)
            .await?
            .is_some(),
    )
}

/// Complete `task` (of event `node`) with `flow`. `None`: the claim was stale (its lease
/// taken over, or its run ended), nothing was written; `Some(next)`: applied. With
/// `hand_off`, `next` is the first event the completion started, already claimed for this
/// worker to run next (the optimistic path only; the others are ready for any worker).
/// `traceparent`: that of the span of this event run, the parent of the spans of the
/// events it triggers (when none, they get the task's own, else the run's).
///
/// First optimistically ([`read_optimistic`], [`write_optimistic`]: two round trips, the
/// run's row locked only by the statement that writes), then, when that cannot apply (the
/// run changed since the read, a budget, a cap, a deadline or the run's end is involved,
/// the dispatch failed), under the run's lock from the start ([`locked`]: four round
/// trips).
pub(crate) async fn complete_handing_off(
    shared: &WorkerShared,
    task: &Claimed,
    node: NodeId,
    flow: &ErasedFlow,
    traceparent: Option<&str>,
    hand_off: bool,
) -> Result<Option<Option<Claimed>>, DurableError> {
    let store = &shared.drive.store;
    let (flow, kind, value) = match encode_flow(shared, node, flow) {
        Ok(encoded) => encoded,
        Err(detail) => {
            let error = Error::Failed {
                event: task.event.clone(),
                source: format!("its output cannot be serialized to JSON: {detail}").into(),
            };
            let failed = store
                .fail_run(task, &StoredError::from_error(&error), &shared.name)
                .await?;
            return Ok(failed.then_some(None));
        }
    };
    let outcome = Outcome {
        task,
        node,
        flow: &flow,
        kind,
        value: value.as_ref(),
        traceparent,
    };
    if let Some(write) = read_optimistic(shared, &outcome, hand_off).await? {
        if let Some(next) = apply_optimistic(shared, &outcome, write).await? {
            return Ok(Some(next));
        }
    }
    Ok(locked(shared, &outcome).await?.then_some(None))
}

/// What an event ended with, encoded, and where it goes.
struct Outcome<'a> {
    task: &'a Claimed,
    node: NodeId,
    flow: &'a Flow<AnyValue>,
    kind: &'static str,
    value: Option<&'a Value>,
    traceparent: Option<&'a str>,
}

impl Outcome<'_> {
    /// The traceparent the events it starts get.
    fn parent(&self, run: &RunRow) -> Option<String> {
        self.traceparent
            .map(str::to_string)
            .or_else(|| self.task.traceparent.clone())
            .or_else(|| run.traceparent.clone())
    }
}

/// The groups a completion of `node` touches, and the events whose rows it loads: the
/// event, the listeners of the groups it is a member of (and the members of the small
/// ones), and its goto targets.
struct Touched {
    groups: Vec<GroupId>,
    listeners: Vec<String>,
    ks: Vec<i32>,
    asked: Vec<NodeId>,
}

impl Touched {
    fn of(shared: &WorkerShared, node: NodeId, flow: &Flow<AnyValue>) -> Self {
        let index = &shared.drive.index;
        let graph = &index.graph;
        let mut asked: Vec<NodeId> = vec![node];
        let all: Vec<GroupId> = graph.member_of(node).iter().map(|&(g, _)| g).collect();
        for &group in &all {
            let info = graph.group(group);
            let members = graph.members(info);
            if members.len() <= SMALL_GROUP {
                asked.extend_from_slice(members);
            }
            asked.push(info.listener);
        }
        if let Flow::Goto { targets, .. } = flow {
            asked.extend(targets.iter().filter_map(|t| graph.resolve(t.0)));
        }
        asked.sort_unstable();
        asked.dedup();
        // A group of one member has no state (it fires on every value): no row.
        let groups: Vec<GroupId> = all
            .into_iter()
            .filter(|&group| graph.group(group).slots.len() > 1)
            .collect();
        let (listeners, ks) = groups
            .iter()
            .map(|&group| {
                let info = graph.group(group);
                let k = group - graph.listens[info.listener as usize];
                (index.name(info.listener).to_string(), k as i32)
            })
            .unzip();
        Touched {
            groups,
            listeners,
            ks,
            asked,
        }
    }
}

/// The dispatch core over the loaded rows; again with the members' rows when a large join
/// fired (loaded through `conn`). The inner error: the dispatch failed the run.
async fn dispatch_loaded(
    conn: &mut PgConnection,
    shared: &WorkerShared,
    outcome: &Outcome<'_>,
    touched: &Touched,
    mut event_rows: Vec<EventRow>,
    group_rows: &[GroupRow],
    next_task_id: i64,
) -> Result<Result<(PartialState, Vec<Start>), Error>, DurableError> {
    let graph: &Arc<Graph> = &shared.drive.index.graph;
    let mut asked: HashSet<NodeId> = touched.asked.iter().copied().collect();
    let next_task_id = u64::try_from(next_task_id).unwrap_or(0);
    loop {
        let mut state =
            PartialState::new(graph, &event_rows, group_rows, asked.clone(), next_task_id);
        let mut starts: Vec<Start> = Vec::new();
        let dispatched = dispatch::complete(
            graph,
            &mut state,
            &mut Vec::new(),
            outcome.node,
            &mut copy_flow(outcome.flow),
            &mut starts,
        );
        let missed = std::mem::take(&mut *state.missed.borrow_mut());
        if !missed.is_empty() {
            let loaded =
                load_state(conn, shared, outcome.task.run, &missed, &[], &[], false).await?;
            event_rows.extend(loaded.events);
            asked.extend(missed);
            continue;
        }
        return Ok(dispatched.map(|()| (state, starts)));
    }
}

/// Why the events a completion starts cannot all be counted.
enum OverBudget {
    /// The run's `max_steps`.
    Steps,
    /// An event's `max_runs_per_event`.
    Runs(Error),
}

/// The budgets, counted as each start is triggered, as in-process runs do: the run's
/// steps after the starts, each started event's `triggered` counted in `state`.
fn count_starts(
    shared: &WorkerShared,
    run: &RunRow,
    state: &mut PartialState,
    starts: &[Start],
) -> Result<i64, OverBudget> {
    let mut steps = run.steps;
    for start in starts {
        if u64::try_from(steps).unwrap_or(u64::MAX) >= u64::try_from(run.max_steps).unwrap_or(0) {
            return Err(OverBudget::Steps);
        }
        let entry = state.event_mut(start.node);
        let limit = u32::try_from(run.max_runs_per_event).unwrap_or(0);
        if entry.triggered >= limit {
            return Err(OverBudget::Runs(Error::TooManyRuns {
                event: shared.drive.index.name(start.node).to_string(),
                runs: entry.triggered,
                limit,
            }));
        }
        entry.triggered += 1;
        steps += 1;
    }
    Ok(steps)
}

/// The rows a completion writes: the event's, the started events' (their counters), the
/// groups'.
fn changed_rows(
    shared: &WorkerShared,
    state: &mut PartialState,
    node: NodeId,
    starts: &[Start],
    groups: &[GroupId],
) -> (EventColumns, GroupColumns) {
    let index = &shared.drive.index;
    let graph = &index.graph;
    let mut changed: Vec<NodeId> = vec![node];
    changed.extend(starts.iter().map(|start| start.node));
    changed.sort_unstable();
    changed.dedup();
    let mut events = EventColumns::with_capacity(changed.len());
    for at in &changed {
        let row = state.event_mut(*at);
        let (kind, value) = match &row.latest {
            Some(latest) => {
                let (kind, value) = task_input::latest_json(latest);
                (Some(kind.to_string()), Some(value))
            }
            None => (None, None),
        };
        let (completions, triggered) = (row.completions as i32, row.triggered as i32);
        events.names.push(index.name(*at).to_string());
        events.kinds.push(kind);
        events.values.push(value);
        events.completions.push(completions);
        events.triggered.push(triggered);
    }
    let mut columns = GroupColumns::with_capacity(groups.len());
    for &group in groups {
        let delivered: Vec<&str> = graph
            .group(group)
            .slots
            .clone()
            .map(|slot| if *state.delivered_mut(slot) { "t" } else { "f" })
            .collect();
        let entry = state.group_mut(group);
        columns.ready.push(entry.ready as i32);
        columns.fired.push(entry.fired);
        columns.delivered.push(delivered.join(","));
    }
    (events, columns)
}

/// The task rows of the events a completion starts, each ready when `ready` says so.
fn task_rows(
    shared: &WorkerShared,
    starts: &[Start],
    mut ready: impl FnMut() -> bool,
) -> TaskColumns {
    let index = &shared.drive.index;
    let mut tasks = TaskColumns::with_capacity(starts.len());
    for start in starts {
        tasks.ids.push(start.input.task_id as i64);
        tasks.events.push(index.name(start.node).to_string());
        tasks
            .inputs
            .push(task_input::encode(index, start.node, &start.input));
        tasks.states.push(if ready() { "ready" } else { "queued" });
        tasks.causes.push(match start.input.behavior() {
            crate::Behavior::Goto => "goto",
            _ => "dispatch",
        });
    }
    tasks
}

/// What the optimistic completion plans: a leaf's write, or one over what it read.
enum Planned {
    Leaf(LeafWrite),
    Write(Box<OptimisticWrite>),
}

/// What the optimistic completion of an event that is not a leaf writes, planned over what
/// it read.
struct OptimisticWrite {
    touched: Touched,
    /// The version of the run's row it read (`xmin`).
    version: String,
    steps: i64,
    started: i32,
    next_task_id: i64,
    events: EventColumns,
    groups: GroupColumns,
    tasks: TaskColumns,
    parents: Vec<Option<String>>,
    wake: bool,
    /// The lease of the first started event, handed to this worker.
    hand_off: Option<Duration>,
}

/// The optimistic completion ([`read_optimistic`], then [`write_optimistic`]): the state
/// it touches and the run's row read without a lock (one round trip), the dispatch run
/// over them, and everything written by one statement in its own transaction (one round
/// trip, its commit included), which locks the run's row first and writes nothing unless
/// what was read still holds:
///
/// - a completion that starts events or touches a group writes its rows from what it
///   read: it applies only if the run's row is the version it read (`xmin`: every
///   completion, submission and end of a run writes that row, so nothing of the run
///   changed since);
/// - a leaf's completion (a value, no group listening: nothing started) reads nothing
///   ([`leaf_write`]): its counts are relative, it applies whatever else completed
///   meanwhile, and the leaves of one run a worker completes while another of them is
///   being written go in one statement together ([`LeafBatches`](super::leaves::LeafBatches)).
///
/// Either way the run must still be running, before its deadline, without a concurrency
/// cap, within `max_steps`, and not end with this completion (those are the locked path's
/// cases), and the claim must still hold the task. `None`: the locked path must complete
/// it.
async fn read_optimistic(
    shared: &WorkerShared,
    outcome: &Outcome<'_>,
    hand_off: bool,
) -> Result<Option<Planned>, DurableError> {
    let store = &shared.drive.store;
    let task = outcome.task;
    let touched = Touched::of(shared, outcome.node, outcome.flow);
    let graph: &Arc<Graph> = &shared.drive.index.graph;
    if graph.member_of(outcome.node).is_empty() && matches!(outcome.flow, Flow::Value(_)) {
        return Ok(leaf_write(shared, outcome, &touched).map(Planned::Leaf));
    }
    let mut conn = store.lease_pool().acquire().await?;
    let loaded = load_state(
        &mut conn,
        shared,
        task.run,
        &touched.asked,
        &touched.listeners,
        &touched.ks,
        true,
    )
    .await?;
    let Some((version, status, run)) = loaded.run else {
        return Ok(None);
    };
    if status != "running" || run.overdue || run.max_concurrency.is_some() {
        return Ok(None);
    }
    let Ok((mut state, starts)) = dispatch_loaded(
        &mut conn,
        shared,
        outcome,
        &touched,
        loaded.events,
        &loaded.groups,
        run.next_task_id,
    )
    .await?
    else {
        return Ok(None);
    };
    drop(conn);
    let Ok(steps) = count_starts(shared, &run, &mut state, &starts) else {
        return Ok(None);
    };
    let started = starts.len() as i32;
    if run.open_tasks - 1 + started <= 0 {
        return Ok(None); // the run ends: the locked path ends it
    }
    let (events, groups) = changed_rows(shared, &mut state, outcome.node, &starts, &touched.groups);
    Ok(Some(Planned::Write(Box::new(OptimisticWrite {
        version,
        steps: steps - run.steps,
        started,
        next_task_id: state.next_task_id as i64,
        events,
        groups,
        tasks: task_rows(shared, &starts, || true),
        parents: vec![outcome.parent(&run); starts.len()],
        // Handed off or claimed next by this worker, one started event needs no other
        // worker (see `wake_others`).
        wake: wake_others(0, starts.len(), run.open_tasks - 1 + started),
        hand_off: (hand_off && !starts.is_empty()).then_some(shared.lease),
        touched,
    }))))
}

/// A leaf's completion (a value, and no group listens to the event: it starts nothing)
/// reads nothing: the dispatch runs over the event's entry alone (all it touches), and
/// the write counts relatively and checks in its own statement what a read would have
/// (the run running, before its deadline, without a cap, not ending with it). One round
/// trip, shared with the worker's other leaves of the run that end meanwhile: a wide
/// fan-out's branches.
fn leaf_write(
    shared: &WorkerShared,
    outcome: &Outcome<'_>,
    touched: &Touched,
) -> Option<LeafWrite> {
    let graph: &Arc<Graph> = &shared.drive.index.graph;
    let asked: HashSet<NodeId> = touched.asked.iter().copied().collect();
    let mut state = PartialState::new(graph, &[], &[], asked, 0);
    let mut starts: Vec<Start> = Vec::new();
    let dispatched = dispatch::complete(
        graph,
        &mut state,
        &mut Vec::new(),
        outcome.node,
        &mut copy_flow(outcome.flow),
        &mut starts,
    );
    if dispatched.is_err() || !starts.is_empty() || !state.missed.borrow().is_empty() {
        return None;
    }
    let (mut events, _) = changed_rows(shared, &mut state, outcome.node, &starts, &[]);
    let task = outcome.task;
    Some(LeafWrite {
        id: task.id,
        attempt: task.attempt,
        started_at: task.started_at,
        outcome: outcome.kind,
        value: outcome.value.cloned(),
        event: events.names.pop()?,
        latest_kind: events.kinds.pop()?,
        latest_value: events.values.pop()?,
    })
}

/// Write what the optimistic completion planned: a leaf's with the other leaves of its run
/// that this worker completes meanwhile ([`LeafBatches`](super::leaves::LeafBatches)),
/// any other alone ([`write_optimistic`]). `None` when it did not apply (nothing
/// written), else the task handed off, if any.
async fn apply_optimistic(
    shared: &WorkerShared,
    outcome: &Outcome<'_>,
    planned: Planned,
) -> Result<Option<Option<Claimed>>, DurableError> {
    match planned {
        Planned::Write(write) => write_optimistic(shared, outcome, *write).await,
        Planned::Leaf(leaf) => {
            let store = &shared.drive.store;
            let applied = shared
                .leaves
                .write(store, &shared.name, outcome.task.run, leaf)
                .await?;
            Ok(applied.then_some(None))
        }
    }
}

/// The optimistic completion's write: `None` when it did not apply (nothing written),
/// else the task handed off, if any.
async fn write_optimistic(
    shared: &WorkerShared,
    outcome: &Outcome<'_>,
    write: OptimisticWrite,
) -> Result<Option<Option<Claimed>>, DurableError> {
    let store = &shared.drive.store;
    let sql = store.sql();
    let task = outcome.task;
    let applied = sqlx::query(&sql.write_optimistic)
        .bind(task.run.0)
        .bind(task.id)
        .bind(task.attempt)
        .bind(outcome.kind)
        .bind(outcome.value)
        .bind(&shared.name)
        .bind(task.started_at)
        .bind(&write.version)
        .bind(write.steps)
        .bind(write.started - 1)
        .bind(write.next_task_id)
        .bind(&write.events.names)
        .bind(&write.events.kinds)
        .bind(&write.events.values)
        .bind(&write.events.completions)
        .bind(&write.events.triggered)
        .bind(&write.touched.listeners)
        .bind(&write.touched.ks)
        .bind(&write.groups.ready)
        .bind(&write.groups.delivered)
        .bind(&write.groups.fired)
        .bind(&write.tasks.ids)
        .bind(&write.tasks.events)
        .bind(&write.tasks.inputs)
        .bind(&write.tasks.causes)
        .bind(&write.parents)
        .bind(write.wake.then_some(sql.work_channel.as_str()))
        .bind(write.hand_off.map(|lease| lease.as_secs_f64() * 1000.0))
        .fetch_one(store.pool())
        .await;
    let Some(row) = applied_row(applied)? else {
        return Ok(None);
    };
    let handed = match row.try_get::<Option<i64>, _>(2)? {
        Some(id) => {
            let mut tasks = write.tasks;
            let mut parents = write.parents;
            let (Some(event), Some(input), Some(&task_id)) = (
                tasks.events.first(),
                tasks.inputs.first_mut(),
                tasks.ids.first(),
            ) else {
                return Ok(Some(None));
            };
            Some(Claimed {
                id,
                run: task.run,
                task_id,
                event: event.clone(),
                input: std::mem::take(input),
                attempt: 1,
                failures: 0,
                started_at: row.try_get(3)?,
                traceparent: parents.first_mut().and_then(Option::take),
            })
        }
        None => None,
    };
    Ok(Some(handed))
}

/// The optimistic completion with `between` run after its read and before its write (the
/// tests' way to make something happen in between); `Ok(false)`: not applied.
#[cfg(test)]
pub(crate) async fn optimistic_with_pause(
    shared: &WorkerShared,
    task: &Claimed,
    node: NodeId,
    flow: &ErasedFlow,
    between: impl std::future::Future<Output = ()>,
) -> Result<bool, DurableError> {
    let (flow, kind, value) =
        encode_flow(shared, node, flow).map_err(|detail| DurableError::Encode {
            what: format!("the output of `{}`", task.event),
            detail,
        })?;
    let outcome = Outcome {
        task,
        node,
        flow: &flow,
        kind,
        value: value.as_ref(),
        traceparent: None,
    };
    let write = read_optimistic(shared, &outcome, false).await?;
    between.await;
    match write {
        Some(write) => Ok(apply_optimistic(shared, &outcome, write).await?.is_some()),
        None => Ok(false),
    }
}

/// The row of an optimistic statement (`write_optimistic`, `write_leaves`) when it
/// applied (its first column 1); `None` when it did not (0), or when a claim was taken
/// over while it ran and it rolled back on purpose (see [`TAKEN_OVER`]): nothing written.
pub(crate) fn applied_row(
    result: Result<PgRow, sqlx::Error>,
) -> Result<Option<PgRow>, DurableError> {
    match result {
        Ok(row) if row.try_get::<i32, _>(0)? == 1 => Ok(Some(row)),
        Ok(_) => Ok(None),
        Err(sqlx::Error::Database(error)) if error.message().contains(TAKEN_OVER) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The text of the error by which `write_optimistic` rolls back when the claim no longer
/// held its task once the run's row was locked.
pub(crate) const TAKEN_OVER: &str = "drive-flow: claim taken over during its completion";

/// The locked completion, for every case: the run's row locked with the fenced release and
/// the history row; the state it touches loaded; everything it changed written, in one
/// statement each; the commit.
async fn locked(shared: &WorkerShared, outcome: &Outcome<'_>) -> Result<bool, DurableError> {
    let index = &shared.drive.index;
    let store = &shared.drive.store;
    let sql = store.sql();
    let task = outcome.task;

    let mut tx = store.pool().begin().await?;
    // The run's row locked, and the fenced release of the task with its history row: no
    // row is written unless this claim still holds the task and the run is running.
    let Some(row) = sqlx::query(&sql.release_locked)
        .bind(task.run.0)
        .bind(task.id)
        .bind(task.attempt)
        .bind(outcome.kind)
        .bind(outcome.value)
        .bind(&shared.name)
        .bind(task.started_at)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(false); // no such run
    };
    if row.try_get::<i64, _>(10)? != 1 {
        return Ok(false); // stale claim, or the run is over
    }
    let run = RunRow::from_row(&row)?;
    if run.overdue {
        store.timeout_run(&mut tx, task.run).await?;
        tx.commit().await?;
        return Ok(true);
    }

    let touched = Touched::of(shared, outcome.node, outcome.flow);
    let loaded = load_state(
        &mut tx,
        shared,
        task.run,
        &touched.asked,
        &touched.listeners,
        &touched.ks,
        false,
    )
    .await?;
    let (mut state, starts) = match dispatch_loaded(
        &mut tx,
        shared,
        outcome,
        &touched,
        loaded.events,
        &loaded.groups,
        run.next_task_id,
    )
    .await?
    {
        Ok(dispatched) => dispatched,
        Err(error) => return fail_run(store, tx, task, &error).await,
    };
    let steps = match count_starts(shared, &run, &mut state, &starts) {
        Ok(steps) => steps,
        Err(OverBudget::Steps) => {
            let error = store
                .too_many_steps(&mut tx, task.run, run.max_steps, index)
                .await?;
            return fail_run(store, tx, task, &error).await;
        }
        Err(OverBudget::Runs(error)) => return fail_run(store, tx, task, &error).await,
    };
    let (events, groups) = changed_rows(shared, &mut state, outcome.node, &starts, &touched.groups);

    // The triggered events: queued ones of the run first, then these, within its cap.
    let mut in_flight = run.in_flight - 1;
    let promoted = store.promote(&mut tx, task.run, &run, in_flight).await?;
    in_flight += promoted;
    let mut ready_starts = 0;
    let queued_before = store.has_queued(&mut tx, task.run, &run).await?;
    let tasks = task_rows(shared, &starts, || {
        let ready = !queued_before && run.has_room(in_flight);
        if ready {
            in_flight += 1;
            ready_starts += 1;
        }
        ready
    });
    let parents = vec![outcome.parent(&run); starts.len()];
    let open_tasks = run.open_tasks - 1 + starts.len() as i32;
    sqlx::query(&sql.write_state)
        .bind(task.run.0)
        .bind(&events.names)
        .bind(&events.kinds)
        .bind(&events.values)
        .bind(&events.completions)
        .bind(&events.triggered)
        .bind(&touched.listeners)
        .bind(&touched.ks)
        .bind(&groups.ready)
        .bind(&groups.delivered)
        .bind(&groups.fired)
        .bind(&tasks.ids)
        .bind(&tasks.events)
        .bind(&tasks.inputs)
        .bind(&tasks.states)
        .bind(&tasks.causes)
        .bind(steps)
        .bind(in_flight)
        .bind(open_tasks)
        .bind(state.next_task_id as i64)
        .bind(wake_others(promoted, ready_starts, open_tasks).then_some(sql.work_channel.as_str()))
        .bind(&parents)
        .execute(&mut *tx)
        .await?;
    if open_tasks <= 0 {
        store.end_run(&mut tx, task.run, "succeeded", None).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Whether a completion wakes idle workers. Its own worker claims again as soon as the
/// completion returns (the slot of the event that completed is free, and every event it
/// starts is one of its graph's, so of its catalog): one event made ready is that
/// worker's, and waking every idle worker for it would have each of them run a claim that
/// finds nothing (on a chain, one wasted claim per worker per hop). More than one, or a
/// queued event of the run promoted (maybe another binary's), wakes them.
fn wake_others(promoted: i32, ready_starts: usize, open_tasks: i32) -> bool {
    open_tasks > 0 && (promoted > 0 || ready_starts > 1)
}

/// End the run of `task` as failed with `error`, and commit.
async fn fail_run(
    store: &PgStore,
    mut tx: Transaction<'static, Postgres>,
    task: &Claimed,
    error: &Error,
) -> Result<bool, DurableError> {
    store
        .end_run(
            &mut tx,
            task.run,
            "failed",
            Some(&StoredError::from_error(error)),
        )
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The columns of the event rows a completion writes.
struct EventColumns {
    names: Vec<String>,
    kinds: Vec<Option<String>>,
    values: Vec<Option<Value>>,
    completions: Vec<i32>,
    triggered: Vec<i32>,
}

impl EventColumns {
    fn with_capacity(n: usize) -> Self {
        EventColumns {
            names: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            completions: Vec::with_capacity(n),
            triggered: Vec::with_capacity(n),
        }
    }
}

/// The columns of the group rows a completion writes.
struct GroupColumns {
    ready: Vec<i32>,
    delivered: Vec<String>,
    fired: Vec<bool>,
}

impl GroupColumns {
    fn with_capacity(n: usize) -> Self {
        GroupColumns {
            ready: Vec::with_capacity(n),
            delivered: Vec::with_capacity(n),
            fired: Vec::with_capacity(n),
        }
    }
}

/// The columns of the task rows a completion inserts.
struct TaskColumns {
    ids: Vec<i64>,
    events: Vec<String>,
    inputs: Vec<Value>,
    states: Vec<&'static str>,
    causes: Vec<&'static str>,
}

impl TaskColumns {
    fn with_capacity(n: usize) -> Self {
        TaskColumns {
            ids: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
            inputs: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
            causes: Vec::with_capacity(n),
        }
    }
}

/// What [`load_state`] read.
struct Loaded {
    events: Vec<EventRow>,
    groups: Vec<GroupRow>,
    /// With `with_run`: the version of the run's row (its `xmin`), its status and row.
    run: Option<(String, String, RunRow)>,
}

/// The rows of the events `nodes` and of the groups (`listeners`, `ks`), and with
/// `with_run` the run's row and its version, in one statement.
async fn load_state(
    conn: &mut PgConnection,
    shared: &WorkerShared,
    run: RunId,
    nodes: &[NodeId],
    listeners: &[String],
    ks: &[i32],
    with_run: bool,
) -> Result<Loaded, DurableError> {
    let index = &shared.drive.index;
    let graph = &index.graph;
    let names: Vec<&str> = nodes.iter().map(|&n| index.name(n)).collect();
    let rows = sqlx::query(&shared.drive.store.sql().load_state)
        .bind(run.0)
        .bind(&names)
        .bind(listeners)
        .bind(ks)
        .bind(with_run)
        .fetch_all(conn)
        .await?;
    let mut loaded = Loaded {
        events: Vec::new(),
        groups: Vec::new(),
        run: None,
    };
    for row in rows {
        let what = row.try_get::<i32, _>(0)?;
        if what == 2 {
            let version: String = row.try_get(1)?;
            let status: String = row.try_get(3)?;
            let columns: Value = row.try_get(4)?;
            // A row that does not read as expected leaves the completion to the locked path.
            loaded.run = RunRow::from_json(&columns).map(|run| (version, status, run));
            continue;
        }
        let Some(at) = index.node(row.try_get::<&str, _>(1)?) else {
            continue; // an event this binary does not know
        };
        if what == 0 {
            loaded.events.push(EventRow {
                node: at,
                kind: row.try_get(3)?,
                value: row.try_get(4)?,
                completions: row.try_get(5)?,
                triggered: row.try_get(6)?,
            });
        } else {
            // A group index this binary's graph does not have is skipped, never trusted.
            let (first, end) = (graph.listens[at as usize], graph.listens[at as usize + 1]);
            let Some(group) = u32::try_from(row.try_get::<i32, _>(2)?)
                .ok()
                .map(|k| first + k)
                .filter(|&group| group < end)
            else {
                continue;
            };
            loaded.groups.push(GroupRow {
                group,
                ready: row.try_get(5)?,
                delivered: row.try_get::<Option<Vec<bool>>, _>(7)?.unwrap_or_default(),
                fired: row.try_get::<Option<bool>, _>(8)?.unwrap_or(false),
            });
        }
    }
    Ok(loaded)
}
