//! Retriggering a join: `any` against `all`, over several turns.
//!
//! `on_start` triggers `a` (done after 100 ms) and `b` (done after 500 ms). Both `c` and `d`
//! listen to the group `[a, b]`:
//! - `c` with `retrigger = any`: once both have run, every fresh result of either fires it;
//! - `d` with `retrigger = all` (the default): it fires again only once both are fresh. It
//!   then sends the run back to `on_start` with a goto: the next turn.
//!
//! So the first turn runs a, b, c, d, and every later turn a, c, b, c, d: in later turns
//! `b`'s result from the turn before is still there, so `a` alone fires `c`.
//! (`c` and `d` start at the same moment when `b` is done; `d` takes 100 ms, so it always
//! logs after `c`.)
//!
//! ```text
//! cargo run --example retrigger           # 3 turns
//! cargo run --example retrigger -- 5      # 5 turns
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use drive_flow::prelude::*;

/// The run's context: how many turns to run, and what ran in each.
struct Turns {
    max: usize,
    current: AtomicUsize,
    log: Mutex<Vec<Vec<&'static str>>>,
}

impl Turns {
    fn record(&self, event: &'static str) {
        let turn = self.current.load(Ordering::SeqCst);
        println!("  turn {turn}: {event}");
        if let Ok(mut log) = self.log.lock() {
            if let Some(events) = log.last_mut() {
                events.push(event);
            }
        }
    }
}

#[event]
async fn on_start(turns: Context<Turns>) -> Flow<()> {
    let turn = turns.current.fetch_add(1, Ordering::SeqCst) + 1;
    if turn > turns.max {
        return Flow::abort(); // enough turns: the run ends
    }
    if let Ok(mut log) = turns.log.lock() {
        log.push(Vec::new());
    }
    println!("turn {turn}");
    Flow::from(())
}

#[listen(on_start)]
async fn a(turns: Context<Turns>) -> u32 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    turns.record("a");
    1
}

#[listen(on_start)]
async fn b(turns: Context<Turns>) -> u32 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    turns.record("b");
    2
}

#[listen(a, b, retrigger = any)]
async fn c(turns: Context<Turns>) {
    turns.record("c");
}

#[listen(a, b, retrigger = all)]
async fn d(turns: Context<Turns>) -> Flow<()> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    turns.record("d");
    Flow::goto([on_start], ())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let max = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("the number of turns must be a whole number, not {text:?}"))?,
        None => 3,
    };
    let turns = std::sync::Arc::new(Turns {
        max,
        current: AtomicUsize::new(0),
        log: Mutex::new(Vec::new()),
    });
    let drive = Drive::new()?;
    // The graph; `d`'s goto back to `on_start` is decided at run time, so it is not drawn.
    println!("the graph, as Mermaid:");
    print!("{}", drive.to_mermaid());
    drive.invoke(on_start).context_arc(turns.clone()).await?;

    println!("order, turn by turn:");
    let log = turns.log.lock().map_err(|_| "the log was poisoned")?;
    for (turn, events) in log.iter().enumerate() {
        println!("turn {}: {}", turn + 1, events.join(" "));
    }
    Ok(())
}
