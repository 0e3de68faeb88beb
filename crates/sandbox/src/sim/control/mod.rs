//! Nodes and the control plane around them (SEMANTICS.md B5):
//! - [`nodes`]: the kubelet's side of a Node: registration, Lease, status heartbeats;
//! - [`node_lifecycle`]: the node lifecycle controller: lease monitor, condition taints,
//!   `NodeNotReady`, pods' Ready to False;
//! - [`taint_manager`]: deletions for NoExecute taints;
//! - [`podgc`]: orphaned, out-of-service, unscheduled-terminating and excess
//!   terminated pods;
//! - the control-plane side of node faults ([`Control::fault`]).
//!
//! One pod index serves them all (`by_node`, `terminated`), kept up to date from the
//! watch with the selectable fields (`spec.nodeName`, `status.phase`); a pod's JSON is
//! read only when it becomes terminal, is unbound, or is on a tainted node.

pub mod node_lifecycle;
pub mod nodes;
pub mod pod_index;
pub mod podgc;
pub mod taint_manager;

use std::collections::BTreeMap;

use serde_json::json;

use crate::api::object;
use crate::api::{ApiError, DeleteOptions};

use super::error::SimError;
use super::node_faults::NodeFault;
use super::taints::TAINT_OUT_OF_SERVICE;
use super::world::{Change, ChangeKind, ControlTimer, Timer, World};
use node_lifecycle::{NodeLifecycle, NodeView};
use nodes::{LEASE_NAMESPACE, Nodes};
use pod_index::PodIndex;
use podgc::PodGc;
use taint_manager::TaintManager;

#[derive(Debug, Default)]
pub struct Control {
    nodes: Nodes,
    lifecycle: NodeLifecycle,
    taints: TaintManager,
    podgc: PodGc,
    pods: PodIndex,
    /// The last state of every node, as the control plane reads it (bound: nodes).
    views: BTreeMap<String, NodeView>,
}

impl Control {
    pub fn start(&mut self, sh: &mut World) {
        sh.schedule_in(
            node_lifecycle::MONITOR_PERIOD,
            Timer::Control(ControlTimer::Monitor),
        );
        sh.schedule_in(podgc::PERIOD, Timer::Control(ControlTimer::PodGc));
    }

    /// The kubelet of `name` registers its Node and starts heartbeats.
    pub fn register_node(&mut self, sh: &mut World, name: &str) -> Result<(), SimError> {
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

    pub fn on_pod(&mut self, sh: &mut World, change: &Change) {
        let pod = &change.object;
        let key = pod.key();
        if change.kind == ChangeKind::Deleted {
            if let Some(old_uid) = self.pods.remove(&key) {
                self.taints.forget(&key, &old_uid);
            }
            return;
        }
        if let Some(old_uid) = self.pods.replaced(&key, &pod.uid) {
            self.taints.forget(&key, &old_uid);
        }
        let (node, terminal) = self.pods.update(&key, pod);
        // Every change of a pod on a NoExecute-tainted node, not only its binding:
        // tolerations added to a bound pod may cancel its scheduled deletion.
        if !terminal && let Some(view) = node.as_ref().and_then(|n| self.views.get(n)) {
            let taints = view.no_execute();
            if !taints.is_empty() {
                self.taints.process(sh, &key, &taints);
            }
        }
    }

    pub fn on_node(&mut self, sh: &mut World, change: &Change) {
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
            node_lifecycle::registered(sh, &name);
        }
        node_lifecycle::reconcile_taints(sh, &name, &view);
        let was_ready = previous.as_ref().map(|p| p.ready() == "True");
        let is_ready = view.ready() == "True";
        match (was_ready, is_ready) {
            (Some(true), false) => {
                let pods = self.pods.on_node(&name);
                node_lifecycle::node_not_ready(sh, &name, pods.iter());
            }
            (Some(false), true) => node_lifecycle::node_ready(sh, &name),
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

    pub fn fire(&mut self, sh: &mut World, timer: ControlTimer) {
        match timer {
            ControlTimer::Heartbeat { node, epoch } => self.nodes.heartbeat(sh, &node, epoch),
            ControlTimer::Monitor => {
                self.lifecycle.monitor(sh, &self.views);
                sh.schedule_in(
                    node_lifecycle::MONITOR_PERIOD,
                    Timer::Control(ControlTimer::Monitor),
                );
            }
            ControlTimer::Evict { key, seq } => self.taints.fire(sh, key, seq),
            ControlTimer::PodGc => {
                self.podgc.pass(sh, &self.pods, &self.views);
                sh.schedule_in(podgc::PERIOD, Timer::Control(ControlTimer::PodGc));
            }
        }
    }

    /// The control-plane side of a node fault (after the flags are set and the kubelet
    /// has acted).
    pub fn fault(&mut self, sh: &mut World, node: &str, fault: NodeFault) -> Result<(), SimError> {
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
                node_lifecycle::set_taint(sh, node, Some(taint), TAINT_OUT_OF_SERVICE);
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
                        node_lifecycle::set_taint(sh, node, None, TAINT_OUT_OF_SERVICE);
                    }
                    self.nodes.report_now(sh, node);
                }
            }
        }
        Ok(())
    }
}
