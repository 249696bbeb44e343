//! [`DurableError`]: what can go wrong with a durable run, its store or its worker.

use std::fmt;

/// The id of a durable run, given by [`submit`](crate::durable::DurableInvoke::submit) and
/// valid in any process connected to the same store.
///
/// ```
/// use drive_flow::durable::RunId;
///
/// let run = RunId::from_i64(42);
/// assert_eq!(run.as_i64(), 42);
/// assert_eq!(run.to_string(), "42");
/// assert_eq!("42".parse::<RunId>().unwrap(), run);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub(crate) i64);

impl RunId {
    /// The run with this id (as stored in the database, printed by `Display`).
    pub fn from_i64(id: i64) -> Self {
        RunId(id)
    }

    /// The id as a number.
    pub fn as_i64(self) -> i64 {
        self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for RunId {
    type Err = std::num::ParseIntError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.trim().parse().map(RunId)
    }
}

/// A failure of the durable backend, of a client call, or of a durable run.
///
/// ```
/// use drive_flow::durable::{DurableError, RunId};
///
/// let error = DurableError::UnknownRun(RunId::from_i64(7));
/// assert_eq!(error.to_string(), "no durable run has the id 7");
/// let error = DurableError::SchemaVersion { schema: "drive_flow".into(), found: 9, expected: 1 };
/// assert!(error.to_string().contains("version 9"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The database server could not be reached (refused, timed out, DNS, TLS).
    #[error("cannot reach PostgreSQL at {target}: {source}")]
    Unreachable {
        /// Host and port (the password is never shown).
        target: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A connection string that cannot be used.
    #[error("invalid PostgreSQL connection string: {detail}")]
    InvalidUrl {
        /// What is wrong with it.
        detail: String,
    },
    /// A schema name that is not a plain SQL identifier.
    #[error(
        "`{name}` cannot be a schema name: use 1 to 63 lowercase letters, digits and `_`, \
         not starting with a digit"
    )]
    InvalidSchemaName {
        /// The name given.
        name: String,
    },
    /// The schema was made by another version of drive-flow.
    #[error(
        "the schema `{schema}` is at version {found}, but this drive-flow uses version \
         {expected}: migrate with a matching drive-flow, or use another schema"
    )]
    SchemaVersion {
        /// The schema.
        schema: String,
        /// The version found in the database.
        found: i32,
        /// The version this build expects.
        expected: i32,
    },
    /// The schema has not been prepared yet.
    #[error("the schema `{schema}` is not prepared: call `PgStore::migrate` first")]
    NotMigrated {
        /// The schema.
        schema: String,
    },
    /// No run has this id.
    #[error("no durable run has the id {0}")]
    UnknownRun(RunId),
    /// The run has already ended (for [`send`](crate::durable::DurableDrive::send)).
    #[error("the durable run {0} has already ended")]
    RunFinished(RunId),
    /// A stored value no longer deserializes into the type its event declares.
    #[error("run {run}: the stored value of event `{event}` cannot be read: {detail}")]
    Decode {
        /// The run.
        run: RunId,
        /// The event whose value it is.
        event: String,
        /// What serde said.
        detail: String,
    },
    /// A value could not be turned into JSON.
    #[error("{what} cannot be serialized to JSON: {detail}")]
    Encode {
        /// Which value.
        what: String,
        /// What serde said.
        detail: String,
    },
    /// An event's output type cannot cross processes: it is not
    /// `Serialize + DeserializeOwned`.
    #[error(
        "event `{event}` produces a `{type_name}`{location}, which is not \
         `Serialize + DeserializeOwned`: durable runs store every output as JSON"
    )]
    NotSerializable {
        /// The event.
        event: String,
        /// Its output type.
        type_name: &'static str,
        /// Where the event is defined (` (defined at file:line)`), when known.
        location: String,
    },
    /// An event (the start of a run) that is not part of the drive.
    #[error("{event} is not an event of this drive")]
    UnknownEvent {
        /// The event, as far as it can be named.
        event: String,
    },
    /// The run itself failed: an event returned an error, timed out, panicked, the run hit
    /// a budget or its deadline, or was cancelled.
    #[error(transparent)]
    Run(crate::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}
