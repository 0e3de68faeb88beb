//! The orphan guard: a finalizer ([`FINALIZER`]) on every pod orphan recreation may have
//! to replace, so that the pod's object cannot vanish before its final state is seen.
//!
//! Without it, a pod removed while no replica watches (every replica restarting, or a
//! watch gap after 410 Gone) takes its last state with it: PodGC writes Failed and
//! deletes with grace 0 in one pass. With it, the object stays (Terminating) until the
//! lease holder has decided the loss and, when it recreates, has seen its replacement
//! created; then the finalizer goes and the deletion completes.
//!
//! Level-triggered: the audit loop says which pods want the finalizer ([`Guards::observe`]);
//! the writer ([`write_loop`]), on the lease holder only, makes what each pod has match
//! what it wants, one pod at a time, at most `qps` per second. So a new leader, a
//! restarted controller or a failed write converges again from the pods' own state.
//!
//! Which pods want it: bare pods a policy in Enforce mode selects, bound to a node, whose
//! restartPolicy the policy recreates, until their loss is decided (and replaced). Not a
//! pod a person deletes on a healthy node (its finalizer is released at once, so that
//! `kubectl delete` does not wait on podwarden), nor any pod that stops being selected.
//! If podwarden is removed from a cluster, `podwarden release-guards` removes the
//! finalizer from every pod left with it ([`super::release`]; the chart's post-delete
//! hook runs it).
//!
//! Bounds: one entry per bare pod an Enforce policy selects; failed writes are retried
//! after [`RETRY_AFTER`]; [`WRITE_ATTEMPTS`] conflict retries per write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::Notify;

use super::leader::Leadership;
use super::metrics::Metrics;
use super::orphans::PodRef;
use super::pace::TokenBucket;

pub const FINALIZER: &str = "podwarden.dev/orphan-guard";
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
pub const WRITE_ATTEMPTS: u32 = 3;

#[derive(Debug)]
struct Entry {
    pod: PodRef,
    has: bool,
    want: bool,
    /// A write is under way, or failed and waits until then.
    busy: bool,
    retry_at: Option<Instant>,
}

/// What each guarded pod has and wants, shared by the audit loop and the writer.
#[derive(Debug, Default)]
pub struct Guards {
    inner: Mutex<HashMap<Box<str>, Entry>>,
    notify: Notify,
}

/// One write to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Add(PodRef),
    Release(PodRef),
}

impl Guards {
    /// A pod event: `has` says the pod carries the finalizer, `want` whether it should.
    pub fn observe(&self, pod: PodRef, has: bool, want: bool) {
        let mut pods = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !has && !want {
            pods.remove(pod.uid.as_str());
            return;
        }
        let differs = has != want;
        match pods.get_mut(pod.uid.as_str()) {
            Some(e) => {
                e.has = has;
                e.want = want;
            }
            None => {
                pods.insert(
                    pod.uid.as_str().into(),
                    Entry {
                        pod,
                        has,
                        want,
                        busy: false,
                        retry_at: None,
                    },
                );
            }
        }
        drop(pods);
        if differs {
            self.notify.notify_one();
        }
    }

    /// The pod's loss is decided (and replaced): its finalizer may go.
    pub fn release(&self, uid: &str) {
        let mut pods = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = pods.get_mut(uid) {
            e.want = false;
            if !e.has && !e.busy {
                pods.remove(uid);
            }
        }
        drop(pods);
        self.notify.notify_one();
    }

    /// The pod's object is gone.
    pub fn gone(&self, uid: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// Whether the pod still wants the finalizer.
    pub fn wants(&self, uid: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .is_some_and(|e| e.want)
    }

    /// Pods whose finalizer does not match what they want.
    pub fn pending(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.has != e.want)
            .count()
    }

    /// The next write to make (marked busy until [`Guards::done`]).
    fn next(&self, now: Instant) -> Option<Op> {
        let mut pods = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Releases first: a deletion may be waiting on one.
        let pick = |release: bool| {
            pods.iter()
                .filter(|(_, e)| {
                    !e.busy
                        && e.has != e.want
                        && e.want != release
                        && e.retry_at.is_none_or(|t| now >= t)
                })
                .map(|(uid, _)| uid.clone())
                .next()
        };
        let uid = pick(true).or_else(|| pick(false))?;
        let e = pods.get_mut(&uid)?;
        e.busy = true;
        Some(if e.want {
            Op::Add(e.pod.clone())
        } else {
            Op::Release(e.pod.clone())
        })
    }

    /// The write for `uid` ended: the pod has the finalizer or not (`None`: the write
    /// failed and is retried later; `Some` with the pod gone removes the entry).
    fn done(&self, uid: &str, result: Written, now: Instant) {
        let mut pods = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = pods.get_mut(uid) else {
            return;
        };
        e.busy = false;
        match result {
            Written::Has(has) => {
                e.has = has;
                e.retry_at = None;
                if !e.has && !e.want {
                    pods.remove(uid);
                }
            }
            Written::Gone => {
                pods.remove(uid);
            }
            Written::Retry => e.retry_at = Some(now + RETRY_AFTER),
        }
    }
}

/// What a finalizer write found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The pod has (true) or lacks (false) the finalizer now.
    Has(bool),
    /// The pod is gone, or another pod holds its name.
    Gone,
    /// The write failed; try again later.
    Retry,
}

/// Makes pods' finalizers match what they want, at most `qps` writes per second, while
/// this replica leads.
pub async fn write_loop(
    client: Client,
    guards: Arc<Guards>,
    metrics: Arc<Metrics>,
    qps: f64,
    leadership: Leadership,
) {
    // One write at a time: no burst.
    let mut bucket = TokenBucket::new(qps, 1.0, tokio::time::Instant::now());
    loop {
        if !leadership.is_leader() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let Some(op) = guards.next(Instant::now()) else {
            tokio::select! {
                _ = guards.notify.notified() => {}
                // Retries come due, and leadership may end, while idle.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        tokio::time::sleep_until(bucket.take(tokio::time::Instant::now())).await;
        let (pod, add) = match &op {
            Op::Add(p) => (p, true),
            Op::Release(p) => (p, false),
        };
        let written = if leadership.is_leader() {
            set_finalizer(&client, pod, add).await
        } else {
            Written::Retry
        };
        if written == Written::Retry {
            metrics.guard_write_errors.inc();
        } else {
            metrics.guard_writes.inc();
        }
        guards.done(&pod.uid, written, Instant::now());
    }
}

/// Adds or removes the finalizer on the pod, if it is still the same pod: read, then a
/// JSON patch conditional on the resourceVersion read (another writer's finalizers are
/// never lost), read again on a conflict.
pub async fn set_finalizer(client: &Client, pod: &PodRef, add: bool) -> Written {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    for _ in 0..WRITE_ATTEMPTS {
        let current = match api.get_opt(&pod.name).await {
            Ok(Some(p)) if p.metadata.uid.as_deref() == Some(pod.uid.as_str()) => p,
            Ok(_) => return Written::Gone,
            Err(e) => {
                tracing::debug!(error = %e, pod = %pod.name, "cannot read the pod");
                return Written::Retry;
            }
        };
        let mut finalizers = current.metadata.finalizers.clone().unwrap_or_default();
        let has = finalizers.iter().any(|f| f == FINALIZER);
        if has == add {
            return Written::Has(has);
        }
        if add && current.metadata.deletion_timestamp.is_some() {
            // An object being deleted may not gain a finalizer.
            return Written::Has(false);
        }
        if add {
            finalizers.push(FINALIZER.to_string());
        } else {
            finalizers.retain(|f| f != FINALIZER);
        }
        let rv = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let patch: json_patch::Patch = match serde_json::from_value(serde_json::json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
        ])) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the finalizer patch");
                return Written::Retry;
            }
        };
        match api
            .patch(
                &pod.name,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
        {
            Ok(_) => return Written::Has(add),
            Err(kube::Error::Api(s)) if s.code == 404 => return Written::Gone,
            // The test failed (the pod changed since it was read): read again.
            Err(kube::Error::Api(s)) if matches!(s.code, 409 | 422) => continue,
            Err(e) => {
                tracing::debug!(error = %e, pod = %pod.name, "finalizer write failed");
                return Written::Retry;
            }
        }
    }
    Written::Retry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str) -> PodRef {
        PodRef {
            namespace: "default".into(),
            name: format!("p-{uid}"),
            uid: uid.into(),
        }
    }

    #[test]
    fn releases_come_before_adds_and_a_busy_pod_is_not_written_twice() {
        let guards = Guards::default();
        let now = Instant::now();
        guards.observe(pod("a"), false, true);
        guards.observe(pod("b"), true, false);
        assert_eq!(guards.pending(), 2);
        assert_eq!(guards.next(now), Some(Op::Release(pod("b"))));
        assert_eq!(guards.next(now), Some(Op::Add(pod("a"))));
        assert_eq!(guards.next(now), None, "both busy");
        guards.done("b", Written::Has(false), now);
        guards.done("a", Written::Has(true), now);
        assert_eq!(guards.pending(), 0);
        assert!(guards.wants("a"));
        assert!(!guards.wants("b"));
    }

    #[test]
    fn a_failed_write_waits_then_is_tried_again() {
        let guards = Guards::default();
        let now = Instant::now();
        guards.observe(pod("a"), false, true);
        assert!(guards.next(now).is_some());
        guards.done("a", Written::Retry, now);
        assert_eq!(guards.next(now), None);
        assert_eq!(guards.next(now + RETRY_AFTER), Some(Op::Add(pod("a"))));
    }

    #[test]
    fn a_released_pod_without_the_finalizer_is_forgotten() {
        let guards = Guards::default();
        guards.observe(pod("a"), true, true);
        guards.release("a");
        assert_eq!(guards.next(Instant::now()), Some(Op::Release(pod("a"))));
        guards.done("a", Written::Has(false), Instant::now());
        assert!(guards.inner.lock().expect("lock").is_empty());
        guards.observe(pod("c"), false, false);
        assert!(guards.inner.lock().expect("lock").is_empty());
    }
}
