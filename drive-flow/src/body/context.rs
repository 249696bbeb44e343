//! The run's shared context ([`Context`]).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The value given to [`Invoke::context`](crate::Invoke::context), shared by every event of
/// the run. It dereferences to `T`; use interior mutability (`Mutex`, atomics) to change it.
///
/// The type is checked before the run starts: an event reachable from the start event that
/// asks for `Context<T>` when the run was given another type (or none) fails the run with
/// [`Error::Context`](crate::Error::Context) before any event runs.
///
/// ```
/// use std::sync::Mutex;
/// use drive_flow::prelude::*;
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<String>>);
///
/// #[event]
/// async fn greet(log: Context<Log>) {
///     log.0.lock().unwrap().push("hello".into());
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let log = std::sync::Arc::new(Log::default());
/// Drive::new()?.invoke(greet).context_arc(log.clone()).await?;
/// assert_eq!(*log.0.lock().unwrap(), ["hello"]);
/// # Ok(())
/// # }
/// ```
pub struct Context<T>(pub(crate) Arc<T>);

impl<T> Context<T> {
    /// The shared pointer to the context.
    pub fn into_arc(self) -> Arc<T> {
        self.0
    }
}

impl<T> Clone for Context<T> {
    fn clone(&self) -> Self {
        Context(self.0.clone())
    }
}

impl<T> Deref for Context<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Context<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Context").field(&self.0).finish()
    }
}
