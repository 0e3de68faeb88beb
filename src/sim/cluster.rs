//! The simulated cluster: the components (scheduler, kubelets, node lifecycle
//! controller, taint manager, PodGC), their shared informer caches and timers, and the
//! step loop that drives them.
//!
//! Everything runs on one thread, one step at a time: drain the watches (every change
//! anyone made through the API, the components' own writes included), then fire the
//! next due timer at its simulated time, and again. The components read and write only
//! through the store's API (watch, get, bind, patch status, delete, create events), as
//! real components do through the API server.
//!
//! Bounds: the timer queue holds at most a few timers per pod and per node (components
//! replace rather than add); one step drains at most [`MAX_EVENTS_PER_DRAIN`] watch
//! events before firing timers again; informer caches hold one `Arc` per live object.

use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use crate::sandbox::object::{ObjectKey, StoredObject};
use crate::sandbox::{
    ApiError, Clock, DeleteOptions, ListOptions, ResourceType, Store, Watch, WatchEvent,
    WatchOptions, WriteOptions,
};

use super::clock::SimClock;
use super::control::{self, Control};
use super::faults::NodeFault;
use super::kubelet::{self, Kubelet};
use super::recorder::Recorder;
use super::rng::SimRng;
use super::scenario::Planned;
use super::scheduler::{self, Scheduler};
use super::{GroundTruthEntry, NodeShape, SimConfig, SimError, VIOLATION_RULES};

/// Watch events handled before timers get a turn again.
pub const MAX_EVENTS_PER_DRAIN: usize = 100_000;
/// Injections remembered in the ground-truth log (oldest dropped first).
pub const GROUND_TRUTH_LIMIT: usize = 100_000;
/// Scenario step outcomes remembered (oldest dropped first).
pub const SCENARIO_LOG_LIMIT: usize = 1_000;
/// Objects a scenario step creates between two drains of the watches (keeps the
/// components' watch queues short during a bulk create).
const CREATE_BATCH: u64 = 1_000;

/// The resource types the components use.
#[derive(Debug, Clone)]
pub struct Apis {
    pub pods: Arc<ResourceType>,
    pub nodes: Arc<ResourceType>,
    pub leases: Arc<ResourceType>,
    pub events: Arc<ResourceType>,
}

impl Apis {
    fn new(store: &Store) -> Result<Self, ApiError> {
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
    Kubelet(kubelet::Timer),
    Scheduler(scheduler::Timer),
    Control(control::Timer),
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
pub struct Shared {
    pub store: Store,
    pub apis: Apis,
    pub clock: Arc<SimClock>,
    pub rng: SimRng,
    pub recorder: Recorder,
    /// Informer cache of pods, by (namespace, name).
    pub pods: HashMap<ObjectKey, Arc<StoredObject>>,
    /// Informer cache of nodes, by name.
    pub nodes: BTreeMap<String, Arc<StoredObject>>,
    /// Fault state of every simulated node (also of deleted ones, until healed).
    pub node_sims: BTreeMap<String, NodeSim>,
    pub node_shape: NodeShape,
    timers: BinaryHeap<Due>,
    timer_seq: u64,
    ground_truth: Vec<GroundTruthEntry>,
    ground_truth_seq: u64,
}

impl Shared {
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
            subresource: crate::sandbox::Subresource::Status,
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

/// The whole simulated cluster; driven by [`Cluster::step_until`].
#[derive(Debug)]
pub struct Cluster {
    pub shared: Shared,
    pub kubelet: Kubelet,
    pub scheduler: Scheduler,
    pub control: Control,
    pod_watch: Option<Watch>,
    node_watch: Option<Watch>,
    scenario: Vec<Planned>,
    /// What the scenario's steps did, newest last (at most [`SCENARIO_LOG_LIMIT`]).
    pub scenario_log: VecDeque<String>,
    /// Relists after a watch was closed or expired (a healthy run has none).
    pub relists: u64,
    /// Watch events handled.
    pub events_handled: u64,
}

impl Cluster {
    /// A cluster on `store` (whose clock must be `clock`), with `config.nodes` nodes.
    pub fn new(store: Store, clock: Arc<SimClock>, config: &SimConfig) -> Result<Self, SimError> {
        let apis = Apis::new(&store)?;
        let recorder = Recorder::new(apis.events.clone(), jiff::SignedDuration::from_hours(1));
        let mut cluster = Cluster {
            shared: Shared {
                store,
                apis,
                clock,
                rng: SimRng::new(config.seed),
                recorder,
                pods: HashMap::new(),
                nodes: BTreeMap::new(),
                node_sims: BTreeMap::new(),
                node_shape: config.node_shape.clone(),
                timers: BinaryHeap::new(),
                timer_seq: 0,
                ground_truth: Vec::new(),
                ground_truth_seq: 0,
            },
            kubelet: Kubelet::default(),
            scheduler: Scheduler::default(),
            control: Control::default(),
            pod_watch: None,
            node_watch: None,
            scenario: Vec::new(),
            scenario_log: VecDeque::new(),
            relists: 0,
            events_handled: 0,
        };
        cluster
            .control
            .set_terminated_pod_gc_threshold(config.terminated_pod_gc_threshold);
        cluster.control.start(&mut cluster.shared);
        cluster.scheduler.start(&mut cluster.shared);
        cluster.kubelet.start(&mut cluster.shared);
        for i in 0..config.nodes {
            let name = format!("node-{i}");
            cluster.add_node(&name)?;
        }
        cluster.drain();
        Ok(cluster)
    }

    /// Adds a node of the configured shape (its kubelet registers it).
    pub fn add_node(&mut self, name: &str) -> Result<(), SimError> {
        self.shared
            .node_sims
            .insert(name.to_string(), NodeSim::default());
        self.control.register_node(&mut self.shared, name)?;
        Ok(())
    }

    /// Runs the simulation up to simulated time `until`: every watch event and every
    /// timer due by then, in time order. Returns the number of timers fired.
    pub fn step_until(&mut self, until: jiff::Timestamp) -> usize {
        let mut fired = 0;
        loop {
            self.drain();
            let due = match self.shared.timers.peek() {
                Some(d) if d.at <= until => self.shared.timers.pop(),
                _ => None,
            };
            let Some(due) = due else { break };
            self.shared.clock.advance_to(due.at);
            self.fire(due.timer);
            fired += 1;
        }
        self.shared.clock.advance_to(until);
        self.drain();
        fired
    }

    /// When the next timer is due, if any.
    pub fn next_timer_at(&self) -> Option<jiff::Timestamp> {
        self.shared.timers.peek().map(|d| d.at)
    }

    fn fire(&mut self, timer: Timer) {
        let sh = &mut self.shared;
        match timer {
            Timer::Kubelet(t) => self.kubelet.fire(sh, t),
            Timer::Scheduler(t) => self.scheduler.fire(sh, t),
            Timer::Control(t) => self.control.fire(sh, t),
            Timer::Scenario(n) => self.play_step(n),
        }
    }

    /// Handles every change that is waiting on the pod and node watches.
    pub fn drain(&mut self) {
        for _ in 0..MAX_EVENTS_PER_DRAIN {
            let node = self.next_change(Kind::Node);
            if let Some(change) = node {
                self.dispatch(Kind::Node, change);
                continue;
            }
            match self.next_change(Kind::Pod) {
                Some(change) => self.dispatch(Kind::Pod, change),
                None => return,
            }
        }
    }

    fn dispatch(&mut self, kind: Kind, change: Change) {
        self.events_handled += 1;
        let sh = &mut self.shared;
        match kind {
            Kind::Pod => {
                self.scheduler.on_pod(sh, &change);
                self.kubelet.on_pod(sh, &change);
                self.control.on_pod(sh, &change);
            }
            Kind::Node => {
                self.scheduler.on_node(sh, &change);
                self.kubelet.on_node(sh, &change);
                self.control.on_node(sh, &change);
            }
        }
    }

    /// The next change of one kind, updating its informer cache; reopens a closed
    /// watch, relisting when the history no longer reaches back.
    fn next_change(&mut self, kind: Kind) -> Option<Change> {
        loop {
            let (watch, rt) = match kind {
                Kind::Pod => (&mut self.pod_watch, self.shared.apis.pods.clone()),
                Kind::Node => (&mut self.node_watch, self.shared.apis.nodes.clone()),
            };
            let Some(w) = watch.as_mut() else {
                self.open_watch(kind, &rt);
                continue;
            };
            if let Some(ev) = w.try_next() {
                if let Some(change) = self.cache(kind, ev) {
                    return Some(change);
                }
                continue;
            }
            if w.is_closed() {
                let from = w.last_resource_version();
                *watch = None;
                self.reopen(kind, &rt, from);
                continue;
            }
            return None;
        }
    }

    fn open_watch(&mut self, kind: Kind, rt: &ResourceType) {
        // From "now" after a full list: the list fills the cache as ADDED changes.
        let opts = WatchOptions {
            resource_version: Some("0".into()),
            ..Default::default()
        };
        let watch = self.shared.store.watch(rt, None, &opts).ok();
        match kind {
            Kind::Pod => self.pod_watch = watch,
            Kind::Node => self.node_watch = watch,
        }
    }

    /// Resumes after the store closed a watch: from its last version if the history
    /// still has it, else a relist that turns the difference into changes.
    fn reopen(&mut self, kind: Kind, rt: &ResourceType, from: u64) {
        let opts = WatchOptions {
            resource_version: Some(from.to_string()),
            ..Default::default()
        };
        if let Ok(w) = self.shared.store.watch(rt, None, &opts) {
            match kind {
                Kind::Pod => self.pod_watch = Some(w),
                Kind::Node => self.node_watch = Some(w),
            }
            return;
        }
        self.relists += 1;
        let Ok(page) = self.shared.store.list(rt, None, &ListOptions::default()) else {
            return;
        };
        let live: std::collections::HashSet<ObjectKey> =
            page.items.iter().map(|o| o.key()).collect();
        let gone: Vec<Arc<StoredObject>> = match kind {
            Kind::Pod => self
                .shared
                .pods
                .iter()
                .filter(|(k, _)| !live.contains(*k))
                .map(|(_, o)| o.clone())
                .collect(),
            Kind::Node => self
                .shared
                .nodes
                .values()
                .filter(|o| !live.contains(&o.key()))
                .cloned()
                .collect(),
        };
        for object in gone {
            if let Some(change) = self.cache(kind, WatchEvent::Deleted(object)) {
                self.dispatch(kind, change);
            }
        }
        for object in page.items {
            if let Some(change) = self.cache(kind, WatchEvent::Modified(object)) {
                self.dispatch(kind, change);
            }
        }
        let opts = WatchOptions {
            resource_version: Some(page.resource_version.to_string()),
            ..Default::default()
        };
        let watch = self.shared.store.watch(rt, None, &opts).ok();
        match kind {
            Kind::Pod => self.pod_watch = watch,
            Kind::Node => self.node_watch = watch,
        }
    }

    fn cache(&mut self, kind: Kind, ev: WatchEvent) -> Option<Change> {
        let (change_kind, object) = match ev {
            WatchEvent::Added(o) => (ChangeKind::Added, o),
            WatchEvent::Modified(o) => (ChangeKind::Modified, o),
            WatchEvent::Deleted(o) => (ChangeKind::Deleted, o),
            WatchEvent::Bookmark { .. } => return None,
        };
        let previous = match (kind, change_kind) {
            (Kind::Pod, ChangeKind::Deleted) => self.shared.pods.remove(&object.key()),
            (Kind::Pod, _) => self.shared.pods.insert(object.key(), object.clone()),
            (Kind::Node, ChangeKind::Deleted) => self.shared.nodes.remove(&object.name),
            (Kind::Node, _) => self
                .shared
                .nodes
                .insert(object.name.clone(), object.clone()),
        };
        if let Some(p) = &previous
            && p.resource_version == object.resource_version
            && change_kind != ChangeKind::Deleted
        {
            return None; // a relist re-delivering what the cache has
        }
        let kind = match (change_kind, &previous) {
            (ChangeKind::Deleted, _) => ChangeKind::Deleted,
            (_, None) => ChangeKind::Added,
            (_, Some(_)) => ChangeKind::Modified,
        };
        Some(Change {
            kind,
            object,
            previous,
        })
    }

    // ---- faults and injections ---------------------------------------------

    /// Applies a node fault (see [`NodeFault`]).
    pub fn apply_fault(&mut self, node: &str, fault: NodeFault) -> Result<NodeSim, SimError> {
        let Some(sim) = self.shared.node_sims.get_mut(node) else {
            return Err(SimError::UnknownNode(node.to_string()));
        };
        if sim.deleted && fault != NodeFault::Heal {
            return Err(SimError::NodeDeleted(node.to_string()));
        }
        match fault {
            NodeFault::Partition => sim.partitioned = true,
            NodeFault::DiskFailure => sim.disk_failed = true,
            NodeFault::MemoryPressure => sim.memory_pressure = true,
            NodeFault::Shutdown => sim.shut_down = true,
            NodeFault::Delete => sim.deleted = true,
            NodeFault::OutOfService => sim.out_of_service = true,
            NodeFault::Heal => *sim = NodeSim::default(),
        }
        let state = sim.clone();
        self.drain();
        // The kubelet acts first (it kills or evicts), then the control plane reacts.
        self.kubelet.fault(&mut self.shared, node, fault);
        self.control.fault(&mut self.shared, node, fault)?;
        self.drain();
        Ok(state)
    }

    /// Makes the kubelet of the pod's node write one status that breaks `rule`, and
    /// logs the injection in the ground truth.
    pub fn inject(
        &mut self,
        namespace: &str,
        name: &str,
        rule: &str,
    ) -> Result<GroundTruthEntry, SimError> {
        if !VIOLATION_RULES.contains(&rule) {
            return Err(SimError::UnknownRule(rule.to_string()));
        }
        self.drain();
        let key = (namespace.to_string(), name.to_string());
        let Some(pod) = self.shared.pods.get(&key).cloned() else {
            return Err(SimError::UnknownPod {
                namespace: namespace.into(),
                name: name.into(),
            });
        };
        self.kubelet.inject(&mut self.shared, &pod, rule)?;
        self.shared.ground_truth_seq += 1;
        let entry = GroundTruthEntry {
            sequence: self.shared.ground_truth_seq,
            time: crate::sandbox::object::format_micro_time(self.shared.now()),
            namespace: namespace.to_string(),
            pod: name.to_string(),
            uid: pod.uid.clone(),
            rule: rule.to_string(),
        };
        if self.shared.ground_truth.len() >= GROUND_TRUTH_LIMIT {
            self.shared.ground_truth.remove(0);
        }
        self.shared.ground_truth.push(entry.clone());
        self.drain();
        Ok(entry)
    }

    // ---- scenarios -----------------------------------------------------------

    /// Plays `steps`, each at its time after now (simulated).
    pub fn play(&mut self, steps: Vec<Planned>) {
        let start = self.shared.now();
        let first = self.scenario.len();
        for (i, step) in steps.iter().enumerate() {
            let at = start.saturating_add(step.at).unwrap_or(start);
            self.shared.schedule(at, Timer::Scenario(first + i));
        }
        self.scenario.extend(steps);
    }

    fn play_step(&mut self, n: usize) {
        let Some(planned) = self.scenario.get(n).cloned() else {
            return;
        };
        let step = &planned.step;
        let outcome = if !step.create.is_empty() {
            self.scenario_create(&step.create, step.count)
        } else if let Some(f) = &step.fault {
            self.apply_fault(&f.node, f.fault)
                .map(|_| format!("{} on node {}", f.fault, f.node))
                .map_err(|e| e.to_string())
        } else if let Some(i) = &step.inject {
            self.inject(&i.namespace, &i.pod, &i.rule)
                .map(|e| format!("injected {} into {}/{}", e.rule, e.namespace, e.pod))
                .map_err(|e| e.to_string())
        } else if let Some(d) = &step.delete {
            self.scenario_delete(d)
        } else {
            Ok("nothing to do".into())
        };
        let line = match outcome {
            Ok(done) => {
                tracing::info!(step = n, "scenario: {done}");
                format!("step {n} at {}: {done}", planned.step.at)
            }
            Err(why) => {
                tracing::warn!(step = n, "scenario step failed: {why}");
                format!("step {n} at {}: failed: {why}", planned.step.at)
            }
        };
        if self.scenario_log.len() >= SCENARIO_LOG_LIMIT {
            self.scenario_log.pop_front();
        }
        self.scenario_log.push_back(line);
    }

    fn scenario_create(
        &mut self,
        objects: &[serde_json::Value],
        count: Option<u64>,
    ) -> Result<String, String> {
        let opts = WriteOptions {
            field_manager: Some("podwarden-scenario".into()),
            ..Default::default()
        };
        let (mut created, mut attempted) = (0u64, 0u64);
        let mut failures = Vec::new();
        for object in objects {
            let text = |f: &str| {
                object
                    .get(f)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
            };
            let Some(rt) = self
                .shared
                .store
                .registry()
                .find_kind(text("apiVersion"), text("kind"))
            else {
                failures.push(format!(
                    "the server does not serve {} {}",
                    text("apiVersion"),
                    text("kind")
                ));
                continue;
            };
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("default")
                .to_string();
            let namespace = rt.namespaced.then_some(namespace.as_str());
            for copy in 0..count.unwrap_or(1) {
                let mut object = object.clone();
                if count.is_some()
                    && let Some(name) = object.pointer_mut("/metadata/name")
                    && let Some(base) = name.as_str()
                {
                    *name = serde_json::json!(format!("{base}-{copy}"));
                }
                match self.shared.store.create(&rt, namespace, object, &opts) {
                    Ok(_) => created += 1,
                    Err(e) if failures.len() < 5 => failures.push(e.to_string()),
                    Err(_) => {}
                }
                attempted += 1;
                if attempted.is_multiple_of(CREATE_BATCH) {
                    self.drain();
                }
            }
        }
        match failures.is_empty() {
            true => Ok(format!("created {created} objects")),
            false => Err(format!(
                "created {created} objects; failures: {}",
                failures.join("; ")
            )),
        }
    }

    fn scenario_delete(&mut self, d: &super::scenario::DeleteStep) -> Result<String, String> {
        let rt = self
            .shared
            .store
            .registry()
            .find_kind(&d.api_version, &d.kind)
            .ok_or_else(|| format!("the server does not serve {} {}", d.api_version, d.kind))?;
        let namespace = rt
            .namespaced
            .then(|| d.namespace.as_deref().unwrap_or("default"));
        self.shared
            .store
            .delete(&rt, namespace, &d.name, &DeleteOptions::default())
            .map(|_| format!("deleted {} {}", d.kind, d.name))
            .map_err(|e| e.to_string())
    }

    /// The injections so far, oldest first.
    pub fn ground_truth(&self) -> &[GroundTruthEntry] {
        &self.shared.ground_truth
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pod,
    Node,
}
