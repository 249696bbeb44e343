//! [`Drive`]: a built graph, ready to run.

pub(crate) mod builder;
pub(crate) mod registry;

use std::fmt;
use std::sync::Arc;

use crate::body::handler::Bodies;
use crate::core::error::BuildError;
use crate::core::error::Error;
use crate::core::event::Event;
use crate::core::graph::Graph;
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
    /// # Errors
    /// [`Error::Build`] when two events share an id (events defined inside function bodies
    /// take the path of the enclosing module).
    pub fn new() -> Result<Self, Error> {
        let mut builder = DriveBuilder::new();
        builder.add_registered();
        Ok(builder.build()?)
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
    /// # Errors
    /// [`BuildError`] when two events share a name, when a group names an event that is not
    /// in the graph, or when a group is empty.
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
