//! Which namespaces the controller reads: the whole cluster (the default), or the
//! namespaces `--namespace` names, so that it runs with a Role per namespace instead of
//! a ClusterRole. Policies select pods of their own namespace, so watching policies and
//! pods of the same namespaces sees every pod a watched policy can select. Nodes are
//! cluster-scoped and are always read cluster-wide (fencing evidence needs them).
//!
//! Bound: at most [`MAX_NAMESPACES`] namespaces, each costing one pod watch and one
//! policy watch; beyond that, watch the cluster.

use kube::{Api, Client, Resource};

/// Namespaces a controller may be limited to.
pub const MAX_NAMESPACES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Cluster,
    /// Sorted, without duplicates, never empty.
    Namespaces(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "{0:?} is not a namespace name (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
    )]
    BadName(String),
    #[error(
        "{0} namespaces named; at most {MAX_NAMESPACES} (each costs two watches): watch the whole cluster instead"
    )]
    TooMany(usize),
}

impl Scope {
    /// The namespaces given (none: the whole cluster).
    pub fn new<I, S>(namespaces: I) -> Result<Scope, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = namespaces.into_iter().map(Into::into).collect();
        if let Some(bad) = names.iter().find(|n| !is_dns_label(n)) {
            return Err(ScopeError::BadName(bad.clone()));
        }
        names.sort();
        names.dedup();
        match names.len() {
            0 => Ok(Scope::Cluster),
            n if n > MAX_NAMESPACES => Err(ScopeError::TooMany(n)),
            _ => Ok(Scope::Namespaces(names)),
        }
    }

    /// The units listed and watched separately: `None` for the whole cluster, else
    /// one per namespace.
    pub fn units(&self) -> Vec<Option<&str>> {
        match self {
            Scope::Cluster => vec![None],
            Scope::Namespaces(names) => names.iter().map(|n| Some(n.as_str())).collect(),
        }
    }

    /// Whether a namespaced object of `namespace` is read.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespaces(names) => names
                .binary_search_by(|n| n.as_str().cmp(namespace))
                .is_ok(),
        }
    }

    /// One `Api` per unit, each paired with its namespace (`None`: every namespace).
    pub fn apis<K>(&self, client: &Client) -> Vec<(Option<String>, Api<K>)>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        self.units()
            .into_iter()
            .map(|unit| match unit {
                None => (None, Api::all(client.clone())),
                Some(ns) => (Some(ns.to_string()), Api::namespaced(client.clone(), ns)),
            })
            .collect()
    }

    /// The pod collection's path for each unit.
    pub fn pod_paths(&self) -> Vec<String> {
        self.units()
            .into_iter()
            .map(|unit| match unit {
                None => "/api/v1/pods".to_string(),
                Some(ns) => format!("/api/v1/namespaces/{ns}/pods"),
            })
            .collect()
    }
}

/// RFC 1123 label, as Kubernetes checks namespace names.
fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_namespace_is_the_whole_cluster() {
        let scope = Scope::new(Vec::<String>::new()).unwrap();
        assert_eq!(scope, Scope::Cluster);
        assert_eq!(scope.pod_paths(), vec!["/api/v1/pods"]);
        assert!(scope.contains("anything"));
    }

    #[test]
    fn namespaces_are_sorted_and_deduplicated() {
        let scope = Scope::new(["shop", "billing", "shop"]).unwrap();
        assert_eq!(
            scope.pod_paths(),
            vec![
                "/api/v1/namespaces/billing/pods",
                "/api/v1/namespaces/shop/pods"
            ]
        );
        assert!(scope.contains("shop"));
        assert!(!scope.contains("kube-system"));
    }

    #[test]
    fn bad_names_are_refused_by_name() {
        for (case, name) in [
            ("empty", ""),
            ("uppercase", "Shop"),
            ("leading dash", "-shop"),
            ("trailing dash", "shop-"),
            ("a path", "shop/pods"),
            ("too long", &"a".repeat(64)),
        ] {
            match Scope::new([name]) {
                Err(ScopeError::BadName(n)) => assert_eq!(n, name, "{case}"),
                other => panic!("{case}: {other:?}"),
            }
        }
        assert!(
            Scope::new(["a".repeat(63)]).is_ok(),
            "63 characters is a name"
        );
    }

    #[test]
    fn too_many_namespaces_are_refused() {
        let names: Vec<String> = (0..=MAX_NAMESPACES).map(|i| format!("ns-{i}")).collect();
        assert_eq!(
            Scope::new(names),
            Err(ScopeError::TooMany(MAX_NAMESPACES + 1))
        );
    }
}
