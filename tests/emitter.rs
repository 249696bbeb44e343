//! Streaming from inside an event: `Emitter<T>` reaches the run's live stream, typed, in
//! order per call, between the call's `Started` and its end; a run nobody watches pays
//! nothing for it (no allocation: see the counting allocator below).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use drive_flow::prelude::*;
use drive_flow::{Emitter, RunEvent, RunEventKind};
use futures::StreamExt;

/// Counts the allocations made on each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// Collect a run's stream, failing the test instead of hanging if it never ends.
async fn collect(events: drive_flow::RunEvents) -> Vec<RunEvent> {
    tokio::time::timeout(Duration::from_secs(10), events.collect::<Vec<_>>())
        .await
        .expect("the event stream ends when the run ends")
}

/// What a test looks at: (event, task id, what).
fn shape(events: &[RunEvent]) -> Vec<(String, u64, String)> {
    events
        .iter()
        .map(|event| {
            let what = match &event.kind {
                RunEventKind::Started => "started".to_string(),
                RunEventKind::Finished { .. } => "finished".to_string(),
                RunEventKind::Emitted(item) => match item.downcast_ref::<String>() {
                    Some(text) => format!("emitted {text}"),
                    None => format!("emitted a {}", item.type_name()),
                },
                other => format!("{other:?}"),
            };
            (short(&event.event).to_string(), event.task_id, what)
        })
        .collect()
}

mod tokens {
    use std::time::Duration;

    use drive_flow::prelude::*;
    use drive_flow::Emitter;

    #[event]
    pub async fn ask() {}

    /// Two writers run at once, each emitting its words with pauses between them, so that
    /// their items interleave on the stream.
    async fn write(words: &[&str], pause: u64, out: &Emitter<String>) -> usize {
        for word in words {
            out.emit(word.to_string());
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        words.len()
    }

    #[listen(ask)]
    pub async fn left(out: Emitter<String>) -> usize {
        write(&["a1", "a2", "a3"], 20, &out).await
    }

    #[listen(ask)]
    pub async fn right(out: Emitter<String>, input: EventInput) -> usize {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(input.task_id(), 3);
        write(&["b1", "b2", "b3"], 20, &out).await
    }

    /// Emits values of another type too: a watcher reads them by type.
    #[listen(left, right)]
    pub async fn done(numbers: Emitter<u32>, words: Emitter<String>) {
        numbers.emit(7);
        words.emit(String::from("end"));
    }
}

#[tokio::test]
async fn emitted_values_reach_the_stream_in_order_per_call_naming_event_and_task() {
    let (run, events) = Drive::new()
        .unwrap()
        .invoke(tokens::ask)
        .start_with_events();
    let seen = collect(events).await;
    run.await.unwrap();
    let shape = shape(&seen);
    let of = |event: &str| -> Vec<(u64, String)> {
        shape
            .iter()
            .filter(|(e, _, _)| e == event)
            .map(|(_, task, what)| (*task, what.clone()))
            .collect()
    };
    let expect = |task: u64, whats: &[&str]| -> Vec<(u64, String)> {
        whats.iter().map(|what| (task, what.to_string())).collect()
    };
    assert_eq!(
        of("left"),
        expect(
            2,
            &[
                "started",
                "emitted a1",
                "emitted a2",
                "emitted a3",
                "finished"
            ]
        )
    );
    assert_eq!(
        of("right"),
        expect(
            3,
            &[
                "started",
                "emitted b1",
                "emitted b2",
                "emitted b3",
                "finished"
            ]
        )
    );
    assert_eq!(
        of("done"),
        expect(4, &["started", "emitted a u32", "emitted end", "finished"])
    );
    // The two writers ran at once: their items interleave (b1 comes before a3).
    let position = |what: &str| shape.iter().position(|(_, _, w)| w == what).unwrap();
    assert!(
        position("emitted b1") < position("emitted a3"),
        "{shape:#?}"
    );
    let number = seen.iter().find_map(RunEvent::emitted::<u32>);
    assert_eq!(number, Some(&7));
}

mod late {
    use std::time::Duration;

    use drive_flow::prelude::*;
    use drive_flow::Emitter;

    #[event]
    pub async fn begin() {}

    /// Keeps its emitter in a task of its own, which emits after the call ended.
    #[listen(begin)]
    pub async fn leaves_a_task(out: Emitter<String>) {
        out.emit(String::from("in time"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            out.emit(String::from("too late"));
        });
    }

    /// Keeps the run going past the late emit.
    #[listen(begin)]
    pub async fn slow() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_value_emitted_after_its_call_ended_is_dropped() {
    let (run, events) = Drive::new()
        .unwrap()
        .invoke(late::begin)
        .start_with_events();
    let seen = collect(events).await;
    run.await.unwrap();
    let items: Vec<(String, u64, String)> = shape(&seen)
        .into_iter()
        .filter(|(event, _, _)| event == "leaves_a_task")
        .collect();
    assert_eq!(
        items,
        [
            ("leaves_a_task".to_string(), 2, "started".to_string()),
            (
                "leaves_a_task".to_string(),
                2,
                "emitted in time".to_string()
            ),
            ("leaves_a_task".to_string(), 2, "finished".to_string()),
        ]
    );
}

mod unwatched {
    use drive_flow::prelude::*;
    use drive_flow::Emitter;

    use super::allocations;

    /// Emits a thousand values and reports whether it was watched and how many
    /// allocations its emits made on this thread.
    #[event]
    pub async fn chatty(out: Emitter<u64>) -> (bool, u64) {
        let before = allocations();
        for n in 0..1000 {
            out.emit(n);
        }
        (out.is_watched(), allocations() - before)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_run_nobody_watches_allocates_nothing_to_emit() {
    let drive = Drive::new().unwrap();
    let results = drive.invoke(unwatched::chatty).await.unwrap();
    assert_eq!(results.get(unwatched::chatty), Some(&(false, 0)));
    // Watched, each emit allocates its shared value (and the stream its item).
    let (run, events) = drive.invoke(unwatched::chatty).start_with_events();
    let seen = collect(events).await;
    let results = run.await.unwrap();
    let (watched, allocated) = *results.get(unwatched::chatty).unwrap();
    assert!(watched);
    assert!(allocated >= 1000, "{allocated}");
    let emitted: Vec<u64> = seen
        .iter()
        .filter_map(RunEvent::emitted::<u64>)
        .copied()
        .collect();
    assert_eq!(emitted, (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_builder_event_takes_an_emitter_too() {
    let mut builder = drive_flow::DriveBuilder::new();
    let only = builder.event("only", |out: Emitter<&'static str>| async move {
        out.emit("hi");
        Flow::from(())
    });
    let drive = builder.build().unwrap();
    let (run, events) = drive.invoke(only).start_with_events();
    let seen = collect(events).await;
    run.await.unwrap();
    let items: Vec<&&str> = seen.iter().filter_map(RunEvent::emitted).collect();
    assert_eq!(items, [&"hi"]);
    assert_eq!((seen[1].event.as_ref(), seen[1].task_id), ("only", 1));
}
