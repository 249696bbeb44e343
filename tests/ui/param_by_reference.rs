use drive_flow::prelude::*;

#[event]
async fn start(input: &EventInput) -> usize {
    input.results().len()
}

fn main() {}
