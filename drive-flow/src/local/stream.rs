//! The live stream of what happens in a run: [`RunEvent`]s, received through [`RunEvents`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;

use crate::body::emitter::Emitted;
use crate::core::input::{Behavior, OutcomeKind};

/// One thing that happened in a run, as seen on [`RunEvents`].
///
/// For one call of an event (one `task_id`), the stream shows `Started`, then any number of
/// `Retrying`, `Waiting` and `Emitted` (values the call sent with an
/// [`Emitter`](crate::Emitter), in the order it sent them), then one of `Finished`, `Failed`
/// or `Cancelled` (or nothing more, for a call still in flight when another event failed).
/// An event triggered by another one is `Started` after that one's `Finished`. Items of a
/// child workflow ([`Child`](crate::Child)) follow the same rules within their own run, and
/// name it with their [`path`](Self::path).
///
/// The `Started` event of a call carries its [`Cause`]: the call that triggered it (by task
/// id) and the group, so that a run can be rebuilt as a tree (every call's parent) without
/// relying on the order in which the stream delivers events.
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
    /// What triggered the call: set on its [`Started`](RunEventKind::Started) event,
    /// `None` on the others (they share its `task_id`).
    pub cause: Option<Cause>,
    /// Where the run of this item sits, for an item of a child workflow (see
    /// [`path`](Self::path)); `None` for the watched run's own items.
    pub(crate) path: Option<RunPath>,
}

/// What triggered one call of an event, carried by its `Started` [`RunEvent`].
///
/// - The run's start: behavior [`Input`](crate::Behavior::Input), group `"user_input"`,
///   `after: None`.
/// - A group that fired: behavior [`Dispatch`](crate::Behavior::Dispatch), the group's
///   name, and `after`: the call of the member whose completion made it fire.
/// - A goto: behavior [`Goto`](crate::Behavior::Goto), group `"$goto"`, and `after`: the
///   call that returned the goto.
///
/// ```
/// use std::collections::HashMap;
/// use drive_flow::prelude::*;
/// use drive_flow::RunEventKind;
/// use futures::StreamExt;
///
/// #[event]
/// async fn first() {}
/// #[listen(first)]
/// async fn second() {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let (run, events) = Drive::new()?.invoke(first).start_with_events();
/// let started: Vec<_> = events.filter(|e| std::future::ready(e.kind == RunEventKind::Started)).collect().await;
/// run.await?;
/// // Each call's parent, by task id.
/// let name: HashMap<u64, &str> = started.iter().map(|e| (e.task_id, &*e.event)).collect();
/// let second_call = started.iter().find(|e| e.event.ends_with("::second")).unwrap();
/// let cause = second_call.cause.as_ref().unwrap();
/// assert_eq!(cause.behavior, Behavior::Dispatch);
/// assert_eq!(&*cause.group, "0");
/// assert!(name[&cause.after.unwrap()].ends_with("::first"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cause {
    /// How the call was triggered: the run's input, a group, or a goto.
    pub behavior: Behavior,
    /// The group name, as [`EventInput::group_name`](crate::EventInput::group_name) gives it.
    pub group: Arc<str>,
    /// The task id of the call whose completion triggered this one; `None` for the run's
    /// start.
    pub after: Option<u64>,
}

/// The chain of events that ran the child workflows an item comes from, outermost first.
pub(crate) type RunPath = Arc<[PathStep]>;

/// One event that ran a child workflow: see [`RunEvent::path`].
///
/// ```
/// use drive_flow::{PathStep, RunEvent};
///
/// fn describe(event: &RunEvent) -> String {
///     let path: Vec<String> = event
///         .path()
///         .iter()
///         .map(|step: &PathStep| format!("{}#{} (run {})", step.event, step.task_id, step.run_id))
///         .collect();
///     format!("{} / {}#{}", path.join(" / "), event.event, event.task_id)
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PathStep {
    /// The id of the event that ran the child workflow.
    pub event: Arc<str>,
    /// Which call of it (its task id, in its own run).
    pub task_id: u64,
    /// The id of the child run it started (two child runs of one call differ here).
    pub run_id: u64,
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
    /// The call sent a value out with [`Emitter::emit`](crate::Emitter::emit) (in a
    /// watched run only). Read it with [`RunEvent::emitted`].
    Emitted(Emitted),
}

impl RunEvent {
    /// The value this item carries, if it is one a call emitted
    /// ([`RunEventKind::Emitted`]) and a `T`.
    ///
    /// ```
    /// use drive_flow::{RunEvent, RunEventKind};
    ///
    /// fn token(event: &RunEvent) -> Option<&str> {
    ///     event.emitted::<String>().map(String::as_str)
    /// }
    /// # let _ = token;
    /// ```
    pub fn emitted<T: 'static>(&self) -> Option<&T> {
        match &self.kind {
            RunEventKind::Emitted(item) => item.downcast_ref(),
            _ => None,
        }
    }

    /// For an item of a child workflow ([`Child`](crate::Child)), the events that ran it,
    /// outermost first, each with its task id in its own run; empty for an item of the
    /// watched run itself. `event` and `task_id` are then those of the child's event, in
    /// the child run.
    pub fn path(&self) -> &[PathStep] {
        self.path.as_deref().unwrap_or_default()
    }
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
