//! Every rule: a case that fires and a near miss that must not (SEMANTICS B7).

mod common;

use common::*;
use podwarden_model::{RestartBudget, RuleId, RuleSettings, Seconds, Severity};
use serde_json::json;

/// A pod running container `app` (ready) under `policy`, conditions as the kubelet writes.
fn running_pod(policy: &str) -> Pod {
    Pod::new("web")
        .policy(policy)
        .containers(&["app"])
        .phase("Running")
        .run("app", 2, true)
        .kubelet_conditions(3)
}

/// Two container instances of the same container (`containerID`s).
const ID_A: &str = "containerd://4f1c9a0e7d2b";
const ID_B: &str = "containerd://8a3e6b1f0c5d";

fn failed_never() -> Pod {
    running_pod("Never")
        .exit("app", 1, 2, 10)
        .phase("Failed")
        .kubelet_conditions(10)
}

struct Case {
    name: &'static str,
    rule: RuleId,
    fires: bool,
    snapshots: Vec<Pod>,
}

fn case(name: &'static str, rule: RuleId, fires: bool, snapshots: Vec<Pod>) -> Case {
    Case {
        name,
        rule,
        fires,
        snapshots,
    }
}

fn cases() -> Vec<Case> {
    use RuleId::*;
    let succeeded = running_pod("OnFailure")
        .exit("app", 0, 2, 10)
        .phase("Succeeded")
        .kubelet_conditions(10);
    vec![
        // terminal-phase-regression
        case(
            "Failed -> Running",
            TerminalPhaseRegression,
            true,
            vec![failed_never(), failed_never().phase("Running")],
        ),
        case(
            "Succeeded -> Failed",
            TerminalPhaseRegression,
            true,
            vec![succeeded.clone(), succeeded.clone().phase("Failed")],
        ),
        case(
            "near miss: Running -> Failed",
            TerminalPhaseRegression,
            false,
            vec![running_pod("Never"), failed_never()],
        ),
        case(
            "near miss: Failed stays Failed",
            TerminalPhaseRegression,
            false,
            vec![failed_never(), failed_never().ready("app", false)],
        ),
        // restart-against-policy
        case(
            "Never: terminated (exit 1) -> running",
            RestartAgainstPolicy,
            true,
            vec![failed_never(), failed_never().restart("app", 20)],
        ),
        case(
            "OnFailure: terminated (exit 0) -> waiting",
            RestartAgainstPolicy,
            true,
            vec![
                succeeded.clone(),
                succeeded.clone().state("app", waiting("ContainerCreating")),
            ],
        ),
        case(
            "Never init container: done -> running again",
            RestartAgainstPolicy,
            true,
            {
                let p = Pod::new("web")
                    .policy("Never")
                    .init("setup")
                    .containers(&["app"])
                    .state("setup", terminated(0, 1, 2))
                    .run("app", 3, true)
                    .phase("Running");
                vec![p.clone(), p.state("setup", common::running(30))]
            },
        ),
        case(
            "container rule: Never container under Always pod restarted",
            RestartAgainstPolicy,
            true,
            {
                let p = running_pod("Always")
                    .container_spec("app", "restartPolicy", json!("Never"))
                    .exit("app", 1, 2, 10);
                vec![p.clone(), p.restart("app", 20)]
            },
        ),
        case(
            "near miss: OnFailure restarts exit 1",
            RestartAgainstPolicy,
            false,
            {
                let p = running_pod("OnFailure").exit("app", 1, 2, 10);
                vec![p.clone(), p.restart("app", 10)]
            },
        ),
        case(
            "near miss: restartPolicyRules Restart on exit 42 under Never",
            RestartAgainstPolicy,
            false,
            {
                let p = running_pod("Never")
                .container_spec("app", "restartPolicy", json!("Never"))
                .container_spec("app", "restartPolicyRules", json!([{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]))
                .exit("app", 42, 2, 10);
                vec![p.clone(), p.restart("app", 10)]
            },
        ),
        case(
            "near miss: sidecars restart under Never",
            RestartAgainstPolicy,
            false,
            {
                let p = Pod::new("web")
                    .policy("Never")
                    .sidecar("proxy")
                    .containers(&["app"])
                    .run("proxy", 1, true)
                    .run("app", 3, true)
                    .phase("Running")
                    .exit("proxy", 1, 1, 9);
                vec![p.clone(), p.restart("proxy", 10)]
            },
        ),
        // terminal-phase-ready
        case(
            "Succeeded with Ready True",
            TerminalPhaseReady,
            true,
            vec![succeeded.clone().cond("Ready", "True", 11)],
        ),
        case(
            "Succeeded with ContainersReady True, first snapshot",
            TerminalPhaseReady,
            true,
            vec![
                running_pod("Never")
                    .exit("app", 0, 2, 10)
                    .phase("Succeeded")
                    .cond("Ready", "False", 10),
            ],
        ),
        case(
            "Failed update sets Ready and ContainersReady True",
            TerminalPhaseReady,
            true,
            vec![
                failed_never(),
                failed_never()
                    .cond("ContainersReady", "True", 20)
                    .cond("Ready", "True", 20),
            ],
        ),
        case(
            "Running -> Failed rewriting Ready True with a new time",
            TerminalPhaseReady,
            true,
            vec![
                running_pod("Always"),
                running_pod("Always").phase("Failed").cond_time("Ready", 60),
            ],
        ),
        case(
            "DeletionByPodGC does not excuse a Ready it rewrote",
            TerminalPhaseReady,
            true,
            vec![
                running_pod("Always").cond("Ready", "False", 50),
                running_pod("Always")
                    .phase("Failed")
                    .cond("DisruptionTarget", "True", 60)
                    .cond_reason("DisruptionTarget", "DeletionByPodGC")
                    .cond_time("Ready", 60),
            ],
        ),
        case(
            "near miss: Failed with Ready False",
            TerminalPhaseReady,
            false,
            vec![failed_never()],
        ),
        case(
            "near miss: PodGC failed the pod of a vanished node, Ready as its kubelet left it",
            TerminalPhaseReady,
            false,
            vec![
                running_pod("Always"),
                running_pod("Always")
                    .phase("Failed")
                    .cond("DisruptionTarget", "True", 60)
                    .cond_reason("DisruptionTarget", "DeletionByPodGC"),
            ],
        ),
        case(
            "near miss: PodGC failed a terminating pod on an out-of-service node (phase only)",
            TerminalPhaseReady,
            false,
            vec![
                running_pod("Always").deleting(40),
                running_pod("Always").deleting(40).phase("Failed"),
            ],
        ),
        case(
            "near miss: first snapshot Failed with Ready True (no earlier state to compare)",
            TerminalPhaseReady,
            false,
            vec![running_pod("Never").exit("app", 1, 2, 10).phase("Failed")],
        ),
        case(
            "near miss: Running with Ready True",
            TerminalPhaseReady,
            false,
            vec![running_pod("Never")],
        ),
        // ready-without-containers-ready
        case(
            "Ready True, ContainersReady False",
            ReadyWithoutContainersReady,
            true,
            vec![running_pod("Always").cond("ContainersReady", "False", 5)],
        ),
        case(
            "gate never written: violation",
            ReadyWithoutContainersReady,
            true,
            vec![
                running_pod("Always")
                    .readiness_gate("example.com/lb")
                    .cond("Ready", "False", 3),
                running_pod("Always").readiness_gate("example.com/lb"),
            ],
        ),
        case(
            "near miss: gate False while Ready turns True (a warning)",
            ReadyWithoutContainersReady,
            false,
            vec![
                running_pod("Always")
                    .readiness_gate("example.com/lb")
                    .cond("example.com/lb", "False", 2)
                    .cond("Ready", "False", 3),
                running_pod("Always").readiness_gate("example.com/lb").cond(
                    "example.com/lb",
                    "False",
                    2,
                ),
            ],
        ),
        // ready-despite-gate
        case(
            "gate False while Ready turns True: warning",
            ReadyDespiteGate,
            true,
            vec![
                running_pod("Always")
                    .readiness_gate("example.com/lb")
                    .cond("example.com/lb", "False", 2)
                    .cond("Ready", "False", 3),
                running_pod("Always").readiness_gate("example.com/lb").cond(
                    "example.com/lb",
                    "False",
                    2,
                ),
            ],
        ),
        case(
            "near miss: gate never written while Ready turns True (the violation)",
            ReadyDespiteGate,
            false,
            vec![
                running_pod("Always")
                    .readiness_gate("example.com/lb")
                    .cond("Ready", "False", 3),
                running_pod("Always").readiness_gate("example.com/lb"),
            ],
        ),
        case(
            "near miss: Ready stays True after the gate's owner set the gate False",
            ReadyDespiteGate,
            false,
            vec![
                running_pod("Always").readiness_gate("example.com/lb").cond(
                    "example.com/lb",
                    "True",
                    3,
                ),
                running_pod("Always").readiness_gate("example.com/lb").cond(
                    "example.com/lb",
                    "False",
                    30,
                ),
            ],
        ),
        case(
            "near miss: readiness gate True",
            ReadyWithoutContainersReady,
            false,
            vec![
                running_pod("Always")
                    .readiness_gate("example.com/lb")
                    .cond("Ready", "False", 3),
                running_pod("Always").readiness_gate("example.com/lb").cond(
                    "example.com/lb",
                    "True",
                    3,
                ),
            ],
        ),
        case(
            "near miss: the gate's owner set it False, Ready stays True until the kubelet reconciles",
            ReadyWithoutContainersReady,
            false,
            vec![
                running_pod("Always").readiness_gate("example.com/lb").cond(
                    "example.com/lb",
                    "True",
                    3,
                ),
                running_pod("Always").readiness_gate("example.com/lb").cond(
                    "example.com/lb",
                    "False",
                    30,
                ),
            ],
        ),
        case(
            "near miss: ContainersReady absent (a kubelet before 1.12)",
            ReadyWithoutContainersReady,
            false,
            vec![running_pod("Always").drop_cond("ContainersReady")],
        ),
        case(
            "near miss: Ready False, ContainersReady True (node not ready)",
            ReadyWithoutContainersReady,
            false,
            vec![running_pod("Always").cond("Ready", "False", 50)],
        ),
        // containers-ready-mismatch
        case(
            "ContainersReady True, container not ready",
            ContainersReadyMismatch,
            true,
            vec![running_pod("Always").ready("app", false)],
        ),
        case(
            "ContainersReady True, sidecar without status",
            ContainersReadyMismatch,
            true,
            {
                let p = Pod::new("web")
                    .sidecar("proxy")
                    .containers(&["app"])
                    .run("proxy", 1, true)
                    .run("app", 2, true)
                    .phase("Running")
                    .kubelet_conditions(3);
                vec![p.drop_status("proxy")]
            },
        ),
        case(
            "near miss: regular init container not ready",
            ContainersReadyMismatch,
            false,
            {
                let p = Pod::new("web")
                    .init("setup")
                    .containers(&["app"])
                    .state("setup", terminated(0, 1, 2))
                    .run("app", 3, true)
                    .phase("Running")
                    .kubelet_conditions(4);
                vec![p]
            },
        ),
        // succeeded-with-failed-container
        case(
            "Succeeded with exit 1",
            SucceededWithFailedContainer,
            true,
            vec![
                running_pod("Never")
                    .exit("app", 1, 2, 10)
                    .phase("Succeeded")
                    .kubelet_conditions(10),
            ],
        ),
        case(
            "Succeeded with a running container",
            SucceededWithFailedContainer,
            true,
            vec![
                running_pod("Never")
                    .phase("Succeeded")
                    .cond("Ready", "False", 10)
                    .cond("ContainersReady", "False", 10)
                    .ready("app", false),
            ],
        ),
        case(
            "near miss: Succeeded, sidecar killed with 137",
            SucceededWithFailedContainer,
            false,
            {
                let p = Pod::new("web")
                    .policy("Never")
                    .sidecar("proxy")
                    .containers(&["app"])
                    .exit("proxy", 137, 1, 11)
                    .exit("app", 0, 2, 10)
                    .phase("Succeeded")
                    .kubelet_conditions(11);
                vec![p]
            },
        ),
        // condition-time-churn
        case(
            "Ready stays True, time moves",
            ConditionTimeChurn,
            true,
            vec![
                running_pod("Always"),
                running_pod("Always").cond_time("Ready", 40),
            ],
        ),
        case(
            "near miss: Ready flips, time moves",
            ConditionTimeChurn,
            false,
            vec![
                running_pod("Always"),
                running_pod("Always").cond("Ready", "False", 40),
            ],
        ),
        case(
            "near miss: PodScheduled time moves (scheduler-owned)",
            ConditionTimeChurn,
            false,
            vec![
                running_pod("Always"),
                running_pod("Always").cond_time("PodScheduled", 40),
            ],
        ),
        // restart-count-decreased, restart-count-reset
        case(
            "same container, count down: violation",
            RestartCountDecreased,
            true,
            vec![
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 3),
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 1),
            ],
        ),
        case(
            "near miss: new container after a runtime wipe, 3 -> 0 (a warning)",
            RestartCountDecreased,
            false,
            vec![
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 3),
                running_pod("Always").container_id("app", ID_B),
            ],
        ),
        case(
            "near miss: containerID missing (a warning)",
            RestartCountDecreased,
            false,
            vec![
                running_pod("Always").restarts("app", 3),
                running_pod("Always").restarts("app", 1),
            ],
        ),
        case(
            "near miss: new uid under the same name starts at 0",
            RestartCountDecreased,
            false,
            vec![
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 3),
                running_pod("Always")
                    .uid("uid-web-2")
                    .container_id("app", ID_A),
            ],
        ),
        case(
            "new container after a runtime wipe, 3 -> 0: warning",
            RestartCountReset,
            true,
            vec![
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 3),
                running_pod("Always").container_id("app", ID_B),
            ],
        ),
        case(
            "containerID missing: warning",
            RestartCountReset,
            true,
            vec![
                running_pod("Always").restarts("app", 3),
                running_pod("Always").restarts("app", 1),
            ],
        ),
        case(
            "near miss: same container, count down (the violation)",
            RestartCountReset,
            false,
            vec![
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 3),
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 1),
            ],
        ),
        case(
            "near miss: new container, count up",
            RestartCountReset,
            false,
            vec![
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 3),
                running_pod("Always")
                    .container_id("app", ID_A)
                    .restarts("app", 3)
                    .exit("app", 1, 2, 10)
                    .restart("app", 11),
            ],
        ),
        // start-time-changed
        case(
            "startTime moves after it was set",
            StartTimeChanged,
            true,
            vec![
                running_pod("Always").start_time(1),
                running_pod("Always").start_time(40),
            ],
        ),
        case(
            "near miss: startTime set for the first time",
            StartTimeChanged,
            false,
            vec![
                Pod::new("web").containers(&["app"]),
                running_pod("Always").start_time(1),
            ],
        ),
        case(
            "near miss: startTime absent from a trimmed snapshot",
            StartTimeChanged,
            false,
            vec![
                running_pod("Always").start_time(1),
                running_pod("Always"),
                running_pod("Always").start_time(1),
            ],
        ),
        // running-unbound
        case(
            "phase Running with no nodeName",
            RunningUnbound,
            true,
            vec![running_pod("Always").unbound()],
        ),
        case(
            "a container running with no nodeName, phase Pending",
            RunningUnbound,
            true,
            vec![
                Pod::new("web")
                    .containers(&["app"])
                    .run("app", 2, false)
                    .unbound(),
            ],
        ),
        case(
            "near miss: Pending and unscheduled",
            RunningUnbound,
            false,
            vec![Pod::new("web").containers(&["app"]).unbound()],
        ),
        case(
            "near miss: Running with a trimmed spec (no containers listed)",
            RunningUnbound,
            false,
            vec![Pod(json!({
                "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "resourceVersion": "7"},
                "status": {"phase": "Running"}
            }))],
        ),
        case(
            "near miss: Running and bound",
            RunningUnbound,
            false,
            vec![running_pod("Always")],
        ),
        // phase-mismatch
        case(
            "Never, all exited, still Running",
            PhaseMismatch,
            true,
            vec![
                running_pod("Never")
                    .exit("app", 1, 2, 10)
                    .kubelet_conditions(10),
            ],
        ),
        case(
            "near miss: Always, exited, Running (restarting)",
            PhaseMismatch,
            false,
            vec![
                running_pod("Always")
                    .exit("app", 1, 2, 10)
                    .kubelet_conditions(10),
            ],
        ),
        case(
            "near miss: Running with no container statuses (trimmed)",
            PhaseMismatch,
            false,
            vec![running_pod("Never").drop_status_field("containerStatuses")],
        ),
        case(
            "near miss: Failed with a trimmed spec (no containers)",
            PhaseMismatch,
            false,
            vec![Pod(json!({
                "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "resourceVersion": "7"},
                "spec": {"restartPolicy": "Never", "nodeName": "node-1"},
                "status": {"phase": "Failed", "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": t(2)}}}
                ]}
            }))],
        ),
        case(
            "near miss: evicted Always pod is Failed",
            PhaseMismatch,
            false,
            vec![
                running_pod("Always")
                    .exit("app", 137, 2, 10)
                    .phase("Failed")
                    .reason("Evicted")
                    .kubelet_conditions(10),
            ],
        ),
        // unknown-disruption-reason
        case(
            "DisruptionTarget reason NewFancyReason",
            UnknownDisruptionReason,
            true,
            vec![
                running_pod("Always")
                    .cond("DisruptionTarget", "True", 9)
                    .cond_reason("DisruptionTarget", "NewFancyReason"),
            ],
        ),
        case(
            "near miss: DeletionByPodGC",
            UnknownDisruptionReason,
            false,
            vec![
                running_pod("Always")
                    .cond("DisruptionTarget", "True", 9)
                    .cond_reason("DisruptionTarget", "DeletionByPodGC"),
            ],
        ),
        // phase-unknown
        case(
            "phase Unknown",
            PhaseUnknown,
            true,
            vec![running_pod("Always").phase("Unknown")],
        ),
        case(
            "near miss: phase Running",
            PhaseUnknown,
            false,
            vec![running_pod("Always")],
        ),
        // failed-with-running-containers
        case(
            "PodGC marks a lost node's pod Failed",
            FailedWithRunningContainers,
            true,
            vec![
                running_pod("Always")
                    .phase("Failed")
                    .cond("DisruptionTarget", "True", 60)
                    .cond_reason("DisruptionTarget", "DeletionByPodGC"),
            ],
        ),
        case(
            "near miss: Failed, all exited",
            FailedWithRunningContainers,
            false,
            vec![failed_never()],
        ),
        // restart-under-never
        case(
            "Never with restartCount 1",
            RestartUnderNever,
            true,
            vec![running_pod("Never").restarts("app", 1)],
        ),
        case(
            "near miss: OnFailure with restartCount 1",
            RestartUnderNever,
            false,
            vec![running_pod("OnFailure").restarts("app", 1)],
        ),
        // restart-faster-than-backoff
        case(
            "second restart 2s after the exit",
            RestartFasterThanBackoff,
            true,
            {
                let p = running_pod("Always")
                    .restarts("app", 1)
                    .run("app", 20, true)
                    .exit("app", 1, 20, 30);
                vec![p.clone(), p.restart("app", 32)]
            },
        ),
        case(
            "near miss: first restart is immediate",
            RestartFasterThanBackoff,
            false,
            {
                let p = running_pod("Always").exit("app", 1, 2, 10);
                vec![p.clone(), p.restart("app", 10)]
            },
        ),
        case(
            "near miss: second restart after 10s",
            RestartFasterThanBackoff,
            false,
            {
                let p = running_pod("Always")
                    .restarts("app", 1)
                    .run("app", 20, true)
                    .exit("app", 1, 20, 30);
                vec![p.clone(), p.restart("app", 40)]
            },
        ),
        case(
            "near miss: back-off reset after a 10-minute run",
            RestartFasterThanBackoff,
            false,
            {
                let p = running_pod("Always")
                    .restarts("app", 4)
                    .run("app", 20, true)
                    .exit("app", 1, 20, 700);
                vec![p.clone(), p.restart("app", 700)]
            },
        ),
        // stuck-pending
        case(
            "Pending 11 minutes, unschedulable",
            StuckPending,
            true,
            vec![
                Pod::new("web")
                    .containers(&["app"])
                    .cond("PodScheduled", "False", 0)
                    .cond_reason("PodScheduled", "Unschedulable"),
                Pod::new("web")
                    .containers(&["app"])
                    .cond("PodScheduled", "False", 0)
                    .cond_reason("PodScheduled", "Unschedulable")
                    .cond("Other", "True", 660),
            ],
        ),
        case(
            "Pending 11 minutes, seen once, the clock moved by another pod",
            StuckPending,
            true,
            vec![
                Pod::new("web").containers(&["app"]),
                running_pod("Always")
                    .uid("uid-other")
                    .cond("Other", "True", 660),
            ],
        ),
        case("back to Pending for 11 minutes", StuckPending, true, {
            let back = running_pod("Always")
                .phase("Pending")
                .state("app", waiting("ContainerCreating"))
                .ready("app", false)
                .kubelet_conditions(100);
            vec![
                running_pod("Always"),
                back.clone(),
                back.cond("Other", "True", 760),
            ]
        }),
        case(
            "near miss: Pending 9 minutes",
            StuckPending,
            false,
            vec![
                Pod::new("web")
                    .containers(&["app"])
                    .cond("Other", "True", 540),
            ],
        ),
        case(
            "near miss: back to Pending 9 minutes ago, created 20 minutes ago",
            StuckPending,
            false,
            {
                let back = running_pod("Always")
                    .phase("Pending")
                    .state("app", waiting("ContainerCreating"))
                    .ready("app", false)
                    .kubelet_conditions(660);
                vec![
                    running_pod("Always").cond("Other", "True", 600),
                    back.clone(),
                    back.cond("Other", "True", 1200),
                ]
            },
        ),
        // stuck-terminating (default: 5 minutes after the deletion deadline)
        case(
            "still Running 6 minutes after the deletion deadline",
            StuckTerminating,
            true,
            vec![
                running_pod("Always").deleting(130),
                running_pod("Always")
                    .deleting(130)
                    .cond("Ready", "False", 500),
            ],
        ),
        case(
            "deadline passed while no snapshot came, found when another pod moves the clock",
            StuckTerminating,
            true,
            vec![
                running_pod("Always").deleting(130),
                running_pod("Always")
                    .uid("uid-other")
                    .cond("Other", "True", 440),
            ],
        ),
        case(
            "near miss: 4 minutes after the deletion deadline",
            StuckTerminating,
            false,
            vec![
                running_pod("Always").deleting(130),
                running_pod("Always")
                    .deleting(130)
                    .cond("Ready", "False", 370),
            ],
        ),
        case(
            "near miss: a long grace period, the deadline is ahead",
            StuckTerminating,
            false,
            vec![
                running_pod("Always").deleting(3600),
                running_pod("Always")
                    .uid("uid-other")
                    .cond("Other", "True", 900),
            ],
        ),
        // restart-budget-exceeded (default budget: 5 per hour)
        case(
            "6 restarts within the hour",
            RestartBudgetExceeded,
            true,
            crash_loop(6, 20),
        ),
        case(
            "near miss: 5 restarts within the hour",
            RestartBudgetExceeded,
            false,
            crash_loop(5, 20),
        ),
        case(
            "near miss: 6 restarts over 3 hours",
            RestartBudgetExceeded,
            false,
            crash_loop(6, 1800),
        ),
        // oom-killed
        case(
            "OOMKilled",
            OomKilled,
            true,
            vec![
                running_pod("Always"),
                running_pod("Always").state("app", oom(2, 10)),
            ],
        ),
        case(
            "near miss: exit 137 without OOMKilled",
            OomKilled,
            false,
            vec![
                running_pod("Always"),
                running_pod("Always").exit("app", 137, 2, 10),
            ],
        ),
    ]
}

/// `n` restarts of `app`, each run lasting `run_secs`, with a 10s+ back-off.
fn crash_loop(n: i32, run_secs: i64) -> Vec<Pod> {
    let mut out = vec![running_pod("Always")];
    let mut start = 2;
    for _ in 0..n {
        let exited = start + run_secs;
        let next_start = exited + 300;
        let p = out
            .last()
            .cloned()
            .expect("a snapshot")
            .exit("app", 1, start, exited);
        out.push(p.clone());
        out.push(p.restart("app", next_start));
        start = next_start;
    }
    out
}

#[test]
fn each_rule_fires_and_each_near_miss_does_not() {
    let mut failures = Vec::new();
    for c in cases() {
        let mut seq = Seq::new();
        for s in &c.snapshots {
            seq.push(s.clone());
        }
        let findings = seq.audit();
        let fired = findings.iter().any(|f| f.rule == c.rule);
        if fired != c.fires {
            failures.push(format!(
                "{} [{}]: want fires={}, got {:#?}",
                c.name, c.rule, c.fires, findings
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_rule_has_a_firing_case_and_a_near_miss() {
    let cases = cases();
    for &rule in RuleId::ALL {
        assert!(
            cases.iter().any(|c| c.rule == rule && c.fires),
            "{rule}: no firing case"
        );
        assert!(
            cases.iter().any(|c| c.rule == rule && !c.fires),
            "{rule}: no near miss"
        );
    }
}

#[test]
fn state_rules_report_when_they_appear_not_on_every_snapshot() {
    let bad = running_pod("Never")
        .exit("app", 0, 2, 10)
        .phase("Succeeded");
    let mut seq = Seq::new();
    seq.push(bad.clone())
        .push(bad.clone())
        .push(bad.clone().kubelet_conditions(12));
    seq.push(
        bad.clone()
            .cond("Ready", "True", 13)
            .cond("ContainersReady", "True", 13),
    );
    let n = seq
        .audit()
        .iter()
        .filter(|f| f.rule == RuleId::TerminalPhaseReady)
        .count();
    assert_eq!(n, 2, "fires on entry, stops, fires again on re-entry");
}

#[test]
fn messages_say_what_happened() {
    let mut seq = Seq::new();
    seq.push(failed_never())
        .push(failed_never().restart("app", 20));
    let f = seq
        .audit()
        .into_iter()
        .find(|f| f.rule == RuleId::RestartAgainstPolicy)
        .expect("restart-against-policy");
    assert_eq!(
        f.message,
        "container app was restarted although restartPolicy is Never: terminated (exit 1) -> running"
    );
    assert_eq!(
        (f.namespace.as_str(), f.pod.as_str(), f.uid.as_str()),
        ("default", "web", "uid-web")
    );
    assert_eq!(f.resource_version, "2");
    assert_eq!(f.container.as_deref(), Some("app"));
    assert_eq!(f.expected.as_deref(), Some("terminated"));
    assert_eq!(f.observed.as_deref(), Some("running"));
}

#[test]
fn disabled_rules_and_policy_settings_apply() {
    let mut seq = Seq::new();
    seq.push(failed_never())
        .push(failed_never().restart("app", 20).phase("Running"));
    let settings = RuleSettings {
        disabled: [RuleId::RestartAgainstPolicy].into_iter().collect(),
        ..RuleSettings::default()
    };
    let rules = rules_of(&seq.audit_with(&settings));
    assert!(!rules.contains(&RuleId::RestartAgainstPolicy));
    assert!(rules.contains(&RuleId::TerminalPhaseRegression));

    let mut loop3 = Seq::new();
    for p in crash_loop(3, 20) {
        loop3.push(p);
    }
    let tight = RuleSettings {
        restart_budget: RestartBudget {
            count: 2,
            window: Seconds(3600),
        },
        ..RuleSettings::default()
    };
    assert!(rules_of(&loop3.audit_with(&tight)).contains(&RuleId::RestartBudgetExceeded));
    assert!(!rules_of(&loop3.audit()).contains(&RuleId::RestartBudgetExceeded));

    let pending = Pod::new("web")
        .containers(&["app"])
        .cond("Other", "True", 200);
    let mut p = Seq::new();
    p.push(pending);
    let quick = RuleSettings {
        stuck_pending_after: Seconds(120),
        ..RuleSettings::default()
    };
    assert!(rules_of(&p.audit_with(&quick)).contains(&RuleId::StuckPending));
}

/// `next_due`: when a pod next needs evaluation with no new event (the live
/// controller's timer): the earliest deadline of an enabled rule after `now`.
#[test]
fn next_due_is_the_earliest_deadline_ahead() {
    use podwarden_model::{Timestamp, next_due};
    let at = |s: i64| Timestamp(T0 + s);
    let d = RuleSettings::default();
    let pending = Pod::new("web").containers(&["app"]).view();
    assert_eq!(
        next_due(&pending, None, &d, at(0)),
        Some(at(600)),
        "from creation"
    );
    assert_eq!(
        next_due(&pending, Some(at(100)), &d, at(100)),
        Some(at(700)),
        "from the entry into Pending"
    );
    assert_eq!(
        next_due(&pending, None, &d, at(600)),
        None,
        "already passed"
    );

    // Pending and deleted: stuck-terminating first (deadline 130 + 5m), then stuck-pending.
    let deleted = Pod::new("web").containers(&["app"]).deleting(130).view();
    assert_eq!(next_due(&deleted, None, &d, at(0)), Some(at(430)));
    assert_eq!(next_due(&deleted, None, &d, at(430)), Some(at(600)));
    assert_eq!(next_due(&deleted, None, &d, at(600)), None);
    let no_terminating = RuleSettings {
        disabled: [RuleId::StuckTerminating].into_iter().collect(),
        stuck_terminating_after: Seconds(60),
        ..RuleSettings::default()
    };
    assert_eq!(
        next_due(&deleted, None, &no_terminating, at(0)),
        Some(at(600))
    );
    let quick = RuleSettings {
        stuck_terminating_after: Seconds(60),
        ..RuleSettings::default()
    };
    assert_eq!(next_due(&deleted, None, &quick, at(0)), Some(at(190)));

    // Running and not deleted: time alone changes nothing.
    assert_eq!(
        next_due(&running_pod("Always").view(), None, &d, at(0)),
        None
    );
}

/// The stuck-terminating message says what releases the pod.
#[test]
fn stuck_terminating_says_what_would_release_the_pod() {
    let mut seq = Seq::new();
    seq.push(
        running_pod("Always")
            .deleting(130)
            .finalizers(&["example.com/cleanup"]),
    )
    .push(
        running_pod("Always")
            .deleting(130)
            .finalizers(&["example.com/cleanup"])
            .cond("Ready", "False", 500),
    );
    let f = seq
        .audit()
        .into_iter()
        .find(|f| f.rule == RuleId::StuckTerminating)
        .expect("stuck-terminating");
    assert_eq!(
        f.message,
        "pod is still present 6m10s after its deletion deadline 2026-08-01T10:02:10Z (limit 5m); \
         released when node node-1 returns, when the Node node-1 is deleted, or when it is tainted \
         node.kubernetes.io/out-of-service; finalizers still to remove: example.com/cleanup"
    );
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.resource_version, "2");

    let mut unbound = Seq::new();
    unbound.push(
        Pod::new("web")
            .containers(&["app"])
            .unbound()
            .deleting(10)
            .cond("Other", "True", 400),
    );
    let f = unbound
        .audit()
        .into_iter()
        .find(|f| f.rule == RuleId::StuckTerminating)
        .expect("stuck-terminating");
    assert!(
        f.message
            .ends_with("never scheduled: PodGC removes unscheduled terminating pods")
    );
}

/// The README's rule reference has a row for every rule id, with its severity.
#[test]
fn readme_lists_every_rule_with_its_severity() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for &rule in RuleId::ALL {
        let row = rows
            .iter()
            .find(|l| l.starts_with(&format!("| `{}` |", rule.as_str())))
            .unwrap_or_else(|| panic!("README has no row for {rule}"));
        assert!(
            row.contains(&format!("| {} |", rule.severity().as_str())),
            "{rule}: {row}"
        );
    }
}

/// Which rules of `pair` the snapshots give, with their severities, in rule order.
fn fired_among(snapshots: &[Pod], pair: [RuleId; 2]) -> Vec<(RuleId, Severity)> {
    let mut seq = Seq::new();
    for s in snapshots {
        seq.push(s.clone());
    }
    let mut out: Vec<(RuleId, Severity)> = seq
        .audit()
        .iter()
        .filter(|f| pair.contains(&f.rule))
        .map(|f| (f.rule, f.severity))
        .collect();
    out.sort();
    out
}

/// A restartCount that falls is a violation only for one container instance (the count
/// is a label of the instance, fixed at its creation); with another instance, or no
/// containerID to tell, the runtime lost its state and the kubelet counted again.
#[test]
fn restart_count_falls_are_split_by_container_instance() {
    use RuleId::{RestartCountDecreased, RestartCountReset};
    use Severity::{Violation, Warning};
    let pod = |id: Option<&str>, count: i32| {
        let p = running_pod("Always").restarts("app", count);
        match id {
            Some(id) => p.container_id("app", id),
            None => p,
        }
    };
    let violation = vec![(RestartCountDecreased, Violation)];
    let warning = vec![(RestartCountReset, Warning)];
    let cases = [
        (
            "same container, count down: violation",
            [pod(Some(ID_A), 3), pod(Some(ID_A), 2)],
            violation.clone(),
        ),
        (
            "new container after a runtime wipe, 3 -> 0: warning",
            [pod(Some(ID_A), 3), pod(Some(ID_B), 0)],
            warning.clone(),
        ),
        (
            "new container counted from the log directory, 3 -> 2: warning",
            [pod(Some(ID_A), 3), pod(Some(ID_B), 2)],
            warning.clone(),
        ),
        (
            "containerID missing: warning",
            [pod(None, 3), pod(None, 0)],
            warning.clone(),
        ),
        (
            "containerID missing before: warning",
            [pod(None, 3), pod(Some(ID_A), 0)],
            warning.clone(),
        ),
        (
            "containerID missing now: warning",
            [pod(Some(ID_A), 3), pod(None, 1)],
            warning.clone(),
        ),
        (
            "containerID empty on both sides: warning",
            [pod(Some(""), 3), pod(Some(""), 1)],
            warning.clone(),
        ),
        (
            "same container, count unchanged: nothing",
            [pod(Some(ID_A), 3), pod(Some(ID_A), 3)],
            vec![],
        ),
        (
            "new container, count up: nothing",
            [pod(Some(ID_A), 3), pod(Some(ID_B), 4)],
            vec![],
        ),
    ];
    let mut failures = Vec::new();
    for (name, snapshots, want) in cases {
        let got = fired_among(&snapshots, [RestartCountDecreased, RestartCountReset]);
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Ready turning True beside a gate that is not True: the status manager writes the
/// kubelet's cached Ready beside the gates it reads afresh, so a gate its owner set False
/// in between is legal (a warning); a gate never written cannot have been seen True.
#[test]
fn ready_turning_true_beside_a_gate_is_split_by_whether_the_gate_was_written() {
    use RuleId::{ReadyDespiteGate, ReadyWithoutContainersReady};
    use Severity::{Violation, Warning};
    const GATE: &str = "example.com/lb";
    let gated = || running_pod("Always").readiness_gate(GATE);
    let not_ready = |p: Pod| p.cond("Ready", "False", 1).cond_time("Ready", 1);
    let violation = vec![(ReadyWithoutContainersReady, Violation)];
    let warning = vec![(ReadyDespiteGate, Warning)];
    let cases = [
        (
            "gate False while Ready turns True: warning",
            vec![
                not_ready(gated().cond(GATE, "False", 2)),
                gated().cond(GATE, "False", 2),
            ],
            warning.clone(),
        ),
        (
            "gate Unknown while Ready turns True: warning",
            vec![
                not_ready(gated().cond(GATE, "Unknown", 2)),
                gated().cond(GATE, "Unknown", 2),
            ],
            warning.clone(),
        ),
        (
            "gate True, then removed while Ready turns True: warning",
            vec![not_ready(gated().cond(GATE, "True", 2)), gated()],
            warning.clone(),
        ),
        (
            "gate never written: violation",
            vec![not_ready(gated()), gated()],
            violation.clone(),
        ),
        (
            "ContainersReady False and gate False while Ready turns True: both",
            vec![
                not_ready(gated().cond(GATE, "False", 2)),
                gated()
                    .cond(GATE, "False", 2)
                    .cond("ContainersReady", "False", 3),
            ],
            vec![
                (ReadyWithoutContainersReady, Violation),
                (ReadyDespiteGate, Warning),
            ],
        ),
        (
            "gate True while Ready turns True: nothing",
            vec![
                not_ready(gated().cond(GATE, "True", 2)),
                gated().cond(GATE, "True", 2),
            ],
            vec![],
        ),
        (
            "Ready stays True after the gate's owner set it False: nothing (not definite)",
            vec![
                gated().cond(GATE, "True", 2),
                gated().cond(GATE, "False", 30),
            ],
            vec![],
        ),
        (
            "first snapshot, Ready True beside gate False: nothing (no turn seen)",
            vec![gated().cond(GATE, "False", 2)],
            vec![],
        ),
    ];
    let mut failures = Vec::new();
    for (name, snapshots, want) in cases {
        let got = fired_among(&snapshots, [ReadyWithoutContainersReady, ReadyDespiteGate]);
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The two new findings' messages say which case they are.
#[test]
fn split_rules_say_why_in_their_messages() {
    let message = |snapshots: &[Pod], rule: RuleId| {
        let mut seq = Seq::new();
        for s in snapshots {
            seq.push(s.clone());
        }
        seq.audit()
            .into_iter()
            .find(|f| f.rule == rule)
            .unwrap_or_else(|| panic!("{rule}"))
            .message
    };
    let pod = |id: &str, n: i32| {
        running_pod("Always")
            .container_id("app", id)
            .restarts("app", n)
    };
    assert_eq!(
        message(&[pod(ID_A, 3), pod(ID_A, 2)], RuleId::RestartCountDecreased),
        "restartCount of container app went down with the same containerID: 3 -> 2"
    );
    assert!(
        message(&[pod(ID_A, 3), pod(ID_B, 0)], RuleId::RestartCountReset).starts_with(
            "restartCount of container app went down with a new container instance: 3 -> 0 (legal when"
        )
    );
    assert!(
        message(&[pod("", 3), pod("", 0)], RuleId::RestartCountReset).starts_with(
            "restartCount of container app went down without a containerID on both sides"
        )
    );
    let gated = || running_pod("Always").readiness_gate("example.com/lb");
    assert!(
        message(
            &[
                gated()
                    .cond("example.com/lb", "False", 2)
                    .cond("Ready", "False", 3),
                gated().cond("example.com/lb", "False", 2),
            ],
            RuleId::ReadyDespiteGate,
        )
        .starts_with("Ready became True while readiness gate example.com/lb is False (legal when")
    );
}
