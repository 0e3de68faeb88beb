//! "A violation is a promise": histories that real components write, each change named
//! with its writer, give no violation; the near miss that no legal writer produces still
//! gives the rule (SEMANTICS B3, B5, B7). Suspicious-only rules (condition-time-churn)
//! still report their legal histories, as warnings.

mod common;

use common::*;
use podwarden_model::{Finding, RuleId, RuleSettings, Severity};
use serde_json::json;

/// One snapshot and who wrote the change it shows.
struct Step {
    writer: &'static str,
    pod: Pod,
}

fn step(writer: &'static str, pod: Pod) -> Step {
    Step { writer, pod }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// No violation at all.
    Legal,
    /// No violation, but this suspicious-only rule reports it.
    LegalButWarns(RuleId),
    /// The rule, as a violation.
    Violates(RuleId),
}

struct History {
    name: &'static str,
    want: Want,
    steps: Vec<Step>,
}

fn history(name: &'static str, want: Want, steps: Vec<Step>) -> History {
    History { name, want, steps }
}

/// What a real pod carries besides what the rules read: node and pod IPs, QoS class,
/// images and container ids.
fn realistic(mut pod: Pod) -> Pod {
    let status = &mut pod.0["status"];
    status["hostIP"] = json!("10.0.3.17");
    status["hostIPs"] = json!([{"ip": "10.0.3.17"}]);
    status["qosClass"] = json!("Burstable");
    let mut started = false;
    if let Some(list) = status["containerStatuses"].as_array_mut() {
        for c in list {
            c["image"] = json!("registry.example/shop/web:1.42.0");
            c["imageID"] = json!("registry.example/shop/web@sha256:5f2c0de1");
            if c["state"].get("running").is_some() || c["state"].get("terminated").is_some() {
                if c.get("containerID").is_none() {
                    c["containerID"] = json!("containerd://3b9e51f0c2a4");
                }
                started = true;
            }
        }
    }
    if started {
        status["podIP"] = json!("10.244.2.31");
    }
    pod
}

/// Created at t0; the scheduler bound it to node-1 at t0.
fn scheduled() -> Pod {
    realistic(
        Pod::new("web")
            .containers(&["app"])
            .cond("PodScheduled", "True", 0),
    )
}

/// The kubelet started it: startTime t1, `app` running from t2 and ready at t3.
fn running() -> Pod {
    realistic(
        scheduled()
            .start_time(1)
            .phase("Running")
            .run("app", 2, true)
            .kubelet_conditions(3),
    )
}

fn audit(steps: &[Step]) -> Vec<Finding> {
    let mut seq = Seq::new();
    for s in steps {
        seq.push(s.pod.clone());
    }
    seq.audit()
}

fn check(histories: Vec<History>) {
    let mut failures = Vec::new();
    for h in histories {
        assert!(
            h.steps.iter().all(|s| !s.writer.is_empty()),
            "{}: every change names its writer",
            h.name
        );
        let findings = audit(&h.steps);
        let violations: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.severity == Severity::Violation)
            .collect();
        let ok = match h.want {
            Want::Legal => violations.is_empty(),
            Want::LegalButWarns(rule) => {
                violations.is_empty()
                    && findings
                        .iter()
                        .any(|f| f.rule == rule && f.severity == Severity::Warning)
            }
            Want::Violates(rule) => violations.iter().any(|f| f.rule == rule),
        };
        if !ok {
            let writers: Vec<&str> = h.steps.iter().map(|s| s.writer).collect();
            failures.push(format!(
                "{} (want {:?}; writers {writers:?}): {findings:#?}",
                h.name, h.want
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Class 1: Ready against ContainersReady and readiness gates.
#[test]
fn ready_without_containers_ready_needs_evidence() {
    use Want::*;
    let old_kubelet = |p: Pod| p.drop_cond("ContainersReady");
    let gate = "example.com/lb-registered";
    let gated = || running().readiness_gate(gate);
    check(vec![
        history(
            "a kubelet before 1.12 never writes ContainersReady",
            Legal,
            vec![
                step("scheduler", old_kubelet(scheduled())),
                step("kubelet 1.11 status manager", old_kubelet(running())),
                step(
                    "kubelet 1.11 status manager: app exits 1",
                    old_kubelet(running().exit("app", 1, 2, 20).kubelet_conditions(20)),
                ),
                step(
                    "kubelet 1.11 status manager: app restarted, ready again",
                    old_kubelet(
                        running()
                            .exit("app", 1, 2, 20)
                            .restart("app", 20)
                            .ready("app", true)
                            .kubelet_conditions(31),
                    ),
                ),
            ],
        ),
        history(
            "near miss: ContainersReady written False next to Ready True",
            Violates(RuleId::ReadyWithoutContainersReady),
            vec![
                step("scheduler", scheduled()),
                step(
                    "faulty kubelet: ContainersReady False, Ready True",
                    running().cond("ContainersReady", "False", 3),
                ),
            ],
        ),
        history(
            "a readiness gate's owner drains the pod before the kubelet reconciles",
            Legal,
            vec![
                step("scheduler", scheduled().readiness_gate(gate)),
                step(
                    "kubelet status manager: containers ready, gate not yet written",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond_reason("Ready", "ReadinessGatesNotReady"),
                ),
                step(
                    "load-balancer controller (the gate's owner): registered",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond_reason("Ready", "ReadinessGatesNotReady")
                        .cond(gate, "True", 5),
                ),
                step(
                    "kubelet status manager: every gate True, Ready True",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond(gate, "True", 5)
                        .cond("Ready", "True", 6),
                ),
                step(
                    "load-balancer controller: deregistered for a drain, Ready still True",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond(gate, "False", 40)
                        .cond("Ready", "True", 6),
                ),
                step(
                    "kubelet status manager: reconciles, Ready False",
                    gated()
                        .cond(gate, "False", 40)
                        .cond("Ready", "False", 41)
                        .cond_reason("Ready", "ReadinessGatesNotReady"),
                ),
            ],
        ),
        history(
            "the gate's owner sets the gate False between the kubelet's sync and its write",
            LegalButWarns(RuleId::ReadyDespiteGate),
            vec![
                step("scheduler", scheduled().readiness_gate(gate)),
                step(
                    "kubelet status manager: containers ready, gate not yet written",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond_reason("Ready", "ReadinessGatesNotReady"),
                ),
                step(
                    "load-balancer controller (the gate's owner): registered",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond_reason("Ready", "ReadinessGatesNotReady")
                        .cond(gate, "True", 5),
                ),
                step(
                    "load-balancer controller: deregistered again, after the kubelet read the gate True",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond_reason("Ready", "ReadinessGatesNotReady")
                        .cond(gate, "False", 6),
                ),
                step(
                    "kubelet status manager (mergePodStatus): its cached Ready True beside the gate read afresh",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond(gate, "False", 6)
                        .cond("Ready", "True", 7),
                ),
                step(
                    "kubelet status manager: next sync, Ready False",
                    gated()
                        .cond(gate, "False", 6)
                        .cond("Ready", "False", 8)
                        .cond_reason("Ready", "ReadinessGatesNotReady"),
                ),
            ],
        ),
        history(
            "near miss: Ready turns True before the gate's owner wrote the gate",
            Violates(RuleId::ReadyWithoutContainersReady),
            vec![
                step("scheduler", scheduled().readiness_gate(gate)),
                step(
                    "kubelet status manager: containers ready, gate not yet written",
                    gated()
                        .cond("Ready", "False", 3)
                        .cond_reason("Ready", "ReadinessGatesNotReady"),
                ),
                step(
                    "faulty kubelet: Ready True, gate never written",
                    gated().cond("Ready", "False", 3).cond("Ready", "True", 6),
                ),
            ],
        ),
    ]);
}

/// Class 2: lastTransitionTime moving while the status stays.
#[test]
fn condition_time_churn_is_legal_and_still_reported() {
    use Want::*;
    let churn = LegalButWarns(RuleId::ConditionTimeChurn);
    check(vec![
        history(
            "two writers of Ready across a partition",
            churn,
            vec![
                step("kubelet status manager", running()),
                step(
                    "node lifecycle controller: node unreachable, Ready False at its own time",
                    running()
                        .cond("Ready", "False", 100)
                        .cond_reason("Ready", "NodeNotReady"),
                ),
                step(
                    "kubelet status manager: partition healed, writes its cached Ready False from t60 (probe failed)",
                    running()
                        .ready("app", false)
                        .cond("ContainersReady", "False", 60)
                        .cond("Ready", "False", 60)
                        .cond_reason("Ready", "ContainersNotReady"),
                ),
            ],
        ),
        history(
            "the status manager coalesces True -> False -> True while the API server is unreachable",
            churn,
            vec![
                step("kubelet status manager", running()),
                step(
                    "kubelet status manager: False at t50, True at t70 in its cache; only the newest is written",
                    running()
                        .cond_time("ContainersReady", 70)
                        .cond_time("Ready", 70),
                ),
            ],
        ),
    ]);
}

/// Class 3: a terminal phase with Ready or ContainersReady True.
#[test]
fn terminal_phase_ready_allows_what_podgc_leaves() {
    use Want::*;
    let rule = Violates(RuleId::TerminalPhaseReady);
    let gc_failed = || {
        running()
            .phase("Failed")
            .cond("DisruptionTarget", "True", 140)
            .cond_reason("DisruptionTarget", "DeletionByPodGC")
    };
    check(vec![
        history(
            "PodGC fails a terminating pod on an out-of-service node, phase only",
            Legal,
            vec![
                step("kubelet status manager", running()),
                step(
                    "node lifecycle controller: node unreachable, Ready False (ContainersReady stays True)",
                    running()
                        .cond("Ready", "False", 100)
                        .cond_reason("Ready", "NodeNotReady"),
                ),
                step(
                    "API server: a person deletes the pod (grace 30s)",
                    running()
                        .cond("Ready", "False", 100)
                        .cond_reason("Ready", "NodeNotReady")
                        .deleting(160),
                ),
                step(
                    "PodGC: node tainted out-of-service, phase Failed and nothing else",
                    running()
                        .cond("Ready", "False", 100)
                        .cond_reason("Ready", "NodeNotReady")
                        .deleting(160)
                        .phase("Failed"),
                ),
            ],
        ),
        history(
            "PodGC fails the pod of a deleted node, the dead kubelet's Ready stays",
            Legal,
            vec![
                step("kubelet status manager", running()),
                step(
                    "PodGC: Node gone, DisruptionTarget DeletionByPodGC and phase Failed",
                    gc_failed(),
                ),
            ],
        ),
        history(
            "the kubelet evicts the pod: Ready and ContainersReady False",
            Legal,
            vec![
                step("kubelet status manager", running()),
                step(
                    "kubelet eviction manager: disk pressure",
                    running()
                        .exit("app", 137, 2, 50)
                        .phase("Failed")
                        .reason("Evicted")
                        .cond("DisruptionTarget", "True", 50)
                        .cond_reason("DisruptionTarget", "TerminationByKubelet")
                        .kubelet_conditions(50),
                ),
            ],
        ),
        history(
            "near miss: the write that fails the pod also writes Ready True anew",
            rule,
            vec![
                step("kubelet status manager", running()),
                step(
                    "faulty writer: Failed, Ready rewritten True at t140",
                    gc_failed().cond_time("Ready", 140),
                ),
            ],
        ),
        history(
            "near miss: Succeeded with ContainersReady left True",
            rule,
            vec![
                step("kubelet status manager", running()),
                step(
                    "faulty kubelet: app exits 0, Succeeded, only Ready set False",
                    running()
                        .exit("app", 0, 2, 60)
                        .phase("Succeeded")
                        .cond("Ready", "False", 60),
                ),
            ],
        ),
        history(
            "near miss: a Failed pod's ContainersReady set back to True",
            rule,
            {
                let failed = running()
                    .policy("Never")
                    .exit("app", 1, 2, 60)
                    .phase("Failed")
                    .kubelet_conditions(60);
                vec![
                    step("kubelet status manager", running().policy("Never")),
                    step(
                        "kubelet status manager: app exits 1 under Never, pod Failed",
                        failed.clone(),
                    ),
                    step(
                        "faulty writer: ContainersReady True on the Failed pod",
                        failed.cond("ContainersReady", "True", 70),
                    ),
                ]
            },
        ),
    ]);
}

/// Class 5: restart counts when the runtime lost its containers. The count is a label of
/// each container instance, written when the kubelet creates it (`startContainer`): the
/// previous instance's count plus one, or, with no previous instance left, the count read
/// from the pod's log directory (`calcRestartCountByLogDir`), 0 without one; 0 always
/// before kubernetes/kubernetes#99748 (1.21).
#[test]
fn restart_counts_fall_only_with_a_new_container_instance() {
    use Want::*;
    let reset = LegalButWarns(RuleId::RestartCountReset);
    let before_reboot = || {
        running()
            .container_id("app", "containerd://7c41d2e9a0b3")
            .restarts("app", 3)
    };
    // After the reboot: the runtime has no container, so the kubelet reports the one it
    // knew as lost (exit 137, ContainerStatusUnknown, the count one up, no id).
    let lost = || {
        let mut p = running()
            .restarts("app", 4)
            .state("app", waiting("ContainerCreating"));
        p = p.last(
            "app",
            json!({"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                   "message": "The container could not be located when the pod was terminated"}}),
        );
        if let Some(s) = p.0["status"]["containerStatuses"][0].as_object_mut() {
            s.remove("containerID");
        }
        p.ready("app", false).kubelet_conditions(100)
    };
    let new_instance = |count: i32| {
        running()
            .container_id("app", "cri-o://e3f09b6a5d21")
            .restarts("app", count)
            .run("app", 110, true)
            .kubelet_conditions(111)
    };
    check(vec![
        history(
            "node reboot under CRI-O, /var/log/pods gone: the count starts again at 0",
            reset,
            vec![
                step("kubelet status manager", before_reboot()),
                step("kubelet after the reboot: the container is lost", lost()),
                step(
                    "kubelet: a new container, no log to count from",
                    new_instance(0),
                ),
            ],
        ),
        history(
            "kubelet 1.20 after the runtime lost its state: 0 whatever the logs",
            reset,
            vec![
                step("kubelet 1.20 status manager", before_reboot()),
                step("kubelet 1.20: a new container, count 0", new_instance(0)),
            ],
        ),
        history(
            "logs rotated away but two: the count read back from the log directory is lower",
            reset,
            vec![
                step("kubelet status manager", before_reboot()),
                step(
                    "kubelet: a new container, counted from 1.log",
                    new_instance(2),
                ),
            ],
        ),
        history(
            "near miss: the count falls on the same container instance",
            Violates(RuleId::RestartCountDecreased),
            vec![
                step("kubelet status manager", before_reboot()),
                step(
                    "faulty kubelet: count 1, same containerID",
                    before_reboot().restarts("app", 1),
                ),
            ],
        ),
    ]);
}

/// Class 4: status.startTime once set.
#[test]
fn start_time_is_kept_across_kubelet_restarts() {
    use Want::*;
    let pending = || {
        scheduled()
            .start_time(1)
            .state("app", waiting("ContainerCreating"))
            .kubelet_conditions(1)
    };
    let after_restart = |p: Pod| {
        p.cond("Ready", "False", 120)
            .cond("ContainersReady", "False", 120)
            .ready("app", false)
    };
    check(vec![
        history(
            "the status manager keeps startTime when the kubelet restarts",
            Legal,
            vec![
                step("scheduler", scheduled()),
                step(
                    "kubelet status manager: first sync sets startTime",
                    pending(),
                ),
                step("kubelet status manager", running()),
                step(
                    "kubelet after a restart (empty cache, startTime read from the API): probes not yet run",
                    after_restart(running()),
                ),
                step(
                    "kubelet status manager: ready again",
                    after_restart(running())
                        .ready("app", true)
                        .cond("ContainersReady", "True", 125)
                        .cond("Ready", "True", 125),
                ),
            ],
        ),
        history(
            "near miss: the restarted kubelet writes a new startTime",
            Violates(RuleId::StartTimeChanged),
            vec![
                step("scheduler", scheduled()),
                step(
                    "kubelet status manager: first sync sets startTime",
                    pending(),
                ),
                step("kubelet status manager", running()),
                step(
                    "faulty kubelet after a restart: startTime set again",
                    after_restart(running()).start_time(118),
                ),
            ],
        ),
    ]);
}

/// A recorder that relists from resourceVersion 0 sends states again and older states
/// (as etcd revisions: 99 is older than 100, though not as a string).
#[test]
fn stale_and_duplicate_snapshots_are_not_transitions() {
    let at = |p: Pod, rv: &str| {
        let mut p = p;
        p.0["metadata"]["resourceVersion"] = json!(rv);
        p
    };
    let crashed = running()
        .exit("app", 1, 2, 20)
        .restart("app", 20)
        .kubelet_conditions(20);
    let legal = vec![
        step("API server: create", at(scheduled(), "98")),
        step("kubelet status manager", at(running(), "99")),
        step(
            "kubelet status manager: app crashed and restarted",
            at(crashed.clone(), "100"),
        ),
        step(
            "recorder relists from the watch cache: an older state",
            at(running(), "99"),
        ),
        step(
            "recorder relists: the current state again",
            at(crashed.clone(), "100"),
        ),
        step(
            "kubelet status manager: ready again",
            at(
                crashed.clone().ready("app", true).kubelet_conditions(31),
                "101",
            ),
        ),
    ];
    let mut seq = Seq::new();
    for s in &legal {
        seq.push_as_is(s.pod.clone());
    }
    let (findings, summary) = seq.audit_summary(&RuleSettings::default(), None);
    let violations: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Violation)
        .collect();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(
        (summary.snapshots, summary.stale, summary.duplicates),
        (4, 1, 1),
        "{summary:?}"
    );

    // Near miss: the same old state under a newer resourceVersion is a real write.
    let illegal = [
        step("API server: create", at(scheduled(), "98")),
        step("kubelet status manager", at(running(), "99")),
        step(
            "kubelet status manager: app crashed and restarted",
            at(crashed.clone(), "100"),
        ),
        step(
            "faulty kubelet: restartCount back to 0, same container",
            at(crashed.clone().restarts("app", 0), "102"),
        ),
    ];
    let mut seq = Seq::new();
    for s in &illegal {
        seq.push_as_is(s.pod.clone());
    }
    let (findings, summary) = seq.audit_summary(&RuleSettings::default(), None);
    assert!(
        findings
            .iter()
            .any(|f| f.rule == RuleId::RestartCountDecreased && f.resource_version == "102"),
        "{findings:#?}"
    );
    assert_eq!((summary.stale, summary.duplicates), (0, 0));
}

/// A snapshot without a resourceVersion (a trimmed dump) is never taken for a duplicate.
#[test]
fn absent_resource_versions_order_nothing() {
    let mut seq = Seq::new();
    let bare = |p: Pod| {
        let mut p = p;
        if let Some(m) = p.0["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        p
    };
    seq.push_as_is(bare(running().restarts("app", 3)))
        .push_as_is(bare(running().restarts("app", 1)));
    let (findings, summary) = seq.audit_summary(&RuleSettings::default(), None);
    assert_eq!(summary.duplicates, 0);
    assert!(
        rules_of(&findings).contains(&RuleId::RestartCountDecreased),
        "{findings:#?}"
    );
}
