use drive_flow::prelude::*;

#[event]
async fn a() {}

#[listen(a, nmae = "x")]
async fn b() {}

fn main() {}
