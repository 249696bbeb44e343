//! [`Drive`]: a built graph, ready to run.

pub(crate) mod builder;
pub(crate) mod registry;

use std::fmt;
use std::sync::Arc;

use crate::body::handler::Bodies;
use crate::core::error::{BuildError, Error};
use crate::core::event::Event;
use crate::core::graph::view::EventInfo;
use crate::core::graph::{Graph, NodeId};
use crate::drive::builder::DriveBuilder;
use crate::local::runner::Invoke;

/// A workflow graph, built and checked once, run any number of times (also concurrently).
///
/// Cloning is cheap: clones share the graph.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn start() {}
/// #[listen(start)]
/// async fn hello() -> i32 { 1 }
/// #[listen(start)]
/// async fn world() -> i32 { 2 }
/// #[listen(hello, world)]
/// async fn adding(input: EventInput) -> i32 {
///     input.get(hello).unwrap() + input.get(world).unwrap()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let drive = Drive::new()?;
/// let results = drive.invoke(start).await?;
/// assert_eq!(results.get(adding), Some(&3));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Drive {
    pub(crate) graph: Arc<Graph>,
    pub(crate) bodies: Bodies,
}

impl Drive {
    /// Every event of the binary made with `#[event]`/`#[listen]`, graph built and checked.
    ///
    /// Events defined inside function bodies take the path of the enclosing module, so two
    /// of the same name in two function bodies share an id: the drive tells them apart and
    /// shows each as `id@file:line:column` (see [`check_unique_ids`](Self::check_unique_ids)
    /// for runs that need unique ids).
    ///
    /// **Events of another crate** are there only if that crate is linked into the binary.
    /// The linker leaves out a crate the binary never names, so the events of a "plugin"
    /// crate that only defines events (and that nothing uses) are silently missing. Name
    /// the crate somewhere in the binary, for instance `use my_events as _;` in `main.rs`,
    /// or use any of its items (its events, in `drive.invoke(my_events::start)`).
    ///
    /// # Errors
    /// [`Error::Build`] when the graph cannot be built, and [`BuildError::NoEvents`] when
    /// the program has no event at all (the mistake above, or a program that defines none:
    /// build such graphs with [`Drive::builder`], which allows an empty one).
    pub fn new() -> Result<Self, Error> {
        let mut builder = DriveBuilder::new();
        builder.add_registered();
        let drive = builder.build()?;
        if drive.is_empty() {
            return Err(BuildError::NoEvents.into());
        }
        Ok(drive)
    }

    /// Check that no two events of the drive share an id. A drive in process does not need
    /// it (events are told apart by their handles), but whatever stores events by id does:
    /// durable runs call it before they start.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    /// use drive_flow::BuildError;
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
    /// match drive.check_unique_ids() {
    ///     Err(BuildError::AmbiguousEvent { id, first, second }) => {
    ///         assert!(id.ends_with("::step"));
    ///         assert_ne!(first, second); // `file:line:column` of each definition
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    ///
    /// # Errors
    /// [`BuildError::AmbiguousEvent`] naming a shared id and where two of its events are
    /// defined (for [`Drive::new`]: the first such id, and its first two sites, in order).
    pub fn check_unique_ids(&self) -> Result<(), BuildError> {
        self.graph.check_unique_ids()
    }

    /// A builder for graphs made without macros (or mixing both).
    pub fn builder() -> DriveBuilder {
        DriveBuilder::new()
    }

    /// Start a run at `start`. Configure it with the returned [`Invoke`], then await it.
    pub fn invoke<E: Event>(&self, start: E) -> Invoke<E> {
        Invoke::new(self.graph.clone(), self.bodies.clone(), start)
    }

    /// The dependency tree of `event`: its groups, their members, recursively; an event
    /// already on the path from the root is printed once more with ` <loop>`.
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
    /// let tree = drive.debug_string(next);
    /// let module = module_path!();
    /// assert_eq!(tree, format!("{module}::next\n└─ <0>\n    └─ {module}::start\n"));
    /// ```
    pub fn debug_string<E: Event>(&self, event: E) -> String {
        match self.graph.resolve(event.__key()) {
            Some(node) => crate::core::graph::render::tree(&self.graph, node),
            None => format!(
                "{} (not an event of this drive)\n",
                self.graph.describe(event.__key())
            ),
        }
    }

    /// The whole graph as a [Mermaid](https://mermaid.js.org) flowchart, ready to paste in
    /// a ```` ```mermaid ```` block of a Markdown file.
    ///
    /// - An event is a box labelled with its id, less the module path that every event shown
    ///   shares; an event that listens to nothing (a start or goto target) has rounded corners.
    /// - A group of one event is an arrow from the member to the listener, labelled with the
    ///   group's name.
    /// - A group of several events (a join) is a hexagon labelled with the group's name and
    ///   [`Retrigger`](crate::Retrigger) mode, with a line from each member and an arrow to
    ///   the listener.
    /// - An arrow that closes a loop is dotted. Goto targets are chosen at run time, so they
    ///   are not drawn.
    ///
    /// Node ids are `e<index>` for events and `g<index>` for joins, in registration order:
    /// the same graph always gives the same text.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn start() {}
    /// #[listen(start)]
    /// async fn hello() -> i32 { 1 }
    /// #[listen(start)]
    /// async fn world() -> i32 { 2 }
    /// #[listen(hello, world)]
    /// async fn adding() {}
    ///
    /// let drive = Drive::new().unwrap();
    /// assert_eq!(
    ///     drive.to_mermaid(),
    ///     r#"flowchart TD
    ///     e0["adding"]
    ///     e1["hello"]
    ///     e2(["start"])
    ///     e3["world"]
    ///     g0{{"0 · all"}}
    ///     e1 --- g0
    ///     e3 --- g0
    ///     g0 --> e0
    ///     e2 -->|"0"| e1
    ///     e2 -->|"0"| e3
    /// "#
    /// );
    /// ```
    pub fn to_mermaid(&self) -> String {
        crate::core::graph::diagram::mermaid_whole(&self.graph)
    }

    /// The whole graph as a [Graphviz](https://graphviz.org) DOT digraph (render it with
    /// `dot -Tsvg`). It draws what [`to_mermaid`](Self::to_mermaid) draws, with the same
    /// node ids.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn start() {}
    /// #[listen(start)]
    /// #[listen(next, name = "again")]
    /// async fn next() {}
    ///
    /// let drive = Drive::new().unwrap();
    /// assert_eq!(
    ///     drive.to_dot(),
    ///     r#"digraph drive_flow {
    ///     node [shape=box];
    ///     e0 [label="next"];
    ///     e1 [label="start", style=rounded];
    ///     e0 -> e0 [label="again", style=dotted];
    ///     e1 -> e0 [label="1"];
    /// }
    /// "#
    /// );
    /// ```
    pub fn to_dot(&self) -> String {
        crate::core::graph::diagram::dot_whole(&self.graph)
    }

    /// Like [`to_mermaid`](Self::to_mermaid), restricted to what a run started at `start`
    /// can reach through groups (downstream; [`debug_string`](Self::debug_string) shows
    /// what an event depends on, upstream). A member of a reached join that the run cannot
    /// reach has a dashed border: that join waits for it (or for a goto to run it).
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn first() {}
    /// #[event]
    /// async fn other() {}
    /// #[listen(first, other)]
    /// async fn both() {}
    /// #[listen(other)]
    /// async fn unrelated() {}
    ///
    /// let drive = Drive::new().unwrap();
    /// let picture = drive.to_mermaid_from(first);
    /// assert!(picture.contains(r#"["both"]"#));
    /// assert!(!picture.contains("unrelated"));
    /// assert!(picture.contains("class e2 outside")); // `other`: not reached from `first`
    /// ```
    pub fn to_mermaid_from<E: Event>(&self, start: E) -> String {
        match self.graph.resolve(start.__key()) {
            Some(node) => crate::core::graph::diagram::mermaid_from(&self.graph, node),
            None => {
                crate::core::graph::diagram::mermaid_unknown(&self.graph.describe(start.__key()))
            }
        }
    }

    /// Like [`to_dot`](Self::to_dot), restricted to what a run started at `start` can
    /// reach, as [`to_mermaid_from`](Self::to_mermaid_from) is.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn first() {}
    /// #[listen(first)]
    /// async fn second() {}
    /// #[event]
    /// async fn elsewhere() {}
    ///
    /// let drive = Drive::new().unwrap();
    /// let picture = drive.to_dot_from(first);
    /// assert!(picture.contains(r#"[label="second"]"#));
    /// assert!(!picture.contains("elsewhere"));
    /// ```
    pub fn to_dot_from<E: Event>(&self, start: E) -> String {
        match self.graph.resolve(start.__key()) {
            Some(node) => crate::core::graph::diagram::dot_from(&self.graph, node),
            None => crate::core::graph::diagram::dot_unknown(&self.graph.describe(start.__key())),
        }
    }

    /// Every event of the graph, with its groups, as the graph was built (duplicate groups
    /// dropped, a member repeated in a group counted once, default group names given), in
    /// registration order: for [`Drive::new`], the order of the events' ids. For tools that
    /// draw or check a workflow; [`to_mermaid`](Self::to_mermaid) shows the same graph.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn start() {}
    /// #[listen(start)]
    /// async fn hello() {}
    /// #[listen(start)]
    /// async fn world() {}
    /// #[listen(hello, world)]
    /// async fn adding() {}
    ///
    /// let drive = Drive::new().unwrap();
    /// let listing: Vec<String> = drive
    ///     .events()
    ///     .map(|event| {
    ///         let groups: Vec<String> = event
    ///             .groups()
    ///             .map(|g| {
    ///                 let members: Vec<&str> = g.members().map(|m| m.name()).collect();
    ///                 format!("<{}> {}", g.name(), members.join(" + "))
    ///             })
    ///             .collect();
    ///         format!("{}: {}", event.name(), groups.join(", "))
    ///     })
    ///     .collect();
    /// assert_eq!(
    ///     listing,
    ///     ["adding: <0> hello + world", "hello: <0> start", "start: ", "world: <0> start"]
    /// );
    /// ```
    pub fn events(&self) -> impl ExactSizeIterator<Item = EventInfo<'_>> {
        let graph = &*self.graph;
        (0..graph.nodes.len() as NodeId).map(move |node| EventInfo::new(graph, node))
    }

    /// How many events the graph holds.
    pub fn len(&self) -> usize {
        self.graph.nodes.len()
    }

    /// Whether the graph holds no event.
    pub fn is_empty(&self) -> bool {
        self.graph.nodes.is_empty()
    }
}

impl DriveBuilder {
    /// Check and index the graph.
    ///
    /// Two events made by the macros may share an id (two `#[event] async fn step()` in two
    /// function bodies of one module): each is its own value, so in-process runs tell them
    /// apart, and where they are shown (errors, tracing, [`Drive::debug_string`], diagrams)
    /// each is named `id@file:line:column`, after its definition. Durable runs, which store
    /// events by id, refuse such a graph: see [`Drive::check_unique_ids`].
    ///
    /// A builder without any event builds an empty drive (unlike [`Drive::new`], which
    /// refuses a program without events).
    ///
    /// # Errors
    /// [`BuildError`] when a name given to [`event`](Self::event) is the name or id of
    /// another event, when a group names an event that is not in the graph, or when a group
    /// is empty.
    pub fn build(self) -> Result<Drive, BuildError> {
        let (graph, bodies) = self.into_parts()?;
        Ok(Drive {
            graph: Arc::new(graph),
            bodies: bodies.into(),
        })
    }
}

impl fmt::Debug for Drive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drive")
            .field("events", &self.graph.nodes.len())
            .field("groups", &self.graph.groups.len())
            .finish()
    }
}
