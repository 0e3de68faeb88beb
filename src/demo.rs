//! `podwarden demo`: the sandbox (API server and simulated nodes) in this process, the
//! controller against it over HTTP exactly as against a real cluster, a policy, and a
//! built-in scenario: every row of the restartPolicy table, an OOM kill, a disk
//! failure, a partition that heals, a deleted node, and one faulty-kubelet write for
//! every rule the simulator can break. It ends with a scorecard and exits 0 only when
//! every injection was found and no violation appeared that was not injected.
//!
//! The cluster runs on a stepped clock the demo moves one simulated second at a time,
//! giving the controller a moment between steps, so a few simulated minutes take
//! seconds.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, CustomResourceExt};
use podwarden_model::policy::{PodLifecyclePolicy, PodLifecyclePolicySpec};
use podwarden_model::{RuleId, Severity};
use podwarden_sandbox::api::SandboxConfig;
use podwarden_sandbox::sim::{
    GroundTruthEntry, NodeFault, SimConfig, SimHandle, Simulation, VIOLATION_RULES,
};
use serde_json::{Value, json};

use crate::controller::{self, Options, events};

pub const NAMESPACE: &str = "demo";
const POLICY: &str = "demo";
/// Wall-clock pause after each simulated second, for the controller to keep up.
const STEP_PAUSE: Duration = Duration::from_millis(15);
/// How long the end of the demo waits for the last Events (wall clock).
const SETTLE: Duration = Duration::from_secs(30);

/// Runs the controller against an embedded simulated cluster and scores it.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Seed of every random choice of the simulated cluster.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave the sandbox running at the end and print how to reach it with kubectl.
    #[arg(long)]
    pub keep: bool,
    /// Where `--keep` writes the kubeconfig.
    #[arg(long, default_value = "demo.kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Event writes per second, as `podwarden run --event-qps`.
    #[arg(long, default_value_t = 10.0)]
    pub event_qps: f64,
}

pub fn run(args: &DemoArgs) -> ExitCode {
    controller::cli::init_logs_quiet();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podwarden demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("podwarden demo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the sandbox did not start: {0}")]
    Sandbox(String),
    #[error("the sandbox refused {what}: {source}")]
    Api {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the controller did not start: {0}")]
    Controller(#[from] controller::StartError),
    #[error("the simulation refused a step: {0}")]
    Sim(#[from] podwarden_sandbox::sim::SimError),
}

/// The scenario's outcome.
#[derive(Debug, Default)]
pub struct Scorecard {
    /// Per rule: (injected, detected).
    pub injections: BTreeMap<String, (usize, usize)>,
    /// Injections the simulator refused (the pod was not in a state that carries it).
    pub refused: Vec<String>,
    /// Findings that no injection explains, by rule.
    pub unexplained: BTreeMap<RuleId, u64>,
    /// Violations that no injection explains, by rule.
    pub false_violations: BTreeMap<String, u64>,
    pub events_written: u64,
    pub events_suppressed: u64,
    pub elapsed: Duration,
}

impl Scorecard {
    pub fn passed(&self) -> bool {
        self.false_violations.is_empty()
            && self.injections.values().all(|(i, d)| i == d)
            && !self.injections.is_empty()
    }

    pub fn print(&self) {
        println!();
        println!("{:<36} {:>9} {:>9}", "rule", "injected", "detected");
        for (rule, (injected, detected)) in &self.injections {
            let mark = if injected == detected { "" } else { "  MISSED" };
            println!("{rule:<36} {injected:>9} {detected:>9}{mark}");
        }
        for r in &self.refused {
            println!("not injected: {r}");
        }
        let unexplained: Vec<String> = self
            .unexplained
            .iter()
            .map(|(r, n)| format!("{} {} x{n}", r.severity(), r.as_str()))
            .collect();
        println!(
            "findings not injected: {}",
            if unexplained.is_empty() {
                "none".to_string()
            } else {
                unexplained.join(", ")
            }
        );
        for (rule, n) in &self.false_violations {
            println!("VIOLATION NOT INJECTED: {rule} x{n}");
        }
        println!(
            "events written: {}, suppressed: {}; took {:.1} s",
            self.events_written,
            self.events_suppressed,
            self.elapsed.as_secs_f64()
        );
        println!(
            "{}",
            if self.passed() {
                "PASS: every injection found, no violation that was not injected"
            } else {
                "FAIL"
            }
        );
    }
}

async fn demo(args: &DemoArgs) -> Result<bool, DemoError> {
    let started = Instant::now();
    let sim = Simulation::start(
        SandboxConfig::default(),
        SimConfig {
            nodes: 5,
            seed: args.seed,
            speed: None,
            start: None,
            ..SimConfig::default()
        },
    )
    .await
    .map_err(|e| DemoError::Sandbox(e.to_string()))?;
    let client = sim
        .client()
        .map_err(|e| DemoError::Sandbox(e.to_string()))?;
    println!(
        "sandbox: API server at {} with 5 simulated nodes",
        sim.sandbox().url()
    );
    install(&client).await?;
    let mut ctrl = controller::start(
        client.clone(),
        Options {
            event_qps: args.event_qps,
            http_addr: None,
            instance: "podwarden-demo".into(),
        },
    )
    .await?;
    ctrl.ready().await;
    println!("controller: synced; policy {NAMESPACE}/{POLICY} selects every pod in {NAMESPACE}");

    let mut reported = 0;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let table = [
        ("always-exit-0", "Always", "run=2s exit=0"),
        ("always-exit-1", "Always", "run=2s exit=1"),
        ("onfailure-exit-0", "OnFailure", "run=2s exit=0"),
        ("onfailure-exit-1", "OnFailure", "run=2s exit=1"),
        ("never-exit-0", "Never", "run=2s exit=0"),
        ("never-exit-1", "Never", "run=2s exit=1"),
        ("oom", "Always", "run=2s oom"),
    ];
    for (name, policy, script) in table {
        create(&pods, pod(name, policy, script, "node-0")).await?;
    }
    for rule in VIOLATION_RULES {
        let (policy, script) = victim(rule);
        create(
            &pods,
            pod(&format!("inject-{rule}"), policy, script, "node-1"),
        )
        .await?;
    }
    for (node, what) in [
        ("node-2", "disk"),
        ("node-3", "partition"),
        ("node-4", "deleted"),
    ] {
        for i in 0..3 {
            create(
                &pods,
                pod(&format!("{what}-{i}"), "Always", "forever", node),
            )
            .await?;
        }
    }
    println!(
        "[1/4] {} pods: the restartPolicy table, an OOM kill, victims, pods on nodes about to fail",
        table.len() + VIOLATION_RULES.len() + 9
    );
    run_for(&sim, &ctrl, 20, &mut reported).await?;

    sim.apply_fault("node-2", NodeFault::DiskFailure)?;
    sim.apply_fault("node-3", NodeFault::Partition)?;
    sim.apply_fault("node-4", NodeFault::Delete)?;
    println!("[2/4] node-2 disk failure, node-3 partitioned, node-4 deleted");
    run_for(&sim, &ctrl, 60, &mut reported).await?;
    sim.apply_fault("node-3", NodeFault::Heal)?;
    println!("      node-3 partition healed");
    run_for(&sim, &ctrl, 20, &mut reported).await?;

    let mut truth = Vec::new();
    let mut refused = Vec::new();
    for rule in VIOLATION_RULES {
        match sim.inject(NAMESPACE, &format!("inject-{rule}"), rule) {
            Ok(entry) => truth.push(entry),
            Err(e) => refused.push(format!("{rule}: {e}")),
        }
    }
    println!(
        "[3/4] {} faulty-kubelet writes injected ({} refused)",
        truth.len(),
        refused.len()
    );
    run_for(&sim, &ctrl, 20, &mut reported).await?;

    println!("[4/4] waiting for the controller's Events");
    let deadline = Instant::now() + SETTLE;
    let mut detected = detected(&client).await?;
    while !truth.iter().all(|t| detected.contains(&key(t))) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        detected = detected_after(&client, detected).await?;
    }
    let card = score(&ctrl, &truth, refused, &detected, started.elapsed());
    card.print();
    let passed = card.passed();
    if args.keep {
        keep(&sim, args).await;
    }
    ctrl.shutdown().await;
    sim.shutdown().await;
    Ok(passed)
}

/// The restart policy and container script of a pod in the state each injection needs
/// (see the simulator's injection table).
pub fn victim(rule: &str) -> (&'static str, &'static str) {
    match rule {
        "terminal-phase-regression" | "terminal-phase-ready" => ("Never", "run=2s exit=0"),
        "restart-against-policy" => ("Never", "run=2s exit=1"),
        // Crash-looping: restarted by the time the writes come.
        "restart-count-decreased" => ("Always", "run=1s exit=1"),
        _ => ("Always", "forever"),
    }
}

/// A pod of the demo namespace with one container running `script`, pinned to `node`.
pub fn pod(name: &str, restart_policy: &str, script: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": "demo"},
            "annotations": {"sandbox.podwarden.dev/script.app": script},
        },
        "spec": {
            "restartPolicy": restart_policy,
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "app", "image": "registry.example/demo:1"}],
        },
    })
}

async fn create(pods: &Api<Pod>, pod: Value) -> Result<(), DemoError> {
    let pod: Pod = serde_json::from_value(pod).map_err(|e| DemoError::Sandbox(e.to_string()))?;
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|source| DemoError::Api {
            what: "a pod",
            source,
        })?;
    Ok(())
}

/// Installs the CRD, the demo namespace and a policy selecting every pod in it.
pub async fn install(client: &Client) -> Result<(), DemoError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &PodLifecyclePolicy::crd())
        .await
        .map_err(|source| DemoError::Api {
            what: "the CRD",
            source,
        })?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))
        .map_err(|e| DemoError::Sandbox(e.to_string()))?;
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|source| DemoError::Api {
            what: "the namespace",
            source,
        })?;
    let spec: PodLifecyclePolicySpec =
        serde_json::from_value(json!({})).map_err(|e| DemoError::Sandbox(e.to_string()))?;
    let policies: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), NAMESPACE);
    policies
        .create(
            &PostParams::default(),
            &PodLifecyclePolicy::new(POLICY, spec),
        )
        .await
        .map_err(|source| DemoError::Api {
            what: "the policy",
            source,
        })?;
    Ok(())
}

/// Moves the simulation `seconds` simulated seconds, one at a time, printing what the
/// controller found meanwhile.
async fn run_for(
    sim: &SimHandle,
    ctrl: &controller::Handle,
    seconds: u64,
    reported: &mut u64,
) -> Result<(), DemoError> {
    for _ in 0..seconds {
        sim.advance(Duration::from_secs(1))?;
        tokio::time::sleep(STEP_PAUSE).await;
    }
    let found = total_findings(ctrl);
    println!(
        "      +{seconds} s simulated: {} pod events audited, {found} findings so far (+{})",
        ctrl.metrics.pod_watch_events.get(),
        found.saturating_sub(*reported)
    );
    *reported = found;
    Ok(())
}

fn findings(ctrl: &controller::Handle) -> BTreeMap<RuleId, u64> {
    RuleId::ALL
        .iter()
        .map(|r| {
            let n = ctrl
                .metrics
                .findings
                .get(&controller::metrics::FindingLabels {
                    rule: r.as_str().into(),
                    severity: r.severity().as_str().into(),
                })
                .map(|c| c.get())
                .unwrap_or(0);
            (*r, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn total_findings(ctrl: &controller::Handle) -> u64 {
    findings(ctrl).values().sum()
}

fn key(t: &GroundTruthEntry) -> (String, String) {
    let reason = RuleId::ALL
        .iter()
        .find(|r| r.as_str() == t.rule)
        .map(|r| events::reason(*r))
        .unwrap_or_default();
    (t.uid.clone(), reason)
}

/// (pod uid, reason) of the controller's Events in the demo namespace.
async fn detected(client: &Client) -> Result<HashSet<(String, String)>, DemoError> {
    detected_after(client, HashSet::new()).await
}

async fn detected_after(
    client: &Client,
    mut seen: HashSet<(String, String)>,
) -> Result<HashSet<(String, String)>, DemoError> {
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| DemoError::Api {
            what: "listing Events",
            source,
        })?;
    for e in list.items {
        if e.reporting_controller.as_deref() != Some(events::REPORTING_CONTROLLER) {
            continue;
        }
        if let (Some(uid), Some(reason)) = (e.regarding.and_then(|r| r.uid), e.reason) {
            seen.insert((uid, reason));
        }
    }
    Ok(seen)
}

fn score(
    ctrl: &controller::Handle,
    truth: &[GroundTruthEntry],
    refused: Vec<String>,
    detected: &HashSet<(String, String)>,
    elapsed: Duration,
) -> Scorecard {
    let mut card = Scorecard {
        refused,
        elapsed,
        events_written: ctrl.metrics.events_written.get(),
        ..Scorecard::default()
    };
    let mut injected_per_rule: BTreeMap<&str, u64> = BTreeMap::new();
    for t in truth {
        let entry = card.injections.entry(t.rule.clone()).or_default();
        entry.0 += 1;
        if detected.contains(&key(t)) {
            entry.1 += 1;
        }
        *injected_per_rule.entry(t.rule.as_str()).or_default() += 1;
    }
    for (rule, n) in findings(ctrl) {
        let explained = injected_per_rule.get(rule.as_str()).copied().unwrap_or(0);
        let extra = n.saturating_sub(explained);
        if extra == 0 {
            continue;
        }
        card.unexplained.insert(rule, extra);
        if rule.severity() == Severity::Violation {
            card.false_violations.insert(rule.as_str().into(), extra);
        }
    }
    card.events_suppressed = ["spam_filter", "already_recorded"]
        .iter()
        .map(|r| {
            ctrl.metrics
                .events_suppressed
                .get(&controller::metrics::ReasonLabels {
                    reason: (*r).into(),
                })
                .map(|c| c.get())
                .unwrap_or(0)
        })
        .sum();
    card
}

/// `--keep`: the sandbox stays up (its clock stands still) until interrupted.
async fn keep(sim: &SimHandle, args: &DemoArgs) {
    match sim.sandbox().write_kubeconfig(&args.kubeconfig) {
        Ok(()) => {
            println!();
            println!("the sandbox keeps running; in another terminal:");
            println!("  export KUBECONFIG={}", args.kubeconfig.display());
            println!("  kubectl get podlifecyclepolicies -n {NAMESPACE}");
            println!("  kubectl describe pod -n {NAMESPACE} inject-restart-count-decreased");
            println!("press Ctrl-C to stop");
            let _ = tokio::signal::ctrl_c().await;
        }
        Err(e) => eprintln!("podwarden demo: cannot write the kubeconfig: {e}"),
    }
}
