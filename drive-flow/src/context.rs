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
    /// The context this parameter reads: `Context<T>` itself, [`NoContext`] for the others
    /// (an event takes one context type: see [`OneContext`]).
    #[doc(hidden)]
    type ContextKind;

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
    type ContextKind = NoContext;

    fn from_call(call: &Call) -> Result<Self, ParamError> {
        Ok(call.input.clone())
    }
}

impl<T: Send + Sync + 'static> EventParam for Context<T> {
    type ContextKind = Context<T>;

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

/// The [`EventParam::ContextKind`] of a parameter that is not a [`Context`]. Generated code
/// only.
#[doc(hidden)]
pub struct NoContext;

/// The parameters of one event read at most one context type: every event of a run gets the
/// one value given to [`Invoke::context`](crate::Invoke::context), so an event taking
/// `Context<A>` and `Context<B>` could never run. Taking the same `Context<T>` twice is
/// allowed (both are the run's context). `#[event]`/`#[listen]` check each parameter
/// against every earlier one, and report a conflict at the later one. Generated code only.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an event takes one context type, but this one takes `{Earlier}` and `{Self}`",
    label = "a second context type",
    note = "every event of a run gets the one value given to `Invoke::context`: put what \
            the event needs in one type and take `Context` of it"
)]
pub trait OneContext<Earlier> {}

/// A parameter that is not a context goes with any other.
#[diagnostic::do_not_recommend]
impl<Earlier> OneContext<Earlier> for NoContext {}
#[diagnostic::do_not_recommend]
impl<T> OneContext<NoContext> for Context<T> {}
#[diagnostic::do_not_recommend]
impl<T> OneContext<Context<T>> for Context<T> {}

/// Whether parameter `Later` of an event reads no other context type than `Earlier`, an
/// earlier parameter. Generated code only.
#[doc(hidden)]
pub fn one_context<Later: EventParam, Earlier: EventParam>()
where
    Later::ContextKind: OneContext<Earlier::ContextKind>,
{
}
