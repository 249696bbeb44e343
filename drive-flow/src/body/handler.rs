//! Event bodies, erased to one callable shape, and [`Handler`]: the closures the
//! programmatic builder accepts.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::body::param::{Call, ContextNeed, EventParam, ParamError};
use crate::core::event::Event;
use crate::core::flow::{erase, BoxError, ErasedFlow, Flow, IntoFlow};

/// The body of one event of a built graph, and the parameters it needs checked before a
/// run. A drive keeps one per event, indexed by the event's node id, beside its graph.
pub(crate) struct Body {
    pub(crate) handler: ErasedHandler,
    pub(crate) needs: Box<[ContextNeed]>,
}

/// The bodies of a graph's events, indexed by node id.
pub(crate) type Bodies = Arc<[Body]>;

/// Why one call of an event body did not produce a flow.
pub(crate) enum CallError {
    Failed(BoxError),
    Param(ParamError),
}

/// The future of one call of an event body.
pub(crate) type CallFuture = BoxFuture<'static, Result<ErasedFlow, CallError>>;

/// An event body with its parameters and return type erased. Generated code only.
#[doc(hidden)]
#[derive(Clone)]
pub struct ErasedHandler(pub(crate) Arc<dyn Fn(Call) -> CallFuture + Send + Sync>);

impl ErasedHandler {
    /// Erase a function of the call. The function extracts its own parameters.
    #[doc(hidden)]
    pub fn new<F, Fut, R>(body: F) -> Self
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ParamError>> + Send + 'static,
        R: IntoFlow,
    {
        ErasedHandler(Arc::new(move |call| {
            body(call)
                .map(|returned| match returned {
                    Ok(value) => value.into_flow().map(erase).map_err(CallError::Failed),
                    Err(param) => Err(CallError::Param(param)),
                })
                .boxed()
        }))
    }

    /// Erase the body of an event made by the macros: its flow already has the event's
    /// output type, so a wrong output type is reported once, at the event's `Event` impl.
    #[doc(hidden)]
    pub fn for_event<E, F, Fut>(_event: E, body: F) -> Self
    where
        E: Event,
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut:
            Future<Output = Result<Result<Flow<E::Output>, BoxError>, ParamError>> + Send + 'static,
    {
        ErasedHandler(Arc::new(move |call| {
            body(call)
                .map(|returned| match returned {
                    Ok(flow) => flow.map(erase).map_err(CallError::Failed),
                    Err(param) => Err(CallError::Param(param)),
                })
                .boxed()
        }))
    }

    pub(crate) fn call(&self, call: Call) -> CallFuture {
        (self.0)(call)
    }
}

/// A closure that can be an event of a [`DriveBuilder`](crate::DriveBuilder): an async
/// closure taking up to three [`EventParam`]s (`EventInput`, `Context<T>`) and returning
/// something that implements [`IntoFlow`].
///
/// ```
/// use drive_flow::{Context, DriveBuilder, EventInput, Flow};
///
/// let mut builder = DriveBuilder::new();
/// let _none = builder.event("none", || async {});
/// let _input = builder.event("input", |input: EventInput| async move {
///     Flow::from(input.results().len())
/// });
/// let _both = builder.event("both", |_: EventInput, ctx: Context<u32>| async move {
///     Ok::<_, std::io::Error>(Flow::from(*ctx))
/// });
/// ```
#[diagnostic::on_unimplemented(
    message = "this closure cannot be a drive-flow event",
    label = "expected an async closure taking `EventInput` and/or `Context<T>`",
    note = "the closure must be `Fn(..) -> impl Future<Output = R> + Send` where `R` is `()`, \
            `Flow<T>` or a `Result` of either"
)]
pub trait Handler<Args>: Send + Sync + 'static {
    /// The value type the event produces.
    type Output: Send + Sync + 'static;

    /// Erase the closure. Internal.
    #[doc(hidden)]
    fn into_erased(self) -> ErasedHandler;

    /// The context types its parameters need. Internal.
    #[doc(hidden)]
    fn context_needs() -> Vec<ContextNeed>;
}

macro_rules! closure_handler {
    ($($param:ident),*) => {
        impl<F, Fut, R, $($param),*> Handler<($($param,)*)> for F
        where
            F: Fn($($param),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoFlow,
            $($param: EventParam,)*
        {
            type Output = R::Output;

            #[allow(non_snake_case, unused_variables, clippy::redundant_closure_call)]
            fn into_erased(self) -> ErasedHandler {
                ErasedHandler::new(move |call: Call| {
                    let params = (|| Ok::<_, ParamError>(($($param::from_call(&call)?,)*)))();
                    let future = params.map(|($($param,)*)| (self)($($param),*));
                    async move {
                        match future {
                            Ok(future) => Ok(future.await),
                            Err(error) => Err(error),
                        }
                    }
                })
            }

            fn context_needs() -> Vec<ContextNeed> {
                let needs: Vec<Option<ContextNeed>> = vec![$($param::context_need()),*];
                needs.into_iter().flatten().collect()
            }
        }
    };
}
closure_handler!();
closure_handler!(A);
closure_handler!(A, B);
closure_handler!(A, B, C);
