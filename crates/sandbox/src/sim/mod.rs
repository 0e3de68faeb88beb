//! The simulated cluster behind the sandbox API server: a scheduler, one kubelet per
//! node, the node lifecycle controller with its taint manager, and PodGC, following
//! SEMANTICS.md (A2-A6, B1-B6). It turns the sandbox into a cluster where pods are
//! scheduled, run, restart, fail and get evicted as on a real one, and where node faults
//! and faulty-kubelet writes can be injected on demand, with a ground-truth log of every
//! injection.
//!
//! It also produces the legal states that look like violations (B7), so the auditor's
//! rules can be checked to stay silent on them: conditions whose lastTransitionTime
//! moves without a status change (the kubelet's status manager coalesces what it
//! computed while its node was partitioned, and writes its cached Ready over the node
//! lifecycle controller's), and pods PodGC moves to Failed writing the phase alone
//! (orphans of a deleted node; terminating pods on an `out-of-service` node), their
//! Ready and ContainersReady left as the dead kubelet wrote them. Faulty writes can
//! break every definite rule of B7 ([`VIOLATION_RULES`]).
//!
//! The simulated kubelet is an implementation of the documented behaviour independent
//! of the auditor's model (the crate does not depend on `podwarden-model`), so the two check each
//! other.
//!
//! - [`cluster`]: the components, their informer caches and timers, the step loop;
//! - [`kubelet`]: container runtime (scripts), pod status, back-off, events, injections;
//! - [`scheduler`]: filtering, scoring, binding, `Unschedulable`;
//! - [`control`]: nodes (registration, heartbeats), node lifecycle controller, taint
//!   manager, PodGC;
//! - [`driver`]: the simulation running beside the API server, its handle and the admin
//!   endpoints;
//! - [`clock`], [`rng`], [`event_sink`], [`node_faults`]: simulated time, seeded randomness,
//!   Events, node faults.

pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod driver;
pub mod error;
pub mod event_sink;
pub mod kubelet;
pub mod node_faults;
pub mod pod_meta;
pub mod rng;
pub mod scenario;
pub mod scheduler;
pub mod taints;
pub mod world;

pub use clock::SimClock;
pub use cluster::Cluster;
pub use config::{GroundTruthEntry, NodeShape, SimConfig, VIOLATION_RULES};
pub use driver::StartError;
pub use driver::{SimHandle, Simulation};
pub use error::SimError;
pub use node_faults::NodeFault;
pub use world::NodeSim;
