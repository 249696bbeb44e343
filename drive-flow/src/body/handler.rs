//! Event bodies, erased to one callable shape, and [`Handler`]: the closures the
//! programmatic builder accepts.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt;

use crate::body::call_box::CallBoxes;
use crate::body::child::is_child;
use crate::body::emitter::is_emitter;
use crate::body::param::{
    is_context, is_inbox, is_input, CallError, CallOutput, CallSource, ContextNeed, EventParam,
    ParamError,
};
use crate::body::task::{CallFuture, ErasedBody, Host, MakeBody, Spawned};
use crate::core::event::Event;
use crate::core::flow::{erase, BoxError, Flow, IntoFlow};
use crate::core::graph::NodeId;
use crate::core::input::BareInput;

/// The body of one event of a built graph, and the parameters it needs checked before a
/// run. A drive keeps one per event, indexed by the event's node id, beside its graph.
pub(crate) struct Body {
    pub(crate) handler: ErasedHandler,
    pub(crate) needs: Box<[ContextNeed]>,
    /// What its parameters take beside the input, read off `needs` once, when the graph is
    /// built (every call of the event asks).
    pub(crate) takes: Takes,
}

/// What an event's parameters take beside its input.
#[derive(Clone, Copy)]
pub(crate) struct Takes {
    /// Its `EventInput`: the call's input gets the graph (which the input's accessors read),
    /// a count shared by every event of the drive, only for a body that reads it.
    pub(crate) input: bool,
    /// A `Context<T>`: the call gets a reference to the run's context.
    pub(crate) context: bool,
    /// An `Inbox`.
    pub(crate) inbox: bool,
    /// A `Child`.
    pub(crate) child: bool,
    /// An `Emitter`.
    pub(crate) emitter: bool,
}

impl Takes {
    /// The run's `context`, for a call of a body that takes one (most do not: the
    /// context's count is shared by every event of the run, and left alone for them).
    pub(crate) fn context_of(
        &self,
        context: &Option<Arc<dyn Any + Send + Sync>>,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        if self.context {
            context.clone()
        } else {
            None
        }
    }
}

impl Body {
    pub(crate) fn new(handler: ErasedHandler, needs: Box<[ContextNeed]>) -> Self {
        let takes = Takes {
            input: needs.iter().any(is_input),
            context: needs.iter().any(is_context),
            inbox: needs.iter().any(is_inbox),
            child: needs.iter().any(is_child),
            emitter: needs.iter().any(is_emitter),
        };
        Body {
            handler,
            needs,
            takes,
        }
    }
}

/// The bodies of a graph's events, indexed by node id.
pub(crate) type Bodies = Arc<[Body]>;

/// An event body with its parameters and return type erased. Generated code only.
#[doc(hidden)]
#[derive(Clone)]
pub struct ErasedHandler(pub(crate) Arc<dyn ErasedBody>);

impl ErasedHandler {
    /// Erase a function of the call's source. The function extracts its own parameters
    /// (one with none leaves the call unmade).
    #[doc(hidden)]
    pub fn new<F, Fut, R>(body: F) -> Self
    where
        F: Fn(CallSource<'_>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ParamError>> + Send + 'static,
        R: IntoFlow,
    {
        ErasedHandler(Arc::new(Typed {
            body,
            output: |returned: Result<R, ParamError>| match returned {
                Ok(value) => value.into_flow().map(erase).map_err(CallError::Failed),
                Err(param) => Err(CallError::Param(param)),
            },
        }))
    }

    /// Erase a function of the call's source that takes no parameter (and so cannot fail
    /// to be given one): its future is the function's own.
    fn without_params<F, Fut, R>(body: F) -> Self
    where
        F: Fn(CallSource<'_>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoFlow,
    {
        ErasedHandler(Arc::new(Typed {
            body,
            output: |returned: R| returned.into_flow().map(erase).map_err(CallError::Failed),
        }))
    }

    /// Erase the body of an event made by the macros: its flow already has the event's
    /// output type, so a wrong output type is reported once, at the event's `Event` impl.
    #[doc(hidden)]
    pub fn for_event<E, F, Fut>(_event: E, body: F) -> Self
    where
        E: Event,
        F: Fn(CallSource<'_>) -> Fut + Send + Sync + 'static,
        Fut:
            Future<Output = Result<Result<Flow<E::Output>, BoxError>, ParamError>> + Send + 'static,
    {
        ErasedHandler(Arc::new(Typed {
            body,
            output: |returned: Result<Result<Flow<E::Output>, BoxError>, ParamError>| match returned
            {
                Ok(flow) => flow.map(erase).map_err(CallError::Failed),
                Err(param) => Err(CallError::Param(param)),
            },
        }))
    }

    /// One call, boxed: its call made by `call` if the body takes a parameter.
    pub(crate) fn call(&self, call: CallSource<'_>) -> CallFuture {
        self.0.call(call)
    }
}

/// A body with its types: the function of the call, and `output`, which erases what its
/// future returns (a closure without captures: no room taken, copied into each call).
struct Typed<F, M> {
    body: F,
    output: M,
}

impl<F, Fut, M> Typed<F, M>
where
    F: Fn(CallSource<'_>) -> Fut,
    Fut: Future,
    M: FnOnce(Fut::Output) -> CallOutput + Copy,
{
    #[inline]
    fn future(&self, call: CallSource<'_>) -> Erased<Fut, M> {
        Erased {
            future: (self.body)(call),
            output: self.output,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of one call of a body: the body's own future, whose output `output`
    /// erases. Not a `Map`: `output` is a closure without captures, copied, so the future
    /// stays as it is when it ends (a `Map` moves itself out of its place to take its
    /// function, dropping its future there: every event paid for it).
    struct Erased<Fut, M> {
        #[pin]
        future: Fut,
        output: M,
    }
}

impl<Fut, M> Future for Erased<Fut, M>
where
    Fut: Future,
    M: FnOnce(Fut::Output) -> CallOutput + Copy,
{
    type Output = CallOutput;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = *this.output;
        this.future.poll(cx).map(output)
    }
}

impl<F, Fut, M> MakeBody for Typed<F, M>
where
    F: Fn(CallSource<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    M: FnOnce(Fut::Output) -> CallOutput + Copy + Send + Sync + 'static,
{
    type Future = Erased<Fut, M>;

    fn make(body: &dyn ErasedBody, call: CallSource<'_>) -> Option<Self::Future> {
        let typed = body.as_any().downcast_ref::<Self>()?;
        Some(typed.future(call))
    }
}

impl<F, Fut, M> ErasedBody for Typed<F, M>
where
    F: Fn(CallSource<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    M: FnOnce(Fut::Output) -> CallOutput + Copy + Send + Sync + 'static,
{
    fn call(&self, call: CallSource<'_>) -> CallFuture {
        self.future(call).boxed()
    }

    fn call_in(
        &self,
        call: CallSource<'_>,
        boxes: &mut CallBoxes,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<CallOutput> {
        boxes.call(|| self.future(call), cx)
    }

    fn spawn(
        &self,
        runtime: &tokio::runtime::Handle,
        host: Arc<dyn Host>,
        key: usize,
        node: NodeId,
        input: BareInput,
    ) {
        // Not joined: a cancelled event is stopped through its host.
        drop(runtime.spawn(Spawned::<Self>::new(host, key, node, input)));
    }

    fn as_any(&self) -> &dyn Any {
        self
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

/// A closure with no parameter: its call is never made, and its future holds the closure's
/// own future alone.
impl<F, Fut, R> Handler<()> for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoFlow,
{
    type Output = R::Output;

    fn into_erased(self) -> ErasedHandler {
        ErasedHandler::without_params(move |_: CallSource<'_>| (self)())
    }

    fn context_needs() -> Vec<ContextNeed> {
        Vec::new()
    }
}

pin_project_lite::pin_project! {
    /// The future of one call of a closure of a [`DriveBuilder`](crate::DriveBuilder): its
    /// future, or the error of a parameter it could not be given. Not an `async` block
    /// awaiting the closure's future: that would hold the future twice (once as the block
    /// captured it, once as it awaits it: a block's captures and its locals never share
    /// their place). Nor an `Either` of two `Map`s: a `Map` moves itself out of its place
    /// when its future ends. (The functions of the macros are called in such a block,
    /// which captures their parameters and awaits their future: they are held twice, not
    /// the future; a future made as this one is would make a second error of a parameter
    /// that is not `Send`.)
    #[project = ClosureCallProj]
    enum ClosureCall<Fut> {
        Made { #[pin] future: Fut },
        Failed { error: ParamError },
    }
}

impl<Fut: Future> Future for ClosureCall<Fut> {
    type Output = Result<Fut::Output, ParamError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ClosureCallProj::Made { future } => future.poll(cx).map(Ok),
            ClosureCallProj::Failed { error } => Poll::Ready(Err(*error)),
        }
    }
}

impl<Fut> ClosureCall<Fut> {
    /// The call of a closure whose parameters were taken, or of one whose parameter could
    /// not be given.
    fn of(future: Result<Fut, ParamError>) -> Self {
        match future {
            Ok(future) => ClosureCall::Made { future },
            Err(error) => ClosureCall::Failed { error },
        }
    }
}

/// The parameters of a closure, taken from the source of its call.
trait Params: Sized {
    fn from_source(source: CallSource<'_>) -> Result<Self, ParamError>;
}

/// One parameter, taken as it is best taken alone (an input alone, without a call around
/// it: see [`EventParam::from_source`]).
impl<A: EventParam> Params for (A,) {
    fn from_source(source: CallSource<'_>) -> Result<Self, ParamError> {
        A::from_source(source).map(|a| (a,))
    }
}

/// Two or three parameters, taken from the call in turn.
macro_rules! params_from_call {
    ($($param:ident),+) => {
        impl<$($param: EventParam),+> Params for ($($param,)+) {
            #[allow(non_snake_case)]
            fn from_source(source: CallSource<'_>) -> Result<Self, ParamError> {
                let mut call = source.__call();
                call.__inputs(0 $(+ $param::INPUTS)+);
                Ok(($($param::from_call(&mut call)?,)+))
            }
        }
    };
}
params_from_call!(A, B);
params_from_call!(A, B, C);

macro_rules! closure_handler {
    ($($param:ident),+) => {
        impl<F, Fut, R, $($param),+> Handler<($($param,)+)> for F
        where
            F: Fn($($param),+) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoFlow,
            $($param: EventParam,)+
        {
            type Output = R::Output;

            #[allow(non_snake_case, clippy::redundant_closure_call)]
            fn into_erased(self) -> ErasedHandler {
                ErasedHandler::new(move |source: CallSource<'_>| {
                    let params = <($($param,)+) as Params>::from_source(source);
                    ClosureCall::of(params.map(|($($param,)+)| (self)($($param),+)))
                })
            }

            fn context_needs() -> Vec<ContextNeed> {
                let needs: Vec<Option<ContextNeed>> = vec![$($param::context_need()),+];
                needs.into_iter().flatten().collect()
            }
        }
    };
}
closure_handler!(A);
closure_handler!(A, B);
closure_handler!(A, B, C);

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;
    use crate::body::context::Context;
    use crate::body::param::{Call, CallOnce, MakeCall};
    use crate::body::task::{Boxed, EventTask};
    use crate::core::flow::ErasedFlow;
    use crate::core::input::EventInput;

    /// The size of the task of a body, and of the body's own future.
    fn sizes<B: MakeBody>(_: &B) -> (usize, usize) {
        (size_of::<Spawned<B>>(), size_of::<B::Future>())
    }

    #[test]
    fn an_event_in_flight_is_a_small_future() {
        // What a task holds per event beside its body's own future (and tokio's header):
        // keep it small. A trivial body, typed as `ErasedHandler::new` types it:
        let trivial = Typed {
            body: |_: CallSource<'_>| async { Ok::<(), ParamError>(()) },
            output: |returned: Result<(), ParamError>| match returned {
                Ok(value) => value.into_flow().map(erase).map_err(CallError::Failed),
                Err(param) => Err(CallError::Param(param)),
            },
        };
        let (task, body) = sizes(&trivial);
        assert!(
            task - body <= 128,
            "a task of {task} bytes for a body of {body}"
        );
        // An inline event, whose body is boxed (its run is not in it: the run's task polls
        // it).
        assert!(size_of::<EventTask<Boxed>>() <= 80);
        // Which every task holds until its first poll, and a body that takes it after: its
        // behavior is read off its origin, a start's data shares the place of the results.
        assert!(size_of::<EventInput>() <= 64);
        // An event to start, as it waits in a run's queue: its input without the graph and
        // the run id (a capped fan-out of a million holds a million of them).
        assert!(size_of::<crate::core::dispatch::Start>() <= 64);
        // The call, moved into every body: its links to the run are boxed together (three
        // in place made it 200 bytes).
        assert!(size_of::<Call>() <= 96);
    }

    #[test]
    fn a_body_s_future_holds_the_future_of_its_function_once() {
        // A closure whose future holds its input: the body's future holds that future,
        // and little more (an `async` block awaiting it held it twice: 200 bytes for 88).
        let function = |input: EventInput| async move {
            tokio::task::yield_now().await;
            Flow::from(input.task_id())
        };
        let own = std::mem::size_of_val(&function(EventInput::start()));
        let mut boxes = CallBoxes::default();
        let mut call = CallOnce::new(|| Call::new(EventInput::from_input(7_u32), None, None));
        let first = function.into_erased().0.call_in(
            CallSource::new(&mut call),
            &mut boxes,
            &mut std::task::Context::from_waker(futures::task::noop_waker_ref()),
        );
        assert!(first.is_pending(), "its body yields first");
        let made = boxes.last_size();
        assert!(
            made <= own + 16,
            "a body's future of {made} bytes for one of {own}"
        );
    }

    /// A source that counts what its body asks for: whole calls, or inputs alone.
    #[derive(Default)]
    struct Asked {
        calls: usize,
        inputs: usize,
    }

    impl MakeCall for Asked {
        fn make_call(&mut self) -> Call {
            self.calls += 1;
            Call::new(EventInput::from_input(7_u32), Some(Arc::new(5_u32)), None)
        }

        fn make_input(&mut self) -> EventInput {
            self.inputs += 1;
            EventInput::from_input(7_u32)
        }
    }

    /// What `handler`'s body returned (a `u32`), and what it asked its source for.
    fn call_asking<Args>(handler: impl Handler<Args>) -> (Option<u32>, Asked) {
        let mut asked = Asked::default();
        let future = handler.into_erased().call(CallSource::new(&mut asked));
        let value = match futures::executor::block_on(future) {
            Ok(Flow::Value(value)) => value.downcast_ref::<u32>().copied(),
            _ => None,
        };
        (value, asked)
    }

    #[test]
    fn a_body_that_takes_its_input_alone_gets_it_without_a_call() {
        let input = |input: EventInput| async move { Flow::from(*input.user::<u32>().unwrap()) };
        let (value, asked) = call_asking(input);
        assert_eq!((value, asked.calls, asked.inputs), (Some(7), 0, 1));
        // Another parameter alone, or the input with another: the call.
        let context = |n: Context<u32>| async move { Flow::from(*n) };
        let (value, asked) = call_asking(context);
        assert_eq!((value, asked.calls, asked.inputs), (Some(5), 1, 0));
        let both = |input: EventInput, n: Context<u32>| async move {
            Flow::from(*input.user::<u32>().unwrap() + *n)
        };
        let (value, asked) = call_asking(both);
        assert_eq!((value, asked.calls, asked.inputs), (Some(12), 1, 0));
    }

    /// Call `handler` once with a source that counts the calls it makes; what the body
    /// returned, and how many calls were made.
    fn call_counting<Args>(handler: impl Handler<Args>) -> (Option<ErasedFlow>, usize) {
        let mut made = 0;
        // The body's future holds nothing of the source: it outlives it.
        let future = {
            let mut call = CallOnce::new(|| {
                made += 1;
                Call::new(EventInput::from_input(7_u32), None, None)
            });
            handler.into_erased().call(CallSource::new(&mut call))
        };
        let flow = futures::executor::block_on(future).ok();
        (flow, made)
    }

    #[test]
    fn a_body_makes_its_call_only_if_it_takes_a_parameter() {
        let (flow, made) = call_counting(|| async { Flow::from(1_u8) });
        assert_eq!(made, 0, "a body without parameters made its call");
        assert!(matches!(flow, Some(Flow::Value(ref v)) if v.downcast_ref::<u8>() == Some(&1)));

        let (flow, made) = call_counting(|input: EventInput| async move {
            Flow::from(input.user::<u32>().copied().unwrap_or(0))
        });
        assert_eq!(made, 1);
        assert!(matches!(flow, Some(Flow::Value(ref v)) if v.downcast_ref::<u32>() == Some(&7)));
    }
}
