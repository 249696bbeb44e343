//! The client side of durable runs: submit, wait, status, history, cancel, send.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::broadcast;

use super::drive::DurableDrive;
use super::ended::Heard;
use super::error::{DurableError, RunId};
use super::stored::StoredError;
use super::values::encode_typed;
use crate::core::event::{Event, EventKey};
use crate::Results;

/// How often a waiting client looks at its run when no notification came (a fallback: a
/// notification can be lost while the listening connection reconnects).
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Whether a database error may go away by itself (a lost connection, a server
/// restarting), so that the call is worth trying again.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("57P") || code.starts_with("08") || code == "40001" || code == "40P01"
        }),
        _ => false,
    }
}

/// Where a durable run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunState {
    /// Some of its events are queued, running or waiting for input.
    Running,
    /// It ended: nothing was left to run.
    Succeeded,
    /// It failed (an event's error, a budget, its deadline).
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl RunState {
    fn parse(text: &str) -> RunState {
        match text {
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "cancelled" => RunState::Cancelled,
            _ => RunState::Running,
        }
    }

    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        self != RunState::Running
    }
}

/// The status of a durable run ([`DurableDrive::status`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunStatus {
    /// The run.
    pub run: RunId,
    /// Where it stands.
    pub state: RunState,
    /// Its start event's id.
    pub start: String,
    /// How many event runs it triggered so far.
    pub steps: i64,
    /// How many of its tasks are queued, ready, running or waiting.
    pub open_tasks: i32,
    /// Its error, for a failed or cancelled run.
    pub error: Option<String>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The W3C trace-context `traceparent` of the span around its
    /// [`submit`](DurableInvoke::submit) (`00-<trace id>-<span id>-<flags>`): the trace its
    /// event runs' spans join. Recorded with the cargo feature `opentelemetry` when an
    /// OpenTelemetry layer of `tracing` records that span; `None` otherwise.
    pub traceparent: Option<String>,
}

/// One entry of a run's history: one event run, or one failed attempt, or one wait.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The task's id in its run (the same for every attempt of one event run).
    pub task_id: i64,
    /// The event's id.
    pub event: String,
    /// Its input, as stored: `{"group": .., "behavior": .., "entries": [..], "user": ..}`.
    pub input: Value,
    /// How it ended: `value`, `goto`, `abort`, `error`, `retry` (a failed attempt tried
    /// again), `waiting` (parked on an inbox key) or `lost` (its lease was taken over).
    pub outcome: String,
    /// Its value (or goto payload), as JSON.
    pub value: Option<Value>,
    /// Its error, for `error` and `retry`.
    pub error: Option<String>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// Which claim of the task it was (1 for the first).
    pub attempt: i32,
    /// When the attempt was claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
}

/// A durable run being configured: returned by [`DurableDrive::invoke`], sent with
/// [`submit`](Self::submit).
#[must_use = "a durable run is stored only when submitted"]
pub struct DurableInvoke<'a, E> {
    drive: &'a DurableDrive,
    start: EventKey,
    event: PhantomData<fn() -> E>,
    input: Result<Option<Value>, DurableError>,
    max_steps: u64,
    max_runs_per_event: u32,
    max_concurrency: Option<u32>,
    timeout: Option<Duration>,
}

impl<E> DurableInvoke<'_, E> {
    /// The data of the start event, read there with
    /// [`EventInput::user`](crate::EventInput::user) as a `T`. Stored as JSON with the
    /// name of its type: a worker in another binary must know the type
    /// ([`Worker::value_type`](super::Worker::value_type)).
    pub fn input<T>(mut self, value: T) -> Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.input = encode_typed(&value, "the run's input").map(Some);
        self
    }

    /// The run's budget of event runs (see [`Invoke::max_steps`](crate::Invoke::max_steps)).
    pub fn max_steps(mut self, n: u64) -> Self {
        self.max_steps = n;
        self
    }

    /// A limit per event (see
    /// [`Invoke::max_runs_per_event`](crate::Invoke::max_runs_per_event)).
    pub fn max_runs_per_event(mut self, n: u32) -> Self {
        self.max_runs_per_event = n;
        self
    }

    /// At most `n` events of this run queued for or held by workers at once, over every
    /// worker; an event waiting in an [`Inbox`](crate::Inbox) does not count. `0` counts
    /// as `1`.
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// Fail the run with [`Error::RunTimeout`](crate::Error::RunTimeout) if it has not
    /// ended `timeout` after it was submitted (a deadline kept in the database).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Store the run and queue its start event; returns at once with the run's id.
    ///
    /// # Errors
    /// [`DurableError::UnknownEvent`] for a start event outside the drive;
    /// [`DurableError::Encode`] for an input that does not serialize;
    /// [`DurableError::Database`].
    pub async fn submit(self) -> Result<RunId, DurableError> {
        let index = &self.drive.index;
        let start = index
            .graph
            .resolve(self.start)
            .ok_or_else(|| DurableError::UnknownEvent {
                event: index.graph.describe(self.start),
            })?;
        let user = self.input?;
        let store = &self.drive.store;
        let sql = store.sql();
        let input = json!({
            "group": crate::core::graph::USER_INPUT_GROUP,
            "behavior": "input",
            "entries": [],
            "user": user,
        });
        let name = index.name(start).to_string();
        let timeout_ms = self
            .timeout
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        // The span around this call (if an OpenTelemetry layer records it) becomes the
        // parent of the start event's span, on whichever worker runs it.
        let traceparent = super::trace_context::current();
        let mut tx = store.pool().begin().await?;
        let run: i64 = sqlx::query(&sql.insert_run)
            .bind(&name)
            .bind(&user)
            .bind(timeout_ms)
            .bind(i64::try_from(self.max_steps).unwrap_or(i64::MAX))
            .bind(i32::try_from(self.max_runs_per_event).unwrap_or(i32::MAX))
            .bind(
                self.max_concurrency
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            )
            .bind(&traceparent)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        sqlx::query(&sql.insert_task)
            .bind(run)
            .bind(vec![1i64])
            .bind(vec![name.clone()])
            .bind(vec![input])
            .bind(vec!["ready"])
            .bind(vec!["start"])
            .bind(vec![traceparent])
            .execute(&mut *tx)
            .await?;
        sqlx::query(&sql.upsert_event)
            .bind(run)
            .bind(vec![name])
            .bind(vec![None::<String>])
            .bind(vec![None::<Value>])
            .bind(vec![0i32])
            .bind(vec![1i32])
            .execute(&mut *tx)
            .await?;
        store.notify_work(&mut *tx).await?;
        tx.commit().await?;
        Ok(RunId(run))
    }
}

impl DurableDrive {
    /// Configure a run that starts at `start`; [`submit`](DurableInvoke::submit) stores it.
    pub fn invoke<E: Event>(&self, start: E) -> DurableInvoke<'_, E> {
        DurableInvoke {
            drive: self,
            start: start.__key(),
            event: PhantomData,
            input: Ok(None),
            max_steps: crate::DEFAULT_MAX_STEPS,
            max_runs_per_event: u32::MAX,
            max_concurrency: None,
            timeout: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &crate::durable::PgStore {
        &self.store
    }

    /// Where the run stands.
    ///
    /// # Errors
    /// [`DurableError::UnknownRun`], [`DurableError::Database`].
    pub async fn status(&self, run: RunId) -> Result<RunStatus, DurableError> {
        let row = sqlx::query(&self.store.sql().run_status)
            .bind(run.0)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(DurableError::UnknownRun(run))?;
        let error: Option<Value> = row.try_get(1)?;
        let error = error
            .and_then(|e| serde_json::from_value::<StoredError>(e).ok())
            .map(|e| e.into_durable(run).to_string());
        Ok(RunStatus {
            run,
            state: RunState::parse(row.try_get::<&str, _>(0)?),
            steps: row.try_get(2)?,
            open_tasks: row.try_get(3)?,
            start: row.try_get(4)?,
            created_at: row.try_get(5)?,
            ended_at: row.try_get(6)?,
            traceparent: row.try_get::<Option<String>, _>(7).ok().flatten(),
            error,
        })
    }

    /// Every event run of the run, in the order they ended (failed attempts and waits
    /// included).
    ///
    /// # Errors
    /// [`DurableError::UnknownRun`], [`DurableError::Database`].
    pub async fn history(&self, run: RunId) -> Result<Vec<HistoryEntry>, DurableError> {
        self.status(run).await?;
        let rows = sqlx::query(&self.store.sql().run_history)
            .bind(run.0)
            .fetch_all(self.store.pool())
            .await?;
        rows.into_iter()
            .map(|row| -> Result<HistoryEntry, DurableError> {
                Ok(HistoryEntry {
                    task_id: row.try_get(0)?,
                    event: row.try_get(1)?,
                    input: row.try_get(2)?,
                    outcome: row.try_get(3)?,
                    value: row.try_get(4)?,
                    error: row.try_get(5)?,
                    worker: row.try_get(6)?,
                    attempt: row.try_get(7)?,
                    started_at: row.try_get(8)?,
                    ended_at: row.try_get(9)?,
                })
            })
            .collect()
    }

    /// Cancel a running run: its queued and waiting events are dropped, and workers
    /// running its events stop them at their next lease renewal (their results are
    /// refused). [`wait`](Self::wait) then gives
    /// [`Error::Cancelled`](crate::Error::Cancelled).
    ///
    /// # Errors
    /// [`DurableError::UnknownRun`]; [`DurableError::RunFinished`] when it had ended.
    pub async fn cancel(&self, run: RunId) -> Result<(), DurableError> {
        let mut tx = self.store.pool().begin().await?;
        if self.store.lock_run(&mut tx, run).await?.is_none() {
            drop(tx);
            self.status(run).await?;
            return Err(DurableError::RunFinished(run));
        }
        self.store
            .end_run(&mut tx, run, "cancelled", Some(&StoredError::cancelled()))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Send `value` to the run under `key`, for an event waiting in
    /// [`Inbox::recv`](crate::Inbox::recv) (now or later). An event parked on that key
    /// is queued again and runs from its start, with the same input; this time `recv`
    /// returns the value.
    ///
    /// # Errors
    /// [`DurableError::UnknownRun`]; [`DurableError::RunFinished`] when the run ended;
    /// [`DurableError::Encode`].
    pub async fn send<T>(&self, run: RunId, key: &str, value: &T) -> Result<(), DurableError>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let value = encode_typed(value, &format!("the value sent under `{key}`"))?;
        let store = &self.store;
        let mut tx = store.pool().begin().await?;
        let Some(row) = store.lock_run(&mut tx, run).await? else {
            drop(tx);
            self.status(run).await?;
            return Err(DurableError::RunFinished(run));
        };
        sqlx::query(&store.sql().insert_inbox)
            .bind(run.0)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let state = if row.has_room(row.in_flight) {
            "ready"
        } else {
            "queued"
        };
        let woken = sqlx::query(&store.sql().wake_waiting)
            .bind(run.0)
            .bind(key)
            .bind(state)
            .fetch_optional(&mut *tx)
            .await?;
        if woken.is_some() {
            if state == "ready" {
                sqlx::query(&store.sql().run_counters)
                    .bind(run.0)
                    .bind(row.steps)
                    .bind(row.in_flight + 1)
                    .bind(row.open_tasks)
                    .bind(row.next_task_id)
                    .execute(&mut *tx)
                    .await?;
            }
            store.notify_work(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Wait until the run ends, and return its [`Results`] (as
    /// [`Invoke`](crate::Invoke) would) or its error. Wakes on the run's end notification,
    /// and looks twice a second anyway. The waits of one process share one `LISTEN`
    /// connection of the store, open while anyone waits.
    ///
    /// # Errors
    /// [`DurableError::Run`] with the run's own [`Error`](crate::Error);
    /// [`DurableError::Decode`] when a stored value no longer reads as its event's type;
    /// [`DurableError::UnknownRun`].
    pub async fn wait(&self, run: RunId) -> Result<Results, DurableError> {
        // Subscribed before the first look: an end committed after it is heard.
        let mut heard = self.store.hear_ended();
        let mut delay = Duration::from_millis(100);
        loop {
            match self.ended(run).await {
                Ok(Some(results)) => return results,
                Ok(None) => delay = Duration::from_millis(100),
                // The server may be restarting: look again, with a backoff.
                Err(DurableError::Database(error)) if is_transient(&error) => {
                    tracing::warn!(%error, run = %run, "waiting for a run: the database is unreachable; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(error) => return Err(error),
            }
            // Until this run's end is heard, notifications may have been lost, or the poll.
            let _ = tokio::time::timeout(WAIT_POLL, async {
                loop {
                    match heard.recv().await {
                        Ok(Heard::Ended(id)) if id != run.0 => {}
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            })
            .await;
        }
    }

    /// The run's end, if it ended.
    async fn ended(
        &self,
        run: RunId,
    ) -> Result<Option<Result<Results, DurableError>>, DurableError> {
        let row = sqlx::query(&self.store.sql().run_status)
            .bind(run.0)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(DurableError::UnknownRun(run))?;
        let state = RunState::parse(row.try_get::<&str, _>(0)?);
        match state {
            RunState::Running => Ok(None),
            RunState::Succeeded => {
                let elapsed = match (
                    row.try_get::<DateTime<Utc>, _>(5)?,
                    row.try_get::<Option<DateTime<Utc>>, _>(6)?,
                ) {
                    (created, Some(ended)) => (ended - created).to_std().unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                Ok(Some(super::results::load(self, run, elapsed).await))
            }
            RunState::Failed | RunState::Cancelled => {
                let error: Option<Value> = row.try_get(1)?;
                let stored = error
                    .and_then(|e| serde_json::from_value::<StoredError>(e).ok())
                    .unwrap_or_else(StoredError::cancelled);
                Ok(Some(Err(stored.into_durable(run))))
            }
        }
    }
}
