//! The reference model of the property tests, shared by `tests/reference.rs` (the
//! in-process runner) and `tests/durable_reference.rs` (durable runs): generated graph specs
//! and their strategies, the events' bodies, the drive built from a spec, a small sequential
//! reference interpreter of SEMANTICS.md (a FIFO queue, per-event latest outcome,
//! per-(listener, group) delivered sets, written as step 3 words it), and the comparison of a
//! runner's run with it. Only the runner differs between the two test binaries.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use drive_flow::{
    Behavior, Context, Drive, DriveBuilder, EventInput, EventRef, Flow, Group, Handle, OutcomeKind,
    Results, Retrigger,
};
use proptest::prelude::*;
use proptest::sample::Index;

pub const MAX_EVENTS: usize = 12;

/// One group of a generated event, as given to the builder (before de-duplication).
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub members: Vec<usize>,
    pub retrigger: Retrigger,
    pub name: Option<String>,
}

/// What one call of an event does.
#[derive(Clone, Debug)]
pub enum Action {
    Value,
    Goto(Vec<usize>),
    Abort,
}

/// A generated event: its groups, and its script: call `c` (from 1) does `script[c - 1]`;
/// every later call aborts (the event's call budget).
#[derive(Clone, Debug)]
pub struct EventSpec {
    pub groups: Vec<GroupSpec>,
    pub script: Vec<Action>,
    /// How long each call sleeps, in units of 300 µs (concurrent runs only).
    pub delay: u8,
    /// Its body does not take its input (it sees [`View::blind`]): its groups keep no
    /// outcome of their members (their joins' state is then packed in one word).
    pub blind: bool,
}

/// A generated graph. Event 0 starts the run.
#[derive(Clone, Debug)]
pub struct GraphSpec {
    pub events: Vec<EventSpec>,
}

/// What one call received: group name, behavior, results (member index, kind, value).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct View {
    pub group: String,
    pub behavior: Behavior,
    pub results: Vec<(usize, OutcomeKind, Option<u64>)>,
}

impl View {
    /// What a body that does not take its input sees: nothing.
    pub fn blind() -> View {
        View {
            group: String::from("(blind)"),
            behavior: Behavior::Dispatch,
            results: Vec::new(),
        }
    }
}

/// One call: event index, call number (from 1), what it received.
type CallRecord = (usize, u32, View);

/// How one call ends.
pub enum Outcome {
    Value(u64),
    Goto(Vec<usize>, u64),
    Abort,
}

/// The body of every event, shared by the runner and the reference: the outcome is the
/// script's action for this call, the value a hash of everything the call received.
pub fn body(spec: &GraphSpec, event: usize, call: u32, view: &View) -> Outcome {
    let mut hasher = DefaultHasher::new();
    (event, call, view).hash(&mut hasher);
    let value = hasher.finish();
    match spec.events[event].script.get(call as usize - 1) {
        Some(Action::Value) => Outcome::Value(value),
        Some(Action::Goto(targets)) => Outcome::Goto(targets.clone(), value),
        Some(Action::Abort) | None => Outcome::Abort,
    }
}

pub fn name(event: usize) -> String {
    format!("e{event}")
}

// ---------------------------------------------------------------------------------------
// The reference interpreter.
// ---------------------------------------------------------------------------------------

/// The groups of every listener as the builder keeps them (SEMANTICS "Definitions" and
/// "Fine points"): a member repeated inside a group counts once; a group with the same
/// members in the same order as an earlier group of the same listener is dropped; default
/// names count the kept groups.
pub fn kept_groups(spec: &GraphSpec) -> Vec<Vec<(Vec<usize>, String, Retrigger)>> {
    spec.events
        .iter()
        .map(|event| {
            let mut kept: Vec<(Vec<usize>, String, Retrigger)> = Vec::new();
            for group in &event.groups {
                let mut members = Vec::new();
                for &m in &group.members {
                    if !members.contains(&m) {
                        members.push(m);
                    }
                }
                if kept.iter().any(|(same, _, _)| *same == members) {
                    continue;
                }
                let name = group.name.clone().unwrap_or(kept.len().to_string());
                kept.push((members, name, group.retrigger));
            }
            kept
        })
        .collect()
}

/// An event's latest outcome as its listeners and the results see it: kind and value.
type Latest = (OutcomeKind, Option<u64>);

pub struct ReferenceRun {
    pub calls: Vec<u32>,
    pub latest: Vec<Option<Latest>>,
    pub log: Vec<CallRecord>,
}

/// Run `spec` from event 0, one call at a time, in FIFO order.
pub fn reference(spec: &GraphSpec) -> ReferenceRun {
    let n = spec.events.len();
    let groups = kept_groups(spec);
    let mut latest: Vec<Option<Latest>> = vec![None; n];
    // delivered[m]: the (listener, group index) pairs m's current latest was handed to.
    let mut delivered: Vec<HashSet<(usize, usize)>> = vec![HashSet::new(); n];
    let mut calls = vec![0u32; n];
    let mut log = Vec::new();
    let mut queue = VecDeque::new();
    queue.push_back((
        0,
        View {
            group: String::from("user_input"),
            behavior: Behavior::Input,
            results: Vec::new(),
        },
    ));

    while let Some((event, view)) = queue.pop_front() {
        assert!(log.len() < 100_000, "the reference run does not end");
        calls[event] += 1;
        let call = calls[event];
        let view = if spec.events[event].blind {
            View::blind()
        } else {
            view
        };
        let outcome = body(spec, event, call, &view);
        log.push((event, call, view));

        // Overwrite the state, whatever the outcome.
        latest[event] = Some(match &outcome {
            Outcome::Value(value) => (OutcomeKind::Value, Some(*value)),
            Outcome::Goto(..) => (OutcomeKind::Goto, None),
            Outcome::Abort => (OutcomeKind::Abort, None),
        });
        delivered[event].clear();

        match outcome {
            Outcome::Abort => {}
            Outcome::Goto(targets, payload) => {
                for target in targets {
                    queue.push_back((
                        target,
                        View {
                            group: String::from("$goto"),
                            behavior: Behavior::Goto,
                            results: vec![(event, OutcomeKind::Value, Some(payload))],
                        },
                    ));
                }
            }
            Outcome::Value(_) => {
                for (listener, listener_groups) in groups.iter().enumerate() {
                    for (index, (members, group_name, retrigger)) in
                        listener_groups.iter().enumerate()
                    {
                        if !members.contains(&event) {
                            continue;
                        }
                        if !members.iter().all(|&m| latest[m].is_some()) {
                            continue;
                        }
                        if *retrigger == Retrigger::All
                            && members
                                .iter()
                                .any(|&m| delivered[m].contains(&(listener, index)))
                        {
                            continue;
                        }
                        let results = members
                            .iter()
                            .map(|&m| {
                                let (kind, value) = latest[m].expect("every member has run");
                                (m, kind, value)
                            })
                            .collect();
                        queue.push_back((
                            listener,
                            View {
                                group: group_name.clone(),
                                behavior: Behavior::Dispatch,
                                results,
                            },
                        ));
                        for &m in members {
                            delivered[m].insert((listener, index));
                        }
                    }
                }
            }
        }
    }
    ReferenceRun { calls, latest, log }
}

// ---------------------------------------------------------------------------------------
// The same graph on the real runner.
// ---------------------------------------------------------------------------------------

/// The run's context: a call counter per event, and every call in the order they started.
pub struct Probe {
    pub calls: Vec<AtomicU32>,
    pub log: Mutex<Vec<CallRecord>>,
}

pub fn view_of(input: &EventInput) -> View {
    View {
        group: input.group_name().to_string(),
        behavior: input.behavior(),
        results: input
            .results()
            .iter()
            .map(|r| {
                let index = r.event()[1..].parse().expect("events are named e<index>");
                (index, r.kind(), r.value::<u64>().copied())
            })
            .collect(),
    }
}

/// The drive of `spec`: an event per generated event, each logging its calls in the run's
/// [`Probe`] and computing its outcome with [`body`]. `prepare` sees the builder before it
/// is built (the durable tests give every event its codec there).
pub fn build(
    spec: &Arc<GraphSpec>,
    sleep: bool,
    prepare: impl FnOnce(&mut DriveBuilder, &[Handle<u64>]),
) -> (Drive, Vec<Handle<u64>>) {
    let mut builder = DriveBuilder::new();
    let cell: Arc<OnceLock<Vec<Handle<u64>>>> = Arc::new(OnceLock::new());
    let handles: Vec<Handle<u64>> = (0..spec.events.len())
        .map(|event| {
            let spec = spec.clone();
            let cell = cell.clone();
            if spec.events[event].blind {
                // Without its input: a body that takes only its context.
                return builder.event(name(event), move |probe: Context<Probe>| {
                    let run = Call::new(&spec, &cell, event, sleep);
                    async move { run.call(&probe, View::blind()).await }
                });
            }
            builder.event(
                name(event),
                move |input: EventInput, probe: Context<Probe>| {
                    let run = Call::new(&spec, &cell, event, sleep);
                    async move { run.call(&probe, view_of(&input)).await }
                },
            )
        })
        .collect();
    cell.set(handles.clone()).expect("set once");
    // Groups are added listener by listener in reverse definition order: the order in which
    // listeners are queued must follow the definition order of the events, not this.
    for (event, spec_event) in spec.events.iter().enumerate().rev() {
        for group in &spec_event.groups {
            let mut g =
                Group::new(group.members.iter().map(|&m| handles[m])).retrigger(group.retrigger);
            if let Some(group_name) = &group.name {
                g = g.name(group_name.clone());
            }
            builder.listen(handles[event], g);
        }
    }
    prepare(&mut builder, &handles);
    (
        builder.build().expect("generated graphs are valid"),
        handles,
    )
}

/// One call of a generated event on the real runner, given what its body saw.
struct Call {
    spec: Arc<GraphSpec>,
    cell: Arc<OnceLock<Vec<Handle<u64>>>>,
    event: usize,
    sleep: bool,
}

impl Call {
    fn new(
        spec: &Arc<GraphSpec>,
        cell: &Arc<OnceLock<Vec<Handle<u64>>>>,
        event: usize,
        sleep: bool,
    ) -> Self {
        Call {
            spec: spec.clone(),
            cell: cell.clone(),
            event,
            sleep,
        }
    }

    /// Log the call and what it saw, sleep for its delay, and end as its script says.
    async fn call(self, probe: &Probe, view: View) -> Flow<u64> {
        let Call {
            spec,
            cell,
            event,
            sleep,
        } = self;
        let call = probe.calls[event].fetch_add(1, Ordering::SeqCst) + 1;
        probe.log.lock().unwrap().push((event, call, view.clone()));
        let delay = spec.events[event].delay;
        if sleep && delay > 0 {
            tokio::time::sleep(Duration::from_micros(300 * u64::from(delay))).await;
        }
        match body(&spec, event, call, &view) {
            Outcome::Value(value) => Flow::Value(value),
            Outcome::Goto(targets, payload) => {
                let handles = cell.get().expect("handles are set before runs");
                let targets: Vec<EventRef> = targets.iter().map(|&t| handles[t].into()).collect();
                Flow::goto(targets, payload)
            }
            Outcome::Abort => Flow::abort(),
        }
    }
}

pub struct RunnerRun {
    pub results: Results,
    pub probe: Arc<Probe>,
    pub handles: Vec<Handle<u64>>,
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Compare a runner's run with the reference: per event, how many calls, the latest
/// outcome's kind and value; the calls themselves, in order or as a set.
pub fn compare(
    runner: &RunnerRun,
    expected: &ReferenceRun,
    in_order: bool,
) -> Result<(), TestCaseError> {
    let mut log = runner.probe.log.lock().unwrap().clone();
    let mut expected_log = expected.log.clone();
    if !in_order {
        log.sort_by_key(|(event, call, _)| (*event, *call));
        expected_log.sort_by_key(|(event, call, _)| (*event, *call));
    }
    prop_assert_eq!(log, expected_log, "the calls and what they received");
    for (event, handle) in runner.handles.iter().enumerate() {
        let (kind, value) = match expected.latest[event] {
            Some((kind, value)) => (Some(kind), value),
            None => (None, None),
        };
        prop_assert_eq!(
            runner.results.count(*handle),
            expected.calls[event],
            "calls of e{}",
            event
        );
        prop_assert_eq!(
            runner.probe.calls[event].load(Ordering::SeqCst),
            expected.calls[event],
            "calls of e{} seen by the event",
            event
        );
        prop_assert_eq!(
            runner.results.outcome(*handle),
            kind,
            "outcome of e{}",
            event
        );
        prop_assert_eq!(
            runner.results.get(*handle).copied(),
            value,
            "value of e{}",
            event
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Graph generators.
// ---------------------------------------------------------------------------------------

pub fn retrigger() -> impl Strategy<Value = Retrigger> {
    prop_oneof![Just(Retrigger::All), Just(Retrigger::Any)]
}

pub fn group(n: usize, listener: usize) -> impl Strategy<Value = GroupSpec> {
    let name = prop_oneof![
        6 => Just(None),
        1 => Just(Some(String::from("0"))),
        1 => Just(Some(String::from("named"))),
    ];
    // One member defined before the listener (so that most events are reachable from the
    // start), at any position among 0 to 2 members taken anywhere (so that cycles,
    // self-loops and repeated members are common).
    (
        any::<Index>(),
        prop::collection::vec(0..n, 0..=2),
        any::<Index>(),
        retrigger(),
        name,
    )
        .prop_map(move |(earlier, mut members, at, retrigger, name)| {
            let earlier = if listener == 0 {
                0
            } else {
                earlier.index(listener)
            };
            members.insert(at.index(members.len() + 1), earlier);
            GroupSpec {
                members,
                retrigger,
                name,
            }
        })
}

/// Whether an event's body does not take its input: one in three.
pub fn blind() -> impl Strategy<Value = bool> {
    prop_oneof![2 => Just(false), 1 => Just(true)]
}

pub fn action(n: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => Just(Action::Value),
        2 => prop::collection::vec(0..n, 0..=2).prop_map(Action::Goto),
        1 => Just(Action::Abort),
    ]
}

/// Any graph: up to 3 groups per event (at least one for every event but the start) over
/// any events (self-loops, cycles, repeated members, duplicate groups), scripts of 1 to 4
/// calls mixing values, gotos and aborts.
pub fn any_graph() -> impl Strategy<Value = GraphSpec> {
    (1..=MAX_EVENTS).prop_flat_map(|n| {
        let events: Vec<_> = (0..n)
            .map(|listener| {
                let groups = if listener == 0 { 0..=2 } else { 1..=3 };
                (
                    prop::collection::vec(group(n, listener), groups),
                    prop::collection::vec(action(n), 1..=4),
                    blind(),
                )
                    .prop_map(move |(groups, mut script, blind)| {
                        if listener == 0 {
                            // A start that aborts at once tests little.
                            script[0] = Action::Value;
                        }
                        EventSpec {
                            groups,
                            script,
                            delay: 0,
                            // The start's input is the run's: it reads it.
                            blind: blind && listener > 0,
                        }
                    })
            })
            .collect();
        events.prop_map(|events| GraphSpec { events })
    })
}

/// How many events [`widen`] adds to every group of every listener but the start: with
/// them, a group has more members than a join packed in one word (24), so that its join
/// has a locked state, and counts its members' first completions down without the lock
/// (keeping their outcomes apart, if its listener reads them).
pub const FILLERS: usize = 24;

/// `spec` with [`FILLERS`] more events, each listening to the start alone and producing a
/// value on its first call (a later one aborts: the call budget), appended to every group
/// of every listener but the start.
pub fn widen(mut spec: GraphSpec) -> GraphSpec {
    let first = spec.events.len();
    let fillers: Vec<usize> = (first..first + FILLERS).collect();
    for event in spec.events.iter_mut().skip(1) {
        for group in &mut event.groups {
            group.members.extend(&fillers);
        }
    }
    spec.events.extend(fillers.iter().map(|_| EventSpec {
        groups: vec![GroupSpec {
            members: vec![0],
            retrigger: Retrigger::All,
            name: None,
        }],
        script: vec![Action::Value],
        delay: 0,
        blind: true,
    }));
    spec
}

/// A DAG: every event but the start has exactly one group, of 1 to 3 earlier events
/// (possibly repeated), and every call produces a value. Events sleep 0 to 1.2 ms.
pub fn dag() -> impl Strategy<Value = GraphSpec> {
    (1..=MAX_EVENTS).prop_flat_map(|n| {
        let event = (
            prop::collection::vec(any::<Index>(), 1..=3),
            retrigger(),
            0u8..5,
            blind(),
        );
        prop::collection::vec(event, n).prop_map(|events| GraphSpec {
            events: events
                .into_iter()
                .enumerate()
                .map(|(index, (members, retrigger, delay, blind))| EventSpec {
                    groups: if index == 0 {
                        Vec::new()
                    } else {
                        vec![GroupSpec {
                            members: members.iter().map(|m| m.index(index)).collect(),
                            retrigger,
                            name: None,
                        }]
                    },
                    // A second call would be a bug; it would show as a different value.
                    script: vec![Action::Value; 3],
                    delay,
                    blind: blind && index > 0,
                })
                .collect(),
        })
    })
}

/// A DAG run in rounds: every group is `all`, a last event joins every event that no other
/// event listens to, and sends a goto back to the start for `rounds` rounds. Every event is
/// an ancestor of that join, so a round is over before the next begins, and each event runs
/// once per round whatever the timing: `all` joins see every member fresh once per round.
pub fn dag_in_rounds() -> impl Strategy<Value = GraphSpec> {
    (dag(), 1..=3usize).prop_map(|(mut spec, rounds)| {
        let n = spec.events.len();
        let mut heard = vec![false; n];
        for event in &mut spec.events {
            event.script = vec![Action::Value; rounds + 1];
            for group in &mut event.groups {
                group.retrigger = Retrigger::All;
                for &m in &group.members {
                    heard[m] = true;
                }
            }
        }
        let mut script = vec![Action::Goto(vec![0]); rounds];
        script.push(Action::Value);
        spec.events.push(EventSpec {
            groups: vec![GroupSpec {
                members: (0..n).filter(|&m| !heard[m]).collect(),
                retrigger: Retrigger::All,
                name: Some(String::from("leaves")),
            }],
            script,
            delay: 1,
            blind: true,
        });
        spec
    })
}
