use drive_flow::prelude::*;

#[event]
async fn hello() {}

#[listen(helo)]
async fn world() {}

fn main() {}
