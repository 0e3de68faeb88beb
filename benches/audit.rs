//! Audit throughput against the floor, and memory per retained pod view.
//!
//! `cargo bench --bench audit` prints, from one run on the same bytes:
//! - events/s of the full audit (read + parse + rules) divided by events/s of serde_json
//!   scanning the same documents into `IgnoredAny` (goal >= 0.8);
//! - the compact view's parse against the full `k8s_openapi` Pod's;
//! - heap bytes per retained view of an owned pod (goal <= 2 KB), against the full Pod.
//!
//! Input: the realistic 11 KB pod watch event (with managedFields) from
//! `fixtures/pod-watch-event.json`, varied per event (uid, resourceVersion,
//! container states, restart counts, condition times).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use podwarden::audit::cli::{Output, audit_documents};
use podwarden::audit::input::DocumentReader;
use podwarden::audit::{Auditor, Scope};
use podwarden_model::{PodView, RuleSettings, Timestamp};
use serde::de::IgnoredAny;
use serde_json::{Value, json};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const FIXTURE: &str = include_str!("../fixtures/pod-watch-event.json");
const PODS: usize = 1_000;
const EVENTS: usize = 10_000;
const ROUNDS: usize = 5;

fn ts(secs: i64) -> String {
    Timestamp(1_785_578_400 + secs).to_string()
}

/// `EVENTS` watch events over `pods` pods: each pod's app container runs, crashes, and is
/// restarted with back-off, conditions flipping with it.
fn stream(pods: usize) -> Vec<u8> {
    let base: Value = serde_json::from_str(FIXTURE).expect("fixture");
    let mut out = Vec::with_capacity(EVENTS * (FIXTURE.len() + 64));
    for i in 0..EVENTS {
        let (pod, step) = (i % pods, (i / pods) as i64);
        let mut o = base["object"].clone();
        let o = &mut o;
        o["metadata"]["uid"] = json!(format!("9f1c2d3e-4b5a-6c7d-8e9f-{pod:012}"));
        o["metadata"]["name"] = json!(format!("web-frontend-7d9f8c6b5d-{pod:05}"));
        o["metadata"]["resourceVersion"] = json!((184_467_321 + i).to_string());
        let restarts = step / 2;
        let t = step * 60;
        let app = &mut o["status"]["containerStatuses"][0];
        app["restartCount"] = json!(restarts);
        if step % 2 == 1 {
            app["state"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ts(t - 50), "finishedAt": ts(t)}});
            app["ready"] = json!(false);
        } else if step > 0 {
            app["state"] = json!({"running": {"startedAt": ts(t)}});
            app["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ts(t - 110), "finishedAt": ts(t - 60)}});
        }
        let ready = if step % 2 == 1 { "False" } else { "True" };
        for c in o["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
        {
            if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                c["status"] = json!(ready);
                c["lastTransitionTime"] = json!(ts(t));
            }
        }
        // As kubectl writes it: the type first, then the object.
        let kind = if step == 0 { "ADDED" } else { "MODIFIED" };
        out.extend_from_slice(format!(r#"{{"type":"{kind}","object":"#).as_bytes());
        serde_json::to_writer(&mut out, &*o).expect("serialize");
        out.extend_from_slice(b"}\n");
    }
    out
}

fn floor(bytes: &[u8]) -> usize {
    let mut n = 0;
    for doc in serde_json::Deserializer::from_slice(bytes).into_iter::<IgnoredAny>() {
        doc.expect("valid json");
        n += 1;
    }
    n
}

/// The audit as `podwarden audit -o json` runs it, on the bytes already in memory (as the
/// floor has them).
fn audit(bytes: Vec<u8>) -> usize {
    let mut sink = Vec::new();
    let code = audit_documents(
        DocumentReader::from_vec(bytes),
        Auditor::new(RuleSettings::default(), Scope::default()),
        Output::Json,
        &mut sink,
        &mut std::io::stderr(),
    )
    .expect("audit");
    std::hint::black_box((code, sink.len()));
    EVENTS
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rate(f: impl Fn() -> usize) -> f64 {
    let start = Instant::now();
    let n = std::hint::black_box(f());
    n as f64 / start.elapsed().as_secs_f64()
}

/// Like [`rate`], with an input prepared outside the timed part.
fn rate_with<T>(input: T, f: impl FnOnce(T) -> usize) -> f64 {
    let start = Instant::now();
    let n = std::hint::black_box(f(input));
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let bytes = stream(PODS);
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "input: {EVENTS} watch events over {PODS} pods, {mb:.1} MB ({} bytes/event)",
        bytes.len() / EVENTS
    );

    // `AUDIT_BENCH_PROFILE=audit|floor` loops one side only, for a profiler.
    match std::env::var("AUDIT_BENCH_PROFILE").as_deref() {
        Ok("audit") => {
            return (0..20).for_each(|_| {
                audit(bytes.clone());
            });
        }
        Ok("floor") => {
            return (0..20).for_each(|_| {
                floor(&bytes);
            });
        }
        Ok("view") => {
            let objs: Vec<Vec<u8>> = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .take(2000)
                .map(|l| {
                    serde_json::from_slice::<Value>(l).expect("event")["object"]
                        .to_string()
                        .into_bytes()
                })
                .collect();
            for _ in 0..100 {
                for o in &objs {
                    std::hint::black_box(PodView::from_slice(o).expect("view"));
                }
            }
            return;
        }
        Ok("reader") => {
            for _ in 0..ROUNDS {
                let r = rate(|| {
                    let mut rd =
                        podwarden::audit::input::DocumentReader::new(Cursor::new(&bytes[..]));
                    let mut n = 0;
                    while let Some(items) = rd
                        .next_document(&podwarden_model::view::NoSpecs)
                        .expect("read")
                    {
                        n += items.len();
                    }
                    n
                });
                let f = rate(|| floor(&bytes));
                let v = rate(|| {
                    bytes
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| {
                            let mut de = serde_json::Deserializer::from_slice(l);
                            let ev: Result<serde::de::IgnoredAny, _> =
                                serde::Deserialize::deserialize(&mut de);
                            ev.map(|_| 1).unwrap_or(0)
                        })
                        .sum()
                });
                println!("reader {r:.0}/s floor {f:.0}/s  per-line floor {v:.0}/s");
            }
            return;
        }
        _ => {}
    }

    // Alternate the two so both see the same machine state; medians of ROUNDS runs.
    let (mut floors, mut audits) = (Vec::new(), Vec::new());
    audit(bytes.clone());
    for _ in 0..ROUNDS {
        floors.push(rate(|| floor(&bytes)));
        audits.push(rate_with(bytes.clone(), audit));
    }
    let (f, a) = (median(floors), median(audits));
    println!(
        "floor  (serde_json into IgnoredAny):   {f:>9.0} events/s  {:>6.0} MB/s",
        f * mb / EVENTS as f64
    );
    println!(
        "audit  (read + parse + rules + JSON):  {a:>9.0} events/s  {:>6.0} MB/s",
        a * mb / EVENTS as f64
    );
    println!("ratio  audit / floor = {:.2}   (goal >= 0.8)", a / f);

    // The worst case: every event a pod seen for the first time (no spec to reuse).
    let fresh = stream(EVENTS);
    let (mut floors, mut audits) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        floors.push(rate(|| floor(&fresh)));
        audits.push(rate_with(fresh.clone(), audit));
    }
    let (f1, a1) = (median(floors), median(audits));
    println!(
        "first sight of every pod: floor {f1:.0}/s, audit {a1:.0}/s, ratio {:.2}",
        a1 / f1
    );
    drop(fresh);

    // The compact view against the full typed Pod, parse only.
    let objects: Vec<String> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .take(2_000)
        .map(|l| {
            let v: Value = serde_json::from_slice(l).expect("event");
            v["object"].to_string()
        })
        .collect();
    let (mut views, mut pods) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        views.push(rate(|| {
            objects
                .iter()
                .map(|o| PodView::from_slice(o.as_bytes()).map(|_| 1).unwrap_or(0))
                .sum()
        }));
        pods.push(rate(|| {
            objects
                .iter()
                .map(|o| serde_json::from_str::<Pod>(o).map(|_| 1).unwrap_or(0))
                .sum()
        }));
    }
    let (v, p) = (median(views), median(pods));
    let fo = rate(|| {
        objects
            .iter()
            .map(|o| {
                serde_json::from_str::<IgnoredAny>(o)
                    .map(|_| 1)
                    .unwrap_or(0)
            })
            .sum()
    });
    println!(
        "parse  floor on the same objects {fo:.0}/s: view/floor = {:.2}",
        v / fo
    );
    println!(
        "parse  PodView {v:>9.0} pods/s, k8s_openapi Pod {p:>9.0} pods/s: view is {:.1}x faster",
        v / p
    );

    // Heap per retained view: the fixture's pod (owned by a ReplicaSet), many copies kept.
    let one = objects[0].clone();
    let n = 1_000;
    let before = LIVE.load(Ordering::Relaxed);
    let kept: Vec<PodView> = (0..n)
        .map(|_| PodView::from_slice(one.as_bytes()).expect("view"))
        .collect();
    let heap_view =
        (LIVE.load(Ordering::Relaxed) - before) as usize / n - std::mem::size_of::<PodView>();
    drop(kept);
    let before = LIVE.load(Ordering::Relaxed);
    let kept: Vec<Pod> = (0..n)
        .map(|_| serde_json::from_str::<Pod>(&one).expect("pod"))
        .collect();
    let heap_pod =
        (LIVE.load(Ordering::Relaxed) - before) as usize / n - std::mem::size_of::<Pod>();
    drop(kept);
    println!(
        "memory PodView {} bytes inline + {heap_view} heap = {} per owned pod (goal <= 2048); k8s_openapi Pod {} + {heap_pod} = {}: {:.0}x",
        std::mem::size_of::<PodView>(),
        std::mem::size_of::<PodView>() + heap_view,
        std::mem::size_of::<Pod>(),
        std::mem::size_of::<Pod>() + heap_pod,
        (std::mem::size_of::<Pod>() + heap_pod) as f64
            / (std::mem::size_of::<PodView>() + heap_view) as f64
    );
}
