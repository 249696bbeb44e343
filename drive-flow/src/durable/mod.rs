//! Durable runs on PostgreSQL (cargo feature `postgres`): runs that survive a crash of any
//! process, wait for outside input for days, and spread over many worker processes and
//! machines, with the same workflow code and the same semantics as in-process runs.
//!
//! ```no_run
//! use drive_flow::durable::{PgStore, DurableError};
//! use drive_flow::prelude::*;
//!
//! #[event]
//! async fn start(input: EventInput) -> u32 {
//!     input.user::<u32>().copied().unwrap_or(0)
//! }
//!
//! #[listen(start)]
//! async fn double(input: EventInput, http: Context<reqwest_like::Client>) -> u32 {
//!     let _ = http;                               // the worker's own client
//!     input.get(start).copied().unwrap_or(0) * 2
//! }
//! # mod reqwest_like { #[derive(Default)] pub struct Client; }
//!
//! # async fn demo() -> Result<(), DurableError> {
//! let store = PgStore::connect("postgres://localhost/app").await?;
//! store.migrate().await?;
//! let drive = Drive::new().map_err(DurableError::Run)?;
//!
//! // Any number of processes, on any number of machines:
//! let worker = drive.worker(&store).concurrency(32).context(reqwest_like::Client::default());
//! tokio::spawn(worker.run());                     // until SIGINT/SIGTERM
//!
//! // From any process (a web handler, a CLI):
//! let client = drive.durable(&store)?;
//! let run = client.invoke(start).input(21u32).submit().await?;   // returns at once
//! let results = client.wait(run).await?;
//! assert_eq!(results.get(double), Some(&42));
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! - Every event to run is a row of a small queue table. A [`Worker`] claims ready rows
//!   (`FOR UPDATE SKIP LOCKED`) with a lease it renews while the body runs, runs the body
//!   with no transaction open, and commits in **one transaction** the event's outcome, the
//!   run's join state, the events it triggers, its history row and the run's counters.
//!   The completion loads only the state of the joins (groups of two or more members) the
//!   event is a member of, and runs
//!   the same dispatch core as in-process runs over it: joins, `all`/`any`, goto, abort and
//!   de-duplication are one implementation.
//! - **Fencing.** Every write of a worker about a task it claimed names the attempt it
//!   claimed; a worker whose lease expired (it stalled, or its machine was cut off) and
//!   whose task was claimed again has its late writes refused. Each completion is applied
//!   exactly once.
//! - **At least once.** A body may run again: after a crash of its worker (once its lease
//!   expired), after a lost lease, and, by design, when a value comes for an [`Inbox`](crate::Inbox)
//!   it waited on. Give side effects
//!   [`EventInput::idempotency_key`](crate::EventInput::idempotency_key): the same on every
//!   re-run of one event run.
//! - **Human in the loop.** An event whose `inbox.recv(key)` finds no value gives up its
//!   worker and its lease; [`DurableDrive::send`] stores the value and queues the event
//!   again, which **runs again from its start** with the same input: the code before
//!   `recv` runs again (as LangGraph's `interrupt`), and this time `recv` returns the value.
//!   Values taken by an event run stay its own across its re-runs. A per-event `timeout`
//!   counts one attempt, not the time spent parked.
//! - **Values as JSON.** Outputs and goto payloads cross processes through serde; the macros
//!   capture each event's codec, and [`Drive::durable`](crate::Drive::durable) or
//!   [`Worker::run`] refuse a drive with an event whose output is not
//!   `Serialize + Deserialize` (naming it, its type and where it is defined). The run's
//!   input and inbox values are stored with the name of their type; a worker that never
//!   submitted or sent such a type learns it with [`Worker::value_type`].
//! - **`Context<T>` is the worker's**, given to [`Worker::context`]: clients, pools,
//!   configuration. What a run must remember travels in its events' outputs.
//! - **Run control** holds across workers: `max_steps`, `max_runs_per_event`,
//!   `max_concurrency` (a cap over every worker), per-event `timeout`, `retries` and
//!   `backoff` (a retried event waits in the queue, not in a worker), the run's `timeout`
//!   (a deadline kept in the database), and [`DurableDrive::cancel`]. A failed or cancelled
//!   run stops its events in flight on every worker.
//! - **Events are known by their id** (`module::fn_name`, or the builder's name). A worker
//!   claims only events it knows and logs the others it sees waiting, for a newer or older
//!   binary to run. The ids a binary knows are stored once as a *catalog* (a table keyed by
//!   the digest of the sorted ids), so that a claim names one key, whatever the size of
//!   the graph.
//! - **What a hop costs.** A claim is one statement, committed without waiting for the
//!   disk (`synchronous_commit = off` on the connections that claim and renew leases: a
//!   claim lost in a server crash only makes its event claimable again). A completion is
//!   two round trips (the state it touches read without a lock, then one statement that
//!   writes everything if the run's row is still the version read), one for a leaf (a value
//!   no group listens to), and falls back to four under the run's lock (a conflict, the
//!   run's end, a budget, a cap or the deadline); it is durable: one flush per event, or per
//!   batch of a worker's leaves of one run.
//! - Idle workers wake on `LISTEN/NOTIFY` and look every
//!   [`poll_interval`](Worker::poll_interval) anyway (a notification is lost while the
//!   listening connection reconnects; behind a transaction-mode pooler such as PgBouncer,
//!   `LISTEN` never hears anything and polling is all there is). Workers and waiting
//!   clients ride out a restarting server, trying again with a backoff.
//! - **Traces across workers** (cargo feature `opentelemetry`): each run and each queued
//!   event stores the W3C `traceparent` of the span that queued it (the span around
//!   [`submit`](DurableInvoke::submit), or the event run that triggered it), and a worker
//!   makes it the parent of the event run's span, so that the spans of one run on any
//!   number of workers join one trace. Read and set through `tracing-opentelemetry`: install
//!   its layer in the submitting process and in the workers. Without the feature the
//!   column stays NULL.
//! - The schema is versioned ([`PgStore::migrate`], [`SCHEMA_VERSION`]) and lives in a
//!   schema of its own, `drive_flow` unless [`PgOptions::schema`] names another (checked as
//!   an identifier and quoted; every value is a bound parameter).

mod client;
pub(crate) mod codec;
mod complete;
mod drive;
mod ended;
mod error;
mod inbox;
mod leaves;
mod queue;
mod results;
mod sql;
mod store;
mod stored;
mod task_input;
mod trace_context;
mod values;
mod worker;

pub use client::{DurableInvoke, HistoryEntry, RunState, RunStatus};
pub use drive::DurableDrive;
pub use error::{DurableError, RunId};
pub use store::{PgOptions, PgStore, DEFAULT_SCHEMA, SCHEMA_VERSION};
pub use worker::{Worker, DEFAULT_LEASE};

#[doc(hidden)]
pub use sqlx;

#[cfg(test)]
mod tests;
