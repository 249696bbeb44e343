//! What `#[event]` and `#[listen]` submit through `inventory`, collected by
//! [`DriveBuilder::add_registered`](crate::DriveBuilder::add_registered).

use crate::core::event::StaticEvent;
use crate::drive::builder::DriveBuilder;

/// One event made by the macros: its metadata and the function that adds it, with its
/// groups, to a builder. Generated code only.
#[doc(hidden)]
pub struct Registration {
    pub meta: &'static StaticEvent,
    pub register: fn(&mut DriveBuilder),
}

inventory::collect!(Registration);

impl DriveBuilder {
    /// Add every event of the binary made with `#[event]`/`#[listen]`, with their groups,
    /// in the order of their ids. Calling it twice adds them once.
    pub fn add_registered(&mut self) -> &mut Self {
        if !self.registered_added {
            self.registered_added = true;
            for registration in registrations() {
                (registration.register)(self);
            }
        }
        self
    }
}

/// Every registration of the binary, sorted by event id (inventory's order is unspecified).
fn registrations() -> Vec<&'static Registration> {
    let mut all: Vec<&'static Registration> = inventory::iter::<Registration>.into_iter().collect();
    all.sort_by(|a, b| a.meta.id.cmp(b.meta.id));
    all
}
