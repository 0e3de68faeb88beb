//! What an update changed: the leaf paths set to a new value and those removed, found
//! by walking the old and the new object together, descending only where they differ.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::resources::ResourceType;
use super::fields::{
    FieldPath, SYSTEM_METADATA, collect, collect_fields, element_key, list_keys, push_segment,
};

/// The leaf paths an update changed (set to a new value) and removed, found by walking
/// old and new together and descending only where they differ.
pub(super) fn diff(
    rt: &ResourceType,
    old: &Value,
    new: &Value,
) -> (Vec<FieldPath>, Vec<FieldPath>) {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return (changed, removed);
    };
    let mut path = String::new();
    for key in union_keys(o, n) {
        if key == "apiVersion" || key == "kind" {
            continue;
        }
        let (ov, nv) = (o.get(key), n.get(key));
        if key == "metadata" {
            let empty = Map::new();
            let om = ov.and_then(Value::as_object).unwrap_or(&empty);
            let nm = nv.and_then(Value::as_object).unwrap_or(&empty);
            for mk in union_keys(om, nm) {
                if SYSTEM_METADATA.contains(&mk) {
                    continue;
                }
                if om.get(mk) == nm.get(mk) {
                    continue;
                }
                path.clear();
                path.push_str("f:metadata\nf:");
                path.push_str(mk);
                let mut names = vec!["metadata", mk];
                diff_value(
                    rt,
                    om.get(mk),
                    nm.get(mk),
                    &mut path,
                    &mut names,
                    &mut changed,
                    &mut removed,
                );
            }
            continue;
        }
        if ov == nv {
            continue;
        }
        path.clear();
        path.push_str("f:");
        path.push_str(key);
        let mut names = vec![key];
        diff_value(
            rt,
            ov,
            nv,
            &mut path,
            &mut names,
            &mut changed,
            &mut removed,
        );
    }
    (changed, removed)
}

fn union_keys<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = a.keys().map(String::as_str).collect();
    keys.extend(b.keys().map(String::as_str).filter(|k| !a.contains_key(*k)));
    keys
}

fn diff_value<'a>(
    rt: &ResourceType,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    changed: &mut Vec<FieldPath>,
    removed: &mut Vec<FieldPath>,
) {
    if old == new {
        return;
    }
    let keyed = match (old, new) {
        (Some(Value::Array(o)), Some(Value::Array(n))) if !o.is_empty() && !n.is_empty() => {
            keyed_ids(rt, names, o, n)
        }
        _ => None,
    };
    if let Some((old_items, new_items)) = keyed {
        for (id, item) in &new_items {
            let before = old_items.iter().find(|(i, _)| i == id).map(|(_, v)| *v);
            let len = path.len();
            push_segment(path, id);
            if before.is_none() {
                let l = path.len();
                push_segment(path, ".");
                changed.push(path.clone());
                path.truncate(l);
            }
            diff_value(rt, before, Some(item), path, names, changed, removed);
            path.truncate(len);
        }
        for (id, item) in &old_items {
            if new_items.iter().any(|(i, _)| i == id) {
                continue;
            }
            let len = path.len();
            push_segment(path, id);
            let l = path.len();
            push_segment(path, ".");
            removed.push(path.clone());
            path.truncate(l);
            diff_value(rt, Some(item), None, path, names, changed, removed);
            path.truncate(len);
        }
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) if !o.is_empty() && !n.is_empty() => {
            for key in union_keys(o, n) {
                if o.get(key) == n.get(key) {
                    continue; // most members of a written object are unchanged
                }
                let len = path.len();
                push_segment(path, "f:");
                path.push_str(key);
                names.push(key);
                diff_value(rt, o.get(key), n.get(key), path, names, changed, removed);
                names.pop();
                path.truncate(len);
            }
        }
        _ => {
            let mut new_leaves = BTreeMap::new();
            let mut old_leaves = BTreeMap::new();
            if let Some(n) = new {
                element_or_value_leaves(rt, n, path, names, &mut new_leaves);
            }
            if let Some(o) = old {
                element_or_value_leaves(rt, o, path, names, &mut old_leaves);
            }
            for (p, v) in &new_leaves {
                if old_leaves.get(p) != Some(v) {
                    changed.push(p.clone());
                }
            }
            removed.extend(
                old_leaves
                    .into_keys()
                    .filter(|p| !new_leaves.contains_key(p)),
            );
        }
    }
}

/// Leaves of a value at `path`; a keyed list element's own fields when `value` is one.
fn element_or_value_leaves<'a>(
    rt: &ResourceType,
    value: &'a Value,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeMap<FieldPath, &'a Value>,
) {
    let is_element = path
        .rsplit('\n')
        .next()
        .is_some_and(|last| last.starts_with("k:"));
    if is_element && let Some(fields) = value.as_object() {
        collect_fields(rt, fields, path, names, out);
    } else {
        collect(rt, value, path, names, out);
    }
}

/// The elements of both lists by their `k:` path element, when both are keyed lists
/// whose every element has its keys.
type KeyedItems<'a> = Vec<(String, &'a Value)>;

fn keyed_ids<'a>(
    rt: &ResourceType,
    names: &[&str],
    a: &'a [Value],
    b: &'a [Value],
) -> Option<(KeyedItems<'a>, KeyedItems<'a>)> {
    let keys = list_keys(rt, names)?;
    let ids = |list: &'a [Value]| -> Option<KeyedItems<'a>> {
        list.iter()
            .map(|e| Some((element_key(e, &keys)?, e)))
            .collect()
    };
    Some((ids(a)?, ids(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::Registry;
    use serde_json::json;
    use std::collections::BTreeSet;

    use super::super::fields::leaves;

    fn pods() -> ResourceType {
        (*Registry::default().find("", "v1", "pods").unwrap()).clone()
    }

    #[test]
    fn update_diff_matches_the_full_leaf_comparison() {
        let rt = pods();
        let old = json!({"metadata": {"name": "p", "labels": {"a": "1", "gone": "x"}},
            "spec": {"containers": [{"name": "app", "image": "x"}, {"name": "old", "image": "o"}], "tolerations": [{"key": "k"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let new = json!({"metadata": {"name": "p", "labels": {"a": "2"}},
            "spec": {"containers": [{"name": "app", "image": "y"}, {"name": "new", "image": "n"}], "tolerations": [{"key": "j"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}});
        let (changed, removed) = diff(&rt, &old, &new);
        let (ol, nl) = (leaves(&rt, &old), leaves(&rt, &new));
        // An element's `.` (its existence) changes only when the element comes or goes.
        let expect_changed: BTreeSet<FieldPath> = nl
            .iter()
            .filter(|(p, v)| ol.get(*p) != Some(*v) && !(p.ends_with("\n.") && ol.contains_key(*p)))
            .map(|(p, _)| p.clone())
            .collect();
        let expect_removed: BTreeSet<FieldPath> = ol
            .keys()
            .filter(|p| !nl.contains_key(*p))
            .cloned()
            .collect();
        assert_eq!(changed.into_iter().collect::<BTreeSet<_>>(), expect_changed);
        assert_eq!(removed.into_iter().collect::<BTreeSet<_>>(), expect_removed);
    }
}
