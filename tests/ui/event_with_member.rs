use drive_flow::prelude::*;

#[event]
async fn a() {}

#[event(a)]
async fn b() {}

fn main() {}
