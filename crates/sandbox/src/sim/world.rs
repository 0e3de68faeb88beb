//! What every component of the simulated cluster shares: the API, the clock,
//! randomness, the event sink, the informer caches, the node fault flags, and the one
//! timer queue with every component's timer kinds. A leaf: it knows the components'
//! timers, not the components.
//!
//! Bounds: the timer queue holds at most a few timers per pod and per node (components
//! replace rather than add); informer caches hold one `Arc` per live object.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use crate::api::object::{ObjectKey, StoredObject};
use crate::api::{ApiError, Clock, ResourceType, Store, WriteOptions};

use super::clock::SimClock;
use super::config::NodeShape;
use super::event_sink::EventSink;
use super::rng::SimRng;

/// The resource types the components use.
#[derive(Debug, Clone)]
pub struct Apis {
    pub pods: Arc<ResourceType>,
    pub nodes: Arc<ResourceType>,
    pub leases: Arc<ResourceType>,
    pub events: Arc<ResourceType>,
}

impl Apis {
    pub fn new(store: &Store) -> Result<Self, ApiError> {
        Ok(Apis {
            pods: store.resource("", "v1", "pods")?,
            nodes: store.resource("", "v1", "nodes")?,
            leases: store.resource("coordination.k8s.io", "v1", "leases")?,
            events: store.resource("", "v1", "events")?,
        })
    }
}

/// What is wrong with a node right now (set by faults, cleared by `heal`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSim {
    /// Heartbeats and kubelet status writes do not reach the API server; containers
    /// keep running.
    pub partitioned: bool,
    /// The machine is off: nothing runs, nothing is written.
    pub shut_down: bool,
    /// The Node object was deleted; its kubelet is gone.
    pub deleted: bool,
    pub disk_failed: bool,
    pub memory_pressure: bool,
    pub out_of_service: bool,
}

impl NodeSim {
    /// Whether this node's kubelet can write to the API server.
    pub fn reachable(&self) -> bool {
        !(self.partitioned || self.shut_down || self.deleted)
    }
}

/// A change seen through a watch, with the cached state before it.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeKind,
    pub object: Arc<StoredObject>,
    /// The informer's previous copy (none for an add).
    pub previous: Option<Arc<StoredObject>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// A timer of one component; components check on firing that it still applies.
#[derive(Debug, Clone)]
pub enum Timer {
    Kubelet(KubeletTimer),
    Scheduler(SchedulerTimer),
    Control(ControlTimer),
    /// Step `n` of the scenario being played.
    Scenario(usize),
}

#[derive(Debug)]
struct Due {
    at: jiff::Timestamp,
    seq: u64,
    timer: Timer,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed: the binary heap pops the earliest (then the first scheduled).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What every component may use: the API, the clock, randomness, timers, the event
/// recorder, the informer caches and the node fault flags.
#[derive(Debug)]
pub struct World {
    pub store: Store,
    pub apis: Apis,
    pub clock: Arc<SimClock>,
    pub rng: SimRng,
    pub events: EventSink,
    /// Informer cache of pods, by (namespace, name).
    pub pods: HashMap<ObjectKey, Arc<StoredObject>>,
    /// Informer cache of nodes, by name.
    pub nodes: BTreeMap<String, Arc<StoredObject>>,
    /// Fault state of every simulated node (also of deleted ones, until healed).
    pub node_sims: BTreeMap<String, NodeSim>,
    pub node_shape: NodeShape,
    timers: BinaryHeap<Due>,
    timer_seq: u64,
}

impl World {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        apis: Apis,
        clock: Arc<SimClock>,
        rng: SimRng,
        events: EventSink,
        node_shape: NodeShape,
    ) -> Self {
        World {
            store,
            apis,
            clock,
            rng,
            events,
            pods: HashMap::new(),
            nodes: BTreeMap::new(),
            node_sims: BTreeMap::new(),
            node_shape,
            timers: BinaryHeap::new(),
            timer_seq: 0,
        }
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// Runs `timer` at simulated time `at` (at once if `at` is past).
    pub fn schedule(&mut self, at: jiff::Timestamp, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Due {
            at,
            seq: self.timer_seq,
            timer,
        });
    }

    /// Runs `timer` after `after` of simulated time.
    pub fn schedule_in(&mut self, after: jiff::SignedDuration, timer: Timer) {
        let at = self.now().saturating_add(after).unwrap_or(self.now());
        self.schedule(at, timer);
    }

    /// Timers waiting.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// When the next timer is due, if any.
    pub fn next_due(&self) -> Option<jiff::Timestamp> {
        self.timers.peek().map(|d| d.at)
    }

    /// The earliest timer due by `until` (then the first scheduled), taken off the queue.
    pub fn pop_due(&mut self, until: jiff::Timestamp) -> Option<(jiff::Timestamp, Timer)> {
        match self.timers.peek() {
            Some(d) if d.at <= until => self.timers.pop().map(|d| (d.at, d.timer)),
            _ => None,
        }
    }

    /// Read-modify-write of one pod's status (as `manager`), only while the pod at
    /// `key` still has `uid`: `edit` changes the pod as JSON.
    pub fn update_pod_status(
        &self,
        key: &ObjectKey,
        uid: &str,
        manager: &str,
        mut edit: impl FnMut(&mut serde_json::Value),
    ) -> Result<Arc<StoredObject>, ApiError> {
        let opts = WriteOptions {
            subresource: crate::api::Subresource::Status,
            field_manager: Some(manager.into()),
            ..Default::default()
        };
        // The status view: these writes read and change nothing but status.
        self.store.update_status_view(
            &self.apis.pods,
            Some(&key.0),
            &key.1,
            &opts,
            |current, pod| {
                if current.uid != uid {
                    return Err(ApiError::conflict("pods", "", &key.1));
                }
                edit(pod);
                Ok(())
            },
        )
    }

    pub fn node_sim(&self, node: &str) -> NodeSim {
        self.node_sims.get(node).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
/// The kubelet's timers.
pub enum KubeletTimer {
    /// Wake pod `id` (ignored unless `generation` is still its generation).
    Wake { id: u64, generation: u64 },
}

#[derive(Debug, Clone)]
/// The scheduler's timers.
pub enum SchedulerTimer {
    /// Try the pods of the active queue.
    Cycle,
    /// A pod's back-off is over (`attempts` tells a stale timer from the current one).
    Retry { key: ObjectKey, attempts: u32 },
    /// Periodic safety net: parked pods are tried again.
    Flush,
}

#[derive(Debug, Clone)]
/// The control plane's timers (node heartbeats, node lifecycle, taint manager, PodGC).
pub enum ControlTimer {
    /// A node's kubelet renews its lease (and reports status when due).
    Heartbeat { node: String, epoch: u64 },
    /// The node lifecycle controller's pass over the leases.
    Monitor,
    /// A taint-manager deletion is due.
    Evict { key: ObjectKey, seq: u64 },
    /// A PodGC pass.
    PodGc,
}
