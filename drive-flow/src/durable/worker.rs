//! [`Worker`]: claims ready events of durable runs, runs their bodies, and commits their
//! outcomes.

use std::any::{Any, TypeId};
use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::drive::{DurableDrive, DurableIndex};
use super::error::DurableError;
use super::inbox::TaskInbox;
use super::leaves::LeafBatches;
use super::queue::Claimed;
use super::store::PgStore;
use super::stored::StoredError;
use super::task_input;
use super::trace_context;
use crate::body::child::CHILD_PARAM;
use crate::body::inbox::{CallRef, InboxLink};
use crate::body::param::{is_context, Call, CallError, CallOnce, CallSource, Links, ParamError};
use crate::core::flow::ErasedFlow;
use crate::core::options::EventOptions;
use crate::{Drive, Error};

type AnyContext = Arc<dyn Any + Send + Sync>;

/// The default lease of a claimed event: renewed every third of it while the event runs;
/// when a worker dies, its events run again elsewhere once their lease expired.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A worker process's loop over durable runs: made by [`Drive::worker`], configured, then
/// [`run`](Self::run).
///
/// It claims ready events of any run of the store (up to its
/// [`concurrency`](Self::concurrency) at once, `FOR UPDATE SKIP LOCKED`, with a lease it
/// renews while the event runs), runs each body with the worker's own
/// [`context`](Self::context), and commits the outcome, the run's join state and the
/// events it triggers in one transaction; the first event a completion starts is handed
/// to the same worker, already claimed, and runs next in the same slot (a chain's events
/// need no claim). Idle, it waits for a `NOTIFY` (and looks every
/// [`poll_interval`](Self::poll_interval) anyway). It leaves events it does not know (an
/// older or newer binary's) to other workers.
///
/// Bodies run **at least once**: a worker that dies mid-event, or loses its lease, has its
/// event run again by another. Give side effects the stable key
/// [`EventInput::task_id`](crate::EventInput::task_id) together with the run's id.
pub struct Worker {
    drive: Drive,
    store: PgStore,
    concurrency: usize,
    context: Option<(AnyContext, TypeId, &'static str)>,
    lease: Duration,
    name: String,
    poll: Duration,
    grace: Duration,
}

impl Drive {
    /// A worker that runs this drive's events of the durable runs in `store` (cargo
    /// feature `postgres`). Configure it, then [`run`](Worker::run) it.
    pub fn worker(&self, store: &PgStore) -> Worker {
        Worker {
            drive: self.clone(),
            store: store.clone(),
            concurrency: 16,
            context: None,
            lease: DEFAULT_LEASE,
            name: default_name(),
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(10),
        }
    }
}

fn default_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| String::from("worker"));
    format!("{host}:{}", std::process::id())
}

impl Worker {
    /// How many events it runs at once (default 16; `0` counts as `1`). Each event holds a
    /// connection of the store's pool while it completes, and the worker one more to
    /// listen: give the pool [`max_connections`](super::PgOptions::max_connections) of at
    /// least `concurrency + 2`, or events wait for connections.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The value its events read as [`Context<T>`](crate::Context): this worker's own
    /// (clients, pools, configuration), not the run's. What a run must remember travels in
    /// its events' outputs.
    pub fn context<T: Send + Sync + 'static>(self, context: T) -> Self {
        self.context_arc(Arc::new(context))
    }

    /// Like [`context`](Self::context), keeping a pointer on the caller's side.
    pub fn context_arc<T: Send + Sync + 'static>(mut self, context: Arc<T>) -> Self {
        self.context = Some((context, TypeId::of::<T>(), std::any::type_name::<T>()));
        self
    }

    /// The lease of a claimed event (default 30 s), renewed every third of it while the
    /// event runs: how long a dead worker's events wait before others take them.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// Its name in the history and the logs (default `HOSTNAME:pid`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How often an idle worker looks for work without a notification (default 1 s): the
    /// fallback when a notification is lost, and the clock of retries with a backoff, of
    /// run deadlines and of taking over expired leases (a dead worker's events run again
    /// within one interval after their lease expired).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// How long a shutdown waits for the events in flight to finish (default 10 s);
    /// those still running then are given back, to run again elsewhere.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Make `T` known by name: the type of a run's input data or of an inbox value that
    /// this binary did not submit or send itself.
    pub fn value_type<T>(self) -> Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        super::values::register_value_type::<T>();
        self
    }

    /// Run until SIGINT (Ctrl-C) or SIGTERM, then shut down gracefully.
    ///
    /// # Errors
    /// As [`run_until`](Self::run_until).
    pub async fn run(self) -> Result<(), DurableError> {
        self.run_until(shutdown_signal()).await
    }

    /// Run until `shutdown` completes: then claim nothing more, let the events in flight
    /// finish within the [`grace`](Self::grace) period, and give back the others.
    ///
    /// # Errors
    /// Before anything runs: [`DurableError::NotSerializable`] for an event whose output
    /// cannot be stored, [`DurableError::NotMigrated`] / [`DurableError::SchemaVersion`]
    /// for a schema that does not fit, [`DurableError::Run`] with
    /// [`Error::Context`](crate::Error::Context) for an event whose `Context<T>` the
    /// worker was not given. Database errors while running are logged and retried with
    /// a backoff (the server may be restarting), not returned.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), DurableError> {
        let index = Arc::new(DurableIndex::new(
            self.drive.graph.clone(),
            self.drive.bodies.clone(),
        )?);
        check_contexts(&index, self.context.as_ref())?;
        self.store.check_version().await?;
        let catalog = self.store.register_catalog(&index.known).await?;
        let shared = Arc::new(WorkerShared {
            drive: DurableDrive {
                store: self.store.clone(),
                index,
            },
            context: self.context.map(|(context, _, _)| context),
            lease: self.lease,
            name: self.name,
            catalog,
            draining: AtomicBool::new(false),
            leaves: LeafBatches::default(),
        });
        tracing::info!(worker = %shared.name, concurrency = self.concurrency, "durable worker started");
        let wake = Arc::new(Notify::new());
        let (ended, _) = broadcast::channel::<i64>(256);
        let listening = tokio::spawn(listen(
            shared.drive.store.clone(),
            wake.clone(),
            ended.clone(),
        ));
        let (stop_sender, stop) = watch::channel(false);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut backoff = Backoff::default();
        let mut last_sweep = tokio::time::Instant::now() - self.poll;
        let mut sweeps: u64 = 0;
        let mut reported: HashSet<String> = HashSet::new();
        tokio::pin!(shutdown);
        loop {
            let free = self.concurrency - in_flight.len();
            let mut full_batch = false;
            // Once per poll interval: expired leases looked for (their scan is the claim's
            // costly part), run deadlines swept.
            let poll_due = last_sweep.elapsed() >= self.poll;
            if free > 0 {
                let claimed = shared
                    .drive
                    .store
                    .claim(&shared.name, &shared.catalog, free, shared.lease, poll_due)
                    .await;
                match claimed {
                    Ok(tasks) => {
                        backoff.reset();
                        full_batch = tasks.len() == free;
                        for task in tasks {
                            in_flight.spawn(run_task(
                                shared.clone(),
                                task,
                                stop.clone(),
                                ended.subscribe(),
                            ));
                        }
                    }
                    Err(error) => {
                        let delay = backoff.next();
                        tracing::warn!(%error, ?delay, "claim failed; trying again");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(delay) => {}
                        }
                        continue;
                    }
                }
            }
            if poll_due {
                last_sweep = tokio::time::Instant::now();
                if let Err(error) = shared.drive.store.sweep_deadlines().await {
                    tracing::warn!(%error, "the sweep of run deadlines failed");
                }
                sweeps += 1;
                if sweeps % UNKNOWN_EVERY == 1 {
                    report_unknown(&shared, &mut reported).await;
                }
            }
            if full_batch && in_flight.len() < self.concurrency {
                continue; // more may be ready
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = wake.notified(), if in_flight.len() < self.concurrency => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
        shared.draining.store(true, Ordering::Release);
        tracing::info!(worker = %shared.name, in_flight = in_flight.len(), "durable worker shutting down");
        listening.abort();
        let finished = tokio::time::timeout(self.grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            // Past the grace period: every event still running gives its task back.
            let _ = stop_sender.send(true);
            while in_flight.join_next().await.is_some() {}
        }
        Ok(())
    }
}

/// How many polls apart a worker looks for ready events it does not know.
const UNKNOWN_EVERY: u64 = 30;

/// Say once per event in the log that ready events of an event this worker does not know
/// wait for other workers (an older or newer binary's events).
async fn report_unknown(shared: &WorkerShared, reported: &mut HashSet<String>) {
    let found: Result<Vec<(String,)>, sqlx::Error> =
        sqlx::query_as(&shared.drive.store.sql().unknown_ready)
            .bind(&shared.catalog)
            .fetch_all(shared.drive.store.pool())
            .await;
    for (event,) in found.unwrap_or_default() {
        if reported.insert(event.clone()) {
            tracing::warn!(
                worker = %shared.name,
                event = %event,
                "ready events of `{event}` wait for another worker: this worker does not know that event (another binary's?)"
            );
        }
    }
}

/// What every task of a worker shares.
pub(crate) struct WorkerShared {
    pub(crate) drive: DurableDrive,
    pub(crate) context: Option<AnyContext>,
    pub(crate) lease: Duration,
    pub(crate) name: String,
    /// The key of the catalog of events this worker knows (what it claims).
    pub(crate) catalog: String,
    /// Set when the worker begins to shut down: no completion hands an event to it then.
    pub(crate) draining: AtomicBool,
    /// Its leaf completions being written, by run (written together when they meet).
    pub(crate) leaves: LeafBatches,
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A delay that doubles from 100 ms to 5 s.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let delay = Duration::from_millis(100).saturating_mul(1 << self.0.min(6));
        self.0 += 1;
        delay.min(Duration::from_secs(5))
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Wake the worker on every notification of new work, and after every reconnection of
/// the listening connection (notifications sent meanwhile are lost); pass on the ids of
/// runs that ended (cancelled, failed), whose events in flight stop at once.
async fn listen(store: PgStore, wake: Arc<Notify>, ended: broadcast::Sender<i64>) {
    let mut backoff = Backoff::default();
    loop {
        let mut listener = match PgListener::connect_with(store.pool()).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "LISTEN connection failed; polling meanwhile");
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        let channels = [
            store.sql().work_channel.as_str(),
            store.sql().done_channel.as_str(),
        ];
        if let Err(error) = listener.listen_all(channels).await {
            tracing::debug!(%error, "LISTEN failed; polling meanwhile");
            tokio::time::sleep(backoff.next()).await;
            continue;
        }
        backoff.reset();
        wake.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == store.sql().done_channel => {
                    if let Ok(run) = notification.payload().parse::<i64>() {
                        let _ = ended.send(run);
                    }
                }
                Ok(Some(_)) => wake.notify_one(),
                Ok(None) => {
                    // Reconnected: what was sent meanwhile is lost; look now.
                    wake.notify_one();
                }
                Err(error) => {
                    tracing::debug!(%error, "LISTEN connection lost");
                    tokio::time::sleep(backoff.next()).await;
                    break;
                }
            }
        }
    }
}

/// Refuse to start a worker without the context some event takes.
fn check_contexts(
    index: &DurableIndex,
    context: Option<&(AnyContext, TypeId, &'static str)>,
) -> Result<(), DurableError> {
    for (node, body) in index.graph.nodes.iter().zip(index.bodies.iter()) {
        for need in body.needs.iter() {
            if !is_context(need) {
                continue; // an inbox, an emitter, or a `Child` (which fails its call: see `settle`)
            }
            let given = match context {
                Some((_, type_id, _)) if *type_id == need.type_id => continue,
                Some((_, _, name)) => format!("the worker was given a `{name}`"),
                None => String::from("the worker has no context (give one with `.context(..)`)"),
            };
            return Err(DurableError::Run(Error::Context {
                event: node.name.to_string(),
                expected: need.type_name,
                given,
            }));
        }
    }
    Ok(())
}

/// How one claimed task's body ended.
pub(crate) enum BodyEnd {
    /// It produced a flow.
    Done(ErasedFlow),
    /// It failed with this error.
    Failed(Error),
    /// It waits for a value under this key (its body was dropped).
    Parked(String),
    /// The lease was lost (taken over, or the run ended): nothing is written.
    Lost,
    /// The worker shuts down: give the task back.
    Stopped,
    /// The run ended meanwhile (cancelled, or failed elsewhere): nothing to write.
    Ended,
}

/// Until the run `run` ends (a notification on the done channel).
async fn run_ended(ended: &mut broadcast::Receiver<i64>, run: i64) {
    loop {
        match ended.recv().await {
            Ok(id) if id == run => return,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Claim to commit, for one task, then for each task its completion hands to this worker
/// (the next event of a chain, say), in the same slot. A worker shutting down hands
/// nothing off; a task handed to it as the shutdown began is given back.
async fn run_task(
    shared: Arc<WorkerShared>,
    task: Claimed,
    stop: watch::Receiver<bool>,
    mut ended: broadcast::Receiver<i64>,
) {
    let mut next = Some(task);
    while let Some(task) = next.take() {
        if shared.draining.load(Ordering::Acquire) {
            if let Err(error) = shared.drive.store.release(&task).await {
                tracing::warn!(%error, event = %task.event, "could not give a task back; it runs again once its lease expired");
            }
            return;
        }
        next = run_one(&shared, task, stop.clone(), &mut ended).await;
    }
}

/// Claim to commit, for one task; the task handed off by its completion, if any.
async fn run_one(
    shared: &Arc<WorkerShared>,
    task: Claimed,
    stop: watch::Receiver<bool>,
    ended: &mut broadcast::Receiver<i64>,
) -> Option<Claimed> {
    let index = &shared.drive.index;
    let Some(node) = index.node(&task.event) else {
        tracing::warn!(event = %task.event, "claimed an event this worker does not know");
        let _ = shared.drive.store.release(&task).await;
        return None;
    };
    // Fields as OpenTelemetry reads them, as in-process event runs (see
    // `crate::core::telemetry`), with the attempt and the worker. Its parent: the span that
    // queued the task (the submit, or the event run that triggered it), from the task's
    // `traceparent`, on whichever worker or process that span was.
    let span = tracing::info_span!(
        parent: None,
        "event",
        otel.name = %task.event,
        event = %task.event,
        run_id = task.run.0,
        task_id = task.task_id,
        group = tracing::field::Empty,
        behavior = tracing::field::Empty,
        attempt = task.attempt,
        worker = %shared.name,
        attempts = tracing::field::Empty,
        outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        error.r#type = tracing::field::Empty,
    );
    trace_context::set_parent(&span, task.traceparent.as_deref());
    run_claimed(shared, &task, node, stop, ended, &span)
        .instrument(span.clone())
        .await
}

/// Run a claimed task's body in its span, record how it ended there, and write it.
async fn run_claimed(
    shared: &Arc<WorkerShared>,
    task: &Claimed,
    node: crate::core::graph::NodeId,
    mut stop: watch::Receiver<bool>,
    ended: &mut broadcast::Receiver<i64>,
    span: &tracing::Span,
) -> Option<Claimed> {
    let index = &shared.drive.index;
    // Attempts of this event run so far, this one included (failed ones were retried).
    let attempts = task.failures.max(0) as u32 + 1;
    let input = match task_input::decode(index, node, &task.input, task.task_id as u64, task.run.0)
    {
        Ok(input) => input,
        Err(error) => {
            let stored = StoredError::decode(&error.event, error.detail);
            crate::core::telemetry::event_span_ended(span, attempts, &Err(stored.to_error()));
            if let Err(error) = shared
                .drive
                .store
                .fail_run(task, &stored, &shared.name)
                .await
            {
                tracing::warn!(%error, "could not fail the run");
            }
            return None;
        }
    };
    if !span.is_disabled() {
        span.record("group", input.group_name());
        span.record("behavior", tracing::field::debug(input.behavior()));
    }
    let options = index
        .graph
        .node(node)
        .options
        .as_deref()
        .cloned()
        .unwrap_or_default();
    let (inbox, mut parked) = if index.bodies[node as usize].takes.inbox {
        let (host, parked) = TaskInbox::new(shared.drive.store.clone(), task.run, task.id);
        let link = InboxLink {
            host,
            call: CallRef {
                key: 0,
                node,
                task_id: task.task_id as u64,
            },
        };
        (Some(link), Some(parked))
    } else {
        (None, None)
    };
    // Only a body that takes a `Context` gets a reference to it (as in a local run). A
    // durable run has no live stream (an `Emitter` drops its values) and runs no child
    // workflows in-process (a `Child` parameter fails the call).
    let context = index.bodies[node as usize]
        .takes
        .context_of(&shared.context);
    let links = inbox.map(|inbox| {
        Box::new(Links {
            inbox: Some(inbox),
            emitter: None,
            child: None,
        })
    });
    let mut call = CallOnce::new(|| Call::new(input, context, links));
    // A body (a builder's closure) may panic when called, before its future exists: that
    // is its panic too, settled as one.
    let made = std::panic::catch_unwind(AssertUnwindSafe(|| {
        index.bodies[node as usize]
            .handler
            .call(CallSource::new(&mut call))
    }));
    let name = task.event.clone();
    let body = async move {
        let body = match made {
            Ok(body) => body,
            Err(panic) => return settle(&name, Err(panic)),
        };
        let caught = AssertUnwindSafe(body).catch_unwind();
        match options.timeout {
            Some(after) => match tokio::time::timeout(after, caught).await {
                Ok(caught) => settle(&name, caught),
                Err(_) => Err(Error::Timeout { event: name, after }),
            },
            None => settle(&name, caught.await),
        }
    };
    let end = {
        let renew_every = shared.lease / 3;
        let renewing = async {
            loop {
                tokio::time::sleep(renew_every).await;
                match shared.drive.store.renew(task, shared.lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => tracing::warn!(%error, "lease renewal failed; trying again"),
                }
            }
        };
        let parking = async {
            match parked.as_mut() {
                Some(parked) => match parked.await {
                    Ok(key) => key,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = body => {
                crate::core::telemetry::event_span_ended(span, attempts, &result);
                match result {
                    Ok(flow) => BodyEnd::Done(flow),
                    Err(error) => BodyEnd::Failed(error),
                }
            }
            key = parking => BodyEnd::Parked(key),
            () = renewing => BodyEnd::Lost,
            () = run_ended(ended, task.run.0) => BodyEnd::Ended,
            _ = stop.wait_for(|stop| *stop) => BodyEnd::Stopped,
        }
    };
    // The outcome of an attempt that produced none.
    let outcome = match &end {
        BodyEnd::Parked(_) => Some("waiting"),
        BodyEnd::Lost => Some("lost"),
        BodyEnd::Stopped => Some("released"),
        BodyEnd::Ended => Some("stopped"),
        BodyEnd::Done(_) | BodyEnd::Failed(_) => None,
    };
    if let Some(outcome) = outcome.filter(|_| !span.is_disabled()) {
        span.record("attempts", i64::from(attempts));
        span.record("outcome", outcome);
    }
    // The parent of the spans of the events this one triggers.
    let traceparent = match &end {
        BodyEnd::Done(_) => trace_context::of_span(span),
        _ => None,
    };
    finish(shared, task, node, &options, end, traceparent.as_deref()).await
}

/// What one attempt ended with.
fn settle(
    event: &str,
    caught: std::thread::Result<Result<ErasedFlow, CallError>>,
) -> Result<ErasedFlow, Error> {
    match caught {
        Ok(Ok(flow)) => Ok(flow),
        Ok(Err(CallError::Failed(source))) => Err(Error::Failed {
            event: event.to_string(),
            source,
        }),
        Ok(Err(CallError::Param(ParamError { expected, .. }))) if expected == CHILD_PARAM => {
            Err(Error::Failed {
                event: event.to_string(),
                source: "a durable run cannot run child workflows (the event takes a `Child`)"
                    .into(),
            })
        }
        Ok(Err(CallError::Param(ParamError { expected, given }))) => Err(Error::Context {
            event: event.to_string(),
            expected,
            given: String::from(if given {
                "the worker was given a context of another type"
            } else {
                "the worker has no context"
            }),
        }),
        Err(panic) => Err(Error::Panicked {
            event: event.to_string(),
            message: panic_message(&*panic),
        }),
    }
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

/// Write what the body ended with, retrying the write on database errors (the server may
/// be restarting) for as long as the lease would hold. What it returns: the event the
/// completion handed to this worker to run next, if any (see
/// [`complete_handing_off`](super::complete::complete_handing_off)).
async fn finish(
    shared: &Arc<WorkerShared>,
    task: &Claimed,
    node: crate::core::graph::NodeId,
    options: &EventOptions,
    end: BodyEnd,
    traceparent: Option<&str>,
) -> Option<Claimed> {
    let store = &shared.drive.store;
    let worker = shared.name.as_str();
    let deadline = tokio::time::Instant::now() + shared.lease;
    let mut backoff = Backoff::default();
    loop {
        let written: Result<bool, DurableError> = match &end {
            BodyEnd::Done(flow) => {
                let hand_off = !shared.draining.load(Ordering::Acquire);
                let completed = super::complete::complete_handing_off(
                    shared,
                    task,
                    node,
                    flow,
                    traceparent,
                    hand_off,
                )
                .await;
                match completed {
                    Ok(Some(next)) => return next,
                    Ok(None) => Ok(false),
                    Err(error) => Err(error),
                }
            }
            BodyEnd::Failed(error) => {
                let retryable = matches!(error, Error::Failed { .. } | Error::Timeout { .. });
                let failures = task.failures.max(0) as u32;
                if retryable && failures < options.retries {
                    let delay = options.delay_before_retry(failures + 1);
                    tracing::warn!(attempt = failures + 1, ?delay, %error, "event attempt failed; retrying");
                    store.retry(task, delay, &error.to_string(), worker).await
                } else {
                    let error = if retryable && options.retries > 0 {
                        Error::RetriesExhausted {
                            event: task.event.clone(),
                            attempts: failures + 1,
                            last: Box::new(copy_error(error)),
                        }
                    } else {
                        copy_error(error)
                    };
                    store
                        .fail_run(task, &StoredError::from_error(&error), worker)
                        .await
                }
            }
            BodyEnd::Parked(key) => store.park(task, key, worker).await,
            BodyEnd::Stopped => store.release(task).await,
            BodyEnd::Ended => {
                tracing::info!(event = %task.event, run = %task.run, "the run ended meanwhile; the event was stopped");
                return None;
            }
            BodyEnd::Lost => {
                tracing::warn!(event = %task.event, run = %task.run, "lease lost (taken over, or the run ended); the outcome is dropped");
                return None;
            }
        };
        match written {
            Ok(true) => return None,
            Ok(false) => {
                tracing::warn!(event = %task.event, run = %task.run, "the task is no longer this worker's (lease taken over, or the run ended); its outcome was refused");
                return None;
            }
            Err(error) if tokio::time::Instant::now() < deadline => {
                let delay = backoff.next();
                tracing::warn!(%error, ?delay, "could not write an event's outcome; trying again");
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                tracing::error!(%error, "could not write an event's outcome before its lease expired; it will run again");
                return None;
            }
        }
    }
}

/// An error again (errors holding a boxed source are not `Clone`).
fn copy_error(error: &Error) -> Error {
    StoredError::from_error(error).to_error()
}
