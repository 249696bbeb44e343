use std::rc::Rc;

use drive_flow::prelude::*;

#[event]
async fn start() -> i32 {
    let shared = Rc::new(1);
    tokio::task::yield_now().await;
    *shared
}

fn main() {}
