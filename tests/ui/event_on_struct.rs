use drive_flow::prelude::*;

#[event]
struct Start;

#[listen(Start)]
impl Start {}

fn main() {}
