use drive_flow::prelude::*;

#[event]
async fn a() -> i32 {
    1
}

#[listen(a)]
async fn b() -> Flow<i32> {
    Flow::goto([a], "one")
}

fn main() {}
