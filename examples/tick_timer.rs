//! An endless timer: `tick` sends itself the next count with `Flow::goto`, forever, one tick
//! per interval. Give a count to stop after that many ticks.
//!
//! ```text
//! cargo run --example tick_timer              # ticks every second until Ctrl-C
//! cargo run --example tick_timer -- 5         # five ticks, then the run ends
//! cargo run --example tick_timer -- 5 100     # five ticks, 100 ms apart
//! TICKS=5 TICK_MS=100 cargo run --example tick_timer
//! ```

use std::time::{Duration, Instant};

use drive_flow::prelude::*;

struct Timer {
    /// Stop after this many ticks; `None`: never.
    ticks: Option<u64>,
    interval: Duration,
    began: Instant,
}

#[event]
async fn tick(input: EventInput, timer: Context<Timer>) -> Flow<u64> {
    // On a goto, the input's results hold the payload: the previous count.
    let count = input.get(tick).copied().unwrap_or(0) + 1;
    tokio::time::sleep(timer.interval).await;
    println!("tick {count} (at {} ms)", timer.began.elapsed().as_millis());
    if timer.ticks == Some(count) {
        Flow::abort() // the run ends: nothing else is queued
    } else {
        Flow::goto([tick], count) // run `tick` again, with `count` as its input
    }
}

/// A positional argument, else an environment variable.
fn setting(position: usize, variable: &str) -> Result<Option<u64>, String> {
    let Some(text) = std::env::args()
        .nth(position)
        .or_else(|| std::env::var(variable).ok())
    else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|_| format!("{variable} must be a whole number, not {text:?}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ticks = setting(1, "TICKS")?;
    if ticks == Some(0) {
        return Err("TICKS must be at least 1 (leave it out to tick forever)".into());
    }
    let interval = Duration::from_millis(setting(2, "TICK_MS")?.unwrap_or(1000));
    let drive = Drive::new()?;
    let timer = Timer {
        ticks,
        interval,
        began: Instant::now(),
    };
    let results = drive.invoke(tick).context(timer).await?;
    println!("stopped after {} ticks", results.count(tick));
    Ok(())
}
