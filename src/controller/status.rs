//! Policy status through server-side apply (field manager `podwarden`; a shard other
//! than 0 writes only its own `status.shards` entry, under its own manager: see
//! [`super::shard`]).
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
use podwarden_model::policy::{
    CONDITION_READY, PodLifecyclePolicy, PodLifecyclePolicyStatus, RECENT_FINDINGS_LIMIT,
    ShardStatus,
};
use serde_json::Value;
use tokio::sync::Notify;

use super::engine::{PolicyCounts, PolicyKey, PolicyState};
use super::leader::Leadership;
use super::metrics::Metrics;
use super::shard::Shard;

pub const FIELD_MANAGER: &str = "podwarden";
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The status a policy's state gives. `Ready` is True while the spec is valid; its
/// `lastTransitionTime` is `ready_since` (kept by the caller, so that it changes only
/// when the status does).
pub fn status_of(state: &PolicyState, ready_since: &jiff::Timestamp) -> PodLifecyclePolicyStatus {
    let entry = entry_of(&state.counts);
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
        pods_audited: entry.pods_audited,
        violations: entry.violations,
        findings_by_rule: entry.findings_by_rule,
        recent_findings: entry.recent_findings,
        recreated: entry.recreated,
        shards: BTreeMap::new(),
    }
}

/// What a shard's counts give as its `status.shards` entry (also the totals of an
/// unsharded controller).
pub fn entry_of(counts: &PolicyCounts) -> ShardStatus {
    ShardStatus {
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

/// A status apply: its field manager and body (the `status` object).
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub manager: String,
    pub status: Value,
}

/// What this controller applies for a policy: the whole status when it is the only one
/// (`shard` None); for shard i/n its entry, and for shard 0 also the totals, the sums
/// of the entries of the same n (the others' as the policy last showed them).
pub fn desired(
    state: &PolicyState,
    ready_since: &jiff::Timestamp,
    shard: Option<Shard>,
) -> Desired {
    let mut status = status_of(state, ready_since);
    let Some(shard) = shard else {
        return Desired {
            manager: FIELD_MANAGER.into(),
            status: serde_json::to_value(&status).unwrap_or_default(),
        };
    };
    let own = entry_of(&state.counts);
    if shard.index != 0 {
        return Desired {
            manager: shard.field_manager(),
            status: serde_json::json!({"shards": {shard.key(): own}}),
        };
    }
    let entries: Vec<&ShardStatus> = std::iter::once(&own)
        .chain((1..shard.count).filter_map(|i| {
            state.shard_entries.get(
                &Shard {
                    index: i,
                    count: shard.count,
                }
                .key(),
            )
        }))
        .collect();
    status.pods_audited = entries.iter().map(|e| e.pods_audited).sum();
    status.violations = entries.iter().map(|e| e.violations).sum();
    status.recreated = entries.iter().map(|e| e.recreated).sum();
    status.findings_by_rule = BTreeMap::new();
    for e in &entries {
        for (rule, n) in &e.findings_by_rule {
            *status.findings_by_rule.entry(rule.clone()).or_default() += n;
        }
    }
    // Newest first within each shard; the shards taken in turn.
    status.recent_findings = Vec::new();
    for i in 0..RECENT_FINDINGS_LIMIT {
        for e in &entries {
            if let Some(f) = e.recent_findings.get(i)
                && status.recent_findings.len() < RECENT_FINDINGS_LIMIT
            {
                status.recent_findings.push(f.clone());
            }
        }
    }
    status.shards = BTreeMap::from([(shard.key(), own)]);
    Desired {
        manager: FIELD_MANAGER.into(),
        status: serde_json::to_value(&status).unwrap_or_default(),
    }
}

#[derive(Debug, Default)]
struct Slots {
    desired: BTreeMap<PolicyKey, Desired>,
}

/// Latest desired status per policy, shared by the audit loop and the writer.
#[derive(Debug, Default)]
pub struct StatusBoard {
    slots: Mutex<Slots>,
    notify: Notify,
}

impl StatusBoard {
    pub fn offer(&self, key: PolicyKey, status: Desired) {
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

    fn take(&self) -> BTreeMap<PolicyKey, Desired> {
        std::mem::take(&mut self.slots.lock().unwrap_or_else(|e| e.into_inner()).desired)
    }

    /// Puts back what could not be written, unless something newer came meanwhile.
    fn put_back(&self, key: PolicyKey, status: Desired) {
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
    let mut written: HashMap<PolicyKey, Desired> = HashMap::new();
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

async fn apply(client: &Client, key: &PolicyKey, desired: &Desired) -> Result<(), kube::Error> {
    let api: Api<PodLifecyclePolicy> = Api::namespaced(client.clone(), &key.0);
    let patch = serde_json::json!({
        "apiVersion": "podwarden.dev/v1alpha1",
        "kind": "PodLifecyclePolicy",
        "status": desired.status,
    });
    api.patch_status(
        &key.1,
        &PatchParams::apply(&desired.manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}
