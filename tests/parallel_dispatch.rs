//! Completions on several threads at once share no run-wide lock: they meet only at the
//! state they share (an event, a join). These tests make them meet as often as they can:
//! empty bodies on a 4-thread runtime, so that the members of a join end together on
//! different threads, and runs of one drive at once, which take their state from the
//! same pool. Every join must fire exactly as SEMANTICS says, with exactly its members'
//! values, in group order; every run must see only its own values.

use std::sync::{Arc, Mutex};

use drive_flow::prelude::*;
use drive_flow::{Drive, DriveBuilder, Group, Handle};

/// What the sink of a run was handed, call by call.
type Seen = Arc<Mutex<Vec<Vec<i64>>>>;

/// `start` (the run's input) → `width` members (member `i` returns input + i) → one `all`
/// join of them all → `sink`, which records the values it was handed.
fn wide_join(width: i64) -> (Drive, Handle<i64>, Handle<i64>, Seen) {
    let seen: Seen = Arc::default();
    let mut b = DriveBuilder::new();
    let start = b.event("start", |input: EventInput| async move {
        Flow::from(input.user::<i64>().copied().unwrap_or(0))
    });
    let members: Vec<Handle<i64>> = (0..width)
        .map(|i| {
            let member = b.event(format!("m{i}"), move |input: EventInput| async move {
                let base = input
                    .results()
                    .iter()
                    .next()
                    .and_then(|r| r.value::<i64>().copied());
                Flow::from(base.unwrap_or(-1_000_000) + i)
            });
            b.listen(member, Group::new([start]));
            member
        })
        .collect();
    let record = seen.clone();
    let sink = b.event("sink", move |input: EventInput| {
        let got: Vec<i64> = input
            .results()
            .iter()
            .map(|r| r.value::<i64>().copied().unwrap_or(-1))
            .collect();
        record.lock().unwrap().push(got);
        async { Flow::from(0_i64) }
    });
    b.listen(sink, Group::new(members));
    (b.build().unwrap(), start, sink, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wide_join_whose_members_end_together_fires_once_with_every_value_in_order() {
    let width = 64;
    let (drive, start, sink, seen) = wide_join(width);
    for run in 0..200_i64 {
        let results = drive
            .invoke(start)
            .input(EventInput::from_input(run))
            .await
            .unwrap();
        assert_eq!(results.count(sink), 1, "run {run}: the join fired once");
        let calls = std::mem::take(&mut *seen.lock().unwrap());
        let expected: Vec<i64> = (0..width).map(|i| run + i).collect();
        assert_eq!(
            calls,
            [expected],
            "run {run}: every member's value, in group order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_of_one_drive_at_once_each_see_only_their_own_state() {
    let width = 16;
    let (drive, start, sink, seen) = wide_join(width);
    let drive = Arc::new(drive);
    for round in 0..25_i64 {
        let runs: Vec<_> = (0..8_i64)
            .map(|k| {
                let drive = drive.clone();
                let input = 1_000 * (round * 8 + k);
                tokio::spawn(async move {
                    let results = drive
                        .invoke(start)
                        .input(EventInput::from_input(input))
                        .await
                        .unwrap();
                    (input, results.count(sink), results.get(start).copied())
                })
            })
            .collect();
        let mut inputs = Vec::new();
        for run in runs {
            let (input, count, start_value) = run.await.unwrap();
            assert_eq!(count, 1, "input {input}: the join fired once");
            assert_eq!(
                start_value,
                Some(input),
                "its own start value, not another run's"
            );
            inputs.push(input);
        }
        let mut calls = std::mem::take(&mut *seen.lock().unwrap());
        calls.sort();
        let mut expected: Vec<Vec<i64>> = inputs
            .iter()
            .map(|&input| (0..width).map(|i| input + i).collect())
            .collect();
        expected.sort();
        assert_eq!(
            calls, expected,
            "round {round}: each join saw its own run's members"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ladder_of_joins_fires_each_join_once_per_run() {
    // start → (l0, r0) → j0 → (l1, r1) → j1 → … : 300 joins of two members that end
    // together. Each member adds 1 to what it got, each join averages its two members:
    // join k is worth 2 + k only if it got both of its members' values.
    let depth = 300;
    let mut b = DriveBuilder::new();
    let start = b.event("start", || async { Flow::from(1_i64) });
    let plus_one = |input: EventInput| async move {
        let got = input
            .results()
            .iter()
            .next()
            .and_then(|r| r.value::<i64>().copied());
        Flow::from(got.unwrap_or(-1_000_000) + 1)
    };
    let mut previous = start;
    let mut joins = Vec::new();
    for level in 0..depth {
        let left = b.event(format!("l{level}"), plus_one);
        let right = b.event(format!("r{level}"), plus_one);
        b.listen(left, Group::new([previous]));
        b.listen(right, Group::new([previous]));
        let join = b.event(format!("j{level}"), |input: EventInput| async move {
            let values: Vec<i64> = input
                .results()
                .iter()
                .map(|r| r.value::<i64>().copied().unwrap_or(-1_000_000))
                .collect();
            Flow::from(values.iter().sum::<i64>() / 2)
        });
        b.listen(join, Group::new([left, right]));
        joins.push(join);
        previous = join;
    }
    let drive = b.build().unwrap();
    for _ in 0..20 {
        let results = drive.invoke(start).await.unwrap();
        for (level, &join) in joins.iter().enumerate() {
            assert_eq!(results.count(join), 1, "join {level} fired once");
            assert_eq!(
                results.get(join).copied(),
                Some(2 + level as i64),
                "join {level}"
            );
        }
    }
}
