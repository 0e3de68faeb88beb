//! The simulated kubelet and the offline auditor check each other: a seeded random
//! fault-free run, recorded as a pod watch stream, gives no definite violation (also
//! with the scheduler placing pods and every node fault on the way); a run with
//! faulty-kubelet injections gives exactly the injected (uid, rule) pairs.

#[path = "../crates/sandbox/tests/sim_common/mod.rs"]
mod sim_common;

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DeleteParams};
use podwarden::audit::input::{DocumentReader, What};
use podwarden::audit::{Auditor, Scope};
use podwarden_model::{Finding, RuleSettings, Severity};
use podwarden_sandbox::api::Watch;
use podwarden_sandbox::sim::rng::SimRng;
use podwarden_sandbox::sim::{SimError, SimHandle, VIOLATION_RULES};
use serde_json::{Value, json};
use sim_common::*;

/// Every pod change as `{"type", "object"}` JSON lines, in order.
struct Recording {
    watch: Watch,
    lines: Vec<u8>,
}

impl Recording {
    fn start(sim: &SimHandle) -> Self {
        let pods = sim.store().resource("", "v1", "pods").expect("pods");
        let watch = sim
            .store()
            .watch(&pods, None, &Default::default())
            .expect("watch");
        Recording {
            watch,
            lines: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(ev) = self.watch.try_next() {
            let Some(obj) = ev.object() else { continue };
            let line = json!({"type": ev.type_name(), "object": obj.value()});
            self.lines.extend_from_slice(line.to_string().as_bytes());
            self.lines.push(b'\n');
        }
        assert!(!self.watch.is_closed(), "the recording watch fell behind");
    }

    fn audit(&self) -> Vec<Finding> {
        let mut reader = DocumentReader::from_vec(self.lines.clone());
        let mut auditor = Auditor::new(RuleSettings::default(), Scope::default());
        let mut findings = Vec::new();
        while let Some(items) = reader.next_document(auditor.tracker()).expect("read") {
            for item in items {
                match item.what {
                    What::Snapshot { view, deleted } => {
                        findings.extend(auditor.audit(view, deleted))
                    }
                    What::Unusable(why) => panic!("unusable snapshot at {}: {why}", item.at),
                }
            }
        }
        findings
    }
}

fn summary(findings: &[Finding]) -> BTreeMap<String, usize> {
    let mut by_rule = BTreeMap::new();
    for f in findings {
        *by_rule
            .entry(format!("{:?}/{}", f.severity, f.rule))
            .or_default() += 1;
    }
    by_rule
}

// ---- random pods -----------------------------------------------------------------

fn run_words(rng: &mut SimRng, exits: &[&str]) -> String {
    let run = 1 + rng.below(25);
    let outcome = exits[rng.below(exits.len() as u64) as usize];
    let ready = if rng.chance(0.3) {
        format!(" ready={}s", rng.below(6))
    } else {
        String::new()
    };
    format!("run={run}s {outcome}{ready}")
}

fn script(rng: &mut SimRng, exits: &[&str]) -> String {
    let runs = 1 + rng.below(3);
    (0..runs)
        .map(|_| run_words(rng, exits))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A random pod bound to one of `nodes` nodes.
fn random_pod(rng: &mut SimRng, name: &str, nodes: u64) -> Value {
    let policy = ["Always", "OnFailure", "Never"][rng.below(3) as usize];
    let mut annotations = serde_json::Map::new();
    let mut init = Vec::new();
    for i in 0..rng.below(3) {
        let cname = format!("init{i}");
        let mut c = json!({"name": cname, "image": "registry.example/init:1"});
        let s = if rng.chance(0.4) {
            c["restartPolicy"] = json!("Always");
            script(rng, &["forever", "exit=1", "exit=0"])
        } else {
            script(rng, &["exit=0", "exit=0", "exit=1"])
        };
        annotations.insert(format!("sandbox.podwarden.dev/script.{cname}"), json!(s));
        init.push(c);
    }
    let mut containers = Vec::new();
    for i in 0..1 + rng.below(2) {
        let cname = format!("app{i}");
        let mut c = json!({"name": cname, "image": "registry.example/app:1"});
        let mut exits = vec!["exit=0", "exit=1", "oom", "forever"];
        if rng.chance(0.2) {
            c["restartPolicy"] = json!(["Never", "OnFailure", "Always"][rng.below(3) as usize]);
            c["restartPolicyRules"] = json!([
                {"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}
            ]);
            exits.push("exit=42");
        }
        let s = script(rng, &exits);
        annotations.insert(format!("sandbox.podwarden.dev/script.{cname}"), json!(s));
        containers.push(c);
    }
    let mut spec = json!({
        "restartPolicy": policy, "containers": containers,
        "nodeName": format!("node-{}", rng.below(nodes)),
        "terminationGracePeriodSeconds": rng.below(5),
    });
    if !init.is_empty() {
        spec["initContainers"] = json!(init);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": spec,
    })
}

/// Creates `count` random pods over `secs` simulated seconds, deleting about a third
/// of them at random times; `each` runs after every step.
async fn random_run(
    sim: &SimHandle,
    rec: &mut Recording,
    rng: &mut SimRng,
    count: usize,
    secs: u64,
    bind: bool,
    mut each: impl FnMut(&SimHandle, &mut SimRng, u64),
) {
    let api: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(sim.client().expect("client"), "default");
    let mut creations: Vec<(u64, String)> = (0..count)
        .map(|i| (rng.below(secs / 2), format!("rnd-{i}")))
        .collect();
    creations.sort();
    let mut deletions: Vec<(u64, String)> = Vec::new();
    for (t, n) in &creations {
        if rng.chance(0.35) {
            deletions.push((t + 1 + rng.below(secs / 2), n.clone()));
        }
    }
    deletions.sort();
    for t in 0..secs {
        for (_, name) in creations.iter().filter(|(at, _)| *at == t) {
            let mut p = random_pod(rng, name, 3);
            if !bind {
                // The scheduler places it.
                if let Some(spec) = p["spec"].as_object_mut() {
                    spec.remove("nodeName");
                }
            }
            create(sim, p).await;
        }
        for (_, name) in deletions.iter().filter(|(at, _)| *at == t) {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
        advance(sim, 1);
        each(sim, rng, t);
        rec.drain();
    }
}

#[tokio::test]
async fn fault_free_random_run_has_no_violation() {
    let sim = cluster(3).await;
    let mut rec = Recording::start(&sim);
    let mut rng = SimRng::new(20_260_801);
    random_run(&sim, &mut rec, &mut rng, 80, 900, true, |_, _, _| {}).await;
    let findings = rec.audit();
    let violations: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Violation)
        .collect();
    assert!(
        violations.is_empty(),
        "violations: {violations:#?}\nall findings: {:?}",
        summary(&findings)
    );
    println!("findings by rule: {:?}", summary(&findings));
    assert!(sim.cluster().kubelet.tracked_pods() <= 80);
}

#[tokio::test]
async fn random_run_with_scheduler_and_node_faults_has_no_violation() {
    use podwarden_sandbox::sim::NodeFault::*;
    let sim = cluster(3).await;
    let mut rec = Recording::start(&sim);
    let mut rng = SimRng::new(4242);
    // (time, node, fault): short and long partitions (the taint manager deletes pods
    // of a node unreachable for over 300 s), pressure, disk, shutdown, node deletion.
    let plan = [
        (100, "node-1", Partition),
        (160, "node-1", Heal),
        (200, "node-2", MemoryPressure),
        (260, "node-2", Heal),
        (300, "node-0", Partition),
        (700, "node-0", Heal),
        (400, "node-1", DiskFailure),
        (450, "node-1", Heal),
        (500, "node-2", Shutdown),
        (620, "node-2", Heal),
        (750, "node-1", Delete),
        (850, "node-1", Heal),
    ];
    random_run(&sim, &mut rec, &mut rng, 90, 1000, false, |sim, _, t| {
        for (at, node, fault) in plan {
            if at == t {
                sim.apply_fault(node, fault).expect("fault applies");
            }
        }
    })
    .await;
    if let Ok(path) = std::env::var("SIM_RECORD") {
        std::fs::write(path, &rec.lines).expect("write recording");
    }
    let findings = rec.audit();
    // PodGC fails the pods of a deleted node and, as upstream, leaves their Ready and
    // ContainersReady as the (gone) kubelet last wrote them: not a kubelet write, so
    // not terminal-phase-ready (B7 rule 3).
    let violations: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Violation)
        .collect();
    assert!(
        violations.is_empty(),
        "violations: {violations:#?}\nall findings: {:?}",
        summary(&findings)
    );
    println!("with faults, findings by rule: {:?}", summary(&findings));
}

// ---- injections ------------------------------------------------------------------

/// Pods that reach a state each rule can be injected into.
fn seeded_pods() -> Vec<(&'static str, &'static str, Value)> {
    let on = |mut p: Value| {
        p["spec"]["nodeName"] = json!("node-0");
        p
    };
    let nowhere = |mut p: Value| {
        p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "nowhere"});
        p
    };
    vec![
        (
            "terminal-phase-regression",
            "inj-regress",
            on(pod(
                "inj-regress",
                "Never",
                &[],
                &[c("app", "run=2s exit=0")],
            )),
        ),
        (
            "restart-against-policy",
            "inj-against",
            on(pod(
                "inj-against",
                "Never",
                &[],
                &[c("a", "run=2s exit=1"), c("b", "forever")],
            )),
        ),
        (
            "terminal-phase-ready",
            "inj-term-ready",
            on(pod(
                "inj-term-ready",
                "Never",
                &[],
                &[c("app", "run=2s exit=1")],
            )),
        ),
        (
            "ready-without-containers-ready",
            "inj-ready",
            on(pod("inj-ready", "Always", &[], &[c("app", "forever")])),
        ),
        (
            "containers-ready-mismatch",
            "inj-cr",
            on(pod("inj-cr", "Always", &[], &[c("app", "forever")])),
        ),
        (
            "succeeded-with-failed-container",
            "inj-succ",
            on(pod("inj-succ", "OnFailure", &[], &[c("app", "forever")])),
        ),
        (
            "restart-count-decreased",
            "inj-count",
            on(pod(
                "inj-count",
                "Always",
                &[],
                &[c("app", "run=1s exit=1")],
            )),
        ),
        (
            "start-time-changed",
            "inj-start",
            on(pod("inj-start", "Always", &[], &[c("app", "forever")])),
        ),
        (
            "running-unbound",
            "inj-unbound",
            nowhere(pod("inj-unbound", "Always", &[], &[c("app", "forever")])),
        ),
    ]
}

#[tokio::test]
async fn injections_are_exactly_what_the_auditor_reports() {
    let sim = cluster(3).await;
    let mut rec = Recording::start(&sim);
    let seeded = seeded_pods();
    for (_, _, p) in &seeded {
        create(&sim, p.clone()).await;
    }
    advance(&sim, 30);
    rec.drain();
    // Not every state carries every rule.
    let refused = |name: &str, rule: &str, want: &str| match sim.inject("default", name, rule) {
        Err(SimError::CannotInject { why, .. }) => assert!(why.contains(want), "{why}"),
        other => panic!("expected CannotInject, got {other:?}"),
    };
    refused(
        "inj-ready",
        "terminal-phase-regression",
        "Succeeded or Failed",
    );
    refused("inj-ready", "running-unbound", "bound to no node");
    refused(
        "inj-unbound",
        "start-time-changed",
        "no kubelet runs this pod",
    );
    for (rule, name, _) in &seeded {
        sim.inject("default", name, rule)
            .unwrap_or_else(|e| panic!("{rule} into {name}: {e}"));
        advance(&sim, 1);
        rec.drain();
    }
    // Random pods with random injections where their state allows, some deleted.
    let mut rng = SimRng::new(99);
    let mut injected = 0;
    random_run(&sim, &mut rec, &mut rng, 60, 600, true, |sim, rng, t| {
        if t % 7 != 0 {
            return;
        }
        let name = format!("rnd-{}", rng.below(60));
        let rule = VIOLATION_RULES[rng.below(VIOLATION_RULES.len() as u64) as usize];
        let already = sim.ground_truth().iter().any(|g| g.pod == name);
        if !already && sim.inject("default", &name, rule).is_ok() {
            injected += 1;
        }
    })
    .await;
    // Injected pods are deleted like any other: the kubelet still removes them.
    let api: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(sim.client().expect("client"), "default");
    for name in ["inj-ready", "inj-cr"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    advance(&sim, 10);
    rec.drain();
    for name in ["inj-ready", "inj-cr"] {
        assert!(try_get(&sim, name).await.is_none(), "{name} removed");
    }

    let truth: BTreeSet<(String, String)> = sim
        .ground_truth()
        .into_iter()
        .map(|g| (g.uid, g.rule))
        .collect();
    assert_eq!(
        truth.len(),
        seeded.len() + injected,
        "one entry per injection"
    );
    let rules: BTreeSet<&str> = truth.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(rules.len(), VIOLATION_RULES.len(), "every rule injected");
    let findings = rec.audit();
    let reported: BTreeSet<(String, String)> = findings
        .iter()
        .filter(|f| f.severity == Severity::Violation)
        .map(|f| (f.uid.clone(), f.rule.to_string()))
        .collect();
    let missed: Vec<_> = truth.difference(&reported).collect();
    let extra: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            f.severity == Severity::Violation
                && !truth.contains(&(f.uid.clone(), f.rule.to_string()))
        })
        .collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed: {missed:?}\nextra: {extra:#?}"
    );
    println!(
        "{} injections ({injected} random); findings by rule: {:?}",
        truth.len(),
        summary(&findings)
    );
}
