//! A wide fan-out's listeners (an event alone in each of at least 16 groups) wait in an
//! inline run's task as one entry and are started one by one from it: what they see, the
//! order they start in, their task ids, the budgets and what queues behind them must be
//! those of the starts the dispatch core makes one by one elsewhere (a spawning run).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use drive_flow::{Behavior, Drive, DriveBuilder, Error, EventInput, Flow, Group, Handle};

/// Listeners of the root: more than the 16 that make it a wide fan-out.
const WIDTH: usize = 40;

/// What one listener saw: its name, its group's name, its behavior, the root's value in its
/// results (for those that read them) and its task id.
type Seen = (String, String, Behavior, Option<u32>, u64);

struct Wide {
    drive: Drive,
    root: Handle<u32>,
    listeners: Vec<Handle<()>>,
    after: Handle<()>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// How many times `root` ran in the current run.
    turn: Arc<AtomicU32>,
}

/// `root` (7, then 8, … on each goto) → `WIDTH` listeners, each alone in its group; every
/// other one reads its input; `l0` has a listener of its own, `after`; the last listener
/// sends the run back to `root` until it has run `turns` times.
fn wide(turns: u32) -> Wide {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let mut builder = DriveBuilder::new();
    let turn = Arc::new(AtomicU32::new(0));
    let root = builder.event("root", {
        let turn = turn.clone();
        move || {
            let turn = turn.fetch_add(1, Ordering::SeqCst);
            async move { Flow::from(7 + turn) }
        }
    });
    let mut listeners = Vec::new();
    for i in 0..WIDTH {
        let name = format!("l{i}");
        let seen = seen.clone();
        let last = i == WIDTH - 1;
        let handle = if i % 2 == 0 {
            builder.event(name.clone(), move |input: EventInput| {
                let (seen, name) = (seen.clone(), name.clone());
                async move {
                    let value = input.get(root).copied();
                    seen.lock().unwrap().push((
                        name,
                        input.group_name().to_string(),
                        input.behavior(),
                        value,
                        input.task_id(),
                    ));
                    Flow::Value(())
                }
            })
        } else {
            builder.event(name.clone(), move || {
                let (seen, name) = (seen.clone(), name.clone());
                async move {
                    let turn = {
                        let mut seen = seen.lock().unwrap();
                        seen.push((name, String::new(), Behavior::Input, None, 0));
                        seen.iter().filter(|s| s.0 == "l0").count() as u32
                    };
                    if last && turn < turns {
                        Flow::goto([root], ())
                    } else {
                        Flow::Value(())
                    }
                }
            })
        };
        builder.listen(handle, Group::new([root]));
        listeners.push(handle);
    }
    let after = {
        let seen = seen.clone();
        builder.event("after", move || {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push(("after".into(), String::new(), Behavior::Input, None, 0));
            }
        })
    };
    builder.listen(after, Group::new([listeners[0]]));
    Wide {
        drive: builder.build().unwrap(),
        root,
        listeners,
        after,
        seen,
        turn,
    }
}

/// Run `wide` from its root, inline or with a task per event, under `cap`: what each
/// listener saw, in the order they ran, and the run's results' counts.
async fn run(wide: &Wide, inline: bool, cap: Option<usize>) -> (Vec<Seen>, Vec<u32>) {
    wide.seen.lock().unwrap().clear();
    wide.turn.store(0, Ordering::SeqCst);
    let mut invoke = wide.drive.invoke(wide.root);
    if inline {
        invoke = invoke.inline();
    }
    if let Some(cap) = cap {
        invoke = invoke.max_concurrency(cap);
    }
    let results = invoke.await.unwrap();
    let mut counts = vec![results.count(wide.root), results.count(wide.after)];
    counts.extend(wide.listeners.iter().map(|&l| results.count(l)));
    let seen = wide.seen.lock().unwrap().clone();
    (seen, counts)
}

/// Run `wide` one event at a time (the order of starts is then the order of the queue,
/// first in first out), with a task per event and inline: what the listeners saw and the
/// counts, the same both ways.
async fn one_at_a_time_both_ways(wide: &Wide) -> (Vec<Seen>, Vec<u32>) {
    let (spawned, spawned_counts) = run(wide, false, Some(1)).await;
    let (inline, inline_counts) = run(wide, true, Some(1)).await;
    assert_eq!(inline, spawned);
    assert_eq!(inline_counts, spawned_counts);
    (inline, inline_counts)
}

/// The listeners' names in registration order, then `after` (queued by `l0`'s end, behind
/// the rest of the fan-out).
fn one_turn() -> Vec<String> {
    let mut names: Vec<String> = (0..WIDTH).map(|i| format!("l{i}")).collect();
    names.push("after".into());
    names
}

#[tokio::test]
async fn a_wide_fan_out_run_inline_starts_its_listeners_as_a_spawning_run_does() {
    let wide = wide(1);
    let (inline, inline_counts) = one_at_a_time_both_ways(&wide).await;

    let names: Vec<&str> = inline.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, one_turn());
    // Those that read their input: group "0", a dispatch, the root's 7, task ids in the
    // order they were triggered (the root's start took 1).
    for (i, seen) in inline
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .take(WIDTH / 2)
    {
        assert_eq!(
            (seen.1.as_str(), seen.2, seen.3, seen.4),
            ("0", Behavior::Dispatch, Some(7), i as u64 + 2),
            "{seen:?}"
        );
    }
    assert_eq!(inline_counts, [[1, 1].as_slice(), &[1; WIDTH]].concat());

    // Uncapped, and capped at 3: every listener once, with the same inputs.
    for cap in [None, Some(3)] {
        let (mut seen, counts) = run(&wide, true, cap).await;
        seen.sort_by(|a, b| (&a.0, a.4).cmp(&(&b.0, b.4)));
        let mut reference = inline.clone();
        reference.sort_by(|a, b| (&a.0, a.4).cmp(&(&b.0, b.4)));
        assert_eq!(seen, reference, "cap {cap:?}");
        assert_eq!(counts, inline_counts, "cap {cap:?}");
    }
}

#[tokio::test]
async fn a_wide_fan_out_sent_back_to_its_root_queues_its_listeners_again_each_turn() {
    let wide = wide(3);
    let (inline, inline_counts) = one_at_a_time_both_ways(&wide).await;
    // The root ran three times (7, 8, 9), each listener three times; `after` once per
    // turn, behind its turn's fan-out and before the next turn's (the goto of the last
    // listener is queued behind it).
    assert_eq!(inline_counts, [[3, 3].as_slice(), &[3; WIDTH]].concat());
    let names: Vec<&str> = inline.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, [one_turn(), one_turn(), one_turn()].concat());
    let values: Vec<u32> = inline
        .iter()
        .filter(|s| s.0 == "l0")
        .filter_map(|s| s.3)
        .collect();
    assert_eq!(values, [7, 8, 9]);
    let task_ids: Vec<u64> = inline.iter().filter(|s| s.0 == "l2").map(|s| s.4).collect();
    let mut sorted = task_ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "task ids {task_ids:?}");
}

#[tokio::test]
async fn a_step_budget_that_runs_out_in_a_wide_fan_out_starts_none_of_it_inline() {
    let wide = wide(1);
    for cap in [None, Some(2)] {
        for inline in [true, false] {
            wide.seen.lock().unwrap().clear();
            let mut invoke = wide.drive.invoke(wide.root).max_steps(20);
            if inline {
                invoke = invoke.inline();
            }
            if let Some(cap) = cap {
                invoke = invoke.max_concurrency(cap);
            }
            let error = invoke.await.unwrap_err();
            assert!(
                matches!(error, Error::TooManySteps { limit: 20, .. }),
                "inline {inline}, cap {cap:?}: {error:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert!(
                wide.seen.lock().unwrap().is_empty(),
                "inline {inline}, cap {cap:?}: a listener ran"
            );
        }
    }
}
