//! The parameters an event function may declare ([`EventParam`]): its input, the run's
//! [`Context`], an [`Inbox`]; and the [`Call`] they are taken from.

use std::any::{Any, TypeId};
use std::sync::Arc;

use crate::body::context::Context;
use crate::body::inbox::{Inbox, InboxLink, INBOX_PARAM};
use crate::core::input::EventInput;

/// What one event call has access to. Generated code only.
#[doc(hidden)]
pub struct Call {
    pub(crate) input: EventInput,
    pub(crate) context: Option<Arc<dyn Any + Send + Sync>>,
    /// The run's mailbox, for an event that takes an [`Inbox`](crate::Inbox) in a started run.
    pub(crate) inbox: Option<InboxLink>,
}

/// A context type an event needs.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ContextNeed {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}

/// Why a parameter could not be provided.
#[doc(hidden)]
#[derive(Debug)]
pub struct ParamError {
    pub(crate) expected: &'static str,
    pub(crate) given: bool,
}

/// A type an event function may take as a parameter: [`EventInput`] or [`Context<T>`].
///
/// Parameters are optional and may come in any order; declare only those you use.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid event parameter",
    label = "unsupported parameter type",
    note = "an event may take `EventInput` (what triggered it), `Context<T>` (the run's \
            shared context) and `Inbox` (values sent from outside the run), in any order, \
            or no parameter at all"
)]
pub trait EventParam: Sized + Send + 'static {
    /// Take the parameter from the call.
    #[doc(hidden)]
    fn from_call(call: &Call) -> Result<Self, ParamError>;

    /// The context type this parameter needs, checked before a run starts.
    #[doc(hidden)]
    fn context_need() -> Option<ContextNeed> {
        None
    }
}

impl EventParam for EventInput {
    fn from_call(call: &Call) -> Result<Self, ParamError> {
        Ok(call.input.clone())
    }
}

impl<T: Send + Sync + 'static> EventParam for Context<T> {
    fn from_call(call: &Call) -> Result<Self, ParamError> {
        let error = |given| ParamError {
            expected: std::any::type_name::<T>(),
            given,
        };
        let context = call.context.clone().ok_or(error(false))?;
        context
            .downcast::<T>()
            .map(Context)
            .map_err(|_| error(true))
    }

    fn context_need() -> Option<ContextNeed> {
        Some(ContextNeed {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        })
    }
}

/// Whether a need declared by a parameter is an inbox (not a context).
pub(crate) fn is_inbox(need: &ContextNeed) -> bool {
    need.type_id == TypeId::of::<Inbox>()
}

impl EventParam for Inbox {
    fn from_call(call: &Call) -> Result<Self, ParamError> {
        match &call.inbox {
            Some(link) => Ok(Inbox { link: link.clone() }),
            None => Err(ParamError {
                expected: INBOX_PARAM,
                given: false,
            }),
        }
    }

    fn context_need() -> Option<ContextNeed> {
        Some(ContextNeed {
            type_id: TypeId::of::<Inbox>(),
            type_name: INBOX_PARAM,
        })
    }
}
