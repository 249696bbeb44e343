// An event is a free function; the macro cannot see the `impl` block around it, and the
// `impl` block cannot hold what it generates: one error, at the attribute.
use drive_flow::prelude::*;

struct Service;

impl Service {
    #[event]
    async fn start() {}
}

fn main() {}
