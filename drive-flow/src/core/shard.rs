//! Sharding by thread: state that threads append to is split into [`SHARDS`] parts, and each
//! thread uses its own part, so that threads appending at once do not meet at one lock or
//! one cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many parts sharded state is split into.
pub(crate) const SHARDS: usize = 16;

/// The part of the calling thread: threads are numbered as they first ask, modulo
/// [`SHARDS`].
pub(crate) fn own_shard() -> usize {
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
        .unwrap_or(0) // a thread being torn down shares the first part
}
