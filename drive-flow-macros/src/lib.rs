//! Procedural macros of [drive-flow](https://docs.rs/drive-flow): `#[event]` and `#[listen]`.
//!
//! Use them through `drive_flow` (`use drive_flow::prelude::*;`); this crate is an
//! implementation detail. Each macro parses the function and every drive-flow attribute on
//! it (`parse`), checks them, and generates the event (`expand`). On error, the errors are
//! emitted beside a placeholder event of the same name and the function's body, so that the
//! rest of the code still resolves and reports no errors of its own.

mod expand;
mod parse;

use proc_macro::TokenStream;

/// Marks an `async fn` as an event that listens to nothing. See `drive_flow::event`.
#[proc_macro_attribute]
pub fn event(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::entry(parse::AttrKind::Event, attr.into(), item.into()).into()
}

/// Marks an `async fn` as an event that runs once every event of a group has a result.
/// See `drive_flow::listen`.
#[proc_macro_attribute]
pub fn listen(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::entry(parse::AttrKind::Listen, attr.into(), item.into()).into()
}

/// Emits the item, then the attribute's arguments. Generated code only: `#[event]` and
/// `#[listen]` put what they generate in this attribute of the event's handle module, so that
/// where a module is refused (in an `impl` block) the rest is never expanded, and the user
/// sees one error instead of one per generated item.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn __then(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut out = item;
    out.extend(attr);
    out
}
