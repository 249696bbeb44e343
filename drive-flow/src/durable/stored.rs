//! A run's error as the database keeps it, and back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{DurableError, RunId};
use crate::Error;

/// Why a run failed, in a form that survives the database and becomes an [`Error`] again
/// in the process that waits for the run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct StoredError {
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) event: Option<String>,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) runs: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) running: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last: Option<Box<StoredError>>,
}

impl StoredError {
    fn new(kind: &str, event: Option<&str>, message: String) -> Self {
        StoredError {
            kind: kind.to_string(),
            event: event.map(str::to_string),
            message,
            after_ms: None,
            attempts: None,
            limit: None,
            runs: None,
            running: Vec::new(),
            last: None,
        }
    }

    pub(crate) fn run_timeout(after: Duration, running: Vec<String>) -> Self {
        let mut error = StoredError::new("run_timeout", None, String::new());
        error.after_ms = Some(after.as_millis() as u64);
        error.running = running;
        error
    }

    pub(crate) fn cancelled() -> Self {
        StoredError::new("cancelled", None, String::new())
    }

    pub(crate) fn decode(event: &str, detail: String) -> Self {
        StoredError::new("decode", Some(event), detail)
    }

    /// The run's error, stored.
    pub(crate) fn from_error(error: &Error) -> Self {
        match error {
            Error::Failed { event, source } => {
                StoredError::new("failed", Some(event), source.to_string())
            }
            Error::Panicked { event, message } => {
                StoredError::new("panicked", Some(event), message.clone())
            }
            Error::Timeout { event, after } => {
                let mut stored = StoredError::new("timeout", Some(event), String::new());
                stored.after_ms = Some(after.as_millis() as u64);
                stored
            }
            Error::RetriesExhausted {
                event,
                attempts,
                last,
            } => {
                let mut stored = StoredError::new("retries", Some(event), String::new());
                stored.attempts = Some(*attempts);
                stored.last = Some(Box::new(StoredError::from_error(last)));
                stored
            }
            Error::RunTimeout { after, running } => {
                StoredError::run_timeout(*after, running.clone())
            }
            Error::TooManySteps { limit, event, runs } => {
                let mut stored = StoredError::new("too_many_steps", Some(event), String::new());
                stored.limit = Some(*limit);
                stored.runs = Some(*runs);
                stored
            }
            Error::TooManyRuns { event, runs, limit } => {
                let mut stored = StoredError::new("too_many_runs", Some(event), String::new());
                stored.limit = Some(u64::from(*limit));
                stored.runs = Some(*runs);
                stored
            }
            Error::Cancelled => StoredError::cancelled(),
            Error::UnknownEvent { event, detail } => {
                StoredError::new("unknown_event", Some(event), detail.clone())
            }
            other => StoredError::new("other", None, other.to_string()),
        }
    }

    /// The message shown in the history.
    pub(crate) fn message(&self) -> String {
        self.to_error().to_string()
    }

    /// The error again.
    pub(crate) fn to_error(&self) -> Error {
        let event = self.event.clone().unwrap_or_default();
        let after = Duration::from_millis(self.after_ms.unwrap_or(0));
        match self.kind.as_str() {
            "failed" => Error::Failed {
                event,
                source: self.message.clone().into(),
            },
            "panicked" => Error::Panicked {
                event,
                message: self.message.clone(),
            },
            "timeout" => Error::Timeout { event, after },
            "retries" => Error::RetriesExhausted {
                event: event.clone(),
                attempts: self.attempts.unwrap_or(0),
                last: Box::new(self.last.as_ref().map(|last| last.to_error()).unwrap_or(
                    Error::Failed {
                        event,
                        source: String::from("(unknown)").into(),
                    },
                )),
            },
            "run_timeout" => Error::RunTimeout {
                after,
                running: self.running.clone(),
            },
            "too_many_steps" => Error::TooManySteps {
                limit: self.limit.unwrap_or(0),
                event,
                runs: self.runs.unwrap_or(0),
            },
            "too_many_runs" => Error::TooManyRuns {
                event,
                runs: self.runs.unwrap_or(0),
                limit: self.limit.unwrap_or(0) as u32,
            },
            "cancelled" => Error::Cancelled,
            "unknown_event" => Error::UnknownEvent {
                event,
                detail: self.message.clone(),
            },
            _ => Error::Failed {
                event: if event.is_empty() {
                    String::from("(run)")
                } else {
                    event
                },
                source: self.message.clone().into(),
            },
        }
    }

    /// The error a client sees for the run.
    pub(crate) fn into_durable(self, run: RunId) -> DurableError {
        if self.kind == "decode" {
            return DurableError::Decode {
                run,
                event: self.event.unwrap_or_default(),
                detail: self.message,
            };
        }
        DurableError::Run(self.to_error())
    }
}
