//! Hello world in parallel: `hello` and `world` both listen to `start`, so they start
//! together and their 200 ms of waiting overlap. The timestamps show it: both start before
//! either is done, and the whole run takes about 200 ms, not 400 ms.
//!
//! Run with `cargo run --example hello_parallel`.

use std::time::{Duration, Instant};

use drive_flow::prelude::*;

/// Prints `message` with the time since the run began.
fn log(began: &Instant, message: &str) {
    println!("[{:>4} ms] {message}", began.elapsed().as_millis());
}

#[event]
async fn start(began: Context<Instant>) {
    log(&began, "start");
}

#[listen(start)]
async fn hello(began: Context<Instant>) {
    log(&began, "hello");
    tokio::time::sleep(Duration::from_millis(200)).await;
    log(&began, "hello done");
}

#[listen(start)]
async fn world(began: Context<Instant>) {
    log(&began, "world");
    tokio::time::sleep(Duration::from_millis(200)).await;
    log(&began, "world done");
}

#[tokio::main]
async fn main() -> Result<(), drive_flow::Error> {
    let drive = Drive::new()?;
    let began = Instant::now();
    drive.invoke(start).context(began).await?;
    println!(
        "two 200 ms events ran in {} ms in all",
        began.elapsed().as_millis()
    );
    Ok(())
}
