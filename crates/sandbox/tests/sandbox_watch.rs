//! Watches on the sandbox through `kube::Client` and the kube-runtime watcher: from a
//! version, bookmarks, 410 then relist, streaming lists, and recovery from every
//! injected fault without losing or duplicating an object's final state.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use podwarden_sandbox::api::{
    DeleteOptions, FaultConfig, Patch, Sandbox, SandboxConfig, SandboxHandle, Store, StoreConfig,
    WriteOptions,
};
use serde_json::{Value, json};

/// Deadline for anything a test waits on: never a timing assertion, only a guard
/// against hangs.
const DEADLINE: Duration = Duration::from_secs(60);

async fn sandbox_with(config: SandboxConfig) -> (SandboxHandle, Client) {
    let handle = Sandbox::start(config).await.expect("sandbox starts");
    let client = handle.client().expect("client");
    (handle, client)
}

async fn sandbox() -> (SandboxHandle, Client) {
    sandbox_with(SandboxConfig {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
}

fn pod_json(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}})
}

fn create(store: &Store, name: &str) -> u64 {
    let pods = store.resource("", "v1", "pods").unwrap();
    store
        .create(
            &pods,
            Some("default"),
            pod_json(name, json!({"app": "web"})),
            &WriteOptions::default(),
        )
        .unwrap()
        .resource_version
}

fn relabel(store: &Store, name: &str, value: &str) -> u64 {
    let pods = store.resource("", "v1", "pods").unwrap();
    let patch = Patch::Merge(json!({"metadata": {"labels": {"step": value}}}));
    store
        .patch(
            &pods,
            Some("default"),
            name,
            &patch,
            &WriteOptions::default(),
        )
        .unwrap()
        .resource_version
}

fn remove(store: &Store, name: &str) {
    let pods = store.resource("", "v1", "pods").unwrap();
    store
        .delete(&pods, Some("default"), name, &DeleteOptions::default())
        .unwrap();
}

fn rv_of(o: &impl ResourceExt) -> u64 {
    o.resource_version()
        .unwrap_or_default()
        .parse()
        .unwrap_or(0)
}

#[tokio::test]
async fn watch_from_a_version_replays_later_changes_in_order() {
    let (handle, client) = sandbox().await;
    let store = handle.store();
    let start = create(store, "a");
    create(store, "b");
    relabel(store, "a", "1");
    remove(store, "b");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let stream = pods
        .watch(&WatchParams::default(), &start.to_string())
        .await
        .unwrap();
    let events: Vec<WatchEvent<Pod>> = tokio::time::timeout(DEADLINE, stream.take(3).try_collect())
        .await
        .unwrap()
        .unwrap();
    let summary: Vec<(String, String, u64)> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(p) => ("ADDED".into(), p.name_any(), rv_of(p)),
            WatchEvent::Modified(p) => ("MODIFIED".into(), p.name_any(), rv_of(p)),
            WatchEvent::Deleted(p) => ("DELETED".into(), p.name_any(), rv_of(p)),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        summary
            .iter()
            .map(|s| (s.0.as_str(), s.1.as_str()))
            .collect::<Vec<_>>(),
        [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    );
    assert!(
        summary.windows(2).all(|w| w[0].2 < w[1].2),
        "resourceVersion order: {summary:?}"
    );
}

#[tokio::test]
async fn deleted_event_carries_the_final_object() {
    let (handle, client) = sandbox().await;
    let store = handle.store();
    let start = create(store, "gone");
    relabel(store, "gone", "last");
    remove(store, "gone");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let events: Vec<WatchEvent<Pod>> = tokio::time::timeout(
        DEADLINE,
        pods.watch(&WatchParams::default(), &start.to_string())
            .await
            .unwrap()
            .take(2)
            .try_collect(),
    )
    .await
    .unwrap()
    .unwrap();
    match &events[1] {
        WatchEvent::Deleted(p) => {
            assert_eq!(p.labels().get("step").map(String::as_str), Some("last"));
            assert_eq!(
                rv_of(p),
                handle.store().resource_version(),
                "the delete has its own resourceVersion"
            );
        }
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_are_sent_on_idle_watches() {
    let (handle, client) = sandbox().await;
    let start = create(handle.store(), "x");
    // Both changes happen before the watch opens: replayed from the history, they
    // precede any bookmark whatever the timing.
    create(handle.store(), "y");
    let later = relabel(handle.store(), "y", "1");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut stream = pods
        .watch(&WatchParams::default(), &start.to_string())
        .await
        .unwrap()
        .boxed();
    let mut saw = Vec::new();
    let bookmark = tokio::time::timeout(DEADLINE, async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            match ev {
                WatchEvent::Bookmark(b) => return b.metadata.resource_version,
                other => saw.push(other),
            }
        }
        panic!("watch ended without a bookmark")
    })
    .await
    .unwrap();
    assert_eq!(saw.len(), 2, "both changes precede the bookmark");
    assert!(bookmark.parse::<u64>().unwrap() >= later);
}

#[tokio::test]
async fn watch_without_bookmarks_gets_none() {
    let (handle, client) = sandbox().await;
    let start = create(handle.store(), "x");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let stream = pods
        .watch(
            &WatchParams::default().disable_bookmarks().timeout(1),
            &start.to_string(),
        )
        .await
        .unwrap();
    let events: Vec<WatchEvent<Pod>> = tokio::time::timeout(DEADLINE, stream.try_collect())
        .await
        .unwrap()
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn too_old_version_is_410_expired_then_relist_works() {
    let config = SandboxConfig {
        store: StoreConfig {
            history_window: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let (handle, client) = sandbox_with(config).await;
    let start = create(handle.store(), "p");
    for i in 0..10 {
        relabel(handle.store(), "p", &i.to_string());
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut stream = pods
        .watch(&WatchParams::default(), &start.to_string())
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.contains("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    let list = pods.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    let last = relabel(handle.store(), "p", "fresh");
    let mut stream = pods
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Modified(p)) => assert_eq!(rv_of(&p), last),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
}

#[tokio::test]
async fn selection_changes_become_added_and_deleted() {
    let (handle, client) = sandbox().await;
    let store = handle.store();
    let start = create(store, "s");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let wp = WatchParams::default().labels("step=in");
    let stream = pods.watch(&wp, &start.to_string()).await.unwrap();
    relabel(store, "s", "in");
    relabel(store, "s", "out");
    let events: Vec<WatchEvent<Pod>> = tokio::time::timeout(DEADLINE, stream.take(2).try_collect())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(events[0], WatchEvent::Added(_)), "{events:?}");
    assert!(matches!(events[1], WatchEvent::Deleted(_)), "{events:?}");
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_the_annotated_bookmark() {
    let (handle, client) = sandbox().await;
    for n in ["a", "b", "c"] {
        create(handle.store(), n);
    }
    let req = http::Request::get(
        "/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=&timeoutSeconds=2",
    )
    .body(vec![])
    .unwrap();
    let text = tokio::time::timeout(DEADLINE, client.request_text(req))
        .await
        .unwrap()
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(&types[..4], ["ADDED", "ADDED", "ADDED", "BOOKMARK"]);
    assert_eq!(
        lines[3]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // And the kube-runtime watcher in streaming-list mode gets through its init.
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut events = watcher(pods, watcher::Config::default().streaming_lists()).boxed();
    let mut init = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(ev) = events.try_next().await.unwrap() {
            match ev {
                watcher::Event::InitApply(p) => init.push(p.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(init, ["a", "b", "c"]);
}

#[tokio::test]
async fn slow_watchers_are_closed_not_buffered_forever() {
    let config = SandboxConfig {
        store: StoreConfig {
            watch_buffer: 4,
            ..Default::default()
        },
        ..Default::default()
    };
    let (handle, _client) = sandbox_with(config).await;
    let pods = handle.store().resource("", "v1", "pods").unwrap();
    let mut watch = handle
        .store()
        .watch(
            &pods,
            Some("default"),
            &podwarden_sandbox::api::WatchOptions {
                resource_version: Some(handle.store().resource_version().to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    for i in 0..10 {
        create(handle.store(), &format!("p{i}"));
    }
    let mut received = 0;
    while watch.next().await.is_some() {
        received += 1;
    }
    assert_eq!(received, 4, "the queue bound");
    assert_eq!(
        handle
            .store()
            .stats()
            .slow_watchers_closed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

// ---- the kube-runtime watcher under faults ---------------------------------------------

/// What a controller's cache holds: name -> resourceVersion, rebuilt on every relist.
#[derive(Default)]
struct Mirror {
    state: BTreeMap<String, u64>,
    init: Option<BTreeMap<String, u64>>,
    /// resourceVersion of the last event per object since the last (re)list; a change
    /// delivered twice within one session would not increase it.
    session: BTreeMap<String, u64>,
    duplicates: Vec<String>,
}

impl Mirror {
    fn apply(&mut self, ev: watcher::Event<Pod>) {
        match ev {
            watcher::Event::Init => self.init = Some(BTreeMap::new()),
            watcher::Event::InitApply(p) => {
                if let Some(init) = self.init.as_mut() {
                    init.insert(p.name_any(), rv_of(&p));
                }
            }
            watcher::Event::InitDone => {
                self.state = self.init.take().unwrap_or_default();
                self.session = self.state.clone();
            }
            watcher::Event::Apply(p) => {
                self.check(&p);
                self.state.insert(p.name_any(), rv_of(&p));
            }
            watcher::Event::Delete(p) => {
                self.check(&p);
                self.state.remove(&p.name_any());
            }
        }
    }

    fn check(&mut self, p: &Pod) {
        let rv = rv_of(p);
        if let Some(last) = self.session.insert(p.name_any(), rv)
            && rv <= last
        {
            self.duplicates
                .push(format!("{} at {rv} after {last}", p.name_any()));
        }
    }
}

fn truth(store: &Store) -> BTreeMap<String, u64> {
    let pods = store.resource("", "v1", "pods").unwrap();
    let page = store
        .list(&pods, Some("default"), &Default::default())
        .unwrap();
    page.items
        .iter()
        .map(|o| (o.name.clone(), o.resource_version))
        .collect()
}

/// Runs a watcher while a writer churns pods and `fault` is injected between rounds;
/// then waits until the watcher's view equals the store.
async fn watcher_converges_under(
    fault: impl Fn(&SandboxHandle, usize),
    name: &str,
) -> SandboxHandle {
    let (handle, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            if let Ok(ev) = ev
                && tx.send(ev).is_err()
            {
                break;
            }
        }
    });
    let mut mirror = Mirror::default();
    let store = handle.store().clone();
    for round in 0..6 {
        for i in 0..8 {
            let n = format!("p{i}");
            match (round + i) % 4 {
                0 if !truth(&store).contains_key(&n) => {
                    create(&store, &n);
                }
                3 if truth(&store).contains_key(&n) => remove(&store, &n),
                _ if truth(&store).contains_key(&n) => {
                    relabel(&store, &n, &round.to_string());
                }
                _ => {
                    create(&store, &n);
                }
            }
        }
        fault(&handle, round);
        while let Ok(ev) = rx.try_recv() {
            mirror.apply(ev);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = truth(&store);
    let converged = tokio::time::timeout(DEADLINE, async {
        loop {
            if mirror.init.is_none() && mirror.state == expected {
                return;
            }
            match rx.recv().await {
                Some(ev) => mirror.apply(ev),
                None => return,
            }
        }
    })
    .await;
    task.abort();
    handle.faults().clear();
    assert!(
        converged.is_ok(),
        "{name}: watcher did not converge: {:?} vs {:?}",
        mirror.state,
        expected
    );
    assert_eq!(mirror.state, expected, "{name}");
    assert!(
        mirror.duplicates.is_empty(),
        "{name}: duplicated changes {:?}",
        mirror.duplicates
    );
    handle
}

#[tokio::test]
async fn watcher_recovers_when_every_watch_is_closed() {
    let h = watcher_converges_under(
        |h, _| {
            h.close_all_watches();
        },
        "close all",
    )
    .await;
    assert!(h.faults().counts().watches_closed >= 1);
}

#[tokio::test]
async fn watcher_recovers_when_watches_close_after_n_events() {
    let h = watcher_converges_under(
        |h, round| {
            if round == 0 {
                h.faults().set_config(FaultConfig {
                    close_watches_after_events: Some(3),
                    ..Default::default()
                });
            }
        },
        "close after 3",
    )
    .await;
    assert!(h.faults().counts().watches_closed_after_events >= 1);
}

#[tokio::test]
async fn watcher_recovers_from_410_gone() {
    let h = watcher_converges_under(
        |h, round| {
            if round % 2 == 0 {
                h.faults().gone_next_watches(1);
                h.close_all_watches();
            }
        },
        "gone",
    )
    .await;
    assert!(h.faults().counts().gone_sent >= 1);
}

#[tokio::test]
async fn watcher_recovers_from_throttling_and_server_errors() {
    let h = watcher_converges_under(
        |h, round| {
            if round == 0 {
                h.faults().set_config(FaultConfig {
                    throttle_fraction: 0.2,
                    error_fraction: 0.1,
                    unavailable_fraction: 0.2,
                    retry_after_seconds: 0,
                    ..Default::default()
                });
            }
            h.close_all_watches();
            if round == 5 {
                h.faults().set_config(FaultConfig::default());
            }
        },
        "429/500/503",
    )
    .await;
    let c = h.faults().counts();
    assert!(
        c.throttled + c.internal_errors + c.unavailable >= 1,
        "{c:?}"
    );
}

#[tokio::test]
async fn watcher_recovers_from_latency() {
    let h = watcher_converges_under(
        |h, round| {
            if round == 0 {
                h.faults().set_config(FaultConfig {
                    latency_millis: 30,
                    ..Default::default()
                });
            }
            h.close_all_watches();
        },
        "latency",
    )
    .await;
    assert!(h.faults().counts().delayed >= 1);
}

#[tokio::test]
async fn watcher_recovers_from_server_restarts() {
    let h = watcher_converges_under(
        |h, round| {
            if round % 2 == 1 {
                h.restart();
            }
        },
        "restart",
    )
    .await;
    assert_eq!(h.faults().counts().restarts, 3);
}

#[tokio::test]
async fn admin_endpoints_drive_the_same_faults() {
    let (handle, client) = sandbox().await;
    let put = http::Request::put("/sandbox/v1/faults")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"throttleFraction": 1.0, "retryAfterSeconds": 0})).unwrap(),
        )
        .unwrap();
    let _: Value = client.request(put).await.unwrap();
    let mut no_retry = handle.kube_config();
    no_retry.default_retry = false;
    let plain = Client::try_from(no_retry).unwrap();
    let pods: Api<Pod> = Api::namespaced(plain, "default");
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"))
        }
        other => panic!("expected 429, got {other:?}"),
    }
    let clear = http::Request::delete("/sandbox/v1/faults")
        .body(vec![])
        .unwrap();
    let state: Value = client.request(clear).await.unwrap();
    assert!(state["counts"]["throttled"].as_u64().unwrap() >= 1);
    pods.list(&ListParams::default()).await.unwrap();
    let gone = http::Request::post("/sandbox/v1/faults/gone?count=1")
        .body(vec![])
        .unwrap();
    let _: Value = client.request(gone).await.unwrap();
    let mut stream = pods
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    let created = Api::<Pod>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod_json("after", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.name_any(), "after");
}
