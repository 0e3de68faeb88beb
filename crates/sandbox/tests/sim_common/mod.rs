//! Shared set-up of the simulator tests: a stepped simulated cluster served over HTTP,
//! pod builders with container scripts, and reads through `kube::Client`.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use podwarden_sandbox::api::SandboxConfig;
use podwarden_sandbox::sim::{NodeShape, SimConfig, SimHandle, Simulation};
use serde_json::{Value, json};

/// Simulated start time of every test cluster: 2026-08-01T10:00:00Z.
pub const START: i64 = 1_785_578_400;

/// A stepped cluster (time moves only through `advance`) with `nodes` default nodes.
pub async fn cluster(nodes: usize) -> SimHandle {
    cluster_with(SimConfig { nodes, ..stepped() }).await
}

pub fn stepped() -> SimConfig {
    SimConfig {
        nodes: 3,
        node_shape: NodeShape::default(),
        seed: 7,
        speed: None,
        start: Some(jiff::Timestamp::from_second(START).expect("valid start")),
        ..SimConfig::default()
    }
}

pub async fn cluster_with(config: SimConfig) -> SimHandle {
    Simulation::start(SandboxConfig::default(), config)
        .await
        .expect("simulation starts")
}

/// Runs `secs` seconds of simulated time.
pub fn advance(sim: &SimHandle, secs: u64) {
    sim.advance(Duration::from_secs(secs))
        .expect("stepped clock");
}

/// Runs `secs` seconds in one-second steps (for watching intermediate states).
pub fn advance_by_seconds(sim: &SimHandle, secs: u64, mut each: impl FnMut(u64)) {
    for s in 1..=secs {
        advance(sim, 1);
        each(s);
    }
}

/// A container spec; `script` becomes its `sandbox.podwarden.dev/script.<name>` annotation.
pub struct C<'a> {
    pub name: &'a str,
    pub script: Option<&'a str>,
    /// Container-level `restartPolicy` (sidecars: `Always` on an init container).
    pub restart_policy: Option<&'a str>,
}

pub fn c<'a>(name: &'a str, script: &'a str) -> C<'a> {
    C {
        name,
        script: Some(script),
        restart_policy: None,
    }
}

/// A bare pod in `default` with `containers`, pod `restartPolicy`, and `init` containers.
pub fn pod(name: &str, restart_policy: &str, init: &[C<'_>], containers: &[C<'_>]) -> Value {
    let mut annotations = serde_json::Map::new();
    let spec = |cs: &[C<'_>], annotations: &mut serde_json::Map<String, Value>| -> Vec<Value> {
        cs.iter()
            .map(|c| {
                if let Some(s) = c.script {
                    annotations
                        .insert(format!("sandbox.podwarden.dev/script.{}", c.name), json!(s));
                }
                let mut v = json!({"name": c.name, "image": "registry.example/app:1"});
                if let Some(p) = c.restart_policy {
                    v["restartPolicy"] = json!(p);
                }
                v
            })
            .collect()
    };
    let init = spec(init, &mut annotations);
    let containers = spec(containers, &mut annotations);
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"restartPolicy": restart_policy, "containers": containers},
    });
    if !init.is_empty() {
        pod["spec"]["initContainers"] = json!(init);
    }
    pod
}

pub async fn create(sim: &SimHandle, pod: Value) -> Pod {
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    let pod: Pod = serde_json::from_value(pod).expect("pod JSON");
    api.create(&PostParams::default(), &pod)
        .await
        .expect("create pod")
}

pub async fn get(sim: &SimHandle, name: &str) -> Pod {
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    api.get(name).await.expect("get pod")
}

pub async fn try_get(sim: &SimHandle, name: &str) -> Option<Pod> {
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    api.get_opt(name).await.expect("get pod")
}

pub fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

pub fn condition(pod: &Pod, kind: &str) -> Option<(String, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn restarts(pod: &Pod, container: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .map(|c| c.restart_count)
        .unwrap_or(-1)
}

/// Reasons of the Events recorded about pod `name`, oldest first.
pub async fn event_reasons(sim: &SimHandle, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(sim.client().expect("client"), "default");
    let mut events = api
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .expect("list events")
        .items;
    events.sort_by_key(|e| {
        e.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    });
    events.into_iter().filter_map(|e| e.reason).collect()
}
