// An event's name is a unit struct in scope: `let hello = input.get(hello)` does not
// introduce a new binding, it matches against the struct.
use drive_flow::prelude::*;

#[event]
async fn hello() -> String {
    String::from("hi")
}

#[listen(hello)]
async fn shout(input: EventInput) -> String {
    let hello = input.get(hello).cloned().unwrap_or_default();
    hello.to_uppercase()
}

fn main() {}
