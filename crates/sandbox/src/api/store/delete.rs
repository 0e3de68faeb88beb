//! The delete path: one object (grace periods, finalizers, preconditions), a
//! collection, and the eviction subresource.

use std::sync::Arc;

use serde_json::json;

use super::super::admission;
use super::super::error::ApiError;
use super::super::object::{self, StoredObject};
use super::super::options::{DeleteOptions, ListOptions, Subresource, WriteOptions};
use super::super::resources::ResourceType;
use super::commit::Draft;
use super::{MAX_WRITE_RETRIES, Store};

/// Result of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this is its final state.
    Gone(Arc<StoredObject>),
    /// The object is being deleted (grace period or finalizers); this is its new state.
    Pending(Arc<StoredObject>),
}

impl Store {
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
}
