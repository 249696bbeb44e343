//! Values sent to an in-process run ([`RunHandle::send`](crate::RunHandle::send)), kept by
//! key until an event's [`Inbox`](crate::Inbox) takes them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::body::inbox::Message;

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

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        crate::core::lock::lock(&self.slots)
    }

    pub(crate) fn send<T: Send + 'static>(&self, key: String, value: T) {
        let mut slots = self.lock();
        let slot = slots.entry(key).or_default();
        slot.queue.push_back(Message::new(value));
        slot.notify.notify_one();
    }

    /// The next value under `key`, or what to wait on for one.
    pub(crate) fn take(&self, key: &str) -> Result<Message, Arc<Notify>> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(key) {
            return slot.queue.pop_front().ok_or_else(|| slot.notify.clone());
        }
        let slot = slots.entry(key.to_string()).or_default();
        Err(slot.notify.clone())
    }
}
