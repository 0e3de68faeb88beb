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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::admission;
use super::apply;
use super::clock::{SharedClock, SystemClock};
use super::custom_resources;
use super::error::ApiError;
use super::events;
use super::lazy::Lazy;
use super::object::{self, ObjectKey, STATUS_VIEW_FIELDS, StoredObject};
use super::options::{DeleteOptions, ListOptions, Subresource, WatchOptions, WriteOptions};
use super::patch::{self, Patch};
use super::resources::{Flavor, Registry, ResourceType};
use super::watch::{Change, ChangeKind, Filter, Watch, WatchEvent, WatcherSlot};

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

/// Result of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this is its final state.
    Gone(Arc<StoredObject>),
    /// The object is being deleted (grace period or finalizers); this is its new state.
    Pending(Arc<StoredObject>),
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Arc<StoredObject>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
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

    // ---- reads -------------------------------------------------------------

    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let key = Self::key(rt, namespace, name)?;
        self.get_key(rt, &key)
            .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))
    }

    fn get_key(&self, rt: &ResourceType, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        let inner = self.lock();
        inner
            .tables
            .get(&rt.storage)
            .and_then(|t| t.objects.get(key))
            .cloned()
    }

    /// Lists objects: selectors, `limit`/`continue` pagination, and a consistent
    /// snapshot at the first page's resourceVersion (rebuilt from the history window;
    /// 410 Expired when that version has left it).
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let namespace = namespace.filter(|ns| !ns.is_empty() && rt.namespaced);
        let filter = Filter {
            namespace: namespace.map(str::to_string),
            labels: opts.label_selector.clone(),
            fields: opts.field_selector.clone(),
        };
        let token = match &opts.continue_token {
            Some(t) if !t.is_empty() => Some(ContinueToken::decode(t)?),
            _ => None,
        };
        let inner = self.lock();
        let current = inner.resource_version;
        let at = match &token {
            Some(t) => Some(t.resource_version),
            None => requested_list_version(opts, current)?,
        };
        let empty = Table::default();
        let table = inner.tables.get(&rt.storage).unwrap_or(&empty);
        let overlay = match at {
            Some(rv) if rv < current => {
                if rv < table.compacted {
                    return Err(if token.is_some() {
                        ApiError::Gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into())
                    } else {
                        ApiError::too_old(rv, table.compacted)
                    });
                }
                table.state_overlay(rv)
            }
            _ => BTreeMap::new(),
        };
        let list_rv = at.unwrap_or(current);
        let lower: Bound<ObjectKey> = match (&token, namespace) {
            (Some(t), _) => Bound::Excluded(t.start.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let exact_name = filter.fields.exact_name().map(str::to_string);
        let limit = opts.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for object in merged_range(&table.objects, &overlay, lower) {
            if let Some(ns) = namespace
                && object.namespace != ns
            {
                break;
            }
            if exact_name.as_deref().is_some_and(|n| n != object.name) {
                continue;
            }
            if !filter.matches(&object) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(object);
        }
        drop(inner);
        let continue_token = match (more, items.last()) {
            (true, Some(last)) => Some(
                ContinueToken {
                    resource_version: list_rv,
                    start: last.key(),
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(ListPage {
            items,
            resource_version: list_rv,
            continue_token,
        })
    }

    // ---- writes ------------------------------------------------------------

    /// Creates an object as the real API server does (SEMANTICS.md A2): namespace of
    /// the request vs the object, `generateName`, uid, creationTimestamp, defaults,
    /// required fields; 404 if the namespace does not exist, 409 if the name is taken.
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        object: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>, ApiError> {
        admission::check_kind(rt, &object)?;
        let object = self.to_storage(rt, object)?;
        let manager = opts
            .field_manager
            .clone()
            .unwrap_or_else(|| "unknown".into());
        self.insert_new(rt, namespace, object, opts, |object, now| {
            apply::record_update(rt, None, object, &manager, opts.subresource, now)
        })
    }

    /// Replaces an object (PUT). A `metadata.resourceVersion` in the body must match
    /// the stored one (409 Conflict otherwise); without one the update is unconditional.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>, ApiError> {
        admission::check_kind(rt, &object)?;
        let object = self.to_storage(rt, object)?;
        let body_name = object::meta_str(&object, "name").unwrap_or(name);
        if body_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let precondition = object::meta_str(&object, "resourceVersion")
            .filter(|rv| !rv.is_empty())
            .map(str::to_string);
        self.guaranteed_update(rt, namespace, name, opts, |current| {
            let Some(current) = current else {
                return Err(ApiError::not_found(&rt.plural, &rt.group, name));
            };
            if let Some(rv) = &precondition
                && *rv != current.resource_version.to_string()
            {
                return Err(ApiError::conflict(&rt.plural, &rt.group, name));
            }
            Ok(object.clone())
        })
    }

    /// Patches an object: JSON merge, JSON patch, strategic merge (built-in kinds) or
    /// server-side apply (which creates the object when it does not exist).
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>, ApiError> {
        if let Patch::Apply(body) = patch {
            let manager = opts.field_manager.as_deref().unwrap_or_default();
            if manager.is_empty() {
                return Err(ApiError::BadRequest(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                ));
            }
            admission::check_kind(rt, body)?;
            let body = self.to_storage(rt, body.clone())?;
            let key = Self::key(rt, namespace, name)?;
            if self.get_key(rt, &key).is_none() {
                if opts.subresource != Subresource::Main {
                    return Err(ApiError::not_found(&rt.plural, &rt.group, name));
                }
                let mut object = apply::strip_for_create(&body);
                object::meta_mut(&mut object).insert("name".into(), json!(name));
                let created = self.create_applied(rt, namespace, object, &body, manager, opts);
                match created {
                    Err(ApiError::AlreadyExists { .. }) => {} // lost a race: apply onto it
                    other => return other,
                }
            }
            // Apply reads the whole object, managedFields included: never the status view.
            return self.guaranteed_update(rt, namespace, name, opts, |current| {
                let Some(current) = current else {
                    return Err(ApiError::not_found(&rt.plural, &rt.group, name));
                };
                apply::apply(
                    rt,
                    &current.value(),
                    &body,
                    manager,
                    opts.force,
                    opts.subresource,
                    self.now(),
                )
            });
        }
        if takes_status_view(rt, opts) && fits_status_view(patch) {
            return self.patch_view(rt, namespace, name, patch, STATUS_VIEW_FIELDS, opts);
        }
        if let Some(members) = member_view(rt, opts, patch) {
            return self.patch_view(rt, namespace, name, patch, &members, opts);
        }
        self.update_object(rt, namespace, name, opts, |_, object| {
            let served = served_form(rt, std::mem::take(object));
            let patched = patch::apply_patch(rt, served, patch)?;
            *object = self.to_storage(rt, patched)?;
            Ok(())
        })
    }

    /// A patch applied to a view of the object: its status view (see
    /// [`takes_status_view`]) or the members a patch touches (see [`member_view`]).
    fn patch_view(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        members: &[&str],
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let key = Self::key(rt, namespace, name)?;
        for _ in 0..MAX_WRITE_RETRIES {
            let Some(current) = self.get_key(rt, &key) else {
                return Err(ApiError::not_found(&rt.plural, &rt.group, name));
            };
            let old = current.try_view(members)?;
            let patched = patch::apply_patch(rt, old.clone(), patch)?;
            if let Some(stored) =
                self.commit_status_view(rt, &key, &current, members, &old, patched, opts)?
            {
                return Ok(stored);
            }
        }
        Err(ApiError::conflict(&rt.plural, &rt.group, name))
    }

    /// The rest of a write computed on a view `old` of `current` (its status view, or
    /// the `members` a patch names): admission, managedFields, the no-change check, the
    /// commit. `None` when another write committed first.
    #[allow(clippy::too_many_arguments)]
    fn commit_status_view(
        &self,
        rt: &ResourceType,
        key: &ObjectKey,
        current: &Arc<StoredObject>,
        members: &[&str],
        old: &Value,
        mut desired: Value,
        opts: &WriteOptions,
    ) -> Result<Option<Arc<StoredObject>>, ApiError> {
        admission::admit_update(rt, old, &mut desired, opts)?;
        // The write's own managedFields when it has them, else the stored ones.
        let mut entries = match object::meta_mut(&mut desired).remove("managedFields") {
            Some(Value::Array(list)) if !list.is_empty() => {
                list.into_iter().map(Lazy::Value).collect()
            }
            _ => current.managed_fields()?,
        };
        let manager = opts.field_manager.as_deref().unwrap_or("unknown");
        apply::record_view_update(
            rt,
            old,
            &desired,
            &mut entries,
            manager,
            opts.subresource,
            self.now(),
        )?;
        // Nothing changed: no new resourceVersion, no event (as the real server).
        if object::equal_ignoring(old, &desired, &[], &["resourceVersion", "managedFields"]) {
            return Ok(Some(current.clone()));
        }
        if opts.dry_run {
            return Ok(Some(Arc::new(StoredObject::from_status_view(
                rt.flavor,
                current.resource_version,
                &desired,
                members,
                entries,
                current,
            )?)));
        }
        let finished = admission::deletion_finished(&desired);
        let mut inner = self.lock();
        let still = inner
            .tables
            .get(&rt.storage)
            .and_then(|t| t.objects.get(key));
        if !still.is_some_and(|s| Arc::ptr_eq(s, current)) {
            return Ok(None); // lost the race: recompute on the new state
        }
        let draft = (!finished).then_some(Draft::StatusView {
            view: desired,
            members,
            managed_fields: entries,
            base: current,
        });
        let stored = self.commit(&mut inner, rt, key.clone(), draft, Some(current.clone()))?;
        drop(inner);
        if finished {
            self.after_write(rt, Some(current), None);
        } else {
            self.after_write(rt, Some(current), Some(&stored));
        }
        Ok(Some(stored))
    }

    fn create_applied(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        object: Value,
        body: &Value,
        manager: &str,
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>, ApiError> {
        self.insert_new(rt, namespace, object, opts, |object, now| {
            apply::record_apply_create(rt, object, body, manager, now)
        })
    }

    /// The create path shared by POST and by an apply that creates: namespace rules,
    /// admission, managedFields (`record`), then the insert (409 if the name is taken).
    fn insert_new(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        opts: &WriteOptions,
        record: impl FnOnce(&mut Value, jiff::Timestamp),
    ) -> Result<Arc<StoredObject>, ApiError> {
        let namespace = admission::resolve_namespace(rt, namespace, &mut object)?;
        if let Some(ns) = &namespace {
            self.check_namespace_accepts(ns)?;
        }
        admission::admit_create(self.now(), rt, &mut object, opts)?;
        record(&mut object, self.now());
        let name = object::meta_str(&object, "name")
            .unwrap_or_default()
            .to_string();
        let key = Self::key(rt, namespace.as_deref(), &name)?;
        let mut inner = self.lock();
        if inner
            .tables
            .get(&rt.storage)
            .is_some_and(|t| t.objects.contains_key(&key))
        {
            return Err(ApiError::already_exists(&rt.plural, &rt.group, &name));
        }
        if opts.dry_run {
            return Ok(Arc::new(StoredObject::new(rt.flavor, 0, &object)?));
        }
        let stored = self.commit(&mut inner, rt, key, Some(Draft::Whole(object)), None)?;
        drop(inner);
        self.after_write(rt, None, Some(&stored));
        Ok(stored)
    }

    /// Read-modify-write with optimistic concurrency. `mutate` gets the current object
    /// and returns the desired one; admission (immutable fields, status subresource,
    /// generation, finalizer-driven deletion) is applied on top.
    ///
    /// A pod status write only takes status, labels, annotations and finalizers from
    /// `mutate`'s result: returning the (changed) [`StoredObject::status_view`] spares
    /// parsing and copying the whole pod.
    pub fn guaranteed_update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &WriteOptions,
        mut mutate: impl FnMut(Option<&Arc<StoredObject>>) -> Result<Value, ApiError>,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let key = Self::key(rt, namespace, name)?;
        for _ in 0..MAX_WRITE_RETRIES {
            let current = self.get_key(rt, &key);
            if takes_status_view(rt, opts)
                && let Some(current) = &current
            {
                let old = current.try_status_view()?;
                let desired = mutate(Some(current))?;
                match self.commit_status_view(
                    rt,
                    &key,
                    current,
                    STATUS_VIEW_FIELDS,
                    &old,
                    desired,
                    opts,
                )? {
                    Some(stored) => return Ok(stored),
                    None => continue,
                }
            }
            let desired = mutate(current.as_ref())?;
            let Some(current) = current else {
                return Err(ApiError::not_found(&rt.plural, &rt.group, name));
            };
            let old = current.value();
            if let Some(stored) = self.commit_whole(rt, &key, &current, &old, desired, opts)? {
                return Ok(stored);
            }
        }
        Err(ApiError::conflict(&rt.plural, &rt.group, name))
    }

    /// Read-modify-write of a pod's status subresource on its status view (see
    /// [`StoredObject::status_view`]): `edit` changes a copy of the current view
    /// (metadata without managedFields, and status) in place; only status, labels,
    /// annotations and finalizers are taken from it. For any other write this is
    /// [`Self::update_object`] on the whole object.
    pub fn update_status_view(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &WriteOptions,
        edit: impl FnMut(&Arc<StoredObject>, &mut Value) -> Result<(), ApiError>,
    ) -> Result<Arc<StoredObject>, ApiError> {
        self.edit_loop(rt, namespace, name, opts, true, edit)
    }

    /// Read-modify-write of an existing object with optimistic concurrency: `edit`
    /// changes a copy of the whole current object in place. The stored object is
    /// parsed once per attempt, where [`Self::guaranteed_update`] leaves the parsing to
    /// its closure.
    pub fn update_object(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &WriteOptions,
        edit: impl FnMut(&Arc<StoredObject>, &mut Value) -> Result<(), ApiError>,
    ) -> Result<Arc<StoredObject>, ApiError> {
        self.edit_loop(rt, namespace, name, opts, false, edit)
    }

    /// The retry loop of [`Self::update_object`] and [`Self::update_status_view`]
    /// (`on_view`: a pod status write edits its status view, not the whole pod).
    fn edit_loop(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &WriteOptions,
        on_view: bool,
        mut edit: impl FnMut(&Arc<StoredObject>, &mut Value) -> Result<(), ApiError>,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let key = Self::key(rt, namespace, name)?;
        for _ in 0..MAX_WRITE_RETRIES {
            let Some(current) = self.get_key(rt, &key) else {
                return Err(ApiError::not_found(&rt.plural, &rt.group, name));
            };
            let stored = if takes_status_view(rt, opts) {
                let old = current.try_status_view()?;
                let mut desired = if on_view {
                    old.clone()
                } else {
                    current.value()
                };
                edit(&current, &mut desired)?;
                let view = STATUS_VIEW_FIELDS;
                self.commit_status_view(rt, &key, &current, view, &old, desired, opts)?
            } else {
                let old = current.value();
                let mut desired = old.clone();
                edit(&current, &mut desired)?;
                self.commit_whole(rt, &key, &current, &old, desired, opts)?
            };
            if let Some(stored) = stored {
                return Ok(stored);
            }
        }
        Err(ApiError::conflict(&rt.plural, &rt.group, name))
    }

    /// The rest of a whole-object write computed on `old`, the parsed `current`:
    /// admission, managedFields, the no-change check, the commit. `None` when another
    /// write committed first.
    fn commit_whole(
        &self,
        rt: &ResourceType,
        key: &ObjectKey,
        current: &Arc<StoredObject>,
        old: &Value,
        mut desired: Value,
        opts: &WriteOptions,
    ) -> Result<Option<Arc<StoredObject>>, ApiError> {
        admission::admit_update(rt, old, &mut desired, opts)?;
        let manager = opts.field_manager.as_deref().unwrap_or("unknown");
        apply::record_update(
            rt,
            Some(old),
            &mut desired,
            manager,
            opts.subresource,
            self.now(),
        );
        // Nothing changed: no new resourceVersion, no event (as the real server).
        if object::equal_ignoring(old, &desired, &[], &["resourceVersion", "managedFields"]) {
            return Ok(Some(current.clone()));
        }
        if opts.dry_run {
            return Ok(Some(Arc::new(StoredObject::new(
                rt.flavor,
                current.resource_version,
                &desired,
            )?)));
        }
        let finished = admission::deletion_finished(&desired);
        let mut inner = self.lock();
        let still = inner
            .tables
            .get(&rt.storage)
            .and_then(|t| t.objects.get(key));
        if !still.is_some_and(|s| Arc::ptr_eq(s, current)) {
            return Ok(None); // lost the race: recompute on the new state
        }
        let draft = (!finished).then_some(Draft::Whole(desired));
        let stored = self.commit(&mut inner, rt, key.clone(), draft, Some(current.clone()))?;
        drop(inner);
        if finished {
            self.after_write(rt, Some(current), None);
        } else {
            self.after_write(rt, Some(current), Some(&stored));
        }
        Ok(Some(stored))
    }

    /// Deletes an object. Pods bound to a node get a grace period (their
    /// `deletionTimestamp` is set and they stay until deleted with grace 0); objects
    /// with finalizers stay until the last finalizer is removed; others go at once.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let key = Self::key(rt, namespace, name)?;
        for _ in 0..MAX_WRITE_RETRIES {
            let Some(current) = self.get_key(rt, &key) else {
                return Err(ApiError::not_found(&rt.plural, &rt.group, name));
            };
            if let Some(uid) = &opts.precondition_uid
                && *uid != current.uid
            {
                return Err(ApiError::Conflict {
                    resource: rt.plural.clone(),
                    group: rt.group.clone(),
                    name: name.into(),
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        current.uid
                    ),
                });
            }
            if let Some(rv) = &opts.precondition_resource_version
                && *rv != current.resource_version.to_string()
            {
                return Err(ApiError::Conflict {
                    resource: rt.plural.clone(),
                    group: rt.group.clone(),
                    name: name.into(),
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.resource_version
                    ),
                });
            }
            let old = current.value();
            let plan = admission::plan_delete(rt, &old, opts.grace_period_seconds, self.now());
            let mut inner = self.lock();
            let still = inner
                .tables
                .get(&rt.storage)
                .and_then(|t| t.objects.get(&key));
            if !still.is_some_and(|s| Arc::ptr_eq(s, &current)) {
                continue;
            }
            return match plan {
                admission::DeletePlan::Now => {
                    let gone = self.commit(&mut inner, rt, key, None, Some(current.clone()))?;
                    drop(inner);
                    self.after_write(rt, Some(&current), None);
                    Ok(Deleted::Gone(gone))
                }
                admission::DeletePlan::Unchanged => Ok(Deleted::Pending(current)),
                admission::DeletePlan::Mark(marked) => {
                    let stored = self.commit(
                        &mut inner,
                        rt,
                        key,
                        Some(Draft::Whole(marked)),
                        Some(current.clone()),
                    )?;
                    Ok(Deleted::Pending(stored))
                }
            };
        }
        Err(ApiError::conflict(&rt.plural, &rt.group, name))
    }

    /// Deletes every selected object (`DELETE` on a collection).
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Arc<StoredObject>>, ApiError> {
        let page = self.list(
            rt,
            namespace,
            &ListOptions {
                limit: None,
                continue_token: None,
                ..list.clone()
            },
        )?;
        let mut out = Vec::new();
        for item in page.items {
            let ns = (!item.namespace.is_empty()).then_some(item.namespace.as_str());
            match self.delete(rt, ns, &item.name, opts) {
                Ok(Deleted::Gone(o) | Deleted::Pending(o)) => out.push(o),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `pods/{name}/binding`: assigns the pod to a node (409 if already assigned).
    pub fn bind(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let pods = self.resource("", "v1", "pods")?;
        let now = object::format_time(self.now());
        let opts = WriteOptions {
            subresource: Subresource::Binding,
            ..Default::default()
        };
        self.update_object(&pods, Some(namespace), name, &opts, |_, pod| {
            if object::meta(pod).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                return Err(ApiError::Conflict {
                    resource: "pods".into(),
                    group: String::new(),
                    name: name.into(),
                    message: format!("pod {name} is being deleted, cannot be assigned to a host"),
                });
            }
            if let Some(bound) = object::path_str(pod, &["spec", "nodeName"]).filter(|n| !n.is_empty()) {
                return Err(ApiError::Conflict {
                    resource: "pods".into(),
                    group: String::new(),
                    name: name.into(),
                    message: format!("pod {name} is already assigned to node \"{bound}\""),
                });
            }
            patch::set_path(pod, &["spec", "nodeName"], json!(node));
            admission::set_condition(
                pod,
                json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}),
            );
            Ok(())
        })
    }

    /// `pods/{name}/eviction`: marks the pod with a DisruptionTarget condition, then
    /// deletes it gracefully (no PodDisruptionBudgets exist in the sandbox).
    pub fn evict(
        &self,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let pods = self.resource("", "v1", "pods")?;
        let now = object::format_time(self.now());
        let status = WriteOptions {
            subresource: Subresource::Status,
            ..Default::default()
        };
        self.update_status_view(&pods, Some(namespace), name, &status, |_, pod| {
            admission::set_condition(
                pod,
                json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                       "lastTransitionTime": now, "reason": "EvictionByEvictionAPI",
                       "message": "Eviction API: evicting"}),
            );
            Ok(())
        })?;
        self.delete(&pods, Some(namespace), name, opts)
    }

    // ---- watch -------------------------------------------------------------

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

    /// Number of stored objects of a resource (all namespaces).
    pub fn count(&self, rt: &ResourceType) -> usize {
        let inner = self.lock();
        inner
            .tables
            .get(&rt.storage)
            .map(|t| t.objects.len())
            .unwrap_or(0)
    }

    // ---- internals ---------------------------------------------------------

    /// Assigns the next resourceVersion, stores (or removes, when `object` is none) the
    /// object, records the change and queues it for watchers. Called under the lock.
    fn commit(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        key: ObjectKey,
        object: Option<Draft<'_>>,
        previous: Option<Arc<StoredObject>>,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let rv = inner.resource_version + 1;
        let storage_flavor = if rt.flavor == Flavor::EventsV1 {
            Flavor::CoreEvent
        } else {
            rt.flavor
        };
        let kind = match (&object, &previous) {
            (Some(_), None) => ChangeKind::Added,
            (Some(_), Some(_)) => ChangeKind::Modified,
            (None, Some(_)) => ChangeKind::Deleted,
            (None, None) => return Err(ApiError::Internal("commit of nothing".into())),
        };
        let stored = match (object, &previous) {
            (Some(Draft::Whole(mut value)), _) => {
                object::meta_mut(&mut value)
                    .insert("resourceVersion".into(), json!(rv.to_string()));
                StoredObject::new(storage_flavor, rv, &value)?
            }
            (
                Some(Draft::StatusView {
                    mut view,
                    members,
                    managed_fields,
                    base,
                }),
                _,
            ) => {
                object::meta_mut(&mut view).insert("resourceVersion".into(), json!(rv.to_string()));
                StoredObject::from_status_view(
                    storage_flavor,
                    rv,
                    &view,
                    members,
                    managed_fields,
                    base,
                )?
            }
            (None, Some(p)) => p.with_resource_version(rv)?,
            (None, None) => return Err(ApiError::Internal("commit of nothing".into())),
        };
        let stored = Arc::new(stored);
        inner.resource_version = rv;
        let window = self.shared.config.history_window.max(1);
        let table = inner.tables.entry(rt.storage.clone()).or_default();
        if kind == ChangeKind::Deleted {
            table.objects.remove(&key);
        } else {
            table.objects.insert(key, stored.clone());
        }
        let change = Arc::new(Change {
            resource_version: rv,
            kind,
            object: stored.clone(),
            previous,
        });
        table.history.push_back(change.clone());
        while table.history.len() > window {
            if let Some(old) = table.history.pop_front() {
                table.compacted = old.resource_version;
            }
        }
        let stats = &self.shared.stats;
        table.watchers.retain(|w| {
            if !w.filter.interested(&change) {
                return !w.tx.is_closed();
            }
            match w.tx.try_send(change.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    stats.slow_watchers_closed.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.shared.committed.store(rv, Ordering::Release);
        Ok(stored)
    }

    /// Side effects of a write on other resources: CRDs install or remove their
    /// types, a deleted namespace takes its objects with it.
    fn after_write(
        &self,
        rt: &ResourceType,
        before: Option<&Arc<StoredObject>>,
        after: Option<&Arc<StoredObject>>,
    ) {
        match (rt.flavor, after) {
            (Flavor::Crd, Some(crd_object)) => {
                let value = crd_object.value();
                if let Some((storage, types)) = custom_resources::served_types(&value) {
                    let fresh = self.registry().storage_type(&storage).is_none();
                    self.registry().install(&storage, types);
                    if fresh {
                        let mut inner = self.lock();
                        let rv = inner.resource_version;
                        let table = inner.tables.entry(storage).or_default();
                        table.compacted = table.compacted.max(rv);
                    }
                }
            }
            (Flavor::Crd, None) => {
                if let Some(before) = before
                    && let Some((storage, _)) = custom_resources::served_types(&before.value())
                {
                    self.purge_storage(&storage);
                    self.registry().remove(&storage);
                }
            }
            (Flavor::Namespace, None) => {
                if let Some(before) = before {
                    self.purge_namespace(&before.name);
                }
            }
            _ => {}
        }
    }

    fn purge_storage(&self, storage: &str) {
        let Some(rt) = self.registry().storage_type(storage) else {
            return;
        };
        let mut inner = self.lock();
        let keys: Vec<ObjectKey> = inner
            .tables
            .get(storage)
            .map(|t| t.objects.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            let previous = inner
                .tables
                .get(storage)
                .and_then(|t| t.objects.get(&key))
                .cloned();
            if previous.is_some() {
                let _ = self.commit(&mut inner, &rt, key, None, previous);
            }
        }
        if let Some(table) = inner.tables.get_mut(storage) {
            table.watchers.clear();
        }
    }

    fn purge_namespace(&self, namespace: &str) {
        let mut inner = self.lock();
        let storages: Vec<String> = inner.tables.keys().cloned().collect();
        for storage in storages {
            let Some(rt) = self.registry().storage_type(&storage) else {
                continue;
            };
            if !rt.namespaced {
                continue;
            }
            let keys: Vec<ObjectKey> = inner
                .tables
                .get(&storage)
                .map(|t| {
                    t.objects
                        .range((namespace.to_string(), String::new())..)
                        .take_while(|(k, _)| k.0 == namespace)
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            for key in keys {
                let previous = inner
                    .tables
                    .get(&storage)
                    .and_then(|t| t.objects.get(&key))
                    .cloned();
                let _ = self.commit(&mut inner, &rt, key, None, previous);
            }
        }
    }

    fn check_namespace_accepts(&self, namespace: &str) -> Result<(), ApiError> {
        let key = (String::new(), namespace.to_string());
        let inner = self.lock();
        let ns = inner
            .tables
            .get(ResourceType::NAMESPACES)
            .and_then(|t| t.objects.get(&key))
            .cloned();
        drop(inner);
        let Some(ns) = ns else {
            return Err(ApiError::not_found("namespaces", "", namespace));
        };
        if ns.field("status.phase").as_deref() == Some("Terminating") {
            return Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Converts an object written through a view (events.k8s.io) to its stored form.
    fn to_storage(&self, rt: &ResourceType, object: Value) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::BadRequest(
                "the body of the request must be a JSON object".into(),
            ));
        }
        match rt.flavor {
            Flavor::EventsV1 => Ok(events::v1_to_core(&object)),
            Flavor::Custom => Ok(custom_resources::to_storage_version(rt, object)),
            _ => Ok(object),
        }
    }
}

/// The new state of an object, as a write computed it.
enum Draft<'a> {
    Whole(Value),
    /// A status write: its status view (see [`StoredObject::status_view`]) and
    /// managedFields; every other field as `base` stores it.
    StatusView {
        view: Value,
        /// The top-level members `view` stands for (it lacks those the write removed).
        members: &'a [&'a str],
        managed_fields: Vec<Lazy<'a>>,
        base: &'a StoredObject,
    },
}

/// Whether a write goes through the status view of the object: a status write of a
/// kind whose admission then reads nothing but metadata and status (pods). It costs a
/// fraction of a whole-object write: the spec and the managedFields a write does not
/// touch stay as stored bytes.
fn takes_status_view(rt: &ResourceType, opts: &WriteOptions) -> bool {
    rt.flavor == Flavor::Pod && rt.status_subresource && opts.subresource == Subresource::Status
}

/// The members a merge patch of an Event or a Lease needs of the object: apiVersion,
/// kind, metadata and the top-level members the patch names. Admission of these kinds
/// reads nothing else, so the rest of the object stays as stored bytes (an event's
/// count bump, a lease renewal). `None` for any other write.
fn member_view<'p>(
    rt: &ResourceType,
    opts: &WriteOptions,
    patch: &'p Patch,
) -> Option<Vec<&'p str>> {
    if !matches!(rt.flavor, Flavor::CoreEvent | Flavor::Lease)
        || rt.status_subresource
        || opts.subresource != Subresource::Main
        || !fits_status_view(patch)
    {
        return None;
    }
    let (Patch::Merge(body) | Patch::Strategic(body)) = patch else {
        return None;
    };
    let mut members = vec!["apiVersion", "kind", "metadata"];
    for key in body.as_object()?.keys() {
        if !members.contains(&key.as_str()) {
            members.push(key);
        }
    }
    Some(members)
}

/// Whether a patch does to the status view what it does to the same fields of the
/// whole object: merge and strategic merge patches work key by key, except for
/// directives at the top or in metadata, and for managedFields, which the view leaves
/// out.
fn fits_status_view(patch: &Patch) -> bool {
    let (Patch::Merge(body) | Patch::Strategic(body)) = patch else {
        return false;
    };
    let Some(top) = body.as_object() else {
        return false;
    };
    if top.keys().any(|k| k.starts_with('$')) {
        return false;
    }
    match top.get("metadata") {
        None => true,
        Some(Value::Object(meta)) => !meta
            .keys()
            .any(|k| k.starts_with('$') || k.contains("managedFields")),
        Some(_) => false,
    }
}

/// A stored object as `rt` serves it (events.k8s.io view, CR served version).
pub fn served_form(rt: &ResourceType, object: Value) -> Value {
    match rt.flavor {
        Flavor::EventsV1 => events::core_to_v1(&object),
        Flavor::Custom => custom_resources::to_served_version(rt, object),
        _ => object,
    }
}

pub(crate) fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))
}

/// The version a list must be served at; `None` means the latest.
fn requested_list_version(opts: &ListOptions, current: u64) -> Result<Option<u64>, ApiError> {
    let rv = match opts.resource_version.as_deref() {
        None | Some("") => return Ok(None),
        Some("0") => return Ok(None),
        Some(rv) => parse_rv(rv)?,
    };
    let exact = match opts.resource_version_match.as_deref() {
        Some("Exact") => true,
        Some("NotOlderThan") => false,
        None | Some("") => opts.limit.is_some(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    if rv > current {
        return Err(ApiError::Timeout(format!(
            "Too large resource version: {rv}, current: {current}"
        )));
    }
    Ok(exact.then_some(rv))
}

impl Table {
    /// For every object changed after `rv`: its state at `rv` (none if it did not exist).
    fn state_overlay(&self, rv: u64) -> BTreeMap<ObjectKey, Option<Arc<StoredObject>>> {
        let mut overlay = BTreeMap::new();
        for change in self
            .history
            .iter()
            .rev()
            .take_while(|c| c.resource_version > rv)
        {
            overlay.insert(change.object.key(), change.previous.clone());
        }
        overlay
    }
}

/// Objects in key order from `lower` on, as they were once `overlay` is laid over the
/// current table.
fn merged_range<'a>(
    current: &'a BTreeMap<ObjectKey, Arc<StoredObject>>,
    overlay: &'a BTreeMap<ObjectKey, Option<Arc<StoredObject>>>,
    lower: Bound<ObjectKey>,
) -> impl Iterator<Item = Arc<StoredObject>> + 'a {
    let mut a = current.range((lower.clone(), Bound::Unbounded)).peekable();
    let mut b = overlay.range((lower, Bound::Unbounded)).peekable();
    std::iter::from_fn(move || {
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => return None,
                (Some(_), None) => a.next().map(|(_, o)| Some(o.clone())),
                (None, Some(_)) => b.next().map(|(_, o)| o.clone()),
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => a.next().map(|(_, o)| Some(o.clone())),
                    std::cmp::Ordering::Greater => b.next().map(|(_, o)| o.clone()),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        b.next().map(|(_, o)| o.clone())
                    }
                },
            };
            match next {
                Some(Some(object)) => return Some(object),
                Some(None) => continue, // did not exist at that version
                None => return None,
            }
        }
    })
}

/// The `continue` token: the list's resourceVersion and the last key returned.
struct ContinueToken {
    resource_version: u64,
    start: ObjectKey,
}

impl ContinueToken {
    fn encode(&self) -> String {
        let raw = json!({"v": "meta.k8s.io/v1", "rv": self.resource_version,
                         "start": [self.start.0, self.start.1]});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
    }

    fn decode(token: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let value: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let rv = value.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
        let start = value
            .get("start")
            .and_then(Value::as_array)
            .ok_or_else(bad)?;
        let part = |i: usize| {
            start
                .get(i)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(bad)
        };
        Ok(ContinueToken {
            resource_version: rv,
            start: (part(0)?, part(1)?),
        })
    }
}
