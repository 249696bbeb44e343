use drive_flow::prelude::*;

#[event]
async fn a() {}

#[listen(a; b)]
async fn b() {}

fn main() {}
