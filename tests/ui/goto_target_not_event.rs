use drive_flow::prelude::*;

fn not_an_event() {}

#[event]
async fn a() -> Flow<i32> {
    Flow::goto([not_an_event], 1)
}

fn main() {}
