//! The cells of a Table row: each kind's values rendered as upstream's printers render
//! them (pod status and readiness, node roles, event sources, CRD printer columns
//! through their JSONPath), and ages as `HumanDuration` writes them.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::super::labels;
use super::super::object::{self, path, path_str};
use super::super::resources::{Flavor, PrinterColumn, ResourceType};

/// The cells of one object's row.
pub fn cells(rt: &ResourceType, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(object::meta_str(o, "name").unwrap_or_default());
    let age = json!(since(object::meta_str(o, "creationTimestamp"), now));
    match rt.flavor {
        Flavor::Pod => pod_cells(o, name, age, now),
        Flavor::Node => node_cells(o, name, age),
        Flavor::Namespace => vec![
            name,
            json!(path_str(o, &["status", "phase"]).unwrap_or_default()),
            age,
        ],
        Flavor::Lease => vec![
            name,
            json!(path_str(o, &["spec", "holderIdentity"]).unwrap_or_default()),
            age,
        ],
        Flavor::CoreEvent | Flavor::EventsV1 => event_cells(o, now),
        Flavor::Crd | Flavor::Role | Flavor::ClusterRole => vec![
            name,
            json!(object::meta_str(o, "creationTimestamp").unwrap_or_default()),
        ],
        Flavor::Custom => {
            let mut out = vec![name];
            out.extend(rt.printer_columns.iter().map(|c| custom_cell(c, o, now)));
            out
        }
        Flavor::ServiceAccount => vec![name, json!(array(o, "secrets").len()), age],
        Flavor::ConfigMap => vec![name, json!(count(o, "data") + count(o, "binaryData")), age],
        Flavor::Secret => vec![
            name,
            json!(o.get("type").and_then(Value::as_str).unwrap_or_default()),
            json!(count(o, "data")),
            age,
        ],
        Flavor::Service => service_cells(o, name, age),
        Flavor::Deployment => deployment_cells(o, name, age),
        Flavor::NetworkPolicy => vec![
            name,
            json!(labels::format_label_selector(path(
                o,
                &["spec", "podSelector"]
            ))),
            age,
        ],
        Flavor::RoleBinding | Flavor::ClusterRoleBinding => binding_cells(o, name, age),
    }
}

/// Members of a map field (a ConfigMap's or Secret's data).
fn count(o: &Value, key: &str) -> usize {
    o.get(key).and_then(Value::as_object).map_or(0, |m| m.len())
}

// ---- services, deployments, bindings -----------------------------------------------

/// `printService`: NAME, TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE, SELECTOR.
fn service_cells(svc: &Value, name: Value, age: Value) -> Vec<Value> {
    let spec = svc.get("spec").cloned().unwrap_or(json!({}));
    let type_ = spec.get("type").and_then(Value::as_str).unwrap_or_default();
    let cluster_ip = array(&spec, "clusterIPs")
        .first()
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| "<none>".to_string());
    let strings = |key: &str| -> Vec<String> {
        array(&spec, key)
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let external_ips = strings("externalIPs");
    let external = match type_ {
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = path(svc, &["status", "loadBalancer", "ingress"])
                .and_then(Value::as_array)
                .map(|ingress| {
                    ingress
                        .iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external_ips);
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = array(&spec, "ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node_port) if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name,
        json!(type_),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        age,
        json!(labels::format_labels(spec.get("selector"))),
    ]
}

/// `printDeployment`: NAME, READY (ready/desired), UP-TO-DATE, AVAILABLE, AGE,
/// CONTAINERS, IMAGES, SELECTOR.
fn deployment_cells(d: &Value, name: Value, age: Value) -> Vec<Value> {
    let int = |keys: &[&str]| path(d, keys).and_then(Value::as_i64).unwrap_or(0);
    let containers = path(d, &["spec", "template", "spec", "containers"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let field = |key: &str| -> String {
        containers
            .iter()
            .map(|c| c.get(key).and_then(Value::as_str).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",")
    };
    let selector = match path(d, &["spec", "selector"]) {
        Some(s) => labels::selector_string(s).unwrap_or_else(|| "<invalid>".into()),
        None => String::new(),
    };
    vec![
        name,
        json!(format!(
            "{}/{}",
            int(&["status", "readyReplicas"]),
            int(&["spec", "replicas"])
        )),
        json!(int(&["status", "updatedReplicas"])),
        json!(int(&["status", "availableReplicas"])),
        age,
        json!(field("name")),
        json!(field("image")),
        json!(selector),
    ]
}

/// `printRoleBinding`, `printClusterRoleBinding`: NAME, ROLE (`Kind/name`), AGE,
/// USERS, GROUPS, SERVICEACCOUNTS (`namespace:name`).
fn binding_cells(b: &Value, name: Value, age: Value) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        path_str(b, &["roleRef", "kind"]).unwrap_or_default(),
        path_str(b, &["roleRef", "name"]).unwrap_or_default()
    );
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in array(b, "subjects") {
        let subject_name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        match s.get("kind").and_then(Value::as_str) {
            Some("User") => users.push(subject_name.to_string()),
            Some("Group") => groups.push(subject_name.to_string()),
            Some("ServiceAccount") => {
                match s
                    .get("namespace")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                {
                    Some(ns) => accounts.push(format!("{ns}:{subject_name}")),
                    None => accounts.push(subject_name.to_string()),
                }
            }
            _ => {}
        }
    }
    vec![
        name,
        json!(role),
        age,
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(accounts.join(", ")),
    ]
}

// ---- pods --------------------------------------------------------------------

/// `printPod`: NAME, READY, STATUS, RESTARTS, AGE, IP, NODE, NOMINATED NODE,
/// READINESS GATES.
fn pod_cells(pod: &Value, name: Value, age: Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec = pod.get("spec").cloned().unwrap_or(json!({}));
    let status = pod.get("status").cloned().unwrap_or(json!({}));
    let init_specs = array(&spec, "initContainers");
    let conditions = array(&status, "conditions");
    let total =
        array(&spec, "containers").len() + init_specs.iter().filter(|c| is_sidecar(c)).count();
    let phase = status
        .get("phase")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut row = PodRow {
        reason: initial_reason(&status, &phase, &conditions),
        ready: 0,
        restarts: Restarts::default(),
    };
    let (initializing, sidecar_restarts) =
        row.init_containers(&init_specs, &array(&status, "initContainerStatuses"));
    if !initializing || has_condition(&conditions, "Initialized", "True") {
        row.restarts = sidecar_restarts;
        row.app_containers(&array(&status, "containerStatuses"), &conditions);
    }
    let deleting = object::meta(pod).is_some_and(|m| m.contains_key("deletionTimestamp"));
    if deleting && status.get("reason").and_then(Value::as_str) == Some("NodeLost") {
        row.reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        row.reason = "Terminating".into();
    }
    let ip = array(&status, "podIPs")
        .first()
        .and_then(|p| p.get("ip"))
        .and_then(Value::as_str)
        .or_else(|| status.get("podIP").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>")
        .to_string();
    vec![
        name,
        json!(format!("{}/{total}", row.ready)),
        json!(row.reason),
        json!(row.restarts.cell(now)),
        age,
        json!(ip),
        json!(str_or_none(&spec, "nodeName")),
        json!(str_or_none(&status, "nominatedNodeName")),
        json!(readiness_gates_cell(&spec, &conditions)),
    ]
}

/// What the READY, STATUS and RESTARTS columns gather from a pod's containers.
struct PodRow {
    reason: String,
    ready: usize,
    restarts: Restarts,
}

/// A restart count and the time the last restarted container finished.
#[derive(Debug, Default, Clone, Copy)]
struct Restarts {
    count: i64,
    last: Option<jiff::Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += status
            .get("restartCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let finished = path_str(status, &["lastState", "terminated", "finishedAt"])
            .and_then(object::parse_time);
        if let Some(t) = finished {
            self.last = self.last.max(Some(t));
        }
    }

    /// `3 (5m ago)`, or the bare count.
    fn cell(&self, now: jiff::Timestamp) -> String {
        match self.last {
            Some(t) if self.count != 0 => {
                format!(
                    "{} ({} ago)",
                    self.count,
                    human_duration(now.duration_since(t))
                )
            }
            _ => self.count.to_string(),
        }
    }
}

impl PodRow {
    /// Init containers in order, up to the first that has not completed: their
    /// restarts, ready started sidecars, and an `Init:` reason when one is still
    /// running or failed. Returns whether the pod is still initializing, and the
    /// restarts of the sidecars alone.
    fn init_containers(&mut self, init_specs: &[Value], statuses: &[Value]) -> (bool, Restarts) {
        let restartable = |name: &str| {
            init_specs
                .iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(name) && is_sidecar(c))
        };
        let mut sidecars = Restarts::default();
        for (i, c) in statuses.iter().enumerate() {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
            self.restarts.add(c);
            if restartable(cname) {
                sidecars.add(c);
            }
            let terminated = path(c, &["state", "terminated"]);
            let exit = terminated
                .and_then(|t| t.get("exitCode"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let waiting_reason = path_str(c, &["state", "waiting", "reason"]).unwrap_or_default();
            if terminated.is_some() && exit == 0 {
                continue;
            }
            if restartable(cname) && c.get("started").and_then(Value::as_bool) == Some(true) {
                if c.get("ready").and_then(Value::as_bool) == Some(true) {
                    self.ready += 1;
                }
                continue;
            }
            self.reason = if let Some(t) = terminated {
                let r = t.get("reason").and_then(Value::as_str).unwrap_or_default();
                let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
                if !r.is_empty() {
                    format!("Init:{r}")
                } else if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    format!("Init:ExitCode:{exit}")
                }
            } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
                format!("Init:{waiting_reason}")
            } else {
                format!("Init:{i}/{}", init_specs.len())
            };
            return (true, sidecars);
        }
        (false, sidecars)
    }

    /// App containers, last first: their restarts, the ready running ones, and the
    /// reason of a waiting or terminated one; a Completed pod with a container still
    /// running reads Running or NotReady.
    fn app_containers(&mut self, statuses: &[Value], conditions: &[Value]) {
        let mut has_running = false;
        for c in statuses.iter().rev() {
            self.restarts.add(c);
            let waiting = path_str(c, &["state", "waiting", "reason"]).unwrap_or_default();
            let terminated = path(c, &["state", "terminated"]);
            let term_reason = terminated
                .and_then(|t| t.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !waiting.is_empty() {
                self.reason = waiting.to_string();
            } else if terminated.is_some() && !term_reason.is_empty() {
                self.reason = term_reason.to_string();
            } else if let Some(t) = terminated {
                let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
                let exit = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
                self.reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{exit}")
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && path(c, &["state", "running"]).is_some()
            {
                has_running = true;
                self.ready += 1;
            }
        }
        if self.reason == "Completed" && has_running {
            self.reason = if has_condition(conditions, "Ready", "True") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
}

/// The status's reason, else its phase; `SchedulingGated` while the pod is gated.
fn initial_reason(status: &Value, phase: &str, conditions: &[Value]) -> String {
    let gated = conditions.iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("PodScheduled")
            && c.get("reason").and_then(Value::as_str) == Some("SchedulingGated")
    });
    if gated {
        return "SchedulingGated".into();
    }
    status
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .unwrap_or(phase.to_string())
}

/// `1/2`: the readiness gates whose condition is True, of all; `<none>` without gates.
fn readiness_gates_cell(spec: &Value, conditions: &[Value]) -> String {
    let gates = array(spec, "readinessGates");
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let true_count = gates
        .iter()
        .filter(|g| {
            let t = g.get("conditionType");
            conditions
                .iter()
                .find(|c| c.get("type") == t)
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                == Some("True")
        })
        .count();
    format!("{true_count}/{}", gates.len())
}

fn array(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A restartable init container (a sidecar).
fn is_sidecar(container: &Value) -> bool {
    container.get("restartPolicy").and_then(Value::as_str) == Some("Always")
}

fn has_condition(conditions: &[Value], type_: &str, status: &str) -> bool {
    conditions.iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some(type_)
            && c.get("status").and_then(Value::as_str) == Some(status)
    })
}

/// A string member, or `<none>` when missing or empty.
fn str_or_none(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>")
        .to_string()
}

// ---- nodes, events -------------------------------------------------------------

fn node_cells(node: &Value, name: Value, age: Value) -> Vec<Value> {
    let conditions = path(node, &["status", "conditions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status: Vec<String> = Vec::new();
    if let Some(ready) = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
    {
        status.push(
            if ready.get("status").and_then(Value::as_str) == Some("True") {
                "Ready".into()
            } else {
                "NotReady".into()
            },
        );
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if path(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = object::meta(node)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role"
                && let Some(v) = v.as_str().filter(|v| !v.is_empty())
            {
                roles.insert(v.to_string());
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let info = |k: &str| {
        path_str(node, &["status", "nodeInfo", k])
            .filter(|s| !s.is_empty())
            .unwrap_or("<unknown>")
            .to_string()
    };
    let address = |t: &str| {
        path(node, &["status", "addresses"])
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|x| x.get("address"))
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string()
    };
    vec![
        name,
        json!(status.join(",")),
        json!(roles),
        age,
        json!(path_str(node, &["status", "nodeInfo", "kubeletVersion"]).unwrap_or_default()),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn event_cells(e: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let text = |k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let first = match e.get("firstTimestamp").and_then(Value::as_str) {
        Some(t) => since(Some(t), now),
        None => since(e.get("eventTime").and_then(Value::as_str), now),
    };
    let mut last = match e.get("lastTimestamp").and_then(Value::as_str) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = e.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        last = since(series.get("lastObservedTime").and_then(Value::as_str), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = path_str(e, &["involvedObject", "kind"])
        .unwrap_or_default()
        .to_ascii_lowercase();
    let target = match path_str(e, &["involvedObject", "name"]).filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let component = path_str(e, &["source", "component"])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or(text("reportingComponent"));
    let instance = path_str(e, &["source", "host"])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or(text("reportingInstance"));
    let source = if component.is_empty() {
        "<unknown>".to_string()
    } else if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(text("type")),
        json!(text("reason")),
        json!(target),
        json!(path_str(e, &["involvedObject", "fieldPath"]).unwrap_or_default()),
        json!(source),
        json!(text("message").trim()),
        json!(first),
        json!(count),
        json!(object::meta_str(e, "name").unwrap_or_default()),
    ]
}

// ---- custom resources ------------------------------------------------------------

fn custom_cell(column: &PrinterColumn, o: &Value, now: jiff::Timestamp) -> Value {
    let Some(value) = json_path(o, &column.json_path) else {
        return Value::Null;
    };
    match column.type_.as_str() {
        "integer" => value
            .as_i64()
            .map(|i| json!(i))
            .or_else(|| value.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        "number" => value.as_f64().map(|f| json!(f)).unwrap_or(Value::Null),
        "boolean" => value.as_bool().map(|b| json!(b)).unwrap_or(Value::Null),
        "date" => match value.as_str() {
            Some(s) => match object::parse_time(s) {
                Some(_) => json!(since(Some(s), now)),
                None => json!("<invalid>"),
            },
            None => Value::Null,
        },
        _ => match value {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

/// The simple JSONPath subset CRD printer columns use: `.a.b`, `.a[0].b`,
/// `.a[?(@.type=="Ready")].status`.
pub fn json_path(o: &Value, expr: &str) -> Option<Value> {
    let expr = expr.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = o.clone();
    let mut rest = expr.strip_prefix('.').unwrap_or(expr);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            rest = after[end + 1..].trim_start_matches('.');
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches('"').trim_matches('\'');
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|e| e.get(field.trim()).and_then(Value::as_str) == Some(want))?
                    .clone();
            } else {
                let i: usize = inner.parse().ok()?;
                cur = cur.as_array()?.get(i)?.clone();
            }
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        cur = cur.get(key)?.clone();
        rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
    }
    Some(cur)
}

// ---- ages ------------------------------------------------------------------------

/// `translateTimestampSince`: the age of a timestamp, or `<unknown>`.
pub fn since(ts: Option<&str>, now: jiff::Timestamp) -> String {
    match ts.and_then(object::parse_time) {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".into(),
    }
}

/// `duration.HumanDuration` from k8s.io/apimachinery.
pub fn human_duration(d: jiff::SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::Registry;

    fn now() -> jiff::Timestamp {
        "2026-08-01T10:10:00Z".parse().unwrap()
    }

    fn status_of(pod: Value) -> String {
        let rt = Registry::default().find("", "v1", "pods").unwrap();
        let c = cells(&rt, &pod, now());
        c[2].as_str().unwrap().to_string()
    }

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": "2026-08-01T10:00:00Z"},
               "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "i1"}, {"name": "i2"}]},
               "status": status})
    }

    #[test]
    fn pod_status_column_follows_upstream() {
        let cases = [
            (
                "crash loop",
                json!({"phase": "Running", "containerStatuses": [{"name": "app", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "CrashLoopBackOff",
            ),
            (
                "init running",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"running": {}}}]}),
                "Init:0/2",
            ),
            (
                "init failed",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                "Init:Error",
            ),
            (
                "completed",
                json!({"phase": "Succeeded", "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 0}}}, {"name": "i2", "state": {"terminated": {"exitCode": 0}}}], "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                "Completed",
            ),
            (
                "oom",
                json!({"phase": "Running", "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
                "OOMKilled",
            ),
            (
                "evicted",
                json!({"phase": "Failed", "reason": "Evicted"}),
                "Evicted",
            ),
            (
                "exit code",
                json!({"phase": "Running", "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 2}}}]}),
                "ExitCode:2",
            ),
        ];
        for (case, status, want) in cases {
            assert_eq!(status_of(pod(status)), want, "{case}");
        }
    }

    #[test]
    fn terminating_pod() {
        let mut p = pod(json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!("2026-08-01T10:09:00Z");
        assert_eq!(status_of(p), "Terminating");
    }

    #[test]
    fn restarts_show_age_of_last_restart() {
        let p = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "restartCount": 2, "ready": true,
            "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": "2026-08-01T10:05:00Z"}}}]}),
        );
        let rt = Registry::default().find("", "v1", "pods").unwrap();
        let c = cells(&rt, &p, now());
        assert_eq!(c[1], "1/1");
        assert_eq!(c[3], "2 (5m ago)");
        assert_eq!(c[4], "10m");
    }

    #[test]
    fn human_durations() {
        let d = jiff::SignedDuration::from_secs;
        assert_eq!(human_duration(d(5)), "5s");
        assert_eq!(human_duration(d(125)), "2m5s");
        assert_eq!(human_duration(d(3600 * 5 + 60 * 3)), "5h3m");
        assert_eq!(human_duration(d(3600 * 24 * 3)), "3d");
    }

    #[test]
    fn json_path_filters() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(json!("A"))
        );
    }
}
