//! The write path: create, update (PUT), patch and server-side apply, and the
//! optimistic read-modify-write loops they share. Each computes the new object outside
//! the lock (decode, admission, patch, managedFields), then hands it to the commit.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::admission;
use super::super::apply;
use super::super::custom_resources;
use super::super::error::ApiError;
use super::super::events;
use super::super::lazy::Lazy;
use super::super::object::{self, ObjectKey, STATUS_VIEW_FIELDS, StoredObject};
use super::super::options::{Subresource, WriteOptions};
use super::super::patch::{self, Patch};
use super::super::resources::{Flavor, ResourceType};
use super::commit::Draft;
use super::read::served_form;
use super::{MAX_WRITE_RETRIES, Store};

impl Store {
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
        if rt.flavor == Flavor::Service {
            self.assign_cluster_ip(&mut inner, rt, &name, &mut object)?;
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
