//! The worked examples of SEMANTICS.md, run through the macros and the async runner: what
//! every event received (group name, behavior, results in group order with their values)
//! and how many times each ran.
//!
//! Every test has its events in its own module: `Drive::new()` collects every event of this
//! binary, and each test starts its run at its own start event.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use drive_flow::prelude::*;

/// One result an event received: the member's id, how its latest run ended, its `i32` value.
type Got = (String, OutcomeKind, Option<i32>);

/// What one call of an event received.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    event: &'static str,
    group: String,
    behavior: Behavior,
    results: Vec<Got>,
}

/// The run's context: every call of every event, in the order the calls started.
#[derive(Default)]
struct Log(Mutex<Vec<Seen>>);

impl Log {
    fn record(&self, event: &'static str, input: &EventInput) {
        let results = input
            .results()
            .iter()
            .map(|r| (r.event().to_string(), r.kind(), r.value::<i32>().copied()))
            .collect();
        self.0.lock().unwrap().push(Seen {
            event,
            group: input.group_name().to_string(),
            behavior: input.behavior(),
            results,
        });
    }

    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// The calls of one event, in the order they started.
    fn of(&self, event: &str) -> Vec<Seen> {
        self.all()
            .into_iter()
            .filter(|s| s.event == event)
            .collect()
    }
}

fn seen(event: &'static str, group: &str, behavior: Behavior, results: &[(&str, i32)]) -> Seen {
    Seen {
        event,
        group: group.to_string(),
        behavior,
        results: results
            .iter()
            .map(|(id, v)| (id.to_string(), OutcomeKind::Value, Some(*v)))
            .collect(),
    }
}

/// Run the program's drive from `start` with a fresh [`Log`] as its context.
async fn run_logged(start: impl drive_flow::Event) -> (std::sync::Arc<Log>, Results) {
    let log = std::sync::Arc::new(Log::default());
    let results = Drive::new()
        .unwrap()
        .invoke(start)
        .context_arc(log.clone())
        .await
        .unwrap();
    (log, results)
}

fn got(id: &str, kind: OutcomeKind, value: Option<i32>) -> Got {
    (id.to_string(), kind, value)
}

/// chain a → b → c: b gets group "0", Dispatch, {a: 1}; c gets {b: 2}.
mod chain {
    use super::*;

    #[event]
    async fn a(input: EventInput, log: Context<Log>) -> i32 {
        log.record("a", &input);
        1
    }

    #[listen(a)]
    async fn b(input: EventInput, log: Context<Log>) -> i32 {
        log.record("b", &input);
        assert_eq!(input.get(a), Some(&1));
        2
    }

    #[listen(b)]
    async fn c(input: EventInput, log: Context<Log>) -> i32 {
        log.record("c", &input);
        input.get(b).copied().unwrap_or(0) + 1
    }

    #[tokio::test]
    async fn each_event_gets_the_previous_result() {
        let (log, results) = run_logged(a).await;
        assert_eq!(
            log.all(),
            vec![
                seen("a", "user_input", Behavior::Input, &[]),
                seen("b", "0", Behavior::Dispatch, &[("semantics::chain::a", 1)]),
                seen("c", "0", Behavior::Dispatch, &[("semantics::chain::b", 2)]),
            ]
        );
        assert_eq!(results.get(a), Some(&1));
        assert_eq!(results.get(b), Some(&2));
        assert_eq!(results.get(c), Some(&3));
        assert_eq!(
            (results.count(a), results.count(b), results.count(c)),
            (1, 1, 1)
        );
        assert_eq!(results.len(), 3);
    }
}

/// fan-out: b and c both listen to [a]; both get {a: 1} and run at the same time.
mod fan_out {
    use super::*;
    use std::sync::Arc;

    #[derive(Default)]
    struct Spans(Mutex<Vec<(&'static str, Instant, Instant)>>);

    #[derive(Default)]
    struct Ctx {
        log: Log,
        spans: Spans,
    }

    async fn sleep_and_note(name: &'static str, input: &EventInput, ctx: &Ctx) {
        ctx.log.record(name, input);
        let begun = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        ctx.spans
            .0
            .lock()
            .unwrap()
            .push((name, begun, Instant::now()));
    }

    #[event]
    async fn a(input: EventInput, ctx: Context<Ctx>) -> i32 {
        ctx.log.record("a", &input);
        1
    }

    #[listen(a)]
    async fn b(input: EventInput, ctx: Context<Ctx>) {
        sleep_and_note("b", &input, &ctx).await;
    }

    #[listen(a)]
    async fn c(input: EventInput, ctx: Context<Ctx>) {
        sleep_and_note("c", &input, &ctx).await;
    }

    #[tokio::test]
    async fn listeners_of_one_event_run_concurrently() {
        let ctx = Arc::new(Ctx::default());
        let begun = Instant::now();
        let results = Drive::new()
            .unwrap()
            .invoke(a)
            .context_arc(ctx.clone())
            .await
            .unwrap();
        let elapsed = begun.elapsed();

        let from_a = [("semantics::fan_out::a", 1)];
        assert_eq!(
            ctx.log.of("b"),
            [seen("b", "0", Behavior::Dispatch, &from_a)]
        );
        assert_eq!(
            ctx.log.of("c"),
            [seen("c", "0", Behavior::Dispatch, &from_a)]
        );
        assert_eq!((results.count(b), results.count(c)), (1, 1));

        // Two 200 ms sleeps that overlap: well under 400 ms in all, and each began before
        // the other ended.
        assert!(elapsed < Duration::from_millis(350), "took {elapsed:?}");
        let spans = ctx.spans.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 2);
        let (_, begin0, end0) = spans[0];
        let (_, begin1, end1) = spans[1];
        assert!(begin0 < end1 && begin1 < end0, "no overlap: {spans:?}");
    }
}

/// join: c listens to [a, b] where b sleeps: c runs once, with {a: 1, b: 2}.
mod join {
    use super::*;

    #[event]
    async fn start() {}

    #[listen(start)]
    async fn a() -> i32 {
        1
    }

    #[listen(start)]
    async fn b() -> i32 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        2
    }

    #[listen(a, b)]
    async fn c(input: EventInput, log: Context<Log>) -> i32 {
        log.record("c", &input);
        input.get(a).unwrap() + input.get(b).unwrap()
    }

    #[tokio::test]
    async fn a_join_runs_once_with_every_member() {
        let (log, results) = run_logged(start).await;
        assert_eq!(
            log.all(),
            [seen(
                "c",
                "0",
                Behavior::Dispatch,
                &[("semantics::join::a", 1), ("semantics::join::b", 2)]
            )]
        );
        assert_eq!(results.count(c), 1);
        assert_eq!(results.get(c), Some(&3));
    }
}

/// two groups: c listens to [b, a] (nearest, "0") and to [a] ("1"): c runs twice, first
/// with group "1" {a: 1}, then with group "0" {b: 2, a: 1}.
mod two_groups {
    use super::*;

    #[event]
    async fn a() -> i32 {
        1
    }

    #[listen(a)]
    async fn b() -> i32 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        2
    }

    #[listen(a)]
    #[listen(b, a)]
    async fn c(input: EventInput, log: Context<Log>) {
        log.record("c", &input);
    }

    #[tokio::test]
    async fn groups_are_named_nearest_first_and_fire_independently() {
        let (log, results) = run_logged(a).await;
        assert_eq!(
            log.all(),
            [
                seen(
                    "c",
                    "1",
                    Behavior::Dispatch,
                    &[("semantics::two_groups::a", 1)]
                ),
                seen(
                    "c",
                    "0",
                    Behavior::Dispatch,
                    &[
                        ("semantics::two_groups::b", 2),
                        ("semantics::two_groups::a", 1)
                    ]
                ),
            ]
        );
        assert_eq!(results.count(c), 2);
    }
}

/// A group named `""` takes its default name, as in Python (`name or str(index)`): c's
/// nearest group, named `""`, is `"0"`; its next, named `""` too, is `"1"`.
mod empty_group_name {
    use super::*;

    #[event]
    async fn a() -> i32 {
        1
    }

    #[listen(a)]
    async fn b() -> i32 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        2
    }

    #[listen(a, name = "")]
    #[listen(b, name = "")]
    async fn c(input: EventInput, log: Context<Log>) {
        log.record("c", &input);
    }

    #[tokio::test]
    async fn is_the_default_name() {
        let (log, _) = run_logged(a).await;
        assert_eq!(
            log.all(),
            [
                seen(
                    "c",
                    "1",
                    Behavior::Dispatch,
                    &[("semantics::empty_group_name::a", 1)]
                ),
                seen(
                    "c",
                    "0",
                    Behavior::Dispatch,
                    &[("semantics::empty_group_name::b", 2)]
                ),
            ]
        );
    }
}

/// goto: a returns 1; b (listens a) returns goto([a], 2); a runs again with group "$goto",
/// Goto, {b: 2}, and aborts; c (listens b) never runs; a ran twice.
mod goto {
    use super::*;

    #[event]
    async fn a(input: EventInput, log: Context<Log>) -> Flow<i32> {
        log.record("a", &input);
        match input.behavior() {
            Behavior::Goto => {
                assert_eq!(input.get(b), Some(&2), "the payload, typed");
                Flow::abort()
            }
            _ => Flow::from(1),
        }
    }

    #[listen(a)]
    async fn b(input: EventInput, log: Context<Log>) -> Flow<i32> {
        log.record("b", &input);
        Flow::goto([a], 2)
    }

    #[listen(b)]
    async fn c(input: EventInput, log: Context<Log>) {
        log.record("c", &input);
    }

    #[tokio::test]
    async fn goto_runs_the_target_with_the_payload_and_nothing_else() {
        let (log, results) = run_logged(a).await;
        assert_eq!(
            log.all(),
            [
                seen("a", "user_input", Behavior::Input, &[]),
                seen("b", "0", Behavior::Dispatch, &[("semantics::goto::a", 1)]),
                seen("a", "$goto", Behavior::Goto, &[("semantics::goto::b", 2)]),
            ]
        );
        assert_eq!(results.count(a), 2);
        assert_eq!(results.count(b), 1);
        assert_eq!(results.count(c), 0);
        assert_eq!(results.outcome(a), Some(OutcomeKind::Abort));
        assert_eq!(results.outcome(b), Some(OutcomeKind::Goto));
        assert_eq!(results.outcome(c), None);
        assert_eq!(results.get(a), None);
        assert_eq!(results.get(b), None, "a goto leaves no value");
    }
}

/// abort: a aborts, so b (listens a) never runs.
mod abort {
    use super::*;

    #[event]
    async fn a() -> Flow<i32> {
        Flow::abort()
    }

    #[listen(a)]
    async fn b() -> i32 {
        2
    }

    #[tokio::test]
    async fn an_abort_ends_the_branch() {
        let results = Drive::new().unwrap().invoke(a).await.unwrap();
        assert_eq!(results.count(a), 1);
        assert_eq!(results.outcome(a), Some(OutcomeKind::Abort));
        assert_eq!(results.count(b), 0);
        assert_eq!(results.outcome(b), None);
        assert_eq!(results.len(), 1);
    }
}

/// retrigger, run in a loop: on_start → a (short) and b (long); c listens [a, b] with `any`,
/// d listens [a, b] with `all` and gotos on_start. First turn: a, b, c, d. Every later turn:
/// a, c, b, c, d.
mod retrigger {
    use super::*;
    use std::sync::Arc;

    const TURNS: i32 = 4;

    #[derive(Default)]
    struct Ctx {
        log: Log,
        /// Completions, in order: the event's name and the turn it belongs to.
        done: Mutex<Vec<(&'static str, i32)>>,
    }

    impl Ctx {
        fn done(&self, name: &'static str, turn: i32) {
            self.done.lock().unwrap().push((name, turn));
        }
    }

    #[event]
    async fn on_start(input: EventInput, ctx: Context<Ctx>) -> i32 {
        let turn = match input.behavior() {
            Behavior::Goto => input.get(d).copied().unwrap(),
            _ => 1,
        };
        ctx.done("on_start", turn);
        turn
    }

    #[listen(on_start)]
    async fn a(input: EventInput, ctx: Context<Ctx>) -> i32 {
        let turn = *input.get(on_start).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        ctx.done("a", turn);
        turn
    }

    #[listen(on_start)]
    async fn b(input: EventInput, ctx: Context<Ctx>) -> i32 {
        let turn = *input.get(on_start).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        ctx.done("b", turn);
        turn
    }

    #[listen(a, b, retrigger = any)]
    async fn c(input: EventInput, ctx: Context<Ctx>) {
        ctx.log.record("c", &input);
        ctx.done("c", *input.get(a).unwrap());
    }

    #[listen(a, b, retrigger = all)]
    async fn d(input: EventInput, ctx: Context<Ctx>) -> Flow<i32> {
        ctx.log.record("d", &input);
        // c starts at the same moment (same completion of b): let it finish first, so
        // that the order of completions is fixed.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let turn = *input.get(a).unwrap();
        ctx.done("d", turn);
        if turn < TURNS {
            Flow::goto([on_start], turn + 1)
        } else {
            Flow::from(turn)
        }
    }

    fn ab(turn_a: i32, turn_b: i32) -> Vec<Got> {
        vec![
            got("semantics::retrigger::a", OutcomeKind::Value, Some(turn_a)),
            got("semantics::retrigger::b", OutcomeKind::Value, Some(turn_b)),
        ]
    }

    #[tokio::test]
    async fn any_fires_on_each_fresh_member_all_once_both_are_fresh() {
        // Twice on one drive: the second run reuses the first one's per-run buffers, which
        // must have been reset (no stale "delivered" mark, no count carried over).
        let drive = Drive::new().unwrap();
        for round in 1..=2 {
            println!("round {round}");
            check_one_run(&drive).await;
        }
    }

    async fn check_one_run(drive: &Drive) {
        let ctx = Arc::new(Ctx::default());
        let results = drive
            .invoke(on_start)
            .context_arc(ctx.clone())
            .await
            .unwrap();

        let mut expected = vec![("on_start", 1), ("a", 1), ("b", 1), ("c", 1), ("d", 1)];
        for turn in 2..=TURNS {
            expected.extend([
                ("on_start", turn),
                ("a", turn),
                ("c", turn),
                ("b", turn),
                ("c", turn),
                ("d", turn),
            ]);
        }
        assert_eq!(*ctx.done.lock().unwrap(), expected);

        // What c and d received: c sees the fresh a with the previous b, then both fresh.
        let mut c_inputs = vec![ab(1, 1)];
        for turn in 2..=TURNS {
            c_inputs.extend([ab(turn, turn - 1), ab(turn, turn)]);
        }
        let d_inputs: Vec<_> = (1..=TURNS).map(|turn| ab(turn, turn)).collect();
        let inputs = |name| -> Vec<Vec<Got>> {
            ctx.log
                .of(name)
                .into_iter()
                .map(|s| {
                    assert_eq!((s.group.as_str(), s.behavior), ("0", Behavior::Dispatch));
                    s.results
                })
                .collect()
        };
        assert_eq!(inputs("c"), c_inputs);
        assert_eq!(inputs("d"), d_inputs);

        let turns = TURNS as u32;
        assert_eq!(results.count(on_start), turns);
        assert_eq!((results.count(a), results.count(b)), (turns, turns));
        assert_eq!(results.count(c), 2 * turns - 1);
        assert_eq!(results.count(d), turns);
        assert_eq!(results.get(d), Some(&TURNS));
    }
}

/// self-loop de-duplication: start → a and b; a also listens to [a] and aborts on its third
/// call; c listens [a, b] (`all`): c runs exactly once and a exactly three times.
mod self_loop {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Ctx {
        log: Log,
        calls_of_a: AtomicI32,
    }

    #[event]
    async fn start() -> i32 {
        0
    }

    #[listen(a, name = "self")]
    #[listen(start)]
    async fn a(input: EventInput, ctx: Context<Ctx>) -> Flow<i32> {
        ctx.log.record("a", &input);
        // b is done long before a's first call ends: c fires on a's first value.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let call = ctx.calls_of_a.fetch_add(1, Ordering::SeqCst) + 1;
        if call == 3 {
            Flow::abort()
        } else {
            Flow::from(call)
        }
    }

    #[listen(start)]
    async fn b() -> i32 {
        10
    }

    #[listen(a, b)]
    async fn c(input: EventInput, ctx: Context<Ctx>) {
        ctx.log.record("c", &input);
    }

    #[tokio::test]
    async fn a_self_loop_does_not_retrigger_a_join_with_a_stale_member() {
        let ctx = Arc::new(Ctx::default());
        let results = Drive::new()
            .unwrap()
            .invoke(start)
            .context_arc(ctx.clone())
            .await
            .unwrap();
        assert_eq!(
            ctx.log.of("a"),
            [
                seen(
                    "a",
                    "0",
                    Behavior::Dispatch,
                    &[("semantics::self_loop::start", 0)]
                ),
                seen(
                    "a",
                    "self",
                    Behavior::Dispatch,
                    &[("semantics::self_loop::a", 1)]
                ),
                seen(
                    "a",
                    "self",
                    Behavior::Dispatch,
                    &[("semantics::self_loop::a", 2)]
                ),
            ]
        );
        assert_eq!(
            ctx.log.of("c"),
            [seen(
                "c",
                "0",
                Behavior::Dispatch,
                &[
                    ("semantics::self_loop::a", 1),
                    ("semantics::self_loop::b", 10)
                ]
            )]
        );
        assert_eq!(results.count(a), 3);
        assert_eq!(results.count(c), 1);
        assert_eq!(results.outcome(a), Some(OutcomeKind::Abort));
    }
}

/// Duplicate groups are recognised by their ordered member list only.
mod duplicates {
    use super::*;
    use std::sync::Arc;

    #[event]
    async fn a() -> i32 {
        1
    }

    #[listen(a)]
    async fn b() -> i32 {
        2
    }

    /// The same group twice: one is kept.
    #[listen(a)]
    #[listen(a)]
    async fn same_twice(input: EventInput, log: Context<Log>) {
        log.record("same_twice", &input);
    }

    /// A second `[a]` with another name (and mode) is dropped: the nearest one is kept.
    #[listen(a, name = "other", retrigger = any)]
    #[listen(a)]
    async fn renamed(input: EventInput, log: Context<Log>) {
        log.record("renamed", &input);
    }

    /// `[a, b]` and `[b, a]` are two groups.
    #[listen(b, a)]
    #[listen(a, b)]
    async fn both_orders(input: EventInput, log: Context<Log>) {
        log.record("both_orders", &input);
    }

    /// A member repeated inside one group counts once.
    #[listen(a, b, a)]
    async fn repeated(input: EventInput, log: Context<Log>) {
        log.record("repeated", &input);
    }

    #[tokio::test]
    async fn a_group_is_its_ordered_member_list() {
        let log = Arc::new(Log::default());
        let drive = Drive::new().unwrap();
        let results = drive.invoke(a).context_arc(log.clone()).await.unwrap();
        let from_a = [("semantics::duplicates::a", 1)];
        assert_eq!(
            log.of("same_twice"),
            [seen("same_twice", "0", Behavior::Dispatch, &from_a)]
        );
        assert_eq!(
            log.of("renamed"),
            [seen("renamed", "0", Behavior::Dispatch, &from_a)]
        );
        let mut calls = log.of("both_orders");
        calls.sort_by(|x, y| x.group.cmp(&y.group));
        assert_eq!(
            calls,
            [
                seen(
                    "both_orders",
                    "0",
                    Behavior::Dispatch,
                    &[
                        ("semantics::duplicates::a", 1),
                        ("semantics::duplicates::b", 2)
                    ]
                ),
                seen(
                    "both_orders",
                    "1",
                    Behavior::Dispatch,
                    &[
                        ("semantics::duplicates::b", 2),
                        ("semantics::duplicates::a", 1)
                    ]
                ),
            ]
        );
        assert_eq!(
            log.of("repeated"),
            [seen(
                "repeated",
                "0",
                Behavior::Dispatch,
                &[
                    ("semantics::duplicates::a", 1),
                    ("semantics::duplicates::b", 2)
                ]
            )]
        );
        assert_eq!(results.count(same_twice), 1);
        assert_eq!(results.count(renamed), 1);
        assert_eq!(results.count(both_orders), 2);
        assert_eq!(results.count(repeated), 1);

        // The kept groups, as the tree shows them.
        let m = "semantics::duplicates";
        assert_eq!(
            drive.debug_string(renamed),
            format!("{m}::renamed\n└─ <0>\n    └─ {m}::a\n")
        );
        assert_eq!(
            drive.debug_string(repeated),
            format!(
                "{m}::repeated\n└─ <0>\n    ├─ {m}::a\n    └─ {m}::b\n       └─ <0>\n           └─ {m}::a\n"
            )
        );
    }
}

/// A goto target runs with "$goto" whatever groups it listens to.
mod goto_target {
    use super::*;

    #[event]
    async fn begin() -> i32 {
        1
    }

    /// Never runs in this test.
    #[event]
    async fn never() -> i32 {
        0
    }

    /// Listens to [begin]; also a goto target.
    #[listen(begin)]
    async fn target(input: EventInput, log: Context<Log>) -> Flow<i32> {
        log.record("target", &input);
        match input.behavior() {
            Behavior::Goto => Flow::abort(),
            _ => Flow::from(2),
        }
    }

    /// Listens to a group that never becomes ready; runs only through the goto.
    #[listen(never, begin)]
    async fn lonely(input: EventInput, log: Context<Log>) {
        log.record("lonely", &input);
    }

    #[listen(target)]
    async fn jumper() -> Flow<i32> {
        Flow::goto((target, lonely), 5)
    }

    #[tokio::test]
    async fn a_goto_target_gets_the_goto_group_whatever_it_listens_to() {
        let (log, results) = run_logged(begin).await;
        let from_jumper = [("semantics::goto_target::jumper", 5)];
        assert_eq!(
            log.of("target"),
            [
                seen(
                    "target",
                    "0",
                    Behavior::Dispatch,
                    &[("semantics::goto_target::begin", 1)]
                ),
                seen("target", "$goto", Behavior::Goto, &from_jumper),
            ]
        );
        assert_eq!(
            log.of("lonely"),
            [seen("lonely", "$goto", Behavior::Goto, &from_jumper)]
        );
        assert_eq!(results.count(target), 2);
        assert_eq!(results.count(lonely), 1);
        assert_eq!(results.count(jumper), 1);
        assert_eq!(results.count(never), 0);
    }
}

/// A join member whose latest outcome is a goto or an abort is still listed in the join's
/// input; typed access gives nothing; the input and the results say how it ended.
mod join_with_markers {
    use super::*;

    #[event]
    async fn begin() {}

    #[listen(begin)]
    async fn x() -> Flow<i32> {
        Flow::abort()
    }

    #[listen(begin)]
    async fn y() -> Flow<i32> {
        Flow::goto([sink], 7)
    }

    #[listen(begin)]
    async fn z() -> i32 {
        // The last member to finish: the one whose value fires the join.
        tokio::time::sleep(Duration::from_millis(50)).await;
        3
    }

    #[event]
    async fn sink(input: EventInput, log: Context<Log>) {
        log.record("sink", &input);
    }

    #[listen(x, y, z)]
    async fn joined(input: EventInput, log: Context<Log>) {
        log.record("joined", &input);
        assert_eq!(input.get(x), None);
        assert_eq!(input.get(y), None);
        assert_eq!(input.get(z), Some(&3));
        assert_eq!(input.results().len(), 3);
        let first = input.results().iter().next().unwrap();
        assert!(first.is(x) && !first.is(y));
    }

    #[tokio::test]
    async fn goto_and_abort_members_count_in_a_join() {
        let (log, results) = run_logged(begin).await;
        assert_eq!(
            log.of("joined"),
            [Seen {
                event: "joined",
                group: "0".into(),
                behavior: Behavior::Dispatch,
                results: vec![
                    got("semantics::join_with_markers::x", OutcomeKind::Abort, None),
                    got("semantics::join_with_markers::y", OutcomeKind::Goto, None),
                    got(
                        "semantics::join_with_markers::z",
                        OutcomeKind::Value,
                        Some(3)
                    ),
                ],
            }]
        );
        assert_eq!(
            log.of("sink"),
            [seen(
                "sink",
                "$goto",
                Behavior::Goto,
                &[("semantics::join_with_markers::y", 7)]
            )]
        );
        assert_eq!(results.count(joined), 1);
        assert_eq!(results.outcome(x), Some(OutcomeKind::Abort));
        assert_eq!(results.outcome(y), Some(OutcomeKind::Goto));
        assert_eq!(results.outcome(z), Some(OutcomeKind::Value));
        assert_eq!((results.get(x), results.get(y)), (None, None));
        assert_eq!(results.get(z), Some(&3));
    }
}

/// In `all` mode an abort of a member is a fresh completion too: it lets the join fire again,
/// with that member listed as aborted.
mod fresh_abort {
    use super::*;

    #[event]
    async fn begin(input: EventInput) -> i32 {
        match input.behavior() {
            Behavior::Goto => 2,
            _ => 1,
        }
    }

    #[listen(begin)]
    async fn a(input: EventInput) -> Flow<i32> {
        match input.get(begin) {
            Some(1) => Flow::from(1),
            _ => Flow::abort(),
        }
    }

    #[listen(begin)]
    async fn b(input: EventInput) -> i32 {
        // Always the last member to finish.
        tokio::time::sleep(Duration::from_millis(50)).await;
        *input.get(begin).unwrap() * 10
    }

    #[listen(a, b)]
    async fn c(input: EventInput, log: Context<Log>) -> Flow<i32> {
        log.record("c", &input);
        match input.get(b) {
            Some(10) => Flow::goto([begin], 0),
            _ => Flow::from(0),
        }
    }

    #[tokio::test]
    async fn an_abort_refreshes_a_member_of_an_all_group() {
        let (log, results) = run_logged(begin).await;
        let a_id = "semantics::fresh_abort::a";
        let b_id = "semantics::fresh_abort::b";
        assert_eq!(
            log.of("c"),
            [
                seen("c", "0", Behavior::Dispatch, &[(a_id, 1), (b_id, 10)]),
                Seen {
                    event: "c",
                    group: "0".into(),
                    behavior: Behavior::Dispatch,
                    results: vec![
                        got(a_id, OutcomeKind::Abort, None),
                        got(b_id, OutcomeKind::Value, Some(20)),
                    ],
                },
            ]
        );
        assert_eq!(results.count(begin), 2);
        assert_eq!(results.count(c), 2);
    }
}

/// One completion can queue the same listener once per matching group; the calls overlap,
/// and the listener's latest outcome is the call that finished last.
mod overlapping_calls {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Ctx {
        log: Log,
        running: AtomicUsize,
        peak: AtomicUsize,
    }

    #[event]
    async fn a() -> i32 {
        1
    }

    #[listen(a)]
    #[listen(a, a, name = "twice")]
    async fn b() -> i32 {
        2
    }

    /// Both groups become ready when `b` finishes.
    #[listen(b)]
    #[listen(a, b)]
    async fn x(input: EventInput, ctx: Context<Ctx>) -> i32 {
        ctx.log.record("x", &input);
        let now = ctx.running.fetch_add(1, Ordering::SeqCst) + 1;
        ctx.peak.fetch_max(now, Ordering::SeqCst);
        // The call through group "0" ends last.
        let (sleep, value) = match input.group_name() {
            "0" => (150, 100),
            _ => (20, 200),
        };
        tokio::time::sleep(Duration::from_millis(sleep)).await;
        ctx.running.fetch_sub(1, Ordering::SeqCst);
        value
    }

    #[tokio::test]
    async fn the_latest_outcome_is_the_call_that_finished_last() {
        let ctx = Arc::new(Ctx::default());
        let results = Drive::new()
            .unwrap()
            .invoke(a)
            .context_arc(ctx.clone())
            .await
            .unwrap();
        let mut calls = ctx.log.of("x");
        calls.sort_by(|p, q| p.group.cmp(&q.group));
        let a_id = "semantics::overlapping_calls::a";
        let b_id = "semantics::overlapping_calls::b";
        assert_eq!(
            calls,
            [
                seen("x", "0", Behavior::Dispatch, &[(a_id, 1), (b_id, 2)]),
                seen("x", "1", Behavior::Dispatch, &[(b_id, 2)]),
            ]
        );
        assert_eq!(ctx.peak.load(Ordering::SeqCst), 2, "the two calls overlap");
        assert_eq!(results.count(x), 2);
        assert_eq!(results.get(x), Some(&100));
        // `[a, a]` is `[a]` again: b ran once.
        assert_eq!(results.count(b), 1);
    }
}

/// The start event's input: `EventInput::from_input` data, or nothing; and task ids.
mod start_input {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    #[derive(Default)]
    struct Ctx {
        log: Log,
        user: Mutex<Option<String>>,
        task_ids: Mutex<Vec<u64>>,
    }

    #[event]
    async fn begin(input: EventInput, ctx: Context<Ctx>) -> usize {
        ctx.log.record("begin", &input);
        ctx.task_ids.lock().unwrap().push(input.task_id());
        let data = input.user::<String>().cloned();
        assert_eq!(input.user::<u8>(), None, "wrong type: nothing");
        let len = data.as_ref().map_or(0, String::len);
        *ctx.user.lock().unwrap() = data;
        len
    }

    #[listen(begin)]
    async fn left(input: EventInput, ctx: Context<Ctx>) {
        ctx.task_ids.lock().unwrap().push(input.task_id());
        assert_eq!(input.user::<String>(), None);
    }

    #[listen(begin)]
    async fn right(input: EventInput, ctx: Context<Ctx>) {
        ctx.task_ids.lock().unwrap().push(input.task_id());
    }

    #[tokio::test]
    async fn the_start_event_gets_the_user_input() {
        let ctx = Arc::new(Ctx::default());
        let drive = Drive::new().unwrap();
        let results = drive
            .invoke(begin)
            .input(EventInput::from_input(String::from("3+3*2")))
            .context_arc(ctx.clone())
            .await
            .unwrap();
        assert_eq!(results.get(begin), Some(&5));
        assert_eq!(ctx.user.lock().unwrap().as_deref(), Some("3+3*2"));
        assert_eq!(
            ctx.log.of("begin"),
            [seen("begin", "user_input", Behavior::Input, &[])]
        );
        let ids = ctx.task_ids.lock().unwrap().clone();
        assert_eq!(ids.len(), 3);
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            3,
            "task ids are unique within a run: {ids:?}"
        );

        // Without an input: Behavior::Input, "user_input", no data.
        let ctx = Arc::new(Ctx::default());
        let results = drive.invoke(begin).context_arc(ctx.clone()).await.unwrap();
        assert_eq!(results.get(begin), Some(&0));
        assert_eq!(*ctx.user.lock().unwrap(), None);
        assert_eq!(
            ctx.log.of("begin"),
            [seen("begin", "user_input", Behavior::Input, &[])]
        );
    }
}

/// A loop of many turns through goto: every turn is one completion, nothing piles up.
mod long_loop {
    use super::*;

    const TURNS: u32 = 10_000;

    #[event]
    async fn turn(input: EventInput) -> Flow<u32> {
        let n = input.get(turn).copied().unwrap_or(0) + 1;
        if n < TURNS {
            Flow::goto([turn], n)
        } else {
            Flow::from(n)
        }
    }

    /// Listens to `turn`: only its final value, the goto turns dispatch nothing.
    #[listen(turn)]
    async fn after(input: EventInput) -> u32 {
        *input.get(turn).unwrap()
    }

    #[tokio::test]
    async fn ten_thousand_turns() {
        let results = Drive::new().unwrap().invoke(turn).await.unwrap();
        assert_eq!(results.count(turn), TURNS);
        assert_eq!(results.get(turn), Some(&TURNS));
        assert_eq!(results.count(after), 1);
        assert_eq!(results.get(after), Some(&TURNS));
    }
}
