use drive_flow::prelude::*;

#[event(runs = "research")]
async fn write() {}

fn main() {}
