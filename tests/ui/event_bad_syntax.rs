use drive_flow::prelude::*;

#[event(timeout = "1s" retries = 3)]
async fn a() {}

fn main() {}
