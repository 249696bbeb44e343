use drive_flow::prelude::*;
use drive_flow::Child;

fn research() {}

#[event(runs = research)]
async fn write(child: Child) {
    let _ = child;
}

fn main() {}
