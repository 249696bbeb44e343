use drive_flow::prelude::*;

async fn not_an_event() {}

async fn run() -> Result<(), drive_flow::Error> {
    let _ = Drive::new()?.invoke(not_an_event).await?;
    Ok(())
}

fn main() {}
