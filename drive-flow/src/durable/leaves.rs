//! Leaf completions of one run, written together: the completions of events that start
//! nothing and that no group listens to (a fan-out's branches) change nothing but their
//! own rows and the run's counters, relatively, so a worker's leaves of one run that end
//! while an earlier one is being written go in the next statement together: one update of
//! the run's row, one flush, for all of them (group commit, by the worker).
//!
//! The first leaf of a run writes at once, alone; those that end meanwhile queue; when its
//! write returns, the first of the queued writes the queue, and so on. Nothing waits for
//! a batch to fill.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::oneshot;

use super::error::{DurableError, RunId};
use super::store::PgStore;
use crate::core::lock::lock;

/// One leaf's completion, as its statement writes it.
pub(crate) struct LeafWrite {
    /// The task's row and the attempt it claimed (the fence).
    pub(crate) id: i64,
    pub(crate) attempt: i32,
    pub(crate) started_at: DateTime<Utc>,
    /// Its outcome in the history (`value`) and its value.
    pub(crate) outcome: &'static str,
    pub(crate) value: Option<Value>,
    /// Its event's id, and its latest outcome as the run's state keeps it.
    pub(crate) event: String,
    pub(crate) latest_kind: Option<String>,
    pub(crate) latest_value: Option<Value>,
}

/// What a queued leaf learns: whether its batch applied, or that it writes the queue.
enum Wake {
    Applied(bool),
    Write { own: LeafWrite, others: Vec<Queued> },
}

struct Queued {
    leaf: LeafWrite,
    reply: oneshot::Sender<Wake>,
}

/// A worker's leaf writes in progress, by run: a run has an entry while one of its
/// batches is being written, with the leaves queued for the next.
#[derive(Default)]
pub(crate) struct LeafBatches {
    runs: Mutex<HashMap<i64, Vec<Queued>>>,
}

impl LeafBatches {
    /// Write `leaf` of `run`, with the other leaves of `run` this worker ends meanwhile.
    /// `Ok(false)`: its batch did not apply (nothing of it was written: the run ends with
    /// it, or is over, capped or overdue, or a claim of the batch was taken over); the
    /// locked path completes it then.
    pub(crate) async fn write(
        &self,
        store: &PgStore,
        worker: &str,
        run: RunId,
        leaf: LeafWrite,
    ) -> Result<bool, DurableError> {
        let queued = {
            let mut runs = lock(&self.runs);
            match runs.get_mut(&run.0) {
                Some(queue) => {
                    let (reply, wake) = oneshot::channel();
                    queue.push(Queued { leaf, reply });
                    Err(wake)
                }
                None => {
                    runs.insert(run.0, Vec::new());
                    Ok(leaf)
                }
            }
        };
        let (mut own, mut others) = match queued {
            Ok(leaf) => (leaf, Vec::new()),
            Err(wake) => match wake.await {
                Ok(Wake::Applied(applied)) => return Ok(applied),
                Ok(Wake::Write { own, others }) => (own, others),
                // The writer went away without an answer: the locked path decides.
                Err(_) => return Ok(false),
            },
        };
        // This leaf's answer: that of the first batch it writes.
        let mut mine: Option<Result<bool, DurableError>> = None;
        // Should this future be dropped while it writes (its task aborted), the run's queue
        // must not wait for it forever.
        let mut writing = Writing {
            batches: self,
            run: run.0,
            armed: true,
        };
        loop {
            let (leaves, replies): (Vec<LeafWrite>, Vec<oneshot::Sender<Wake>>) = others
                .into_iter()
                .map(|queued| (queued.leaf, queued.reply))
                .unzip();
            let mut batch = Vec::with_capacity(leaves.len() + 1);
            batch.push(own);
            batch.extend(leaves);
            let written = write_batch(store, worker, run, &batch).await;
            let applied = matches!(written, Ok(true));
            for reply in replies {
                let _ = reply.send(Wake::Applied(applied));
            }
            if mine.is_none() {
                mine = Some(written);
            }
            // Hand the queue to its first leaf, which writes it; if that one is gone (its
            // task was dropped), write it here.
            let mut queue = {
                let mut runs = lock(&self.runs);
                let queue = runs.get_mut(&run.0).map(std::mem::take).unwrap_or_default();
                if queue.is_empty() {
                    runs.remove(&run.0);
                }
                queue
            };
            if queue.is_empty() {
                writing.armed = false;
                break;
            }
            let first = queue.remove(0);
            match first.reply.send(Wake::Write {
                own: first.leaf,
                others: queue,
            }) {
                Err(Wake::Write {
                    own: next,
                    others: rest,
                }) => {
                    own = next;
                    others = rest;
                }
                Ok(()) | Err(Wake::Applied(_)) => {
                    writing.armed = false;
                    break;
                }
            }
        }
        mine.unwrap_or(Ok(false))
    }
}

/// The writer of a run's leaves, while it writes: dropped before it handed the queue on
/// or found it empty, it ends the run's entry and answers the queued leaves "not applied"
/// (they complete through the locked path).
struct Writing<'a> {
    batches: &'a LeafBatches,
    run: i64,
    armed: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let queued = lock(&self.batches.runs).remove(&self.run);
        for queued in queued.unwrap_or_default() {
            let _ = queued.reply.send(Wake::Applied(false));
        }
    }
}

/// One statement for `batch` (see `write_leaves` in `sql.rs`): `Ok(true)` when all of it
/// applied, `Ok(false)` when none did.
async fn write_batch(
    store: &PgStore,
    worker: &str,
    run: RunId,
    batch: &[LeafWrite],
) -> Result<bool, DurableError> {
    // The event rows: one per event, its latest outcome the last of the batch's.
    let mut events: Vec<&str> = Vec::new();
    let mut kinds: Vec<Option<&str>> = Vec::new();
    let mut values: Vec<Option<&Value>> = Vec::new();
    let mut counts: Vec<i32> = Vec::new();
    for leaf in batch {
        match events.iter().position(|&event| event == leaf.event) {
            Some(at) => {
                kinds[at] = leaf.latest_kind.as_deref();
                values[at] = leaf.latest_value.as_ref();
                counts[at] += 1;
            }
            None => {
                events.push(&leaf.event);
                kinds.push(leaf.latest_kind.as_deref());
                values.push(leaf.latest_value.as_ref());
                counts.push(1);
            }
        }
    }
    let ids: Vec<i64> = batch.iter().map(|leaf| leaf.id).collect();
    let attempts: Vec<i32> = batch.iter().map(|leaf| leaf.attempt).collect();
    let outcomes: Vec<&str> = batch.iter().map(|leaf| leaf.outcome).collect();
    let outcome_values: Vec<Option<&Value>> =
        batch.iter().map(|leaf| leaf.value.as_ref()).collect();
    let started: Vec<DateTime<Utc>> = batch.iter().map(|leaf| leaf.started_at).collect();
    let applied = sqlx::query(&store.sql().write_leaves)
        .bind(run.0)
        .bind(batch.len() as i32)
        .bind(&ids)
        .bind(&attempts)
        .bind(&outcomes)
        .bind(&outcome_values)
        .bind(&started)
        .bind(worker)
        .bind(&events)
        .bind(&kinds)
        .bind(&values)
        .bind(&counts)
        .fetch_one(store.pool())
        .await;
    Ok(super::complete::applied_row(applied)?.is_some())
}
