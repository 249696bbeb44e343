//! What a run tells observability tools: span fields in the OpenTelemetry conventions
//! (`gen_ai.operation.name`, `otel.name`, `otel.status_code`, outcome, attempts), checked
//! with a recording `tracing` layer. Metrics (feature `metrics`) are checked in
//! `drive-flow/tests/metrics.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

// ---------------------------------------------------------------------------------------
// A layer that keeps every span with its fields, those recorded later included.

type Fields = BTreeMap<String, String>;

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(&'static str, Fields)>>>);

/// The position of a span in [`Spans`], kept in the span's extensions.
struct At(usize);

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
        // `tracing-opentelemetry` exports a `u64` field as a string: marked, see
        // `numeric_fields_reach_opentelemetry_as_integers`.
        self.0
            .insert(format!("{} (u64)", field.name()), String::new());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let mut spans = self.0.lock().unwrap();
        // The parent span, and the event it is the span of, if any.
        if let Some(parent) = ctx.span(id).and_then(|span| span.parent()) {
            fields.insert("(parent)".to_string(), parent.name().to_string());
            let at = parent.extensions().get::<At>().map(|at| at.0);
            if let Some(event) = at.and_then(|at| spans[at].1.get("event").cloned()) {
                fields.insert("(parent event)".to_string(), event);
            }
        }
        spans.push((attrs.metadata().name(), fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(At(spans.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(At(at)) = span.extensions().get::<At>().map(|at| At(at.0)) else {
            return;
        };
        values.record(&mut Visitor(&mut self.0.lock().unwrap()[at].1));
    }
}

impl Spans {
    /// The first span of event `event`.
    fn of_event(&self, event: &str) -> Fields {
        self.named("event")
            .into_iter()
            .find(|fields| fields["event"] == event)
            .unwrap_or_else(|| panic!("no span of event `{event}`"))
    }

    fn named(&self, name: &str) -> Vec<Fields> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, fields)| fields.clone())
            .collect()
    }
}

fn trace() -> (Spans, tracing::subscriber::DefaultGuard) {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    (spans, tracing::subscriber::set_default(subscriber))
}

/// The fields a test looks at, without those that vary (`run_id`).
fn pick(fields: &Fields, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|name| Some((name.to_string(), fields.get(*name)?.clone())))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

mod flaky_workflow;
use flaky_workflow::sample;

#[tokio::test(flavor = "current_thread")]
async fn the_run_and_every_event_run_are_spans_in_the_opentelemetry_conventions() {
    let (spans, _guard) = trace();
    let (drive, start) = sample(false);
    drive.invoke(start).await.unwrap();

    let runs = spans.named("run");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        pick(
            &runs[0],
            &[
                "otel.name",
                "gen_ai.operation.name",
                "start",
                "outcome",
                "otel.status_code"
            ]
        ),
        pairs(&[
            ("otel.name", "invoke_workflow start"),
            ("gen_ai.operation.name", "invoke_workflow"),
            ("start", "start"),
            ("outcome", "ok"),
        ])
    );
    let run_id = runs[0]["run_id"].clone();

    let events = spans.named("event");
    let names = [
        "otel.name",
        "event",
        "task_id",
        "group",
        "behavior",
        "attempts",
        "outcome",
        "otel.status_code",
    ];
    let seen: Vec<_> = events.iter().map(|fields| pick(fields, &names)).collect();
    let event = |name: &str, task: &str, group: &str, behavior: &str, attempts: &str, outcome| {
        pairs(&[
            ("otel.name", name),
            ("event", name),
            ("task_id", task),
            ("group", group),
            ("behavior", behavior),
            ("attempts", attempts),
            ("outcome", outcome),
        ])
    };
    assert_eq!(
        seen,
        [
            event("start", "1", "user_input", "Input", "1", "value"),
            event("work", "2", "0", "Dispatch", "2", "value"),
            event("again", "3", "0", "Dispatch", "1", "goto"),
            event("work", "4", "$goto", "Goto", "1", "value"),
            event("again", "5", "0", "Dispatch", "1", "abort"),
        ]
    );
    assert!(events.iter().all(|fields| fields["run_id"] == run_id));
    // The retried event's attempts are spans inside it.
    let attempts: Vec<String> = spans
        .named("attempt")
        .iter()
        .map(|fields| fields["attempt"].clone())
        .collect();
    assert_eq!(attempts, ["1", "2", "1"]);
}

/// `tracing-opentelemetry` exports an `i64` field as an integer attribute but a `u64` one as
/// a string (`run_id: String("1")`): every numeric field is recorded as an `i64`.
#[tokio::test(flavor = "current_thread")]
async fn numeric_fields_reach_opentelemetry_as_integers() {
    let (spans, _guard) = trace();
    let (drive, start) = sample(false);
    drive.invoke(start).await.unwrap();
    let mut checked = 0;
    for name in ["run", "event", "attempt"] {
        for fields in spans.named(name) {
            let as_u64: Vec<&String> = fields.keys().filter(|k| k.ends_with("(u64)")).collect();
            assert!(as_u64.is_empty(), "{name} span: {as_u64:?}");
            for field in ["run_id", "task_id", "attempts", "attempt"] {
                if let Some(value) = fields.get(field) {
                    assert!(value.parse::<i64>().is_ok(), "{name}.{field} = {value}");
                    checked += 1;
                }
            }
        }
    }
    // The run's id, each of the 5 event spans' three, the 3 attempts'.
    assert_eq!(checked, 1 + 5 * 3 + 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_event_and_its_run_record_the_error() {
    let (spans, _guard) = trace();
    let (drive, start) = sample(true);
    let error = drive.invoke(start).await.unwrap_err();
    let message = error.to_string();

    let work = spans.of_event("work");
    assert_eq!(
        pick(
            &work,
            &[
                "attempts",
                "outcome",
                "otel.status_code",
                "otel.status_description",
                "error.type"
            ]
        ),
        pairs(&[
            ("attempts", "2"),
            ("outcome", "failed"),
            ("otel.status_code", "ERROR"),
            ("otel.status_description", &message),
            ("error.type", "retries_exhausted"),
        ])
    );
    let run = &spans.named("run")[0];
    assert_eq!(
        pick(run, &["outcome", "otel.status_code", "error.type"]),
        pairs(&[
            ("outcome", "failed"),
            ("otel.status_code", "ERROR"),
            ("error.type", "retries_exhausted"),
        ])
    );
}

mod nested {
    use drive_flow::prelude::*;
    use drive_flow::Child;

    #[event]
    pub async fn parent(child: Child) -> Result<usize, drive_flow::Error> {
        Ok(child.invoke(kid).await?.len())
    }

    #[event]
    pub async fn kid() {}
}

#[tokio::test(flavor = "current_thread")]
async fn a_child_runs_span_is_inside_the_span_of_the_event_that_runs_it() {
    let (spans, _guard) = trace();
    drive_flow::Drive::new()
        .unwrap()
        .invoke(nested::parent)
        .await
        .unwrap();
    let runs = spans.named("run");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].get("(parent)"), None);
    assert_eq!(
        runs[1]["otel.name"],
        "invoke_workflow telemetry::nested::kid"
    );
    assert_eq!(runs[1]["(parent)"], "event");
    assert_eq!(runs[1]["(parent event)"], "telemetry::nested::parent");
}

/// A body that panics when it is called, before its future exists, still ends its event's
/// span as failed, spawned or inline: the span records the panic as a body's panic does.
#[tokio::test(flavor = "current_thread")]
async fn an_event_whose_call_panics_before_its_future_exists_ends_its_span() {
    #[allow(unreachable_code)]
    fn build() -> (drive_flow::Drive, drive_flow::Handle<()>) {
        let mut builder = drive_flow::DriveBuilder::new();
        let start = builder.event("start", || async {});
        let boom = builder.event("boom", || {
            panic!("before its future exists");
            async {}
        });
        builder.listen(boom, drive_flow::Group::new([start]));
        (builder.build().unwrap(), start)
    }
    for inline in [false, true] {
        let (spans, _guard) = trace();
        let (drive, start) = build();
        let invoke = drive.invoke(start);
        let invoke = if inline { invoke.inline() } else { invoke };
        let error = invoke.await.unwrap_err();
        assert!(
            matches!(&error, drive_flow::Error::Panicked { event, .. } if event == "boom"),
            "{error:?}"
        );
        let boom = spans.of_event("boom");
        assert_eq!(
            pick(
                &boom,
                &["attempts", "outcome", "otel.status_code", "error.type"]
            ),
            pairs(&[
                ("attempts", "1"),
                ("outcome", "failed"),
                ("otel.status_code", "ERROR"),
                ("error.type", "panicked"),
            ]),
            "inline: {inline}"
        );
    }
}
