//! Locking the runtime's mutexes.

use std::sync::{Mutex, MutexGuard};

/// Lock `mutex`, through poisoning: every update the runtime makes under its locks is
/// infallible, so a panic elsewhere while one was held leaves its state consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
