//! Orphan recreation (SEMANTICS B5, B7; issue 14). Each row is a lost bare pod as the
//! components that wrote it left it, every change named with its writer, and what
//! `decide` answers: the fencing evidence, or why not. Then the replacement's content and
//! name, and the attempt budget and backoff.

mod common;

use common::*;
use podwarden_model::orphans::{
    ATTEMPT_ANNOTATION, Attempts, DROPPED_SPEC_FIELDS, Evidence, HOSTNAME_LIMIT, NAME_LIMIT, Next,
    NodeFacts, ORIGINAL_UID_ANNOTATION, REPLACEMENT_ANNOTATION, Skip, decide, derived_name,
    fencing, lineage, prior_attempt, replacement,
};
use podwarden_model::policy::OrphanSettings;
use podwarden_model::{PodView, Seconds, Timestamp};
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
    // A dry run needs no spec: it reports what would have been recreated.
    assert_eq!(
        fencing(&view, true, Some(&deleted_node()), false, true),
        Ok(Evidence::NodeDeleted)
    );
    // Without evidence the reason stays NoEvidence: a spec is asked for only when it
    // would be used.
    let mut deleted = person_deletes(running("Always"), 100).view();
    deleted.full_spec = None;
    assert_eq!(
        decide(&deleted, true, Some(&ready_node()), false, true),
        Err(Skip::NoEvidence)
    );
    assert_eq!(replacement(&view, 1, true), None);
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
    // NoSpec is covered above; BudgetExhausted comes from Attempts; NameTaken and
    // CreateFailed from the create.
    for s in Skip::ALL {
        if matches!(
            s,
            Skip::NoSpec | Skip::BudgetExhausted | Skip::NameTaken | Skip::CreateFailed
        ) {
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
            "BudgetExhausted",
            "NameTaken",
            "CreateFailed"
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

// ---------------------------------------------------------------------------------------
// The replacement.

const WATCH_EVENT: &str = include_str!("../../../fixtures/pod-watch-event.json");

/// The fixture's realistic pod without its owner, as a person would have created it, with
/// what admission and debugging add: a RuntimeClass overhead, an ephemeral container, a
/// finalizer of someone's controller.
fn realistic_bare_pod() -> Value {
    let event: Value = serde_json::from_str(WATCH_EVENT).expect("fixture");
    let mut pod = event["object"].clone();
    let meta = pod["metadata"].as_object_mut().expect("metadata");
    meta.remove("ownerReferences");
    meta.insert("finalizers".into(), json!(["example.com/protect"]));
    pod["spec"]["runtimeClassName"] = json!("kata");
    pod["spec"]["overhead"] = json!({"cpu": "250m", "memory": "120Mi"});
    pod["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger", "image": "busybox", "targetContainerName": "app"}]);
    pod
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

#[test]
fn the_replacement_keeps_the_spec_but_its_binding_and_what_admission_sets() {
    let pod = realistic_bare_pod();
    let view = PodView::from_value(&pod).expect("view");
    let new = replacement(&view, 1, true).expect("a replacement");

    assert_eq!(keys(&new), ["apiVersion", "kind", "metadata", "spec"]);
    assert_eq!(
        (&new["apiVersion"], &new["kind"]),
        (&json!("v1"), &json!("Pod"))
    );

    let mut want_spec = pod["spec"].clone();
    for field in DROPPED_SPEC_FIELDS {
        assert!(
            pod["spec"].get(field).is_some(),
            "the fixture has {field}, so its removal is seen"
        );
        want_spec.as_object_mut().unwrap().remove(field);
        assert!(new["spec"].get(field).is_none(), "{field} is dropped");
    }
    assert_eq!(new["spec"], want_spec, "everything else is kept as it was");
    for kept in [
        "containers",
        "volumes",
        "tolerations",
        "serviceAccountName",
        "securityContext",
        "schedulerName",
        "runtimeClassName",
        "restartPolicy",
    ] {
        assert_eq!(new["spec"][kept], pod["spec"][kept], "{kept}");
    }

    let meta = &new["metadata"];
    assert_eq!(keys(meta), ["annotations", "labels", "name", "namespace"]);
    assert_eq!(meta["name"], pod["metadata"]["name"]);
    assert_eq!(meta["namespace"], pod["metadata"]["namespace"]);
    assert_eq!(meta["labels"], pod["metadata"]["labels"]);
    let mut want_annotations = pod["metadata"]["annotations"].clone();
    want_annotations[ORIGINAL_UID_ANNOTATION] = pod["metadata"]["uid"].clone();
    want_annotations[ATTEMPT_ANNOTATION] = json!("1");
    assert_eq!(meta["annotations"], want_annotations);
}

#[test]
fn a_replacement_reads_back_as_an_unbound_bare_pod_of_its_lineage() {
    let original = running("Always").annotate("team", "payments").view();
    let mut first = replacement(&original, 1, true).expect("attempt 1");
    assert!(first["metadata"].get("uid").is_none());
    first["metadata"]["uid"] = json!("uid-web-second"); // what the API server gives it
    let first = PodView::from_value(&first).expect("view");
    assert!(!first.controlled && first.full_spec.is_some());
    assert_eq!(first.spec.node_name, None);
    assert_eq!(first.labels, original.labels);
    assert_eq!(lineage(&first), &*original.uid);
    assert_eq!(prior_attempt(&first), 1);

    // The replacement, given a uid by the API server and marked by its controller as
    // replaced, then lost: attempt 2 keeps the lineage's first uid, not the marker.
    let mut lost = replacement(&original, 1, true).expect("attempt 1");
    lost["metadata"]["uid"] = json!("uid-web-second");
    lost["metadata"]["annotations"][REPLACEMENT_ANNOTATION] = json!("web-r2");
    lost["spec"]["nodeName"] = json!("node-2");
    let lost = PodView::from_value(&lost).expect("view");
    let second = replacement(&lost, 2, false).expect("attempt 2");
    let annotations = &second["metadata"]["annotations"];
    assert_eq!(annotations[ORIGINAL_UID_ANNOTATION], json!(&*original.uid));
    assert_eq!(annotations[ATTEMPT_ANNOTATION], json!("2"));
    assert_eq!(annotations["team"], json!("payments"));
    assert!(annotations.get(REPLACEMENT_ANNOTATION).is_none());
    assert!(second["spec"].get("nodeName").is_none());
}

fn named(name: &str) -> Pod {
    Pod::new(name).orphan().uid("uid-lost").containers(&["app"])
}

fn made_by(name: &str, attempt: u32) -> Pod {
    named(name)
        .annotate(ORIGINAL_UID_ANNOTATION, "uid-first")
        .annotate(ATTEMPT_ANNOTATION, &attempt.to_string())
}

#[test]
fn one_loss_always_gets_the_same_name() {
    for (case, pod, attempt, gone, want) in [
        ("gone: the original name", named("web"), 1, true, "web"),
        (
            "still there, terminal: a derived name",
            named("web"),
            1,
            false,
            "web-r1",
        ),
        (
            "gone, after naming its replacement while it was there",
            named("web").annotate(REPLACEMENT_ANNOTATION, "web-r1"),
            1,
            true,
            "web-r1",
        ),
        (
            "a replacement still there: the base without its own suffix",
            made_by("web-r1", 1),
            2,
            false,
            "web-r2",
        ),
        (
            "a replacement gone: its own name",
            made_by("web-r1", 1),
            2,
            true,
            "web-r1",
        ),
        (
            "a replacement made under the original name, still there",
            made_by("web", 2),
            3,
            false,
            "web-r3",
        ),
        (
            "a suffix podwarden did not make is part of the name",
            named("db-r1"),
            1,
            false,
            "db-r1-r1",
        ),
    ] {
        let view = pod.view();
        let name = replacement(&view, attempt, gone).expect("a replacement")["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_string();
        assert_eq!(name, want, "{case}");
        assert_eq!(
            replacement(&view, attempt, gone).unwrap()["metadata"]["name"],
            json!(want),
            "{case}: deterministic"
        );
    }
}

/// RFC 1123 subdomain, as pod names are validated.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= NAME_LIMIT
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[test]
fn derived_names_fit_the_name_and_hostname_limits() {
    let prefix = "payments-ledger-reconciler-nightly-batch-eu-west-1a-0";
    let a = format!("{prefix}-aaaaaaa"); // 61
    let b = format!("{prefix}-bbbbbbb");
    let long = format!("{}.{}", "x".repeat(126), "y".repeat(126)); // 253
    let dotted = format!("{}.{}", "a".repeat(59), "b"); // 61, cut lands after the dot
    for (case, name, attempt, limit) in [
        ("fits: suffix only", "web", 1, HOSTNAME_LIMIT),
        (
            "a hostname-sized name stays one",
            a.as_str(),
            1,
            HOSTNAME_LIMIT,
        ),
        (
            "a hostname-sized name, attempt 10",
            a.as_str(),
            10,
            HOSTNAME_LIMIT,
        ),
        ("exactly 63", &"c".repeat(63), 3, HOSTNAME_LIMIT),
        (
            "longer than a hostname: up to 253",
            &"d".repeat(64),
            1,
            NAME_LIMIT,
        ),
        ("253 long", long.as_str(), 2, NAME_LIMIT),
        (
            "253 long, the largest attempt",
            long.as_str(),
            u32::MAX,
            NAME_LIMIT,
        ),
        ("cut next to a dot", dotted.as_str(), 1000, HOSTNAME_LIMIT),
    ] {
        let view = named(name).view();
        let derived = derived_name(&view, attempt);
        assert!(
            derived.len() <= limit,
            "{case}: {derived} ({})",
            derived.len()
        );
        assert!(is_dns_subdomain(&derived), "{case}: {derived}");
        assert!(
            derived.ends_with(&format!("-r{attempt}")),
            "{case}: {derived}"
        );
        assert_eq!(
            derived,
            derived_name(&view, attempt),
            "{case}: deterministic"
        );
    }

    // Two long names sharing the part that is kept still get different names.
    let (da, db) = (
        derived_name(&named(&a).view(), 5),
        derived_name(&named(&b).view(), 5),
    );
    assert_ne!(da, db);
    assert_eq!(da.len(), HOSTNAME_LIMIT);
    assert_eq!(da[..40], db[..40], "{da} and {db} keep the shared prefix");

    // A shortened replacement's own replacement keeps its base: only the suffix changes.
    let first = derived_name(&named(&a).view(), 1);
    let second = derived_name(&made_by(&first, 1).view(), 2);
    assert_eq!(
        first.strip_suffix("-r1"),
        second.strip_suffix("-r2"),
        "{first} then {second}"
    );
}

// ---------------------------------------------------------------------------------------
// The attempt budget and backoff.

fn at(secs: i64) -> Timestamp {
    Timestamp(T0 + secs)
}

/// The original pod of lineage `uid-<name>`, as last seen (evicted, say).
fn original(name: &str) -> PodView {
    Pod::new(name).orphan().containers(&["app"]).view()
}

/// Attempt `attempt` of lineage `uid-<name>`, created at `created`, now lost too.
fn lost_replacement(name: &str, attempt: u32, created: i64) -> PodView {
    Pod::new(name)
        .orphan()
        .uid(&format!("uid-{name}-{attempt}"))
        .created(created)
        .containers(&["app"])
        .annotate(ORIGINAL_UID_ANNOTATION, &format!("uid-{name}"))
        .annotate(ATTEMPT_ANNOTATION, &attempt.to_string())
        .view()
}

fn settings(max_attempts: u32, backoff: i64, max_backoff: i64) -> OrphanSettings {
    OrphanSettings {
        max_attempts,
        backoff: Seconds(backoff),
        max_backoff: Seconds(max_backoff),
        recreate_never: false,
    }
}

#[test]
fn a_lineage_is_recreated_at_once_then_after_a_doubling_backoff_then_no_more() {
    let mut attempts = Attempts::new(OrphanSettings::DEFAULT, Attempts::DEFAULT_CAPACITY);
    assert_eq!(OrphanSettings::DEFAULT, settings(3, 30, 600));
    // (what happened, the lost pod, now, the answer, the attempt then recorded as made)
    let steps: Vec<(&str, PodView, i64, Next, Option<u32>)> = vec![
        (
            "the original is evicted at 100: at once",
            original("web"),
            100,
            Next::Ready(1),
            Some(1),
        ),
        (
            "the evicted original is deleted: the same loss",
            original("web"),
            150,
            Next::Done(1),
            None,
        ),
        (
            "replacement 1 (made at 100) lost at 110: 30 s after 100",
            lost_replacement("web", 1, 100),
            110,
            Next::Wait(at(130)),
            None,
        ),
        (
            "asked again at 130",
            lost_replacement("web", 1, 100),
            130,
            Next::Ready(2),
            Some(2),
        ),
        (
            "replacement 2 lost at 140: doubled, 60 s after 130",
            lost_replacement("web", 2, 130),
            140,
            Next::Wait(at(190)),
            None,
        ),
        (
            "asked again at 190",
            lost_replacement("web", 2, 130),
            190,
            Next::Ready(3),
            Some(3),
        ),
        (
            "replacement 3 lost much later: three attempts used",
            lost_replacement("web", 3, 190),
            5000,
            Next::Exhausted,
            None,
        ),
        (
            "replacement 1 seen again by a relist",
            lost_replacement("web", 1, 100),
            5000,
            Next::Done(2),
            None,
        ),
        (
            "another lineage is not affected",
            original("db"),
            5000,
            Next::Ready(1),
            None,
        ),
    ];
    for (what, lost, now, want, made) in steps {
        assert_eq!(attempts.next(&lost, at(now)), want, "{what}");
        if let Some(n) = made {
            attempts.record(lineage(&lost), n, at(now));
        }
    }
    assert_eq!(attempts.len(), 1);
}

#[test]
fn the_backoff_doubles_up_to_its_cap() {
    let attempts = Attempts::new(settings(10, 30, 100), 16);
    for (prior, wait) in [(1, 30), (2, 60), (3, 100), (4, 100), (9, 100)] {
        assert_eq!(
            attempts.next(&lost_replacement("web", prior, 0), at(0)),
            Next::Wait(at(wait)),
            "after attempt {prior}"
        );
    }
    assert_eq!(
        attempts.next(&lost_replacement("web", 10, 0), at(0)),
        Next::Exhausted
    );
}

#[test]
fn a_restarted_controller_reads_the_count_and_the_time_from_the_lost_replacement() {
    let attempts = Attempts::new(OrphanSettings::DEFAULT, 16);
    let second = lost_replacement("web", 2, 500);
    assert_eq!(attempts.next(&second, at(510)), Next::Wait(at(560)));
    assert_eq!(attempts.next(&second, at(560)), Next::Ready(3));
    assert_eq!(
        attempts.next(&lost_replacement("web", 3, 600), at(9000)),
        Next::Exhausted
    );
    // Without a creation time the backoff cannot be placed; the budget still holds.
    let mut timeless = lost_replacement("web", 1, 0);
    timeless.creation_timestamp = None;
    assert_eq!(attempts.next(&timeless, at(1)), Next::Ready(2));
}

#[test]
fn a_retried_create_keeps_the_first_time_of_its_attempt() {
    let mut attempts = Attempts::new(OrphanSettings::DEFAULT, 16);
    attempts.record("uid-web", 1, at(100));
    attempts.record("uid-web", 1, at(200)); // the same create, retried after a 5xx or a 409
    attempts.record("uid-web", 0, at(300)); // an older attempt seen late
    // The replacement's own creation time is later than the attempt's first time.
    assert_eq!(
        attempts.next(&lost_replacement("web", 1, 201), at(110)),
        Next::Wait(at(130))
    );
}

#[test]
fn zero_attempts_disables_recreation_and_an_unreadable_count_is_exhausted() {
    let disabled = Attempts::new(settings(0, 30, 600), 16);
    assert_eq!(disabled.next(&original("web"), at(0)), Next::Exhausted);
    assert_eq!(Skip::BudgetExhausted.reason(), "BudgetExhausted");

    let attempts = Attempts::new(OrphanSettings::DEFAULT, 16);
    let garbled = Pod::new("web")
        .orphan()
        .containers(&["app"])
        .annotate(ATTEMPT_ANNOTATION, "two")
        .view();
    assert_eq!(prior_attempt(&garbled), u32::MAX);
    assert_eq!(attempts.next(&garbled, at(0)), Next::Exhausted);
}

#[test]
fn a_policy_change_applies_to_the_next_answer() {
    let mut attempts = Attempts::new(OrphanSettings::DEFAULT, 16);
    attempts.record("uid-web", 1, at(100));
    attempts.set_settings(settings(1, 30, 600));
    assert_eq!(attempts.settings().max_attempts, 1);
    assert_eq!(
        attempts.next(&lost_replacement("web", 1, 100), at(1000)),
        Next::Exhausted
    );
}

#[test]
fn the_table_is_bounded_and_forgetting_loses_nothing_the_pods_carry() {
    let mut attempts = Attempts::new(OrphanSettings::DEFAULT, 2);
    assert!(attempts.is_empty());
    for (name, when) in [("a", 100), ("b", 200), ("c", 300)] {
        let lost = original(name);
        assert_eq!(attempts.next(&lost, at(when)), Next::Ready(1));
        attempts.record(lineage(&lost), 1, at(when));
    }
    assert_eq!(attempts.len(), 2, "at most its capacity");
    assert_eq!(attempts.next(&original("b"), at(400)), Next::Done(1));
    assert_eq!(attempts.next(&original("c"), at(400)), Next::Done(1));

    // "a", the oldest, was forgotten. Its replacement's loss gets the same answers from the
    // replacement's annotations and creation time as from the table.
    let remembered = {
        let mut t = Attempts::new(OrphanSettings::DEFAULT, 16);
        t.record("uid-a", 1, at(100));
        t
    };
    for now in [110, 130] {
        let lost = lost_replacement("a", 1, 100);
        assert_eq!(
            attempts.next(&lost, at(now)),
            remembered.next(&lost, at(now))
        );
    }
    // The forgotten original, seen again, is not known as done any more; but it named its
    // replacement before the create, so the create gets the same name and answers 409.
    let marked = Pod::new("a")
        .orphan()
        .containers(&["app"])
        .annotate(REPLACEMENT_ANNOTATION, "a-r1");
    assert_eq!(attempts.next(&marked.view(), at(500)), Next::Ready(1));
    let again = replacement(&marked.view(), 1, true).expect("a replacement");
    assert_eq!(again["metadata"]["name"], json!("a-r1"));
    assert_eq!(derived_name(&original("a"), 1), "a-r1");

    attempts.forget("uid-b");
    assert_eq!(attempts.len(), 1);
    let mut one = Attempts::new(OrphanSettings::DEFAULT, 0);
    one.record("uid-a", 1, at(1));
    one.record("uid-b", 1, at(2));
    assert_eq!(one.len(), 1, "a capacity of 0 keeps one");
}
