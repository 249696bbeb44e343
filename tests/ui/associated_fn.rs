use drive_flow::prelude::*;

struct Service;

impl Service {
    #[event]
    async fn start() {}
}

fn main() {}
