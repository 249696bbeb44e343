//! What an event body touches at run time: its parameters ([`Context`](crate::Context),
//! [`Inbox`](crate::Inbox), [`EventInput`](crate::EventInput)) and the body itself, erased
//! to one callable shape. Each runner (in-process or durable) provides what the parameters
//! reach through the small traits defined here.

pub(crate) mod call_box;
pub(crate) mod child;
pub(crate) mod context;
pub(crate) mod emitter;
pub(crate) mod handler;
pub(crate) mod inbox;
pub(crate) mod need;
pub(crate) mod param;
pub(crate) mod task;
