//! Valid forms that are easy to get wrong in the macros: qualified attribute paths, several
//! groups with options, trailing commas, paths to events in other modules, every supported
//! return type, parameters in any order, doc comments and attributes kept, `pub` events.

use drive_flow::prelude::*;

mod upstream {
    use drive_flow::prelude::*;

    /// A documented, public event in another module.
    #[event]
    pub async fn source() -> u8 {
        1
    }
}

#[drive_flow::event]
async fn unit() {}

#[listen(upstream::source,)]
async fn trailing_comma(input: EventInput) -> u8 {
    *input.get(upstream::source).unwrap_or(&0)
}

#[listen(unit)]
#[drive_flow::listen(upstream::source, unit, name = "both", retrigger = any)]
async fn two_groups(_ctx: Context<u32>, input: EventInput) -> usize {
    input.results().len()
}

#[listen(unit, retrigger = all)]
async fn fallible() -> Result<String, std::io::Error> {
    Ok(String::new())
}

#[listen(unit)]
async fn with_anyhow() -> anyhow::Result<u8> {
    Ok(1)
}

#[listen(unit)]
async fn boxed_error() -> Result<(), drive_flow::BoxError> {
    Err("a string error".into())
}

#[listen(fallible)]
async fn flows(input: EventInput) -> Result<Flow<u16>, String> {
    match input.behavior() {
        Behavior::Goto => Ok(Flow::abort()),
        _ => Ok(Flow::goto((unit, fallible), 3)),
    }
}

#[listen(flows)]
#[allow(clippy::unused_async)]
async fn plain_flow() -> Flow<()> {
    Flow::goto(vec![drive_flow::EventRef::from(unit)], ())
}

/// `Self` inside items nested in the body is theirs: not a sign of an associated function.
#[listen(unit)]
async fn nested_items() -> u8 {
    struct Local(u8);
    impl Local {
        fn new() -> Self {
            Self(1)
        }
    }
    Local::new().0
}

/// The same context type twice: both are the run's context.
#[listen(unit)]
async fn same_context_twice(a: Context<u32>, b: Context<u32>) -> u32 {
    *a + *b
}

/// An event that is also an entry point (`#[event]` together with `#[listen]`).
#[event]
#[listen(plain_flow)]
async fn both_attributes() {}

async fn run() -> Result<(), drive_flow::Error> {
    let drive = Drive::new()?;
    let results = drive.invoke(unit).context(7u32).await?;
    let _: Option<&u8> = results.get(trailing_comma);
    let _: Option<&usize> = results.get(two_groups);
    let _: Option<&String> = results.get(fallible);
    let _: Option<&u16> = results.get(flows);
    let _: Option<&()> = results.get(both_attributes);
    let _ = drive.debug_string(with_anyhow);
    let _ = drive.debug_string(boxed_error);
    Ok(())
}

fn main() {
    let _ = run;
}
