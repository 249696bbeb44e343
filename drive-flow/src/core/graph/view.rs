//! A typed, read-only view of a built graph: its events and their groups, as they were
//! actually built (duplicate groups dropped, repeated members counted once, default names
//! given). See [`Drive::events`](crate::Drive::events).

use std::fmt;

use crate::core::event::Event;
use crate::core::graph::{Graph, GroupId, NodeId, Retrigger};

/// One event of a built [`Drive`](crate::Drive), as [`Drive::events`](crate::Drive::events)
/// lists it.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn start() {}
/// #[listen(start)]
/// async fn next() {}
///
/// let drive = Drive::new().unwrap();
/// let next_info = drive.events().find(|e| e.is(next)).unwrap();
/// assert_eq!(next_info.id(), format!("{}::next", module_path!()));
/// assert_eq!(next_info.name(), "next");
/// assert_eq!(next_info.groups().len(), 1);
/// ```
#[derive(Clone, Copy)]
pub struct EventInfo<'a> {
    graph: &'a Graph,
    node: NodeId,
}

/// One group an event listens to, as built: see [`EventInfo::groups`].
///
/// ```
/// use drive_flow::prelude::*;
/// use drive_flow::Retrigger;
///
/// #[event]
/// async fn a() {}
/// #[event]
/// async fn b() {}
/// #[listen(b, a, name = "both", retrigger = any)]
/// async fn joined() {}
///
/// let drive = Drive::new().unwrap();
/// let joined_info = drive.events().find(|e| e.is(joined)).unwrap();
/// let group = joined_info.groups().next().unwrap();
/// assert_eq!(group.name(), "both");
/// assert_eq!(group.retrigger(), Retrigger::Any);
/// let members: Vec<&str> = group.members().map(|m| m.name()).collect();
/// assert_eq!(members, ["b", "a"]);                  // in group order
/// assert!(group.listener().is(joined));
/// ```
#[derive(Clone, Copy)]
pub struct GroupInfo<'a> {
    graph: &'a Graph,
    group: GroupId,
}

impl<'a> EventInfo<'a> {
    pub(crate) fn new(graph: &'a Graph, node: NodeId) -> Self {
        EventInfo { graph, node }
    }

    /// The event's id: `module::path::fn_name` for an event made with the macros, the name
    /// given to [`DriveBuilder::event`](crate::DriveBuilder::event) otherwise. Two events of
    /// the macros defined in two function bodies of one module share their id; see
    /// [`label`](Self::label) and [`site`](Self::site).
    pub fn id(&self) -> &'a str {
        let node = self.graph.node(self.node);
        match node.meta {
            Some(meta) => meta.id,
            None => &node.name,
        }
    }

    /// How errors, traces and pictures name the event: its id, followed by
    /// `@file:line:column` when another event of the graph shares the id.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// fn first() {
    ///     #[event]
    ///     async fn step() {}
    /// }
    /// fn second() {
    ///     #[event]
    ///     async fn step() {}
    /// }
    ///
    /// let drive = Drive::new().unwrap();
    /// assert_eq!(drive.events().len(), 2);
    /// for event in drive.events() {
    ///     assert_eq!(event.id(), format!("{}::step", module_path!()));
    ///     assert_eq!(event.name(), "step");
    ///     let (file, line, column) = event.site().unwrap();
    ///     assert_eq!(event.label(), format!("{}@{file}:{line}:{column}", event.id()));
    /// }
    /// ```
    pub fn label(&self) -> &'a str {
        &self.graph.node(self.node).name
    }

    /// Where an event of the macros is defined: `(file, line, column)` of its name; `None`
    /// for an event of the builder.
    pub fn site(&self) -> Option<(&'static str, u32, u32)> {
        let meta = self.graph.node(self.node).meta?;
        Some((meta.file, meta.line, meta.column))
    }

    /// The id without its module path (the function's name for an event of the macros).
    pub fn name(&self) -> &'a str {
        let id = self.id();
        id.rsplit("::").next().unwrap_or(id)
    }

    /// Its position in the graph: events are numbered from 0 in registration order (for
    /// [`Drive::new`](crate::Drive::new), the order of their ids), as
    /// [`Drive::events`](crate::Drive::events) lists them.
    pub fn index(&self) -> usize {
        self.node as usize
    }

    /// Whether this is `event`.
    pub fn is(&self, event: impl Event) -> bool {
        self.graph.resolve(event.__key()) == Some(self.node)
    }

    /// The groups it listens to, in order (the `#[listen]` nearest the function first),
    /// as built: a group repeated with the same members in the same order is kept once.
    /// Empty for an event that listens to nothing.
    pub fn groups(&self) -> impl ExactSizeIterator<Item = GroupInfo<'a>> + 'a {
        let graph = self.graph;
        let range = graph.listens[self.node as usize]..graph.listens[self.node as usize + 1];
        range.map(move |group| GroupInfo { graph, group })
    }

    /// The groups it is a member of, in registration order of their listeners.
    pub fn listeners(&self) -> impl ExactSizeIterator<Item = GroupInfo<'a>> + 'a {
        let graph = self.graph;
        graph
            .member_of(self.node)
            .iter()
            .map(move |&(group, _)| GroupInfo { graph, group })
    }
}

impl<'a> GroupInfo<'a> {
    /// The group's name: given with `name = ".."`, else its position among the listener's
    /// groups (`"0"`, `"1"`, …).
    pub fn name(&self) -> &'a str {
        &self.graph.group(self.group).name
    }

    /// When the listener fires again.
    pub fn retrigger(&self) -> Retrigger {
        self.graph.group(self.group).retrigger
    }

    /// The event that listens to this group.
    pub fn listener(&self) -> EventInfo<'a> {
        EventInfo::new(self.graph, self.graph.group(self.group).listener)
    }

    /// The members, in group order (a member repeated in the group counts once).
    pub fn members(&self) -> impl ExactSizeIterator<Item = EventInfo<'a>> + 'a {
        let graph = self.graph;
        graph
            .members(graph.group(self.group))
            .iter()
            .map(move |&node| EventInfo::new(graph, node))
    }
}

impl fmt::Debug for EventInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventInfo")
            .field("id", &self.label())
            .field("groups", &self.groups().collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Debug for GroupInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupInfo")
            .field("name", &self.name())
            .field("retrigger", &self.retrigger())
            .field(
                "members",
                &self.members().map(|m| m.label()).collect::<Vec<_>>(),
            )
            .finish()
    }
}
