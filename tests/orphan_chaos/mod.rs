//! A seeded chaos run of orphan recreation, shared by `tests/orphans.rs` (a handful of
//! seeds) and `benches/orphans.rs` (hundreds): two replicas electing a leader on short
//! lease timings, killed (no lease release) and restarted at random moments, watches
//! closed, 410 Gone and server errors injected, while five nodes fail in a random order.
//!
//! Ground truth by construction: the originals are bound to five cordoned nodes (so that
//! no replacement lands on a failing node), each node gets one fault: four with fencing
//! evidence (node deleted; partition then out-of-service; a pressure eviction; graceful
//! shutdown), one without (a partition). Every original on a fenced node must end with
//! exactly one replacement, running on a healthy node; none on the partitioned node may
//! get one.
#![allow(dead_code)]

pub mod latency;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use podwarden::controller::guard::FINALIZER;
use podwarden::controller::leader::{LeaseConfig, LeaseTimings};
use podwarden::controller::metrics::Metrics;
use podwarden::controller::{self, Handle, Options};
use podwarden_model::orphans::ORIGINAL_UID_ANNOTATION;
use podwarden_model::policy::{PodLifecyclePolicy, PodLifecyclePolicySpec};
use podwarden_sandbox::api::FaultConfig;
use podwarden_sandbox::sim::{NodeFault, SimConfig, SimHandle, Simulation};
use serde_json::json;

/// Wall-clock bound on each wait (a failure bound, not a timing goal).
pub const PATIENCE: Duration = Duration::from_secs(60);
const DOOMED: [&str; 5] = ["node-0", "node-1", "node-2", "node-3", "node-4"];
const PODS_PER_NODE: usize = 2;

/// The lease timings of the run: failover within a few seconds.
pub const TIMINGS: LeaseTimings = LeaseTimings {
    lease_duration: Duration::from_secs(2),
    renew_deadline: Duration::from_millis(1500),
    retry_period: Duration::from_millis(250),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    NodeDeleted,
    OutOfService,
    Evicted(NodeFault),
    Shutdown,
    /// No evidence: must never be recreated.
    Partitioned,
}

impl Fate {
    fn fenced(self) -> bool {
        self != Fate::Partitioned
    }
}

/// What one run saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seed: u64,
    pub fenced_losses: usize,
    pub recreated: usize,
    /// Pods of a lineage beyond one (a duplicate replacement): must be 0.
    pub duplicates: usize,
    /// Fenced losses without a running replacement at the end: must be 0.
    pub missed: usize,
    /// Replacements of pods that had no evidence: must be 0.
    pub unfenced_recreated: usize,
    pub replica_kills: usize,
    pub api_faults: u64,
    /// Wall time from the chaos stopping to every fenced loss replaced and running.
    pub converge: Duration,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.duplicates == 0
            && self.missed == 0
            && self.unfenced_recreated == 0
            && self.problems.is_empty()
    }
}

/// splitmix64: the run's choices, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

struct Replicas {
    client: Client,
    live: Vec<Option<Handle>>,
    /// Metrics of every instance ever started.
    metrics: Vec<Arc<Metrics>>,
    started: usize,
}

impl Replicas {
    async fn start(&mut self, slot: usize) {
        self.started += 1;
        let options = Options {
            create_qps: 50.0,
            guard_qps: 100.0,
            event_qps: 50.0,
            leader_election: Some(LeaseConfig {
                namespace: "default".into(),
                name: "podwarden".into(),
                identity: format!("replica-{slot}-{}", self.started),
                timings: TIMINGS,
            }),
            ..Options::default()
        };
        // Injected API errors may fail a start, as they may a pod's: try again.
        let mut tries = 0;
        let handle = loop {
            match controller::start(self.client.clone(), options.clone()).await {
                Ok(h) => break h,
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(error = %e, "start failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the controller does not start: {e}"),
            }
        };
        self.metrics.push(handle.metrics.clone());
        self.live[slot] = Some(handle);
    }

    /// Kills a replica as a crash does: no lease release, no goodbye.
    fn kill(&mut self, slot: usize) -> bool {
        self.live[slot].take().is_some()
    }
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("gave up waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn list_pods(client: &Client) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    loop {
        match api.list(&ListParams::default()).await {
            Ok(l) => return l.items,
            // Injected errors: the test's own reads retry.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn lineage_of(p: &Pod) -> Option<String> {
    p.metadata
        .annotations
        .as_ref()?
        .get(ORIGINAL_UID_ANNOTATION)
        .cloned()
}

fn advance(sim: &SimHandle, secs: u64) {
    sim.advance(Duration::from_secs(secs))
        .expect("stepped clock");
}

/// Runs one seeded chaos scenario.
pub async fn run(seed: u64) -> Report {
    let mut rng = Rng(seed);
    let mut report = Report {
        seed,
        ..Report::default()
    };
    let (sim, client) = cluster(DOOMED.len() + 2, seed, None, &DOOMED).await;
    let mut replicas = Replicas {
        client: client.clone(),
        live: vec![None, None],
        metrics: Vec::new(),
        started: 0,
    };
    replicas.start(0).await;
    replicas.start(1).await;

    // The originals, bound to the doomed nodes.
    let mut originals: BTreeMap<String, (String, String)> = BTreeMap::new(); // name -> (uid, node)
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for node in DOOMED {
        for i in 0..PODS_PER_NODE {
            let name = format!("{node}-p{i}");
            let policy = if rng.chance(0.5) {
                "Always"
            } else {
                "OnFailure"
            };
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"app": "guarded"},
                    "annotations": {"sandbox.podwarden.dev/script.app": "forever"}},
                "spec": {"nodeName": node, "restartPolicy": policy,
                    "containers": [{"name": "app", "image": "registry.example/app:1"}]}
            }))
            .expect("pod");
            let made = pods
                .create(&PostParams::default(), &pod)
                .await
                .expect("create pod");
            originals.insert(name, (made.metadata.uid.unwrap_or_default(), node.into()));
        }
    }
    advance(&sim, 5);
    if let Err(e) = wait_for("every original guarded", async || {
        list_pods(&client)
            .await
            .iter()
            .filter(|p| {
                p.metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
            })
            .count()
            .eq(&originals.len())
            .then_some(())
    })
    .await
    {
        report.problems.push(e);
    }

    // One fate per doomed node, in a random order.
    let evict = if rng.chance(0.5) {
        NodeFault::MemoryPressure
    } else {
        NodeFault::DiskFailure
    };
    let mut fates = [
        Fate::NodeDeleted,
        Fate::OutOfService,
        Fate::Evicted(evict),
        Fate::Shutdown,
        Fate::Partitioned,
    ];
    for i in (1..fates.len()).rev() {
        fates.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let fate_of: BTreeMap<&str, Fate> = DOOMED.iter().copied().zip(fates.iter().copied()).collect();
    let mut order: Vec<&str> = DOOMED.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }

    let faults = sim.sandbox().faults();
    let mut partitioned_oos: Vec<&str> = Vec::new();
    for node in &order {
        chaos_step(&mut rng, &sim, &mut replicas, &mut report).await;
        match fate_of[node] {
            Fate::NodeDeleted => sim.apply_fault(node, NodeFault::Delete),
            Fate::OutOfService => {
                partitioned_oos.push(node);
                sim.apply_fault(node, NodeFault::Partition)
            }
            Fate::Evicted(f) => sim.apply_fault(node, f),
            Fate::Shutdown => sim.apply_fault(node, NodeFault::Shutdown),
            Fate::Partitioned => sim.apply_fault(node, NodeFault::Partition),
        }
        .expect("fault");
        for _ in 0..(1 + rng.below(6)) {
            advance(&sim, 1 + rng.below(10));
            tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
        }
        chaos_step(&mut rng, &sim, &mut replicas, &mut report).await;
    }
    // The partitioned-then-out-of-service node, once it is NotReady (40 s grace).
    advance(&sim, 45);
    for node in partitioned_oos {
        sim.apply_fault(node, NodeFault::OutOfService)
            .expect("out of service");
        chaos_step(&mut rng, &sim, &mut replicas, &mut report).await;
    }
    // PodGC's quarantine and passes; the chaos goes on meanwhile.
    for _ in 0..6 {
        advance(&sim, 20);
        chaos_step(&mut rng, &sim, &mut replicas, &mut report).await;
    }

    // Calm: no more faults, both replicas up, time moves on until every loss is replaced.
    report.api_faults = {
        let c = faults.counts();
        c.watches_closed + c.gone_sent + c.internal_errors + c.unavailable + c.throttled
    };
    faults.clear();
    for slot in 0..2 {
        if replicas.live[slot].is_none() {
            replicas.start(slot).await;
        }
    }
    let fenced: Vec<(&String, &(String, String))> = originals
        .iter()
        .filter(|(_, (_, node))| fate_of[node.as_str()].fenced())
        .collect();
    report.fenced_losses = fenced.len();
    let calm = Instant::now();
    let settled = wait_for("every fenced loss replaced and running", async || {
        advance(&sim, 2);
        let all = list_pods(&client).await;
        let running = fenced.iter().all(|(_, (uid, _))| {
            all.iter().any(|p| {
                lineage_of(p).as_deref() == Some(uid.as_str())
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
        });
        running.then_some(())
    })
    .await;
    if let Err(e) = settled {
        report.problems.push(e);
    }
    report.converge = calm.elapsed();
    // One more stretch: nothing new may appear.
    advance(&sim, 60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all_after = list_pods(&client).await;
    for (name, (uid, node)) in &originals {
        let lineage: Vec<&Pod> = all_after
            .iter()
            .filter(|p| lineage_of(p).as_deref() == Some(uid.as_str()))
            .collect();
        if fate_of[node.as_str()].fenced() {
            report.recreated += lineage.len().min(1);
            report.duplicates += lineage.len().saturating_sub(1);
            let running_on_healthy = lineage.iter().any(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_some_and(|n| !DOOMED.contains(&n))
            });
            if !running_on_healthy {
                report.missed += 1;
                let describe = |p: &Pod| {
                    format!(
                        "{} {} on {} finalizers {:?}",
                        p.metadata.name.as_deref().unwrap_or("?"),
                        p.status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .unwrap_or("?"),
                        p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .unwrap_or("no node"),
                        p.metadata.finalizers
                    )
                };
                let seen: Vec<String> = lineage.iter().map(|p| describe(p)).collect();
                let original = all_after
                    .iter()
                    .find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
                    .map(describe)
                    .unwrap_or_else(|| "gone".into());
                report.problems.push(format!(
                    "{name} ({:?}): no running replacement; replacements {seen:?}; the original: {original}",
                    fate_of[node.as_str()]
                ));
            }
        } else {
            report.unfenced_recreated += lineage.len();
        }
    }
    drop(replicas);
    sim.shutdown().await;
    report
}

/// A random disturbance: API faults switched, a watch gap, a replica killed or
/// restarted.
async fn chaos_step(rng: &mut Rng, sim: &SimHandle, replicas: &mut Replicas, report: &mut Report) {
    let faults = sim.sandbox().faults();
    match rng.below(6) {
        0 => faults.set_config(FaultConfig {
            error_fraction: 0.05,
            close_watches_after_events: Some(1 + rng.below(20)),
            ..FaultConfig::default()
        }),
        1 => faults.clear(),
        2 => {
            faults.gone_next_watches(1 + rng.below(2));
            sim.sandbox().close_all_watches();
        }
        _ => {}
    }
    let slot = rng.below(2) as usize;
    if rng.chance(0.4) {
        if replicas.kill(slot) {
            report.replica_kills += 1;
        }
    } else if replicas.live[slot].is_none() && rng.chance(0.7) {
        replicas.start(slot).await;
    }
    tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
}

/// A simulated cluster of `nodes` nodes (stepped clock from now when `speed` is None)
/// with the CRD and the Enforce policy installed and the `cordoned` nodes cordoned.
async fn cluster(
    nodes: usize,
    seed: u64,
    speed: Option<f64>,
    cordoned: &[&str],
) -> (SimHandle, Client) {
    let start = match speed {
        None => Some(
            jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
                .expect("a whole second"),
        ),
        Some(_) => None,
    };
    let sim = Simulation::start(
        podwarden_sandbox::api::SandboxConfig::default(),
        SimConfig {
            nodes,
            seed,
            speed,
            start,
            ..SimConfig::default()
        },
    )
    .await
    .expect("simulation starts");
    let client = sim.client().expect("client");
    install(&client).await;
    let api: Api<Node> = Api::all(client.clone());
    for node in cordoned {
        api.patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    }
    (sim, client)
}

async fn install(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &PodLifecyclePolicy::crd())
        .await
        .expect("create the CRD");
    let policies: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), "default");
    let spec: PodLifecyclePolicySpec = serde_json::from_value(json!({
        "selector": {"matchLabels": {"app": "guarded"}},
        "mode": "Enforce",
    }))
    .expect("policy spec");
    policies
        .create(
            &PostParams::default(),
            &PodLifecyclePolicy::new("guard", spec),
        )
        .await
        .expect("create the policy");
}
