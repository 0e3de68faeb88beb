//! Orphan recreation, the pure part: whether a lost bare pod may be recreated (fencing
//! evidence that the old pod cannot still run, SEMANTICS B5 and B7), what its
//! replacement is, and the per-lineage attempt budget and backoff.
//!
//! Kubernetes recreates a pod lost to a node fault only when a controller owns it. For a
//! bare pod podwarden fills that gap, and a wrong "yes" makes one workload run twice, so
//! [`decide`] is strict: it answers with [`Evidence`] only when an upstream component
//! wrote a state that says the old pod cannot run any more, and with a [`Skip`] otherwise.
//!
//! Nothing here reads a clock, a cache or the network: the caller passes the last state it
//! saw of the pod, what its node cache says of the pod's node ([`NodeFacts`]), and the
//! time.

use std::collections::HashMap;
use std::fmt;

use k8s_openapi::api::core::v1::Node;
use serde_json::{Map, Value};

use crate::policy::OrphanSettings;
use crate::time::Timestamp;
use crate::view::{ConditionStatus, ConditionType, Phase, PodView, RestartPolicy, Str, fnv1a};
use podwarden_base::selector::Labels;

/// The taint a person (or their automation) puts on a node that is shut down and will not
/// come back on its own (non-graceful node shutdown, KEP-2268).
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// On a replacement: the uid of the first pod of its lineage (the pod that was lost first).
pub const ORIGINAL_UID_ANNOTATION: &str = "podwarden.dev/original-uid";

/// On a replacement: its attempt number in its lineage, from 1.
pub const ATTEMPT_ANNOTATION: &str = "podwarden.dev/attempt";

/// On a lost pod whose object is still there (a terminal pod): the name of its
/// replacement, written before the replacement is created (a stop between the two writes
/// makes the same create again, with the same name). The object may be deleted
/// later (by a person cleaning up, or PodGC's terminated-pod threshold); its last state
/// then still names the replacement, so [`replacement`] keeps the derived name instead of
/// taking the freed original name, and a second create answers 409.
pub const REPLACEMENT_ANNOTATION: &str = "podwarden.dev/replacement";

/// The longest pod name: pods are named as DNS subdomains.
pub const NAME_LIMIT: usize = 253;

/// The longest hostname label. The kubelet uses a pod's name as its hostname and cuts
/// longer ones to this length; a derived name of a pod whose name fit here fits here too.
pub const HOSTNAME_LIMIT: usize = 63;

// Strings upstream writes, and where.
/// DisruptionTarget reason, pkg/controller/podgc/gc_controller.go `gcOrphaned`.
const DELETION_BY_POD_GC: &str = "DeletionByPodGC";
/// DisruptionTarget reason, pkg/controller/tainteviction (the taint manager).
const DELETION_BY_TAINT_MANAGER: &str = "DeletionByTaintManager";
/// DisruptionTarget reason of kubelet terminations (eviction manager, node shutdown).
const TERMINATION_BY_KUBELET: &str = "TerminationByKubelet";
/// `status.reason`, pkg/kubelet/eviction/helpers.go `Reason`.
const REASON_EVICTED: &str = "Evicted";
/// `status.reason`, pkg/kubelet/nodeshutdown `nodeShutdownReason` (pods it kills).
const REASON_SHUTDOWN_TERMINATED: &str = "Terminated";
/// `status.reason`, pkg/kubelet/nodeshutdown `NodeShutdownNotAdmittedReason` (pods it
/// rejects at admission while the node shuts down).
const REASON_SHUTDOWN_REJECTED: &str = "NodeShutdown";

/// Fencing evidence: an upstream component wrote a state that says the lost pod cannot
/// still run. Each variant names its writer and why what it wrote fences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// The pod's Node object was deleted and PodGC removed the pod.
    ///
    /// Writer: PodGC (`pkg/controller/podgc`, `gcOrphaned`). A pod bound to a node missing
    /// from its informer is quarantined for 40 s, the node's absence confirmed by a live
    /// GET, then the pod is set Failed with DisruptionTarget reason `DeletionByPodGC`
    /// ("PodGC: node no longer exists") and deleted with grace 0.
    ///
    /// Why it fences: Node objects are deleted by the cloud node lifecycle controller once
    /// the provider says the instance no longer exists, or by a person asserting the same;
    /// with no Node of that name no kubelet runs pods under it. The node cache must still
    /// agree the node is absent: a node registered again under the name may be the same
    /// machine, whose kubelet has not caught up with the deletion yet.
    NodeDeleted,

    /// The pod was on a node tainted `node.kubernetes.io/out-of-service`, deleted by the
    /// taint manager, and force-deleted by PodGC.
    ///
    /// Writers: a person or their automation sets the taint on a node that is shut down
    /// (non-graceful node shutdown); the taint manager (`pkg/controller/tainteviction`)
    /// deletes the pods that do not tolerate it with DisruptionTarget reason
    /// `DeletionByTaintManager`; PodGC (`gcTerminating`) sets every terminating pod on a
    /// node that is not Ready and carries the taint to Failed (nothing else) and deletes
    /// it with grace 0.
    ///
    /// Why it fences: the taint is the person's word that the machine is off; it is
    /// honoured only as PodGC honours it (node not Ready), and only for pods the taint
    /// manager deleted: a pod a person deleted there was deleted on purpose.
    NodeOutOfService,

    /// The kubelet evicted the pod and wrote its terminal phase itself.
    ///
    /// Writer: the kubelet's eviction manager (`pkg/kubelet/eviction`): phase Failed,
    /// reason `Evicted`. Node-pressure evictions (memory, disk: nodefs and imagefs, inodes,
    /// pids) add DisruptionTarget `TerminationByKubelet` with "The node was low on
    /// resource: ..."; evictions for local ephemeral-storage limits (emptyDir sizeLimit,
    /// pod or container ephemeral-storage limits) and admission refusals under pressure
    /// ("The node had condition: ...") carry the reason without a condition.
    ///
    /// Disk failure: upstream has no other writer for it. A full or failing disk is disk
    /// pressure, handled here; a dead root disk stops the kubelet, which then writes
    /// nothing, and the node becomes NotReady: the out-of-service and node-deleted paths.
    ///
    /// Why it fences: the status manager holds a terminal phase back (with its reason)
    /// while any container could still run (`mergePodStatus`), and a terminal phase is
    /// final (B7.1): the kubelet never runs the pod again.
    Evicted,

    /// The kubelet's graceful node shutdown terminated the pod, or refused it.
    ///
    /// Writer: the kubelet's node shutdown manager (`pkg/kubelet/nodeshutdown`): phase
    /// Failed unless already Succeeded, reason `Terminated`, message "Pod was terminated
    /// in response to imminent node shutdown.", DisruptionTarget `TerminationByKubelet`;
    /// pods bound while the node shuts down are refused with reason `NodeShutdown` ("Pod
    /// was rejected as the node is shutting down."). `Terminated` counts only with the
    /// kubelet's DisruptionTarget (1.26 and later), being a generic word.
    ///
    /// Why it fences: as [`Evidence::Evicted`], a terminal phase the kubelet wrote after
    /// its containers stopped, or before any started.
    NodeShutdown,
}

impl Evidence {
    pub const ALL: [Evidence; 4] = [
        Evidence::NodeDeleted,
        Evidence::NodeOutOfService,
        Evidence::Evicted,
        Evidence::NodeShutdown,
    ];

    /// The name used in Events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::NodeDeleted => "NodeDeleted",
            Evidence::NodeOutOfService => "NodeOutOfService",
            Evidence::Evicted => "Evicted",
            Evidence::NodeShutdown => "NodeShutdown",
        }
    }

    /// One line for an Event message: what was seen, and who wrote it.
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::NodeDeleted => {
                "its node was deleted and PodGC removed it (DisruptionTarget DeletionByPodGC)"
            }
            Evidence::NodeOutOfService => {
                "its node is not Ready and tainted node.kubernetes.io/out-of-service; the taint manager deleted it and PodGC force-deleted it"
            }
            Evidence::Evicted => "the kubelet evicted it (phase Failed, reason Evicted)",
            Evidence::NodeShutdown => {
                "the kubelet's graceful node shutdown terminated it (phase Failed)"
            }
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a lost pod is not recreated. [`Skip::reason`] is the `OrphanRecreationSkipped`
/// Event reason and the `reason` label of `podwarden_orphans_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// No fencing evidence: a person or another client deleted the pod, or it failed on
    /// its own, or a component outside the evidence table stopped it.
    NoEvidence,
    /// The pod completed: there is nothing to run again.
    Succeeded,
    /// A controller ownerReference: the owner recreates its pods.
    Owned,
    /// `restartPolicy: Never`: the pod asked not to be run again, and the policy does not
    /// opt in to recreating such pods.
    RestartPolicyNever,
    /// The pod or node cache has not synced, or has no word on the pod's node: no decision
    /// is made on a partial picture.
    NotSynced,
    /// Still bound to a node that may run it: the object is there and not terminal, or its
    /// node is NotReady without `out-of-service` (a partition: deleting the pod object does
    /// not stop its containers), or a deleted node is registered again.
    StillBound,
    /// There is evidence, but the pod object was gone before its full spec was kept: a
    /// replacement is never made blind.
    NoSpec,
    /// The lineage used every attempt the policy allows. [`decide`] never returns it; it is
    /// the reason for [`Next::Exhausted`], so that every skip reason comes from one list.
    BudgetExhausted,
    /// The replacement's name is held by a pod of another lineage (a person took the freed
    /// name). Found by the create, not by [`decide`].
    NameTaken,
    /// The API server refused the replacement (invalid, forbidden, or still failing after
    /// the retries). Found by the create, not by [`decide`].
    CreateFailed,
}

impl Skip {
    pub const ALL: [Skip; 10] = [
        Skip::NoEvidence,
        Skip::Succeeded,
        Skip::Owned,
        Skip::RestartPolicyNever,
        Skip::NotSynced,
        Skip::StillBound,
        Skip::NoSpec,
        Skip::BudgetExhausted,
        Skip::NameTaken,
        Skip::CreateFailed,
    ];

    /// The Event reason and metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NoEvidence => "NoEvidence",
            Skip::Succeeded => "Succeeded",
            Skip::Owned => "Owned",
            Skip::RestartPolicyNever => "RestartPolicyNever",
            Skip::NotSynced => "NotSynced",
            Skip::StillBound => "StillBound",
            Skip::NoSpec => "NoSpec",
            Skip::BudgetExhausted => "BudgetExhausted",
            Skip::NameTaken => "NameTaken",
            Skip::CreateFailed => "CreateFailed",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// What the caller's node cache says of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node these facts are about; facts about another node than the pod's are none.
    pub name: Str,
    /// A Node object of this name exists.
    pub exists: bool,
    /// It carries a taint with key `node.kubernetes.io/out-of-service` (any effect, as
    /// PodGC checks the key only).
    pub out_of_service: bool,
    /// Its Ready condition: `Some(true)` True, `Some(false)` False, `None` Unknown or
    /// absent (the node lifecycle controller writes Unknown for a silent kubelet).
    pub ready: Option<bool>,
}

impl NodeFacts {
    /// A node the synced cache does not hold.
    pub fn missing(name: &str) -> Self {
        NodeFacts {
            name: name.into(),
            exists: false,
            out_of_service: false,
            ready: None,
        }
    }

    /// The facts of a Node object; `None` when it has no name.
    pub fn from_node(node: &Node) -> Option<Self> {
        let name = node.metadata.name.as_deref()?;
        let out_of_service = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|taints| taints.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT));
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| match c.status.as_str() {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            });
        Some(NodeFacts {
            name: name.into(),
            exists: true,
            out_of_service,
            ready,
        })
    }

    fn not_ready(&self) -> bool {
        self.ready != Some(true)
    }
}

/// Whether the lost bare pod `last` may be recreated: the evidence, or why not.
///
/// `last` is the last state seen of the pod; `gone` says its object was deleted (else it
/// is still there, and only a terminal pod is a candidate). `node` is what the node cache
/// says of the pod's node (`spec.nodeName`); for an unbound pod it is not read.
/// `recreate_never` is the policy's opt-in for `restartPolicy: Never`; `synced` says the
/// pod and node caches have synced.
///
/// Checked in this order, the first that applies answering: not synced; owned; Succeeded;
/// Never without opt-in; still there and not terminal; then the evidence, and a kept full
/// spec to build the replacement from. The answer depends on the arguments alone, so the
/// caller asks again as the pod changes (a terminal pod, then its deletion) and as its
/// node's facts do; a skip is final only for what it was given.
pub fn decide(
    last: &PodView,
    gone: bool,
    node: Option<&NodeFacts>,
    recreate_never: bool,
    synced: bool,
) -> Result<Evidence, Skip> {
    let evidence = fencing(last, gone, node, recreate_never, synced)?;
    if last.full_spec.is_none() {
        return Err(Skip::NoSpec);
    }
    Ok(evidence)
}

/// [`decide`] without its last check, a kept full spec: what a dry run (or a policy in
/// Audit mode, which keeps no specs) reports as what would have been recreated.
pub fn fencing(
    last: &PodView,
    gone: bool,
    node: Option<&NodeFacts>,
    recreate_never: bool,
    synced: bool,
) -> Result<Evidence, Skip> {
    if !synced {
        return Err(Skip::NotSynced);
    }
    if last.controlled {
        return Err(Skip::Owned);
    }
    let phase = last.phase();
    if phase == Phase::Succeeded {
        return Err(Skip::Succeeded);
    }
    if last.restart_policy() == RestartPolicy::Never && !recreate_never {
        return Err(Skip::RestartPolicyNever);
    }
    if !gone && !phase.is_terminal() {
        return Err(Skip::StillBound);
    }
    evidence(last, node)
}

/// The evidence in the last state of a pod that is gone or terminal.
fn evidence(last: &PodView, node: Option<&NodeFacts>) -> Result<Evidence, Skip> {
    // Never bound: no kubelet ran it, so no node fault lost it; someone deleted it.
    let Some(bound_to) = last.spec.node_name.as_deref() else {
        return Err(Skip::NoEvidence);
    };
    if let Some(evidence) = kubelet_evidence(last) {
        return Ok(evidence);
    }
    let Some(node) = node.filter(|n| &*n.name == bound_to) else {
        return Err(Skip::NotSynced);
    };
    let disruption = disruption_reason(last);
    if !node.exists {
        return match disruption {
            Some(DELETION_BY_POD_GC) => Ok(Evidence::NodeDeleted),
            _ => Err(Skip::NoEvidence),
        };
    }
    if disruption == Some(DELETION_BY_POD_GC) {
        // The node is registered again: it may be the same machine, still running it.
        return Err(Skip::StillBound);
    }
    if node.out_of_service
        && node.not_ready()
        && last.deletion_timestamp.is_some()
        && disruption == Some(DELETION_BY_TAINT_MANAGER)
    {
        return Ok(Evidence::NodeOutOfService);
    }
    if node.not_ready() && !node.out_of_service {
        return Err(Skip::StillBound);
    }
    Err(Skip::NoEvidence)
}

/// A terminal phase the kubelet wrote for eviction or node shutdown.
fn kubelet_evidence(last: &PodView) -> Option<Evidence> {
    if last.phase() != Phase::Failed {
        return None;
    }
    match last.status.reason.as_deref()? {
        REASON_EVICTED => Some(Evidence::Evicted),
        REASON_SHUTDOWN_REJECTED => Some(Evidence::NodeShutdown),
        REASON_SHUTDOWN_TERMINATED if disruption_reason(last) == Some(TERMINATION_BY_KUBELET) => {
            Some(Evidence::NodeShutdown)
        }
        _ => None,
    }
}

/// The reason of a DisruptionTarget condition that is True.
fn disruption_reason(pod: &PodView) -> Option<&str> {
    pod.condition(&ConditionType::DisruptionTarget)
        .filter(|c| c.status == ConditionStatus::True)
        .and_then(|c| c.reason.as_deref())
}

fn annotation<'a>(pod: &'a PodView, key: &str) -> Option<&'a str> {
    pod.annotations.as_deref().and_then(|a| a.label(key))
}

/// The first uid of the lineage a replacement belongs to (its
/// `podwarden.dev/original-uid`); `None` for a pod podwarden did not make.
pub fn original_uid(pod: &PodView) -> Option<&str> {
    annotation(pod, ORIGINAL_UID_ANNOTATION)
}

/// The lineage of a pod: the uid of the first pod lost in it (its
/// `podwarden.dev/original-uid` when it is a replacement), else its own uid.
pub fn lineage(pod: &PodView) -> &str {
    annotation(pod, ORIGINAL_UID_ANNOTATION).unwrap_or(&pod.uid)
}

/// The attempt that made this pod: its `podwarden.dev/attempt`, 0 for a pod podwarden
/// did not make. A value that does not parse reads as `u32::MAX`, which no budget allows:
/// a lineage whose count cannot be read is not recreated.
pub fn prior_attempt(pod: &PodView) -> u32 {
    match annotation(pod, ATTEMPT_ANNOTATION) {
        None => 0,
        Some(a) => a.parse().unwrap_or(u32::MAX),
    }
}

/// Dropped from the original spec, each because the API server sets it or it binds the
/// pod to the lost node:
/// - `nodeName`: the binding to the lost node; the scheduler places the replacement.
/// - `ephemeralContainers`: pod validation forbids them on create (they are added only
///   through the `ephemeralcontainers` subresource).
/// - `priority`, `preemptionPolicy`: the Priority admission plugin computes them from
///   `priorityClassName` and forbids a create whose values differ from the class's.
/// - `overhead`: the RuntimeClass admission plugin sets it from `runtimeClassName` and
///   rejects a pod whose overhead differs from the class's.
///
/// Everything else is kept, defaults and admission-injected values included (the
/// service account token volume and its mounts are valid on create, and the plugin does
/// not inject a second one into containers that already mount the token path).
pub const DROPPED_SPEC_FIELDS: [&str; 5] = [
    "nodeName",
    "ephemeralContainers",
    "priority",
    "preemptionPolicy",
    "overhead",
];

/// The replacement of the lost bare pod `last`, as the JSON of a Pod to create; `None`
/// without a kept full spec (or one that is not an object).
///
/// Its spec is the original's without [`DROPPED_SPEC_FIELDS`]. Its metadata has the name,
/// the namespace, the original's labels and annotations (all but
/// [`REPLACEMENT_ANNOTATION`], which belongs to the lost pod), plus
/// [`ORIGINAL_UID_ANNOTATION`] (the lineage's first uid) and [`ATTEMPT_ANNOTATION`]
/// (`attempt`, counted from 1). Nothing the API server sets: no uid, resourceVersion,
/// creationTimestamp, generation, managedFields, ownerReferences, finalizers,
/// generateName, deletion fields, or status.
///
/// The name is the original's when the original object is gone (and it does not name a
/// replacement already), otherwise [`derived_name`]. Either way one loss always gets the
/// same name, so a retried, raced or restarted create answers 409.
pub fn replacement(last: &PodView, attempt: u32, original_gone: bool) -> Option<Value> {
    let mut spec = last.full_spec.as_deref()?.clone();
    let fields = spec.as_object_mut()?;
    for field in DROPPED_SPEC_FIELDS {
        fields.remove(field);
    }
    let name = replacement_name(last, attempt, original_gone);
    let mut annotations = Map::new();
    for (k, v) in last.annotations.as_deref().map_or(&[][..], |a| &a.0) {
        if &**k != REPLACEMENT_ANNOTATION {
            annotations.insert(k.to_string(), Value::from(&**v));
        }
    }
    annotations.insert(ORIGINAL_UID_ANNOTATION.into(), lineage(last).into());
    annotations.insert(ATTEMPT_ANNOTATION.into(), attempt.to_string().into());
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    metadata.insert("namespace".into(), Value::from(&*last.namespace));
    if !last.labels.0.is_empty() {
        let labels: Map<String, Value> = last
            .labels
            .0
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(&**v)))
            .collect();
        metadata.insert("labels".into(), labels.into());
    }
    metadata.insert("annotations".into(), annotations.into());
    let mut pod = Map::new();
    pod.insert("apiVersion".into(), "v1".into());
    pod.insert("kind".into(), "Pod".into());
    pod.insert("metadata".into(), metadata.into());
    pod.insert("spec".into(), spec);
    Some(pod.into())
}

/// The name of the replacement [`replacement`] makes: the original's when the original
/// object is gone and does not name a replacement already, else [`derived_name`].
pub fn replacement_name(last: &PodView, attempt: u32, original_gone: bool) -> String {
    if original_gone && annotation(last, REPLACEMENT_ANNOTATION).is_none() {
        last.name.to_string()
    } else {
        derived_name(last, attempt)
    }
}

/// The name of attempt `attempt` while the name of `last` is taken: `<base>-r<attempt>`,
/// where `<base>` is the name of `last` without its own `-r<n>` (a replacement of a
/// replacement is `web-r2`, not `web-r1-r2`). It is kept within [`HOSTNAME_LIMIT`] when
/// `<base>` fits there (so the kubelet does not cut the hostname), else within
/// [`NAME_LIMIT`]; a name that does not fit is cut at a character boundary, trailing `-`
/// and `.` removed, and a hash of the whole `<base>` added, so two long names sharing a
/// prefix still get different names. Deterministic: the hash is FNV-1a, stable across
/// builds.
pub fn derived_name(last: &PodView, attempt: u32) -> String {
    let name = &*last.name;
    let base = match prior_attempt(last) {
        0 | u32::MAX => name,
        n => name.strip_suffix(&format!("-r{n}")).unwrap_or(name),
    };
    let limit = if base.len() <= HOSTNAME_LIMIT {
        HOSTNAME_LIMIT
    } else {
        NAME_LIMIT
    };
    fit(base, &format!("-r{attempt}"), limit)
}

fn fit(base: &str, suffix: &str, limit: usize) -> String {
    if base.len() + suffix.len() <= limit {
        return format!("{base}{suffix}");
    }
    let hash = format!("{:08x}", fnv1a(base.as_bytes()) as u32);
    let mut keep = limit.saturating_sub(suffix.len() + 1 + hash.len());
    while !base.is_char_boundary(keep) {
        keep -= 1;
    }
    let prefix = base[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if prefix.is_empty() {
        format!("{hash}{suffix}")
    } else {
        format!("{prefix}-{hash}{suffix}")
    }
}

/// What [`Attempts::next`] allows for a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Recreate now, as this attempt (from 1).
    Ready(u32),
    /// Backoff: ask again at this time.
    Wait(Timestamp),
    /// The lineage used every attempt the policy allows ([`Skip::BudgetExhausted`]).
    Exhausted,
    /// This loss already has its replacement, made by this attempt: the same lost pod seen
    /// again (a terminal pod, then its deletion; a relist). Nothing to create.
    Done(u32),
}

/// One lineage's newest attempt and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Made {
    attempt: u32,
    at: Timestamp,
}

/// The attempt budget and backoff of one policy's orphan recreation, per lineage (the
/// lost pods and replacements that descend from one original pod, keyed by its uid).
///
/// The n-th replacement of a lineage is attempt n. The first loss is recreated at once;
/// after replacement n is lost, attempt n+1 waits until `backoff_for(n)` after attempt n
/// was made (the backoff doubling from `backoff` to `max_backoff`); a lineage that has used
/// `max_attempts` is exhausted (`max_attempts: 0` disables recreation). The budget counts
/// the whole life of a lineage: it is not reset by a replacement that ran for long.
///
/// Bounded: at most `capacity` lineages are remembered; recording one more forgets the
/// lineage whose newest attempt is oldest. Forgetting loses nothing the pods do not carry:
/// a replacement names its lineage and attempt in its annotations and its creation time is
/// when its attempt was made, so the count and the backoff are read again from the lost
/// replacement, and a loss seen again after its lineage was forgotten gets the same name
/// as before (see [`replacement`]), whose create answers 409 while that replacement
/// exists. What the table adds is [`Next::Done`] without that round trip, also after a
/// person deleted the replacement (then only the table knows the loss was handled: size
/// it above the lineages whose lost pods may still be seen), and the time of an attempt
/// whose pod has no creation time.
#[derive(Debug, Clone)]
pub struct Attempts {
    settings: OrphanSettings,
    capacity: usize,
    lineages: HashMap<Str, Made>,
}

impl Attempts {
    /// 4096 lineages: about 100 bytes each with their keys, under half a megabyte.
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// A table for a policy's settings, remembering at most `capacity` lineages (at least
    /// one).
    pub fn new(settings: OrphanSettings, capacity: usize) -> Self {
        Attempts {
            settings,
            capacity: capacity.max(1),
            lineages: HashMap::new(),
        }
    }

    pub fn settings(&self) -> OrphanSettings {
        self.settings
    }

    /// The policy changed: later answers use the new budget and backoff; the attempts made
    /// stay counted.
    pub fn set_settings(&mut self, settings: OrphanSettings) {
        self.settings = settings;
    }

    /// Lineages remembered.
    pub fn len(&self) -> usize {
        self.lineages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lineages.is_empty()
    }

    /// What may be done at `now` for the loss of `lost` (a pod [`decide`] found evidence
    /// for).
    pub fn next(&self, lost: &PodView, now: Timestamp) -> Next {
        let prior = prior_attempt(lost);
        let made = self.lineages.get(lineage(lost)).copied();
        if let Some(m) = made
            && m.attempt > prior
        {
            return Next::Done(prior + 1);
        }
        if prior >= self.settings.max_attempts {
            return Next::Exhausted;
        }
        if prior == 0 {
            return Next::Ready(1);
        }
        // `lost` is attempt `prior`: made when the table says, or when it was created.
        let since = match made {
            Some(m) if m.attempt == prior => Some(m.at),
            _ => lost.creation_timestamp,
        };
        match since.map(|t| t.plus(self.settings.backoff_for(prior))) {
            Some(until) if now < until => Next::Wait(until),
            _ => Next::Ready(prior + 1),
        }
    }

    /// Attempt `attempt` of `lineage` was made at `at` (its create succeeded, or answered
    /// 409 for this same replacement). Recording an attempt again, or an older one, keeps
    /// the newest attempt and its first time, so a retried create does not restart the
    /// backoff.
    pub fn record(&mut self, lineage: &str, attempt: u32, at: Timestamp) {
        if let Some(m) = self.lineages.get_mut(lineage) {
            if attempt > m.attempt {
                *m = Made { attempt, at };
            }
            return;
        }
        if self.lineages.len() >= self.capacity {
            let oldest = self
                .lineages
                .iter()
                .min_by(|a, b| (a.1.at, a.0).cmp(&(b.1.at, b.0)))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.lineages.remove(&k);
            }
        }
        self.lineages.insert(lineage.into(), Made { attempt, at });
    }

    /// Forget a lineage (its pods are all gone, or the policy no longer selects them).
    pub fn forget(&mut self, lineage: &str) {
        self.lineages.remove(lineage);
    }
}
