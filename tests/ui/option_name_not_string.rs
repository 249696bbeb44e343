use drive_flow::prelude::*;

#[event]
async fn a() {}

#[listen(a, name = 3)]
async fn b() {}

fn main() {}
