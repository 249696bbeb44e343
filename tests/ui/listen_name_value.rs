use drive_flow::prelude::*;

#[event]
async fn a() {}

#[listen(a)]
#[listen = "a"]
async fn b() {}

fn main() {}
