//! The taint manager (taint-eviction controller, SEMANTICS.md B5): for the NoExecute
//! taints of a node, a pod that does not tolerate one is deleted at once; a pod whose
//! tolerations carry `tolerationSeconds` is deleted when the shortest expires, counted
//! from the taint's `timeAdded`; a toleration without `tolerationSeconds` never expires.
//! The deletion is a DisruptionTarget condition (`DeletionByTaintManager`), then a
//! graceful delete. Scheduled deletions are cancelled when the taints go, or when
//! tolerations added to the pod tolerate them for ever; every change of a pod on a
//! tainted node is looked at again, as upstream's pod update handler does.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Taint, Toleration};
use serde::Deserialize;
use serde_json::json;

use crate::api::object::{self, ObjectKey, StoredObject};
use crate::api::{DeleteOptions, admission};

use super::super::event_sink::{Involved, Source};
use super::super::taints::tolerates;
use super::super::world::{ControlTimer, Timer, World};

const SOURCE: Source<'static> = Source {
    component: "taint-eviction-controller",
    host: None,
};

/// Scheduled deletions (bound: pods on NoExecute-tainted nodes) and the uids already
/// deleted (bound: pods; dropped when the pod goes).
#[derive(Debug, Default)]
pub struct TaintManager {
    scheduled: HashMap<ObjectKey, Scheduled>,
    evicted: HashSet<String>,
    seq: u64,
}

#[derive(Debug)]
struct Scheduled {
    uid: String,
    at: jiff::Timestamp,
    seq: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TolerationsOnly {
    spec: TolerationsSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TolerationsSpec {
    tolerations: Vec<Toleration>,
}

impl TaintManager {
    /// The pod went away.
    pub fn forget(&mut self, key: &ObjectKey, uid: &str) {
        if self.scheduled.get(key).is_some_and(|s| s.uid == uid) {
            self.scheduled.remove(key);
        }
        self.evicted.remove(uid);
    }

    /// Decides for one pod on a node with NoExecute taints `taints` (none: cancel).
    pub fn process(&mut self, sh: &mut World, key: &ObjectKey, taints: &[Taint]) {
        let Some(pod) = sh.pods.get(key).cloned() else {
            return;
        };
        if self.evicted.contains(&pod.uid) {
            return;
        }
        if taints.is_empty() {
            self.cancel(sh, key, &pod);
            return;
        }
        let tolerations = serde_json::from_slice::<TolerationsOnly>(&pod.json)
            .map(|t| t.spec.tolerations)
            .unwrap_or_default();
        let now = sh.now();
        let mut used: Vec<&Toleration> = Vec::new();
        let mut all_tolerated = true;
        for taint in taints {
            match tolerations.iter().find(|t| tolerates(t, taint)) {
                Some(t) => used.push(t),
                None => all_tolerated = false,
            }
        }
        let at = if all_tolerated {
            // Shortest tolerationSeconds among those used; none: tolerated for ever.
            let Some(seconds) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
                self.cancel(sh, key, &pod);
                return;
            };
            let start = taints
                .iter()
                .filter_map(|t| t.time_added.as_ref().map(|x| x.0))
                .min()
                .unwrap_or(now);
            start
                .saturating_add(jiff::SignedDuration::from_secs(seconds.max(0)))
                .unwrap_or(now)
        } else {
            now
        };
        if let Some(s) = self.scheduled.get(key)
            && s.uid == pod.uid
            && s.at <= at
        {
            return;
        }
        if at <= now {
            self.scheduled.remove(key);
            self.evict(sh, key, pod.uid.clone());
            return;
        }
        self.seq += 1;
        self.scheduled.insert(
            key.clone(),
            Scheduled {
                uid: pod.uid.clone(),
                at,
                seq: self.seq,
            },
        );
        let seq = self.seq;
        sh.schedule(
            at,
            Timer::Control(ControlTimer::Evict {
                key: key.clone(),
                seq,
            }),
        );
    }

    /// Cancels the scheduled deletion of `pod`, if any, with the upstream event.
    fn cancel(&mut self, sh: &mut World, key: &ObjectKey, pod: &StoredObject) {
        if self.scheduled.remove(key).is_some() {
            let now = sh.now();
            sh.events.record(
                &sh.store,
                now,
                &Involved::pod(pod),
                SOURCE,
                "Normal",
                "TaintManagerEviction",
                &format!("Cancelling deletion of Pod {}/{}", key.0, key.1),
            );
        }
    }

    /// A scheduled deletion is due.
    pub fn fire(&mut self, sh: &mut World, key: ObjectKey, seq: u64) {
        let Some(s) = self.scheduled.get(&key) else {
            return;
        };
        if s.seq != seq {
            return;
        }
        let Some(s) = self.scheduled.remove(&key) else {
            return;
        };
        self.evict(sh, &key, s.uid);
    }

    /// DisruptionTarget, an event, then a graceful delete of the pod with `uid`.
    fn evict(&mut self, sh: &mut World, key: &ObjectKey, uid: String) {
        self.evicted.insert(uid.clone());
        let now = sh.now();
        let stamp = object::format_time(now);
        let marked = sh.update_pod_status(key, &uid, super::node_lifecycle::MANAGER, |pod| {
            admission::set_condition(
                pod,
                json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                   "lastTransitionTime": stamp, "reason": "DeletionByTaintManager",
                   "message": "Taint manager: deleting due to NoExecute taint"}),
            );
        });
        let Ok(pod) = marked else {
            return;
        };
        sh.events.record(
            &sh.store,
            now,
            &Involved::pod(&pod),
            SOURCE,
            "Normal",
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {}/{}", key.0, key.1),
        );
        let opts = DeleteOptions {
            precondition_uid: Some(uid),
            ..Default::default()
        };
        if let Err(e) = sh.store.delete(&sh.apis.pods, Some(&key.0), &key.1, &opts) {
            tracing::debug!(pod = ?key, error = %e, "taint manager delete failed");
        }
    }
}
