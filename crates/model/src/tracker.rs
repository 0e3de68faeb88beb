//! Per-uid memory between snapshots: the previous view, which state rules currently hold,
//! when the pod entered Pending, recent restart times for the restart budget, and when
//! each pod's next deadline falls. Deterministic, no I/O.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::rules::{Finding, Input, RuleSet, RuleSettings, evaluate, evaluate_deadlines, next_due};
use super::time::Timestamp;
use super::view::{Phase, PodSpecView, PodView, SpecSource, Str};

#[derive(Debug)]
struct Tracked {
    view: PodView,
    /// State rules that held on `view`: they report again only after they stop holding.
    active: RuleSet,
    /// Times of the restarts seen, newest last; at most `restart_budget.count + 1` kept
    /// (one more than the budget is all `restart-budget-exceeded` needs).
    restarts: VecDeque<Timestamp>,
    /// When the pod entered its current Pending stretch; None when it is not Pending.
    pending_since: Option<Timestamp>,
    /// When a deadline rule next starts to hold for `view` (its entry in `deadlines`).
    due: Option<Timestamp>,
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

/// The audit state of a set of pods. Its size is one entry per live uid (and at most one
/// deadline each): callers [`Tracker::forget`] a uid when its pod is deleted.
#[derive(Debug, Default)]
pub struct Tracker {
    pods: HashMap<Str, Tracked>,
    /// (due, uid) of every tracked pod with a deadline ahead, earliest first.
    deadlines: BTreeSet<(Timestamp, Str)>,
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
        let before = self.pods.remove(&view.uid);
        let pending_since = match &before {
            _ if view.phase() != Phase::Pending => None,
            Some(t) if t.view.phase() == Phase::Pending => t.pending_since.or(Some(now)),
            // Back to Pending (a recreated sandbox): the stretch starts now.
            Some(_) => Some(now),
            None => view.creation_timestamp.or(Some(now)),
        };
        let (findings, active, restarts, old_due) = match before {
            Some(mut t) => {
                record_restarts(&mut t.restarts, &t.view, &view, now, settings);
                let input = Input {
                    prev: Some(&t.view),
                    cur: &view,
                    settings,
                    now,
                    restarts_in_window: restarts_within(&t.restarts, now, settings),
                    pending_since,
                };
                (evaluate(&input), t.active, t.restarts, t.due)
            }
            None => {
                let input = Input {
                    prev: None,
                    cur: &view,
                    settings,
                    now,
                    restarts_in_window: 0,
                    pending_since,
                };
                (evaluate(&input), RuleSet::default(), VecDeque::new(), None)
            }
        };
        let now_active: RuleSet = findings
            .iter()
            .map(|f| f.rule)
            .filter(|r| r.is_state())
            .collect();
        let report = findings
            .into_iter()
            .filter(|f| !(f.rule.is_state() && active.contains(f.rule)))
            .collect();
        let due = next_due(&view, pending_since, settings, now);
        if old_due != due {
            if let Some(d) = old_due {
                self.deadlines.remove(&(d, view.uid.clone()));
            }
            if let Some(d) = due {
                self.deadlines.insert((d, view.uid.clone()));
            }
        }
        self.pods.insert(
            view.uid.clone(),
            Tracked {
                view,
                active: now_active,
                restarts,
                pending_since,
                due,
            },
        );
        report
    }

    /// Time has come to `now` with no new snapshot of the pods concerned: evaluate the
    /// deadline rules of every pod whose deadline has passed, on its last view. `skip`
    /// is a uid whose new snapshot is about to be observed at `now`: its last view may
    /// already be out of date, so it is left to that snapshot.
    pub fn advance(
        &mut self,
        now: Timestamp,
        settings: &RuleSettings,
        skip: Option<&str>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut skipped = None;
        while self.deadlines.first().is_some_and(|(due, _)| *due <= now) {
            let Some((due, uid)) = self.deadlines.pop_first() else {
                break;
            };
            if skip == Some(&*uid) {
                skipped = Some((due, uid));
                continue;
            }
            let Some(t) = self.pods.get_mut(&uid) else {
                continue;
            };
            let input = Input {
                prev: None,
                cur: &t.view,
                settings,
                now,
                restarts_in_window: 0,
                pending_since: t.pending_since,
            };
            for f in evaluate_deadlines(&input) {
                if !t.active.contains(f.rule) {
                    t.active.insert(f.rule);
                    out.push(f);
                }
            }
            t.due = next_due(&t.view, t.pending_since, settings, now);
            if let Some(d) = t.due {
                self.deadlines.insert((d, uid));
            }
        }
        if let Some(entry) = skipped {
            self.deadlines.insert(entry);
        }
        out
    }

    /// Drop a uid (its pod was deleted); returns its last view.
    pub fn forget(&mut self, uid: &str) -> Option<PodView> {
        let t = self.pods.remove(uid)?;
        if let Some(d) = t.due {
            self.deadlines.remove(&(d, t.view.uid.clone()));
        }
        Some(t.view)
    }

    pub fn get(&self, uid: &str) -> Option<&PodView> {
        self.pods.get(uid).map(|t| &t.view)
    }

    /// When the tracked pod `uid` next needs evaluation absent new snapshots.
    /// The earliest deadline of any tracked pod: when [`Tracker::advance`] next has work.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(due, _)| *due)
    }

    pub fn next_due(&self, uid: &str) -> Option<Timestamp> {
        self.pods.get(uid).and_then(|t| t.due)
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
            // restartCount is an int32 from any input: no overflow at its limits.
            let added = (i64::from(c.restart_count) - i64::from(before)).clamp(0, keep as i64);
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
