//! What a run tells observability tools: its `tracing` spans' closing fields (outcome,
//! attempts, errors, in the OpenTelemetry conventions `tracing-opentelemetry` reads), and
//! metrics through the [`metrics`] facade.
//!
//! **Spans.** A run is a span named `run` whose fields follow the OpenTelemetry GenAI agent
//! conventions where they fit: `gen_ai.operation.name = "invoke_workflow"`, `otel.name =
//! "invoke_workflow {start event}"`, `run_id`, `start`; each event run is a child span `event`
//! (`otel.name` its id) with `event`, `run_id`, `task_id`, `group`, `behavior`, and, when it
//! ends, `attempts` and `outcome` (`value`, `goto`, `abort`, `failed`); a failed event or
//! run gets `otel.status_code = "ERROR"`, `otel.status_description` and `error.type`. An
//! attempt of an event with retries or a timeout is a span `attempt` inside it. Nothing is
//! recorded unless the application installs a `tracing` subscriber: the fields are then not
//! even formatted.
//!
//! **Metrics** (cargo feature `metrics`), through the `metrics` facade, with a small fixed
//! set of labels:
//! - `drive_flow_event_runs_total` (counter; labels `event`, `outcome` = `value`, `goto`,
//!   `abort` or `failed`): event runs, counted when they end;
//! - `drive_flow_event_duration_seconds` (histogram; label `event`): how long each event run
//!   took, from its start to its end (retries and waiting included), in runs that read the
//!   clock ([`Invoke::timed`](crate::Invoke::timed), or watched);
//! - `drive_flow_runs_in_flight` (gauge, no label): runs started and not yet ended.
//!
//! Without the feature none of it is compiled. With it, an event's handles are registered
//! with the recorder the first time the event ends in a drive (install the recorder before
//! running workflows; without one they are no-ops) and kept in its graph node, so an event
//! run then costs a branch and a counter, never an allocation or a lock.

use std::sync::Arc;
#[cfg(feature = "metrics")]
use std::sync::OnceLock;
use std::time::Duration;

#[cfg(feature = "metrics")]
use metrics::{Counter, Histogram};

use crate::core::error::Error;
use crate::core::flow::{ErasedFlow, Flow};

/// Event runs by event and outcome.
#[cfg(feature = "metrics")]
pub(crate) const EVENT_RUNS: &str = "drive_flow_event_runs_total";
/// How long event runs took, by event, in seconds.
#[cfg(feature = "metrics")]
pub(crate) const EVENT_DURATION: &str = "drive_flow_event_duration_seconds";
/// Runs in flight.
#[cfg(feature = "metrics")]
pub(crate) const RUNS_IN_FLIGHT: &str = "drive_flow_runs_in_flight";

/// How an event run ended, for its span and its metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Value,
    Goto,
    Abort,
    Failed,
}

impl Ending {
    pub(crate) fn of(result: &Result<ErasedFlow, Error>) -> Ending {
        match result {
            Ok(Flow::Value(_)) => Ending::Value,
            Ok(Flow::Goto { .. }) => Ending::Goto,
            Ok(Flow::Abort) => Ending::Abort,
            Err(_) => Ending::Failed,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ending::Value => "value",
            Ending::Goto => "goto",
            Ending::Abort => "abort",
            Ending::Failed => "failed",
        }
    }
}

/// The metric handles of one event, registered the first time it ends.
#[cfg(feature = "metrics")]
struct EventMetrics {
    /// By [`Ending`], in its order.
    runs: [Counter; 4],
    duration: Histogram,
}

/// The metric handles of one event of a graph, made the first time it ends: until then a
/// node of the graph keeps two words for them, and a run never allocates for the events it
/// does not touch.
#[cfg(feature = "metrics")]
#[derive(Default)]
pub(crate) struct MetricsSlot(OnceLock<Box<EventMetrics>>);

/// Without the feature `metrics`, nothing (a node keeps no room for metric handles).
#[cfg(not(feature = "metrics"))]
#[derive(Default)]
pub(crate) struct MetricsSlot;

#[cfg(feature = "metrics")]
impl MetricsSlot {
    fn event(&self, name: &Arc<str>) -> &EventMetrics {
        self.0.get_or_init(|| {
            describe();
            let name = name.clone();
            let runs = |outcome: Ending| {
                metrics::counter!(EVENT_RUNS, "event" => name.clone(), "outcome" => outcome.as_str())
            };
            Box::new(EventMetrics {
                runs: [
                    runs(Ending::Value),
                    runs(Ending::Goto),
                    runs(Ending::Abort),
                    runs(Ending::Failed),
                ],
                duration: metrics::histogram!(EVENT_DURATION, "event" => name),
            })
        })
    }
}

/// Describe the metrics to the recorder, once.
#[cfg(feature = "metrics")]
fn describe() {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    DESCRIBED.get_or_init(|| {
        metrics::describe_counter!(EVENT_RUNS, "drive-flow event runs, by event and outcome");
        metrics::describe_histogram!(
            EVENT_DURATION,
            metrics::Unit::Seconds,
            "drive-flow event run time, from start to end (timed runs)"
        );
        metrics::describe_gauge!(RUNS_IN_FLIGHT, "drive-flow runs started and not ended");
    });
}

/// Count one event run that ended (and its time, if the run reads the clock).
#[cfg(not(feature = "metrics"))]
pub(crate) fn event_ended(_: &MetricsSlot, _: &Arc<str>, _: Ending, _: Option<Duration>) {}

/// Count one event run that ended (and its time, if the run reads the clock).
#[cfg(feature = "metrics")]
pub(crate) fn event_ended(
    slot: &MetricsSlot,
    name: &Arc<str>,
    ending: Ending,
    took: Option<Duration>,
) {
    let metrics = slot.event(name);
    metrics.runs[ending as usize].increment(1);
    if let Some(took) = took {
        metrics.duration.record(took.as_secs_f64());
    }
}

/// An integer span field as OpenTelemetry reads it: `tracing-opentelemetry` exports an `i64`
/// field as an integer attribute, but a `u64` one as a string.
pub(crate) fn otel_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Record how an event run ended on its span.
pub(crate) fn event_span_ended(
    span: &tracing::Span,
    attempts: u32,
    result: &Result<ErasedFlow, Error>,
) {
    if span.is_disabled() {
        return;
    }
    span.record("attempts", i64::from(attempts));
    span.record("outcome", Ending::of(result).as_str());
    if let Err(error) = result {
        record_error(span, error);
    }
}

/// Record how a run ended on its span.
pub(crate) fn run_span_ended(span: &tracing::Span, outcome: &Result<(), Error>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(()) => {
            span.record("outcome", "ok");
        }
        Err(error) => {
            span.record("outcome", "failed");
            record_error(span, error);
        }
    }
}

fn record_error(span: &tracing::Span, error: &Error) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", tracing::field::display(error));
    span.record("error.type", error_type(error));
}

/// The `error.type` of an error: its variant, as the OpenTelemetry conventions want a low
/// cardinality value.
fn error_type(error: &Error) -> &'static str {
    match error {
        Error::Failed { .. } => "failed",
        Error::Panicked { .. } => "panicked",
        Error::Timeout { .. } => "timeout",
        Error::RetriesExhausted { .. } => "retries_exhausted",
        Error::RunTimeout { .. } => "run_timeout",
        Error::TooManySteps { .. } => "too_many_steps",
        Error::TooManyRuns { .. } => "too_many_runs",
        Error::Cancelled => "cancelled",
        Error::Build(_) => "build",
        Error::Context { .. } => "context",
        Error::NoRuntime => "no_runtime",
        Error::NoInbox { .. } => "no_inbox",
        Error::UnknownEvent { .. } => "unknown_event",
        Error::Child { .. } => "child",
    }
}

/// Counts a run in `drive_flow_runs_in_flight` from its start until dropped.
pub(crate) struct RunInFlight(());

impl RunInFlight {
    pub(crate) fn start() -> Self {
        #[cfg(feature = "metrics")]
        metrics::gauge!(RUNS_IN_FLIGHT).increment(1.0);
        RunInFlight(())
    }
}

#[cfg(feature = "metrics")]
impl Drop for RunInFlight {
    fn drop(&mut self) {
        metrics::gauge!(RUNS_IN_FLIGHT).decrement(1.0);
    }
}
