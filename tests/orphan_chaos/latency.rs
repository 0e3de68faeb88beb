//! Time from fencing evidence to replacement, and leader failover, on a cluster running
//! at speed 1 (real time): what `cargo bench --bench orphans` reports besides the chaos.
//!
//! Evidence time is when a poll of the API (every 20 ms) first shows the lost pod's
//! evidence (its terminal phase written by the kubelet or PodGC); replacement time is
//! when it first shows the replacement. Both are read by the same poll loop, so the
//! figure is the controller's delay within the poll's resolution.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use podwarden::controller::leader::{LeaseConfig, LeaseTimings};
use podwarden::controller::{self, Options};
use podwarden_sandbox::sim::NodeFault;
use serde_json::json;

use super::{cluster, lineage_of};

/// Nodes that fail, each hosting `PER_NODE` bare pods; two more stay healthy.
const FAILING: [(&str, NodeFault); 4] = [
    ("node-0", NodeFault::MemoryPressure),
    ("node-1", NodeFault::Shutdown),
    ("node-2", NodeFault::DiskFailure),
    ("node-3", NodeFault::Delete),
];
const PER_NODE: usize = 10;

#[derive(Debug, Default)]
pub struct Figures {
    /// Evidence seen to replacement seen, one per lost pod.
    pub recreate: Vec<Duration>,
    /// Leader killed (no lease release) to the standby leading, default timings.
    pub failover: Vec<Duration>,
    pub missing: usize,
}

fn evidence(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
}

/// Losses on four nodes at speed 1, with the default rates (`--create-qps 5`).
pub async fn recreate_latency() -> Figures {
    let failing: Vec<&str> = FAILING.iter().map(|(n, _)| *n).collect();
    let (sim, client) = cluster(FAILING.len() + 2, 7, Some(1.0), &failing).await;
    let ctrl = controller::start(client.clone(), Options::default())
        .await
        .expect("controller starts");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut originals: BTreeMap<String, String> = BTreeMap::new(); // uid -> name
    for (node, _) in FAILING {
        for i in 0..PER_NODE {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("{node}-p{i}"), "labels": {"app": "guarded"},
                    "annotations": {"sandbox.podwarden.dev/script.app": "forever"}},
                "spec": {"nodeName": node, "restartPolicy": "Always",
                    "containers": [{"name": "app", "image": "registry.example/app:1"}]}
            }))
            .expect("pod");
            let made = pods
                .create(&PostParams::default(), &pod)
                .await
                .expect("create");
            originals.insert(
                made.metadata.uid.unwrap_or_default(),
                format!("{node}-p{i}"),
            );
        }
    }
    // Running and guarded.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (node, fault) in FAILING {
        sim.apply_fault(node, fault).expect("fault");
    }
    let mut seen_evidence: BTreeMap<String, Instant> = BTreeMap::new();
    let mut figures = Figures::default();
    let mut replaced: BTreeMap<String, Instant> = BTreeMap::new();
    // PodGC's 40 s quarantine and 20 s period bound the deleted node's losses.
    let deadline = Instant::now() + Duration::from_secs(150);
    while replaced.len() < originals.len() && Instant::now() < deadline {
        let now = Instant::now();
        let Ok(list) = pods.list(&ListParams::default()).await else {
            continue;
        };
        for p in &list.items {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if originals.contains_key(&uid) && evidence(p) {
                seen_evidence.entry(uid).or_insert(now);
            }
            if let Some(lineage) = lineage_of(p) {
                replaced.entry(lineage).or_insert(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (uid, at) in &replaced {
        // A loss whose evidence and replacement came between two polls counts as 0.
        let from = seen_evidence.get(uid).copied().unwrap_or(*at);
        figures.recreate.push(at.saturating_duration_since(from));
    }
    figures.missing = originals.len() - replaced.len();
    drop(ctrl);
    sim.shutdown().await;
    figures
}

/// Two replicas with controller-runtime's timings; the leader is killed (no release)
/// `runs` times, and the time until the other leads is measured.
pub async fn failover(runs: usize) -> Vec<Duration> {
    let (sim, client) = cluster(1, 7, Some(1.0), &[]).await;
    let replica = |n: usize| {
        let client = client.clone();
        async move {
            controller::start(
                client,
                Options {
                    leader_election: Some(LeaseConfig {
                        namespace: "default".into(),
                        name: "podwarden".into(),
                        identity: format!("replica-{n}"),
                        timings: LeaseTimings::default(),
                    }),
                    ..Options::default()
                },
            )
            .await
            .expect("controller starts")
        }
    };
    let mut out = Vec::new();
    let mut leader = replica(0).await;
    while !leader.leadership.is_leader() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in 1..=runs {
        let standby = replica(n).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let killed = Instant::now();
        drop(leader);
        while !standby.leadership.is_leader() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out.push(killed.elapsed());
        leader = standby;
    }
    drop(leader);
    sim.shutdown().await;
    out
}
