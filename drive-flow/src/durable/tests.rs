//! The queue mechanics against a real server (`DRIVE_FLOW_TEST_DATABASE_URL`, else a local
//! one): claims, leases, fencing, retries with a backoff.

use std::time::Duration;

use serde_json::json;

use super::drive::DurableDrive;
use super::queue::Claimed;
use super::store::{PgOptions, PgStore};
use super::worker::WorkerShared;
use crate::core::flow::{erase_value, Flow};
use crate::{DriveBuilder, Group};

fn url() -> String {
    std::env::var("DRIVE_FLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| String::from("postgres://postgres@127.0.0.1:5432/test"))
}

/// A migrated schema of its own, dropped at the end.
struct Db {
    store: PgStore,
    schema: String,
}

impl Db {
    async fn new(tag: &str) -> Db {
        let schema = format!("df_unit_{}_{tag}", std::process::id());
        let store = PgStore::connect_with(&url(), PgOptions::default().schema(schema.clone()))
            .await
            .expect("the test database");
        store.migrate().await.expect("migrate");
        Db { store, schema }
    }

    async fn drop_schema(self) {
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .execute(self.store.pool())
            .await
            .expect("drop schema");
    }
}

/// A two-event chain a -> b, durable.
fn chain(store: &PgStore) -> (DurableDrive, crate::Handle<u32>, crate::Handle<u32>) {
    let mut builder = DriveBuilder::new();
    let a = builder.event("a", || async { Flow::from(1u32) });
    let b = builder.event("b", || async { Flow::from(2u32) });
    builder.listen(b, Group::new([a]));
    builder.serde(a).serde(b);
    let drive = builder.build().expect("graph");
    (drive.durable(store).expect("codecs"), a, b)
}

fn shared(drive: &DurableDrive, name: &str) -> WorkerShared {
    WorkerShared {
        drive: drive.clone(),
        context: None,
        lease: Duration::from_secs(5),
        name: name.to_string(),
        catalog: String::new(),
        draining: std::sync::atomic::AtomicBool::new(false),
        leaves: Default::default(),
    }
}

async fn catalog(drive: &DurableDrive, known: &[String]) -> String {
    drive
        .store
        .register_catalog(known)
        .await
        .expect("register the catalog")
}

async fn claim(drive: &DurableDrive, worker: &str, lease: Duration) -> Vec<Claimed> {
    let all = catalog(drive, &drive.index.known).await;
    drive
        .store
        .claim(worker, &all, 10, lease, true)
        .await
        .expect("claim")
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_late_commit_is_refused() {
    let db = Db::new("fence").await;
    let (drive, a, _) = chain(&db.store);
    let run = drive.invoke(a).submit().await.unwrap();
    let lease = Duration::from_millis(300);

    let first = claim(&drive, "A", lease).await;
    assert_eq!(first.len(), 1);
    let first = first.into_iter().next().unwrap();
    assert_eq!((first.run, first.task_id, first.attempt), (run, 1, 1));
    assert!(
        claim(&drive, "B", lease).await.is_empty(),
        "the lease holds"
    );
    assert!(drive.store.renew(&first, lease).await.unwrap());

    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = claim(&drive, "B", lease).await;
    assert_eq!(second.len(), 1, "the expired lease is claimable");
    let second = second.into_iter().next().unwrap();
    assert_eq!((second.id, second.attempt), (first.id, 2));

    // Every write of the first claim is refused now.
    assert!(!drive.store.renew(&first, lease).await.unwrap());
    let node = drive.index.node("a").unwrap();
    let flow = Flow::Value(erase_value(1u32));
    let late = super::complete::complete(&shared(&drive, "A"), &first, node, &flow, None).await;
    assert!(!late.unwrap(), "a late commit is refused");
    assert!(!drive
        .store
        .retry(&first, Duration::ZERO, "x", "A")
        .await
        .unwrap());
    assert!(!drive.store.park(&first, "k", "A").await.unwrap());
    assert!(!drive.store.release(&first).await.unwrap());

    // The current claim commits once.
    let done = super::complete::complete(&shared(&drive, "B"), &second, node, &flow, None).await;
    assert!(done.unwrap());
    let again = super::complete::complete(&shared(&drive, "B"), &second, node, &flow, None).await;
    assert!(!again.unwrap(), "a completion is applied once");
    let history = drive.history(run).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].worker.as_deref(),
            history[0].attempt,
            &history[0].value
        ),
        (Some("B"), 2, &Some(json!(1)))
    );
    // What it triggered is ready: b, with a's value.
    let next = claim(&drive, "B", lease).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event, "b");
    assert_eq!(next[0].task_id, 2);
    assert_eq!(
        next[0].input["entries"],
        json!([{"event": "a", "kind": "value", "value": 1}])
    );
    db.drop_schema().await;
}

#[tokio::test]
async fn a_retry_waits_for_its_backoff_and_a_released_task_is_ready_at_once() {
    let db = Db::new("retry").await;
    let (drive, a, _) = chain(&db.store);
    drive.invoke(a).submit().await.unwrap();
    let lease = Duration::from_secs(5);
    let task = claim(&drive, "A", lease).await.remove(0);
    assert!(drive
        .store
        .retry(&task, Duration::from_millis(400), "boom", "A")
        .await
        .unwrap());
    assert!(
        claim(&drive, "A", lease).await.is_empty(),
        "not before its backoff"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let task = claim(&drive, "A", lease).await.remove(0);
    assert_eq!((task.attempt, task.failures), (2, 1));
    assert!(drive.store.release(&task).await.unwrap());
    let task = claim(&drive, "B", lease).await.remove(0);
    assert_eq!((task.attempt, task.failures), (3, 1));
    db.drop_schema().await;
}

#[tokio::test]
async fn a_claim_takes_only_known_events_and_at_most_n() {
    let db = Db::new("known").await;
    let (drive, a, _) = chain(&db.store);
    for _ in 0..5 {
        drive.invoke(a).submit().await.unwrap();
    }
    let lease = Duration::from_secs(5);
    let only_b = catalog(&drive, &[String::from("b")]).await;
    let all = catalog(&drive, &drive.index.known).await;
    assert_ne!(only_b, all);
    assert_eq!(
        all,
        catalog(&drive, &drive.index.known).await,
        "one binary, one catalog"
    );
    let none = drive
        .store
        .claim("X", &only_b, 10, lease, true)
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "a worker that knows only b leaves a to others"
    );
    let some = drive.store.claim("X", &all, 3, lease, true).await.unwrap();
    assert_eq!(some.len(), 3);
    let rest = drive.store.claim("Y", &all, 10, lease, true).await.unwrap();
    assert_eq!(
        rest.len(),
        2,
        "SKIP LOCKED: the others, never the same twice"
    );
    let mut ids: Vec<i64> = some.iter().chain(&rest).map(|t| t.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    db.drop_schema().await;
}

#[tokio::test]
async fn claims_commit_without_waiting_for_the_flush_and_completions_with_it() {
    let db = Db::new("flush").await;
    let setting = |pool: &sqlx::PgPool| {
        let pool = pool.clone();
        async move {
            let (value,): (String,) = sqlx::query_as("SHOW synchronous_commit")
                .fetch_one(&pool)
                .await
                .expect("show");
            value
        }
    };
    assert_eq!(setting(db.store.lease_pool()).await, "off");
    assert_eq!(setting(db.store.pool()).await, "on");
    db.drop_schema().await;
}

/// A start event `s` whose value two or three events take (`a`, `b`, and `c` when
/// `three`), and, with `join`, an event `j` that listens to all of `a` and `b`.
fn spread(store: &PgStore, three: bool, join: bool) -> (DurableDrive, crate::Handle<u32>) {
    let mut builder = DriveBuilder::new();
    let s = builder.event("s", || async { Flow::from(0u32) });
    let a = builder.event("a", || async { Flow::from(1u32) });
    let b = builder.event("b", || async { Flow::from(2u32) });
    builder.listen(a, Group::new([s]));
    builder.listen(b, Group::new([s]));
    builder.serde(s).serde(a).serde(b);
    if three {
        let c = builder.event("c", || async { Flow::from(3u32) });
        builder.listen(c, Group::new([s]));
        builder.serde(c);
    }
    if join {
        let j = builder.event("j", || async { Flow::from(9u32) });
        builder.listen(j, Group::new([a, b]));
        builder.serde(j);
    }
    let drive = builder.build().expect("graph");
    (drive.durable(store).expect("codecs"), s)
}

/// Complete `task` with the value `value`, through the worker's path.
async fn complete_with(drive: &DurableDrive, worker: &str, task: &Claimed, value: u32) -> bool {
    let node = drive.index.node(&task.event).expect("a known event");
    let flow = Flow::Value(erase_value(value));
    super::complete::complete(&shared(drive, worker), task, node, &flow, None)
        .await
        .expect("complete")
}

/// The history of `run`: each completed event, the worker that completed it, its attempt
/// (`"event worker attempt"`).
async fn who_ran(drive: &DurableDrive, run: crate::durable::RunId) -> Vec<String> {
    let history = drive.history(run).await.expect("the history");
    history
        .into_iter()
        .map(|e| format!("{} {} {}", e.event, e.worker.unwrap_or_default(), e.attempt))
        .collect()
}

/// Complete `a` (claimed by worker `A`) with the value 1, optimistically, with `between`
/// run after its read and before its write; whether it applied.
async fn complete_a_with_pause(
    drive: &DurableDrive,
    a: &Claimed,
    between: impl std::future::Future<Output = ()>,
) -> bool {
    let node = drive.index.node("a").expect("`a`");
    let flow = Flow::Value(erase_value(1u32));
    super::complete::optimistic_with_pause(&shared(drive, "A"), a, node, &flow, between)
        .await
        .expect("the optimistic completion")
}

/// Submit a run of `start`, complete its start event, and claim what it started (sorted by
/// event).
async fn started(
    drive: &DurableDrive,
    start: crate::Handle<u32>,
    lease: Duration,
) -> (crate::durable::RunId, Vec<Claimed>) {
    let run = drive.invoke(start).submit().await.unwrap();
    let first = claim(drive, "A", lease).await.remove(0);
    assert!(complete_with(drive, "A", &first, 0).await);
    let mut tasks = claim(drive, "A", lease).await;
    tasks.sort_by(|x, y| x.event.cmp(&y.event));
    (run, tasks)
}

#[tokio::test]
async fn a_completion_read_before_another_committed_is_not_applied_optimistically() {
    // `a` reads the join's state (nothing delivered yet); `b` completes and delivers; had
    // `a` then written what it read, the join would have lost `b` and never fired (`c`
    // keeps the run open: a completion that would end it takes the locked path anyway).
    let db = Db::new("optimistic_join").await;
    let (drive, s) = spread(&db.store, true, true);
    let lease = Duration::from_secs(30);
    let (run, tasks) = started(&drive, s, lease).await;
    assert_eq!(
        tasks.iter().map(|t| t.event.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    let (a, b) = (&tasks[0], &tasks[1]);
    let applied = complete_a_with_pause(&drive, a, async {
        assert!(complete_with(&drive, "B", b, 2).await);
    })
    .await;
    assert!(!applied, "the run changed after the read: not applied");
    let events: Vec<String> = drive
        .history(run)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.event)
        .collect();
    assert_eq!(events, ["s", "b"], "nothing of `a` was written");

    // Completed again (as the worker does), it applies, and the join fires with both.
    assert!(complete_with(&drive, "A", a, 1).await);
    let joined = claim(&drive, "A", lease).await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].event, "j");
    assert_eq!(
        joined[0].input["entries"],
        json!([
            {"event": "a", "kind": "value", "value": 1},
            {"event": "b", "kind": "value", "value": 2}
        ])
    );
    db.drop_schema().await;
}

#[tokio::test]
async fn a_leaf_completes_optimistically_whatever_else_completed_meanwhile() {
    let db = Db::new("optimistic_leaf").await;
    let (drive, s) = spread(&db.store, true, false);
    let lease = Duration::from_secs(30);
    let (run, tasks) = started(&drive, s, lease).await;
    let (a, b, c) = (&tasks[0], &tasks[1], &tasks[2]);
    let applied = complete_a_with_pause(&drive, a, async {
        assert!(complete_with(&drive, "B", b, 2).await);
    })
    .await;
    assert!(applied, "a leaf writes nothing it read");
    let status = drive.status(run).await.unwrap();
    assert_eq!((status.steps, status.open_tasks), (4, 1));
    assert!(complete_with(&drive, "A", c, 3).await);
    drive.wait(run).await.unwrap();
    let mut values: Vec<(String, Option<serde_json::Value>)> = drive
        .history(run)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.event, entry.value))
        .collect();
    values.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        values,
        [
            (String::from("a"), Some(json!(1))),
            (String::from("b"), Some(json!(2))),
            (String::from("c"), Some(json!(3))),
            (String::from("s"), Some(json!(0)))
        ]
    );
    let status = drive.status(run).await.unwrap();
    assert_eq!((status.steps, status.open_tasks), (4, 0));
    db.drop_schema().await;
}

#[tokio::test]
async fn a_claim_taken_over_between_read_and_write_rolls_the_optimistic_write_back() {
    let db = Db::new("optimistic_fence").await;
    let (drive, s) = spread(&db.store, true, false);
    let lease = Duration::from_millis(300);
    let (run, tasks) = started(&drive, s, lease).await;
    let a = &tasks[0];
    let mut taken = Vec::new();
    let applied = complete_a_with_pause(&drive, a, async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        taken = claim(&drive, "B", Duration::from_secs(30)).await;
    })
    .await;
    assert!(!applied, "the claim no longer holds");
    let status = drive.status(run).await.unwrap();
    assert_eq!(
        (status.steps, status.open_tasks),
        (4, 3),
        "the run's counters rolled back with the write"
    );
    assert_eq!(drive.history(run).await.unwrap().len(), 1, "only `s`");
    let retaken = taken
        .iter()
        .find(|t| t.event == "a")
        .expect("`a` re-claimed");
    assert_eq!(retaken.attempt, 2);
    assert!(complete_with(&drive, "B", retaken, 1).await);
    assert_eq!(who_ran(&drive, run).await, ["s A 1", "a B 2"]);
    db.drop_schema().await;
}

#[tokio::test]
async fn a_completion_hands_the_event_it_starts_to_its_worker_already_claimed() {
    let db = Db::new("hand_off").await;
    let (drive, a, _) = chain(&db.store);
    let run = drive.invoke(a).submit().await.unwrap();
    let lease = Duration::from_secs(30);
    let first = claim(&drive, "A", lease).await.remove(0);
    let node = drive.index.node("a").unwrap();
    let flow = Flow::Value(erase_value(1u32));
    let next = super::complete::complete_handing_off(
        &shared(&drive, "A"),
        &first,
        node,
        &flow,
        None,
        true,
    )
    .await
    .unwrap()
    .expect("applied")
    .expect("`b` handed off");
    assert_eq!(
        (next.run, next.task_id, next.event.as_str(), next.attempt),
        (run, 2, "b", 1)
    );
    assert_eq!(
        next.input["entries"],
        json!([{"event": "a", "kind": "value", "value": 1}])
    );
    assert!(
        claim(&drive, "B", lease).await.is_empty(),
        "claimed for A already: no other worker takes it"
    );
    let node = drive.index.node("b").unwrap();
    let flow = Flow::Value(erase_value(2u32));
    let last =
        super::complete::complete_handing_off(&shared(&drive, "A"), &next, node, &flow, None, true)
            .await
            .unwrap();
    assert!(
        matches!(last, Some(None)),
        "the last event applies and starts nothing"
    );
    assert_eq!(who_ran(&drive, run).await, ["a A 1", "b A 1"]);
    assert_eq!(
        drive.status(run).await.unwrap().state,
        crate::durable::RunState::Succeeded
    );
    db.drop_schema().await;
}

#[tokio::test]
async fn a_handed_off_event_whose_worker_died_runs_elsewhere_once_its_lease_expired() {
    let db = Db::new("hand_off_lease").await;
    let (drive, a, _) = chain(&db.store);
    let run = drive.invoke(a).submit().await.unwrap();
    let first = claim(&drive, "A", Duration::from_secs(30)).await.remove(0);
    let mut dying = shared(&drive, "A");
    dying.lease = Duration::from_millis(300);
    let node = drive.index.node("a").unwrap();
    let flow = Flow::Value(erase_value(1u32));
    let handed = super::complete::complete_handing_off(&dying, &first, node, &flow, None, true)
        .await
        .unwrap()
        .expect("applied")
        .expect("`b` handed off");
    // A dies here, before running `b`.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = claim(&drive, "B", Duration::from_secs(30)).await;
    assert_eq!(taken.len(), 1, "the expired hand-off is claimable");
    assert_eq!(
        (taken[0].id, taken[0].event.as_str(), taken[0].attempt),
        (handed.id, "b", 2)
    );
    assert!(complete_with(&drive, "B", &taken[0], 2).await);
    let late =
        super::complete::complete(&dying, &handed, drive.index.node("b").unwrap(), &flow, None)
            .await
            .unwrap();
    assert!(!late, "A's claim of `b` no longer holds");
    assert_eq!(who_ran(&drive, run).await, ["a A 1", "b B 2"]);
    db.drop_schema().await;
}

#[tokio::test]
async fn the_task_queue_is_vacuumed_after_a_few_hundred_changes_whatever_its_size() {
    let db = Db::new("vacuum").await;
    db.store.migrate().await.expect("migrate again");
    let (options,): (Vec<String>,) = sqlx::query_as(&format!(
        "SELECT reloptions FROM pg_class WHERE oid = '\"{}\".tasks'::regclass",
        db.schema
    ))
    .fetch_one(db.store.pool())
    .await
    .expect("the table's options");
    for option in [
        "autovacuum_vacuum_scale_factor=0",
        "autovacuum_vacuum_threshold=500",
        "autovacuum_vacuum_insert_scale_factor=0",
        "autovacuum_vacuum_insert_threshold=500",
    ] {
        assert!(
            options.iter().any(|o| o == option),
            "{option} in {options:?}"
        );
    }
    db.drop_schema().await;
}

/// A start event `s` whose value four leaves take (`a` to `d`: nothing listens to them).
fn four_leaves(store: &PgStore) -> (DurableDrive, crate::Handle<u32>) {
    let mut builder = DriveBuilder::new();
    let s = builder.event("s", || async { Flow::from(0u32) });
    builder.serde(s);
    for name in ["a", "b", "c", "d"] {
        let leaf = builder.event(name, || async { Flow::from(1u32) });
        builder.listen(leaf, Group::new([s]));
        builder.serde(leaf);
    }
    let drive = builder.build().expect("graph");
    (drive.durable(store).expect("codecs"), s)
}

/// A transaction holding the lock of `run`'s row, for completions to queue behind until it
/// commits.
async fn lock_run_row(
    db: &Db,
    run: crate::durable::RunId,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = db.store.pool().begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT 1 FROM \"{}\".runs WHERE id = $1 FOR UPDATE",
        db.schema
    ))
    .bind(run.0)
    .execute(&mut *blocker)
    .await
    .unwrap();
    blocker
}

/// Complete `tasks` (leaves) through one worker: the first while the run's row is locked
/// by another transaction (its write waits), the others meanwhile (they queue behind it);
/// then the lock is released. Whether each applied, in order.
async fn leaves_meeting(
    db: &Db,
    drive: &DurableDrive,
    run: crate::durable::RunId,
    tasks: &[Claimed],
) -> Vec<bool> {
    let worker = std::sync::Arc::new(shared(drive, "A"));
    let blocker = lock_run_row(db, run).await;
    let mut completions = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let (worker, task) = (worker.clone(), task.clone());
        let node = drive.index.node(&task.event).unwrap();
        completions.push(tokio::spawn(async move {
            let flow = Flow::Value(erase_value(1u32));
            super::complete::complete(&worker, &task, node, &flow, None).await
        }));
        // Generous: the first is writing (waiting for the lock) before the others end.
        let pause = if i == 0 { 500 } else { 100 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    blocker.commit().await.unwrap();
    let mut applied = Vec::new();
    for completion in completions {
        applied.push(completion.await.unwrap().unwrap());
    }
    applied
}

#[tokio::test]
async fn leaves_that_end_while_one_is_written_are_written_together_in_one_statement() {
    let db = Db::new("leaf_batch").await;
    let (drive, s) = four_leaves(&db.store);
    let (run, tasks) = started(&drive, s, Duration::from_secs(30)).await;
    let applied = leaves_meeting(&db, &drive, run, &tasks[..3]).await;
    assert_eq!(applied, [true, true, true]);
    let status = drive.status(run).await.unwrap();
    assert_eq!(
        (status.steps, status.open_tasks),
        (5, 1),
        "counted once each"
    );
    let history = drive.history(run).await.unwrap();
    let ended = |event: &str| {
        history
            .iter()
            .find(|e| e.event == event)
            .map(|e| e.ended_at)
            .expect("completed")
    };
    // One transaction each: `a` alone, then `b` and `c` together (the same commit time).
    assert_ne!(ended("a"), ended("b"));
    assert_eq!(ended("b"), ended("c"));
    assert!(
        complete_with(&drive, "A", &tasks[3], 1).await,
        "the last ends the run"
    );
    assert_eq!(
        drive.status(run).await.unwrap().state,
        crate::durable::RunState::Succeeded
    );
    db.drop_schema().await;
}

#[tokio::test]
async fn a_batch_of_leaves_with_a_stale_claim_is_not_written_and_each_completes_alone() {
    let db = Db::new("leaf_batch_stale").await;
    let (drive, s) = four_leaves(&db.store);
    let (run, mut tasks) = started(&drive, s, Duration::from_millis(300)).await;
    // `b`'s lease expires and another worker takes it: A's claim of `b` is stale.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retaken = claim(&drive, "B", Duration::from_secs(30)).await;
    assert_eq!(retaken.len(), 4, "every lease expired");
    let a_by_b = retaken.iter().find(|t| t.event == "a").unwrap().clone();
    let c_by_b = retaken.iter().find(|t| t.event == "c").unwrap().clone();
    // Complete `a` and `c` with their fresh claims, `b` with the stale one.
    tasks[0] = a_by_b;
    tasks[2] = c_by_b;
    let applied = leaves_meeting(&db, &drive, run, &tasks[..3]).await;
    assert_eq!(applied, [true, false, true], "only `b`'s is refused");
    assert_eq!(
        who_ran(&drive, run).await.len(),
        3,
        "`s`, `a` and `c`: nothing of `b`"
    );
    let status = drive.status(run).await.unwrap();
    assert_eq!((status.steps, status.open_tasks), (5, 2));
    db.drop_schema().await;
}

#[tokio::test]
async fn a_leaf_writer_dropped_while_it_writes_leaves_no_leaf_of_its_run_waiting() {
    let db = Db::new("leaf_batch_drop").await;
    let (drive, s) = four_leaves(&db.store);
    let (run, tasks) = started(&drive, s, Duration::from_secs(30)).await;
    let worker = std::sync::Arc::new(shared(&drive, "A"));
    let complete = |task: &Claimed| {
        let (worker, task) = (worker.clone(), task.clone());
        let node = drive.index.node(&task.event).unwrap();
        tokio::spawn(async move {
            let flow = Flow::Value(erase_value(1u32));
            super::complete::complete(&worker, &task, node, &flow, None).await
        })
    };
    let blocker = lock_run_row(&db, run).await;
    let writer = complete(&tasks[0]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued = complete(&tasks[1]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.abort(); // its task dropped while its statement waits for the run's row
    let _ = writer.await;
    blocker.commit().await.unwrap();
    let within = Duration::from_secs(10);
    let queued = tokio::time::timeout(within, queued)
        .await
        .expect("the queued leaf does not wait for the dropped writer")
        .unwrap()
        .unwrap();
    assert!(queued, "it completes through the locked path");
    let later = tokio::time::timeout(within, complete(&tasks[2]))
        .await
        .expect("a later leaf of the run is written")
        .unwrap()
        .unwrap();
    assert!(later);
    db.drop_schema().await;
}
