//! The in-process runner: events as tokio tasks (or inline in the run's task), the run's
//! handle and its live event stream. It feeds completions to the dispatch core in
//! [`crate::core::dispatch`].

pub(crate) mod handle;
pub(crate) mod inbox;
pub(crate) mod mailbox;
pub(crate) mod runner;
pub(crate) mod stream;
pub(crate) mod tasks;
