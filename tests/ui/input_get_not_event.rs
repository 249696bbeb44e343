use drive_flow::prelude::*;

#[event]
async fn a() -> i32 {
    1
}

fn not_an_event() -> i32 {
    2
}

#[listen(a)]
async fn b(input: EventInput) -> i32 {
    *input.get(not_an_event).unwrap()
}

fn main() {}
