//! Simulator benchmark: how many nodes, pods and pod status changes the simulated
//! cluster sustains on one core (goal: 1,000 nodes, 150k pods, 5k status changes/s at
//! speed 1).
//!
//! Two modes, both loading NODES nodes and PODS pods (a third crash-looping, a third
//! running forever, a third completing; PodGC keeps every terminated pod, so all PODS
//! stay in the store for the whole run):
//!
//! - **stepped** (default): the cluster runs on a stepped clock on this thread, so every
//!   CPU cycle of the scheduler, kubelets, controllers and the store's write path is
//!   counted on one core (this thread's CPU time, from /proc/thread-self/schedstat). It
//!   runs WARMUP simulated seconds (every pod starting, the first exits and restarts),
//!   then SECONDS more, and reports for each phase the load (pod changes per simulated
//!   second), the CPU per simulated second, i.e. the highest speed factor sustainable on
//!   one core with that load (the goal holds when a phase of at least 5k changes per
//!   simulated second runs at 1x or faster), and pod changes per CPU second; then
//!   create and schedule throughput, resident memory, and a floor measured in the same
//!   run (before and after the phases): JSON round trips (parse and serialize) of the
//!   stored pods per CPU second, so a pod change's cost reads as a number of round
//!   trips whatever the machine.
//! - **real time** (`REALTIME=1`): the simulation runs at speed 1 (SPEED to change it)
//!   on its own driver thread, as `podwarden sandbox` runs it, while this thread
//!   creates the pods at CREATE_RATE per second (default 1,250, about 5k pod changes
//!   per second once they start; 0 creates them at once) and then watches for SECONDS
//!   more wall seconds. Reported per 10 s
//!   window: pod changes per second and the simulation's lag (how long its most
//!   overdue timer has waited); and the driver thread's CPU share. Run it pinned to one
//!   core: `REALTIME=1 taskset -c 0 cargo bench --bench sim`.
//!
//! Run: `cargo bench --bench sim` (NODES, PODS, WARMUP, SECONDS to change the load).

use std::time::{Duration, Instant};

/// The allocator the `podwarden` binary runs with.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use podwarden_sandbox::api::{
    ListOptions, SandboxConfig, Store, StoreConfig, Watch, WatchEvent, WatchOptions, WriteOptions,
};
use podwarden_sandbox::sim::{NodeShape, SimConfig, SimHandle, Simulation};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn schedstat_cpu(path: &str) -> Duration {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    schedstat_cpu("/proc/thread-self/schedstat")
}

/// CPU time of this process's thread named `name`.
fn named_thread_cpu(name: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return schedstat_cpu(&dir.join("schedstat").to_string_lossy());
        }
    }
    Duration::ZERO
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
        })
        .unwrap_or_default()
}

fn rss_mib() -> f64 {
    proc_status("VmRSS:")
        .split_whitespace()
        .next()
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn pod(i: usize) -> serde_json::Value {
    // Seconds vary per pod so the changes spread over time.
    let secs = 20 + (i * 7919) % 40;
    let (policy, script) = match i % 3 {
        0 => ("Always", format!("run={secs}s exit=1")),
        1 => ("Always", "run=1s forever ready=2s".to_string()),
        _ => ("OnFailure", format!("run={secs}s exit=0")),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("load-{i:06}"), "namespace": "default",
                     "labels": {"app": format!("load-{}", i % 100)},
                     "annotations": {"sandbox.podwarden.dev/script.app": script}},
        "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "registry.example/app:1",
                 "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]},
    })
}

/// Pod changes (MODIFIED events) waiting on `watch`.
fn count_changes(watch: &mut Watch) -> u64 {
    let mut n = 0u64;
    while let Some(ev) = watch.try_next() {
        if matches!(ev, WatchEvent::Modified(_)) {
            n += 1;
        }
    }
    n
}

struct Bench {
    nodes: usize,
    pods: usize,
    seconds: usize,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    fn start(&self, speed: Option<f64>) -> SimHandle {
        let sandbox = SandboxConfig {
            store: StoreConfig {
                history_window: 10_000,
                watch_buffer: 1_000_000,
                ..StoreConfig::default()
            },
            ..SandboxConfig::default()
        };
        let per_node = (self.pods / self.nodes.max(1) + 1).max(110) as u64 * 2;
        let config = SimConfig {
            nodes: self.nodes,
            node_shape: NodeShape {
                pods: per_node,
                cpu_millis: per_node * 20,
                memory_bytes: per_node * (64 << 20),
                ..NodeShape::default()
            },
            seed: 42,
            speed,
            start: None,
            // Every pod stays, terminated or not: the load is PODS pods throughout.
            terminated_pod_gc_threshold: 0,
        };
        self.runtime
            .block_on(Simulation::start(sandbox, config))
            .expect("simulation starts")
    }

    fn watch_pods(store: &Store) -> Watch {
        let rt_pods = store.resource("", "v1", "pods").expect("pods");
        store
            .watch(
                &rt_pods,
                None,
                &WatchOptions {
                    resource_version: Some(store.resource_version().to_string()),
                    ..Default::default()
                },
            )
            .expect("watch")
    }

    /// Creates the pods numbered `range` (see [`pod`]).
    fn create_pods(store: &Store, range: std::ops::Range<usize>) {
        let rt_pods = store.resource("", "v1", "pods").expect("pods");
        let opts = WriteOptions {
            field_manager: Some("bench".into()),
            ..Default::default()
        };
        for i in range {
            store
                .create(&rt_pods, Some("default"), pod(i), &opts)
                .expect("create pod");
        }
    }

    fn stepped(&self) {
        let cpu0 = thread_cpu();
        let started = Instant::now();
        let sim = self.start(None);
        let store = sim.store().clone();
        println!(
            "{} nodes registered in {:.2}s CPU",
            self.nodes,
            (thread_cpu() - cpu0).as_secs_f64()
        );
        let mut watch = Self::watch_pods(&store);
        let cpu = thread_cpu();
        // A thousand at a time, each batch scheduled and started before the next.
        for first in (0..self.pods).step_by(1000) {
            Self::create_pods(&store, first..(first + 1000).min(self.pods));
            sim.settle().expect("stepped");
            count_changes(&mut watch);
        }
        let create_cpu = thread_cpu() - cpu;
        println!(
            "{} pods created and handed to the scheduler: {:.0} pods/s ({:.2}s CPU)",
            self.pods,
            self.pods as f64 / create_cpu.as_secs_f64(),
            create_cpu.as_secs_f64()
        );
        // Let everything be scheduled and started (and the first crash loops begin),
        // then run on. Counted every simulated second: the bench's own watch must not
        // overflow.
        count_changes(&mut watch);
        let floor_before = round_trip_floor(&store);
        let mut phase = |name: &str, seconds: usize| -> f64 {
            let cpu = thread_cpu();
            let mut changes = 0;
            for _ in 0..seconds {
                sim.advance(Duration::from_secs(1)).expect("stepped");
                changes += count_changes(&mut watch);
            }
            let cpu = (thread_cpu() - cpu).as_secs_f64();
            let seconds = seconds.max(1) as f64;
            println!(
                "{name} ({seconds} simulated s): {changes} pod changes = {:.0} per simulated s; {cpu:.2}s CPU = {:.0} changes per CPU second; CPU per simulated second {:.0} ms = sustainable speed {:.2}x on one core",
                changes as f64 / seconds,
                changes as f64 / cpu,
                cpu * 1000.0 / seconds,
                seconds / cpu,
            );
            changes as f64 / cpu
        };
        let start_rate = phase("start (pods starting, first exits)", env("WARMUP", 120));
        phase("after start (crash loops backing off)", self.seconds);
        {
            let cluster = sim.cluster();
            println!(
                "cluster: {} pods cached, {} timers pending, {} watch events handled, {} relists, {} event writes, {} events over their source's budget",
                cluster.world.pods.len(),
                cluster.world.pending_timers(),
                cluster.events_handled,
                cluster.relists,
                cluster.world.events.written,
                cluster.world.events.filtered,
            );
        }
        println!(
            "resident memory {:.0} MiB ({:.1} KiB per pod); wall time {:.1}s",
            rss_mib(),
            rss_mib() * 1024.0 / self.pods.max(1) as f64,
            started.elapsed().as_secs_f64()
        );
        // Before and after the phases: how far the machine's speed drifted meanwhile.
        let floor_after = round_trip_floor(&store);
        let floor = (floor_before + floor_after) / 2.0;
        println!(
            "floor: {floor_before:.0} pod JSON round trips (parse + serialize a stored pod) per CPU second before the phases, {floor_after:.0} after; a pod change in the start phase costs {:.1} round trips (at their mean)",
            floor / start_rate
        );
        self.runtime.block_on(sim.shutdown());
    }

    fn real_time(&self) {
        let speed = std::env::var("SPEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0);
        let rate = env("CREATE_RATE", 1250);
        println!(
            "real time at speed {speed}, pods created at {rate}/s (0: at once); CPUs allowed: {}",
            proc_status("Cpus_allowed_list:")
        );
        let sim = self.start(Some(speed));
        let store = sim.store().clone();
        let mut watch = Self::watch_pods(&store);
        let started = Instant::now();
        let sim_cpu0 = named_thread_cpu("sandbox-sim");
        let (mut created, mut all_created) = (0, None);
        let (mut window_changes, mut window_lag) = (0u64, Duration::ZERO);
        let (mut peak_rate, mut max_lag) = (0.0f64, Duration::ZERO);
        let mut window_start = Instant::now();
        let mut tick = Instant::now();
        let mut last_sample = Instant::now();
        let run = Duration::from_secs(self.seconds as u64);
        while all_created.is_none_or(|at: Instant| at.elapsed() < run) {
            // Create the pods due by now (all at once when the rate is 0).
            let due = match rate {
                0 => self.pods,
                r => ((started.elapsed().as_secs_f64() * r as f64) as usize).min(self.pods),
            };
            if created < due {
                Self::create_pods(&store, created..due);
                created = due;
            }
            if created == self.pods && all_created.is_none() {
                all_created = Some(Instant::now());
                println!(
                    "t={:>4.0}s: all {} pods created",
                    started.elapsed().as_secs_f64(),
                    self.pods
                );
            }
            tick += Duration::from_millis(100);
            std::thread::sleep(tick.saturating_duration_since(Instant::now()));
            if last_sample.elapsed() < Duration::from_secs(1) {
                continue;
            }
            last_sample = Instant::now();
            window_changes += count_changes(&mut watch);
            let lag = {
                let cluster = sim.cluster();
                let now = sim.now();
                cluster
                    .next_timer_at()
                    .and_then(|due| Duration::try_from(now.duration_since(due)).ok())
                    .unwrap_or_default()
            };
            window_lag = window_lag.max(lag);
            let elapsed = window_start.elapsed();
            if elapsed >= Duration::from_secs(10) {
                let rate = window_changes as f64 / elapsed.as_secs_f64();
                println!(
                    "t={:>4.0}s: {created:>6} pods, {rate:>6.0} pod changes/s, lag up to {:>5} ms",
                    started.elapsed().as_secs_f64(),
                    window_lag.as_millis()
                );
                peak_rate = peak_rate.max(rate);
                max_lag = max_lag.max(window_lag);
                (window_changes, window_lag, window_start) = (0, Duration::ZERO, Instant::now());
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let sim_cpu = (named_thread_cpu("sandbox-sim") - sim_cpu0).as_secs_f64();
        println!(
            "peak {peak_rate:.0} pod changes/s over 10 s; largest lag {} ms; the simulation thread used {sim_cpu:.1}s CPU in {wall:.1}s ({:.0}% of a core); resident memory {:.0} MiB",
            max_lag.as_millis(),
            100.0 * sim_cpu / wall,
            rss_mib()
        );
        self.runtime.block_on(sim.shutdown());
    }
}

/// JSON round trips (parse into a value, serialize back) of stored pods per CPU
/// second on this thread: what any write of a pod costs at the least.
fn round_trip_floor(store: &Store) -> f64 {
    let rt_pods = store.resource("", "v1", "pods").expect("pods");
    let page = store
        .list(
            &rt_pods,
            None,
            &ListOptions {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .expect("list pods");
    let cpu = thread_cpu();
    let mut trips = 0u64;
    while thread_cpu() - cpu < Duration::from_millis(500) {
        for pod in &page.items {
            let value: serde_json::Value =
                serde_json::from_slice(&pod.json).expect("stored pod parses");
            let bytes = serde_json::to_vec(&value).expect("pod serializes");
            std::hint::black_box(bytes);
            trips += 1;
        }
    }
    trips as f64 / (thread_cpu() - cpu).as_secs_f64()
}

fn main() {
    // As the `podwarden` binary runs it.
    println!(
        "mimalloc whole-heap collection every {} slow-path allocations: {}",
        podwarden_sandbox::alloc::COLLECT_EVERY,
        podwarden_sandbox::alloc::tune()
    );
    let bench = Bench {
        nodes: env("NODES", 1000),
        pods: env("PODS", 150_000),
        seconds: env("SECONDS", 120),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
    };
    if env("REALTIME", 0) == 1 {
        bench.real_time();
    } else {
        bench.stepped();
    }
}
