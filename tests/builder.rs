//! The programmatic builder: graphs made of closures and groups, without macros, and mixed
//! with `#[event]` functions; every `BuildError`, naming the events it concerns.

use std::sync::{Arc, Mutex};

use drive_flow::prelude::*;
use drive_flow::{BuildError, DriveBuilder, EventRef, Group};

/// What one call received: event, group name, behavior, results (member id, `i32` value).
type Call = (&'static str, String, Behavior, Vec<(String, Option<i32>)>);

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Call>>>);

impl Log {
    fn record(&self, event: &'static str, input: &EventInput) {
        let results = input
            .results()
            .iter()
            .map(|r| (r.event().to_string(), r.value::<i32>().copied()))
            .collect();
        self.0.lock().unwrap().push((
            event,
            input.group_name().to_string(),
            input.behavior(),
            results,
        ));
    }

    fn of(&self, event: &str) -> Vec<Call> {
        let all = self.0.lock().unwrap();
        all.iter().filter(|c| c.0 == event).cloned().collect()
    }
}

fn call(event: &'static str, group: &str, behavior: Behavior, results: &[(&str, i32)]) -> Call {
    (
        event,
        group.to_string(),
        behavior,
        results
            .iter()
            .map(|(id, v)| (id.to_string(), Some(*v)))
            .collect(),
    )
}

#[tokio::test]
async fn a_builder_graph_runs_like_a_macro_graph() {
    let log = Log::default();
    let mut builder = DriveBuilder::new();
    let l = log.clone();
    let start = builder.event("start", move |input: EventInput| {
        let l = l.clone();
        async move {
            l.record("start", &input);
            Flow::from(String::from("go"))
        }
    });
    let hello = builder.event("hello", || async { Flow::from(1) });
    let world = builder.event("world", || async { Flow::from(2) });
    let l = log.clone();
    let adding = builder.event("adding", move |input: EventInput| {
        let l = l.clone();
        async move {
            l.record("adding", &input);
            // Typed access through the builder's handles.
            Flow::from(input.get(hello).unwrap() + input.get(world).unwrap())
        }
    });
    // Listeners may be declared before or after their members were added.
    builder.listen(adding, Group::new([hello, world]));
    builder.listen(hello, Group::new([start]));
    builder.listen(world, Group::new([start]));
    let drive = builder.build().unwrap();
    assert_eq!(drive.len(), 4);

    let results = drive.invoke(start).await.unwrap();
    assert_eq!(
        log.of("start"),
        [call("start", "user_input", Behavior::Input, &[])]
    );
    assert_eq!(
        log.of("adding"),
        [call(
            "adding",
            "0",
            Behavior::Dispatch,
            &[("hello", 1), ("world", 2)]
        )]
    );
    assert_eq!(results.get(start).map(String::as_str), Some("go"));
    assert_eq!(results.get(adding), Some(&3));
    assert_eq!(results.count(adding), 1);
    let ran: Vec<(&str, OutcomeKind)> = results.iter().collect();
    assert_eq!(
        ran,
        [
            ("start", OutcomeKind::Value),
            ("hello", OutcomeKind::Value),
            ("world", OutcomeKind::Value),
            ("adding", OutcomeKind::Value)
        ]
    );
}

#[tokio::test]
async fn a_group_named_empty_takes_its_default_name() {
    let log = Log::default();
    let mut builder = DriveBuilder::new();
    let start = builder.event("start", || async { Flow::from(1) });
    let second = builder.event("second", || async { Flow::from(2) });
    let l = log.clone();
    let listener = builder.event("listener", move |input: EventInput| {
        let l = l.clone();
        async move { l.record("listener", &input) }
    });
    builder
        .listen(second, Group::new([start]))
        .listen(listener, Group::new([start]).name("named"))
        .listen(listener, Group::new([second]).name(""));
    builder.build().unwrap().invoke(start).await.unwrap();
    let mut calls = log.of("listener");
    calls.sort_by(|p, q| p.1.cmp(&q.1));
    assert_eq!(
        calls,
        [
            call("listener", "1", Behavior::Dispatch, &[("second", 2)]),
            call("listener", "named", Behavior::Dispatch, &[("start", 1)]),
        ]
    );
}

#[tokio::test]
async fn groups_take_a_name_and_a_retrigger_mode() {
    use std::sync::atomic::{AtomicI32, Ordering};

    let log = Log::default();
    let mut builder = DriveBuilder::new();
    let start = builder.event("start", || async {});
    // x runs twice: after start, and again after y.
    let calls_of_x = Arc::new(AtomicI32::new(0));
    let x = builder.event("x", move || {
        let n = calls_of_x.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Flow::from(n) }
    });
    let y = builder.event("y", || async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        Flow::from(10)
    });
    let l = log.clone();
    let on_any = builder.event("on_any", move |input: EventInput| {
        let l = l.clone();
        async move { l.record("on_any", &input) }
    });
    let l = log.clone();
    let on_all = builder.event("on_all", move |input: EventInput| {
        let l = l.clone();
        async move { l.record("on_all", &input) }
    });
    let pair = Group::new([EventRef::from(x), y.into()])
        .name("pair")
        .retrigger(Retrigger::Any);
    assert_eq!(pair.members(), [EventRef::from(x), EventRef::from(y)]);
    builder
        .listen(x, Group::new([start]))
        .listen(x, Group::new([y]))
        .listen(y, Group::new([start]))
        .listen(on_any, Group::new([x]))
        .listen(on_any, pair)
        .listen(on_all, Group::new([x, y]).name("pair"));
    let drive = builder.build().unwrap();

    let results = drive.invoke(start).await.unwrap();
    assert_eq!(results.count(x), 2);
    // x's second value fires the `any` group again, not the `all` one (y is not fresh).
    // Calls that start together may start in any order: compare them sorted by x's value,
    // then group name.
    let mut any_calls = log.of("on_any");
    any_calls.sort_by(|p, q| (p.3[0].1, &p.1).cmp(&(q.3[0].1, &q.1)));
    assert_eq!(
        any_calls,
        [
            call("on_any", "0", Behavior::Dispatch, &[("x", 1)]),
            call("on_any", "pair", Behavior::Dispatch, &[("x", 1), ("y", 10)]),
            call("on_any", "0", Behavior::Dispatch, &[("x", 2)]),
            call("on_any", "pair", Behavior::Dispatch, &[("x", 2), ("y", 10)]),
        ]
    );
    assert_eq!(
        log.of("on_all"),
        [call(
            "on_all",
            "pair",
            Behavior::Dispatch,
            &[("x", 1), ("y", 10)]
        )]
    );
}

#[tokio::test]
async fn cycles_are_allowed() {
    // ping ⇄ pong, until pong has seen 3 pings.
    let mut builder = DriveBuilder::new();
    let start = builder.event("start", || async { Flow::from(0) });
    let ping = builder.event("ping", |input: EventInput| async move {
        let n = input
            .results()
            .iter()
            .find_map(|r| r.value::<i32>().copied());
        Flow::from(n.unwrap_or(0) + 1)
    });
    let pong = builder.event("pong", |input: EventInput| async move {
        let n = input
            .results()
            .iter()
            .find_map(|r| r.value::<i32>().copied());
        match n {
            Some(n) if n >= 5 => Flow::abort(),
            Some(n) => Flow::from(n + 1),
            None => Flow::abort(),
        }
    });
    builder
        .listen(ping, Group::new([start]))
        .listen(ping, Group::new([pong]))
        .listen(pong, Group::new([ping]));
    let drive = builder.build().unwrap();
    let results = drive.invoke(start).await.unwrap();
    // ping: 1, pong: 2, ping: 3, pong: 4, ping: 5, pong aborts.
    assert_eq!(results.count(ping), 3);
    assert_eq!(results.count(pong), 3);
    assert_eq!(results.get(ping), Some(&5));
    assert_eq!(results.outcome(pong), Some(OutcomeKind::Abort));
    assert_eq!(
        drive.debug_string(pong),
        "pong\n└─ <0>\n    └─ ping\n       ├─ <0>\n       │   └─ start\n       └─ <1>\n           └─ pong <loop>\n"
    );
}

#[tokio::test]
async fn closures_take_a_context_and_return_results() {
    let mut builder = DriveBuilder::new();
    let read = builder.event("read", |input: EventInput, base: Context<i32>| async move {
        let extra = input.user::<i32>().copied().unwrap_or(0);
        Ok::<_, std::io::Error>(Flow::from(*base + extra))
    });
    let fail = builder.event("fail", |_: Context<i32>| async {
        Err::<Flow<()>, _>(anyhow::anyhow!("nope"))
    });
    builder.listen(fail, Group::new([read]));
    let drive = builder.build().unwrap();

    let error = drive
        .invoke(read)
        .input(EventInput::from_input(2))
        .context(40)
        .await
        .err()
        .unwrap();
    match &error {
        Error::Failed { event, source } => {
            assert_eq!(event, "fail");
            assert_eq!(source.to_string(), "nope");
        }
        other => panic!("expected Error::Failed, got {other:?}"),
    }

    // The context is checked for every event the start can reach, before anything runs.
    let error = drive.invoke(read).context("text").await.err().unwrap();
    assert!(
        matches!(&error, Error::Context { event, .. } if event == "read"),
        "{error:?}"
    );
}

#[test]
fn build_errors_name_the_events() {
    // Two events with one name.
    let mut builder = DriveBuilder::new();
    builder.event("same", || async {});
    builder.event("same", || async {});
    let error = builder.build().err().unwrap();
    assert!(
        matches!(&error, BuildError::DuplicateEvent { event } if event == "same"),
        "{error:?}"
    );
    assert!(error.to_string().contains("`same`"), "{error}");

    // A member from another builder.
    let mut other = DriveBuilder::new();
    let foreign = other.event("foreign", || async {});
    let mut builder = DriveBuilder::new();
    let local = builder.event("local", || async {});
    builder.listen(local, Group::new([foreign]));
    let error = builder.build().err().unwrap();
    match &error {
        BuildError::UnknownMember { listener, member } => {
            assert_eq!(listener, "local");
            assert!(member.contains("another builder"), "{member}");
        }
        other => panic!("expected UnknownMember, got {other:?}"),
    }
    assert!(
        error.to_string().contains("event `local` listens to"),
        "{error}"
    );

    // A member made by the macros, in a builder that did not add the registered events.
    let mut builder = DriveBuilder::new();
    let local = builder.event("local", || async {});
    builder.listen(local, Group::new([macro_events::source]));
    let error = builder.build().err().unwrap();
    match &error {
        BuildError::UnknownMember { listener, member } => {
            assert_eq!(listener, "local");
            assert!(member.contains("builder::macro_events::source"), "{member}");
        }
        other => panic!("expected UnknownMember, got {other:?}"),
    }

    // An empty group.
    let mut builder = DriveBuilder::new();
    let lonely = builder.event("lonely", || async {});
    builder.listen(lonely, Group::new(Vec::<EventRef>::new()));
    let error = builder.build().err().unwrap();
    assert!(
        matches!(&error, BuildError::EmptyGroup { listener } if listener == "lonely"),
        "{error:?}"
    );
    assert!(error.to_string().contains("`lonely`"), "{error}");

    // A listener from another builder.
    let mut builder = DriveBuilder::new();
    let local = builder.event("local", || async {});
    builder.listen(foreign, Group::new([local]));
    let error = builder.build().err().unwrap();
    match &error {
        BuildError::UnknownListener { listener } => {
            assert!(listener.contains("another builder"), "{listener}")
        }
        other => panic!("expected UnknownListener, got {other:?}"),
    }
    assert!(error.to_string().contains("another builder"), "{error}");
}

#[test]
fn a_repeated_group_is_kept_once_and_a_repeated_member_counts_once() {
    let mut builder = DriveBuilder::new();
    let a = builder.event("a", || async {});
    let b = builder.event("b", || async {});
    let c = builder.event("c", || async {});
    builder
        .listen(c, Group::new([a]))
        .listen(c, Group::new([a]).name("dropped"))
        .listen(c, Group::new([EventRef::from(a), b.into(), a.into()]))
        .listen(c, Group::new([EventRef::from(b), a.into()]));
    let drive = builder.build().unwrap();
    assert_eq!(
        drive.debug_string(c),
        "c\n├─ <0>\n│   └─ a\n├─ <1>\n│   ├─ a\n│   └─ b\n└─ <2>\n    ├─ b\n    └─ a\n"
    );
}

/// Events made by the macros, mixed into a builder graph.
mod macro_events {
    use super::*;

    #[event]
    pub async fn source() -> i32 {
        20
    }

    #[listen(source)]
    pub async fn doubled(input: EventInput) -> i32 {
        input.get(source).unwrap() * 2
    }
}

#[tokio::test]
async fn builder_events_mix_with_macro_events() {
    let log = Log::default();
    let mut builder = DriveBuilder::new();
    builder.add_registered().add_registered(); // twice adds them once
    let l = log.clone();
    let plus_one = builder.event("plus_one", move |input: EventInput| {
        let l = l.clone();
        async move {
            l.record("plus_one", &input);
            Flow::from(input.get(macro_events::doubled).unwrap() + 1)
        }
    });
    builder.listen(plus_one, Group::new([macro_events::doubled]));
    let drive = builder.build().unwrap();

    let results = drive.invoke(macro_events::source).await.unwrap();
    assert_eq!(
        log.of("plus_one"),
        [call(
            "plus_one",
            "0",
            Behavior::Dispatch,
            &[("builder::macro_events::doubled", 40)]
        )]
    );
    assert_eq!(results.get(macro_events::doubled), Some(&40));
    assert_eq!(results.get(plus_one), Some(&41));
}

#[tokio::test]
async fn a_handle_finds_nothing_in_another_drive() {
    let mut first = DriveBuilder::new();
    let one = first.event("one", || async { Flow::from(1) });
    let first = first.build().unwrap();

    let mut second = DriveBuilder::new();
    let two = second.event("one", || async { Flow::from(1) });
    let second = second.build().unwrap();

    let results = second.invoke(two).await.unwrap();
    assert_eq!(results.get(two), Some(&1));
    assert_eq!(results.get(one), None, "a handle of another builder");
    assert_eq!(results.count(one), 0);
    assert_eq!(results.outcome(one), None);

    let results = first.invoke(one).await.unwrap();
    assert_eq!(results.get(one), Some(&1));
    assert_eq!(results.get(two), None);

    // A drive built from registered events does not know builder handles either.
    let registered = Drive::new().unwrap();
    let results = registered.invoke(macro_events::source).await.unwrap();
    assert_eq!(results.get(macro_events::doubled), Some(&40));
    assert_eq!(results.get(one), None);
}

/// A group as `Drive::events` lists it: name, retrigger mode, member ids.
type ListedGroup = (String, Retrigger, Vec<String>);

/// `Drive::events` lists the graph as built: duplicate groups dropped, a repeated member
/// counted once, default names given, retrigger modes kept (issue 10, item 14).
#[test]
fn the_typed_view_lists_events_and_groups_as_built() {
    let mut builder = DriveBuilder::new();
    let a = builder.event("flow::a", || async { Flow::from(1) });
    let b = builder.event("flow::b", || async { Flow::from(2) });
    let c = builder.event("flow::c", || async { Flow::from(3) });
    builder
        .listen(c, Group::new([a]))
        .listen(c, Group::new([a]).name("dropped").retrigger(Retrigger::Any)) // duplicate
        .listen(
            c,
            Group::new([EventRef::from(b), a.into(), b.into()]).retrigger(Retrigger::Any),
        )
        .listen(b, Group::new([a]).name("from a"));
    let drive = builder.build().unwrap();
    let listing: Vec<(usize, String, String, Vec<ListedGroup>)> = drive
        .events()
        .map(|event| {
            let groups = event
                .groups()
                .map(|group| {
                    assert_eq!(group.listener().id(), event.id());
                    let members = group.members().map(|m| m.id().to_string()).collect();
                    (group.name().to_string(), group.retrigger(), members)
                })
                .collect();
            (
                event.index(),
                event.id().to_string(),
                event.name().to_string(),
                groups,
            )
        })
        .collect();
    let strings = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        listing,
        vec![
            (0, "flow::a".to_string(), "a".to_string(), vec![]),
            (
                1,
                "flow::b".to_string(),
                "b".to_string(),
                vec![("from a".to_string(), Retrigger::All, strings(&["flow::a"]))]
            ),
            (
                2,
                "flow::c".to_string(),
                "c".to_string(),
                vec![
                    ("0".to_string(), Retrigger::All, strings(&["flow::a"])),
                    (
                        "1".to_string(),
                        Retrigger::Any,
                        strings(&["flow::b", "flow::a"])
                    ),
                ]
            ),
        ]
    );
    assert_eq!(drive.events().len(), 3);
    let a_info = drive.events().find(|e| e.is(a)).unwrap();
    assert!(!a_info.is(b));
    // Where `a` is a member: c's two groups and b's group, by listener in registration order.
    let listeners: Vec<(&str, &str)> = a_info
        .listeners()
        .map(|g| (g.listener().name(), g.name()))
        .collect();
    assert_eq!(listeners, [("b", "from a"), ("c", "0"), ("c", "1")]);
}

/// Each parameter that takes the input gets all of it, whichever its place: the last one
/// takes the call's input, the others a clone, and what the call keeps still names the task
/// for an `Emitter` after it.
#[tokio::test]
async fn every_parameter_that_takes_the_input_gets_all_of_it() {
    use drive_flow::Emitter;
    use futures::StreamExt;

    let mut builder = DriveBuilder::new();
    let start = builder.event("start", || async { Flow::from(5) });
    let seen = move |input: &EventInput| {
        (
            input.get(start).copied(),
            input.results().len(),
            input.group_name().to_string(),
            input.behavior(),
            input.task_id(),
        )
    };
    let twice = builder.event(
        "twice",
        move |first: EventInput, second: EventInput, out: Emitter<u64>| async move {
            out.emit(second.task_id());
            Flow::from((seen(&first), seen(&second)))
        },
    );
    let once = builder.event(
        "once",
        move |input: EventInput, out: Emitter<u64>| async move {
            out.emit(input.task_id());
            Flow::from(seen(&input))
        },
    );
    builder.listen(twice, Group::new([start]));
    builder.listen(once, Group::new([start]));
    let drive = builder.build().unwrap();

    let (run, events) = drive.invoke(start).start_with_events();
    let emitted: Vec<(String, u64, u64)> = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        events
            .filter_map(|event| async move {
                let value = *event.emitted::<u64>()?;
                Some((event.event.to_string(), event.task_id, value))
            })
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends with the run");
    let results = run.await.unwrap();

    let expected = |task| (Some(5), 1, String::from("0"), Behavior::Dispatch, task);
    assert_eq!(results.get(twice), Some(&(expected(2), expected(2))));
    assert_eq!(results.get(once), Some(&expected(3)));
    let mut emitted = emitted;
    emitted.sort();
    assert_eq!(
        emitted,
        vec![(String::from("once"), 3, 3), (String::from("twice"), 2, 2)]
    );
}
