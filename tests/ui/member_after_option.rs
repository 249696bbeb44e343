use drive_flow::prelude::*;

#[event]
async fn a() {}

#[event]
async fn b() {}

#[listen(a, name = "x", b)]
async fn c() {}

fn main() {}
