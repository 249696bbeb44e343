//! The async runner: starts events as tokio tasks, caps how many run at once, stops
//! everything when one fails or when the run is dropped, and feeds every completion back
//! into the dispatch core.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::context::{Call, ParamError};
use crate::dispatch::{RunState, Start};
use crate::error::Error;
use crate::event::Event;
use crate::flow::ErasedFlow;
use crate::graph::{Graph, NodeId};
use crate::handler::CallError;
use crate::input::EventInput;
use crate::results::Results;

type AnyContext = Arc<dyn Any + Send + Sync>;

/// A run being configured: returned by [`Drive::invoke`](crate::Drive::invoke), run by
/// awaiting it.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn double(input: EventInput, factor: Context<i32>) -> i32 {
///     input.user::<i32>().copied().unwrap_or(0) * *factor
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let drive = Drive::new()?;
/// let results = drive
///     .invoke(double)
///     .input(EventInput::from_input(21))
///     .context(2)
///     .max_concurrency(8)
///     .await?;
/// assert_eq!(results.get(double), Some(&42));
/// # Ok(())
/// # }
/// ```
///
/// The future is `Send + 'static`, so a run can be spawned. Dropping it cancels every event
/// it started. It must be polled inside a tokio runtime; events run as tokio tasks, so they
/// use every worker thread of a multi-thread runtime.
#[must_use = "a run does nothing until it is awaited"]
pub struct Invoke<E> {
    graph: Arc<Graph>,
    start: E,
    input: EventInput,
    context: Option<(AnyContext, TypeId, &'static str)>,
    max_concurrency: usize,
    inline: bool,
}

impl<E: Event> Invoke<E> {
    pub(crate) fn new(graph: Arc<Graph>, start: E) -> Self {
        Invoke {
            graph,
            start,
            input: EventInput::start(),
            context: None,
            max_concurrency: usize::MAX,
            inline: false,
        }
    }

    /// The input of the start event (by default: [`Behavior::Input`](crate::Behavior::Input),
    /// group name `"user_input"`, no results and no user data).
    pub fn input(mut self, input: EventInput) -> Self {
        self.input = input;
        self
    }

    /// The context shared by every event of the run, read with [`Context<T>`](crate::Context).
    pub fn context<T: Send + Sync + 'static>(self, context: T) -> Self {
        self.context_arc(Arc::new(context))
    }

    /// Like [`context`](Self::context), keeping a pointer to it on the caller's side.
    pub fn context_arc<T: Send + Sync + 'static>(mut self, context: Arc<T>) -> Self {
        self.context = Some((context, TypeId::of::<T>(), std::any::type_name::<T>()));
        self
    }

    /// At most `n` events run at once; the others wait their turn in the order they were
    /// triggered. Unlimited by default; `0` counts as `1`.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Run every event inside the run's own task instead of spawning a tokio task per event.
    ///
    /// For workflows of many cheap events (a few microseconds or less each): it saves a task
    /// per event, but events of the run no longer use several worker threads at once, so a
    /// CPU-bound event holds up the others. Events still run concurrently at their `.await`
    /// points, and every other guarantee holds (caps, cancellation, errors, panics).
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn cheap() -> u8 { 1 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(cheap).inline().await?;
    /// assert_eq!(results.get(cheap), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    async fn run(self) -> Result<Results, Error> {
        let graph = self.graph;
        let start = graph
            .resolve(self.start.__key())
            .ok_or_else(|| Error::UnknownEvent {
                event: graph.describe(self.start.__key()),
                detail: String::from(" (the start of a run)"),
            })?;
        check_context(
            &graph,
            start,
            self.context.as_ref().map(|(_, id, name)| (*id, *name)),
        )?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;

        static NEXT_RUN_ID: AtomicU64 = AtomicU64::new(1);
        let run_id = NEXT_RUN_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("run", run_id, start = %graph.node(start).name);
        let mut state = RunState::new(graph.clone());
        let input = state.start_input(self.input);
        let shared = Arc::new(Shared {
            graph,
            run_id,
            span,
            runtime,
            context: self.context.map(|(context, _, _)| context),
            cap: self.max_concurrency,
            inline: self.inline,
            done: Notify::new(),
            inner: Mutex::new(Inner {
                state: Some(state),
                running: 0,
                queue: VecDeque::new(),
                tasks: slab::Slab::new(),
                inline: Vec::new(),
                outcome: None,
            }),
        });
        let guard = CancelOnDrop(shared.clone());
        shared.schedule(&mut shared.lock(), Start { node: start, input });

        let mut in_task = FuturesUnordered::new();
        loop {
            if shared.inline {
                let mut inner = shared.lock();
                for start in inner.inline.drain(..) {
                    in_task.push(run_event(shared.clone(), INLINE, start));
                }
            }
            if in_task.is_empty() {
                shared.done.notified().await;
            } else {
                in_task.next().await;
            }
            let mut inner = shared.lock();
            if let Some(outcome) = inner.outcome.take() {
                let state = inner.state.take();
                drop(inner);
                drop(guard); // nothing left to cancel
                outcome?;
                return state.map(Results::new).ok_or(Error::Cancelled);
            }
        }
    }
}

impl<E: Event> IntoFuture for Invoke<E> {
    type Output = Result<Results, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Results, Error>> + Send + 'static>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Refuse a run whose context does not fit an event it can reach through its groups.
/// Goto targets outside that reach are checked when they are called.
fn check_context(
    graph: &Graph,
    start: NodeId,
    context: Option<(TypeId, &'static str)>,
) -> Result<(), Error> {
    if !graph.nodes.iter().any(|node| !node.needs.is_empty()) {
        return Ok(());
    }
    let mut seen = vec![false; graph.nodes.len()];
    let mut stack = vec![start];
    seen[start as usize] = true;
    while let Some(node) = stack.pop() {
        let info = graph.node(node);
        for need in &info.needs {
            match context {
                Some((type_id, _)) if type_id == need.type_id => {}
                Some((_, given)) => {
                    return Err(Error::Context {
                        event: info.name.to_string(),
                        expected: need.type_name,
                        given: format!("the run was given a `{given}`"),
                    })
                }
                None => {
                    return Err(Error::Context {
                        event: info.name.to_string(),
                        expected: need.type_name,
                        given: String::from(
                            "the run has no context (give one with `.context(..)`)",
                        ),
                    })
                }
            }
        }
        for &(group, _) in graph.member_of(node) {
            let listener = graph.group(group).listener;
            if !std::mem::replace(&mut seen[listener as usize], true) {
                stack.push(listener);
            }
        }
    }
    Ok(())
}

struct Shared {
    graph: Arc<Graph>,
    run_id: u64,
    span: tracing::Span,
    runtime: tokio::runtime::Handle,
    context: Option<AnyContext>,
    cap: usize,
    /// Run events inside the run's task ([`Invoke::inline`]).
    inline: bool,
    done: Notify,
    inner: Mutex<Inner>,
}

struct Inner {
    state: Option<RunState>,
    running: usize,
    queue: VecDeque<Start>,
    tasks: slab::Slab<AbortHandle>,
    /// Events to start inside the run's task ([`Invoke::inline`]).
    inline: Vec<Start>,
    /// Set once: the run is over, successfully or not.
    outcome: Option<Result<(), Error>>,
}

impl Inner {
    fn is_over(&self) -> bool {
        self.state.is_none() || self.outcome.is_some()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere while it was held; the state is
        // still consistent because every update under it is infallible.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn schedule(self: &Arc<Self>, inner: &mut Inner, start: Start) {
        if inner.running < self.cap {
            self.spawn(inner, start);
        } else {
            inner.queue.push_back(start);
        }
    }

    fn spawn(self: &Arc<Self>, inner: &mut Inner, start: Start) {
        inner.running += 1;
        if self.inline {
            inner.inline.push(start);
            return;
        }
        let entry = inner.tasks.vacant_entry();
        let key = entry.key();
        let handle = self.runtime.spawn(run_event(self.clone(), key, start));
        entry.insert(handle.abort_handle());
    }

    fn finish(
        self: &Arc<Self>,
        key: usize,
        node: NodeId,
        result: std::thread::Result<Result<ErasedFlow, CallError>>,
    ) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if key != INLINE {
            inner.tasks.try_remove(key);
        }
        inner.running -= 1;
        if inner.is_over() {
            return;
        }
        let name = || self.graph.node(node).name.to_string();
        let completed = match result {
            Ok(Ok(flow)) => {
                let mut starts = Vec::new();
                match inner
                    .state
                    .as_mut()
                    .map(|state| state.complete(node, flow, &mut starts))
                {
                    Some(Err(error)) => Err(error),
                    _ => {
                        for start in starts {
                            self.schedule(inner, start);
                        }
                        Ok(())
                    }
                }
            }
            Ok(Err(CallError::Failed(source))) => Err(Error::Failed {
                event: name(),
                source,
            }),
            Ok(Err(CallError::Param(ParamError { expected, given }))) => Err(Error::Context {
                event: name(),
                expected,
                given: String::from(if given {
                    "the run was given a context of another type"
                } else {
                    "the run has no context (give one with `.context(..)`)"
                }),
            }),
            Err(panic) => Err(Error::Panicked {
                event: name(),
                message: panic_message(&*panic),
            }),
        };
        if let Err(error) = completed {
            self.close(inner, Err(error));
            return;
        }
        while inner.running < self.cap {
            let Some(start) = inner.queue.pop_front() else {
                break;
            };
            self.spawn(inner, start);
        }
        if inner.running == 0 {
            self.close(inner, Ok(()));
        }
    }

    /// End the run: cancel every event still in flight and wake the caller.
    fn close(&self, inner: &mut Inner, outcome: Result<(), Error>) {
        if inner.outcome.is_none() {
            inner.outcome = Some(outcome);
        }
        inner.queue.clear();
        for handle in inner.tasks.drain() {
            handle.abort();
        }
        self.done.notify_one();
    }
}

/// The task key of an event run inside the run's task.
const INLINE: usize = usize::MAX;

/// Runs one event (as its own task, or inside the run's task) and reports back.
async fn run_event(shared: Arc<Shared>, key: usize, start: Start) {
    let node = shared.graph.node(start.node);
    let span = tracing::info_span!(
        parent: &shared.span,
        "event",
        event = %node.name,
        run_id = shared.run_id,
        task_id = start.input.task_id,
    );
    let call = Call {
        input: start.input,
        context: shared.context.clone(),
    };
    // The call itself is inside the caught future: a closure may panic before its future exists.
    let body = async { node.handler.call(call).await };
    let result = AssertUnwindSafe(body).catch_unwind().instrument(span).await;
    shared.finish(key, start.node, result);
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("(a panic payload that is not a string)")
    }
}

/// Cancels everything a run started when its future is dropped before the end.
struct CancelOnDrop(Arc<Shared>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.state = None;
        inner.queue.clear();
        for handle in inner.tasks.drain() {
            handle.abort();
        }
    }
}
