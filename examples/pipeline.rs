//! Fan-out / fan-in over many inputs, with a cap on concurrency and typed results: what a
//! Rust user gets on top of the Python version.
//!
//! One workflow per document: `fetch` (a 20 ms network call), then `count_words` and
//! `checksum` at the same time, joined (with `fetch`) by `summarize`, which builds a typed `Report`. The
//! workflow runs over 201 documents, at most `CAP` runs at once: a `Drive` is cheap to
//! clone and a run is an ordinary `Send` future, so any stream combinator (here
//! `buffer_unordered`) or `tokio::spawn` schedules runs. Each run's outcome is typed:
//! `results.get(summarize)` is an `Option<&Report>`, and a failed run is an `Error` naming
//! the event that failed (one document is missing on purpose).
//!
//! Run with `cargo run --example pipeline`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drive_flow::prelude::*;
use futures::StreamExt;

/// At most this many runs at once.
const CAP: usize = 16;
/// How long a fetch takes.
const FETCH: Duration = Duration::from_millis(20);

/// A fetched document.
struct Document {
    name: String,
    text: String,
}

/// What the workflow makes of a document.
#[derive(Clone, Debug)]
struct Report {
    name: String,
    words: usize,
    checksum: u32,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("document {0:?} not found")]
    NotFound(String),
    #[error("no document name given (start the run with EventInput::from_input(name))")]
    NoName,
}

/// The context every run shares: the documents, and a gauge of fetches in flight.
struct Library {
    documents: HashMap<String, String>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl Library {
    /// `count` documents of made-up words, the same every time.
    fn generate(count: usize) -> Library {
        let mut seed: u32 = 12345;
        let mut next = move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as usize
        };
        let syllables = [
            "dri", "ve", "flo", "w", "to", "kio", "rust", "a", "sync", "ev",
        ];
        let documents = (0..count)
            .map(|i| {
                let words: Vec<String> = (0..20 + next() % 80)
                    .map(|_| {
                        (0..1 + next() % 3)
                            .map(|_| syllables[next() % syllables.len()])
                            .collect()
                    })
                    .collect();
                (format!("doc-{i:03}"), words.join(" "))
            })
            .collect();
        Library {
            documents,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }
}

#[event]
async fn fetch(input: EventInput, library: Context<Library>) -> Result<Document, FetchError> {
    let name = input.user::<String>().ok_or(FetchError::NoName)?;
    let now = library.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    library.peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(FETCH).await;
    library.in_flight.fetch_sub(1, Ordering::SeqCst);
    let text = library.documents.get(name).cloned();
    let text = text.ok_or_else(|| FetchError::NotFound(name.clone()))?;
    Ok(Document {
        name: name.clone(),
        text,
    })
}

#[listen(fetch)]
async fn count_words(input: EventInput) -> usize {
    input
        .get(fetch)
        .map_or(0, |document| document.text.split_whitespace().count())
}

#[listen(fetch)]
async fn checksum(input: EventInput) -> u32 {
    // FNV-1a
    let text = input
        .get(fetch)
        .map_or("", |document| document.text.as_str());
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[listen(fetch, count_words, checksum)]
async fn summarize(input: EventInput) -> Report {
    Report {
        name: input.get(fetch).map(|d| d.name.clone()).unwrap_or_default(),
        words: input.get(count_words).copied().unwrap_or(0),
        checksum: input.get(checksum).copied().unwrap_or(0),
    }
}

#[tokio::main]
async fn main() -> Result<(), drive_flow::Error> {
    let drive = Drive::new()?;
    let library = Arc::new(Library::generate(200));
    let mut names: Vec<String> = library.documents.keys().cloned().collect();
    names.sort();
    names.push("doc-missing".to_string());
    println!("{} documents, at most {CAP} runs at once", names.len());

    let began = Instant::now();
    let outcomes: Vec<(String, Result<Option<Report>, drive_flow::Error>)> =
        futures::stream::iter(names)
            .map(|name| {
                let run = drive
                    .invoke(fetch)
                    .input(EventInput::from_input(name.clone()))
                    .context_arc(library.clone());
                async move {
                    // `results.get(summarize)` is an `Option<&Report>`: typed, no casts.
                    let report = run.await.map(|results| results.get(summarize).cloned());
                    (name, report)
                }
            })
            .buffer_unordered(CAP)
            .collect()
            .await;
    let took = began.elapsed();

    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(Some(report)) => reports.push(report),
            Ok(None) => failures.push(format!("{name}: the run ended without a report")),
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));

    let words: usize = reports.iter().map(|r| r.words).sum();
    let combined = reports.iter().fold(0u32, |all, r| all ^ r.checksum);
    println!(
        "ok: {} reports, {words} words in all, checksums combined {combined:#010x}",
        reports.len()
    );
    if let Some(longest) = reports
        .iter()
        .max_by_key(|r| (r.words, std::cmp::Reverse(&r.name)))
    {
        println!("longest: {} ({} words)", longest.name, longest.words);
    }
    println!("failed: {}", failures.len());
    for failure in &failures {
        println!("  {failure}");
    }
    println!(
        "peak fetches in flight: {} (cap {CAP})",
        library.peak.load(Ordering::SeqCst)
    );
    println!(
        "took {} ms (one document at a time: at least {} ms)",
        took.as_millis(),
        FETCH.as_millis() * (reports.len() + failures.len()) as u128
    );
    Ok(())
}
