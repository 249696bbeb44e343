//! drive-flow's per-event overhead against hand-written tokio code, as one screen of tables:
//! workload × size → ns/event, ratio to the baseline, build cost, peak memory per event, and
//! which of the project's targets are met.
//!
//! ```text
//! cargo run --release --example bench              # 10, 1 000, 100 000 and 1 000 000 events
//! cargo run --release --example bench -- --quick   # up to 100 000 events, < 1 minute
//! ```
//!
//! `BENCH_QUICK=1` is the same as `--quick`. `--only NAME[,NAME]` keeps some workloads.
//! `--help` prints the usage; an argument it does not know is an error.
//! `--smoke` (10 and 1 000 events, a few seconds even in a debug build) only checks that
//! every workload runs; its figures mean nothing and it judges no target.
//! `--scaling` runs only the core-scaling section (a fan-out and a diamond of 20 000 events
//! whose bodies busy-spin 0, 1 and 5 µs, on 1, 2 and all worker threads, drive-flow's
//! speed-up beside the spawn baseline's); every other mode runs it after the other tables.
//! `--repeat WORKLOAD SIZE MODE SECONDS` runs one cell in a loop (for `perf record`;
//! `Nx` in place of `SECONDS` runs it exactly N times, for callgrind; `BENCH_WORKERS=N` runs
//! it on N worker threads, 2 unless given). The
//! workloads and the two baselines are in `benches/support/workloads.rs`, shared with
//! `cargo bench --bench overhead`. The process exits 0 whether targets are met or not:
//! timings on a shared machine are noisy, so read the ratios.

#[path = "../benches/support/workloads.rs"]
mod workloads;

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drive_flow::Drive;
use workloads::{build_drive, runtime, runtime_with, Kind, Mode, Prepared, Spec, KINDS, MODES};

/// Counts heap bytes and allocations while `TRACK` is on (only in `--child` processes,
/// around one run); otherwise one relaxed load per allocation.
struct Counting;

static TRACK: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Allocations by size, in 16-byte steps up to 4 KiB (the last bucket holds the rest).
static SIZES: [AtomicU64; 257] = [const { AtomicU64::new(0) }; 257];

fn grow(bytes: isize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged; only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            grow(layout.size() as isize);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            SIZES[(layout.size().div_ceil(16)).min(256)].fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if TRACK.load(Ordering::Relaxed) {
            CURRENT.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            grow(new_size as isize - layout.size() as isize);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Ratio targets from the issue.
const MAX_RATIO_SPAWN: f64 = 1.5;
const MAX_FLAT: f64 = 1.3;
const MAX_RATIO_INLINE: f64 = 2.0;
const MAX_RATIO_RSS: f64 = 2.0;
const MAX_BUILD_NS: f64 = 1_000.0;
/// The size at which memory and flatness are judged.
const BIG: usize = 100_000;
/// Core scaling: events per run, CPU per body (µs), and how close drive-flow's speed-up
/// from 1 worker to more must come to the spawn baseline's (drive's / baseline's).
const SCALING_EVENTS: usize = 20_000;
const SCALING_SPINS_US: [u64; 3] = [0, 1, 5];
const SCALING_KINDS: [Kind; 2] = [Kind::FanOut, Kind::Diamond];
const MIN_SPEEDUP_RATIO: f64 = 0.9;

struct Row {
    kind: Kind,
    n: usize,
    events: usize,
    /// ns/event per mode, in `MODES` order.
    ns: [f64; 4],
    build_ns_node: f64,
    build_ns_edge: f64,
}

impl Row {
    fn ns(&self, mode: Mode) -> f64 {
        self.ns[MODES.iter().position(|&m| m == mode).unwrap_or(0)]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--repeat") {
        repeat(&args[1..]);
        return;
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", usage());
        return;
    }
    // An argument it does not know is an error, not a full run of a minute and a half.
    let mut given = args.iter();
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--quick" | "--smoke" | "--scaling" => {}
            "--only" if given.next().is_some() => {}
            other => {
                eprintln!("bench: unknown argument {other:?}\n{}", usage());
                std::process::exit(2);
            }
        }
    }
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let only: Option<Vec<Kind>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').filter_map(Kind::parse).collect());
    let kinds: Vec<Kind> = KINDS
        .into_iter()
        .filter(|k| only.as_ref().is_none_or(|o| o.contains(k)))
        .collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let scaling_only = args.iter().any(|a| a == "--scaling");
    let (sizes, mem_size, budget): (&[usize], usize, u64) = if smoke {
        (&[10, 1_000], 1_000, 5)
    } else if quick {
        (&[10, 1_000, BIG], BIG, 100)
    } else {
        (&[10, 1_000, BIG, 1_000_000], BIG, 600)
    };
    let budget = Duration::from_millis(budget);
    let started = Instant::now();
    let scaling_budget = Duration::from_millis(if smoke {
        5
    } else if quick {
        800
    } else {
        1_500
    });
    if scaling_only {
        let scaling = time_scaling(smoke, scaling_budget);
        print_scaling(&scaling, smoke);
        if !smoke {
            println!("\ntargets");
            print_scaling_target(&scaling);
        }
        println!("\ntotal time {:.1} s", started.elapsed().as_secs_f64());
        return;
    }

    println!(
        "drive-flow overhead benchmark{} — {}, {} cores; tokio multi-thread runtime, 2 workers",
        if smoke {
            " (smoke: figures mean nothing)"
        } else if quick {
            " (quick)"
        } else {
            ""
        },
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful figures");
    }

    let rt = runtime();
    let mut rows = Vec::new();
    for &kind in &kinds {
        for &n in sizes {
            if n > BIG {
                // A build that grows faster than linearly would take minutes at 10× the size.
                let slow = rows.iter().any(|r: &Row| {
                    r.kind == kind && r.n == BIG && r.build_ns_edge.max(r.build_ns_node) > 2_000.0
                });
                if slow {
                    println!(
                        "skipped {} at {n}: its build at {BIG} costs > 2 µs per edge",
                        kind.name()
                    );
                    continue;
                }
            }
            let prepared = Prepared::new(kind, n, &MODES);
            for inline in [false, true] {
                if let Err(error) = rt.block_on(prepared.verify(inline)) {
                    println!("ERROR: {error}");
                }
            }
            let ns = time_modes(&rt, &prepared, budget, n >= 1_000_000);
            let build = time_build(&prepared.spec, budget / 2);
            rows.push(Row {
                kind,
                n,
                events: prepared.spec.events,
                ns,
                build_ns_node: build / prepared.spec.nodes as f64,
                build_ns_edge: build / prepared.spec.edges().max(1) as f64,
            });
        }
    }

    // Peak memory, each cell in a fresh process so that peaks do not mix.
    let mut rss: Vec<(Kind, [Option<Mem>; 4])> = Vec::new();
    for &kind in &kinds {
        let mut per_mode = [None; 4];
        for (i, mode) in MODES.into_iter().enumerate() {
            per_mode[i] = child_mem(kind, mem_size, mode);
        }
        rss.push((kind, per_mode));
    }

    let macro_rows = time_macros(&rt, budget);
    let registry = time_registry(&rt, budget, if smoke { 1_000 } else { BIG });
    drop(rt); // its idle workers would share the machine with the scaling runtimes
    let scaling = time_scaling(smoke, scaling_budget);

    print_tables(&rows, mem_size, &rss, &macro_rows);
    print_registry(&registry);
    print_scaling(&scaling, smoke);
    if !smoke {
        print_targets(&rows, &rss, &registry);
        print_scaling_target(&scaling);
    }
    println!("\ntotal time {:.1} s", started.elapsed().as_secs_f64());
}

/// ns/event of every mode on one workload, blocks of runs interleaved across modes so that
/// every mode sees the same machine load; the fastest block (the least disturbed by other
/// work on a shared machine).
fn time_modes(
    rt: &tokio::runtime::Runtime,
    prepared: &Prepared,
    budget: Duration,
    huge: bool,
) -> [f64; 4] {
    let events = prepared.spec.events as f64;
    // Warm up and calibrate: runs per block so that a block lasts at least 2 ms.
    let mut reps = [1usize; 4];
    for (i, mode) in MODES.into_iter().enumerate() {
        let start = Instant::now();
        rt.block_on(prepared.run(mode));
        let once = start.elapsed().as_secs_f64().max(1e-7);
        reps[i] = ((0.002 / once).ceil() as usize).clamp(1, 10_000);
    }
    let (min_rounds, max_rounds) = if huge { (2, 3) } else { (5, 60) };
    let mut samples: [Vec<f64>; 4] = Default::default();
    let start = Instant::now();
    for round in 0..max_rounds {
        if round >= min_rounds && start.elapsed() > budget {
            break;
        }
        for (i, mode) in MODES.into_iter().enumerate() {
            let per_run = rt.block_on(async {
                let t = Instant::now();
                for _ in 0..reps[i] {
                    prepared.run(mode).await;
                }
                t.elapsed().as_secs_f64() / reps[i] as f64
            });
            samples[i].push(per_run * 1e9 / events);
        }
    }
    samples.map(|mut s| fastest(&mut s))
}

/// ns to build the workload's drive with the builder (fastest build).
fn time_build(spec: &Spec, budget: Duration) -> f64 {
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed() < budget && samples.len() < 200) {
        let t = Instant::now();
        let built = build_drive(spec);
        samples.push(t.elapsed().as_secs_f64() * 1e9);
        drop(built);
        if spec.nodes >= 1_000_000 {
            break; // one build is enough at this size
        }
    }
    fastest(&mut samples)
}

struct MacroRow {
    kind: Kind,
    events: usize,
    /// ns/event: macros, builder, macros inline, builder inline.
    ns: [f64; 4],
}

/// The macro-made small workloads against the same graphs made with the builder, and the
/// cost of `Drive::new()` (which collects every registered event of this binary).
fn time_macros(rt: &tokio::runtime::Runtime, budget: Duration) -> (Vec<MacroRow>, f64, usize) {
    let drive = Drive::new().expect("registered events build");
    let mut build = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let d = Drive::new().expect("registered events build");
        build.push(t.elapsed().as_secs_f64() * 1e9);
        drop(d);
    }
    let new_ns = fastest(&mut build) / drive.len() as f64;
    let mut rows = Vec::new();
    for (kind, n) in workloads::macros::WORKLOADS {
        let prepared = Prepared::new(kind, n, &[Mode::Drive]);
        let events = workloads::macros::events(kind);
        assert_eq!(events, prepared.spec.events, "same graph both ways");
        let mut samples: [Vec<f64>; 4] = Default::default();
        let reps = 200;
        let start = Instant::now();
        while samples[0].len() < 5 || (start.elapsed() < budget && samples[0].len() < 100) {
            for (i, sample) in samples.iter_mut().enumerate() {
                let inline = i >= 2;
                let per_event = rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..reps {
                        if i % 2 == 0 {
                            let results = workloads::macros::run(&drive, kind, inline).await;
                            std::hint::black_box(results);
                        } else {
                            let mode = if inline { Mode::Inline } else { Mode::Drive };
                            prepared.run(mode).await;
                        }
                    }
                    t.elapsed().as_secs_f64() * 1e9 / (reps * events) as f64
                });
                sample.push(per_event);
            }
        }
        rows.push(MacroRow {
            kind,
            events,
            ns: samples.map(|mut s| fastest(&mut s)),
        });
    }
    (rows, new_ns, drive.len())
}

/// ns/event of a 10-event chain (spawn, inline) in drives that also hold 0, `largest / 100`
/// and `largest` events the run never reaches.
fn time_registry(
    rt: &tokio::runtime::Runtime,
    budget: Duration,
    largest: usize,
) -> Vec<(usize, [f64; 2])> {
    let events = workloads::REGISTRY_CHAIN as f64;
    let mut rows = Vec::new();
    for extra in [0, largest / 100, largest] {
        let built = workloads::registry_drive(extra);
        let mut samples: [Vec<f64>; 2] = Default::default();
        let start = Instant::now();
        while samples[0].len() < 5 || (start.elapsed() < budget && samples[0].len() < 100) {
            for (i, sample) in samples.iter_mut().enumerate() {
                // The same number of runs per sample whatever `extra` is (a run's cost does
                // not grow with it), so that the samples compared are alike: a sample's
                // first spawn wakes a parked worker, a cost spread over its runs.
                let reps = 100;
                let per_event = rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..reps {
                        std::hint::black_box(workloads::run_drive(&built, None, i == 1).await);
                    }
                    t.elapsed().as_secs_f64() * 1e9 / (reps as f64 * events)
                });
                sample.push(per_event);
            }
        }
        rows.push((extra, samples.map(|mut s| fastest(&mut s))));
    }
    rows
}

/// One cell of the core-scaling section: ns/event of drive-flow (spawned) and of
/// the spawn baseline on a runtime with `workers` worker threads.
struct ScaleRow {
    kind: Kind,
    spin_us: u64,
    events: usize,
    workers: usize,
    drive: f64,
    base: f64,
}

/// The worker counts of the scaling section: 1, 2 and every core if there are more.
fn scaling_workers() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut workers = vec![1, 2];
    if cores > 2 {
        workers.push(cores);
    }
    workers
}

/// Core scaling: each workload and body size on runtimes of 1, 2 (and all) worker threads,
/// drive-flow and the spawn baseline in interleaved blocks (every runtime and mode sees the
/// same machine load); the fastest block of each.
fn time_scaling(smoke: bool, budget: Duration) -> Vec<ScaleRow> {
    let n = if smoke { 1_000 } else { SCALING_EVENTS };
    let runtimes: Vec<(usize, tokio::runtime::Runtime)> = scaling_workers()
        .into_iter()
        .map(|w| (w, runtime_with(w)))
        .collect();
    const SCALE_MODES: [Mode; 2] = [Mode::Drive, Mode::Spawn];
    let mut rows = Vec::new();
    for kind in SCALING_KINDS {
        for spin_us in SCALING_SPINS_US {
            let spec = Spec::spinning(kind, n, Duration::from_micros(spin_us));
            let prepared = Prepared::from_spec(spec, &SCALE_MODES);
            let events = prepared.spec.events;
            // samples[runtime][mode]; warm every runtime and mode up once (not timed).
            let mut samples: Vec<[Vec<f64>; 2]> =
                runtimes.iter().map(|_| Default::default()).collect();
            for (_, rt) in &runtimes {
                if let Err(error) = rt.block_on(prepared.verify(false)) {
                    println!("ERROR: {error}");
                }
                for mode in SCALE_MODES {
                    rt.block_on(prepared.run(mode));
                }
            }
            let start = Instant::now();
            for round in 0..200 {
                if round >= 5 && start.elapsed() > budget {
                    break;
                }
                for ((_, rt), per_mode) in runtimes.iter().zip(samples.iter_mut()) {
                    for (mode, sample) in SCALE_MODES.into_iter().zip(per_mode.iter_mut()) {
                        let ns = rt.block_on(async {
                            let t = Instant::now();
                            prepared.run(mode).await;
                            t.elapsed().as_secs_f64() * 1e9 / events as f64
                        });
                        sample.push(ns);
                    }
                }
            }
            for ((workers, _), per_mode) in runtimes.iter().zip(samples) {
                let [drive, base] = per_mode.map(|mut s| fastest(&mut s));
                rows.push(ScaleRow {
                    kind,
                    spin_us,
                    events,
                    workers: *workers,
                    drive,
                    base,
                });
            }
        }
    }
    rows
}

/// Speed-ups of a scaling row over the same workload and body on 1 worker: drive's,
/// the baseline's, and drive's over the baseline's.
fn speedups(rows: &[ScaleRow], row: &ScaleRow) -> Option<(f64, f64, f64)> {
    let one = rows
        .iter()
        .find(|r| r.kind == row.kind && r.spin_us == row.spin_us && r.workers == 1)?;
    let drive = one.drive / row.drive;
    let base = one.base / row.base;
    Some((drive, base, drive / base))
}

fn print_scaling(rows: &[ScaleRow], smoke: bool) {
    println!();
    println!(
        "core scaling: {} events per run, each body busy (CPU) for the given µs; drive (spawned) and base-spawn",
        rows.first().map_or(0, |r| r.events)
    );
    println!("ns per event (fastest of interleaved blocks); x = drive / base-spawn;");
    println!(
        "speed-up = ns/event on 1 worker / on this many, drive's and base-spawn's; rel = drive's / base's{}",
        if smoke { "" } else { "; ! = rel < 0.90" }
    );
    println!(
        "{:<13}{:>8}{:>8}{:>8}{:>11}{:>7}{:>10}{:>7}{:>7}",
        "workload", "body µs", "workers", "drive", "base-spawn", "x", "speed-up", "base", "rel"
    );
    for row in rows {
        let (speedup, base, rel) = match speedups(rows, row) {
            Some((d, b, r)) if row.workers > 1 => (
                format!("{d:.2}"),
                format!("{b:.2}"),
                format!("{r:.2}{}", mark(smoke || r >= MIN_SPEEDUP_RATIO)),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<13}{:>8}{:>8}{:>8.0}{:>11.0}{:>7.2}{:>10}{:>7}{:>7}",
            row.kind.name(),
            row.spin_us,
            row.workers,
            row.drive,
            row.base,
            row.drive / row.base,
            speedup,
            base,
            rel
        );
    }
}

fn print_scaling_target(rows: &[ScaleRow]) {
    let misses: Vec<String> = rows
        .iter()
        .filter(|r| r.workers > 1)
        .filter_map(|r| {
            let (d, b, rel) = speedups(rows, r)?;
            (rel < MIN_SPEEDUP_RATIO).then(|| {
                format!(
                    "{}/{}µs/{}w {d:.2} vs {b:.2}",
                    r.kind.name(),
                    r.spin_us,
                    r.workers
                )
            })
        })
        .collect();
    let name = format!(
        "core scaling: drive's speed-up ≥ {MIN_SPEEDUP_RATIO}× base-spawn's, every body and worker count"
    );
    if misses.is_empty() {
        println!("  met     {name}");
    } else {
        println!("  MISSED  {name}: {}", misses.join(", "));
    }
}

fn print_registry(rows: &[(usize, [f64; 2])]) {
    println!();
    println!(
        "registry size: a {}-event chain in a drive that also holds N events it never reaches (ns per event)",
        workloads::REGISTRY_CHAIN
    );
    println!("{:<13}{:>9}{:>9}", "N", "drive", "inline");
    for (extra, [drive, inline]) in rows {
        println!("{extra:<13}{drive:>9.0}{inline:>9.0}");
    }
}

/// Memory of one workload in one mode, per event of the run.
#[derive(Clone, Copy)]
struct Mem {
    /// Peak RSS growth from before the build to after the run.
    rss: f64,
    /// Heap kept by the built graph (drive) or DAG (baselines), per node.
    graph: f64,
    /// Peak heap above its level at the start of the run.
    heap_run: f64,
    /// Allocations during the run.
    allocs: f64,
}

/// Measure `kind` at size `n` in `mode` in a child process (this binary with `--child`).
fn child_mem(kind: Kind, n: usize, mode: Mode) -> Option<Mem> {
    let exe = std::env::current_exe().ok()?;
    let output = Command::new(exe)
        .args(["--child", kind.name(), &n.to_string(), mode.name()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let [start, _built, run, heap, allocs, events, graph, nodes] = v[..] else {
        return None;
    };
    Some(Mem {
        rss: (run - start) * 1024.0 / events,
        graph: graph / nodes,
        heap_run: heap / events,
        allocs: allocs / events,
    })
}

/// In a child process: build and run one workload in one mode; print the peak RSS (KiB)
/// at the start, after the build and after the run, the peak heap growth (bytes) and the
/// allocations of the run, the events of the run, the heap kept by the built graph and its
/// nodes.
fn child(args: &[String]) {
    let kind = args.first().and_then(|a| Kind::parse(a));
    let n = args.get(1).and_then(|a| a.parse().ok());
    let mode = args.get(2).and_then(|a| Mode::parse(a));
    let (Some(kind), Some(n), Some(mode)) = (kind, n, mode) else {
        eprintln!("usage: bench --child WORKLOAD SIZE MODE");
        std::process::exit(2);
    };
    let rt = runtime();
    // Let the workers start (their stacks count in the start, not in the growth).
    rt.block_on(async { tokio::task::yield_now().await });
    let start = peak_rss_kib();
    let spec = Spec::new(kind, n);
    let nodes = spec.nodes;
    TRACK.store(true, Ordering::SeqCst);
    let prepared = Prepared::from_spec(spec, &[mode]);
    let graph = CURRENT.load(Ordering::SeqCst);
    let built = peak_rss_kib();
    PEAK.store(graph, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    SIZES
        .iter()
        .for_each(|size| size.store(0, Ordering::SeqCst));
    rt.block_on(prepared.run(mode));
    TRACK.store(false, Ordering::SeqCst);
    let run = peak_rss_kib();
    let heap = PEAK.load(Ordering::SeqCst) - graph;
    let allocs = ALLOCS.load(Ordering::SeqCst) - allocs;
    if std::env::var_os("BENCH_ALLOC_SIZES").is_some() {
        // Which allocations a run makes, per event: for profiling the hot path.
        let events = prepared.spec.events as f64;
        for (bucket, count) in SIZES.iter().enumerate() {
            let count = count.load(Ordering::SeqCst) as f64;
            if count / events >= 0.01 {
                eprintln!(
                    "  {:>5.2} allocs/event of {:>4} bytes",
                    count / events,
                    bucket * 16
                );
            }
        }
    }
    println!(
        "{start} {built} {run} {heap} {allocs} {} {graph} {nodes}",
        prepared.spec.events
    );
}

/// What the command line takes.
fn usage() -> String {
    let names = |names: Vec<&str>| names.join(" ");
    format!(
        "usage: bench [--quick | --smoke] [--only WORKLOAD[,WORKLOAD]] [--scaling]\n       \
         bench --repeat WORKLOAD SIZE MODE|build [SECONDS|Nx]\n\
         workloads: {}\nmodes: {}",
        names(KINDS.iter().map(|kind| kind.name()).collect()),
        names(MODES.iter().map(|mode| mode.name()).collect()),
    )
}

/// In a loop for `seconds`: one workload in one mode (to profile it).
fn repeat(args: &[String]) {
    let kind = args.first().and_then(|a| Kind::parse(a));
    let n = args.get(1).and_then(|a| a.parse().ok());
    let mode = args.get(2).and_then(|a| Mode::parse(a));
    // `SECONDS`, or `Nx`: exactly N runs (callgrind: the difference of two counts is the
    // cost of the runs alone).
    let times: Option<u64> = args
        .get(3)
        .and_then(|a| a.strip_suffix('x'))
        .and_then(|a| a.parse().ok());
    let seconds: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    // `build` has no `Mode` (checked below); a mode it does not know is an error, not
    // the drive's figures under another name.
    let mode = match args.get(2).map(String::as_str) {
        None | Some("build") => Some(Mode::Drive),
        Some(_) => mode,
    };
    let (Some(kind), Some(n), Some(mode)) = (kind, n, mode) else {
        eprintln!("{}", usage());
        std::process::exit(2);
    };
    // `BENCH_WORKERS=N`: the runtime's worker threads (`runtime()`'s unless given).
    let rt = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .filter(|&w| w > 0)
        .map_or_else(runtime, runtime_with);
    if args.get(2).map(String::as_str) == Some("build") {
        let spec = Spec::new(kind, n);
        let start = Instant::now();
        let mut builds = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            drop(build_drive(&spec));
            builds += 1;
        }
        let ns = start.elapsed().as_secs_f64() * 1e9 / (builds as f64 * spec.nodes as f64);
        println!(
            "{} {n} build: {builds} builds, {ns:.0} ns/node",
            kind.name()
        );
        return;
    }
    let prepared = Prepared::new(kind, n, &[mode]);
    let start = Instant::now();
    let mut runs = 0u64;
    while match times {
        Some(times) => runs < times,
        None => start.elapsed().as_secs_f64() < seconds,
    } {
        rt.block_on(prepared.run(mode));
        runs += 1;
    }
    let ns = start.elapsed().as_secs_f64() * 1e9 / (runs as f64 * prepared.spec.events as f64);
    println!(
        "{} {} {}: {runs} runs, {ns:.0} ns/event",
        kind.name(),
        n,
        mode.name()
    );
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| String::from("unknown CPU"))
}

/// The smallest sample: the run least disturbed by the rest of the machine.
fn fastest(samples: &mut [f64]) -> f64 {
    samples.iter().copied().fold(f64::NAN, f64::min)
}

/// Growth ratio; `None` when both grow by less than `NOISE` bytes per event (the goto
/// loop: nothing grows with the number of turns), where a ratio means nothing.
fn rss_ratio(drive: f64, base: f64) -> Option<f64> {
    const NOISE: f64 = 32.0;
    (drive >= NOISE || base >= NOISE).then(|| drive / base.max(1.0))
}

fn mark(ok: bool) -> &'static str {
    if ok {
        " "
    } else {
        "!"
    }
}

fn print_tables(
    rows: &[Row],
    mem_size: usize,
    rss: &[(Kind, [Option<Mem>; 4])],
    macros: &(Vec<MacroRow>, f64, usize),
) {
    println!();
    println!("ns per event (fastest of interleaved blocks); x = ratio to the baseline at its left; flat = ns/event at this size / at 1 000;");
    println!(
        "build = DriveBuilder events + listen + build, per node and per edge; ! = target missed"
    );
    println!(
        "{:<13}{:>9}{:>8}{:>11}{:>7}{:>6} |{:>8}{:>9}{:>7}{:>6} |{:>7}{:>7}",
        "workload",
        "events",
        "drive",
        "base-spawn",
        "x",
        "flat",
        "inline",
        "base-fut",
        "x",
        "flat",
        "build",
        "/edge"
    );
    for row in rows {
        let drive = row.ns(Mode::Drive);
        let spawn = row.ns(Mode::Spawn);
        let inline = row.ns(Mode::Inline);
        let fut = row.ns(Mode::Futures);
        let x1 = drive / spawn;
        let x2 = inline / fut;
        let base = rows.iter().find(|r| r.kind == row.kind && r.n == 1_000);
        let flat = |mode| match base {
            Some(b) if row.n > 1_000 => {
                let f = row.ns(mode) / b.ns(mode);
                format!("{f:.2}{}", mark(f <= MAX_FLAT))
            }
            _ => String::from("-"),
        };
        println!(
            "{:<13}{:>9}{:>8.0}{:>11.0}{:>6.2}{}{:>6} |{:>8.0}{:>9.0}{:>6.2}{}{:>6} |{:>6.0}{}{:>6.0}{}",
            row.kind.name(),
            row.events,
            drive,
            spawn,
            x1,
            mark(x1 <= MAX_RATIO_SPAWN),
            flat(Mode::Drive),
            inline,
            fut,
            x2,
            mark(x2 <= MAX_RATIO_INLINE),
            flat(Mode::Inline),
            row.build_ns_node,
            mark(row.build_ns_node < MAX_BUILD_NS),
            row.build_ns_edge,
            mark(row.build_ns_edge < MAX_BUILD_NS),
        );
    }

    println!();
    println!(
        "memory per event at {mem_size} events, fresh process per cell; bytes/event except allocs"
    );
    println!("rss = peak RSS growth, build + one run; heap = peak heap growth of the run;");
    println!("graph = heap kept by the built graph per node (drive: the Drive; base: the DAG the baselines walk)");
    println!(
        "{:<13}|{:<41}|{:<25}|{:<13}| allocs/event",
        "", " rss", " heap", " graph/node"
    );
    println!(
        "{:<13}|{:>6}{:>7}{:>7} {:>6}{:>7}{:>7} |{:>6}{:>6}{:>6}{:>6} |{:>6}{:>6} |{:>5}{:>5}{:>5}{:>5}",
        "workload", "drive", "spawn", "x", "inline", "fut", "x",
        "drive", "spawn", "inl", "fut", "drive", "base", "drv", "spn", "inl", "fut"
    );
    for (kind, per_mode) in rss {
        let get = |mode: Mode| per_mode[MODES.iter().position(|&m| m == mode).unwrap_or(0)];
        let show = |mode: Mode, f: fn(&Mem) -> f64, digits: usize| {
            get(mode).map_or_else(|| String::from("?"), |m| format!("{:.*}", digits, f(&m)))
        };
        let ratio = |a: Mode, b: Mode| match (get(a), get(b)) {
            (Some(a), Some(b)) => match rss_ratio(a.rss, b.rss) {
                Some(x) => format!("{x:.2}{}", mark(x <= MAX_RATIO_RSS)),
                None => String::from("~0 "),
            },
            _ => String::from("?"),
        };
        println!(
            "{:<13}|{:>6}{:>7}{:>7} {:>6}{:>7}{:>7} |{:>6}{:>6}{:>6}{:>6} |{:>6}{:>6} |{:>5}{:>5}{:>5}{:>5}",
            kind.name(),
            show(Mode::Drive, |m| m.rss, 0),
            show(Mode::Spawn, |m| m.rss, 0),
            ratio(Mode::Drive, Mode::Spawn),
            show(Mode::Inline, |m| m.rss, 0),
            show(Mode::Futures, |m| m.rss, 0),
            ratio(Mode::Inline, Mode::Futures),
            show(Mode::Drive, |m| m.heap_run, 0),
            show(Mode::Spawn, |m| m.heap_run, 0),
            show(Mode::Inline, |m| m.heap_run, 0),
            show(Mode::Futures, |m| m.heap_run, 0),
            show(Mode::Drive, |m| m.graph, 0),
            show(Mode::Spawn, |m| m.graph, 0),
            show(Mode::Drive, |m| m.allocs, 1),
            show(Mode::Spawn, |m| m.allocs, 1),
            show(Mode::Inline, |m| m.allocs, 1),
            show(Mode::Futures, |m| m.allocs, 1),
        );
    }

    let (rows, new_ns, registered) = macros;
    println!();
    println!(
        "macros vs builder, same graphs (ns per event); Drive::new(): {new_ns:.0} ns per registered event ({registered} events)"
    );
    println!(
        "{:<13}{:>9}{:>9}{:>9}{:>7} |{:>9}{:>9}{:>7}",
        "workload", "events", "macros", "builder", "x", "inline:m", "inline:b", "x"
    );
    for row in rows {
        let [m, b, mi, bi] = row.ns;
        println!(
            "{:<13}{:>9}{:>9.0}{:>9.0}{:>7.2} |{:>9.0}{:>9.0}{:>7.2}",
            row.kind.name(),
            row.events,
            m,
            b,
            m / b,
            mi,
            bi,
            mi / bi
        );
    }
}

fn print_targets(rows: &[Row], rss: &[(Kind, [Option<Mem>; 4])], registry: &[(usize, [f64; 2])]) {
    let report = |name: &str, misses: Vec<String>| {
        if misses.is_empty() {
            println!("  met     {name}");
        } else {
            println!("  MISSED  {name}: {}", misses.join(", "));
        }
    };
    println!("\ntargets");
    report(
        &format!("drive ≤ {MAX_RATIO_SPAWN}× base-spawn, every workload and size"),
        rows.iter()
            .filter_map(|r| {
                let x = r.ns(Mode::Drive) / r.ns(Mode::Spawn);
                (x > MAX_RATIO_SPAWN).then(|| format!("{}/{} {x:.2}×", r.kind.name(), r.n))
            })
            .collect(),
    );
    // Each miss also shows the baseline's own figure: how flat plain tokio code is there.
    let flat = |mode: Mode, baseline: Mode| {
        rows.iter()
            .filter(|r| r.n == BIG)
            .filter_map(|r| {
                let small = rows.iter().find(|b| b.kind == r.kind && b.n == 1_000)?;
                let f = r.ns(mode) / small.ns(mode);
                let b = r.ns(baseline) / small.ns(baseline);
                (f > MAX_FLAT)
                    .then(|| format!("{} {f:.2} ({} {b:.2})", r.kind.name(), baseline.name()))
            })
            .collect()
    };
    report(
        &format!("drive flat: ns/event at {BIG} ≤ {MAX_FLAT}× at 1 000"),
        flat(Mode::Drive, Mode::Spawn),
    );
    report(
        &format!("inline ≤ {MAX_RATIO_INLINE}× base-futures, every workload and size"),
        rows.iter()
            .filter_map(|r| {
                let x = r.ns(Mode::Inline) / r.ns(Mode::Futures);
                (x > MAX_RATIO_INLINE).then(|| format!("{}/{} {x:.2}×", r.kind.name(), r.n))
            })
            .collect(),
    );
    report(
        &format!("inline flat: ns/event at {BIG} ≤ {MAX_FLAT}× at 1 000"),
        flat(Mode::Inline, Mode::Futures),
    );
    let mem = |a: Mode, b: Mode| {
        rss.iter()
            .filter_map(|(kind, per_mode)| {
                let get = |m: Mode| per_mode[MODES.iter().position(|&x| x == m).unwrap_or(0)];
                match (get(a), get(b)) {
                    (Some(x), Some(y)) => rss_ratio(x.rss, y.rss)
                        .filter(|&r| r > MAX_RATIO_RSS)
                        .map(|r| format!("{} {r:.2}×", kind.name())),
                    _ => Some(format!("{} not measured", kind.name())),
                }
            })
            .collect()
    };
    report(
        &format!("peak RSS/event at {BIG}: drive ≤ {MAX_RATIO_RSS}× base-spawn"),
        mem(Mode::Drive, Mode::Spawn),
    );
    report(
        &format!("peak RSS/event at {BIG}: inline ≤ {MAX_RATIO_RSS}× base-futures"),
        mem(Mode::Inline, Mode::Futures),
    );
    report(
        "build < 1 µs per event and per edge",
        rows.iter()
            .filter(|r| r.build_ns_node >= MAX_BUILD_NS || r.build_ns_edge >= MAX_BUILD_NS)
            .map(|r| {
                format!(
                    "{}/{} {:.0}/{:.0} ns",
                    r.kind.name(),
                    r.n,
                    r.build_ns_node,
                    r.build_ns_edge
                )
            })
            .collect(),
    );
    // The design's goal: a run costs what it runs, whatever else the drive holds.
    if let (Some((_, small)), Some((largest, big))) = (registry.first(), registry.last()) {
        report(
            &format!(
                "(design) a run's cost independent of the registry: ≤ {MAX_FLAT}× with {largest} unreached events"
            ),
            ["drive", "inline"]
                .iter()
                .zip(small.iter().zip(big))
                .filter(|(_, (s, b))| *b / *s > MAX_FLAT)
                .map(|(name, (s, b))| format!("{name} {:.1}×", b / s))
                .collect(),
        );
    }
}
