//! Events run concurrently: listeners of one group overlap in time, CPU-bound events spread
//! over the worker threads of a multi-thread runtime, and `max_concurrency(n)` caps how many
//! run at once. Overlap is shown with generous margins, never by tight timing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use drive_flow::prelude::*;

/// When one call ran, and on which thread.
#[derive(Clone, Debug)]
struct Span {
    name: &'static str,
    begin: Instant,
    end: Instant,
    thread: std::thread::ThreadId,
}

#[derive(Default)]
struct Spans(Mutex<Vec<Span>>);

impl Spans {
    fn push(&self, name: &'static str, begin: Instant) {
        self.0.lock().unwrap().push(Span {
            name,
            begin,
            end: Instant::now(),
            thread: std::thread::current().id(),
        });
    }

    fn all(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }
}

/// The names of the calls, sorted.
fn names(spans: &[Span]) -> Vec<&'static str> {
    let mut names: Vec<_> = spans.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names
}

fn overlap(x: &Span, y: &Span) -> bool {
    x.begin < y.end && y.begin < x.end
}

/// Two listeners of the same group, each awaiting a 200 ms timer.
mod same_group {
    use super::*;
    use std::sync::Arc;

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn left(spans: Context<Spans>) {
        let begin = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        spans.push("left", begin);
    }

    #[listen(start)]
    async fn right(spans: Context<Spans>) {
        let begin = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        spans.push("right", begin);
    }

    #[tokio::test]
    async fn listeners_of_one_group_run_at_the_same_time() {
        let spans = Arc::new(Spans::default());
        let begun = Instant::now();
        let results = Drive::new()
            .unwrap()
            .invoke(start)
            .context_arc(spans.clone())
            .await
            .unwrap();
        let elapsed = begun.elapsed();
        assert_eq!((results.count(left), results.count(right)), (1, 1));
        assert!(elapsed >= Duration::from_millis(200), "took {elapsed:?}");
        assert!(elapsed < Duration::from_millis(350), "took {elapsed:?}");
        let all = spans.all();
        assert_eq!(names(&all), ["left", "right"]);
        assert!(overlap(&all[0], &all[1]), "{all:?}");
    }

    /// Run inside the run's own task, the two still overlap: each is polled once when it
    /// starts, and goes on being polled by the run's task once it is pending.
    #[tokio::test]
    async fn listeners_of_one_group_run_at_the_same_time_inline() {
        let spans = Arc::new(Spans::default());
        let run = Drive::new()
            .unwrap()
            .invoke(start)
            .context_arc(spans.clone())
            .inline();
        let results = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("an inline run whose events go pending ends")
            .unwrap();
        assert_eq!((results.count(left), results.count(right)), (1, 1));
        let all = spans.all();
        assert_eq!(names(&all), ["left", "right"]);
        assert!(overlap(&all[0], &all[1]), "{all:?}");
    }
}

/// A chain whose events each give their turn back twice (ready again at once, woken by
/// themselves), run inline: each goes pending after its first poll and must be polled again.
mod yielding_chain {
    use super::*;

    async fn yield_twice() {
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
    }

    #[event]
    async fn one() -> u32 {
        yield_twice().await;
        1
    }

    #[listen(one)]
    async fn two(input: EventInput) -> u32 {
        yield_twice().await;
        input.get(one).copied().unwrap_or(0) + 1
    }

    #[listen(two)]
    async fn three(input: EventInput) -> u32 {
        yield_twice().await;
        input.get(two).copied().unwrap_or(0) + 1
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_inline_chain_of_events_that_yield_runs_to_its_end() {
        let run = Drive::new().unwrap().invoke(one).inline();
        let results = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("an inline run whose events yield ends")
            .unwrap();
        assert_eq!(results.get(three), Some(&3));
        assert_eq!(
            (results.count(one), results.count(two), results.count(three)),
            (1, 1, 1)
        );
    }
}

/// Two listeners that block their thread for 200 ms (no `.await`): they overlap only if
/// they run on two worker threads.
mod cpu_bound {
    use super::*;
    use std::sync::Arc;

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn crunch_one(spans: Context<Spans>) {
        let begin = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        spans.push("crunch_one", begin);
    }

    #[listen(start)]
    async fn crunch_two(spans: Context<Spans>) {
        let begin = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        spans.push("crunch_two", begin);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_events_use_several_worker_threads() {
        let spans = Arc::new(Spans::default());
        let begun = Instant::now();
        let results = Drive::new()
            .unwrap()
            .invoke(start)
            .context_arc(spans.clone())
            .await
            .unwrap();
        let elapsed = begun.elapsed();
        assert_eq!(
            (results.count(crunch_one), results.count(crunch_two)),
            (1, 1)
        );
        assert!(elapsed < Duration::from_millis(350), "took {elapsed:?}");
        let all = spans.all();
        assert_eq!(names(&all), ["crunch_one", "crunch_two"]);
        assert!(overlap(&all[0], &all[1]), "{all:?}");
        assert_ne!(all[0].thread, all[1].thread, "{all:?}");
        let test_thread = std::thread::current().id();
        assert!(all.iter().all(|s| s.thread != test_thread), "{all:?}");
    }
}

/// `max_concurrency(3)` over a fan-out of 12 events: never more than 3 at once, and all run.
mod capped {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        peak: AtomicUsize,
        ran: Mutex<Vec<&'static str>>,
    }

    impl Gauge {
        async fn occupy(&self, name: &'static str) {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.ran.lock().unwrap().push(name);
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn w01(gauge: Context<Gauge>) {
        gauge.occupy("w01").await;
    }

    #[listen(start)]
    async fn w02(gauge: Context<Gauge>) {
        gauge.occupy("w02").await;
    }

    #[listen(start)]
    async fn w03(gauge: Context<Gauge>) {
        gauge.occupy("w03").await;
    }

    #[listen(start)]
    async fn w04(gauge: Context<Gauge>) {
        gauge.occupy("w04").await;
    }

    #[listen(start)]
    async fn w05(gauge: Context<Gauge>) {
        gauge.occupy("w05").await;
    }

    #[listen(start)]
    async fn w06(gauge: Context<Gauge>) {
        gauge.occupy("w06").await;
    }

    #[listen(start)]
    async fn w07(gauge: Context<Gauge>) {
        gauge.occupy("w07").await;
    }

    #[listen(start)]
    async fn w08(gauge: Context<Gauge>) {
        gauge.occupy("w08").await;
    }

    #[listen(start)]
    async fn w09(gauge: Context<Gauge>) {
        gauge.occupy("w09").await;
    }

    #[listen(start)]
    async fn w10(gauge: Context<Gauge>) {
        gauge.occupy("w10").await;
    }

    #[listen(start)]
    async fn w11(gauge: Context<Gauge>) {
        gauge.occupy("w11").await;
    }

    #[listen(start)]
    async fn w12(gauge: Context<Gauge>) {
        gauge.occupy("w12").await;
    }

    const WORKERS: &[&str] = &[
        "w01", "w02", "w03", "w04", "w05", "w06", "w07", "w08", "w09", "w10", "w11", "w12",
    ];

    /// Spawned, and run inline: untimed, whose task holds the cap (no lock), and timed,
    /// whose completions count under the run's lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_concurrency_caps_events_running_at_once() {
        for (inline, timed) in [(false, false), (true, false), (true, true)] {
            let gauge = Arc::new(Gauge::default());
            let begun = Instant::now();
            let invoke = Drive::new()
                .unwrap()
                .invoke(start)
                .context_arc(gauge.clone())
                .max_concurrency(3);
            let invoke = if inline { invoke.inline() } else { invoke };
            let invoke = if timed { invoke.timed() } else { invoke };
            let results = invoke.await.unwrap();
            let elapsed = begun.elapsed();
            let how = format!("inline: {inline}, timed: {timed}");
            assert_eq!(gauge.peak.load(Ordering::SeqCst), 3, "{how}");
            let mut ran = gauge.ran.lock().unwrap().clone();
            ran.sort_unstable();
            assert_eq!(ran, WORKERS, "{how}");
            assert_eq!(results.count(w01) + results.count(w12), 2, "{how}");
            assert_eq!(results.len(), 13, "{how}");
            // 12 sleeps of 50 ms, at most 3 at a time: at least 4 rounds.
            assert!(
                elapsed >= Duration::from_millis(200),
                "took {elapsed:?}, {how}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_cap_the_whole_fan_out_runs_at_once() {
        let gauge = Arc::new(Gauge::default());
        Drive::new()
            .unwrap()
            .invoke(start)
            .context_arc(gauge.clone())
            .await
            .unwrap();
        assert_eq!(gauge.peak.load(Ordering::SeqCst), 12);
        assert_eq!(gauge.ran.lock().unwrap().len(), 12);
    }
}

/// One drive, many runs at once: each run has its own state, input and results.
mod independent_runs {
    use super::*;

    #[event]
    async fn seed(input: EventInput) -> u64 {
        *input.user::<u64>().unwrap()
    }

    #[listen(seed)]
    async fn slow_double(input: EventInput) -> u64 {
        let n = *input.get(seed).unwrap();
        // Interleave the runs.
        tokio::time::sleep(Duration::from_millis(n % 7 * 5)).await;
        n * 2
    }

    #[listen(seed, slow_double)]
    async fn sum(input: EventInput) -> u64 {
        input.get(seed).unwrap() + input.get(slow_double).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_runs_do_not_share_state() {
        let drive = Drive::new().unwrap();
        let runs = (0..50u64).map(|n| {
            let drive = drive.clone();
            tokio::spawn(async move {
                let results = drive
                    .invoke(seed)
                    .input(EventInput::from_input(n))
                    .await
                    .unwrap();
                (n, results)
            })
        });
        for run in futures::future::join_all(runs).await {
            let (n, results) = run.unwrap();
            assert_eq!(results.get(sum), Some(&(n * 3)), "run {n}");
            assert_eq!(results.count(sum), 1, "run {n}");
            assert_eq!(results.count(slow_double), 1, "run {n}");
            assert_eq!(results.len(), 3, "run {n}");
        }
    }
}

/// A value sent to an event waiting in its `Inbox`, racing a `cancel()` of the run from
/// another thread: the runner's count of running events must not underflow (it panicked
/// with "attempt to subtract with overflow" in debug builds; issue 10, item 3). Thousands
/// of tries; any panic on any thread (the runner's own, caught by tokio, included) fails.
mod send_races_cancel {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, Once};
    use std::time::Duration;

    use drive_flow::prelude::*;
    use drive_flow::{InboxError, RunEventKind};
    use futures::StreamExt;

    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// Count every panic of the process from now on (tokio catches a task's panic and
    /// drops it with the aborted task: only the hook sees it).
    fn count_panics() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANICS.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut messages) = MESSAGES.lock() {
                    messages.push(info.to_string());
                }
                previous(info);
            }));
        });
    }

    #[event]
    pub async fn waits(inbox: Inbox) -> Result<u8, InboxError> {
        inbox.recv::<u8>("go").await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn send_racing_cancel_never_panics() {
        count_panics();
        let drive = Drive::new().unwrap();
        let tries = async {
            for attempt in 0..3_000u32 {
                let (run, mut events) = drive.invoke(waits).start_with_events();
                while let Some(event) = events.next().await {
                    if matches!(event.kind, RunEventKind::Waiting { .. }) {
                        break;
                    }
                }
                // Two threads: one sends, the other cancels a moment later (a few spins,
                // varied from try to try, so that the cancel lands at every point of the
                // woken event's way to its end).
                std::thread::scope(|scope| {
                    scope.spawn(|| run.send("go", 1u8));
                    scope.spawn(|| {
                        for _ in 0..(attempt % 64) * 16 {
                            std::hint::spin_loop();
                        }
                        run.cancel();
                    });
                });
                let result = run.await;
                assert!(
                    matches!(result, Err(Error::Cancelled) | Ok(_)),
                    "try {attempt}: {result:?}"
                );
            }
        };
        tokio::time::timeout(Duration::from_secs(120), tries)
            .await
            .expect("3 000 tries take well under two minutes");
        // Let the last cancelled tasks end before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let messages = MESSAGES.lock().unwrap().clone();
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "{messages:#?}");
    }
}
