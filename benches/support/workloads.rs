//! The workloads of the overhead benchmark, shared by `benches/overhead.rs` (criterion) and
//! `examples/bench.rs` (the one-screen table), so that both measure the same thing.
//!
//! Every workload is one graph, described once ([`Spec`]) and run four ways:
//!
//! - [`Mode::Drive`]: drive-flow, built with [`DriveBuilder`], its events spawned (a tokio
//!   task per event, but an event started alone runs in its starter's task, and a wide
//!   fan-out's events share a task per part of up to 16);
//! - [`Mode::Inline`]: the same drive with [`Invoke::inline`](drive_flow::Invoke::inline);
//! - [`Mode::Spawn`]: a hand-written tokio scheduler, one `tokio::spawn` per event and an
//!   atomic countdown per join (a `Semaphore` for the capped fan-out; the goto loop spawns
//!   the next turn);
//! - [`Mode::Futures`]: the same work as futures polled by one `FuturesUnordered` in the
//!   caller's task, no spawn.
//!
//! Event bodies are trivial, so what is measured is each scheduler's own cost per event;
//! the core-scaling workloads ([`Spec::spinning`]) give every body the same fixed amount of
//! CPU work (a busy spin on the clock, not a sleep), in drive-flow and in the baselines.

#![allow(dead_code)] // each includer uses a part

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drive_flow::{Drive, DriveBuilder, EventInput, Flow, Group, Handle, Results};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The shape of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `e0 → e1 → … → e(n-1)`.
    Chain,
    /// `start → n listeners`.
    FanOut,
    /// `start → n members → one join listening to all n`.
    FanIn,
    /// `start → n leaves`, joined 8 at a time, level after level, up to one root.
    Tree8,
    /// `start → layers of width 10`; node `j` of a layer joins nodes `j` and `j+1 (mod 10)`
    /// of the layer before; `n / 10` layers.
    Diamond,
    /// `tick → tok → goto tick → …`: `n` events, `n / 2` turns.
    Goto,
    /// [`Kind::FanOut`] with at most 4 events running at once.
    FanOutCap4,
}

/// Every workload, in table order.
pub const KINDS: [Kind; 7] = [
    Kind::Chain,
    Kind::FanOut,
    Kind::FanIn,
    Kind::Tree8,
    Kind::Diamond,
    Kind::Goto,
    Kind::FanOutCap4,
];

impl Kind {
    /// Short name, used in benchmark ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chain => "chain",
            Kind::FanOut => "fan-out",
            Kind::FanIn => "fan-in",
            Kind::Tree8 => "tree-8",
            Kind::Diamond => "diamond",
            Kind::Goto => "goto-loop",
            Kind::FanOutCap4 => "fan-out-cap4",
        }
    }

    /// Parse [`name`](Self::name).
    pub fn parse(name: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.name() == name)
    }

    /// The concurrency cap of the workload.
    pub fn cap(self) -> Option<usize> {
        match self {
            Kind::FanOutCap4 => Some(4),
            _ => None,
        }
    }
}

/// How a workload is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// drive-flow, its events spawned (a wide fan-out's in parts).
    Drive,
    /// drive-flow with `.inline()`.
    Inline,
    /// Hand-written: `tokio::spawn` per event, atomic countdown per join.
    Spawn,
    /// Hand-written: one `FuturesUnordered` in the caller's task.
    Futures,
}

/// Every mode, in table order.
pub const MODES: [Mode; 4] = [Mode::Drive, Mode::Spawn, Mode::Inline, Mode::Futures];

impl Mode {
    /// Short name, used in benchmark ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Drive => "drive",
            Mode::Inline => "drive-inline",
            Mode::Spawn => "base-spawn",
            Mode::Futures => "base-futures",
        }
    }

    /// Parse [`name`](Self::name).
    pub fn parse(name: &str) -> Option<Mode> {
        MODES.into_iter().find(|m| m.name() == name)
    }

    /// Whether the mode runs drive-flow (needs the drive built).
    pub fn is_drive(self) -> bool {
        matches!(self, Mode::Drive | Mode::Inline)
    }
}

/// A workload's graph: node 0 is the start; every other node listens to one group.
pub struct Spec {
    pub kind: Kind,
    pub nodes: usize,
    /// `(listener, members)`, one per listening node.
    pub groups: Vec<(u32, Vec<u32>)>,
    /// Event runs in one run of the workload.
    pub events: usize,
    /// Goto loop only: turns (`tick` + `tok`).
    pub turns: u64,
    /// CPU time each event body spends (busy-spinning on the clock); zero: none.
    pub spin: Duration,
}

impl Spec {
    /// The graph of `kind` at size `n` (about `n` events per run).
    pub fn new(kind: Kind, n: usize) -> Spec {
        let n = n.max(1);
        let mut groups = Vec::new();
        let mut nodes = 1usize; // the start
        let mut add = |groups: &mut Vec<(u32, Vec<u32>)>, members: Vec<u32>| {
            let id = nodes as u32;
            nodes += 1;
            groups.push((id, members));
            id
        };
        let mut turns = 0;
        match kind {
            Kind::Chain => {
                let mut prev = 0;
                for _ in 1..n {
                    prev = add(&mut groups, vec![prev]);
                }
            }
            Kind::FanOut | Kind::FanOutCap4 => {
                for _ in 0..n {
                    add(&mut groups, vec![0]);
                }
            }
            Kind::FanIn => {
                let members: Vec<u32> = (0..n).map(|_| add(&mut groups, vec![0])).collect();
                add(&mut groups, members);
            }
            Kind::Tree8 => {
                let mut level: Vec<u32> = (0..n).map(|_| add(&mut groups, vec![0])).collect();
                while level.len() > 1 {
                    level = level
                        .chunks(8)
                        .map(|chunk| add(&mut groups, chunk.to_vec()))
                        .collect();
                }
            }
            Kind::Diamond => {
                const WIDTH: usize = 10;
                let layers = (n / WIDTH).max(1);
                let mut prev: Vec<u32> = (0..WIDTH).map(|_| add(&mut groups, vec![0])).collect();
                for _ in 1..layers {
                    prev = (0..WIDTH)
                        .map(|j| add(&mut groups, vec![prev[j], prev[(j + 1) % WIDTH]]))
                        .collect();
                }
            }
            Kind::Goto => {
                turns = (n as u64 / 2).max(1);
                add(&mut groups, vec![0]); // tok listens to tick
            }
        }
        let events = if kind == Kind::Goto {
            2 * turns as usize
        } else {
            nodes
        };
        Spec {
            kind,
            nodes,
            groups,
            events,
            turns,
            spin: Duration::ZERO,
        }
    }

    /// [`Spec::new`] with every event body busy for `spin` (CPU, not a sleep): the
    /// core-scaling workloads.
    pub fn spinning(kind: Kind, n: usize, spin: Duration) -> Spec {
        Spec {
            spin,
            ..Spec::new(kind, n)
        }
    }

    /// Group memberships (edges of the graph).
    pub fn edges(&self) -> usize {
        self.groups.iter().map(|(_, m)| m.len()).sum()
    }
}

/// The start event of a built drive.
#[derive(Clone, Copy)]
pub enum Start {
    Unit(Handle<()>),
    Turn(Handle<u64>),
}

/// A drive built from a [`Spec`] with the programmatic builder.
pub struct Built {
    pub drive: Drive,
    pub start: Start,
}

/// Build the drive of `spec`: what a user writes for a generated graph.
pub fn build_drive(spec: &Spec) -> Built {
    let mut builder = DriveBuilder::new();
    if spec.kind == Kind::Goto {
        let turns = spec.turns;
        // tick: turn 0 on the first call, then the payload of tok's goto.
        let tick = builder.event("tick", |input: EventInput| async move {
            let turn = input
                .results()
                .iter()
                .next()
                .and_then(|r| r.value::<u64>().copied())
                .unwrap_or(0);
            Flow::from(turn)
        });
        let tok = builder.event("tok", move |input: EventInput| async move {
            let turn = input.get(tick).copied().unwrap_or(0);
            if turn + 1 < turns {
                Flow::goto([tick], turn + 1)
            } else {
                Flow::abort()
            }
        });
        builder.listen(tok, Group::new([tick]));
        return Built {
            drive: builder.build().expect("goto graph builds"),
            start: Start::Turn(tick),
        };
    }
    let spin = spec.spin;
    let handles: Vec<Handle<()>> = (0..spec.nodes)
        .map(|i| {
            if spin.is_zero() {
                builder.event(format!("e{i}"), || async {})
            } else {
                builder.event(format!("e{i}"), move || async move { busy(spin) })
            }
        })
        .collect();
    for (listener, members) in &spec.groups {
        builder.listen(
            handles[*listener as usize],
            Group::new(members.iter().map(|&m| handles[m as usize])),
        );
    }
    Built {
        drive: builder.build().expect("workload graph builds"),
        start: Start::Unit(handles[0]),
    }
}

/// A 10-event chain in a drive that also holds `extra` events the run never reaches: the
/// cost of a run should not depend on how many events are registered.
pub fn registry_drive(extra: usize) -> Built {
    let mut builder = DriveBuilder::new();
    let start = builder.event("c0", || async {});
    let mut prev = start;
    for i in 1..REGISTRY_CHAIN {
        let next = builder.event(format!("c{i}"), || async {});
        builder.listen(next, Group::new([prev]));
        prev = next;
    }
    for i in 0..extra {
        builder.event(format!("x{i}"), || async {});
    }
    Built {
        drive: builder.build().expect("registry graph builds"),
        start: Start::Unit(start),
    }
}

/// Events of one run of [`registry_drive`].
pub const REGISTRY_CHAIN: usize = 10;

/// One run of a built drive.
pub async fn run_drive(built: &Built, cap: Option<usize>, inline: bool) -> Results {
    macro_rules! go {
        ($start:expr) => {{
            let mut invoke = built.drive.invoke($start);
            if let Some(cap) = cap {
                invoke = invoke.max_concurrency(cap);
            }
            if inline {
                invoke = invoke.inline();
            }
            invoke.await.expect("workload run succeeds")
        }};
    }
    match built.start {
        Start::Unit(start) => go!(start),
        Start::Turn(start) => go!(start),
    }
}

/// The graph as the hand-written schedulers see it: successors and in-degrees.
pub struct Dag {
    succ_start: Vec<u32>,
    succ: Vec<u32>,
    indegree: Vec<u32>,
    /// Goto loop only: events per run.
    goto_events: u64,
    /// CPU time of each body.
    spin: Duration,
}

impl Dag {
    pub fn new(spec: &Spec) -> Dag {
        let mut indegree = vec![0u32; spec.nodes];
        let mut out = vec![0u32; spec.nodes + 1];
        for (listener, members) in &spec.groups {
            indegree[*listener as usize] = members.len() as u32;
            for &m in members {
                out[m as usize] += 1;
            }
        }
        let mut succ_start = Vec::with_capacity(spec.nodes + 1);
        let mut total = 0;
        for &count in &out[..spec.nodes] {
            succ_start.push(total);
            total += count;
        }
        succ_start.push(total);
        let mut cursor = succ_start.clone();
        let mut succ = vec![0u32; total as usize];
        for (listener, members) in &spec.groups {
            for &m in members {
                succ[cursor[m as usize] as usize] = *listener;
                cursor[m as usize] += 1;
            }
        }
        Dag {
            succ_start,
            succ,
            indegree,
            goto_events: if spec.kind == Kind::Goto {
                spec.events as u64
            } else {
                0
            },
            spin: spec.spin,
        }
    }

    fn successors(&self, node: u32) -> &[u32] {
        &self.succ
            [self.succ_start[node as usize] as usize..self.succ_start[node as usize + 1] as usize]
    }

    fn nodes(&self) -> usize {
        self.indegree.len()
    }
}

/// Keep the thread busy for `spin` (reading the clock in a loop): an event's CPU work.
pub fn busy(spin: Duration) {
    let start = Instant::now();
    while start.elapsed() < spin {
        std::hint::spin_loop();
    }
}

/// The body of one hand-written event: trivial (or busy for `spin`), and not optimised away.
async fn body(node: u32, spin: Duration) -> u32 {
    if !spin.is_zero() {
        busy(spin);
    }
    black_box(node)
}

// ---- Baseline (a): a tokio task per event, atomic countdown per join ----------------------

struct SpawnRun {
    dag: Arc<Dag>,
    pending: Box<[AtomicU32]>,
    remaining: AtomicUsize,
    done: Notify,
    semaphore: Option<Arc<Semaphore>>,
}

fn spawn_event(run: Arc<SpawnRun>, node: u32, permit: Option<OwnedSemaphorePermit>) {
    tokio::spawn(async move {
        body(node, run.dag.spin).await;
        drop(permit);
        for &next in run.dag.successors(node) {
            if run.pending[next as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                let permit = match &run.semaphore {
                    Some(semaphore) => Some(
                        semaphore
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("semaphore open"),
                    ),
                    None => None,
                };
                spawn_event(run.clone(), next, permit);
            }
        }
        if run.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            run.done.notify_one();
        }
    });
}

struct GotoRun {
    events: u64,
    spin: Duration,
    done: Notify,
}

fn spawn_turn(run: Arc<GotoRun>, event: u64) {
    tokio::spawn(async move {
        body(event as u32, run.spin).await;
        if event + 1 < run.events {
            spawn_turn(run, event + 1); // tok's goto: the next event is a new task
        } else {
            run.done.notify_one();
        }
    });
}

/// One run of baseline (a).
pub async fn run_spawn(dag: &Arc<Dag>, cap: Option<usize>) {
    if dag.goto_events > 0 {
        let run = Arc::new(GotoRun {
            events: dag.goto_events,
            spin: dag.spin,
            done: Notify::new(),
        });
        spawn_turn(run.clone(), 0);
        run.done.notified().await;
        return;
    }
    let run = Arc::new(SpawnRun {
        dag: dag.clone(),
        pending: dag.indegree.iter().map(|&d| AtomicU32::new(d)).collect(),
        remaining: AtomicUsize::new(dag.nodes()),
        done: Notify::new(),
        semaphore: cap.map(|c| Arc::new(Semaphore::new(c))),
    });
    let permit = match &run.semaphore {
        Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
        None => None,
    };
    spawn_event(run.clone(), 0, permit);
    run.done.notified().await;
}

// ---- Baseline (b): futures polled in one task, no spawn ----------------------------------

/// One run of baseline (b).
pub async fn run_futures(dag: &Dag, cap: Option<usize>) {
    let mut running = FuturesUnordered::new();
    if dag.goto_events > 0 {
        running.push(body(0, dag.spin));
        while let Some(event) = running.next().await {
            if u64::from(event) + 1 < dag.goto_events {
                running.push(body(event + 1, dag.spin));
            }
        }
        return;
    }
    let cap = cap.unwrap_or(usize::MAX);
    let mut pending = dag.indegree.clone();
    let mut queue = VecDeque::new();
    running.push(body(0, dag.spin));
    while let Some(node) = running.next().await {
        for &next in dag.successors(node) {
            pending[next as usize] -= 1;
            if pending[next as usize] == 0 {
                if running.len() < cap {
                    running.push(body(next, dag.spin));
                } else {
                    queue.push_back(next);
                }
            }
        }
        while running.len() < cap {
            match queue.pop_front() {
                Some(next) => running.push(body(next, dag.spin)),
                None => break,
            }
        }
    }
}

// ---- One workload, ready to run any way ---------------------------------------------------

/// A workload with what every mode needs built (drive and/or DAG).
pub struct Prepared {
    pub spec: Spec,
    pub built: Option<Built>,
    pub dag: Option<Arc<Dag>>,
}

impl Prepared {
    /// Build what `modes` need.
    pub fn new(kind: Kind, n: usize, modes: &[Mode]) -> Prepared {
        Prepared::from_spec(Spec::new(kind, n), modes)
    }

    /// Build what `modes` need for `spec`.
    pub fn from_spec(spec: Spec, modes: &[Mode]) -> Prepared {
        let built = modes
            .iter()
            .any(|m| m.is_drive())
            .then(|| build_drive(&spec));
        let dag = modes
            .iter()
            .any(|m| !m.is_drive())
            .then(|| Arc::new(Dag::new(&spec)));
        Prepared { spec, built, dag }
    }

    /// One run in `mode`.
    pub async fn run(&self, mode: Mode) {
        let cap = self.spec.kind.cap();
        match mode {
            Mode::Drive | Mode::Inline => {
                let built = self.built.as_ref().expect("drive built");
                black_box(run_drive(built, cap, mode == Mode::Inline).await);
            }
            Mode::Spawn => run_spawn(self.dag.as_ref().expect("dag built"), cap).await,
            Mode::Futures => run_futures(self.dag.as_ref().expect("dag built"), cap).await,
        }
    }

    /// Check that a drive run ran every event the workload says (not timed).
    pub async fn verify(&self, inline: bool) -> Result<(), String> {
        let Some(built) = &self.built else {
            return Ok(());
        };
        let results = run_drive(built, self.spec.kind.cap(), inline).await;
        let ok = match built.start {
            Start::Turn(tick) => results.count(tick) as u64 == self.spec.turns,
            Start::Unit(_) => results.len() == self.spec.nodes,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} n={}: the run did not run the expected {} events",
                self.spec.kind.name(),
                self.spec.nodes,
                self.spec.events
            ))
        }
    }
}

/// The runtime every mode runs on: multi-thread, 2 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    runtime_with(2)
}

/// A multi-thread runtime with `workers` worker threads (the core-scaling section).
pub fn runtime_with(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---- The macro path, at small sizes -------------------------------------------------------

/// The same small workloads written with `#[event]`/`#[listen]` (10 events each), to show
/// that the macros cost what the builder costs. `Drive::new()` collects them all; each run
/// starts at its own start event and reaches only its own workload.
pub mod macros {
    use drive_flow::prelude::*;

    /// Chain of 10.
    pub mod chain {
        use drive_flow::prelude::*;
        #[event]
        pub async fn c0() {}
        #[listen(c0)]
        pub async fn c1() {}
        #[listen(c1)]
        pub async fn c2() {}
        #[listen(c2)]
        pub async fn c3() {}
        #[listen(c3)]
        pub async fn c4() {}
        #[listen(c4)]
        pub async fn c5() {}
        #[listen(c5)]
        pub async fn c6() {}
        #[listen(c6)]
        pub async fn c7() {}
        #[listen(c7)]
        pub async fn c8() {}
        #[listen(c8)]
        pub async fn c9() {}
    }

    /// Fan-out 1 → 10.
    pub mod fan_out {
        use drive_flow::prelude::*;
        #[event]
        pub async fn root() {}
        #[listen(root)]
        pub async fn o0() {}
        #[listen(root)]
        pub async fn o1() {}
        #[listen(root)]
        pub async fn o2() {}
        #[listen(root)]
        pub async fn o3() {}
        #[listen(root)]
        pub async fn o4() {}
        #[listen(root)]
        pub async fn o5() {}
        #[listen(root)]
        pub async fn o6() {}
        #[listen(root)]
        pub async fn o7() {}
        #[listen(root)]
        pub async fn o8() {}
        #[listen(root)]
        pub async fn o9() {}
    }

    /// Fan-in 10 → 1 (after a fan-out from `root`).
    pub mod fan_in {
        use drive_flow::prelude::*;
        #[event]
        pub async fn root() {}
        #[listen(root)]
        pub async fn i0() {}
        #[listen(root)]
        pub async fn i1() {}
        #[listen(root)]
        pub async fn i2() {}
        #[listen(root)]
        pub async fn i3() {}
        #[listen(root)]
        pub async fn i4() {}
        #[listen(root)]
        pub async fn i5() {}
        #[listen(root)]
        pub async fn i6() {}
        #[listen(root)]
        pub async fn i7() {}
        #[listen(root)]
        pub async fn i8() {}
        #[listen(root)]
        pub async fn i9() {}
        #[listen(i0, i1, i2, i3, i4, i5, i6, i7, i8, i9)]
        pub async fn join() {}
    }

    /// Goto loop of 5 turns (10 events).
    pub mod goto {
        use drive_flow::prelude::*;
        pub const TURNS: u64 = 5;
        #[event]
        pub async fn tick(input: EventInput) -> u64 {
            input.get(tok).copied().unwrap_or(0)
        }
        #[listen(tick)]
        pub async fn tok(input: EventInput) -> Flow<u64> {
            let turn = input.get(tick).copied().unwrap_or(0);
            if turn + 1 < TURNS {
                Flow::goto([tick], turn + 1)
            } else {
                Flow::abort()
            }
        }
    }

    /// The macro workloads: name, builder-equivalent kind and size.
    pub const WORKLOADS: [(super::Kind, usize); 4] = [
        (super::Kind::Chain, 10),
        (super::Kind::FanOut, 10),
        (super::Kind::FanIn, 10),
        (super::Kind::Goto, 10),
    ];

    /// Events of one run of the macro workload `kind`.
    pub fn events(kind: super::Kind) -> usize {
        match kind {
            super::Kind::Chain => 10,
            super::Kind::FanOut => 11,
            super::Kind::FanIn => 12,
            super::Kind::Goto => 2 * goto::TURNS as usize,
            _ => 0,
        }
    }

    /// One run of the macro workload `kind` on `drive` (from `Drive::new()`).
    pub async fn run(drive: &Drive, kind: super::Kind, inline: bool) -> Results {
        macro_rules! go {
            ($start:expr) => {{
                let invoke = drive.invoke($start);
                let invoke = if inline { invoke.inline() } else { invoke };
                invoke.await.expect("macro workload runs")
            }};
        }
        match kind {
            super::Kind::Chain => go!(chain::c0),
            super::Kind::FanOut => go!(fan_out::root),
            super::Kind::FanIn => go!(fan_in::root),
            _ => go!(goto::tick),
        }
    }
}
