//! The simulated kubelet and the offline auditor check each other: a seeded random
//! fault-free run, recorded as a pod watch stream, gives no definite violation; so does
//! one with the scheduler placing pods and every node fault on the way (partitions that
//! heal, out-of-service taints over terminating pods), which must produce the legal
//! causes the rules are sound against: flips coalesced while a node was cut off, Ready
//! written by two writers, pods failed by PodGC with their readiness left as it was. A
//! run with faulty-kubelet injections (and node faults, and a recorder that relists)
//! gives exactly the injected (uid, rule) pairs.

#[path = "../crates/sandbox/tests/sim_common/mod.rs"]
mod sim_common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kube::api::{Api, DeleteParams};
use podwarden::audit::input::{DocumentReader, What};
use podwarden::audit::{Auditor, Scope, Summary};
use podwarden_model::{Finding, RuleSettings, Severity};
use podwarden_sandbox::api::{DeleteOptions, ListOptions, Watch};
use podwarden_sandbox::sim::rng::SimRng;
use podwarden_sandbox::sim::{NodeFault, SimError, SimHandle, VIOLATION_RULES};
use serde_json::{Value, json};
use sim_common::*;

/// Every pod change as `{"type", "object"}` JSON lines, in order; with `relist`, also
/// a List of every pod taken every `every` seconds and written `delay` seconds later,
/// as a recorder that relists from a lagging cache does: its items are duplicates or
/// older than what the watch already delivered.
struct Recording {
    watch: Watch,
    lines: Vec<u8>,
    relist: Option<Relist>,
}

struct Relist {
    every: u64,
    delay: u64,
    tick: u64,
    held: Option<Value>,
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
            relist: None,
        }
    }

    fn relisting(sim: &SimHandle, every: u64, delay: u64) -> Self {
        assert!(delay < every);
        Recording {
            relist: Some(Relist {
                every,
                delay,
                tick: 0,
                held: None,
            }),
            ..Self::start(sim)
        }
    }

    fn push(&mut self, doc: &Value) {
        self.lines.extend_from_slice(doc.to_string().as_bytes());
        self.lines.push(b'\n');
    }

    /// Records what the watch delivered; called once per simulated second.
    fn drain(&mut self, sim: &SimHandle) {
        while let Some(ev) = self.watch.try_next() {
            let Some(obj) = ev.object() else { continue };
            let line = json!({"type": ev.type_name(), "object": obj.value()});
            self.push(&line);
        }
        assert!(!self.watch.is_closed(), "the recording watch fell behind");
        let Some(r) = &mut self.relist else { return };
        r.tick += 1;
        let held = if r.tick % r.every == 0 {
            let pods = sim.store().resource("", "v1", "pods").expect("pods");
            let page = sim
                .store()
                .list(&pods, None, &ListOptions::default())
                .expect("list");
            let items: Vec<Value> = page.items.iter().map(|o| o.value()).collect();
            r.held = Some(json!({"apiVersion": "v1", "kind": "PodList", "items": items}));
            None
        } else if r.tick % r.every == r.delay {
            r.held.take()
        } else {
            None
        };
        if let Some(list) = held {
            self.push(&list);
        }
    }

    /// The findings, and the auditor that made them: what it saw and what it still tracks.
    fn audited(&self) -> (Vec<Finding>, Auditor) {
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
        (findings, auditor)
    }

    /// The uids of the pods whose deletion was recorded.
    fn deleted_uids(&self) -> BTreeSet<String> {
        self.lines
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice::<Value>(line).expect("a recorded line"))
            .filter(|ev| ev["type"] == "DELETED")
            .map(|ev| {
                ev["object"]["metadata"]["uid"]
                    .as_str()
                    .expect("uid")
                    .to_string()
            })
            .collect()
    }

    /// Findings and the auditor's summary (duplicates and stale snapshots counted).
    fn audit_summary(&self) -> (Vec<Finding>, Summary) {
        let (findings, auditor) = self.audited();
        (findings, auditor.summary().clone())
    }

    /// Counts the legal causes of the rules' near misses in the watch stream (relisted
    /// Lists left out): see [`LegalCauses`].
    fn legal_causes(&self) -> LegalCauses {
        let mut last: HashMap<String, Value> = HashMap::new();
        let mut seen = LegalCauses::default();
        for line in self.lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let doc: Value = serde_json::from_slice(line).expect("recorded JSON");
            let Some(pod) = doc.get("object") else {
                continue;
            };
            let uid = pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(prev) = last.get(&uid) {
                seen.count(prev, pod);
            }
            last.insert(uid, pod.clone());
        }
        seen
    }
}

/// (status, lastTransitionTime) of a pod condition in a recorded pod.
fn cond<'a>(pod: &'a Value, kind: &str) -> Option<(&'a str, &'a str)> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default(),
                c["lastTransitionTime"].as_str().unwrap_or_default(),
            )
        })
}

/// How often a recording shows the legal causes the rules must stay silent on (B7).
#[derive(Debug, Default)]
struct LegalCauses {
    /// Ready or ContainersReady keeps its status with a new lastTransitionTime: the
    /// status manager coalesced a flip while the node was cut off (or wrote its cached
    /// False over the controller's).
    coalesced: usize,
    /// Of those, True -> True.
    coalesced_true: usize,
    /// Ready False (set by the node lifecycle controller) -> True with an older
    /// lastTransitionTime: the kubelet wrote its cached time over the controller's.
    two_writers: usize,
    /// A move to Failed that leaves Ready and ContainersReady exactly as they were, with
    /// ContainersReady True: PodGC's write of the phase alone.
    failed_by_phase_alone: usize,
}

impl LegalCauses {
    fn count(&mut self, prev: &Value, cur: &Value) {
        for kind in ["Ready", "ContainersReady"] {
            if let (Some((s0, t0)), Some((s1, t1))) = (cond(prev, kind), cond(cur, kind))
                && s0 == s1
                && t0 != t1
            {
                self.coalesced += 1;
                self.coalesced_true += usize::from(s1 == "True");
            }
        }
        // RFC 3339 times in whole seconds, UTC: their order is the strings' order.
        if let (Some(("False", t0)), Some(("True", t1))) = (cond(prev, "Ready"), cond(cur, "Ready"))
            && t1 < t0
        {
            self.two_writers += 1;
        }
        let phase = |p: &Value| {
            p["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let same = |k| cond(prev, k) == cond(cur, k);
        if phase(cur) == "Failed"
            && !matches!(phase(prev).as_str(), "Failed" | "Succeeded")
            && same("Ready")
            && same("ContainersReady")
            && cond(cur, "ContainersReady").map(|c| c.0) == Some("True")
        {
            self.failed_by_phase_alone += 1;
        }
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
/// of them at random times; `each` runs after every step. Some pods tolerate every taint
/// (as DaemonSet pods do: no taint manager deletes them), some can never be scheduled,
/// some carry a finalizer.
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
            let spec = p["spec"].as_object_mut().expect("spec");
            if !bind {
                // The scheduler places it.
                spec.remove("nodeName");
            }
            if rng.chance(0.1) {
                spec.insert("tolerations".into(), json!([{"operator": "Exists"}]));
            }
            if rng.chance(0.08) {
                spec.remove("nodeName");
                spec.insert(
                    "nodeSelector".into(),
                    json!({"kubernetes.io/hostname": "nowhere"}),
                );
            }
            if rng.chance(0.06) {
                // Kept after its deletion until someone removes the finalizer (nobody
                // here): PodGC's Failed stays visible, also when the node comes back.
                p["metadata"]["finalizers"] = json!(["example.com/hold"]);
            }
            create(sim, p).await;
        }
        for (_, name) in deletions.iter().filter(|(at, _)| *at == t) {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
        advance(sim, 1);
        each(sim, rng, t);
        rec.drain(sim);
    }
}

/// (time, node, fault): short and long partitions (the taint manager deletes pods of a
/// node unreachable for over 300 s), a partition ended by the out-of-service taint
/// (PodGC fails and removes the terminating pods), pressure, disk, shutdown, node
/// deletion; every fault healed.
const FAULTS: [(u64, &str, NodeFault); 19] = [
    (100, "node-1", NodeFault::Partition),
    (160, "node-1", NodeFault::Heal),
    (200, "node-2", NodeFault::MemoryPressure),
    (230, "node-3", NodeFault::Partition),
    (260, "node-2", NodeFault::Heal),
    (300, "node-0", NodeFault::Partition),
    (330, "node-3", NodeFault::OutOfService),
    (400, "node-1", NodeFault::DiskFailure),
    (420, "node-3", NodeFault::Heal),
    (450, "node-1", NodeFault::Heal),
    (460, "node-3", NodeFault::Partition),
    (470, "node-1", NodeFault::Partition),
    (490, "node-3", NodeFault::Heal),
    (500, "node-2", NodeFault::Shutdown),
    (530, "node-1", NodeFault::Heal),
    (620, "node-2", NodeFault::Heal),
    (700, "node-0", NodeFault::Heal),
    (750, "node-1", NodeFault::Delete),
    (850, "node-1", NodeFault::Heal),
];

fn apply_faults(sim: &SimHandle, t: u64) {
    for (at, node, fault) in FAULTS {
        if at == t {
            sim.apply_fault(node, fault).expect("fault applies");
        }
    }
}

fn violations(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Violation)
        .collect()
}

#[tokio::test]
async fn fault_free_random_run_has_no_violation() {
    let sim = cluster(3).await;
    let mut rec = Recording::start(&sim);
    let mut rng = SimRng::new(20_260_801);
    random_run(&sim, &mut rec, &mut rng, 80, 900, true, |_, _, _| {}).await;
    let (findings, auditor) = rec.audited();
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

    // Every pod created was audited; each is either still stored or its deletion was
    // recorded; the auditor tracks exactly the stored ones and the kubelets the stored
    // ones bound to a node (a deleted pod is forgotten by both; some never schedule).
    let pods = sim.store().resource("", "v1", "pods").expect("pods");
    let listed = sim
        .store()
        .list(&pods, None, &Default::default())
        .expect("list pods")
        .items;
    let stored: BTreeSet<String> = listed.iter().map(|p| p.uid.clone()).collect();
    let bound = listed
        .iter()
        .filter(|p| p.field("spec.nodeName").is_some_and(|n| !n.is_empty()))
        .count();
    let deleted = rec.deleted_uids();
    assert_eq!(auditor.summary().pods, 80, "pods audited");
    assert!(stored.is_disjoint(&deleted), "{stored:?} {deleted:?}");
    assert_eq!(stored.len() + deleted.len(), 80, "stored and deleted pods");
    assert!(!deleted.is_empty(), "the run deletes pods");
    assert!(bound < stored.len(), "some pods never schedule");
    assert_eq!(
        sim.cluster().kubelet.tracked_pods(),
        bound,
        "pods the kubelets track"
    );
    let tracked: BTreeSet<String> = auditor
        .tracker()
        .views()
        .map(|v| v.uid.to_string())
        .collect();
    assert_eq!(tracked, stored, "pods the auditor tracks");
}

#[tokio::test]
async fn random_run_with_scheduler_and_node_faults_has_no_violation() {
    let sim = cluster(4).await;
    // A recorder that relists every 60 s from a cache 25 s behind.
    let mut rec = Recording::relisting(&sim, 60, 25);
    let mut rng = SimRng::new(4242);
    // On node-3 when it is taken out of service, whatever the random pods do: a pod
    // kept by a finalizer (PodGC's Failed must stay when the node comes back), and one
    // that tolerates every taint, deleted by a person while the node is cut off (PodGC
    // fails it without a DisruptionTarget).
    for (name, finalizer) in [("held-3", true), ("tolerant-3", false)] {
        let mut p = pod(name, "Always", &[], &[c("app", "forever")]);
        p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "node-3"});
        if finalizer {
            p["metadata"]["finalizers"] = json!(["example.com/hold"]);
        } else {
            p["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        }
        create(&sim, p).await;
    }
    random_run(&sim, &mut rec, &mut rng, 110, 1000, false, |sim, _, t| {
        apply_faults(sim, t);
        if t == 300 {
            let pods = sim.store().resource("", "v1", "pods").expect("pods");
            sim.store()
                .delete(
                    &pods,
                    Some("default"),
                    "tolerant-3",
                    &DeleteOptions::default(),
                )
                .expect("delete");
        }
    })
    .await;
    if let Ok(path) = std::env::var("SIM_RECORD") {
        std::fs::write(path, &rec.lines).expect("write recording");
    }
    let (findings, audited) = rec.audit_summary();
    assert!(
        audited.duplicates > 0 && audited.stale > 0,
        "the relisted Lists re-sent states: {audited:?}"
    );
    let causes = rec.legal_causes();
    println!("with faults, findings by rule: {:?}", summary(&findings));
    println!("legal causes: {causes:?}");
    // Each legal cause the rules were made sound against happens in this run.
    assert!(causes.coalesced_true > 0, "{causes:?}");
    assert!(causes.two_writers > 0, "{causes:?}");
    assert!(causes.failed_by_phase_alone > 0, "{causes:?}");
    let violations = violations(&findings);
    assert!(
        violations.is_empty(),
        "violations: {violations:#?}\nall findings: {:?}",
        summary(&findings)
    );
    assert!(
        summary(&findings).contains_key("Warning/condition-time-churn"),
        "the coalesced flips are reported as warnings"
    );
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
    let sim = cluster(4).await;
    // A recorder that relists every 45 s from a cache 20 s behind.
    let mut rec = Recording::relisting(&sim, 45, 20);
    let seeded = seeded_pods();
    for (_, _, p) in &seeded {
        create(&sim, p.clone()).await;
    }
    advance(&sim, 30);
    rec.drain(&sim);
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
        rec.drain(&sim);
    }
    // Injected pods are deleted like any other: the kubelet still removes them.
    let api: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(sim.client().expect("client"), "default");
    for name in ["inj-ready", "inj-cr"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    advance(&sim, 10);
    rec.drain(&sim);
    for name in ["inj-ready", "inj-cr"] {
        assert!(try_get(&sim, name).await.is_none(), "{name} removed");
    }
    // Random pods with random injections where their state allows, some deleted, while
    // nodes fail and heal.
    let mut rng = SimRng::new(99);
    let mut injected = 0;
    random_run(&sim, &mut rec, &mut rng, 70, 1000, false, |sim, rng, t| {
        apply_faults(sim, t);
        if t % 7 != 0 {
            return;
        }
        let name = format!("rnd-{}", rng.below(70));
        let rule = VIOLATION_RULES[rng.below(VIOLATION_RULES.len() as u64) as usize];
        let already = sim.ground_truth().iter().any(|g| g.pod == name);
        if !already && sim.inject("default", &name, rule).is_ok() {
            injected += 1;
        }
    })
    .await;

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
    if let Ok(path) = std::env::var("SIM_RECORD_INJ") {
        std::fs::write(path, &rec.lines).expect("write recording");
        for g in sim.ground_truth() {
            println!("GT {} {} {} {}", g.time, g.pod, g.uid, g.rule);
        }
    }
    let (findings, audited) = rec.audit_summary();
    assert!(
        audited.duplicates > 0 && audited.stale > 0,
        "the relisted Lists re-sent states: {audited:?}"
    );
    let reported: BTreeSet<(String, String)> = violations(&findings)
        .into_iter()
        .map(|f| (f.uid.clone(), f.rule.to_string()))
        .collect();
    let missed: Vec<_> = truth.difference(&reported).collect();
    let extra: Vec<&Finding> = violations(&findings)
        .into_iter()
        .filter(|f| !truth.contains(&(f.uid.clone(), f.rule.to_string())))
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
