//! Durable runs on PostgreSQL (cargo feature `postgres`): runs that survive a crash of
//! any process, wait for outside input for days, and spread over many worker processes
//! and machines.
//!
//! See [`PgStore`] to connect and prepare the database.

mod client;
pub(crate) mod codec;
mod complete;
mod drive;
mod error;
mod inbox;
mod queue;
mod results;
mod sql;
mod store;
mod stored;
mod task_input;
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
