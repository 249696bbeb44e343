//! Durable runs survive their workers: worker processes (this test binary started again,
//! see `fault_support`) killed with SIGKILL in the middle of events, at random points, many
//! times; the only worker killed and started again; a worker frozen (SIGSTOP) past its
//! lease whose late commit must be refused.
//!
//! What every test checks at the end: each run's results are the right values; its history
//! has exactly one completed entry per event (every completion applied once: nothing lost,
//! nothing doubled); every body ran at least once, and a body ran more than once only when
//! a worker died (or froze) while running it.
//!
//! `DRIVE_FLOW_FAULT_ROUNDS=N` runs more rounds of the random kills (default 3);
//! `DRIVE_FLOW_FAULT_SEED=S` replays the kill points of a failed round (each test prints
//! its seed).

#![cfg(feature = "postgres")]

mod durable_support;
mod fault_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drive_flow::durable::{DurableDrive, PgOptions, PgStore, RunId};
use drive_flow::prelude::*;
use drive_flow::Event;
use durable_support::TestDb;
use fault_support::{Fleet, Line, Rng};

/// The lease of the workers: short, so that a dead worker's events run again soon.
const LEASE_MS: u64 = 1_000;

// ---------------------------------------------------------------------------------------
// The graph: `start` fans out to four branches that join in `join`, then a chain of three.
// Every output is `(tag, value)`: the run's tag (its input) travels with every value, so
// that a body knows its run. Every body prints `BODY <event> <tag>/<task id>` when it starts
// and `DONE <event> <tag>/<task id>` just before it returns (before its outcome commits),
// and sleeps 20-120 ms in between so that a kill lands in the middle of bodies.
// ---------------------------------------------------------------------------------------

/// The events of one run, each completed exactly once.
const EVENTS: [&str; 9] = ["start", "b1", "b2", "b3", "b4", "join", "c1", "c2", "c3"];

type Tagged = (u64, u64);

async fn body(event: &str, tag: u64, input: &EventInput) {
    let key = format!("{tag}/{}", input.task_id());
    println!("BODY {event} {key}");
    let pause = body_ms() + (u64::from(std::process::id()) * 7 + input.task_id() * 13 + tag) % 100;
    tokio::time::sleep(Duration::from_millis(pause)).await;
    println!("DONE {event} {key}");
}

/// The shortest pause of a body, in ms: `DF_BODY_MS` of the worker process, else 20.
fn body_ms() -> u64 {
    static MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MS.get_or_init(|| {
        std::env::var("DF_BODY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    })
}

/// The tag and value of a member's output.
fn of<E: Event<Output = Tagged>>(input: &EventInput, event: E) -> Tagged {
    input.get(event).copied().unwrap_or((0, 0))
}

#[event]
async fn start(input: EventInput) -> Tagged {
    let tag = input.user::<u64>().copied().unwrap_or(0);
    body("start", tag, &input).await;
    (tag, tag)
}

#[listen(start)]
async fn b1(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b1", tag, &input).await;
    (tag, s + 1)
}

#[listen(start)]
async fn b2(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b2", tag, &input).await;
    (tag, s + 10)
}

#[listen(start)]
async fn b3(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b3", tag, &input).await;
    (tag, s + 100)
}

#[listen(start)]
async fn b4(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b4", tag, &input).await;
    (tag, s + 1_000)
}

#[listen(b1, b2, b3, b4)]
async fn join(input: EventInput) -> Tagged {
    let tag = of(&input, b1).0;
    body("join", tag, &input).await;
    let sum = of(&input, b1).1 + of(&input, b2).1 + of(&input, b3).1 + of(&input, b4).1;
    (tag, sum)
}

#[listen(join)]
async fn c1(input: EventInput) -> Tagged {
    let (tag, v) = of(&input, join);
    body("c1", tag, &input).await;
    (tag, v + 1)
}

#[listen(c1)]
async fn c2(input: EventInput) -> Tagged {
    let (tag, v) = of(&input, c1);
    body("c2", tag, &input).await;
    (tag, v * 2)
}

#[listen(c2)]
async fn c3(input: EventInput) -> Tagged {
    let (tag, v) = of(&input, c2);
    body("c3", tag, &input).await;
    (tag, v + 3)
}

/// The right results of the run tagged `tag`: join = 4·tag + 1111, c3 = (join + 1)·2 + 3.
fn expected(tag: u64) -> (Tagged, Tagged) {
    let joined = 4 * tag + 1_111;
    ((tag, joined), (tag, (joined + 1) * 2 + 3))
}

// ---------------------------------------------------------------------------------------
// The worker process.
// ---------------------------------------------------------------------------------------

/// Not a test: the body of a worker process (`fault_support::Fleet::spawn` starts this
/// binary with `worker_process --exact --ignored`). Without `DF_WORKER_SCHEMA` it returns.
#[test]
#[ignore = "the worker process of the fault tests; they start it"]
fn worker_process() {
    let Ok(schema) = std::env::var("DF_WORKER_SCHEMA") else {
        return;
    };
    let name = std::env::var("DF_WORKER_NAME").unwrap_or_else(|_| "worker".into());
    let concurrency: usize = std::env::var("DF_WORKER_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // The worker's log on standard error, as `RUST_LOG` says (nothing by default).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let store = PgStore::connect_with(
            &durable_support::url(),
            PgOptions::default().schema(schema.clone()),
        )
        .await
        .expect("the worker connects");
        let drive = Drive::new().expect("the drive");
        // On a line of its own: libtest has printed `test worker_process ... ` before.
        println!("\nREADY {name}");
        drive
            .worker(&store)
            .concurrency(concurrency)
            .lease(Duration::from_millis(LEASE_MS))
            .poll_interval(Duration::from_millis(200))
            .value_type::<u64>()
            .name(name)
            .run()
            .await
            .expect("the worker runs");
    });
}

// ---------------------------------------------------------------------------------------
// What the tests share.
// ---------------------------------------------------------------------------------------

/// Worker processes over this test's schema whose bodies pause `body_ms` to `body_ms + 100`
/// ms.
fn fleet(db: &TestDb, concurrency: usize, body_ms: u64) -> Fleet {
    Fleet::new(&[
        ("DF_WORKER_SCHEMA", db.schema.clone()),
        ("DF_WORKER_CONCURRENCY", concurrency.to_string()),
        ("DF_BODY_MS", body_ms.to_string()),
        ("DRIVE_FLOW_TEST_DATABASE_URL", durable_support::url()),
    ])
}

/// Starts a worker and waits until it says it is ready.
fn spawn_ready(fleet: &mut Fleet) -> String {
    let name = fleet.spawn();
    let ready = format!("READY {name}");
    assert!(
        fleet.wait_lines(Duration::from_secs(60), |lines| lines
            .iter()
            .any(|l| l.text == ready)),
        "worker {name} did not start"
    );
    name
}

/// The runs of one test, by tag.
struct Runs {
    client: DurableDrive,
    runs: Vec<(u64, RunId)>,
}

impl Runs {
    /// Submits `n` runs tagged `first`, `first + 1`, ….
    async fn submit(db: &TestDb, first: u64, n: u64) -> Runs {
        let client = Drive::new().unwrap().durable(&db.store).unwrap();
        let mut runs = Vec::new();
        for tag in first..first + n {
            let run = client.invoke(start).input(tag).submit().await.unwrap();
            runs.push((tag, run));
        }
        Runs { client, runs }
    }

    /// The keys (`<event> <tag>/<task id>`) of the events this worker completed (history
    /// entries with a value).
    async fn completed_by(&self, worker: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for &(tag, run) in &self.runs {
            for entry in self.client.history(run).await.unwrap() {
                if entry.outcome == "value" && entry.worker.as_deref() == Some(worker) {
                    keys.insert(format!("{} {tag}/{}", short(&entry.event), entry.task_id));
                }
            }
        }
        keys
    }

    /// Waits for every run and checks its results and its history: exactly one completion
    /// (an entry with a value) per event, nine in all, and nothing but completions and
    /// attempts whose lease was lost.
    async fn check(&self) {
        for &(tag, run) in &self.runs {
            let results = tokio::time::timeout(Duration::from_secs(120), self.client.wait(run))
                .await
                .unwrap_or_else(|_| panic!("run {run} did not finish in 120 s"))
                .unwrap_or_else(|e| panic!("run {run} failed: {e}"));
            let (join_value, c3_value) = expected(tag);
            assert_eq!(results.get(join), Some(&join_value), "run {run}");
            assert_eq!(results.get(c3), Some(&c3_value), "run {run}");
            let history = self.client.history(run).await.unwrap();
            let mut completed: BTreeMap<&str, usize> = BTreeMap::new();
            for entry in &history {
                match entry.outcome.as_str() {
                    "value" => *completed.entry(short(&entry.event)).or_default() += 1,
                    "lost" => {}
                    other => panic!("run {run}: unexpected outcome {other}: {history:#?}"),
                }
            }
            let once: BTreeMap<&str, usize> = EVENTS.iter().map(|&e| (e, 1)).collect();
            assert_eq!(completed, once, "run {run}: {history:#?}");
        }
    }
}

fn short(event: &str) -> &str {
    event.rsplit("::").next().unwrap_or(event)
}

/// How many times each body (by its key `<event> <tag>/<task id>`) started, and on which
/// workers, in order.
fn body_runs(lines: &[Line]) -> BTreeMap<String, Vec<String>> {
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines {
        let words: Vec<&str> = line.text.split_whitespace().collect();
        if let ["BODY", event, key] = words[..] {
            runs.entry(format!("{event} {key}"))
                .or_default()
                .push(line.worker.clone());
        }
    }
    runs
}

/// The bodies a worker had started and not finished (`BODY` without `DONE`).
fn in_flight(lines: &[Line], worker: &str) -> BTreeSet<String> {
    let mut open = BTreeSet::new();
    for line in lines.iter().filter(|l| l.worker == worker) {
        let words: Vec<&str> = line.text.split_whitespace().collect();
        match words[..] {
            ["BODY", event, key] => {
                open.insert(format!("{event} {key}"));
            }
            ["DONE", event, key] => {
                open.remove(&format!("{event} {key}"));
            }
            _ => {}
        }
    }
    open
}

/// Every body ran at least once; a body that ran more than once ran, every time but its
/// last, on a worker that was then killed (or frozen). Returns how many runs were repeats.
fn check_bodies(lines: &[Line], runs: usize, stopped: &BTreeSet<String>) -> usize {
    let bodies = body_runs(lines);
    assert_eq!(
        bodies.len(),
        EVENTS.len() * runs,
        "bodies by key: {bodies:#?}"
    );
    let mut again = 0;
    for (key, workers) in &bodies {
        for earlier in &workers[..workers.len() - 1] {
            assert!(
                stopped.contains(earlier),
                "{key} ran on {workers:?}: its run on {earlier}, a worker never stopped, was not its last"
            );
            again += 1;
        }
    }
    again
}

/// Sends a signal to one of this fleet's workers (`kill -SIG PID`).
fn signal(fleet: &Fleet, worker: &str, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &fleet.pid(worker).to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {worker}");
}

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

/// Three worker processes, four runs; one to three workers killed with SIGKILL at random
/// points, each while a body runs on it if one does, and replaced by a new process.
/// Repeated `DRIVE_FLOW_FAULT_ROUNDS` times (3 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_events_with_several_workers() {
    let mut rng = Rng::from_env("sigkill_in_the_middle_of_events_with_several_workers");
    let mut repeats = 0;
    for round in 0..fault_support::rounds("DRIVE_FLOW_FAULT_ROUNDS", 3) {
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
    let other = spawn_ready(&mut fleet);
    // Once the lease expired, the other worker starts the stuck bodies (each 300 ms or
    // more): thaw the frozen one now.
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
    assert!(fleet.wait_lines(Duration::from_secs(10), finished_late));
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
