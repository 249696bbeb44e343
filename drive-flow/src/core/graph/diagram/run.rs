//! Pictures of one run: the graph with what the run did on it (Mermaid and DOT), and the
//! timeline of a timed run (a Mermaid gantt chart). See [`Results::to_mermaid`],
//! [`Results::to_dot`] and [`Results::to_gantt`].
//!
//! [`Results::to_mermaid`]: crate::Results::to_mermaid
//! [`Results::to_dot`]: crate::Results::to_dot
//! [`Results::to_gantt`]: crate::Results::to_gantt

use std::fmt::Write;
use std::time::Duration;

use super::{dot, dot_text, labels, mermaid, mermaid_text, Scene};
use crate::core::dispatch::EventRun;
use crate::core::graph::{Graph, NodeId};
use crate::core::input::OutcomeKind;
use crate::core::trace::RunTrace;

/// The scene of a run: what its start and every event that ran reach, each event with a
/// note of what it did, those that never ran greyed out.
fn scene(graph: &Graph, events: &[EventRun], trace: &RunTrace) -> Scene {
    let ran = events.iter().filter(|event| event.completions > 0);
    let roots: Vec<NodeId> = trace
        .start
        .into_iter()
        .chain(ran.map(|event| event.node))
        .collect();
    let mut scene = Scene::from_roots(graph, &roots, trace.start);
    for &node in &scene.nodes {
        if scene.boxed[node as usize] == 0 {
            scene.idle[node as usize] = true;
            scene.notes[node as usize] = String::from("not run");
        } else {
            // A declared child workflow runs in child runs of its own, with results of
            // their own: this run's results do not say what it did.
            scene.notes[node as usize] = String::from("child workflow");
        }
    }
    for event in events.iter().filter(|event| event.completions > 0) {
        let node = event.node as usize;
        scene.idle[node] = false;
        scene.notes[node] = note(event, trace.timed);
    }
    scene
}

/// What one event did: `3 runs · goto`, then its failed attempts and total time if any.
fn note(event: &EventRun, timed: bool) -> String {
    let runs = event.completions;
    let mut note = format!("{runs} run{}", if runs == 1 { "" } else { "s" });
    if let Some(latest) = &event.latest {
        note.push_str(" · ");
        note.push_str(outcome_name(latest.kind()));
    }
    let failed = event.attempts.saturating_sub(runs);
    if failed > 0 {
        let _ = write!(note, " · {failed} failed");
    }
    if timed {
        let _ = write!(note, " · {:.3?}", Duration::from_nanos(event.nanos));
    }
    note
}

fn outcome_name(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Value => "value",
        OutcomeKind::Goto => "goto",
        OutcomeKind::Abort => "abort",
    }
}

/// `×3`: how many times a goto pair jumped.
fn jumps(count: u32) -> String {
    format!("goto ×{count}")
}

/// The Mermaid flowchart of a run.
pub(crate) fn run_mermaid(graph: &Graph, events: &[EventRun], trace: &RunTrace) -> String {
    let mut out = mermaid(graph, &scene(graph, events, trace));
    let mut gotos = String::new();
    for &(source, target, count) in trace.gotos() {
        let _ = writeln!(
            gotos,
            "    e{source} -.->|\"{}\"| e{target}",
            mermaid_text(&jumps(count))
        );
    }
    // Before the class lines, if any: edges first, styles last.
    let at = out.find("    classDef ").unwrap_or(out.len());
    out.insert_str(at, &gotos);
    out
}

/// The Graphviz DOT digraph of a run.
pub(crate) fn run_dot(graph: &Graph, events: &[EventRun], trace: &RunTrace) -> String {
    let mut out = dot(graph, &scene(graph, events, trace));
    // The digraph ends with "}\n": the gotos go inside it.
    if out.ends_with("}\n") {
        out.truncate(out.len() - 2);
    }
    for &(source, target, count) in trace.gotos() {
        let _ = writeln!(
            out,
            "    e{source} -> e{target} [label=\"{}\", style=dashed];",
            dot_text(&jumps(count))
        );
    }
    out.push_str("}\n");
    out
}

/// The Mermaid gantt chart of a timed run: a section per event (in the order they first
/// started), a bar per event run (by start; ties by task id), times in milliseconds from the
/// start of the run, rounded, a bar at least 1 ms long; each bar's label has the task id
/// and the exact time.
pub(crate) fn run_gantt(graph: &Graph, trace: &RunTrace, elapsed: Duration) -> String {
    let mut out = String::from("gantt\n");
    let start = trace.start.map(|node| short(&graph.node(node).name));
    let _ = writeln!(
        out,
        "    title {} · every event run · ms from the start of the run",
        gantt_text(start.unwrap_or("run"))
    );
    out.push_str("    dateFormat x\n");
    let axis = if elapsed < Duration::from_secs(60) {
        "%S.%L"
    } else {
        "%H:%M:%S"
    };
    let _ = writeln!(out, "    axisFormat {axis}");
    if !trace.timed {
        out.push_str("    %% not a timed run: start it with `.timed()` to see its timeline\n");
        return out;
    }
    let mut runs = trace.timeline.clone();
    runs.sort_by_key(|run| (run.began, run.task_id));
    let Some(zero) = runs.first().map(|run| run.began) else {
        return out;
    };
    // Sections in the order their events first started.
    let mut sections: Vec<NodeId> = Vec::new();
    for run in &runs {
        if !sections.contains(&run.node) {
            sections.push(run.node);
        }
    }
    let names = labels(graph, &sections);
    let millis = |duration: Duration| (duration.as_micros() + 500) / 1000;
    for &node in &sections {
        let _ = writeln!(out, "    section {}", gantt_text(&names[node as usize]));
        for run in runs.iter().filter(|run| run.node == node) {
            let begin = millis(run.began.saturating_duration_since(zero));
            let end = millis(run.ended.saturating_duration_since(zero)).max(begin + 1);
            let took = run.ended.saturating_duration_since(run.began);
            let _ = writeln!(
                out,
                "    task {} · {took:.3?} :t{}, {begin}, {end}",
                run.task_id, run.task_id
            );
        }
    }
    out
}

/// An event id without its module path.
fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// Text in a gantt title, section or task name: `::` becomes `.`, and the characters that
/// end a name (`:`, `;`, `#`) or a line become spaces.
fn gantt_text(text: &str) -> String {
    text.replace("::", ".")
        .chars()
        .map(|c| match c {
            ':' | ';' | '#' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}
