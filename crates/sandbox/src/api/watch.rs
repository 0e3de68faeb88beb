//! Watches on the store: what a change is, who is interested in it, and the
//! per-watcher queue that delivers changes in resourceVersion order.
//!
//! Bounds: each watcher has a queue of `StoreConfig::watch_buffer` changes. A watcher
//! that falls that far behind is closed (as a real API server closes a slow watch),
//! and its client resumes from the last resourceVersion it saw.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::fields::FieldSelector;
use super::object::StoredObject;
use podwarden_base::selector::Selector;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed write, kept in the history window and sent to watchers.
#[derive(Debug)]
pub struct Change {
    pub resource_version: u64,
    pub kind: ChangeKind,
    /// The new state; for a delete, the final state carrying the delete's resourceVersion.
    pub object: Arc<StoredObject>,
    /// The state before the change (none for a create).
    pub previous: Option<Arc<StoredObject>>,
}

/// Which objects a list or watch selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &StoredObject) -> bool {
        if let Some(ns) = &self.namespace
            && object.namespace != *ns
        {
            return false;
        }
        self.labels.matches(&object.labels) && self.fields.matches(|f| object.field(f))
    }

    /// Whether a watcher with this filter must hear of `change`.
    pub fn interested(&self, change: &Change) -> bool {
        self.matches(&change.object) || change.previous.as_deref().is_some_and(|p| self.matches(p))
    }

    /// The event type this watcher sees for a change: an object moving out of the
    /// selection is DELETED for it, one moving in is ADDED (as the real server does).
    pub fn event_for(&self, change: &Change) -> Option<WatchEvent> {
        let now = self.matches(&change.object);
        let before = change.previous.as_deref().is_some_and(|p| self.matches(p));
        let object = change.object.clone();
        match change.kind {
            ChangeKind::Added if now => Some(WatchEvent::Added(object)),
            ChangeKind::Deleted if now || before => Some(WatchEvent::Deleted(object)),
            ChangeKind::Modified => match (before, now) {
                (true, true) => Some(WatchEvent::Modified(object)),
                (false, true) => Some(WatchEvent::Added(object)),
                (true, false) => Some(WatchEvent::Deleted(object)),
                (false, false) => None,
            },
            _ => None,
        }
    }
}

/// What a watcher receives.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    Added(Arc<StoredObject>),
    Modified(Arc<StoredObject>),
    Deleted(Arc<StoredObject>),
    /// Progress: every change up to `resource_version` has been delivered.
    Bookmark {
        resource_version: u64,
        /// Set on the bookmark that closes `sendInitialEvents`.
        initial_events_end: bool,
    },
}

impl WatchEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark { .. } => "BOOKMARK",
        }
    }

    pub fn resource_version(&self) -> u64 {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                o.resource_version
            }
            WatchEvent::Bookmark {
                resource_version, ..
            } => *resource_version,
        }
    }

    pub fn object(&self) -> Option<&Arc<StoredObject>> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => Some(o),
            WatchEvent::Bookmark { .. } => None,
        }
    }
}

/// The store side of a watcher: its filter and the sending half of its queue.
#[derive(Debug)]
pub(crate) struct WatcherSlot {
    pub filter: Arc<Filter>,
    pub tx: mpsc::Sender<Arc<Change>>,
}

/// An open watch. Yields the initial events (if any), then every later change in
/// resourceVersion order. Ends (`None`) when the store closed it for being too slow.
#[derive(Debug)]
pub struct Watch {
    filter: Arc<Filter>,
    backlog: VecDeque<WatchEvent>,
    rx: mpsc::Receiver<Arc<Change>>,
    committed: Arc<AtomicU64>,
    last_resource_version: u64,
}

impl Watch {
    pub(crate) fn new(
        filter: Arc<Filter>,
        backlog: VecDeque<WatchEvent>,
        rx: mpsc::Receiver<Arc<Change>>,
        committed: Arc<AtomicU64>,
        start_resource_version: u64,
    ) -> Self {
        Watch {
            filter,
            backlog,
            rx,
            committed,
            last_resource_version: start_resource_version,
        }
    }

    /// The next event, waiting for one; `None` once the watch is closed.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        if let Some(ev) = self.pop_backlog() {
            return Some(ev);
        }
        loop {
            let change = self.rx.recv().await?;
            if let Some(ev) = self.accept(&change) {
                return Some(ev);
            }
        }
    }

    /// The next event if one is ready now.
    pub fn try_next(&mut self) -> Option<WatchEvent> {
        if let Some(ev) = self.pop_backlog() {
            return Some(ev);
        }
        loop {
            let change = self.rx.try_recv().ok()?;
            if let Some(ev) = self.accept(&change) {
                return Some(ev);
            }
        }
    }

    /// Whether the store closed this watch (it fell `watch_buffer` changes behind).
    pub fn is_closed(&self) -> bool {
        self.backlog.is_empty() && self.rx.is_closed() && self.rx.is_empty()
    }

    /// A progress bookmark. Appends every ready event to `out` first, so the bookmark's
    /// resourceVersion never runs ahead of an undelivered change.
    pub fn bookmark(&mut self, out: &mut Vec<WatchEvent>) -> WatchEvent {
        // Read the committed version before draining: every change up to it is
        // already queued (the store publishes it after queueing).
        let committed = self.committed.load(Ordering::Acquire);
        while let Some(ev) = self.try_next() {
            out.push(ev);
        }
        let rv = committed.max(self.last_resource_version);
        self.last_resource_version = rv;
        WatchEvent::Bookmark {
            resource_version: rv,
            initial_events_end: false,
        }
    }

    /// The resourceVersion of the last event handed out.
    pub fn last_resource_version(&self) -> u64 {
        self.last_resource_version
    }

    fn pop_backlog(&mut self) -> Option<WatchEvent> {
        let ev = self.backlog.pop_front()?;
        self.last_resource_version = self.last_resource_version.max(ev.resource_version());
        Some(ev)
    }

    fn accept(&mut self, change: &Change) -> Option<WatchEvent> {
        let ev = self.filter.event_for(change)?;
        self.last_resource_version = change.resource_version;
        Some(ev)
    }
}
