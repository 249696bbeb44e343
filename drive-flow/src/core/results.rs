//! [`Results`]: what a run returns.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::core::dispatch::{EventRun, RunState};
use crate::core::event::Event;
use crate::core::graph::cells::{Outcome, TaskCells};
use crate::core::graph::Graph;
use crate::core::input::{Latest, OutcomeKind};
use crate::core::trace::RunTrace;

/// The outcome of a run: for every event that ran, its latest outcome and how often it ran.
///
/// The results of an [inline](crate::Invoke::inline) run that is not timed read what the
/// run kept where it kept it (nothing is copied out when the run ends), and hold that
/// memory until they are dropped: then it goes back to the drive, for its next run.
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
    /// An entry per event the run touched.
    events: Events,
    elapsed: Duration,
    /// Goto jumps and timeline, for the pictures of the run.
    trace: RunTrace,
}

/// Where the entries of a run's events are.
enum Events {
    /// Listed, sorted by node id.
    Listed(Vec<EventRun>),
    /// Where an untimed inline run kept them: its counts in its cells, its outcomes in its
    /// task's cells. Read in place, and listed only once a caller asks for the whole list:
    /// a run's end then costs nothing per event (a list made at once cost an untimed
    /// inline run 64 instructions per event, a tenth of what it costs, most of which were
    /// never read).
    Kept(Kept),
}

/// An inline run's state, held by its results until they are dropped (its cells go back to
/// the graph's pool, reset, only then).
struct Kept {
    state: Arc<RunState>,
    /// The outcomes the run's task kept.
    task: TaskCells,
    /// The entries, listed at the first call that needs them all.
    listed: OnceLock<Vec<EventRun>>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        // With the cells (its memory for the next run of them, reset with them).
        self.state.keep_task_cells(std::mem::take(&mut self.task));
    }
}

/// One event's entry, where it is kept.
struct Entry<'a> {
    completions: u32,
    attempts: u32,
    nanos: u64,
    latest: Option<&'a Latest>,
}

impl<'a> From<&'a EventRun> for Entry<'a> {
    fn from(event: &'a EventRun) -> Self {
        Entry {
            completions: event.completions,
            attempts: event.attempts,
            nanos: event.nanos,
            latest: event.latest.as_ref(),
        }
    }
}

impl Results {
    /// The results of an in-process run whose events are over: what `state` recorded, and
    /// the outcomes its task kept, if it kept them (an inline run's [`TaskCells`]; their
    /// memory goes back to `state` once these results are dropped).
    pub(crate) fn new(state: &Arc<RunState>, kept: Option<TaskCells>, elapsed: Duration) -> Self {
        let trace = state.take_trace();
        let graph = state.graph().clone();
        let events = match kept {
            // An untimed run's entries have no times to add from the trace's timeline:
            // read in place, unless the run touched a small part of a large graph (its
            // results would hold cells for every event of the graph; listed, they take
            // what it touched, and the cells go back to the pool at once).
            Some(task) if trace.timeline.is_empty() && state.touched_half() => Events::Kept(Kept {
                state: state.clone(),
                task,
                listed: OnceLock::new(),
            }),
            mut kept => {
                let events = state.take_events(&trace, kept.as_mut());
                if let Some(task) = kept {
                    state.keep_task_cells(task);
                }
                Events::Listed(events)
            }
        };
        Results {
            graph,
            events,
            elapsed,
            trace,
        }
    }

    /// Every entry, sorted by node id.
    fn listed(&self) -> &[EventRun] {
        match &self.events {
            Events::Listed(events) => events,
            Events::Kept(kept) => kept.listed.get_or_init(|| {
                kept.state.list_events(&self.trace, |_, cell| {
                    kept.task
                        .outcome(cell.listed_at())
                        .map(|outcome| Outcome {
                            latest: outcome.latest.clone(),
                            completions: outcome.completions,
                        })
                        .unwrap_or_default()
                })
            }),
        }
    }

    /// Results of a run whose state was kept elsewhere (a durable run): an entry per
    /// event it touched, in any order.
    #[cfg(feature = "postgres")]
    pub(crate) fn from_parts(
        graph: Arc<Graph>,
        mut events: Vec<EventRun>,
        elapsed: Duration,
    ) -> Self {
        events.sort_unstable_by_key(|event| event.node);
        Results {
            graph,
            events: Events::Listed(events),
            elapsed,
            // Goto jumps and times are not recorded by durable runs: their pictures show
            // counts and outcomes only.
            trace: RunTrace::default(),
        }
    }

    fn entry<E: Event>(&self, event: E) -> Option<Entry<'_>> {
        let node = self.graph.resolve(event.__key())?;
        match &self.events {
            Events::Listed(events) => {
                let at = events
                    .binary_search_by_key(&node, |event| event.node)
                    .ok()?;
                Some(Entry::from(&events[at]))
            }
            Events::Kept(kept) => {
                let (cell, retries) = kept.state.touched(node)?;
                let outcome = kept.task.outcome(cell.listed_at());
                let completions = outcome.map_or(0, |outcome| outcome.completions);
                Some(Entry {
                    completions,
                    attempts: completions.saturating_add(retries),
                    nanos: 0,
                    latest: outcome.and_then(|outcome| outcome.latest.as_ref()),
                })
            }
        }
    }

    fn latest<E: Event>(&self, event: E) -> Option<&Latest> {
        self.entry(event)?.latest
    }

    /// The events that completed at least once, in registration order.
    fn completed(&self) -> impl Iterator<Item = (&EventRun, &Latest)> + '_ {
        self.listed()
            .iter()
            .filter_map(|event| Some((event, event.latest.as_ref()?)))
    }

    /// The latest value of `event`, if it ran and its latest outcome was a value.
    pub fn get<E: Event>(&self, event: E) -> Option<&E::Output> {
        self.latest(event)?.value_as::<E::Output>()
    }

    /// How the latest run of `event` ended, if it ran.
    pub fn outcome<E: Event>(&self, event: E) -> Option<OutcomeKind> {
        self.latest(event).map(Latest::kind)
    }

    /// How many times `event` completed in this run.
    pub fn count<E: Event>(&self, event: E) -> u32 {
        self.entry(event).map_or(0, |entry| entry.completions)
    }

    /// How often `event` ran in this run and how long it took in total (the time only for
    /// a [timed](crate::Invoke::timed) run).
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn slow() {
    ///     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(slow).timed().await?;
    /// let stats = results.stats(slow);
    /// assert_eq!((stats.runs, stats.attempts), (1, 1));
    /// assert!(stats.total >= std::time::Duration::from_millis(20));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats<E: Event>(&self, event: E) -> EventStats {
        self.entry(event).map_or_else(EventStats::default, stats_of)
    }

    /// How long the run took, from its start to its last event's end.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Where the time went: every event that ran, with its [`EventStats`], most total time
    /// first (times only for a [timed](crate::Invoke::timed) run). Its `Display` is a small
    /// table.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn first() {}
    /// #[listen(first)]
    /// async fn second() {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(first).await?;
    /// let report = results.report();
    /// assert_eq!(report.iter().count(), 2);
    /// assert!(report.iter().all(|(_, stats)| stats.runs == 1));
    /// println!("{report}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn report(&self) -> Report<'_> {
        let mut rows: Vec<(&str, EventStats)> = self
            .completed()
            .map(|(event, _)| (self.name(event), stats_of(Entry::from(event))))
            .collect();
        rows.sort_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(b.0)));
        Report {
            rows,
            elapsed: self.elapsed,
        }
    }

    /// The id of every event that ran, with how its latest run ended, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, OutcomeKind)> + '_ {
        self.completed()
            .map(|(event, latest)| (self.name(event), latest.kind()))
    }

    /// How many events ran at least once.
    pub fn len(&self) -> usize {
        self.completed().count()
    }

    fn name(&self, event: &EventRun) -> &str {
        &self.graph.node(event.node).name
    }

    /// Whether no event ran (never the case after a successful run).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn stats_of(event: Entry<'_>) -> EventStats {
    EventStats {
        runs: event.completions,
        attempts: event.attempts,
        total: Duration::from_nanos(event.nanos),
    }
}

impl fmt::Debug for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// How often one event ran in a run, and how long it took: see [`Results::stats`].
///
/// ```
/// let stats = drive_flow::EventStats::default();
/// assert_eq!((stats.runs, stats.attempts), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStats {
    /// How many times it completed ([`Results::count`]).
    pub runs: u32,
    /// How many attempts it made: `runs` plus its retries.
    pub attempts: u32,
    /// Its total time in flight, from start to end of each run (retries, backoff and waiting
    /// for outside input included), summed over its runs; runs that overlap each count fully.
    /// Zero unless the run is [timed](crate::Invoke::timed).
    pub total: Duration,
}

/// Where the time of a run went: see [`Results::report`].
///
/// ```
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn only() {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), drive_flow::Error> {
/// let results = Drive::new()?.invoke(only).await?;
/// let text = results.report().to_string();
/// assert!(text.contains("::only"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Report<'a> {
    rows: Vec<(&'a str, EventStats)>,
    elapsed: Duration,
}

impl<'a> Report<'a> {
    /// Every event that ran with its stats, most total time first (then by id).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, EventStats)> + '_ {
        self.rows.iter().copied()
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$}  {:>6}  {:>8}  {:>12}",
            "event", "runs", "attempts", "total"
        )?;
        for (name, stats) in &self.rows {
            writeln!(
                f,
                "{:<width$}  {:>6}  {:>8}  {:>12}",
                name,
                stats.runs,
                stats.attempts,
                format!("{:.3?}", stats.total)
            )?;
        }
        write!(f, "run: {:.3?}", self.elapsed)
    }
}

/// Pictures of the run: what it did, drawn on its graph, and its timeline.
impl Results {
    /// The graph of this run as a [Mermaid](https://mermaid.js.org) flowchart, with what the
    /// run did on it. It shows what the run's start and every event that ran reach, drawn as
    /// [`Drive::to_mermaid`](crate::Drive::to_mermaid) draws a graph, and:
    ///
    /// - under each event's name, how many times it ran and how its latest run ended
    ///   (`value`, `goto` or `abort`), its failed attempts if it was retried
    ///   (`2 failed`), and, for a [timed](crate::Invoke::timed) run, its total time;
    /// - events that never ran are greyed out (class `idle`, noted `not run`);
    /// - every goto jump that happened is a dotted arrow from the event that sent it to its
    ///   target, labelled with how many times it jumped (`goto ×3`).
    ///
    /// A run that fails returns its [`Error`](crate::Error), not `Results`: its picture is
    /// not drawn (its [stream](crate::Invoke::start_with_events) tells what happened).
    ///
    /// ```
    /// use drive_flow::{DriveBuilder, Flow, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let mut builder = DriveBuilder::new();
    /// let count = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    /// let start = builder.event("start", || async { Flow::from(1) });
    /// let turn = builder.event("turn", move || {
    ///     let count = count.clone();
    ///     async move {
    ///         if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
    ///             Flow::goto([start], ())
    ///         } else {
    ///             Flow::abort()
    ///         }
    ///     }
    /// });
    /// let never = builder.event("never", || async {});
    /// builder.listen(turn, Group::new([start]));
    /// builder.listen(never, Group::new([turn]));
    /// let drive = builder.build()?;
    ///
    /// let results = drive.invoke(start).await?;
    /// assert_eq!(
    ///     results.to_mermaid(),
    ///     r#"flowchart TD
    ///     e0(["start<br/>3 runs · value"])
    ///     e1["turn<br/>3 runs · abort"]
    ///     e2["never<br/>not run"]
    ///     e0 -->|"0"| e1
    ///     e1 -->|"0"| e2
    ///     e1 -.->|"goto ×2"| e0
    ///     classDef idle fill:#f4f4f4,stroke:#bbbbbb,color:#999999
    ///     class e2 idle
    /// "#
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_mermaid(&self) -> String {
        crate::core::graph::diagram::run_mermaid(&self.graph, self.listed(), &self.trace)
    }

    /// The graph of this run as a [Graphviz](https://graphviz.org) digraph: the same picture
    /// as [`to_mermaid`](Self::to_mermaid) (events that never ran in grey, gotos as dashed
    /// arrows with their counts).
    ///
    /// ```
    /// use drive_flow::{DriveBuilder, Flow, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let mut builder = DriveBuilder::new();
    /// let start = builder.event("start", || async { Flow::from(1) });
    /// let next = builder.event("next", || async { Flow::<()>::abort() });
    /// builder.listen(next, Group::new([start]));
    /// let results = builder.build()?.invoke(start).await?;
    /// assert_eq!(
    ///     results.to_dot(),
    ///     r#"digraph drive_flow {
    ///     node [shape=box];
    ///     e0 [label="start\n1 run · value", style=rounded];
    ///     e1 [label="next\n1 run · abort"];
    ///     e0 -> e1 [label="0"];
    /// }
    /// "#
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_dot(&self) -> String {
        crate::core::graph::diagram::run_dot(&self.graph, self.listed(), &self.trace)
    }

    /// The timeline of a [timed](crate::Invoke::timed) run as a Mermaid `gantt` chart: a
    /// section per event, in the order they first started; in it a bar per run of the
    /// event, from when it got its concurrency slot to its end, in order of start. Bars
    /// that overlap ran at the same time. Times are milliseconds from the start of the run,
    /// rounded (a bar is at least 1 ms long); each bar's label has the run's task id
    /// ([`EventInput::task_id`](crate::EventInput::task_id)) and its exact time.
    ///
    /// An untimed run records no times: its chart has no bars, and a comment that says so.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn first() {}
    /// #[listen(first)]
    /// async fn second() {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(first).timed().await?;
    /// let chart = results.to_gantt();
    /// let lines: Vec<&str> = chart.lines().collect();
    /// assert_eq!(lines[0], "gantt");
    /// assert_eq!(lines[4], "    section first");
    /// assert!(lines[5].starts_with("    task 1 · "));
    /// assert_eq!(lines[6], "    section second");
    /// assert!(lines[7].starts_with("    task 2 · "));
    /// assert_eq!(lines.len(), 8);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_gantt(&self) -> String {
        crate::core::graph::diagram::run_gantt(&self.graph, &self.trace, self.elapsed)
    }

    /// Every goto jump the run made, counted per (source, target) event ids, in the order
    /// each pair first jumped.
    ///
    /// ```
    /// use drive_flow::prelude::*;
    ///
    /// #[event]
    /// async fn again(input: EventInput) -> Flow<u32> {
    ///     let turn = input.get(again).copied().unwrap_or(0);
    ///     if turn < 3 { Flow::goto(again, turn + 1) } else { Flow::abort() }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), drive_flow::Error> {
    /// let results = Drive::new()?.invoke(again).await?;
    /// let gotos: Vec<_> = results.gotos().collect();
    /// assert_eq!(gotos.len(), 1);
    /// assert!(gotos[0].0.ends_with("::again") && gotos[0].1.ends_with("::again"));
    /// assert_eq!(gotos[0].2, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn gotos(&self) -> impl Iterator<Item = (&str, &str, u32)> + '_ {
        self.trace.gotos().iter().map(|&(source, target, count)| {
            (
                &*self.graph.node(source).name,
                &*self.graph.node(target).name,
                count,
            )
        })
    }
}
