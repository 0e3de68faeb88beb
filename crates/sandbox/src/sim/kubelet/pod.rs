//! One pod on a simulated kubelet: its containers' state machine (scripts, init order,
//! sidecars, restarts with crash-loop back-off, deletion, kubelet terminations). The
//! status it writes is built and written in `report`.

use jiff::{SignedDuration, Timestamp};

use crate::sim::event_sink::{Involved, Source};
use crate::sim::world::World;

use super::script::Outcome;
use super::spec::{Kind, PodPlan};
use super::status::{Act, Ctr, PodPhase, State, Term, TermReason, Wait, compute_phase};

/// Time from admission to the first container start (sandbox, image).
pub const START_DELAY: SignedDuration = SignedDuration::from_secs(1);
/// Longest graceful stop of a deleted pod's containers.
pub const KILL_DELAY: SignedDuration = SignedDuration::from_secs(1);
/// Crash-loop back-off: first delay, cap, and the running time that resets it.
pub const BACKOFF_INITIAL: u32 = 10;
pub const BACKOFF_MAX: u32 = 300;
pub const BACKOFF_RESET: SignedDuration = SignedDuration::from_secs(600);
/// Exit code of a container stopped with SIGTERM / SIGKILL.
pub const SIGTERM_EXIT: i32 = 143;
pub const SIGKILL_EXIT: i32 = 137;
/// Steps handled at one instant for one pod before yielding (a bound, never reached
/// by valid scripts: back-off stops immediate restart loops).
const MAX_STEPS: usize = 10_000;

/// Why the kubelet stopped a pod for good.
/// The eviction manager's message for a disk-pressure eviction.
pub(super) const DISK_PRESSURE_MESSAGE: &str = "The node was low on resource: ephemeral-storage. ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every app container finished and none restarts.
    Completed,
    /// A regular init container failed and is not restarted.
    InitFailed,
    /// The pod was deleted.
    Deleted,
    Evicted,
    DiskFailure,
    Shutdown,
    /// Found running by a restarted kubelet that lost its containers.
    Lost,
}

impl End {
    /// Phase, status reason and message forced by a kubelet termination.
    pub(super) fn forced(self) -> Option<(PodPhase, Option<&'static str>, &'static str)> {
        match self {
            End::Evicted => Some((
                PodPhase::Failed,
                Some("Evicted"),
                "The node was low on resource: memory. ",
            )),
            // Upstream has no writer for a disk fault other than the eviction manager's
            // disk pressure (nodefs): the same words as any pressure eviction.
            End::DiskFailure => Some((PodPhase::Failed, Some("Evicted"), DISK_PRESSURE_MESSAGE)),
            End::Shutdown => Some((
                PodPhase::Failed,
                Some("Terminated"),
                "Pod was terminated in response to imminent node shutdown.",
            )),
            End::Lost => Some((
                PodPhase::Failed,
                None,
                "The kubelet restarted and could not find the pod's containers.",
            )),
            _ => None,
        }
    }

    /// Whether the kubelet writes DisruptionTarget `TerminationByKubelet`.
    pub(super) fn disruption(self) -> bool {
        matches!(self, End::Evicted | End::DiskFailure | End::Shutdown)
    }
}

/// What a pod step may use: the cluster, "now", and whether the node can talk to the
/// API server (partitioned nodes keep running but write nothing).
pub struct Cx<'a> {
    pub sh: &'a mut World,
    pub now: Timestamp,
    pub talk: bool,
}

#[derive(Debug)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub plan: Box<PodPlan>,
    pub ctrs: Vec<Ctr>,
    pub start: Timestamp,
    pub host_ip: [u8; 4],
    pub pod_ip: [u8; 4],
    /// The kubelet's cached status of its own conditions, (status, lastTransitionTime
    /// in seconds), as upstream's status manager keeps it (B3): first read from the API
    /// when the pod is admitted, then updated with every status the kubelet computes,
    /// whether or not the API server can be reached. A condition's time moves only when
    /// its status changes against this cache, never against the API's copy (which the
    /// node lifecycle controller also writes).
    pub conds: [Option<(bool, i64)>; 4],
    pub gates_ok: bool,
    pub initialized: bool,
    pub init_failed: bool,
    pub end: Option<(End, Timestamp)>,
    pub deleting: bool,
    pub delete_sent: bool,
    /// A faulty write was injected: the kubelet writes nothing more for this pod but
    /// its final delete.
    pub frozen: bool,
    /// The state changed since the cached status was last computed.
    pub changed: bool,
    /// The cached status is not written yet (the node could not talk, or the API may
    /// differ from it): the next write sends the latest cached status only, so states
    /// computed meanwhile are coalesced.
    pub unsent: bool,
    /// The terminal phase written, or found in the API when the node came back (never
    /// moved back).
    pub written_terminal: Option<PodPhase>,
    /// Timer generation and when the live timer fires.
    pub generation: u64,
    pub wake: Option<Timestamp>,
}

impl PodState {
    fn involved(&self, ctr: Option<usize>) -> Involved {
        Involved {
            kind: "Pod",
            api_version: "v1",
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            field_path: ctr.map(|i| self.plan.ctrs[i].field_path()),
        }
    }

    pub fn event(
        &self,
        cx: &mut Cx<'_>,
        ctr: Option<usize>,
        warning: bool,
        reason: &str,
        msg: &str,
    ) {
        if !cx.talk {
            return;
        }
        let about = self.involved(ctr);
        let source = Source {
            component: "kubelet",
            host: Some(&self.node),
        };
        let kind = if warning { "Warning" } else { "Normal" };
        cx.sh
            .events
            .record(&cx.sh.store, cx.now, &about, source, kind, reason, msg);
    }

    fn pod_ref(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }

    /// Starts container `i` (first start or restart).
    fn start_ctr(&mut self, cx: &mut Cx<'_>, i: usize) {
        let script = match &self.plan.ctrs[i].script {
            Ok(s) => s.clone(),
            Err(e) => {
                let msg = format!(
                    "Error: invalid script annotation {}{}: {e}",
                    super::script::ANNOTATION_PREFIX,
                    self.plan.ctrs[i].name
                );
                self.ctrs[i].state = State::Waiting(Wait::ConfigError);
                self.ctrs[i].due = None;
                self.changed = true;
                self.event(cx, Some(i), true, "Failed", &msg);
                return;
            }
        };
        let now = cx.now;
        let c = &mut self.ctrs[i];
        if c.starts > 0 {
            c.restarts += 1;
            if let State::Terminated(t) = &c.state {
                c.last = Some(t.clone());
            }
        }
        let run = script.run(c.starts as usize);
        c.starts += 1;
        c.run = run;
        c.state = State::Running(now);
        c.ready = false;
        let ready_at = run
            .ready_ms
            .filter(|r| run.outcome == Outcome::Forever || *r < run.run_ms)
            .filter(|_| self.plan.ctrs[i].kind != Kind::Init);
        c.due = match (ready_at, run.outcome) {
            (Some(r), _) => Some((at(now, r), Act::Ready)),
            (None, Outcome::Forever) => None,
            (None, _) => Some((at(now, run.run_ms), Act::Exit)),
        };
        self.changed = true;
        let (name, image) = (&self.plan.ctrs[i].name, &self.plan.ctrs[i].image);
        let pulled = format!("Container image \"{image}\" already present on machine");
        let created = format!("Created container: {name}");
        let started = format!("Started container {name}");
        self.event(cx, Some(i), false, "Pulled", &pulled);
        self.event(cx, Some(i), false, "Created", &created);
        self.event(cx, Some(i), false, "Started", &started);
    }

    fn ready_ctr(&mut self, i: usize) {
        let c = &mut self.ctrs[i];
        let State::Running(since) = c.state else {
            return;
        };
        c.ready = true;
        c.due = match c.run.outcome {
            Outcome::Forever => None,
            _ => Some((at(since, c.run.run_ms), Act::Exit)),
        };
        self.changed = true;
    }

    fn exit_ctr(&mut self, cx: &mut Cx<'_>, i: usize) {
        let c = &mut self.ctrs[i];
        let State::Running(since) = c.state else {
            return;
        };
        let (exit, reason) = match c.run.outcome {
            Outcome::Exit(0) => (0, TermReason::Completed),
            Outcome::Exit(n) => (n, TermReason::Error),
            Outcome::Oom => (SIGKILL_EXIT, TermReason::OomKilled),
            Outcome::Forever => return,
        };
        c.state = State::Terminated(Term {
            exit,
            reason,
            started: Some(since),
            finished: cx.now,
            instance: c.starts,
        });
        c.ready = exit == 0 && self.plan.ctrs[i].kind == Kind::Init;
        c.due = None;
        self.changed = true;
        let name = self.plan.ctrs[i].name.clone();
        match reason {
            TermReason::Completed => {
                let msg = format!("Container {name} completed (exit code 0)");
                self.event(cx, Some(i), false, "Completed", &msg);
            }
            TermReason::OomKilled => {
                let msg = format!(
                    "Memory cgroup out of memory: container {name} was OOM-killed (exit code {SIGKILL_EXIT})"
                );
                self.event(cx, Some(i), true, "OOMKilling", &msg);
            }
            _ => {
                let msg = format!("Container {name} failed (exit code {exit})");
                self.event(cx, Some(i), true, "Error", &msg);
            }
        }
        if self.deleting || self.end.is_some() {
            return;
        }
        let spec = &self.plan.ctrs[i];
        if spec.should_restart(self.plan.policy, exit) {
            self.restart_or_back_off(cx, i);
        } else if spec.kind == Kind::Init && exit != 0 {
            self.init_failed = true;
        }
    }

    /// Upstream `doBackOff`: restart at once unless the container is in back-off
    /// (then wait it out in `CrashLoopBackOff`).
    fn restart_or_back_off(&mut self, cx: &mut Cx<'_>, i: usize) {
        let now = cx.now;
        let c = &mut self.ctrs[i];
        match c.backoff {
            Some((secs, updated)) if now.duration_since(updated) <= BACKOFF_RESET => {
                if let State::Terminated(t) = &c.state {
                    c.last = Some(t.clone());
                }
                c.state = State::Waiting(Wait::BackOff(secs));
                c.due = Some((at(now, u64::from(secs) * 1000), Act::Restart));
                self.changed = true;
                let msg = format!(
                    "Back-off restarting failed container {} in pod {}",
                    self.plan.ctrs[i].name,
                    self.pod_ref()
                );
                self.event(cx, Some(i), true, "BackOff", &msg);
            }
            _ => {
                c.backoff = Some((BACKOFF_INITIAL, now));
                self.start_ctr(cx, i);
            }
        }
    }

    fn restart_ctr(&mut self, cx: &mut Cx<'_>, i: usize) {
        let c = &mut self.ctrs[i];
        let secs = c
            .backoff
            .map_or(BACKOFF_INITIAL, |(s, _)| (s * 2).min(BACKOFF_MAX));
        c.backoff = Some((secs, cx.now));
        self.start_ctr(cx, i);
    }

    /// Stops container `i` at once with `exit` if it runs; a waiting container ends in
    /// its last termination, or as `ContainerStatusUnknown` if it never ran.
    fn stop_ctr(&mut self, cx: &mut Cx<'_>, i: usize, exit: i32, announce: bool) {
        let now = cx.now;
        let c = &mut self.ctrs[i];
        c.due = None;
        c.ready = c.ready && matches!(c.state, State::Terminated(_));
        match c.state.clone() {
            State::Running(since) => {
                c.state = State::Terminated(Term {
                    exit,
                    reason: if exit == 0 {
                        TermReason::Completed
                    } else {
                        TermReason::Error
                    },
                    started: Some(since),
                    finished: now,
                    instance: c.starts,
                });
                c.ready = false;
                if announce {
                    let msg = format!("Stopping container {}", self.plan.ctrs[i].name);
                    self.event(cx, Some(i), false, "Killing", &msg);
                }
            }
            State::Waiting(_) => {
                c.state = State::Terminated(match &c.last {
                    Some(t) => t.clone(),
                    None => Term {
                        exit: SIGKILL_EXIT,
                        reason: TermReason::Unknown,
                        started: None,
                        finished: now,
                        instance: 0,
                    },
                });
            }
            State::Terminated(_) => {}
        }
        self.changed = true;
    }

    /// Ends the pod for good: every container stopped (`exit` for running ones).
    pub fn finish(&mut self, cx: &mut Cx<'_>, end: End, exit: i32) {
        if self.end.is_some() {
            return;
        }
        for i in 0..self.ctrs.len() {
            self.stop_ctr(cx, i, exit, true);
        }
        self.end = Some((end, cx.now));
        self.changed = true;
    }

    /// A deletion seen: graceful stop of running containers, back-offs cancelled.
    pub fn begin_delete(&mut self, cx: &mut Cx<'_>) {
        if self.deleting {
            return;
        }
        self.deleting = true;
        let grace = SignedDuration::from_secs(self.plan.grace_seconds).min(KILL_DELAY);
        let kill_at = cx.now.saturating_add(grace).unwrap_or(cx.now);
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].running() {
                let msg = format!("Stopping container {}", self.plan.ctrs[i].name);
                self.event(cx, Some(i), false, "Killing", &msg);
                self.ctrs[i].due = Some((kill_at, Act::Kill));
            } else {
                self.ctrs[i].due = None;
            }
        }
    }

    /// Starts the next init container, or the app containers once init is done.
    fn advance_init(&mut self, at: Timestamp) {
        if self.deleting || self.end.is_some() || self.init_failed {
            return;
        }
        let can_start = |c: &Ctr| {
            c.starts == 0 && c.due.is_none() && c.state != State::Waiting(Wait::ConfigError)
        };
        if !self.initialized {
            for i in 0..self.plan.first_app {
                let c = &mut self.ctrs[i];
                let satisfied = match self.plan.ctrs[i].kind {
                    Kind::Sidecar => c.starts > 0,
                    _ => matches!(&c.state, State::Terminated(t) if t.exit == 0),
                };
                if satisfied {
                    continue;
                }
                if can_start(c) {
                    c.due = Some((at, Act::Start));
                }
                return;
            }
            self.initialized = true;
            self.changed = true;
        }
        for i in self.plan.apps() {
            let c = &mut self.ctrs[i];
            if can_start(c) {
                c.due = Some((at, Act::Start));
            }
        }
    }

    fn check_done(&mut self, cx: &mut Cx<'_>) {
        if self.end.is_some() {
            return;
        }
        if self.deleting {
            if !self.ctrs.iter().any(|c| c.running() || c.due.is_some()) {
                self.finish(cx, End::Deleted, SIGTERM_EXIT);
            }
            return;
        }
        if self.init_failed {
            self.finish(cx, End::InitFailed, SIGTERM_EXIT);
            return;
        }
        let apps_done = self.plan.apps().all(|i| {
            let c = &self.ctrs[i];
            matches!(c.state, State::Terminated(_)) && c.due.is_none()
        });
        if self.initialized && apps_done {
            self.finish(cx, End::Completed, SIGTERM_EXIT);
        }
    }

    /// Handles everything due by now, then checks whether the pod is done.
    pub fn step(&mut self, cx: &mut Cx<'_>) {
        if self.frozen {
            return;
        }
        for _ in 0..MAX_STEPS {
            self.advance_init(cx.now);
            let next = self
                .ctrs
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.due.map(|(t, a)| (t, i, a)))
                .filter(|(t, _, _)| *t <= cx.now)
                .min_by_key(|(t, i, _)| (*t, *i));
            let Some((_, i, act)) = next else { break };
            self.ctrs[i].due = None;
            match act {
                Act::Start => self.start_ctr(cx, i),
                Act::Ready => self.ready_ctr(i),
                Act::Exit => self.exit_ctr(cx, i),
                Act::Restart => self.restart_ctr(cx, i),
                Act::Kill => self.stop_ctr(cx, i, SIGTERM_EXIT, false),
            }
        }
        self.check_done(cx);
    }

    /// When the next container step is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        if self.frozen {
            return None;
        }
        self.ctrs.iter().filter_map(|c| c.due.map(|(t, _)| t)).min()
    }

    pub fn phase(&self) -> PodPhase {
        let computed = match self.end {
            Some((end, _)) => match end.forced() {
                Some((p, _, _)) if self.written_terminal != Some(PodPhase::Succeeded) => p,
                _ => compute_phase(&self.plan, &self.ctrs, self.initialized, true),
            },
            None => compute_phase(&self.plan, &self.ctrs, self.initialized, self.deleting),
        };
        match self.written_terminal {
            Some(p) => p,
            None => computed,
        }
    }

    /// Turns the API status of a pod found running by a kubelet that did not start it
    /// into this pod's containers: restart counts and terminations kept, everything
    /// else lost (B3 `TerminatePod`).
    pub fn adopt_lost(&mut self, pod: &k8s_openapi::api::core::v1::Pod, now: Timestamp) {
        let status = pod.status.as_ref();
        let lists = [
            status.and_then(|s| s.init_container_statuses.as_ref()),
            status.and_then(|s| s.container_statuses.as_ref()),
        ];
        for (i, spec) in self.plan.ctrs.iter().enumerate() {
            let list = if i < self.plan.first_app {
                lists[0]
            } else {
                lists[1]
            };
            let Some(api) = list.and_then(|l| l.iter().find(|s| s.name == spec.name)) else {
                continue;
            };
            let c = &mut self.ctrs[i];
            c.restarts = u32::try_from(api.restart_count).unwrap_or(0);
            c.starts = c.restarts + 1;
            let term = api.state.as_ref().and_then(|s| s.terminated.as_ref());
            if let Some(t) = term {
                c.state = State::Terminated(Term {
                    exit: t.exit_code,
                    reason: TermReason::parse(t.reason.as_deref().unwrap_or_default()),
                    started: t.started_at.as_ref().map(|s| s.0),
                    finished: t.finished_at.as_ref().map_or(now, |s| s.0),
                    instance: c.starts,
                });
                c.ready = api.ready;
            }
        }
        self.initialized = status.and_then(|s| s.conditions.as_ref()).is_some_and(|l| {
            l.iter()
                .any(|c| c.type_ == "Initialized" && c.status == "True")
        });
    }
}

/// Whether every readiness gate of `gates` has a True condition in `pod`.
pub fn gates_ok(gates: &[String], conditions: &[(String, String)]) -> bool {
    gates
        .iter()
        .all(|g| conditions.iter().any(|(t, s)| t == g && s == "True"))
}

fn at(t: Timestamp, ms: u64) -> Timestamp {
    let d = SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX));
    t.saturating_add(d).unwrap_or(t)
}
