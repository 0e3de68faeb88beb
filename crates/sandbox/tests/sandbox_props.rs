//! Property: under any interleaving of writers on several objects, every watcher (in-process
//! and over HTTP) sees strictly increasing resourceVersions, exactly the writes that
//! succeeded in the order they were made, and ends with the final state of every object.
//!
//! The interleaving is the generated case itself: a sequence of (writer, object, operation)
//! steps, with reads of the in-process watch between them, run in that order on one thread.
//! A failing case therefore replays exactly from its seed, and shrinks to the few steps
//! that matter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, WatchEvent, WatchParams};
use podwarden_sandbox::api::{
    ApiError, DeleteOptions, Patch, ResourceType, Sandbox, SandboxConfig, Store, Subresource,
    Watch, WatchEvent as StoreEvent, WatchOptions, WriteOptions,
};
use proptest::prelude::*;
use serde_json::json;

/// Bounds a hang of the HTTP watch; never a timing goal.
const DEADLINE: Duration = Duration::from_secs(60);
const WRITERS: usize = 4;
const OBJECTS: usize = 5;

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Relabel,
    Status,
    Delete,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Writer `writer` applies `op` to object `object`.
    Write {
        writer: usize,
        object: usize,
        op: Op,
    },
    /// The in-process watcher reads every event ready now.
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Create),
        Just(Op::Relabel),
        Just(Op::Status),
        Just(Op::Delete)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        9 => (0..WRITERS, 0..OBJECTS, op())
            .prop_map(|(writer, object, op)| Step::Write { writer, object, op }),
        1 => Just(Step::Read),
    ]
}

/// What a watcher sees of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Added,
    Modified,
    Deleted,
}

/// Runs one write; the event it must cause, or none if the store refused it (the object
/// already exists, or does not).
fn run(store: &Store, pods: &ResourceType, object: usize, op: Op, tag: String) -> Option<Kind> {
    let name = format!("p{object}");
    let result = match op {
        Op::Create => store
            .create(
                pods,
                Some("default"),
                json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}),
                &WriteOptions::default(),
            )
            .map(|_| Kind::Added),
        Op::Relabel => store
            .patch(pods, Some("default"), &name, &Patch::Merge(json!({"metadata": {"labels": {"step": tag}}})), &WriteOptions::default())
            .map(|_| Kind::Modified),
        Op::Status => store
            .patch(
                pods,
                Some("default"),
                &name,
                &Patch::Merge(json!({"status": {"message": tag}})),
                &WriteOptions { subresource: Subresource::Status, ..Default::default() },
            )
            .map(|_| Kind::Modified),
        // Unbound pods are deleted at once, without a grace period.
        Op::Delete => store.delete(pods, Some("default"), &name, &DeleteOptions::default()).map(|_| Kind::Deleted),
    };
    match result {
        Ok(kind) => Some(kind),
        Err(ApiError::NotFound { .. } | ApiError::AlreadyExists { .. }) => None,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// A watcher's view: name -> resourceVersion, whether versions only went up, and every
/// event in the order seen.
#[derive(Default, Debug)]
struct View {
    state: BTreeMap<String, u64>,
    last: u64,
    out_of_order: Vec<(u64, u64)>,
    events: Vec<(String, Kind)>,
}

impl View {
    fn see(&mut self, name: String, rv: u64, kind: Kind) {
        if rv <= self.last {
            self.out_of_order.push((self.last, rv));
        }
        self.last = rv;
        if kind == Kind::Deleted {
            self.state.remove(&name);
        } else {
            self.state.insert(name.clone(), rv);
        }
        self.events.push((name, kind));
    }

    fn see_store_event(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Added(o) => self.see(o.name.clone(), o.resource_version, Kind::Added),
            StoreEvent::Modified(o) => self.see(o.name.clone(), o.resource_version, Kind::Modified),
            StoreEvent::Deleted(o) => self.see(o.name.clone(), o.resource_version, Kind::Deleted),
            StoreEvent::Bookmark { .. } => {}
        }
    }

    /// Every event the in-process watch has ready now.
    fn read_ready(&mut self, watch: &mut Watch) {
        while let Some(event) = watch.try_next() {
            self.see_store_event(event);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn watchers_see_ordered_versions_and_final_state(steps in proptest::collection::vec(step(), 1..120)) {
        // One thread: the server, the HTTP client and the writes take turns only where
        // the test awaits, which is after the writes.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
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

            // Both start where the watches start: a run whose writes all fail has nothing to wait for.
            let mut local_view = View { last: start_rv, ..View::default() };
            let mut remote_view = View { last: start_rv, ..View::default() };
            // The writes that succeeded, in order: what every watcher must see.
            let mut written: Vec<(String, Kind)> = Vec::new();
            let mut exists = BTreeSet::new();
            let mut turns = [0usize; WRITERS];
            for step in &steps {
                match *step {
                    Step::Write { writer, object, op } => {
                        let tag = format!("{writer}-{}", turns[writer]);
                        turns[writer] += 1;
                        let outcome = run(&store, &pods_rt, object, op, tag);
                        // Whether a write succeeds follows from the steps before it.
                        let expected = match op {
                            Op::Create if exists.insert(object) => Some(Kind::Added),
                            Op::Relabel | Op::Status if exists.contains(&object) => Some(Kind::Modified),
                            Op::Delete if exists.remove(&object) => Some(Kind::Deleted),
                            _ => None,
                        };
                        assert_eq!(outcome, expected, "{op:?} p{object} after {written:?}");
                        if let Some(kind) = outcome {
                            written.push((format!("p{object}"), kind));
                        }
                    }
                    Step::Read => local_view.read_ready(&mut local),
                }
            }
            let page = store.list(&pods_rt, Some("default"), &Default::default()).unwrap();
            let expected: BTreeMap<String, u64> = page.items.iter().map(|o| (o.name.clone(), o.resource_version)).collect();
            let names: BTreeSet<String> = exists.iter().map(|o| format!("p{o}")).collect();
            assert_eq!(expected.keys().cloned().collect::<BTreeSet<_>>(), names, "stored objects");
            let final_rv = store.resource_version();

            // Every change is queued at its commit: the in-process watch has them all now.
            local_view.read_ready(&mut local);
            assert_eq!(local_view.last, final_rv, "in-process watch: {:?}", local_view.events);
            let caught_up = tokio::time::timeout(DEADLINE, async {
                while remote_view.last < final_rv {
                    let rv = |p: &Pod| p.resource_version().unwrap().parse::<u64>().unwrap();
                    match remote.try_next().await.unwrap().expect("HTTP watch stays open") {
                        WatchEvent::Added(p) => remote_view.see(p.name_any(), rv(&p), Kind::Added),
                        WatchEvent::Modified(p) => remote_view.see(p.name_any(), rv(&p), Kind::Modified),
                        WatchEvent::Deleted(p) => remote_view.see(p.name_any(), rv(&p), Kind::Deleted),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
            .await;
            assert!(
                caught_up.is_ok(),
                "HTTP watch did not catch up to {final_rv}: at {} {:?}, expected {:?}",
                remote_view.last, remote_view.state, expected
            );
            assert!(local_view.out_of_order.is_empty(), "in-process: {:?}", local_view.out_of_order);
            assert!(remote_view.out_of_order.is_empty(), "HTTP: {:?}", remote_view.out_of_order);
            assert_eq!(&local_view.events, &written, "in-process events");
            assert_eq!(&remote_view.events, &written, "HTTP events");
            assert_eq!(local_view.state, expected);
            assert_eq!(remote_view.state, expected);
            handle.shutdown().await;
        });
    }
}
