//! Typed in-process access to the store, for the simulated components (scheduler,
//! kubelets): the same objects, resourceVersions and errors as over HTTP, as
//! k8s-openapi types instead of JSON.

use std::marker::PhantomData;
use std::sync::Arc;

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::object::StoredObject;
use super::options::{DeleteOptions, ListOptions, Subresource, WatchOptions, WriteOptions};
use super::patch::Patch;
use super::resources::{Flavor, ResourceType};
use super::store::{Deleted, Store, served_form};
use super::watch::Watch;

/// One resource of the store, typed: `TypedApi::<Pod>::namespaced(&store, "default")`.
#[derive(Debug, Clone)]
pub struct TypedApi<K> {
    store: Store,
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> TypedApi<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    /// Objects of one namespace (namespaced kinds).
    pub fn namespaced(store: &Store, namespace: &str) -> Result<Self, ApiError> {
        Self::new(store, Some(namespace.to_string()))
    }

    /// Cluster-scoped kinds, or every namespace for list and watch.
    pub fn all(store: &Store) -> Result<Self, ApiError> {
        Self::new(store, None)
    }

    fn new(store: &Store, namespace: Option<String>) -> Result<Self, ApiError> {
        let rt = store.resource(&K::group(&()), &K::version(&()), &K::plural(&()))?;
        Ok(TypedApi {
            store: store.clone(),
            rt,
            namespace,
            _kind: PhantomData,
        })
    }

    /// The resource type this API serves.
    pub fn resource(&self) -> &Arc<ResourceType> {
        &self.rt
    }

    /// Decodes a stored object as `K` (converted to this API's view).
    pub fn decode(&self, object: &StoredObject) -> Result<K, ApiError> {
        let decoded = match self.rt.flavor {
            Flavor::EventsV1 | Flavor::Custom => {
                serde_json::from_value(served_form(&self.rt, object.value()))
            }
            _ => object.decode(),
        };
        decoded.map_err(|e| ApiError::Internal(format!("decoding a stored {}: {e}", self.rt.kind)))
    }

    fn encode(&self, object: &K) -> Result<serde_json::Value, ApiError> {
        let mut value = serde_json::to_value(object)
            .map_err(|e| ApiError::BadRequest(format!("encoding: {e}")))?;
        if let Some(m) = value.as_object_mut() {
            m.entry("apiVersion")
                .or_insert_with(|| K::api_version(&()).into());
            m.entry("kind").or_insert_with(|| K::kind(&()).into());
        }
        Ok(value)
    }

    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn get(&self, name: &str) -> Result<K, ApiError> {
        self.decode(&*self.store.get(&self.rt, self.ns(), name)?)
    }

    pub fn list(&self, opts: &ListOptions) -> Result<Vec<K>, ApiError> {
        let page = self.store.list(&self.rt, self.ns(), opts)?;
        page.items.iter().map(|o| self.decode(o)).collect()
    }

    pub fn create(&self, object: &K, opts: &WriteOptions) -> Result<K, ApiError> {
        let stored = self
            .store
            .create(&self.rt, self.ns(), self.encode(object)?, opts)?;
        self.decode(&stored)
    }

    pub fn replace(&self, name: &str, object: &K, opts: &WriteOptions) -> Result<K, ApiError> {
        let stored = self
            .store
            .update(&self.rt, self.ns(), name, self.encode(object)?, opts)?;
        self.decode(&stored)
    }

    pub fn patch(&self, name: &str, patch: &Patch, opts: &WriteOptions) -> Result<K, ApiError> {
        self.decode(&*self.store.patch(&self.rt, self.ns(), name, patch, opts)?)
    }

    /// A patch of the status subresource.
    pub fn patch_status(&self, name: &str, patch: &Patch) -> Result<K, ApiError> {
        let opts = WriteOptions {
            subresource: Subresource::Status,
            ..Default::default()
        };
        self.patch(name, patch, &opts)
    }

    pub fn delete(&self, name: &str, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
        self.store.delete(&self.rt, self.ns(), name, opts)
    }

    /// A watch; decode its objects with [`TypedApi::decode`].
    pub fn watch(&self, opts: &WatchOptions) -> Result<Watch, ApiError> {
        self.store.watch(&self.rt, self.ns(), opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};

    #[test]
    fn typed_round_trip() {
        let store = Store::default();
        let pods = TypedApi::<Pod>::namespaced(&store, "default").unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}
        }))
        .unwrap();
        let created = pods.create(&pod, &WriteOptions::default()).unwrap();
        assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
        let patched = pods
            .patch_status(
                "p",
                &Patch::Merge(serde_json::json!({"status": {"phase": "Running"}})),
            )
            .unwrap();
        assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(pods.list(&ListOptions::default()).unwrap().len(), 1);
        let nodes = TypedApi::<Node>::all(&store).unwrap();
        assert!(matches!(
            nodes.get("missing"),
            Err(ApiError::NotFound { .. })
        ));
    }
}
