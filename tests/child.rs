//! Nested workflows: an event runs another workflow as a child of its run (`Child`). The
//! child returns its `Results` to the event; it shares its parent's cancellation, run
//! timeout and loop budget; its items reach the parent's live stream with their path; its
//! failure fails the parent event with both names; pictures draw it in a box.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drive_flow::prelude::*;
use drive_flow::{Child, DriveBuilder, Emitter, Group, RunEvent, RunEventKind};
use futures::StreamExt;

fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// Collect a run's stream, failing the test instead of hanging if it never ends.
async fn collect(events: drive_flow::RunEvents) -> Vec<RunEvent> {
    tokio::time::timeout(Duration::from_secs(10), events.collect::<Vec<_>>())
        .await
        .expect("the event stream ends when the run ends")
}

mod nested {
    use drive_flow::prelude::*;
    use drive_flow::{Child, Emitter};

    /// The run's context: read by the child's events too.
    pub struct Prefix(pub &'static str);

    #[event]
    pub async fn outer(child: Child, input: EventInput) -> Result<String, drive_flow::Error> {
        let word = input.user::<&str>().copied().unwrap_or("none");
        let found = child
            .invoke(inner_a)
            .input(EventInput::from_input(word))
            .await?;
        Ok(format!(
            "outer got {}",
            found.get(inner_b).cloned().unwrap_or_default()
        ))
    }

    #[event]
    pub async fn inner_a(input: EventInput, prefix: Context<Prefix>) -> String {
        format!(
            "{}{}",
            prefix.0,
            input.user::<&str>().copied().unwrap_or("?")
        )
    }

    #[listen(inner_a)]
    pub async fn inner_b(input: EventInput, out: Emitter<String>) -> String {
        out.emit(String::from("x"));
        input
            .get(inner_a)
            .cloned()
            .unwrap_or_default()
            .to_uppercase()
    }
}

#[tokio::test]
async fn an_event_runs_a_child_workflow_and_reads_its_results() {
    let results = Drive::new()
        .unwrap()
        .invoke(nested::outer)
        .input(EventInput::from_input("rust"))
        .context(nested::Prefix("about "))
        .await
        .unwrap();
    assert_eq!(
        results.get(nested::outer).map(String::as_str),
        Some("outer got ABOUT RUST")
    );
    // The child's events are its own run's: the parent's results hold only its own.
    assert_eq!(results.count(nested::inner_a), 0);
    assert_eq!(results.len(), 1);
}

#[tokio::test]
async fn the_parents_stream_carries_the_childs_items_with_their_path() {
    let (run, events) = Drive::new()
        .unwrap()
        .invoke(nested::outer)
        .input(EventInput::from_input("rust"))
        .context(nested::Prefix(""))
        .start_with_events();
    let seen = collect(events).await;
    run.await.unwrap();
    let shape: Vec<String> = seen
        .iter()
        .map(|event| {
            let path: Vec<String> = event
                .path()
                .iter()
                .map(|step| format!("{}#{}/", short(&step.event), step.task_id))
                .collect();
            let what = match &event.kind {
                RunEventKind::Started => "started".to_string(),
                RunEventKind::Finished { outcome, .. } => format!("finished {outcome:?}"),
                RunEventKind::Emitted(_) => {
                    format!("emitted {}", event.emitted::<String>().unwrap())
                }
                other => format!("{other:?}"),
            };
            format!(
                "{}{}#{} {what}",
                path.concat(),
                short(&event.event),
                event.task_id
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            "outer#1 started",
            "outer#1/inner_a#1 started",
            "outer#1/inner_a#1 finished Value",
            "outer#1/inner_b#2 started",
            "outer#1/inner_b#2 emitted x",
            "outer#1/inner_b#2 finished Value",
            "outer#1 finished Value",
        ]
    );
}

mod failing {
    use drive_flow::prelude::*;
    use drive_flow::Child;

    #[event]
    pub async fn parent(child: Child) -> Result<(), drive_flow::Error> {
        child.invoke(broken).await?;
        Ok(())
    }

    #[event]
    pub async fn broken() -> Result<(), std::io::Error> {
        Err(std::io::Error::other("disk on fire"))
    }
}

#[tokio::test]
async fn a_failing_child_fails_the_parent_event_naming_both() {
    let error = Drive::new()
        .unwrap()
        .invoke(failing::parent)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "event `child::failing::parent` failed: its child workflow `child::failing::broken` \
         failed: event `child::failing::broken` failed: disk on fire"
    );
    let drive_flow::Error::Child {
        event,
        child,
        source,
    } = error
    else {
        panic!("expected Error::Child")
    };
    assert_eq!(
        (event.as_str(), child.as_str()),
        ("child::failing::parent", "child::failing::broken")
    );
    assert!(matches!(*source, drive_flow::Error::Failed { .. }));
}

mod looping {
    use std::sync::atomic::{AtomicU32, Ordering};

    use drive_flow::prelude::*;
    use drive_flow::Child;

    pub static SPINS: AtomicU32 = AtomicU32::new(0);

    #[event]
    pub async fn boss(child: Child) -> Result<(), drive_flow::Error> {
        child.invoke(spin).await?;
        Ok(())
    }

    #[event]
    pub async fn spin() -> Flow<()> {
        SPINS.fetch_add(1, Ordering::SeqCst);
        Flow::goto(spin, ())
    }
}

#[tokio::test]
async fn the_childs_steps_count_against_the_parents_budget() {
    let error = Drive::new()
        .unwrap()
        .invoke(looping::boss)
        .max_steps(50)
        .await
        .unwrap_err();
    // The parent's own step (boss) and 49 of the child's: the 50th is refused.
    assert_eq!(looping::SPINS.load(Ordering::SeqCst), 49);
    match error {
        drive_flow::Error::Child { source, .. } => assert!(
            matches!(*source, drive_flow::Error::TooManySteps { limit: 50, runs: 49, ref event } if event.ends_with("::spin")),
            "{source}"
        ),
        other => panic!("expected Error::Child, got {other}"),
    }
}

mod hanging {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Duration;

    use drive_flow::prelude::*;
    use drive_flow::Child;

    pub static STARTED: AtomicU32 = AtomicU32::new(0);
    pub static DROPPED: AtomicBool = AtomicBool::new(false);

    /// Notes when the child's event is dropped (cancelled).
    struct OnDrop;
    impl Drop for OnDrop {
        fn drop(&mut self) {
            DROPPED.store(true, Ordering::SeqCst);
        }
    }

    #[event]
    pub async fn waits(child: Child) -> Result<(), drive_flow::Error> {
        child.invoke(sleeps).await?;
        Ok(())
    }

    #[event]
    pub async fn sleeps() {
        let _guard = OnDrop;
        STARTED.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

#[tokio::test]
async fn the_parents_timeout_and_cancellation_end_the_child() {
    let drive = Drive::new().unwrap();
    let error = drive
        .invoke(hanging::waits)
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(error, drive_flow::Error::RunTimeout { ref running, .. } if running.len() == 1),
        "{error}"
    );
    assert_eq!(hanging::STARTED.load(Ordering::SeqCst), 1);
    dropped_soon().await;

    let run = drive.invoke(hanging::waits).start();
    while hanging::STARTED.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.cancel();
    assert!(matches!(run.await, Err(drive_flow::Error::Cancelled)));
    dropped_soon().await;
}

/// The child's event is dropped (cancelled): a cancelled task ends at its next `.await`,
/// after the run returned (the run does not wait for it), so within a generous margin.
async fn dropped_soon() {
    let dropped = async {
        while !hanging::DROPPED.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .expect("the child's event was dropped");
}

#[tokio::test]
async fn a_declared_child_workflow_is_drawn_in_a_box_beside_its_runner() {
    let mut builder = DriveBuilder::new();
    let start = builder.event("start", || async { Flow::from(()) });
    let fetch = builder.event("fetch", || async { Flow::from(()) });
    let parse = builder.event("parse", || async { Flow::from(()) });
    let write = builder.event("write", move |child: Child| async move {
        Ok::<_, drive_flow::Error>(Flow::from(child.invoke(fetch).await?.len()))
    });
    builder.listen(write, Group::new([start]));
    builder.listen(parse, Group::new([fetch]));
    builder.runs(write, fetch);
    let drive = builder.build().unwrap();
    assert_eq!(
        drive.to_mermaid(),
        r#"flowchart TD
    e0(["start"])
    e3["write"]
    subgraph c0["run by write"]
        e1(["fetch"])
        e2["parse"]
    end
    e1 -->|"0"| e2
    e0 -->|"0"| e3
    e3 ==>|"runs"| e1
"#
    );
    assert_eq!(
        drive.to_dot(),
        r#"digraph drive_flow {
    node [shape=box];
    e0 [label="start", style=rounded];
    e3 [label="write"];
    subgraph cluster_c0 {
        label="run by write";
        style=dashed;
        e1 [label="fetch", style=rounded];
        e2 [label="parse"];
    }
    e1 -> e2 [label="0"];
    e0 -> e3 [label="0"];
    e3 -> e1 [label="runs", style=bold];
}
"#
    );
    // What a run started at `start` reaches includes the declared child workflow.
    assert_eq!(drive.to_mermaid_from(start), drive.to_mermaid());
    // The picture of a run: the child workflow ran in a child run of its own.
    let results = drive.invoke(start).await.unwrap();
    assert_eq!(results.get(write), Some(&2));
    assert_eq!(
        results.to_mermaid(),
        r#"flowchart TD
    e0(["start<br/>1 run · value"])
    e3["write<br/>1 run · value"]
    subgraph c0["run by write"]
        e1(["fetch<br/>child workflow"])
        e2["parse<br/>child workflow"]
    end
    e1 -->|"0"| e2
    e0 -->|"0"| e3
    e3 ==>|"runs"| e1
"#
    );
    // A declaration naming an event of another builder is refused.
    let mut other = DriveBuilder::new();
    let foreign = other.event("foreign", || async {});
    let mut builder = DriveBuilder::new();
    let only = builder.event("only", || async {});
    builder.runs(only, foreign);
    let error = builder.build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "`only` is declared to run the workflow of a handle of another builder (node #0), \
         but one of them is not an event of this graph"
    );
}

mod declared {
    use drive_flow::prelude::*;
    use drive_flow::Child;

    #[event]
    pub async fn research() -> u8 {
        1
    }

    #[listen(research)]
    pub async fn summarize() -> u8 {
        2
    }

    #[event(runs = research)]
    pub async fn report(child: Child) -> Result<usize, drive_flow::Error> {
        Ok(child.invoke(research).await?.len())
    }
}

#[test]
fn runs_on_the_attribute_declares_the_child_workflow() {
    let drive = Drive::new().unwrap();
    let picture = drive.to_mermaid_from(declared::report);
    assert_eq!(
        picture,
        r#"flowchart TD
    e0(["report"])
    subgraph c0["run by report"]
        e1(["research"])
        e2["summarize"]
    end
    e1 -->|"0"| e2
    e0 ==>|"runs"| e1
"#,
        "{picture}"
    );
}

mod inboxed {
    use drive_flow::prelude::*;
    use drive_flow::Child;

    #[event]
    pub async fn asks(child: Child) -> Result<(), drive_flow::Error> {
        child.invoke(waits_for_input).await?;
        Ok(())
    }

    #[event]
    pub async fn waits_for_input(inbox: Inbox) -> Result<u8, drive_flow::InboxError> {
        inbox.recv("value").await
    }
}

#[tokio::test]
async fn a_child_workflow_has_no_inbox() {
    let run = Drive::new().unwrap().invoke(inboxed::asks).start();
    let error = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run ends")
        .unwrap_err();
    match error {
        drive_flow::Error::Child { source, .. } => assert!(
            matches!(*source, drive_flow::Error::NoInbox { ref event } if event == "child::inboxed::waits_for_input"),
            "{source}"
        ),
        other => panic!("expected Error::Child, got {other}"),
    }
}

#[allow(dead_code)]
fn unused(_: Arc<AtomicBool>, _: AtomicU32, _: Emitter<u8>) {}
