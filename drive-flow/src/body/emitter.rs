//! Values an event sends out while it runs (tokens of a model's answer, progress): the
//! [`Emitter<T>`] parameter, and the [`Emitted`] value the run's live stream carries.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::core::graph::NodeId;

/// What an event takes to send values out while it runs, to whoever watches the run: each
/// [`emit`](Self::emit) reaches the run's live stream
/// ([`Invoke::start_with_events`](crate::Invoke::start_with_events)) as a
/// [`RunEvent`](crate::RunEvent) naming the event and its task id, of kind
/// [`RunEventKind::Emitted`](crate::RunEventKind::Emitted). Typed: a watcher reads the value
/// back with [`RunEvent::emitted::<T>`](crate::RunEvent::emitted).
///
/// Items of one call come in the order they were emitted, after the call's `Started` and
/// before its end (`Finished`, `Failed` or `Cancelled`); an `emit` after the call ended (an
/// emitter kept in a spawned task) is dropped.
///
/// **Runs nobody watches pay nothing**: in a run started without
/// [`start_with_events`](crate::Invoke::start_with_events), the parameter is an empty value
/// (no allocation, no reference count) and `emit` returns at once without taking a lock,
/// dropping its value. Use [`is_watched`](Self::is_watched) to skip work whose only use is
/// to be emitted.
///
/// ```
/// use drive_flow::prelude::*;
/// use drive_flow::{Emitter, RunEventKind};
/// use futures::StreamExt;
///
/// #[event]
/// async fn answer(tokens: Emitter<String>) -> String {
///     let mut text = String::new();
///     for token in ["The ", "answer ", "is ", "42."] {
///         tokens.emit(token.to_string());           // as a model streams its answer
///         text.push_str(token);
///     }
///     text
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let (run, events) = Drive::new()?.invoke(answer).start_with_events();
/// let streamed: Vec<String> = events
///     .filter_map(|event| async move { event.emitted::<String>().cloned() })
///     .collect()
///     .await;
/// assert_eq!(streamed, ["The ", "answer ", "is ", "42."]);
/// assert_eq!(run.await?.get(answer).map(String::as_str), Some("The answer is 42."));
///
/// // Awaited directly, nobody watches: the same event runs, its emits cost nothing.
/// let results = Drive::new()?.invoke(answer).await?;
/// assert_eq!(results.get(answer).map(String::as_str), Some("The answer is 42."));
/// # Ok(())
/// # }
/// ```
pub struct Emitter<T> {
    link: Option<EmitLink>,
    task_id: u64,
    value: PhantomData<fn(T)>,
}

impl<T: Send + Sync + 'static> Emitter<T> {
    /// Send `value` to the run's live stream, if someone watches it (else drop it).
    pub fn emit(&self, value: T) {
        if let Some(link) = &self.link {
            link.run.emit_item(
                link.key,
                link.node,
                self.task_id,
                Emitted {
                    value: Arc::new(value),
                    type_name: std::any::type_name::<T>(),
                },
            );
        }
    }

    /// Whether the run has a live stream: when false, [`emit`](Self::emit) drops its value.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    /// use drive_flow::Emitter;
    ///
    /// #[event]
    /// async fn quiet(progress: Emitter<String>) -> bool {
    ///     progress.is_watched()
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(quiet).await?;
    /// assert_eq!(results.get(quiet), Some(&false));
    /// let (run, _events) = Drive::new()?.invoke(quiet).start_with_events();
    /// assert_eq!(run.await?.get(quiet), Some(&true));
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_watched(&self) -> bool {
        self.link.is_some()
    }
}

impl<T> Clone for Emitter<T> {
    fn clone(&self) -> Self {
        Emitter {
            link: self.link.clone(),
            task_id: self.task_id,
            value: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Emitter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("type", &std::any::type_name::<T>())
            .field("task_id", &self.task_id)
            .field("watched", &self.link.is_some())
            .finish()
    }
}

impl<T> Emitter<T> {
    /// The emitter of one call: `link` when its run is watched.
    pub(crate) fn for_call(link: Option<EmitLink>, task_id: u64) -> Self {
        Emitter {
            link,
            task_id,
            value: PhantomData,
        }
    }
}

/// What an [`Emitter`] parameter declares among its event's needs: not a context, but the
/// runner links only a call that takes one to its run's stream.
pub(crate) struct EmitterNeed;

/// The need an [`Emitter`] parameter declares.
pub(crate) const EMITTER_PARAM: &str = "drive_flow::Emitter";

/// Whether a need declared by a parameter is an emitter (not a context).
pub(crate) fn is_emitter(need: &crate::body::need::ContextNeed) -> bool {
    need.type_id == std::any::TypeId::of::<EmitterNeed>()
}

/// How a call reaches its run's live stream; only calls of a watched run have one.
#[derive(Clone)]
pub(crate) struct EmitLink {
    pub(crate) run: Arc<dyn EmitSink>,
    /// The call's task key in the run.
    pub(crate) key: usize,
    pub(crate) node: NodeId,
}

/// What a runner does with an emitted value: put it on the run's stream, if the call
/// (`key`, `task_id`) is still in flight and the run goes on.
pub(crate) trait EmitSink: Send + Sync {
    fn emit_item(&self, key: usize, node: NodeId, task_id: u64, item: Emitted);
}

/// A value an event sent with [`Emitter::emit`], as its run's stream carries it: read it
/// with [`downcast_ref`](Self::downcast_ref) (or [`RunEvent::emitted`](crate::RunEvent::emitted)).
///
/// Cheap to clone (the value is shared). Two `Emitted` are equal when they are the same
/// emitted value, not when their values are equal.
///
/// ```
/// use drive_flow::prelude::*;
/// use drive_flow::{Emitter, RunEventKind};
/// use futures::StreamExt;
///
/// #[event]
/// async fn progress(done: Emitter<u8>) {
///     done.emit(50);
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let (run, events) = Drive::new()?.invoke(progress).start_with_events();
/// let kinds: Vec<RunEventKind> = events.map(|event| event.kind).collect().await;
/// let RunEventKind::Emitted(item) = &kinds[1] else { panic!("{kinds:?}") };
/// assert_eq!(item.downcast_ref::<u8>(), Some(&50));
/// assert_eq!(item.type_name(), "u8");
/// run.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Emitted {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl Emitted {
    /// The value, if it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }

    /// The name of the value's type (`std::any::type_name`).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl PartialEq for Emitted {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
    }
}

impl Eq for Emitted {}

impl fmt::Debug for Emitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Emitted({})", self.type_name)
    }
}
