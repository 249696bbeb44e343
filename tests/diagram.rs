//! `Drive::to_mermaid`, `to_dot` and their variants restricted to what one event reaches.

use drive_flow::prelude::*;
use drive_flow::{DriveBuilder, Group};

/// start → a, b; c joins [a, b] (any); d listens to [c] and to itself ("again").
fn sample() -> (Drive, [drive_flow::Handle<()>; 5]) {
    let mut builder = DriveBuilder::new();
    let start = builder.event("start", || async {});
    let a = builder.event("a", || async {});
    let b = builder.event("b", || async {});
    let c = builder.event("c", || async {});
    let d = builder.event("d", || async {});
    builder.listen(a, Group::new([start]));
    builder.listen(b, Group::new([start]));
    builder.listen(c, Group::new([a, b]).name("both").retrigger(Retrigger::Any));
    builder.listen(d, Group::new([c]));
    builder.listen(d, Group::new([d]).name("again"));
    let drive = builder.build().unwrap();
    (drive, [start, a, b, c, d])
}

#[test]
fn mermaid_of_the_whole_graph() {
    let (drive, _) = sample();
    assert_eq!(
        drive.to_mermaid(),
        r#"flowchart TD
    e0(["start"])
    e1["a"]
    e2["b"]
    e3["c"]
    e4["d"]
    e0 -->|"0"| e1
    e0 -->|"0"| e2
    g2{{"both · any"}}
    e1 --- g2
    e2 --- g2
    g2 --> e3
    e3 -->|"0"| e4
    e4 -.->|"again"| e4
"#
    );
}

#[test]
fn dot_of_the_whole_graph() {
    let (drive, _) = sample();
    assert_eq!(
        drive.to_dot(),
        r#"digraph drive_flow {
    node [shape=box];
    e0 [label="start", style=rounded];
    e1 [label="a"];
    e2 [label="b"];
    e3 [label="c"];
    e4 [label="d"];
    e0 -> e1 [label="0"];
    e0 -> e2 [label="0"];
    g2 [label="both · any", shape=hexagon];
    e1 -> g2 [arrowhead=none];
    e2 -> g2 [arrowhead=none];
    g2 -> e3;
    e3 -> e4 [label="0"];
    e4 -> e4 [label="again", style=dotted];
}
"#
    );
}

#[test]
fn the_part_reachable_from_an_event_is_downstream_only() {
    let (drive, [_, a, _, c, _]) = sample();
    // From `a`: c (through the join, whose other member `b` is not reached) and d.
    assert_eq!(
        drive.to_mermaid_from(a),
        r#"flowchart TD
    e1["a"]
    e2["b"]
    e3["c"]
    e4["d"]
    g2{{"both · any"}}
    e1 --- g2
    e2 --- g2
    g2 --> e3
    e3 -->|"0"| e4
    e4 -.->|"again"| e4
    classDef outside stroke-dasharray: 5 5
    class e2 outside
"#
    );
    assert_eq!(
        drive.to_dot_from(c),
        r#"digraph drive_flow {
    node [shape=box];
    e3 [label="c"];
    e4 [label="d"];
    e3 -> e4 [label="0"];
    e4 -> e4 [label="again", style=dotted];
}
"#
    );
}

#[test]
fn an_event_with_no_listener_is_drawn_alone() {
    let (drive, [.., d]) = sample();
    // `d` only feeds itself.
    assert_eq!(
        drive.to_mermaid_from(d),
        "flowchart TD\n    e4[\"d\"]\n    e4 -.->|\"again\"| e4\n"
    );
}

#[test]
fn the_arrow_that_closes_a_loop_is_dotted() {
    // a → b → c → a, with no start event: the walk starts at `a`, the first registered.
    let mut builder = DriveBuilder::new();
    let a = builder.event("a", || async {});
    let b = builder.event("b", || async {});
    let c = builder.event("c", || async {});
    builder.listen(a, Group::new([c]));
    builder.listen(b, Group::new([a]));
    builder.listen(c, Group::new([b]));
    let drive = builder.build().unwrap();
    assert_eq!(
        drive.to_mermaid(),
        r#"flowchart TD
    e0["a"]
    e1["b"]
    e2["c"]
    e2 -.->|"0"| e0
    e0 -->|"0"| e1
    e1 -->|"0"| e2
"#
    );
    // Drawn from `b`, the loop closes at `b`.
    let from_b = drive.to_dot_from(b);
    assert!(
        from_b.contains("e0 -> e1 [label=\"0\", style=dotted];"),
        "{from_b}"
    );
    assert!(from_b.contains("e2 -> e0 [label=\"0\"];"), "{from_b}");
}

#[test]
fn names_are_escaped_and_ids_stay_plain() {
    let mut builder = DriveBuilder::new();
    let start = builder.event("say \"hi\" <now> #1 | a&b `x`", || async {});
    let next = builder.event("back\\slash\nnewline", || async {});
    builder.listen(next, Group::new([start]).name("<g> \"1\""));
    let drive = builder.build().unwrap();
    assert_eq!(
        drive.to_mermaid(),
        "flowchart TD\n    \
         e0([\"say #quot;hi#quot; #lt;now#gt; #35;1 #124; a#38;b #96;x#96;\"])\n    \
         e1[\"back\\slash newline\"]\n    \
         e0 -->|\"#lt;g#gt; #quot;1#quot;\"| e1\n"
    );
    assert_eq!(
        drive.to_dot(),
        "digraph drive_flow {\n    node [shape=box];\n    \
         e0 [label=\"say \\\"hi\\\" <now> #1 | a&b `x`\", style=rounded];\n    \
         e1 [label=\"back\\\\slash\\nnewline\"];\n    \
         e0 -> e1 [label=\"<g> \\\"1\\\"\"];\n}\n"
    );
}

#[test]
fn the_module_path_every_event_shares_is_left_out() {
    let mut builder = DriveBuilder::new();
    let a = builder.event("app::flow::a", || async {});
    let b = builder.event("app::flow::b", || async {});
    let c = builder.event("app::c", || async {});
    builder.listen(b, Group::new([a]));
    builder.listen(c, Group::new([b]));
    let drive = builder.build().unwrap();
    let whole = drive.to_mermaid();
    assert!(whole.contains(r#"e0(["flow::a"])"#), "{whole}");
    assert!(whole.contains(r#"e1["flow::b"]"#), "{whole}");
    assert!(whole.contains(r#"e2["c"]"#), "{whole}");
    // From `b`, both events shown share `app::`; only a whole segment is left out.
    let from_b = drive.to_mermaid_from(b);
    assert!(from_b.contains(r#"e1["flow::b"]"#), "{from_b}");
    assert!(from_b.contains(r#"e2["c"]"#), "{from_b}");
}

#[test]
fn an_event_of_another_drive_gives_an_empty_picture_that_says_so() {
    let (drive, _) = sample();
    let mut other = DriveBuilder::new();
    let stranger = other.event("stranger", || async {});
    let mermaid = drive.to_mermaid_from(stranger);
    assert!(mermaid.starts_with("flowchart TD\n    %% "), "{mermaid}");
    assert!(
        mermaid.ends_with("is not an event of this drive\n"),
        "{mermaid}"
    );
    let dot = drive.to_dot_from(stranger);
    assert!(dot.starts_with("digraph drive_flow {\n    // "), "{dot}");
    assert!(dot.ends_with("is not an event of this drive\n}\n"), "{dot}");
}

/// Events made by the macros: ids are `diagram::agent::…`; the picture shows the names.
mod agent {
    use drive_flow::prelude::*;

    #[event]
    pub async fn ask() {}

    #[listen(ask)]
    pub async fn search() {}

    #[listen(ask)]
    pub async fn recall() {}

    #[listen(search, recall, name = "context")]
    pub async fn answer() {}
}

#[test]
fn macro_events_in_registration_order_with_their_module_left_out() {
    let drive = Drive::new().unwrap();
    let expected = r#"flowchart TD
    e0["answer"]
    e1(["ask"])
    e2["recall"]
    e3["search"]
    g0{{"context · all"}}
    e3 --- g0
    e2 --- g0
    g0 --> e0
    e1 -->|"0"| e2
    e1 -->|"0"| e3
"#;
    assert_eq!(drive.to_mermaid(), expected);
    // Built again, the same text.
    assert_eq!(Drive::new().unwrap().to_mermaid(), expected);
    assert_eq!(drive.to_mermaid_from(agent::ask), expected);
}
