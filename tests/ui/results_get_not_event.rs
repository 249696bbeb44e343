use drive_flow::prelude::*;

#[event]
async fn start() -> i32 {
    1
}

fn not_an_event() -> i32 {
    1
}

async fn run() -> Result<(), drive_flow::Error> {
    let results = Drive::new()?.invoke(start).await?;
    let _ = results.get(not_an_event);
    Ok(())
}

fn main() {}
