//! The task of one event: a hand-written future, generic over the body's own future, so that
//! a spawned event is one allocation (tokio's task cell, holding the body's future in place)
//! instead of a task plus a boxed body. The runner that owns the event is reached through
//! [`Host`]; the body, through [`ErasedBody`] (implemented by the typed bodies of
//! [`handler`](crate::body::handler)).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use futures::future::{BoxFuture, CatchUnwind};
use futures::FutureExt;
use pin_project_lite::pin_project;
use tracing::instrument::Instrumented;
use tracing::Instrument;

use crate::body::call_box::{CallBoxes, ReusedCall};
use crate::body::param::{Call, CallOutput, CallSource, MakeCall};
use crate::core::error::Error;
use crate::core::flow::ErasedFlow;
use crate::core::graph::NodeId;
use crate::core::input::{BareInput, EventInput};

/// The future of one call of an event body, boxed (the timeout and retry path, inline runs,
/// the durable worker).
pub(crate) type CallFuture = BoxFuture<'static, CallOutput>;

/// The output of one call of an event body: its flow, or why it has none, or its panic.
pub(crate) type Caught = std::thread::Result<CallOutput>;

/// How many attempts an event made, and how the last one ended.
pub(crate) type Attempts = (u32, Result<ErasedFlow, Error>);

/// An event body with its parameters and return type erased: a boxed call for whoever
/// needs one, and the spawn of a task that holds the body's own future.
pub(crate) trait ErasedBody: Send + Sync + 'static {
    /// One call, boxed (its call made by `call` if the body takes a parameter).
    fn call(&self, call: CallSource<'_>) -> CallFuture;

    /// One call, made the last one of `boxes` (in the box kept for this body's future,
    /// whose allocation is reused: the future it held, which has ended, is dropped first),
    /// and polled once.
    fn call_in(
        &self,
        call: CallSource<'_>,
        boxes: &mut CallBoxes,
        cx: &mut Context<'_>,
    ) -> Poll<CallOutput>;

    /// Spawn the task of one event of this body on `runtime` (not joined: the host stops
    /// it through [`Host::cancelled`] and the waker it registers).
    fn spawn(
        &self,
        runtime: &tokio::runtime::Handle,
        host: Arc<dyn Host>,
        key: usize,
        node: NodeId,
        input: BareInput,
    );

    /// Itself, for a task to find its own body type again.
    fn as_any(&self) -> &dyn Any;
}

/// How a task makes its event's body from the body the host holds for the event.
pub(crate) trait MakeBody: 'static {
    /// The body's future, held in the task.
    type Future: Future<Output = CallOutput> + Send + 'static;

    /// The body's future for the call `call` makes, if the body takes a parameter (made
    /// only then: a call is large, and most small bodies take nothing); `None` if `body` is
    /// not of this type (a task is only spawned by its own body, so this does not happen).
    fn make(body: &dyn ErasedBody, call: CallSource<'_>) -> Option<Self::Future>;
}

/// Any body, boxed: the task of an event run inside the run's own task
/// ([`Invoke::inline`](crate::Invoke::inline)), where every event is the same future type.
pub(crate) struct Boxed;

impl MakeBody for Boxed {
    type Future = ReusedCall;

    fn make(body: &dyn ErasedBody, call: CallSource<'_>) -> Option<ReusedCall> {
        Some(ReusedCall::boxed(body.call(call)))
    }
}

/// What an event's task needs from the run it belongs to.
pub(crate) trait Host: Send + Sync + 'static {
    /// Whether this event must end now, dropping its body: a spawned event of a run that is
    /// over. Checked on every poll. (An inline event is cancelled by being dropped.)
    fn cancelled(&self) -> bool;

    /// The span of an event's run, made at its first poll.
    fn span(&self, node: NodeId, input: &BareInput) -> tracing::Span;

    /// How an event runs: one call of its body, unless it has a timeout or retries. (Not
    /// returned with the span: a pair returned is copied out at once, and the copy stalls
    /// on the stores that made it, a store forwarding stall.)
    fn begin(&self, node: NodeId) -> Begun<'_>;

    /// The call of a plain event's body.
    fn call(&self, key: usize, node: NodeId, input: BareInput) -> Call;

    /// The input of a plain event's body whose one parameter is its input (what its call
    /// would hand it: with the graph, which its accessors read).
    fn input(&self, input: BareInput) -> EventInput;

    /// The attempts of an event with a timeout or retries, boxed (their timers would make
    /// every event's task larger).
    fn attempts(&self, key: usize, node: NodeId, input: BareInput) -> BoxFuture<'static, Attempts>;

    /// What one call ended with, as the run sees it.
    fn settle(&self, node: NodeId, caught: Caught) -> Result<ErasedFlow, Error>;

    /// The event's body went pending for the first time: keep `waker`, for a cancellation
    /// to wake it (in the event's entry, made now if `key` names none: `key` is set to it).
    /// `false`: the run is over, and the event ends at once.
    fn register(&self, key: &mut usize, node: NodeId, waker: &Waker) -> bool;

    /// A spawned event ended: report it to the run, which starts what follows (and may
    /// run the first poll of one of those events here, in the ending event's task `cx`).
    fn finish(self: Arc<Self>, ended: Ended, cx: &mut Context<'_>);
}

/// The call of one event of a [`Host`], made when its body asks (see [`CallSource`]): the
/// whole call, or its input alone.
struct HostCall<'h, H: ?Sized> {
    host: &'h H,
    key: usize,
    node: NodeId,
    /// Taken by the one call made (a source gives one).
    input: Option<BareInput>,
}

impl<'h, H: Host + ?Sized> HostCall<'h, H> {
    fn new(host: &'h H, key: usize, node: NodeId, input: BareInput) -> Self {
        HostCall {
            host,
            key,
            node,
            input: Some(input),
        }
    }

    /// The input, the first time (not reached a second time: a source is consumed).
    fn take_input(&mut self) -> BareInput {
        self.input.take().unwrap_or_default()
    }
}

impl<H: Host + ?Sized> MakeCall for HostCall<'_, H> {
    fn make_call(&mut self) -> Call {
        let input = self.take_input();
        self.host.call(self.key, self.node, input)
    }

    fn make_input(&mut self) -> EventInput {
        let input = self.take_input();
        self.host.input(input)
    }
}

/// How one event ended, as the run sees it.
pub(crate) type Attempt = Result<ErasedFlow, Error>;

/// One event that ended, for its run to complete: a spawned event hands it to
/// [`Host::finish`] itself; an inline one returns it to the run's task, which owns what
/// it starts. A completion is lent its outcome (`R` = `&mut Attempt`, see
/// [`lend`](Ended::lend)): moved on each call, its 64 bytes were copied right after they
/// were written, and the copy waited for the stores (a store forwarding stall).
pub(crate) struct Ended<R = Attempt> {
    /// Its entry among the run's tasks.
    pub(crate) key: usize,
    pub(crate) node: NodeId,
    /// Its attempts (one for a plain event).
    pub(crate) attempts: u32,
    pub(crate) result: R,
}

/// An event that ended, its outcome lent to its completion.
pub(crate) type EndedRef<'a> = Ended<&'a mut Attempt>;

impl Ended {
    /// The same, its outcome lent.
    #[inline]
    pub(crate) fn lend(&mut self) -> EndedRef<'_> {
        Ended {
            key: self.key,
            node: self.node,
            attempts: self.attempts,
            result: &mut self.result,
        }
    }
}

/// How an event runs, from [`Host::begin`].
pub(crate) enum Begun<'a> {
    /// A plain event: one call of this body.
    Call(&'a dyn ErasedBody),
    /// An event with a timeout or retries: [`Host::attempts`].
    Options,
}

pin_project! {
    /// One event's run: a hand-written future rather than an `async fn`, so that a task holds
    /// only what its current step needs (an `async fn` keeps its arguments for its whole
    /// life, beside the state of its `.await`s). Every event of a run is one of these: its
    /// size is most of the memory of an event in flight. It is polled for its run
    /// ([`EventTask::poll_for`]), which it does not hold: a spawned event's task holds it
    /// ([`Spawned`]), an inline event is polled by the run's own task.
    pub(crate) struct EventTask<B>
    where
        B: MakeBody,
    {
        key: usize,
        node: NodeId,
        // Its waker was given to the host, for a cancellation to wake it.
        registered: bool,
        #[pin]
        step: Step<B::Future>,
    }
}

pin_project! {
    /// The tokio task of a spawned event: its run, and the event, whose end it reports to
    /// the run ([`Host::finish`]).
    pub(crate) struct Spawned<B>
    where
        B: MakeBody,
    {
        // `None` once the event has ended.
        host: Option<Arc<dyn Host>>,
        #[pin]
        event: EventTask<B>,
    }
}

impl<B: MakeBody> Spawned<B> {
    /// The task of one event of `host`, not started: its body is made on its first poll.
    pub(crate) fn new(host: Arc<dyn Host>, key: usize, node: NodeId, input: BareInput) -> Self {
        Spawned {
            host: Some(host),
            event: EventTask::new(key, node, input),
        }
    }
}

impl Spawned<Boxed> {
    /// The task of an event of `host` that was started in another event's task and went
    /// pending there ([`EventTask::start_inline`]): its first poll in this task polls its
    /// body again, which then leaves this task's waker where it waits.
    pub(crate) fn started(host: Arc<dyn Host>, event: EventTask<Boxed>) -> Self {
        Spawned {
            host: Some(host),
            event,
        }
    }
}

impl<B: MakeBody> Future for Spawned<B> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let Some(host) = this.host.as_deref() else {
            return Poll::Ready(()); // ended already
        };
        let ended = ready!(this.event.poll_for(host, cx));
        if let (Some(host), Some(ended)) = (this.host.take(), ended) {
            host.finish(ended, cx);
        }
        Poll::Ready(())
    }
}

pin_project! {
    #[project = StepProj]
    #[project_replace = StepOwn]
    enum Step<Fut> {
        // Not polled yet: the body is made on the first poll, in the event's own task.
        Start { input: BareInput },
        // A plain event: its body, in its span, panics caught.
        Plain {
            #[pin]
            body: Instrumented<CatchUnwind<AssertUnwindSafe<Fut>>>,
        },
        // The body panicked before its future existed: the panic, and the event's span.
        Panicked { panic: Box<dyn Any + Send>, span: tracing::Span },
        // An event with a timeout or retries: its attempts, boxed.
        Options { attempts: Instrumented<BoxFuture<'static, Attempts>> },
        Done,
    }
}

impl<B: MakeBody> EventTask<B> {
    /// One event, not started: its body is made on its first poll.
    pub(crate) fn new(key: usize, node: NodeId, input: BareInput) -> Self {
        EventTask {
            key,
            node,
            registered: false,
            step: Step::Start { input },
        }
    }

    /// The event it runs.
    pub(crate) fn node(&self) -> NodeId {
        self.node
    }
}

impl<Fut: Future> Step<Fut> {
    /// A plain event's body, made: polled in its span, its panics caught.
    fn plain(body: Fut, span: tracing::Span) -> Self {
        Step::Plain {
            body: AssertUnwindSafe(body).catch_unwind().instrument(span),
        }
    }

    /// An event with a timeout or retries: its attempts, in its span.
    fn options<H: Host + ?Sized>(
        host: &H,
        key: usize,
        node: NodeId,
        input: BareInput,
        span: tracing::Span,
    ) -> Self {
        Step::Options {
            attempts: in_span(host.attempts(key, node, input), span),
        }
    }
}

/// The first step: make the event's body in its span.
fn begin<B: MakeBody, H: Host + ?Sized>(
    host: &H,
    key: usize,
    node: NodeId,
    input: BareInput,
) -> Step<B::Future> {
    let span = host.span(node, &input);
    let body = match host.begin(node) {
        Begun::Call(body) => body,
        Begun::Options => return Step::options(host, key, node, input, span),
    };
    let made = {
        let _entered = span.enter();
        // Under `catch_unwind`: a closure may panic before its future exists.
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut call = HostCall::new(host, key, node, input);
            B::make(body, CallSource::new(&mut call))
        }))
    };
    match made {
        Ok(Some(body)) => Step::plain(body, span),
        Ok(None) => Step::Panicked {
            panic: Box::new("drive-flow: an event's task was made for another body"),
            span,
        },
        Err(panic) => Step::Panicked { panic, span },
    }
}

impl<B: MakeBody> EventTask<B> {
    /// Poll the event for its run `host`: `Ready(Some(..))` once it ended, for the run to
    /// complete; `Ready(None)` if it was cancelled (a spawned event of a run that is over),
    /// or had ended before. Generic over the host, so that the run's task, polling its
    /// inline events, calls its own methods directly.
    pub(crate) fn poll_for<H: Host + ?Sized>(
        self: Pin<&mut Self>,
        host: &H,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Ended>> {
        let mut this = self.project();
        // A spawned event's cancellation: the run is over, its body is dropped here.
        if host.cancelled() {
            this.step.set(Step::Done);
            return Poll::Ready(None);
        }
        if let StepProj::Start { .. } = this.step.as_mut().project() {
            if let StepOwn::Start { input } = this.step.as_mut().project_replace(Step::Done) {
                let next = begin::<B, H>(host, *this.key, *this.node, input);
                this.step.set(next);
            }
        }
        let polled = match this.step.as_mut().project() {
            StepProj::Plain { body } => body
                .poll(cx)
                .map(|caught: Caught| (1, host.settle(*this.node, caught))),
            StepProj::Panicked { .. } => match this.step.as_mut().project_replace(Step::Done) {
                StepOwn::Panicked { panic, span } => {
                    let result = host.settle(*this.node, Err(panic));
                    span_ended(&span, 1, &result);
                    Poll::Ready((1, result))
                }
                _ => return Poll::Ready(None),
            },
            StepProj::Options { attempts } => poll_attempts(attempts, cx),
            StepProj::Start { .. } | StepProj::Done => return Poll::Ready(None),
        };
        let Poll::Ready((attempts, result)) = polled else {
            // Its body went pending: the first time, it leaves its waker with the host (which
            // sees a run closed before, and the event ends at once).
            if !*this.registered {
                if !host.register(this.key, *this.node, cx.waker()) {
                    this.step.set(Step::Done);
                    return Poll::Ready(None);
                }
                *this.registered = true;
            }
            return Poll::Pending;
        };
        match this.step.as_mut().project() {
            StepProj::Plain { body } => span_ended(body.span(), attempts, &result),
            StepProj::Options { attempts: options } => {
                span_ended(options.span(), attempts, &result)
            }
            _ => {}
        }
        this.step.set(Step::Done);
        Poll::Ready(Some(Ended {
            key: *this.key,
            node: *this.node,
            attempts,
            result,
        }))
    }
}

/// How the first poll of an inline event went ([`EventTask::start_inline`]).
pub(crate) enum FirstPoll {
    /// It ended (and was handed to the caller's completion), or was cancelled; its body's
    /// box is back with the caller.
    Ended,
    /// It went pending: its task, which took its body's box, for the run's task to poll.
    Pending(EventTask<Boxed>),
}

impl EventTask<Boxed> {
    /// Start an inline event and poll it once, in the run's task: its body is made, and
    /// polled, in the box of `boxes` for its body, whose allocation the last event of that
    /// body that ended this way left there (most inline events end at their first poll,
    /// and then allocate nothing here). One that ends is handed to `complete` here, made
    /// in place (returned, its 88 bytes would be copied on the way, right after they were
    /// written: a store forwarding stall). One that goes pending takes the box with it,
    /// into its task, and leaves none; one that ends leaves its future there, ended, until
    /// the next event of its body replaces it (the future of a body has dropped the body's
    /// own future when it ends: see `handler::Typed`). An event with options has its own
    /// task from the start.
    #[allow(clippy::too_many_arguments)] // one event's parts, and where it goes
    pub(crate) fn start_inline<H: Host + ?Sized>(
        host: &H,
        boxes: &mut CallBoxes,
        key: usize,
        node: NodeId,
        input: BareInput,
        cx: &mut Context<'_>,
        complete: impl FnOnce(EndedRef<'_>),
    ) -> FirstPoll {
        let span = host.span(node, &input);
        let body = match host.begin(node) {
            Begun::Call(body) => body,
            Begun::Options => {
                let mut event = EventTask {
                    key,
                    node,
                    registered: false,
                    step: Step::options(host, key, node, input, span),
                };
                return match Pin::new(&mut event).poll_for(host, cx) {
                    Poll::Ready(ended) => {
                        if let Some(mut ended) = ended {
                            complete(ended.lend());
                        }
                        FirstPoll::Ended
                    }
                    Poll::Pending => FirstPoll::Pending(event),
                };
            }
        };
        let caught = {
            let _entered = span.enter();
            // Under `catch_unwind`: a closure may panic before its future exists, and a
            // body may panic in its poll.
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut call = HostCall::new(host, key, node, input);
                body.call_in(CallSource::new(&mut call), boxes, cx)
            }))
        };
        // One match from what the first poll gave to what the run sees (a flow as it came:
        // nested matches copied it at every step), lent to the completion (see `Ended`).
        let mut result = match caught {
            Ok(Poll::Ready(Ok(flow))) => Ok(flow),
            Ok(Poll::Ready(Err(failed))) => host.settle(node, Ok(Err(failed))),
            Ok(Poll::Pending) => {
                let step = match boxes.take_last() {
                    Some(body) => Step::plain(body, span),
                    // Not seen: a call that went pending left its future in its box.
                    None => Step::Panicked {
                        panic: Box::new("drive-flow: an inline event's body was not kept"),
                        span,
                    },
                };
                return FirstPoll::Pending(EventTask {
                    key,
                    node,
                    registered: false,
                    step,
                });
            }
            Err(panic) => {
                // What panicked is dropped now, as a panicked event's task drops it.
                drop(boxes.take_last());
                host.settle(node, Err(panic))
            }
        };
        span_ended(&span, 1, &result);
        complete(Ended {
            key,
            node,
            attempts: 1,
            result: &mut result,
        });
        FirstPoll::Ended
    }
}

// What follows is not generic: one copy for every body type (an event task's `poll` is
// compiled once per body type, beside tokio's harness for it).

/// The attempts of an event with options, in its span.
#[inline(never)]
fn in_span(
    attempts: BoxFuture<'static, Attempts>,
    span: tracing::Span,
) -> Instrumented<BoxFuture<'static, Attempts>> {
    attempts.instrument(span)
}

#[inline(never)]
fn poll_attempts(
    attempts: &mut Instrumented<BoxFuture<'static, Attempts>>,
    cx: &mut Context<'_>,
) -> Poll<Attempts> {
    Pin::new(attempts).poll(cx)
}

/// Record how the event ended on its span (a disabled span, tracing's common case, is
/// seen here, without a call).
#[inline]
fn span_ended(span: &tracing::Span, attempts: u32, result: &Attempt) {
    if !span.is_disabled() {
        record_ended(span, attempts, result)
    }
}

/// [`span_ended`] for a span that is taken: out of the way of every event's start.
#[inline(never)]
fn record_ended(span: &tracing::Span, attempts: u32, result: &Attempt) {
    crate::core::telemetry::event_span_ended(span, attempts, result)
}
