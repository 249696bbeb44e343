//! Per-event overhead of drive-flow against hand-written tokio code, side by side.
//!
//! `cargo bench --bench overhead` runs every workload of `support/workloads.rs` at 10, 1 000
//! and 100 000 events (and 1 000 000 with `BENCH_1M=1`) in four modes: drive-flow
//! (`drive`, its events spawned), drive-flow `.inline()` (`drive-inline`), the spawn-per-event
//! baseline (`base-spawn`) and the `FuturesUnordered` baseline (`base-futures`). Throughput
//! is in events, so criterion prints events/s; ns/event is its inverse. Also: the cost of
//! building each graph (`build/*`), and the macro-made small workloads against the same
//! graphs made with the builder (`macro/*`), and a 10-event run in drives holding up to
//! 100 000 events it never reaches (`registry/*`).
//!
//! A one-screen table with ratios and peak memory: `cargo run --release --example bench`.

#[path = "support/workloads.rs"]
mod workloads;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use drive_flow::Drive;
use workloads::{build_drive, runtime, Kind, Prepared, Spec, KINDS, MODES};

fn sizes() -> Vec<usize> {
    let mut sizes = vec![10, 1_000, 100_000];
    if std::env::var_os("BENCH_1M").is_some() {
        sizes.push(1_000_000);
    }
    sizes
}

fn runs(c: &mut Criterion) {
    let rt = runtime();
    for kind in KINDS {
        let mut group = c.benchmark_group(kind.name());
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for n in sizes() {
            let prepared = Prepared::new(kind, n, &MODES);
            rt.block_on(prepared.verify(false)).expect("drive run");
            rt.block_on(prepared.verify(true)).expect("inline run");
            group.throughput(Throughput::Elements(prepared.spec.events as u64));
            for mode in MODES {
                group.bench_with_input(BenchmarkId::new(mode.name(), n), &mode, |b, &mode| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..iters {
                                prepared.run(mode).await;
                            }
                            start.elapsed()
                        })
                    })
                });
            }
        }
        group.finish();
    }
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for kind in KINDS {
        if kind == Kind::FanOutCap4 {
            continue; // the same graph as fan-out
        }
        for n in sizes() {
            let spec = Spec::new(kind, n);
            group.throughput(Throughput::Elements(spec.nodes as u64));
            group.bench_with_input(BenchmarkId::new(kind.name(), n), &spec, |b, spec| {
                b.iter_with_large_drop(|| build_drive(spec))
            });
        }
    }
    group.finish();
}

fn macros(c: &mut Criterion) {
    let rt = runtime();
    let drive = Drive::new().expect("registered events build");
    let mut group = c.benchmark_group("macro");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("Drive::new", |b| {
        b.iter_with_large_drop(|| Drive::new().expect("registered events build"))
    });
    for (kind, n) in workloads::macros::WORKLOADS {
        group.throughput(Throughput::Elements(workloads::macros::events(kind) as u64));
        group.bench_function(BenchmarkId::new("macros", kind.name()), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        workloads::macros::run(&drive, kind, false).await;
                    }
                    start.elapsed()
                })
            })
        });
        let prepared = Prepared::new(kind, n, &[workloads::Mode::Drive]);
        group.throughput(Throughput::Elements(prepared.spec.events as u64));
        group.bench_function(BenchmarkId::new("builder", kind.name()), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        prepared.run(workloads::Mode::Drive).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// A 10-event chain in drives that also hold 0, 1 000 and 100 000 unreached events.
fn registry(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("registry");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(workloads::REGISTRY_CHAIN as u64));
    for extra in [0, 1_000, 100_000] {
        let built = workloads::registry_drive(extra);
        for (name, inline) in [("drive", false), ("drive-inline", true)] {
            group.bench_function(BenchmarkId::new(name, extra), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            workloads::run_drive(&built, None, inline).await;
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, runs, build, macros, registry);
criterion_main!(benches);
