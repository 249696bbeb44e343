//! Durable runs survive their workers: worker processes (this test binary started again,
//! see `fault_support`) killed with SIGKILL in the middle of events, at random points, many
//! times; the only worker killed and started again; a worker frozen (SIGSTOP) past its
//! lease whose late commit must be refused. The graph and the checks are in
//! `fault_support/graph.rs`.
//!
//! What every test checks at the end: each run's results are the right values; its history
//! has exactly one completed entry per event (every completion applied once: nothing lost,
//! nothing doubled); every body ran at least once, and a body ran more than once only when
//! a worker died (or froze) while running it.
//!
//! `DRIVE_FLOW_FAULT_ROUNDS=N` runs more rounds of the random kills (default 5);
//! `DRIVE_FLOW_FAULT_SEED=S` replays the kill points of a failed round (each test prints
//! its seed).

mod durable_support;
mod fault_support;

use std::collections::BTreeSet;
use std::time::Duration;

use durable_support::TestDb;
use fault_support::graph::{
    body_runs, check_bodies, fleet, in_flight, signal, spawn_ready, Runs, EVENTS,
};
use fault_support::{Line, Rng};

/// Not a test: the body of the worker processes the tests start.
#[test]
#[ignore = "the worker process of the fault tests; they start it"]
fn worker_process() {
    fault_support::graph::worker_main();
}

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

/// Three worker processes, four runs; one to three workers killed with SIGKILL at random
/// points, each while a body runs on it if one does, and replaced by a new process.
/// Repeated `DRIVE_FLOW_FAULT_ROUNDS` times (5 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_events_with_several_workers() {
    let mut rng = Rng::from_env("sigkill_in_the_middle_of_events_with_several_workers");
    let mut repeats = 0;
    for round in 0..fault_support::rounds("DRIVE_FLOW_FAULT_ROUNDS", 5) {
        let db = TestDb::migrated().await;
        let mut fleet = fleet(&db, 4, 20);
        for _ in 0..3 {
            spawn_ready(&mut fleet);
        }
        let runs = Runs::submit(&db, 100 * round as u64 + 1, 4).await;
        let mut killed = BTreeSet::new();
        let kills = rng.range(1, 4);
        for _ in 0..kills {
            // A random point: after 1 to 12 more bodies have started.
            let seen = fleet.lines_with(&["BODY"]).len();
            let wait = seen + rng.range(1, 13) as usize;
            fleet.wait_lines(Duration::from_secs(30), |lines| {
                lines.iter().filter(|l| l.text.starts_with("BODY ")).count() >= wait
            });
            // A worker with a body running, if any.
            let lines = fleet.lines();
            let running = fleet.running();
            let busy: Vec<&String> = running
                .iter()
                .filter(|w| !in_flight(&lines, w).is_empty())
                .collect();
            let victim = if busy.is_empty() {
                running[rng.range(0, running.len() as u64) as usize].clone()
            } else {
                busy[rng.range(0, busy.len() as u64) as usize].clone()
            };
            fleet.kill(&victim);
            killed.insert(victim);
            spawn_ready(&mut fleet);
        }
        runs.check().await;
        let again = check_bodies(&fleet.lines(), runs.runs.len(), &killed);
        repeats += again;
        eprintln!("round {round}: {kills} workers killed, {again} bodies ran again");
    }
    eprintln!("{repeats} bodies ran again in all");
}

/// The only worker is killed with SIGKILL while bodies run, after some events completed;
/// started again, it finishes the runs, and no event that had completed runs again: the
/// bodies that run twice are exactly those not completed when the worker died.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_only_worker_and_start_it_again() {
    let db = TestDb::migrated().await;
    // Bodies of 300 ms or more: the kill, sent within a few ms of a body's start, lands
    // while it runs.
    let mut fleet = fleet(&db, 4, 300);
    let first = spawn_ready(&mut fleet);
    let runs = Runs::submit(&db, 1, 3).await;
    // After at least 8 bodies finished, at a moment when one is running.
    assert!(
        fleet.wait_lines(Duration::from_secs(60), |lines| {
            lines.iter().filter(|l| l.text.starts_with("DONE ")).count() >= 8
                && lines.last().is_some_and(|l| l.text.starts_with("BODY "))
        }),
        "{:#?}",
        fleet.lines()
    );
    fleet.kill(&first);
    let started_before: BTreeSet<String> = body_runs(&fleet.lines()).into_keys().collect();
    let second = spawn_ready(&mut fleet);
    runs.check().await;
    // Which worker completed each event (a commit the first worker had sent may still land
    // after the kill: the history, not the moment, says which worker's commit counted).
    let by_first = runs.completed_by(&first).await;
    let by_second = runs.completed_by(&second).await;
    assert!(by_first.len() >= 2, "{by_first:?}");
    assert_eq!(
        by_first.len() + by_second.len(),
        EVENTS.len() * runs.runs.len()
    );
    let lines = fleet.lines();
    let bodies = body_runs(&lines);
    let mut again = 0;
    for (key, workers) in &bodies {
        let expected = if by_first.contains(key) {
            // Completed by the first worker: it never runs again.
            vec![first.clone()]
        } else if started_before.contains(key) {
            // Started on the first worker, not committed: it runs again, on the new one.
            again += 1;
            vec![first.clone(), second.clone()]
        } else {
            vec![second.clone()]
        };
        assert_eq!(workers, &expected, "{key}");
    }
    // The kill landed while a body ran: at least that one ran again.
    assert!(again >= 1);
    assert_eq!(
        check_bodies(&lines, runs.runs.len(), &BTreeSet::from([first])),
        again
    );
}

/// A worker frozen (SIGSTOP) while its bodies run, past its lease; another worker claims
/// those events again; while it runs them, the frozen one is thawed (SIGCONT): its bodies
/// finish first (their pause is long over) and it commits with its old attempt, which must
/// be refused: each of those events is completed once, by the other worker, and the
/// results are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_after_the_lease_was_taken_over_is_refused() {
    let db = TestDb::migrated().await;
    let mut fleet = fleet(&db, 4, 300);
    let frozen = spawn_ready(&mut fleet);
    let runs = Runs::submit(&db, 1, 1).await;
    assert!(fleet.wait_lines(Duration::from_secs(60), |lines| {
        lines.last().is_some_and(|l| l.text.starts_with("BODY "))
    }));
    signal(&fleet, &frozen, "-STOP");
    let stuck = in_flight(&fleet.lines(), &frozen);
    assert!(!stuck.is_empty());
    // The other worker's bodies take 8 s or more: the thawed one has that long to finish
    // its own before the run can end (on a loaded 2-core machine, with 300 ms, a thawed
    // process could get a core only after the run ended and stopped its bodies; with 3 s
    // it did once, while the other fault tests ran beside it).
    fleet.set_env("DF_BODY_MS", String::from("8000"));
    let other = spawn_ready(&mut fleet);
    // Once the lease expired, the other worker starts the stuck bodies: thaw the frozen one
    // now.
    assert!(fleet.wait_lines(Duration::from_secs(60), |lines| {
        let bodies = body_runs(lines);
        stuck.iter().all(|key| bodies[key].contains(&other))
    }));
    signal(&fleet, &frozen, "-CONT");
    runs.check().await;
    // The frozen worker finished a body while the other one still ran it, …
    let finished_late = |lines: &[Line]| {
        stuck.iter().any(|key| {
            let done = format!("DONE {key}");
            lines.iter().any(|l| l.worker == frozen && l.text == done)
        })
    };
    // (Generous: on a loaded 2-core machine a thawed process may wait long for a core.)
    assert!(fleet.wait_lines(Duration::from_secs(60), finished_late));
    // … and its commits were refused: the other worker's completions are the ones kept.
    let by_other = runs.completed_by(&other).await;
    for key in &stuck {
        assert!(by_other.contains(key), "{key} completed by {by_other:?}");
        assert_eq!(
            body_runs(&fleet.lines())[key],
            [frozen.clone(), other.clone()]
        );
    }
    check_bodies(&fleet.lines(), 1, &BTreeSet::from([frozen]));
}
