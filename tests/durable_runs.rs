//! Durable runs end to end: a client submits, a worker (in this process, over its own
//! pool) runs, the client waits for exact results.

mod durable_support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use drive_flow::durable::{DurableError, RunId, RunState};
use drive_flow::prelude::*;
use durable_support::{run_worker, Running, Stop, TestDb};

// A join and a fan-out: start -> hello, world -> adding.
#[event]
async fn start() {}

#[listen(start)]
async fn hello() -> i32 {
    1
}

#[listen(start)]
async fn world() -> i32 {
    2
}

#[listen(hello, world)]
async fn adding(input: EventInput) -> i32 {
    input.get(hello).copied().unwrap_or(0) + input.get(world).copied().unwrap_or(0)
}

// A goto: first_a returns 1, then aborts when sent a goto; goes_back gotos first_a; never
// listens to goes_back and never runs.
#[event]
async fn first_a(input: EventInput) -> Flow<i32> {
    match input.behavior() {
        Behavior::Goto => Flow::abort(),
        _ => Flow::from(1),
    }
}

#[listen(first_a)]
async fn goes_back(input: EventInput) -> Flow<i32> {
    Flow::goto(first_a, input.get(first_a).copied().unwrap_or(0) + 1)
}

#[listen(goes_back)]
async fn never() -> i32 {
    99
}

// Input data and a loop with a counter: counts down from the run's input.
#[event]
async fn countdown(input: EventInput) -> Flow<u32> {
    let from = match input.behavior() {
        Behavior::Input => input.user::<u32>().copied().unwrap_or(0),
        _ => input.get(countdown).copied().unwrap_or(0),
    };
    if from == 0 {
        Flow::from(0)
    } else {
        Flow::goto(countdown, from - 1)
    }
}

/// A worker on its own pool until the returned sender is dropped or sent.
async fn worker(db: &TestDb) -> (Stop, Running) {
    let store = db.another_store().await;
    run_worker(
        Drive::new()
            .unwrap()
            .worker(&store)
            .concurrency(8)
            .lease(Duration::from_secs(5))
            .poll_interval(Duration::from_millis(100))
            .name("test-worker"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_and_a_fan_out_give_exact_results() {
    let db = TestDb::migrated().await;
    let (stop, handle) = worker(&db).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(start).submit().await.unwrap();
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.get(adding), Some(&3));
    assert_eq!(results.get(hello), Some(&1));
    assert_eq!(results.get(world), Some(&2));
    for (event, count) in [(results.count(start), 1), (results.count(adding), 1)] {
        assert_eq!(event, count);
    }
    assert_eq!(client.status(run).await.unwrap().state, RunState::Succeeded);
    let history = client.history(run).await.unwrap();
    let events: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h.event.rsplit("::").next().unwrap(), h.outcome.as_str()))
        .collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0], ("start", "value"));
    assert_eq!(events[3], ("adding", "value"));
    assert_eq!(history[3].value, Some(serde_json::json!(3)));
    assert!(history
        .iter()
        .all(|h| h.worker.as_deref() == Some("test-worker") && h.attempt == 1));
    // The join's input lists its members in group order.
    let members: Vec<&str> = history[3].input["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().rsplit("::").next().unwrap())
        .collect();
    assert_eq!(members, ["hello", "world"]);
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goto_runs_its_target_again_and_dispatches_nothing_else() {
    let db = TestDb::migrated().await;
    let (stop, handle) = worker(&db).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(first_a).submit().await.unwrap();
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.count(first_a), 2);
    assert_eq!(results.outcome(first_a), Some(OutcomeKind::Abort));
    assert_eq!(results.outcome(goes_back), Some(OutcomeKind::Goto));
    assert_eq!(results.count(never), 0);
    // The same graph in-process gives the same outcomes and counts.
    let local = Drive::new().unwrap().invoke(first_a).await.unwrap();
    assert_eq!(
        local.iter().collect::<Vec<_>>(),
        results.iter().collect::<Vec<_>>()
    );
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_input_reaches_the_start_and_loops_count_exactly() {
    let db = TestDb::migrated().await;
    let (stop, handle) = worker(&db).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(countdown).input(5u32).submit().await.unwrap();
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.count(countdown), 6);
    assert_eq!(results.get(countdown), Some(&0));
    assert_eq!(client.status(run).await.unwrap().steps, 6);
    // A budget stops it as in-process runs are stopped.
    let run = client
        .invoke(countdown)
        .input(50u32)
        .max_runs_per_event(3)
        .submit()
        .await
        .unwrap();
    match client.wait(run).await {
        Err(DurableError::Run(Error::TooManyRuns {
            event,
            runs: 3,
            limit: 3,
        })) => {
            assert!(event.ends_with("::countdown"), "{event}");
        }
        other => panic!("expected TooManyRuns, got {other:?}"),
    }
    let run = client
        .invoke(countdown)
        .input(50u32)
        .max_steps(4)
        .submit()
        .await
        .unwrap();
    match client.wait(run).await {
        Err(DurableError::Run(Error::TooManySteps {
            limit: 4,
            runs: 4,
            event,
        })) => {
            assert!(event.ends_with("::countdown"), "{event}");
        }
        other => panic!("expected TooManySteps, got {other:?}"),
    }
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unknown_run_is_named() {
    let db = TestDb::migrated().await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let nobody = RunId::from_i64(424242);
    assert!(matches!(client.status(nobody).await, Err(DurableError::UnknownRun(r)) if r == nobody));
    assert!(matches!(client.wait(nobody).await, Err(DurableError::UnknownRun(r)) if r == nobody));
    assert!(matches!(client.cancel(nobody).await, Err(DurableError::UnknownRun(r)) if r == nobody));
    assert!(
        matches!(client.history(nobody).await, Err(DurableError::UnknownRun(r)) if r == nobody)
    );
    assert!(matches!(
        client.send(nobody, "k", &true).await,
        Err(DurableError::UnknownRun(r)) if r == nobody
    ));
}

static SLOW_STARTED: AtomicU32 = AtomicU32::new(0);
static SLOW_DROPPED: AtomicU32 = AtomicU32::new(0);

/// Counts the drops of `slow`'s body.
struct DropGuard;

impl Drop for DropGuard {
    fn drop(&mut self) {
        SLOW_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

#[event]
async fn slow() -> u8 {
    let _guard = DropGuard;
    SLOW_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_ends_its_events_in_flight_and_refuses_input() {
    let db = TestDb::migrated().await;
    // A long lease: the event must stop on the run's end notification, long before its
    // lease would be renewed (and found gone).
    let store = db.another_store().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        Drive::new()
            .unwrap()
            .worker(&store)
            .lease(Duration::from_secs(120))
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(slow).submit().await.unwrap();
    while SLOW_STARTED.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.cancel(run).await.unwrap();
    assert!(matches!(
        client.wait(run).await,
        Err(DurableError::Run(Error::Cancelled))
    ));
    for _ in 0..200 {
        if SLOW_DROPPED.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        SLOW_DROPPED.load(Ordering::SeqCst),
        1,
        "the body was stopped"
    );
    assert_eq!(client.status(run).await.unwrap().state, RunState::Cancelled);
    assert!(
        matches!(client.send(run, "k", &1u8).await, Err(DurableError::RunFinished(r)) if r == run)
    );
    assert!(matches!(client.cancel(run).await, Err(DurableError::RunFinished(r)) if r == run));
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

// Human in the loop: `publish` waits for an approval; the code before `recv` runs again
// when the value comes.
static PUBLISH_STARTS: AtomicU32 = AtomicU32::new(0);
static PUBLISH_KEYS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[event]
async fn draft() -> String {
    String::from("release v2")
}

#[listen(draft)]
async fn publish(input: EventInput, inbox: Inbox) -> Result<String, drive_flow::InboxError> {
    PUBLISH_STARTS.fetch_add(1, Ordering::SeqCst);
    PUBLISH_KEYS.lock().unwrap().push(input.idempotency_key());
    let approved: bool = inbox.recv("approval").await?;
    let note: String = inbox.recv("note").await?;
    let text = input.get(draft).cloned().unwrap_or_default();
    Ok(if approved {
        format!("published {text} ({note})")
    } else {
        String::from("dropped")
    })
}

async fn waiting_on(client: &drive_flow::durable::DurableDrive, run: RunId, key: &str) {
    let expected = format!("waiting for a value under `{key}`");
    for _ in 0..200 {
        let history = client.history(run).await.unwrap();
        if history
            .iter()
            .any(|h| h.outcome == "waiting" && h.error.as_deref() == Some(expected.as_str()))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the run never waited on `{key}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_waiting_for_input_parks_and_runs_again_when_it_comes() {
    let db = TestDb::migrated().await;
    let (stop, handle) = worker(&db).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(draft).submit().await.unwrap();
    waiting_on(&client, run, "approval").await;
    let status = client.status(run).await.unwrap();
    assert_eq!((status.state, status.open_tasks), (RunState::Running, 1));
    assert_eq!(PUBLISH_STARTS.load(Ordering::SeqCst), 1);

    client.send(run, "approval", &true).await.unwrap();
    waiting_on(&client, run, "note").await;
    assert_eq!(
        PUBLISH_STARTS.load(Ordering::SeqCst),
        2,
        "ran again from its start"
    );
    client
        .send(run, "note", &String::from("ok by ann"))
        .await
        .unwrap();
    let results = client.wait(run).await.unwrap();
    assert_eq!(
        results.get(publish).map(String::as_str),
        Some("published release v2 (ok by ann)")
    );
    assert_eq!(results.count(publish), 1, "it completed once");
    assert_eq!(PUBLISH_STARTS.load(Ordering::SeqCst), 3);
    // The same idempotency key every time: the run's id and the task's.
    let key = format!("{run}-2");
    assert_eq!(
        *PUBLISH_KEYS.lock().unwrap(),
        [key.clone(), key.clone(), key]
    );
    let outcomes: Vec<String> = client
        .history(run)
        .await
        .unwrap()
        .iter()
        .map(|h| format!("{}:{}", h.event.rsplit("::").next().unwrap(), h.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            "draft:value",
            "publish:waiting",
            "publish:waiting",
            "publish:value"
        ]
    );
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

// The same shape without a counter shared with another test.
#[event]
async fn memo() -> String {
    String::from("memo")
}

#[listen(memo)]
async fn file_memo(input: EventInput, inbox: Inbox) -> Result<String, drive_flow::InboxError> {
    let approved: bool = inbox.recv("approval").await?;
    let note: String = inbox.recv("note").await?;
    let text = input.get(memo).cloned().unwrap_or_default();
    Ok(format!("{text}: {approved} {note}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_sent_before_the_event_waits_are_taken_without_parking() {
    let db = TestDb::migrated().await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(memo).submit().await.unwrap();
    client
        .send(run, "note", &String::from("early"))
        .await
        .unwrap();
    client.send(run, "approval", &false).await.unwrap();
    let (stop, handle) = worker(&db).await;
    let results = client.wait(run).await.unwrap();
    assert_eq!(
        results.get(file_memo).map(String::as_str),
        Some("memo: false early")
    );
    let history = client.history(run).await.unwrap();
    assert!(history.iter().all(|h| h.outcome != "waiting"));
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// A row of a shape this build did not make (a column's type changed under it) is a
/// database error naming the column, never a panic of the reading process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_of_another_shape_is_an_error_not_a_panic() {
    let db = TestDb::migrated().await;
    let (stop, handle) = worker(&db).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let run = client.invoke(start).submit().await.unwrap();
    client.wait(run).await.unwrap();
    drive_flow::durable::sqlx::query(&format!(
        "ALTER TABLE \"{}\".history ALTER COLUMN attempt TYPE bigint",
        db.schema
    ))
    .execute(db.store.pool())
    .await
    .unwrap();
    match client.history(run).await {
        Err(DurableError::Database(error)) => {
            assert!(error.to_string().contains("column"), "{error}");
        }
        other => panic!("expected a database error, got {other:?}"),
    }
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// How many connections listen for this schema's run ends without being a worker's (a
/// worker listens for work too).
async fn waiters_listening(db: &TestDb) -> i64 {
    let (count,): (i64,) = drive_flow::durable::sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND query ILIKE 'LISTEN%' AND position($1 in query) > 0 AND position($2 in query) = 0",
    )
    .bind(format!("{}.done", db.schema))
    .bind(format!("{}.work", db.schema))
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    count
}

/// Waits of one process share one `LISTEN` connection (open while anyone waits), and each
/// still ends with its own run's results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waits_share_one_listening_connection() {
    let db = TestDb::migrated().await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let mut runs = Vec::new();
    for _ in 0..8 {
        runs.push(client.invoke(memo).submit().await.unwrap());
    }
    let waits: Vec<_> = runs
        .iter()
        .map(|&run| {
            let client = client.clone();
            tokio::spawn(async move { client.wait(run).await })
        })
        .collect();
    for _ in 0..100 {
        if waiters_listening(&db).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every wait has had time to listen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listening = waiters_listening(&db).await;
    assert_eq!(listening, 1, "8 waits, one connection listening");
    let (stop, handle) = worker(&db).await;
    for (i, &run) in runs.iter().enumerate() {
        client.send(run, "approval", &true).await.unwrap();
        client.send(run, "note", &format!("n{i}")).await.unwrap();
    }
    for (i, wait) in waits.into_iter().enumerate() {
        let results = wait.await.unwrap().unwrap();
        assert_eq!(
            results.get(file_memo).map(String::as_str),
            Some(format!("memo: true n{i}").as_str())
        );
    }
    // The last waiter gone, the listening connection is given up.
    let mut left = listening;
    for _ in 0..100 {
        left = waiters_listening(&db).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0);
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
