//! Controller benchmark: the live controller (`controller::start`, as `podwarden run`
//! runs it) against the sandbox API server over HTTP, a simulated cluster churning pod
//! statuses behind it (a third of the pods crash-looping, a third running, a third
//! completing, as in the simulator benchmark), and in the same run two peers on the
//! same watch stream:
//!
//! - **reflector**: a plain kube-runtime `reflector` + `watcher` caching full
//!   `k8s_openapi` Pods (what a controller built the usual way keeps);
//! - **floor**: kube's watch stream (`Client::request_events`, the same HTTP client
//!   and line framing as the controller's pod watch) deserializing each event into a
//!   struct that keeps only `metadata.resourceVersion`, serde skipping the rest as
//!   `IgnoredAny`: about the least any watcher over HTTP pays per event.
//!
//! Each of the three runs on a thread of its own, on a current-thread tokio runtime
//! built there (its client, its connections and all its tasks run on that thread), and
//! reaches the sandbox only through `kube::Client` (and a TCP relay, below). The API server runs on one worker
//! thread of its own, the simulated cluster (stepped clock) on the bench's thread.
//! The pods are owned by ReplicaSets, as a Deployment's are (`BARE=1`: no owner, as
//! the simulator bench's; the controller keeps a bare pod's whole spec, for orphan
//! recreation). Per size in `PODS`:
//!
//! 1. The pods are created in-process and started, then the first 19 simulated seconds
//!    run (readiness comes to every pod at once, in two bursts); the exits follow,
//!    spread over 20 to 60 s (durations in milliseconds, not whole seconds together).
//! 2. **podwarden starts** against the standing cluster: wall and CPU time to ready
//!    (its first list audited), heap and RSS growth, pods cached.
//! 3. **Latency**, podwarden alone with the cluster (its relay open): every 10 ms of
//!    wall time the simulated clock moves on, at a speed adjusted each second to hold
//!    `RATE` pod events per second, as far as the simulator sustains it (the achieved
//!    rate is printed). `INJECT_RATE` times a second, evenly, a faulty-kubelet write
//!    (`containers-ready-mismatch` through the simulator's `inject`, a different
//!    running pod each time) is stored. Its time is taken right after `inject`
//!    returns (the store committed the write inside the call, and what follows it
//!    there is bookkeeping): the figures are lower bounds by at most the call's tail;
//!    measured from just before the call they are upper bounds, printed too. Against
//!    it: when the controller produced the finding (a tracing layer on the finding log
//!    line the audit loop emits as it records each finding, on the controller's
//!    thread), and when the controller's Event was stored (an in-process watch on the
//!    store's Events on a thread of its own). p50 and p99 over all injections. The
//!    policy records violations as Events (`EVENT_SEVERITY`, default `violation`):
//!    the crash-loopers' restart-budget warnings, thousands of them, would otherwise
//!    fill the controller's Event queue, and the figure would be the queue's length
//!    over the write budget, not the path from the store to the Event.
//! 4. **reflector and floor start** (reflector: time to ready, heap and RSS growth).
//! 5. **Throughput**, all three on the same stream: each consumer reaches the API
//!    server through a TCP relay of its own (on a thread of their own) that always
//!    reads what the server sends but passes it on only while its gate is open. The
//!    simulated clock moves in steps of about 5,000 pod events; after each step the
//!    consumers take turns: each one's gate opens until it has received (podwarden:
//!    audited) every pod event the store emitted, counted by an in-process watch, and
//!    closes again, so each handles the step's events alone, the others idle, the
//!    simulator stopped. At least `EVENTS` events (default max(100k, PODS)). CPU time
//!    of each consumer's thread over the window (from `/proc/self/task/<tid>/schedstat`,
//!    in nanoseconds, plus any blocking-pool thread of its runtime): CPU seconds per
//!    10k events and events per CPU second, the rate one core sustains with a backlog
//!    to work through. The ratios podwarden / reflector and podwarden / floor are the
//!    headline. In the latency phase podwarden's CPU per 10k events is also printed:
//!    events arriving a few at a time as the cluster makes them cost it more each
//!    (a wake-up, a read and a channel hand-off for a few events, not for hundreds).
//! 6. **Steady memory**: live heap bytes per cached pod of podwarden and of the
//!    reflector after the window.
//!
//! Heap bytes come from a global allocator (mimalloc underneath, as in the binary)
//! that charges each allocation and each free to the account of the thread making it;
//! each consumer's thread has its own account, and what a consumer allocates is freed
//! on its thread (the residue after it stopped is printed as a check). RSS growth is
//! the process's VmRSS across a consumer's start while the cluster stands still; it
//! includes what the API server allocated meanwhile to serve the lists (the other
//! threads' heap growth is printed beside it).
//!
//! Run: `cargo bench --bench controller` (10k pods, under two minutes);
//! `PODS=10k,50k,150k cargo bench --bench controller` for every size in one run.
//! More knobs: `LATENCY_SECONDS` (30), `RATE` (5000), `INJECT_RATE` (10),
//! `EVENT_QPS` (20: the controller's Event write budget, above the injection rate so
//! that no injection's Event waits behind another's), `EVENT_SEVERITY`, `EVENTS`,
//! `BARE`.
//!
//! `SHARD=i/n` runs podwarden as shard i of n (`--shard`) and stops after its start:
//! the memory one replica needs at that size (`SHARD=0/1` is a whole cluster's), the
//! phases after it being about every pod event, which a shard does not see.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams, WatchParams};
use kube::core::{Request, WatchEvent as KubeWatchEvent};
use kube::runtime::{reflector, watcher};
use kube::{Client, CustomResourceExt};
use podwarden::controller::{self, Options};
use podwarden_model::policy::{PodLifecyclePolicy, PodLifecyclePolicySpec};
use podwarden_sandbox::api::{
    SandboxConfig, Store, StoreConfig, Watch, WatchEvent, WatchOptions, WriteOptions,
};
use podwarden_sandbox::sim::{NodeShape, SimConfig, SimHandle, Simulation};
use serde::Deserialize;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

// ---- heap accounting ----------------------------------------------------------------

/// Accounts: everything else (the sandbox, the simulator, this bench), then one per
/// consumer thread.
const OTHER: usize = 0;
const PODWARDEN: usize = 1;
const REFLECTOR: usize = 2;
const FLOOR: usize = 3;
static LIVE: [AtomicIsize; 4] = [const { AtomicIsize::new(0) }; 4];

thread_local! {
    static ACCOUNT: Cell<usize> = const { Cell::new(OTHER) };
}

fn account() -> usize {
    ACCOUNT.try_with(Cell::get).unwrap_or(OTHER)
}

fn set_account(account: usize) {
    ACCOUNT.with(|a| a.set(account));
}

/// Runs `f` with its allocations charged to `account`.
fn charged_to<T>(account: usize, f: impl FnOnce() -> T) -> T {
    let before = ACCOUNT.with(|a| a.replace(account));
    let out = f();
    ACCOUNT.with(|a| a.set(before));
    out
}

fn heap(account: usize) -> isize {
    LIVE[account].load(Ordering::Relaxed)
}

/// mimalloc (the `podwarden` binary's allocator), every byte charged to the account
/// of the thread that allocates or frees it.
struct Accounting;

unsafe impl GlobalAlloc for Accounting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE[account()].fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE[account()].fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE[account()].fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE[account()].fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Accounting = Accounting;

// ---- CPU time and memory from /proc ---------------------------------------------------

/// This thread's id (the `task` entry of /proc/self).
fn tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .expect("/proc/thread-self names the thread")
}

fn schedstat(path: &std::path::Path) -> Duration {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time of thread `tid` plus every thread named `pool` (a runtime's blocking pool).
fn cpu_of(tid: u32, pool: &str) -> Duration {
    let mut total = schedstat(&std::path::PathBuf::from(format!(
        "/proc/self/task/{tid}/schedstat"
    )));
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == pool {
            total += schedstat(&dir.join("schedstat"));
        }
    }
    total
}

fn thread_cpu() -> Duration {
    schedstat(std::path::Path::new("/proc/thread-self/schedstat"))
}

fn rss_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

// ---- settings ------------------------------------------------------------------------

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `10000`, `10k`, `1.5k`.
fn parse_count(s: &str) -> Option<usize> {
    let s = s.trim();
    match s.strip_suffix(['k', 'K']) {
        Some(k) => k.parse::<f64>().ok().map(|k| (k * 1000.0) as usize),
        None => s.parse().ok(),
    }
}

struct Settings {
    sizes: Vec<usize>,
    latency_seconds: f64,
    rate: f64,
    inject_rate: f64,
    event_qps: f64,
    events: Option<usize>,
    bare: bool,
    event_severity: String,
    shard: Option<controller::shard::Shard>,
}

impl Settings {
    fn from_env() -> Self {
        let sizes = std::env::var("PODS")
            .ok()
            .map(|v| v.split(',').filter_map(parse_count).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec![10_000]);
        Settings {
            sizes,
            latency_seconds: env_f64("LATENCY_SECONDS", 30.0),
            rate: env_f64("RATE", 5000.0),
            inject_rate: env_f64("INJECT_RATE", 10.0),
            event_qps: env_f64("EVENT_QPS", 20.0),
            events: std::env::var("EVENTS").ok().and_then(|v| parse_count(&v)),
            bare: std::env::var("BARE").is_ok_and(|v| v == "1"),
            event_severity: std::env::var("EVENT_SEVERITY").unwrap_or_else(|_| "violation".into()),
            shard: std::env::var("SHARD")
                .ok()
                .map(|v| v.parse().expect("SHARD=i/n")),
        }
    }
}

// ---- the cluster -----------------------------------------------------------------------

/// The rule injected for the latency figures: a state rule (one Event per pod), which a
/// running pod can carry.
const INJECTED_RULE: &str = "containers-ready-mismatch";
const INJECTED_REASON: &str = "ContainersReadyMismatch";
const NAMESPACE: &str = "default";
/// Simulated seconds run before the controller starts: past the start's bursts.
const PREROLL_SECONDS: u64 = 19;

/// Pod `i`: crash-looping, running forever, or completing (as the simulator bench),
/// owned by one of 100 ReplicaSets as a Deployment's pods are (`bare`: no owner, as
/// the simulator bench's; the controller then keeps a bare pod's whole spec).
fn pod(i: usize, bare: bool) -> serde_json::Value {
    // 20 to 60 s, in milliseconds: the exits do not fall on whole seconds together.
    let millis = 20_000 + (i * 7919) % 40_000;
    let (policy, script) = match i % 3 {
        0 => ("Always", format!("run={millis}ms exit=1")),
        1 => ("Always", "run=1s forever ready=2s".to_string()),
        _ => ("OnFailure", format!("run={millis}ms exit=0")),
    };
    let set = i % 100;
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name(i), "namespace": NAMESPACE,
                     "labels": {"app": format!("load-{set}"), "pod-template-hash": format!("{:010x}", set * 7919)},
                     "annotations": {"sandbox.podwarden.dev/script.app": script}},
        "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "registry.example/app:1",
                 "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]},
    });
    if !bare {
        pod["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("load-{set}-{:010x}", set * 7919),
            "uid": format!("00000000-0000-4000-8000-{set:012}"), "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    pod
}

fn pod_name(i: usize) -> String {
    format!("load-{i:06}")
}

fn watch_all(store: &Store, resource: &str) -> Watch {
    let rt = store.resource("", "v1", resource).expect("resource");
    store
        .watch(
            &rt,
            None,
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                ..Default::default()
            },
        )
        .expect("watch")
}

/// Pod watch events waiting on `watch` (what a watcher of every pod receives).
fn drain(watch: &mut Watch) -> u64 {
    let mut n = 0;
    while let Some(ev) = watch.try_next() {
        if !matches!(ev, WatchEvent::Bookmark { .. }) {
            n += 1;
        }
    }
    n
}

struct Cluster {
    sim: SimHandle,
    /// The API server's runtime: one worker thread.
    api: tokio::runtime::Runtime,
    /// Every pod event the store emits, counted in-process.
    pod_watch: Watch,
    produced: u64,
}

impl Cluster {
    fn start(pods: usize) -> Cluster {
        let api = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sandbox-api")
            .enable_all()
            .build()
            .expect("runtime");
        let nodes = (pods / 150).max(10);
        let per_node = (pods / nodes + 1).max(110) as u64 * 2;
        let sandbox = SandboxConfig {
            store: StoreConfig {
                history_window: 10_000,
                watch_buffer: 1_000_000,
                ..StoreConfig::default()
            },
            ..SandboxConfig::default()
        };
        let config = SimConfig {
            nodes,
            node_shape: NodeShape {
                pods: per_node,
                cpu_millis: per_node * 20,
                memory_bytes: per_node * (64 << 20),
                ..NodeShape::default()
            },
            seed: 42,
            speed: None,
            start: None,
            terminated_pod_gc_threshold: 0,
        };
        let sim = api
            .block_on(Simulation::start(sandbox, config))
            .expect("simulation starts");
        let pod_watch = watch_all(sim.store(), "pods");
        Cluster {
            sim,
            api,
            pod_watch,
            produced: 0,
        }
    }

    fn store(&self) -> &Store {
        self.sim.store()
    }

    fn kube_config(&self) -> kube::Config {
        self.sim.sandbox().kube_config()
    }

    /// The CRD and a policy selecting every pod of the namespace, recording findings of
    /// `event_severity` and above as Events, over HTTP.
    fn install(&self, event_severity: &str) {
        let config = self.kube_config();
        let spec = json!({"rules": {"eventSeverity": event_severity}});
        self.api.block_on(async move {
            let client = Client::try_from(config).expect("client");
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            crds.create(&PostParams::default(), &PodLifecyclePolicy::crd())
                .await
                .expect("create the CRD");
            let spec: PodLifecyclePolicySpec = serde_json::from_value(spec).expect("policy spec");
            let policies: Api<PodLifecyclePolicy> = Api::namespaced(client, NAMESPACE);
            policies
                .create(
                    &PostParams::default(),
                    &PodLifecyclePolicy::new("everything", spec),
                )
                .await
                .expect("create the policy");
        });
    }

    /// Creates pods 0..count a thousand at a time, each batch scheduled and started.
    fn create_pods(&mut self, count: usize, bare: bool) {
        let rt = self.store().resource("", "v1", "pods").expect("pods");
        let opts = WriteOptions {
            field_manager: Some("bench".into()),
            ..Default::default()
        };
        for first in (0..count).step_by(1000) {
            for i in first..(first + 1000).min(count) {
                self.store()
                    .create(&rt, Some(NAMESPACE), pod(i, bare), &opts)
                    .expect("create pod");
            }
            self.sim.settle().expect("stepped");
            self.produced += drain(&mut self.pod_watch);
        }
    }

    /// Moves the simulated clock by `d`; returns the pod events it caused.
    fn advance(&mut self, d: Duration) -> u64 {
        self.sim.advance(d).expect("stepped");
        self.count()
    }

    /// Counts the pod events emitted since the last count.
    fn count(&mut self) -> u64 {
        let n = drain(&mut self.pod_watch);
        self.produced += n;
        n
    }

    /// A faulty-kubelet write of `rule` into pod `name`: the instants just before the
    /// call and just after it returned (the store commits the write in between).
    fn inject(&mut self, name: &str, rule: &str) -> Option<(Instant, Instant)> {
        // What the simulator has pending is handled first, so that little work precedes
        // the write inside the call.
        self.sim.settle().expect("stepped");
        self.count();
        let called = Instant::now();
        let stored = self
            .sim
            .inject(NAMESPACE, name, rule)
            .ok()
            .map(|_| (called, Instant::now()));
        self.count();
        stored
    }

    fn shutdown(self) {
        let Cluster { sim, api, .. } = self;
        api.block_on(sim.shutdown());
        drop(api);
    }
}

// ---- the relays ------------------------------------------------------------------------

/// A TCP relay between one consumer and the API server, on the relays' thread. It always
/// reads what the server sends (the server is never held up), and passes it on to the
/// consumer only while its gate is open: in the throughput window the consumers take
/// their turns, each alone on a core, on the same events.
struct Relay {
    addr: std::net::SocketAddr,
    gate: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    fn start(rt: &tokio::runtime::Runtime, upstream: std::net::SocketAddr) -> Relay {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (gate, gate_rx) = tokio::sync::watch::channel(true);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind a relay");
        let addr = listener.local_addr().expect("relay address");
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut gate = gate_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 256 << 10];
                        while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                            if tx.send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                    });
                    while let Some(chunk) = rx.recv().await {
                        if gate.wait_for(|open| *open).await.is_err()
                            || client_write.write_all(&chunk).await.is_err()
                        {
                            return;
                        }
                    }
                    let _ = client_write.shutdown().await;
                });
            }
        });
        Relay { addr, gate }
    }

    /// A client configuration reaching the server through this relay.
    fn kube_config(&self) -> kube::Config {
        let mut config =
            kube::Config::new(format!("http://{}", self.addr).parse().expect("relay URI"));
        config.default_namespace = NAMESPACE.into();
        config
    }

    fn open(&self, open: bool) {
        self.gate.send_replace(open);
    }
}

// ---- the consumers ---------------------------------------------------------------------

/// A consumer running on its own thread and runtime.
struct Consumer {
    name: &'static str,
    tid: u32,
    account: usize,
    /// Pod watch events handled (list items not included).
    events: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Consumer {
    /// Starts `run` on a thread of its own, its allocations charged to `account`; waits
    /// for its tid.
    fn spawn<F, Fut>(name: &'static str, account: usize, run: F) -> Consumer
    where
        F: FnOnce(Arc<AtomicU64>, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let events = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let counter = events.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                set_account(account);
                let _ = tid_tx.send(tid());
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name(format!("{name}-blk"))
                    .build()
                    .expect("runtime");
                rt.block_on(run(counter, stop_rx));
                drop(rt);
            })
            .expect("thread");
        Consumer {
            name,
            tid: tid_rx.recv().expect("tid"),
            account,
            events,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn cpu(&self) -> Duration {
        cpu_of(self.tid, &format!("{}-blk", self.name))
    }

    fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Stops it; returns its heap left after its runtime was dropped (should be ~0).
    fn stop(mut self) -> isize {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        heap(self.account)
    }
}

/// What the podwarden thread hands back once the controller is started.
struct PodwardenHandle {
    metrics: Arc<controller::metrics::Metrics>,
    ready: Arc<AtomicBool>,
}

fn start_podwarden(
    config: kube::Config,
    event_qps: f64,
    shard: Option<controller::shard::Shard>,
) -> (Consumer, PodwardenHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = Arc::new(AtomicBool::new(false));
    let ready_flag = ready.clone();
    let consumer = Consumer::spawn("podwarden", PODWARDEN, move |_events, stop| async move {
        let client = Client::try_from(config).expect("client");
        let options = Options {
            event_qps,
            http_addr: None,
            instance: "podwarden-bench".into(),
            shard,
            ..Options::default()
        };
        let mut handle = controller::start(client, options)
            .await
            .expect("controller starts");
        let _ = tx.send(handle.metrics.clone());
        handle.ready().await;
        ready_flag.store(true, Ordering::Release);
        let _ = stop.await;
        handle.shutdown().await;
    });
    let metrics = rx.recv().expect("the controller started");
    (consumer, PodwardenHandle { metrics, ready })
}

/// The reflector's cache, readable from the bench thread.
type PodCache = reflector::Store<Pod>;

fn start_reflector(config: kube::Config) -> (Consumer, PodCache, Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = Arc::new(AtomicBool::new(false));
    let ready_flag = ready.clone();
    let consumer = Consumer::spawn("reflector", REFLECTOR, move |events, mut stop| async move {
        let client = Client::try_from(config).expect("client");
        let api: Api<Pod> = Api::all(client);
        let (reader, writer) = reflector::store::<Pod>();
        let _ = tx.send(reader);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()));
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = &mut stop => return,
            };
            match event {
                Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) => {
                    events.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(watcher::Event::InitDone)) => ready_flag.store(true, Ordering::Release),
                Some(Ok(_)) => {}
                Some(Err(e)) => eprintln!("reflector: {e}"),
                None => return,
            }
        }
    });
    let reader = rx.recv().expect("the reflector started");
    (consumer, reader, ready)
}

#[derive(Clone, Deserialize)]
struct MetaOnly {
    metadata: ResourceVersionOnly,
}

#[derive(Clone, Deserialize)]
struct ResourceVersionOnly {
    #[serde(rename = "resourceVersion")]
    resource_version: String,
}

fn start_floor(config: kube::Config, from: u64) -> Consumer {
    Consumer::spawn("floor", FLOOR, move |events, mut stop| async move {
        let client = Client::try_from(config).expect("client");
        let mut rv = from.to_string();
        loop {
            let request = Request::new("/api/v1/pods")
                .watch(&WatchParams::default().timeout(290), &rv)
                .expect("watch request");
            let stream = match client.request_events::<MetaOnly>(request).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("floor: {e}");
                    return;
                }
            };
            let mut stream = std::pin::pin!(stream);
            loop {
                let next = tokio::select! {
                    next = stream.try_next() => next,
                    _ = &mut stop => return,
                };
                match next {
                    Ok(Some(
                        KubeWatchEvent::Added(m)
                        | KubeWatchEvent::Modified(m)
                        | KubeWatchEvent::Deleted(m),
                    )) => {
                        rv = m.metadata.resource_version;
                        events.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(KubeWatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    Ok(Some(KubeWatchEvent::Error(e))) => {
                        eprintln!("floor: {e:?}");
                        return;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("floor: {e}");
                        break;
                    }
                }
            }
        }
    })
}

// ---- when findings and Events appear ----------------------------------------------------

/// Pod name -> when the controller produced its finding of [`INJECTED_RULE`].
static FOUND: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// A tracing layer on the controller's finding log line (`AuditLoop::found`, emitted as
/// the audit loop records a finding): the time of each finding of the injected rule.
struct FindingClock;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FindingClock {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let at = Instant::now();
        struct Fields {
            wanted: bool,
            pod: Option<String>,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "rule" {
                    self.wanted = value == INJECTED_RULE;
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "pod" && self.wanted {
                    self.pod = Some(format!("{value:?}"));
                }
            }
        }
        // The bench's bookkeeping is not the controller's memory.
        charged_to(OTHER, || {
            let mut fields = Fields {
                wanted: false,
                pod: None,
            };
            event.record(&mut fields);
            if let Some(pod) = fields.pod
                && let Some(name) = pod.strip_prefix(&format!("{NAMESPACE}/"))
            {
                let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(map) = found.as_mut() {
                    map.entry(name.to_string()).or_insert(at);
                }
            }
        });
    }
}

/// Pod name -> when the controller's Event about it was stored.
type EventTimes = Arc<Mutex<HashMap<String, Instant>>>;

/// Watches the store's Events in-process on a thread of its own; records when each
/// podwarden Event with the injected reason is stored.
fn watch_events(
    store: &Store,
) -> (
    EventTimes,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let times: EventTimes = Arc::default();
    let mut watch = watch_all(store, "events");
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let out = times.clone();
    let thread = std::thread::Builder::new()
        .name("event-watch".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let finder = memchr::memmem::Finder::new(controller::events::REPORTING_CONTROLLER);
                loop {
                    let ev = tokio::select! {
                        ev = watch.next() => ev,
                        _ = &mut stop_rx => return,
                    };
                    let object = match ev {
                        Some(WatchEvent::Added(object)) => object,
                        Some(_) => continue,
                        None => return,
                    };
                    let at = Instant::now();
                    if finder.find(&object.json).is_none() {
                        continue;
                    }
                    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&object.json)
                    else {
                        continue;
                    };
                    if value["reason"] != INJECTED_REASON {
                        continue;
                    }
                    if let Some(pod) = value["involvedObject"]["name"].as_str() {
                        let mut times = out.lock().unwrap_or_else(|e| e.into_inner());
                        times.entry(pod.to_string()).or_insert(at);
                    }
                }
            });
        })
        .expect("thread");
    (times, stop_tx, thread)
}

// ---- the run --------------------------------------------------------------------------

#[derive(Default)]
struct Startup {
    wall: Duration,
    cpu: Duration,
    heap: isize,
    other_heap: isize,
    rss: i64,
    cached: usize,
}

#[derive(Default)]
struct Latency {
    wall: f64,
    events: u64,
    speed: (f64, f64),
    injected: usize,
    refused: usize,
    inject_call: Vec<Duration>,
    /// From the inject call's return (the write is committed by then): a lower bound.
    finding: Vec<Duration>,
    /// From just before the call: an upper bound.
    finding_from_call: Vec<Duration>,
    event: Vec<Duration>,
    podwarden_cpu: Duration,
    podwarden_events: u64,
}

#[derive(Default, Clone, Copy)]
struct Usage {
    cpu: Duration,
    events: u64,
}

impl Usage {
    fn per_10k(&self) -> f64 {
        self.cpu.as_secs_f64() * 10_000.0 / self.events.max(1) as f64
    }
    fn rate(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

#[derive(Default)]
struct Report {
    pods: usize,
    create: Duration,
    podwarden: Startup,
    reflector: Startup,
    latency: Latency,
    window_events: u64,
    window_sim_seconds: u64,
    window_wall: Duration,
    pw: Usage,
    rf: Usage,
    fl: Usage,
    pw_heap_steady: isize,
    pw_cached_steady: usize,
    rf_heap_steady: isize,
    rf_cached_steady: usize,
    relists: u64,
    findings: u64,
    events_written: u64,
    residue: (isize, isize, isize),
}

/// Waits (bounded) until `done` holds; false on time-out.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run_size(pods: usize, settings: &Settings) -> Report {
    let mut report = Report {
        pods,
        ..Report::default()
    };
    println!("\n== {pods} pods ==");
    let mut cluster = Cluster::start(pods);
    cluster.install(&settings.event_severity);
    let t = Instant::now();
    cluster.create_pods(pods, settings.bare);
    report.create = t.elapsed();
    println!(
        "created and started {pods} pods in {:.1}s ({} nodes)",
        report.create.as_secs_f64(),
        (pods / 150).max(10)
    );
    // Past the start: every pod started at once, so their first readiness comes in two
    // bursts of every pod at 1 and 2 simulated seconds; from 20 s the exits come,
    // spread over 40 s.
    let t = Instant::now();
    let mut start_events = 0;
    for _ in 0..PREROLL_SECONDS {
        start_events += cluster.advance(Duration::from_secs(1));
    }
    println!(
        "the first {PREROLL_SECONDS} simulated seconds: {start_events} pod events ({:.1}s wall)",
        t.elapsed().as_secs_f64()
    );

    let relays = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("relay")
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = cluster.sim.sandbox().addr();
    let (pw_relay, rf_relay, fl_relay) = (
        Relay::start(&relays, upstream),
        Relay::start(&relays, upstream),
        Relay::start(&relays, upstream),
    );

    // podwarden starts; the cluster stands still. From then on it must audit every pod
    // event the store emits.
    cluster.count();
    let pw_origin = cluster.produced;
    let (heap0, other0, rss0) = (heap(PODWARDEN), heap(OTHER), rss_bytes());
    let t = Instant::now();
    let (pw, handle) = start_podwarden(pw_relay.kube_config(), settings.event_qps, settings.shard);
    assert!(
        wait_until(Duration::from_secs(600), || handle
            .ready
            .load(Ordering::Acquire)),
        "podwarden did not sync"
    );
    let metrics = handle.metrics.clone();
    // The list's pods are audited before ready is signalled.
    let listed = metrics.audit_latency.count();
    report.podwarden = Startup {
        wall: t.elapsed(),
        cpu: pw.cpu(),
        heap: heap(PODWARDEN) - heap0,
        other_heap: heap(OTHER) - other0,
        rss: rss_bytes() - rss0,
        cached: metrics.cached_pods.get() as usize,
    };
    println!(
        "podwarden ready in {:.2}s ({:.2}s CPU): {} pods listed and audited, {} cached; heap +{:.1} MiB, RSS +{:.1} MiB (the other threads' heap +{:.1} MiB meanwhile)",
        report.podwarden.wall.as_secs_f64(),
        report.podwarden.cpu.as_secs_f64(),
        listed,
        report.podwarden.cached,
        mib(report.podwarden.heap as f64),
        mib(report.podwarden.rss as f64),
        mib(report.podwarden.other_heap as f64),
    );
    if let Some(shard) = settings.shard {
        println!(
            "shard {shard}: one replica holds {:.1} MiB of heap for {} of the cluster's {pods} pods ({:.0} B per pod of the cluster)",
            mib(report.podwarden.heap as f64),
            report.podwarden.cached,
            report.podwarden.heap as f64 / pods as f64
        );
        pw.stop();
        return report;
    }
    // Pod watch events audited since the list.
    let pw_events = || metrics.audit_latency.count() - listed;

    report.latency = latency_phase(&mut cluster, &pw, &pw_events, pw_origin, settings, pods);

    // The peers join; the cluster stands still meanwhile.
    cluster.count();
    let rf_origin = cluster.produced;
    let (heap0, other0, rss0) = (heap(REFLECTOR), heap(OTHER), rss_bytes());
    let t = Instant::now();
    let (rf, cache, rf_ready) = start_reflector(rf_relay.kube_config());
    assert!(
        wait_until(Duration::from_secs(900), || rf_ready
            .load(Ordering::Acquire)),
        "the reflector did not sync"
    );
    report.reflector = Startup {
        wall: t.elapsed(),
        cpu: rf.cpu(),
        heap: heap(REFLECTOR) - heap0,
        other_heap: heap(OTHER) - other0,
        rss: rss_bytes() - rss0,
        cached: cache.len(),
    };
    println!(
        "reflector ready in {:.2}s ({:.2}s CPU): {} pods cached; heap +{:.1} MiB, RSS +{:.1} MiB (the other threads' heap +{:.1} MiB meanwhile)",
        report.reflector.wall.as_secs_f64(),
        report.reflector.cpu.as_secs_f64(),
        report.reflector.cached,
        mib(report.reflector.heap as f64),
        mib(report.reflector.rss as f64),
        mib(report.reflector.other_heap as f64),
    );
    cluster.count();
    let fl_origin = cluster.produced;
    let fl = start_floor(fl_relay.kube_config(), cluster.store().resource_version());
    // The floor's watch is open before the clock moves.
    std::thread::sleep(Duration::from_millis(500));

    // Throughput: all three on the same stream, in steps of about 5,000 events. After
    // each step the consumers take their turns: each in turn gets what its relay holds
    // and handles every event of the step alone, the others idle.
    let turns: [(&Relay, &dyn Fn(u64) -> bool); 3] = [
        (&pw_relay, &|produced| pw_events() >= produced - pw_origin),
        (&rf_relay, &|produced| rf.events() >= produced - rf_origin),
        (&fl_relay, &|produced| fl.events() >= produced - fl_origin),
    ];
    assert!(
        wait_until(Duration::from_secs(120), || turns
            .iter()
            .all(|(_, done)| done(cluster.produced))),
        "a consumer did not catch up before the throughput window"
    );
    for (relay, _) in &turns {
        relay.open(false);
    }
    let target = settings.events.unwrap_or(pods.max(100_000)) as u64;
    let usage = || {
        [
            Usage {
                cpu: pw.cpu(),
                events: pw_events(),
            },
            Usage {
                cpu: rf.cpu(),
                events: rf.events(),
            },
            Usage {
                cpu: fl.cpu(),
                events: fl.events(),
            },
        ]
    };
    let before = usage();
    let base = cluster.produced;
    let t = Instant::now();
    let mut step = 1u64;
    let mut sim_seconds = 0;
    'window: while cluster.produced - base < target && sim_seconds < 24 * 3600 {
        let n = cluster.advance(Duration::from_secs(step));
        sim_seconds += step;
        let produced = cluster.produced;
        for (relay, done) in &turns {
            relay.open(true);
            let ok = wait_until(Duration::from_secs(300), || done(produced));
            relay.open(false);
            if !ok {
                println!(
                    "a consumer fell behind: {} events produced; podwarden {}, reflector {}, floor {}",
                    produced - base,
                    pw_events() - before[0].events,
                    rf.events() - before[1].events,
                    fl.events() - before[2].events,
                );
                break 'window;
            }
        }
        // About 5,000 events a step.
        step = (5000 * step)
            .checked_div(n)
            .map_or((step * 2).min(600), |s| s.clamp(1, 600));
    }
    for (relay, _) in &turns {
        relay.open(true);
    }
    let after = usage();
    let delta = |i: usize| Usage {
        cpu: after[i].cpu - before[i].cpu,
        events: after[i].events - before[i].events,
    };
    (report.pw, report.rf, report.fl) = (delta(0), delta(1), delta(2));
    report.window_wall = t.elapsed();
    report.window_sim_seconds = sim_seconds;
    report.window_events = cluster.produced - base;
    println!(
        "throughput window: {} pod events over {} simulated s ({:.1}s wall); CPU per 10k events: podwarden {:.3}s ({} events), reflector {:.3}s ({}), floor {:.3}s ({})",
        report.window_events,
        sim_seconds,
        report.window_wall.as_secs_f64(),
        report.pw.per_10k(),
        report.pw.events,
        report.rf.per_10k(),
        report.rf.events,
        report.fl.per_10k(),
        report.fl.events,
    );
    report.pw_heap_steady = heap(PODWARDEN);
    report.pw_cached_steady = metrics.cached_pods.get() as usize;
    report.rf_heap_steady = heap(REFLECTOR);
    report.rf_cached_steady = cache.len();
    report.relists = metrics.relists.get();
    let by_rule = metrics.findings_by_rule();
    report.findings = by_rule.values().sum();
    report.events_written = metrics.events_written.get();
    println!(
        "steady heap: podwarden {:.0} B per cached pod ({} pods), reflector {:.0} B per cached pod ({} pods); process RSS {:.0} MiB; findings {}, Events written {}, relists {}",
        report.pw_heap_steady as f64 / report.pw_cached_steady.max(1) as f64,
        report.pw_cached_steady,
        report.rf_heap_steady as f64 / report.rf_cached_steady.max(1) as f64,
        report.rf_cached_steady,
        mib(rss_bytes() as f64),
        report.findings,
        report.events_written,
        report.relists,
    );
    let by_rule: Vec<(&str, u64)> = by_rule.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    println!("findings by rule: {by_rule:?}");
    drop(cache);
    drop(metrics);
    drop(handle);
    report.residue = (pw.stop(), rf.stop(), fl.stop());
    relays.shutdown_background();
    cluster.shutdown();
    report
}

fn latency_phase(
    cluster: &mut Cluster,
    pw: &Consumer,
    pw_events: &dyn Fn() -> u64,
    pw_origin: u64,
    settings: &Settings,
    pods: usize,
) -> Latency {
    *FOUND.lock().unwrap_or_else(|e| e.into_inner()) = Some(HashMap::new());
    let (event_times, stop_events, event_thread) = watch_events(cluster.store());
    let tick = Duration::from_millis(10);
    let duration = Duration::from_secs_f64(settings.latency_seconds);
    let inject_every = Duration::from_secs_f64(1.0 / settings.inject_rate.max(0.01));
    let mut out = Latency::default();
    // (pod, before the inject call, after it returned)
    let mut stored: Vec<(String, Instant, Instant)> = Vec::new();
    // Victims: the pods running forever (i % 3 == 1), each once.
    let mut victims = (1..pods).step_by(3).map(pod_name);
    let cpu0 = pw.cpu();
    let audited0 = pw_events();
    let produced0 = cluster.produced;
    // From 20 simulated seconds on, as the exits begin, about 0.025 pod events per pod
    // per simulated second, fewer as the crash loops back off: adjusted every second.
    let mut speed = (settings.rate / (pods as f64 * 0.025)).clamp(0.25, 1000.0);
    let (mut min_speed, mut max_speed) = (f64::MAX, 0.0f64);
    let start = Instant::now();
    let mut last_step = start;
    let mut next_tick = start;
    // The pods become ready 2 simulated seconds after they start.
    let mut next_inject = start + Duration::from_secs(3);
    let (mut window_start, mut window_events) = (start, 0u64);
    let (mut ticks, mut ticks_late) = (0u64, 0u64);
    while start.elapsed() < duration {
        let now = Instant::now();
        // Time the loop fell behind (a long step) is not made up: the cluster runs
        // slower than asked instead.
        let dt = (now - last_step).min(tick * 2);
        window_events += cluster.advance(dt.mul_f64(speed));
        last_step = now;
        if now >= next_inject {
            // Evenly spaced: slots missed while a step ran long are skipped, not
            // made up in a burst.
            next_inject = (next_inject + inject_every).max(now + inject_every / 2);
            if let Some(victim) = victims.next() {
                match cluster.inject(&victim, INJECTED_RULE) {
                    Some((called, returned)) => {
                        out.inject_call.push(returned - called);
                        stored.push((victim, called, returned));
                    }
                    None => out.refused += 1,
                }
            }
        }
        let window = window_start.elapsed();
        if window >= Duration::from_secs(1) {
            let rate = window_events as f64 / window.as_secs_f64();
            let factor = (settings.rate / rate.max(1.0)).clamp(0.25, 4.0).sqrt();
            // Faster only while the simulator keeps up with the ticks: past what it
            // sustains, more speed would only make longer steps.
            if factor < 1.0 || ticks_late * 10 <= ticks {
                speed = (speed * factor).clamp(0.25, 1000.0);
            }
            min_speed = min_speed.min(speed);
            max_speed = max_speed.max(speed);
            (window_start, window_events, ticks, ticks_late) = (Instant::now(), 0, 0, 0);
        }
        next_tick += tick;
        ticks += 1;
        let sleep = next_tick.saturating_duration_since(Instant::now());
        if sleep.is_zero() {
            // Behind: do not try to catch up on missed ticks.
            ticks_late += 1;
            next_tick = Instant::now();
        }
        std::thread::sleep(sleep);
    }
    out.wall = start.elapsed().as_secs_f64();
    out.events = cluster.produced - produced0;
    out.speed = (min_speed.min(max_speed), max_speed);
    out.injected = stored.len();
    // Let the controller finish: every event audited, every Event stored (bounded).
    let produced = cluster.produced;
    wait_until(Duration::from_secs(60), || {
        pw_events() >= produced - pw_origin
    });
    out.podwarden_cpu = pw.cpu() - cpu0;
    out.podwarden_events = pw_events() - audited0;
    let all_in =
        |times: &HashMap<String, Instant>| stored.iter().all(|(p, ..)| times.contains_key(p));
    wait_until(Duration::from_secs(30), || {
        let found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
        found.as_ref().is_some_and(all_in)
            && all_in(&event_times.lock().unwrap_or_else(|e| e.into_inner()))
    });
    let _ = stop_events.send(());
    let _ = event_thread.join();
    let found = FOUND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    let events = event_times.lock().unwrap_or_else(|e| e.into_inner());
    for (pod, called, returned) in &stored {
        if let Some(t) = found.get(pod) {
            out.finding.push(t.saturating_duration_since(*returned));
            out.finding_from_call
                .push(t.saturating_duration_since(*called));
        }
        if let Some(t) = events.get(pod) {
            out.event.push(t.saturating_duration_since(*returned));
        }
    }
    out.finding_from_call.sort();
    out.finding.sort();
    out.event.sort();
    out.inject_call.sort();
    println!(
        "latency phase: {:.0}s wall, {} pod events ({:.0}/s, simulated speed {:.1}x..{:.1}x); podwarden {:.3}s CPU per 10k events there",
        out.wall,
        out.events,
        out.events as f64 / out.wall,
        out.speed.0,
        out.speed.1,
        out.podwarden_cpu.as_secs_f64() * 10_000.0 / out.podwarden_events.max(1) as f64,
    );
    println!(
        "  {} injections ({} refused): store->finding p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} found; from before the inject call: p50 {:.2} ms, p99 {:.2} ms); store->Event p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} stored); inject call p99 {:.2} ms",
        out.injected,
        out.refused,
        ms(percentile(&out.finding, 50.0)),
        ms(percentile(&out.finding, 99.0)),
        ms(out.finding.last().copied().unwrap_or_default()),
        out.finding.len(),
        ms(percentile(&out.finding_from_call, 50.0)),
        ms(percentile(&out.finding_from_call, 99.0)),
        ms(percentile(&out.event, 50.0)),
        ms(percentile(&out.event, 99.0)),
        ms(out.event.last().copied().unwrap_or_default()),
        out.event.len(),
        ms(percentile(&out.inject_call, 99.0)),
    );
    out
}

fn print_table(reports: &[Report], settings: &Settings) {
    println!(
        "\n== summary: one run; {} pods; CPU is each consumer's own thread ==",
        if settings.bare {
            "bare"
        } else {
            "ReplicaSet-owned"
        }
    );
    let row = |label: &str, cells: Vec<String>| {
        print!("{label:<50}");
        for c in cells {
            print!(" {c:>15}");
        }
        println!();
    };
    let f = |v: f64, p: usize| format!("{v:.p$}");
    let each = |g: &dyn Fn(&Report) -> String| reports.iter().map(g).collect::<Vec<_>>();
    let per_pod = |bytes: isize, pods: usize| bytes as f64 / pods.max(1) as f64;
    row("pods", each(&|r| r.pods.to_string()));
    println!("throughput window (the same stream; each consumer works through each step alone)");
    row("  pod events", each(&|r| r.window_events.to_string()));
    row(
        "  podwarden events/s per core (goal >= 20k)",
        each(&|r| f(r.pw.rate(), 0)),
    );
    row(
        "  podwarden CPU s per 10k events",
        each(&|r| f(r.pw.per_10k(), 3)),
    );
    row(
        "  reflector CPU s per 10k events",
        each(&|r| f(r.rf.per_10k(), 3)),
    );
    row(
        "  floor CPU s per 10k events",
        each(&|r| f(r.fl.per_10k(), 3)),
    );
    row(
        "  CPU podwarden / reflector",
        each(&|r| f(r.pw.per_10k() / r.rf.per_10k().max(1e-12), 2)),
    );
    row(
        "  CPU podwarden / floor",
        each(&|r| f(r.pw.per_10k() / r.fl.per_10k().max(1e-12), 2)),
    );
    println!("memory");
    row(
        "  podwarden heap B per cached pod (goal <= 2048)",
        each(&|r| f(per_pod(r.pw_heap_steady, r.pw_cached_steady), 0)),
    );
    row(
        "  reflector heap B per cached pod",
        each(&|r| f(per_pod(r.rf_heap_steady, r.rf_cached_steady), 0)),
    );
    row(
        "  heap podwarden / reflector",
        each(&|r| {
            let pw = per_pod(r.pw_heap_steady, r.pw_cached_steady);
            let rf = per_pod(r.rf_heap_steady, r.rf_cached_steady);
            f(pw / rf.max(1e-12), 3)
        }),
    );
    row(
        "  podwarden RSS growth at sync MiB (goal <= 400)",
        each(&|r| f(mib(r.podwarden.rss as f64), 1)),
    );
    row(
        "  podwarden RSS growth B per cached pod",
        each(&|r| f(r.podwarden.rss as f64 / r.podwarden.cached.max(1) as f64, 0)),
    );
    row(
        "  reflector RSS growth B per cached pod",
        each(&|r| f(r.reflector.rss as f64 / r.reflector.cached.max(1) as f64, 0)),
    );
    println!("startup (list and audit every pod; podwarden also lists Events)");
    row(
        "  podwarden s wall / s CPU",
        each(&|r| {
            format!(
                "{:.2}/{:.2}",
                r.podwarden.wall.as_secs_f64(),
                r.podwarden.cpu.as_secs_f64()
            )
        }),
    );
    row(
        "  reflector s wall / s CPU",
        each(&|r| {
            format!(
                "{:.2}/{:.2}",
                r.reflector.wall.as_secs_f64(),
                r.reflector.cpu.as_secs_f64()
            )
        }),
    );
    println!(
        "latency phase (podwarden alone, events as they come; {} injections/s, --event-qps {})",
        settings.inject_rate, settings.event_qps
    );
    row(
        "  pod events/s achieved (target RATE)",
        each(&|r| f(r.latency.events as f64 / r.latency.wall.max(1e-9), 0)),
    );
    row(
        "  podwarden CPU s per 10k events there",
        each(&|r| {
            f(
                r.latency.podwarden_cpu.as_secs_f64() * 10_000.0
                    / r.latency.podwarden_events.max(1) as f64,
                3,
            )
        }),
    );
    row(
        "  store->finding p50 ms",
        each(&|r| f(ms(percentile(&r.latency.finding, 50.0)), 2)),
    );
    row(
        "  store->finding p99 ms (goal <= 50)",
        each(&|r| f(ms(percentile(&r.latency.finding, 99.0)), 2)),
    );
    row(
        "  same, from before the inject call: p99 ms",
        each(&|r| f(ms(percentile(&r.latency.finding_from_call, 99.0)), 2)),
    );
    row(
        "  store->Event stored p50 ms",
        each(&|r| f(ms(percentile(&r.latency.event, 50.0)), 1)),
    );
    row(
        "  store->Event stored p99 ms (goal <= 1000)",
        each(&|r| f(ms(percentile(&r.latency.event, 99.0)), 1)),
    );
    row(
        "  injections stored/found/Events",
        each(&|r| {
            format!(
                "{}/{}/{}",
                r.latency.injected,
                r.latency.finding.len(),
                r.latency.event.len()
            )
        }),
    );
    println!("checks");
    row(
        "  heap left after stop B (pw/refl/floor)",
        each(&|r| format!("{}/{}/{}", r.residue.0, r.residue.1, r.residue.2)),
    );
    row("  podwarden relists", each(&|r| r.relists.to_string()));
}

fn main() {
    println!(
        "mimalloc whole-heap collection every {} slow-path allocations: {}",
        podwarden_sandbox::alloc::COLLECT_EVERY,
        podwarden_sandbox::alloc::tune()
    );
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(
            FindingClock,
            tracing_subscriber::filter::Targets::new()
                .with_target("podwarden::controller", tracing::Level::INFO),
        )),
    )
    .expect("the only subscriber");
    let settings = Settings::from_env();
    let cpu0 = thread_cpu();
    let started = Instant::now();
    let mut reports = Vec::new();
    for &pods in &settings.sizes {
        reports.push(run_size(pods, &settings));
    }
    if settings.shard.is_none() {
        print_table(&reports, &settings);
    }
    println!(
        "wall time {:.0}s (bench thread {:.0}s CPU)",
        started.elapsed().as_secs_f64(),
        (thread_cpu() - cpu0).as_secs_f64()
    );
}
