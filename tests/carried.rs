//! A spawned run gives an event that another's end starts alone the task of the event that
//! ended (its first poll is made there; no task is spawned for it), up to 32 in a row. One
//! that goes pending there moves to a task of its own; events started together each get
//! their own task. What a run does is the same either way: these tests show where events
//! run, with `tokio::task::id()`, and that the thread's other tasks keep their turn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drive_flow::prelude::*;
use drive_flow::{DriveBuilder, EventOptions, Group, Handle, RunEventKind};
use futures::StreamExt;
use tokio::task::Id;

/// The tokio task each call ran in, by event name, in the order the calls ran.
type Seen = Arc<Mutex<Vec<(&'static str, Id)>>>;

fn record(seen: &Seen, name: &'static str) {
    seen.lock().unwrap().push((name, tokio::task::id()));
}

/// The task of each named call (each runs once).
fn task_of(seen: &Seen, name: &str) -> Id {
    let seen = seen.lock().unwrap();
    let tasks: Vec<Id> = seen
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|&(_, id)| id)
        .collect();
    assert_eq!(tasks.len(), 1, "{name} ran once: {seen:?}");
    tasks[0]
}

/// An event named `name` that records its task when called and returns one more than
/// `after`'s value (0 without it), listening to `after` if given.
fn counter(
    b: &mut DriveBuilder,
    seen: &Seen,
    name: &'static str,
    after: Option<Handle<u32>>,
) -> Handle<u32> {
    let s = seen.clone();
    let event = b.event(name, move |input: EventInput| {
        record(&s, name);
        let got = after.and_then(|after| input.get(after).copied());
        async move { Flow::from(got.unwrap_or(0) + 1) }
    });
    if let Some(after) = after {
        b.listen(event, Group::new([after]));
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_started_alone_runs_in_the_task_of_the_event_that_started_it() {
    // a → b → c (each alone), then c → (d, e) started together.
    let seen: Seen = Arc::default();
    let mut b = DriveBuilder::new();
    let first = counter(&mut b, &seen, "a", None);
    let second = counter(&mut b, &seen, "b", Some(first));
    let third = counter(&mut b, &seen, "c", Some(second));
    let left = counter(&mut b, &seen, "d", Some(third));
    let right = counter(&mut b, &seen, "e", Some(third));
    let drive = b.build().unwrap();

    let results = drive.invoke(first).await.unwrap();
    assert_eq!(results.get(third), Some(&3), "b and c saw their inputs");
    assert_eq!((results.count(left), results.count(right)), (1, 1));
    let a = task_of(&seen, "a");
    assert_eq!(
        task_of(&seen, "b"),
        a,
        "b, started alone by a, ran in a's task"
    );
    assert_eq!(task_of(&seen, "c"), a, "and c, started alone by b, too");
    let (d, e) = (task_of(&seen, "d"), task_of(&seen, "e"));
    assert_ne!(d, e, "events started together each get a task");
    assert!(d != a && e != a, "neither ran in c's task: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_event_that_goes_pending_moves_to_a_task_of_its_own() {
    // a → b → c: b waits on a timer at its first poll, then c follows it.
    let seen: Seen = Arc::default();
    let mut b = DriveBuilder::new();
    let first = counter(&mut b, &seen, "a", None);
    let s = seen.clone();
    let second = b.event("b", move |input: EventInput| {
        let s = s.clone();
        async move {
            record(&s, "b before");
            tokio::time::sleep(Duration::from_millis(20)).await;
            record(&s, "b after");
            Flow::from(input.get(first).copied().unwrap_or(0) + 1)
        }
    });
    b.listen(second, Group::new([first]));
    let third = counter(&mut b, &seen, "c", Some(second));
    let drive = b.build().unwrap();

    let run = tokio::time::timeout(Duration::from_secs(10), drive.invoke(first));
    let results = run.await.expect("b was woken in its task").unwrap();
    assert_eq!(results.get(second), Some(&2));
    assert_eq!(results.get(third), Some(&3));
    let a = task_of(&seen, "a");
    assert_eq!(task_of(&seen, "b before"), a, "b's first poll: in a's task");
    let moved = task_of(&seen, "b after");
    assert_ne!(moved, a, "woken in a task of its own: {seen:?}");
    assert_eq!(
        task_of(&seen, "c"),
        moved,
        "c is carried on in b's new task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_event_that_panics_fails_the_run_with_its_name() {
    let mut b = DriveBuilder::new();
    let first = b.event("calm", || async { Flow::from(1_u32) });
    let second = b.event("explodes", move |input: EventInput| async move {
        let got = input.get(first).copied();
        if got.is_some() {
            panic!("late {got:?}");
        }
        Flow::from(0_u32)
    });
    b.listen(second, Group::new([first]));
    let drive = b.build().unwrap();
    match drive.invoke(first).await {
        Err(Error::Panicked { event, message }) => {
            assert_eq!(event, "explodes");
            assert_eq!(message, "late Some(1)");
        }
        other => panic!("expected Error::Panicked, got {other:?}"),
    }
}

/// Wake the task at once and go pending: it is polled again after the tasks queued before
/// it. (`tokio::task::yield_now` defers its wake until the thread has nothing else to run.)
async fn back_of_the_queue() {
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return std::task::Poll::Ready(());
        }
        woken = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// A goto loop of events that end at their first poll, on a one-thread runtime beside a
/// task that counts its turns: the loop's task carries at most 32 events in a row, then
/// spawns the next, and the other task gets its turn.
#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_events_that_end_at_once_lets_the_thread_s_other_tasks_run() {
    const TURNS: u64 = 300;
    let turns_of_other = Arc::new(AtomicU64::new(0));
    let seen_by_events: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut b = DriveBuilder::new();
    let (other, seen) = (turns_of_other.clone(), seen_by_events.clone());
    // tick: turn 0 on the first call, then the payload of tok's goto.
    let tick = b.event("tick", move |input: EventInput| {
        seen.lock().unwrap().push(other.load(Ordering::Relaxed));
        let turn = input
            .results()
            .iter()
            .next()
            .and_then(|r| r.value::<u64>().copied())
            .unwrap_or(0);
        async move { Flow::from(turn) }
    });
    let tok = b.event("tok", move |input: EventInput| async move {
        let turn = input.get(tick).copied().unwrap_or(0);
        if turn + 1 < TURNS {
            Flow::goto([tick], turn + 1)
        } else {
            Flow::abort()
        }
    });
    b.listen(tok, Group::new([tick]));
    let drive = b.build().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counter = {
        let (turns, stop) = (turns_of_other.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                turns.fetch_add(1, Ordering::Relaxed);
                back_of_the_queue().await;
            }
        })
    };
    back_of_the_queue().await; // the counter is running
    drive.invoke(tick).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    counter.await.unwrap();

    let seen = seen_by_events.lock().unwrap();
    assert_eq!(seen.len() as u64, TURNS, "every turn ran");
    // The longest stretch of events that ran while the other task did not.
    let mut longest = 0;
    let mut stretch = 0;
    for pair in seen.windows(2) {
        stretch = if pair[0] == pair[1] { stretch + 1 } else { 0 };
        longest = longest.max(stretch + 1);
    }
    assert!(
        longest <= 33,
        "{longest} events in a row kept the other task waiting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_event_with_a_timeout_and_a_retry_is_retried_in_a_task_of_its_own() {
    // a → shaky: shaky's first attempt outlives its 50 ms timeout, its retry ends at once.
    let seen: Seen = Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let mut b = DriveBuilder::new();
    let s = seen.clone();
    let first = b.event("a", move || {
        record(&s, "a");
        async { Flow::from(7_u64) }
    });
    let (s, counted) = (seen.clone(), calls.clone());
    let shaky = b.event("shaky", move |input: EventInput| {
        let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
        record(&s, if call == 1 { "shaky 1" } else { "shaky 2" });
        let got = input.get(first).copied().unwrap_or(0);
        async move {
            if call == 1 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Flow::from(got * 10 + call)
        }
    });
    b.listen(shaky, Group::new([first]));
    b.options(
        shaky,
        EventOptions::new()
            .timeout(Duration::from_millis(50))
            .retries(1),
    );
    let drive = b.build().unwrap();

    let run = tokio::time::timeout(Duration::from_secs(10), drive.invoke(first));
    let results = run.await.expect("the retry ran").unwrap();
    assert_eq!(
        results.get(shaky),
        Some(&72),
        "its second call, with a's value"
    );
    assert_eq!(results.stats(shaky).attempts, 2);
    let a = task_of(&seen, "a");
    assert_eq!(task_of(&seen, "shaky 1"), a, "first attempt: in a's task");
    assert_ne!(task_of(&seen, "shaky 2"), a, "the retry: in its own task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_event_waiting_on_its_inbox_gets_what_the_caller_sends() {
    // a → waits (started alone: its first poll in a's task, where it goes pending) → after.
    let mut b = DriveBuilder::new();
    let first = b.event("a", || async { Flow::from(1_u32) });
    let waits = b.event("waits", |inbox: Inbox| async move {
        let got: u32 = inbox.recv("answer").await?;
        Ok::<_, drive_flow::InboxError>(Flow::from(got + 1))
    });
    let after = b.event("after", move |input: EventInput| {
        let got = input.get(waits).copied();
        async move { Flow::from(got.unwrap_or(0) * 2) }
    });
    b.listen(waits, Group::new([first]));
    b.listen(after, Group::new([waits]));
    let drive = b.build().unwrap();

    let (run, mut events) = drive.invoke(first).start_with_events();
    // (A watched run: its completions take its lock, and carry on from there.)
    while let Some(event) = events.next().await {
        if matches!(event.kind, RunEventKind::Waiting { .. }) {
            break;
        }
    }
    run.send("answer", 20_u32);
    let results = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the waiting event was woken in its own task")
        .unwrap();
    assert_eq!(results.get(waits), Some(&21));
    assert_eq!(results.get(after), Some(&42));
}
