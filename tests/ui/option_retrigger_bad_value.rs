use drive_flow::prelude::*;

#[event]
async fn a() {}

#[listen(a, retrigger = sometimes)]
async fn b() {}

fn main() {}
