//! The completion of one event, in one transaction: the fenced release of its task, the
//! run's row locked (one run's completions take turns), the state of only the groups the
//! event is a member of (its fan-out, never the whole run) run through the dispatch core,
//! the changed rows written back, the triggered events inserted, the history appended,
//! the counters kept, the run ended when nothing is left, and one notification.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use sqlx::{Postgres, Row, Transaction};

use super::error::{DurableError, RunId};
use super::queue::{Claimed, RunRow};
use super::store::PgStore;
use super::stored::StoredError;
use super::task_input;
use super::worker::WorkerShared;
use crate::core::dispatch::{self, DispatchState, EventRun, GroupRun, Start};
use crate::core::flow::{AnyValue, ErasedFlow, Flow};
use crate::core::graph::{Graph, GroupId, NodeId};
use crate::core::input::Latest;
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

impl DispatchState for PartialState {
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
        self.groups
            .entry(group)
            .or_insert_with(|| GroupRun::new(group))
    }

    fn delivered_mut(&mut self, slot: u32) -> &mut bool {
        self.delivered.entry(slot).or_insert(false)
    }

    fn task_id(&mut self) -> u64 {
        self.next_task_id += 1;
        self.next_task_id
    }
}

/// Values inside a completion stay JSON: the dispatch core only moves them.
fn json_value(value: Value) -> AnyValue {
    Arc::new(value)
}

fn latest_of(kind: Option<&str>, value: Option<Value>) -> Option<Latest> {
    match kind? {
        "value" => Some(Latest::Value(json_value(value.unwrap_or(Value::Null)))),
        "goto" => Some(Latest::Goto(json_value(value.unwrap_or(Value::Null)))),
        _ => Some(Latest::Abort),
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

/// Complete `task` (of event `node`) with `flow`. `Ok(false)`: the claim was stale (its
/// lease taken over, or its run ended), nothing was written. `traceparent`: that of the
/// span of this event run, the parent of the spans of the events it triggers (when none,
/// they get the task's own, else the run's).
///
/// Four round trips when nothing is capped: the run's row locked with the fenced release
/// and the history row; the state it touches loaded; everything it changed written, in
/// one statement each; the commit.
pub(crate) async fn complete(
    shared: &WorkerShared,
    task: &Claimed,
    node: NodeId,
    flow: &ErasedFlow,
    traceparent: Option<&str>,
) -> Result<bool, DurableError> {
    let index = &shared.drive.index;
    let graph: &Arc<Graph> = &index.graph;
    let store = &shared.drive.store;
    let sql = store.sql();
    let (flow, kind, value) = match encode_flow(shared, node, flow) {
        Ok(encoded) => encoded,
        Err(detail) => {
            let error = Error::Failed {
                event: task.event.clone(),
                source: format!("its output cannot be serialized to JSON: {detail}").into(),
            };
            return store
                .fail_run(task, &StoredError::from_error(&error), &shared.name)
                .await;
        }
    };

    let mut tx = store.pool().begin().await?;
    // The run's row locked, and the fenced release of the task with its history row: no
    // row is written unless this claim still holds the task and the run is running.
    let Some(row) = sqlx::query(&sql.release_locked)
        .bind(task.run.0)
        .bind(task.id)
        .bind(task.attempt)
        .bind(kind)
        .bind(value)
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

    // What this completion may touch: the event, the listeners of the groups it is a
    // member of (and the members of the small ones), and its goto targets.
    let mut asked: Vec<NodeId> = vec![node];
    let groups: Vec<GroupId> = graph.member_of(node).iter().map(|&(g, _)| g).collect();
    for &group in &groups {
        let info = graph.group(group);
        let members = graph.members(info);
        if members.len() <= SMALL_GROUP {
            asked.extend_from_slice(members);
        }
        asked.push(info.listener);
    }
    if let Flow::Goto { targets, .. } = &flow {
        asked.extend(targets.iter().filter_map(|t| graph.resolve(t.0)));
    }
    asked.sort_unstable();
    asked.dedup();
    let group_key = |group: GroupId| {
        let info = graph.group(group);
        let k = group - graph.listens[info.listener as usize];
        (index.name(info.listener).to_string(), k as i32)
    };
    let (listeners, ks): (Vec<String>, Vec<i32>) = groups.iter().map(|&g| group_key(g)).unzip();
    let (mut event_rows, group_rows) =
        load_state(&mut tx, shared, task.run, &asked, &listeners, &ks).await?;

    // The dispatch core, over this partial state; again with the members' rows when a
    // large join fired.
    let mut asked: HashSet<NodeId> = asked.into_iter().collect();
    let next_task_id = u64::try_from(run.next_task_id).unwrap_or(0);
    let (mut state, starts) = loop {
        let mut state =
            PartialState::new(graph, &event_rows, &group_rows, asked.clone(), next_task_id);
        let mut starts: Vec<Start> = Vec::new();
        let dispatched = dispatch::complete(
            graph,
            &mut state,
            &mut Vec::new(),
            node,
            copy_flow(&flow),
            &mut starts,
        );
        let missed = std::mem::take(&mut *state.missed.borrow_mut());
        if !missed.is_empty() {
            let (more, _) = load_state(&mut tx, shared, task.run, &missed, &[], &[]).await?;
            event_rows.extend(more);
            asked.extend(missed);
            continue;
        }
        if let Err(error) = dispatched {
            return fail_run(store, tx, task, &error).await;
        }
        break (state, starts);
    };

    // Budgets, counted as each start is triggered, as in-process runs do.
    let mut steps = run.steps;
    let mut starts_changed: Vec<NodeId> = Vec::new();
    for start in &starts {
        let over = if u64::try_from(steps).unwrap_or(u64::MAX)
            >= u64::try_from(run.max_steps).unwrap_or(0)
        {
            Some(
                store
                    .too_many_steps(&mut tx, task.run, run.max_steps, index)
                    .await?,
            )
        } else {
            let entry = state.event_mut(start.node);
            let limit = u32::try_from(run.max_runs_per_event).unwrap_or(0);
            (entry.triggered >= limit).then(|| Error::TooManyRuns {
                event: index.name(start.node).to_string(),
                runs: entry.triggered,
                limit,
            })
        };
        if let Some(error) = over {
            return fail_run(store, tx, task, &error).await;
        }
        state.event_mut(start.node).triggered += 1;
        steps += 1;
        starts_changed.push(start.node);
    }

    // What changed: the event, the started events' counters, the groups.
    let mut changed: Vec<NodeId> = vec![node];
    changed.extend(starts_changed);
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
    let mut group_delivered = Vec::with_capacity(groups.len());
    let mut group_ready = Vec::with_capacity(groups.len());
    let mut group_fired = Vec::with_capacity(groups.len());
    for &group in &groups {
        let delivered: Vec<&str> = graph
            .group(group)
            .slots
            .clone()
            .map(|slot| if *state.delivered_mut(slot) { "t" } else { "f" })
            .collect();
        let entry = state.group_mut(group);
        group_ready.push(entry.ready as i32);
        group_fired.push(entry.fired);
        group_delivered.push(delivered.join(","));
    }

    // The triggered events: queued ones of the run first, then these, within its cap.
    let mut in_flight = run.in_flight - 1;
    let promoted = store.promote(&mut tx, task.run, &run, in_flight).await?;
    in_flight += promoted;
    let mut ready_starts = 0;
    let queued_before = store.has_queued(&mut tx, task.run, &run).await?;
    let mut tasks = TaskColumns::with_capacity(starts.len());
    for start in &starts {
        let ready = !queued_before && run.has_room(in_flight);
        if ready {
            in_flight += 1;
            ready_starts += 1;
        }
        tasks.ids.push(start.input.task_id as i64);
        tasks.events.push(index.name(start.node).to_string());
        tasks
            .inputs
            .push(task_input::encode(index, start.node, &start.input));
        tasks.states.push(if ready { "ready" } else { "queued" });
        tasks.causes.push(match start.input.behavior {
            crate::Behavior::Goto => "goto",
            _ => "dispatch",
        });
    }
    let parent: Option<String> = traceparent
        .map(str::to_string)
        .or_else(|| task.traceparent.clone())
        .or_else(|| run.traceparent.clone());
    let parents = vec![parent; starts.len()];
    let open_tasks = run.open_tasks - 1 + starts.len() as i32;
    sqlx::query(&sql.write_state)
        .bind(task.run.0)
        .bind(&events.names)
        .bind(&events.kinds)
        .bind(&events.values)
        .bind(&events.completions)
        .bind(&events.triggered)
        .bind(&listeners)
        .bind(&ks)
        .bind(&group_ready)
        .bind(&group_delivered)
        .bind(&group_fired)
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

/// The rows of the events `nodes` and of the groups (`listeners`, `ks`), under the run's
/// lock taken by an earlier statement of `tx`.
async fn load_state(
    tx: &mut Transaction<'static, Postgres>,
    shared: &WorkerShared,
    run: RunId,
    nodes: &[NodeId],
    listeners: &[String],
    ks: &[i32],
) -> Result<(Vec<EventRow>, Vec<GroupRow>), DurableError> {
    let index = &shared.drive.index;
    let graph = &index.graph;
    let names: Vec<&str> = nodes.iter().map(|&n| index.name(n)).collect();
    let rows = sqlx::query(&shared.drive.store.sql().load_state)
        .bind(run.0)
        .bind(&names)
        .bind(listeners)
        .bind(ks)
        .fetch_all(&mut **tx)
        .await?;
    let (mut events, mut groups) = (Vec::new(), Vec::new());
    for row in rows {
        let Some(at) = index.node(row.try_get::<&str, _>(1)?) else {
            continue; // an event this binary does not know
        };
        if row.try_get::<i32, _>(0)? == 0 {
            events.push(EventRow {
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
            groups.push(GroupRow {
                group,
                ready: row.try_get(5)?,
                delivered: row.try_get::<Option<Vec<bool>>, _>(7)?.unwrap_or_default(),
                fired: row.try_get::<Option<bool>, _>(8)?.unwrap_or(false),
            });
        }
    }
    Ok((events, groups))
}
