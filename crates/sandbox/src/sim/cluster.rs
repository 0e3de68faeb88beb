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
//! Bounds: one step drains at most [`MAX_EVENTS_PER_DRAIN`] watch events before firing
//! timers again; the timer queue and the caches are bounded as [`super::world`] says.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::api::object::{ObjectKey, StoredObject};
use crate::api::{
    DeleteOptions, ListOptions, ResourceType, Store, Watch, WatchEvent, WatchOptions, WriteOptions,
};

use super::clock::SimClock;
use super::config::{GroundTruthEntry, SimConfig, VIOLATION_RULES};
use super::control::Control;
use super::error::{SimError, StepError};
use super::event_sink::EventSink;
use super::kubelet::Kubelet;
use super::node_faults::NodeFault;
use super::rng::SimRng;
use super::scenario::Planned;
use super::scheduler::Scheduler;
use super::world::{Apis, Change, ChangeKind, NodeSim, Timer, World};

/// Watch events handled before timers get a turn again.
pub const MAX_EVENTS_PER_DRAIN: usize = 100_000;
/// Injections remembered in the ground-truth log (oldest dropped first).
pub const GROUND_TRUTH_LIMIT: usize = 100_000;
/// Scenario step outcomes remembered (oldest dropped first).
pub const SCENARIO_LOG_LIMIT: usize = 1_000;
/// Objects a scenario step creates between two drains of the watches (keeps the
/// components' watch queues short during a bulk create).
const CREATE_BATCH: u64 = 1_000;

/// The whole simulated cluster; driven by [`Cluster::step_until`].
#[derive(Debug)]
pub struct Cluster {
    pub world: World,
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
    /// The injections so far, oldest first (at most [`GROUND_TRUTH_LIMIT`]).
    ground_truth: VecDeque<GroundTruthEntry>,
    ground_truth_seq: u64,
}

impl Cluster {
    /// A cluster on `store` (whose clock must be `clock`), with `config.nodes` nodes.
    pub fn new(store: Store, clock: Arc<SimClock>, config: &SimConfig) -> Result<Self, SimError> {
        let apis = Apis::new(&store)?;
        let events = EventSink::new(apis.events.clone(), jiff::SignedDuration::from_hours(1));
        let mut cluster = Cluster {
            world: World::new(
                store,
                apis,
                clock,
                SimRng::new(config.seed),
                events,
                config.node_shape.clone(),
            ),
            ground_truth: VecDeque::new(),
            ground_truth_seq: 0,
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
        cluster.control.start(&mut cluster.world);
        cluster.scheduler.start(&mut cluster.world);
        cluster.kubelet.start(&mut cluster.world);
        for i in 0..config.nodes {
            let name = format!("node-{i}");
            cluster.add_node(&name)?;
        }
        cluster.drain();
        Ok(cluster)
    }

    /// Adds a node of the configured shape (its kubelet registers it).
    pub fn add_node(&mut self, name: &str) -> Result<(), SimError> {
        self.world
            .node_sims
            .insert(name.to_string(), NodeSim::default());
        self.control.register_node(&mut self.world, name)?;
        Ok(())
    }

    /// Runs the simulation up to simulated time `until`: every watch event and every
    /// timer due by then, in time order. Returns the number of timers fired.
    pub fn step_until(&mut self, until: jiff::Timestamp) -> usize {
        let mut fired = 0;
        loop {
            self.drain();
            let Some((at, timer)) = self.world.pop_due(until) else {
                break;
            };
            self.world.clock.advance_to(at);
            self.fire(timer);
            fired += 1;
        }
        self.world.clock.advance_to(until);
        self.drain();
        fired
    }

    /// When the next timer is due, if any.
    pub fn next_timer_at(&self) -> Option<jiff::Timestamp> {
        self.world.next_due()
    }

    fn fire(&mut self, timer: Timer) {
        let sh = &mut self.world;
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
        let sh = &mut self.world;
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
                Kind::Pod => (&mut self.pod_watch, self.world.apis.pods.clone()),
                Kind::Node => (&mut self.node_watch, self.world.apis.nodes.clone()),
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
        let watch = self.world.store.watch(rt, None, &opts).ok();
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
        if let Ok(w) = self.world.store.watch(rt, None, &opts) {
            match kind {
                Kind::Pod => self.pod_watch = Some(w),
                Kind::Node => self.node_watch = Some(w),
            }
            return;
        }
        self.relists += 1;
        let Ok(page) = self.world.store.list(rt, None, &ListOptions::default()) else {
            return;
        };
        let live: std::collections::HashSet<ObjectKey> =
            page.items.iter().map(|o| o.key()).collect();
        let gone: Vec<Arc<StoredObject>> = match kind {
            Kind::Pod => self
                .world
                .pods
                .iter()
                .filter(|(k, _)| !live.contains(*k))
                .map(|(_, o)| o.clone())
                .collect(),
            Kind::Node => self
                .world
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
        let watch = self.world.store.watch(rt, None, &opts).ok();
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
            (Kind::Pod, ChangeKind::Deleted) => self.world.pods.remove(&object.key()),
            (Kind::Pod, _) => self.world.pods.insert(object.key(), object.clone()),
            (Kind::Node, ChangeKind::Deleted) => self.world.nodes.remove(&object.name),
            (Kind::Node, _) => self.world.nodes.insert(object.name.clone(), object.clone()),
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
        let Some(sim) = self.world.node_sims.get_mut(node) else {
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
        self.kubelet.fault(&mut self.world, node, fault);
        self.control.fault(&mut self.world, node, fault)?;
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
        let Some(pod) = self.world.pods.get(&key).cloned() else {
            return Err(SimError::UnknownPod {
                namespace: namespace.into(),
                name: name.into(),
            });
        };
        self.kubelet.inject(&mut self.world, &pod, rule)?;
        self.ground_truth_seq += 1;
        let entry = GroundTruthEntry {
            sequence: self.ground_truth_seq,
            time: crate::api::object::format_micro_time(self.world.now()),
            namespace: namespace.to_string(),
            pod: name.to_string(),
            uid: pod.uid.clone(),
            rule: rule.to_string(),
        };
        if self.ground_truth.len() >= GROUND_TRUTH_LIMIT {
            self.ground_truth.pop_front();
        }
        self.ground_truth.push_back(entry.clone());
        self.drain();
        Ok(entry)
    }

    // ---- scenarios -----------------------------------------------------------

    /// Plays `steps`, each at its time after now (simulated).
    pub fn play(&mut self, steps: Vec<Planned>) {
        let start = self.world.now();
        let first = self.scenario.len();
        for (i, step) in steps.iter().enumerate() {
            let at = start.saturating_add(step.at).unwrap_or(start);
            self.world.schedule(at, Timer::Scenario(first + i));
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
                .map_err(StepError::from)
        } else if let Some(i) = &step.inject {
            self.inject(&i.namespace, &i.pod, &i.rule)
                .map(|e| format!("injected {} into {}/{}", e.rule, e.namespace, e.pod))
                .map_err(StepError::from)
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
    ) -> Result<String, StepError> {
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
                .world
                .store
                .registry()
                .find_kind(text("apiVersion"), text("kind"))
            else {
                let not_served = StepError::NotServed {
                    api_version: text("apiVersion").to_string(),
                    kind: text("kind").to_string(),
                };
                failures.push(not_served.to_string());
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
                match self.world.store.create(&rt, namespace, object, &opts) {
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
            false => Err(StepError::Create { created, failures }),
        }
    }

    fn scenario_delete(&mut self, d: &super::scenario::DeleteStep) -> Result<String, StepError> {
        let rt = self
            .world
            .store
            .registry()
            .find_kind(&d.api_version, &d.kind)
            .ok_or_else(|| StepError::NotServed {
                api_version: d.api_version.clone(),
                kind: d.kind.clone(),
            })?;
        let namespace = rt
            .namespaced
            .then(|| d.namespace.as_deref().unwrap_or("default"));
        self.world
            .store
            .delete(&rt, namespace, &d.name, &DeleteOptions::default())
            .map(|_| format!("deleted {} {}", d.kind, d.name))
            .map_err(StepError::from)
    }

    /// The injections so far, oldest first.
    pub fn ground_truth(&self) -> impl ExactSizeIterator<Item = &GroundTruthEntry> {
        self.ground_truth.iter()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pod,
    Node,
}
