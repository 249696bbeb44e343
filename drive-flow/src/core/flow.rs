//! What an event returns: a value, a goto, or an abort ([`Flow`]), and the conversion of
//! every supported return type into it ([`IntoFlow`]).

use std::fmt;

use crate::core::event::{GotoTargets, Targets};
pub(crate) use crate::core::value::{erase_value, AnyValue};

/// A boxed error, as returned by a failing event.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How an event ends: with a value that its listeners receive, by sending a payload to other
/// events (`goto`), or by stopping its branch of the run (`abort`).
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn guess(input: EventInput) -> Flow<u32> {
///     match input.behavior() {
///         Behavior::Goto => Flow::abort(),        // second visit: stop this branch
///         _ => Flow::from(7),                     // first visit: a value for listeners
///     }
/// }
///
/// #[listen(guess)]
/// async fn check() -> Flow<u32> {
///     Flow::goto([guess], 8)                      // guess runs again, seeing {check: 8}
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let results = Drive::new()?.invoke(guess).await?;
/// assert_eq!(results.count(guess), 2);
/// assert_eq!(results.get(guess), None); // its latest outcome was an abort
/// # Ok(())
/// # }
/// ```
pub enum Flow<T> {
    /// A value, handed to every listener whose group is ready.
    Value(T),
    /// Run each target with an input whose group name is `"$goto"`, whose behavior is
    /// [`Behavior::Goto`](crate::Behavior::Goto) and whose results are `{this event: payload}`.
    /// Nothing else is dispatched.
    Goto {
        /// The events to run next, in order.
        targets: GotoTargets,
        /// What the targets receive as this event's result.
        payload: T,
    },
    /// Stop this branch: no listener runs. The rest of the run goes on.
    Abort,
}

impl<T> Flow<T> {
    /// Send `payload` to every target: they run next, with group name `"$goto"`.
    ///
    /// The targets ([`Targets`]) are one event (`tick` or `[tick]`), or several in a tuple:
    /// `(plan, log)`. Each event is a type of its own, so an array of two different events,
    /// `[plan, log]`, does not compile ("expected `plan`, found `log`"); an array holds
    /// events of one type only, such as [`Handle`](crate::Handle)s of one output type, or
    /// [`EventRef`](crate::EventRef)s (`[plan.into(), log.into()]`).
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn plan(input: EventInput) -> u32 {
    ///     input.get(review).copied().unwrap_or(0)
    /// }
    /// #[event]
    /// async fn log(input: EventInput) -> u32 {
    ///     input.get(review).copied().unwrap_or(0)
    /// }
    /// #[event]
    /// async fn review() -> Flow<u32> {
    ///     Flow::goto((plan, log), 7) // both run next, each with {review: 7}
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(review).await?;
    /// assert_eq!((results.get(plan), results.get(log)), (Some(&7), Some(&7)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn goto(targets: impl Targets, payload: T) -> Self {
        Flow::Goto {
            targets: targets.into_targets(),
            payload,
        }
    }

    /// End this event without handing anything to its listeners.
    pub fn abort() -> Self {
        Flow::Abort
    }
}

impl<T> From<T> for Flow<T> {
    fn from(value: T) -> Self {
        Flow::Value(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Flow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flow::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Flow::Goto { targets, payload } => f
                .debug_struct("Goto")
                .field("targets", targets)
                .field("payload", payload)
                .finish(),
            Flow::Abort => f.write_str("Abort"),
        }
    }
}

/// What an event handler hands back to the runtime, its value type erased.
pub(crate) type ErasedFlow = Flow<AnyValue>;

/// A return type an event can have: `()`, [`Flow<T>`], or a `Result` of either whose error
/// converts into a [`BoxError`] (`std` errors, `anyhow::Error`, `String`, …).
///
/// Functions marked with `#[event]` may also return a plain `T` or `Result<T, E>`: the macro
/// wraps those in [`Flow::Value`]. Closures given to
/// [`DriveBuilder::event`](crate::DriveBuilder::event) return anything that implements
/// this trait, plain values included through [`Flow::from`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type drive-flow understands",
    label = "return `()`, `Flow<T>`, or a `Result` of either",
    note = "wrap a plain value with `Flow::from(value)` (or `.into()`)"
)]
pub trait IntoFlow {
    /// The value type listeners receive.
    type Output: Send + Sync + 'static;
    /// Turn the return value into a flow, or the error that fails the run.
    fn into_flow(self) -> Result<Flow<Self::Output>, BoxError>;
}

impl IntoFlow for () {
    type Output = ();
    fn into_flow(self) -> Result<Flow<()>, BoxError> {
        Ok(Flow::Value(()))
    }
}

impl<T: Send + Sync + 'static> IntoFlow for Flow<T> {
    type Output = T;
    fn into_flow(self) -> Result<Flow<T>, BoxError> {
        Ok(self)
    }
}

impl<T: IntoFlow, E: Into<BoxError>> IntoFlow for Result<T, E> {
    type Output = T::Output;
    fn into_flow(self) -> Result<Flow<T::Output>, BoxError> {
        self.map_err(Into::into).and_then(IntoFlow::into_flow)
    }
}

/// An error type an event function may return in its `Result`: anything that converts into
/// a [`BoxError`]. Generated code only; it exists for its error message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error type of an event",
    label = "this error type does not convert into `Box<dyn Error + Send + Sync>`",
    note = "an event's error type must implement `std::error::Error + Send + Sync + 'static` \
            (derive it with `thiserror`, for example), or be `anyhow::Error`, `String`, \
            `&'static str` or `Box<dyn Error + Send + Sync>`"
)]
pub trait EventError {
    /// Box the error.
    fn into_box_error(self) -> BoxError;
}

impl<E: Into<BoxError>> EventError for E {
    fn into_box_error(self) -> BoxError {
        self.into()
    }
}

/// The flow of an event whose function returns `Result<T, E>`. Generated code only: the
/// macros call it spanned at `E`, so that an unusable error type is reported there.
#[doc(hidden)]
pub fn result_flow<T, E: EventError>(returned: Result<T, E>) -> Result<Flow<T>, BoxError> {
    returned
        .map(Flow::Value)
        .map_err(EventError::into_box_error)
}

/// The flow of an event whose function returns `Result<Flow<T>, E>`. Generated code only
/// (see [`result_flow`]).
#[doc(hidden)]
pub fn result_into_flow<R: IntoFlow, E: EventError>(
    returned: Result<R, E>,
) -> Result<Flow<R::Output>, BoxError> {
    returned
        .map_err(EventError::into_box_error)
        .and_then(IntoFlow::into_flow)
}

/// The flow of an event whose function returns `Flow<T>`. Generated code only.
#[doc(hidden)]
pub fn into_flow<R: IntoFlow>(returned: R) -> Result<Flow<R::Output>, BoxError> {
    returned.into_flow()
}

pub(crate) fn erase<T: Send + Sync + 'static>(flow: Flow<T>) -> ErasedFlow {
    match flow {
        Flow::Value(v) => Flow::Value(erase_value(v)),
        Flow::Goto { targets, payload } => Flow::Goto {
            targets,
            payload: erase_value(payload),
        },
        Flow::Abort => Flow::Abort,
    }
}
