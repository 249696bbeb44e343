//! A task's input as stored: what an [`EventInput`] holds, as JSON.
//!
//! `{"group": name, "group_index": k, "behavior": "dispatch" | "goto" | "input",
//!   "entries": [{"event": id, "kind": "value" | "goto" | "abort", "value": json}],
//!   "user": {"type": name, "value": json} | null}`

use serde_json::{json, Value};

use super::drive::DurableIndex;
use super::values::decode_typed;
use crate::core::graph::NodeId;
use crate::core::input::{
    BareInput, Behavior, Entries, Entry, EventInput, Latest, Origin, OutcomeKind,
};

/// Why a stored input could not be read: the event concerned, and what went wrong.
pub(crate) struct InputError {
    pub(crate) event: String,
    pub(crate) detail: String,
}

/// The input of a task of event `node`, read back: every value decoded with the codec of
/// the event that produced it.
pub(crate) fn decode(
    index: &DurableIndex,
    node: NodeId,
    stored: &Value,
    task_id: u64,
    run: i64,
) -> Result<EventInput, InputError> {
    let graph = &index.graph;
    let own = || index.name(node).to_string();
    let behavior = match stored.get("behavior").and_then(Value::as_str) {
        Some("dispatch") => Behavior::Dispatch,
        Some("goto") => Behavior::Goto,
        _ => Behavior::Input,
    };
    let origin = match behavior {
        Behavior::Dispatch => {
            let k = stored
                .get("group_index")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
            let first = graph.listens[node as usize];
            let end = graph.listens[node as usize + 1];
            if first + k >= end {
                return Err(InputError {
                    event: own(),
                    detail: format!("it has no group number {k} in this build"),
                });
            }
            Origin::Group(first + k)
        }
        Behavior::Goto => Origin::Goto,
        Behavior::Input => Origin::UserInput,
    };
    let mut entries = Vec::new();
    if let Some(stored_entries) = stored.get("entries").and_then(Value::as_array) {
        for entry in stored_entries {
            let name = entry.get("event").and_then(Value::as_str).unwrap_or("");
            let member = index.node(name).ok_or_else(|| InputError {
                event: own(),
                detail: format!("its input names `{name}`, which this build does not know"),
            })?;
            let codec = &index.codecs[member as usize];
            let value = entry.get("value").cloned().unwrap_or(Value::Null);
            let decoded = |value: Value| {
                codec.decode(value).map_err(|detail| InputError {
                    event: name.to_string(),
                    detail,
                })
            };
            let latest = match entry.get("kind").and_then(Value::as_str) {
                Some("value") => Latest::value_of(decoded(value)?),
                Some("goto") => Latest::goto_of(decoded(value)?),
                _ => Latest::ABORT,
            };
            entries.push(Entry {
                node: member,
                latest,
            });
        }
    }
    let entries = match stored.get("user") {
        Some(user) if !user.is_null() => {
            let user = decode_typed(user).map_err(|detail| InputError {
                event: own(),
                detail: format!("its run's input: {detail}"),
            })?;
            // Only a start input has data, and a start input has no results.
            if !entries.is_empty() {
                return Err(InputError {
                    event: own(),
                    detail: "its input holds both results and the run's input".to_string(),
                });
            }
            Entries::User(user)
        }
        _ => Entries::collect(entries.into_iter()),
    };
    Ok(EventInput {
        graph: Some(graph.clone()),
        origin,
        entries,
        task_id,
        run,
    })
}

/// The JSON of a latest outcome whose value is already JSON (as in a completion, where
/// values are kept as [`Value`]s).
pub(crate) fn latest_json(latest: &Latest) -> (&'static str, Value) {
    let kind = match latest.kind() {
        OutcomeKind::Value => "value",
        OutcomeKind::Goto => "goto",
        OutcomeKind::Abort => return ("abort", Value::Null),
    };
    let json = latest
        .value_or_payload()
        .and_then(|value| value.downcast_ref::<Value>())
        .cloned()
        .unwrap_or(Value::Null);
    (kind, json)
}

/// The stored input of a task started by a completion, whose values are JSON.
pub(crate) fn encode(index: &DurableIndex, node: NodeId, input: &BareInput) -> Value {
    let graph = &index.graph;
    let (behavior, group_index) = match input.origin {
        Origin::Group(group) => ("dispatch", Some(group - graph.listens[node as usize])),
        Origin::Goto => ("goto", None),
        Origin::UserInput => ("input", None),
    };
    let entries: Vec<Value> = input
        .entries
        .iter()
        .map(|entry| {
            let (kind, value) = latest_json(&entry.latest);
            json!({ "event": index.name(entry.node), "kind": kind, "value": value })
        })
        .collect();
    json!({
        "group": input.group_name_in(graph),
        "group_index": group_index,
        "behavior": behavior,
        "entries": entries,
        "user": Value::Null,
    })
}
