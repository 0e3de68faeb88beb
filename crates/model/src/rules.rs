//! The rules: each a pure function over the previous view of the same pod uid (if any) and
//! the current one. Severity `violation` only for what SEMANTICS B7 calls definite.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::phase::{container_should_restart, describe_policy, expected_phase, may_ever_restart};
use super::time::{Seconds, Timestamp};
use super::view::{
    ConditionStatus, ConditionType, ContainerSpec, ContainerState, ContainerStatus, Phase, PodView,
    Terminated,
};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Violation,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Violation => "violation",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! rules {
    ($($variant:ident = $id:literal, $sev:ident, $state:literal, $fn:ident, $doc:literal;)*) => {
        /// Stable rule ids.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum RuleId {
            $(#[doc = $doc] #[serde(rename = $id)] $variant,)*
        }

        impl RuleId {
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(RuleId::$variant => $id,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(RuleId::$variant => Severity::$sev,)* }
            }

            /// What the rule checks, in one sentence.
            pub fn description(self) -> &'static str {
                match self { $(RuleId::$variant => $doc,)* }
            }

            /// A state rule reports when its condition appears on a pod (not again on every
            /// snapshot while it holds); the others report each offending transition.
            pub fn is_state(self) -> bool {
                match self { $(RuleId::$variant => $state,)* }
            }

            fn check(self, input: &Input<'_>, out: &mut Vec<Finding>) {
                match self { $(RuleId::$variant => $fn(input, out),)* }
            }
        }
    };
}

rules! {
    TerminalPhaseRegression = "terminal-phase-regression", Violation, false, terminal_phase_regression,
        "The phase left Succeeded or Failed.";
    RestartAgainstPolicy = "restart-against-policy", Violation, false, restart_against_policy,
        "A terminated container ran again although its effective restart policy does not restart that exit.";
    TerminalPhaseReady = "terminal-phase-ready", Violation, true, terminal_phase_ready,
        "A Succeeded pod has Ready or ContainersReady True, or a terminal snapshot set or changed one of them to True.";
    ReadyWithoutContainersReady = "ready-without-containers-ready", Violation, true, ready_without_containers_ready,
        "Ready is True while ContainersReady is present and not True, or Ready became True while a readiness gate's condition was never written.";
    ContainersReadyMismatch = "containers-ready-mismatch", Violation, true, containers_ready_mismatch,
        "ContainersReady is True while a container or sidecar is not ready or has no status.";
    SucceededWithFailedContainer = "succeeded-with-failed-container", Violation, true, succeeded_with_failed_container,
        "The phase is Succeeded while a container is not terminated with exit code 0.";
    RestartCountDecreased = "restart-count-decreased", Violation, false, restart_count_decreased,
        "A container's restartCount went down while its containerID stayed the same.";
    StartTimeChanged = "start-time-changed", Violation, false, start_time_changed,
        "status.startTime changed once set.";
    RunningUnbound = "running-unbound", Violation, true, running_unbound,
        "The phase is Running, or a container runs, while the pod is bound to no node.";
    ReadyDespiteGate = "ready-despite-gate", Warning, true, ready_despite_gate,
        "Ready became True while a readiness gate's condition is present and not True.";
    RestartCountReset = "restart-count-reset", Warning, false, restart_count_reset,
        "A container's restartCount went down with a new container instance: the runtime lost its state.";
    ConditionTimeChurn = "condition-time-churn", Warning, false, condition_time_churn,
        "A kubelet-written condition changed lastTransitionTime without changing status.";
    PhaseMismatch = "phase-mismatch", Warning, true, phase_mismatch,
        "The observed phase differs from the phase the kubelet computes from the container states.";
    UnknownDisruptionReason = "unknown-disruption-reason", Warning, true, unknown_disruption_reason,
        "A DisruptionTarget condition carries a reason outside the known set.";
    PhaseUnknown = "phase-unknown", Warning, true, phase_unknown,
        "The phase is Unknown.";
    FailedWithRunningContainers = "failed-with-running-containers", Warning, true, failed_with_running_containers,
        "The phase is Failed while a container still runs.";
    RestartUnderNever = "restart-under-never", Warning, true, restart_under_never,
        "A container that is never restarted has a restartCount above zero.";
    RestartFasterThanBackoff = "restart-faster-than-backoff", Warning, false, restart_faster_than_backoff,
        "A container restarted sooner than the crash-loop back-off allows.";
    StuckPending = "stuck-pending", Warning, true, stuck_pending,
        "The pod stayed Pending longer than the policy allows since it entered Pending.";
    StuckTerminating = "stuck-terminating", Warning, true, stuck_terminating,
        "The pod is still present longer than the policy allows after its deletion deadline.";
    RestartBudgetExceeded = "restart-budget-exceeded", Warning, true, restart_budget_exceeded,
        "The pod restarted more often within the window than the policy's budget.";
    OomKilled = "oom-killed", Info, false, oom_killed,
        "A container was killed for exceeding its memory limit.";
}

impl RuleId {
    /// Whether a finding stays sound when the previous snapshot is not the state right
    /// before this one (a watch that relisted after a gap, missing states between).
    /// Rules about one snapshot judge only it. Of the transition rules, those whose
    /// forbidden change no sequence of legal intermediate states can make: a terminal
    /// phase is never left; a container that ended with an exit its (immutable) policy
    /// does not restart never runs again; one container instance's restart count never
    /// falls, and a fall with another instance is a reset whatever came between;
    /// startTime is set once. Not: condition times and back-off timing (intermediate
    /// states explain them), OOM kills (one may already have been reported).
    pub fn holds_across_gap(self) -> bool {
        self.is_state()
            || matches!(
                self,
                RuleId::TerminalPhaseRegression
                    | RuleId::RestartAgainstPolicy
                    | RuleId::RestartCountDecreased
                    | RuleId::RestartCountReset
                    | RuleId::StartTimeChanged
            )
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuleId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RuleId::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown rule {s:?}"))
    }
}

/// A set of rules as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleSet(u32);

impl RuleSet {
    pub fn insert(&mut self, r: RuleId) {
        self.0 |= 1 << r as u32;
    }
    pub fn contains(self, r: RuleId) -> bool {
        self.0 & (1 << r as u32) != 0
    }
}

impl FromIterator<RuleId> for RuleSet {
    fn from_iter<I: IntoIterator<Item = RuleId>>(iter: I) -> Self {
        let mut s = RuleSet::default();
        iter.into_iter().for_each(|r| s.insert(r));
        s
    }
}

/// At most this many restarts in `window` before `restart-budget-exceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    pub count: u32,
    pub window: Seconds,
}

/// Per-policy rule settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSettings {
    pub disabled: RuleSet,
    pub stuck_pending_after: Seconds,
    /// How long past its deletion deadline a pod may stay before `stuck-terminating`.
    pub stuck_terminating_after: Seconds,
    pub restart_budget: RestartBudget,
}

impl RuleSettings {
    pub const DEFAULT_STUCK_PENDING_AFTER: Seconds = Seconds(600);
    pub const DEFAULT_STUCK_TERMINATING_AFTER: Seconds = Seconds(300);
    pub const DEFAULT_RESTART_BUDGET: RestartBudget = RestartBudget {
        count: 5,
        window: Seconds(3600),
    };
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            disabled: RuleSet::default(),
            stuck_pending_after: Self::DEFAULT_STUCK_PENDING_AFTER,
            stuck_terminating_after: Self::DEFAULT_STUCK_TERMINATING_AFTER,
            restart_budget: Self::DEFAULT_RESTART_BUDGET,
        }
    }
}

/// One problem found on one pod snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

impl Finding {
    fn new(rule: RuleId, pod: &PodView, message: String) -> Self {
        Finding {
            rule,
            severity: rule.severity(),
            namespace: pod.namespace.to_string(),
            pod: pod.name.to_string(),
            uid: pod.uid.to_string(),
            resource_version: pod.resource_version.to_string(),
            container: None,
            message,
            expected: None,
            observed: None,
        }
    }
    fn container(mut self, name: &str) -> Self {
        self.container = Some(name.to_string());
        self
    }
    fn values(mut self, expected: impl Into<String>, observed: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self.observed = Some(observed.into());
        self
    }
}

/// What one evaluation sees.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The previous view of the same uid, if there was one.
    pub prev: Option<&'a PodView>,
    pub cur: &'a PodView,
    pub settings: &'a RuleSettings,
    /// The time of the evaluation: wall clock live, the stream's latest time offline.
    pub now: Timestamp,
    /// Restarts of this pod within the budget window, this transition's included.
    pub restarts_in_window: u32,
    /// When the tracker saw the pod enter its current Pending stretch (None: not known,
    /// the creation time stands in).
    pub pending_since: Option<Timestamp>,
}

/// Evaluate every enabled rule, in rule order.
pub fn evaluate(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for &rule in RuleId::ALL {
        if !input.settings.disabled.contains(rule) {
            rule.check(input, &mut out);
        }
    }
    out
}

impl RuleId {
    /// Rules that can start to hold by time passing alone, with no new snapshot: they are
    /// evaluated again when [`next_due`] says.
    pub fn is_deadline(self) -> bool {
        matches!(self, RuleId::StuckPending | RuleId::StuckTerminating)
    }
}

/// Evaluate only the enabled deadline rules (what time passing alone can change).
pub fn evaluate_deadlines(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for &rule in RuleId::ALL {
        if rule.is_deadline() && !input.settings.disabled.contains(rule) {
            rule.check(input, &mut out);
        }
    }
    out
}

/// When `pod` next needs evaluation after `now` if nothing else happens to it: the
/// earliest time later than `now` at which an enabled deadline rule starts to hold, if
/// any. `pending_since` is when the pod entered its current Pending stretch, as the
/// tracker saw it (None: its creation). A live controller sets its timers from this;
/// the offline auditor evaluates the pod again when its clock passes it.
pub fn next_due(
    pod: &PodView,
    pending_since: Option<Timestamp>,
    settings: &RuleSettings,
    now: Timestamp,
) -> Option<Timestamp> {
    let enabled = |r| !settings.disabled.contains(r);
    let pending = pending_deadline(pod, pending_since, settings)
        .filter(|_| enabled(RuleId::StuckPending))
        .map(|(_, due)| due);
    let terminating = terminating_deadline(pod, settings)
        .filter(|_| enabled(RuleId::StuckTerminating))
        .map(|(_, due)| due);
    [pending, terminating]
        .into_iter()
        .flatten()
        .filter(|due| *due > now)
        .min()
}

/// A Pending pod's (entry into Pending, time stuck-pending holds from).
fn pending_deadline(
    pod: &PodView,
    pending_since: Option<Timestamp>,
    settings: &RuleSettings,
) -> Option<(Timestamp, Timestamp)> {
    if pod.phase() != Phase::Pending {
        return None;
    }
    let since = pending_since.or(pod.creation_timestamp)?;
    Some((since, since.plus(settings.stuck_pending_after)))
}

/// A deleted pod's (deletion deadline, time stuck-terminating holds from).
fn terminating_deadline(pod: &PodView, settings: &RuleSettings) -> Option<(Timestamp, Timestamp)> {
    let deadline = pod.deletion_timestamp?;
    Some((deadline, deadline.plus(settings.stuck_terminating_after)))
}

/// Which kind of container a spec entry is, for messages.
#[derive(Clone, Copy)]
enum Kind {
    Init,
    Sidecar,
    Regular,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Init => "init container",
            Kind::Sidecar => "sidecar",
            Kind::Regular => "container",
        }
    }
}

/// Every container of `pod` with its kind and its status in `pod` (if any).
fn containers(
    pod: &PodView,
) -> impl Iterator<Item = (Kind, &ContainerSpec, Option<&ContainerStatus>)> {
    let init = pod.spec.init_containers.iter().map(move |c| {
        let kind = if c.is_sidecar() {
            Kind::Sidecar
        } else {
            Kind::Init
        };
        (kind, c, pod.init_container_status(&c.name))
    });
    let regular = pod
        .spec
        .containers
        .iter()
        .map(move |c| (Kind::Regular, c, pod.container_status(&c.name)));
    init.chain(regular)
}

/// The status of the same container (same list) in another view.
fn status_in<'a>(pod: &'a PodView, kind: Kind, name: &str) -> Option<&'a ContainerStatus> {
    match kind {
        Kind::Regular => pod.container_status(name),
        Kind::Init | Kind::Sidecar => pod.init_container_status(name),
    }
}

fn names(list: &[&str]) -> String {
    list.join(", ")
}

fn terminal_phase_regression(i: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(prev) = i.prev else { return };
    let (was, now) = (prev.phase(), i.cur.phase());
    if was.is_terminal() && now != was {
        out.push(
            Finding::new(
                RuleId::TerminalPhaseRegression,
                i.cur,
                format!("phase left the terminal phase {was}: {was} -> {now}"),
            )
            .values(was.as_str(), now.as_str()),
        );
    }
}

fn restart_against_policy(i: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(prev) = i.prev else { return };
    let policy = i.cur.restart_policy();
    for (kind, spec, cur) in containers(i.cur) {
        if matches!(kind, Kind::Sidecar) {
            continue;
        }
        let (Some(cur), Some(before)) = (cur, status_in(prev, kind, &spec.name)) else {
            continue;
        };
        let ContainerState::Terminated(t) = &before.state else {
            continue;
        };
        if cur.state.terminated().is_some() || container_should_restart(spec, policy, t.exit_code) {
            continue;
        }
        out.push(
            Finding::new(
                RuleId::RestartAgainstPolicy,
                i.cur,
                format!(
                    "{} {} was restarted although {}: {} -> {}",
                    kind.noun(),
                    spec.name,
                    describe_policy(spec, policy, t.exit_code),
                    before.state.describe(),
                    cur.state.describe()
                ),
            )
            .container(&spec.name)
            .values("terminated", cur.state.describe()),
        );
    }
}

fn terminal_phase_ready(i: &Input<'_>, out: &mut Vec<Finding>) {
    let phase = i.cur.phase();
    if !phase.is_terminal() {
        return;
    }
    // The kubelet writes both False with a terminal phase (B3). PodGC fails a pod by
    // writing the phase alone (B5: a deleted node's pods, terminating pods on an
    // out-of-service node), so a Failed pod may keep the True its dead kubelet wrote.
    // Definite: Succeeded with either True (PodGC never writes Succeeded), or a terminal
    // snapshot that sets or changes either to True.
    let mut offending = Vec::new();
    for kind in [ConditionType::Ready, ConditionType::ContainersReady] {
        let Some(c) = i.cur.condition(&kind) else {
            continue;
        };
        if c.status != ConditionStatus::True {
            continue;
        }
        let before = i.prev.map(|p| p.condition(&kind));
        let what = match (phase, before) {
            (Phase::Succeeded, _) => format!("{} is True", kind.as_str()),
            (_, Some(None)) => format!("{} was set to True", kind.as_str()),
            (_, Some(Some(b))) if b.status != ConditionStatus::True => {
                format!("{} went {} -> True", kind.as_str(), b.status.as_str())
            }
            (_, Some(Some(b))) if b != c => format!(
                "{} was written True again (lastTransitionTime {} -> {})",
                kind.as_str(),
                b.last_transition_time
                    .map_or("unset".to_string(), |t| t.to_string()),
                c.last_transition_time
                    .map_or("unset".to_string(), |t| t.to_string())
            ),
            // Unchanged, or no earlier snapshot to tell: PodGC may have left it.
            _ => continue,
        };
        offending.push((kind, what));
    }
    if offending.is_empty() {
        return;
    }
    let whats: Vec<&str> = offending.iter().map(|(_, w)| w.as_str()).collect();
    let message = match phase {
        Phase::Succeeded => format!("phase is Succeeded but {}", whats.join(", ")),
        _ => format!("phase is {phase} and this update {}", whats.join(", ")),
    };
    let pairs = |v: &str| {
        offending
            .iter()
            .map(|(k, _)| format!("{}={v}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(
        Finding::new(RuleId::TerminalPhaseReady, i.cur, message)
            .values(pairs("False"), pairs("True")),
    );
}

fn ready_without_containers_ready(i: &Input<'_>, out: &mut Vec<Finding>) {
    let pod = i.cur;
    if !pod.condition_is_true(&ConditionType::Ready) {
        return;
    }
    let mut not_true = Vec::new();
    // An absent ContainersReady is no evidence: kubelets before 1.12 never wrote it, and
    // dumps get trimmed.
    if let Some(c) = pod
        .condition(&ConditionType::ContainersReady)
        .filter(|c| c.status != ConditionStatus::True)
    {
        not_true.push(format!("ContainersReady is {}", c.status.as_str()));
    }
    // A gate nobody ever wrote: the kubelet computes Ready from gate conditions it read
    // from the API, so it cannot have seen it True. A gate present and not True is
    // ready-despite-gate.
    let became_ready = became_ready(i);
    if became_ready {
        for (gate, state) in gates(i) {
            if let GateState::NeverWritten = state {
                not_true.push(format!("readiness gate {gate} was never written"));
            }
        }
    }
    if not_true.is_empty() {
        return;
    }
    let observed = not_true.join(", ");
    let verb = if became_ready { "became" } else { "is" };
    out.push(
        Finding::new(
            RuleId::ReadyWithoutContainersReady,
            pod,
            format!("Ready {verb} True while {observed}"),
        )
        .values("Ready=False", format!("Ready=True, {observed}")),
    );
}

/// Ready turned True in this snapshot. Only then are the gates evidence: a gate's owner
/// may set its condition False while Ready stays True until the kubelet next reconciles
/// the pod (B7 rule 4).
fn became_ready(i: &Input<'_>) -> bool {
    i.cur.condition_is_true(&ConditionType::Ready)
        && i.prev
            .is_some_and(|p| !p.condition_is_true(&ConditionType::Ready))
}

/// What the API shows of a readiness gate's condition.
enum GateState {
    True,
    /// Present with another status.
    Not(ConditionStatus),
    /// Absent now, present in the previous snapshot: its owner removed it.
    Removed,
    /// Absent now and before.
    NeverWritten,
}

/// Each readiness gate of the current snapshot with the state of its condition.
fn gates<'a>(i: &'a Input<'_>) -> impl Iterator<Item = (&'a str, GateState)> {
    i.cur.spec.readiness_gates.iter().map(move |gate| {
        let kind = ConditionType::Other(gate.clone());
        let state = match i.cur.condition(&kind) {
            Some(c) if c.status == ConditionStatus::True => GateState::True,
            Some(c) => GateState::Not(c.status),
            None if i.prev.is_some_and(|p| p.condition(&kind).is_some()) => GateState::Removed,
            None => GateState::NeverWritten,
        };
        (&**gate, state)
    })
}

fn ready_despite_gate(i: &Input<'_>, out: &mut Vec<Finding>) {
    if !became_ready(i) {
        return;
    }
    // The status manager writes the kubelet's cached Ready, computed from the gates as the
    // kubelet last read them, beside the gates as a fresh GET returns them
    // (mergePodStatus): a gate its owner set False in between sits beside Ready True.
    let not_true: Vec<String> = gates(i)
        .filter_map(|(gate, state)| match state {
            GateState::Not(s) => Some(format!("readiness gate {gate} is {}", s.as_str())),
            GateState::Removed => Some(format!("readiness gate {gate} was removed")),
            GateState::True | GateState::NeverWritten => None,
        })
        .collect();
    if not_true.is_empty() {
        return;
    }
    let observed = not_true.join(", ");
    out.push(
        Finding::new(
            RuleId::ReadyDespiteGate,
            i.cur,
            format!(
                "Ready became True while {observed} (legal when the gate's owner changed it after the kubelet computed Ready: the status manager writes its cached Ready beside the gates it reads afresh)"
            ),
        )
        .values("Ready=False", format!("Ready=True, {observed}")),
    );
}

fn containers_ready_mismatch(i: &Input<'_>, out: &mut Vec<Finding>) {
    let pod = i.cur;
    if !pod.condition_is_true(&ConditionType::ContainersReady) {
        return;
    }
    let mut bad = Vec::new();
    for (spec, status) in pod.regular_and_sidecars() {
        match status {
            None => bad.push(format!("{} has no status", spec.name)),
            Some(s) if !s.ready => bad.push(format!("{} is not ready", spec.name)),
            Some(_) => {}
        }
    }
    if bad.is_empty() {
        return;
    }
    out.push(
        Finding::new(
            RuleId::ContainersReadyMismatch,
            pod,
            format!("ContainersReady is True while container {}", bad.join(", ")),
        )
        .values("ContainersReady=False", "ContainersReady=True"),
    );
}

fn succeeded_with_failed_container(i: &Input<'_>, out: &mut Vec<Finding>) {
    let pod = i.cur;
    if pod.phase() != Phase::Succeeded {
        return;
    }
    for spec in pod.spec.containers.iter() {
        let state = pod.container_status(&spec.name).map(|s| &s.state);
        let ok = state
            .and_then(ContainerState::terminated)
            .is_some_and(|t| t.exit_code == 0);
        if !ok {
            let observed = state.map_or("no status".to_string(), ContainerState::describe);
            out.push(
                Finding::new(
                    RuleId::SucceededWithFailedContainer,
                    pod,
                    format!(
                        "phase is Succeeded but container {} is {observed}",
                        spec.name
                    ),
                )
                .container(&spec.name)
                .values("terminated (exit 0)", observed),
            );
            // One finding per pod: the state holds as long as any container is off.
            return;
        }
    }
}

fn condition_time_churn(i: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(prev) = i.prev else { return };
    for cond in i.cur.status.conditions.iter() {
        if !cond.kind.kubelet_owned() {
            continue;
        }
        let Some(before) = prev.condition(&cond.kind) else {
            continue;
        };
        let (Some(t0), Some(t1)) = (before.last_transition_time, cond.last_transition_time) else {
            continue;
        };
        if before.status == cond.status && t0 != t1 {
            out.push(
                Finding::new(
                    RuleId::ConditionTimeChurn,
                    i.cur,
                    format!(
                        "condition {} stayed {} but its lastTransitionTime moved: {t0} -> {t1} (legal when the node lifecycle controller and the kubelet both wrote it, or the kubelet's status manager coalesced a flip while the API server was unreachable)",
                        cond.kind.as_str(),
                        cond.status.as_str()
                    ),
                )
                .values(t0.to_string(), t1.to_string()),
            );
        }
    }
}

/// Each container or init container whose restartCount is lower than in the previous
/// snapshot: (noun, current status, previous status).
fn restart_count_falls<'a>(
    i: &'a Input<'_>,
) -> impl Iterator<Item = (&'static str, &'a ContainerStatus, &'a ContainerStatus)> {
    let prev = i.prev;
    let lists = [
        (
            &i.cur.status.container_statuses,
            prev.map(|p| &p.status.container_statuses),
            "container",
        ),
        (
            &i.cur.status.init_container_statuses,
            prev.map(|p| &p.status.init_container_statuses),
            "init container",
        ),
    ];
    lists.into_iter().flat_map(|(cur_list, prev_list, noun)| {
        cur_list.iter().filter_map(move |cur| {
            let before = prev_list?.iter().find(|s| s.name == cur.name)?;
            (cur.restart_count < before.restart_count).then_some((noun, cur, before))
        })
    })
}

fn restart_count_decreased(i: &Input<'_>, out: &mut Vec<Finding>) {
    // The count is a label of the container instance, set when the kubelet creates it
    // (startContainer): one containerID never shows two counts.
    for (noun, cur, before) in restart_count_falls(i) {
        if !cur.container_id.same_instance(before.container_id) {
            continue;
        }
        out.push(
            Finding::new(
                RuleId::RestartCountDecreased,
                i.cur,
                format!(
                    "restartCount of {noun} {} went down with the same containerID: {} -> {}",
                    cur.name, before.restart_count, cur.restart_count
                ),
            )
            .container(&cur.name)
            .values(
                format!(">= {}", before.restart_count),
                cur.restart_count.to_string(),
            ),
        );
    }
}

fn restart_count_reset(i: &Input<'_>, out: &mut Vec<Finding>) {
    // A kubelet whose runtime lost its containers (a node reboot under CRI-O) creates the
    // next one with a count read from the pod's log directory, or 0 without it; kubelets
    // before 1.21 always with 0.
    for (noun, cur, before) in restart_count_falls(i) {
        if cur.container_id.same_instance(before.container_id) {
            continue;
        }
        let instance = if cur.container_id.is_known() && before.container_id.is_known() {
            "with a new container instance"
        } else {
            "without a containerID on both sides to tell the instances apart"
        };
        out.push(
            Finding::new(
                RuleId::RestartCountReset,
                i.cur,
                format!(
                    "restartCount of {noun} {} went down {instance}: {} -> {} (legal when the container runtime lost its containers, e.g. on a node reboot: the kubelet counts again from the pod's log directory, or from 0)",
                    cur.name, before.restart_count, cur.restart_count
                ),
            )
            .container(&cur.name)
            .values(
                format!(">= {}", before.restart_count),
                cur.restart_count.to_string(),
            ),
        );
    }
}

fn start_time_changed(i: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(prev) = i.prev else { return };
    // A start time that disappears is no evidence (trimmed dumps); one that moves is: the
    // status manager keeps the first across updates and kubelet restarts (B3).
    let (Some(was), Some(now)) = (prev.status.start_time, i.cur.status.start_time) else {
        return;
    };
    if was != now {
        out.push(
            Finding::new(
                RuleId::StartTimeChanged,
                i.cur,
                format!("status.startTime changed once set: {was} -> {now}"),
            )
            .values(was.to_string(), now.to_string()),
        );
    }
}

fn running_unbound(i: &Input<'_>, out: &mut Vec<Finding>) {
    let pod = i.cur;
    // The API server admits no pod without a container: a spec without one was trimmed
    // from the dump, and says nothing about the binding either.
    if pod.spec.containers.is_empty()
        || pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
    {
        return;
    }
    let running: Vec<&str> = pod
        .status
        .init_container_statuses
        .iter()
        .chain(pod.status.container_statuses.iter())
        .filter(|s| s.state.is_running())
        .map(|s| &*s.name)
        .collect();
    let phase = pod.phase();
    if phase != Phase::Running && running.is_empty() {
        return;
    }
    let what = match (phase, running.is_empty()) {
        (Phase::Running, true) => "phase is Running".to_string(),
        (Phase::Running, false) => format!("phase is Running and {} running", names(&running)),
        _ => format!("{} running", names(&running)),
    };
    out.push(
        Finding::new(
            RuleId::RunningUnbound,
            pod,
            format!(
                "{what} but spec.nodeName is not set: only a kubelet runs containers, and only for pods bound to its node"
            ),
        )
        .values("spec.nodeName set", "no spec.nodeName"),
    );
}

fn phase_mismatch(i: &Input<'_>, out: &mut Vec<Finding>) {
    // Without container statuses (or a spec's containers) the kubelet's inputs are not
    // visible: trimmed dumps, or the kubelet has not reported yet. Say nothing.
    if i.cur.spec.containers.is_empty() || i.cur.status.container_statuses.is_empty() {
        return;
    }
    let prev_phase = i.prev.map(PodView::phase);
    let observed = i.cur.phase();
    // A phase leaving a terminal phase is terminal-phase-regression; Unknown is phase-unknown.
    if observed == Phase::Unknown || prev_phase.is_some_and(Phase::is_terminal) {
        return;
    }
    let expected = expected_phase(prev_phase, i.cur);
    if expected != observed {
        out.push(
            Finding::new(
                RuleId::PhaseMismatch,
                i.cur,
                format!(
                    "phase is {observed}, but the kubelet computes {expected} from these container states (restartPolicy {})",
                    i.cur.restart_policy().as_str()
                ),
            )
            .values(expected.as_str(), observed.as_str()),
        );
    }
}

/// DisruptionTarget reasons upstream sets (B4).
pub const KNOWN_DISRUPTION_REASONS: &[&str] = &[
    "PreemptionByScheduler",
    "DeletionByTaintManager",
    "EvictionByEvictionAPI",
    "DeletionByPodGC",
    "TerminationByKubelet",
];

fn unknown_disruption_reason(i: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(cond) = i.cur.condition(&ConditionType::DisruptionTarget) else {
        return;
    };
    if cond.status != ConditionStatus::True {
        return;
    }
    let reason = cond.reason.as_deref().unwrap_or("");
    if !KNOWN_DISRUPTION_REASONS.contains(&reason) {
        out.push(
            Finding::new(
                RuleId::UnknownDisruptionReason,
                i.cur,
                format!(
                    "DisruptionTarget reason {reason:?} is not one of {}",
                    KNOWN_DISRUPTION_REASONS.join(", ")
                ),
            )
            .values("a known DisruptionTarget reason", reason),
        );
    }
}

fn phase_unknown(i: &Input<'_>, out: &mut Vec<Finding>) {
    if i.cur.phase() == Phase::Unknown {
        out.push(Finding::new(
            RuleId::PhaseUnknown,
            i.cur,
            "phase is Unknown: the pod's state could not be obtained from its node".into(),
        ));
    }
}

fn failed_with_running_containers(i: &Input<'_>, out: &mut Vec<Finding>) {
    if i.cur.phase() != Phase::Failed {
        return;
    }
    let running: Vec<&str> = containers(i.cur)
        .filter(|(_, _, s)| s.is_some_and(|s| s.state.is_running()))
        .map(|(_, c, _)| &*c.name)
        .collect();
    if !running.is_empty() {
        out.push(
            Finding::new(
                RuleId::FailedWithRunningContainers,
                i.cur,
                format!(
                    "phase is Failed while {} still running (a lost node's pods are marked Failed by PodGC)",
                    names(&running)
                ),
            )
            .values("no running container", format!("running: {}", names(&running))),
        );
    }
}

fn restart_under_never(i: &Input<'_>, out: &mut Vec<Finding>) {
    let policy = i.cur.restart_policy();
    let restarted: Vec<String> = containers(i.cur)
        .filter(|(kind, spec, _)| !matches!(kind, Kind::Sidecar) && !may_ever_restart(spec, policy))
        .filter_map(|(_, spec, s)| {
            s.filter(|s| s.restart_count > 0)
                .map(|s| format!("{} (restartCount {})", spec.name, s.restart_count))
        })
        .collect();
    if !restarted.is_empty() {
        out.push(Finding::new(
            RuleId::RestartUnderNever,
            i.cur,
            format!(
                "restartCount above zero under restartPolicy Never: {} (can also come from a ContainerStatusUnknown exit 137)",
                restarted.join(", ")
            ),
        ));
    }
}

/// The crash-loop back-off before the second and later restarts (B6).
pub const INITIAL_BACKOFF: Seconds = Seconds(10);
/// A run at least this long resets the back-off (B6: 10 minutes without trouble).
pub const BACKOFF_RESET_AFTER: Seconds = Seconds(600);
/// Times are whole seconds: allow one second of rounding.
const BACKOFF_TOLERANCE: i64 = 1;

fn restart_faster_than_backoff(i: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(prev) = i.prev else { return };
    for (kind, spec, cur) in containers(i.cur) {
        let (Some(cur), Some(before)) = (cur, status_in(prev, kind, &spec.name)) else {
            continue;
        };
        // Exactly one restart between the snapshots, and not the first one (the kubelet
        // restarts immediately after the first exit).
        if before.restart_count.checked_add(1) != Some(cur.restart_count)
            || before.restart_count < 1
        {
            continue;
        }
        let Some(Terminated {
            started_at: Some(ran_from),
            finished_at: Some(exited),
            ..
        }) = cur.last_state.terminated()
        else {
            continue;
        };
        let Some(restarted) = cur.state.started_at() else {
            continue;
        };
        if exited.since(*ran_from) >= BACKOFF_RESET_AFTER.0 {
            continue;
        }
        let delay = restarted.since(*exited);
        if delay < INITIAL_BACKOFF.0 - BACKOFF_TOLERANCE {
            out.push(
                Finding::new(
                    RuleId::RestartFasterThanBackoff,
                    i.cur,
                    format!(
                        "{} {} restarted {delay}s after exiting (restart {}), the crash-loop back-off is at least {}",
                        kind.noun(),
                        spec.name,
                        cur.restart_count,
                        INITIAL_BACKOFF
                    ),
                )
                .container(&spec.name)
                .values(format!(">= {}", INITIAL_BACKOFF), format!("{delay}s")),
            );
        }
    }
}

fn stuck_pending(i: &Input<'_>, out: &mut Vec<Finding>) {
    let pod = i.cur;
    // From the entry into Pending, not from creation: Running -> Pending happens when the
    // sandbox is recreated.
    let Some((since, due)) = pending_deadline(pod, i.pending_since, i.settings) else {
        return;
    };
    if i.now < due {
        return;
    }
    let limit = i.settings.stuck_pending_after;
    let age = Seconds(i.now.since(since));
    let why = pod
        .condition(&ConditionType::PodScheduled)
        .filter(|c| c.status != ConditionStatus::True)
        .and_then(|c| {
            let reason = c.reason.as_deref()?;
            Some(match c.message.as_deref() {
                // The scheduler says why it cannot place the pod.
                Some(m) if reason == "Unschedulable" && !m.is_empty() => {
                    format!("PodScheduled {reason}: {m}")
                }
                _ => format!("PodScheduled {reason}"),
            })
        })
        .or_else(|| {
            pod.status
                .init_container_statuses
                .iter()
                .chain(pod.status.container_statuses.iter())
                .find_map(|s| match &s.state {
                    ContainerState::Waiting { reason: Some(r) } => {
                        Some(format!("container {} waiting: {r}", s.name))
                    }
                    _ => None,
                })
        });
    let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
    out.push(
        Finding::new(
            RuleId::StuckPending,
            pod,
            format!("pod has been Pending for {age} since {since} (limit {limit}){why}"),
        )
        .values(
            format!("not Pending after {limit}"),
            format!("Pending for {age}"),
        ),
    );
}

fn stuck_terminating(i: &Input<'_>, out: &mut Vec<Finding>) {
    let pod = i.cur;
    let Some((deadline, due)) = terminating_deadline(pod, i.settings) else {
        return;
    };
    if i.now < due {
        return;
    }
    let limit = i.settings.stuck_terminating_after;
    let late = Seconds(i.now.since(deadline));
    let mut release = match pod.spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        // The kubelet confirms the deletion once the containers are gone; a node that does
        // not answer holds its pods until it returns, the Node object is deleted (PodGC),
        // or the node is tainted out-of-service (PodGC force-deletes) (B5).
        Some(node) => format!(
            "released when node {node} returns, when the Node {node} is deleted, or when it is tainted node.kubernetes.io/out-of-service"
        ),
        None => "never scheduled: PodGC removes unscheduled terminating pods".to_string(),
    };
    if !pod.finalizers.is_empty() {
        let f: Vec<&str> = pod.finalizers.iter().map(|f| &**f).collect();
        release.push_str(&format!("; finalizers still to remove: {}", names(&f)));
    }
    out.push(
        Finding::new(
            RuleId::StuckTerminating,
            pod,
            format!(
                "pod is still present {late} after its deletion deadline {deadline} (limit {limit}); {release}"
            ),
        )
        .values(
            format!("gone within {limit} of {deadline}"),
            format!("present {late} after"),
        ),
    );
}

fn restart_budget_exceeded(i: &Input<'_>, out: &mut Vec<Finding>) {
    let budget = i.settings.restart_budget;
    if i.restarts_in_window > budget.count {
        out.push(
            Finding::new(
                RuleId::RestartBudgetExceeded,
                i.cur,
                format!(
                    "{} restarts within {}, budget is {}",
                    i.restarts_in_window, budget.window, budget.count
                ),
            )
            .values(
                format!("<= {} restarts per {}", budget.count, budget.window),
                format!("{} restarts", i.restarts_in_window),
            ),
        );
    }
}

fn oom_killed(i: &Input<'_>, out: &mut Vec<Finding>) {
    let is_oom = |t: &&Terminated| t.reason.as_deref() == Some("OOMKilled");
    for (kind, spec, cur) in containers(i.cur) {
        let Some(cur) = cur else { continue };
        let before = i.prev.and_then(|p| status_in(p, kind, &spec.name));
        let seen = |t: &Terminated| {
            before.is_some_and(|b| {
                [&b.state, &b.last_state]
                    .iter()
                    .any(|s| s.terminated() == Some(t))
            })
        };
        let new_oom = [&cur.state, &cur.last_state]
            .into_iter()
            .filter_map(ContainerState::terminated)
            .filter(is_oom)
            .find(|t| !seen(t));
        if let Some(t) = new_oom {
            let when = t
                .finished_at
                .map(|f| format!(" at {f}"))
                .unwrap_or_default();
            out.push(
                Finding::new(
                    RuleId::OomKilled,
                    i.cur,
                    format!(
                        "{} {} was OOMKilled (exit {}){when}",
                        kind.noun(),
                        spec.name,
                        t.exit_code
                    ),
                )
                .container(&spec.name),
            );
        }
    }
}
