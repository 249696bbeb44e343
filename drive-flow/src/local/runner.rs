//! The async runner: starts events as tokio tasks, caps how many run at once, enforces
//! budgets, timeouts and retries, stops everything when one event fails, when the run is
//! cancelled or when it is dropped, and feeds every completion back into the dispatch core.
//!
//! Completions are handled where they happen (in the event's task), under the run's one
//! mutex; the tasks they start are spawned after it is released (tokio's spawn, and the
//! wake-up of a parked worker it may make, are not done under the lock). The run's own
//! task only waits for the end (and, with [`Invoke::inline`], polls the events).
//! Everything optional (the event stream, timers, retries, the inbox) costs nothing per
//! event when it is not used.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};
// `std`'s clock, not tokio's: with tokio's `test-util` feature on, tokio's reads a shared
// mutex-guarded clock, too much for two reads per event.
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::task::AtomicWaker;
use futures::{FutureExt, StreamExt};
use smallvec::SmallVec;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::body::call_box::CallBoxes;
use crate::body::child::{ChildHost, ChildLink, ChildRequest};
use crate::body::emitter::{EmitLink, EmitSink, Emitted};
use crate::body::handler::{Bodies, Body};
use crate::body::inbox::{CallRef, InboxLink, INBOX_PARAM};
use crate::body::param::{
    is_checked, is_inbox, Call, CallError, CallOnce, CallSource, Links, ParamError,
};
use crate::body::task::{
    Attempt, Attempts, Begun, Boxed, Caught, Ended, EndedRef, EventTask, FirstPoll, Host, Spawned,
};
use crate::core::dispatch::{Listeners, RunState, Start, Starts};
use crate::core::error::Error;
use crate::core::event::{Event, EventKey};
use crate::core::flow::{ErasedFlow, Flow};
use crate::core::graph::cells::{TaskCells, Writers};
use crate::core::graph::{Graph, NodeId};
use crate::core::input::{BareInput, EventInput, OutcomeKind};
use crate::core::options::EventOptions;
use crate::core::results::Results;
use crate::core::value::AnyValue;
use crate::local::mailbox::Mailbox;
use crate::local::stream::{Cause, EventSender, PathStep, RunEvent, RunEventKind, RunPath};
use crate::local::tasks::{Task, Tasks, UNTRACKED};

type AnyContext = Arc<dyn Any + Send + Sync>;

/// The default of [`Invoke::max_steps`]: ten million event runs, far more than a workflow
/// without a runaway loop makes (generated graphs of a million events included), yet reached
/// within seconds by a loop of cheap events that never exits. For loops of slow events (an
/// agent calling a model), set a budget that fits them, or
/// [`max_runs_per_event`](Invoke::max_runs_per_event).
pub const DEFAULT_MAX_STEPS: u64 = 10_000_000;

/// A run being configured: returned by [`Drive::invoke`](crate::Drive::invoke), run by
/// awaiting it, or by [`start`](Self::start)ing it to get a [`RunHandle`](crate::RunHandle).
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
///     .max_steps(1_000)
///     .timeout(std::time::Duration::from_secs(10))
///     .await?;
/// assert_eq!(results.get(double), Some(&42));
/// # Ok(())
/// # }
/// ```
///
/// An `Invoke` is itself the run's [`Future`], `Send + 'static`: await it, spawn it
/// (`tokio::spawn(drive.invoke(start))`), block on it (`Handle::block_on`), or race it in
/// `join!`/`select!`. The run is set up on its first poll; configure it before. Dropping it
/// cancels every event it started. It must be polled inside a tokio runtime; events run as
/// tokio tasks, so they use every worker thread of a multi-thread runtime.
///
/// Events started together each get a task of their own. An event that the end of another
/// starts alone (the next link of a chain, a `goto`'s one target, the listener of a join
/// whose last member ended) is started in the task of the event that ended instead, which
/// saves spawning one: up to 32 in a row, then the next one is spawned, so that the
/// thread's other tasks get their turn; one that goes pending there moves to a task of its
/// own (its body polled again there). What runs is the same either way.
///
/// The events of a wide fan-out (64 or more started by one end) are cut into parts of up to
/// 16 (fewer on a runtime of many workers: at least four parts per worker), each handed to
/// a task, which any worker takes, and which starts the part's events one after the other
/// in place: most small events end at their first poll, without a task of their own. (The
/// listeners of one event, each listening to it alone, are admitted to the run's budgets
/// by the end that fires them, in order, and each part makes its own events' inputs.) One
/// that goes pending there moves to a task of its own, and the next one starts; once the
/// part has run for 50 µs (or spent the task's tokio budget), every event it has left gets
/// a task of its own, so that long events still spread over the workers. (In a fan-out of
/// events that each block their thread, the rest of a part waits for its first event to
/// end before it is spawned; give such work to `tokio::task::spawn_blocking`, as any tokio
/// task should.)
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn answer() -> u8 { 42 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let drive = Drive::new()?;
/// let spawned = tokio::spawn(drive.invoke(answer));
/// let results = spawned.await.expect("the run's task")?;
/// assert_eq!(results.get(answer), Some(&42));
/// # Ok(())
/// # }
/// ```
#[must_use = "a run does nothing until it is awaited or started"]
pub struct Invoke<E> {
    graph: Arc<Graph>,
    bodies: Bodies,
    /// The start event, by key: the type parameter only says which event it is.
    start: EventKey,
    event: PhantomData<fn() -> E>,
    input: EventInput,
    context: Option<(AnyContext, TypeId, &'static str)>,
    max_concurrency: usize,
    inline: bool,
    max_steps: u64,
    max_runs_per_event: u32,
    timeout: Option<Duration>,
    timed: bool,
    /// For a child workflow ([`Child`](crate::Child)): the run of the event that runs it.
    parent: Option<Arc<Shared>>,
    /// For a child workflow: the events that ran it, outermost first (the last step's
    /// `run_id` is set when the run gets its id).
    path: Option<Vec<PathStep>>,
    /// The run, once polled: set up on the first poll. In a mutex only so that an `Invoke`
    /// stays `Sync`; `poll` has `&mut self` and never locks it (`get_mut`).
    running: Mutex<Option<Running>>,
}

/// A run polled through [`Invoke`]'s own `Future` implementation.
type Running = Pin<Box<dyn Future<Output = Result<Results, Error>> + Send + 'static>>;

impl<E: Event> Invoke<E> {
    pub(crate) fn new(graph: Arc<Graph>, bodies: Bodies, start: E) -> Self {
        Invoke {
            graph,
            bodies,
            start: start.__key(),
            event: PhantomData,
            input: EventInput::start(),
            context: None,
            max_concurrency: usize::MAX,
            inline: false,
            max_steps: DEFAULT_MAX_STEPS,
            max_runs_per_event: u32::MAX,
            timeout: None,
            timed: false,
            parent: None,
            path: None,
            running: Mutex::new(None),
        }
    }
}

impl<E> Invoke<E> {
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
    /// triggered. Unlimited by default; `0` counts as `1`. An event waiting for outside
    /// input in an [`Inbox`](crate::Inbox) does not count.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// The run's loop budget: it fails with [`Error::TooManySteps`] when it triggers more than
    /// `n` event runs in all (counted when they are triggered), naming the event that ran
    /// most often. By default [`DEFAULT_MAX_STEPS`] (ten million), which a workflow without a
    /// runaway loop never reaches; `u64::MAX` switches it off.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn forever() -> Flow<()> {
    ///     Flow::goto(forever, ())             // a loop without an exit
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let error = Drive::new()?.invoke(forever).max_steps(50).await.unwrap_err();
    /// assert!(matches!(
    ///     error,
    ///     drive_flow::Error::TooManySteps { limit: 50, runs: 50, ref event } if event.ends_with("forever")
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_steps(mut self, n: u64) -> Self {
        self.max_steps = n;
        self
    }

    /// A limit per event: the run fails with [`Error::TooManyRuns`], naming the event, when
    /// one event is triggered more than `n` times. Unlimited by default.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn again(input: EventInput) -> Flow<u32> {
    ///     let turn = input.get(again).copied().unwrap_or(0);
    ///     Flow::goto(again, turn + 1)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let error = Drive::new()?.invoke(again).max_runs_per_event(3).await.unwrap_err();
    /// assert!(matches!(error, drive_flow::Error::TooManyRuns { runs: 3, limit: 3, .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_runs_per_event(mut self, n: u32) -> Self {
        self.max_runs_per_event = n;
        self
    }

    /// Fail the run with [`Error::RunTimeout`] (naming the events still in flight) if it has
    /// not ended `timeout` after it started; every event in flight is cancelled. No limit by
    /// default.
    ///
    /// The run returns on time even if an event blocks its thread: cancelled events are not
    /// waited for. Tokio cannot pre-empt such an event, though: it stops at its next
    /// `.await` (what it returns is ignored), and until then it holds its worker thread, or
    /// the whole run on a current-thread runtime or with [`inline`](Self::inline). Run
    /// blocking work with `tokio::task::spawn_blocking` and await it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn hangs() {
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let error = Drive::new()?.invoke(hangs).timeout(Duration::from_millis(20)).await.unwrap_err();
    /// assert!(matches!(error, drive_flow::Error::RunTimeout { ref running, .. } if running.len() == 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Measure how long every event takes, for [`Results::stats`] and [`Results::report`]
    /// (their `total`, zero otherwise). Off by default, like tokio's poll-time metrics: it
    /// reads the clock once per event, which costs about as much as the rest of a cheap
    /// event's bookkeeping on some machines. A run started with
    /// [`start_with_events`](Self::start_with_events) is always timed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn nap() {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let drive = Drive::new()?;
    /// let timed = drive.invoke(nap).timed().await?;
    /// assert!(timed.stats(nap).total >= Duration::from_millis(20));
    /// let untimed = drive.invoke(nap).await?;
    /// assert_eq!(untimed.stats(nap).total, Duration::ZERO);
    /// assert_eq!(untimed.stats(nap).runs, 1);            // counts are always kept
    /// # Ok(())
    /// # }
    /// ```
    pub fn timed(mut self) -> Self {
        self.timed = true;
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

    /// Check the run and set up its shared state; nothing runs yet.
    pub(crate) fn prepare(
        self,
        mailbox: bool,
        events: Option<EventSender>,
    ) -> Result<(Arc<Shared>, Start), Error> {
        let graph = self.graph;
        let start = graph
            .resolve(self.start)
            .ok_or_else(|| Error::UnknownEvent {
                event: graph.describe(self.start),
                detail: String::from(" (the start of a run)"),
            })?;
        check_context(
            &graph,
            &self.bodies,
            start,
            self.context.as_ref().map(|(_, id, name)| (*id, *name)),
            mailbox,
        )?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;

        static NEXT_RUN_ID: AtomicU64 = AtomicU64::new(1);
        let run_id = NEXT_RUN_ID.fetch_add(1, Ordering::Relaxed);
        // Fields as OpenTelemetry reads them: see `crate::core::telemetry`.
        let start_name = &graph.node(start).name;
        let span = tracing::info_span!(
            "run",
            otel.name = %format_args!("invoke_workflow {start_name}"),
            gen_ai.operation.name = "invoke_workflow",
            run_id = crate::core::telemetry::otel_int(run_id),
            start = %start_name,
            outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            error.r#type = tracing::field::Empty,
        );
        // An inline run's events all complete in its task, which also triggers what they
        // start: its counters have one writer.
        let writers = if self.inline {
            Writers::One
        } else {
            Writers::Many
        };
        let state = Arc::new(RunState::new(graph.clone(), writers));
        let input = state.start_input(self.input);
        {
            let mut trace = state.trace();
            trace.start = Some(start);
            trace.timed = self.timed || events.is_some();
        }
        let capped = self.max_concurrency != usize::MAX;
        let watched = events.is_some();
        let track = self.timed || watched || self.timeout.is_some() || mailbox;
        // A capped inline run that keeps no entries for its events (nothing waits for
        // outside input, nothing is timed) holds its cap in its task, where all of its
        // events start and complete: see `TaskState::cap`.
        let cap_in_task = capped && self.inline && !track;
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            graph,
            bodies: self.bodies,
            run_id,
            span,
            workers: runtime.metrics().num_workers().max(1),
            runtime,
            context: self.context.map(|(context, _, _)| context),
            cap: self.max_concurrency,
            inline: self.inline,
            max_steps: self.max_steps,
            max_runs: self.max_runs_per_event,
            timeout: self.timeout,
            timed: self.timed || events.is_some(),
            watched,
            parent: self.parent,
            path: self.path.map(|mut path| {
                if let Some(last) = path.last_mut() {
                    last.run_id = run_id;
                }
                RunPath::from(path)
            }),
            track,
            locked: watched || (capped && !cap_in_task),
            cap_in_task,
            state,
            in_flight: AtomicUsize::new(1),
            child_steps: AtomicU64::new(0),
            tasks: Tasks::new(track || !self.inline),
            signal: Signal::default(),
            inline_started: AtomicBool::new(false),
            over: AtomicBool::new(false),
            resume: Notify::new(),
            mailbox: mailbox.then(Mailbox::default),
            inner: Mutex::new(Inner {
                running: 0,
                waiting: 0,
                resuming: 0,
                queue: VecDeque::new(),
                inline: VecDeque::new(),
                outcome: None,
                events,
                spawns: Vec::new(),
            }),
            #[cfg(test)]
            locked_times: AtomicUsize::new(0),
            #[cfg(test)]
            spawn_parts: AtomicUsize::new(0),
        });
        Ok((
            shared,
            Start {
                node: start,
                input,
                cause: 0,
            },
        ))
    }
}

impl<E> Invoke<E> {
    /// The run, once polled (never locked: `&mut self` is exclusive).
    fn running(&mut self) -> &mut Option<Running> {
        self.running
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Move the run's settings out, for its first poll (what is left is never run).
    fn take_settings(&mut self) -> Invoke<E> {
        Invoke {
            graph: self.graph.clone(),
            bodies: self.bodies.clone(),
            start: self.start,
            event: PhantomData,
            input: std::mem::replace(&mut self.input, EventInput::start()),
            context: self.context.take(),
            max_concurrency: self.max_concurrency,
            inline: self.inline,
            max_steps: self.max_steps,
            max_runs_per_event: self.max_runs_per_event,
            timeout: self.timeout,
            timed: self.timed,
            parent: self.parent.take(),
            path: self.path.take(),
            running: Mutex::new(None),
        }
    }
}

// No `E: Event` bound: an `Invoke` is only made for an event, and a bound here would add a
// second error ("is not a future") to the one `Drive::invoke` reports for a non-event.
impl<E> Future for Invoke<E> {
    type Output = Result<Results, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin`.
        let this = self.get_mut();
        let run = match this.running().take() {
            Some(run) => run,
            None => {
                // Set up inside the runtime that polls it, as `.await` always did.
                let prepared = this.take_settings().prepare(false, None);
                Box::pin(async move {
                    let (shared, start) = prepared?;
                    drive(shared, start).await
                })
            }
        };
        this.running().insert(run).as_mut().poll(cx)
    }
}

/// The run's own task: start the first event, then wait for the end (polling the events
/// themselves with [`Invoke::inline`]), the run's timeout, or a cancellation.
pub(crate) async fn drive(shared: Arc<Shared>, start: Start) -> Result<Results, Error> {
    let _in_flight = crate::core::telemetry::RunInFlight::start();
    let guard = CancelOnDrop(shared.clone());
    let began = Instant::now();
    // Inline events started, polled first by the run's task (kept for its memory): what
    // is left here when the run's task yields is polled when it resumes. Completions of its
    // events, which it polls itself, push what they start here; in a locked run they go
    // through the run's state (`Inner::inline`), and are taken from there. And their
    // outcomes and their joins' states, kept here rather than in the run's cells.
    let mut task = TaskState {
        started: VecDeque::new(),
        expanding: None,
        cap: if shared.cap_in_task {
            shared.cap
        } else {
            usize::MAX
        },
        running: 0,
        cells: TaskCells::default(),
        scratch: Default::default(),
    };
    // The boxes inline events' bodies are made in (see [`EventTask::start_inline`]): the
    // thread's, which the last run or carried event to end here left (a run of a few events
    // then makes none).
    let mut boxes = shared.inline.then(take_call_boxes);
    if shared.inline {
        // With the run's cells: its memory is that of an earlier run's task. And the
        // thread's scratch space (a wide fan-out's starts would grow a new one every run).
        task.cells = shared.state.take_task_cells();
        task.scratch = take_scratch();
        task.started = spare_queue();
    }
    {
        let mut inner = shared.lock();
        // A started run may be cancelled before its task first runs: then nothing starts.
        if !shared.is_over() {
            let now = shared.timed.then_some(began);
            let mut batch = Vec::new();
            let lane = if shared.locked {
                Lane::Locked(&mut inner)
            } else if shared.inline {
                Lane::Task(&mut task.started)
            } else {
                Lane::Plain(&mut batch)
            };
            if let Err(error) = shared.schedule(lane, start, now) {
                shared.close(&mut inner, Err(error));
            }
            shared.unlock(inner, None); // spawns what the locked lane queued
            shared.spawn_all(batch.drain(..), None); // and what the plain lane did
        } else {
            drop(inner);
        }
    }
    let mut deadline = shared
        .timeout
        .map(|after| Box::pin(tokio::time::sleep(after)));
    let mut in_task = InlineEvents::new(&shared);
    let mut ended_in_a_row = 0;
    loop {
        let woken = poll_fn(|cx| loop {
            if shared.signal.take() {
                return Poll::Ready(Woken::Signal);
            }
            if let Some(sleep) = deadline.as_mut() {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woken::Timeout);
                }
            }
            // Inline: events started since the last look are polled first, then one of the
            // events polled before that is ready gets its turn, without leaving this loop
            // (and its lock-free checks) for each one that ends. Both each time round, so
            // that a loop of events that end at once does not starve those that wait.
            let mut progressed = false;
            // (Only a locked run's completions hand starts over through the run's state.)
            let handed = || shared.locked && shared.inline_started.swap(false, Ordering::Acquire);
            let queued = !task.started.is_empty() || task.expanding.is_some();
            if task.running < task.cap && (queued || handed()) {
                if !queued {
                    std::mem::swap(&mut shared.lock().inline, &mut task.started);
                }
                let budget = INLINE_BUDGET.saturating_sub(ended_in_a_row);
                let boxes = boxes.get_or_insert_with(Box::default);
                ended_in_a_row += start_inline(&shared, &mut task, boxes, &mut in_task, budget, cx);
                progressed = true;
            }
            if !in_task.is_empty() {
                if let Poll::Ready(ended) = in_task.poll_next(cx) {
                    if let Some(Some(mut ended)) = ended {
                        shared.complete(ended.lend(), &mut task);
                    }
                    ended_in_a_row += 1;
                    progressed = true;
                }
            }
            if !progressed {
                if shared.locked && shared.inline_started.load(Ordering::Acquire) {
                    continue;
                }
                // Going pending: only now does the signal need this task's waker.
                return shared.signal.poll(cx).map(|()| Woken::Signal);
            }
            // Give the runtime its turn now and then (its timers, other tasks): a loop of
            // inline events could otherwise keep this task busy for ever.
            if ended_in_a_row >= INLINE_BUDGET {
                ended_in_a_row = 0;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        })
        .await;
        let timed_out = woken == Woken::Timeout;
        let ended = {
            let mut inner = shared.lock();
            if timed_out {
                deadline = None;
                if inner.outcome.is_none() {
                    let running = shared
                        .tasks
                        .nodes()
                        .into_iter()
                        .map(|node| shared.graph.node(node).name.to_string())
                        .collect();
                    let after = shared.timeout.unwrap_or_default();
                    shared.close(&mut inner, Err(Error::RunTimeout { after, running }));
                }
            }
            inner.outcome.take()
        };
        if let Some(outcome) = ended {
            drop(in_task); // events run inline are cancelled here
            drop(guard); // nothing left to cancel
                         // Cancelled event tasks are not waited for: an aborted task ends at its next
                         // `.await`, and one that blocks its thread (CPU work, blocking I/O) cannot be
                         // pre-empted, so waiting would hold the run's error back for as long as it
                         // blocks. None of them acts on the run any more: the run is over, so their
                         // completions, waits and stream events are ignored (see `Shared::finish`).
            crate::core::telemetry::run_span_ended(&shared.span, &outcome);
            outcome?;
            // Succeeded: no event is in flight any more, nothing writes the state.
            // An inline run's outcomes are kept by its task: its results read them there
            // (and give them back to the state once dropped).
            let kept = shared.inline.then(|| std::mem::take(&mut task.cells));
            let results = Results::new(&shared.state, kept, began.elapsed());
            keep_scratch(task.scratch.0, task.scratch.1);
            keep_spare_queue(task.started);
            if let Some(boxes) = boxes {
                keep_call_boxes(boxes);
            }
            return Ok(results);
        }
    }
}

/// The events a run polls in its own task ([`Invoke::inline`]) that went pending when they
/// were first polled. Dropping them cancels them; a panic in the drop of a cancelled event
/// (a `Drop` of one of its values) is caught and logged, as tokio does for a spawned event:
/// the run reports its own outcome, and the panic does not reach whoever awaits or drops
/// the run.
struct InlineEvents<'run> {
    run: &'run Shared,
    /// Made when the first of them goes pending: most runs have none (their inline events
    /// end at their first poll, or they are spawned), and making it costs two allocations.
    events: Option<FuturesUnordered<InlineEvent<'run>>>,
}

impl<'run> InlineEvents<'run> {
    fn new(run: &'run Shared) -> Self {
        InlineEvents { run, events: None }
    }

    /// Poll it among the others from now on.
    fn push(&mut self, event: EventTask<Boxed>) {
        self.events
            .get_or_insert_with(FuturesUnordered::new)
            .push(InlineEvent {
                run: self.run,
                event,
            });
    }

    fn is_empty(&self) -> bool {
        self.events
            .as_ref()
            .map_or(true, FuturesUnordered::is_empty)
    }

    /// The next of them to end, if one is ready: `None` inside when it was cancelled.
    fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Option<Ended>>> {
        match &mut self.events {
            Some(events) => events.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for InlineEvents<'_> {
    fn drop(&mut self) {
        for event in self.events.take().into_iter().flatten() {
            let name = self.run.graph.node(event.event.node()).name.clone();
            let dropped = std::panic::catch_unwind(AssertUnwindSafe(move || drop(event)));
            if let Err(panic) = dropped {
                tracing::warn!(
                    event = %name,
                    panic = %panic_message(&*panic),
                    "a cancelled event panicked while it was dropped"
                );
            }
        }
    }
}

/// An inline event, polled for its run; its end is returned to the run's task (which
/// completes it), not reported by the event.
struct InlineEvent<'run> {
    run: &'run Shared,
    /// Its body is boxed: it is `Unpin`.
    event: EventTask<Boxed>,
}

impl Future for InlineEvent<'_> {
    type Output = Option<Ended>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Ended>> {
        let this = self.get_mut();
        Pin::new(&mut this.event).poll_for(this.run, cx)
    }
}

/// What the task of an inline run keeps for its events (their completions are made in
/// that task): the events started and not yet polled, and the events' outcomes and joins'
/// states (updated without a lock: the task is their one writer and reader).
struct TaskState {
    /// Admitted and not started yet, in the order they were triggered.
    started: VecDeque<Queued>,
    /// The fan-out being started, taken from the front of `started` (before what is
    /// there): its starts made one by one, where each is started.
    expanding: Option<Listeners>,
    /// How many of the run's events may run at once: its cap, if the task holds it
    /// (`Shared::cap_in_task`; else no limit here: a locked run counts under its lock).
    /// The events of `started` wait in it, first in first out, while `running` is at it:
    /// a capped run's queue, kept where its events start and end, without a lock.
    cap: usize,
    /// Events started from `started` and not ended (polled once, or among those the
    /// run's task polls).
    running: usize,
    cells: TaskCells,
    /// Scratch space for a goto's targets, and for what a completion of a locked run
    /// starts (an unlocked run's completions make their starts in `started`).
    scratch: (Vec<Start>, Vec<NodeId>),
}

/// What waits in an inline run's task queue to start: one start (with its entry among the
/// run's tasks, if it has one yet), or the listeners of a wide fan-out's root, which are
/// started one by one from it (see [`Listeners`]). Its tag in a word of its own, then the
/// start, then its entry (`repr(u64)`): laid out by Rust, the tag shared the first word of
/// the start's input, and a start popped from the queue was copied to the stack in 16-byte
/// pieces from its second word, then read back as its input in pieces from its first: each
/// read straddled two of the stores that had just written it (a store forwarding stall,
/// 4 % of the inline goto loop's time on a Zen 3). Both now begin after the tag.
#[repr(u64)]
enum Queued {
    Start(Start, usize),
    Listeners(Listeners),
}

impl TaskState {
    /// The next start of the fan-out being started, if one is, and whether more are left.
    #[inline]
    fn next_listener(&mut self, graph: &Graph) -> Option<(Start, bool)> {
        let listeners = self.expanding.as_mut()?;
        let start = listeners.next_start(graph);
        let more = listeners.len() > 0;
        if !more {
            self.expanding = None;
        }
        start.map(|start| (start, more))
    }
}

/// The queue of an inline run's task takes the starts of a completion in its place, each
/// without an entry among the run's tasks yet (`Shared::complete` admits it there). Made
/// on the stack and copied by `push_back`, inlined: the nineteenth round made it in its
/// slot (`extend` of `iter::once_with`, out of line, 46 instructions more per event) to
/// spare a store forwarding stall on the copy, which the twentieth round no longer sees in
/// time (the inline chain 65 → 61 ns per event back on `push_back`, on a Zen 3). Still one
/// copy fewer than making it in a list first.
impl Starts for VecDeque<Queued> {
    #[inline]
    fn push_with(&mut self, make: impl FnOnce() -> Start) {
        self.push_back(Queued::Start(make(), UNTRACKED));
    }
}

/// What a completion of a spawning run that is not locked spawns once it is done: on its
/// stack for the one or two events most completions start (no buffer taken from the thread
/// and given back), spilled to the heap by a wider fan-out.
type Batch = SmallVec<[(usize, Start); 2]>;

/// A [`Batch`] takes the starts in their place (see `Shared::complete_shared`), each
/// without an entry among the run's tasks yet: made in a list first and moved to the
/// batch one by one, each start was copied twice more.
impl Starts for Batch {
    #[inline]
    fn push_with(&mut self, make: impl FnOnce() -> Start) {
        self.push((UNTRACKED, make()));
    }
}

/// The queue of a capped run (under its lock) takes the starts of a completion in its
/// place, for `Shared::fill` to start as the cap lets (see `Shared::complete`).
impl Starts for VecDeque<Start> {
    #[inline]
    fn push_with(&mut self, make: impl FnOnce() -> Start) {
        self.push_back(make());
    }
}

/// How many inline events may end in a row before the run's task yields to the runtime.
const INLINE_BUDGET: u32 = 128;

/// Start the inline events at the front of `task.started`: each is polled once, here in
/// the run's task, and only one that goes pending takes a place among the events the run
/// polls (most end at once, and a place costs an allocation). One that ends is completed
/// here (its outcome kept in `task`), and what it starts is queued at the back of
/// `task.started` (never polled from inside the completion): started in this call too,
/// after those that were there, if no event waits in `in_task`; else in a later call (the
/// events that wait get their turn in between). It stops once `budget` of them have
/// ended: the rest wait until the run's task has yielded (a wide fan-out does not keep
/// the thread).
/// Once the run is over, those left are dropped unpolled, as the run drops those it had
/// not polled yet. How many ended.
fn start_inline<'run>(
    shared: &'run Arc<Shared>,
    task: &mut TaskState,
    boxes: &mut CallBoxes,
    in_task: &mut InlineEvents<'run>,
    budget: u32,
    cx: &mut std::task::Context<'_>,
) -> u32 {
    let mut ended = 0;
    let mut left = task.started.len() + usize::from(task.expanding.is_some());
    loop {
        if left == 0 {
            // Those started since go on at once, unless events wait for their turn (a
            // chain or a loop of events that end at once runs here, not through the run's
            // task's round of checks each time: the budget bounds it the same).
            if !in_task.is_empty() {
                break;
            }
            left = task.started.len() + usize::from(task.expanding.is_some());
            if left == 0 {
                break;
            }
        }
        left -= 1;
        if ended >= budget || task.running >= task.cap {
            break;
        }
        // Start one event: each of the two places below has its own copy (merged into one
        // place, a start taken off the queue was copied twice more on its way to it).
        macro_rules! start_one {
            ($key:expr, $start:expr) => {{
                let (key, start): (usize, Start) = ($key, $start);
                if shared.is_over() {
                    task.started.clear();
                    task.expanding = None;
                    break;
                }
                // It holds a slot until its completion (`Shared::complete`).
                task.running += 1;
                // An inline event's body is boxed: one that goes pending moves into
                // `in_task` with its box (which polls it again, leaving its own waker).
                // One that ends is completed here, its outcome kept in `task`.
                let first = EventTask::<Boxed>::start_inline(
                    &**shared,
                    boxes,
                    key,
                    start.node,
                    start.input,
                    cx,
                    |done| shared.complete(done, task),
                );
                match first {
                    FirstPoll::Ended => ended += 1,
                    FirstPoll::Pending(event) => in_task.push(event),
                }
            }};
        }
        // The next of the fan-out being started, if one is (an entry of the queue, counted
        // in `left` once, when its last one starts).
        if let Some((start, more)) = task.next_listener(&shared.graph) {
            left += usize::from(more);
            start_one!(UNTRACKED, start);
            continue;
        }
        match task.started.pop_front() {
            None => break,
            Some(Queued::Start(start, key)) => start_one!(key, start),
            // A fan-out's listeners: started from `task.expanding`, from the next turn.
            Some(Queued::Listeners(listeners)) => {
                task.expanding = Some(listeners);
                left += 1;
            }
        }
    }
    ended
}

/// Why the run's own task woke up.
#[derive(PartialEq, Eq)]
enum Woken {
    /// [`Shared::close`] or an outside wake-up: see whether the run is over.
    Signal,
    /// The run's timeout.
    Timeout,
}

/// Refuse a run whose context does not fit an event it can reach through its groups, or
/// that reaches an event taking an [`Inbox`](crate::Inbox) without a mailbox. Goto targets
/// outside that reach are checked when they are called.
fn check_context(
    graph: &Graph,
    bodies: &[Body],
    start: NodeId,
    context: Option<(TypeId, &'static str)>,
    mailbox: bool,
) -> Result<(), Error> {
    if !graph.needs_anything {
        return Ok(());
    }
    // What the start reaches, not the whole graph: a set, not a flag per event.
    let mut seen = HashSet::from([start]);
    let mut stack = vec![start];
    while let Some(node) = stack.pop() {
        let info = graph.node(node);
        for need in &bodies[node as usize].needs {
            if !is_checked(need) {
                continue; // its input, a child workflow, an emitter: every run has them
            }
            if is_inbox(need) {
                if !mailbox {
                    return Err(Error::NoInbox {
                        event: info.name.to_string(),
                    });
                }
                continue;
            }
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
            if seen.insert(listener) {
                stack.push(listener);
            }
        }
    }
    Ok(())
}

thread_local! {
    /// A spare buffer per thread for the events to spawn, so that taking a batch out of the
    /// lock, or making one outside it, allocates nothing.
    static SPARE: Cell<Vec<(usize, Start)>> = const { Cell::new(Vec::new()) };
    /// Scratch space per thread for what a completion starts, and for a goto's targets.
    static SCRATCH: Cell<(Vec<Start>, Vec<NodeId>)> = const { Cell::new((Vec::new(), Vec::new())) };
    /// A spare queue per thread for the task of an inline run (its inline events started
    /// and not polled yet), so that a run that starts many at once does not grow a new one.
    static SPARE_QUEUE: Cell<VecDeque<Queued>> = const { Cell::new(VecDeque::new()) };
}

/// What the completions made in a task that starts events in place (a spawned event's task,
/// or a wide batch's part's: see [`Shared::carry_on`]) leave to it.
#[derive(Default)]
struct Carried {
    /// The one event the last completion started, if it started one alone: the task starts
    /// it next, rather than spawning it.
    next: Option<(usize, Start)>,
    /// How many of those completions started nothing: each takes one off the events in
    /// flight, all at once when the task is done with them ([`Shared::end_carried`]). One
    /// shared counter decremented by every such completion was most of what a part of
    /// empty events spent waiting on another core (its cache line went to and fro).
    ended: usize,
}

/// How many events a task carries on in a row before it spawns the next one.
const CARRIED_MAX: u32 = 32;

/// The starts of a wide fan-out's listeners, each made as it is taken
/// ([`Listeners::next_start`]), without an entry among the run's tasks.
struct ListenerStarts<'g> {
    listeners: Listeners,
    graph: &'g Graph,
}

impl<'g> ListenerStarts<'g> {
    fn new(listeners: Listeners, graph: &'g Graph) -> Self {
        ListenerStarts { listeners, graph }
    }
}

impl Iterator for ListenerStarts<'_> {
    type Item = (usize, Start);

    fn next(&mut self) -> Option<(usize, Start)> {
        let start = self.listeners.next_start(self.graph)?;
        Some((UNTRACKED, start))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.listeners.len();
        (len, Some(len))
    }
}

impl ExactSizeIterator for ListenerStarts<'_> {}

thread_local! {
    /// The boxes the events of an inline run, or those carried on in a spawned event's
    /// task (see [`Shared::continue_in_task`]), are made in: the thread's, taken while in
    /// use (by a run, until it ends).
    static CALL_BOXES: Cell<Option<Box<CallBoxes>>> = const { Cell::new(None) };
}

/// The thread's boxes for the bodies of events run in place (see `CALL_BOXES`), or new ones
/// if they are in use.
fn take_call_boxes() -> Box<CallBoxes> {
    CALL_BOXES
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Give the thread its boxes back (see [`take_call_boxes`]).
fn keep_call_boxes(boxes: Box<CallBoxes>) {
    let _ = CALL_BOXES.try_with(|kept| kept.set(Some(boxes)));
}

/// A queue or a scratch list of more starts is freed rather than kept by the thread
/// (about 96 KiB: the run of a fan-out of 10⁵ would keep 10 MiB).
const SPARE_STARTS_MAX: usize = 1024;

/// What the thread keeps in `spare`, taken (`try_with`: a thread being torn down has none,
/// and gets a fresh one).
fn take_spare<T: Default>(spare: &'static std::thread::LocalKey<Cell<T>>) -> T {
    spare.try_with(Cell::take).unwrap_or_default()
}

/// The thread's spare queue for an inline run's task, empty.
fn spare_queue() -> VecDeque<Queued> {
    take_spare(&SPARE_QUEUE)
}

/// Keep `queue`, emptied, as the thread's spare.
fn keep_spare_queue(mut queue: VecDeque<Queued>) {
    queue.clear();
    if queue.capacity() <= SPARE_STARTS_MAX {
        let _ = SPARE_QUEUE.try_with(|spare| spare.replace(queue));
    }
}

/// A batch of at least this many events (a wide fan-out's, started by one completion) is
/// started in parts, each in a task of its own (see [`Shared::spawn_all`]). A narrower one
/// gets a task per event: its events may well be few and long, and each should have a
/// worker of its own at once.
const IN_PLACE_BATCH_MIN: usize = 64;

/// The most events of a wide batch one part takes (fewer on a runtime of many workers: a
/// batch is cut into at least `IN_PLACE_PARTS_PER_WORKER` parts per worker, for every
/// worker to have several to take).
const IN_PLACE_PART_MAX: usize = 16;

/// See [`IN_PLACE_PART_MAX`].
const IN_PLACE_PARTS_PER_WORKER: usize = 4;

/// How long a part's task starts its events in place before it gives each of the rest a task
/// of its own (a part of long events is not made to run one after another).
const IN_PLACE_TIME: Duration = Duration::from_micros(50);

/// A larger spare is freed rather than kept by the thread (a wide fan-out's batch).
const SPARE_MAX: usize = 256;

/// The thread's spare batch, empty.
fn spare_batch() -> Vec<(usize, Start)> {
    take_spare(&SPARE)
}

/// Keep `batch`, emptied, as the thread's spare.
fn keep_spare(mut batch: Vec<(usize, Start)>) {
    batch.clear();
    if batch.capacity() <= SPARE_MAX {
        let _ = SPARE.try_with(|spare| drop_unless_bare(spare.replace(batch)));
    }
}

/// The thread's scratch space for a completion ([`SCRATCH`]), empty.
fn take_scratch() -> (Vec<Start>, Vec<NodeId>) {
    take_spare(&SCRATCH)
}

/// Give the scratch space back to the thread (unless it holds more starts than a thread
/// keeps: a wide fan-out's are freed with their run).
fn keep_scratch(starts: Vec<Start>, goto_targets: Vec<NodeId>) {
    if starts.capacity() > SPARE_STARTS_MAX {
        return;
    }
    let _ = SCRATCH.try_with(|scratch| {
        let (starts, goto_targets) = scratch.replace((starts, goto_targets));
        drop_unless_bare(starts);
        drop_unless_bare(goto_targets);
    });
}

/// Drop a buffer put back in place by its replacement: what `take` left there has no heap
/// (unless a completion nested in this one kept its own), and dropping a bare `Vec` would
/// still be a call per buffer on every completion.
#[inline]
fn drop_unless_bare<T>(buffer: Vec<T>) {
    if buffer.capacity() == 0 {
        std::mem::forget(buffer); // no heap, no elements: nothing to free
    } else {
        drop(buffer);
    }
}

/// Wakes the run's own task: set by [`Shared::close`] and when an event started inline has
/// to be polled. One waiter, so an [`AtomicWaker`] and a flag are enough.
#[derive(Default)]
struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether it was raised since the last call.
    fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }

    /// Ready if raised; else wake `cx` when it is. Call [`take`](Self::take) first when
    /// something else may be ready: registering is then needed only before going pending.
    fn poll(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.take() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.take() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What every event of a run and its handle share.
pub(crate) struct Shared {
    /// Itself, for what [`Host`] gets only `&self` for and must hand an `Arc` of the run
    /// to: the links of a call ([`Inbox`](crate::Inbox), [`Child`](crate::Child),
    /// [`Emitter`](crate::Emitter)) and the attempts of an event with options.
    me: Weak<Shared>,
    graph: Arc<Graph>,
    bodies: Bodies,
    pub(crate) run_id: u64,
    span: tracing::Span,
    pub(crate) runtime: tokio::runtime::Handle,
    /// How many worker threads the runtime has: a wide batch of events is cut into parts
    /// for each of them to take several (see [`spawn_all`](Self::spawn_all)).
    workers: usize,
    context: Option<AnyContext>,
    cap: usize,
    /// Run events inside the run's task ([`Invoke::inline`]).
    inline: bool,
    max_steps: u64,
    max_runs: u32,
    timeout: Option<Duration>,
    /// Read the clock for every event ([`Invoke::timed`]).
    timed: bool,
    /// The run has a live stream: its calls get an [`Emitter`](crate::Emitter) link.
    watched: bool,
    /// For a child workflow: the run of the event that runs it, charged for every event
    /// run this one triggers.
    parent: Option<Arc<Shared>>,
    /// For a child workflow: the events that ran it, on every item of its stream.
    path: Option<RunPath>,
    /// Give every event an entry in `tasks` from its start (else only a spawned event that
    /// goes pending gets one): the run is watched, timed, has a timeout or a mailbox.
    track: bool,
    /// Completions take the run's lock (`inner`): the run is capped (its queue), unless
    /// its task holds its cap (`cap_in_task`), or watched (its stream is ordered under the
    /// lock). Otherwise a completion shares no lock with the others but the cells of its
    /// event and of the joins it is a member of (an inline run's completions are made in
    /// the run's task, which queues what they start itself).
    locked: bool,
    /// A capped inline run whose task holds its cap ([`TaskState::cap`]): it is not
    /// tracked, so none of its events waits for outside input, which would give its slot
    /// back from elsewhere.
    cap_in_task: bool,
    /// The dispatch state, shared by the threads that complete events.
    /// (Shared with the results of an inline run, which read its outcomes in place.)
    state: Arc<RunState>,
    /// Events triggered and not ended (queued, running or waiting): the run succeeds when
    /// it falls to 0. A completion that starts one event leaves it alone. Updated by the
    /// state's [writers](RunState::writers), as its counters are.
    in_flight: AtomicUsize,
    /// Event runs triggered by this run's child workflows (its own are its task ids), charged
    /// to its budget.
    child_steps: AtomicU64,
    /// Entries of the events in flight.
    tasks: Tasks,
    signal: Signal,
    /// Inline events were started under the lock (a locked inline run) since the run's task
    /// last took them in. Set only while the run's task polls its events, or before it
    /// first runs: it needs no wake-up.
    inline_started: AtomicBool,
    /// Set (under the lock) when the run is over: a spawned event checks it each time it is
    /// polled, and ends at once, dropping its body, when it is set (its cancellation).
    over: AtomicBool,
    /// Wakes events that got their input and wait for a concurrency slot again.
    pub(crate) resume: Notify,
    /// Values sent from outside; only runs with a [`RunHandle`] have one.
    pub(crate) mailbox: Option<Mailbox>,
    inner: Mutex<Inner>,
    /// How many times the run's lock was taken (tests).
    #[cfg(test)]
    locked_times: AtomicUsize,
    /// How many parts of wide batches were handed to tasks to start in place (tests).
    #[cfg(test)]
    spawn_parts: AtomicUsize,
}

/// What completions of a [locked](Shared::locked) run, and every run's rarer steps (its
/// end, waits for outside input), do under the run's lock.
struct Inner {
    /// Events holding a concurrency slot (counted in a locked run only).
    running: usize,
    /// Events waiting for outside input, without a slot (until they get one back; counted
    /// in a locked run only).
    waiting: usize,
    /// Of those, events that got their input and wait for a slot; they go before `queue`.
    resuming: usize,
    queue: VecDeque<Start>,
    /// Events to start inside the run's task ([`Invoke::inline`]), with their task keys,
    /// started under the lock (a locked inline run; an unlocked one queues them in its
    /// task).
    inline: VecDeque<Queued>,
    /// Set once: the run is over, successfully or not.
    outcome: Option<Result<(), Error>>,
    /// The live event stream, while someone watches and the run goes on.
    events: Option<EventSender>,
    /// Events whose tasks are to be spawned once the lock is released ([`Shared::unlock`]),
    /// with their task keys.
    spawns: Vec<(usize, Start)>,
}

/// The lane of a step that starts events: under the run's lock (queued for a spawn once it
/// is released, or for the run's task in an inline run), outside any lock (into the
/// caller's batch, to spawn), or straight into the queue of the run's task (an inline run
/// that is not locked: its events complete in that task).
enum Lane<'a> {
    Locked(&'a mut Inner),
    Plain(&'a mut Vec<(usize, Start)>),
    Task(&'a mut VecDeque<Queued>),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        #[cfg(test)]
        self.locked_times.fetch_add(1, Ordering::Relaxed);
        crate::core::lock::lock(&self.inner)
    }

    fn emit(&self, inner: &Inner, node: NodeId, task_id: u64, kind: impl FnOnce() -> RunEventKind) {
        if let Some(events) = &inner.events {
            let _ = events.send(RunEvent {
                event: self.graph.node(node).name.clone(),
                task_id,
                kind: kind(),
                path: self.path.clone(),
                cause: None,
            });
        }
    }

    /// Whether the run is over (checked without the lock; set under it).
    fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// Count a triggered event against the budgets, then start it or queue it.
    /// `now`: the clock, read once by the caller for every event it starts (the start of
    /// their time in flight), if the run is timed.
    fn schedule(&self, lane: Lane<'_>, start: Start, now: Option<Instant>) -> Result<(), Error> {
        if self.admit(start.node, start.input.task_id)? {
            match lane {
                // Queued events go first: under a cap, events start in the order they were
                // triggered.
                Lane::Locked(inner)
                    if inner.running + inner.resuming >= self.cap || !inner.queue.is_empty() =>
                {
                    inner.queue.push_back(start);
                }
                lane => self.spawn(lane, start, now),
            }
        }
        Ok(())
    }

    /// Count a triggered event against the budgets. `false`: the run is over, and nothing
    /// starts any more.
    #[inline(always)] // (once per start; `#[inline]` left it a call, 15 instructions more)
    fn admit(&self, node: NodeId, task_id: u64) -> Result<bool, Error> {
        if self.is_over() {
            return Ok(false);
        }
        let too_many_steps = |limit| {
            let (node, runs) = self.state.most_triggered().unwrap_or((node, 0));
            Error::TooManySteps {
                limit,
                event: self.graph.node(node).name.to_string(),
                runs,
            }
        };
        // Its task id is its step: the run's starts are numbered as they are triggered (one
        // counter shared by completions, not two).
        let step = task_id;
        if step.saturating_add(self.child_steps.load(Ordering::Relaxed)) > self.max_steps {
            return Err(too_many_steps(self.max_steps));
        }
        if let Some(parent) = &self.parent {
            parent.charge_step().map_err(too_many_steps)?;
        }
        let runs = self.state.trigger(node);
        if runs >= self.max_runs {
            return Err(Error::TooManyRuns {
                event: self.graph.node(node).name.to_string(),
                runs,
                limit: self.max_runs,
            });
        }
        Ok(true)
    }

    /// Admit starts made in their place (an inline run's task queue, a spawning run's
    /// batch), each given its entry among the run's tasks, unless `failed` holds an error
    /// already; the first budget error goes there (those after it stay unadmitted, and the
    /// run closes). Set on the error path only: an `Option<Error>` returned would be copied
    /// whole on every completion (72 bytes, read back right after the callee wrote its tag
    /// alone: a store forwarding stall). `now`: the clock, if the run is timed.
    #[inline]
    fn admit_in_place<'a>(
        &self,
        starts: impl Iterator<Item = &'a mut (usize, Start)>,
        now: Option<Instant>,
        failed: &mut Option<Error>,
    ) {
        if failed.is_some() {
            return;
        }
        for (key, start) in starts {
            match self.admit(start.node, start.input.task_id) {
                Ok(true) => *key = self.task_key(start, now),
                Ok(false) => {}
                Err(error) => {
                    *failed = Some(error);
                    return;
                }
            }
        }
    }

    /// [`admit_in_place`](Self::admit_in_place) for what a completion queued in an inline
    /// run's task: a fan-out's listeners are admitted as each start would be, in order,
    /// without being made (they get no entry among the run's tasks: a run that keeps one
    /// for its events does not queue them so). How many starts they are (0 once `failed`
    /// holds an error: the run closes, and does not count them).
    #[inline(always)] // (on every completion of an inline run)
    fn admit_queued<'a>(
        &self,
        queued: impl Iterator<Item = &'a mut Queued>,
        now: Option<Instant>,
        failed: &mut Option<Error>,
    ) -> usize {
        if failed.is_some() {
            return 0;
        }
        let mut count = 0;
        for queued in queued {
            let admitted = match queued {
                Queued::Start(start, key) => {
                    count += 1;
                    self.admit(start.node, start.input.task_id).map(|admitted| {
                        if admitted {
                            *key = self.task_key(start, now);
                        }
                    })
                }
                Queued::Listeners(listeners) => {
                    count += listeners.len();
                    listeners
                        .admitted(&self.graph)
                        .try_for_each(|(node, task_id)| self.admit(node, task_id).map(drop))
                }
            };
            if let Err(error) = admitted {
                *failed = Some(error);
                return 0;
            }
        }
        count
    }

    /// The key of a started event's entry among the run's tasks, made now if the run keeps
    /// one from the start.
    fn task_key(&self, start: &Start, now: Option<Instant>) -> usize {
        if self.track {
            self.tasks
                .insert(Task::new(start.node, start.input.task_id, now))
        } else {
            UNTRACKED
        }
    }

    /// Start an event: its entry (if the run keeps one from the start), its place in the
    /// batch to spawn (or among the events the run's task polls).
    fn spawn(&self, lane: Lane<'_>, start: Start, now: Option<Instant>) {
        let node = start.node;
        let task_id = start.input.task_id;
        let key = self.task_key(&start, now);
        let batch = match lane {
            Lane::Plain(batch) => batch,
            Lane::Task(queue) => {
                queue.push_back(Queued::Start(start, key));
                return;
            }
            Lane::Locked(inner) => {
                inner.running += 1;
                if let Some(events) = &inner.events {
                    let _ = events.send(RunEvent {
                        event: self.graph.node(node).name.clone(),
                        task_id,
                        kind: RunEventKind::Started,
                        cause: Some(Cause {
                            behavior: start.input.behavior(),
                            group: Arc::from(start.input.group_name_in(&self.graph)),
                            after: (start.cause != 0).then_some(start.cause),
                        }),
                        path: self.path.clone(),
                    });
                }
                if self.inline {
                    // Inline events are polled by the run's task, and cancelled by dropping
                    // them.
                    inner.inline.push_back(Queued::Start(start, key));
                    self.inline_started.store(true, Ordering::Release);
                    return;
                }
                &mut inner.spawns
            }
        };
        // It counts as in flight from here on; its task is spawned once the lock, if any,
        // is released: see `spawn_all`.
        batch.push((key, start));
    }

    /// Release the lock, then spawn the tasks of the events started under it (or give
    /// `carry` the one event started, if it takes it: see [`spawn_all`](Self::spawn_all)).
    fn unlock(self: &Arc<Self>, mut inner: MutexGuard<'_, Inner>, carry: Option<&mut Carried>) {
        if inner.spawns.is_empty() {
            return;
        }
        let mut batch = spare_batch();
        std::mem::swap(&mut inner.spawns, &mut batch);
        drop(inner);
        self.spawn_all(batch.drain(..), carry);
        keep_spare(batch);
    }

    /// Spawn the tasks of `batch` (a drain). A run over in the meantime spawns no more:
    /// those events were cancelled with it. `carry`: the completion of a spawned event,
    /// whose task takes the batch's event if it is the only one, to start it itself (see
    /// [`continue_in_task`](Self::continue_in_task)). Of several, each gets its own task:
    /// one carried on beside others just spawned would keep the last of those in the
    /// thread's LIFO slot, where no other thread steals it, while it runs (a body that
    /// blocks its thread would keep its sibling from starting).
    ///
    /// A wide batch ([`IN_PLACE_BATCH_MIN`] or more: a fan-out) is cut into parts of up to
    /// [`IN_PLACE_PART_MAX`] events, each handed to a task that starts its events in place
    /// ([`start_in_place`](Self::start_in_place)): whichever worker takes a part runs it,
    /// and most small events end at their first poll, without a task of their own (a task
    /// per event was most of what a spawned fan-out's event cost: its allocation, its
    /// scheduling, its list entry). Spawned from a worker, the parts wait in its queue,
    /// where idle workers steal them (but the last one spawned, which tokio keeps in the
    /// worker's LIFO slot, for the worker to run next).
    fn spawn_all(
        self: &Arc<Self>,
        mut batch: impl ExactSizeIterator<Item = (usize, Start)>,
        carry: Option<&mut Carried>,
    ) {
        if let Some(carry) = carry {
            if batch.len() == 1 {
                carry.next = batch.next();
                return;
            }
        }
        let part_len = self.part_len(batch.len());
        if part_len > 1 {
            while batch.len() > 0 {
                if self.is_over() {
                    return; // the rest are dropped with the drain
                }
                let part: Vec<(usize, Start)> = batch.by_ref().take(part_len).collect();
                self.spawn_part(move |run, cx| run.start_in_place(part.into_iter(), cx));
            }
            return;
        }
        for (key, start) in batch {
            if self.is_over() {
                break; // the rest are dropped with the drain
            }
            // Its body spawns it: the task holds the body's own future, unboxed. Not joined:
            // a cancelled event is stopped through `over` and its waker.
            self.bodies[start.node as usize].handler.0.spawn(
                &self.runtime,
                self.clone(),
                key,
                start.node,
                start.input,
            );
        }
    }

    /// How many events of a batch of `len` each part takes ([`spawn_all`](Self::spawn_all)):
    /// 1 or less for a batch whose events each get a task of their own.
    fn part_len(&self, len: usize) -> usize {
        if len < IN_PLACE_BATCH_MIN {
            return 0;
        }
        let per_worker = len / (self.workers * IN_PLACE_PARTS_PER_WORKER);
        per_worker.clamp(1, IN_PLACE_PART_MAX)
    }

    /// Hand a part of a wide batch to a task of its own, which any worker takes, and which
    /// calls `start` once, with the run, when first polled.
    fn spawn_part(
        self: &Arc<Self>,
        start: impl FnOnce(&Arc<Shared>, &mut std::task::Context<'_>) + Send + 'static,
    ) {
        #[cfg(test)]
        self.spawn_parts.fetch_add(1, Ordering::Relaxed);
        let run = self.clone();
        let mut start = Some(start);
        drop(self.runtime.spawn(poll_fn(move |cx| {
            if let Some(start) = start.take() {
                start(&run, cx);
            }
            Poll::Ready(())
        })));
    }

    /// Start the listeners of a wide fan-out's root, admitted already (see
    /// [`fan_out_spawned`](Self::fan_out_spawned)), as [`spawn_all`](Self::spawn_all)
    /// starts a wide batch: in parts, each making the starts of its own listeners, in
    /// parallel (made by the completion, they were all made by one thread before any part
    /// could begin), or each in a task of its own.
    fn spawn_listeners(self: &Arc<Self>, mut listeners: Listeners) {
        let part_len = self.part_len(listeners.len());
        if part_len > 1 {
            while listeners.len() > 0 {
                if self.is_over() {
                    return; // the rest are not started: cancelled with the run
                }
                let part = listeners.split_front(part_len);
                self.spawn_part(move |run, cx| {
                    run.start_in_place(ListenerStarts::new(part, &run.graph), cx);
                });
            }
            return;
        }
        self.spawn_all(ListenerStarts::new(listeners, &self.graph), None);
    }

    /// Start the events of `part` (of a wide batch: see [`spawn_all`](Self::spawn_all)) in
    /// this task (`cx`), one after the other, each as [`continue_in_task`] starts a carried
    /// event: an event that goes pending gets a task of its own there, and the next one
    /// starts. Once the part has run here for [`IN_PLACE_TIME`], or spent the task's tokio
    /// budget, each event left gets a task of its own: long events run side by side on the
    /// runtime's workers, as spawned events do, and the thread's other tasks get their turn.
    ///
    /// [`continue_in_task`]: Self::continue_in_task
    fn start_in_place(
        self: &Arc<Self>,
        mut part: impl ExactSizeIterator<Item = (usize, Start)>,
        cx: &mut std::task::Context<'_>,
    ) {
        let mut boxes = take_call_boxes();
        let mut carried = Carried::default();
        let began = Instant::now();
        let mut done = 0_u32;
        while let Some(next) = part.next() {
            if self.is_over() {
                break; // cancelled with its run, as a spawned one would be
            }
            self.carry_on(&mut boxes, next, cx, &mut carried);
            done += 1;
            // The clock is read after the first two events, then after every fourth (a read
            // per event was 6 % of a part of empty events' time): a long event is seen at
            // once, and short ones make no part run much past its time.
            let look = done <= 2 || done % 4 == 0;
            if part.len() > 0
                && ((look && began.elapsed() >= IN_PLACE_TIME)
                    || !tokio::task::coop::has_budget_remaining())
            {
                self.spawn_all(part, None);
                break;
            }
        }
        keep_call_boxes(boxes);
        self.end_carried(carried);
    }

    /// Start `next`, the one event that the completion of a spawned event started, in that
    /// event's task (`cx`), rather than in a task of its own: see [`carry_on`](Self::carry_on).
    fn continue_in_task(
        self: &Arc<Self>,
        next: (usize, Start),
        cx: &mut std::task::Context<'_>,
        carried: &mut Carried,
    ) {
        let mut boxes = take_call_boxes();
        self.carry_on(&mut boxes, next, cx, carried);
        keep_call_boxes(boxes);
    }

    /// Take the events that the completions made in a task ended without starting any off
    /// the events in flight (see [`Carried::ended`]), and end the run if none is left.
    fn end_carried(&self, carried: Carried) {
        debug_assert!(carried.next.is_none(), "a carried event was left unstarted");
        if carried.ended > 0 {
            let before = self.state.writers().add(
                &self.in_flight,
                carried.ended.wrapping_neg(),
                Ordering::AcqRel,
            );
            if before == carried.ended {
                self.close_locking(Ok(()));
            }
        }
    }

    /// Start `next` in this task (`cx`): its first poll is made here, in a box of `boxes` (the
    /// thread's) that the last event of the same body to end here left (see [`CallBoxes`]).
    /// One that ends then is completed here, and the event that completion starts, if it
    /// starts one alone, is carried on in turn, up to [`CARRIED_MAX`] in a row, or until the
    /// task's tokio budget is spent (the next one is then spawned: the thread's other tasks
    /// get their turn). One that goes pending gets a task of its own, which polls it again
    /// (so that it leaves that task's waker where it waits). A chain of events, a loop, or
    /// the last member of a join to end saves a task per event this way: no allocation, no
    /// scheduling. (Spawned, it would most often have run on this thread next anyway: a
    /// task spawned from a worker thread goes to its LIFO slot.)
    ///
    /// The completions made here count the events they end in `carried`, and leave it the
    /// event to carry on; the caller takes the ended ones off the events in flight
    /// ([`end_carried`](Self::end_carried)).
    fn carry_on(
        self: &Arc<Self>,
        boxes: &mut CallBoxes,
        next: (usize, Start),
        cx: &mut std::task::Context<'_>,
        carried: &mut Carried,
    ) {
        carried.next = Some(next);
        let mut in_a_row = 0;
        while let Some((key, start)) = carried.next.take() {
            if self.is_over() {
                break; // cancelled with its run, as a spawned one would be
            }
            if in_a_row == CARRIED_MAX || !tokio::task::coop::has_budget_remaining() {
                self.spawn_all(std::iter::once((key, start)), None);
                break;
            }
            in_a_row += 1;
            let started = EventTask::start_inline(
                &**self,
                boxes,
                key,
                start.node,
                start.input,
                cx,
                |ended| self.complete_shared(ended, None, Some(carried)),
            );
            if let FirstPoll::Pending(event) = started {
                let host: Arc<dyn Host> = self.clone();
                drop(self.runtime.spawn(Spawned::started(host, event)));
            }
        }
    }

    /// Give free slots to events back from waiting first, then to queued events.
    fn fill(&self, inner: &mut Inner, now: impl Fn() -> Option<Instant>) {
        if inner.resuming > 0 {
            let free = self.cap.saturating_sub(inner.running);
            for _ in 0..free.min(inner.resuming) {
                self.resume.notify_one();
            }
        }
        while inner.running + inner.resuming < self.cap {
            let Some(start) = inner.queue.pop_front() else {
                break;
            };
            self.spawn(Lane::Locked(inner), start, now());
        }
    }

    /// The call of one event: its input, and the context, inbox, child runs and emitter it
    /// takes.
    fn new_call(&self, key: usize, node: NodeId, input: BareInput) -> Call {
        let takes = self.bodies[node as usize].takes;
        let input = self.body_input(node, input);
        let context = takes.context_of(&self.context);
        let inbox = takes.inbox && self.mailbox.is_some();
        let emitter = takes.emitter && self.watched;
        if !(inbox || emitter || takes.child) {
            return Call::new(input, context, None); // most calls: no link to the run
        }
        // A link holds the run: `me` is upgraded only for a call that gets one (an upgrade
        // fails only once the run is dropped, and then no event is polled any more).
        let Some(run) = self.me.upgrade() else {
            return Call::new(input, context, None);
        };
        let call = CallRef {
            key,
            node,
            task_id: input.task_id,
        };
        let links = Links {
            inbox: inbox.then(|| InboxLink {
                host: run.clone(),
                call,
            }),
            child: takes.child.then(|| ChildLink {
                host: run.clone(),
                call,
            }),
            emitter: emitter.then(|| EmitLink { run, key, node }),
        };
        Call::new(input, context, Some(Box::new(links)))
    }

    /// The input of a call of `node`'s body: with the graph, for the input's accessors, only
    /// for a body that takes its input (the dispatch core leaves it out: its count is
    /// shared by every event of the drive).
    #[inline]
    fn body_input(&self, node: NodeId, input: BareInput) -> EventInput {
        let takes = self.bodies[node as usize].takes.input;
        input.with(takes.then(|| self.graph.clone()), 0)
    }

    /// Record how an event of an inline run ended, dispatch its outcome, start what
    /// follows, and end the run when nothing is in flight any more: made in the run's task,
    /// whose state `task` keeps (its queue takes what the completion starts, its cells the
    /// event's outcome and the state of the joins it is a member of). In a run that is not
    /// [locked](Self::locked), no lock is shared with other completions but the cells of
    /// the event and of the joins it is a member of (see `core::dispatch`). (A spawned
    /// event's completion: [`Host::finish`].)
    fn complete(self: &Arc<Self>, ended: EndedRef<'_>, task: &mut TaskState) {
        task.running -= 1; // its slot, if the task holds the run's cap
        if self.locked {
            self.complete_shared(ended, Some(task), None);
        } else {
            self.complete_in_task(ended, task);
        }
    }

    /// Record how an event ended: its entry among the run's tasks, its retries, its run on
    /// a timed run's timeline, its metrics. `ended`: when, if the run is timed. Its task id
    /// and time in flight (zero unless timed), or `None` once the run is over: its counts
    /// are no longer kept (an event woken from its `Inbox` as the run closed ends without
    /// taking its slot back).
    #[inline(always)] // (called on every completion: a call of its own cost a tenth of one)
    fn record_end(
        &self,
        key: usize,
        node: NodeId,
        attempts: u32,
        result: &Attempt,
        ended: Option<Instant>,
    ) -> Option<(u64, Duration)> {
        let task = if key == UNTRACKED {
            None
        } else {
            self.tasks.remove(key)
        };
        if self.is_over() {
            return None;
        }
        let (task_id, elapsed, began) = task.map_or((0, Duration::ZERO, None), |task| {
            let elapsed = match (ended, task.began) {
                (Some(ended), Some(began)) => ended.saturating_duration_since(began),
                _ => Duration::ZERO,
            };
            (task.task_id, elapsed, task.began)
        });
        if attempts > 1 {
            // Its attempts are its completions and its retries (see `NodeCell::retries`).
            let cell = self.state.event(node);
            cell.retries.fetch_add(attempts - 1, Ordering::Relaxed);
        }
        // A timed run's event runs, for its Gantt chart and its events' times in flight.
        if let (Some(began), Some(ended)) = (began, ended) {
            self.state.trace().timed_run(node, task_id, began, ended);
        }
        let ending = crate::core::telemetry::Ending::of(result);
        let event = self.graph.node(node);
        crate::core::telemetry::event_ended(
            &event.metrics,
            &event.name,
            ending,
            self.timed.then_some(elapsed),
        );
        Some((task_id, elapsed))
    }

    /// Count what a completion started as in flight (counted before any of them can end:
    /// they are spawned or polled after this; the first takes the place of the event that
    /// ended). Whether that event was the last one in flight: it started nothing, and
    /// nothing else is in flight, so the run succeeded.
    #[inline]
    fn count_started(&self, count: usize) -> bool {
        let writers = self.state.writers();
        if count > 1 {
            writers.add(&self.in_flight, count - 1, Ordering::Relaxed);
        }
        count == 0 && writers.add(&self.in_flight, 1_usize.wrapping_neg(), Ordering::AcqRel) == 1
    }

    /// The completion of an inline event of a run that is not locked, made in the run's
    /// task: what it starts is made in the task's queue, in its place, and admitted there
    /// (made on the side and moved, each start would be copied once more, and a wide
    /// fan-out held twice); its outcome and its joins' states are kept by the task. No lock
    /// is taken but to close the run. The run is not watched (a watched run is locked): no
    /// start's cause is read.
    fn complete_in_task(&self, ended: EndedRef<'_>, task: &mut TaskState) {
        let Ended {
            key,
            node,
            attempts,
            result,
        } = ended;
        // The one clock read of a timed event: its end, and the start of what it triggers.
        let now = self.timed.then(Instant::now);
        if self.record_end(key, node, attempts, result, now).is_none() {
            return;
        }
        // A wide fan-out's root: its listeners queued as one (not in a run that keeps an
        // entry for each of its events: each would need its own now). Its outcome lent, not
        // moved: moved, it was copied on every completion, on the way to either call.
        if self.graph.fans_out[node as usize] && !self.track {
            return self.complete_fan_out(node, result, task, now);
        }
        // Lent where it lies (see `core::dispatch::complete`).
        let Ok(flow) = result else {
            if let Err(error) = std::mem::replace(result, Ok(Flow::Abort)) {
                self.close_locking(Err(error));
            }
            return;
        };
        self.dispatch_in_task(node, flow, task, now);
    }

    /// Dispatch the outcome of an inline event that ended (see
    /// [`complete_in_task`](Self::complete_in_task)), start what follows and end the run
    /// when nothing is in flight any more.
    #[inline(always)]
    fn dispatch_in_task(
        &self,
        node: NodeId,
        flow: &mut ErasedFlow,
        task: &mut TaskState,
        now: Option<Instant>,
    ) {
        let queue = &mut task.started;
        let from = queue.len();
        // The first error, if any: the starts after it stay in the queue unadmitted (the
        // run closes, and its task drops them unpolled).
        let mut failed = self
            .state
            .complete(
                node,
                flow,
                queue,
                &mut task.scratch.1,
                Some(&mut task.cells),
            )
            .err();
        let count = match queue.len() - from {
            0 => 0,
            // The common case, a chain's: the back of the queue (its range's two slices
            // cost more to find than one start to admit).
            1 => self.admit_queued(queue.back_mut().into_iter(), now, &mut failed),
            _ => self.admit_queued(queue.range_mut(from..), now, &mut failed),
        };
        if let Some(error) = failed {
            return self.close_locking(Err(error));
        }
        if self.count_started(count) {
            self.close_locking(Ok(()));
        }
    }

    /// [`complete_in_task`](Self::complete_in_task) for a wide fan-out's root: a value has
    /// its listeners queued as one, admitted as each start would be; a goto or an abort is
    /// dispatched as any other. Out of line: a completion that starts a few events keeps
    /// its registers.
    #[cold]
    #[inline(never)]
    fn complete_fan_out(
        &self,
        node: NodeId,
        result: &mut Attempt,
        task: &mut TaskState,
        now: Option<Instant>,
    ) {
        let value = match std::mem::replace(result, Ok(Flow::Abort)) {
            Ok(Flow::Value(value)) => value,
            Ok(mut flow) => return self.dispatch_in_task(node, &mut flow, task, now),
            Err(error) => return self.close_locking(Err(error)),
        };
        let listeners = self
            .state
            .complete_fan_out(node, value, Some(&mut task.cells));
        task.started.push_back(Queued::Listeners(listeners));
        let mut failed = None;
        let count = self.admit_queued(task.started.back_mut().into_iter(), now, &mut failed);
        if let Some(error) = failed {
            return self.close_locking(Err(error));
        }
        if self.count_started(count) {
            self.close_locking(Ok(()));
        }
    }

    /// End the run with `outcome`, taking its lock, unless it is over already.
    #[cold]
    fn close_locking(&self, outcome: Result<(), Error>) {
        let mut inner = self.lock();
        if !self.is_over() {
            self.close(&mut inner, outcome);
        }
    }

    /// The completion of a spawned event, or of an inline event of a locked run (see
    /// [`complete`](Self::complete)). `carry`: a spawned event's completion made in its
    /// task, which takes the event the completion starts, if it starts one alone, rather
    /// than spawning it.
    fn complete_shared(
        self: &Arc<Self>,
        ended: EndedRef<'_>,
        kept: Option<&mut TaskState>,
        carry: Option<&mut Carried>,
    ) {
        let Ended {
            key,
            node,
            attempts,
            result,
        } = ended;
        // The one clock read of a timed event: its end, and the start of what it triggers.
        let now = self.timed.then(Instant::now);
        let Some((task_id, elapsed)) = self.record_end(key, node, attempts, result, now) else {
            return;
        };
        // A wide fan-out's root that produced a value, in a run that spawns its events and
        // keeps no entry for them (one that locks or runs inline dispatches it below).
        if !self.locked && !self.inline && !self.track && self.graph.fans_out[node as usize] {
            if let Ok(Flow::Value(value)) = result {
                return self.fan_out_spawned(node, std::mem::replace(value, AnyValue::UNIT));
            }
        }
        // What the task of a locked inline run keeps: its outcomes, joins and scratch space.
        let (cells, kept_scratch) = match kept {
            Some(kept) if self.inline => (Some(&mut kept.cells), Some(&mut kept.scratch)),
            _ => (None, None),
        };
        // A locked run's completions share its lock; an inline run's (whose completions
        // are made in its task, except a locked one's) would.
        let mut guard = (self.locked || self.inline).then(|| self.lock());
        if let Some(inner) = guard.as_deref_mut() {
            if self.is_over() {
                return; // closed meanwhile
            }
            if self.locked {
                inner.running -= 1;
            }
        }
        // Lent where it lies (see `core::dispatch::complete`).
        let Ok(flow) = result else {
            if let Err(error) = std::mem::replace(result, Ok(Flow::Abort)) {
                let mut inner = guard.unwrap_or_else(|| self.lock());
                self.emit(&inner, node, task_id, || RunEventKind::Failed {
                    error: error.to_string(),
                });
                self.close(&mut inner, Err(error));
            }
            return;
        };
        if let Some(inner) = guard.as_deref() {
            self.emit(inner, node, task_id, || RunEventKind::Finished {
                outcome: match flow {
                    Flow::Value(_) => OutcomeKind::Value,
                    Flow::Goto { .. } => OutcomeKind::Goto,
                    Flow::Abort => OutcomeKind::Abort,
                },
                elapsed,
            });
        }
        // The run's task's scratch space, or the thread's: taken only by a goto (for its
        // targets) or a watched run's completion (for its starts); the others make their
        // starts where they wait, and an empty list allocates nothing.
        let mut taken = None;
        let scratch = self.watched || matches!(flow, Flow::Goto { .. });
        // The plain lane's batch of events to spawn, if the completion takes that lane.
        let mut batch = None;
        let (starts, goto_targets) = match kept_scratch {
            Some((starts, goto_targets)) => (starts, goto_targets),
            None => {
                let (starts, goto_targets) = taken.insert(if scratch {
                    take_scratch()
                } else {
                    (Vec::new(), Vec::new())
                });
                (starts, goto_targets)
            }
        };
        // The first error, if any (stops what is left from starting). Kept as an `Option`
        // set on the error path only: a `Result<(), Error>` copied whole on every
        // completion (`let mut scheduled = completed`) read its 72 bytes back right after
        // the callee had written the `Ok` tag alone, and stalled on it (a store forwarding
        // stall: ~6 % of an inline chain's time on an AMD EPYC, Zen).
        let mut failed;
        let count;
        match guard.as_deref_mut() {
            // A capped run that is not watched: made in the run's queue, in place, under
            // the lock, and admitted there; `fill` below then starts as many as the cap
            // lets, first in first out, as `schedule` would have one by one (queued events
            // go first). A watched run schedules each start: its stream reports each one
            // started before a budget error, as it happened.
            Some(inner) if !self.watched => {
                let from = inner.queue.len();
                failed = self
                    .state
                    .complete(node, flow, &mut inner.queue, goto_targets, cells)
                    .err();
                count = inner.queue.len() - from;
                for start in inner.queue.range(from..) {
                    if failed.is_some() {
                        break;
                    }
                    if let Err(error) = self.admit(start.node, start.input.task_id) {
                        failed = Some(error);
                    }
                }
            }
            // A spawning run that is not locked (neither capped nor watched): made in the
            // batch to spawn, in place, and admitted there. Those after an error are not
            // spawned: the run closes below. (Admitted as not started, a start is not
            // spawned either: the run is over, and `spawn_all` spawns nothing then.)
            None => {
                let batch = batch.insert(Batch::new());
                failed = self
                    .state
                    .complete(node, flow, batch, goto_targets, cells)
                    .err();
                count = batch.len();
                self.admit_in_place(batch.iter_mut(), now, &mut failed);
            }
            // A watched run: each start scheduled in turn, its cause noted (its stream
            // reports each one started before a budget error, as it happened).
            Some(inner) => {
                failed = self
                    .state
                    .complete(node, flow, starts, goto_targets, cells)
                    .err();
                count = starts.len();
                for mut start in starts.drain(..) {
                    // Only the live stream reads it (an event's `Started` says what caused
                    // it).
                    start.cause = task_id;
                    if failed.is_none() {
                        if let Err(error) = self.schedule(Lane::Locked(inner), start, now) {
                            failed = Some(error);
                        }
                    }
                }
            }
        }
        if let Some((starts, goto_targets)) = taken {
            if scratch {
                keep_scratch(starts, goto_targets);
            } else {
                drop_unless_bare(starts);
                drop_unless_bare(goto_targets);
            }
        }
        if let Some(error) = failed {
            let mut inner = guard.unwrap_or_else(|| self.lock());
            self.close(&mut inner, Err(error));
            return;
        }
        if let Some(inner) = guard.as_deref_mut() {
            self.fill(inner, || now);
        }
        // What it started is counted before any of it runs: the locked lane's events are
        // spawned once the lock is released, the plain lane's batch below.
        match (guard, carry) {
            (Some(mut inner), carry) => {
                if self.count_started(count) {
                    self.close(&mut inner, Ok(()));
                }
                self.unlock(inner, carry);
            }
            // Made in a task that starts events in place, and started nothing: that task
            // takes it off the events in flight (see `Carried::ended`).
            (None, Some(carried)) if count == 0 => carried.ended += 1,
            (None, carry) => {
                if self.count_started(count) {
                    self.close_locking(Ok(()));
                }
                // A batch only spawns, drained where it is (moved into an iterator, it was
                // copied whole).
                if let Some(batch) = batch.as_mut() {
                    self.spawn_all(batch.drain(..), carry);
                }
            }
        }
    }

    /// [`complete_shared`](Self::complete_shared) for a wide fan-out's root ([`Graph`]'s
    /// `fans_out`) that produced `value`, in a run that spawns its events and keeps no entry
    /// for them: its outcome recorded and its listeners' task ids taken at once, the
    /// listeners admitted here, in order, as each start would be (the first budget error
    /// ends the run, and none of them starts), then handed out to be started, each part
    /// making the starts of its own ([`spawn_listeners`](Self::spawn_listeners)).
    #[inline(never)]
    fn fan_out_spawned(self: &Arc<Self>, node: NodeId, value: AnyValue) {
        let listeners = self.state.complete_fan_out(node, value, None);
        let admitted = listeners
            .admitted(&self.graph)
            .try_for_each(|(node, task_id)| self.admit(node, task_id).map(drop));
        if let Err(error) = admitted {
            return self.close_locking(Err(error));
        }
        if self.count_started(listeners.len()) {
            self.close_locking(Ok(()));
        }
        self.spawn_listeners(listeners);
    }

    /// End the run: cancel every event still in flight, end the event stream, and wake the
    /// run's task.
    fn close(&self, inner: &mut Inner, outcome: Result<(), Error>) {
        if inner.outcome.is_none() {
            inner.outcome = Some(outcome);
        }
        self.cancel_all(inner);
        self.signal.raise();
    }

    fn cancel_all(&self, inner: &mut Inner) {
        // First: an event that leaves its waker after the entries are drained sees it.
        self.over.store(true, Ordering::Release);
        inner.queue.clear();
        inner.inline.clear();
        inner.spawns.clear();
        if let Some(mailbox) = &self.mailbox {
            mailbox.close(); // every `recv` of the run fails from now on
        }
        // A `recv` (of an `Inbox` kept past its event) waiting for a slot goes on, and ends.
        self.resume.notify_waiters();
        let events = inner.events.take();
        for task in self.tasks.drain() {
            if let Some(waker) = task.waker {
                waker.wake(); // it ends when polled, not waited for: see `drive`
            }
            if let Some(events) = &events {
                let _ = events.send(RunEvent {
                    event: self.graph.node(task.node).name.clone(),
                    task_id: task.task_id,
                    kind: RunEventKind::Cancelled,
                    path: self.path.clone(),
                    cause: None,
                });
            }
        }
    }

    /// Cancel the run from outside ([`RunHandle::cancel`]).
    pub(crate) fn cancel(&self) {
        let mut inner = self.lock();
        if !self.is_over() {
            self.close(&mut inner, Err(Error::Cancelled));
        }
    }

    /// A call starts waiting for outside input: unless another `recv` of the same call
    /// already did, its slot goes to the next in line.
    pub(crate) fn begin_wait(self: &Arc<Self>, call: CallRef, key: &str) {
        let task_id = call.task_id;
        let mut guard = self.lock();
        let inner = &mut *guard;
        if self.is_over() {
            return;
        }
        let release = self.tasks.with(call.key, task_id, |task| {
            task.waits += 1;
            !std::mem::replace(&mut task.released, true)
        });
        let Some(release) = release else {
            return; // an `Inbox` kept past the end of its call: no slot to give back
        };
        self.emit(inner, call.node, task_id, || RunEventKind::Waiting {
            key: key.to_string(),
        });
        // Slots are counted in a locked run only (an unlocked one has no cap).
        if release && self.locked {
            inner.running -= 1;
            inner.waiting += 1;
            self.fill(inner, || self.timed.then(Instant::now));
            if self.inline {
                self.signal.raise(); // the run's task starts what `fill` queued
            }
        }
        self.unlock(guard, None);
    }

    /// A `recv` of the call got its value (`waited`: it still counted among the call's
    /// waits) and the call wants its slot back: true once it holds one again, or needs none
    /// (another `recv` of the call still waits, or the run is over). Else the call is counted
    /// among those waiting for a slot, ahead of queued events, and should try again when
    /// [`Shared::resume`] is notified.
    pub(crate) fn try_resume(
        &self,
        call: CallRef,
        waited: &mut bool,
        registered: &mut bool,
    ) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if self.is_over() {
            return true; // the call is being cancelled anyway
        }
        let full = self.locked && inner.running >= self.cap;
        let acquired = self.tasks.with(call.key, call.task_id, |task| {
            if std::mem::take(waited) {
                task.waits -= 1;
            }
            let acquire = task.waits == 0 && task.released;
            if acquire && full {
                return None; // no slot free: wait for one
            }
            if acquire {
                task.released = false;
            }
            Some(acquire)
        });
        match acquired {
            Some(None) => {
                if !std::mem::replace(registered, true) {
                    inner.resuming += 1;
                }
                return false;
            }
            Some(Some(true)) if self.locked => {
                inner.running += 1;
                inner.waiting -= 1;
            }
            _ => {}
        }
        if std::mem::take(registered) {
            inner.resuming -= 1;
        }
        true
    }

    /// A `recv` was dropped before it was done (the call's timeout, or a `select!`): if it
    /// was the call's last wait, the call takes its slot back at once, even over the cap
    /// (briefly: the call is ending or goes on past the `recv`), so that its end balances
    /// the count.
    pub(crate) fn abandon_wait(&self, call: CallRef, waited: bool, registered: bool) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if self.is_over() {
            return;
        }
        if registered {
            inner.resuming -= 1;
        }
        let reacquired = self.tasks.with(call.key, call.task_id, |task| {
            if waited {
                task.waits -= 1;
            }
            task.waits == 0 && std::mem::take(&mut task.released)
        });
        if reacquired == Some(true) && self.locked {
            inner.running += 1;
            inner.waiting -= 1;
        }
    }
}

impl Shared {
    /// The error of an attempt that did not end with a flow: its body's failure, or its
    /// panic.
    #[cold]
    #[inline(never)]
    fn failure(&self, node: NodeId, failed: Result<CallError, Box<dyn Any + Send>>) -> Error {
        let name = || self.graph.node(node).name.to_string();
        match failed {
            // A child workflow's failure, returned as it came: it names this event already.
            Ok(CallError::Failed(source)) => match source.downcast::<Error>() {
                Ok(error) if matches!(&*error, Error::Child { event, .. } if **event == *self.graph.node(node).name) => {
                    *error
                }
                Ok(error) => Error::Failed {
                    event: name(),
                    source: error,
                },
                Err(source) => Error::Failed {
                    event: name(),
                    source,
                },
            },
            Ok(CallError::Param(ParamError { expected, .. })) if expected == INBOX_PARAM => {
                Error::NoInbox { event: name() }
            }
            Ok(CallError::Param(ParamError { expected, given })) => Error::Context {
                event: name(),
                expected,
                given: String::from(if given {
                    "the run was given a context of another type"
                } else {
                    "the run has no context (give one with `.context(..)`)"
                }),
            },
            Err(panic) => Error::Panicked {
                event: name(),
                message: panic_message(&*panic),
            },
        }
    }

    /// Count one event run of a child workflow against this run's budget (and its
    /// parent's, up the chain); `Err(limit)` when the budget is spent.
    fn charge_step(&self) -> Result<(), u64> {
        if !self.is_over() {
            let charged = self.child_steps.fetch_add(1, Ordering::Relaxed) + 1;
            if charged.saturating_add(self.state.triggered()) > self.max_steps {
                return Err(self.max_steps);
            }
        }
        match &self.parent {
            Some(parent) => parent.charge_step(),
            None => Ok(()),
        }
    }
}

impl ChildHost for Shared {
    /// A child run of the same graph, inside the call of the event that runs it: dropping
    /// the call (however the parent run ends it) drops the child run and cancels its events.
    fn run_child(
        self: Arc<Self>,
        call: CallRef,
        request: ChildRequest,
    ) -> futures::future::BoxFuture<'static, Result<Results, Error>> {
        let parent_event = self.graph.node(call.node).name.clone();
        let child_name = match self.graph.resolve(request.start) {
            Some(node) => self.graph.node(node).name.to_string(),
            None => self.graph.describe(request.start),
        };
        // The parent's live stream, if it is watched: the child's items go there too.
        let events = self.lock().events.clone();
        let mut path: Vec<PathStep> = self.path.as_deref().unwrap_or_default().to_vec();
        path.push(PathStep {
            event: parent_event.clone(),
            task_id: call.task_id,
            run_id: 0, // set by `prepare`
        });
        let context = request.context.or_else(|| {
            self.context.clone().map(|context| {
                let type_id = Any::type_id(&*context);
                (context, type_id, "the parent run's context")
            })
        });
        let invoke = Invoke::<()> {
            graph: self.graph.clone(),
            bodies: self.bodies.clone(),
            start: request.start,
            event: PhantomData,
            input: request.input,
            context,
            max_concurrency: request.max_concurrency,
            inline: false,
            // The parent's budget bounds the child: every step is charged to it.
            max_steps: u64::MAX,
            max_runs_per_event: self.max_runs,
            timeout: None,
            timed: request.timed,
            parent: Some(self),
            path: Some(path),
            running: Mutex::new(None),
        };
        Box::pin(async move {
            let result = match invoke.prepare(false, events) {
                Ok((shared, start)) => drive(shared, start).await,
                Err(error) => Err(error),
            };
            result.map_err(|source| Error::Child {
                event: parent_event.to_string(),
                child: child_name,
                source: Box::new(source),
            })
        })
    }
}

impl EmitSink for Shared {
    /// Put an emitted value on the stream, between the call's `Started` and its end.
    fn emit_item(&self, key: usize, node: NodeId, task_id: u64, item: Emitted) {
        let inner = self.lock();
        if self.is_over() || self.tasks.with(key, task_id, |_| ()).is_none() {
            return;
        }
        self.emit(&inner, node, task_id, || RunEventKind::Emitted(item));
    }
}

/// What an event's task ([`EventTask`]) asks of its run.
impl Host for Shared {
    fn cancelled(&self) -> bool {
        // Inline events are cancelled by the run's task dropping them.
        !self.inline && self.over.load(Ordering::Acquire)
    }

    #[inline(always)]
    fn span(&self, node_id: NodeId, input: &BareInput) -> tracing::Span {
        // Inlined into every start of an event: where no subscriber takes the span, what
        // is left is one test of the level (its fields, the node's name among them, are
        // read only for a span that is taken).
        tracing::info_span!(
            parent: &self.span,
            "event",
            otel.name = %self.graph.node(node_id).name,
            event = %self.graph.node(node_id).name,
            run_id = crate::core::telemetry::otel_int(self.run_id),
            task_id = crate::core::telemetry::otel_int(input.task_id),
            group = %input.group_name_in(&self.graph),
            behavior = ?input.behavior(),
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            error.r#type = tracing::field::Empty,
        )
    }

    fn begin(&self, node: NodeId) -> Begun<'_> {
        match self.graph.node(node).options {
            Some(_) => Begun::Options,
            None => Begun::Call(&*self.bodies[node as usize].handler.0),
        }
    }

    fn call(&self, key: usize, node: NodeId, input: BareInput) -> Call {
        self.new_call(key, node, input)
    }

    fn input(&self, input: BareInput) -> EventInput {
        // Asked only by a body whose parameter is its input: it reads the graph.
        input.with(Some(self.graph.clone()), 0)
    }

    fn attempts(&self, key: usize, node: NodeId, input: BareInput) -> BoxFuture<'static, Attempts> {
        // The attempts hold the run: `me` upgrades while the run is alive (the event's
        // task holds it).
        match (self.me.upgrade(), &self.graph.node(node).options) {
            (Some(shared), Some(options)) => {
                Box::pin(with_options(shared, key, node, input, (**options).clone()))
            }
            _ => Box::pin(async { (0, Err(Error::Cancelled)) }),
        }
    }

    /// What one attempt ended with, as the run sees it: a flow as it came; a failure is
    /// made an error out of the way of every event that succeeds.
    #[inline]
    fn settle(&self, node: NodeId, caught: Caught) -> Result<ErasedFlow, Error> {
        match caught {
            Ok(Ok(flow)) => Ok(flow),
            Ok(Err(failed)) => Err(self.failure(node, Ok(failed))),
            Err(panic) => Err(self.failure(node, Err(panic))),
        }
    }

    /// The first time a spawned event's body goes pending, its waker goes into its entry
    /// of the run's tasks (made now if it has none), for a cancellation to wake it: a run
    /// closed before is seen here, and the event ends at once. Inline events need none.
    fn register(&self, key: &mut usize, node: NodeId, waker: &Waker) -> bool {
        if self.inline {
            return true;
        }
        if *key != UNTRACKED {
            return self.tasks.set_waker(*key, &self.over, waker);
        }
        let mut task = Task::new(node, 0, None);
        task.waker = Some(waker.clone());
        match self.tasks.insert_unless(&self.over, task) {
            Some(made) => {
                *key = made;
                true
            }
            None => false,
        }
    }

    fn finish(self: Arc<Self>, mut ended: Ended, cx: &mut std::task::Context<'_>) {
        let mut carried = Carried::default();
        self.complete_shared(ended.lend(), None, Some(&mut carried));
        if let Some(next) = carried.next.take() {
            self.continue_in_task(next, cx, &mut carried);
        }
        self.end_carried(carried);
    }
}

/// One event with a timeout and/or retries: every attempt gets the same input, and runs in
/// its own `attempt` span.
async fn with_options(
    shared: Arc<Shared>,
    key: usize,
    node_id: NodeId,
    input: BareInput,
    options: EventOptions,
) -> (u32, Result<ErasedFlow, Error>) {
    let node = shared.graph.node(node_id);
    let task_id = input.task_id;
    let mut attempt = 1;
    loop {
        let handler = &shared.bodies[node_id as usize].handler;
        // Each attempt gets the same input (a clone, made only for a body that takes it).
        let mut call = CallOnce::new(|| shared.new_call(key, node_id, input.clone()));
        let body = async { handler.call(CallSource::new(&mut call)).await };
        let caught = AssertUnwindSafe(body).catch_unwind();
        let span = tracing::info_span!("attempt", attempt = i64::from(attempt));
        let result = match options.timeout {
            Some(after) => {
                let deadline = tokio::time::Instant::now() + after;
                let timed_out = || Error::Timeout {
                    event: node.name.to_string(),
                    after,
                };
                match tokio::time::timeout_at(deadline, caught)
                    .instrument(span)
                    .await
                {
                    // An attempt that did not yield until past its deadline (CPU work, a
                    // blocking call) ends before the timer can fire: it timed out all the
                    // same, unless it panicked.
                    Ok(Ok(_)) if tokio::time::Instant::now() > deadline => Err(timed_out()),
                    Ok(caught) => shared.settle(node_id, caught),
                    Err(_) => Err(timed_out()),
                }
            }
            None => shared.settle(node_id, caught.instrument(span).await),
        };
        let error = match result {
            Err(error @ (Error::Failed { .. } | Error::Timeout { .. })) => error,
            other => return (attempt, other),
        };
        if attempt > options.retries {
            if options.retries == 0 {
                return (attempt, Err(error));
            }
            tracing::warn!(attempt, %error, "event failed on its last attempt");
            return (
                attempt,
                Err(Error::RetriesExhausted {
                    event: node.name.to_string(),
                    attempts: attempt,
                    last: Box::new(error),
                }),
            );
        }
        let delay = options.delay_before_retry(attempt);
        tracing::warn!(attempt, ?delay, %error, "event attempt failed; retrying");
        {
            let inner = shared.lock();
            if shared.is_over() {
                // Cancelled while an attempt blocked its thread (no `.await` to stop at):
                // no further attempt, and the run ignores what this one returns.
                return (attempt, Err(error));
            }
            shared.emit(&inner, node_id, task_id, || RunEventKind::Retrying {
                attempt,
                delay,
                error: error.to_string(),
            });
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        attempt += 1;
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
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
        self.0.cancel_all(&mut inner);
    }
}

#[cfg(test)]
mod tests {
    //! What completions share: in a run that is not locked, none of them takes the run's
    //! lock; in a capped run, each does.

    use std::sync::atomic::Ordering;

    use super::{drive, Invoke, Queued};
    use crate::core::event::Handle;
    use crate::core::flow::Flow;
    use crate::core::results::Results;
    use crate::drive::builder::{DriveBuilder, Group};

    #[test]
    fn what_waits_in_an_inline_run_s_queue_is_no_larger_than_a_start_and_its_key() {
        // A start and its key, or a fan-out's listeners in their place, and the tag in a
        // word of its own (72 bytes with the tag in the start's first word: see `Queued`;
        // a wide fan-out waits as one entry, so few starts wait at once).
        assert!(std::mem::size_of::<Queued>() <= 80);
        assert!(std::mem::size_of::<crate::core::dispatch::Listeners>() <= 48);
    }

    #[test]
    fn a_queued_start_begins_after_its_tag_where_a_copy_of_it_begins() {
        // The tag in a word of its own: a start is not laid out around it (see `Queued`).
        let queued = Queued::Start(
            crate::core::dispatch::Start {
                node: 3,
                input: crate::core::input::BareInput::default(),
                cause: 0,
            },
            7,
        );
        let Queued::Start(start, key) = &queued else {
            panic!("a start");
        };
        let at = |field: *const u8| field as usize - (&queued as *const Queued as usize);
        assert_eq!(at((start as *const crate::core::dispatch::Start).cast()), 8);
        assert_eq!(*key, 7);
    }

    #[test]
    fn a_thread_keeps_spare_buffers_for_runs_of_a_thousand_events_started_at_once_not_more() {
        use super::{keep_scratch, keep_spare_queue, spare_queue, take_scratch, SPARE_STARTS_MAX};
        use std::collections::VecDeque;
        // A fresh thread: nothing kept from the tests that ran before on this one.
        std::thread::spawn(|| {
            keep_scratch(Vec::with_capacity(SPARE_STARTS_MAX), Vec::new());
            assert_eq!(take_scratch().0.capacity(), SPARE_STARTS_MAX);
            keep_scratch(Vec::with_capacity(SPARE_STARTS_MAX + 1), Vec::new());
            assert_eq!(
                take_scratch().0.capacity(),
                0,
                "a wide fan-out's starts are freed"
            );
            keep_spare_queue(VecDeque::with_capacity(SPARE_STARTS_MAX));
            assert!(spare_queue().capacity() >= SPARE_STARTS_MAX);
            keep_spare_queue(VecDeque::with_capacity(SPARE_STARTS_MAX + 1));
            assert_eq!(
                spare_queue().capacity(),
                0,
                "a wide fan-out's queue is freed"
            );
        })
        .join()
        .expect("the buffers are kept as they say");
    }

    /// A chain of `n` events after `start`, then a fan-out of `n` branches into a join.
    fn graph(n: usize) -> (crate::Drive, Handle<u32>, Handle<u32>) {
        let mut b = DriveBuilder::new();
        let start = b.event("start", || async { Flow::from(0_u32) });
        let mut last = start;
        for i in 0..n {
            let next = b.event(format!("c{i}"), || async { Flow::from(1_u32) });
            b.listen(next, Group::new([last]));
            last = next;
        }
        let branches: Vec<Handle<u32>> = (0..n)
            .map(|i| {
                let branch = b.event(format!("b{i}"), || async { Flow::from(2_u32) });
                b.listen(branch, Group::new([last]));
                branch
            })
            .collect();
        let join = b.event("join", || async { Flow::from(3_u32) });
        b.listen(join, Group::new(branches));
        (b.build().unwrap(), start, join)
    }

    /// Run `invoke` on a 2-thread runtime: its results, and how many times its lock was
    /// taken.
    fn run(invoke: Invoke<Handle<u32>>) -> (Results, usize) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let (shared, start) = invoke.prepare(false, None).unwrap();
            let results = drive(shared.clone(), start).await.unwrap();
            (results, shared.locked_times.load(Ordering::Relaxed))
        })
    }

    #[test]
    fn completions_of_a_run_that_is_not_locked_never_take_its_lock() {
        let (drive, start, join) = graph(500);
        // 1 002 events: no completion takes the lock. The run takes it 4 times: to start,
        // to close (the last event), to read its outcome, and to drop its cancel guard.
        let (results, taken) = run(drive.invoke(start));
        assert_eq!(results.count(join), 1);
        assert_eq!(taken, 4, "the run's lock was taken {taken} times");
        // Capped: every completion takes it (for the run's queue).
        let (results, taken) = run(drive.invoke(start).max_concurrency(4));
        assert_eq!(results.count(join), 1);
        assert!(taken >= 1_002, "the run's lock was taken {taken} times");
    }

    #[test]
    fn a_wide_fan_out_is_started_in_parts_of_a_size_set_by_the_workers_and_each_event_runs_once() {
        use std::sync::atomic::AtomicU32;
        use std::sync::Arc;

        // A fan-out of 1 000 events (a batch of 1 000 starts from one completion).
        let runs: Arc<Vec<AtomicU32>> = Arc::new((0..1_000).map(|_| AtomicU32::new(0)).collect());
        let mut b = DriveBuilder::new();
        let start = b.event("start", || async { Flow::from(0_u32) });
        let branches: Vec<Handle<()>> = (0..1_000)
            .map(|i| {
                let runs = runs.clone();
                let branch = b.event(format!("b{i}"), move || {
                    runs[i].fetch_add(1, Ordering::Relaxed);
                    async {}
                });
                b.listen(branch, Group::new([start]));
                branch
            })
            .collect();
        let fan_out = b.build().unwrap();
        let parts = |runtime: tokio::runtime::Runtime| {
            for count in runs.iter() {
                count.store(0, Ordering::Relaxed);
            }
            runtime.block_on(async {
                let (shared, first) = fan_out.invoke(start).prepare(false, None).unwrap();
                let results = drive(shared.clone(), first).await.unwrap();
                for (i, branch) in branches.iter().enumerate() {
                    assert_eq!(results.count(*branch), 1, "b{i}");
                    assert_eq!(runs[i].load(Ordering::Relaxed), 1, "b{i} ran once");
                }
                shared.spawn_parts.load(Ordering::Relaxed)
            })
        };
        let workers = |count: usize| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(count)
                .build()
                .unwrap()
        };
        // One thread or two: parts of 16 (at least four parts per worker), the last of 8.
        let one = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(parts(one), 63);
        assert_eq!(parts(workers(2)), 63);
        // 32 workers: parts of 7 (1 000 / (32 × 4)), for each worker to have several.
        assert_eq!(parts(workers(32)), 143);
        // 300 workers: parts of 1 would save nothing: a task per event.
        assert_eq!(parts(workers(300)), 0);
    }

    #[test]
    fn completions_of_an_inline_run_hand_what_they_start_to_its_task_without_its_lock() {
        let (drive, start, join) = graph(500);
        // Its events complete in the run's task, which queues what they start itself: the
        // lock is taken as by a run whose events are spawned.
        let (results, taken) = run(drive.invoke(start).inline());
        assert_eq!(results.count(join), 1);
        assert_eq!(results.count(start), 1);
        assert_eq!(taken, 4, "the run's lock was taken {taken} times");
        // Capped, its task holds the cap (and its queue): no completion takes the lock.
        let (results, taken) = run(drive.invoke(start).inline().max_concurrency(4));
        assert_eq!(results.count(join), 1);
        assert_eq!(results.count(start), 1);
        assert_eq!(taken, 4, "the run's lock was taken {taken} times");
        // Capped and timed, it is locked (its events' entries are made as they start,
        // under the lock): every completion takes it.
        let (results, taken) = run(drive.invoke(start).inline().max_concurrency(4).timed());
        assert_eq!(results.count(join), 1);
        assert!(taken >= 1_002, "the run's lock was taken {taken} times");
    }

    #[test]
    fn only_a_body_that_takes_its_input_holds_a_count_of_the_graph() {
        use std::sync::{Arc, Mutex, OnceLock, Weak};

        use crate::core::graph::Graph;
        use crate::core::input::EventInput;

        /// What a body saw: its name, the graph's strong count while it ran, and (the
        /// reader) the group name and value its input gave.
        type Seen = (&'static str, usize, String, Option<u32>);

        let graph: Arc<OnceLock<Weak<Graph>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let count = {
            let graph = graph.clone();
            move || graph.get().map_or(0, Weak::strong_count)
        };
        let mut b = DriveBuilder::new();
        let start = b.event("start", || async { Flow::from(0_u32) });
        let quiet = b.event("quiet", {
            let (seen, count) = (seen.clone(), count.clone());
            move || {
                let counted = count();
                seen.lock()
                    .unwrap()
                    .push(("quiet", counted, String::new(), None));
                async { Flow::from(1_u32) }
            }
        });
        let reader = b.event("reader", {
            let seen = seen.clone();
            move |input: EventInput| {
                let counted = count();
                let value = input.get(quiet).copied();
                let group = input.group_name().to_string();
                seen.lock().unwrap().push(("reader", counted, group, value));
                async { Flow::from(2_u32) }
            }
        });
        b.listen(quiet, Group::new([start]));
        b.listen(reader, Group::new([quiet]));
        let drive = b.build().unwrap();
        graph.set(Arc::downgrade(&drive.graph)).unwrap();
        for inline in [false, true] {
            seen.lock().unwrap().clear();
            let invoke = drive.invoke(start);
            let (results, _) = run(if inline { invoke.inline() } else { invoke });
            assert_eq!(results.get(reader), Some(&2));
            let seen = seen.lock().unwrap();
            let [("quiet", quiet_count, _, None), ("reader", reader_count, group, value)] =
                &seen[..]
            else {
                panic!("unexpected calls: {seen:?}");
            };
            // The reader's input holds the graph, the quiet event's does not.
            assert_eq!(*reader_count, quiet_count + 1, "inline: {inline}");
            assert_eq!((group.as_str(), *value), ("0", Some(1)));
        }
    }
}
