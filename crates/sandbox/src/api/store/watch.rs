//! Watches: opening one (from the current objects, or replayed out of the history
//! window from a resourceVersion), closing them all, counting them.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::super::error::ApiError;
use super::super::options::WatchOptions;
use super::super::resources::ResourceType;
use super::super::watch::{Filter, Watch, WatchEvent, WatcherSlot};
use super::Store;
use super::read::parse_rv;

impl Store {
    /// Opens a watch. With no resourceVersion (or "0", or `sendInitialEvents`) it
    /// starts with the current objects; from "N" it replays every change after N out
    /// of the history window, or fails with 410 Expired when N has left it.
    pub fn watch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &WatchOptions,
    ) -> Result<Watch, ApiError> {
        let namespace = namespace.filter(|ns| !ns.is_empty() && rt.namespaced);
        let filter = Arc::new(Filter {
            namespace: namespace.map(str::to_string),
            labels: opts.label_selector.clone(),
            fields: opts.field_selector.clone(),
        });
        let requested = match opts.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(rv) => Some(parse_rv(rv)?),
        };
        let initial = opts.send_initial_events.unwrap_or(requested.is_none());
        let (tx, rx) = mpsc::channel(self.shared.config.watch_buffer.max(1));
        let mut inner = self.lock();
        let current = inner.resource_version;
        let table = inner.tables.entry(rt.storage.clone()).or_default();
        let mut backlog = VecDeque::new();
        let start = if initial {
            for object in table.objects.values() {
                if filter.matches(object) {
                    backlog.push_back(WatchEvent::Added(object.clone()));
                }
            }
            if opts.send_initial_events == Some(true) && opts.allow_bookmarks {
                backlog.push_back(WatchEvent::Bookmark {
                    resource_version: current,
                    initial_events_end: true,
                });
            }
            current
        } else {
            let from = requested.unwrap_or(current);
            if from > current {
                return Err(ApiError::Timeout(format!(
                    "Too large resource version: {from}, current: {current}"
                )));
            }
            if from < table.compacted {
                return Err(ApiError::too_old(from, table.compacted));
            }
            for change in table.history.iter().filter(|c| c.resource_version > from) {
                if let Some(ev) = filter.event_for(change) {
                    backlog.push_back(ev);
                }
            }
            from
        };
        // Watches that ended on a quiet resource leave their slot until the next change;
        // registering drops them, so slots never outnumber the open watches by much.
        table.watchers.retain(|w| !w.tx.is_closed());
        table.watchers.push(WatcherSlot {
            filter: filter.clone(),
            tx,
        });
        drop(inner);
        Ok(Watch::new(
            filter,
            backlog,
            rx,
            self.shared.committed.clone(),
            start,
        ))
    }

    /// Closes every open watch (their clients see the stream end and resume).
    pub fn close_all_watches(&self) -> usize {
        let mut inner = self.lock();
        let mut closed = 0;
        for table in inner.tables.values_mut() {
            closed += table.watchers.iter().filter(|w| !w.tx.is_closed()).count();
            table.watchers.clear();
        }
        closed
    }

    /// Number of open watches.
    pub fn watch_count(&self) -> usize {
        let inner = self.lock();
        inner
            .tables
            .values()
            .map(|t| t.watchers.iter().filter(|w| !w.tx.is_closed()).count())
            .sum()
    }
}
