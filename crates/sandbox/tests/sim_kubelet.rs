//! The simulated kubelet, through the API: the restartPolicy table of SEMANTICS.md A6,
//! crash-loop back-off, init containers and sidecars, restartPolicyRules, scripts that
//! cannot be parsed, deletion, and the kubelet's side of node faults.

mod sim_common;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, DeleteParams};
use podwarden_sandbox::sim::{NodeFault, SimHandle};
use serde_json::{Value, json};
use sim_common::*;

const NODE: &str = "node-0";

/// `pod(..)` bound to node-0 from the start (no scheduler needed).
fn bound(mut p: Value) -> Value {
    p["spec"]["nodeName"] = json!(NODE);
    p
}

fn sidecar<'a>(name: &'a str, script: &'a str) -> C<'a> {
    C {
        name,
        script: Some(script),
        restart_policy: Some("Always"),
    }
}

/// The pod as the store has it now (in-process: cheap enough to poll every second).
fn now_pod(sim: &SimHandle, name: &str) -> Option<Pod> {
    let rt = sim.store().resource("", "v1", "pods").expect("pods");
    let obj = sim.store().get(&rt, Some("default"), name).ok()?;
    obj.decode().ok()
}

fn statuses(pod: &Pod, init: bool) -> Vec<ContainerStatus> {
    let s = pod.status.as_ref();
    let l = if init {
        s.and_then(|s| s.init_container_statuses.clone())
    } else {
        s.and_then(|s| s.container_statuses.clone())
    };
    l.unwrap_or_default()
}

fn cstatus(pod: &Pod, name: &str) -> ContainerStatus {
    statuses(pod, false)
        .into_iter()
        .chain(statuses(pod, true))
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no status for container {name}"))
}

fn state_word(c: &ContainerStatus) -> String {
    let s = c.state.clone().unwrap_or_default();
    if let Some(w) = s.waiting {
        return format!("waiting:{}", w.reason.unwrap_or_default());
    }
    if s.running.is_some() {
        return "running".into();
    }
    if let Some(t) = s.terminated {
        return format!(
            "terminated:{}:{}",
            t.exit_code,
            t.reason.unwrap_or_default()
        );
    }
    "none".into()
}

fn secs_since_start(sim: &SimHandle) -> i64 {
    sim.now().as_second() - START
}

// ---- A6: the restartPolicy table ---------------------------------------------------

struct Expect {
    phase: &'static str,
    /// Container name, and whether it restarted (restartCount > 0).
    restarted: &'static [(&'static str, bool)],
}

struct Row {
    situation: &'static str,
    containers: &'static [(&'static str, &'static str)],
    always: Expect,
    on_failure: Expect,
    never: Expect,
    /// Event reasons every column records.
    events: &'static [&'static str],
}

fn e(phase: &'static str, restarted: &'static [(&'static str, bool)]) -> Expect {
    Expect { phase, restarted }
}

#[tokio::test]
async fn restart_policy_table_of_a6() {
    let rows = [
        Row {
            situation: "one container, exits 0",
            containers: &[("app", "run=2s exit=0")],
            always: e("Running", &[("app", true)]),
            on_failure: e("Succeeded", &[("app", false)]),
            never: e("Succeeded", &[("app", false)]),
            events: &["Started", "Completed"],
        },
        Row {
            situation: "one container, exits non-zero",
            containers: &[("app", "run=2s exit=1")],
            always: e("Running", &[("app", true)]),
            on_failure: e("Running", &[("app", true)]),
            never: e("Failed", &[("app", false)]),
            events: &["Started", "Error"],
        },
        Row {
            situation: "two containers, one exits non-zero",
            containers: &[("a", "run=2s exit=1"), ("b", "forever")],
            always: e("Running", &[("a", true), ("b", false)]),
            on_failure: e("Running", &[("a", true), ("b", false)]),
            never: e("Running", &[("a", false), ("b", false)]),
            events: &["Started", "Error"],
        },
        Row {
            situation: "two containers, one exits non-zero, then the second also exits",
            containers: &[("a", "run=2s exit=1"), ("b", "run=5s exit=1")],
            always: e("Running", &[("a", true), ("b", true)]),
            on_failure: e("Running", &[("a", true), ("b", true)]),
            never: e("Failed", &[("a", false), ("b", false)]),
            events: &["Started", "Error"],
        },
        Row {
            situation: "one container killed for exceeding its memory limit",
            containers: &[("app", "run=2s oom")],
            always: e("Running", &[("app", true)]),
            on_failure: e("Running", &[("app", true)]),
            never: e("Failed", &[("app", false)]),
            events: &["Started", "OOMKilling"],
        },
    ];
    let sim = cluster(1).await;
    let mut n = 0;
    for row in &rows {
        for policy in ["Always", "OnFailure", "Never"] {
            n += 1;
            let name = format!("row-{n}");
            let cs: Vec<C<'_>> = row.containers.iter().map(|(nm, s)| c(nm, s)).collect();
            create(&sim, bound(pod(&name, policy, &[], &cs))).await;
        }
    }
    advance(&sim, 60);
    let mut n = 0;
    for row in &rows {
        for (policy, expect) in [
            ("Always", &row.always),
            ("OnFailure", &row.on_failure),
            ("Never", &row.never),
        ] {
            n += 1;
            let name = format!("row-{n}");
            let case = format!("{} / {policy}", row.situation);
            let p = get(&sim, &name).await;
            assert_eq!(phase(&p), expect.phase, "{case}");
            for (container, restarted) in expect.restarted {
                let r = restarts(&p, container);
                assert_eq!(r > 0, *restarted, "{case}: {container} restartCount {r}");
                if *restarted && row.situation.contains("memory") {
                    let last = cstatus(&p, container).last_state.and_then(|l| l.terminated);
                    let reason = last.and_then(|t| t.reason).unwrap_or_default();
                    assert_eq!(reason, "OOMKilled", "{case}");
                }
            }
            if row.situation.contains("memory") && policy == "Never" {
                assert_eq!(state_word(&cstatus(&p, "app")), "terminated:137:OOMKilled");
            }
            let reasons = event_reasons(&sim, &name).await;
            for want in row.events {
                assert!(
                    reasons.iter().any(|r| r == want),
                    "{case}: {want} missing in {reasons:?}"
                );
            }
            let restarted_any = expect.restarted.iter().any(|(_, r)| *r);
            assert_eq!(
                reasons.iter().any(|r| r == "BackOff"),
                restarted_any,
                "{case}: BackOff events {reasons:?}"
            );
            if expect.phase == "Succeeded" || expect.phase == "Failed" {
                for kind in ["Ready", "ContainersReady"] {
                    let (s, _) = condition(&p, kind).expect("condition");
                    assert_eq!(s, "False", "{case}: {kind}");
                }
            }
        }
    }
}

// ---- B6: crash-loop back-off -------------------------------------------------------

/// Restart times of container `app`, polled every simulated second for `secs`.
fn restart_times(sim: &SimHandle, name: &str, secs: u64) -> Vec<i64> {
    let mut times = Vec::new();
    let mut seen = now_pod(sim, name).map_or(0, |p| restarts(&p, "app").max(0));
    advance_by_seconds(sim, secs, |_| {
        let Some(p) = now_pod(sim, name) else { return };
        let r = restarts(&p, "app");
        if r > seen {
            seen = r;
            times.push(secs_since_start(sim));
        }
    });
    times
}

#[tokio::test]
async fn back_off_doubles_from_10s_to_300s() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("loop", "Always", &[], &[c("app", "run=1s exit=1")])),
    )
    .await;
    let times = restart_times(&sim, "loop", 1200);
    // Each run lasts 1 s: the delay before a restart is the gap minus 1 s.
    let mut delays = Vec::new();
    let mut prev_start = 1; // the first start, 1 s after admission
    for t in &times {
        delays.push(t - prev_start - 1);
        prev_start = *t;
    }
    let want = [0, 10, 20, 40, 80, 160, 300, 300];
    assert!(delays.len() >= want.len(), "restarts at {times:?}");
    for (i, (got, want)) in delays.iter().zip(want).enumerate() {
        assert!(
            (got - want).abs() <= 1,
            "restart {}: back-off {got}s, want {want}s (restarts at {times:?})",
            i + 1
        );
    }
    let p = get(&sim, "loop").await;
    let reasons = event_reasons(&sim, "loop").await;
    assert!(reasons.iter().any(|r| r == "BackOff"), "{reasons:?}");
    let api: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(sim.client().unwrap(), "default");
    let events = api.list(&Default::default()).await.unwrap().items;
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let msg = format!("Back-off restarting failed container app in pod loop_default({uid})");
    assert!(
        events
            .iter()
            .any(|e| e.message.as_deref() == Some(msg.as_str())),
        "no event {msg:?}"
    );
}

#[tokio::test]
async fn back_off_waits_in_crash_loop_back_off_and_resets_after_10_minutes() {
    let sim = cluster(1).await;
    let script = "run=1s exit=1; run=1s exit=1; run=1s exit=1; run=11m exit=1; run=1s exit=1";
    create(
        &sim,
        bound(pod("reset", "Always", &[], &[c("app", script)])),
    )
    .await;
    // Second exit at ~4 s: waiting in back-off for 10 s.
    advance(&sim, 6);
    let p = get(&sim, "reset").await;
    assert_eq!(state_word(&cstatus(&p, "app")), "waiting:CrashLoopBackOff");
    assert_eq!(phase(&p), "Running");
    let times = restart_times(&sim, "reset", 800);
    // Starts: 1, 2 (immediately), 13 (+10), 34 (+20: the 11 min run), then after
    // 11 min an immediate restart (reset) and 10 s after the next exit.
    let expected = [13, 34, 34 + 660, 34 + 660 + 1 + 10];
    assert!(times.len() >= expected.len(), "restarts at {times:?}");
    for (got, want) in times.iter().zip(expected) {
        assert!(
            (got - want).abs() <= 1,
            "restarts at {times:?}, want {expected:?}"
        );
    }
}

// ---- init containers and sidecars --------------------------------------------------

fn started_at(c: &ContainerStatus) -> Option<i64> {
    let s = c.state.clone()?;
    s.running
        .and_then(|r| r.started_at)
        .or(s.terminated.and_then(|t| t.started_at))
        .map(|t| t.0.as_second() - START)
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_app() {
    let sim = cluster(1).await;
    let init = [c("one", "run=2s exit=0"), c("two", "run=3s exit=0")];
    create(
        &sim,
        bound(pod("ordered", "Always", &init, &[c("app", "forever")])),
    )
    .await;
    advance(&sim, 2);
    let p = get(&sim, "ordered").await;
    assert_eq!(phase(&p), "Pending");
    assert_eq!(state_word(&cstatus(&p, "two")), "waiting:PodInitializing");
    assert_eq!(state_word(&cstatus(&p, "app")), "waiting:PodInitializing");
    assert_eq!(
        condition(&p, "Initialized").map(|c| c.0),
        Some("False".into())
    );
    advance(&sim, 10);
    let p = get(&sim, "ordered").await;
    assert_eq!(phase(&p), "Running", "{:#?}", p.status);
    let (one, two, app) = (
        started_at(&cstatus(&p, "one")),
        started_at(&cstatus(&p, "two")),
        started_at(&cstatus(&p, "app")),
    );
    assert_eq!((one, two, app), (Some(1), Some(3), Some(6)));
    assert_eq!(
        condition(&p, "Initialized").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(
        condition(&p, "Ready"),
        Some(("True".into(), None)),
        "no stale reason"
    );
}

#[tokio::test]
async fn init_failure_fails_under_never_and_restarts_otherwise() {
    let sim = cluster(1).await;
    for policy in ["Never", "OnFailure", "Always"] {
        let name = format!("init-{}", policy.to_lowercase());
        let init = [c("setup", "run=1s exit=1")];
        create(
            &sim,
            bound(pod(&name, policy, &init, &[c("app", "forever")])),
        )
        .await;
    }
    advance(&sim, 30);
    let p = get(&sim, "init-never").await;
    assert_eq!(phase(&p), "Failed");
    assert_eq!(restarts(&p, "app"), 0);
    assert_eq!(state_word(&cstatus(&p, "setup")), "terminated:1:Error");
    assert!(cstatus(&p, "app").container_id.is_none(), "app never ran");
    for name in ["init-onfailure", "init-always"] {
        let p = get(&sim, name).await;
        assert_eq!(phase(&p), "Pending", "{name}");
        assert!(cstatus(&p, "setup").restart_count > 0, "{name}");
        assert!(
            cstatus(&p, "app").container_id.is_none(),
            "{name}: app never ran"
        );
    }
}

#[tokio::test]
async fn sidecars_start_in_order_keep_running_and_their_restarts_do_not_block() {
    let sim = cluster(1).await;
    let init = [
        sidecar("proxy", "run=3s exit=1"),
        c("setup", "run=2s exit=0"),
    ];
    create(
        &sim,
        bound(pod("side", "Never", &init, &[c("app", "run=40s exit=0")])),
    )
    .await;
    advance(&sim, 10);
    let p = get(&sim, "side").await;
    assert_eq!(phase(&p), "Running");
    assert_eq!(
        started_at(&cstatus(&p, "setup")),
        Some(1),
        "after the sidecar started"
    );
    assert_eq!(
        started_at(&cstatus(&p, "app")),
        Some(3),
        "after setup completed"
    );
    assert!(cstatus(&p, "proxy").restart_count >= 1, "sidecar restarted");
    advance(&sim, 60);
    let p = get(&sim, "side").await;
    assert_eq!(
        phase(&p),
        "Succeeded",
        "the sidecar's failures do not fail the pod"
    );
    assert_eq!(restarts(&p, "app"), 0);
    assert!(state_word(&cstatus(&p, "proxy")).starts_with("terminated"));
}

#[tokio::test]
async fn restart_policy_rules_restart_matching_exit_codes_only() {
    let sim = cluster(1).await;
    let mut p = bound(pod(
        "rules",
        "Never",
        &[],
        &[c("app", "run=1s exit=42; run=1s exit=3")],
    ));
    p["spec"]["containers"][0]["restartPolicy"] = json!("Never");
    p["spec"]["containers"][0]["restartPolicyRules"] = json!([
        {"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}
    ]);
    create(&sim, p).await;
    advance(&sim, 30);
    let p = get(&sim, "rules").await;
    assert_eq!(phase(&p), "Failed");
    assert_eq!(restarts(&p, "app"), 1, "42 restarts, 3 does not");
    assert_eq!(state_word(&cstatus(&p, "app")), "terminated:3:Error");
}

#[tokio::test]
async fn unparsable_script_warns_and_the_container_does_not_start() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod(
            "broken",
            "Always",
            &[],
            &[c("bad", "run=soon exit=1"), c("good", "forever")],
        )),
    )
    .await;
    advance(&sim, 10);
    let p = get(&sim, "broken").await;
    assert_eq!(phase(&p), "Pending");
    let bad = cstatus(&p, "bad");
    let waiting = bad.state.and_then(|s| s.waiting).expect("waiting");
    assert_eq!(
        waiting.reason.as_deref(),
        Some("CreateContainerConfigError")
    );
    assert!(
        waiting.message.unwrap_or_default().contains("soon"),
        "the message names the problem"
    );
    assert_eq!(state_word(&cstatus(&p, "good")), "running");
    let api: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(sim.client().unwrap(), "default");
    let events = api.list(&Default::default()).await.unwrap().items;
    let warning = events
        .iter()
        .find(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("Failed"))
        .expect("a warning event");
    assert!(
        warning
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("soon")
    );
}

// ---- deletion ----------------------------------------------------------------------

#[tokio::test]
async fn deleted_pod_goes_terminal_then_is_removed() {
    let sim = cluster(1).await;
    let pods = sim.store().resource("", "v1", "pods").unwrap();
    let mut watch = sim
        .store()
        .watch(&pods, Some("default"), &Default::default())
        .unwrap();
    create(
        &sim,
        bound(pod("doomed", "Always", &[], &[c("app", "forever")])),
    )
    .await;
    advance(&sim, 5);
    let api: Api<Pod> = Api::namespaced(sim.client().unwrap(), "default");
    api.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    advance(&sim, 0);
    let p = get(&sim, "doomed").await;
    assert!(p.metadata.deletion_timestamp.is_some());
    advance(&sim, 5);
    assert!(try_get(&sim, "doomed").await.is_none(), "gone");
    let mut phases = Vec::new();
    while let Some(ev) = watch.try_next() {
        if let Some(o) = ev.object() {
            let p: Pod = o.decode().unwrap();
            phases.push(phase(&p));
        }
    }
    assert_eq!(
        phases.last().map(String::as_str),
        Some("Failed"),
        "{phases:?}"
    );
    let reasons = event_reasons(&sim, "doomed").await;
    assert!(reasons.iter().any(|r| r == "Killing"), "{reasons:?}");
}

// ---- node faults -------------------------------------------------------------------

fn disruption(p: &Pod) -> Option<String> {
    condition(p, "DisruptionTarget").and_then(|(_, r)| r)
}

#[tokio::test]
async fn disk_failure_kills_every_container_and_fails_the_pods() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("disk", "Always", &[], &[c("app", "forever")])),
    )
    .await;
    advance(&sim, 5);
    sim.apply_fault(NODE, NodeFault::DiskFailure).unwrap();
    let p = get(&sim, "disk").await;
    assert_eq!(phase(&p), "Failed");
    assert_eq!(disruption(&p).as_deref(), Some("TerminationByKubelet"));
    assert!(state_word(&cstatus(&p, "app")).starts_with("terminated:137"));
    // As upstream's eviction manager writes a disk-pressure eviction.
    let st = p.status.clone().unwrap_or_default();
    assert_eq!(st.reason.as_deref(), Some("Evicted"));
    assert!(
        st.message
            .as_deref()
            .is_some_and(|m| m.contains("ephemeral-storage")),
        "{:?}",
        st.message
    );
    let reasons = event_reasons(&sim, "disk").await;
    assert!(reasons.iter().any(|r| r == "Evicted"), "{reasons:?}");
}

#[tokio::test]
async fn memory_pressure_evicts() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("evictee", "Always", &[], &[c("app", "forever")])),
    )
    .await;
    advance(&sim, 5);
    sim.apply_fault(NODE, NodeFault::MemoryPressure).unwrap();
    let p = get(&sim, "evictee").await;
    let st = p.status.clone().unwrap_or_default();
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    assert_eq!(st.reason.as_deref(), Some("Evicted"));
    assert!(
        st.message
            .unwrap_or_default()
            .contains("low on resource: memory")
    );
    assert_eq!(disruption(&p).as_deref(), Some("TerminationByKubelet"));
    let reasons = event_reasons(&sim, "evictee").await;
    assert!(reasons.iter().any(|r| r == "Evicted"), "{reasons:?}");
}

#[tokio::test]
async fn shutdown_fails_running_pods_and_keeps_succeeded_ones() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("running", "Always", &[], &[c("app", "forever")])),
    )
    .await;
    create(
        &sim,
        bound(pod("done", "Never", &[], &[c("app", "run=1s exit=0")])),
    )
    .await;
    advance(&sim, 5);
    assert_eq!(phase(&get(&sim, "done").await), "Succeeded");
    sim.apply_fault(NODE, NodeFault::Shutdown).unwrap();
    let p = get(&sim, "running").await;
    let st = p.status.clone().unwrap_or_default();
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    assert_eq!(st.reason.as_deref(), Some("Terminated"));
    assert_eq!(
        st.message.as_deref(),
        Some("Pod was terminated in response to imminent node shutdown.")
    );
    assert_eq!(disruption(&p).as_deref(), Some("TerminationByKubelet"));
    let done = get(&sim, "done").await;
    assert_eq!(phase(&done), "Succeeded");
    assert_eq!(disruption(&done), None);
    // Silent afterwards: a pod bound to the node gets no status.
    create(
        &sim,
        bound(pod("late", "Always", &[], &[c("app", "forever")])),
    )
    .await;
    advance(&sim, 10);
    assert!(
        get(&sim, "late")
            .await
            .status
            .and_then(|s| s.container_statuses)
            .is_none()
    );
}

#[tokio::test]
async fn partition_stops_writes_and_heal_writes_the_current_status() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("cut", "Never", &[], &[c("app", "run=10s exit=0")])),
    )
    .await;
    advance(&sim, 3);
    assert_eq!(phase(&get(&sim, "cut").await), "Running");
    sim.apply_fault(NODE, NodeFault::Partition).unwrap();
    advance(&sim, 15);
    // The container finished meanwhile, but nothing reached the API server.
    let p = get(&sim, "cut").await;
    assert_eq!(phase(&p), "Running");
    assert_eq!(state_word(&cstatus(&p, "app")), "running");
    sim.apply_fault(NODE, NodeFault::Heal).unwrap();
    let p = get(&sim, "cut").await;
    assert_eq!(phase(&p), "Succeeded");
    assert_eq!(state_word(&cstatus(&p, "app")), "terminated:0:Completed");
}

#[tokio::test]
async fn deleted_node_writes_nothing_until_healed() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("orphan", "Always", &[], &[c("app", "run=5s exit=1")])),
    )
    .await;
    advance(&sim, 3);
    sim.apply_fault(NODE, NodeFault::Delete).unwrap();
    let before = get(&sim, "orphan").await;
    advance(&sim, 20);
    if let Some(after) = try_get(&sim, "orphan").await {
        assert_eq!(
            after
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone()),
            before
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone()),
            "no kubelet writes for the pods of a deleted node"
        );
    }
    assert_eq!(
        sim.cluster().kubelet.tracked_pods(),
        0,
        "its pods are forgotten"
    );
}

#[tokio::test]
async fn a_pod_deleted_during_a_partition_is_finished_after_heal() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("cutoff", "Always", &[], &[c("app", "forever")])),
    )
    .await;
    advance(&sim, 3);
    sim.apply_fault(NODE, NodeFault::Partition).unwrap();
    let api: Api<Pod> = Api::namespaced(sim.client().unwrap(), "default");
    api.delete("cutoff", &DeleteParams::default())
        .await
        .unwrap();
    advance(&sim, 10);
    let p = get(&sim, "cutoff").await;
    assert!(p.metadata.deletion_timestamp.is_some(), "still terminating");
    assert_eq!(
        phase(&p),
        "Running",
        "the kubelet has not seen the deletion"
    );
    sim.apply_fault(NODE, NodeFault::Heal).unwrap();
    advance(&sim, 3);
    assert!(
        try_get(&sim, "cutoff").await.is_none(),
        "removed after heal"
    );
}

#[tokio::test]
async fn a_pod_found_by_a_new_kubelet_fails_and_keeps_its_restart_counts() {
    let sim = cluster(1).await;
    create(
        &sim,
        bound(pod("found", "Always", &[], &[c("app", "run=1s exit=1")])),
    )
    .await;
    advance(&sim, 20);
    let before = restarts(&get(&sim, "found").await, "app");
    assert!(before >= 2, "{before}");
    sim.apply_fault(NODE, NodeFault::Delete).unwrap();
    advance(&sim, 5);
    sim.apply_fault(NODE, NodeFault::Heal).unwrap();
    advance(&sim, 1);
    let p = get(&sim, "found").await;
    assert_eq!(phase(&p), "Failed");
    assert!(
        restarts(&p, "app") >= before,
        "restartCount never goes down"
    );
    assert!(state_word(&cstatus(&p, "app")).starts_with("terminated"));
}

/// Every version of pod `name` the API stored since `watch` started, oldest first.
fn versions(watch: &mut podwarden_sandbox::api::Watch, name: &str) -> Vec<Pod> {
    let mut out = Vec::new();
    while let Some(ev) = watch.try_next() {
        if let Some(obj) = ev.object().filter(|o| o.name == name) {
            out.push(obj.decode().expect("pod"));
        }
    }
    out
}

/// A watch of the pods' changes from now on (the current ones it starts with are
/// skipped).
fn pod_watch(sim: &SimHandle) -> podwarden_sandbox::api::Watch {
    let rt = sim.store().resource("", "v1", "pods").expect("pods");
    let mut watch = sim
        .store()
        .watch(&rt, Some("default"), &Default::default())
        .expect("watch");
    while watch.try_next().is_some() {}
    watch
}

/// (status, lastTransitionTime in seconds since the cluster's start) of a condition.
fn transition(pod: &Pod, kind: &str) -> Option<(String, i64)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| {
            let t = c
                .last_transition_time
                .as_ref()
                .map_or(0, |t| t.0.as_second());
            (c.status.clone(), t - START)
        })
}

/// The status manager caches every status the kubelet computes and, once the API
/// server answers again, writes only the latest (B3): a container that fails and is
/// ready again while its node is cut off never shows as not ready in the API, and
/// Ready/ContainersReady go True -> True with the time of the kubelet's own flip back
/// (the legal cause of condition-time-churn).
#[tokio::test]
async fn statuses_computed_during_a_partition_are_coalesced_with_the_kubelets_times() {
    let sim = cluster(1).await;
    // Starts at 1 s, ready at 2 s; fails at 11 s, restarts at once, ready at 12 s.
    create(
        &sim,
        bound(pod(
            "flip",
            "Always",
            &[],
            &[c("app", "run=10s exit=1; forever")],
        )),
    )
    .await;
    advance(&sim, 5);
    let before = get(&sim, "flip").await;
    assert_eq!(transition(&before, "Ready"), Some(("True".into(), 2)));
    assert_eq!(
        transition(&before, "ContainersReady"),
        Some(("True".into(), 2))
    );
    let mut watch = pod_watch(&sim);
    sim.apply_fault(NODE, NodeFault::Partition).unwrap();
    advance(&sim, 15);
    assert!(
        versions(&mut watch, "flip").is_empty(),
        "nothing reaches the API server from a partitioned node"
    );
    sim.apply_fault(NODE, NodeFault::Heal).unwrap();
    advance(&sim, 1);
    let seen = versions(&mut watch, "flip");
    assert_eq!(seen.len(), 1, "one write of the latest status: {seen:#?}");
    let after = &seen[0];
    assert_eq!(restarts(after, "app"), 1, "the restart happened meanwhile");
    assert_eq!(state_word(&cstatus(after, "app")), "running");
    assert_eq!(
        transition(after, "Ready"),
        Some(("True".into(), 12)),
        "the kubelet's time of its flip back, not the heal's (20 s) nor the first (2 s)"
    );
    assert_eq!(
        transition(after, "ContainersReady"),
        Some(("True".into(), 12))
    );
    assert_eq!(
        before.status.as_ref().and_then(|s| s.start_time.clone()),
        after.status.as_ref().and_then(|s| s.start_time.clone()),
        "startTime kept"
    );
}
