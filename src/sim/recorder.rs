//! core/v1 Events written by the simulated components, as the real ones write them:
//! `involvedObject`, `reason`, `message`, `source`, `count` with aggregation of repeats,
//! and an expiry like the API server's event TTL so a long run does not pile them up.
//!
//! Bounds: at most [`MAX_TRACKED`] distinct (object, reason, message) keys are kept for
//! aggregation; events older than the TTL are deleted, at most [`EXPIRE_BATCH`] per call.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::json;

use crate::sandbox::object::{self, StoredObject};
use crate::sandbox::{Patch, ResourceType, Store, WriteOptions};

/// Distinct event keys remembered for aggregation (older keys start a new Event).
pub const MAX_TRACKED: usize = 50_000;
/// Expired events deleted per recorded event (keeps the cost of expiry bounded per call).
pub const EXPIRE_BATCH: usize = 16;

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

#[derive(Debug)]
pub struct Recorder {
    rt: Arc<ResourceType>,
    ttl: jiff::SignedDuration,
    tracked: HashMap<String, Tracked>,
    /// Creation order of tracked keys, to forget the oldest first.
    order: VecDeque<String>,
    /// (created, namespace, name) of every live event, oldest first.
    live: VecDeque<(jiff::Timestamp, String, String)>,
    seq: u64,
    pub written: u64,
}

impl Recorder {
    pub fn new(rt: Arc<ResourceType>, ttl: jiff::SignedDuration) -> Self {
        Recorder {
            rt,
            ttl,
            tracked: HashMap::new(),
            order: VecDeque::new(),
            live: VecDeque::new(),
            seq: 0,
            written: 0,
        }
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
        let stamp = object::format_time(now);
        let key = format!(
            "{}/{}/{}/{}/{}/{}",
            about.uid,
            about.field_path.as_deref().unwrap_or_default(),
            source.component,
            event_type,
            reason,
            message
        );
        if let Some(t) = self.tracked.get_mut(&key) {
            t.count += 1;
            let patch = Patch::Merge(json!({"count": t.count, "lastTimestamp": stamp}));
            let ok = store
                .patch(
                    &self.rt,
                    Some(&t.namespace),
                    &t.name,
                    &patch,
                    &WriteOptions::default(),
                )
                .is_ok();
            if ok {
                self.written += 1;
                return;
            }
            // Expired or deleted by someone: start a new one.
            self.tracked.remove(&key);
        }
        self.seq += 1;
        let name = format!(
            "{}.{:x}{:06x}",
            about.name,
            now.as_second(),
            self.seq & 0xff_ffff
        );
        let namespace = about.namespace.clone();
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
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": event_type,
            "source": src,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": source.component,
            "reportingInstance": source.host.unwrap_or_default(),
        });
        match store.create(&self.rt, Some(&namespace), event, &WriteOptions::default()) {
            Ok(_) => {
                self.written += 1;
                self.live.push_back((now, namespace.clone(), name.clone()));
                if self.tracked.len() >= MAX_TRACKED
                    && let Some(old) = self.order.pop_front()
                {
                    self.tracked.remove(&old);
                }
                self.order.push_back(key.clone());
                self.tracked.insert(
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
