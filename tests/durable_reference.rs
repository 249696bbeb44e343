//! The crate's reference property tests, run durably: random graphs built with the
//! programmatic builder, run by a worker over PostgreSQL, compared with the same small
//! sequential reference interpreter of SEMANTICS.md as `tests/reference.rs`
//! (`tests/reference_model`; only the runner differs). One event at a time (`max_concurrency(1)`): the durable
//! run must make exactly the calls the reference makes, in the same order, with the same
//! inputs, and end with the same results. Concurrent DAGs: the same calls as a set.

mod durable_support;
mod reference_model;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use drive_flow::durable::sqlx;
use durable_support::TestDb;
use reference_model::{
    any_graph, build, compare, dag, dag_in_rounds, reference, runtime, widen, GraphSpec, Probe,
    RunnerRun,
};

/// How a run is configured.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `max_concurrency(1)`.
    OneAtATime,
    /// No cap; events sleep for their delay.
    Unbounded,
    /// At most this many events at once (2 or more); events sleep for their delay.
    Capped(usize),
}

/// One durable run of `spec`: a worker of its graph (with the probe as its context),
/// started for this run alone, a client that submits and waits.
fn run(db: &TestDb, spec: &Arc<GraphSpec>, mode: Mode) -> RunnerRun {
    let sleep = matches!(mode, Mode::Unbounded | Mode::Capped(_));
    let (drive, handles) = build(spec, sleep, |builder, handles| {
        for handle in handles {
            builder.serde(*handle);
        }
    });
    let probe = Arc::new(Probe {
        calls: (0..spec.events.len()).map(|_| AtomicU32::new(0)).collect(),
        log: Mutex::new(Vec::new()),
    });
    let store = db.store.clone();
    let results = runtime().block_on(async {
        // Every generated graph names its events e0, e1, ...: no task of an earlier case
        // may be left for this case's worker.
        sqlx::query(&format!("DELETE FROM \"{}\".tasks", db.schema))
            .execute(store.pool())
            .await
            .expect("clean the queue");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(
            drive
                .worker(&store)
                .concurrency(8)
                .context_arc(probe.clone())
                .poll_interval(Duration::from_millis(20))
                .grace(Duration::ZERO)
                .run_until(async {
                    let _ = stopped.await;
                }),
        );
        let client = drive.durable(&store).expect("every event has a codec");
        let invoke = client.invoke(handles[0]);
        let invoke = match mode {
            Mode::OneAtATime => invoke.max_concurrency(1),
            Mode::Unbounded => invoke,
            Mode::Capped(cap) => invoke.max_concurrency(cap as u32),
        };
        let run = invoke.submit().await.expect("submit");
        let results = tokio::time::timeout(Duration::from_secs(60), client.wait(run))
            .await
            .expect("the run ends")
            .expect("the run succeeds");
        let _ = stop.send(());
        worker.await.expect("worker task").expect("worker");
        results
    });
    RunnerRun {
        results,
        probe,
        handles,
    }
}

fn db() -> TestDb {
    runtime().block_on(TestDb::migrated())
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig::with_cases(cases))
}

/// One event at a time: the durable run does exactly what the FIFO reference does.
#[test]
fn one_at_a_time_durable_runs_match_the_reference_exactly() {
    let db = db();
    runner(48)
        .run(&any_graph(), |spec| {
            let spec = Arc::new(spec);
            let expected = reference(&spec);
            compare(&run(&db, &spec, Mode::OneAtATime), &expected, true)
        })
        .unwrap();
}

/// One event at a time, with joins wider than the in-process runner packs in one word
/// (`reference_model::widen`): the durable run does exactly what the reference does.
#[test]
fn one_at_a_time_durable_runs_with_wide_joins_match_the_reference_exactly() {
    let db = db();
    runner(8)
        .run(&any_graph().prop_map(widen), |spec| {
            let spec = Arc::new(spec);
            let expected = reference(&spec);
            compare(&run(&db, &spec, Mode::OneAtATime), &expected, true)
        })
        .unwrap();
}

/// Concurrent durable runs of DAGs with one group per event: every event runs once, with
/// the inputs and values the reference computes, whatever the timing.
#[test]
fn concurrent_durable_dags_match_the_reference() {
    let db = db();
    runner(16)
        .run(&(dag(), 2usize..=4), |(spec, cap)| {
            let spec = Arc::new(spec);
            let expected = reference(&spec);
            compare(&run(&db, &spec, Mode::Unbounded), &expected, false)?;
            compare(&run(&db, &spec, Mode::Capped(cap)), &expected, false)
        })
        .unwrap();
}

/// Concurrent durable runs of DAGs looped through a goto: each event runs once per round.
#[test]
fn concurrent_durable_dags_in_rounds_match_the_reference() {
    let db = db();
    runner(12)
        .run(&(dag_in_rounds(), 2usize..=4), |(spec, cap)| {
            let spec = Arc::new(spec);
            let expected = reference(&spec);
            compare(&run(&db, &spec, Mode::Unbounded), &expected, false)?;
            compare(&run(&db, &spec, Mode::Capped(cap)), &expected, false)
        })
        .unwrap();
}
