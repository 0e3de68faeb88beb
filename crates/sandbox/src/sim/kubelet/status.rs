//! Container states as the simulated runtime keeps them, the pod phase the kubelet
//! computes from them (SEMANTICS.md B1, written here independently of the auditor's
//! model), the kubelet-owned conditions (B4) and their JSON form.

use jiff::Timestamp;
use serde_json::Value;

use crate::api::object::format_time;

use super::script::Run;
use super::spec::{Kind, PodPlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermReason {
    Completed,
    Error,
    OomKilled,
    /// `ContainerStatusUnknown`: the container never ran (or was lost) when the pod
    /// was terminated.
    Unknown,
}

impl TermReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TermReason::Completed => "Completed",
            TermReason::Error => "Error",
            TermReason::OomKilled => "OOMKilled",
            TermReason::Unknown => "ContainerStatusUnknown",
        }
    }

    pub fn parse(s: &str) -> TermReason {
        match s {
            "Completed" => TermReason::Completed,
            "OOMKilled" => TermReason::OomKilled,
            "ContainerStatusUnknown" => TermReason::Unknown,
            _ => TermReason::Error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub exit: i32,
    pub reason: TermReason,
    pub started: Option<Timestamp>,
    pub finished: Timestamp,
    /// The container instance (for `containerID`); 0: none ever ran.
    pub instance: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    ContainerCreating,
    PodInitializing,
    /// Crash-loop back-off of this many seconds.
    BackOff(u32),
    /// The script annotation cannot be parsed.
    ConfigError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting(Wait),
    Running(Timestamp),
    Terminated(Term),
}

/// What a container waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Start,
    Ready,
    Exit,
    /// Back-off over: start again.
    Restart,
    /// Graceful stop of a deleted pod's container is over.
    Kill,
}

/// One container of a pod on the simulated runtime.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub state: State,
    pub last: Option<Term>,
    pub restarts: u32,
    pub ready: bool,
    /// Starts so far (the next run of the script is `runs[starts]`).
    pub starts: u32,
    pub run: Run,
    pub due: Option<(Timestamp, Act)>,
    /// Crash-loop back-off: current delay in seconds and when it was last updated.
    pub backoff: Option<(u32, Timestamp)>,
}

impl Ctr {
    pub fn new(wait: Wait) -> Self {
        Ctr {
            state: State::Waiting(wait),
            last: None,
            restarts: 0,
            ready: false,
            starts: 0,
            run: Run::DEFAULT,
            due: None,
            backoff: None,
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.state, State::Running(_))
    }

    /// Terminated, or waiting after a termination: its last exit code.
    pub fn stopped_exit(&self) -> Option<i32> {
        match (&self.state, &self.last) {
            (State::Terminated(t), _) => Some(t.exit),
            (State::Waiting(_), Some(t)) => Some(t.exit),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }

    pub fn terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// B1: the phase from the container states. `terminal`: the pod is being deleted or
/// was terminated by the kubelet.
pub fn compute_phase(plan: &PodPlan, ctrs: &[Ctr], initialized: bool, terminal: bool) -> PodPhase {
    let mut init_failed = false;
    let mut initializing = false;
    for (spec, c) in plan.ctrs.iter().zip(ctrs).take(plan.first_app) {
        match spec.kind {
            Kind::Init => match (&c.state, &c.last) {
                (State::Terminated(t), _) if t.exit == 0 => {}
                (State::Terminated(t), _) | (State::Waiting(_), Some(t)) if t.exit != 0 => {
                    if terminal || !spec.should_restart(plan.policy, t.exit) {
                        init_failed = true;
                    }
                }
                (State::Waiting(_), Some(_)) => {}
                _ => initializing = true,
            },
            Kind::Sidecar => {
                if matches!((&c.state, &c.last), (State::Waiting(_), None)) && !initialized {
                    initializing = true;
                }
            }
            Kind::App => {}
        }
    }
    if init_failed {
        return PodPhase::Failed;
    }
    let (mut running, mut stopped, mut succeeded, mut waiting, mut will_restart) =
        (0, 0, 0, 0, false);
    for i in plan.apps() {
        let (spec, c) = (&plan.ctrs[i], &ctrs[i]);
        if c.running() {
            running += 1;
        } else if let Some(exit) = c.stopped_exit() {
            stopped += 1;
            if exit == 0 {
                succeeded += 1;
            }
            if spec.should_restart(plan.policy, exit) {
                will_restart = true;
            }
        } else {
            waiting += 1;
        }
    }
    if initializing || waiting > 0 {
        return PodPhase::Pending;
    }
    if running > 0 {
        return PodPhase::Running;
    }
    if stopped > 0 {
        if !terminal && will_restart {
            return PodPhase::Running;
        }
        return if succeeded == stopped {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        };
    }
    PodPhase::Pending
}

/// The kubelet-owned conditions, in the order they are written.
pub const CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// A condition's desired status, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub status: bool,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
}

impl Cond {
    fn yes() -> Self {
        Cond {
            status: true,
            reason: None,
            message: None,
        }
    }
    fn no(reason: &'static str, message: Option<String>) -> Self {
        Cond {
            status: false,
            reason: Some(reason),
            message,
        }
    }
}

/// B4 (and B3's terminal rule): the four conditions for `phase`.
pub fn conditions(
    plan: &PodPlan,
    ctrs: &[Ctr],
    initialized: bool,
    gates_ok: bool,
    phase: PodPhase,
) -> [Cond; 4] {
    let names = |pick: &dyn Fn(usize) -> bool| -> String {
        let list: Vec<&str> = (0..plan.ctrs.len())
            .filter(|&i| pick(i))
            .map(|i| plan.ctrs[i].name.as_str())
            .collect();
        format!("[{}]", list.join(" "))
    };
    let started_app = plan.apps().any(|i| ctrs[i].starts > 0);
    let init = if initialized || started_app || phase == PodPhase::Succeeded {
        Cond::yes()
    } else {
        let incomplete = names(&|i| {
            i < plan.first_app
                && match plan.ctrs[i].kind {
                    Kind::Sidecar => ctrs[i].starts == 0,
                    _ => !matches!(&ctrs[i].state, State::Terminated(t) if t.exit == 0),
                }
        });
        Cond::no(
            "ContainersNotInitialized",
            Some(format!("containers with incomplete status: {incomplete}")),
        )
    };
    let counted = |i: usize| i >= plan.first_app || plan.ctrs[i].kind == Kind::Sidecar;
    let containers_ready = match phase {
        PodPhase::Succeeded => Cond::no("PodCompleted", None),
        PodPhase::Failed => Cond::no("PodFailed", None),
        _ => {
            if (0..ctrs.len()).all(|i| !counted(i) || ctrs[i].ready) {
                Cond::yes()
            } else {
                let unready = names(&|i| counted(i) && !ctrs[i].ready);
                Cond::no(
                    "ContainersNotReady",
                    Some(format!("containers with unready status: {unready}")),
                )
            }
        }
    };
    let ready = if !containers_ready.status {
        containers_ready.clone()
    } else if gates_ok {
        Cond::yes()
    } else {
        Cond::no(
            "ReadinessGatesNotReady",
            Some(format!(
                "the status of pod readiness gates is not \"True\": [{}]",
                plan.readiness_gates.join(" ")
            )),
        )
    };
    [Cond::yes(), init, containers_ready, ready]
}

/// `containerd://…` of a container instance.
pub fn container_id(pod_uid: &str, ctr: usize, instance: u32) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pod_uid.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let a = crate::api::object::splitmix(h ^ (ctr as u64) << 32 ^ u64::from(instance));
    let b = crate::api::object::splitmix(a);
    format!("containerd://{a:016x}{b:016x}")
}

fn image_id(image: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in image.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let repo = image.split([':', '@']).next().unwrap_or(image);
    let a = crate::api::object::splitmix(h);
    let b = crate::api::object::splitmix(a);
    format!("{repo}@sha256:{a:016x}{b:016x}{a:016x}{b:016x}")
}

/// A JSON object of `members`, moved in (`json!` copies every `Value` it is given
/// through the serializer).
pub(crate) fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in members {
        map.insert(k.to_string(), v);
    }
    Value::Object(map)
}

fn term_json(t: &Term, pod_uid: &str, ctr: usize) -> Value {
    let mut v = object([
        ("exitCode", Value::from(t.exit)),
        ("reason", Value::from(t.reason.as_str())),
        ("finishedAt", Value::from(format_time(t.finished))),
    ]);
    if let Some(m) = v.as_object_mut() {
        if let Some(s) = t.started {
            m.insert("startedAt".into(), Value::from(format_time(s)));
        }
        if t.instance > 0 {
            m.insert(
                "containerID".into(),
                Value::from(container_id(pod_uid, ctr, t.instance)),
            );
        }
        if t.reason == TermReason::Unknown {
            m.insert(
                "message".into(),
                Value::from("The container could not be located when the pod was terminated"),
            );
        }
    }
    v
}

/// One `containerStatuses` entry.
pub fn container_status(
    plan: &PodPlan,
    ctrs: &[Ctr],
    i: usize,
    pod: (&str, &str, &str),
    script_error: Option<&str>,
) -> Value {
    let (spec, c) = (&plan.ctrs[i], &ctrs[i]);
    let (name, namespace, uid) = pod;
    let state = match &c.state {
        State::Waiting(w) => {
            let (reason, message) = match w {
                Wait::ContainerCreating => ("ContainerCreating", None),
                Wait::PodInitializing => ("PodInitializing", None),
                Wait::BackOff(secs) => (
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {secs}s restarting failed container={} pod={name}_{namespace}({uid})",
                        spec.name
                    )),
                ),
                Wait::ConfigError => (
                    "CreateContainerConfigError",
                    Some(format!(
                        "invalid script annotation {}{}: {}",
                        super::script::ANNOTATION_PREFIX,
                        spec.name,
                        script_error.unwrap_or("unparsable")
                    )),
                ),
            };
            let w = match message {
                Some(m) => object([("reason", reason.into()), ("message", m.into())]),
                None => object([("reason", reason.into())]),
            };
            object([("waiting", w)])
        }
        State::Running(since) => object([(
            "running",
            object([("startedAt", format_time(*since).into())]),
        )]),
        State::Terminated(t) => object([("terminated", term_json(t, uid, i))]),
    };
    let last = match &c.last {
        Some(t) => object([("terminated", term_json(t, uid, i))]),
        None => object([]),
    };
    let mut v = object([
        ("name", spec.name.as_str().into()),
        ("image", spec.image.as_str().into()),
        ("imageID", image_id(&spec.image).into()),
        ("ready", c.ready.into()),
        ("restartCount", c.restarts.into()),
        ("started", c.running().into()),
        ("state", state),
        ("lastState", last),
    ]);
    if c.starts > 0
        && let Some(m) = v.as_object_mut()
    {
        m.insert("containerID".into(), container_id(uid, i, c.starts).into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::kubelet::script::Script;
    use crate::sim::kubelet::spec::{CtrSpec, Policy};

    fn plan(policy: Policy, kinds: &[Kind]) -> PodPlan {
        let ctrs: Vec<CtrSpec> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| CtrSpec {
                name: format!("c{i}"),
                image: "img".into(),
                kind: *k,
                policy: (*k == Kind::Sidecar).then_some(Policy::Always),
                rules: vec![],
                script: Ok(Script::default()),
            })
            .collect();
        let first_app = kinds.iter().take_while(|k| **k != Kind::App).count();
        PodPlan {
            ctrs,
            first_app,
            policy,
            readiness_gates: vec![],
            grace_seconds: 30,
        }
    }

    fn run() -> Ctr {
        let mut c = Ctr::new(Wait::ContainerCreating);
        c.state = State::Running(Timestamp::UNIX_EPOCH);
        c.starts = 1;
        c
    }

    fn exited(code: i32) -> Ctr {
        let mut c = Ctr::new(Wait::ContainerCreating);
        c.state = State::Terminated(Term {
            exit: code,
            reason: TermReason::Error,
            started: None,
            finished: Timestamp::UNIX_EPOCH,
            instance: 1,
        });
        c.starts = 1;
        c
    }

    fn backoff(code: i32) -> Ctr {
        let mut c = exited(code);
        if let State::Terminated(t) = c.state.clone() {
            c.last = Some(t);
        }
        c.state = State::Waiting(Wait::BackOff(10));
        c
    }

    #[test]
    fn phase_table() {
        use Kind::*;
        let cases: Vec<(&str, PodPlan, Vec<Ctr>, bool, PodPhase)> = vec![
            (
                "nothing started",
                plan(Policy::Always, &[App]),
                vec![Ctr::new(Wait::ContainerCreating)],
                false,
                PodPhase::Pending,
            ),
            (
                "one running",
                plan(Policy::Never, &[App]),
                vec![run()],
                false,
                PodPhase::Running,
            ),
            (
                "Always, exit 0 in back-off",
                plan(Policy::Always, &[App]),
                vec![backoff(0)],
                false,
                PodPhase::Running,
            ),
            (
                "OnFailure, exit 0",
                plan(Policy::OnFailure, &[App]),
                vec![exited(0)],
                false,
                PodPhase::Succeeded,
            ),
            (
                "Never, exit 1",
                plan(Policy::Never, &[App]),
                vec![exited(1)],
                false,
                PodPhase::Failed,
            ),
            (
                "Never, one of two failed",
                plan(Policy::Never, &[App, App]),
                vec![exited(1), run()],
                false,
                PodPhase::Running,
            ),
            (
                "OnFailure, failed in back-off",
                plan(Policy::OnFailure, &[App]),
                vec![backoff(1)],
                false,
                PodPhase::Running,
            ),
            (
                "deleted while in back-off",
                plan(Policy::Always, &[App]),
                vec![exited(0)],
                true,
                PodPhase::Succeeded,
            ),
            (
                "init failed under Never",
                plan(Policy::Never, &[Init, App]),
                vec![exited(1), Ctr::new(Wait::PodInitializing)],
                false,
                PodPhase::Failed,
            ),
            (
                "init in back-off under Always",
                plan(Policy::Always, &[Init, App]),
                vec![backoff(1), Ctr::new(Wait::PodInitializing)],
                false,
                PodPhase::Pending,
            ),
            (
                "sidecar killed after app completed",
                plan(Policy::Never, &[Sidecar, App]),
                vec![exited(143), exited(0)],
                true,
                PodPhase::Succeeded,
            ),
        ];
        for (case, plan, ctrs, terminal, want) in cases {
            let initialized =
                plan.first_app == 0 || ctrs[0].starts > 0 && plan.ctrs[0].kind == Sidecar;
            assert_eq!(
                compute_phase(&plan, &ctrs, initialized, terminal),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn terminal_phases_make_readiness_false() {
        let p = plan(Policy::Never, &[Kind::App]);
        let mut c = run();
        c.ready = true;
        let running = conditions(&p, std::slice::from_ref(&c), true, true, PodPhase::Running);
        assert!(running.iter().all(|c| c.status));
        let done = conditions(&p, &[c], true, true, PodPhase::Failed);
        assert!(!done[2].status && !done[3].status);
        assert_eq!(done[3].reason, Some("PodFailed"));
        let gated = conditions(&p, &[run()], true, false, PodPhase::Running);
        assert_eq!(gated[3].reason, Some("ContainersNotReady"));
    }
}
