//! The node lifecycle controller (SEMANTICS.md B5): every 5 s it checks each node's
//! Lease; a node whose lease was not renewed for the grace period (40 s) gets its
//! conditions set to Unknown (`NodeStatusUnknown`, "Kubelet stopped posting node
//! status."). On every node change it keeps the condition taints in line
//! (`not-ready`/`unreachable` NoSchedule and NoExecute, `memory-pressure`,
//! `disk-pressure`, `pid-pressure`, `unschedulable`), and when Ready leaves True it
//! records `NodeNotReady` and sets the Ready condition of the node's pods to False.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint};
use serde_json::{Value, json};

use crate::api::object::{self, ObjectKey};
use crate::api::{ApiError, Subresource, WriteOptions};

use super::super::event_sink::{Involved, Source};
use super::super::taints::{
    TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NOT_READY, TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
};
use super::super::world::World;
use super::nodes::LEASE_NAMESPACE;

pub const MONITOR_PERIOD: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);
pub const GRACE_PERIOD: jiff::SignedDuration = jiff::SignedDuration::from_secs(40);

/// Taint keys this controller owns; others (out-of-service, users') are left alone.
const MANAGED: [&str; 6] = [
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_MEMORY_PRESSURE,
    TAINT_DISK_PRESSURE,
    TAINT_PID_PRESSURE,
    TAINT_UNSCHEDULABLE,
];

pub const SOURCE: Source<'static> = Source {
    component: "node-controller",
    host: None,
};
pub const MANAGER: &str = "kube-controller-manager";

/// What the control plane reads of a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    /// Condition type -> status.
    pub conditions: BTreeMap<String, String>,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
}

impl NodeView {
    pub fn from_node(node: &Node) -> Self {
        NodeView {
            conditions: node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| {
                    cs.iter()
                        .map(|c| (c.type_.clone(), c.status.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            unschedulable: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            taints: node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default(),
        }
    }

    pub fn ready(&self) -> &str {
        self.conditions.get("Ready").map_or("", String::as_str)
    }

    pub fn no_execute(&self) -> Vec<Taint> {
        self.taints
            .iter()
            .filter(|t| t.effect == "NoExecute")
            .cloned()
            .collect()
    }

    pub fn has_taint(&self, key: &str) -> bool {
        self.taints.iter().any(|t| t.key == key)
    }

    /// The (key, effect) pairs of managed taints the conditions call for.
    fn desired_taints(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        match self.ready() {
            "False" => {
                out.push((TAINT_NOT_READY, "NoSchedule"));
                out.push((TAINT_NOT_READY, "NoExecute"));
            }
            "True" => {}
            _ => {
                out.push((TAINT_UNREACHABLE, "NoSchedule"));
                out.push((TAINT_UNREACHABLE, "NoExecute"));
            }
        }
        let is_true = |k: &str| self.conditions.get(k).is_some_and(|s| s == "True");
        if is_true("MemoryPressure") {
            out.push((TAINT_MEMORY_PRESSURE, "NoSchedule"));
        }
        if is_true("DiskPressure") {
            out.push((TAINT_DISK_PRESSURE, "NoSchedule"));
        }
        if is_true("PIDPressure") {
            out.push((TAINT_PID_PRESSURE, "NoSchedule"));
        }
        if self.unschedulable {
            out.push((TAINT_UNSCHEDULABLE, "NoSchedule"));
        }
        out
    }
}

/// Per node: when its lease was last seen renewed (bound: nodes).
#[derive(Debug, Default)]
pub struct NodeLifecycle {
    health: BTreeMap<String, Health>,
}

#[derive(Debug)]
struct Health {
    lease_version: Option<u64>,
    probe: jiff::Timestamp,
}

impl NodeLifecycle {
    pub fn forget(&mut self, node: &str) {
        self.health.remove(node);
    }

    /// One monitor pass over the nodes' leases.
    pub fn monitor(&mut self, sh: &World, views: &BTreeMap<String, NodeView>) {
        let now = sh.now();
        for (name, view) in views {
            let version = sh
                .store
                .get(&sh.apis.leases, Some(LEASE_NAMESPACE), name)
                .ok()
                .map(|l| l.resource_version);
            let h = self.health.entry(name.clone()).or_insert(Health {
                lease_version: version,
                probe: now,
            });
            if h.lease_version != version {
                h.lease_version = version;
                h.probe = now;
            }
            let silent = now.duration_since(h.probe) > GRACE_PERIOD;
            if silent && view.ready() != "Unknown" {
                mark_unknown(sh, name);
            }
        }
    }
}

/// Every condition of the node to Unknown, as upstream `tryUpdateNodeHealth`.
fn mark_unknown(sh: &World, name: &str) {
    let now = object::format_time(sh.now());
    let result = update_node(sh, name, Subresource::Status, |node| {
        if let Some(list) = node
            .get_mut("status")
            .and_then(|s| s.get_mut("conditions"))
            .and_then(Value::as_array_mut)
        {
            for c in list.iter_mut() {
                if c["status"] != "Unknown" {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(now);
                }
            }
        }
    });
    if let Err(e) = result {
        tracing::debug!(node = name, error = %e, "node status not updated");
    }
}

/// Brings the managed taints in line with the node's conditions (keeping the
/// `timeAdded` of those that stay).
pub fn reconcile_taints(sh: &World, name: &str, view: &NodeView) {
    let desired = view.desired_taints();
    let present: Vec<(&str, &str)> = view
        .taints
        .iter()
        .filter(|t| MANAGED.contains(&t.key.as_str()))
        .map(|t| (t.key.as_str(), t.effect.as_str()))
        .collect();
    let same = present.len() == desired.len() && desired.iter().all(|d| present.contains(d));
    if same {
        return;
    }
    let now = object::format_time(sh.now());
    let result = update_node(sh, name, Subresource::Main, |node| {
        let old = object::path(node, &["spec", "taints"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let managed = |t: &Value| t["key"].as_str().is_some_and(|k| MANAGED.contains(&k));
        let mut list: Vec<Value> = old.iter().filter(|t| !managed(t)).cloned().collect();
        for (key, effect) in &desired {
            let kept = old
                .iter()
                .find(|t| t["key"] == *key && t["effect"] == *effect)
                .cloned();
            list.push(
                kept.unwrap_or_else(|| json!({"key": key, "effect": effect, "timeAdded": now})),
            );
        }
        let spec = node
            .as_object_mut()
            .map(|m| m.entry("spec").or_insert(json!({})));
        if let Some(spec) = spec.and_then(Value::as_object_mut) {
            if list.is_empty() {
                spec.remove("taints");
            } else {
                spec.insert("taints".into(), Value::Array(list));
            }
        }
    });
    if let Err(e) = result {
        tracing::debug!(node = name, error = %e, "node taints not updated");
    }
}

/// Adds (or removes) a taint that is not condition-driven (`out-of-service`).
pub fn set_taint(sh: &World, name: &str, taint: Option<Value>, key: &str) {
    let opts = WriteOptions {
        field_manager: Some("sandbox-admin".into()),
        ..Default::default()
    };
    let result = sh
        .store
        .update_object(&sh.apis.nodes, None, name, &opts, |_, node| {
            let mut list: Vec<Value> = object::path(node, &["spec", "taints"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            list.retain(|t| t["key"] != key);
            if let Some(t) = &taint {
                list.push(t.clone());
            }
            crate::api::patch::set_path(node, &["spec", "taints"], Value::Array(list));
            Ok(())
        });
    if let Err(e) = result {
        tracing::debug!(node = name, error = %e, "taint not written");
    }
}

/// Ready left True: `NodeNotReady` on the node, and each pod's Ready condition to
/// False (phase and ContainersReady untouched) with a `NodeNotReady` event on the pod.
pub fn node_not_ready<'a>(
    sh: &mut World,
    name: &str,
    pods: impl IntoIterator<Item = &'a ObjectKey>,
) {
    let now = sh.now();
    sh.events.record(
        &sh.store,
        now,
        &Involved::node(name),
        SOURCE,
        "Normal",
        "NodeNotReady",
        &format!("Node {name} status is now: NodeNotReady"),
    );
    let stamp = object::format_time(now);
    let opts = WriteOptions {
        subresource: Subresource::Status,
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    for key in pods {
        let before = sh.pods.get(key).map(|p| p.resource_version);
        let result =
            sh.store
                .guaranteed_update(&sh.apis.pods, Some(&key.0), &key.1, &opts, |current| {
                    let Some(current) = current else {
                        return Err(ApiError::not_found("pods", "", &key.1));
                    };
                    let mut pod = current.value();
                    if let Some(list) = pod
                        .get_mut("status")
                        .and_then(|s| s.get_mut("conditions"))
                        .and_then(Value::as_array_mut)
                        && let Some(c) = list.iter_mut().find(|c| c["type"] == "Ready")
                        && c["status"] != "False"
                    {
                        c["status"] = json!("False");
                        c["lastTransitionTime"] = json!(stamp);
                    }
                    Ok(pod)
                });
        if let Ok(pod) = result
            && Some(pod.resource_version) != before
        {
            sh.events.record(
                &sh.store,
                now,
                &Involved::pod(&pod),
                SOURCE,
                "Warning",
                "NodeNotReady",
                "Node is not ready",
            );
        }
    }
}

/// Ready came back.
pub fn node_ready(sh: &mut World, name: &str) {
    let now = sh.now();
    sh.events.record(
        &sh.store,
        now,
        &Involved::node(name),
        SOURCE,
        "Normal",
        "NodeReady",
        &format!("Node {name} status is now: NodeReady"),
    );
}

pub fn registered(sh: &mut World, name: &str) {
    let now = sh.now();
    sh.events.record(
        &sh.store,
        now,
        &Involved::node(name),
        SOURCE,
        "Normal",
        "RegisteredNode",
        &format!("Node {name} event: Registered Node {name} in Controller"),
    );
}

/// Read-modify-write of one Node (as the node lifecycle controller): `edit` changes it
/// as JSON.
fn update_node(
    sh: &World,
    name: &str,
    subresource: Subresource,
    mut edit: impl FnMut(&mut Value),
) -> Result<std::sync::Arc<crate::api::StoredObject>, ApiError> {
    let opts = WriteOptions {
        subresource,
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    sh.store
        .update_object(&sh.apis.nodes, None, name, &opts, |_, node| {
            edit(node);
            Ok(())
        })
}
