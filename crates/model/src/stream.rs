//! Auditing a stream of pod snapshots in order, as `podwarden audit` reads them: each
//! uid's transitions, a policy's scope and settings, the stream's own clock and the
//! deadlines it passes. Pure: the caller reads the input.

use std::collections::BTreeMap;

use crate::{Arrival, Finding, PodView, RuleId, RuleSettings, Severity, Timestamp, Tracker};
use podwarden_base::selector::Selector;

/// Which pods a policy applies to: its namespace (if any) and its selector.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub namespace: Option<String>,
    pub selector: Selector,
}

impl Scope {
    pub fn selects(&self, pod: &PodView) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| ns == &*pod.namespace)
            && self.selector.matches(&pod.labels)
    }
}

/// What an audit saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Distinct pod uids audited.
    pub pods: usize,
    /// Snapshots audited.
    pub snapshots: usize,
    /// Snapshots with the resourceVersion last seen for their uid: not audited again.
    pub duplicates: usize,
    /// Snapshots older (lower resourceVersion) than the last seen for their uid: not
    /// audited as transitions.
    pub stale: usize,
    /// Snapshots the policy's scope left out.
    pub out_of_scope: usize,
    /// Documents or list items that could not be used.
    pub unusable: usize,
    pub by_rule: BTreeMap<RuleId, usize>,
    pub by_severity: BTreeMap<Severity, usize>,
}

impl Summary {
    pub fn findings(&self) -> usize {
        self.by_rule.values().sum()
    }
    pub fn violations(&self) -> usize {
        self.by_severity
            .get(&Severity::Violation)
            .copied()
            .unwrap_or(0)
    }
}

/// Audits snapshots in order. Time is the stream's own: the latest time seen so far in
/// any snapshot of what already happened (creation, start, condition transitions,
/// container starts and exits; not deletion deadlines), so an audit of the same input
/// always gives the same findings. Deadline rules (stuck-pending, stuck-terminating) are
/// evaluated as that clock advances, and once more at the end of the input.
#[derive(Debug, Default)]
pub struct Auditor {
    tracker: Tracker,
    settings: RuleSettings,
    scope: Scope,
    clock: Option<Timestamp>,
    /// The time the input ends at, if not its own clock (`--now`).
    end: Option<Timestamp>,
    summary: Summary,
}

impl Auditor {
    pub fn new(settings: RuleSettings, scope: Scope) -> Self {
        Auditor {
            settings,
            scope,
            ..Self::default()
        }
    }

    /// Evaluate the deadline rules at the end of the input at `end` (say, the wall clock
    /// for a `kubectl get` taken now) instead of at the input's latest time.
    pub fn ending_at(mut self, end: Option<Timestamp>) -> Self {
        self.end = end;
        self
    }

    /// Audit one snapshot; `deleted` for the final state of a deleted pod, whose uid is
    /// then forgotten. Returns its findings, after those of other pods whose deadlines
    /// the snapshot's time passed.
    pub fn audit(&mut self, view: PodView, deleted: bool) -> Vec<Finding> {
        let in_scope = self.scope.selects(&view);
        let arrival = if in_scope {
            self.tracker.arrival(&view)
        } else {
            Arrival::New
        };
        // A new state of this pod is audited at the new time itself; its last view may
        // no longer hold by then.
        let skip = (in_scope && arrival.is_audited()).then_some(&*view.uid);
        let mut findings = match view.latest_time() {
            Some(t) if self.clock.is_none_or(|c| c < t) => {
                self.clock = Some(t);
                self.tracker.advance(t, &self.settings, skip)
            }
            _ => Vec::new(),
        };
        // A deletion is final whatever the order of the state it carries.
        let gone = (in_scope && deleted).then(|| view.uid.clone());
        if !in_scope {
            self.summary.out_of_scope += 1;
        } else {
            match arrival {
                Arrival::Duplicate => self.summary.duplicates += 1,
                Arrival::Stale => self.summary.stale += 1,
                Arrival::New | Arrival::Next => {
                    if arrival == Arrival::New {
                        self.summary.pods += 1;
                    }
                    self.summary.snapshots += 1;
                    let now = self.clock.unwrap_or(Timestamp(0));
                    findings.extend(self.tracker.observe(view, now, &self.settings));
                }
            }
        }
        if let Some(uid) = gone {
            self.tracker.forget(&uid);
        }
        self.count(&findings);
        findings
    }

    /// The end of the input: the deadline rules once more, at the end time if one was
    /// given ([`Auditor::ending_at`]), else at the input's clock.
    pub fn finish(&mut self) -> Vec<Finding> {
        let Some(now) = self.end.or(self.clock) else {
            return Vec::new();
        };
        let findings = self.tracker.advance(now, &self.settings, None);
        self.count(&findings);
        findings
    }

    fn count(&mut self, findings: &[Finding]) {
        for f in findings {
            *self.summary.by_rule.entry(f.rule).or_default() += 1;
            *self.summary.by_severity.entry(f.severity).or_default() += 1;
        }
    }

    /// The audit's clock: the latest time seen in the input so far.
    pub fn clock(&self) -> Option<Timestamp> {
        self.clock
    }

    /// What the auditor remembers per uid; lets the reader skip specs it already knows.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn note_unusable(&mut self) {
        self.summary.unusable += 1;
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}
