//! Accessors over plain JSON objects: metadata, paths, equality with fields ignored.

use serde_json::Value;

/// Metadata accessors over a JSON object.
pub fn meta(object: &Value) -> Option<&serde_json::Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

pub fn meta_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Default::default());
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    let entry = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if !entry.is_object() {
        *entry = Value::Object(Default::default());
    }
    let Value::Object(meta) = entry else {
        unreachable!("made an object above")
    };
    meta
}

pub fn meta_str<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    meta(object)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// Whether two objects are equal once the top-level fields `top` and the metadata
/// fields `meta` are ignored; compares in place (no copies of large objects).
pub fn equal_ignoring(a: &Value, b: &Value, top: &[&str], meta: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let mut ia = a.iter().filter(|(k, _)| !top.contains(&k.as_str()));
    let mut ib = b.iter().filter(|(k, _)| !top.contains(&k.as_str()));
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return true,
            (Some((ka, va)), Some((kb, vb))) => {
                if ka != kb {
                    return false;
                }
                let same = if ka == "metadata" && !meta.is_empty() {
                    equal_ignoring(va, vb, meta, &[])
                } else {
                    va == vb
                };
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A JSON pointer-ish getter: `path(&pod, &["spec", "nodeName"])`.
pub fn path<'a>(object: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(object, |cur, k| cur.get(*k))
}

pub fn path_str<'a>(object: &'a Value, keys: &[&str]) -> Option<&'a str> {
    path(object, keys).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_ignoring_fields() {
        let a = serde_json::json!({"metadata": {"name": "x", "resourceVersion": "1"}, "spec": 1, "status": 1});
        let b = serde_json::json!({"metadata": {"name": "x", "resourceVersion": "2"}, "spec": 1, "status": 2});
        assert!(!equal_ignoring(&a, &b, &[], &["resourceVersion"]));
        assert!(equal_ignoring(&a, &b, &["status"], &["resourceVersion"]));
        assert!(!equal_ignoring(&a, &b, &["status"], &[]));
        assert!(equal_ignoring(&a, &b, &["status", "metadata"], &[]));
    }
}
