//! Shared set-up of the controller tests: a stepped simulated cluster whose clock starts
//! at the machine's, the controller started and synced, bounded waits, reads of the
//! Events the controller wrote.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, CustomResourceExt};
use podwarden::controller::{self, Handle, Options};
use podwarden_model::policy::{PodLifecyclePolicy, PodLifecyclePolicySpec};
use podwarden_sandbox::sim::{SimConfig, SimHandle};

use super::sim_common::*;

/// Wall-clock bound on waiting for the controller to act on what it was sent (a
/// failure bound, not a timing goal).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A stepped cluster whose clock starts at the machine's (the controller's audit time
/// is the later of the two).
pub async fn sandbox() -> SimHandle {
    sandbox_with(2).await
}

/// [`sandbox`] with `nodes` nodes.
pub async fn sandbox_with(nodes: usize) -> SimHandle {
    let start =
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("a whole second");
    cluster_with(SimConfig {
        nodes,
        start: Some(start),
        ..stepped()
    })
    .await
}

/// Creates `pod` (JSON) in the namespace its metadata names.
pub async fn create_pod(client: &Client, pod: serde_json::Value) {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).expect("pod"),
    )
    .await
    .expect("create pod");
}

/// Waits (bounded) until `check` holds, letting the controller run between tries.
pub async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn podwarden_events(client: &Client, ns: &str, pod: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            e.reporting_controller.as_deref() == Some(controller::events::REPORTING_CONTROLLER)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
        })
        .collect()
}

/// Starts the controller and waits until it has synced.
pub async fn start_with(client: &Client, options: Options) -> Handle {
    let mut handle = controller::start(client.clone(), options)
        .await
        .expect("controller starts");
    tokio::time::timeout(PATIENCE, handle.ready())
        .await
        .expect("the controller syncs");
    handle
}

/// Installs the CRD and a policy `name` in `default` with `spec` (JSON).
pub async fn install_policy(client: &Client, name: &str, spec: serde_json::Value) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &PodLifecyclePolicy::crd())
        .await
        .expect("create the CRD");
    let policies: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), "default");
    let spec: PodLifecyclePolicySpec = serde_json::from_value(spec).expect("policy spec");
    policies
        .create(&PostParams::default(), &PodLifecyclePolicy::new(name, spec))
        .await
        .expect("create the policy");
}
