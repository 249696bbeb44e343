//! The live stream of what happens in a run: [`RunEvent`]s, received through [`RunEvents`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;

use crate::core::input::OutcomeKind;

/// One thing that happened in a run, as seen on [`RunEvents`].
///
/// For one call of an event (one `task_id`), the stream shows `Started`, then any number of
/// `Retrying` and `Waiting`, then one of `Finished`, `Failed` or `Cancelled` (or nothing more,
/// for a call still in flight when another event failed). An event triggered by another one
/// is `Started` after that one's `Finished`.
///
/// ```
/// use drive_flow::{RunEvent, RunEventKind};
///
/// fn describe(event: &RunEvent) -> String {
///     match &event.kind {
///         RunEventKind::Started => format!("{} started", event.event),
///         RunEventKind::Finished { outcome, elapsed } => {
///             format!("{} finished with a {outcome:?} in {elapsed:?}", event.event)
///         }
///         other => format!("{}: {other:?}", event.event),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunEvent {
    /// The event's id (`module::path::fn_name`, or its builder name).
    pub event: Arc<str>,
    /// Which call of the event ([`EventInput::task_id`](crate::EventInput::task_id)).
    pub task_id: u64,
    /// What happened.
    pub kind: RunEventKind,
}

/// What happened to one call of an event. See [`RunEvent`].
///
/// ```
/// use drive_flow::{OutcomeKind, RunEventKind};
///
/// let kind = RunEventKind::Finished { outcome: OutcomeKind::Goto, elapsed: Default::default() };
/// assert!(kind.is_end());
/// assert!(!RunEventKind::Started.is_end());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEventKind {
    /// The call started (it got a concurrency slot).
    Started,
    /// An attempt failed (an error or its timeout) and will be run again after `delay`.
    Retrying {
        /// The attempt that failed, counting from 1.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
        /// Why it failed.
        error: String,
    },
    /// The call waits for outside input under `key` ([`Inbox::recv`](crate::Inbox::recv)); it
    /// gave its concurrency slot back while it waits.
    Waiting {
        /// The key it waits on.
        key: String,
    },
    /// The call ended with a value, a goto or an abort.
    Finished {
        /// Which of the three.
        outcome: OutcomeKind,
        /// How long the call took, retries and waiting included.
        elapsed: Duration,
    },
    /// The call failed, and with it the run.
    Failed {
        /// Why (the run's [`Error`](crate::Error), as text).
        error: String,
    },
    /// The call was still in flight when the run ended early (cancelled, timed out, or
    /// failed elsewhere), and was cancelled.
    Cancelled,
}

impl RunEventKind {
    /// Whether this is the last event of its call (`Finished`, `Failed` or `Cancelled`).
    pub fn is_end(&self) -> bool {
        matches!(
            self,
            RunEventKind::Finished { .. } | RunEventKind::Failed { .. } | RunEventKind::Cancelled
        )
    }
}

/// The [`RunEvent`]s of one run, as they happen: a [`Stream`] that ends when the run ends,
/// whether it succeeded, failed or was cancelled. Get it with
/// [`Invoke::start_with_events`](crate::Invoke::start_with_events).
///
/// Events are buffered without bound until read, so read the stream or drop it; a run nobody
/// watches sends nothing.
///
/// ```
/// use drive_flow::prelude::*;
/// use drive_flow::RunEventKind;
/// use futures::StreamExt;
///
/// #[event]
/// async fn watched() -> u8 { 1 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let (run, events) = Drive::new()?.invoke(watched).start_with_events();
/// let seen: Vec<_> = events.map(|e| e.kind).collect().await;
/// assert_eq!(seen.len(), 2);
/// assert_eq!(seen[0], RunEventKind::Started);
/// assert!(matches!(seen[1], RunEventKind::Finished { outcome: OutcomeKind::Value, .. }));
/// run.await?;
/// # Ok(())
/// # }
/// ```
pub struct RunEvents {
    receiver: mpsc::UnboundedReceiver<RunEvent>,
}

impl RunEvents {
    pub(crate) fn new(receiver: mpsc::UnboundedReceiver<RunEvent>) -> Self {
        RunEvents { receiver }
    }
}

impl Stream for RunEvents {
    type Item = RunEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RunEvent>> {
        self.receiver.poll_recv(cx)
    }
}

impl fmt::Debug for RunEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunEvents")
            .field("buffered", &self.receiver.len())
            .finish()
    }
}

/// The sending side, held by the run while someone watches.
pub(crate) type EventSender = mpsc::UnboundedSender<RunEvent>;
