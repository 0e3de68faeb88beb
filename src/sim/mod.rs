//! The simulated cluster behind the sandbox API server: a scheduler, one kubelet per
//! node, the node lifecycle controller with its taint manager, and PodGC, following
//! SEMANTICS.md (A2-A6, B1-B6). It turns the sandbox into a cluster where pods are
//! scheduled, run, restart, fail and get evicted as on a real one, and where node faults
//! and faulty-kubelet writes can be injected on demand, with a ground-truth log of every
//! injection.
//!
//! The simulated kubelet is an implementation of the documented behaviour independent
//! of the auditor's model (`crate::lifecycle` is never used here), so the two check each
//! other.
//!
//! - [`cluster`]: the components, their informer caches and timers, the step loop;
//! - [`kubelet`]: container runtime (scripts), pod status, back-off, events, injections;
//! - [`scheduler`]: filtering, scoring, binding, `Unschedulable`;
//! - [`control`]: nodes (registration, heartbeats), node lifecycle controller, taint
//!   manager, PodGC;
//! - [`driver`]: the simulation running beside the API server, its handle and the admin
//!   endpoints;
//! - [`clock`], [`rng`], [`recorder`], [`faults`]: simulated time, seeded randomness,
//!   Events, node faults.

pub mod clock;
pub mod cluster;
pub mod control;
pub mod driver;
pub mod faults;
pub mod kubelet;
pub mod recorder;
pub mod rng;
pub mod scenario;
pub mod scheduler;

pub use clock::SimClock;
pub use cluster::{Cluster, NodeSim};
pub use driver::StartError;
pub use driver::{SimHandle, Simulation};
pub use faults::NodeFault;

use crate::sandbox::ApiError;

/// The rule ids a faulty kubelet can be told to break (definite violations; not yet
/// start-time-changed and running-unbound).
pub const VIOLATION_RULES: [&str; 7] = [
    "terminal-phase-regression",
    "restart-against-policy",
    "terminal-phase-ready",
    "ready-without-containers-ready",
    "containers-ready-mismatch",
    "succeeded-with-failed-container",
    "restart-count-decreased",
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
            terminated_pod_gc_threshold: control::podgc::TERMINATED_THRESHOLD,
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

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no node named {0:?}")]
    UnknownNode(String),
    #[error("node {0:?} was deleted; only `heal` applies to it")]
    NodeDeleted(String),
    #[error("no pod {namespace}/{name}")]
    UnknownPod { namespace: String, name: String },
    #[error("unknown rule {0:?} (known: {known})", known = VIOLATION_RULES.join(", "))]
    UnknownRule(String),
    #[error("cannot inject {rule} into pod {namespace}/{name}: {why}")]
    CannotInject {
        namespace: String,
        name: String,
        rule: String,
        why: String,
    },
    #[error(
        "the simulation runs in real time; advancing it by hand needs a stepped clock (no --speed)"
    )]
    NotStepped,
    #[error(transparent)]
    Api(#[from] ApiError),
}
