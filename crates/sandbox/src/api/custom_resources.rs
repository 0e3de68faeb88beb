//! CustomResourceDefinitions: validating them, their status, the resource types they
//! serve, and what the server does to custom resources (schema defaults, pruning of
//! unknown fields, structural validation, version rewriting).

use serde_json::{Value, json};

use super::error::{ApiError, Cause};
use super::object::{self, meta_str};
use super::resources::{Flavor, PrinterColumn, ResourceType};

/// The types a CRD serves (one per served version) and their storage key, or `None`
/// when the CRD is unusable (it was validated on write, so only for odd edits).
pub fn served_types(crd: &Value) -> Option<(String, Vec<ResourceType>)> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let strings = |key: &str| -> Vec<String> {
        names
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let storage = format!("{plural}.{group}");
    let versions = spec.get("versions")?.as_array()?;
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name")?.as_str())?
        .to_string();
    let mut types = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let Some(version) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let schema = v
            .get("schema")
            .and_then(|s| s.get("openAPIV3Schema"))
            .cloned();
        let status_subresource = v
            .get("subresources")
            .and_then(|s| s.get("status"))
            .is_some();
        types.push(ResourceType {
            group: group.clone(),
            version: version.to_string(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: strings("shortNames"),
            categories: strings("categories"),
            status_subresource,
            flavor: Flavor::Custom,
            storage: storage.clone(),
            storage_version: storage_version.clone(),
            schema,
            printer_columns: printer_columns(v),
        });
    }
    Some((storage, types))
}

fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    let Some(columns) = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
    else {
        return vec![PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }];
    };
    columns
        .iter()
        .filter_map(|c| {
            let text = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Some(PrinterColumn {
                name: c.get("name")?.as_str()?.to_string(),
                type_: text("type"),
                format: text("format"),
                description: text("description"),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                json_path: c.get("jsonPath")?.as_str()?.to_string(),
            })
        })
        .collect()
}

/// Validates a CRD (the checks that keep the sandbox consistent).
pub fn validate(crd: &Value, causes: &mut Vec<Cause>) {
    let spec = crd.get("spec");
    let text = |path: &[&str]| {
        spec.and_then(|s| object::path_str(s, path))
            .unwrap_or_default()
            .to_string()
    };
    let group = text(&["group"]);
    let plural = text(&["names", "plural"]);
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if text(&["names", "kind"]).is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    }
    let scope = text(&["scope"]);
    if !["Namespaced", "Cluster"].contains(&scope.as_str()) {
        causes.push(Cause::unsupported(
            "spec.scope",
            &scope,
            &["Cluster", "Namespaced"],
        ));
    }
    let name = meta_str(crd, "name").unwrap_or_default();
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = spec
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array);
    match versions {
        Some(v) if !v.is_empty() => {
            let storage = v
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(Cause::invalid(
                    "spec.versions",
                    &format!("{storage} storage versions"),
                    "must have exactly one version marked as storage version",
                ));
            }
        }
        _ => causes.push(Cause::required("spec.versions")),
    }
}

/// The status the apiextensions controllers write: names accepted, established,
/// stored versions.
pub fn set_status(crd: &mut Value) {
    let now = crd
        .get("metadata")
        .and_then(|m| m.get("creationTimestamp"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut names = crd
        .get("spec")
        .and_then(|s| s.get("names"))
        .cloned()
        .unwrap_or(json!({}));
    if let Some(n) = names.as_object_mut() {
        let kind = n
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        n.entry("singular")
            .or_insert(json!(kind.to_ascii_lowercase()));
        n.entry("listKind").or_insert(json!(format!("{kind}List")));
    }
    if let Some(spec_names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
        && let Some(n) = names.as_object()
    {
        for key in ["singular", "listKind"] {
            if let Some(v) = n.get(key) {
                spec_names.entry(key).or_insert(v.clone());
            }
        }
    }
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|v| v.get("name").cloned());
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(s) = storage
        && !stored.contains(&s)
    {
        stored.push(s);
    }
    let status = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "storedVersions": stored,
    });
    if let Some(m) = crd.as_object_mut() {
        m.insert("status".into(), status);
    }
}

/// What the server does to a custom resource on write: defaults from the schema,
/// unknown fields pruned (an error under `fieldValidation=Strict`), then validation.
pub fn admit(
    rt: &ResourceType,
    object: &mut Value,
    strict: bool,
    causes: &mut Vec<Cause>,
) -> Result<(), ApiError> {
    let Some(schema) = rt.schema.as_ref() else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    if let Some(map) = object.as_object_mut() {
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if ["apiVersion", "kind", "metadata"].contains(&key.as_str()) {
                continue;
            }
            match props.and_then(|p| p.get(&key)) {
                Some(s) => {
                    if let Some(v) = map.get_mut(&key) {
                        prune(s, v, &key, &mut unknown);
                    }
                }
                None if preserve => {}
                None => {
                    map.remove(&key);
                    unknown.push(key);
                }
            }
        }
    }
    if strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|u| format!("unknown field \"{u}\""))
            .collect();
        return Err(ApiError::BadRequest(format!(
            "{} in body is invalid: strict decoding error: {}",
            rt.kind,
            list.join(", ")
        )));
    }
    default(schema, object);
    validate_value(schema, object, "", causes, true);
    Ok(())
}

fn prune(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = format!("{path}.{key}");
                let child_schema = props.and_then(|p| p.get(&key)).or(match additional {
                    Some(Value::Object(s)) => {
                        Some(additional.unwrap_or(&Value::Null)).filter(|_| !s.is_empty())
                    }
                    _ => None,
                });
                match child_schema {
                    Some(s) => {
                        if let Some(v) = map.get_mut(&key) {
                            prune(s, v, &child_path, unknown);
                        }
                    }
                    None if preserve
                        || additional == Some(&Value::Bool(true))
                        || matches!(additional, Some(Value::Object(o)) if o.is_empty()) => {}
                    None if props.is_none()
                        && additional.is_none()
                        && schema.get("type").is_none() => {}
                    None => {
                        map.remove(&key);
                        unknown.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default` values of the schema to absent fields, recursively.
pub fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, s) in props {
                    match map.get_mut(key) {
                        Some(v) => default(s, v),
                        None => {
                            if let Some(d) = s.get("default") {
                                let mut d = d.clone();
                                default(s, &mut d);
                                map.insert(key.clone(), d);
                            }
                        }
                    }
                }
            }
            if let Some(Value::Object(s)) = schema.get("additionalProperties") {
                let s = Value::Object(s.clone());
                for v in map.values_mut() {
                    default(&s, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    default(s, item);
                }
            }
        }
        _ => {}
    }
}

fn validate_value(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>, root: bool) {
    let field = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        if !(ok || nullable && value.is_null()) {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            causes.push(Cause {
                reason: "FieldValueTypeInvalid".into(),
                message: format!(
                    "Invalid value: \"{shown}\": {path} in body must be of type {t}: \"{}\"",
                    json_type(value)
                ),
                field: path.to_string(),
            });
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| a.as_str().map(str::to_string).unwrap_or(a.to_string()))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let shown = value
            .as_str()
            .map(str::to_string)
            .unwrap_or(value.to_string());
        causes.push(Cause::unsupported(path, &shown, &refs));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            causes.push(Cause::invalid(
                path,
                &value.to_string(),
                &format!("{path} in body should be greater than or equal to {min}"),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            causes.push(Cause::invalid(
                path,
                &value.to_string(),
                &format!("{path} in body should be less than or equal to {max}"),
            ));
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        causes.push(Cause::required(field(r)));
                    }
                }
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    if root && (k == "metadata" || k == "apiVersion" || k == "kind") {
                        continue;
                    }
                    if let Some(s) = props.get(k) {
                        validate_value(s, v, &field(k), causes, false);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_value(s, item, &format!("{path}[{i}]"), causes, false);
                }
            }
        }
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A custom resource written through any served version is stored in the storage
/// version (conversion strategy None: only apiVersion changes).
pub fn to_storage_version(rt: &ResourceType, mut object: Value) -> Value {
    if let Some(m) = object.as_object_mut() {
        m.insert(
            "apiVersion".into(),
            json!(format!("{}/{}", rt.group, rt.storage_version)),
        );
    }
    object
}

/// A stored custom resource as served by `rt`'s version.
pub fn to_served_version(rt: &ResourceType, mut object: Value) -> Value {
    if let Some(m) = object.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
    }
    object
}
