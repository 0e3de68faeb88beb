//! Orphan recreation by the live controller, against the sandbox over HTTP: each kind of
//! fencing evidence recreates a lost bare pod exactly once, on a live node; a pod without
//! evidence, or not the controller's to recreate, never is.

#[path = "../crates/sandbox/tests/sim_common/mod.rs"]
mod sim_common;

mod controller_common;

mod orphan_chaos;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use podwarden::controller::{Handle, Options};
use podwarden_model::orphans::{ORIGINAL_UID_ANNOTATION, REPLACEMENT_ANNOTATION};
use podwarden_model::policy::PodLifecyclePolicy;
use podwarden_sandbox::sim::{NodeFault, SimHandle};
use serde_json::{Value, json};

use controller_common::*;
use sim_common::*;

const POLICY: &str = "guard";

/// The CRD and a policy selecting `app=guarded` in `default`, with `orphans` settings.
async fn install(client: &Client, mode: &str, orphans: Value) {
    let spec = json!({
        "selector": {"matchLabels": {"app": "guarded"}},
        "mode": mode,
        "orphans": orphans,
    });
    install_policy(client, POLICY, spec).await;
}

async fn start(client: &Client) -> Handle {
    start_with(
        client,
        Options {
            create_qps: 50.0,
            ..Options::default()
        },
    )
    .await
}

/// A bare pod labelled for the policy, running `script` in one container; bound to
/// `node` when given (else the scheduler places it).
fn guarded(name: &str, restart_policy: &str, script: &str, node: Option<&str>) -> Value {
    let mut p = pod(name, restart_policy, &[], &[c("app", script)]);
    p["metadata"]["labels"] = json!({"app": "guarded"});
    if let Some(node) = node {
        p["spec"]["nodeName"] = json!(node);
    }
    p
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().expect("uid")
}

fn node_name(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// The pods whose `podwarden.dev/original-uid` is `lineage`.
async fn replacements(client: &Client, lineage: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ORIGINAL_UID_ANNOTATION))
                .is_some_and(|u| u == lineage)
        })
        .collect()
}

/// Waits for the replacement of `original` and checks it is the only one.
async fn the_replacement(client: &Client, original: &Pod) -> Pod {
    let lineage = uid(original);
    let mut made = until("the replacement", async || {
        let r = replacements(client, &lineage).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(made.len(), 1, "one replacement");
    made.remove(0)
}

async fn node_ready(client: &Client, name: &str) -> bool {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let Ok(node) = nodes.get(name).await else {
        return false;
    };
    node.status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn recreated_count(client: &Client) -> i64 {
    let api: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), "default");
    api.get(POLICY)
        .await
        .expect("get policy")
        .status
        .map_or(0, |s| s.recreated)
}

fn reasons(events: &[k8s_openapi::api::events::v1::Event]) -> Vec<String> {
    events.iter().filter_map(|e| e.reason.clone()).collect()
}

fn skipped(handle: &Handle, reason: &str) -> u64 {
    let labels = podwarden::controller::metrics::ReasonLabels {
        reason: reason.into(),
    };
    handle.metrics.orphans_skipped.get_or_create(&labels).get()
}

/// One fencing case: what is done to the node that runs the pod, and the name its
/// replacement gets. PodGC writes phase Failed before its delete, so the loss is decided
/// while the lost object is still there: the name is derived in every case (the
/// original's name is taken only when a loss is first seen as a deletion).
struct Case {
    name: &'static str,
    /// The components that write the evidence, in order.
    writers: &'static str,
    faults: &'static [(NodeFault, u64)],
    replacement: &'static str,
    /// The lost object is still there (a terminal pod), marked with its replacement.
    original_stays: bool,
}

const CASES: [Case; 5] = [
    Case {
        name: "node deleted",
        writers: "cloud node lifecycle controller (deletes the Node), PodGC (Failed + DeletionByPodGC, grace-0 delete)",
        faults: &[(NodeFault::Delete, 90)],
        replacement: "web-r1",
        original_stays: false,
    },
    Case {
        name: "node out of service",
        writers: "node lifecycle controller (NotReady, unreachable taint), person (out-of-service taint), taint manager (DeletionByTaintManager), PodGC (force delete)",
        faults: &[(NodeFault::Partition, 60), (NodeFault::OutOfService, 60)],
        replacement: "web-r1",
        original_stays: false,
    },
    Case {
        name: "evicted for memory pressure",
        writers: "kubelet eviction manager (Failed, Evicted, TerminationByKubelet)",
        faults: &[(NodeFault::MemoryPressure, 5)],
        replacement: "web-r1",
        original_stays: true,
    },
    Case {
        name: "disk failure (disk-pressure eviction)",
        writers: "kubelet eviction manager (Failed, Evicted, TerminationByKubelet)",
        faults: &[(NodeFault::DiskFailure, 5)],
        replacement: "web-r1",
        original_stays: true,
    },
    Case {
        name: "graceful node shutdown",
        writers: "kubelet node shutdown manager (Failed, Terminated, TerminationByKubelet)",
        faults: &[(NodeFault::Shutdown, 5)],
        replacement: "web-r1",
        original_stays: true,
    },
];

/// Three nodes, an Enforce policy, the controller, and one guarded pod `web` running
/// (on `node` when given), 5 s in; returns the pod as created and the node it runs on.
struct Enforcing {
    sim: SimHandle,
    client: Client,
    ctrl: Handle,
    original: Pod,
    node: String,
}

async fn enforcing_with_web(node: Option<&str>) -> Enforcing {
    let sim = sandbox_with(3).await;
    let client = sim.client().expect("client");
    install(&client, "Enforce", json!({})).await;
    let ctrl = start(&client).await;
    let original = create(&sim, guarded("web", "Always", "forever", node)).await;
    advance(&sim, 5);
    let node = node_name(&get(&sim, "web").await).expect("scheduled");
    Enforcing {
        sim,
        client,
        ctrl,
        original,
        node,
    }
}

async fn recreates_once(case: &Case) {
    let Enforcing {
        sim,
        client,
        ctrl,
        original,
        node: lost_on,
    } = enforcing_with_web(None).await;
    let lineage = uid(&original);
    for (fault, secs) in case.faults {
        sim.apply_fault(&lost_on, *fault).expect("fault");
        advance(&sim, *secs);
    }
    let made = until(&format!("{}: the replacement", case.name), async || {
        let r = replacements(&client, &lineage).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(made.len(), 1, "{}", case.name);
    assert_eq!(made[0].metadata.name.as_deref(), Some(case.replacement));
    // The scheduler places it on a live node, where it runs.
    advance(&sim, 10);
    let replacement = get(&sim, case.replacement).await;
    assert_eq!(phase(&replacement), "Running", "{}", case.name);
    let placed = node_name(&replacement).expect("bound");
    assert_ne!(placed, lost_on, "{}", case.name);
    assert!(
        node_ready(&client, &placed).await,
        "{}: on {placed}",
        case.name
    );

    let events = until(
        &format!("{}: the OrphanRecreated Event", case.name),
        async || {
            let e = podwarden_events(&client, "default", case.replacement).await;
            e.iter()
                .any(|e| e.reason.as_deref() == Some("OrphanRecreated"))
                .then_some(e)
        },
    )
    .await;
    let note = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("OrphanRecreated"))
        .and_then(|e| e.note.clone())
        .unwrap_or_default();
    assert!(note.contains(&lineage), "{}: {note}", case.name);
    until("RECREATED 1 in the policy status", async || {
        (recreated_count(&client).await == 1).then_some(())
    })
    .await;
    if case.original_stays {
        let marked = try_get(&sim, "web").await.expect("the lost pod stays");
        let mark = marked
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REPLACEMENT_ANNOTATION).cloned());
        assert_eq!(mark.as_deref(), Some(case.replacement), "{}", case.name);
        // A person cleans up the lost pod: its deletion is the same loss, not a new one.
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        pods.delete("web", &DeleteParams::default().grace_period(0))
            .await
            .expect("delete the lost pod");
    }
    advance(&sim, 120);
    until("the controller to catch up", async || {
        (ctrl.metrics.cached_pods.get() == 1).then_some(())
    })
    .await;
    let all = replacements(&client, &lineage).await;
    assert_eq!(all.len(), 1, "{}: one replacement, ever", case.name);
    assert_eq!(ctrl.metrics.orphans_recreated.get(), 1, "{}", case.name);
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_fencing_evidence_recreates_the_pod_once_on_a_live_node() {
    for case in &CASES {
        assert!(!case.writers.is_empty());
        recreates_once(case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_evidence_or_when_not_ours_a_lost_pod_is_never_recreated() {
    let sim = sandbox_with(4).await;
    let client = sim.client().expect("client");
    install(&client, "Enforce", json!({})).await;
    let ctrl = start(&client).await;
    // node-0: deleted by a person. node-1: partitioned. node-2: deleted, taking a pod
    // that completed, one a controller owns and one with restartPolicy Never.
    create(
        &sim,
        guarded("deleted", "Always", "forever", Some("node-0")),
    )
    .await;
    create(
        &sim,
        guarded("partitioned", "Always", "forever", Some("node-1")),
    )
    .await;
    create(
        &sim,
        guarded("completed", "OnFailure", "run=1s exit=0", Some("node-2")),
    )
    .await;
    let mut owned = guarded("owned", "Always", "forever", Some("node-2"));
    owned["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
        "uid": "0d1f7a52-1111-4c59-9a3e-000000000001", "controller": true,
    }]);
    create(&sim, owned).await;
    create(&sim, guarded("never", "Never", "forever", Some("node-2"))).await;
    advance(&sim, 10);
    assert_eq!(phase(&get(&sim, "completed").await), "Succeeded");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("deleted", &DeleteParams::default())
        .await
        .expect("a person deletes the pod");
    sim.apply_fault("node-1", NodeFault::Partition)
        .expect("partition");
    sim.apply_fault("node-2", NodeFault::Delete)
        .expect("delete node");
    advance(&sim, 120);
    // Their guard finalizers (if the controller had added them yet) are released: the
    // deletions complete.
    for name in ["deleted", "never", "owned", "completed"] {
        until(&format!("{name} removed"), async || {
            try_get(&sim, name).await.is_none().then_some(())
        })
        .await;
    }
    until("the controller's decisions", async || {
        (skipped(&ctrl, "NoEvidence") == 1
            && skipped(&ctrl, "RestartPolicyNever") == 1
            && skipped(&ctrl, "Succeeded") == 1)
            .then_some(())
    })
    .await;
    // Past the unreachable taint's 300 s: the taint manager deletes the partitioned pod,
    // which stays Terminating (its kubelet cannot confirm): still no evidence.
    advance(&sim, 300);
    let partitioned = get(&sim, "partitioned").await;
    assert!(partitioned.metadata.deletion_timestamp.is_some());
    until("the partitioned pod's deletion seen", async || {
        (ctrl.metrics.cached_pods.get() == 1).then_some(())
    })
    .await;

    let listed = pods.list(&ListParams::default()).await.expect("list");
    let names: Vec<String> = listed
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["partitioned"], "nothing was recreated");
    assert_eq!(ctrl.metrics.orphans_recreated.get(), 0);
    assert_eq!(recreated_count(&client).await, 0);
    // A person's delete is no news; a Never pod that would have been recreated is.
    assert!(
        !reasons(&podwarden_events(&client, "default", "deleted").await)
            .contains(&"OrphanRecreationSkipped".to_string())
    );
    let never = until("the Never pod's Event", async || {
        let e = podwarden_events(&client, "default", "never").await;
        e.iter()
            .find(|e| e.reason.as_deref() == Some("OrphanRecreationSkipped"))
            .cloned()
    })
    .await;
    assert!(
        never
            .note
            .as_deref()
            .is_some_and(|n| n.contains("RestartPolicyNever")),
        "{never:?}"
    );
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_mode_policy_reports_what_it_would_recreate_and_writes_no_pod() {
    let sim = sandbox_with(2).await;
    let client = sim.client().expect("client");
    install(&client, "Audit", json!({})).await;
    let ctrl = start(&client).await;
    create(&sim, guarded("web", "Always", "forever", Some("node-0"))).await;
    advance(&sim, 5);
    sim.apply_fault("node-0", NodeFault::Delete)
        .expect("delete node");
    advance(&sim, 90);
    let event = until("the dry run's Event", async || {
        let e = podwarden_events(&client, "default", "web").await;
        e.into_iter()
            .find(|e| e.reason.as_deref() == Some("OrphanWouldBeRecreated"))
    })
    .await;
    assert!(
        event.note.as_deref().is_some_and(|n| n.contains("PodGC")),
        "{event:?}"
    );
    assert_eq!(ctrl.metrics.orphans_dry_run.get(), 1);
    assert_eq!(
        ctrl.metrics.guard_writes.get(),
        0,
        "a dry run guards no pod"
    );
    advance(&sim, 30);
    assert!(try_get(&sim, "web").await.is_none(), "no pod was written");
    assert_eq!(ctrl.metrics.orphans_recreated.get(), 0);
    ctrl.shutdown().await;
    sim.shutdown().await;
}

fn has_guard(p: &Pod) -> bool {
    p.metadata.finalizers.as_ref().is_some_and(|f| {
        f.iter()
            .any(|f| f == podwarden::controller::guard::FINALIZER)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_while_no_controller_runs_waits_on_its_guard_and_is_recreated_once() {
    let Enforcing {
        sim,
        client,
        ctrl,
        original,
        node: lost_on,
    } = enforcing_with_web(None).await;
    until("the guard finalizer", async || {
        has_guard(&get(&sim, "web").await).then_some(())
    })
    .await;
    ctrl.shutdown().await;

    // PodGC fails the pod and deletes it with grace 0 while nothing watches: the
    // finalizer keeps the object, with its last state.
    sim.apply_fault(&lost_on, NodeFault::Delete)
        .expect("delete node");
    advance(&sim, 90);
    let held = get(&sim, "web").await;
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(phase(&held), "Failed");

    let ctrl = start(&client).await;
    let lineage = uid(&original);
    the_replacement(&client, &original).await;
    until("the lost pod's deletion to complete", async || {
        try_get(&sim, "web").await.is_none().then_some(())
    })
    .await;
    advance(&sim, 10);
    let replacement = get(&sim, "web-r1").await;
    assert_eq!(phase(&replacement), "Running");
    // Restarted again: the replacement is met as a live pod; nothing more is made.
    ctrl.shutdown().await;
    let ctrl = start(&client).await;
    advance(&sim, 30);
    until("the restarted controller's list", async || {
        (ctrl.metrics.cached_pods.get() == 1).then_some(())
    })
    .await;
    assert_eq!(replacements(&client, &lineage).await.len(), 1);
    until("the replacement's own guard", async || {
        has_guard(&get(&sim, "web-r1").await).then_some(())
    })
    .await;
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_no_loss_is_recreated_twice_or_missed() {
    for seed in [1, 2, 3] {
        let report = orphan_chaos::run(seed).await;
        assert!(report.ok(), "{report:#?}");
        assert_eq!(report.recreated, report.fenced_losses, "{report:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taint_manager_deletion_keeps_the_guard_while_the_node_still_looks_ready() {
    let Enforcing {
        sim,
        client,
        ctrl,
        original,
        ..
    } = enforcing_with_web(Some("node-0")).await;
    until("the guard finalizer", async || {
        has_guard(&get(&sim, "web").await).then_some(())
    })
    .await;
    // The machine is shut down and tainted out-of-service at once: its Node still says
    // Ready (the 40 s grace period), and the taint manager deletes the pod.
    let seen = ctrl.metrics.pod_watch_events.get();
    sim.apply_fault("node-0", NodeFault::Partition)
        .expect("partition");
    sim.apply_fault("node-0", NodeFault::OutOfService)
        .expect("out of service");
    advance(&sim, 1);
    let deleting = get(&sim, "web").await;
    assert!(deleting.metadata.deletion_timestamp.is_some());
    until("the deletion seen", async || {
        (ctrl.metrics.pod_watch_events.get() > seen).then_some(())
    })
    .await;
    ctrl.shutdown().await;
    assert!(has_guard(&get(&sim, "web").await), "the guard stays");

    // NotReady, then PodGC force-deletes it while no controller runs.
    advance(&sim, 90);
    let ctrl = start(&client).await;
    the_replacement(&client, &original).await;
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_guards_removes_only_the_guard_and_only_in_its_namespaces() {
    use podwarden::controller::guard::FINALIZER;
    use podwarden::controller::release::release;
    use podwarden::controller::scope::Scope;

    let sim = sandbox().await;
    let client = sim.client().expect("client");
    for (name, finalizers) in [
        ("guarded", json!([FINALIZER])),
        ("guarded-and-kept", json!(["example.com/keep", FINALIZER])),
        ("unguarded", json!(["example.com/keep"])),
    ] {
        create_pod(
            &client,
            json!({
                "metadata": {"name": name, "namespace": "default", "finalizers": finalizers},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            }),
        )
        .await;
    }
    let finalizers = async |name: &str| {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        pods.get(name)
            .await
            .expect("pod")
            .metadata
            .finalizers
            .unwrap_or_default()
    };

    // Limited to another namespace: nothing here is touched.
    let elsewhere = Scope::new(["other"]).expect("scope");
    let r = release(&client, &elsewhere, 100.0).await.expect("release");
    assert_eq!((r.released, r.gone, r.failed.len()), (0, 0, 0));
    assert_eq!(finalizers("guarded").await, vec![FINALIZER]);

    let r = release(&client, &Scope::Cluster, 100.0)
        .await
        .expect("release");
    assert_eq!((r.released, r.gone, r.failed.len()), (2, 0, 0), "{r:?}");
    assert!(finalizers("guarded").await.is_empty());
    assert_eq!(
        finalizers("guarded-and-kept").await,
        vec!["example.com/keep"]
    );
    assert_eq!(finalizers("unguarded").await, vec!["example.com/keep"]);
    // Nothing left to do the second time.
    let r = release(&client, &Scope::Cluster, 100.0)
        .await
        .expect("release");
    assert_eq!(r.released, 0);
    sim.shutdown().await;
}
