//! Run control across workers: errors, retries with backoff, per-event timeouts, panics,
//! the run's deadline, its concurrency cap, stored values that no longer read, graceful
//! shutdown, and several workers sharing runs.

mod durable_support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use drive_flow::durable::{sqlx, DurableError, PgStore, RunState, SCHEMA_VERSION};
use drive_flow::prelude::*;
use durable_support::{run_worker, Running, Stop, TestDb};

fn start_worker(
    store: PgStore,
    name: &str,
    concurrency: usize,
    grace: Duration,
) -> (Stop, Running) {
    run_worker(
        Drive::new()
            .unwrap()
            .worker(&store)
            .concurrency(concurrency)
            .lease(Duration::from_secs(5))
            .poll_interval(Duration::from_millis(50))
            .grace(grace)
            .name(name)
            .context(Probe::default()),
    )
}

async fn worker(db: &TestDb) -> (Stop, Running) {
    start_worker(db.another_store().await, "w", 8, Duration::from_secs(10))
}

async fn stop(worker: (Stop, Running)) {
    let _ = worker.0.send(());
    worker.1.await.unwrap().unwrap();
}

/// The worker's own context: counts and overlap of `capped` calls.
#[derive(Default)]
struct Probe {
    running: AtomicU32,
    most: AtomicU32,
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[event(retries = 3, backoff = "50ms")]
async fn flaky() -> Result<u32, std::io::Error> {
    let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if call < 3 {
        return Err(std::io::Error::other(format!("call {call} failed")));
    }
    Ok(call)
}

#[event(retries = 1)]
async fn always_fails() -> Result<u32, std::io::Error> {
    Err(std::io::Error::other("no luck"))
}

#[event]
async fn fails_once() -> Result<u32, std::io::Error> {
    Err(std::io::Error::other("plain failure"))
}

#[event(timeout = "100ms")]
async fn too_slow() -> u32 {
    tokio::time::sleep(Duration::from_secs(60)).await;
    1
}

#[event]
async fn panics() -> u32 {
    panic!("the body panicked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_errors_timeouts_and_panics_end_as_in_process_runs() {
    let db = TestDb::migrated().await;
    let running = worker(&db).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();

    let run = client.invoke(flaky).submit().await.unwrap();
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.get(flaky), Some(&3));
    let history = client.history(run).await.unwrap();
    let outcomes: Vec<(&str, i32)> = history
        .iter()
        .map(|h| (h.outcome.as_str(), h.attempt))
        .collect();
    assert_eq!(outcomes, [("retry", 1), ("retry", 2), ("value", 3)]);
    assert_eq!(
        history[0].error.as_deref(),
        Some("event `durable_control::flaky` failed: call 1 failed")
    );
    assert!(
        history.iter().all(|h| h.task_id == 1),
        "one task, three attempts"
    );

    let run = client.invoke(always_fails).submit().await.unwrap();
    match client.wait(run).await {
        Err(DurableError::Run(Error::RetriesExhausted {
            event,
            attempts: 2,
            last,
        })) => {
            assert_eq!(event, "durable_control::always_fails");
            assert_eq!(
                last.to_string(),
                "event `durable_control::always_fails` failed: no luck"
            );
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(client.status(run).await.unwrap().state, RunState::Failed);

    let run = client.invoke(fails_once).submit().await.unwrap();
    match client.wait(run).await {
        Err(DurableError::Run(Error::Failed { event, source })) => {
            assert_eq!(event, "durable_control::fails_once");
            assert_eq!(source.to_string(), "plain failure");
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    let run = client.invoke(too_slow).submit().await.unwrap();
    match client.wait(run).await {
        Err(DurableError::Run(Error::Timeout { event, after })) => {
            assert_eq!(event, "durable_control::too_slow");
            assert_eq!(after, Duration::from_millis(100));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }

    let run = client.invoke(panics).submit().await.unwrap();
    match client.wait(run).await {
        Err(DurableError::Run(Error::Panicked { event, message })) => {
            assert_eq!(event, "durable_control::panics");
            assert_eq!(message, "the body panicked");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    stop(running).await;
}

#[event]
async fn hangs() -> u32 {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_deadline_is_kept_in_the_database() {
    let db = TestDb::migrated().await;
    let running = worker(&db).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client
        .invoke(hangs)
        .timeout(Duration::from_millis(300))
        .submit()
        .await
        .unwrap();
    match client.wait(run).await {
        Err(DurableError::Run(Error::RunTimeout { after, running })) => {
            assert_eq!(after, Duration::from_millis(300));
            assert_eq!(running, ["durable_control::hangs"]);
        }
        other => panic!("expected RunTimeout, got {other:?}"),
    }
    stop(running).await;
}

// A fan-out of six events under a cap of two, over two workers.
#[event]
async fn spread() {}

async fn capped_body(probe: &Probe) -> u32 {
    let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
    probe.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    probe.running.fetch_sub(1, Ordering::SeqCst);
    1
}

#[listen(spread)]
async fn c1(p: Context<Probe>) -> u32 {
    capped_body(&p).await
}
#[listen(spread)]
async fn c2(p: Context<Probe>) -> u32 {
    capped_body(&p).await
}
#[listen(spread)]
async fn c3(p: Context<Probe>) -> u32 {
    capped_body(&p).await
}
#[listen(spread)]
async fn c4(p: Context<Probe>) -> u32 {
    capped_body(&p).await
}
#[listen(spread)]
async fn c5(p: Context<Probe>) -> u32 {
    capped_body(&p).await
}
#[listen(spread)]
async fn c6(p: Context<Probe>) -> u32 {
    capped_body(&p).await
}

#[listen(c1, c2, c3, c4, c5, c6)]
async fn gather(input: EventInput) -> u32 {
    input
        .results()
        .iter()
        .filter_map(|r| r.value::<u32>())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_concurrency_cap_holds_across_workers() {
    let db = TestDb::migrated().await;
    // One probe per worker: the cap is checked over their sum through the history.
    let first = start_worker(db.another_store().await, "a", 8, Duration::from_secs(10));
    let second = start_worker(db.another_store().await, "b", 8, Duration::from_secs(10));
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client
        .invoke(spread)
        .max_concurrency(2)
        .submit()
        .await
        .unwrap();
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.get(gather), Some(&6));
    // At most two of c1..c6 overlapped, by their claim and end times in the history.
    let history = client.history(run).await.unwrap();
    let spans: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = history
        .iter()
        .filter(|h| h.event.contains("::c"))
        .map(|h| (h.started_at.unwrap(), h.ended_at))
        .collect();
    assert_eq!(spans.len(), 6);
    for (start, _) in &spans {
        let overlapping = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(
            overlapping <= 2,
            "{overlapping} overlapping at {start}: {spans:?}"
        );
    }
    stop(first).await;
    stop(second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cap_a_fan_out_spreads_over_workers_and_runs_at_once() {
    let db = TestDb::migrated().await;
    let first = start_worker(db.another_store().await, "a", 3, Duration::from_secs(10));
    let second = start_worker(db.another_store().await, "b", 3, Duration::from_secs(10));
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(spread).submit().await.unwrap();
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.get(gather), Some(&6));
    let history = client.history(run).await.unwrap();
    let mut workers: Vec<&str> = history
        .iter()
        .filter(|h| h.event.contains("::c"))
        .map(|h| h.worker.as_deref().unwrap())
        .collect();
    workers.sort_unstable();
    // Each worker runs at most three at once and six ran together: both took some.
    assert!(
        workers.contains(&"a") && workers.contains(&"b"),
        "{workers:?}"
    );
    stop(first).await;
    stop(second).await;
}

// A stored value that no longer reads: the run fails, naming the event.
#[event]
async fn reads_input(input: EventInput) -> u32 {
    input.user::<u32>().copied().unwrap_or(0)
}

#[listen(reads_input)]
async fn after_input(input: EventInput) -> u32 {
    input.get(reads_input).copied().unwrap_or(0) + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_value_that_no_longer_reads_fails_the_run_naming_the_event() {
    let db = TestDb::migrated().await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client
        .invoke(reads_input)
        .input(7u32)
        .submit()
        .await
        .unwrap();
    // Another binary (or a changed type) left a value of another shape.
    sqlx::query(&format!(
        "UPDATE \"{}\".tasks SET input = jsonb_set(input, '{{user,value}}', '\"seven\"')",
        db.schema
    ))
    .execute(db.store.pool())
    .await
    .unwrap();
    let running = worker(&db).await;
    match client.wait(run).await {
        Err(DurableError::Decode {
            run: failed,
            event,
            detail,
        }) => {
            assert_eq!(failed, run);
            assert_eq!(event, "durable_control::reads_input");
            assert!(
                detail.contains("invalid type: string \"seven\", expected u32"),
                "{detail}"
            );
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    stop(running).await;
}

static GRACEFUL_CALLS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[event]
async fn long_job(input: EventInput) -> u32 {
    let first = input.behavior() == Behavior::Input && GRACEFUL_CALLS.lock().unwrap().is_empty();
    GRACEFUL_CALLS
        .lock()
        .unwrap()
        .push(if first { "first" } else { "again" });
    if first {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_past_its_grace_gives_the_event_back_to_another_worker() {
    let db = TestDb::migrated().await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let first = start_worker(
        db.another_store().await,
        "leaving",
        4,
        Duration::from_millis(200),
    );
    let run = client.invoke(long_job).submit().await.unwrap();
    while GRACEFUL_CALLS.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(first).await; // returns after the grace period: the event was given back
    let second = start_worker(
        db.another_store().await,
        "staying",
        4,
        Duration::from_secs(10),
    );
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.get(long_job), Some(&7));
    assert_eq!(*GRACEFUL_CALLS.lock().unwrap(), ["first", "again"]);
    let history = client.history(run).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].worker.as_deref(), history[0].attempt),
        (Some("staying"), 2)
    );
    stop(second).await;
}

#[tokio::test]
async fn a_worker_without_the_context_its_events_take_does_not_start() {
    let db = TestDb::migrated().await;
    let drive = Drive::new().unwrap();
    for worker in [
        drive.worker(&db.store),
        drive.worker(&db.store).context(String::from("not a probe")),
    ] {
        match worker.run_until(async {}).await {
            Err(DurableError::Run(Error::Context {
                event,
                expected,
                given,
            })) => {
                assert!(event.starts_with("durable_control::c"), "{event}");
                assert_eq!(expected, "durable_control::Probe");
                assert!(given.starts_with("the worker"), "{given}");
            }
            other => panic!("expected a context error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_worker_refuses_a_schema_of_another_version() {
    let db = TestDb::new().await;
    let drive = Drive::new().unwrap();
    let worker = drive.worker(&db.store).context(Probe::default());
    assert!(matches!(
        worker.run_until(async {}).await,
        Err(DurableError::NotMigrated { .. })
    ));
    db.store.migrate().await.unwrap();
    // A newer drive-flow's schema.
    sqlx::query(&format!(
        "UPDATE \"{}\".schema_version SET version = $1",
        db.schema
    ))
    .bind(SCHEMA_VERSION + 1)
    .execute(db.store.pool())
    .await
    .unwrap();
    let worker = drive.worker(&db.store).context(Probe::default());
    assert!(matches!(
        worker.run_until(async {}).await,
        Err(DurableError::SchemaVersion { found, expected, .. })
            if found == SCHEMA_VERSION + 1 && expected == SCHEMA_VERSION
    ));
}

/// A builder event whose closure panics when called, before its future exists, fails its
/// run as a body's panic does (the worker catches it; it is not retried for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_panics_before_its_future_exists_fails_its_run() {
    #[allow(unreachable_code)]
    fn build() -> (Drive, drive_flow::Handle<u8>) {
        let mut builder = drive_flow::DriveBuilder::new();
        let start = builder.event("start", || async { Flow::from(1u8) });
        let boom = builder.event("boom", || {
            panic!("before its future exists");
            async { Flow::from(2u8) }
        });
        builder.listen(boom, drive_flow::Group::new([start]));
        builder.serde(start);
        builder.serde(boom);
        (builder.build().unwrap(), start)
    }
    let db = TestDb::migrated().await;
    let store = db.another_store().await;
    let running = run_worker(
        build()
            .0
            .worker(&store)
            .lease(Duration::from_secs(5))
            .poll_interval(Duration::from_millis(50))
            .name("w"),
    );
    let (drive, start) = build();
    let client = drive.durable(&db.store).unwrap();
    let run = client.invoke(start).submit().await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(60), client.wait(run))
        .await
        .expect("the run ends");
    match waited {
        Err(DurableError::Run(Error::Panicked { event, message })) => {
            assert_eq!(event, "boom");
            assert_eq!(message, "before its future exists");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    stop(running).await;
}
