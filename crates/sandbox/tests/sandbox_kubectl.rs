//! The real kubectl against the sandbox: CRDs and printer columns, pods from create to
//! delete, describe with events, server-side apply, and `get -w`. Skipped with a
//! message when kubectl is not installed (CI requires it).

use std::process::Stdio;

use podwarden_sandbox::api::{Patch, Subresource, WriteOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

mod kubectl_common;
use kubectl_common::{Cluster, DEADLINE, header, kubectl_available, repo, row};

#[tokio::test]
async fn apply_crds_then_get_policies_with_printer_columns() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("crds").await;
    let out = c.ok(&["apply", "-f", &repo("../../crds/")]).await;
    assert!(
        out.contains("podlifecyclepolicies.podwarden.dev created"),
        "{out}"
    );
    c.ok(&["create", "namespace", "shop"]).await;
    c.ok(&["apply", "-f", &repo("../../examples/policy.yaml")])
        .await;
    let table = c.ok(&["get", "podlifecyclepolicies", "-n", "shop"]).await;
    assert_eq!(
        header(&table),
        ["NAME", "MODE", "PODS", "VIOLATIONS", "RECREATED", "AGE"],
        "{table}"
    );
    assert_eq!(&row(&table, "shop")[..2], ["shop", "Audit"]);
    // A controller's status write shows up in the columns.
    let store = c.handle.store();
    let plp = store
        .resource("podwarden.dev", "v1alpha1", "podlifecyclepolicies")
        .unwrap();
    let status = Patch::Merge(
        json!({"status": {"podsAudited": 12, "violations": 2, "recreated": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "ok", "lastTransitionTime": "2026-08-01T10:00:00Z"}]}}),
    );
    store
        .patch(
            &plp,
            Some("shop"),
            "shop",
            &status,
            &WriteOptions {
                subresource: Subresource::Status,
                ..Default::default()
            },
        )
        .unwrap();
    let wide = c.ok(&["get", "plp", "-n", "shop", "-o", "wide"]).await;
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "MODE",
            "PODS",
            "VIOLATIONS",
            "RECREATED",
            "READY",
            "AGE"
        ],
        "{wide}"
    );
    assert_eq!(
        &row(&wide, "shop")[..6],
        ["shop", "Audit", "12", "2", "1", "True"],
        "{wide}"
    );
    let crds = c.ok(&["get", "crds"]).await;
    assert_eq!(header(&crds), ["NAME", "CREATED", "AT"]);
}

#[tokio::test]
async fn custom_resources_from_a_fixture_crd() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("widgets").await;
    c.ok(&["apply", "-f", &repo("tests/fixtures/widgets-crd.yaml")])
        .await;
    c.ok(&["apply", "-f", &repo("tests/fixtures/widget.yaml")])
        .await;
    let table = c.ok(&["get", "wd"]).await;
    assert_eq!(
        header(&table),
        ["NAME", "SIZE", "COLOR", "PHASE", "AGE"],
        "{table}"
    );
    assert_eq!(&row(&table, "blue-one")[..3], ["blue-one", "3", "blue"]);
    // Server-side field validation: an unknown field is refused under kubectl's default Strict.
    let dir =
        std::env::temp_dir().join(format!("podwarden-widget-bad-{}.yaml", std::process::id()));
    std::fs::write(&dir, "apiVersion: sandbox.podwarden.dev/v1\nkind: Widget\nmetadata:\n  name: odd\nspec:\n  color: red\n  colour: red\n").unwrap();
    let err = c.fails(&["apply", "-f", dir.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&dir);
    assert!(err.contains("unknown field"), "{err}");
}

#[tokio::test]
async fn create_get_describe_delete_pods() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("pods").await;
    let out = c
        .ok(&["create", "-f", &repo("tests/fixtures/pod.yaml")])
        .await;
    assert!(out.contains("pod/web created"), "{out}");
    let table = c.ok(&["get", "pods"]).await;
    assert_eq!(
        header(&table),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(&row(&table, "web")[..4], ["web", "0/1", "Pending", "0"]);
    let wide = c.ok(&["get", "pods", "-o", "wide"]).await;
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    // A controller records an event through events.k8s.io; describe and get events show it.
    let client = c.handle.client().unwrap();
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client, "default");
    let uid = c
        .ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"])
        .await;
    let e: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "web.audit1"},
        "eventTime": "2026-08-01T10:00:00.000000Z",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default", "uid": uid},
        "note": "phase left Succeeded", "reason": "LifecycleViolation", "type": "Warning",
        "action": "Audit", "reportingController": "podwarden.dev/controller", "reportingInstance": "podwarden-0"
    }))
    .unwrap();
    events.create(&Default::default(), &e).await.unwrap();
    let described = c.ok(&["describe", "pod", "web"]).await;
    assert!(
        described.contains("Name:") && described.contains("web"),
        "{described}"
    );
    assert!(
        described.contains("node.kubernetes.io/not-ready:NoExecute op=Exists for 300s"),
        "{described}"
    );
    let events_section = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events_section.contains("LifecycleViolation")
            && events_section.contains("phase left Succeeded"),
        "{described}"
    );
    let listed = c.ok(&["get", "events"]).await;
    assert_eq!(
        header(&listed),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(
        listed.contains("pod/web") && listed.contains("LifecycleViolation"),
        "{listed}"
    );
    let out = c.ok(&["delete", "pod", "web"]).await;
    assert!(out.contains("pod \"web\" deleted"), "{out}");
    let err = c.fails(&["get", "pod", "web"]).await;
    assert!(
        err.contains("NotFound") && err.contains("\"web\" not found"),
        "{err}"
    );
}

#[tokio::test]
async fn pod_status_column_as_upstream_computes_it() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("status").await;
    c.ok(&["create", "-f", &repo("tests/fixtures/pod.yaml")])
        .await;
    let store = c.handle.store();
    let pods = store.resource("", "v1", "pods").unwrap();
    let status = Patch::Strategic(
        json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "app", "ready": false, "restartCount": 4, "image": "nginx:1.27", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2020-01-01T00:00:00Z"}}}]}}),
    );
    store
        .patch(
            &pods,
            Some("default"),
            "web",
            &status,
            &WriteOptions {
                subresource: Subresource::Status,
                ..Default::default()
            },
        )
        .unwrap();
    let table = c.ok(&["get", "pods"]).await;
    let r = row(&table, "web");
    assert_eq!(&r[..4], ["web", "0/1", "CrashLoopBackOff", "4"], "{table}");
    assert!(
        table.contains("ago)"),
        "RESTARTS shows the age of the last restart: {table}"
    );
}

#[tokio::test]
async fn nodes_namespaces_and_leases_columns() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("nodes").await;
    let store = c.handle.store();
    let nodes = store.resource("", "v1", "nodes").unwrap();
    store
        .create(&nodes, None, json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/worker": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}}), &WriteOptions::default())
        .unwrap();
    let table = c.ok(&["get", "nodes"]).await;
    assert_eq!(
        header(&table),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    let r = row(&table, "n1");
    assert_eq!((r[1], r[2], r[4]), ("Ready", "worker", "v1.33.0"));
    c.ok(&["cordon", "n1"]).await;
    assert_eq!(
        row(&c.ok(&["get", "nodes"]).await, "n1")[1],
        "Ready,SchedulingDisabled"
    );
    let ns = c.ok(&["get", "namespaces"]).await;
    assert_eq!(header(&ns), ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(&ns, "kube-system")[1], "Active");
    let leases = store
        .resource("coordination.k8s.io", "v1", "leases")
        .unwrap();
    store
        .create(&leases, Some("kube-node-lease"), json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}), &WriteOptions::default())
        .unwrap();
    let l = c.ok(&["get", "leases", "-n", "kube-node-lease"]).await;
    assert_eq!(header(&l), ["NAME", "HOLDER", "AGE"]);
    assert_eq!(row(&l, "n1")[1], "n1");
}

#[tokio::test]
async fn apply_server_side() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("ssa").await;
    let pod = repo("tests/fixtures/pod.yaml");
    let out = c.ok(&["apply", "--server-side", "-f", &pod]).await;
    assert!(out.contains("pod/web serverside-applied"), "{out}");
    let out = c.ok(&["apply", "--server-side", "-f", &pod]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let managers = c
        .ok(&[
            "get",
            "pod",
            "web",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert!(
        managers.split_whitespace().any(|m| m == "kubectl"),
        "{managers}"
    );
    let ops = c
        .ok(&[
            "get",
            "pod",
            "web",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].operation}",
        ])
        .await;
    assert!(ops.contains("Apply"), "{ops}");
}

#[tokio::test]
async fn get_watch_sees_changes() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("watch").await;
    c.ok(&["create", "-f", &repo("tests/fixtures/pod.yaml")])
        .await;
    let mut child = c
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("NAME"), "{first}");
    let initial = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(initial.contains("Pending"), "{initial}");
    let store = c.handle.store();
    let pods = store.resource("", "v1", "pods").unwrap();
    let running = Patch::Merge(
        json!({"status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
        "image": "nginx:1.27", "imageID": "", "state": {"running": {"startedAt": "2026-08-01T10:00:00Z"}}}]}}),
    );
    store
        .patch(
            &pods,
            Some("default"),
            "web",
            &running,
            &WriteOptions {
                subresource: Subresource::Status,
                ..Default::default()
            },
        )
        .unwrap();
    let changed = tokio::time::timeout(DEADLINE, async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            if line.contains("Running") {
                return line;
            }
        }
    })
    .await
    .unwrap();
    assert!(changed.contains("1/1"), "{changed}");
    let _ = child.kill().await;
}

#[tokio::test]
async fn kubectl_create_namespace_and_errors() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("ns").await;
    c.ok(&["create", "namespace", "team-a"]).await;
    assert_eq!(row(&c.ok(&["get", "ns"]).await, "team-a")[1], "Active");
    let err = c.fails(&["create", "namespace", "team-a"]).await;
    assert!(err.contains("AlreadyExists"), "{err}");
    let err = c
        .fails(&[
            "create",
            "-n",
            "nope",
            "-f",
            &repo("tests/fixtures/pod.yaml"),
        ])
        .await;
    assert!(err.contains("namespaces \"nope\" not found"), "{err}");
}

#[tokio::test]
async fn recorder_events_show_in_describe_and_get_events() {
    if !kubectl_available() {
        return;
    }
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let c = Cluster::start("recorder").await;
    c.ok(&["create", "-f", &repo("tests/fixtures/pod.yaml")])
        .await;
    let client = c.handle.client().unwrap();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "default");
    let pod = pods.get("web").await.unwrap();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "podwarden".into(),
            instance: Some("podwarden-0".into()),
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "RestartBudgetExceeded".into(),
        note: Some("4 restarts in 30m".into()),
        action: "Audit".into(),
        secondary: None,
    };
    // Twice: the second publish becomes a series update (a merge patch through events.k8s.io).
    recorder
        .publish(&event, &pod.object_ref(&()))
        .await
        .unwrap();
    recorder
        .publish(&event, &pod.object_ref(&()))
        .await
        .unwrap();
    let described = c.ok(&["describe", "pod", "web"]).await;
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events.contains("RestartBudgetExceeded")
            && events.contains("4 restarts in 30m")
            && events.contains("podwarden"),
        "{described}"
    );
    let wide = c.ok(&["get", "events", "-o", "wide"]).await;
    let line = wide
        .lines()
        .find(|l| l.contains("RestartBudgetExceeded"))
        .unwrap_or_else(|| panic!("{wide}"));
    assert!(
        line.contains("pod/web") && line.contains("podwarden, podwarden-0"),
        "{line}"
    );
    let count = c
        .ok(&["get", "events", "-o", "jsonpath={.items[0].series.count}"])
        .await;
    assert_eq!(count, "2");
}
