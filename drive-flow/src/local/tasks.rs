//! The entries of a run's events in flight, in shards: each thread inserts into a shard of
//! its own, so that threads starting events do not meet at one lock.
//!
//! A spawned event has an entry from its start only when something asks about the events in
//! flight (the run is timed, watched, has a timeout or a mailbox); otherwise it gets one
//! only if its body goes pending, to leave its waker for a cancellation to wake. An inline
//! event never gets one unless something asks: such a run holds no shards at all.

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
    /// None for a run none of whose events can have an entry (see [`Tasks::new`]).
    shards: Option<Box<[Mutex<slab::Slab<Task>>]>>,
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
    /// The entries of a run whose events may get some (`kept`): a tracked run's, or any
    /// spawned event's that goes pending. An inline run that is not tracked keeps none,
    /// and holds no shards: 16 locks fewer to make, to look at when it ends, and to drop
    /// (a quarter of the fixed cost of a run of 10 inline events).
    pub(crate) fn new(kept: bool) -> Self {
        Tasks {
            shards: kept.then(|| (0..SHARDS).map(|_| Mutex::new(slab::Slab::new())).collect()),
        }
    }

    fn shard(&self, key: usize) -> Option<(&Mutex<slab::Slab<Task>>, usize)> {
        Some((self.shards.as_ref()?.get(key % SHARDS)?, key / SHARDS))
    }

    /// The calling thread's shard, and its number; none in a run that keeps no entries.
    fn own(&self) -> Option<(&Mutex<slab::Slab<Task>>, usize)> {
        debug_assert!(self.shards.is_some(), "an entry in a run that keeps none");
        let shard = own_shard();
        Some((self.shards.as_ref()?.get(shard)?, shard))
    }

    /// Keep `task`; its key ([`UNTRACKED`] in a run that keeps no entries).
    pub(crate) fn insert(&self, task: Task) -> usize {
        self.own().map_or(UNTRACKED, |(entries, shard)| {
            lock(entries).insert(task) * SHARDS + shard
        })
    }

    /// Keep `task` unless `over` is set (checked under the shard's lock, so that a run
    /// closing, which sets `over` before it drains every shard, either sees the entry or
    /// is seen here); [`UNTRACKED`] in a run that keeps no entries.
    pub(crate) fn insert_unless(&self, over: &AtomicBool, task: Task) -> Option<usize> {
        let Some((entries, shard)) = self.own() else {
            return Some(UNTRACKED);
        };
        let mut entries = lock(entries);
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
            .flatten()
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

    /// Take every entry out. Every run's end asks (most runs have none left, or had none):
    /// one pass over the shards into one list, an empty shard looked at and left.
    pub(crate) fn drain(&self) -> Vec<Task> {
        let mut tasks = Vec::new();
        for shard in self.shards.iter().flatten() {
            let mut entries = lock(shard);
            if !entries.is_empty() {
                tasks.extend(entries.drain());
            }
        }
        tasks
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::{Task, Tasks, UNTRACKED};

    #[test]
    fn a_run_that_keeps_entries_finds_them_again_and_drains_them_in_one_list() {
        let tasks = Tasks::new(true);
        let over = AtomicBool::new(false);
        let first = tasks.insert(Task::new(3, 1, None));
        let second = tasks.insert_unless(&over, Task::new(4, 2, None));
        let second = second.expect("the run is not over");
        assert_ne!(first, UNTRACKED);
        assert_eq!(tasks.with(second, 2, |task| task.node), Some(4));
        assert_eq!(
            tasks.with(second, 9, |task| task.node),
            None,
            "another call's key"
        );
        assert_eq!(tasks.nodes(), vec![3, 4]);
        let drained: Vec<(u32, u64)> = tasks
            .drain()
            .into_iter()
            .map(|task| (task.node, task.task_id))
            .collect();
        assert_eq!(drained.len(), 2);
        assert!(drained.contains(&(3, 1)) && drained.contains(&(4, 2)));
        assert!(tasks.drain().is_empty() && tasks.nodes().is_empty());
        assert!(tasks.remove(first).is_none(), "drained");
    }

    #[test]
    fn a_run_that_keeps_no_entries_holds_no_shards() {
        let tasks = Tasks::new(false);
        assert!(tasks.shards.is_none());
        assert!(tasks.drain().is_empty() && tasks.nodes().is_empty());
        assert!(tasks.remove(0).is_none());
        assert_eq!(tasks.with(0, 1, |_| ()), None);
        let waker = futures::task::noop_waker();
        assert!(tasks.set_waker(0, &AtomicBool::new(false), &waker));
    }
}
