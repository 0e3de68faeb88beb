//! Orphan recreation (SEMANTICS B5, B7; issue 14). Each row is a lost bare pod as the
//! components that wrote it left it, every change named with its writer, and what
//! `decide` answers: the fencing evidence, or why not.

mod common;

use common::*;
use podwarden_model::orphans::{Evidence, NodeFacts, Skip, decide};
use serde_json::{Value, json};

const NODE: &str = "node-1";

// ---------------------------------------------------------------------------------------
// The writers. Each returns the pod as the named component leaves it.

/// Created bare (no ownerReferences) with `restartPolicy`, bound to node-1 by the
/// scheduler, started by the kubelet: `app` running and ready.
fn running(policy: &str) -> Pod {
    Pod::new("web")
        .orphan()
        .policy(policy)
        .containers(&["app"])
        .cond("PodScheduled", "True", 0)
        .start_time(1)
        .phase("Running")
        .run("app", 2, true)
        .kubelet_conditions(3)
}

/// Node lifecycle controller: the node stopped posting status; it sets the pod's Ready
/// False (phase and ContainersReady untouched).
fn node_lost(p: Pod, at: i64) -> Pod {
    p.cond("Ready", "False", at)
}

/// Taint manager: a NoExecute taint the pod does not tolerate (or whose tolerationSeconds
/// ran out); it adds DisruptionTarget and deletes the pod with its grace period.
fn taint_manager_deletes(p: Pod, at: i64) -> Pod {
    p.cond("DisruptionTarget", "True", at)
        .cond_reason("DisruptionTarget", "DeletionByTaintManager")
        .cond_message(
            "DisruptionTarget",
            "Taint manager: deleting due to NoExecute taint",
        )
        .deleting(at + 30)
}

/// PodGC `gcOrphaned`: the node is gone; phase Failed with DisruptionTarget, then a delete
/// with grace 0.
fn podgc_orphaned(p: Pod, at: i64) -> Pod {
    p.phase("Failed")
        .cond("DisruptionTarget", "True", at)
        .cond_reason("DisruptionTarget", "DeletionByPodGC")
        .cond_message("DisruptionTarget", "PodGC: node no longer exists")
}

/// PodGC `gcTerminating`: a terminating pod on a node not Ready and tainted out-of-service;
/// phase Failed and nothing else, then a delete with grace 0.
fn podgc_terminating(p: Pod) -> Pod {
    p.phase("Failed")
}

/// Kubelet eviction manager, node pressure: kills the pod, phase Failed, reason Evicted,
/// DisruptionTarget TerminationByKubelet.
fn kubelet_evicts(p: Pod, at: i64, message: &str) -> Pod {
    kubelet_evicts_without_condition(p, at, message)
        .cond("DisruptionTarget", "True", at)
        .cond_reason("DisruptionTarget", "TerminationByKubelet")
        .cond_message("DisruptionTarget", message)
}

/// Kubelet eviction manager, local storage limits: reason Evicted, no condition.
fn kubelet_evicts_without_condition(p: Pod, at: i64, message: &str) -> Pod {
    p.exit("app", 137, 2, at)
        .phase("Failed")
        .reason("Evicted")
        .message(message)
        .kubelet_conditions(at)
}

/// Kubelet node shutdown manager: kills the pod, phase Failed, reason Terminated,
/// DisruptionTarget TerminationByKubelet.
fn kubelet_shuts_down(p: Pod, at: i64) -> Pod {
    let message = "Pod was terminated in response to imminent node shutdown.";
    p.exit("app", 143, 2, at)
        .phase("Failed")
        .reason("Terminated")
        .message(message)
        .cond("DisruptionTarget", "True", at)
        .cond_reason("DisruptionTarget", "TerminationByKubelet")
        .cond_message("DisruptionTarget", message)
        .kubelet_conditions(at)
}

/// A person (kubectl delete): deletion with the grace period; since 1.27 the kubelet moves
/// the pod to Failed once its containers stopped, with no reason and no condition.
fn person_deletes(p: Pod, at: i64) -> Pod {
    p.deleting(at + 30)
        .exit("app", 143, 2, at + 1)
        .phase("Failed")
        .kubelet_conditions(at + 1)
}

fn facts(exists: bool, out_of_service: bool, ready: Option<bool>) -> NodeFacts {
    NodeFacts {
        name: NODE.into(),
        exists,
        out_of_service,
        ready,
    }
}

/// A healthy node.
fn ready_node() -> NodeFacts {
    facts(true, false, Some(true))
}

/// A node whose kubelet went silent: Ready Unknown (partition, or powered off).
fn unreachable_node() -> NodeFacts {
    facts(true, false, None)
}

/// A person tainted the silent node out-of-service.
fn out_of_service_node() -> NodeFacts {
    facts(true, true, None)
}

fn deleted_node() -> NodeFacts {
    NodeFacts::missing(NODE)
}

// ---------------------------------------------------------------------------------------
// The decision table.

struct Row {
    name: &'static str,
    /// The components whose writes made the pod's last state, in order.
    writers: &'static str,
    pod: Pod,
    gone: bool,
    node: Option<NodeFacts>,
    recreate_never: bool,
    synced: bool,
    want: Result<Evidence, Skip>,
}

impl Row {
    fn gone(mut self) -> Self {
        self.gone = true;
        self
    }
    fn node(mut self, node: NodeFacts) -> Self {
        self.node = Some(node);
        self
    }
    fn no_node_facts(mut self) -> Self {
        self.node = None;
        self
    }
    fn never_opt_in(mut self) -> Self {
        self.recreate_never = true;
        self
    }
    fn unsynced(mut self) -> Self {
        self.synced = false;
        self
    }
    fn recreates(mut self, evidence: Evidence) -> Self {
        self.want = Ok(evidence);
        self
    }
    fn skips(mut self, skip: Skip) -> Self {
        self.want = Err(skip);
        self
    }
    fn decide(&self) -> Result<Evidence, Skip> {
        decide(
            &self.pod.view(),
            self.gone,
            self.node.as_ref(),
            self.recreate_never,
            self.synced,
        )
    }
}

/// A present pod on a Ready node-1, caches synced, no opt-in; the expectation set by
/// `recreates` / `skips`.
fn row(name: &'static str, writers: &'static str, pod: Pod) -> Row {
    Row {
        name,
        writers,
        pod,
        gone: false,
        node: Some(ready_node()),
        recreate_never: false,
        synced: true,
        want: Err(Skip::NoEvidence),
    }
}

fn check(rows: &[Row]) {
    let mut failures = Vec::new();
    for r in rows {
        assert!(!r.writers.is_empty(), "{}: names its writers", r.name);
        let got = r.decide();
        if got != r.want {
            failures.push(format!(
                "{} (writers: {}; gone {}, node {:?}): want {:?}, got {got:?}",
                r.name, r.writers, r.gone, r.node, r.want
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn evidence_rows() -> Vec<Row> {
    use Evidence::*;
    vec![
        row(
            "node deleted: PodGC failed the pod and deleted it",
            "scheduler, kubelet, node lifecycle controller, cloud node lifecycle controller (node deleted), PodGC gcOrphaned",
            podgc_orphaned(node_lost(running("Always"), 60), 140),
        )
        .gone()
        .node(deleted_node())
        .recreates(NodeDeleted),
        row(
            "node deleted: PodGC failed the pod, its grace-0 delete not yet seen",
            "scheduler, kubelet, node lifecycle controller, cloud node lifecycle controller, PodGC gcOrphaned",
            podgc_orphaned(node_lost(running("OnFailure"), 60), 140),
        )
        .node(deleted_node())
        .recreates(NodeDeleted),
        row(
            "out-of-service: taint manager deleted it, PodGC force-deleted it",
            "scheduler, kubelet, node lifecycle controller, person (out-of-service taint), taint manager, PodGC gcTerminating",
            podgc_terminating(taint_manager_deletes(node_lost(running("Always"), 60), 400)),
        )
        .gone()
        .node(out_of_service_node())
        .recreates(NodeOutOfService),
        row(
            "out-of-service after the unreachable taint's 300 s: taint manager deleted it before the taint, PodGC force-deleted it after",
            "node lifecycle controller (unreachable taint), taint manager (tolerationSeconds ran out), person (out-of-service taint), PodGC gcTerminating",
            podgc_terminating(taint_manager_deletes(node_lost(running("Always"), 60), 360)),
        )
        .gone()
        .node(facts(true, true, Some(false)))
        .recreates(NodeOutOfService),
        row(
            "evicted for memory pressure",
            "scheduler, kubelet, kubelet eviction manager",
            kubelet_evicts(
                running("Always"),
                50,
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. ",
            ),
        )
        .recreates(Evicted),
        row(
            "disk failure: evicted for disk pressure (nodefs)",
            "scheduler, kubelet, kubelet eviction manager",
            kubelet_evicts(
                running("OnFailure"),
                50,
                "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 2Gi. ",
            ),
        )
        .recreates(Evicted),
        row(
            "evicted for its emptyDir over sizeLimit: reason without condition",
            "scheduler, kubelet, kubelet eviction manager (local storage limits)",
            kubelet_evicts_without_condition(
                running("Always"),
                50,
                "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Gi\". ",
            ),
        )
        .recreates(Evicted),
        row(
            "refused at admission under disk pressure: never started",
            "scheduler, kubelet eviction manager (Admit)",
            Pod::new("web")
                .orphan()
                .containers(&["app"])
                .cond("PodScheduled", "True", 0)
                .phase("Failed")
                .reason("Evicted")
                .message("Pod was rejected: The node had condition: [DiskPressure]. "),
        )
        .recreates(Evicted),
        row(
            "evicted, then deleted by a person cleaning up",
            "kubelet eviction manager, person",
            kubelet_evicts(running("Always"), 50, "The node was low on resource: memory. ")
                .deleting(900),
        )
        .gone()
        .recreates(Evicted),
        row(
            "graceful node shutdown",
            "scheduler, kubelet, kubelet node shutdown manager",
            kubelet_shuts_down(running("Always"), 70),
        )
        .node(facts(true, false, Some(false)))
        .recreates(NodeShutdown),
        row(
            "graceful node shutdown, then the node deleted by the cloud node lifecycle controller",
            "kubelet node shutdown manager, cloud node lifecycle controller, PodGC gcTerminated",
            kubelet_shuts_down(running("OnFailure"), 70),
        )
        .gone()
        .node(deleted_node())
        .recreates(NodeShutdown),
        row(
            "refused at admission while the node shuts down",
            "scheduler, kubelet node shutdown manager (Admit)",
            Pod::new("web")
                .orphan()
                .containers(&["app"])
                .cond("PodScheduled", "True", 0)
                .phase("Failed")
                .reason("NodeShutdown")
                .message("Pod was rejected: Pod was rejected as the node is shutting down."),
        )
        .recreates(NodeShutdown),
        row(
            "restartPolicy Never, evicted, the policy opts in",
            "scheduler, kubelet, kubelet eviction manager",
            kubelet_evicts(running("Never"), 50, "The node was low on resource: memory. "),
        )
        .never_opt_in()
        .recreates(Evicted),
    ]
}

fn never_rows() -> Vec<Row> {
    use Skip::*;
    vec![
        row(
            "a person deleted it (kubectl delete): the kubelet moved it to Failed before removal",
            "scheduler, kubelet, person, kubelet (1.27+ terminal phase on deletion)",
            person_deletes(running("Always"), 100),
        )
        .gone()
        .skips(NoEvidence),
        row(
            "a person force-deleted it while it ran on a healthy node",
            "scheduler, kubelet, person (--force --grace-period=0)",
            running("Always").deleting(100),
        )
        .gone()
        .skips(NoEvidence),
        row(
            "partitioned node, no evidence yet: Ready False, still Running",
            "scheduler, kubelet, node lifecycle controller",
            node_lost(running("Always"), 60),
        )
        .node(unreachable_node())
        .skips(StillBound),
        row(
            "partitioned node: the taint manager deleted it after 300 s, it stays Terminating",
            "node lifecycle controller (unreachable taint), taint manager",
            taint_manager_deletes(node_lost(running("Always"), 60), 360),
        )
        .node(unreachable_node())
        .skips(StillBound),
        row(
            "partitioned node: a person force-deleted the Terminating pod",
            "node lifecycle controller, taint manager, person (--force)",
            taint_manager_deletes(node_lost(running("Always"), 60), 360),
        )
        .gone()
        .node(unreachable_node())
        .skips(StillBound),
        row(
            "Succeeded",
            "scheduler, kubelet",
            running("OnFailure")
                .exit("app", 0, 2, 40)
                .phase("Succeeded")
                .kubelet_conditions(40),
        )
        .skips(Succeeded),
        row(
            "Succeeded, then its node deleted: PodGC leaves a terminal phase as it is",
            "kubelet, cloud node lifecycle controller, PodGC gcOrphaned",
            running("OnFailure")
                .exit("app", 0, 2, 40)
                .phase("Succeeded")
                .kubelet_conditions(40)
                .cond("DisruptionTarget", "True", 140)
                .cond_reason("DisruptionTarget", "DeletionByPodGC"),
        )
        .gone()
        .node(deleted_node())
        .skips(Succeeded),
        row(
            "graceful node shutdown of a pod that had Succeeded keeps Succeeded",
            "kubelet, kubelet node shutdown manager",
            running("Never")
                .exit("app", 0, 2, 40)
                .phase("Succeeded")
                .reason("Terminated")
                .cond("DisruptionTarget", "True", 70)
                .cond_reason("DisruptionTarget", "TerminationByKubelet"),
        )
        .never_opt_in()
        .skips(Succeeded),
        row(
            "owned by a ReplicaSet, node deleted: its owner recreates it",
            "scheduler, kubelet, cloud node lifecycle controller, PodGC gcOrphaned",
            podgc_orphaned(
                node_lost(
                    Pod::new("web")
                        .containers(&["app"])
                        .phase("Running")
                        .run("app", 2, true),
                    60,
                ),
                140,
            ),
        )
        .gone()
        .node(deleted_node())
        .skips(Owned),
        row(
            "restartPolicy Never, node deleted, no opt-in",
            "scheduler, kubelet, cloud node lifecycle controller, PodGC gcOrphaned",
            podgc_orphaned(node_lost(running("Never"), 60), 140),
        )
        .gone()
        .node(deleted_node())
        .skips(RestartPolicyNever),
        row(
            "restartPolicy Never, evicted, no opt-in",
            "kubelet eviction manager",
            kubelet_evicts(
                running("Never"),
                50,
                "The node was low on resource: memory. ",
            ),
        )
        .skips(RestartPolicyNever),
    ]
}

fn near_miss_rows() -> Vec<Row> {
    use Skip::*;
    vec![
        row(
            "DisruptionTarget from the Eviction API (kubectl drain --force) on a healthy node",
            "eviction API, kubelet",
            person_deletes(running("Always"), 100)
                .cond("DisruptionTarget", "True", 100)
                .cond_reason("DisruptionTarget", "EvictionByEvictionAPI"),
        )
        .gone()
        .skips(NoEvidence),
        row(
            "DisruptionTarget from the scheduler's preemption",
            "scheduler (preemption), kubelet",
            person_deletes(running("Always"), 100)
                .cond("DisruptionTarget", "True", 100)
                .cond_reason("DisruptionTarget", "PreemptionByScheduler"),
        )
        .gone()
        .skips(NoEvidence),
        row(
            "DeletionByPodGC with status False is no disruption",
            "PodGC (a condition written False)",
            running("Always")
                .phase("Failed")
                .cond("DisruptionTarget", "False", 140)
                .cond_reason("DisruptionTarget", "DeletionByPodGC"),
        )
        .gone()
        .node(deleted_node())
        .skips(NoEvidence),
        row(
            "node deleted, but a person deleted the pod before PodGC did",
            "cloud node lifecycle controller, person",
            node_lost(running("Always"), 60).deleting(120),
        )
        .gone()
        .node(deleted_node())
        .skips(NoEvidence),
        row(
            "PodGC removed it, but a node of that name is registered again",
            "PodGC gcOrphaned, kubelet (registers the node again)",
            podgc_orphaned(node_lost(running("Always"), 60), 140),
        )
        .gone()
        .node(ready_node())
        .skips(StillBound),
        row(
            "out-of-service taint on another node: the pod's own node is only unreachable",
            "node lifecycle controller, person (taints node-2), taint manager, person (--force)",
            taint_manager_deletes(node_lost(running("Always"), 60), 360),
        )
        .gone()
        .node(unreachable_node())
        .skips(StillBound),
        row(
            "facts about another node (node-2, out-of-service) are no facts about node-1",
            "node lifecycle controller, taint manager, PodGC",
            podgc_terminating(taint_manager_deletes(node_lost(running("Always"), 60), 400)),
        )
        .gone()
        .node(NodeFacts {
            name: "node-2".into(),
            ..out_of_service_node()
        })
        .skips(NotSynced),
        row(
            "out-of-service taint on a Ready node: PodGC does not force-delete there",
            "person (out-of-service taint), taint manager, kubelet or person",
            podgc_terminating(taint_manager_deletes(running("Always"), 400)),
        )
        .gone()
        .node(facts(true, true, Some(true)))
        .skips(NoEvidence),
        row(
            "out-of-service node, but a person deleted the pod (no DisruptionTarget)",
            "node lifecycle controller, person (out-of-service taint), person (kubectl delete), PodGC gcTerminating",
            podgc_terminating(node_lost(running("Always"), 60).deleting(400)),
        )
        .gone()
        .node(out_of_service_node())
        .skips(NoEvidence),
        row(
            "out-of-service node, the pod tolerates the taint: never deleted, still Running",
            "node lifecycle controller, person (out-of-service taint)",
            node_lost(running("Always"), 60),
        )
        .node(out_of_service_node())
        .skips(StillBound),
        row(
            "TerminationByKubelet while still Running: the status manager holds the phase back",
            "kubelet eviction manager (condition written, containers stopping)",
            running("Always")
                .cond("DisruptionTarget", "True", 50)
                .cond_reason("DisruptionTarget", "TerminationByKubelet"),
        )
        .skips(StillBound),
        row(
            "TerminationByKubelet, still Running, then force-deleted by a person",
            "kubelet eviction manager, person (--force)",
            running("Always")
                .cond("DisruptionTarget", "True", 50)
                .cond_reason("DisruptionTarget", "TerminationByKubelet")
                .deleting(55),
        )
        .gone()
        .skips(NoEvidence),
        row(
            "reason Terminated without the kubelet's DisruptionTarget",
            "kubelet before 1.26, or another status writer",
            running("Always")
                .exit("app", 143, 2, 70)
                .phase("Failed")
                .reason("Terminated"),
        )
        .skips(NoEvidence),
        row(
            "activeDeadlineSeconds ran out (DeadlineExceeded): the pod's own deadline",
            "kubelet (active deadline)",
            running("Always")
                .exit("app", 137, 2, 600)
                .phase("Failed")
                .reason("DeadlineExceeded"),
        )
        .skips(NoEvidence),
        row(
            "kubelet preemption for a critical pod (Preempting): not a node fault",
            "kubelet critical pod admission handler",
            running("Always")
                .exit("app", 137, 2, 80)
                .phase("Failed")
                .reason("Preempting")
                .cond("DisruptionTarget", "True", 80)
                .cond_reason("DisruptionTarget", "TerminationByKubelet"),
        )
        .skips(NoEvidence),
        row(
            "failed on its own: app exited 1 under Never, opted in",
            "kubelet",
            running("Never")
                .exit("app", 1, 2, 30)
                .phase("Failed")
                .kubelet_conditions(30),
        )
        .never_opt_in()
        .skips(NoEvidence),
        row(
            "never scheduled, deleted: no kubelet ran it (out-of-service facts ignored)",
            "person",
            Pod::new("web")
                .orphan()
                .unbound()
                .containers(&["app"])
                .cond("PodScheduled", "False", 0)
                .cond_reason("PodScheduled", "Unschedulable")
                .deleting(30),
        )
        .gone()
        .node(out_of_service_node())
        .skips(NoEvidence),
        row(
            "evicted, but the phase still Running (reason without a terminal phase)",
            "a status writer other than the kubelet",
            running("Always").reason("Evicted"),
        )
        .gone()
        .skips(NoEvidence),
    ]
}

fn no_decision_rows() -> Vec<Row> {
    use Skip::*;
    vec![
        row(
            "caches not synced, node deleted",
            "PodGC gcOrphaned",
            podgc_orphaned(node_lost(running("Always"), 60), 140),
        )
        .gone()
        .node(deleted_node())
        .unsynced()
        .skips(NotSynced),
        row(
            "caches not synced, even for an owned pod",
            "kubelet eviction manager",
            Pod::new("web")
                .containers(&["app"])
                .phase("Failed")
                .reason("Evicted"),
        )
        .unsynced()
        .skips(NotSynced),
        row(
            "PodGC removed it, the node cache has no word on node-1",
            "PodGC gcOrphaned",
            podgc_orphaned(node_lost(running("Always"), 60), 140),
        )
        .gone()
        .no_node_facts()
        .skips(NotSynced),
        row(
            "evicted: the kubelet's own evidence needs no node facts",
            "kubelet eviction manager",
            kubelet_evicts(
                running("Always"),
                50,
                "The node was low on resource: pids. ",
            ),
        )
        .no_node_facts()
        .recreates(Evidence::Evicted),
    ]
}

#[test]
fn every_kind_of_fencing_evidence_recreates() {
    check(&evidence_rows());
}

#[test]
fn a_user_delete_a_partition_a_completed_an_owned_and_a_never_pod_are_never_recreated() {
    check(&never_rows());
}

#[test]
fn near_misses_are_not_evidence() {
    check(&near_miss_rows());
}

#[test]
fn no_decision_on_unsynced_caches() {
    check(&no_decision_rows());
}

#[test]
fn evidence_without_a_kept_spec_is_not_recreated_blind() {
    let pod = podgc_orphaned(node_lost(running("Always"), 60), 140);
    let mut view = pod.view();
    assert_eq!(
        decide(&view, true, Some(&deleted_node()), false, true),
        Ok(Evidence::NodeDeleted)
    );
    view.full_spec = None;
    assert_eq!(
        decide(&view, true, Some(&deleted_node()), false, true),
        Err(Skip::NoSpec)
    );
    // Without evidence the reason stays NoEvidence: a spec is asked for only when it
    // would be used.
    let mut deleted = person_deletes(running("Always"), 100).view();
    deleted.full_spec = None;
    assert_eq!(
        decide(&deleted, true, Some(&ready_node()), false, true),
        Err(Skip::NoEvidence)
    );
}

#[test]
fn every_evidence_and_every_skip_of_decide_has_a_row() {
    let rows: Vec<Row> = [
        evidence_rows(),
        never_rows(),
        near_miss_rows(),
        no_decision_rows(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for e in Evidence::ALL {
        assert!(
            rows.iter().any(|r| r.want == Ok(e)),
            "no row recreates for {e}"
        );
    }
    // NoSpec is covered above; BudgetExhausted comes from Attempts.
    for s in Skip::ALL {
        if matches!(s, Skip::NoSpec | Skip::BudgetExhausted) {
            continue;
        }
        assert!(
            rows.iter().any(|r| r.want == Err(s)),
            "no row skips for {s}"
        );
    }
}

#[test]
fn reasons_are_distinct_event_reasons() {
    let skips: Vec<&str> = Skip::ALL.iter().map(|s| s.reason()).collect();
    assert_eq!(
        skips,
        [
            "NoEvidence",
            "Succeeded",
            "Owned",
            "RestartPolicyNever",
            "NotSynced",
            "StillBound",
            "NoSpec",
            "BudgetExhausted"
        ]
    );
    let evidence: Vec<String> = Evidence::ALL.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        evidence,
        ["NodeDeleted", "NodeOutOfService", "Evicted", "NodeShutdown"]
    );
    for e in Evidence::ALL {
        assert!(!e.describe().is_empty());
    }
}

#[test]
fn node_facts_from_node_objects() {
    let node = |taints: Value, ready: Option<&str>| -> k8s_openapi::api::core::v1::Node {
        let conditions = match ready {
            Some(s) => {
                json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": s}])
            }
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": NODE},
            "spec": {"taints": taints},
            "status": {"conditions": conditions}
        }))
        .expect("a Node")
    };
    let oos = json!([{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]);
    let unreachable = json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]);
    for (name, n, want) in [
        (
            "healthy",
            node(json!([]), Some("True")),
            facts(true, false, Some(true)),
        ),
        (
            "kubelet says not ready",
            node(json!([]), Some("False")),
            facts(true, false, Some(false)),
        ),
        (
            "silent kubelet: unreachable taint, Ready Unknown",
            node(unreachable, Some("Unknown")),
            facts(true, false, None),
        ),
        (
            "out-of-service, NoExecute",
            node(oos, Some("Unknown")),
            facts(true, true, None),
        ),
        (
            "out-of-service with NoSchedule: PodGC reads the key only",
            node(
                json!([{"key": "node.kubernetes.io/out-of-service", "effect": "NoSchedule"}]),
                Some("False"),
            ),
            facts(true, true, Some(false)),
        ),
        (
            "no Ready condition yet",
            node(json!(null), None),
            facts(true, false, None),
        ),
    ] {
        assert_eq!(NodeFacts::from_node(&n), Some(want), "{name}");
    }
    let nameless: k8s_openapi::api::core::v1::Node =
        serde_json::from_value(json!({"metadata": {}})).unwrap();
    assert_eq!(NodeFacts::from_node(&nameless), None);
    assert_eq!(deleted_node(), facts(false, false, None));
}
