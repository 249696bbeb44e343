// An event with a mistake in its signature reports that mistake only: the places that name
// it (`#[listen(start)]`, `input.get(start)`, `results.get(start)`) do not add errors.
use drive_flow::prelude::*;

#[event]
fn start() -> i32 {
    1
}

#[listen(start)]
async fn next(input: EventInput) -> i32 {
    *input.get(start).unwrap() + 1
}

async fn run() -> Result<(), drive_flow::Error> {
    let results = Drive::new()?.invoke(start).await?;
    let _: Option<&i32> = results.get(start);
    Ok(())
}

fn main() {
    let _ = run;
}
