//! Services, Deployments and NetworkPolicies: the defaults of
//! `pkg/apis/core/v1/defaults.go`, `pkg/apis/apps/v1/defaults.go` and
//! `pkg/apis/networking/v1/defaults.go`, and the checks of their validation that a
//! chart can get wrong (a selector that misses its template, ports, types).
//! Cluster IPs are allocated by the store (see `store::cluster_ip`).

use serde_json::{Map, Value, json};

use super::super::error::Cause;
use super::super::labels;
use super::pod_spec::{image_is_latest, validate_pod_spec};

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const SERVICE_TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

fn or_insert(map: &mut Map<String, Value>, key: &str, value: Value) {
    let missing = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if missing {
        map.insert(key.into(), value);
    }
}

fn invalid_raw(field: String, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {why}"),
        field,
    }
}

// ---- services ------------------------------------------------------------------

/// Whether a Service gets a cluster IP: not ExternalName, not headless.
pub fn needs_cluster_ip(service: &Value) -> bool {
    let spec = service.get("spec");
    let type_ = spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ip = spec
        .and_then(|s| s.get("clusterIP"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    type_ != "ExternalName" && ip != "None"
}

/// `SetDefaults_Service`: type ClusterIP, sessionAffinity None, each port's protocol
/// TCP and targetPort its port; internalTrafficPolicy Cluster; externalTrafficPolicy
/// Cluster for NodePort and LoadBalancer; IPv4 single stack (what the allocator
/// writes); a headless Service's `clusterIPs: [None]`.
pub fn default_service(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    or_insert(spec, "type", json!("ClusterIP"));
    or_insert(spec, "sessionAffinity", json!("None"));
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("None") {
        spec.remove("sessionAffinityConfig");
    }
    let type_ = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            or_insert(p, "protocol", json!("TCP"));
            let no_target = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                _ => false,
            };
            if no_target && let Some(port) = p.get("port").cloned() {
                p.insert("targetPort".into(), port);
            }
        }
    }
    if type_ == "ExternalName" {
        return;
    }
    if type_ == "NodePort" || type_ == "LoadBalancer" {
        or_insert(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if type_ == "LoadBalancer" {
        or_insert(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    or_insert(spec, "internalTrafficPolicy", json!("Cluster"));
    or_insert(spec, "ipFamilyPolicy", json!("SingleStack"));
    or_insert(spec, "ipFamilies", json!(["IPv4"]));
    if spec.get("clusterIP").and_then(Value::as_str) == Some("None") {
        or_insert(spec, "clusterIPs", json!(["None"]));
    }
}

/// An update keeps the allocated cluster IP: taken from the stored Service when the
/// new one leaves it out, refused when it changes it.
pub fn keep_cluster_ip(old: &Value, new: &mut Value, causes: &mut Vec<Cause>) {
    let old_spec = old.get("spec");
    let old_ip = old_spec
        .and_then(|s| s.get("clusterIP"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let old_ips = old_spec.and_then(|s| s.get("clusterIPs")).cloned();
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let new_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    if new_ip.is_empty() && !old_ip.is_empty() && !external_name {
        spec.insert("clusterIP".into(), json!(old_ip));
        if let Some(ips) = old_ips {
            spec.insert("clusterIPs".into(), ips);
        }
    } else if !new_ip.is_empty() && new_ip != old_ip {
        causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &new_ip,
            "may not change once set",
        ));
    } else if new_ip.is_empty() && old_ip.is_empty() && !external_name {
        // Upstream allocates here (an ExternalName Service turned into another type);
        // the sandbox allocates on create only.
        causes.push(Cause::invalid(
            "spec.type",
            spec.get("type").and_then(Value::as_str).unwrap_or_default(),
            "the sandbox allocates cluster IPs on create only: delete and create the Service",
        ));
    }
}

/// `ValidateService`, the parts a manifest gets wrong: type, ports (required unless
/// headless or ExternalName; range, protocol, names), the cluster IP's form.
pub fn validate_service(object: &Value, causes: &mut Vec<Cause>) {
    let empty = Map::new();
    let spec = object
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let type_ = spec.get("type").and_then(Value::as_str).unwrap_or_default();
    if !SERVICE_TYPES.contains(&type_) {
        causes.push(Cause::unsupported("spec.type", type_, SERVICE_TYPES));
    }
    let ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !ip.is_empty() && ip != "None" && ip.parse::<std::net::Ipv4Addr>().is_err() {
        causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    if type_ == "ExternalName"
        && spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.externalName"));
    }
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && type_ != "ExternalName" && ip != "None" {
        causes.push(Cause::required("spec.ports"));
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause::required(at("name")));
        } else if !name.is_empty() && names.contains(&name) {
            causes.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: \"{name}\""),
                field: at("name"),
            });
        }
        names.push(name);
        match p.get("port").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => causes.push(invalid_raw(
                at("port"),
                &n.to_string(),
                "must be between 1 and 65535, inclusive",
            )),
            None => causes.push(Cause::required(at("port"))),
        }
        let protocol = p
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !PROTOCOLS.contains(&protocol) {
            causes.push(Cause::unsupported(at("protocol"), protocol, PROTOCOLS));
        }
    }
}

// ---- deployments -------------------------------------------------------------------

/// `SetDefaults_Deployment` and the pod template's defaults: replicas 1, strategy
/// RollingUpdate 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600.
pub fn default_deployment(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    or_insert(spec, "replicas", json!(1));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if strategy.is_null() {
        *strategy = json!({});
    }
    if let Some(strategy) = strategy.as_object_mut() {
        or_insert(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if rolling.is_null() {
                *rolling = json!({});
            }
            if let Some(rolling) = rolling.as_object_mut() {
                or_insert(rolling, "maxUnavailable", json!("25%"));
                or_insert(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    or_insert(spec, "revisionHistoryLimit", json!(10));
    or_insert(spec, "progressDeadlineSeconds", json!(600));
    if let Some(template_spec) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        default_pod_template_spec(template_spec);
    }
}

/// `SetDefaults_PodSpec` and the container defaults of a pod template (a pod's own
/// extra defaults, such as its tolerations and priority, come from admission plugins
/// that see pods only).
fn default_pod_template_spec(spec: &mut Map<String, Value>) {
    or_insert(spec, "dnsPolicy", json!("ClusterFirst"));
    or_insert(spec, "restartPolicy", json!("Always"));
    or_insert(spec, "securityContext", json!({}));
    or_insert(spec, "terminationGracePeriodSeconds", json!(30));
    or_insert(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            default_container(c);
        }
    }
}

/// `SetDefaults_Container`, `_ContainerPort`, `_Probe`, `_HTTPGetAction` and
/// `_ObjectFieldSelector`.
fn default_container(c: &mut Map<String, Value>) {
    or_insert(c, "terminationMessagePath", json!("/dev/termination-log"));
    or_insert(c, "terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = if image_is_latest(image) {
        "Always"
    } else {
        "IfNotPresent"
    };
    or_insert(c, "imagePullPolicy", json!(policy));
    or_insert(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            or_insert(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(probe) = c.get_mut(probe).and_then(Value::as_object_mut) else {
            continue;
        };
        for (key, value) in [
            ("timeoutSeconds", 1),
            ("periodSeconds", 10),
            ("successThreshold", 1),
            ("failureThreshold", 3),
        ] {
            if probe
                .get(key)
                .and_then(Value::as_i64)
                .is_none_or(|v| v == 0)
            {
                probe.insert(key.into(), json!(value));
            }
        }
        if let Some(get) = probe.get_mut("httpGet").and_then(Value::as_object_mut) {
            or_insert(get, "path", json!("/"));
            or_insert(get, "scheme", json!("HTTP"));
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env.iter_mut() {
            if let Some(field_ref) = e
                .get_mut("valueFrom")
                .and_then(|v| v.get_mut("fieldRef"))
                .and_then(Value::as_object_mut)
            {
                or_insert(field_ref, "apiVersion", json!("v1"));
            }
        }
    }
}

/// `ValidateDeploymentSpec`: the selector (required, not empty, matching the
/// template's labels), replicas, strategy, and the template's pod spec (restart
/// policy Always).
pub fn validate_deployment(object: &Value, causes: &mut Vec<Cause>) {
    let empty = Map::new();
    let spec = object
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(n) = spec.get("replicas").and_then(Value::as_i64)
        && n < 0
    {
        causes.push(invalid_raw(
            "spec.replicas".into(),
            &n.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"));
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => causes.push(Cause::required("spec.selector")),
        Some(selector) if labels::selector_is_empty(selector) => causes.push(invalid_raw(
            "spec.selector".into(),
            &selector.to_string(),
            "empty selector is invalid for deployment",
        )),
        Some(selector) => match labels::selector_matches(selector, template_labels) {
            Ok(true) => {}
            Ok(false) => causes.push(invalid_raw(
                "spec.template.metadata.labels".into(),
                &labels::go_map(template_labels),
                "`selector` does not match template `labels`",
            )),
            Err(why) => causes.push(invalid_raw(
                "spec.selector".into(),
                &selector.to_string(),
                &why,
            )),
        },
    }
    let strategy = spec.get("strategy");
    let strategy_type = strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    match strategy_type {
        "RollingUpdate" => {}
        "Recreate" => {
            if strategy
                .and_then(|s| s.get("rollingUpdate"))
                .is_some_and(|r| !r.is_null())
            {
                causes.push(Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: may not be specified when strategy `type` is 'Recreate'"
                        .into(),
                    field: "spec.strategy.rollingUpdate".into(),
                });
            }
        }
        other => causes.push(Cause::unsupported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    let template_spec = spec.get("template").and_then(|t| t.get("spec"));
    validate_pod_spec(template_spec, "spec.template.spec", causes);
    if let Some(policy) = template_spec
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
        && policy != "Always"
        && ["OnFailure", "Never"].contains(&policy)
    {
        causes.push(Cause::unsupported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

/// A Deployment's selector never changes (apps/v1).
pub fn check_deployment_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let selector = |o: &Value| o.get("spec").and_then(|s| s.get("selector")).cloned();
    if selector(old) != selector(new) {
        causes.push(invalid_raw(
            "spec.selector".into(),
            &selector(new).unwrap_or(Value::Null).to_string(),
            "field is immutable",
        ));
    }
}

// ---- network policies --------------------------------------------------------------

/// `SetDefaults_NetworkPolicy`: policyTypes Ingress (and Egress when egress rules are
/// given), each port's protocol TCP; an absent podSelector is the empty one.
pub fn default_network_policy(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    or_insert(spec, "podSelector", json!({}));
    let no_types = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_types {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
    for direction in ["ingress", "egress"] {
        let Some(rules) = spec.get_mut(direction).and_then(Value::as_array_mut) else {
            continue;
        };
        for rule in rules.iter_mut() {
            let Some(ports) = rule.get_mut("ports").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                or_insert(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// `ValidateNetworkPolicySpec`: policy types and port protocols.
pub fn validate_network_policy(object: &Value, causes: &mut Vec<Cause>) {
    let Some(spec) = object.get("spec").and_then(Value::as_object) else {
        return;
    };
    for (i, t) in spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let t = t.as_str().unwrap_or_default();
        if t != "Ingress" && t != "Egress" {
            causes.push(Cause::unsupported(
                format!("spec.policyTypes[{i}]"),
                t,
                &["Egress", "Ingress"],
            ));
        }
    }
    for direction in ["ingress", "egress"] {
        let rules = spec
            .get(direction)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            let ports = rule
                .get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (j, p) in ports.iter().enumerate() {
                let protocol = p
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !PROTOCOLS.contains(&protocol) {
                    causes.push(Cause::unsupported(
                        format!("spec.{direction}[{i}].ports[{j}].protocol"),
                        protocol,
                        PROTOCOLS,
                    ));
                }
            }
        }
    }
}
