//! The live controller (`podwarden run`): it watches pods and PodLifecyclePolicies
//! through `kube::Client`, audits every pod transition a policy selects, records
//! findings as Events, keeps each policy's status, and serves metrics and probes.
//!
//! Tasks, each with its bound:
//! - the policy watcher (kube-runtime's watcher, default back-off);
//! - the pod watcher ([`pods`]): list + watch into the compact view;
//! - the node watcher ([`nodes`]): each node's facts, for orphan recreation;
//! - the audit loop: the only owner of the [`engine::Engine`] and of the
//!   [`orphans::OrphanBook`]; policies first (pods wait until the policies are listed),
//!   then every pod event in order;
//! - the Event writer ([`events`]), the status writer ([`status`]) and the replacement
//!   writer ([`recreate`]), each writing only while this replica leads;
//! - the HTTP server: `/metrics`, `/healthz` (fails when a task has died), `/readyz`
//!   (ready after the first full sync of policies and pods).

pub mod cli;
pub mod engine;
pub mod events;
mod fnv;
pub mod guard;
pub mod leader;
pub mod metrics;
pub mod nodes;
pub mod orphans;
mod pace;
pub mod pods;
pub mod recreate;
pub mod release;
pub mod scope;
pub mod shard;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use podwarden_model::orphans as orphans_model;
use podwarden_model::policy::PodLifecyclePolicy;
use podwarden_model::view::{ConditionType, RestartPolicy};
use podwarden_model::{Finding, Phase, PodView, RuleId, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use engine::{Engine, PodChange, PolicyKey};
use events::{EventQueue, Notice};
use metrics::{FindingLabels, Metrics, ReasonLabels};
use nodes::{NodeCache, NodeEvent};
use orphans::{Action, OrphanBook, OrphanPolicy, Outcome, Plan, Written};
use pods::{PodEvent, Received};
use recreate::CreateQueue;
use status::StatusBoard;

/// How often the deadline rules (stuck Pending, stuck Terminating) are checked between
/// events; each check pops only the deadlines that passed.
pub const DEADLINE_INTERVAL: Duration = Duration::from_secs(1);
/// How often changed policy statuses are handed to the writer.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// Policy events waiting for the audit loop.
const POLICY_CHANNEL: usize = 256;

#[derive(Debug, Clone)]
pub struct Options {
    /// Event writes per second, in total.
    pub event_qps: f64,
    /// Where to serve `/metrics`, `/healthz`, `/readyz` (`None`: not served).
    pub http_addr: Option<SocketAddr>,
    /// `reportingInstance` of the Events.
    pub instance: String,
    /// Elect a leader on this Lease; only the holder writes. `None`: this replica is
    /// the only one and always writes.
    pub leader_election: Option<leader::LeaseConfig>,
    /// Record what orphan recreation would do, for every policy, and write no pod.
    pub dry_run: bool,
    /// Replacement pods created per second, at most.
    pub create_qps: f64,
    /// Orphan-guard finalizers added or released per second, at most.
    pub guard_qps: f64,
    /// Audit only the pods of this shard (`--shard i/n`); its replicas elect their leader
    /// on a Lease of their own (the leader election's name with `-shard-i-of-n`).
    pub shard: Option<shard::Shard>,
    /// The namespaces whose pods and policies are read (`--namespace`); nodes are read
    /// cluster-wide whatever it says.
    pub scope: scope::Scope,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            event_qps: 5.0,
            http_addr: None,
            instance: "podwarden".into(),
            leader_election: None,
            dry_run: false,
            create_qps: 5.0,
            guard_qps: 20.0,
            shard: None,
            scope: scope::Scope::Cluster,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the PodLifecyclePolicy CRD is not installed in this cluster ({0}); install it with `kubectl apply -f crds/`"
    )]
    CrdMissing(String),
    #[error("cannot reach the cluster: {0}")]
    Unreachable(#[source] kube::Error),
    #[error("cannot serve {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the audit loop publishes for probes and tests.
#[derive(Debug, Default)]
pub struct Health {
    pub ready: AtomicBool,
    pub task_died: AtomicBool,
}

/// A running controller; dropping it stops every task.
#[derive(Debug)]
pub struct Handle {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Where the HTTP server listens, when it was asked for.
    pub http_addr: Option<SocketAddr>,
    ready: watch::Receiver<bool>,
    /// The first task that ended (tasks end only on failure).
    died: watch::Receiver<Option<&'static str>>,
    /// Tells the supervisor to stop every task and wait for them.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The Lease to release on a clean stop.
    lease: Option<(
        Api<k8s_openapi::api::coordination::v1::Lease>,
        leader::LeaseConfig,
    )>,
    /// Whether this replica may write now.
    pub leadership: leader::Leadership,
    queue: Arc<EventQueue>,
    creates: Arc<CreateQueue>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

impl Handle {
    /// Waits until policies and pods have been listed once.
    pub async fn ready(&mut self) {
        let _ = self.ready.wait_for(|r| *r).await;
    }

    /// Stops every task and waits until they have stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.supervisor).await;
        if let Some((api, config)) = &self.lease {
            leader::Elector::release(api, config).await;
        }
    }

    /// Events found and not written yet (rate limit, or a standby's).
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    /// Replacements planned and not created yet (rate limit, or a standby's).
    pub fn pending_creates(&self) -> usize {
        self.creates.len()
    }

    /// Waits until a task ends (which it only does on failure); returns its name.
    pub async fn died(&mut self) -> &'static str {
        match self.died.wait_for(Option::is_some).await {
            Ok(name) => name.unwrap_or("a task"),
            Err(_) => "the supervisor",
        }
    }
}

/// Checks the cluster and the CRD, then starts every task.
pub async fn start(client: Client, options: Options) -> Result<Handle, StartError> {
    check_crd(&client, &options.scope).await?;
    let metrics = Arc::new(Metrics::for_shard(options.shard));
    let health = Arc::new(Health::default());
    let queue = Arc::new(EventQueue::default());
    let events_queue = queue.clone();
    let board = Arc::new(StatusBoard::default());
    let (ready_tx, ready_rx) = watch::channel(false);
    let (pod_tx, pod_rx) = mpsc::channel(pods::CHANNEL_CAPACITY);
    let (policy_tx, policy_rx) = mpsc::channel(POLICY_CHANNEL);
    let (relist_tx, relist_rx) = watch::channel(0u64);
    let (node_tx, node_rx) = mpsc::channel(nodes::CHANNEL_CAPACITY);
    let (outcome_tx, outcome_rx) = mpsc::channel(recreate::OUTCOME_CHANNEL);
    let creates = Arc::new(CreateQueue::default());
    let (check_tx, check_rx) = mpsc::channel(nodes::CHANNEL_CAPACITY);
    let guards = Arc::new(guard::Guards::default());
    let mut tasks = JoinSet::new();
    let lease_config = options.leader_election.clone().map(|mut config| {
        if let Some(shard) = options.shard {
            config.name = shard.lease_name(&config.name);
        }
        config
    });
    let (leadership, lease) = match lease_config {
        Some(config) => {
            let (elector, leadership) = leader::Elector::new(client.clone(), config.clone());
            let api = elector.api();
            let metrics = metrics.clone();
            tasks.spawn(async move {
                elector
                    .run(|leader| {
                        metrics.leader.set(i64::from(leader));
                    })
                    .await;
                "leader elector"
            });
            (leadership, Some((api, config)))
        }
        None => {
            metrics.leader.set(1);
            (leader::Leadership::sole(), None)
        }
    };

    let http_addr = match options.http_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?;
            let local = listener.local_addr().ok();
            let app = http_router(metrics.clone(), health.clone());
            tasks.spawn(async move {
                let _ = axum::serve(listener, app).await;
                "http server"
            });
            local
        }
        None => None,
    };
    {
        let (client, scope) = (client.clone(), options.scope.clone());
        tasks.spawn(async move {
            watch_policies(client, scope, policy_tx).await;
            "policy watcher"
        });
    }
    {
        let (client, metrics, shard) = (client.clone(), metrics.clone(), options.shard);
        let scope = options.scope.clone();
        tasks.spawn(async move {
            pods::run(client, pod_tx, metrics, relist_rx, shard, scope).await;
            "pod watcher"
        });
    }
    {
        let client = client.clone();
        tasks.spawn(async move {
            nodes::watch(client, node_tx).await;
            "node watcher"
        });
    }
    {
        let (client, creates, leadership) = (client.clone(), creates.clone(), leadership.clone());
        let qps = options.create_qps;
        tasks.spawn(async move {
            recreate::write_loop(client, creates, outcome_tx, qps, leadership).await;
            "replacement writer"
        });
    }
    {
        let (client, guards, metrics) = (client.clone(), guards.clone(), metrics.clone());
        let (qps, leadership) = (options.guard_qps, leadership.clone());
        tasks.spawn(async move {
            guard::write_loop(client, guards, metrics, qps, leadership).await;
            "guard writer"
        });
    }
    {
        let (client, queue, metrics) = (client.clone(), queue.clone(), metrics.clone());
        let (qps, instance) = (options.event_qps, options.instance.clone());
        let leadership = leadership.clone();
        tasks.spawn(async move {
            events::write_loop(client, queue, metrics, qps, instance, leadership).await;
            "event writer"
        });
    }
    {
        let (client, board, metrics) = (client.clone(), board.clone(), metrics.clone());
        let leadership = leadership.clone();
        tasks.spawn(async move {
            status::write_loop(client, board, metrics, leadership).await;
            "status writer"
        });
    }
    let scope_units: Vec<Option<String>> = options
        .scope
        .units()
        .into_iter()
        .map(|u| u.map(str::to_string))
        .collect();
    let mut engine = Engine::for_shard(options.shard);
    engine.remember_recorded(recorded_states(&client, &options.scope).await);
    {
        let audit = AuditLoop {
            engine,
            metrics: metrics.clone(),
            health: health.clone(),
            queue,
            board,
            ready_since: HashMap::new(),
            relist: relist_tx,
            ready: ready_tx,
            clock: None,
            book: OrphanBook::default(),
            nodes: NodeCache::default(),
            creates: creates.clone(),
            dry_run: options.dry_run,
            pods_synced: false,
            guards,
            leadership: leadership.clone(),
            shard: options.shard,
            client: client.clone(),
            checking: HashSet::new(),
            checks: check_tx,
        };
        tasks.spawn(async move {
            audit
                .run(
                    scope_units,
                    policy_rx,
                    pod_rx,
                    node_rx,
                    outcome_rx,
                    check_rx,
                )
                .await;
            "audit loop"
        });
    }
    let (died_tx, died_rx) = watch::channel(None);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let supervisor = {
        let health = health.clone();
        tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every task.
            let ended = tokio::select! {
                ended = tasks.join_next() => ended,
                _ = &mut stop_rx => {
                    tasks.shutdown().await;
                    return;
                }
            };
            let name = match ended {
                Some(Ok(name)) => name,
                Some(Err(_)) => "a task that panicked",
                None => return,
            };
            tracing::error!(task = name, "a background task ended; /healthz now fails");
            health.task_died.store(true, Ordering::Relaxed);
            let _ = died_tx.send(Some(name));
            while tasks.join_next().await.is_some() {}
        })
    };
    Ok(Handle {
        metrics,
        health,
        http_addr,
        ready: ready_rx,
        died: died_rx,
        stop: Some(stop_tx),
        lease,
        leadership,
        queue: events_queue,
        creates,
        supervisor,
    })
}

async fn check_crd(client: &Client, scope: &scope::Scope) -> Result<(), StartError> {
    for (_, api) in scope.apis::<PodLifecyclePolicy>(client) {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(StartError::CrdMissing(s.message));
            }
            Err(e) => return Err(StartError::Unreachable(e)),
        }
    }
    Ok(())
}

/// State findings recorded as Events by an earlier run: the cluster's Events are the
/// memory a restart lost. At most [`RECORDED_LIMIT`]; a cluster that cannot be read
/// gives none (then a state still holding may be counted once more, never recorded
/// twice: the Event's name is taken).
async fn recorded_states(client: &Client, scope: &scope::Scope) -> HashSet<(Box<str>, RuleId)> {
    let mut out = HashSet::new();
    for (_, api) in scope.apis::<k8s_openapi::api::events::v1::Event>(client) {
        if !recorded_in(&api, &mut out).await {
            break;
        }
    }
    out
}

/// Adds the state findings `api`'s Events record to `out`; false when the list failed.
async fn recorded_in(
    api: &Api<k8s_openapi::api::events::v1::Event>,
    out: &mut HashSet<(Box<str>, RuleId)>,
) -> bool {
    let mut params = ListParams::default().limit(500);
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Events; earlier findings may be counted again");
                return false;
            }
        };
        for event in &page.items {
            if event.reporting_controller.as_deref() != Some(events::REPORTING_CONTROLLER) {
                continue;
            }
            let rule = RuleId::ALL
                .iter()
                .copied()
                .filter(|r| r.is_state())
                .find(|r| event.reason.as_deref() == Some(events::reason(*r).as_str()));
            let uid = event.regarding.as_ref().and_then(|r| r.uid.as_deref());
            if let (Some(rule), Some(uid)) = (rule, uid)
                && out.len() < RECORDED_LIMIT
            {
                out.insert((uid.into(), rule));
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return true,
        }
    }
}

/// State findings remembered from an earlier run's Events.
pub const RECORDED_LIMIT: usize = 100_000;

#[derive(Debug)]
enum PolicyEvent {
    Applied(Box<PodLifecyclePolicy>),
    Deleted(PolicyKey),
    /// A (re)list of the policies of one namespace (`None`: of all) began: the keys it
    /// brings are that namespace's live set.
    ListStart(Option<String>),
    ListDone(Option<String>),
}

async fn watch_policies(client: Client, scope: scope::Scope, tx: mpsc::Sender<PolicyEvent>) {
    let streams = scope
        .apis::<PodLifecyclePolicy>(&client)
        .into_iter()
        .map(|(unit, api)| {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |event| (unit.clone(), event))
                .boxed()
        });
    let mut stream = futures::stream::select_all(streams);
    while let Some((unit, event)) = stream.next().await {
        let event = match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                PolicyEvent::Applied(Box::new(p))
            }
            Ok(watcher::Event::Delete(p)) => PolicyEvent::Deleted(engine::policy_key(&p)),
            Ok(watcher::Event::Init) => PolicyEvent::ListStart(unit),
            Ok(watcher::Event::InitDone) => PolicyEvent::ListDone(unit),
            Err(e) => {
                tracing::warn!(error = %e, "policy watch failed; retrying");
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

struct AuditLoop {
    engine: Engine,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    queue: Arc<EventQueue>,
    board: Arc<StatusBoard>,
    /// When each policy's Ready condition took its current status.
    ready_since: HashMap<PolicyKey, (bool, jiff::Timestamp)>,
    relist: watch::Sender<u64>,
    ready: watch::Sender<bool>,
    /// The newest time the cluster has reported (see [`AuditLoop::now`]).
    clock: Option<Timestamp>,
    book: OrphanBook,
    nodes: NodeCache,
    creates: Arc<CreateQueue>,
    /// `--dry-run`: every policy's orphan decisions are a dry run.
    dry_run: bool,
    pods_synced: bool,
    guards: Arc<guard::Guards>,
    leadership: leader::Leadership,
    shard: Option<shard::Shard>,
    client: Client,
    /// Nodes being read afresh (at most one read per node).
    checking: HashSet<String>,
    checks: mpsc::Sender<(String, Option<podwarden_model::NodeFacts>)>,
}

impl AuditLoop {
    /// `units`: the namespaces listed separately (`None`: all), each of which must list
    /// its policies once before pods are audited.
    async fn run(
        mut self,
        units: Vec<Option<String>>,
        mut policies: mpsc::Receiver<PolicyEvent>,
        mut pods: mpsc::Receiver<Received>,
        mut nodes: mpsc::Receiver<NodeEvent>,
        mut outcomes: mpsc::Receiver<(Outcome, Duration)>,
        mut checks: mpsc::Receiver<(String, Option<podwarden_model::NodeFacts>)>,
    ) {
        let mut unsynced: HashSet<Option<String>> = units.into_iter().collect();
        let mut policies_synced = unsynced.is_empty();
        // Per unit being (re)listed, the keys listed so far.
        let mut listing: HashMap<Option<String>, Vec<PolicyKey>> = HashMap::new();
        let mut tick = tokio::time::interval(STATUS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deadlines = tokio::time::interval(DEADLINE_INTERVAL);
        deadlines.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                event = policies.recv() => {
                    let Some(event) = event else { return };
                    match event {
                        PolicyEvent::ListStart(unit) => {
                            listing.insert(unit, Vec::new());
                        }
                        PolicyEvent::Applied(p) => {
                            let key = engine::policy_key(&p);
                            let unit = Some(key.0.clone());
                            let unit = if listing.contains_key(&unit) { unit } else { None };
                            if let Some(l) = listing.get_mut(&unit) {
                                l.push(key.clone());
                            }
                            let selects_differently = self
                                .engine
                                .policy(&key)
                                .is_none_or(|s| s.generation != p.metadata.generation);
                            self.engine.apply_policy(&p);
                            // Pods no event will bring may be selected now.
                            if self.pods_synced && selects_differently {
                                self.relist.send_modify(|n| *n += 1);
                            }
                        }
                        PolicyEvent::Deleted(key) => {
                            let guarded_pods = self.engine.policy(&key).is_some_and(|p| {
                                p.config.as_ref().is_ok_and(|c| {
                                    c.enforce && c.orphans.max_attempts > 0 && !self.dry_run
                                })
                            });
                            self.delete_policy(&key);
                            // The guards of its pods go with it: their next state says so,
                            // and a relist brings every pod's.
                            if self.pods_synced && guarded_pods {
                                self.relist.send_modify(|n| *n += 1);
                            }
                        }
                        PolicyEvent::ListDone(unit) => {
                            if let Some(live) = listing.remove(&unit) {
                                let gone: Vec<PolicyKey> = self
                                    .engine
                                    .policies()
                                    .map(|(k, _)| k.clone())
                                    .filter(|k| unit.as_deref().is_none_or(|ns| k.0 == ns))
                                    .filter(|k| !live.contains(k))
                                    .collect();
                                for key in gone {
                                    self.delete_policy(&key);
                                }
                            }
                            unsynced.remove(&unit);
                            policies_synced = unsynced.is_empty();
                        }
                    }
                }
                received = pods.recv(), if policies_synced => {
                    let Some(received) = received else { return };
                    if self.on_pod(received) && !self.pods_synced {
                        self.pods_synced = true;
                        let now = self.now(None);
                        let actions = self.book.pods_synced(&self.nodes, now);
                        self.act(actions);
                        self.health.ready.store(true, Ordering::Relaxed);
                        let _ = self.ready.send(true);
                    }
                }
                event = nodes.recv() => {
                    let Some(event) = event else { return };
                    self.on_node(event);
                }
                outcome = outcomes.recv() => {
                    let Some((outcome, waited)) = outcome else { return };
                    self.on_written(outcome, waited);
                }
                checked = checks.recv() => {
                    let Some((name, facts)) = checked else { return };
                    self.on_checked(name, facts);
                }
                _ = tick.tick() => self.publish_status(),
                _ = deadlines.tick(), if self.pods_synced => {
                    let now = self.now(None);
                    let outputs = self.engine.advance(now);
                    self.record(outputs);
                    let actions = self.book.tick(&self.nodes, now);
                    self.act(actions);
                    if self.leadership.is_leader() {
                        for plan in self.book.repush(now) {
                            if !self.creates.contains(&plan.lineage, plan.attempt) {
                                self.act(vec![Action::Create(plan)]);
                            }
                        }
                    }
                }
            }
        }
    }

    fn delete_policy(&mut self, key: &PolicyKey) {
        self.engine.delete_policy(key);
        self.metrics
            .cached_pods
            .set(self.engine.tracked_pods() as i64);
        self.book.policy_gone(key);
        self.board.withdraw(key);
        self.ready_since.remove(key);
    }

    /// The audit's time: the later of the machine's clock and the newest time the
    /// cluster has reported, so that a cluster clock ahead of this machine's does not make
    /// pods look younger than they are.
    fn now(&mut self, view_time: Option<Timestamp>) -> Timestamp {
        let wall = Timestamp(jiff::Timestamp::now().as_second());
        let seen = match (self.clock, view_time) {
            (Some(c), Some(t)) => Some(c.max(t)),
            (c, t) => c.or(t),
        };
        self.clock = seen;
        seen.map_or(wall, |s| s.max(wall))
    }

    /// Audits one pod event; true when it completes a list.
    fn on_pod(&mut self, received: Received) -> bool {
        let (view, change) = match received.event {
            PodEvent::Applied(view) => (view, PodChange::Applied),
            PodEvent::Relisted(view) => (view, PodChange::Relisted),
            PodEvent::Deleted(view) => (view, PodChange::Deleted),
            PodEvent::ListDone { live, initial } => {
                let gone = self.engine.retain(&live);
                self.engine.forget_recorded();
                if !initial {
                    self.metrics.relist_gone.inc_by(gone.len() as u64);
                }
                for last in gone {
                    if let Some(policy) = self.candidate(&last) {
                        let actions = self.book.unseen(&last, policy);
                        self.act(actions);
                    }
                }
                self.metrics
                    .cached_pods
                    .set(self.engine.tracked_pods() as i64);
                return true;
            }
        };
        let now = self.now(view.latest_time());
        self.orphan_event(&view, change, now);
        let outputs = self.engine.on_pod(view, change, now);
        self.record(outputs);
        self.metrics
            .audit_latency
            .observe(received.at.elapsed().as_secs_f64());
        self.metrics
            .cached_pods
            .set(self.engine.tracked_pods() as i64);
        false
    }

    /// The policy deciding the loss of `view`, if it is a candidate for recreation: a
    /// bare pod that may run again (not Succeeded; `Never` only with the opt-in), selected
    /// by a policy that recreates orphans.
    fn candidate(&self, view: &PodView) -> Option<OrphanPolicy> {
        if view.controlled {
            return None;
        }
        self.orphan_policy(view)
            .filter(|p| recreatable(view, &p.settings))
    }

    /// The policy deciding the loss of the bare pod `view`, whatever its state.
    fn orphan_policy(&self, view: &PodView) -> Option<OrphanPolicy> {
        let (key, settings, enforce) = self.engine.orphan_policy(view)?;
        Some(OrphanPolicy {
            key,
            settings,
            dry_run: self.dry_run || !enforce,
        })
    }

    /// Orphan recreation's part of a pod event: a replacement seen, a loss to decide,
    /// the pod's guard finalizer wanted or not.
    fn orphan_event(&mut self, view: &PodView, change: PodChange, now: Timestamp) {
        if view.controlled {
            return;
        }
        let gone = change == PodChange::Deleted;
        let lost = gone || view.phase() == Phase::Failed;
        let guarded = view.finalizers.iter().any(|f| &**f == guard::FINALIZER);
        // Any bare pod a recreating policy selects (a Never pod too: its loss is counted).
        let Some(policy) = self.orphan_policy(view) else {
            if guarded && !gone {
                // No longer selected by a policy that recreates it.
                self.guards.observe(orphans::PodRef::of(view), true, false);
            }
            return;
        };
        if orphans_model::original_uid(view).is_some()
            && !gone
            && let Some((lineage, attempt)) = self.book.replacement_seen(view, &policy, now)
        {
            self.creates.cancel(&lineage, attempt);
        }
        if lost {
            let actions = self.book.lost(
                view.clone(),
                gone,
                guarded,
                policy.clone(),
                &self.nodes,
                now,
            );
            self.act(actions);
        }
        if gone {
            self.guards.gone(&view.uid);
            return;
        }
        let guardable =
            !policy.dry_run && view.spec.node_name.is_some() && recreatable(view, &policy.settings);
        let want = guardable
            && if lost {
                self.book.holds(&view.uid)
            } else if view.deletion_timestamp.is_some() {
                // Being deleted without a disruption condition while its node is healthy:
                // a person's delete, which the kubelet completes; the guard goes at once
                // so that it does not wait. A component deleting for a node fault (the
                // taint manager) writes DisruptionTarget first: that deletion keeps the
                // guard, whatever this cache says of the node yet (a partitioned node
                // stays Ready for its grace period).
                view.condition_is_true(&ConditionType::DisruptionTarget)
                    || !self.node_healthy(view.spec.node_name.as_deref())
            } else {
                true
            };
        if guarded || want {
            self.guards
                .observe(orphans::PodRef::of(view), guarded, want);
        } else {
            // Neither has nor wants it: nothing to keep (most bare pods' events).
            self.guards.gone(&view.uid);
        }
    }

    /// Ready and not out of service, as the node cache says.
    fn node_healthy(&self, node: Option<&str>) -> bool {
        node.and_then(|n| self.nodes.facts(n))
            .is_some_and(|f| f.exists && f.ready == Some(true) && !f.out_of_service)
    }

    fn on_node(&mut self, event: NodeEvent) {
        let was_synced = self.nodes.synced();
        let changed = self.nodes.apply(event);
        let now = self.now(None);
        if !was_synced && self.nodes.synced() {
            let actions = self.book.nodes_synced(&self.nodes, now);
            self.act(actions);
            return;
        }
        for name in changed {
            let actions = self.book.node_changed(&name, &self.nodes, now);
            self.act(actions);
        }
    }

    /// Reads node `name` afresh on a task of its own (one at a time per node); what it
    /// says comes back through the check channel.
    fn check_node(&mut self, name: String) {
        if !self.checking.insert(name.clone()) {
            return;
        }
        let (client, tx) = (self.client.clone(), self.checks.clone());
        tokio::spawn(async move {
            let facts = nodes::read(&client, &name).await;
            let _ = tx.send((name, facts)).await;
        });
    }

    fn on_checked(&mut self, name: String, facts: Option<podwarden_model::NodeFacts>) {
        self.checking.remove(&name);
        let now = self.now(None);
        let actions = self.book.node_checked(&name, facts, &self.nodes, now);
        self.act(actions);
    }

    /// What the replacement writer did with a plan.
    fn on_written(&mut self, outcome: Outcome, waited: Duration) {
        let plan = &outcome.plan;
        match &outcome.written {
            Written::Created { uid } => {
                self.metrics.orphans_recreated.inc();
                self.metrics
                    .orphan_create_latency
                    .observe(waited.as_secs_f64());
                self.engine.count_recreated(&plan.policy);
                self.recreated_notice(plan, uid);
                tracing::info!(
                    pod = %format!("{}/{}", plan.lost.namespace, plan.name),
                    lost_uid = %plan.lost.uid,
                    evidence = plan.evidence.as_str(),
                    attempt = plan.attempt,
                    "orphaned pod recreated"
                );
            }
            // Made by an earlier run or another replica; its Event has the same name, so
            // writing it again records it at most once.
            Written::Existed { uid } => self.recreated_notice(plan, uid),
            Written::NotLeader | Written::NameTaken | Written::Failed(_) => {}
        }
        if outcome.written != Written::NotLeader {
            self.guards.release(&plan.lost.uid);
        }
        if let Some(action) = self.book.written(&outcome) {
            self.act(vec![action]);
        }
    }

    fn recreated_notice(&self, plan: &Plan, uid: &str) {
        let notice = Notice {
            regarding: orphans::PodRef {
                namespace: plan.lost.namespace.clone(),
                name: plan.name.clone(),
                uid: uid.to_string(),
            },
            reason: "OrphanRecreated",
            warning: false,
            urgent: true,
            note: format!(
                "recreated {} (uid {}, lost: {}) as attempt {} of {}",
                plan.lost.name,
                plan.lost.uid,
                plan.evidence.describe(),
                plan.attempt,
                plan.max_attempts
            ),
            occurrence: plan.lineage.clone(),
        };
        self.queue.submit_notice(notice, &self.metrics);
    }

    /// Carries out what the orphan book decided.
    fn act(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Create(plan) => {
                    if let Err(plan) = self.creates.push(plan) {
                        let outcome = Outcome {
                            plan: *plan,
                            written: Written::Failed("the create queue is full".into()),
                        };
                        if let Some(skip) = self.book.written(&outcome) {
                            self.act(vec![skip]);
                        }
                    }
                }
                Action::CheckNode(name) => self.check_node(name),
                Action::DryRun(plan) => {
                    self.metrics.orphans_dry_run.inc();
                    let notice = Notice {
                        note: format!(
                            "dry run: would recreate it as {} (attempt {} of {}); lost: {}",
                            plan.name,
                            plan.attempt,
                            plan.max_attempts,
                            plan.evidence.describe()
                        ),
                        regarding: plan.lost,
                        reason: "OrphanWouldBeRecreated",
                        warning: false,
                        urgent: false,
                        occurrence: plan.attempt.to_string(),
                    };
                    self.queue.submit_notice(notice, &self.metrics);
                }
                Action::Skipped(skipped) => {
                    self.guards.release(&skipped.lost.uid);
                    self.metrics
                        .orphans_skipped
                        .get_or_create(&ReasonLabels {
                            reason: skipped.reason.reason().into(),
                        })
                        .inc();
                    tracing::info!(
                        pod = %format!("{}/{}", skipped.lost.namespace, skipped.lost.name),
                        reason = skipped.reason.reason(),
                        "orphaned pod not recreated: {}", skipped.detail
                    );
                    if skipped.report {
                        let notice = Notice {
                            note: format!("not recreated ({}): {}", skipped.reason, skipped.detail),
                            regarding: skipped.lost,
                            reason: "OrphanRecreationSkipped",
                            warning: true,
                            urgent: true,
                            occurrence: skipped.reason.reason().into(),
                        };
                        self.queue.submit_notice(notice, &self.metrics);
                    }
                }
            }
        }
        self.metrics.orphans_waiting.set(self.book.waiting() as i64);
    }

    fn record(&self, outputs: Vec<engine::Output>) {
        for output in outputs {
            self.found(&output.finding);
            if output.record_event {
                self.queue.submit(output.finding, &self.metrics);
            }
        }
        let (duplicates, stale) = self.engine.skipped();
        let inc_to = |c: &prometheus_client::metrics::counter::Counter, total: u64| {
            c.inc_by(total.saturating_sub(c.get()));
        };
        inc_to(&self.metrics.duplicate_snapshots, duplicates);
        inc_to(&self.metrics.stale_snapshots, stale);
    }

    fn found(&self, finding: &Finding) {
        self.metrics
            .findings
            .get_or_create(&FindingLabels {
                rule: finding.rule.as_str().into(),
                severity: finding.severity.as_str().into(),
            })
            .inc();
        tracing::info!(
            rule = finding.rule.as_str(),
            severity = finding.severity.as_str(),
            pod = %format!("{}/{}", finding.namespace, finding.pod),
            resource_version = %finding.resource_version,
            "{}", finding.message
        );
    }

    fn publish_status(&mut self) {
        // Before the first list a status would say no pods are selected: wait for it.
        if !self.pods_synced {
            return;
        }
        let now = jiff::Timestamp::now();
        for key in self.engine.take_dirty() {
            let Some(state) = self.engine.policy(&key) else {
                continue;
            };
            let ok = state.config.is_ok();
            let since = match self.ready_since.get(&key) {
                Some((was, at)) if *was == ok => *at,
                _ => now,
            };
            self.ready_since.insert(key.clone(), (ok, since));
            self.board
                .offer(key, status::desired(state, &since, self.shard));
        }
    }
}

/// Whether a bare pod may be run again after its loss: not Succeeded, and `Never` only
/// when the policy opts in.
fn recreatable(view: &PodView, settings: &podwarden_model::policy::OrphanSettings) -> bool {
    view.phase() != Phase::Succeeded
        && (view.restart_policy() != RestartPolicy::Never || settings.recreate_never)
}

fn http_router(metrics: Arc<Metrics>, health: Arc<Health>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let h1 = health.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let dead = h1.task_died.load(Ordering::Relaxed);
                async move {
                    if dead {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "a background task has died",
                        )
                    } else {
                        (StatusCode::OK, "ok")
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = health.ready.load(Ordering::Relaxed);
                async move {
                    if ready {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not synced yet")
                    }
                }
            }),
        )
}
