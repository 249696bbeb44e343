//! The run's shared context ([`Context`]) and the parameters an event may declare
//! ([`EventParam`]).

use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::input::EventInput;

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
pub struct Context<T>(Arc<T>);

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

/// What one event call has access to. Generated code only.
#[doc(hidden)]
pub struct Call {
    pub(crate) input: EventInput,
    pub(crate) context: Option<Arc<dyn Any + Send + Sync>>,
    /// The run's mailbox, for an event that takes an [`Inbox`](crate::Inbox) in a started run.
    pub(crate) inbox: Option<crate::inbox::InboxLink>,
    /// The run's live stream, for an [`Emitter`](crate::Emitter) in a watched run.
    pub(crate) emitter: Option<crate::emitter::EmitLink>,
}

/// A context type an event needs.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ContextNeed {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}

/// Why a parameter could not be provided.
#[doc(hidden)]
#[derive(Debug)]
pub struct ParamError {
    pub(crate) expected: &'static str,
    pub(crate) given: bool,
}

/// A type an event function may take as a parameter: [`EventInput`] or [`Context<T>`].
///
/// Parameters are optional and may come in any order; declare only those you use.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid event parameter",
    label = "unsupported parameter type",
    note = "an event may take `EventInput` (what triggered it), `Context<T>` (the run's \
            shared context) and `Inbox` (values sent from outside the run), in any order, \
            or no parameter at all"
)]
pub trait EventParam: Sized + Send + 'static {
    /// Take the parameter from the call.
    #[doc(hidden)]
    fn from_call(call: &Call) -> Result<Self, ParamError>;

    /// The context type this parameter needs, checked before a run starts.
    #[doc(hidden)]
    fn context_need() -> Option<ContextNeed> {
        None
    }
}

impl EventParam for EventInput {
    fn from_call(call: &Call) -> Result<Self, ParamError> {
        Ok(call.input.clone())
    }
}

impl<T: Send + Sync + 'static> EventParam for Context<T> {
    fn from_call(call: &Call) -> Result<Self, ParamError> {
        let error = |given| ParamError {
            expected: std::any::type_name::<T>(),
            given,
        };
        let context = call.context.clone().ok_or(error(false))?;
        context
            .downcast::<T>()
            .map(Context)
            .map_err(|_| error(true))
    }

    fn context_need() -> Option<ContextNeed> {
        Some(ContextNeed {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        })
    }
}
