use drive_flow::prelude::*;

#[listen()]
async fn b() {}

#[listen]
async fn c() {}

fn main() {}
