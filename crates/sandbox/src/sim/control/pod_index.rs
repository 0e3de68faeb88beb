//! The control plane's one index of pods: by node, terminated pods in PodGC's order,
//! unbound terminating pods. Kept from the watch with the selectable fields
//! (`spec.nodeName`, `status.phase`); a pod's JSON is read only when it becomes
//! terminal or is unbound.

use std::collections::{BTreeSet, HashMap};

use crate::api::object::{self, ObjectKey, StoredObject};

use super::super::pod_meta::PodMeta;

/// Pods by node, terminated pods by age, unbound terminating pods (each bound: pods).
#[derive(Debug, Default)]
pub struct PodIndex {
    pub by_node: HashMap<String, BTreeSet<ObjectKey>>,
    pods: HashMap<ObjectKey, Indexed>,
    /// Terminated pods in the order PodGC deletes them (upstream's
    /// `byEvictionAndCreationTimestamp`): evicted pods first, then by creation time
    /// (seconds) and name.
    pub terminated: BTreeSet<(GcOrder, ObjectKey)>,
    pub unbound_terminating: BTreeSet<ObjectKey>,
}

#[derive(Debug)]
struct Indexed {
    uid: String,
    node: Option<String>,
    terminated: Option<GcOrder>,
}

/// Where a terminated pod stands in PodGC's deletion order: `(not evicted, created)`.
pub type GcOrder = (bool, i64);

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct MetaOnly {
    metadata: PodMeta,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct TerminatedView {
    metadata: PodMeta,
    status: ReasonView,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ReasonView {
    phase: Option<String>,
    reason: Option<String>,
}

impl PodIndex {
    /// Indexes the current state of the pod at `key`: its node (once bound), whether it
    /// is terminal (and its place in PodGC's order), whether it terminates unbound.
    /// Returns the node and whether the pod is terminal.
    pub fn update(&mut self, key: &ObjectKey, pod: &StoredObject) -> (Option<String>, bool) {
        let node = pod.field("spec.nodeName").filter(|n| !n.is_empty());
        let terminal = matches!(
            pod.field("status.phase").as_deref(),
            Some("Succeeded" | "Failed")
        );
        let entry = self.pods.entry(key.clone()).or_insert(Indexed {
            uid: pod.uid.clone(),
            node: None,
            terminated: None,
        });
        let newly_bound = entry.node.is_none() && node.is_some();
        if newly_bound && let Some(n) = &node {
            entry.node = Some(n.clone());
            self.by_node
                .entry(n.clone())
                .or_default()
                .insert(key.clone());
        }
        if terminal && entry.terminated.is_none() {
            let view = serde_json::from_slice::<TerminatedView>(&pod.json).unwrap_or_default();
            let created = view
                .metadata
                .creation_timestamp
                .as_deref()
                .and_then(object::parse_time)
                .map(|t| t.as_second())
                .unwrap_or(0);
            // Upstream's `PodIsEvicted`: phase Failed with reason Evicted.
            let evicted = view.status.phase.as_deref() == Some("Failed")
                && view.status.reason.as_deref() == Some("Evicted");
            let order = (!evicted, created);
            entry.terminated = Some(order);
            self.terminated.insert((order, key.clone()));
        }
        if node.is_none() {
            let meta = serde_json::from_slice::<MetaOnly>(&pod.json).unwrap_or_default();
            if meta.metadata.deletion_timestamp.is_some() {
                self.unbound_terminating.insert(key.clone());
            }
        } else {
            self.unbound_terminating.remove(key);
        }
        (node, terminal)
    }

    /// The pod at `key` now has `uid`: if another pod with that name was indexed, it is
    /// forgotten and its uid returned.
    pub fn replaced(&mut self, key: &ObjectKey, uid: &str) -> Option<String> {
        if self.pods.get(key).is_some_and(|i| i.uid != uid) {
            self.remove(key)
        } else {
            None
        }
    }

    /// Forgets the pod at `key`; returns its uid.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<String> {
        let old = self.pods.remove(key)?;
        if let Some(node) = &old.node
            && let Some(set) = self.by_node.get_mut(node)
        {
            set.remove(key);
            if set.is_empty() {
                self.by_node.remove(node);
            }
        }
        if let Some(order) = old.terminated {
            self.terminated.remove(&(order, key.clone()));
        }
        self.unbound_terminating.remove(key);
        Some(old.uid)
    }

    /// Pods bound to `node`.
    pub fn on_node(&self, node: &str) -> Vec<ObjectKey> {
        self.by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}
