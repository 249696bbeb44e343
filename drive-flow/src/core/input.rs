//! What an event receives: [`EventInput`], its [`Behavior`], and the results of the group
//! that triggered it.

use std::fmt;
use std::sync::Arc;

use crate::core::event::Event;
use crate::core::flow::AnyValue;
use crate::core::graph::{Graph, GroupId, NodeId};
use crate::core::value::Stored;

/// Why an event is running.
///
/// ```
/// use drive_flow::{Behavior, EventInput};
///
/// assert_eq!(EventInput::from_input(3).behavior(), Behavior::Input);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behavior {
    /// Every member of one of its groups has produced a result.
    Dispatch,
    /// Another event sent it a payload with [`Flow::goto`](crate::Flow::goto).
    Goto,
    /// It is the start event of a run (with or without [`EventInput::from_input`] data).
    Input,
}

/// How an event's latest run ended, as seen by its listeners and in [`Results`](crate::Results).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    /// It produced a value.
    Value,
    /// It ended with [`Flow::goto`](crate::Flow::goto); listeners see no value.
    Goto,
    /// It ended with [`Flow::abort`](crate::Flow::abort); listeners see no value.
    Abort,
}

/// An event's latest outcome, value type erased (24 bytes: see [`Stored`]).
#[derive(Clone)]
pub(crate) struct Latest(Stored);

impl Latest {
    /// An event ended with [`Flow::abort`](crate::Flow::abort).
    pub(crate) const ABORT: Latest = Latest(Stored::Abort);

    /// An event produced `value` (a move: a value is stored as its outcome is).
    #[inline]
    pub(crate) fn value_of(value: AnyValue) -> Latest {
        Latest(value.into_stored())
    }

    /// An event ended with a goto whose payload is `payload`.
    #[inline]
    pub(crate) fn goto_of(payload: AnyValue) -> Latest {
        Latest(match payload.into_stored() {
            Stored::Value(payload) => Stored::Goto(payload),
            Stored::SharedValue(payload) => Stored::SharedGoto(payload),
            // (An `AnyValue` is always a value: kept as it is otherwise.)
            other => other,
        })
    }

    pub(crate) fn kind(&self) -> OutcomeKind {
        match self.0 {
            Stored::Value(_) | Stored::SharedValue(_) => OutcomeKind::Value,
            Stored::Goto(_) | Stored::SharedGoto(_) => OutcomeKind::Goto,
            Stored::Abort => OutcomeKind::Abort,
        }
    }

    /// Whether it is a value (not a goto, not an abort).
    #[inline]
    pub(crate) fn is_value(&self) -> bool {
        matches!(self.0, Stored::Value(_) | Stored::SharedValue(_))
    }

    /// Its value, if it is a value of type `T`.
    #[inline]
    pub(crate) fn value_as<T: 'static>(&self) -> Option<&T> {
        if self.is_value() {
            self.0.downcast_ref()
        } else {
            None
        }
    }

    /// Its value or its goto's payload.
    #[cfg(feature = "postgres")]
    pub(crate) fn value_or_payload(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        (!matches!(self.0, Stored::Abort)).then(|| self.0.as_any())
    }

    /// A goto's payload as the value a goto target's input carries (shared, not copied,
    /// unless in place); `None` for a value or an abort.
    #[inline]
    pub(crate) fn payload_as_value(&self) -> Option<Latest> {
        match &self.0 {
            Stored::Goto(payload) => Some(Latest(Stored::Value(*payload))),
            Stored::SharedGoto(payload) => Some(Latest(Stored::SharedValue(payload.clone()))),
            _ => None,
        }
    }
}

/// One member of the group that triggered an event, with its latest outcome.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) node: NodeId,
    pub(crate) latest: Latest,
}

/// The results an input carries, or a start input's data. Most inputs carry one result (a
/// chain, a fan-out, a goto): it is kept in place, so that such an input costs no
/// allocation of its own. (Two kept in place as well made every input 32 bytes larger, and
/// every event's task with it: the moves cost more than the allocation they saved.)
#[derive(Clone)]
pub(crate) enum Entries {
    /// No results: a start input without data.
    Empty,
    /// No results: a start input with the data given to [`EventInput::from_input`] (only a
    /// start input has data, and it has no results).
    User(AnyValue),
    One(Entry),
    Many(Arc<[Entry]>),
}

impl Entries {
    /// The results of a group, in group order (in place if there is one).
    pub(crate) fn collect(mut entries: impl ExactSizeIterator<Item = Entry>) -> Self {
        match entries.len() {
            0 => Entries::Empty,
            1 => entries.next().map_or(Entries::Empty, Entries::One),
            // Allocated once, at its exact size.
            _ => Entries::Many(entries.collect()),
        }
    }
}

impl std::ops::Deref for Entries {
    type Target = [Entry];

    fn deref(&self) -> &[Entry] {
        match self {
            Entries::Empty | Entries::User(_) => &[],
            Entries::One(entry) => std::slice::from_ref(entry),
            Entries::Many(entries) => entries,
        }
    }
}

/// Which way an input came, which also says its [`Behavior`].
#[derive(Clone, Copy)]
pub(crate) enum Origin {
    Group(GroupId),
    Goto,
    UserInput,
}

impl Origin {
    /// The behavior of an input that came this way.
    fn behavior(self) -> Behavior {
        match self {
            Origin::Group(_) => Behavior::Dispatch,
            Origin::Goto => Behavior::Goto,
            Origin::UserInput => Behavior::Input,
        }
    }

    /// The name of the group an input came through, read off `graph` if there is one
    /// (without, a group's is empty).
    fn group_name(self, graph: Option<&Graph>) -> &str {
        match self {
            Origin::Group(group) => graph.map_or("", |graph| &graph.group(group).name),
            Origin::Goto => crate::core::graph::GOTO_GROUP,
            Origin::UserInput => crate::core::graph::USER_INPUT_GROUP,
        }
    }
}

/// The input of an event to start, as the dispatch core makes it: an [`EventInput`]
/// without the graph and the run id, which the runner attaches when a body takes its input
/// ([`with`](Self::with)). A start waits in a run's queue or an event's task as this: 48
/// bytes rather than 64 (a capped fan-out of a million holds a million of them).
#[derive(Clone)]
pub(crate) struct BareInput {
    pub(crate) origin: Origin,
    /// Its results, or a start input's data.
    pub(crate) entries: Entries,
    pub(crate) task_id: u64,
}

/// The input of a start event without data (what [`EventInput::start`] holds).
impl Default for BareInput {
    fn default() -> Self {
        BareInput {
            origin: Origin::UserInput,
            entries: Entries::Empty,
            task_id: 0,
        }
    }
}

impl BareInput {
    /// The input a body receives: this one, with `graph` (which its accessors read) and
    /// the id of its durable run (`0` in process).
    #[inline]
    pub(crate) fn with(self, graph: Option<Arc<Graph>>, run: i64) -> EventInput {
        EventInput {
            graph,
            origin: self.origin,
            entries: self.entries,
            task_id: self.task_id,
            run,
        }
    }

    /// Why the event runs.
    pub(crate) fn behavior(&self) -> Behavior {
        self.origin.behavior()
    }

    /// The name of the group that triggered the event, read off `graph`.
    pub(crate) fn group_name_in<'a>(&'a self, graph: &'a Graph) -> &'a str {
        self.origin.group_name(Some(graph))
    }
}

/// What an event receives when it runs: why it runs ([`behavior`](Self::behavior)), through
/// which group ([`group_name`](Self::group_name)), and the results of that group's members
/// ([`get`](Self::get), [`results`](Self::results)).
///
/// Declare a parameter of this type in an event function to receive it:
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn hello() -> i32 { 1 }
/// #[event]
/// async fn world() -> i32 { 2 }
///
/// #[listen(hello, world)]
/// async fn adding(input: EventInput) -> i32 {
///     assert_eq!(input.behavior(), Behavior::Dispatch);
///     assert_eq!(input.group_name(), "0");
///     assert_eq!(input.results().len(), 2);
///     input.get(hello).unwrap() + input.get(world).unwrap()
/// }
/// ```
///
/// The start event of a run receives [`Behavior::Input`], group name `"user_input"` and no
/// results; the data given with [`EventInput::from_input`] is read with [`user`](Self::user).
#[derive(Clone)]
pub struct EventInput {
    pub(crate) graph: Option<Arc<Graph>>,
    pub(crate) origin: Origin,
    /// Its results, or a start input's data.
    pub(crate) entries: Entries,
    pub(crate) task_id: u64,
    /// The id of a durable run (`0` in an in-process run), for [`Self::idempotency_key`].
    pub(crate) run: i64,
}

impl EventInput {
    /// Build the input of a run's start event from your own data, read back with
    /// [`user`](Self::user). Its group name is `"user_input"` and its behavior
    /// [`Behavior::Input`].
    ///
    /// ```
    /// use drive_flow::EventInput;
    ///
    /// let input = EventInput::from_input(String::from("3+3*2"));
    /// assert_eq!(input.user::<String>().map(String::as_str), Some("3+3*2"));
    /// assert_eq!(input.group_name(), "user_input");
    /// ```
    pub fn from_input<T: Send + Sync + 'static>(data: T) -> Self {
        EventInput {
            graph: None,
            origin: Origin::UserInput,
            entries: Entries::User(crate::core::flow::erase_value(data)),
            task_id: 0,
            run: 0,
        }
    }

    pub(crate) fn start() -> Self {
        EventInput {
            graph: None,
            origin: Origin::UserInput,
            entries: Entries::Empty,
            task_id: 0,
            run: 0,
        }
    }

    /// The input without its graph and run id (an in-process run's start input: its run
    /// attaches the graph again if the body takes it).
    pub(crate) fn into_bare(self) -> BareInput {
        BareInput {
            origin: self.origin,
            entries: self.entries,
            task_id: self.task_id,
        }
    }

    /// The same input without its results and graph (its origin and ids kept): what a call
    /// keeps once a parameter took its input.
    pub(crate) fn without_results(&self) -> Self {
        EventInput {
            graph: None,
            origin: self.origin,
            entries: Entries::Empty,
            task_id: self.task_id,
            run: self.run,
        }
    }

    /// Why this event runs.
    pub fn behavior(&self) -> Behavior {
        self.origin.behavior()
    }

    /// The name of the group that triggered this event: its given name, or its position
    /// (`"0"`, `"1"`, …) among the event's groups, nearest `#[listen]` first; `"$goto"` for a
    /// goto and `"user_input"` for the start event.
    pub fn group_name(&self) -> &str {
        self.origin.group_name(self.graph.as_deref())
    }

    /// The value `event` produced, if it is in this input's results and its latest outcome
    /// was a value (not a goto or an abort). For a goto input, the goto's payload.
    pub fn get<E: Event>(&self, event: E) -> Option<&E::Output> {
        let node = self.graph.as_ref()?.resolve(event.__key())?;
        self.entries
            .iter()
            .find(|entry| entry.node == node)
            .and_then(|entry| entry.latest.value_as::<E::Output>())
    }

    /// The results of the group that triggered this event, in group order.
    pub fn results(&self) -> InputResults<'_> {
        InputResults { input: self }
    }

    /// The data given to [`EventInput::from_input`], if it has type `T`.
    pub fn user<T: 'static>(&self) -> Option<&T> {
        match &self.entries {
            Entries::User(data) => data.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// An id for this run of the event, unique within its run.
    pub fn task_id(&self) -> u64 {
        self.task_id
    }

    /// A key for the side effects of this run of the event (a payment, an e-mail): the
    /// same every time this event run is tried again, and different for every other event
    /// run. Durable runs run a body at least once (again after a crash, a lost lease, or
    /// when a value comes for an [`Inbox`](crate::Inbox)); hand this key to the services
    /// the body calls so that they apply each effect once. It is
    /// `"<run id>-<task id>"`, the run id being the durable run's (`0` in-process).
    ///
    /// ```
    /// let input = drive_flow::EventInput::from_input(());
    /// assert_eq!(input.idempotency_key(), "0-0");
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.run, self.task_id)
    }
}

impl fmt::Debug for EventInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventInput")
            .field("group_name", &self.group_name())
            .field("behavior", &self.behavior())
            .field("results", &self.results())
            .field("task_id", &self.task_id)
            .finish()
    }
}

/// The results an [`EventInput`] carries, in group order.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn a() -> i32 { 1 }
/// #[listen(a)]
/// async fn b(input: EventInput) {
///     let names: Vec<&str> = input.results().iter().map(|r| r.event()).collect();
///     assert_eq!(names.len(), 1);
///     assert!(names[0].ends_with("::a"));
/// }
/// ```
#[derive(Clone, Copy)]
pub struct InputResults<'a> {
    input: &'a EventInput,
}

impl<'a> InputResults<'a> {
    /// How many events the results hold.
    pub fn len(&self) -> usize {
        self.input.entries.len()
    }

    /// Whether there are no results (a start or user input).
    pub fn is_empty(&self) -> bool {
        self.input.entries.is_empty()
    }

    /// The results in group order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = InputResult<'a>> + 'a {
        let input = self.input;
        input
            .entries
            .iter()
            .map(move |entry| InputResult { input, entry })
    }
}

impl<'a> IntoIterator for InputResults<'a> {
    type Item = InputResult<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = InputResult<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl fmt::Debug for InputResults<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|r| (r.event(), r.kind())))
            .finish()
    }
}

/// One event's entry in an [`EventInput`]'s results.
#[derive(Clone, Copy)]
pub struct InputResult<'a> {
    input: &'a EventInput,
    entry: &'a Entry,
}

impl<'a> InputResult<'a> {
    /// The id of the event (`module::path::fn_name`, or the name given to the builder).
    pub fn event(&self) -> &'a str {
        match &self.input.graph {
            Some(graph) => &graph.node(self.entry.node).name,
            None => "",
        }
    }

    /// Whether this result is for `event`.
    pub fn is<E: Event>(&self, event: E) -> bool {
        self.input
            .graph
            .as_ref()
            .and_then(|g| g.resolve(event.__key()))
            == Some(self.entry.node)
    }

    /// How the event's latest run ended.
    pub fn kind(&self) -> OutcomeKind {
        self.entry.latest.kind()
    }

    /// The value, if the event produced one of type `T`.
    pub fn value<T: 'static>(&self) -> Option<&'a T> {
        self.entry.latest.value_as::<T>()
    }
}

impl fmt::Debug for InputResult<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputResult")
            .field("event", &self.event())
            .field("kind", &self.kind())
            .finish()
    }
}

#[cfg(test)]
mod layout {
    use std::mem::size_of;

    use super::{BareInput, Entries, EventInput, Latest};

    #[test]
    fn an_outcome_and_an_input_s_results_stay_small_with_values_in_place() {
        // Every input, result and event task holds these: a value held in place must not
        // make them larger (see `Latest`).
        assert_eq!(size_of::<Latest>(), 24);
        assert_eq!(size_of::<Option<Latest>>(), 24);
        assert_eq!(size_of::<Entries>(), 32);
    }

    #[test]
    fn a_start_s_input_waits_without_the_graph_and_the_run_id() {
        assert_eq!(size_of::<BareInput>(), 48);
        assert_eq!(size_of::<EventInput>(), 64);
    }
}
