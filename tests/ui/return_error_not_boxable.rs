use drive_flow::prelude::*;

#[derive(Debug)]
struct MyError;

#[event]
async fn start() -> Result<i32, MyError> {
    Err(MyError)
}

#[listen(start)]
async fn next() -> Result<Flow<i32>, MyError> {
    Ok(Flow::abort())
}

fn main() {}
