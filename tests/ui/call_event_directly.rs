use drive_flow::prelude::*;

#[event]
async fn hello() -> i32 {
    1
}

#[event]
async fn start() -> i32 {
    hello().await + 1
}

fn main() {}
