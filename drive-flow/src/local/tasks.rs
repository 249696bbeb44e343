//! The entries of a run's events in flight, in shards: each thread inserts into a shard of
//! its own, so that threads starting events do not meet at one lock.
//!
//! A spawned event has an entry from its start only when something asks about the events in
//! flight (the run is timed, watched, has a timeout or a mailbox); otherwise it gets one
//! only if its body goes pending, to leave its waker for a cancellation to wake.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Waker;
use std::time::Instant;

use crate::core::graph::NodeId;
use crate::core::lock::lock;

/// How many shards a run's entries are kept in (a power of two).
const SHARDS: usize = 16;

/// The task key of an event without an entry.
pub(crate) const UNTRACKED: usize = usize::MAX;

/// One event in flight.
pub(crate) struct Task {
    /// The waker of a spawned event that went pending, woken when the run is cancelled
    /// (an event that never went pending checks the run's `over` flag at its first poll).
    pub(crate) waker: Option<Waker>,
    pub(crate) node: NodeId,
    /// Its task id (`0` for an entry made when it first went pending).
    pub(crate) task_id: u64,
    /// `Inbox::recv`s of this call waiting for a value.
    pub(crate) waits: u32,
    /// Its slot is given back while it waits for outside input.
    pub(crate) released: bool,
    /// When it started (for its time in flight), if the run is timed.
    pub(crate) began: Option<Instant>,
}

impl Task {
    /// The entry of an event that starts now.
    pub(crate) fn new(node: NodeId, task_id: u64, began: Option<Instant>) -> Self {
        Task {
            waker: None,
            node,
            task_id,
            waits: 0,
            released: false,
            began,
        }
    }
}

/// A run's entries. A key names its shard (low bits) and its place there.
pub(crate) struct Tasks {
    shards: Box<[Mutex<slab::Slab<Task>>]>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            shards: (0..SHARDS).map(|_| Mutex::new(slab::Slab::new())).collect(),
        }
    }
}

/// The shard of the calling thread: threads are numbered as they first insert.
fn own_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD
        .try_with(|shard| {
            if shard.get() == usize::MAX {
                shard.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            shard.get()
        })
        .unwrap_or(0)
}

impl Tasks {
    fn shard(&self, key: usize) -> Option<(&Mutex<slab::Slab<Task>>, usize)> {
        Some((self.shards.get(key % SHARDS)?, key / SHARDS))
    }

    /// Keep `task`; its key.
    pub(crate) fn insert(&self, task: Task) -> usize {
        let shard = own_shard();
        lock(&self.shards[shard]).insert(task) * SHARDS + shard
    }

    /// Keep `task` unless `over` is set (checked under the shard's lock, so that a run
    /// closing, which sets `over` before it drains every shard, either sees the entry or
    /// is seen here).
    pub(crate) fn insert_unless(&self, over: &AtomicBool, task: Task) -> Option<usize> {
        let shard = own_shard();
        let mut entries = lock(&self.shards[shard]);
        if over.load(Ordering::Acquire) {
            return None;
        }
        Some(entries.insert(task) * SHARDS + shard)
    }

    /// Take the entry of `key` out, if it is still there.
    pub(crate) fn remove(&self, key: usize) -> Option<Task> {
        let (shard, at) = self.shard(key)?;
        lock(shard).try_remove(at)
    }

    /// Act on the entry of `key` if it is still that of call `task_id` (its key may have
    /// been reused by another call once it ended).
    pub(crate) fn with<R>(
        &self,
        key: usize,
        task_id: u64,
        act: impl FnOnce(&mut Task) -> R,
    ) -> Option<R> {
        let (shard, at) = self.shard(key)?;
        let mut entries = lock(shard);
        entries
            .get_mut(at)
            .filter(|task| task.task_id == task_id)
            .map(act)
    }

    /// Leave `waker` in the entry of `key`, unless `over` is set (see
    /// [`insert_unless`](Self::insert_unless)): whether the event goes on.
    pub(crate) fn set_waker(&self, key: usize, over: &AtomicBool, waker: &Waker) -> bool {
        let Some((shard, at)) = self.shard(key) else {
            return true;
        };
        let mut entries = lock(shard);
        if over.load(Ordering::Acquire) {
            return false;
        }
        if let Some(task) = entries.get_mut(at) {
            task.waker = Some(waker.clone());
        }
        true
    }

    /// The events in flight, in the order they started (their task ids).
    pub(crate) fn nodes(&self) -> Vec<NodeId> {
        let mut tasks: Vec<(u64, NodeId)> = self
            .shards
            .iter()
            .flat_map(|shard| {
                lock(shard)
                    .iter()
                    .map(|(_, task)| (task.task_id, task.node))
                    .collect::<Vec<_>>()
            })
            .collect();
        tasks.sort_unstable();
        tasks.into_iter().map(|(_, node)| node).collect()
    }

    /// Take every entry out.
    pub(crate) fn drain(&self) -> Vec<Task> {
        self.shards
            .iter()
            .flat_map(|shard| lock(shard).drain().collect::<Vec<_>>())
            .collect()
    }
}
