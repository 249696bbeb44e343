//! Values sent to an in-process run ([`RunHandle::send`](crate::RunHandle::send)), kept by
//! key until an event's [`Inbox`](crate::Inbox) takes them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::body::inbox::Message;

/// Values sent to a run, by key, until an event takes them.
#[derive(Default)]
pub(crate) struct Mailbox {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    by_key: HashMap<String, Slot>,
    /// The run is over: values sent are dropped, and every `recv` fails.
    closed: bool,
}

#[derive(Default)]
struct Slot {
    queue: VecDeque<Message>,
    notify: Arc<Notify>,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        crate::core::lock::lock(&self.slots)
    }

    pub(crate) fn send<T: Send + 'static>(&self, key: String, value: T) {
        let mut slots = self.lock();
        if slots.closed {
            return; // dropped (outside the lock)
        }
        let slot = slots.by_key.entry(key).or_default();
        slot.queue.push_back(Message::new(value));
        slot.notify.notify_one();
    }

    /// The next value under `key`, or what to wait on for one; `Ok(None)` once the run is
    /// over.
    pub(crate) fn take(&self, key: &str) -> Result<Option<Message>, Arc<Notify>> {
        let mut slots = self.lock();
        if slots.closed {
            return Ok(None);
        }
        if let Some(slot) = slots.by_key.get_mut(key) {
            return slot
                .queue
                .pop_front()
                .map(Some)
                .ok_or_else(|| slot.notify.clone());
        }
        let slot = slots.by_key.entry(key.to_string()).or_default();
        Err(slot.notify.clone())
    }

    /// The run is over: drop the values nobody took, and wake every `recv` still waiting
    /// (it then fails). Later values are dropped.
    pub(crate) fn close(&self) {
        let slots = {
            let mut slots = self.lock();
            slots.closed = true;
            std::mem::take(&mut slots.by_key)
        };
        for slot in slots.values() {
            slot.notify.notify_waiters();
        }
    }
}
