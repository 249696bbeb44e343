// A run has one context: an event taking two context types could never run.
use drive_flow::prelude::*;

struct Db;
struct Cache;

#[event]
async fn start(db: Context<Db>, input: EventInput, cache: Context<Cache>) {
    let _ = (db, input, cache);
}

fn main() {}
