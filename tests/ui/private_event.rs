use drive_flow::prelude::*;

mod steps {
    use drive_flow::prelude::*;

    #[event]
    async fn fetch() -> u32 {
        1
    }
}

#[listen(steps::fetch)]
async fn store() {}

fn main() {}
