//! Policy status through server-side apply (field manager `podwarden`).
//!
//! The audit loop hands over the latest desired status of each changed policy; the
//! writer applies it when it differs from what it last wrote, at most once per
//! [`MIN_INTERVAL`] per policy, retrying failed writes with back-off without ever blocking
//! the audit. Bounds: one desired and one written status per policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use podwarden_model::Severity;
use podwarden_model::policy::{CONDITION_READY, PodLifecyclePolicy, PodLifecyclePolicyStatus};
use tokio::sync::Notify;

use super::engine::{PolicyKey, PolicyState};
use super::leader::Leadership;
use super::metrics::Metrics;

pub const FIELD_MANAGER: &str = "podwarden";
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The status a policy's state gives. `Ready` is True while the spec is valid; its
/// `lastTransitionTime` is `ready_since` (kept by the caller, so that it changes only
/// when the status does).
pub fn status_of(state: &PolicyState, ready_since: &jiff::Timestamp) -> PodLifecyclePolicyStatus {
    let counts = &state.counts;
    let ready = match &state.config {
        Ok(_) => Condition {
            type_: CONDITION_READY.into(),
            status: "True".into(),
            reason: "Valid".into(),
            message: "the policy is applied to the pods it selects".into(),
            last_transition_time: Time(*ready_since),
            observed_generation: state.generation,
        },
        Err(e) => Condition {
            type_: CONDITION_READY.into(),
            status: "False".into(),
            reason: e.reason().into(),
            message: e.to_string(),
            last_transition_time: Time(*ready_since),
            observed_generation: state.generation,
        },
    };
    PodLifecyclePolicyStatus {
        observed_generation: state.generation,
        conditions: vec![ready],
        pods_audited: counts.pods,
        violations: counts
            .by_severity
            .get(&Severity::Violation)
            .copied()
            .unwrap_or(0),
        findings_by_rule: counts
            .by_rule
            .iter()
            .map(|(r, n)| (r.as_str().to_string(), *n))
            .collect(),
        recent_findings: counts.recent.clone(),
        recreated: counts.recreated,
    }
}

#[derive(Debug, Default)]
struct Slots {
    desired: BTreeMap<PolicyKey, PodLifecyclePolicyStatus>,
}

/// Latest desired status per policy, shared by the audit loop and the writer.
#[derive(Debug, Default)]
pub struct StatusBoard {
    slots: Mutex<Slots>,
    notify: Notify,
}

impl StatusBoard {
    pub fn offer(&self, key: PolicyKey, status: PodLifecyclePolicyStatus) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .desired
            .insert(key, status);
        self.notify.notify_one();
    }

    /// A policy is gone: nothing more to write for it.
    pub fn withdraw(&self, key: &PolicyKey) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .desired
            .remove(key);
    }

    fn take(&self) -> BTreeMap<PolicyKey, PodLifecyclePolicyStatus> {
        std::mem::take(&mut self.slots.lock().unwrap_or_else(|e| e.into_inner()).desired)
    }

    /// Puts back what could not be written, unless something newer came meanwhile.
    fn put_back(&self, key: PolicyKey, status: PodLifecyclePolicyStatus) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .desired
            .entry(key)
            .or_insert(status);
    }
}

/// Applies desired statuses until the task is aborted.
pub async fn write_loop(
    client: Client,
    board: Arc<StatusBoard>,
    metrics: Arc<Metrics>,
    leadership: Leadership,
) {
    let mut written: HashMap<PolicyKey, PodLifecyclePolicyStatus> = HashMap::new();
    let mut retry = MIN_INTERVAL;
    loop {
        if !leadership.is_leader() {
            // A standby keeps the latest desired statuses; another replica writes
            // meanwhile, so what this one last wrote says nothing any more.
            written.clear();
            tokio::time::sleep(MIN_INTERVAL).await;
            continue;
        }
        let desired = board.take();
        if desired.is_empty() {
            board.notify.notified().await;
            continue;
        }
        let mut failed = false;
        for (key, status) in desired {
            if written.get(&key) == Some(&status) {
                continue;
            }
            if !leadership.is_leader() {
                board.put_back(key, status);
                continue;
            }
            match apply(&client, &key, &status).await {
                Ok(()) => {
                    metrics.status_writes.inc();
                    written.insert(key, status);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    // The policy is gone; its next incarnation starts afresh.
                    written.remove(&key);
                }
                Err(e) => {
                    tracing::warn!(policy = %format!("{}/{}", key.0, key.1), error = %e, "status write failed");
                    metrics.status_write_errors.inc();
                    board.put_back(key, status);
                    failed = true;
                }
            }
        }
        if failed {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        } else {
            retry = MIN_INTERVAL;
            tokio::time::sleep(MIN_INTERVAL).await;
        }
    }
}

async fn apply(
    client: &Client,
    key: &PolicyKey,
    status: &PodLifecyclePolicyStatus,
) -> Result<(), kube::Error> {
    let api: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), &key.0);
    let patch = serde_json::json!({
        "apiVersion": "podwarden.dev/v1alpha1",
        "kind": "PodLifecyclePolicy",
        "status": status,
    });
    api.patch_status(
        &key.1,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}
