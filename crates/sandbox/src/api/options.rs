//! Options of the store's operations, shared by the store, admission, apply, the HTTP
//! layer and the typed API: what a request asks for besides its object.

use super::fields::FieldSelector;
use podwarden_base::selector::Selector;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself: status changes are ignored when the kind has a status subresource.
    #[default]
    Main,
    /// `/status`: only status changes are kept.
    Status,
    /// `pods/{name}/binding`: the scheduler's write of `spec.nodeName`.
    Binding,
}

impl Subresource {
    pub fn name(self) -> Option<&'static str> {
        match self {
            Subresource::Main => None,
            Subresource::Status => Some("status"),
            Subresource::Binding => Some("binding"),
        }
    }
}

/// Options of a write (create, update, patch).
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub subresource: Subresource,
    /// `fieldManager`; defaults to the client's name for updates, required for apply.
    pub field_manager: Option<String>,
    /// Server-side apply: take ownership of conflicting fields.
    pub force: bool,
    /// `fieldValidation=Strict`: unknown fields of custom resources are an error.
    pub strict: bool,
    /// `dryRun=All`: everything but the commit; the result is what would be stored.
    pub dry_run: bool,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: Selector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// Options of a watch.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub label_selector: Selector,
    pub field_selector: FieldSelector,
    /// Unset or "0": start with the current objects as ADDED; "N": every change after N.
    pub resource_version: Option<String>,
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
}
