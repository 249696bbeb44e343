//! Events and the ways to name them: the [`Event`] trait, builder [`Handle`]s and
//! type-erased [`EventRef`]s.

use std::fmt;
use std::marker::PhantomData;

use smallvec::{smallvec, SmallVec};

/// An event of a workflow: a name the compiler checks, with the type it produces.
///
/// You do not implement this trait yourself. `#[event]` and `#[listen(..)]` turn an
/// `async fn` into a zero-sized value of the same name that implements it, and
/// [`DriveBuilder::event`](crate::DriveBuilder::event) returns a [`Handle`] that implements it.
/// Anything that takes an event (`#[listen(..)]`, [`EventInput::get`](crate::EventInput::get),
/// [`Results::get`](crate::Results::get), [`Drive::invoke`](crate::Drive::invoke), goto targets)
/// takes it by this trait, so a misspelled or non-event name is a compile error.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn answer() -> u32 {
///     42
/// }
///
/// fn output_of<E: drive_flow::Event>(_: E) -> &'static str {
///     std::any::type_name::<E::Output>()
/// }
/// assert_eq!(output_of(answer), "u32");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a drive-flow event",
    label = "not an event",
    note = "an event is an `async fn` marked with `#[event]` or `#[listen(..)]`, \
            or a `Handle` returned by `DriveBuilder::event`"
)]
pub trait Event: Copy + Send + Sync + 'static {
    /// What the event produces: the `T` of its `T`, `Result<T, E>`, `Flow<T>` or
    /// `Result<Flow<T>, E>` return type (`()` when it returns nothing).
    type Output: Send + Sync + 'static;

    /// How the runtime finds this event in a graph. Generated code only.
    #[doc(hidden)]
    fn __key(&self) -> EventKey;
}

/// Identity of an event inside a graph. Not a stable API.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum EventKey {
    /// An event made by the macros: identified by the address of its metadata static.
    Static(&'static StaticEvent),
    /// An event made by a [`DriveBuilder`](crate::DriveBuilder): builder tag and node index.
    Node { graph: u32, node: u32 },
}

impl PartialEq for EventKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EventKey::Static(a), EventKey::Static(b)) => std::ptr::eq(*a, *b),
            (
                EventKey::Node {
                    graph: g1,
                    node: n1,
                },
                EventKey::Node {
                    graph: g2,
                    node: n2,
                },
            ) => g1 == g2 && n1 == n2,
            _ => false,
        }
    }
}
impl Eq for EventKey {}

impl fmt::Debug for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKey::Static(meta) => write!(f, "{}", meta.id),
            EventKey::Node { graph, node } => write!(f, "builder#{graph}/node#{node}"),
        }
    }
}

/// Metadata of an event made by the macros, one `static` per event. Not a stable API.
#[doc(hidden)]
#[derive(Debug)]
pub struct StaticEvent {
    /// The full path of the function, `module::path::fn_name`. Two events defined in two
    /// function bodies of one module share it; their statics tell them apart.
    pub id: &'static str,
    /// Where the function is defined (`file!()`, `line!()`, `column!()` of its name).
    pub file: &'static str,
    /// The line of the function's name, from 1.
    pub line: u32,
    /// The column of the function's name, from 1.
    pub column: u32,
}

impl StaticEvent {
    /// Where the event is defined: `file:line:column`.
    pub(crate) fn site(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A typed handle to an event made with [`DriveBuilder::event`](crate::DriveBuilder::event).
///
/// It is `Copy` and names its event everywhere an `#[event]` function name would.
/// A handle belongs to the builder that made it; used with another graph it finds nothing.
///
/// ```
/// use drive_flow::{DriveBuilder, Flow, Group};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut builder = DriveBuilder::new();
/// let one = builder.event("one", || async { Flow::from(1) });
/// let two = builder.event("two", move |input: drive_flow::EventInput| async move {
///     Flow::from(input.get(one).copied().unwrap_or(0) + 1)
/// });
/// builder.listen(two, Group::new([one]));
/// let drive = builder.build().unwrap();
/// let results = drive.invoke(one).await.unwrap();
/// assert_eq!(results.get(two), Some(&2));
/// # });
/// ```
pub struct Handle<T> {
    pub(crate) graph: u32,
    pub(crate) node: u32,
    _output: PhantomData<fn() -> T>,
}

impl<T> Handle<T> {
    pub(crate) fn new(graph: u32, node: u32) -> Self {
        Handle {
            graph,
            node,
            _output: PhantomData,
        }
    }
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Handle<T> {}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("graph", &self.graph)
            .field("node", &self.node)
            .finish()
    }
}

impl<T: Send + Sync + 'static> Event for Handle<T> {
    type Output = T;
    fn __key(&self) -> EventKey {
        EventKey::Node {
            graph: self.graph,
            node: self.node,
        }
    }
}

/// Any event, with its output type erased: the members of a [`Group`](crate::Group) and the
/// targets of a goto, which may produce different types.
///
/// Every [`Event`] converts into it with `From`/`Into`.
///
/// ```
/// use drive_flow::prelude::*;
/// use drive_flow::EventRef;
///
/// #[event]
/// async fn a() -> i32 { 1 }
/// #[event]
/// async fn b() -> String { String::new() }
///
/// let both: [EventRef; 2] = [a.into(), b.into()];
/// assert_ne!(both[0], both[1]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EventRef(pub(crate) EventKey);

impl fmt::Debug for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Event> From<E> for EventRef {
    fn from(event: E) -> Self {
        EventRef(event.__key())
    }
}

/// The events a goto sends its payload to, in order: the `targets` of
/// [`Flow::Goto`](crate::Flow::Goto). It reads as a slice of [`EventRef`]s, and holds one
/// without an allocation (most gotos name one event: a loop back).
///
/// ```
/// use drive_flow::prelude::*;
/// use drive_flow::{EventRef, GotoTargets, Targets};
///
/// #[event]
/// async fn plan() {}
/// #[event]
/// async fn log() {}
///
/// let targets: GotoTargets = (plan, log).into_targets();
/// assert_eq!(&targets[..], &[EventRef::from(plan), EventRef::from(log)]);
/// let one = GotoTargets::from(EventRef::from(plan));
/// assert_eq!(one.len(), 1);
/// assert_eq!(one.iter().copied().collect::<Vec<_>>(), vec![EventRef::from(plan)]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GotoTargets(SmallVec<[EventRef; 1]>);

impl fmt::Debug for GotoTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl std::ops::Deref for GotoTargets {
    type Target = [EventRef];

    fn deref(&self) -> &[EventRef] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a GotoTargets {
    type Item = &'a EventRef;
    type IntoIter = std::slice::Iter<'a, EventRef>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<EventRef> for GotoTargets {
    fn from_iter<I: IntoIterator<Item = EventRef>>(targets: I) -> Self {
        GotoTargets(targets.into_iter().collect())
    }
}

impl From<EventRef> for GotoTargets {
    fn from(target: EventRef) -> Self {
        GotoTargets(smallvec![target])
    }
}

impl From<Vec<EventRef>> for GotoTargets {
    fn from(targets: Vec<EventRef>) -> Self {
        GotoTargets(SmallVec::from_vec(targets))
    }
}

/// The targets of [`Flow::goto`](crate::Flow::goto): one event, an array of events of one
/// kind, a tuple of events, or a list of [`EventRef`]s.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn plan() {}
/// #[event]
/// async fn log() {}
///
/// #[listen(plan)]
/// async fn observe() -> Flow<()> {
///     Flow::goto((plan, log), ())
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as goto targets",
    label = "expected an event, an array or tuple of events, or a `Vec<EventRef>`",
    note = "goto targets must be events: `async fn`s marked with `#[event]` or `#[listen(..)]`"
)]
pub trait Targets {
    /// The targets, in order.
    fn into_targets(self) -> GotoTargets;
}

impl<E: Event> Targets for E {
    fn into_targets(self) -> GotoTargets {
        GotoTargets::from(EventRef::from(self))
    }
}

impl<E: Event, const N: usize> Targets for [E; N] {
    fn into_targets(self) -> GotoTargets {
        self.into_iter().map(EventRef::from).collect()
    }
}

impl<const N: usize> Targets for [EventRef; N] {
    fn into_targets(self) -> GotoTargets {
        self.into_iter().collect()
    }
}

impl Targets for Vec<EventRef> {
    fn into_targets(self) -> GotoTargets {
        GotoTargets::from(self)
    }
}

impl Targets for EventRef {
    fn into_targets(self) -> GotoTargets {
        GotoTargets::from(self)
    }
}

impl Targets for GotoTargets {
    fn into_targets(self) -> GotoTargets {
        self
    }
}

macro_rules! tuple_targets {
    ($($name:ident),+) => {
        impl<$($name: Event),+> Targets for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_targets(self) -> GotoTargets {
                let ($($name,)+) = self;
                GotoTargets(smallvec![$(EventRef::from($name)),+])
            }
        }
    };
}
tuple_targets!(A);
tuple_targets!(A, B);
tuple_targets!(A, B, C);
tuple_targets!(A, B, C, D);
tuple_targets!(A, B, C, D, E);
tuple_targets!(A, B, C, D, E, F);
tuple_targets!(A, B, C, D, E, F, G);
tuple_targets!(A, B, C, D, E, F, G, H);

#[cfg(test)]
mod tests {
    use super::{EventKey, EventRef, GotoTargets, Targets};

    fn node(node: u32) -> EventRef {
        EventRef(EventKey::Node { graph: 1, node })
    }

    #[test]
    fn one_goto_target_is_held_in_place_and_more_in_order() {
        // A goto to one event (a loop back, most gotos) allocates no list of targets.
        let one = node(3).into_targets();
        assert!(!one.0.spilled());
        assert_eq!(&one[..], &[node(3)]);
        let three = [node(1), node(2), node(1)].into_targets();
        assert_eq!(&three[..], &[node(1), node(2), node(1)]);
        assert_eq!(GotoTargets::from(vec![node(2), node(5)]).len(), 2);
        // No larger than the `Vec` it replaced in `Flow::Goto`.
        assert!(std::mem::size_of::<GotoTargets>() <= std::mem::size_of::<Vec<EventRef>>());
    }
}
