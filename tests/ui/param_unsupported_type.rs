use drive_flow::prelude::*;

#[event]
async fn start(x: String) -> usize {
    x.len()
}

fn main() {}
