//! [`DriveBuilder`]: the programmatic way to make a graph. The macros are sugar over it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::context::ContextNeed;
use crate::drive::Drive;
use crate::error::BuildError;
use crate::event::{Event, EventKey, EventRef, Handle, StaticEvent};
use crate::graph::{describe_key, resolve_key, Graph, GroupInfo, Node, NodeId, Retrigger};
use crate::handler::{ErasedHandler, Handler};
use crate::marks::MarksPool;
use crate::options::EventOptions;

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

    /// Name the group (by default its position among the listener's groups: `"0"`, `"1"`, …).
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
    needs: Vec<ContextNeed>,
    options: EventOptions,
}

/// Builds a [`Drive`] from closures and groups, without macros: for generated graphs,
/// tests and plugins. Events defined with `#[event]`/`#[listen]` join with
/// [`add_registered`](Self::add_registered); [`Drive::new`] is exactly
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
    registered_added: bool,
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
            registered_added: false,
        }
    }

    /// Add every event of the binary made with `#[event]`/`#[listen]`, with their groups,
    /// in the order of their ids. Calling it twice adds them once.
    pub fn add_registered(&mut self) -> &mut Self {
        if !self.registered_added {
            self.registered_added = true;
            for registration in crate::registry::registrations() {
                (registration.register)(self);
            }
        }
        self
    }

    /// Add an event made of an async closure, and return its typed handle.
    ///
    /// The closure takes up to three parameters among [`EventInput`](crate::EventInput) and
    /// [`Context<T>`](crate::Context), and returns `()`, [`Flow<T>`](crate::Flow) or a
    /// `Result` of either. Names must be unique within a graph.
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
            needs: H::context_needs(),
            options: EventOptions::default(),
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
            options,
        });
    }

    /// Check and index the graph.
    ///
    /// # Errors
    /// [`BuildError`] when two events share a name, when a group names an event that is not
    /// in the graph, or when a group is empty.
    pub fn build(self) -> Result<Drive, BuildError> {
        let graph = self.into_graph()?;
        Ok(Drive::from_graph(Arc::new(graph)))
    }

    pub(crate) fn into_graph(self) -> Result<Graph, BuildError> {
        let count = self.nodes.len();
        let mut names = HashSet::with_capacity(count);
        let mut static_index = HashMap::new();
        for (index, spec) in self.nodes.iter().enumerate() {
            if !names.insert(spec.name.clone()) {
                return Err(BuildError::DuplicateEvent {
                    event: spec.name.to_string(),
                });
            }
            if let EventKey::Static(meta) = spec.key {
                static_index.insert(meta as *const StaticEvent as usize, index as NodeId);
            }
        }
        let tag = self.tag;
        let resolve = |event: EventRef| resolve_key(tag, count, &static_index, event.0);

        // Per listener: its kept groups as (members, name, retrigger), in the order added.
        type Kept = (Vec<NodeId>, Arc<str>, Retrigger);
        let mut per_listener: Vec<Vec<Kept>> = Vec::new();
        per_listener.resize_with(count, Vec::new);
        let mut stamps = vec![0u32; count];
        let mut group_stamp = 0u32;
        for (listener, group) in self.groups {
            let Some(listener_id) = resolve(listener) else {
                return Err(BuildError::UnknownListener {
                    listener: describe_key(listener.0),
                });
            };
            let listener_name = &self.nodes[listener_id as usize].name;
            let mut members = Vec::with_capacity(group.members.len());
            // A member repeated inside one group counts once; stamps keep this linear.
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
                    members.push(member_id);
                }
            }
            if members.is_empty() {
                return Err(BuildError::EmptyGroup {
                    listener: listener_name.to_string(),
                });
            }
            let existing = &mut per_listener[listener_id as usize];
            if existing.iter().any(|(same, _, _)| *same == members) {
                tracing::warn!(
                    event = %listener_name,
                    "event `{listener_name}` listens twice to the same group; the second is ignored"
                );
                continue;
            }
            let name = group
                .name
                .unwrap_or_else(|| Arc::from(existing.len().to_string()));
            existing.push((members, name, group.retrigger));
        }

        let mut options: Vec<EventOptions> = self.nodes.iter().map(|n| n.options.clone()).collect();
        for (event, set) in self.options {
            let Some(id) = resolve(event) else {
                return Err(BuildError::UnknownListener {
                    listener: describe_key(event.0),
                });
            };
            options[id as usize] = set;
        }

        let mut groups = Vec::new();
        let mut slots = Vec::new();
        let mut listens = Vec::with_capacity(count + 1);
        let mut member_counts = vec![0u32; count + 1];
        for (listener, listener_groups) in per_listener.into_iter().enumerate() {
            listens.push(groups.len() as u32);
            for (members, name, retrigger) in listener_groups {
                let start = slots.len() as u32;
                for &member in &members {
                    member_counts[member as usize] += 1;
                }
                slots.extend(members);
                groups.push(GroupInfo {
                    listener: listener as NodeId,
                    name,
                    retrigger,
                    slots: start..slots.len() as u32,
                });
            }
        }
        listens.push(groups.len() as u32);

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

        let nodes: Vec<Node> = self
            .nodes
            .into_iter()
            .zip(options)
            .map(|(spec, options)| Node {
                name: spec.name,
                handler: spec.handler,
                needs: spec.needs,
                options,
            })
            .collect();
        let needs_anything = nodes.iter().any(|node: &Node| !node.needs.is_empty());
        Ok(Graph {
            tag,
            nodes,
            groups,
            slots,
            listens,
            member_of_start,
            member_of,
            static_index,
            needs_anything,
            marks: MarksPool::default(),
        })
    }
}
