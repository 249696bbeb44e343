// An event is a value and a type named like its function: a `mod` of the same name in the
// same scope takes the type's name. One error, at the function's name.
use drive_flow::prelude::*;

mod start {}

#[event]
async fn start() {}

#[listen(start)]
async fn next() {}

fn main() {}
