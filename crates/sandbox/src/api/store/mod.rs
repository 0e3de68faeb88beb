//! The in-memory store: every object, one cluster-wide resourceVersion, a bounded
//! history per resource for watch-from-version, and the fan-out to watchers.
//!
//! This is the in-process API the simulated components use; the HTTP server is a thin
//! layer over it, so both see the same objects, resourceVersions and errors.
//!
//! Concurrency: one mutex guards the tables. Writes read the current object, compute
//! the new one outside the lock (decode, admission, patch), then commit under the lock
//! if nothing changed meanwhile, else recompute (at most `MAX_WRITE_RETRIES` times).
//! Commits assign the next resourceVersion, append to the history and queue the
//! change for watchers, all under the lock, so every watcher sees changes in
//! resourceVersion order.
//!
//! - `read`: get, list, pagination and `continue` tokens;
//! - `write`: create, update, patch and apply, and their retry loops;
//! - `commit`: the commit under the lock and what it does to other resources;
//! - `delete`: delete, delete a collection, evict;
//! - `watch`: watch start from the objects or the history window.

mod cluster_ip;
mod commit;
mod delete;
mod read;
mod watch;
mod write;

pub use delete::Deleted;
pub use read::{ListPage, served_form};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;

use super::clock::{SharedClock, SystemClock};
use super::error::ApiError;
use super::object::{ObjectKey, StoredObject};
use super::options::WriteOptions;
use super::resources::{Registry, ResourceType};
use super::watch::{Change, WatcherSlot};

/// A write that keeps losing the race to other writers gives up after this many tries
/// with 409 Conflict.
const MAX_WRITE_RETRIES: usize = 64;

/// Namespaces every cluster starts with.
const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Changes kept per resource for watch-from-resourceVersion; a watch from an older
    /// version gets 410 Gone. Bounds the history memory: each change keeps the object
    /// versions before and after it alive (about two stored objects per change).
    pub history_window: usize,
    /// Changes queued per watcher before the watch is closed as too slow.
    pub watch_buffer: usize,
    pub clock: SharedClock,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_window: 10_000,
            watch_buffer: 10_000,
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    objects: BTreeMap<ObjectKey, Arc<StoredObject>>,
    history: VecDeque<Arc<Change>>,
    /// Changes at or below this version may have left the history.
    compacted: u64,
    watchers: Vec<WatcherSlot>,
}

#[derive(Debug, Default)]
struct Inner {
    resource_version: u64,
    tables: HashMap<String, Table>,
    /// Where the next cluster IP allocation starts looking (an offset in the range).
    next_cluster_ip: u32,
}

/// Counters of what the store did on its own (not injected faults).
#[derive(Debug, Default)]
pub struct StoreStats {
    pub slow_watchers_closed: AtomicU64,
}

#[derive(Debug)]
struct StoreCore {
    inner: Mutex<Inner>,
    /// The resourceVersion of the last commit whose change is queued to every watcher.
    committed: Arc<AtomicU64>,
    registry: Registry,
    config: StoreConfig,
    stats: StoreStats,
}

/// The sandbox's object store. Cheap to clone; clones share the data.
#[derive(Debug, Clone)]
pub struct Store {
    shared: Arc<StoreCore>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StoreConfig::default())
    }
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        let store = Store {
            shared: Arc::new(StoreCore {
                inner: Mutex::new(Inner::default()),
                committed: Arc::new(AtomicU64::new(0)),
                registry: Registry::default(),
                config,
                stats: StoreStats::default(),
            }),
        };
        if let Ok(namespaces) = store.resource("", "v1", "namespaces") {
            for ns in DEFAULT_NAMESPACES {
                let object =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                // A fresh store has no namespaces: creating them cannot conflict.
                let _ = store.create(&namespaces, None, object, &WriteOptions::default());
            }
        }
        store
    }

    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> &StoreStats {
        &self.shared.stats
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.shared.config.clock.now()
    }

    /// The served type at `group/version/plural`, or 404.
    pub fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceType>, ApiError> {
        self.registry()
            .find(group, version, plural)
            .ok_or_else(|| ApiError::NotFound {
                resource: plural.to_string(),
                group: group.to_string(),
                name: String::new(),
            })
    }

    /// The latest committed resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> Result<ObjectKey, ApiError> {
        if rt.namespaced {
            match namespace {
                Some(ns) if !ns.is_empty() => Ok((ns.to_string(), name.to_string())),
                _ => Err(ApiError::BadRequest(format!(
                    "{} is namespaced: a namespace is required",
                    rt.group_resource()
                ))),
            }
        } else {
            Ok((String::new(), name.to_string()))
        }
    }
}
