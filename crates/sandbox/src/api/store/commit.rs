//! The commit, under the store's lock: the next resourceVersion, the table, the
//! history window and the fan-out to watchers; then what a write does to other
//! resources (CRDs install their types, a deleted namespace takes its objects along).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::super::custom_resources;
use super::super::error::ApiError;
use super::super::lazy::Lazy;
use super::super::object::{self, ObjectKey, StoredObject};
use super::super::resources::{Flavor, ResourceType};
use super::super::watch::{Change, ChangeKind};
use super::{Inner, Store};

/// The new state of an object, as a write computed it.
pub(super) enum Draft<'a> {
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

impl Store {
    /// Assigns the next resourceVersion, stores (or removes, when `object` is none) the
    /// object, records the change and queues it for watchers. Called under the lock.
    pub(super) fn commit(
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
    pub(super) fn after_write(
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
}
