//! # drive-flow
//!
//! Event-driven workflows written as plain async functions. Mark functions with
//! [`#[event]`](macro@event) and [`#[listen(a, b)]`](macro@listen); [`Drive::new`] collects
//! them, builds the dependency graph once, and [`Drive::invoke`] runs it concurrently on tokio:
//! joins, fan-out, loops through [`Flow::goto`], [`Flow::abort`], and a shared [`Context`].
//!
//! ```
//! use drive_flow::prelude::*;
//!
//! #[event]
//! async fn start() {}
//!
//! #[listen(start)]
//! async fn hello() -> i32 { 1 }
//!
//! #[listen(start)]
//! async fn world() -> i32 { 2 }
//!
//! #[listen(hello, world)]                       // a join: runs once both have results
//! async fn adding(input: EventInput) -> i32 {
//!     input.get(hello).unwrap() + input.get(world).unwrap()   // typed: Option<&i32>
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), drive_flow::Error> {
//!     let drive = Drive::new()?;
//!     println!("{}", drive.debug_string(adding));
//!     let results = drive.invoke(start).await?;
//!     assert_eq!(results.get(adding), Some(&3));
//!     Ok(())
//! }
//! ```
//!
//! ## How a run behaves
//!
//! - The start event runs first. When an event finishes with a value, every event listening
//!   to a group that contains it runs, once every member of that group has run at least
//!   once in this run. The listener receives the latest outcome of each member, in group
//!   order ([`EventInput`]).
//! - With [`Retrigger::All`] (the default) a listener fires again only after every member of
//!   the group produced a fresh outcome; with [`Retrigger::Any`], on every fresh outcome.
//! - [`Flow::goto`] runs the targets with the payload (group name `"$goto"`); nothing else is
//!   dispatched. [`Flow::abort`] ends the branch. Both count as "has run" for joins.
//! - Events triggered together run concurrently, each as a tokio task. (An event that
//!   another's end starts alone runs in the task of the event that ended, which has
//!   nothing left to do: no task is spawned for it. The events of a wide fan-out, 64 or
//!   more started by one end, share a task per part of up to 16, which makes their first
//!   polls in place: one that waits gets a task of its own, and a part that has run for
//!   50 µs gives one to each event it has left; see [`Invoke`].)
//! - The run ends when nothing is running or queued, and returns [`Results`]. An error or a
//!   panic in an event fails the run with [`Error`] naming the event, and cancels every
//!   other event in flight; dropping the run's future cancels everything it started.
//! - Run control: a loop budget ([`Invoke::max_steps`], [`Invoke::max_runs_per_event`]), a
//!   run timeout ([`Invoke::timeout`]), per-event `timeout`, `retries` and `backoff`
//!   ([`EventOptions`]); [`Invoke::start`] gives a [`RunHandle`] to send outside input to
//!   events waiting in an [`Inbox`] and to cancel the run, and
//!   [`Invoke::start_with_events`] a live stream of [`RunEvent`]s, on which events send
//!   values of their own as they run ([`Emitter`]: tokens of a model's answer, progress).
//!   [`Results::report`] tells how often each event ran, and, for a run
//!   [timed](Invoke::timed), where the time went; [`Results::to_mermaid`] draws what the run
//!   did on its graph and [`Results::to_gantt`] its timeline.
//! - Nested workflows: an event that takes a [`Child`] runs another workflow of the drive
//!   as a child of its run, sharing its cancellation, timeout, loop budget and live stream.
//! - Observability: every run and every event run is a `tracing` span whose fields follow
//!   the OpenTelemetry conventions (`tracing-opentelemetry` exports them as they are), and
//!   with the cargo feature `metrics`, event runs, their durations and the runs in flight
//!   are reported through the `metrics` facade. Without a subscriber, spans cost a branch.
//!
//! Event ids are the functions' full paths (`module::path::fn_name`).

#![warn(missing_docs)]

// The layout: imports point one way, `drive` -> `local` -> `body` -> `core`.
//
// - `core`: pure and synchronous, no tokio: event ids, the graph (index, run cells, pictures),
//   options, flows, inputs, the dispatch core (SEMANTICS step 3), results, errors.
// - `body`: what an event body touches at run time: its parameters (context, inbox), the
//   erased body (handler) and the task of one event (task), which reaches its runner
//   through the `Host` trait.
// - `local`: the in-process runner (tokio tasks), its handle and its event stream.
// - `drive`: the entry: `Drive`, `DriveBuilder`, and the registry the macros submit to.
mod body;
mod core;
mod drive;
#[cfg(feature = "postgres")]
pub mod durable;
mod local;

pub use crate::body::child::{Child, ChildInvoke};
pub use crate::body::context::Context;
pub use crate::body::emitter::{Emitted, Emitter};
pub use crate::body::handler::Handler;
pub use crate::body::inbox::{Inbox, InboxError};
pub use crate::body::param::EventParam;
pub use crate::core::error::{BuildError, Error};
pub use crate::core::event::{Event, EventRef, GotoTargets, Handle, Targets};
pub use crate::core::flow::{BoxError, Flow, IntoFlow};
pub use crate::core::graph::view::{EventInfo, GroupInfo};
pub use crate::core::graph::Retrigger;
pub use crate::core::input::{Behavior, EventInput, InputResult, InputResults, OutcomeKind};
pub use crate::core::options::EventOptions;
pub use crate::core::results::{EventStats, Report, Results};
pub use crate::drive::builder::{DriveBuilder, Group};
pub use crate::drive::Drive;
pub use crate::local::handle::RunHandle;
pub use crate::local::runner::{Invoke, DEFAULT_MAX_STEPS};
pub use crate::local::stream::{Cause, PathStep, RunEvent, RunEventKind, RunEvents};

/// Marks an `async fn` as an event that listens to nothing: it runs when a run starts at
/// it, or when another event sends it a [`Flow::goto`].
///
/// The function becomes a zero-sized value of the same name that implements [`Event`], used
/// to name it in `#[listen(..)]`, [`EventInput::get`], [`Results::get`], [`Drive::invoke`] and
/// goto targets. The name is a unit struct too, so it cannot also name a `mod` (or another
/// type) of the same scope. An event is a free function: in an `impl` block it is an error.
/// It may take [`EventInput`], [`Context<T>`], [`Inbox`], [`Emitter<T>`] and [`Child`]
/// parameters (in any order, or none) and return `()`, `T`, `Result<T, E>`, [`Flow<T>`] or
/// `Result<Flow<T>, E>`, where `E` converts into [`BoxError`]. A run has one context, so an
/// event takes at most one context type: `Context<A>` and `Context<B>` together are a
/// compile error (the same `Context<T>` twice is allowed: both are the run's context).
///
/// Options (see [`EventOptions`]): `timeout = "30s"` (per attempt; `ms`, `s`, `m` or `h`),
/// `retries = 3` (errors and timeouts are retried with the same input), `backoff = "100ms"`
/// (the wait before the first retry, doubled before each next one).
///
/// Generated code reaches the runtime at `::drive_flow`. A crate that depends on drive-flow
/// under another name, or reaches it through a re-export, says where it is with
/// `crate = "path"` on each event (on any one of its attributes), as with serde's and
/// tokio's `crate` options: `#[event(crate = "workflows")]` for
/// `workflows = { package = "drive-flow", .. }` in `Cargo.toml`. The other drive-flow
/// attributes of the function are then written unqualified (`#[listen(..)]`, through the
/// prelude) or as `drive_flow::listen`.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn fetch(input: EventInput) -> Result<String, std::io::Error> {
///     Ok(format!("{:?}", input.behavior()))
/// }
///
/// #[event(timeout = "30s", retries = 3, backoff = "100ms")]
/// async fn call_api() -> Result<u16, std::io::Error> {
///     Ok(200)
/// }
/// ```
pub use drive_flow_macros::event;

/// Marks an `async fn` as an event that runs once every event of the group has a result.
///
/// `#[listen(a, b)]` is one group (a join); several `#[listen]` attributes are several
/// groups, each an independent trigger. Groups are named `"0"`, `"1"`, … starting with the
/// attribute nearest the function, unless named. Options of the group: `name = "..."`,
/// `retrigger = all | any` (see [`Retrigger`]). Options of the event, as on
/// [`#[event]`](macro@event), set once on any of its attributes: `timeout = "30s"`,
/// `retries = 3`, `backoff = "100ms"`, `crate = "path"`.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn a() -> i32 { 1 }
/// #[event]
/// async fn b() -> i32 { 2 }
///
/// #[listen(a)]                                     // group "1"
/// #[listen(b, a, name = "both", retrigger = any)]  // group "both"
/// async fn c(input: EventInput) -> i32 {
///     input.results().iter().filter_map(|r| r.value::<i32>()).sum()
/// }
/// ```
pub use drive_flow_macros::listen;

/// Everything a workflow needs: `use drive_flow::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Behavior, Context, Drive, Error, EventInput, Flow, Inbox, OutcomeKind, Results, Retrigger,
    };
    pub use drive_flow_macros::{event, listen};
}

/// Without the cargo feature `postgres`, an event's output codec is not captured.
#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __drive_flow_codec {
    ($meta:expr, $output:ty) => {};
}

/// Used by the code the macros generate. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::body::handler::ErasedHandler;
    pub use crate::body::param::{
        one_context, Call, CallSource, ContextNeed, EventParam, NoContext, OneContext, ParamError,
    };
    pub use crate::core::event::{EventKey, StaticEvent};
    pub use crate::core::flow::{into_flow, result_flow, result_into_flow, EventError};
    pub use crate::drive::registry::Registration;
    pub use crate::{DriveBuilder, Event, EventOptions, EventRef, Flow, Group, Retrigger};
    pub use drive_flow_macros::__then;
    pub use inventory;

    /// Captures an event's output codec (cargo feature `postgres`), or nothing.
    pub use crate::__drive_flow_codec as codec;
    #[cfg(feature = "postgres")]
    pub use crate::durable::codec::{CodecProbe, CodecRegistration, ViaNothing, ViaSerde};

    /// An event, as a group member; spanned at the name so that a non-event is reported there.
    pub fn member<E: Event>(event: E) -> EventRef {
        EventRef::from(event)
    }

    /// The `T` of a `Result<T, E>` return type.
    pub trait ResultOk {
        /// `T`.
        type Ok;
    }
    impl<T, E> ResultOk for Result<T, E> {
        type Ok = T;
    }
}
