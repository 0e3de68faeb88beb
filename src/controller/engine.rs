//! The controller's audit state, without I/O: the policies, one tracker per distinct
//! rule settings, which policies select each pod, and what each policy has counted.
//! Every pod watch event goes through [`Engine::on_pod`]; its output says what to record.
//!
//! Bounds: one entry per live selected pod (uids missing from a relist are dropped by
//! [`Engine::retain`]); one tracker per distinct rule settings (at most one per policy);
//! per policy, counts by rule and severity and at most
//! [`RECENT_FINDINGS_LIMIT`](podwarden_model::policy::RECENT_FINDINGS_LIMIT) recent
//! findings.

use std::collections::{BTreeMap, HashMap, HashSet};

use podwarden_model::policy::{
    OrphanSettings, PodLifecyclePolicy, PodLifecyclePolicyStatus, PolicyError, PolicyMode,
    RecentFinding, ShardStatus,
};
use podwarden_model::{
    Arrival, Finding, PodView, RuleId, RuleSettings, Severity, Timestamp, Tracker,
};

use podwarden_model::stream::Scope;

use super::shard::Shard;

/// A policy by namespace and name.
pub type PolicyKey = (String, String);

/// What the controller knows of one policy.
#[derive(Debug)]
pub struct PolicyState {
    pub uid: String,
    pub generation: Option<i64>,
    /// `Err`: the spec is invalid; the policy selects nothing until it is fixed.
    pub config: Result<PolicyConfig, PolicyError>,
    pub counts: PolicyCounts,
    /// The `status.shards` entries the policy showed last (sharded controllers: the other
    /// shards' counts, which shard 0 sums).
    pub shard_entries: BTreeMap<String, ShardStatus>,
}

/// A valid policy's scope and settings.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub scope: Scope,
    pub settings: RuleSettings,
    /// Findings of at least this severity become Events.
    pub event_severity: Severity,
    pub orphans: OrphanSettings,
    /// `mode: Enforce`: lost orphans are recreated (else only reported as a dry run).
    pub enforce: bool,
}

/// What a policy has counted; its status is made from this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyCounts {
    /// Pods the policy selects now.
    pub pods: i64,
    pub by_rule: BTreeMap<RuleId, i64>,
    pub by_severity: BTreeMap<Severity, i64>,
    /// Newest first, at most `RECENT_FINDINGS_LIMIT`.
    pub recent: Vec<RecentFinding>,
    /// Orphaned pods recreated.
    pub recreated: i64,
}

impl PolicyCounts {
    /// The counts a status records (for a shard, its own entry); the selected pods are
    /// counted anew as pods arrive.
    pub fn restored(status: &PodLifecyclePolicyStatus, shard: Option<Shard>) -> Self {
        let (by_rule, recent, recreated) = match shard {
            None => (
                &status.findings_by_rule,
                &status.recent_findings,
                status.recreated,
            ),
            Some(shard) => match status.shards.get(&shard.key()) {
                Some(e) => (&e.findings_by_rule, &e.recent_findings, e.recreated),
                None => return PolicyCounts::default(),
            },
        };
        let mut counts = PolicyCounts::default();
        for (id, n) in by_rule {
            if let Some(rule) = RuleId::ALL.iter().find(|r| r.as_str() == id) {
                counts.by_rule.insert(*rule, *n);
                *counts.by_severity.entry(rule.severity()).or_default() += *n;
            }
        }
        counts.recent = recent.clone();
        counts.recreated = recreated;
        counts
            .recent
            .truncate(podwarden_model::policy::RECENT_FINDINGS_LIMIT);
        counts
    }

    fn count(&mut self, finding: &Finding) {
        *self.by_rule.entry(finding.rule).or_default() += 1;
        *self.by_severity.entry(finding.severity).or_default() += 1;
        self.recent.insert(0, RecentFinding::from(finding));
        self.recent
            .truncate(podwarden_model::policy::RECENT_FINDINGS_LIMIT);
    }
}

/// How a pod watch event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodChange {
    /// Added or modified: the pod's current state.
    Applied,
    /// Listed after a gap in the watch: states between the last one seen and this one may
    /// have been missed, so only rules that hold across a gap judge the transition.
    Relisted,
    /// The pod's final state: it is gone after this.
    Deleted,
}

/// One finding and what to do with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub finding: Finding,
    /// Whether a selecting policy records findings of this severity as Events.
    pub record_event: bool,
    /// The policies that selected the pod and counted the finding.
    pub policies: Vec<PolicyKey>,
}

#[derive(Debug)]
struct SettingsGroup {
    settings: RuleSettings,
    tracker: Tracker,
}

#[derive(Debug, Default)]
pub struct Engine {
    policies: BTreeMap<PolicyKey, PolicyState>,
    groups: Vec<SettingsGroup>,
    /// Pod uid -> the policies selecting it (as of its last event).
    selected_by: HashMap<Box<str>, Vec<PolicyKey>>,
    /// Policies whose counts changed since [`Engine::take_dirty`].
    dirty: HashSet<PolicyKey>,
    /// State findings an earlier run recorded as Events, by pod uid and rule: met again
    /// on the first list, they are the same occurrence, not a new one.
    recorded: HashSet<(Box<str>, RuleId)>,
    duplicates: u64,
    stale: u64,
    /// This controller's shard, if it runs in shards: counts resume from its entry.
    shard: Option<Shard>,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine for shard `shard` (None: the only controller).
    pub fn for_shard(shard: Option<Shard>) -> Self {
        Engine {
            shard,
            ..Self::default()
        }
    }

    /// A policy was created or changed. A changed scope or settings takes effect from the
    /// next event of each pod; counts are kept.
    pub fn apply_policy(&mut self, policy: &PodLifecyclePolicy) {
        let key = policy_key(policy);
        let uid = policy.metadata.uid.clone().unwrap_or_default();
        let config = policy_config(policy);
        let generation = policy.metadata.generation;
        let shard_entries = policy
            .status
            .as_ref()
            .map(|s| s.shards.clone())
            .unwrap_or_default();
        match self.policies.get_mut(&key) {
            Some(state) => {
                if state.uid != uid {
                    // A new policy under an old name starts from nothing.
                    state.uid = uid;
                    state.counts = PolicyCounts::default();
                }
                state.generation = generation;
                state.config = config;
                state.shard_entries = shard_entries;
            }
            None => {
                // What an earlier run counted (its status) is where counting resumes.
                let counts = policy
                    .status
                    .as_ref()
                    .map(|s| PolicyCounts::restored(s, self.shard))
                    .unwrap_or_default();
                self.policies.insert(
                    key.clone(),
                    PolicyState {
                        uid,
                        generation,
                        config,
                        counts,
                        shard_entries,
                    },
                );
            }
        }
        self.dirty.insert(key);
        self.prune_groups();
    }

    /// A policy was deleted: it selects nothing from now on.
    pub fn delete_policy(&mut self, key: &PolicyKey) {
        if self.policies.remove(key).is_some() {
            // Pods no other policy selects are forgotten now, not at their next event
            // (which a quiet pod may never have).
            let mut unselected = Vec::new();
            for (uid, selecting) in &mut self.selected_by {
                selecting.retain(|k| k != key);
                if selecting.is_empty() {
                    unselected.push(uid.clone());
                }
            }
            for uid in &unselected {
                self.selected_by.remove(uid);
                for group in &mut self.groups {
                    group.tracker.forget(uid);
                }
            }
            self.dirty.remove(key);
            self.prune_groups();
        }
    }

    /// Drop the trackers no valid policy uses any more.
    fn prune_groups(&mut self) {
        let policies = &self.policies;
        self.groups.retain(|g| {
            policies
                .values()
                .any(|p| p.config.as_ref().is_ok_and(|c| c.settings == g.settings))
        });
    }

    pub fn policy(&self, key: &PolicyKey) -> Option<&PolicyState> {
        self.policies.get(key)
    }

    pub fn policies(&self) -> impl Iterator<Item = (&PolicyKey, &PolicyState)> {
        self.policies.iter()
    }

    /// Policies whose counts or config changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<PolicyKey> {
        let mut keys: Vec<PolicyKey> = self.dirty.drain().collect();
        keys.sort();
        keys
    }

    /// State findings recorded by an earlier run (from the cluster's Events): not
    /// counted again when the first list meets them still holding.
    pub fn remember_recorded(&mut self, recorded: HashSet<(Box<str>, RuleId)>) {
        self.recorded = recorded;
    }

    /// The first list is done: what it did not meet has stopped holding meanwhile.
    pub fn forget_recorded(&mut self) {
        self.recorded = HashSet::new();
    }

    /// Pods tracked (selected by some policy).
    pub fn tracked_pods(&self) -> usize {
        self.selected_by.len()
    }

    /// Audits one pod watch event at `now`. A pod no policy selects is dropped from
    /// every tracker (it may have been relabelled out of scope).
    ///
    /// The trackers keep neither the full spec nor the annotations of a bare pod: orphan
    /// recreation reads them from the event that brings the loss, not from memory.
    pub fn on_pod(&mut self, mut view: PodView, change: PodChange, now: Timestamp) -> Vec<Output> {
        view.full_spec = None;
        view.annotations = None;
        let selecting: Vec<PolicyKey> = self
            .policies
            .iter()
            .filter(|(_, p)| p.config.as_ref().is_ok_and(|c| c.scope.selects(&view)))
            .map(|(k, _)| k.clone())
            .collect();
        self.update_selection(&view.uid, &selecting);
        let uid = view.uid.clone();
        // Deadlines of other pods that passed before this event; this pod's own are
        // judged on its new state below.
        let mut found = self.due(now, Some(&uid));
        if selecting.is_empty() {
            self.forget(&uid);
            return self.attribute_all(found);
        }
        self.ensure_groups(&selecting);
        let policies = &self.policies;
        let uses = |group: &SettingsGroup| {
            selecting.iter().any(|k| {
                policies[k]
                    .config
                    .as_ref()
                    .is_ok_and(|c| c.settings == group.settings)
            })
        };
        // The last group that uses the view keeps it; only the groups before it copy it.
        let last_user = self.groups.iter().rposition(uses);
        let mut view = Some(view);
        for (i, group) in self.groups.iter_mut().enumerate() {
            if !uses(group) {
                group.tracker.forget(&uid);
                continue;
            }
            let Some(current) = view.as_ref() else {
                break;
            };
            match group.tracker.arrival(current) {
                Arrival::Duplicate => {
                    self.duplicates += 1;
                    continue;
                }
                Arrival::Stale => {
                    self.stale += 1;
                    continue;
                }
                Arrival::New | Arrival::Next => {}
            }
            let snapshot = if last_user == Some(i) {
                view.take()
            } else {
                view.clone()
            };
            let Some(snapshot) = snapshot else {
                break;
            };
            for finding in group.tracker.observe(snapshot, now, &group.settings) {
                if change == PodChange::Relisted && !finding.rule.holds_across_gap() {
                    continue;
                }
                if finding.rule.is_state() && self.recorded.remove(&(uid.clone(), finding.rule)) {
                    continue;
                }
                found.push((i, finding));
            }
        }
        if change == PodChange::Deleted {
            self.forget(&uid);
            self.update_selection(&uid, &[]);
        }
        self.attribute_all(found)
    }

    /// Time has come to `now`: the deadline rules (a pod stuck Pending or Terminating)
    /// of every tracked pod whose deadline has passed, with no new event of it.
    pub fn advance(&mut self, now: Timestamp) -> Vec<Output> {
        let found = self.due(now, None);
        self.attribute_all(found)
    }

    /// The earliest time a tracked pod's deadline rule starts to hold.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.groups
            .iter()
            .filter_map(|g| g.tracker.next_deadline())
            .min()
    }

    fn due(&mut self, now: Timestamp, skip: Option<&str>) -> Vec<(usize, Finding)> {
        let mut found = Vec::new();
        for (i, group) in self.groups.iter_mut().enumerate() {
            for f in group.tracker.advance(now, &group.settings, skip) {
                found.push((i, f));
            }
        }
        found
    }

    /// Counts each finding for the policies that select its pod with its group's
    /// settings; one output per distinct finding.
    fn attribute_all(&mut self, found: Vec<(usize, Finding)>) -> Vec<Output> {
        let mut out = Vec::with_capacity(found.len());
        for (group, finding) in found {
            let settings = &self.groups[group].settings;
            let users: Vec<PolicyKey> = self
                .selected_by
                .get(finding.uid.as_str())
                .into_iter()
                .flatten()
                .filter(|k| {
                    self.policies
                        .get(*k)
                        .is_some_and(|p| p.config.as_ref().is_ok_and(|c| &c.settings == settings))
                })
                .cloned()
                .collect();
            if users.is_empty() {
                continue;
            }
            let mut record_event = false;
            for key in &users {
                if let Some(policy) = self.policies.get_mut(key) {
                    policy.counts.count(&finding);
                    record_event |= policy
                        .config
                        .as_ref()
                        .is_ok_and(|c| finding.severity >= c.event_severity);
                    self.dirty.insert(key.clone());
                }
            }
            out.push(Output {
                finding,
                record_event,
                policies: users,
            });
        }
        dedupe_outputs(out)
    }

    /// Snapshots not audited because their uid's last state was seen again (`duplicates`)
    /// or a newer one was already seen (`stale`).
    pub fn skipped(&self) -> (u64, u64) {
        (self.duplicates, self.stale)
    }

    /// A tracker for every rule settings a selecting policy uses.
    fn ensure_groups(&mut self, selecting: &[PolicyKey]) {
        for key in selecting {
            if let Some(Ok(config)) = self.policies.get(key).map(|p| &p.config)
                && !self.groups.iter().any(|g| g.settings == config.settings)
            {
                self.groups.push(SettingsGroup {
                    settings: config.settings.clone(),
                    tracker: Tracker::new(),
                });
            }
        }
    }

    /// Keeps the `selecting` set of a pod and each policy's count of selected pods.
    fn update_selection(&mut self, uid: &str, selecting: &[PolicyKey]) {
        // Most events leave a pod's selection as it was: nothing to store or count.
        if !selecting.is_empty()
            && self
                .selected_by
                .get(uid)
                .is_some_and(|before| before.as_slice() == selecting)
        {
            return;
        }
        let before = if selecting.is_empty() {
            self.selected_by.remove(uid).unwrap_or_default()
        } else {
            self.selected_by
                .insert(uid.into(), selecting.to_vec())
                .unwrap_or_default()
        };
        for key in before.iter().filter(|k| !selecting.contains(k)) {
            if let Some(p) = self.policies.get_mut(key) {
                p.counts.pods -= 1;
                self.dirty.insert(key.clone());
            }
        }
        for key in selecting.iter().filter(|k| !before.contains(k)) {
            if let Some(p) = self.policies.get_mut(key) {
                p.counts.pods += 1;
                self.dirty.insert(key.clone());
            }
        }
    }

    fn forget(&mut self, uid: &str) {
        for group in &mut self.groups {
            group.tracker.forget(uid);
        }
    }

    /// After a relist: uids not in `live` are gone (deleted while the watch was down) and
    /// are forgotten without a final audit. Returns the last state seen of each.
    pub fn retain(&mut self, live: &HashSet<Box<str>>) -> Vec<PodView> {
        let gone: Vec<Box<str>> = self
            .selected_by
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        let mut last = Vec::with_capacity(gone.len());
        for uid in &gone {
            self.update_selection(uid, &[]);
            let mut seen = None;
            for group in &mut self.groups {
                seen = group.tracker.forget(uid).or(seen);
            }
            last.extend(seen);
        }
        last
    }

    /// The policy that decides the loss of the bare pod `view`, if one selecting it
    /// recreates orphans (`maxAttempts` above 0): the first in Enforce mode, by namespace
    /// and name, else the first (its decisions are a dry run). Returns its key, its
    /// settings and whether it enforces.
    pub fn orphan_policy(&self, view: &PodView) -> Option<(PolicyKey, OrphanSettings, bool)> {
        let mut first = None;
        for (key, policy) in &self.policies {
            let Ok(config) = &policy.config else {
                continue;
            };
            if config.orphans.max_attempts == 0 || !config.scope.selects(view) {
                continue;
            }
            if config.enforce {
                return Some((key.clone(), config.orphans, true));
            }
            first.get_or_insert((key.clone(), config.orphans, false));
        }
        first
    }

    /// A replacement was created under `key`.
    pub fn count_recreated(&mut self, key: &PolicyKey) {
        if let Some(policy) = self.policies.get_mut(key) {
            policy.counts.recreated += 1;
            self.dirty.insert(key.clone());
        }
    }
}

/// Two settings groups can find the same thing on one snapshot: one output per finding,
/// with the union of the policies.
fn dedupe_outputs(outputs: Vec<Output>) -> Vec<Output> {
    let mut merged: Vec<Output> = Vec::with_capacity(outputs.len());
    for o in outputs {
        match merged.iter_mut().find(|m| m.finding == o.finding) {
            Some(m) => {
                m.record_event |= o.record_event;
                for p in o.policies {
                    if !m.policies.contains(&p) {
                        m.policies.push(p);
                    }
                }
            }
            None => merged.push(o),
        }
    }
    merged
}

pub fn policy_key(policy: &PodLifecyclePolicy) -> PolicyKey {
    (
        policy.metadata.namespace.clone().unwrap_or_default(),
        policy.metadata.name.clone().unwrap_or_default(),
    )
}

fn policy_config(policy: &PodLifecyclePolicy) -> Result<PolicyConfig, PolicyError> {
    let spec = &policy.spec;
    Ok(PolicyConfig {
        scope: Scope {
            namespace: policy.metadata.namespace.clone(),
            selector: spec.selector()?,
        },
        settings: spec.rule_settings()?,
        event_severity: spec.event_severity(),
        orphans: spec.orphan_settings()?,
        enforce: spec.mode == PolicyMode::Enforce,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn policy(name: &str, spec: Value) -> PodLifecyclePolicy {
        serde_json::from_value(json!({
            "apiVersion": "podwarden.dev/v1alpha1",
            "kind": "PodLifecyclePolicy",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "generation": 1},
            "spec": spec,
        }))
        .expect("policy")
    }

    /// A running pod `uid` with labels, its container's restart count and Ready's
    /// transition time (seconds after creation).
    fn pod(uid: &str, rv: u32, labels: Value, restarts: u32, ready_at: u32) -> PodView {
        let t = |s: u32| format!("2026-08-01T10:{:02}:{:02}Z", s / 60, s % 60);
        PodView::from_value(&json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid,
                "resourceVersion": rv.to_string(), "labels": labels,
                "creationTimestamp": t(0)},
            "spec": {"nodeName": "node-0", "restartPolicy": "Always",
                "containers": [{"name": "app", "image": "registry.example/app:1"}]},
            "status": {"phase": "Running", "startTime": t(1),
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": t(0)},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": t(1)},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": t(ready_at)},
                    {"type": "Ready", "status": "True", "lastTransitionTime": t(ready_at)}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": restarts,
                    "image": "registry.example/app:1", "imageID": "", "started": true,
                    "containerID": "containerd://5d0e4b7a91c3",
                    "state": {"running": {"startedAt": t(ready_at)}}}]}
        }))
        .expect("pod view")
    }

    const NOW: Timestamp = Timestamp(1_785_578_400 + 3600);

    fn rules(out: &[Output]) -> Vec<RuleId> {
        out.iter().map(|o| o.finding.rule).collect()
    }

    fn key(name: &str) -> PolicyKey {
        ("default".into(), name.into())
    }

    #[test]
    fn a_finding_is_counted_by_every_selecting_policy_and_reported_once() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy("all", json!({})));
        engine.apply_policy(&policy(
            "team",
            json!({"selector": {"matchLabels": {"team": "a"}}}),
        ));
        let labels = json!({"team": "a"});
        assert!(
            engine
                .on_pod(pod("u1", 1, labels.clone(), 2, 10), PodChange::Applied, NOW)
                .is_empty()
        );
        let out = engine.on_pod(pod("u1", 2, labels, 1, 10), PodChange::Applied, NOW);
        assert_eq!(rules(&out), vec![RuleId::RestartCountDecreased]);
        assert_eq!(out[0].policies, vec![key("all"), key("team")]);
        assert!(out[0].record_event);
        for name in ["all", "team"] {
            let counts = &engine.policy(&key(name)).expect("policy").counts;
            assert_eq!(
                counts.by_rule.get(&RuleId::RestartCountDecreased),
                Some(&1),
                "{name}"
            );
            assert_eq!(counts.pods, 1, "{name}");
        }
    }

    #[test]
    fn a_rule_disabled_by_one_policy_is_counted_only_by_the_other() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy("all", json!({})));
        engine.apply_policy(&policy(
            "quiet",
            json!({"rules": {"disabled": ["restart-count-decreased"]}}),
        ));
        engine.on_pod(pod("u1", 1, json!({}), 2, 10), PodChange::Applied, NOW);
        let out = engine.on_pod(pod("u1", 2, json!({}), 1, 10), PodChange::Applied, NOW);
        assert_eq!(rules(&out), vec![RuleId::RestartCountDecreased]);
        assert_eq!(out[0].policies, vec![key("all")]);
        let quiet = &engine.policy(&key("quiet")).expect("policy").counts;
        assert!(quiet.by_rule.is_empty());
        assert_eq!(quiet.pods, 1);
    }

    #[test]
    fn findings_below_the_event_severity_are_counted_but_not_recorded() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy(
            "strict",
            json!({"rules": {"eventSeverity": "violation"}}),
        ));
        engine.on_pod(pod("u1", 1, json!({}), 0, 10), PodChange::Applied, NOW);
        // Ready's time moves with its status unchanged: a finding below violation.
        let out = engine.on_pod(pod("u1", 2, json!({}), 0, 20), PodChange::Applied, NOW);
        let churn: Vec<&Output> = out
            .iter()
            .filter(|o| o.finding.rule == RuleId::ConditionTimeChurn)
            .collect();
        // Ready and ContainersReady both moved.
        assert_eq!(churn.len(), 2, "{out:?}");
        let recorded = RuleId::ConditionTimeChurn.severity() >= Severity::Violation;
        assert!(churn.iter().all(|o| o.record_event == recorded));
        let counts = &engine.policy(&key("strict")).expect("policy").counts;
        assert_eq!(counts.by_rule.get(&RuleId::ConditionTimeChurn), Some(&2));
    }

    #[test]
    fn a_pod_relabelled_out_of_every_policy_is_dropped() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy(
            "team",
            json!({"selector": {"matchLabels": {"team": "a"}}}),
        ));
        engine.on_pod(
            pod("u1", 1, json!({"team": "a"}), 2, 10),
            PodChange::Applied,
            NOW,
        );
        assert_eq!(engine.tracked_pods(), 1);
        engine.on_pod(
            pod("u1", 2, json!({"team": "b"}), 2, 10),
            PodChange::Applied,
            NOW,
        );
        assert_eq!(engine.tracked_pods(), 0);
        assert_eq!(engine.policy(&key("team")).expect("policy").counts.pods, 0);
        // Back in scope, it is a first sight: no transition from the forgotten state.
        let out = engine.on_pod(
            pod("u1", 3, json!({"team": "a"}), 1, 10),
            PodChange::Applied,
            NOW,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn across_a_relist_gap_only_rules_that_hold_across_one_judge_the_transition() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy("all", json!({})));
        engine.on_pod(pod("u1", 1, json!({}), 2, 10), PodChange::Applied, NOW);
        // Ready's time moved (the pod may have gone NotReady and back in the gap) and the
        // restart count of the same container instance went down (never legal).
        let out = engine.on_pod(pod("u1", 9, json!({}), 1, 20), PodChange::Relisted, NOW);
        assert_eq!(rules(&out), vec![RuleId::RestartCountDecreased]);
        // Unchanged during the gap: nothing to judge.
        let out = engine.on_pod(pod("u1", 9, json!({}), 1, 20), PodChange::Relisted, NOW);
        assert!(out.is_empty());
    }

    #[test]
    fn a_restart_count_that_falls_with_a_new_container_is_a_reset_even_across_a_gap() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy("all", json!({})));
        engine.on_pod(pod("u1", 1, json!({}), 3, 10), PodChange::Applied, NOW);
        // The node rebooted and the runtime lost its containers: a new one, counted again.
        let mut after = pod("u1", 9, json!({}), 0, 10);
        after.status.container_statuses[0].container_id =
            podwarden_model::view::ContainerId::of("cri-o://0b6f2d8e4a17");
        let out = engine.on_pod(after, PodChange::Relisted, NOW);
        assert_eq!(rules(&out), vec![RuleId::RestartCountReset]);
        assert_eq!(out[0].finding.severity, Severity::Warning);
    }

    #[test]
    fn a_relisted_unchanged_pod_is_a_duplicate_and_an_older_state_is_stale() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy("all", json!({})));
        engine.on_pod(pod("u1", 5, json!({}), 2, 10), PodChange::Applied, NOW);
        assert!(
            engine
                .on_pod(pod("u1", 5, json!({}), 2, 10), PodChange::Relisted, NOW)
                .is_empty()
        );
        // An older state after a newer one (restart count 3 then 2 would be a decrease).
        engine.on_pod(pod("u1", 7, json!({}), 3, 10), PodChange::Applied, NOW);
        assert!(
            engine
                .on_pod(pod("u1", 6, json!({}), 2, 10), PodChange::Applied, NOW)
                .is_empty()
        );
        assert_eq!(engine.skipped(), (1, 1));
    }

    #[test]
    fn a_pod_stuck_pending_is_found_when_its_deadline_passes_without_an_event() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy(
            "all",
            json!({"rules": {"stuckPendingAfter": "1m"}}),
        ));
        let pending = PodView::from_value(&json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "1",
                "creationTimestamp": "2026-08-01T10:00:00Z"},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "app", "image": "i"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available",
                "lastTransitionTime": "2026-08-01T10:00:00Z"}]}
        }))
        .expect("pending pod");
        let t0 = Timestamp(1_785_578_400);
        assert!(engine.on_pod(pending, PodChange::Applied, t0).is_empty());
        assert_eq!(engine.next_due(), Some(Timestamp(t0.0 + 60)));
        assert!(engine.advance(Timestamp(t0.0 + 59)).is_empty());
        let out = engine.advance(Timestamp(t0.0 + 61));
        assert_eq!(rules(&out), vec![RuleId::StuckPending]);
        assert!(
            out[0].finding.message.contains("0/3 nodes are available"),
            "{}",
            out[0].finding.message
        );
        assert_eq!(out[0].policies, vec![key("all")]);
        // Reported once while it holds.
        assert!(engine.advance(Timestamp(t0.0 + 600)).is_empty());
    }

    #[test]
    fn only_what_changes_a_count_asks_for_a_status_write() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy("all", json!({})));
        assert_eq!(engine.take_dirty(), vec![key("all")], "a new policy");
        engine.on_pod(pod("u1", 1, json!({}), 2, 10), PodChange::Applied, NOW);
        assert_eq!(
            engine.take_dirty(),
            vec![key("all")],
            "one more pod selected"
        );
        // A new state with no finding, then the same state again (a relist).
        engine.on_pod(pod("u1", 2, json!({}), 2, 10), PodChange::Applied, NOW);
        engine.on_pod(pod("u1", 2, json!({}), 2, 10), PodChange::Relisted, NOW);
        assert!(engine.take_dirty().is_empty());
        engine.on_pod(pod("u1", 3, json!({}), 1, 10), PodChange::Applied, NOW);
        assert_eq!(engine.take_dirty(), vec![key("all")], "a finding");
    }

    #[test]
    fn pods_missing_from_a_relist_are_forgotten() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy("all", json!({})));
        engine.on_pod(pod("u1", 1, json!({}), 0, 10), PodChange::Applied, NOW);
        engine.on_pod(pod("u2", 2, json!({}), 0, 10), PodChange::Applied, NOW);
        let live: HashSet<Box<str>> = ["u2".into()].into_iter().collect();
        let gone = engine.retain(&live);
        assert_eq!(gone.iter().map(|v| &*v.uid).collect::<Vec<_>>(), ["u1"]);
        assert_eq!(engine.tracked_pods(), 1);
        assert_eq!(engine.policy(&key("all")).expect("policy").counts.pods, 1);
    }

    #[test]
    fn an_invalid_policy_selects_nothing_and_a_deleted_one_releases_its_pods() {
        let mut engine = Engine::new();
        engine.apply_policy(&policy(
            "broken",
            json!({"rules": {"stuckPendingAfter": "soon"}}),
        ));
        engine.apply_policy(&policy("all", json!({})));
        assert!(
            engine
                .policy(&key("broken"))
                .expect("policy")
                .config
                .is_err()
        );
        engine.on_pod(pod("u1", 1, json!({}), 2, 10), PodChange::Applied, NOW);
        assert_eq!(
            engine.policy(&key("broken")).expect("policy").counts.pods,
            0
        );
        engine.delete_policy(&key("all"));
        assert_eq!(
            engine.tracked_pods(),
            0,
            "a pod no policy selects any more is forgotten with the policy"
        );
        let out = engine.on_pod(pod("u1", 2, json!({}), 1, 10), PodChange::Applied, NOW);
        assert!(out.is_empty());
        assert_eq!(engine.tracked_pods(), 0);
    }

    #[test]
    fn a_restarted_engine_resumes_counting_from_the_status() {
        let mut first = Engine::new();
        first.apply_policy(&policy("all", json!({})));
        first.on_pod(pod("u1", 1, json!({}), 2, 10), PodChange::Applied, NOW);
        first.on_pod(pod("u1", 2, json!({}), 1, 10), PodChange::Applied, NOW);
        let state = first.policy(&key("all")).expect("policy");
        let status = super::super::status::status_of(state, &jiff::Timestamp::UNIX_EPOCH);
        let mut with_status = policy("all", json!({}));
        with_status.status = Some(status);
        let mut second = Engine::new();
        second.apply_policy(&with_status);
        let counts = &second.policy(&key("all")).expect("policy").counts;
        assert_eq!(counts.by_rule, state.counts.by_rule);
        assert_eq!(counts.by_severity, state.counts.by_severity);
        assert_eq!(counts.recent, state.counts.recent);
        assert_eq!(counts.pods, 0, "selected pods are counted anew");
    }
}
