//! Issue 12's allocation target: on the hot path of a run with no join and no goto, a
//! spawned event makes one allocation, its tokio task (which holds the body's own future),
//! or less: the events of a wide fan-out share a task per part of up to 16;
//! an inline event that ends at its first poll makes none (its body's future is made in the
//! box the last event of the same body type used, of up to sixteen types). An output that
//! is a number, a `bool` or a `char` is held in place, not in an `Arc`: a chain or a goto
//! loop of such events allocates nothing either. Counted by this test binary's allocator
//! around a run (the fewest of a few); one test in the binary, so that nothing else
//! allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use drive_flow::{DriveBuilder, EventInput, Flow, Group, Handle};

#[path = "../benches/support/workloads.rs"]
mod workloads;

/// Counts allocations while `TRACK` is on.
struct Counting;

static TRACK: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const EVENTS: usize = 10_000;

/// Allocations per event of a run of `start`, inline or not (see [`allocs_per_run`]).
fn allocs_per_event<T: Send + Sync + 'static>(
    rt: &tokio::runtime::Runtime,
    drive: &drive_flow::Drive,
    start: Handle<T>,
    inline: bool,
) -> f64 {
    allocs_per_run(rt, drive, start, inline, EVENTS) / EVENTS as f64
}

/// Counted runs per figure: the figure is the fewest allocations of these.
const COUNTED_RUNS: usize = 5;

/// Allocations of a run of `start`, which runs `events` events, once what it reuses is
/// back where it looks for it: the fewest of a few runs, after a warm-up run. (A spawned
/// run's state goes back to the graph's pool when its last holder lets it go, which may be
/// its last event's task, after the caller was woken: the next run may start before it is
/// back, and make its own. Counted once, right after the warm-up, a run of 10 spawned
/// events made 11 allocations in 2 of 15 runs of this test beside two busy loops, and in
/// one CI run, where it makes 8.)
fn allocs_per_run<T: Send + Sync + 'static>(
    rt: &tokio::runtime::Runtime,
    drive: &drive_flow::Drive,
    start: Handle<T>,
    inline: bool,
    events: usize,
) -> f64 {
    let run = || {
        let invoke = drive.invoke(start);
        rt.block_on(if inline { invoke.inline() } else { invoke })
    };
    run().expect("warm-up run");
    let mut fewest = u64::MAX;
    for _ in 0..COUNTED_RUNS {
        ALLOCS.store(0, Ordering::SeqCst);
        TRACK.store(true, Ordering::SeqCst);
        let results = run();
        TRACK.store(false, Ordering::SeqCst);
        fewest = fewest.min(ALLOCS.load(Ordering::SeqCst));
        let results = results.expect("counted run");
        assert_eq!(results.len(), events, "every event ran");
        drop(results);
    }
    fewest as f64
}

/// Add an event whose body is stage `K` of a pipeline: a closure, and a future, of a type
/// of its own for each `K`.
fn stage<const K: usize>(builder: &mut DriveBuilder, name: String) -> Handle<()> {
    builder.event(name, || async {
        std::hint::black_box(K);
    })
}

/// Twelve stages, twelve body types.
const STAGES: [fn(&mut DriveBuilder, String) -> Handle<()>; 12] = [
    stage::<0>,
    stage::<1>,
    stage::<2>,
    stage::<3>,
    stage::<4>,
    stage::<5>,
    stage::<6>,
    stage::<7>,
    stage::<8>,
    stage::<9>,
    stage::<10>,
    stage::<11>,
];

#[test]
fn an_event_without_join_or_goto_is_one_allocation_spawned_and_none_inline() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");

    // A chain of `()` events.
    let mut builder = DriveBuilder::new();
    let start = builder.event("c0", || async {});
    let mut prev = start;
    for i in 1..EVENTS {
        let next = builder.event(format!("c{i}"), || async {});
        builder.listen(next, Group::new([prev]));
        prev = next;
    }
    let chain = builder.build().expect("chain builds");
    let per_event = allocs_per_event(&rt, &chain, start, false);
    // One per event, and what a run allocates once (its state, its results).
    assert!(
        per_event <= 1.02,
        "chain: {per_event} allocations per event"
    );
    // Inline, every body's future in the same box (their bodies' futures have one layout):
    // what the run allocates once.
    let per_event = allocs_per_event(&rt, &chain, start, true);
    assert!(
        per_event <= 0.02,
        "inline chain: {per_event} allocations per event"
    );

    // A chain of three kinds of body taking turns, whose futures have three layouts (what
    // each closure captures): inline, each kind reuses its own box.
    let mut builder = DriveBuilder::new();
    let start = builder.event("k0", || async {});
    let mut prev = start;
    for i in 1..EVENTS {
        let name = format!("k{i}");
        let next = match i % 3 {
            0 => builder.event(name, || async {}),
            1 => {
                let small = [1_u64; 4];
                builder.event(name, move || async move {
                    std::hint::black_box(small);
                })
            }
            _ => {
                let large = [2_u64; 16];
                builder.event(name, move || async move {
                    std::hint::black_box(large);
                })
            }
        };
        builder.listen(next, Group::new([prev]));
        prev = next;
    }
    let kinds = builder.build().expect("chain of three kinds builds");
    let per_event = allocs_per_event(&rt, &kinds, start, true);
    assert!(
        per_event <= 0.02,
        "inline chain of three kinds of body: {per_event} allocations per event"
    );

    // A pipeline of twelve stages, each a body of its own type (as twelve `#[event]`
    // functions are), taking turns: inline, each stage reuses its own box. (With a box for
    // the last four types only, the twentieth and twenty-first rounds', every event made a
    // new box and its handle: 2.0 per event.)
    let mut builder = DriveBuilder::new();
    let start = builder.event("p0", || async {});
    let mut prev = start;
    for i in 1..EVENTS {
        let next = STAGES[i % STAGES.len()](&mut builder, format!("p{i}"));
        builder.listen(next, Group::new([prev]));
        prev = next;
    }
    let pipeline = builder.build().expect("pipeline of twelve stages builds");
    let per_event = allocs_per_event(&rt, &pipeline, start, true);
    assert!(
        per_event <= 0.02,
        "inline pipeline of twelve body types: {per_event} allocations per event"
    );

    // A fan-out: one start, every other event listening to it.
    let mut builder = DriveBuilder::new();
    let start = builder.event("root", || async {});
    for i in 1..EVENTS {
        let leaf = builder.event(format!("leaf{i}"), || async {});
        builder.listen(leaf, Group::new([start]));
    }
    let fan_out = builder.build().expect("fan-out builds");
    // Started in parts of 16 (see `tests/fan_out_parts.rs`): a task per part, which makes
    // its events' starts itself (0.063 per event; 0.13 when each part also had a list of
    // starts made by the root's completion, 1.0 with a task per event), and an event that
    // ends at its first poll makes none.
    let per_event = allocs_per_event(&rt, &fan_out, start, false);
    assert!(
        per_event <= 0.08,
        "fan-out: {per_event} allocations per event"
    );
    let per_event = allocs_per_event(&rt, &fan_out, start, true);
    assert!(
        per_event <= 0.02,
        "inline fan-out: {per_event} allocations per event"
    );

    // A chain of events whose outputs are numbers, each read by the next: held in place,
    // they cost no allocation (an `Arc` each, they cost one per event).
    let mut builder = DriveBuilder::new();
    let start: Handle<u64> = builder.event("n0", || async { Flow::from(1_u64) });
    let mut prev = start;
    for i in 1..EVENTS {
        let before = prev;
        let next: Handle<u64> =
            builder.event(format!("n{i}"), move |input: EventInput| async move {
                Flow::from(input.get(before).copied().unwrap_or(0) + 1)
            });
        builder.listen(next, Group::new([prev]));
        prev = next;
    }
    let numbers = builder.build().expect("chain of numbers builds");
    let per_event = allocs_per_event(&rt, &numbers, start, true);
    assert!(
        per_event <= 0.02,
        "inline chain of u64 outputs: {per_event} allocations per event"
    );
    let per_event = allocs_per_event(&rt, &numbers, start, false);
    assert!(
        per_event <= 1.02,
        "chain of u64 outputs: {per_event} allocations per event"
    );

    // A goto loop whose turns are `u64` payloads and values, as an agent's loop counts its
    // turns: the benchmark's (`tick` returns its turn, `tok` sends the next turn back to
    // `tick` by a goto).
    let spec = workloads::Spec::new(workloads::Kind::Goto, EVENTS);
    let built = workloads::build_drive(&spec);
    let (looping, workloads::Start::Turn(tick)) = (built.drive, built.start) else {
        panic!("the goto loop starts with a turn");
    };
    // Results list the two events, each run `turns` times.
    let per_event = allocs_per_run(&rt, &looping, tick, true, 2) / EVENTS as f64;
    assert!(
        per_event <= 0.02,
        "inline goto loop of u64 turns: {per_event} allocations per event"
    );

    // A run of 10 events: what a run allocates once. Since the eighteenth round a run
    // makes the set of its inline events that went pending only when one does, an inline
    // run that is not tracked holds no shards of entries, and a run's end passes over the
    // shards into one list: 9 allocations before for this inline run, 12 spawned. Since the
    // twentieth round an inline run makes its events' bodies in the thread's boxes, which
    // the run before left there: 4 before.
    let mut builder = DriveBuilder::new();
    let start = builder.event("s0", || async {});
    let mut prev = start;
    for i in 1..10 {
        let next = builder.event(format!("s{i}"), || async {});
        builder.listen(next, Group::new([prev]));
        prev = next;
    }
    let small = builder.build().expect("small chain builds");
    let per_run = allocs_per_run(&rt, &small, start, true, 10);
    assert!(
        per_run <= 3.0,
        "inline run of 10 events: {per_run} allocations"
    );
    let per_run = allocs_per_run(&rt, &small, start, false, 10);
    assert!(per_run <= 8.0, "run of 10 events: {per_run} allocations");
}
