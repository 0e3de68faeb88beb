//! Server-side apply: conflicts with other managers, the merge of the applied
//! configuration into the live object, and the removal of the fields the manager
//! applied before and applies no longer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::super::error::{ApiError, Cause};
use super::super::object;
use super::super::options::Subresource;
use super::super::resources::ResourceType;
use super::fields::{
    FieldPath, SYSTEM_METADATA, element_key, leaves, list_keys, render_path, segments,
};
use super::managed_fields::{Entry, api_version_of, read_entries, write_entries};

/// The object an apply creates: the applied configuration itself.
pub fn strip_for_create(body: &Value) -> Value {
    let mut object = body.clone();
    object::meta_mut(&mut object).remove("managedFields");
    object
}

/// Applies `body` (the manager's full intent) to `current`: conflicts with other
/// managers are 409 unless `force`; fields this manager applied before and no longer
/// applies are removed when nobody else owns them.
pub fn apply(
    rt: &ResourceType,
    current: &Value,
    body: &Value,
    manager: &str,
    force: bool,
    subresource: Subresource,
    now: jiff::Timestamp,
) -> Result<Value, ApiError> {
    let sub = subresource.name();
    let mut entries = read_entries(current);
    let applied = leaves(rt, body);
    let conflicts = conflicts(rt, current, &applied, &entries, manager, sub);
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(rt, current, &conflicts));
        }
        // Forced: the other managers lose the fields in conflict.
        for e in entries.iter_mut() {
            if !e.same_identity(manager, "Apply", sub) {
                for (_, p) in &conflicts {
                    e.fields.remove(p);
                }
            }
        }
    }
    let mut merged = current.clone();
    let mut body_clean = body.clone();
    strip_system(&mut body_clean);
    merge(rt, &mut merged, &body_clean, &mut vec![]);
    remove_dropped(&mut merged, &entries, &applied, manager, sub);
    let fields: BTreeSet<FieldPath> = applied.into_keys().collect();
    give_applied_fields(
        &mut entries,
        fields,
        manager,
        sub,
        || api_version_of(rt, current),
        now,
    );
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// The applied fields whose value changes and that another manager (or this one
/// through another operation or subresource) owns: (that manager, the field).
fn conflicts(
    rt: &ResourceType,
    current: &Value,
    applied: &BTreeMap<FieldPath, &Value>,
    entries: &[Entry],
    manager: &str,
    sub: Option<&str>,
) -> Vec<(String, FieldPath)> {
    let live = leaves(rt, current);
    let mut conflicts = Vec::new();
    for (path, value) in applied {
        if live.get(path) == Some(value) {
            continue;
        }
        for e in entries {
            if e.same_identity(manager, "Apply", sub) {
                continue;
            }
            if e.fields.contains(path) {
                conflicts.push((e.manager.clone(), path.clone()));
            }
        }
    }
    conflicts
}

/// The 409 of an apply that conflicts, listing each conflict as the real server does.
fn conflict_error(
    rt: &ResourceType,
    current: &Value,
    conflicts: &[(String, FieldPath)],
) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(m, p)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with \"{m}\""),
            field: render_path(p),
        })
        .collect();
    let listing: Vec<String> = causes
        .iter()
        .map(|c| format!("- {}: {}", c.message, c.field))
        .collect();
    ApiError::Conflict {
        resource: rt.plural.clone(),
        group: rt.group.clone(),
        name: object::meta_str(current, "name")
            .unwrap_or_default()
            .to_string(),
        message: format!(
            "Apply failed with {} conflict(s):\n{}",
            causes.len(),
            listing.join("\n")
        ),
    }
}

/// Removes from `merged` the fields this manager applied before and applies no
/// longer, unless another entry owns them.
fn remove_dropped(
    merged: &mut Value,
    entries: &[Entry],
    applied: &BTreeMap<FieldPath, &Value>,
    manager: &str,
    sub: Option<&str>,
) {
    let previous: BTreeSet<FieldPath> = entries
        .iter()
        .find(|e| e.same_identity(manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: BTreeSet<&FieldPath> = entries
        .iter()
        .filter(|e| !e.same_identity(manager, "Apply", sub))
        .flat_map(|e| e.fields.iter())
        .collect();
    for path in previous
        .iter()
        .filter(|p| !applied.contains_key(*p) && !others.contains(p))
    {
        remove_path(merged, path);
    }
}

/// The applier's Apply entry owns exactly the applied `fields` from now on (a new
/// entry when it has none).
fn give_applied_fields(
    entries: &mut Vec<Entry>,
    fields: BTreeSet<FieldPath>,
    manager: &str,
    sub: Option<&str>,
    api_version: impl FnOnce() -> String,
    now: jiff::Timestamp,
) {
    let time = object::format_time(now);
    match entries
        .iter_mut()
        .find(|e| e.same_identity(manager, "Apply", sub))
    {
        Some(e) => {
            e.fields = fields;
            e.time = time;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: api_version(),
            subresource: sub.map(str::to_string),
            time,
            fields,
        }),
    }
}

fn strip_system(object: &mut Value) {
    if let Some(m) = object.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SYSTEM_METADATA {
            meta.remove(*key);
        }
    }
}

/// Merges an applied configuration into the live object.
fn merge<'a>(rt: &ResourceType, live: &mut Value, applied: &'a Value, names: &mut Vec<&'a str>) {
    let Value::Object(applied_map) = applied else {
        *live = applied.clone();
        return;
    };
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    let Value::Object(live_map) = live else {
        return;
    };
    for (k, v) in applied_map {
        names.push(k.as_str());
        match v {
            Value::Null => {
                live_map.remove(k);
            }
            Value::Object(_) => {
                let slot = live_map
                    .entry(k.clone())
                    .or_insert(Value::Object(Map::new()));
                merge(rt, slot, v, names);
            }
            Value::Array(items) => match list_keys(rt, names) {
                Some(keys) => {
                    let slot = live_map.entry(k.clone()).or_insert(Value::Array(vec![]));
                    if !slot.is_array() {
                        *slot = Value::Array(vec![]);
                    }
                    if let Value::Array(list) = slot {
                        for item in items {
                            let id = element_key(item, &keys);
                            let pos = id.as_ref().and_then(|id| {
                                list.iter()
                                    .position(|e| element_key(e, &keys).as_ref() == Some(id))
                            });
                            match pos {
                                Some(i) => merge(rt, &mut list[i], item, names),
                                None => list.push(item.clone()),
                            }
                        }
                    }
                }
                None => {
                    live_map.insert(k.clone(), v.clone());
                }
            },
            other => {
                live_map.insert(k.clone(), other.clone());
            }
        }
        names.pop();
    }
}

fn remove_path(object: &mut Value, path: &FieldPath) {
    let path: Vec<&str> = segments(path).collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = object;
    let mut parents = parents.iter().peekable();
    while let Some(pe) = parents.next() {
        let next = if let Some(field) = pe.strip_prefix("f:") {
            cur.get_mut(field)
        } else if let Some(key) = pe.strip_prefix("k:") {
            if parents.peek().is_none() && *last == "." {
                // Removing the element itself.
                if let Value::Array(list) = cur {
                    list.retain(|e| !matches_key(e, key));
                }
                return;
            }
            match cur {
                Value::Array(list) => list.iter_mut().find(|e| matches_key(e, key)),
                _ => None,
            }
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:")
        && let Value::Object(m) = cur
    {
        m.remove(field);
    }
}

fn matches_key(element: &Value, key: &str) -> bool {
    let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
        return false;
    };
    key.iter().all(|(k, v)| element.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::Registry;
    use serde_json::json;

    use super::super::managed_fields::record_update;

    fn pods() -> ResourceType {
        (*Registry::default().find("", "v1", "pods").unwrap()).clone()
    }

    fn now() -> jiff::Timestamp {
        "2026-08-01T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_forced() {
        let rt = pods();
        let mut current = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        record_update(&rt, None, &mut current, "ctl", Subresource::Main, now());
        let body = json!({"metadata": {"name": "p", "labels": {"a": "2"}}});
        let err = apply(
            &rt,
            &current,
            &body,
            "kubectl",
            false,
            Subresource::Main,
            now(),
        )
        .unwrap_err();
        assert_eq!(err.code(), 409);
        let ok = apply(
            &rt,
            &current,
            &body,
            "kubectl",
            true,
            Subresource::Main,
            now(),
        )
        .unwrap();
        assert_eq!(ok["metadata"]["labels"]["a"], "2");
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped() {
        let rt = pods();
        let current = json!({"metadata": {"name": "p"}});
        let first = apply(
            &rt,
            &current,
            &json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            "m",
            false,
            Subresource::Main,
            now(),
        )
        .unwrap();
        let second = apply(
            &rt,
            &first,
            &json!({"metadata": {"labels": {"a": "1"}}}),
            "m",
            false,
            Subresource::Main,
            now(),
        )
        .unwrap();
        assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
    }
}
