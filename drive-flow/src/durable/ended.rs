//! The ends of runs, heard once per store: one `LISTEN` connection on the store's done
//! channel, shared by every [`wait`](super::DurableDrive::wait) of the process (a web
//! service waiting on a thousand runs holds one connection for them, not a thousand). It
//! is opened by the first waiter and closed when the last one is gone.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use super::store::PgStore;
use crate::core::lock::lock;

/// What a waiter hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// This run ended.
    Ended(i64),
    /// Notifications may have been lost (the connection was lost and made again): look.
    Look,
}

/// The shared listener of one store: its sender while it runs.
#[derive(Default)]
pub(crate) struct EndedRuns {
    sender: Mutex<Option<broadcast::Sender<Heard>>>,
}

/// How often the listener checks whether anyone still waits.
const IDLE_CHECK: Duration = Duration::from_millis(500);

impl PgStore {
    /// Hear the ends of runs: the shared listener, started if none runs.
    pub(crate) fn hear_ended(&self) -> broadcast::Receiver<Heard> {
        let mut sender = lock(&self.inner.ended.sender);
        if let Some(running) = sender.as_ref() {
            return running.subscribe();
        }
        let (new, receiver) = broadcast::channel(1024);
        *sender = Some(new.clone());
        tokio::spawn(listen(self.clone(), new));
        receiver
    }
}

/// The listener: reconnects with a backoff, tells waiters to look after each reconnection,
/// and stops when no waiter is left.
async fn listen(store: PgStore, sender: broadcast::Sender<Heard>) {
    let mut delay = Duration::from_millis(100);
    'connect: loop {
        if stop_if_unheard(&store, &sender) {
            return;
        }
        let mut listener = match PgListener::connect_with(store.pool()).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "LISTEN for run ends failed; waiters poll meanwhile");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(error) = listener.listen(&store.sql().done_channel).await {
            tracing::debug!(%error, "LISTEN for run ends failed; waiters poll meanwhile");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            continue;
        }
        delay = Duration::from_millis(100);
        let _ = sender.send(Heard::Look);
        loop {
            match tokio::time::timeout(IDLE_CHECK, listener.try_recv()).await {
                Err(_) => {
                    if stop_if_unheard(&store, &sender) {
                        return;
                    }
                }
                Ok(Ok(Some(notification))) => {
                    if let Ok(run) = notification.payload().parse::<i64>() {
                        let _ = sender.send(Heard::Ended(run));
                    }
                }
                // Reconnected by sqlx: what was sent meanwhile is lost.
                Ok(Ok(None)) => {
                    let _ = sender.send(Heard::Look);
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "LISTEN for run ends lost its connection");
                    let _ = sender.send(Heard::Look);
                    tokio::time::sleep(delay).await;
                    continue 'connect;
                }
            }
        }
    }
}

/// With no waiter left, the listener stops (under the store's lock, so that a new waiter
/// either subscribed before, or starts a new listener after).
fn stop_if_unheard(store: &PgStore, sender: &broadcast::Sender<Heard>) -> bool {
    let mut shared = lock(&store.inner.ended.sender);
    if sender.receiver_count() > 0 {
        return false;
    }
    if shared.as_ref().is_some_and(|s| s.same_channel(sender)) {
        *shared = None;
    }
    true
}
