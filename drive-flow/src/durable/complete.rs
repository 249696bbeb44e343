//! The completion of one event, in one transaction: the fenced release of its task, the
//! run's row locked (one run's completions take turns), the state of only the groups the
//! event is a member of (its fan-out, never the whole run) run through the dispatch core,
//! the changed rows written back, the triggered events inserted, the history appended,
//! the counters kept, the run ended when nothing is left, and one notification.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sqlx::Row;

use super::error::DurableError;
use super::queue::Claimed;
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
}

impl DispatchState for PartialState {
    fn event_mut(&mut self, node: NodeId) -> &mut EventRun {
        self.events
            .entry(node)
            .or_insert_with(|| EventRun::new(node))
    }

    fn latest(&self, node: NodeId) -> Option<&Latest> {
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
    let Some(run) = store.lock_run(&mut tx, task.run).await? else {
        return Ok(false);
    };
    // The fenced release of the task and its history row, in one statement: no row is
    // written unless this claim still holds the task.
    let released = sqlx::query(&sql.task_done_recorded)
        .bind(task.id)
        .bind(task.attempt)
        .bind(kind)
        .bind(value)
        .bind(&shared.name)
        .bind(task.started_at)
        .execute(&mut *tx)
        .await?;
    if released.rows_affected() != 1 {
        return Ok(false);
    }
    if run.overdue {
        store.timeout_run(&mut tx, task.run).await?;
        tx.commit().await?;
        return Ok(true);
    }

    // What this completion may touch: the event, the members and listeners of the groups
    // it is a member of, and its goto targets.
    let mut touched: Vec<NodeId> = vec![node];
    let groups: Vec<GroupId> = graph.member_of(node).iter().map(|&(g, _)| g).collect();
    for &group in &groups {
        let info = graph.group(group);
        touched.extend_from_slice(graph.members(info));
        touched.push(info.listener);
    }
    if let Flow::Goto { targets, .. } = &flow {
        touched.extend(targets.iter().filter_map(|t| graph.resolve(t.0)));
    }
    touched.sort_unstable();
    touched.dedup();
    let names: Vec<String> = touched.iter().map(|&n| index.name(n).to_string()).collect();
    let mut state = PartialState {
        events: HashMap::with_capacity(touched.len()),
        groups: HashMap::with_capacity(groups.len()),
        delivered: HashMap::new(),
        next_task_id: u64::try_from(run.next_task_id).unwrap_or(0),
    };
    for row in sqlx::query(&sql.load_events)
        .bind(task.run.0)
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?
    {
        let Some(at) = index.node(row.get::<&str, _>(0)) else {
            continue;
        };
        let entry = state.event_mut(at);
        entry.latest = latest_of(row.get(1), row.get(2));
        entry.completions = row.get::<i32, _>(3) as u32;
        entry.triggered = row.get::<i32, _>(4) as u32;
    }
    let group_key = |group: GroupId| {
        let info = graph.group(group);
        let k = group - graph.listens[info.listener as usize];
        (index.name(info.listener).to_string(), k as i32)
    };
    let (listeners, ks): (Vec<String>, Vec<i32>) = groups.iter().map(|&g| group_key(g)).unzip();
    let group_rows = if groups.is_empty() {
        Vec::new()
    } else {
        sqlx::query(&sql.load_groups)
            .bind(task.run.0)
            .bind(&listeners)
            .bind(&ks)
            .fetch_all(&mut *tx)
            .await?
    };
    for row in group_rows {
        let Some(listener) = index.node(row.get::<&str, _>(0)) else {
            continue;
        };
        let k: i32 = row.get(1);
        let group = graph.listens[listener as usize] + k as u32;
        let delivered: Vec<bool> = row.get(3);
        let mut count = 0;
        for (slot, was) in graph.group(group).slots.clone().zip(delivered) {
            state.delivered.insert(slot, was);
            count += u32::from(was);
        }
        let entry = state.group_mut(group);
        entry.ready = row.get::<i32, _>(2) as u32;
        entry.delivered = count;
        entry.fired = row.get(4);
    }

    // The dispatch core, over this partial state.
    let mut starts: Vec<Start> = Vec::new();
    let dispatched =
        dispatch::complete(graph, &mut state, &mut Vec::new(), node, flow, &mut starts);
    if let Err(error) = dispatched {
        store
            .end_run(
                &mut tx,
                task.run,
                "failed",
                Some(&StoredError::from_error(&error)),
            )
            .await?;
        tx.commit().await?;
        return Ok(true);
    }

    // Budgets, counted as each start is triggered, as in-process runs do.
    let mut steps = run.steps;
    let mut starts_changed: Vec<NodeId> = Vec::new();
    for start in &starts {
        if u64::try_from(steps).unwrap_or(u64::MAX) >= u64::try_from(run.max_steps).unwrap_or(0) {
            let error = store
                .too_many_steps(&mut tx, task.run, run.max_steps, index)
                .await?;
            store
                .end_run(
                    &mut tx,
                    task.run,
                    "failed",
                    Some(&StoredError::from_error(&error)),
                )
                .await?;
            tx.commit().await?;
            return Ok(true);
        }
        let entry = state.event_mut(start.node);
        let limit = u32::try_from(run.max_runs_per_event).unwrap_or(0);
        if entry.triggered >= limit {
            let error = Error::TooManyRuns {
                event: index.name(start.node).to_string(),
                runs: entry.triggered,
                limit,
            };
            store
                .end_run(
                    &mut tx,
                    task.run,
                    "failed",
                    Some(&StoredError::from_error(&error)),
                )
                .await?;
            tx.commit().await?;
            return Ok(true);
        }
        entry.triggered += 1;
        steps += 1;
        starts_changed.push(start.node);
    }

    // Write back what changed: the event, the started events' counters, the groups.
    let mut changed: Vec<NodeId> = vec![node];
    changed.extend(starts_changed);
    changed.sort_unstable();
    changed.dedup();
    let mut e_names = Vec::with_capacity(changed.len());
    let mut e_kinds = Vec::with_capacity(changed.len());
    let mut e_values = Vec::with_capacity(changed.len());
    let mut e_completions = Vec::with_capacity(changed.len());
    let mut e_triggered = Vec::with_capacity(changed.len());
    for at in &changed {
        let row = state.event_mut(*at);
        let (kind, value) = match &row.latest {
            Some(latest) => {
                let (kind, value) = task_input::latest_json(latest);
                (Some(kind.to_string()), Some(value))
            }
            None => (None, None),
        };
        e_names.push(index.name(*at).to_string());
        e_kinds.push(kind);
        e_values.push(value);
        e_completions.push(row.completions as i32);
        e_triggered.push(row.triggered as i32);
    }
    sqlx::query(&sql.upsert_event)
        .bind(task.run.0)
        .bind(&e_names)
        .bind(&e_kinds)
        .bind(&e_values)
        .bind(&e_completions)
        .bind(&e_triggered)
        .execute(&mut *tx)
        .await?;
    if !groups.is_empty() {
        let mut g_listeners = Vec::with_capacity(groups.len());
        let mut g_ks = Vec::with_capacity(groups.len());
        let mut g_ready = Vec::with_capacity(groups.len());
        let mut g_delivered = Vec::with_capacity(groups.len());
        let mut g_fired = Vec::with_capacity(groups.len());
        for &group in &groups {
            let (listener, k) = group_key(group);
            let delivered: Vec<&str> = graph
                .group(group)
                .slots
                .clone()
                .map(|slot| if *state.delivered_mut(slot) { "t" } else { "f" })
                .collect();
            let entry = state.group_mut(group);
            g_listeners.push(listener);
            g_ks.push(k);
            g_ready.push(entry.ready as i32);
            g_fired.push(entry.fired);
            g_delivered.push(delivered.join(","));
        }
        sqlx::query(&sql.upsert_group)
            .bind(task.run.0)
            .bind(&g_listeners)
            .bind(&g_ks)
            .bind(&g_ready)
            .bind(&g_delivered)
            .bind(&g_fired)
            .execute(&mut *tx)
            .await?;
    }

    // The triggered events: queued ones of the run first, then these, within its cap.
    let mut in_flight = run.in_flight - 1;
    in_flight += store.promote(&mut tx, task.run, &run, in_flight).await?;
    let mut readied = in_flight > run.in_flight - 1;
    let mut t_ids = Vec::with_capacity(starts.len());
    let mut t_events = Vec::with_capacity(starts.len());
    let mut t_inputs = Vec::with_capacity(starts.len());
    let mut t_states = Vec::with_capacity(starts.len());
    let mut t_causes = Vec::with_capacity(starts.len());
    let parent: Option<String> = traceparent
        .map(str::to_string)
        .or_else(|| task.traceparent.clone())
        .or_else(|| run.traceparent.clone());
    let t_parents = vec![parent; starts.len()];
    let queued_before = store.has_queued(&mut tx, task.run, &run).await?;
    for start in &starts {
        t_ids.push(start.input.task_id as i64);
        t_events.push(index.name(start.node).to_string());
        t_inputs.push(task_input::encode(index, start.node, &start.input));
        let state = if !queued_before && run.has_room(in_flight) {
            in_flight += 1;
            readied = true;
            "ready"
        } else {
            "queued"
        };
        t_states.push(state);
        t_causes.push(match start.input.behavior {
            crate::Behavior::Goto => "goto",
            _ => "dispatch",
        });
    }
    if !starts.is_empty() {
        sqlx::query(&sql.insert_task)
            .bind(task.run.0)
            .bind(&t_ids)
            .bind(&t_events)
            .bind(&t_inputs)
            .bind(&t_states)
            .bind(&t_causes)
            .bind(&t_parents)
            .execute(&mut *tx)
            .await?;
    }
    let open_tasks = run.open_tasks - 1 + starts.len() as i32;
    if open_tasks <= 0 {
        store.end_run(&mut tx, task.run, "succeeded", None).await?;
    } else {
        // The counters, and the wake-up of idle workers when something became ready.
        sqlx::query(&sql.run_counters_notify)
            .bind(task.run.0)
            .bind(steps)
            .bind(in_flight)
            .bind(open_tasks)
            .bind(state.next_task_id as i64)
            .bind(readied.then_some(sql.work_channel.as_str()))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}
