//! Using an event's output: `adding` joins `hello` and `world` and reads their outputs,
//! typed: `input.get(hello)` is an `Option<&i32>` because `hello` returns an `i32`, and
//! `input.get(name)` an `Option<&String>`. The run's results are typed the same way.
//!
//! Run with `cargo run --example use_event_output`.

use drive_flow::prelude::*;

#[event]
async fn start(input: EventInput) -> String {
    // The data given with `EventInput::from_input`, typed too.
    let who = input.user::<&str>().copied().unwrap_or("nobody");
    println!(
        "start: {:?}, group {:?}, user data {who:?}",
        input.behavior(),
        input.group_name()
    );
    who.to_string()
}

#[listen(start)]
async fn hello() -> i32 {
    1
}

#[listen(start)]
async fn world() -> i32 {
    2
}

#[listen(start)]
async fn name(input: EventInput) -> String {
    format!("{}!", input.get(start).map_or("?", String::as_str))
}

#[listen(hello, world, name)]
async fn adding(input: EventInput) -> i32 {
    println!(
        "adding: {:?} through group {:?}, with {} results:",
        input.behavior(),
        input.group_name(),
        input.results().len()
    );
    // Every member of the group, in group order, with its value if you know its type.
    for result in input.results() {
        println!("  {} ({:?})", result.event(), result.kind());
    }
    let one: Option<&i32> = input.get(hello);
    let two: Option<&i32> = input.get(world);
    let text: Option<&String> = input.get(name);
    println!("adding: hello = {one:?}, world = {two:?}, name = {text:?}");
    one.unwrap_or(&0) + two.unwrap_or(&0)
}

#[tokio::main]
async fn main() -> Result<(), drive_flow::Error> {
    let drive = Drive::new()?;
    let results = drive
        .invoke(start)
        .input(EventInput::from_input("drive-flow"))
        .await?;
    // `results.get(adding)` is an `Option<&i32>`.
    println!("results.get(adding) = {:?}", results.get(adding));
    println!("results.get(name) = {:?}", results.get(name));
    Ok(())
}
