//! Nodes and the control plane around them (SEMANTICS.md B5):
//! - [`nodes`]: the kubelet's side of a Node: registration, Lease, status heartbeats;
//! - [`lifecycle`]: the node lifecycle controller: lease monitor, condition taints,
//!   `NodeNotReady`, pods' Ready to False;
//! - [`taint_manager`]: deletions for NoExecute taints;
//! - [`podgc`]: orphaned, out-of-service, unscheduled-terminating and excess
//!   terminated pods;
//! - the control-plane side of node faults ([`Control::fault`]).
//!
//! One pod index serves them all (`by_node`, `terminated`), kept up to date from the
//! watch with the selectable fields (`spec.nodeName`, `status.phase`); a pod's JSON is
//! read only when it becomes terminal, is unbound, or is on a tainted node.

pub mod lifecycle;
pub mod nodes;
pub mod podgc;
pub mod taint_manager;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;

use crate::sandbox::object::{self, ObjectKey};
use crate::sandbox::{ApiError, DeleteOptions};

use super::SimError;
use super::cluster::{Change, ChangeKind, Shared, Timer as AnyTimer};
use super::faults::NodeFault;
use super::scheduler::fit::MetaView;
use lifecycle::{Lifecycle, NodeView, TAINT_OUT_OF_SERVICE};
use nodes::{LEASE_NAMESPACE, Nodes};
use podgc::PodGc;
use taint_manager::TaintManager;

#[derive(Debug, Clone)]
pub enum Timer {
    /// A node's kubelet renews its lease (and reports status when due).
    Heartbeat { node: String, epoch: u64 },
    /// The node lifecycle controller's pass over the leases.
    Monitor,
    /// A taint-manager deletion is due.
    Evict { key: ObjectKey, seq: u64 },
    /// A PodGC pass.
    PodGc,
}

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
    metadata: MetaView,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct TerminatedView {
    metadata: MetaView,
    status: ReasonView,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ReasonView {
    phase: Option<String>,
    reason: Option<String>,
}

impl PodIndex {
    fn remove(&mut self, key: &ObjectKey) -> Option<Indexed> {
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
        Some(old)
    }

    /// Pods bound to `node`.
    pub fn on_node(&self, node: &str) -> Vec<ObjectKey> {
        self.by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct Control {
    nodes: Nodes,
    lifecycle: Lifecycle,
    taints: TaintManager,
    podgc: PodGc,
    pods: PodIndex,
    /// The last state of every node, as the control plane reads it (bound: nodes).
    views: BTreeMap<String, NodeView>,
}

impl Control {
    pub fn start(&mut self, sh: &mut Shared) {
        sh.schedule_in(lifecycle::MONITOR_PERIOD, AnyTimer::Control(Timer::Monitor));
        sh.schedule_in(podgc::PERIOD, AnyTimer::Control(Timer::PodGc));
    }

    /// The kubelet of `name` registers its Node and starts heartbeats.
    pub fn register_node(&mut self, sh: &mut Shared, name: &str) -> Result<(), SimError> {
        self.nodes.register(sh, name)
    }

    /// PodGC's `--terminated-pod-gc-threshold` (0: terminated pods are kept).
    pub fn set_terminated_pod_gc_threshold(&mut self, threshold: usize) {
        self.podgc.terminated_threshold = threshold;
    }

    /// Pods PodGC deleted so far.
    pub fn podgc_deleted(&self) -> u64 {
        self.podgc.deleted
    }

    pub fn on_pod(&mut self, sh: &mut Shared, change: &Change) {
        let pod = &change.object;
        let key = pod.key();
        if change.kind == ChangeKind::Deleted {
            if let Some(old) = self.pods.remove(&key) {
                self.taints.forget(&key, &old.uid);
            }
            return;
        }
        if self.pods.pods.get(&key).is_some_and(|i| i.uid != pod.uid)
            && let Some(old) = self.pods.remove(&key)
        {
            self.taints.forget(&key, &old.uid);
        }
        let node = pod.field("spec.nodeName").filter(|n| !n.is_empty());
        let terminal = matches!(
            pod.field("status.phase").as_deref(),
            Some("Succeeded" | "Failed")
        );
        let entry = self.pods.pods.entry(key.clone()).or_insert(Indexed {
            uid: pod.uid.clone(),
            node: None,
            terminated: None,
        });
        let newly_bound = entry.node.is_none() && node.is_some();
        if newly_bound && let Some(n) = &node {
            entry.node = Some(n.clone());
            self.pods
                .by_node
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
            self.pods.terminated.insert((order, key.clone()));
        }
        if node.is_none() {
            let meta = serde_json::from_slice::<MetaOnly>(&pod.json).unwrap_or_default();
            if meta.metadata.deletion_timestamp.is_some() {
                self.pods.unbound_terminating.insert(key.clone());
            }
        } else {
            self.pods.unbound_terminating.remove(&key);
        }
        // Every change of a pod on a NoExecute-tainted node, not only its binding:
        // tolerations added to a bound pod may cancel its scheduled deletion.
        if !terminal && let Some(view) = node.as_ref().and_then(|n| self.views.get(n)) {
            let taints = view.no_execute();
            if !taints.is_empty() {
                self.taints.process(sh, &key, &taints);
            }
        }
    }

    pub fn on_node(&mut self, sh: &mut Shared, change: &Change) {
        let name = change.object.name.clone();
        if change.kind == ChangeKind::Deleted {
            self.lifecycle.forget(&name);
            if let Some(old) = self.views.remove(&name)
                && !old.no_execute().is_empty()
            {
                for key in self.pods.on_node(&name) {
                    self.taints.process(sh, &key, &[]);
                }
            }
            return;
        }
        let view = match change.object.decode::<k8s_openapi::api::core::v1::Node>() {
            Ok(n) => NodeView::from_node(&n),
            Err(e) => {
                tracing::debug!(node = %name, error = %e, "control plane skips an unreadable node");
                return;
            }
        };
        let previous = self.views.insert(name.clone(), view.clone());
        if previous.is_none() {
            lifecycle::registered(sh, &name);
        }
        lifecycle::reconcile_taints(sh, &name, &view);
        let was_ready = previous.as_ref().map(|p| p.ready() == "True");
        let is_ready = view.ready() == "True";
        match (was_ready, is_ready) {
            (Some(true), false) => {
                let pods = self.pods.on_node(&name);
                lifecycle::node_not_ready(sh, &name, pods.iter());
            }
            (Some(false), true) => lifecycle::node_ready(sh, &name),
            _ => {}
        }
        let taints = view.no_execute();
        let before = previous.map(|p| p.no_execute()).unwrap_or_default();
        if taints != before {
            for key in self.pods.on_node(&name) {
                self.taints.process(sh, &key, &taints);
            }
        }
    }

    pub fn fire(&mut self, sh: &mut Shared, timer: Timer) {
        match timer {
            Timer::Heartbeat { node, epoch } => self.nodes.heartbeat(sh, &node, epoch),
            Timer::Monitor => {
                self.lifecycle.monitor(sh, &self.views);
                sh.schedule_in(lifecycle::MONITOR_PERIOD, AnyTimer::Control(Timer::Monitor));
            }
            Timer::Evict { key, seq } => self.taints.fire(sh, key, seq),
            Timer::PodGc => {
                self.podgc.pass(sh, &self.pods, &self.views);
                sh.schedule_in(podgc::PERIOD, AnyTimer::Control(Timer::PodGc));
            }
        }
    }

    /// The control-plane side of a node fault (after the flags are set and the kubelet
    /// has acted).
    pub fn fault(&mut self, sh: &mut Shared, node: &str, fault: NodeFault) -> Result<(), SimError> {
        match fault {
            // Heartbeats stop; the lifecycle controller notices after the grace period.
            NodeFault::Partition => {}
            // The same, after a last NotReady status (unless the node was cut off).
            NodeFault::Shutdown => {
                if !sh.node_sim(node).partitioned {
                    self.nodes.shutting_down(sh, node);
                }
            }
            // The kubelet reports the condition; the lifecycle controller taints.
            NodeFault::MemoryPressure | NodeFault::DiskFailure => self.nodes.report_now(sh, node),
            NodeFault::Delete => {
                match sh
                    .store
                    .delete(&sh.apis.nodes, None, node, &DeleteOptions::default())
                {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                let lease = sh.store.delete(
                    &sh.apis.leases,
                    Some(LEASE_NAMESPACE),
                    node,
                    &DeleteOptions::default(),
                );
                if let Err(e) = lease
                    && !matches!(e, ApiError::NotFound { .. })
                {
                    return Err(e.into());
                }
            }
            NodeFault::OutOfService => {
                let taint = json!({"key": TAINT_OUT_OF_SERVICE, "value": "nodeshutdown",
                    "effect": "NoExecute", "timeAdded": object::format_time(sh.now())});
                lifecycle::set_taint(sh, node, Some(taint), TAINT_OUT_OF_SERVICE);
            }
            NodeFault::Heal => {
                if sh.store.get(&sh.apis.nodes, None, node).is_err() {
                    self.nodes.register(sh, node)?;
                } else {
                    if self
                        .views
                        .get(node)
                        .is_some_and(|v| v.has_taint(TAINT_OUT_OF_SERVICE))
                    {
                        lifecycle::set_taint(sh, node, None, TAINT_OUT_OF_SERVICE);
                    }
                    self.nodes.report_now(sh, node);
                }
            }
        }
        Ok(())
    }
}
