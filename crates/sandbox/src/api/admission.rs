//! What the API server does to an object on its way in: names, uid and timestamps,
//! per-kind defaults (those of the API's defaulting functions and of the admission
//! plugins a default cluster runs), required-field validation, the status subresource
//! split, generation, and the delete plan (grace periods, finalizers).

mod config;
mod names;
mod pod_spec;
mod rbac;
mod workloads;

pub use names::{is_dns_label, is_dns_subdomain};
use pod_spec::{image_is_latest, validate_pod_spec};
pub use workloads::needs_cluster_ip;

use serde_json::{Map, Value, json};

use super::custom_resources;
use super::error::{ApiError, Cause};
use super::object::{self, meta, meta_mut, meta_str};
use super::options::{Subresource, WriteOptions};
use super::resources::{Flavor, ResourceType};

/// The body's `apiVersion`/`kind`, when given, must be those of the endpoint.
pub fn check_kind(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (expected_av, expected_kind) = (rt.api_version(), rt.kind.as_str());
    if (!kind.is_empty() && kind != expected_kind)
        || (!api_version.is_empty() && api_version != expected_av)
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    Ok(())
}

/// The namespace of a create: the URL's, checked against the object's (mismatch = 400);
/// written into the object. Cluster-scoped objects lose any namespace.
pub fn resolve_namespace(
    rt: &ResourceType,
    url_namespace: Option<&str>,
    object: &mut Value,
) -> Result<Option<String>, ApiError> {
    let url_namespace = url_namespace.filter(|n| !n.is_empty());
    if !rt.namespaced {
        meta_mut(object).remove("namespace");
        return Ok(None);
    }
    let body_namespace = meta_str(object, "namespace")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let namespace = match (url_namespace, body_namespace) {
        (Some(url), Some(body)) if url != body => {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        (Some(url), _) => url.to_string(),
        (None, Some(body)) => body,
        (None, None) => {
            return Err(ApiError::BadRequest(format!(
                "{} is namespaced: a namespace is required",
                rt.group_resource()
            )));
        }
    };
    meta_mut(object).insert("namespace".into(), json!(namespace));
    Ok(Some(namespace))
}

/// System data, defaults and validation of a create.
pub fn admit_create(
    now: jiff::Timestamp,
    rt: &ResourceType,
    object: &mut Value,
    opts: &WriteOptions,
) -> Result<(), ApiError> {
    set_type_meta(rt, object);
    let name = name_to_create(rt, object)?;
    let mut causes = Vec::new();
    check_name(rt, &name, &mut causes);
    set_system_metadata(object, &name, now);
    admit_kind_on_create(rt, object, &name, opts, &mut causes)?;
    if causes.is_empty() {
        check_typed(rt, object)
    } else {
        Err(ApiError::invalid(&rt.kind, &rt.group, &name, causes))
    }
}

/// The endpoint's `apiVersion` and `kind` on a created object (an events.k8s.io
/// Event is stored as a core Event).
fn set_type_meta(rt: &ResourceType, object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(storage_api_version(rt, map)));
        map.insert(
            "kind".into(),
            json!(if rt.flavor == Flavor::EventsV1 {
                "Event"
            } else {
                rt.kind.as_str()
            }),
        );
    }
}

/// The name of a created object: its own, else `generateName` and a random suffix.
/// A resourceVersion is a 400, neither name nor generateName a 422.
fn name_to_create(rt: &ResourceType, object: &mut Value) -> Result<String, ApiError> {
    let meta = meta_mut(object);
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::BadRequest(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !name.is_empty() {
        return Ok(name);
    }
    match meta
        .get("generateName")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
    {
        Some(prefix) => Ok(format!("{prefix}{}", object::name_suffix())),
        None => Err(ApiError::invalid(
            &rt.kind,
            &rt.group,
            "",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            }],
        )),
    }
}

/// A namespace's name is a DNS label, any other a DNS subdomain.
fn check_name(rt: &ResourceType, name: &str, causes: &mut Vec<Cause>) {
    let name_ok = if rt.flavor == Flavor::Namespace {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if !name_ok {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
}

/// The metadata the server owns on a created object: name, uid, creationTimestamp,
/// generation 1; no deletion, managedFields or selfLink from the client.
fn set_system_metadata(object: &mut Value, name: &str, now: jiff::Timestamp) {
    let meta = meta_mut(object);
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(object::format_time(now)));
    meta.insert("generation".into(), json!(1));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("managedFields");
    meta.remove("selfLink");
}

/// Each kind's defaults and validation on create.
fn admit_kind_on_create(
    rt: &ResourceType,
    object: &mut Value,
    name: &str,
    opts: &WriteOptions,
    causes: &mut Vec<Cause>,
) -> Result<(), ApiError> {
    match rt.flavor {
        Flavor::Pod => {
            default_pod(object);
            validate_pod(object, causes);
            if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
                status.retain(|k, _| k == "phase" || k == "qosClass" || k == "conditions");
            }
            let qos = qos_class(object);
            set_path(object, &["status", "phase"], json!("Pending"));
            set_path(object, &["status", "qosClass"], json!(qos));
        }
        Flavor::Namespace => {
            meta_mut(object)
                .entry("labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|l| l.insert("kubernetes.io/metadata.name".into(), json!(name)));
            set_path(object, &["spec", "finalizers"], json!(["kubernetes"]));
            set_path(object, &["status", "phase"], json!("Active"));
        }
        Flavor::Crd => {
            custom_resources::validate(object, causes);
            custom_resources::set_status(object);
        }
        Flavor::Custom => {
            // With a status subresource, status is written through /status only.
            if rt.status_subresource
                && let Some(m) = object.as_object_mut()
            {
                m.remove("status");
            }
            custom_resources::admit(rt, object, opts.strict, causes)?;
        }
        Flavor::CoreEvent | Flavor::EventsV1 => validate_event(object, causes),
        Flavor::Node | Flavor::Lease | Flavor::ServiceAccount => {}
        Flavor::ConfigMap => config::validate_config_map(object, causes),
        Flavor::Secret => {
            config::default_secret(object, causes);
            config::validate_secret(object, causes);
        }
        Flavor::Service => {
            workloads::default_service(object);
            workloads::validate_service(object, causes);
            set_path(object, &["status"], json!({"loadBalancer": {}}));
        }
        Flavor::Deployment => {
            workloads::default_deployment(object);
            workloads::validate_deployment(object, causes);
            set_path(object, &["status"], json!({}));
        }
        Flavor::NetworkPolicy => {
            workloads::default_network_policy(object);
            workloads::validate_network_policy(object, causes);
        }
        Flavor::Role => rbac::validate_rules(object, true, causes),
        Flavor::ClusterRole => rbac::validate_rules(object, false, causes),
        Flavor::RoleBinding => {
            rbac::default_binding(object);
            rbac::validate_binding(object, true, causes);
        }
        Flavor::ClusterRoleBinding => {
            rbac::default_binding(object);
            rbac::validate_binding(object, false, causes);
        }
    }
    Ok(())
}

/// The object must read as its kind's typed API object, as the real server decodes
/// every body into its Go type: a member of the wrong type is a 400 naming it
/// (`Pod in version "v1" cannot be handled as a Pod: spec.containers: invalid type:
/// ...`), never a stored object that clients and the simulated components cannot
/// read. Checked after validation, which reports missing required fields as 422.
pub fn check_typed(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    use k8s_openapi::api::apps::v1 as apps;
    use k8s_openapi::api::coordination::v1 as coordination;
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::networking::v1 as networking;
    use k8s_openapi::api::rbac::v1 as rbac;
    fn decodes<T: serde::de::DeserializeOwned>(object: &Value) -> Result<(), String> {
        serde_path_to_error::deserialize::<_, T>(object)
            .map(drop)
            .map_err(|e| match e.path().to_string().as_str() {
                "." => e.inner().to_string(),
                path => format!("{path}: {}", e.inner()),
            })
    }
    let result = match rt.flavor {
        Flavor::Pod => decodes::<core::Pod>(object),
        Flavor::Node => decodes::<core::Node>(object),
        Flavor::Namespace => decodes::<core::Namespace>(object),
        Flavor::CoreEvent | Flavor::EventsV1 => decodes::<core::Event>(object),
        Flavor::Lease => decodes::<coordination::Lease>(object),
        Flavor::ServiceAccount => decodes::<core::ServiceAccount>(object),
        Flavor::Service => decodes::<core::Service>(object),
        Flavor::ConfigMap => decodes::<core::ConfigMap>(object),
        Flavor::Secret => decodes::<core::Secret>(object),
        Flavor::Deployment => decodes::<apps::Deployment>(object),
        Flavor::NetworkPolicy => decodes::<networking::NetworkPolicy>(object),
        Flavor::Role => decodes::<rbac::Role>(object),
        Flavor::ClusterRole => decodes::<rbac::ClusterRole>(object),
        Flavor::RoleBinding => decodes::<rbac::RoleBinding>(object),
        Flavor::ClusterRoleBinding => decodes::<rbac::ClusterRoleBinding>(object),
        Flavor::Crd | Flavor::Custom => Ok(()),
    };
    result.map_err(|why| {
        ApiError::BadRequest(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {why}",
            rt.version,
            kind = rt.kind
        ))
    })
}

/// What an update may change: identity and system metadata are kept; the status
/// subresource splits spec from status; pods keep their immutable spec fields;
/// generation moves when the spec does.
pub fn admit_update(
    rt: &ResourceType,
    old: &Value,
    new: &mut Value,
    opts: &WriteOptions,
) -> Result<(), ApiError> {
    if !new.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON object".into(),
        ));
    }
    keep_type_meta(rt, old, new);
    let empty = Map::new();
    let old_meta = meta(old).unwrap_or(&empty);
    keep_system_metadata(old_meta, new);
    if rt.status_subresource {
        split_status(old, new, opts.subresource);
    }
    let mut causes = Vec::new();
    admit_kind_on_update(rt, old, new, opts, &mut causes)?;
    if old_meta.contains_key("deletionTimestamp") {
        check_no_new_finalizers(old_meta, new, &mut causes);
    }
    if !causes.is_empty() {
        let name = meta_str(old, "name").unwrap_or_default().to_string();
        return Err(ApiError::invalid(&rt.kind, &rt.group, &name, causes));
    }
    check_typed(rt, new)?;
    if spec_changed(rt, old, new) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(new).insert("generation".into(), json!(generation + 1));
    }
    Ok(())
}

/// An update keeps the stored `apiVersion` and `kind`.
fn keep_type_meta(rt: &ResourceType, old: &Value, new: &mut Value) {
    if let Some(map) = new.as_object_mut() {
        let av = old
            .get("apiVersion")
            .cloned()
            .unwrap_or(json!(rt.api_version()));
        map.insert("apiVersion".into(), av);
        map.insert(
            "kind".into(),
            old.get("kind").cloned().unwrap_or(json!(rt.kind)),
        );
    }
}

/// An update keeps the identity and system metadata as stored (`old_meta`).
fn keep_system_metadata(old_meta: &Map<String, Value>, new: &mut Value) {
    let meta = meta_mut(new);
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(key) {
            Some(v) => meta.insert(key.into(), v.clone()),
            None => meta.remove(key),
        };
    }
    meta.remove("selfLink");
}

/// The status subresource split, for a kind that has one: a main write keeps the
/// stored status, a status write keeps everything else.
fn split_status(old: &Value, new: &mut Value, subresource: Subresource) {
    match subresource {
        Subresource::Main => {
            copy_field(old, new, "status");
        }
        Subresource::Status => {
            // Everything but status (and labels, annotations, finalizers, which may
            // move with a status write) stays as it was. Copied only where the write
            // differs, so a status write does not copy the whole object.
            keep_except(old, new, &["status", "metadata"]);
            if let (Some(old_m), Some(new_m)) = (old.get("metadata"), new.get_mut("metadata")) {
                let movable = ["labels", "annotations", "finalizers", "managedFields"];
                keep_except(old_m, new_m, &movable);
            }
        }
        Subresource::Binding => {}
    }
}

/// Each kind's defaults and validation on update.
fn admit_kind_on_update(
    rt: &ResourceType,
    old: &Value,
    new: &mut Value,
    opts: &WriteOptions,
    causes: &mut Vec<Cause>,
) -> Result<(), ApiError> {
    match rt.flavor {
        // A status write keeps the stored spec, which was defaulted and validated when
        // it was written: defaults would add nothing, validation would find nothing.
        // (So a status write may go through the status view, which has no spec.)
        Flavor::Pod if opts.subresource == Subresource::Status && rt.status_subresource => {}
        Flavor::Pod => {
            default_pod(new);
            if opts.subresource == Subresource::Main {
                check_pod_spec_update(old, new, causes);
            }
            validate_pod(new, causes);
        }
        Flavor::Namespace => {
            copy_field(old, new, "spec");
            if opts.subresource == Subresource::Main {
                copy_field(old, new, "status");
            }
        }
        Flavor::Crd => {
            custom_resources::validate(new, causes);
            custom_resources::set_status(new);
        }
        Flavor::Custom => {
            custom_resources::admit(rt, new, opts.strict, causes)?;
        }
        // A status write keeps the stored spec (see pods above).
        Flavor::Service | Flavor::Deployment if opts.subresource == Subresource::Status => {}
        Flavor::Service => {
            workloads::default_service(new);
            workloads::keep_cluster_ip(old, new, causes);
            workloads::validate_service(new, causes);
        }
        Flavor::Deployment => {
            workloads::default_deployment(new);
            workloads::validate_deployment(new, causes);
            workloads::check_deployment_update(old, new, causes);
        }
        Flavor::NetworkPolicy => {
            workloads::default_network_policy(new);
            workloads::validate_network_policy(new, causes);
        }
        Flavor::ConfigMap => {
            config::validate_config_map(new, causes);
            config::check_immutable(old, new, causes);
        }
        Flavor::Secret => {
            config::default_secret(new, causes);
            config::validate_secret(new, causes);
            config::check_immutable(old, new, causes);
            config::check_secret_type(old, new, causes);
        }
        Flavor::Role => rbac::validate_rules(new, true, causes),
        Flavor::ClusterRole => rbac::validate_rules(new, false, causes),
        Flavor::RoleBinding | Flavor::ClusterRoleBinding => {
            rbac::default_binding(new);
            rbac::validate_binding(new, rt.flavor == Flavor::RoleBinding, causes);
            rbac::check_role_ref_update(old, new, causes);
        }
        Flavor::Node
        | Flavor::Lease
        | Flavor::CoreEvent
        | Flavor::EventsV1
        | Flavor::ServiceAccount => {}
    }
    Ok(())
}

/// An object being deleted may lose finalizers, never gain one.
fn check_no_new_finalizers(old_meta: &Map<String, Value>, new: &Value, causes: &mut Vec<Cause>) {
    let old_finalizers = old_meta
        .get("finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let new_finalizers = meta(new)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if new_finalizers.iter().any(|f| !old_finalizers.contains(f)) {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: no new finalizers can be added if the object is being deleted"
                .into(),
            field: "metadata.finalizers".into(),
        });
    }
}

/// Whether anything outside metadata (and status, for kinds with a status
/// subresource) changed: what makes generation move.
fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let ignored: &[&str] = if rt.status_subresource {
        &["metadata", "status"]
    } else {
        &["metadata"]
    };
    !object::equal_ignoring(old, new, ignored, &[])
}

/// Makes `to` equal to `from` on every top-level field but `except`, copying only the
/// fields that differ.
fn keep_except(from: &Value, to: &mut Value, except: &[&str]) {
    let (Some(from), Some(to)) = (from.as_object(), to.as_object_mut()) else {
        return;
    };
    to.retain(|k, _| except.contains(&k.as_str()) || from.contains_key(k));
    for (k, v) in from {
        if except.contains(&k.as_str()) || to.get(k) == Some(v) {
            continue;
        }
        to.insert(k.clone(), v.clone());
    }
}

fn copy_field(from: &Value, to: &mut Value, key: &str) {
    match (from.get(key), to.as_object_mut()) {
        (Some(v), Some(m)) => {
            m.insert(key.into(), v.clone());
        }
        (None, Some(m)) => {
            m.remove(key);
        }
        _ => {}
    }
}

/// How a delete proceeds.
#[derive(Debug)]
pub enum DeletePlan {
    /// Remove the object now.
    Now,
    /// Already being deleted, nothing to change.
    Unchanged,
    /// Keep the object with this new state (deletionTimestamp set).
    Mark(Value),
}

/// Grace periods as the pod strategy computes them (an unbound or finished pod goes at
/// once), finalizers holding any object.
pub fn plan_delete(
    rt: &ResourceType,
    old: &Value,
    grace: Option<i64>,
    now: jiff::Timestamp,
) -> DeletePlan {
    let has_finalizers = meta(old)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let deleting = meta(old).is_some_and(|m| m.contains_key("deletionTimestamp"));
    let grace = if rt.flavor == Flavor::Pod {
        let spec_grace =
            object::path(old, &["spec", "terminationGracePeriodSeconds"]).and_then(Value::as_i64);
        let mut g = grace.or(spec_grace).unwrap_or(30);
        if g < 0 {
            g = 1;
        }
        let unbound = object::path_str(old, &["spec", "nodeName"]).is_none_or(str::is_empty);
        let phase = object::path_str(old, &["status", "phase"]).unwrap_or_default();
        if unbound || phase == "Succeeded" || phase == "Failed" {
            g = 0;
        }
        g
    } else {
        0
    };
    if deleting {
        let current = meta(old)
            .and_then(|m| m.get("deletionGracePeriodSeconds"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if grace >= current {
            return DeletePlan::Unchanged;
        }
        if grace == 0 && !has_finalizers {
            return DeletePlan::Now;
        }
    } else if grace == 0 && !has_finalizers {
        return DeletePlan::Now;
    }
    let mut marked = old.clone();
    let at = now
        .checked_add(jiff::SignedDuration::from_secs(grace))
        .unwrap_or(now);
    let m = meta_mut(&mut marked);
    m.insert("deletionTimestamp".into(), json!(object::format_time(at)));
    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    DeletePlan::Mark(marked)
}

/// An object marked for deletion whose last finalizer is gone (and whose grace
/// period is zero) is removed by the write that removed the finalizer.
pub fn deletion_finished(object: &Value) -> bool {
    let Some(m) = meta(object) else { return false };
    m.contains_key("deletionTimestamp")
        && m.get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
        && m.get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
}

// ---- pods ------------------------------------------------------------------

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Pod defaults: those of the v1 defaulting functions, plus the `not-ready` /
/// `unreachable` tolerations (300 s) the DefaultTolerationSeconds plugin adds.
pub fn default_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let defaults: [(&str, Value); 8] = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("priority", json!(0)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
    ];
    for (key, value) in defaults {
        spec.entry(key).or_insert(value);
    }
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                c.entry("terminationMessagePath")
                    .or_insert(json!("/dev/termination-log"));
                c.entry("terminationMessagePolicy").or_insert(json!("File"));
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                let policy = if image_is_latest(image) {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                c.entry("imagePullPolicy").or_insert(json!(policy));
                c.entry("resources").or_insert(json!({}));
            }
        }
    }
    let tolerations = spec.entry("tolerations").or_insert(json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [NOT_READY, UNREACHABLE] {
            let covered = list.iter().any(|t| {
                let tkey = t.get("key").and_then(Value::as_str).unwrap_or_default();
                let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
                (tkey == key || (tkey.is_empty() && op == "Exists"))
                    && (effect.is_empty() || effect == "NoExecute")
            });
            if !covered {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

fn validate_pod(pod: &Value, causes: &mut Vec<Cause>) {
    validate_pod_spec(pod.get("spec"), "spec", causes);
}

/// A pod's spec is immutable except for images, activeDeadlineSeconds, additions to
/// tolerations and scheduling-gate removal (the upstream rule).
fn check_pod_spec_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let normalize = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(s) = spec.as_object_mut() {
            for list in ["containers", "initContainers"] {
                if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
            for key in [
                "activeDeadlineSeconds",
                "tolerations",
                "schedulingGates",
                "terminationGracePeriodSeconds",
            ] {
                s.remove(key);
            }
        }
        spec
    };
    if normalize(old) != normalize(new) {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
            field: "spec".into(),
        });
    }
}

fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| object::path(pod, &["spec", l]).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = object::path(c, &["resources", "requests"]).and_then(Value::as_object);
        let limits = object::path(c, &["resources", "limits"]).and_then(Value::as_object);
        let has = |m: Option<&Map<String, Value>>, k: &str| m.is_some_and(|m| m.contains_key(k));
        if ["cpu", "memory"]
            .iter()
            .any(|k| has(requests, k) || has(limits, k))
        {
            any = true;
        }
        for k in ["cpu", "memory"] {
            let limit = limits.and_then(|m| m.get(k));
            let request = requests.and_then(|m| m.get(k)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate_event(event: &Value, causes: &mut Vec<Cause>) {
    if event
        .get("involvedObject")
        .and_then(Value::as_object)
        .is_none()
    {
        causes.push(Cause::required("involvedObject"));
    }
}

/// Sets a condition by `type`, keeping `lastTransitionTime` when the status is unchanged.
pub fn set_condition(object: &mut Value, condition: Value) {
    let ctype = condition.get("type").cloned().unwrap_or(Value::Null);
    let status = object
        .as_object_mut()
        .map(|m| m.entry("status").or_insert(json!({})));
    let Some(status) = status.and_then(Value::as_object_mut) else {
        return;
    };
    let conditions = status.entry("conditions").or_insert(json!([]));
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c.get("type") == Some(&ctype)) {
        Some(existing) => {
            let same = existing.get("status") == condition.get("status");
            let kept_time = existing.get("lastTransitionTime").cloned();
            *existing = condition;
            if same && let (Some(t), Some(m)) = (kept_time, existing.as_object_mut()) {
                m.insert("lastTransitionTime".into(), t);
            }
        }
        None => list.push(condition),
    }
}

pub(super) fn set_path(object: &mut Value, keys: &[&str], value: Value) {
    super::patch::set_path(object, keys, value);
}

fn storage_api_version(rt: &ResourceType, object: &Map<String, Value>) -> String {
    match rt.flavor {
        Flavor::EventsV1 | Flavor::CoreEvent => "v1".into(),
        Flavor::Custom => object
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| rt.api_version()),
        _ => rt.api_version(),
    }
}
