//! Sandbox benchmark: the sandbox must never be the bottleneck of a controller
//! benchmark. Loads 150k realistic pods (the 11 KB pod of
//! tests/fixtures/sandbox/pod-watch-event.json), then reports:
//! - memory per stored pod (a counting global allocator),
//! - list time for all pods, in-process and over HTTP (whole and in 500-item pages),
//! - watch events/s streamed over HTTP to one watcher, the server on one core
//!   (a current-thread runtime on its own thread),
//! - pod status patches, node Lease renewals and Event creates per second, in-process.
//!
//! Run: `cargo bench --bench sandbox` (PODS=N to change the count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use podwarden_sandbox::api::{
    Patch, Sandbox, SandboxConfig, Store, StoreConfig, Subresource, WriteOptions,
};
use serde_json::{Value, json};

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn fixture_pod() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/pod-watch-event.json"
    ))
    .expect("fixture pod");
    let event: Value = serde_json::from_str(&text).expect("fixture JSON");
    let mut pod = event["object"].clone();
    let meta = pod["metadata"].as_object_mut().expect("metadata");
    for key in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generateName",
    ] {
        meta.remove(key);
    }
    pod
}

fn load(store: &Store, count: usize) -> Duration {
    let pods = store.resource("", "v1", "pods").unwrap();
    let namespaces = store.resource("", "v1", "namespaces").unwrap();
    let template = fixture_pod();
    let namespace = template["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    store
        .create(
            &namespaces,
            None,
            json!({"metadata": {"name": namespace}}),
            &WriteOptions::default(),
        )
        .unwrap();
    let started = Instant::now();
    for i in 0..count {
        let mut pod = template.clone();
        pod["metadata"]["name"] = json!(format!("web-frontend-{i:06}"));
        store
            .create(
                &pods,
                Some(&namespace),
                pod,
                &WriteOptions {
                    field_manager: Some("bench".into()),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    started.elapsed()
}

fn main() {
    let count: usize = std::env::var("PODS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(150_000);
    let config = SandboxConfig {
        store: StoreConfig {
            history_window: count + 10,
            watch_buffer: 10_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let store = Store::new(config.store.clone());
    let before = ALLOCATED.load(Ordering::Relaxed);
    let load_time = load(&store, count);
    let after = ALLOCATED.load(Ordering::Relaxed);
    let fixture_bytes = serde_json::to_vec(&fixture_pod()).unwrap().len();
    println!("pods stored:               {count} (fixture pod {fixture_bytes} bytes of JSON)");
    println!(
        "load (in-process creates): {:.2?} ({:.0} creates/s)",
        load_time,
        count as f64 / load_time.as_secs_f64()
    );
    println!(
        "memory per stored pod:     {} bytes (stored JSON with server fields and managedFields, index, history entry)",
        (after - before) / count as isize
    );
    let pods = store.resource("", "v1", "pods").unwrap();
    let namespace = fixture_pod()["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let writes = count.min(20_000);
    let status = WriteOptions {
        subresource: Subresource::Status,
        field_manager: Some("kubelet".into()),
        ..Default::default()
    };
    let t = Instant::now();
    for i in 0..writes {
        let patch = Patch::Strategic(
            json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": format!("r{i}")}]}}),
        );
        store
            .patch(
                &pods,
                Some(&namespace),
                &format!("web-frontend-{i:06}"),
                &patch,
                &status,
            )
            .unwrap();
    }
    let took = t.elapsed();
    println!(
        "status patches in-process: {:.0}/s ({writes} strategic merge patches of the 11 KB pod)",
        writes as f64 / took.as_secs_f64()
    );
    let t = Instant::now();
    let page = store.list(&pods, None, &Default::default()).unwrap();
    println!(
        "list, in-process:          {:.2?} ({} items)",
        t.elapsed(),
        page.items.len()
    );
    drop(page);

    // The server on one core: a current-thread runtime on its own thread.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_store = store.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let handle = Sandbox::start_with_store(config, server_store)
                .await
                .unwrap();
            addr_tx.send(handle.kube_config()).unwrap();
            let _ = stop_rx.await;
            handle.shutdown().await;
        });
    });
    let kube_config = addr_rx.recv().unwrap();
    // The watch replays the last `count` changes (creates and status patches) from the history.
    let store_rv_now = store.resource_version();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = kube::Client::try_from(kube_config).unwrap();
        // A raw GET counting bytes and lines; keeps the first bytes (list metadata).
        let get = |path: String, stop_after_lines: usize| {
            let client = client.clone();
            async move {
                let req = http::Request::get(path).body(kube::client::Body::empty()).unwrap();
                let res = client.send(req).await.unwrap();
                let mut body = res.into_body();
                let (mut bytes, mut newlines) = (0usize, 0usize);
                let mut head = Vec::new();
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.unwrap().into_data() {
                        bytes += data.len();
                        newlines += data.iter().filter(|b| **b == b'\n').count();
                        if head.len() < 4096 {
                            head.extend_from_slice(&data[..data.len().min(4096)]);
                        }
                    }
                    if newlines >= stop_after_lines {
                        break;
                    }
                }
                (bytes, newlines, head)
            }
        };
        let continue_of = |head: &[u8]| -> Option<String> {
            let at = head.windows(11).position(|w| w == b"\"metadata\":")? + 11;
            let meta: Value = serde_json::Deserializer::from_slice(&head[at..]).into_iter().next()?.ok()?;
            meta.get("continue").and_then(Value::as_str).map(str::to_string)
        };
        let t = Instant::now();
        let (bytes, _, _) = get("/api/v1/pods".into(), usize::MAX).await;
        let whole = t.elapsed();
        println!(
            "list over HTTP, one call:  {:.2?} ({:.0} MB, {:.0} MB/s)",
            whole,
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / whole.as_secs_f64()
        );
        let t = Instant::now();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &token {
                Some(c) => format!("/api/v1/pods?limit=500&continue={c}"),
                None => "/api/v1/pods?limit=500".to_string(),
            };
            let (_, _, head) = get(path, usize::MAX).await;
            pages += 1;
            token = continue_of(&head);
            if token.is_none() {
                break;
            }
        }
        println!("list over HTTP, 500/page:  {:.2?} ({pages} pages)", t.elapsed());

        // Watch: the last `count` changes, replayed from the history window, to one
        // watcher reading raw lines.
        let t = Instant::now();
        let from = store_rv_now - count as u64;
        let (bytes, lines, _) = get(format!("/api/v1/pods?watch=true&resourceVersion={from}"), count).await;
        let elapsed = t.elapsed();
        println!(
            "watch to one watcher:      {lines} events, {:.0} MB in {:.2?} => {:.0} events/s ({:.0} MB/s)",
            bytes as f64 / 1e6,
            elapsed,
            lines as f64 / elapsed.as_secs_f64(),
            bytes as f64 / 1e6 / elapsed.as_secs_f64()
        );
    });
    let _ = stop_tx.send(());
    server.join().unwrap();
    heartbeats_and_events(&store, &namespace);
}

/// Node heartbeats (each kubelet renews its Lease: a read, then an update of
/// `spec.renewTime`) and event creation, as a simulated cluster writes them.
fn heartbeats_and_events(store: &Store, namespace: &str) {
    let leases = store
        .resource("coordination.k8s.io", "v1", "leases")
        .unwrap();
    let kubelet = WriteOptions {
        field_manager: Some("kubelet".into()),
        ..Default::default()
    };
    let nodes = 1_000;
    let lease_ns = Some("kube-node-lease");
    for n in 0..nodes {
        let name = format!("node-{n:04}");
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": "2026-08-01T10:00:00.000000Z"}});
        store.create(&leases, lease_ns, lease, &kubelet).unwrap();
    }
    let rounds = 10;
    let t = Instant::now();
    for round in 0..rounds {
        for n in 0..nodes {
            let name = format!("node-{n:04}");
            let mut lease = store.get(&leases, lease_ns, &name).unwrap().value();
            lease["spec"]["renewTime"] = json!(format!("2026-08-01T10:{round:02}:00.{n:06}Z"));
            store
                .update(&leases, lease_ns, &name, lease, &kubelet)
                .unwrap();
        }
    }
    let took = t.elapsed();
    println!(
        "lease renewals in-process: {:.0}/s ({} renewals of {nodes} node Leases)",
        (rounds * nodes) as f64 / took.as_secs_f64(),
        rounds * nodes
    );

    let events = store.resource("", "v1", "events").unwrap();
    let count = 10_000;
    let t = Instant::now();
    for i in 0..count {
        let pod = format!("web-frontend-{:06}", i % 1000);
        let event = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{pod}.{i:016x}"), "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod,
                               "namespace": namespace, "fieldPath": "spec.containers{app}"},
            "reason": "Started", "message": "Started container app", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-0001"},
            "firstTimestamp": "2026-08-01T10:00:00Z", "lastTimestamp": "2026-08-01T10:00:00Z",
            "count": 1, "reportingComponent": "kubelet", "reportingInstance": "node-0001"});
        store
            .create(&events, Some(namespace), event, &WriteOptions::default())
            .unwrap();
    }
    let took = t.elapsed();
    println!(
        "event creates in-process:  {:.0}/s ({count} core/v1 Events)",
        count as f64 / took.as_secs_f64()
    );
}
