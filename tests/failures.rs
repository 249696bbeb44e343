//! How runs fail: an error or a panic in an event fails the run, names the event and stops
//! every sibling in flight; dropping a run cancels it; a wrong or missing context is refused
//! before anything runs; every supported `Result` return type; unknown events.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drive_flow::prelude::*;
use drive_flow::{DriveBuilder, Group};

/// Set by an event once it is done sleeping: proves whether it was cancelled.
#[derive(Default)]
struct Flag(AtomicBool);

impl Flag {
    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// An event returning `Err` fails the run with `Error::Failed` naming it, and the sibling
/// still in flight never finishes.
mod error_stops_the_run {
    use super::*;

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn bad() -> Result<i32, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::other("disk on fire"))
    }

    #[listen(start)]
    async fn sibling(flag: Context<Flag>) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        flag.set();
    }

    #[listen(bad)]
    async fn after_bad(flag: Context<Flag>) {
        flag.set();
    }

    #[tokio::test]
    async fn the_error_names_the_event_and_siblings_are_cancelled() {
        let flag = Arc::new(Flag::default());
        let begun = Instant::now();
        let error = Drive::new()
            .unwrap()
            .invoke(start)
            .context_arc(flag.clone())
            .await
            .err()
            .unwrap();
        let elapsed = begun.elapsed();
        assert_eq!(
            error.to_string(),
            "event `failures::error_stops_the_run::bad` failed: disk on fire"
        );
        match &error {
            Error::Failed { event, source } => {
                assert_eq!(event, "failures::error_stops_the_run::bad");
                let io = source.downcast_ref::<std::io::Error>().unwrap();
                assert_eq!(io.kind(), std::io::ErrorKind::Other);
            }
            other => panic!("expected Error::Failed, got {other:?}"),
        }
        assert!(
            std::error::Error::source(&error).is_some(),
            "the event's error is the source"
        );
        // The run failed as soon as `bad` did, not once the sibling was done.
        assert!(elapsed < Duration::from_millis(250), "took {elapsed:?}");
        // Well past the moment the sibling would have set the flag.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !flag.is_set(),
            "the sibling kept running after the run failed"
        );
    }
}

/// A panic inside an event becomes `Error::Panicked`; the process goes on.
mod panics {
    use super::*;

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn explode() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        panic!("kaboom");
    }

    #[listen(start)]
    async fn sibling(flag: Context<Flag>) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        flag.set();
    }

    #[event]
    async fn formatted() {
        let n = 42;
        panic!("bad value {n}");
    }

    #[tokio::test]
    async fn a_panic_fails_the_run_with_its_message() {
        let flag = Arc::new(Flag::default());
        let error = Drive::new()
            .unwrap()
            .invoke(start)
            .context_arc(flag.clone())
            .await
            .err()
            .unwrap();
        match &error {
            Error::Panicked { event, message } => {
                assert_eq!(event, "failures::panics::explode");
                assert_eq!(message, "kaboom");
            }
            other => panic!("expected Error::Panicked, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "event `failures::panics::explode` panicked: kaboom"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!flag.is_set(), "the sibling kept running after the panic");
    }

    #[tokio::test]
    async fn a_formatted_panic_message_is_captured() {
        let drive = Drive::new().unwrap();
        // Spawned, and inline, where the body panics at its first poll, in the run's task.
        for inline in [false, true] {
            let invoke = drive.invoke(formatted);
            let invoke = if inline { invoke.inline() } else { invoke };
            match invoke.await.err().unwrap() {
                Error::Panicked { event, message } => {
                    assert_eq!(event, "failures::panics::formatted");
                    assert_eq!(message, "bad value 42", "inline: {inline}");
                }
                other => panic!("expected Error::Panicked, got {other:?}"),
            }
        }
    }
}

/// Dropping the run's future cancels every event it started.
mod dropped {
    use super::*;
    use std::future::IntoFuture;

    #[derive(Default)]
    struct Ctx {
        started: AtomicUsize,
        slow_done: Flag,
        next_ran: Flag,
    }

    #[event]
    async fn start(ctx: Context<Ctx>) {
        ctx.started.fetch_add(1, Ordering::SeqCst);
    }

    #[listen(start)]
    async fn slow(ctx: Context<Ctx>) -> i32 {
        ctx.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        ctx.slow_done.set();
        1
    }

    #[listen(slow)]
    async fn next(ctx: Context<Ctx>) {
        ctx.next_ran.set();
    }

    #[tokio::test]
    async fn dropping_the_run_cancels_what_it_started() {
        let ctx = Arc::new(Ctx::default());
        let drive = Drive::new().unwrap();
        let run = drive.invoke(start).context_arc(ctx.clone());
        let timed_out = tokio::time::timeout(Duration::from_millis(50), run).await;
        assert!(timed_out.is_err(), "the run should still be going at 50 ms");
        assert_eq!(
            ctx.started.load(Ordering::SeqCst),
            2,
            "start and slow began"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!ctx.slow_done.is_set(), "slow kept running after the drop");
        assert!(!ctx.next_ran.is_set(), "a listener ran after the drop");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_spawned_run_cancels_it_on_a_multi_thread_runtime() {
        let ctx = Arc::new(Ctx::default());
        let drive = Drive::new().unwrap();
        let handle = tokio::spawn(drive.invoke(start).context_arc(ctx.clone()).into_future());
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert_eq!(ctx.started.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!ctx.slow_done.is_set(), "slow kept running after the abort");
        assert!(!ctx.next_ran.is_set(), "a listener ran after the abort");
    }
}

/// Dropping a run drops, soon, an event that waits for something that never comes: the event
/// left its waker with the run when it first went pending, and the cancellation wakes it.
/// (A run with no timeout, stream or mailbox gives an event an entry only then.)
mod dropped_while_pending {
    use super::*;

    /// Sets its flag when dropped (with the body that holds it).
    struct SetOnDrop(Arc<Flag>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set();
        }
    }

    async fn drop_while_pending(inline: bool) {
        let dropped = Arc::new(Flag::default());
        let mut b = DriveBuilder::new();
        let flag = dropped.clone();
        let waits = b.event("waits", move || {
            let guard = SetOnDrop(flag.clone());
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }
        });
        let drive = b.build().unwrap();
        let invoke = drive.invoke(waits);
        let invoke = if inline { invoke.inline() } else { invoke };
        let run = tokio::time::timeout(Duration::from_millis(50), invoke).await;
        assert!(run.is_err(), "the run waits for ever");
        let began = Instant::now();
        while !dropped.is_set() && began.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            dropped.is_set(),
            "the waiting event was not dropped with its run"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spawned_event_waiting_for_ever_is_dropped_with_its_run() {
        drop_while_pending(false).await;
    }

    #[tokio::test]
    async fn an_inline_event_waiting_for_ever_is_dropped_with_its_run() {
        drop_while_pending(true).await;
    }
}

/// A context of the wrong type, or none, is refused before any event runs.
mod context_check {
    use super::*;

    static STARTED: AtomicUsize = AtomicUsize::new(0);

    #[event]
    async fn start() -> i32 {
        STARTED.fetch_add(1, Ordering::SeqCst);
        1
    }

    #[listen(start)]
    async fn middle() -> i32 {
        2
    }

    /// Two steps from the start: needs a `String` context.
    #[listen(middle)]
    async fn needs_text(text: Context<String>) -> usize {
        text.len()
    }

    #[tokio::test]
    async fn a_wrong_or_missing_context_is_refused_before_anything_runs() {
        let drive = Drive::new().unwrap();

        let error = drive.invoke(start).context(5u32).await.err().unwrap();
        match &error {
            Error::Context {
                event, expected, ..
            } => {
                assert_eq!(event, "failures::context_check::needs_text");
                assert_eq!(*expected, "alloc::string::String");
            }
            other => panic!("expected Error::Context, got {other:?}"),
        }
        let text = error.to_string();
        assert!(
            text.starts_with(
                "event `failures::context_check::needs_text` takes `Context<alloc::string::String>`"
            ) && text.contains("u32"),
            "{text}"
        );

        let error = drive.invoke(start).await.err().unwrap();
        match &error {
            Error::Context { event, given, .. } => {
                assert_eq!(event, "failures::context_check::needs_text");
                assert!(given.contains("no context"), "{given}");
            }
            other => panic!("expected Error::Context, got {other:?}"),
        }
        assert_eq!(STARTED.load(Ordering::SeqCst), 0, "no event may run");

        // With the right context, the same run goes through.
        let results = drive
            .invoke(start)
            .context(String::from("four"))
            .await
            .unwrap();
        assert_eq!(results.get(needs_text), Some(&4));
        assert_eq!(STARTED.load(Ordering::SeqCst), 1);
    }
}

/// An event reachable only through a goto is checked when it is called: the run fails with
/// `Error::Context` naming it, and it never runs.
mod context_of_goto_target {
    use super::*;

    static RAN: AtomicUsize = AtomicUsize::new(0);

    #[event]
    async fn start() -> Flow<()> {
        Flow::goto([needs_number], ())
    }

    #[event]
    async fn needs_number(number: Context<u64>) -> u64 {
        RAN.fetch_add(1, Ordering::SeqCst);
        *number
    }

    #[tokio::test]
    async fn a_goto_target_with_the_wrong_context_fails_the_run() {
        let drive = Drive::new().unwrap();
        let error = drive.invoke(start).context('x').await.err().unwrap();
        match &error {
            Error::Context {
                event, expected, ..
            } => {
                assert_eq!(event, "failures::context_of_goto_target::needs_number");
                assert_eq!(*expected, "u64");
            }
            other => panic!("expected Error::Context, got {other:?}"),
        }
        let error = drive.invoke(start).await.err().unwrap();
        assert!(
            matches!(&error, Error::Context { event, .. } if event.ends_with("::needs_number")),
            "{error:?}"
        );
        assert_eq!(RAN.load(Ordering::SeqCst), 0);

        let results = drive.invoke(start).context(7u64).await.unwrap();
        assert_eq!(results.get(needs_number), Some(&7));
    }
}

/// Every `Result` return type: `Result<T, E>` with `anyhow::Error` and `std::io::Error`,
/// `Result<Flow<T>, E>`, and aliases such as `anyhow::Result<T>`.
mod result_types {
    use super::*;

    #[event]
    async fn any_ok() -> Result<i32, anyhow::Error> {
        Ok(5)
    }

    #[event]
    async fn any_err() -> anyhow::Result<i32> {
        Err(anyhow::anyhow!("no answer"))
    }

    #[event]
    async fn io_ok() -> std::io::Result<String> {
        Ok(String::from("read"))
    }

    #[event]
    async fn io_err() -> Result<String, std::io::Error> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ))
    }

    #[event]
    async fn flow_ok(input: EventInput) -> Result<Flow<i32>, anyhow::Error> {
        match input.behavior() {
            Behavior::Goto => Ok(Flow::from(*input.get(flow_ok).unwrap() + 1)),
            _ => Ok(Flow::goto([flow_ok], 10)),
        }
    }

    #[event]
    async fn flow_err() -> Result<Flow<i32>, std::io::Error> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "denied",
        ))
    }

    #[derive(Debug, thiserror::Error)]
    #[error("custom failure {0}")]
    struct Custom(u8);

    #[event]
    async fn custom_err() -> Result<(), Custom> {
        Err(Custom(7))
    }

    fn failed(error: Error) -> (String, drive_flow::BoxError) {
        match error {
            Error::Failed { event, source } => (event, source),
            other => panic!("expected Error::Failed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn ok_values_are_results_and_errors_fail_the_run() {
        let drive = Drive::new().unwrap();

        let results = drive.invoke(any_ok).await.unwrap();
        assert_eq!(results.get(any_ok), Some(&5));

        let (event, source) = failed(drive.invoke(any_err).await.err().unwrap());
        assert_eq!(event, "failures::result_types::any_err");
        assert_eq!(source.to_string(), "no answer");

        let results = drive.invoke(io_ok).await.unwrap();
        assert_eq!(results.get(io_ok).map(String::as_str), Some("read"));

        let (event, source) = failed(drive.invoke(io_err).await.err().unwrap());
        assert_eq!(event, "failures::result_types::io_err");
        let io = source.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

        // A goto to itself with 10, then the value 11.
        let results = drive.invoke(flow_ok).await.unwrap();
        assert_eq!(results.count(flow_ok), 2);
        assert_eq!(results.get(flow_ok), Some(&11));

        let (event, source) = failed(drive.invoke(flow_err).await.err().unwrap());
        assert_eq!(event, "failures::result_types::flow_err");
        assert_eq!(source.to_string(), "denied");

        let error = drive.invoke(custom_err).await.err().unwrap();
        assert_eq!(
            error.to_string(),
            "event `failures::result_types::custom_err` failed: custom failure 7"
        );
        let (_, source) = failed(error);
        assert_eq!(source.downcast_ref::<Custom>().map(|c| c.0), Some(7));
    }
}

/// An event of another builder, as the start of a run or as a goto target.
mod unknown_events {
    use super::*;

    #[tokio::test]
    async fn a_handle_of_another_builder_is_an_unknown_event() {
        let mut other = DriveBuilder::new();
        let foreign = other.event("foreign", || async {});

        let mut builder = DriveBuilder::new();
        let home = builder.event("home", || async {});
        let jumper = builder.event("jumper", move || async move { Flow::goto([foreign], ()) });
        builder.listen(jumper, Group::new([home]));
        let drive = builder.build().unwrap();

        let error = drive.invoke(foreign).await.err().unwrap();
        assert!(
            matches!(&error, Error::UnknownEvent { detail, .. } if detail.contains("start")),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("is not an event of this drive"),
            "{error}"
        );

        // Spawned and inline: the dispatch core finds the target unknown in the flow it is
        // lent, and the completion (of either kind) ends the run with its error.
        for inline in [false, true] {
            let invoke = drive.invoke(home);
            let invoke = if inline { invoke.inline() } else { invoke };
            let error = invoke.await.err().unwrap();
            match &error {
                Error::UnknownEvent { detail, .. } => {
                    assert!(detail.contains("goto target of `jumper`"), "{detail}")
                }
                other => panic!("expected Error::UnknownEvent (inline: {inline}), got {other:?}"),
            }
        }
    }
}

/// A run returns its error on time while an event blocks its worker thread (no `.await`):
/// it does not wait for the events it cancelled (issue 10, item 1). The blocked event goes on
/// until it yields; tokio cannot pre-empt it.
mod blocking {
    use super::*;

    /// Blocks its thread for 3 s, then sets the flag.
    #[event]
    async fn stuck(flag: Context<Flag>) {
        std::thread::sleep(Duration::from_secs(3));
        flag.set();
    }

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn stuck_sibling() {
        std::thread::sleep(Duration::from_secs(3));
    }

    #[listen(start)]
    async fn fails_soon() -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(String::from("gave up"))
    }

    static BLOCKING_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

    /// Each attempt blocks 300 ms and fails; retried at once (no backoff).
    #[event(retries = 3)]
    async fn blocks_and_fails() -> Result<(), String> {
        BLOCKING_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        Err(String::from("failed"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_blocking_attempt_ending_after_its_run_is_not_retried() {
        let begun = Instant::now();
        let error = Drive::new()
            .unwrap()
            .invoke(blocks_and_fails)
            .timeout(Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::RunTimeout { .. }), "{error:?}");
        assert!(begun.elapsed() < Duration::from_millis(250));
        // Past the time all four attempts would take: only the first one ran.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(BLOCKING_ATTEMPTS.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_run_timeout_returns_on_time_while_an_event_blocks() {
        let flag = Arc::new(Flag::default());
        let begun = Instant::now();
        let error = Drive::new()
            .unwrap()
            .invoke(stuck)
            .context_arc(flag.clone())
            .timeout(Duration::from_millis(200))
            .await
            .unwrap_err();
        let elapsed = begun.elapsed();
        match &error {
            Error::RunTimeout { after, running } => {
                assert_eq!(*after, Duration::from_millis(200));
                assert_eq!(running, &["failures::blocking::stuck"]);
            }
            other => panic!("expected RunTimeout, got {other:?}"),
        }
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
        assert!(!flag.is_set(), "the run returned before the event was done");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancel_returns_on_time_while_an_event_blocks() {
        let flag = Arc::new(Flag::default());
        let run = Drive::new()
            .unwrap()
            .invoke(stuck)
            .context_arc(flag.clone())
            .start();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let begun = Instant::now();
        run.cancel();
        let result = run.await;
        let elapsed = begun.elapsed();
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
        assert!(!flag.is_set());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_sibling_fails_the_run_on_time_while_an_event_blocks() {
        let begun = Instant::now();
        let error = Drive::new().unwrap().invoke(start).await.unwrap_err();
        let elapsed = begun.elapsed();
        assert_eq!(
            error.to_string(),
            "event `failures::blocking::fails_soon` failed: gave up"
        );
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    }
}

/// An event cancelled because a sibling failed, whose local value panics when dropped: the
/// run reports the sibling's failure, and the panic does not reach the caller, inline or
/// not, awaited or started (issue 10, item 4).
mod panic_in_drop {
    use super::*;

    /// Panics when dropped: held across an `.await` by an event that gets cancelled.
    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("a value of a cancelled event panicked in Drop");
        }
    }

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn holds_a_bomb() {
        let bomb = Bomb;
        tokio::time::sleep(Duration::from_secs(30)).await;
        std::mem::forget(bomb);
    }

    #[listen(start)]
    async fn fails() -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(String::from("the real failure"))
    }

    fn assert_real_failure(result: Result<Results, Error>) {
        match result {
            Err(Error::Failed { event, source }) => {
                assert_eq!(event, "failures::panic_in_drop::fails");
                assert_eq!(source.to_string(), "the real failure");
            }
            other => panic!("expected the failure of `fails`, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn inline_awaited() {
        let drive = Drive::new().unwrap();
        let run = std::future::IntoFuture::into_future(drive.invoke(start).inline());
        let caught = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
        assert_real_failure(caught.expect("the panic in Drop reached the caller"));
    }

    #[tokio::test]
    async fn inline_started() {
        let drive = Drive::new().unwrap();
        assert_real_failure(drive.invoke(start).inline().start().await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawned_awaited_and_started() {
        let drive = Drive::new().unwrap();
        assert_real_failure(drive.invoke(start).await);
        assert_real_failure(drive.invoke(start).start().await);
    }
}
