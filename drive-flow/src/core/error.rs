//! Errors: [`BuildError`] when a graph is built, [`Error`] when a run fails.

use std::time::Duration;

use crate::core::flow::BoxError;

/// A graph that cannot be built. Every variant names the events it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two events have the same id (or builder name).
    #[error(
        "two events have the id `{event}`; events defined inside function bodies take the path \
         of the enclosing module, so give them distinct names"
    )]
    DuplicateEvent {
        /// The shared id.
        event: String,
    },
    /// An event listens to an event that is not part of this graph.
    #[error("event `{listener}` listens to {member}, which is not an event of this graph")]
    UnknownMember {
        /// The listening event.
        listener: String,
        /// The missing member, as far as it can be named.
        member: String,
    },
    /// A group was added to an event that is not part of this graph.
    #[error("a group was added to {listener}, which is not an event of this graph")]
    UnknownListener {
        /// The listener, as far as it can be named.
        listener: String,
    },
    /// A group with no member.
    #[error("event `{listener}` has a group with no member; a group needs at least one event")]
    EmptyGroup {
        /// The listening event.
        listener: String,
    },
}

/// A failed run. Every variant that concerns an event names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The graph could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// An event returned an error.
    #[error("event `{event}` failed: {source}")]
    Failed {
        /// The failing event.
        event: String,
        /// What it returned.
        #[source]
        source: BoxError,
    },
    /// An event panicked. The panic is caught; the process goes on.
    #[error("event `{event}` panicked: {message}")]
    Panicked {
        /// The panicking event.
        event: String,
        /// The panic message, when it was a string.
        message: String,
    },
    /// An event asks for a context the run was not given.
    #[error("event `{event}` takes `Context<{expected}>`, but {given}")]
    Context {
        /// The event asking for the context.
        event: String,
        /// The type it asks for.
        expected: &'static str,
        /// What the run was given instead.
        given: String,
    },
    /// The run was awaited outside a tokio runtime.
    #[error("drive-flow runs events as tokio tasks: await the run inside a tokio runtime")]
    NoRuntime,
    /// The run was cancelled before it ended, with
    /// [`RunHandle::cancel`](crate::RunHandle::cancel) (or its runtime shut down).
    #[error("the run was cancelled")]
    Cancelled,
    /// One attempt of an event ran longer than its `timeout` option.
    #[error("event `{event}` timed out after {after:?} (its `timeout` option)")]
    Timeout {
        /// The event that timed out.
        event: String,
        /// Its timeout.
        after: Duration,
    },
    /// Every attempt of an event with a `retries` option failed.
    #[error("event `{event}` failed after {attempts} attempts; the last one: {last}")]
    RetriesExhausted {
        /// The failing event.
        event: String,
        /// How many times it ran: `retries + 1`.
        attempts: u32,
        /// The error of the last attempt ([`Error::Failed`] or [`Error::Timeout`]).
        #[source]
        last: Box<Error>,
    },
    /// The run was still going when its [`timeout`](crate::Invoke::timeout) expired.
    #[error(
        "the run timed out after {after:?}; still in flight: {}",
        list_or_none(running)
    )]
    RunTimeout {
        /// The run's timeout.
        after: Duration,
        /// The events that were running or waiting for input then (in no particular order).
        running: Vec<String>,
    },
    /// The run started more events than its [`max_steps`](crate::Invoke::max_steps) budget:
    /// usually a loop without an exit.
    #[error(
        "the run exceeded its budget of {limit} event runs (`max_steps`); `{event}` ran most \
         often, {runs} times: a loop without an exit?"
    )]
    TooManySteps {
        /// The budget.
        limit: u64,
        /// The event that ran most often.
        event: String,
        /// How many times it ran.
        runs: u32,
    },
    /// One event was triggered more often than
    /// [`max_runs_per_event`](crate::Invoke::max_runs_per_event) allows.
    #[error(
        "event `{event}` was triggered again after running {runs} times, its limit \
         (`max_runs_per_event`): a loop without an exit?"
    )]
    TooManyRuns {
        /// The looping event.
        event: String,
        /// How many times it ran.
        runs: u32,
        /// The limit (equal to `runs`).
        limit: u32,
    },
    /// An event takes an [`Inbox`](crate::Inbox) but its run has no handle to send through.
    #[error(
        "event `{event}` takes an `Inbox`, but the run was awaited directly: start it with \
         `.start()` and send input with `RunHandle::send`"
    )]
    NoInbox {
        /// The event waiting for input.
        event: String,
    },
    /// An event (a start event or a goto target) that is not part of this drive.
    #[error("{event} is not an event of this drive{detail}")]
    UnknownEvent {
        /// The event, as far as it can be named.
        event: String,
        /// Where it was used.
        detail: String,
    },
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        return String::from("nothing (every event had finished)");
    }
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}
