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
use podwarden_sandbox::api::{AuthConfig, SandboxConfig};
use podwarden_sandbox::sim::rng::SimRng;
use podwarden_sandbox::sim::{
    GroundTruthEntry, NodeFault, SimConfig, SimHandle, Simulation, VIOLATION_RULES,
};
use serde_json::{Value, json};

use crate::controller::{self, Options, events};

pub mod install;

pub const NAMESPACE: &str = "demo";
const POLICY: &str = "demo";
/// Wall-clock pause after each simulated second, for the controller to keep up.
const STEP_PAUSE: Duration = Duration::from_millis(15);
/// How long the end of the demo waits for the last Events (wall clock).
const SETTLE: Duration = Duration::from_secs(30);
/// Simulated seconds a partition lasts, at least: past the taint manager's eviction.
const PARTITION_SECONDS: u64 = 360;

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
    /// Play this many scenarios (seeds `--seed`, `--seed`+1, ...), one line each, then
    /// precision and recall over all of them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Install these manifests first (the chart rendered by `helm template`) on a sandbox
    /// with authentication and RBAC on (HTTPS, tokens), and run the controller as their
    /// Deployment would: with a token of its ServiceAccount and its `podwarden run`
    /// arguments. The demo then also fails if the API refused the controller anything.
    #[arg(long, value_name = "FILE")]
    pub install: Option<PathBuf>,
}

pub fn run(args: &DemoArgs) -> ExitCode {
    controller::cli::init_logs_quiet();
    let Some(runtime) = controller::cli::runtime("demo") else {
        return ExitCode::FAILURE;
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
    #[error("--install: {0}")]
    Install(#[from] install::InstallError),
    #[error("the API refused the controller {total} request(s): {}", refused.join("; "))]
    Refused { total: u64, refused: Vec<String> },
    #[error(
        "the controller did not sync within {seconds} s{}",
        refused_suffix(refused)
    )]
    NotReady { seconds: u64, refused: Vec<String> },
}

fn refused_suffix(refused: &[String]) -> String {
    if refused.is_empty() {
        String::new()
    } else {
        format!("; the API refused it: {}", refused.join("; "))
    }
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
    /// The bare pods on the failing nodes and what orphan recreation made of them.
    pub orphans: Vec<Orphan>,
    /// The series count of the Event about a state that held twice (2 when right).
    pub repeat: Option<i32>,
    /// With `--install`: the requests of the controller the API refused (distinct
    /// messages) and how many there were in all.
    pub refused_requests: Vec<String>,
    pub refused_total: u64,
}

/// A bare pod on a failing node.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub name: String,
    /// Lost with fencing evidence (disk failure, deleted node), not a partition.
    pub fenced: bool,
    /// Replacements made for it: one when fenced, none otherwise.
    pub replacements: usize,
}

impl Orphan {
    fn right(&self) -> bool {
        self.replacements == usize::from(self.fenced)
    }
}

impl Scorecard {
    pub fn passed(&self) -> bool {
        self.false_violations.is_empty()
            && self.injections.values().all(|(i, d)| i == d)
            && !self.injections.is_empty()
            && self.orphans.iter().all(Orphan::right)
            && self.repeat.is_none_or(|n| n == 2)
            && self.refused_total == 0
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
        let fenced = self.orphans.iter().filter(|o| o.fenced).count();
        println!(
            "orphans: {fenced} lost with fencing evidence, {} recreated exactly once; {} on the partitioned node, {} left alone",
            self.orphans
                .iter()
                .filter(|o| o.fenced && o.right())
                .count(),
            self.orphans.len() - fenced,
            self.orphans
                .iter()
                .filter(|o| !o.fenced && o.right())
                .count(),
        );
        for o in self.orphans.iter().filter(|o| !o.right()) {
            println!("ORPHAN {}: {} replacements", o.name, o.replacements);
        }
        for r in &self.refused_requests {
            println!("REFUSED BY THE API: {r}");
        }
        if self.refused_total > 0 {
            println!(
                "the API refused the controller {} request(s)",
                self.refused_total
            );
        }
        if let Some(n) = self.repeat {
            println!(
                "a state that held again: its Event's series count is {n}{}",
                if n == 2 { "" } else { "  WRONG (2 expected)" }
            );
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
                "PASS: every injection found, no violation that was not injected, every fenced orphan recreated once"
            } else {
                "FAIL"
            }
        );
    }
}

async fn demo(args: &DemoArgs) -> Result<bool, DemoError> {
    let manifests = match &args.install {
        Some(path) => {
            let m = install::Manifests::read(path)?;
            m.run_args()?;
            Some(m)
        }
        None => None,
    };
    let manifests = manifests.as_ref();
    if args.runs <= 1 {
        let card = play(args, manifests, args.seed, true, args.keep).await?;
        if !args.keep {
            card.print();
        }
        return Ok(card.passed());
    }
    // Many seeded scenarios: one line each, then precision and recall over all.
    let (mut injected, mut detected, mut false_violations, mut passed) = (0, 0, 0u64, 0);
    let (mut orphans, mut orphans_right) = (0, 0);
    let started = Instant::now();
    for i in 0..args.runs {
        let seed = args.seed.wrapping_add(i);
        let card = play(args, manifests, seed, false, false).await?;
        let (inj, det) = card
            .injections
            .values()
            .fold((0, 0), |(a, b), (i, d)| (a + i, b + d));
        let fv: u64 = card.false_violations.values().sum();
        let right = card.orphans.iter().filter(|o| o.right()).count();
        orphans += card.orphans.len();
        orphans_right += right;
        injected += inj;
        detected += det;
        false_violations += fv;
        passed += usize::from(card.passed());
        println!(
            "seed {seed}: {det}/{inj} injections found, {fv} violations not injected, {right}/{} orphans handled right, {:.1} s{}",
            card.orphans.len(),
            card.elapsed.as_secs_f64(),
            if card.passed() { "" } else { "  FAIL" }
        );
    }
    let recall = detected as f64 / injected.max(1) as f64;
    let precision = detected as f64 / (detected as f64 + false_violations as f64).max(1.0);
    println!(
        "{passed}/{} scenarios passed; recall {detected}/{injected} ({:.2}%), violations not injected {false_violations} (precision {:.2}%); orphans handled right {orphans_right}/{orphans} (fenced: recreated once; partitioned: left alone); {:.1} s",
        args.runs,
        recall * 100.0,
        precision * 100.0,
        started.elapsed().as_secs_f64()
    );
    Ok(passed as u64 == args.runs)
}

/// One scenario, its choices drawn from `seed`: how many pods of each restartPolicy
/// row, which node gets which fault and when, when the partition heals, when the
/// faulty writes come and how many of each.
async fn play(
    args: &DemoArgs,
    manifests: Option<&install::Manifests>,
    seed: u64,
    verbose: bool,
    keep_running: bool,
) -> Result<Scorecard, DemoError> {
    let say = |line: String| {
        if verbose {
            println!("{line}");
        }
    };
    let started = Instant::now();
    let mut rng = SimRng::new(seed);
    let sim = Simulation::start(
        SandboxConfig {
            auth: manifests.map(|_| AuthConfig::default()),
            ..SandboxConfig::default()
        },
        SimConfig {
            nodes: 5,
            seed,
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
    say(format!(
        "sandbox: API server at {} with 5 simulated nodes (seed {seed})",
        sim.sandbox().url()
    ));
    install(&client, "Enforce").await?;
    let (ctrl_client, options) = match manifests {
        None => (
            client.clone(),
            Options {
                event_qps: args.event_qps,
                http_addr: None,
                instance: "podwarden-demo".into(),
                ..Options::default()
            },
        ),
        Some(m) => {
            m.apply(&client).await?;
            let token = m.token(&client).await?;
            let ctrl_client = sim
                .sandbox()
                .client_for_token(&token)
                .map_err(|e| DemoError::Sandbox(e.to_string()))?;
            let w = &m.workload;
            let mut options = controller::cli::options(
                &m.run_args()?,
                "podwarden-demo".into(),
                Some(w.namespace.clone()),
            )
            .map_err(|message| install::InstallError::Args {
                path: m.path.clone(),
                name: w.name.clone(),
                message,
            })?;
            options.http_addr = None;
            say(format!(
                "installed {} object(s) from {} ({} hook(s) that do not run at install left out); the controller runs as ServiceAccount {}/{} over HTTPS with {}",
                m.objects.len(),
                m.path.display(),
                m.skipped_hooks,
                w.namespace,
                w.service_account,
                w.args.join(" ")
            ));
            (ctrl_client, options)
        }
    };
    let mut ctrl = controller::start(ctrl_client, options).await?;
    synced(&sim, &mut ctrl).await?;
    say(format!(
        "controller: synced; policy {NAMESPACE}/{POLICY} selects every pod in {NAMESPACE}"
    ));

    let mut progress = Progress {
        verbose,
        reported: 0,
    };
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
    let mut created = 0;
    for (name, policy, script) in table {
        for i in 0..=rng.below(2) {
            let node = if rng.chance(0.5) { "node-0" } else { "node-1" };
            create(&pods, pod(&format!("{name}-{i}"), policy, script, node)).await?;
            created += 1;
        }
    }
    let mut victims = Vec::new();
    for rule in VIOLATION_RULES {
        let victim = victim(rule);
        for i in 0..=rng.below(2) {
            let name = format!("inject-{rule}-{i}");
            let node = if rng.chance(0.5) { "node-0" } else { "node-1" };
            create(&pods, victim.pod(&name, node)).await?;
            victims.push((rule, name));
            created += 1;
        }
    }
    // The three failing nodes get the three faults in a drawn order.
    let mut faults = vec![
        (NodeFault::DiskFailure, "disk failure"),
        (NodeFault::Partition, "partitioned"),
        (NodeFault::Delete, "deleted"),
    ];
    let mut assigned = Vec::new();
    // Bare pods on the failing nodes: (uid, name, whether its loss is fenced).
    let mut orphans = Vec::new();
    for node in ["node-2", "node-3", "node-4"] {
        let (fault, what) = faults.remove(rng.below(faults.len() as u64) as usize);
        for i in 0..=rng.below(3) {
            let name = format!("{node}-{i}");
            let uid = create(&pods, pod(&name, "Always", "forever", node)).await?;
            orphans.push((uid, name, fault != NodeFault::Partition));
            created += 1;
        }
        assigned.push((node, fault, what));
    }
    say(format!(
        "[1/4] {created} pods: every restartPolicy row, OOM kills, pods to break, pods on nodes about to fail"
    ));
    progress.run(&sim, &ctrl, 15 + rng.below(15)).await?;

    for (node, fault, _) in &assigned {
        sim.apply_fault(node, *fault)?;
    }
    say(format!(
        "[2/4] {}",
        assigned
            .iter()
            .map(|(n, _, w)| format!("{n} {w}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Past PodGC's 40 s quarantine of the deleted node's pods and its next 20 s pass,
    // and past the taint manager's eviction of the partitioned node's pods (40 s until
    // the node is NotReady, then their 300 s toleration): deleted while their kubelet
    // cannot be reached, they are disrupted without fencing evidence, and the controller
    // reads their node afresh before it decides to leave them alone.
    progress
        .run(&sim, &ctrl, PARTITION_SECONDS + rng.below(30))
        .await?;
    if let Some((node, _, _)) = assigned.iter().find(|(_, f, _)| *f == NodeFault::Partition) {
        sim.apply_fault(node, NodeFault::Heal)?;
        say(format!("      {node} partition healed"));
    }
    progress.run(&sim, &ctrl, 10 + rng.below(20)).await?;

    let mut truth = Vec::new();
    let mut refused = Vec::new();
    for (rule, name) in &victims {
        match sim.inject(NAMESPACE, name, rule) {
            Ok(entry) => truth.push(entry),
            Err(e) => refused.push(format!("{rule}: {e}")),
        }
        if rng.chance(0.5) {
            sim.advance(Duration::from_secs(1))?;
        }
    }
    say(format!(
        "[3/4] {} faulty-kubelet writes injected ({} refused)",
        truth.len(),
        refused.len()
    ));
    progress.run(&sim, &ctrl, 20).await?;

    say("[4/4] waiting for the controller's Events and replacements".to_string());
    let deadline = Instant::now() + SETTLE;
    let mut detected = detected(&client).await?;
    let mut replaced = replacements(&pods).await?;
    let fenced_done = |replaced: &BTreeMap<String, usize>| {
        orphans
            .iter()
            .all(|(uid, _, fenced)| !fenced || replaced.contains_key(uid))
    };
    while !(truth.iter().all(|t| detected.contains(&key(t))) && fenced_done(&replaced))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        detected = detected_after(&client, detected).await?;
        replaced = replacements(&pods).await?;
    }
    // A state that holds again: the faulty kubelet sets the container ready (the state
    // stops), then not ready again under the same ContainersReady True. It is counted
    // again, and recorded as its Event's series, not as a second Event.
    let repeat = match truth.iter().find(|t| t.rule == REPEATED_RULE) {
        Some(t) if detected.contains(&key(t)) => {
            Some(repeat_state(&sim, &client, t, deadline).await?)
        }
        _ => None,
    };
    let repeated = repeat.map(|_| REPEATED_RULE);
    let mut card = score(
        &ctrl,
        &truth,
        refused,
        &detected,
        repeated,
        started.elapsed(),
    );
    card.repeat = repeat;
    (card.refused_total, card.refused_requests) = refusals(&sim);
    card.orphans = orphans
        .iter()
        .map(|(uid, name, fenced)| Orphan {
            name: name.clone(),
            fenced: *fenced,
            replacements: replaced.get(uid).copied().unwrap_or(0),
        })
        .collect();
    if keep_running {
        card.print();
        keep(&sim, args).await;
    }
    ctrl.shutdown().await;
    sim.shutdown().await;
    Ok(card)
}

/// How long the controller may take to sync (wall clock; a failure bound).
const SYNC_WITHIN: Duration = Duration::from_secs(30);

/// Waits until the controller has synced; fails at once when the API refused it
/// something (it would retry forever), or after [`SYNC_WITHIN`].
async fn synced(sim: &SimHandle, ctrl: &mut controller::Handle) -> Result<(), DemoError> {
    let deadline = Instant::now() + SYNC_WITHIN;
    loop {
        let (total, refused) = refusals(sim);
        if total > 0 || Instant::now() >= deadline {
            return Err(DemoError::NotReady {
                seconds: SYNC_WITHIN.as_secs(),
                refused,
            });
        }
        if tokio::time::timeout(Duration::from_millis(100), ctrl.ready())
            .await
            .is_ok()
        {
            return Ok(());
        }
    }
}

/// The requests the API refused (all of them the controller's: the demo itself is
/// admin): how many, and each distinct message. Nothing without auth.
fn refusals(sim: &SimHandle) -> (u64, Vec<String>) {
    let Some(auth) = sim.sandbox().auth() else {
        return (0, Vec::new());
    };
    let r = auth.refusals();
    let mut distinct: Vec<String> = r.recent.into_iter().collect();
    distinct.sort();
    distinct.dedup();
    (r.total, distinct)
}

struct Progress {
    verbose: bool,
    reported: u64,
}

impl Progress {
    /// Moves the simulation `seconds` simulated seconds, one at a time, and says what
    /// the controller found meanwhile.
    async fn run(
        &mut self,
        sim: &SimHandle,
        ctrl: &controller::Handle,
        seconds: u64,
    ) -> Result<(), DemoError> {
        for _ in 0..seconds {
            sim.advance(Duration::from_secs(1))?;
            tokio::time::sleep(STEP_PAUSE).await;
        }
        let found = total_findings(ctrl);
        if self.verbose {
            println!(
                "      +{seconds} s simulated: {} pod events audited, {found} findings so far (+{})",
                ctrl.metrics.pod_watch_events.get(),
                found.saturating_sub(self.reported)
            );
        }
        self.reported = found;
        // What follows a refused call would only fail in its wake: stop here.
        let (total, refused) = refusals(sim);
        if total > 0 {
            return Err(DemoError::Refused { total, refused });
        }
        Ok(())
    }
}

/// A pod in the state an injection needs (see the simulator's injection table).
#[derive(Debug, Clone, Copy)]
pub struct Victim {
    pub restart_policy: &'static str,
    pub script: &'static str,
    /// The rule needs a pod bound to no node: it asks for a node that does not exist.
    pub unschedulable: bool,
}

/// No node has this hostname: a pod that asks for it stays unscheduled.
pub const NO_SUCH_NODE: &str = "no-such-node";

pub fn victim(rule: &str) -> Victim {
    let (restart_policy, script) = match rule {
        "terminal-phase-regression" | "terminal-phase-ready" => ("Never", "run=2s exit=0"),
        "restart-against-policy" => ("Never", "run=2s exit=1"),
        // Crash-looping: restarted by the time the writes come.
        "restart-count-decreased" => ("Always", "run=1s exit=1"),
        _ => ("Always", "forever"),
    };
    Victim {
        restart_policy,
        script,
        unschedulable: rule == "running-unbound",
    }
}

impl Victim {
    /// The victim as a pod named `name`, on `node` unless it must stay unscheduled.
    pub fn pod(&self, name: &str, node: &str) -> Value {
        let node = if self.unschedulable {
            NO_SUCH_NODE
        } else {
            node
        };
        pod(name, self.restart_policy, self.script, node)
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

/// Creates the pod; returns its uid.
async fn create(pods: &Api<Pod>, pod: Value) -> Result<String, DemoError> {
    let pod: Pod = serde_json::from_value(pod).map_err(|e| DemoError::Sandbox(e.to_string()))?;
    let made = pods
        .create(&PostParams::default(), &pod)
        .await
        .map_err(|source| DemoError::Api {
            what: "a pod",
            source,
        })?;
    Ok(made.metadata.uid.unwrap_or_default())
}

/// Installs the CRD, the demo namespace and a policy selecting every pod in it, in
/// `mode` (`Audit` or `Enforce`).
pub async fn install(client: &Client, mode: &str) -> Result<(), DemoError> {
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
    let spec: PodLifecyclePolicySpec = serde_json::from_value(json!({"mode": mode}))
        .map_err(|e| DemoError::Sandbox(e.to_string()))?;
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

fn total_findings(ctrl: &controller::Handle) -> u64 {
    ctrl.metrics.findings_by_rule().values().sum()
}

/// The injected state the demo makes hold a second time.
const REPEATED_RULE: &str = "containers-ready-mismatch";

/// Makes `t`'s state stop and hold again (the faulty kubelet's two status writes), then
/// waits (until `deadline`, or a call refused by the API) for its Event's series to
/// count both; returns the count.
async fn repeat_state(
    sim: &SimHandle,
    client: &Client,
    t: &GroundTruthEntry,
    deadline: Instant,
) -> Result<i32, DemoError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &t.namespace);
    for ready in [true, false] {
        let pod = pods.get(&t.pod).await.map_err(|source| DemoError::Api {
            what: "the repeated pod",
            source,
        })?;
        let mut statuses = serde_json::to_value(
            pod.status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default(),
        )
        .map_err(|e| DemoError::Sandbox(e.to_string()))?;
        if let Some(first) = statuses.get_mut(0) {
            first["ready"] = json!(ready);
        }
        pods.patch_status(
            &t.pod,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"containerStatuses": statuses}})),
        )
        .await
        .map_err(|source| DemoError::Api {
            what: "the repeated state",
            source,
        })?;
    }
    let (uid, reason) = key(t);
    loop {
        let count = list_events(client, &t.namespace)
            .await?
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason.as_str())
                    && e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str())
            })
            .map(|e| e.series.as_ref().map_or(1, |s| s.count))
            .max()
            .unwrap_or(0);
        // A refused call will not be retried: no need to wait for the count.
        if count >= 2 || Instant::now() >= deadline || refusals(sim).0 > 0 {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Events of namespace `ns`.
async fn list_events(client: &Client, ns: &str) -> Result<Vec<Event>, DemoError> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|source| DemoError::Api {
            what: "listing Events",
            source,
        })
}

fn key(t: &GroundTruthEntry) -> (String, String) {
    let reason = RuleId::ALL
        .iter()
        .find(|r| r.as_str() == t.rule)
        .map(|r| events::reason(*r))
        .unwrap_or_default();
    (t.uid.clone(), reason)
}

/// Pods made by orphan recreation, counted by the uid of the pod they replace.
async fn replacements(pods: &Api<Pod>) -> Result<BTreeMap<String, usize>, DemoError> {
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|source| DemoError::Api {
            what: "listing pods",
            source,
        })?;
    let mut out = BTreeMap::new();
    for p in list.items {
        if let Some(lineage) = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(podwarden_model::orphans::ORIGINAL_UID_ANNOTATION))
        {
            *out.entry(lineage.clone()).or_default() += 1;
        }
    }
    Ok(out)
}

/// (pod uid, reason) of the controller's Events in the demo namespace.
async fn detected(client: &Client) -> Result<HashSet<(String, String)>, DemoError> {
    detected_after(client, HashSet::new()).await
}

async fn detected_after(
    client: &Client,
    mut seen: HashSet<(String, String)>,
) -> Result<HashSet<(String, String)>, DemoError> {
    for e in list_events(client, NAMESPACE).await? {
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
    repeated: Option<&str>,
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
    // The state made to hold again is a second faulty write, counted as found.
    if let Some(rule) = repeated {
        *injected_per_rule.entry(rule).or_default() += 1;
    }
    for (rule, n) in ctrl.metrics.findings_by_rule() {
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
    card.events_suppressed = controller::metrics::SUPPRESSED_REASONS
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
            println!("  kubectl get pods -n {NAMESPACE}   # replacements are named <pod>-r1");
            println!("press Ctrl-C to stop");
            let _ = tokio::signal::ctrl_c().await;
        }
        Err(e) => eprintln!("podwarden demo: cannot write the kubeconfig: {e}"),
    }
}
