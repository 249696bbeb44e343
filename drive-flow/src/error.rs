//! Errors: [`BuildError`] when a graph is built, [`Error`] when a run fails.

use crate::flow::BoxError;

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
    /// The run was cancelled before it ended.
    #[error("the run was cancelled")]
    Cancelled,
    /// An event (a start event or a goto target) that is not part of this drive.
    #[error("{event} is not an event of this drive{detail}")]
    UnknownEvent {
        /// The event, as far as it can be named.
        event: String,
        /// Where it was used.
        detail: String,
    },
}
