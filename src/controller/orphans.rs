//! Orphan recreation's bookkeeping, without I/O: which lost bare pods wait for evidence,
//! the attempt budget of each policy, and the plans handed to the create writer
//! ([`super::recreate`]). The fencing decision itself is the model's
//! ([`podwarden_model::orphans::decide`]); this module asks it again whenever what it
//! depends on changes: the pod (a terminal state, then its deletion), its node's facts,
//! the caches' sync, the clock (backoff).
//!
//! One loss, one answer: a uid that got its answer (a plan, or a final skip) is
//! "settled" and later sightings of it (the deletion of an evicted pod, a relist) ask
//! nothing more. The attempt is recorded when it is planned, before the create, so that
//! no sighting plans it twice; the create's name is deterministic, so a create made
//! twice anyway (a restart, two replicas) answers 409.
//!
//! A node cache can lag the pod watch (its watch reconnecting, backing off): PodGC's
//! force delete on an out-of-service node may arrive while the cache still shows the node
//! Ready. So a disrupted pod (DisruptionTarget True) found without evidence is not
//! settled on the cache's word: its node is read afresh ([`Action::CheckNode`], as PodGC
//! confirms a node's absence with a live read) and the loss decided again with what the
//! read says.
//!
//! A plan stays pending until the writer has seen its replacement created (or refused):
//! a standby's plan, or one whose create did not happen, is handed to the writer again
//! ([`OrphanBook::repush`]) while the lost pod is guarded by its finalizer
//! ([`super::guard`]). A guarded loss met again after a restart gets the plan of the
//! attempt already made, whose create answers 409 and confirms it.
//!
//! Bounds: [`WAITING_LIMIT`] lost pods waiting (the oldest is reported and dropped past
//! it), each for at most [`WAIT_LIMIT`]; [`SETTLED_LIMIT`] settled uids (oldest
//! forgotten: a forgotten loss seen again is asked again, and its lineage's attempt
//! table answers `Done`); per policy, [`Attempts::DEFAULT_CAPACITY`] lineages.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use podwarden_model::orphans::{self, Attempts, Evidence, Next, Skip};
use podwarden_model::policy::OrphanSettings;
use podwarden_model::view::{ConditionStatus, ConditionType};
use podwarden_model::{NodeFacts, Phase, PodView, Seconds, Timestamp};
use serde_json::Value;

use super::engine::PolicyKey;
use super::nodes::NodeCache;

/// Lost pods waiting for evidence or for their backoff.
pub const WAITING_LIMIT: usize = 4096;
/// Uids whose loss got its answer, remembered so that it is not asked again.
pub const SETTLED_LIMIT: usize = 16_384;
/// Plans waiting for their replacement to be confirmed.
pub const PENDING_LIMIT: usize = 4096;
/// How long a pending plan waits before it is handed to the writer again.
pub const REPUSH_AFTER: Seconds = Seconds(30);
/// How long a lost pod waits for evidence (a partitioned node may yet be deleted or
/// tainted `out-of-service`) before it is reported as not recreated.
pub const WAIT_LIMIT: Seconds = Seconds(3600);

/// The policy that decides a pod's loss: the first (by namespace and name) selecting
/// policy that recreates orphans, else the first that would in a dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanPolicy {
    pub key: PolicyKey,
    pub settings: OrphanSettings,
    /// Record what would be recreated and write no pod (`mode: Audit`, or `--dry-run`).
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodRef {
    pub fn of(pod: &PodView) -> Self {
        PodRef {
            namespace: pod.namespace.to_string(),
            name: pod.name.to_string(),
            uid: pod.uid.to_string(),
        }
    }
}

/// A replacement to create (or, in a dry run, to report).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub policy: PolicyKey,
    pub lost: PodRef,
    pub lineage: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub evidence: Evidence,
    /// The replacement's name.
    pub name: String,
    /// The pod to create; `None` in a dry run.
    pub body: Option<Value>,
    /// The lost object is still there: it gets the replacement's name in
    /// `podwarden.dev/replacement` before the create.
    pub mark_original: bool,
}

/// A loss not recreated, and whether it is worth an Event (every skip is counted in
/// metrics; a person deleting their pod, or a pod that completed, is no news).
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub policy: PolicyKey,
    pub lost: PodRef,
    pub reason: Skip,
    pub detail: String,
    pub report: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create(Plan),
    DryRun(Plan),
    Skipped(Skipped),
    /// Read this node afresh and pass what it says to [`OrphanBook::node_checked`].
    CheckNode(String),
}

/// Where a loss stands with its node's live read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    Asked,
    /// Decided again with the read's facts.
    Done,
}

/// What the create writer did with a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Created; the new pod's uid.
    Created { uid: String },
    /// The name was taken by this same replacement (a retried, raced or restarted
    /// create).
    Existed { uid: String },
    /// The name is held by a pod of another lineage.
    NameTaken,
    /// Refused, or failing after the retries.
    Failed(String),
    /// Not the leader while the plan waited: the leader's to make.
    NotLeader,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub plan: Plan,
    pub written: Written,
}

#[derive(Debug)]
struct Waiting {
    last: PodView,
    gone: bool,
    policy: OrphanPolicy,
    since: Timestamp,
    /// Backoff: not asked again before this time.
    retry_at: Option<Timestamp>,
    /// Why it is waiting (reported if it waits too long).
    skip: Skip,
    /// It carries the orphan-guard finalizer.
    guarded: bool,
    check: Check,
}

#[derive(Debug, Default)]
pub struct OrphanBook {
    attempts: BTreeMap<PolicyKey, Attempts>,
    waiting: HashMap<Box<str>, Waiting>,
    settled: HashSet<Box<str>>,
    settled_order: VecDeque<Box<str>>,
    /// Plans not confirmed yet, by lost uid, with when they were last handed over.
    pending: HashMap<Box<str>, (Plan, Timestamp)>,
    pods_synced: bool,
}

impl OrphanBook {
    /// `last` is the newest state of a lost candidate: a bare pod that is terminal
    /// (`gone` false) or deleted (`gone` true), decided by `policy`; `guarded` says it
    /// carries the orphan-guard finalizer.
    pub fn lost(
        &mut self,
        last: PodView,
        gone: bool,
        guarded: bool,
        policy: OrphanPolicy,
        nodes: &NodeCache,
        now: Timestamp,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.settled.contains(&*last.uid) {
            self.waiting.remove(&*last.uid);
            return out;
        }
        let (since, check) = self
            .waiting
            .remove(&*last.uid)
            .map_or((now, Check::None), |w| (w.since, w.check));
        let waiting = Waiting {
            last,
            gone,
            policy,
            since,
            retry_at: None,
            skip: Skip::NotSynced,
            guarded,
            check,
        };
        self.decide(waiting, nodes, None, now, &mut out);
        out
    }

    /// What a live read of node `name` says (`facts`; `None` when it could not be
    /// read): the losses waiting for it are decided again with it, and settle.
    pub fn node_checked(
        &mut self,
        name: &str,
        facts: Option<NodeFacts>,
        nodes: &NodeCache,
        now: Timestamp,
    ) -> Vec<Action> {
        let uids: Vec<Box<str>> = self
            .waiting
            .iter()
            .filter(|(_, w)| {
                w.check == Check::Asked && w.last.spec.node_name.as_deref() == Some(name)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut out = Vec::new();
        for uid in uids {
            if let Some(mut w) = self.waiting.remove(&uid) {
                w.check = Check::Done;
                self.decide(w, nodes, facts.as_ref(), now, &mut out);
            }
        }
        out
    }

    /// Whether the loss of `uid` is still undecided or its replacement unconfirmed (its
    /// guard must stay).
    pub fn holds(&self, uid: &str) -> bool {
        self.waiting.contains_key(uid) || self.pending.contains_key(uid)
    }

    /// Pending plans last handed over [`REPUSH_AFTER`] ago or more, handed over again
    /// now (the caller skips those still queued).
    pub fn repush(&mut self, now: Timestamp) -> Vec<Plan> {
        let mut out = Vec::new();
        for (plan, pushed) in self.pending.values_mut() {
            if now >= pushed.plus(REPUSH_AFTER) {
                *pushed = now;
                out.push(plan.clone());
            }
        }
        out
    }

    /// A candidate deleted while the pod watch was down: its last state was not seen, so
    /// it is not recreated blind.
    pub fn unseen(&mut self, last: &PodView, policy: OrphanPolicy) -> Vec<Action> {
        if self.settled.contains(&*last.uid) {
            return Vec::new();
        }
        self.waiting.remove(&*last.uid);
        self.settle(&last.uid);
        vec![Action::Skipped(Skipped {
            policy: policy.key,
            lost: PodRef::of(last),
            reason: Skip::NoEvidence,
            detail: "it was deleted while the pod watch was down, and its last state was not seen"
                .into(),
            report: true,
        })]
    }

    /// The pod list is complete: decisions waiting for it are made.
    pub fn pods_synced(&mut self, nodes: &NodeCache, now: Timestamp) -> Vec<Action> {
        self.pods_synced = true;
        self.retry(nodes, now, |_| true)
    }

    /// The facts of node `name` changed (or the node cache synced): the losses bound to
    /// it are asked again.
    pub fn node_changed(&mut self, name: &str, nodes: &NodeCache, now: Timestamp) -> Vec<Action> {
        self.retry(nodes, now, |w| {
            w.last.spec.node_name.as_deref() == Some(name)
        })
    }

    /// The node cache synced: every waiting loss is asked again.
    pub fn nodes_synced(&mut self, nodes: &NodeCache, now: Timestamp) -> Vec<Action> {
        self.retry(nodes, now, |_| true)
    }

    /// Time passed: losses whose backoff ended are asked again; those that waited longer
    /// than [`WAIT_LIMIT`] are reported and dropped.
    pub fn tick(&mut self, nodes: &NodeCache, now: Timestamp) -> Vec<Action> {
        let expired: Vec<Box<str>> = self
            .waiting
            .iter()
            .filter(|(_, w)| now >= w.since.plus(WAIT_LIMIT))
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut out = Vec::new();
        for uid in expired {
            if let Some(w) = self.waiting.remove(&uid) {
                out.push(self.give_up(w, "it waited an hour for evidence"));
            }
        }
        out.extend(self.retry(nodes, now, |w| w.retry_at.is_some_and(|t| now >= t)));
        out
    }

    /// A live replacement made by an earlier attempt (this process's, another
    /// replica's, or an earlier run's): its lineage's attempt is recorded, so that its
    /// loss is not planned again. Returns its lineage and attempt.
    pub fn replacement_seen(
        &mut self,
        pod: &PodView,
        policy: &OrphanPolicy,
        now: Timestamp,
    ) -> Option<(String, u32)> {
        let lineage = orphans::original_uid(pod)?.to_string();
        let attempt = orphans::prior_attempt(pod);
        if attempt == 0 || attempt == u32::MAX {
            return None;
        }
        let at = pod.creation_timestamp.unwrap_or(now);
        self.attempts_of(policy).record(&lineage, attempt, at);
        Some((lineage, attempt))
    }

    /// What the writer did; a failed create is a skip to report. Every answer but
    /// [`Written::NotLeader`] ends the plan.
    pub fn written(&mut self, outcome: &Outcome) -> Option<Action> {
        if outcome.written != Written::NotLeader {
            self.pending.remove(outcome.plan.lost.uid.as_str());
        }
        let (reason, detail) = match &outcome.written {
            Written::Created { .. } | Written::Existed { .. } | Written::NotLeader => {
                return None;
            }
            Written::NameTaken => (
                Skip::NameTaken,
                format!(
                    "the name {} is held by a pod of another lineage",
                    outcome.plan.name
                ),
            ),
            Written::Failed(why) => (Skip::CreateFailed, why.clone()),
        };
        Some(Action::Skipped(Skipped {
            policy: outcome.plan.policy.clone(),
            lost: outcome.plan.lost.clone(),
            reason,
            detail,
            report: true,
        }))
    }

    /// The policy is gone: its budget and its waiting losses go too.
    pub fn policy_gone(&mut self, key: &PolicyKey) {
        self.attempts.remove(key);
        self.waiting.retain(|_, w| &w.policy.key != key);
        self.pending.retain(|_, (p, _)| &p.policy != key);
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn attempts_of(&mut self, policy: &OrphanPolicy) -> &mut Attempts {
        let attempts = self
            .attempts
            .entry(policy.key.clone())
            .or_insert_with(|| Attempts::new(policy.settings, Attempts::DEFAULT_CAPACITY));
        attempts.set_settings(policy.settings);
        attempts
    }

    fn retry(
        &mut self,
        nodes: &NodeCache,
        now: Timestamp,
        which: impl Fn(&Waiting) -> bool,
    ) -> Vec<Action> {
        let uids: Vec<Box<str>> = self
            .waiting
            .iter()
            .filter(|(_, w)| which(w))
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut out = Vec::new();
        for uid in uids {
            if let Some(mut w) = self.waiting.remove(&uid) {
                w.retry_at = None;
                self.decide(w, nodes, None, now, &mut out);
            }
        }
        out
    }

    /// `fresh`: a live read of the pod's node, preferred to the cache.
    fn decide(
        &mut self,
        mut w: Waiting,
        nodes: &NodeCache,
        fresh: Option<&NodeFacts>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let synced = self.pods_synced && nodes.synced();
        let bound_to = w.last.spec.node_name.clone();
        let node = match fresh {
            Some(f) => Some(f.clone()),
            None => bound_to.as_deref().and_then(|n| nodes.facts(n)),
        };
        let never = w.policy.settings.recreate_never;
        let answer = if w.policy.dry_run {
            orphans::fencing(&w.last, w.gone, node.as_ref(), never, synced)
        } else {
            orphans::decide(&w.last, w.gone, node.as_ref(), never, synced)
        };
        let evidence = match answer {
            Ok(evidence) => evidence,
            Err(skip @ (Skip::NotSynced | Skip::StillBound)) => {
                w.skip = skip;
                self.wait(w, out);
                return;
            }
            // Disrupted, yet no evidence in the cache: the cache may be behind.
            Err(Skip::NoEvidence)
                if w.check != Check::Done
                    && disrupted(&w.last)
                    && let Some(name) = bound_to.as_deref() =>
            {
                if w.check == Check::None {
                    out.push(Action::CheckNode(name.to_string()));
                }
                w.check = Check::Asked;
                w.skip = Skip::NoEvidence;
                self.wait(w, out);
                return;
            }
            Err(skip) => {
                tracing::debug!(
                    pod = %w.last.name,
                    skip = skip.reason(),
                    gone = w.gone,
                    phase = ?w.last.phase(),
                    deleting = w.last.deletion_timestamp.is_some(),
                    disruption = ?w.last.condition(&ConditionType::DisruptionTarget).map(|c| (&c.status, &c.reason)),
                    node = ?node,
                    "loss decided without recreation"
                );
                let report = worth_reporting(skip, &w, node.as_ref());
                out.push(self.settle_skipped(&w, skip, skip_detail(skip), report));
                return;
            }
        };
        let policy = w.policy.clone();
        let lineage = orphans::lineage(&w.last).to_string();
        let attempts = self.attempts_of(&policy);
        match attempts.next(&w.last, now) {
            // Made already; a guarded loss is confirmed by making it again (409), so
            // that its finalizer goes only once its replacement is seen.
            Next::Done(attempt) if w.guarded && !policy.dry_run => {
                self.plan(w, policy, lineage, attempt, evidence, now, out);
            }
            Next::Done(_) => self.settle(&w.last.uid),
            Next::Exhausted => {
                let detail = format!(
                    "its lineage (first uid {lineage}) used all {} attempts",
                    policy.settings.max_attempts
                );
                out.push(self.settle_skipped(&w, Skip::BudgetExhausted, detail, true));
            }
            Next::Wait(until) => {
                w.retry_at = Some(until);
                w.skip = Skip::BudgetExhausted;
                self.wait(w, out);
            }
            Next::Ready(attempt) => {
                attempts.record(&lineage, attempt, now);
                self.plan(w, policy, lineage, attempt, evidence, now, out);
            }
        }
    }

    /// The plan of `attempt` for the loss `w` (already recorded in its attempt table).
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        w: Waiting,
        policy: OrphanPolicy,
        lineage: String,
        attempt: u32,
        evidence: Evidence,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let body = if policy.dry_run {
            None
        } else {
            match orphans::replacement(&w.last, attempt, w.gone) {
                Some(body) => Some(body),
                None => {
                    let detail = skip_detail(Skip::NoSpec);
                    out.push(self.settle_skipped(&w, Skip::NoSpec, detail, true));
                    return;
                }
            }
        };
        self.settle(&w.last.uid);
        let plan = Plan {
            policy: policy.key.clone(),
            lost: PodRef::of(&w.last),
            lineage,
            attempt,
            max_attempts: policy.settings.max_attempts,
            evidence,
            name: orphans::replacement_name(&w.last, attempt, w.gone),
            body,
            mark_original: !w.gone,
        };
        if policy.dry_run {
            out.push(Action::DryRun(plan));
            return;
        }
        if self.pending.len() < PENDING_LIMIT {
            self.pending.insert(w.last.uid.clone(), (plan.clone(), now));
        }
        out.push(Action::Create(plan));
    }

    fn wait(&mut self, w: Waiting, out: &mut Vec<Action>) {
        if self.waiting.len() >= WAITING_LIMIT {
            let oldest = self
                .waiting
                .iter()
                .min_by(|a, b| (a.1.since, a.0).cmp(&(b.1.since, b.0)))
                .map(|(uid, _)| uid.clone());
            if let Some(w) = oldest.and_then(|uid| self.waiting.remove(&uid)) {
                out.push(self.give_up(w, "too many lost pods are waiting"));
            }
        }
        self.waiting.insert(w.last.uid.clone(), w);
    }

    fn give_up(&mut self, w: Waiting, why: &str) -> Action {
        let detail = format!("{why}: {}", skip_detail(w.skip));
        self.settle_skipped(&w, w.skip, detail, true)
    }

    fn settle_skipped(
        &mut self,
        w: &Waiting,
        reason: Skip,
        detail: String,
        report: bool,
    ) -> Action {
        self.settle(&w.last.uid);
        Action::Skipped(Skipped {
            policy: w.policy.key.clone(),
            lost: PodRef::of(&w.last),
            reason,
            detail,
            report,
        })
    }

    fn settle(&mut self, uid: &str) {
        if self.settled.contains(uid) {
            return;
        }
        if self.settled_order.len() >= SETTLED_LIMIT
            && let Some(oldest) = self.settled_order.pop_front()
        {
            self.settled.remove(&oldest);
        }
        self.settled.insert(uid.into());
        self.settled_order.push_back(uid.into());
    }
}

/// Whether a skip is news: a person deleting a pod or a pod that completed is not; a pod
/// that was disrupted, or that would have been recreated but for a setting or a limit,
/// is.
fn worth_reporting(skip: Skip, w: &Waiting, node: Option<&NodeFacts>) -> bool {
    match skip {
        Skip::Succeeded | Skip::Owned => false,
        Skip::NoEvidence => {
            disrupted(&w.last)
                || (w.last.phase() == Phase::Failed && w.last.status.reason.is_some())
        }
        Skip::RestartPolicyNever => orphans::fencing(&w.last, w.gone, node, true, true).is_ok(),
        _ => true,
    }
}

/// A DisruptionTarget condition that is True: some component stopped the pod for a
/// disruption (its reason may or may not be evidence).
fn disrupted(pod: &PodView) -> bool {
    pod.condition(&ConditionType::DisruptionTarget)
        .is_some_and(|c| c.status == ConditionStatus::True)
}

fn skip_detail(skip: Skip) -> String {
    match skip {
        Skip::NoEvidence => "nothing shows that a node fault lost it (a person or another client deleted it, or it stopped on its own)",
        Skip::Succeeded => "it completed",
        Skip::Owned => "a controller owns it and recreates it",
        Skip::RestartPolicyNever => "its restartPolicy is Never and the policy does not set orphans.recreateNever",
        Skip::NotSynced => "the pod or node cache has not synced",
        Skip::StillBound => "its node may still run it (not Ready, without the out-of-service taint, or registered again)",
        Skip::NoSpec => "its full spec was not kept (it was first seen already lost, or the policy was not in Enforce mode then)",
        Skip::BudgetExhausted => "its lineage used every attempt the policy allows",
        Skip::NameTaken => "the replacement's name is held by another pod",
        Skip::CreateFailed => "the API server refused the replacement",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use podwarden_model::NodeFacts;
    use podwarden_model::orphans::{ATTEMPT_ANNOTATION, ORIGINAL_UID_ANNOTATION};
    use serde_json::json;

    use super::super::nodes::NodeEvent;
    use super::*;

    const T0: Timestamp = Timestamp(1_785_578_400);

    fn at(s: i64) -> Timestamp {
        Timestamp(T0.0 + s)
    }

    fn policy(max_attempts: u32) -> OrphanPolicy {
        OrphanPolicy {
            key: ("default".into(), "guard".into()),
            settings: OrphanSettings {
                max_attempts,
                ..OrphanSettings::DEFAULT
            },
            dry_run: false,
        }
    }

    /// A bare pod `name` (uid `uid`) bound to node-1 as PodGC leaves it when its node is
    /// gone: Failed with DisruptionTarget DeletionByPodGC. `extra` is merged into its
    /// metadata.
    fn podgc_failed(name: &str, uid: &str, extra: serde_json::Value) -> PodView {
        let mut pod = json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                "resourceVersion": "5", "creationTimestamp": "2026-08-01T10:00:00Z"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Always",
                "containers": [{"name": "app", "image": "registry.example/app:1"}]},
            "status": {"phase": "Failed", "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                 "lastTransitionTime": "2026-08-01T10:02:00Z"}]}
        });
        if let (Some(meta), Some(extra)) = (pod["metadata"].as_object_mut(), extra.as_object()) {
            meta.extend(extra.clone());
        }
        PodView::from_value(&pod).expect("pod view")
    }

    fn nodes(events: Vec<NodeEvent>) -> NodeCache {
        let mut cache = NodeCache::default();
        for e in events {
            cache.apply(e);
        }
        cache
    }

    fn node1(exists: bool) -> Vec<NodeEvent> {
        let mut events = vec![NodeEvent::ListStart];
        if exists {
            events.push(NodeEvent::Applied(NodeFacts {
                name: "node-1".into(),
                exists: true,
                out_of_service: false,
                ready: Some(false),
            }));
        }
        events.push(NodeEvent::ListDone);
        events
    }

    fn synced_book(cache: &NodeCache) -> OrphanBook {
        let mut book = OrphanBook::default();
        assert!(book.pods_synced(cache, T0).is_empty());
        book
    }

    fn plans(actions: &[Action]) -> Vec<(&str, u32)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(p) => Some((p.name.as_str(), p.attempt)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_loss_seen_terminal_then_deleted_is_planned_once() {
        let cache = nodes(node1(false));
        let mut book = synced_book(&cache);
        let lost = podgc_failed("web", "u1", json!({}));
        let first = book.lost(lost.clone(), false, false, policy(3), &cache, at(1));
        assert_eq!(plans(&first), [("web-r1", 1)]);
        let Action::Create(plan) = &first[0] else {
            unreachable!()
        };
        assert!(plan.mark_original && plan.body.is_some());
        assert_eq!(plan.evidence, Evidence::NodeDeleted);
        // PodGC's grace-0 delete: the same loss.
        assert!(
            book.lost(lost, true, false, policy(3), &cache, at(2))
                .is_empty()
        );
    }

    #[test]
    fn a_loss_waits_for_the_node_cache_and_is_decided_when_its_node_goes() {
        // The node cache still has node-1 (its deletion not seen yet): PodGC's condition
        // on a node that exists says it may be registered again.
        let mut cache = nodes(node1(true));
        let mut book = synced_book(&cache);
        let lost = podgc_failed("web", "u1", json!({}));
        assert!(
            book.lost(lost, true, false, policy(3), &cache, at(1))
                .is_empty()
        );
        assert_eq!(book.waiting(), 1);
        let changed = cache.apply(NodeEvent::Deleted("node-1".into()));
        let actions = book.node_changed(&changed[0], &cache, at(2));
        assert_eq!(
            plans(&actions),
            [("web", 1)],
            "the object is gone: its own name"
        );
        assert_eq!(book.waiting(), 0);
    }

    #[test]
    fn before_the_caches_sync_nothing_is_decided() {
        let cache = NodeCache::default();
        let mut book = OrphanBook::default();
        let lost = podgc_failed("web", "u1", json!({}));
        assert!(
            book.lost(lost, false, false, policy(3), &cache, at(1))
                .is_empty()
        );
        assert!(
            book.pods_synced(&cache, at(2)).is_empty(),
            "nodes not synced"
        );
        let cache = nodes(node1(false));
        assert_eq!(plans(&book.nodes_synced(&cache, at(3))), [("web-r1", 1)]);
    }

    #[test]
    fn a_lost_replacement_waits_out_its_backoff_and_the_budget_ends_it() {
        let cache = nodes(node1(false));
        let mut book = synced_book(&cache);
        let annotated = |attempt: u32, uid: &str| {
            let mut extra = json!({"annotations": {
                ORIGINAL_UID_ANNOTATION: "u0",
                ATTEMPT_ANNOTATION: attempt.to_string(),
            }});
            extra["creationTimestamp"] = json!("2026-08-01T10:00:00Z");
            podgc_failed(&format!("web-r{attempt}"), uid, extra)
        };
        // Replacement 1 (created at T0) is lost at once: attempt 2 waits 30 s after it.
        assert!(
            book.lost(annotated(1, "u1"), true, false, policy(2), &cache, at(5))
                .is_empty()
        );
        assert!(book.tick(&cache, at(29)).is_empty());
        let actions = book.tick(&cache, at(30));
        // Its object is gone: the replacement takes its freed name.
        assert_eq!(plans(&actions), [("web-r1", 2)]);
        // Replacement 2 is lost too: the budget of 2 is spent.
        let actions = book.lost(annotated(2, "u2"), true, false, policy(2), &cache, at(100));
        assert!(matches!(
            &actions[..],
            [Action::Skipped(Skipped {
                reason: Skip::BudgetExhausted,
                report: true,
                ..
            })]
        ));
    }

    #[test]
    fn a_replacement_seen_alive_makes_its_loss_done() {
        let cache = nodes(node1(false));
        let mut book = synced_book(&cache);
        // An earlier run made web-r1 for u1's loss.
        let alive = PodView::from_value(&json!({
            "metadata": {"name": "web-r1", "namespace": "default", "uid": "u2",
                "resourceVersion": "9", "creationTimestamp": "2026-08-01T10:03:00Z",
                "annotations": {ORIGINAL_UID_ANNOTATION: "u1", ATTEMPT_ANNOTATION: "1"}},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "app", "image": "i"}]},
            "status": {"phase": "Pending"}
        }))
        .expect("view");
        assert_eq!(
            book.replacement_seen(&alive, &policy(3), at(1)),
            Some(("u1".to_string(), 1))
        );
        let lost = podgc_failed("web", "u1", json!({}));
        assert!(
            book.lost(lost, false, false, policy(3), &cache, at(2))
                .is_empty()
        );
    }

    #[test]
    fn a_dry_run_plans_without_a_body_and_a_waiting_loss_expires_reported() {
        let cache = nodes(node1(true));
        let mut book = synced_book(&cache);
        let dry = OrphanPolicy {
            dry_run: true,
            ..policy(3)
        };
        let mut lost = podgc_failed("web", "u1", json!({}));
        lost.full_spec = None;
        // Node still there: waits; an hour later it is given up, and said so.
        assert!(
            book.lost(lost.clone(), true, false, dry.clone(), &cache, at(0))
                .is_empty()
        );
        let expired = book.tick(&cache, at(WAIT_LIMIT.0));
        assert!(matches!(
            &expired[..],
            [Action::Skipped(Skipped {
                reason: Skip::StillBound,
                report: true,
                ..
            })]
        ));
        // Without a spec, a dry run still says what it would do.
        let cache = nodes(node1(false));
        let mut book = synced_book(&cache);
        let actions = book.lost(lost, true, false, dry, &cache, at(1));
        assert!(matches!(
            &actions[..],
            [Action::DryRun(Plan {
                body: None,
                attempt: 1,
                ..
            })]
        ));
    }

    /// Failed and deleting after the taint manager deleted it, as PodGC leaves a pod on
    /// an out-of-service node.
    fn taint_manager_failed(uid: &str) -> PodView {
        PodView::from_value(&json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid,
                "resourceVersion": "7", "deletionTimestamp": "2026-08-01T10:02:00Z"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Always",
                "containers": [{"name": "app", "image": "i"}]},
            "status": {"phase": "Failed", "conditions": [
                {"type": "DisruptionTarget", "status": "True",
                 "reason": "DeletionByTaintManager",
                 "lastTransitionTime": "2026-08-01T10:01:00Z"}]}
        }))
        .expect("view")
    }

    #[test]
    fn a_disrupted_pod_without_evidence_in_the_cache_is_decided_on_a_fresh_read() {
        // The cache still shows node-1 Ready (its watch is behind).
        let mut cache = NodeCache::default();
        cache.apply(NodeEvent::ListStart);
        cache.apply(NodeEvent::Applied(NodeFacts {
            name: "node-1".into(),
            exists: true,
            out_of_service: false,
            ready: Some(true),
        }));
        cache.apply(NodeEvent::ListDone);
        let mut book = synced_book(&cache);
        let first = book.lost(
            taint_manager_failed("a"),
            false,
            true,
            policy(3),
            &cache,
            at(1),
        );
        assert_eq!(first, vec![Action::CheckNode("node-1".into())]);
        // Another loss on the node asks too (the caller reads each node once at a time);
        // the same loss seen again does not.
        let second = book.lost(
            taint_manager_failed("b"),
            false,
            true,
            policy(3),
            &cache,
            at(1),
        );
        assert_eq!(second, vec![Action::CheckNode("node-1".into())]);
        let again = book.lost(
            taint_manager_failed("b"),
            false,
            true,
            policy(3),
            &cache,
            at(1),
        );
        assert!(again.is_empty(), "{again:?}");
        assert!(book.holds("a") && book.holds("b"));
        let read = NodeFacts {
            name: "node-1".into(),
            exists: true,
            out_of_service: true,
            ready: None,
        };
        let actions = book.node_checked("node-1", Some(read), &cache, at(2));
        assert_eq!(plans(&actions).len(), 2, "{actions:?}");
        // The read agrees with the cache: no evidence, said once.
        let mut book = synced_book(&cache);
        book.lost(
            taint_manager_failed("c"),
            false,
            true,
            policy(3),
            &cache,
            at(1),
        );
        let actions = book.node_checked("node-1", cache.facts("node-1"), &cache, at(2));
        assert!(matches!(
            &actions[..],
            [Action::Skipped(Skipped {
                reason: Skip::NoEvidence,
                report: true,
                ..
            })]
        ));
        assert!(!book.holds("c"));
    }

    #[test]
    fn a_loss_not_seen_is_reported_not_recreated_and_only_once() {
        let cache = nodes(node1(false));
        let mut book = synced_book(&cache);
        let last = podgc_failed("web", "u1", json!({}));
        let actions = book.unseen(&last, policy(3));
        assert!(matches!(
            &actions[..],
            [Action::Skipped(Skipped {
                reason: Skip::NoEvidence,
                report: true,
                ..
            })]
        ));
        assert!(book.unseen(&last, policy(3)).is_empty());
    }

    #[test]
    fn waiting_losses_are_bounded_and_the_oldest_is_reported_when_dropped() {
        let cache = nodes(node1(true));
        let mut book = synced_book(&cache);
        for i in 0..WAITING_LIMIT {
            let lost = podgc_failed(&format!("p{i}"), &format!("u{i}"), json!({}));
            assert!(
                book.lost(lost, true, false, policy(3), &cache, at(i as i64))
                    .is_empty()
            );
        }
        let lost = podgc_failed("late", "late", json!({}));
        let actions = book.lost(
            lost,
            true,
            false,
            policy(3),
            &cache,
            at(WAITING_LIMIT as i64),
        );
        assert_eq!(book.waiting(), WAITING_LIMIT);
        assert!(matches!(
            &actions[..],
            [Action::Skipped(Skipped { lost, .. })] if lost.uid == "u0"
        ));
    }
}
