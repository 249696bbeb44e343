//! Completions on several threads at once share no run-wide lock: they meet only at the
//! state they share (an event, a join). These tests make them meet as often as they can:
//! empty bodies on a 4-thread runtime, so that the members of a join end together on
//! different threads, and runs of one drive at once, which take their state from the
//! same pool. Every join must fire exactly as SEMANTICS says, with exactly its members'
//! values, in group order; every run must see only its own values.

use std::sync::{Arc, Mutex};

use drive_flow::prelude::*;
use drive_flow::{Drive, DriveBuilder, Group, Handle, Retrigger};

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

/// `width` members of empty bodies that end together on four threads, joined by a listener
/// that does not read them (`all` and `any`): its join keeps no outcome, and up to 24
/// members its state is one word updated without a lock (25 and 64: the locked state).
/// Each of 1 000 runs of one drive (which reuses the state of the runs before it) fires the
/// join once, after every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_that_does_not_read_its_members_fires_once_when_they_end_together() {
    for width in [2, 3, 24, 25, 64] {
        for retrigger in [Retrigger::All, Retrigger::Any] {
            let mut b = DriveBuilder::new();
            let start = b.event("start", || async {});
            let members: Vec<Handle<()>> = (0..width)
                .map(|i| {
                    let member = b.event(format!("m{i}"), || async {});
                    b.listen(member, Group::new([start]));
                    member
                })
                .collect();
            let sink = b.event("sink", || async {});
            b.listen(sink, Group::new(members.clone()).retrigger(retrigger));
            let drive = b.build().unwrap();
            for inline in [false, true] {
                for run in 0..1_000 {
                    let invoke = drive.invoke(start);
                    let invoke = if inline { invoke.inline() } else { invoke };
                    let results = invoke.await.unwrap();
                    let how = format!("{width} members, {retrigger:?}, inline {inline}, run {run}");
                    assert_eq!(results.count(sink), 1, "{how}: the join fired once");
                    assert!(
                        members.iter().all(|&m| results.count(m) == 1),
                        "{how}: every member ran once"
                    );
                }
            }
        }
    }
}

/// start → (l0, r0) → j0 → (l1, r1) → j1 → … : `depth` joins of two members that end
/// together. Each member adds 1 to what it got; a join that reads its input averages its
/// two members (join k is worth 2 + k only if it got both values), one that does not is
/// worth 2 + k all the same (it keeps no outcome). `retrigger`: the joins' rule.
fn ladder(
    depth: usize,
    joins_read: bool,
    retrigger: Retrigger,
) -> (Drive, Handle<i64>, Vec<Handle<i64>>) {
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
        let join = if joins_read {
            b.event(format!("j{level}"), |input: EventInput| async move {
                let values: Vec<i64> = input
                    .results()
                    .iter()
                    .map(|r| r.value::<i64>().copied().unwrap_or(-1_000_000))
                    .collect();
                Flow::from(values.iter().sum::<i64>() / 2)
            })
        } else {
            let worth = 2 + level as i64;
            b.event(
                format!("j{level}"),
                move || async move { Flow::from(worth) },
            )
        };
        b.listen(join, Group::new([left, right]).retrigger(retrigger));
        joins.push(join);
        previous = join;
    }
    (b.build().unwrap(), start, joins)
}

/// Spawned and inline, with joins that read their members' outcomes and joins that do
/// not, firing on `all` or `any`: every run of the drive (which reuses the state of the
/// runs before it) fires each join once, after both of its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ladder_of_joins_fires_each_join_once_per_run() {
    for (joins_read, retrigger) in [
        (true, Retrigger::All),
        (false, Retrigger::All),
        (false, Retrigger::Any),
    ] {
        let (drive, start, joins) = ladder(300, joins_read, retrigger);
        for inline in [false, true] {
            for _ in 0..20 {
                let invoke = drive.invoke(start);
                let invoke = if inline { invoke.inline() } else { invoke };
                let results = invoke.await.unwrap();
                for (level, &join) in joins.iter().enumerate() {
                    let how =
                        format!("join {level}, inline {inline}, reads {joins_read}, {retrigger:?}");
                    assert_eq!(results.count(join), 1, "{how} fired once");
                    assert_eq!(results.get(join).copied(), Some(2 + level as i64), "{how}");
                }
            }
        }
    }
}
