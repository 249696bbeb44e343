use drive_flow::prelude::*;

#[event(timeout = "soon")]
async fn vague() {}

#[event(timeout = "1.5s")]
async fn fractional() {}

#[event(timeout = 30)]
async fn not_a_string() {}

#[event(timeout = "0s")]
async fn zero() {}

#[event]
async fn start() {}

#[listen(start, backoff = "soon", retries = 1)]
async fn bad_backoff() {}

fn main() {}
