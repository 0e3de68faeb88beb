//! Pod snapshot builders for the lifecycle tests: pods are written as the API shows them
//! (JSON), then read through the same `PodView` deserializer the auditor uses.
#![allow(dead_code)]

use podwarden_model::stream::{Auditor, Scope, Summary};
use podwarden_model::{Finding, PodView, RuleId, RuleSettings, Severity, Timestamp};
use serde_json::{Value, json};

/// The base of test time: `t(n)` is n seconds after it.
pub const T0: i64 = 1_785_578_400; // 2026-08-01T10:00:00Z

pub fn t(secs: i64) -> String {
    Timestamp(T0 + secs).to_string()
}

pub fn running(at: i64) -> Value {
    json!({"running": {"startedAt": t(at)}})
}

pub fn waiting(reason: &str) -> Value {
    json!({"waiting": {"reason": reason}})
}

pub fn terminated(code: i32, from: i64, to: i64) -> Value {
    let reason = if code == 0 { "Completed" } else { "Error" };
    json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": t(from), "finishedAt": t(to)}})
}

pub fn oom(from: i64, to: i64) -> Value {
    json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": t(from), "finishedAt": t(to)}})
}

/// A pod as JSON, changed step by step.
#[derive(Clone, Debug)]
pub struct Pod(pub Value);

impl Pod {
    /// A pod owned by a ReplicaSet, created at `t(0)`, with no containers yet.
    pub fn new(name: &str) -> Self {
        Pod(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": format!("uid-{name}"),
                "resourceVersion": "1",
                "creationTimestamp": t(0),
                "labels": {"app": name},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}]
            },
            "spec": {"restartPolicy": "Always", "containers": [], "nodeName": "node-1"},
            "status": {"phase": "Pending", "conditions": [], "containerStatuses": []}
        }))
    }

    pub fn view(&self) -> PodView {
        PodView::from_value(&self.0).expect("test pod parses")
    }

    pub fn policy(mut self, p: &str) -> Self {
        self.0["spec"]["restartPolicy"] = json!(p);
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.0["metadata"]["uid"] = json!(uid);
        self
    }

    pub fn orphan(mut self) -> Self {
        if let Some(m) = self.0["metadata"].as_object_mut() {
            m.remove("ownerReferences");
        }
        self
    }

    /// Regular containers, each with a status waiting in ContainerCreating.
    pub fn containers(mut self, names: &[&str]) -> Self {
        for n in names {
            push(
                &mut self.0["spec"]["containers"],
                json!({"name": n, "image": "busybox"}),
            );
            push(&mut self.0["status"]["containerStatuses"], status(n));
        }
        self
    }

    /// A regular init container with a status waiting in PodInitializing.
    pub fn init(mut self, name: &str) -> Self {
        push(
            &mut self.0["spec"]["initContainers"],
            json!({"name": name, "image": "busybox"}),
        );
        push(&mut self.0["status"]["initContainerStatuses"], status(name));
        self
    }

    /// An init container with `restartPolicy: Always`.
    pub fn sidecar(mut self, name: &str) -> Self {
        push(
            &mut self.0["spec"]["initContainers"],
            json!({"name": name, "image": "envoy", "restartPolicy": "Always"}),
        );
        push(&mut self.0["status"]["initContainerStatuses"], status(name));
        self
    }

    /// Set a field of a container's spec (regular or init).
    pub fn container_spec(mut self, name: &str, field: &str, value: Value) -> Self {
        let spec = &mut self.0["spec"];
        for list in ["containers", "initContainers"] {
            if let Some(items) = spec[list].as_array_mut() {
                for c in items.iter_mut().filter(|c| c["name"] == name) {
                    c[field] = value.clone();
                }
            }
        }
        self
    }

    pub fn drop_status(mut self, name: &str) -> Self {
        for list in ["containerStatuses", "initContainerStatuses"] {
            if let Some(items) = self.0["status"][list].as_array_mut() {
                items.retain(|c| c["name"] != name);
            }
        }
        self
    }

    pub fn readiness_gate(mut self, condition_type: &str) -> Self {
        push(
            &mut self.0["spec"]["readinessGates"],
            json!({"conditionType": condition_type}),
        );
        self
    }

    pub fn phase(mut self, phase: &str) -> Self {
        self.0["status"]["phase"] = json!(phase);
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.0["status"]["reason"] = json!(reason);
        self
    }

    /// `status.message`, which the view does not read but real writers set.
    pub fn message(mut self, message: &str) -> Self {
        self.0["status"]["message"] = json!(message);
        self
    }

    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    /// Bound to `node` (`spec.nodeName`).
    pub fn on_node(mut self, node: &str) -> Self {
        self.0["spec"]["nodeName"] = json!(node);
        self
    }

    pub fn created(mut self, at: i64) -> Self {
        self.0["metadata"]["creationTimestamp"] = json!(t(at));
        self
    }

    pub fn deleting(mut self, at: i64) -> Self {
        self.0["metadata"]["deletionTimestamp"] = json!(t(at));
        self
    }

    pub fn finalizers(mut self, names: &[&str]) -> Self {
        self.0["metadata"]["finalizers"] = json!(names);
        self
    }

    /// `status.startTime`, which the kubelet's status manager sets once.
    pub fn start_time(mut self, at: i64) -> Self {
        self.0["status"]["startTime"] = json!(t(at));
        self
    }

    /// No `spec.nodeName`: not bound to a node.
    pub fn unbound(mut self) -> Self {
        if let Some(spec) = self.0["spec"].as_object_mut() {
            spec.remove("nodeName");
        }
        self
    }

    /// Drop a status field (as trimmed dumps and older kubelets do).
    pub fn drop_status_field(mut self, field: &str) -> Self {
        if let Some(status) = self.0["status"].as_object_mut() {
            status.remove(field);
        }
        self
    }

    /// Drop a condition entirely.
    pub fn drop_cond(mut self, kind: &str) -> Self {
        if let Some(conds) = self.0["status"]["conditions"].as_array_mut() {
            conds.retain(|c| c["type"] != kind);
        }
        self
    }

    fn status_mut(&mut self, name: &str) -> &mut Value {
        for list in ["containerStatuses", "initContainerStatuses"] {
            let found = self.0["status"][list]
                .as_array()
                .and_then(|a| a.iter().position(|c| c["name"] == name));
            if let Some(i) = found {
                return &mut self.0["status"][list][i];
            }
        }
        panic!("no status for container {name}");
    }

    pub fn state(mut self, name: &str, state: Value) -> Self {
        self.status_mut(name)["state"] = state;
        self
    }

    pub fn last(mut self, name: &str, state: Value) -> Self {
        self.status_mut(name)["lastState"] = state;
        self
    }

    pub fn ready(mut self, name: &str, ready: bool) -> Self {
        self.status_mut(name)["ready"] = json!(ready);
        self
    }

    pub fn started(mut self, name: &str, started: bool) -> Self {
        self.status_mut(name)["started"] = json!(started);
        self
    }

    pub fn restarts(mut self, name: &str, n: i32) -> Self {
        self.status_mut(name)["restartCount"] = json!(n);
        self
    }

    /// The container instance the status names (`containerID`).
    pub fn container_id(mut self, name: &str, id: &str) -> Self {
        self.status_mut(name)["containerID"] = json!(id);
        self
    }

    /// The container runs from `at` (ready if `ready`).
    pub fn run(self, name: &str, at: i64, ready: bool) -> Self {
        self.state(name, running(at))
            .ready(name, ready)
            .started(name, true)
    }

    /// The container exits with `code` at `at` after running since `from`.
    pub fn exit(self, name: &str, code: i32, from: i64, at: i64) -> Self {
        self.state(name, terminated(code, from, at))
            .ready(name, false)
            .started(name, false)
    }

    /// The kubelet restarts an exited container at `at`: the current state becomes
    /// lastState, restartCount goes up.
    pub fn restart(mut self, name: &str, at: i64) -> Self {
        let st = self.status_mut(name);
        let previous = st["state"].clone();
        st["lastState"] = previous;
        let count = st["restartCount"].as_i64().unwrap_or(0) + 1;
        st["restartCount"] = json!(count);
        // A restart is a new container instance.
        if let Some(id) = st["containerID"].as_str() {
            st["containerID"] = json!(format!("{id}-{count}"));
        }
        st["state"] = running(at);
        st["ready"] = json!(false);
        st["started"] = json!(true);
        self
    }

    /// Set one condition; keeps lastTransitionTime when the status is unchanged.
    pub fn cond(mut self, kind: &str, status: &str, at: i64) -> Self {
        let conds = self.0["status"]["conditions"]
            .as_array_mut()
            .expect("conditions list");
        match conds.iter_mut().find(|c| c["type"] == kind) {
            Some(c) if c["status"] == status => {}
            Some(c) => {
                c["status"] = json!(status);
                c["lastTransitionTime"] = json!(t(at));
            }
            None => conds.push(json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": t(at)})),
        }
        self
    }

    pub fn cond_message(mut self, kind: &str, message: &str) -> Self {
        if let Some(c) = self.0["status"]["conditions"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|c| c["type"] == kind))
        {
            c["message"] = json!(message);
        }
        self
    }

    pub fn cond_reason(mut self, kind: &str, reason: &str) -> Self {
        if let Some(c) = self.0["status"]["conditions"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|c| c["type"] == kind))
        {
            c["reason"] = json!(reason);
        }
        self
    }

    /// Overwrite a condition's lastTransitionTime, status untouched.
    pub fn cond_time(mut self, kind: &str, at: i64) -> Self {
        if let Some(c) = self.0["status"]["conditions"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|c| c["type"] == kind))
        {
            c["lastTransitionTime"] = json!(t(at));
        }
        self
    }

    /// Derive Initialized, ContainersReady and Ready as the kubelet does (B4), keeping
    /// lastTransitionTime when a status does not change.
    pub fn kubelet_conditions(self, at: i64) -> Self {
        let v = self.view();
        let terminal = v.phase().is_terminal();
        let all_ready = v
            .regular_and_sidecars()
            .all(|(_, s)| s.is_some_and(|s| s.ready));
        let cr = !terminal && all_ready;
        let gates_ok = v.spec.readiness_gates.iter().all(|g| {
            v.status.conditions.iter().any(|c| {
                c.kind.as_str() == &**g && c.status == podwarden_model::view::ConditionStatus::True
            })
        });
        let ready = cr && gates_ok;
        let initialized = v.spec.init_containers.iter().all(|c| {
            let s = v.init_container_status(&c.name);
            if c.is_sidecar() {
                s.is_some_and(|s| s.started == Some(true))
            } else {
                s.is_some_and(|s| s.state.terminated().is_some_and(|t| t.exit_code == 0))
            }
        }) || v.status.container_statuses.iter().any(|s| s.has_started())
            || v.phase() == podwarden_model::Phase::Succeeded;
        let b = |x: bool| if x { "True" } else { "False" };
        self.cond("PodScheduled", "True", 0)
            .cond("Initialized", b(initialized), at)
            .cond("ContainersReady", b(cr), at)
            .cond("Ready", b(ready), at)
    }

    pub fn json(&self) -> String {
        self.0.to_string()
    }
}

fn status(name: &str) -> Value {
    json!({"name": name, "image": "busybox", "imageID": "", "ready": false, "started": false, "restartCount": 0,
           "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}})
}

fn push(list: &mut Value, item: Value) {
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        a.push(item);
    }
}

/// A sequence of snapshots of pods, audited in order like a watch stream by the same
/// [`Auditor`] `podwarden audit` uses (its clock, its deadlines, its input order).
#[derive(Default)]
pub struct Seq {
    pub snapshots: Vec<Pod>,
}

impl Seq {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a snapshot; resourceVersions increase as the API server's would.
    pub fn push(&mut self, mut pod: Pod) -> &mut Self {
        pod.0["metadata"]["resourceVersion"] = json!((self.snapshots.len() + 1).to_string());
        self.snapshots.push(pod);
        self
    }

    /// Append a snapshot with the resourceVersion it carries (a relisting recorder).
    pub fn push_as_is(&mut self, pod: Pod) -> &mut Self {
        self.snapshots.push(pod);
        self
    }

    /// The last snapshot, to change into the next one.
    pub fn last(&self) -> Pod {
        self.snapshots.last().cloned().expect("a snapshot")
    }

    pub fn audit(&self) -> Vec<Finding> {
        self.audit_with(&RuleSettings::default())
    }

    pub fn audit_with(&self, settings: &RuleSettings) -> Vec<Finding> {
        self.audit_summary(settings, None).0
    }

    /// Findings and summary, the input ending at `end` (`--now`) if given.
    pub fn audit_summary(
        &self,
        settings: &RuleSettings,
        end: Option<i64>,
    ) -> (Vec<Finding>, Summary) {
        let mut auditor = Auditor::new(settings.clone(), Scope::default())
            .ending_at(end.map(|e| Timestamp(T0 + e)));
        let mut out = Vec::new();
        for snap in &self.snapshots {
            out.extend(auditor.audit(snap.view(), false));
        }
        out.extend(auditor.finish());
        (out, auditor.summary().clone())
    }
}

pub fn rules_of(findings: &[Finding]) -> Vec<RuleId> {
    findings.iter().map(|f| f.rule).collect()
}

/// Findings at warning or above.
pub fn serious(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .collect()
}
