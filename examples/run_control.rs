//! Run control: a flaky call retried with a timeout, a human approval received from outside
//! the run, the live stream of what happens, the report of where the time went, a runaway
//! loop stopped by its budget, and a run cancelled through its handle.
//!
//! `cargo run --example run_control`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use drive_flow::prelude::*;
use drive_flow::RunEventKind;
use futures::StreamExt;

static CALLS: AtomicU32 = AtomicU32::new(0);

/// A flaky API: it fails twice, then answers. Each attempt may take 2 s; up to 3 retries,
/// 50 ms apart, then 100 ms.
#[event(timeout = "2s", retries = 3, backoff = "50ms")]
async fn fetch_quote() -> Result<u32, String> {
    if CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(String::from("503 Service Unavailable"));
    }
    Ok(120)
}

/// Waits for a human's approval, sent from outside the run.
#[listen(fetch_quote)]
async fn approve(input: EventInput, inbox: Inbox) -> Result<Flow<u32>, drive_flow::InboxError> {
    let price = input.get(fetch_quote).copied().unwrap_or(0);
    let approved: bool = inbox.recv("approval").await?;
    Ok(if approved {
        Flow::from(price)
    } else {
        Flow::abort()
    })
}

#[listen(approve)]
async fn place_order(input: EventInput) -> String {
    format!("ordered at {}", input.get(approve).copied().unwrap_or(0))
}

/// A loop without an exit.
#[event]
async fn spin() -> Flow<()> {
    Flow::goto(spin, ())
}

/// Something slow, to cancel.
#[event]
async fn slow_report() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

fn short(id: &str) -> &str {
    id.rsplit("::").next().unwrap_or(id)
}

#[tokio::main]
async fn main() -> Result<(), drive_flow::Error> {
    let drive = Drive::new()?;

    let (run, mut events) = drive
        .invoke(fetch_quote)
        .timeout(Duration::from_secs(10))
        .start_with_events();
    while let Some(event) = events.next().await {
        let name = short(&event.event);
        match &event.kind {
            RunEventKind::Started => println!("started   {name}"),
            RunEventKind::Retrying { attempt, error, .. } => {
                println!("retrying  {name} (attempt {attempt}: {error})")
            }
            RunEventKind::Waiting { key } => {
                println!("waiting   {name} for `{key}`");
                run.send(key.clone(), true); // a human said yes
            }
            RunEventKind::Finished { outcome, .. } => println!("finished  {name}: {outcome:?}"),
            other => println!("{name}: {other:?}"),
        }
    }
    let results = run.await?;
    println!("{}", results.get(place_order).map_or("", String::as_str));
    println!(
        "fetch_quote: {} attempts",
        results.stats(fetch_quote).attempts
    );
    println!("{}", results.report());

    match drive.invoke(spin).max_steps(1_000).await {
        Err(error) => println!("{error}"),
        Ok(_) => println!("spin stopped by itself?"),
    }

    let run = drive.invoke(slow_report).start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    run.cancel();
    let cancelled = run.await;
    println!("{:?}", cancelled.map(|_| ()));
    Ok(())
}
