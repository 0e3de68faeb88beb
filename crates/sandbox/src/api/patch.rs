//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge
//! patch for built-in kinds (lists with a merge key are merged element by element:
//! containers and container statuses by `name`, conditions by `type`, ...).
//! Server-side apply is in `apply/`.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::resources::{Flavor, ResourceType};

/// A patch as received, by content type.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// `application/merge-patch+json`
    Merge(Value),
    /// `application/json-patch+json`
    Json(Value),
    /// `application/strategic-merge-patch+json`
    Strategic(Value),
    /// `application/apply-patch+yaml`
    Apply(Value),
}

pub const ACCEPTED_PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

impl Patch {
    /// Parses a body by its `Content-Type`.
    pub fn from_body(content_type: &str, body: &[u8]) -> Result<Self, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let parse_json = |body: &[u8]| -> Result<Value, ApiError> {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
        };
        match media {
            "application/merge-patch+json" => Ok(Patch::Merge(parse_json(body)?)),
            "application/json-patch+json" => Ok(Patch::Json(parse_json(body)?)),
            "application/strategic-merge-patch+json" => Ok(Patch::Strategic(parse_json(body)?)),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                let value = match serde_json::from_slice::<Value>(body) {
                    Ok(v) => v,
                    Err(_) => {
                        let text = std::str::from_utf8(body).map_err(|_| {
                            ApiError::BadRequest("apply patch is not valid UTF-8".into())
                        })?;
                        serde_saphyr::from_str::<Value>(text).map_err(|e| {
                            ApiError::BadRequest(format!("error decoding YAML: {e}"))
                        })?
                    }
                };
                if !value.is_object() {
                    return Err(ApiError::BadRequest("apply patch must be an object".into()));
                }
                Ok(Patch::Apply(value))
            }
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: {ACCEPTED_PATCH_TYPES} (got {other:?})"
            ))),
        }
    }
}

/// Applies a non-apply patch to `current` (consumed: no copy of a large object).
pub fn apply_patch(rt: &ResourceType, current: Value, patch: &Patch) -> Result<Value, ApiError> {
    match patch {
        Patch::Merge(p) => {
            if !p.is_object() {
                return Err(ApiError::BadRequest(
                    "merge patch must be a JSON object".into(),
                ));
            }
            let mut doc = current;
            json_patch::merge(&mut doc, p);
            Ok(doc)
        }
        Patch::Json(p) => {
            let ops: json_patch::Patch = serde_json::from_value(p.clone()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            let mut doc = current;
            json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::Invalid {
                kind: rt.kind.clone(),
                group: rt.group.clone(),
                name: String::new(),
                causes: vec![super::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "the server rejected our request due to an error in our request: {e}"
                    ),
                    field: String::new(),
                }],
            })?;
            Ok(doc)
        }
        Patch::Strategic(p) => {
            if rt.flavor == Flavor::Custom || rt.flavor == Flavor::Crd {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for {})",
                    rt.group_resource()
                )));
            }
            let Value::Object(patch) = p else {
                return Err(ApiError::BadRequest(
                    "strategic merge patch must be a JSON object".into(),
                ));
            };
            let mut doc = current;
            strategic_merge_map(&mut doc, patch, &[]);
            Ok(doc)
        }
        Patch::Apply(_) => Err(ApiError::Internal(
            "apply patches go through apply::apply".into(),
        )),
    }
}

/// The merge key of a list field of a built-in kind, by its path (field names only).
/// `None` for lists that are replaced as a whole.
pub fn merge_key(path: &[&str]) -> Option<&'static str> {
    let last = *path.last()?;
    let parent = path.len().checked_sub(2).map(|i| path[i]);
    match (parent, last) {
        (_, "containers" | "initContainers" | "ephemeralContainers") => Some("name"),
        (_, "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses") => {
            Some("name")
        }
        (_, "conditions") => Some("type"),
        (_, "volumes" | "imagePullSecrets" | "env" | "resourceClaims") => Some("name"),
        (_, "volumeMounts") => Some("mountPath"),
        (_, "volumeDevices") => Some("devicePath"),
        (Some("containers" | "initContainers" | "ephemeralContainers"), "ports") => {
            Some("containerPort")
        }
        // A Service's ports (upstream's patchMergeKey; its list-map keys add protocol).
        (Some("spec"), "ports") => Some("port"),
        (_, "hostAliases" | "podIPs" | "hostIPs") => Some("ip"),
        (Some("metadata"), "ownerReferences") => Some("uid"),
        (Some("status"), "addresses") => Some("type"),
        (_, "topologySpreadConstraints") => Some("topologyKey"),
        _ => None,
    }
}

/// Primitive lists whose strategy is "merge" (union) rather than replace.
fn merges_primitives(path: &[&str]) -> bool {
    matches!(path, ["metadata", "finalizers"])
}

fn strategic_merge_map(doc: &mut Value, patch: &Map<String, Value>, path: &[&str]) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *doc = Value::Object(strip_directives(replacement));
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(target) = doc else { return };
    let retain_keys = patch.get("$retainKeys").and_then(Value::as_array).cloned();
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" {
            continue;
        }
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            let _ = field; // order is applied below, after merging
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (target.get_mut(field), value)
            {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        let mut child_path = path.to_vec();
        child_path.push(key.as_str());
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.remove(key);
                    continue;
                }
                let slot = target
                    .entry(key.clone())
                    .or_insert(Value::Object(Map::new()));
                strategic_merge_map(slot, p, &child_path);
            }
            Value::Array(items) => {
                let existing = target.remove(key).unwrap_or(Value::Array(vec![]));
                let merged = strategic_merge_list(existing, items, &child_path);
                target.insert(key.clone(), merged);
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
    for (key, order) in patch {
        if let (Some(field), Value::Array(order)) = (key.strip_prefix("$setElementOrder/"), order)
            && let Some(Value::Array(list)) = target.get_mut(field)
        {
            let mut path = path.to_vec();
            path.push(field);
            reorder(list, order, merge_key(&path));
        }
    }
    if let Some(keep) = retain_keys {
        target.retain(|k, _| keep.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn strategic_merge_list(existing: Value, items: &[Value], path: &[&str]) -> Value {
    let Value::Array(mut list) = existing else {
        return Value::Array(strip_list(items));
    };
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let rest: Vec<Value> = items
            .iter()
            .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("replace"))
            .cloned()
            .collect();
        return Value::Array(strip_list(&rest));
    }
    match merge_key(path) {
        Some(key) => {
            for item in items {
                let Some(obj) = item.as_object() else {
                    continue;
                };
                let id = obj.get(key);
                let position = id.and_then(|id| list.iter().position(|e| e.get(key) == Some(id)));
                let delete = obj.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => strategic_merge_map(&mut list[i], obj, path),
                    (None, false) => list.push(Value::Object(strip_directives(obj.clone()))),
                }
            }
            Value::Array(list)
        }
        None if merges_primitives(path) => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
            Value::Array(list)
        }
        None => Value::Array(strip_list(items)),
    }
}

fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let rank = |v: &Value| -> usize {
        let id = match key {
            Some(k) => v.get(k).cloned(),
            None => Some(v.clone()),
        };
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k).cloned() == id,
                None => Some(o.clone()) == id,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

fn strip_list(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|v| match v {
            Value::Object(m) => Value::Object(strip_directives(m.clone())),
            other => other.clone(),
        })
        .collect()
}

fn strip_directives(mut map: Map<String, Value>) -> Map<String, Value> {
    map.retain(|k, _| !k.starts_with('$'));
    for v in map.values_mut() {
        match v {
            Value::Object(m) => *m = strip_directives(std::mem::take(m)),
            Value::Array(items) => *items = strip_list(items),
            _ => {}
        }
    }
    map
}

/// Sets `value` at `keys`, creating intermediate objects.
pub fn set_path(object: &mut Value, keys: &[&str], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        *object = value;
        return;
    };
    let mut cur = object;
    for key in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map
            .entry(key.to_string())
            .or_insert(Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(map) = cur {
        map.insert(last.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> ResourceType {
        super::super::resources::Registry::default()
            .find("", "v1", "pods")
            .map(|t| (*t).clone())
            .unwrap()
    }

    #[test]
    fn strategic_merges_containers_by_name_and_conditions_by_type() {
        let current = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
                             "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let patch = Patch::Strategic(json!({
            "spec": {"containers": [{"name": "b", "image": "z"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}
        }));
        let out = apply_patch(&pods(), current, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "x");
        assert_eq!(out["spec"]["containers"][1]["image"], "z");
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
        assert_eq!(out["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn strategic_delete_directive_removes_element() {
        let current = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch =
            Patch::Strategic(json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}));
        let out = apply_patch(&pods(), current, &patch).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
    }

    #[test]
    fn merge_patch_null_removes() {
        let out = apply_patch(
            &pods(),
            json!({"a": 1, "b": 2}),
            &Patch::Merge(json!({"a": null})),
        )
        .unwrap();
        assert_eq!(out, json!({"b": 2}));
    }

    #[test]
    fn json_patch_failure_is_an_error() {
        let p = Patch::Json(json!([{"op": "test", "path": "/a", "value": 2}]));
        assert!(apply_patch(&pods(), json!({"a": 1}), &p).is_err());
    }
}
