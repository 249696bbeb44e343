//! Outside input for a running workflow (human in the loop): an event takes an [`Inbox`]
//! parameter and waits on it; the caller sends through the run's
//! [`RunHandle`](crate::RunHandle).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::core::graph::NodeId;

/// What an event receives to wait for values sent from outside its run, such as a human's
/// approval. Declare a parameter of this type; the caller sends with
/// [`RunHandle::send`](crate::RunHandle::send), under a key.
///
/// Only a run started with [`Invoke::start`](crate::Invoke::start) (or
/// [`start_with_events`](crate::Invoke::start_with_events)) has a handle to send through: a
/// run that is awaited directly and can reach an event taking an `Inbox` fails with
/// [`Error::NoInbox`](crate::Error::NoInbox) before anything runs.
///
/// **Concurrency.** While an event waits in [`recv`](Self::recv), it does not count against
/// [`max_concurrency`](crate::Invoke::max_concurrency): its slot goes to the next queued
/// event. When the value arrives, the event takes a slot again before it goes on, ahead of
/// events still queued; if none is free, it waits for one. A run whose only events left are
/// waiting does not end: it waits for input, for [`RunHandle::cancel`](crate::RunHandle::cancel)
/// or for its [`timeout`](crate::Invoke::timeout). A per-event `timeout` counts waiting time.
/// Several `recv`s of one event may wait at once (`join!`, `select!`): the event gives its
/// slot back once, and takes it back when the last of them is done.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn draft() -> String { String::from("release v2") }
///
/// #[listen(draft)]
/// async fn publish(input: EventInput, inbox: Inbox) -> Result<String, drive_flow::InboxError> {
///     let approved: bool = inbox.recv("approval").await?;
///     let text = input.get(draft).cloned().unwrap_or_default();
///     Ok(if approved { format!("published {text}") } else { String::from("dropped") })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let run = Drive::new()?.invoke(draft).start();
/// run.send("approval", true);
/// let results = run.await?;
/// assert_eq!(results.get(publish).map(String::as_str), Some("published release v2"));
/// # Ok(())
/// # }
/// ```
pub struct Inbox {
    pub(crate) link: InboxLink,
}

/// What a runner does for the [`Inbox`] of its calls: each runner (in-process, durable)
/// implements it, so that the inbox needs nothing of any runner.
pub(crate) trait InboxHost: Send + Sync + 'static {
    /// Wait for the next value sent to the run under `key` for `call`, and take it.
    fn recv(self: Arc<Self>, call: CallRef, key: String) -> BoxFuture<'static, Message>;
}

/// Which call of a run an [`Inbox`] belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallRef {
    /// The call's task key in its run.
    pub(crate) key: usize,
    pub(crate) node: NodeId,
    pub(crate) task_id: u64,
}

/// What a call needs to reach its run's mailbox.
#[derive(Clone)]
pub(crate) struct InboxLink {
    pub(crate) host: Arc<dyn InboxHost>,
    pub(crate) call: CallRef,
}

/// Why [`Inbox::recv`] gave no value.
///
/// ```
/// use drive_flow::InboxError;
///
/// let error = InboxError::WrongType { key: "approval".into(), expected: "bool", sent: "i32" };
/// assert_eq!(
///     error.to_string(),
///     "the value sent under `approval` is a `i32`, but the event expects a `bool`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// The value sent under `key` has another type than the one asked for (it is dropped).
    #[error("the value sent under `{key}` is a `{sent}`, but the event expects a `{expected}`")]
    WrongType {
        /// The key.
        key: String,
        /// The type asked for.
        expected: &'static str,
        /// The type sent.
        sent: &'static str,
    },
}

impl Inbox {
    /// Wait for the next value sent under `key`, and take it. Values sent before the event
    /// waits are kept, in order; each value goes to one receiver.
    ///
    /// While it waits, the event holds no concurrency slot (see [`Inbox`]); the run's
    /// `timeout` and [`RunHandle::cancel`](crate::RunHandle::cancel) still end it.
    ///
    /// # Errors
    /// [`InboxError::WrongType`] when the value sent is not a `T`.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn ask(inbox: Inbox) -> Result<u32, drive_flow::InboxError> {
    ///     let a: u32 = inbox.recv("n").await?;
    ///     let b: u32 = inbox.recv("n").await?;
    ///     Ok(a * 10 + b)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let run = Drive::new()?.invoke(ask).start();
    /// run.send("n", 4u32);
    /// run.send("n", 2u32);
    /// assert_eq!(run.await?.get(ask), Some(&42));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv<T: Send + 'static>(&self, key: &str) -> Result<T, InboxError> {
        let host = self.link.host.clone();
        let message = host.recv(self.link.call, key.to_string()).await;
        message.downcast(key)
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("task_id", &self.link.call.task_id)
            .finish()
    }
}

/// The `expected` of the [`ParamError`] of an `Inbox` in a run without a mailbox.
pub(crate) const INBOX_PARAM: &str = "drive_flow::Inbox";

/// A value sent to a run, its type erased.
pub(crate) struct Message {
    value: Box<dyn Any + Send>,
    type_name: &'static str,
}

impl Message {
    pub(crate) fn new<T: Send + 'static>(value: T) -> Self {
        Message {
            value: Box::new(value),
            type_name: std::any::type_name::<T>(),
        }
    }

    /// A value already boxed, with the name of its type (a durable runner decodes values
    /// by the type name stored with them).
    #[cfg(feature = "postgres")]
    pub(crate) fn from_box(value: Box<dyn Any + Send>, type_name: &'static str) -> Self {
        Message { value, type_name }
    }

    fn downcast<T: 'static>(self, key: &str) -> Result<T, InboxError> {
        match self.value.downcast::<T>() {
            Ok(value) => Ok(*value),
            Err(_) => Err(InboxError::WrongType {
                key: key.to_string(),
                expected: std::any::type_name::<T>(),
                sent: self.type_name,
            }),
        }
    }
}
