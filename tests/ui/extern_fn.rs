use drive_flow::prelude::*;

#[event]
async extern "C" fn start() {}

fn main() {}
