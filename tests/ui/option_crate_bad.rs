use drive_flow::prelude::*;

// `crate` takes the path of the drive-flow crate, as a string.
#[event(crate = drive_flow)]
async fn unquoted() {}

#[event(crate = "not a path")]
async fn not_a_path() {}

#[event]
async fn a() {}

#[listen(a, crate = "drive_flow")]
#[listen(a, name = "again", crate = "drive_flow")]
async fn twice() {}

// A valid one: the default path, spelled out.
#[event(crate = "::drive_flow")]
async fn spelled_out() {}

fn main() {
    let _ = (unquoted, not_a_path, twice, spelled_out);
}
