// Each event is its own type: several different targets go in a tuple, not an array.
use drive_flow::prelude::*;

#[event]
async fn plan() {}

#[event]
async fn log() {}

#[listen(plan)]
async fn observe() -> Flow<()> {
    Flow::goto([plan, log], ())
}

fn main() {}
