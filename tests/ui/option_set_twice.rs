use drive_flow::prelude::*;

#[event]
async fn a() {}

#[listen(a, name = "x", name = "y")]
async fn b() {}

#[listen(a, retrigger = any, retrigger = all)]
async fn c() {}

fn main() {}
