//! Faulty-kubelet writes: for each rule of SEMANTICS.md B7, one status patch that
//! breaks exactly that rule, built from the pod's current API status. Each rule needs
//! a pod state that can carry it alone (e.g. a terminal phase to leave); when the pod is
//! not there yet the injection is refused with the precondition that is missing.
//!
//! | rule | needs | the write |
//! |---|---|---|
//! | `terminal-phase-regression` | phase Succeeded or Failed | phase Running |
//! | `restart-against-policy` | a container (not a sidecar; an init container if the pod Succeeded) terminated with an exit its effective policy does not restart (an init container of an `Always` pod may run again: sandbox recreation) | that container running again |
//! | `terminal-phase-ready` | phase Succeeded or Failed, no readiness gates; if Failed, Ready or ContainersReady not already True | Ready and ContainersReady True, every container and sidecar ready |
//! | `ready-without-containers-ready` | a phase that is not terminal | ContainersReady False, Ready True |
//! | `containers-ready-mismatch` | a phase that is not terminal | ContainersReady True, the first container not ready |
//! | `succeeded-with-failed-container` | not terminal, a container not terminated with exit 0 | phase Succeeded, Ready and ContainersReady False |
//! | `restart-count-decreased` | a container with restartCount > 0 | that count minus one, its containerID kept (the same container instance) |
//! | `start-time-changed` | `status.startTime` written | another startTime (now, as a kubelet that lost its state would) |
//! | `running-unbound` | no `spec.nodeName`, a phase that is not terminal | phase Running, every container running (not ready) |
//!
//! Every rule but `running-unbound` also needs the kubelet's first status written and
//! the node reachable. `running-unbound` is written by a kubelet that does not run the
//! pod: a status write by name, as a kubelet would send for a pod of that name it ran
//! before, that lands on an unscheduled pod ([`unbound_patch`]). Conditions a write
//! does not mean to flip keep their lastTransitionTime, so no other rule breaks.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::api::object::format_time;

use super::pod::PodState;
use super::spec::{CtrSpec, Kind, Policy};

type Why = String;

fn phase(status: &Value) -> &str {
    status.get("phase").and_then(Value::as_str).unwrap_or("")
}

fn terminal(status: &Value) -> bool {
    matches!(phase(status), "Succeeded" | "Failed")
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// A condition with `status`, keeping the API's lastTransitionTime when the status
/// stays (so only the rule being injected breaks).
fn set_condition(
    status: &Value,
    kind: &str,
    to: bool,
    reason: Option<&str>,
    now: Timestamp,
) -> Value {
    let word = if to { "True" } else { "False" };
    let time = match condition(status, kind) {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(word) => c
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or(json!(format_time(now))),
        _ => json!(format_time(now)),
    };
    let mut c =
        json!({"type": kind, "status": word, "lastProbeTime": null, "lastTransitionTime": time});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

fn statuses(status: &Value, list: &str) -> Vec<Value> {
    status
        .get(list)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn replace(list: Vec<Value>) -> Value {
    let mut out = vec![json!({"$patch": "replace"})];
    out.extend(list);
    Value::Array(out)
}

fn find(list: &[Value], name: &str) -> Option<usize> {
    list.iter()
        .position(|s| s.get("name").and_then(Value::as_str) == Some(name))
}

/// Whether B7 rule 2 lets `spec`'s container run again after exiting with `exit`: its
/// effective policy restarts that exit. A regular init container of an `Always` pod
/// with no policy of its own takes the pod's: the kubelet runs it again when it
/// recreates the pod sandbox, and the status manager accepts that (upstream
/// `checkContainerStateTransition`), though it never restarts it after exit 0 otherwise.
fn may_run_again(spec: &CtrSpec, pod: Policy, exit: i32) -> bool {
    let sandbox_rerun = spec.kind == Kind::Init && spec.policy.is_none() && pod == Policy::Always;
    sandbox_rerun || spec.should_restart(pod, exit)
}

/// The patch that breaks `rule` for this pod, or why it cannot.
pub fn violating_patch(
    st: &PodState,
    pod: &k8s_openapi::api::core::v1::Pod,
    rule: &str,
    now: Timestamp,
) -> Result<Value, Why> {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    if status.get("containerStatuses").is_none() {
        return Err("the kubelet has not written the pod's container statuses yet".into());
    }
    let plan = &st.plan;
    let apps = statuses(&status, "containerStatuses");
    let inits = statuses(&status, "initContainerStatuses");
    let need_terminal = || -> Result<(), Why> {
        if terminal(&status) {
            Ok(())
        } else {
            Err(format!(
                "the rule needs a pod in phase Succeeded or Failed; it is {:?}",
                phase(&status)
            ))
        }
    };
    let need_live = || -> Result<(), Why> {
        if terminal(&status) {
            Err(format!(
                "the rule needs a pod that is not terminal; it is {}",
                phase(&status)
            ))
        } else {
            Ok(())
        }
    };
    let patch = match rule {
        "terminal-phase-regression" => {
            need_terminal()?;
            json!({"phase": "Running"})
        }
        "restart-against-policy" => {
            let succeeded = phase(&status) == "Succeeded";
            let mut found = None;
            for spec in &plan.ctrs {
                if spec.kind == Kind::Sidecar || (succeeded && spec.kind == Kind::App) {
                    continue;
                }
                let (key, list) = match spec.kind {
                    Kind::App => ("containerStatuses", &apps),
                    _ => ("initContainerStatuses", &inits),
                };
                let Some(i) = find(list, &spec.name) else {
                    continue;
                };
                let exit = list[i]
                    .pointer("/state/terminated/exitCode")
                    .and_then(Value::as_i64);
                if let Some(exit) = exit.and_then(|e| i32::try_from(e).ok())
                    && !may_run_again(spec, plan.policy, exit)
                {
                    found = Some((key, list.clone(), i));
                    break;
                }
            }
            let Some((key, mut list, i)) = found else {
                return Err("the rule needs a container terminated with an exit its restart policy does not restart (not a sidecar; an init container if the pod Succeeded)".into());
            };
            list[i]["state"] = json!({"running": {"startedAt": format_time(now)}});
            list[i]["started"] = json!(true);
            json!({ key: replace(list) })
        }
        "terminal-phase-ready" => {
            need_terminal()?;
            if !plan.readiness_gates.is_empty() {
                return Err("the rule needs a pod without readiness gates".into());
            }
            // PodGC fails a pod by writing the phase alone: a Failed pod may legally keep
            // both True, and writing them True again would change nothing.
            let is_true = |k| {
                condition(&status, k)
                    .and_then(|c| c.get("status"))
                    .and_then(Value::as_str)
                    == Some("True")
            };
            if phase(&status) == "Failed" && is_true("Ready") && is_true("ContainersReady") {
                return Err(
                    "the rule needs Ready or ContainersReady not True on a Failed pod".into(),
                );
            }
            let mut apps = apps;
            for s in &mut apps {
                s["ready"] = json!(true);
            }
            let mut inits = inits;
            for s in &mut inits {
                let sidecar = plan.ctrs.iter().any(|c| {
                    c.kind == Kind::Sidecar
                        && s.get("name").and_then(Value::as_str) == Some(&c.name)
                });
                if sidecar {
                    s["ready"] = json!(true);
                }
            }
            let mut p = json!({
                "conditions": [
                    set_condition(&status, "ContainersReady", true, None, now),
                    set_condition(&status, "Ready", true, None, now),
                ],
                "containerStatuses": replace(apps),
            });
            if !inits.is_empty() {
                p["initContainerStatuses"] = replace(inits);
            }
            p
        }
        "ready-without-containers-ready" => {
            need_live()?;
            json!({"conditions": [
                set_condition(&status, "ContainersReady", false, Some("ContainersNotReady"), now),
                set_condition(&status, "Ready", true, None, now),
            ]})
        }
        "containers-ready-mismatch" => {
            need_live()?;
            let mut apps = apps;
            let Some(first) = apps.first_mut() else {
                return Err("the pod has no container status yet".into());
            };
            first["ready"] = json!(false);
            json!({
                "conditions": [set_condition(&status, "ContainersReady", true, None, now)],
                "containerStatuses": replace(apps),
            })
        }
        "succeeded-with-failed-container" => {
            need_live()?;
            let all_ok = plan.apps().all(|i| {
                find(&apps, &plan.ctrs[i].name).is_some_and(|j| {
                    apps[j]
                        .pointer("/state/terminated/exitCode")
                        .and_then(Value::as_i64)
                        == Some(0)
                })
            });
            if all_ok {
                return Err("every container already terminated with exit 0".into());
            }
            json!({
                "phase": "Succeeded",
                "conditions": [
                    set_condition(&status, "ContainersReady", false, Some("PodCompleted"), now),
                    set_condition(&status, "Ready", false, Some("PodCompleted"), now),
                ],
            })
        }
        "restart-count-decreased" => {
            let restarted = |l: &[Value]| {
                l.iter()
                    .position(|s| s.get("restartCount").and_then(Value::as_i64).unwrap_or(0) > 0)
            };
            if let Some(i) = restarted(&apps) {
                let mut apps = apps;
                let n = apps[i]["restartCount"].as_i64().unwrap_or(1);
                apps[i]["restartCount"] = json!(n - 1);
                json!({"containerStatuses": replace(apps)})
            } else if let Some(i) = restarted(&inits) {
                let mut inits = inits;
                let n = inits[i]["restartCount"].as_i64().unwrap_or(1);
                inits[i]["restartCount"] = json!(n - 1);
                json!({"initContainerStatuses": replace(inits)})
            } else {
                return Err("no container has restarted yet".into());
            }
        }
        "start-time-changed" => {
            let Some(was) = status.get("startTime").and_then(Value::as_str) else {
                return Err("the kubelet has not written the pod's startTime yet".into());
            };
            let mut to = format_time(now);
            if to == was {
                to = format_time(
                    now.saturating_add(SignedDuration::from_secs(1))
                        .unwrap_or(now),
                );
            }
            json!({"startTime": to})
        }
        "running-unbound" => {
            return Err("the rule is written to a pod no kubelet runs (unbound_patch)".into());
        }
        other => return Err(format!("unknown rule {other:?}")),
    };
    Ok(json!({ "status": patch }))
}

/// The `running-unbound` patch: a pod bound to no node, not terminal, gets phase Running
/// and every regular container running (not ready, without a container ID: no runtime
/// ever ran it), or why it cannot.
pub fn unbound_patch(pod: &k8s_openapi::api::core::v1::Pod, now: Timestamp) -> Result<Value, Why> {
    let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Err(format!(
            "the rule needs a pod bound to no node; it is bound to {node}"
        ));
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(format!(
            "the rule needs a pod that is not terminal; it is {phase}"
        ));
    }
    let running: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "ready": false, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": format_time(now)}}, "lastState": {},
            })
        })
        .collect();
    Ok(json!({"status": {"phase": "Running", "containerStatuses": replace(running)}}))
}
