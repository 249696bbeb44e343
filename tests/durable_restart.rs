//! The PostgreSQL server restarted in the middle of runs: the worker processes lose every
//! connection, reconnect with a backoff, and the runs complete with the right results, each
//! event completed exactly once.
//!
//! It restarts the machine's server (`pg_ctlcluster VERSION NAME restart`), which disturbs
//! anyone else using it, so it runs only with `DRIVE_FLOW_PG_RESTART=1` and
//! `DRIVE_FLOW_PG_CLUSTER="VERSION NAME"`, which `.ci/run` sets as root; elsewhere it says
//! so and passes. A test binary of its own: no other test of this binary runs while the
//! server restarts.

mod durable_support;
mod fault_support;

use std::time::Duration;

use durable_support::TestDb;
use fault_support::graph::{check_bodies, fleet, spawn_ready, Runs};

/// Not a test: the body of the worker processes the test starts.
#[test]
#[ignore = "the worker process of the restart test; it starts it"]
fn worker_process() {
    fault_support::graph::worker_main();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_complete_when_the_server_restarts_in_their_middle() {
    if !fault_support::pg_restart_enabled() {
        eprintln!(
            "skipped: set DRIVE_FLOW_PG_RESTART=1 and DRIVE_FLOW_PG_CLUSTER to restart the server"
        );
        return;
    }
    let db = TestDb::migrated().await;
    let mut fleet = fleet(&db, 4, 100);
    let workers = [spawn_ready(&mut fleet), spawn_ready(&mut fleet)];
    let runs = Runs::submit(&db, 1, 4).await;
    assert!(fleet.wait_lines(Duration::from_secs(60), |lines| {
        lines.iter().filter(|l| l.text.starts_with("DONE ")).count() >= 6
    }));
    let done_before = fleet.lines_with(&["DONE"]).len();
    fault_support::pg_restart();
    eprintln!("server restarted after {done_before} bodies had finished");
    // The runs go on after the restart, on the same worker processes.
    runs.check().await;
    assert_eq!(fleet.running(), workers);
    let done_after = fleet.lines_with(&["DONE"]).len();
    assert!(
        done_after > done_before,
        "{done_after} bodies finished in all"
    );
    // A write that failed while the server was down runs its event again (at least once):
    // any worker may have run a body twice, but every event completed exactly once.
    let again = check_bodies(
        &fleet.lines(),
        runs.runs.len(),
        &workers.into_iter().collect(),
    );
    eprintln!("{again} bodies ran again");
}
