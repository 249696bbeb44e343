//! Metrics through the `metrics` facade (feature `metrics`): event runs by event and
//! outcome, event durations, runs in flight, checked with a recorder that keeps every value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drive_flow::{DriveBuilder, EventOptions, Flow, Group};
use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName};
use metrics::{Metadata, Recorder, SharedString, Unit};

// ---------------------------------------------------------------------------------------
// A metrics recorder that keeps every value, by `name{label=value,...}`.

#[derive(Default)]
struct Slot {
    value: Mutex<f64>,
    max: Mutex<f64>,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Slot {
    fn increment(&self, value: u64) {
        *self.value.lock().unwrap() += value as f64;
    }
    fn absolute(&self, value: u64) {
        *self.value.lock().unwrap() = value as f64;
    }
}

impl GaugeFn for Slot {
    fn increment(&self, value: f64) {
        let mut now = self.value.lock().unwrap();
        *now += value;
        let mut max = self.max.lock().unwrap();
        *max = max.max(*now);
    }
    fn decrement(&self, value: f64) {
        *self.value.lock().unwrap() -= value;
    }
    fn set(&self, value: f64) {
        *self.value.lock().unwrap() = value;
    }
}

impl HistogramFn for Slot {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().push(value);
    }
}

#[derive(Clone, Default)]
struct Metrics(Arc<Mutex<HashMap<String, Arc<Slot>>>>);

impl Metrics {
    fn slot(&self, key: &Key) -> Arc<Slot> {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().unwrap().entry(name).or_default().clone()
    }

    fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn value(&self, name: &str) -> f64 {
        self.get(name)
            .map_or(0.0, |slot| *slot.value.lock().unwrap())
    }
}

impl Recorder for Metrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.slot(key))
    }
}

// ---------------------------------------------------------------------------------------
// The workflow: `start` → `work` (fails its first attempt, retried) → `again` (goto
// `work` once, then abort). With `fail`, `work` fails every attempt and the run fails.

fn sample(fail: bool) -> (drive_flow::Drive, drive_flow::Handle<()>) {
    let mut builder = DriveBuilder::new();
    let start = builder.event("start", || async { Flow::from(()) });
    let attempts = Arc::new(AtomicU32::new(0));
    let work = builder.event("work", move || {
        let attempts = attempts.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if fail || attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(std::io::Error::other("flaky"))
            } else {
                Ok(Flow::from(1))
            }
        }
    });
    let turns = Arc::new(AtomicU32::new(0));
    let again = builder.event("again", move || {
        let turns = turns.clone();
        async move {
            if turns.fetch_add(1, Ordering::SeqCst) == 0 {
                Flow::goto([work], ())
            } else {
                Flow::abort()
            }
        }
    });
    builder.listen(work, Group::new([start]));
    builder.listen(again, Group::new([work]));
    builder.options(work, EventOptions::new().retries(1));
    (builder.build().unwrap(), start)
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_count_event_runs_by_outcome_time_them_and_count_runs_in_flight() {
    let metrics = Metrics::default();
    let _local = metrics::set_default_local_recorder(&metrics);
    let (drive, start) = sample(false);
    drive.invoke(start).timed().await.unwrap();

    let runs = |event: &str, outcome: &str| {
        metrics.value(&format!(
            "drive_flow_event_runs_total{{event={event},outcome={outcome}}}"
        ))
    };
    assert_eq!(runs("start", "value"), 1.0);
    assert_eq!(runs("work", "value"), 2.0);
    assert_eq!(runs("work", "failed"), 0.0); // its failed attempt was retried: one run
    assert_eq!(runs("again", "goto"), 1.0);
    assert_eq!(runs("again", "abort"), 1.0);
    let durations = metrics
        .get("drive_flow_event_duration_seconds{event=work}")
        .unwrap();
    let samples = durations.samples.lock().unwrap().clone();
    assert_eq!(samples.len(), 2);
    // The first run of `work` made two attempts of 5 ms each.
    assert!(samples.iter().all(|&s| s >= 0.005), "{samples:?}");
    let in_flight = metrics.get("drive_flow_runs_in_flight{}").unwrap();
    assert_eq!(*in_flight.value.lock().unwrap(), 0.0);
    assert_eq!(*in_flight.max.lock().unwrap(), 1.0);

    // A failed run counts its failed event; an untimed run records no durations.
    let (failing, start) = sample(true);
    failing.invoke(start).await.unwrap_err();
    assert_eq!(runs("work", "failed"), 1.0);
    assert_eq!(*in_flight.value.lock().unwrap(), 0.0);
}

#[tokio::test(flavor = "current_thread")]
async fn two_runs_at_once_are_two_runs_in_flight() {
    let metrics = Metrics::default();
    let _local = metrics::set_default_local_recorder(&metrics);
    let (first, start) = sample(false);
    let (second, start2) = sample(false);
    let (a, b) = tokio::join!(first.invoke(start), second.invoke(start2));
    a.unwrap();
    b.unwrap();
    let in_flight = metrics.get("drive_flow_runs_in_flight{}").unwrap();
    assert_eq!(*in_flight.max.lock().unwrap(), 2.0);
    assert_eq!(*in_flight.value.lock().unwrap(), 0.0);
}
