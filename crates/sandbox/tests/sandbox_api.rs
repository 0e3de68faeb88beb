//! The sandbox API server through `kube::Client` over real HTTP: CRUD for each
//! resource, the creation rules of SEMANTICS.md A2, the error cases with their
//! `Status` reason and code, selectors, pagination, patches and deletion.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use podwarden_sandbox::api::{Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

async fn sandbox() -> (SandboxHandle, Client) {
    let handle = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let client = handle.client().expect("client");
    (handle, client)
}

/// The `Status` code and reason of a failed call.
fn status<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    }))
    .unwrap()
}

fn rv(o: &impl ResourceExt) -> u64 {
    o.resource_version().unwrap().parse().unwrap()
}

#[tokio::test]
async fn pod_create_applies_api_server_defaults() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = pods
        .create(&PostParams::default(), &pod("web"))
        .await
        .unwrap();
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        created.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    let tolerations = spec.tolerations.as_ref().unwrap();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let t = tolerations
            .iter()
            .find(|t| t.key.as_deref() == Some(key))
            .expect(key);
        assert_eq!(t.toleration_seconds, Some(300));
        assert_eq!(t.effect.as_deref(), Some("NoExecute"));
        assert_eq!(t.operator.as_deref(), Some("Exists"));
    }
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
}

#[tokio::test]
async fn pod_crud_round_trip() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = pods
        .create(&PostParams::default(), &pod("crud"))
        .await
        .unwrap();
    let got = pods.get("crud").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let mut changed = got.clone();
    changed.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.28".into());
    let replaced = pods
        .replace("crud", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert!(rv(&replaced) > rv(&created));
    assert_eq!(
        replaced.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.28")
    );
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // An unbound pod is deleted at once (the pod strategy's grace period is 0).
    let deleted = pods.delete("crud", &DeleteParams::default()).await.unwrap();
    assert!(deleted.left().is_some(), "pods return the deleted object");
    assert_eq!(status(pods.get("crud").await), (404, "NotFound".into()));
}

#[tokio::test]
async fn generate_name_gets_a_suffix() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut p = pod("");
    p.metadata.name = None;
    p.metadata.generate_name = Some("web-".into());
    let a = pods.create(&PostParams::default(), &p).await.unwrap();
    let b = pods.create(&PostParams::default(), &p).await.unwrap();
    assert!(a.name_any().starts_with("web-") && a.name_any().len() == "web-".len() + 5);
    assert_ne!(a.name_any(), b.name_any());
}

#[tokio::test]
async fn namespace_of_url_and_object_must_agree() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut p = pod("elsewhere");
    p.metadata.namespace = Some("kube-system".into());
    assert_eq!(
        status(pods.create(&PostParams::default(), &p).await),
        (400, "BadRequest".into())
    );
}

#[tokio::test]
async fn unknown_namespace_is_not_found() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "nope");
    assert_eq!(
        status(pods.create(&PostParams::default(), &pod("p")).await),
        (404, "NotFound".into())
    );
}

#[tokio::test]
async fn missing_required_fields_are_invalid_with_causes() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let p: Pod =
        serde_json::from_value(json!({"metadata": {"name": "empty"}, "spec": {"containers": []}}))
            .unwrap();
    match pods.create(&PostParams::default(), &p).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            let causes = s.details.unwrap().causes;
            assert!(
                causes
                    .iter()
                    .any(|c| c.field == "spec.containers" && c.reason == "FieldValueRequired"),
                "{causes:?}"
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let no_image: Pod = serde_json::from_value(
        json!({"metadata": {"name": "noimage"}, "spec": {"containers": [{"name": "a"}]}}),
    )
    .unwrap();
    match pods.create(&PostParams::default(), &no_image).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains("spec.containers[0].image"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let mut nameless = pod("");
    nameless.metadata.name = None;
    assert_eq!(
        status(pods.create(&PostParams::default(), &nameless).await),
        (422, "Invalid".into())
    );
}

/// A member of the wrong type is a 400 naming the member (the real server's decoding
/// error), for a create, an update and a status write, and nothing is stored.
#[tokio::test]
async fn ill_typed_members_are_bad_requests_naming_them() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ApiResource::erase::<Pod>(&()));
    let bad_message = |r: Result<DynamicObject, kube::Error>| match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}");
            s.message
        }
        other => panic!("expected 400, got {other:?}"),
    };
    let containers_a_string: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typo"},
        "spec": {"containers": [{"name": "app", "image": "nginx", "ports": "80"}]}
    }))
    .unwrap();
    let message = bad_message(
        raw.create(&PostParams::default(), &containers_a_string)
            .await,
    );
    assert!(
        message.starts_with("Pod in version \"v1\" cannot be handled as a Pod: ")
            && message.contains("spec.containers[0].ports"),
        "{message}"
    );
    assert_eq!(status(pods.get("typo").await), (404, "NotFound".into()));

    let created = pods
        .create(&PostParams::default(), &pod("web"))
        .await
        .unwrap();
    let status_patch = json!({"status": {"conditions": [{"type": "Ready", "status": true}]}});
    let message = bad_message(
        raw.patch_status("web", &PatchParams::default(), &Patch::Merge(&status_patch))
            .await,
    );
    assert!(message.contains("status.conditions[0].status"), "{message}");
    let label_patch = json!({"metadata": {"labels": {"app": 7}}});
    let message = bad_message(
        raw.patch("web", &PatchParams::default(), &Patch::Merge(&label_patch))
            .await,
    );
    assert!(message.contains("metadata.labels.app"), "{message}");
    assert_eq!(rv(&pods.get("web").await.unwrap()), rv(&created));

    let nodes: Api<DynamicObject> = Api::all_with(client, &ApiResource::erase::<Node>(&()));
    let bad_node: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "spec": {"unschedulable": "yes"}
    }))
    .unwrap();
    let message = bad_message(nodes.create(&PostParams::default(), &bad_node).await);
    assert!(
        message.contains("Node") && message.contains("spec.unschedulable"),
        "{message}"
    );
}

#[tokio::test]
async fn create_existing_is_already_exists_and_stale_update_is_conflict() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let first = pods
        .create(&PostParams::default(), &pod("dup"))
        .await
        .unwrap();
    assert_eq!(
        status(pods.create(&PostParams::default(), &pod("dup")).await),
        (409, "AlreadyExists".into())
    );
    let mut newer = first.clone();
    newer.metadata.labels = Some(BTreeMap::from([("v".into(), "2".into())]));
    pods.replace("dup", &PostParams::default(), &newer)
        .await
        .unwrap();
    // `first` still carries the old resourceVersion.
    let mut stale = first.clone();
    stale.metadata.labels = Some(BTreeMap::from([("v".into(), "3".into())]));
    assert_eq!(
        status(pods.replace("dup", &PostParams::default(), &stale).await),
        (409, "Conflict".into())
    );
    assert_eq!(status(pods.get("missing").await), (404, "NotFound".into()));
}

#[tokio::test]
async fn resource_versions_are_cluster_wide_and_strictly_increasing() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let mut last = 0;
    for i in 0..5 {
        let p = pods
            .create(&PostParams::default(), &pod(&format!("p{i}")))
            .await
            .unwrap();
        assert!(rv(&p) > last);
        last = rv(&p);
        let l: Lease =
            serde_json::from_value(json!({"metadata": {"name": format!("l{i}")}})).unwrap();
        let l = leases.create(&PostParams::default(), &l).await.unwrap();
        assert!(rv(&l) > last);
        last = rv(&l);
    }
    let list = pods.list(&ListParams::default()).await.unwrap();
    assert!(
        list.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= last
    );
}

#[tokio::test]
async fn nodes_with_status_subresource() {
    let (_s, client) = sandbox().await;
    let nodes: Api<Node> = Api::all(client);
    let n: Node = serde_json::from_value(
        json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/worker": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    let created = nodes.create(&PostParams::default(), &n).await.unwrap();
    assert_eq!(created.name_any(), "n1");
    // Status written through the main resource is ignored; /status is where it goes.
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown"}]}});
    let via_main = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    assert_eq!(
        via_main
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|c| c.len())
            .unwrap_or(0),
        1
    );
    assert_eq!(
        via_main.status.unwrap().conditions.unwrap()[0].status,
        "True"
    );
    let via_status = nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    assert_eq!(
        via_status.status.unwrap().conditions.unwrap()[0].status,
        "False"
    );
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    assert_eq!(status(nodes.get("n1").await), (404, "NotFound".into()));
}

#[tokio::test]
async fn leases_crud() {
    let (_s, client) = sandbox().await;
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let l: Lease = serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}})).unwrap();
    leases.create(&PostParams::default(), &l).await.unwrap();
    let renewed = leases
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewTime": "2026-08-01T10:00:00.000000Z"}})),
        )
        .await
        .unwrap();
    assert_eq!(renewed.spec.unwrap().holder_identity.as_deref(), Some("n1"));
    leases.delete("n1", &DeleteParams::default()).await.unwrap();
    assert!(
        leases
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn namespaces_crud_and_deletion_takes_contents() {
    let (_s, client) = sandbox().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team-a");
    pods.create(&PostParams::default(), &pod("inside"))
        .await
        .unwrap();
    namespaces
        .delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        status(namespaces.get("team-a").await),
        (404, "NotFound".into())
    );
    let all: Api<Pod> = Api::all(client);
    assert!(
        all.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn events_are_one_store_seen_through_both_apis() {
    let (_s, client) = sandbox().await;
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let core: Api<Event> = Api::namespaced(client.clone(), "default");
    let recorded: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "web.1"},
        "eventTime": "2026-08-01T10:00:00.000000Z",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u-1", "apiVersion": "v1"},
        "note": "Back-off restarting failed container", "reason": "BackOff", "type": "Warning",
        "action": "Restarting", "reportingController": "kubelet", "reportingInstance": "n1",
        "series": {"count": 4, "lastObservedTime": "2026-08-01T10:05:00.000000Z"}
    }))
    .unwrap();
    v1.create(&PostParams::default(), &recorded).await.unwrap();
    let lp = ListParams::default().fields("involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid=u-1");
    let seen = core.list(&lp).await.unwrap().items;
    assert_eq!(seen.len(), 1);
    let e = &seen[0];
    assert_eq!(
        e.message.as_deref(),
        Some("Back-off restarting failed container")
    );
    assert_eq!(e.involved_object.name.as_deref(), Some("web"));
    assert_eq!(e.reporting_component.as_deref(), Some("kubelet"));
    assert_eq!(e.series.as_ref().unwrap().count, Some(4));
    // And the other way: a core event read through events.k8s.io.
    let old_style: Event = serde_json::from_value(json!({
        "metadata": {"name": "web.2"}, "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "message": "Started container app", "reason": "Started", "type": "Normal",
        "source": {"component": "kubelet", "host": "n1"}, "count": 2,
        "firstTimestamp": "2026-08-01T10:00:00Z", "lastTimestamp": "2026-08-01T10:01:00Z"
    }))
    .unwrap();
    core.create(&PostParams::default(), &old_style)
        .await
        .unwrap();
    let through_v1 = v1.get("web.2").await.unwrap();
    assert_eq!(through_v1.note.as_deref(), Some("Started container app"));
    assert_eq!(through_v1.regarding.unwrap().name.as_deref(), Some("web"));
    assert_eq!(through_v1.deprecated_count, Some(2));
    assert_eq!(
        through_v1.deprecated_source.unwrap().component.as_deref(),
        Some("kubelet")
    );
    let by_regarding = v1
        .list(&ListParams::default().fields("regarding.name=web"))
        .await
        .unwrap();
    assert_eq!(by_regarding.items.len(), 2);
    // The kube-runtime recorder's series update: a merge patch through events.k8s.io.
    let patched = v1
        .patch(
            "web.1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"series": {"count": 5, "lastObservedTime": "2026-08-01T10:06:00.000000Z"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.series.unwrap().count, 5);
    assert_eq!(
        core.get("web.1").await.unwrap().series.unwrap().count,
        Some(5)
    );
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sandbox.podwarden.dev", "v1", "Widget"),
        "widgets",
    )
}

async fn install_widgets(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/widgets-crd.yaml"
    ))
    .unwrap();
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
}

#[tokio::test]
async fn custom_resources_once_their_crd_exists() {
    let (_s, client) = sandbox().await;
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    assert_eq!(status(widgets.list(&ListParams::default()).await).0, 404);
    install_widgets(&client).await;
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "sandbox.podwarden.dev/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"color": "red", "unknown": 1}, "status": {"phase": "Forged"}
    }))
    .unwrap();
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    // Schema defaults applied, unknown fields pruned.
    assert_eq!(created.data["spec"]["size"], 1);
    assert_eq!(created.data["spec"]["mode"], "auto");
    assert!(created.data["spec"].get("unknown").is_none());
    assert!(
        created.data.get("status").is_none(),
        "status is set through /status only"
    );
    // Status subresource: status through the main resource is dropped.
    let s = json!({"status": {"phase": "Ready"}});
    let main = widgets
        .patch("w1", &PatchParams::default(), &Patch::Merge(&s))
        .await
        .unwrap();
    assert!(main.data.get("status").is_none());
    let st = widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(&s))
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Ready");
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not move generation"
    );
    let spec = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
    // Validation: enum and type.
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "sandbox.podwarden.dev/v1", "kind": "Widget",
        "metadata": {"name": "bad"}, "spec": {"color": "green", "size": "big"}
    }))
    .unwrap();
    assert_eq!(
        status(widgets.create(&PostParams::default(), &bad).await),
        (422, "Invalid".into())
    );
    // The other served version sees the same object.
    let beta = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sandbox.podwarden.dev", "v1beta1", "Widget"),
        "widgets",
    );
    let beta_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &beta);
    let via_beta = beta_api.get("w1").await.unwrap();
    assert_eq!(
        via_beta.types.unwrap().api_version,
        "sandbox.podwarden.dev/v1beta1"
    );
    // Deleting the CRD takes its resources.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.sandbox.podwarden.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status(widgets.get("w1").await).0, 404);
}

#[tokio::test]
async fn label_and_field_selectors() {
    let (handle, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let specs = [
        ("a", "web", "prod", Some("n1")),
        ("b", "web", "dev", None),
        ("c", "db", "prod", Some("n2")),
        ("d", "cache", "", None),
    ];
    for (name, app, env, node) in specs {
        let mut p = pod(name);
        let mut labels = BTreeMap::from([("app".to_string(), app.to_string())]);
        if !env.is_empty() {
            labels.insert("env".into(), env.into());
        }
        p.metadata.labels = Some(labels);
        p.spec.as_mut().unwrap().node_name = node.map(str::to_string);
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let names = |lp: ListParams| {
        let pods = pods.clone();
        async move {
            let mut n: Vec<String> = pods
                .list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| p.name_any())
                .collect();
            n.sort();
            n.join(",")
        }
    };
    assert_eq!(names(ListParams::default().labels("app=web")).await, "a,b");
    assert_eq!(names(ListParams::default().labels("app!=web")).await, "c,d");
    assert_eq!(
        names(ListParams::default().labels("app in (db,cache)")).await,
        "c,d"
    );
    assert_eq!(
        names(ListParams::default().labels("app notin (db,cache)")).await,
        "a,b"
    );
    assert_eq!(names(ListParams::default().labels("env")).await, "a,b,c");
    assert_eq!(names(ListParams::default().labels("!env")).await, "d");
    assert_eq!(
        names(ListParams::default().labels("app=web,env=prod")).await,
        "a"
    );
    assert_eq!(
        names(ListParams::default().fields("metadata.name=c")).await,
        "c"
    );
    assert_eq!(
        names(ListParams::default().fields("metadata.namespace=default,spec.nodeName=n2")).await,
        "c"
    );
    assert_eq!(
        names(ListParams::default().fields("spec.nodeName=")).await,
        "b,d"
    );
    assert_eq!(
        names(ListParams::default().fields("status.phase=Pending,metadata.name!=a")).await,
        "b,c,d"
    );
    assert_eq!(
        status(
            pods.list(&ListParams::default().fields("spec.bogus=1"))
                .await
        ),
        (400, "BadRequest".into())
    );
    assert_eq!(
        status(pods.list(&ListParams::default().labels("app in (")).await),
        (400, "BadRequest".into())
    );
    drop(handle);
}

#[tokio::test]
async fn pagination_is_a_consistent_snapshot() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..25 {
        pods.create(&PostParams::default(), &pod(&format!("p{i:02}")))
            .await
            .unwrap();
    }
    let first = pods.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Changes after the first page do not show up in later pages.
    pods.create(&PostParams::default(), &pod("p99"))
        .await
        .unwrap();
    pods.delete("p24", &DeleteParams::default()).await.unwrap();
    let mut seen: Vec<String> = first.items.iter().map(|p| p.name_any()).collect();
    let mut next = Some(token);
    while let Some(t) = next {
        let page = pods
            .list(&ListParams::default().limit(10).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version,
            first.metadata.resource_version
        );
        seen.extend(page.items.iter().map(|p| p.name_any()));
        next = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    let expected: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, expected);
    let bad = pods
        .list(&ListParams::default().continue_token("garbage"))
        .await;
    assert_eq!(status(bad), (400, "BadRequest".into()));
}

#[tokio::test]
async fn list_at_an_exact_resource_version() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let a = pods
        .create(&PostParams::default(), &pod("a"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("b"))
        .await
        .unwrap();
    let at_a = ListParams::default()
        .at(&a.resource_version().unwrap())
        .matching(kube::api::VersionMatch::Exact);
    let old = pods.list(&at_a).await.unwrap();
    assert_eq!(
        old.items.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        vec!["a"]
    );
    let newer = ListParams::default()
        .at(&a.resource_version().unwrap())
        .matching(kube::api::VersionMatch::NotOlderThan);
    assert_eq!(pods.list(&newer).await.unwrap().items.len(), 2);
}

#[tokio::test]
async fn patches_merge_json_strategic() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut p = pod("two");
    p.spec
        .as_mut()
        .unwrap()
        .containers
        .push(serde_json::from_value(json!({"name": "side", "image": "busybox:1"})).unwrap());
    pods.create(&PostParams::default(), &p).await.unwrap();
    let merged = pods
        .patch(
            "two",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.labels().get("tier").map(String::as_str),
        Some("front")
    );
    let jp: json_patch::Patch = serde_json::from_value(
        json!([{"op": "replace", "path": "/metadata/labels/app", "value": "api"}]),
    )
    .unwrap();
    let patched = pods
        .patch("two", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.labels().get("app").map(String::as_str), Some("api"));
    // Strategic merge: containers merged by name.
    let smp = json!({"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}});
    let s = pods
        .patch("two", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let containers = s.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("nginx:1.27"));
    assert_eq!(containers[1].image.as_deref(), Some("busybox:2"));
    // Status: conditions by type, container statuses by name.
    let st1 = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "nginx", "imageID": "", "state": {"running": {}}},
                              {"name": "side", "ready": false, "restartCount": 0, "image": "busybox", "imageID": "", "state": {"running": {}}}]}});
    pods.patch_status("two", &PatchParams::default(), &Patch::Strategic(&st1))
        .await
        .unwrap();
    let st2 = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"name": "side", "ready": true}]}});
    let s = pods
        .patch_status("two", &PatchParams::default(), &Patch::Strategic(&st2))
        .await
        .unwrap()
        .status
        .unwrap();
    let conditions = s.conditions.unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(
        conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status,
        "True"
    );
    let cs = s.container_statuses.unwrap();
    assert_eq!(cs.len(), 2);
    assert!(!cs[0].ready && cs[1].ready);
    // An immutable pod field cannot change.
    let bad = json!({"spec": {"restartPolicy": "Never"}});
    assert_eq!(
        status(
            pods.patch("two", &PatchParams::default(), &Patch::Merge(&bad))
                .await
        ),
        (422, "Invalid".into())
    );
    // A malformed JSON patch is rejected without harm.
    let broken = pods
        .patch("two", &PatchParams::default(), &Patch::Merge(json!([1, 2])))
        .await;
    assert_eq!(status(broken).0, 400);
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_detects_conflicts() {
    let (_s, client) = sandbox().await;
    install_widgets(&client).await;
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    let ssa = PatchParams::apply("tester");
    let w = json!({"apiVersion": "sandbox.podwarden.dev/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "1", "b": "2"}}, "spec": {"color": "red"}});
    let created = widgets.patch("w", &ssa, &Patch::Apply(&w)).await.unwrap();
    assert_eq!(created.data["spec"]["size"], 1);
    let managed = created.metadata.managed_fields.clone().unwrap();
    assert!(
        managed
            .iter()
            .any(|m| m.manager.as_deref() == Some("tester")
                && m.operation.as_deref() == Some("Apply"))
    );
    // Dropping a field from the applied configuration removes it.
    let w2 = json!({"apiVersion": "sandbox.podwarden.dev/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "1"}}, "spec": {"color": "red"}});
    let updated = widgets.patch("w", &ssa, &Patch::Apply(&w2)).await.unwrap();
    assert_eq!(updated.labels().len(), 1);
    // Status apply by a controller.
    let status_apply = json!({"apiVersion": "sandbox.podwarden.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
        "status": {"phase": "Ready", "conditions": [{"type": "Synced", "status": "True"}]}});
    let st = widgets
        .patch_status(
            "w",
            &PatchParams::apply("controller"),
            &Patch::Apply(&status_apply),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Ready");
    assert_eq!(st.data["spec"]["color"], "red");
    // Another manager changing an owned field conflicts unless forced.
    let other = json!({"apiVersion": "sandbox.podwarden.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"color": "blue"}});
    assert_eq!(
        status(
            widgets
                .patch("w", &PatchParams::apply("other"), &Patch::Apply(&other))
                .await
        ),
        (409, "Conflict".into())
    );
    let forced = widgets
        .patch(
            "w",
            &PatchParams::apply("other").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["color"], "blue");
    // Applying to the status of a missing object is 404.
    let missing = json!({"apiVersion": "sandbox.podwarden.dev/v1", "kind": "Widget", "metadata": {"name": "nope"}, "status": {"phase": "x"}});
    assert_eq!(
        status(
            widgets
                .patch_status("nope", &PatchParams::apply("c"), &Patch::Apply(&missing))
                .await
        )
        .0,
        404
    );
}

async fn bound_pod(pods: &Api<Pod>, name: &str) -> Pod {
    let mut p = pod(name);
    p.spec.as_mut().unwrap().node_name = Some("n1".into());
    pods.create(&PostParams::default(), &p).await.unwrap()
}

#[tokio::test]
async fn graceful_deletion_and_finalizers() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    bound_pod(&pods, "bound").await;
    let pending = pods
        .delete("bound", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("object while terminating");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(30));
    assert!(
        pods.get("bound").await.is_ok(),
        "a bound pod waits for its kubelet"
    );
    pods.delete(
        "bound",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(status(pods.get("bound").await).0, 404);
    // Finalizers hold an object until removed.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let l: Lease = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["podwarden.dev/hold"]}}),
    )
    .unwrap();
    leases.create(&PostParams::default(), &l).await.unwrap();
    leases
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    let held = leases.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let add = json!({"metadata": {"finalizers": ["podwarden.dev/hold", "another"]}});
    assert_eq!(
        status(
            leases
                .patch("held", &PatchParams::default(), &Patch::Merge(&add))
                .await
        )
        .0,
        422
    );
    leases
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(status(leases.get("held").await).0, 404);
    // Preconditions.
    bound_pod(&pods, "pre").await;
    let wrong_uid = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        status(pods.delete("pre", &wrong_uid).await),
        (409, "Conflict".into())
    );
}

#[tokio::test]
async fn binding_and_eviction() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("sched"))
        .await
        .unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "sched"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "n7"}});
    let req = http::Request::post("/api/v1/namespaces/default/pods/sched/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    let _: Value = client.request(req).await.unwrap();
    let bound = pods.get("sched").await.unwrap();
    assert_eq!(
        bound.spec.as_ref().unwrap().node_name.as_deref(),
        Some("n7")
    );
    let conditions = bound.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    let again = http::Request::post("/api/v1/namespaces/default/pods/sched/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    assert_eq!(
        status(client.request::<Value>(again).await),
        (409, "Conflict".into())
    );
    let eviction = pods.evict("sched", &Default::default()).await.unwrap();
    assert_eq!(eviction.code, 201);
    let evicted = pods.get("sched").await.unwrap();
    assert!(evicted.metadata.deletion_timestamp.is_some());
    let c = evicted.status.unwrap().conditions.unwrap();
    assert!(
        c.iter().any(|c| c.type_ == "DisruptionTarget"
            && c.reason.as_deref() == Some("EvictionByEvictionAPI"))
    );
}

#[tokio::test]
async fn tables_carry_the_upstream_columns() {
    let (_s, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    bound_pod(&pods, "tab").await;
    let req = http::Request::get("/api/v1/namespaces/default/pods")
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(vec![])
        .unwrap();
    let table: Value = client.request(req).await.unwrap();
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "tab");
    assert_eq!(cells[1], "0/1");
    assert_eq!(cells[2], "Pending");
    assert_eq!(cells[6], "n1");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn discovery_and_probes() {
    let (handle, client) = sandbox().await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    for g in [
        "events.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(names.contains(&g), "{names:?}");
    }
    let core = client.list_core_api_resources("v1").await.unwrap();
    let resources: Vec<&str> = core.resources.iter().map(|r| r.name.as_str()).collect();
    for r in [
        "pods",
        "pods/status",
        "pods/binding",
        "pods/eviction",
        "nodes",
        "nodes/status",
        "namespaces",
        "events",
    ] {
        assert!(resources.contains(&r), "{resources:?}");
    }
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.has_group("coordination.k8s.io"));
    for probe in ["/healthz", "/readyz", "/livez"] {
        let body = reqwest_like_get(&handle, probe).await;
        assert_eq!(body, "ok");
    }
    let root: Value =
        serde_json::from_str(&reqwest_like_get(&handle, "/openapi/v3").await).unwrap();
    let url = root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc: Value = serde_json::from_str(&reqwest_like_get(&handle, &url).await).unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
}

/// A plain GET through the kube client (the body as text).
async fn reqwest_like_get(handle: &SandboxHandle, path: &str) -> String {
    let client = handle.client().unwrap();
    client
        .request_text(http::Request::get(path).body(vec![]).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_input_never_breaks_the_server() {
    let (_s, client) = sandbox().await;
    let bodies: [&[u8]; 5] = [b"", b"{", b"[]", b"null", b"{\"metadata\": 5}"];
    for body in bodies {
        let req = http::Request::post("/api/v1/namespaces/default/pods")
            .header("content-type", "application/json")
            .body(body.to_vec())
            .unwrap();
        let code = status(client.request::<Value>(req).await).0;
        assert!(
            (400..500).contains(&code),
            "body {:?} gave {code}",
            String::from_utf8_lossy(body)
        );
    }
    let unknown = http::Request::get("/apis/nope.example/v1/things")
        .body(vec![])
        .unwrap();
    assert_eq!(status(client.request::<Value>(unknown).await).0, 404);
    let wrong_media = http::Request::patch("/api/v1/namespaces/default/pods/x")
        .header("content-type", "text/plain")
        .body(b"x".to_vec())
        .unwrap();
    assert_eq!(status(client.request::<Value>(wrong_media).await).0, 415);
    // Still serving.
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("fine"))
        .await
        .unwrap();
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (handle, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let before = handle.store().resource_version();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let would = pods.create(&dry, &pod("dry")).await.unwrap();
    assert_eq!(
        would.spec.unwrap().restart_policy.as_deref(),
        Some("Always")
    );
    assert_eq!(status(pods.get("dry").await).0, 404);
    pods.create(&PostParams::default(), &pod("real"))
        .await
        .unwrap();
    let rv = handle.store().resource_version();
    let patched = pods
        .patch(
            "real",
            &PatchParams {
                dry_run: true,
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.labels().get("x").map(String::as_str), Some("y"));
    assert!(pods.get("real").await.unwrap().labels().get("x").is_none());
    pods.delete(
        "real",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(pods.get("real").await.is_ok());
    assert_eq!(handle.store().resource_version(), rv);
    assert!(rv > before);
}
