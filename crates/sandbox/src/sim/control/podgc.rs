//! PodGC (SEMANTICS.md B5), every 20 s:
//! - orphaned pods, bound to a node that no longer exists (after a 40 s quarantine and
//!   a check against the API): phase Failed (if not terminal) with DisruptionTarget
//!   `DeletionByPodGC`, then deleted with grace 0;
//! - terminating pods on nodes tainted `out-of-service` that are not Ready (upstream
//!   `gcTerminating`): phase Failed and nothing else (no DisruptionTarget; Ready and
//!   ContainersReady stay as the node lifecycle controller and the dead kubelet left
//!   them, ContainersReady often True), then deleted with grace 0;
//! - unscheduled terminating pods: deleted;
//! - terminated pods above the threshold (kube-controller-manager's
//!   `--terminated-pod-gc-threshold`, [`TERMINATED_THRESHOLD`] unless configured; 0
//!   turns this off): evicted pods deleted first, then the oldest.
//!
//! Works from the control plane's pod index: a pass reads the pods of missing or
//! out-of-service nodes and the terminated set's head, never all pods.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::api::object::{self, ObjectKey};
use crate::api::{DeleteOptions, admission};

use super::super::pod_meta::PodMeta;
use super::super::taints::TAINT_OUT_OF_SERVICE;
use super::super::world::World;
use super::node_lifecycle::NodeView;
use super::pod_index::PodIndex;
use crate::sim::config::TERMINATED_THRESHOLD;

pub const PERIOD: jiff::SignedDuration = jiff::SignedDuration::from_secs(20);
pub const QUARANTINE: jiff::SignedDuration = jiff::SignedDuration::from_secs(40);

/// Nodes seen missing while pods are bound to them, since when (bound: nodes that
/// held pods).
#[derive(Debug)]
pub struct PodGc {
    missing: BTreeMap<String, jiff::Timestamp>,
    pub deleted: u64,
    /// Terminated pods kept before the oldest are deleted; 0: never.
    pub terminated_threshold: usize,
}

impl Default for PodGc {
    fn default() -> Self {
        PodGc {
            missing: BTreeMap::new(),
            deleted: 0,
            terminated_threshold: TERMINATED_THRESHOLD,
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct MetaOnly {
    metadata: PodMeta,
}

/// Whether the cached pod is being deleted (reads its metadata).
pub fn terminating(sh: &World, key: &ObjectKey) -> bool {
    sh.pods.get(key).is_some_and(|p| {
        serde_json::from_slice::<MetaOnly>(&p.json)
            .map(|m| m.metadata.deletion_timestamp.is_some())
            .unwrap_or(false)
    })
}

impl PodGc {
    pub fn pass(&mut self, sh: &World, index: &PodIndex, views: &BTreeMap<String, NodeView>) {
        let now = sh.now();
        // Terminated pods above the threshold: evicted first, then the oldest.
        let excess = match self.terminated_threshold {
            0 => 0,
            keep => index.terminated.len().saturating_sub(keep),
        };
        let oldest: Vec<ObjectKey> = index
            .terminated
            .iter()
            .take(excess)
            .map(|(_, k)| k.clone())
            .collect();
        for key in oldest {
            self.fail_and_delete(sh, &key, None);
        }
        // Terminating pods on out-of-service nodes that are not Ready.
        for (name, view) in views {
            if !view.has_taint(TAINT_OUT_OF_SERVICE) || view.ready() == "True" {
                continue;
            }
            let keys: Vec<ObjectKey> = index
                .by_node
                .get(name)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for key in keys {
                if terminating(sh, &key) {
                    self.fail_and_delete(sh, &key, None);
                }
            }
        }
        // Orphans: nodes gone for the quarantine, confirmed through the API.
        let holding: BTreeSet<&String> = index
            .by_node
            .iter()
            .filter(|(_, pods)| !pods.is_empty())
            .map(|(n, _)| n)
            .collect();
        self.missing
            .retain(|n, _| holding.contains(n) && !sh.nodes.contains_key(n));
        for name in holding {
            if sh.nodes.contains_key(name) {
                continue;
            }
            let since = *self.missing.entry(name.clone()).or_insert(now);
            if now.duration_since(since) < QUARANTINE {
                continue;
            }
            if sh.store.get(&sh.apis.nodes, None, name).is_ok() {
                continue;
            }
            let condition = json!({"type": "DisruptionTarget", "status": "True",
                "lastProbeTime": null, "lastTransitionTime": object::format_time(now),
                "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists"});
            let keys: Vec<ObjectKey> = index
                .by_node
                .get(name)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for key in keys {
                self.fail_and_delete(sh, &key, Some(&condition));
            }
        }
        // Unscheduled terminating pods.
        for key in &index.unbound_terminating {
            self.fail_and_delete(sh, key, None);
        }
    }

    /// Upstream `markFailedAndDeletePodWithCondition`: phase Failed (and the condition)
    /// unless terminal, then a delete with grace 0.
    fn fail_and_delete(&mut self, sh: &World, key: &ObjectKey, condition: Option<&Value>) {
        let Some(pod) = sh.pods.get(key) else {
            return;
        };
        let uid = pod.uid.clone();
        let terminal = matches!(
            pod.field("status.phase").as_deref(),
            Some("Succeeded" | "Failed")
        );
        if !terminal && !self.mark_failed(sh, key, &uid, condition) {
            return;
        }
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(uid),
            ..Default::default()
        };
        match sh.store.delete(&sh.apis.pods, Some(&key.0), &key.1, &opts) {
            Ok(_) => self.deleted += 1,
            Err(e) => tracing::debug!(pod = ?key, error = %e, "PodGC delete failed"),
        }
    }

    /// Phase Failed (and `condition`) unless the pod is terminal by now; whether the pod
    /// is still there to delete.
    fn mark_failed(
        &self,
        sh: &World,
        key: &ObjectKey,
        uid: &str,
        condition: Option<&Value>,
    ) -> bool {
        let marked = sh.update_pod_status(key, uid, super::node_lifecycle::MANAGER, |pod| {
            let phase = object::path_str(pod, &["status", "phase"]).unwrap_or_default();
            if phase != "Succeeded" && phase != "Failed" {
                crate::api::patch::set_path(pod, &["status", "phase"], json!("Failed"));
                if let Some(c) = condition {
                    admission::set_condition(pod, c.clone());
                }
            }
        });
        marked.is_ok()
    }
}
