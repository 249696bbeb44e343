//! `Results` read where the run kept them: an untimed inline run's results hold its state
//! and read each event's entry in place (listed only when a caller asks for them all), and
//! give its memory back to the drive once dropped. Whatever way they are kept, they answer
//! as a spawned run's do, and the results of several runs of one drive, held at once, each
//! hold their own run's values.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use drive_flow::prelude::*;
use drive_flow::{Drive, DriveBuilder, EventOptions, Group, Handle, Results};

/// The events of [`drive`].
struct Events {
    start: Handle<i64>,
    double: Handle<i64>,
    flaky: Handle<i64>,
    odd_only: Handle<i64>,
    again: Handle<i64>,
    sink: Handle<()>,
    unreached: Handle<()>,
}

/// `start` (the run's input `x`) → `double` (x × 2), `flaky` (its input + 1, failing the
/// first attempt of each of its runs; one retry), `odd_only` (aborts on an even x);
/// `flaky` → `again`, which sends its value + 1 000 back to `flaky` through `goto` while
/// it is under 2 000 (twice), then ends with it (x + 2 003); `sink` joins `double` and
/// `again`. `unreached` listens to nothing.
fn drive() -> (Drive, Events) {
    let mut b = DriveBuilder::new();
    let input = |input: &EventInput| {
        input
            .results()
            .iter()
            .next()
            .and_then(|r| r.value::<i64>().copied())
            .unwrap_or(-1)
    };
    let start = b.event("start", |input: EventInput| async move {
        Flow::from(input.user::<i64>().copied().unwrap_or(0))
    });
    let double = b.event("double", move |i: EventInput| async move {
        Flow::from(input(&i) * 2)
    });
    let attempts = Arc::new(AtomicU32::new(0));
    let flaky = b.event("flaky", move |i: EventInput| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        async move {
            if attempt.is_multiple_of(2) {
                Err(std::io::Error::other("first attempt"))
            } else {
                Ok(Flow::from(input(&i) + 1))
            }
        }
    });
    let odd_only = b.event("odd_only", move |i: EventInput| async move {
        let value = input(&i);
        if value % 2 == 0 {
            Flow::abort()
        } else {
            Flow::from(value)
        }
    });
    let again = b.event("again", move |i: EventInput| async move {
        let value = input(&i);
        if value < 2_000 {
            Flow::goto([flaky], value + 1_000)
        } else {
            Flow::from(value)
        }
    });
    let sink = b.event("sink", || async {});
    let unreached = b.event("unreached", || async {});
    for listener in [double, flaky, odd_only] {
        b.listen(listener, Group::new([start]));
    }
    b.listen(again, Group::new([flaky]));
    b.listen(sink, Group::new([double, again]));
    b.options(flaky, EventOptions::new().retries(1));
    let events = Events {
        start,
        double,
        flaky,
        odd_only,
        again,
        sink,
        unreached,
    };
    (b.build().unwrap(), events)
}

/// Everything the results say, as text: each event's value, outcome, count and stats
/// (runs, attempts), then the listing, the report's rows, the picture and the gotos.
fn everything(results: &Results, e: &Events) -> String {
    let handles = [e.start, e.double, e.flaky, e.odd_only, e.again];
    let mut out = String::new();
    for handle in handles {
        let stats = results.stats(handle);
        out += &format!(
            "{:?} {:?} {} {}/{}\n",
            results.get(handle),
            results.outcome(handle),
            results.count(handle),
            stats.runs,
            stats.attempts
        );
    }
    for handle in [e.sink, e.unreached] {
        out += &format!("{:?} {}\n", results.outcome(handle), results.count(handle));
    }
    out += &format!(
        "{:?} {}\n",
        results.iter().collect::<Vec<_>>(),
        results.len()
    );
    let rows: Vec<_> = results
        .report()
        .iter()
        .map(|(name, stats)| (name.to_string(), stats.runs, stats.attempts))
        .collect();
    out += &format!("{rows:?}\n{}", results.to_mermaid());
    out += &format!("{:?}", results.gotos().collect::<Vec<_>>());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_read_in_place_answer_as_a_listed_run_s() {
    let (drive, e) = drive();
    let run = |inline: bool| {
        let invoke = drive.invoke(e.start).input(EventInput::from_input(3_i64));
        if inline {
            invoke.inline()
        } else {
            invoke
        }
    };
    let spawned = run(false).await.unwrap();
    let inline = run(true).await.unwrap();
    assert_eq!(everything(&inline, &e), everything(&spawned, &e));
    // What they say: `flaky` and `again` ran three times each (twice through `goto`).
    assert_eq!(inline.get(e.double), Some(&6));
    assert_eq!(inline.get(e.flaky), Some(&2_006));
    assert_eq!(inline.get(e.odd_only), Some(&3));
    assert_eq!(inline.get(e.again), Some(&2_006));
    assert_eq!(inline.count(e.again), 3);
    let flaky = inline.stats(e.flaky);
    assert_eq!((flaky.runs, flaky.attempts), (3, 6));
    assert_eq!(inline.count(e.sink), 1);
    assert_eq!(inline.outcome(e.unreached), None);
    assert_eq!(inline.len(), 6);
}

/// An inline run of `drive` on input `x`.
async fn inline_run(drive: &Drive, start: Handle<i64>, x: i64) -> Results {
    let invoke = drive.invoke(start).input(EventInput::from_input(x));
    invoke.inline().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_runs_of_one_drive_held_at_once_each_hold_their_own_run() {
    let (drive, e) = drive();
    let mut held = Vec::new();
    for input in 1..=4_i64 {
        held.push((input, inline_run(&drive, e.start, input).await));
    }
    for (input, results) in &held {
        assert_eq!(results.get(e.start), Some(input));
        assert_eq!(results.get(e.double), Some(&(input * 2)));
        let odd = (input % 2 == 1).then_some(input);
        assert_eq!(results.get(e.odd_only), odd, "input {input}");
        assert_eq!(results.get(e.again), Some(&(input + 2_003)));
        assert_eq!(results.count(e.again), 3);
        assert_eq!(results.stats(e.flaky).attempts, 6);
    }
    // Dropped, their memory goes back to the drive: later runs are as right.
    drop(held);
    for input in [5_i64, 6] {
        let results = inline_run(&drive, e.start, input).await;
        assert_eq!(results.get(e.double), Some(&(input * 2)));
        assert_eq!(results.count(e.again), 3);
    }
}

/// A run that touches a small part of a large drive has its results listed (held in place,
/// they would keep a cell for every event of the drive): they answer the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_touches_few_events_of_a_large_drive_has_the_same_results() {
    let mut b = DriveBuilder::new();
    let first = b.event("first", || async { Flow::from(1_u8) });
    let second = b.event("second", || async { Flow::from(2_u8) });
    b.listen(second, Group::new([first]));
    let others: Vec<Handle<()>> = (0..100)
        .map(|i| b.event(format!("other{i}"), || async {}))
        .collect();
    let drive = b.build().unwrap();
    for inline in [false, true] {
        let invoke = drive.invoke(first);
        let results = if inline { invoke.inline() } else { invoke }.await.unwrap();
        assert_eq!(results.get(first), Some(&1));
        assert_eq!(results.get(second), Some(&2));
        assert_eq!(results.count(others[0]), 0);
        assert_eq!(results.len(), 2);
    }
}

/// Results go anywhere a value goes: across threads, shared between them.
#[test]
fn results_are_send_and_sync() {
    fn send_and_sync<T: Send + Sync + 'static>() {}
    send_and_sync::<Results>();
}
