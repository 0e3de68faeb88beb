//! The scheduler's rules as plain functions over plain data: what a pod requests, what
//! a node offers, the filters (node unschedulable, taints, node affinity and selector,
//! resource fit, in the upstream plugin order), least-allocated scoring, and the
//! `Unschedulable` message in the upstream shape. Quantities and their arithmetic are
//! [`super::quantity`]'s.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, Taint, Toleration};
use serde::Deserialize;
use serde_json::Value;

use crate::sim::pod_meta::PodMeta;
use crate::sim::taints::{TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, tolerates};

use super::quantity::{Resources, quantity_text, unit_value};

/// Requests a pod with none is scored as having (upstream `GetNonzeroRequests`).
pub const DEFAULT_CPU_MILLIS: i64 = 100;
pub const DEFAULT_MEMORY_BYTES: i64 = 200 << 20;

// ---- pods ----------------------------------------------------------------------------

/// The part of a pod the scheduler and the control plane read (unknown fields are
/// skipped while parsing, so this is cheaper than a full `Pod`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SchedulingPod {
    pub metadata: PodMeta,
    pub spec: SpecView,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SpecView {
    pub containers: Vec<ContainerView>,
    pub init_containers: Vec<ContainerView>,
    pub overhead: BTreeMap<String, Value>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<AffinityView>,
    pub priority: Option<i32>,
    pub preemption_policy: Option<String>,
    pub scheduling_gates: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerView {
    pub resources: ResourcesView,
    pub restart_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResourcesView {
    pub requests: BTreeMap<String, Value>,
    pub limits: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AffinityView {
    pub node_affinity: Option<NodeAffinityView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NodeAffinityView {
    #[serde(rename = "requiredDuringSchedulingIgnoredDuringExecution")]
    pub required: Option<NodeSelector>,
}

impl ContainerView {
    /// Requests, with limits standing in for requests that are not set (API defaulting).
    fn requests(&self) -> Resources {
        let mut map = self.resources.limits.clone();
        map.extend(
            self.resources
                .requests
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Resources::from_map(&map)
    }
}

/// What the scheduler keeps of a pending pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodInfo {
    pub requests: Resources,
    /// cpu millis and memory bytes as scored (zero requests replaced by defaults).
    pub nonzero: (i64, i64),
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub required: Option<NodeSelector>,
    pub preempt_never: bool,
    pub gated: bool,
}

impl PodInfo {
    pub fn from_view(view: SchedulingPod) -> Self {
        let spec = view.spec;
        let requests = pod_requests(&spec);
        let cpu_req = spec.containers.iter().map(|c| c.requests().cpu);
        let nonzero_cpu: i64 = cpu_req
            .map(|c| if c == 0 { DEFAULT_CPU_MILLIS } else { c })
            .fold(0i64, i64::saturating_add);
        let nonzero_mem: i64 = spec
            .containers
            .iter()
            .map(|c| {
                let m = c.requests().memory;
                if m == 0 { DEFAULT_MEMORY_BYTES } else { m }
            })
            .fold(0i64, i64::saturating_add);
        PodInfo {
            nonzero: (
                nonzero_cpu.max(requests.cpu),
                nonzero_mem.max(requests.memory),
            ),
            requests,
            node_selector: spec.node_selector,
            tolerations: spec.tolerations,
            required: spec
                .affinity
                .and_then(|a| a.node_affinity)
                .and_then(|n| n.required),
            preempt_never: spec.preemption_policy.as_deref() == Some("Never"),
            gated: !spec.scheduling_gates.is_empty(),
        }
    }
}

/// A pod's effective requests (upstream `PodRequests`): the sum of the app containers
/// and sidecars, or the largest init container (plus the sidecars started before it)
/// if that is more; plus the pod overhead.
pub fn pod_requests(spec: &SpecView) -> Resources {
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&c.requests());
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in &spec.init_containers {
        let mut r = c.requests();
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init_max.max(&r);
    }
    total.max(&init_max);
    total.add(&Resources::from_map(&spec.overhead));
    total
}

// ---- nodes ---------------------------------------------------------------------------

/// What the scheduler keeps of a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// NoSchedule and NoExecute taints, in the node's order.
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    pub max_pods: i64,
    pub unschedulable: bool,
    /// The Ready condition's status (`True`, `False`, `Unknown`; empty if none).
    pub ready: String,
}

impl NodeInfo {
    pub fn from_node(node: &k8s_openapi::api::core::v1::Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let alloc: BTreeMap<String, Value> = status
            .and_then(|s| s.allocatable.as_ref())
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.0.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let max_pods = alloc
            .get("pods")
            .and_then(quantity_text)
            .and_then(|q| unit_value(&q))
            .unwrap_or(0);
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let mut taints: Vec<Taint> = spec
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .collect();
        // A node that is not Ready repels pods even before the node controller has
        // tainted it (the scheduler sees the taint a moment later on a real cluster).
        if ready != "True" {
            let key = if ready == "False" {
                TAINT_NOT_READY
            } else {
                TAINT_UNREACHABLE
            };
            if !taints
                .iter()
                .any(|t| t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)
            {
                taints.push(Taint {
                    key: key.into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                });
            }
        }
        NodeInfo {
            name,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            allocatable: Resources::from_map(&alloc),
            max_pods,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            ready,
        }
    }
}

/// What the pods bound to a node (not terminal) request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Used {
    pub requests: Resources,
    pub nonzero_cpu: i64,
    pub nonzero_mem: i64,
    pub pods: i64,
}

impl Used {
    pub fn add(&mut self, pod: &Requested) {
        self.requests.add(&pod.requests);
        self.nonzero_cpu = self.nonzero_cpu.saturating_add(pod.nonzero.0);
        self.nonzero_mem = self.nonzero_mem.saturating_add(pod.nonzero.1);
        self.pods += 1;
    }

    pub fn sub(&mut self, pod: &Requested) {
        self.requests.sub(&pod.requests);
        self.nonzero_cpu = self.nonzero_cpu.saturating_sub(pod.nonzero.0);
        self.nonzero_mem = self.nonzero_mem.saturating_sub(pod.nonzero.1);
        self.pods -= 1;
    }
}

/// What a bound pod takes from its node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub requests: Resources,
    pub nonzero: (i64, i64),
}

impl From<&PodInfo> for Requested {
    fn from(p: &PodInfo) -> Self {
        Requested {
            requests: p.requests.clone(),
            nonzero: p.nonzero,
        }
    }
}

// ---- filters -------------------------------------------------------------------------

/// Why one node does not fit; `Display` gives the upstream wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Unschedulable,
    Taint { key: String, value: String },
    Affinity,
    TooManyPods,
    Insufficient(String),
}

impl Reason {
    /// Whether evicting lower-priority pods could help (upstream: `Unschedulable`
    /// rather than `UnschedulableAndUnresolvable`).
    pub fn resolvable(&self) -> bool {
        matches!(self, Reason::TooManyPods | Reason::Insufficient(_))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::Taint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::Affinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::Insufficient(r) => write!(f, "Insufficient {r}"),
        }
    }
}

/// Runs the filters in upstream order; the first failing plugin's reasons.
pub fn filter(pod: &PodInfo, node: &NodeInfo, used: &Used) -> Result<(), Vec<Reason>> {
    if node.unschedulable {
        let t = Taint {
            key: TAINT_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !pod.tolerations.iter().any(|tol| tolerates(tol, &t)) {
            return Err(vec![Reason::Unschedulable]);
        }
    }
    if let Some(t) = node
        .taints
        .iter()
        .find(|t| !pod.tolerations.iter().any(|tol| tolerates(tol, t)))
    {
        return Err(vec![Reason::Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
        }]);
    }
    if !matches_node(pod, node) {
        return Err(vec![Reason::Affinity]);
    }
    let mut reasons = Vec::new();
    if used.pods + 1 > node.max_pods {
        reasons.push(Reason::TooManyPods);
    }
    let (r, a, u) = (&pod.requests, &node.allocatable, &used.requests);
    if r.cpu > 0 && r.cpu > a.cpu.saturating_sub(u.cpu) {
        reasons.push(Reason::Insufficient("cpu".into()));
    }
    if r.memory > 0 && r.memory > a.memory.saturating_sub(u.memory) {
        reasons.push(Reason::Insufficient("memory".into()));
    }
    if r.ephemeral > 0 && r.ephemeral > a.ephemeral.saturating_sub(u.ephemeral) {
        reasons.push(Reason::Insufficient("ephemeral-storage".into()));
    }
    for (name, want) in &r.other {
        let have = a.other.get(name).copied().unwrap_or(0);
        let taken = u.other.get(name).copied().unwrap_or(0);
        if *want > 0 && *want > have.saturating_sub(taken) {
            reasons.push(Reason::Insufficient(name.clone()));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// `nodeSelector` and required node affinity.
pub fn matches_node(pod: &PodInfo, node: &NodeInfo) -> bool {
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    selector_ok
        && pod.required.as_ref().is_none_or(|sel| {
            sel.node_selector_terms.iter().any(|term| {
                let exprs = term.match_expressions.as_deref().unwrap_or_default();
                let fields = term.match_fields.as_deref().unwrap_or_default();
                (!exprs.is_empty() || !fields.is_empty())
                    && exprs
                        .iter()
                        .all(|r| requirement(r, node.labels.get(&r.key)))
                    && fields
                        .iter()
                        .all(|r| r.key == "metadata.name" && requirement(r, Some(&node.name)))
            })
        })
}

fn requirement(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(|v| int(v)), values) else {
                return false;
            };
            let Some(bound) = int(bound) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

// ---- scoring -------------------------------------------------------------------------

/// Least-allocated score 0..=100 (cpu and memory weighted equally), as upstream.
pub fn score(pod: &PodInfo, node: &NodeInfo, used: &Used) -> i64 {
    let part = |requested: i64, capacity: i64| -> i64 {
        if capacity <= 0 || requested > capacity {
            0
        } else {
            (capacity - requested) * 100 / capacity
        }
    };
    let cpu = part(
        used.nonzero_cpu.saturating_add(pod.nonzero.0),
        node.allocatable.cpu,
    );
    let mem = part(
        used.nonzero_mem.saturating_add(pod.nonzero.1),
        node.allocatable.memory,
    );
    (cpu + mem) / 2
}

/// How many feasible nodes to look for before scoring (upstream
/// `numFeasibleNodesToFind` with the adaptive percentage).
pub fn feasible_to_find(all: usize) -> usize {
    if all < 100 {
        return all;
    }
    let percentage = (50 - all as i64 / 125).max(5) as usize;
    (all * percentage / 100).max(100)
}

// ---- the message ---------------------------------------------------------------------

/// The `Unschedulable` message (upstream `FitError.Error()` with the default
/// preemption plugin's message): reasons counted per node and sorted as strings.
pub fn unschedulable_message(all: usize, per_node: &[Vec<Reason>], preempt_never: bool) -> String {
    if all == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for reasons in per_node {
        for r in reasons {
            *counts.entry(r.to_string()).or_default() += 1;
        }
    }
    let mut out = format!("0/{all} nodes are available:");
    let histogram = |counts: BTreeMap<String, usize>| -> String {
        let mut items: Vec<String> = counts
            .into_iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        items.sort();
        items.join(", ")
    };
    if !counts.is_empty() {
        out.push_str(&format!(" {}.", histogram(counts)));
    }
    if preempt_never {
        out.push_str(" preemption: not eligible due to preemptionPolicy=Never.");
        return out;
    }
    let mut preemption: BTreeMap<String, usize> = BTreeMap::new();
    for reasons in per_node {
        let why = if reasons.iter().all(Reason::resolvable) {
            // No lower-priority pods are considered victims in the simulation.
            "No preemption victims found for incoming pod"
        } else {
            "Preemption is not helpful for scheduling"
        };
        *preemption.entry(why.to_string()).or_default() += 1;
    }
    out.push_str(&format!(
        " preemption: 0/{all} nodes are available: {}.",
        histogram(preemption)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: Value) -> SpecView {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn requests_follow_upstream_pod_requests() {
        // Two app containers, a sidecar and a big init container.
        let spec = view(serde_json::json!({
            "containers": [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                           {"resources": {"limits": {"cpu": "200m"}}}],
            "initContainers": [{"restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                               {"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
        }));
        let r = pod_requests(&spec);
        assert_eq!(
            r.cpu, 1050,
            "init container (1) plus the sidecar before it (50m)"
        );
        assert_eq!(r.memory, 64 << 20);
    }

    fn node(ready: &str) -> NodeInfo {
        NodeInfo {
            name: "n".into(),
            labels: [
                ("zone".to_string(), "a".to_string()),
                ("gen".to_string(), "5".to_string()),
            ]
            .into(),
            taints: vec![],
            allocatable: Resources {
                cpu: 1000,
                memory: 1 << 30,
                ..Default::default()
            },
            max_pods: 2,
            unschedulable: false,
            ready: ready.into(),
        }
    }

    #[test]
    fn affinity_operators() {
        let info = |expr: Value| PodInfo {
            required: Some(
                serde_json::from_value(
                    serde_json::json!({"nodeSelectorTerms": [{"matchExpressions": [expr]}]}),
                )
                .unwrap(),
            ),
            ..Default::default()
        };
        let n = node("True");
        let cases = [
            (
                serde_json::json!({"key": "zone", "operator": "In", "values": ["a", "b"]}),
                true,
            ),
            (
                serde_json::json!({"key": "zone", "operator": "NotIn", "values": ["a"]}),
                false,
            ),
            (
                serde_json::json!({"key": "none", "operator": "NotIn", "values": ["a"]}),
                true,
            ),
            (
                serde_json::json!({"key": "zone", "operator": "Exists"}),
                true,
            ),
            (
                serde_json::json!({"key": "zone", "operator": "DoesNotExist"}),
                false,
            ),
            (
                serde_json::json!({"key": "gen", "operator": "Gt", "values": ["4"]}),
                true,
            ),
            (
                serde_json::json!({"key": "gen", "operator": "Lt", "values": ["4"]}),
                false,
            ),
            (
                serde_json::json!({"key": "zone", "operator": "Gt", "values": ["4"]}),
                false,
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(matches_node(&info(expr.clone()), &n), want, "{expr}");
        }
    }

    #[test]
    fn message_counts_per_node_and_sorts_as_strings() {
        let taint = Reason::Taint {
            key: TAINT_UNREACHABLE.into(),
            value: String::new(),
        };
        let per_node = vec![
            vec![Reason::Insufficient("cpu".into())],
            vec![taint.clone()],
            vec![taint],
        ];
        assert_eq!(
            unschedulable_message(3, &per_node, false),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn filters_run_in_order_and_resources_list_every_shortage() {
        let n = node("True");
        let pod = PodInfo {
            requests: Resources {
                cpu: 2000,
                memory: 2 << 30,
                ..Default::default()
            },
            ..Default::default()
        };
        let used = Used {
            pods: 2,
            ..Default::default()
        };
        assert_eq!(
            filter(&pod, &n, &used),
            Err(vec![
                Reason::TooManyPods,
                Reason::Insufficient("cpu".into()),
                Reason::Insufficient("memory".into())
            ])
        );
    }
}
