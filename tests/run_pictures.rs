//! Pictures of a run: `Results::to_mermaid`, `to_dot` (the graph with what the run did) and
//! `to_gantt` (the timeline of a timed run), and the goto counts they draw.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drive_flow::{Drive, DriveBuilder, EventOptions, Flow, Group, Handle};

/// A small agent loop: `plan` → `act` → `tool_a`, `tool_b` → `observe` (a join of the
/// tools) → goto `plan`, twice; then `plan` aborts. `tool_b` fails its first attempt and is
/// retried. `report` listens to `observe` and `skipped` to `report`: neither ever runs
/// (`observe` only goes to `plan`). `elsewhere` is unrelated, and not drawn.
struct Sample {
    drive: Drive,
    plan: Handle<u32>,
}

fn sample(tool_sleep: Duration) -> Sample {
    let mut builder = DriveBuilder::new();
    let turns = Arc::new(AtomicU32::new(0));
    let plan = builder.event("plan", move || {
        let turns = turns.clone();
        async move {
            let turn = turns.fetch_add(1, Ordering::SeqCst);
            if turn < 2 {
                Flow::from(turn)
            } else {
                Flow::abort()
            }
        }
    });
    let act = builder.event("act", || async { Flow::from(()) });
    let tool_a = builder.event("tool_a", move || async move {
        tokio::time::sleep(tool_sleep).await;
        Flow::from(1)
    });
    let failures = Arc::new(AtomicU32::new(0));
    let tool_b = builder.event("tool_b", move || {
        let failures = failures.clone();
        async move {
            tokio::time::sleep(tool_sleep).await;
            if failures.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(std::io::Error::other("flaky"))
            } else {
                Ok(Flow::from(2))
            }
        }
    });
    let observe = builder.event("observe", move || async move { Flow::goto([plan], ()) });
    let report = builder.event("report", || async {});
    let skipped = builder.event("skipped", || async {});
    let _elsewhere = builder.event("elsewhere", || async {});
    builder.listen(act, Group::new([plan]));
    builder.listen(tool_a, Group::new([act]));
    builder.listen(tool_b, Group::new([act]));
    builder.listen(observe, Group::new([tool_a, tool_b]).name("tools"));
    builder.listen(report, Group::new([observe]));
    builder.listen(skipped, Group::new([report]));
    builder.options(tool_b, EventOptions::new().retries(1));
    Sample {
        drive: builder.build().unwrap(),
        plan,
    }
}

#[tokio::test]
async fn the_mermaid_picture_of_a_run_counts_runs_outcomes_retries_and_gotos() {
    let Sample { drive, plan } = sample(Duration::ZERO);
    let results = drive.invoke(plan).await.unwrap();
    assert_eq!(
        results.to_mermaid(),
        r#"flowchart TD
    e0(["plan<br/>3 runs · abort"])
    e1["act<br/>2 runs · value"]
    e2["tool_a<br/>2 runs · value"]
    e3["tool_b<br/>2 runs · value · 1 failed"]
    e4["observe<br/>2 runs · goto"]
    e5["report<br/>not run"]
    e6["skipped<br/>not run"]
    e0 -->|"0"| e1
    e1 -->|"0"| e2
    e1 -->|"0"| e3
    g3{{"tools · all"}}
    e2 --- g3
    e3 --- g3
    g3 --> e4
    e4 -->|"0"| e5
    e5 -->|"0"| e6
    e4 -.->|"goto ×2"| e0
    classDef idle fill:#f4f4f4,stroke:#bbbbbb,color:#999999
    class e5,e6 idle
"#
    );
}

#[tokio::test]
async fn the_dot_picture_of_a_run_greys_out_what_never_ran_and_dashes_the_gotos() {
    let Sample { drive, plan } = sample(Duration::ZERO);
    let results = drive.invoke(plan).await.unwrap();
    assert_eq!(
        results.to_dot(),
        r#"digraph drive_flow {
    node [shape=box];
    e0 [label="plan\n3 runs · abort", style=rounded];
    e1 [label="act\n2 runs · value"];
    e2 [label="tool_a\n2 runs · value"];
    e3 [label="tool_b\n2 runs · value · 1 failed"];
    e4 [label="observe\n2 runs · goto"];
    e5 [label="report\nnot run", color=gray60, fontcolor=gray60];
    e6 [label="skipped\nnot run", color=gray60, fontcolor=gray60];
    e0 -> e1 [label="0"];
    e1 -> e2 [label="0"];
    e1 -> e3 [label="0"];
    g3 [label="tools · all", shape=hexagon];
    e2 -> g3 [arrowhead=none];
    e3 -> g3 [arrowhead=none];
    g3 -> e4;
    e4 -> e5 [label="0"];
    e5 -> e6 [label="0"];
    e4 -> e0 [label="goto ×2", style=dashed];
}
"#
    );
    let gotos: Vec<_> = results.gotos().collect();
    assert_eq!(gotos, [("observe", "plan", 2)]);
}

/// `total` of a timed run appears in the picture: the tools sleep 30 ms each.
#[tokio::test]
async fn a_timed_run_shows_each_events_total_time() {
    let Sample { drive, plan } = sample(Duration::from_millis(30));
    let results = drive.invoke(plan).timed().await.unwrap();
    let picture = results.to_mermaid();
    let line = picture
        .lines()
        .find(|line| line.contains("tool_a<br/>"))
        .unwrap();
    // `    e2["tool_a<br/>2 runs · value · 60.123ms"]`: two runs of at least 30 ms each.
    let time = line
        .strip_prefix("    e2[\"tool_a<br/>2 runs · value · ")
        .and_then(|rest| rest.strip_suffix("ms\"]"))
        .unwrap_or_else(|| panic!("{line}"));
    let millis: f64 = time.parse().unwrap();
    assert!(millis >= 60.0, "{line}");
}

/// The gantt chart: a section per event in the order they first started, a bar per event
/// run in order of start; the tools overlap (they run at the same time).
#[tokio::test]
async fn the_gantt_chart_has_a_bar_per_event_run_in_order() {
    let Sample { drive, plan } = sample(Duration::from_millis(40));
    let results = drive.invoke(plan).timed().await.unwrap();
    let chart = results.to_gantt();
    let lines: Vec<&str> = chart.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "gantt",
            "    title plan · every event run · ms from the start of the run",
            "    dateFormat x",
            "    axisFormat %S.%L",
        ]
    );
    // Sections and task ids, in order (task ids as the dispatch numbers them: plan 1, act
    // 2, tools 3 and 4, observe 5, plan 6, ...).
    let shape: Vec<String> = lines[4..]
        .iter()
        .map(|line| {
            if let Some(section) = line.strip_prefix("    section ") {
                format!("section {section}")
            } else {
                let task = line.trim_start().split(' ').nth(1).unwrap();
                format!("task {task}")
            }
        })
        .collect();
    assert_eq!(
        shape,
        [
            "section plan",
            "task 1",
            "task 6",
            "task 11",
            "section act",
            "task 2",
            "task 7",
            "section tool_a",
            "task 3",
            "task 8",
            "section tool_b",
            "task 4",
            "task 9",
            "section observe",
            "task 5",
            "task 10",
        ]
    );
    // Every bar: `task N · <time> :tN, <start>, <end>` with start < end.
    let mut bars = std::collections::HashMap::new();
    for line in lines.iter().filter(|line| line.starts_with("    task ")) {
        let (label, data) = line.split_once(" :").unwrap();
        let task: u64 = label.split(' ').nth(5).unwrap().parse().unwrap();
        let fields: Vec<&str> = data.split(", ").collect();
        assert_eq!(fields[0], format!("t{task}"), "{line}");
        let (start, end): (u64, u64) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        assert!(start < end, "{line}");
        bars.insert(task, (start, end));
    }
    assert_eq!(bars.len(), 11);
    // The first bar starts the run; tool_a (3) and tool_b (4) overlap; observe (5) starts
    // after both; tool_b ran twice in its task (a failed attempt, then a retry).
    assert_eq!(bars[&1].0, 0);
    let (a, b) = (bars[&3], bars[&4]);
    assert!(a.0 < b.1 && b.0 < a.1, "the tools overlap: {a:?} {b:?}");
    assert!(bars[&5].0 >= a.1.max(b.1) - 1);
    assert!(b.1 - b.0 >= 79, "two attempts of 40 ms: {b:?}");
}

#[tokio::test]
async fn an_untimed_run_has_no_timeline() {
    let Sample { drive, plan } = sample(Duration::ZERO);
    let results = drive.invoke(plan).await.unwrap();
    assert_eq!(
        results.to_gantt(),
        "gantt
    title plan · every event run · ms from the start of the run
    dateFormat x
    axisFormat %S.%L
    %% not a timed run: start it with `.timed()` to see its timeline
"
    );
}
