use drive_flow::prelude::*;

#[event]
async fn start() -> impl std::fmt::Display {
    1
}

fn main() {}
