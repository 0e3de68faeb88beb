//! Property: under any interleaving of concurrent writers on several objects, every
//! watcher (in-process and over HTTP) sees strictly increasing resourceVersions and
//! ends with the final state of every object.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, WatchEvent, WatchParams};
use podwarden_sandbox::api::{
    ApiError, DeleteOptions, Patch, Sandbox, SandboxConfig, Store, Subresource,
    WatchEvent as StoreEvent, WatchOptions, WriteOptions,
};
use proptest::prelude::*;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Relabel,
    Status,
    Delete,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Create),
        Just(Op::Relabel),
        Just(Op::Status),
        Just(Op::Delete)
    ]
}

fn run(store: &Store, object: usize, op: Op, step: usize) {
    let pods = store.resource("", "v1", "pods").unwrap();
    let name = format!("p{object}");
    let result = match op {
        Op::Create => store
            .create(
                &pods,
                Some("default"),
                json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}),
                &WriteOptions::default(),
            )
            .map(drop),
        Op::Relabel => store
            .patch(&pods, Some("default"), &name, &Patch::Merge(json!({"metadata": {"labels": {"step": step.to_string()}}})), &WriteOptions::default())
            .map(drop),
        Op::Status => store
            .patch(
                &pods,
                Some("default"),
                &name,
                &Patch::Merge(json!({"status": {"message": step.to_string()}})),
                &WriteOptions { subresource: Subresource::Status, ..Default::default() },
            )
            .map(drop),
        Op::Delete => store.delete(&pods, Some("default"), &name, &DeleteOptions::default()).map(drop),
    };
    match result {
        Ok(()) | Err(ApiError::NotFound { .. } | ApiError::AlreadyExists { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// A watcher's view: name -> resourceVersion, and whether versions only went up.
#[derive(Default, Debug)]
struct View {
    state: BTreeMap<String, u64>,
    last: u64,
    out_of_order: Vec<(u64, u64)>,
}

impl View {
    fn see(&mut self, name: String, rv: u64, deleted: bool) {
        if rv <= self.last {
            self.out_of_order.push((self.last, rv));
        }
        self.last = rv;
        if deleted {
            self.state.remove(&name);
        } else {
            self.state.insert(name, rv);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn watchers_see_ordered_versions_and_final_state(
        writers in proptest::collection::vec(proptest::collection::vec((0usize..5, op()), 1..30), 2..5)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let handle = Sandbox::start(SandboxConfig::default()).await.unwrap();
            let store = handle.store().clone();
            let pods_rt = store.resource("", "v1", "pods").unwrap();
            let start_rv = store.resource_version();
            let start = start_rv.to_string();
            let mut local = store
                .watch(&pods_rt, Some("default"), &WatchOptions { resource_version: Some(start.clone()), ..Default::default() })
                .unwrap();
            let pods: Api<Pod> = Api::namespaced(handle.client().unwrap(), "default");
            let mut remote = pods.watch(&WatchParams::default().disable_bookmarks(), &start).await.unwrap().boxed();

            let threads: Vec<_> = writers
                .into_iter()
                .enumerate()
                .map(|(w, ops)| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        for (i, (object, op)) in ops.into_iter().enumerate() {
                            run(&store, object, op, w * 1000 + i);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let page = store.list(&pods_rt, Some("default"), &Default::default()).unwrap();
            let expected: BTreeMap<String, u64> = page.items.iter().map(|o| (o.name.clone(), o.resource_version)).collect();
            let final_rv = store.resource_version();

            // Both start where the watches start: a run whose writes all fail has nothing to wait for.
            let mut local_view = View { last: start_rv, ..View::default() };
            let mut remote_view = View { last: start_rv, ..View::default() };
            let caught_up = tokio::time::timeout(DEADLINE, async {
                while local_view.last < final_rv {
                    match local.next().await.expect("in-process watch stays open") {
                        StoreEvent::Added(o) | StoreEvent::Modified(o) => local_view.see(o.name.clone(), o.resource_version, false),
                        StoreEvent::Deleted(o) => local_view.see(o.name.clone(), o.resource_version, true),
                        StoreEvent::Bookmark { .. } => {}
                    }
                }
                while remote_view.last < final_rv {
                    let rv = |p: &Pod| p.resource_version().unwrap().parse::<u64>().unwrap();
                    match remote.try_next().await.unwrap().expect("HTTP watch stays open") {
                        WatchEvent::Added(p) | WatchEvent::Modified(p) => remote_view.see(p.name_any(), rv(&p), false),
                        WatchEvent::Deleted(p) => remote_view.see(p.name_any(), rv(&p), true),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
            .await;
            assert!(
                caught_up.is_ok(),
                "watchers did not catch up to {final_rv}: in-process at {} {:?}, HTTP at {} {:?}, expected {:?}",
                local_view.last, local_view.state, remote_view.last, remote_view.state, expected
            );
            assert!(local_view.out_of_order.is_empty(), "in-process: {:?}", local_view.out_of_order);
            assert!(remote_view.out_of_order.is_empty(), "HTTP: {:?}", remote_view.out_of_order);
            assert_eq!(local_view.state, expected);
            assert_eq!(remote_view.state, expected);
            handle.shutdown().await;
        });
    }
}
