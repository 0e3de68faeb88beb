//! The scheduler (SEMANTICS.md A3): pods with no node, not being deleted, for
//! `default-scheduler`, are filtered against every node ([`fit::filter`]), scored
//! least-allocated, and bound to the best (ties broken with the seeded rng) through
//! `pods/binding`. A pod that fits nowhere gets PodScheduled=False `Unschedulable` with
//! the upstream message and a `FailedScheduling` event, and is retried with back-off
//! (1 s doubling to 10 s) once the cluster changed (a node, or a bound pod going away).
//!
//! Incremental state, never a scan of all pods per event:
//! - `entries`: one per node (bound: nodes), with what its non-terminal pods request;
//! - `bound`: one per non-terminal bound pod (bound: pods), to release their requests;
//! - `pending`: one per unbound pod of this scheduler (bound: pending pods), its spec
//!   decoded once per uid and generation; `active` and `parked` hold keys of `pending`.

pub mod fit;
pub mod quantity;

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::Deserialize;
use serde_json::json;

use crate::api::object::{self, ObjectKey, StoredObject};
use crate::api::{ApiError, admission};

use super::event_sink::{Involved, Source};
use super::pod_meta::PodMeta;
use super::world::{Change, ChangeKind, SchedulerTimer, Timer, World};
use fit::{NodeInfo, PodInfo, Reason, Requested, SchedulingPod, Used};

pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Pods tried per scheduling cycle before the step loop gets a turn again.
pub const MAX_PER_CYCLE: usize = 500;
pub const INITIAL_BACKOFF: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);
pub const MAX_BACKOFF: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);
/// Parked pods (tried since the last cluster change) are tried again at least this often.
pub const PARKED_FLUSH: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

const SOURCE: Source<'static> = Source {
    component: SCHEDULER_NAME,
    host: None,
};

#[derive(Debug)]
struct NodeEntry {
    info: NodeInfo,
    used: Used,
}

#[derive(Debug)]
struct Bound {
    uid: String,
    node: String,
    requested: Requested,
}

#[derive(Debug)]
struct Pending {
    uid: String,
    generation: Option<i64>,
    /// `None`: the spec could not be read; the pod is never scheduled.
    info: Option<Box<PodInfo>>,
    attempts: u32,
    /// In `active` (or being tried).
    queued: bool,
    /// `cluster_gen` when last tried.
    tried_gen: u64,
    /// The Unschedulable message last written (not rewritten while it stays the same).
    written: Option<String>,
}

/// Timers: one `Cycle` at a time, one `Flush` at a time, and one live `Retry` per
/// pending pod (stale ones, for pods bound or deleted meanwhile, fire once and drop).
#[derive(Debug, Default)]
pub struct Scheduler {
    /// One per node (bound: nodes).
    entries: Vec<NodeEntry>,
    /// Node name -> position in `entries` (bound: nodes).
    index: HashMap<String, usize>,
    /// Requests of pods bound to nodes the scheduler does not know, yet or any more
    /// (bound: nodes that pods name; dropped when their last pod goes).
    orphan_used: HashMap<String, Used>,
    /// Non-terminal bound pods (bound: pods).
    bound: HashMap<ObjectKey, Bound>,
    /// Unbound pods of this scheduler (bound: pods).
    pending: HashMap<ObjectKey, Pending>,
    /// Pending pods to try next, each at most once (bound: `pending`).
    active: VecDeque<ObjectKey>,
    /// Pods whose back-off is over but which were tried since the last change
    /// (bound: `pending`).
    parked: BTreeSet<ObjectKey>,
    /// Bumped when a node changes or a bound pod frees its requests.
    cluster_gen: u64,
    cycle_armed: bool,
    flush_wanted: bool,
    /// Where the next search over the nodes starts (upstream `nextStartNodeIndex`).
    next_start: usize,
    pub bound_count: u64,
    pub failed_attempts: u64,
}

/// The few fields of a pending pod's update worth reading.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct MetaOnly {
    metadata: PodMeta,
}

impl Scheduler {
    pub fn start(&mut self, sh: &mut World) {
        sh.schedule_in(PARKED_FLUSH, Timer::Scheduler(SchedulerTimer::Flush));
    }

    /// Pods waiting to be scheduled.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn on_pod(&mut self, sh: &mut World, change: &Change) {
        let pod = &change.object;
        let key = pod.key();
        if change.kind == ChangeKind::Deleted {
            self.pending.remove(&key);
            self.parked.remove(&key);
            self.release(sh, &key);
            return;
        }
        let node = pod.field("spec.nodeName").filter(|n| !n.is_empty());
        let terminal = matches!(
            pod.field("status.phase").as_deref(),
            Some("Succeeded" | "Failed")
        );
        if let Some(node) = node {
            if self.pending.remove(&key).is_some() {
                self.parked.remove(&key);
            }
            match self.bound.get(&key) {
                Some(b) if b.uid == pod.uid => {
                    if terminal {
                        self.release(sh, &key);
                    }
                }
                other => {
                    if other.is_some() {
                        self.release(sh, &key);
                    }
                    if !terminal {
                        let info = decode(pod).map(PodInfo::from_view).unwrap_or_default();
                        self.assume(key, pod.uid.clone(), node, Requested::from(&info));
                    }
                }
            }
            return;
        }
        if self.bound.get(&key).is_some_and(|b| b.uid != pod.uid) {
            self.release(sh, &key);
        }
        let name = pod.field("spec.schedulerName").unwrap_or_default();
        if !(name.is_empty() || name == SCHEDULER_NAME) || terminal {
            return;
        }
        if let Some(p) = self.pending.get_mut(&key)
            && p.uid == pod.uid
        {
            let meta = serde_json::from_slice::<MetaOnly>(&pod.json).unwrap_or_default();
            if meta.metadata.deletion_timestamp.is_some() {
                self.pending.remove(&key);
                self.parked.remove(&key);
            } else if meta.metadata.generation != p.generation {
                // The spec changed (tolerations added, gates removed): read it again.
                let view = decode(pod);
                p.generation = meta.metadata.generation;
                p.info = view.map(|v| Box::new(PodInfo::from_view(v)));
                p.tried_gen = u64::MAX;
                if !p.queued {
                    p.queued = true;
                    self.parked.remove(&key);
                    self.active.push_back(key);
                    self.arm_cycle(sh);
                }
            }
            return;
        }
        let view = decode(pod);
        if view
            .as_ref()
            .is_some_and(|v| v.metadata.deletion_timestamp.is_some())
        {
            return;
        }
        let generation = view.as_ref().and_then(|v| v.metadata.generation);
        self.parked.remove(&key);
        self.pending.insert(
            key.clone(),
            Pending {
                uid: pod.uid.clone(),
                generation,
                info: view.map(|v| Box::new(PodInfo::from_view(v))),
                attempts: 0,
                queued: true,
                tried_gen: u64::MAX,
                written: None,
            },
        );
        self.active.push_back(key);
        self.arm_cycle(sh);
    }

    pub fn on_node(&mut self, sh: &mut World, change: &Change) {
        let name = change.object.name.clone();
        if change.kind == ChangeKind::Deleted {
            if let Some(i) = self.index.remove(&name) {
                let entry = self.entries.swap_remove(i);
                if let Some(moved) = self.entries.get(i) {
                    self.index.insert(moved.info.name.clone(), i);
                }
                self.orphan_used.insert(name, entry.used);
            }
            self.changed(sh);
            return;
        }
        let node = match change.object.decode::<k8s_openapi::api::core::v1::Node>() {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(node = %name, error = %e, "scheduler skips an unreadable node");
                return;
            }
        };
        let info = NodeInfo::from_node(&node);
        match self.index.get(&name) {
            Some(&i) => {
                if self.entries[i].info == info {
                    return; // a heartbeat: nothing the scheduler reads changed
                }
                self.entries[i].info = info;
            }
            None => {
                let used = self.orphan_used.remove(&name).unwrap_or_default();
                self.index.insert(name, self.entries.len());
                self.entries.push(NodeEntry { info, used });
            }
        }
        self.changed(sh);
    }

    pub fn fire(&mut self, sh: &mut World, timer: SchedulerTimer) {
        match timer {
            SchedulerTimer::Cycle => self.cycle(sh),
            SchedulerTimer::Retry { key, attempts } => {
                let Some(p) = self.pending.get_mut(&key) else {
                    return;
                };
                if p.attempts != attempts || p.queued {
                    return;
                }
                if p.tried_gen != self.cluster_gen {
                    p.queued = true;
                    self.active.push_back(key);
                    self.arm_cycle(sh);
                } else {
                    self.parked.insert(key);
                }
            }
            SchedulerTimer::Flush => {
                self.flush_wanted = true;
                self.arm_cycle(sh);
                sh.schedule_in(PARKED_FLUSH, Timer::Scheduler(SchedulerTimer::Flush));
            }
        }
    }

    // ---- bookkeeping -------------------------------------------------------------

    fn used_mut(&mut self, node: &str) -> &mut Used {
        match self.index.get(node) {
            Some(&i) => &mut self.entries[i].used,
            None => self.orphan_used.entry(node.to_string()).or_default(),
        }
    }

    /// Counts a bound pod's requests on its node.
    fn assume(&mut self, key: ObjectKey, uid: String, node: String, requested: Requested) {
        self.used_mut(&node).add(&requested);
        self.bound.insert(
            key,
            Bound {
                uid,
                node,
                requested,
            },
        );
    }

    /// A bound pod ended or went: its requests are free again.
    fn release(&mut self, sh: &mut World, key: &ObjectKey) {
        let Some(b) = self.bound.remove(key) else {
            return;
        };
        let used = self.used_mut(&b.node);
        used.sub(&b.requested);
        if used.pods <= 0 && !self.index.contains_key(&b.node) {
            self.orphan_used.remove(&b.node);
        }
        self.changed(sh);
    }

    /// Something that can make a pending pod fit changed.
    fn changed(&mut self, sh: &mut World) {
        self.cluster_gen += 1;
        if !self.parked.is_empty() {
            self.flush_wanted = true;
            self.arm_cycle(sh);
        }
    }

    fn arm_cycle(&mut self, sh: &mut World) {
        if !self.cycle_armed {
            self.cycle_armed = true;
            let now = sh.now();
            sh.schedule(now, Timer::Scheduler(SchedulerTimer::Cycle));
        }
    }

    // ---- scheduling --------------------------------------------------------------

    fn cycle(&mut self, sh: &mut World) {
        self.cycle_armed = false;
        if std::mem::take(&mut self.flush_wanted) {
            for key in std::mem::take(&mut self.parked) {
                if let Some(p) = self.pending.get_mut(&key)
                    && !p.queued
                {
                    p.queued = true;
                    self.active.push_back(key);
                }
            }
        }
        for _ in 0..MAX_PER_CYCLE {
            let Some(key) = self.active.pop_front() else {
                return;
            };
            self.schedule_one(sh, key);
        }
        if !self.active.is_empty() {
            self.arm_cycle(sh);
        }
    }

    fn schedule_one(&mut self, sh: &mut World, key: ObjectKey) {
        let Some(p) = self.pending.get_mut(&key) else {
            return;
        };
        p.queued = false;
        let Some(info) = p.info.as_deref() else {
            return; // unreadable spec: left alone
        };
        if info.gated {
            return; // scheduling gates: waits for a spec change
        }
        let n = self.entries.len();
        let want = fit::feasible_to_find(n);
        let mut feasible: Vec<(usize, i64)> = Vec::new();
        let mut failures: Vec<Vec<Reason>> = Vec::new();
        let mut examined = 0;
        for step in 0..n {
            let i = (self.next_start + step) % n;
            let e = &self.entries[i];
            examined += 1;
            match fit::filter(info, &e.info, &e.used) {
                Ok(()) => {
                    feasible.push((i, fit::score(info, &e.info, &e.used)));
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(reasons) => failures.push(reasons),
            }
        }
        if n > 0 {
            self.next_start = (self.next_start + examined) % n;
        }
        if feasible.is_empty() {
            let message = fit::unschedulable_message(n, &failures, info.preempt_never);
            self.unschedulable(sh, key, message);
            return;
        }
        // Highest score; ties broken uniformly at random (reservoir sampling).
        let best = feasible.iter().map(|(_, s)| *s).max().unwrap_or(0);
        let mut chosen = feasible[0].0;
        let mut ties = 0u64;
        for (i, s) in &feasible {
            if *s == best {
                ties += 1;
                if sh.rng.below(ties) == 0 {
                    chosen = *i;
                }
            }
        }
        let node = self.entries[chosen].info.name.clone();
        let requested = Requested::from(info);
        let uid = p.uid.clone();
        match sh.store.bind(&key.0, &key.1, &node) {
            Ok(stored) => {
                self.pending.remove(&key);
                self.bound_count += 1;
                self.assume(key.clone(), uid, node.clone(), requested);
                let message = format!("Successfully assigned {}/{} to {node}", key.0, key.1);
                let now = sh.now();
                sh.events.record(
                    &sh.store,
                    now,
                    &Involved::pod(&stored),
                    SOURCE,
                    "Normal",
                    "Scheduled",
                    &message,
                );
            }
            Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => {
                // Deleted, or bound by someone else: the watch tells the rest.
                self.pending.remove(&key);
            }
            Err(e) => {
                tracing::debug!(pod = ?key, error = %e, "binding failed; retrying");
                self.backoff(sh, key);
            }
        }
    }

    fn unschedulable(&mut self, sh: &mut World, key: ObjectKey, message: String) {
        self.failed_attempts += 1;
        let Some(p) = self.pending.get_mut(&key) else {
            return;
        };
        let cached = sh.pods.get(&key).cloned();
        if p.written.as_deref() != Some(message.as_str()) {
            let written = write_unschedulable(sh, &key, &p.uid, &message);
            p.written = written.then(|| message.clone());
        }
        if let Some(pod) = cached {
            let now = sh.now();
            sh.events.record(
                &sh.store,
                now,
                &Involved::pod(&pod),
                SOURCE,
                "Warning",
                "FailedScheduling",
                &message,
            );
        }
        self.backoff(sh, key);
    }

    fn backoff(&mut self, sh: &mut World, key: ObjectKey) {
        let cluster_gen = self.cluster_gen;
        let Some(p) = self.pending.get_mut(&key) else {
            return;
        };
        p.attempts += 1;
        p.tried_gen = cluster_gen;
        let doubling = 1i64 << (p.attempts - 1).min(8);
        let delay = INITIAL_BACKOFF
            .checked_mul(doubling as i32)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF);
        let attempts = p.attempts;
        sh.schedule_in(
            delay,
            Timer::Scheduler(SchedulerTimer::Retry { key, attempts }),
        );
    }
}

/// Decodes the fields the scheduler reads; `None` (logged) if the pod is malformed.
fn decode(pod: &StoredObject) -> Option<SchedulingPod> {
    match serde_json::from_slice::<SchedulingPod>(&pod.json) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(pod = %pod.name, error = %e, "scheduler cannot read the pod spec");
            None
        }
    }
}

/// PodScheduled=False, reason Unschedulable, through the status subresource (the same
/// pod uid only). Whether it was written.
fn write_unschedulable(sh: &World, key: &ObjectKey, uid: &str, message: &str) -> bool {
    let now = object::format_time(sh.now());
    sh.update_pod_status(key, uid, SCHEDULER_NAME, |pod| {
        admission::set_condition(
            pod,
            json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
               "lastTransitionTime": now, "reason": "Unschedulable", "message": message}),
        );
    })
    .is_ok()
}
