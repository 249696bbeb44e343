//! [`Drive`]: a built graph, ready to run.

use std::fmt;
use std::sync::Arc;

use crate::builder::DriveBuilder;
use crate::error::Error;
use crate::event::Event;
use crate::graph::Graph;
use crate::runner::Invoke;

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

    pub(crate) fn from_graph(graph: Arc<Graph>) -> Self {
        Drive { graph }
    }

    /// Start a run at `start`. Configure it with the returned [`Invoke`], then await it.
    pub fn invoke<E: Event>(&self, start: E) -> Invoke<E> {
        Invoke::new(self.graph.clone(), start)
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
            Some(node) => crate::render::tree(&self.graph, node),
            None => format!(
                "{} (not an event of this drive)\n",
                self.graph.describe(event.__key())
            ),
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

impl fmt::Debug for Drive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drive")
            .field("events", &self.graph.nodes.len())
            .field("groups", &self.graph.groups.len())
            .finish()
    }
}
