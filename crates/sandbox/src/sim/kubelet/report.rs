//! The status a simulated kubelet reports for a pod: built from its containers' state,
//! merged into the stored status as the kubelet's status manager merges it, written
//! through the status subresource (then the final delete of a deleted pod); and, the
//! other way, the kubelet-owned conditions read back from the API.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::api::object::format_time;
use crate::api::{ApiError, DeleteOptions, Subresource, WriteOptions};

use super::pod::{Cx, PodState};
use super::status::{self, CONDITIONS, PodPhase, object};

impl PodState {
    /// The four kubelet-owned conditions of the current state.
    fn conditions(&self) -> [status::Cond; 4] {
        status::conditions(
            &self.plan,
            &self.ctrs,
            self.initialized,
            self.gates_ok,
            self.phase(),
        )
    }

    /// Folds `conds`, computed from the current state, into the cached conditions
    /// (upstream `updateStatusInternal` and `updateLastTransitionTime`): a condition
    /// keeps its cached lastTransitionTime while its status stays, and gets `now` when
    /// it changes.
    fn cache_conditions(&mut self, conds: &[status::Cond; 4], now: Timestamp) {
        for (k, c) in conds.iter().enumerate() {
            let time = match self.conds[k] {
                Some((s, t)) if s == c.status => t,
                _ => now.as_second(),
            };
            self.conds[k] = Some((c.status, time));
        }
    }

    /// The status this kubelet reports for the current state (`conds`: its conditions),
    /// each condition with its cached lastTransitionTime, to merge into the stored one
    /// with [`merge_status`].
    fn status_report(&self, conds: &[status::Cond; 4], now: Timestamp) -> (Value, PodPhase) {
        let phase = self.phase();
        let mut list = Vec::with_capacity(5);
        for (k, c) in conds.iter().enumerate() {
            let time = match self.conds[k] {
                Some((s, t)) if s == c.status => t,
                _ => now.as_second(),
            };
            let mut v = object([
                ("type", CONDITIONS[k].into()),
                ("status", if c.status { "True" } else { "False" }.into()),
                ("lastProbeTime", Value::Null),
                ("lastTransitionTime", format_second(time).into()),
            ]);
            // A merge keeps fields the patch leaves out: clear a stale reason/message
            // (a null member of a condition new to the API is dropped by the merge).
            if let Some(m) = v.as_object_mut() {
                m.insert("reason".into(), c.reason.into());
                m.insert("message".into(), c.message.clone().into());
            }
            list.push(v);
        }
        let (host_ip, pod_ip) = (ip(self.host_ip), ip(self.pod_ip));
        let mut st = object([
            ("phase", phase.as_str().into()),
            ("conditions", Value::Array(list)),
            ("hostIP", host_ip.clone().into()),
            ("hostIPs", json!([{ "ip": host_ip }])),
            ("podIP", pod_ip.clone().into()),
            ("podIPs", json!([{ "ip": pod_ip }])),
            ("startTime", format_time(self.start).into()),
        ]);
        if let Some((end, at)) = self.end {
            if let Some((_, reason, message)) = end.forced()
                && self.written_terminal != Some(PodPhase::Succeeded)
            {
                if let Some(r) = reason {
                    st["reason"] = json!(r);
                }
                st["message"] = json!(message);
            }
            if end.disruption() {
                let message = end.forced().map(|f| f.2).unwrap_or_default();
                if let Some(l) = st["conditions"].as_array_mut() {
                    l.push(json!({
                        "type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                        "lastTransitionTime": format_time(at),
                        "reason": "TerminationByKubelet", "message": message,
                    }));
                }
            }
        }
        let who = (
            self.name.as_str(),
            self.namespace.as_str(),
            self.uid.as_str(),
        );
        let statuses = |range: std::ops::Range<usize>| -> Value {
            let mut list = Vec::with_capacity(range.len());
            for i in range {
                let err = self.plan.ctrs[i]
                    .script
                    .as_ref()
                    .err()
                    .map(|e| e.0.as_str());
                list.push(status::container_status(
                    &self.plan, &self.ctrs, i, who, err,
                ));
            }
            Value::Array(list)
        };
        if self.plan.first_app > 0 {
            st["initContainerStatuses"] = statuses(0..self.plan.first_app);
        }
        st["containerStatuses"] = statuses(self.plan.apps());
        (st, phase)
    }

    /// Caches the status if something changed (reachable or not), writes the latest
    /// cached status if the node can talk; then, for a deleted pod whose containers all
    /// stopped, the final delete.
    pub fn flush(&mut self, cx: &mut Cx<'_>) {
        let mut conds = None;
        if self.frozen {
            self.changed = false;
            self.unsent = false;
        } else if self.changed {
            let computed = self.conditions();
            self.cache_conditions(&computed, cx.now);
            conds = Some(computed);
            self.changed = false;
            self.unsent = true;
        }
        if !cx.talk {
            return;
        }
        if self.unsent {
            let conds = conds.unwrap_or_else(|| self.conditions());
            let (report, phase) = self.status_report(&conds, cx.now);
            let opts = WriteOptions {
                subresource: Subresource::Status,
                field_manager: Some("kubelet".into()),
                ..Default::default()
            };
            let pods = cx.sh.apis.pods.clone();
            let mut report = Some(report);
            // A read-modify-write of the status subresource, for this pod uid only.
            match cx.sh.store.update_status_view(
                &pods,
                Some(&self.namespace),
                &self.name,
                &opts,
                |current, view| {
                    if current.uid != self.uid {
                        return Err(ApiError::conflict("pods", "", &self.name));
                    }
                    // A retry after a lost race merges a copy (rare).
                    let report = report
                        .take()
                        .unwrap_or_else(|| self.status_report(&conds, cx.now).0);
                    merge_status(view, report);
                    Ok(())
                },
            ) {
                Ok(_) => {
                    self.unsent = false;
                    if phase.terminal() {
                        self.written_terminal = Some(phase);
                    }
                }
                Err(e) => {
                    tracing::debug!(pod = %self.name, error = %e, "kubelet status not written");
                    self.unsent = false;
                }
            }
        }
        let all_stopped = !self.ctrs.iter().any(|c| c.running());
        if self.deleting
            && !self.delete_sent
            && (self.frozen || (self.end.is_some() && all_stopped))
        {
            self.delete_sent = true;
            let pods = cx.sh.apis.pods.clone();
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                precondition_uid: Some(self.uid.clone()),
                ..Default::default()
            };
            if let Err(e) = cx
                .sh
                .store
                .delete(&pods, Some(&self.namespace), &self.name, &opts)
            {
                tracing::debug!(pod = %self.name, error = %e, "kubelet final delete failed");
            }
        }
    }
}

/// Reads the kubelet-owned conditions of an API pod status, for the time bookkeeping.
pub fn api_conditions(pod: &k8s_openapi::api::core::v1::Pod) -> [Option<(bool, i64)>; 4] {
    let mut out = [None; 4];
    for c in pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(k) = CONDITIONS.iter().position(|n| *n == c.type_) {
            let t = c
                .last_transition_time
                .as_ref()
                .map_or(0, |t| t.0.as_second());
            out[k] = Some((c.status == "True", t));
        }
    }
    out
}

fn format_second(s: i64) -> String {
    Timestamp::from_second(s)
        .map(format_time)
        .unwrap_or_default()
}

pub fn ip(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// Merges a kubelet status report into a pod's status view as the kubelet's status
/// manager does: conditions by type (a null field clears it; conditions others own
/// stay, in their places), container status lists and pod IPs replaced, other fields
/// set or, when null, cleared; fields the report leaves out stay.
pub fn merge_status(view: &mut Value, report: Value) {
    let Value::Object(report) = report else {
        return;
    };
    let Some(root) = view.as_object_mut() else {
        return;
    };
    let status = root
        .entry("status")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !status.is_object() {
        *status = Value::Object(serde_json::Map::new());
    }
    let Some(status) = status.as_object_mut() else {
        return;
    };
    for (key, value) in report {
        match (key.as_str(), value) {
            (_, Value::Null) => {
                status.remove(&key);
            }
            ("conditions", Value::Array(reported)) => {
                let slot = status
                    .entry("conditions")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let Some(list) = slot.as_array_mut() else {
                    continue;
                };
                for cond in reported {
                    let Value::Object(cond) = cond else { continue };
                    let at = list
                        .iter()
                        .position(|c| c.get("type").is_some() && c.get("type") == cond.get("type"));
                    match at
                        .and_then(|i| list.get_mut(i))
                        .and_then(Value::as_object_mut)
                    {
                        Some(existing) => {
                            for (k, v) in cond {
                                if v.is_null() && k != "lastProbeTime" {
                                    existing.remove(&k);
                                } else {
                                    existing.insert(k, v);
                                }
                            }
                        }
                        None => {
                            let fresh = cond
                                .into_iter()
                                .filter(|(k, v)| !v.is_null() || k == "lastProbeTime")
                                .collect();
                            list.push(Value::Object(fresh));
                        }
                    }
                }
            }
            (_, value) => {
                status.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod merge_tests {
    use super::merge_status;
    use serde_json::json;

    #[test]
    fn a_report_merges_conditions_by_type_and_replaces_container_lists() {
        let mut view = json!({"metadata": {"name": "p"}, "status": {
            "phase": "Running", "qosClass": "Burstable", "reason": "Stale",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null},
                {"type": "Ready", "status": "False", "reason": "NodeNotReady", "message": "m",
                 "lastProbeTime": null, "lastTransitionTime": "t0"},
                {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"},
            ],
            "containerStatuses": [{"name": "a", "restartCount": 1}, {"name": "gone"}],
        }});
        merge_status(
            &mut view,
            json!({
                "phase": "Succeeded", "reason": null,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": null, "message": null,
                     "lastProbeTime": null, "lastTransitionTime": "t1"},
                    {"type": "Initialized", "status": "True", "reason": null,
                     "lastProbeTime": null, "lastTransitionTime": "t1"},
                ],
                "containerStatuses": [{"name": "a", "restartCount": 2}],
            }),
        );
        assert_eq!(
            view,
            json!({"metadata": {"name": "p"}, "status": {
                "phase": "Succeeded", "qosClass": "Burstable",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null},
                    {"type": "Ready", "status": "True", "lastProbeTime": null,
                     "lastTransitionTime": "t1"},
                    {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"},
                    {"type": "Initialized", "status": "True", "lastProbeTime": null,
                     "lastTransitionTime": "t1"},
                ],
                "containerStatuses": [{"name": "a", "restartCount": 2}],
            }})
        );
    }

    #[test]
    fn a_report_gives_a_view_without_status_one() {
        let mut view = json!({"metadata": {"name": "p"}});
        merge_status(&mut view, json!({"phase": "Pending", "conditions": []}));
        assert_eq!(
            view,
            json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": []}})
        );
    }
}
