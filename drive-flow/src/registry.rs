//! What `#[event]` and `#[listen]` submit through `inventory`, collected by
//! [`DriveBuilder::add_registered`](crate::DriveBuilder::add_registered).

use crate::builder::DriveBuilder;
use crate::event::StaticEvent;

/// One event made by the macros: its metadata and the function that adds it, with its
/// groups, to a builder. Generated code only.
#[doc(hidden)]
pub struct Registration {
    pub meta: &'static StaticEvent,
    pub register: fn(&mut DriveBuilder),
}

inventory::collect!(Registration);

/// Every registration of the binary, sorted by event id, then by definition site (events of
/// one id defined in two function bodies): inventory's order is unspecified.
pub(crate) fn registrations() -> Vec<&'static Registration> {
    let mut all: Vec<&'static Registration> = inventory::iter::<Registration>.into_iter().collect();
    all.sort_by_key(|r| (r.meta.id, r.meta.file, r.meta.line, r.meta.column));
    all
}
