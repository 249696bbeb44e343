//! Hello world, in order: `world` listens to `hello`, so it runs once `hello` is done.
//!
//! Run with `cargo run --example hello_world`.

use drive_flow::prelude::*;

#[event]
async fn hello() {
    println!("hello");
}

#[listen(hello)]
async fn world() {
    println!("world");
}

#[tokio::main]
async fn main() -> Result<(), drive_flow::Error> {
    let drive = Drive::new()?;
    // The dependencies of `world`.
    print!("{}", drive.debug_string(world));
    drive.invoke(hello).await?;
    Ok(())
}
