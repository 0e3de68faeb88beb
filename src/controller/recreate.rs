//! Creating replacements: the plans the audit loop makes ([`super::orphans::Plan`]),
//! written on their own task by the lease holder only, at most `qps` per second.
//!
//! Every create is safe to repeat: the replacement's name is deterministic, so a create
//! made again (a retry, a restart, a replica that led a moment ago) answers 409, and
//! the existing pod is checked to be this same replacement (its
//! `podwarden.dev/original-uid` and `podwarden.dev/attempt`) before it counts as done.
//! A lost pod whose object is still there (a terminal pod) is first marked with the
//! replacement's name (`podwarden.dev/replacement`), so that its later deletion does not
//! free its name for a second replacement.
//!
//! Bounds: at most `qps` creates per second after a burst of [`BURST`] (a token bucket);
//! a queue of [`QUEUE_LIMIT`] plans (a plan that does not fit is reported as not
//! recreated, never silently dropped); [`WRITE_ATTEMPTS`] tries per create with back-off;
//! a standby keeps plans for [`STANDBY_KEEP`](super::events::STANDBY_KEEP), as its Events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use podwarden_model::orphans::{
    ATTEMPT_ANNOTATION, ORIGINAL_UID_ANNOTATION, REPLACEMENT_ANNOTATION,
};
use tokio::sync::{Notify, mpsc};

use super::events::STANDBY_KEEP;
use super::leader::Leadership;
use super::orphans::{Outcome, Plan, Written};
use super::pace::TokenBucket;
use super::pods::Backoff;

pub const QUEUE_LIMIT: usize = 1024;
/// Creates that may go at once after a quiet spell (a node's pods lost together), before
/// `qps` paces them.
pub const BURST: f64 = 20.0;
pub const WRITE_ATTEMPTS: u32 = 5;
/// Outcomes waiting for the audit loop (a full channel pauses the writer).
pub const OUTCOME_CHANNEL: usize = 1024;

/// The plans the audit loop queues and the writer drains.
#[derive(Debug, Default)]
pub struct CreateQueue {
    inner: Mutex<VecDeque<(Plan, Instant)>>,
    notify: Notify,
}

impl CreateQueue {
    /// Queues `plan`; gives it back when the queue is full.
    pub fn push(&self, plan: Plan) -> Result<(), Box<Plan>> {
        let mut queue = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= QUEUE_LIMIT {
            return Err(Box::new(plan));
        }
        queue.push_back((plan, Instant::now()));
        drop(queue);
        self.notify.notify_one();
        Ok(())
    }

    /// A replacement of `lineage` made by `attempt` exists: queued plans of that lineage
    /// up to that attempt are done. Returns how many went.
    pub fn cancel(&self, lineage: &str, attempt: u32) -> usize {
        let mut queue = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let before = queue.len();
        queue.retain(|(p, _)| !(p.lineage == lineage && p.attempt <= attempt));
        before - queue.len()
    }

    /// Whether the plan of `lineage`'s `attempt` is queued.
    pub fn contains(&self, lineage: &str, attempt: u32) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(p, _)| p.lineage == lineage && p.attempt == attempt)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self) -> Option<(Plan, Instant)> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    fn push_front(&self, plan: Plan, at: Instant) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_front((plan, at));
    }

    /// A standby's plans older than [`STANDBY_KEEP`] were the leader's to make.
    fn expire(&self, now: Instant) -> Vec<Plan> {
        let mut queue = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone = Vec::new();
        while queue
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) > STANDBY_KEEP)
        {
            if let Some((plan, _)) = queue.pop_front() {
                gone.push(plan);
            }
        }
        gone
    }
}

/// Makes queued replacements at most `qps` per second while this replica leads, until
/// the outcome receiver is gone.
pub async fn write_loop(
    client: Client,
    queue: Arc<CreateQueue>,
    outcomes: mpsc::Sender<(Outcome, Duration)>,
    qps: f64,
    leadership: Leadership,
) {
    let mut bucket = TokenBucket::new(qps, BURST, tokio::time::Instant::now());
    loop {
        if !leadership.is_leader() {
            for plan in queue.expire(Instant::now()) {
                let outcome = Outcome {
                    plan,
                    written: Written::NotLeader,
                };
                if outcomes.send((outcome, Duration::ZERO)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let Some((plan, queued)) = queue.pop() else {
            tokio::select! {
                _ = queue.notify.notified() => {}
                // Leadership may end while idle: look again now and then.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let slot = bucket.take(tokio::time::Instant::now());
        tokio::time::sleep_until(slot).await;
        if !leadership.is_leader() {
            queue.push_front(plan, queued);
            continue;
        }
        let written = create(&client, &plan).await;
        let outcome = Outcome { plan, written };
        if outcomes.send((outcome, queued.elapsed())).await.is_err() {
            return;
        }
    }
}

/// Marks the lost object (when it is still there), then creates the replacement.
async fn create(client: &Client, plan: &Plan) -> Written {
    let api: Api<Pod> = Api::namespaced(client.clone(), &plan.lost.namespace);
    let Some(body) = &plan.body else {
        return Written::Failed("a dry-run plan reached the writer".into());
    };
    let pod: Pod = match serde_json::from_value(body.clone()) {
        Ok(pod) => pod,
        Err(e) => return Written::Failed(format!("the replacement is not a valid Pod: {e}")),
    };
    if plan.mark_original {
        mark(&api, plan).await;
    }
    let mut backoff = Backoff::default();
    for attempt in 1..=WRITE_ATTEMPTS {
        let error = match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                return Written::Created {
                    uid: created.metadata.uid.unwrap_or_default(),
                };
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                match api.get_opt(&plan.name).await {
                    Ok(Some(existing)) => return same_replacement(&existing, plan),
                    // Deleted in between: create again.
                    Ok(None) => "the name was freed while it was checked".to_string(),
                    Err(e) => e.to_string(),
                }
            }
            Err(kube::Error::Api(status)) if !matches!(status.code, 429 | 500..=504) => {
                return Written::Failed(format!(
                    "{} {}: {}",
                    status.code, status.reason, status.message
                ));
            }
            Err(e) => e.to_string(),
        };
        if attempt == WRITE_ATTEMPTS {
            return Written::Failed(format!("after {WRITE_ATTEMPTS} tries: {error}"));
        }
        tracing::debug!(error = %error, attempt, pod = %plan.name, "create failed; retrying");
        backoff.wait().await;
    }
    Written::Failed("no try was made".into())
}

/// Whether the pod holding the replacement's name is this replacement.
fn same_replacement(existing: &Pod, plan: &Plan) -> Written {
    let annotation = |key: &str| {
        existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    };
    let attempt = plan.attempt.to_string();
    if annotation(ORIGINAL_UID_ANNOTATION) == Some(plan.lineage.as_str())
        && annotation(ATTEMPT_ANNOTATION) == Some(attempt.as_str())
    {
        Written::Existed {
            uid: existing.metadata.uid.clone().unwrap_or_default(),
        }
    } else {
        Written::NameTaken
    }
}

/// `podwarden.dev/replacement` on the lost object. A lost object already gone needs no
/// mark; any other failure is logged and the create goes on (its name is deterministic
/// either way; the mark only keeps a later deletion from freeing the original name).
async fn mark(api: &Api<Pod>, plan: &Plan) {
    let patch = serde_json::json!({
        "metadata": {
            "uid": plan.lost.uid,
            "annotations": {REPLACEMENT_ANNOTATION: plan.name},
        }
    });
    match api
        .patch(
            &plan.lost.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            tracing::warn!(error = %e, pod = %plan.lost.name, "cannot mark the lost pod with its replacement")
        }
    }
}
