//! A binary without any event (a "plugin" crate that nothing names is not linked, so its
//! events are missing): `Drive::new()` says so instead of building an empty drive (issue 10,
//! item 7). This file defines no event on purpose.

use drive_flow::{BuildError, Drive, DriveBuilder, Error};

#[test]
fn drive_new_without_any_event_is_an_error_that_says_why() {
    let error = Drive::new().unwrap_err();
    assert!(
        matches!(error, Error::Build(BuildError::NoEvents)),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with("Drive::new() found no event in this program"),
        "{text}"
    );
    assert!(text.contains("`use my_events as _;`"), "{text}");
}

#[test]
fn a_builder_with_no_event_still_builds() {
    let drive = DriveBuilder::new().build().unwrap();
    assert!(drive.is_empty());
}
