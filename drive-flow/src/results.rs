//! [`Results`]: what a run returns.

use std::fmt;
use std::sync::Arc;

use crate::dispatch::RunState;
use crate::event::Event;
use crate::graph::Graph;
use crate::input::{Latest, OutcomeKind};

/// The outcome of a run: for every event that ran, its latest outcome and how often it ran.
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn start() -> &'static str { "go" }
/// #[listen(start)]
/// async fn stop() -> Flow<u8> { Flow::abort() }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let results = Drive::new()?.invoke(start).await?;
/// assert_eq!(results.get(start), Some(&"go"));
/// assert_eq!(results.get(stop), None);                       // no value: it aborted
/// assert_eq!(results.outcome(stop), Some(OutcomeKind::Abort));
/// assert_eq!(results.count(stop), 1);
/// # Ok(())
/// # }
/// ```
pub struct Results {
    graph: Arc<Graph>,
    latest: Vec<Option<Latest>>,
    completions: Vec<u32>,
}

impl Results {
    pub(crate) fn new(state: RunState) -> Self {
        let (graph, latest, completions) = state.into_parts();
        Results {
            graph,
            latest,
            completions,
        }
    }

    fn latest<E: Event>(&self, event: E) -> Option<&Latest> {
        let node = self.graph.resolve(event.__key())?;
        self.latest[node as usize].as_ref()
    }

    /// The latest value of `event`, if it ran and its latest outcome was a value.
    pub fn get<E: Event>(&self, event: E) -> Option<&E::Output> {
        self.latest(event)?.value()?.downcast_ref::<E::Output>()
    }

    /// How the latest run of `event` ended, if it ran.
    pub fn outcome<E: Event>(&self, event: E) -> Option<OutcomeKind> {
        self.latest(event).map(Latest::kind)
    }

    /// How many times `event` completed in this run.
    pub fn count<E: Event>(&self, event: E) -> u32 {
        self.graph
            .resolve(event.__key())
            .map_or(0, |node| self.completions[node as usize])
    }

    /// The id of every event that ran, with how its latest run ended, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, OutcomeKind)> + '_ {
        self.latest.iter().enumerate().filter_map(|(node, latest)| {
            Some((&*self.graph.nodes[node].name, latest.as_ref()?.kind()))
        })
    }

    /// How many events ran at least once.
    pub fn len(&self) -> usize {
        self.latest.iter().filter(|latest| latest.is_some()).count()
    }

    /// Whether no event ran (never the case after a successful run).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
