//! The compact pod view: only what the rules read, deserialized straight from pod JSON.
//!
//! Going through the full `k8s_openapi` Pod costs several times the parse time and tens of
//! times the memory (managedFields, env, probes, volumes ...). Everything not read here is
//! skipped by the deserializer without being built. Pods without a controller keep their
//! full `spec` and their annotations, because orphan recreation needs them; for owned pods
//! the full spec is never built and the annotations are dropped once read.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::time::{self, Timestamp};
use podwarden_base::selector::Labels;

/// Strings in the view are boxed: one word smaller than `String`, and never grown.
pub type Str = Box<str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionType {
    PodScheduled,
    Initialized,
    ContainersReady,
    Ready,
    DisruptionTarget,
    PodReadyToStartContainers,
    Other(Str),
}

impl ConditionType {
    pub fn as_str(&self) -> &str {
        match self {
            ConditionType::PodScheduled => "PodScheduled",
            ConditionType::Initialized => "Initialized",
            ConditionType::ContainersReady => "ContainersReady",
            ConditionType::Ready => "Ready",
            ConditionType::DisruptionTarget => "DisruptionTarget",
            ConditionType::PodReadyToStartContainers => "PodReadyToStartContainers",
            ConditionType::Other(s) => s,
        }
    }

    /// Conditions the kubelet writes (B4). Not the only writer: the node lifecycle
    /// controller sets Ready to False with its own `lastTransitionTime` (B5).
    pub fn kubelet_owned(&self) -> bool {
        matches!(
            self,
            ConditionType::Initialized
                | ConditionType::ContainersReady
                | ConditionType::Ready
                | ConditionType::PodReadyToStartContainers
        )
    }
}

impl<'de> Deserialize<'de> for ConditionType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        with_str(d, "a condition type", |s| match s {
            "PodScheduled" => ConditionType::PodScheduled,
            "Initialized" => ConditionType::Initialized,
            "ContainersReady" => ConditionType::ContainersReady,
            "Ready" => ConditionType::Ready,
            "DisruptionTarget" => ConditionType::DisruptionTarget,
            "PodReadyToStartContainers" => ConditionType::PodReadyToStartContainers,
            other => ConditionType::Other(other.into()),
        })
    }
}

/// Read a string and map it without allocating when the input is not escaped.
pub fn with_str<'de, D, T>(
    d: D,
    what: &'static str,
    f: impl FnOnce(&str) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<F>(F, &'static str);
    impl<'de, T, F: FnOnce(&str) -> T> Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            Ok((self.0)(s))
        }
    }
    d.deserialize_str(V(f, what))
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: ConditionStatus,
    #[serde(default, deserialize_with = "time::deserialize_opt")]
    pub last_transition_time: Option<Timestamp>,
    #[serde(default)]
    pub reason: Option<Str>,
    #[serde(default)]
    pub message: Option<Str>,
}

/// Container-level restart policy (B2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ContainerRestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ExitCodeOperator {
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExitCodes {
    pub operator: ExitCodeOperator,
    #[serde(default, deserialize_with = "nullable_boxed")]
    pub values: Box<[i32]>,
}

impl ExitCodes {
    pub fn matches(&self, code: i32) -> bool {
        let listed = self.values.contains(&code);
        match self.operator {
            ExitCodeOperator::In => listed,
            ExitCodeOperator::NotIn => !listed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartRule {
    /// `Restart` is the only action upstream defines; others fall through to the policy.
    pub action: Str,
    #[serde(default)]
    pub exit_codes: Option<ExitCodes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    pub name: Str,
    #[serde(default)]
    pub restart_policy: Option<ContainerRestartPolicy>,
    #[serde(default, deserialize_with = "nullable_boxed")]
    pub restart_policy_rules: Box<[RestartRule]>,
}

impl ContainerSpec {
    /// An init container with `restartPolicy: Always` is a sidecar.
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy == Some(ContainerRestartPolicy::Always)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: Option<Str>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ContainerState {
    /// No state at all (`{}` or absent).
    #[default]
    None,
    Waiting {
        reason: Option<Str>,
    },
    Running {
        started_at: Option<Timestamp>,
    },
    Terminated(Terminated),
}

impl ContainerState {
    pub fn terminated(&self) -> Option<&Terminated> {
        match self {
            ContainerState::Terminated(t) => Some(t),
            _ => None,
        }
    }
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
    /// When the current run began, whether it is still running or already over.
    pub fn started_at(&self) -> Option<Timestamp> {
        match self {
            ContainerState::Running { started_at } => *started_at,
            ContainerState::Terminated(t) => t.started_at,
            _ => None,
        }
    }
    /// A short description for messages: `running`, `waiting (CrashLoopBackOff)`,
    /// `terminated (exit 1)`.
    pub fn describe(&self) -> String {
        match self {
            ContainerState::None => "no state".into(),
            ContainerState::Waiting { reason: Some(r) } => format!("waiting ({r})"),
            ContainerState::Waiting { reason: None } => "waiting".into(),
            ContainerState::Running { .. } => "running".into(),
            ContainerState::Terminated(t) => match &t.reason {
                Some(r) if &**r != "Completed" && &**r != "Error" => {
                    format!("terminated (exit {}, {r})", t.exit_code)
                }
                _ => format!("terminated (exit {})", t.exit_code),
            },
        }
    }
}

impl<'de> Deserialize<'de> for ContainerState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Waiting {
            #[serde(default)]
            reason: Option<Str>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Running {
            #[serde(default, deserialize_with = "time::deserialize_opt")]
            started_at: Option<Timestamp>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Term {
            #[serde(default)]
            exit_code: i32,
            #[serde(default)]
            reason: Option<Str>,
            #[serde(default, deserialize_with = "time::deserialize_opt")]
            started_at: Option<Timestamp>,
            #[serde(default, deserialize_with = "time::deserialize_opt")]
            finished_at: Option<Timestamp>,
        }
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            waiting: Option<Waiting>,
            #[serde(default)]
            running: Option<Running>,
            #[serde(default)]
            terminated: Option<Term>,
        }
        let raw = Option::<Raw>::deserialize(d)?;
        let Some(raw) = raw else {
            return Ok(ContainerState::None);
        };
        // The kubelet reads running first, then terminated, then waiting.
        Ok(match (raw.running, raw.terminated, raw.waiting) {
            (Some(r), _, _) => ContainerState::Running {
                started_at: r.started_at,
            },
            (None, Some(t), _) => ContainerState::Terminated(Terminated {
                exit_code: t.exit_code,
                reason: t.reason,
                started_at: t.started_at,
                finished_at: t.finished_at,
            }),
            (None, None, Some(w)) => ContainerState::Waiting { reason: w.reason },
            (None, None, None) => ContainerState::None,
        })
    }
}

/// A container instance, as its `containerID` (`containerd://<64 hex digits>`) hashed
/// with 64-bit FNV-1a: each container status keeps 8 bytes instead of the id (a 16-byte
/// box and some 77 bytes of heap). The rules only ask whether two snapshots show the same
/// instance; two different ids hash equal with probability 2^-64. 0 stands for an id that
/// is absent, null or empty (no container created yet, or a trimmed dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContainerId(u64);

impl ContainerId {
    /// No id.
    pub const NONE: ContainerId = ContainerId(0);

    pub fn of(id: &str) -> Self {
        if id.is_empty() {
            return ContainerId::NONE;
        }
        // A non-empty id whose hash happens to be 0 must not read as no id.
        ContainerId(fnv1a(id.as_bytes()).max(1))
    }

    pub fn is_known(self) -> bool {
        self != ContainerId::NONE
    }

    /// Both snapshots name a container instance, and the same one.
    pub fn same_instance(self, other: ContainerId) -> bool {
        self.is_known() && self == other
    }
}

impl<'de> Deserialize<'de> for ContainerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ContainerId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a container id")
            }
            fn visit_unit<E>(self) -> Result<ContainerId, E> {
                Ok(ContainerId::NONE)
            }
            fn visit_none<E>(self) -> Result<ContainerId, E> {
                Ok(ContainerId::NONE)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ContainerId, D::Error> {
                with_str(d, "a container id", ContainerId::of)
            }
        }
        d.deserialize_option(V)
    }
}

/// 64-bit FNV-1a: stable across releases and platforms.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: Str,
    /// The container instance the status is about; kept with the view, so the tracker's
    /// previous snapshot has it when the next one is compared.
    #[serde(default, rename = "containerID")]
    pub container_id: ContainerId,
    #[serde(default)]
    pub state: ContainerState,
    #[serde(default)]
    pub last_state: ContainerState,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub started: Option<bool>,
    #[serde(default)]
    pub restart_count: i32,
}

impl ContainerStatus {
    /// Started per the kubelet's `HasAnyActiveRegularContainerStarted` reading of the API:
    /// running now, or terminated after having started.
    pub fn has_started(&self) -> bool {
        match &self.state {
            ContainerState::Running { .. } => true,
            ContainerState::Terminated(t) => t.started_at.is_some(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusView {
    #[serde(default)]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub reason: Option<Str>,
    #[serde(default, deserialize_with = "nullable_boxed")]
    pub conditions: Box<[Condition]>,
    #[serde(default, deserialize_with = "nullable_boxed")]
    pub container_statuses: Box<[ContainerStatus]>,
    #[serde(default, deserialize_with = "nullable_boxed")]
    pub init_container_statuses: Box<[ContainerStatus]>,
    #[serde(default, deserialize_with = "time::deserialize_opt")]
    pub start_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView {
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub node_name: Option<Str>,
    #[serde(default, deserialize_with = "nullable_boxed")]
    pub containers: Box<[ContainerSpec]>,
    #[serde(default, deserialize_with = "nullable_boxed")]
    pub init_containers: Box<[ContainerSpec]>,
    #[serde(default, deserialize_with = "readiness_gates")]
    pub readiness_gates: Box<[Str]>,
}

/// Labels as a sorted list: a few pairs take far less memory than a map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelList(pub Box<[(Str, Str)]>);

impl Labels for LabelList {
    fn label(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }
}

impl<'de> Deserialize<'de> for LabelList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LabelList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of label keys to values")
            }
            fn visit_unit<E>(self) -> Result<LabelList, E> {
                Ok(LabelList::default())
            }
            fn visit_none<E>(self) -> Result<LabelList, E> {
                Ok(LabelList::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<LabelList, D::Error> {
                d.deserialize_map(self)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelList, A::Error> {
                let mut pairs: Vec<(Str, Str)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<Str, Str>()? {
                    pairs.push((k, v));
                }
                pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                pairs.dedup_by(|a, b| a.0 == b.0);
                Ok(LabelList(pairs.into_boxed_slice()))
            }
        }
        d.deserialize_option(V)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataView {
    #[serde(default)]
    name: Option<Str>,
    #[serde(default)]
    namespace: Option<Str>,
    #[serde(default)]
    uid: Option<Str>,
    #[serde(default)]
    resource_version: Option<Str>,
    #[serde(default)]
    labels: LabelList,
    /// Read for every pod (the API server writes `annotations` before `ownerReferences`, so
    /// whether the pod has a controller is not known yet); kept only for bare pods.
    #[serde(default)]
    annotations: LabelList,
    #[serde(default, deserialize_with = "time::deserialize_opt")]
    creation_timestamp: Option<Timestamp>,
    #[serde(default, deserialize_with = "time::deserialize_opt")]
    deletion_timestamp: Option<Timestamp>,
    #[serde(default, deserialize_with = "nullable_boxed")]
    finalizers: Box<[Str]>,
    #[serde(default, deserialize_with = "has_controller")]
    owner_references: bool,
}

/// One pod as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub namespace: Str,
    pub name: Str,
    pub uid: Str,
    pub resource_version: Str,
    pub labels: LabelList,
    pub creation_timestamp: Option<Timestamp>,
    /// The deletion deadline: when the deletion was asked for plus the grace period.
    pub deletion_timestamp: Option<Timestamp>,
    /// What must still be removed before a deleted pod goes.
    pub finalizers: Box<[Str]>,
    /// Some ownerReference has `controller: true`.
    pub controlled: bool,
    /// Shared by the snapshots of one uid: the fields read here cannot change once the
    /// pod is bound (the API server rejects such updates).
    pub spec: Arc<PodSpecView>,
    pub status: PodStatusView,
    /// The complete `spec`, kept only for pods without a controller.
    pub full_spec: Option<Box<serde_json::Value>>,
    /// The annotations, kept only for pods without a controller that have any: a
    /// replacement keeps them, and a replacement's own ones name its lineage.
    pub annotations: Option<Box<LabelList>>,
}

impl PodView {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        PodView::deserialize(value)
    }

    pub fn restart_policy(&self) -> RestartPolicy {
        self.spec.restart_policy.unwrap_or_default()
    }

    /// The observed phase; a pod without one has just been accepted, i.e. is Pending.
    pub fn phase(&self) -> Phase {
        self.status.phase.unwrap_or(Phase::Pending)
    }

    pub fn condition(&self, kind: &ConditionType) -> Option<&Condition> {
        self.status.conditions.iter().find(|c| &c.kind == kind)
    }

    pub fn condition_is_true(&self, kind: &ConditionType) -> bool {
        self.condition(kind)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    pub fn container_status(&self, name: &str) -> Option<&ContainerStatus> {
        self.status
            .container_statuses
            .iter()
            .find(|s| &*s.name == name)
    }

    pub fn init_container_status(&self, name: &str) -> Option<&ContainerStatus> {
        self.status
            .init_container_statuses
            .iter()
            .find(|s| &*s.name == name)
    }

    /// Regular and sidecar containers paired with their status, if any.
    pub fn regular_and_sidecars(
        &self,
    ) -> impl Iterator<Item = (&ContainerSpec, Option<&ContainerStatus>)> {
        let sidecars = self
            .spec
            .init_containers
            .iter()
            .filter(|c| c.is_sidecar())
            .map(|c| (c, self.init_container_status(&c.name)));
        let regular = self
            .spec
            .containers
            .iter()
            .map(|c| (c, self.container_status(&c.name)));
        sidecars.chain(regular)
    }

    /// The pod "has initialized": the Initialized condition is True, or any regular
    /// container has started (what the kubelet knows from the runtime, read from the API).
    pub fn has_initialized(&self) -> bool {
        self.condition_is_true(&ConditionType::Initialized)
            || self
                .status
                .container_statuses
                .iter()
                .any(ContainerStatus::has_started)
    }

    /// Evidence visible in the API that the pod is terminal for the kubelet: it is being
    /// deleted, the kubelet or a controller recorded a reason (eviction, shutdown, deadline,
    /// admission), or a DisruptionTarget condition is True.
    pub fn terminal_evidence(&self) -> bool {
        self.deletion_timestamp.is_some() || self.status_terminal_evidence()
    }

    /// Terminal evidence in the status itself (a reason, or DisruptionTarget True): what
    /// the kubelet or a controller wrote, as opposed to the API server's deletion mark.
    pub fn status_terminal_evidence(&self) -> bool {
        self.status.reason.is_some() || self.condition_is_true(&ConditionType::DisruptionTarget)
    }

    /// The latest time in the pod that records something that already happened: creation,
    /// start, condition transitions, container starts and exits. A clock for offline
    /// audits. Not `deletionTimestamp`: that is a deadline, in the future while the pod
    /// is terminating (the deletion's time plus the grace period).
    pub fn latest_time(&self) -> Option<Timestamp> {
        let conds = self
            .status
            .conditions
            .iter()
            .map(|c| c.last_transition_time);
        let containers = self
            .status
            .container_statuses
            .iter()
            .chain(self.status.init_container_statuses.iter())
            .flat_map(|s| [&s.state, &s.last_state])
            .flat_map(|st| match st {
                ContainerState::Running { started_at } => [*started_at, None],
                ContainerState::Terminated(t) => [t.started_at, t.finished_at],
                _ => [None, None],
            });
        [self.creation_timestamp, self.status.start_time]
            .into_iter()
            .chain(conds)
            .chain(containers)
            .flatten()
            .max()
    }
}

impl<'de> Deserialize<'de> for PodView {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PodSeed(&NoSpecs).deserialize(d)
    }
}

/// Specs already known by uid. A pod's spec fields that the rules read cannot change once
/// it is bound, so a later snapshot of a known uid skips its spec at scanning speed and
/// shares the known one.
pub trait SpecSource {
    fn known_spec(&self, uid: &str) -> Option<Arc<PodSpecView>>;
}

/// Knows no spec: every snapshot's spec is read.
pub struct NoSpecs;

impl SpecSource for NoSpecs {
    fn known_spec(&self, _: &str) -> Option<Arc<PodSpecView>> {
        None
    }
}

/// Deserializes a pod, reusing specs from a [`SpecSource`].
#[derive(Clone, Copy)]
pub struct PodSeed<'s>(pub &'s dyn SpecSource);

impl<'de> DeserializeSeed<'de> for PodSeed<'_> {
    type Value = PodView;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PodView, D::Error> {
        d.deserialize_map(PodVisitor(self.0))
    }
}

struct PodVisitor<'s>(&'s dyn SpecSource);

impl<'de> Visitor<'de> for PodVisitor<'_> {
    type Value = PodView;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Pod object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PodView, A::Error> {
        let mut parts = PodParts::new(self.0);
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::Kind => {
                    let is_pod = map.next_value_seed(KindIsPod)?;
                    if let Err(kind) = is_pod {
                        return Err(de::Error::custom(format_args!(
                            "kind {kind:?} is not a Pod"
                        )));
                    }
                }
                TopKey::Pod(field) => parts.field(field, &mut map)?,
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        parts.finish()
    }
}

/// The top-level keys of a pod object.
#[derive(Debug, Clone, Copy)]
enum TopKey {
    Kind,
    Pod(PodField),
    Other,
}

/// The top-level fields of a pod that make its view, for readers of documents that
/// wrap pods (watch events, lists) and meet them among their own keys.
#[derive(Debug, Clone, Copy)]
pub enum PodField {
    Metadata,
    Spec,
    Status,
}

impl PodField {
    pub fn from_key(key: &str) -> Option<PodField> {
        match key {
            "metadata" => Some(PodField::Metadata),
            "spec" => Some(PodField::Spec),
            "status" => Some(PodField::Status),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for TopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, s: &str) -> Result<TopKey, E> {
                Ok(match s {
                    "kind" => TopKey::Kind,
                    _ => PodField::from_key(s).map_or(TopKey::Other, TopKey::Pod),
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Reads a `kind` value: `Ok(())` for Pod, else the kind.
pub struct KindIsPod;

impl<'de> DeserializeSeed<'de> for KindIsPod {
    type Value = Result<(), String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        with_str(d, "a kind", |k| {
            if k == "Pod" {
                Ok(())
            } else {
                Err(k.to_string())
            }
        })
    }
}

/// The parts of a pod as its fields arrive. `metadata` precedes `spec` in everything the
/// API server writes, so the controller reference is known when the spec arrives and an
/// owned pod's spec is never built in full; if the order is reversed the full spec is
/// built and dropped at the end.
pub struct PodParts<'s> {
    specs: &'s dyn SpecSource,
    metadata: Option<MetadataView>,
    spec: Option<Arc<PodSpecView>>,
    full_spec: Option<serde_json::Value>,
    status: Option<PodStatusView>,
}

impl<'s> PodParts<'s> {
    pub fn new(specs: &'s dyn SpecSource) -> Self {
        PodParts {
            specs,
            metadata: None,
            spec: None,
            full_spec: None,
            status: None,
        }
    }

    pub fn field<'de, A: MapAccess<'de>>(
        &mut self,
        field: PodField,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match field {
            PodField::Metadata => self.metadata = Some(map.next_value()?),
            PodField::Status => self.status = Some(map.next_value()?),
            PodField::Spec if self.metadata.as_ref().is_some_and(|m| m.owner_references) => {
                let known = self
                    .metadata
                    .as_ref()
                    .and_then(|m| m.uid.as_deref())
                    .and_then(|uid| self.specs.known_spec(uid));
                self.spec = Some(match known {
                    Some(spec) => {
                        map.next_value::<IgnoredAny>()?;
                        spec
                    }
                    None => Arc::new(map.next_value()?),
                });
            }
            PodField::Spec => {
                let value: serde_json::Value = map.next_value()?;
                let spec = PodSpecView::deserialize(&value)
                    .map_err(|e| de::Error::custom(format_args!("spec: {e}")))?;
                self.spec = Some(Arc::new(spec));
                self.full_spec = Some(value);
            }
        }
        Ok(())
    }

    pub fn finish<E: de::Error>(self) -> Result<PodView, E> {
        let metadata = self.metadata.ok_or_else(|| E::missing_field("metadata"))?;
        let name = metadata
            .name
            .ok_or_else(|| E::missing_field("metadata.name"))?;
        let uid = metadata
            .uid
            .ok_or_else(|| E::missing_field("metadata.uid"))?;
        let controlled = metadata.owner_references;
        Ok(PodView {
            namespace: metadata.namespace.unwrap_or_else(|| "default".into()),
            name,
            uid,
            resource_version: metadata.resource_version.unwrap_or_default(),
            labels: metadata.labels,
            creation_timestamp: metadata.creation_timestamp,
            deletion_timestamp: metadata.deletion_timestamp,
            finalizers: metadata.finalizers,
            controlled,
            spec: self.spec.unwrap_or_default(),
            status: self.status.unwrap_or_default(),
            full_spec: if controlled {
                None
            } else {
                self.full_spec.map(Box::new)
            },
            annotations: if controlled || metadata.annotations.0.is_empty() {
                None
            } else {
                Some(Box::new(metadata.annotations))
            },
        })
    }
}

/// `null` or a list, into a boxed slice.
fn nullable_boxed<'de, D, T>(d: D) -> Result<Box<[T]>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?
        .map(Vec::into_boxed_slice)
        .unwrap_or_default())
}

fn readiness_gates<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[Str]>, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Gate {
        condition_type: Str,
    }
    let gates: Box<[Gate]> = nullable_boxed(d)?;
    Ok(gates.into_iter().map(|g| g.condition_type).collect())
}

fn has_controller<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    struct OwnerRef {
        #[serde(default)]
        controller: Option<bool>,
    }
    let refs: Box<[OwnerRef]> = nullable_boxed(d)?;
    Ok(refs.iter().any(|r| r.controller == Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/pod-watch-event.json");

    fn fixture_pod() -> serde_json::Value {
        let event: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        event["object"].clone()
    }

    #[test]
    fn realistic_owned_pod_keeps_what_rules_read_and_drops_the_spec() {
        let pod = fixture_pod();
        let view = PodView::from_slice(pod.to_string().as_bytes()).unwrap();
        assert_eq!(&*view.name, pod["metadata"]["name"].as_str().unwrap());
        assert_eq!(&*view.uid, pod["metadata"]["uid"].as_str().unwrap());
        assert!(view.controlled);
        assert!(view.full_spec.is_none());
        assert_eq!(
            view.spec.containers.len(),
            pod["spec"]["containers"].as_array().unwrap().len()
        );
        assert_eq!(
            view.labels.label("tier"),
            pod["metadata"]["labels"]["tier"].as_str()
        );
        assert_eq!(
            view.status.conditions.len(),
            pod["status"]["conditions"].as_array().unwrap().len()
        );
    }

    #[test]
    fn orphan_keeps_its_full_spec_whatever_the_key_order() {
        let mut pod = fixture_pod();
        pod["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        pod["metadata"]["annotations"] = serde_json::json!({"b": "2", "a": "1"});
        let view = PodView::from_value(&pod).unwrap();
        assert!(!view.controlled);
        assert_eq!(view.full_spec.as_deref(), Some(&pod["spec"]));
        let annotations = view
            .annotations
            .as_deref()
            .expect("a bare pod keeps annotations");
        assert_eq!(
            (annotations.label("a"), annotations.label("b")),
            (Some("1"), Some("2"))
        );

        // spec before metadata: the full spec is built, then dropped for an owned pod.
        let owned = fixture_pod();
        let reordered = format!(
            r#"{{"spec":{},"metadata":{},"status":{}}}"#,
            owned["spec"], owned["metadata"], owned["status"]
        );
        let view = PodView::from_slice(reordered.as_bytes()).unwrap();
        assert!(view.controlled && view.full_spec.is_none() && view.annotations.is_none());
        assert_eq!(view.spec.containers.len(), 2);
    }

    #[test]
    fn malformed_fields_are_errors_that_name_them() {
        for (doc, needle) in [
            (r#"{"metadata":{"uid":"u"}}"#, "metadata.name"),
            (r#"{"metadata":{"name":"p"}}"#, "metadata.uid"),
            (
                r#"{"kind":"Service","metadata":{"name":"p","uid":"u"}}"#,
                "not a Pod",
            ),
            (
                r#"{"metadata":{"name":"p","uid":"u"},"status":{"phase":"Exploded"}}"#,
                "Exploded",
            ),
            (
                r#"{"metadata":{"name":"p","uid":"u","creationTimestamp":"soon"}}"#,
                "invalid timestamp",
            ),
        ] {
            let err = PodView::from_slice(doc.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn container_ids_are_kept_as_8_byte_hashes_that_tell_instances_apart() {
        let status = |id: &str| {
            let doc = format!(
                r#"{{"metadata":{{"name":"p","uid":"u"}},"status":{{"containerStatuses":[{{"name":"a"{id}}}]}}}}"#
            );
            PodView::from_slice(doc.as_bytes()).map(|v| v.status.container_statuses[0].container_id)
        };
        let a = status(r##","containerID":"containerd://4f1c""##).unwrap();
        let b = status(r##","containerID":"containerd://8a3e""##).unwrap();
        assert!(a.same_instance(a) && !a.same_instance(b));
        for none in ["", r#","containerID":null"#, r##","containerID":"""##] {
            let id = status(none).unwrap();
            assert_eq!(id, ContainerId::NONE, "{none}");
            assert!(
                !id.same_instance(id),
                "no id is no evidence of one instance"
            );
        }
        let err = status(r#","containerID":7"#).unwrap_err().to_string();
        assert!(err.contains("a container id"), "{err}");
        assert_eq!(std::mem::size_of::<ContainerId>(), 8);
    }

    #[test]
    fn nulls_read_as_absent() {
        let doc = r#"{"metadata":{"name":"p","uid":"u","labels":null,"ownerReferences":null},
            "spec":{"containers":null,"initContainers":null},
            "status":{"conditions":null,"containerStatuses":[{"name":"a","state":null,"lastState":{}}]}}"#;
        let view = PodView::from_slice(doc.as_bytes()).unwrap();
        assert_eq!(
            view.status.container_statuses[0].state,
            ContainerState::None
        );
        assert!(view.labels.0.is_empty());
    }
}
