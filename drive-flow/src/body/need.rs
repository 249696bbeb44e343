//! What a parameter needs from its runner: a context type, or a marker that is not one (the
//! input, an inbox, an emitter, a child), which says what the runner gives the calls of
//! its event. Apart from the parameters themselves so
//! that each parameter kind can name it without importing the others.

use std::any::TypeId;

/// A context type an event needs, or the marker of a parameter that is not a context.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ContextNeed {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}
