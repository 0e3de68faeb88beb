//! Pod status writes go through the status view of the pod (metadata and status
//! parsed, the spec and untouched managedFields kept as stored bytes); merge patches of
//! Events and Leases through a view of the members they name. They must store exactly
//! what the whole-object path stores: same bytes, resourceVersions, labels, selectable
//! fields, errors.
//!
//! The whole-object path is reached with the same patch plus a top-level `"$whole":
//! null` member: a no-op for merge and strategic merge patches (a null removes an
//! absent key, and admission drops top-level fields other than status anyway), but a
//! `$` key at the top keeps a patch off the status view.

use std::sync::Arc;

use podwarden_sandbox::api::{
    Clock, DeleteOptions, Deleted, Patch, ResourceType, Store, StoreConfig, StoredObject,
    Subresource, WriteOptions,
};
use serde_json::{Value, json};

#[derive(Debug)]
struct Fixed;

impl Clock for Fixed {
    fn now(&self) -> jiff::Timestamp {
        "2026-08-01T10:00:00Z".parse().unwrap()
    }
}

fn fixture_pod() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/pod-watch-event.json"
    ))
    .unwrap();
    let event: Value = serde_json::from_str(&text).unwrap();
    let mut pod = event["object"].clone();
    let meta = pod["metadata"].as_object_mut().unwrap();
    for key in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generateName",
    ] {
        meta.remove(key);
    }
    pod
}

/// A store holding the fixture pod, created by manager `bench`; its namespace and name.
fn store_with_pod() -> (Store, String, String) {
    let store = Store::new(StoreConfig {
        clock: Arc::new(Fixed),
        ..Default::default()
    });
    let pod = fixture_pod();
    let ns = pod["metadata"]["namespace"].as_str().unwrap().to_string();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let namespaces = store.resource("", "v1", "namespaces").unwrap();
    store
        .create(
            &namespaces,
            None,
            json!({"metadata": {"name": ns}}),
            &WriteOptions::default(),
        )
        .unwrap();
    let pods = store.resource("", "v1", "pods").unwrap();
    store
        .create(
            &pods,
            Some(&ns),
            pod,
            &WriteOptions {
                field_manager: Some("bench".into()),
                ..Default::default()
            },
        )
        .unwrap();
    (store, ns, name)
}

fn status(manager: &str) -> WriteOptions {
    WriteOptions {
        subresource: Subresource::Status,
        field_manager: Some(manager.into()),
        ..Default::default()
    }
}

fn whole(patch: &Patch) -> Patch {
    let mark = |body: &Value| {
        let mut body = body.clone();
        if let Some(m) = body.as_object_mut() {
            m.insert("$whole".into(), Value::Null);
        }
        body
    };
    match patch {
        Patch::Merge(b) => Patch::Merge(mark(b)),
        Patch::Strategic(b) => Patch::Strategic(mark(b)),
        other => other.clone(),
    }
}

/// Equal but for the uid, which each store makes up.
fn same(a: &StoredObject, b: &StoredObject, step: &str) {
    let a_json = String::from_utf8_lossy(&a.json);
    let b_json = String::from_utf8_lossy(&b.json).replace(&b.uid, &a.uid);
    if a_json != b_json {
        let at = a_json
            .bytes()
            .zip(b_json.bytes())
            .position(|(x, y)| x != y)
            .unwrap_or(a_json.len().min(b_json.len()));
        let from = at.saturating_sub(200);
        panic!(
            "{step}: stored JSON differs at byte {at}:\n  {}\n  {}",
            a_json
                .get(from..(at + 200).min(a_json.len()))
                .unwrap_or_default(),
            b_json
                .get(from..(at + 200).min(b_json.len()))
                .unwrap_or_default()
        );
    }
    assert_eq!(
        a.resource_version, b.resource_version,
        "{step}: resourceVersion"
    );
    assert_eq!(a.labels, b.labels, "{step}: labels");
    assert_eq!(a.fields, b.fields, "{step}: selectable fields");
    assert_eq!((&a.namespace, &a.name), (&b.namespace, &b.name), "{step}");
}

#[test]
fn status_patches_store_what_the_whole_object_path_stores() {
    let (view_store, ns, name) = store_with_pod();
    let (whole_store, _, _) = store_with_pod();
    let pods = view_store.resource("", "v1", "pods").unwrap();
    let steps: Vec<(&str, &str, Patch)> = vec![
        (
            "kubelet takes the Ready condition",
            "kubelet",
            Patch::Strategic(
                json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "r1"}]}}),
            ),
        ),
        (
            "merge replaces container statuses",
            "kubelet",
            Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.0.0.7",
                   "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                                          "state": {"running": {"startedAt": "2026-08-01T10:00:00Z"}}}]}})),
        ),
        (
            "strategic merges a container status by name",
            "kubelet",
            Patch::Strategic(
                json!({"status": {"containerStatuses": [{"name": "app", "restartCount": 1,
                   "state": {"running": null, "waiting": {"reason": "CrashLoopBackOff"}}}]}}),
            ),
        ),
        (
            "labels and annotations move, the spec does not",
            "other",
            Patch::Strategic(
                json!({"metadata": {"labels": {"extra": "1"}, "annotations": {"a": "b"}, "name": "renamed"},
                   "spec": {"nodeName": "elsewhere"}, "status": {"message": "hello"}}),
            ),
        ),
        (
            "a removed status field",
            "kubelet",
            Patch::Merge(json!({"status": {"podIP": null}})),
        ),
        (
            "a patch that changes nothing",
            "kubelet",
            Patch::Merge(json!({"status": {"phase": "Running"}})),
        ),
        (
            "finalizers",
            "kubelet",
            Patch::Merge(json!({"metadata": {"finalizers": ["x/y"]}})),
        ),
        (
            "another manager's condition",
            "node-controller",
            Patch::Strategic(
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeLost"},
                                             {"type": "DisruptionTarget", "status": "True"}]}}),
            ),
        ),
        (
            "the status removed",
            "kubelet",
            Patch::Merge(json!({"status": null})),
        ),
        (
            "the status back",
            "kubelet",
            Patch::Merge(json!({"status": {"phase": "Failed"}})),
        ),
    ];
    for (step, manager, patch) in &steps {
        let a = view_store.patch(&pods, Some(&ns), &name, patch, &status(manager));
        let b = whole_store.patch(&pods, Some(&ns), &name, &whole(patch), &status(manager));
        match (a, b) {
            (Ok(a), Ok(b)) => same(&a, &b, step),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{step}"),
            (a, b) => panic!("{step}: {a:?} vs {b:?}"),
        }
        let dry = WriteOptions {
            dry_run: true,
            ..status(manager)
        };
        let a = view_store
            .patch(&pods, Some(&ns), &name, patch, &dry)
            .unwrap();
        let b = whole_store
            .patch(&pods, Some(&ns), &name, &whole(patch), &dry)
            .unwrap();
        same(&a, &b, &format!("{step} (dry run)"));
    }
    // A status write must not change generation nor the spec.
    let pod = view_store.get(&pods, Some(&ns), &name).unwrap().value();
    assert_eq!(pod["metadata"]["generation"], 1);
    let (fresh, _, _) = store_with_pod();
    let created = fresh.get(&pods, Some(&ns), &name).unwrap().value();
    assert_eq!(pod["spec"], created["spec"]);
    assert_eq!(pod["metadata"]["labels"]["extra"], "1");
    assert_eq!(pod["metadata"]["name"], name.as_str());
}

#[test]
fn status_updates_from_the_view_or_the_whole_pod_agree() {
    let (a_store, ns, name) = store_with_pod();
    let (b_store, _, _) = store_with_pod();
    let pods = a_store.resource("", "v1", "pods").unwrap();
    let change = |pod: &mut Value, i: usize| {
        pod["status"]["conditions"] =
            json!([{"type": "Ready", "status": "True", "reason": format!("r{i}")}]);
        pod["metadata"]["labels"]["step"] = json!(i.to_string());
    };
    for i in 0..3 {
        let a = a_store
            .guaranteed_update(&pods, Some(&ns), &name, &status("kubelet"), |current| {
                let mut view = current.unwrap().status_view();
                change(&mut view, i);
                Ok(view)
            })
            .unwrap();
        let b = b_store
            .guaranteed_update(&pods, Some(&ns), &name, &status("kubelet"), |current| {
                let mut pod = current.unwrap().value();
                change(&mut pod, i);
                Ok(pod)
            })
            .unwrap();
        same(&a, &b, &format!("update {i}"));
        assert_eq!(a.value()["metadata"]["labels"]["step"], i.to_string());
    }
    // PUT-style: the body's own (stale) managedFields are the write's.
    let a = a_store
        .guaranteed_update(&pods, Some(&ns), &name, &status("kubelet"), |current| {
            let mut pod = current.unwrap().value();
            pod["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Update",
                "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}}}}]);
            pod["status"]["phase"] = json!("Running");
            Ok(pod)
        })
        .unwrap();
    let managers: Vec<Value> = a.value()["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].clone())
        .collect();
    assert_eq!(
        managers,
        [json!("kubelet")],
        "the write's entries, phase moved to kubelet"
    );
}

#[test]
fn a_deleted_pod_is_its_last_state_at_the_delete_version() {
    let (store, ns, name) = store_with_pod();
    let pods = store.resource("", "v1", "pods").unwrap();
    let before = store.get(&pods, Some(&ns), &name).unwrap();
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let Deleted::Gone(gone) = store.delete(&pods, Some(&ns), &name, &now).unwrap() else {
        panic!("a delete with grace 0 removes the pod at once");
    };
    let mut expected = before.value();
    expected["metadata"]["resourceVersion"] = json!(gone.resource_version.to_string());
    assert_eq!(gone.json, serde_json::to_vec(&expected).unwrap());
    assert!(gone.resource_version > before.resource_version);
    assert_eq!(gone.fields, before.fields);
}

#[test]
fn event_and_lease_patches_store_what_the_whole_object_path_stores() {
    let stores = [(); 2].map(|_| {
        Store::new(StoreConfig {
            clock: Arc::new(Fixed),
            ..Default::default()
        })
    });
    let events = stores[0].resource("", "v1", "events").unwrap();
    let leases = stores[0]
        .resource("coordination.k8s.io", "v1", "leases")
        .unwrap();
    let kubelet = WriteOptions {
        field_manager: Some("kubelet".into()),
        ..Default::default()
    };
    for store in &stores {
        store
            .create(
                &events,
                Some("default"),
                json!({"metadata": {"name": "web.1", "namespace": "default"},
                       "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                                          "uid": "u1", "fieldPath": "spec.containers{app}"},
                       "reason": "BackOff", "message": "Back-off restarting failed container",
                       "type": "Warning", "source": {"component": "kubelet", "host": "n1"},
                       "firstTimestamp": "2026-08-01T10:00:00Z",
                       "lastTimestamp": "2026-08-01T10:00:00Z", "count": 1}),
                &kubelet,
            )
            .unwrap();
        store
            .create(
                &leases,
                Some("default"),
                json!({"metadata": {"name": "n1"},
                       "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                                "renewTime": "2026-08-01T10:00:00.000000Z"}}),
                &kubelet,
            )
            .unwrap();
    }
    let steps: Vec<(&str, &ResourceType, &str, Patch)> = vec![
        (
            "a count bump",
            &events,
            "kubelet",
            Patch::Merge(json!({"count": 2, "lastTimestamp": "2026-08-01T10:01:00Z"})),
        ),
        (
            "another manager's bump and a new message",
            &events,
            "recorder",
            Patch::Merge(json!({"count": 3, "message": "again"})),
        ),
        (
            "a selectable field changes",
            &events,
            "recorder",
            Patch::Merge(json!({"reason": "Started", "involvedObject": {"name": "web-2"}})),
        ),
        (
            "a member removed, one added, a label",
            &events,
            "kubelet",
            Patch::Merge(json!({"message": null, "note": "n",
                                "metadata": {"labels": {"a": "b"}}})),
        ),
        (
            "nothing changes",
            &events,
            "kubelet",
            Patch::Merge(json!({"count": 3})),
        ),
        (
            "immutable metadata stays",
            &events,
            "kubelet",
            Patch::Merge(json!({"metadata": {"uid": "forged", "name": "other"}, "count": 4})),
        ),
        (
            "a lease renewal",
            &leases,
            "kubelet",
            Patch::Merge(json!({"spec": {"renewTime": "2026-08-01T10:00:10.000000Z"}})),
        ),
        (
            "a lease taken over",
            &leases,
            "other",
            Patch::Strategic(
                json!({"spec": {"holderIdentity": "n2", "leaseDurationSeconds": null}}),
            ),
        ),
        (
            "a lease spec replaced",
            &leases,
            "kubelet",
            Patch::Merge(json!({"spec": null})),
        ),
    ];
    for (step, rt, manager, patch) in &steps {
        let (ns, name) = if rt.plural == "events" {
            ("default", "web.1")
        } else {
            ("default", "n1")
        };
        let opts = |dry_run: bool| WriteOptions {
            field_manager: Some(manager.to_string()),
            dry_run,
            ..Default::default()
        };
        for dry_run in [false, true] {
            let a = stores[0].patch(rt, Some(ns), name, patch, &opts(dry_run));
            let b = stores[1].patch(rt, Some(ns), name, &whole(patch), &opts(dry_run));
            match (a, b) {
                (Ok(a), Ok(b)) => same(&a, &b, &format!("{step} (dry run {dry_run})")),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{step}"),
                (a, b) => panic!("{step}: {a:?} vs {b:?}"),
            }
        }
    }
    let event = stores[0]
        .get(&events, Some("default"), "web.1")
        .unwrap()
        .value();
    assert_eq!(
        (
            &event["count"],
            &event["reason"],
            &event["metadata"]["name"]
        ),
        (&json!(4), &json!("Started"), &json!("web.1"))
    );
}
