//! The in-process runner's side of an [`Inbox`](crate::Inbox): a `recv` takes a value from
//! the run's mailbox, or gives its concurrency slot back while it waits for one.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::body::inbox::{CallRef, InboxHost, Message};
use crate::local::runner::Shared;

impl InboxHost for Shared {
    fn recv(self: Arc<Self>, call: CallRef, key: String) -> BoxFuture<'static, Message> {
        Box::pin(async move {
            let Some(mailbox) = self.mailbox.as_ref() else {
                // Not reachable: a link exists only for runs with a mailbox.
                return std::future::pending().await;
            };
            let notify = match mailbox.take(&key) {
                Ok(message) => return message,
                Err(notify) => notify,
            };
            let mut waiting = Waiting::begin(&self, call, &key);
            let message = loop {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Ok(message) = mailbox.take(&key) {
                    break message;
                }
                notified.await;
            };
            waiting.resume().await;
            message
        })
    }
}

/// One `recv` that waits for a value: while it (or another `recv` of the same call) waits,
/// the call's concurrency slot is given back to the run, until
/// [`resume`](Self::resume). Dropped before that, it settles the count with the run.
struct Waiting<'a> {
    run: &'a Arc<Shared>,
    call: CallRef,
    /// Still counted among the call's waits.
    waited: bool,
    /// Counted among the calls waiting for a slot.
    registered: bool,
    done: bool,
}

impl<'a> Waiting<'a> {
    fn begin(run: &'a Arc<Shared>, call: CallRef, key: &str) -> Self {
        run.begin_wait(call, key);
        Waiting {
            run,
            call,
            waited: true,
            registered: false,
            done: false,
        }
    }

    /// Take the call's slot back (if it was the call's last wait), waiting for a free one.
    async fn resume(&mut self) {
        loop {
            let notified = self.run.resume.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self
                .run
                .try_resume(self.call, &mut self.waited, &mut self.registered)
            {
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
            self.run
                .abandon_wait(self.call, self.waited, self.registered);
        }
    }
}
