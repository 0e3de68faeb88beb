//! Expected-phase cases written from SEMANTICS B1 (getPhase) and B2 (container-level
//! restart rules): init containers, sidecars, container rules, terminal pods.

mod common;

use common::*;
use podwarden_model::{Phase, expected_phase};
use serde_json::json;

fn rules_restart_on(codes: &[i32]) -> serde_json::Value {
    json!([{"action": "Restart", "exitCodes": {"operator": "In", "values": codes}}])
}

#[test]
fn expected_phase_follows_get_phase() {
    use Phase::*;
    let cases: Vec<(&str, Pod, Phase)> = vec![
        (
            "just created, no container status",
            Pod::new("p").containers(&["app"]).drop_status("app"),
            Pending,
        ),
        (
            "containers being created",
            Pod::new("p").containers(&["app"]),
            Pending,
        ),
        (
            "regular init container running",
            Pod::new("p")
                .init("setup")
                .containers(&["app"])
                .run("setup", 1, false),
            Pending,
        ),
        (
            "init container failed under Never",
            Pod::new("p")
                .policy("Never")
                .init("setup")
                .containers(&["app"])
                .state("setup", terminated(1, 1, 2)),
            Failed,
        ),
        (
            "init container failed under OnFailure: restarts",
            Pod::new("p")
                .policy("OnFailure")
                .init("setup")
                .containers(&["app"])
                .state("setup", waiting("CrashLoopBackOff"))
                .last("setup", terminated(1, 1, 2)),
            Pending,
        ),
        (
            "init container failed under Always: restarts",
            Pod::new("p")
                .init("setup")
                .containers(&["app"])
                .state("setup", terminated(1, 1, 2)),
            Pending,
        ),
        (
            "init container done, app running",
            Pod::new("p")
                .policy("Never")
                .init("setup")
                .containers(&["app"])
                .state("setup", terminated(0, 1, 2))
                .run("app", 3, true),
            Running,
        ),
        (
            "B2: init container restartPolicy OnFailure under a Never pod restarts",
            Pod::new("p")
                .policy("Never")
                .init("setup")
                .containers(&["app"])
                .container_spec("setup", "restartPolicy", json!("OnFailure"))
                .state("setup", terminated(1, 1, 2)),
            Pending,
        ),
        (
            "B2: init container rule restarts exit 42 under a Never pod",
            Pod::new("p")
                .policy("Never")
                .init("setup")
                .containers(&["app"])
                .container_spec("setup", "restartPolicy", json!("Never"))
                .container_spec("setup", "restartPolicyRules", rules_restart_on(&[42]))
                .state("setup", terminated(42, 1, 2)),
            Pending,
        ),
        (
            "B2: init container rule does not match exit 1: Failed",
            Pod::new("p")
                .policy("Never")
                .init("setup")
                .containers(&["app"])
                .container_spec("setup", "restartPolicy", json!("Never"))
                .container_spec("setup", "restartPolicyRules", rules_restart_on(&[42]))
                .state("setup", terminated(1, 1, 2)),
            Failed,
        ),
        (
            "sidecar running, not started, pod not initialized",
            Pod::new("p")
                .sidecar("proxy")
                .containers(&["app"])
                .state("proxy", running(1))
                .started("proxy", false),
            Pending,
        ),
        (
            "sidecar restarting after the pod initialized",
            Pod::new("p")
                .sidecar("proxy")
                .containers(&["app"])
                .state("proxy", running(30))
                .started("proxy", false)
                .run("app", 3, true)
                .cond("Initialized", "True", 3),
            Running,
        ),
        (
            "sidecar waiting with no termination keeps the pod Pending",
            Pod::new("p")
                .sidecar("proxy")
                .containers(&["app"])
                .run("app", 3, true)
                .cond("Initialized", "True", 3),
            Pending,
        ),
        (
            "terminated sidecar is ignored",
            Pod::new("p")
                .policy("Never")
                .sidecar("proxy")
                .containers(&["app"])
                .state("proxy", terminated(1, 1, 5))
                .run("app", 3, true),
            Running,
        ),
        (
            "sidecar ignores the pod's Never: crash-looping sidecar, app done",
            Pod::new("p")
                .policy("Never")
                .sidecar("proxy")
                .containers(&["app"])
                .state("proxy", waiting("CrashLoopBackOff"))
                .last("proxy", terminated(1, 1, 5))
                .state("app", terminated(0, 3, 9)),
            Succeeded,
        ),
        (
            "crash loop under Always",
            Pod::new("p")
                .containers(&["app"])
                .state("app", waiting("CrashLoopBackOff"))
                .last("app", terminated(1, 2, 5))
                .restarts("app", 3),
            Running,
        ),
        (
            "OnFailure: one failed (restarting), one done",
            Pod::new("p")
                .policy("OnFailure")
                .containers(&["app", "job"])
                .state("app", terminated(1, 2, 5))
                .state("job", terminated(0, 2, 4)),
            Running,
        ),
        (
            "OnFailure: all done with exit 0",
            Pod::new("p")
                .policy("OnFailure")
                .containers(&["app", "job"])
                .state("app", terminated(0, 2, 5))
                .state("job", terminated(0, 2, 4)),
            Succeeded,
        ),
        (
            "Never: all exited, one failed",
            Pod::new("p")
                .policy("Never")
                .containers(&["app", "job"])
                .state("app", terminated(1, 2, 5))
                .state("job", terminated(0, 2, 4)),
            Failed,
        ),
        (
            "Always: all exited with 0, restarting",
            Pod::new("p")
                .containers(&["app"])
                .state("app", terminated(0, 2, 5)),
            Running,
        ),
        (
            "B2: container restartPolicy Never under an Always pod",
            Pod::new("p")
                .containers(&["app"])
                .container_spec("app", "restartPolicy", json!("Never"))
                .state("app", terminated(1, 2, 5)),
            Failed,
        ),
        (
            "B2: container rule restarts exit 3 under a Never pod",
            Pod::new("p")
                .policy("Never")
                .containers(&["app"])
                .container_spec("app", "restartPolicy", json!("Never"))
                .container_spec("app", "restartPolicyRules", rules_restart_on(&[3]))
                .state("app", terminated(3, 2, 5)),
            Running,
        ),
        (
            "one running, one without status",
            Pod::new("p")
                .containers(&["app", "other"])
                .run("app", 2, true)
                .drop_status("other"),
            Pending,
        ),
        (
            "terminal (being deleted), Always, all exited 0",
            Pod::new("p")
                .containers(&["app"])
                .state("app", terminated(0, 2, 5))
                .deleting(4),
            Succeeded,
        ),
        (
            "terminal (being deleted), Always, exit 143",
            Pod::new("p")
                .containers(&["app"])
                .state("app", terminated(143, 2, 5))
                .deleting(4),
            Failed,
        ),
        (
            "deletion just marked while the container backs off: the kubelet's Running stands",
            Pod::new("p")
                .containers(&["app"])
                .state("app", waiting("CrashLoopBackOff"))
                .last("app", terminated(1, 2, 5))
                .phase("Running")
                .deleting(6),
            Running,
        ),
        (
            "deletion marked, container backs off, API says Pending: the terminal phase is due",
            Pod::new("p")
                .containers(&["app"])
                .state("app", waiting("CrashLoopBackOff"))
                .last("app", terminated(1, 2, 5))
                .deleting(6),
            Failed,
        ),
        (
            "evicted pod keeps its Failed phase although a container runs",
            Pod::new("p")
                .containers(&["app"])
                .run("app", 2, true)
                .phase("Failed")
                .reason("Evicted"),
            Failed,
        ),
    ];
    let mut failures = Vec::new();
    for (name, pod, want) in cases {
        let got = expected_phase(None, &pod.view());
        if got != want {
            failures.push(format!("{name}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_terminal_api_phase_is_never_moved_back() {
    // The kubelet replaces a computed non-terminal phase by the API's terminal one.
    let restarted = Pod::new("p")
        .policy("Never")
        .containers(&["app"])
        .run("app", 20, true);
    assert_eq!(
        expected_phase(Some(Phase::Failed), &restarted.view()),
        Phase::Failed
    );
    assert_eq!(
        expected_phase(Some(Phase::Succeeded), &restarted.view()),
        Phase::Succeeded
    );
    assert_eq!(
        expected_phase(Some(Phase::Running), &restarted.view()),
        Phase::Running
    );
}

#[test]
fn failed_without_evidence_is_not_explained_away() {
    // An Always pod reported Failed with nothing that says why: the kubelet would say Running.
    let pod = Pod::new("p")
        .containers(&["app"])
        .state("app", terminated(1, 2, 5))
        .phase("Failed");
    assert_eq!(expected_phase(None, &pod.view()), Phase::Running);
}
