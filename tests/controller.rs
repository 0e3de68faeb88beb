//! The live controller against the sandbox over HTTP: `kube::Client` as to a real
//! cluster, a simulated cluster behind it, faulty-kubelet injections as ground truth.

#[path = "../crates/sandbox/tests/sim_common/mod.rs"]
mod sim_common;

mod controller_common;

use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use podwarden::controller::{self, Handle, Options};
use podwarden_model::policy::{PodLifecyclePolicy, PodLifecyclePolicySpec};
use serde_json::json;
use sim_common::*;

async fn install(client: &Client) {
    install_policy(
        client,
        "audited",
        json!({"selector": {"matchLabels": {"audit": "yes"}}}),
    )
    .await;
}

async fn start(client: &Client) -> Handle {
    start_with(client, Options::default()).await
}

/// A bare pod in `default` whose one container runs `script`, labelled `audit=<audit>`
/// (the test policy selects `audit=yes`).
fn selected_pod(name: &str, script: &str, audit: &str) -> serde_json::Value {
    let mut pod = pod(name, "Always", &[], &[c("app", script)]);
    pod["metadata"]["labels"] = json!({"audit": audit});
    pod
}

fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "podwarden-controller-{}-{test}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// kubectl's output (it must succeed), off the async runtime.
async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let mut command = std::process::Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(kubeconfig.with_extension("cache"))
        .args(args)
        .env_remove("KUBECONFIG");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn policy(client: &Client) -> PodLifecyclePolicy {
    let api: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), "default");
    api.get("audited").await.expect("get policy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_violation_becomes_one_event_and_counts_once_across_a_restart() {
    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    let ctrl = start(&client).await;

    create(&sim, selected_pod("web", "run=1s exit=1", "yes")).await;
    create(&sim, selected_pod("skipped", "run=1s exit=1", "no")).await;
    create(&sim, selected_pod("steady", "forever", "yes")).await;
    // Crash-looping: the first restart comes after the 10 s back-off.
    advance(&sim, 15);
    assert!(restarts(&get(&sim, "web").await, "app") >= 1);

    // The unselected pod first: once the selected pod's Event is there, the watch has
    // delivered the unselected pod's injection too.
    sim.inject("default", "skipped", "restart-count-decreased")
        .expect("inject");
    let truth = sim
        .inject("default", "web", "restart-count-decreased")
        .expect("inject");
    // A state (it holds until the kubelet writes again), to be met again after the restart.
    sim.inject("default", "steady", "containers-ready-mismatch")
        .expect("inject");
    until("the Event about steady", async || {
        let e = podwarden_events(&client, "default", "steady").await;
        (!e.is_empty()).then_some(())
    })
    .await;
    let events = until("the Event about web", async || {
        let e = podwarden_events(&client, "default", "web").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.reason.as_deref(), Some("RestartCountDecreased"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.action.as_deref(), Some("Audit"));
    let regarding = event.regarding.as_ref().expect("regarding");
    assert_eq!(regarding.uid.as_deref(), Some(truth.uid.as_str()));
    assert!(
        podwarden_events(&client, "default", "skipped")
            .await
            .is_empty()
    );

    let status = until("the policy status", async || {
        let p = policy(&client).await;
        p.status.filter(|s| s.violations == 2)
    })
    .await;
    let counted = |status: &podwarden_model::policy::PodLifecyclePolicyStatus, rule: &str| {
        status.findings_by_rule.get(rule).copied()
    };
    assert_eq!(counted(&status, "restart-count-decreased"), Some(1));
    assert_eq!(counted(&status, "containers-ready-mismatch"), Some(1));
    assert_eq!(
        status.pods_audited, 2,
        "only the labelled pods are selected"
    );
    assert_eq!(status.recent_findings.len(), 2);
    assert!(status.recent_findings.iter().any(|f| f.uid == truth.uid));

    // What a person sees with kubectl.
    let dir = scratch_dir("kubectl");
    let kubeconfig = dir.join("kubeconfig");
    sim.sandbox()
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let plp = kubectl(&kubeconfig, &["get", "plp", "-n", "default"]).await;
    let row = plp
        .lines()
        .find(|l| l.starts_with("audited"))
        .unwrap_or_else(|| panic!("no row for the policy:\n{plp}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // NAME MODE PODS VIOLATIONS RECREATED AGE
    assert_eq!(&cells[1..5], ["Audit", "2", "2", "0"], "{plp}");
    let described = kubectl(&kubeconfig, &["describe", "pod", "web", "-n", "default"]).await;
    assert!(
        described.contains("RestartCountDecreased") && described.contains("restartCount"),
        "{described}"
    );

    // A restart: everything is listed again (the state still holds on `steady`);
    // nothing is recorded or counted twice.
    ctrl.shutdown().await;
    let ctrl = start(&client).await;
    advance(&sim, 5);
    // The status as the new controller writes it once it has listed both pods (its
    // first write may come before the pods).
    until("the restarted controller's status", async || {
        let listed = policy(&client)
            .await
            .status
            .is_some_and(|s| s.pods_audited == 2);
        (ctrl.metrics.status_writes.get() >= 1 && listed && ctrl.metrics.cached_pods.get() == 2)
            .then_some(())
    })
    .await;
    let status = policy(&client).await.status.expect("status");
    assert_eq!(status.violations, 2, "{status:?}");
    assert_eq!(counted(&status, "restart-count-decreased"), Some(1));
    assert_eq!(counted(&status, "containers-ready-mismatch"), Some(1));
    assert_eq!(podwarden_events(&client, "default", "web").await.len(), 1);
    assert_eq!(
        podwarden_events(&client, "default", "steady").await.len(),
        1
    );
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_start_says_how_to_install_it() {
    let sim = sandbox().await;
    let client = sim.client().expect("client");
    let err = controller::start(client, Options::default())
        .await
        .expect_err("no CRD");
    let message = err.to_string();
    assert!(message.contains("kubectl apply -f crds/"), "{message}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podwarden_run_without_a_cluster_or_the_crd_says_so_and_exits_1() {
    let run = |kubeconfig: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_podwarden"))
            .args(["run", "--http-addr", "127.0.0.1:0", "--kubeconfig"])
            .arg(kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .expect("podwarden runs")
    };
    let dir = scratch_dir("run");
    let missing = dir.join("missing-kubeconfig");
    let out = run(&missing);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing-kubeconfig"), "{stderr}");

    // A namespace that cannot exist is refused by name before any cluster is sought.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .args(["run", "--namespace", "shop,Billing", "--kubeconfig"])
        .arg(&missing)
        .output()
        .expect("podwarden runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"Billing\" is not a namespace name"),
        "{stderr}"
    );

    let sim = sandbox().await;
    let kubeconfig = dir.join("kubeconfig");
    sim.sandbox()
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let out = tokio::task::spawn_blocking(move || run(&kubeconfig))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kubectl apply -f crds/"), "{stderr}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_in_another_namespace_is_not_selected() {
    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("ns"),
        )
        .await
        .expect("create namespace");
    let ctrl = start(&client).await;
    let mut other = selected_pod("elsewhere", "run=1s exit=1", "yes");
    other["metadata"]["namespace"] = json!("other");
    create_pod(&client, other).await;
    create(&sim, selected_pod("here", "run=1s exit=1", "yes")).await;
    advance(&sim, 15);
    sim.inject("other", "elsewhere", "restart-count-decreased")
        .expect("inject");
    sim.inject("default", "here", "restart-count-decreased")
        .expect("inject");
    until("the Event about here", async || {
        (!podwarden_events(&client, "default", "here")
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    assert!(
        podwarden_events(&client, "other", "elsewhere")
            .await
            .is_empty()
    );
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_to_namespaces_it_reads_only_their_pods_and_policies() {
    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["shop", "other"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
            )
            .await
            .expect("create namespace");
        let policies: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), ns);
        let spec: PodLifecyclePolicySpec =
            serde_json::from_value(json!({"selector": {"matchLabels": {"audit": "yes"}}}))
                .expect("spec");
        policies
            .create(
                &PostParams::default(),
                &PodLifecyclePolicy::new("audited", spec),
            )
            .await
            .expect("create policy");
    }
    let scope = controller::scope::Scope::new(["default", "shop"]).expect("scope");
    let ctrl = start_with(
        &client,
        Options {
            scope,
            ..Options::default()
        },
    )
    .await;
    for (ns, name) in [
        ("other", "elsewhere"),
        ("shop", "cart"),
        ("default", "here"),
    ] {
        let mut pod = selected_pod(name, "run=1s exit=1", "yes");
        pod["metadata"]["namespace"] = json!(ns);
        create_pod(&client, pod).await;
    }
    advance(&sim, 15);
    for (ns, name) in [
        ("other", "elsewhere"),
        ("shop", "cart"),
        ("default", "here"),
    ] {
        sim.inject(ns, name, "restart-count-decreased")
            .expect("inject");
    }
    for (ns, name) in [("shop", "cart"), ("default", "here")] {
        until(&format!("the Event about {ns}/{name}"), async || {
            (!podwarden_events(&client, ns, name).await.is_empty()).then_some(())
        })
        .await;
    }
    for ns in ["shop", "default"] {
        let api: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), ns);
        until(&format!("the status of {ns}/audited"), async || {
            let p = api.get("audited").await.ok()?;
            p.status
                .filter(|s| s.violations == 1 && s.pods_audited == 1)
        })
        .await;
    }
    assert!(
        podwarden_events(&client, "other", "elsewhere")
            .await
            .is_empty(),
        "a pod of an unwatched namespace got an Event"
    );
    let other: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), "other");
    let status = other.get("audited").await.expect("get policy").status;
    assert!(
        status.is_none(),
        "an unwatched policy got a status: {status:?}"
    );
    assert_eq!(ctrl.metrics.cached_pods.get(), 2);

    // A policy deleted in one watched namespace goes; the other's stays.
    let shop: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), "shop");
    shop.delete("audited", &Default::default())
        .await
        .expect("delete policy");
    until("the shop pod no longer tracked", async || {
        (ctrl.metrics.cached_pods.get() == 1).then_some(())
    })
    .await;
    ctrl.shutdown().await;
    sim.shutdown().await;
}

/// (pod uid, reason) of every podwarden Event in the demo namespace, with repeats;
/// `None` when the (faulty) API refused the list.
async fn demo_events(client: &Client) -> Option<Vec<(String, String)>> {
    let api: Api<Event> = Api::namespaced(client.clone(), podwarden::demo::NAMESPACE);
    let list = api.list(&ListParams::default()).await.ok()?;
    let events = list
        .items
        .into_iter()
        .filter(|e| {
            e.reporting_controller.as_deref() == Some(controller::events::REPORTING_CONTROLLER)
        })
        .filter_map(|e| Some((e.regarding?.uid?, e.reason?)))
        .collect();
    Some(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_api_faults_and_forced_relists_every_injection_is_recorded_exactly_once() {
    use podwarden::demo::{NAMESPACE, install, victim};
    use podwarden_sandbox::api::FaultConfig;
    use podwarden_sandbox::sim::VIOLATION_RULES;

    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client, "Audit").await.expect("install");
    let ctrl = start(&client).await;
    for rule in VIOLATION_RULES {
        let node = if rule.len() % 2 == 0 {
            "node-0"
        } else {
            "node-1"
        };
        let p = victim(rule).pod(&format!("inject-{rule}"), node);
        create_pod(&client, p).await;
    }
    let faults = sim.sandbox().faults();
    faults.set_config(FaultConfig {
        throttle_fraction: 0.05,
        error_fraction: 0.03,
        unavailable_fraction: 0.02,
        latency_millis: 2,
        close_watches_after_events: Some(3),
        ..FaultConfig::default()
    });
    // Open watches keep the settings they started with: start over, and the next
    // watches answer 410 Gone, so the controller relists.
    faults.gone_next_watches(2);
    sim.sandbox().close_all_watches();
    for _ in 0..20 {
        advance(&sim, 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The controller's three watches (policies, pods, nodes) take the 410s in the order
    // they reconnect: until the pod watch has taken one, another is queued.
    until("a relist", async || {
        if ctrl.metrics.relists.get() >= 1 {
            return Some(());
        }
        if faults.counts().gone_sent >= 2 {
            faults.gone_next_watches(1);
            sim.sandbox().close_all_watches();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        None
    })
    .await;
    // The faulty writes come after the relist: a transition is judged only against a
    // state the controller saw (across a gap it cannot be).
    let mut truth = Vec::new();
    for rule in VIOLATION_RULES {
        truth.push(
            sim.inject(NAMESPACE, &format!("inject-{rule}"), rule)
                .expect("inject"),
        );
        advance(&sim, 1);
    }
    let wanted: Vec<(String, String)> = truth
        .iter()
        .map(|t| {
            let rule = podwarden_model::RuleId::ALL
                .iter()
                .find(|r| r.as_str() == t.rule)
                .expect("a rule id");
            (t.uid.clone(), controller::events::reason(*rule))
        })
        .collect();
    let events = until("an Event for every injection", async || {
        let events = demo_events(&client).await?;
        wanted.iter().all(|w| events.contains(w)).then_some(events)
    })
    .await;
    faults.clear();
    // Once each; and every violation recorded was injected.
    for w in &wanted {
        assert_eq!(
            events.iter().filter(|e| *e == w).count(),
            1,
            "{w:?}: {events:?}"
        );
    }
    let violation_reasons: Vec<String> = podwarden_model::RuleId::ALL
        .iter()
        .filter(|r| r.severity() == podwarden_model::Severity::Violation)
        .map(|r| controller::events::reason(*r))
        .collect();
    for e in &events {
        if violation_reasons.contains(&e.1) {
            assert!(wanted.contains(e), "a violation nothing injected: {e:?}");
        }
    }
    let counts = faults.counts();
    assert!(counts.gone_sent >= 1, "{counts:?}");
    assert!(counts.watches_closed_after_events >= 1, "{counts:?}");
    assert!(
        counts.throttled + counts.internal_errors + counts.unavailable > 0,
        "{counts:?}"
    );
    assert!(
        ctrl.metrics.relists.get() >= 1,
        "a 410 makes the controller relist"
    );
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_110_pod_node_failure_costs_one_finding_and_one_dry_run_event_per_pod() {
    use podwarden::demo::{install, pod};
    use podwarden_sandbox::sim::NodeFault;

    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client, "Audit").await.expect("install");
    let ctrl = start_with(
        &client,
        Options {
            event_qps: 20.0,
            ..Options::default()
        },
    )
    .await;
    for i in 0..110 {
        let p = pod(&format!("p-{i}"), "Always", "forever", "node-0");
        create_pod(&client, p).await;
    }
    for _ in 0..10 {
        advance(&sim, 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.apply_fault("node-0", NodeFault::Delete).expect("fault");
    // Ten simulated minutes, a second at a time.
    for _ in 0..600 {
        advance(&sim, 1);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let queue_empty = async || {
        let m = &ctrl.metrics;
        let attempts = m.events_written.get() + m.event_write_errors.get();
        tokio::time::sleep(Duration::from_millis(300)).await;
        (attempts == m.events_written.get() + m.event_write_errors.get()).then_some(attempts)
    };
    until("the Event queue to drain", queue_empty).await;
    let events = demo_events(&client).await.expect("events");
    let attempts = ctrl.metrics.events_written.get()
        + ctrl.metrics.event_write_errors.get()
        + ctrl
            .metrics
            .events_suppressed
            .get(&podwarden::controller::metrics::ReasonLabels {
                reason: "already_recorded".into(),
            })
            .map(|c| c.get())
            .unwrap_or(0);
    let mut by_reason: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in &events {
        *by_reason.entry(e.1.as_str()).or_default() += 1;
    }
    assert!(
        attempts <= 230,
        "{attempts} Event writes for a 110-pod node failure: {by_reason:?}"
    );
    // Every pod's loss is told once as a finding, and once as what orphan recreation
    // would do (the demo's policy is in Audit mode: a dry run).
    let (notices, findings): (Vec<_>, Vec<_>) =
        events.iter().partition(|e| e.1.starts_with("Orphan"));
    assert_eq!(findings.len(), 110, "{by_reason:?}");
    assert_eq!(notices.len(), 110, "{by_reason:?}");
    assert!(
        notices.iter().all(|e| e.1 == "OrphanWouldBeRecreated"),
        "{by_reason:?}"
    );
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_says_why_in_its_status_and_selects_nothing() {
    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    let policies: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), "default");
    // The API server takes it (the schema's pattern is not enforced by every server,
    // and older CRDs had none); the controller must not.
    let spec: PodLifecyclePolicySpec =
        serde_json::from_value(json!({"rules": {"stuckPendingAfter": "soon"}})).expect("spec");
    policies
        .create(
            &PostParams::default(),
            &PodLifecyclePolicy::new("broken", spec),
        )
        .await
        .expect("create the policy");
    let ctrl = start(&client).await;
    let ready = until("the broken policy's Ready condition", async || {
        let p = policies.get("broken").await.ok()?;
        p.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
    })
    .await;
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "InvalidDuration");
    assert!(
        ready.message.contains("stuckPendingAfter"),
        "{}",
        ready.message
    );
    // The valid policy beside it is Ready.
    let ok = until("the valid policy's Ready condition", async || {
        policy(&client)
            .await
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
    })
    .await;
    assert_eq!(ok.status, "True");
    ctrl.shutdown().await;
    sim.shutdown().await;
}

async fn replica(client: &Client, identity: &str) -> Handle {
    let options = Options {
        leader_election: Some(controller::leader::LeaseConfig {
            namespace: "default".into(),
            name: "podwarden".into(),
            identity: identity.into(),
            timings: controller::leader::LeaseTimings::default(),
        }),
        ..Options::default()
    };
    start_with(client, options).await
}

fn total_findings(handle: &Handle) -> u64 {
    handle.metrics.findings_by_rule().values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_lease_holder_writes_and_the_other_takes_over() {
    use k8s_openapi::api::coordination::v1::Lease;

    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    for name in ["one", "two", "three"] {
        create(&sim, selected_pod(name, "run=1s exit=1", "yes")).await;
    }
    let a = replica(&client, "replica-a").await;
    until("replica a leads", async || {
        a.leadership.is_leader().then_some(())
    })
    .await;
    let b = replica(&client, "replica-b").await;
    advance(&sim, 15);

    sim.inject("default", "one", "restart-count-decreased")
        .expect("inject");
    until("the Event about one", async || {
        (!podwarden_events(&client, "default", "one").await.is_empty()).then_some(())
    })
    .await;
    until("the standby found it too", async || {
        (total_findings(&b) >= 1).then_some(())
    })
    .await;
    assert!(!b.leadership.is_leader());
    assert!(a.metrics.events_written.get() >= 1);
    assert_eq!(
        b.metrics.events_written.get(),
        0,
        "a standby writes nothing"
    );

    // The holder stops and releases the lease: the standby takes over at its next try.
    a.shutdown().await;
    until("replica b leads", async || {
        b.leadership.is_leader().then_some(())
    })
    .await;
    sim.inject("default", "two", "restart-count-decreased")
        .expect("inject");
    until("the Event about two", async || {
        (!podwarden_events(&client, "default", "two").await.is_empty()).then_some(())
    })
    .await;
    // What b found as a standby was a's to write: one Event for `one`, not two.
    assert_eq!(podwarden_events(&client, "default", "one").await.len(), 1);

    // Another replica takes the lease: b stops writing.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let mut lease = leases.get("podwarden").await.expect("the lease");
    let spec = lease.spec.as_mut().expect("spec");
    spec.holder_identity = Some("replica-c".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    leases
        .replace("podwarden", &PostParams::default(), &lease)
        .await
        .expect("take the lease");
    until("replica b steps down", async || {
        (!b.leadership.is_leader()).then_some(())
    })
    .await;
    let found = total_findings(&b);
    sim.inject("default", "three", "restart-count-decreased")
        .expect("inject");
    until("b found it", async || {
        (total_findings(&b) > found).then_some(())
    })
    .await;
    let written = b.metrics.events_written.get();
    // Give the writer a moment it would use at 5 writes per second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.metrics.events_written.get(), written);
    assert!(
        podwarden_events(&client, "default", "three")
            .await
            .is_empty()
    );
    b.shutdown().await;
    sim.shutdown().await;
}

/// One HTTP GET to the controller's own server: (status code, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: podwarden\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_are_served() {
    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    create(&sim, selected_pod("web", "run=1s exit=1", "yes")).await;
    advance(&sim, 15);
    let options = Options {
        http_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Options::default()
    };
    let mut ctrl = controller::start(client.clone(), options)
        .await
        .expect("controller starts");
    let addr = ctrl.http_addr.expect("an address");
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    tokio::time::timeout(PATIENCE, ctrl.ready())
        .await
        .expect("the controller syncs");
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    sim.inject("default", "web", "restart-count-decreased")
        .expect("inject");
    let metrics = until("the finding in /metrics", async || {
        let (code, body) = http_get(addr, "/metrics").await;
        (code == 200
            && body.contains(
                r#"podwarden_findings_total{rule="restart-count-decreased",severity="violation"} 1"#,
            ))
        .then_some(body)
    })
    .await;
    for (family, kind) in [
        ("podwarden_pod_watch_events", "counter"),
        ("podwarden_events_written", "counter"),
        ("podwarden_events_suppressed", "counter"),
        ("podwarden_events_dropped", "counter"),
        ("podwarden_relists", "counter"),
        ("podwarden_cached_pods", "gauge"),
        ("podwarden_audit_latency_seconds", "histogram"),
        ("podwarden_leader", "gauge"),
    ] {
        let declared = format!("# TYPE {family} {kind}");
        assert!(
            metrics.contains(&declared),
            "{declared} missing from:\n{metrics}"
        );
    }
    assert!(metrics.contains("podwarden_cached_pods 1"), "{metrics}");
    ctrl.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_holds_again_counts_in_its_event_series_not_a_new_event() {
    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    create(&sim, selected_pod("steady", "forever", "yes")).await;
    let ctrl = start(&client).await;
    advance(&sim, 5);
    // The faulty kubelet writes ContainersReady True with the container not ready; it
    // writes nothing more for this pod after that, so the writes below are the only
    // ones: the container ready (the state stops), then not ready again (it holds again).
    sim.inject("default", "steady", "containers-ready-mismatch")
        .expect("inject");
    until("the Event", async || {
        (!podwarden_events(&client, "default", "steady")
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let set_ready = async |ready: bool| {
        let pod = pods.get("steady").await.expect("pod");
        let mut statuses = serde_json::to_value(
            pod.status
                .and_then(|s| s.container_statuses)
                .expect("container statuses"),
        )
        .expect("json");
        statuses[0]["ready"] = json!(ready);
        pods.patch_status(
            "steady",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"containerStatuses": statuses}})),
        )
        .await
        .expect("status write");
    };
    let findings = total_findings(&ctrl);
    set_ready(true).await;
    set_ready(false).await;
    until("the second finding", async || {
        (total_findings(&ctrl) > findings).then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let series = until("the repeat counted on the Event", async || {
        let list = events.list(&ListParams::default()).await.ok()?;
        let ours: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("steady")
                    && e.reporting_controller.as_deref()
                        == Some(controller::events::REPORTING_CONTROLLER)
            })
            .collect();
        assert_eq!(ours.len(), 1, "one Event object: {ours:?}");
        ours[0].series.clone()
    })
    .await;
    assert_eq!(series.count, 2);
    let status = until("the status", async || {
        policy(&client)
            .await
            .status
            .filter(|s| s.findings_by_rule.get("containers-ready-mismatch") == Some(&2))
    })
    .await;
    assert_eq!(status.violations, 2, "each occurrence counts");
    ctrl.shutdown().await;
    sim.shutdown().await;
}

async fn shard(client: &Client, spec: &str) -> Handle {
    start_with(
        client,
        Options {
            shard: Some(spec.parse().expect("shard")),
            ..Options::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_split_the_pods_and_the_status_sums_them_across_a_restart() {
    use podwarden::controller::shard;

    let sim = sandbox().await;
    let client = sim.client().expect("client");
    install(&client).await;
    let mut uids = Vec::new();
    for i in 0..12 {
        let made = create(&sim, selected_pod(&format!("p-{i}"), "forever", "yes")).await;
        uids.push(made.metadata.uid.expect("uid"));
    }
    advance(&sim, 5);
    let zero = shard(&client, "0/2").await;
    let one = shard(&client, "1/2").await;
    let owned_by = |i: u32| uids.iter().filter(|u| shard::of(u, 2) == i).count() as i64;
    assert!(owned_by(0) > 0 && owned_by(1) > 0, "both shards have pods");
    until("each shard tracks its own pods", async || {
        (zero.metrics.cached_pods.get() == owned_by(0)
            && one.metrics.cached_pods.get() == owned_by(1))
        .then_some(())
    })
    .await;

    // One state violation on a pod of each shard.
    let pick = |i: u32| {
        let at = uids
            .iter()
            .position(|u| shard::of(u, 2) == i)
            .expect("a pod");
        format!("p-{at}")
    };
    for name in [pick(0), pick(1)] {
        sim.inject("default", &name, "containers-ready-mismatch")
            .expect("inject");
    }
    let status = until("the summed status", async || {
        policy(&client)
            .await
            .status
            .filter(|s| s.violations == 2 && s.shards.len() == 2 && s.pods_audited == 12)
    })
    .await;
    assert_eq!(status.shards["0/2"].violations, 1, "{status:?}");
    assert_eq!(status.shards["1/2"].violations, 1, "{status:?}");
    assert_eq!(status.shards["1/2"].pods_audited, owned_by(1));
    assert_eq!(status.recent_findings.len(), 2);
    for name in [pick(0), pick(1)] {
        until(&format!("the Event about {name}"), async || {
            (podwarden_events(&client, "default", &name).await.len() == 1).then_some(())
        })
        .await;
    }
    assert!(one.metrics.encode().contains("shard=\"1/2\""));

    // Shard 1 restarts: it resumes from its entry; nothing is counted twice.
    one.shutdown().await;
    let one = shard(&client, "1/2").await;
    advance(&sim, 5);
    until("shard 1 back", async || {
        (one.metrics.cached_pods.get() == owned_by(1) && one.metrics.status_writes.get() >= 1)
            .then_some(())
    })
    .await;
    let status = until("the status after the restart", async || {
        policy(&client)
            .await
            .status
            .filter(|s| s.pods_audited == 12)
    })
    .await;
    assert_eq!(status.violations, 2, "{status:?}");
    assert_eq!(status.shards["1/2"].violations, 1, "{status:?}");
    assert_eq!(
        podwarden_events(&client, "default", &pick(1)).await.len(),
        1
    );
    zero.shutdown().await;
    one.shutdown().await;
    sim.shutdown().await;
}
