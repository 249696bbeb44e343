//! The workflow the metrics test (`drive-flow/tests/metrics.rs`) and the telemetry test
//! (`tests/telemetry.rs`) both observe: `start` → `work` (fails its first attempt,
//! retried) → `again` (goto `work` once, then abort). With `fail`, `work` fails every
//! attempt and the run fails.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drive_flow::{DriveBuilder, EventOptions, Flow, Group};

pub fn sample(fail: bool) -> (drive_flow::Drive, drive_flow::Handle<()>) {
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
