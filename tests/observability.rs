//! Every event run is a `tracing` span named `event`, with the event's full id (`event`) and
//! the run's id (`run_id`). A small `tracing_subscriber` layer records every span and log
//! line with their fields.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use drive_flow::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

type Fields = BTreeMap<String, String>;

/// A span, as it was opened.
#[derive(Clone, Debug)]
struct SpanRecord {
    name: &'static str,
    fields: Fields,
}

/// A log line, with the span it was emitted in.
#[derive(Clone, Debug)]
struct LogRecord {
    message: String,
    span: Option<SpanRecord>,
}

#[derive(Default)]
struct Seen {
    spans: Vec<SpanRecord>,
    logs: Vec<LogRecord>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

impl Recorder {
    /// The spans named `event`, in the order they were opened.
    fn event_spans(&self) -> Vec<Fields> {
        let seen = self.0.lock().unwrap();
        seen.spans
            .iter()
            .filter(|s| s.name == "event")
            .map(|s| s.fields.clone())
            .collect()
    }

    fn logs(&self) -> Vec<LogRecord> {
        self.0.lock().unwrap().logs.clone()
    }
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let record = SpanRecord {
            name: attrs.metadata().name(),
            fields,
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(record.clone());
        }
        self.0.lock().unwrap().spans.push(record);
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let span = ctx
            .event_span(event)
            .and_then(|span| span.extensions().get::<SpanRecord>().cloned());
        self.0.lock().unwrap().logs.push(LogRecord {
            message: fields.remove("message").unwrap_or_default(),
            span,
        });
    }
}

/// Record everything traced on this thread until the guard is dropped. The tests run on a
/// current-thread runtime, so the events' tasks run on this thread too.
fn record() -> (Recorder, tracing::subscriber::DefaultGuard) {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    (recorder, tracing::subscriber::set_default(subscriber))
}

/// a → b → c; b logs a line.
mod chain {
    use super::*;

    #[event]
    async fn a() -> i32 {
        1
    }

    #[listen(a)]
    async fn b() -> i32 {
        tracing::info!("inside b");
        2
    }

    #[listen(b)]
    async fn c() {}

    const IDS: [&str; 3] = [
        "observability::chain::a",
        "observability::chain::b",
        "observability::chain::c",
    ];

    #[tokio::test]
    async fn one_span_per_event_run_with_its_id_and_the_run_id() {
        let (recorder, _guard) = record();
        let drive = Drive::new().unwrap();
        drive.invoke(a).await.unwrap();
        drive.invoke(a).await.unwrap();

        let spans = recorder.event_spans();
        let ids: Vec<&str> = spans.iter().map(|f| f["event"].as_str()).collect();
        assert_eq!(ids, [IDS, IDS].concat(), "{spans:?}");

        let run_ids: Vec<&str> = spans.iter().map(|f| f["run_id"].as_str()).collect();
        assert!(
            run_ids[..3].iter().all(|id| *id == run_ids[0]),
            "{run_ids:?}"
        );
        assert!(
            run_ids[3..].iter().all(|id| *id == run_ids[3]),
            "{run_ids:?}"
        );
        assert_ne!(run_ids[0], run_ids[3], "two runs share a run id");

        // A log line inside an event belongs to that event's span.
        let logs: Vec<_> = recorder
            .logs()
            .into_iter()
            .filter(|log| log.message == "inside b")
            .collect();
        assert_eq!(logs.len(), 2);
        for (log, run_id) in logs.iter().zip([run_ids[0], run_ids[3]]) {
            let span = log.span.as_ref().expect("the log line has a span");
            assert_eq!(span.name, "event");
            assert_eq!(span.fields["event"], "observability::chain::b");
            assert_eq!(span.fields["run_id"], run_id);
        }
    }

    #[tokio::test]
    async fn concurrent_runs_have_their_own_run_ids() {
        let (recorder, _guard) = record();
        let drive = Drive::new().unwrap();
        let (first, second) = tokio::join!(drive.invoke(a), drive.invoke(a));
        first.unwrap();
        second.unwrap();

        let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for fields in recorder.event_spans() {
            by_run
                .entry(fields["run_id"].clone())
                .or_default()
                .push(fields["event"].clone());
        }
        assert_eq!(by_run.len(), 2, "{by_run:?}");
        for events in by_run.values() {
            assert_eq!(events, &IDS, "{by_run:?}");
        }
    }
}

/// An event that runs several times in one run (a goto loop) opens one span per run.
mod looping {
    use super::*;

    #[event]
    async fn tick(input: EventInput) -> Flow<u32> {
        let n = match input.behavior() {
            Behavior::Goto => *input.get(tick).unwrap(),
            _ => 0,
        };
        if n < 2 {
            Flow::goto([tick], n + 1)
        } else {
            Flow::from(n)
        }
    }

    #[tokio::test]
    async fn every_call_is_a_span() {
        let (recorder, _guard) = record();
        let results = Drive::new().unwrap().invoke(tick).await.unwrap();
        assert_eq!(results.count(tick), 3);

        let spans = recorder.event_spans();
        assert_eq!(spans.len(), 3, "{spans:?}");
        for fields in &spans {
            assert_eq!(fields["event"], "observability::looping::tick");
            assert_eq!(fields["run_id"], spans[0]["run_id"]);
        }
    }
}
