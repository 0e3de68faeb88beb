//! The offline auditor: pod snapshots from a file or a pipe, audited as transitions of
//! each uid in input order, with a policy's selector and rule settings applied.

pub mod cli;
pub mod input;
mod policy;
pub mod report;

use std::collections::BTreeMap;

use podwarden_base::selector::Selector;
use podwarden_model::{Finding, PodView, RuleId, RuleSettings, Severity, Timestamp, Tracker};

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

/// Audits snapshots in order. Time is the stream's own: the latest timestamp seen so far
/// in any snapshot, so an audit of the same input always gives the same findings.
#[derive(Debug, Default)]
pub struct Auditor {
    tracker: Tracker,
    settings: RuleSettings,
    scope: Scope,
    clock: Option<Timestamp>,
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

    /// Audit one snapshot; `deleted` for the final state of a deleted pod, whose uid is
    /// then forgotten.
    pub fn audit(&mut self, view: PodView, deleted: bool) -> Vec<Finding> {
        if !self.scope.selects(&view) {
            self.summary.out_of_scope += 1;
            return Vec::new();
        }
        let now = match (self.clock, view.latest_time()) {
            (Some(c), Some(t)) => c.max(t),
            (c, t) => c.or(t).unwrap_or(Timestamp(0)),
        };
        self.clock = Some(now);
        if self.tracker.get(&view.uid).is_none() {
            self.summary.pods += 1;
        }
        self.summary.snapshots += 1;
        let uid = deleted.then(|| view.uid.clone());
        let findings = self.tracker.observe(view, now, &self.settings);
        if let Some(uid) = uid {
            self.tracker.forget(&uid);
        }
        for f in &findings {
            *self.summary.by_rule.entry(f.rule).or_default() += 1;
            *self.summary.by_severity.entry(f.severity).or_default() += 1;
        }
        findings
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
