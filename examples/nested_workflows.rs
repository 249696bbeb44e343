//! Nested workflows: a writer's workflow runs a research workflow for each topic, as child
//! workflows of its run, two at a time.
//!
//! ```text
//! outline ──▶ write ──▶ publish            (the writer's workflow)
//!               │ runs, once per topic
//!               ▼
//!             search ──▶ read ──▶ notes     (the research workflow)
//! ```
//!
//! - `write` takes a `Child` and runs the research workflow (`search` → `read` → `notes`)
//!   once per topic, both at once (`futures::future::try_join_all`); each child run has its
//!   own results, read back typed (`found.get(notes)`).
//! - `read` streams its progress through an `Emitter<String>`; `main` watches the writer's
//!   run, and the children's items reach it with their path (the `write` call that ran
//!   them).
//! - The children share the writer's context, its cancellation, its timeout and its loop
//!   budget (`max_steps`: their steps count against the writer's).
//! - `#[listen(outline, runs = search)]` declares the child workflow for the pictures:
//!   `--mermaid` draws it in a box beside `write`.
//!
//! ```text
//! cargo run --example nested_workflows
//! cargo run --example nested_workflows -- --mermaid     # the graph, child workflow boxed
//! cargo run --example nested_workflows -- --fail        # a child fails: both names
//! ```

use std::future::IntoFuture;
use std::time::Duration;

use drive_flow::prelude::*;
use drive_flow::{Child, Emitter, RunEventKind};
use futures::StreamExt;

/// The writer's settings, shared with the research runs through the context.
struct Desk {
    /// A topic whose research fails (for `--fail`).
    broken: Option<&'static str>,
}

// ----------------------------------------------------------------------------------------
// The writer's workflow
// ----------------------------------------------------------------------------------------

/// The topics of the article.
#[event]
async fn outline() -> Vec<&'static str> {
    vec!["tokio", "serde"]
}

/// Researches every topic in a child workflow of its own, all at once, then writes.
#[listen(outline, runs = search)]
async fn write(input: EventInput, child: Child) -> Result<String, drive_flow::Error> {
    let topics = input.get(outline).cloned().unwrap_or_default();
    let research = topics.iter().map(|&topic| {
        child
            .invoke(search)
            .input(EventInput::from_input(topic))
            .into_future()
    });
    let found = futures::future::try_join_all(research).await?;
    let paragraphs: Vec<String> = found
        .iter()
        .filter_map(|results| results.get(notes).cloned())
        .collect();
    Ok(paragraphs.join(" "))
}

/// The finished article: its length.
#[listen(write)]
async fn publish(input: EventInput) -> usize {
    input.get(write).map_or(0, String::len)
}

// ----------------------------------------------------------------------------------------
// The research workflow (run as a child of `write`)
// ----------------------------------------------------------------------------------------

/// Finds the sources on a topic (the run's input).
#[event]
async fn search(input: EventInput, desk: Context<Desk>) -> Result<Vec<String>, String> {
    let topic = input.user::<&str>().copied().unwrap_or("?");
    if desk.broken == Some(topic) {
        return Err(format!("no source on {topic}"));
    }
    Ok(vec![format!("{topic} docs"), format!("{topic} book")])
}

/// Reads every source, telling how far it got.
#[listen(search)]
async fn read(input: EventInput, progress: Emitter<String>) -> usize {
    let sources = input.get(search).cloned().unwrap_or_default();
    for source in &sources {
        tokio::time::sleep(Duration::from_millis(10)).await;
        progress.emit(format!("read {source}"));
    }
    sources.len()
}

/// The paragraph on the topic.
#[listen(search, read)]
async fn notes(input: EventInput) -> String {
    let sources = input.get(search).cloned().unwrap_or_default();
    format!("[{}]", sources.join(" + "))
}

// ----------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let drive = Drive::new()?;
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--mermaid") {
        print!("{}", drive.to_mermaid_from(outline));
        return Ok(());
    }
    let desk = Desk {
        broken: (arg.as_deref() == Some("--fail")).then_some("serde"),
    };
    let (run, mut events) = drive
        .invoke(outline)
        .context(desk)
        .max_steps(100)
        .start_with_events();
    // The writer's stream: its own events, and its children's, with their path (the two
    // research runs go on at the same time: their lines interleave).
    while let Some(event) = events.next().await {
        let path: String = event
            .path()
            .iter()
            .map(|step| {
                format!(
                    "{}#{} (run {}) / ",
                    short(&step.event),
                    step.task_id,
                    step.run_id
                )
            })
            .collect();
        let name = short(&event.event);
        match (&event.kind, event.emitted::<String>()) {
            (_, Some(progress)) => println!("{path}{name}: {progress}"),
            (RunEventKind::Finished { outcome, .. }, _) => println!("{path}{name} {outcome:?}"),
            (RunEventKind::Failed { .. }, _) => println!("{path}{name} failed"),
            _ => {}
        }
    }
    match run.await {
        Ok(results) => {
            println!(
                "article: {}",
                results.get(write).cloned().unwrap_or_default()
            );
            println!(
                "published {} characters",
                results.get(publish).copied().unwrap_or(0)
            );
        }
        Err(error) => println!("error: {error}"),
    }
    Ok(())
}

fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}
