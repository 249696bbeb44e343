use drive_flow::prelude::*;

#[event(retries = -1)]
async fn negative() {}

#[event(retries = "3")]
async fn quoted() {}

#[event]
async fn a() {}

#[event]
async fn b() {}

// Event options belong to the event, not to one group: once across all attributes.
#[listen(a, retries = 1, timeout = "1s")]
#[listen(b, retries = 2, timeout = "2s")]
async fn twice() {}

#[event(backoff = "100ms")]
async fn backoff_without_retries() {}

fn main() {}
