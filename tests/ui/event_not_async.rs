use drive_flow::prelude::*;

#[event]
fn start() -> i32 {
    1
}

fn main() {}
