//! Metrics through the `metrics` facade (feature `metrics`): event runs by event and
//! outcome, event durations, runs in flight, checked with a recorder that keeps every value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

#[path = "../../tests/flaky_workflow/mod.rs"]
mod flaky_workflow;
use flaky_workflow::sample;

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
