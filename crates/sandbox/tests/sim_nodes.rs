//! Simulated nodes and the control plane around them, over the API: what a Node looks
//! like (also to `kubectl get nodes -o wide`), leases, and the control-plane side of
//! each node fault: the lifecycle controller, the taint manager and PodGC.

mod sim_common;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent};
use podwarden_sandbox::api::{Watch, WatchEvent as StoreEvent, WatchOptions};
use podwarden_sandbox::sim::{NodeFault, SimHandle};
use serde_json::json;
use sim_common::*;

async fn node(sim: &SimHandle, name: &str) -> Option<Node> {
    let api: Api<Node> = Api::all(sim.client().expect("client"));
    api.get_opt(name).await.expect("get node")
}

/// (status, reason) of a node condition.
fn node_condition(n: &Node, kind: &str) -> Option<(String, Option<String>)> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// (key, value, effect) of the node's taints.
fn taints(n: &Node) -> Vec<(String, String, String)> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value.unwrap_or_default(), t.effect))
        .collect()
}

fn has_taint(n: &Node, key: &str, effect: &str) -> bool {
    taints(n).iter().any(|(k, _, e)| k == key && e == effect)
}

async fn node_events(sim: &SimHandle, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(sim.client().expect("client"), "default");
    api.list(&ListParams::default().fields(&format!(
        "involvedObject.kind=Node,involvedObject.name={name}"
    )))
    .await
    .expect("list events")
    .items
    .into_iter()
    .filter_map(|e| e.reason)
    .collect()
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .expect("bound")
}

/// Creates a pod, lets it be scheduled, and makes sure it reports Ready=True (as its
/// kubelet would once the containers run). Returns its node.
async fn ready_pod(sim: &SimHandle, name: &str) -> String {
    create(sim, pod(name, "Always", &[], &[c("app", "run=1s forever")])).await;
    advance(sim, 5);
    let p = get(sim, name).await;
    if condition(&p, "Ready").map(|c| c.0) != Some("True".into()) {
        let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "ContainersReady", "status": "True"},
            {"type": "Ready", "status": "True"}]}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("status");
    }
    node_of(&get(sim, name).await)
}

#[tokio::test]
async fn nodes_look_like_real_ones_and_renew_their_leases() {
    let sim = cluster(3).await;
    let n = node(&sim, "node-1").await.expect("node-1");
    let labels = n.metadata.labels.clone().unwrap_or_default();
    for (k, v) in [
        ("kubernetes.io/hostname", "node-1"),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "sandbox.standard-4"),
        ("topology.kubernetes.io/zone", "sandbox-central1-b"),
        ("topology.kubernetes.io/region", "sandbox-central1"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
    }
    let status = n.status.clone().expect("status");
    let capacity = status.capacity.clone().expect("capacity");
    let allocatable = status.allocatable.clone().expect("allocatable");
    assert_eq!(capacity["cpu"].0, "4");
    assert_eq!(allocatable["cpu"].0, "3920m");
    assert_eq!(capacity["memory"].0, "16777216Ki");
    assert_eq!(capacity["pods"].0, "110");
    for r in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(allocatable.contains_key(r), "allocatable {r}");
    }
    assert_ne!(
        allocatable["memory"], capacity["memory"],
        "some memory is reserved"
    );
    let addresses: Vec<(String, String)> = status
        .addresses
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert_eq!(
        addresses,
        vec![
            ("InternalIP".into(), "10.0.0.3".into()),
            ("Hostname".into(), "node-1".into())
        ]
    );
    let info = status.node_info.clone().expect("nodeInfo");
    assert!(info.kubelet_version.starts_with("v1.33"), "{info:?}");
    assert_eq!(
        (info.architecture.as_str(), info.operating_system.as_str()),
        ("amd64", "linux")
    );
    assert_eq!(
        node_condition(&n, "Ready"),
        Some(("True".into(), Some("KubeletReady".into())))
    );
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            node_condition(&n, kind).map(|c| c.0),
            Some("False".into()),
            "{kind}"
        );
    }
    assert!(taints(&n).is_empty());
    assert!(
        node_events(&sim, "node-1")
            .await
            .contains(&"RegisteredNode".to_string())
    );

    let leases: Api<Lease> = Api::namespaced(sim.client().expect("client"), "kube-node-lease");
    let renew = |l: Lease| l.spec.and_then(|s| s.renew_time).map(|t| t.0);
    let first = renew(leases.get("node-1").await.expect("lease")).expect("renewTime");
    advance(&sim, 10);
    let second = renew(leases.get("node-1").await.expect("lease")).expect("renewTime");
    assert!(second > first, "renewed every 10 s: {first} -> {second}");
    // Idle heartbeats do not rewrite the Node.
    let before = node(&sim, "node-1")
        .await
        .expect("node")
        .metadata
        .resource_version;
    advance(&sim, 60);
    let after = node(&sim, "node-1")
        .await
        .expect("node")
        .metadata
        .resource_version;
    assert_eq!(
        before, after,
        "status reported every 5 minutes, not every 10 s"
    );
}

#[tokio::test]
async fn kubectl_get_nodes_wide_shows_them() {
    let ok = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("kubectl not installed; skipped");
        return;
    }
    let sim = cluster(2).await;
    let dir = std::env::temp_dir().join(format!("sim-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let kubeconfig = dir.join("kubeconfig");
    sim.sandbox()
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let out = tokio::process::Command::new("kubectl")
        .args(["get", "nodes", "-o", "wide"])
        .env("KUBECONFIG", &kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("kubectl in time")
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&header[..3], ["NAME", "STATUS", "ROLES"], "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("node-0 "))
        .unwrap_or_else(|| panic!("node-0 listed: {text}"));
    for want in [
        "Ready",
        "<none>",
        "v1.33.2",
        "10.0.0.2",
        "Ubuntu 24.04.2 LTS",
        "6.8.0-1028-sandbox",
        "containerd://2.0.5",
    ] {
        assert!(row.contains(want), "{want:?} missing in {row:?}");
    }
    // `kubectl describe node` finds the node's events (their reference has no namespace).
    let out = tokio::process::Command::new("kubectl")
        .args(["describe", "node", "node-0"])
        .env("KUBECONFIG", &kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("kubectl in time")
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RegisteredNode") && text.contains("InternalIP:  10.0.0.2"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn partition_then_unreachable_taint_eviction_and_heal() {
    let sim = cluster(3).await;
    let node_name = ready_pod(&sim, "p").await;
    sim.apply_fault(&node_name, NodeFault::Partition)
        .expect("fault");
    advance(&sim, 30);
    let n = node(&sim, &node_name).await.expect("node");
    assert_eq!(
        node_condition(&n, "Ready").map(|c| c.0),
        Some("True".into()),
        "within grace"
    );
    advance(&sim, 20);
    let n = node(&sim, &node_name).await.expect("node");
    assert_eq!(
        node_condition(&n, "Ready"),
        Some(("Unknown".into(), Some("NodeStatusUnknown".into())))
    );
    assert!(
        has_taint(&n, "node.kubernetes.io/unreachable", "NoExecute"),
        "{:?}",
        taints(&n)
    );
    assert!(
        node_events(&sim, &node_name)
            .await
            .contains(&"NodeNotReady".to_string())
    );
    let p = get(&sim, "p").await;
    assert_eq!(condition(&p, "Ready").map(|c| c.0), Some("False".into()));
    assert_eq!(
        condition(&p, "ContainersReady").map(|c| c.0),
        Some("True".into()),
        "ContainersReady untouched"
    );
    assert_eq!(phase(&p), "Running", "phase untouched");
    assert!(
        event_reasons(&sim, "p")
            .await
            .contains(&"NodeNotReady".to_string())
    );

    // The default toleration (300 s) expires: DisruptionTarget, then a graceful delete
    // that stays pending (the kubelet cannot confirm).
    advance(&sim, 290);
    assert!(
        get(&sim, "p").await.metadata.deletion_timestamp.is_none(),
        "not before 300 s"
    );
    advance(&sim, 15);
    let p = get(&sim, "p").await;
    assert_eq!(
        condition(&p, "DisruptionTarget"),
        Some(("True".into(), Some("DeletionByTaintManager".into())))
    );
    assert!(p.metadata.deletion_timestamp.is_some(), "Terminating");
    advance(&sim, 120);
    assert!(
        try_get(&sim, "p").await.is_some(),
        "stays Terminating while unreachable"
    );

    sim.apply_fault(&node_name, NodeFault::Heal).expect("heal");
    advance(&sim, 10);
    let n = node(&sim, &node_name).await.expect("node");
    assert_eq!(
        node_condition(&n, "Ready"),
        Some(("True".into(), Some("KubeletReady".into())))
    );
    assert!(taints(&n).is_empty(), "{:?}", taints(&n));
    assert!(
        node_events(&sim, &node_name)
            .await
            .contains(&"NodeReady".to_string())
    );
}

/// (status, lastTransitionTime in seconds since the cluster's start) of a pod condition.
fn transition(pod: &Pod, kind: &str) -> Option<(String, i64)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| {
            let t = c
                .last_transition_time
                .as_ref()
                .map_or(0, |t| t.0.as_second());
            (c.status.clone(), t - START)
        })
}

/// Two writers of Ready (B5, B7): the node lifecycle controller sets it False with its
/// own time when the node stops reporting; once the node is back its kubelet writes
/// its cached True with the kubelet's own, older time, because the status manager
/// computes condition times against its cache and not against the API.
#[tokio::test]
async fn after_a_partition_the_kubelet_writes_its_cached_ready_time_over_the_controllers() {
    let sim = cluster(1).await;
    let mut p = pod("two", "Always", &[], &[c("app", "forever")]);
    p["spec"]["nodeName"] = json!("node-0");
    create(&sim, p).await;
    advance(&sim, 5);
    let before = get(&sim, "two").await;
    let (status, first) = transition(&before, "Ready").expect("Ready");
    assert_eq!(status, "True");
    sim.apply_fault("node-0", NodeFault::Partition)
        .expect("fault");
    advance(&sim, 60);
    let marked = get(&sim, "two").await;
    let (status, by_controller) = transition(&marked, "Ready").expect("Ready");
    assert_eq!(status, "False", "NodeNotReady");
    assert!(by_controller > first + 40, "the controller's own time");
    assert_eq!(
        transition(&marked, "ContainersReady"),
        Some(("True".into(), first))
    );
    sim.apply_fault("node-0", NodeFault::Heal).expect("heal");
    advance(&sim, 1);
    let after = get(&sim, "two").await;
    assert_eq!(
        transition(&after, "Ready"),
        Some(("True".into(), first)),
        "the kubelet's cached time, older than the controller's ({by_controller})"
    );
    assert_eq!(
        transition(&after, "ContainersReady"),
        Some(("True".into(), first))
    );
}

#[tokio::test]
async fn a_toleration_without_seconds_never_expires() {
    let sim = cluster(1).await;
    let mut p = pod("stay", "Always", &[], &[c("app", "run=1s forever")]);
    p["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable",
        "operator": "Exists", "effect": "NoExecute"}]);
    create(&sim, p).await;
    advance(&sim, 1);
    sim.apply_fault("node-0", NodeFault::Partition)
        .expect("fault");
    advance(&sim, 900);
    let p = get(&sim, "stay").await;
    assert!(p.metadata.deletion_timestamp.is_none());
    assert_eq!(condition(&p, "DisruptionTarget"), None);
}

/// A bound pod's tolerations may change (their tolerationSeconds): the taint manager
/// looks at the pod again, and a toleration made to last for ever cancels the
/// scheduled deletion with upstream's "Cancelling deletion" event.
#[tokio::test]
async fn a_toleration_changed_on_a_bound_pod_cancels_its_deletion() {
    let sim = cluster(1).await;
    create(
        &sim,
        pod("kept", "Always", &[], &[c("app", "run=1s forever")]),
    )
    .await;
    advance(&sim, 1);
    sim.apply_fault("node-0", NodeFault::Partition)
        .expect("fault");
    // Tainted unreachable after the 40 s grace; the default toleration is 300 s.
    advance(&sim, 100);
    let current = get(&sim, "kept").await;
    let mut tolerations = serde_json::to_value(
        current
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .expect("default tolerations"),
    )
    .expect("tolerations");
    let mut changed = false;
    for t in tolerations.as_array_mut().into_iter().flatten() {
        if t["key"] == "node.kubernetes.io/unreachable" {
            t.as_object_mut().map(|m| m.remove("tolerationSeconds"));
            changed = true;
        }
    }
    assert!(changed, "{tolerations}");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    api.patch(
        "kept",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"tolerations": tolerations}})),
    )
    .await
    .expect("tolerations may change their seconds");
    advance(&sim, 600);
    let p = get(&sim, "kept").await;
    assert!(p.metadata.deletion_timestamp.is_none(), "not deleted");
    assert_eq!(condition(&p, "DisruptionTarget"), None);
    let events: Api<Event> = Api::namespaced(sim.client().expect("client"), "default");
    let messages: Vec<String> = events
        .list(&ListParams::default().fields("involvedObject.name=kept"))
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("TaintManagerEviction"))
        .filter_map(|e| e.message)
        .collect();
    assert_eq!(messages, ["Cancelling deletion of Pod default/kept"]);
}

/// Watches pod `name` in the store from its current version. The store queues each change
/// for its watchers when it commits it, so what the simulation did is there to read at
/// once, without waiting.
async fn watch_pod(sim: &SimHandle, name: &str) -> (String, Watch) {
    let rv = get(sim, name).await.metadata.resource_version;
    let pods = sim.store().resource("", "v1", "pods").expect("pods");
    let watch = sim
        .store()
        .watch(
            &pods,
            Some("default"),
            &WatchOptions {
                resource_version: rv,
                ..Default::default()
            },
        )
        .expect("watch");
    (name.to_string(), watch)
}

/// Every change of the watched pod the store has committed so far.
fn changes_so_far((name, watch): &mut (String, Watch)) -> Vec<WatchEvent<Pod>> {
    let mut out = Vec::new();
    while let Some(ev) = watch.try_next() {
        let Some(o) = ev.object().filter(|o| o.name == *name) else {
            continue;
        };
        let pod: Pod = o.decode().expect("a stored pod decodes");
        out.push(match ev {
            StoreEvent::Deleted(_) => WatchEvent::Deleted(pod),
            StoreEvent::Added(_) => WatchEvent::Added(pod),
            _ => WatchEvent::Modified(pod),
        });
    }
    out
}

/// Every change of the watched pod up to its deletion, advancing the stepped clock one
/// second at a time until the deletion is seen; fails if it is not seen within
/// `max_secs` simulated seconds.
fn changes_until_deleted(
    sim: &SimHandle,
    (name, watch): &mut (String, Watch),
    max_secs: u64,
) -> Vec<WatchEvent<Pod>> {
    let mut out = Vec::new();
    for waited in 0..=max_secs {
        if waited > 0 {
            advance(sim, 1);
        }
        while let Some(ev) = watch.try_next() {
            let Some(o) = ev.object().filter(|o| o.name == *name) else {
                continue;
            };
            let pod: Pod = o.decode().expect("a stored pod decodes");
            match ev {
                StoreEvent::Deleted(_) => {
                    out.push(WatchEvent::Deleted(pod));
                    return out;
                }
                StoreEvent::Added(_) => out.push(WatchEvent::Added(pod)),
                _ => out.push(WatchEvent::Modified(pod)),
            }
        }
    }
    panic!("{name} not deleted within {max_secs} simulated seconds; changes: {out:?}");
}

#[tokio::test]
async fn deleted_node_pods_are_failed_and_removed_by_podgc() {
    let sim = cluster(2).await;
    let node_name = ready_pod(&sim, "orphan").await;
    let mut changes = watch_pod(&sim, "orphan").await;
    sim.apply_fault(&node_name, NodeFault::Delete)
        .expect("fault");
    assert!(node(&sim, &node_name).await.is_none(), "Node deleted");
    let leases: Api<Lease> = Api::namespaced(sim.client().expect("client"), "kube-node-lease");
    assert!(
        leases.get_opt(&node_name).await.expect("get").is_none(),
        "Lease deleted"
    );
    advance(&sim, 30);
    assert!(
        try_get(&sim, "orphan").await.is_some(),
        "quarantined for 40 s first"
    );
    advance(&sim, 50);
    assert!(
        try_get(&sim, "orphan").await.is_none(),
        "gone after the quarantine"
    );
    let seen = changes_until_deleted(&sim, &mut changes, 60);
    let failed = seen.iter().find_map(|ev| match ev {
        WatchEvent::Modified(p) if phase(p) == "Failed" => Some(p.clone()),
        _ => None,
    });
    let failed = failed.unwrap_or_else(|| panic!("a Failed version: {seen:?}"));
    assert_eq!(
        condition(&failed, "DisruptionTarget"),
        Some(("True".into(), Some("DeletionByPodGC".into())))
    );
    assert!(
        matches!(seen.last(), Some(WatchEvent::Deleted(_))),
        "{seen:?}"
    );

    sim.apply_fault(&node_name, NodeFault::Heal).expect("heal");
    advance(&sim, 1);
    let n = node(&sim, &node_name).await.expect("registered again");
    assert_eq!(
        node_condition(&n, "Ready").map(|c| c.0),
        Some("True".into())
    );
    assert!(leases.get_opt(&node_name).await.expect("get").is_some());
}

#[tokio::test]
async fn out_of_service_removes_terminating_pods() {
    let sim = cluster(2).await;
    let node_name = ready_pod(&sim, "fenced").await;
    sim.apply_fault(&node_name, NodeFault::Partition)
        .expect("fault");
    advance(&sim, 50);
    let mut changes = watch_pod(&sim, "fenced").await;
    sim.apply_fault(&node_name, NodeFault::OutOfService)
        .expect("fault");
    let n = node(&sim, &node_name).await.expect("node");
    assert!(
        taints(&n).contains(&(
            "node.kubernetes.io/out-of-service".into(),
            "nodeshutdown".into(),
            "NoExecute".into()
        )),
        "{:?}",
        taints(&n)
    );
    let p = get(&sim, "fenced").await;
    assert!(
        p.metadata.deletion_timestamp.is_some(),
        "the untolerated taint deletes it"
    );
    assert_eq!(
        condition(&p, "DisruptionTarget").map(|c| c.1),
        Some(Some("DeletionByTaintManager".into()))
    );
    advance(&sim, 21);
    assert!(try_get(&sim, "fenced").await.is_none(), "PodGC removed it");
    let seen = changes_until_deleted(&sim, &mut changes, 60);
    assert!(
        seen.iter()
            .any(|ev| matches!(ev, WatchEvent::Modified(p) if phase(p) == "Failed")),
        "marked Failed before removal: {seen:?}"
    );
}

/// A pod bound to node-0 that tolerates every taint (so the taint manager never
/// deletes it), Running and ready; then node-0 is partitioned for long enough for the
/// node lifecycle controller to mark the pod NotReady, and a person deletes the pod.
async fn terminating_on_a_lost_node(sim: &SimHandle, name: &str, finalizer: bool) -> Pod {
    let mut p = pod(name, "Always", &[], &[c("app", "forever")]);
    p["spec"]["nodeName"] = json!("node-0");
    p["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    if finalizer {
        p["metadata"]["finalizers"] = json!(["example.com/hold"]);
    }
    create(sim, p).await;
    advance(sim, 5);
    sim.apply_fault("node-0", NodeFault::Partition)
        .expect("fault");
    advance(sim, 60);
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    api.delete(name, &Default::default()).await.expect("delete");
    advance(sim, 1);
    let p = get(sim, name).await;
    assert!(p.metadata.deletion_timestamp.is_some(), "Terminating");
    assert_eq!(phase(&p), "Running");
    assert_eq!(condition(&p, "Ready").map(|c| c.0), Some("False".into()));
    assert_eq!(
        condition(&p, "ContainersReady").map(|c| c.0),
        Some("True".into())
    );
    p
}

/// PodGC's out-of-service path (B5, upstream `gcTerminating`): a terminating pod on a
/// node that is not Ready and carries `node.kubernetes.io/out-of-service` is marked
/// Failed by a write of the phase alone, then force-deleted. Ready and ContainersReady
/// stay as the node lifecycle controller and the dead kubelet left them
/// (ContainersReady True), and no DisruptionTarget is added: the legal move to Failed
/// that terminal-phase-ready must not report.
#[tokio::test]
async fn podgc_fails_terminating_pods_of_an_out_of_service_node_by_their_phase_alone() {
    let sim = cluster(1).await;
    let before = terminating_on_a_lost_node(&sim, "fenced", false).await;
    let mut changes = watch_pod(&sim, "fenced").await;
    sim.apply_fault("node-0", NodeFault::OutOfService)
        .expect("fault");
    advance(&sim, 21);
    assert!(try_get(&sim, "fenced").await.is_none(), "PodGC removed it");
    let seen = changes_until_deleted(&sim, &mut changes, 60);
    let failed = match seen.as_slice() {
        [WatchEvent::Modified(failed), WatchEvent::Deleted(_)] => failed.clone(),
        other => panic!("one write, then the removal: {other:#?}"),
    };
    assert_eq!(phase(&failed), "Failed");
    let without_phase = |p: &Pod| {
        let mut s = serde_json::to_value(p.status.clone().expect("status")).expect("json");
        s.as_object_mut().map(|m| m.remove("phase"));
        s
    };
    assert_eq!(
        without_phase(&failed),
        without_phase(&before),
        "PodGC writes the phase and nothing else"
    );
    assert_eq!(
        condition(&failed, "ContainersReady").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(condition(&failed, "DisruptionTarget"), None);
}

/// A pod PodGC failed while its node was away, kept by a finalizer, stays Failed when
/// the node comes back: the kubelet never moves a terminal API phase back (B1); it
/// finishes the pod and reports its readiness False.
#[tokio::test]
async fn a_pod_failed_by_podgc_stays_failed_when_its_node_comes_back() {
    let sim = cluster(1).await;
    terminating_on_a_lost_node(&sim, "held", true).await;
    sim.apply_fault("node-0", NodeFault::OutOfService)
        .expect("fault");
    advance(&sim, 21);
    assert_eq!(
        phase(&get(&sim, "held").await),
        "Failed",
        "kept by its finalizer"
    );
    let mut changes = watch_pod(&sim, "held").await;
    sim.apply_fault("node-0", NodeFault::Heal).expect("heal");
    advance(&sim, 5);
    // Kept by its finalizer: every change so far, not a deletion.
    let seen: Vec<Pod> = changes_so_far(&mut changes)
        .into_iter()
        .filter_map(|ev| match ev {
            WatchEvent::Modified(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(!seen.is_empty(), "the kubelet writes when it is back");
    for p in &seen {
        assert_eq!(phase(p), "Failed", "{p:#?}");
    }
    let last = seen.last().expect("a version");
    assert_eq!(condition(last, "Ready").map(|c| c.0), Some("False".into()));
    assert_eq!(
        condition(last, "ContainersReady").map(|c| c.0),
        Some("False".into())
    );
}

#[tokio::test]
async fn memory_pressure_sets_the_condition_and_taint_until_healed() {
    let sim = cluster(2).await;
    sim.apply_fault("node-0", NodeFault::MemoryPressure)
        .expect("fault");
    let n = node(&sim, "node-0").await.expect("node");
    assert_eq!(
        node_condition(&n, "MemoryPressure"),
        Some(("True".into(), Some("KubeletHasInsufficientMemory".into())))
    );
    assert_eq!(
        node_condition(&n, "Ready").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(
        taints(&n),
        vec![(
            "node.kubernetes.io/memory-pressure".into(),
            String::new(),
            "NoSchedule".into()
        )]
    );
    let mut p = pod("pinned", "Always", &[], &[c("app", "run=1s forever")]);
    p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "node-0"});
    create(&sim, p).await;
    sim.settle().expect("stepped");
    let p = get(&sim, "pinned").await;
    let message = p
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert_eq!(
        message,
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/memory-pressure: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );

    sim.apply_fault("node-0", NodeFault::Heal).expect("heal");
    advance(&sim, 2);
    let n = node(&sim, "node-0").await.expect("node");
    assert_eq!(
        node_condition(&n, "MemoryPressure").map(|c| c.0),
        Some("False".into())
    );
    assert!(taints(&n).is_empty());
    assert!(
        get(&sim, "pinned")
            .await
            .spec
            .and_then(|s| s.node_name)
            .is_some()
    );
}

#[tokio::test]
async fn shutdown_reports_not_ready_then_goes_silent() {
    let sim = cluster(2).await;
    sim.apply_fault("node-1", NodeFault::Shutdown)
        .expect("fault");
    let n = node(&sim, "node-1").await.expect("node");
    assert_eq!(
        node_condition(&n, "Ready"),
        Some(("False".into(), Some("KubeletNotReady".into())))
    );
    assert!(
        has_taint(&n, "node.kubernetes.io/not-ready", "NoExecute"),
        "{:?}",
        taints(&n)
    );
    assert!(
        node_events(&sim, "node-1")
            .await
            .contains(&"NodeNotReady".to_string())
    );
    advance(&sim, 50);
    let n = node(&sim, "node-1").await.expect("node");
    assert_eq!(
        node_condition(&n, "Ready"),
        Some(("Unknown".into(), Some("NodeStatusUnknown".into())))
    );
    assert!(
        has_taint(&n, "node.kubernetes.io/unreachable", "NoExecute"),
        "{:?}",
        taints(&n)
    );
    assert!(!has_taint(&n, "node.kubernetes.io/not-ready", "NoExecute"));
    sim.apply_fault("node-1", NodeFault::Heal).expect("heal");
    let n = node(&sim, "node-1").await.expect("node");
    assert_eq!(
        node_condition(&n, "Ready").map(|c| c.0),
        Some("True".into())
    );
    assert!(taints(&n).is_empty(), "{:?}", taints(&n));
}

#[tokio::test]
async fn podgc_fails_unscheduled_terminating_pods() {
    let sim = cluster(1).await;
    let mut p = pod("held", "Always", &[], &[c("app", "run=1s forever")]);
    p["metadata"]["finalizers"] = json!(["example.com/hold"]);
    p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "elsewhere"});
    create(&sim, p).await;
    sim.settle().expect("stepped");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    api.delete("held", &Default::default())
        .await
        .expect("delete");
    advance(&sim, 21);
    let held = get(&sim, "held").await;
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        phase(&held),
        "Failed",
        "PodGC fails it; the finalizer keeps it"
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("drop finalizer");
    advance(&sim, 1);
    assert!(try_get(&sim, "held").await.is_none());
}

#[tokio::test]
async fn podgc_deletes_the_oldest_terminated_pods_above_its_threshold() {
    // kube-controller-manager's --terminated-pod-gc-threshold, set low (default 12,500).
    let sim = cluster_with(podwarden_sandbox::sim::SimConfig {
        nodes: 2,
        terminated_pod_gc_threshold: 3,
        ..stepped()
    })
    .await;
    assert_eq!(
        podwarden_sandbox::sim::SimConfig::default().terminated_pod_gc_threshold,
        12_500
    );
    // Created a second apart (PodGC goes by creation time), each done in 2 s; one runs on.
    for i in 0..6 {
        create(
            &sim,
            pod(
                &format!("job-{i}"),
                "Never",
                &[],
                &[c("app", "run=2s exit=0")],
            ),
        )
        .await;
        advance(&sim, 1);
    }
    create(&sim, pod("server", "Always", &[], &[c("app", "forever")])).await;
    advance(&sim, 30); // every job done, and at least one PodGC pass (every 20 s)
    let mut left = Vec::new();
    for i in 0..6 {
        let name = format!("job-{i}");
        if let Some(p) = try_get(&sim, &name).await {
            assert_eq!(phase(&p), "Succeeded", "{name}");
            left.push(name);
        }
    }
    assert_eq!(left, ["job-3", "job-4", "job-5"], "the three newest stay");
    assert_eq!(
        phase(&get(&sim, "server").await),
        "Running",
        "running pods are not counted"
    );
}

/// Above the threshold PodGC deletes evicted pods before any other, whatever their age
/// (upstream's `byEvictionAndCreationTimestamp`), then the oldest.
#[tokio::test]
async fn podgc_deletes_evicted_pods_first() {
    let sim = cluster_with(podwarden_sandbox::sim::SimConfig {
        nodes: 2,
        terminated_pod_gc_threshold: 3,
        ..stepped()
    })
    .await;
    let on = |mut p: serde_json::Value, node: &str| {
        p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": node});
        p
    };
    for i in 0..6 {
        let job = pod(
            &format!("job-{i}"),
            "Never",
            &[],
            &[c("app", "run=2s exit=0")],
        );
        create(&sim, on(job, "node-0")).await;
        advance(&sim, 1);
    }
    // The newest terminated pod, but evicted.
    let server = pod("evicted", "Always", &[], &[c("app", "forever")]);
    create(&sim, on(server, "node-1")).await;
    advance(&sim, 1);
    sim.apply_fault("node-1", NodeFault::MemoryPressure)
        .expect("fault");
    advance(&sim, 5);
    let p = get(&sim, "evicted").await;
    assert_eq!(
        (phase(&p), p.status.and_then(|s| s.reason)),
        ("Failed".to_string(), Some("Evicted".to_string()))
    );
    advance(&sim, 30); // at least one PodGC pass (every 20 s)
    let mut left = Vec::new();
    for name in [
        "job-0", "job-1", "job-2", "job-3", "job-4", "job-5", "evicted",
    ] {
        if try_get(&sim, name).await.is_some() {
            left.push(name);
        }
    }
    assert_eq!(
        left,
        ["job-3", "job-4", "job-5"],
        "evicted first, then the oldest"
    );
}
