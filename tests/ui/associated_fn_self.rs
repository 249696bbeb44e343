// An associated function that names `Self`: the macro sees it and says so.
use drive_flow::prelude::*;

struct Service;

impl Service {
    #[event]
    async fn start() -> u32 {
        Self::answer()
    }

    fn answer() -> u32 {
        42
    }
}

fn main() {}
