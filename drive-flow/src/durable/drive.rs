//! [`DurableDrive`]: a drive whose runs live in a [`PgStore`], and the index a durable
//! process keeps of its graph (events by id, their codecs).

use std::collections::HashMap;
use std::sync::Arc;

use super::codec::{builder_codec, static_codecs, Codec};
use super::error::DurableError;
use super::store::PgStore;
use crate::body::handler::Bodies;
use crate::core::graph::{Graph, NodeId};
use crate::Drive;

/// What a durable process knows of its graph: events by their stable id, and each
/// event's output codec.
pub(crate) struct DurableIndex {
    pub(crate) graph: Arc<Graph>,
    /// The event bodies, by node id.
    pub(crate) bodies: Bodies,
    pub(crate) by_name: HashMap<Arc<str>, NodeId>,
    pub(crate) codecs: Vec<Codec>,
    /// Every event id of the graph, for the claim.
    pub(crate) known: Vec<String>,
}

impl DurableIndex {
    /// Index the graph; every event needs a codec.
    pub(crate) fn new(graph: Arc<Graph>, bodies: Bodies) -> Result<Self, DurableError> {
        let mut codecs = Vec::with_capacity(graph.nodes.len());
        // Static events by their metadata address.
        let mut statics: HashMap<NodeId, usize> = HashMap::new();
        for (&address, &node) in &graph.static_index {
            statics.insert(node, address);
        }
        for (index, node) in graph.nodes.iter().enumerate() {
            let id = index as NodeId;
            let codec = match statics.get(&id) {
                Some(address) => match static_codecs().get(address) {
                    Some(entry) => entry
                        .codec
                        .map_err(|type_name| (type_name, entry.location.clone())),
                    None => Err(("(unknown)", String::new())),
                },
                None => builder_codec(graph.tag, id).ok_or_else(|| {
                    (
                        "(the output type of a builder event without `DriveBuilder::serde`)",
                        String::new(),
                    )
                }),
            };
            match codec {
                Ok(codec) => codecs.push(codec),
                Err((type_name, location)) => {
                    return Err(DurableError::NotSerializable {
                        event: node.name.to_string(),
                        type_name,
                        location,
                    })
                }
            }
        }
        let by_name = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (node.name.clone(), index as NodeId))
            .collect();
        let known = graph
            .nodes
            .iter()
            .map(|node| node.name.to_string())
            .collect();
        Ok(DurableIndex {
            graph,
            bodies,
            by_name,
            codecs,
            known,
        })
    }

    pub(crate) fn node(&self, name: &str) -> Option<NodeId> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn name(&self, node: NodeId) -> &str {
        &self.graph.node(node).name
    }
}

/// A [`Drive`] whose runs live in a [`PgStore`]: submit runs, wait for them, read their
/// status and history, cancel them and send them inbox values, from any process. Made by
/// [`Drive::durable`]; cheap to clone.
///
/// Runs are carried out by [`Worker`](super::Worker)s, in this process or others.
#[derive(Clone)]
pub struct DurableDrive {
    pub(crate) store: PgStore,
    pub(crate) index: Arc<DurableIndex>,
}

impl std::fmt::Debug for DurableDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableDrive")
            .field("store", &self.store)
            .field("events", &self.index.graph.nodes.len())
            .finish()
    }
}

impl Drive {
    /// This drive's runs, kept in `store`: the client side of durable runs (cargo feature
    /// `postgres`).
    ///
    /// # Errors
    /// [`DurableError::NotSerializable`] naming the first event (by id) whose output type
    /// is not `Serialize + DeserializeOwned`: durable runs store every output as JSON.
    pub fn durable(&self, store: &PgStore) -> Result<DurableDrive, DurableError> {
        Ok(DurableDrive {
            store: store.clone(),
            index: Arc::new(DurableIndex::new(self.graph.clone(), self.bodies.clone())?),
        })
    }
}
