//! The trace context of durable runs (features `postgres` and `opentelemetry`): the span
//! around `submit()` is the parent of the start event's span, and the span of each event
//! run is the parent of the spans of the events it triggers, on whichever worker they run;
//! every span of the run is in the submitting span's trace. Spans are recorded through
//! `tracing-opentelemetry` over an SDK tracer whose exporter keeps them in memory.

mod durable_support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use drive_flow::durable::{sqlx, RunId, RunState};
use drive_flow::prelude::*;
use durable_support::{run_worker, Running, Stop, TestDb};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tokio::sync::Barrier;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

// start -> left, right -> join. `left` and `right` wait for each other (a barrier of two,
// the workers' context): on two workers that run one event at a time, they run on both.
#[event]
async fn start() {}

#[listen(start)]
async fn left(barrier: Context<Barrier>) -> i32 {
    let _ = tokio::time::timeout(Duration::from_secs(10), barrier.wait()).await;
    1
}

#[listen(start)]
async fn right(barrier: Context<Barrier>) -> i32 {
    let _ = tokio::time::timeout(Duration::from_secs(10), barrier.wait()).await;
    2
}

#[listen(left, right)]
async fn join(input: EventInput) -> i32 {
    input.get(left).copied().unwrap_or(0) + input.get(right).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Spans kept in memory: a `tracing` subscriber for the whole process (the workers' tasks
// run on any thread of the runtime), installed once.

#[derive(Clone, Debug, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        if let Ok(mut spans) = self.0.lock() {
            spans.extend(batch);
        }
        std::future::ready(Ok(()))
    }
}

fn collected() -> &'static Collected {
    static SPANS: OnceLock<(Collected, SdkTracerProvider)> = OnceLock::new();
    &SPANS
        .get_or_init(|| {
            let spans = Collected::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(spans.clone())
                .build();
            let subscriber = tracing_subscriber::registry().with(
                tracing_opentelemetry::layer().with_tracer(provider.tracer("durable_tracing")),
            );
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
            (spans, provider)
        })
        .0
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// An integer field (`tracing-opentelemetry` records an `i64` as `I64`, a `u64` as a string).
fn int(span: &SpanData, key: &str) -> Option<i64> {
    match attribute(span, key)? {
        Value::I64(n) => Some(*n),
        Value::String(text) => text.as_str().parse().ok(),
        _ => None,
    }
}

fn text(span: &SpanData, key: &str) -> Option<String> {
    attribute(span, key).map(|value| value.as_str().into_owned())
}

/// The event-run spans of `run` (of a test's schema: its workers' names start with
/// `workers`), once `n` of them ended (a worker drops an event's span just after its
/// completion commits).
async fn event_spans(run: RunId, workers: &str, n: usize) -> Vec<SpanData> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<SpanData> = collected()
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|span| {
                text(span, "gen_ai.operation.name").is_none()
                    && text(span, "event").is_some()
                    && int(span, "run_id") == Some(run.as_i64())
                    && text(span, "worker").is_some_and(|name| name.starts_with(workers))
            })
            .cloned()
            .collect();
        if spans.len() >= n || tokio::time::Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn short(span: &SpanData) -> &str {
    span.name.rsplit("::").next().unwrap_or("")
}

/// A worker on its own pool, running one event at a time, until the sender is dropped.
async fn worker(db: &TestDb, name: &str, barrier: Arc<Barrier>) -> (Stop, Running) {
    let store = db.another_store().await;
    run_worker(
        Drive::new()
            .unwrap()
            .worker(&store)
            .concurrency(1)
            .lease(Duration::from_secs(5))
            .poll_interval(Duration::from_millis(20))
            .name(name)
            .context_arc(barrier),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spans_of_a_run_on_two_workers_join_the_submitting_trace() {
    collected();
    let db = TestDb::migrated().await;
    let barrier = Arc::new(Barrier::new(2));
    let (stop_1, worker_1) = worker(&db, "two-1", barrier.clone()).await;
    let (stop_2, worker_2) = worker(&db, "two-2", barrier).await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();

    let submit = tracing::info_span!("submit_request");
    let run = client
        .invoke(start)
        .submit()
        .instrument(submit.clone())
        .await
        .unwrap();
    let submitted = submit.context().span().span_context().clone();
    drop(submit);
    assert!(submitted.is_valid());
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.get(join), Some(&3));
    let status = client.status(run).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(
        status.traceparent,
        Some(format!(
            "00-{}-{}-{:02x}",
            submitted.trace_id(),
            submitted.span_id(),
            submitted.trace_flags().to_u8()
        ))
    );

    let spans = event_spans(run, "two-", 4).await;
    let mut names: Vec<&str> = spans.iter().map(short).collect();
    names.sort_unstable();
    assert_eq!(names, ["join", "left", "right", "start"]);
    let trace: TraceId = submitted.trace_id();
    for span in &spans {
        assert_eq!(span.span_context.trace_id(), trace, "{}", span.name);
        // Each span's parent came from the database: a remote parent.
        assert!(span.parent_span_is_remote, "{}", span.name);
        assert_eq!(
            text(span, "outcome").as_deref(),
            Some("value"),
            "{}",
            span.name
        );
        assert_eq!(int(span, "attempts"), Some(1));
    }
    let span_of = |name: &str| {
        spans
            .iter()
            .find(|span| short(span) == name)
            .expect("a span per event")
    };
    let parent_of = |name: &str| span_of(name).parent_span_id;
    let id_of = |name: &str| span_of(name).span_context.span_id();
    assert_eq!(parent_of("start"), submitted.span_id());
    assert_eq!(parent_of("left"), id_of("start"));
    assert_eq!(parent_of("right"), id_of("start"));
    // The join was triggered by the completion of the later of `left` and `right`.
    let history = client.history(run).await.unwrap();
    let later = history
        .iter()
        .rfind(|h| h.event.ends_with("::left") || h.event.ends_with("::right"))
        .map(|h| h.event.rsplit("::").next().unwrap_or("").to_string())
        .expect("left and right in the history");
    assert_eq!(parent_of("join"), id_of(&later));
    assert_ne!(parent_of("join"), SpanId::INVALID);
    // `left` and `right` ran at once, so on both workers.
    let mut workers: Vec<String> = ["left", "right"]
        .iter()
        .filter_map(|name| text(span_of(name), "worker"))
        .collect();
    workers.sort();
    assert_eq!(workers, ["two-1", "two-2"]);
    assert!(spans.iter().all(|span| text(span, "group").is_some()));

    drop((stop_1, stop_2));
    worker_1.await.unwrap().unwrap();
    worker_2.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_is_ignored() {
    collected();
    let db = TestDb::migrated().await;
    let client = Drive::new().unwrap().durable(&db.store).unwrap();
    let submit = tracing::info_span!("submit_request");
    let run = client
        .invoke(start)
        .submit()
        .instrument(submit.clone())
        .await
        .unwrap();
    let submitted = submit.context().span().span_context().trace_id();
    drop(submit);
    // Before any worker claims it, the start task's context is spoiled.
    sqlx::query(&format!(
        "UPDATE \"{}\".tasks SET traceparent = 'garbage-00-xyz' WHERE run_id = $1",
        db.schema
    ))
    .bind(run.as_i64())
    .execute(db.store.pool())
    .await
    .unwrap();
    let barrier = Arc::new(Barrier::new(1));
    let (stop, handle) = worker(&db, "malformed-1", barrier).await;
    let results = client.wait(run).await.unwrap();
    assert_eq!(results.get(join), Some(&3));
    let spans = event_spans(run, "malformed-", 4).await;
    assert_eq!(spans.len(), 4);
    let start_span = spans.iter().find(|span| short(span) == "start").unwrap();
    // A root of a trace of its own, whose children follow it.
    assert_eq!(start_span.parent_span_id, SpanId::INVALID);
    let trace = start_span.span_context.trace_id();
    assert_ne!(trace, submitted);
    assert!(spans
        .iter()
        .all(|span| span.span_context.trace_id() == trace));
    drop(stop);
    handle.await.unwrap().unwrap();
}
