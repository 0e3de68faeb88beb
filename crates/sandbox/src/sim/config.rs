//! How a simulation is set up, and the names it is told about.

/// Terminated pods PodGC keeps by default (kube-controller-manager's
/// `--terminated-pod-gc-threshold`).
pub const TERMINATED_THRESHOLD: usize = 12_500;

/// The rule ids a faulty kubelet can be told to break: every definite violation of
/// SEMANTICS.md B7. Not the warnings legal kubelets produce (`ready-despite-gate`,
/// `restart-count-reset`): the simulator does not write them.
pub const VIOLATION_RULES: [&str; 9] = [
    "terminal-phase-regression",
    "restart-against-policy",
    "terminal-phase-ready",
    "ready-without-containers-ready",
    "containers-ready-mismatch",
    "succeeded-with-failed-container",
    "restart-count-decreased",
    "start-time-changed",
    "running-unbound",
];

/// What every simulated node offers.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeShape {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Pods per node.
    pub pods: u64,
    /// Zones the nodes are spread over (`topology.kubernetes.io/zone`).
    pub zones: u32,
    /// `node.kubernetes.io/instance-type`.
    pub instance_type: String,
}

impl Default for NodeShape {
    fn default() -> Self {
        NodeShape {
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
            pods: 110,
            zones: 3,
            instance_type: "sandbox.standard-4".into(),
        }
    }
}

/// How the simulation is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub node_shape: NodeShape,
    pub seed: u64,
    /// Simulated seconds per wall-clock second; `None`: time moves only when the
    /// simulation is advanced explicitly (tests).
    pub speed: Option<f64>,
    /// Simulated time at start (default: the wall clock, whole seconds).
    pub start: Option<jiff::Timestamp>,
    /// Terminated pods PodGC keeps before deleting the oldest (kube-controller-manager's
    /// `--terminated-pod-gc-threshold`, 12,500 by default; 0 keeps them all).
    pub terminated_pod_gc_threshold: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            node_shape: NodeShape::default(),
            seed: 1,
            speed: Some(1.0),
            start: None,
            terminated_pod_gc_threshold: TERMINATED_THRESHOLD,
        }
    }
}

/// One injected faulty-kubelet write (`GET /sandbox/v1/ground-truth` lines).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroundTruthEntry {
    pub sequence: u64,
    pub time: String,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub rule: String,
}
