//! The offline auditor: pod snapshots from a file or a pipe, audited as transitions of
//! each uid in input order, with a policy's selector and rule settings applied.

pub mod cli;
pub mod input;
mod policy;
pub mod report;
pub mod scan;

use std::collections::BTreeMap;

use crate::lifecycle::{
    Arrival, Finding, PodView, RuleId, RuleSettings, Severity, Timestamp, Tracker,
};
use crate::selector::Selector;

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
        let arrival = self.tracker.arrival(&view);
        match arrival {
            Arrival::Duplicate => self.summary.duplicates += 1,
            Arrival::Stale => self.summary.stale += 1,
            Arrival::New => self.summary.pods += 1,
            Arrival::Next => {}
        }
        // A deletion is final whatever the order of the state it carries.
        let gone = deleted.then(|| view.uid.clone());
        let findings = if arrival.is_audited() {
            self.summary.snapshots += 1;
            self.tracker.observe(view, now, &self.settings)
        } else {
            Vec::new()
        };
        if let Some(uid) = gone {
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
