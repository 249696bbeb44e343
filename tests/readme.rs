//! The README stays true: its diagram is the one the code generates, its snippets are cut
//! from examples that compile, and its commands are the ones CI runs.

use std::path::Path;

use drive_flow::prelude::*;

// The ReAct example's events, registered in this test binary (and nothing else is).
#[allow(dead_code)]
#[path = "../examples/react_agent.rs"]
mod react_agent;

const README: &str = include_str!("../README.md");
const MARKER: &str = "<!-- react_agent mermaid: generated, do not edit by hand -->";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced blocks of the README with this info string, in order.
fn blocks(info: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match &mut current {
            None if line.trim_end() == format!("```{info}") => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => found.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(
        current.is_none(),
        "README.md has an unclosed ```{info} block"
    );
    found
}

fn examples() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_readme_diagram_is_what_the_react_agent_generates() {
    let generated = Drive::new().unwrap().to_mermaid();
    assert!(generated.contains(r#"(["plan"])"#), "{generated}");
    let after_marker = README
        .split_once(MARKER)
        .expect("README.md lost the marker above the react_agent diagram")
        .1;
    let block = after_marker
        .trim_start()
        .strip_prefix("```mermaid\n")
        .and_then(|rest| rest.split_once("```"))
        .expect("a ```mermaid block right after the marker")
        .0;
    assert_eq!(
        block, generated,
        "README.md's diagram is out of date: replace it with the output of \
         `cargo run --example react_agent -- --mermaid`"
    );
}

#[test]
fn every_rust_snippet_is_cut_from_an_example() {
    let examples = examples();
    let snippets = blocks("rust");
    assert!(snippets.len() >= 6, "{} rust snippets", snippets.len());
    for snippet in snippets {
        let found = examples.iter().any(|(_, text)| text.contains(&snippet));
        assert!(found, "this README snippet is in no example:\n{snippet}");
    }
}

#[test]
fn the_quick_start_is_the_whole_hello_world_example() {
    let hello = std::fs::read_to_string(root().join("examples/hello_world.rs")).unwrap();
    assert_eq!(blocks("rust").first(), Some(&hello));
}

#[test]
fn the_set_up_commands_are_the_ones_ci_runs() {
    let set_up = blocks("shell");
    let set_up = set_up
        .first()
        .expect("a ```shell block with the set-up commands");
    let commands: Vec<&str> = set_up
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --example react_agent", "cargo test --workspace"]
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("\ncargo test --workspace"), "{ci}");
}

#[test]
fn every_example_is_in_the_readme_and_run_by_ci() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    for (name, _) in examples() {
        if name == "bench" || name == "durable_bench" {
            continue; // the benchmarks: their own sections and CI steps
        }
        assert!(
            README.contains(&format!("| `{name}` |")),
            "example `{name}` is missing from the README's table"
        );
        // .ci/run runs an example with `run SECONDS NAME [ARGS]`.
        let runs = ci.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .windows(3)
                .any(|w| w[0] == "run" && w[1].parse::<u32>().is_ok() && w[2] == name.as_str())
        });
        assert!(runs, "example `{name}` is not run by .ci/run");
    }
}
