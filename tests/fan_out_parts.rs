//! A spawned run starts the listeners of a wide fan-out (64 or more started by one
//! completion) in parts of up to 16, each part in a task of its own that makes its events'
//! first polls in place: an event that goes pending there moves to a task of its own, and
//! once a part has run for 50 µs each event left in it gets a task of its own. What a run
//! does is the same either way: these tests show where events run (`tokio::task::id()`),
//! that they all run once with their input, that waiting ones are in flight together, that
//! long ones still spread over the workers, and how an error or a panic ends the run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drive_flow::prelude::*;
use drive_flow::{DriveBuilder, Group, Handle};
use tokio::task::Id;

/// What each listener saw, in the order the calls ran: its index, the root's value in its
/// input, and its tokio task.
type Seen = Arc<Mutex<Vec<(usize, Option<u32>, Id)>>>;

/// `root` (41) and `width` listeners of it, each alone in its group; `body(i)` runs in
/// listener `i` after it recorded what it saw.
fn fan_out<F, Fut>(width: usize, body: F) -> (Drive, Handle<u32>, Vec<Handle<()>>, Seen)
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let seen: Seen = Arc::default();
    let mut b = DriveBuilder::new();
    let root = b.event("root", || async { Flow::from(41_u32) });
    let listeners = (0..width)
        .map(|i| {
            let (seen, body) = (seen.clone(), body.clone());
            let listener = b.event(format!("l{i}"), move |input: EventInput| {
                let got = input.get(root).copied();
                seen.lock().unwrap().push((i, got, tokio::task::id()));
                let ran = body(i);
                async move { ran.await.map_err(drive_flow::BoxError::from) }
            });
            b.listen(listener, Group::new([root]));
            listener
        })
        .collect();
    (b.build().unwrap(), root, listeners, seen)
}

/// What `run` gives, within 30 s: a run that never ends fails the test (a part that lost
/// count of the events it ended, or waiting events that are not all in flight at once).
async fn within<T>(run: impl std::future::Future<Output = T>) -> T {
    let run = tokio::time::timeout(Duration::from_secs(30), run);
    run.await.expect("the run ended within 30 s")
}

/// How many different tasks the calls ran in.
fn tasks(seen: &Seen) -> usize {
    let seen = seen.lock().unwrap();
    seen.iter()
        .map(|&(_, _, id)| id)
        .collect::<HashSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_fan_out_s_events_share_tasks_and_each_runs_once_with_its_input() {
    let (drive, root, listeners, seen) = fan_out(200, |_| async { Ok(()) });
    let results = within(drive.invoke(root)).await.unwrap();
    for (i, listener) in listeners.iter().enumerate() {
        assert_eq!(results.count(*listener), 1, "l{i}");
    }
    let mut ran: Vec<(usize, Option<u32>)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|&(i, got, _)| (i, got))
        .collect();
    ran.sort_unstable();
    let expected: Vec<(usize, Option<u32>)> = (0..200).map(|i| (i, Some(41))).collect();
    assert_eq!(
        ran, expected,
        "each listener ran once and saw the root's value"
    );
    // Thirteen parts (of 16, the last of 8); a part that ran past its time hands the rest
    // their own tasks, so a loaded machine may see a few more. A task per event: 200.
    let tasks = tasks(&seen);
    assert!(
        (13..=100).contains(&tasks),
        "200 events ran in {tasks} tasks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrower_fan_out_gives_each_event_a_task_of_its_own() {
    // 63 events may be few long ones: each gets a worker as soon as one is free.
    let (drive, root, _, seen) = fan_out(63, |_| async { Ok(()) });
    within(drive.invoke(root)).await.unwrap();
    assert_eq!(tasks(&seen), 63);
}

#[tokio::test(flavor = "current_thread")]
async fn waiting_events_of_a_wide_fan_out_are_all_in_flight_at_once() {
    // Each waits for all 200 to have arrived: started in place, each goes pending and moves
    // to a task of its own, and the next one of its part starts.
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let (drive, root, listeners, seen) = fan_out(200, move |_| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            Ok(())
        }
    });
    let results = within(drive.invoke(root)).await.unwrap();
    assert_eq!(results.count(listeners[199]), 1);
    assert_eq!(seen.lock().unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_events_of_a_wide_fan_out_get_tasks_of_their_own_and_use_both_workers() {
    // 64 events that block their thread for 5 ms (far past a part's 50 µs): after the
    // first of each part (of 8: four parts per worker), the rest each get a task, and the
    // two workers run them side by side.
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (drive, root, _, seen) = fan_out(64, {
        let (running, most) = (running.clone(), most.clone());
        move |_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            async { Ok(()) }
        }
    });
    within(drive.invoke(root)).await.unwrap();
    // Eight parts: the first event of each in the part's task, the 56 others in their own.
    assert_eq!(tasks(&seen), 64, "each long event ran in a task of its own");
    assert_eq!(most.load(Ordering::SeqCst), 2, "two ran at once");
}

#[tokio::test(flavor = "current_thread")]
async fn an_event_of_a_part_that_fails_ends_the_run_and_the_rest_do_not_start() {
    // One thread: the parts run in the order they were spawned, and `l0` is the first
    // event of the first part.
    let (drive, root, _, seen) = fan_out(64, |i| async move {
        if i == 0 {
            Err("l0 gave up".to_string())
        } else {
            Ok(())
        }
    });
    match within(drive.invoke(root)).await {
        Err(Error::Failed { event, source }) => {
            assert_eq!(event, "l0");
            assert_eq!(source.to_string(), "l0 gave up");
        }
        other => panic!("expected Error::Failed, got {other:?}"),
    }
    let ran: Vec<usize> = seen.lock().unwrap().iter().map(|&(i, _, _)| i).collect();
    assert_eq!(ran, vec![0], "none started after the failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_a_part_that_panics_fails_the_run_with_its_name() {
    let (drive, root, _, _) = fan_out(100, |i| async move {
        if i == 37 {
            panic!("l37 broke");
        }
        Ok(())
    });
    match within(drive.invoke(root)).await {
        Err(Error::Panicked { event, message }) => {
            assert_eq!(event, "l37");
            assert_eq!(message, "l37 broke");
        }
        other => panic!("expected Error::Panicked, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_fan_out_over_the_step_budget_ends_the_run_and_none_of_it_starts() {
    // The root is step 1, its 200 listeners steps 2 to 201: the 100th listener (step 101)
    // is over a budget of 100, and the run ends before any of them starts.
    let (drive, root, _, seen) = fan_out(200, |_| async { Ok(()) });
    match within(drive.invoke(root).max_steps(100)).await {
        Err(Error::TooManySteps { limit, .. }) => assert_eq!(limit, 100),
        other => panic!("expected Error::TooManySteps, got {other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty(), "no listener started");
    // Within the budget, all of them run.
    let results = within(drive.invoke(root).max_steps(201)).await.unwrap();
    assert_eq!(results.len(), 201);
    assert_eq!(seen.lock().unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_of_a_wide_fan_out_over_its_run_limit_ends_the_run_and_none_of_it_starts() {
    // `start` starts `root` and `l50`; `root` then fans out to `l0`..`l99`, `l50` among
    // them, which has run (been triggered) once already: over `max_runs_per_event(1)`.
    let seen: Seen = Arc::default();
    let mut b = DriveBuilder::new();
    let start = b.event("start", || async {});
    let root = b.event("root", || async { Flow::from(41_u32) });
    b.listen(root, Group::new([start]));
    let listeners: Vec<Handle<()>> = (0..100)
        .map(|i| {
            let seen = seen.clone();
            let listener = b.event(format!("l{i}"), move |input: EventInput| {
                let got = input.get(root).copied();
                seen.lock().unwrap().push((i, got, tokio::task::id()));
                async {}
            });
            b.listen(listener, Group::new([root]));
            listener
        })
        .collect();
    b.listen(listeners[50], Group::new([start]));
    let drive = b.build().unwrap();
    match within(drive.invoke(start).max_runs_per_event(1)).await {
        Err(Error::TooManyRuns { event, runs, limit }) => {
            assert_eq!((event.as_str(), runs, limit), ("l50", 1, 1));
        }
        other => panic!("expected Error::TooManyRuns, got {other:?}"),
    }
    // Only `l50`'s run from `start` (its input without the root's value) may have started.
    let ran: Vec<(usize, Option<u32>)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|&(i, got, _)| (i, got))
        .collect();
    assert!(
        ran.is_empty() || ran == [(50, None)],
        "none of the fan-out started: {ran:?}"
    );
}
