//! Codecs: how an event's output crosses processes as JSON.
//!
//! `#[event]`/`#[listen]` capture each event's codec where the output type is known, through
//! [`codec!`](crate::__private::codec) (autoref specialisation: a codec when the output is
//! `Serialize + DeserializeOwned`, none otherwise, so that in-process events of any type
//! still compile). Events made with a [`DriveBuilder`] get theirs from
//! [`DriveBuilder::serde`]. A durable drive or worker over an event without one is refused
//! when it is built, naming the event and its type.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::event::{Handle, StaticEvent};
use crate::DriveBuilder;

/// A type-erased output value.
pub(crate) use crate::core::flow::AnyValue;

/// How the values of one type become JSON and come back. Generated code only.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Codec {
    pub(crate) type_name: &'static str,
    pub(crate) encode: fn(&(dyn Any + Send + Sync)) -> Result<Value, String>,
    pub(crate) decode: fn(Value) -> Result<AnyValue, String>,
    pub(crate) decode_boxed: fn(Value) -> Result<Box<dyn Any + Send>, String>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("type_name", &self.type_name)
            .finish()
    }
}

impl Codec {
    /// The codec of `T`.
    pub(crate) fn of<T: Serialize + DeserializeOwned + Send + Sync + 'static>() -> Codec {
        Codec {
            type_name: std::any::type_name::<T>(),
            encode: |value| match value.downcast_ref::<T>() {
                Some(value) => serde_json::to_value(value).map_err(|e| e.to_string()),
                None => Err(format!(
                    "the value is not a `{}` (an internal error)",
                    std::any::type_name::<T>()
                )),
            },
            decode: |json| {
                serde_json::from_value::<T>(json)
                    .map(|value| crate::core::flow::erase_value(value))
                    .map_err(|e| e.to_string())
            },
            decode_boxed: |json| {
                serde_json::from_value::<T>(json)
                    .map(|value| Box::new(value) as Box<dyn Any + Send>)
                    .map_err(|e| e.to_string())
            },
        }
    }

    /// The codec of `T`, read from owned JSON values through `Deserialize<'static>`.
    pub(crate) fn of_static<T>() -> Codec
    where
        T: Serialize + Deserialize<'static> + Send + Sync + 'static,
    {
        Codec {
            type_name: std::any::type_name::<T>(),
            encode: |value| match value.downcast_ref::<T>() {
                Some(value) => serde_json::to_value(value).map_err(|e| e.to_string()),
                None => Err(format!(
                    "the value is not a `{}` (an internal error)",
                    std::any::type_name::<T>()
                )),
            },
            decode: |json| {
                T::deserialize(json)
                    .map(|value| crate::core::flow::erase_value(value))
                    .map_err(|e| e.to_string())
            },
            decode_boxed: |json| {
                T::deserialize(json)
                    .map(|value| Box::new(value) as Box<dyn Any + Send>)
                    .map_err(|e| e.to_string())
            },
        }
    }

    /// Encode an erased value of this codec's type.
    pub(crate) fn encode(&self, value: &(dyn Any + Send + Sync)) -> Result<Value, String> {
        (self.encode)(value)
    }

    /// Decode a JSON value into this codec's type.
    pub(crate) fn decode(&self, json: Value) -> Result<AnyValue, String> {
        (self.decode)(json)
    }
}

/// What the macros register per event: its output codec, or its output type's name.
/// Generated code only.
#[doc(hidden)]
pub struct CodecRegistration {
    /// The event.
    pub meta: &'static StaticEvent,
    /// Its codec, or the name of its output type when it has none.
    pub probe: fn() -> Result<Codec, &'static str>,
    /// Where the event is defined.
    pub file: &'static str,
    /// Its line.
    pub line: u32,
}

inventory::collect!(CodecRegistration);

/// The probe of autoref specialisation. Generated code only.
#[doc(hidden)]
pub struct CodecProbe<T>(PhantomData<fn() -> T>);

impl<T> CodecProbe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CodecProbe(PhantomData)
    }
}

/// Chosen when the output is `Serialize + DeserializeOwned`. Generated code only.
#[doc(hidden)]
pub trait ViaSerde {
    /// The codec.
    fn probe(&self) -> Result<Codec, &'static str>;
}

// `Deserialize<'static>`, not `DeserializeOwned`: trait selection ignores lifetimes, so a
// higher-ranked bound on an output such as `&'static str` would be a hard error instead of
// a fallback to `ViaNothing`. Every output is `'static`, so for the types that can be read
// from an owned JSON value the two bounds agree; the others (borrowed strings) get a codec
// whose decoding fails with a clear error naming the event.
impl<T> ViaSerde for CodecProbe<T>
where
    T: Serialize + Deserialize<'static> + Send + Sync + 'static,
{
    fn probe(&self) -> Result<Codec, &'static str> {
        Ok(Codec::of_static::<T>())
    }
}

/// Chosen otherwise: no codec, the type's name. Generated code only.
#[doc(hidden)]
pub trait ViaNothing {
    /// No codec.
    fn probe(&self) -> Result<Codec, &'static str>;
}

impl<T> ViaNothing for &CodecProbe<T> {
    fn probe(&self) -> Result<Codec, &'static str> {
        Err(std::any::type_name::<T>())
    }
}

/// Where a static event's codec comes from.
pub(crate) struct StaticCodec {
    pub(crate) codec: Result<Codec, &'static str>,
    pub(crate) location: String,
}

/// The codecs the macros registered, by event metadata address.
pub(crate) fn static_codecs() -> &'static HashMap<usize, StaticCodec> {
    static CODECS: OnceLock<HashMap<usize, StaticCodec>> = OnceLock::new();
    CODECS.get_or_init(|| {
        inventory::iter::<CodecRegistration>
            .into_iter()
            .map(|registration| {
                (
                    registration.meta as *const StaticEvent as usize,
                    StaticCodec {
                        codec: (registration.probe)(),
                        location: format!(
                            " (defined at {}:{})",
                            registration.file, registration.line
                        ),
                    },
                )
            })
            .collect()
    })
}

/// Codecs given to builders with [`DriveBuilder::serde`], by (builder tag, node).
fn builder_codecs() -> &'static Mutex<HashMap<(u32, u32), Codec>> {
    static CODECS: OnceLock<Mutex<HashMap<(u32, u32), Codec>>> = OnceLock::new();
    CODECS.get_or_init(Mutex::default)
}

/// The codec given for a builder's node.
pub(crate) fn builder_codec(graph: u32, node: u32) -> Option<Codec> {
    crate::core::lock::lock(builder_codecs())
        .get(&(graph, node))
        .copied()
}

impl DriveBuilder {
    /// Let `event`'s output cross processes as JSON, so that the event can run in durable
    /// runs (cargo feature `postgres`). Events made with `#[event]`/`#[listen]` need
    /// nothing of the kind: the macros find it themselves.
    ///
    /// ```
    /// use drive_flow::{DriveBuilder, Flow};
    ///
    /// let mut builder = DriveBuilder::new();
    /// let count = builder.event("count", || async { Flow::from(3u32) });
    /// builder.serde(count);
    /// ```
    pub fn serde<T>(&mut self, event: Handle<T>) -> &mut Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        crate::core::lock::lock(builder_codecs())
            .insert((event.graph, event.node), Codec::of::<T>());
        self
    }
}

/// Capture the codec of an event's output type: generated code only. Without the cargo
/// feature `postgres`, it expands to nothing.
#[doc(hidden)]
#[macro_export]
macro_rules! __drive_flow_codec {
    ($meta:expr, $output:ty) => {
        $crate::__private::inventory::submit! {
            $crate::__private::CodecRegistration {
                meta: $meta,
                probe: || {
                    #[allow(unused_imports)]
                    use $crate::__private::{ViaNothing as _, ViaSerde as _};
                    (&$crate::__private::CodecProbe::<$output>::new()).probe()
                },
                file: ::core::file!(),
                line: ::core::line!(),
            }
        }
    };
}
