//! [`RunHandle`]: a run started in the background, to send input to, cancel, and await.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::error::Error;
use crate::core::results::Results;
use crate::local::runner::{drive, Invoke, Shared};
use crate::local::stream::{EventSender, RunEvents};

impl<E> Invoke<E> {
    /// Start the run now, as a tokio task, and get a [`RunHandle`] to send it outside input
    /// ([`RunHandle::send`]), cancel it, and await its [`Results`]. Must be called inside a
    /// tokio runtime (else the handle yields [`Error::NoRuntime`]). Dropping the handle
    /// cancels the run.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn job() -> u8 { 7 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let run = Drive::new()?.invoke(job).start();
    /// let results = run.await?;
    /// assert_eq!(results.get(job), Some(&7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(self) -> RunHandle {
        self.launch(None)
    }

    /// Like [`start`](Self::start), also returning the run's live [`RunEvents`] stream. The
    /// stream is connected before anything runs, so it misses nothing; it ends when the run
    /// ends, however it ends. Runs started otherwise send no events at all.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    /// use drive_flow::RunEventKind;
    /// use futures::StreamExt;
    ///
    /// #[event]
    /// async fn step() {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let (run, mut events) = Drive::new()?.invoke(step).start_with_events();
    /// while let Some(event) = events.next().await {
    ///     println!("{}: {:?}", event.event, event.kind);
    /// }
    /// run.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start_with_events(self) -> (RunHandle, RunEvents) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (self.launch(Some(sender)), RunEvents::new(receiver))
    }

    fn launch(self, events: Option<EventSender>) -> RunHandle {
        match self.prepare(true, events) {
            Ok((shared, start)) => {
                let join = shared.runtime.spawn(drive(shared.clone(), start));
                RunHandle::new(shared, join)
            }
            Err(error) => RunHandle::failed(error),
        }
    }
}

/// A run started with [`Invoke::start`](crate::Invoke::start) (or
/// [`start_with_events`](crate::Invoke::start_with_events)): it runs as a tokio task
/// whether or not the handle is polled.
///
/// - [`send`](Self::send) hands a value to an event waiting in an [`Inbox`](crate::Inbox).
/// - [`cancel`](Self::cancel) stops the run: events in flight are cancelled, and the run
///   ends with [`Error::Cancelled`].
/// - Awaiting the handle (or [`join`](Self::join)) gives the run's `Result<Results, Error>`.
///
/// Dropping the handle cancels the run, like dropping an awaited run does. To let a run go
/// on in the background, move its handle into a task (`tokio::spawn(run)`).
///
/// ```
/// use std::time::Duration;
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn long_job() {
///     tokio::time::sleep(Duration::from_secs(3600)).await;
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let run = Drive::new()?.invoke(long_job).start();
/// tokio::time::sleep(Duration::from_millis(10)).await;
/// run.cancel();
/// assert!(matches!(run.await, Err(drive_flow::Error::Cancelled)));
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a RunHandle cancels its run"]
pub struct RunHandle {
    shared: Option<Arc<Shared>>,
    state: State,
}

enum State {
    Running(JoinHandle<Result<Results, Error>>),
    /// The run could not start; the error is handed out once.
    Failed(Option<Error>),
}

impl RunHandle {
    pub(crate) fn new(shared: Arc<Shared>, join: JoinHandle<Result<Results, Error>>) -> Self {
        RunHandle {
            shared: Some(shared),
            state: State::Running(join),
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        RunHandle {
            shared: None,
            state: State::Failed(Some(error)),
        }
    }

    /// Send `value` under `key` to the run: the next [`Inbox::recv`](crate::Inbox::recv) of
    /// that key (and type) takes it, or already waits for it. Values are kept, in order,
    /// until an event takes them; once the run has ended they are dropped.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn approve(inbox: Inbox) -> Result<bool, drive_flow::InboxError> {
    ///     inbox.recv::<bool>("approved").await
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let run = Drive::new()?.invoke(approve).start();
    /// run.send("approved", true);
    /// assert_eq!(run.await?.get(approve), Some(&true));
    /// # Ok(())
    /// # }
    /// ```
    pub fn send<T: Send + 'static>(&self, key: impl Into<String>, value: T) {
        if let Some(mailbox) = self.shared.as_ref().and_then(|s| s.mailbox.as_ref()) {
            mailbox.send(key.into(), value);
        }
    }

    /// Cancel the run: every event in flight is cancelled (none of them goes on past its
    /// current `.await`), queued events never start, and the run ends with
    /// [`Error::Cancelled`]. Does nothing if the run has already ended.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn waits(inbox: Inbox) -> Result<u8, drive_flow::InboxError> {
    ///     inbox.recv("never sent").await
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let run = Drive::new()?.invoke(waits).start();
    /// run.cancel();
    /// assert!(matches!(run.join().await, Err(drive_flow::Error::Cancelled)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(&self) {
        if let Some(shared) = &self.shared {
            shared.cancel();
        }
    }

    /// The run's id, as in its `tracing` spans (`run_id`); `0` for a run that could not start.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn tick() {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let drive = Drive::new()?;
    /// let (a, b) = (drive.invoke(tick).start(), drive.invoke(tick).start());
    /// assert_ne!(a.run_id(), b.run_id());
    /// # a.await?; b.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_id(&self) -> u64 {
        self.shared.as_ref().map_or(0, |shared| shared.run_id)
    }

    /// Wait for the run's end: the same as awaiting the handle.
    ///
    /// # Errors
    /// The run's [`Error`]; [`Error::Cancelled`] after [`cancel`](Self::cancel).
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn one() -> u8 { 1 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(one).start().join().await?;
    /// assert_eq!(results.get(one), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join(self) -> Result<Results, Error> {
        self.await
    }
}

impl Future for RunHandle {
    type Output = Result<Results, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            // A run task that did not complete was cancelled (the runtime shut down).
            State::Running(join) => Pin::new(join)
                .poll(cx)
                .map(|joined| joined.unwrap_or(Err(Error::Cancelled))),
            State::Failed(error) => Poll::Ready(Err(error.take().unwrap_or(Error::Cancelled))),
        }
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if let State::Running(join) = &self.state {
            join.abort();
        }
    }
}

impl fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle")
            .field("run_id", &self.run_id())
            .finish_non_exhaustive()
    }
}
