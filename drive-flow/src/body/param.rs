//! The parameters an event function may declare ([`EventParam`]): its input, the run's
//! [`Context`], an [`Inbox`]; and the [`Call`] they are taken from.

use std::any::{Any, TypeId};
use std::sync::Arc;

use crate::body::child::{is_child, Child, ChildLink, CHILD_PARAM};
use crate::body::context::Context;
use crate::body::emitter::{is_emitter, Emitter, EmitterNeed, EMITTER_PARAM};
use crate::body::inbox::{Inbox, InboxLink, INBOX_PARAM};
use crate::core::flow::{BoxError, ErasedFlow};
use crate::core::input::EventInput;

pub use crate::body::need::ContextNeed;

/// What one event call has access to. Generated code only.
#[doc(hidden)]
pub struct Call {
    pub(crate) input: EventInput,
    pub(crate) context: Option<Arc<dyn Any + Send + Sync>>,
    /// What a call that takes an [`Inbox`], an [`Emitter`] or a [`Child`] reaches its run
    /// through; `None` for most calls (boxed: a call is moved a few times on its way to the
    /// body, and three links in place made it twice as large).
    pub(crate) links: Option<Box<Links>>,
    /// How many parameters still take the input: the last one takes it, the others a clone
    /// ([`INPUTS_UNKNOWN`] until the body's code says how many it has).
    pub(crate) inputs_left: u8,
}

/// The links of a call to its run, for the parameters that act on it.
pub(crate) struct Links {
    /// The run's mailbox, for an event that takes an [`Inbox`] in a started run.
    pub(crate) inbox: Option<InboxLink>,
    /// The run's live stream, for an [`Emitter`] in a watched run.
    pub(crate) emitter: Option<crate::body::emitter::EmitLink>,
    /// The run, for an event that takes a [`Child`].
    pub(crate) child: Option<ChildLink>,
}

/// [`Call::inputs_left`] before a body said how many of its parameters take the input:
/// each takes a clone.
pub(crate) const INPUTS_UNKNOWN: u8 = u8::MAX;

impl Call {
    /// The call of one event: its input, the run's context if it takes one, and its links
    /// to the run if it takes a parameter that needs one.
    #[inline]
    pub(crate) fn new(
        input: EventInput,
        context: Option<Arc<dyn Any + Send + Sync>>,
        links: Option<Box<Links>>,
    ) -> Self {
        Call {
            input,
            context,
            links,
            inputs_left: INPUTS_UNKNOWN,
        }
    }

    fn links(&self) -> Option<&Links> {
        self.links.as_deref()
    }

    /// Say how many of the body's parameters take the input (what
    /// [`EventParam::INPUTS`] adds up to over them), before they are taken: the last takes
    /// it rather than a clone. Generated code only.
    #[doc(hidden)]
    pub fn __inputs(&mut self, inputs: u8) {
        self.inputs_left = inputs;
    }

    /// The input, for a parameter that takes it: moved out to the last parameter that takes
    /// it (what the call keeps has no results: nothing reads them any more), cloned for the
    /// others.
    fn take_input(&mut self) -> EventInput {
        match self.inputs_left {
            INPUTS_UNKNOWN => self.input.clone(),
            0 | 1 => {
                self.inputs_left = 0;
                let kept = self.input.without_results();
                std::mem::replace(&mut self.input, kept)
            }
            _ => {
                self.inputs_left -= 1;
                self.input.clone()
            }
        }
    }
}

/// Where the body of one event takes its [`Call`] from: made only when the body asks for it,
/// which a body with no parameter never does (most small bodies have none, and would build
/// the call, and drop it, for nothing). Generated code only.
#[doc(hidden)]
pub struct CallSource<'a>(&'a mut dyn MakeCall);

impl<'a> CallSource<'a> {
    /// A source that makes its call with `make` (if asked).
    pub(crate) fn new(make: &'a mut dyn MakeCall) -> Self {
        CallSource(make)
    }

    /// The call, for a body that takes a parameter. Generated code only.
    #[doc(hidden)]
    pub fn __call(self) -> Call {
        self.0.make_call()
    }

    /// The call's input alone, for a body whose one parameter is its input (see
    /// [`EventParam::from_source`]).
    fn input(self) -> EventInput {
        self.0.make_input()
    }
}

/// What makes the call of a [`CallSource`], once.
pub(crate) trait MakeCall {
    fn make_call(&mut self) -> Call;

    /// The call's input alone (with the graph attached: its body reads it).
    fn make_input(&mut self) -> EventInput {
        let mut call = self.make_call();
        call.__inputs(EventInput::INPUTS);
        call.take_input()
    }
}

/// A call made by a closure, the first time it is asked for (a source gives it once). The
/// closure holds the event's input: not asked, the input is dropped with it.
pub(crate) struct CallOnce<F>(Option<F>);

impl<F: FnOnce() -> Call> CallOnce<F> {
    pub(crate) fn new(make: F) -> Self {
        CallOnce(Some(make))
    }
}

impl<F: FnOnce() -> Call> MakeCall for CallOnce<F> {
    fn make_call(&mut self) -> Call {
        match self.0.take() {
            Some(make) => make(),
            // A source is consumed by the one call it gives: not reached.
            None => Call::new(EventInput::start(), None, None),
        }
    }
}

/// Why one call of an event body did not produce a flow: its body failed, or one of its
/// parameters could not be given.
pub(crate) enum CallError {
    Failed(BoxError),
    Param(ParamError),
}

/// What one call of an event body gives.
pub(crate) type CallOutput = Result<ErasedFlow, CallError>;

/// Why a parameter could not be provided.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ParamError {
    pub(crate) expected: &'static str,
    pub(crate) given: bool,
}

/// A type an event function may take as a parameter: [`EventInput`], [`Context<T>`],
/// [`Inbox`], [`Emitter<T>`](crate::Emitter) or [`Child`](crate::Child).
///
/// Parameters are optional and may come in any order; declare only those you use.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid event parameter",
    label = "unsupported parameter type",
    note = "an event may take `EventInput` (what triggered it), `Context<T>` (the run's \
            shared context), `Inbox` (values sent from outside the run), `Emitter<T>` \
            (values sent out to the run's stream) and `Child` (child workflows), in any \
            order, or no parameter at all"
)]
pub trait EventParam: Sized + Send + 'static {
    /// The context this parameter reads: `Context<T>` itself, [`NoContext`] for the others
    /// (an event takes one context type: see [`OneContext`]).
    #[doc(hidden)]
    type ContextKind;

    /// How many times this parameter takes the call's input (1 for [`EventInput`]).
    #[doc(hidden)]
    const INPUTS: u8 = 0;

    /// Take the parameter from the call.
    #[doc(hidden)]
    fn from_call(call: &mut Call) -> Result<Self, ParamError>;

    /// Take the parameter, the one parameter of its function, from the call's source. The
    /// input alone is made without a call around it (most listeners take their input
    /// alone: the call was built and dropped around it).
    #[doc(hidden)]
    fn from_source(source: CallSource<'_>) -> Result<Self, ParamError> {
        let mut call = source.__call();
        call.__inputs(Self::INPUTS);
        Self::from_call(&mut call)
    }

    /// The context type this parameter needs, checked before a run starts.
    #[doc(hidden)]
    fn context_need() -> Option<ContextNeed> {
        None
    }
}

impl EventParam for EventInput {
    type ContextKind = NoContext;

    const INPUTS: u8 = 1;

    fn from_call(call: &mut Call) -> Result<Self, ParamError> {
        Ok(call.take_input())
    }

    fn from_source(source: CallSource<'_>) -> Result<Self, ParamError> {
        Ok(source.input())
    }

    fn context_need() -> Option<ContextNeed> {
        Some(ContextNeed {
            type_id: TypeId::of::<EventInput>(),
            type_name: INPUT_PARAM,
        })
    }
}

/// The need an [`EventInput`] parameter declares: not a context, but only a call that takes
/// its input gets the graph attached to it (see [`Takes`](crate::body::handler::Takes)).
const INPUT_PARAM: &str = "drive_flow::EventInput";

/// Whether a need declared by a parameter is the event's input (not a context).
pub(crate) fn is_input(need: &ContextNeed) -> bool {
    need.type_id == TypeId::of::<EventInput>()
}

impl<T: Send + Sync + 'static> EventParam for Context<T> {
    type ContextKind = Context<T>;

    fn from_call(call: &mut Call) -> Result<Self, ParamError> {
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

/// Whether a need declared by a parameter is a context (not the input, an inbox, a child or
/// an emitter, which declare needs of their own).
pub(crate) fn is_context(need: &ContextNeed) -> bool {
    !is_input(need) && !is_inbox(need) && !is_child(need) && !is_emitter(need)
}

/// Whether a need must be checked against a run before it starts: a context (of the right
/// type), an inbox (a run with a mailbox). The others are met by every run.
pub(crate) fn is_checked(need: &ContextNeed) -> bool {
    is_context(need) || is_inbox(need)
}

/// Whether a need declared by a parameter is an inbox (not a context).
pub(crate) fn is_inbox(need: &ContextNeed) -> bool {
    need.type_id == TypeId::of::<Inbox>()
}

impl EventParam for Inbox {
    type ContextKind = NoContext;

    fn from_call(call: &mut Call) -> Result<Self, ParamError> {
        match call.links().and_then(|links| links.inbox.as_ref()) {
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

impl<T: Send + Sync + 'static> EventParam for Emitter<T> {
    type ContextKind = NoContext;

    fn from_call(call: &mut Call) -> Result<Self, ParamError> {
        let link = call.links().and_then(|links| links.emitter.clone());
        Ok(Emitter::for_call(link, call.input.task_id))
    }

    fn context_need() -> Option<ContextNeed> {
        Some(ContextNeed {
            type_id: TypeId::of::<EmitterNeed>(),
            type_name: EMITTER_PARAM,
        })
    }
}

impl EventParam for Child {
    type ContextKind = NoContext;

    fn from_call(call: &mut Call) -> Result<Self, ParamError> {
        match call.links().and_then(|links| links.child.as_ref()) {
            Some(link) => Ok(Child::new(link.clone())),
            None => Err(ParamError {
                expected: CHILD_PARAM,
                given: false,
            }),
        }
    }

    fn context_need() -> Option<ContextNeed> {
        Some(ContextNeed {
            type_id: TypeId::of::<Child>(),
            type_name: CHILD_PARAM,
        })
    }
}

/// The [`EventParam::ContextKind`] of a parameter that is not a [`Context`]. Generated code
/// only.
#[doc(hidden)]
pub struct NoContext;

/// The parameters of one event read at most one context type: every event of a run gets the
/// one value given to [`Invoke::context`](crate::Invoke::context), so an event taking
/// `Context<A>` and `Context<B>` could never run. Taking the same `Context<T>` twice is
/// allowed (both are the run's context). `#[event]`/`#[listen]` check each parameter
/// against every earlier one, and report a conflict at the later one. Generated code only.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an event takes one context type, but this one takes `{Earlier}` and `{Self}`",
    label = "a second context type",
    note = "every event of a run gets the one value given to `Invoke::context`: put what \
            the event needs in one type and take `Context` of it"
)]
pub trait OneContext<Earlier> {}

/// A parameter that is not a context goes with any other.
#[diagnostic::do_not_recommend]
impl<Earlier> OneContext<Earlier> for NoContext {}
#[diagnostic::do_not_recommend]
impl<T> OneContext<NoContext> for Context<T> {}
#[diagnostic::do_not_recommend]
impl<T> OneContext<Context<T>> for Context<T> {}

/// Whether parameter `Later` of an event reads no other context type than `Earlier`, an
/// earlier parameter. Generated code only.
#[doc(hidden)]
pub fn one_context<Later: EventParam, Earlier: EventParam>()
where
    Later::ContextKind: OneContext<Earlier::ContextKind>,
{
}
