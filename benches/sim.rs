//! Simulator benchmark: how many nodes, pods and pod status changes the simulated
//! cluster sustains on one core (goal: 1,000 nodes, 150k pods, 5k status changes/s at
//! speed 1).
//!
//! The cluster runs on a stepped clock on this thread, so every CPU cycle of the
//! scheduler, kubelets, controllers and the store's write path is counted on one core
//! (this thread's CPU time, from /proc/thread-self/schedstat). It loads NODES nodes and
//! PODS pods (a third crash-looping, a third running forever, a third completing), runs
//! them for WARMUP simulated seconds (every pod starting, the first exits and
//! restarts), then SECONDS more, and reports for each phase:
//! - pod status changes per simulated second, the load;
//! - CPU per simulated second, i.e. the highest speed factor sustainable on one core
//!   with that load (the goal holds when a phase of at least 5k changes per simulated
//!   second runs at 1x or faster);
//! - pod changes per CPU second;
//!
//! and create and schedule throughput, and resident memory.
//!
//! Run: `cargo bench --bench sim` (NODES, PODS, WARMUP, SECONDS to change the load).

use std::time::{Duration, Instant};

/// The allocator the `podwarden` binary runs with.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use podwarden::sandbox::{SandboxConfig, StoreConfig, WatchEvent, WatchOptions, WriteOptions};
use podwarden::sim::{NodeShape, SimConfig, Simulation};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
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

fn main() {
    let nodes = env("NODES", 1000);
    let pods = env("PODS", 150_000);
    let seconds = env("SECONDS", 120);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = SandboxConfig {
        store: StoreConfig {
            history_window: 10_000,
            watch_buffer: 1_000_000,
            ..StoreConfig::default()
        },
        ..SandboxConfig::default()
    };
    let per_node = (pods / nodes.max(1) + 1).max(110) as u64 * 2;
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
        ..SimConfig::default()
    };
    let cpu0 = thread_cpu();
    let started = Instant::now();
    let sim = runtime
        .block_on(Simulation::start(sandbox, config))
        .expect("simulation starts");
    let store = sim.store().clone();
    let rt_pods = store.resource("", "v1", "pods").expect("pods");
    println!(
        "{nodes} nodes registered in {:.2}s CPU",
        (thread_cpu() - cpu0).as_secs_f64()
    );
    let mut watch = store
        .watch(
            &rt_pods,
            None,
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                ..Default::default()
            },
        )
        .expect("watch");
    let count_changes = |watch: &mut podwarden::sandbox::Watch| {
        let mut n = 0u64;
        while let Some(ev) = watch.try_next() {
            if matches!(ev, WatchEvent::Modified(_)) {
                n += 1;
            }
        }
        n
    };

    let cpu = thread_cpu();
    let opts = WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };
    for i in 0..pods {
        store
            .create(&rt_pods, Some("default"), pod(i), &opts)
            .expect("create pod");
        if i % 1000 == 999 {
            sim.settle().expect("stepped");
            count_changes(&mut watch);
        }
    }
    let create_cpu = thread_cpu() - cpu;
    println!(
        "{pods} pods created and handed to the scheduler: {:.0} pods/s ({:.2}s CPU)",
        pods as f64 / create_cpu.as_secs_f64(),
        create_cpu.as_secs_f64()
    );
    // Let everything be scheduled and started (and the first crash loops begin), then
    // run on. Counted every simulated second: the bench's own watch must not overflow.
    count_changes(&mut watch);
    let warmup = env("WARMUP", 120);
    let mut phase = |name: &str, seconds: usize| {
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
    };
    phase("start (pods starting, first exits)", warmup);
    phase("after start (crash loops backing off)", seconds);
    {
        let cluster = sim.cluster();
        println!(
            "cluster: {} pods cached, {} timers pending, {} watch events handled, {} relists, {} event writes, {} events over their source's budget",
            cluster.shared.pods.len(),
            cluster.shared.pending_timers(),
            cluster.events_handled,
            cluster.relists,
            cluster.shared.recorder.written,
            cluster.shared.recorder.filtered,
        );
    }
    println!(
        "resident memory {:.0} MiB ({:.1} KiB per pod); wall time {:.1}s",
        rss_mib(),
        rss_mib() * 1024.0 / pods.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    runtime.block_on(sim.shutdown());
}
