use std::cell::Cell;

use drive_flow::prelude::*;

#[event]
async fn start(counter: Context<Cell<u32>>) {
    counter.set(counter.get() + 1);
}

fn main() {}
