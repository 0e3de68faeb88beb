//! The resource types the sandbox serves: the built-in ones, and one entry per
//! served version of every CustomResourceDefinition once it exists.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// What a resource is, for the code paths that treat kinds differently
/// (admission defaults, printer columns, field selectors, event conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    Namespace,
    Node,
    Pod,
    /// core/v1 Event: the storage form of every event.
    CoreEvent,
    /// events.k8s.io/v1 Event: a view of the same store, converted on the way in and out.
    EventsV1,
    Lease,
    Crd,
    Custom,
    ServiceAccount,
    Service,
    ConfigMap,
    Secret,
    Deployment,
    NetworkPolicy,
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

/// One printer column of a CRD (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// string, integer, number, boolean, date.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// A served (group, version, resource).
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub flavor: Flavor,
    /// Key of the object table: every view of one resource shares it
    /// (both event APIs, all versions of a CRD).
    pub storage: String,
    /// The version objects are stored in (custom resources of several versions).
    pub storage_version: String,
    /// CRD only: the version's openAPIV3Schema.
    pub schema: Option<Value>,
    /// CRD only: the version's printer columns.
    pub printer_columns: Vec<PrinterColumn>,
}

impl ResourceType {
    #[allow(clippy::too_many_arguments)]
    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short_names: &[&str],
        status_subresource: bool,
        flavor: Flavor,
        storage: &str,
    ) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            // The `all` category of upstream's built-in kinds that this sandbox serves.
            categories: if matches!(flavor, Flavor::Pod | Flavor::Service | Flavor::Deployment) {
                vec!["all".into()]
            } else {
                vec![]
            },
            status_subresource,
            flavor,
            storage: storage.into(),
            storage_version: version.into(),
            schema: None,
            printer_columns: vec![],
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `leases.coordination.k8s.io`: how errors and RBAC name the resource.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The URL prefix of the collection, without namespace.
    pub fn api_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Storage keys of the built-in tables.
    pub const NAMESPACES: &'static str = "namespaces";
    pub const NODES: &'static str = "nodes";
    pub const PODS: &'static str = "pods";
    pub const EVENTS: &'static str = "events";
    pub const LEASES: &'static str = "leases.coordination.k8s.io";
    pub const CRDS: &'static str = "customresourcedefinitions.apiextensions.k8s.io";
    pub const SERVICE_ACCOUNTS: &'static str = "serviceaccounts";
    pub const SERVICES: &'static str = "services";
    pub const CONFIG_MAPS: &'static str = "configmaps";
    pub const SECRETS: &'static str = "secrets";
    pub const DEPLOYMENTS: &'static str = "deployments.apps";
    pub const NETWORK_POLICIES: &'static str = "networkpolicies.networking.k8s.io";
    pub const ROLES: &'static str = "roles.rbac.authorization.k8s.io";
    pub const CLUSTER_ROLES: &'static str = "clusterroles.rbac.authorization.k8s.io";
    pub const ROLE_BINDINGS: &'static str = "rolebindings.rbac.authorization.k8s.io";
    pub const CLUSTER_ROLE_BINDINGS: &'static str = "clusterrolebindings.rbac.authorization.k8s.io";
}

fn builtins() -> Vec<ResourceType> {
    use Flavor::*;
    vec![
        ResourceType::builtin(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            true,
            Namespace,
            ResourceType::NAMESPACES,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "Node",
            "nodes",
            false,
            &["no"],
            true,
            Node,
            ResourceType::NODES,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            &["po"],
            true,
            Pod,
            ResourceType::PODS,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            CoreEvent,
            ResourceType::EVENTS,
        ),
        ResourceType::builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            EventsV1,
            ResourceType::EVENTS,
        ),
        ResourceType::builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            Lease,
            ResourceType::LEASES,
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            Crd,
            ResourceType::CRDS,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            ServiceAccount,
            ResourceType::SERVICE_ACCOUNTS,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "Service",
            "services",
            true,
            &["svc"],
            true,
            Service,
            ResourceType::SERVICES,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            ConfigMap,
            ResourceType::CONFIG_MAPS,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            &[],
            false,
            Secret,
            ResourceType::SECRETS,
        ),
        ResourceType::builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            Deployment,
            ResourceType::DEPLOYMENTS,
        ),
        ResourceType::builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
            false,
            NetworkPolicy,
            ResourceType::NETWORK_POLICIES,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            false,
            Role,
            ResourceType::ROLES,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
            ClusterRole,
            ResourceType::CLUSTER_ROLES,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
            RoleBinding,
            ResourceType::ROLE_BINDINGS,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
            ClusterRoleBinding,
            ResourceType::CLUSTER_ROLE_BINDINGS,
        ),
    ]
}

/// Every served resource type. Cheap to clone out of; CRDs add and remove entries.
#[derive(Debug)]
pub struct Registry {
    types: RwLock<Vec<Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            types: RwLock::new(builtins().into_iter().map(Arc::new).collect()),
        }
    }
}

impl Registry {
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.types.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The type served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The type for an object's `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// The storage (table) form of a resource: the type whose objects are stored as-is.
    pub fn storage_type(&self, storage: &str) -> Option<Arc<ResourceType>> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types
            .iter()
            .find(|t| t.storage == storage && t.flavor != Flavor::EventsV1)
            .cloned()
    }

    /// Served groups with their versions, in discovery order (core group excluded).
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.all() {
            if t.group.is_empty() {
                continue;
            }
            let versions = groups.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    /// Replaces every type stored under `storage` (a CRD was created or changed).
    pub fn install(&self, storage: &str, types: Vec<ResourceType>) {
        let mut all = self.types.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|t| t.storage != storage);
        all.extend(types.into_iter().map(Arc::new));
    }

    /// Removes every type stored under `storage` (a CRD was deleted).
    pub fn remove(&self, storage: &str) {
        let mut all = self.types.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|t| t.storage != storage);
    }
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version priority: GA > beta > alpha, higher numbers first.
/// Returns a sortable key (bigger is preferred).
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match n.parse::<u32>() {
        Ok(minor) => (level, major, minor),
        Err(_) => (0, 0, 0),
    }
}
