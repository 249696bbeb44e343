//! Per-event options.

/// Options of one event. Set with attribute options on `#[event]`/`#[listen]`, or with
/// [`DriveBuilder::options`](crate::DriveBuilder::options).
///
/// ```
/// let options = drive_flow::EventOptions::default();
/// assert_eq!(options, drive_flow::EventOptions::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventOptions {}
