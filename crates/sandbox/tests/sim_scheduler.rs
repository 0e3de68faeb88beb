//! The simulated scheduler over the API: filters (resources, nodeSelector, taints,
//! required node affinity), the Unschedulable condition and message in the upstream
//! shape, retries once the cluster changes, least-allocated spreading and seeded
//! determinism.

mod sim_common;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use podwarden_sandbox::sim::{NodeFault, NodeShape, SimConfig, SimHandle};
use serde_json::{Value, json};
use sim_common::*;

/// A pod whose one container requests `requests` (`{"cpu": "500m"}`).
fn sized(name: &str, requests: Value) -> Value {
    let mut p = pod(name, "Always", &[], &[c("app", "run=1s forever")]);
    p["spec"]["containers"][0]["resources"] = json!({ "requests": requests });
    p
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// The PodScheduled condition: (status, reason, message).
fn scheduled(pod: &Pod) -> Option<(String, Option<String>, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn unschedulable_message(sim: &SimHandle, name: &str) -> String {
    let p = get(sim, name).await;
    assert_eq!(node_of(&p), None, "{name} should not be bound");
    let (status, reason, message) = scheduled(&p).expect("PodScheduled condition");
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    message.unwrap_or_default()
}

/// (reason, message, count, source component) of the events about `name`.
async fn events(sim: &SimHandle, name: &str) -> Vec<(String, String, i32, String)> {
    let api: Api<Event> = Api::namespaced(sim.client().expect("client"), "default");
    api.list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .expect("list events")
        .items
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or_default(),
                e.source.and_then(|s| s.component).unwrap_or_default(),
            )
        })
        .collect()
}

async fn taint_node(sim: &SimHandle, node: &str, taints: Value) {
    let api: Api<Node> = Api::all(sim.client().expect("client"));
    api.patch(
        node,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"taints": taints}})),
    )
    .await
    .expect("taint node");
}

#[tokio::test]
async fn a_pod_is_bound_with_a_scheduled_event() {
    let sim = cluster(3).await;
    create(&sim, sized("web", json!({"cpu": "100m"}))).await;
    sim.settle().expect("stepped");
    let p = get(&sim, "web").await;
    let node = node_of(&p).expect("bound");
    assert_eq!(
        scheduled(&p).map(|c| c.0),
        Some("True".into()),
        "the binding writes PodScheduled=True"
    );
    let evs = events(&sim, "web").await;
    let want = (
        "Scheduled".to_string(),
        format!("Successfully assigned default/web to {node}"),
        1,
        "default-scheduler".to_string(),
    );
    assert!(evs.contains(&want), "{evs:?}");
}

#[tokio::test]
async fn insufficient_cpu_memory_and_pods_give_the_upstream_message() {
    let sim = cluster_with(SimConfig {
        nodes: 2,
        node_shape: NodeShape {
            pods: 2,
            ..NodeShape::default()
        },
        ..stepped()
    })
    .await;
    create(&sim, sized("big-cpu", json!({"cpu": "5"}))).await;
    create(&sim, sized("big-mem", json!({"memory": "64Gi"}))).await;
    create(&sim, sized("both", json!({"cpu": "5", "memory": "64Gi"}))).await;
    sim.settle().expect("stepped");
    let victims =
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.";
    assert_eq!(
        unschedulable_message(&sim, "big-cpu").await,
        format!("0/2 nodes are available: 2 Insufficient cpu. {victims}")
    );
    assert_eq!(
        unschedulable_message(&sim, "big-mem").await,
        format!("0/2 nodes are available: 2 Insufficient memory. {victims}")
    );
    assert_eq!(
        unschedulable_message(&sim, "both").await,
        format!("0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. {victims}")
    );
    let evs = events(&sim, "big-cpu").await;
    assert!(
        evs.iter().any(|(r, m, _, s)| r == "FailedScheduling"
            && m.starts_with("0/2 nodes are available: 2 Insufficient cpu.")
            && s == "default-scheduler"),
        "{evs:?}"
    );
    // Four small pods fill both nodes' pod slots; the fifth finds none.
    for i in 0..5 {
        create(&sim, sized(&format!("small-{i}"), json!({"cpu": "10m"}))).await;
    }
    sim.settle().expect("stepped");
    assert_eq!(
        unschedulable_message(&sim, "small-4").await,
        format!("0/2 nodes are available: 2 Too many pods. {victims}")
    );
}

#[tokio::test]
async fn an_unchanged_unschedulable_condition_is_not_rewritten_on_retries() {
    let sim = cluster(1).await;
    create(&sim, sized("huge", json!({"cpu": "64"}))).await;
    sim.settle().expect("stepped");
    let before = get(&sim, "huge").await.metadata.resource_version;
    advance(&sim, 60);
    let after = get(&sim, "huge").await;
    assert_eq!(
        after.metadata.resource_version, before,
        "retries do not rewrite the same condition"
    );
    let evs = events(&sim, "huge").await;
    let failed = evs
        .iter()
        .find(|e| e.0 == "FailedScheduling")
        .expect("FailedScheduling event");
    // Back-off 1, 2, 4, 8, 10, 10, ... s; retried only when the cluster changed, so
    // the count stays small: the attempts are few, not one per tick.
    assert!(failed.2 >= 1 && failed.2 <= 8, "{evs:?}");
}

#[tokio::test]
async fn node_selector_taints_and_tolerations() {
    let sim = cluster(3).await;
    let zone_b = "sandbox-central1-b";
    let mut p = sized("in-b", json!({"cpu": "100m"}));
    p["spec"]["nodeSelector"] = json!({"topology.kubernetes.io/zone": zone_b});
    create(&sim, p).await;
    let mut p = sized("nowhere", json!({"cpu": "100m"}));
    p["spec"]["nodeSelector"] = json!({"topology.kubernetes.io/zone": "mars-1a"});
    create(&sim, p).await;
    sim.settle().expect("stepped");
    assert_eq!(node_of(&get(&sim, "in-b").await).as_deref(), Some("node-1"));
    assert_eq!(
        unschedulable_message(&sim, "nowhere").await,
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );

    let gpu = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    taint_node(&sim, "node-0", gpu.clone()).await;
    taint_node(&sim, "node-1", gpu).await;
    taint_node(
        &sim,
        "node-2",
        json!([{"key": "maintenance", "effect": "NoExecute"}]),
    )
    .await;
    create(&sim, sized("plain", json!({"cpu": "100m"}))).await;
    let mut p = sized("tolerant", json!({"cpu": "100m"}));
    p["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
    p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "node-0"});
    create(&sim, p).await;
    let mut p = sized("exists", json!({"cpu": "100m"}));
    p["spec"]["tolerations"] = json!([{"key": "maintenance", "operator": "Exists"}]);
    create(&sim, p).await;
    sim.settle().expect("stepped");
    assert_eq!(
        unschedulable_message(&sim, "plain").await,
        "0/3 nodes are available: 1 node(s) had untolerated taint {maintenance: }, 2 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        node_of(&get(&sim, "tolerant").await).as_deref(),
        Some("node-0")
    );
    assert_eq!(
        node_of(&get(&sim, "exists").await).as_deref(),
        Some("node-2")
    );
}

#[tokio::test]
async fn required_node_affinity() {
    let sim = cluster(3).await;
    let with = |name: &str, terms: Value| {
        let mut p = sized(name, json!({"cpu": "100m"}));
        p["spec"]["affinity"] = json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
        p
    };
    create(
        &sim,
        with(
            "by-label",
            json!([{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}]}]),
        ),
    )
    .await;
    create(
        &sim,
        with(
            "by-field",
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]),
        ),
    )
    .await;
    create(
        &sim,
        with(
            "not-in",
            json!([{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node-0", "node-1"]},
                {"key": "kubernetes.io/os", "operator": "Exists"}]}]),
        ),
    )
    .await;
    // Terms are ORed: the first matches nothing, the second node-0.
    create(
        &sim,
        with(
            "either",
            json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                   {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-0"]}]}]),
        ),
    )
    .await;
    create(
        &sim,
        with(
            "never",
            json!([{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "DoesNotExist"}]}]),
        ),
    )
    .await;
    sim.settle().expect("stepped");
    let placed = [
        ("by-label", "node-2"),
        ("by-field", "node-1"),
        ("not-in", "node-2"),
        ("either", "node-0"),
    ];
    for (name, node) in placed {
        assert_eq!(
            node_of(&get(&sim, name).await).as_deref(),
            Some(node),
            "{name}"
        );
    }
    assert!(unschedulable_message(&sim, "never").await.starts_with(
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    ));
}

#[tokio::test]
async fn mixed_reasons_then_scheduled_once_a_node_heals() {
    let sim = cluster(3).await;
    sim.apply_fault("node-1", NodeFault::Partition)
        .expect("fault");
    sim.apply_fault("node-2", NodeFault::Partition)
        .expect("fault");
    advance(&sim, 50);
    // The only healthy node is mostly taken.
    create(&sim, sized("filler", json!({"cpu": "3"}))).await;
    sim.settle().expect("stepped");
    assert_eq!(
        node_of(&get(&sim, "filler").await).as_deref(),
        Some("node-0")
    );
    create(&sim, sized("waiting", json!({"cpu": "1"}))).await;
    sim.settle().expect("stepped");
    assert_eq!(
        unschedulable_message(&sim, "waiting").await,
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    );
    advance(&sim, 30);
    assert_eq!(node_of(&get(&sim, "waiting").await), None);
    sim.apply_fault("node-2", NodeFault::Heal).expect("heal");
    advance(&sim, 11);
    assert_eq!(
        node_of(&get(&sim, "waiting").await).as_deref(),
        Some("node-2"),
        "scheduled on the healed node within the back-off"
    );
}

#[tokio::test]
async fn a_pending_pod_is_scheduled_when_a_node_is_added() {
    let sim = cluster(1).await;
    create(&sim, sized("first", json!({"cpu": "3"}))).await;
    create(&sim, sized("second", json!({"cpu": "3"}))).await;
    sim.settle().expect("stepped");
    let bound: Vec<Option<String>> = vec![
        node_of(&get(&sim, "first").await),
        node_of(&get(&sim, "second").await),
    ];
    assert_eq!(bound.iter().filter(|n| n.is_some()).count(), 1, "{bound:?}");
    sim.cluster().add_node("node-9").expect("add node");
    advance(&sim, 11);
    for name in ["first", "second"] {
        assert!(node_of(&get(&sim, name).await).is_some(), "{name} bound");
    }
}

/// Placement of `count` pods created one by one on a fresh cluster.
async fn placements(seed: u64, count: usize, requests: Value) -> Vec<String> {
    let sim = cluster_with(SimConfig {
        nodes: 3,
        seed,
        ..stepped()
    })
    .await;
    let mut out = Vec::new();
    for i in 0..count {
        let name = format!("p-{i}");
        create(&sim, sized(&name, requests.clone())).await;
        sim.settle().expect("stepped");
        out.push(node_of(&get(&sim, &name).await).expect("bound"));
    }
    out
}

#[tokio::test]
async fn least_allocated_spreads_and_the_seed_decides_ties() {
    let spread = placements(7, 6, json!({"cpu": "500m", "memory": "1Gi"})).await;
    for node in ["node-0", "node-1", "node-2"] {
        assert_eq!(
            spread.iter().filter(|n| *n == node).count(),
            2,
            "least-allocated spreads evenly: {spread:?}"
        );
    }
    let a = placements(11, 6, json!({})).await;
    let b = placements(11, 6, json!({})).await;
    assert_eq!(a, b, "same seed, same placements");
}

#[tokio::test]
async fn a_cordoned_node_is_tainted_and_skipped() {
    let sim = cluster(2).await;
    let api: Api<Node> = Api::all(sim.client().expect("client"));
    for n in ["node-0", "node-1"] {
        api.patch(
            n,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    }
    sim.settle().expect("stepped");
    let n = api.get("node-0").await.expect("node");
    let taints: Vec<(String, String)> = n
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect();
    assert_eq!(
        taints,
        vec![(
            "node.kubernetes.io/unschedulable".into(),
            "NoSchedule".into()
        )]
    );
    create(&sim, sized("waits", json!({"cpu": "100m"}))).await;
    sim.settle().expect("stepped");
    assert_eq!(
        unschedulable_message(&sim, "waits").await,
        "0/2 nodes are available: 2 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    api.patch(
        "node-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"unschedulable": null}})),
    )
    .await
    .expect("uncordon");
    advance(&sim, 2);
    assert_eq!(
        node_of(&get(&sim, "waits").await).as_deref(),
        Some("node-1")
    );
}
