//! Field sets in the `fieldsV1` vocabulary, shared by apply and by managedFields: the
//! leaf paths of an object, list keys and element keys, and the fieldsV1 trees that
//! hold a set of paths.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::super::patch;
use super::super::resources::{Flavor, ResourceType};

/// A field path: `fieldsV1` path elements joined by newlines (which JSON-encoded keys
/// never contain). One allocation per path keeps large objects cheap to walk.
pub(super) type FieldPath = String;

pub(super) fn push_segment(path: &mut FieldPath, segment: &str) {
    if !path.is_empty() {
        path.push('\n');
    }
    path.push_str(segment);
}

pub(super) fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('\n')
}

/// Metadata fields the server owns; never part of a manager's field set.
pub(super) const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The keys identifying elements of a list at `names` (field names only), if keyed.
pub(super) fn list_keys(rt: &ResourceType, names: &[&str]) -> Option<Vec<String>> {
    if rt.flavor != Flavor::Custom {
        return patch::merge_key(names).map(|k| vec![k.to_string()]);
    }
    let mut schema = rt.schema.as_ref()?;
    for name in names {
        if schema.get("type").and_then(Value::as_str) == Some("array") {
            schema = schema.get("items")?;
        }
        schema = schema.get("properties")?.get(*name)?;
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys = schema.get("x-kubernetes-list-map-keys")?.as_array()?;
    Some(
        keys.iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
    )
}

pub(super) fn element_key(item: &Value, keys: &[String]) -> Option<String> {
    // `k:` and the key fields as a JSON object, keys in order (as serde_json writes a
    // map of them).
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut out = b"k:{".to_vec();
    for (i, k) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let value = item.get(k)?;
        serde_json::to_writer(&mut out, k).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, value).ok()?;
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// Leaf paths of an object (system metadata excluded) with their values.
pub(super) fn leaves<'a>(rt: &ResourceType, object: &'a Value) -> BTreeMap<FieldPath, &'a Value> {
    let mut out = BTreeMap::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta {
                    if SYSTEM_METADATA.contains(&mk.as_str()) {
                        continue;
                    }
                    let mut path = format!("f:metadata\nf:{mk}");
                    let mut names = vec!["metadata", mk.as_str()];
                    collect(rt, mv, &mut path, &mut names, &mut out);
                }
            }
            continue;
        }
        let mut path = format!("f:{k}");
        let mut names = vec![k.as_str()];
        collect(rt, v, &mut path, &mut names, &mut out);
    }
    out
}

pub(super) fn collect<'a>(
    rt: &ResourceType,
    value: &'a Value,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeMap<FieldPath, &'a Value>,
) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            collect_fields(rt, m, path, names, out);
        }
        Value::Array(items) if !items.is_empty() => {
            let Some(keys) = list_keys(rt, names) else {
                out.insert(path.clone(), value);
                return;
            };
            for item in items {
                let Some(id) = element_key(item, &keys) else {
                    out.insert(path.clone(), value);
                    return;
                };
                let len = path.len();
                push_segment(path, &id);
                let element_len = path.len();
                push_segment(path, ".");
                out.insert(path.clone(), item);
                path.truncate(element_len);
                if let Some(fields) = item.as_object() {
                    collect_fields(rt, fields, path, names, out);
                }
                path.truncate(len);
            }
        }
        _ => {
            out.insert(path.clone(), value);
        }
    }
}

/// The leaves under each field of a map (an object, or a keyed list element).
pub(super) fn collect_fields<'a>(
    rt: &ResourceType,
    map: &'a Map<String, Value>,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeMap<FieldPath, &'a Value>,
) {
    for (k, v) in map {
        let len = path.len();
        push_segment(path, &format!("f:{k}"));
        names.push(k.as_str());
        collect(rt, v, path, names, out);
        names.pop();
        path.truncate(len);
    }
}

/// The `fieldsV1` of everything in `object` (system metadata excluded), in one pass.
pub(super) fn fields_v1_of(rt: &ResourceType, object: &Value) -> Value {
    fn walk<'a>(rt: &ResourceType, value: &'a Value, names: &mut Vec<&'a str>) -> Value {
        match value {
            Value::Object(m) if !m.is_empty() => {
                let mut out = Map::new();
                for (k, v) in m {
                    names.push(k.as_str());
                    out.insert(format!("f:{k}"), walk(rt, v, names));
                    names.pop();
                }
                Value::Object(out)
            }
            Value::Array(items) if !items.is_empty() => {
                let Some(keys) = list_keys(rt, names) else {
                    return json!({});
                };
                let mut out = Map::new();
                for item in items {
                    let Some(id) = element_key(item, &keys) else {
                        return json!({});
                    };
                    let mut element = match walk(rt, item, names) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    element.insert(".".into(), json!({}));
                    out.insert(id, Value::Object(element));
                }
                Value::Object(out)
            }
            _ => json!({}),
        }
    }
    let mut root = Map::new();
    let Some(map) = object.as_object() else {
        return Value::Object(root);
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                let mut meta = Map::new();
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if !SYSTEM_METADATA.contains(&mk.as_str()) {
                        meta.insert(
                            format!("f:{mk}"),
                            walk(rt, mv, &mut vec!["metadata", mk.as_str()]),
                        );
                    }
                }
                if !meta.is_empty() {
                    root.insert("f:metadata".into(), Value::Object(meta));
                }
            }
            _ => {
                root.insert(format!("f:{k}"), walk(rt, v, &mut vec![k.as_str()]));
            }
        }
    }
    Value::Object(root)
}

pub(super) fn render_path(path: &FieldPath) -> String {
    let mut out = String::new();
    for pe in segments(path) {
        if let Some(f) = pe.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let rendered = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => k.to_string(),
            };
            out.push_str(&format!("[{rendered}]"));
        }
    }
    out
}

pub(super) fn to_fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for pe in segments(path) {
            let entry = cur
                .entry(pe.to_string())
                .or_insert(Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else { break };
            cur = next;
        }
    }
    Value::Object(root)
}

pub(super) fn from_fields_v1(tree: &Value) -> BTreeSet<FieldPath> {
    fn walk(node: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match node.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, v) in m {
                    let len = path.len();
                    push_segment(path, k);
                    walk(v, path, out);
                    path.truncate(len);
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(tree, &mut String::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::Registry;

    fn pods() -> ResourceType {
        (*Registry::default().find("", "v1", "pods").unwrap()).clone()
    }

    #[test]
    fn one_pass_fields_equal_the_path_sets() {
        let rt = pods();
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}},
                         "spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "E", "value": "1"}]}], "tolerations": [{"key": "k"}]},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let set: BTreeSet<FieldPath> = leaves(&rt, &pod).into_keys().collect();
        assert_eq!(fields_v1_of(&rt, &pod), to_fields_v1(&set));
    }

    #[test]
    fn fields_v1_round_trips() {
        let rt = pods();
        let pod = json!({"spec": {"containers": [{"name": "app", "image": "x"}]}});
        let set: BTreeSet<FieldPath> = leaves(&rt, &pod).into_keys().collect();
        let tree = to_fields_v1(&set);
        assert!(tree["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["."].is_object());
        assert_eq!(from_fields_v1(&tree), set);
    }
}
