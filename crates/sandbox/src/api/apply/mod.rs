//! Server-side apply and `managedFields`: which manager owns which field, conflicts
//! between managers, and the removal of fields a manager stopped applying.
//!
//! Field sets are kept as sets of leaf paths in the `fieldsV1` vocabulary (`f:name`
//! for a field, `k:{"name":"app"}` for a keyed list element, `.` for the element
//! itself). Lists without keys are atomic: owned as a whole.
//!
//! - `fields`: field paths, the leaves of an object, fieldsV1 trees;
//! - `diff`: the paths an update changed and removed;
//! - `managed_fields`: the entries, and how writes move fields between managers;
//! - `merge`: an apply: its conflicts, its merge into the live object.

mod diff;
mod fields;
mod managed_fields;
mod merge;

pub(crate) use managed_fields::record_view_update;
pub use managed_fields::{record_apply_create, record_update};
pub use merge::{apply, strip_for_create};
