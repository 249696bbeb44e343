//! [`DriveBuilder`]: the programmatic way to make a graph. The macros are sugar over it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::body::handler::{Body, ErasedHandler, Handler};
use crate::body::param::{is_checked, is_input, ContextNeed};
use crate::core::error::BuildError;
use crate::core::event::{Event, EventKey, EventRef, Handle, StaticEvent};
use crate::core::graph::cells::CellsPool;
use crate::core::graph::{
    describe_key, resolve_key, Graph, GroupInfo, Node, NodeId, Retrigger, FAN_OUT_MIN,
};
use crate::core::options::EventOptions;

/// A group of events that an event listens to: it runs once every member has a result.
///
/// ```
/// use drive_flow::{Group, Retrigger};
/// use drive_flow::prelude::*;
///
/// #[event]
/// async fn a() {}
/// #[event]
/// async fn b() {}
///
/// let group = Group::new([EventRef::from(a), b.into()]).name("both").retrigger(Retrigger::Any);
/// assert_eq!(group.members().len(), 2);
/// # use drive_flow::EventRef;
/// ```
#[derive(Clone, Debug)]
pub struct Group {
    members: Vec<EventRef>,
    name: Option<Arc<str>>,
    retrigger: Retrigger,
}

impl Group {
    /// A group of these members, in this order, with the default name and [`Retrigger::All`].
    pub fn new<I>(members: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<EventRef>,
    {
        Group {
            members: members.into_iter().map(Into::into).collect(),
            name: None,
            retrigger: Retrigger::All,
        }
    }

    /// Name the group (by default its position among the listener's groups: `"0"`, `"1"`, …;
    /// an empty name gives the default name too).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// Set how the listener fires again.
    pub fn retrigger(mut self, retrigger: Retrigger) -> Self {
        self.retrigger = retrigger;
        self
    }

    /// The members, in order.
    pub fn members(&self) -> &[EventRef] {
        &self.members
    }
}

struct NodeSpec {
    name: Arc<str>,
    key: EventKey,
    handler: ErasedHandler,
    needs: Box<[ContextNeed]>,
    options: Option<Box<EventOptions>>,
}

/// Builds a [`Drive`](crate::Drive) from closures and groups, without macros: for generated graphs,
/// tests and plugins. Events defined with `#[event]`/`#[listen]` join with
/// [`add_registered`](Self::add_registered); [`Drive::new`](crate::Drive::new) is exactly
/// `DriveBuilder::new().add_registered().build()`.
///
/// Events may be added in any order and groups may form cycles; everything is checked by
/// [`build`](Self::build).
///
/// ```
/// use drive_flow::{DriveBuilder, EventInput, Flow, Group};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut builder = DriveBuilder::new();
/// let start = builder.event("start", || async {});
/// let hello = builder.event("hello", || async { Flow::from(1) });
/// let world = builder.event("world", || async { Flow::from(2) });
/// let adding = builder.event("adding", move |input: EventInput| async move {
///     Flow::from(input.get(hello).unwrap() + input.get(world).unwrap())
/// });
/// builder.listen(hello, Group::new([start]));
/// builder.listen(world, Group::new([start]));
/// builder.listen(adding, Group::new([hello, world]));
///
/// let drive = builder.build()?;
/// let results = drive.invoke(start).await?;
/// assert_eq!(results.get(adding), Some(&3));
/// # Ok::<(), drive_flow::Error>(())
/// # }).unwrap();
/// ```
pub struct DriveBuilder {
    tag: u32,
    nodes: Vec<NodeSpec>,
    groups: Vec<(EventRef, Group)>,
    options: Vec<(EventRef, EventOptions)>,
    /// (event, start of a child workflow it runs), for the pictures.
    runs: Vec<(EventRef, EventRef)>,
    pub(crate) registered_added: bool,
}

impl Default for DriveBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DriveBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        static NEXT_TAG: AtomicU32 = AtomicU32::new(1);
        DriveBuilder {
            tag: NEXT_TAG.fetch_add(1, Ordering::Relaxed),
            nodes: Vec::new(),
            groups: Vec::new(),
            options: Vec::new(),
            runs: Vec::new(),
            registered_added: false,
        }
    }

    /// Add an event made of an async closure, and return its typed handle.
    ///
    /// The closure takes up to three parameters among [`EventInput`](crate::EventInput) and
    /// [`Context<T>`](crate::Context), and returns `()`, [`Flow<T>`](crate::Flow) or a
    /// `Result` of either. A name must differ from every other event's name or id in the
    /// graph ([`build`](Self::build) fails with [`BuildError::DuplicateEvent`] otherwise).
    pub fn event<Args, H: Handler<Args>>(
        &mut self,
        name: impl Into<String>,
        handler: H,
    ) -> Handle<H::Output> {
        let node = self.nodes.len() as u32;
        self.nodes.push(NodeSpec {
            name: Arc::from(name.into()),
            key: EventKey::Node {
                graph: self.tag,
                node,
            },
            handler: handler.into_erased(),
            needs: H::context_needs().into_boxed_slice(),
            options: None,
        });
        Handle::new(self.tag, node)
    }

    /// Make `listener` listen to `group`: it runs once every member has a result.
    ///
    /// Groups of one listener are named `"0"`, `"1"`, … in the order they are added, unless
    /// named. A group with the same members in the same order as an earlier group of the
    /// same listener is dropped with a warning.
    pub fn listen(&mut self, listener: impl Event, group: Group) -> &mut Self {
        self.groups.push((listener.into(), group));
        self
    }

    /// Set the options of an event.
    pub fn options(&mut self, event: impl Event, options: EventOptions) -> &mut Self {
        self.options.push((event.into(), options));
        self
    }

    /// Declare that `event` runs the child workflow that starts at `child_start` (through
    /// its [`Child`](crate::Child) parameter), so that [`Drive::to_mermaid`](crate::Drive::to_mermaid)
    /// and [`Drive::to_dot`](crate::Drive::to_dot) draw that workflow inside a box beside
    /// `event`. It changes nothing else: an event may run any workflow, declared or not.
    /// `#[event(runs = child_start)]` (or on `#[listen]`) says the same.
    ///
    /// ```
    /// use drive_flow::{Child, DriveBuilder, EventInput, Flow, Group};
    ///
    /// let mut builder = DriveBuilder::new();
    /// let fetch = builder.event("fetch", || async { Flow::from(1) });
    /// let parse = builder.event("parse", || async { Flow::from(2) });
    /// builder.listen(parse, Group::new([fetch]));
    /// let main = builder.event("main", move |child: Child| async move {
    ///     let found = child.invoke(fetch).await?;
    ///     Ok::<_, drive_flow::Error>(Flow::from(found.count(parse)))
    /// });
    /// builder.runs(main, fetch);
    /// let drive = builder.build()?;
    /// assert!(drive.to_mermaid().contains("subgraph"));
    /// # Ok::<(), drive_flow::Error>(())
    /// ```
    pub fn runs(&mut self, event: impl Event, child_start: impl Into<EventRef>) -> &mut Self {
        self.runs.push((event.into(), child_start.into()));
        self
    }

    /// Add an event made by the macros. Generated code only.
    #[doc(hidden)]
    pub fn __static_event(
        &mut self,
        meta: &'static StaticEvent,
        needs: Vec<Option<ContextNeed>>,
        options: EventOptions,
        handler: ErasedHandler,
    ) {
        self.nodes.push(NodeSpec {
            name: Arc::from(meta.id),
            key: EventKey::Static(meta),
            handler,
            needs: needs.into_iter().flatten().collect(),
            options: boxed_options(options),
        });
    }

    /// The checked, indexed graph, without the bodies (tests of the dispatch core).
    #[cfg(test)]
    pub(crate) fn into_graph(self) -> Result<Graph, BuildError> {
        self.into_parts().map(|(graph, _)| graph)
    }

    /// The checked, indexed graph, and the body of each of its events.
    pub(crate) fn into_parts(self) -> Result<(Graph, Vec<Body>), BuildError> {
        let DriveBuilder {
            tag,
            nodes: mut specs,
            groups: added_groups,
            options: added_options,
            runs: added_runs,
            ..
        } = self;
        let count = specs.len();
        let mut static_index = HashMap::new();
        {
            // Events of the macros are told apart by their statics, so two of one id (defined
            // in two function bodies of one module) are accepted, shown with their sites; a
            // name given to the builder must differ from every other.
            let mut first_of_name: HashMap<&str, usize> = HashMap::with_capacity(count);
            let mut ambiguous = Vec::new();
            for (index, spec) in specs.iter().enumerate() {
                if let Some(&first) = first_of_name.get(&*spec.name) {
                    let (EventKey::Static(_), EventKey::Static(_)) = (specs[first].key, spec.key)
                    else {
                        return Err(BuildError::DuplicateEvent {
                            event: spec.name.to_string(),
                        });
                    };
                    ambiguous.extend([first, index]);
                } else {
                    first_of_name.insert(&spec.name, index);
                }
                if let EventKey::Static(meta) = spec.key {
                    static_index.insert(meta as *const StaticEvent as usize, index as NodeId);
                }
            }
            drop(first_of_name);
            for index in ambiguous {
                if let EventKey::Static(meta) = specs[index].key {
                    specs[index].name = Arc::from(format!("{}@{}", meta.id, meta.site()));
                }
            }
        }
        let resolve = |event: EventRef| resolve_key(tag, count, &static_index, event.0);

        // The groups kept, in the order added, their members flattened into one buffer: no
        // allocation per group or per listener while building.
        let mut kept: Vec<Kept> = Vec::with_capacity(added_groups.len());
        let mut kept_members: Vec<NodeId> = Vec::new();
        // Per listener: its last kept group (a chain through `Kept::previous`), and how many.
        let mut last_kept = vec![NONE; count];
        let mut kept_per_listener = vec![0u32; count];
        // A member repeated inside one group counts once; stamps keep this linear.
        let mut stamps = vec![0u32; count];
        let mut group_stamp = 0u32;
        for (listener, group) in added_groups {
            let Some(listener_id) = resolve(listener) else {
                return Err(BuildError::UnknownListener {
                    listener: describe_key(listener.0),
                });
            };
            let listener_name = &specs[listener_id as usize].name;
            let start = kept_members.len();
            group_stamp += 1;
            for member in group.members {
                let Some(member_id) = resolve(member) else {
                    return Err(BuildError::UnknownMember {
                        listener: listener_name.to_string(),
                        member: describe_key(member.0),
                    });
                };
                let stamp = &mut stamps[member_id as usize];
                if *stamp != group_stamp {
                    *stamp = group_stamp;
                    kept_members.push(member_id);
                }
            }
            if kept_members.len() == start {
                return Err(BuildError::EmptyGroup {
                    listener: listener_name.to_string(),
                });
            }
            let members = &kept_members[start..];
            let mut other = last_kept[listener_id as usize];
            let mut duplicate = false;
            while other != NONE {
                let earlier: &Kept = &kept[other as usize];
                if kept_members[earlier.members.clone()] == *members {
                    duplicate = true;
                    break;
                }
                other = earlier.previous;
            }
            if duplicate {
                tracing::warn!(
                    event = %listener_name,
                    "event `{listener_name}` listens twice to the same group; the second is ignored"
                );
                kept_members.truncate(start);
                continue;
            }
            let position = &mut kept_per_listener[listener_id as usize];
            kept.push(Kept {
                listener: listener_id,
                members: start..kept_members.len(),
                name: group.name,
                position: *position,
                retrigger: group.retrigger,
                previous: last_kept[listener_id as usize],
            });
            *position += 1;
            last_kept[listener_id as usize] = (kept.len() - 1) as u32;
        }
        drop(stamps);
        drop(last_kept);

        let mut runs = Vec::with_capacity(added_runs.len());
        for (event, child) in added_runs {
            let (Some(id), Some(child_id)) = (resolve(event), resolve(child)) else {
                let name = |key: EventRef| match resolve(key) {
                    Some(id) => format!("`{}`", specs[id as usize].name),
                    None => describe_key(key.0),
                };
                return Err(BuildError::UnknownChild {
                    event: name(event),
                    child: name(child),
                });
            };
            if !runs.contains(&(id, child_id)) {
                runs.push((id, child_id));
            }
        }

        for (event, set) in added_options {
            let Some(id) = resolve(event) else {
                return Err(BuildError::UnknownListener {
                    listener: describe_key(event.0),
                });
            };
            specs[id as usize].options = boxed_options(set);
        }

        // Groups ordered by listener, then in the order added: a counting sort.
        let mut listens = Vec::with_capacity(count + 1);
        let mut total = 0u32;
        for &n in &kept_per_listener {
            listens.push(total);
            total += n;
        }
        listens.push(total);
        drop(kept_per_listener);
        let mut order = vec![0u32; kept.len()];
        let mut cursor = listens.clone();
        for (index, group) in kept.iter().enumerate() {
            let at = &mut cursor[group.listener as usize];
            order[*at as usize] = index as u32;
            *at += 1;
        }
        drop(cursor);

        let mut groups = Vec::with_capacity(kept.len());
        let mut slots = Vec::with_capacity(kept_members.len());
        let mut member_counts = vec![0u32; count + 1];
        // Default names ("0", "1", …) are shared by every group at the same position.
        let mut default_names: Vec<Arc<str>> = Vec::new();
        for &index in &order {
            let group = &mut kept[index as usize];
            let members = &kept_members[group.members.clone()];
            for &member in members {
                member_counts[member as usize] += 1;
            }
            let start = slots.len() as u32;
            slots.extend_from_slice(members);
            // A group named `""` takes its default name, as in Python (`name or index`).
            let name = match group.name.take() {
                Some(name) if !name.is_empty() => name,
                _ => default_name(&mut default_names, group.position),
            };
            groups.push(GroupInfo::new(
                group.listener,
                name,
                group.retrigger,
                start..slots.len() as u32,
                specs[group.listener as usize].needs.iter().any(is_input),
            ));
        }
        drop(kept);
        drop(kept_members);
        drop(order);

        // Counting sort of (group, slot) by member: groups are already in registration order.
        let mut member_of_start = Vec::with_capacity(count + 1);
        let mut total = 0u32;
        for &n in &member_counts[..count] {
            member_of_start.push(total);
            total += n;
        }
        member_of_start.push(total);
        let mut cursor = member_of_start.clone();
        let mut member_of = vec![(0u32, 0u32); total as usize];
        for (group_id, group) in groups.iter().enumerate() {
            for slot in group.slots.clone() {
                let member = slots[slot as usize] as usize;
                member_of[cursor[member] as usize] = (group_id as u32, slot);
                cursor[member] += 1;
            }
        }

        let fans_out = member_of_start
            .windows(2)
            .map(|range| {
                let of = &member_of[range[0] as usize..range[1] as usize];
                of.len() >= FAN_OUT_MIN
                    && of
                        .iter()
                        .all(|&(group, _)| groups[group as usize].slots.len() == 1)
            })
            .collect();

        // Into a buffer of its own: collecting would reuse the larger one of the specs.
        let mut nodes: Vec<Node> = Vec::with_capacity(count);
        let mut bodies: Vec<Body> = Vec::with_capacity(count);
        for spec in specs {
            nodes.push(Node {
                name: spec.name,
                meta: match spec.key {
                    EventKey::Static(meta) => Some(meta),
                    EventKey::Node { .. } => None,
                },
                options: spec.options,
                metrics: Default::default(),
            });
            bodies.push(Body::new(spec.handler, spec.needs));
        }
        // Only contexts and inboxes are checked before a run (see `check_context`).
        let needs_anything = bodies.iter().any(|body| body.needs.iter().any(is_checked));
        let cells = CellsPool::new(&groups);
        let graph = Graph {
            tag,
            nodes,
            groups,
            slots,
            listens,
            member_of_start,
            member_of,
            fans_out,
            static_index,
            needs_anything,
            cells,
            runs,
        };
        Ok((graph, bodies))
    }
}

/// Options as a node keeps them: nothing for an event without timeout or retries.
fn boxed_options(options: EventOptions) -> Option<Box<EventOptions>> {
    (!options.is_plain()).then(|| Box::new(options))
}

/// "No group": the end of a listener's chain of kept groups.
const NONE: u32 = u32::MAX;

/// A group kept while building, before groups are ordered by listener.
struct Kept {
    listener: NodeId,
    /// Its members, in the builder's flat buffer of members.
    members: Range<usize>,
    name: Option<Arc<str>>,
    /// Its position among its listener's groups (its default name).
    position: u32,
    retrigger: Retrigger,
    /// The listener's kept group before this one, or [`NONE`].
    previous: u32,
}

/// The default name of the group at `position` among its listener's groups, shared.
fn default_name(names: &mut Vec<Arc<str>>, position: u32) -> Arc<str> {
    while names.len() <= position as usize {
        names.push(Arc::from(names.len().to_string()));
    }
    names[position as usize].clone()
}
