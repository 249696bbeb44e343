use drive_flow::prelude::*;

#[event(retrigger = any)]
async fn a() {}

#[event(name = "start")]
async fn b() {}

fn main() {}
