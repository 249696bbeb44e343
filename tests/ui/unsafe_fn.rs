use drive_flow::prelude::*;

#[event]
async unsafe fn a() {}

fn main() {}
