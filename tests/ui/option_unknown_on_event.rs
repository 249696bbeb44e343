use drive_flow::prelude::*;

#[event(retry = 3)]
async fn a() {}

fn main() {}
