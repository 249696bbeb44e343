//! Values as they cross processes: the JSON of a task's input, and the types of the
//! values given from outside a run (its input data, inbox values), known by name.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::codec::{static_codecs, AnyValue, Codec};
use super::error::DurableError;

fn value_types() -> &'static Mutex<HashMap<&'static str, Codec>> {
    static TYPES: OnceLock<Mutex<HashMap<&'static str, Codec>>> = OnceLock::new();
    TYPES.get_or_init(Mutex::default)
}

/// Make `T` known by its name, so that a value of it given from outside a run (the run's
/// input data, an inbox value) can be read back as a `T` in this process.
pub(crate) fn register_value_type<T>()
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    crate::core::lock::lock(value_types()).insert(std::any::type_name::<T>(), Codec::of::<T>());
}

/// The codec of a type known by name: registered, or the output type of an event.
pub(crate) fn value_codec(type_name: &str) -> Option<Codec> {
    if let Some(codec) = crate::core::lock::lock(value_types()).get(type_name) {
        return Some(*codec);
    }
    static_codecs()
        .values()
        .filter_map(|entry| entry.codec.ok())
        .find(|codec| codec.type_name == type_name)
}

/// A value given from outside a run, with the name of its type.
pub(crate) fn encode_typed<T>(value: &T, what: &str) -> Result<Value, DurableError>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    register_value_type::<T>();
    let value = serde_json::to_value(value).map_err(|error| DurableError::Encode {
        what: what.to_string(),
        detail: error.to_string(),
    })?;
    Ok(json!({ "type": std::any::type_name::<T>(), "value": value }))
}

/// Read back a value stored by [`encode_typed`].
pub(crate) fn decode_typed(stored: &Value) -> Result<AnyValue, String> {
    let type_name = stored.get("type").and_then(Value::as_str).unwrap_or("");
    let value = stored.get("value").cloned().unwrap_or(Value::Null);
    match value_codec(type_name) {
        Some(codec) => codec.decode(value),
        None => Err(format!(
            "a value of type `{type_name}`, which this process does not know: make it known \
             with `Worker::value_type::<{type_name}>()`"
        )),
    }
}
