use std::rc::Rc;

use drive_flow::prelude::*;

#[event]
async fn start() -> Rc<i32> {
    Rc::new(1)
}

fn main() {}
