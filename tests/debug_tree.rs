//! `Drive::debug_string`: the dependency tree of SEMANTICS.md, with full event ids.

use drive_flow::prelude::*;
use drive_flow::{DriveBuilder, Group};

/// The example of SEMANTICS.md "The dependency tree": `adding` listens to [hello, world]
/// ("0") and to [start] ("1"); `hello` listens to [start] ("0") and to [adding] ("again").
mod tree {
    use super::*;

    #[event]
    pub async fn start() {}

    #[listen(adding, name = "again")]
    #[listen(start)]
    pub async fn hello() -> i32 {
        1
    }

    #[listen(start)]
    pub async fn world() -> i32 {
        2
    }

    #[listen(start)]
    #[listen(hello, world)]
    pub async fn adding(input: EventInput) -> i32 {
        input.get(hello).unwrap() + input.get(world).unwrap()
    }
}

#[test]
fn the_tree_of_semantics_md_with_full_ids() {
    let drive = Drive::new().unwrap();
    let adding = "debug_tree::tree::adding";
    let hello = "debug_tree::tree::hello";
    let world = "debug_tree::tree::world";
    let start = "debug_tree::tree::start";
    let expected = [
        adding.to_string(),
        "├─ <0>".to_string(),
        format!("│   ├─ {hello}"),
        "│   │  ├─ <0>".to_string(),
        format!("│   │  │   └─ {start}"),
        "│   │  └─ <again>".to_string(),
        format!("│   │      └─ {adding} <loop>"),
        format!("│   └─ {world}"),
        "│      └─ <0>".to_string(),
        format!("│          └─ {start}"),
        "└─ <1>".to_string(),
        format!("    └─ {start}"),
    ]
    .map(|line| line + "\n")
    .concat();
    assert_eq!(drive.debug_string(tree::adding), expected);
}

#[test]
fn the_tree_of_an_event_without_groups_is_its_name() {
    let drive = Drive::new().unwrap();
    assert_eq!(drive.debug_string(tree::start), "debug_tree::tree::start\n");
}

#[test]
fn a_loop_is_cut_at_the_first_repeated_event_on_the_path() {
    let drive = Drive::new().unwrap();
    let hello = "debug_tree::tree::hello";
    let adding = "debug_tree::tree::adding";
    let world = "debug_tree::tree::world";
    let start = "debug_tree::tree::start";
    let expected = [
        hello.to_string(),
        "├─ <0>".to_string(),
        format!("│   └─ {start}"),
        "└─ <again>".to_string(),
        format!("    └─ {adding}"),
        "       ├─ <0>".to_string(),
        format!("       │   ├─ {hello} <loop>"),
        format!("       │   └─ {world}"),
        "       │      └─ <0>".to_string(),
        format!("       │          └─ {start}"),
        "       └─ <1>".to_string(),
        format!("           └─ {start}"),
    ]
    .map(|line| line + "\n")
    .concat();
    assert_eq!(drive.debug_string(tree::hello), expected);
}

#[test]
fn builder_events_show_their_names_and_foreign_events_are_flagged() {
    let mut builder = DriveBuilder::new();
    let begin = builder.event("begin", || async {});
    let left = builder.event("left", || async {});
    let right = builder.event("right", || async {});
    let both = builder.event("both", || async {});
    builder
        .listen(left, Group::new([begin]))
        .listen(right, Group::new([begin]))
        .listen(both, Group::new([left, right]).name("pair"));
    let drive = builder.build().unwrap();
    assert_eq!(
        drive.debug_string(both),
        "both\n\
         └─ <pair>\n\
         \x20   ├─ left\n\
         \x20   │  └─ <0>\n\
         \x20   │      └─ begin\n\
         \x20   └─ right\n\
         \x20      └─ <0>\n\
         \x20          └─ begin\n"
    );

    // An event that is not part of this drive is named, and said to be foreign.
    let tree = drive.debug_string(tree::adding);
    assert_eq!(
        tree,
        "`debug_tree::tree::adding` (not an event of this drive)\n"
    );
}
