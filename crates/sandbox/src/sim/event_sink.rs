//! core/v1 Events written by the simulated components, as the real ones write them:
//! `involvedObject`, `reason`, `message`, `source`, `count` with aggregation of repeats,
//! and an expiry like the API server's event TTL so a long run does not pile them up.
//!
//! Like client-go's event correlator, each source has an event budget per object
//! ([`SPAM_BURST`] at once, then one per [`SPAM_REFILL`]): a crash-looping pod stops
//! costing the API server a write per restart, as in a real cluster.
//!
//! Each source (a kubelet, a controller) remembers the events it wrote for aggregation
//! in its own cache, as each client-go event correlator does: a restarting container's
//! `Started` bumps the count of the Event it wrote before, in a cluster of any size.
//!
//! Bounds: at most [`MAX_TRACKED_PER_SOURCE`] distinct (object, reason, message) keys
//! per source and [`MAX_SOURCES`] sources are kept for aggregation, at most
//! [`MAX_BUDGETS`] per-object budgets; events older than the TTL are deleted, at most
//! [`EXPIRE_BATCH`] per call.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::object::{self, StoredObject};
use crate::api::{Patch, ResourceType, Store, WriteOptions};

/// Distinct event keys one source remembers for aggregation (client-go's
/// `maxLruCacheEntries`); a key forgotten only starts a new Event.
pub const MAX_TRACKED_PER_SOURCE: usize = 4096;
/// Sources whose caches are kept (a kubelet per node and the controllers); past it
/// every cache starts afresh.
pub const MAX_SOURCES: usize = 16_384;
/// Expired events deleted per recorded event (keeps the cost of expiry bounded per call).
pub const EXPIRE_BATCH: usize = 16;
/// Events one source may write about one object at once (client-go's
/// `defaultSpamBurst`).
pub const SPAM_BURST: f64 = 25.0;
/// Time to earn one more event once the burst is spent (client-go's
/// `defaultSpamQPS`, 1/300).
pub const SPAM_REFILL: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);
/// Per source+object budgets remembered. Forgetting one only gives that object a
/// fresh burst; a budget unused for `SPAM_BURST * SPAM_REFILL` is full anyway.
pub const MAX_BUDGETS: usize = 262_144;

/// A token bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Budget {
    tokens: f64,
    at: jiff::Timestamp,
}

impl Budget {
    fn refilled(self, now: jiff::Timestamp) -> f64 {
        let earned = now.duration_since(self.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        (self.tokens + earned.max(0.0)).min(SPAM_BURST)
    }
}

/// What an event is about: the object's reference as `involvedObject` carries it.
#[derive(Debug, Clone)]
pub struct Involved {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.containers{name}` and the like.
    pub field_path: Option<String>,
}

impl Involved {
    /// A pod (or one of its containers with `field_path`).
    pub fn pod(pod: &StoredObject) -> Self {
        Involved {
            kind: "Pod",
            api_version: "v1",
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            field_path: None,
        }
    }

    pub fn node(name: &str) -> Self {
        Involved {
            kind: "Node",
            api_version: "v1",
            namespace: "default".into(),
            name: name.into(),
            uid: name.into(),
            field_path: None,
        }
    }

    pub fn container(mut self, field_path: String) -> Self {
        self.field_path = Some(field_path);
        self
    }
}

/// Who reports: `source.component` / `reportingComponent`, and the host.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub component: &'static str,
    pub host: Option<&'a str>,
}

#[derive(Debug)]
struct Tracked {
    namespace: String,
    name: String,
    count: u64,
}

/// One source's aggregation cache.
#[derive(Debug, Default)]
struct SourceCache {
    tracked: HashMap<String, Tracked>,
    /// Creation order of tracked keys, to forget the oldest first. Every tracked key is
    /// here, so its length bounds the cache.
    order: VecDeque<String>,
}

impl Tracked {
    /// One more occurrence: the stored event's count and lastTimestamp move. False when
    /// the event is gone (expired, or deleted by someone).
    fn bump(&mut self, store: &Store, rt: &ResourceType, stamp: &str) -> bool {
        self.count += 1;
        let patch = Patch::Merge(json!({"count": self.count, "lastTimestamp": stamp}));
        store
            .patch(
                rt,
                Some(&self.namespace),
                &self.name,
                &patch,
                &WriteOptions::default(),
            )
            .is_ok()
    }
}

impl SourceCache {
    /// Tracks a new event under `key`, forgetting the oldest when full.
    fn track(&mut self, key: String, event: Tracked) {
        if self.order.len() >= MAX_TRACKED_PER_SOURCE
            && let Some(old) = self.order.pop_front()
        {
            self.tracked.remove(&old);
        }
        self.order.push_back(key.clone());
        self.tracked.insert(key, event);
    }
}

/// A new core Event about `about`, seen once at `stamp`.
fn event_object(
    about: &Involved,
    source: Source<'_>,
    name: &str,
    stamp: &str,
    event_type: &str,
    reason: &str,
    message: &str,
) -> Value {
    let mut involved = json!({
        "kind": about.kind, "apiVersion": about.api_version, "name": about.name,
        "namespace": about.namespace, "uid": about.uid,
    });
    if about.kind == "Node" {
        // Cluster-scoped: the reference has no namespace (the Event lives in default).
        if let Some(m) = involved.as_object_mut() {
            m.remove("namespace");
        }
    }
    if let Some(fp) = &about.field_path {
        involved["fieldPath"] = json!(fp);
    }
    let mut src = json!({"component": source.component});
    if let Some(h) = source.host {
        src["host"] = json!(h);
    }
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": about.namespace},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": event_type,
        "source": src,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        "reportingComponent": source.component,
        "reportingInstance": source.host.unwrap_or_default(),
    })
}

#[derive(Debug)]
pub struct EventSink {
    rt: Arc<ResourceType>,
    ttl: jiff::SignedDuration,
    /// Per `component/host` caches.
    sources: HashMap<String, SourceCache>,
    /// (created, namespace, name) of every live event, oldest first.
    live: VecDeque<(jiff::Timestamp, String, String)>,
    /// Per (source, host, object uid) budgets.
    budgets: HashMap<String, Budget>,
    seq: u64,
    pub written: u64,
    /// Events dropped because their source spent its budget for the object.
    pub filtered: u64,
}

impl EventSink {
    pub fn new(rt: Arc<ResourceType>, ttl: jiff::SignedDuration) -> Self {
        EventSink {
            rt,
            ttl,
            sources: HashMap::new(),
            live: VecDeque::new(),
            budgets: HashMap::new(),
            seq: 0,
            written: 0,
            filtered: 0,
        }
    }

    /// Takes one event from the budget of `source_key` (`component/host`) for `about`; false when it is
    /// spent (client-go's `EventSourceObjectSpamFilter`).
    fn spend(&mut self, about: &Involved, source_key: &str, now: jiff::Timestamp) -> bool {
        let key = format!("{source_key}/{}", about.uid);
        if !self.budgets.contains_key(&key) && self.budgets.len() >= MAX_BUDGETS {
            self.budgets.retain(|_, b| b.refilled(now) < SPAM_BURST);
            if self.budgets.len() >= MAX_BUDGETS {
                self.budgets.clear();
            }
        }
        let budget = self.budgets.entry(key).or_insert(Budget {
            tokens: SPAM_BURST,
            at: now,
        });
        let tokens = budget.refilled(now);
        if tokens < 1.0 {
            return false;
        }
        *budget = Budget {
            tokens: tokens - 1.0,
            at: now,
        };
        true
    }

    /// Records `reason`/`message` (type `Normal` or `Warning`) about `about`. Failures
    /// are logged, never fatal: an event is a courtesy, not state.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        store: &Store,
        now: jiff::Timestamp,
        about: &Involved,
        source: Source<'_>,
        event_type: &str,
        reason: &str,
        message: &str,
    ) {
        self.expire(store, now);
        let source_key = format!("{}/{}", source.component, source.host.unwrap_or_default());
        if !self.spend(about, &source_key, now) {
            self.filtered += 1;
            return;
        }
        let stamp = object::format_time(now);
        let key = format!(
            "{}/{}/{}/{}/{}",
            about.uid,
            about.field_path.as_deref().unwrap_or_default(),
            event_type,
            reason,
            message
        );
        if !self.sources.contains_key(&source_key) && self.sources.len() >= MAX_SOURCES {
            self.sources.clear();
        }
        let cache = self.sources.entry(source_key).or_default();
        if let Some(t) = cache.tracked.get_mut(&key) {
            if t.bump(store, &self.rt, &stamp) {
                self.written += 1;
                return;
            }
            // Expired or deleted by someone: start a new one.
            cache.tracked.remove(&key);
        }
        self.seq += 1;
        let name = format!(
            "{}.{:x}{:06x}",
            about.name,
            now.as_second(),
            self.seq & 0xff_ffff
        );
        let namespace = about.namespace.clone();
        let event = event_object(about, source, &name, &stamp, event_type, reason, message);
        match store.create(&self.rt, Some(&namespace), event, &WriteOptions::default()) {
            Ok(_) => {
                self.written += 1;
                self.live.push_back((now, namespace.clone(), name.clone()));
                cache.track(
                    key,
                    Tracked {
                        namespace,
                        name,
                        count: 1,
                    },
                );
            }
            Err(e) => tracing::debug!(error = %e, reason, "sandbox event not recorded"),
        }
    }

    /// Deletes events older than the TTL (a bounded batch per call).
    pub fn expire(&mut self, store: &Store, now: jiff::Timestamp) {
        for _ in 0..EXPIRE_BATCH {
            match self.live.front() {
                Some((created, _, _)) if now.duration_since(*created) > self.ttl => {}
                _ => break,
            }
            if let Some((_, ns, name)) = self.live.pop_front() {
                let _ = store.delete(&self.rt, Some(&ns), &name, &Default::default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ListOptions;

    const KUBELET: Source<'static> = Source {
        component: "kubelet",
        host: Some("node-1"),
    };

    fn pod(uid: &str) -> Involved {
        Involved {
            kind: "Pod",
            api_version: "v1",
            namespace: "default".into(),
            name: format!("pod-{uid}"),
            uid: uid.into(),
            field_path: Some("spec.containers{app}".into()),
        }
    }

    fn setup() -> (Store, EventSink, jiff::Timestamp) {
        let store = Store::default();
        let rt = store.resource("", "v1", "events").expect("events resource");
        let recorder = EventSink::new(rt, jiff::SignedDuration::from_hours(1));
        (
            store,
            recorder,
            "2026-01-01T00:00:00Z".parse().expect("time"),
        )
    }

    /// The count of each stored event, by reason.
    fn counts(store: &Store) -> Vec<(String, u64)> {
        let rt = store.resource("", "v1", "events").expect("events resource");
        let page = store
            .list(&rt, None, &ListOptions::default())
            .expect("list events");
        let mut out: Vec<(String, u64)> = page
            .items
            .iter()
            .map(|e| {
                let v = e.value();
                (
                    v["reason"].as_str().unwrap_or_default().to_string(),
                    v["count"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn repeats_are_counted_on_one_event() {
        let (store, mut rec, t0) = setup();
        for i in 0..3 {
            let now = t0 + jiff::SignedDuration::from_secs(i);
            rec.record(&store, now, &pod("a"), KUBELET, "Warning", "BackOff", "m");
        }
        rec.record(&store, t0, &pod("a"), KUBELET, "Normal", "Started", "m");
        assert_eq!(
            counts(&store),
            [("BackOff".to_string(), 3), ("Started".to_string(), 1)]
        );
        assert_eq!((rec.written, rec.filtered), (4, 0));
    }

    #[test]
    fn each_source_aggregates_in_its_own_bounded_cache() {
        let (store, mut rec, t0) = setup();
        let other = Source {
            component: "kubelet",
            host: Some("node-2"),
        };
        rec.record(&store, t0, &pod("b0"), other, "Normal", "Other", "m");
        // One more key than node-1's cache holds: its first key is forgotten.
        for i in 0..=MAX_TRACKED_PER_SOURCE {
            let about = pod(&format!("a{i}"));
            rec.record(&store, t0, &about, KUBELET, "Normal", "Started", "m");
        }
        rec.record(&store, t0, &pod("a1"), KUBELET, "Normal", "Started", "m");
        rec.record(&store, t0, &pod("a0"), KUBELET, "Normal", "Started", "m");
        rec.record(&store, t0, &pod("b0"), other, "Normal", "Other", "m");
        let all = counts(&store);
        let started: Vec<u64> = all
            .iter()
            .filter(|(r, _)| r == "Started")
            .map(|(_, n)| *n)
            .collect();
        // a1 again is counted on its Event, a0 again is a new Event.
        assert_eq!(started.len(), MAX_TRACKED_PER_SOURCE + 2);
        assert_eq!(started.iter().filter(|n| **n == 2).count(), 1);
        // node-2's cache is its own: its repeat is counted.
        let others: Vec<&(String, u64)> = all.iter().filter(|(r, _)| r == "Other").collect();
        assert_eq!(others, [&("Other".to_string(), 2)]);
    }

    #[test]
    fn a_source_gets_a_burst_per_object_then_one_event_per_refill() {
        let (store, mut rec, t0) = setup();
        // 40 events at once about one pod, whatever their reasons: 25 pass.
        for i in 0..40 {
            let reason = if i % 2 == 0 { "Started" } else { "BackOff" };
            rec.record(&store, t0, &pod("a"), KUBELET, "Normal", reason, "m");
        }
        assert_eq!((rec.written, rec.filtered), (25, 15));
        // Another object, and another source about the same object, have their own.
        rec.record(&store, t0, &pod("b"), KUBELET, "Normal", "Started", "m");
        let other = Source {
            component: "kubelet",
            host: Some("node-2"),
        };
        rec.record(&store, t0, &pod("a"), other, "Normal", "Started", "m");
        assert_eq!(rec.written, 27);
        // Just short of one refill: still spent; at the refill: one more.
        let almost = t0 + SPAM_REFILL - jiff::SignedDuration::from_secs(1);
        rec.record(&store, almost, &pod("a"), KUBELET, "Normal", "Started", "m");
        assert_eq!(rec.written, 27);
        let refilled = t0 + SPAM_REFILL;
        for _ in 0..2 {
            rec.record(
                &store,
                refilled,
                &pod("a"),
                KUBELET,
                "Normal",
                "Started",
                "m",
            );
        }
        assert_eq!((rec.written, rec.filtered), (28, 17));
        // Long idle: the whole burst again, never more.
        let rested = t0 + SPAM_REFILL * 1000;
        for _ in 0..30 {
            rec.record(&store, rested, &pod("a"), KUBELET, "Normal", "Killing", "m");
        }
        assert_eq!(rec.written, 28 + 25);
    }
}
