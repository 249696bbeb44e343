use drive_flow::prelude::*;

async fn plain() {}

#[listen(plain)]
async fn world() {}

fn main() {}
