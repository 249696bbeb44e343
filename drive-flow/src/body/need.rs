//! What a parameter needs from its runner before a run starts: a context type, or a
//! marker (an inbox, a child) that is not one. Apart from the parameters themselves so
//! that each parameter kind can name it without importing the others.

use std::any::TypeId;

/// A context type an event needs.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ContextNeed {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}
