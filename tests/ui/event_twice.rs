use drive_flow::prelude::*;

#[event]
#[event]
async fn a() {}

fn main() {}
