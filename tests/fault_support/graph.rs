//! The graph of the fault tests, its worker process and the checks they share.
//!
//! `start` fans out to four branches that join in `join`, then a chain of three. Every
//! output is `(tag, value)`: the run's tag (its input) travels with every value, so that a
//! body knows its run. Every body prints `BODY <event> <tag>/<task id>` when it starts and
//! `DONE <event> <tag>/<task id>` just before it returns (before its outcome commits), and
//! pauses `DF_BODY_MS` (20 by default) to 100 ms more in between, so that a kill lands in
//! the middle of bodies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drive_flow::durable::{DurableDrive, DurableError, PgOptions, PgStore, RunId, RunState};
use drive_flow::prelude::*;
use drive_flow::Event;

use super::{Fleet, Line};
use crate::durable_support::{self, TestDb};
/// The lease of the workers: short, so that a dead worker's events run again soon.
pub const LEASE_MS: u64 = 1_000;

// ---------------------------------------------------------------------------------------
// The graph: `start` fans out to four branches that join in `join`, then a chain of three.
// Every output is `(tag, value)`: the run's tag (its input) travels with every value, so
// that a body knows its run. Every body prints `BODY <event> <tag>/<task id>` when it starts
// and `DONE <event> <tag>/<task id>` just before it returns (before its outcome commits),
// and sleeps 20-120 ms in between so that a kill lands in the middle of bodies.
// ---------------------------------------------------------------------------------------

/// The events of one run, each completed exactly once.
pub const EVENTS: [&str; 9] = ["start", "b1", "b2", "b3", "b4", "join", "c1", "c2", "c3"];

pub type Tagged = (u64, u64);

pub async fn body(event: &str, tag: u64, input: &EventInput) {
    let key = format!("{tag}/{}", input.task_id());
    println!("BODY {event} {key} {}", input.idempotency_key());
    let pause = body_ms() + (u64::from(std::process::id()) * 7 + input.task_id() * 13 + tag) % 100;
    tokio::time::sleep(Duration::from_millis(pause)).await;
    println!("DONE {event} {key}");
}

/// The shortest pause of a body, in ms: `DF_BODY_MS` of the worker process, else 20.
pub fn body_ms() -> u64 {
    static MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MS.get_or_init(|| {
        std::env::var("DF_BODY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    })
}

/// The tag and value of a member's output.
pub fn of<E: Event<Output = Tagged>>(input: &EventInput, event: E) -> Tagged {
    input.get(event).copied().unwrap_or((0, 0))
}

#[event]
pub async fn start(input: EventInput) -> Tagged {
    let tag = input.user::<u64>().copied().unwrap_or(0);
    body("start", tag, &input).await;
    (tag, tag)
}

#[listen(start)]
pub async fn b1(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b1", tag, &input).await;
    (tag, s + 1)
}

#[listen(start)]
pub async fn b2(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b2", tag, &input).await;
    (tag, s + 10)
}

#[listen(start)]
pub async fn b3(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b3", tag, &input).await;
    (tag, s + 100)
}

#[listen(start)]
pub async fn b4(input: EventInput) -> Tagged {
    let (tag, s) = of(&input, start);
    body("b4", tag, &input).await;
    (tag, s + 1_000)
}

#[listen(b1, b2, b3, b4)]
pub async fn join(input: EventInput) -> Tagged {
    let tag = of(&input, b1).0;
    body("join", tag, &input).await;
    let sum = of(&input, b1).1 + of(&input, b2).1 + of(&input, b3).1 + of(&input, b4).1;
    (tag, sum)
}

#[listen(join)]
pub async fn c1(input: EventInput) -> Tagged {
    let (tag, v) = of(&input, join);
    body("c1", tag, &input).await;
    (tag, v + 1)
}

#[listen(c1)]
pub async fn c2(input: EventInput) -> Tagged {
    let (tag, v) = of(&input, c1);
    body("c2", tag, &input).await;
    (tag, v * 2)
}

#[listen(c2)]
pub async fn c3(input: EventInput) -> Tagged {
    let (tag, v) = of(&input, c2);
    body("c3", tag, &input).await;
    (tag, v + 3)
}

/// The right results of the run tagged `tag`: join = 4·tag + 1111, c3 = (join + 1)·2 + 3.
pub fn expected(tag: u64) -> (Tagged, Tagged) {
    let joined = 4 * tag + 1_111;
    ((tag, joined), (tag, (joined + 1) * 2 + 3))
}

// ---------------------------------------------------------------------------------------
// The worker process.
// ---------------------------------------------------------------------------------------

/// The body of a worker process: each test binary that uses this graph has an ignored test
/// `worker_process` that calls this (`Fleet::spawn` starts the binary with
/// `worker_process --exact --ignored`). Without `DF_WORKER_SCHEMA` it returns.
pub fn worker_main() {
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
pub fn fleet(db: &TestDb, concurrency: usize, body_ms: u64) -> Fleet {
    Fleet::new(&[
        ("DF_WORKER_SCHEMA", db.schema.clone()),
        ("DF_WORKER_CONCURRENCY", concurrency.to_string()),
        ("DF_BODY_MS", body_ms.to_string()),
        ("DRIVE_FLOW_TEST_DATABASE_URL", durable_support::url()),
    ])
}

/// Starts a worker and waits until it says it is ready.
pub fn spawn_ready(fleet: &mut Fleet) -> String {
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
pub struct Runs {
    pub client: DurableDrive,
    pub runs: Vec<(u64, RunId)>,
}

impl Runs {
    /// Submits `n` runs tagged `first`, `first + 1`, ….
    pub async fn submit(db: &TestDb, first: u64, n: u64) -> Runs {
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
    pub async fn completed_by(&self, worker: &str) -> BTreeSet<String> {
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
    pub async fn check(&self) {
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
            // Its counters: nine event runs, nothing left open; it takes no more input.
            let status = self.client.status(run).await.unwrap();
            assert_eq!(
                (status.state, status.steps, status.open_tasks),
                (RunState::Succeeded, EVENTS.len() as i64, 0),
                "run {run}"
            );
            assert!(matches!(
                self.client.send(run, "late", &1u64).await,
                Err(DurableError::RunFinished(r)) if r == run
            ));
        }
    }
}

pub fn short(event: &str) -> &str {
    event.rsplit("::").next().unwrap_or(event)
}

/// How many times each body (by its key `<event> <tag>/<task id>`) started, and on which
/// workers, in order.
pub fn body_runs(lines: &[Line]) -> BTreeMap<String, Vec<String>> {
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines {
        let words: Vec<&str> = line.text.split_whitespace().collect();
        if let ["BODY", event, key, _] = words[..] {
            runs.entry(format!("{event} {key}"))
                .or_default()
                .push(line.worker.clone());
        }
    }
    runs
}

/// The bodies a worker had started and not finished (`BODY` without `DONE`).
pub fn in_flight(lines: &[Line], worker: &str) -> BTreeSet<String> {
    let mut open = BTreeSet::new();
    for line in lines.iter().filter(|l| l.worker == worker) {
        let words: Vec<&str> = line.text.split_whitespace().collect();
        match words[..] {
            ["BODY", event, key, _] => {
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
/// last, on a worker that was then killed (or frozen). Every run of one body saw the same
/// idempotency key, and no two bodies saw the same. Returns how many runs were repeats.
pub fn check_bodies(lines: &[Line], runs: usize, stopped: &BTreeSet<String>) -> usize {
    let bodies = body_runs(lines);
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in lines {
        let words: Vec<&str> = line.text.split_whitespace().collect();
        if let ["BODY", event, key, idempotency] = words[..] {
            keys.entry(format!("{event} {key}"))
                .or_default()
                .insert(idempotency.to_string());
        }
    }
    let mut seen = BTreeSet::new();
    for (body, idempotency) in &keys {
        assert_eq!(
            idempotency.len(),
            1,
            "{body}: idempotency keys {idempotency:?}"
        );
        assert!(
            seen.insert(idempotency.clone()),
            "{body}: {idempotency:?} seen twice"
        );
    }
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
pub fn signal(fleet: &Fleet, worker: &str, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &fleet.pid(worker).to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {worker}");
}
