//! Property tests: random graphs, built with the programmatic builder, run through the real
//! runner and through a small sequential reference interpreter of SEMANTICS.md (a FIFO queue,
//! per-event latest outcome, per-(listener, group) delivered sets, written as step 3 words
//! it). Every call of an event computes its outcome from what it received, so an event given
//! the wrong input produces a wrong value, and the comparison sees it.
//!
//! - One event at a time (`max_concurrency(1)`), queued events start in the order they were
//!   queued: the runner must agree with the reference on everything, including the exact
//!   sequence of calls and what each call received. Graphs: any groups (several per event,
//!   self-loops, cycles, repeated members, duplicate groups, both retrigger modes), gotos and
//!   aborts, every event bounded by a call budget (later calls abort).
//! - Unbounded concurrency, and a cap of 2 to 4, on a multi-thread runtime, events sleeping
//!   for random short times: only on graphs where the semantics make the result independent
//!   of timing, compared as sets of calls. DAGs where every event has exactly one group and
//!   produces values (every event runs once), and such DAGs (`all` joins only) run in 2 to 4
//!   rounds by a goto from a join of every leaf back to the start (every event runs once per
//!   round).

mod reference_model;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use reference_model::{
    any_graph, build, compare, dag, dag_in_rounds, reference, runtime, widen, GraphSpec, Probe,
    RunnerRun,
};

/// How a run is configured.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `max_concurrency(1)`, events spawned as tasks.
    OneAtATime,
    /// `max_concurrency(1).inline()`.
    OneAtATimeInline,
    /// No cap; events sleep for their delay.
    Unbounded,
    /// No cap, `.inline()`; events sleep for their delay.
    UnboundedInline,
    /// At most this many events at once (2 or more); events sleep for their delay.
    Capped(usize),
}

fn run(spec: &Arc<GraphSpec>, mode: Mode) -> RunnerRun {
    let sleep = matches!(
        mode,
        Mode::Unbounded | Mode::UnboundedInline | Mode::Capped(_)
    );
    let (drive, handles) = build(spec, sleep, |_, _| {});
    let probe = Arc::new(Probe {
        calls: (0..spec.events.len()).map(|_| AtomicU32::new(0)).collect(),
        log: Mutex::new(Vec::new()),
    });
    let invoke = drive.invoke(handles[0]).context_arc(probe.clone());
    let invoke = match mode {
        Mode::OneAtATime => invoke.max_concurrency(1),
        Mode::OneAtATimeInline => invoke.max_concurrency(1).inline(),
        Mode::Unbounded => invoke,
        Mode::UnboundedInline => invoke.inline(),
        Mode::Capped(cap) => invoke.max_concurrency(cap),
    };
    let results = runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), invoke).await })
        .expect("the run ends")
        .expect("the run succeeds");
    RunnerRun {
        results,
        probe,
        handles,
    }
}

/// One event at a time, spawned and inline: the runner does exactly what the FIFO
/// reference does (the same calls, in the same order, with the same inputs).
fn one_at_a_time_matches(spec: GraphSpec) -> Result<(), TestCaseError> {
    let spec = Arc::new(spec);
    let expected = reference(&spec);
    compare(&run(&spec, Mode::OneAtATime), &expected, true)?;
    compare(&run(&spec, Mode::OneAtATimeInline), &expected, true)
}

/// A DAG run concurrently (spawned, inline, capped at `cap`): every event runs once, with
/// the inputs and values the reference computes, whatever the timing.
fn concurrent_dag_matches(spec: GraphSpec, cap: usize) -> Result<(), TestCaseError> {
    let spec = Arc::new(spec);
    let expected = reference(&spec);
    for (event, calls) in expected.calls.iter().enumerate() {
        prop_assert_eq!(*calls, 1, "the reference ran e{} {} times", event, calls);
    }
    compare(&run(&spec, Mode::Unbounded), &expected, false)?;
    compare(&run(&spec, Mode::UnboundedInline), &expected, false)?;
    compare(&run(&spec, Mode::Capped(cap)), &expected, false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// One event at a time: the runner does exactly what the FIFO reference does.
    #[test]
    fn one_at_a_time_the_runner_matches_the_reference_exactly(spec in any_graph()) {
        one_at_a_time_matches(spec)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Concurrent runs of DAGs with one group per event: every event runs once,
    /// with the inputs and values the reference computes, whatever the timing.
    #[test]
    fn concurrent_dags_match_the_reference(spec in dag(), cap in 2usize..=4) {
        concurrent_dag_matches(spec, cap)?;
    }

    /// Concurrent runs of DAGs looped through a goto: each event runs once per round, with
    /// the inputs and values the reference computes.
    #[test]
    fn concurrent_dags_in_rounds_match_the_reference(spec in dag_in_rounds(), cap in 2usize..=4) {
        let spec = Arc::new(spec);
        let expected = reference(&spec);
        let rounds = spec.events.last().map_or(0, |sink| sink.script.len() as u32);
        for (event, calls) in expected.calls.iter().enumerate() {
            prop_assert_eq!(*calls, rounds, "the reference ran e{} {} times", event, calls);
        }
        compare(&run(&spec, Mode::Unbounded), &expected, false)?;
        compare(&run(&spec, Mode::UnboundedInline), &expected, false)?;
        compare(&run(&spec, Mode::Capped(cap)), &expected, false)?;
    }
}

// Joins wider than one word packs: their locked state, and the count of their members'
// first completions made without the lock, their outcomes kept apart if their listener
// reads them (only the last, and a member's later completions, take the lock; see
// `reference_model::widen`).
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn one_at_a_time_wide_joins_match_the_reference_exactly(spec in any_graph().prop_map(widen)) {
        one_at_a_time_matches(spec)?;
    }

    #[test]
    fn concurrent_dags_with_wide_joins_match_the_reference(
        spec in dag().prop_map(widen),
        cap in 2usize..=4,
    ) {
        concurrent_dag_matches(spec, cap)?;
    }
}
