//! Two events of one name defined in two function bodies of one module (here, one per test)
//! share an id: events take the path of their module. Every drive of the binary still
//! builds; each run finds its own event; where they are shown, each is named after its
//! definition; and `Drive::check_unique_ids`, which durable runs call, names both.

use drive_flow::prelude::*;
use drive_flow::{BuildError, DriveBuilder};

/// `file:line:column` of an event named `step` or `next` defined at `line` of this file, with
/// the indentation of the tests below.
fn site(line: u32) -> String {
    format!("{}:{line}:14", file!())
}

#[tokio::test]
async fn the_first_test_runs_its_own_events() {
    let step_line = line!() + 2;
    #[event]
    async fn step() -> &'static str {
        "first"
    }
    let next_line = line!() + 2;
    #[listen(step)]
    async fn next(input: EventInput) -> String {
        format!("after {}", input.get(step).unwrap())
    }

    let drive = Drive::new().unwrap();
    let results = drive.invoke(step).await.unwrap();
    assert_eq!(results.get(step), Some(&"first"));
    assert_eq!(results.get(next).map(String::as_str), Some("after first"));
    assert_eq!(
        drive.debug_string(next),
        format!(
            "duplicate_ids::next@{}\n└─ <0>\n    └─ duplicate_ids::step@{}\n",
            site(next_line),
            site(step_line)
        )
    );

    // The first definitions in the file come first.
    match drive.check_unique_ids() {
        Err(BuildError::AmbiguousEvent { id, first, second }) => {
            assert_eq!(id, "duplicate_ids::next");
            assert_eq!(first, site(next_line));
            assert_ne!(second, first);
        }
        other => panic!("expected AmbiguousEvent, got {other:?}"),
    }
}

#[tokio::test]
async fn the_second_test_runs_its_own_events() {
    let step_line = line!() + 2;
    #[event]
    async fn step() -> &'static str {
        "second"
    }
    let next_line = line!() + 2;
    #[listen(step)]
    async fn next(input: EventInput) -> String {
        format!("after {}", input.get(step).unwrap())
    }

    let drive = Drive::new().unwrap();
    let results = drive.invoke(step).await.unwrap();
    assert_eq!(results.get(step), Some(&"second"));
    assert_eq!(results.get(next).map(String::as_str), Some("after second"));
    assert_eq!(
        drive.debug_string(step),
        format!("duplicate_ids::step@{}\n", site(step_line))
    );

    match drive.check_unique_ids() {
        Err(error @ BuildError::AmbiguousEvent { .. }) => {
            let BuildError::AmbiguousEvent { id, second, .. } = &error else {
                unreachable!()
            };
            assert_eq!(id, "duplicate_ids::next");
            assert_eq!(*second, site(next_line));
            assert!(
                error.to_string().starts_with(&format!(
                    "two events have the id `duplicate_ids::next`, defined at {}:",
                    file!()
                )),
                "{error}"
            );
        }
        other => panic!("expected AmbiguousEvent, got {other:?}"),
    }
}

#[event]
async fn unique() {}

#[test]
fn ids_used_once_pass_the_check() {
    let mut builder = DriveBuilder::new();
    builder.event("a", || async {});
    builder.event("b", || async {});
    builder.build().unwrap().check_unique_ids().unwrap();
}

#[test]
fn a_builder_name_must_differ_from_the_ids_of_the_macros() {
    let mut builder = DriveBuilder::new();
    builder.add_registered();
    builder.event("duplicate_ids::unique", || async {});
    let error = builder.build().err().unwrap();
    assert!(
        matches!(&error, BuildError::DuplicateEvent { event } if event == "duplicate_ids::unique"),
        "{error:?}"
    );
}
