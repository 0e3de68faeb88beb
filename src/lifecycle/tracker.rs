//! Per-uid memory between snapshots: the previous view, which state rules currently hold,
//! and recent restart times for the restart budget. Deterministic, no I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::rules::{Finding, Input, RuleSet, RuleSettings, evaluate};
use super::time::Timestamp;
use super::view::{PodSpecView, PodView, SpecSource, Str};

#[derive(Debug)]
struct Tracked {
    view: PodView,
    /// State rules that held on `view`: they report again only after they stop holding.
    active: RuleSet,
    /// Times of the restarts seen, newest last; at most `restart_budget.count + 1` kept
    /// (one more than the budget is all `restart-budget-exceeded` needs).
    restarts: VecDeque<Timestamp>,
}

/// How a snapshot relates to what the tracker last saw of its uid (SEMANTICS B7, input
/// order): a watch sends one uid's states in resourceVersion order, but a recorder that
/// relists can send a state again, or an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first snapshot of its uid.
    New,
    /// A later state of a known uid (or one whose order cannot be told).
    Next,
    /// The resourceVersion last seen, again.
    Duplicate,
    /// A lower resourceVersion than the last seen: an older state.
    Stale,
}

impl Arrival {
    /// Whether the snapshot is audited as a transition and becomes the stored view.
    pub fn is_audited(self) -> bool {
        matches!(self, Arrival::New | Arrival::Next)
    }
}

/// Order two resourceVersions of one uid. They are opaque strings to clients; numeric
/// comparison only when both parse (etcd revisions), and an absent one (a trimmed dump)
/// orders nothing.
fn arrival_after(last: &str, cur: &str) -> Arrival {
    if last.is_empty() || cur.is_empty() {
        return Arrival::Next;
    }
    if last == cur {
        return Arrival::Duplicate;
    }
    match (last.parse::<u64>(), cur.parse::<u64>()) {
        (Ok(last), Ok(cur)) if cur < last => Arrival::Stale,
        _ => Arrival::Next,
    }
}

/// The audit state of a set of pods. Its size is one entry per live uid: callers
/// [`Tracker::forget`] a uid when its pod is deleted.
#[derive(Debug, Default)]
pub struct Tracker {
    pods: HashMap<Str, Tracked>,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// How `view` relates to the last snapshot seen of its uid.
    pub fn arrival(&self, view: &PodView) -> Arrival {
        match self.pods.get(&view.uid) {
            None => Arrival::New,
            Some(t) => arrival_after(&t.view.resource_version, &view.resource_version),
        }
    }

    /// Audit `view` as the next snapshot of its uid at time `now`, remember it, and return
    /// what it violates. A new uid under an old name is a new pod: uids are the key. A
    /// duplicate or stale snapshot ([`Tracker::arrival`]) is neither audited nor kept.
    pub fn observe(
        &mut self,
        view: PodView,
        now: Timestamp,
        settings: &RuleSettings,
    ) -> Vec<Finding> {
        if !self.arrival(&view).is_audited() {
            return Vec::new();
        }
        let (findings, tracked) = match self.pods.remove(&view.uid) {
            Some(mut t) => {
                record_restarts(&mut t.restarts, &t.view, &view, now, settings);
                let input = Input {
                    prev: Some(&t.view),
                    cur: &view,
                    settings,
                    now,
                    restarts_in_window: restarts_within(&t.restarts, now, settings),
                };
                let found = evaluate(&input);
                (
                    found,
                    Tracked {
                        view,
                        active: t.active,
                        restarts: t.restarts,
                    },
                )
            }
            None => {
                let input = Input {
                    prev: None,
                    cur: &view,
                    settings,
                    now,
                    restarts_in_window: 0,
                };
                let found = evaluate(&input);
                (
                    found,
                    Tracked {
                        view,
                        active: RuleSet::default(),
                        restarts: VecDeque::new(),
                    },
                )
            }
        };
        let was_active = tracked.active;
        let now_active: RuleSet = findings
            .iter()
            .map(|f| f.rule)
            .filter(|r| r.is_state())
            .collect();
        let report = findings
            .into_iter()
            .filter(|f| !(f.rule.is_state() && was_active.contains(f.rule)))
            .collect();
        let uid = tracked.view.uid.clone();
        self.pods.insert(
            uid,
            Tracked {
                active: now_active,
                ..tracked
            },
        );
        report
    }

    /// Drop a uid (its pod was deleted); returns its last view.
    pub fn forget(&mut self, uid: &str) -> Option<PodView> {
        self.pods.remove(uid).map(|t| t.view)
    }

    pub fn get(&self, uid: &str) -> Option<&PodView> {
        self.pods.get(uid).map(|t| &t.view)
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn views(&self) -> impl Iterator<Item = &PodView> {
        self.pods.values().map(|t| &t.view)
    }
}

/// Append the restarts between `prev` and `cur`, each at the start of the container's
/// current run (or `now`), keeping at most `count + 1` entries.
fn record_restarts(
    log: &mut VecDeque<Timestamp>,
    prev: &PodView,
    cur: &PodView,
    now: Timestamp,
    settings: &RuleSettings,
) {
    let keep = settings.restart_budget.count as usize + 1;
    let pairs = [
        (
            &cur.status.container_statuses,
            &prev.status.container_statuses,
        ),
        (
            &cur.status.init_container_statuses,
            &prev.status.init_container_statuses,
        ),
    ];
    for (cur_list, prev_list) in pairs {
        for c in cur_list.iter() {
            let before = prev_list
                .iter()
                .find(|p| p.name == c.name)
                .map_or(0, |p| p.restart_count);
            let added = (c.restart_count - before).clamp(0, keep as i32);
            let at = c.state.started_at().unwrap_or(now);
            for _ in 0..added {
                log.push_back(at);
            }
        }
    }
    let mut sorted: Vec<Timestamp> = log.drain(..).collect();
    sorted.sort_unstable();
    let skip = sorted.len().saturating_sub(keep);
    log.extend(sorted.into_iter().skip(skip));
}

fn restarts_within(log: &VecDeque<Timestamp>, now: Timestamp, settings: &RuleSettings) -> u32 {
    let window = settings.restart_budget.window.0;
    log.iter().filter(|t| now.since(**t) < window).count() as u32
}

impl SpecSource for Tracker {
    /// The spec of a tracked, controlled, bound pod (an orphan's full spec is always read,
    /// as it is what a recreation would use).
    fn known_spec(&self, uid: &str) -> Option<Arc<PodSpecView>> {
        self.pods
            .get(uid)
            .map(|t| &t.view)
            .filter(|v| v.controlled && v.spec.node_name.is_some())
            .map(|v| Arc::clone(&v.spec))
    }
}
