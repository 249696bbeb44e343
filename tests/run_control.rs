//! Run control: loop budgets, timeouts, retries, the live event stream, outside input
//! (`Inbox`), cancellation through a `RunHandle`, and the run report.
//!
//! Every test's events live in their own module (one inventory per test binary). Timing
//! assertions use generous margins.

use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drive_flow::prelude::*;
use drive_flow::{RunEvent, RunEventKind};
use futures::StreamExt;

fn id(path: &str) -> String {
    format!("{}::{path}", module_path!())
}

/// Collect a run's stream, failing the test instead of hanging if it never ends.
async fn collect(events: drive_flow::RunEvents) -> Vec<RunEvent> {
    tokio::time::timeout(Duration::from_secs(10), events.collect::<Vec<_>>())
        .await
        .expect("the event stream ends when the run ends")
}

/// Wait (at most 10 s) until the stream shows an event matching `pred`; return everything seen.
async fn wait_for(
    events: &mut drive_flow::RunEvents,
    seen: &mut Vec<RunEvent>,
    pred: impl Fn(&RunEvent) -> bool,
) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            let hit = pred(&event);
            seen.push(event);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found.ok(),
        Some(true),
        "expected event not seen; saw {seen:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// A run is a future: spawn it, block on it, join or race it (issue 10, item 9)

mod as_future {
    use std::time::Duration;

    use drive_flow::prelude::*;

    #[event]
    pub async fn seven() -> u8 {
        7
    }

    #[event]
    pub async fn slow() -> u8 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        1
    }
}

#[tokio::test]
async fn a_run_can_be_spawned() {
    fn a_send_sync_static_future<F: std::future::Future + Send + Sync + 'static>(future: F) -> F {
        future
    }
    let drive = Drive::new().unwrap();
    let _configured = a_send_sync_static_future(drive.invoke(as_future::seven).inline());
    let results = tokio::spawn(drive.invoke(as_future::seven))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(results.get(as_future::seven), Some(&7));
}

#[test]
fn a_run_can_be_blocked_on() {
    let drive = Drive::new().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results = runtime.block_on(drive.invoke(as_future::seven)).unwrap();
    assert_eq!(results.get(as_future::seven), Some(&7));
    let handle = runtime.handle().clone();
    let results = std::thread::spawn(move || handle.block_on(drive.invoke(as_future::seven)))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(results.get(as_future::seven), Some(&7));
}

#[tokio::test]
async fn runs_can_be_joined_and_raced() {
    let drive = Drive::new().unwrap();
    let (a, b) = tokio::join!(
        drive.invoke(as_future::seven),
        drive.invoke(as_future::seven).inline()
    );
    assert_eq!(a.unwrap().get(as_future::seven), Some(&7));
    assert_eq!(b.unwrap().get(as_future::seven), Some(&7));
    let winner = tokio::select! {
        slow = drive.invoke(as_future::slow) => slow.map(|r| r.get(as_future::slow).copied()),
        fast = drive.invoke(as_future::seven) => fast.map(|r| r.get(as_future::seven).copied()),
    };
    assert_eq!(winner.unwrap(), Some(7));
    // The run that loses a `select!` is dropped, which cancels it.
    let raced = tokio::select! {
        biased;
        done = drive.invoke(as_future::slow) => Some(done),
        () = tokio::time::sleep(Duration::from_millis(20)) => None,
    };
    assert!(raced.is_none());
}

// ---------------------------------------------------------------------------------------
// Loop budgets

mod budget {
    use drive_flow::prelude::*;

    #[event]
    pub async fn spin(input: EventInput) -> Flow<u32> {
        let turn = input.get(spin).copied().unwrap_or(0);
        Flow::goto(spin, turn + 1)
    }
}

#[tokio::test]
async fn goto_loop_without_exit_stops_at_the_step_budget_naming_the_event() {
    let error = Drive::new()
        .unwrap()
        .invoke(budget::spin)
        .max_steps(100)
        .await
        .unwrap_err();
    match &error {
        Error::TooManySteps { limit, event, runs } => {
            assert_eq!(*limit, 100);
            assert_eq!(*event, id("budget::spin"));
            assert_eq!(*runs, 100, "it ran 100 times; the 101st trigger is refused");
        }
        other => panic!("expected TooManySteps, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(&id("budget::spin")), "{message}");
    assert!(message.contains("100 times"), "{message}");
}

mod budget_inline {
    use drive_flow::prelude::*;

    #[event]
    pub async fn spin_inline() -> Flow<()> {
        Flow::goto(spin_inline, ())
    }
}

#[tokio::test]
async fn step_budget_holds_for_inline_runs_too() {
    let error = Drive::new()
        .unwrap()
        .invoke(budget_inline::spin_inline)
        .inline()
        .max_steps(1_000)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::TooManySteps { limit: 1_000, ref event, .. } if *event == id("budget_inline::spin_inline")),
        "{error:?}"
    );
}

/// One completion starts six listeners, and the step budget runs out at the fourth: the
/// run fails, and none of the six runs (those admitted before the error are cancelled with
/// the run), inline as with a task per event, capped or not. (Inline, or under a cap, the
/// starts are admitted where the completion made them, in the run task's queue or the
/// run's: those after the error stay there, never started.)
#[tokio::test]
async fn a_step_budget_that_runs_out_in_the_middle_of_a_fan_out_starts_none_of_it() {
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut builder = drive_flow::DriveBuilder::new();
    let wide = builder.event("wide", || async {});
    for listener in 0..6 {
        let ran = ran.clone();
        let handle = builder.event(format!("l{listener}"), move || {
            ran.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        builder.listen(handle, drive_flow::Group::new([wide]));
    }
    let drive = builder.build().unwrap();
    for inline in [true, false] {
        for cap in [None, Some(2)] {
            ran.store(0, Ordering::SeqCst);
            let invoke = drive.invoke(wide).max_steps(3);
            let invoke = if inline { invoke.inline() } else { invoke };
            let invoke = match cap {
                Some(cap) => invoke.max_concurrency(cap),
                None => invoke,
            };
            let error = invoke.await.unwrap_err();
            assert!(
                matches!(error, Error::TooManySteps { limit: 3, .. }),
                "inline: {inline}, cap: {cap:?}: {error:?}"
            );
            // Give a spawned listener, had one been spawned, the time to run.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                ran.load(Ordering::SeqCst),
                0,
                "inline: {inline}, cap: {cap:?}"
            );
        }
    }
}

/// A runtime of one thread, timers on: where a run's task that never yields holds up
/// everything else.
fn one_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Run a loop from `start` inline on a one-thread runtime, with no step budget and this
/// run timeout.
fn inline_loop_on_one_thread<E: drive_flow::Event>(
    start: E,
    timeout: Duration,
) -> Result<Results, Error> {
    one_thread_runtime().block_on(
        Drive::new()
            .unwrap()
            .invoke(start)
            .inline()
            .max_steps(u64::MAX)
            .timeout(timeout)
            .into_future(),
    )
}

/// A wide fan-out run inline, on a one-thread runtime: the run's task gives the runtime a
/// turn after a bounded number of events even when they all start at once, so another task
/// of the runtime runs while the fan-out does (it would not, were they all polled before
/// the run's task yields).
#[test]
fn a_wide_inline_fan_out_lets_other_tasks_run_between_its_events() {
    const WIDTH: usize = 1_000;
    let runtime = one_thread_runtime();
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut builder = drive_flow::DriveBuilder::new();
    let start = builder.event("start", || async {});
    for i in 0..WIDTH {
        let (ticks, seen) = (ticks.clone(), seen.clone());
        let leaf = builder.event(format!("leaf{i}"), move || {
            let (ticks, seen) = (ticks.clone(), seen.clone());
            async move { seen.lock().unwrap().push(ticks.load(Ordering::Relaxed)) }
        });
        builder.listen(leaf, drive_flow::Group::new([start]));
    }
    let drive = builder.build().unwrap();
    runtime.block_on(async {
        let ticking = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        drive.invoke(start).inline().await.unwrap();
        ticking.abort();
    });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), WIDTH);
    let (first, last) = (seen[0], seen[WIDTH - 1]);
    assert!(
        last > first,
        "every event saw the other task at {first} ticks: it never ran in between"
    );
}

mod starve {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use drive_flow::prelude::*;

    /// Set by `waiter` when its timer fired.
    pub static DONE: AtomicBool = AtomicBool::new(false);

    #[event]
    pub async fn begin() {}

    #[listen(begin)]
    pub async fn spin() -> Flow<()> {
        if DONE.load(Ordering::Relaxed) {
            Flow::abort()
        } else {
            Flow::goto(spin, ())
        }
    }

    #[listen(begin)]
    pub async fn waiter() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        DONE.store(true, Ordering::Relaxed);
    }
}

/// Run inline, a loop of events that end at once does not starve an event waiting on a
/// timer: the waiter is polled again when its timer fires, and ends the loop.
#[test]
fn an_inline_loop_does_not_starve_an_event_that_waits() {
    let results = inline_loop_on_one_thread(starve::begin, Duration::from_secs(20))
        .expect("the waiter ends the loop before the run's timeout");
    assert_eq!(results.count(starve::waiter), 1);
    assert!(results.count(starve::spin) > 1);
}

/// An endless loop of cheap events run inline, on a one-thread runtime: the run's timeout
/// still fires, because the run's task gives the runtime (and its timers) a turn now and
/// then. Run on its own thread, so that a run that never yields fails the test instead of
/// hanging it.
#[test]
fn an_endless_inline_loop_still_meets_the_run_timeout() {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result =
            inline_loop_on_one_thread(budget_inline::spin_inline, Duration::from_millis(50));
        let _ = done.send(result.map(|_| ()));
    });
    let result = outcome
        .recv_timeout(Duration::from_secs(30))
        .expect("the run did not end: its task never let the timer fire");
    assert!(
        matches!(result, Err(Error::RunTimeout { .. })),
        "{result:?}"
    );
}

mod per_event {
    use drive_flow::prelude::*;

    #[event]
    pub async fn ping() -> Flow<()> {
        Flow::goto(pong, ())
    }

    #[event]
    pub async fn pong() -> Flow<()> {
        Flow::goto(ping, ())
    }

    #[event]
    pub async fn chain_a() -> u8 {
        1
    }

    #[listen(chain_a)]
    pub async fn chain_b() -> u8 {
        2
    }
}

#[tokio::test]
async fn per_event_limit_names_the_event_that_looped_and_how_often_it_ran() {
    let drive = Drive::new().unwrap();
    let error = drive
        .invoke(per_event::ping)
        .max_runs_per_event(5)
        .await
        .unwrap_err();
    match &error {
        Error::TooManyRuns { event, runs, limit } => {
            // ping runs first, so it is the first to be triggered a sixth time.
            assert_eq!(*event, id("per_event::ping"));
            assert_eq!((*runs, *limit), (5, 5));
        }
        other => panic!("expected TooManyRuns, got {other:?}"),
    }
    assert!(error.to_string().contains("5 times"), "{error}");

    // A workflow that runs every event once is not affected by a limit of one.
    let results = drive
        .invoke(per_event::chain_a)
        .max_runs_per_event(1)
        .await
        .unwrap();
    assert_eq!(results.get(per_event::chain_b), Some(&2));
}

// ---------------------------------------------------------------------------------------
// Timeouts

mod event_timeout {
    use std::time::Duration;

    use drive_flow::prelude::*;

    #[event(timeout = "100ms")]
    pub async fn sleepy() {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }

    #[event]
    pub async fn go() {}

    #[listen(go, timeout = "100ms")]
    pub async fn sleepy_listener() {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }

    #[event(timeout = "2s")]
    pub async fn in_time() -> u8 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        7
    }
}

#[tokio::test]
async fn an_event_past_its_timeout_fails_the_run_promptly() {
    let drive = Drive::new().unwrap();
    let began = Instant::now();
    let error = drive.invoke(event_timeout::sleepy).await.unwrap_err();
    let took = began.elapsed();
    match &error {
        Error::Timeout { event, after } => {
            assert_eq!(*event, id("event_timeout::sleepy"));
            assert_eq!(*after, Duration::from_millis(100));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        error.to_string().contains("timed out after 100ms"),
        "{error}"
    );
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_millis(1_000), "{took:?}");
}

#[tokio::test]
async fn listen_takes_a_timeout_too() {
    let drive = Drive::new().unwrap();
    let began = Instant::now();
    let error = drive.invoke(event_timeout::go).await.unwrap_err();
    assert!(
        matches!(&error, Error::Timeout { event, .. } if *event == id("event_timeout::sleepy_listener")),
        "{error:?}"
    );
    assert!(began.elapsed() < Duration::from_millis(1_000));
}

#[tokio::test]
async fn an_event_within_its_timeout_is_unaffected() {
    let results = Drive::new()
        .unwrap()
        .invoke(event_timeout::in_time)
        .await
        .unwrap();
    assert_eq!(results.get(event_timeout::in_time), Some(&7));
}

mod run_timeout {
    use std::time::Duration;

    use drive_flow::prelude::*;

    #[event]
    pub async fn begin() {}

    #[listen(begin)]
    pub async fn stuck() {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }

    #[listen(begin)]
    pub async fn quick() -> u8 {
        1
    }
}

#[tokio::test]
async fn a_run_past_its_timeout_fails_naming_the_events_in_flight() {
    let began = Instant::now();
    let error = Drive::new()
        .unwrap()
        .invoke(run_timeout::begin)
        .timeout(Duration::from_millis(150))
        .await
        .unwrap_err();
    let took = began.elapsed();
    match &error {
        Error::RunTimeout { after, running } => {
            assert_eq!(*after, Duration::from_millis(150));
            assert_eq!(*running, vec![id("run_timeout::stuck")]);
        }
        other => panic!("expected RunTimeout, got {other:?}"),
    }
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_millis(1_000), "{took:?}");
}

// ---------------------------------------------------------------------------------------
// Retries

/// An attempt that does not yield until past its timeout (CPU work, blocking calls): the
/// timer cannot fire, yet the attempt timed out (issue 10, item 2).
mod busy_timeout {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use drive_flow::prelude::*;

    #[event(timeout = "100ms")]
    pub async fn busy() -> u8 {
        std::thread::sleep(Duration::from_millis(500));
        1
    }

    pub static BUSY_TWICE_CALLS: AtomicU32 = AtomicU32::new(0);

    /// Busy past its timeout on its first attempt only.
    #[event(timeout = "100ms", retries = 1)]
    pub async fn busy_first() -> u32 {
        let call = BUSY_TWICE_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        if call == 1 {
            std::thread::sleep(Duration::from_millis(500));
        }
        call
    }
}

#[tokio::test]
async fn an_attempt_that_ran_past_its_timeout_without_yielding_timed_out() {
    let error = Drive::new()
        .unwrap()
        .invoke(busy_timeout::busy)
        .await
        .unwrap_err();
    match &error {
        Error::Timeout { event, after } => {
            assert_eq!(*event, id("busy_timeout::busy"));
            assert_eq!(*after, Duration::from_millis(100));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn an_attempt_that_ran_past_its_timeout_without_yielding_is_retried() {
    let results = Drive::new()
        .unwrap()
        .invoke(busy_timeout::busy_first)
        .await
        .unwrap();
    assert_eq!(results.get(busy_timeout::busy_first), Some(&2));
    assert_eq!(results.stats(busy_timeout::busy_first).attempts, 2);
}

mod retry {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use drive_flow::prelude::*;

    pub static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);
    pub static FLAKY_INPUTS: Mutex<Vec<(u64, Option<String>)>> = Mutex::new(Vec::new());

    #[event(retries = 3)]
    pub async fn flaky(input: EventInput) -> Result<u32, String> {
        FLAKY_INPUTS
            .lock()
            .unwrap()
            .push((input.task_id(), input.user::<String>().cloned()));
        let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        if call < 3 {
            Err(format!("flaky failure {call}"))
        } else {
            Ok(call)
        }
    }

    pub static DOOMED_CALLS: AtomicU32 = AtomicU32::new(0);

    #[event(retries = 2, backoff = "40ms")]
    pub async fn doomed() -> Result<(), String> {
        let call = DOOMED_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        Err(format!("boom {call}"))
    }

    pub static SLOW_FIRST_CALLS: AtomicU32 = AtomicU32::new(0);

    #[event(timeout = "100ms", retries = 1)]
    pub async fn slow_first() -> u8 {
        if SLOW_FIRST_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
        5
    }
}

#[tokio::test]
async fn an_event_that_fails_twice_then_succeeds_with_retries_3_ran_3_times() {
    let (run, events) = Drive::new()
        .unwrap()
        .invoke(retry::flaky)
        .input(EventInput::from_input(String::from("same input")))
        .start_with_events();
    let seen = collect(events).await;
    let results = run.await.unwrap();
    assert_eq!(results.get(retry::flaky), Some(&3));
    assert_eq!(retry::FLAKY_CALLS.load(Ordering::SeqCst), 3);
    let stats = results.stats(retry::flaky);
    assert_eq!((stats.runs, stats.attempts), (1, 3));

    // The input is handed again unchanged.
    let inputs = retry::FLAKY_INPUTS.lock().unwrap().clone();
    assert_eq!(inputs.len(), 3);
    assert!(inputs.iter().all(|i| *i == inputs[0]), "{inputs:?}");
    assert_eq!(inputs[0].1.as_deref(), Some("same input"));

    // Each failed attempt is visible on the stream.
    let kinds: Vec<RunEventKind> = seen.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert_eq!(kinds[0], RunEventKind::Started);
    for (i, attempt) in [(1, 1u32), (2, 2)] {
        match &kinds[i] {
            RunEventKind::Retrying {
                attempt: a, error, ..
            } => {
                assert_eq!(*a, attempt);
                assert_eq!(
                    *error,
                    format!(
                        "event `{}` failed: flaky failure {attempt}",
                        id("retry::flaky")
                    )
                );
            }
            other => panic!("expected Retrying, got {other:?}"),
        }
    }
    assert!(matches!(
        kinds[3],
        RunEventKind::Finished {
            outcome: OutcomeKind::Value,
            ..
        }
    ));
}

#[tokio::test]
async fn when_attempts_run_out_the_run_fails_with_the_last_error_and_the_attempt_count() {
    let began = Instant::now();
    let error = Drive::new()
        .unwrap()
        .invoke(retry::doomed)
        .await
        .unwrap_err();
    let took = began.elapsed();
    assert_eq!(retry::DOOMED_CALLS.load(Ordering::SeqCst), 3);
    match &error {
        Error::RetriesExhausted {
            event,
            attempts,
            last,
        } => {
            assert_eq!(*event, id("retry::doomed"));
            assert_eq!(*attempts, 3);
            assert!(
                matches!(&**last, Error::Failed { source, .. } if source.to_string() == "boom 3"),
                "{last:?}"
            );
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert!(error.to_string().contains("after 3 attempts"), "{error}");
    // Exponential backoff: 40 ms, then 80 ms.
    assert!(took >= Duration::from_millis(120), "{took:?}");
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried() {
    let results = Drive::new()
        .unwrap()
        .invoke(retry::slow_first)
        .await
        .unwrap();
    assert_eq!(results.get(retry::slow_first), Some(&5));
    assert_eq!(retry::SLOW_FIRST_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(results.stats(retry::slow_first).attempts, 2);
}

// ---------------------------------------------------------------------------------------
// The live stream

mod watched {
    use std::time::Duration;

    use drive_flow::prelude::*;

    #[event]
    pub async fn root() -> u8 {
        1
    }

    #[listen(root)]
    pub async fn left() -> u8 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        2
    }

    #[listen(root)]
    pub async fn right() -> u8 {
        3
    }

    #[listen(left, right)]
    pub async fn joined(input: EventInput) -> Flow<u8> {
        match input.behavior() {
            Behavior::Goto => Flow::abort(),
            _ => Flow::goto(joined, input.get(left).unwrap() + input.get(right).unwrap()),
        }
    }
}

/// For each call: Started first, one end last; return (index of Started, index of end).
fn spans_by_task(events: &[RunEvent]) -> Vec<(String, usize, usize, RunEventKind)> {
    let mut tasks: Vec<u64> = events.iter().map(|e| e.task_id).collect();
    tasks.dedup();
    tasks.sort_unstable();
    tasks.dedup();
    tasks
        .into_iter()
        .map(|task| {
            let of_task: Vec<(usize, &RunEvent)> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.task_id == task)
                .collect();
            let (first, start) = of_task[0];
            let (last, end) = of_task[of_task.len() - 1];
            assert_eq!(
                start.kind,
                RunEventKind::Started,
                "task {task}: {of_task:?}"
            );
            assert!(end.kind.is_end(), "task {task}: {of_task:?}");
            assert_eq!(
                of_task.iter().filter(|(_, e)| e.kind.is_end()).count(),
                1,
                "task {task}"
            );
            (start.event.to_string(), first, last, end.kind.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_consumer_sees_started_and_finished_for_every_event_in_a_valid_order() {
    let (run, events) = Drive::new()
        .unwrap()
        .invoke(watched::root)
        .start_with_events();
    let seen = collect(events).await;
    let results = run.await.unwrap();
    assert_eq!(results.count(watched::joined), 2);

    let calls = spans_by_task(&seen);
    let names: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    let mut expected = vec![
        id("watched::joined"),
        id("watched::joined"),
        id("watched::left"),
        id("watched::right"),
        id("watched::root"),
    ];
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(
        seen.len(),
        10,
        "one Started and one Finished per call: {seen:#?}"
    );

    let call = |name: &str, nth: usize| {
        calls
            .iter()
            .filter(|c| c.0 == id(name))
            .nth(nth)
            .unwrap_or_else(|| panic!("{name} #{nth}"))
            .clone()
    };
    let (root, left, right) = (
        call("watched::root", 0),
        call("watched::left", 0),
        call("watched::right", 0),
    );
    let (join1, join2) = (call("watched::joined", 0), call("watched::joined", 1));
    // Causality: a listener starts after what triggered it finished.
    assert!(root.2 < left.1 && root.2 < right.1);
    assert!(left.2 < join1.1 && right.2 < join1.1);
    assert!(join1.2 < join2.1);
    assert!(matches!(
        root.3,
        RunEventKind::Finished {
            outcome: OutcomeKind::Value,
            ..
        }
    ));
    assert!(matches!(
        join1.3,
        RunEventKind::Finished {
            outcome: OutcomeKind::Goto,
            ..
        }
    ));
    assert!(matches!(
        join2.3,
        RunEventKind::Finished {
            outcome: OutcomeKind::Abort,
            ..
        }
    ));
    // left sleeps 30 ms: its Finished says so.
    match left.3 {
        RunEventKind::Finished { elapsed, .. } => assert!(elapsed >= Duration::from_millis(30)),
        other => panic!("{other:?}"),
    }
}

mod failing {
    use std::time::Duration;

    use drive_flow::prelude::*;

    #[event]
    pub async fn kickoff() {}

    #[listen(kickoff)]
    pub async fn breaks() -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(String::from("broken"))
    }

    #[listen(kickoff)]
    pub async fn lingers() {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

#[tokio::test]
async fn the_stream_ends_when_the_run_fails() {
    let (run, events) = Drive::new()
        .unwrap()
        .invoke(failing::kickoff)
        .start_with_events();
    let seen = collect(events).await;
    let error = run.await.unwrap_err();
    assert!(
        matches!(&error, Error::Failed { event, .. } if *event == id("failing::breaks")),
        "{error:?}"
    );
    let calls = spans_by_task(&seen);
    let end_of = |name: &str| calls.iter().find(|c| c.0 == id(name)).unwrap().3.clone();
    assert!(matches!(
        end_of("failing::kickoff"),
        RunEventKind::Finished { .. }
    ));
    assert_eq!(
        end_of("failing::breaks"),
        RunEventKind::Failed {
            error: format!("event `{}` failed: broken", id("failing::breaks"))
        }
    );
    assert_eq!(end_of("failing::lingers"), RunEventKind::Cancelled);
}

/// A run with a fan-out, a join and a goto, rebuilt as a tree from the causes carried by
/// the `Started` events (issue 10, item 13).
mod causes {
    use std::time::Duration;

    use drive_flow::prelude::*;

    /// The first turn from the run's input, the second from `merge`'s goto.
    #[event]
    pub async fn begin(input: EventInput) -> u8 {
        if input.behavior() == Behavior::Goto {
            2
        } else {
            1
        }
    }

    #[listen(begin)]
    pub async fn left(input: EventInput) -> u8 {
        input.get(begin).copied().unwrap_or(0)
    }

    /// Ends after `left`: its completion is the one that makes the join fire.
    #[listen(begin)]
    pub async fn right(input: EventInput) -> u8 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        input.get(begin).copied().unwrap_or(0)
    }

    #[listen(left, right, name = "both")]
    pub async fn merge(input: EventInput) -> Flow<u8> {
        match input.get(left) {
            Some(1) => Flow::goto(begin, 0),
            _ => Flow::from(2),
        }
    }
}

#[tokio::test]
async fn every_started_event_carries_its_cause_and_the_run_rebuilds_as_a_tree() {
    use std::collections::BTreeMap;

    let (run, events) = Drive::new()
        .unwrap()
        .invoke(causes::begin)
        .start_with_events();
    let mut seen = collect(events).await;
    assert_eq!(run.await.unwrap().get(causes::merge), Some(&2));
    // Only the causes are used, not the order the stream delivered them in.
    seen.reverse();
    let mut children: BTreeMap<Option<u64>, Vec<(u64, String)>> = BTreeMap::new();
    for event in &seen {
        match (&event.kind, &event.cause) {
            (RunEventKind::Started, Some(cause)) => {
                let short = event.event.rsplit("::").next().unwrap();
                let label = format!("{short} ({:?}, {})", cause.behavior, cause.group);
                children
                    .entry(cause.after)
                    .or_default()
                    .push((event.task_id, label));
            }
            (RunEventKind::Started, None) => panic!("a Started event without a cause: {event:?}"),
            (_, cause) => assert_eq!(*cause, None, "{event:?}"),
        }
    }
    fn draw(
        children: &BTreeMap<Option<u64>, Vec<(u64, String)>>,
        parent: Option<u64>,
        depth: usize,
        out: &mut String,
    ) {
        let mut calls = children.get(&parent).cloned().unwrap_or_default();
        calls.sort(); // by task id: siblings in the order they were triggered
        for (task_id, label) in calls {
            out.push_str(&format!("{}{label}\n", "  ".repeat(depth)));
            draw(children, Some(task_id), depth + 1, out);
        }
    }
    let mut tree = String::new();
    draw(&children, None, 0, &mut tree);
    assert_eq!(
        tree,
        "begin (Input, user_input)
  left (Dispatch, 0)
  right (Dispatch, 0)
    merge (Dispatch, both)
      begin (Goto, $goto)
        left (Dispatch, 0)
        right (Dispatch, 0)
          merge (Dispatch, both)
"
    );
}

// ---------------------------------------------------------------------------------------
// Outside input

mod approval {
    use drive_flow::prelude::*;

    #[event]
    pub async fn request() -> String {
        String::from("deploy v2")
    }

    #[listen(request)]
    pub async fn approve(
        input: EventInput,
        inbox: Inbox,
    ) -> Result<String, drive_flow::InboxError> {
        let what = input.get(request).cloned().unwrap_or_default();
        let verdict: String = inbox.recv("approval").await?;
        Ok(format!("{what}: {verdict}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_waiting_for_approval_continues_with_the_value_sent() {
    let (run, mut events) = Drive::new()
        .unwrap()
        .invoke(approval::request)
        .start_with_events();
    let mut seen = Vec::new();
    // Send only once the event is waiting, so that it really waited.
    wait_for(
        &mut events,
        &mut seen,
        |e| matches!(&e.kind, RunEventKind::Waiting { key } if key == "approval"),
    )
    .await;
    assert_eq!(seen.last().unwrap().event.as_ref(), id("approval::approve"));
    run.send("approval", String::from("approved by Ada"));
    let results = run.await.unwrap();
    assert_eq!(
        results.get(approval::approve).map(String::as_str),
        Some("deploy v2: approved by Ada")
    );
}

#[tokio::test]
async fn a_run_awaited_directly_cannot_wait_for_input() {
    let error = Drive::new()
        .unwrap()
        .invoke(approval::request)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::NoInbox { event } if *event == id("approval::approve")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_value_of_the_wrong_type_fails_the_waiting_event() {
    let run = Drive::new().unwrap().invoke(approval::request).start();
    run.send("approval", 42_i32);
    let error = run.await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("is a `i32`"), "{text}");
    assert!(text.contains(&id("approval::approve")), "{text}");
}

#[tokio::test]
async fn the_run_timeout_applies_while_an_event_waits_for_input() {
    let began = Instant::now();
    let error = Drive::new()
        .unwrap()
        .invoke(approval::request)
        .timeout(Duration::from_millis(100))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::RunTimeout { running, .. } if *running == vec![id("approval::approve")]),
        "{error:?}"
    );
    assert!(began.elapsed() < Duration::from_millis(1_000));
}

/// An `Inbox` moved out of its event (into a spawned task) and read after its run ended:
/// `recv` fails at once instead of waiting for ever (issue 10, item 5).
mod late_inbox {
    use std::sync::Mutex;

    use drive_flow::prelude::*;
    use tokio::sync::oneshot;

    pub type Reply = oneshot::Sender<Result<u8, drive_flow::InboxError>>;
    pub type Slot = Mutex<Option<Reply>>;

    /// Hands its inbox to a task that reads it later, and returns at once: the run ends.
    #[event]
    pub async fn hand_off(inbox: Inbox, reply: Context<Slot>) {
        let reply = reply.lock().unwrap().take().unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = reply.send(inbox.recv::<u8>("late").await);
        });
    }

    /// Hands its inbox to a task that waits on it at once, then waits for ever itself.
    #[event]
    pub async fn hand_off_and_wait(inbox: Inbox, reply: Context<Slot>) {
        let reply = reply.lock().unwrap().take().unwrap();
        tokio::spawn(async move {
            let _ = reply.send(inbox.recv::<u8>("late").await);
        });
        std::future::pending::<()>().await;
    }
}

fn assert_run_over(received: Result<u8, drive_flow::InboxError>) {
    let error = received.unwrap_err();
    assert_eq!(
        error,
        drive_flow::InboxError::RunEnded {
            key: String::from("late")
        }
    );
    assert_eq!(
        error.to_string(),
        "no value can come under `late`: the run has ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_after_the_run_ended_fails_at_once() {
    let (reply, received) = tokio::sync::oneshot::channel();
    let run = Drive::new()
        .unwrap()
        .invoke(late_inbox::hand_off)
        .context(Mutex::new(Some(reply)))
        .start();
    run.await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(2), received)
        .await
        .expect("recv after the end of the run waited for ever")
        .unwrap();
    assert_run_over(received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_waiting_when_the_run_is_cancelled_fails_at_once() {
    let (reply, received) = tokio::sync::oneshot::channel();
    let (run, mut events) = Drive::new()
        .unwrap()
        .invoke(late_inbox::hand_off_and_wait)
        .context(Mutex::new(Some(reply)))
        .start_with_events();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, |e| e.kind == RunEventKind::Started).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the task waits in `recv`
    run.cancel();
    assert!(matches!(run.await, Err(Error::Cancelled)));
    let received = tokio::time::timeout(Duration::from_secs(2), received)
        .await
        .expect("recv waited for ever after the run was cancelled")
        .unwrap();
    assert_run_over(received);
}

mod impatient {
    use drive_flow::prelude::*;

    #[event]
    pub async fn ask() {}

    /// Waits at most 100 ms per attempt; a second attempt gets another 100 ms.
    #[listen(ask, timeout = "100ms", retries = 1)]
    pub async fn answer(inbox: Inbox) -> Result<u32, drive_flow::InboxError> {
        inbox.recv("answer").await
    }

    #[listen(ask)]
    pub async fn bystander() -> u8 {
        1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_timeout_counts_waiting_time_and_a_retry_waits_again() {
    let (run, mut events) = Drive::new()
        .unwrap()
        .invoke(impatient::ask)
        .max_concurrency(1)
        .start_with_events();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, |e| {
        matches!(&e.kind, RunEventKind::Retrying { attempt: 1, .. })
    })
    .await;
    match &seen.last().unwrap().kind {
        RunEventKind::Retrying { error, .. } => assert!(error.contains("timed out"), "{error}"),
        other => panic!("{other:?}"),
    }
    run.send("answer", 5u32);
    let results = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ends: the slot given back while waiting is counted once")
        .unwrap();
    assert_eq!(results.get(impatient::answer), Some(&5));
    assert_eq!(results.stats(impatient::answer).attempts, 2);
    assert_eq!(results.get(impatient::bystander), Some(&1));
}

#[tokio::test]
async fn an_event_waiting_past_its_timeout_fails_the_run() {
    let run = Drive::new().unwrap().invoke(impatient::ask).start();
    let error = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap_err();
    match &error {
        Error::RetriesExhausted {
            event,
            attempts,
            last,
        } => {
            assert_eq!(*event, id("impatient::answer"));
            assert_eq!(*attempts, 2);
            assert!(matches!(**last, Error::Timeout { .. }), "{last:?}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
}

mod slots {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use drive_flow::prelude::*;

    /// How many events of one run hold a slot (run outside `recv`) right now, and the most seen.
    #[derive(Default)]
    pub struct Gauge {
        active: AtomicU32,
        pub most: AtomicU32,
    }

    impl Gauge {
        async fn busy(&self, time: Duration) {
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(time).await;
            self.active.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[event]
    pub async fn open() {}

    #[listen(open)]
    pub async fn gate(inbox: Inbox, gauge: Context<Gauge>) -> Result<u32, drive_flow::InboxError> {
        gauge.busy(Duration::from_millis(5)).await;
        let value = inbox.recv::<u32>("go").await?;
        gauge.busy(Duration::from_millis(10)).await;
        Ok(value)
    }

    #[listen(open)]
    pub async fn worker(gauge: Context<Gauge>) -> u32 {
        gauge.busy(Duration::from_millis(20)).await;
        1
    }

    #[listen(worker)]
    pub async fn after_worker(gauge: Context<Gauge>) -> u32 {
        gauge.busy(Duration::from_millis(20)).await;
        2
    }
}

async fn waiting_releases_the_slot(inline: bool) {
    let gauge = Arc::new(slots::Gauge::default());
    let invoke = Drive::new()
        .unwrap()
        .invoke(slots::open)
        .context_arc(gauge.clone())
        .max_concurrency(1);
    let invoke = if inline { invoke.inline() } else { invoke };
    let (run, mut events) = invoke.start_with_events();
    let mut seen = Vec::new();
    // With one slot, `worker` and `after_worker` can only run while `gate` waits: if waiting
    // held the slot, this never happens (and the test fails after 10 s instead of hanging).
    wait_for(&mut events, &mut seen, |e| {
        *e.event == id("slots::after_worker") && e.kind.is_end()
    })
    .await;
    assert!(
        seen.iter().any(
            |e| *e.event == id("slots::gate") && matches!(e.kind, RunEventKind::Waiting { .. })
        ),
        "{seen:#?}"
    );
    run.send("go", 9u32);
    let results = run.await.unwrap();
    assert_eq!(results.get(slots::gate), Some(&9));
    assert_eq!(results.get(slots::after_worker), Some(&2));
    // The cap still holds for everything that is not waiting.
    assert_eq!(gauge.most.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_input_gives_the_concurrency_slot_back() {
    waiting_releases_the_slot(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_input_gives_the_concurrency_slot_back_inline() {
    waiting_releases_the_slot(true).await;
}

// ---------------------------------------------------------------------------------------
// Cancellation

mod cancel {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use drive_flow::prelude::*;

    pub type Log = Arc<Mutex<Vec<&'static str>>>;

    #[event]
    pub async fn launch(log: Context<Log>) {
        log.lock().unwrap().push("launch");
    }

    #[listen(launch)]
    pub async fn slow_one(log: Context<Log>) {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        log.lock().unwrap().push("slow_one");
    }

    #[listen(launch)]
    pub async fn slow_two(log: Context<Log>) {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        log.lock().unwrap().push("slow_two");
    }

    #[listen(slow_one)]
    pub async fn never(log: Context<Log>) {
        log.lock().unwrap().push("never");
    }
}

async fn both_slow_events_started(events: &mut drive_flow::RunEvents, seen: &mut Vec<RunEvent>) {
    let started = std::cell::Cell::new(0);
    wait_for(events, seen, |e| {
        if e.kind == RunEventKind::Started && e.event.contains("::cancel::slow_") {
            started.set(started.get() + 1);
        }
        started.get() == 2
    })
    .await;
}

async fn cancel_run(inline: bool) {
    let log: cancel::Log = Arc::default();
    let invoke = Drive::new()
        .unwrap()
        .invoke(cancel::launch)
        .context(log.clone());
    let invoke = if inline { invoke.inline() } else { invoke };
    let (run, mut events) = invoke.start_with_events();
    let mut seen = Vec::new();
    both_slow_events_started(&mut events, &mut seen).await;
    assert_eq!(*log.lock().unwrap(), ["launch"]);
    let cancelled_at = Instant::now();
    run.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(700),
        "{:?}",
        cancelled_at.elapsed()
    );
    seen.extend(collect(events).await);
    // Wait past the moment the slow events would have finished: nothing happened after the cancel.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert_eq!(*log.lock().unwrap(), ["launch"]);
    let cancelled: Vec<&str> = seen
        .iter()
        .filter(|e| e.kind == RunEventKind::Cancelled)
        .map(|e| &*e.event)
        .collect();
    assert_eq!(cancelled.len(), 2, "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_returns_promptly_and_nothing_runs_after_the_cancel() {
    cancel_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_inline_run_returns_promptly_and_nothing_runs_after_the_cancel() {
    cancel_run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_cancels_the_run() {
    let log: cancel::Log = Arc::default();
    let (run, mut events) = Drive::new()
        .unwrap()
        .invoke(cancel::launch)
        .context(log.clone())
        .start_with_events();
    let mut seen = Vec::new();
    both_slow_events_started(&mut events, &mut seen).await;
    drop(run);
    seen.extend(collect(events).await);
    assert!(
        seen.iter().any(|e| e.kind == RunEventKind::Cancelled),
        "{seen:#?}"
    );
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert_eq!(*log.lock().unwrap(), ["launch"]);
}

#[tokio::test]
async fn cancelling_a_finished_run_keeps_its_results() {
    let (run, events) = Drive::new()
        .unwrap()
        .invoke(per_event::chain_a)
        .start_with_events();
    collect(events).await; // the stream ends when the run has ended
    run.cancel();
    assert_eq!(run.await.unwrap().get(per_event::chain_b), Some(&2));
}

// ---------------------------------------------------------------------------------------
// The report

mod report {
    use std::time::Duration;

    use drive_flow::prelude::*;

    #[event]
    pub async fn lap(input: EventInput) -> Flow<u32> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        match input.get(lap).copied().unwrap_or(0) {
            2 => Flow::from(3),
            turn => Flow::goto(lap, turn + 1),
        }
    }

    #[listen(lap)]
    pub async fn tally() -> u8 {
        1
    }
}

#[tokio::test]
async fn the_report_tells_how_often_each_event_ran_and_for_how_long() {
    let results = Drive::new()
        .unwrap()
        .invoke(report::lap)
        .timed()
        .await
        .unwrap();
    let lap = results.stats(report::lap);
    assert_eq!((lap.runs, lap.attempts), (3, 3));
    assert!(lap.total >= Duration::from_millis(90), "{lap:?}");
    let tally = results.stats(report::tally);
    assert_eq!(tally.runs, 1);
    assert!(tally.total < lap.total);
    assert!(results.elapsed() >= Duration::from_millis(90));

    let report = results.report();
    let rows: Vec<(String, u32)> = report
        .iter()
        .map(|(name, s)| (name.to_string(), s.runs))
        .collect();
    assert_eq!(rows, [(id("report::lap"), 3), (id("report::tally"), 1)]);
    let text = report.to_string();
    assert!(text.lines().count() == 4, "{text}");
    assert!(text.contains(&id("report::lap")), "{text}");

    // Inline too: an event started by a completion is queued in the run's task, with its
    // entry among the events in flight, so that each of its runs is timed, not the first
    // alone; one bar per event run.
    let inline = Drive::new()
        .unwrap()
        .invoke(report::lap)
        .inline()
        .timed()
        .await
        .unwrap();
    let inline_lap = inline.stats(report::lap);
    assert_eq!((inline_lap.runs, inline_lap.attempts), (3, 3));
    assert!(
        inline_lap.total >= Duration::from_millis(90),
        "{inline_lap:?}"
    );
    let gantt = inline.to_gantt();
    assert_eq!(gantt.matches(" :t").count(), 4, "{gantt}");

    // Counts are kept for every run; times only for timed runs.
    let untimed = Drive::new().unwrap().invoke(report::lap).await.unwrap();
    assert_eq!(untimed.stats(report::lap).runs, 3);
    assert_eq!(untimed.stats(report::lap).total, Duration::ZERO);

    // An event that never ran has zero stats.
    assert_eq!(
        results.stats(per_event::chain_a),
        drive_flow::EventStats::default()
    );
}

// ---------------------------------------------------------------------------------------
// Tracing

mod traced {
    use std::sync::atomic::{AtomicU32, Ordering};

    use drive_flow::prelude::*;

    pub static CALLS: AtomicU32 = AtomicU32::new(0);

    #[event(retries = 2)]
    pub async fn wobbly() -> Result<u32, String> {
        match CALLS.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Err(String::from("not yet")),
            n => Ok(n),
        }
    }
}

/// Records every span (name and fields) and every log event (fields) it sees.
#[derive(Clone, Default)]
struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields(format!("span {}", attrs.metadata().name()));
        attrs.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields(String::from("log"));
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}

#[tokio::test]
async fn each_attempt_is_visible_in_tracing() {
    use tracing_subscriber::layer::SubscriberExt;

    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let results = Drive::new().unwrap().invoke(traced::wobbly).await.unwrap();
    assert_eq!(results.get(traced::wobbly), Some(&2));

    let lines = recorder.0.lock().unwrap().clone();
    let attempts: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("span attempt"))
        .collect();
    assert_eq!(
        attempts,
        [
            "span attempt attempt=1",
            "span attempt attempt=2",
            "span attempt attempt=3"
        ],
        "{lines:#?}"
    );
    let retries: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("log") && l.contains("retrying"))
        .collect();
    assert_eq!(retries.len(), 2, "{lines:#?}");
    assert!(
        retries[0].contains("attempt=1") && retries[0].contains("not yet"),
        "{retries:?}"
    );
    // One `event` span for the event's run, with its id.
    let event_spans: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("span event"))
        .collect();
    assert_eq!(event_spans.len(), 1, "{lines:#?}");
    assert!(
        event_spans[0].contains(&id("traced::wobbly")),
        "{event_spans:?}"
    );
}

#[tokio::test]
async fn a_run_cancelled_before_its_task_ran_starts_nothing() {
    let log: cancel::Log = Arc::default();
    // On a current-thread runtime the run's task cannot run before this test yields.
    let run = Drive::new()
        .unwrap()
        .invoke(cancel::launch)
        .context(log.clone())
        .start();
    run.cancel();
    assert!(matches!(run.await, Err(Error::Cancelled)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
}

#[tokio::test]
async fn a_budget_of_zero_names_the_start_event() {
    let error = Drive::new()
        .unwrap()
        .invoke(per_event::chain_a)
        .max_steps(0)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::TooManySteps { limit: 0, event, runs: 0 } if *event == id("per_event::chain_a")),
        "{error:?}"
    );
}

#[tokio::test]
async fn builder_events_take_the_same_options() {
    use drive_flow::{DriveBuilder, EventOptions, Flow};

    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut builder = DriveBuilder::new();
    let counted = calls.clone();
    let shaky = builder.event("shaky", move || {
        let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if call == 1 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Flow::from(call)
        }
    });
    builder.options(
        shaky,
        EventOptions::new()
            .timeout(Duration::from_millis(50))
            .retries(1),
    );
    let drive = builder.build().unwrap();
    let results = drive.invoke(shaky).await.unwrap();
    assert_eq!(results.get(shaky), Some(&2));
    assert_eq!(results.stats(shaky).attempts, 2);
}

mod several_waits {
    use drive_flow::prelude::*;
    use drive_flow::InboxError;

    #[event]
    pub async fn fork() {}

    /// Two `recv`s of one call waiting at the same time.
    #[listen(fork)]
    pub async fn both(inbox: Inbox) -> Result<(u32, u32), InboxError> {
        let (a, b) = tokio::join!(inbox.recv::<u32>("a"), inbox.recv::<u32>("b"));
        Ok((a?, b?))
    }

    /// The first of two keys wins; the other `recv` is dropped while it waits.
    #[listen(fork)]
    pub async fn either(inbox: Inbox) -> Result<&'static str, InboxError> {
        tokio::select! {
            yes = inbox.recv::<u32>("yes") => yes.map(|_| "yes"),
            no = inbox.recv::<u32>("no") => no.map(|_| "no"),
        }
    }

    #[listen(fork)]
    pub async fn meanwhile() -> u8 {
        1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_waits_in_one_event_give_its_slot_back_once() {
    let (run, mut events) = Drive::new()
        .unwrap()
        .invoke(several_waits::fork)
        .max_concurrency(1)
        .start_with_events();
    let mut seen = Vec::new();
    // With one slot, `meanwhile` runs only once both waiting events gave theirs back.
    wait_for(&mut events, &mut seen, |e| {
        *e.event == id("several_waits::meanwhile") && e.kind.is_end()
    })
    .await;
    run.send("b", 2u32);
    run.send("yes", 0u32);
    run.send("a", 1u32);
    let results = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(results.get(several_waits::both), Some(&(1, 2)));
    assert_eq!(results.get(several_waits::either), Some(&"yes"));
    assert_eq!(results.get(several_waits::meanwhile), Some(&1));
}
