//! Events may be named like the locals and items of the code the macros generate: the
//! generated code must not capture them, nor be captured by them.

use drive_flow::prelude::*;

#[event]
async fn call() -> u8 {
    1
}

#[event]
async fn handler() -> u8 {
    2
}

#[event]
async fn builder() -> u8 {
    3
}

#[event]
async fn returned() -> u8 {
    4
}

#[event]
async fn register() -> u8 {
    5
}

#[allow(non_upper_case_globals)]
#[event]
async fn META() -> u8 {
    6
}

#[listen(call, handler, builder, returned, register, META)]
async fn sum(input: EventInput) -> u8 {
    input.get(call).copied().unwrap_or(0)
        + input.get(handler).copied().unwrap_or(0)
        + input.get(builder).copied().unwrap_or(0)
        + input.get(returned).copied().unwrap_or(0)
        + input.get(register).copied().unwrap_or(0)
        + input.get(META).copied().unwrap_or(0)
}

fn main() {}
