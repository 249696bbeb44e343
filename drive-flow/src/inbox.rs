//! Outside input for a running workflow (human in the loop): an event takes an [`Inbox`]
//! parameter and waits on it; the caller sends through the run's
//! [`RunHandle`](crate::RunHandle).

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::context::{Call, ContextNeed, EventParam, ParamError};
use crate::graph::NodeId;
use crate::runner::Shared;

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
    link: InboxLink,
    task_id: u64,
}

/// What a call needs to reach its run's mailbox.
#[derive(Clone)]
pub(crate) struct InboxLink {
    pub(crate) run: Arc<Shared>,
    /// The call's task key in the run.
    pub(crate) key: usize,
    pub(crate) node: NodeId,
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
        let run = &self.link.run;
        let Some(mailbox) = run.mailbox.as_ref() else {
            // Not reachable: a link exists only for runs with a mailbox.
            return std::future::pending().await;
        };
        let notify = match mailbox.take(key) {
            Ok(message) => return message.downcast(key),
            Err(notify) => notify,
        };
        let mut waiting = Waiting::begin(&self.link, self.task_id, key);
        let message = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Ok(message) = mailbox.take(key) {
                break message;
            }
            notified.await;
        };
        waiting.resume().await;
        message.downcast(key)
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("task_id", &self.task_id)
            .finish()
    }
}

/// The `expected` of the [`ParamError`] of an `Inbox` in a run without a mailbox.
pub(crate) const INBOX_PARAM: &str = "drive_flow::Inbox";

/// Whether a need declared by a parameter is an inbox (not a context).
pub(crate) fn is_inbox(need: &ContextNeed) -> bool {
    need.type_id == TypeId::of::<Inbox>()
}

impl EventParam for Inbox {
    type ContextKind = crate::context::NoContext;

    fn from_call(call: &Call) -> Result<Self, ParamError> {
        match &call.inbox {
            Some(link) => Ok(Inbox {
                link: link.clone(),
                task_id: call.input.task_id,
            }),
            None => Err(ParamError {
                expected: INBOX_PARAM,
                given: false,
            }),
        }
    }

    fn context_need() -> Option<ContextNeed> {
        Some(ContextNeed {
            type_id: TypeId::of::<Inbox>(),
            type_name: INBOX_PARAM,
        })
    }
}

/// One `recv` that waits for a value: while it (or another `recv` of the same call) waits,
/// the call's concurrency slot is given back to the run, until
/// [`resume`](Self::resume). Dropped before that, it settles the count with the run.
struct Waiting<'a> {
    link: &'a InboxLink,
    task_id: u64,
    /// Still counted among the call's waits.
    waited: bool,
    /// Counted among the calls waiting for a slot.
    registered: bool,
    done: bool,
}

impl<'a> Waiting<'a> {
    fn begin(link: &'a InboxLink, task_id: u64, key: &str) -> Self {
        link.run.begin_wait(link, task_id, key);
        Waiting {
            link,
            task_id,
            waited: true,
            registered: false,
            done: false,
        }
    }

    /// Take the call's slot back (if it was the call's last wait), waiting for a free one.
    async fn resume(&mut self) {
        loop {
            let notified = self.link.run.resume.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.link.run.try_resume(
                self.link,
                self.task_id,
                &mut self.waited,
                &mut self.registered,
            ) {
                self.done = true;
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.link
                .run
                .abandon_wait(self.link, self.task_id, self.waited, self.registered);
        }
    }
}

/// Values sent to a run, by key, until an event takes them.
#[derive(Default)]
pub(crate) struct Mailbox {
    slots: Mutex<HashMap<String, Slot>>,
}

#[derive(Default)]
struct Slot {
    queue: VecDeque<Message>,
    notify: Arc<Notify>,
}

pub(crate) struct Message {
    value: Box<dyn Any + Send>,
    type_name: &'static str,
}

impl Message {
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

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        crate::lock::lock(&self.slots)
    }

    pub(crate) fn send<T: Send + 'static>(&self, key: String, value: T) {
        let mut slots = self.lock();
        let slot = slots.entry(key).or_default();
        slot.queue.push_back(Message {
            value: Box::new(value),
            type_name: std::any::type_name::<T>(),
        });
        slot.notify.notify_one();
    }

    /// The next value under `key`, or what to wait on for one.
    fn take(&self, key: &str) -> Result<Message, Arc<Notify>> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(key) {
            return slot.queue.pop_front().ok_or_else(|| slot.notify.clone());
        }
        let slot = slots.entry(key.to_string()).or_default();
        Err(slot.notify.clone())
    }
}
