use drive_flow::prelude::*;

#[event]
async fn start<T: Default>() -> T {
    T::default()
}

fn main() {}
