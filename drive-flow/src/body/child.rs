//! Nested workflows: an event runs another workflow as a child of its run, through its
//! [`Child`] parameter.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::body::inbox::CallRef;
use crate::body::need::ContextNeed;
use crate::core::error::Error;
use crate::core::event::{Event, EventKey};
use crate::core::input::EventInput;
use crate::core::results::Results;

/// The type name under which a missing [`Child`] is reported.
pub(crate) const CHILD_PARAM: &str = "drive_flow::Child";

/// What an event takes to run another workflow as a child of its run: `child.invoke(start)`
/// runs the workflow that starts at `start` (an event of the same drive), and its awaited
/// result is the child's [`Results`].
///
/// The child belongs to the run of the event that runs it:
/// - **cancellation**: it runs inside the event's call, so whatever ends the call (the run
///   cancelled, timed out, or failed elsewhere, the event's own `timeout`) cancels every
///   event of the child too, and its run's `timeout` bounds the child;
/// - **loop budget**: every event run the child triggers counts against the parent run's
///   [`max_steps`](crate::Invoke::max_steps) (and so on up, for a child of a child);
/// - **live stream**: when the parent run is watched, its stream carries the child's items
///   too, each with its [`path`](crate::RunEvent::path) (the parent event and task that
///   ran the child); an [`Emitter`](crate::Emitter) in the child reaches it as well;
/// - **context**: the child gets the parent run's context unless given another;
/// - **errors**: a child that fails gives [`Error::Child`], naming the parent event, the
///   child's start and the child's own error; an event that returns it with `?` fails with
///   it (not wrapped again);
/// - **no inbox**: nothing can send to a child run from outside, so a child workflow that
///   reaches an event taking an [`Inbox`](crate::Inbox) fails with
///   [`Error::NoInbox`] before it starts;
/// - **spans**: the child's run span is a child of the span of the event that runs it, so
///   a trace holds the whole tree.
///
/// Declare the child in the pictures with `runs = start` on the event's attribute (or
/// [`DriveBuilder::runs`](crate::DriveBuilder::runs)): Mermaid and DOT then draw the child
/// workflow inside a box beside the event that runs it.
///
/// ```
/// use drive_flow::prelude::*;
/// use drive_flow::Child;
///
/// #[event]
/// async fn research(input: EventInput) -> String {
///     format!("notes on {}", input.user::<&str>().copied().unwrap_or("?"))
/// }
///
/// #[listen(research)]
/// async fn summarize(input: EventInput) -> String {
///     input.get(research).cloned().unwrap_or_default().to_uppercase()
/// }
///
/// #[event(runs = research)]
/// async fn write(child: Child) -> Result<String, drive_flow::Error> {
///     let found = child.invoke(research).input(EventInput::from_input("rust")).await?;
///     Ok(format!("report: {}", found.get(summarize).cloned().unwrap_or_default()))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let results = Drive::new()?.invoke(write).await?;
/// assert_eq!(results.get(write).map(String::as_str), Some("report: NOTES ON RUST"));
/// # Ok(())
/// # }
/// ```
pub struct Child {
    link: ChildLink,
}

/// What a call needs to run child workflows in its run.
#[derive(Clone)]
pub(crate) struct ChildLink {
    pub(crate) host: Arc<dyn ChildHost>,
    pub(crate) call: CallRef,
}

/// What a runner does for the [`Child`] of its calls.
pub(crate) trait ChildHost: Send + Sync + 'static {
    /// Run the child workflow `request` for `call`, as a child of this run.
    fn run_child(
        self: Arc<Self>,
        call: CallRef,
        request: ChildRequest,
    ) -> BoxFuture<'static, Result<Results, Error>>;
}

/// A child run as configured with [`ChildInvoke`].
pub(crate) struct ChildRequest {
    pub(crate) start: EventKey,
    pub(crate) input: EventInput,
    /// A context of its own, or `None` for the parent run's.
    pub(crate) context: Option<(Arc<dyn Any + Send + Sync>, TypeId, &'static str)>,
    pub(crate) max_concurrency: usize,
    pub(crate) timed: bool,
}

impl Child {
    /// Configure a child run starting at `start`; await it to run it. See [`Child`].
    pub fn invoke<E: Event>(&self, start: E) -> ChildInvoke<E> {
        ChildInvoke {
            link: self.link.clone(),
            request: ChildRequest {
                start: start.__key(),
                input: EventInput::start(),
                context: None,
                max_concurrency: usize::MAX,
                timed: false,
            },
            event: PhantomData,
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("task_id", &self.link.call.task_id)
            .finish()
    }
}

impl Child {
    /// The parameter of a call that may run child workflows through `link`.
    pub(crate) fn new(link: ChildLink) -> Self {
        Child { link }
    }
}

/// Whether a need is the marker of a [`Child`] parameter (not a context).
pub(crate) fn is_child(need: &ContextNeed) -> bool {
    need.type_id == TypeId::of::<Child>()
}

/// A child run being configured: returned by [`Child::invoke`], run by awaiting it. Its
/// options are those of [`Invoke`](crate::Invoke) that a child may set; its cancellation,
/// run timeout and loop budget are its parent's (see [`Child`]).
#[must_use = "a child run does nothing until it is awaited"]
pub struct ChildInvoke<E> {
    link: ChildLink,
    request: ChildRequest,
    event: PhantomData<fn() -> E>,
}

impl<E> ChildInvoke<E> {
    /// The input of the child's start event, as [`Invoke::input`](crate::Invoke::input).
    pub fn input(mut self, input: EventInput) -> Self {
        self.request.input = input;
        self
    }

    /// A context of the child's own (by default it shares its parent run's).
    pub fn context<T: Send + Sync + 'static>(self, context: T) -> Self {
        self.context_arc(Arc::new(context))
    }

    /// Like [`context`](Self::context), keeping a pointer to it on the caller's side.
    pub fn context_arc<T: Send + Sync + 'static>(mut self, context: Arc<T>) -> Self {
        self.request.context = Some((context, TypeId::of::<T>(), std::any::type_name::<T>()));
        self
    }

    /// At most `n` events of the child run at once, as
    /// [`Invoke::max_concurrency`](crate::Invoke::max_concurrency).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.request.max_concurrency = n.max(1);
        self
    }

    /// Measure the child's events, as [`Invoke::timed`](crate::Invoke::timed) (a child of
    /// a watched run is always timed).
    pub fn timed(mut self) -> Self {
        self.request.timed = true;
        self
    }
}

impl<E: 'static> IntoFuture for ChildInvoke<E> {
    type Output = Result<Results, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Results, Error>> + Send + 'static>>;

    fn into_future(self) -> Self::IntoFuture {
        let ChildLink { host, call } = self.link;
        host.run_child(call, self.request)
    }
}
