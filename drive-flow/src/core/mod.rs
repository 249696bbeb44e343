//! The pure half of the runtime: plain synchronous code, no tokio, no I/O. Event ids, the
//! graph built once and indexed, what events return and receive, the dispatch core (the
//! rule of SEMANTICS step 3, in one place), a run's results and the errors.

pub(crate) mod dispatch;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod flow;
pub(crate) mod graph;
pub(crate) mod input;
pub(crate) mod lock;
pub(crate) mod options;
pub(crate) mod results;
pub(crate) mod telemetry;
pub(crate) mod trace;
pub(crate) mod value;
